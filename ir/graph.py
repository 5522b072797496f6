"""The IR: a Graph of single-output SSA nodes.

A Node *is* its value (as in torch.fx): inputs, parameters and constants are nodes too, with
ops "input" and "constant". Node lists are kept in a topological order by construction, since a
node can only be built from nodes that already exist.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
from typing import TYPE_CHECKING

import numpy as np

from . import weak
from .errors import GraphcError, TracedAttributeError, TracedNumberError, user_location
from .ops.operators import OperatorMixin
from .ops.registry import (GRAD_MODE, Interpreter, SymbolicValue, block_depth, get_op,
                           infer_type, innermost_interpreter, interpreting, is_weak_scalar,
                           lift_symbolic, like_dtype)
from .types import Dim, TensorType, is_float

if TYPE_CHECKING:
    import networkx as nx


def site_salt(scope, number: int) -> int:
    """The salt of the number-th dropout site (1, 2, ...) of a scope: the number itself at the
    top of a graph or of an eager run; inside a control-flow construct, scope = (the salt the
    construct itself took where it stands, which of its functions: a cond's branch, a loop's
    body), and the salt a 56-bit hash of the three. A construct thus takes one number in its
    scope however many of its sites run, traced as eagerly (graphc/control_flow.py)."""
    if not scope:  # None, or () for an rng_key block's own count (graphc.nn.rng_key)
        return number
    text = "%d.%d.%d" % (scope[0], scope[1], number)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "little")


# torch.Tensor's names that mean nothing for a value being traced, and what to do instead
_NO_VALUE_YET = ("its value is only known when the compiled graph runs: return it from the "
                 "function, or compute it eagerly")
_GRADIENT_CHOSEN_ELSEWHERE = ("what gets a gradient is chosen by gc.grad's argnums (or, "
                              "outside, by the Parameters' requires_grad); x.detach() stops a "
                              "gradient")
_TENSOR_ONLY = {
    "backward": "call backward() on the compiled function's result, or take gradients inside "
                "with gc.grad / gc.value_and_grad",
    "grad": "gradients come from gc.grad / gc.value_and_grad inside, or from the Parameters' "
            ".grad after backward() of the compiled function's result",
    "requires_grad": _GRADIENT_CHOSEN_ELSEWHERE, "requires_grad_": _GRADIENT_CHOSEN_ELSEWHERE,
    "data": "use the value itself, or x.detach() for it without its gradient",
    "item": _NO_VALUE_YET, "numpy": _NO_VALUE_YET, "tolist": _NO_VALUE_YET,
}


class Node(SymbolicValue, OperatorMixin):
    __slots__ = ("id", "op", "inputs", "attrs", "type", "locs", "scope", "graph", "__weakref__")
    __hash__ = object.__hash__

    def __init__(self, graph, id, op, inputs, attrs, type, locs, scope=""):
        self.graph = graph
        self.scope = scope  # the layer that built it ("blocks.0.attn"), for dumps
        self.id = id
        self.op = op
        self.inputs = list(inputs)
        self.attrs = attrs
        self.type = type
        self.locs = locs

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def ndim(self):
        return len(self.type.shape)

    @property
    def size(self):
        return self.type.size

    @property
    def name(self):
        return self.attrs.get("name")

    def __repr__(self):
        return f"<%{self.id}:{self.type} = {self.op}>"

    # Python control flow on a symbolic value cannot work: the value does not exist yet.
    def __bool__(self):
        return bool(self._no_value("a symbolic value has no truth value while the graph is "
                                   "being built; use graphc.where(cond, a, b) instead of "
                                   "`if`, or compute the condition in Python"))

    def __float__(self):
        return float(self._no_value("float() of a symbolic value: its value is only known "
                                    "when the compiled graph runs"))

    def __int__(self):  # (an int() or an index: a shape, a range, a slice bound)
        return int(self._no_value("int() of a symbolic value: its value is only known when "
                                  "the compiled graph runs"))

    __index__ = __int__

    def _no_value(self, message):
        """Refuses a Python value of this symbolic one (returns one only in a probe trace)."""
        argument = self._traced_argument()
        # the 0-d inputs it is computed from (`if k > 1`, `float(2 * s)`), in argument order
        scalars = [argument] if argument is not None else sorted(
            self._scalar_arguments(), key=lambda n: n.id)
        names = tuple(n.attrs["name"] for n in scalars)
        if scalars and all(n._traced_argument() is not None for n in scalars):
            # Python numbers only: static_argnums (or a transformation passing them as they
            # are) helps; where a 0-d array is among them it would not
            if _PROBE.hook is not None:  # (a probe trace: its value, and the trace goes on)
                value = _PROBE.hook(self, names, message)
                if value is not None:
                    return value
            quoted = " and ".join(repr(name) for name in names)
            one = len(names) == 1
            values = (f"the value passed as {quoted} is traced: to use a Python number or bool "
                      "as a Python value, " if one else
                      f"the values passed as {quoted} are traced: to use Python numbers or "
                      "bools as Python values, ")
            transformation = scalars[0]._traced_argument().graph.without_static_args
            if transformation is None:
                advice = f"list {'its position' if one else 'their positions'} in static_argnums"
            else:  # (as JAX's vjp and jvp: no static_argnums to name)
                advice = (f"close over {'it' if one else 'them'}, as in {transformation}: "
                          f"{transformation.partition('(')[0]} takes no static arguments")
            raise TracedNumberError(f"{message}; {values}{advice}", (user_location(),),
                                    arguments=names, reason=message, advice=advice, value=self)
        if self._traced_argument(operand=True) is not None:
            message += ("; a number passed to cond as an operand is traced in its branches: "
                        "close over it to use it as a Python value")
        if scalars:  # 0-d inputs: grad's runner passes Python floats traced as them as they are
            raise TracedNumberError(message, (user_location(),), arguments=names, value=self)
        # no argument to pass as it is (nothing retries), but the value asked goes with it: a
        # transformation that made a number it differentiates a variable (grad under vmap,
        # whose unmapped number is a constant here) tells to leave it out of its argnums
        raise TracedNumberError(message, (user_location(),), value=self)

    def _scalar_arguments(self) -> list:
        """The 0-d inputs of the function's graph this value is computed from, with
        constants alone (read inside a loop body or branch too); [] where it reads any other
        input (an array, a region's own operand). Only when a value is refused."""
        from .region import Region
        found, seen, pending = [], set(), [self]
        while pending:
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op != "input":
                pending.extend(node.inputs)
            elif isinstance(node.graph, Region):
                outer = node.graph.outer_value(node)
                if outer is None:
                    return []
                pending.append(outer)
            elif node.type.shape != ():
                return []
            else:
                found.append(node)
        return found

    def _traced_argument(self, operand=False):
        """The input of the function's graph this value is, where it is a Python number or
        bool passed to a compiled function (a weakly typed input, or a 0-d bool one, traced as
        JAX traces them), also as read inside a loop body or branch (a region's input
        capturing it); else None. operand=True: instead the region's own weak input it is (a
        number passed to cond as an operand), or None."""
        from .region import Region  # (it builds on Graph)
        node = self
        while node.op == "input" and isinstance(node.graph, Region):
            outer = node.graph.outer_value(node)
            if outer is None:  # the region's own operand (a cond operand, a carry)
                return node if operand and node.id in node.graph.weak_ids else None
            node = outer
        if operand:
            return None
        if node.op != "input" or not (node.id in node.graph.weak_ids or (
                node.id in node.graph.python_number_ids) or (
                node.type.shape == () and node.type.dtype == np.bool_)):
            return None
        return node

    def __getattr__(self, name):  # (only for names a Node does not have)
        if name not in _TENSOR_ONLY:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        _refuse_tensor_only(name)

    def __array__(self, *args, **kwargs):
        hint = ""
        if self.type.shape == () and self.type.dtype.kind in "iu":
            # (numpy's X[i] with a traced index, the usual way here: a loop's index; eagerly
            # the index is a number and that works)
            hint = ("; if it indexes a numpy array (X[i] of a closed-over X), make X a tensor "
                    "(gc.tensor(X)) or pass it as an argument")
        raise GraphcError("a symbolic value cannot be turned into a numpy array while the graph "
                          f"is being built; run the graph (graphc.compile) to get values{hint}",
                          (user_location(),))

    def __iter__(self):
        """Rows along the first axis (its size is known while tracing): `q, k, v = t`."""
        return (self[i] for i in range(len(self)))

    def __len__(self):
        if not self.shape:
            raise GraphcError("len() of a 0-d symbolic value", (user_location(),))
        return self.shape[0]


def _refuse_tensor_only(name):
    """The one-line error for a torch.Tensor name (_TENSOR_ONLY) used on a traced value."""
    raise TracedAttributeError(f".{name} of a traced value (in a compiled or transformed "
                               f"function): {_TENSOR_ONLY[name]}", (user_location(),))


def _refuse_tensor_only_write(name):
    """torch's `x.requires_grad = True` (or .data = / .grad =) on a traced value: Node's slots
    gave the raw "'Node' object has no attribute"; now Node.__getattr__'s one line. A
    property with no getter (reading still goes to __getattr__), not a Node.__setattr__, so
    that Node's own slot writes cost nothing more."""
    def write(node, value):
        _refuse_tensor_only(name)
    return property(None, write)


for _name in ("requires_grad", "data", "grad"):
    setattr(Node, _name, _refuse_tensor_only_write(_name))


def _digest_value(digest, value, arrays) -> None:
    """Feed an attribute value into a fingerprint's digest (Graph.fingerprint); `arrays`:
    id -> number of the arrays already fed, which are fed again by their number only (one
    closed-over array used four times is hashed once)."""
    if isinstance(getattr(value, "fingerprint", None), str):
        digest.update(value.fingerprint.encode())  # a value that says what it stands for
    elif isinstance(value, np.ndarray) and id(value) in arrays:
        digest.update(f"array #{arrays[id(value)]}".encode())
    elif isinstance(value, np.ndarray):
        arrays[id(value)] = len(arrays)  # (the graph holds the array while this runs)
        digest.update(repr(("array", value.shape, str(value.dtype))).encode())
        # bytes as uint8 (memoryview refuses bfloat16's dtype and casts of empty arrays)
        digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8).data
                      if value.dtype != object else repr([id(v) for v in value.flat]).encode())
    elif isinstance(value, Graph):
        digest.update(("graph " + value.fingerprint()).encode())
    elif isinstance(value, float):
        digest.update(("float " + value.hex()).encode())  # -0.0 and 0.0 differ
    elif isinstance(value, (tuple, list)):
        digest.update(f"{type(value).__name__} {len(value)}".encode())
        for v in value:
            _digest_value(digest, v, arrays)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}".encode())
        for k in sorted(value, key=repr):
            digest.update(repr(k).encode())
            _digest_value(digest, value[k], arrays)
    elif value is None or isinstance(value, (bool, int, str, np.dtype, np.generic, Dim)):
        digest.update(f"{type(value).__name__} {value!r}".encode())
    else:  # a function (a custom rule), an object the op keeps: by its identity
        digest.update(f"{type(value).__qualname__} {id(value)}".encode())


