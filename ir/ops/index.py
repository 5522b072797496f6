"""Gathers and scatters: embedding lookup (take), its gradient (scatter_add), one_hot."""
from __future__ import annotations

import numpy as np

from ..errors import UsersIndexError
from ..types import INT_DTYPES, TensorType, holds_when_bound, is_float
from . import api as F
from .random import key_words
from .registry import check, defop


def _take_infer(types):
    table, idx = types
    check(table.ndim >= 1, "the table must have at least one axis")
    check(idx.dtype in INT_DTYPES, f"indices must be integers, got {idx.dtype}")
    return TensorType(idx.shape + table.shape[1:], table.dtype)


def _vjp_take(ctx, g):
    table, idx = ctx.inputs
    return [F.scatter_add(g, idx, table.shape[0]) if ctx.needs[0] else None, None]


@defop("take", _take_infer, vjp=_vjp_take, arity=2)
def _take(table, idx):
    return np.take(table, idx, axis=0)


def _check_index_infer(types, length, axis, negative=True, who=None, what="index"):
    (idx,) = types
    check(idx.dtype in INT_DTYPES, f"indices must be integers, got {idx.dtype}")
    return idx


@defop("check_index", _check_index_infer, arity=1)
def _check_index(idx, length, axis, negative=True, who=None, what="index"):
    """idx itself, refused where one index lies outside [-length, length): the run-time
    check of an index array that getitem gathers with after moving or flattening the axes
    it indexes (the gather's own refusal would name that table, or pass an index that the
    flattening carried into a neighbouring row), in numpy's words for the user's axis.
    negative=False: outside [0, length) (torch's Embedding, segment ids), where a negative
    index sent past the end was refused naming a value the user never gave."""
    problem = index_problem(idx, length, axis, negative, who, what)
    if problem is not None:
        raise UsersIndexError(problem)
    return idx.copy()


def index_problem(idx, length, axis, negative=True, who=None, what="index") -> str | None:
    """Why the known index array `idx` does not index `length` rows of `axis` (None where
    it does): one outside [-length, length), or [0, length) where `negative` is False, in
    check_index's words ("who: what 5 is outside [-3, 3)" naming the function the user
    called, numpy's where `who` is None). The one range check: check_index's run-time one
    and the eager checks of known indices (scatter_reduce's index_*) say the same."""
    lowest = -length if negative else 0
    if not (idx.size and (idx.min() < lowest or idx.max() >= length)):
        return None
    bad = idx.min() if idx.min() < lowest else idx.max()
    if who is not None:  # (the function the user called, in its eager check's words)
        return f"{who}: {what} {bad} is outside [{lowest}, {length})"
    return f"index {bad} is out of bounds for axis {axis} of size {length}"


def offsets_problem(offsets, length, include_last_offset) -> str | None:
    """What torch refuses in embedding_bag's `offsets` (a 1-d numpy array of the bags'
    starts) for an input of `length` indices (None: unknown, its end unchecked), in its
    terms; None where they are valid."""
    if offsets.size and offsets[0] != 0:
        return f"offsets[0] must be 0 (the first bag starts the input), got {offsets[0]}"
    if np.any(np.diff(offsets) < 0) or (length is not None and offsets.size and
                                       offsets[-1] > length):
        end = "" if length is None else f" and at most the input's length {length}"
        return f"offsets must be non-decreasing{end}, got {offsets.tolist()}"[:300]
    if include_last_offset and length is not None and offsets[-1] != length:
        # torch's contract ("the last element is equivalent to the size of indices"); its
        # modes disagree past it (sum stops at offsets[-1], mean and max run to the end)
        return (f"with include_last_offset, offsets[-1] must be the input's length "
                f"{length}, got {offsets[-1]}")
    return None


def _check_offsets_infer(types, who, length, include_last_offset):
    (offsets,) = types
    check(offsets.ndim == 1 and offsets.dtype in INT_DTYPES,
          f"offsets must be a 1-d array of integers, got {offsets}")
    return offsets


@defop("check_offsets", _check_offsets_infer, arity=1)
def _check_offsets(offsets, who, length, include_last_offset):
    """offsets itself, refused where embedding_bag's traced offsets are not torch's (a first
    bag not at 0, a bag starting before the previous one or past the input), in the words
    of the eager check (offsets_problem) and naming `who` (the function or layer called):
    the gathers after it failed naming scatter_add's rows, or summed the wrong rows."""
    problem = offsets_problem(offsets, length, include_last_offset)
    if problem is not None:
        raise UsersIndexError(f"{who}: {problem}")
    return offsets.copy()


