"""Array functions whose result is an index or a count, and whose size may depend on the
values: searchsorted, bucketize, nonzero, argwhere, flatnonzero, unique and bincount, each
with jax.numpy's signature and result (torch's names too for searchsorted and bucketize).

`searchsorted` is a primitive of its own (an index: no gradient). The others are built from
the primitives (argsort, take, where, cumsum, scatter_add), so their gradients (unique's
values, bincount's weights), batching rules and lowerings are those ops'. A result whose
size depends on the values follows JAX's rule: eagerly (the values known) it has that size,
as numpy's; in a trace (compile, grad, vmap) the size must be given (`size=`, bincount's
`length=`), places past the values' own are filled (`fill_value`), and without it the call
is refused in one line. Indices and counts are int64: numpy's intp and torch's index dtype,
as argsort's (JAX's default int32 would overflow past 2**31 elements).
"""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, is_float, is_real, is_real_dtype
from . import api as F
from .api import _axis, _count, _dtype, _fail, _flag, _ndim, _shape
from .arrays import _along, _concrete, _segment_sum, _take_along, argsort, moveaxis
from .registry import GRAD_MODE, SymbolicValue, apply, check, defop, is_weak_scalar

__all__ = ["searchsorted", "bucketize", "nonzero", "argwhere", "flatnonzero", "unique",
           "bincount"]


def _traced(x) -> bool:
    """Whether x's values are unknown until the plan runs (a value of a trace)."""
    return isinstance(x, SymbolicValue)


def _known(x):
    return np.asarray(x)


def _no_derivative(x) -> bool:
    """Whether x's values are known now and no derivative goes through them: an array, or an
    eager tensor that requires no grad (or grad mode is off); a traced x may be
    differentiated (gc.grad traces)."""
    return F._runs_now(x) and not (GRAD_MODE.enabled and getattr(x, "requires_grad", False))


def _result_size(name, size, x, count):
    """The `size` of a result that depends on x's values: the one given (a non-negative
    int), else, x's values known, count(x's values); refused in one line in a trace."""
    if size is not None:
        return _count(size, f"{name}: size")
    if _traced(x):
        _fail(f"{name}: the result's size depends on the values, unknown in a trace "
              "(compile, grad, vmap): pass size= (JAX's rule), the places past the values' "
              "own filled with fill_value")
    return int(count(_known(x)))


def _fill(name, fill_value):
    """An index fill_value (nonzero's): an int."""
    return 0 if fill_value is None else F._whole(fill_value, f"{name}: fill_value")


def _filled(values, valid, fill_value):
    """values where `valid` (a bool per row of values), else fill_value cast to values'
    dtype, as jnp.unique's (2.5 fills an int result with 2, 1 a bool one with True)."""
    dtype = _dtype(values)
    F.check_fits_dtype("unique: fill_value", fill_value, dtype)
    fill = np.asarray(fill_value).astype(dtype)[()]
    # a Python number (a weak scalar: a half numpy scalar is not an operand), exact
    fill = float(fill) if is_float(dtype) else bool(fill) if dtype == np.bool_ else int(fill)
    mask = F.reshape(valid, _shape(valid) + (1,) * (_ndim(values) - 1))
    return F.where(mask, values, fill)


# ---- searchsorted: the primitive -------------------------------------------------------------
def _searchsorted_infer(types, right=False):
    a, v = types
    check(a.ndim >= 1, "the sorted operand needs an axis to search, got a 0-d one")
    check(v.ndim == a.ndim and tuple(v.shape[:-1]) == tuple(a.shape[:-1]),
          f"values of shape {tuple(v.shape)} do not match the sorted rows of shape "
          f"{tuple(a.shape)} (one row of values per sorted row)")
    return TensorType(v.shape, np.dtype("int64"))


@defop("searchsorted", _searchsorted_infer, arity=2,
       flops=lambda types, out, **_: types[1].size)
