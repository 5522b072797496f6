"""gc.interpolate and gc.nn.Upsample against torch.nn.functional.interpolate in float64:
values and gradients, by size and by scale_factor (recomputed too), every mode (nearest,
nearest-exact, area, linear / bilinear / trilinear, bicubic) with and without align_corners,
of 3-d, 4-d and 5-d inputs, eagerly, compiled and under vmap; float32 and float16 as torch
computes them."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RESIZES = [dict(size=(8, 11)), dict(size=(3, 4)), dict(size=1), dict(scale_factor=2),
           dict(scale_factor=(1.5, 0.7)), dict(scale_factor=3.3)]
MODES = [("nearest", None), ("bilinear", False), ("bilinear", True), ("nearest-exact", None),
         ("area", None), ("bicubic", False), ("bicubic", True)]


def _matches_torch(rng, shape, kw):
    """gc.interpolate(x, **kw) of a random x of `shape`: its values and compiled gradient
    (of a random weighting) against torch's in float64; (x, torch's result)."""
    x = rng.normal(size=shape)
    t = torch.tensor(x, requires_grad=True)
    ref = TF.interpolate(t, **kw)
    w = rng.normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(gc.interpolate(x, **kw), ref.detach().numpy(), rtol=1e-13,
                               atol=1e-14)
    g = gc.compile(gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw) * w)))(x)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13, atol=1e-14)
    return x, ref


@pytest.mark.parametrize("resize", range(len(RESIZES)))
@pytest.mark.parametrize("mode,align_corners", MODES)
def test_interpolate_2d_matches_torch(resize, mode, align_corners):
    kw = dict(RESIZES[resize], mode=mode, align_corners=align_corners)
    _matches_torch(np.random.default_rng(resize), (2, 3, 5, 7), kw)


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
                          "align_corners is only for the linear and cubic modes", f)
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


@pytest.mark.parametrize("mode,align_corners", [("trilinear", None), ("trilinear", True),
                                                ("nearest", None), ("nearest-exact", None),
                                                ("area", None)])
@pytest.mark.parametrize("resize", [dict(size=(4, 1, 6)), dict(scale_factor=(1.7, 0.5, 2)),
                                    dict(scale_factor=2.5, recompute_scale_factor=True)])
def test_interpolate_3d_volumes_match_torch(mode, align_corners, resize):
    """(N, C, D, H, W) resized along its three spatial axes: torch's trilinear and nearest
    modes were refused ('x must be 3-d or 4-d')."""
    kw = dict(resize, mode=mode, align_corners=align_corners)
    x, ref = _matches_torch(np.random.default_rng(4), (2, 2, 3, 4, 5), kw)
    per_example = gc.vmap(lambda e: gc.interpolate(e[None], **kw)[0])(x)
    np.testing.assert_allclose(per_example, ref.detach().numpy(), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("mode", ["nearest-exact", "area", "linear"])
def test_interpolate_1d_new_modes_and_recompute_scale_factor(mode):
    """recompute_scale_factor=True: the size floor(L * s) sets the source indices, not 1 / s
    (for 9 -> 15 by 1.7 the two differ), as torch's; Upsample takes it too."""
    x = np.random.default_rng(5).normal(size=(2, 3, 9))
    for recompute in (None, False, True):
        kw = dict(scale_factor=1.7, mode=mode, recompute_scale_factor=recompute)
        ref = TF.interpolate(torch.tensor(x), **kw).numpy()
        np.testing.assert_allclose(gc.interpolate(x, **kw), ref, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(gc.nn.Upsample(**kw)(x), ref, rtol=1e-13, atol=1e-14)
    if mode != "area":  # (area's windows depend on the sizes only)
        assert not np.allclose(gc.interpolate(x, scale_factor=1.7, mode=mode),
                               gc.interpolate(x, scale_factor=1.7, mode=mode,
                                              recompute_scale_factor=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mode,align_corners,eps",
                         [("linear", False, 2), ("linear", True, 2), ("bilinear", False, 4),
                          ("bicubic", False, 40)])
def test_interpolate_low_precision_as_torch_computes_it(dtype, mode, align_corners, eps):
    """torch computes a float32 or half x's source positions in float32, scale * (i + 0.5)
    - 0.5 as one fused multiply-add: graphc's float64 positions missed its values by up to
    240 float32 epsilons at 300 -> 990 (a position's last bit); now the blends' rounding
    (bicubic's 16 taps the most)."""
    x = np.random.default_rng(6).normal(size=(2, 3, 30, 300) if mode == "linear" else
                                         (2, 3, 15, 20)).astype(dtype)
    if mode == "linear":
        x = x[0]
    kw = dict(scale_factor=3.3, mode=mode, align_corners=align_corners)
    ref = TF.interpolate(torch.tensor(x), **kw).numpy()
    out = gc.compile(lambda x: gc.interpolate(x, **kw))(x)
    assert out.dtype == ref.dtype
    np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), rtol=0,
                               atol=eps * float(np.finfo(dtype).eps) * 4)


