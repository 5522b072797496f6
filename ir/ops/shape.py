"""Reductions, shape ops and constant creators.

Attributes arrive canonical from `api` (axes sorted and non-negative, shapes resolved), so
that equal computations have equal attributes for CSE and for the printer; IR read from
outside has their kinds checked first (registry.ATTRIBUTE_KINDS), the rules check ranges.
"""
from __future__ import annotations

import numpy as np

from ..types import (NEGATIVE_SIZE, Dim, InconclusiveDim, TensorType, held_problem,
                     holds_when_bound, is_float, range_length)
from . import api as F
from .registry import TypeRuleError, check, defop


# ---- reductions -----------------------------------------------------------------------------
def _reduce_infer(types, axes, keepdims):
    (t,) = types
    for a in axes:
        check(0 <= a < t.ndim, f"axis {a} out of range for a {t.ndim}-d operand")
    if keepdims:
        shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
    else:
        shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
    return TensorType(shape, t.dtype)


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _vjp_sum(ctx, g):
    (x,) = ctx.inputs
    g = F.reshape(g, _keep_shape(x.shape, ctx.attrs["axes"]))
    return [F.broadcast_to(g, x.shape)]


def _vjp_max(ctx, g):
    (x,) = ctx.inputs
    axes = ctx.attrs["axes"]
    keep = _keep_shape(x.shape, axes)
    peak = F.broadcast_to(F.reshape(ctx.out, keep), x.shape)
    hits = F.cast(x == peak, x.dtype)
    count = F.sum(hits, axes, keepdims=True)  # ties share the gradient
    # a maximum that is NaN equals no element (count 0): NaN to each element reduced into
    # it, as torch's amax ((g / 0) * 0), without the 0 / 0 numpy warned of at every run
    share = F.where(count > 0, F.reshape(g, keep) / F.maximum(count, 1), np.nan)
    return [F.broadcast_to(share, x.shape) * hits]


@defop("sum", _reduce_infer, vjp=_vjp_sum, arity=1,
       flops=lambda types, out, **_: types[0].size)
def _sum(x, axes, keepdims):
    return np.add.reduce(x, axis=axes, keepdims=keepdims, dtype=x.dtype)


def _max_infer(types, axes, keepdims):
    (t,) = types
    empty = [a for a in axes if 0 <= a < t.ndim and t.shape[a] == 0]
    # as numpy and PyTorch: a maximum of nothing has no value (sum's identity is 0, max has none)
    check(not empty, f"max over axis {empty[0] if empty else 0} of size 0: the maximum of no "
          "elements is undefined")
    return _reduce_infer(types, axes, keepdims)


@defop("max", _max_infer, vjp=_vjp_max, arity=1,
       flops=lambda types, out, **_: types[0].size)
def _max(x, axes, keepdims):
    return np.max(x, axis=axes, keepdims=keepdims)



# ---- running sums ---------------------------------------------------------------------------
def _cumsum_infer(types, axis, reverse):
    (t,) = types
    check(0 <= axis < t.ndim, f"axis {axis} out of range for a {t.ndim}-d operand")
    check(t.dtype != np.dtype("bool"), "needs a numeric operand, got bool")
    return t


def _vjp_cumsum(ctx, g):
    # y_i = sum_{j <= i} x_j, so dx_j = sum_{i >= j} g_i: the running sum the other way
    return [F.cumsum(g, ctx.attrs["axis"], reverse=not ctx.attrs["reverse"])]


@defop("cumsum", _cumsum_infer, vjp=_vjp_cumsum, arity=1,
       flops=lambda types, out, **_: types[0].size)
def _cumsum(x, axis, reverse):
    # in the operand's dtype, as JAX (numpy widens int32 to int64)
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis, dtype=x.dtype), axis).copy()
    return np.cumsum(x, axis, dtype=x.dtype)


# ---- the sum of squares of several arrays (a global gradient norm) ---------------------------
def _sum_squares_infer(types):
    check(len(types) >= 1, "sum_squares needs at least one operand")
    dtypes = {t.dtype for t in types}
    check(len(dtypes) == 1, f"operands must have one dtype, got {sorted(map(str, dtypes))}")
    check(is_float(types[0].dtype), f"sum_squares of {types[0].dtype} values")
    return TensorType((), types[0].dtype)