def _searchsorted(a, v, right=False):
    """For each row of v, the places in the same row of a (sorted along its last axis) where
    its values would be inserted to keep the order: before equal elements (left) or after
    them (right). NaN sorts last, as numpy's sort (np.searchsorted itself)."""
    side = "right" if right else "left"
    if a.ndim == 1:
        return np.searchsorted(a, v, side).astype(np.int64)
    # (the row count spelt out: reshape(-1, 0) of an empty row is ambiguous)
    rows = math.prod(a.shape[:-1])
    rows_a, rows_v = a.reshape(rows, a.shape[-1]), v.reshape(rows, v.shape[-1])
    out = np.empty(rows_v.shape, np.int64)
    for i in range(len(rows_a)):
        out[i] = np.searchsorted(rows_a[i], rows_v[i], side)
    return out.reshape(v.shape)


def _search(name, a, v, right, sorter=None):
    """searchsorted's places of v in a (its last axis sorted): a 1-d a takes v of any shape;
    an N-d one (torch's) a row of values per row of a, v's leading dimensions a's."""
    if isinstance(a, (list, tuple)):  # (numpy's reads one; an operand it is not)
        a = np.asarray(a)
    if _ndim(a) == 0:
        _fail(f"{name}: the sorted sequence must have at least one axis, got a 0-d value")
    if sorter is not None:
        a = _sorted_by(name, a, sorter)
    if is_weak_scalar(v):
        v, right = _as_weak_scalar(a, v, right)
    elif isinstance(v, (list, tuple)):
        v = np.asarray(v)
    for what, value in (("sorted sequence", a), ("values", v)):
        if not is_real_dtype(_dtype(value)):  # (complex: no order numpy and torch share)
            _fail(f"{name}: the {what} must be real numbers or booleans, got "
                  f"{_dtype(value)}")
    if _ndim(a) == 1:
        shape = _shape(v)
        out = apply("searchsorted", a, F.reshape(v, (-1,)), right=right)
        return F.reshape(out, shape)
    if _ndim(v) != _ndim(a) or _shape(v)[:-1] != _shape(a)[:-1]:
        _fail(f"{name}: an N-d sorted sequence of shape {_shape(a)} takes values with its "
              f"leading dimensions {_shape(a)[:-1]} (torch's rule), got shape {_shape(v)}")
    return apply("searchsorted", a, v, right=right)


def _as_weak_scalar(a, v, right):
    """(v, right): the number v as it meets a's values, a weak scalar (reshaped, it would
    first become a float32 tensor of its own): 0.1 against a float32 a is float32's 0.1, 1e5
    against a float16 one its inf, as JAX's (numpy's overflow warning kept quiet). A Python
    int past an integer a's range (2**63 against int64, which numpy would make uint64) goes
    past every element or before them all, as numpy's: the dtype's largest value searched
    from the right, its smallest from the left."""
    dtype = _dtype(a)
    if isinstance(v, int) and not isinstance(v, bool) and dtype.kind in "biu":
        info = np.iinfo(np.result_type(dtype, 0))  # (a bool a meets an int as int64)
        if not info.min <= v <= info.max:
            right = v > info.max
            v = int(info.max if right else info.min)
    try:
        with np.errstate(over="ignore"):
            return np.asarray(v, np.result_type(dtype, v)), right
    except (OverflowError, TypeError):
        return np.asarray(v), right


def _sorted_by(name, a, sorter):
    """a in the order `sorter` gives (numpy's sorter: indices that sort a)."""
    if isinstance(sorter, (list, tuple)):
        sorter = np.asarray(sorter)
    if _dtype(sorter).kind not in "iu":
        _fail(f"{name}: sorter must hold integer indices, got {_dtype(sorter)}")
    if _shape(sorter) != _shape(a):
        _fail(f"{name}: sorter of shape {_shape(sorter)} does not match the sorted "
              f"sequence's {_shape(a)}")
    n = _concrete(_shape(a)[-1], name)
    if not _traced(sorter):
        known = _known(sorter)
        if known.size and (known.min() < 0 or known.max() >= n):
            bad = known.min() if known.min() < 0 else known.max()
            _fail(f"{name}: sorter index {bad} is outside [0, {n})")
    else:
        sorter = F.check_index(sorter, n, _ndim(a) - 1, negative=False, who=name,
                               what="sorter index")
    return _take_along(a, sorter, -1, in_range=True, name=name)


