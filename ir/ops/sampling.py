"""torch.nn.functional.grid_sample, affine_grid and pdist, built from the primitive ops
(floor, where, gathers along an axis, sums, einsum), so their gradients, batching and
lowerings are those ops'.

grid_sample(x, grid): x (N, C, H, W) read at the points grid (N, Ho, Wo, 2) holds, (x, y)
in [-1, 1] (x along W, y along H), as torch's, or x (N, C, D, H, W) at grid
(N, Do, Ho, Wo, 3) of (x, y, z): modes "bilinear" (trilinear in 3-d; the gradient reaches x
and the grid), "nearest" (round half to even, as torch's nearbyint: the gradient reaches x
only, the grid's is 0 as torch's) and, 2-d only, "bicubic" (torch's: A = -0.75, each of
the 4x4 pixels around a point read where the padding mode puts it); padding modes "zeros"
(a corner outside x reads 0), "border" (points clamped into x) and "reflection" (points
reflected at x's edges, then clamped), align_corners as torch's (True: -1 and 1 are the
corner pixels' centres; False: their outer edges). Each corner is one gather of the
flattened planes. A NaN grid point passes no gradient to x, as torch's.

affine_grid(theta, size): the grid of pixel-centre coordinates for `size` moved by the
affine matrices theta, as torch's.

pdist(x, p=2): the p-norm distances between the rows of x (N, M), for i < j in row-major
order (N (N - 1) / 2 of them), as torch's; a zero distance passes a zero gradient back (not
NaN), as torch's backward does."""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from . import api as F
from .api import _dtype, _fail, _shape
from .arrays import _take_along
from ..errors import user_stacklevel
from ..types import is_float, is_real