def _vjp_sum_squares(ctx, g):
    twice = g * 2.0
    return [x * twice if need else None for x, need in zip(ctx.inputs, ctx.needs)]


@defop("sum_squares", _sum_squares_infer, vjp=_vjp_sum_squares,
       flops=lambda types, out, **_: 2.0 * sum(t.size for t in types))
def _sum_squares(*xs):
    """The sum of x*x over every element of every operand, accumulated in float64 (squares
    of float32 values are exact there) and rounded once to the operands' dtype: one value
    for a global gradient norm (graphc.optim.global_norm) instead of a product, a sum and
    an add per array. The compiled runtime sums in another fixed order (runtime.reductions)."""
    total = 0.0
    for x in xs:
        v = np.ravel(x).astype(np.float64)
        total += float(np.dot(v, v))
    return np.asarray(total, xs[0].dtype)


# ---- shape ops ------------------------------------------------------------------------------
def _reshape_infer(types, shape):
    (t,) = types
    size = 1
    for d in shape:
        size *= d
    check(size == t.size, f"cannot reshape {t.size} elements into shape {tuple(shape)}")
    return TensorType(shape, t.dtype)


@defop("reshape", _reshape_infer, vjp=lambda ctx, g: [F.reshape(g, ctx.inputs[0].shape)],
       arity=1)
def _reshape(x, shape):
    return np.reshape(x, shape)


def _transpose_infer(types, perm):
    (t,) = types
    check(sorted(perm) == list(range(t.ndim)), f"perm {perm} is not a permutation of "
                                               f"{t.ndim} axes")
    return TensorType(tuple(t.shape[p] for p in perm), t.dtype)


@defop("transpose", _transpose_infer,
       vjp=lambda ctx, g: [F.transpose(g, tuple(np.argsort(ctx.attrs["perm"]).tolist()))],
       arity=1)
def _transpose(x, perm):
    return np.transpose(x, perm)


def _broadcast_infer(types, shape):
    (t,) = types
    check(len(shape) >= t.ndim, f"cannot broadcast a {t.ndim}-d operand to {len(shape)} dims")
    for d, s in zip(t.shape[::-1], shape[::-1]):
        check(d == 1 or d == s, f"cannot broadcast shape {t.shape} to {tuple(shape)}")
    return TensorType(shape, t.dtype)


@defop("broadcast_to", _broadcast_infer,
       vjp=lambda ctx, g: [F.unbroadcast(g, ctx.inputs[0].shape)], arity=1)
def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


def _slice_infer(types, starts, stops, steps):
    (t,) = types
    check(len(starts) == len(stops) == len(steps) == t.ndim, "slice needs one range per axis")
    shape = []
    for d, a, b, s in zip(t.shape, starts, stops, steps):
        check(s > 0, f"bad step {s} in the range {a}:{b}:{s}")
        # a bound that only the symbols' values decide is checked when they are bound
        # (ir/specialize.py): one that does not fit there is what numpy would have clamped
        if not holds_when_bound(lambda: 0 <= a <= b <= d):
            raise TypeRuleError(f"range {a}:{b} does not fit an axis of {d}: "
                                f"{F.SYMBOLIC_CLAMP}")
        try:  # symbolic bounds (b >= a, checked when bound): one polynomial for every
            # value (a strided window of conv2d over 2*n+1 rows: 0:2*n-1:2 has n rows)
            shape.append(range_length(a, b, s))
        except InconclusiveDim as exc:
            raise TypeRuleError(f"range {a}:{b}:{s}: its length {exc.message}") from None
    return TensorType(tuple(shape), t.dtype)


def _slices(starts, stops, steps):
    return tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps))


def _vjp_slice(ctx, g):
    a = ctx.attrs
    return [F.pad_slice(g, ctx.inputs[0].shape, a["starts"], a["stops"], a["steps"])]


