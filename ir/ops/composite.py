"""Composite primitives: one numpy kernel for what would otherwise be many small ops (GELU's
derivative, softmax's gradient, LayerNorm and its input and weight gradients).

Each has a *reference* definition built from simpler primitives. Its gradient rule is derived
from that reference by autodiff (`DerivedVJP`: passes.autodiff on graphs, runtime.eager on a
tape), so second derivatives stay exact without a hand-written rule, and the op table's
finite-difference checks cover it.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, is_float
from . import api as F
from .elementwise import GELU_TANH_C as _C
from .elementwise import GELU_TANH_K as _K
from .elementwise import erf, is_tanh_approximation
from .registry import DerivedVJP, check, defop


def _same_float(types, n):
    check(len(types) == n, f"takes {n} operands")
    first = types[0]
    check(is_float(first.dtype), f"needs floating-point operands, got {first.dtype}")
    for t in types[1:]:
        check(t.dtype == first.dtype, "operands must have one dtype")
    return first


# ---- GELU derivative ------------------------------------------------------------------------
def gelu_derivative_reference(x, approximate):
    if is_tanh_approximation(approximate):
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
       flops=lambda types, out, **_: 20 * out.size)
def gelu_grad(x, g, approximate):
    """g * GELU'(x) in a few in-place passes."""
    if not is_tanh_approximation(approximate):
        cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
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


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import batch_all, defbatch, same_shape, with_rank

    defbatch("gelu_grad")(same_shape("gelu_grad"))
    defbatch("softmax_grad")(same_shape("softmax_grad"))

    def per_example(v, batched, rank):
        """A weight or bias of one example, or a batch of them, against (B, ..., n) values."""
        return with_rank(v, rank) if batched else v

    @defbatch("layer_norm")
    def _layer_norm_rule(args, batched, size, eps):
        x, w, b = args
        if not (batched[1] or batched[2]):  # the usual case: one weight and bias, a batch of x
            return F.layer_norm(x, w, b, eps)
        (x,) = batch_all([x], batched[:1], size)
        n = F._shape(x)[-1]
        xhat = F.layer_norm(x, F.ones(n, F._dtype(x)), F.zeros(n, F._dtype(x)), eps)
        rank = F._ndim(x) - 1
        scaled = F.mul(xhat, per_example(w, batched[1], rank))
        return F.add(scaled, per_example(b, batched[2], rank))

    @defbatch("layer_norm_grad")
    def _layer_norm_grad_rule(args, batched, size, eps):
        x, w, g = args
        x, g = batch_all([x, g], [batched[0], batched[2]], size)
        if batched[1]:  # the weight enters only through g * w
            g = F.mul(g, with_rank(w, F._ndim(g) - 1))
            w = F.ones(F._shape(g)[-1], F._dtype(g))
        return F.layer_norm_grad(x, w, g, eps)

    @defbatch("layer_norm_wgrad")
    def _layer_norm_wgrad_rule(args, batched, size, eps):
        # the sum over each example's leading axes, not over the batch
        x, g = batch_all(args, batched, size)
        n = F._shape(x)[-1]
        xhat = F.layer_norm(x, F.ones(n, F._dtype(x)), F.zeros(n, F._dtype(x)), eps)
        return F.sum(F.mul(g, xhat), tuple(range(1, F._ndim(x) - 1)))


_register_batching()
