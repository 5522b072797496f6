"""Batching a traced graph (graphc.vmap): one example's computation => the whole batch's.

    graph f(%0:f32[3] x) -> (%2)          batched on xs: f32[8,3] (batch axis first)
      %1:f32[3] = tanh %0           =>      tanh xs                 : f32[8,3]
      %2:f32[] = sum %1 {axes=(0,)}         sum .. {axes=(1,)}      : f32[8]

`batch_graph` runs the graph's nodes in order on values that carry a batch axis or not. A node
whose operands are all unbatched runs as it is, once for every example (a gather's or
scatter's within a branch of a batched predicate through its rule, to clamp its index
where no example keeps the result: ir/ops/batching.py); any other runs its
op's batching rule (ir/ops/batching.py), which computes the node for the whole batch with the
batch axis first. The rules are written with the functional API, so the values may be nodes
of a graph being traced (the batched computation is then ordinary IR that autodiff, the
passes and the runtime handle) or eager tensors (computed at once, recorded by the tape).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Graph, Node
from ir.ops import api as F
from ir.ops import precision
from ir.ops.batching import PER_ELEMENT, clamps_shared_index, rule_for
from ir.ops.registry import apply, innermost_interpreter
from ir.types import is_int


def batch_graph(graph: Graph, bound: dict, size: int, outputs=None) -> list:
    """Evaluate `graph` for a batch of `size` examples.

    bound: {input node: (value, batched)}, a batched value having its batch axis first.
    Returns (value, batched) for each of `outputs` (nodes of graph; default its outputs)."""
    # a numpy scalar bound to an input is a 0-d tensor of the input's dtype, not a weakly
    # typed number: an op would give it the dtype of the tensors it meets (ir.ops.registry)
    env = {node: (np.asarray(v) if isinstance(v, np.generic) else v, b)
           for node, (v, b) in bound.items()}
    for node in graph.inputs:
        if node not in env:
            raise GraphcError(f"batching graph {graph.name!r}: input {node.name!r} is not bound",
                              (user_location(),))
    around = innermost_interpreter()
    # the graph's nodes hold the casts the autocast policy made while it was traced (and its
    # backward half, built with autocast suspended, none): replayed under the policy, a half
    # sum of the backward was cast to float32 again (vmap(grad(...)) of a half product
    # against a float32 weight: 'the batching rule of sum gave float32')
    with precision.suspended():
        return _batch_nodes(graph, env, size, around, outputs)


def _batch_nodes(graph, env, size, around, outputs):
    for node in graph.nodes:
        if node in env:
            continue
        if node.op == "constant":
            env[node] = (node.attrs["value"], False)
            continue
        operands = [env[x][0] for x in node.inputs]
        batched = [env[x][1] for x in node.inputs]
        with _located(around, node):
            if node.op in PER_ELEMENT:  # a tuple-valued op or tuple_get: (value, flags)
                env[node] = rule_for(node.op)(operands, batched, size, **node.attrs)
            elif clamps_shared_index(node.op) and not any(map(is_batched, batched)):
                env[node] = (rule_for(node.op)(operands, batched, size, **node.attrs), False)
            elif not any(map(is_batched, batched)):
                env[node] = (apply(node.op, *operands, **node.attrs), False)
                if node.id in graph.adopting_casts:  # a weak number's cast keeps its check
                    _adopting(env[node][0], operands[0], graph, node)
                elif node.id in graph.weak_ids:  # k + 1 of a weak k: weak, and so checked
                    _weak(env[node][0])
                if node in graph.int_powers:
                    _int_power(env[node][0], *(
                        x if is_int(x) else env[x][0] for x in graph.int_powers[node]))
            else:
                env[node] = (_run_rule(node, operands, batched, size), True)
                # a weak number that a batched condition picks (where(m > 5, 2**40, 1) in
                # vmap over m) is as weak, and its cast as checked, as one example's: it
                # wrapped unseen, eagerly and compiled
                if node.id in graph.adopting_casts:
                    _adopting(env[node][0], operands[0], graph, node)
                elif node.id in graph.weak_ids:
                    _weak(env[node][0])
    return [env[node] for node in (graph.outputs if outputs is None else outputs)]


_INT_INFO = {}  # {integer dtype: its np.iinfo}


def _adopting(cast, operand, graph, node):
    """Mark `cast`, rebuilt from `node`, a cast that a weak integer took to meet a tensor in
    `graph`, as such a cast of the graph it is built in: weak.int_limits then checks that
    the number fits (a compiled function's k = 2**40 meeting int32 rows in vmap). Eagerly
    (`operand`, the number, is a value) its values are checked here, as eager code checks a
    number meeting a tensor (`int32_tensor * 2**40` is refused, not wrapped)."""
    if isinstance(cast, Node):
        if cast.op == "cast":
            cast.graph.adopting_casts.add(cast.id)
        return
    data, dtype = np.asarray(getattr(operand, "data", operand)), np.dtype(node.attrs["dtype"])
    if data.size and data.dtype.kind in "iu" and dtype.kind in "iu":
        # (a number, mostly: 0-d, read as one int, no reductions; per eager vmap call)
        lo, hi = (int(data),) * 2 if data.ndim == 0 else (int(data.min()), int(data.max()))
        info = _INT_INFO.get(dtype) or _INT_INFO.setdefault(dtype, np.iinfo(dtype))
        if lo < info.min or hi > info.max:
            op = next((n.op for n in graph.nodes if any(x is node for x in n.inputs)), "vmap")
            raise GraphcError(f"{op}: integer scalar {hi if hi > info.max else lo} does not "
                              f"fit in {dtype} (the dtype of the tensor it meets); cast the "
                              "tensor first", node.locs or (user_location(),))


def _weak(value):
    """Mark `value`, rebuilt from a weakly typed node (a Python number's k + 1), weak in the
    graph it is built in, as its original was: meeting int32 rows it then takes their dtype
    through a cast that weak.int_limits checks, instead of wrapping unseen."""
    if isinstance(value, Node):
        value.graph.weak_ids.add(value.id)


def _int_power(value, base, exponent):
    """Record `value`, rebuilt from a power of weak ints by a traced exponent (3 ** k: a
    chain of wheres), as that power in the graph it is built in, as ir.ops.api.pow did in
    the unbatched graph: weak.exact_range then computes it exactly, so that one not fitting the
    tensor it meets is refused as without vmap, not wrapped."""
    if isinstance(value, Node):
        value.graph.int_powers[value] = (base, exponent)


def is_batched(flag) -> bool:
    """A value's batched flag: a bool, or one per element of a tuple (any batched)."""
    return any(flag) if isinstance(flag, tuple) else bool(flag)


def _run_rule(node, operands, batched, size):
    rule = rule_for(node.op)
    if rule is None:
        raise GraphcError(f"vmap: op {node.op!r} has no batching rule (ir/ops/batching.py)",
                          node.locs or (user_location(),))
    try:
        out = rule(operands, batched, size, **node.attrs)
    except GraphcError as exc:
        # an eager vmap runs the rule's ops now, whose failure (an index out of range) is
        # located at the vmap call: the op's own line (the user's indexing) is where it is
        if type(exc) is not GraphcError or not node.locs or exc.locs != (user_location(),):
            raise
        raise GraphcError(exc.message, node.locs) from None
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


from . import control_flow_batching  # noqa: E402,F401  (registers the control-flow ops' rules)