def _valid_offsets(offsets, length, include_last_offset):
    """Offsets (..., n) that offsets_problem takes for an input of `length` indices, equal to
    `offsets` where it takes them already: clamped into [0, length], sorted, less the first,
    and with include_last_offset ending at length."""
    from .arrays import sort
    dtype, shape = F._dtype(offsets), F._shape(offsets)
    fixed = sort(F.minimum(F.maximum(offsets, np.asarray(0, dtype)), np.asarray(length, dtype)))
    first = F.slice_(fixed, (0,) * len(shape), shape[:-1] + (1,), (1,) * len(shape))
    fixed = F.sub(fixed, first)
    if include_last_offset:
        last = F.equal(F.arange(0, shape[-1], dtype=dtype), np.asarray(shape[-1] - 1, dtype))
        fixed = F.where(last, np.asarray(length, dtype), fixed)
    return fixed


def _scatter_add_infer(types, rows):
    updates, idx = types
    check(idx.dtype in INT_DTYPES, f"indices must be integers, got {idx.dtype}")
    check(updates.shape[:idx.ndim] == idx.shape,
          f"updates {updates.shape} must start with the indices' shape {idx.shape}")
    return TensorType((rows,) + updates.shape[idx.ndim:], updates.dtype)


def _vjp_scatter_add(ctx, g):
    _, idx = ctx.inputs
    return [F.take(g, idx) if ctx.needs[0] else None, None]


@defop("scatter_add", _scatter_add_infer, vjp=_vjp_scatter_add, arity=2)
def _scatter_add(updates, idx, rows):
    """Rows of zeros with updates[i] added at row idx[i]; repeated indices accumulate, and
    negative indices count from the end as in take (the gradient of take must land on the
    row that take read)."""
    tail = updates.shape[idx.ndim:]
    out = np.zeros((rows,) + tail, dtype=updates.dtype)
    flat_idx = idx.reshape(-1)
    if flat_idx.size and (flat_idx.min() < -rows or flat_idx.max() >= rows):
        # as take (and the compiled kernel, runtime.jit.scatter_add_rows): one error, where
        # the one-hot product below dropped such an index and bincount failed or misplaced it
        raise IndexError("scatter_add: an index is out of range for the rows")
    if flat_idx.size and flat_idx.min() < 0:
        flat_idx = np.where(flat_idx < 0, flat_idx + rows, flat_idx)
    flat_upd = updates.reshape((flat_idx.size,) + tail)
    if (flat_upd.ndim == 2 and rows * flat_idx.size <= 1 << 22
            and np.isfinite(flat_upd).all()):
        # few rows (a character vocabulary): a one-hot matrix product is one fast GEMM; not
        # with an Inf or NaN update, whose products with the zeros would put NaN in every row
        one_hot = flat_idx[None, :] == np.arange(rows)[:, None]
        return one_hot.astype(updates.dtype) @ flat_upd
    if flat_upd.ndim == 2 and rows * flat_upd.shape[1] <= 1 << 26 and is_float(updates.dtype):
        # one bincount over (row, column) pairs is much faster than np.add.at; it adds in
        # float64, so not for integers (an int64 past 2**53 lost its low bits, an int32 sum
        # past its range came back as its minimum, where np.add.at wraps as numpy does)
        cols = flat_upd.shape[1]
        keys = (flat_idx[:, None] * cols + np.arange(cols)).reshape(-1)
        out = np.bincount(keys, weights=flat_upd.reshape(-1), minlength=rows * cols)
        return out.reshape(rows, cols).astype(updates.dtype, copy=False)
    np.add.at(out, flat_idx, flat_upd)
    return out


def _one_hot_infer(types, depth, dtype):
    (idx,) = types
    check(idx.dtype in INT_DTYPES, f"indices must be integers, got {idx.dtype}")
    check(depth > 0, "depth must be positive")
    return TensorType(idx.shape + (depth,), dtype)


@defop("one_hot", _one_hot_infer, arity=1)
def _one_hot(idx, depth, dtype):
    """Out-of-range indices (e.g. an ignore index of -100) give an all-zero row, as in JAX."""
    return (idx[..., None] == np.arange(depth)).astype(dtype)


def _dropout_mask_infer(types, shape, rate, salt, dtype):
    seed, *loops = types
    check(seed.dtype in INT_DTYPES and seed.ndim == 0, "the seed must be an integer scalar")
    check(all(t.dtype in INT_DTYPES and t.ndim == 0 for t in loops),
          "the loop iteration numbers must be integer scalars")
    check(0.0 <= rate < 1.0, f"rate must be in [0, 1), got {rate}")
    check(is_float(np.dtype(dtype)), "mask dtype must be floating point")
    return TensorType(shape, dtype)


