"""torch.nn.functional.interpolate for sequences, images and volumes: modes "nearest",
"nearest-exact", "linear" / "bilinear" / "trilinear", "bicubic" and "area", by `size` or
`scale_factor`, with torch's source-index rules (align_corners, a given scale_factor used as
1 / scale as torch does, unless recompute_scale_factor). Separable: each resized axis is one
gather of whole rows per tap (nearest 1, linear 2, cubic 4) and a blend with constant weights,
so the gradient is the gathers' scatter, and vmap and compile are those ops'. "area" is
torch's: adaptive average pooling to the output size."""
from __future__ import annotations

import math

import numpy as np

from . import api as F
from . import conv_extra as C
from ..types import Dim, is_float, is_int, is_real
from .api import _fail, _ndim, _shape

__all__ = ["interpolate"]

_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}
_CUBIC_A = -0.75  # torch's cubic convolution coefficient (aten's upsample_bicubic2d)


def _cubic_weights(t):
    """The 4 weights of x[i - 1 .. i + 2] at fraction t past i (aten's
    get_cubic_upsample_coefficients)."""
    a = _CUBIC_A

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _taps(size_in, size_out, scale_factor, align_corners, mode, spatial, ftype):
    """[(source index, weight or None)] for each output position along one axis, as torch
    computes them (aten's area_pixel_compute_source_index, in its opmath type `ftype`:
    float32 for a float32 or half x, as torch's kernels)."""
    out = np.arange(size_out, dtype=ftype)
    if mode in ("nearest", "nearest-exact"):
        if mode == "nearest" and spatial == 2 and size_out in (size_in, 2 * size_in):
            # torch's 2-d nearest (aten's nearest_idx) copies a kept axis and halves the
            # index of a doubled one, whatever scale_factor gave that size; its 1-d and 3-d
            # forwards do not
            return [(np.arange(size_out) // (size_out // size_in), None)]
        # torch's nearest modes compute in float32 whatever x's dtype
        scale = np.float32(1.0 / scale_factor if scale_factor else
                           np.float32(size_in) / np.float32(size_out))
        out = out.astype(np.float32) + np.float32(0.5 if mode == "nearest-exact" else 0.0)
        src = np.floor(out * scale).astype(np.int64)
        return [(np.minimum(src, size_in - 1), None)]
    if mode != "bicubic" and size_out == size_in:
        # torch's linear modes copy an axis whose size is kept, whatever scale_factor gave
        # that size (aten's compute_source_index_and_lambda)
        return [(np.arange(size_out), None)]
    if align_corners:
        scale = ftype((size_in - 1) / (size_out - 1)) if size_out > 1 else ftype(0)
        src = out * scale
    else:
        scale = ftype(1.0 / scale_factor) if scale_factor else \
            ftype(size_in) / ftype(size_out)
        # torch's kernels evaluate scale * (i + 0.5) - 0.5 as one fused multiply-add,
        # rounded once to ftype: the float64 value of ftype's scale, then rounded
        src = (np.float64(scale) * (out.astype(np.float64) + 0.5) - 0.5).astype(ftype)
        if mode != "bicubic":  # (the cubic kernel reads x[-1] clamped to x[0] instead)
            src = np.maximum(src, ftype(0))
    if mode == "bicubic":
        i0 = np.floor(src).astype(np.int64)
        weights = _cubic_weights(src - i0.astype(ftype))
        return [(np.clip(i0 - 1 + k, 0, size_in - 1), w) for k, w in enumerate(weights)]
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    w1 = np.clip(src - i0.astype(ftype), 0, 1)
    return [(i0, ftype(1) - w1), (np.minimum(i0 + 1, size_in - 1), w1)]


def _per_axis(value, spatial, kind):
    """value as one number per spatial axis that `kind` (is_int or is_real) takes, or None."""
    values = list(value) if isinstance(value, (tuple, list)) else [value] * spatial
    if len(values) != spatial or not all(kind(v) for v in values):
        return None
    return [int(v) if kind is is_int else float(v) for v in values]


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """torch.nn.functional.interpolate of x (N, C, L), (N, C, H, W) or (N, C, D, H, W): mode
    "nearest", "nearest-exact", "area", "linear" (3-d), "bilinear" (4-d), "bicubic" (4-d) or
    "trilinear" (5-d), to `size` (an int or one per spatial axis) or by `scale_factor` (a
    number or one per axis). align_corners only for the linear and cubic modes;
    recompute_scale_factor=True computes the output size from scale_factor, then resizes as
    if that size were given. antialias=True is not supported."""
    nd = _ndim(x)
    if nd not in (3, 4, 5):
        _fail(f"interpolate: x must be 3-d (N, C, L), 4-d (N, C, H, W) or 5-d (N, C, D, H, W), "
              f"got shape {tuple(_shape(x))}")
    for what, value in (("align_corners", align_corners), ("antialias", antialias),
                        ("recompute_scale_factor", recompute_scale_factor)):
        if value is not None:  # (None: torch's default, as False)
            F._flag("interpolate", what, value)
    spatial = nd - 2
    modes = ("nearest", "nearest-exact", "area", _LINEAR[nd]) + (("bicubic",) if nd == 4 else ())
    if mode not in modes:
        _fail(f"interpolate: mode {mode!r} for a {nd}-d input; use one of "
              f"{', '.join(map(repr, modes))}")
    if mode not in ("nearest", "nearest-exact") and not is_float(F._dtype(x)):
        # the blend's weights would be cast to the integer dtype (0): torch refuses too
        _fail(f"interpolate: mode {mode!r} needs a floating-point x, got {F._dtype(x)}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        _fail(f"interpolate: align_corners is only for the linear and cubic modes, not "
              f"{mode!r}, as in torch")
    if antialias:
        _fail("interpolate: antialias=True is not supported; resize without it (torch's "
              "antialias low-pass filters a downsampling bilinear or bicubic resize)")
    if (size is None) == (scale_factor is None):
        _fail("interpolate: give exactly one of size and scale_factor")
    if recompute_scale_factor and size is not None:
        _fail("interpolate: recompute_scale_factor is not meaningful with an explicit size, "
              "as in torch")
    sizes_in = list(_shape(x)[2:])
    for axis, n in enumerate(sizes_in, 2):
        if isinstance(n, Dim):  # a symbolic batch or channel size is served
            _fail(f"interpolate: x's axis {axis} has the symbolic size {n}; the source indices "
                  "of a resized axis need a concrete size")
    if min(sizes_in) < 1:
        _fail(f"interpolate: x's spatial size {tuple(sizes_in)} is empty; torch refuses it too")
    # torch's "area" (adaptive average pooling) serves an empty output; its other modes
    # refuse one
    least = 0 if mode == "area" else 1
    if size is not None:
        sizes = _per_axis(size, spatial, is_int)
        factors = [None] * spatial
        if sizes is None or any(s < least for s in sizes):
            such = "int >= 0" if least == 0 else "positive int"
            _fail(f"interpolate: size {size!r}: one {such}, or one per spatial axis "
                  f"({spatial})")
    else:
        factors = _per_axis(scale_factor, spatial, is_real)
        if factors is None or not all(0 < f < math.inf for f in factors):
            _fail(f"interpolate: scale_factor {scale_factor!r}: one positive finite number, "
                  f"or one per spatial axis ({spatial})")
        sizes = [math.floor(d * f) for d, f in zip(sizes_in, factors)]
        if any(s < least for s in sizes):
            _fail(f"interpolate: scale_factor {scale_factor!r} gives the empty size "
                  f"{tuple(sizes)} for spatial size {tuple(sizes_in)}")
        if recompute_scale_factor:  # torch's: the size alone then sets the source indices
            factors = [None] * spatial
    if mode == "area":
        return C._adaptive("interpolate", spatial, x, tuple(sizes), "avg")
    # torch's kernels compute indices and weights in float64 only for a float64 x
    ftype = np.float64 if F._dtype(x) == np.float64 else np.float32
    for k, (n_in, n_out, factor) in enumerate(zip(sizes_in, sizes, factors)):
        axis = 2 + k
        taps = _taps(n_in, int(n_out), factor, bool(align_corners), mode, spatial, ftype)
        moved = F.swapaxes(x, axis, 0)
        if taps[0][1] is None:
            blend = F.take(moved, taps[0][0])
        else:  # torch's blend w0 x0 + w1 x1 (+ ...): an inf neighbour with a weight gives
            # inf (x0 + (x1 - x0) w gave inf - inf = NaN)
            shape = (-1,) + (1,) * (nd - 1)
            blend = None
            for index, weight in taps:
                term = F.take(moved, index) * F.cast(np.reshape(weight, shape), F._dtype(x))
                blend = term if blend is None else blend + term
        x = F.swapaxes(blend, 0, axis)
    return x
