"""Session 20c review: aliasing between a compiled plan's results and the caller's arrays."""
import numpy as np
import pytest

import graphc as gc


@pytest.fixture(params=["1", "0"], ids=["jit", "numpy"])
def jit_setting(request, monkeypatch):
    monkeypatch.setenv("GRAPHC_JIT", request.param)


def test_an_in_place_sgd_step_on_compiled_gradients_updates_each_weight_once(jit_setting):
    """d/da sum(a * b) is b: the simplified gradient graph returns its input, and the plan
    returned the caller's own array, so the first in-place update also changed the second
    weight's gradient (w2 came out 2.93, 3.84)."""
    grad = gc.compile(gc.grad(lambda a, b: gc.sum(a * b), argnums=(0, 1)))
    w1, w2 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    params = [w1.copy(), w2.copy()]
    grads = grad(*params)
    for p, g in zip(params, grads):
        p -= 0.1 * g
    np.testing.assert_allclose(params[0], w1 - 0.1 * w2)
    np.testing.assert_allclose(params[1], w2 - 0.1 * w1)


def test_results_do_not_change_when_the_caller_refills_its_input_buffer(jit_setting):
    """A data loader refilling one buffer per batch: results of an earlier call (the input
    itself, a view of it, a value the passes simplified to it) must keep their values."""
    f = gc.compile(lambda x: (x, gc.transpose(x), gc.reshape(x, (6,)), x * 1.0, -(-x),
                              gc.exp(x)))
    buf = np.arange(6.0).reshape(2, 3)
    want = [buf, buf.T, buf.reshape(6), buf, buf, np.exp(buf)]
    want = [np.array(w) for w in want]
    first = f(buf)
    buf[...] = -1.0
    second = f(buf)
    for got, w in zip(first, want):
        np.testing.assert_array_equal(got, w)
    np.testing.assert_array_equal(second[0], np.full((2, 3), -1.0))


def test_a_result_equal_to_a_parameter_is_not_the_parameters_array(jit_setting):
    """A layer's weight returned through a simplified expression: writing into the result
    must not change the layer."""
    layer = gc.nn.Linear(2, 3)
    weight = layer.weight.data.copy()
    f = gc.compile(lambda x: (x @ layer.weight, layer.weight * 1.0))
    _, w = f(np.ones((1, 2), np.float32))
    w += 100.0
    np.testing.assert_array_equal(layer.weight.data, weight)


def test_a_donated_input_returned_unchanged_is_still_the_same_array(jit_setting):
    """Donation gives the buffer to the plan: a cache returned as it was is not copied."""
    f = gc.compile(lambda cache, x: (cache, x * 2.0), donate_argnums=(0,))
    cache = np.arange(4.0)
    out, _ = f(cache, np.ones(2))
    assert out is cache or np.shares_memory(out, cache)


def test_two_results_of_one_value_are_two_arrays(jit_setting):
    """(x * 2, x * 2) is one value after CSE, and a value and its transpose one buffer: eager
    mode gives separate arrays, and writing into one result must not change the other."""
    f = gc.compile(lambda x: (x * 2.0, x * 2.0, gc.transpose(x * 2.0), gc.exp(x), gc.exp(x)))
    x = np.arange(6.0).reshape(2, 3)
    outs = f(x)
    for o in outs:
        o += 100.0
    for o, w in zip(outs, [x * 2, x * 2, (x * 2).T, np.exp(x), np.exp(x)]):
        np.testing.assert_allclose(o, w + 100.0)


def test_a_donated_argument_returned_twice_is_one_array_and_one_copy(jit_setting):
    f = gc.compile(lambda w: (w * 3.0, w * 3.0), donate_argnums=(0,))
    w = np.arange(4.0)
    a, b = f(w)
    a += 1.0
    np.testing.assert_array_equal(b, np.arange(4.0) * 3.0)
    np.testing.assert_array_equal(a, np.arange(4.0) * 3.0 + 1.0)


def test_eager_gradients_of_two_leaves_are_two_arrays():
    """c = a + b hands the same cotangent to a and b: a.grad was b.grad (one array), so
    scaling the gradients in place (PyTorch's `p.grad.mul_(s)` as `p.grad *= s`, a manual
    unscale or clip) scaled b's twice. backward(G) left a leaf's grad the caller's G."""
    a = gc.tensor(np.ones(3), requires_grad=True)
    b = gc.tensor(np.ones(3), requires_grad=True)
    w = np.array([1.0, 2.0, 3.0])
    gc.sum((a + b) * w).backward()
    for p in (a, b):
        p.grad *= 0.5
    np.testing.assert_array_equal(a.grad, w * 0.5)
    np.testing.assert_array_equal(b.grad, w * 0.5)

    x = gc.tensor(np.ones(3), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    x.backward(g)
    x.grad *= 2.0
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


def test_plan_memory_counts_the_copied_results_at_their_own_size(jit_setting):
    """x itself, x broadcast to (4, 3), x * 2 and x * 2 again: 3 + 12 + 3 + 3 float64."""
    f = gc.compile(lambda x: (x, gc.broadcast_to(x, (4, 3)), x * 2.0, x * 2.0))
    assert f.plan_for(np.ones(3)).memory["outputs"] == 21 * 8
    f = gc.compile(lambda x: gc.broadcast_to(x, (4, 3)))
    assert f.plan_for(np.ones(3)).memory["outputs"] == 12 * 8


def test_eager_gradients_with_create_graph_are_tensors_of_their_own():
    """Under backward(create_graph=True) a.grad was b.grad (one Tensor): `a.grad *= 2`
    doubled b's gradient too. They still differentiate again."""
    a = gc.tensor(np.ones(3), requires_grad=True)
    b = gc.tensor(np.ones(3), requires_grad=True)
    w = np.array([1.0, 2.0, 3.0])
    gc.sum((a + b) * w).backward(create_graph=True)
    a.grad *= 2.0
    np.testing.assert_array_equal(b.grad.data, w)
    np.testing.assert_array_equal(a.grad.data, 2 * w)

    x = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    gc.sum(x * x * x).backward(create_graph=True)  # x.grad = 3 x^2
    (dx,) = [x.grad]
    x.grad = None
    gc.sum(dx).backward()  # d/dx sum(3 x^2) = 6 x
    np.testing.assert_allclose(x.grad, [6.0, 12.0])
