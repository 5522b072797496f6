"""Structured control flow with JAX's semantics: `scan`, `fori_loop`, `while_loop`, `cond`.

    def step(h, x):                       # carry, one slice of xs -> (carry, y)
        h = gc.tanh(x @ w_x + h @ w_h)
        return h, h
    h_last, hs = gc.scan(step, h0, xs)    # hs: every h, stacked along a new axis 0

Traced (inside gc.compile, gc.grad, gc.trace), each call is ONE node of the graph holding the
function traced once as a closed sub-graph (ir/region.py, ir/ops/control_flow.py), so a
graph's size does not grow with the trip count; values the function reads from outside become
operands of the node. Eagerly (eager tensors or arrays, nothing being traced) the function
simply runs in a Python loop, and the tape differentiates it.

Carries and results are pytrees (tuples, lists, dicts) of arrays; a carry must keep its
structure, shapes and dtypes from one iteration to the next. Differentiable: scan and cond
(reverse mode, and so jvp and higher derivatives, passes/control_flow_ad.py); fori_loop with
Python-int bounds (or symbolic sizes in order for every size), which is a scan; not
while_loop, whose trip count is only known when it runs.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from collections import OrderedDict

import numpy as np

from ir import weak
from ir.errors import GraphcError, a_type, definition_location, user_location
from ir.graph import current_graph
from ir.ops import api as F
from ir.ops.precision import STATE as AUTOCAST
from ir.ops.registry import (SymbolicValue, apply, foreign_array, foreign_array_name,
                             is_weak_scalar, like_dtype, lift_symbolic, scalar_array)
from ir.types import (BFLOAT16, FLOAT_SCALARS, INT_DTYPES, SHORT_NAMES, Dim, InconclusiveDim,
                      TensorType, UnsupportedDtype, is_float, is_int)
from ir.region import Region
from runtime.eager import Tensor, apart_from, no_grad, op_serial

from .tracing import (DICT_KINDS, Spec, called_function, function_name,
                      keys_sorted, leaves_and_structure, leaves_like, unchecked_eval_shape,
                      unflatten, unsupported_argument)
from .pytree_apart import first_apart
from .vmap import vmap

__all__ = ["scan", "fori_loop", "while_loop", "cond", "switch", "map"]


# ---- helpers ----------------------------------------------------------------------------
def _graph_of(leaves):
    """The graph a control-flow node goes into, or None to run eagerly."""
    graph = current_graph()
    if graph is not None:
        return graph
    return next((x.graph for x in leaves if isinstance(x, SymbolicValue)), None)


def _check_callable(fn, construct, name):
    if not callable(fn):
        raise GraphcError(f"{construct}: {name} must be a function, got {type(fn).__name__}",
                          (user_location(),))


def _naming_wrong_arity(calls):
    """Decorates a construct: where it raises a TypeError, a function it was given that cannot
    take the arguments the construct passes is refused in one line naming it, not left to a
    TypeError from inside the construct's trace; a TypeError from inside a function that
    takes them goes on unchanged (the signature's bind decides). Signatures are read only
    then: a construct that runs pays nothing. `calls(*args, **kwargs)`, given the
    construct's arguments: its functions as (fn, its name, the names of the arguments it is
    called with, as the docs name them)."""
    def decorate(construct):
        @functools.wraps(construct)
        def run(*args, **kwargs):
            try:
                return construct(*args, **kwargs)
            except TypeError as exc:
                try:
                    functions = calls(*args, **kwargs)
                except TypeError:  # the construct itself called wrongly: its error says so
                    raise exc from None
                for fn, name, arg_names in functions:
                    _refuse_wrong_arity(fn, construct.__name__, name, arg_names)
                raise
        return run
    return decorate


def _refuse_wrong_arity(fn, construct, name, args):
    target, shown = called_function(fn)
    try:  # (not follow_wrapped: fori_loop's while_loop body wraps body_fun, of other arity)
        signature = inspect.signature(target, follow_wrapped=False)
    except (TypeError, ValueError):  # no signature to read (a builtin's): fn's call will say
        return
    try:
        signature.bind(*args)
    except TypeError:
        raise GraphcError(f"{construct}: {name} {shown}{signature}{_where(target)} cannot be "
                          f"called as {name}({', '.join(args)})", (user_location(),)) from None


def _refuse_foreign(construct, what, value, leaves):
    """One line naming the construct and its argument `what` (the pytree `value`, whose
    `leaves` these are) where a leaf is another library's array (a torch.Tensor): its dtype
    met numpy deep inside, a bare TypeError "Cannot interpret 'torch.float32' as a data
    type". Arrays, tensors and numbers pass the first test, so a construct pays little. An
    array of a dtype the IR lacks (complex) is refused likewise: the line named the cast
    inside the construct."""
    x, name = _first_foreign(leaves)
    if name is not None:
        raise GraphcError(f"{construct}: {what} {'is' if x is value else 'holds'} a {name}, "
                          "another library's array; pass numpy arrays or gc tensors "
                          "(x.numpy(), or np.asarray(x))", (user_location(),))
    for x in leaves:
        why = unsupported_argument(x)
        if why is not None:
            raise UnsupportedDtype(f"{construct}: {what}: {why}", (user_location(),))


def _refuse_foreign_result(who, part, leaves):
    """One line naming the function `who` says where `part` of what it returned (whose
    `leaves` these are) holds another library's array: eagerly a torch carry or y met numpy
    as a bare "got a torch.Tensor" naming no function, and a cond's branch handed the torch
    result back as it was (traced, it is refused)."""
    _, name = _first_foreign(leaves)
    if name is not None:
        raise GraphcError(f"{who} returns a {name}{part}, another library's array; "
                          "return numpy arrays or gc tensors "
                          "(x.numpy(), or np.asarray(x))", (user_location(),))


_OURS = (np.ndarray, np.generic, Tensor, SymbolicValue, int, float)


def _first_foreign(leaves) -> tuple:
    """(the first of `leaves` that is another library's array, its type's name), else
    (None, None)."""
    for x in leaves:
        if not isinstance(x, _OURS):
            name = foreign_array_name(x)
            if name is not None:
                return x, name
    return None, None


def _refuse_foreign_operands(construct, operands, leaves=None):
    """_refuse_foreign for a cond's or switch's operands, naming the one that holds another
    library's array: eagerly its branch ran on the torch tensor and returned a torch result.
    An operand is flattened again only where it is none of ours (a pytree, or a foreign
    array), or, given their `leaves`, where one of those is."""
    if leaves is not None and all(isinstance(x, _OURS) and unsupported_argument(x) is None
                                  for x in leaves):
        return
    for k, operand in enumerate(operands):
        if not isinstance(operand, _OURS) or unsupported_argument(operand) is not None:
            _refuse_foreign(construct, f"operands[{k}]", operand,
                            leaves_and_structure(operand)[0])


def _operand_names(operands) -> tuple:
    return tuple(f"operands[{k}]" for k in range(len(operands)))


def _read_per_call(x) -> bool:
    """Whether x is a value the plan being traced must read when it runs: a traced value, or
    an eager tensor the function closes over (a plan reads its data at each call, so that
    `p -= 1` between calls is seen; its value now would be baked into the plan)."""
    return isinstance(x, SymbolicValue) or (isinstance(x, Tensor)
                                            and current_graph() is not None)


def _as_node(graph, x, what):
    if isinstance(x, SymbolicValue):
        if x.graph is graph:
            return x
        if isinstance(graph, Region):
            return graph.capture(x)
        raise GraphcError(f"{what}: a value of another graph", (user_location(),))
    if x is None:
        raise GraphcError(f"{what}: None is not an array", (user_location(),))
    return lift_symbolic(graph, x, like_dtype([x]), what)


def _carry_nodes(graph, init_leaves, other_leaves, what):
    """The initial carries as nodes of `graph`. A weakly typed float (a Python or numpy float
    scalar) takes the dtype of the loop's first floating-point array (the other carries, then
    xs), as a weak scalar takes the dtype of the tensor it meets: scan(lambda c, x: (c + x,
    None), 0.0, float64 xs) carries float64, where the carry was float32 and `c + x` was
    refused (JAX promotes weakly typed carries likewise). Other numbers (an int) are weakly
    typed, as cond's operands: the body may keep them so (see _weak_lost)."""
    typed = _typed_carries(init_leaves, other_leaves)
    nodes = [_as_node(graph, x, what) for x in typed]
    graph.weak_ids.update(n.id for n, x in zip(nodes, typed)
                          if is_weak_scalar(x) and not isinstance(x, (bool, np.bool_)))
    return nodes


