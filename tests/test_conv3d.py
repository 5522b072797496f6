"""gc.conv3d / gc.conv_transpose3d and gc.nn.Conv3d / ConvTranspose3d (ir/ops/conv_extra.py,
graphc/conv_layers.py) against torch in float64: values and gradients of x, w and b eagerly,
compiled, under vmap and over symbolic sizes, random settings, finite differences, torch
state dicts and initialisation, and the one-line refusals of bad arguments."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
from test_conv_layers import _check, _finite_differences  # noqa: E402  (values and gradients)

TF = torch.nn.functional
FILE = "test_conv3d.py"

CONV_3D = [dict(), dict(stride=2, padding=1), dict(stride=(1, 2, 3), padding=(0, 1, 2),
                                                    dilation=(2, 1, 2), groups=2),
           dict(padding="same", dilation=(1, 2, 1)), dict(padding="valid", stride=[2, 1, 1]),
           dict(groups=4, padding=(2, 0, 1))]
TRANSPOSE_3D = [dict(), dict(stride=2, padding=1, output_padding=1),
                dict(stride=(2, 3, 1), padding=(1, 0, 2), output_padding=(1, 2, 0),
                     dilation=(1, 2, 3), groups=2),
                dict(stride=3, padding=2, dilation=2, output_padding=2, groups=4)]


@pytest.mark.parametrize("k", range(len(CONV_3D)))
@pytest.mark.parametrize("batched", [True, False])
def test_conv3d_matches_torch(k, batched):
    kw = CONV_3D[k]
    rng = np.random.default_rng(k)
    groups = kw.get("groups", 1)
    x = rng.normal(size=(2, 4, 5, 6, 7) if batched else (4, 5, 6, 7))
    w, b = rng.normal(size=(8, 4 // groups, 3, 2, 3)), rng.normal(size=8)
    _check(lambda x, w, b: gc.conv3d(x, w, b, **kw),
           lambda x, w, b: TF.conv3d(x, w, b, **kw), [x, w, b])


@pytest.mark.parametrize("k", range(len(TRANSPOSE_3D)))
@pytest.mark.parametrize("batched", [True, False])
def test_conv_transpose3d_matches_torch(k, batched):
    kw = TRANSPOSE_3D[k]
    rng = np.random.default_rng(k)
    groups = kw.get("groups", 1)
    x = rng.normal(size=(2, 4, 3, 4, 5) if batched else (4, 3, 4, 5))
    w, b = rng.normal(size=(4, 8 // groups, 3, 2, 3)), rng.normal(size=8)
    _check(lambda x, w, b: gc.conv_transpose3d(x, w, b, **kw),
           lambda x, w, b: TF.conv_transpose3d(x, w, b, **kw), [x, w, b])


def _random_case(rng, transposed):
    """One random setting: kernel, stride, padding, dilation, groups (and output_padding)
    per axis, and x, w and b of fitting shapes."""
    groups, per_group = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    k, s, d = (tuple(int(v) for v in rng.integers(1, hi, 3)) for hi in (4, 4, 3))
    size = tuple(int(v) for v in rng.integers(1, 6, 3))
    kw = dict(stride=s, dilation=d, groups=groups,
              padding=tuple(int(rng.integers(0, d[i] * (k[i] - 1) + 2)) for i in range(3)))
    if transposed:
        kw["output_padding"] = tuple(int(rng.integers(0, max(s[i], d[i]))) for i in range(3))
        w = rng.normal(size=(2 * groups, per_group) + k)
    else:
        w = rng.normal(size=(per_group * groups, 2) + k)
    x = rng.normal(size=(int(rng.integers(1, 3)), 2 * groups) + size)
    return kw, x, w, rng.normal(size=per_group * groups)


@pytest.mark.parametrize("name", ["conv3d", "conv_transpose3d"])
def test_random_settings_match_torch_values_and_gradients(name):
    """180 random settings each (kernel, stride, padding, dilation, groups, output_padding,
    sizes), at least 100 of them with an output: the value and the gradients of x, w and b;
    a setting torch refuses (a kernel past the padded input, an empty output) is refused in
    one line too."""
    rng = np.random.default_rng(5 if name == "conv3d" else 6)
    ours, theirs = getattr(gc, name), getattr(TF, name)
    served = 0
    for _ in range(180):
        kw, x, w, b = _random_case(rng, name == "conv_transpose3d")
        tensors = [torch.tensor(v, requires_grad=True) for v in (x, w, b)]
        try:
            want = theirs(*tensors, **kw)
        except RuntimeError:
            with pytest.raises(GraphcError, match=f"^{name}: .*(is larger than|is empty)"):
                ours(x, w, b, **kw)
            continue
        served += 1
        u = rng.normal(size=tuple(want.shape))
        (want * torch.tensor(u)).sum().backward()
        np.testing.assert_allclose(ours(x, w, b, **kw), want.detach().numpy(), rtol=1e-11,
                                   atol=1e-11, err_msg=str(kw))
        grads = gc.grad(lambda x, w, b: gc.sum(ours(x, w, b, **kw) * u),
                        argnums=(0, 1, 2))(x, w, b)
        for g, t in zip(grads, tensors):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-10,
                                       err_msg=str(kw))
    assert served >= 100, served


@pytest.mark.parametrize("name", ["conv3d", "conv_transpose3d"])
def test_finite_differences(name):
    rng = np.random.default_rng(3)
    f3 = getattr(gc, name)
    x = rng.normal(size=(2, 4, 3, 4, 3))
    if name == "conv3d":
        w, b = rng.normal(size=(4, 2, 2, 3, 2)), rng.normal(size=4)
        settings = dict(stride=(2, 1, 1), padding=(1, 1, 0), dilation=(1, 1, 2), groups=2)
    else:
        w, b = rng.normal(size=(4, 1, 3, 2, 2)), rng.normal(size=2)
        settings = dict(stride=(2, 1, 2), padding=1, output_padding=(1, 0, 1), groups=2,
                        dilation=(1, 2, 1))
    for arg, value in enumerate((x, w, b)):
        def f(v, arg=arg):
            args = [x, w, b]
            args[arg] = v
            return f3(*args, **settings)
        for _ in range(3):
            index = tuple(rng.integers(0, n) for n in value.shape)
            numeric, u = _finite_differences(f, value, index)
            grad = gc.grad(lambda v: gc.sum(f(v) * u))(value)
            np.testing.assert_allclose(grad[index], numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("compiled", [False, True])
def test_vmap_over_volumes_is_torchs_per_volume(compiled):
    rng = np.random.default_rng(8)
    xs, ws = rng.normal(size=(3, 2, 3, 4, 5, 4)), rng.normal(size=(3, 4, 3, 2, 3, 2))
    wt, b = rng.normal(size=(4, 2, 2, 2, 3)), rng.normal(size=4)

    def f(x, w):
        y = gc.relu(gc.conv3d(x, w, b, stride=(1, 2, 1), padding=1))
        return gc.conv_transpose3d(y, wt, stride=2, padding=(0, 1, 1))

    def theirs(x, w):
        y = torch.relu(TF.conv3d(x, w, torch.tensor(b), stride=(1, 2, 1), padding=1))
        return TF.conv_transpose3d(y, torch.tensor(wt), stride=2, padding=(0, 1, 1))
    for axes in [(0, None), (0, 0)]:
        batched = gc.vmap(f, in_axes=axes)
        batched = gc.compile(batched) if compiled else batched
        got = batched(xs, ws if axes[1] == 0 else ws[0])
        want = np.stack([theirs(torch.tensor(x), torch.tensor(ws[i] if axes[1] == 0 else ws[0]))
                         .numpy() for i, x in enumerate(xs)])
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    grads = gc.vmap(gc.grad(lambda x, w: gc.sum(gc.sin(f(x, w))), argnums=(0, 1)))(xs, ws)
    for i in range(len(xs)):
        tx, tw = (torch.tensor(v[i], requires_grad=True) for v in (xs, ws))
        torch.sin(theirs(tx, tw)).sum().backward()
        for g, t in zip(grads, (tx, tw)):
            np.testing.assert_allclose(g[i], t.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_symbolic_batch_and_depth_are_served_by_one_plan():
    rng = np.random.default_rng(9)
    w, b = rng.normal(size=(4, 3, 3, 3, 3)), rng.normal(size=4)
    wt = rng.normal(size=(3, 2, 3, 3, 3))
    f = gc.compile(lambda x: gc.conv3d(x, w, b, padding=1),
                   polymorphic_shapes=["(n, 3, d, h, w)"])
    g = gc.compile(lambda x: gc.conv_transpose3d(x, wt, stride=2, padding=1),
                   polymorphic_shapes=["(n, 3, d, 4, 4)"])
    for shape in [(2, 3, 4, 5, 6), (1, 3, 1, 4, 4)]:
        x = rng.normal(size=shape)
        np.testing.assert_allclose(f(x), TF.conv3d(*map(torch.tensor, (x, w, b)), padding=1)
                                   .numpy(), rtol=1e-12, atol=1e-12)
        x = x[..., :4, :4]
        np.testing.assert_allclose(g(x), TF.conv_transpose3d(
            *map(torch.tensor, (x, wt)), stride=2, padding=1).numpy(), rtol=1e-12, atol=1e-12)
    assert f.recompiles == [] and g.recompiles == []
    with pytest.raises(GraphcError, match="^conv3d: no output size for every value of a "
                                          "symbolic depth, height or width \\(kernel \\(3, 3, "
                                          "3\\), stride \\(2, 2, 2\\), padding \\(0, 0, 0\\)"):
        gc.compile(lambda x: gc.conv3d(x, w, stride=2),
                   polymorphic_shapes=["(n, 3, d, 5, 5)"])(np.zeros((2, 3, 6, 5, 5)))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [(1, 2, 0), "same", "valid"])
def test_conv3d_layer_matches_torch(mode, padding):
    # kernel (3, 2, 3) with 'same': the middle axis padded (0, 1), asymmetric, in each mode
    theirs = torch.nn.Conv3d(4, 6, (3, 2, 3), padding=padding, padding_mode=mode,
                             groups=2).double()
    ours = gc.nn.Conv3d(4, 6, (3, 2, 3), padding=padding, padding_mode=mode, groups=2,
                        dtype="float64")
    assert ours.weight.data.shape == tuple(theirs.weight.shape) == (6, 2, 3, 2, 3)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 5, 6))
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    t_out.square().sum().backward()
    np.testing.assert_allclose(ours(x), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours(x[0]), theirs(tx[0]).detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    g_params, g_x = gc.compile(gc.grad(lambda p, x: gc.sum(gc.square(ours.apply(p, x))),
                                       argnums=(0, 1)))(ours.params(), x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_transpose3d_layer_matches_torch_with_output_size():
    theirs = torch.nn.ConvTranspose3d(4, 6, (3, 2, 3), stride=2, padding=1, groups=2).double()
    ours = gc.nn.ConvTranspose3d(4, 6, (3, 2, 3), stride=2, padding=1, groups=2,
                                 dtype="float64")
    assert ours.weight.data.shape == tuple(theirs.weight.shape) == (4, 3, 3, 2, 3)
    ours.load_torch_state_dict(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(1).normal(size=(2, 4, 3, 4, 5))
    for size in [None, (5, 6, 9), (6, 7, 10), (2, 6, 6, 7, 10)]:
        tx = torch.tensor(x, requires_grad=True)
        t_out = theirs(tx, output_size=size)
        t_out.square().sum().backward()
        np.testing.assert_allclose(ours(x, output_size=size), t_out.detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
        g_params, g_x = gc.grad(lambda p, x: gc.sum(gc.square(ours.apply(p, x, size))),
                                argnums=(0, 1))(ours.params(), x)
        np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)
            p.grad = None
    np.testing.assert_allclose(ours(x[0]), theirs(torch.tensor(x[0])).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_3d_layer_initialisation_is_torchs():
    # torch's kaiming_uniform(a=sqrt(5)) and bias init: uniform(+-1/sqrt(fan_in)), fan_in
    # from the weight's second axis times the kernel volume (a seeded rng: each bound is
    # approached in one draw)
    conv = gc.nn.Conv3d(8, 6, (3, 2, 1), groups=2, rng=np.random.default_rng(0))
    convt = gc.nn.ConvTranspose3d(8, 6, (3, 2, 1), groups=2, rng=np.random.default_rng(0))
    for layer, weight, fan_in in [(conv, (6, 4, 3, 2, 1), 4 * 6),
                                  (convt, (8, 3, 3, 2, 1), 3 * 6)]:
        bound = 1 / np.sqrt(fan_in)
        assert layer.weight.data.shape == weight and layer.bias.data.shape == (6,)
        assert layer.weight.data.dtype == np.float32
        for p in (layer.weight.data, layer.bias.data):
            assert np.abs(p).max() <= bound and np.abs(p).max() > bound * 0.7
        assert list(dict(layer.named_parameters())) == ["weight", "bias"]
    assert {"Conv3d", "ConvTranspose3d"} <= set(dir(gc.nn))
    assert gc.nn.Conv3d(2, 3, 2, bias=False).bias is None


def test_bad_3d_convolution_arguments_give_one_line_naming_the_argument():
    x, w, wt = np.zeros((2, 4, 5, 5, 5)), np.zeros((6, 4, 3, 3, 3)), np.zeros((4, 3, 3, 3, 3))
    for call, message in [
            (lambda: gc.conv3d(x[0, 0], w), "conv3d: x must be 5-d (N, C, D, H, W) or 4-d"),
            (lambda: gc.conv3d(x, w[0]), "conv3d: w must be 5-d (O, C/groups, kD, kH, kW)"),
            (lambda: gc.conv3d(x, w, stride=(1, 2)),
             "conv3d: stride must be an int or a tuple of 3 ints, got (1, 2)"),
            (lambda: gc.conv3d(x, w, stride=0), "conv3d: stride must be >= 1, got (0, 0, 0)"),
            (lambda: gc.conv3d(x, w, dilation=(1, 0, 1)), "conv3d: dilation must be >= 1"),
            (lambda: gc.conv3d(x, w, padding=-1), "conv3d: padding must be >= 0"),
            (lambda: gc.conv3d(x, w, padding=(1, 1)),
             "conv3d: padding must be an int or a tuple of 3 ints"),
            (lambda: gc.conv3d(x, w, padding="full"),
             "conv3d: padding must be an int, a tuple of 3 ints, 'same' or 'valid', got 'full'"),
            (lambda: gc.conv3d(x, w, padding="same", stride=2),
             "conv3d: padding='same' needs stride 1"),
            (lambda: gc.conv3d(x, w, groups=4), "conv3d: groups=4 must be a positive int"),
            (lambda: gc.conv3d(x[:, :3], w), "conv3d: x has 3 channels, w (6, 4, 3, 3, 3) "
             "takes 4"),
            (lambda: gc.conv3d(x, w, np.zeros(5)), "conv3d: b must have shape (6,)"),
            (lambda: gc.conv3d(x, w, np.zeros(6, np.float32)), "conv3d: x is float64 and b "
             "float32"),
            (lambda: gc.conv3d(x, w[:, :, :0]), "conv3d: kernel size must be >= 1, got "
             "(0, 3, 3)"),
            (lambda: gc.conv3d(x, w[:0]), "conv3d: w (0, 4, 3, 3, 3) is empty"),
            (lambda: gc.conv3d(x, w, dilation=3), "conv3d: the kernel (7, 7, 7) (dilated) is "
             "larger than the padded input (5, 5, 5)")]:
        assert_one_line_error(call, message, FILE)
    for call, message in [
            (lambda: gc.conv_transpose3d(x[0, 0], wt), "conv_transpose3d: x must be 5-d "
             "(N, C, D, H, W) or 4-d"),
            (lambda: gc.conv_transpose3d(x, wt[0]), "conv_transpose3d: weight must be 5-d "
             "(C_in, C_out/groups, kD, kH, kW)"),
            (lambda: gc.conv_transpose3d(x, wt, stride=(1, 2)), "conv_transpose3d: stride "
             "must be an int or a tuple of 3 ints"),
            (lambda: gc.conv_transpose3d(x, wt, stride=2, output_padding=2),
             "conv_transpose3d: output_padding must be smaller than either stride or dilation"),
            (lambda: gc.conv_transpose3d(x, wt, padding=(4, 0, 0)),
             "conv_transpose3d: the output size (-1, 7, 7) is empty")]:
        assert_one_line_error(call, message, FILE)
    for call, message in [
            (lambda: gc.nn.Conv3d(4, 6, 3, padding_mode="mirror"), "Conv3d: padding_mode must"),
            (lambda: gc.nn.Conv3d(4, 6, 3, padding="full"), "Conv3d: padding must be 'same', "
             "'valid', an int or a tuple of 3 ints, got 'full'"),
            (lambda: gc.nn.Conv3d(4, 6, 3, stride=2, padding="same"), "Conv3d: padding='same' "
             "needs stride 1"),
            (lambda: gc.nn.Conv3d(4, 6, (3, 3)), "Conv3d: kernel_size must be an int or a "
             "tuple of 3 ints"),
            (lambda: gc.nn.Conv3d(4, 6, 3, groups=3), "Conv3d: in_channels 4"),
            (lambda: gc.nn.Conv3d(4, 6, 3, padding=1, padding_mode="reflect")(x[0, 0]),
             "Conv3d: x must be 5-d (N, C, D, H, W) or 4-d"),
            (lambda: gc.nn.Conv3d(4, 6, 3, padding=5, padding_mode="reflect")(x),
             "Conv3d: padding_mode 'reflect' pads at most 4 on an axis of size 5, got "
             "padding (5, 5, 5)"),
            (lambda: gc.nn.ConvTranspose3d(4, 6, 3, padding_mode="reflect"),
             "ConvTranspose3d: only padding_mode 'zeros'")]:
        assert_one_line_error(call, message, FILE)
