"""Collectives over a named vmap axis: JAX's lax.psum, pmean, pmax and pmin inside
`gc.vmap(f, axis_name="i")` (graphc.vmap's psum...).

    %7:f32[4] = vmap_reduce %5 {reduce="sum", axis_name="i", axis_size=8}

is, for each example of the vmap that names the axis, the reduction of %5 over every example
of that axis (each example gets the same total). f is traced at one example's shapes, so the
node cannot compute that alone: the batching rule of the vmap naming the axis does, reducing
the batched value over its batch axis and broadcasting the result back (a vmap naming another
axis passes the node on, batched, to the vmap around it: nested vmaps). The rule runs
whether or not the operand is batched: a value every example shares reduces to
axis_size * x (sum) or x itself (mean, max, min), which is also the node's own evaluation,
so it is correct wherever it runs unbatched (eagerly, a closed-over value).

Gradient rules: each example's output reads every example's input, so the cotangent of a
sum is the sum of the cotangents (psum's transpose is psum, as JAX's), of a mean the mean;
a max or min sends the summed cotangent to the examples that hold the extreme, shared
equally among ties.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from ..types import is_float
from . import api as F
from .registry import apply, check, defop

REDUCTIONS = ("sum", "mean", "max", "min")
_BATCHING = threading.local()  # .names: the axis names of the vmaps batching now, innermost last


@contextmanager
def batching_axis(name):
    """The vmap whose graph is being batched names its axis `name` (None: it names none)."""
    stack = _BATCHING.__dict__.setdefault("names", [])
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def _batching_now():
    stack = getattr(_BATCHING, "names", None)
    return stack[-1] if stack else None


def _infer(types, reduce, axis_name, axis_size):
    (t,) = types
    check(reduce in REDUCTIONS, f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    check(isinstance(axis_name, str) and axis_name != "",
          f"axis_name must be a non-empty string, got {axis_name!r}")
    check(isinstance(axis_size, int) and not isinstance(axis_size, bool) and axis_size >= 0,
          f"axis_size must be an int >= 0, got {axis_size!r}")
    check(t.dtype != np.dtype("bool"), f"a {reduce} over a vmap axis of a bool tensor")
    check(reduce != "mean" or is_float(t.dtype),
          f"a mean over a vmap axis needs floating point, got {t.dtype}")
    return t


def _vjp(ctx, g):
    attrs = ctx.attrs
    if attrs["reduce"] in ("sum", "mean"):
        return [apply("vmap_reduce", g, **attrs)]
    x, out = ctx.inputs[0], ctx.out
    hit = F.cast(F.equal(x, out), F._dtype(g))
    share = apply("vmap_reduce", hit, **dict(attrs, reduce="sum"))
    return [hit * apply("vmap_reduce", g, **dict(attrs, reduce="sum")) / share]


@defop("vmap_reduce", _infer, vjp=_vjp, arity=1, flops=lambda types, out, **_: float(out.size))
def _vmap_reduce(x, reduce, axis_name, axis_size):
    # (the operand is the same in every example: the node left unbatched)
    if reduce == "sum":
        return np.multiply(x, axis_size, dtype=np.result_type(x)) if axis_size else \
            np.zeros_like(x)
    return np.array(x, copy=True)


def _register_batching():
    from .batching import defbatch

    @defbatch("vmap_reduce", per_element=True)
    def rule(args, batched, size, reduce, axis_name, axis_size):
        (x,), (is_batched,) = args, batched
        if axis_name != _batching_now():  # another vmap's axis: the node stays, batched
            return apply("vmap_reduce", x, reduce=reduce, axis_name=axis_name,
                         axis_size=axis_size), is_batched
        if not is_batched:  # every example's the same: resolved here, so that no vmap
            # around this one that names its axis alike reduces it again
            return (x * size if reduce == "sum" else x), False
        # the total, one value every example shares (unbatched, as JAX's rule leaves it:
        # out_axes=None may return it; it was broadcast back and so refused there)
        return {"sum": F.sum, "mean": F.mean, "max": F.max, "min": F.min}[reduce](x, 0), False


_register_batching()
