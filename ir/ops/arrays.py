"""numpy's array functions that models reach for beyond the core API: padding, flips and
rolls, repeats, products, gathers along an axis, sorting, norms, small linear algebra
helpers. Each one follows numpy's (or jax.numpy's) signature and result.

All but `argsort` are built from the primitive ops (slices, concat, take, matmul, where...),
so their gradients, batching rules and lowerings are those ops'; `argsort` is a primitive of
its own (an index: no gradient), and `sort` and `top_k` gather with it, so their gradients
flow to the elements they picked. Shapes must be concrete where an index array is built from
them (flip, roll, take_along_axis, sort): a symbolic dimension there is refused with one line.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ..errors import GraphcError
from ..types import Dim, TensorType, as_dtype, is_complex, is_float, is_half, is_int, is_real
from . import api as F
from .api import (NO_DIM, _axis, _count, _dtype, _fail, _flag, _ndim, _rounded_once, _shape,
                  _whole)
from .index import index_problem
from .registry import (SymbolicValue, apply, check, defop, is_weak_scalar, refuse_array_container,
                       refuse_operand, scalar_dtype)

__all__ = ["pad", "flip", "roll", "tile", "repeat", "moveaxis", "prod", "cumprod",
           "take_along_axis", "outer", "dot", "tensordot", "norm", "linspace", "nan_to_num",
           "diag", "meshgrid", "argsort", "sort", "top_k", "segment_sum"]


def _concrete(size, what):
    if isinstance(size, Dim):
        _fail(f"{what}: needs a concrete size along the axis, got the symbolic {size}")
    return int(size)


def _seq(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _axis_set(axis, nd, name):
    """The sorted axes of an int or a tuple (None: every axis); a repeated one is an error,
    as numpy's (flip((0, 0)) is not one flip)."""
    if axis is None:
        return tuple(range(nd))
    axes = [_axis(a, nd, f"{name}: axis") for a in _seq(axis)]
    if len(set(axes)) != len(axes):
        _fail(f"{name}: axis {axis} repeats an axis")
    return tuple(sorted(axes))


def _along(x, axis, start, stop):
    """x[..., start:stop, ...] on `axis`."""
    shape = _shape(x)
    starts, stops = [0] * len(shape), list(shape)
    starts[axis], stops[axis] = start, stop
    return F.slice_(x, starts, stops, [1] * len(shape))


