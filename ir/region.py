"""Building a region: the closed sub-graph a control-flow node holds (ir/ops/control_flow.py).

    region = Region("body")
    with region.building():
        h = region.input("h", (4,))          # the body's own arguments
        out = F.tanh(h @ w)                   # w: a node of the enclosing graph
    region.set_outputs([out])
    outer = region.close()                    # [w]: what the node passes in as "consts"

A value of an enclosing graph used inside becomes an input of the region the first time it is
read (as a JAX closure becomes a constvar of the sub-jaxpr); an op whose operands all belong
to the enclosing graph is built there, once, instead of once per iteration. An eager
Parameter read inside is a `param` input here and is passed in from the enclosing graph.
"""
from __future__ import annotations

from .errors import GraphcError, user_location
from .graph import Graph
from .ops.registry import SymbolicValue, like_dtype, lift_symbolic


class Region(Graph):
    captures_outer = True  # ir.ops.registry.apply: ops mixing outer values come here

    def __init__(self, name: str = "region"):
        super().__init__(name)
        self.captured = {}  # outer node -> the input standing for it here

    def capture(self, value):
        """`value` as a node of this region: outer nodes become inputs (once each)."""
        if not isinstance(value, SymbolicValue) or value.graph is self:
            return value
        node = self.captured.get(value)
        if node is None:
            node = self.input(f"outer{len(self.captured)}", value.shape, value.dtype,
                              kind="input")
            node.locs = value.locs
            self.captured[value] = node
        return node

    def process(self, op, inputs, attrs):
        return super().process(op, [self.capture(x) for x in inputs], attrs)

    def result(self, value):
        """An output of the region from what the user's function returned."""
        if isinstance(value, SymbolicValue):
            return self.capture(value)
        if hasattr(value, "graph_operand") or hasattr(value, "shape") or \
                isinstance(value, (bool, int, float)):
            return lift_symbolic(self, value, like_dtype([value]), "region result")
        raise GraphcError(f"a loop or branch function returned a {type(value).__name__}, not "
                          "an array", (user_location(),))

    def close(self, own_inputs) -> list:
        """Put the captured inputs first in the signature (JAX's consts) and return the outer
        values to pass for them: nodes of the enclosing graph, or eager Parameters."""
        own = set(own_inputs)
        extra = [n for n in self.inputs if n not in own]
        outer_of = {node: outer for outer, node in self.captured.items()}
        outer = []
        for n in extra:
            if n in outer_of:
                outer.append(outer_of[n])
            else:  # a parameter's `param` input (ir.ops.registry.graph_param)
                outer.append(self.param_values[n.attrs["name"]])
        self.set_signature(extra + list(own_inputs))
        self.bound_params = {}
        self.param_values = {}
        return outer

    def set_signature(self, inputs):
        """Reorder the inputs; their nodes move to the front in that order too, since passes
        rebuild a graph's signature in node order (ir/rewrite.py)."""
        inputs = list(inputs)
        assert len(inputs) == len(self.inputs) and set(inputs) == set(self.inputs)
        self.inputs = inputs
        self.nodes = inputs + [n for n in self.nodes if n.op != "input"]
