"""graphc's other CNN functions and layers (ir/ops/conv_extra.py, graphc/conv_layers.py)
against torch in float64: values and gradients eagerly and compiled, batched and unbatched,
finite differences, torch state dicts and the one-line errors of bad settings."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
FILE = "test_conv_layers.py"


def _check(ours, theirs, inputs, compiled=True, rtol=1e-10):
    """ours(*inputs) against theirs(*torch tensors): the value, and the gradients of a
    random weighting of it for every float input, eagerly and (compiled) through gc.compile."""
    tensors = [torch.tensor(v, requires_grad=True) for v in inputs]
    t_out = theirs(*tensors)
    u = np.random.default_rng(99).normal(size=tuple(t_out.shape))
    (t_out * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(ours(*inputs), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    loss = gc.grad(lambda *a: gc.sum(ours(*a) * u), argnums=tuple(range(len(inputs))))
    for run in ([loss, gc.compile(loss)] if compiled else [loss]):
        for g, t in zip(run(*inputs), tensors):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=1e-11)
    return t_out


def _finite_differences(f, x, index, eps=1e-6):
    """d sum(f(x) * u) / d x[index] by central differences (u a fixed random weighting)."""
    u = np.random.default_rng(7).normal(size=np.shape(f(x)))
    up, down = x.copy(), x.copy()
    up[index] += eps
    down[index] -= eps
    return (np.sum(np.asarray(f(up)) * u) - np.sum(np.asarray(f(down)) * u)) / (2 * eps), u


# ---- conv_transpose ---------------------------------------------------------------------------
TRANSPOSE_2D = [dict(), dict(stride=2, padding=1), dict(stride=2, padding=1, output_padding=1),
                dict(stride=(2, 3), padding=(1, 2), output_padding=(1, 2), dilation=(1, 2)),
                dict(groups=2, stride=3, dilation=2, padding=4, output_padding=2),
                dict(stride=1, output_padding=1, dilation=2, groups=4),
                dict(padding=(2, 0), dilation=(3, 1)), dict(stride=4, padding=3)]


@pytest.mark.parametrize("k", range(len(TRANSPOSE_2D)))
@pytest.mark.parametrize("batched", [True, False])
def test_conv_transpose2d_matches_torch(k, batched):
    kw = TRANSPOSE_2D[k]
    rng = np.random.default_rng(k)
    groups = kw.get("groups", 1)
    x = rng.normal(size=(2, 4, 5, 6) if batched else (4, 5, 6))
    w, b = rng.normal(size=(4, 6 // groups if groups < 4 else 2, 3, 4)), None
    b = rng.normal(size=w.shape[1] * groups)
    _check(lambda x, w, b: gc.conv_transpose2d(x, w, b, **kw),
           lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw), [x, w, b])


@pytest.mark.parametrize("kw", [dict(), dict(stride=3, padding=2, output_padding=2),
                                dict(groups=2, dilation=3, padding=1),
                                dict(stride=(2,), output_padding=(1,), padding=(1,))])
@pytest.mark.parametrize("batched", [True, False])
def test_conv_transpose1d_matches_torch(kw, batched):
    rng = np.random.default_rng(len(kw))
    x = rng.normal(size=(3, 4, 7) if batched else (4, 7))
    w = rng.normal(size=(4, 3, 5))
    b = rng.normal(size=3 * kw.get("groups", 1))
    _check(lambda x, w, b: gc.conv_transpose1d(x, w, b, **kw),
           lambda x, w, b: TF.conv_transpose1d(x, w, b, **kw), [x, w, b])


def test_conv_transpose2d_random_settings_match_torch():
    """Phases without taps, taps reading outside x, cut and padded inputs: 80 random
    settings (stride, padding, output_padding, dilation, groups, kernel and input sizes)."""
    rng = np.random.default_rng(11)
    for _ in range(80):
        groups, out_g = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        k, s, d = (tuple(int(v) for v in rng.integers(1, hi, 2)) for hi in (6, 5, 4))
        kw = dict(stride=s, dilation=d, groups=groups,
                  padding=tuple(int(rng.integers(0, d[i] * (k[i] - 1) + 2)) for i in range(2)),
                  output_padding=tuple(int(rng.integers(0, max(s[i], d[i])))
                                       for i in range(2)))
        x = rng.normal(size=(2, 2 * groups) + tuple(int(v) for v in rng.integers(1, 7, 2)))
        w, b = rng.normal(size=(2 * groups, out_g) + k), rng.normal(size=out_g * groups)
        try:
            want = TF.conv_transpose2d(*map(torch.tensor, (x, w, b)), **kw).numpy()
        except RuntimeError:  # an empty output: graphc refuses it too
            with pytest.raises(gc.GraphcError, match="is empty"):
                gc.conv_transpose2d(x, w, b, **kw)
            continue
        np.testing.assert_allclose(gc.conv_transpose2d(x, w, b, **kw), want, rtol=1e-11,
                                   atol=1e-11, err_msg=str(kw))


def test_conv_transpose2d_without_bias_and_padding_past_the_kernel():
    # padding so wide that whole taps land in the cropped border (they are skipped)
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(2, 3, 5, 5))
    _check(lambda x, w: gc.conv_transpose2d(x, w, stride=2, padding=4),
           lambda x, w: TF.conv_transpose2d(x, w, stride=2, padding=4), [x, w])


def test_conv_transpose2d_finite_differences():
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(2, 4, 3, 4)), rng.normal(size=(4, 1, 3, 2)), rng.normal(size=2)
    settings = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(2, 1))
    for arg, value in enumerate((x, w, b)):
        def f(v, arg=arg):
            args = [x, w, b]
            args[arg] = v
            return gc.conv_transpose2d(*args, **settings)
        index = tuple(rng.integers(0, n) for n in value.shape)
        numeric, u = _finite_differences(f, value, index)
        grad = gc.grad(lambda v: gc.sum(f(v) * u))(value)
        np.testing.assert_allclose(grad[index], numeric, rtol=1e-7, atol=1e-8)


def test_conv_transpose2d_float32_symbolic_batch_and_vmap():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 8, 6, 6)).astype(np.float32)
    w = rng.normal(size=(8, 4, 4, 4)).astype(np.float32)
    want = TF.conv_transpose2d(torch.tensor(x), torch.tensor(w), stride=2, padding=1).numpy()
    f = gc.compile(lambda x: gc.conv_transpose2d(x, w, stride=2, padding=1),
                   polymorphic_shapes=["(b, 8, 6, 6)"])
    for n in (3, 1):
        np.testing.assert_allclose(f(x[:n]), want[:n], rtol=1e-5, atol=1e-5)
    per_image = gc.vmap(lambda x: gc.conv_transpose2d(x, w, stride=2, padding=1))(x)
    np.testing.assert_allclose(per_image, want, rtol=1e-5, atol=1e-5)


def test_conv_transpose_of_an_empty_spatial_axis_is_refused_as_torch_an_empty_batch_not():
    # torch: "Only zero batch or zero channel inputs are supported"; graphc gave the bias
    # alone, of the output size formula's shape ((1, 2, 2, 6) here)
    rng = np.random.default_rng(2)
    w, w1, b = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(3, 2, 3)), rng.normal(size=2)
    for f, tf, shape, weight, what in [
            (gc.conv_transpose2d, TF.conv_transpose2d, (1, 3, 0, 4), w, "spatial axis"),
            (gc.conv_transpose2d, TF.conv_transpose2d, (3, 4, 0), w, "spatial axis"),
            (gc.conv_transpose1d, TF.conv_transpose1d, (2, 3, 0), w1, "length")]:
        x = np.zeros(shape)
        with pytest.raises(RuntimeError, match="Only zero batch"):
            tf(torch.tensor(x), torch.tensor(weight), torch.tensor(b))
        assert_one_line_error(lambda: f(x, weight, b),
                              f"{f.__name__}: x has an empty {what} (shape {shape}); only an "
                              "empty batch is taken, as in PyTorch", FILE)
    x = np.zeros((0, 3, 4, 5))  # an empty batch: an empty result, as torch's
    got = gc.conv_transpose2d(x, w, b, stride=2)
    want = TF.conv_transpose2d(*map(torch.tensor, (x, w, b)), stride=2)
    assert np.shape(got) == tuple(want.shape) == (0, 2, 9, 11)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, padding=1, dilation=(1, 2), groups=2),
                                dict(stride=(1, 2), padding=(0, 1))])
def test_conv_transpose_of_a_symbolic_height_and_width_matches_torch_at_every_size(kw):
    # "needs a known height and width" before, at stride 1 too: the output size is affine in
    # n. stride 3, padding 1: at n = 1 one phase reads no row of x (cut whole)
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=3 * kw.get("groups", 1))
    spec = [("b", "_", "h", "w"), None, None]
    f = gc.compile(lambda x, w, b: gc.conv_transpose2d(x, w, b, **kw), polymorphic_shapes=spec)
    grad = gc.compile(gc.grad(lambda x, w, b: gc.sum(gc.sin(gc.conv_transpose2d(x, w, b, **kw))),
                              argnums=(0, 1)), polymorphic_shapes=spec)
    for shape in [(2, 4, 5, 3), (1, 4, 1, 7), (3, 4, 4, 4)]:
        x = rng.normal(size=shape)
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        want = TF.conv_transpose2d(tx, tw, torch.tensor(b), **kw)
        torch.sin(want).sum().backward()
        np.testing.assert_allclose(f(x, w, b), want.detach().numpy(), rtol=1e-12, atol=1e-12)
        for g, t in zip(grad(x, w, b), (tx, tw)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-11)
    assert f.recompiles == [] and grad.recompiles == []
    # the 1-d form over a symbolic length
    w1 = w[..., 0]
    f1 = gc.compile(lambda x: gc.conv_transpose1d(x, w1, **kw_1d(kw)),
                    polymorphic_shapes=[("b", "_", "n")])
    for length in (1, 6):
        x = rng.normal(size=(2, 4, length))
        np.testing.assert_allclose(f1(x), TF.conv_transpose1d(
            torch.tensor(x), torch.tensor(w1), **kw_1d(kw)).numpy(), rtol=1e-12, atol=1e-12)


def kw_1d(kw):
    """conv_transpose2d's settings for the 1-d form: each pair's last (the width's)."""
    return {k: v[-1] if isinstance(v, tuple) else v for k, v in kw.items()}


def test_conv_transpose_of_a_symbolic_size_refuses_what_has_no_one_plan_in_one_line():
    w = np.zeros((4, 3, 3, 3))
    spec = [("b", "_", "h", "w")]
    x = np.zeros((2, 4, 5, 5))
    # padding 2: the output h-2 is empty at h = 1 and 2, where torch refuses
    with pytest.raises(RuntimeError):
        TF.conv_transpose2d(torch.tensor(x[:, :, :1, :1]), torch.tensor(w), padding=2)
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.conv_transpose2d(x, w, padding=2),
                           polymorphic_shapes=spec)(x),
        "conv_transpose2d: the output size (h-2, w-2) is empty for the least values of a "
        "symbolic size (input (h, w), kernel (3, 3), padding (2, 2): whether h-3 >= 0 "
        "depends on the value of h); declare the size concrete", FILE)
    layer = gc.nn.ConvTranspose2d(4, 3, 3, stride=2, dtype="float64")
    assert_one_line_error(
        lambda: gc.compile(lambda x: layer(x, output_size=(12, 12)), polymorphic_shapes=spec)(x),
        "ConvTranspose2d: output_size needs a known input size, got the symbolic size (h, w); "
        "leave output_size out or declare the size concrete", FILE)


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1),
                                dict(stride=(1, 3), groups=2, dilation=2, bias=False)])
