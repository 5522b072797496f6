"""Rematerialisation: `graphc.remat(f)`, as `jax.checkpoint` (alias `jax.remat`) and
`torch.utils.checkpoint`; `graphc.checkpoint` is the module of checkpoint files.

    for block in blocks:
        x = gc.remat(block)(x)

Traced, f's forward nodes are recorded as usual and topped by one custom_vjp node
(ir/ops/custom.py) whose gradient rule replays them: when the backward pass reaches the
region, its nodes are rebuilt from `optimization_barrier`s on the values the region read
(its arguments and anything it closed over: parameters, masks, dropout seeds), and the
replayed copy is differentiated. Nothing in the backward pass reads the forward copy, so its
intermediates die at the end of the forward pass: the plan's peak memory holds one region's
intermediates at a time, at the price of computing each region's forward twice. Dropout
masks are pure functions of their seed and site, so the replay draws the same mask.

Eagerly (no graph being traced) the tape keeps every value anyway: f runs as it is.
JAX's options (static_argnums, prevent_cse, policy) are described at `remat`.
"""
from __future__ import annotations

import functools
import types

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Node, current_graph
from ir.ops.custom import CustomCall, rule_ref
from ir.ops.registry import apply
from ir.types import is_float
from passes.autodiff import gradients
from runtime.eager import apart_from, op_serial

from .control_flow import _first_foreign, _refuse_foreign_result, _where
from .custom import _pack
from .tracing import function_name, leaves_and_structure, refuse_traced, unflatten
from .transforms import _argnums, _callable


class _Policy:
    """A policy of jax.checkpoint's (`jax.checkpoint_policies.*`): which forward values the
    backward pass reads as saved instead of recomputing. graphc's remat replays its region
    whole, so it honours the two ends alone: `saves` is "nothing" (recompute everything, the
    default), "everything" (keep everything: no recomputation) or "some" (JAX saves some
    values, dots or names: graphc replays the whole region, as for "nothing": the same
    gradients, with more computation)."""

    def __init__(self, name, saves="some"):
        self.name, self.saves = name, saves

    def __repr__(self):
        return f"checkpoint_policies.{self.name}"


def _factory(name):
    """One of JAX's policy factories (save_only_these_names("a", "b"), ...): some values
    saved, so the region is replayed whole."""
    def make(*args, **kwargs):
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        return _Policy(f"{name}({shown})")
    make.__name__ = name
    return make


def _save_from_both_policies(first, second):
    saves = {getattr(p, "saves", None) for p in (first, second)}
    both = "everything" if "everything" in saves else "nothing" if saves == {"nothing"} \
        else "some"
    return _Policy(f"save_from_both_policies({first!r}, {second!r})", both)


# jax.checkpoint_policies by JAX's names; those that save some values and recompute others
# (dots, names) replay the whole region: JAX's gradients, more computation than JAX's
checkpoint_policies = types.SimpleNamespace(
    everything_saveable=_Policy("everything_saveable", "everything"),
    nothing_saveable=_Policy("nothing_saveable", "nothing"),
    dots_saveable=_Policy("dots_saveable"),
    checkpoint_dots=_Policy("checkpoint_dots"),
    dots_with_no_batch_dims_saveable=_Policy("dots_with_no_batch_dims_saveable"),
    checkpoint_dots_with_no_batch_dims=_Policy("checkpoint_dots_with_no_batch_dims"),
    save_anything_except_these_names=_factory("save_anything_except_these_names"),
    save_any_names_but_these=_factory("save_any_names_but_these"),
    save_only_these_names=_factory("save_only_these_names"),
    save_and_offload_only_these_names=_factory("save_and_offload_only_these_names"),
    offload_dot_with_no_batch_dims=_factory("offload_dot_with_no_batch_dims"),
    save_from_both_policies=_save_from_both_policies)


def _policy_saves(policy) -> str:
    """What remat keeps under `policy`: "everything" (no replay) for everything_saveable,
    else "nothing": a policy that saves some values (JAX's dots/names ones, or a function
    of (primitive, *avals, **params) of your own) replays the region whole, which gives its
    gradients at the cost of recomputing what it would have saved; not a policy: one line."""
    if isinstance(policy, _Policy):
        return "everything" if policy.saves == "everything" else "nothing"
    if policy is None or callable(policy):
        return "nothing"
    raise GraphcError(f"remat: policy must be one of gc.checkpoint_policies or a function, "
                      f"got {policy!r}", (user_location(),))