def _weak_lost(region, own, count) -> set:
    """The positions of the carries weak as they come into loop body `region` (inputs
    `own`) that it does not return weak, or returns in another dtype (c + int32_x,
    cast(c, ...), c / 2 from 0): a carry is weak in the body only where every step keeps it
    weak in its dtype, so the loop traces its functions again with those retyped, weak or
    strong (_promote_carries). Weak throughout, the loop's result is weak too
    (ir.weak.result_is_weak)."""
    return {k for k in range(count)
            if weak.is_weak(own[k]) and (not weak.is_weak(region.outputs[k])
                                         or own[k].dtype != region.outputs[k].dtype)}


def _promote_carries(graph, carry_nodes, outputs, lost) -> tuple[list, set]:
    """(the initial carries with each one at a position in `lost` (weak as it came in, see
    _weak_lost) cast to the dtype the body returns it in where JAX promotes a weakly typed
    initial carry, the positions to carry strong). JAX promotes where the carry's
    result_type with that dtype is that dtype, an int to any int or float, a float to any
    float (fori_loop(0, n, lambda i, c: c + x_int32[i], 0) carries int32). A float the body
    returns as an int keeps its dtype, so that the loop refuses the mismatch (JAX does; a
    cast would truncate 0.7 to 0). A carry the body returns weak in a dtype holding its own
    stays weak (c / 2 + 1 from 0: a weak float64, which takes the dtype of a float32 tensor
    the loop's result meets, as eagerly); a retrace thus only widens a weak carry, and the
    retracing ends. The cast is one a weak number takes where it meets a tensor, so a Python
    int that does not fit the new dtype is refused, as `x_int32 + 2**40` is
    (ir.weak.int_limits)."""
    nodes, strong = list(carry_nodes), set()
    for k in lost:
        node, dtype = nodes[k], np.dtype(outputs[k].dtype)
        if node.dtype != dtype and dtype.kind in ("iuf" if node.dtype.kind in "iu" else "f"):
            nodes[k] = graph._cast(node, dtype)
            if weak.is_weak(outputs[k]) and np.promote_types(node.dtype, dtype) == dtype:
                graph.weak_ids.add(nodes[k].id)
                continue
        strong.add(k)
    return nodes, strong


def _typed_carries(init_leaves, other_leaves) -> list:
    """The initial carries with each weakly typed float as an array of the dtype of the
    loop's first floating-point array (the other carries, then xs), as _carry_nodes says."""
    floats = [np.dtype(x.dtype) for x in list(init_leaves) + list(other_leaves)
              if not is_weak_scalar(x) and hasattr(x, "dtype") and is_float(x.dtype)]
    return [np.asarray(x, floats[0]) if floats and isinstance(x, FLOAT_SCALARS) else x
            for x in init_leaves]


def _where(fn) -> str:
    loc = definition_location(getattr(fn, "__wrapped__", fn))  # fori_loop's body_fun
    return f" (defined at {loc[0]}:{loc[1]})" if loc else ""


def _types(nodes) -> str:
    return "(" + ", ".join(str(n.type) for n in nodes) + ")"


# Dropout sites inside a construct are numbered within it (ir.graph.site_salt): which of its
# functions they are in, as the second half of the scope
_BODY, _WHILE_COND = 0, 1  # a loop's body, a while_loop's cond_fun; a cond's: 0 false, 1 true


def _construct_salt(graph):
    """The one number a construct takes among the dropout sites where it stands (traced in
    `graph`, or eagerly when None), whether or not, and however often, its functions run:
    traced, every site of both branches and of a loop body is in the graph; eagerly only
    those that ran. Numbering each function's sites within the construct keeps the sites
    after it at the same numbers in both modes."""
    return graph.next_salt() if graph is not None else F.next_eager_salt()


@contextlib.contextmanager
def _sites_within(graph, construct, function, iteration=None):
    """Dropout sites run inside (traced in `graph`, or eagerly when None) are numbered 1, 2, ...
    within `function` of the construct; an eager loop's iteration is mixed in too, as the
    traced body's iteration input is (ir.ops.api._loop_iterations)."""
    holder = F.EAGER_DROPOUT if graph is None else graph
    saved = holder._next_salt, holder.salt_scope
    holder._next_salt, holder.salt_scope = 0, (construct, function)
    if iteration is not None:
        F.EAGER_DROPOUT.iterations.append(iteration)
    try:
        yield
    finally:
        holder._next_salt, holder.salt_scope = saved
        if iteration is not None:
            F.EAGER_DROPOUT.iterations.pop()


def _trace_region(fn, name, arg_trees, graph, scope, loop=False, strong=()):
    """Trace fn on fresh inputs shaped like arg_trees' leaves, for a node of `graph`, numbering
    its dropout sites within `scope` (construct, function): -> (region, own inputs, fn's
    result). The caller closes the region after setting outputs; for a loop (loop=True) it
    feeds region.iteration_input when dropout made one. A branch's weakly typed operand (a
    Python int) stays weak in there, as in eager code, and so does a loop's carry (the first
    tree's leaves) but at the positions `strong` (see _weak_lost)."""
    region = Region(name, parent=graph)
    region.is_loop = loop
    region.salt_scope = scope
    own, args = [], []
    with region.building():
        for k, tree in enumerate(arg_trees):
            leaves, structure = leaves_and_structure(tree)
            inputs = [region.input(f"a{k}_{i}", x.shape, x.dtype) for i, x in enumerate(leaves)]
            region.weak_ids.update(n.id for i, (n, x) in enumerate(zip(inputs, leaves))
                                   if weak.is_weak(x) and not (k == 0 and i in strong))
            own += inputs
            args.append(unflatten(structure, inputs))
        result = fn(*args)
    return region, own, result


def _autocast_carry(region, new_leaves, carry_nodes):
    """Under autocast, a float carry the function returns in the other float dtype (a float32
    state updated by a half-precision matmul) is cast back to the dtype it came in with, as
    autocast casts a value where it is used: the loop's state keeps its declared dtype."""
    if AUTOCAST.dtype is None or len(new_leaves) != len(carry_nodes):
        return new_leaves
    with region.building():
        return [F.cast(new, old.dtype)
                if isinstance(new, SymbolicValue) and new.dtype != old.dtype
                and is_float(new.dtype) and is_float(old.dtype) else new
                for new, old in zip(new_leaves, carry_nodes)]


def _eager_autocast_carry(carry, init):
    """The eager loop's version of _autocast_carry: the carry keeps the dtypes of `init`."""
    if AUTOCAST.dtype is None:
        return carry
    old, old_structure = leaves_and_structure(init)
    _, new, structure = _in_structure(carry, old_structure)
    if structure != old_structure:
        return carry
    return unflatten(structure, [
        F.cast(a, b.dtype) if hasattr(a, "dtype") and hasattr(b, "dtype") and a.dtype != b.dtype
        and is_float(a.dtype) and is_float(b.dtype) else a for a, b in zip(new, old)])


def _check_eager_carry(fn, what, carry, init):
    """The eager loops' _check_carry: each step's carry keeps the structure, dtypes and
    shapes of `init`, as the traced loop (and JAX's) requires; without it a float32 carry
    met by numpy's promotion (v * i, i an int64 counter) silently became float64 eagerly,
    where the compiled loop refuses. Python and numpy scalars in init are weakly typed
    (ir.ops.registry.is_weak_scalar), as traced: unchecked."""
    old, old_structure = leaves_and_structure(init)
    carry, new, structure = _in_structure(carry, old_structure)
    what, (structure, new), (old_structure, old) = _as_written(
        fn, what, (structure, new), (old_structure, old))
    _refuse_foreign_result(f"{what} function {function_name(fn)}{_where(fn)}",
                           " in its carry", new)
    if structure != old_structure or len(new) != len(old):
        raise GraphcError(f"{what} function {function_name(fn)}{_where(fn)} must return a "
                          f"carry with the structure of the initial one"
                          f"{_structure_apart(structure, old_structure, [], [])}",
                          (user_location(),))
    strong = [k for k, b in enumerate(old) if hasattr(b, "dtype") and not is_weak_scalar(b)]
    types = [[_eager_type(leaves[k]) for k in strong] for leaves in (new, old)]
    # a weak scalar (0.0, np.float64(0)) is unchecked in its dtype, not its shape: a body
    # turning it into a vector (c + xs[i]) ran eagerly where the compiled loop (and JAX's)
    # refuses, and scan's ys then failed inside its stacking
    if any(k not in strong and np.shape(new[k]) != np.shape(b) for k, b in enumerate(old)):
        types = [[_eager_type(x) for x in leaves] for leaves in (new, old)]
    if types[0] != types[1]:
        # the path of the first leaf that differs (a weak one by its shape alone)
        each = [[_eager_type(x) if k in strong else np.shape(x) for k, x in enumerate(leaves)]
                for leaves in (new, old)]
        apart = first_apart(structure, old_structure, each[0], each[1]) \
            if len(old) > 1 else None
        detail = "" if apart is None or apart[3] is None else \
            f"; first at {apart[0]}: {_eager_type(new[apart[3]])} where it came in as " \
            f"{_eager_type(old[apart[4]])}"
        raise GraphcError(f"{what} function {function_name(fn)}{_where(fn)} returns the carry "
                          f"as ({', '.join(str(t) for t in types[0])}) but it came in as "
                          f"({', '.join(str(t) for t in types[1])}){detail}",
                          (user_location(),))
    return carry


