"""Random numbers as pure functions of a key, in the style of jax.random:

    key = gc.random.key(0)
    k1, k2 = gc.random.split(key)
    x = gc.random.normal(k1, (3, 4)) * sigma + mu

A key is an int64 array of shape (2,) (two 32-bit words, as JAX's raw keys). The same key
gives the same numbers eagerly, compiled, and inside scan, vmap and grad; the underlying
uniform and normal draws are constants for autodiff and keys take no gradient, while the
distributions' parameters get gradients through their transforms (gamma's family by
inversion of its CDF: JAX's implicit reparameterisation). The ops are defined in
ir/ops/random.py.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from ir.errors import user_location
from ir.ops import api as F
from ir.ops.arrays import argsort, moveaxis, take_along_axis, top_k
from ir.ops.random import key_words
from ir.ops.registry import apply
from ir.types import (INT_DTYPES, Dim, UnsupportedDtype, as_dtype, broadcast_shapes, finfo,
                      is_float, is_half, is_int, is_real)
from runtime.eager import Tensor

__all__ = ["key", "PRNGKey", "split", "fold_in", "uniform", "normal", "bernoulli", "randint",
           "categorical", "gumbel", "permutation", "choice", "truncated_normal", "exponential",
           "laplace", "logistic", "cauchy", "rademacher", "gamma", "loggamma", "beta",
           "dirichlet", "chisquare", "t", "poisson", "geometric", "multivariate_normal"]


def _concrete_int(x):
    """x as a Python int when it is a concrete integer (a 0-d integer array too), else None."""
    if is_int(x):
        return int(x)
    # any numpy integer kind, as for numpy's integer scalars (np.uint64 seeds)
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iu":
        return int(x)
    return None


def _key(key, fn):
    if isinstance(key, (list, tuple)):
        try:
            key = np.asarray(key)
        except ValueError:  # ragged: numpy's own message names no gc.random call
            F._fail(f"gc.random.{fn}: a key is an integer array of shape (2,) "
                    f"(gc.random.key(seed)), got the ragged {type(key).__name__} {key!r}")
    if isinstance(key, np.ndarray) and key.dtype == np.uint32:
        key = key.astype(np.int64)  # a raw key from JAX: the IR has no unsigned dtype
    if not hasattr(key, "shape") or F._dtype(key) not in INT_DTYPES \
            or tuple(F._shape(key)) != (2,):
        got = (f"{F._dtype(key)} array of shape {tuple(F._shape(key))}"
               if hasattr(key, "shape") else type(key).__name__)
        F._fail(f"gc.random.{fn}: a key is an integer array of shape (2,) "
                f"(gc.random.key(seed)), got a {got}")
    return key


def _shape(shape, fn):
    if is_int(shape) or isinstance(shape, Dim):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            is_int(d) and d >= 0 or isinstance(d, Dim) for d in shape):
        F._fail(f"gc.random.{fn}: shape must be a tuple of non-negative integers, got "
                f"{shape!r}")
    shape = tuple(int(d) if is_int(d) else d for d in shape)
    F._check_sizes(f"gc.random.{fn}", shape)  # (n - 5 at n = 3 named the op, random_normal)
    return shape


def _fits(value, shape, fn, name):
    """As JAX, a draw has exactly `shape`: an array parameter must broadcast to it, else the
    parameter would widen the draw and repeat its numbers (bernoulli(key, p of 6) with
    shape () would give 6 copies of one draw)."""
    if not hasattr(value, "shape"):
        if is_real(value):
            return value
        F._fail(f"gc.random.{fn}: {name} must be a number or a floating-point array, got "
                f"{value!r}")
    if broadcast_shapes(tuple(F._shape(value)), shape) != shape:
        F._fail(f"gc.random.{fn}: {name} of shape {tuple(F._shape(value))} does not "
                f"broadcast to the shape {shape} drawn")
    return value


def _dtype(dtype, fn):
    """gc.random.{fn}'s dtype= as a numpy dtype; one the IR lacks is one line naming the
    call and dtype= (as_dtype's own named neither, and told to cast an array)."""
    try:
        return as_dtype(dtype, cast_hint=False)
    except UnsupportedDtype as exc:
        raise UnsupportedDtype(f"gc.random.{fn}: dtype={dtype!r}: {exc.message}",
                               (user_location(),)) from None


def _float_dtype(dtype, fn):
    dtype = _dtype(dtype, fn)
    if not is_float(dtype):
        F._fail(f"gc.random.{fn}: dtype must be floating point, got {dtype}")
    return dtype


def key(seed):
    """The key of an integer seed: [high 32 bits, low 32 bits] (jax.random.key/PRNGKey).
    A concrete seed gives a numpy array; a traced integer scalar a node."""
    value = _concrete_int(seed)
    if value is not None:
        # the words are the seed's 64 bits: a wider seed would wrap onto another's key
        # (2**64 onto 0), so it is refused, as JAX refuses it
        if not -2**63 <= value < 2**64:
            F._fail(f"gc.random.key: the seed {value} does not fit in 64 bits")
        return key_words(value)
    if not hasattr(seed, "shape") or F._dtype(seed) not in INT_DTYPES or F._ndim(seed):
        F._fail(f"gc.random.key: the seed must be an integer, got {seed!r}")
    return apply("random_key", seed)


PRNGKey = key


def split(key, num=2):
    """`num` new keys, shape (num, 2), each starting its own stream: `k1, k2 = split(key)`.
    A shape (a tuple or list) gives keys of that shape, shape + (2,), as JAX's split(key,
    (2, 3)): () one key, a 0 size none."""
    key = _key(key, "split")
    one = not isinstance(num, (tuple, list))
    shape = tuple(_size(n) for n in ((num,) if one else num))  # (all: a traced one raises)
    if None in shape or min(shape, default=0) < 0:
        F._fail("gc.random.split: num must be a non-negative integer or a tuple of them, got "
                f"{num!r}")
    keys = apply("random_split", key, num=math.prod(shape))
    return keys if one else F.reshape(keys, (*shape, 2))


def _size(n):
    """n as a Python int, or None where it is no integer. A traced number raises
    TracedNumberError (an index of it), which grad retries with n as a Python value and
    compile's message hints to make static."""
    if isinstance(n, (bool, np.bool_)):
        return None
    try:
        return operator.index(n)
    except TypeError:
        return None


def fold_in(key, data):
    """A new key from `key` and an integer (a step, an example's index), as JAX's fold_in;
    `data` may be traced (a scan's counter)."""
    key = _key(key, "fold_in")
    value = _concrete_int(data)
    if value is not None:
        # the data is one 32-bit word, as JAX's uint32: 2**32 + i would fold in as i does
        if not -2**31 <= value < 2**32:
            F._fail(f"gc.random.fold_in: data {value} does not fit in 32 bits")
        data = np.asarray(value, np.int64)
    elif not hasattr(data, "shape") or F._dtype(data) not in INT_DTYPES or F._ndim(data):
        F._fail(f"gc.random.fold_in: data must be an integer scalar, got {data!r}")
    return apply("random_fold_in", key, data)


def uniform(key, shape=(), dtype="float32", minval=0.0, maxval=1.0):
    """Uniform in [minval, maxval) (minval and maxval may be tensors, and get gradients)."""
    key = _key(key, "uniform")
    dtype = _float_dtype(dtype, "uniform")
    shape = _shape(shape, "uniform")
    # as JAX, the bounds are taken in the draw's dtype
    minval, maxval = (F.cast(v, dtype) if hasattr(v, "shape") else v
                      for v in (_fits(minval, shape, "uniform", "minval"),
                                _fits(maxval, shape, "uniform", "maxval")))
    u = apply("random_uniform", key, shape=shape, dtype=dtype)
    if isinstance(minval, (int, float)) and isinstance(maxval, (int, float)):
        if (minval, maxval) == (0, 1):
            return u
        value = u * float(maxval - minval) + float(minval)
    else:
        value = u * (maxval - minval) + minval
    # u < 1, but u (maxval - minval) + minval rounded to the dtype may be maxval (a draw in
    # [1, 2) in bfloat16 was 2.0 one time in 256): [minval, maxval) is kept by clamping to
    # the value below maxval; as JAX, minval where maxval <= minval
    return F.maximum(F.minimum(value, _below(maxval, dtype)), minval)


def _below(bound, dtype):
    """The largest value of `dtype` below `bound` (a number, or an array of that dtype, also
    traced, so computed with ops, alike eagerly and compiled): bound - 1.25 |bound| epsneg,
    in float64 then rounded to the dtype, lies between 0.625 and 1.25 of the step below
    bound (1.25 of it at a power of two), so it rounds to the value there. (A subnormal or
    zero bound stays itself: the clamp then does nothing.)"""
    epsneg = float(finfo(dtype).epsneg)
    # (a numpy scalar too: one of the draw's dtype, which uniform's cast leaves as it is, is
    # a weak float32 scalar to the ops below: np.float64(1e-100) gave 0, 1e100 NaN)
    if not hasattr(bound, "shape") or isinstance(bound, np.generic):
        return float(np.nextafter(np.asarray(bound, dtype), np.asarray(-np.inf, dtype)))
    wide = F.cast(bound, "float64")
    magnitude = F.abs(wide)
    # (|bound| epsneg and its quarter are exact; their sum, rounded, stays well in between)
    step = magnitude * epsneg + magnitude * (epsneg / 4)
    return F.cast(wide - step, dtype)


def normal(key, shape=(), dtype="float32"):
    """Standard normal samples; scale them (`normal(k, s) * sigma + mu`) to differentiate
    with respect to sigma and mu (the reparameterisation trick)."""
    key = _key(key, "normal")
    return apply("random_normal", key, shape=_shape(shape, "normal"),
                 dtype=_float_dtype(dtype, "normal"))


def bernoulli(key, p=0.5, shape=None):
    """Booleans, True with probability p (a number or a float tensor; shape defaults to p's)."""
    key = _key(key, "bernoulli")
    if hasattr(p, "shape") and not is_float(F._dtype(p)):
        F._fail(f"gc.random.bernoulli: p must be floating point, got {F._dtype(p)}")
    if shape is None:
        shape = F._shape(p) if hasattr(p, "shape") else ()
    shape = _shape(shape, "bernoulli")
    _fits(p, shape, "bernoulli", "p")
    dtype = F._dtype(p) if hasattr(p, "shape") and is_float(F._dtype(p)) else "float32"
    return F.less(uniform(key, shape, dtype), p)


def randint(key, shape, minval, maxval, dtype="int64"):
    """Integers in [minval, maxval), uniformly. The bounds are integers or integer arrays
    (traced too) that broadcast to `shape`; array bounds are taken as JAX takes them: clipped
    to the dtype's range, and where maxval <= minval the draw is minval."""
    key = _key(key, "randint")
    shape = _shape(shape, "randint")
    dtype = _dtype(dtype, "randint")
    if dtype not in INT_DTYPES:
        F._fail(f"gc.random.randint: dtype must be an integer type, got {dtype}")
    lo, hi = _concrete_int(minval), _concrete_int(maxval)
    if lo is not None and hi is not None:  # two numbers: an empty range is a mistake here
        if hi <= lo:
            F._fail(f"gc.random.randint: maxval {hi} must be greater than minval {lo}")
        info = np.iinfo(dtype)
        if lo < info.min or hi - 1 > info.max:
            F._fail(f"gc.random.randint: [{lo}, {hi}) does not fit in {dtype}")
    bounds = [_int_bound(v, shape, name) for v, name in ((minval, "minval"), (maxval, "maxval"))]
    return apply("random_randint", key, *bounds, shape=shape, dtype=dtype)


def _int_bound(value, shape, name):
    """randint's bound as an integer array of the draw's rank (vmap then adds its batch axis
    in front of the draw's axes)."""
    number = _concrete_int(value)
    if number is not None:
        if not -2**63 <= number < 2**63:
            F._fail(f"gc.random.randint: {name} {number} does not fit in 64 bits")
        return np.full((1,) * len(shape), number, np.int64)
    if not hasattr(value, "shape") or F._dtype(value) not in INT_DTYPES:
        got = F._dtype(value) if hasattr(value, "shape") else repr(value)
        F._fail(f"gc.random.randint: minval and maxval must be integers or integer arrays, "
                f"got {name} {got}")
    value_shape = tuple(F._shape(value))
    if broadcast_shapes(value_shape, shape) != shape:
        F._fail(f"gc.random.randint: {name} of shape {value_shape} does not broadcast to the "
                f"shape {shape} drawn")
    if len(value_shape) < len(shape):
        value = F.reshape(value, (1,) * (len(shape) - len(value_shape)) + value_shape)
    return value


def gumbel(key, shape=(), dtype="float32"):
    """Standard Gumbel samples, -log(-log(u))."""
    key = _key(key, "gumbel")
    dtype = _float_dtype(dtype, "gumbel")
    # drawn in float32 for a half dtype, then rounded: from u on bfloat16's grid the largest
    # draw was 5.5 (Gumbel's tail beyond it, 0.4% of its mass, was lost) and categorical's
    # Gumbel-max drew a category of probability 1e-3 one time in 9000
    wide = "float32" if is_half(dtype) else dtype
    # u in [tiny, 1): the inner log stays finite, as in JAX
    u = uniform(key, shape, wide, minval=float(finfo(wide).tiny), maxval=1.0)
    noise = -F.log(-F.log(u))
    return noise if wide == dtype else F.cast(noise, dtype)


def categorical(key, logits, axis=-1, shape=None):
    """Indices drawn with probabilities softmax(logits) along `axis` (the Gumbel-max trick),
    int64. As JAX: `shape` (default: logits' shape without `axis`, its batch shape) is the
    result's, and the batch shape must broadcast to it; leading axes beyond it draw more
    samples from the same distributions."""
    key = _key(key, "categorical")
    if not hasattr(logits, "shape"):
        logits = np.asarray(logits, np.float32)
    if not is_float(F._dtype(logits)):
        F._fail(f"gc.random.categorical: logits must be floating point, got "
                f"{F._dtype(logits)}")
    full = tuple(F._shape(logits))
    ax = F._axis(axis, len(full), "gc.random.categorical: axis")
    batch = full[:ax] + full[ax + 1:]
    if shape is None:
        shape = batch
    shape = _shape(shape, "categorical")
    if broadcast_shapes(batch, shape) != shape:
        F._fail(f"gc.random.categorical: the batch shape {batch} of logits (axis {ax} "
                f"removed) does not broadcast to shape {shape}")
    prefix = shape[:len(shape) - len(batch)]
    tail = shape[len(prefix):]
    # one Gumbel draw per sample and category: the logits broadcast along the prefix; half
    # logits are compared in float32, as a half sum's rounding would bias the choice
    logits = _at_least_float32(logits)
    noise = gumbel(key, prefix + tail[:ax] + (full[ax],) + tail[ax:], F._dtype(logits))
    return F.argmax(logits + noise, axis=len(prefix) + ax)


def _at_least_float32(x):
    """A float16 or bfloat16 x cast to float32; another float x as it is."""
    return F.cast(x, "float32") if is_half(F._dtype(x)) else x


def permutation(key, x, axis=0, independent=False):
    """A random permutation of range(x) for an integer x, else x shuffled along `axis`; with
    independent=True (jax.random.permutation's), each slice along `axis` shuffled on its own
    (the order of float64 uniform draws along the axis)."""
    key = _key(key, "permutation")
    if not isinstance(independent, (bool, np.bool_)):
        F._fail(f"gc.random.permutation: independent must be True or False, got "
                f"{independent!r}")
    n = _concrete_int(x)
    if n is not None:
        if n < 0:
            F._fail(f"gc.random.permutation: n must be non-negative, got {n}")
        return apply("random_permutation", key, n=n)
    if isinstance(x, Dim):  # x.shape[0] of a symbolic axis: no size to permute yet
        F._fail(f"gc.random.permutation: n is the symbolic dimension {x}; a permutation "
                "needs a concrete size (declare the dimension concrete)")
    if not hasattr(x, "shape") or not F._ndim(x):
        F._fail(f"gc.random.permutation: x must be an integer or an array with at least one "
                f"axis, got {x!r}")
    ax = F._axis(axis, F._ndim(x), "gc.random.permutation: axis")
    size = F._shape(x)[ax]
    if not is_int(size):
        F._fail(f"gc.random.permutation: axis {ax} has the symbolic size {size}; a "
                "permutation needs a concrete size (declare the dimension concrete)")
    if independent:
        order = argsort(uniform(key, tuple(F._shape(x)), "float64"), axis=ax)
        return take_along_axis(x, order, ax)
    order = apply("random_permutation", key, n=int(size))
    moved = F.swapaxes(x, 0, ax) if ax else x
    out = F.take(moved, order)
    return F.swapaxes(out, 0, ax) if ax else out


def choice(key, a, shape=(), replace=True, p=None, axis=0):
    """jax.random.choice: `shape` elements of `a` along `axis` (an int n: of range(n)), each
    with probability p (a float array of a's size along axis; None: uniform; need not sum
    to 1), with or without replacement. The result has a's shape with `axis` replaced by
    `shape`. Built on randint and categorical (with replacement) and on permutation and the
    Gumbel top-k (without), so the numbers are graphc's, not JAX's."""
    key = _key(key, "choice")
    shape = _shape(shape, "choice")
    n = _concrete_int(a)
    a_is_int = n is not None
    if a_is_int:
        if n < 0:
            F._fail(f"gc.random.choice: a must be a non-negative integer or an array, got {n}")
    else:
        if isinstance(a, Dim) or not hasattr(a, "shape") or not F._ndim(a):
            F._fail(f"gc.random.choice: a must be an integer or an array with at least one "
                    f"axis, got {a!r}"[:200])
        ax = F._axis(axis, F._ndim(a), "gc.random.choice: axis")
        n = F._shape(a)[ax]
        if not is_int(n):
            F._fail(f"gc.random.choice: axis {ax} of a has the symbolic size {n}; a choice "
                    "needs a concrete size (declare the dimension concrete)")
    if not all(is_int(d) for d in shape):
        F._fail(f"gc.random.choice: shape must be concrete, got {shape}")
    draws = math.prod(shape)
    if not replace and draws > n:
        F._fail(f"gc.random.choice: cannot take {draws} samples from a population of {n} "
                "without replacement (replace=False)")
    if n == 0 and draws:
        F._fail("gc.random.choice: a has no elements to choose from")
    if p is not None:
        # (log p of a half p in float32: its rounding in bfloat16 moved p by up to 3%)
        p = _at_least_float32(_probabilities(p, n, draws if not replace else 0))
    if draws == 0:
        picked = F.zeros(shape, "int64")
    elif replace:
        picked = randint(key, shape, 0, n) if p is None else \
            categorical(key, _log(p), shape=shape)
    elif p is None:
        picked = F.reshape(permutation(key, n)[:draws], shape)
    else:  # the Gumbel top-k: the `draws` largest of log p + Gumbel noise, a draw of
        # `draws` without replacement with these probabilities
        scores = _log(p) + gumbel(key, (n,), F._dtype(p))
        picked = F.reshape(top_k(scores, draws)[1], shape)
    if a_is_int:
        return picked
    # a's other axes stay in place around the drawn ones, as JAX's take along axis
    taken = F.take(moveaxis(a, ax, 0) if ax else a, picked)
    if not ax or not shape:  # a scalar index drops the axis, leaving the others in order
        return taken
    return moveaxis(taken, tuple(range(len(shape))), tuple(range(ax, ax + len(shape))))


def _log(p):
    """log p, -inf where p is 0 without numpy's divide-by-zero warning."""
    positive = F.greater(p, 0.0)
    return F.where(positive, F.log(F.where(positive, p, 1.0)), -np.inf)


def _probabilities(p, n, without_replacement):
    """choice's p, checked: floating point, of shape (n,), and where concrete, finite,
    non-negative, not all 0, with at least `without_replacement` of them > 0."""
    if not hasattr(p, "shape"):
        p = np.asarray(p, np.float32)
    if not is_float(F._dtype(p)):
        F._fail(f"gc.random.choice: p must be floating point, got {F._dtype(p)}")
    if tuple(F._shape(p)) != (n,):
        F._fail(f"gc.random.choice: p must have shape ({n},), one probability per element "
                f"to choose from, got shape {tuple(F._shape(p))}")
    value = p.data if isinstance(p, Tensor) else p
    if isinstance(value, np.ndarray):  # (a traced p is taken as it is, as JAX takes it)
        if not np.isfinite(value).all() or (value < 0).any():
            F._fail("gc.random.choice: p must be finite and non-negative, got "
                    f"{np.array2string(value, threshold=8)}")
        if not (value > 0).any():
            F._fail("gc.random.choice: p is all zeros")
        if without_replacement > np.count_nonzero(value):
            F._fail(f"gc.random.choice: {without_replacement} samples without replacement "
                    f"but only {np.count_nonzero(value)} elements with p > 0")
    return p


# ---- more of jax.random's distributions -----------------------------------------------------
# As JAX's: shape=None is the parameters' broadcast shape, else they must broadcast to it;
# the draws are built from uniform and normal draws with ops, so eager, compiled and vmapped
# draws agree bit for bit and gradients flow through the transforms. A float16 or bfloat16
# draw is computed in float32 and rounded once (as gumbel's): on the half grid of u the
# tails past -log(2**-8) of exponential and logistic were cut off.


def _parameter(value, fn, name):
    """A distribution's parameter: a number or a real array (a list as numpy reads it)."""
    if isinstance(value, (list, tuple)):
        try:
            value = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            value = None
    if isinstance(value, (bool, np.bool_)) or not (is_real(value) or (
            hasattr(value, "shape") and (is_float(F._dtype(value))
                                         or F._dtype(value) in INT_DTYPES))):
        F._fail(f"gc.random.{fn}: {name} must be a number or a real array, got "
                f"{value!r}"[:200])
    return value


def _parameters_shape(shape, fn, **params):
    """`shape` checked, or (None) the parameters' broadcast shape, as JAX's."""
    if shape is None:
        shapes = [tuple(F._shape(v)) for v in params.values() if hasattr(v, "shape")]
        shape = broadcast_shapes(*shapes) if shapes else ()
        if shape is None:
            F._fail(f"gc.random.{fn}: the shapes of " + " and ".join(
                f"{n} {tuple(F._shape(v))}" for n, v in params.items() if hasattr(v, "shape"))
                + " do not broadcast together")
    shape = _shape(shape, fn)
    for name, value in params.items():
        _fits(value, shape, fn, name)
    return shape


def _in(value, dtype):
    """A parameter in the dtype computed in: an array cast, a number as a Python float."""
    return F.cast(value, dtype) if hasattr(value, "shape") else float(value)


def _refuse_where(value, bad, fn, name, what):
    """One line where a concrete parameter (a number, numpy array or eager tensor) has a value
    that `bad` flags; a traced one is taken as it is, as JAX takes it."""
    data = value.data if isinstance(value, Tensor) else value
    if isinstance(data, (np.ndarray, np.generic, int, float)):
        data = np.asarray(data, np.float64)
        with np.errstate(invalid="ignore"):
            flagged = bad(data)
        if flagged.any():
            F._fail(f"gc.random.{fn}: {name} must be {what}, got {data[flagged].flat[0]:g}")


def _wide(dtype):
    return np.dtype("float32") if is_half(dtype) else dtype


def _unit_draw(key, shape, dtype, fn, transform, minval=None):
    """transform(u) for u uniform in [minval(wide), 1) (0 without minval), as JAX's, in
    float32 for a half dtype, then rounded."""
    key = _key(key, fn)
    dtype = _float_dtype(dtype, fn)
    wide = _wide(dtype)
    minval = 0.0 if minval is None else minval(wide)
    value = transform(uniform(key, _shape(shape, fn), wide, minval=minval, maxval=1.0))
    return value if wide == dtype else _rounded(value, dtype)


def _rounded(value, dtype):
    """A float32 value rounded to a half dtype, kept finite: a float32 Cauchy draw beyond
    float16's 65504 (one in 1e5) became inf."""
    top = float(finfo(dtype).max)
    return F.cast(F.minimum(F.maximum(value, -top), top), dtype)


def exponential(key, shape=(), dtype="float32"):
    """Standard exponential draws, -log(1 - u) (jax.random.exponential); scale them by 1 /
    rate."""
    return _unit_draw(key, shape, dtype, "exponential",
                      transform=lambda u: F.neg(F.log1p(F.neg(u))))


def laplace(key, shape=(), dtype="float32"):
    """Standard Laplace draws (density exp(-|x|) / 2), as jax.random.laplace: sign(u)
    log(1 - |u|) for u uniform in (-1, 1)."""
    return _unit_draw(key, shape, dtype, "laplace", minval=lambda wide: -1.0 + float(
        finfo(wide).epsneg), transform=lambda u: F.sign(u) * F.log1p(F.neg(F.abs(u))))


def logistic(key, shape=(), dtype="float32"):
    """Standard logistic draws, log(u / (1 - u)) for u in (0, 1) (jax.random.logistic)."""
    return _unit_draw(key, shape, dtype, "logistic", minval=lambda wide: float(
        finfo(wide).tiny), transform=lambda u: F.log(u) - F.log1p(F.neg(u)))


def cauchy(key, shape=(), dtype="float32"):
    """Standard Cauchy draws, tan(pi (u - 1/2)) for u in (0, 1) (jax.random.cauchy)."""
    return _unit_draw(key, shape, dtype, "cauchy", minval=lambda wide: float(finfo(wide).eps),
                      transform=lambda u: F.tan((u - 0.5) * math.pi))


def rademacher(key, shape=(), dtype="int64"):
    """-1 or 1 with probability 1/2 each (jax.random.rademacher), of an integer or float
    dtype."""
    key = _key(key, "rademacher")
    dtype = _dtype(dtype, "rademacher")
    if not (is_float(dtype) or dtype in INT_DTYPES):
        F._fail(f"gc.random.rademacher: dtype must be an integer or floating-point type, got "
                f"{dtype}")
    heads = bernoulli(key, 0.5, _shape(shape, "rademacher"))
    return F.cast(F.where(heads, 1, -1), dtype)


def _step(bound, dtype, up):
    """The value of `dtype` next to `bound` toward +inf (up) or -inf, as lax.nextafter (a
    number, or an array of that dtype, traced too): _below's value, and for an infinite,
    zero or subnormal bound, which _below leaves as it is, the largest finite value or the
    next subnormal."""
    if not hasattr(bound, "shape") or isinstance(bound, np.generic):
        return float(np.nextafter(np.asarray(bound, dtype),
                                  np.asarray(np.inf if up else -np.inf, dtype)))
    if up:
        return F.neg(_step(F.neg(bound), dtype, False))
    info = finfo(dtype)
    wide = F.cast(bound, "float64")
    finite = F.where(F.isinf(bound), F.cast(bound, "float64"), 0.0)  # (no inf - inf below)
    subnormal = F.less(F.abs(wide), float(info.smallest_normal))
    below = F.where(subnormal, F.cast(wide - float(info.smallest_subnormal), dtype),
                    _below(F.where(F.isinf(bound), 0.0, bound), dtype))
    return F.where(F.greater(finite, 0.0), float(info.max), F.where(
        F.less(finite, 0.0), bound, below))


def truncated_normal(key, lower, upper, shape=None, dtype="float32"):
    """Standard normal draws truncated to (lower, upper), as jax.random.truncated_normal:
    sqrt(2) erfinv(u) for u uniform between erf(lower / sqrt 2) and erf(upper / sqrt 2),
    clipped to the open interval; gradients reach lower and upper through that transform.
    As JAX's, lower >= upper gives the value below upper, and far in a tail, where erf
    rounds to 1 (lower beyond about 5.5 in float32, 8.4 in float64), every draw is the value
    below upper (the largest float for upper = inf), or above lower for -upper."""
    key = _key(key, "truncated_normal")
    dtype = _float_dtype(dtype, "truncated_normal")
    lower = _parameter(lower, "truncated_normal", "lower")
    upper = _parameter(upper, "truncated_normal", "upper")
    shape = _parameters_shape(shape, "truncated_normal", lower=lower, upper=upper)
    _refuse_where(lower, np.isnan, "truncated_normal", "lower", "a number, not NaN")
    _refuse_where(upper, np.isnan, "truncated_normal", "upper", "a number, not NaN")
    wide = _wide(dtype)
    # the bounds in the draw's dtype, as JAX's, then computed in `wide`
    lo, hi = (_in(_in(v, dtype), wide) for v in (lower, upper))
    a, b = (F.erf(v / math.sqrt(2)) if hasattr(v, "shape") else math.erf(v / math.sqrt(2))
            for v in (lo, hi))
    u = uniform(key, shape, wide, minval=a, maxval=b)
    value = F.erfinv(u) * math.sqrt(2)
    if wide != dtype:
        value = F.cast(value, dtype)
    # clipped into (lower, upper), lower's neighbour first: upper's where lower >= upper
    bounds = [F.stop_gradient(_in(v, dtype)) if hasattr(v, "shape") else _in(v, dtype)
              for v in (lower, upper)]
    return F.minimum(F.maximum(value, _step(bounds[0], dtype, True)),
                     _step(bounds[1], dtype, False))


def _log_gamma(key, a, shape):
    """log of Gamma(a) draws of `shape`, float64 (ir/ops/random.py's gamma_log_quantile:
    by inversion of a float64 uniform draw, so the gradient with respect to a is the
    draw's derivative)."""
    u = uniform(key, shape, "float64")
    a = F.cast(a, "float64") if hasattr(a, "shape") else np.asarray(a, np.float64)
    return apply("gamma_log_quantile", a, u)


def _gamma_parameter(a, fn, name="a"):
    a = _parameter(a, fn, name)
    _refuse_where(a, lambda v: ~(v >= 0), fn, name, "non-negative")
    return a


def loggamma(key, a, shape=None, dtype="float32"):
    """log of Gamma(a, 1) draws (jax.random.loggamma), accurate where the draw itself
    underflows (a small a)."""
    key = _key(key, "loggamma")
    dtype = _float_dtype(dtype, "loggamma")
    a = _gamma_parameter(a, "loggamma")
    return F.cast(_log_gamma(key, a, _parameters_shape(shape, "loggamma", a=a)), dtype)


def gamma(key, a, shape=None, dtype="float32"):
    """Gamma(a, 1) draws (jax.random.gamma; scale them by 1 / rate), differentiable with
    respect to a: the draw is P(a, .)^-1 of a uniform draw (P: the Gamma CDF), whose
    derivative is JAX's implicit reparameterisation gradient, -(dP/da) / p(x). a = 0 draws
    0; a concrete a < 0 is refused (a traced one draws NaN)."""
    key = _key(key, "gamma")
    dtype = _float_dtype(dtype, "gamma")
    a = _gamma_parameter(a, "gamma")
    return F.cast(F.exp(_log_gamma(key, a, _parameters_shape(shape, "gamma", a=a))), dtype)


def chisquare(key, df, shape=None, dtype="float32"):
    """Chi-squared draws with df degrees of freedom, 2 Gamma(df / 2) (jax.random.chisquare)."""
    key = _key(key, "chisquare")
    dtype = _float_dtype(dtype, "chisquare")
    df = _parameter(df, "chisquare", "df")
    _refuse_where(df, lambda v: ~(v > 0), "chisquare", "df", "positive")
    shape = _parameters_shape(shape, "chisquare", df=df)
    return F.cast(F.exp(_log_gamma(key, _in(df, "float64") * 0.5, shape) + math.log(2)), dtype)


def t(key, df, shape=None, dtype="float32"):
    """Student's t draws with df degrees of freedom, z sqrt(df / 2 / Gamma(df / 2)) as
    jax.random.t (z normal, drawn from a key split off)."""
    key = _key(key, "t")
    dtype = _float_dtype(dtype, "t")
    df = _parameter(df, "t", "df")
    _refuse_where(df, lambda v: ~(v > 0), "t", "df", "positive")
    shape = _parameters_shape(shape, "t", df=df)
    key_n, key_g = split(key)
    half = _in(df, "float64") * 0.5
    log_half = F.log(half) if hasattr(half, "shape") else math.log(half)
    z = normal(key_n, shape, "float64")
    return F.cast(z * F.exp((log_half - _log_gamma(key_g, half, shape)) * 0.5), dtype)


def beta(key, a, b, shape=None, dtype="float32"):
    """Beta(a, b) draws, G_a / (G_a + G_b) of two Gamma draws from split keys, in log space as
    jax.random.beta (so small a and b keep their draws); differentiable in a and b."""
    key = _key(key, "beta")
    dtype = _float_dtype(dtype, "beta")
    a, b = _gamma_parameter(a, "beta"), _gamma_parameter(b, "beta", "b")
    shape = _parameters_shape(shape, "beta", a=a, b=b)
    key_a, key_b = split(key)
    log_a, log_b = _log_gamma(key_a, a, shape), _log_gamma(key_b, b, shape)
    top = F.maximum(log_a, log_b)
    ga, gb = F.exp(log_a - top), F.exp(log_b - top)
    return F.cast(ga / (ga + gb), dtype)


def dirichlet(key, alpha, shape=None, dtype="float32"):
    """Dirichlet(alpha) draws along alpha's last axis (jax.random.dirichlet): softmax of
    log Gamma(alpha) draws. `shape` is the batch shape, to which alpha's leading axes
    broadcast; the result is shape + (K,)."""
    key = _key(key, "dirichlet")
    dtype = _float_dtype(dtype, "dirichlet")
    alpha = _gamma_parameter(alpha, "dirichlet", "alpha")
    if not hasattr(alpha, "shape") or not F._ndim(alpha):
        F._fail(f"gc.random.dirichlet: alpha must have at least one axis (the K categories), "
                f"got {alpha!r}")
    batch = tuple(F._shape(alpha))[:-1]
    shape = batch if shape is None else _shape(shape, "dirichlet")
    if broadcast_shapes(batch, shape) != shape:
        F._fail(f"gc.random.dirichlet: alpha's batch shape {batch} (its last axis removed) "
                f"does not broadcast to shape {shape}")
    log_g = _log_gamma(key, alpha, shape + tuple(F._shape(alpha))[-1:])
    return F.cast(F.softmax(log_g, axis=-1), dtype)


def poisson(key, lam, shape=None, dtype="int64"):
    """Poisson(lam) counts (jax.random.poisson); lam = 0 draws 0. A concrete lam that is
    negative, NaN or above 1e18 is refused; a traced negative or NaN one draws -1, as JAX's."""
    from ir.ops.random import POISSON_LAM_MAX
    key = _key(key, "poisson")
    dtype = _dtype(dtype, "poisson")
    if dtype not in INT_DTYPES:
        F._fail(f"gc.random.poisson: dtype must be an integer type, got {dtype}")
    lam = _parameter(lam, "poisson", "lam")
    _refuse_where(lam, lambda v: ~(v >= 0), "poisson", "lam", "non-negative")
    _refuse_where(lam, lambda v: v > POISSON_LAM_MAX, "poisson", "lam",
                  f"at most {POISSON_LAM_MAX:g}")
    shape = _parameters_shape(shape, "poisson", lam=lam)
    # lam of the draw's rank (vmap adds its batch axis in front), as randint's bounds
    lam = F.cast(lam, "float64") if hasattr(lam, "shape") else np.asarray(lam, np.float64)
    lam = F.reshape(lam, (1,) * (len(shape) - F._ndim(lam)) + tuple(F._shape(lam)))
    return apply("random_poisson", key, lam, shape=shape, dtype=dtype)


def geometric(key, p, shape=None, dtype="int64"):
    """The number of Bernoulli(p) trials up to the first success, 1, 2, ... (jax.random.
    geometric): floor(log u / log(1 - p)) + 1. A concrete p outside (0, 1] is refused."""
    key = _key(key, "geometric")
    dtype = _dtype(dtype, "geometric")
    if dtype not in INT_DTYPES:
        F._fail(f"gc.random.geometric: dtype must be an integer type, got {dtype}")
    p = _parameter(p, "geometric", "p")
    _refuse_where(p, lambda v: ~((v > 0) & (v <= 1)), "geometric", "p", "in (0, 1]")
    shape = _parameters_shape(shape, "geometric", p=p)
    u = uniform(key, shape, "float64", minval=float(finfo("float64").tiny))
    p = _in(p, "float64")
    # (p = 1: log(1 - p) = -inf, and every draw 1)
    log_q = F.log1p(F.neg(p)) if hasattr(p, "shape") else -math.inf if p == 1 else math.log1p(-p)
    trials = F.floor(F.log(u) / log_q) + 1.0
    # a count past the dtype's range (p = 1e-9 in int32, 1e-20 in int64) is its largest
    # value, as JAX's float-to-int conversion saturates; numpy's cast wrapped it negative
    top = np.iinfo(dtype).max
    below = float(np.nextafter(np.float64(top), 0.0))  # (int64's max rounds up to 2**63)
    return F.where(F.greater_equal(trials, float(top)), F.cast(top, dtype),
                   F.cast(F.minimum(trials, below), dtype))


def multivariate_normal(key, mean, cov, shape=None, dtype="float32", method="cholesky"):
    """Draws of N(mean, cov) (jax.random.multivariate_normal): mean (..., n), cov (..., n, n);
    `shape` is the batch shape (default: the broadcast of mean's and cov's), the result
    shape + (n,). mean + A z with A A^T = cov by `method`: "cholesky" (cov positive
    definite), "eigh" or "svd" (also semidefinite). A concrete cov that the method cannot
    factor is refused; a traced one draws NaN, as JAX's. Gradients reach mean, not cov."""
    key = _key(key, "multivariate_normal")
    dtype = _float_dtype(dtype, "multivariate_normal")
    if method not in ("cholesky", "eigh", "svd"):
        F._fail(f"gc.random.multivariate_normal: method must be 'cholesky', 'eigh' or 'svd', "
                f"got {method!r}")
    mean = _parameter(mean, "multivariate_normal", "mean")
    cov = _parameter(cov, "multivariate_normal", "cov")
    ms = tuple(F._shape(mean)) if hasattr(mean, "shape") else ()
    cs = tuple(F._shape(cov)) if hasattr(cov, "shape") else ()
    if len(ms) < 1 or len(cs) < 2 or cs[-1] != cs[-2] or cs[-1] != ms[-1]:
        F._fail(f"gc.random.multivariate_normal: mean must be (..., n) and cov (..., n, n), "
                f"got mean {ms} and cov {cs}")
    batch = broadcast_shapes(ms[:-1], cs[:-2])
    if batch is None:
        F._fail(f"gc.random.multivariate_normal: the batch shapes of mean {ms[:-1]} and cov "
                f"{cs[:-2]} do not broadcast together")
    shape = batch if shape is None else _shape(shape, "multivariate_normal")
    if broadcast_shapes(batch, shape) != shape:
        F._fail(f"gc.random.multivariate_normal: the batch shape {batch} of mean and cov does "
                f"not broadcast to shape {shape}")
    wide = _wide(dtype)  # (a half draw: the float32 one rounded once, as the others)
    factor = apply("cov_factor", F.cast(cov, wide), kind=method)
    data = factor.data if isinstance(factor, Tensor) else factor
    if isinstance(data, np.ndarray) and np.isnan(data).any():
        given = cov.data if isinstance(cov, Tensor) else cov
        if not isinstance(given, np.ndarray) or np.isfinite(given).all():
            what = "positive definite" if method == "cholesky" else "positive semidefinite"
            F._fail(f"gc.random.multivariate_normal: cov is not {what} (method={method!r}"
                    + ("; 'eigh' or 'svd' take semidefinite ones)" if method == "cholesky"
                       else ")"))
    z = normal(key, shape + ms[-1:], wide)
    value = F.cast(mean, wide) + F.sum(factor * F.reshape(z, shape + (1,) + ms[-1:]), axis=-1)
    return value if wide == dtype else _rounded(value, dtype)
