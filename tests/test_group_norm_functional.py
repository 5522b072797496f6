"""gc.group_norm against torch.nn.functional.group_norm in float64: values and gradients
w.r.t. x, weight and bias, eagerly and compiled; gc.nn.GroupNorm is built on it."""
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