def _eager_type(x):
    """An eager carry leaf's type as the messages show it (f64[2]); a Python number's by the
    dtype numpy gives it; what is no array by its type's name."""
    if hasattr(x, "dtype"):
        return TensorType(F._shape(x), F._dtype(x))
    if isinstance(x, (bool, int, float)):
        dtype = np.result_type(x)
        return TensorType((), dtype) if dtype in SHORT_NAMES else f"{dtype}[]"
    return type(x).__name__


def _in_structure(tree, structure):
    """(tree, its leaves, its structure), the tree rebuilt in the order of `structure` where
    the two differ only in the order of dicts' keys: JAX sorts dict keys, so a body
    returning {"b": .., "a": ..} for the carry {"a": .., "b": ..} returns the same pytree."""
    leaves, own = leaves_and_structure(tree)
    if own == structure or keys_sorted(own) != keys_sorted(structure):
        return tree, leaves, own
    leaves = leaves_like(structure, tree)
    return unflatten(structure, leaves), leaves, structure


def _keys_apart(new, old, path=""):
    """(" at PATH" or "", new's keys, old's keys) for the first dict whose keys differ,
    where structures `new` and `old` first differ there, for a message to show (types alone
    read as the same structure twice); else None."""
    if new is None or old is None or new[0] is not old[0]:
        return None
    (kind, new_children), (_, old_children) = new, old
    if kind in DICT_KINDS:
        new_keys, old_keys = [k for k, _ in new_children], [k for k, _ in old_children]
        if set(new_keys) != set(old_keys):
            # (lists of the keys print their reprs: an int key 1 and a str key "1" differ)
            return (f" at {path}" if path else "", sorted(new_keys, key=repr),
                    sorted(old_keys, key=repr))
        pairs = [(k, c, dict(old_children)[k]) for k, c in new_children]
    elif len(new_children) != len(old_children):
        return None
    else:
        pairs = [(k, c, o) for k, (c, o) in enumerate(zip(new_children, old_children))]
    for k, c, o in pairs:
        if keys_sorted(c) != keys_sorted(o):
            return _keys_apart(c, o, f"{path}.{k}" if path else str(k))
    return None


def _dict_kinds_apart(new, old, path=""):
    """(" at PATH" or "", new's, old's) for the first place where structures `new` and `old`
    hold a dict and an OrderedDict, or OrderedDicts with their keys in another order (each
    another pytree, as in JAX), said as "a dict", "an OrderedDict with keys [..]"; else
    None. For a message to show what _keys_apart does not."""
    if new is None or old is None:
        return None
    (kind, new_children), (old_kind, old_children) = new, old
    at = f" at {path}" if path else ""
    if {kind, old_kind} == set(DICT_KINDS):
        return at, _dict_kind_name(kind), _dict_kind_name(old_kind)
    if kind is not old_kind:
        return None
    if kind in DICT_KINDS:
        new_keys, old_keys = [k for k, _ in new_children], [k for k, _ in old_children]
        if set(new_keys) != set(old_keys):
            return None
        if kind is OrderedDict and new_keys != old_keys:
            return at, f"an OrderedDict with keys {new_keys}", f"one with keys {old_keys}"
        old_children = [dict(old_children)[k] for k in new_keys]
        new_children = [c for _, c in new_children]
    elif len(new_children) != len(old_children):
        return None
    keys = new_keys if kind in DICT_KINDS else range(len(new_children))
    for k, c, o in zip(keys, new_children, old_children):
        apart = _dict_kinds_apart(c, o, f"{path}.{k}" if path else str(k))
        if apart is not None:
            return apart
    return None


def _dict_kind_name(kind) -> str:
    return "an OrderedDict" if kind is OrderedDict else "a dict"


def _carry_keys_apart(new, old) -> str:
    apart = _keys_apart(new, old)
    if apart is not None:
        at, new_keys, old_keys = apart
        return f" (its dict{at} has keys {new_keys} where the initial one's has {old_keys})"
    apart = _dict_kinds_apart(new, old)
    if apart is not None:
        at, new_kind, old_kind = apart
        return f" (it returns {new_kind}{at} where the initial carry has {old_kind})"
    return ""


def _set_outputs(region, leaves, call_location):
    with region.building(), region.locations((call_location,) if call_location else ()):
        region.set_outputs([region.result(x) for x in leaves])


def _as_written(fn, what, *carries):
    """(what, carries) as the user wrote the loop: a fori_loop runs as a scan or a while_loop
    whose function (fn, wrapping body_fun) carries the loop's counters before body_fun's
    carry, so a carry error names fori_loop's body_fun and shows its carry alone. `carries`:
    (structure, leaves) pairs."""
    counters = getattr(fn, "fori_counters", 0)
    if not counters:
        return (what,) + carries
    return ("fori_loop body",) + tuple(
        (structure[1][-1], leaves[counters:]) if structure is not None and
        structure[0] is tuple and len(structure[1]) == counters + 1 else (structure, leaves)
        for structure, leaves in carries)


def _check_carry(fn, what, new_nodes, new_structure, old_nodes, old_structure):
    """One line naming the user's function when its carry changes structure or type."""
    what, (new_structure, new_nodes), (old_structure, old_nodes) = _as_written(
        fn, what, (new_structure, new_nodes), (old_structure, old_nodes))
    new_types = [n.type for n in new_nodes]
    old_types = [n.type for n in old_nodes]
    if new_structure != old_structure or len(new_nodes) != len(old_nodes):
        raise GraphcError(f"{what} function {function_name(fn)}{_where(fn)} must return a "
                          f"carry with the structure of the initial one"
                          f"{_structure_apart(new_structure, old_structure, new_types, old_types)}",
                          (user_location(),))
    if new_types != old_types:
        raise GraphcError(f"{what} function {function_name(fn)}{_where(fn)} returns the carry "
                          f"as {_types(new_nodes)} but it came in as {_types(old_nodes)}"
                          f"{_leaf_apart(new_structure, old_structure, new_types, old_types)}",
                          (user_location(),))


def _structure_apart(new, old, new_types, old_types) -> str:
    """The detail of a carry whose structure changed: the dict keys (_carry_keys_apart),
    else the first place it differs, by its path (JAX's carry[1]['h']): a list for a tuple,
    another length, None for an array."""
    detail = _carry_keys_apart(new, old)
    if detail:
        return detail
    apart = first_apart(new, old, new_types, old_types)
    return "" if apart is None else f" ({apart[0]} is {apart[1]} where the initial one is " \
                                    f"{apart[2]})"


def _leaf_apart(new, old, new_types, old_types) -> str:
    """'; first at carry['layer7']['h']: f64[3] where it came in as f64[4]' where the carry
    has more than one leaf, so the user need not count through the types."""
    apart = first_apart(new, old, new_types, old_types) if len(old_types) > 1 else None
    return "" if apart is None else f"; first at {apart[0]}: {apart[1]} where it came in " \
                                    f"as {apart[2]}"


def _results(node, count):
    return [apply("tuple_get", node, index=k) for k in range(count)]


