"""Batching rules of the control-flow ops (graphc.vmap through scan, cond, while_loop), after
JAX's `_scan_batching_rule`, `_cond_batching_rule` and `_while_loop_batching_rule`.

    scan(consts, carries, xs; body)       =>  scan(consts', carries', xs'; vmap(body))
      xs' : xs with the batch axis second, so each step's slice has the batch axis first
      ys  : stacked (length, B, ...), returned as (B, length, ...)
    cond(pred, ops; f, t), pred unbatched =>  cond(pred, ops'; vmap(f), vmap(t))
    cond(pred, ops; f, t), pred batched   =>  where(pred, vmap(t)(ops'), vmap(f)(ops'))
    while_loop, predicate unbatched       =>  while_loop(vmap(cond_fn), vmap(body_fn))
    while_loop, predicate batched         =>  while any(pred): carry = where(pred, body(carry),
                                                                                carry)

A region is batched with passes.batching.batch_graph into a new region (a traced context),
or run step by step on the batched values (eagerly, so the tape records it, as gc.scan runs
eagerly). A carry becomes batched when a batched value reaches it, found by a fixpoint over
the body as in JAX (`reached` follows data dependences; it over-approximates a nested
control-flow node by batching all its results when any operand is). Batching rules live here
and not in ir/ops/control_flow.py because they batch regions, which is this pass's business
(as the regions' gradient rules live in passes/control_flow_ad.py).

Every rule returns (a Python tuple of the results, their batched flags); tuple_get's rule
picks one element and its flag (ir/ops/batching.py, PER_ELEMENT).
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Graph
from ir.ops import api as F
from ir.ops.batching import (batch_all, defbatch, example, move_axis, results_selected_later,
                             with_rank)
from ir.ops.registry import apply, innermost_interpreter
from ir.region import Region


# ---- helpers --------------------------------------------------------------------------------
def reached(graph, flags) -> list:
    """Which outputs of `graph` a batched input reaches, given one flag per input."""
    batched = dict(zip(graph.inputs, flags))
    for node in graph.nodes:
        if node not in batched:
            batched[node] = any(batched[x] for x in node.inputs)
    return [batched[o] for o in graph.outputs]


def _broadcast(value, size):
    return batch_all([value], [False], size)[0]


def run_batched(graph, values, flags, size, want) -> list:
    """graph's outputs on values bound to its inputs (batched per `flags`), in the current
    context; an output that `want` says is batched gets a batch axis if it has none."""
    from .batching import batch_graph, is_batched
    outs = batch_graph(graph, dict(zip(graph.inputs, zip(values, flags))), size)
    return [_broadcast(v, size) if w and not is_batched(b) else v
            for (v, b), w in zip(outs, want)]


def _tracing() -> bool:
    return isinstance(innermost_interpreter(), Graph)


def _region(name, inputs, build) -> Region:
    """A region of the graph being traced, taking `inputs` ((shape, dtype) each) and returning
    build(its input nodes)."""
    region = Region(name, parent=innermost_interpreter())
    with region.building():
        own = [region.input(f"a{k}", shape, dtype) for k, (shape, dtype) in enumerate(inputs)]
        region.set_outputs([region.result(v) for v in build(own)])
    if region.close(own):  # every value it reads is one of its inputs
        raise GraphcError(f"vmap: the batched region {name} read a value from outside",
                          (user_location(),))
    return region


def _batched_types(graph, flags, size) -> list:
    return [(((size,) if f else ()) + tuple(n.shape), n.dtype)
            for n, f in zip(graph.inputs, flags)]


def batched_region(graph, flags, size, want) -> Region:
    """`graph` batched as a region: inputs batched per `flags`, outputs per `want`."""
    return _region(f"vmap_{graph.name}", _batched_types(graph, flags, size),
                   lambda ins: run_batched(graph, ins, flags, size, want))


def _with_flags(values, flags, size) -> list:
    """values given a batch axis where `flags` asks for one (values: (value, batched))."""
    return [_broadcast(v, size) if f and not b else v for (v, b), f in zip(values, flags)]


def _fixpoint(body, const_flags, carry_flags, extra_flags=()) -> list:
    """Carry flags that are stable through `body` (carries first among its outputs)."""
    carry_flags = list(carry_flags)
    while True:
        out = reached(body, list(const_flags) + carry_flags + list(extra_flags))
        grown = [a or b for a, b in zip(carry_flags, out[:len(carry_flags)])]
        if grown == carry_flags:
            return carry_flags
        carry_flags = grown


def _elements(node) -> list:
    return [apply("tuple_get", node, index=k) for k in range(len(node.type.elements))]


def _select(pred, on_true, on_false):
    """where(pred[b], on_true[b], on_false[b]) for every example b (all batched)."""
    return F.where(with_rank(pred, F._ndim(on_true) - 1), on_true, on_false)


def _truth(pred):
    return pred if F._dtype(pred) == np.bool_ else F.not_equal(pred, 0)


def _concrete(value) -> bool:
    return bool(np.asarray(getattr(value, "data", value)))


# ---- tuple_get --------------------------------------------------------------------------------
@defbatch("tuple_get", per_element=True)
def _tuple_get_rule(args, batched, size, index):
    """The element of a rule's tuple of results, with its own batched flag."""
    (value,), (flags,) = args, batched
    return value[index], flags[index]


