"""graphc.nn.functional against torch.nn.functional: every name it holds called with torch's
positional arguments and with them all as keywords (torch's parameter names), in float64,
values and gradients, eagerly and compiled; the adapters' own behaviour (legacy reduction,
implicit softmax dim, running statistics, dropout, one_hot, pad); and the list of torch's names
it lacks, which the README prints."""
import inspect
import os
import re
import warnings

import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from errorcheck import assert_one_line_error as _one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(0)


def assert_one_line_error(call, message):
    _one_line_error(call, message, "test_nn_functional.py")


def r(*shape):
    return RNG.standard_normal(shape)


def pos(*shape):
    return RNG.uniform(0.2, 2.0, shape)


def ints(high, *shape, low=0):
    return RNG.integers(low, high, shape)


def signs(*shape):
    return RNG.choice([-1.0, 1.0], shape)


def _pool_indices(pool, x, *args):
    return pool(torch.tensor(x), *args, return_indices=True)[1].numpy()


_X4 = r(1, 2, 4, 4)
_X1, _X3 = r(2, 3, 8), r(1, 2, 4, 4, 4)
_LOGP = np.log(np.full((2, 3, 4), 1 / 4) + pos(2, 3, 4) * 0.1)
_MULTILABEL = np.array([[3, 0, -1, 1], [1, 2, 3, -1], [0, -1, 2, 2]])

