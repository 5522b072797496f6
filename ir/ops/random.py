"""Random numbers as pure functions of a key (graphc.random, in the style of jax.random).

A key is an int64 array of shape (2,) holding two 32-bit words, as JAX's raw uint32 keys (the
IR has no unsigned dtype). Every op here seeds numpy's generator with the key's words and a
tag naming what it draws, so the same key gives the same numbers eagerly, compiled and inside
loop bodies, and split or folded keys start unrelated streams (numpy's SeedSequence hashes its
whole entropy list). The draws are standard (uniform in [0, 1), normal(0, 1), integers in
[minval, maxval), a permutation of n, Poisson counts); graphc.random scales them with
ordinary ops, so gradients reach minval/maxval, mu and sigma, while no drawing op has a
gradient rule: a key is integer and a draw is a constant for autodiff. The deterministic ops
beside them, gamma_log_quantile (Gamma draws by inversion of a uniform one, with the
gradient with respect to a) and cov_factor (multivariate_normal's, whose gradient refuses),
are ordinary elementwise or per-matrix ops. The draws are `stochastic`, as dropout_mask:
fold never computes them at compile time (a draw is as large as its shape). An op takes keys
of shape (..., 2) and draws once per key along the leading axes: that is its batching rule,
so vmap over B keys is one op (graphc.random itself takes one key), which seeds the keys'
generators together (_pcg64_seeds).
"""
from __future__ import annotations

import math
import threading

import numpy as np

from ..errors import GraphcError, user_location
from ..types import INT_DTYPES, TensorType, broadcast_shapes, is_float
from . import api as F
from .elementwise import float_arith
from .registry import apply, check, defop

WORD = 0xFFFFFFFF
# what each op mixes into the seed besides the key: a split key never seeds the stream that
# its parent's uniform or normal draws read. The size drawn is mixed in too (split's num, a
# draw's shape, permutation's n), as JAX's draws of two sizes are unrelated: numpy's streams
# are prefixes of each other, so split(key, 3) began with split(key, 2)'s two keys and
# normal(key, (2, 3)) was normal(key, (6,)) reshaped. (Trailing zeros of the entropy list
# are padding to SeedSequence, but a shape with a 0 draws nothing.)
_SPLIT, _FOLD_IN, _DRAW, _PERMUTE, _POISSON = 1, 2, 3, 4, 5


def key_words(seed: int) -> np.ndarray:
    """The key of an integer seed: its high and low 32-bit words (jax.random.PRNGKey)."""
    seed = int(seed)
    return np.array([(seed >> 32) & WORD, seed & WORD], dtype=np.int64)


