"""The reference interpreter: evaluates a graph node by node with each op's numpy evaluation.

It is deliberately simple; it is the ground truth that every pass and the compiled runtime
are tested against.
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.specialize import bind_dims, graph_is_symbolic, specialize
from ir.types import WIDENED_INPUTS, TupleType

from .eager import Tensor


def bind_inputs(graph, args, kwargs=None) -> list:
    """Match positional or named arguments to the graph's inputs and check their types."""
    kwargs = dict(kwargs or {})
    if len(args) > len(graph.inputs):
        raise GraphcError(f"graph {graph.name!r} takes {len(graph.inputs)} inputs, "
                          f"got {len(args)}")
    values = []
    for i, node in enumerate(graph.inputs):
        name = node.attrs["name"]
        if i < len(args):
            value = args[i]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif name in graph.param_values:
            value = graph.param_values[name].data
        else:
            raise GraphcError(f"graph {graph.name!r}: missing input {name!r} ({node.type})")
        if not isinstance(value, np.ndarray):
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
        if value.shape != node.shape and not node.type.symbolic:  # symbolic: bind_dims checks
            raise GraphcError(f"input {name!r} expects shape {node.shape}, got {value.shape}")
        if value.dtype != node.dtype:
            if np.can_cast(value.dtype, node.dtype, "same_kind") and value.ndim == 0 \
                    or WIDENED_INPUTS.get(value.dtype) == node.dtype:
                value = value.astype(node.dtype)
            else:
                raise GraphcError(f"input {name!r} expects dtype {node.dtype}, got "
                                  f"{value.dtype}")
        values.append(value)
    if kwargs:
        raise GraphcError(f"graph {graph.name!r} has no inputs named {sorted(kwargs)}")
    return values


def evaluate(graph, args, kwargs=None, keep_all=False):
    """Values of the graph's outputs (or of every node, with keep_all) for the given inputs.
    A graph with symbolic dimensions is first specialised to the sizes of these inputs (with
    keep_all, the dict is then keyed by the specialised graph's nodes)."""
    values = bind_inputs(graph, args, kwargs)
    if graph_is_symbolic(graph):
        graph = specialize(graph, bind_dims(graph, [v.shape for v in values]))
    env = dict(zip(graph.inputs, values))
    for node in graph.nodes:
        if node.op == "input":
            continue
        op = get_op(node.op)
        out = op.impl(*[env[i] for i in node.inputs], **node.attrs)
        if type(out) is not np.ndarray and not isinstance(node.type, TupleType):
            out = np.asarray(out, dtype=node.dtype)
        env[node] = out  # a control-flow node's value is a tuple of arrays
    if keep_all:
        return env
    return [env[o] for o in graph.outputs]


def run(graph, *args, **kwargs):
    return evaluate(graph, args, kwargs)