# ---- moving, flipping, rolling, repeating ----------------------------------------------------
def moveaxis(x, source, destination):
    """numpy's moveaxis: the axes `source` moved to positions `destination`, the others in
    their order."""
    nd = _ndim(x)
    src = [_axis(a, nd, "moveaxis: source axis") for a in _seq(source)]
    dst = [_axis(a, nd, "moveaxis: destination axis") for a in _seq(destination)]
    if len(src) != len(dst):
        _fail(f"moveaxis: {len(src)} source axes but {len(dst)} destination axes")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        _fail("moveaxis: an axis is repeated")
    order = [a for a in range(nd) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return F.transpose(x, order)


def flip(x, axis=None):
    """numpy's flip: the elements in reverse order along `axis` (an int, a tuple, or None:
    every axis), one axis at a time by reverse_axis."""
    nd, flipped = _ndim(x), x
    axes = _axis_set(axis, nd, "flip")
    for a in axes:
        _concrete(_shape(x)[a], "flip")
        flipped = F.reverse_axis(flipped, a)
    return F._unchanged(x) if flipped is x else flipped


def roll(x, shift, axis=None):
    """numpy's roll: elements shifted by `shift` along `axis`, those past the end coming back
    at the start; axis=None rolls the flattened array and restores the shape."""
    if axis is None:
        return F.reshape(roll(F.reshape(x, (-1,)), sum(_seq(shift)), 0), _shape(x))
    shifts, axes = _seq(shift), _seq(axis)
    if len(shifts) != len(axes):
        if len(shifts) == 1:
            shifts = shifts * len(axes)
        else:
            _fail(f"roll: {len(shifts)} shifts for {len(axes)} axes")
    rolled = x
    for s, a in zip(shifts, axes):
        a = _axis(a, _ndim(x), "roll: axis")
        n = _concrete(_shape(x)[a], "roll")
        s = _whole(s, "roll: a shift") % n if n else 0
        if s:
            rolled = F.concat([_along(rolled, a, n - s, n), _along(rolled, a, 0, n - s)], a)
    return F._unchanged(x) if rolled is x else rolled


def tile(x, reps):
    """numpy's tile: x repeated reps[i] times along axis i (x is first given leading axes of
    one to match, or reps leading ones)."""
    given = np.asarray(reps)
    if (given.size and given.dtype.kind not in "iu") or given.ndim > 1:  # int(1.5): once
        _fail(f"tile: reps must be an int or a sequence of ints, got {reps!r}")
    reps = tuple(int(r) for r in given.reshape(-1))
    if builtins.any(r < 0 for r in reps):
        _fail(f"tile: repetitions must be non-negative, got {reps}")
    shape = _shape(x)
    nd = builtins.max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    reps = (1,) * (nd - len(reps)) + reps
    # each axis gets a repetition axis before it: (r0, d0, r1, d1, ...), then merged
    spread = F.reshape(x, tuple(d for s in shape for d in (1, s)))
    wide = F.broadcast_to(spread, tuple(d for r, s in zip(reps, shape) for d in (r, s)))
    # eagerly the reshape of a broadcast may be a view of x: a copy of its own, as numpy's
    return F._unchanged(F.reshape(wide, tuple(r * s for r, s in zip(reps, shape))))


def repeat(x, repeats, axis=None):
    """numpy's repeat with one count for every element: each element `repeats` times in a
    row along `axis` (None: of the flattened array). torch's repeat_interleave."""
    if not is_int(repeats):
        _fail("repeat: `repeats` must be an int (one count for every element; per-element "
              "counts give a data-dependent shape)")
    if repeats < 0:
        _fail(f"repeat: `repeats` must be non-negative, got {repeats}")
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    axis = _axis(axis, _ndim(x), "repeat: axis")
    shape = _shape(x)
    if repeats == 1:  # a copy of its own eagerly, as numpy's
        return F._unchanged(x)
    spread = F.expand_dims(x, axis + 1)
    wide = F.broadcast_to(spread, shape[:axis + 1] + (int(repeats),) + shape[axis + 1:])
    return F.reshape(wide, shape[:axis] + (shape[axis] * int(repeats),) + shape[axis + 1:])


# ---- products -------------------------------------------------------------------------------
def prod(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """numpy's prod (torch's with `dim=`, `keepdim=`). A tree of pairwise products (log2 of
    the axis' length multiplications), so its gradient is exact where an element is zero,
    which x / prod's is not."""
    _flag("prod", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:
        axis, keepdims = F._torch_axes("prod", axis, keepdims, dim, keepdim)
    nd = _ndim(x)
    if _dtype(x) == np.bool_:
        x = F.cast(x, "int64")
    axes = _axis_set(axis, nd, "prod")
    out = x
    for a in axes:
        n = _concrete(_shape(out)[a], "prod")
        if n == 0:
            # the empty product, built from `out` so that the eager tape reaches x (a
            # zeros_like of it would not: backward() found no tensor needing a gradient)
            out = F.add(F.sum(F.mul(out, 0), a, keepdims=True), 1)
            continue
        while n > 1:
            half = n // 2
            pairs = F.mul(_along(out, a, 0, half), _along(out, a, half, 2 * half))
            out = F.concat([pairs, _along(out, a, 2 * half, n)], a) if n % 2 else pairs
            n = half + n % 2
    if not keepdims:
        out = F.reshape(out, tuple(d for i, d in enumerate(_shape(out)) if i not in axes))
    return F._unchanged(out) if out is x else out


def cumprod(x, axis=None):
    """numpy's cumprod: running products along `axis` (None: of the flattened array). A
    doubling scan (each step multiplies by the value 2**k places back), so its gradient is
    exact where an element is zero."""
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    axis = _axis(axis, _ndim(x), "cumprod: axis")
    n = _concrete(_shape(x)[axis], "cumprod")
    if is_half(_dtype(x)) and n > 1:  # in float32, rounded once, as torch's: the scan's
        # log2(n) half products drifted 10-15 ulps
        return _rounded_once(cumprod, x, axis)
    if _dtype(x) == np.bool_:
        x = F.cast(x, "int64")
    step = 1
    while step < n:
        ones = F.ones_like(_along(x, axis, 0, step))
        x = F.mul(x, F.concat([ones, _along(x, axis, 0, n - step)], axis))
        step *= 2
    return F._unchanged(x) if n <= 1 else x


def outer(a, b):
    """numpy's outer: a and b flattened, a[i] * b[j]."""
    return F.mul(F.reshape(a, (-1, 1)), F.reshape(b, (1, -1)))


_TRACED_AXES = ("tensordot: axes must be known while the graph is built (ints or axis "
                "sequences), not a traced value")


def _one_line(value):
    return " ".join(repr(value).split())  # (an array's repr spans lines)


def _tensordot_part(part, nd):
    """One half of tensordot's axes pair as numpy reads it: len() and list() of a sequence
    (a tuple, a list, a 1-d array, a range, a set), else the part itself as one axis (an
    int). A traced part or axis is one line (a Python number argument: static_argnums); so
    is an axis that is no int (numpy's set() refuses a 0-d array there too)."""
    if isinstance(part, SymbolicValue):
        part._no_value(_TRACED_AXES)
    try:
        len(part)
        items = list(part)
    except (TypeError, GraphcError):  # (a 0-d eager tensor's len() is a GraphcError)
        items = [part]
    axes = []
    for i in items:
        if isinstance(i, SymbolicValue):
            i._no_value(_TRACED_AXES)
        axes.append(_axis(i, nd, "tensordot: axis"))
    return axes


def tensordot(a, b, axes=2):
    """numpy's tensordot: the sum over a's last `axes` axes and b's first ones (an int), or
    over the given pairs (two sequences of axes). One matrix product."""
    na, nb = _ndim(a), _ndim(b)
    if not is_int(axes):
        if isinstance(axes, SymbolicValue):  # (its len() was the line, naming no tensordot)
            axes._no_value(_TRACED_AXES)
        if isinstance(axes, np.ndarray) and axes.ndim == 0 and axes.dtype.kind in "iu":
            axes = int(axes)  # the count, as numpy's, whose iter() refuses a 0-d array
    if is_int(axes):
        if not 0 <= axes <= builtins.min(na, nb):
            _fail(f"tensordot: axes={axes} for operands of {na} and {nb} dimensions")
        a_axes, b_axes = list(range(na - axes, na)), list(range(axes))
    else:
        # unpacked as numpy unpacks it: any iterable of two. len() then axes[0] and axes[1]
        # failed raw on a set (not subscriptable) and read a dict's values where numpy
        # reads its keys, a silently different contraction (review r1); each half as numpy
        # reads it too (an array, a range, a (2, k) array's rows: review r7)
        try:
            a_part, b_part = axes
            pair = True
        except (TypeError, ValueError):  # not iterable (a bool, as elsewhere no axis count;
            pair = False                 # a float, a timedelta64), or not of two
        if not pair:
            _fail(f"tensordot: axes must be an int or a pair of axis sequences, got "
                  f"{_one_line(axes)}")
        a_axes, b_axes = _tensordot_part(a_part, na), _tensordot_part(b_part, nb)
        if len(a_axes) != len(b_axes):
            _fail(f"tensordot: {len(a_axes)} axes of a against {len(b_axes)} of b")
        if len(set(a_axes)) != len(a_axes) or len(set(b_axes)) != len(b_axes):
            _fail(f"tensordot: axes {_one_line(axes)} repeat an axis")
    sa, sb = _shape(a), _shape(b)
    for i, j in zip(a_axes, b_axes):
        if sa[i] != sb[j]:
            _fail(f"tensordot: a's axis {i} has size {sa[i]}, b's axis {j} has {sb[j]}")
    a_free = [i for i in range(na) if i not in a_axes]
    b_free = [j for j in range(nb) if j not in b_axes]
    k = math.prod(sa[i] for i in a_axes)
    left = F.reshape(F.transpose(a, a_free + a_axes), (math.prod(sa[i] for i in a_free), k))
    right = F.reshape(F.transpose(b, b_axes + b_free), (k, math.prod(sb[j] for j in b_free)))
    return F.reshape(F.matmul(left, right),
                     tuple(sa[i] for i in a_free) + tuple(sb[j] for j in b_free))


def dot(a, b):
    """numpy's dot: a scalar product scales, 1-d and 2-d operands multiply as matmul does,
    and an N-d a contracts its last axis with b's second to last (tensordot)."""
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return F.mul(a, b)
    if na <= 2 and nb <= 2:
        return F.matmul(a, b)
    return tensordot(a, b, ((na - 1,), (builtins.max(nb - 2, 0),)))


# ---- gathers along an axis ------------------------------------------------------------------
def take_along_axis(x, indices, axis):
    """numpy's take_along_axis: out[..., i, ...] = x[..., indices[..., i, ...], ...] along
    `axis` (None: of the flattened x, with 1-d indices); `indices` has x's number of
    dimensions and broadcasts with x on the other axes.
    Negative indices count from the end; one out of range is an error, as numpy's (known
    indices while tracing, the others when the gather runs). One gather from the flattened
    x, so the gradient adds into the elements picked (repeated picks accumulate)."""
    return _take_along(x, indices, axis, in_range=False)


def _take_along(x, indices, axis, in_range, name="take_along_axis"):
    """take_along_axis; in_range: the indices are known to lie in [0, n) (argsort's); name:
    the function the user called, for the messages."""
    if isinstance(indices, (list, tuple)):  # (a ragged one was numpy's ValueError in _dtype)
        refuse_array_container(indices, name)
        refuse_operand(indices, name)
    indices = F._index_operand(indices, name)  # (numpy's other integer dtypes widened: uint8 was
    # 'dtype uint8 is not supported', numpy takes it)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    if _dtype(indices).kind not in "iu":
        _fail(f"take_along_axis: indices must be integers, got {_dtype(indices)}")
    nd = _ndim(x)
    if _ndim(indices) != nd:
        _fail(f"take_along_axis: indices have {_ndim(indices)} dimensions, x has {nd}")
    axis = _axis(axis, nd, f"{name}: axis")
    xs, ids = _shape(x), _shape(indices)
    shape = []
    for i, (d, e) in enumerate(zip(xs, ids)):
        if i == axis:
            shape.append(e)
        elif d == e or e == 1 or d == 1:
            shape.append(d if e == 1 else e)
        else:
            _fail(f"take_along_axis: indices of shape {tuple(ids)} do not broadcast with x "
                  f"of shape {tuple(xs)} off axis {axis}")
    n = _concrete(xs[axis], name)
    if not isinstance(indices, SymbolicValue):
        known = np.asarray(indices)
        if known.size and (known.min() < -n or known.max() >= n):
            bad = known.min() if known.min() < -n else known.max()
            _fail(f"take_along_axis: index {bad} is out of range for axis {axis} of size {n}")
        in_range = in_range or not (known < 0).any()
    elif not in_range:
        # the flat index of an index out of range would be an element of the next row:
        # refused where the plan runs, in numpy's words for the user's axis (a sentinel
        # far outside the flat table was refused as 'take(f64[18], ...)', or under vmap
        # as 'index -4611686018427387904 is out of bounds for axis 0 with size 6')
        indices = F.check_index(indices, n, axis)
    x = F.broadcast_to(x, tuple(n if i == axis else s for i, s in enumerate(shape)))
    indices = F.broadcast_to(F.cast(indices, "int64"), tuple(shape))
    if not in_range:
        indices = F.where(F.less(indices, 0), F.add(indices, n), indices)
    # the axis last and the others as rows: row r's k-th pick is element r * n + index of
    # the flattened x (the rows may be symbolic: a batch)
    rows = moveaxis(x, axis, -1)
    picks = moveaxis(indices, axis, -1)
    count = _shape(picks)[-1]
    if count == 0:  # nothing picked (reshaping to (-1, 0) would be ambiguous)
        return _along(x, axis, 0, 0)
    flat_picks = F.reshape(picks, (-1, count))
    starts = F.mul(F.arange(_shape(flat_picks)[0]), np.int64(n))
    flat = F.add(flat_picks, F.reshape(starts, (-1, 1)))
    out = F.reshape(F.take(F.reshape(rows, (-1,)), flat), _shape(picks))
    return moveaxis(out, -1, axis)


def segment_sum(data, segment_ids, num_segments=None):
    """jax.ops.segment_sum: row i of the result sums the rows of `data` whose segment id is
    i. An id outside [0, num_segments) is an error (JAX drops its row): -1 is no segment,
    not scatter_add's last row. num_segments: needed while tracing, else max(ids) + 1."""
    return _segment_sum(data, segment_ids, num_segments, "segment_sum")


def _segment_sum(data, segment_ids, num_segments, name, what="segment id"):
    """segment_sum, its refusals naming the function `name` the user called and an id as
    `what` (bincount's values)."""
    segment_ids, num_segments = _checked_segment_ids(name, segment_ids, num_segments, what)
    return F.scatter_add(data, segment_ids, num_segments)


def _checked_segment_ids(name, segment_ids, num_segments, what="segment id", axis=0):
    """(segment_ids as an index operand, num_segments as a count) for function `name`: a
    known id outside [0, num_segments) refused now, a traced one where the plan runs (the
    message naming `axis`, the user's dim);
    num_segments=None is max(ids) + 1 of known ids (JAX's), refused for traced ones."""
    # (a list read once: a ragged one refused)
    segment_ids = F._index_operand(segment_ids, name)
    traced = isinstance(segment_ids, SymbolicValue)
    if num_segments is None:
        if traced:
            _fail(f"{name}: num_segments is needed while tracing (the ids are not known)")
        known = np.asarray(segment_ids)
        num_segments = int(known.max()) + 1 if known.size and known.dtype.kind in "iu" else 0
    # (a negative count was 'segment id 1 is outside [0, -1)')
    num_segments = _count(num_segments, f"{name}: num_segments")
    if not traced:
        known = np.asarray(segment_ids)
        problem = index_problem(known, num_segments, axis, negative=False, who=name,
                                what=what) if known.dtype.kind in "iu" else None
        if problem is not None:  # (check_index's words, as a traced one's below)
            _fail(problem)
    elif _dtype(segment_ids).kind in "iu":
        # scatter_add counts a negative index from the end: refused where the plan runs,
        # with its value (sent one past the end, -1 was refused as 'index 3' under vmap)
        segment_ids = F.check_index(segment_ids, num_segments, axis, negative=False,
                                    who=name, what=what)
    return segment_ids, num_segments


# ---- sorting ----------------------------------------------------------------------------------
def _argsort_infer(types, axis, descending):
    (t,) = types
    check(0 <= axis < t.ndim, f"axis {axis} out of range for a {t.ndim}-d operand")
    return TensorType(t.shape, np.dtype("int64"))


@defop("argsort", _argsort_infer, arity=1,
       flops=lambda types, out, **_: types[0].size)
def _argsort(x, axis, descending):
    """Stable: equal elements keep their order (descending too: the first of equals first,
    as jax.lax.top_k). NaN sorts last ascending and first descending, as numpy's order
    reversed."""
    if descending:
        n = x.shape[axis]
        # reversed, sorted stably, reversed again: the first of equal elements stays first
        rev = np.flip(x, axis)
        order = np.flip(np.argsort(rev, axis=axis, kind="stable"), axis)
        return (n - 1 - order).astype(np.int64)
    return np.argsort(x, axis=axis, kind="stable").astype(np.int64)


def argsort(x, axis=-1, descending=False):
    """numpy's argsort (stable, as kind="stable"), or from the largest with descending=True
    (the first of equal elements first); axis=None: of the flattened x, as numpy's (and
    sort's). A 0-d x is sorted as 1 element, as numpy's: [0], for axis -1, 0 or None. An
    index: no gradient."""
    _flag("argsort", "descending", descending)  # (bool('no') was True: from the largest)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    if _ndim(x) == 0:  # (a 0-d 0 before, where np.argsort(np.float32(3)) is [0])
        if is_int(axis) and not -1 <= axis <= 0:
            _fail(f"argsort: axis {axis} is out of range for a 0-d value, which argsort "
                  "sorts as 1 element (axis -1, 0 or None), as numpy's")
        x = F.reshape(x, (1,))
    axis = _axis(axis, _ndim(x), "argsort: axis")
    return apply("argsort", x, axis=axis, descending=bool(descending))


def sort(x, axis=-1, descending=False):
    """numpy's sort along `axis` (descending=True: from the largest; axis=None: of the
    flattened x, the one axis a 0-d x takes, as numpy's). Its gradient goes to the element
    that landed in each place."""
    _flag("sort", "descending", descending)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    if _ndim(x) == 0:
        # numpy's and jnp.sort refuse every axis of a 0-d value, -1 (the default) and 0 too
        # (_axis takes 0, as a reduction's); axis=None sorts it as one element
        if not is_int(axis):
            _axis(axis, 0, "sort: axis")  # (its line for an axis that is no int)
        _fail(f"sort: axis {axis} is out of range for a 0-d value; axis=None sorts it as "
              "a 1-element array, as numpy's")
    axis = _axis(axis, _ndim(x), "sort: axis")
    return _take_along(x, argsort(x, axis, descending), axis, in_range=True, name="sort")


def top_k(x, k):
    """jax.lax.top_k: (values, indices) of the k largest elements along the last axis, the
    largest first (NaN as the largest), the first of equal elements first. torch.topk(x, k)
    gives the same values; its order among equal ones is its own."""
    if _ndim(x) == 0:
        _fail("top_k: needs a value with at least one axis, got a 0-d one")
    n = _concrete(_shape(x)[-1], "top_k")
    if not is_int(k) or not 0 <= k <= n:
        _fail(f"top_k: k must be an int from 0 to the last axis' size {n}, got {k!r}")
    order = argsort(x, -1, descending=True)
    idx = _along(order, _ndim(x) - 1, 0, int(k))
    return _take_along(x, idx, -1, in_range=True), idx


# ---- norms and small helpers ------------------------------------------------------------------
def norm(x, ord=None, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None, p=None):
    """numpy.linalg.norm / torch.linalg.norm for vectors: ord None or 2 (Euclidean), 1, inf,
    -inf, 0 (non-zero count) or any other p (negative too: 0 for a vector with a zero), over `axis` (torch's `dim`; None: every element,
    as a vector); and the matrix Frobenius norm, ord="fro" over two axes. torch.norm's `p`
    in ord's place is the vector norm over every dim given ("fro": the Euclidean). The
    gradient at a zero vector (and a p-norm's at a zero element) is 0, as PyTorch's (pow's
    alone would be NaN there)."""
    _flag("norm", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:
        axis, keepdims = F._torch_axes("norm", axis, keepdims, dim, keepdim)
    if p is not None:
        if ord is not None:
            _fail("norm: both ord= (numpy's) and p= (torch's) given; pass one")
        ord = None if isinstance(p, str) and p == "fro" else p
    nd = _ndim(x)
    axes = _axis_set(axis, nd, "norm")
    number = is_real(ord)
    if not (ord is None or number or ord == "fro" or (len(axes) > 1 and ord == "nuc")):
        _fail(f"norm: unsupported ord {ord!r}")
    if is_half(_dtype(x)):  # in float32, rounded once, as torch's: half squares overflow
        return _rounded_once(norm, x, ord, axis, keepdims)
    if ord == "fro":
        if len(axes) != 2:
            _fail(f"norm: ord='fro' needs two axes, got {len(axes)}")
        ord = 2
    elif len(axes) > 1 and ord is not None and not (p is not None and number):
        # numpy and torch take ord over two axes (or axis=None of a 2-d value) as a matrix
        # norm (ord=1: the largest column sum), not the vector norm of every element
        _fail(f"norm: ord={ord!r} over several axes; only the Euclidean (None) and 'fro' "
              "norms are supported for matrices (reshape to 1-d for a vector norm)")
    if not is_float(_dtype(x)):
        x = F.cast(x, "float32")
    a = F.abs(x)
    if ord is None or ord == 2:
        s = F.sum(F.square(x), axes, keepdims)
        positive = F.not_equal(s, 0)  # not greater: a NaN sum must give NaN, not 0
        # the second where keeps sqrt's infinite slope at 0 out of the gradient
        return F.where(positive, F.sqrt(F.where(positive, s, F.ones_like(s))),
                       F.zeros_like(s))
    if ord == np.inf:
        return F.max(a, axes, keepdims)
    if ord < 0 and any(_shape(x)[i] == 0 for i in axes):
        # no identity to start from: torch refuses too (min's own message named min)
        _fail(f"norm: ord={ord} of an empty vector has no value (a negative order needs an "
              "element)")
    if ord == -np.inf:
        return F.min(a, axes, keepdims)
    if ord == 0:
        # 1 per non-zero element (NaN too), as a float op of x with a zero gradient (sign's;
        # abs of it keeps a -0.0 out of the sum): eagerly, backward() through it works, as
        # through torch's, where a count cast from a mask would not depend on x
        return F.sum(F.where(F.not_equal(x, 0), 1.0, F.abs(F.sign(x))), axes, keepdims)
    if ord == 1:
        return F.sum(a, axes, keepdims)
    if ord < 0:
        # torch.linalg.vector_norm's sum(|x|**p)**(1/p): a zero element makes the sum
        # infinite and the norm 0, with a zero gradient (pow's own there is inf * 0 = NaN);
        # such a vector's elements replaced by 1 keep its pows finite and the where picks
        # its 0. A NaN min is not 0: NaN stays NaN, as torch's
        has_zero = F.equal(F.min(a, axes, True), 0)
        safe = F.where(has_zero, F.ones_like(a), a)
        s = F.sum(F.pow(safe, float(ord)), axes, True)
        out = F.where(has_zero, F.zeros_like(s), F.pow(s, 1.0 / ord))
        return out if keepdims else F.squeeze(out, axes)
    return _pow_zero_flat(F.sum(_pow_zero_flat(a, float(ord)), axes, keepdims), 1.0 / ord)


def _pow_zero_flat(v, exponent):
    """v ** exponent (v >= 0, or NaN) with the gradient 0 at v = 0, as PyTorch's p-norms:
    pow's own there is inf (an exponent below 1), then NaN once multiplied by 0."""
    nonzero = F.not_equal(v, 0)
    return F.where(nonzero, F.pow(F.where(nonzero, v, F.ones_like(v)), exponent),
                   F.zeros_like(v))


def linspace(start, stop, num=50, endpoint=True, dtype="float32"):
    """numpy's linspace: `num` evenly spaced values from start to stop (stop included unless
    endpoint=False), a constant of `dtype` (float32 by default, as graphc's other creators)."""
    if not is_int(num) or num < 0:
        _fail(f"linspace: num must be a non-negative int, got {num!r}")
    endpoint = _flag("linspace", "endpoint", endpoint)  # (numpy's reads its truth)
    for name, value in (("start", start), ("stop", stop)):
        if is_complex(value):  # numpy's linspace would drop the imaginary part
            _fail(f"linspace: {name} must be a real number, got {value!r}")
    # numpy's own dtype= rounds integers towards -inf; astype would truncate towards 0
    return _constant(np.linspace(start, stop, int(num), endpoint, dtype=as_dtype(dtype)))


def _constant(value):
    """A constant array: a node of the graph being built, or the array itself."""
    return F.add(F.zeros(value.shape, value.dtype), value)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """numpy's nan_to_num: NaN -> nan, +Inf -> posinf (default: the dtype's largest),
    -Inf -> neginf (default: its most negative). Integers pass through."""
    dtype = _dtype(x)
    if not is_float(dtype):
        return F._unchanged(x)
    if is_weak_scalar(x):
        # a float number is lifted as a weak float alone is (float32): float64's largest
        # overflowed that cast to inf ("overflow encountered in cast"), inf kept
        dtype = scalar_dtype(x, None, "nan_to_num")
    info = F.finfo(dtype)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    for name, value in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if np.ndim(value) or not is_real(value):
            _fail(f"nan_to_num: {name} must be one number, got {value!r}")
    x = F.where(F.isnan(x), float(nan), x)
    x = F.where(F.equal(x, np.inf), float(posinf), x)
    return F.where(F.equal(x, -np.inf), float(neginf), x)


def diag(x, k=0):
    """numpy's diag: a 1-d x becomes the matrix with x on its k-th diagonal; of a 2-d x, its
    k-th diagonal."""
    if not is_int(k):
        _fail(f"diag: k must be an int, got {k!r}")
    k = int(k)
    nd = _ndim(x)
    if nd == 1:
        n = _concrete(_shape(x)[0], "diag")
        size = n + builtins.abs(k)
        positions = (np.arange(n) + builtins.max(-k, 0)) * size + np.arange(n) \
            + builtins.max(k, 0)
        return F.reshape(F.scatter_add(x, positions, size * size), (size, size))
    if nd != 2:
        _fail(f"diag: needs a 1-d or 2-d value, got {nd}-d")
    rows, cols = (_concrete(d, "diag") for d in _shape(x))
    first_row, first_col = builtins.max(-k, 0), builtins.max(k, 0)
    length = builtins.max(0, builtins.min(rows - first_row, cols - first_col))
    if length == 0:
        return F.reshape(_along(F.reshape(x, (-1,)), 0, 0, 0), (0,))
    positions = (np.arange(length) + first_row) * cols + np.arange(length) + first_col
    return F.take(F.reshape(x, (-1,)), positions)


def meshgrid(*xs, indexing="xy"):
    """numpy's meshgrid of 1-d values: one array per input, each broadcast over the others'
    axes ("xy": the first two axes swapped, as numpy's default; "ij": in order)."""
    if indexing not in ("xy", "ij"):
        _fail(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    for x in xs:
        if _ndim(x) != 1:
            _fail(f"meshgrid: needs 1-d values, got a {_ndim(x)}-d one")
    sizes = [_shape(x)[0] for x in xs]
    if indexing == "xy" and len(xs) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, x in enumerate(xs):
        at = i if indexing == "ij" or len(xs) < 2 or i > 1 else 1 - i
        shape = tuple(-1 if j == at else 1 for j in range(len(xs)))
        # eagerly a copy of its own, as numpy's (copy=True), not a read-only view of x
        out.append(F._unchanged(F.broadcast_to(F.reshape(x, shape), tuple(sizes))))
    return out


def pad(x, pad_width, mode="constant", constant_values=0):
    """numpy's pad: pad_width is an int, a (before, after) pair, or one pair per axis; mode
    "constant" (constant_values), "edge", "reflect", "symmetric" or "wrap" (torch's
    replicate, reflect and circular)."""
    nd = _ndim(x)
    widths = _pad_widths(pad_width, nd)
    # a bool is a value too, cast to x's dtype (True pads a float x with 1.0), as numpy's
    # and torch's F.pad(x, pad, value=True), on a bool x as on any other
    if np.ndim(constant_values) or not (is_real(constant_values) or
                                        isinstance(constant_values, (bool, np.bool_))):
        _fail(f"pad: constant_values must be one number, got {constant_values!r}")
    if mode not in ("constant", "edge", "reflect", "symmetric", "wrap"):
        _fail(f"pad: unsupported mode {mode!r}; use constant, edge, reflect, symmetric or wrap")
    for axis, (before, after) in enumerate(widths):
        if not before and not after:
            continue
        n = _shape(x)[axis]
        if mode == "constant":
            x = _pad_constant(x, axis, before, after, constant_values)
            continue
        n = _concrete(n, "pad")
        if n == 0:  # (numpy's reflect of one element repeats it, as edge)
            _fail(f"pad: mode {mode!r} needs an element along axis {axis} to pad from, it "
                  "has none")
        # which element each output position reads: numpy's own pad of the positions, so
        # widths beyond the axis repeat as numpy's do; one gather, whose gradient adds the
        # copies back into the element they came from
        source = np.pad(np.arange(n), (before, after), mode=mode)
        x = moveaxis(F.take(moveaxis(x, axis, 0), source), 0, axis)
    return F._unchanged(x) if not builtins.any(b or a for b, a in widths) else x


def _pad_widths(pad_width, nd):
    try:
        widths = np.asarray(pad_width)
    except ValueError:  # ragged: ((1, 2), (3,))
        widths = np.asarray(0.0)
    if widths.dtype.kind not in "iu":
        _fail(f"pad: pad_width must hold ints, got {pad_width!r}")
    try:
        widths = np.broadcast_to(widths, (nd, 2))
    except ValueError:
        _fail(f"pad: pad_width {pad_width!r} does not fit a {nd}-d value (an int, a pair, or "
              "a pair per axis)")
    if (widths < 0).any():
        _fail(f"pad: pad_width must be non-negative, got {pad_width!r}")
    return [(int(b), int(a)) for b, a in widths]


def _pad_constant(x, axis, before, after, value):
    # numpy's: the value in x's dtype (2.5 pads an int32 x with 2, 1 a bool one with True)
    dtype = _dtype(x)
    F.check_fits_dtype("pad: constant_values", value, dtype)
    value = np.asarray(value).astype(dtype)[()]
    # a Python number (a weak scalar: bfloat16's numpy scalar is not an operand), exact
    value = float(value) if is_float(dtype) else bool(value) if dtype == np.bool_ else int(value)
    shape = _shape(x)
    starts, stops = [0] * len(shape), list(shape)
    new = list(shape)
    new[axis] = shape[axis] + before + after
    starts[axis], stops[axis] = before, before + shape[axis]
    padded = F.pad_slice(x, new, starts, stops, [1] * len(shape))
    if value == 0 and not np.signbit(value):  # -0.0 is not 0's bits
        return padded
    inside = F.pad_slice(F.ones_like(x), new, starts, stops, [1] * len(shape))
    return F.where(F.cast(inside, "bool"), padded, value)


# ---- batching rule and lowering of argsort ---------------------------------------------------
def _register_batching():
    from .batching import defbatch

    @defbatch("argsort")
    def _argsort_rule(args, batched, size, axis, descending):
        return apply("argsort", args[0], axis=axis + 1, descending=descending)


_register_batching()
