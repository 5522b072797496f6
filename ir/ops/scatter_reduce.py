"""Segment and scatter reductions beyond sums, running extremes, order statistics:
jax.ops.segment_max / segment_min / segment_prod and segment_mean (torch_scatter's
scatter_mean: JAX has none), torch's index_add / index_copy / index_fill / scatter_reduce,
cummax / cummin / logcumsumexp, kthvalue / median / nanmedian.

Two primitives of their own: `scatter_max` (rows filled with the dtype's lowest value, each
update's row raised to it: np.maximum.at), whose gradient goes to every update equal to its
row's maximum, split evenly among those ties, as torch's amax and JAX's reduce_max; and
`scatter_prod` (rows of ones multiplied by their updates: np.multiply.at), whose gradient is
torch's scatter_reduce 'prod' one. Every other function here is built from them and the
primitive ops (argsort, take, scatter_add,
where, slices), so their gradients, batching rules and lowerings are those ops'.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import Dim, TensorType, is_float, is_int, is_real
from . import api as F
from .api import _axis, _count, _dtype, _fail, _flag, _ndim, _shape
from .arrays import _along, _checked_segment_ids, _concrete, _take_along, argsort, moveaxis
from .arrays import segment_sum
from .index import index_problem
from .registry import (SymbolicValue, apply, check, defop, is_weak_scalar, refuse_operand,
                       scalar_dtype)

__all__ = ["segment_max", "segment_min", "segment_prod", "segment_mean", "index_add",
           "index_copy", "index_fill", "scatter_reduce", "cummax", "cummin", "logcumsumexp",
           "kthvalue", "median", "nanmedian"]


# ---- the scatter_max primitive ----------------------------------------------------------------
def _lowest(dtype):
    """The identity of max: -inf for floats, the smallest integer, False."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return False
    return -np.inf if is_float(dtype) else np.iinfo(dtype).min


def _scatter_max_infer(types, rows):
    updates, idx = types
    check(idx.dtype.kind in "iu", f"indices must be integers, got {idx.dtype}")
    check(updates.shape[:idx.ndim] == idx.shape,
          f"updates {updates.shape} must start with the indices' shape {idx.shape}")
    return TensorType((rows,) + updates.shape[idx.ndim:], updates.dtype)


def _vjp_scatter_max(ctx, g):
    """Each update equal to its row's maximum gets the row's cotangent divided by the number
    of such ties (torch's scatter_reduce amax, JAX's reduce_max); the others nothing. Every
    update of a NaN row (NaN equals nothing: no ties) gets NaN, as torch's scatter_reduce
    amax / amin (its 0 * g / 0), whatever the cotangent."""
    updates, idx = ctx.inputs
    if not ctx.needs[0]:
        return [None, None]
    hits = F.equal(updates, F.take(ctx.out, idx))
    ties = F.take(F.scatter_add(F.cast(hits, updates.dtype), idx, ctx.attrs["rows"]), idx)
    share = F.div(F.take(g, idx), F.maximum(ties, 1.0))
    missed = F.zeros_like(share)
    if is_float(updates.dtype):
        missed = F.where(F.equal(ties, 0.0), float("nan"), missed)
    return [F.where(hits, share, missed), None]


@defop("scatter_max", _scatter_max_infer, vjp=_vjp_scatter_max, arity=2)
def _scatter_max(updates, idx, rows):
    """Rows of the dtype's lowest value, update i's row raised to updates[i] (a NaN update
    makes its row NaN); negative indices count from the end, as scatter_add's."""
    tail = updates.shape[idx.ndim:]
    out = np.full((rows,) + tail, _lowest(updates.dtype), dtype=updates.dtype)
    flat_idx = idx.reshape(-1)
    if flat_idx.size and (flat_idx.min() < -rows or flat_idx.max() >= rows):
        raise IndexError("scatter_max: an index is out of range for the rows")
    if flat_idx.size and flat_idx.min() < 0:  # (only then: the copy cost more than the max)
        flat_idx = np.where(flat_idx < 0, flat_idx + rows, flat_idx)
    with np.errstate(invalid="ignore"):  # (a NaN update: its row NaN, as np.max's, quietly)
        np.maximum.at(out, flat_idx, updates.reshape((flat_idx.size,) + tail))
    return out


