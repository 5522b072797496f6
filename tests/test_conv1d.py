"""gc.conv1d and gc.nn.Conv1d against torch in float64: values and gradients, eagerly and
compiled, batched and unbatched, with stride, dilation, groups, 'same' padding and every
padding_mode."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

SETTINGS = [dict(), dict(stride=2, padding=1), dict(dilation=2, padding=2, groups=2),
            dict(padding="same", dilation=3), dict(padding="valid", stride=(3,))]


@pytest.mark.parametrize("k", range(len(SETTINGS)))
@pytest.mark.parametrize("batched", [True, False])
def test_conv1d_matches_torch(k, batched):
    kw = SETTINGS[k]
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, 4, 11) if batched else (4, 11))
    w, b = rng.normal(size=(6, 4 // kw.get("groups", 1), 3)), rng.normal(size=6)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    t_out = torch.nn.functional.conv1d(tx, tw, tb, **kw)
    u = rng.normal(size=t_out.shape)
    (t_out * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(gc.conv1d(x, w, b, **kw), t_out.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    grads = gc.compile(gc.grad(lambda x, w, b: gc.sum(gc.conv1d(x, w, b, **kw) * u),
                               argnums=(0, 1, 2)))(x, w, b)
    for g, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [2, "same"])
@pytest.mark.parametrize("kernel", [5, 4])
def test_conv1d_layer_matches_torch(mode, padding, kernel):
    # kernel 4 with 'same': an asymmetric pair (1 before, 2 after), padded in each mode
    theirs = torch.nn.Conv1d(4, 6, kernel, padding=padding, padding_mode=mode,
                             groups=2).double()
    ours = gc.nn.Conv1d(4, 6, kernel, padding=padding, padding_mode=mode, groups=2,
                        dtype="float64")
    assert ours.weight.data.shape == tuple(theirs.weight.shape)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(3, 4, 9))
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    t_out.square().sum().backward()
    np.testing.assert_allclose(ours(x), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g_params, g_x = gc.grad(lambda p, x: gc.sum(gc.square(ours.apply(p, x))),
                            argnums=(0, 1))(ours.params(), x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv1d_layer_initialisation_is_torchs():
    layer = gc.nn.Conv1d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 3)
    assert layer.weight.data.shape == (4, 8, 3) and layer.bias.data.shape == (4,)
    assert np.abs(layer.weight.data).max() <= bound and layer.weight.data.std() > bound / 3


def test_bad_conv1d_arguments_give_one_line():
    f = "test_conv1d.py"
    x, w = np.zeros((2, 4, 9)), np.zeros((6, 4, 3))
    assert_one_line_error(lambda: gc.conv1d(x[0, 0], w), "x must be 3-d (N, C, L)", f)
    assert_one_line_error(lambda: gc.conv1d(x, w[..., None]), "w must be 3-d", f)
    assert_one_line_error(lambda: gc.conv1d(x, w, stride=(1, 2)),
                          "stride must be an int or a tuple of one int", f)
    assert_one_line_error(lambda: gc.nn.Conv1d(4, 6, 3, padding_mode="mirror"),
                          "Conv1d: padding_mode must be", f)
    assert_one_line_error(lambda: gc.nn.Conv1d(4, 6, 3, groups=3), "Conv1d: in_channels 4", f)


def test_conv1d_refusals_name_conv1d_and_its_own_settings():
    # these were left to conv2d, whose lines named conv2d and the (1, K) form the user never
    # wrote ("conv2d: padding must be >= 0, got (0, -1)"); torch's conv1d refuses each too
    f = "test_conv1d.py"
    x, w = np.zeros((2, 4, 9)), np.zeros((6, 4, 3))
    w0, b32 = np.zeros((6, 4, 0)), np.zeros(6, np.float32)
    for args, kwargs, message in [
            ((x, w), dict(padding=-1), "conv1d: padding must be >= 0, got -1"),
            ((x, w), dict(padding="full"), "conv1d: padding must be an int, a tuple of one "
             "int, 'same' or 'valid', got 'full'"),
            ((x, w0), {}, "conv1d: kernel size must be >= 1, got 0"),
            ((x, w, b32), {}, "conv1d: x is float64 and b float32")]:
        assert_one_line_error(lambda: gc.conv1d(*args, **kwargs), message, f)
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv1d(*map(torch.tensor, args), **kwargs)


def test_conv1d_of_a_symbolic_length_names_conv1d_and_its_own_settings():
    # review (s49): a symbolic length without one output size was refused by conv2d, naming
    # itself and the (1, K) form ("conv2d: ... height or width (kernel (1, 3), stride (1, 2)")
    w = np.zeros((6, 4, 3))
    for kwargs, why in [(dict(stride=2, padding=1), "padding 1, dilation 1\\): floor\\(\\(n-1\\) "
                         "/ 2\\) is no polynomial"),
                        (dict(padding="valid"), "stride 1, padding 0, dilation 1\\): whether "
                         "n-3 >= 0 depends on the value of n")]:
        f = gc.compile(lambda x: gc.conv1d(x, w, **kwargs), polymorphic_shapes=[("b", "_", "n")])
        with pytest.raises(GraphcError, match="^conv1d: no output size for every value of a "
                                              "symbolic length \\(kernel 3, .*" + why):
            f(np.zeros((2, 4, 9)))
    # one output size for every n: served, as torch's
    f = gc.compile(lambda x: gc.conv1d(x, w, padding=1), polymorphic_shapes=[("b", "_", "n")])
    for n in (1, 8):
        x = np.random.default_rng(n).normal(size=(2, 4, n))
        np.testing.assert_allclose(f(x), torch.nn.functional.conv1d(
            torch.tensor(x), torch.tensor(w), padding=1).numpy(), rtol=1e-12, atol=1e-12)
    assert f.recompiles == []


def test_strided_conv1d_over_a_symbolic_odd_length_matches_torch_at_every_length():
    # over 2*n+1 with stride 2 the output has n columns for every n, but the strided window
    # (the slice 0:2*n-1:2) was refused inside slice ("range 0:2*n-1:2 with symbolic bounds
    # needs step 1"); a length without one output size (n) is still refused naming conv1d
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(2, 3, 3)), rng.normal(size=2)
    spec = ["(b, 3, 2*n+1)"]
    f = gc.compile(lambda x: gc.conv1d(x, w, b, stride=2), polymorphic_shapes=spec)
    grad = gc.compile(gc.grad(lambda x: gc.sum(gc.sin(gc.conv1d(x, w, b, stride=2)))),
                      polymorphic_shapes=spec)
    for length in (3, 9, 13):
        x = rng.normal(size=(2, 3, length))
        tx = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.conv1d(tx, torch.tensor(w), torch.tensor(b), stride=2)
        torch.sin(want).sum().backward()
        assert f(x).shape == (2, 2, (length - 1) // 2)
        np.testing.assert_allclose(f(x), want.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad(x), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert f.recompiles == [] and grad.recompiles == []
    with pytest.raises(GraphcError, match="^conv1d: no output size for every value of a "
                                          "symbolic length \\(kernel 3, stride 2, padding 1"):
        gc.compile(lambda x: gc.conv1d(x, w, stride=2, padding=1),
                   polymorphic_shapes=["(b, 3, n)"])(np.zeros((2, 3, 9)))
