"""graphc's 3-d pools, power-average pools and sliding blocks (ir/ops/pool_extra.py,
graphc/pool_layers.py) against torch in float64: max_pool3d / avg_pool3d /
adaptive_avg_pool3d / adaptive_max_pool3d, lp_pool1d/2d/3d, unfold / fold and their layers.
Over 100 random settings per function: values, indices and gradients (gc.grad) eagerly at
every one, and compiled and under gc.vmap at every TRACED-th; batched and unbatched inputs,
settings torch refuses refused. The random settings run on numpy plans (GRAPHC_JIT=0, as
test_fuzz_public_api's seeds): every setting is a new graph, and its numba kernels took
seconds each on a cold kernel cache (minutes for the file); the fixed cases (finite
differences, symbolic sizes, layers, the first of the tie cases) run on the generated
kernels. Then torch's tie rule, finite differences, layers and the one-line errors of bad
settings."""
import math

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
from test_conv_layers import _finite_differences  # noqa: E402  (central differences)
FILE = "test_pool3d.py"
CONFIGS = 100  # settings torch takes, compared per function
TRACED = 20  # every TRACED-th of them also compiled and under gc.vmap


@pytest.fixture
def numpy_plans(monkeypatch):
    """The random settings' plans on numpy kernels (see the module's docstring)."""
    monkeypatch.setenv("GRAPHC_JIT", "0")


def _settings_taken(rng, draw):
    """CONFIGS draws of `draw(rng, traced)` (settings and a check of them against torch,
    compiled and under gc.vmap too where `traced`) that torch took (draw returns True),
    among at most twice as many tries."""
    taken = 0
    for _ in range(2 * CONFIGS):
        taken += bool(draw(rng, taken % TRACED == 0))
        if taken == CONFIGS:
            return
    pytest.fail(f"only {taken} of {2 * CONFIGS} random settings were taken by torch")


def _agree(ours, theirs, x, indices=False, traced=True, vmap=True):
    """ours(x) against theirs(torch x) in float64: the value (and the indices) and the
    gradient of a random weighting of it by gc.grad, eagerly; with `traced`, the compiled
    indices and gradient too, and (with `vmap`) the value and gradient under gc.vmap over a
    batch of x."""
    t = torch.tensor(x, requires_grad=True)
    t_out = theirs(t)
    t_out, t_idx = t_out if indices else (t_out, None)
    u = np.random.default_rng(x.size).normal(size=tuple(t_out.shape))
    (t_out * torch.tensor(u)).sum().backward()
    want, want_grad = t_out.detach().numpy(), t.grad.numpy()

    def value(x):
        return ours(x)[0] if indices else ours(x)
    out = ours(x)
    if indices:
        out, idx = out
        assert np.asarray(idx).dtype == np.int64
        np.testing.assert_array_equal(np.asarray(idx), t_idx.numpy())
        if traced:
            np.testing.assert_array_equal(np.asarray(gc.compile(lambda x: ours(x)[1])(x)),
                                          t_idx.numpy())
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-12, atol=1e-12)
    loss = gc.grad(lambda x: gc.sum(value(x) * u))
    np.testing.assert_allclose(np.asarray(loss(x)), want_grad, rtol=1e-10, atol=1e-11)
    if not traced:
        return
    np.testing.assert_allclose(np.asarray(gc.compile(loss)(x)), want_grad, rtol=1e-10,
                               atol=1e-11)
    if vmap:  # each of 2 copies (the second scaled) pooled alone
        xs = np.stack([x, 2 * x])
        pooled = gc.vmap(value)(xs)
        np.testing.assert_allclose(np.asarray(pooled), np.stack([want, value(2 * x)]),
                                   rtol=1e-12, atol=1e-12)
        vgrad = gc.grad(lambda xs: gc.sum(gc.vmap(value)(xs) * u))(xs)
        np.testing.assert_allclose(np.asarray(vgrad[0]), want_grad, rtol=1e-10, atol=1e-11)


def _refused_alike(ours, theirs, x):
    """Settings torch refuses (RuntimeError / ValueError): graphc refuses them too, in a
    GraphcError. True where torch took them."""
    try:
        theirs(torch.tensor(x))
    except (RuntimeError, ValueError):
        with pytest.raises(gc.GraphcError):
            ours(x)
        return False
    return True


