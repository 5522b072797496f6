"""Elementwise ops: numpy broadcasting, one dtype per op, gradients reduced back to each shape."""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, broadcast_shapes, is_float
from . import api as F
from .registry import check, defop


def _special():
    """scipy.special, imported at the first call: it takes ~0.2 s to import, a fifth of
    `graphc --help`, and only the exact GELU, erf and erfinv use it."""
    from scipy import special
    return special


def erf(x):
    """scipy's erf (numpy has none)."""
    return _special().erf(x)


def _flops_per_elem(k):
    return lambda types, out, **_: k * out.size


# ---- type rules -----------------------------------------------------------------------------
def same_dtype_broadcast(types):
    dtypes = {t.dtype for t in types}
    check(len(dtypes) == 1, "operands must have one dtype, got " + " and ".join(
        str(t.dtype) for t in types) + " (cast one of them with .astype)")
    shape = broadcast_shapes(*(t.shape for t in types))
    check(shape is not None, "shapes cannot be broadcast together")
    return shape, types[0].dtype


def arith(types):
    shape, dtype = same_dtype_broadcast(types)
    check(dtype != np.dtype("bool"), "arithmetic on bool tensors; cast to a number type first")
    return TensorType(shape, dtype)


def float_arith(types):
    out = arith(types)
    check(is_float(out.dtype), f"needs floating-point operands, got {out.dtype}")
    return out


def compare(types):
    shape, _ = same_dtype_broadcast(types)
    return TensorType(shape, "bool")


def unary_float(types):
    (t,) = types
    check(is_float(t.dtype), f"needs a floating-point operand, got {t.dtype}")
    return t


def unary_number(types):
    (t,) = types
    check(t.dtype != np.dtype("bool"), "needs a numeric operand, got bool")
    return t