@defop("slice", _slice_infer, vjp=_vjp_slice, arity=1)
def _slice(x, starts, stops, steps):
    return x[_slices(starts, stops, steps)]


def _pad_slice_infer(types, shape, starts, stops, steps):
    expected = _slice_infer([TensorType(shape, types[0].dtype)], starts, stops, steps)
    check(expected.shape == types[0].shape,
          f"operand {types[0].shape} does not fit region of shape {expected.shape}")
    return TensorType(shape, types[0].dtype)


def _vjp_pad_slice(ctx, g):
    a = ctx.attrs
    return [F.slice_(g, a["starts"], a["stops"], a["steps"])]


@defop("pad_slice", _pad_slice_infer, vjp=_vjp_pad_slice, arity=1)
def _pad_slice(x, shape, starts, stops, steps):
    """Zeros of `shape` with `x` written into the sliced region: the gradient of slice."""
    out = np.zeros(shape, dtype=x.dtype)
    out[_slices(starts, stops, steps)] = x
    return out


def _concat_infer(types, axis):
    check(len(types) >= 1, "needs at least one operand")
    first = types[0]
    check(0 <= axis < first.ndim, f"axis {axis} out of range for {first.ndim}-d operands")
    total = 0
    for t in types:
        check(t.dtype == first.dtype, "operands must have one dtype")
        check(t.ndim == first.ndim and all(
            d == e for i, (d, e) in enumerate(zip(t.shape, first.shape)) if i != axis),
            "operands differ in shape off the concatenation axis")
        total += t.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return TensorType(tuple(shape), first.dtype)


def _vjp_concat(ctx, g):
    axis = ctx.attrs["axis"]
    grads, offset = [], 0
    for x, need in zip(ctx.inputs, ctx.needs):
        n = x.shape[axis]
        if need:
            starts = [0] * g.ndim
            stops = list(g.shape)
            starts[axis], stops[axis] = offset, offset + n
            grads.append(F.slice_(g, tuple(starts), tuple(stops), (1,) * g.ndim))
        else:
            grads.append(None)
        offset += n
    return grads


@defop("concat", _concat_infer, vjp=_vjp_concat)
def _concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


# ---- constant creators (no operands) --------------------------------------------------------
def _full_infer(types, shape, value, dtype):
    # api.full makes a number fit its dtype before it gets here; a full read from IR text or
    # JSON holds its value as written, which np.full would change: 1.5 truncated to an int
    # dtype's 1, NaN wrapped to its minimum, 2**31 an OverflowError at run time for int32
    # (a float fill rounds as np.full's: 70000 fills f16 with inf, as gc.full does, and
    # prints as written, so a constant's refusal of it, ir.types.exact_array's, is not here)
    dtype = np.dtype(dtype)
    if isinstance(value, Dim):  # (api.full fills a symbolic size's truth by a cast of int64's)
        check(dtype.kind != "b", f"fill value {value} is not true, false, 0 or 1, which "
              "bool holds")
    else:
        problem = held_problem("fill value", value, dtype)
        check(problem is None, problem)
    return TensorType(shape, dtype)


@defop("full", _full_infer, arity=0)
def _full(shape, value, dtype):
    return np.full(shape, value, dtype=dtype)


def _arange_infer(types, start, stop, step, dtype):
    check(step != 0, "step must not be zero")
    if isinstance(start, Dim) or isinstance(stop, Dim):  # arange(T) of a symbolic length
        check(step == 1 and stop >= start, f"arange({start}, {stop}, {step}) with symbolic "
              "bounds needs step 1 and stop >= start")
        return TensorType((stop - start,), dtype)
    count = len(range(start, stop, step))
    if count:
        for value in (start, start + (count - 1) * step):  # the first and the last
            F.check_fits_dtype(f"arange({start}, {stop}, {step}): value", value,
                               np.dtype(dtype))
    return TensorType((count,), dtype)


_INT64 = np.iinfo(np.int64)


