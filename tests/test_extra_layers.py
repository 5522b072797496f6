"""gc.local_response_norm / gc.nn.LocalResponseNorm and gc.channel_shuffle /
gc.nn.ChannelShuffle (graphc/extra_layers.py) against torch in float64: values and gradients,
eagerly and compiled, central differences, reprs and one-line errors."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
HERE = "test_extra_layers.py"


def _against_torch(ours, theirs, x, rtol=1e-13):
    """ours(x) and its eager and compiled gradients of sum(ours(x) * w) against theirs's."""
    t = torch.tensor(x, requires_grad=True)
    ref = theirs(t)
    w = np.random.default_rng(1).normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours(x), ref.detach().numpy(), rtol=rtol, atol=1e-15)
    loss = lambda x: gc.sum(ours(x) * w)  # noqa: E731
    for grad in (gc.grad(loss), gc.compile(gc.grad(loss))):
        np.testing.assert_allclose(grad(x), t.grad.numpy(), rtol=rtol, atol=1e-15)
    return loss


LRN = [dict(size=3), dict(size=4, alpha=0.5, beta=0.6, k=2.0), dict(size=1),
       dict(size=9, alpha=2.0)]


@pytest.mark.parametrize("shape", [(2, 7, 5), (2, 7, 3, 4), (2, 6, 2, 3, 2)])
@pytest.mark.parametrize("kw", range(len(LRN)))
def test_local_response_norm_is_torchs_for_3d_4d_and_5d_inputs(shape, kw):
    kw = LRN[kw]
    x = np.random.default_rng(0).normal(size=shape)
    loss = _against_torch(lambda x: gc.local_response_norm(x, **kw),
                          lambda t: TF.local_response_norm(t, **kw), x)
    layer, ref_layer = gc.nn.LocalResponseNorm(**kw), torch.nn.LocalResponseNorm(**kw)
    _against_torch(layer, ref_layer, x)
    assert repr(layer) == repr(ref_layer)
    # central differences of the loss, in float64
    g = np.asarray(gc.grad(loss)(x))
    for index in ((0, 0) + (0,) * (len(shape) - 2), (1, 3) + (1,) * (len(shape) - 2)):
        up, down = x.copy(), x.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric = (float(loss(up)) - float(loss(down))) / 2e-6
        np.testing.assert_allclose(g[index], numeric, rtol=1e-7)


@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((2, 12, 3, 4), 4),
                                           ((1, 6, 2, 3, 2), 2), ((2, 5, 3), 1)])
def test_channel_shuffle_is_torchs(shape, groups):
    x = np.random.default_rng(2).normal(size=shape)
    _against_torch(lambda x: gc.channel_shuffle(x, groups),
                   lambda t: TF.channel_shuffle(t, groups), x, rtol=0)
    layer, ref_layer = gc.nn.ChannelShuffle(groups), torch.nn.ChannelShuffle(groups)
    np.testing.assert_array_equal(layer(x), ref_layer(torch.tensor(x)).numpy())
    assert repr(layer) == repr(ref_layer)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.local_response_norm(x[0, 0], 2), "local_response_norm: x must have at least 3"),
    (lambda x: gc.local_response_norm(x, 0), "local_response_norm: size must be a positive int"),
    (lambda x: gc.local_response_norm(x, 2, alpha="a"), "local_response_norm: alpha must be a"),
    (lambda x: gc.nn.LocalResponseNorm(2.5), "LocalResponseNorm: size must be a positive int"),
    (lambda x: gc.nn.LocalResponseNorm(2, beta=None), "LocalResponseNorm: beta must be a number"),
    (lambda x: gc.channel_shuffle(x, 4), "channel_shuffle: x's 6 channels must divide by groups"),
    (lambda x: gc.channel_shuffle(x[0, 0], 2), "channel_shuffle: x must have at least 3 axes"),
    (lambda x: gc.nn.ChannelShuffle(0), "ChannelShuffle: groups must be a positive int, got 0"),
    (lambda x: gc.nn.ChannelShuffle(groups=2.0), "ChannelShuffle: groups must be a positive int"),
])
def test_errors_are_one_line_naming_the_layer_and_argument(call, message):
    assert_one_line_error(lambda: call(np.ones((2, 6, 3, 4))), message, HERE)
