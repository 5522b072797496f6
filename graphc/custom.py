"""Functions with their own gradient rules, as JAX's `jax.custom_vjp` and `jax.custom_jvp`.

    @gc.custom_vjp
    def straight_through_round(x):
        return gc.round(x)
    straight_through_round.defvjp(lambda x: (gc.round(x), None), lambda _, g: (g,))

Each use records the forward computation as it is (ordinary graph nodes while tracing, tape
entries eagerly) and puts one `custom_vjp` node on top (ir/ops/custom.py): it is the forward
value, and its gradient is the rule, so `grad`, `vjp`, `jvp`, `compile` and `backward()` all
use the rule. Simplification inlines the node, so compiled plans run exactly the forward
computation and the rule's backward computation.

As in JAX: under differentiation the forward value comes from `fwd` (custom_vjp), whose
primal output must have the function's structure, shapes and dtypes (custom_vjp._check_primal,
against the function's eval_shape: plans are unchanged); `bwd`
returns a tuple with one cotangent per argument (a pytree like the argument, where None
stands for zeros of any subtree); a custom_jvp rule returns (primal_out, tangent_out) with
tangent_out linear in the tangents. graphc differentiates in reverse mode, so a custom_jvp
rule is used transposed: its tangent map is traced on placeholder tangents and
differentiated with respect to them (exact, since it is linear). Second derivatives work on
traced functions (the rule's own nodes are differentiated again); eagerly,
`backward(create_graph=True)` through a custom_jvp function is refused. Keyword arguments
are placed by fun's signature, its defaults filled in (JAX's resolve_kwargs). Arguments that
are not tensors (Python numbers, strings) go to `fun` unchanged and get no cotangent; JAX's
`nondiff_argnums` names such arguments explicitly (bwd and a custom_jvp rule then take them
first, as JAX's), and `custom_jvp.defjvps` builds the rule from one function per argument.
A value the function closes over gets no gradient through it, so differentiating with
respect to one (or to anything it is computed from) is an error: pass it as an argument
(JAX's custom_vjp refuses closed-over tracers too).
"""
from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.errors import callback_locations as _where
from ir.graph import Node, current_graph
from ir.ops import api as F
from ir.ops.custom import CustomCall, rule_ref
from ir.ops.registry import apply
from ir.types import is_float, result_dtype
from ir.weak import is_weak
from passes.autodiff import gradients
from runtime.eager import (Tensor, apart_from, backward, collect_buffer_updates, enable_grad,
                           is_grad_enabled, op_serial)

from .tracing import (DICT_KINDS, Spec, call_signature, eval_shape, function_name,
                      leaves_and_structure, leaves_like, refuse_traced, unflatten)
from .transforms import _argnums  # (static_argnums' and argnums' reading too)


# why each of JAX's rule options is taken at its default only (_Custom._refuse_options)
_UNSUPPORTED_OPTIONS = {
    "symbolic_zeros": "graphc passes its rules plain arrays (zeros for an input or output "
                      "that is not differentiated), not JAX's CustomVJPPrimal or SymbolicZero "
                      "objects",
    "optimize_remat": "graphc does not rematerialise fwd"}


class _Custom:
    """What custom_vjp and custom_jvp share: the function, its name and nondiff_argnums."""

    def __init__(self, fun, nondiff_argnums=()):
        self.fun = fun
        self.name = function_name(fun)
        self.nondiff_argnums = _argnums(nondiff_argnums, f"{self.kind}: nondiff_argnums")
        try:  # (read once: each call binds its arguments to it, _positional)
            self._signature = call_signature(fun)
        except (TypeError, ValueError):  # (no signature: a numpy ufunc's)
            self._signature = None
        # a functools.partial's defaults are not filled in: its signature is opaque to JAX's
        # resolve_kwargs, so fwd and bwd take the arguments given (partial(f, a) with
        # f(a, x, k=3.0) called as p(x) is fwd(x) and one cotangent, as before keywords)
        self._defaults = not isinstance(fun, functools.partial)
        functools.update_wrapper(self, fun, updated=())  # not fun.__dict__ over self's

    def _check_nondiff(self, args):
        """Checks the call's nondiff_argnums positions: each names an argument, and none
        is a traced value or a tensor that requires grad (JAX refuses tracers there too). A
        Python number, alone or in a pytree, that grad or a Jacobian traces
        (`gc.grad(f)(x, 0.7)`, `(x, (0.7, 2))`) is retried as it is (eager_runner)."""
        for i in _nondiff_positions(self.nondiff_argnums, len(args), self):
            if any(isinstance(x, Node) or (isinstance(x, Tensor) and x.requires_grad)
                   for x in leaves_and_structure(args[i])[0]):
                self._refuse_nondiff(i, args[i])

    def _refuse_nondiff(self, i, value):
        refused = (f"{self.kind} function {self.name}: argument {i} is in nondiff_argnums "
                   "but is {}; pass it as a differentiable argument (its cotangent None), "
                   "or close over it")
        refuse_traced(value, refused.format("a traced value"))
        raise GraphcError(refused.format("a tensor that requires grad"), (user_location(),))

    def _refuse_options(self, call, **options):
        """JAX's rule options other than at their default (False), in one line: graphc
        passes no CustomVJPPrimal or SymbolicZero objects (symbolic_zeros) and has no
        remat of fwd to optimise (optimize_remat); the rule is written without them."""
        for option, value in options.items():
            if not (isinstance(value, (bool, np.bool_, int, np.integer)) and not value):
                raise GraphcError(f"{self.kind} function {self.name}: {call}, "
                                  f"{option}={value!r}) is not supported: "
                                  f"{_UNSUPPORTED_OPTIONS[option]}; leave {option} out",
                                  (user_location(),))

    def __call__(self, /, *args, **kwargs):  # (positional-only: f(self=...) reaches f)
        self._ready()
        args = self._positional(args, kwargs)
        if self.nondiff_argnums:
            self._check_nondiff(args)
        return _call(self, args)

    def _positional(self, args, kwargs) -> tuple:
        """The call's arguments by position in fun's signature, its defaults filled in, as
        JAX's resolve_kwargs: fwd and the rule get them so, bwd returns a cotangent for each
        and nondiff_argnums counts them (keywords were Python's TypeError from __call__). A
        keyword fun takes only as one (keyword-only, or in **kwargs) has no position: refused
        as JAX refuses it. A call fun's signature does not take is one line."""
        if self._signature is None:
            if kwargs:
                raise GraphcError(f"{self.kind} function {self.name}: keyword arguments "
                                  f"{', '.join(map(repr, kwargs))} cannot be placed: the "
                                  "function has no signature; pass them by position",
                                  (user_location(),))
            return args
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise GraphcError(f"{self.kind} function {self.name}: {exc}",
                              (user_location(),)) from None
        if self._defaults:
            bound.apply_defaults()
        unplaced = [k for k in bound.kwargs if k in kwargs]
        if unplaced:
            raise GraphcError(f"{self.kind} function {self.name}: keyword argument"
                              f"{'s' * (len(unplaced) > 1)} {', '.join(map(repr, unplaced))} "
                              "cannot be given a position (keyword-only, or taken by "
                              "**kwargs); a custom function's arguments are positional, as "
                              "JAX's: make it a positional parameter", (user_location(),))
        return bound.args