@defop("arange", _arange_infer, arity=0)
def _arange(start, stop, step, dtype):
    # each exact value, then cast: numpy's arange in a half dtype steps by its rounded first
    # values (arange(257, 263) in bfloat16 went past stop), torch's rounds each exact value
    if all(_INT64.min <= v <= _INT64.max for v in (start, stop, step)):
        values = np.arange(start, stop, step, dtype=np.int64)
    else:  # past int64 (float values from 2**63; int dtypes are refused there): each
        # Python int rounded to float64 on its own
        values = np.array(range(start, stop, step), np.float64)
    with np.errstate(over="ignore"):  # past a half dtype's range: inf, as torch's
        return values.astype(dtype, copy=False)


def _tri_infer(types, rows, cols, k):
    return TensorType((rows, cols), "bool")


@defop("tri", _tri_infer, arity=0)
def _tri(rows, cols, k):
    """Lower-triangular boolean mask (numpy's tri): the causal-attention mask."""
    if rows < 0 or cols < 0:  # (np.tri clips one to 0: eye(-2) was a (0, 0) matrix, which
        # numpy's eye, np.zeros and torch's refuse; refused where it runs, as full's numpy
        # call refuses one, so a branch not taken is not)
        raise ValueError(NEGATIVE_SIZE)
    return np.tri(rows, cols, k, dtype=bool)


def _constant_infer(types, value):
    raise TypeRuleError("constants are created with graph.constant")


@defop("constant", _constant_infer, arity=0)
def _constant(value):
    return value


def _input_infer(types, name, kind):
    raise TypeRuleError("inputs are created with graph.input")


@defop("input", _input_infer, arity=0)
def _input(name, kind):
    raise RuntimeError("input nodes are bound by the executor, not evaluated")


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import batch_all, defbatch, never_batched, shift, with_rank
    from .registry import apply

    def reduction(name):
        def rule(args, batched, size, axes, keepdims):
            return apply(name, args[0], axes=shift(axes), keepdims=keepdims)
        return rule

    for name in ("sum", "max"):
        defbatch(name)(reduction(name))

    @defbatch("cumsum")
    def _cumsum_rule(args, batched, size, axis, reverse):
        return apply("cumsum", args[0], axis=axis + 1, reverse=reverse)

    @defbatch("sum_squares")
    def _sum_squares_rule(args, batched, size):
        # one sum of squares per example: batched operands reduce over their example axes
        # (in float64, as the op accumulates), unbatched ones once, shared by every example
        dtype = F._dtype(args[0])
        total = None
        for x, b in zip(args, batched):
            if b:
                wide = F.cast(x, "float64")
                part = F.sum(wide * wide, tuple(range(1, F._ndim(x))))
            else:
                part = F.cast(apply("sum_squares", x), "float64")
            total = part if total is None else total + part
        return F.cast(total, dtype)

    @defbatch("reshape")
    def _reshape_rule(args, batched, size, shape):
        return F.reshape(args[0], (size,) + tuple(shape))

    @defbatch("transpose")
    def _transpose_rule(args, batched, size, perm):
        return F.transpose(args[0], (0,) + shift(perm))

    @defbatch("broadcast_to")
    def _broadcast_rule(args, batched, size, shape):
        return F.broadcast_to(with_rank(args[0], len(shape)), (size,) + tuple(shape))

    @defbatch("slice")
    def _slice_rule(args, batched, size, starts, stops, steps):
        return F.slice_(args[0], (0,) + tuple(starts), (size,) + tuple(stops),
                        (1,) + tuple(steps))

    @defbatch("pad_slice")
    def _pad_slice_rule(args, batched, size, shape, starts, stops, steps):
        return F.pad_slice(args[0], (size,) + tuple(shape), (0,) + tuple(starts),
                           (size,) + tuple(stops), (1,) + tuple(steps))

    @defbatch("concat")
    def _concat_rule(args, batched, size, axis):
        return apply("concat", *batch_all(args, batched, size), axis=axis + 1)

    for name in ("full", "arange", "tri"):
        never_batched(name, "a creator: it has no operands")
    never_batched("constant", "a value of the traced function, the same for every example")
    never_batched("input", "vmap binds the traced function's inputs to the batched arguments")


_register_batching()
