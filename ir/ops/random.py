"""Random numbers as pure functions of a key (graphc.random, in the style of jax.random).

A key is an int64 array of shape (2,) holding two 32-bit words, as JAX's raw uint32 keys (the
IR has no unsigned dtype). Every op here seeds numpy's generator with the key's words and a
tag naming what it draws, so the same key gives the same numbers eagerly, compiled and inside
loop bodies, and split or folded keys start unrelated streams (numpy's SeedSequence hashes its
whole entropy list). The draws are standard (uniform in [0, 1), normal(0, 1), integers in
[minval, maxval), a permutation of n); graphc.random scales them with ordinary ops, so
gradients reach minval/maxval, mu and sigma, while no op here has a gradient rule: a key is
integer and a draw is a constant for autodiff. The draws are `stochastic`, as dropout_mask:
fold never computes them at compile time (a draw is as large as its shape). An op takes keys
of shape (..., 2) and draws once per key along the leading axes: that is its batching rule,
so vmap over B keys is one op (graphc.random itself takes one key).
"""
from __future__ import annotations

import numpy as np

from ..types import INT_DTYPES, TensorType, broadcast_shapes, finfo, is_float
from .registry import apply, check, defop

WORD = 0xFFFFFFFF
# what each op mixes into the seed besides the key: a split key never seeds the stream that
# its parent's uniform or normal draws read. The size drawn is mixed in too (split's num, a
# draw's shape, permutation's n), as JAX's draws of two sizes are unrelated: numpy's streams
# are prefixes of each other, so split(key, 3) began with split(key, 2)'s two keys and
# normal(key, (2, 3)) was normal(key, (6,)) reshaped. (Trailing zeros of the entropy list
# are padding to SeedSequence, but a shape with a 0 draws nothing.)
_SPLIT, _FOLD_IN, _DRAW, _PERMUTE = 1, 2, 3, 4


def key_words(seed: int) -> np.ndarray:
    """The key of an integer seed: its high and low 32-bit words (jax.random.PRNGKey)."""
    seed = int(seed)
    return np.array([(seed >> 32) & WORD, seed & WORD], dtype=np.int64)


def _generator(key, *tag):
    return np.random.default_rng([int(k) & WORD for k in key] + [int(t) for t in tag])


def _per_key(keys, shape, dtype, draw):
    """draw(generator of one key) -> array of `shape`, for each key of `keys` (..., 2),
    stacked along the keys' leading axes: vmap over keys batches the key operand (rule below)
    rather than running one op per example."""
    keys = np.asarray(keys)
    out = np.empty(keys.shape[:-1] + tuple(shape), dtype)
    for index in np.ndindex(keys.shape[:-1]):
        out[index] = draw(keys[index])
    return out


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
    return _per_key(key, (num, 2), np.int64, lambda k: _generator(k, _SPLIT, num).integers(
        0, WORD + 1, size=(num, 2), dtype=np.int64))


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
    out = np.empty(data.shape + (2,), np.int64)
    for index in np.ndindex(data.shape):
        # as JAX, the data counts as a 32-bit word: -1 and 2**32 - 1 fold in alike
        rng = _generator(np.asarray(key)[index], _FOLD_IN, int(data[index]) & WORD)
        out[index] = rng.integers(0, WORD + 1, size=2, dtype=np.int64)
    return out


def _float_infer(types, shape, dtype):
    keys = _check_key(types)
    check(is_float(np.dtype(dtype)), f"the dtype must be floating point, got {dtype}")
    return TensorType(keys + tuple(shape), dtype)


def _draw(key, shape, dtype, method):
    """Drawn in float64 for float64, else in float32 and rounded once to the dtype."""
    wide = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    return _per_key(key, shape, dtype, lambda k: getattr(_generator(k, _DRAW, *shape), method)(
        tuple(shape), dtype=wide))


@defop("random_uniform", _float_infer, arity=1, stochastic=True)
def _random_uniform(key, shape, dtype):
    out = _draw(key, shape, dtype, "random")
    # a float32 draw just below 1 may round up to 1 in a half dtype: keep [0, 1) half-open
    below_one = np.asarray(1.0 - float(finfo(dtype).epsneg), dtype)
    return np.minimum(out, below_one)


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

    def draw(index):
        lo, hi = (b[index] if b[index].size > 1 else b[index].reshape(()) for b in (low, last))
        return _generator(key[index], _DRAW, *shape).integers(
            lo, hi, size=tuple(shape), dtype=np.int64, endpoint=True)
    out = np.empty(lead + tuple(shape), dtype)
    for index in np.ndindex(lead):
        out[index] = draw(index)
    return out


def _permutation_infer(types, n):
    return TensorType(_check_key(types) + (n,), np.dtype("int64"))


@defop("random_permutation", _permutation_infer, arity=1, stochastic=True)
def _random_permutation(key, n):
    return _per_key(key, (n,), np.int64, lambda k: _generator(k, _PERMUTE, n).permutation(n))


def _register_batching():
    from .batching import batch_all, defbatch

    def one_draw_per_key(name):
        def rule(args, batched, size, **attrs):
            # the op's only operand is batched (a rule runs only then): a seed or key per
            # example, and the op draws once for each along the leading axes
            return apply(name, *args, **attrs)
        return rule

    for name in ("random_key", "random_split", "random_uniform", "random_normal",
                 "random_permutation"):
        defbatch(name)(one_draw_per_key(name))

    # a key and data (bounds) per example: the unbatched ones repeated along the batch
    @defbatch("random_fold_in")
    def _fold_in_rule(args, batched, size):
        return apply("random_fold_in", *batch_all(args, batched, size))

    @defbatch("random_randint")
    def _randint_rule(args, batched, size, **attrs):
        return apply("random_randint", *batch_all(args, batched, size), **attrs)


_register_batching()