# ---- scan -------------------------------------------------------------------------------
def _length(d):
    if isinstance(d, Dim):
        return d
    if isinstance(d, Tensor) and current_graph() is not None:
        raise GraphcError("scan: length is an eager tensor, which the compiled plan would fix at "
                          "its value now; give an int (a loop of a length read per call: "
                          "fori_loop or while_loop)", (user_location(),))
    if isinstance(d, SymbolicValue):  # (as JAX's ConcretizationTypeError; it was "a symbolic
        # value cannot be turned into a numpy array while the graph is being built").
        # _no_value: a Python int argument's advice (static_argnums), and eager grad then
        # retries with the number as it is, as JAX's grad passes it concretely
        message = (f"scan: length must be known when the loop is traced, got a traced "
                   f"{d.type} (fori_loop or while_loop take a count read per call)")
        # (a probe trace, graphc/advice.py's probe_uses, is given the number: it goes on)
        d = d._no_value(message) if hasattr(d, "_no_value") else None
        if d is None:
            raise GraphcError(message, (user_location(),))
    length = _whole(d, "scan: length")
    if length < 0:
        raise GraphcError(f"scan: length must be >= 0, got {length}", (user_location(),))
    return length


def _whole(value, what) -> int:
    """A loop's count or concrete bound as an int: int() would truncate 2.5 to 2 (JAX
    refuses float bounds too); one past int64, which a loop's counter and a traced bound
    are, is refused (numpy held it as an object: a raw OverflowError for scan's length,
    an unsupported dtype 'object' at no user line for compiled fori_loop bounds)."""
    if is_int(value):
        number = int(value)
    else:
        held = scalar_array(value)  # (a bfloat16 or requires_grad tensor too: a float here)
        if held is None or held.ndim != 0 or held.dtype.kind not in "iu":
            raise GraphcError(f"{what} must be an int, got {value!r}", (user_location(),))
        number = int(held)
    if not -2**63 <= number < 2**63:
        raise GraphcError(f"{what} {number} does not fit in int64", (user_location(),))
    return number


@_naming_wrong_arity(lambda f, *args, **kwargs: [(f, "f", ("carry", "x"))])
def scan(f, init, xs=None, length: int | None = None, reverse: bool = False,
         unroll: int | bool = 1):
    """jax.lax.scan: f(carry, x) -> (carry, y) over the leading axis of xs; returns
    (final carry, ys stacked along a new leading axis). xs may be None with `length` given;
    with reverse=True the steps run from the last slice to the first (ys stay in xs' order).
    `unroll` (JAX's) is taken and checked, so code written for JAX runs; it changes nothing
    here: a scan is one loop node, whose body the runtime runs as one plan."""
    _check_callable(f, "scan", "f")
    reverse = F._flag("scan", "reverse", reverse)  # (bool('no') was True: run from the end)
    if not isinstance(unroll, bool) and not (is_int(unroll) and unroll >= 1):
        raise GraphcError(f"scan: unroll must be an int >= 1 or a bool, got {unroll!r}",
                          (user_location(),))
    init_leaves, init_structure = leaves_and_structure(init)
    x_leaves, x_structure = leaves_and_structure(xs) if xs is not None else ([], None)
    _refuse_foreign("scan", "init", init, init_leaves)
    _refuse_foreign("scan", "xs", xs, x_leaves)
    # a symbolic length (a Dim: jax.export scans over a symbolic axis too) stays one
    lengths = {_length(np.shape(x)[0]) for x in x_leaves if np.ndim(x) >= 1}
    if any(np.ndim(x) == 0 for x in x_leaves):
        raise GraphcError("scan: every leaf of xs needs a leading axis to scan over",
                          (user_location(),))
    if length is not None:
        lengths.add(_length(length))
    if len(lengths) != 1:
        raise GraphcError(f"scan: the leaves of xs (and length=) disagree on the length: "
                          f"{sorted(lengths, key=str)}" if lengths else
                          "scan: no xs to scan over; pass length=", (user_location(),))
    n = lengths.pop()
    graph = _graph_of(init_leaves + x_leaves)
    construct = _construct_salt(graph)
    if graph is None:
        since = op_serial()
        carry, ys = _scan_eagerly(f, init, xs, x_leaves, x_structure, n, reverse, construct)
        return _apart(carry, init_leaves + x_leaves, since), ys

    call_site = user_location()
    carry_nodes = _carry_nodes(graph, init_leaves, x_leaves, "scan init")
    x_nodes = [_as_node(graph, x, "scan xs") for x in x_leaves]
    carry_in = unflatten(init_structure, carry_nodes)
    x_slices = unflatten(x_structure, [_Slice(x) for x in x_nodes]) if xs is not None else None
    strong = set()
    while True:  # (again only where a weak carry lost its weakness: see _weak_lost)
        region, own, result = _trace_region(
            lambda c, *x: f(c, x[0] if x else None), f"{function_name(f)}_body",
            [carry_in] + ([x_slices] if xs is not None else []), graph, (construct, _BODY),
            loop=True, strong=strong)
        new_carry, y = _pair(f, result)
        _, new_leaves, new_structure = _in_structure(new_carry, init_structure)
        y_leaves, y_structure = leaves_and_structure(y) if y is not None else ([], None)
        # traced (under grad, vmap, compile) as eagerly: naming f, not "region result"
        _refuse_foreign_result(f"{_as_written(f, 'scan')[0]} function {function_name(f)}"
                               f"{_where(f)}", " in its carry", new_leaves)
        _refuse_foreign_result(f"scan function {function_name(f)}{_where(f)}", " in its ys",
                               y_leaves)
        new_leaves = _autocast_carry(region, new_leaves, carry_nodes)
        _set_outputs(region, new_leaves + y_leaves, call_site)
        lost = _weak_lost(region, own, min(len(carry_nodes), len(new_leaves)))
        if not lost:
            break
        carry_nodes, carried_strong = _promote_carries(graph, carry_nodes, region.outputs, lost)
        strong |= carried_strong
        carry_in = unflatten(init_structure, carry_nodes)
    _check_carry(f, "scan", region.outputs[:len(new_leaves)], new_structure,
                 own[:len(carry_nodes)], init_structure)
    if region.iteration_input is not None:  # dropout inside: scan 0..n-1 along as one more xs
        own.append(region.iteration_input)
        steps = F.arange(n) if isinstance(n, Dim) else np.arange(n, dtype=np.int64)
        x_nodes.append(_as_node(graph, steps, "scan"))
    outer = region.close(own)
    node = apply("scan", *outer, *carry_nodes, *x_nodes, body=region, consts=len(outer),
                 carries=len(carry_nodes), length=n, reverse=reverse)
    outs = _results(node, len(carry_nodes) + len(y_leaves))
    carry_out = unflatten(init_structure, outs[:len(carry_nodes)])
    ys = unflatten(y_structure, outs[len(carry_nodes):]) if y is not None else None
    return carry_out, ys


def _pair(f, result):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise GraphcError(f"scan function {function_name(f)}{_where(f)} must return a pair "
                          f"(carry, y)", (user_location(),))
    return result


class _Slice:
    """Shape and dtype of one step's slice of a scanned value (for tracing the body)."""

    def __init__(self, node):
        self.shape, self.dtype = tuple(node.shape[1:]), node.dtype


def _scan_eagerly(f, init, xs, x_leaves, x_structure, n, reverse, construct):
    # typed as traced: a 0.0 carry over float64 xs is float64 (it was float32 as a y, and
    # stacking it with the float64 ones failed)
    init_leaves, init_structure = leaves_and_structure(init)
    init = unflatten(init_structure, [_graphc_typed(v) for v in
                                      _typed_carries(init_leaves, x_leaves)])
    lifted = [_graphc_typed(leaf) is not leaf for leaf in x_leaves]
    carry, ys = init, [None] * n
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        x = unflatten(x_structure, [Tensor(_strong(leaf[t])) if lift else _strong(leaf[t])
                                    for leaf, lift in zip(x_leaves, lifted)]) \
            if xs is not None else None
        with _sites_within(None, construct, _BODY, t):
            carry, ys[t] = _pair(f, f(carry, x))
        carry = _check_eager_carry(f, "scan", _eager_autocast_carry(carry, init), init)
    if n == 0:
        with _sites_within(None, construct, _BODY, 0):
            return carry, _no_steps_ys(f, init, xs, x_leaves, x_structure)
    if ys[0] is None:
        return carry, None
    first, structure = leaves_and_structure(ys[0])
    _refuse_foreign_result(f"scan function {function_name(f)}{_where(f)}", " in its ys", first)
    per_step = [first]
    for t, y in enumerate(ys[1:], 1):
        # a dict with its keys in another order is the same pytree (as for the carry):
        # its leaves are stacked by key, not by position
        _, leaves, own = _in_structure(y, structure)
        _refuse_foreign_result(f"scan function {function_name(f)}{_where(f)}", " in its ys",
                               leaves)
        if own != structure:
            apart = _keys_apart(own, structure)
            keys = f" (its dict{apart[0]} has keys {apart[1]} where step 0's has " \
                f"{apart[2]})" if apart else ""
            kinds = None if apart else _dict_kinds_apart(own, structure)
            if kinds:
                keys = f" (it returns {kinds[1]}{kinds[0]} where step 0 returned {kinds[2]})"
            raise GraphcError(f"scan function {function_name(f)}{_where(f)} must return ys of "
                              f"one structure at every step; step {t}'s differs from step "
                              f"0's{keys}", (user_location(),))
        per_step.append(leaves)
    stacked = [F.stack(_one_dtype([_strong(leaves[k]) for leaves in per_step]), 0)
               for k in range(len(first))]
    return carry, unflatten(structure, stacked)