def _side(name, side, right):
    """right= (torch's) or side= ('left' or 'right', numpy's and torch's) as one flag."""
    if side is not None and not (isinstance(side, str) and side in ("left", "right")):
        _fail(f"{name}: side must be 'left' or 'right', got {side!r}")
    if right is None:
        return side == "right"
    right = _flag(name, "right", right)
    if side is not None and (side == "right") != right:
        _fail(f"{name}: side={side!r} and right={right} say opposite things; pass one")
    return right


def _as_index(name, out, out_int32):
    return F.cast(out, "int32") if _flag(name, "out_int32", out_int32) else out


def searchsorted(a, v, side=None, sorter=None, *, right=None, out_int32=False):
    """numpy's and jnp.searchsorted: where each value of v would go in the sorted a (its
    last axis), before equal elements (side='left', the default) or after them
    (side='right', torch's right=True). NaN sorts last, as numpy's sort. An N-d a is
    torch's batched search, one row of values per row of a; sorter: indices that sort a.
    int64 indices (out_int32=True: int32, as torch's); no gradient."""
    right = _side("searchsorted", side, right)
    return _as_index("searchsorted", _search("searchsorted", a, v, right, sorter), out_int32)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """torch.bucketize: the bucket of each value among the sorted 1-d `boundaries`, i with
    boundaries[i-1] < x <= boundaries[i] (right=True: boundaries[i-1] <= x <
    boundaries[i]); searchsorted(boundaries, input) with the sides swapped as torch's."""
    right = _flag("bucketize", "right", right)
    if isinstance(boundaries, (list, tuple)):
        boundaries = np.asarray(boundaries)
    if _ndim(boundaries) != 1:
        _fail(f"bucketize: boundaries must be 1-d, got {_ndim(boundaries)}-d")
    return _as_index("bucketize", _search("bucketize", boundaries, input, right), out_int32)


# ---- nonzero and its kin: argsort of the mask ------------------------------------------------
def _true_places(mask, size, fill=0):
    """(places, valid): the positions of the True elements of the 1-d bool `mask`, first to
    last, then `fill` up to `size` places (jnp.nonzero(mask, size=size)); valid marks the
    positions that are places. A stable argsort of the negated mask puts the True places
    first, in their order (of a known mask: np.flatnonzero's)."""
    n = _concrete(_shape(mask)[0], "nonzero")
    if F._runs_now(mask):  # (an index, no gradient: numpy's, a sixth of the argsort's time)
        places = np.flatnonzero(_known(mask))[:size]
        order, count = np.zeros(size, np.int64), len(places)
        order[:count] = places
    else:
        order = argsort(F.logical_not(mask), 0)
        if size <= n:
            order = _along(order, 0, 0, size)
        else:
            order = F.concat([order, F.zeros((size - n,), "int64")], 0)
        count = F.sum(F.cast(mask, "int64"))
    valid = F.less(F.arange(size), count)
    return F.where(valid, order, fill), valid


def _flat_mask(name, x):
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    for d in _shape(x):
        _concrete(d, name)
    return F.reshape(F.cast(x, "bool"), (-1,))


def nonzero(x, size=None, fill_value=None):
    """numpy's and jnp.nonzero: a tuple of index arrays, one per axis of x, of the non-zero
    elements (NaN too) in C order. In a trace `size` is required: places past the non-zero
    elements' own take `fill_value` (0; or one per axis, a tuple)."""
    if _ndim(x) == 0:
        _fail("nonzero: a 0-d value has no axis to index (numpy's and JAX's refuse it too); "
              "use argwhere or flatnonzero, or reshape it to 1-d")
    return _nonzero("nonzero", x, size, fill_value)