# (name, positional args as torch takes them, keyword-only arguments): the float64 arrays
# are differentiated, the rest held fixed
CASES = [
    *[(name, (r(2, 3, 4),), {}) for name in (
        "relu", "selu", "silu", "mish", "sigmoid", "tanh", "softsign", "tanhshrink",
        "logsigmoid")],
    *[(name, (4 * r(2, 3, 4),), {}) for name in ("relu6", "hardsigmoid", "hardswish")],
    ("relu", (r(5), False), {}),
    ("elu", (r(2, 3), 0.7, False), {}),
    ("celu", (r(2, 3), 0.7), {}),
    ("leaky_relu", (r(2, 3), 0.2, False), {}),
    ("hardtanh", (r(2, 3), -0.5, 0.6, False), {}),
    ("threshold", (r(2, 3), 0.1, 2.0, False), {}),
    ("glu", (r(4, 3), 0), {}),
    ("hardshrink", (r(2, 3), 0.3), {}),
    ("softshrink", (r(2, 3), 0.3), {}),
    ("softplus", (r(2, 3), 2.0, 1.0), {}),
    ("prelu", (r(2, 3, 4), pos(3)), {}),
    ("rrelu", (r(2, 3), 0.1, 0.3, False, False), {}),
    ("gelu", (r(2, 3),), {}),
    ("gelu", (r(2, 3),), {"approximate": "tanh"}),
    ("softmax", (r(2, 3, 4), 1, 3, None), {}),
    ("log_softmax", (r(2, 3, 4), -1), {}),
    ("softmin", (r(2, 3, 4), 0), {}),
    ("dropout", (r(2, 3), 0.3, False, False), {}),
    ("dropout1d", (r(2, 3, 4), 0.3, False), {}),
    ("dropout2d", (r(2, 3, 4, 5), 0.3, False), {}),
    ("dropout3d", (r(2, 3, 2, 2, 2), 0.3, False), {}),
    ("alpha_dropout", (r(2, 3), 0.2, False), {}),
    ("feature_alpha_dropout", (r(2, 3, 4), 0.2, False), {}),
    ("conv1d", (r(2, 3, 8), r(4, 3, 3), r(4), 2, 1, 1, 1), {}),
    ("conv2d", (r(2, 2, 6, 6), r(4, 1, 3, 3), r(4), 1, 2, 2, 2), {}),
    ("conv3d", (r(1, 2, 4, 4, 4), r(2, 2, 2, 2, 2), None, 1, 0, 1, 1), {}),
    ("conv_transpose1d", (r(2, 3, 5), r(3, 2, 3), r(2), 2, 1, 1, 1, 1), {}),
    ("conv_transpose2d", (r(1, 2, 4, 4), r(2, 3, 3, 3), r(3), 2, 1, 1, 1, 1), {}),
    ("conv_transpose3d", (r(1, 2, 3, 3, 3), r(2, 2, 2, 2, 2), None, 1, 0, 0, 1, 1), {}),
    ("max_pool1d", (r(2, 3, 9), 3, 2, 1, 1, False, False), {}),
    ("max_pool2d", (r(2, 3, 7, 7), 3, 2, 1, 1, True, False), {}),
    ("max_pool3d", (r(1, 2, 5, 5, 5), 2, 2, 0, 1, False, False), {}),
    ("avg_pool1d", (r(2, 3, 9), 3, 2, 1, True, False), {}),
    ("avg_pool2d", (r(2, 3, 7, 7), 3, 2, 1, False, True, None), {}),
    ("avg_pool3d", (r(1, 2, 5, 5, 5), 2, 2, 1, False, False, 3), {}),
    ("adaptive_avg_pool1d", (r(2, 3, 9), 4), {}),
    ("adaptive_avg_pool2d", (r(2, 3, 7, 7), (3, 2)), {}),
    ("adaptive_avg_pool3d", (r(1, 2, 5, 5, 5), 2), {}),
    ("adaptive_max_pool1d", (r(2, 3, 9), 4, False), {}),
    ("adaptive_max_pool2d", (r(2, 3, 7, 7), (3, 2), False), {}),
    ("adaptive_max_pool3d", (r(1, 2, 5, 5, 5), 2, False), {}),
    ("lp_pool1d", (r(2, 3, 9), 2, 3, 2, False), {}),
    ("lp_pool2d", (r(2, 3, 6, 6), 2, 2, 2, False), {}),
    ("lp_pool3d", (r(1, 2, 4, 4, 4), 2, 2, None, False), {}),
    ("max_unpool1d", (r(2, 3, 4), _pool_indices(TF.max_pool1d, _X1, 2), 2, None, 0, None), {}),
    ("max_unpool2d", (r(1, 2, 2, 2), _pool_indices(TF.max_pool2d, _X4, 2), 2, 2, 0, None), {}),
    ("max_unpool3d", (r(1, 2, 2, 2, 2), _pool_indices(TF.max_pool3d, _X3, 2), 2), {}),
    ("fold", (r(1, 8, 9), (4, 4), 2, 1, 0, 1), {}),
    ("unfold", (r(1, 2, 4, 4), 2, 1, 0, 1), {}),
    ("pixel_shuffle", (r(1, 8, 2, 3), 2), {}),
    ("pixel_unshuffle", (r(1, 2, 4, 6), 2), {}),
    ("channel_shuffle", (r(1, 6, 2, 2), 3), {}),
    ("interpolate", (r(1, 2, 4, 4), None, 2.0, "bilinear", False, None, False), {}),
    ("group_norm", (r(2, 4, 3, 3), 2, r(4), r(4), 1e-5), {}),
    ("local_response_norm", (r(2, 5, 3, 3), 3, 1e-3, 0.75, 1.0), {}),
    ("layer_norm", (r(2, 3, 4, 5), (4, 5), r(4, 5), r(4, 5), 1e-5), {}),
    ("layer_norm", (r(2, 3), [3]), {}),
    ("rms_norm", (r(2, 3, 4), (3, 4), r(3, 4), 1e-6), {}),
    ("batch_norm", (r(4, 3, 2), None, None, r(3), r(3), True, 0.1, 1e-5), {}),
    ("batch_norm", (r(4, 3, 2), r(3), pos(3), r(3), r(3), False, 0.1, 1e-5), {}),
    ("instance_norm", (r(2, 3, 5), None, None, r(3), r(3), True, 0.1, 1e-5), {}),
    ("instance_norm", (r(2, 3, 5), r(3), pos(3), r(3), r(3), False, 0.1, 1e-5), {}),
    ("pad", (r(2, 3, 4), (1, 2, 0, 1), "constant", 0.5), {}),
    ("pad", (r(2, 3, 4), (-1, 2)), {}),
    ("pad", (r(1, 2, 4, 5), (1, 2, 2, 1), "reflect"), {}),
    ("pad", (r(1, 2, 4, 5), (1, 2, 2, 1), "replicate", None), {}),
    ("pad", (r(2, 4, 5), (1, 2), "circular"), {}),
    ("embedding", (ints(10, 3, 4), r(10, 5), 2, None, 2.0, False, False), {}),
    ("one_hot", (ints(5, 2, 3), 5), {}),
    ("normalize", (r(2, 3, 4), 3.0, 1, 1e-12, None), {}),
    ("linear", (r(2, 3), r(4, 3), r(4)), {}),
    ("bilinear", (r(2, 3), r(2, 4), r(5, 3, 4), r(5)), {}),
    ("cosine_similarity", (r(4, 5), r(4, 5), 1, 1e-8), {}),
    ("pairwise_distance", (r(4, 5), r(4, 5), 3.0, 1e-6, True), {}),
    ("scaled_dot_product_attention", (r(1, 2, 3, 4), r(1, 2, 5, 4), r(1, 2, 5, 4), None, 0.0,
                                      False), {"scale": 0.3}),
    ("embedding_bag", (ints(10, 2, 3), r(10, 4), None, None, 2, False, "sum"), {}),
    ("cross_entropy", (r(3, 5), ints(5, 3), pos(5), None, 1, None, "mean", 0.1), {}),
    ("cross_entropy", (r(2, 5, 3), ints(5, 2, 3)), {}),
    ("cross_entropy", (r(2, 5, 3), np.exp(_LOGP[:, :, :3].repeat(2, 1)[:, :5])), {}),
    ("nll_loss", (np.log(pos(3, 5)), ints(5, 3), pos(5), None, -100, None, "sum"), {}),
    ("nll_loss", (np.log(pos(2, 5, 3)), ints(5, 2, 3)), {}),
    ("binary_cross_entropy", (RNG.uniform(0.1, 0.9, (3, 4)), RNG.uniform(0, 1, (3, 4)),
                              pos(3, 4)), {}),
    ("binary_cross_entropy_with_logits", (r(3, 4), RNG.uniform(0, 1, (3, 4)), pos(3, 4), None,
                                          None, "sum", pos(4)), {}),
    ("cosine_embedding_loss", (r(4, 5), r(4, 5), signs(4), 0.1), {}),
    ("margin_ranking_loss", (r(5), r(5), signs(5), 0.2, None, None, "sum"), {}),
    ("hinge_embedding_loss", (r(5), signs(5), 1.5), {}),
    ("kl_div", (_LOGP, np.exp(_LOGP[::-1]), None, None, "batchmean", False), {}),
    ("l1_loss", (r(3, 4), r(3, 4)), {}),
    ("mse_loss", (r(3, 4), r(3, 4), None, None, "sum"), {}),
    ("smooth_l1_loss", (r(3, 4), r(3, 4), None, None, "mean", 0.5), {}),
    ("huber_loss", (r(3, 4), r(3, 4), "mean", 0.7), {}),
    ("soft_margin_loss", (r(3, 4), signs(3, 4)), {}),
    ("multilabel_margin_loss", (r(3, 4), _MULTILABEL), {}),
    ("multilabel_soft_margin_loss", (r(3, 4), ints(2, 3, 4).astype(float), pos(4)), {}),
    ("multi_margin_loss", (r(3, 4), ints(4, 3), 2, 0.5, pos(4)), {}),
    ("poisson_nll_loss", (r(3, 4), pos(3, 4), True, True, None, 1e-8, None, "mean"), {}),
    ("gaussian_nll_loss", (r(3, 4), r(3, 4), pos(3, 4), True, 1e-6, "sum"), {}),
    ("triplet_margin_loss", (r(4, 5), r(4, 5), r(4, 5), 0.5, 2, 1e-6, True), {}),
    ("triplet_margin_with_distance_loss", (r(4, 5), r(4, 5), r(4, 5)),
     {"margin": 0.5, "swap": True}),
    *[(name, (r(2, 3),), {}) for name in ("relu_", "selu_")],
    ("elu_", (r(2, 3), 0.7), {}),
    ("celu_", (r(2, 3), 0.7), {}),
    ("leaky_relu_", (r(2, 3), 0.2), {}),
    ("hardtanh_", (r(2, 3), -0.5, 0.6), {}),
    ("threshold_", (r(2, 3), 0.1, 2.0), {}),
    ("rrelu_", (r(2, 3), 0.1, 0.3, False), {}),
    ("max_pool1d_with_indices", (r(2, 3, 9), 3, 2, 1, 1, False, False), {}),
    ("max_pool2d_with_indices", (r(2, 3, 7, 7), 3, 2, 1, 1, True), {}),
    ("max_pool3d_with_indices", (r(1, 2, 5, 5, 5), 2), {}),
    ("adaptive_max_pool1d_with_indices", (r(2, 3, 9), 4, False), {}),
    ("adaptive_max_pool2d_with_indices", (r(2, 3, 7, 7), (3, 2)), {}),
    ("adaptive_max_pool3d_with_indices", (r(1, 2, 5, 5, 5), 2), {}),
    # (every mode, padding and align_corners eagerly: tests/test_nn_functional_more.py)
    *[("grid_sample", (r(2, 3, 4, 5), RNG.uniform(-1.3, 1.3, (2, 3, 2, 2)), mode, padding,
                       align), {})
      for mode, padding, align in (("bilinear", "zeros", True), ("bilinear", "border", False),
                                   ("bilinear", "reflection", False),
                                   ("nearest", "reflection", True))],
    ("grid_sample", (r(1, 2, 3, 3), RNG.uniform(-1, 1, (1, 2, 4, 2))), {}),
    ("pdist", (r(5, 3), 2), {}),
    ("pdist", (r(4, 3), 3.5), {}),
    ("pdist", (r(4, 3), 1), {}),
    ("pdist", (r(4, 3), float("inf")), {}),
    ("ctc_loss", (np.log(np.full((6, 2, 4), 0.25) + pos(6, 2, 4) * 0.1),
                  ints(4, 2, 3, low=1), np.array([6, 5]), np.array([3, 2]), 0, "mean",
                  False), {}),
    # (session 55: every mode, padding and alignment in tests/test_grid_sample_volumes.py
    # and tests/test_affine_grid.py)
    ("affine_grid", (r(2, 2, 3), (2, 3, 4, 5), False), {}),
    ("affine_grid", (r(1, 3, 4), (1, 2, 2, 3, 4), True), {}),
    ("grid_sample", (r(1, 2, 2, 3, 4), RNG.uniform(-1.3, 1.3, (1, 2, 2, 2, 3)), "bilinear",
                     "border", False), {}),
    ("grid_sample", (r(1, 2, 4, 5), RNG.uniform(-1.3, 1.3, (1, 2, 3, 2)), "bicubic",
                     "reflection", True), {}),
]
# torch's hardsigmoid and hardswish backward kernels multiply by 1.0f / 6.0f, a float32
# constant, in float64 too: their gradients are 3e-8 (relatively) off the exact 1/6; celu's
# is 7e-8 off exp(x / alpha) (graphc's is within 1e-15 of it)
GRAD_RTOL = {"hardsigmoid": 1e-7, "hardswish": 1e-7, "celu": 2e-7, "celu_": 2e-7}
# arguments torch does not differentiate (its kernels refuse requires_grad there); ctc_loss's
# log_probs: torch's gradient assumes they came from log_softmax (tests/test_ctc.py compares
# through it)
NO_GRAD = {"batch_norm": {"running_mean", "running_var"},
           "instance_norm": {"running_mean", "running_var"},
           **{name: {"weight"} for name in ("cross_entropy", "nll_loss", "binary_cross_entropy",
                                            "multi_margin_loss")},
           "binary_cross_entropy_with_logits": {"weight", "pos_weight"},
           "soft_margin_loss": {"target"}, "ctc_loss": {"log_probs"}}