def _one_dtype(values):
    """A leaf's ys over the steps, Python numbers among them in the dtype of the others, as
    the traced scan types a weak carry returned as a y (`scan(lambda c, x: (c + x, c), 0,
    xs)`: step 0's y is the int 0, the later ones xs' float32; stacking them failed);
    Python numbers alone in the dtype numpy gives them (0 and 1.5: float64)."""
    numbers = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in values]
    if not any(numbers):
        return values
    typed = [v for v, number in zip(values, numbers) if not number]
    dtype = F._dtype(typed[0]) if typed else np.result_type(*values)
    return [np.asarray(v, dtype) if number else v for v, number in zip(values, numbers)]


def _graphc_typed(v):
    """A bfloat16 numpy array or scalar as a Tensor, so that the eager body's operators
    promote as graphc's and the traced loop's do: ml_dtypes' make bfloat16 * 1.5 a float32
    (a map's results were float32, a fori_loop refused its own carry, a scalar carry came
    back float32); numpy's other dtypes promote as graphc's."""
    if isinstance(v, (np.ndarray, np.generic)) and v.dtype == BFLOAT16:
        return Tensor(np.asarray(v))
    return v


def _strong(v):
    """A numpy scalar (a slice of a 1-d xs, a step's result on 0-d values) as a 0-d array of
    its dtype, as the traced scan types it: ops take numpy scalars for weakly typed numbers
    (float32 alone, or the dtype of the tensor they meet)."""
    return np.asarray(v) if isinstance(v, np.generic) else v


def _no_steps_ys(f, init, xs, x_leaves, x_structure):
    """The ys of a scan of no steps: empty arrays, (0, ...) of the types one step gives (as
    JAX's and the traced scan's), found by tracing f (eval_shape), not running it: a body
    that is fine on real rows may loop forever or fail on made-up ones. A body that cannot
    be traced (eager-only Python: `.data`, float() of a value) runs once on zero slices, its
    values dropped (without the tape, and without numpy's warnings), as before."""
    try:
        ys = _traced_ys(f, init, xs, x_leaves, x_structure)
    except Exception:  # noqa: BLE001 - such a body's own error recurs in the run below
        x = unflatten(x_structure, [np.zeros(F._shape(leaf)[1:], F._dtype(leaf))
                                    for leaf in x_leaves]) if xs is not None else None
        with no_grad(), np.errstate(all="ignore"):
            ys = _pair(f, f(init, x))[1]
    if ys is None:
        return None
    leaves, structure = leaves_and_structure(ys)
    return unflatten(structure, [Tensor(np.zeros((0,) + tuple(F._shape(v)), F._dtype(v)))
                                 for v in leaves])


def _traced_ys(f, init, xs, x_leaves, x_structure):
    """eval_shape of one step's ys: the carry's numbers weakly typed, as traced, and its
    leaves that are no arrays (a tag, a setting) passed as they are."""
    init_leaves, init_structure = leaves_and_structure(init)
    traced = [k for k, v in enumerate(init_leaves) if isinstance(
        v, (SymbolicValue, Tensor, np.ndarray, np.generic, bool, int, float))]

    def one_step(*values):
        leaves = list(init_leaves)
        for k, v in zip(traced, values):
            leaves[k] = v
        x = unflatten(x_structure, list(values[len(traced):])) if xs is not None else None
        return _pair(f, f(unflatten(init_structure, leaves), x))[1]

    def spec(v):
        if type(v) in (int, float):  # weakly typed, as a compiled function's numbers
            return Spec((), np.dtype(np.int64 if type(v) is int else np.float64), weak=True)
        return v
    x_specs = [Spec(tuple(F._shape(leaf)[1:]), F._dtype(leaf)) for leaf in x_leaves]
    return unchecked_eval_shape(functools.update_wrapper(one_step, f, updated=()),
                                *[spec(init_leaves[k]) for k in traced], *x_specs)


def _apart(result, operands, since=None):
    """An eager construct's result, each array that shares memory with one of its operands
    or is no op's result computed since `since` (one its functions closed over) copied
    (runtime.eager.apart_from)."""
    leaves, structure = leaves_and_structure(result)
    return unflatten(structure, apart_from(leaves, operands, since))


# ---- fori_loop -----------------------------------------------------------------------------
@_naming_wrong_arity(lambda lower, upper, body_fun, init_val, **_: [
    (body_fun, "body_fun", ("i", "val"))])
def fori_loop(lower, upper, body_fun, init_val, *, unroll: int | bool | None = None):
    """jax.lax.fori_loop: body_fun(i, val) -> val for i in [lower, upper). With Python-int
    bounds it is a scan (differentiable); with traced bounds a while_loop (not). A symbolic
    size as a bound (`x.shape[0]` under polymorphic_shapes) is a scan of that symbolic length
    where upper - lower >= 0 for every size (n, n - 1; differentiable, one plan for every
    size), else a while_loop of the sizes filled in per call (JAX's takes a while_loop for
    every symbolic bound: int() of one is inconclusive there). `unroll` (JAX's keyword) is
    taken and checked as scan's, changing nothing (the values are the same); as in JAX it
    needs bounds known when the loop is traced."""
    _check_callable(body_fun, "fori_loop", "body_fun")
    if unroll is not None and not isinstance(unroll, bool) and \
            not (is_int(unroll) and unroll >= 1):
        raise GraphcError(f"fori_loop: unroll must be an int >= 1 or a bool, got {unroll!r}",
                          (user_location(),))
    _refuse_foreign("fori_loop", "init_val", init_val, leaves_and_structure(init_val)[0])
    if _read_per_call(lower) or _read_per_call(upper):
        if unroll is not None:  # (JAX's words)
            raise GraphcError("fori_loop: unroll can only be used if the loop bounds are "
                              "statically known (a Python or numpy int, not a traced value)",
                              (user_location(),))
        return _fori_while(lower, upper, body_fun, init_val)
    if isinstance(lower, Dim) or isinstance(upper, Dim):
        length, dtype = upper - lower, np.dtype(np.int64)  # a size's value is an int64
        try:
            runs = length >= 0 if isinstance(length, Dim) else length > 0
        except InconclusiveDim:  # as fori_loop(2, n): no steps at n = 1, n - 2 at n >= 2
            return _fori_while(lower, upper, body_fun, init_val)
    else:
        # the bounds checked first: numpy's reading refused a bfloat16 tensor raw
        start = _whole(lower, "fori_loop: lower")  # (an eager Tensor's value too)
        length = _whole(upper, "fori_loop: upper") - start
        if length >= 2**63:  # (both bounds fit: the scan's length, not the user's, was named)
            raise GraphcError(f"fori_loop: upper - lower = {length} does not fit in int64",
                              (user_location(),))
        dtype = _index_dtype(np.result_type(scalar_array(lower), scalar_array(upper)))
        lower = start
        runs = length > 0
    if not runs:  # no loop, but the number a loop takes (traced bounds: a while_loop)
        init_leaves = leaves_and_structure(init_val)[0]
        graph = _graph_of(init_leaves)
        _construct_salt(graph)
        return init_val if graph is not None else _apart(init_val, init_leaves)
    start = F.full((), lower, dtype) if isinstance(lower, Dim) else np.asarray(lower, dtype)

    @functools.wraps(body_fun, updated=())  # a carry error names body_fun, not this wrapper
    def step(carry, _):
        i, val = carry
        return (i + 1, body_fun(i, val)), None
    step.fori_counters = 1  # (i, val): see _as_written

    (_, val), _ = scan(step, (start, init_val), None, length=length)
    return val