def test_conv_transpose2d_layer_matches_torch(kw):
    theirs = torch.nn.ConvTranspose2d(4, 6, (3, 2), **kw).double()
    ours = gc.nn.ConvTranspose2d(4, 6, (3, 2), **kw, dtype="float64")
    assert ours.weight.data.shape == tuple(theirs.weight.shape)
    ours.load_torch_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 7))
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    t_out.square().sum().backward()
    np.testing.assert_allclose(ours(x), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g_params, g_x = gc.compile(gc.grad(lambda p, x: gc.sum(gc.square(ours.apply(p, x))),
                                       argnums=(0, 1)))(ours.params(), x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)
    # torch's way: the eager tape's backward() fills each Parameter's .grad
    eager_x = gc.tensor(x, requires_grad=True)
    gc.sum(gc.square(ours(eager_x))).backward()
    np.testing.assert_allclose(eager_x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, dict(theirs.named_parameters())[name].grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_conv_transpose_layers_output_size_and_settings_are_torchs():
    theirs = torch.nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1).double()
    ours = gc.nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1, dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    for size in [(10, 13), (12, 15), (2, 2, 11, 14)]:
        np.testing.assert_allclose(ours(x, output_size=size),
                                   theirs(torch.tensor(x), output_size=size).detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours(x[0], output_size=(2, 11, 14)),
                               theirs(torch.tensor(x[0]), output_size=(2, 11, 14))
                               .detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gc.compile(lambda x: ours(x, output_size=(12, 15)))(x),
                               theirs(torch.tensor(x), output_size=(12, 15)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    f = gc.compile(lambda x: ours(x))
    f(x)
    ours.output_padding = theirs.output_padding = 2  # a setting changed after compiling
    np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    one, its = gc.nn.ConvTranspose1d(3, 4, 5, stride=2, groups=1, dtype="float64"), \
        torch.nn.ConvTranspose1d(3, 4, 5, stride=2).double()
    one.load_torch_state_dict(its.state_dict())
    np.testing.assert_allclose(one(x[:, :, 0], output_size=[14]),
                               its(torch.tensor(x[:, :, 0]), output_size=[14]).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_conv_transpose_layer_initialisation_is_torchs():
    # a seeded rng: the bias has 6 values, whose largest is under 0.7 of the bound in one
    # draw of 8 (0.7 ** 6), and the unseeded default's draw depended on the tests before
    layer = gc.nn.ConvTranspose2d(8, 6, 3, groups=2, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(6 // 2 * 9)  # torch's fan_in: weight.shape[1] * kernel area
    assert layer.weight.data.shape == (8, 3, 3, 3) and layer.bias.data.shape == (6,)
    assert layer.weight.data.dtype == np.float32
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > bound * 0.7
    assert "ConvTranspose2d" in dir(gc.nn) and gc.nn.ConvTranspose1d(2, 2, 3).weight.shape \
        == (2, 2, 3)


def test_bad_conv_transpose_settings_give_one_line():
    x, w = np.zeros((2, 4, 5, 5)), np.zeros((4, 3, 3, 3))
    ct = gc.conv_transpose2d
    assert_one_line_error(lambda: ct(x, w, stride=2, output_padding=2),
                          "output_padding must be smaller than either stride or dilation", FILE)
    assert_one_line_error(lambda: ct(x, w, output_padding=1),
                          "output_padding must be smaller than either stride or dilation", FILE)
    assert_one_line_error(lambda: ct(x, w, padding=-1), "padding must be >= 0", FILE)
    assert_one_line_error(lambda: ct(x, w, stride=0), "stride must be >= 1", FILE)
    assert_one_line_error(lambda: ct(x, w, stride=(1, 2, 3)),
                          "stride must be an int or a tuple of 2 ints", FILE)
    assert_one_line_error(lambda: ct(x, w, groups=3), "groups=3 must divide weight's 4", FILE)
    assert_one_line_error(lambda: ct(x[:, :3], w), "x has 3 channels, weight (4, 3, 3, 3)",
                          FILE)
    assert_one_line_error(lambda: ct(x, w, np.zeros(4)), "bias must have shape (3,)", FILE)
    assert_one_line_error(lambda: ct(x, w[0]), "weight must be 4-d", FILE)
    assert_one_line_error(lambda: ct(x, w, padding=(4, 0)), "the output size (-1, 7) is empty",
                          FILE)
    assert_one_line_error(lambda: ct(x, w.astype(np.float32)),
                          "x is float64 and weight float32", FILE)
    assert_one_line_error(lambda: gc.conv_transpose1d(x, w), "x must be 3-d (N, C, L)", FILE)
    assert_one_line_error(lambda: gc.nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"),
                          "only padding_mode 'zeros'", FILE)
    assert_one_line_error(lambda: gc.nn.ConvTranspose2d(4, 6, 3, groups=4),
                          "must divide by groups 4", FILE)
    layer = gc.nn.ConvTranspose2d(4, 3, 3, stride=2)
    layer.padding_mode = "reflect"
    assert_one_line_error(lambda: layer(x.astype(np.float32)), "only padding_mode 'zeros'", FILE)
    layer.padding_mode = "zeros"
    assert_one_line_error(lambda: layer(x.astype(np.float32), output_size=(13, 11)),
                          "output_size (13, 11) is not reachable: each size must be from 11 "
                          "to 12", FILE)
    assert_one_line_error(lambda: layer(x.astype(np.float32), output_size=(1, 11, 11)),
                          "output_size must be 2 ints (or 4, x's shape)", FILE)



def test_a_conv_transpose_of_an_empty_kernel_is_refused_as_torchs():
    # a weight with a zero-size kernel axis gave a result of the bias alone ((2, 3, 5, 7)
    # here), where torch's conv_transpose refuses it, as conv2d does
    torch = pytest.importorskip("torch")
    x = np.zeros((2, 4, 6, 5))
    for w, shown in ((np.zeros((4, 3, 0, 3)), "(0, 3)"), (np.zeros((4, 3, 3, 0)), "(3, 0)")):
        assert_one_line_error(lambda: gc.conv_transpose2d(x, w),
                              f"conv_transpose2d: kernel size must be >= 1, got {shown}", FILE)
        with pytest.raises(RuntimeError, match="kernel size should be greater than zero"):
            torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w))
    assert_one_line_error(lambda: gc.conv_transpose1d(x[:, :, 0], np.zeros((4, 3, 0))),
                          "conv_transpose1d: kernel size must be >= 1, got 0", FILE)

def test_a_conv_transpose_of_an_empty_weight_is_refused_as_torchs():
    # zero input channels gave a result of the bias alone ((1, 2, 5, 5) here), zero output
    # channels an empty one, where torch refuses either weight
    x, b = np.zeros((1, 0, 3, 3)), np.ones(2)
    for f, tf, x, w, groups in [
            (gc.conv_transpose2d, TF.conv_transpose2d, x, np.zeros((0, 2, 3, 3)), 1),
            (gc.conv_transpose1d, TF.conv_transpose1d, x[..., 0], np.zeros((0, 2, 3)), 1),
            (gc.conv_transpose2d, TF.conv_transpose2d, x, np.zeros((0, 1, 3, 3)), 2),
            (gc.conv_transpose2d, TF.conv_transpose2d, np.zeros((1, 2, 3, 3)),
             np.zeros((2, 0, 3, 3)), 1)]:
        bias = b if w.shape[1] else None
        with pytest.raises(RuntimeError, match="expected weight to be at least|non-empty"):
            tf(torch.tensor(x), torch.tensor(w), None if bias is None else torch.tensor(bias),
               groups=groups)
        assert_one_line_error(lambda: f(x, w, bias, groups=groups),
                              f"{f.__name__}: weight {w.shape} is empty: it needs at least "
                              f"groups={groups} input channels and one output channel per "
                              "group, as in PyTorch", FILE)


# ---- adaptive pooling -------------------------------------------------------------------------
ADAPTIVE_2D = [1, (1, 1), (3, 4), (None, 3), (7, 5), (9, 13), (2, None), (4, 1), 5, (14, 20)]


@pytest.mark.parametrize("size", ADAPTIVE_2D)
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("batched", [True, False])
def test_adaptive_pool2d_matches_torch(size, kind, batched):
    x = np.random.default_rng(5).normal(size=(2, 3, 7, 10) if batched else (3, 7, 10))
    ours = getattr(gc, f"adaptive_{kind}_pool2d")
    theirs = getattr(TF, f"adaptive_{kind}_pool2d")
    _check(lambda x: ours(x, size), lambda x: theirs(x, size), [x])


@pytest.mark.parametrize("size", [1, 2, (3,), 4, 9])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool1d_matches_torch(size, kind):
    x = np.random.default_rng(6).normal(size=(2, 3, 7))
    for x in (x, x[0]):
        _check(lambda x: getattr(gc, f"adaptive_{kind}_pool1d")(x, size),
               lambda x: getattr(TF, f"adaptive_{kind}_pool1d")(x, size), [x])


def test_adaptive_pool2d_to_an_empty_size_is_empty_as_torchs():
    x = np.ones((2, 3, 4, 5))
    for kind in ("avg", "max"):
        assert getattr(gc, f"adaptive_{kind}_pool2d")(x, (0, 2)).shape == (2, 3, 0, 2)
        assert not gc.grad(lambda x: gc.sum(gc.adaptive_avg_pool2d(x, (0, 2))))(x).any()


def test_global_adaptive_pooling_is_a_plain_reduction():
    graph = str(gc.trace(lambda x: gc.adaptive_avg_pool2d(x, (1, 1)), gc.spec((4, 8, 7, 5))))
    assert "matmul" not in graph and "take" not in graph and "reshape" not in graph, graph
    # max: a reduction over the flattened window and one gather at its first maximum (where
    # torch's gradient goes), no window matrices
    graph = str(gc.trace(lambda x: gc.adaptive_max_pool2d(x, (1, 1)), gc.spec((4, 8, 7, 5))))
    assert "matmul" not in graph and graph.count("= take ") == 1, graph


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool2d_finite_differences(kind):
    x = np.random.default_rng(8).normal(size=(1, 2, 5, 7))
    f = lambda x: getattr(gc, f"adaptive_{kind}_pool2d")(x, (3, 4))  # noqa: E731
    for index in [(0, 0, 2, 3), (0, 1, 4, 6), (0, 1, 1, 2)]:
        numeric, u = _finite_differences(f, x, index)
        np.testing.assert_allclose(gc.grad(lambda x: gc.sum(f(x) * u))(x)[index], numeric,
                                   rtol=1e-7, atol=1e-8)


def test_adaptive_pool_layers():
    x = np.random.default_rng(9).normal(size=(2, 4, 9, 6))
    for ours, theirs in [(gc.nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
                         (gc.nn.AdaptiveMaxPool2d(4), torch.nn.AdaptiveMaxPool2d(4)),
                         (gc.nn.AdaptiveAvgPool1d(4), torch.nn.AdaptiveAvgPool1d(4)),
                         (gc.nn.AdaptiveMaxPool1d(5), torch.nn.AdaptiveMaxPool1d(5))]:
        x_in = x if "2d" in type(ours).__name__ else x[:, :, 0]
        f = gc.compile(lambda x: ours(x))
        np.testing.assert_allclose(f(x_in), theirs(torch.tensor(x_in)).numpy(), rtol=1e-12)
        ours.output_size = theirs.output_size = 3  # read again after compiling
        np.testing.assert_allclose(f(x_in), theirs(torch.tensor(x_in)).numpy(), rtol=1e-12)
    # a classifier head as torchvision writes it
    model = gc.nn.Sequential(gc.nn.Conv2d(4, 8, 3), gc.nn.AdaptiveAvgPool2d((1, 1)),
                             gc.nn.Flatten())
    assert model(x.astype(np.float32)).shape == (2, 8)


def test_bad_adaptive_pool_settings_give_one_line():
    x = np.zeros((2, 3, 5, 5))
    assert_one_line_error(lambda: gc.adaptive_avg_pool2d(x, (-1, 2)),
                          "adaptive_avg_pool2d: output_size must be an int >= 0", FILE)
    assert_one_line_error(lambda: gc.adaptive_max_pool2d(x, (2.5, 2)),
                          "adaptive_max_pool2d: output_size must be", FILE)
    assert_one_line_error(lambda: gc.adaptive_avg_pool2d(x, (1, 2, 3)),
                          "output_size must be an int >= 0 or a tuple of 2", FILE)
    assert_one_line_error(lambda: gc.adaptive_avg_pool1d(x[0], None),
                          "adaptive_avg_pool1d: output_size must be", FILE)
    assert_one_line_error(lambda: gc.adaptive_avg_pool2d(x[0, 0], 2),
                          "x must be 4-d (N, C, H, W) or 3-d", FILE)
    assert_one_line_error(lambda: gc.adaptive_avg_pool2d(x.astype(np.int64), 2),
                          "adaptive_avg_pool2d of an int64 value", FILE)
    assert_one_line_error(lambda: gc.adaptive_max_pool2d(x, 2, return_indices="yes"),
                          "adaptive_max_pool2d: return_indices must be True or False", FILE)



@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool2d_refuses_a_bare_none_as_torch_and_keeps_a_none_entry(kind):
    # torch takes None only as an entry of the pair (that axis keeps its size); a bare None
    # it refuses (TypeError), where graphc took it for (None, None)
    x = np.random.default_rng(8).normal(size=(2, 3, 5, 6))
    ours, theirs = getattr(gc, f"adaptive_{kind}_pool2d"), getattr(TF, f"adaptive_{kind}_pool2d")
    with pytest.raises(TypeError):
        theirs(torch.tensor(x), None)
    want = f"adaptive_{kind}_pool2d: output_size must be an int >= 0 or a tuple of 2 such"
    assert_one_line_error(lambda: ours(x, None), want, FILE)
    layer = getattr(gc.nn, f"Adaptive{kind.capitalize()}Pool2d")
    assert_one_line_error(lambda: layer(None)(x), want, FILE)
    for size in ((None, 3), (4, None), [None, None]):
        np.testing.assert_allclose(ours(x, size), theirs(torch.tensor(x), size).numpy(),
                                   rtol=1e-12)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("size", [1, (1, None), (None, 1), (None, None)])
def test_adaptive_pools_to_one_cell_serve_every_symbolic_image_size(kind, size):
    # global pooling, a CNN's head over images of any size: "needs a known spatial size"
    # before. One plan for every (H, W); values and the gradient (to the first of tied
    # maxima, the integers make ties) as torch's
    ours, theirs = getattr(gc, f"adaptive_{kind}_pool2d"), getattr(TF, f"adaptive_{kind}_pool2d")
    spec = [("b", "_", "h", "w")]
    f = gc.compile(lambda x: ours(x, size), polymorphic_shapes=spec)
    grad = gc.compile(gc.grad(lambda x: gc.sum(ours(x, size) * gc.cos(ours(x, size)))),
                      polymorphic_shapes=spec)
    rng = np.random.default_rng(5)
    for shape in [(2, 3, 6, 5), (1, 3, 1, 1), (3, 3, 20, 19)]:
        x = rng.integers(0, 4, size=shape).astype(np.float64)
        t = torch.tensor(x, requires_grad=True)
        want = theirs(t, size)
        (want * torch.cos(want)).sum().backward()
        np.testing.assert_allclose(f(x), want.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad(x), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert f.recompiles == [] and grad.recompiles == []
    if kind == "avg":  # the 1-d pool too
        f1 = gc.compile(lambda x: gc.adaptive_avg_pool1d(x, 1),
                        polymorphic_shapes=[("b", "_", "n")])
        x = rng.normal(size=(2, 3, 7))
        np.testing.assert_allclose(f1(x), x.mean(-1, keepdims=True), rtol=1e-12)


def test_adaptive_pools_of_a_symbolic_size_refuse_other_cells_in_one_line():
    spec = [("b", "_", "h", "w")]
    x = np.zeros((2, 3, 4, 4))
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.adaptive_avg_pool2d(x, (2, 1)),
                           polymorphic_shapes=spec)(x),
        "adaptive_avg_pool2d: a symbolic size h takes output_size 1 or None only, got (2, 1)",
        FILE)
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.adaptive_max_pool2d(x, 1, return_indices=True),
                           polymorphic_shapes=spec)(x),
        "adaptive_max_pool2d: return_indices needs a known spatial size, got a symbolic size "
        "h; declare it concrete", FILE)
    # review (s49): a 1-d pool takes no None (its line offered it), and output_size 1 with
    # return_indices was "takes output_size 1 or None only and no return_indices, got 1"
    spec1 = [("b", "_", "n")]
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.adaptive_avg_pool1d(x, 2), polymorphic_shapes=spec1)(
            x[..., 0]),
        "adaptive_avg_pool1d: a symbolic size n takes output_size 1 only, got 2", FILE)
    assert_one_line_error(
        lambda: gc.compile(lambda x: gc.adaptive_max_pool1d(x, 1, return_indices=True),
                           polymorphic_shapes=spec1)(x[..., 0]),
        "adaptive_max_pool1d: return_indices needs a known spatial size, got a symbolic size "
        "n", FILE)

