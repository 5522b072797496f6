"""The advice of graphc's transformations for a traced number used as a Python value.

gc.compile traces its arguments, and gc.grad (jacfwd, hessian, ...) traces what it
differentiates, so `if n > 0`, `range(n)` or `float(lr)` inside the function meets a traced
number (ir.errors.TracedNumberError). ir's line advises static_argnums; these functions make
that advice one that works when followed where ir cannot know enough: a number inside an
unhashable argument (close over it instead), a number differentiated by a transformation
inside another (leave it out of argnums first, naming each transformation), a value of
*args or a keyword argument (its position, or static_argnames), and, for the eager split
call (graphc.transforms._EagerSplit), which numbers a function uses as Python values
(probe_uses traces once more with each such number given its value).
"""
from __future__ import annotations

import functools
import inspect
import keyword

import numpy as np

from ir import weak
from ir.errors import TracedNumberError, a_type
from ir.graph import Node, current_graph, probing
from ir.ops.registry import get_op
from passes.autodiff import upstream

from .tracing import arg_names, called_function, flatten, leaves_and_structure


def static_advice(exc, args, names, fn=None):
    """exc, a number traced by gc.compile used as a Python value, whose advice (ir's) is to
    list its position in static_argnums; where it is a leaf of a dict, a list or another
    unhashable argument (cfg["k"]), static_argnums refuses that argument (the advice
    followed was 'static argument cfg is a dict, which is not hashable'): the advice is then
    to close over the argument, as jax.jit users do with functools.partial, or to pass the
    number as an argument of its own, listed in static_argnums."""
    if exc.message == exc.reason or getattr(exc, "differentiated", False):
        return exc  # (no static_argnums advice: a 0-d array among them; or grad's own)
    holders = {}  # the unhashable arguments holding a named leaf: {position: name}
    for leaf in exc.arguments:
        i = next((i for i, name in enumerate(names) if leaf.startswith(f"{name}.")), None)
        if i is not None and not hashable(args[i]):
            holders[i] = names[i]
    if not holders:
        return exc
    quoted = " and ".join(repr(name) for name in exc.arguments)
    one = len(exc.arguments) == 1
    held = " and ".join(holders.values())
    unhashable = f"{unhashable_kind(args[next(iter(holders))])} is not hashable" \
        if len(holders) == 1 else ", ".join(f"{name} is {unhashable_kind(args[i])}"
                                            for i, name in holders.items()) + ": not hashable"
    fn = _code_name(fn)
    # functools.partial fills the leading parameters only; a lambda passes any of them
    closure = f"functools.partial({fn}, {', '.join(holders.values())})" \
        if sorted(holders) == list(range(len(holders))) else f"a lambda passing {held} to {fn}"
    return TracedNumberError(
        f"{exc.reason}; the value{'' if one else 's'} passed as {quoted} "
        f"{'is' if one else 'are'} traced: to use {'it' if one else 'them'} as a Python "
        f"value, close over {held} (compile {closure}, as with jax.jit: "
        f"{'its' if len(holders) == 1 else 'their'} values are then constants of the plan) "
        f"or pass {'the number' if one else 'each number'} as an argument of its own, listed "
        f"in static_argnums; static_argnums cannot take {held} ({unhashable})", exc.locs,
        exc.arguments, exc.reason)


def unhashable_kind(value) -> str:
    """What makes an unhashable static value so, for messages: "a dict", or "a tuple holding
    a dict" (a tuple is hashable: its items are not)."""
    kind = a_type(value)
    if isinstance(value, tuple):
        inner = next((x for x in value if not hashable(x)), None)
        if inner is not None:
            return f"{kind} holding {unhashable_kind(inner)}"
    return kind


def _code_name(fn) -> str:
    """The name advice's code calls the compiled function by (functools.partial(first, cfg)):
    a plain function's name, a functools.partial binding nothing its function's
    (function_name says "partial", the type). Else "f": a lambda, a partial binding
    arguments (partial(first, cfg) would drop them), a bound method or a Module (called by
    a name of the user's: model.step, model)."""
    if isinstance(fn, functools.partial) and not fn.args and not fn.keywords:
        fn = fn.func
    name = fn.__name__ if inspect.isfunction(fn) else ""
    return name if name.isidentifier() and not keyword.iskeyword(name) else "f"


