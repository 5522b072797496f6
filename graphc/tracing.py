"""Tracing: run a plain Python function on symbolic values to build a Graph.

Arguments and results may be pytrees (tuples, lists and dicts of arrays, None being an empty
subtree), as in JAX.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ir.errors import GraphcError, a_type, user_location, with_article
from ir.graph import Graph, Node, current_graph
from ir.ops import api as F
from ir.ops.registry import foreign_array_name, refuse_foreign_array
from ir.types import (SHORT_NAMES, WIDENED_INPUTS, TensorType, TupleType, UnsupportedDtype,
                      as_dim, as_dtype, has_negative_size, is_int, negative_size_error,
                      unsupported_dtype)
from runtime.eager import Tensor, collect_buffer_updates

# JAX's float0 (gc.float0, defined here for the trace's message; transforms.float0 is it)
FLOAT0 = np.dtype([("float0", np.void, 0)])


@dataclass(frozen=True)
class Spec:
    """The shape and dtype of a traced argument (JAX's ShapeDtypeStruct)."""
    shape: tuple
    dtype: np.dtype
    # a Python number's: weakly typed in the trace, it takes the dtype of the tensors it
    # meets (ir/weak.py), as jax.jit's Python scalars
    weak: bool = False

    def __str__(self):
        return str(TensorType(self.shape, self.dtype))


def spec(shape, dtype="float32") -> Spec:
    """A traced argument's shape and dtype. A dimension may be a name (`spec(("batch", 128))`)
    or a `Dim` expression: it is symbolic, one graph and one plan serve every size of it
    (shape polymorphism; the plan binds it from the arrays it is called with)."""
    try:
        # one size: a name, or a number read as full's and broadcast_to's (a numpy integer or
        # a 0-d array, as torch.zeros(np.int64(3)); iterated, it was a raw TypeError)
        shape = F._shape_argument(shape, "spec", size=as_dim)  # (a name is a symbol here)
    except (TypeError, ValueError) as exc:
        raise GraphcError(f"spec: bad shape {shape!r}: {exc}", (user_location(),)) from None
    negative = [d for d in shape if isinstance(d, int) and d < 0]
    if negative:  # (traced, spec((-3, 4)) gave a graph of f32[-3,4] that no array fits)
        raise GraphcError(f"spec: bad shape {shape!r}: a dimension is 0 or more, got "
                          f"{negative[0]}", (user_location(),))
    return Spec(shape, as_dtype(dtype))


def to_spec(x) -> Spec:
    if isinstance(x, Spec):
        return x
    if isinstance(x, np.generic) and is_int(x):  # (not a timedelta64, a time: refused)
        # a numpy integer scalar is a weak number, as eagerly (registry.is_weak_scalar): traced
        # as a Python int is (int64), whatever its own dtype, which the IR may lack (np.uint8
        # labels); checked to fit int64 below. np.int32 too: kept int32, k + 1 wrapped at
        # 2**31 - 1 where eager gives int64 2**31
        x = int(x)
    elif isinstance(x, np.floating) and x.dtype not in SHORT_NAMES:
        # np.longdouble, which the IR lacks: a weak float, float32 as eagerly where no float
        # array fixes its dtype (registry.like_dtype), not the UnsupportedDtype float128
        x = np.float32(x)
    if isinstance(x, (Node, Tensor, np.ndarray, np.generic)):
        try:
            return Spec(tuple(x.shape), as_dtype(WIDENED_INPUTS.get(x.dtype, x.dtype)))
        except UnsupportedDtype as exc:  # (a complex array: the callers name the argument)
            raise UnsupportedArgument(exc.message, exc.locs) from None
    if isinstance(x, int) and not isinstance(x, bool) and not -2**63 <= x < 2**63:
        # (np.asarray made it uint64 or object: an unsupported dtype from deep inside)
        raise GraphcError(f"the int {x} does not fit in int64, the dtype an int argument is "
                          f"traced as; pass float({x}) or an array", (user_location(),))
    if isinstance(x, (bool, int, float)):
        return Spec((), np.asarray(x).dtype)
    try:
        refuse_foreign_array(x)
    except GraphcError as exc:  # (told apart: the callers name the argument, refuse_foreign_argument)
        raise ForeignArgument(exc.message, exc.locs) from None
    raise GraphcError(f"cannot make a tensor spec from {a_type(x)}; pass "
                      "graphc.spec(shape, dtype) or an example array", (user_location(),))


# ---- pytrees --------------------------------------------------------------------------------
# Tuples (namedtuples too), lists and dicts are nodes; None is a node without children (an
# empty subtree, as in JAX: tree_leaves({"a": x, "b": None}) == [x]), so it passes through
# every transform, in arguments and results, gradients and optimiser states, and unflatten
# puts it back; anything else is a leaf. A structure is None for a leaf, NONE for None and
# (type, children) for a container. A dict's children are (key, structure) pairs in its
# order; an OrderedDict is a node of its own (as JAX's: rebuilt as one, its order part of
# the structure), any other dict a dict.
NONE = (type(None), ())
DICT_KINDS = (dict, OrderedDict)


def dict_kind(tree):
    """The dict type a tree's dict is rebuilt as: OrderedDict for one, dict for any other."""
    return OrderedDict if isinstance(tree, OrderedDict) else dict


def flatten(tree, prefix=""):
    """-> (leaves, structure, leaf names)"""
    if tree is None:
        return [], NONE, []
    if isinstance(tree, (tuple, list)):
        leaves, structs, names = [], [], []
        for i, item in enumerate(tree):
            lv, st, nm = flatten(item, f"{prefix}.{i}" if prefix else str(i))
            leaves += lv
            names += nm
            structs.append(st)
        return leaves, (type(tree), tuple(structs)), names
    if isinstance(tree, dict):
        leaves, structs, names = [], [], []
        for key in tree:
            lv, st, nm = flatten(tree[key], f"{prefix}.{key}" if prefix else str(key))
            leaves += lv
            names += nm
            structs.append((key, st))
        return leaves, (dict_kind(tree), tuple(structs)), names
    return [tree], None, [prefix]


def leaves_and_structure(tree, leaves=None):
    """-> (leaves, structure): flatten() without the leaf names, for per-call signatures."""
    if leaves is None:
        leaves = []
    if tree is None:
        return leaves, NONE
    if isinstance(tree, (tuple, list)):
        return leaves, (type(tree), tuple(leaves_and_structure(item, leaves)[1]
                                          for item in tree))
    if isinstance(tree, dict):
        # (type() first: this runs at every compiled call)
        kind = dict if type(tree) is dict else dict_kind(tree)
        return leaves, (kind, tuple((key, leaves_and_structure(tree[key], leaves)[1])
                                    for key in tree))
    leaves.append(tree)
    return leaves, None


def refuse_traced(value, message: str):
    """Refuse a traced leaf of `value`, an argument that must be a Python value (remat's
    static_argnums, custom_vjp/custom_jvp's nondiff_argnums; JAX refuses a tracer there):
    one line, `message`. A traced Python number raises graphc's traced-number error, so grad
    and the Jacobians on concrete arrays retry with the number as it is, as un-jitted JAX
    passes it; under compile it stays refused."""
    for leaf in leaves_and_structure(value)[0]:
        if isinstance(leaf, Node):
            leaf._no_value(message)


def unflatten(structure, leaves):
    it = iter(leaves)

    def build(st):
        if st is None:
            return next(it)
        kind, children = st
        if kind is type(None):
            return None
        if kind is dict:  # (a comprehension: this runs at every compiled call)
            return {k: build(c) for k, c in children}
        if kind is OrderedDict:
            return OrderedDict([(k, build(c)) for k, c in children])
        if hasattr(kind, "_fields"):  # a namedtuple takes its fields as arguments
            return kind(*(build(c) for c in children))
        return kind(build(c) for c in children)

    return build(structure)


def leaf_count(structure) -> int:
    if structure is None:
        return 1
    return sum(leaf_count(c[1] if structure[0] in DICT_KINDS else c) for c in structure[1])


def keys_sorted(structure, ordered_dicts=True):
    """A structure with each dict's children in the order of their keys: two trees whose
    structures differ only in the order of dicts' keys (JAX sorts dict keys, so they are the
    same pytree there) have the same keys_sorted. ordered_dicts=False sorts OrderedDicts too
    and makes them dicts, for trees matched by key whatever their dicts' kinds."""
    if structure is None:
        return None
    kind, children = structure
    if kind is dict or (kind is OrderedDict and not ordered_dicts):
        return dict, tuple(sorted(((k, keys_sorted(c, ordered_dicts)) for k, c in children),
                                  key=lambda item: repr(item[0])))
    if kind is OrderedDict:  # (its order is part of the pytree, as in JAX)
        return kind, tuple((k, keys_sorted(c)) for k, c in children)
    return kind, tuple(keys_sorted(c, ordered_dicts) for c in children)


def leaves_like(structure, tree, what="the tree", against="its model", prefix=False,
                exact=False, none_hint=""):
    """The leaves of `tree` at the leaves of `structure` (a tree's structure, as flatten gives),
    where None in `tree` may stand for any subtree, giving None for each of its leaves: a
    gradient of None is no gradient (optimisers leave the parameter alone, custom_vjp's bwd
    means zeros), a decay mask's None is False. prefix=True: any leaf of `tree` may stand for
    a subtree, repeated over its leaves (optax's mask, a prefix of the parameters' pytree).
    Where `tree` has another structure, a GraphcError: "`what` does not match `against` at
    PATH: ...". exact=True (jvp's tangents, like their primals): None only where `structure`
    holds no leaf (none_hint follows that line) and no container where it holds a leaf, each
    refused naming the path, as other mismatches are."""
    out = []

    def mismatch(path, detail):
        where = f" at {path}" if path else ""
        return GraphcError(f"{what} does not match {against}{where}: {detail}",
                           (user_location(),))

    def describe(t):
        if isinstance(t, (tuple, list)):
            return f"{a_type(t)} of {len(t)}"
        return a_type(t)

    def expected(st):  # what `structure` holds, said as describe says a tree (every line)
        if st is None:
            return "an array"
        kind, children = st
        if kind in DICT_KINDS:
            return f"a dict with keys {sorted(str(k) for k, _ in children)}"
        return f"{with_article(kind.__name__)} of {len(children)}"

    def walk(st, t, path):
        if t is None:
            if exact and leaf_count(st):
                raise mismatch(path, f"None where {expected(st)} is{none_hint}")
            out.extend([None] * leaf_count(st))
            return
        if st is None:
            if exact and isinstance(t, (tuple, list, dict)):
                raise mismatch(path, f"{describe(t)} where an array is")
            out.append(t)
            return
        if prefix and not isinstance(t, (tuple, list, dict)):
            out.extend([t] * leaf_count(st))
            return
        kind, children = st
        if kind is type(None):
            raise mismatch(path, f"{describe(t)} where None is")
        if kind in DICT_KINDS:
            keys = [k for k, _ in children]
            if not isinstance(t, dict) or set(t) != set(keys):
                got = f"keys {sorted(map(str, t))}" if isinstance(t, dict) else describe(t)
                raise mismatch(path, f"{got} where {expected(st)} is")
            for k, c in children:
                walk(c, t[k], f"{path}.{k}" if path else str(k))
            return
        if type(t) is not kind or len(t) != len(children):
            raise mismatch(path, f"{describe(t)} where {expected(st)} is")
        for i, (c, item) in enumerate(zip(children, t)):
            walk(c, item, f"{path}.{i}" if path else str(i))

    walk(structure, tree, "")
    return out


def _sorted_keys(tree: dict) -> list:
    try:
        return sorted(tree)
    except TypeError:
        raise GraphcError(f"the dict keys {list(tree)!r} cannot be sorted; pytree dicts are "
                          "flattened in sorted-key order, as JAX's (use an OrderedDict to keep "
                          "its own order)", (user_location(),)) from None


def jax_ordered_leaves_and_structure(tree, leaves, is_leaf=None, sort_keys=True):
    """leaves_and_structure as jax.tree_util's: a plain dict's keys in sorted order (so two
    dicts with the same keys built in other orders flatten alike), an OrderedDict's in its
    own; a subtree for which is_leaf(subtree) is true is a leaf. The public tree utilities
    use it; compiled calls keep the insertion order (leaves_and_structure, written for their
    per-call signatures without these options)."""
    if is_leaf is not None and is_leaf(tree):
        leaves.append(tree)
        return None
    if tree is None:
        return NONE
    if isinstance(tree, (tuple, list)):
        return type(tree), tuple(jax_ordered_leaves_and_structure(item, leaves, is_leaf, sort_keys)
                                 for item in tree)
    if isinstance(tree, dict):
        kind = dict_kind(tree)
        keys = _sorted_keys(tree) if sort_keys and kind is dict else list(tree)
        return kind, tuple((key, jax_ordered_leaves_and_structure(tree[key], leaves, is_leaf,
                                                             sort_keys))
                           for key in keys)
    leaves.append(tree)
    return None


def tree_leaves(tree, is_leaf=None) -> list:
    """The leaves of a pytree, in order (as jax.tree_util.tree_leaves: a dict's in the
    sorted order of its keys): None has none. is_leaf: as JAX's, a predicate making the
    subtrees it holds for leaves."""
    leaves = []
    jax_ordered_leaves_and_structure(tree, leaves, is_leaf)
    return leaves


def tree_flatten(tree, is_leaf=None):
    """(leaves, treedef), as jax.tree_util.tree_flatten (a dict's leaves in the sorted order
    of its keys); tree_unflatten(treedef, leaves) rebuilds a tree of that structure, its
    dicts in sorted-key order (the treedef is graphc's structure: comparable with ==,
    hashable). is_leaf: as tree_leaves'."""
    leaves = []
    return leaves, jax_ordered_leaves_and_structure(tree, leaves, is_leaf)


def tree_unflatten(treedef, leaves):
    """The tree of structure `treedef` (from tree_flatten) holding `leaves`, in order."""
    leaves = list(leaves)
    expected = leaf_count(treedef)
    if len(leaves) != expected:
        raise GraphcError(f"tree_unflatten: the structure holds {expected} leaves, got "
                          f"{len(leaves)}", (user_location(),))
    return unflatten(treedef, leaves)


def tree_map(f, tree, *rest, is_leaf=None):
    """f applied to each leaf of `tree` (and the leaves at the same places in `rest`, trees
    of the same structure), in a tree of that structure (as jax.tree_util.tree_map): None
    is an empty subtree, kept in place without calling f. Dicts are matched by key (JAX sorts
    their keys), so `rest` may list a dict's keys in another order; the result has `tree`'s.
    is_leaf: as JAX's, the subtrees of `tree` it holds for are leaves, f taking the subtrees
    at their places in `rest` whole."""
    if is_leaf is not None:
        leaves = []
        structure = jax_ordered_leaves_and_structure(tree, leaves, is_leaf, sort_keys=False)
        others = [leaves_like(structure, other, f"tree_map: tree {k + 1}", "the first tree")
                  for k, other in enumerate(rest)]
        return unflatten(structure, [f(*xs) for xs in zip(leaves, *others)])
    leaves, structure = leaves_and_structure(tree)
    others = []
    for k, other in enumerate(rest):
        other_leaves, other_structure = leaves_and_structure(other)
        if other_structure != structure:
            if keys_sorted(other_structure) != keys_sorted(structure):
                raise GraphcError(f"tree_map: tree {k + 1} does not have the first tree's "
                                  "structure", (user_location(),))
            other_leaves = leaves_like(structure, other)
        others.append(other_leaves)
    return unflatten(structure, [f(*xs) for xs in zip(leaves, *others)])


def called_function(fn) -> tuple:
    """(what calling fn runs, whose signature says what fn takes; its name for messages): a
    Module's __call__ takes anything, so its forward (unless the module has a __call__ of
    its own), named "Head.forward"."""
    from .nn import Module  # (here: nn's layers use this module)
    if isinstance(fn, Module) and type(fn).__call__ is Module.__call__:
        return fn.forward, f"{type(fn).__name__}.forward"
    return fn, function_name(fn)


def function_name(fn) -> str:
    """A function's name for messages: its __name__, else its type's (a callable object)."""
    return getattr(fn, "__name__", type(fn).__name__)


def arg_names(fn, count):
    """The names of fn's first `count` positional arguments as its user writes them, which
    the graph's inputs and messages take: a parameter's name, `args[k]` for the k-th value
    its *args holds (as JAX's debug info names them: 'arg1' named nothing the user wrote),
    else argK (no signature, or past it)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        params = ()
    fixed = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    rest = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    return [fixed[i] if i < len(fixed) else f"{rest}[{i - len(fixed)}]" if rest else f"arg{i}"
            for i in range(count)]


def leaf_input_names(argname: str, tree) -> list:
    """The graph input names trace() gives the leaves of an argument: `params.l1.weight`
    (an argument named "" gives its leaves their own names: `l1.weight`)."""
    _, _, names = flatten(tree, "")
    return [f"{argname}.{leafname}" if argname and leafname else leafname or argname
            for leafname in names]


class ForeignArgument(GraphcError):
    """to_spec's refusal of an argument, another library's array or an array of a dtype the
    IR lacks (UnsupportedArgument): a call that meets it names the function and the argument
    (refuse_foreign_argument); other errors pass as they are."""


class UnsupportedArgument(ForeignArgument, UnsupportedDtype):
    """to_spec's refusal of an array of a dtype the IR lacks (complex128): an UnsupportedDtype
    still, for callers that try a value and fall back."""


def refuse_foreign_argument(prefix: str, fn, args, kwargs=None, names=None, locs=None):
    """Raise the refusal of the first leaf of fn's arguments that is another library's array
    (a torch.Tensor) or an array of a dtype the IR lacks (complex), naming the argument (a
    pytree's leaf by its path, `d.a`) after `prefix` ("compiled f", "grad of f"): to_spec's
    own line named neither. Returns where there is none. Called where a call failed, off the
    per-call path. `names`: the arguments' names (default: fn's parameters'); `locs`: the
    failed call's."""
    names = names or arg_names(called_function(fn)[0], len(args))
    for argname, value in [*zip(names, args), *(kwargs or {}).items()]:
        leaves, _, _ = flatten(value, "")
        for leaf, full in zip(leaves, leaf_input_names(argname, value)):
            why = unsupported_argument(leaf)
            if why is not None:
                raise UnsupportedDtype(f"{prefix}: argument {full}: {why}",
                                       locs or (user_location(),))
            kind = None if isinstance(leaf, (Tensor, Node)) else foreign_array_name(leaf)
            if kind is not None:
                raise GraphcError(f"{prefix}: argument {full} is a {kind}, another library's "
                                  "array; pass a numpy array (x.numpy(), or np.asarray(x))",
                                  locs or (user_location(),))


def unsupported_argument(leaf) -> str | None:
    """Why to_spec refuses the numpy array (or scalar) `leaf` for its dtype ("dtype
    complex128 is not supported ..."), None where it takes it or `leaf` is no numpy value."""
    if not isinstance(leaf, (np.ndarray, np.generic)) or (
            isinstance(leaf, np.generic) and (is_int(leaf) or isinstance(leaf, np.floating))):
        return None  # (numpy int and float scalars: weak numbers, as to_spec reads them)
    return unsupported_dtype(WIDENED_INPUTS.get(leaf.dtype, leaf.dtype))


def call_signature(fn) -> inspect.Signature:
    """The parameters a call of fn binds to: fn's own, not those of a function it wraps
    (a functools.wraps(f) wrapper supplying one of f's arguments takes one fewer: bound
    against f's, its valid calls were refused and its body's TypeError reported as f's
    missing argument); a pass-through wrapper's (only *args and **kwargs), the wrapped
    function's. ValueError where fn has no signature."""
    own = inspect.signature(fn, follow_wrapped=False)
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in own.parameters.values()):
        return inspect.signature(fn)
    return own


def called(who, fn, args, kwargs=None):
    """fn(*args, **kwargs), a transformation's call of the user's function: where fn does
    not take those arguments (one too few or too many, a keyword it lacks), one GraphcError
    line `{who}: missing a required argument: 'n'`, as a compiled function's call says, not
    Python's TypeError from inside the transformation. fn's signature is read only where the
    call raised a TypeError (one from fn's body, where the arguments bind, passes as it is)."""
    kwargs = kwargs or {}
    try:
        return fn(*args, **kwargs)
    except TypeError:
        target, given, keywords = fn, args, kwargs
        if isinstance(fn, functools.partial):  # (the keywords a transformation fixed: its
            # signature refuses one fn lacks, where the call's TypeError names it)
            target, given = fn.func, (*fn.args, *args)
            keywords = {**fn.keywords, **kwargs}
        try:
            call_signature(called_function(target)[0]).bind(*given, **keywords)
        except TypeError as exc:
            raise GraphcError(f"{who}: {exc}", (user_location(),)) from None
        except ValueError:  # (no signature to bind against)
            pass
        raise


def trace(fn, *specs, name: str | None = None, names=None, who=None) -> Graph:
    """Build the graph of `fn` applied to symbolic values of the given specs (graphc.spec
    objects, example arrays, or pytrees of them). Nothing is computed. `names`: the
    arguments' names (default: fn's parameter names), which prefix the graph's input names.
    `who`: what a call of fn with arguments it does not take is refused as (`called`;
    default `trace of f`)."""
    graph = Graph(name or function_name(fn).strip("<>"))
    with graph.building():
        args = []
        for argname, s in zip(names or arg_names(fn, len(specs)), specs):
            leaves, structure, _ = flatten(s, "")
            nodes = []
            for leaf, full in zip(leaves, leaf_input_names(argname, s)):
                sp = to_spec(leaf)
                nodes.append(graph.input(full, sp.shape, sp.dtype))
                if sp.weak:
                    graph.weak_ids.add(nodes[-1].id)
            args.append(unflatten(structure, nodes))
        result = called(who or f"trace of {graph.name}", fn, args)
        leaves, structure, _ = flatten(result)
        outs = []
        for leaf in leaves:
            if isinstance(leaf, Node):
                outs.append(leaf)
            elif isinstance(leaf, Tensor):  # returned as it is: read at each call, as the
                # tensors an op reads are (a constant froze `w` after `w -= 1`)
                outs.append(leaf.graph_operand(graph))
            else:
                try:
                    outs.append(graph.constant(np.asarray(leaf)))
                except Exception:
                    if getattr(leaf, "dtype", None) == FLOAT0:
                        raise GraphcError(
                            f"{graph.name} returned float0 zeros (grad(allow_int=True)'s "
                            "gradient of an integer argument), which no graph dtype holds: a "
                            "traced or compiled function cannot return them; return the "
                            "float gradients only", (user_location(),)) from None
                    raise GraphcError(f"{graph.name} returned {a_type(leaf)}, which is "
                                      "not a tensor", (user_location(),)) from None
        graph.set_outputs(outs)
        graph.output_tree = structure
    return graph


def eval_shape(fn, /, *args, **kwargs):
    """jax.eval_shape: the shapes and dtypes of fn(*args, **kwargs), as a pytree of Specs
    like fn's result, found by tracing fn (args and kwargs' values: arrays, Specs or pytrees
    of them, each keyword's leaves traced as symbolic inputs as the positional ones, as
    jax.eval_shape's); nothing runs, so it costs no memory for the result however large it
    would be."""
    graph = _shapes_graph(fn, args, kwargs)
    _refuse_negative_sizes(graph)
    return _specs(graph)


def unchecked_eval_shape(fn, /, *args, **kwargs):
    """eval_shape without refusing a negative size the result does not hold: the ys of a
    scan of no steps, whose body never runs (eagerly nothing refuses a negative size it
    holds); one in the result is refused as eval_shape's (no (0, -2) ys can be made)."""
    graph = _shapes_graph(fn, args, kwargs, runs=False)
    if any(_negative(o.type) for o in graph.outputs):
        _refuse_negative_sizes(graph)  # (the first, as a step run eagerly would refuse)
    return _specs(graph)


def _shapes_graph(fn, args, kwargs=None, runs=True):
    """fn's graph for eval_shape; runs=False: of a function no call runs (a scan body of no
    steps), where a negative size made is not refused (Graph.may_not_run). kwargs' values
    follow the positional arguments as the graph's inputs, each named by its keyword, and
    reach fn as keywords."""
    kwargs = dict(kwargs or {})
    keys = list(kwargs)

    def weak(a):  # a Python float argument is weakly typed, as jax.jit's and gc.compile's
        return Spec((), np.dtype(np.float64), weak=True) if type(a) is float else a
    specs = [weak(a) for a in args] + [weak(kwargs[k]) for k in keys]
    names = arg_names(fn, len(args)) + keys
    positional = len(args)

    who = f"eval_shape of {function_name(fn)}"
    twice = [k for k in keys if k in names[:positional]]
    if twice:  # (as the call's own binding says it; two graph inputs of one name were
        # refused as "graph 'f' already has an input named 'x'")
        raise GraphcError(f"{who}: multiple values for argument {twice[0]!r}",
                          (user_location(),))

    def shapes_only(*values):  # nothing runs, so a layer's buffer update (BatchNorm in
        # training mode) is dropped, not refused for want of a place to write it
        current_graph().may_not_run = not runs
        with collect_buffer_updates():
            return called(who, fn, values[:positional],  # (fn's own parameters bound,
                          dict(zip(keys, values[positional:])))  # not this wrapper's)
    return trace(functools.update_wrapper(shapes_only, fn, updated=()), *specs,  # fn's names
                 names=names, who=who)


def _specs(graph):
    return unflatten(graph.output_tree, [Spec(tuple(o.shape), o.dtype) for o in graph.outputs])


def _negative(type_) -> bool:
    types = type_.elements if isinstance(type_, TupleType) else (type_,)
    return any(has_negative_size(getattr(t, "shape", ())) for t in types)


def _refuse_negative_sizes(graph):
    """A size that is negative (zeros((-3, 4)), eye(-2)) is refused as running refuses it
    (runtime/eager.py's run_op: numpy's message, the op and the user's line), not printed as
    f32[-3,4]: the type rules take it, since a cond's branch or a loop's body that never
    runs may hold one, and those are regions, not this graph's nodes."""
    for node in graph.nodes:
        if _negative(node.type):
            raise negative_size_error(node.op, node.locs)