class Graph(Interpreter):
    """An ordered list of nodes, the graph's inputs (in signature order) and its outputs.

    While it is being built (`with graph.building()`), and for op calls on its nodes, it is
    the interpreter that `ir.ops.registry.apply` hands op calls to: each adds a node."""

    # whether a call may not run the nodes built into it: a cond's branch or a loop's body
    # (ir.region.Region), eval_shape's graph of a scan body no step runs (graphc.tracing's
    # unchecked_eval_shape). ir.ops.api._check_sizes refuses a negative size where it is
    # made only where it runs
    may_not_run = False

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: list[Node] = []
        self.inputs: list[Node] = []
        self.outputs: list[Node] = []
        self.output_tree = None  # how outputs unflatten into the traced function's result
        self.bound_params = {}  # id(Parameter) -> input node, filled while lifting layers
        self.param_values = {}  # input name -> the Parameter whose value it stands for
        # (object, attribute, value): Python state the trace read (a Dropout's `training`);
        # a compiled function reuses the plan only while every one still holds
        self.guards = []
        # symbolic sizes some binding could make negative, recorded before the passes
        # rewrite their nodes away: what ir.specialize checks first (size_checks there)
        self.size_checks = ()
        self._set_while_tracing = set()  # (id(object), attribute): state the trace set itself
        self._next_id = 0
        self._next_salt = 0
        self.salt_scope = None  # (construct, function) while numbering a construct's sites
        self.adopting_casts = set()  # ids of the casts a weak value took to meet a tensor
        self.weak_ids = set()  # weakly typed nodes (ir/weak.py): Python numbers a trace took
        # {id of a node computed in a no_grad block entered in the traced function: how deep
        # in blocks (registry.block_depth)}, and {id of a value from outside such a
        # block: the stop_gradient it is read through}
        self.block_depth = {}
        self._stopped = {}
        # inputs that were Python floats, traced with the arrays' dtype (not weak): numbers
        # still, for the static_argnums hint of a traced number (Node._no_value)
        self.python_number_ids = set()
        # a call of the transformation tracing this function where it takes no static
        # arguments (gc.vjp, gc.jvp, gc.linearize, as JAX's), closing over a number: the hint
        # for a traced number used as a Python value; None: gc.compile's static_argnums
        self.without_static_args = None
        # gc.compile's arguments' positions by name ({"args[1]": 1}): the advice for a
        # differentiated number names a value of *args by position in static_argnums
        self.argument_positions = {}
        self.int_powers = {}  # {weak int node: (base, exponent)}: ir.ops.api.pow's, exactly
        # {weak float node a weak division reads: its number as a function of a call's
        # (inputs, known)}: weak.python_divisions', so that a call computes it in a few calls
        self.float_numbers = {}
        self.finished = None  # what traced it, once a compiled function's trace has ended
        self.loc_override = None
        self.scope_override = None
        self._copies = {}  # id(writable array) -> (it, its read-only copy): constant()

    def fingerprint(self) -> str:
        """A digest of what the graph computes: each node's op, operands, type and attributes
        (constants by their bytes, sub-graphs by their own fingerprints), the inputs, the
        outputs and their structure, and which Parameter each input stands for. Two traces
        of a function with the same fingerprint compute the same thing (graphc's eager
        transformations trace again at each call, as JAX's, and reuse a plan only then)."""
        digest, arrays = hashlib.sha256(), {}  # (sha256: the CPU's SHA instructions)
        for node in self.nodes:
            digest.update(repr((node.id, node.op, [i.id for i in node.inputs],
                                str(node.type))).encode())
            _digest_value(digest, node.attrs, arrays)
        digest.update(repr(([n.id for n in self.inputs], [n.id for n in self.outputs],
                            self.output_tree, sorted(self.weak_ids),
                            sorted((k, id(p)) for k, p in self.param_values.items()))).encode())
        return digest.hexdigest()

    def guard(self, obj, attr: str, value) -> None:
        """The trace read obj.attr == value: a plan of this graph is for that state only
        (unless the traced function set the attribute itself, see set_while_tracing)."""
        if (id(obj), attr) not in self._set_while_tracing and not any(
                o is obj and a == attr for o, a, _ in self.guards):  # (the first read holds)
            if isinstance(value, (list, dict, set)):
                # a copy: the same list changed in place (module.size[0] = 6) must not hold
                value = copy.deepcopy(value)
            self.guards.append((obj, attr, value))

    def set_while_tracing(self, obj, attr: str, forget_read: bool = False) -> None:
        """The traced function sets obj.attr itself (model.train(flag) inside a loss): what
        it reads afterwards is the value it set, which the plan embodies, not a guard on the
        value found before a call. `forget_read`: a read before the set is no guard either
        (a counter the function bumps, `self.calls += 1`: each call's value differs, and a
        guard on it would trace every call again)."""
        self._set_while_tracing.add((id(obj), attr))
        if forget_read:
            self.guards = [g for g in self.guards if not (g[0] is obj and g[1] == attr)]

    # ---- building --------------------------------------------------------------------------
    def add_node(self, op, inputs, attrs, type, locs=None, scope=None) -> Node:
        if locs is None:
            locs = self.loc_override
            if locs is None:
                loc = user_location()
                locs = (loc,) if loc else ()
        if scope is None:
            scope = self.scope_override if self.scope_override is not None else \
                (_STACK.scopes[-1] if _STACK.scopes else "")
        node = Node(self, self._next_id, op, inputs, attrs, type, locs, scope)
        self._next_id += 1
        self.nodes.append(node)
        return node

    def process(self, op, inputs, attrs) -> Node:
        weak_result = numbers_alone = False
        if any(getattr(x, "weak", False) is True for x in inputs):
            # an eager weak value (runtime.eager.WeakTensor: gc.sqrt(2.0)) read by the trace
            # is a weak constant, so it meets tensors and numbers as it does eagerly
            inputs = [self.weak_constant(x.data) if getattr(x, "weak", False) is True else x
                      for x in inputs]
        if op.name == "tuple_get":
            weak_result = weak.result_is_weak(inputs[0], attrs["index"])
        elif self.weak_ids and any(weak.is_weak(x) for x in inputs):
            inputs, weak_result = weak.adopt(op.name, inputs, self._cast, attrs)
        elif op.name in weak.KEEPS_WEAK and inputs:
            # numbers alone (gc.sqrt(2.0); where's two values), as eagerly (runtime.eager):
            # a 0-d result, as an eager WeakTensor is (where's condition may have a shape)
            positions = weak.NUMBER_POSITIONS[op.name]
            numbers_alone = all(map(is_weak_scalar, inputs if positions is None
                                    else [inputs[i] for i in positions]))
        like = like_dtype(inputs)
        args = [lift_symbolic(self, x, like, op.name) for x in inputs]
        if GRAD_MODE.enabled and not GRAD_MODE.floor:
            node = self.add_node(op.name, args, attrs,
                                 infer_type(op, [a.type for a in args], attrs))
        else:
            node = self._process_in_block(op, args, attrs)
        if (weak_result or numbers_alone and node.type.shape == ()) and \
                node.dtype != np.dtype(bool):
            self.weak_ids.add(node.id)
        return node

    def _process_in_block(self, op, args, attrs) -> Node:
        """An op run under a no_grad entered in the traced function: what it computes is a
        constant for differentiation, as it is eagerly (torch's, torch.compile's); so is an op
        of a function that a transformation called in the block traces, for the derivatives
        outside the block (registry.differentiating). A float value entering the block from
        outside (an input, a parameter, a value computed in grad mode) is read through a
        stop_gradient, one per value however often the blocks read it; values computed in
        the block need none of their own, since every path into them from outside crosses
        one. (A stop_gradient's own operand needs none either.) A tuple from outside (a
        control-flow node's, read by tuple_get) cannot be stopped: the op's float result is,
        instead. A value computed less deep in blocks (registry.block_depth) is from
        outside: in gc.grad(h) called in a block, h's values, read in a block of h's own."""
        depth = block_depth()
        from_outside_tuple = False
        if op.name != "stop_gradient":
            args = list(args)
            for k, a in enumerate(args):
                if a.op in ("constant", "stop_gradient") or \
                        self.block_depth.get(a.id, 0) >= depth:  # (no gradient to stop)
                    continue
                if isinstance(a.type, TensorType):
                    if is_float(a.type.dtype):
                        args[k] = self._stopped_value(a)
                else:
                    from_outside_tuple = True
        node = self.add_node(op.name, args, attrs, infer_type(op, [a.type for a in args], attrs))
        if from_outside_tuple and isinstance(node.type, TensorType) and \
                is_float(node.type.dtype):
            node = self.add_node("stop_gradient", [node], {}, node.type)
        self.block_depth[node.id] = depth
        return node

    def _stopped_value(self, value) -> Node:
        """stop_gradient(value), made once per value (weak as the value is)."""
        stopped = self._stopped.get(value.id)
        if stopped is None:
            stopped = self.add_node("stop_gradient", [value], {}, value.type)
            self._stopped[value.id] = stopped
            if value.id in self.weak_ids:
                self.weak_ids.add(stopped.id)
        return stopped

    def weak_constant(self, value) -> Node:
        """A constant that meets tensors as a Python number does (ir/weak.py)."""
        node = self.constant(value)
        self.weak_ids.add(node.id)
        return node

    def _cast(self, node, dtype):
        cast = self.process(get_op("cast"), [node], {"dtype": dtype})
        self.adopting_casts.add(cast.id)  # (not a cast the user wrote: see weak.int_limits)
        return cast

    def input(self, name: str, shape, dtype="float32", kind: str = "input") -> Node:
        if any(n.attrs["name"] == name for n in self.inputs):
            raise GraphcError(f"graph {self.name!r} already has an input named {name!r}")
        node = self.add_node("input", [], {"name": name, "kind": kind}, TensorType(shape, dtype))
        self.inputs.append(node)
        return node

    def constant(self, value) -> Node:
        """A constant node holding `value`, read-only. A writable array is copied, once per
        graph however often it is used: the caller's stays theirs to write, and writing it
        cannot change a plan's constant."""
        if isinstance(value, np.ndarray) and value.flags.writeable:
            # (the source is kept with its copy, so that its id is not reused while traced)
            value = self._copies.setdefault(id(value), (value, np.array(value)))[1]
        else:
            value = np.asarray(value)
        value.setflags(write=False)
        return self.add_node("constant", [], {"value": value}, TensorType(value.shape, value.dtype))

    def set_outputs(self, outputs):
        for out in outputs:
            if not isinstance(out, Node) or out.graph is not self:
                raise GraphcError(f"graph output {out!r} is not a value of graph {self.name!r}")
        self.outputs = list(outputs)

    def next_salt(self) -> int:
        """A fresh per-graph number that tells one dropout site's mask from another's."""
        self._next_salt += 1
        return site_salt(self.salt_scope, self._next_salt)

    def building(self):
        """Op calls inside add nodes to this graph."""
        return interpreting(self)

    @contextlib.contextmanager
    def locations(self, locs, scope=None):
        """Nodes built inside take these source locations and layer scope (autodiff: the
        forward node's)."""
        saved = self.loc_override, self.scope_override
        self.loc_override = tuple(locs)
        self.scope_override = scope
        try:
            yield
        finally:
            self.loc_override, self.scope_override = saved

    # ---- analysis --------------------------------------------------------------------------
    def users(self) -> dict:
        uses = {n: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                uses[i].append(n)
        return uses

    def input_by_name(self, name: str) -> Node:
        for n in self.inputs:
            if n.attrs["name"] == name:
                return n
        raise GraphcError(f"graph {self.name!r} has no input named {name!r}")

    def to_networkx(self) -> nx.MultiDiGraph:
        """The graph for networkx's algorithms (dumps and statistics, not hot paths): a node
        per value, keyed by its id, with its op, type, FLOPs, input name, layer scope and
        first source line, and whether it is an output (strings, numbers and booleans only,
        so GraphML can hold them); an edge per operand, from producer to user, keyed by and
        carrying (`operand`) its position among the user's operands: a multigraph, so that
        `x * x` has its two edges (a DiGraph kept one). (networkx is imported here: building
        and running graphs never needs it.)"""
        import networkx as nx
        g = nx.MultiDiGraph(name=self.name)
        outputs = set(self.outputs)
        for n in self.nodes:
            op = get_op(n.op)
            flops = op.flops([i.type for i in n.inputs], n.type, **n.attrs) if op.flops else 0
            where = f"{n.locs[0][0]}:{n.locs[0][1]}" if n.locs else ""
            g.add_node(n.id, op=n.op, type=str(n.type), flops=float(flops),
                       name=n.name if isinstance(n.name, str) else "", scope=n.scope,
                       source=where, output=n in outputs)
            for k, i in enumerate(n.inputs):
                g.add_edge(i.id, n.id, key=k, operand=k)
        return g

    def __str__(self):
        from .printer import format_graph
        return format_graph(self)

    def __repr__(self):
        return f"<Graph {self.name!r}: {len(self.nodes)} nodes, {len(self.inputs)} inputs, " \
               f"{len(self.outputs)} outputs>"


class _Probe(threading.local):
    """A probe trace (graphc's eager_runner, seeing every use of a number fn uses as a
    Python value, not only the first): hook(value, input names, reason) gives the value of
    a traced number computed from Python numbers only, whose use is then not refused, or
    None (refused, as in every other trace)."""
    hook = None


_PROBE = _Probe()


@contextlib.contextmanager
def probing(hook):
    before, _PROBE.hook = _PROBE.hook, hook
    try:
        yield
    finally:
        _PROBE.hook = before


class _Scopes(threading.local):
    def __init__(self):
        self.scopes = []


@contextlib.contextmanager
def scope(name: str):
    """Nodes built inside belong to this layer scope (nested scopes join with '.')."""
    _STACK.scopes.append(name)
    try:
        yield
    finally:
        _STACK.scopes.pop()


_STACK = _Scopes()


def current_graph():
    """The graph being built innermost (Graph.building), or None."""
    interpreter = innermost_interpreter()
    return interpreter if isinstance(interpreter, Graph) else None
