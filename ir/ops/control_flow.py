"""Structured control flow: one node holding closed sub-graphs (regions), as a JAX equation of
`scan`, `cond` or `while` holds a closed jaxpr.

    %9:(f32[4], f32[10,4]) = scan %1, %2, %3 {body={ graph ... }, consts=1, carries=1, ...}
    %10:f32[4] = tuple_get %9 {index=0}
    %11:f32[10,4] = tuple_get %9 {index=1}

A region is an ordinary Graph whose inputs are its operands (captured outer values first,
"consts", as in JAX) and whose outputs are its results; it reads nothing from outside. A
control-flow node's type is a TupleType and only `tuple_get` reads it, so the rest of the IR
stays single-output.

- scan: operands consts, carries, xs; the body maps (consts, carry, x[t]) -> (carry, y[t])
  for t = 0..length-1 (length-1..0 with `reverse`); results: the final carries, then every
  y stacked along a new leading axis, then (with `save_carries`, what its gradient reads)
  the carry each step started from, stacked.
- cond: operands pred (a bool or integer scalar), then the branches' operands; `branches`
  holds (false_branch, true_branch), each mapping the operands to results of equal types.
- while_loop: operands cond's consts, body's consts, carries; `cond_fn` maps
  (cond consts, carry) -> bool scalar, `body_fn` (body consts, carry) -> carry.

The numpy evaluation here runs each region node by node (the reference interpreter's
semantics); compiled plans run a region's own plan per iteration (runtime/control_flow.py).
Gradient rules are registered from passes/control_flow_ad.py (they differentiate regions,
which is autodiff's business, above ir).
"""
from __future__ import annotations

import numpy as np

from ..types import Dim, TensorType, TupleType
from .registry import REGISTRY, check, defop


def run_region(region, args) -> list:
    """The region's outputs for these input arrays, evaluated node by node."""
    env = dict(zip(region.inputs, args))
    for node in region.nodes:
        if node.op == "input":
            continue
        out = REGISTRY[node.op].impl(*[env[i] for i in node.inputs], **node.attrs)
        if isinstance(node.type, TensorType) and type(out) is not np.ndarray:
            out = np.asarray(out, dtype=node.dtype)
        env[node] = out
    return [env[o] for o in region.outputs]


def region_signature(region) -> tuple:
    """(input types, output types) of a region."""
    return [n.type for n in region.inputs], [n.type for n in region.outputs]


def _types_text(types) -> str:
    return "(" + ", ".join(str(t) for t in types) + ")"


# ---- tuple_get --------------------------------------------------------------------------
def _tuple_get_infer(types, index):
    check(isinstance(types[0], TupleType), f"operand is {types[0]}, not a tuple")
    check(0 <= index < len(types[0].elements), f"index {index} out of range for {types[0]}")
    return types[0].elements[index]


@defop("tuple_get", _tuple_get_infer, arity=1)
def tuple_get(value, index):
    return value[index]


# ---- scan --------------------------------------------------------------------------------
def _counts(**counts):
    """Operand counts and a loop's length are 0 or more: a negative one (from IR text or
    JSON) slices from the end, so a rule read `carries=-1` as all operands but the last and
    passed a graph that the passes then failed on."""
    for name, value in counts.items():
        check(isinstance(value, Dim) or value >= 0, f"{name} must be 0 or more, got {value}")


def scan_types(types, body, consts, carries, length):
    """(carry types, x-slice types) the body must take, checked against the operands."""
    _counts(consts=consts, carries=carries, length=length)
    check(len(types) >= consts + carries, f"needs {consts} consts and {carries} carries")
    xs = types[consts + carries:]
    for t in xs:
        check(t.ndim >= 1 and t.shape[0] == length,
              f"scanned operand {t} does not have length {length} along axis 0")
    slices = [TensorType(t.shape[1:], t.dtype) for t in xs]
    return types[consts:consts + carries], slices


def _scan_infer(types, body, consts, carries, length, reverse=False, save_carries=False):
    carry_types, slices = scan_types(types, body, consts, carries, length)
    ins, outs = region_signature(body)
    expected_in = list(types[:consts]) + list(carry_types) + slices
    check(ins == expected_in, f"body takes {_types_text(ins)} but the operands give "
                              f"{_types_text(expected_in)}")
    check(len(outs) >= carries and outs[:carries] == list(carry_types),
          f"body returns carries {_types_text(outs[:carries])} for carries "
          f"{_types_text(carry_types)}")
    stacked = [TensorType((length,) + t.shape, t.dtype) for t in outs[carries:]]
    saved = [TensorType((length,) + t.shape, t.dtype) for t in carry_types] \
        if save_carries else []
    return TupleType(list(carry_types) + stacked + saved)


def region_flops(region, ops=None) -> float:
    """FLOPs of one run of a region (a graph too: its nodes' op rules). `ops`: only the nodes
    of these ops, inside scans and conds as well (a scan's body `length` times, of a cond the
    branch with the most): the products of a loop's body are products of the plan."""
    total = 0.0
    for n in region.nodes:
        op = REGISTRY[n.op]
        if op.flops is None:
            continue
        if ops is None or n.op in ops:
            total += op.flops([i.type for i in n.inputs], n.type, **n.attrs)
        elif n.op == "scan":
            total += n.attrs["length"] * region_flops(n.attrs["body"], ops)
        elif n.op == "cond":
            total += max(region_flops(b, ops) for b in n.attrs["branches"])
    return total


