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

import numpy as np

from . import weak
from .errors import GraphcError, a_type, user_location
from .graph import Graph
from .ops.registry import SymbolicValue, is_weak_scalar, like_dtype, lift_symbolic


class Region(Graph):
    captures_outer = True  # ir.ops.registry.apply: ops mixing outer values come here
    # a cond's branch or a loop's body: a call may not run it, so a negative size made in it
    # is refused where it runs (as eagerly), not where it is traced (ir.ops.api._check_sizes)
    may_not_run = True

    def __init__(self, name: str = "region", parent=None):
        super().__init__(name)
        self.captured = {}  # outer node -> the input standing for it here
        # the graph the node goes into: what the trace reads and the dropout sites it
        # numbers belong to that graph's plan (Graph.guard, Graph.next_salt)
        self.parent = parent
        # a loop body (or a while_loop's condition): dropout sites inside mix in its
        # iteration number, an int64 input made on first use that graphc.control_flow
        # feeds (scan: arange(length) as one more scanned value; while_loop: a carry)
        self.is_loop = False
        self.iteration_input = None

    def guard(self, obj, attr: str, value) -> None:
        if self.parent is None:
            return super().guard(obj, attr, value)
        self.parent.guard(obj, attr, value)

    def set_while_tracing(self, obj, attr: str, forget_read: bool = False) -> None:
        if self.parent is None:
            return super().set_while_tracing(obj, attr, forget_read)
        self.parent.set_while_tracing(obj, attr, forget_read)

    def next_salt(self) -> int:
        if self.salt_scope is not None:  # a control-flow construct's function: its own count
            return super().next_salt()
        if self.parent is not None:  # vmap's graph: its sites are those of where vmap stands
            return self.parent.next_salt()
        # no parent: traced in eager code (graphc.vmap's graph, eagerly), so its dropout
        # sites are numbered among the eager ones (ir.ops.api.dropout)
        from .ops.api import next_eager_salt
        return next_eager_salt()

    def iteration(self):
        """This loop body's iteration number (0, 1, ...), an input of the region."""
        if self.iteration_input is None:
            self.iteration_input = self.input("iteration", (), "int64")
        return self.iteration_input

    def capture(self, value):
        """`value` as a node of this region: outer nodes become inputs (once each)."""
        if not isinstance(value, SymbolicValue):
            # a parent that captures values of its own (graphc.vmap's graph takes an eager
            # tensor as an input, so the tape reaches it) sees the value first
            parent_capture = getattr(self.parent, "capture", None)
            value = parent_capture(value) if parent_capture is not None else value
            if not isinstance(value, SymbolicValue):
                return value
        if value.graph is self:
            return value
        node = self.captured.get(value)
        if node is None:
            node = self.input(f"outer{len(self.captured)}", value.shape, value.dtype,
                              kind="input")
            node.locs = value.locs
            self.captured[value] = node
            if weak.is_weak(value):  # a Python number of the enclosing trace stays weak
                self.weak_ids.add(node.id)
        return node

    def process(self, op, inputs, attrs):
        return super().process(op, [self.capture(x) for x in inputs], attrs)

    def outer_links(self) -> dict:
        """{an input of this region: the node of the enclosing graph it stands for} (its
        captured values; not its own operands: a carry, a cond operand). The one map of
        them: a gradient taken inside with respect to an outer value is carried out through
        it (passes/autodiff._through_captures), and a refused value is followed out through
        it to the Python number it comes from (outer_value). graphc's vmap region keeps its
        captures in another form and adds its unbatched arguments."""
        return {inner: outer for outer, inner in self.captured.items()}

    def part_links(self) -> dict:
        """{an input of this region: the node of the enclosing graph it is one part of},
        which `part` rebuilds it from: none here. graphc's vmap region answers its batched
        arguments (an example is one row of the value vmap maps over), so that a gradient
        taken inside with respect to that value reaches it, in that example's row."""
        return {}

    def part(self, node, whole):
        """This region's input `node` (a key of part_links) built from `whole`, a value of
        the graph being built that stands for the enclosing node it is a part of."""
        raise NotImplementedError(f"{type(self).__name__} has no parts of outer values")

    def outer_value(self, node):
        """The node of the enclosing graph that this region's input `node` stands for, or
        None (the region's own operand)."""
        return self.outer_links().get(node)

    def result(self, value):
        """An output of the region from what the user's function returned."""
        if isinstance(value, SymbolicValue):
            return self.capture(value)
        if hasattr(value, "graph_operand") or hasattr(value, "shape") or \
                isinstance(value, (bool, int, float)):
            node = lift_symbolic(self, value, like_dtype([value]), "region result")
            if is_weak_scalar(value) and not isinstance(value, (bool, np.bool_)):
                self.weak_ids.add(node.id)  # a number returned stays one, as eagerly
            return node
        raise GraphcError(f"a loop or branch function returned {a_type(value)}, not "
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
            else:  # an input bound to a Python object (a Parameter, the dropout key)
                outer.append(self._bound_in_parent(n))
        self.set_signature(extra + list(own_inputs))
        self.bound_params = {}
        self.param_values = {}
        return outer

    def _bound_in_parent(self, node):
        """The parent's input bound to the object this input is bound to (created there as
        ir.ops.registry.graph_param creates a parameter's), or the object itself without a
        parent (an operand that knows how to enter a graph)."""
        obj = self.param_values[node.attrs["name"]]
        parent = self.parent
        if parent is None:
            return obj
        bound = parent.bound_params.get(id(obj))
        if bound is None:
            taken = {n.attrs["name"] for n in parent.inputs}
            name, k = node.attrs["name"], 1
            while name in taken:
                name, k = f"{node.attrs['name']}_{k}", k + 1
            bound = parent.input(name, node.shape, node.dtype, kind=node.attrs["kind"])
            parent.bound_params[id(obj)] = bound
            parent.param_values[name] = obj
        return bound

    def set_signature(self, inputs):
        """Reorder the inputs; their nodes move to the front in that order too, since passes
        rebuild a graph's signature in node order (ir/rewrite.py)."""
        inputs = list(inputs)
        assert len(inputs) == len(self.inputs) and set(inputs) == set(self.inputs)
        self.inputs = inputs
        self.nodes = inputs + [n for n in self.nodes if n.op != "input"]