# ---- binary arithmetic ------------------------------------------------------------------------
def _vjp_add(ctx, g):
    a, b = ctx.inputs
    return [F.unbroadcast(g, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(g, b.shape) if ctx.needs[1] else None]


def _vjp_sub(ctx, g):
    a, b = ctx.inputs
    return [F.unbroadcast(g, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(-g, b.shape) if ctx.needs[1] else None]


def _vjp_mul(ctx, g):
    a, b = ctx.inputs
    return [F.unbroadcast(g * b, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(g * a, b.shape) if ctx.needs[1] else None]


def _vjp_div(ctx, g):
    a, b = ctx.inputs
    # PyTorch's rules (FunctionsManual.cpp div_tensor_self_backward / _other_backward), in
    # its order, so its values bit for bit, each op rounded to the dtype (float16 too):
    # d(a/b)/db = -g * ((a / b) / b), out / b first. (-g * out) / b overflowed in g * out
    # where the gradient is finite, -(g / b) * out in g / b, or underflowed there to 0 or a
    # float16 subnormal; out / b overflows where a / b**2 is past the dtype's range, where
    # PyTorch's gradient is infinite too (NaN for g = 0).
    return [F.unbroadcast(g / b, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(-g * (ctx.out / b), b.shape) if ctx.needs[1] else None]


def _known_nonzero(x) -> bool:
    """Whether x is a constant of the graph with no zero in it (x ** 2.0, say)."""
    return getattr(x, "op", None) == "constant" and bool(np.all(x.attrs["value"] != 0))


def _vjp_pow(ctx, g):
    a, b = ctx.inputs
    ga = gb = None
    if ctx.needs[0]:
        # b * a**(b-1) is 0 * inf = NaN at a = 0, b = 0, where a**0 is the constant 1: its
        # derivative is 0 there (as PyTorch's and JAX's)
        slope = b * F.pow(a, b - 1)
        ga = F.unbroadcast(g * (slope if _known_nonzero(b) else F.where(b == 0, 0.0, slope)),
                           a.shape)
    if ctx.needs[1]:
        # a**b * log(a) is 0 * -inf = NaN at a = 0: log of 1 there, so the derivative is 0
        # (0**b is 0 for every b > 0), as JAX's (PyTorch's for b >= 0)
        gb = F.unbroadcast(g * ctx.out * F.log(F.where(a == 0, 1.0, a)), b.shape)
    return [ga, gb]


def _vjp_maximum(ctx, g):
    a, b = ctx.inputs
    # a tie goes to the first operand, so the two parts still sum to g; a NaN on either
    # side (the result is NaN) sends g to both, as PyTorch's: neither comparison holds there
    return [F.unbroadcast(F.where(F.less(a, b), 0.0, g), a.shape) if ctx.needs[0] else None,
            F.unbroadcast(F.where(F.greater_equal(a, b), 0.0, g), b.shape)
            if ctx.needs[1] else None]


def _vjp_minimum(ctx, g):
    a, b = ctx.inputs
    return [F.unbroadcast(F.where(F.greater(a, b), 0.0, g), a.shape) if ctx.needs[0] else None,
            F.unbroadcast(F.where(F.less_equal(a, b), 0.0, g), b.shape)
            if ctx.needs[1] else None]


defop("add", arith, vjp=_vjp_add, arity=2, flops=_flops_per_elem(1))(np.add)
defop("sub", arith, vjp=_vjp_sub, arity=2, flops=_flops_per_elem(1))(np.subtract)
defop("mul", arith, vjp=_vjp_mul, arity=2, flops=_flops_per_elem(1))(np.multiply)
defop("div", float_arith, vjp=_vjp_div, arity=2,
      flops=_flops_per_elem(1))(np.divide)
defop("pow", float_arith, vjp=_vjp_pow, arity=2,
      flops=_flops_per_elem(10))(np.power)
defop("maximum", arith, vjp=_vjp_maximum, arity=2,
      flops=_flops_per_elem(1))(np.maximum)
defop("minimum", arith, vjp=_vjp_minimum, arity=2,
      flops=_flops_per_elem(1))(np.minimum)

for _name, _fn in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    defop(_name, compare, arity=2)(_fn)


def _logical(types):
    shape, dtype = same_dtype_broadcast(types)
    check(dtype == np.dtype("bool"), f"needs bool operands, got {dtype}")
    return TensorType(shape, dtype)


defop("logical_and", _logical, arity=2)(np.logical_and)
defop("logical_or", _logical, arity=2)(np.logical_or)


@defop("logical_not", lambda types: _logical(types), arity=1)
def _logical_not(x):
    return np.logical_not(x)


# ---- unary ----------------------------------------------------------------------------------
def _unary(name, infer, impl, vjp, flops=1):
    defop(name, infer, vjp=vjp, arity=1, flops=_flops_per_elem(flops))(impl)


def _rsqrt(x):
    return 1.0 / np.sqrt(x)


def _sigmoid(x):
    # e = exp(-|x|) in [0, 1] never overflows; 1 / (1 + e) for x >= 0 and e / (1 + e) below
    # keep every digit of a tiny sigmoid of a very negative x, as torch's, where the tanh
    # form 0.5 * tanh(x / 2) + 0.5 cancels (relative error 1.7e-4 at x = -30)
    e = np.exp(-np.abs(x))
    return (np.where(x >= 0, 1.0, e) / (1.0 + e)).astype(x.dtype, copy=False)


def _relu(x):
    return np.maximum(x, 0)


_unary("neg", unary_number, np.negative, lambda ctx, g: [-g])
_unary("exp", unary_float, np.exp, lambda ctx, g: [g * ctx.out], 4)
_unary("log", unary_float, np.log, lambda ctx, g: [g / ctx.inputs[0]], 4)
_unary("sqrt", unary_float, np.sqrt, lambda ctx, g: [g * 0.5 / ctx.out], 4)
_unary("rsqrt", unary_float, _rsqrt, lambda ctx, g: [g * -0.5 * ctx.out * ctx.out * ctx.out], 5)
_unary("tanh", unary_float, np.tanh, lambda ctx, g: [g * (1.0 - ctx.out * ctx.out)], 6)
_unary("sin", unary_float, np.sin, lambda ctx, g: [g * F.cos(ctx.inputs[0])], 6)
_unary("cos", unary_float, np.cos, lambda ctx, g: [-g * F.sin(ctx.inputs[0])], 6)
_unary("sigmoid", unary_float, _sigmoid, lambda ctx, g: [g * ctx.out * (1.0 - ctx.out)], 6)
# torch's threshold_backward: 0 where x <= 0, so the gradient passes at NaN (as relu's NaN)
_unary("relu", unary_number, _relu, lambda ctx, g: [F.where(ctx.inputs[0] <= 0, 0, g)])
_unary("abs", unary_number, np.abs, lambda ctx, g: [g * F.sign(ctx.inputs[0])])
_unary("sign", unary_number, np.sign, lambda ctx, g: [F.zeros_like(g)])
_unary("erf", unary_float, lambda x: erf(x).astype(x.dtype, copy=False),
       lambda ctx, g: [g * (2.0 / math.sqrt(math.pi)) * F.exp(-ctx.inputs[0] * ctx.inputs[0])], 10)
# (gc.random.truncated_normal's inverse CDF): d erfinv(x)/dx = sqrt(pi)/2 exp(erfinv(x)^2)
_unary("erfinv", unary_float, lambda x: _special().erfinv(x).astype(x.dtype, copy=False),
       lambda ctx, g: [g * (math.sqrt(math.pi) / 2) * F.exp(ctx.out * ctx.out)], 20)
# accurate near 0 where log(1 + x) and exp(x) - 1 lose every digit of a small x
_unary("log1p", unary_float, np.log1p, lambda ctx, g: [g / (1.0 + ctx.inputs[0])], 4)
# (expm1's derivative exp(x), not out + 1: for x below about -30 that rounds to 0 or keeps
# only a few digits, which elu, celu and selu, built on expm1, inherited; torch's are exact)
_unary("expm1", unary_float, np.expm1, lambda ctx, g: [g * F.exp(ctx.inputs[0])], 4)


def _softplus(x):
    return np.logaddexp(x, np.zeros((), x.dtype))  # log(1 + e^x) without overflow


_unary("softplus", unary_float, _softplus, lambda ctx, g: [g * F.sigmoid(ctx.inputs[0])], 8)


def _zero_gradient(ctx, g):  # a step function: zero almost everywhere, as JAX's and PyTorch's
    return [F.zeros_like(g)]


_unary("floor", unary_float, np.floor, _zero_gradient)
_unary("ceil", unary_float, np.ceil, _zero_gradient)
_unary("round", unary_float, np.round, _zero_gradient)  # half to even, as numpy, JAX, PyTorch


def _number_test(types):
    (t,) = types
    return TensorType(t.shape, "bool")


defop("isnan", _number_test, arity=1)(np.isnan)
defop("isfinite", _number_test, arity=1)(np.isfinite)
defop("isinf", _number_test, arity=1)(np.isinf)


# ---- numpy's further math functions -------------------------------------------------------
# Primitives, not composites: np.log2 and np.exp2 are exact at powers of two (log(x) / ln 2
# misses 4 of 2**-20 .. 2**19 in float32), np.tan, np.sinh, np.hypot and np.logaddexp keep
# every digit where sin / cos, exp differences and sqrt(x^2 + y^2) lose some or overflow;
# each gives numpy's own values. Gradients as PyTorch's and JAX's formulas.
def _unary_x(rule):
    """A unary gradient rule written in terms of (g, x)."""
    return lambda ctx, g: [rule(g, ctx.inputs[0])]


_LN2, _LN10 = math.log(2.0), math.log(10.0)
_unary("tan", unary_float, np.tan, lambda ctx, g: [g * (1.0 + ctx.out * ctx.out)], 8)
_unary("arcsin", unary_float, np.arcsin, _unary_x(lambda g, x: g * F.rsqrt(1.0 - x * x)), 8)
_unary("arccos", unary_float, np.arccos, _unary_x(lambda g, x: -g * F.rsqrt(1.0 - x * x)), 8)
_unary("arctan", unary_float, np.arctan, _unary_x(lambda g, x: g / (1.0 + x * x)), 8)
_unary("sinh", unary_float, np.sinh, _unary_x(lambda g, x: g * F.cosh(x)), 8)
_unary("cosh", unary_float, np.cosh, _unary_x(lambda g, x: g * F.sinh(x)), 8)
_unary("arcsinh", unary_float, np.arcsinh, _unary_x(lambda g, x: g * F.rsqrt(x * x + 1.0)), 8)
# (x - 1)(x + 1), not x^2 - 1: exact near x = 1, where x^2 - 1 cancels
_unary("arccosh", unary_float, np.arccosh,
       _unary_x(lambda g, x: g * F.rsqrt((x - 1.0) * (x + 1.0))), 8)
_unary("arctanh", unary_float, np.arctanh,
       _unary_x(lambda g, x: g / ((1.0 - x) * (1.0 + x))), 8)
_unary("log2", unary_float, np.log2, _unary_x(lambda g, x: g / (x * _LN2)), 4)
_unary("log10", unary_float, np.log10, _unary_x(lambda g, x: g / (x * _LN10)), 4)
_unary("exp2", unary_float, np.exp2, lambda ctx, g: [g * ctx.out * _LN2], 4)
_unary("trunc", unary_float, np.trunc, _zero_gradient)  # toward zero: C's and numpy's


def _vjp_floor_divide(ctx, g):  # a step function in both operands, as JAX's
    a, b = ctx.inputs
    return [F.zeros_like(a) if ctx.needs[0] else None, F.zeros_like(b) if ctx.needs[1] else None]


def _vjp_remainder(ctx, g):
    # x - y * floor(x / y): d/dy = -floor(x / y), PyTorch's (its floor division is numpy's)
    a, b = ctx.inputs
    return [F.unbroadcast(g, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(-g * F.floor_divide(a, b), b.shape) if ctx.needs[1] else None]


def _vjp_fmod(ctx, g):
    # x - y * trunc(x / y): d/dy = -trunc(x / y), as PyTorch's and JAX's
    a, b = ctx.inputs
    return [F.unbroadcast(g, a.shape) if ctx.needs[0] else None,
            F.unbroadcast(-g * F.trunc(a / b), b.shape) if ctx.needs[1] else None]


def _vjp_arctan2(ctx, g):
    y, x = ctx.inputs
    # 0 where x^2 + y^2 is 0 (the origin, or squares that underflow), as PyTorch's, not
    # 0 / 0's NaN (JAX's); the zeros keep the signs of x and -y, as PyTorch's
    squares = x * x + y * y
    zero = F.equal(squares, 0.0)
    scale = F.where(zero, 0.0, g) / F.where(zero, 1.0, squares)
    return [F.unbroadcast(scale * x, y.shape) if ctx.needs[0] else None,
            F.unbroadcast(-scale * y, x.shape) if ctx.needs[1] else None]


def _vjp_logaddexp(ctx, g):
    # PyTorch's g / (1 + exp(other - x)), written g * sigmoid(x - other), not
    # g * exp(x - out): out's rounding error is an ulp of out, so exp(x - out) lost digits
    # as |x| grew (0.49989 instead of 0.5 at x = y = 1e4 in float32, 1.0 each once
    # x + log 2 rounds to x). Exact at infinities: an
    # operand at +inf beside a finite one or -inf takes all of g, the other none. Two +inf
    # take g each (PyTorch: NaN, from inf - inf); two -inf give NaN, as JAX's and PyTorch's,
    # and so does a NaN operand, to both (the value is NaN).
    a, b = ctx.inputs
    both_top = F.logical_and(F.equal(a, math.inf), F.equal(b, math.inf))

    def share(x, other):  # 1 / (1 + exp(other - x)) as a sigmoid, which never overflows:
        # the exp did beyond a gap of 88.7 in float32 (11.1 in float16), and a second
        # derivative through it was inf / inf
        return g * F.sigmoid(F.where(both_top, math.inf, x - other))
    return [F.unbroadcast(share(a, b), a.shape) if ctx.needs[0] else None,
            F.unbroadcast(share(b, a), b.shape) if ctx.needs[1] else None]


def _vjp_hypot(ctx, g):
    # g * (x / hypot(x, y)), as PyTorch's and JAX's; at the origin 0 (JAX's), not 0 / 0:
    # there x and y are 0 themselves. x / out first (at most 1), not g / out: for a
    # subnormal out that overflows to inf, and inf * x gave inf, inf * 0 NaN.
    a, b = ctx.inputs
    out = F.where(F.equal(ctx.out, 0.0), 1.0, ctx.out)
    return [F.unbroadcast(g * (a / out), a.shape) if ctx.needs[0] else None,
            F.unbroadcast(g * (b / out), b.shape) if ctx.needs[1] else None]


# floor_divide and remainder are numpy's (Python's): the quotient rounded down, the remainder
# with the divisor's sign; fmod is C's (the dividend's sign). Integer division by zero gives
# 0, with numpy's RuntimeWarning, as numpy (JAX gives XLA's values, PyTorch raises)
defop("floor_divide", arith, vjp=_vjp_floor_divide, arity=2,
      flops=_flops_per_elem(4))(np.floor_divide)
defop("remainder", arith, vjp=_vjp_remainder, arity=2,
      flops=_flops_per_elem(4))(np.remainder)
defop("fmod", arith, vjp=_vjp_fmod, arity=2, flops=_flops_per_elem(4))(np.fmod)
defop("arctan2", float_arith, vjp=_vjp_arctan2, arity=2,
      flops=_flops_per_elem(10))(np.arctan2)
defop("logaddexp", float_arith, vjp=_vjp_logaddexp, arity=2,
      flops=_flops_per_elem(10))(np.logaddexp)
defop("hypot", float_arith, vjp=_vjp_hypot, arity=2, flops=_flops_per_elem(4))(np.hypot)

# GELU's forms, named by its `approximate` attribute as in PyTorch: "tanh" (GPT-2's)
# 0.5 x (1 + tanh(C (x + K x^3))), or "none", the exact 0.5 x (1 + erf(x / sqrt 2)).
GELU_TANH = "tanh"
GELU_APPROXIMATIONS = (GELU_TANH, "none")
GELU_TANH_C = math.sqrt(2.0 / math.pi)
GELU_TANH_K = 0.044715
# products the kernels use, rounded once here (c*k and 3*c*k, in that order)
GELU_TANH_CK = GELU_TANH_C * GELU_TANH_K
GELU_TANH_3CK = 3 * GELU_TANH_C * GELU_TANH_K


def is_tanh_approximation(approximate: str) -> bool:
    """Whether a gelu/gelu_grad `approximate` attribute selects the tanh form."""
    return approximate == GELU_TANH


def _gelu_infer(types, approximate):
    if approximate not in GELU_APPROXIMATIONS:
        from .registry import TypeRuleError
        raise TypeRuleError(f"approximate must be 'tanh' or 'none', got {approximate!r}")
    return unary_float(types)


def _vjp_gelu(ctx, g):
    return [F.gelu_grad(ctx.inputs[0], g, ctx.attrs["approximate"])]


@defop("gelu", _gelu_infer, vjp=_vjp_gelu, arity=1,
       flops=_flops_per_elem(14))
def _gelu(x, approximate):
    tanh_form = is_tanh_approximation(approximate)
    if tanh_form and np.ndim(x) == 0:
        return np.asarray(0.5 * x * (1.0 + np.tanh(GELU_TANH_C * (x + GELU_TANH_K * x * x * x))))
    if tanh_form:
        inner = x * x
        inner *= GELU_TANH_K * x
        inner += x
        inner *= GELU_TANH_C
        np.tanh(inner, out=inner)
        inner += 1.0
        inner *= 0.5  # before x: (1 + t) * x overflows for |x| above max / 2
        inner *= x
        return inner
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def _where_infer(types):
    cond, a, b = types
    check(cond.dtype == np.dtype("bool"), f"condition must be bool, got {cond.dtype}")
    shape, dtype = same_dtype_broadcast([a, b])
    shape = broadcast_shapes(cond.shape, shape)
    check(shape is not None, "condition and values cannot be broadcast together")
    return TensorType(shape, dtype)


def _vjp_where(ctx, g):
    cond, a, b = ctx.inputs
    return [None,
            F.unbroadcast(F.where(cond, g, 0.0), a.shape) if ctx.needs[1] else None,
            F.unbroadcast(F.where(cond, 0.0, g), b.shape) if ctx.needs[2] else None]


defop("where", _where_infer, vjp=_vjp_where, arity=3)(np.where)


def _cast_infer(types, dtype):
    return TensorType(types[0].shape, dtype)


def _vjp_cast(ctx, g):
    (x,) = ctx.inputs
    return [F.cast(g, x.dtype) if is_float(x.dtype) else None]


@defop("cast", _cast_infer, vjp=_vjp_cast, arity=1)
def _cast(x, dtype):
    return x.astype(dtype)


def _stop_gradient(x):
    return x


defop("stop_gradient", lambda types: types[0], arity=1)(_stop_gradient)


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import broadcasting, defbatch

    for name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "le", "gt",
                 "ge", "eq", "ne", "logical_and", "logical_or", "logical_not", "neg", "exp",
                 "log", "sqrt", "rsqrt", "tanh", "sin", "cos", "sigmoid", "relu", "abs", "sign",
                 "erf", "gelu", "where", "cast", "stop_gradient", "log1p", "expm1", "softplus",
                 "floor", "ceil", "round", "isnan", "isfinite", "isinf", "tan", "arcsin",
                 "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "log2",
                 "log10", "exp2", "trunc", "floor_divide", "remainder", "fmod", "arctan2",
                 "logaddexp", "hypot", "erfinv"):
        defbatch(name)(broadcasting(name))


_register_batching()
