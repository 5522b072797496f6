"""Session 33's fixes of value edges where graphc's ops differed from PyTorch's; each test
failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

NAN = np.nan


def _torch():
    return pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def _gradients(fn, args, weights):
    """d sum(fn(*args) * weights) / d args: gc.grad eagerly traced, compiled, and on eager
    tensors through backward(); the three must agree."""
    loss = lambda *a: gc.sum(fn(*a) * weights)  # noqa: E731
    argnums = tuple(range(len(args)))
    traced = [np.asarray(g) for g in gc.grad(loss, argnums=argnums)(*args)]
    compiled = [np.asarray(g) for g in gc.compile(gc.grad(loss, argnums=argnums))(*args)]
    tensors = [gc.tensor(a, requires_grad=True) for a in args]
    (fn(*tensors) * weights).sum().backward()
    eager = [np.asarray(t.grad) for t in tensors]
    for c, e, t in zip(compiled, eager, traced):
        np.testing.assert_array_equal(c, t)
        np.testing.assert_array_equal(e, t)
    return traced


def _torch_gradients(fn, args, weights):
    torch = _torch()
    tensors = [torch.tensor(a, requires_grad=True) for a in args]
    (fn(*tensors) * torch.tensor(weights)).sum().backward()
    return [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_send_a_nans_gradient_to_both_operands_as_torch(name):
    """Where an operand was NaN, maximum(a, b) gave the whole gradient to b (a >= b fails):
    maximum(NaN, 1) passed it to the 1, which does not make the NaN result, and the NaN got
    none. Both operands get it now, as torch.maximum's; a tie still goes to the first."""
    torch = _torch()
    a = np.array([NAN, 1.0, NAN, 2.0, 3.0])
    b = np.array([1.0, NAN, NAN, 2.0, 1.0])
    w = np.arange(1.0, 6.0)
    ga, gb = _gradients(getattr(gc, name), (a, b), w)
    ta, tb = _torch_gradients(getattr(torch, name), (a, b), w)
    np.testing.assert_array_equal(ga[:3], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gb[:3], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ga[:3], ta[:3])
    np.testing.assert_array_equal(gb[:3], tb[:3])
    np.testing.assert_array_equal([ga[3], gb[3]], [4.0, 0.0])  # the tie: README's choice


def test_clip_and_the_layers_built_on_maximum_keep_torchs_nan_gradients():
    """maximum's NaN rule changed under them: clip (torch.clamp's gradient: none where the
    result is NaN, from x or a bound), elu and celu (a NaN takes the x branch, gradient 1;
    before: 0), hardswish (1) and margin_ranking_loss (clamp_min: 0) give torch's. clip's
    NaN mask is a where whose branches are one value: simplification drops it from the
    forward pass, so a compiled clip is still one maximum and one minimum."""
    torch = _torch()
    tf = torch.nn.functional
    x = np.array([NAN, -2.0, 0.0, 1.0, 3.0, 0.5])
    lo = np.array([0.0, 0.0, 0.0, 0.0, 0.0, NAN])
    hi = np.ones(6)
    w = np.arange(1.0, 7.0)
    ours = _gradients(gc.clip, (x, lo, hi), w)
    theirs = _torch_gradients(torch.clamp, (x, lo, hi), w)
    for g, t in zip(ours, theirs):
        np.testing.assert_array_equal(g, t)
    np.testing.assert_array_equal(ours[0], [0.0, 0.0, 3.0, 4.0, 0.0, 0.0])
    v = np.array([NAN, -0.5, 0.5, -4.0])
    celu = (lambda t: gc.celu(t, 0.5), lambda t: tf.celu(t, 0.5))
    for ours_fn, torch_fn in [(gc.elu, tf.elu), celu, (gc.hardswish, tf.hardswish)]:
        (g,) = _gradients(ours_fn, (v,), np.ones(4))
        (t,) = _torch_gradients(torch_fn, (v,), np.ones(4))
        np.testing.assert_allclose(g, t, rtol=1e-15)
        assert g[0] == 1.0
    target = np.array([1.0, -1.0, 1.0, 1.0])
    loss = lambda a, b: gc.margin_ranking_loss(  # noqa: E731
        a, b, target, margin=0.1, reduction="none")
    a, b = np.array([NAN, 0.3, -0.2, 1.0]), np.array([0.1, 0.3, NAN, 0.5])
    ours = _gradients(loss, (a, b), np.ones(4))
    theirs = _torch_gradients(lambda p, q: tf.margin_ranking_loss(
        p, q, torch.tensor(target), margin=0.1, reduction="none"), (a, b), np.ones(4))
    for g, t in zip(ours, theirs):
        np.testing.assert_array_equal(g, t)
    plan = gc.compile(lambda t: gc.clip(t, -0.5, 0.5)).plan_for(np.ones((4, 8), np.float32))
    assert sorted(n.op for n in plan.graph.nodes) == ["constant", "constant", "input",
                                                      "maximum", "minimum"]