def _nondiff_positions(argnums, count, custom) -> list:
    """nondiff_argnums as positions of a call with `count` arguments (negative ones count
    from the end, as JAX's), sorted; one naming a missing argument is one line."""
    positions = set()
    for i in argnums:
        if not -count <= i < count:
            raise GraphcError(f"{custom.kind} function {custom.name}: nondiff_argnums has {i} "
                              f"but it was called with {count} arguments", (user_location(),))
        positions.add(i % count)
    return sorted(positions)


class custom_vjp(_Custom):
    """`f = custom_vjp(fun, nondiff_argnums=())`, then `f.defvjp(fwd, bwd)`: fwd(*args) ->
    (out, residuals), bwd(*nondiff_args, residuals, cotangent) -> one cotangent per argument
    not in nondiff_argnums (JAX's order: the nondiff arguments first)."""

    kind = "custom_vjp"
    # whether fwd's primal output is checked against the function's (hooks' identities
    # do not: their fwd is their function)
    checks_primal = True

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None
        self._outputs = {}  # the function's abstract output by its arguments' types (_output)

    def defvjp(self, fwd, bwd, symbolic_zeros=False, optimize_remat=False):
        """JAX's defvjp; its options are taken at their defaults only (a raw TypeError
        before): graphc's rules see plain arrays, a zero cotangent as zeros."""
        self._refuse_options("defvjp(fwd, bwd", symbolic_zeros=symbolic_zeros,
                             optimize_remat=optimize_remat)
        self.fwd, self.bwd = fwd, bwd
        return self

    def _ready(self):
        if self.fwd is None:
            raise GraphcError(f"custom_vjp function {self.name} has no rule: call its "
                              ".defvjp(fwd, bwd) before using it", (user_location(),))

    def _forward(self, args):
        with _running_rule(self):
            result = self.fwd(*args)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise GraphcError(f"custom_vjp function {self.name}: fwd must return a pair "
                              f"(output, residuals), got {_describe(result)}", _where(self.fwd))
        return result

    def _check_primal(self, leaves, in_tree, out):
        """fwd's primal output `out` must have the structure, shapes and dtypes of the
        function's output (JAX's "Custom VJP fwd rule must produce a pair ... primal output
        (equal to the output of the custom_vjp-decorated function)"): else one line naming
        fwd, the place in the output and both types. Only checked: the value stays fwd's.
        A Python number on either side is weakly typed (JAX's weak types, which its check
        ignores): it matches an array of its shape and kind (bool, integer or float) of
        any dtype, the dtype it takes where it meets one; a numpy scalar has its dtype.
        The function's output is cached by its arguments' types, but it may depend on more
        (autocast, a module it closes over or takes as a nondiff argument, whose weights
        were replaced or cast): fwd unlike a cached output is checked again against a new
        trace before it is refused, and that trace is cached."""
        problem = self._unlike(self._output(leaves, in_tree), out)
        if problem is not None and problem[1]:  # (against a cached output: trace again)
            problem = self._unlike(self._output(leaves, in_tree, fresh=True), out)
        if problem is not None:
            raise problem[0]

    def _unlike(self, found, out):
        """None where fwd's primal output `out` is like the function's output (found:
        _output's), else (the error refusing it, whether that output came from the cache)."""
        like, cached = found
        if like is None:
            return None
        structure, types = like
        what = f"custom_vjp function {self.name}: fwd's primal output (the first of its pair)"
        advice = ("; fwd must return (output, residuals), its output of the function's "
                  "structure, shapes and dtypes")
        try:
            leaves = leaves_like(structure, out, what=what, against="the function's output",
                                 exact=True)
        except GraphcError as error:
            return GraphcError(error.message + advice, _where(self.fwd)), cached
        for k, (x, want) in enumerate(zip(leaves, types)):
            have = _abstract(x)
            if have is None or not _same_type(have, want):
                path = _leaf_paths(structure)[k]
                return GraphcError(f"{what}{path} is {_describe_type(have, x)} where the "
                                   f"function's output is {_describe_type(want)}{advice}",
                                   _where(self.fwd)), cached
        return None

    def _output(self, leaves, tree, fresh=False):
        """The function's output at these arguments (their leaves, structure) as
        (structure, [(shape, dtype, weak) per leaf]), and whether it came from the cache:
        gc.eval_shape's trace of it on their shapes and dtypes, apart from the graph being
        built (nothing runs, no node is added there, plans stay as they were). Cached by the
        arguments' types (structure, shapes, dtypes, the values of those that are no
        arrays), so that an eager call traces it once; `fresh`: traced again all the same.
        None where fun cannot be traced so (it reads a value in Python, closes over a value
        of the trace being built): fwd's output then goes unchecked."""
        traced = current_graph() is not None or any(isinstance(x, Node) for x in leaves)
        key = _types_key(leaves, tree, traced)
        try:
            if not fresh:
                return self._outputs[key], True
        except KeyError:
            pass
        except TypeError:  # (an unhashable argument: not cached)
            key = None
        at = [i for i, x in enumerate(leaves) if isinstance(x, (Node, Tensor))]
        weak = []  # (the function's own output leaves, while its trace is at hand)

        def fun_on(*values):  # the array arguments traced, the others as they are
            full = list(leaves)
            for i, v in zip(at, values):
                full[i] = v
            with _shapes_only():
                out = self.fun(*unflatten(tree, full))
            weak.extend(_is_weak(y) for y in leaves_and_structure(out)[0])
            return out
        functools.update_wrapper(fun_on, self.fun, updated=())
        try:
            specs = eval_shape(fun_on, *[Spec(tuple(leaves[i].shape), np.dtype(leaves[i].dtype),
                                              _is_weak(leaves[i])) for i in at])
        except Exception:  # noqa: BLE001  (any failure of the trace: see above)
            like = None
        else:
            specs, structure = leaves_and_structure(specs)
            like = structure, [(tuple(s.shape), np.dtype(s.dtype), w)
                               for s, w in zip(specs, weak)]
        if key is not None:
            if len(self._outputs) >= 64 and key not in self._outputs:  # (bounded: arguments
                self._outputs.clear()  # of ever new shapes)
            self._outputs[key] = like
        return like, False

    def _backward(self, args, residuals, cotangents, needs):
        """bwd's result as it returns it: a cotangent per argument not in nondiff_argnums
        (_check_cotangents checks it and places them among the arguments). `needs`, whether
        each argument operand's gradient is wanted, is not bwd's (JAX's does not see it), but
        a rule of graphc's own may read it (graphc/hooks.py's backward hooks)."""
        nondiff = _nondiff_positions(self.nondiff_argnums, len(args), self)
        return self.bwd(*[args[i] for i in nondiff], residuals, cotangents)


