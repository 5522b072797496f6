"""Composite primitives: one numpy kernel for what would otherwise be many small ops (GELU's
derivative, softmax's gradient, LayerNorm and its input and weight gradients, BatchNorm's
normalisation, its input gradient and its batch statistics).

Each has a *reference* definition built from simpler primitives. Its gradient rule is derived
from that reference by autodiff (`DerivedVJP`: passes.autodiff on graphs, runtime.eager on a
tape), so second derivatives stay exact without a hand-written rule, and the op table's
finite-difference checks cover it.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, holds_when_bound, is_float
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
    mu /= n
    centred = x - mu
    var = np.einsum("...i,...i->...", centred, centred)[..., None]
    var /= n
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


def _sum_over(x, axes):
    """F.sum(x, axes), or x itself where there are no axes (a 1-d LayerNorm input), as
    unbroadcast does: simplify keeps a float sum over no axes (numpy's +0.0 turns -0.0 into
    +0.0), which here would only be a full-size copy in the plan."""
    return F.sum(x, axes) if axes else x


def _vjp_layer_norm(ctx, g):
    x, w, b = ctx.inputs
    eps = ctx.attrs["eps"]
    dx = F.layer_norm_grad(x, w, g, eps) if ctx.needs[0] else None
    dw = db = None
    if ctx.needs[1]:
        dw = F.layer_norm_wgrad(x, g, eps)
    if ctx.needs[2]:
        db = _sum_over(g, _lead_axes(x))
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
    a /= n
    b = np.einsum("...i,...i->...", gw, xhat)[..., None]
    b /= n
    xhat *= b
    np.subtract(gw, xhat, out=gw)
    gw -= a
    gw *= rstd
    return gw


# ---- LayerNorm's weight gradient ------------------------------------------------------------
def _layer_norm_wgrad_reference(x, g, eps):
    n = x.shape[-1]
    xhat = F.layer_norm(x, F.ones(n, x.dtype), F.zeros(n, x.dtype), eps)
    return _sum_over(g * xhat, _lead_axes(x))


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


# ---- BatchNorm ------------------------------------------------------------------------------
# x is (N, C, *spatial): statistics per channel (axis 1) over every other axis, the weight and
# bias per channel; the running statistics stay with graphc/batch_norm.py
def _channel_axes(x):
    return (0,) + tuple(range(2, len(x.shape)))


def _channel_centred(x):
    """x as (N, C, M) less each channel's mean, the mean (1, C, 1) and the count N * M."""
    x3 = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))  # (no -1: N may be 0)
    n = max(x3.shape[0] * x3.shape[2], 1)  # a channel of no elements: nothing to divide
    mu = np.add.reduce(x3, axis=(0, 2), keepdims=True)
    mu /= n
    return x3 - mu, mu, n


def _channel_var(centred, n):
    var = np.einsum("ncm,ncm->c", centred, centred)[None, :, None]
    var /= n
    return var


def _channel_moments(x, eps):
    """x as (N, C, M) less its channel means, and rstd (1, C, 1) of each channel."""
    centred, _, n = _channel_centred(x)
    var = _channel_var(centred, n)
    var += eps
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    return centred, rstd


def _per_channel(w):
    """A (C,) weight against x (N, C, M)."""
    return w.reshape(1, -1, 1)


def _check_channel_operands(x, operands, names):
    check(x.ndim >= 2, f"needs (N, C, ...) operands, got shape {x.shape}")
    for t, name in zip(operands, names):
        check(t.shape == (x.shape[1],), f"{name} must have shape ({x.shape[1]},), got {t.shape}")


def _batch_norm_infer(types, eps):
    x = _same_float(types, 3)
    _check_channel_operands(x, types[1:], ("weight", "bias"))
    # torch's check wherever the batch's statistics are used: one value's variance is 0 and
    # the output the bias whatever x holds (its running variance n / (n - 1) a NaN). With a
    # symbolic batch it holds when traced and is checked again on each call's sizes
    # (ir.specialize re-runs this rule), which raises there instead of computing a NaN
    count = math.prod([x.shape[0], *x.shape[2:]])
    check(holds_when_bound(lambda: count == 0 or count >= 2),
          f"expected more than 1 value per channel when training, got input of shape "
          f"{x.shape}")
    return x


