"""`fused`: the node that elementwise fusion (runtime/fusion.py) makes of a cluster, and the
text program it carries ("v0 = mul(a0, a1); v1 = softmax(v0, axis=3)").

A cluster whose values are read outside it at several places (an AdamW update writes m, v
and the parameter) is one node with several results: `results=(1, 3, 6)` names the
instructions whose values it returns, its type is a TupleType and `tuple_get` nodes read
each result, as for control flow (ir/ops/control_flow.py). Without `results`, the last
instruction's value is the one result.

The op keeps the name `fused` in the IR text and JSON (a user-visible format). Its numpy
evaluation runs the members' own definitions one after another; the compiled plan runs the
cluster as one generated kernel (runtime/kernelgen.py) instead.
"""
from __future__ import annotations

import functools
import re

import numpy as np

from ..types import SHORT_NAMES, TupleType, as_dtype
from .elementwise import GELU_TANH
from .registry import check, defop, get_op

# A program is text, one instruction per `;`: "v0 = mul(a0, a1); v1 = softmax(v0, axis=3)".
# aK is the node's K-th operand, vK an earlier instruction's value; the last one is the result.
_INSTRUCTION = re.compile(r"\s*(v\d+)\s*=\s*(\w+)\((.*)\)\s*$")


@functools.lru_cache(maxsize=4096)
def parse_program(program: str) -> tuple:
    """((op, (("a" | "v", index), ...), attrs), ...) from a program's text; cached, since
    plans evaluate programs on every call (runtime.tiering's numpy kernels): not to be
    mutated."""
    out = []
    for k, text in enumerate(program.split(";")):
        m = _INSTRUCTION.match(text)
        check(m is not None and m.group(1) == f"v{k}",
              f"fused program: cannot read instruction {k}: {text.strip()!r}")
        args, attrs = [], {}
        for item in filter(None, (s.strip() for s in m.group(3).split(","))):
            if "=" in item:
                key, value = (s.strip() for s in item.split("=", 1))
                attrs[key] = (as_dtype(value) if key == "dtype" else
                              int(value) if value.lstrip("-").isdigit() else value)
            else:
                check(item[0] in "av" and item[1:].isdigit(), f"fused program: bad operand "
                                                               f"{item!r}")
                check(item[0] == "a" or int(item[1:]) < k,
                      f"fused program: {item} used before it is computed")
                args.append((item[0], int(item[1:])))
        out.append((m.group(2), tuple(args), attrs))
    return tuple(out)


def format_program(instructions) -> str:
    parts = []
    for k, (op, args, attrs) in enumerate(instructions):
        items = [f"{kind}{i}" for kind, i in args]
        items += [f"{key}={SHORT_NAMES[v] if key == 'dtype' else v}" for key, v in attrs.items()]
        parts.append(f"v{k} = {op}({', '.join(items)})")
    return "; ".join(parts)


def _run_program(operands, program, step, results=None):
    """The last instruction's value, or a tuple of the values `results` names."""
    values = []
    for op, args, attrs in parse_program(program):
        values.append(step(op, [operands[i] if kind == "a" else values[i] for kind, i in args],
                           attrs))
    if results is None:
        return values[-1]
    return tuple(values[k] for k in results)


# What a program may hold: the ops, and the attribute values, that every backend computes
# alike - the numpy evaluation below (the interpreter, plans without numba, runtime.tiering's
# tier 0) and numba's generated kernel (runtime/kernelgen.py with the scalar expressions of runtime/op_lowering.py,
# which implements gelu and its gradient in the tanh form only, and a softmax only as the
# last instruction, over the last axis). A program read from IR is checked against this table,
# so one the kernel generator would compile differently is rejected when it is read.
_ANY = None
PROGRAM_OPS = {
    **{op: {} for op in ("add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "rsqrt",
                         "tanh", "sigmoid", "abs", "maximum", "minimum", "relu", "where", "lt",
                         "le", "gt", "ge", "eq", "ne", "logical_not", "logical_and",
                         "logical_or", "trunc", "isinf")},
    "gelu": {"approximate": (GELU_TANH,)}, "gelu_grad": {"approximate": (GELU_TANH,)},
    "cast": {"dtype": _ANY}, "softmax": {"axis": _ANY},
}
PROGRAM_DTYPES = (np.dtype("float32"), np.dtype("float64"), np.dtype("bool"))


