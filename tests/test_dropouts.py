"""gc.dropout1d/2d/3d, gc.alpha_dropout, gc.feature_alpha_dropout and gc.nn.AlphaDropout /
FeatureAlphaDropout (graphc/dropouts.py) against torch's: which values survive, their scale,
alpha dropout's constants (read off torch's own outputs), gradients, keys and errors."""
import re

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")
TF = torch.nn.functional


@pytest.mark.parametrize("fn, shape, lead", [
    (gc.dropout1d, (8, 64, 5), 2), (gc.dropout1d, (64, 5), 1),
    (gc.dropout2d, (8, 64, 3, 2), 2), (gc.dropout2d, (8, 64, 5), 2),  # 3-d: (N, C, L)
    (gc.dropout3d, (4, 64, 2, 2, 2), 2), (gc.dropout3d, (64, 2, 2, 2), 1),
])
def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest(fn, shape, lead):
    x = np.random.default_rng(0).standard_normal(shape) + 3.0  # no zeros of its own
    y = np.asarray(fn(x, 0.25, seed=5, salt=1))
    per_channel = y.reshape(shape[:lead] + (-1,))
    ratio = per_channel / x.reshape(per_channel.shape)
    dropped = np.all(ratio == 0.0, axis=-1)
    kept = np.all(np.isclose(ratio, 1 / 0.75), axis=-1)
    assert np.all(dropped | kept)
    assert 0.1 < dropped.mean() < 0.4
    np.testing.assert_array_equal(y, fn(x, 0.25, seed=5, salt=1))  # the same key, the same
    assert fn(x, 0.25, training=False, seed=5) is x
    np.testing.assert_array_equal(np.asarray(fn(x, 1.0, seed=5)), 0.0)


def test_channel_dropout_gradient_is_its_mask_and_keys_come_from_rng_key():
    x = np.random.default_rng(1).standard_normal((4, 16, 3, 3)) + 3.0
    with gc.nn.rng_key(7):
        y = np.asarray(gc.dropout2d(x, 0.5))
    with gc.nn.rng_key(7):
        g = np.asarray(gc.grad(lambda x: gc.sum(gc.dropout2d(x, 0.5)))(x))
    np.testing.assert_allclose(g, y / x)
    step = gc.compile(lambda x, key: gc.dropout2d(x, 0.5, seed=key))
    np.testing.assert_array_equal(np.asarray(step(x, np.int64(3))),
                                  np.asarray(step(x, np.int64(3))))
    assert not np.array_equal(np.asarray(step(x, np.int64(3))), np.asarray(step(x, np.int64(4))))


def _torch_alpha(fn, x, p, feature):
    """torch's output and, read off it, which values it kept."""
    out = fn(torch.tensor(x), p, training=True).numpy()
    a = 1.0 / np.sqrt((1.7580993408473766 ** 2 * p + 1.0) * (1.0 - p))
    dropped_value = -1.7580993408473766 * a * (1.0 - p)
    dropped = np.isclose(out, dropped_value, rtol=1e-12, atol=1e-12)
    return out, dropped


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("feature", [False, True])
def test_alpha_dropout_values_are_torchs_given_the_same_mask(p, feature):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 32, 4, 4))
    ours_fn = gc.feature_alpha_dropout if feature else gc.alpha_dropout
    theirs_fn = TF.feature_alpha_dropout if feature else TF.alpha_dropout
    torch.manual_seed(0)
    theirs, their_dropped = _torch_alpha(theirs_fn, x, p, feature)
    ours = np.asarray(ours_fn(x, p, training=True, seed=9, salt=0))
    a = 1.0 / np.sqrt((1.7580993408473766 ** 2 * p + 1.0) * (1.0 - p))
    our_dropped = np.isclose(ours, -1.7580993408473766 * a * (1.0 - p), rtol=1e-12, atol=1e-12)
    # where both kept a value, and where both dropped one, the results are torch's
    both_kept, both_dropped = ~our_dropped & ~their_dropped, our_dropped & their_dropped
    assert both_kept.any() and both_dropped.any()
    np.testing.assert_allclose(ours[both_kept], theirs[both_kept], rtol=1e-12)
    np.testing.assert_allclose(ours[both_dropped], theirs[both_dropped], rtol=1e-12)
    assert abs(our_dropped.mean() - p) < 0.1 and abs(their_dropped.mean() - p) < 0.1
    if feature:  # whole channels
        per_channel = our_dropped.reshape(16, 32, -1)
        assert np.all(per_channel.all(-1) | ~per_channel.any(-1))
    # SELU's fixed point kept: zero mean, unit variance
    big = rng.standard_normal(400_000)
    kept_stats = np.asarray(gc.alpha_dropout(big, p, training=True, seed=1))
    assert abs(kept_stats.mean()) < 0.01 and abs(kept_stats.var() - 1.0) < 0.02