def _window_settings(rng, spatial, dilated=True):
    k = tuple(int(v) for v in rng.integers(1, 4, spatial))
    return dict(kernel_size=k, stride=tuple(int(v) for v in rng.integers(1, 4, spatial)),
                padding=tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k),
                ceil_mode=bool(rng.integers(0, 2)),
                **({"dilation": tuple(int(v) for v in rng.integers(1, 3, spatial))}
                   if dilated else {}))


def _some_window_is_padding(shape, kw):
    """Whether a window of these settings lies in the padding alone (dilation makes them):
    torch gives its gradient to a place it does not check, graphc none."""
    for n, k, s, p, d in zip(shape, kw["kernel_size"], kw["stride"], kw["padding"],
                             kw["dilation"]):
        span = n + 2 * p - d * (k - 1) - 1
        windows = (-(-span // s) if kw["ceil_mode"] else span // s) + 1
        if kw["ceil_mode"] and (windows - 1) * s >= n + p:
            windows -= 1
        for o in range(windows):
            if not any(0 <= o * s - p + j * d < n for j in range(k)):
                return True
    return False


def _input(rng, spatial, low=1, high=7):
    size = tuple(int(v) for v in rng.integers(low, high, spatial))
    lead = (int(rng.integers(1, 3)),) if rng.integers(0, 3) else ()  # unbatched a third
    return rng.normal(size=lead + (int(rng.integers(1, 3)),) + size)


# ---- 3-d pools --------------------------------------------------------------------------------
def test_max_pool3d_random_settings_match_torch(numpy_plans):
    def draw(rng, traced):
        kw, x = _window_settings(rng, 3), _input(rng, 3)
        ours = lambda x: gc.max_pool3d(x, **kw, return_indices=True)  # noqa: E731
        theirs = lambda x: TF.max_pool3d(x, **kw, return_indices=True)  # noqa: E731
        if not _refused_alike(ours, theirs, x):
            return False
        if _some_window_is_padding(x.shape[-3:], kw):  # the values only
            np.testing.assert_array_equal(np.asarray(gc.max_pool3d(x, **kw)),
                                          TF.max_pool3d(torch.tensor(x), **kw).numpy())
            return False
        _agree(ours, theirs, x, indices=True, traced=traced)
        return True
    _settings_taken(np.random.default_rng(0), draw)


def test_avg_pool3d_random_settings_match_torch(numpy_plans):
    def draw(rng, traced):
        kw, x = _window_settings(rng, 3, dilated=False), _input(rng, 3)
        kw["count_include_pad"] = bool(rng.integers(0, 2))
        if rng.integers(0, 4) == 0:
            kw["divisor_override"] = int(rng.choice([-3, -1, 1, 2, 5]))
        ours = lambda x: gc.avg_pool3d(x, **kw)  # noqa: E731
        theirs = lambda x: TF.avg_pool3d(x, **kw)  # noqa: E731
        if _refused_alike(ours, theirs, x):
            _agree(ours, theirs, x, traced=traced)
            return True
    _settings_taken(np.random.default_rng(1), draw)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool3d_random_sizes_match_torch(kind, numpy_plans):
    rng = np.random.default_rng(2)
    ours, theirs = getattr(gc, f"adaptive_{kind}_pool3d"), getattr(TF, f"adaptive_{kind}_pool3d")
    for i in range(CONFIGS):  # (torch takes every size)
        x = _input(rng, 3)
        size = tuple(None if rng.integers(0, 5) == 0 else int(rng.integers(1, 8))
                     for _ in range(3))
        size = size[0] if rng.integers(0, 4) == 0 and size[0] is not None else size
        if kind == "max":
            _agree(lambda x: ours(x, size, return_indices=True),
                   lambda x: theirs(x, size, return_indices=True), x, indices=True,
                   traced=i % TRACED == 0)
        else:
            _agree(lambda x: ours(x, size), lambda x: theirs(x, size), x,
                   traced=i % TRACED == 0)


def test_max_pool3d_gives_ties_and_indices_to_the_first_maximum_as_torch(monkeypatch):
    """Small integers: every window has tied maxima; torch's gradient and index go to the
    first in (d, h, w) row-major order (a depth slice's maximum first, then the depth)."""
    rng = np.random.default_rng(3)
    for i, kw in enumerate([dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                            dict(kernel_size=(2, 3, 2), stride=(2, 1, 3), ceil_mode=True),
                            dict(kernel_size=2, stride=1, dilation=(2, 1, 2))]):
        x = rng.integers(-2, 2, size=(2, 2, 5, 6, 5)).astype(np.float64)
        x[0, 0, :2, :3] = -np.inf  # windows of -inf throughout: to x, never the padding
        # the first setting on numba's kernels, compiled and under gc.vmap too; the others
        # on numpy plans (see the module's docstring)
        if i:
            monkeypatch.setenv("GRAPHC_JIT", "0")
        _agree(lambda x: gc.max_pool3d(x, **kw, return_indices=True),
               lambda x: TF.max_pool3d(x, **kw, return_indices=True), x, indices=True,
               traced=i in (0, 3))
        _agree(lambda x: gc.adaptive_max_pool3d(x, (2, 4, 3), return_indices=True),
               lambda x: TF.adaptive_max_pool3d(x, (2, 4, 3), return_indices=True), x,
               indices=True, traced=i == 0)


@pytest.mark.parametrize("shape, kw", [
    # windows wholly in the height's padding (dilation 2 steps over x's one row)
    ((2, 1, 4, 1, 7), dict(kernel_size=(1, 2, 1), stride=(1, 2, 2), padding=(0, 1, 0),
                           dilation=(1, 2, 3))),
    # wholly in the depth's padding, the planes inside x
    ((2, 1, 1, 3, 4), dict(kernel_size=(2, 1, 1), stride=1, padding=(1, 0, 0),
                           dilation=(2, 1, 1)))])
def test_a_window_wholly_in_the_padding_has_max_pool2ds_index_for_one(shape, kw):
    """Such a window is -inf, as torch's, and its index is 2**40, the one max_pool2d gives
    (and documents) for one, where torch's names a place it never read (max_pool3d gave
    2**40 + d * H * W + w, or along the depth a place inside x); every other window's index
    is torch's."""
    marker = 2 ** 40
    x = np.random.default_rng(4).normal(size=shape)
    t_out, t_idx = TF.max_pool3d(torch.tensor(x), **kw, return_indices=True)
    s = kw["stride"] if isinstance(kw["stride"], tuple) else (kw["stride"],) * 3
    shape = x.shape[-3:]
    padding_alone = np.zeros(t_out.shape[-3:], bool)  # per output cell
    for axis, (n, k, st, p, d) in enumerate(zip(shape, kw["kernel_size"], s, kw["padding"],
                                                kw["dilation"])):
        alone = [not any(0 <= o * st - p + j * d < n for j in range(k))
                 for o in range(t_out.shape[2 + axis])]
        padding_alone |= np.expand_dims(alone, tuple(a for a in range(3) if a != axis))
    assert padding_alone.any()
    want = np.where(padding_alone, marker, t_idx.numpy())
    for pool in (lambda x: gc.max_pool3d(x, **kw, return_indices=True),
                 gc.compile(lambda x: gc.max_pool3d(x, **kw, return_indices=True))):
        out, idx = pool(x)
        np.testing.assert_array_equal(np.asarray(out), t_out.numpy())
        np.testing.assert_array_equal(np.asarray(idx), want)
    # max_pool2d's index for such a window, whichever of its axes the padding covers
    plane = np.random.default_rng(5).normal(size=(2, 1, 1, 7))
    for k, st, p, d in (((2, 1), (2, 2), (1, 0), (2, 3)), ((1, 2), 2, (0, 1), (1, 8))):
        out, idx = gc.max_pool2d(plane, k, st, p, d, return_indices=True)
        t_out, t_idx = TF.max_pool2d(torch.tensor(plane), k, st, p, d, return_indices=True)
        np.testing.assert_array_equal(np.asarray(out), t_out.numpy())
        alone = np.isneginf(t_out.numpy())
        assert alone.any()
        np.testing.assert_array_equal(np.asarray(idx), np.where(alone, marker, t_idx.numpy()))


FINITE = [lambda x: gc.max_pool3d(x, (2, 3, 2), (1, 2, 1), 1, (2, 1, 1), True),
          lambda x: gc.avg_pool3d(x, (3, 2, 2), 2, (1, 1, 0), True, False),
          lambda x: gc.avg_pool3d(x, 2, 1, 1, divisor_override=3),
          lambda x: gc.adaptive_avg_pool3d(x, (3, 4, 2)),
          lambda x: gc.adaptive_max_pool3d(x, (3, None, 2)),
          lambda x: gc.lp_pool3d(gc.abs(x), 1.5, 2, 1),
          lambda x: gc.lp_pool2d(x[:, :, 0], 2, (2, 3), 2, True),
          lambda x: gc.lp_pool1d(gc.abs(x[:, :, 0, 0]), 3.5, 3, 2, True),
          lambda x: gc.unfold(x[:, :, 0], (2, 3), (1, 2), 1, (2, 1)),
          lambda x: gc.fold(gc.reshape(x, (2, 8, 30)), (5, 6), 2, padding=(1, 0))]


@pytest.mark.parametrize("k", range(len(FINITE)))
def test_finite_differences(k):
    f = FINITE[k]
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, 2, 5, 6, 4))
    for _ in range(4):
        index = tuple(int(rng.integers(0, n)) for n in x.shape)
        numeric, u = _finite_differences(f, x, index)
        grad = gc.grad(lambda x: gc.sum(f(x) * u))(x)
        np.testing.assert_allclose(np.asarray(grad)[index], numeric, rtol=1e-7, atol=1e-8)