def scatter_max(updates, idx, rows):
    return apply("scatter_max", updates, F._index_operand(idx), rows=_count(rows,
                                                                            "scatter_max: rows"))


# ---- the scatter_prod primitive ---------------------------------------------------------------
def _vjp_scatter_prod(ctx, g):
    """torch's scatter_reduce 'prod' gradient: the row's cotangent times the product over
    the update, (g * out) / u, where u is not zero; the product of the row's other updates
    for a row's only zero; nothing for a zero among several (their product of others is 0).
    Log-free: zeros and signs exact. Differentiable again, exactly to the third
    derivative: a zero one of two or three takes g * (the row's non-zero product) * (the
    product of the other zeros), that product spelt by the other zeros' power sums, p1 for
    one, (p1^2 - p2) / 2 for two (0, but with the derivatives of that product: the
    Hessian's entry between two zeros, the third derivative among three; torch refuses a
    second derivative there). With four zeros or more every derivative to the third is 0;
    the fourth is not exact."""
    updates, idx = ctx.inputs
    if not ctx.needs[0]:
        return [None, None]
    rows = ctx.attrs["rows"]
    nothing = F.zeros_like(updates)
    zero = F.equal(updates, nothing)
    zeros = F.take(F.scatter_add(F.cast(zero, "int64"), idx, rows), idx)
    unzeroed = F.where(zero, F.ones_like(updates), updates)
    product = scatter_prod(unzeroed, idx, rows)  # (the row's non-zero elements')
    others = F.take(F.mul(g, product), idx)
    # the product of the other zeros (value 0) with its derivatives: of one, itself (p1);
    # of two, e2 = (p1^2 - p2) / 2, p_k the other zeros' sum of k-th powers (each the
    # row's sum less its own)
    kept = F.where(zero, updates, nothing)
    p1 = F.sub(F.take(F.scatter_add(kept, idx, rows), idx), kept)
    squares = F.mul(kept, kept)
    p2 = F.sub(F.take(F.scatter_add(squares, idx, rows), idx), squares)
    e2 = F.mul(F.sub(F.mul(p1, p1), p2), 0.5)
    # (multiplying p1 or e2, 0, the product is kept finite: an overflowed row, inf, times 0
    # was NaN where the zero's gradient is 0, torch's; the derivative saturates there)
    big = float(F.finfo(updates.dtype).max)
    finite = F.take(F.minimum(F.maximum(F.mul(g, F.minimum(F.maximum(product, -big), big)),
                                        -big), big), idx)
    others = F.where(F.equal(zeros, np.int64(2)), F.mul(finite, p1),
                     F.where(F.equal(zeros, np.int64(3)), F.mul(finite, e2), others))
    rest = F.div(F.take(F.mul(g, ctx.out), idx), unzeroed)
    lone = F.logical_and(zero, F.less_equal(zeros, np.int64(3)))
    return [F.where(lone, others, rest), None]


@defop("scatter_prod", _scatter_max_infer, vjp=_vjp_scatter_prod, arity=2)
def _scatter_prod(updates, idx, rows):
    """Rows of ones, each multiplied by the updates naming it in their order (np.multiply.at:
    torch's scatter_reduce 'prod' on CPU rounds the same products); negative indices count
    from the end, as scatter_add's."""
    tail = updates.shape[idx.ndim:]
    out = np.ones((rows,) + tail, dtype=updates.dtype)
    flat_idx = idx.reshape(-1)
    if flat_idx.size and (flat_idx.min() < -rows or flat_idx.max() >= rows):
        raise IndexError("scatter_prod: an index is out of range for the rows")
    if flat_idx.size and flat_idx.min() < 0:
        flat_idx = np.where(flat_idx < 0, flat_idx + rows, flat_idx)
    np.multiply.at(out, flat_idx, updates.reshape((flat_idx.size,) + tail))
    return out