def _nonzero(name, x, size, fill_value):
    mask = _flat_mask(name, x)
    size = _result_size(name, size, x, np.count_nonzero)
    shape = tuple(int(d) for d in _shape(x))
    fills = fill_value if isinstance(fill_value, (tuple, list)) else (fill_value,) * len(shape)
    if len(fills) != len(shape):
        _fail(f"{name}: fill_value holds {len(fills)} values for a {len(shape)}-d value (one "
              "per axis, or one number)")
    fills = [_fill(name, f) for f in fills]
    places, valid = _true_places(mask, size)
    out, stride = [], math.prod(shape)
    for d, fill in zip(shape, fills):
        stride //= max(d, 1)
        index = F.remainder(F.floor_divide(places, max(stride, 1)), max(d, 1))
        out.append(F.where(valid, index, fill) if fill_value is not None else index)
    return tuple(out)


def flatnonzero(x, size=None, fill_value=None):
    """numpy's and jnp.flatnonzero: the positions of the non-zero elements of x flattened
    (a 0-d x as one element); size and fill_value as nonzero's."""
    return _nonzero("flatnonzero", F.reshape(x, (-1,)) if not isinstance(x, (list, tuple))
                    else np.ravel(x), size, fill_value)[0]


def argwhere(x, size=None, fill_value=None):
    """numpy's and jnp.argwhere: the non-zero elements' indices, one row each (shape
    (count, x.ndim); a 0-d x gives count rows of none, as numpy's); size and fill_value as
    nonzero's."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if _ndim(x) == 0:
        rows = _nonzero("argwhere", F.reshape(x, (1,)), size, fill_value)[0]
        return F.reshape(_along(F.reshape(rows, (-1, 1)), 1, 0, 0), (_shape(rows)[0], 0))
    return F.stack(list(_nonzero("argwhere", x, size, fill_value)), 1)


# ---- unique: a sort, then the first of each run of equal values ----------------------------
def _argsort_unstable_infer(types, axis):
    (t,) = types
    check(0 <= axis < t.ndim, f"axis {axis} out of range for a {t.ndim}-d operand")
    return TensorType(t.shape, np.dtype("int64"))


@defop("argsort_unstable", _argsort_unstable_infer, arity=1,
       flops=lambda types, out, **_: types[0].size)
def _argsort_unstable(x, axis):
    """np.argsort's default sort (not stable: equal elements in any order; NaN last), a
    quarter of the stable one's time on 1e6 floats: unique's one-column sort, which finds
    each run's first occurrence itself. An index: no gradient."""
    return np.argsort(x, axis=axis).astype(np.int64)


def _differs(a, b, equal_nan):
    """a != b elementwise, two NaNs equal where equal_nan (numpy's unique of a flat array)."""
    ne = F.not_equal(a, b)
    if equal_nan and is_float(_dtype(a)):
        ne = F.logical_and(ne, F.logical_not(F.logical_and(F.isnan(a), F.isnan(b))))
    return ne