# ---- power-average pools ----------------------------------------------------------------------
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_lp_pool_random_settings_match_torch(spatial, numpy_plans):
    ours, theirs = getattr(gc, f"lp_pool{spatial}d"), getattr(TF, f"lp_pool{spatial}d")

    def draw(rng, traced):
        kw = _window_settings(rng, spatial, dilated=False)
        del kw["padding"]
        if spatial == 1:  # (torch's lp_pool1d takes ints only: it multiplies by kernel_size)
            kw = {k: v[0] if isinstance(v, tuple) else v for k, v in kw.items()}
        if rng.integers(0, 4) == 0:
            kw["stride"] = None
        p = float(rng.choice([1, 2, 3, 1.5, 0.5, 4.25, math.inf, -math.inf]))
        x = _input(rng, spatial)
        if math.isfinite(p) and p != int(p):  # of a negative number: NaN (torch's too)
            x = np.abs(x) + 0.1
        if _refused_alike(lambda x: ours(x, p, **kw), lambda x: theirs(x, p, **kw), x):
            _agree(lambda x: ours(x, p, **kw), lambda x: theirs(x, p, **kw), x, traced=traced)
            return True
    _settings_taken(np.random.default_rng(4 + spatial), draw)


def test_lp_pool_of_a_zero_window_has_torchs_zero_gradient_and_nan_of_negatives():
    x = np.array([[[0.0, 0.0, 1.0, 2.0, -1.0, -3.0]]])
    for p in (2.0, 1.0, 3.0):
        _agree(lambda x: gc.lp_pool1d(x, p, 2), lambda x: TF.lp_pool1d(x, p, 2), x,
               vmap=False)
    # a fractional power of a negative window's sum: NaN, as torch's
    want = TF.lp_pool1d(torch.tensor(x), 1.5, 2).numpy()
    np.testing.assert_array_equal(np.asarray(gc.lp_pool1d(x, 1.5, 2)), want)
    assert np.isnan(want).any()