def _vjp_batch_norm(ctx, g):
    x, w, b = ctx.inputs
    eps = ctx.attrs["eps"]
    dx = F.batch_norm_grad(x, w, g, eps) if ctx.needs[0] else None
    dw = db = None
    if ctx.needs[1] or ctx.needs[2]:
        sums = F.batch_norm_wgrad(x, g, eps)  # one pass for both
        dw = sums[0] if ctx.needs[1] else None
        db = sums[1] if ctx.needs[2] else None
    return [dx, dw, db]


@defop("batch_norm", _batch_norm_infer, vjp=_vjp_batch_norm, arity=3,
       flops=lambda types, out, **_: 8 * out.size)
def batch_norm(x, w, b, eps):
    """(x - mean) / sqrt(var + eps) * w + b per channel (axis 1), the moments over the batch
    and every further axis (biased variance, as torch's BatchNorm in training)."""
    centred, rstd = _channel_moments(x, eps)
    centred *= rstd
    centred *= _per_channel(w)
    centred += _per_channel(b)
    return centred.reshape(x.shape)


def _batch_norm_xhat(x, eps):
    axes = _channel_axes(x)
    mu = F.mean(x, axes, keepdims=True)
    centred = x - mu
    rstd = F.rsqrt(F.mean(centred * centred, axes, keepdims=True) + eps)
    return centred * rstd, rstd


def _channel_shape(x):
    return (1, F._shape(x)[1]) + (1,) * (F._ndim(x) - 2)


def _batch_norm_grad_reference(x, w, g, eps):
    axes = _channel_axes(x)
    xhat, rstd = _batch_norm_xhat(x, eps)
    gw = g * F.reshape(w, _channel_shape(x))
    a = F.mean(gw, axes, keepdims=True)
    b = F.mean(gw * xhat, axes, keepdims=True)
    return rstd * (gw - a - xhat * b)


def _batch_norm_grad_infer(types, eps):
    x, w, g = types
    _same_float(types, 3)
    _check_channel_operands(x, [w], ("weight",))
    check(g.shape == x.shape, "g and x differ in shape")
    return x


@defop("batch_norm_grad", _batch_norm_grad_infer, vjp=DerivedVJP(_batch_norm_grad_reference),
       arity=3, flops=lambda types, out, **_: 12 * out.size)
def batch_norm_grad(x, w, g, eps):
    """d(batch_norm)/dx applied to g: w * rstd * (g - mean(g) - xhat * mean(g * xhat)), the
    means per channel (w is constant over each channel's values)."""
    xhat, rstd = _channel_moments(x, eps)
    xhat *= rstd
    g3 = g.reshape(xhat.shape)
    n = max(xhat.shape[0] * xhat.shape[2], 1)
    a = np.add.reduce(g3, axis=(0, 2), keepdims=True)
    a /= n
    b = np.einsum("ncm,ncm->c", g3, xhat)[None, :, None]
    b /= n
    xhat *= b
    out = g3 - xhat
    out -= a
    rstd *= _per_channel(w)
    out *= rstd
    return out.reshape(x.shape)


def _batch_norm_wgrad_reference(x, g, eps):
    axes = _channel_axes(x)
    xhat, _ = _batch_norm_xhat(x, eps)
    return F.stack([F.sum(g * xhat, axes), F.sum(g, axes)])


def _batch_norm_wgrad_infer(types, eps):
    x, g = types
    _same_float(types, 2)
    _check_channel_operands(x, [], ())
    check(g.shape == x.shape, "g and x differ in shape")
    return TensorType((2, x.shape[1]), x.dtype)


@defop("batch_norm_wgrad", _batch_norm_wgrad_infer,
       vjp=DerivedVJP(_batch_norm_wgrad_reference), arity=2,
       flops=lambda types, out, **_: 6 * types[0].size)
