"""torch.nn.functional.interpolate for images and sequences: modes "nearest" and "linear" /
"bilinear", by `size` or `scale_factor`, with torch's source-index rules (align_corners,
a given scale_factor used as 1 / scale as torch does). Separable: each resized axis is one or
two gathers of whole rows and a blend with constant weights, so the gradient is the gathers'
scatter, and vmap and compile are those ops'."""
from __future__ import annotations

import math

import numpy as np

from . import api as F
from ..types import is_float, is_int, is_real
from .api import _fail, _ndim, _shape

__all__ = ["interpolate"]


def _source_positions(size_in, size_out, scale_factor, align_corners, mode, spatial):
    """(i0, i1, weight of i1) for each output position along one axis, as torch computes
    them (aten's area_pixel_compute_source_index)."""
    out = np.arange(size_out, dtype=np.float64)
    if mode == "nearest" and spatial == 2 and size_out in (size_in, 2 * size_in):
        # torch's 2-d nearest (aten's nearest_idx) copies a kept axis and halves the index of
        # a doubled one, whatever scale_factor gave that size; its 1-d forward does not
        i0 = np.arange(size_out) // (size_out // size_in)
        return i0, i0, np.zeros(size_out)
    if mode == "nearest":
        scale = 1.0 / scale_factor if scale_factor else size_in / size_out
        # torch multiplies in float32
        src = np.floor((out.astype(np.float32) * np.float32(scale)).astype(np.float64))
        i0 = np.minimum(src.astype(np.int64), size_in - 1)
        return i0, i0, np.zeros(size_out)
    if size_out == size_in:
        # torch's linear modes copy an axis whose size is kept, whatever scale_factor gave
        # that size (aten's compute_source_index_and_lambda)
        return out.astype(np.int64), out.astype(np.int64), np.zeros(size_out)
    if align_corners:
        scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        src = out * scale
    else:
        scale = 1.0 / scale_factor if scale_factor else size_in / size_out
        src = np.maximum((out + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    return i0, i1, src - i0


def _per_axis(value, spatial, kind):
    """value as one number per spatial axis that `kind` (is_int or is_real) takes, or None."""
    values = list(value) if isinstance(value, (tuple, list)) else [value] * spatial
    if len(values) != spatial or not all(kind(v) for v in values):
        return None
    return [int(v) if kind is is_int else float(v) for v in values]


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """torch.nn.functional.interpolate of x (N, C, L) or (N, C, H, W): mode "nearest",
    "linear" (3-d) or "bilinear" (4-d), to `size` (an int or one per spatial axis) or by
    `scale_factor` (a number or one per axis). align_corners only for the linear modes."""
    nd = _ndim(x)
    if nd not in (3, 4):
        _fail(f"interpolate: x must be 3-d (N, C, L) or 4-d (N, C, H, W), got shape "
              f"{tuple(_shape(x))}")
    spatial = nd - 2
    linear = {3: "linear", 4: "bilinear"}[nd]
    if mode not in ("nearest", linear):
        _fail(f"interpolate: mode {mode!r} for a {nd}-d input; use 'nearest' or {linear!r}")
    if mode != "nearest" and not is_float(F._dtype(x)):
        # the blend's weights would be cast to the integer dtype (0): torch refuses too
        _fail(f"interpolate: mode {mode!r} needs a floating-point x, got {F._dtype(x)}")
    if mode == "nearest" and align_corners is not None:
        _fail("interpolate: align_corners is only for the linear modes, as in torch")
    if (size is None) == (scale_factor is None):
        _fail("interpolate: give exactly one of size and scale_factor")
    sizes_in = [int(d) for d in _shape(x)[2:]]
    if size is not None:
        sizes = _per_axis(size, spatial, is_int)
        factors = [None] * spatial
        if sizes is None or any(s < 1 for s in sizes):
            _fail(f"interpolate: size {size!r}: one positive int, or one per spatial axis "
                  f"({spatial})")
    else:
        factors = _per_axis(scale_factor, spatial, is_real)
        if factors is None or not all(0 < f < math.inf for f in factors):
            _fail(f"interpolate: scale_factor {scale_factor!r}: one positive finite number, "
                  f"or one per spatial axis ({spatial})")
        sizes = [math.floor(d * f) for d, f in zip(sizes_in, factors)]
        if any(s < 1 for s in sizes):
            _fail(f"interpolate: scale_factor {scale_factor!r} gives the empty size "
                  f"{tuple(sizes)} for spatial size {tuple(sizes_in)}")
    for k, (n_in, n_out, factor) in enumerate(zip(sizes_in, sizes, factors)):
        axis = 2 + k
        i0, i1, w1 = _source_positions(n_in, int(n_out), factor, bool(align_corners), mode,
                                        spatial)
        moved = F.swapaxes(x, axis, 0)
        first = F.take(moved, i0)
        if mode != "nearest":  # torch's blend w0 x0 + w1 x1: an inf neighbour with a
            # weight gives inf (first + (second - first) w gave inf - inf = NaN)
            shape = (-1,) + (1,) * (nd - 1)
            w0 = F.cast(np.reshape(1.0 - w1, shape), F._dtype(x))
            weight = F.cast(np.reshape(w1, shape), F._dtype(x))
            first = first * w0 + F.take(moved, i1) * weight
        x = F.swapaxes(first, 0, axis)
    return x
