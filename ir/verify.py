"""The verifier: a graph is well formed when every node's attributes are of their kinds and
its type follows from its op's rule. `check_node` is that check of one node, which the IR
readers (ir/parser.py, ir/serialize.py) make too as they read each node: each names where the
problem is in its own terms (a node's number, a line and column, a JSON path)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import GraphcError
from .ops.control_flow import regions_of
from .ops.registry import REGISTRY, TypeRuleError
from .types import TensorType


@dataclass(frozen=True)
class NodeProblem:
    """What check_node found wrong with a node."""
    part: str  # "operands" (their count), "attribute" (its kind), "rule" or "type"
    message: str  # the complaint; "type": "OP gives TYPE", for the reader to say what it read
    attribute: str | None = None  # "attribute": the attribute's name
    expected: object = None  # "type": the type the op's rule gives
    # "rule": the rule's own words (a TypeRuleError, a GraphcError), not Python's (a
    # TypeError of an attribute of another type), which a reader may introduce
    rule_words: bool = True


def check_node(op, operand_types, attrs, type_) -> NodeProblem | None:
    """The first problem of a node of `op` (not an input or a constant) with operands of
    these types, these attributes and type `type_`, else None. In this order: the operand
    count (a type rule takes any count: an extra operand would reach numpy as its `out=`),
    the attributes' kinds (ATTRIBUTE_KINDS; the rules check ranges but trust the kinds), the
    type rule, and the type it gives against `type_`."""
    mismatch = op.arity_mismatch(len(operand_types))
    if mismatch:
        return NodeProblem("operands", mismatch)
    problem = op.attribute_problem(attrs)
    if problem:
        return NodeProblem("attribute", problem[1], attribute=problem[0])
    try:
        expected = op.infer(operand_types, **attrs)
    except Exception as exc:  # (a rule meeting what it does not expect fails in any way)
        return NodeProblem("rule", str(getattr(exc, "message", exc)),
                           rule_words=isinstance(exc, (GraphcError, TypeRuleError)))
    if expected != type_:
        return NodeProblem("type", f"{op.name} gives {expected}", expected=expected)
    return None


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
            problem = check_node(op, [i.type for i in n.inputs], n.attrs, n.type)
            if problem is not None:
                message = problem.message  # (the operand count, an attribute)
                if problem.part == "rule":
                    message = f"ill-typed: {problem.message}"
                elif problem.part == "type":
                    message = f"type {n.type} but its operands give {problem.expected}"
                raise GraphcError(f"{where}: {message}", n.locs)
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