CASE_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _is_float_array(value):
    return isinstance(value, np.ndarray) and value.dtype == np.float64


def _torch(value):
    return torch.tensor(value) if isinstance(value, np.ndarray) else value


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _keywords(name, args, kwargs):
    """The positional args as keywords, named by graphc.nn.functional's signature: torch
    taking the same keywords shows the names are torch's."""
    bound = inspect.signature(getattr(F, name)).bind(*args, **kwargs)
    return bound.arguments


def _tf(name):
    """torch's function for graphc's `name`: an in-place spelling (relu_) compared with its
    out-of-place one (torch refuses to overwrite a leaf that requires grad; graphc never
    overwrites: tests/test_nn_functional_more.py compares with torch's in place)."""
    return getattr(TF, name[:-1] if name.endswith("_") else name)


def _torch_call(name, args, kwargs, wanted=()):
    """torch's value and the gradients of sum(out * cotangent) for the `wanted` args."""
    targs = [torch.tensor(a, requires_grad=i in wanted) if isinstance(a, np.ndarray) else a
             for i, a in enumerate(args)]
    tkw = {k: _torch(v) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _first(_tf(name)(*targs, **tkw))
    return out, targs


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_and_gradients_as_torch(case):
    name, args, kwargs = case
    fixed = NO_GRAD.get(name, set())
    names = list(inspect.signature(getattr(F, name)).parameters)
    floats = [i for i, a in enumerate(args) if _is_float_array(a) and names[i] not in fixed]
    want, targs = _torch_call(name, args, kwargs, floats)
    function = getattr(F, name)

    def call(*values, by_keyword=False):
        full = list(args)
        for i, v in zip(floats, values):
            full[i] = v
        if by_keyword:
            return _first(function(**_keywords(name, full, kwargs)))
        return _first(function(*full, **kwargs))

    tol = dict(rtol=1e-9, atol=1e-11)
    for by_keyword in (False, True):
        if by_keyword:  # torch takes the same keywords, with the same value
            torch_kw = {k: _torch(v) for k, v in _keywords(name, args, kwargs).items()}
            np.testing.assert_allclose(_first(_tf(name)(**torch_kw)).detach().numpy(),
                                       want.detach().numpy(), **tol)
        eager = call(*[args[i] for i in floats], by_keyword=by_keyword)
        compiled = gc.compile(lambda *v, k=by_keyword: call(*v, by_keyword=k))(
            *[args[i] for i in floats])
        for got in (eager, compiled):
            np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), **tol)
            assert np.asarray(got).dtype == want.detach().numpy().dtype
    if not floats or not want.dtype.is_floating_point:
        return
    cotangent = r(*want.shape)
    (want * torch.tensor(cotangent)).sum().backward()
    argnums = tuple(range(len(floats)))

    def loss(*values):
        return gc.sum(call(*values) * cotangent)
    for gradient in (gc.grad(loss, argnums=argnums), gc.compile(gc.grad(loss, argnums=argnums))):
        grads = gradient(*[args[i] for i in floats])
        for i, g in zip(floats, grads):
            expected = targs[i].grad
            expected = np.zeros_like(args[i]) if expected is None else expected.numpy()
            np.testing.assert_allclose(np.asarray(g), expected, atol=tol["atol"],
                                       rtol=GRAD_RTOL.get(name, tol["rtol"]),
                                       err_msg=f"arg {i}")