def test_interpolate_refusals_name_interpolate():
    x = np.random.default_rng(7).normal(size=(1, 2, 3, 4))
    f = "test_interpolate.py"
    assert_one_line_error(lambda: gc.interpolate(x, size=4, mode="bilinear", antialias=True),
                          "interpolate: antialias=True is not supported", f)
    assert_one_line_error(lambda: gc.interpolate(x, size=4, recompute_scale_factor=True),
                          "recompute_scale_factor is not meaningful with an explicit size", f)
    assert_one_line_error(lambda: gc.interpolate(x[:, :, 0], size=4, mode="bicubic"),
                          "mode 'bicubic' for a 3-d input", f)
    assert_one_line_error(lambda: gc.interpolate(x, size=4, mode="area", align_corners=False),
                          "align_corners is only for the linear and cubic modes, not 'area'", f)
    # an empty spatial axis: was take's "cannot do a non-empty take from an empty axes"
    assert_one_line_error(lambda: gc.interpolate(x[:, :, :0], size=3),
                          "interpolate: x's spatial size (0, 4) is empty", f)
    # a symbolic H: was "the symbolic dimension h has no value while tracing"
    resize = gc.compile(lambda x: gc.interpolate(x, scale_factor=2),
                        polymorphic_shapes=(("_", "_", "h", "_"),))
    assert_one_line_error(lambda: resize(x), "interpolate: x's axis 2 has the symbolic size h",
                          f)
    batch = gc.compile(lambda x: gc.interpolate(x, scale_factor=2, mode="bicubic"),
                       polymorphic_shapes=(("b", "_", "_", "_"),))
    for n in (1, 3):
        xb = np.random.default_rng(n).normal(size=(n, 2, 3, 4))
        np.testing.assert_allclose(batch(xb), TF.interpolate(torch.tensor(xb), scale_factor=2,
                                                             mode="bicubic").numpy(),
                                   rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape,mode", [((1, 1, 3, 4, 5), "nearest"), ((1, 1, 5), "nearest"),
                                        ((1, 1, 5, 7), "bicubic")])
def test_interpolate_kept_size_gradient_is_that_of_the_value(shape, mode):
    """The README's exception: scale_factor 1.1 keeps each size; torch's forward then reads
    x at i / 1.1 but its backward copies (torch's gradcheck fails), graphc's gradient is the
    transpose of its (torch's) forward, found column by column since the map is linear."""
    x = np.random.default_rng(8).normal(size=shape)
    kw = dict(scale_factor=1.1, mode=mode)
    np.testing.assert_allclose(gc.interpolate(x, **kw), TF.interpolate(torch.tensor(x), **kw),
                               rtol=1e-13, atol=1e-14)
    w = np.random.default_rng(9).normal(size=shape)
    columns = [np.sum(np.asarray(gc.interpolate(e.reshape(shape), **kw)) * w)
               for e in np.eye(x.size)]
    g = gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw) * w))(x)
    np.testing.assert_allclose(g, np.reshape(columns, shape), rtol=1e-12, atol=1e-13)
    t = torch.tensor(x, requires_grad=True)
    (TF.interpolate(t, **kw) * torch.tensor(w)).sum().backward()
    assert not np.allclose(g, t.grad.numpy())


@pytest.mark.parametrize("shape,kw", [((2, 3, 5), dict(size=0)),
                                      ((2, 3, 4, 5), dict(scale_factor=(0.2, 1.5))),
                                      ((1, 2, 3, 4, 5), dict(size=(2, 0, 3)))])
def test_interpolate_area_to_an_empty_size_is_served_as_torchs(shape, kw):
    """torch's "area" (adaptive average pooling) returns an empty output where its other modes
    refuse one; graphc's refused it ('size 0: one positive int'); its gradient is zero (torch's
    adaptive_avg_pool backward refuses an empty grad_output)."""
    x = np.random.default_rng(10).normal(size=shape)
    kw = dict(kw, mode="area")
    ref = TF.interpolate(torch.tensor(x), **kw).numpy()
    assert 0 in ref.shape
    for run in (lambda x: gc.interpolate(x, **kw), gc.compile(lambda x: gc.interpolate(x, **kw)),
                gc.vmap(lambda e: gc.interpolate(e[None], **kw)[0])):
        assert np.shape(run(x)) == ref.shape
    g = gc.compile(gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw))))(x)
    np.testing.assert_array_equal(g, np.zeros(shape))
    with pytest.raises(RuntimeError):  # torch's other modes refuse it
        TF.interpolate(torch.tensor(x), **dict(kw, mode="nearest"))
    assert_one_line_error(lambda: gc.interpolate(x, **dict(kw, mode="nearest")),
                          "interpolate: ", "test_interpolate.py")