# ---- scan -------------------------------------------------------------------------------------
@defbatch("scan", per_element=True)
def _scan_rule(args, batched, size, body, consts, carries, length, reverse=False,
               save_carries=False):
    const_flags = list(batched[:consts])
    x_flags = list(batched[consts + carries:])
    carry_flags = _fixpoint(body, const_flags, batched[consts:consts + carries], x_flags)
    y_flags = reached(body, const_flags + carry_flags + x_flags)[carries:]
    const_values = list(args[:consts])
    carry_values = _with_flags(zip(args[consts:consts + carries],
                                   batched[consts:consts + carries]), carry_flags, size)
    # xs batched (B, length, ...) are scanned along their time axis: (length, B, ...)
    xs = [move_axis(x, 0, 1) if b else x for x, b in zip(args[consts + carries:], x_flags)]
    flags = carry_flags + y_flags + (carry_flags if save_carries else [])
    if not any(batched) and _tracing():
        node = apply("scan", *args, body=body, consts=consts, carries=carries, length=length,
                     reverse=reverse, save_carries=save_carries)
        return tuple(_elements(node)), tuple(flags)
    in_flags = const_flags + carry_flags + x_flags
    if _tracing():
        region = batched_region(body, in_flags, size, carry_flags + y_flags)
        node = apply("scan", *const_values, *carry_values, *xs, body=region, consts=consts,
                     carries=carries, length=length, reverse=reverse,
                     save_carries=save_carries)
        results = _elements(node)
    else:
        results = _scan_steps(body, const_values, carry_values, xs, in_flags,
                              carry_flags + y_flags, size, length, reverse, save_carries)
    # stacked results of batched values come back (length, B, ...): batch axis first
    results = [move_axis(r, 1, 0) if k >= carries and f else r
               for k, (r, f) in enumerate(zip(results, flags))]
    return tuple(results), tuple(flags)


def _scan_steps(body, consts, carry, xs, in_flags, want, size, length, reverse, save_carries):
    """Eagerly: the batched body run once per step (the tape records every step)."""
    carries = len(carry)
    ys, saved = [None] * length, [None] * length
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        saved[t] = carry
        outs = run_batched(body, consts + carry + [example(x, t) for x in xs], in_flags, size,
                           want)
        carry, ys[t] = outs[:carries], outs[carries:]
    if length == 0:  # nothing to stack: empty arrays of the stacked types
        outs = body.outputs[carries:] + (body.outputs[:carries] if save_carries else [])
        flags = want[carries:] + (want[:carries] if save_carries else [])
        return list(carry) + [np.zeros((0,) + ((size,) if f else ()) + tuple(o.shape), o.dtype)
                              for o, f in zip(outs, flags)]
    stacked = [F.stack([ys[t][k] for t in range(length)], 0) for k in range(len(ys[0]))]
    if save_carries:
        stacked += [F.stack([saved[t][k] for t in range(length)], 0) for k in range(carries)]
    return list(carry) + stacked


