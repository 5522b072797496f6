"""One table of op cases, shared by the gradient checks, the interpreter/eager agreement tests
and the compiled-runtime tests: (name, function, input makers, numpy reference)."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import special

import graphc as gc
from ir.ops.collective import allreduce, bucketed_allreduce
from ir.ops.registry import apply


@dataclass
class Case:
    name: str
    fn: Callable
    inputs: list  # callables rng -> array
    reference: Callable
    grad: bool = True
    tol: float = 1e-6
    eps: float = 1e-6  # finite-difference step
    ints: tuple = field(default_factory=tuple)
    second: bool = True  # False: its gradient refuses a second derivative (no Hessian check)


_GAMMA_U = np.random.default_rng(5).uniform(0.02, 0.98, (3, 4))


def f64(*shape, low=-2.0, high=2.0):
    return lambda rng: rng.uniform(low, high, shape)


def pos(*shape):
    return f64(*shape, low=0.5, high=2.0)


def ints(*shape, high=5):
    return lambda rng: rng.integers(0, high, shape)


def away_from_zero(*shape, high=2.0):
    """Floats of either sign in [0.5, high] in magnitude: divisors with room around zero."""
    return lambda rng: rng.uniform(0.5, high, shape) * rng.choice([-1.0, 1.0], shape)


def _signed_ints(*shape, low=-7, high=8):
    return lambda rng: rng.integers(low, high, shape)


def _nonzero_ints(*shape):
    return lambda rng: rng.integers(1, 5, shape) * rng.choice([-1, 1], shape)


def _start(value):
    """A run-time start position: an int64 scalar."""
    return lambda rng: np.asarray(value, np.int64)


def _put(a, u, start):
    """a with u written at `start` along axis 1."""
    out = a.copy()
    out[:, start:start + u.shape[1]] = u
    return out


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _gelu_tanh_deriv(x):
    c, k = math.sqrt(2 / math.pi), 0.044715
    t = np.tanh(c * (x + k * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x)


def _ln_grad(x, w, g):
    mu = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xhat = (x - mu) * rstd
    gw = g * w
    return rstd * (gw - gw.mean(-1, keepdims=True) - xhat * (gw * xhat).mean(-1, keepdims=True))


def _bn_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _batch_norm(x):
    mu = x.mean(_bn_axes(x), keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(_bn_axes(x), keepdims=True) + 1e-5)


def _bn_grad(x, g):
    xhat, ax = _batch_norm(x), _bn_axes(x)
    rstd = 1 / np.sqrt(x.var(ax, keepdims=True) + 1e-5)
    return rstd * (g - g.mean(ax, keepdims=True) - xhat * (g * xhat).mean(ax, keepdims=True))


def _cross_entropy(logits, t):
    logp = np.log(_softmax(logits))
    picked = np.take_along_axis(logp, np.maximum(t, 0)[..., None], -1)[..., 0]
    valid = t != -100
    return -(picked * valid).sum() / max(valid.sum(), 1)


def _nll_weighted(logp, t, w, ignore=-100):
    valid = t != ignore
    picked = np.take_along_axis(logp, np.where(valid, t, 0)[..., None], -1)[..., 0]
    rows = w[np.where(valid, t, 0)] * valid
    return -(picked * rows).sum() / rows.sum()


def _rms_norm(x, w, eps=1e-6):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _bucketed(a, b):
    """Both operands through one all-reduce bucket (start, wait, unpack)."""
    p, q = bucketed_allreduce([a, b], "mean")
    return p * p + q


def _pad_ref(a):
    out = np.zeros((4, 5))
    out[1:3, 0:5:2] = a
    return out


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _elu(a, alpha):
    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))


def _prob(*shape):
    return f64(*shape, low=0.05, high=0.95)


def _bce(x, t, w=1.0):
    return -w * (t * np.log(x) + (1 - t) * np.log1p(-x))


def _bce_logits(x, t, w=1.0, p=1.0):
    return w * ((1 - t) * x + (1 + (p - 1) * t) * np.logaddexp(0, -x))


def _huber(d, delta):
    return np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))


def _p_norm(x, p, axis):
    return (np.abs(x) ** p).sum(axis, keepdims=True) ** (1 / p)


def _pdist(a, b, p=2.0, eps=1e-6):
    return (np.abs(a - b + eps) ** p).sum(-1) ** (1 / p)


def _margin_losses(a, b, c, t):
    """margin_ranking, hinge_embedding and soft_margin per element, and triplet (swap) mean."""
    d_neg = np.minimum(_pdist(a, c), _pdist(b, c))
    return (np.maximum(-t * (a - b) + 0.3, 0) + np.maximum(0.5 - a, 0) + a
            + np.logaddexp(0, -t * a) + np.maximum(1.5 + _pdist(a, b) - d_neg, 0).mean())


_COS_TARGET = np.array([1, -1, 1])  # integers: taken as the inputs' dtype, half too


_MULTILABEL_TARGET = np.array([[0, 2, -1, 1], [3, 3, -1, -1], [1, 0, 3, 2]])  # -1 ends them


def _multilabel_margin_triplet_distance(a, b, c):
    """multilabel_margin_loss per row (each target slot before the first -1 against each
    class that is no target), and triplet_margin_with_distance_loss (an L1 distance, swap)."""
    rows = []
    for x, y in zip(a, _MULTILABEL_TARGET):
        targets = y[:list(y).index(-1)] if -1 in y else y
        others = [i for i in range(len(x)) if i not in targets]
        rows.append(sum(max(0.0, 1 - x[j] + x[i]) for j in targets for i in others) / len(x))
    d = lambda u, v: np.abs(u - v).sum(-1)  # noqa: E731
    return np.array(rows) + np.maximum(1.0 + d(a, b) - np.minimum(d(a, c), d(b, c)), 0).mean()


def _embedding_nll_losses(a, b, v, y):
    eps = float(np.float32(1e-12))
    cos = (a * b).sum(1) / np.sqrt(((a * a).sum(1) + eps) * ((b * b).sum(1) + eps))
    cosine = np.where(_COS_TARGET == 1, 1 - cos, np.maximum(cos - 0.2, 0))
    t = 1 / (1 + np.exp(-b))
    multilabel = (t * np.logaddexp(0, -a) + (1 - t) * np.logaddexp(0, a)).mean(1)
    z = np.maximum(0.7 - np.take_along_axis(a, y[:, None], 1) + a, 0) ** 2
    z[np.arange(len(y)), y] = 0
    poisson = (np.exp(a) - v * a).mean()
    gaussian = (0.5 * (np.log(v) + (a - b) ** 2 / v) + 0.5 * np.log(2 * np.pi)).mean()
    return cosine + multilabel + z.mean(1) + poisson + gaussian


def _small_layers(a, x2, w):
    e = np.exp(-a - (-a).max(1, keepdims=True))
    return (np.where(a <= 0.1, 2.0, a) + a - np.tanh(a) + e / e.sum(1, keepdims=True)
            + np.einsum("ni,oij,nj->no", a, w, x2))


def _quiet(compute):
    """compute() with numpy's invalid-value warnings off (a log of a negative number)."""
    with np.errstate(invalid="ignore"):
        return compute()


