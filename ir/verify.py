"""The verifier: a graph is well formed when every node's attributes are of their kinds and
its type follows from its op's rule."""
from __future__ import annotations

from .errors import GraphcError
from .ops.control_flow import regions_of
from .ops.registry import REGISTRY
from .types import TensorType


def verify(graph) -> None:
    """Raise GraphcError naming the first malformed node; return None for a good graph."""
    seen = set()
    signature = set(graph.inputs)
    for n in graph.inputs:
        if n.op != "input" or n.graph is not graph:
            raise GraphcError(f"graph input {n!r} is not an input node of this graph", n.locs)
    for index, n in enumerate(graph.nodes):
        where = f"node {index} ({n.op})"
        if n.graph is not graph:
            raise GraphcError(f"{where} belongs to another graph", n.locs)
        if n in seen:
            raise GraphcError(f"{where} appears twice in the node list", n.locs)
        op = REGISTRY.get(n.op)
        if op is None:
            raise GraphcError(f"{where}: unknown op {n.op!r}", n.locs)
        for i in n.inputs:
            if i not in seen:
                raise GraphcError(f"{where} uses a value that is not defined before it "
                                  f"(dangling or cyclic): {i!r}", n.locs)
        if n.op == "input":
            if n not in signature:
                raise GraphcError(f"{where}: input {n.attrs.get('name')!r} is not in the "
                                  "graph's signature", n.locs)
        elif n.op == "constant":
            v = n.attrs.get("value")
            if v is None or TensorType(v.shape, v.dtype) != n.type:
                raise GraphcError(f"{where}: constant value does not match type {n.type}",
                                  n.locs)
        else:
            mismatch = op.arity_mismatch(len(n.inputs))
            if mismatch:
                raise GraphcError(f"{where}: {mismatch}", n.locs)
            problem = op.attribute_problem(n.attrs)
            if problem:
                raise GraphcError(f"{where}: {problem[1]}", n.locs)
            try:
                expected = op.infer([i.type for i in n.inputs], **n.attrs)
            except Exception as exc:
                raise GraphcError(f"{where}: ill-typed: {getattr(exc, 'message', exc)}",
                                  n.locs) from None
            if expected != n.type:
                raise GraphcError(f"{where}: type {n.type} but its operands give {expected}",
                                  n.locs)
            for region in regions_of(n):  # a control-flow node's sub-graphs
                try:
                    verify(region)
                except GraphcError as exc:
                    raise GraphcError(f"{where}, region {region.name!r}: {exc.message}",
                                      exc.locs or n.locs) from None
        seen.add(n)
    for o in graph.outputs:
        if o not in seen:
            raise GraphcError(f"graph output {o!r} is not a node of the graph")
