"""Batching a traced graph (graphc.vmap): one example's computation => the whole batch's.

    graph f(%0:f32[3] x) -> (%2)          batched on xs: f32[8,3] (batch axis first)
      %1:f32[3] = tanh %0           =>      tanh xs                 : f32[8,3]
      %2:f32[] = sum %1 {axes=(0,)}         sum .. {axes=(1,)}      : f32[8]

`batch_graph` runs the graph's nodes in order on values that carry a batch axis or not. A node
whose operands are all unbatched runs as it is, once for every example; any other runs its
op's batching rule (ir/ops/batching.py), which computes the node for the whole batch with the
batch axis first. The rules are written with the functional API, so the values may be nodes
of a graph being traced (the batched computation is then ordinary IR that autodiff, the
passes and the runtime handle) or eager tensors (computed at once, recorded by the tape).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Graph
from ir.ops import api as F
from ir.ops.batching import batch_all, move_axis, rule_for
from ir.ops.registry import apply, innermost_interpreter


def batch_graph(graph: Graph, bound: dict, size: int, outputs=None) -> list:
    """Evaluate `graph` for a batch of `size` examples.

    bound: {input node: (value, batched)}, a batched value having its batch axis first.
    Returns (value, batched) for each of `outputs` (nodes of graph; default its outputs)."""
    env = dict(bound)
    for node in graph.inputs:
        if node not in env:
            raise GraphcError(f"batching graph {graph.name!r}: input {node.name!r} is not bound",
                              (user_location(),))
    around = innermost_interpreter()
    for node in graph.nodes:
        if node in env:
            continue
        if node.op == "constant":
            env[node] = (node.attrs["value"], False)
            continue
        if node.op == "tuple_get" and isinstance(env[node.inputs[0]][0], _Results):
            env[node] = env[node.inputs[0]][0][node.attrs["index"]]
            continue
        operands = [env[x][0] for x in node.inputs]
        batched = [env[x][1] for x in node.inputs]
        with _located(around, node):
            if any(batched) and node.op in _REGION_BATCHERS:
                env[node] = (_Results(_REGION_BATCHERS[node.op](node, operands, batched,
                                                                size)), True)
            elif not any(batched):
                env[node] = (apply(node.op, *operands, **node.attrs), False)
            else:
                env[node] = (_run_rule(node, operands, batched, size), True)
    return [env[node] for node in (graph.outputs if outputs is None else outputs)]


def _run_rule(node, operands, batched, size):
    rule = rule_for(node.op)
    if rule is None:
        raise GraphcError(f"vmap: op {node.op!r} has no batching rule (ir/ops/batching.py)",
                          node.locs or (user_location(),))
    out = rule(operands, batched, size, **node.attrs)
    expected = (size,) + tuple(node.shape)
    if tuple(F._shape(out)) != expected or F._dtype(out) != node.dtype:
        raise GraphcError(f"vmap: the batching rule of {node.op} gave {F._dtype(out)}"
                          f"{list(F._shape(out))}, expected {node.dtype}{list(expected)}",
                          node.locs or (user_location(),))
    return out


def _located(around, node):
    """Nodes built for `node` in a graph being traced keep its source lines and layer scope,
    as autodiff's do."""
    if isinstance(around, Graph):
        return around.locations(node.locs, node.scope)
    return contextlib.nullcontext()


# ---- control flow: batched through its regions --------------------------------------------
class _Results(tuple):
    """The (value, batched) pairs of a control-flow node batched here, read by tuple_get."""


def _step_slice(x, is_batched, t):
    """Step t of a scanned operand: axis 0 of an unbatched one, axis 1 of a batched one."""
    shape = F._shape(x)
    axis = 1 if is_batched else 0
    starts = tuple(t if a == axis else 0 for a in range(len(shape)))
    stops = tuple(t + 1 if a == axis else s for a, s in enumerate(shape))
    part = F.slice_(x, starts, stops, (1,) * len(shape))
    return F.reshape(part, shape[:axis] + shape[axis + 1:])


def _stack_steps(pairs, size, node_type):
    """Per-step (value, batched) pairs stacked along the step axis: (B, T, ...) if any step is
    batched, else (T, ...)."""
    if not pairs:  # a scan of no steps: an empty batched stack
        return np.zeros((size,) + tuple(node_type.shape), node_type.dtype), True
    if not any(b for _, b in pairs):
        return F.stack([v for v, _ in pairs], 0), False
    values = batch_all([v for v, _ in pairs], [b for _, b in pairs], size)
    return F.stack(values, 1), True


def _batch_scan(node, operands, batched, size):
    """scan with batched operands: the body batched step by step (so a carry becomes batched
    the first step it meets a batched value), the per-step outputs stacked after the batch
    axis. The batched graph grows with the trip count."""
    a = node.attrs
    body, consts, carries = a["body"], a["consts"], a["carries"]
    pairs = list(zip(operands, batched))
    const_pairs, carry = pairs[:consts], pairs[consts:consts + carries]
    xs = pairs[consts + carries:]
    steps = range(a["length"] - 1, -1, -1) if a.get("reverse") else range(a["length"])
    ys, saved = {}, {}
    for t in steps:
        saved[t] = carry
        slices = [(_step_slice(x, b, t), b) for x, b in xs]
        outs = batch_graph(body, dict(zip(body.inputs, const_pairs + carry + slices)), size)
        carry, ys[t] = outs[:carries], outs[carries:]
    order = range(a["length"])
    elements = node.type.elements
    results = list(carry)
    y_count = len(body.outputs) - carries
    for k in range(y_count):
        results.append(_stack_steps([ys[t][k] for t in order], size,
                                    elements[carries + k]))
    if a.get("save_carries"):
        for k in range(carries):
            results.append(_stack_steps([saved[t][k] for t in order], size,
                                        elements[carries + y_count + k]))
    return results


def _batch_cond(node, operands, batched, size):
    """cond with batched operands: both branches batched, each result selected by the
    predicate (per example when it is batched). Both branches run, as in JAX's rule for a
    batched predicate."""
    pred, pred_batched = operands[0], batched[0]
    if F._dtype(pred) != np.bool_:
        pred = F.cast(pred, "bool")
    false_branch, true_branch = node.attrs["branches"]
    pairs = list(zip(operands[1:], batched[1:]))
    on_false = batch_graph(false_branch, dict(zip(false_branch.inputs, pairs)), size)
    on_true = batch_graph(true_branch, dict(zip(true_branch.inputs, pairs)), size)
    results = []
    for (t, tb), (f, fb), out_type in zip(on_true, on_false, node.type.elements):
        if not (tb or fb or pred_batched):
            results.append((F.where(pred, t, f), False))
            continue
        t, f = batch_all([t, f], [tb, fb], size)
        which = pred
        if pred_batched:
            which = F.reshape(pred, (size,) + (1,) * len(out_type.shape))
        results.append((F.where(which, t, f), True))
    return results


def _refuse_while_loop(node, operands, batched, size):
    raise GraphcError("vmap: a while_loop over batched values is not supported (its trip "
                      "count could differ per example); use fori_loop with Python-int bounds "
                      "or scan", node.locs or (user_location(),))


_REGION_BATCHERS = {"scan": _batch_scan, "cond": _batch_cond,
                    "while_loop": _refuse_while_loop}