def _scatter(u, idx, rows):
    out = np.zeros((rows,) + u.shape[idx.ndim:])
    np.add.at(out, idx, u)
    return out


def _every_segment(rng):
    """segment ids (2, 3) naming each of 3 segments twice: no empty (-inf) segment."""
    return rng.permutation([0, 1, 2, 0, 1, 2]).reshape(2, 3)


def _scatter_max(u, idx, rows):
    out = np.full((rows,) + u.shape[idx.ndim:], -np.inf)
    np.maximum.at(out, idx, u)
    return out


def _scatter_prod(u, idx, rows):
    out = np.ones((rows,) + u.shape[idx.ndim:])
    np.multiply.at(out, idx, u)
    return out


@gc.custom_vjp
def _softplus_scaled(a, b):
    """(softplus(a) * b, a * b): two outputs and two arguments through one custom rule."""
    return gc.log(1.0 + gc.exp(a)) * b, a * b


def _softplus_scaled_fwd(a, b):
    return _softplus_scaled(a, b), (a, b)


def _softplus_scaled_bwd(residuals, cotangents):
    a, b = residuals
    g_soft, g_prod = cotangents
    sig = 1.0 / (1.0 + gc.exp(-a))
    # b broadcasts over a's rows: its cotangent sums over them
    return (g_soft * b * sig + g_prod * b,
            gc.sum(g_soft * gc.log(1.0 + gc.exp(a)) + g_prod * a, axis=0))


_softplus_scaled.defvjp(_softplus_scaled_fwd, _softplus_scaled_bwd)


@gc.custom_jvp
def _log1pexp(x):
    return gc.log(1.0 + gc.exp(x))


@_log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _log1pexp(x), t * (1.0 - 1.0 / (1.0 + gc.exp(x)))


def _scan_rnn(h, xs, w):
    """A tanh RNN: the final carry and the stacked per-step outputs, both used."""
    last, ys = gc.scan(lambda c, x: (gc.tanh(x + c @ w), c * x), h, xs)
    return ys + last


def _scan_rnn_reference(h, xs, w):
    ys = []
    for x in xs:
        ys.append(h * x)
        h = np.tanh(x + h @ w)
    return np.stack(ys) + h


def _fori_reverse_scan(a, v):
    """fori_loop (a scan with an integer counter carry) inside a reversed scan over a's rows."""
    def step(c, row):
        c = gc.fori_loop(0, 2, lambda i, c: c * gc.tanh(row + c), c)
        return c, c * row
    last, ys = gc.scan(step, v, a, reverse=True)
    return ys * last


def _fori_reverse_scan_reference(a, v):
    ys = [None] * len(a)
    for t in range(len(a) - 1, -1, -1):
        for _ in range(2):
            v = v * np.tanh(a[t] + v)
        ys[t] = v * a[t]
    return np.stack(ys) * v


def _cond_case(a, b):
    """Both branches read b, one also a closed-over value; the predicate is computed."""
    scale = gc.exp(b)
    return gc.cond(gc.sum(a) > 0, lambda a, b: gc.tanh(a) * scale, lambda a, b: a * a + b,
                   a, b)


def _cond_reference(a, b):
    return np.tanh(a) * np.exp(b) if a.sum() > 0 else a * a + b


# ctc_loss: blank 0; the first sequence repeats its label (a blank must come between), the
# second reads one label of two in three of the four steps
_CTC_TARGETS, _CTC_INPUTS, _CTC_LENGTHS = np.array([[1, 1], [2, 1]]), [4, 3], [2, 1]


def _ctc_reference(log_probs):
    """Each sequence's -log of the sum over every path of classes (C^T of them) that
    collapses (repeats merged, blanks dropped) to its labels, of exp(sum of its log_probs)."""
    steps, _, classes = log_probs.shape
    out = []
    for n, (length, count) in enumerate(zip(_CTC_INPUTS, _CTC_LENGTHS)):
        total = 0.0
        for path in itertools.product(range(classes), repeat=length):
            merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
            if [c for c in merged if c != 0] == list(_CTC_TARGETS[n, :count]):
                total += np.exp(sum(log_probs[t, n, c] for t, c in enumerate(path)))
        out.append(-np.log(total))
    return np.array(out)


