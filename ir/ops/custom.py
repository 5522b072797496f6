"""custom_vjp: the node that gives a sub-computation its own gradient rule (graphc.custom_vjp,
graphc.custom_jvp).

    %5:f32[8] = custom_vjp %4, %0, %3 {fn="log1pexp", args=1, rule=7}

evaluates to its first operand, the forward result (computed by ordinary nodes before it).
The next `args` operands are the function's arguments, the rest its residuals (values the
rule reads). Differentiated, it sends gradients to the arguments only, through the user's rule
run on the residuals and the cotangent; none flows into the forward nodes or the residuals.

The rule is Python code (graphc/custom.py and graphc/remat.py build it), so the node holds
it by reference: the `rule` attribute is an int carrying the rule, printed as its number in
this process. IR text read back evaluates (it is the identity) but can be differentiated only
in the process that made it. Simplification inlines the node (passes/simplify.py), so
optimised graphs and compiled plans never hold one: differentiate first, as graphc.grad and
graphc.compile do.
"""
from __future__ import annotations

import itertools
import weakref

from ..errors import GraphcError, user_location
from .registry import TypeRuleError, defop


class CustomCall:
    """What one use of a custom-gradient function needs to be differentiated.

    `pullback(args, residuals, cotangent, needs)` -> one cotangent (or None) per argument
    operand; it runs on graph nodes (autodiff) or eager tensors (the tape) alike.
    `replays`: the rule differentiates the forward nodes themselves (remat's replay), so it
    is their derivative, not a user's rule (graphc.linear_transpose reads it)."""

    def __init__(self, name: str, pullback, replays: bool = False):
        self.name = name
        self.pullback = pullback
        self.replays = replays


class RuleRef(int):
    """The `rule` attribute: a number that prints, parses and hashes as an int, and holds its
    CustomCall while the node exists."""

    call: CustomCall
    # A plan never runs the rule: graphc.grad has applied it while tracing, and
    # simplification inlines the node. Two traces differing only in their rules' numbers
    # compute the same (ir/graph.Graph.fingerprint).
    fingerprint = "custom rule"


_LIVE: "weakref.WeakValueDictionary[int, CustomCall]" = weakref.WeakValueDictionary()
_NUMBERS = itertools.count(1)


def rule_ref(call: CustomCall) -> RuleRef:
    ref = RuleRef(next(_NUMBERS))
    ref.call = call
    _LIVE[int(ref)] = call
    return ref


def _custom_call(attrs) -> CustomCall:
    ref = attrs["rule"]
    call = getattr(ref, "call", None) or _LIVE.get(int(ref))
    if call is None:
        raise GraphcError(f"custom_vjp node of {attrs['fn']!r} (rule {int(ref)}) has no gradient "
                          "rule in this process: IR text does not carry the rule's Python "
                          "code; differentiate before printing or saving the graph",
                          (user_location(),))
    return call


def _infer(types, fn, args, rule):
    if len(types) < 1 + args:
        raise TypeRuleError(f"needs the forward value and {args} argument operands")
    return types[0]


# A value the function closes over (read by its forward nodes, not an argument) gets no
# gradient through the node; where one is being differentiated that is an error, not a silently
# lost gradient (JAX's custom_vjp refuses closed-over tracers too). Traced, autodiff checks it
# (passes/autodiff.py, it knows what is being differentiated); eagerly, _vjp below.
CLOSURE_ERROR = ("custom-gradient function {fn} closes over a value that is being "
                 "differentiated: its rule gives gradients to the function's arguments only, so "
                 "that value's gradient through {fn} would be lost; pass it as an argument")


def _check_eager_closure(ctx):
    """Eagerly: the tape from the forward value down to the arguments reaches no other tensor
    that backward gives a gradient (one in backward's inputs=, else any leaf requiring grad)."""
    value = ctx.inputs[0]
    if getattr(value, "_ctx", False) is False:  # a graph node: autodiff checks it
        return
    args = {id(a) for a in ctx.inputs[1:1 + ctx.attrs["args"]]}
    wanted = ctx.wanted
    # the tape's paths are the operands that required grad when each op ran (ctx.needs, an
    # entry's _ctx[4]), as backward() follows them: a weight frozen during the forward and
    # unfrozen before backward() is a constant of the function, as in torch
    stack, seen = [value] if ctx.needs[0] else [], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or id(t) in args:
            continue
        if (t._ctx is None and t.requires_grad) if wanted is None else (id(t) in wanted):
            raise GraphcError(CLOSURE_ERROR.format(fn=ctx.attrs["fn"]), (user_location(),))
        if t._ctx is None:  # a leaf whose gradient is not wanted
            continue
        seen.add(id(t))
        stack.extend(a for a, needed in zip(t._ctx[1], t._ctx[4]) if needed)


def _vjp(ctx, g):
    args = ctx.attrs["args"]
    _check_eager_closure(ctx)
    call = _custom_call(ctx.attrs)
    cotangents = call.pullback(list(ctx.inputs[1:1 + args]), list(ctx.inputs[1 + args:]), g,
                               tuple(ctx.needs[1:1 + args]))
    return [None, *cotangents] + [None] * (len(ctx.inputs) - 1 - args)


@defop("custom_vjp", _infer, vjp=_vjp)
def custom_vjp(value, *operands, fn, args, rule):
    return value


# ---- rematerialisation (graphc.remat) ----------------------------------------------------
# The backward pass of a checkpointed region recomputes its forward nodes from barriers on the
# values it reads. The barrier is the identity (a view when lowered), but CSE does not see
# through it, so the recomputed nodes stay apart from the forward ones, which then die at the
# end of the forward pass instead of living until the backward pass reads them (as JAX's
# optimization_barrier does for jax.checkpoint).
def _barrier_vjp(ctx, g):
    return [g]


@defop("optimization_barrier", lambda types: types[0], vjp=_barrier_vjp, arity=1)
def optimization_barrier(x):
    return x


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
# custom_vjp's rule batches the user's Python gradient rule, so it needs the batching
# transformation itself: passes/batching.py registers it.
def _register_batching():
    from .batching import broadcasting, defbatch

    defbatch("optimization_barrier")(broadcasting("optimization_barrier"))


_register_batching()