def _per_key(keys, shape, dtype, draw, *tag):
    """draw(generator, index) -> array of `shape`, for each key of `keys` (..., 2) at `index`
    along its leading axes, stacked: vmap over keys batches the key operand (rule below)
    rather than running one op per example. The generator is seeded with the key's words and
    `tag` (numbers, or integer arrays of the keys' leading shape: fold_in's data)."""
    keys = np.asarray(keys, np.int64)
    lead = keys.shape[:-1]
    out = np.empty(lead + tuple(shape), dtype)
    if math.prod(lead) >= _SEEDED_TOGETHER_FROM:
        columns = [keys[..., 0] & WORD, keys[..., 1] & WORD]
        entropy = np.stack(columns + [np.broadcast_to(t, lead) for t in tag], -1)
        entropy = entropy.reshape(-1, entropy.shape[-1])
        # one 32-bit word each, as SeedSequence takes them, and numpy seeding as this copy
        # of it does (a numpy that changed its seeding falls back to default_rng per key)
        if entropy.max() <= WORD and _seeding_matches_numpy():
            generator = _thread_generator()
            for index, (state, inc) in zip(np.ndindex(lead),
                                           _pcg64_seeds(entropy.astype(np.uint32))):
                # the state np.random.default_rng(words) starts in (tests/test_random.py
                # checks it)
                generator.bit_generator.state = {
                    "bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                    "state": {"state": state, "inc": inc}}
                out[index] = draw(generator, index)
            return out
    for index in np.ndindex(lead):
        words = [int(k) & WORD for k in keys[index]] + [
            int(t[index]) if isinstance(t, np.ndarray) else int(t) for t in tag]
        out[index] = draw(np.random.default_rng(words), index)
    return out


# Seeding numpy's generator (SeedSequence's hashing, PCG64's start) is most of a small draw's
# time (~18 us a key); for a batch of keys it is done for all at once below, in numpy, and
# one generator per thread is set to each state. Below this many keys, default_rng per key
# is faster. The constants are numpy's (numpy/random/bit_generator.pyx, pcg64.h).
_SEEDED_TOGETHER_FROM = 16
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43b0d7e5, 0x931e8875, 0x8b51f9dd, 0x58f38ded
_MIX_L, _MIX_R, _SHIFT = np.uint32(0xca01f9dd), np.uint32(0x4973f715), np.uint32(16)
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
_MASK128 = (1 << 128) - 1
_local = threading.local()


_SEEDING_CHECKED = []


def _seeding_matches_numpy() -> bool:
    """Whether _pcg64_seeds gives the states np.random.default_rng starts in, for entropy
    of one to four words: checked once per process."""
    if not _SEEDING_CHECKED:
        rows = [np.array([[7, 0xFFFFFFFF, 3, 12345][:n]], np.uint32) for n in range(1, 5)]
        _SEEDING_CHECKED.append(all(
            _pcg64_seeds(row)[0] == tuple(np.random.default_rng(row[0].tolist())
                                          .bit_generator.state["state"].values())
            for row in rows))
    return _SEEDING_CHECKED[0]


def _thread_generator():
    if not hasattr(_local, "generator"):
        _local.generator = np.random.Generator(np.random.PCG64())
    return _local.generator


def _pcg64_seeds(entropy):
    """[(state, inc)] of np.random.default_rng(row).bit_generator for each row of `entropy`,
    a uint32 array (n, words): SeedSequence's pool of 4 words, its generate_state(4, uint64)
    and PCG64's seeding, each step vectorised over the rows."""
    const = _INIT_A

    def hashmix(value):
        nonlocal const
        value = value ^ np.uint32(const)
        const = const * _MULT_A & WORD
        value = value * np.uint32(const)
        return value ^ (value >> _SHIFT)

    def mix(x, y):
        r = _MIX_L * x - _MIX_R * y
        return r ^ (r >> _SHIFT)

    n, length = entropy.shape
    pool = [hashmix(entropy[:, i] if i < length else np.zeros(n, np.uint32)) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, length):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(entropy[:, src]))
    const, words = _INIT_B, []
    for i in range(8):
        value = pool[i % 4] ^ np.uint32(const)
        const = const * _MULT_B & WORD
        value = value * np.uint32(const)
        words.append((value ^ (value >> _SHIFT)).astype(np.uint64))
    # little-endian word pairs: the seed's 128 bits, then the stream's (pcg64_set_seed)
    halves = [(words[2 * j] | words[2 * j + 1] << np.uint64(32)).tolist() for j in range(4)]
    seeds = []
    for high, low, inc_high, inc_low in zip(*halves):
        inc = ((inc_high << 64 | inc_low) << 1 | 1) & _MASK128
        state = ((inc + (high << 64 | low)) * _PCG_MULT + inc) & _MASK128
        seeds.append((state, inc))
    return seeds


def _check_key(types):
    """Keys of shape (..., 2): one draw per key (graphc.random takes one key, of shape (2,);
    the leading axes are vmap's batch axes)."""
    key = types[0]
    check(key.dtype in INT_DTYPES and key.ndim >= 1 and key.shape[-1] == 2,
          f"a key is an integer array of shape (2,) (gc.random.key(seed)), got {key}")
    return tuple(key.shape[:-1])


def _key_infer(types):
    (seed,) = types
    check(seed.dtype in INT_DTYPES, "the seed must be an integer")
    return TensorType(tuple(seed.shape) + (2,), np.dtype("int64"))


@defop("random_key", _key_infer, arity=1)
def _random_key(seed):
    seed = np.asarray(seed, np.int64)  # >> on int64 sign-extends, as on Python ints
    return np.stack([(seed >> 32) & WORD, seed & WORD], axis=-1)


def _split_infer(types, num):
    return TensorType(_check_key(types) + (num, 2), np.dtype("int64"))


@defop("random_split", _split_infer, arity=1, stochastic=True)
def _random_split(key, num):
    return _per_key(key, (num, 2), np.int64, lambda g, _: g.integers(
        0, WORD + 1, size=(num, 2), dtype=np.int64), _SPLIT, num)


def _fold_in_infer(types):
    keys = _check_key(types)
    check(types[1].dtype in INT_DTYPES and tuple(types[1].shape) == keys,
          "the data folded in must be an integer scalar")
    return TensorType(keys + (2,), np.dtype("int64"))