CASES = [
    # binary elementwise, with broadcasting
    Case("add", lambda a, b: a + b, [f64(3, 4), f64(4)], np.add),
    Case("add_bcast_both", lambda a, b: a + b, [f64(3, 1), f64(1, 4)], np.add),
    Case("sub", lambda a, b: a - b, [f64(2, 3, 4), f64(3, 1)], np.subtract),
    Case("mul", lambda a, b: a * b, [f64(3, 4), f64(1, 4)], np.multiply),
    Case("div", lambda a, b: a / b, [f64(3, 4), pos(3, 4)], np.divide),
    Case("pow", lambda a, b: a ** b, [pos(3, 4), f64(4)], np.power),
    Case("pow_scalar", lambda a: a ** 3.0, [f64(5)], lambda a: a ** 3),
    Case("rsub_scalar", lambda a: 2.0 - a, [f64(5)], lambda a: 2.0 - a),
    Case("rdiv_scalar", lambda a: 1.0 / a, [pos(5)], lambda a: 1.0 / a),
    Case("maximum", gc.maximum, [f64(3, 4), f64(4)], np.maximum),
    Case("minimum", gc.minimum, [f64(3, 4), f64(3, 1)], np.minimum),
    Case("where", lambda a, b: gc.where(a > b, a * 2.0, b), [f64(3, 4), f64(4)],
         lambda a, b: np.where(a > b, a * 2, b)),
    Case("compare", lambda a, b: gc.where(a <= b, a, b) + gc.where(a == a, a, 0.0)
         + gc.where(a != b, a, 0.0) + gc.where(a >= b, b, 1.0) + gc.where(a < b, 1.0, a),
         [f64(3, 4), f64(3, 4)],
         lambda a, b: np.where(a <= b, a, b) + a + a + np.where(a >= b, b, 1.0)
         + np.where(a < b, 1.0, a)),
    # unary
    Case("neg", lambda a: -a, [f64(3, 4)], np.negative),
    Case("exp", gc.exp, [f64(3, 4)], np.exp),
    Case("log", gc.log, [pos(3, 4)], np.log),
    Case("sqrt", gc.sqrt, [pos(3, 4)], np.sqrt),
    Case("rsqrt", gc.rsqrt, [pos(3, 4)], lambda a: 1 / np.sqrt(a)),
    Case("tanh", gc.tanh, [f64(3, 4)], np.tanh),
    Case("sin", gc.sin, [f64(3, 4)], np.sin),
    Case("cos", gc.cos, [f64(3, 4)], np.cos),
    Case("sigmoid", gc.sigmoid, [f64(3, 4)], lambda a: 1 / (1 + np.exp(-a))),
    Case("relu", gc.relu, [f64(3, 4)], lambda a: np.maximum(a, 0)),
    Case("abs", gc.abs, [f64(3, 4)], np.abs),
    Case("sign", lambda a: gc.sign(a) * a, [f64(3, 4)], lambda a: np.sign(a) * a),
    Case("erf", gc.erf, [f64(3, 4)], special.erf),
    Case("erfinv", lambda a: apply("erfinv", a), [f64(3, 4, low=-0.95, high=0.95)],
         special.erfinv),
    # gc.random.gamma's draw by inversion, at fixed uniform draws U: log x of P(a, x) = U
    # (U in a's dtype: the op takes one dtype; a half a is the float result rounded)
    Case("gamma_log_quantile",
         lambda a: apply("gamma_log_quantile", a, gc.cast(_GAMMA_U, a.dtype)),
         [f64(3, 4, low=0.05, high=30.0)], lambda a: np.log(special.gammaincinv(a, _GAMMA_U)),
         second=False),
    Case("log1p", gc.log1p, [f64(3, 4, low=-0.9, high=2.0)], np.log1p),
    Case("expm1", gc.expm1, [f64(3, 4)], np.expm1),
    Case("softplus", gc.softplus, [f64(3, 4, low=-40.0, high=40.0)],
         lambda a: np.logaddexp(a, 0.0)),
    Case("log_sigmoid", gc.log_sigmoid, [f64(3, 4, low=-40.0, high=40.0)],
         lambda a: -np.logaddexp(-a, 0.0)),
    # step functions: their gradient is zero (finite differences agree off the steps)
    Case("floor_ceil_round", lambda a: gc.floor(a) * a + gc.ceil(a) + gc.round(a * 3.0),
         [f64(3, 4)], lambda a: np.floor(a) * a + np.ceil(a) + np.round(a * 3.0)),
    # of integers (bool too) they are the identity, in the integer dtype (JAX's; numpy 2's);
    # round with decimals < 0 rounds integers to tens (half to even), as numpy's
    Case("floor_ceil_round_int", lambda a, i: gc.cast(
        gc.floor(i) + gc.ceil(i) * 2 + gc.round(i, 1) * 3 + gc.round(i * 5, -1), a.dtype) * a,
         [f64(3, 4), ints(3, 4)],
         lambda a, i: (i + i * 2 + i * 3 + np.round(i * 5, -1)) * a, ints=(1,)),
    Case("isnan_isfinite", lambda a: gc.where(gc.isnan(gc.log(a)), 1.0, a)
         + gc.where(gc.isfinite(1.0 / gc.round(a)), a, 2.0),
         [f64(3, 4)], lambda a: np.where(np.isnan(np.log(a)), 1.0, a)
         + np.where(np.isfinite(1.0 / np.round(a)), a, 2.0)),
    # numpy's further math functions (ir/ops/elementwise.py); // and % are numpy's (floor
    # division, the remainder with the divisor's sign), fmod C's (the dividend's)
    Case("floor_divide_remainder_fmod", lambda a, b: (a // b) * a + (a % b) * b
         + gc.fmod(a, b) * a + 2.0 // b + 3.0 % b + gc.mod(a, 0.75), [f64(3, 4), away_from_zero(4)],
         lambda a, b: np.floor_divide(a, b) * a + np.remainder(a, b) * b + np.fmod(a, b) * a
         + 2.0 // b + 3.0 % b + np.remainder(a, 0.75)),
    Case("floor_divide_remainder_fmod_int", lambda a, i, j: gc.cast(
        i // j + (i % j) * 3 + gc.fmod(i, j) * 5 + 9 // j + i % 4, a.dtype) * a,
         [f64(3, 4), _signed_ints(3, 4), _nonzero_ints(4)],
         lambda a, i, j: (i // j + (i % j) * 3 + np.fmod(i, j) * 5 + 9 // j + i % 4) * a,
         ints=(1, 2)),
    Case("tan_arcsin_arccos_arctan", lambda a: gc.tan(a) + gc.arcsin(a) * gc.arccos(a)
         + gc.arctan(a * 3.0), [f64(3, 4, low=-0.9, high=0.9)],
         lambda a: np.tan(a) + np.arcsin(a) * np.arccos(a) + np.arctan(a * 3.0)),
    Case("hyperbolic", lambda a, b: gc.sinh(a) + gc.cosh(a) * gc.arcsinh(a * 2.0)
         + gc.arctanh(a * 0.45) + gc.arccosh(b), [f64(3, 4), f64(4, low=1.2, high=3.0)],
         lambda a, b: np.sinh(a) + np.cosh(a) * np.arcsinh(a * 2.0) + np.arctanh(a * 0.45)
         + np.arccosh(b)),
    Case("log2_log10_exp2", lambda a, b: gc.log2(a) * gc.log10(a) + gc.exp2(b),
         [pos(3, 4), f64(4)], lambda a, b: np.log2(a) * np.log10(a) + np.exp2(b)),
    Case("arctan2_logaddexp_hypot", lambda a, b: gc.arctan2(a, b)
         + gc.logaddexp(a * 3.0, b) * gc.hypot(a, b), [f64(3, 4), f64(3, 1)],
         lambda a, b: np.arctan2(a, b) + np.logaddexp(a * 3.0, b) * np.hypot(a, b)),
    Case("reciprocal_trunc_isinf", lambda a, b: gc.reciprocal(b) * gc.trunc(a * 3.0)
         + gc.where(gc.isinf(1.0 / gc.round(a)), 1.0, a), [f64(3, 4), away_from_zero(4)],
         lambda a, b: _quiet(lambda: 1.0 / b * np.trunc(a * 3.0)
                             + np.where(np.isinf(1.0 / np.round(a)), 1.0, a))),
    Case("square_clip", lambda a: gc.square(gc.clip(a, -1.0, 0.5)) + gc.clip(a, max=0.0),
         [f64(3, 4)], lambda a: np.clip(a, -1.0, 0.5) ** 2 + np.minimum(a, 0.0)),
    # float bounds promote integers to float32, as a weak float would (JAX's; numpy: float64)
    Case("clip_int_float_bounds", lambda a, i: gc.cast(gc.clip(i, 0.5, 2.5), a.dtype) * a
         + gc.cast(gc.clip(i, max=1.5), a.dtype), [f64(3, 4), ints(3, 4)],
         lambda a, i: np.clip(i, 0.5, 2.5) * a + np.minimum(i, 1.5), ints=(1,)),
    Case("gelu_tanh", gc.gelu, [f64(3, 4)], _gelu_tanh),
    Case("gelu_erf", lambda a: gc.gelu(a, approximate="none"), [f64(3, 4)],
         lambda a: 0.5 * a * (1 + special.erf(a / math.sqrt(2)))),
    Case("cast", lambda a: gc.cast(gc.cast(a, "float32"), "float64") * a, [f64(3, 4)],
         lambda a: a.astype(np.float32).astype(np.float64) * a, tol=1e-4, eps=1e-2),
    # reductions
    Case("sum_all", lambda a: a.sum(), [f64(3, 4)], np.sum),
    Case("sum_axis", lambda a: a.sum(1), [f64(3, 4, 2)], lambda a: a.sum(1)),
    Case("sum_keep", lambda a: gc.sum(a, (0, 2), keepdims=True), [f64(3, 4, 2)],
         lambda a: a.sum((0, 2), keepdims=True)),
    Case("mean", lambda a: a.mean(-1), [f64(3, 4)], lambda a: a.mean(-1)),
    Case("std_ddof", lambda a: gc.std(a, 0, ddof=1) + gc.var(a, 1, keepdims=True),
         [f64(3, 4)], lambda a: np.std(a, 0, ddof=1) + np.var(a, 1, keepdims=True)),
    Case("logsumexp", lambda a: gc.logsumexp(a * 100.0, 1), [f64(3, 4)],
         lambda a: special.logsumexp(a * 100.0, 1)),
    Case("cumsum", lambda a: gc.cumsum(a, 1) * a, [f64(3, 4)], lambda a: np.cumsum(a, 1) * a),
    Case("cumsum_reverse", lambda a: gc.cumsum(a, 0, reverse=True), [f64(3, 4, 2)],
         lambda a: np.flip(np.cumsum(np.flip(a, 0), 0), 0)),
    Case("cumsum_flat_int", lambda a, i: gc.cast(gc.cumsum(i), a.dtype) * a,
         [f64(12), ints(3, 4)], lambda a, i: np.cumsum(i) * a, ints=(1,)),
    Case("any_all", lambda a: gc.where(gc.any(a > 1.5, 1, keepdims=True), a, 0.0)
         + gc.where(gc.all(a > -1.5, 0), a, 1.0), [f64(3, 4)],
         lambda a: np.where(np.any(a > 1.5, 1, keepdims=True), a, 0.0)
         + np.where(np.all(a > -1.5, 0), a, 1.0)),
    Case("tril_triu_eye", lambda a: gc.tril(a, -1) + gc.triu(a, 2) + gc.eye(3, 4, 1, a.dtype),
         [f64(2, 3, 4)], lambda a: np.tril(a, -1) + np.triu(a, 2) + np.eye(3, 4, 1)),
    Case("max", lambda a: a.max(0), [f64(3, 4)], lambda a: a.max(0)),
    Case("max_keep", lambda a: gc.max(a, 1, keepdims=True), [f64(3, 4)],
         lambda a: a.max(1, keepdims=True)),
    Case("min", lambda a: a.min(), [f64(3, 4)], np.min),
    Case("var", lambda a: a.var(-1), [f64(3, 4)], lambda a: a.var(-1)),
    # shapes
    Case("reshape", lambda a: a.reshape(4, -1) * 1.0, [f64(2, 3, 2)],
         lambda a: a.reshape(4, 3)),
    Case("transpose", lambda a: a.transpose(2, 0, 1), [f64(2, 3, 4)],
         lambda a: a.transpose(2, 0, 1)),
    Case("T", lambda a: a.T, [f64(2, 3)], lambda a: a.T),
    Case("broadcast_to", lambda a: gc.broadcast_to(a, (2, 3, 4)), [f64(3, 1)],
         lambda a: np.broadcast_to(a, (2, 3, 4))),
    Case("expand_squeeze", lambda a: gc.squeeze(gc.expand_dims(a, 1), 1) * gc.expand_dims(a, 0),
         [f64(3)], lambda a: a * a[None]),
    Case("slice", lambda a: a[1:, ::2, 1], [f64(3, 5, 2)], lambda a: a[1:, ::2, 1]),
    Case("slice_negative_steps", lambda a: a[::-1, 3:0:-2, 1], [f64(3, 5, 2)],
         lambda a: a[::-1, 3:0:-2, 1]),
    Case("slice_negative_step_empty", lambda a: a[:, 0:2:-1] + 1.0, [f64(3, 4)],
         lambda a: a[:, 0:2:-1] + 1.0),
    Case("slice_none_ellipsis", lambda a: a[None, ..., 0], [f64(3, 4)],
         lambda a: a[None, ..., 0]),
    Case("pad_slice", lambda a: gc.pad_slice(a, (4, 5), (1, 0), (3, 5), (1, 2)), [f64(2, 3)],
         _pad_ref),
    Case("concat", lambda a, b: gc.concat([a, b, a], axis=1), [f64(2, 3), f64(2, 1)],
         lambda a, b: np.concatenate([a, b, a], 1)),
    Case("stack", lambda a, b: gc.stack([a, b], -1), [f64(2, 3), f64(2, 3)],
         lambda a, b: np.stack([a, b], -1)),
    Case("split", lambda a: gc.split(a, 3, 1)[1] * gc.split(a, [1, 5], 1)[0],
         [f64(2, 6)], lambda a: a[:, 2:4] * a[:, :1]),
    # gathers
    Case("take", lambda t, i: gc.take(t, i), [f64(6, 3), ints(2, 4, high=6)],
         lambda t, i: t[i], ints=(1,)),
    Case("index_tensor", lambda t, i: t[i], [f64(6, 3), ints(5, high=6)],
         lambda t, i: t[i], ints=(1,)),
    Case("index_arrays", lambda t, i, j: t[i, :, j], [f64(6, 2, 3), ints(5, high=6), ints(5, high=3)],
         lambda t, i, j: t[i, :, j], ints=(1, 2)),
    Case("scatter_add", lambda u, i: gc.scatter_add(u, i, 5), [f64(2, 4, 3), ints(2, 4)],
         lambda u, i: _scatter(u, i, 5), ints=(1,)),
    Case("scatter_max", lambda u, i: gc.segment_max(u, i, 3), [f64(2, 3, 2), _every_segment],
         lambda u, i: _scatter_max(u, i, 3), ints=(1,)),
    Case("scatter_prod", lambda u, i: gc.segment_prod(u, i, 4), [f64(2, 3, 2), _every_segment],
         lambda u, i: _scatter_prod(u, i, 4), ints=(1,)),
    Case("one_hot", lambda a, i: gc.one_hot(i, 5, "float64") * a, [f64(3, 5), ints(3)],
         lambda a, i: np.eye(5)[i] * a, ints=(1,)),
    # windows at a run-time start (KV caches), as in JAX: a negative start counts from the
    # end, then the start is clamped so that the window fits
    Case("dynamic_slice", lambda a, s: gc.dynamic_slice(a, s, 3, axis=1),
         [f64(2, 6, 2), _start(2)], lambda a, s: a[:, 2:5], ints=(1,)),
    Case("dynamic_slice_clamped", lambda a, s: gc.dynamic_slice(a, s, 3, axis=-2),
         [f64(2, 6, 2), _start(5)], lambda a, s: a[:, 3:6], ints=(1,)),
    Case("dynamic_update_slice", lambda a, u, s: gc.dynamic_update_slice(a, u, s, axis=1),
         [f64(2, 6, 2), f64(2, 2, 2), _start(1)], lambda a, u, s: _put(a, u, 1), ints=(2,)),
    Case("dynamic_update_slice_clamped",
         lambda a, u, s: gc.dynamic_update_slice(a * 2.0, u, s, axis=0),
         [f64(4, 3), f64(2, 3), _start(7)], lambda a, u, s: _put(a.T * 2.0, u.T, 2).T,
         ints=(2,)),
    Case("dynamic_slice_negative", lambda a, s: gc.dynamic_slice(a, s, 3, axis=1),
         [f64(2, 6, 2), _start(-4)], lambda a, s: a[:, 2:5], ints=(1,)),
    Case("dynamic_update_slice_negative",
         lambda a, u, s: gc.dynamic_update_slice(a * 2.0, u, s, axis=0),
         [f64(4, 3), f64(2, 3), _start(-3)], lambda a, u, s: _put(a.T * 2.0, u.T, 1).T,
         ints=(2,)),
    # linear algebra
    Case("matmul", lambda a, b: a @ b, [f64(3, 4), f64(4, 5)], np.matmul),
    Case("matmul_batch_bcast", lambda a, b: a @ b, [f64(2, 3, 4), f64(4, 5)], np.matmul),
    Case("matmul_batch", lambda a, b: a @ b, [f64(2, 1, 3, 4), f64(3, 4, 2)], np.matmul),
    Case("matmul_vec", lambda a, b: a @ b, [f64(3, 4), f64(4)], np.matmul),
    # what the compiled runtime's fuse stage writes for a dense layer's bias
    Case("matmul_add", lambda a, b, c: apply("matmul_add", a, b, c),
         [f64(2, 3, 4), f64(4, 5), f64(5)], lambda a, b, c: a @ b + c),
    Case("matmul_add_full", lambda a, b, c: apply("matmul_add", a, b, c),
         [f64(3, 4), f64(4, 5), f64(3, 5)], lambda a, b, c: a @ b + c),
    # ... and for a residual added to a dense layer's output: a @ b + bias + r
    Case("matmul_add_bias_residual", lambda a, b, c, d: apply("matmul_add", a, b, c, d),
         [f64(2, 3, 4), f64(4, 5), f64(5), f64(2, 3, 5)], lambda a, b, c, d: a @ b + c + d),
    # graphc.optim.global_norm's sum of squares over several arrays
    Case("sum_squares", lambda a, b, c: apply("sum_squares", a, b, c),
         [f64(3, 4), f64(5), f64()], lambda a, b, c: np.sum(a * a) + np.sum(b * b) + c * c),
    Case("einsum", lambda a, b: gc.einsum("bij,jk->bik", a, b), [f64(2, 3, 4), f64(4, 5)],
         lambda a, b: np.einsum("bij,jk->bik", a, b)),
    Case("einsum_sum_out", lambda a, b: gc.einsum("ij,kl->ik", a, b), [f64(2, 3), f64(4, 5)],
         lambda a, b: np.einsum("ij,kl->ik", a, b)),
    Case("einsum_scalar_out", lambda a, b: gc.einsum("ij,jk->", a, b), [f64(2, 3), f64(3, 4)],
         lambda a, b: np.einsum("ij,jk->", a, b)),
    Case("einsum_diag_ellipsis", lambda a, b: gc.einsum("...ii,i", a, b),
         [f64(2, 3, 3), f64(3)], lambda a, b: np.einsum("...ii,i", a, b)),
    # neural-network functions
    Case("softmax", lambda a: gc.softmax(a, -1), [f64(3, 5)], _softmax),
    Case("softmax_axis0", lambda a: gc.softmax(a, 0), [f64(3, 5)], lambda a: _softmax(a, 0)),
    Case("log_softmax", gc.log_softmax, [f64(3, 5)], lambda a: np.log(_softmax(a))),
    Case("layer_norm", gc.layer_norm, [f64(2, 3, 6), f64(6), f64(6)], _layer_norm),
    Case("layer_norm_defaults", lambda x: gc.layer_norm(x), [f64(4, 5)],
         lambda x: _layer_norm(x, 1.0, 0.0)),
    Case("layer_norm_grad", lambda x, w, g: gc.layer_norm_grad(x, w, g, 1e-5),
         [f64(2, 3, 6), f64(6), f64(2, 3, 6)], lambda x, w, g: _ln_grad(x, w, g)),
    Case("layer_norm_wgrad", lambda x, g: gc.layer_norm_wgrad(x, g, 1e-5),
         [f64(2, 3, 6), f64(2, 3, 6)],
         lambda x, g: (g * _layer_norm(x, 1.0, 0.0)).reshape(-1, 6).sum(0)),
    Case("batch_norm", lambda x, w, b: apply("batch_norm", x, w, b, eps=1e-5),
         [f64(3, 4, 2, 3), f64(4), f64(4)],
         lambda x, w, b: _batch_norm(x) * w[:, None, None] + b[:, None, None]),
    Case("batch_norm_2d", lambda x, w, b: apply("batch_norm", x, w, b, eps=1e-5),
         [f64(5, 3), f64(3), f64(3)], lambda x, w, b: _batch_norm(x) * w + b),
    Case("batch_norm_grad", lambda x, w, g: apply("batch_norm_grad", x, w, g, eps=1e-5),
         [f64(3, 4, 5), f64(4), f64(3, 4, 5)], lambda x, w, g: _bn_grad(x, g * w[:, None])),
    Case("batch_norm_wgrad", lambda x, g: apply("batch_norm_wgrad", x, g, eps=1e-5),
         [f64(3, 4, 5), f64(3, 4, 5)],
         lambda x, g: np.stack([(g * _batch_norm(x)).sum((0, 2)), g.sum((0, 2))])),
    Case("batch_moments", lambda x: apply("batch_moments", x), [f64(3, 4, 5)],
         lambda x: np.stack([x.mean((0, 2)), x.var((0, 2))])),
    Case("gelu_grad_tanh", lambda x, g: gc.gelu_grad(x, g), [f64(3, 4), f64(3, 4)],
         lambda x, g: g * _gelu_tanh_deriv(x)),
    Case("gelu_grad_erf", lambda x, g: gc.gelu_grad(x, g, "none"), [f64(3, 4), f64(3, 4)],
         lambda x, g: g * (0.5 * (1 + special.erf(x / math.sqrt(2)))
                           + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi))),
    Case("softmax_grad", lambda y, g: gc.softmax_grad(y, g, 1), [f64(3, 5), f64(3, 5)],
         lambda y, g: y * (g - (g * y).sum(1, keepdims=True))),
    Case("cross_entropy", lambda z, t: gc.cross_entropy(z, t), [f64(4, 3, 7), ints(4, 3, high=7)],
         _cross_entropy, ints=(1,)),
    Case("cross_entropy_ignore", lambda z, t: gc.cross_entropy(z, gc.where(t == 0, -100, t)),
         [f64(8, 5), ints(8, high=5)],
         lambda z, t: _cross_entropy(z, np.where(t == 0, -100, t)), ints=(1,)),
    Case("cross_entropy_soft", lambda z, p: gc.cross_entropy(z, p), [f64(4, 3, 7), pos(4, 3, 7)],
         lambda z, p: -(p * np.log(_softmax(z))).sum(-1).mean()),
    Case("cross_entropy_weighted_ignore",
         lambda z, t, w: gc.cross_entropy(z, t, ignore_index=2, weight=w),
         [f64(9, 5), ints(9, high=5), pos(5)],
         lambda z, t, w: _nll_weighted(np.log(_softmax(z)), t, w, ignore=2), ints=(1,)),
    Case("nll_loss_sum", lambda lp, t: gc.nll_loss(lp, t, reduction="sum"),
         [f64(6, 4), ints(6, high=4)],
         lambda lp, t: -np.take_along_axis(lp, t[:, None], -1).sum(), ints=(1,)),
    Case("nll_loss_none_weighted", lambda lp, t, w: gc.nll_loss(lp, t, reduction="none",
                                                              weight=w),
         [f64(2, 3, 4), ints(2, 3, high=4), pos(4)],
         lambda lp, t, w: -np.take_along_axis(lp, t[..., None], -1)[..., 0] * w[t], ints=(1,)),
    # its gradient is the primitive ctc_loss_grad, which refuses a second derivative
    Case("ctc_loss", lambda lp: gc.ctc_loss(lp, _CTC_TARGETS, _CTC_INPUTS, _CTC_LENGTHS,
                                            reduction="none"),
         [f64(4, 2, 3)], _ctc_reference, second=False),
    Case("mse_loss", gc.mse_loss, [f64(3, 4), f64(3, 4)], lambda a, b: ((a - b) ** 2).mean()),
    Case("mse_loss_sum_broadcast", lambda a, b: gc.mse_loss(a, b, reduction="sum"),
         [f64(3, 4), f64(4)], lambda a, b: ((a - b) ** 2).sum()),
    Case("silu", gc.silu, [f64(3, 4)], lambda a: a / (1 + np.exp(-a))),
    Case("leaky_relu", lambda a: gc.leaky_relu(a, 0.2), [f64(3, 4)],
         lambda a: np.where(a > 0, a, 0.2 * a)),
    Case("rms_norm", lambda x, w: gc.rms_norm(x, w, 1e-6), [f64(2, 3, 6), f64(6)], _rms_norm),
    Case("rms_norm_default_eps", lambda x: gc.rms_norm(x), [f64(4, 5)],
         lambda x: _rms_norm(x, 1.0, np.finfo(np.float64).eps)),
    Case("masked_fill_causal", lambda a: gc.softmax(gc.masked_fill(a, ~gc.tril_mask(4), -1e9)),
         [f64(2, 4, 4)], lambda a: _softmax(np.where(np.tri(4, dtype=bool), a, -1e9))),
    Case("dropout_fixed_seed", lambda a: gc.dropout(a, 0.5, 7, salt=1), [f64(4, 8)],
         lambda a: a * (np.random.default_rng([7, 0, 1]).random((4, 8), dtype=np.float32)
                        >= 0.5) * 2.0),
    Case("creators", lambda a: a * gc.ones((3, 4), "float64") + gc.zeros(4, "float64")
         + gc.full((3, 1), 2.5, "float64") + gc.cast(gc.arange(4), "float64"),
         [f64(3, 4)], lambda a: a + 2.5 + np.arange(4)),
    # numpy's array functions (ir/ops/arrays.py), built from the primitives but argsort
    Case("pad_constant", lambda a: gc.pad(a, ((1, 2), (0, 1)), constant_values=0.5),
         [f64(3, 4)], lambda a: np.pad(a, ((1, 2), (0, 1)), constant_values=0.5)),
    Case("pad_modes", lambda a: gc.pad(a, ((1, 1), (2, 0)), mode="reflect")
         + gc.pad(a, ((1, 1), (2, 0)), mode="edge") * gc.pad(a, ((1, 1), (2, 0)), mode="wrap")
         + gc.pad(a, ((1, 1), (2, 0)), mode="symmetric"), [f64(3, 4)],
         lambda a: np.pad(a, ((1, 1), (2, 0)), mode="reflect")
         + np.pad(a, ((1, 1), (2, 0)), mode="edge") * np.pad(a, ((1, 1), (2, 0)), mode="wrap")
         + np.pad(a, ((1, 1), (2, 0)), mode="symmetric")),
    Case("flip_roll", lambda a: gc.flip(a, 1) * gc.roll(a, 1, 0) + gc.roll(a, -3),
         [f64(3, 4)], lambda a: np.flip(a, 1) * np.roll(a, 1, 0) + np.roll(a, -3)),
    Case("tile_repeat_moveaxis", lambda a: gc.tile(a, (2, 1, 1)) * gc.repeat(a, 2, 0)
         + gc.moveaxis(gc.repeat(a, 2, 1), 1, 0).reshape(6, 2, 4), [f64(3, 2, 4)],
         lambda a: np.tile(a, (2, 1, 1)) * np.repeat(a, 2, 0)
         + np.moveaxis(np.repeat(a, 2, 1), 1, 0).reshape(6, 2, 4)),
    Case("prod_cumprod", lambda a: gc.prod(a, 1, keepdims=True) * gc.cumprod(a, 1) + gc.prod(a),
         [f64(3, 5)], lambda a: np.prod(a, 1, keepdims=True) * np.cumprod(a, 1) + np.prod(a)),
    Case("take_along_axis", lambda a, i: gc.take_along_axis(a, i, 1), [f64(3, 4),
         ints(3, 6, high=4)], lambda a, i: np.take_along_axis(a, i, 1), ints=(1,)),
    Case("outer", gc.outer, [f64(3), f64(2, 2)], np.outer),
    Case("dot_tensordot", lambda a, b, c: gc.dot(a, b) + gc.tensordot(a, b, 1)
         + gc.tensordot(c, c, ((0, 2), (0, 2))), [f64(3, 3), f64(3, 3), f64(2, 3, 4)],
         lambda a, b, c: np.dot(a, b) + np.tensordot(a, b, 1)
         + np.tensordot(c, c, ((0, 2), (0, 2)))),
    Case("norm", lambda a: gc.norm(a, axis=1) + gc.norm(a, 1, axis=1) + gc.norm(a, 3, axis=1)
         + gc.norm(a, np.inf, axis=1) + gc.norm(a), [f64(3, 4)],
         lambda a: np.linalg.norm(a, axis=1) + np.linalg.norm(a, 1, axis=1)
         + np.linalg.norm(a, 3, axis=1) + np.linalg.norm(a, np.inf, axis=1)
         + np.linalg.norm(a)),
    Case("norm_negative", lambda a: gc.norm(a, -1, axis=1) + gc.norm(a, -2.5, axis=0).sum(),
         [f64(3, 4)], lambda a: np.linalg.norm(a, -1, axis=1)
         + np.linalg.norm(a, -2.5, axis=0).sum()),
    Case("diag", lambda a: gc.diag(gc.diag(a, 1), -1) + gc.diag(gc.diag(a)), [f64(4, 4)],
         lambda a: np.diag(np.diag(a, 1), -1) + np.diag(np.diag(a))),
    Case("sort_top_k", lambda a: gc.sort(a, 0) + gc.top_k(a, 4)[0], [f64(3, 4)],
         lambda a: np.sort(a, 0) - np.sort(-a, 1)),
    Case("nan_to_num", lambda a: gc.nan_to_num(gc.log(a)) * a, [f64(3, 4)],
         lambda a: _quiet(lambda: np.nan_to_num(np.log(a)) * a)),
    Case("meshgrid_linspace", lambda a, b: gc.meshgrid(a, b)[0] * gc.meshgrid(a, b)[1]
         + gc.linspace(-1.0, 2.0, 3, dtype=a.dtype), [f64(3), f64(2)],
         lambda a, b: np.meshgrid(a, b)[0] * np.meshgrid(a, b)[1] + np.linspace(-1, 2, 3)),
    Case("segment_sum", lambda a, i: gc.segment_sum(a, i, 4), [f64(5, 3), ints(5, high=4)],
         lambda a, i: _scatter(a, i, 4), ints=(1,)),
    # value-sized results (ir/ops/search.py), with the size given as a trace needs
    Case("bincount_weights", lambda w, i: gc.bincount(i, w, length=6), [f64(7), ints(7, high=6)],
         lambda w, i: np.bincount(i, w, minlength=6), ints=(1,)),
    Case("unique_searchsorted_flatnonzero", lambda a: gc.unique(a, size=12)
         * gc.cast(gc.searchsorted(np.linspace(-2.0, 2.0, 5), gc.reshape(a, (-1,))), a.dtype)
         + gc.take(gc.reshape(a, (-1,)), gc.flatnonzero(gc.greater(a, 0), size=12)),
         [f64(3, 4)], lambda a: np.sort(a.ravel())
         * np.searchsorted(np.linspace(-2.0, 2.0, 5), a.ravel())
         + a.ravel()[np.pad(np.flatnonzero(a > 0), (0, 12 - np.count_nonzero(a > 0)))]),
    # torch.nn.functional's other activations (ir/ops/activations.py)
    Case("elu_selu_celu", lambda a: gc.elu(a, 0.7) + gc.selu(a) * gc.celu(a, 1.3),
         [f64(3, 4)], lambda a: _elu(a, 0.7) + _SELU_SCALE * _elu(a, _SELU_ALPHA)
         * np.where(a > 0, a, 1.3 * np.expm1(np.minimum(a, 0) / 1.3))),
    Case("hard_activations", lambda a: gc.relu6(a * 4.0) + gc.hardtanh(a, -1.5, 0.5)
         + gc.hardsigmoid(a * 2.0) * gc.hardswish(a * 2.0), [f64(3, 4)],
         lambda a: np.clip(a * 4, 0, 6) + np.clip(a, -1.5, 0.5)
         + np.clip(a * 2 + 3, 0, 6) / 6 * (a * 2) * np.clip(a * 2 + 3, 0, 6) / 6),
    Case("mish_softsign_glu_shrink", lambda a: gc.mish(a) * gc.softsign(a)
         + gc.softshrink(a, 0.3) + gc.hardshrink(a, 0.3) + gc.tile(gc.glu(a, 1), (1, 2)),
         [f64(3, 4)], lambda a: a * np.tanh(np.logaddexp(a, 0)) * a / (1 + np.abs(a))
         + np.sign(a) * np.maximum(np.abs(a) - 0.3, 0) + np.where(np.abs(a) > 0.3, a, 0)
         + np.tile(a[:, :2] / (1 + np.exp(-a[:, 2:])), (1, 2))),
    Case("prelu", gc.prelu, [f64(2, 3, 4), f64(3)],
         lambda a, w: np.where(a > 0, a, a * w[:, None])),
    # torch.nn.functional's other losses and distances (ir/ops/losses.py)
    Case("binary_cross_entropy", lambda x, t, w: gc.binary_cross_entropy(x, t, w, "none")
         + gc.binary_cross_entropy(x, t), [_prob(3, 4), _prob(3, 4), pos(4)],
         lambda x, t, w: _bce(x, t, w) + _bce(x, t).mean()),
    Case("bce_with_logits", lambda x, t, w, p: gc.binary_cross_entropy_with_logits(
        x, t, w, "none", p) + gc.binary_cross_entropy_with_logits(x, t, reduction="sum"),
         [f64(3, 4, low=-4.0, high=4.0), _prob(3, 4), pos(4), pos(4)],
         lambda x, t, w, p: _bce_logits(x, t, w, p) + _bce_logits(x, t).sum()),
    Case("l1_smooth_l1_huber", lambda a, b: gc.l1_loss(a, b, "none")
         + gc.smooth_l1_loss(a, b, "none", 0.5) * gc.huber_loss(a, b, "none", 0.7)
         + gc.huber_loss(a, b), [f64(3, 4), f64(4)],
         lambda a, b: np.abs(a - b) + _huber(a - b, 0.5) / 0.5 * _huber(a - b, 0.7)
         + _huber(a - b, 1.0).mean()),
    Case("kl_div", lambda a, b: gc.kl_div(a, b, "none") + gc.kl_div(a, b, "batchmean")
         + gc.kl_div(a, b, "none", True), [f64(3, 4), pos(3, 4)],
         lambda a, b: b * (np.log(b) - a) + (b * (np.log(b) - a)).sum() / 3
         + np.exp(b) * (b - a)),
    Case("cosine_normalize_pairwise", lambda a, b: gc.expand_dims(gc.cosine_similarity(a, b), 1)
         * gc.normalize(a) + gc.normalize(b, 1.0, 0) + gc.pairwise_distance(a, b, keepdim=True)
         + gc.pairwise_distance(a, b, 3.0, keepdim=True), [f64(3, 4), f64(3, 4)],
         lambda a, b: ((a * b).sum(1, keepdims=True) / _p_norm(a, 2, 1) / _p_norm(b, 2, 1))
         * a / _p_norm(a, 2, 1) + b / _p_norm(b, 1, 0) + _p_norm(a - b + 1e-6, 2, -1)
         + _p_norm(a - b + 1e-6, 3, -1)),
    Case("softplus_beta_logsigmoid", lambda a: gc.softplus(a, 2.0, 3.0)
         + gc.logsigmoid(a) * gc.softplus(a), [f64(3, 4, low=-3.0, high=3.0)],
         lambda a: np.where(2 * a > 3, a, np.logaddexp(0, 2 * a) / 2)
         - np.logaddexp(0, -a) * np.logaddexp(0, a)),
    # torch.nn.functional's margin, embedding and likelihood losses (ir/ops/losses_extra.py)
    Case("margin_hinge_triplet", lambda a, b, c, t: gc.margin_ranking_loss(a, b, t, 0.3, "none")
         + gc.hinge_embedding_loss(a, t, 0.5, "none") + gc.soft_margin_loss(a, t, "none")
         + gc.triplet_margin_loss(a, b, c, 1.5, swap=True), [f64(3, 4), f64(3, 4), f64(3, 4),
                                                             f64(3, 4)], _margin_losses),
    Case("embedding_nll_losses", lambda a, b, v, y: gc.cosine_embedding_loss(
        a, b, _COS_TARGET, 0.2, "none") + gc.multilabel_soft_margin_loss(
        a, gc.sigmoid(b), reduction="none") + gc.multi_margin_loss(a, y, 2, 0.7,
                                                                   reduction="none")
         + gc.poisson_nll_loss(a, v) + gc.gaussian_nll_loss(a, b, v, True),
         [f64(3, 4), f64(3, 4), pos(3, 4), ints(3, high=4)], _embedding_nll_losses, ints=(3,)),
    Case("multilabel_margin_triplet_distance", lambda a, b, c: gc.multilabel_margin_loss(
        a, _MULTILABEL_TARGET, "none") + gc.triplet_margin_with_distance_loss(
        a, b, c, distance_function=lambda u, v: gc.sum(gc.abs(u - v), -1), swap=True),
         [f64(3, 4), f64(3, 4), f64(3, 4)], _multilabel_margin_triplet_distance),
    Case("threshold_softmin_bilinear", lambda a, x2, w: gc.threshold(a, 0.1, 2.0)
         + gc.tanhshrink(a) + gc.softmin(a, 1) + gc.bilinear(a, x2, w),
         [f64(3, 4), f64(3, 5), f64(4, 4, 5)], _small_layers),
    # collectives in one process are the identity; under mpiexec: tests/test_mpi.py
    Case("allreduce", lambda a, b: allreduce(a * b, "mean") + allreduce(a, "sum"),
         [f64(3, 4), f64(3, 4)], lambda a, b: a * b + a),
    Case("allreduce_bucket", _bucketed, [f64(3, 4), f64(4)], lambda a, b: a * a + b),
    # collectives over a named vmap axis (ir/ops/named_axis.py): the node itself, on a value
    # every example shares (axis_size times it, or it), and gc.psum... inside vmap
    Case("vmap_reduce", lambda a: apply("vmap_reduce", a, reduce="sum", axis_name="i",
                                        axis_size=3) * a
         + apply("vmap_reduce", a, reduce="max", axis_name="i", axis_size=3),
         [f64(3, 4)], lambda a: 3 * a * a + a),
    Case("psum_in_vmap", lambda a: gc.vmap(lambda r: r * gc.psum(r, "i") + gc.pmax(r, "i")
                                           - gc.pmean(r, "i") * gc.pmin(r, "i"),
                                           axis_name="i")(a),
         [f64(3, 4)], lambda a: a * a.sum(0) + a.max(0) - a.mean(0) * a.min(0)),
    # custom gradient rules (graphc/custom.py): correct rules, so finite differences agree
    Case("custom_vjp", lambda a, b: sum(_softplus_scaled(a, b)), [f64(3, 4), f64(4)],
         lambda a, b: np.log1p(np.exp(a)) * b + a * b),
    Case("custom_jvp", lambda a: _log1pexp(a) * a, [f64(3, 4)], lambda a: np.log1p(np.exp(a)) * a),
    # the identity that keeps graphc.remat's replay apart from the forward (under CSE)
    Case("optimization_barrier", lambda a: apply("optimization_barrier", a * a) * a, [f64(3, 4)],
         lambda a: a ** 3),
    # control flow (graphc/control_flow.py): region nodes, read through tuple_get
    Case("scan", _scan_rnn, [f64(2, 3), f64(5, 2, 3), f64(3, 3)], _scan_rnn_reference),
    Case("scan_reverse_fori", _fori_reverse_scan, [f64(3, 4), f64(4)],
         _fori_reverse_scan_reference),
    Case("cond", _cond_case, [f64(3, 4), f64(4)], _cond_reference),
    # finite differences see through stop_gradient, so its gradient is tested on its own
    Case("stop_gradient", lambda a: a * gc.stop_gradient(a), [f64(3)], lambda a: a * a,
         grad=False),
]