def differentiated_number(exc, fn, args, wrt, who):
    """exc, a traced Python number used as a Python value inside a transformation traced in
    another (gc.compile(gc.grad(f, argnums=(0, 1)))(x, 3.0)), ir's advice being the outer
    one's (static_argnums): where the value is computed from an argument at `wrt`, which
    this transformation differentiates, so traces whatever the outer one passes, the advice
    is to leave that argument out of its argnums first; else exc as it is. (Eagerly,
    eager_runner gives its own advice: it has no outer transformation to name.)"""
    if exc.value is None:
        return exc
    # without an outer transformation's advice (vmap passes an unmapped number as it is, so
    # grad made a variable of a constant) only the differentiated numbers (weak 0-d: a Python
    # float) are told of, by their leaves' names: an array stays traced out of argnums too
    positions = {}  # {id(variable): (argument position, the leaf's name in it)}
    for i in wrt:
        leaves, _, leaf_names = flatten(args[i], "")
        positions.update((id(x), (i, name)) for x, name in zip(leaves, leaf_names)
                         if isinstance(x, Node) and (exc.advice or x.shape == ()
                                                     and weak.is_weak(x)))

    def inputs_of(node):  # (a value read inside a loop body or branch: its outer value)
        if node.op != "input":
            return node.inputs
        outer = node.graph.outer_value(node) if hasattr(node.graph, "outer_value") else None
        return [outer] if outer is not None else []
    behind = list(upstream([exc.value], inputs_of))
    leaves = sorted({positions[id(n)] for n in behind if id(n) in positions})
    found = sorted({i for i, _ in leaves})
    if not found:
        return exc
    if not exc.advice:
        # told only where the differentiated numbers alone are behind the value: with an array
        # behind it too (a traced input, a differentiated array), leaving them out of argnums
        # would not do
        arrays = {id(x) for i in wrt for x in leaves_and_structure(args[i])[0]
                  if isinstance(x, Node)} - set(positions)
        if any(n.op == "input" or id(n) in arrays for n in behind):
            return exc
    names = arg_names(called_function(fn)[0], len(args))
    quoted = " and ".join(repr(names[i]) for i in found)
    one = len(found) == 1
    if not exc.advice:  # the advice grad gives eagerly (eager_runner's), none being outside
        named = " and ".join(repr(f"{names[i]}.{name}" if name else names[i])
                             for i, name in leaves)
        one = len(leaves) == 1
        return TracedNumberError(
            f"{exc.reason}; {named} {'is' if one else 'are'} differentiated (in argnums), so "
            f"traced: {who} takes no static_argnums; to use {'it' if one else 'them'} as a "
            f"Python value, leave {quoted} out of argnums: a number not differentiated is "
            "passed as it is", exc.locs, exc.arguments, exc.reason, exc.advice, exc.value)
    # a transformation inside this one differentiates it too (jacrev(jacfwd(g, argnums=(0,
    # 1)), argnums=(0, 1))): each is named, innermost first, so that following the line
    # leaves no argnums holding it
    holders = getattr(exc, "differentiated", [])
    if not (holders and holders[-1][0] == who and
            getattr(fn, "__wrapped__", None) is holders[-1][2]):
        holders = holders + [(who, quoted, fn)]  # (hessian: jacfwd of its jacrev, named once)
    where, out_of = argnums_holding(holders)
    # then the outer transformation's way: its static_argnums take no dict (see static_advice)
    then = f" and {_outer_advice(exc)}" if all(hashable(args[i]) for i in found) else \
        f", then close over {'it' if one else 'them'}"
    error = TracedNumberError(
        f"{exc.reason}; {quoted} {'is' if one else 'are'} differentiated (in {where}), so "
        f"traced: to use {'it' if one else 'them'} as a Python value, leave {out_of}{then}",
        exc.locs, exc.arguments, exc.reason, exc.advice, exc.value)
    error.differentiated = holders  # (static_advice leaves it as it is)
    return error


def argnums_holding(holders) -> tuple:
    """(whose argnums hold the numbers, what to leave out of whose) for a differentiated
    number's line, from [(transformation, its quoted arguments, ...)], innermost first:
    ("jacfwd's and jacrev's argnums", "'n' out of jacfwd's and jacrev's argnums"; "each
    grad's" for two grads), or where their functions name it differently ("'n' in
    jacfwd's, 'm' in grad's argnums", "'n' out of jacfwd's argnums and 'm' out of grad's
    argnums")."""
    holders = [(who, quoted) for who, quoted, *_ in holders]
    if len({quoted for _, quoted in holders}) == 1:
        names = [who for who, _ in holders]
        where = (f"each {names[0]}'s" if len(names) > 1 == len(set(names)) else
                 " and ".join(f"{who}'s" for who in names)) + " argnums"
        return where, f"{holders[0][1]} out of {where}"
    return (", ".join(f"{quoted} in {who}'s" for who, quoted in holders) + " argnums",
            " and ".join(f"{quoted} out of {who}'s argnums" for who, quoted in holders))