def scatter_prod(updates, idx, rows):
    return apply("scatter_prod", updates, F._index_operand(idx),
                 rows=_count(rows, "scatter_prod: rows"))


def _register_batching():
    from .batching import SHARED_INDEX_OPS, defbatch, scattering

    # (scatter_add's rule: each example into its own block of rows of one table)
    for name in ("scatter_max", "scatter_prod"):
        defbatch(name)(scattering(
            lambda updates, idx, rows, name=name: apply(name, updates, idx, rows=rows)))
        SHARED_INDEX_OPS.add(name)


_register_batching()


def _dim(name, dim, ndim):
    """torch's dim of an ndim-d value as 0..ndim-1; a 0-d value takes 0 or -1, as torch's
    (numpy's axis of a 0-d value is 0 alone)."""
    if ndim == 0 and is_int(dim) and not isinstance(dim, (bool, np.bool_)) and dim in (0, -1):
        return 0
    return _axis(dim, ndim, f"{name}: dim")


# ---- segment reductions (jax.ops) -------------------------------------------------------------
def _reversed_order(x):
    """A map of x's values reversing their order, its own inverse: -x for floats, -1 - x for
    integers (never overflows), not for bools; max of it is min of x."""
    dtype = _dtype(x)
    if dtype == np.bool_:
        return F.logical_not(x)
    if is_float(dtype):
        return F.neg(x)
    # (an unsigned dtype: its largest, so that the op refuses the dtype in one line, where
    # np.asarray(-1, uint8) was numpy's OverflowError)
    return F.sub(np.asarray(-1 if dtype.kind == "i" else np.iinfo(dtype).max, dtype), x)


def _segment_args(name, data, segment_ids, num_segments, indices_are_sorted, unique_indices):
    _flag(name, "indices_are_sorted", indices_are_sorted)  # (hints for XLA in JAX: no effect)
    _flag(name, "unique_indices", unique_indices)
    segment_ids, num_segments = _checked_segment_ids(name, segment_ids, num_segments)
    lead, ids = tuple(_shape(data)[:_ndim(segment_ids)]), tuple(_shape(segment_ids))
    if lead != ids:
        _fail(f"{name}: data of shape {tuple(_shape(data))} must start with segment_ids' shape "
              f"{ids}")
    return segment_ids, num_segments


def segment_max(data, segment_ids, num_segments=None, indices_are_sorted=False,
                unique_indices=False):
    """jax.ops.segment_max: row i is the largest of the rows of `data` whose segment id is
    i; an empty segment is -inf (floats), the dtype's smallest (integers), False. Its
    gradient is split evenly among the elements equal to their segment's maximum (JAX's
    splits it the same way, but also counts the -inf fill as a tie where a segment's
    maximum is -inf). num_segments: needed while tracing, else max(segment_ids) + 1."""
    ids, n = _segment_args("segment_max", data, segment_ids, num_segments, indices_are_sorted,
                           unique_indices)
    return scatter_max(data, ids, n)


def segment_min(data, segment_ids, num_segments=None, indices_are_sorted=False,
                unique_indices=False):
    """jax.ops.segment_min: segment_max's counterpart (empty segments +inf, the dtype's
    largest integer, True); its gradient split evenly among the ties too."""
    ids, n = _segment_args("segment_min", data, segment_ids, num_segments, indices_are_sorted,
                           unique_indices)
    return _reversed_order(scatter_max(_reversed_order(data), ids, n))