def test_alpha_dropout_gradient_and_defaults():
    x = np.random.default_rng(3).standard_normal((8, 8))
    assert gc.alpha_dropout(x, 0.5) is x  # training=False by default, as torch's
    y = np.asarray(gc.alpha_dropout(x, 0.3, training=True, seed=2, salt=4))
    g = np.asarray(gc.grad(lambda x: gc.sum(gc.alpha_dropout(x, 0.3, training=True, seed=2,
                                                             salt=4)))(x))
    a = 1.0 / np.sqrt((1.7580993408473766 ** 2 * 0.3 + 1.0) * 0.7)
    dropped = np.isclose(y, -1.7580993408473766 * a * 0.7)
    np.testing.assert_allclose(g, np.where(dropped, 0.0, a))
    np.testing.assert_array_equal(np.asarray(gc.alpha_dropout(x, 1.0, training=True)), 0.0)


def test_alpha_dropout_layers_follow_train_and_eval():
    x = np.random.default_rng(4).standard_normal((4, 6, 5))
    for layer, fn in ((gc.nn.AlphaDropout(0.4), gc.alpha_dropout),
                      (gc.nn.FeatureAlphaDropout(0.4), gc.feature_alpha_dropout)):
        with gc.nn.rng_key(5):
            got = np.asarray(layer(x))
        with gc.nn.rng_key(5):
            want = np.asarray(fn(x, 0.4, training=True))
        np.testing.assert_array_equal(got, want)
        assert not np.allclose(got, x)
        layer.eval()
        assert np.array_equal(np.asarray(layer(x)), x)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.dropout2d(x, 1.5), "dropout2d: p must be a number in [0, 1], got 1.5"),
    (lambda x: gc.dropout2d(x[0, 0], 0.5), "dropout2d: x must be 4-d (N, C, ...) or 3-d"),
    (lambda x: gc.alpha_dropout(x.astype(np.int64), 0.5, training=True),
     "alpha_dropout of an int64 value"),
    (lambda x: gc.feature_alpha_dropout(x[0, 0, 0], 0.5, training=True),
     "feature_alpha_dropout: x must have at least 2 axes"),
    (lambda x: gc.dropout1d(x[0], 0.5, training="yes"), "training must be True or False"),
    (lambda x: gc.nn.AlphaDropout(2), "AlphaDropout: p must be in [0, 1], got 2"),
])
def test_errors_are_one_line_naming_the_argument(call, message):
    with pytest.raises(GraphcError) as info:
        call(np.ones((2, 3, 4, 5)))
    first, *where = str(info.value).splitlines()
    assert message in first and "test_dropouts.py" in where[0]


def test_gc_dropout_at_rate_one_zeroes_everything_as_torchs_without_a_key():
    """gc.dropout owns dropout's rate 1 (every layer's p = 1 goes through it): every value
    zeroed, as torch's F.dropout(p=1), NaN kept NaN and a gradient of zeros; no seed read
    and no salt taken, so the next site's mask is the one it draws without it. It was
    refused by the mask op ("rate must be in [0, 1), got 1.0")."""
    x = np.array([[1.5, -2.0, np.nan], [0.0, np.inf, 3.0]])
    want = TF.dropout(torch.tensor(x), p=1.0).numpy()
    for seed in (None, 3):
        y = np.asarray(gc.dropout(x, 1.0, seed))
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    grad = gc.grad(lambda v: gc.sum(gc.dropout(v, 1.0, 3) * v))(np.ones(3))
    np.testing.assert_array_equal(grad, np.zeros(3))
    after = gc.compile(lambda v: gc.dropout(gc.dropout(v, 1.0, 3) + v, 0.5, 3))
    alone = gc.compile(lambda v: gc.dropout(v, 0.5, 3))
    np.testing.assert_array_equal(after(np.ones(64)), alone(np.ones(64)))
    with pytest.raises(GraphcError, match=r"dropout: rate must be a number in \[0, 1\], "
                       "got 1.5"):
        gc.dropout(x, 1.5, 3)


