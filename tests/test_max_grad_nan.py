"""Session 55: the gradient of gc.max / gc.min over a slice whose maximum is NaN divided
0 by 0 (no element equals NaN: no tie counted), and numpy's "invalid value encountered in
divide" RuntimeWarning reached the user at every eager and every compiled run. The values
were torch.amax's already (NaN to each element reduced into a NaN maximum, ties sharing
the gradient elsewhere); they stay so, and nothing warns now."""
import warnings

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

CASES = [np.array([1.0, np.nan, 3.0]), np.array([3.0, 1.0, 3.0]),
         np.array([[1.0, np.nan], [2.0, 3.0]]), np.array([[np.nan, 3.0], [np.nan, 3.0]])]
REDUCTIONS = [("amax()", torch.amax, lambda a: gc.max(a)),
              ("amax(0)", lambda t: torch.amax(t, 0), lambda a: gc.max(a, 0)),
              ("amin(0)", lambda t: torch.amin(t, 0), lambda a: gc.min(a, 0)),
              ("max(dim=0).values", lambda t: t.max(0).values,
               lambda a: gc.max(a, dim=0).values)]


@pytest.mark.parametrize("x", CASES, ids=lambda x: str(x.tolist()))
@pytest.mark.parametrize("name, theirs, ours", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_max_gradient_with_nan_is_torch_s_and_warns_nothing(x, name, theirs, ours):
    t = torch.tensor(x, requires_grad=True)
    out = theirs(t)
    w = torch.arange(1.0, out.numel() + 1, dtype=torch.float64).reshape(out.shape)
    (out * w).sum().backward()
    f = lambda a: gc.sum(ours(a) * w.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a RuntimeWarning from numpy fails the test)
        eager = np.asarray(gc.grad(f)(x))
        compiled = np.asarray(gc.compile(gc.grad(f))(x))
    for got in (eager, compiled):
        np.testing.assert_array_equal(got, t.grad.numpy(), err_msg=name)


def test_a_float32_nan_maximum_s_gradient_and_second_derivative():
    x = np.array([[1.0, np.nan], [2.0, 3.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = np.asarray(gc.grad(lambda a: gc.sum(gc.max(a, 0)))(x))
        h = np.asarray(gc.grad(lambda a: gc.sum(gc.grad(lambda b: gc.sum(gc.max(b, 0) ** 2))(a)))(x))
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [[0.0, np.nan], [1.0, np.nan]])
    # d/dx of 2 * max * [x is the max]: 2 at the maximum of the finite column
    np.testing.assert_array_equal(h, [[0.0, np.nan], [2.0, np.nan]])
