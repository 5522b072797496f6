"""torch.nn.functional.grid_sample and pdist, built from the primitive ops (floor, where,
gathers along an axis, sums), so their gradients, batching and lowerings are those ops'.

grid_sample(x, grid): x (N, C, H, W) read at the points grid (N, Ho, Wo, 2) holds, (x, y)
in [-1, 1] (x along W, y along H), as torch's: modes "bilinear" (the gradient reaches x and
the grid) and "nearest" (round half to even, as torch's nearbyint: the gradient reaches x
only, the grid's is 0 as torch's); padding modes "zeros" (a corner outside x reads 0),
"border" (points clamped into x) and "reflection" (points reflected at x's edges, then
clamped), align_corners as torch's (True: -1 and 1 are the corner pixels' centres; False:
their outer edges). Each corner is one gather of the flattened planes.

pdist(x, p=2): the p-norm distances between the rows of x (N, M), for i < j in row-major
order (N (N - 1) / 2 of them), as torch's; a zero distance passes a zero gradient back (not
NaN), as torch's backward does."""
from __future__ import annotations

import numpy as np

from . import api as F
from .api import _dtype, _fail, _shape
from .arrays import _take_along
from ..types import is_float, is_real

__all__ = ["grid_sample", "pdist"]

_MODES = ("bilinear", "nearest")
_PADDING = ("zeros", "border", "reflection")


def _unnormalize(coord, size, align_corners):
    """torch's grid_sampler_unnormalize: [-1, 1] to pixel coordinates along an axis of
    `size`."""
    if align_corners:
        return (coord + 1.0) * ((size - 1) / 2.0)
    return ((coord + 1.0) * size - 1.0) / 2.0


def _reflect(coord, twice_low, twice_high):
    """torch's reflect_coordinates: coord reflected into [twice_low / 2, twice_high / 2]."""
    if twice_low == twice_high:
        return coord * 0.0
    low, span = twice_low / 2.0, (twice_high - twice_low) / 2.0
    distance = F.abs(coord - low)
    flips = F.floor(distance / span)  # (no gradient: the reflection's slope is +-1)
    extra = distance - flips * span
    even = F.equal(flips - 2.0 * F.floor(flips / 2.0), 0.0)
    return F.where(even, extra + low, (span - extra) + low)


def _clip(coord, size):
    """torch's clip_coordinates_set_grad: coord clipped into [0, size - 1] with a zero
    gradient at and past either end (F.clip's passes it at the ends: at a grid point
    exactly on the border, as affine_grid's corners, the far corner read as zero gave the
    grid a gradient torch's has not), and NaN read as 0, as torch's max(coord, 0)."""
    return F.where(F.greater(coord, 0.0),
                   F.where(F.less(coord, size - 1.0), coord, F.zeros_like(coord) + (size - 1.0)),
                   F.zeros_like(coord))


def _source(coord, size, padding_mode, align_corners):
    """torch's grid_sampler_compute_source_index: the pixel coordinate read along one axis."""
    coord = _unnormalize(coord, size, align_corners)
    if padding_mode == "border":
        coord = _clip(coord, size)
    elif padding_mode == "reflection":
        coord = _reflect(coord, 0, 2 * (size - 1)) if align_corners \
            else _reflect(coord, -1, 2 * size - 1)
        coord = _clip(coord, size)
    return coord