def _segment_counts(ids, n, like):
    """How many rows each of the n segments has, shaped (n, 1, ...) against `like`'s rows
    (int64)."""
    ones = F.ones(_shape(ids), "int64")
    counts = F.scatter_add(ones, ids, n)
    return F.reshape(counts, (n,) + (1,) * (_ndim(like) - _ndim(ids)))


def segment_prod(data, segment_ids, num_segments=None, indices_are_sorted=False,
                 unique_indices=False):
    """jax.ops.segment_prod: row i multiplies the rows whose segment id is i (1 for an empty
    segment), in their order (np.multiply.at: no logs, zeros and signs exact). Its gradient
    is torch's scatter_reduce 'prod' one, exact where an element is zero (JAX
    differentiates segment_prod only with unique_indices=True)."""
    ids, n = _segment_args("segment_prod", data, segment_ids, num_segments, indices_are_sorted,
                           unique_indices)
    if _dtype(data) == np.bool_:  # (the product of booleans: all of them)
        return F.cast(segment_prod(F.cast(data, "int64"), ids, n), "bool")
    return scatter_prod(data, ids, n)


def segment_mean(data, segment_ids, num_segments=None, indices_are_sorted=False,
                 unique_indices=False):
    """torch_scatter's scatter_mean along the leading axes, in jax.ops' signature (JAX has no
    segment_mean): segment_sum over the segment's row count; 0 for an empty segment;
    integers divided rounding down, as torch's scatter_reduce 'mean'."""
    ids, n = _segment_args("segment_mean", data, segment_ids, num_segments, indices_are_sorted,
                           unique_indices)
    if _dtype(data) == np.bool_:
        _fail("segment_mean: needs numbers, got bool data")
    sums = segment_sum(data, ids, n)
    counts = F.maximum(_segment_counts(F.reshape(ids, (-1,)), n, sums), np.int64(1))
    if is_float(_dtype(data)):
        return F.div(sums, F.cast(counts, _dtype(data)))
    return F.floor_divide(sums, F.cast(counts, _dtype(data)))


_SEGMENT = {"sum": segment_sum, "prod": segment_prod, "mean": segment_mean,
            "amax": segment_max, "amin": segment_min}


# ---- torch's index_* and scatter_reduce -------------------------------------------------------
def _index_along(name, x, dim, index, source=None, negative=False):
    """(x with `dim` first, the checked 1-d index, source with `dim` first, dim); `negative`:
    an index in [-size, 0) counts from the end (index_fill's, as torch's), else refused."""
    dim = _dim(name, dim, _ndim(x))
    index = F._index_operand(index, name)
    if _dtype(index).kind not in "iu":
        _fail(f"{name}: index must be integers, got {_dtype(index)}")
    if _ndim(index) > 1:
        _fail(f"{name}: index must be 1-d, got {_ndim(index)}-d")
    index = F.reshape(index, (-1,))
    n = _concrete(_shape(x)[dim] if _ndim(x) else 1, name)
    if not negative:
        index, _ = _checked_segment_ids(name, index, n, what="index", axis=dim)
    elif isinstance(index, SymbolicValue):
        # (scatter_add counts a negative one from the end; refused naming the function)
        index = F.check_index(index, n, dim, who=name)
    else:  # (known now: refused now, in check_index's words)
        problem = index_problem(np.asarray(index), n, dim, who=name)
        if problem is not None:
            _fail(problem)
    front = moveaxis(x, dim, 0) if _ndim(x) else F.reshape(x, (1,))
    if source is None:
        return front, index, None, dim
    if _ndim(source) != _ndim(x):
        _fail(f"{name}: source has {_ndim(source)} dimensions, x has {_ndim(x)}")
    src = moveaxis(source, dim, 0) if _ndim(source) else F.reshape(source, (1,))
    expected = (_shape(index)[0],) + tuple(_shape(front)[1:])
    if tuple(_shape(src)) != expected:
        _fail(f"{name}: source of shape {tuple(_shape(source))} does not fit {_shape(index)[0]} "
              f"indices into x of shape {tuple(_shape(x))} along dim {dim}")
    return front, index, src, dim


