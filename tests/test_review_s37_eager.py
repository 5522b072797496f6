"""Session 37's fixes of graphc's eager (PyTorch-like) tensors; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def test_integer_results_of_eager_ops_do_not_require_grad():
    """An int or bool result of an op on a tensor that requires grad was recorded on the
    tape (requires_grad=True) and backward() through it filled x.grad with [3, 3, 3]; now, as
    torch's and compiled's, it requires no grad and backward() on it is refused in one line."""
    x = gc.tensor(np.array([1.7, -2.2, 3.9], np.float32), requires_grad=True)
    k = x.astype("int32")
    assert not k.requires_grad and k._ctx is None
    np.testing.assert_array_equal(k.numpy(), [1, -2, 3])
    assert not (x > 0).requires_grad
    assert not gc.argmax(x).requires_grad
    with pytest.raises(GraphcError, match="dtype int32: only floating-point"):
        gc.sum(k * 3).backward()
    assert x.grad is None
    gc.sum(x * 2).backward()  # float results still on the tape
    np.testing.assert_array_equal(x.grad, [2, 2, 2])


def test_np_array_of_a_tensor_is_a_copy():
    """np.array(t) (numpy 2 passes copy=True) returned the tensor's own array, so writing
    the "copy" changed the tensor (a Parameter snapshot zeroed the weight); now __array__
    honours copy=: np.array copies, np.asarray still shares, copy=False with a cast refuses."""
    t = gc.tensor(np.array([1.0, 2.0, 3.0], np.float32))
    arr = np.array(t)
    arr[0] = 99.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])
    layer = gc.nn.Linear(2, 2)
    before = layer.weight.numpy().copy()
    snapshot = np.array(layer.weight)
    snapshot[...] = 0
    np.testing.assert_array_equal(layer.weight.numpy(), before)
    assert np.asarray(t) is t.data  # README: np.asarray(t) shares, no copy
    assert np.asarray(t, copy=False) is t.data
    assert np.array(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_create_graph_casts_a_gradient_of_another_dtype():
    """backward(float64 gradient, create_graph=True) on a float32 result failed with
    "mul(f64[3], f32[3]): operands must have one dtype", an op the user never wrote; now
    the gradient is cast to the result's dtype on the tape, as torch's, and still
    differentiates back to the given gradient tensor."""
    x = gc.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    g = gc.tensor(np.array([1.0, 0.5, 2.0]), requires_grad=True)
    (x ** 3).backward(g, create_graph=True)
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 6.0, 54.0])
    gc.sum(x.grad).backward(inputs=[g])
    assert g.grad.dtype == np.float64
    np.testing.assert_allclose(g.grad, [3.0, 12.0, 27.0])


def test_numpy_functions_refuse_a_tensor_that_requires_grad():
    """np.dot(w, x) on an x that requires grad read its array off the tape: (sum(x * x) +
    np.dot(w, x)).backward() gave x.grad 2x without w; np.concatenate and np.where returned
    arrays silently. Now such a call, whose float result would lose the gradient, is refused
    in one line naming graphc's function, as torch refuses; numpy's reductions still call
    the tensor's methods (on the tape), bool and integer results (np.allclose) are given,
    and tensors that require no grad, np.asarray and no_grad work as before."""
    a = np.array([1.0, 2.0, 3.0], np.float32)
    w = np.array([0.5, -1.0, 2.0], np.float32)
    x = gc.tensor(a, requires_grad=True)
    with pytest.raises(GraphcError, match=r"np\.dot\(\) of a tensor that requires grad.*gc\.dot"):
        gc.sum(x * x) + np.dot(w, x)
    with pytest.raises(GraphcError, match=r"np\.concatenate\(\).*gc\.concatenate"):
        np.concatenate([x, x])
    with pytest.raises(GraphcError, match=r"np\.where\(\).*gc\.where"):
        np.where(a > 1, x, 0.0)
    (gc.sum(x * x) + gc.dot(w, x)).backward()
    np.testing.assert_allclose(x.grad, 2 * a + w)
    x.grad = None
    np.mean(x).backward()  # a reduction: the tensor's own method, on the tape
    np.testing.assert_allclose(x.grad, [1 / 3] * 3, rtol=1e-6)
    c = gc.tensor(a)
    np.testing.assert_array_equal(np.concatenate([c, c]), np.concatenate([a, a]))
    assert float(np.dot(w, c)) == pytest.approx(4.5)
    assert np.asarray(x) is x.data and np.shape(x) == (3,)
    # no gradient to lose in a bool or integer result
    assert np.allclose(x, a) and np.array_equal(np.isclose(x, a), [True] * 3)
    assert int(np.count_nonzero(x)) == 3
    with gc.no_grad():
        assert float(np.dot(w, x)) == pytest.approx(4.5)


def test_no_grad_decorates_generators_and_bare_functions():
    """@gc.no_grad() on a generator function only covered the call creating the generator:
    its body ran with grad on (results required grad), and bare @gc.no_grad raised a raw
    TypeError. Now no_grad is torch's decorator-context manager: each step of a generator
    runs without grad (grad mode outside untouched between steps), the bare form works, and
    gc.enable_grad / gc.set_grad_enabled are there too."""
    x = gc.tensor(np.ones(3, np.float32), requires_grad=True)

    @gc.no_grad()
    def stream(n):
        for _ in range(n):
            yield x * 2

    steps = stream(2)
    first = next(steps)
    assert not first.requires_grad and gc.is_grad_enabled()
    assert (x * 2).requires_grad  # between steps the caller's mode holds
    assert [t.requires_grad for t in steps] == [False]

    @gc.no_grad
    def double(v):
        return v * 2

    out = double(x)
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), [2, 2, 2])
    with gc.no_grad():
        assert not gc.is_grad_enabled()
        with gc.enable_grad():
            assert (x * 2).requires_grad
        with gc.set_grad_enabled(True):
            assert gc.is_grad_enabled()
        assert not gc.is_grad_enabled()
    assert gc.is_grad_enabled()
    gc.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        gc.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_an_assigned_grad_of_another_dtype_is_refused():
    """x.grad = a float64 array on a float32 leaf was taken, and the next backward()
    accumulated into it: a float64 .grad [2, 2]; now backward() refuses it in one line
    naming both dtypes, as it refuses another shape (torch refuses it on assignment), and
    a .grad of the leaf's dtype still accumulates."""
    x = gc.tensor(np.ones(2, np.float32), requires_grad=True)
    x.grad = np.ones(2)
    with pytest.raises(GraphcError, match="dtype float32 has dtype float64"):
        gc.sum(x).backward()
    x.grad = np.ones(2, np.float32)
    gc.sum(x).backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2, 2])


def test_a_numpy_refusal_names_the_function_called_and_values_free_ones_are_given():
    """numpy's own implementations call other numpy functions on the tensor, and the inner
    one was refused and named (np.hstack said np.atleast_1d, np.split np.swapaxes), and
    np.zeros_like, whose result holds no value of x, was refused; now the function the user
    called is named, with graphc's own where it has one, and zeros_like is given."""
    x = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    for call, message in ((lambda: np.hstack([x, x]), r"^np\.hstack\(\) of a tensor"),
                          (lambda: np.split(x, 3), r"^np\.split\(\) of a tensor .*gc\.split")):
        with pytest.raises(gc.GraphcError, match=message):
            call()
    np.testing.assert_array_equal(np.zeros_like(x), np.zeros(3, np.float32))
    with gc.no_grad():
        np.testing.assert_array_equal(np.hstack([x, x]), np.ones(6, np.float32))
