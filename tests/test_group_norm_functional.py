"""gc.group_norm against torch.nn.functional.group_norm in float64: values and gradients
w.r.t. x, weight and bias, eagerly and compiled; gc.nn.GroupNorm is built on it. gc.layer_norm
with weight or bias left out (None) against torch's likewise."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")


@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((3, 4, 2, 3), 2), ((2, 4), 4),
                                           ((0, 4, 3), 2), ((2, 6, 1, 1, 2), 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(shape, groups, affine):
    rng = np.random.default_rng(sum(shape) + groups)
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    upstream = rng.standard_normal(shape)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    want = torch.nn.functional.group_norm(tx, groups, tw if affine else None,
                                          tb if affine else None, eps=1e-4)
    (want * torch.tensor(upstream)).sum().backward()

    def loss(x, w, b):
        y = gc.group_norm(x, groups, w if affine else None, b if affine else None, eps=1e-4)
        return gc.sum(gc.mul(y, upstream)), y
    for fn in (gc.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True),
               gc.compile(gc.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))):
        (_, y), (gx, gw, gb) = fn(x, w, b)
        np.testing.assert_allclose(np.asarray(y), want.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
        if affine:
            np.testing.assert_allclose(np.asarray(gw), tw.grad.numpy(), rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("given", ["neither", "weight", "bias"])
def test_layer_norm_without_weight_or_bias_matches_torch(given):
    """gc.layer_norm(x) (weight=None, bias=None), or with one of the two: values and the
    gradients of x and of the one given, as torch.nn.functional.layer_norm's, eagerly,
    differentiated and compiled."""
    rng = np.random.default_rng(7)
    x, upstream = rng.standard_normal((3, 4, 5)) * 2 + 1, rng.standard_normal((3, 4, 5))
    p = rng.standard_normal(5)
    tx, tp = torch.tensor(x, requires_grad=True), torch.tensor(p, requires_grad=True)
    weight, bias = {"neither": (None, None), "weight": (tp, None), "bias": (None, tp)}[given]
    want = torch.nn.functional.layer_norm(tx, (5,), weight, bias, eps=1e-4)
    (want * torch.tensor(upstream)).sum().backward()

    def loss(x, p):
        w, b = {"neither": (None, None), "weight": (p, None), "bias": (None, p)}[given]
        y = gc.layer_norm(x, w, b, eps=1e-4)
        return gc.sum(gc.mul(y, upstream)), y
    np.testing.assert_allclose(np.asarray(loss(x, p)[1]), want.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    for fn in (gc.value_and_grad(loss, argnums=(0, 1), has_aux=True),
               gc.compile(gc.value_and_grad(loss, argnums=(0, 1), has_aux=True))):
        (_, y), (gx, gp) = fn(x, p)
        np.testing.assert_allclose(np.asarray(y), want.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(np.asarray(gp), np.zeros(5) if given == "neither"
                                   else tp.grad.numpy(), rtol=1e-9, atol=1e-11)
    ex = gc.tensor(x, requires_grad=True)  # eagerly, on the tape
    gc.sum(gc.mul(gc.layer_norm(ex, eps=1e-4), upstream)).backward()
    if given == "neither":
        np.testing.assert_allclose(np.asarray(ex.grad), tx.grad.numpy(), rtol=1e-9,
                                   atol=1e-11)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.group_norm(x, 4), "num_groups must be a positive int dividing the 6 channels"),
    (lambda x: gc.group_norm(x, 0), "num_groups must be a positive int"),
    (lambda x: gc.group_norm(x[0, 0], 1), "x must be (N, C, ...)"),
    (lambda x: gc.group_norm(x, 2, np.ones(5)), "weight must have shape (6,)"),
    (lambda x: gc.group_norm(x.astype(np.int64), 2), "group_norm of an int64 value"),
])
def test_group_norm_errors_name_the_argument(call, message):
    with pytest.raises(GraphcError) as info:
        call(np.ones((2, 6, 3)))
    first, *where = str(info.value).splitlines()
    assert message in first and "test_group_norm_functional.py" in where[0]
