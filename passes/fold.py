"""Constant folding: a node whose operands are all constants is evaluated now.

Results larger than `max_elements` stay as nodes, so a huge broadcast of a scalar is not
materialised into the graph; random ops are never folded (their seed is usually an input
anyway, but a fixed seed must still draw at run time like any other op), nor are collectives
(every rank must reach them when the plan runs).
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.rewrite import rebuild
from ir.types import TupleType, holds_dim

MAX_ELEMENTS = 1 << 16


def computes_constant(op) -> bool:
    """An op with no operands and a fixed value (full, arange, tri, constant): known from its
    definition (no operands, not random), not from a list kept by hand. `input` is the one
    operand-less op whose value is not fixed."""
    return op.arity == 0 and not op.stochastic and op.name != "input"


def fold(graph, max_elements: int = MAX_ELEMENTS):
    def visit(node, inputs, new):
        op = get_op(node.op)
        if isinstance(node.type, TupleType):
            return None  # control flow runs when the plan runs
        if node.type.symbolic or holds_dim(node.attrs):
            return None  # its value depends on sizes bound per call (shape polymorphism)
        # a negative size (full or tri; the type rule lets a branch not taken have one): its
        # impl runs below, however many elements, so numpy's refusal is the plan's; skipped,
        # simplify's rewrites computed on it (sum(zeros((-2, -3)) + 1) was 6.0, eager refuses)
        negative = computes_constant(op) and any(d < 0 for d in node.type.shape)
        if node.op == "constant" or op.stochastic or op.collective or \
                (node.size > max_elements and not negative):
            return None
        if computes_constant(op) and node.size > 1 and not negative:
            return None  # already a compact constant; folding would only inflate it
        if not all(i.op == "constant" for i in inputs):
            return None
        try:
            value = op.impl(*[i.attrs["value"] for i in inputs], **node.attrs)
        except (ValueError, TypeError, IndexError, FloatingPointError) as exc:
            # (tri or full of a negative size, which numpy refuses): one line naming the op
            # and the user's line, as the plan's binding of a constant names it (left
            # unfolded, a later pass could compute on its negative size: sum(zeros((-2, 2))
            # + 1) was -4.0 in a cond's branch)
            raise GraphcError(f"{node.op}() failed while building the plan: {exc}",
                              node.locs) from None
        value = np.array(value, dtype=node.dtype)
        const = new.constant(value)
        const.locs = node.locs
        return const

    return rebuild(graph, visit)[0]