@pytest.mark.parametrize("layer", ["AlphaDropout", "FeatureAlphaDropout"])
def test_an_alpha_dropout_at_rate_one_draws_no_key_as_every_dropout(layer):
    """Review r15 (s48) of a5394ec, which made every dropout's p = 1 draw no key (gc.dropout
    zeroes without one): AlphaDropout(1.0) and FeatureAlphaDropout(1.0) still drew one from
    the generator that they never used, so the next Dropout's mask was another than after
    Dropout(1.0)."""
    x = gc.tensor(np.ones((4, 3, 5), np.float32))
    masks = []
    for first in (gc.nn.Dropout(1.0), getattr(gc.nn, layer)(1.0)):
        gc.manual_seed(0)
        np.testing.assert_array_equal(np.asarray(first(x)), np.zeros((4, 3, 5)))
        masks.append(np.asarray(gc.nn.Dropout(0.5)(x)))
    np.testing.assert_array_equal(masks[0], masks[1])


def _dropout_in_block(key):
    with gc.nn.rng_key(key):
        return gc.nn.Dropout(0.5)(gc.tensor(np.ones((2, 4), np.float32)))


@pytest.mark.parametrize("key, got", [
    (gc.random.key(3), "int64 array of shape (2,); a gc.random key is not a seed: pass an int"),
    (1.5, "got 1.5"),
    (np.arange(3), "int64 array of shape (3,)"),
    # review r1: a Python int past int64 passed the check, then failed at the Dropout as
    # numpy's 'OverflowError: Python int too large to convert to C long'
    (2**63, "got 9223372036854775808, which does not fit in int64"),
    (-2**70, "which does not fit in int64"),
    (np.array(3, np.uint32), "uint32 array of shape (); cast it to int64"),
])
def test_rng_key_refuses_what_is_no_integer_scalar_at_the_block(key, got):
    """A gc.random key handed to rng_key, as a JAX user would, failed only at the Dropout
    inside, as `dropout_mask(i64[2]): the seed must be an integer scalar`, naming neither
    rng_key nor the key; now one line at the `with`."""
    assert_one_line_error(lambda: _dropout_in_block(key),
                          "rng_key: the key must be an integer scalar", "test_dropouts.py")
    with pytest.raises(gc.GraphcError, match=re.escape(got)):
        _dropout_in_block(key)
    # integer scalars still key the masks: the same key, the same mask
    for seed in (3, np.int64(3), np.array(3)):
        np.testing.assert_array_equal(np.asarray(_dropout_in_block(seed).data),
                                      np.asarray(_dropout_in_block(3).data))


@pytest.mark.parametrize("name, call, got", [
    ("dropout", lambda x: gc.dropout(x, 0.5, seed=gc.random.key(1)),
     "int64 array of shape (2,); a gc.random key is not a seed: pass an int seed"),
    ("rrelu", lambda x: gc.rrelu(x, training=True, seed=gc.random.key(1)),
     "int64 array of shape (2,); a gc.random key is not a seed"),
    ("dropout", lambda x: gc.dropout(x, 0.5, seed=1.5), "got 1.5"),
    ("dropout", lambda x: gc.dropout(x, 0.5, seed=2**64), "which does not fit in int64"),
])
def test_a_seed_that_is_no_integer_scalar_is_named_as_rng_keys_key_is(name, call, got):
    """gc.dropout(x, p, seed=gc.random.key(1)) failed in the mask op as 'dropout:
    dropout_mask(i64[2]): the seed must be an integer scalar', not saying that a gc.random
    key is not a seed (as rng_key's line says of its key); rrelu's seed= too."""
    x = -np.ones((2, 4))
    assert_one_line_error(lambda: call(x), f"{name}: seed must be an integer scalar",
                          "test_dropouts.py")
    with pytest.raises(gc.GraphcError, match=re.escape(got)):
        call(x)
    # an integer seed still draws a mask: the same seed (and salt), the same one
    np.testing.assert_array_equal(np.asarray(gc.dropout(x, 0.5, seed=np.int64(7), salt=0)),
                                  np.asarray(gc.dropout(x, 0.5, seed=7, salt=0)))