def _index_dtype(dtype):
    """The dtype of a loop index over bounds of `dtype`: an int dtype graphc has no values of
    (numpy int8, int16, uint8, uint16, uint32, uint64 scalars) widened to the first of int32
    and int64 that holds its values (uint64: int64, the bounds' values checked by _whole),
    as JAX makes int64 bounds int32. The scan's carry was int8, which eagerly stayed a numpy
    int8 and compiled was refused as an unsupported dtype."""
    if dtype in INT_DTYPES:
        return dtype
    return next((d for d in INT_DTYPES if np.can_cast(dtype, d)), INT_DTYPES[-1])


def _fori_while(lower, upper, body_fun, init_val):
    """fori_loop as a while_loop on (i, upper, val); a symbolic size as a bound enters as a
    scalar the plan fills in per call, of the other bound's dtype where that one is traced
    (as a weak Python int would take it), else int64."""
    for name, b in (("lower", lower), ("upper", upper)):
        if _read_per_call(b) and (F._ndim(b) != 0 or np.dtype(F._dtype(b)).kind not in "iu"):
            raise GraphcError(f"fori_loop: {name} must be an int, got "
                              f"{TensorType(F._shape(b), F._dtype(b))}", (user_location(),))
        if not (_read_per_call(b) or isinstance(b, Dim) or is_int(b)):
            raise GraphcError(f"fori_loop: {name} must be an int, got {b!r}",
                              (user_location(),))
    # the bounds' dtype: a traced bound's (an int32 tensor's); a Python int, or a compiled
    # function's int argument (weak), takes it, as a weak int does
    strong = {np.dtype(F._dtype(b)) for b in (lower, upper)
              if _read_per_call(b) and not weak.is_weak(b)}
    if len(strong) > 1:
        raise GraphcError(f"fori_loop: lower and upper have different dtypes "
                          f"({', '.join(sorted(str(d) for d in strong))}); cast one of them",
                          (user_location(),))
    dtype = strong.pop() if strong else np.dtype(np.int64)
    info = np.iinfo(dtype)
    for name, b in (("lower", lower), ("upper", upper)):
        if is_int(b) and not info.min <= int(b) <= info.max:
            raise GraphcError(f"fori_loop: {name} = {int(b)} does not fit in {dtype}, the "
                              "dtype of the other bound", (user_location(),))
    lower, upper = [F.full((), b, dtype) if isinstance(b, Dim) else
                    np.asarray(b, dtype) if is_int(b) else
                    F.cast(b, dtype) if _read_per_call(b) and weak.is_weak(b) else b
                    for b in (lower, upper)]

    def keep_going(carry):
        return carry[0] < carry[1]

    @functools.wraps(body_fun, updated=())  # as fori_loop's scan
    def body(carry):
        i, hi, val = carry
        return i + 1, hi, body_fun(i, val)
    body.fori_counters = 2  # (i, upper, val): see _as_written

    return while_loop(keep_going, body, (lower, upper, init_val))[2]


# ---- while_loop ---------------------------------------------------------------------------
@_naming_wrong_arity(lambda cond_fun, body_fun, init_val: [
    (cond_fun, "cond_fun", ("val",)), (body_fun, "body_fun", ("val",))])
def while_loop(cond_fun, body_fun, init_val):
    """jax.lax.while_loop: while cond_fun(val): val = body_fun(val). Not differentiable."""
    _check_callable(cond_fun, "while_loop", "cond_fun")
    _check_callable(body_fun, "while_loop", "body_fun")
    init_leaves, init_structure = leaves_and_structure(init_val)
    _refuse_foreign("while_loop", "init_val", init_val, init_leaves)
    graph = _graph_of(init_leaves)
    construct = _construct_salt(graph)
    if graph is None:
        init_val = unflatten(init_structure, [_graphc_typed(v) for v in init_leaves])
        val, t, since = init_val, 0, op_serial()
        while True:
            with _sites_within(None, construct, _WHILE_COND, t):
                keep_going = _known(cond_fun(val))
            if keep_going.ndim != 0 or keep_going.dtype != np.bool_:  # as traced
                raise GraphcError(f"while_loop cond_fun {function_name(cond_fun)}"
                                  f"{_where(cond_fun)} must return a bool scalar, got "
                                  f"{_concrete_type(keep_going)}",
                                  (user_location(),))
            if not keep_going:
                return _apart(val, init_leaves, since)
            with _sites_within(None, construct, _BODY, t):
                val = body_fun(val)
            val = _check_eager_carry(body_fun, "while_loop body",
                                     _eager_autocast_carry(val, init_val), init_val)
            t += 1
    call_site = user_location()
    carry_nodes = _carry_nodes(graph, init_leaves, [], "while_loop init")
    carry_in = unflatten(init_structure, carry_nodes)
    strong = set()
    while True:  # (again only where a weak carry lost its weakness: see _weak_lost)
        cond_region, cond_own, keep = _trace_region(cond_fun, f"{function_name(cond_fun)}_cond",
                                                    [carry_in], graph,
                                                    (construct, _WHILE_COND), loop=True,
                                                    strong=strong)
        keep_leaves, _ = leaves_and_structure(keep)
        _refuse_foreign_result(f"while_loop cond_fun {function_name(cond_fun)}"
                               f"{_where(cond_fun)}", "", keep_leaves)
        _set_outputs(cond_region, keep_leaves, call_site)
        out = cond_region.outputs
        if len(out) != 1 or out[0].ndim != 0 or out[0].dtype != np.bool_:
            raise GraphcError(f"while_loop cond_fun {function_name(cond_fun)}{_where(cond_fun)} "
                              f"must return a bool scalar, got {_types(out)}",
                              (user_location(),))
        body_region, body_own, new = _trace_region(body_fun, f"{function_name(body_fun)}_body",
                                                   [carry_in], graph, (construct, _BODY),
                                                   loop=True, strong=strong)
        _, new_leaves, new_structure = _in_structure(new, init_structure)
        _refuse_foreign_result(f"{_as_written(body_fun, 'while_loop body')[0]} function "
                               f"{function_name(body_fun)}{_where(body_fun)}", " in its carry",
                               new_leaves)
        new_leaves = _autocast_carry(body_region, new_leaves, carry_nodes)
        _set_outputs(body_region, new_leaves, call_site)
        lost = _weak_lost(body_region, body_own, min(len(carry_nodes), len(new_leaves)))
        if not lost:
            break
        carry_nodes, carried_strong = _promote_carries(graph, carry_nodes,
                                                       body_region.outputs, lost)
        strong |= carried_strong
        carry_in = unflatten(init_structure, carry_nodes)
    _check_carry(body_fun, "while_loop body", body_region.outputs, new_structure, body_own,
                 init_structure)
    if cond_region.iteration_input is not None or body_region.iteration_input is not None:
        # dropout inside: count the iterations in one more carry, 0, 1, ...
        cond_own.append(cond_region.iteration())
        body_own.append(body_region.iteration())
        with body_region.building():
            body_region.set_outputs(body_region.outputs + [body_region.iteration() + 1])
        carry_nodes = carry_nodes + [_as_node(graph, np.asarray(0, np.int64), "while_loop")]
    cond_outer = cond_region.close(cond_own)
    body_outer = body_region.close(body_own)
    node = apply("while_loop", *cond_outer, *body_outer, *carry_nodes, cond_fn=cond_region,
                 body_fn=body_region, cond_consts=len(cond_outer),
                 body_consts=len(body_outer))
    return unflatten(init_structure, _results(node, len(carry_nodes))[:len(init_leaves)])


def _known(x):
    """A predicate, index or cond_fun result known now, as an array: a tensor's `.data` (an
    eager Tensor's values, a torch tensor detached), not a numpy scalar's (its buffer: a
    timedelta64 read as uint8[8]); one numpy cannot read as torch reads it (a bfloat16 torch
    scalar: scalar_array), else a 0-d object array holding it, for the caller's refusal.
    A Python int past int64 (an object to numpy) the caller takes by its truth or clamps."""
    # (an ndarray's .data is its buffer too: a timedelta64, datetime64 or bfloat16 one raised
    # a raw ValueError reading it; foreign_array reads a bfloat16 torch tensor of any shape
    # as bf16, which scalar_array read as f64 at 0-d and not at all above)
    x = x if isinstance(x, (np.ndarray, np.generic)) else getattr(x, "data", x)
    held = foreign_array(x)
    if held is None:
        held = scalar_array(x)
    if held is None:
        held = np.empty((), dtype=object)
        held[()] = x
    return held