def unique(x, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, size=None, fill_value=None):
    """numpy's and jnp.unique: the sorted distinct values of x (flattened; with `axis`, its
    distinct slices along that axis, sorted lexicographically), and with the flags the
    index of each one's first occurrence, the inverse (x's elements' places among them:
    x's shape for axis=None, as numpy 2's) and the counts. equal_nan: NaNs are one value
    (axis=None only, as numpy's). In a trace `size` is required: places past the distinct
    values' own take fill_value (default: the smallest value, as JAX's), their counts 0 and
    their index that of the smallest. The values' gradient goes to each first occurrence."""
    for what, flag in (("return_index", return_index), ("return_inverse", return_inverse),
                       ("return_counts", return_counts), ("equal_nan", equal_nan)):
        _flag("unique", what, flag)
    if fill_value is not None and (np.ndim(fill_value) or not (
            is_real(fill_value) or isinstance(fill_value, (bool, np.bool_)))):
        _fail(f"unique: fill_value must be one number, got {fill_value!r}")
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    shape = _shape(x)
    for d in shape:
        _concrete(d, "unique")
    if axis is None:
        rows = F.reshape(x, (-1, 1))
        moved = None
    else:
        if _ndim(x) == 0:
            _fail(f"unique: axis {axis} is out of range for a 0-d value (axis=None takes it "
                  "as one element)")
        axis = _axis(axis, _ndim(x), "unique: axis")
        moved = _shape(moveaxis(x, axis, 0))
        rows = F.reshape(moveaxis(x, axis, 0), (int(moved[0]), -1) if moved[0] else
                         (0, int(math.prod(moved[1:]))))
        equal_nan = False  # (numpy's unique of slices tells NaNs apart)
    n, k = (int(d) for d in _shape(rows))
    if n == 0:
        return _unique_of_nothing(x, moved, size, fill_value, return_index,
                                  return_inverse, return_counts, axis)
    if moved is None and not (return_index or return_inverse) and _no_derivative(x) and \
            _dtype(x).kind in "biuf":
        # the values and counts need the sorted values alone, not where each came from: a
        # plain sort, as np.unique's (a tenth of the stable argsort's time on 1e6 floats;
        # numpy's own dtypes: its sort of bfloat16 misplaces NaNs)
        ordered = F.reshape(_sorted_as_stably(_known(x).reshape(-1)), (n, 1))
        unstable = False
    elif k == 1 and (equal_nan or not is_float(_dtype(x))):
        # one column (axis=None's): any sort of it (a stable one took 4 times as long);
        # each run's first occurrence in x is found below, the smallest place in its run.
        # (NaNs told apart, equal_nan=False or an axis, are runs of one each whose order,
        # numpy's, is their places' in x: the unstable sort shuffled them, so the stable one)
        perm = apply("argsort_unstable", F.reshape(rows, (n,)), axis=0)
        ordered, unstable = F.take(rows, perm), True
    else:
        # rows sorted lexicographically: stable argsorts from the last column to the
        # first; perm is each sorted row's place in x (the index, the inverse, and the
        # values' gradient, which goes to each value's first occurrence)
        perm = F.arange(n)
        for j in reversed(range(k)):
            column = F.reshape(_along(rows, 1, j, j + 1), (n,))
            perm = F.take(perm, argsort(F.take(column, perm), 0))
        ordered, unstable = F.take(rows, perm), False
    later, earlier = _along(ordered, 0, 1, n), _along(ordered, 0, 0, n - 1)
    differs = _differs(later, earlier, equal_nan)
    # (one column, axis=None's, is its own any: any's sum over it took half the time)
    differs = F.reshape(differs, (n - 1,)) if k == 1 else F.any(differs, 1)
    starts = F.concat([F.full((1,), True, "bool"), differs], 0)
    size = _result_size("unique", size, starts, np.count_nonzero)
    first, valid = _true_places(starts, size)  # (fill 0: the smallest value's place)
    if unstable:
        # the first occurrence of each run of an unstable sort: its smallest place in x
        # (scatter_max of -place per run), so that the index and the values' gradient
        # are the first occurrence's, as a stable sort gave them
        from .scatter_reduce import scatter_max
        group = F.sub(F.cumsum(F.cast(starts, "int64")), np.int64(1))
        earliest = F.neg(scatter_max(F.neg(perm), group, n))
        slots = F.where(valid, F.arange(size, dtype="int64"), np.int64(0))
        places = F.take(earliest, slots)
        values, first_place = F.take(rows, places), places
    else:
        values = F.take(ordered, first)
        first_place = None
    if fill_value is not None:
        values = _filled(values, valid, fill_value)
    if moved is None:
        values = F.reshape(values, (size,))
    else:
        values = moveaxis(F.reshape(values, (size,) + tuple(moved[1:])), 0, axis)
    out = [values]
    if return_index:
        out.append(first_place if first_place is not None else F.take(perm, first))
    if return_inverse:
        group = F.sub(F.cumsum(starts), 1)  # each sorted row's group
        inverse = F.scatter_add(group, perm, n)  # (perm is a permutation: each row once)
        out.append(F.reshape(inverse, shape) if moved is None else inverse)
    if return_counts:
        bounds, _ = _true_places(starts, size + 1, n)  # each group's start, then n
        out.append(F.sub(_along(bounds, 0, 1, size + 1), _along(bounds, 0, 0, size)))
    return out[0] if len(out) == 1 else tuple(out)