class custom_jvp(_Custom):
    """`f = custom_jvp(fun, nondiff_argnums=())`, then `f.defjvp(rule)`: rule(*nondiff_args,
    primals, tangents) -> (primal_out, tangent_out), primals and tangents being tuples of the
    arguments not in nondiff_argnums; or `f.defjvps(*jvps)`, one function per argument."""

    kind = "custom_jvp"

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp, symbolic_zeros=False):
        """JAX's defjvp, symbolic_zeros at its default only (as defvjp's)."""
        self._refuse_options("defjvp(jvp", symbolic_zeros=symbolic_zeros)
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps):
        """JAX's defjvps: jvps[k](tangent_k, primal_out, *primals) is the output's tangent
        from argument k alone (None: it has none); the rule sums them."""
        if self.nondiff_argnums:
            raise GraphcError(f"custom_jvp function {self.name}: defjvps does not take "
                              "nondiff_argnums (as JAX's); use defjvp", (user_location(),))
        for k, jvp in enumerate(jvps):
            if jvp is not None and not callable(jvp):
                raise GraphcError(f"custom_jvp function {self.name}: defjvps' function {k} "
                                  f"is {jvp!r}, not a function or None", (user_location(),))

        def rule(primals, tangents):
            if len(jvps) != len(primals):
                raise GraphcError(f"custom_jvp function {self.name}: defjvps was given "
                                  f"{len(jvps)} functions for {len(primals)} arguments; give "
                                  "one per argument (None for none)", (user_location(),))
            out = self(*primals)  # (its rule again under a second derivative, as JAX's)
            parts = [jvp(t, out, *primals) for jvp, t in zip(jvps, tangents)
                     if jvp is not None]
            if not parts:
                return out, None
            _, structure = leaves_and_structure(out)
            summed = [functools.reduce(lambda a, b: b if a is None else a if b is None
                                       else a + b, column)
                      for column in zip(*[leaves_like(structure, p) for p in parts])]
            return out, unflatten(structure, summed)

        self.defjvp(rule)
        return self

    def _ready(self):
        if self.jvp is None:
            raise GraphcError(f"custom_jvp function {self.name} has no rule: call its "
                              ".defjvp(rule) before using it", (user_location(),))

    def _forward(self, args):
        return self.fun(*args), ()

    def _tangent_map(self, primals, tangents):
        """The rule on the arguments' primals and tangents (tuples of all the arguments):
        the nondiff_argnums ones go first, alone, as JAX's."""
        nondiff = _nondiff_positions(self.nondiff_argnums, len(primals), self)
        if not nondiff:
            return self.jvp(primals, tangents)
        diff = [i for i in range(len(primals)) if i not in nondiff]
        return self.jvp(*[primals[i] for i in nondiff], tuple(primals[i] for i in diff),
                        tuple(tangents[i] for i in diff))


