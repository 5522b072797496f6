"""Random numbers as pure functions of a key (graphc.random, in the style of jax.random).

A key is an int64 array of shape (2,) holding two 32-bit words, as JAX's raw uint32 keys (the
IR has no unsigned dtype). Every op here seeds numpy's generator with the key's words and a
tag naming what it draws, so the same key gives the same numbers eagerly, compiled and inside
loop bodies, and split or folded keys start unrelated streams (numpy's SeedSequence hashes its
whole entropy list). The draws are standard (uniform in [0, 1), normal(0, 1), integers in
[minval, maxval), a permutation of n); graphc.random scales them with ordinary ops, so
gradients reach minval/maxval, mu and sigma, while no op here has a gradient rule: a key is
integer and a draw is a constant for autodiff. The draws are `stochastic`, as dropout_mask:
fold never computes them at compile time (a draw is as large as its shape).
"""
from __future__ import annotations

import numpy as np

from ..types import INT_DTYPES, TensorType, finfo, is_float
from .registry import check, defop

WORD = 0xFFFFFFFF
# what each op mixes into the seed besides the key: a split key never seeds the stream that
# its parent's uniform or normal draws read
_SPLIT, _FOLD_IN, _DRAW, _PERMUTE = 1, 2, 3, 4


def key_words(seed: int) -> np.ndarray:
    """The key of an integer seed: its high and low 32-bit words (jax.random.PRNGKey)."""
    seed = int(seed)
    return np.array([(seed >> 32) & WORD, seed & WORD], dtype=np.int64)


def _generator(key, *tag):
    return np.random.default_rng([int(k) & WORD for k in np.ravel(key)] + list(tag))


def _check_key(types):
    key = types[0]
    check(key.dtype in INT_DTYPES and tuple(key.shape) == (2,),
          f"a key is an integer array of shape (2,) (gc.random.key(seed)), got {key}")


def _key_infer(types):
    (seed,) = types
    check(seed.dtype in INT_DTYPES and seed.ndim == 0, "the seed must be an integer scalar")
    return TensorType((2,), np.dtype("int64"))


@defop("random_key", _key_infer, arity=1)
def _random_key(seed):
    return key_words(seed)


def _split_infer(types, num):
    _check_key(types)
    return TensorType((num, 2), np.dtype("int64"))


@defop("random_split", _split_infer, arity=1, stochastic=True)
def _random_split(key, num):
    return _generator(key, _SPLIT).integers(0, WORD + 1, size=(num, 2), dtype=np.int64)


def _fold_in_infer(types):
    _check_key(types)
    check(types[1].dtype in INT_DTYPES and types[1].ndim == 0,
          "the data folded in must be an integer scalar")
    return TensorType((2,), np.dtype("int64"))


@defop("random_fold_in", _fold_in_infer, arity=2, stochastic=True)
def _random_fold_in(key, data):
    # as JAX, the data counts as a 32-bit word: -1 and 2**32 - 1 fold in alike
    return _generator(key, _FOLD_IN, int(data) & WORD).integers(0, WORD + 1, size=2,
                                                                dtype=np.int64)


def _float_infer(types, shape, dtype):
    _check_key(types)
    check(is_float(np.dtype(dtype)), f"the dtype must be floating point, got {dtype}")
    return TensorType(shape, dtype)


def _draw(key, shape, dtype, method):
    """Drawn in float64 for float64, else in float32 and rounded once to the dtype."""
    wide = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    out = getattr(_generator(key, _DRAW), method)(shape, dtype=wide)
    return np.asarray(out).astype(dtype)


@defop("random_uniform", _float_infer, arity=1, stochastic=True)
def _random_uniform(key, shape, dtype):
    out = _draw(key, shape, dtype, "random")
    # a float32 draw just below 1 may round up to 1 in a half dtype: keep [0, 1) half-open
    below_one = np.asarray(1.0 - float(finfo(dtype).epsneg), dtype)
    return np.minimum(out, below_one)


@defop("random_normal", _float_infer, arity=1, stochastic=True)
def _random_normal(key, shape, dtype):
    return _draw(key, shape, dtype, "standard_normal")


def _randint_infer(types, shape, minval, maxval, dtype):
    _check_key(types)
    dtype = np.dtype(dtype)
    check(dtype in INT_DTYPES, f"the dtype must be an integer type, got {dtype}")
    check(minval < maxval, f"maxval {maxval} must be greater than minval {minval}")
    info = np.iinfo(dtype)
    check(info.min <= minval and maxval - 1 <= info.max,
          f"[{minval}, {maxval}) does not fit in {dtype}")
    return TensorType(shape, dtype)


@defop("random_randint", _randint_infer, arity=1, stochastic=True)
def _random_randint(key, shape, minval, maxval, dtype):
    out = _generator(key, _DRAW).integers(minval, maxval, size=shape, dtype=np.int64)
    return np.asarray(out).astype(dtype)


def _permutation_infer(types, n):
    _check_key(types)
    return TensorType((n,), np.dtype("int64"))


@defop("random_permutation", _permutation_infer, arity=1, stochastic=True)
def _random_permutation(key, n):
    return _generator(key, _PERMUTE).permutation(n).astype(np.int64)


def _register_batching():
    from .batching import loop_over_batch
    for name in ("random_key", "random_split", "random_fold_in", "random_uniform",
                 "random_normal", "random_randint", "random_permutation"):
        loop_over_batch(name, "a draw is one generator seeded by one key: a batch of keys "
                              "draws once per key")


_register_batching()