# ---- sliding blocks ---------------------------------------------------------------------------
def _block_settings(rng):
    return dict(kernel_size=tuple(int(v) for v in rng.integers(1, 4, 2)),
                dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
                padding=tuple(int(v) for v in rng.integers(0, 3, 2)),
                stride=tuple(int(v) for v in rng.integers(1, 4, 2)))


def test_unfold_random_settings_match_torch(numpy_plans):
    def draw(rng, traced):
        kw, x = _block_settings(rng), _input(rng, 2)
        if rng.integers(0, 3) == 0:  # an int for both axes
            kw = {k: v[0] for k, v in kw.items()}
        ours = lambda x: gc.unfold(x, **kw)  # noqa: E731
        theirs = lambda x: TF.unfold(x, **kw)  # noqa: E731
        if _refused_alike(ours, theirs, x):
            _agree(ours, theirs, x, traced=traced)
            return True
    _settings_taken(np.random.default_rng(8), draw)


def test_fold_random_settings_match_torch(numpy_plans):
    def draw(rng, traced):
        kw = _block_settings(rng)
        size = tuple(int(v) for v in rng.integers(1, 8, 2))
        blocks = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in zip(
            size, kw["kernel_size"], kw["dilation"], kw["padding"], kw["stride"])]
        if min(blocks) < 1:  # no block: torch refuses it, and so does graphc
            x = np.zeros((1, math.prod(kw["kernel_size"]), 1))
            assert not _refused_alike(lambda x: gc.fold(x, size, **kw),
                                      lambda x: TF.fold(x, size, **kw), x)
            return False
        channels = int(rng.integers(1, 3))
        shape = (channels * math.prod(kw["kernel_size"]), blocks[0] * blocks[1])
        x = rng.normal(size=shape if rng.integers(0, 3) == 0 else
                       (int(rng.integers(1, 3)),) + shape)
        _agree(lambda x: gc.fold(x, size, **kw), lambda x: TF.fold(x, size, **kw), x,
               traced=traced)
        return True
    _settings_taken(np.random.default_rng(9), draw)