def _types_key(leaves, tree, traced):
    """A custom_vjp call's arguments as a key of custom_vjp._output's cache: each array's
    shape, dtype and weakness, each other value itself (unhashable, it cannot be a key).
    A numpy array goes to fun as it is, but its values are not in the key (a new batch
    each step would trace fun again and the cache hold a copy of each): an output that
    depends on them is traced again where fwd's is unlike it (custom_vjp._check_primal)."""
    key = [tree, traced]
    for x in leaves:
        if isinstance(x, (Node, Tensor)):
            key.append((tuple(x.shape), x.dtype, _is_weak(x)))
        elif isinstance(x, np.ndarray):
            key.append((np.ndarray, x.shape, x.dtype))
        else:
            key.append((type(x), x))
    return tuple(key)


def _is_weak(x) -> bool:
    """Whether x is weakly typed (ir/weak.py): a Python number, or a value computed from
    Python numbers alone (traced or eager)."""
    if isinstance(x, Tensor):
        return x.weak
    return is_weak(x) if isinstance(x, Node) else type(x) in (bool, int, float)


def _abstract(x):
    """(shape, dtype, weak) of an output leaf; None for what is no array or number."""
    if isinstance(x, (Node, Tensor, np.ndarray, np.generic)):
        return tuple(x.shape), np.dtype(x.dtype), _is_weak(x)
    if type(x) in (bool, int, float):
        return (), np.asarray(x).dtype, True
    return None


def _kind(dtype) -> str:
    return "f" if is_float(dtype) else "i" if np.dtype(dtype).kind in "iu" else \
        np.dtype(dtype).kind


def _same_type(have, want) -> bool:
    """Whether two (shape, dtype, weak) are the same type: a weak one's dtype matches any
    of its kind (as a weak value takes the dtype of the arrays it meets)."""
    if have[0] != want[0]:
        return False
    if have[2] or want[2]:
        return _kind(have[1]) == _kind(want[1])
    return have[1] == want[1]


def _describe_type(t, value=None) -> str:
    """'float32 of shape (3,)' for a (shape, dtype, weak); `value` named where it is
    a Python number ('a Python float') or no array at all."""
    if type(value) in (bool, int, float):
        return f"a Python {type(value).__name__}"
    if t is None:
        return _describe(value)
    shape, dtype, weak = t
    return f"{'weakly typed ' if weak else ''}{dtype} of shape {shape}"


@contextlib.contextmanager
def _shapes_only():
    """custom_vjp._output's trace of a function: custom functions it calls are their plain
    functions there (their output is theirs; no rule is numbered, no check nested)."""
    _RULES.shapes += 1
    try:
        yield
    finally:
        _RULES.shapes -= 1


def _describe(value) -> str:
    if isinstance(value, (Node, Tensor, np.ndarray)):
        return f"one array of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"{a_type(value)} of {len(value)}"
    return a_type(value)


class _Rules(threading.local):
    def __init__(self):
        self.running = []  # the custom functions whose fwd rule is running
        self.tangents = []  # the placeholder tangents of each custom_jvp rule being traced
        self.shapes = 0  # inside custom_vjp._output's trace of a function (_shapes_only)


_RULES = _Rules()


@contextlib.contextmanager
def _running_rule(custom):
    """Inside its own fwd or jvp rule a custom function is its plain `fun` (JAX's idiom
    `def fwd(x): return f(x), residuals` must not recurse)."""
    _RULES.running.append(custom)
    try:
        yield
    finally:
        _RULES.running.pop()