@defop("random_fold_in", _fold_in_infer, arity=2, stochastic=True)
def _random_fold_in(key, data):
    data = np.asarray(data)
    # as graphc.random.fold_in refuses a concrete value outside [-2**31, 2**32): traced
    # data of 2**32 would otherwise fold in as 0 does (JAX's traced uint32 cast wraps it)
    outside = (data < -2**31) | (data >= 2**32) if data.dtype == np.int64 else np.False_
    if outside.any():
        raise ValueError(f"gc.random.fold_in: data {int(data[outside].flat[0])} does not "
                         "fit in 32 bits")
    # as JAX, the data counts as a 32-bit word: -1 and 2**32 - 1 fold in alike
    return _per_key(key, (2,), np.int64, lambda g, _: g.integers(
        0, WORD + 1, size=2, dtype=np.int64), _FOLD_IN, data.astype(np.int64) & WORD)


def _float_infer(types, shape, dtype):
    keys = _check_key(types)
    check(is_float(np.dtype(dtype)), f"the dtype must be floating point, got {dtype}")
    return TensorType(keys + tuple(shape), dtype)


def _draw(key, shape, dtype, method):
    """Drawn in float64 for float64, else in float32 and rounded once to the dtype."""
    wide = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    return _per_key(key, shape, dtype, lambda g, _: getattr(g, method)(tuple(shape), dtype=wide),
                    _DRAW, *shape)


@defop("random_uniform", _float_infer, arity=1, stochastic=True)
def _random_uniform(key, shape, dtype):
    if np.dtype(dtype) in (np.float32, np.float64):
        return _draw(key, shape, dtype, "random")
    # a half dtype: the float32 draw rounded down to it, so that each of its values v in
    # [0, 1) comes with the probability of [v, next v), as torch's and JAX's draws on the
    # dtype's grid. Rounded to nearest, a draw just below 1 became 1 (clipped back, the
    # top value then had 1.5 times its share) and bernoulli(p) fell short by half a step
    wide = _draw(key, shape, np.float32, "random")
    out = wide.astype(dtype)
    up = out.astype(np.float32) > wide
    out[up] = np.nextafter(out[up], np.zeros((), dtype))
    return out


@defop("random_normal", _float_infer, arity=1, stochastic=True)
def _random_normal(key, shape, dtype):
    return _draw(key, shape, dtype, "standard_normal")


def _randint_infer(types, shape, dtype):
    keys = _check_key(types)
    dtype = np.dtype(dtype)
    check(dtype in INT_DTYPES, f"the dtype must be an integer type, got {dtype}")
    out = keys + tuple(shape)
    for bound, name in zip(types[1:], ("minval", "maxval")):
        check(bound.dtype in INT_DTYPES and broadcast_shapes(tuple(bound.shape), out) == out,
              f"{name} must be an integer array that broadcasts to {out}, got {bound}")
    return TensorType(out, dtype)


@defop("random_randint", _randint_infer, arity=3, stochastic=True)
def _random_randint(key, minval, maxval, shape, dtype):
    key = np.asarray(key)
    lead, n = key.shape[:-1], len(shape)
    info = np.iinfo(dtype)
    # as JAX: the bounds clipped to the dtype's range, maxval exclusive (numpy takes the last
    # value, which cannot wrap), and minval drawn where maxval <= minval
    low = np.clip(np.asarray(minval, np.int64), info.min, info.max)
    last = np.clip(np.asarray(maxval, np.int64), info.min + 1, None) - 1
    last = np.where(last >= low, np.minimum(last, info.max), low)
    # a bound per key along the keys' axes; its draw's axes stay as given (a number's are
    # of size 1, drawn as numpy draws a scalar bound: no array of `shape` per key)
    low, last = (np.broadcast_to(b, lead + b.shape[b.ndim - n:]) for b in (low, last))

    def draw(generator, index):
        lo, hi = (b[index] if b[index].size > 1 else b[index].reshape(()) for b in (low, last))
        return generator.integers(lo, hi, size=tuple(shape), dtype=np.int64, endpoint=True)
    return _per_key(key, shape, dtype, draw, _DRAW, *shape)


def _permutation_infer(types, n):
    return TensorType(_check_key(types) + (n,), np.dtype("int64"))


@defop("random_permutation", _permutation_infer, arity=1, stochastic=True)
def _random_permutation(key, n):
    return _per_key(key, (n,), np.int64, lambda g, _: g.permutation(n), _PERMUTE, n)