def _back(out, x, dim):
    return moveaxis(out, 0, dim) if _ndim(x) else F.reshape(out, ())


def index_add(x, dim, index, source, alpha=1):
    """torch's index_add: x with alpha * source[..., i, ...] added at x[..., index[i], ...]
    along `dim` (repeated indices accumulate)."""
    front, index, src, dim = _index_along("index_add", x, dim, index, source)
    if np.ndim(alpha) or not (is_real(alpha) or isinstance(alpha, (bool, np.bool_))):
        _fail(f"index_add: alpha must be a number, got {alpha!r}")
    if alpha != 1:
        src = F.mul(src, alpha)
    return _back(F.add(front, segment_sum(src, index, _shape(front)[0])), x, dim)


def index_copy(x, dim, index, source):
    """torch's index_copy: x with x[..., index[i], ...] = source[..., i, ...] along `dim`. Of
    repeated indices the last one's row is written (torch leaves that undefined; its CPU
    kernel writes it too), and it alone gets the gradient, the true derivative (torch's
    backward gives every duplicated row the written row's)."""
    front, index, src, dim = _index_along("index_copy", x, dim, index, source)
    rows = _shape(front)[0]
    k = _shape(index)[0]
    # which source row writes each row of x: the last one naming it, -1 for none
    writer = scatter_max(F.arange(0, k, dtype="int64"), index, rows)
    written = F.greater_equal(writer, np.int64(0))
    copied = F.take(src, F.maximum(writer, np.int64(0))) if k else front
    mask = F.reshape(written, (rows,) + (1,) * (_ndim(front) - 1))
    return _back(F.where(mask, copied, front), x, dim)


def index_fill(x, dim, index, value):
    """torch's index_fill: x with every x[..., index[i], ...] along `dim` set to `value` (a
    number, or a 0-d value: its gradient is the sum over the filled elements)."""
    front, index, _, dim = _index_along("index_fill", x, dim, index, negative=True)
    if np.ndim(value) if not hasattr(value, "shape") else _ndim(value):
        _fail(f"index_fill: value must be a number or a 0-d value, got shape {np.shape(value)}")
    rows = _shape(front)[0]
    hit = F.greater(F.scatter_add(F.ones(_shape(index), "int64"), index, rows), np.int64(0))
    mask = F.reshape(hit, (rows,) + (1,) * (_ndim(front) - 1))
    if hasattr(value, "shape") and not isinstance(value, np.generic):
        known = value if isinstance(value, np.ndarray) else getattr(value, "data", None)
        if isinstance(known, np.ndarray) and _dtype(x).kind in "iu":
            _check_fill_range(known.item(), _dtype(x))  # (a traced one: cast as it is)
        fill = F.cast(value, _dtype(x))  # (a tensor: cast, truncating toward zero, as torch's)
    else:
        fill = _fill_number(value, _dtype(x))
    return _back(F.where(mask, fill, front), x, dim)


def _fill_number(value, dtype):
    """index_fill's number as torch converts it into x's dtype, the same eagerly, compiled
    and traced: truncated toward zero for an integer x (2.7 -> 2, -2.7 -> -2; refused in one
    line where it does not fit: NaN, inf, out of range, as torch's), its truth for a bool x,
    itself for a float x (a Python number: a weak scalar, x's dtype). A Python float was
    refused into an integer x while a numpy one was truncated."""
    if isinstance(value, np.generic):
        value = value.item()
    if not (isinstance(value, bool) or is_real(value)):
        _fail(f"index_fill: value must be a real number or a 0-d value, got {value!r}")
    if dtype == np.bool_:
        return bool(value)
    if dtype.kind in "iu":
        _check_fill_range(value, dtype)
        return int(value)
    return value