# names whose results are random draws, compared with torch by other means in
# tests/test_nn_functional_more.py
RANDOM = {"gumbel_softmax"}


def test_every_name_has_a_case():
    """A name added to graphc.nn.functional without a comparison against torch fails here."""
    assert set(F.__all__) - {name for name, _, _ in CASES} == RANDOM


def test_signatures_are_torchs():
    """Each name's parameters (names, order, defaults) are torch's where torch's function
    has an inspectable signature; graphc's may add keyword-only ones (seed, salt)."""
    for name in F.__all__:
        try:
            theirs = inspect.signature(getattr(TF, name)).parameters
        except (TypeError, ValueError):  # (a builtin: checked by the keyword calls above)
            continue
        if list(theirs) in (["args", "kwargs"], []):
            continue
        ours = [p for p in inspect.signature(getattr(F, name)).parameters.values()
                if p.kind != p.KEYWORD_ONLY or p.name in theirs]
        assert [p.name for p in ours] == list(theirs), name
        for p in ours:
            default = theirs[p.name].default
            assert p.default == default or (default is p.empty and p.default is p.empty), \
                (name, p.name, p.default, default)


def test_the_three_import_forms():
    from graphc.nn import functional
    import graphc.nn.functional as by_path
    assert functional is by_path is gc.nn.functional is F