def test_pairwise_distance_with_p_0_backpropagates_eagerly_as_torchs():
    """p=0 counts the non-zero differences: a sum of a mask cast to floats, which did not
    depend on x, so eagerly loss.backward() raised "does not depend on any tensor that
    requires grad" where torch's backward runs and gives no gradient. It is a float op of x
    with a zero gradient now: backward() gives zeros, as gc.grad and compiled did."""
    torch = _torch()
    a = np.array([[1.0, 2.0, NAN], [0.5, -1.0, 3.0]])
    b = np.array([[1.0, 0.0, 0.0], [0.5, -1.0, 3.0]])
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    want = torch.nn.functional.pairwise_distance(ta, tb, p=0, eps=0.0)
    want.sum().backward()  # torch: runs; its p=0 gradient is none (zero)
    assert ta.grad is None or not ta.grad.any()
    x1, x2 = gc.tensor(a, requires_grad=True), gc.tensor(b, requires_grad=True)
    got = gc.pairwise_distance(x1, x2, p=0, eps=0.0)
    np.testing.assert_array_equal(np.asarray(got), want.detach().numpy())
    np.testing.assert_array_equal(np.asarray(got), [2.0, 0.0])
    got.sum().backward()
    np.testing.assert_array_equal(np.asarray(x1.grad), np.zeros((2, 3)))
    np.testing.assert_array_equal(np.asarray(x2.grad), np.zeros((2, 3)))
    grads = _gradients(lambda p, q: gc.pairwise_distance(p, q, p=0), (a, b), np.ones(2))
    assert np.asarray(gc.pairwise_distance(a, b, p=0)).tolist() == [3.0, 3.0]  # eps counts
    for g in grads:
        np.testing.assert_array_equal(g, np.zeros((2, 3)))
    np.testing.assert_array_equal(np.asarray(gc.norm(np.array([-0.0, 0.0]), 0)), 0.0)
    assert not np.signbit(np.asarray(gc.norm(np.array([-0.0, -0.0]), 0)))


def test_embedding_refuses_max_norm_in_one_line():
    """torch's Embedding(max_norm=...) renormalises the looked-up rows in place at each
    forward, which graphc does not do; the keyword was a TypeError from Python ("unexpected
    keyword argument"), not graphc's one-line error naming the user's line. It is refused
    as a GraphcError saying why; norm_type, which only qualifies max_norm, is accepted, and
    max_norm=None is the plain lookup."""
    assert_one_line_error(lambda: gc.nn.Embedding(10, 3, max_norm=1.0),
                          "Embedding: max_norm=1.0 is not supported", "test_review_s33_ops.py")
    table = gc.nn.Embedding(10, 3, np.random.default_rng(0), max_norm=None, norm_type=2.0)
    np.testing.assert_array_equal(np.asarray(table(np.array([4, 1]))),
                                  np.asarray(table.weight)[[4, 1]])
