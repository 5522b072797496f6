"""Session 37's fixes of the IR loaders, the command line and the save/load paths; each test
failed before its fix."""
import json

import pytest

from ir.errors import GraphcError
from ir.graph import Graph
from ir.ops.registry import REGISTRY
from ir.parser import parse
from ir.serialize import loads
from ir.types import TensorType
from ir.verify import verify

# every op of fixed arity with each wrong operand count just around it
_WRONG_ARITIES = [(name, op.arity, count) for name, op in sorted(REGISTRY.items())
                  if op.arity is not None and name not in ("input", "constant")
                  for count in (op.arity - 1, op.arity + 1) if count >= 0]


def _noun(arity):
    return "operand" if arity == 1 else "operands"


@pytest.mark.parametrize("name, arity, count", _WRONG_ARITIES)
def test_ir_loaders_and_verifier_refuse_a_wrong_operand_count(name, arity, count):
    """The text and JSON IR loaders and the verifier checked no operand count (only tracing
    did): `add %0, %1, %1` loaded, and the interpreter then passed the third operand to numpy
    as out=, overwriting the caller's input. Now all three refuse it in one line."""
    message = f"{name} takes {arity} {_noun(arity)}, got {count}"
    operands = ", ".join(["%0"] * count)
    text = f"graph g(%0:f32[4] x) -> (%1)\n  %1:f32[4] = {name} {operands}\n  return %1\n"
    with pytest.raises(GraphcError) as exc:
        parse(text)
    assert str(exc.value) == f"IR line 2, column 15: {message}"

    document = {"format": "graphc-ir", "version": 1, "name": "g",
                "inputs": [{"id": 0, "name": "x", "kind": "input", "type": "f32[4]"}],
                "nodes": [{"id": 1, "op": name, "inputs": [0] * count, "attrs": {},
                           "type": "f32[4]", "locs": [], "scope": ""}],
                "outputs": [1]}
    with pytest.raises(GraphcError, match=f"nodes\\[0\\].inputs: {message}$"):
        loads(json.dumps(document))

    graph = Graph("g")
    x = graph.input("x", (4,))
    graph.set_outputs([graph.add_node(name, [x] * count, {}, TensorType((4,), "float32"))])
    with pytest.raises(GraphcError) as exc:
        verify(graph)
    assert exc.value.message == f"node 1 ({name}): {message}"