def _check_fill_range(value, dtype):
    """An integer x's fill value must lie in its dtype's range before truncation, as
    torch's (2147483647.5 into int32: "value cannot be converted to type int32 without
    overflow"; 2.7 -> 2 is in range): it was truncated first, 2147483647.5 then fitting,
    and -2147483648.9 too. NaN and inf are refused alike. (Python compares a float with an
    int exactly.)"""
    info = np.iinfo(dtype)
    if isinstance(value, (bool, np.bool_)):
        return
    if not (isinstance(value, (int, np.integer)) or math.isfinite(value)) or \
            not info.min <= value <= info.max:
        _fail(f"index_fill: value {value!r} does not fit in {dtype} (outside [{info.min}, "
              f"{info.max}] before truncation; torch: cannot be converted without overflow)")


_REDUCES = ("sum", "prod", "mean", "amax", "amin")


def scatter_reduce(x, dim, index, src, reduce, include_self=True):
    """torch's scatter_reduce: for each position p of `index`, src[p] is reduced into x at p
    with p[dim] replaced by index[p] ('sum', 'prod', 'mean', 'amax', 'amin'); include_self:
    x's own element is one of those reduced, else an element some index names takes only
    the scattered values. As torch's, gradients of amax / amin are split evenly among the
    ties (x's element included) and prod's is exact where an element is zero. One segment
    reduction over the flattened x (the others, x's own elements among them)."""
    if reduce not in _REDUCES:
        _fail(f"scatter_reduce: reduce must be one of {', '.join(_REDUCES)}, got {reduce!r}")
    include_self = _flag("scatter_reduce", "include_self", include_self)
    nd = _ndim(x)
    dim = _dim("scatter_reduce", dim, nd)
    index = F._index_operand(index, "scatter_reduce")
    if _dtype(index).kind not in "iu":
        _fail(f"scatter_reduce: index must be integers, got {_dtype(index)}")
    if not (_ndim(index) == _ndim(src) == nd):
        _fail(f"scatter_reduce: x, index and src must have as many dimensions, got {nd}, "
              f"{_ndim(index)} and {_ndim(src)}")
    if _dtype(src) != _dtype(x):
        _fail(f"scatter_reduce: src's dtype {_dtype(src)} is not x's {_dtype(x)}")
    for what, value in (("x", x), ("index", index), ("src", src)):
        symbolic = [d for d in _shape(value) if isinstance(d, Dim)]
        if symbolic:  # (flattened into one segment reduction, by positions known now)
            _fail(f"scatter_reduce: needs concrete shapes (a polymorphic compile's symbolic "
                  f"sizes are refused), got {what}'s shape {tuple(_shape(value))} with the "
                  f"symbolic {symbolic[0]}")
    xs = tuple(int(d) for d in _shape(x)) or (1,)
    ids = tuple(int(d) for d in _shape(index)) or (1,)
    ss = tuple(int(d) for d in _shape(src)) or (1,)
    for d, (i, s, t) in enumerate(zip(ids, ss, xs)):
        if i > s or (d != dim and i > t):
            _fail(f"scatter_reduce: index of shape {tuple(_shape(index))} is larger than src "
                  f"{tuple(_shape(src))} or x {tuple(_shape(x))} off dim {dim}")
    total = int(np.prod(xs))
    flat_x = F.reshape(x, (total,))
    count = int(np.prod(ids))
    index = F.reshape(index, ids)
    index, _ = _checked_segment_ids("scatter_reduce", index, xs[dim], what="index", axis=dim)
    # each position's flat target in x: its own coordinates, index[p] in place of p[dim]
    strides = np.cumprod((1,) + xs[:0:-1])[::-1].astype(np.int64)
    coords = np.indices(ids).astype(np.int64) if count else np.zeros((len(ids),) + ids, np.int64)
    fixed = sum(coords[d] * strides[d] for d in range(len(ids)) if d != dim)
    target = F.reshape(F.add(F.mul(F.cast(index, "int64"), strides[dim]), fixed), (count,))
    values = F.reshape(F.slice_(F.reshape(src, ss), (0,) * len(ss), ids, (1,) * len(ss)),
                       (count,))
    if include_self:
        members = F.concat([flat_x, values], 0)
        owners = F.concat([F.arange(0, total, dtype="int64"), target], 0)
    else:
        members, owners = values, target
    out = _SEGMENT[reduce](members, owners, total)
    if not include_self:
        hit = F.greater(F.scatter_add(F.ones((count,), "int64"), target, total), np.int64(0))
        out = F.where(hit, out, flat_x)
    return F.reshape(out, _shape(x))