def _scan_flops(types, out, body, length, **_):
    return length * region_flops(body)


def _cond_flops(types, out, branches):
    return max(region_flops(b) for b in branches)


@defop("scan", _scan_infer, flops=_scan_flops)
def scan(*operands, body, consts, carries, length, reverse=False, save_carries=False):
    const_values = list(operands[:consts])
    carry = list(operands[consts:consts + carries])
    xs = operands[consts + carries:]
    y_types = [n.type for n in body.outputs[carries:]]
    ys = [np.empty((length,) + t.shape, t.dtype) for t in y_types]
    saved = [np.empty((length,) + np.shape(c), np.asarray(c).dtype) for c in carry] \
        if save_carries else []
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        for s, c in zip(saved, carry):
            s[t] = c
        outs = run_region(body, const_values + carry + [x[t] for x in xs])
        carry = outs[:carries]
        for y, o in zip(ys, outs[carries:]):
            y[t] = o
    return tuple(np.asarray(c) for c in carry) + tuple(ys) + tuple(saved)


# ---- cond --------------------------------------------------------------------------------
def _cond_infer(types, branches):
    check(len(branches) == 2, "needs two branches (false, true)")
    pred = types[0]
    check(pred.ndim == 0 and pred.dtype.kind in "biu",
          f"the predicate must be a bool or integer scalar, got {pred}")
    signatures = [region_signature(b) for b in branches]
    for (ins, _), which in zip(signatures, ("false", "true")):
        check(ins == list(types[1:]), f"the {which} branch takes {_types_text(ins)} but the "
                                      f"operands are {_types_text(types[1:])}")
    (_, false_outs), (_, true_outs) = signatures
    check(false_outs == true_outs, f"the branches return different types: true "
                                   f"{_types_text(true_outs)}, false {_types_text(false_outs)}")
    return TupleType(true_outs)


@defop("cond", _cond_infer, flops=_cond_flops)
def cond(pred, *operands, branches):
    return tuple(run_region(branches[1 if pred else 0], list(operands)))


# ---- while_loop ------------------------------------------------------------------------
def _while_infer(types, cond_fn, body_fn, cond_consts, body_consts):
    _counts(cond_consts=cond_consts, body_consts=body_consts)
    check(len(types) >= cond_consts + body_consts,
          f"needs {cond_consts} cond_consts and {body_consts} body_consts")
    carry_types = list(types[cond_consts + body_consts:])
    cond_ins, cond_outs = region_signature(cond_fn)
    body_ins, body_outs = region_signature(body_fn)
    check(cond_ins == list(types[:cond_consts]) + carry_types,
          f"cond_fun takes {_types_text(cond_ins)} for carries {_types_text(carry_types)}")
    check(len(cond_outs) == 1 and cond_outs[0].ndim == 0 and cond_outs[0].dtype.kind == "b",
          f"cond_fun must return a bool scalar, got {_types_text(cond_outs)}")
    check(body_ins == list(types[cond_consts:cond_consts + body_consts]) + carry_types,
          f"body_fun takes {_types_text(body_ins)} for carries {_types_text(carry_types)}")
    check(body_outs == carry_types, f"body_fun returns {_types_text(body_outs)} for carries "
                                    f"{_types_text(carry_types)}")
    return TupleType(carry_types)


@defop("while_loop", _while_infer)
def while_loop(*operands, cond_fn, body_fn, cond_consts, body_consts):
    cond_values = list(operands[:cond_consts])
    body_values = list(operands[cond_consts:cond_consts + body_consts])
    carry = list(operands[cond_consts + body_consts:])
    while bool(run_region(cond_fn, cond_values + carry)[0]):
        carry = run_region(body_fn, body_values + carry)
    return tuple(np.asarray(c) for c in carry)


REGION_OPS = {"scan": ("body",), "cond": ("branches",), "while_loop": ("cond_fn", "body_fn")}


def regions_of(node) -> list:
    """The sub-graphs a node holds (none for ordinary ops)."""
    found = []
    for key in REGION_OPS.get(node.op, ()):
        value = node.attrs[key]
        found.extend(value if isinstance(value, tuple) else (value,))
    return found


def region_feeds(node, region) -> dict:
    """{input of `region`: the operand of `node` it takes}, for the inputs that take an
    operand whole (not a scan's slices of xs)."""
    operands = node.inputs
    if node.op == "scan":
        operands = operands[:node.attrs["consts"] + node.attrs["carries"]]
    elif node.op == "cond":
        operands = operands[1:]
    elif node.op == "while_loop":
        own, body = node.attrs["cond_consts"], node.attrs["body_consts"]
        carries = operands[own + body:]
        operands = operands[:own] + carries if region is node.attrs["cond_fn"] else \
            operands[own:own + body] + carries
    return dict(zip(region.inputs, operands))