# ---- rrelu / RReLU: slopes drawn from dropout's keys ----------------------------------------
def test_rrelu_draws_each_negative_values_slope_uniform_in_lower_upper():
    x = np.random.default_rng(3).standard_normal((300, 400))
    neg = x < 0
    for lower, upper in ((1 / 8, 1 / 3), (0.01, 0.9)):
        y = np.asarray(gc.rrelu(x, lower, upper, training=True, seed=11))
        np.testing.assert_array_equal(y[~neg], x[~neg])
        slopes = y[neg] / x[neg]
        assert lower <= slopes.min() < lower + 1e-3 and upper - 1e-3 < slopes.max() <= upper
        # uniform: mean (lower + upper) / 2, standard deviation (upper - lower) / sqrt(12)
        assert abs(slopes.mean() - (lower + upper) / 2) < 0.005 * (upper - lower)
        assert abs(slopes.std() - (upper - lower) / 12 ** 0.5) < 0.005 * (upper - lower)
        assert len(np.unique(slopes)) > 0.99 * slopes.size  # one draw per element


def test_rrelu_gradient_is_the_slope_drawn_and_a_compiled_step_replays_it_for_a_key():
    x = np.random.default_rng(4).standard_normal((6, 50))
    x[0, :3] = 0.0  # torch's rule: a value at 0 takes a drawn slope too (its gradient)
    w = np.random.default_rng(5).standard_normal(x.shape)
    forward = gc.compile(lambda x, key: gc.rrelu(x, training=True, seed=key))
    y = np.asarray(forward(x, np.int64(3)))
    np.testing.assert_array_equal(y, np.asarray(forward(x, np.int64(3))))
    assert not np.array_equal(y, np.asarray(forward(x, np.int64(4))))
    slopes = np.where(x > 0, 1.0, y / np.where(x == 0, 1.0, x))
    loss = lambda x, key: gc.sum(gc.rrelu(x, training=True, seed=key) * w)  # noqa: E731
    g = np.asarray(gc.compile(gc.grad(loss))(x, np.int64(3)))
    np.testing.assert_allclose(g[x != 0], (slopes * w)[x != 0], rtol=1e-14)
    assert np.all((1 / 8 <= g[x == 0] / w[x == 0]) & (g[x == 0] / w[x == 0] <= 1 / 3))
    # central differences of the compiled (deterministic for its key) function, in float64
    f = gc.compile(loss)
    for index in ((1, 0), (2, 7), (5, 49)):
        up, down = x.copy(), x.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric = (float(f(up, np.int64(3))) - float(f(down, np.int64(3)))) / 2e-6
        np.testing.assert_allclose(g[index], numeric, rtol=1e-7)
    # the eager gradient, in an rng_key block, is that of the eager values in the same block
    with gc.nn.rng_key(9):
        y_eager = np.asarray(gc.rrelu(x, training=True))
    with gc.nn.rng_key(9):
        g_eager = np.asarray(gc.grad(lambda x: gc.sum(gc.rrelu(x, training=True) * w))(x))
    nonzero = x != 0
    np.testing.assert_allclose(g_eager[nonzero], (y_eager / np.where(nonzero, x, 1.0) * w)
                               [nonzero], rtol=1e-14)


def test_rrelu_in_eval_is_torchs_leaky_relu_of_the_mean_slope():
    x = np.random.default_rng(6).standard_normal((3, 40))
    x[0, 0] = 0.0
    t = torch.tensor(x, requires_grad=True)
    w = np.random.default_rng(7).standard_normal(x.shape)
    ref = TF.rrelu(t, 0.1, 0.3)
    (ref * torch.tensor(w)).sum().backward()
    layer, ref_layer = gc.nn.RReLU(0.1, 0.3), torch.nn.RReLU(0.1, 0.3)
    assert repr(layer) == repr(ref_layer) and repr(gc.nn.RReLU()) == repr(torch.nn.RReLU())
    layer.eval()
    for value in (gc.rrelu(x, 0.1, 0.3), layer(x)):
        np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-15)
    for grad in (gc.grad(lambda x: gc.sum(gc.rrelu(x, 0.1, 0.3) * w)),
                 gc.compile(gc.grad(lambda x: gc.sum(layer(x) * w)))):
        np.testing.assert_allclose(grad(x), t.grad.numpy(), rtol=1e-15)