def test_fold_sums_what_unfold_cut():
    """fold(unfold(x)) is x times how many blocks hold each pixel, as torch's."""
    x = np.random.default_rng(10).normal(size=(2, 3, 7, 6))
    kw = dict(kernel_size=3, dilation=(1, 2), padding=1, stride=(2, 1))
    got = gc.fold(gc.unfold(x, **kw), (7, 6), **kw)
    counts = gc.fold(gc.unfold(np.ones_like(x), **kw), (7, 6), **kw)
    np.testing.assert_allclose(np.asarray(got), x * np.asarray(counts), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(counts),
                               TF.fold(TF.unfold(torch.ones(2, 3, 7, 6, dtype=torch.float64),
                                                 **kw), (7, 6), **kw).numpy())


def test_symbolic_batch_sizes_take_one_plan():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 2, 5, 6, 4))
    cases = [(lambda x: gc.max_pool3d(x, 2, 1, 1), lambda x: TF.max_pool3d(x, 2, 1, 1)),
             (lambda x: gc.avg_pool3d(x, (2, 3, 2), ceil_mode=True),
              lambda x: TF.avg_pool3d(x, (2, 3, 2), ceil_mode=True)),
             (lambda x: gc.lp_pool3d(x, 2, 2), lambda x: TF.lp_pool3d(x, 2, 2)),
             (lambda x: gc.fold(gc.unfold(x[:, :, 0], 2), (6, 4), 2),
              lambda x: TF.fold(TF.unfold(x[:, :, 0], 2), (6, 4), 2))]
    for ours, theirs in cases:
        f = gc.compile(ours, polymorphic_shapes=["(b, 2, 5, 6, 4)"])
        for n in (3, 1):
            np.testing.assert_allclose(np.asarray(f(x[:n])), theirs(torch.tensor(x[:n])).numpy(),
                                       rtol=1e-12)
        assert f.recompiles == []


def test_a_symbolic_spatial_size_takes_one_plan_where_the_output_size_is_one_polynomial():
    """2*h by stride 2 serves every h, as the 2-d pools; a depth d by stride 2 has no one
    output size, refused in one line naming the 3-d pool and the depth."""
    spec = ["(b, 2, 4, 2*h, 2*w)"]
    rng = np.random.default_rng(14)
    for ours, theirs in [(lambda x: gc.max_pool3d(x, 2), lambda x: TF.max_pool3d(x, 2)),
                         (lambda x: gc.avg_pool3d(x, (2, 2, 2), padding=1),
                          lambda x: TF.avg_pool3d(x, (2, 2, 2), padding=1))]:
        f = gc.compile(ours, polymorphic_shapes=spec)
        for shape in [(2, 2, 4, 6, 6), (1, 2, 4, 4, 8)]:
            x = rng.normal(size=shape)
            np.testing.assert_allclose(np.asarray(f(x)), theirs(torch.tensor(x)).numpy(),
                                       rtol=1e-12)
        assert f.recompiles == []
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.max_pool3d(x, 2),
                           polymorphic_shapes=["(b, 2, d, 6, 6)"])(np.zeros((1, 2, 4, 6, 6))),
        "max_pool3d: no output size for every value of the symbolic depth d (kernel 2, "
        "stride 2", FILE)