def _concrete_type(value) -> str:
    """An array's type as traced messages show one (f64[3]); a dtype the IR has no name for
    by numpy's (complex128[], <U3[]) and an object array by what it holds (None): building
    the TensorType of one raised UnsupportedDtype, one line at no user line, in place of
    the refusal it was describing."""
    if value.dtype == object:
        shown = repr(value.item()) if value.ndim == 0 else "an array of Python objects"
        # (one line: a torch tensor numpy cannot read, or any object, may repr in many)
        return shown if "\n" not in shown and len(shown) <= 80 else \
            a_type(value.item())
    if value.dtype not in SHORT_NAMES:
        return f"{value.dtype}{list(value.shape)}"
    return str(TensorType(value.shape, value.dtype))


# ---- cond --------------------------------------------------------------------------------
@_naming_wrong_arity(lambda pred, true_fun, false_fun, *operands: [
    (true_fun, "true_fun", _operand_names(operands)),
    (false_fun, "false_fun", _operand_names(operands))])
def cond(pred, true_fun, false_fun, *operands):
    """jax.lax.cond: true_fun(*operands) if pred else false_fun(*operands). Both branches
    must return the same structure, shapes and dtypes; traced, both are compiled and the
    predicate picks one when the plan runs."""
    _check_callable(true_fun, "cond", "true_fun")
    _check_callable(false_fun, "cond", "false_fun")
    op_leaves, op_structure = leaves_and_structure(list(operands))
    _refuse_foreign_operands("cond", operands, op_leaves)
    graph = _graph_of([pred] + op_leaves)
    construct = _construct_salt(graph)
    if graph is None or not _read_per_call(pred):  # known now: only one runs
        # (a Python int of any size by its truth, as `if`: numpy holds one past int64 as
        # an object)
        value = np.asarray(pred != 0) if isinstance(pred, int) else _known(pred)
        since = op_serial()
        if value.ndim != 0 or value.dtype.kind not in "biu":  # as traced
            raise GraphcError(f"cond: the predicate must be a bool or integer scalar, got "
                              f"{_concrete_type(value)}", (user_location(),))
        taken = bool(value)
        with _sites_within(graph, construct, int(taken)):
            result = (true_fun if taken else false_fun)(*operands)
        fn = true_fun if taken else false_fun
        _refuse_foreign_result(f"cond: {'true' if taken else 'false'}_fun "
                               f"{function_name(fn)}{_where(fn)}", "",
                               leaves_and_structure(result)[0])
        return result if graph is not None else _apart(result, op_leaves, since)
    call_site = user_location()
    pred_node = _as_node(graph, pred, "cond predicate")
    if pred_node.ndim != 0 or pred_node.dtype.kind not in "biu":
        raise GraphcError(f"cond: the predicate must be a bool or integer scalar, got "
                          f"{pred_node.type}", (user_location(),))
    # a Python float operand takes the operands' float dtype, as a scan's carry does; other
    # numbers (cond(p, f, g, x, 3)) are weakly typed in the branches, as they are eagerly
    typed = _typed_carries(op_leaves, ())
    op_nodes = [_as_node(graph, x, "cond operand") for x in typed]
    graph.weak_ids.update(n.id for n, x in zip(op_nodes, typed)
                          if is_weak_scalar(x) and not isinstance(x, (bool, np.bool_)))
    args = unflatten(op_structure, op_nodes)
    traced = []
    for branch, (fn, which) in enumerate(((false_fun, "false"), (true_fun, "true"))):
        region, own, result = _trace_region(lambda *a, fn=fn: fn(*a[0]),
                                            f"{function_name(fn)}_{which}", [args], graph,
                                            (construct, branch))
        _refuse_foreign_result(f"cond: {which}_fun {function_name(fn)}{_where(fn)}", "",
                               leaves_and_structure(result)[0])  # (as eagerly)
        traced.append((fn, region, own, result))
    (f_fn, f_region, f_own, f_result), (t_fn, t_region, t_own, t_result) = traced
    # (the false branch's dicts in the true one's key order: the same pytree, as in JAX)
    t_leaves, t_structure = leaves_and_structure(t_result)
    _, f_leaves, f_structure = _in_structure(f_result, t_structure)
    if f_structure == t_structure:
        f_leaves, t_leaves = _autocast_branches(f_region, f_leaves, t_region, t_leaves)
    _set_outputs(f_region, f_leaves, call_site)
    _set_outputs(t_region, t_leaves, call_site)
    if f_structure == t_structure:
        _weak_branch_dtypes(f_region, t_region, call_site)
    if f_structure != t_structure or [o.type for o in f_region.outputs] != \
            [o.type for o in t_region.outputs]:
        raise GraphcError(f"cond: true_fun {function_name(t_fn)}{_where(t_fn)} returns "
                          f"{_types(t_region.outputs)} but false_fun {function_name(f_fn)} returns "
                          f"{_types(f_region.outputs)}; both must return the same structure, "
                          f"shapes and dtypes{_branch_apart(t_structure, f_structure, [o.type for o in t_region.outputs], [o.type for o in f_region.outputs])}",
                          (user_location(),))
    # each branch takes both branches' captured values (a branch ignores the other's)
    f_outer = f_region.close(f_own)
    t_outer = t_region.close(t_own)
    _take_unused(f_region, len(f_outer), [_type_of(graph, v) for v in t_outer], after=True)
    _take_unused(t_region, 0, [_type_of(graph, v) for v in f_outer], after=False)
    node = apply("cond", pred_node, *f_outer, *t_outer, *op_nodes,
                 branches=(f_region, t_region))
    return unflatten(t_structure, _results(node, len(t_region.outputs)))


# ---- map ---------------------------------------------------------------------------------
# (it shadows Python's map in this module, which therefore builds lists with comprehensions)
@_naming_wrong_arity(lambda f, *args, **kwargs: [(f, "f", ("x",))])
def map(f, xs, *, batch_size=None):
    """jax.lax.map: f over the leading axis of xs (a pytree), results stacked along a new
    leading axis; one scan without a carry, so one compiled body runs every step (vmap runs
    f once on the whole batch instead, with memory to match). batch_size=k (as JAX's): a
    scan over chunks of k rows, each mapped by vmap, and one more vmap over the n % k rows
    left; batch_size=0 is one vmap over all of xs. The results equal the unbatched map's."""
    # checked here so the messages say map and name what map takes (scan's would say
    # scan and suggest its length=)
    _check_callable(f, "map", "f")
    leaves, structure = leaves_and_structure(xs) if xs is not None else ([], None)
    _refuse_foreign("map", "xs", xs, leaves)
    if not leaves:
        raise GraphcError("map: xs has no arrays to map over", (user_location(),))
    if any(np.ndim(x) == 0 for x in leaves):
        raise GraphcError("map: every leaf of xs needs a leading axis to map over",
                          (user_location(),))
    lengths = {_length(np.shape(x)[0]) for x in leaves}
    if len(lengths) != 1:
        raise GraphcError(f"map: the leaves of xs disagree on the leading axis' length: "
                          f"{sorted(lengths, key=str)}", (user_location(),))
    if batch_size is not None:
        return _map_in_batches(f, leaves, structure, lengths.pop(), batch_size)
    checked = _naming_foreign_results(f)
    _, ys = scan(lambda carry, x: (carry, checked(x)), (), xs)
    return ys


def _naming_foreign_results(f):
    """map's f, whose result holding another library's array is one line naming f, in
    its batches (vmap) as row by row."""
    @functools.wraps(f)
    def checked(x):
        y = f(x)
        _refuse_foreign_result(f"map: f {function_name(f)}{_where(f)}", "",
                               leaves_and_structure(y)[0])
        return y
    return checked