__all__ = ["affine_grid", "grid_sample", "pdist"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDING = ("zeros", "border", "reflection")
_CUBIC_A = -0.75  # torch's (and OpenCV's) bicubic convolution constant


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


def _clip(coord, size, scalar=False):
    """torch's clip_coordinates_set_grad: coord clipped into [0, size - 1] with a zero
    gradient at and past either end (F.clip's passes it at the ends: at a grid point
    exactly on the border, as affine_grid's corners, the far corner read as zero gave the
    grid a gradient torch's has not), and NaN read as 0, as torch's vectorised 2-d kernel's
    max(coord, 0); scalar: NaN read as size - 1, as its scalar (3-d) kernel's
    min(size - 1, max(coord, 0))."""
    high = F.zeros_like(coord) + (size - 1.0)
    low = F.where(F.isnan(coord), high, F.zeros_like(coord)) if scalar else F.zeros_like(coord)
    return F.where(F.greater(coord, 0.0), F.where(F.less(coord, size - 1.0), coord, high), low)


def _padded(coord, size, padding_mode, align_corners, scalar=False):
    """torch's compute_coordinates: a pixel coordinate along an axis of `size` moved by the
    padding mode (border: clipped; reflection: reflected at the edges, then clipped; zeros:
    left); scalar: as torch's scalar (3-d) kernel (_clip)."""
    if padding_mode == "zeros":
        return coord
    if padding_mode == "reflection":
        coord = _reflect(coord, 0, 2 * (size - 1)) if align_corners \
            else _reflect(coord, -1, 2 * size - 1)
    return _clip(coord, size, scalar)


def _read(planes, corner, sizes):
    """planes (N, C, prod(sizes)) read at the integer float coordinates `corner` (one (N, P)
    array per axis, x first, along the axes of `sizes`, x's the last): (values (N, C, P),
    a bool mask (N, 1, P) of the points inside the volume)."""
    inside = None
    for c, size in zip(corner, sizes):
        within = F.logical_and(F.greater_equal(c, 0.0), F.less_equal(c, size - 1.0))
        inside = within if inside is None else F.logical_and(inside, within)
    # (a corner outside reads pixel 0, masked: a NaN coordinate, cast, was no index)
    flat = None
    for c, size in zip(corner[::-1], sizes[::-1]):  # row-major: (z * H + y) * W + x
        index = F.cast(F.where(inside, c, F.zeros_like(c)), "int64")
        flat = index if flat is None else flat * size + index
    values = _take_along(planes, F.expand_dims(flat, 1), 2, in_range=True, name="grid_sample")
    return values, F.expand_dims(inside, 1)


def _numbers_only(values, valid):
    """values (N, C, P) passing no gradient back at the points `valid` (N, P) marks False:
    a NaN grid point (an infinite one, reflected) read in modes border and reflection, whose
    read torch's backward leaves out (its CPU fallback and CUDA kernels; its vectorised CPU
    one crashes)."""
    if valid is None:
        return values
    return F.where(F.expand_dims(valid, 1), values, F.stop_gradient(values))


def _linear(planes, coords, sizes, valid, scalar):
    """Bilinear (trilinear) interpolation at the pixel coordinates `coords` (x first): the
    2**d corners in torch's order (x fastest), each weighted by the product of its axes'
    weights. A corner outside adds 0 with no input gradient, and (not scalar) the weight's
    NaN of a NaN point, as torch's vectorised 2-d kernel (its weights multiply the masked
    value); scalar: 0, as its scalar (3-d) kernel, which adds the corners inside only."""
    lows = [F.stop_gradient(F.floor(c)) for c in coords]
    out = None
    for bits in itertools.product((0, 1), repeat=len(coords)):
        bits = bits[::-1]  # (x, y[, z]): x fastest
        corner = [low + 1.0 if bit else low for low, bit in zip(lows, bits)]
        weight = None
        for c, low, bit in zip(coords, lows, bits):
            w = c - low if bit else (low + 1.0) - c
            weight = w if weight is None else weight * w
        values, inside = _read(planes, corner, sizes)
        weight = F.expand_dims(weight, 1)
        # (masked on both sides of the product: its backward multiplies a masked cotangent
        # by the other factor, a NaN weight's NaN; the weight's mask is (N, 1, P), cheap)
        read = F.where(inside, _numbers_only(values, valid), F.zeros_like(values))
        term = read * F.where(inside, weight, F.zeros_like(weight))
        out = term if out is None else out + term
    if not scalar:  # (a NaN point's NaN, once: every weight of a non-finite point is NaN)
        out = out + weight * 0.0
    return out


def _cubic_weights(t):
    """torch's get_cubic_upsample_coefficients: the 4 weights of the pixels at offsets
    -1, 0, 1, 2 from floor(x), t = x - floor(x), A = -0.75."""
    A = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    return [far(t + 1.0), near(t), near(1.0 - t), far((1.0 - t) + 1.0)]


def _bicubic(planes, points, sizes, padding_mode, align_corners):
    """torch's bicubic grid sampling: the 4x4 pixels around each point (offsets -1..2 from
    its floor), each read where the padding mode moves it (torch's get_value_bounded: zeros
    reads 0 outside, border clips, reflection reflects and clips the integer position), rows
    interpolated along x, then the rows along y. The positions carry no gradient: the grid's
    comes through the weights, as torch's."""
    ix = _unnormalize(points[:, :, 0], sizes[0], align_corners)
    iy = _unnormalize(points[:, :, 1], sizes[1], align_corners)
    x0, y0 = F.stop_gradient(F.floor(ix)), F.stop_gradient(F.floor(iy))
    wx, wy = _cubic_weights(ix - x0), _cubic_weights(iy - y0)
    columns = [_padded(x0 + (i - 1.0), sizes[0], padding_mode, align_corners)
               for i in range(4)]
    out = None
    for j in range(4):
        py = _padded(y0 + (j - 1.0), sizes[1], padding_mode, align_corners)
        row = None
        for i in range(4):
            values, inside = _read(planes, (columns[i], py), sizes)
            term = F.where(inside, values, F.zeros_like(values)) * F.expand_dims(wx[i], 1)
            row = term if row is None else row + term
        term = row * F.expand_dims(wy[j], 1)
        out = term if out is None else out + term
    return out


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """torch.nn.functional.grid_sample of a 4-d input (N, C, H, W) at grid (N, Ho, Wo, 2):
    out (N, C, Ho, Wo), or of a 5-d input (N, C, D, H, W) at grid (N, Do, Ho, Wo, 3): out
    (N, C, Do, Ho, Wo) (mode bilinear is then trilinear; bicubic is 4-d only, as torch's).
    align_corners=None is False, as torch's (without its warning)."""
    if mode not in _MODES:
        _fail(f"grid_sample: mode must be one of {', '.join(map(repr, _MODES))}, got "
              f"{mode!r}")
    if padding_mode not in _PADDING:
        _fail(f"grid_sample: padding_mode must be one of {', '.join(map(repr, _PADDING))}, "
              f"got {padding_mode!r}")
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        _fail(f"grid_sample: align_corners must be True, False or None, got {align_corners!r}")
    align_corners = bool(align_corners)
    xs, gs = tuple(_shape(input)), tuple(_shape(grid))
    if len(xs) not in (4, 5):
        _fail(f"grid_sample: input must be 4-d (N, C, H, W) or 5-d (N, C, D, H, W), got "
              f"shape {xs}")
    d = len(xs) - 2
    if mode == "bicubic" and d == 3:  # (torch's refusal)
        _fail(f"grid_sample: mode 'bicubic' needs a 4-d input, got shape {xs}")
    if len(gs) != d + 2 or gs[-1] != d or gs[0] != xs[0]:
        layout = "(N, H_out, W_out, 2)" if d == 2 else "(N, D_out, H_out, W_out, 3)"
        _fail(f"grid_sample: grid must be {layout} for a {d + 2}-d input with input's "
              f"N={xs[0]}, got shape {gs}")
    for name, value in (("input", input), ("grid", grid)):
        if not is_float(_dtype(value)):
            _fail(f"grid_sample: {name} must be a float array, got {_dtype(value)}")
    if _dtype(input) != _dtype(grid):
        _fail(f"grid_sample: input ({_dtype(input)}) and grid ({_dtype(grid)}) must have the "
              "same dtype")
    N, C, spatial = xs[0], xs[1], xs[2:]
    if any(size == 0 for size in spatial):  # (torch's refusal; a read of it was take_along_axis's)
        _fail(f"grid_sample: input's spatial dimensions must be non-empty, got shape {xs}")
    sizes = spatial[::-1]  # (along x, y[, z])
    P = int(np.prod(gs[1:-1]))
    points = F.reshape(grid, (N, P, d))
    planes = F.reshape(input, (N, C, int(np.prod(spatial))))
    if mode == "bicubic":
        out = _bicubic(planes, points, sizes, padding_mode, align_corners)
    else:
        # A NaN point (an infinite one, reflected): torch's kernels differ. The vectorised
        # 2-d one reads NaN in mode zeros (its grid gradient NaN) and the pixel at 0 in
        # border and reflection (its backward crashes there: the scalar and CUDA kernels'
        # rule is kept, no gradient to input or grid); the scalar 3-d one reads 0 in mode
        # zeros and the pixel at size - 1 in the others, no gradient to input or grid.
        scalar = d == 3
        raw = [_unnormalize(points[:, :, k], sizes[k], align_corners) for k in range(d)]
        valid = keep = None
        if padding_mode != "zeros" or scalar:
            # (a point read with no gradient to input: NaN, or reflected from infinity)
            test = F.isfinite if padding_mode != "border" \
                else (lambda c: F.logical_not(F.isnan(c)))
            masks = [test(c) for c in raw]
            keep = masks[0]
            for mask in masks[1:]:
                keep = F.logical_and(keep, mask)
            valid = None if padding_mode == "zeros" else keep
        if keep is not None:  # (no grid gradient at such a point, along any axis, as
            # torch's; masked before the reflection, whose backward multiplies by NaN)
            raw = [F.where(keep, c, F.stop_gradient(c)) for c in raw]
        coords = [_padded(c, size, padding_mode, align_corners, scalar)
                  for c, size in zip(raw, sizes)]
        if mode == "nearest":
            values, inside = _read(planes, [F.round(c) for c in coords], sizes)
            out = F.where(inside, _numbers_only(values, valid), F.zeros_like(values))
        else:
            out = _linear(planes, coords, sizes, valid, scalar)
    return F.reshape(out, (N, C) + tuple(gs[1:-1]))


def affine_grid(theta, size, align_corners=None):
    """torch.nn.functional.affine_grid: the sampling grid (N, H, W, 2) of the 2-d affine
    matrices theta (N, 2, 3) for size (N, C, H, W), or (N, D, H, W, 3) of theta (N, 3, 4) for
    size (N, C, D, H, W): each output pixel's normalised coordinates (x, y[, z], 1) (pixel
    centres; with align_corners the corner pixels' centres are -1 and 1, a unit axis 0)
    multiplied by theta^T, as torch's. align_corners=None is False (without torch's
    warning); the gradient reaches theta."""
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        _fail(f"affine_grid: align_corners must be True, False or None, got {align_corners!r}")
    align_corners = bool(align_corners)
    if not isinstance(size, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
            for s in size):
        _fail(f"affine_grid: size must be a tuple of ints (N, C, H, W) or (N, C, D, H, W), "
              f"got {size!r}")
    size = tuple(int(s) for s in size)
    if not is_float(_dtype(theta)):
        _fail(f"affine_grid: theta must be a float array, got {_dtype(theta)}")
    ts = tuple(_shape(theta))
    if len(size) not in (4, 5):
        _fail(f"affine_grid: size must be 4-d (N, C, H, W) or 5-d (N, C, D, H, W), for 2-d "
              f"and 3-d affine matrices, got size {size}")
    d = len(size) - 2
    if len(ts) != 3 or ts[1:] != (d, d + 1):
        _fail(f"affine_grid: theta must be a batch of {d}-d affine matrices of shape "
              f"(N, {d}, {d + 1}) for size {size}, got shape {ts}")
    if ts[0] != size[0]:
        _fail(f"affine_grid: theta's batch N={ts[0]} differs from size's N={size[0]}")
    if min(size) <= 0:
        _fail(f"affine_grid: size must be positive, got {size}")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size "
                      "grids when align_corners=True. This is not an intended use case of "
                      "affine_grid. See the documentation of affine_grid for details.",
                      UserWarning, stacklevel=user_stacklevel())
    dtype = np.dtype(str(_dtype(theta)))
    axes = []
    for n in spatial[::-1]:  # x (along W) first; torch's linspace_from_neg_one
        line = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        if n > 1 and not align_corners:
            line = line * (n - 1) / n
        axes.append(line)
    mesh = np.meshgrid(*axes[::-1], indexing="ij")[::-1]  # (x, y[, z]) over (D,) H, W
    base = np.stack([*mesh, np.ones(spatial)], -1).reshape(-1, d + 1).astype(dtype)
    grid = F.einsum("pk,njk->npj", base, theta)
    return F.reshape(grid, (size[0],) + spatial + (d,))


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