def remat(fun, *, prevent_cse: bool = True, policy=None, static_argnums=()):
    """fun, with its forward values recomputed in the backward pass instead of kept: JAX's
    jax.checkpoint. static_argnums: arguments that are Python values, used as they are
    while tracing (a traced value there is refused, as a tracer is by JAX's). prevent_cse
    (JAX's, default True): the replay reads optimization_barriers on what the region read, so
    CSE cannot merge it with the forward copy (which would keep the forward's values alive
    into the backward pass, undoing the remat); False lets CSE merge them, as JAX allows
    inside a scan, whose body keeps its own values anyway. policy: None or
    gc.checkpoint_policies.nothing_saveable (recompute everything) or everything_saveable
    (recompute nothing: fun as it is); the policies that save some values (dots_saveable,
    save_only_these_names(...), a function of your own) replay the whole region as
    nothing_saveable does: the same gradients as JAX's, with more recomputation."""
    _callable(fun, "remat")
    name = function_name(fun)
    if not isinstance(prevent_cse, (bool, np.bool_)):
        raise GraphcError(f"remat: prevent_cse must be True or False, got {prevent_cse!r}",
                          (user_location(),))
    saves = _policy_saves(policy)
    static = _argnums(static_argnums, "remat: static_argnums")

    @functools.wraps(fun, updated=())
    def rematerialised(*args, **kwargs):
        for i in static:
            if not -len(args) <= i < len(args):
                raise GraphcError(f"remat: static_argnums has {i} but {name} was called with "
                                  f"{len(args)} positional arguments", (user_location(),))
            refuse_traced(args[i], f"remat: argument {i % len(args)} of {name} is in "
                          "static_argnums but is a traced value")
        if saves == "everything":  # nothing recomputed: the function as it is
            out = fun(*args, **kwargs)
            _ours(leaves_and_structure(out)[0])
            return out
        leaves, _ = leaves_and_structure([list(args), kwargs])
        # the graph being built first: inside a loop body or a branch an argument may be a
        # value of the enclosing graph, which the body reads through a capture
        graph = current_graph() or next((x.graph for x in leaves if isinstance(x, Node)),
                                        None)
        if graph is None:  # eagerly; results of their own, as a compiled remat's
            since = op_serial()
            out_leaves, out_tree = leaves_and_structure(fun(*args, **kwargs))
            _ours(out_leaves)
            return unflatten(out_tree, apart_from(out_leaves, leaves, since))
        start = len(graph.nodes)
        with graph.building():
            out = fun(*args, **kwargs)
            _ours(leaves_and_structure(out)[0])
            return _rematerialise(graph, graph.nodes[start:], out, name, prevent_cse)

    def _ours(out_leaves):
        """Refuse fun's result in one line where it holds a torch tensor (or another
        library's array), as the control-flow constructs refuse a body's: eagerly it was
        handed back as it was, traced it met an op ("sum: got a torch.Tensor") or became a
        constant of the compiled function. (The line, with where fun is defined, is built
        only then: an eager remat's call pays the leaves' isinstance tests alone.)"""
        if _first_foreign(out_leaves)[1] is not None:
            _refuse_foreign_result(f"remat function {name}{_where(fun)}", "", out_leaves)

    return rematerialised


def _rematerialise(graph, region, out, name, prevent_cse=True):
    computed = [n for n in region if n.op != "input"]  # a parameter met first here is read
    inside = set(computed)
    reads, seen = [], set()
    for n in computed:
        for operand in n.inputs:
            if operand not in inside and operand not in seen:
                seen.add(operand)
                reads.append(operand)
    out_leaves, out_tree = leaves_and_structure(out)
    # only values the region computes go through the custom_vjp: a result that is one of
    # fun's arguments (or a value from outside) unchanged is returned as it is, and its
    # gradient flows to it directly (the replay would not reach it unless a computed node
    # also read it, and its cotangent was dropped)
    diff_pos = [i for i, x in enumerate(out_leaves)
                if isinstance(x, Node) and x.graph is graph and is_float(x.dtype)
                and x in inside]
    if not diff_pos or not reads:
        return out
    targets = [out_leaves[i] for i in diff_pos]
    packed, unpack = _pack(targets)
    position = {n: k for k, n in enumerate(computed)}

    def pullback(read_ops, _residuals, g, needs):
        """Replay the region on barriers of what it read (operands of the graph being
        differentiated: a clone of the traced one under grad_graph), then differentiate it."""
        # (without prevent_cse, an identity cast, which simplify drops before CSE, keeps the
        # replay's inputs apart only while it is differentiated: its gradient is taken with
        # respect to them, not through them to each other)
        barriers = [apply("optimization_barrier", x) if prevent_cse else
                    apply("cast", x, dtype=x.dtype) for x in read_ops]
        value = dict(zip(reads, barriers))
        for n in computed:
            value[n] = read_ops[0].graph.add_node(
                n.op, [value[i] for i in n.inputs], dict(n.attrs), n.type, n.locs, n.scope)
        ys = [value[t] if t in position else value.get(t, t) for t in targets]
        wrt = [b for b, need in zip(barriers, needs) if need]
        grads = iter(gradients(ys, wrt, unpack(g)) if wrt else [])
        return [next(grads) if need else None for need in needs]

    node = apply("custom_vjp", packed, *reads, fn=f"remat({name})", args=len(reads),
                 rule=rule_ref(CustomCall(name, pullback, replays=True)))
    results = list(out_leaves)
    for i, r in zip(diff_pos, unpack(node)):
        results[i] = r
    return unflatten(out_tree, results)