def _map_in_batches(f, leaves, structure, n, batch_size):
    if not is_int(batch_size) or batch_size < 0:
        raise GraphcError(f"map: batch_size must be an int >= 0 (0: one vmap over all of xs), "
                          f"got {batch_size!r}", (user_location(),))
    k = int(batch_size)
    if n == 0:  # no rows: the unbatched map gives the empty results their types
        return map(f, unflatten(structure, leaves))
    try:  # batch_size=0: no chunks, every row left for the one vmap (JAX's)
        chunks, rest = (n // k, n % k) if k else (0, n)
    except InconclusiveDim:
        raise GraphcError(f"map: batch_size={k} must divide the symbolic length {n} of xs' "
                          f"leading axis for every size; declare the dimension concrete",
                          (user_location(),)) from None
    mapped = vmap(_naming_foreign_results(f))  # called on one pytree: f(chunk) on each row
    parts = []
    if chunks:
        cut = [leaf if not rest else leaf[:chunks * k] for leaf in leaves]
        split = [F.reshape(leaf, (chunks, k) + tuple(np.shape(leaf)[1:])) for leaf in cut]
        _, ys = scan(lambda carry, x: (carry, mapped(x)), (), unflatten(structure, split))
        parts.append(ys)
    if rest:
        parts.append(mapped(unflatten(structure, [leaf[n - rest:] for leaf in leaves])))
    if not chunks:
        return parts[0]
    y_leaves, y_structure = leaves_and_structure(parts[0])
    joined = [F.reshape(y, (chunks * k,) + tuple(F._shape(y)[2:])) for y in y_leaves]
    if rest:
        joined = [F.concatenate([a, b], 0)
                  for a, b in zip(joined, leaves_and_structure(parts[1])[0])]
    return unflatten(y_structure, joined)


# ---- switch ------------------------------------------------------------------------------
@_naming_wrong_arity(lambda index, branches, *operands: [
    (branch, f"branches[{k}]", _operand_names(operands))
    for k, branch in enumerate(branches if isinstance(branches, (list, tuple)) else ())])
def switch(index, branches, *operands):
    """jax.lax.switch: branches[index](*operands), the index clamped to [0, len(branches) - 1]
    as JAX clamps it. Built as a balanced tree of conds on `index < k`, so its gradients,
    vmap (a batched index runs every branch and selects, as JAX's does), forward mode and
    dropout numbering are cond's; the out-of-range indices fall to the first or last
    branch by the same comparisons."""
    branches = tuple(branches) if isinstance(branches, (list, tuple)) else None
    if not branches or not all(callable(b) for b in branches):
        raise GraphcError("switch: branches must be a non-empty list or tuple of functions",
                          (user_location(),))
    if isinstance(index, int) and not isinstance(index, bool):
        # clamped now (the branch it picks is the same): numpy holds a Python int past
        # int64 as an object, which was refused as no integer
        index = min(max(index, 0), len(branches) - 1)
    if isinstance(index, SymbolicValue):
        kind, ndim, text = index.dtype.kind, index.ndim, str(index.type)
    else:
        value = _known(index)
        kind, ndim, text = value.dtype.kind, value.ndim, _concrete_type(value)
    if kind not in "iu" or ndim != 0:
        raise GraphcError(f"switch: the index must be an integer scalar, got {text}",
                          (user_location(),))
    _refuse_foreign_operands("switch", operands)

    def pick(lo, hi):  # the function running branches[index] for index in [lo, hi)
        if hi - lo == 1:
            def one(*ops):
                return branches[lo](*ops)
            # named for cond's message about branches that disagree (rephrased below)
            one.__name__ = f"branch {lo} {function_name(branches[lo])}"
            one.__wrapped__ = branches[lo]
            return one
        mid = (lo + hi) // 2

        def either(*ops):
            return cond(index < mid, pick(lo, mid), pick(mid, hi), *ops)
        either.__name__ = f"branches {lo}-{hi - 1}"
        return either

    if len(branches) == 1:  # no cond to run it: eagerly, its result is still apart, as cond's
        op_leaves = leaves_and_structure(list(operands))[0]
        result = branches[0](*operands)
        return result if _graph_of([index] + op_leaves) is not None else \
            _apart(result, op_leaves)
    try:
        return pick(0, len(branches))(*operands)
    except GraphcError as error:
        # only the message of this tree's own conds (their functions are named "branch 2 f"
        # or "branches 0-3"): a cond inside a branch speaks for itself
        # (and the eager refusal of a branch's torch result, which names the branch taken)
        if not error.message.startswith(("cond: true_fun branch ", "cond: true_fun branches ",
                                         "cond: false_fun branch ")):
            raise
        message = error.message.replace("cond: true_fun ", "switch: ", 1) \
            .replace("cond: false_fun ", "switch: ", 1) \
            .replace(" but false_fun ", " but ", 1).replace("both must", "all must", 1)
        raise GraphcError(message, error.locs) from None


def _branch_keys_apart(first, second) -> str:
    """'; their dicts have keys [..] and [..]' where two branches' results differ there."""
    apart = _keys_apart(first, second)
    if apart is not None:
        return f"; their dicts{apart[0]} have keys {apart[1]} and {apart[2]}"
    apart = _dict_kinds_apart(first, second)
    return "" if apart is None else f"; their results{apart[0]} are {apart[1]} and {apart[2]}"


def _branch_apart(first, second, first_types, second_types) -> str:
    """_branch_keys_apart's detail, else where the two results first differ, by its path
    (JAX's): two structures that print alike (a tuple and a dict of the same arrays), a
    tuple against a list, another length, or the first leaf of another type."""
    detail = _branch_keys_apart(first, second)
    if detail:
        return detail
    apart = first_apart(first, second, first_types, second_types, root="result")
    return "" if apart is None or (apart[3] is not None and len(first_types) < 2) else f"; they first differ at {apart[0]}: {apart[1]} " \
                                    f"against {apart[2]}"


def _weak_branch_dtypes(f_region, t_region, call_location):
    """A weakly typed result of one branch (a Python number returned: `lambda x: 0.0`, or a
    weak value computed from one) takes the dtype of the other branch's result beside it,
    as a weak scalar takes the dtype of the tensor it meets and a loop's weak carry that of
    the body's result: cond(p, lambda x: 0.0, lambda x: x[0], x) over float64 x returns
    float64 (JAX's, where a Python number is weakly typed); it was a float32 constant and
    the branches were refused as disagreeing. As _promote_carries, a weak int takes any int
    or float dtype, a weak float any float one; a weak float beside an int stays refused.
    Both weak in two dtypes: the wider (an int's the float's), and the result stays weak."""
    outs = {id(r): list(r.outputs) for r in (f_region, t_region)}
    changed = set()
    for k, (a, b) in enumerate(zip(f_region.outputs, t_region.outputs)):
        if a.dtype == b.dtype or a.shape != b.shape:
            continue
        weak_a, weak_b = weak.is_weak(a), weak.is_weak(b)
        if not (weak_a or weak_b):
            continue
        if weak_a and weak_b:
            floats = [n.dtype for n in (a, b) if n.dtype.kind == "f"]
            target = np.dtype(floats[0]) if len(floats) == 1 else \
                np.promote_types(a.dtype, b.dtype)
            to_cast = [(f_region, a)] if a.dtype != target else []
            to_cast += [(t_region, b)] if b.dtype != target else []
        else:
            (region, node), other = ((f_region, a), b) if weak_a else ((t_region, b), a)
            target = np.dtype(other.dtype)
            to_cast = [(region, node)]
        if target.kind == "b" or any(n.dtype.kind == "f" and target.kind != "f"
                                     for _, n in to_cast):
            continue  # (refused below as the branches disagreeing)
        for region, node in to_cast:
            with region.building(), region.locations((call_location,) if call_location
                                                     else ()):
                cast = region._cast(node, target)
            if weak_a and weak_b:
                region.weak_ids.add(cast.id)
            outs[id(region)][k] = cast
            changed.add(id(region))
    for region in (f_region, t_region):
        if id(region) in changed:
            with region.building():
                region.set_outputs(outs[id(region)])


def _autocast_branches(f_region, f_leaves, t_region, t_leaves):
    """Under autocast, a result that one branch gives in the half dtype and the other in
    float32 (a matmul against an elementwise op) is half in both, as autocast computes an op
    mixing the two in half: the branches then agree on their types."""
    half = AUTOCAST.dtype
    if half is None or len(f_leaves) != len(t_leaves):
        return f_leaves, t_leaves
    half, f_out, t_out = np.dtype(half), [], []
    for a, b in zip(f_leaves, t_leaves):
        if isinstance(a, SymbolicValue) and isinstance(b, SymbolicValue) and \
                {a.dtype, b.dtype} == {half, np.dtype("float32")}:
            if a.dtype != half:
                with f_region.building():
                    a = F.cast(a, half)
            else:
                with t_region.building():
                    b = F.cast(b, half)
        f_out.append(a)
        t_out.append(b)
    return f_out, t_out


def _type_of(graph, value):
    node = _as_node(graph, value, "cond")
    return node.shape, node.dtype


def _take_unused(region, position, types, after):
    """Inputs the branch ignores (the other branch's captured values), inserted into its
    signature after its own captured values (after=True) or before them."""
    extra = [region.input(f"unused{k}", shape, dtype) for k, (shape, dtype) in enumerate(types)]
    rest = [n for n in region.inputs if n not in set(extra)]
    region.set_signature(rest[:position] + extra + rest[position:] if after else extra + rest)