# ---- 1-d pooling, pixel shuffle, padding layers, channel dropout -------------------------------
POOL_1D = [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=2, ceil_mode=True),
           dict(kernel_size=(3,), stride=(2,), padding=1)]


@pytest.mark.parametrize("k", range(len(POOL_1D)))
@pytest.mark.parametrize("batched", [True, False])
def test_pool1d_matches_torch(k, batched):
    x = np.random.default_rng(k).normal(size=(2, 3, 11) if batched else (3, 11))
    kw = POOL_1D[k]
    _check(lambda x: gc.max_pool1d(x, dilation=2, **kw),
           lambda x: TF.max_pool1d(x, dilation=2, **kw), [x])
    for count in (True, False):
        _check(lambda x: gc.avg_pool1d(x, count_include_pad=count, **kw),
               lambda x: TF.avg_pool1d(x, count_include_pad=count, **kw), [x])
    for ours, theirs in [(gc.nn.MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1)),
                         (gc.nn.AvgPool1d(3, 2, 1, count_include_pad=False),
                          torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False))]:
        np.testing.assert_allclose(gc.compile(lambda x: ours(x))(x),
                                   theirs(torch.tensor(x)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape, r", [((2, 12, 3, 4), 2), ((18, 2, 3), 3), ((2, 1, 8, 2, 1), 2)])
def test_pixel_shuffle_and_unshuffle_match_torch(shape, r):
    x = np.random.default_rng(0).normal(size=shape)
    _check(lambda x: gc.pixel_shuffle(x, r), lambda x: TF.pixel_shuffle(x, r), [x])
    y = TF.pixel_shuffle(torch.tensor(x), r).numpy()
    _check(lambda y: gc.pixel_unshuffle(y, r), lambda y: TF.pixel_unshuffle(y, r), [y])
    np.testing.assert_array_equal(gc.nn.PixelUnshuffle(r)(gc.nn.PixelShuffle(r)(x)), x)


PADS = [("ZeroPad2d", ((1, -1, 2, -2),), (2, 3, 4, 5)), ("ZeroPad2d", (1,), (3, 4, 5)),
        ("ZeroPad2d", ((-3, -2, 0, 0),), (2, 3, 4, 5)),
        ("ConstantPad2d", ((1, 2, 0, 3), 2.5), (2, 3, 4, 5)),
        ("ReflectionPad2d", ((4, 0, 3, 1),), (2, 3, 4, 5)), ("ReflectionPad2d", (2,), (3, 4, 5)),
        ("ReplicationPad2d", ((9, 0, 1, 2),), (2, 3, 4, 5)),
        ("CircularPad2d", ((5, 0, 1, 2),), (2, 3, 4, 5)), ("ZeroPad1d", (2,), (2, 3, 4, 5)),
        ("ConstantPad1d", ((3, -1), -1.0), (3, 5)), ("ReflectionPad1d", ((1, 3),), (2, 3, 5)),
        ("ReplicationPad1d", ((4, 1),), (3, 5)), ("CircularPad1d", ((2, 5),), (2, 3, 5)),
        ("ZeroPad3d", ((1, 0, 2, -1, 0, 1),), (2, 3, 3, 4, 5)),
        ("ConstantPad3d", (1, -2.0), (3, 2, 4, 5)), ("ReflectionPad3d", (1,), (2, 3, 3, 4, 5)),
        ("ReplicationPad3d", ((2, 0, 1, 1, 0, 3),), (3, 3, 4, 5)),
        ("CircularPad3d", ((1, 2, 0, 3, 2, 1),), (2, 2, 3, 4, 5)),
        # torch's 2-d and 3-d reflect and replicate crop an axis to nothing (its 1-d ones
        # refuse that); graphc refused it ("crops more than axis 2's 4")
        ("ReflectionPad2d", ((1, 1, -2, -2),), (2, 3, 4, 5)),
        ("ReplicationPad3d", ((-2, -3, 1, 0, 0, 0),), (2, 3, 3, 4, 5))]


@pytest.mark.parametrize("name, args, shape", PADS)
def test_padding_layers_match_torch(name, args, shape):
    x = np.random.default_rng(1).normal(size=shape)
    ours, theirs = getattr(gc.nn, name)(*args), getattr(torch.nn, name)(*args)
    _check(ours, theirs, [x])


def test_a_bool_pad_value_is_cast_to_xs_dtype_as_torchs():
    """F.pad(x, pads, value=True) is torch's 1 in x's dtype (True on a bool x); graphc's
    ConstantPad layers and gc.pad(constant_values=True) refused a bool ('pad: constant_values
    must be one number, got True'). Now it is cast to x's dtype, eagerly and compiled, the
    gradient through the kept values as torch's."""
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    for value in (True, False, np.bool_(True)):
        _check(gc.nn.ConstantPad2d((1, 2, 0, 1), value),
               lambda t: TF.pad(t, (1, 2, 0, 1), value=bool(value)), [x])
        want = TF.pad(torch.tensor(x, dtype=torch.float32), (2, 1), value=bool(value))
        for got in (gc.nn.ConstantPad1d((2, 1), value)(gc.tensor(x.astype(np.float32))).data,
                    gc.compile(gc.nn.ConstantPad1d((2, 1), value))(x.astype(np.float32))):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.numpy())
    b = x > 0
    for value in (True, False):
        want = TF.pad(torch.tensor(b), (2, 1, 1, 0), value=value).numpy()
        layer = gc.nn.ConstantPad2d((2, 1, 1, 0), value)
        for got in (layer(gc.tensor(b)).data, gc.compile(layer)(b),
                    gc.pad(gc.tensor(b), ((0, 0), (1, 0), (2, 1)), constant_values=value).data,
                    gc.compile(lambda a: gc.pad(a, ((0, 0), (1, 0), (2, 1)),
                                                constant_values=np.bool_(value)))(b)):
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, want)