def operand_kind(operand, shape) -> str | None:
    """How an operand of shape `operand` is read by a fused kernel's loop over `shape` viewed
    as (rows, last axis): 'full', 'scalar', 'row', 'col', 'block' or None (not readable)."""
    if len(operand) > len(shape):
        return None
    padded = (1,) * (len(shape) - len(operand)) + tuple(operand)
    if padded == tuple(shape):
        return "full"
    if all(d == 1 for d in padded):
        return "scalar"
    if all(d == 1 for d in padded[:-1]) and padded[-1] == shape[-1]:
        return "row"
    if padded[-1] == 1 and padded[:-1] == tuple(shape[:-1]):
        return "col"
    if len(shape) >= 3 and all(d == 1 for d in padded[:-2]) and padded[-2:] == shape[-2:]:
        return "block"  # the same matrix for every leading index (an attention mask)
    return None


def _check_results(results, instructions):
    check(isinstance(results, tuple) and len(results) >= 2
          and all(isinstance(k, int) for k in results),
          f"fused results must be two or more instruction numbers, got {results!r}")
    check(len(set(results)) == len(results), f"fused results {results} name one value twice")
    for k in results:
        check(0 <= k < len(instructions), f"fused results: no instruction v{k}")
    check(all(op != "softmax" for op, _, _ in instructions),
          "a fused node with several results cannot end in a softmax")


def _fused_infer(types, program, results=None):
    check(isinstance(program, str), "program must be a string")
    instructions = parse_program(program)
    if results is not None:
        _check_results(results, instructions)
    for k, (op, _, attrs) in enumerate(instructions):
        where = f"fused program, instruction {k} ({op})"
        check(op in PROGRAM_OPS, f"{where}: {op} cannot be part of a fused kernel; allowed: "
                                 f"{', '.join(sorted(PROGRAM_OPS))}")
        allowed = PROGRAM_OPS[op]
        check(set(attrs) == set(allowed), f"{where}: takes attributes "
                                          f"{sorted(allowed) or 'none'}, got {sorted(attrs)}")
        for key, values in allowed.items():
            if values is not _ANY:
                check(attrs[key] in values, f"{where}: {key}={attrs[key]} is not supported by "
                                            f"the fused kernels (only {', '.join(values)})")
        check(op != "softmax" or k == len(instructions) - 1,
              f"{where}: softmax may only be the last instruction")
    for i, t in enumerate(types):
        check(t.dtype in PROGRAM_DTYPES, f"fused operand a{i} is {t.dtype}; fused kernels take "
                                         "float32, float64 and bool")

    def step(op, ts, attrs):
        t = get_op(op).infer(ts, **attrs)
        check(t.dtype in PROGRAM_DTYPES, f"fused program: {op} gives {t.dtype}; fused kernels "
                                         "compute float32, float64 and bool")
        if op == "softmax":
            check(attrs["axis"] == t.ndim - 1, f"fused program: softmax over axis "
                                               f"{attrs['axis']}; fused kernels normalise the "
                                               f"last axis ({t.ndim - 1}) only")
        return t
    out = _run_program(types, program, step, results)
    outs = (out,) if results is None else out
    for k, t in enumerate(outs):
        check(t.ndim >= 1 and t.size > 0, f"a fused kernel loops over rows and a last axis: "
                                          f"its result cannot be {t}")
        check(t.shape == outs[0].shape, f"fused results have one shape (one loop writes "
                                        f"them): result {k} is {t}, result 0 {outs[0]}")
    for i, t in enumerate(types):
        check(operand_kind(t.shape, outs[0].shape) is not None,
              f"fused operand a{i} of shape {t.shape} cannot be read elementwise against the "
              f"result's {outs[0].shape} (as the whole, a row, a column, a scalar or a block)")
    return out if results is None else TupleType(outs)


def _fused_flops(types, out, program, results=None):
    total = []

    def step(op, ts, attrs):
        t = get_op(op).infer(ts, **attrs)
        fl = get_op(op).flops
        total.append(fl(ts, t, **attrs) if fl else t.size)
        return t
    _run_program(types, program, step)
    return float(sum(total))


@defop("fused", _fused_infer, flops=_fused_flops)
def fused(*operands, program, results=None):
    """The members' own numpy definitions, one after another (the compiled plan runs the
    cluster as one generated kernel instead). Not differentiable: fusion runs after autodiff."""
    return _run_program(operands, program,
                        lambda op, xs, attrs: np.asarray(get_op(op).impl(*xs, **attrs)),
                        results)


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import loop_over_batch

    loop_over_batch("fused", "made by elementwise fusion after tracing, so a traced function "
                             "holds one only when read back from dumped IR")


_register_batching()
