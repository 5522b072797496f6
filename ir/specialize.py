"""Shape polymorphism's two steps at call time: bind the symbols, then specialise the graph.

    binding = bind_dims(graph, input_shapes)    # {"batch": 8}, from the arrays of one call
    concrete = specialize(graph, binding)       # the same graph with every Dim evaluated

A graph with symbolic dimensions (`f32[batch,128]`, ir/types.py's Dim) is traced and
optimised once; each binding of its symbols gives a concrete graph (a cheap copy: no pass
runs again) that the runtime lowers and caches per binding (runtime/polymorphic.py).
"""
from __future__ import annotations

from .errors import GraphcError, user_location
from .graph import Graph
from .ops.registry import get_op
from .types import Dim, TensorType, TupleType, holds_dim, may_be_negative, substitute


def graph_is_symbolic(graph) -> bool:
    """Whether any node of `graph` has a symbolic dimension (so it needs a binding to run),
    in its type or in a region it holds, however deep: a loop body whose values are all
    concrete may hold a loop whose body is not (gc.eye('n') two loops deep in a polymorphic
    compile was "tri: the symbolic dimension n is not the size of any input's axis")."""
    return any(n.type.symbolic or _holds_symbolic_region(n.attrs) for n in graph.nodes)


def solve_dim(d, size):
    """(symbol, value) when d is coefficient*symbol + constant (`batch`, `2*batch+1`), value
    the symbol's that makes d `size`: None where no integer >= 1 does; for a symbolic size
    (a compiled function called inline in a trace), the Dim it is where it divides exactly
    for every value of its symbols, else None. None for a d of any other form (a number,
    `b*t`), which binds nothing."""
    if not isinstance(d, Dim):
        return None
    linear = [(m, c) for m, c in d.terms if m]
    if len(linear) != 1 or len(linear[0][0]) != 1:
        return None
    (symbol,), coeff = linear[0]
    rest = size - sum(c for m, c in d.terms if not m)
    if isinstance(rest, Dim):
        return symbol, rest.divide(coeff)
    value, remainder = divmod(rest, coeff)
    return symbol, (value if not remainder and value >= 1 else None)


def bind_dims(graph, shapes) -> dict:
    """{symbol: value} from the shapes of one call's inputs (in graph.inputs order).

    Each symbol is bound by the first input that has it alone on an axis (`batch`, or
    `2*batch+1`); then every dimension of every input must agree with the binding. A
    disagreement is one GraphcError naming both inputs and axes."""
    binding, source = {}, {}  # symbol -> value; symbol -> (input name, axis, size, dim)
    for node, shape in zip(graph.inputs, shapes):
        name = node.attrs["name"]
        if len(shape) != node.ndim:
            raise GraphcError(f"input {name!r} expects a {node.ndim}-d array of shape "
                              f"{_text(node.shape)}, got shape {tuple(shape)}", (user_location(),))
        for axis, (d, size) in enumerate(zip(node.shape, shape)):
            solved = solve_dim(d, size)
            if solved is None:
                continue
            symbol, value = solved
            if symbol in binding:
                continue  # checked below, with the input that bound it named
            if value is None:
                raise GraphcError(f"input {name!r} axis {axis} has size {size}, which gives "
                                  f"{d} no value >= 1 for {symbol} (symbolic dimensions are "
                                  "at least 1)", (user_location(),))
            binding[symbol], source[symbol] = value, (name, axis, size, d)
    for node, shape in zip(graph.inputs, shapes):
        name = node.attrs["name"]
        for axis, (d, size) in enumerate(zip(node.shape, shape)):
            if not isinstance(d, Dim):
                if d != size:
                    raise GraphcError(f"input {name!r} expects shape {_text(node.shape)}, got "
                                      f"{tuple(shape)} (axis {axis} is concrete: {d})",
                                      (user_location(),))
                continue
            missing = d.symbols - set(binding)
            if missing:
                raise GraphcError(f"input {name!r}: dimension {d} (axis {axis}) uses "
                                  f"{', '.join(sorted(missing))}, which no input binds on an "
                                  "axis of its own", (user_location(),))
            expected = d.evaluate(binding)
            if expected != size:
                symbol = sorted(d.symbols)[0]
                other, other_axis, other_size, other_dim = source[symbol]
                theirs = f"{other!r} axis {other_axis} has {other_size}"
                ours = f"{name!r} axis {axis} has {size}"
                if str(d) != symbol or str(other_dim) != symbol:  # expressions: say what
                    # each side means
                    theirs += f" ({symbol}={binding[symbol]})"
                    ours += f", but it is {d}"
                raise GraphcError(f"inputs {other!r} and {name!r} disagree on dimension "
                                  f"{symbol}: {theirs}, {ours}", (user_location(),))
    return binding