def test_padding_layer_settings_are_read_at_every_call():
    layer, x = gc.nn.ConstantPad2d(1, 3.0), np.zeros((1, 1, 2, 2))
    f = gc.compile(lambda x: layer(x))
    assert f(x).shape == (1, 1, 4, 4) and f(x)[0, 0, 0, 0] == 3.0
    layer.padding, layer.value = (0, 0, 2, 0), -1.0
    assert f(x).shape == (1, 1, 4, 2) and f(x)[0, 0, 0, 0] == -1.0


@pytest.mark.parametrize("layer, shape", [("Dropout2d", (6, 40, 3, 2)), ("Dropout1d", (50, 4)),
                                          ("Dropout1d", (6, 40, 3)), ("Dropout3d", (40, 2, 2, 3)),
                                          ("Dropout2d", (6, 40, 5))])
def test_channel_dropout_zeroes_whole_channels(layer, shape):
    drop = getattr(gc.nn, layer)(0.25)
    x = np.random.default_rng(2).normal(size=shape) + 5  # no zeros of its own
    lead = 1 if len(shape) == {"Dropout1d": 2, "Dropout3d": 4}.get(layer) else 2
    u = np.random.default_rng(3).normal(size=shape)
    with gc.nn.rng_key(7):
        eager = np.asarray(drop(x))
    with gc.nn.rng_key(7):
        compiled, grad = gc.compile(gc.value_and_grad(lambda x: gc.sum(drop(x) * u)))(x)
    with gc.nn.rng_key(7):
        np.testing.assert_array_equal(gc.compile(lambda x: drop(x))(x), eager)
    kept = (eager != 0).reshape(shape[:lead] + (-1,))
    assert (kept.all(-1) | ~kept.any(-1)).all()  # each map kept or zeroed whole
    assert 0.1 < 1 - kept.all(-1).mean() < 0.45  # about p of them zeroed
    np.testing.assert_allclose(eager[eager != 0], x[eager != 0] / 0.75, rtol=1e-12)
    np.testing.assert_allclose(grad, u * (eager != 0) / 0.75, rtol=1e-12)
    np.testing.assert_allclose(compiled, np.sum(eager * u), rtol=1e-12)
    fresh = [np.asarray(gc.compile(lambda x: drop(x))(x)) != 0 for _ in range(2)]
    assert not np.array_equal(*fresh)  # no key block: another mask each call
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)


