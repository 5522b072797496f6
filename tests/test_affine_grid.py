"""graphc.nn.functional.affine_grid (session 55) against torch's in float64: the grid of 2-d
(N, 2, 3) and 3-d (N, 3, 4) affine matrices for 4-d and 5-d sizes, both alignments, unit
axes, values and the gradient wrt theta, eagerly and compiled; torch's refusals of bad
shapes refused in one line; and the identity grid sampled back to the input."""
import warnings

import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from errorcheck import assert_one_line_error as _one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(55)


def assert_one_line_error(call, message):
    _one_line_error(call, message, "test_affine_grid.py")


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 2, 1, 3), (2, 1, 3, 4, 2),
                                  (1, 1, 2, 1, 3)])
def test_affine_grid_values_and_theta_gradient_as_torch(size):
    d = len(size) - 2
    theta = RNG.standard_normal((size[0], d, d + 1))
    for align in (False, True):
        t = torch.tensor(theta, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (torch's unit-axis warning)
            want = TF.affine_grid(t, size, align)
            got = F.affine_grid(theta, size, align)
            compiled = gc.compile(lambda th: F.affine_grid(th, size, align))(theta)
            cotangent = RNG.standard_normal(tuple(want.shape))
            grad = gc.grad(lambda th: gc.sum(F.affine_grid(th, size, align) * cotangent))(theta)
            grad_compiled = gc.compile(gc.grad(
                lambda th: gc.sum(F.affine_grid(th, size, align) * cotangent)))(theta)
        (want * torch.tensor(cotangent)).sum().backward()
        for value in (got, compiled):
            assert np.asarray(value).shape == tuple(want.shape)
            np.testing.assert_allclose(np.asarray(value), want.detach().numpy(), rtol=1e-13,
                                       atol=1e-15, err_msg=f"{size} {align}")
        for value in (grad, grad_compiled):
            np.testing.assert_allclose(np.asarray(value), t.grad.numpy(), rtol=1e-13,
                                       atol=1e-14, err_msg=f"{size} {align}")


def test_affine_grid_warns_of_a_unit_axis_with_align_corners_as_torch():
    theta = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    with pytest.warns(UserWarning, match="unit-size grids"):
        TF.affine_grid(torch.tensor(theta), (1, 1, 1, 3), True)
    with pytest.warns(UserWarning, match="unit-size grids"):
        got = F.affine_grid(theta, (1, 1, 1, 3), True)
    np.testing.assert_array_equal(np.asarray(got)[0, 0], [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])


def test_the_identity_grid_samples_the_input_back():
    x = RNG.standard_normal((2, 3, 4, 5))
    identity = np.tile(np.eye(2, 3), (2, 1, 1))
    for align in (False, True):
        grid = F.affine_grid(identity, x.shape, align)
        np.testing.assert_allclose(np.asarray(F.grid_sample(x, grid, align_corners=align)), x,
                                   rtol=1e-12, atol=1e-13)
    v = RNG.standard_normal((1, 2, 3, 4, 2))
    grid = F.affine_grid(np.eye(3, 4)[None], v.shape, True)
    np.testing.assert_allclose(np.asarray(F.grid_sample(v, grid, align_corners=True)), v,
                               rtol=1e-12, atol=1e-13)


def test_affine_grid_refusals():
    theta2, theta3 = np.zeros((2, 2, 3)), np.zeros((2, 3, 4))
    for theta, size, theirs, message in (
            (theta2, (2, 1, 3), NotImplementedError, "size must be 4-d (N, C, H, W) or 5-d"),
            (theta3, (2, 1, 3, 4), ValueError, "theta must be a batch of 2-d affine matrices "
             "of shape (N, 2, 3) for size (2, 1, 3, 4), got shape (2, 3, 4)"),
            (theta2, (2, 1, 3, 4, 5), ValueError, "(N, 3, 4) for size (2, 1, 3, 4, 5)"),
            (theta2[0], (2, 1, 3, 4), ValueError, "got shape (2, 3)"),
            (theta2, (2, 1, 0, 4), ValueError, "size must be positive, got (2, 1, 0, 4)"),
            (theta2.astype(np.int64), (2, 1, 3, 4), ValueError,
             "theta must be a float array, got int64")):
        with pytest.raises(theirs):
            TF.affine_grid(torch.tensor(theta), size, False)
        assert_one_line_error(lambda: F.affine_grid(theta, size), message)
    with pytest.raises(RuntimeError):  # (torch's bmm refuses it)
        TF.affine_grid(torch.tensor(theta2), (3, 1, 3, 4), False)
    assert_one_line_error(lambda: F.affine_grid(theta2, (3, 1, 3, 4)),
                          "theta's batch N=2 differs from size's N=3")
    assert_one_line_error(lambda: F.affine_grid(theta2, (2, 1, 3.0, 4)),
                          "size must be a tuple of ints")
    assert_one_line_error(lambda: F.affine_grid(theta2, (2, 1, 3, 4), "yes"),
                          "align_corners must be True, False or None")