def _text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def specialize(graph, binding: dict, region: bool = False) -> Graph:
    """A copy of `graph` with every symbolic dimension (in types and attributes) replaced by
    its value under `binding`; each node's type is checked again by its op's rule, so a
    binding that breaks a rule (a slice past the end) is an error naming the op's line.
    A negative size is refused outside regions only (`region`: a cond's branch or a loop's
    body, which this binding may never run: eager and a concrete plan take such a program)."""
    new = Graph(graph.name)
    new.output_tree = graph.output_tree
    new.param_values = dict(graph.param_values)
    new.guards = list(graph.guards)
    new._next_salt = graph._next_salt
    if not region:
        # before any node: the nodes these sizes came from may be rewritten away already
        # (a symbol the binding lacks is the node loop's error, naming its node)
        for what, axis, d, locs in graph.size_checks:
            if d.symbols <= set(binding) and d.evaluate(binding) < 0:
                raise _negative_size(what, axis, d, d.evaluate(binding), binding, locs)
    mapping = {}
    for node in graph.nodes:
        try:
            t = _specialize_type(node.type, binding)
        except KeyError as exc:
            raise GraphcError(f"{node.op}: the symbolic dimension {exc.args[0]} is not the "
                              "size of any input's axis, so no call binds it", node.locs) \
                from None
        if not region:
            _refuse_negative_size(node, t, binding)
        if node.op == "input":
            copy = new.input(node.attrs["name"], t.shape, t.dtype, node.attrs["kind"])
            copy.locs = node.locs
        else:
            inputs = [mapping[i] for i in node.inputs]
            attrs = node.attrs
            # a node of a concrete type may still read a symbolic input (x[:10] of an
            # f32[batch]): its rule is checked for these sizes too, or batch=3 would run a
            # slice typed f32[10] that gives 3 values
            if node.type.symbolic or holds_dim(attrs) or _holds_symbolic_region(attrs) or \
                    any(i.type.symbolic for i in node.inputs):
                try:
                    attrs = {k: _specialize_attr(v, binding) for k, v in attrs.items()}
                except KeyError as exc:
                    raise GraphcError(f"{node.op}: the symbolic dimension {exc.args[0]} is "
                                      "not the size of any input's axis, so no call binds it",
                                      node.locs) from None
                try:
                    expected = get_op(node.op).infer([i.type for i in inputs], **attrs)
                except Exception as exc:  # a type rule's complaint, for these sizes
                    raise GraphcError(f"{node.op} with {_describe(binding)}: {exc}",
                                      node.locs) from None
                if expected != t:
                    raise GraphcError(f"{node.op} with {_describe(binding)} gives {expected}, "
                                      f"not {t}", node.locs)
            copy = new.add_node(node.op, inputs, dict(attrs), t, node.locs, node.scope)
        mapping[node] = copy
    new.set_outputs([mapping[o] for o in graph.outputs])
    by_name = {n.attrs["name"]: n for n in new.inputs}
    new.bound_params = {k: by_name[v.attrs["name"]] for k, v in graph.bound_params.items()
                        if v.attrs["name"] in by_name}
    return new


def size_checks(graph) -> tuple:
    """(what, axis, dim, locs) for each symbolic size of `graph`'s nodes that some binding
    makes negative (`n-5`, `1-b`; not `batch-1`), from the first node that has it, added to
    those `graph` holds already: specialize refuses a binding that makes one negative before
    it specialises any node. The passes run on the symbolic graph and may leave no node of
    that size (simplify made sum(zeros((n-5, 2)) + 1) a product by the count 2*n-10, which
    n = 3 computed as -4.0 where eager refuses; dce drops an unused zeros), so
    passes.manager.run_pipeline records these on every graph it makes. Regions are left
    out: a cond's branch or a loop's body may not run for that binding."""
    checks, seen = list(graph.size_checks), {d for _, _, d, _ in graph.size_checks}
    for node in graph.nodes:
        if not node.type.symbolic:
            continue
        types = node.type.elements if isinstance(node.type, TupleType) else (node.type,)
        for t in types:
            for axis, d in enumerate(getattr(t, "shape", ())):
                if isinstance(d, Dim) and d not in seen and may_be_negative(d):
                    seen.add(d)
                    checks.append((_what(node), axis, d, node.locs))
    return tuple(checks)


def _what(node) -> str:
    return f"input {node.attrs['name']!r}" if node.op == "input" else node.op


def _negative_size(what, axis, d, size, binding, locs) -> GraphcError:
    return GraphcError(f"{what} with {_describe(binding)}: axis {axis} has size {d} = {size}; "
                       "a size cannot be negative", locs)


def _refuse_negative_size(node, t, binding):
    """A size that is negative under `binding` (an input declared `1-b`, `zeros((n-5,))` or
    `eye(n-5)` traced for every n, called with n = 3) is one error naming the input, or the
    op and the user's line: numpy would refuse it, or count a negative number of FLOPs."""
    types = t.elements if isinstance(t, TupleType) else (t,)
    declared = node.type.elements if isinstance(node.type, TupleType) else (node.type,)
    for symbolic, concrete in zip(declared, types):
        if not isinstance(concrete, TensorType):
            continue
        for axis, (d, size) in enumerate(zip(symbolic.shape, concrete.shape)):
            if size < 0:
                raise _negative_size(_what(node), axis, d, size, binding, node.locs)


def _specialize_type(t, binding):
    """A node's type under `binding`: a control-flow node's tuple element by element."""
    if isinstance(t, TupleType):
        return TupleType(tuple(_specialize_type(e, binding) for e in t.elements))
    return TensorType(substitute(t.shape, binding), t.dtype)


def _holds_symbolic_region(value) -> bool:
    """Whether an attribute holds a region (a control-flow body) with symbolic types."""
    if isinstance(value, Graph):
        return graph_is_symbolic(value)
    if isinstance(value, (tuple, list)):
        return any(_holds_symbolic_region(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_symbolic_region(v) for v in value.values())
    return False


def _specialize_attr(value, binding):
    """An attribute under `binding`: Dims evaluated, and a region (a scan's body, a cond's
    branches) specialised as a graph of its own, so the plan built for it is concrete."""
    if isinstance(value, Graph):
        return specialize(value, binding, region=True) if graph_is_symbolic(value) else value
    if isinstance(value, (tuple, list)):
        return type(value)(_specialize_attr(v, binding) for v in value)
    if isinstance(value, dict):
        return {k: _specialize_attr(v, binding) for k, v in value.items()}
    return substitute(value, binding)


def _describe(binding) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(binding.items()))