def _call(custom, args):
    leaves, in_tree = leaves_and_structure(list(args))
    if custom in _RULES.running or _RULES.shapes or _on_tangents(leaves):
        return custom.fun(*args)
    # the graph being built first: inside a loop body or a branch an argument may be a value
    # of the enclosing graph, which the body reads through a capture (as other ops do)
    graph = current_graph() or next((x.graph for x in leaves if isinstance(x, Node)), None)
    if graph is not None:  # tracing: Tensors and Parameters enter the graph as operands do
        with graph.building():
            leaves = [x.graph_operand(graph) if isinstance(x, Tensor) else x for x in leaves]
            if getattr(graph, "captures_outer", False):
                # an argument of the enclosing graph enters the body as its input first: else
                # the forward's ops on it alone would be built out there (ir/region.py), and
                # the closure check (passes/autodiff.py) would take them for a closed-over value
                leaves = [graph.capture(x) if isinstance(x, Node) else x for x in leaves]
            return _record(custom, leaves, in_tree, lambda x: isinstance(x, Node))
    since = op_serial()
    is_tensor = lambda x: isinstance(x, Tensor)  # noqa: E731
    recorded = is_grad_enabled() and any(is_tensor(x) and x.requires_grad for x in leaves)
    if recorded:
        out = _record(custom, leaves, in_tree, is_tensor)
    else:
        out = custom.fun(*args)  # nothing to differentiate: the function itself, as JAX
    out_leaves, out_tree = leaves_and_structure(out)
    if not recorded and any(is_tensor(y) and y.requires_grad for y in out_leaves):
        # fun read a tensor that requires grad and is no argument: the node goes on all the
        # same, so that backward() refuses the closure (ir/ops/custom.py) instead of sending
        # that tensor fun's own gradient, bypassing the rule. The rule never runs: no
        # argument takes a cotangent, so its residuals are not needed
        out = _record(custom, leaves, in_tree, is_tensor, forward=(out, ()))
        out_leaves, out_tree = leaves_and_structure(out)
    # results of their own, as compiled ones: fun returning its argument (an identity
    # rule) or an array it closed over handed back the caller's array
    return unflatten(out_tree, apart_from(out_leaves, leaves, since))


@contextlib.contextmanager
def _tracing_tangent_map(placeholders):
    """A custom_jvp rule is being traced on these placeholder tangents (see _on_tangents)."""
    _RULES.tangents.append(placeholders)
    try:
        yield
    finally:
        _RULES.tangents.pop()


def _on_tangents(leaves) -> bool:
    """Whether a custom function is called, inside the custom_jvp rule being traced, on values
    computed from that rule's tangents. There it is its plain `fun`: the tangent map is
    differentiated with respect to the tangents, and a node of its own would run the rule
    again on new tangents, without end (JAX's `return f(x), f(t)` for a linear f). Called on
    the primals (JAX's `out = f(x)`) it keeps its rule, so a second derivative goes through
    the rule again, as JAX's."""
    if not _RULES.tangents:
        return False
    placeholders = _RULES.tangents[-1]
    nodes = [p for p in placeholders if isinstance(p, Node)]
    if not nodes:  # eagerly only the tangents' values require grad (the primals are copies)
        return any(isinstance(x, Tensor) and x.requires_grad for x in leaves)
    graph, first = nodes[0].graph, min(p.id for p in nodes)
    if any(isinstance(x, Node) and _inside(x.graph, graph) for x in leaves):
        # a loop body's, a branch's or a vmapped function's value, opened in the rule: its
        # inputs (a carry, an operand) cannot be followed back yet. The plain body there: a
        # call on the primals inside loses only the rule at second order, never recursion
        return True
    targets = {id(p) for p in nodes}
    seen, stack = set(), [x for x in leaves if isinstance(x, Node) and x.graph is graph]
    while stack:  # up the operands; a node made before the placeholders cannot reach them
        node = stack.pop()
        if id(node) in targets:
            return True
        if id(node) in seen or node.id < first:
            continue
        seen.add(id(node))
        stack.extend(i for i in node.inputs if i.graph is graph)
    return False


def _inside(graph, outer) -> bool:
    """Whether `graph` is a region opened inside `outer` (its parents lead there)."""
    graph = getattr(graph, "parent", None)
    while graph is not None:
        if graph is outer:
            return True
        graph = getattr(graph, "parent", None)
    return False


def _record(custom, leaves, in_tree, is_operand, forward=None):
    """The forward computation topped by one custom_vjp node whose rule is `custom`'s.
    forward: (out, residuals) already computed, else fwd's (the function's for custom_jvp)."""
    args = unflatten(in_tree, leaves)
    out, residuals = forward if forward is not None else custom._forward(args)
    if forward is None and custom.kind == "custom_vjp" and custom.checks_primal:
        custom._check_primal(leaves, in_tree, out)  # (fwd's value is taken, only checked)
    out_leaves, out_tree = leaves_and_structure(out)
    res_leaves, res_tree = leaves_and_structure(residuals)
    arg_pos = [i for i, x in enumerate(leaves) if is_operand(x)]
    res_pos = [i for i, x in enumerate(res_leaves) if is_operand(x)]
    diff_pos = [i for i, x in enumerate(out_leaves) if is_operand(x) and is_float(x.dtype)]
    if not diff_pos:
        return out
    # without an argument operand the node still goes on where an output is computed (from
    # values the function closes over): differentiating one of those is refused by the
    # closure check, not silently done through the forward nodes, bypassing the rule
    differentiable = [out_leaves[i] for i in diff_pos]
    packed, unpack = _pack(differentiable)
    # the shapes and dtypes of every output leaf: the cotangents of the non-differentiable ones
    # are zeros made from these (never from out_leaves, nodes of the graph as it was traced)
    out_types = [(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype)
                 for x in out_leaves]

    def pullback(arg_ops, res_ops, g, needs):
        arg_ops = _into_graph_of(g, arg_ops)
        cotangents = [np.zeros(shape, dtype) for shape, dtype in out_types]
        for i, c in zip(diff_pos, unpack(g)):
            cotangents[i] = c
        if custom.kind == "custom_vjp":
            res = list(res_leaves)
            for i, r in zip(res_pos, res_ops):
                res[i] = r
            with collect_buffer_updates():  # a layer bwd calls again: updated by fwd
                result = custom._backward(args, unflatten(res_tree, res),
                                          unflatten(out_tree, cotangents), needs)
            return _check_cotangents(custom, result, args, arg_pos, arg_ops, needs)
        return _transpose_jvp(custom, leaves, in_tree, arg_pos, arg_ops, needs, out_tree,
                              out_types, diff_pos, [cotangents[i] for i in diff_pos])

    node = apply("custom_vjp", packed, *[leaves[i] for i in arg_pos],
                 *[res_leaves[i] for i in res_pos], fn=custom.name, args=len(arg_pos),
                 rule=rule_ref(CustomCall(custom.name, pullback)))
    results = list(out_leaves)
    for i, r in zip(diff_pos, unpack(node)):
        results[i] = r
    return unflatten(out_tree, results)


