"""Numerically stable softmax and log_softmax as primitives (one pass each in numpy)."""
from __future__ import annotations

import numpy as np

from . import api as F
from .elementwise import unary_float
from .registry import check, defop


def _axis_infer(types, axis):
    (t,) = types
    check(0 <= axis < t.ndim, f"axis {axis} out of range for a {t.ndim}-d operand")
    return unary_float(types)


def _vjp_softmax(ctx, g):
    return [F.softmax_grad(ctx.out, g, ctx.attrs["axis"])]


def _vjp_log_softmax(ctx, g):
    axis = ctx.attrs["axis"]
    return [g - F.exp(ctx.out) * F.sum(g, axis, keepdims=True)]


@defop("softmax", _axis_infer, vjp=_vjp_softmax, arity=1,
       flops=lambda types, out, **_: 5 * out.size)
def _softmax(x, axis):
    # initial=-inf: an empty axis gives an empty result, as in PyTorch (max has no identity)
    y = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    np.exp(y, out=y)
    y /= np.add.reduce(y, axis=axis, keepdims=True)
    return y


@defop("log_softmax", _axis_infer, vjp=_vjp_log_softmax, arity=1,
       flops=lambda types, out, **_: 5 * out.size)
def _log_softmax(x, axis):
    y = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    y -= np.log(np.add.reduce(np.exp(y), axis=axis, keepdims=True))
    return y


# ---- batching rules (graphc.vmap; ir/ops/batching.py) ----------------------------------------
def _register_batching():
    from .batching import defbatch
    from .registry import apply

    def along_axis(name):
        def rule(args, batched, size, axis):
            return apply(name, args[0], axis=axis + 1)
        return rule

    for name in ("softmax", "log_softmax"):
        defbatch(name)(along_axis(name))


_register_batching()