def batch_norm_wgrad(x, g, eps):
    """(2, C): BatchNorm's weight gradient (g * xhat summed per channel) and its bias's (g
    summed per channel), without writing xhat out and reading it back."""
    centred, rstd = _channel_moments(x, eps)
    g3 = g.reshape(centred.shape)
    dw = np.einsum("ncm,ncm->c", g3, centred)
    dw *= rstd.reshape(-1)
    return np.stack([dw, np.add.reduce(g3, axis=(0, 2))])


def _batch_moments_reference(x):
    axes = _channel_axes(x)
    mu = F.mean(x, axes, keepdims=True)
    centred = x - mu
    var = F.mean(centred * centred, axes)
    return F.stack([F.reshape(mu, (F._shape(x)[1],)), var])


def _batch_moments_infer(types):
    x = _same_float(types, 1)
    _check_channel_operands(x, [], ())
    return TensorType((2, x.shape[1]), x.dtype)


@defop("batch_moments", _batch_moments_infer, vjp=DerivedVJP(_batch_moments_reference),
       arity=1, flops=lambda types, out, **_: 4 * types[0].size)
def batch_moments(x):
    """(2, C): each channel's mean and biased variance over every axis but 1 (BatchNorm's
    batch statistics, for its running estimates)."""
    centred, mu, n = _channel_centred(x)
    c = x.shape[1]
    return np.concatenate([mu.reshape(1, c), _channel_var(centred, n).reshape(1, c)])


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import batch_all, defbatch, move_axis, same_shape, with_rank

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
        return _sum_over(F.mul(g, xhat), tuple(range(1, F._ndim(x) - 1)))

    def channels_of_examples(x):
        """Batched x (B, N, C, ...) as (N, B * C, ...): each example's channels apart."""
        shape = F._shape(x)
        return F.reshape(move_axis(x, 0, 1), (shape[1], shape[0] * shape[2]) + shape[3:])

    def examples_of_channels(y, shape):
        """channels_of_examples undone: (N, B * C, ...) back to `shape` (B, N, C, ...)."""
        return move_axis(F.reshape(y, (shape[1], shape[0]) + shape[2:]), 1, 0)

    def tile(w, size):
        """One example's (C,) weight for the (N, B * C, ...) channels of every example."""
        return F.reshape(F.broadcast_to(w, (size,) + F._shape(w)), (size * F._shape(w)[0],))

    @defbatch("batch_norm")
    def _batch_norm_rule(args, batched, size, eps):
        x, w, b = args
        (x,) = batch_all([x], batched[:1], size)
        shape = F._shape(x)
        if not (batched[1] or batched[2]):  # the usual case: one weight and bias
            y = F.batch_norm(channels_of_examples(x), tile(w, size), tile(b, size), eps)
            return examples_of_channels(y, shape)
        xhat = examples_of_channels(F.batch_norm(channels_of_examples(x), eps=eps), shape)
        per = (1, shape[2]) + (1,) * (len(shape) - 3)  # one example's channel axis
        w, b = [F.reshape(v, (size,) + per if is_batched else per)
                for v, is_batched in zip((w, b), batched[1:])]
        return F.add(F.mul(xhat, w), b)

    @defbatch("batch_norm_grad")
    def _batch_norm_grad_rule(args, batched, size, eps):
        x, w, g = args
        x, g = batch_all([x, g], [batched[0], batched[2]], size)
        shape = F._shape(x)
        w = F.reshape(w, (size * shape[2],)) if batched[1] else tile(w, size)
        dx = F.batch_norm_grad(channels_of_examples(x), w, channels_of_examples(g), eps)
        return examples_of_channels(dx, shape)

    @defbatch("batch_norm_wgrad")
    def _batch_norm_wgrad_rule(args, batched, size, eps):
        x, g = batch_all(args, batched, size)
        shape = F._shape(x)
        sums = F.batch_norm_wgrad(channels_of_examples(x), channels_of_examples(g), eps)
        return move_axis(F.reshape(sums, (2, shape[0], shape[2])), 1, 0)

    @defbatch("batch_moments")
    def _batch_moments_rule(args, batched, size):
        (x,) = args
        shape = F._shape(x)
        moments = F.batch_moments(channels_of_examples(x))  # (2, B * C)
        return move_axis(F.reshape(moments, (2, shape[0], shape[2])), 1, 0)


_register_batching()
