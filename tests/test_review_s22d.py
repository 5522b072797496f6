"""Review s22d of gc.interpolate / gc.nn.Upsample and gc.nn.Embedding(padding_idx): cases
where torch's rules differ from the plain source-index formula, against torch in float64."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional


def _values_and_grads(x, **kw):
    t = torch.tensor(x, requires_grad=True)
    ref = TF.interpolate(t, **kw)
    w = np.random.default_rng(1).normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    got = gc.interpolate(x, **kw)
    g = gc.compile(gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw) * w)))(x)
    return (np.asarray(got), np.asarray(g)), (ref.detach().numpy(), t.grad.numpy())


@pytest.mark.parametrize("shape,factor", [((2, 3, 4), 1.05), ((1, 2, 2), 1.3),
                                          ((2, 1, 5, 6), 1.1), ((1, 2, 2, 7), (1.3, 1.05))])
def test_linear_axis_kept_by_scale_factor_is_copied(shape, factor):
    # torch copies an axis whose output size equals its input size even when scale_factor
    # is not 1 (graphc interpolated at (i + 0.5) / factor - 0.5 instead)
    x = np.random.default_rng(0).normal(size=shape)
    mode = "linear" if len(shape) == 3 else "bilinear"
    got, ref = _values_and_grads(x, scale_factor=factor, mode=mode, align_corners=False)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[0], x, rtol=0, atol=0)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape,factor", [((2, 3, 5, 6), 1.05), ((1, 2, 4, 6), 2.0000001),
                                          ((1, 1, 5, 7), (2.0000001, 1.05))])
def test_nearest_2d_kept_or_doubled_axis_is_torchs(shape, factor):
    # torch's 2-d nearest copies a kept axis and halves the index of a doubled one
    # (aten's nearest_idx) instead of floor(i / factor), which is off by one for these factors
    x = np.random.default_rng(0).normal(size=shape)
    got, ref = _values_and_grads(x, scale_factor=factor, mode="nearest")
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)


def test_nearest_1d_gradient_is_that_of_its_value():
    # torch's 1-d nearest forward uses floor(i / factor) but its backward the copy rule above,
    # so torch's gradient is not its value's; graphc matches the value and differentiates it
    x = np.arange(5.0)[None, None]
    np.testing.assert_array_equal(gc.interpolate(x, scale_factor=1.05), [[[0, 0, 1, 2, 3]]])
    g = gc.grad(lambda x: gc.sum(gc.interpolate(x, scale_factor=1.05)))(x)
    np.testing.assert_array_equal(g, [[[2, 1, 1, 1, 0]]])


def test_interpolate_numpy_scalar_settings_and_bad_ones():
    # numpy scalars are numbers as in torch (they crashed on list()); non-numbers, nan, inf,
    # float or bool sizes gave TypeError / ValueError / OverflowError or ran
    from errorcheck import assert_one_line_error
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7))
    ref = TF.interpolate(torch.tensor(x), scale_factor=1.5).numpy()
    np.testing.assert_array_equal(gc.interpolate(x, scale_factor=np.float32(1.5)), ref)
    assert np.shape(gc.interpolate(x, scale_factor=np.int64(2))) == (2, 3, 10, 14)
    for kw in [dict(size=2.5), dict(size=True), dict(scale_factor=(1, "a")),
               dict(scale_factor=float("nan")), dict(scale_factor=float("inf"))]:
        assert_one_line_error(lambda: gc.interpolate(x, **kw), "interpolate: ",
                              "test_review_s22d.py")
    assert_one_line_error(lambda: gc.interpolate(x, scale_factor=0.1),
                          "gives the empty size (0, 0)", "test_review_s22d.py")


@pytest.mark.parametrize("shape,mode", [((1, 2, 4, 5), "bilinear"), ((1, 2, 5), "linear")])
def test_interpolate_linear_modes_refuse_integers(shape, mode):
    # the blend's weights were cast to the integer dtype (all 0): a silent floor-nearest;
    # torch refuses integer input for these modes
    from errorcheck import assert_one_line_error
    x = np.arange(np.prod(shape)).reshape(shape)
    with pytest.raises((RuntimeError, NotImplementedError)):
        TF.interpolate(torch.tensor(x), scale_factor=1.5, mode=mode)
    assert_one_line_error(lambda: gc.interpolate(x, scale_factor=1.5, mode=mode),
                          "needs a floating-point x, got int64", "test_review_s22d.py")
    np.testing.assert_array_equal(gc.interpolate(x, size=shape[2:]), x)  # nearest gathers ints


def test_upsample_size_list_changed_in_place_is_not_a_stale_plan():
    # the guard kept the very list it read, so changing it in place still "held" and the
    # compiled call reused the old size's plan (a broadcast ValueError, or the old size)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7))
    up = gc.nn.Upsample(size=[4, 5], mode="bilinear", align_corners=True)
    f = gc.compile(lambda x: up(x))
    kw = dict(mode="bilinear", align_corners=True)
    np.testing.assert_allclose(f(x), TF.interpolate(torch.tensor(x), size=[4, 5], **kw),
                               rtol=1e-13, atol=1e-14)
    up.size[0] = 6
    np.testing.assert_allclose(f(x), TF.interpolate(torch.tensor(x), size=[6, 5], **kw),
                               rtol=1e-13, atol=1e-14)


def test_embedding_negative_padding_idx_set_after_construction():
    # torch's forward counts a negative padding_idx from the end; graphc compared the indices
    # with -1 itself, so the last row got gradient after emb.padding_idx = -1
    from errorcheck import assert_one_line_error
    emb = gc.nn.Embedding(5, 3, np.random.default_rng(0), dtype="float64")
    te = torch.nn.Embedding(5, 3, dtype=torch.float64)
    te.load_state_dict({"weight": torch.tensor(np.asarray(emb.params()["weight"]))})
    emb.padding_idx = te.padding_idx = -1
    idx = np.array([[4, 1, 4], [0, 4, 2]])
    w = np.random.default_rng(1).normal(size=(2, 3, 3))
    (te(torch.tensor(idx)) * torch.tensor(w)).sum().backward()
    g = gc.compile(gc.grad(lambda p: gc.sum(emb.apply(p, idx) * w)))(emb.params())
    np.testing.assert_allclose(g["weight"], te.weight.grad.numpy(), rtol=1e-13, atol=0)
    emb.padding_idx = 5
    assert_one_line_error(lambda: emb(idx), "padding_idx must be an int in [-5, 5), got 5",
                          "test_review_s22d.py")
