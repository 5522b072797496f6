"""Batching rules: how each op runs on a batch of examples at once (graphc.vmap).

As in JAX (`jax/_src/interpreters/batching.py`, autodidax's `vmap_rules`), a rule takes an
op's operands, some of which carry an extra leading batch axis, and computes the op for every
example in one call of ordinary ops:

    rule(args, batched, size, **attrs) -> the batched result (batch axis 0)

`args[i]` has its batch axis first when `batched[i]`, else it is one value shared by every
example; `size` is the batch size (passed by position: an op attribute may be named `size`).
Unlike JAX's rules, which take and return any batch axis, the batch axis is always first:
vmap moves it there once per argument (and to out_axes once per result), so no rule handles
arbitrary axes and no transposes pile up between ops. Rules are registered next to their op
(the end of each module of ir/ops) and written with the functional API, so they build graph
nodes when the batched values are symbolic and compute at once in eager mode, as gradient
rules do. passes/batching.py runs them; an op call whose operands are all unbatched runs
unchanged.

An op whose result is a tuple (scan, cond, while_loop: TupleType nodes) and tuple_get, which
reads one, have per-element rules (`defbatch(..., per_element=True)`): they run even when no
operand is batched and return (value, flags), one batched flag per element of a tuple, which
tuple_get's rule picks from (the control-flow rules: passes/control_flow_batching.py).

Every op is in one of three tables (tests/test_vmap.py checks it):
  BATCH_RULES  a rule;
  LOOPED       no rule, on purpose: vmap runs the op once per example and stacks the results;
               the entry says why;
  NOT_BATCHED  the op has no operands (creators, inputs, constants), so it is never batched.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable

import numpy as np

from . import api as F
from .registry import apply, innermost_interpreter

BATCH_RULES: dict[str, Callable] = {}
LOOPED: dict[str, str] = {}  # op -> why it runs once per example
NOT_BATCHED: dict[str, str] = {}  # op -> why no operand of it is ever batched
PER_ELEMENT: set[str] = set()  # ops whose rule returns (value, per-element batched flags)


def defbatch(*names, per_element=False):
    """Register the decorated function as the batching rule of the named ops."""
    def register(rule):
        for name in names:
            BATCH_RULES[name] = rule
            if per_element:
                PER_ELEMENT.add(name)
        return rule
    return register


def loop_over_batch(name: str, reason: str) -> None:
    """`name` has no batching rule: vmap runs it once per example (`reason` says why)."""
    LOOPED[name] = reason


def never_batched(name: str, reason: str) -> None:
    NOT_BATCHED[name] = reason


# ---- helpers for rules ------------------------------------------------------------------------
def example_ndim(x, is_batched) -> int:
    """The rank of one example of x."""
    return F._ndim(x) - (1 if is_batched else 0)


def with_rank(x, rank):
    """Batched x (B, *s) as (B, 1, ..., 1, *s) with `rank` axes after the batch axis, so that
    numpy broadcasting lines its example axes up with those of unbatched operands."""
    shape = F._shape(x)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return x
    return F.reshape(x, (shape[0],) + (1,) * missing + shape[1:])


def batch_all(args, batched, size):
    """Every operand with a batch axis: unbatched ones broadcast along a new axis 0."""
    return [x if b else F.broadcast_to(F.reshape(x, (1,) + F._shape(x)), (size,) + F._shape(x))
            for x, b in zip(args, batched)]


def move_axis(x, source, destination):
    """x with axis `source` moved to position `destination` (numpy's moveaxis)."""
    nd = F._ndim(x)
    order = [a for a in range(nd) if a != source]
    order.insert(destination, source)
    return F.transpose(x, tuple(order))


def shift(axes):
    """Attribute axes of one example, as axes of the batched value."""
    return tuple(a + 1 for a in axes)


def example(x, index):
    """The `index`-th example of batched x (the batch axis dropped)."""
    shape = F._shape(x)
    nd = len(shape)
    part = F.slice_(x, (index,) + (0,) * (nd - 1), (index + 1,) + shape[1:], (1,) * nd)
    return F.reshape(part, shape[1:])


def looped(name):
    """The rule of an op in LOOPED: one call per example, results stacked along axis 0."""
    def rule(args, batched, size, **attrs):
        results = []
        for index in range(size):
            operands = [example(x, index) if b else x for x, b in zip(args, batched)]
            results.append(apply(name, *operands, **attrs))
        return F.stack(results, 0)
    return rule


def rule_for(name):
    """The batching rule that vmap runs for op `name` (None: the op has none)."""
    rule = BATCH_RULES.get(name)
    if rule is None and name in LOOPED:
        return looped(name)
    return rule


# ---- shared rules -----------------------------------------------------------------------------
def broadcasting(name):
    """Elementwise ops with numpy broadcasting: batched operands get their missing example axes
    as size-1 axes after the batch axis, then the op broadcasts as usual."""
    def rule(args, batched, size, **attrs):
        rank = max(example_ndim(x, b) for x, b in zip(args, batched))
        return apply(name, *[with_rank(x, rank) if b else x for x, b in zip(args, batched)],
                     **attrs)
    return rule


def scattering(scatter):
    """The rule of a scatter of updates into `rows` rows, scatter(updates, idx, rows)
    (scatter_add, scatter_max): each example scatters into its own block of `rows` rows of
    one B * rows table, its indices offset to that block; with no operand batched (an index
    the batch shares, SHARED_INDEX_OPS) it scatters once."""
    def rule(args, batched, size, rows):
        updates, idx = args
        idx = clamp_unless_kept(idx, rows, size, batched[1])
        if not any(batched):
            return scatter(updates, idx, rows)
        updates, idx = batch_all([updates, idx], batched, size)
        out = scatter(updates, batch_offsets(idx, rows, size), size * rows)
        return F.reshape(out, (size, rows) + F._shape(out)[1:])
    return rule


def same_shape(name):
    """Ops whose operands must have one shape (gelu_grad, softmax_grad): every operand
    batched; `axis` attributes shift past the batch axis."""
    def rule(args, batched, size, **attrs):
        if "axis" in attrs:
            attrs = dict(attrs, axis=attrs["axis"] + 1)
        return apply(name, *batch_all(args, batched, size), **attrs)
    return rule


def flat_batch(x, size):
    """Batched x (B, *s) as (B * prod(s[:1]), ...): the batch axis merged into the next."""
    shape = F._shape(x)
    return F.reshape(x, (size * shape[1],) + shape[2:])


# vmap of a cond whose predicate is batched runs both branches on every example and selects
# per example, as JAX does; a batched while_loop runs its body on finished examples too. An
# index that the predicate keeps in range for the examples taking a branch may be out of
# range for the others, whose results there are thrown away: for those examples the batched
# gathers and scatters clamp their indices, as JAX's always do, while an index out of range
# for an example whose result is kept is still refused (tests/test_vmap_control_flow.py).
class _Kept(threading.local):  # per thread, as the interpreter stack (ir.ops.registry)
    def __init__(self):
        self.stack = []  # (kept: bool (size,), size, the interpreter it is a value of)


_KEPT = _Kept()


@contextmanager
def results_selected_later(kept, size):
    """Inside, the batched gathers and scatters built clamp the indices of the examples
    whose `kept` (bool, one per example of the batch of `size`) is False. Nested in another
    such block of the same graph, an example is kept only if kept by both."""
    here = innermost_interpreter()
    if _KEPT.stack:
        outer, outer_size, there = _KEPT.stack[-1]
        if outer_size == size and there is here:
            kept = F.logical_and(outer, kept)
    _KEPT.stack.append((kept, size, here))
    try:
        yield
    finally:
        _KEPT.stack.pop()


# ops whose batching rule also runs on operands none of which is batched, inside a block of
# results_selected_later: their index, shared by every example, clamps there unless some
# example keeps the result (each example alone never reads it otherwise)
SHARED_INDEX_OPS: set = set()


def clamps_shared_index(name) -> bool:
    return name in SHARED_INDEX_OPS and bool(_KEPT.stack)


def clamp_unless_kept(idx, rows, size, batched=True, negative=True):
    """Batched idx, each example's clamped into [-rows, rows) (a negative index still
    counting from the end; [0, rows) where `negative` is False, as the index is checked)
    where results_selected_later does not keep its result; idx as it is outside such a
    block, or when `rows` is symbolic. An unbatched idx (batched=False), shared by every
    example, is clamped only where no example's result is kept."""
    if not _KEPT.stack or not isinstance(rows, int) or rows == 0:
        return idx
    dtype = F._dtype(idx)
    lowest = -rows if negative and dtype.kind == "i" else 0
    return repaired_unless_kept(idx, lambda i: F.minimum(F.maximum(i, np.asarray(lowest, dtype)),
                                                         np.asarray(rows - 1, dtype)),
                                size, batched)


def repaired_unless_kept(x, repair, size, batched=True):
    """Batched x with each example whose result results_selected_later does not keep made
    valid for its op by repair(x) (which leaves a valid value as it is: clamp_unless_kept's
    clamp, embedding_bag's offsets sorted into the input); x as it is outside such a block.
    An unbatched x, shared by every example, is repaired only where no example keeps it."""
    if not _KEPT.stack:
        return x
    kept, kept_size, there = _KEPT.stack[-1]
    if kept_size != size or there is not innermost_interpreter():
        # in a region of the branch (a scan's body): the mask is no value there, so every
        # example's own value is repaired (an invalid one of a kept example is then not
        # refused), and a value the batch shares is checked as outside such a block
        return repair(x) if batched else x
    if not batched:
        return F.where(F.any(kept), x, repair(x))
    return F.where(F.reshape(kept, (size,) + (1,) * (F._ndim(x) - 1)), x, repair(x))


def batch_offsets(idx, rows, size, check=True):
    """Indices of batched idx (B, ...) into a table whose B blocks of `rows` rows are stacked:
    example b's index i becomes b * rows + i (negative indices counted from its block's end).
    check: an index outside its own block ([-rows, rows)) is refused (check_index: its value
    and the example's rows, as unbatched), where it read or wrote a neighbouring example's
    rows (False: indices known to be in range)."""
    shape = F._shape(idx)
    dtype = F._dtype(idx)
    if check and isinstance(rows, int):  # (refused in the example's own terms: its value
        idx = F.check_index(idx, rows, 0)  # and its table's rows, not the stacked table's)
    idx = F.where(F.less(idx, 0), F.add(idx, rows), idx)
    if isinstance(rows, int):
        # b * rows for b < size: an arange of step 1, which a symbolic batch size (a
        # polymorphic shape) allows, where arange(0, size * rows, rows) was refused; blocks
        # of no rows (an empty table or window) all start at 0
        starts = F.mul(F.arange(0, size, dtype=dtype), np.asarray(rows, dtype))
    else:
        starts = F.arange(0, size * rows, rows, dtype=dtype)
    offsets = F.reshape(starts, (size,) + (1,) * (len(shape) - 1))
    return F.add(idx, offsets)