def _into_graph_of(g, operands):
    """The argument operands as values of the cotangent's graph where it is symbolic and some
    are eager tensors: eagerly, gc.vmap's rule (graphc/vmap.py) runs the pullback in its own
    trace, where an argument shared by every example (in_axes None) stays the eager tensor
    it is. The cotangents made for it, and a custom_jvp rule's placeholder tangents, must be
    values of that trace like the others (they were a Tensor beside nodes: "a symbolic value
    cannot be turned into a numpy array", "gradients() needs symbolic values")."""
    if not isinstance(g, Node) or not any(isinstance(x, Tensor) for x in operands):
        return operands
    with g.graph.building():
        return [x.graph_operand(g.graph) if isinstance(x, Tensor) else x for x in operands]


def _placeholder(operand):
    """A placeholder tangent for a symbolic argument operand: a value of its graph, which
    gradients() can differentiate with respect to. Eagerly, gc.vmap's trace runs an op that
    reads none of its values (zeros_like's fill) at once, as an eager Tensor."""
    t = F.zeros_like(operand)
    if isinstance(t, Node):
        return t
    return operand.graph.constant(np.zeros(tuple(operand.shape), operand.dtype))


def _pack(values):
    """One value holding all differentiable outputs (the node has one result), and the
    function that splits such a value (the node, or its cotangent) back into them."""
    if len(values) == 1:
        return values[0], lambda v: [v]
    dtype = result_dtype(*[x.dtype for x in values])  # (float16 with bfloat16: float32)
    packed = F.concat([F.reshape(F.cast(x, dtype), (-1,)) for x in values], 0)
    types = [(tuple(x.shape), x.dtype, int(np.prod(x.shape))) for x in values]

    def unpack(v):
        parts, start = [], 0
        for shape, dt, size in types:
            parts.append(F.cast(F.reshape(v[start:start + size], shape), dt))
            start += size
        return parts
    return packed, unpack


def _as_value(ct, like):
    """A cotangent the rule returned as an array or a number, as a value like `like`'s."""
    if isinstance(like, Node):
        if isinstance(ct, (list, tuple)) and _holds_traced(ct):
            # rows, traced values among them: np.asarray stacks eager tensors, but a
            # symbolic value refuses it
            rows = [_as_value(row, like) for row in ct]
            return F.stack([r if r.dtype == like.dtype else F.cast(r, like.dtype)
                            for r in rows])
        return ct if isinstance(ct, Node) else like.graph.constant(np.asarray(ct, like.dtype))
    return ct if isinstance(ct, Tensor) else Tensor(np.asarray(ct, like.dtype))


