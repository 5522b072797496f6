"""graphc.nn.functional.grid_sample additions of session 55, against torch in float64: 5-d
(volumetric) input in modes bilinear (trilinear) and nearest, bicubic of a 4-d input, every
padding mode and alignment, values and the gradients wrt input and grid, eagerly and
compiled; and a NaN grid point's value and gradients in every padding mode."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from errorcheck import assert_one_line_error as _one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(555)
PADDINGS = ("zeros", "border", "reflection")


def assert_one_line_error(call, message):
    _one_line_error(call, message, "test_grid_sample_volumes.py")


def _compare(x, grid, mode, rtol=1e-12, atol=1e-13, compiled=None, gradients=None):
    """Values against torch's in every padding mode and alignment (eagerly: cheap), and both
    gradients of sum(out * cotangent) for the (padding, align_corners) pairs `gradients`
    (None: all), eagerly; compiled (value and gradients) for `compiled`, one such pair.
    Each gradient is a trace and build of its own (about 0.3 s of CPU a pair, compiled or
    not): the values fix where each padding mode reads, which the input's gradient scatters
    back to, so the gradients are checked in a subset covering every padding mode and both
    alignments."""
    for padding in PADDINGS:
        for align in (False, True):
            message = f"{mode} {padding} {align}"
            tx = torch.tensor(x, requires_grad=True)
            tg = torch.tensor(grid, requires_grad=True)
            want = TF.grid_sample(tx, tg, mode, padding, align)
            np.testing.assert_allclose(np.asarray(F.grid_sample(x, grid, mode, padding, align)),
                                       want.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=message)
            if gradients is not None and (padding, align) not in gradients \
                    and (padding, align) != compiled:
                continue
            cotangent = RNG.standard_normal(tuple(want.shape))
            (want * torch.tensor(cotangent)).sum().backward()

            def loss(a, g):
                return gc.sum(F.grid_sample(a, g, mode, padding, align) * cotangent)
            runs = []
            if gradients is None or (padding, align) in gradients:
                runs.append((None, gc.grad(loss, argnums=(0, 1))(x, grid)))
            if (padding, align) == compiled:
                runs.append((gc.compile(lambda a, g: F.grid_sample(a, g, mode, padding,
                                                                   align))(x, grid),
                             gc.compile(gc.grad(loss, argnums=(0, 1)))(x, grid)))
            for value, (gx, gg) in runs:
                if value is not None:
                    np.testing.assert_allclose(np.asarray(value), want.detach().numpy(),
                                               rtol=rtol, atol=atol, err_msg=message)
                np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=rtol,
                                           atol=atol, err_msg=message)
                np.testing.assert_allclose(np.asarray(gg), tg.grad.numpy(), rtol=rtol,
                                           atol=10 * atol, err_msg=message)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_volumes_as_torch(mode):
    x = RNG.standard_normal((2, 2, 2, 3, 4))
    # points outside [-1, 1] (the padding decides them) and past several reflections
    grid = RNG.uniform(-3.2, 3.2, (2, 2, 2, 2, 3))
    # (gradients: every padding mode and both alignments; nearest's are cheap, all)
    _compare(x, grid, mode, compiled=("reflection", False),
             gradients=None if mode == "nearest" else {("zeros", True), ("border", False)})


def test_bicubic_as_torch():
    x = RNG.standard_normal((2, 1, 4, 5))
    grid = RNG.uniform(-2.5, 2.5, (2, 2, 3, 2))
    grid[0, 0, 0] = (1.0, -1.0)  # (the corners: the 4x4 neighbourhood reaches past them)
    _compare(x, grid, "bicubic", atol=1e-12, compiled=("border", True),
             gradients={("zeros", False), ("reflection", True)})


def test_bicubic_of_a_small_image_reads_the_padding_of_the_whole_neighbourhood():
    """A 2x2 image: the 4x4 neighbourhood of every point reaches 1 to 2 pixels past each
    edge, which border, reflection (align_corners both) and zeros decide."""
    x = RNG.standard_normal((1, 1, 2, 2))
    grid = RNG.uniform(-1.2, 1.2, (1, 2, 3, 2))
    _compare(x, grid, "bicubic", atol=1e-12,
             gradients={("border", False), ("reflection", True)})


def test_refusals_of_volumes_and_bicubic():
    x, grid = RNG.standard_normal((1, 2, 3, 3, 3)), RNG.uniform(-1, 1, (1, 2, 2, 2, 3))
    with pytest.raises(RuntimeError, match="bicubic interpolation only supports 4D"):
        TF.grid_sample(torch.tensor(x), torch.tensor(grid), "bicubic", align_corners=False)
    assert_one_line_error(lambda: F.grid_sample(x, grid, "bicubic"),
                          "mode 'bicubic' needs a 4-d input, got shape (1, 2, 3, 3, 3)")
    assert_one_line_error(lambda: F.grid_sample(x, grid[..., :2]),
                          "grid must be (N, D_out, H_out, W_out, 3) for a 5-d input")
    assert_one_line_error(lambda: F.grid_sample(x[..., 0], grid),
                          "grid must be (N, H_out, W_out, 2) for a 4-d input")
    assert_one_line_error(lambda: F.grid_sample(x[None], grid),
                          "input must be 4-d (N, C, H, W) or 5-d (N, C, D, H, W)")
    assert_one_line_error(lambda: F.grid_sample(np.zeros((1, 2, 3, 0, 3)), grid),
                          "spatial dimensions must be non-empty")


def _nan_grid_2d():
    return np.array([[[[np.nan, 0.0], [0.2, np.nan], [np.nan, np.nan], [0.2, 0.3]],
                      [[-0.6, 0.5], [np.nan, -0.4], [0.9, -0.9], [np.nan, 0.7]]]])


def test_review_s54_nan_grid_point_passes_no_input_gradient_as_torch():
    """Review s54: a NaN grid point in mode zeros passed NaN to input pixel 0 (the masked
    corner's read times its NaN weight), where torch's passes 0 (its value NaN, its grid
    gradient NaN, which are kept). In border and reflection torch's float64 backward crashes
    (its vectorised kernel indexes by the NaN): its float32 scalar kernel
    (_grid_sampler_2d_cpu_fallback) passes nothing back from a NaN point, to input or
    grid, as its CUDA kernel; the value stays its vectorised kernel's (pixel 0 read)."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    grid = _nan_grid_2d()
    for mode in ("bilinear", "nearest"):
        for padding in PADDINGS:
            for align in (False, True):
                message = f"{mode} {padding} {align}"
                want = TF.grid_sample(torch.tensor(x), torch.tensor(grid), mode, padding,
                                      align).numpy()
                with np.errstate(invalid="ignore"):
                    value = F.grid_sample(x, grid, mode, padding, align)
                    gx, gg = gc.grad(lambda a, g: gc.sum(F.grid_sample(a, g, mode, padding,
                                                                       align)),
                                     argnums=(0, 1))(x, grid)
                    cx, cg = gc.compile(gc.grad(lambda a, g: gc.sum(F.grid_sample(
                        a, g, mode, padding, align)), argnums=(0, 1)))(x, grid)
                np.testing.assert_allclose(np.asarray(value), want, rtol=1e-12,
                                           err_msg=message)
                if padding == "zeros":
                    tx = torch.tensor(x, requires_grad=True)
                    tg = torch.tensor(grid, requires_grad=True)
                    TF.grid_sample(tx, tg, mode, padding, align).sum().backward()
                    want_x, want_g, rtol = tx.grad.numpy(), tg.grad.numpy(), 1e-12
                else:
                    tx = torch.tensor(x, dtype=torch.float32, requires_grad=True)
                    tg = torch.tensor(grid, dtype=torch.float32, requires_grad=True)
                    torch._grid_sampler_2d_cpu_fallback(
                        tx, tg, ("bilinear", "nearest").index(mode),
                        PADDINGS.index(padding), align).sum().backward()
                    want_x, want_g, rtol = tx.grad.numpy(), tg.grad.numpy(), 1e-5
                for got_x, got_g in ((gx, gg), (cx, cg)):
                    np.testing.assert_allclose(np.asarray(got_x), want_x, rtol=rtol,
                                               atol=rtol, err_msg=message)
                    np.testing.assert_allclose(np.asarray(got_g), want_g, rtol=rtol,
                                               atol=rtol, err_msg=message)
                    if padding != "zeros" or mode == "nearest":
                        assert np.isfinite(np.asarray(got_g)).all(), message
                assert np.isfinite(np.asarray(gx)).all(), message


def test_nan_and_infinite_grid_points_of_a_volume_as_torch():
    """torch's 3-d kernel (scalar) reads a NaN point as 0 in mode zeros and as the pixel at
    size - 1 in border and reflection (its 2-d kernel's NaN and pixel 0 differ), passing no
    gradient back from it; infinite points too."""
    x = np.arange(24.0).reshape(1, 1, 2, 3, 4)
    grid = np.array([[[[[np.nan, 0.0, 0.1], [0.2, 0.3, 0.4], [0.5, np.nan, -0.5]],
                       [[np.inf, 0.1, 0.2], [-0.3, -np.inf, 0.9], [0.1, 0.2, np.nan]]]]])
    for mode in ("bilinear", "nearest"):
        for padding in PADDINGS:
            for align in (False, True):
                message = f"{mode} {padding} {align}"
                tx = torch.tensor(x, requires_grad=True)
                tg = torch.tensor(grid, requires_grad=True)
                want = TF.grid_sample(tx, tg, mode, padding, align)
                want.sum().backward()
                with np.errstate(invalid="ignore"):
                    value = F.grid_sample(x, grid, mode, padding, align)
                    gx, gg = gc.grad(lambda a, g: gc.sum(F.grid_sample(a, g, mode, padding,
                                                                       align)),
                                     argnums=(0, 1))(x, grid)
                np.testing.assert_allclose(np.asarray(value), want.detach().numpy(),
                                           rtol=1e-12, err_msg=message)
                np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-12,
                                           atol=1e-13, err_msg=message)
                np.testing.assert_allclose(np.asarray(gg), tg.grad.numpy(), rtol=1e-12,
                                           atol=1e-12, err_msg=message)