def _poisson_infer(types, shape, dtype):
    keys = _check_key(types)
    dtype = np.dtype(dtype)
    check(dtype in INT_DTYPES, f"the dtype must be an integer type, got {dtype}")
    out = keys + tuple(shape)
    lam = types[1]
    check(is_float(lam.dtype) and broadcast_shapes(tuple(lam.shape), out) == out,
          f"lam must be a floating-point array that broadcasts to {out}, got {lam}")
    return TensorType(out, dtype)


# numpy's generator refuses a larger rate (its draws would pass int64's range)
POISSON_LAM_MAX = 1e18


@defop("random_poisson", _poisson_infer, arity=2, stochastic=True)
def _random_poisson(key, lam, shape, dtype):
    key = np.asarray(key)
    lead, n = key.shape[:-1], len(shape)
    lam = np.asarray(lam, np.float64)
    if (lam > POISSON_LAM_MAX).any():  # (a traced lam: graphc.random refuses a concrete one)
        raise ValueError(f"gc.random.poisson: lam {lam[lam > POISSON_LAM_MAX].flat[0]:g} is "
                         f"above {POISSON_LAM_MAX:g}, the largest numpy's generator draws")
    # a rate per key along the keys' axes, as randint's bounds
    lam = np.broadcast_to(lam, lead + lam.shape[lam.ndim - n:])

    def draw(generator, index):
        rate = lam[index]
        valid = rate >= 0  # as JAX's: -1 where lam is negative or NaN
        counts = generator.poisson(np.broadcast_to(np.where(valid, rate, 0.0), tuple(shape)))
        # a count past the dtype's range (lam 3e9 in int32) is its largest value, as JAX's
        # float-to-int conversion saturates; numpy's cast into `out` wrapped it negative
        counts = np.minimum(counts, np.iinfo(dtype).max)
        return np.where(valid, counts, -1)
    return _per_key(key, shape, dtype, draw, _POISSON, *shape)


# ---- Gamma draws by inversion (graphc.random.gamma, loggamma, beta, dirichlet, t, ...) -----
# gamma_log_quantile(a, u) = log x where P(a, x) = u (P: the regularised lower incomplete
# gamma function, the Gamma(a) CDF): a uniform u gives a Gamma(a) draw, and the draw is a
# smooth function of a for a fixed key, so its gradient (JAX's implicit reparameterisation,
# dx/da = -(dP/da) / p(x)) is also the derivative of the draw itself. Computed in float64.
# Below log x = _TINY_LOG (a small a: x of u = 0.5 at a = 0.001 is 1e-301, which underflows),
# log x comes from P(a, x) = x^a / Gamma(a + 1) (1 + O(x)) instead, as JAX's loggamma keeps
# small-a draws in log space.
_TINY_LOG = -200.0


@defop("gamma_log_quantile", float_arith, arity=2,
       vjp=lambda ctx, g: [F.unbroadcast(g * apply("gamma_log_quantile_grad", ctx.inputs[0],
                                                   ctx.out), F._shape(ctx.inputs[0]))
                           if ctx.needs[0] else None, None])
def _gamma_log_quantile(a, u):
    from scipy import special
    dtype = np.result_type(a, u)
    a, u = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(u, np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = (np.log(u) + special.gammaln(a + 1)) / a  # (a = 0: -inf, a point mass at 0)
        out = np.where(small < _TINY_LOG, small, np.log(special.gammaincinv(a, u)))
    return np.where(a >= 0, out, np.nan).astype(dtype)  # a < 0: NaN


def _no_second_derivative(ctx, g):
    raise GraphcError("gc.random.gamma (and loggamma, beta, dirichlet, t, chisquare): no "
                      "second derivative with respect to a", (user_location(),))


_no_second_derivative.refuses = True  # (no differentiable case for tests/test_ops.py)


@defop("gamma_log_quantile_grad", float_arith, arity=2,
       vjp=_no_second_derivative)
def _gamma_log_quantile_grad(a, log_x):
    """d log x / da of gamma_log_quantile's log x at a, in float64: -(dP/da) / (x p(x)), dP/da
    by central differences extrapolated (Richardson) to fourth order, on P where x < a and on
    1 - P (scipy's gammaincc, accurate in the upper tail) beyond; where log x came from the
    small-x form, that form's derivative. 0 where the draw is 0 (a = 0)."""
    from scipy import special
    dtype = np.result_type(a, log_x)
    a, log_x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(log_x, np.float64))
    x = np.exp(log_x)
    lower = x < a
    # steps small against a and against the spread sqrt(a) of the draws
    h = 1e-3 * np.minimum(a, np.sqrt(a))

    def slope(step):
        up = np.where(lower, special.gammainc(a + step, x), -special.gammaincc(a + step, x))
        down = np.where(lower, special.gammainc(a - step, x), -special.gammaincc(a - step, x))
        return (up - down) / (2 * step)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d_p = (4 * slope(h / 2) - slope(h)) / 3
        # log(x p(x)) = a log x - x - log Gamma(a)
        implicit = -d_p * np.exp(-(a * log_x - x - special.gammaln(a)))
        # log x = (log u + log Gamma(a + 1)) / a: its derivative at fixed u
        small = (special.digamma(a + 1) - log_x) / a
        out = np.where(log_x < _TINY_LOG, small, implicit)
    return np.where(np.isfinite(log_x), out, 0.0).astype(dtype)


