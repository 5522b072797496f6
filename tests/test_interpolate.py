"""gc.interpolate and gc.nn.Upsample against torch.nn.functional.interpolate in float64:
values and gradients, by size and by scale_factor, nearest and (bi)linear with and without
align_corners, eagerly, compiled and under vmap."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RESIZES = [dict(size=(8, 11)), dict(size=(3, 4)), dict(size=1), dict(scale_factor=2),
           dict(scale_factor=(1.5, 0.7)), dict(scale_factor=3.3)]
MODES = [("nearest", None), ("bilinear", False), ("bilinear", True)]


@pytest.mark.parametrize("resize", range(len(RESIZES)))
@pytest.mark.parametrize("mode,align_corners", MODES)
def test_interpolate_2d_matches_torch(resize, mode, align_corners):
    kw = dict(RESIZES[resize], mode=mode, align_corners=align_corners)
    rng = np.random.default_rng(resize)
    x = rng.normal(size=(2, 3, 5, 7))
    t = torch.tensor(x, requires_grad=True)
    ref = TF.interpolate(t, **kw)
    w = rng.normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(gc.interpolate(x, **kw), ref.detach().numpy(), rtol=1e-13,
                               atol=1e-14)
    g = gc.compile(gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw) * w)))(x)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_interpolate_1d_and_vmap(mode):
    x = np.random.default_rng(0).normal(size=(2, 3, 9))
    ref = TF.interpolate(torch.tensor(x), scale_factor=1.7, mode=mode).numpy()
    np.testing.assert_allclose(gc.interpolate(x, scale_factor=1.7, mode=mode), ref,
                               rtol=1e-13, atol=1e-14)
    per_example = gc.vmap(lambda e: gc.interpolate(e[None], scale_factor=1.7, mode=mode)[0])(x)
    np.testing.assert_allclose(per_example, ref, rtol=1e-13, atol=1e-14)


def test_upsample_module_and_bad_arguments():
    x = np.random.default_rng(1).normal(size=(1, 2, 3, 4)).astype(np.float32)
    up = gc.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(up(x), TF.interpolate(torch.tensor(x), scale_factor=2,
                                                     mode="bilinear", align_corners=True),
                               rtol=1e-6, atol=1e-6)
    f = "test_interpolate.py"
    assert_one_line_error(lambda: gc.interpolate(x, size=4, scale_factor=2),
                          "exactly one of size and scale_factor", f)
    assert_one_line_error(lambda: gc.interpolate(x, size=4, mode="linear"),
                          "mode 'linear' for a 4-d input", f)
    assert_one_line_error(lambda: gc.interpolate(x, size=4, align_corners=True),
                          "align_corners is only for the linear modes", f)
    assert_one_line_error(lambda: gc.interpolate(x[0, 0], size=4), "x must be 3-d", f)
    assert_one_line_error(lambda: gc.interpolate(x, size=(0, 2)), "one positive int", f)


@pytest.mark.parametrize("name,kw", [("UpsamplingNearest2d", dict(scale_factor=2)),
                                     ("UpsamplingNearest2d", dict(size=(7, 3))),
                                     ("UpsamplingBilinear2d", dict(size=(7, 9))),
                                     ("UpsamplingBilinear2d", dict(scale_factor=1.5))])
def test_upsampling_layers_are_torchs_bilinear_aligning_corners(name, kw):
    """torch's UpsamplingNearest2d / UpsamplingBilinear2d: Upsample with mode 'nearest', and
    'bilinear' with align_corners=True (Upsample's default False gives other values)."""
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5))
    layer, ref_layer = getattr(gc.nn, name)(**kw), getattr(torch.nn, name)(**kw)
    t = torch.tensor(x, requires_grad=True)
    ref = ref_layer(t)
    w = np.random.default_rng(3).normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(layer(x), ref.detach().numpy(), rtol=1e-13, atol=1e-14)
    for grad in (gc.grad(lambda x: gc.sum(layer(x) * w)),
                 gc.compile(gc.grad(lambda x: gc.sum(layer(x) * w)))):
        np.testing.assert_allclose(grad(x), t.grad.numpy(), rtol=1e-13, atol=1e-14)
    assert repr(layer) == repr(ref_layer)
    assert_one_line_error(lambda: getattr(gc.nn, name)(mode="linear"),
                          f"{name}: unknown keyword argument 'mode'", "test_interpolate.py")