def _sorted_as_stably(flat):
    """np.sort of the known 1-d `flat`, the same array a stable sort gives: of equal floats
    whose bits differ (0.0 and -0.0; NaNs' signs and payloads, one run at the end) those
    of each run are put back in flat's order, so that each distinct value is its first
    occurrence's, as the stable path's."""
    out = np.sort(flat)
    if is_float(flat.dtype):
        # (the numbers in out's dtype: a Python one made numpy cast all of out to float64)
        zero, nan = np.zeros(1, out.dtype), np.full(1, np.nan, out.dtype)
        low, high = np.searchsorted(out, zero, "left")[0], np.searchsorted(out, zero, "right")[0]
        nans = np.searchsorted(out, nan)[0]  # (NaN sorts last, where searchsorted finds it)
        if high > low:
            out[low:high] = flat[flat == 0]
        if nans < len(out):
            out[nans:] = flat[np.isnan(flat)]
    return out


def _unique_of_nothing(x, moved, size, fill_value, return_index, return_inverse,
                       return_counts, axis):
    """unique of an empty x: no values (size of them, fill_value's or 0's, with a size)."""
    size = _result_size("unique", size, x, lambda known: 0)
    tail = () if moved is None else tuple(int(d) for d in moved[1:])
    values = F.full((size,) + tail, 0 if fill_value is None else fill_value, _dtype(x))
    if moved is not None:
        values = moveaxis(values, 0, axis)
    out = [values]
    if return_index:
        out.append(F.zeros((size,), "int64"))
    if return_inverse:
        out.append(F.zeros(_shape(x) if moved is None else (0,), "int64"))
    if return_counts:
        out.append(F.zeros((size,), "int64"))
    return out[0] if len(out) == 1 else tuple(out)


# ---- bincount: scatter_add of the weights ----------------------------------------------------
def bincount(x, weights=None, minlength=0, *, length=None):
    """numpy's and jnp.bincount: out[i] counts the elements of the non-negative integer 1-d
    x equal to i (with weights: sums their weights, in the weights' dtype as JAX's; numpy's
    is float64; bool weights count their True elements, int64, as no weights count all).
    Its length is `length` where given, else max(x) + 1 or minlength if more;
    in a trace length is required (JAX's rule). A value outside [0, length) is an error
    (JAX drops it; numpy has no length). The gradient flows to the weights (a
    scatter_add, as segment_sum's)."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, np.int64) if len(x) == 0 else np.asarray(x)
    if _dtype(x).kind not in "biu":
        _fail(f"bincount: x must hold non-negative integers, got {_dtype(x)}")
    if _ndim(x) != 1:
        _fail(f"bincount: x must be 1-d, got {_ndim(x)}-d")
    minlength = _count(minlength, "bincount: minlength")
    if length is not None:
        length = _count(length, "bincount: length")
    elif _traced(x):
        _fail("bincount: the result's length depends on x's values, unknown in a trace "
              "(compile, grad, vmap): pass length= (JAX's rule)")
    else:
        known = _known(x)
        if known.size and known.min() < 0:
            _fail(f"bincount: x must hold non-negative integers, got {known.min()}")
        length = max(minlength, int(known.max()) + 1 if known.size else 0)
    if weights is None:
        weights = F.ones_like(F.cast(x, "int64"))
    else:
        if isinstance(weights, (list, tuple)):
            weights = np.asarray(weights)
        if _shape(weights) != _shape(x):
            _fail(f"bincount: weights of shape {_shape(weights)} do not match x's "
                  f"{_shape(x)}")
        if _dtype(weights) == np.bool_:
            weights = F.cast(weights, "int64")
    if _dtype(x) == np.bool_:
        x = F.cast(x, "int64")
    return _segment_sum(weights, x, length, "bincount", "value")


# ---- batching rule of searchsorted -----------------------------------------------------------
def _register_batching():
    from .batching import batch_all, defbatch

    @defbatch("argsort_unstable")
    def _argsort_unstable_rule(args, batched, size, axis):
        return apply("argsort_unstable", args[0], axis=axis + 1)

    @defbatch("searchsorted")
    def _searchsorted_rule(args, batched, size, right=False):
        # the batch is one more leading axis: each example's rows searched in its own a
        return apply("searchsorted", *batch_all(args, batched, size), right=right)


_register_batching()