# ---- multivariate_normal's factor of the covariance -----------------------------------------
def _cov_factor_infer(types, kind):
    (cov,) = types
    check(is_float(cov.dtype) and len(cov.shape) >= 2 and cov.shape[-1] == cov.shape[-2],
          f"cov must be a floating-point array of square matrices (..., n, n), got {cov}")
    check(kind in ("cholesky", "eigh", "svd"),
          f"kind must be cholesky, eigh or svd, got {kind!r}")
    return cov


def _no_cov_gradient(ctx, g):
    raise GraphcError("gc.random.multivariate_normal: no gradient with respect to cov "
                      "(mean's flows)", (user_location(),))


_no_cov_gradient.refuses = True


@defop("cov_factor", _cov_factor_infer, arity=1, vjp=_no_cov_gradient)
def _cov_factor(cov, kind):
    """A with A A^T = cov, as jax.random.multivariate_normal's methods: the lower Cholesky
    factor (NaN for a matrix that is not positive definite, as JAX's, where numpy raises),
    u sqrt(w) of eigh (NaN for a negative eigenvalue), or u sqrt(s) of the SVD."""
    cov = np.asarray(cov)
    if kind == "eigh":
        w, u = np.linalg.eigh(cov)
        # a semidefinite cov's zero eigenvalues come out of eigh as +-n eps |w|max: those
        # rounding errors are 0, not a refusal (or NaN) of a valid singular cov
        # (initial=0: a 0x0 cov, mean of shape (0,), has no eigenvalue to take the max of)
        tol = cov.shape[-1] * np.finfo(w.dtype).eps * np.abs(w).max(-1, keepdims=True,
                                                                   initial=0.0)
        w = np.where((w < 0) & (w >= -tol), 0.0, w).astype(w.dtype)
        with np.errstate(invalid="ignore"):
            return (u * np.sqrt(w)[..., None, :]).astype(cov.dtype)
    if kind == "svd":
        u, s, _ = np.linalg.svd(cov)
        return (u * np.sqrt(s)[..., None, :]).astype(cov.dtype)
    out = np.empty_like(cov)
    for index in np.ndindex(cov.shape[:-2]):
        try:
            out[index] = np.linalg.cholesky(cov[index])
        except np.linalg.LinAlgError:
            out[index] = np.nan
    return out


def _register_batching():
    from .batching import batch_all, broadcasting, defbatch

    def one_draw_per_key(name):
        def rule(args, batched, size, **attrs):
            # the op's only operand is batched (a rule runs only then): a seed or key per
            # example, and the op draws once for each along the leading axes
            return apply(name, *args, **attrs)
        return rule

    # (cov_factor factors each matrix of a stack: its batch axis is one more leading axis)
    for name in ("random_key", "random_split", "random_uniform", "random_normal",
                 "random_permutation", "cov_factor"):
        defbatch(name)(one_draw_per_key(name))

    # a key and data (bounds) per example: the unbatched ones repeated along the batch
    @defbatch("random_fold_in")
    def _fold_in_rule(args, batched, size):
        return apply("random_fold_in", *batch_all(args, batched, size))

    def with_parameters(name):
        def rule(args, batched, size, **attrs):
            return apply(name, *batch_all(args, batched, size), **attrs)
        return rule

    for name in ("random_randint", "random_poisson"):
        defbatch(name)(with_parameters(name))
    for name in ("gamma_log_quantile", "gamma_log_quantile_grad"):
        defbatch(name)(broadcasting(name))


_register_batching()
