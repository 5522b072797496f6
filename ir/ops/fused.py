"""Fused primitives: one numpy kernel for what would otherwise be many small ops (GELU's
derivative, softmax's gradient, LayerNorm and its input gradient), and `fused`, the node that
elementwise fusion (passes/fusion.py) makes of a cluster.

Each has a *reference* definition built from simpler primitives. Its gradient rule is derived
from that reference by autodiff (`DerivedVJP`: passes.autodiff on graphs, runtime.eager on a
tape), so second derivatives stay exact without a hand-written rule, and the op table's
finite-difference checks cover it.
"""
from __future__ import annotations

import functools
import math
import re

import numpy as np
from scipy import special

from ..types import SHORT_NAMES, TensorType, as_dtype, is_float
from . import api as F
from .registry import DerivedVJP, check, defop, get_op

_C = math.sqrt(2.0 / math.pi)
_K = 0.044715


def _same_float(types, n):
    check(len(types) == n, f"takes {n} operands")
    first = types[0]
    check(is_float(first.dtype), f"needs floating-point operands, got {first.dtype}")
    for t in types[1:]:
        check(t.dtype == first.dtype, "operands must have one dtype")
    return first


# ---- GELU derivative ------------------------------------------------------------------------
def gelu_derivative_reference(x, approximate):
    if approximate == "tanh":
        t = F.tanh(_C * (x + _K * x * x * x))
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (_C * (1.0 + 3 * _K * x * x))
    cdf = 0.5 * (1.0 + F.erf(x * (1.0 / math.sqrt(2.0))))
    return cdf + x * F.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))


def _gelu_grad_reference(x, g, approximate):
    return g * gelu_derivative_reference(x, approximate)


def _gelu_grad_infer(types, approximate):
    x = _same_float(types, 2)
    check(types[1].shape == x.shape, f"x {x.shape} and g {types[1].shape} differ in shape")
    return x


@defop("gelu_grad", _gelu_grad_infer, vjp=DerivedVJP(_gelu_grad_reference), arity=2,
       elementwise=True, flops=lambda types, out, **_: 20 * out.size)