# ---- layers -----------------------------------------------------------------------------------
LAYERS = ["MaxPool3d(2, 1, 1)", "MaxPool3d((2, 3, 2), return_indices=True, ceil_mode=True)",
          "AvgPool3d(2, padding=1, count_include_pad=False)",
          "AvgPool3d((3, 2, 2), divisor_override=4)", "AdaptiveAvgPool3d((2, None, 3))",
          "AdaptiveMaxPool3d(3, return_indices=True)", "LPPool1d(2, 3, 2)",
          "LPPool2d(1.5, (2, 3))", "LPPool3d(3, 2, ceil_mode=True)", "Unfold(2, 1, 1, 2)",
          "Fold((5, 6), (2, 3), padding=1)"]


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_match_torchs(layer):
    ours, theirs = eval(f"gc.nn.{layer}"), eval(f"torch.nn.{layer}")
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(12)
    x = np.abs(rng.normal(size=(2, 2, 5, 6, 4))) + 0.1
    if "1d" in layer:
        x = x[:, :, 0, 0]
    elif "2d" in layer or layer.startswith("Unfold"):
        x = x[:, :, 0]
    elif layer.startswith("Fold"):
        x = rng.normal(size=(2, 12, 36))
    want = theirs(torch.tensor(x))
    f = gc.compile(lambda x: ours(x))
    for got in (ours(x), f(x)):
        for g, w in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
            np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-12)


def test_layer_settings_are_read_at_every_call():
    x = np.random.default_rng(13).normal(size=(1, 2, 6, 6, 6))
    layer = gc.nn.MaxPool3d(2)
    f = gc.compile(lambda x: layer(x))
    assert f(x).shape == (1, 2, 3, 3, 3)
    layer.kernel_size = 3
    np.testing.assert_allclose(np.asarray(f(x)), TF.max_pool3d(torch.tensor(x), 3).numpy())