def _itself(name, x):
    """A 0-d x as a result of its own: a copy where it runs now (F._unchanged), and a tensor
    for a number or numpy scalar too, in the dtype graphc's reductions give it (gc.max of
    np.float64(2) is float32's 2, a weak scalar's): median(np.float64(2)) was that bare
    np.float64, where an array's median is a tensor."""
    if is_weak_scalar(x):
        return apply("cast", x, dtype=scalar_dtype(x, None, "cast"))
    if not hasattr(x, "shape") or isinstance(x, np.generic):
        # no operand (a complex, np.complex64, a str, None): refused in one line naming the
        # function called, as median's without a dim (kthvalue('a', 1).values was 'a')
        refuse_operand(x, name)
    return F._unchanged(x)


# ---- running extremes and sums ----------------------------------------------------------------
def _cum_extreme(name, x, dim, larger):
    dim = _dim(name, dim, _ndim(x))
    if _ndim(x) == 0:
        return F.ValuesIndices(_itself(name, x), F.zeros((), "int64"))
    n = _concrete(_shape(x)[dim], name)
    keys = F.cast(x, "int64") if _dtype(x) == np.bool_ else x
    if not larger:
        keys = _reversed_order(keys)
    idx = F.broadcast_to(F.reshape(F.arange(0, n, dtype="int64"),
                                   tuple(n if a == dim else 1 for a in range(_ndim(x)))),
                         _shape(x))
    floats = is_float(_dtype(keys))
    step = 1
    # a doubling scan over (key, index) pairs: the later one of a pair is kept where its key
    # is at least the earlier one's or NaN (torch's order: NaN the largest, ties the last)
    while step < n:
        early_k, late_k = _along(keys, dim, 0, n - step), _along(keys, dim, step, n)
        early_i, late_i = _along(idx, dim, 0, n - step), _along(idx, dim, step, n)
        later = F.greater_equal(late_k, early_k)
        if floats:
            later = F.logical_or(later, F.isnan(late_k))
        keys = F.concat([_along(keys, dim, 0, step), F.where(later, late_k, early_k)], dim)
        idx = F.concat([_along(idx, dim, 0, step), F.where(later, late_i, early_i)], dim)
        step *= 2
    # the values gathered from x: the gradient goes to the element each index names, as torch's
    return F.ValuesIndices(_take_along(x, idx, dim, in_range=True, name=name), idx)


def cummax(x, dim):
    """torch.cummax: (values, indices) of the running maximum along `dim`; on ties the index
    of the last occurrence, NaN the largest, as torch's. The gradient goes to the element
    each index names."""
    return _cum_extreme("cummax", x, dim, True)


def cummin(x, dim):
    """torch.cummin: cummax's counterpart (the last of ties, NaN kept)."""
    return _cum_extreme("cummin", x, dim, False)


def logcumsumexp(x, dim):
    """torch.logcumsumexp: log(cumsum(exp(x))) along `dim` without overflow: a doubling scan
    of logaddexp (-inf stays -inf). Floats only."""
    if not is_float(_dtype(x)):
        _fail(f"logcumsumexp: needs a floating-point value, got {_dtype(x)}")
    dim = _dim("logcumsumexp", dim, _ndim(x))
    if _ndim(x) == 0:
        return _itself("logcumsumexp", x)
    n = _concrete(_shape(x)[dim], "logcumsumexp")
    out, step = x, 1
    while step < n:
        out = F.concat([_along(out, dim, 0, step),
                        F.logaddexp(_along(out, dim, step, n), _along(out, dim, 0, n - step))],
                       dim)
        step *= 2
    return _itself("logcumsumexp", x) if n <= 1 else out