# ---- cond -------------------------------------------------------------------------------------
@defbatch("cond", per_element=True)
def _cond_rule(args, batched, size, branches):
    pred, operands = args[0], list(args[1:])
    pred_flag, op_flags = batched[0], list(batched[1:])
    out_flags = [a or b for a, b in zip(*(reached(b, op_flags) for b in branches))]
    if pred_flag:  # each example takes its own branch: run both, select per example
        everything = [True] * len(out_flags)
        take = _truth(pred)
        # an example's index may be out of range in the branch it does not take
        with results_selected_later(F.logical_not(take), size):
            false_outs = run_batched(branches[0], operands, op_flags, size, everything)
        with results_selected_later(take, size):
            true_outs = run_batched(branches[1], operands, op_flags, size, everything)
        return (tuple(_select(take, t, f) for t, f in zip(true_outs, false_outs)),
                tuple(everything))
    if not _tracing():  # the predicate is known: run the branch it picks
        branch = branches[1 if _concrete(pred) else 0]
        return tuple(run_batched(branch, operands, op_flags, size, out_flags)), tuple(out_flags)
    if not any(op_flags):
        node = apply("cond", *args, branches=branches)
    else:
        node = apply("cond", pred, *operands, branches=tuple(
            batched_region(b, op_flags, size, out_flags) for b in branches))
    return tuple(_elements(node)), tuple(out_flags)


# ---- while_loop -------------------------------------------------------------------------------
@defbatch("while_loop", per_element=True)
def _while_rule(args, batched, size, cond_fn, body_fn, cond_consts, body_consts):
    split = cond_consts + body_consts
    cond_values, body_values = list(args[:cond_consts]), list(args[cond_consts:split])
    cond_flags, body_flags = list(batched[:cond_consts]), list(batched[cond_consts:split])
    carry_flags = _fixpoint(body_fn, body_flags, batched[split:])
    pred_flag = reached(cond_fn, cond_flags + carry_flags)[0]
    if pred_flag:  # examples finish at different steps: every carry is per example
        carry_flags = [True] * len(carry_flags)
    carry = _with_flags(zip(args[split:], batched[split:]), carry_flags, size)
    flags = tuple(carry_flags)
    cond_in, body_in = cond_flags + carry_flags, body_flags + carry_flags
    if not any(batched) and _tracing():
        return tuple(_elements(apply("while_loop", *args, cond_fn=cond_fn, body_fn=body_fn,
                                     cond_consts=cond_consts, body_consts=body_consts))), flags
    if not _tracing():
        while True:
            keep = run_batched(cond_fn, cond_values + carry, cond_in, size, [pred_flag])[0]
            # a sum, not a max: a batch of no examples has no maximum, and runs no step
            if not _concrete(F.sum(F.cast(keep, np.int32))):
                return tuple(carry), flags
            # a finished example's step is thrown away
            with results_selected_later(keep, size) if pred_flag else nullcontext():
                new = run_batched(body_fn, body_values + carry, body_in, size, carry_flags)
            carry = [_select(keep, n, c) for n, c in zip(new, carry)] if pred_flag else new
    if not pred_flag:
        node = apply("while_loop", *cond_values, *body_values, *carry,
                     cond_fn=batched_region(cond_fn, cond_in, size, [False]),
                     body_fn=batched_region(body_fn, body_in, size, carry_flags),
                     cond_consts=cond_consts, body_consts=body_consts)
        return tuple(_elements(node)), flags
    # batched predicate: loop while any example's holds; a finished example's carry is frozen
    n_cond, n_body = len(cond_values), len(body_values)

    def any_holds(ins):
        keep = run_batched(cond_fn, ins, cond_in, size, [True])[0]
        return [F.greater(F.sum(F.cast(keep, np.int32)), 0)]

    def step_unfinished(ins):
        conds, bodies, old = ins[:n_cond], ins[n_cond:n_cond + n_body], ins[n_cond + n_body:]
        keep = run_batched(cond_fn, conds + old, cond_in, size, [True])[0]
        with results_selected_later(keep, size):  # a finished example's step is thrown away
            new = run_batched(body_fn, bodies + old, body_in, size, carry_flags)
        return [_select(keep, n, c) for n, c in zip(new, old)]

    carry_types = [(tuple(F._shape(c)), F._dtype(c)) for c in carry]
    cond_region = _region(f"vmap_{cond_fn.name}",
                          _batched_types(cond_fn, cond_in, size), any_holds)
    body_region = _region(f"vmap_{body_fn.name}",
                          _batched_types(cond_fn, cond_flags, size)[:n_cond]
                          + _batched_types(body_fn, body_flags + carry_flags, size)[:n_body]
                          + carry_types, step_unfinished)
    node = apply("while_loop", *cond_values, *cond_values, *body_values, *carry,
                 cond_fn=cond_region, body_fn=body_region, cond_consts=n_cond,
                 body_consts=n_cond + n_body)
    return tuple(_elements(node)), flags