def _outer_advice(exc) -> str:
    """ir's advice for the traced number (the outer transformation's), naming the compiled
    function's own argument (exc.arguments: its inputs' names), which a differentiated
    number's line names by the inner function's parameter: static_argnames takes that name
    (lambda v, m: grad(g, argnums=(0, 1))(v, m * 2)); an input named by position (argK: no
    parameter name) or a value of *args (args[1], which static_argnames cannot take: its
    position as the compiled graph records it) is that position in static_argnums; a leaf's
    (cfg.k) keeps ir's "list its position"."""
    if not exc.advice.endswith("in static_argnums") or not exc.arguments or \
            any("." in name for name in exc.arguments):
        return exc.advice
    if any("[" in name for name in exc.arguments):  # (its position: the graph's record)
        known = getattr(current_graph(), "argument_positions", {})  # (a loop body's: {})
        if not all(name in known for name in exc.arguments):
            return exc.advice
        return f"list {' and '.join(str(known[name]) for name in exc.arguments)} in " \
            "gc.compile's static_argnums"
    positions = [name[3:] for name in exc.arguments]
    if all(name.startswith("arg") and k.isdigit() for name, k in zip(exc.arguments, positions)):
        return f"list {' and '.join(positions)} in gc.compile's static_argnums"
    return f"list {' and '.join(repr(name) for name in exc.arguments)} in gc.compile's " \
        "static_argnames"


def hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def probe_uses(uses, call, args, kwargs, user):
    """Into `uses` ({"n": {reason}}, _EagerSplit.uses), every use of a traced number as a
    Python value that fn's trace meets for this call of `call` ((Compiled, its arguments,
    naming_position's places), whose trace was refused at the first use): traced once more,
    without a plan, each such number given its value (ir.graph.probing), so the trace goes
    past the first (an `if`, then range(n)). Only where eager_runner passes a number as it is from then on;
    a trace that fails otherwise ends the probe (uses seen so far are kept)."""
    compiled, call_args, places = call

    def leaf_value(name):  # a graph input's value, by its name ("n.0"), and its place
        p, leaf = input_leaf(name, places)
        leaves, _, names = flatten(kwargs.get(p) if isinstance(p, str) else args[p])
        return leaves[names.index(leaf)], (p, leaf)

    def hook(value, names, reason):
        try:
            places = [leaf_value(name)[1] for name in names]
            number = _computed(value, lambda node: leaf_value(node.attrs["name"])[0])
        except Exception:  # (not the caller's numbers: refused, as in any other trace)
            return None
        for p, leaf in places:
            argument = p if isinstance(p, str) else user[p]
            uses.setdefault(f"{argument}.{leaf}" if leaf else argument, set()).add(reason)
        return number

    try:
        with probing(hook):
            compiled.trace_only(call_args)
    except Exception:  # (the advice only: the call itself goes on as before)
        pass


def _computed(value, input_value):
    """A traced value computed from numbers (inputs, constants; read inside a loop body or
    branch too) by each op's numpy evaluation: input_value(node) gives an input's."""
    known = {}

    def of(node):
        if id(node) in known:
            return known[id(node)]
        if node.op != "input":
            result = get_op(node.op).impl(*[of(x) for x in node.inputs], **node.attrs)
        elif hasattr(node.graph, "outer_value") and node.graph.outer_value(node) is not None:
            result = of(node.graph.outer_value(node))  # (a region's input: its outer value)
        else:
            result = np.asarray(input_value(node), node.dtype)
        known[id(node)] = result
        return result
    return of(value)


def input_leaf(name, places):
    """(the caller's position of the argument, the leaf's name in it) of the graph input
    `name` ("n", "cfg.0.a" of the argument the graph names "cfg", places["cfg"] its
    position; "traced.k.0": the split call's keyword arguments traced, ("k", "0")), or
    None."""
    if name.startswith("traced."):  # (eager_runner's placed() names them so)
        return tuple(name[len("traced."):].partition(".")[::2])
    argument, _, leaf = name.partition(".")  # ("cfg.0": leaf 0 of cfg; no name has a dot)
    return (places[argument], leaf) if argument in places else None


def naming_position(call, places):
    """call(), where a TracedNumberError gets `leaves`: (the caller's position of the
    argument, the leaf's name in it) for each graph input it names (input_leaf: `places`
    maps the graph's name of each of fn's positional arguments to its position), or None
    where one of them is not such an input."""
    try:
        return call()
    except TracedNumberError as exc:
        found = [input_leaf(name, places) for name in exc.arguments]
        if None not in found:
            exc.leaves = found
        raise