def test_legacy_size_average_and_reduce():
    """torch's deprecated arguments decide the reduction, with torch's warning."""
    x, y = r(3, 4), r(3, 4)
    for size_average, reduce in ((False, None), (None, False), (True, True)):
        with pytest.warns(UserWarning, match="reduction="):
            got = F.l1_loss(x, y, size_average, reduce)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = TF.l1_loss(torch.tensor(x), torch.tensor(y), size_average, reduce)
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)
    t = ints(4, 3)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        got = F.cross_entropy(x, t, size_average=False)
    want = TF.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="sum")
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)


def test_implicit_softmax_dim_follows_torch_with_a_warning():
    for shape in ((5,), (2, 3), (2, 3, 4), (2, 3, 4, 5)):
        x = r(*shape)
        for name in ("softmax", "log_softmax", "softmin"):
            with pytest.warns(UserWarning, match="without dim"):
                got = getattr(F, name)(x)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = getattr(TF, name)(torch.tensor(x))
            np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)


def test_softmax_dtype_casts_first():
    x = r(2, 3).astype(np.float32)
    got = F.softmax(x, 1, dtype="float64")
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), TF.softmax(torch.tensor(x), 1,
                                                           dtype=torch.float64).numpy())


def test_batch_norm_moves_the_running_statistics_in_place():
    for name, use in (("batch_norm", "training"), ("instance_norm", "use_input_stats")):
        x = r(4, 3, 5)
        ours = [np.zeros(3), np.ones(3)]
        theirs = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
        got = getattr(F, name)(x, *ours, momentum=0.3, **{use: True})
        want = getattr(TF, name)(torch.tensor(x), *theirs, momentum=0.3, **{use: True})
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)
        for a, t in zip(ours, theirs):
            np.testing.assert_allclose(a, t.numpy(), rtol=1e-12)
        # compiled, the update has nowhere to go: refused in one line
        assert_one_line_error(
            lambda: gc.compile(lambda v: getattr(F, name)(v, *ours, **{use: True}))(x),
            "updates them in place")
    assert_one_line_error(lambda: F.batch_norm(r(4, 3), None, None), "must be given")