# ---- order statistics ------------------------------------------------------------------------
def _picked(name, x, dim, keepdim, position):
    """(values, indices) of the element at sorted `position` (an int, or an int64 array of
    x's shape with dim of size 1) along dim; the gradient goes to that element."""
    order = argsort(x, dim)
    if isinstance(position, int):
        at = _along(order, dim, position, position + 1)
    else:
        at = _take_along(order, position, dim, in_range=True, name=name)
    values = _take_along(x, at, dim, in_range=True, name=name)
    if not keepdim:
        values, at = F.squeeze(values, dim), F.squeeze(at, dim)
    return F.ValuesIndices(values, at)


def _dim_arg(name, x, dim):
    dim = _dim(name, dim, _ndim(x))
    return dim if _ndim(x) else None


def kthvalue(x, k, dim=-1, keepdim=False):
    """torch.kthvalue: (values, indices) of the k-th smallest element (k from 1) along dim,
    NaN the largest. Of equal elements the first in x's order is the smallest (torch's index
    among ties is its own; the value is the same)."""
    keepdim = _flag("kthvalue", "keepdim", keepdim)
    d = _dim_arg("kthvalue", x, dim)
    n = 1 if d is None else _concrete(_shape(x)[d], "kthvalue")
    if not is_int(k) or not 1 <= k <= n:
        _fail(f"kthvalue: k must be an int from 1 to {n} (the size of dim), got {k!r}")
    if d is None:
        return F.ValuesIndices(_itself("kthvalue", x), F.zeros((), "int64"))
    return _picked("kthvalue", x, d, keepdim, int(k) - 1)


def _median(name, x, dim, keepdim, skip_nan):
    keepdim = _flag(name, "keepdim", keepdim)
    if dim is None:  # of every element: the value alone, as torch's
        if _ndim(x) and 0 in tuple(_shape(x)):
            _fail(f"{name}: of an empty value (torch's is NaN); give a dim")
        flat = F.reshape(x, (-1,))
        return _median(name, flat, 0, False, skip_nan).values if _ndim(x) else _itself(name, x)
    d = _dim_arg(name, x, dim)
    if d is None:
        return F.ValuesIndices(_itself(name, x), F.zeros((), "int64"))
    n = _concrete(_shape(x)[d], name)
    if n == 0:
        _fail(f"{name}: dim {dim} has no elements (torch refuses it too)")
    if not is_float(_dtype(x)):
        return _picked(name, x, d, keepdim, (n - 1) // 2)
    # NaN sorts last: `nans` of them at the end of each sorted row
    nans = F.sum(F.cast(F.isnan(x), "int64"), d, keepdims=True)
    if skip_nan:  # the lower median of the others (all NaN: the first, NaN)
        position = F.floor_divide(F.maximum(F.sub(np.int64(n - 1), nans), np.int64(0)),
                                  np.int64(2))
    else:  # torch's: NaN (the first of them) where there is one
        position = F.where(F.greater(nans, np.int64(0)), F.sub(np.int64(n), nans),
                           np.full((), (n - 1) // 2, np.int64))
    return _picked(name, x, d, keepdim, position)


def median(x, dim=None, keepdim=False):
    """torch.median: the lower of the two middle elements (NaN where there is one); with dim,
    (values, indices), the index of the element picked (the first NaN's)."""
    return _median("median", x, dim, keepdim, skip_nan=False)


def nanmedian(x, dim=None, keepdim=False):
    """torch.nanmedian: median ignoring NaN (NaN only for a row of NaN)."""
    return _median("nanmedian", x, dim, keepdim, skip_nan=True)