@defop("dropout_mask", _dropout_mask_infer, stochastic=True)
def _dropout_mask(seed, *loops, shape, rate, salt, dtype):
    """Keep-mask scaled by 1/(1-rate); a function of its operands and salt only, so it is
    replayable. A site inside loop bodies also takes each enclosing loop's iteration number
    (outermost first; ir.ops.api.dropout), so every iteration draws its own mask."""
    # both 32-bit words of the seed: a key's high bits tell keys apart (gc.Trainer puts the
    # rank there; a mask of the low word alone was the same on every rank)
    high, low = key_words(seed)
    rng = np.random.default_rng([int(low), int(high), salt] + [int(t) for t in loops])
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - rate), dtype=dtype)


# ---- windows at a run-time position (KV caches) ---------------------------------------------
def _clamped_start(start, size, length) -> int:
    """As in JAX (lax.dynamic_slice, allow_negative_indices=True): a negative start counts
    from the end of the axis (start + length), then the start is clamped so that the window
    of `size` fits, to [0, length - size]. Length 6, size 2: -1 opens at 4, -7 at 0, 5 at 4.
    Computed on Python ints, so no start of any integer dtype overflows."""
    start = int(start)
    if start < 0:
        start += length
    return min(max(start, 0), length - size)


def _window(ndim, axis, start, size):
    rest = (slice(None),) * (ndim - axis - 1)
    return (slice(None),) * axis + (slice(start, start + size),) + rest


def _check_start(start, axis, ndim):
    check(start.dtype in INT_DTYPES and start.ndim == 0,
          f"the start must be an integer scalar, got {start}")
    check(0 <= axis < ndim, f"axis {axis} is out of range for {ndim} dimensions")


def _dynamic_slice_infer(types, size, axis):
    operand, start = types
    _check_start(start, axis, operand.ndim)
    # on a symbolic axis (a window of 2 rows of `batch`) the fit is checked per binding
    check(0 <= size and holds_when_bound(lambda: size <= operand.shape[axis]),
          f"size {size} does not fit axis {axis} of length {operand.shape[axis]}")
    shape = list(operand.shape)
    shape[axis] = size
    return TensorType(tuple(shape), operand.dtype)


def _vjp_dynamic_slice(ctx, g):
    operand, start = ctx.inputs
    if not ctx.needs[0]:
        return [None, None]
    return [F.dynamic_update_slice(F.zeros_like(operand), g, start, ctx.attrs["axis"]), None]


@defop("dynamic_slice", _dynamic_slice_infer, vjp=_vjp_dynamic_slice, arity=2)
def _dynamic_slice(operand, start, size, axis):
    """operand[..., s:s+size, ...] along `axis`, s a run-time start: negative counts from the
    end, then clamped so that the window fits (_clamped_start, as in JAX)."""
    s = _clamped_start(start, size, operand.shape[axis])
    return operand[_window(operand.ndim, axis, s, size)].copy()


def _dynamic_update_slice_infer(types, axis):
    operand, update, start = types
    _check_start(start, axis, operand.ndim)
    check(update.dtype == operand.dtype,
          f"the update's dtype {update.dtype} is not the operand's {operand.dtype}")
    check(update.ndim == operand.ndim and all(
        u == o if d != axis else holds_when_bound(lambda: u <= o)
        for d, (u, o) in enumerate(zip(update.shape, operand.shape))),
          f"the update {update.shape} must match the operand {operand.shape} except along "
          f"axis {axis}, where it may be shorter")
    return operand


def _vjp_dynamic_update_slice(ctx, g):
    operand, update, start = ctx.inputs
    axis = ctx.attrs["axis"]
    return [F.dynamic_update_slice(g, F.zeros_like(update), start, axis)
            if ctx.needs[0] else None,
            F.dynamic_slice(g, start, update.shape[axis], axis) if ctx.needs[1] else None,
            None]


@defop("dynamic_update_slice", _dynamic_update_slice_infer, vjp=_vjp_dynamic_update_slice,
       arity=3)