def test_dropout_keys_its_mask_and_scales():
    x = pos(200, 50)
    with gc.nn.rng_key(3):
        y = np.asarray(F.dropout(x, 0.25))
    with gc.nn.rng_key(3):
        again = np.asarray(F.dropout(x, p=0.25, training=True))
    np.testing.assert_array_equal(y, again)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-12)
    assert abs(kept.mean() - 0.75) < 0.01
    assert F.dropout(x, 0.25, training=False) is x


def test_one_hot_of_the_largest_index_eagerly():
    i = np.array([3, 0, 5])
    got = F.one_hot(i)
    np.testing.assert_array_equal(np.asarray(got), TF.one_hot(torch.tensor(i)).numpy())
    assert np.asarray(got).dtype == np.int64


def test_one_hot_refuses_what_torch_refuses():
    assert_one_line_error(lambda: F.one_hot(np.array([0, 5]), 3), "outside [0, 3)")
    assert_one_line_error(lambda: gc.compile(lambda i: F.one_hot(i))(np.array([1, 2])),
                          "pass num_classes")


def test_pad_and_embedding_refusals():
    assert_one_line_error(lambda: F.pad(r(2, 3), (1, 2, 3)), "even length")
    assert_one_line_error(lambda: F.pad(r(2, 3), (1, 1), "reflect", 0.0), "takes no value")
    assert_one_line_error(lambda: F.pad(r(2, 3), (1, 1), "edge"), "unsupported mode")
    assert_one_line_error(lambda: F.embedding(ints(3, 2), r(3, 2), max_norm=1.0),
                          "max_norm=1.0 is not supported")
    assert_one_line_error(lambda: F.layer_norm(r(2, 3), (4,)), "3 features")


# torch.nn.functional's names that are no API: typing and __torch_function__ plumbing, and
# the deprecated upsample* (interpolate's old names)
NOT_API = {"Callable", "DType", "Optional", "ScalingType", "SwizzleType", "Tensor",
           "TYPE_CHECKING", "boolean_dispatch", "handle_torch_function", "has_torch_function",
           "has_torch_function_unary", "has_torch_function_variadic", "assert_int_or_pair",
           "upsample", "upsample_bilinear", "upsample_nearest"}


def missing_names():
    import types
    return sorted(n for n in dir(TF) if not n.startswith("_") and n not in NOT_API
                  and not isinstance(getattr(TF, n), types.ModuleType)
                  and callable(getattr(TF, n)) and not hasattr(F, n))


def test_the_readmes_list_of_missing_names_is_true():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"),
                  encoding="utf-8").read()
    section = readme[readme.index("torch.nn.functional names graphc.nn.functional lacks"):]
    listed = re.findall(r"`(\w+)`", section[section.index("):"):section.index("\n\n")])
    assert sorted(listed) == missing_names()


def test_review_s53_running_statistics_bias_without_weight_and_half_given():
    """Review r10: evaluating by running statistics (training=False, use_input_stats=False)
    with a bias and no weight dropped the bias; one running statistic without the other was
    neither used nor moved (torch refuses it); a call refused after the statistics were moved
    (the weight's dtype not the input's) left them moved."""
    x, b = r(4, 3, 5), r(3)
    for name, use in (("batch_norm", "training"), ("instance_norm", "use_input_stats")):
        mean, var = r(3), pos(3)
        got = getattr(F, name)(x, mean, var, None, b, **{use: False})
        want = getattr(TF, name)(torch.tensor(x), torch.tensor(mean), torch.tensor(var), None,
                                 torch.tensor(b), **{use: False})
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)
        assert_one_line_error(lambda: getattr(F, name)(x, np.zeros(3), None, **{use: True}),
                              "both be None or neither")
        ours = [np.zeros(3), np.ones(3)]
        with pytest.raises(Exception):
            getattr(F, name)(x, *ours, np.ones(3, np.float32), **{use: True})
        np.testing.assert_array_equal(ours[0], np.zeros(3))
        np.testing.assert_array_equal(ours[1], np.ones(3))