def test_bad_pool1d_pixel_shuffle_padding_and_dropout_settings_give_one_line():
    x = np.zeros((2, 3, 10))
    assert_one_line_error(lambda: gc.max_pool1d(x, 3, padding=2),
                          "max_pool1d: padding 2 must be at most half the kernel size 3", FILE)
    assert_one_line_error(lambda: gc.avg_pool1d(x, 3, stride=0),
                          "avg_pool1d: stride must be >= 1", FILE)
    assert_one_line_error(lambda: gc.max_pool1d(x, 12),
                          "max_pool1d: the kernel 12 (dilated) is longer", FILE)
    assert_one_line_error(lambda: gc.max_pool1d(x[None], 2), "max_pool1d: x must be 3-d", FILE)
    assert_one_line_error(lambda: gc.pixel_shuffle(np.zeros((2, 7, 3, 3)), 2),
                          "pixel_shuffle: x's 7 channels must divide by upscale_factor", FILE)
    assert_one_line_error(lambda: gc.pixel_shuffle(x, 0),
                          "upscale_factor must be a positive int", FILE)
    assert_one_line_error(lambda: gc.pixel_unshuffle(np.zeros((2, 7, 3, 4)), 2),
                          "pixel_unshuffle: x's height 3 must divide by downscale_factor 2",
                          FILE)
    assert_one_line_error(lambda: gc.nn.ReflectionPad2d((5, 0, 0, 0))(np.zeros((1, 1, 4, 5))),
                          "ReflectionPad2d: padding (5, 0, 0, 0) must be at most 4", FILE)
    assert_one_line_error(lambda: gc.nn.CircularPad1d(11)(x),
                          "CircularPad1d: padding (11, 11) must be at most 10", FILE)
    assert_one_line_error(lambda: gc.nn.ReflectionPad2d(1)(x[0]),
                          "ReflectionPad2d: x must be 4-d or 3-d", FILE)
    assert_one_line_error(lambda: gc.nn.ReplicationPad2d((-6, -5, 0, 0))(x),
                          "ReplicationPad2d: padding (-6, -5, 0, 0) crops more than", FILE)
    assert_one_line_error(lambda: gc.nn.ReplicationPad1d((-4, -6))(x),
                          "ReplicationPad1d: padding (-4, -6) crops all of axis 2's 10", FILE)
    assert_one_line_error(lambda: gc.nn.ZeroPad2d((1, 2, 3))(x),
                          "ZeroPad2d: padding must be an int or a tuple of 4 ints", FILE)
    assert_one_line_error(lambda: gc.nn.Dropout2d(0.5)(x[0]), "Dropout2d: x must be 4-d", FILE)
    assert_one_line_error(lambda: gc.nn.Dropout1d(1.5), "Dropout1d: p must be in [0, 1]", FILE)
