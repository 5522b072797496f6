"""Rematerialisation: `graphc.remat(f)`, as `jax.checkpoint` (alias `jax.remat`) and
`torch.utils.checkpoint`; `graphc.checkpoint` is the module of checkpoint files.

    for block in blocks:
        x = gc.remat(block)(x)

Traced, f's forward nodes are recorded as usual and topped by one custom_vjp node
(ir/ops/custom.py) whose gradient rule replays them: when the backward pass reaches the
region, its nodes are rebuilt from `optimization_barrier`s on the values the region read
(its arguments and anything it closed over: parameters, masks, dropout seeds), and the
replayed copy is differentiated. Nothing in the backward pass reads the forward copy, so its
intermediates die at the end of the forward pass: the plan's peak memory holds one region's
intermediates at a time, at the price of computing each region's forward twice. Dropout
masks are pure functions of their seed and site, so the replay draws the same mask.

Eagerly (no graph being traced) the tape keeps every value anyway: f runs as it is.
"""
from __future__ import annotations

import functools

from ir.graph import Node, current_graph
from ir.ops.custom import CustomCall, rule_ref
from ir.ops.registry import apply
from ir.types import is_float
from passes.autodiff import gradients
from runtime.eager import apart_from, op_serial

from .custom import _pack
from .tracing import leaves_and_structure, unflatten
from .transforms import _callable


def remat(fun):
    """fun, with its forward values recomputed in the backward pass instead of kept."""
    _callable(fun, "remat")
    name = getattr(fun, "__name__", "fn")

    @functools.wraps(fun, updated=())
    def rematerialised(*args, **kwargs):
        leaves, _ = leaves_and_structure([list(args), kwargs])
        # the graph being built first: inside a loop body or a branch an argument may be a
        # value of the enclosing graph, which the body reads through a capture
        graph = current_graph() or next((x.graph for x in leaves if isinstance(x, Node)),
                                        None)
        if graph is None:  # eagerly; results of their own, as a compiled remat's
            since = op_serial()
            out_leaves, out_tree = leaves_and_structure(fun(*args, **kwargs))
            return unflatten(out_tree, apart_from(out_leaves, leaves, since))
        start = len(graph.nodes)
        with graph.building():
            out = fun(*args, **kwargs)
            return _rematerialise(graph, graph.nodes[start:], out, name)

    return rematerialised


def _rematerialise(graph, region, out, name):
    computed = [n for n in region if n.op != "input"]  # a parameter met first here is read
    inside = set(computed)
    reads, seen = [], set()
    for n in computed:
        for operand in n.inputs:
            if operand not in inside and operand not in seen:
                seen.add(operand)
                reads.append(operand)
    out_leaves, out_tree = leaves_and_structure(out)
    # only values the region computes go through the custom_vjp: a result that is one of
    # fun's arguments (or a value from outside) unchanged is returned as it is, and its
    # gradient flows to it directly (the replay would not reach it unless a computed node
    # also read it, and its cotangent was dropped)
    diff_pos = [i for i, x in enumerate(out_leaves)
                if isinstance(x, Node) and x.graph is graph and is_float(x.dtype)
                and x in inside]
    if not diff_pos or not reads:
        return out
    targets = [out_leaves[i] for i in diff_pos]
    packed, unpack = _pack(targets)
    position = {n: k for k, n in enumerate(computed)}

    def pullback(read_ops, _residuals, g, needs):
        """Replay the region on barriers of what it read (operands of the graph being
        differentiated: a clone of the traced one under grad_graph), then differentiate it."""
        barriers = [apply("optimization_barrier", x) for x in read_ops]
        value = dict(zip(reads, barriers))
        for n in computed:
            value[n] = read_ops[0].graph.add_node(
                n.op, [value[i] for i in n.inputs], dict(n.attrs), n.type, n.locs, n.scope)
        ys = [value[t] if t in position else value.get(t, t) for t in targets]
        wrt = [b for b, need in zip(barriers, needs) if need]
        grads = iter(gradients(ys, wrt, unpack(g)) if wrt else [])
        return [next(grads) if need else None for need in needs]

    node = apply("custom_vjp", packed, *reads, fn=f"remat({name})", args=len(reads),
                 rule=rule_ref(CustomCall(name, pullback)))
    results = list(out_leaves)
    for i, r in zip(diff_pos, unpack(node)):
        results[i] = r
    return unflatten(out_tree, results)