def test_rrelu_layer_draws_from_the_dropout_key_while_training():
    x = np.random.default_rng(8).standard_normal((4, 30))
    layer = gc.nn.RReLU()
    with gc.nn.rng_key(5):
        got = np.asarray(layer(x))
    with gc.nn.rng_key(5):
        want = np.asarray(gc.rrelu(x, training=True))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(np.asarray(layer(x)), np.asarray(layer(x)))  # a fresh key each
    step = gc.compile(lambda x: layer(x))  # the traced step's implicit dropout key
    a, b = np.asarray(step(x)), np.asarray(step(x))
    assert not np.array_equal(a, b)
    slopes = a[x < 0] / x[x < 0]
    assert np.all((1 / 8 <= slopes) & (slopes <= 1 / 3))
    with gc.nn.rng_key(5):  # a block around a compiled call: its key, read at the call
        keyed = np.asarray(step(x))
    with gc.nn.rng_key(5):
        np.testing.assert_array_equal(keyed, np.asarray(step(x)))
    layer.eval()
    np.testing.assert_allclose(np.asarray(step(x)),
                               TF.leaky_relu(torch.tensor(x), (1 / 8 + 1 / 3) / 2).numpy())


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.rrelu(x, 0.5, 0.1, training=True),
     "rrelu: lower (0.5) must be at most upper (0.1)"),
    (lambda x: gc.rrelu(x, "a"), "rrelu: lower must be a number"),
    (lambda x: gc.rrelu(x, training="yes"), "rrelu: training must be True or False"),
    (lambda x: gc.rrelu(x.astype(np.int64), training=True), "rrelu of an int64 value"),
    (lambda x: gc.nn.RReLU(0.5, 0.1), "RReLU: lower (0.5) must be at most upper (0.1)"),
    (lambda x: gc.nn.RReLU(upper=[1]), "RReLU: upper must be a number"),
])
def test_rrelu_errors_are_one_line_naming_the_argument(call, message):
    with pytest.raises(GraphcError) as info:
        call(np.ones((2, 3, 4, 5)))
    first, *where = str(info.value).splitlines()
    assert message in first and "test_dropouts.py" in where[0]


@pytest.mark.parametrize("name, call", [
    ("dropout1d", lambda x, s: gc.dropout1d(x[..., 0, 0], 0.5, seed=s, salt=0)),
    ("dropout2d", lambda x, s: gc.dropout2d(x[..., 0], 0.5, seed=s, salt=0)),
    ("dropout3d", lambda x, s: gc.dropout3d(x, 0.5, seed=s, salt=0)),
    ("alpha_dropout", lambda x, s: gc.alpha_dropout(x, 0.5, True, seed=s, salt=0)),
    ("feature_alpha_dropout", lambda x, s: gc.feature_alpha_dropout(x, 0.5, True, seed=s, salt=0)),
])
def test_review_r13_the_channel_and_alpha_dropouts_name_themselves_refusing_a_seed(name, call):
    """Review r13 of e015459: gc.dropout's and rrelu's seed= are checked naming the call, but
    dropout1d/2d/3d, alpha_dropout and feature_alpha_dropout, which draw through gc.dropout,
    said 'dropout: seed must be an integer scalar', naming a function never called."""
    x = np.ones((2, 3, 4, 4, 2))
    assert_one_line_error(lambda: call(x, gc.random.key(1)),
                          f"{name}: seed must be an integer scalar", "test_dropouts.py")
    assert_one_line_error(lambda: gc.compile(lambda v: call(v, gc.random.key(1)))(x),
                          f"{name}: seed must be an integer scalar", "test_dropouts.py")
    # an integer seed (traced too) still draws the mask it drew
    np.testing.assert_array_equal(np.asarray(gc.compile(call)(x, np.int64(7))),
                                  np.asarray(call(x, 7)))


def test_review_r13_a_uint64_seed_past_int64_is_refused_as_a_python_int_is():
    """Review r13 of e015459: seed_problem took any numpy integer, so np.uint64(2**63 + 5)
    wrapped onto the seed -2**63 + 5 and drew its masks (2**63 + 5, a Python int, was
    refused); gc.nn.rng_key's key shares the check."""
    x = np.ones((4, 8))
    for call in (lambda: gc.dropout(x, 0.5, np.uint64(2**63 + 5)),
                 lambda: gc.nn.rng_key(np.uint64(2**63 + 5)).__enter__()):
        with pytest.raises(gc.GraphcError, match=re.escape(
                "got 9223372036854775813, which does not fit in int64")):
            call()
    np.testing.assert_array_equal(np.asarray(gc.dropout(x, 0.5, np.uint64(5), salt=0)),
                                  np.asarray(gc.dropout(x, 0.5, 5, salt=0)))