def _check_cotangents(custom, result, args, arg_pos, arg_ops, needs):
    """bwd's result, one cotangent per argument not in nondiff_argnums (pytrees like the
    arguments, None for zero), as one value per argument operand; anything else is a
    GraphcError naming the function."""
    name = custom.name
    nondiff = _nondiff_positions(custom.nondiff_argnums, len(args), custom)
    diff = len(args) - len(nondiff)
    if not isinstance(result, (tuple, list)) or len(result) != diff:
        if nondiff:
            got = (f"{len(result)} cotangents" if isinstance(result, (tuple, list))
                   else _describe(result))
            problem = (f"bwd returned {got} for {diff} differentiable argument"
                       f"{'s' * (diff != 1)}; return one per argument not in nondiff_argnums "
                       f"{custom.nondiff_argnums} (None for no gradient)")
        elif not isinstance(result, (tuple, list)):
            problem = (f"bwd must return a tuple with one cotangent per argument "
                       f"({len(args)}), got {_describe(result)}")
        else:
            problem = (f"bwd returned {len(result)} cotangents for {len(args)} arguments; "
                       "return one per argument (None for no gradient)")
        raise GraphcError(f"custom_vjp function {name}: {problem}", _where(custom.bwd))
    if nondiff:  # (the nondiff arguments have no cotangent: None in their places)
        cotangent = iter(result)
        result = [None if i in nondiff else next(cotangent) for i in range(len(args))]
    per_leaf = []
    for k, (arg, ct) in enumerate(zip(args, result)):
        # a pytree like the argument, where None (an empty subtree, as in JAX) stands for
        # zeros of any subtree: the argument's own Nones, or parts without a gradient
        _, arg_tree = leaves_and_structure(arg)
        try:
            per_leaf += leaves_like(arg_tree, ct)
        except GraphcError:
            raise GraphcError(f"custom_vjp function {name}: bwd's cotangent for argument {k} is "
                              f"{_describe(ct)}, not a pytree like the argument",
                              _where(custom.bwd)) from None
    out = []
    for operand, i, need in zip(arg_ops, arg_pos, needs):
        ct = per_leaf[i]
        if ct is not None and not isinstance(ct, (Node, Tensor, list, tuple)) and \
                np.asarray(ct).dtype.kind not in "biufc":
            # (a dict or a string for an array: np.shape read it as shape (), and the
            # message said the cotangent had shape () where it is no array at all; an array
            # of strings or objects is named by its dtype, where "one array of shape (3,), not
            # an array of the argument's shape (3,)" contradicted itself)
            what = (f"an array of dtype {ct.dtype}, not an array of numbers"
                    if isinstance(ct, np.ndarray) else f"{_describe(ct)}, not an array")
            raise GraphcError(f"custom_vjp function {name}: bwd's cotangent for argument "
                              f"{_argument_of(args, i)} is {what} of the argument's shape "
                              f"{tuple(operand.shape)}", _where(custom.bwd))
        if isinstance(ct, (list, tuple)):
            ct = _none_rows_as_zeros(ct, tuple(operand.shape))
        shape = None if ct is None else _cotangent_shape(ct)
        if ct is not None and shape is None:
            raise GraphcError(f"custom_vjp function {name}: bwd's cotangent for argument "
                              f"{_argument_of(args, i)} is {a_type(ct)} of values of "
                              f"different shapes, not one array of the argument's shape "
                              f"{tuple(operand.shape)}", _where(custom.bwd))
        if ct is not None and shape != tuple(operand.shape):
            raise GraphcError(f"custom_vjp function {name}: bwd's cotangent for argument "
                              f"{_argument_of(args, i)} has shape {shape} but the "
                              f"argument has shape {tuple(operand.shape)}", _where(custom.bwd))
        if ct is not None and is_float(operand.dtype) and \
                isinstance(ct, (Node, Tensor, np.ndarray)) and not is_float(ct.dtype):
            # an int (bool, complex) array for a float argument was cast without a word: JAX's
            # contract ("bwd rule must produce an output with the same shape/dtypes as the
            # args tuple"; its check lets it through for now, the gradient then int32). A
            # float array of another float dtype is cast to the argument's, as before: JAX's
            # check lets it through, torch's autograd.Function casts it, and rules give one
            # naturally (a float32 cotangent of a Python-float or float64 argument, a half
            # one under autocast, np.ones(n) for a float32 argument). A number (a Python or
            # numpy scalar, a list of them) is weakly typed and takes the argument's dtype
            want = np.dtype(operand.dtype)
            raise GraphcError(f"custom_vjp function {name}: bwd's cotangent for argument "
                              f"{_argument_of(args, i)} has dtype {np.dtype(ct.dtype)} but "
                              f"the argument has dtype {want}; return a float cotangent "
                              f"(.astype('{want}'))", _where(custom.bwd))
        if ct is None or not need or not is_float(operand.dtype):
            out.append(None)
            continue
        ct = _as_value(ct, operand)
        out.append(ct if ct.dtype == operand.dtype else F.cast(ct, operand.dtype))
    return out


def _holds_traced(ct) -> bool:
    """Whether a cotangent bwd returned is, or holds in its rows, a traced value."""
    return isinstance(ct, Node) or isinstance(ct, (list, tuple)) and any(map(_holds_traced, ct))


def _none_rows_as_zeros(ct, shape):
    """Rows of a cotangent (the argument's first axis, `shape` its shape) with a None row as
    zeros of the row's shape, at any depth: None stands for zeros of a whole argument or
    subtree (as in JAX), and np.asarray made a None row NaN, eagerly and traced."""
    if not isinstance(ct, (list, tuple)) or not shape:
        return ct
    rows = [np.zeros(shape[1:]) if row is None else _none_rows_as_zeros(row, shape[1:])
            for row in ct]
    return tuple(rows) if isinstance(ct, tuple) else rows  # (messages name the kind)


def _cotangent_shape(ct):
    """np.shape of a cotangent bwd returned, read from its values' own shapes: np.shape of a
    list or tuple turns each value into an array, which a traced one refuses, so a wrongly
    nested ((g,), g) was "a symbolic value cannot be turned into a numpy array" traced where
    eagerly it is a shape mismatch. None for values of different shapes (numpy's
    inhomogeneous-shape ValueError)."""
    if not isinstance(ct, (list, tuple)):
        return tuple(np.shape(ct))
    shapes = {_cotangent_shape(row) for row in ct}
    if None in shapes or len(shapes) > 1:
        return None
    return (len(ct),) + (shapes.pop() if shapes else ())


def _argument_of(args, leaf_index) -> str:
    """'1' for a leaf that is the second argument, '1 (leaf 2)' inside a pytree argument."""
    start = 0
    for k, arg in enumerate(args):
        count = len(leaves_and_structure(arg)[0])
        if leaf_index < start + count:
            return str(k) if count == 1 else f"{k} (leaf {leaf_index - start})"
        start += count
    return str(leaf_index)