def _dynamic_update_slice(operand, update, start, axis):
    """The operand with `update` written at a run-time start along `axis` (negative counts
    from the end, then clamped so that the update fits: _clamped_start, as in JAX). The
    compiled runtime writes into the operand's buffer when it dies here, e.g. a donated KV
    cache (its lowering record in runtime/op_lowering.py names inplace_operand)."""
    out = operand.copy()
    s = _clamped_start(start, update.shape[axis], operand.shape[axis])
    out[_window(operand.ndim, axis, s, update.shape[axis])] = update
    return out


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import (SHARED_INDEX_OPS, batch_all, batch_offsets, broadcasting,
                           clamp_unless_kept, defbatch, flat_batch, loop_over_batch, looped,
                           move_axis, repaired_unless_kept, scattering)
    from .registry import apply

    @defbatch("take")
    def _take_rule(args, batched, size):
        table, idx = args
        rows = F._shape(table)[1 if batched[0] else 0]
        idx = clamp_unless_kept(idx, rows, size, batched[1])
        if not batched[0]:  # one table, a batch of indices: an ordinary gather
            return F.take(table, idx)
        # the B tables stacked into one, each example's indices offset to its own block
        table, idx = batch_all([table, idx], batched, size)
        return F.take(flat_batch(table, size), batch_offsets(idx, rows, size))

    defbatch("scatter_add")(scattering(F.scatter_add))

    @defbatch("check_index")
    def _check_index_rule(args, batched, size, length, axis, negative=True, who=None,
                          what="index"):
        # (an example whose result a batched cond drops is clamped first, as a gather's; an
        # index the batch shares too, where no example keeps it: SHARED_INDEX_OPS)
        idx = clamp_unless_kept(args[0], length, size, batched[0], negative)
        return F.check_index(idx, length, axis, negative, who, what)

    @defbatch("check_offsets")
    def _check_offsets_rule(args, batched, size, who, length, include_last_offset):
        # each example's offsets checked as one embedding_bag's (looped), those of an example
        # whose result a batched cond drops first made valid, as check_index's clamp: its
        # gathers then run, where they were refused naming offsets the branch never used
        offsets = args[0]
        if isinstance(length, int) and F._shape(offsets)[-1]:
            offsets = repaired_unless_kept(
                offsets, lambda o: _valid_offsets(o, length, include_last_offset), size,
                batched[0])
        if not batched[0]:
            return F.check_offsets(offsets, who, length, include_last_offset)
        return looped("check_offsets")([offsets], batched, size, who=who, length=length,
                                       include_last_offset=include_last_offset)

    SHARED_INDEX_OPS.update(("take", "scatter_add", "check_index", "check_offsets"))
    defbatch("one_hot")(broadcasting("one_hot"))

    loop_over_batch("dropout_mask", "a mask is drawn from one seed: a batch of seeds draws one "
                                    "mask per example")

    def clamped(start, size, length):
        """_clamped_start on a batch of starts: negative ones count from the end, then each
        is clamped so that its window fits. Bounded to [-length, length] first, so adding
        the length cannot overflow at the dtype's extremes."""
        start = F.minimum(F.maximum(start, -length), length)
        start = F.where(F.less(start, 0), F.add(start, length), start)
        return F.minimum(F.maximum(start, 0), length - size)

    @defbatch("dynamic_slice")
    def _dynamic_slice_rule(args, batched, examples, size, axis):
        operand, start = args
        if not batched[1]:
            return apply("dynamic_slice", operand, start, size=size, axis=axis + 1)
        # a start per example: gather each example's window along the axis moved first
        (operand,) = batch_all([operand], [batched[0]], examples)
        rows = move_axis(operand, axis + 1, 1)  # (B, L, ...)
        length = F._shape(rows)[1]
        first = clamped(start, size, length)
        idx = F.add(F.reshape(first, (examples, 1)), F.arange(size, dtype=F._dtype(first)))
        window = F.take(flat_batch(rows, examples),
                        batch_offsets(idx, length, examples, check=False))
        return move_axis(window, 1, axis + 1)

    @defbatch("dynamic_update_slice")
    def _dynamic_update_slice_rule(args, batched, size, axis):
        operand, update, start = args
        if not batched[2]:
            operand, update = batch_all([operand, update], batched[:2], size)
            return apply("dynamic_update_slice", operand, update, start, axis=axis + 1)
        # a start per example: every position reads the update where it falls in the window
        operand, update = batch_all([operand, update], batched[:2], size)
        if F._shape(update)[axis + 1] == 0:  # an empty update writes nothing, at any start
            return operand
        rows = move_axis(operand, axis + 1, 1)  # (B, L, ...)
        new = move_axis(update, axis + 1, 1)  # (B, U, ...)
        length, count = F._shape(rows)[1], F._shape(new)[1]
        first = F.reshape(clamped(start, count, length), (size, 1))
        offset = F.sub(F.arange(length, dtype=F._dtype(first)), first)  # (B, L)
        inside = F.logical_and(F.greater_equal(offset, 0), F.less(offset, count))
        read = F.take(flat_batch(new, size),
                      batch_offsets(F.minimum(F.maximum(offset, 0), count - 1), count, size,
                                    check=False))
        mask = F.reshape(inside, F._shape(inside) + (1,) * (F._ndim(rows) - 2))
        return move_axis(F.where(mask, read, rows), 1, axis + 1)


_register_batching()