def _corner(planes, ix, iy, H, W):
    """planes (N, C, H*W) read at the integer float coordinates (ix, iy) of shape (N, P):
    (values (N, C, P), a float mask (N, 1, P) of the coordinates inside the image)."""
    dtype = _dtype(planes)
    inside = F.logical_and(F.logical_and(F.greater_equal(ix, 0.0), F.less_equal(ix, W - 1.0)),
                           F.logical_and(F.greater_equal(iy, 0.0), F.less_equal(iy, H - 1.0)))
    # (a corner outside reads pixel 0, masked: a NaN coordinate, cast, was no index)
    column = F.cast(F.where(inside, ix, F.zeros_like(ix)), "int64")
    row = F.cast(F.where(inside, iy, F.zeros_like(iy)), "int64")
    flat = F.expand_dims(row * W + column, 1)
    values = _take_along(planes, flat, 2, in_range=True, name="grid_sample")
    return values, F.expand_dims(F.cast(inside, dtype), 1)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """torch.nn.functional.grid_sample of a 4-d input (N, C, H, W) at grid (N, Ho, Wo, 2):
    out (N, C, Ho, Wo). align_corners=None is False, as torch's (without its warning)."""
    if mode not in _MODES:
        _fail(f"grid_sample: mode must be one of {', '.join(map(repr, _MODES))}, got "
              f"{mode!r}" + (" (bicubic is not supported)" if mode == "bicubic" else ""))
    if padding_mode not in _PADDING:
        _fail(f"grid_sample: padding_mode must be one of {', '.join(map(repr, _PADDING))}, "
              f"got {padding_mode!r}")
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        _fail(f"grid_sample: align_corners must be True, False or None, got {align_corners!r}")
    align_corners = bool(align_corners)
    xs, gs = tuple(_shape(input)), tuple(_shape(grid))
    if len(xs) != 4:
        _fail(f"grid_sample: input must be 4-d (N, C, H, W), got shape {xs}"
              + (" (5-d volumes are not supported)" if len(xs) == 5 else ""))
    if len(gs) != 4 or gs[3] != 2 or gs[0] != xs[0]:
        _fail(f"grid_sample: grid must be (N, H_out, W_out, 2) with input's N={xs[0]}, got "
              f"shape {gs}")
    for name, value in (("input", input), ("grid", grid)):
        if not is_float(_dtype(value)):
            _fail(f"grid_sample: {name} must be a float array, got {_dtype(value)}")
    if _dtype(input) != _dtype(grid):
        _fail(f"grid_sample: input ({_dtype(input)}) and grid ({_dtype(grid)}) must have the "
              "same dtype")
    N, C, H, W = xs
    if H == 0 or W == 0:  # (torch's refusal; a read of it was take_along_axis's)
        _fail(f"grid_sample: input's spatial dimensions must be non-empty, got shape {xs}")
    Ho, Wo = gs[1], gs[2]
    points = F.reshape(grid, (N, Ho * Wo, 2))
    ix = _source(points[:, :, 0], W, padding_mode, align_corners)
    iy = _source(points[:, :, 1], H, padding_mode, align_corners)
    planes = F.reshape(input, (N, C, H * W))
    if mode == "nearest":
        values, inside = _corner(planes, F.round(ix), F.round(iy), H, W)
        out = values * inside
    else:
        x0, y0 = F.stop_gradient(F.floor(ix)), F.stop_gradient(F.floor(iy))
        x1, y1 = x0 + 1.0, y0 + 1.0
        out = None
        for cx, cy, wx, wy in ((x0, y0, x1 - ix, y1 - iy), (x1, y0, ix - x0, y1 - iy),
                               (x0, y1, x1 - ix, iy - y0), (x1, y1, ix - x0, iy - y0)):
            values, inside = _corner(planes, cx, cy, H, W)
            term = values * (F.expand_dims(wx * wy, 1) * inside)
            out = term if out is None else out + term
    return F.reshape(out, (N, C, Ho, Wo))


def pdist(input, p=2):
    """torch.nn.functional.pdist: the p-norm distance of each pair of rows i < j of
    input (N, M), in row-major order of the pairs: shape (N (N - 1) / 2,)."""
    shape = tuple(_shape(input))
    if len(shape) != 2:
        _fail(f"pdist: input must be 2-d (N, M), got shape {shape}")
    if not is_float(_dtype(input)):
        _fail(f"pdist: input must be a float array, got {_dtype(input)}")
    if not is_real(p) or isinstance(p, bool) or not p >= 0:
        _fail(f"pdist: p must be a number >= 0, got {p!r}")
    p = float(p)
    n = shape[0]
    if not isinstance(n, (int, np.integer)):
        _fail(f"pdist: the number of rows must be known, got {n}")
    first, second = np.triu_indices(int(n), 1)
    if first.size == 0:
        return F.zeros((0,), _dtype(input))
    diff = F.abs(F.take(input, first.astype(np.int64)) - F.take(input, second.astype(np.int64)))
    if p == 0.0:
        return F.sum(F.cast(F.greater(diff, 0.0), _dtype(input)), axis=1)
    if p == 1.0 or (isinstance(shape[1], (int, np.integer)) and shape[1] == 0):
        # (no columns: distances 0, as torch's; the max of none was refused)
        return F.sum(diff, axis=1)
    if p == np.inf:
        # torch's backward passes the whole gradient to every component at the maximum
        # (F.max's shares it among ties: a third each where three components tie)
        top = F.stop_gradient(F.max(diff, axis=1, keepdims=True))
        ties = F.where(F.equal(diff, top), diff - F.stop_gradient(diff), F.zeros_like(diff))
        return F.squeeze(top, 1) + F.sum(ties, axis=1)
    # |d| ** p of a zero d: 0, with a zero gradient (its slope is infinite for p < 1)
    nonzero = F.greater(diff, 0.0)
    powered = F.where(nonzero, F.where(nonzero, diff, F.ones_like(diff)) ** p,
                      F.zeros_like(diff))
    total = F.sum(powered, axis=1)
    # a zero distance: torch's backward passes 0 (the root's slope there is infinite)
    positive = F.greater(total, 0.0)
    safe = F.where(positive, total, F.ones_like(total))
    return F.where(positive, safe ** (1.0 / p), F.zeros_like(total))