def _leaf_paths(structure, path="") -> list:
    """Where each leaf of a tree of this structure is, as Python indexes it (JAX's keystr):
    "['p']", "[0][1]", "" for a tree that is one leaf."""
    if structure is None:
        return [path]
    kind, children = structure
    if kind in DICT_KINDS:
        return [p for k, c in children for p in _leaf_paths(c, f"{path}[{k!r}]")]
    return [p for i, c in enumerate(children) for p in _leaf_paths(c, f"{path}[{i}]")]


def _rule_leaves(custom, out_tree, value, what):
    """The leaves of a custom_jvp rule's primal_out or tangent_out at the leaves of the
    function's output: a dict is matched by key, never by position (JAX sorts dict keys), and
    another structure is an error naming the function."""
    try:
        return leaves_like(out_tree, value, what=f"custom_jvp function {custom.name}: the "
                           f"rule's {what}", against="the function's output")
    except GraphcError as error:
        raise GraphcError(error.message, _where(custom.jvp)) from None


def _transpose_jvp(custom, leaves, in_tree, arg_pos, arg_ops, needs, out_tree, out_types,
                   diff_pos, cotangents):
    """The cotangents of the arguments from a custom_jvp rule: its tangent map, linear in
    the tangents, traced on placeholder tangents and differentiated with respect to them."""
    name = custom.name
    symbolic = isinstance(cotangents[0], Node)
    if not symbolic and is_grad_enabled():
        raise GraphcError(f"custom_jvp function {name}: backward(create_graph=True) through "
                          "a custom_jvp rule is not supported eagerly; differentiate a traced "
                          "function (graphc.grad) for higher derivatives", (user_location(),))
    primals = list(leaves)
    tangents = [np.zeros(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype")
                         else x.dtype) for x in leaves]
    wanted = []  # (operand index, placeholder tangent)
    for j, (i, operand) in enumerate(zip(arg_pos, arg_ops)):
        primals[i] = operand if symbolic else Tensor(operand.data)
        if needs[j] and is_float(operand.dtype):
            tangents[i] = _placeholder(operand) if symbolic else \
                Tensor(np.zeros_like(operand.data), requires_grad=True)
            wanted.append((j, tangents[i]))
    # eagerly the tangent map is taped, then swept; the forward already made the layers'
    # buffer updates (BatchNorm's running statistics), which the rule's would repeat
    with enable_grad(), _tracing_tangent_map([t for _, t in wanted]), \
            collect_buffer_updates():
        result = custom._tangent_map(tuple(unflatten(in_tree, primals)),
                                     tuple(unflatten(in_tree, tangents)))
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise GraphcError(f"custom_jvp function {name}: the rule must return a pair "
                          f"(primal_out, tangent_out), got {_describe(result)}",
                          _where(custom.jvp))
    # primal_out is not used (the function's own forward gives the value) but, as JAX
    # does, checked against the function's output: a rule returning another shape is wrong
    # (None stands for zeros in tangent_out only: a None primal, whose np.shape is (), is
    # refused as JAX refuses it)
    primal_leaves = _rule_leaves(custom, out_tree, result[0], "primal_out")
    primal_shapes = [None if p is None else tuple(np.shape(p)) for p in primal_leaves]
    if any(shape != tuple(t[0]) for shape, t in zip(primal_shapes, out_types)):
        raise GraphcError(f"custom_jvp function {name}: the rule's primal_out has shapes "
                          f"{primal_shapes} but the function returns "
                          f"{[tuple(t[0]) for t in out_types]}", _where(custom.jvp))
    tangent_leaves = _rule_leaves(custom, out_tree, result[1], "tangent_out")
    ys, seeds = [], []
    for i, ct in zip(diff_pos, cotangents):
        t = tangent_leaves[i]
        if t is None:  # None stands for zeros, as in bwd's cotangents
            continue
        if tuple(np.shape(t)) != tuple(out_types[i][0]):
            raise GraphcError(f"custom_jvp function {name}: the rule's tangent_out"
                              f"{_leaf_paths(out_tree)[i]} has shape {tuple(np.shape(t))} but "
                              f"the output has shape {tuple(out_types[i][0])}",
                              _where(custom.jvp))
        if isinstance(t, Node if symbolic else Tensor):
            ys.append(t)
            seeds.append(ct)
    out = [None] * len(arg_ops)
    if not wanted:
        return out
    if symbolic:
        grads = gradients(ys, [t for _, t in wanted], seeds) if ys else \
            [F.zeros_like(t) for _, t in wanted]
    else:
        taped = [(y, s) for y, s in zip(ys, seeds) if y.requires_grad]
        if taped:
            with enable_grad():
                total = functools.reduce(lambda a, b: a + b,
                                         [F.sum(y * s) for y, s in taped])
            backward(total)
        grads = [Tensor(t.grad if t.grad is not None else np.zeros_like(t.data))
                 for _, t in wanted]
    for (j, _), g in zip(wanted, grads):
        out[j] = g if g.dtype == arg_ops[j].dtype else F.cast(g, arg_ops[j].dtype)
    return out