# ---- bad settings -----------------------------------------------------------------------------
def test_bad_settings_give_one_line_naming_the_function_and_the_setting():
    x = np.zeros((2, 3, 4, 5, 6))
    x2 = x[:, :, 0]
    cases = [
        (lambda: gc.max_pool3d(x[0, 0], 2), "max_pool3d: x must be 5-d (N, C, D, H, W) or 4-d"),
        (lambda: gc.max_pool3d(x, (2, 2)), "max_pool3d: kernel_size must be an int or a tuple "
                                           "of 3 ints, got (2, 2)"),
        (lambda: gc.max_pool3d(x, 2, stride=0), "max_pool3d: stride must be >= 1, got (0, 0, 0)"),
        (lambda: gc.max_pool3d(x, 2, padding=2), "max_pool3d: padding (2, 2, 2) must be at most "
                                                 "half the kernel size (2, 2, 2)"),
        (lambda: gc.max_pool3d(x, 2, dilation=(1, 0, 1)), "max_pool3d: dilation must be >= 1"),
        (lambda: gc.max_pool3d(x, 5), "max_pool3d: the kernel 5 (dilated) is longer than the "
                                      "padded depth 4"),
        (lambda: gc.max_pool3d(x, 2, return_indices=1), "max_pool3d: return_indices must be "
                                                        "True or False"),
        (lambda: gc.max_pool3d(x, 2, ceil_mode="yes"), "max_pool3d: ceil_mode must be True or "
                                                       "False"),
        (lambda: gc.avg_pool3d(x, 2, divisor_override=0), "avg_pool3d: divisor_override must "
                                                          "be a nonzero int or None, got 0"),
        (lambda: gc.avg_pool3d(x, 2, count_include_pad=None), "avg_pool3d: count_include_pad "
                                                              "must be True or False"),
        (lambda: gc.avg_pool3d(x.astype(np.int64), 2), "avg_pool3d of an int64 value"),
        (lambda: gc.avg_pool3d(x, (1, 2, 7)), "avg_pool3d: the kernel 7 (dilated) is longer "
                                              "than the padded width 6"),
        (lambda: gc.avg_pool3d(x, (1, 2, 7), padding=(0, 0, 3)),
         "avg_pool3d: x's width 6 is smaller than the kernel size 7, which torch refuses"),
        (lambda: gc.adaptive_avg_pool3d(x, (1, 2)), "adaptive_avg_pool3d: output_size must be "
                                                    "an int >= 0 or a tuple of 3 such ints"),
        (lambda: gc.adaptive_max_pool3d(x[0, 0], 2), "adaptive_max_pool3d: x must be 5-d "
                                                "(N, C, D, H, W) or 4-d"),
        (lambda: gc.lp_pool2d(x2, 0, 2), "lp_pool2d: norm_type must be a nonzero number, got 0"),
        (lambda: gc.lp_pool1d(x2[:, 0], "2", 2), "lp_pool1d: norm_type must be a nonzero"),
        (lambda: gc.lp_pool2d(x2, 2, (2, 0)), "lp_pool2d: kernel_size must be >= 1, got (2, 0)"),
        (lambda: gc.lp_pool1d(x2[:, 0], 2, 2, ceil_mode=2), "lp_pool1d: ceil_mode must be True"),
        (lambda: gc.unfold(x, 2), "unfold: x must be 4-d (N, C, H, W) or 3-d (C, H, W)"),
        (lambda: gc.unfold(x2, 2, dilation=0), "unfold: dilation must be >= 1, got (0, 0)"),
        (lambda: gc.unfold(x2, (2, 7)), "unfold: the kernel (2, 7) (dilated) is larger than "
                                        "the padded input (5, 6)"),
        (lambda: gc.unfold(x2.astype(np.int32), 2), "unfold of an int32 value"),
        (lambda: gc.fold(np.zeros((2, 10, 20)), (5, 6), 2), "fold: x's 10 rows must divide by "
                                                            "the kernel's 4 taps"),
        (lambda: gc.fold(np.zeros((2, 12, 21)), (5, 6), 2), "fold: x has 21 blocks, "
                                                            "output_size (5, 6) with these "
                                                            "settings has 4 * 5 = 20"),
        (lambda: gc.fold(np.zeros((2, 12, 20)), (0, 6), 2), "fold: output_size (0, 6) with "
                                                            "kernel_size (2, 2)"),
        (lambda: gc.fold(np.zeros((2, 12, 20)), 5.5, 2), "fold: output_size must be an int or "
                                                         "a pair of ints, got 5.5"),
        (lambda: gc.fold(np.zeros((12, 20)), (5, 6), 2, stride=-1), "fold: stride must be >= "
                                                                    "1, got (-1, -1)"),
        (lambda: gc.nn.Fold((5, 6), 2, padding=-1)(np.zeros((2, 12, 20))),
         "fold: padding must be >= 0, got (-1, -1)"),
        (lambda: gc.nn.LPPool2d(0.0, 2)(x2), "lp_pool2d: norm_type must be a nonzero number"),
    ]
    for call, message in cases:
        assert_one_line_error(call, message, FILE)


def test_pool1d_messages_are_kept_and_ceil_mode_is_checked_under_the_1d_name():
    x = np.zeros((2, 3, 4))
    assert_one_line_error(lambda: gc.max_pool1d(x, 6),
                          "max_pool1d: the kernel 6 (dilated) is longer than the padded input 4",
                          FILE)
    assert_one_line_error(lambda: gc.avg_pool1d(x, 2, padding=2),
                          "avg_pool1d: padding 2 must be at most half the kernel size 2", FILE)
    # the 2-d pool's line named max_pool2d
    assert_one_line_error(lambda: gc.max_pool1d(x, 2, ceil_mode="yes"),
                          "max_pool1d: ceil_mode must be True or False", FILE)