def gelu_grad(x, g, approximate):
    """g * GELU'(x) in a few in-place passes."""
    if approximate != "tanh":
        cdf = 0.5 * (1.0 + special.erf(x / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return (g * (cdf + x * pdf)).astype(x.dtype, copy=False)
    if np.ndim(x) == 0:
        return gelu_grad(np.reshape(x, 1), np.reshape(g, 1), approximate).reshape(())
    x2 = x * x
    slope = x2 * (3 * _K * _C)
    slope += _C                      # d(inner)/dx
    t = x2
    t *= _K
    t += 1.0
    t *= x
    t *= _C
    np.tanh(t, out=t)                # tanh(inner)
    out = t * t
    np.subtract(1.0, out, out=out)
    out *= x
    out *= slope
    t += 1.0
    out += t
    out *= 0.5
    out *= g
    return out


# ---- softmax gradient -----------------------------------------------------------------------
def _softmax_grad_reference(y, g, axis):
    return y * (g - F.sum(g * y, axis, keepdims=True))


def _softmax_grad_infer(types, axis):
    y = _same_float(types, 2)
    check(types[1].shape == y.shape, "y and g differ in shape")
    check(0 <= axis < y.ndim, f"axis {axis} out of range")
    return y


@defop("softmax_grad", _softmax_grad_infer, vjp=DerivedVJP(_softmax_grad_reference),
       arity=2, flops=lambda types, out, **_: 4 * out.size)
def softmax_grad(y, g, axis):
    out = g * y
    s = np.add.reduce(out, axis=axis, keepdims=True)
    np.subtract(g, s, out=out)
    out *= y
    return out


# ---- LayerNorm ------------------------------------------------------------------------------
def _moments(x, eps):
    n = max(x.shape[-1], 1)  # rows of no elements (PyTorch gives an empty result)
    mu = np.add.reduce(x, axis=-1, keepdims=True)
    mu *= 1.0 / n
    centred = x - mu
    var = np.einsum("...i,...i->...", centred, centred)[..., None]
    var *= 1.0 / n
    var += eps
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    return centred, rstd


def _layer_norm_infer(types, eps):
    x = _same_float(types, 3)
    check(x.ndim >= 1, "needs at least one axis")
    for t in types[1:]:
        check(t.shape == (x.shape[-1],), f"weight and bias must have shape ({x.shape[-1]},), "
                                         f"got {t.shape}")
    return x


def _lead_axes(x):
    return tuple(range(x.ndim - 1))


def _vjp_layer_norm(ctx, g):
    x, w, b = ctx.inputs
    eps = ctx.attrs["eps"]
    dx = F.layer_norm_grad(x, w, g, eps) if ctx.needs[0] else None
    dw = db = None
    if ctx.needs[1]:
        dw = F.layer_norm_wgrad(x, g, eps)
    if ctx.needs[2]:
        db = F.sum(g, _lead_axes(x))
    return [dx, dw, db]


@defop("layer_norm", _layer_norm_infer, vjp=_vjp_layer_norm, arity=3,
       flops=lambda types, out, **_: 8 * out.size)
def layer_norm(x, w, b, eps):
    """(x - mean) / sqrt(var + eps) * w + b over the last axis (biased variance)."""
    centred, rstd = _moments(x, eps)
    centred *= rstd
    centred *= w
    centred += b
    return centred


def _layer_norm_grad_reference(x, w, g, eps):
    mu = F.mean(x, -1, keepdims=True)
    centred = x - mu
    rstd = F.rsqrt(F.mean(centred * centred, -1, keepdims=True) + eps)
    xhat = centred * rstd
    gw = g * w
    a = F.mean(gw, -1, keepdims=True)
    b = F.mean(gw * xhat, -1, keepdims=True)
    return rstd * (gw - a - xhat * b)


def _layer_norm_grad_infer(types, eps):
    x, w, g = types
    _same_float(types, 3)
    check(w.shape == (x.shape[-1],), f"weight must have shape ({x.shape[-1]},)")
    check(g.shape == x.shape, "g and x differ in shape")
    return TensorType(x.shape, x.dtype)


@defop("layer_norm_grad", _layer_norm_grad_infer, vjp=DerivedVJP(_layer_norm_grad_reference),
       arity=3, flops=lambda types, out, **_: 12 * out.size)
def layer_norm_grad(x, w, g, eps):
    """d(layer_norm)/dx applied to g: rstd * (gw - mean(gw) - xhat * mean(gw * xhat))."""
    n = max(x.shape[-1], 1)
    xhat, rstd = _moments(x, eps)
    xhat *= rstd
    gw = g * w
    a = np.add.reduce(gw, axis=-1, keepdims=True)
    a *= 1.0 / n
    b = np.einsum("...i,...i->...", gw, xhat)[..., None]
    b *= 1.0 / n
    xhat *= b
    np.subtract(gw, xhat, out=gw)
    gw -= a
    gw *= rstd
    return gw


# ---- LayerNorm's weight gradient ------------------------------------------------------------
def _layer_norm_wgrad_reference(x, g, eps):
    n = x.shape[-1]
    xhat = F.layer_norm(x, F.ones(n, x.dtype), F.zeros(n, x.dtype), eps)
    return F.sum(g * xhat, _lead_axes(x))


def _layer_norm_wgrad_infer(types, eps):
    x, g = types
    _same_float(types, 2)
    check(x.ndim >= 1, "needs at least one axis")
    check(g.shape == x.shape, "g and x differ in shape")
    return TensorType((x.shape[-1],), x.dtype)


@defop("layer_norm_wgrad", _layer_norm_wgrad_infer,
       vjp=DerivedVJP(_layer_norm_wgrad_reference), arity=2,
       flops=lambda types, out, **_: 8 * types[0].size)
def layer_norm_wgrad(x, g, eps):
    """sum over the leading axes of g * (x - mean) / std: LayerNorm's weight gradient without
    writing the normalised x out and reading it back."""
    xhat, rstd = _moments(x, eps)
    xhat *= rstd
    xhat *= g
    # the rows counted out: reshape(-1, 0) cannot infer them for an empty last axis
    return np.add.reduce(xhat.reshape(math.prod(x.shape[:-1]), x.shape[-1]), axis=0)


# ---- fused elementwise clusters (made by passes/fusion.py) -------------------------------------
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


def _run_program(operands, program, step):
    values = []
    for op, args, attrs in parse_program(program):
        values.append(step(op, [operands[i] if kind == "a" else values[i] for kind, i in args],
                           attrs))
    return values[-1]


# What a program may hold: the ops, and the attribute values, that every backend computes
# alike - the numpy evaluation below (the interpreter, plans without numba, runtime.tiering's
# tier 0) and numba's generated kernel (runtime/kernelgen.py with passes.fusion.SCALAR_EXPR,
# which implements gelu and its gradient in the tanh form only, and a softmax only as the
# last instruction, over the last axis). A program read from IR is checked against this table,
# so one the kernel generator would compile differently is rejected when it is read.
_ANY = None
PROGRAM_OPS = {
    **{op: {} for op in ("add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "rsqrt",
                         "tanh", "abs", "maximum", "minimum", "relu", "where", "lt", "le",
                         "gt", "ge", "eq", "ne", "logical_not", "logical_and", "logical_or")},
    "gelu": {"approximate": ("tanh",)}, "gelu_grad": {"approximate": ("tanh",)},
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


def _fused_infer(types, program):
    check(isinstance(program, str), "program must be a string")
    instructions = parse_program(program)
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
    out = _run_program(types, program, step)
    check(out.ndim >= 1 and out.size > 0, f"a fused kernel loops over rows and a last axis: "
                                          f"its result cannot be {out}")
    for i, t in enumerate(types):
        check(operand_kind(t.shape, out.shape) is not None,
              f"fused operand a{i} of shape {t.shape} cannot be read elementwise against the "
              f"result's {out.shape} (as the whole, a row, a column, a scalar or a block)")
    return out


def _fused_flops(types, out, program):
    total = []

    def step(op, ts, attrs):
        t = get_op(op).infer(ts, **attrs)
        fl = get_op(op).flops
        total.append(fl(ts, t, **attrs) if fl else t.size)
        return t
    _run_program(types, program, step)
    return float(sum(total))


@defop("fused", _fused_infer, flops=_fused_flops)
def fused(*operands, program):
    """The members' own numpy definitions, one after another (the compiled plan runs the
    cluster as one generated kernel instead). Not differentiable: fusion runs after autodiff."""
    return _run_program(operands, program,
                        lambda op, xs, attrs: np.asarray(get_op(op).impl(*xs, **attrs)))
