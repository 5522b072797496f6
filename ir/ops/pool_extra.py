"""torch.nn.functional's 3-d pools, power-average pools and sliding blocks: max_pool3d,
avg_pool3d, adaptive_avg_pool3d, adaptive_max_pool3d, lp_pool1d/2d/3d, unfold and fold,
as composites of the 2-d pools and existing ops (so grad, vmap and compile are theirs).

A 3-d window is a box, so its max (or sum, or tap count) is the one over its depth of the
ones over its (height, width) planes: a 3-d pool is the 2-d pool of every depth slice,
then a 2-d pool of kernel (kD, 1) along the depth. The planes go first so that a window's
gradient (and index) lands on its first maximum in (d, h, w) row-major order, as torch's:
the first depth slice holding the maximum, at that slice's first."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import api as F
from . import conv_extra as C
from ..errors import with_article
from ..types import is_float, is_int
from .api import _fail, _ndim, _shape
from .arrays import _take_along

__all__ = ["max_pool3d", "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool3d",
           "lp_pool1d", "lp_pool2d", "lp_pool3d", "unfold", "fold"]


# ---- 3-d pools --------------------------------------------------------------------------------
def _over_planes_then_depth(pool2d, x, kernel, stride, padding, *settings, depth_extra=(),
                            plane_extra=()):
    """pool2d over each depth slice's (H, W) plane of x (N, C, D, H, W), then over the depth
    with a (kD, 1) kernel: (the depth pool's result (N, C, Do, Ho * Wo), (Ho, Wo)) and, for
    a pool with return_indices, each one's indices."""
    n, c, depth, h, w = _shape(x)
    planes = pool2d(F.reshape(x, (n, c * depth, h, w)), kernel[1:], stride[1:], padding[1:],
                    *(tuple(s[1:]) for s in settings), *plane_extra)
    plane_values = planes[0] if isinstance(planes, tuple) else planes
    ho, wo = _shape(plane_values)[-2:]
    depthwise = pool2d(F.reshape(plane_values, (n, c, depth, ho * wo)), (kernel[0], 1),
                       (stride[0], 1), (padding[0], 0), *((s[0], 1) for s in settings),
                       *depth_extra)
    return planes, depthwise, (ho, wo)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool3d of x (N, C, D, H, W) or (C, D, H, W): stride defaults to
    kernel_size, the padding is -inf, ceil_mode as torch's. A window's gradient goes to its
    first maximum inside x in (d, h, w) row-major order, as torch's (the first NaN where there
    are several, where torch's takes the last). return_indices=True: (out, indices), int64
    without gradient, as torch's: d * H * W + h * W + w in x's (D, H, W) volume (a window
    wholly in the padding: 2**40, as max_pool2d's)."""
    name = "max_pool3d"
    F._flag(name, "return_indices", return_indices)
    kernel, stride, padding, dilation = C._pool_settings(name, 3, x, kernel_size, stride,
                                                         padding, dilation, ceil_mode)
    if _ndim(x) == 4:
        return F._unbatched(max_pool3d, x, kernel, stride, padding, dilation, ceil_mode,
                            return_indices)
    n, c, depth, h, w = _shape(x)
    if return_indices and not builtins.all(isinstance(v, int) for v in (depth, h, w)):
        _fail(f"{name}: return_indices=True needs a known depth, height and width, got "
              f"{(depth, h, w)}")
    extra = (ceil_mode, return_indices)
    planes, depthwise, (ho, wo) = _over_planes_then_depth(
        F.max_pool2d, x, kernel, stride, padding, dilation, plane_extra=extra,
        depth_extra=extra)
    if not return_indices:
        return F.reshape(depthwise, (n, c, _shape(depthwise)[2], ho, wo))
    (out, along_depth), (_, in_plane) = depthwise, planes
    do = _shape(out)[2]
    # the depth pool's index is d * (Ho * Wo) + the cell; the plane pool's at (d, cell) is
    # h * W + w. A window of padding alone (possible with dilation) has max_pool2d's index
    # for one, _OUTSIDE: along the depth (its d is clipped only to gather something) or in
    # its planes (the sum is past _OUTSIDE, so clipped to it)
    outside = F._OUTSIDE
    d = F.minimum(F.floor_divide(along_depth, ho * wo), depth - 1)
    in_plane = F.reshape(in_plane, (n, c, depth, ho * wo))
    index = F.minimum(F.add(F.mul(d, h * w), _take_along(in_plane, d, 2, in_range=True)),
                      outside)
    index = F.where(F.equal(along_depth, outside), outside, index)
    return (F.reshape(out, (n, c, do, ho, wo)),
            F.stop_gradient(F.reshape(index, (n, c, do, ho, wo))))


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """torch.nn.functional.avg_pool3d of x (N, C, D, H, W) or (C, D, H, W): each window's sum
    over its taps inside x and, with count_include_pad, its zero padding (ceil_mode's overhang
    never counts, as torch's); divisor_override (a nonzero int) divides every window's sum
    instead. The count of a box's taps is the product of its counts along the axes, so the
    mean of each plane's window then the mean over the depth is torch's."""
    name = "avg_pool3d"
    if not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    F._flag(name, "count_include_pad", count_include_pad)
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        _fail(f"{name}: divisor_override must be a nonzero int or None, got "
              f"{divisor_override!r}")
    kernel, stride, padding, _ = C._pool_settings(name, 3, x, kernel_size, stride, padding,
                                                  1, ceil_mode)
    for n, k, what in zip(_shape(x)[-3:], kernel, C._POOL_AXES[3]):
        if isinstance(n, int) and n < k:  # torch's check of avg_pool3d alone (not 1-d, 2-d)
            _fail(f"{name}: x's {what} {n} is smaller than the kernel size {k}, which torch "
                  "refuses whatever the padding")
    if _ndim(x) == 4:
        return F._unbatched(avg_pool3d, x, kernel, stride, padding, ceil_mode,
                            count_include_pad, divisor_override)
    n, c = _shape(x)[:2]
    # with divisor_override: each plane's sums (divided by 1), then their sum by the divisor
    plane_divisor = None if divisor_override is None else 1
    _, depthwise, (ho, wo) = _over_planes_then_depth(
        F.avg_pool2d, x, kernel, stride, padding,
        plane_extra=(ceil_mode, count_include_pad, plane_divisor),
        depth_extra=(ceil_mode, count_include_pad, divisor_override))
    return F.reshape(depthwise, (n, c, _shape(depthwise)[2], ho, wo))


def adaptive_avg_pool3d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool3d of x (N, C, D, H, W) or (C, D, H, W) over
    torch's windows (see adaptive_avg_pool2d); output_size an int or 3 of them, an entry None
    keeping that size."""
    return C._adaptive("adaptive_avg_pool3d", 3, x, output_size, "avg")


def adaptive_max_pool3d(x, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool3d over torch's windows; a window's gradient goes
    to its first maximum in (d, h, w) row-major order. return_indices=True: (out, indices),
    d * H * W + h * W + w, as torch's."""
    return C._adaptive("adaptive_max_pool3d", 3, x, output_size, "max", return_indices)


# ---- power-average pools ----------------------------------------------------------------------
def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool1d of x (N, C, L) or (C, L): each window's (sum of x ** p)
    ** (1 / p), p = norm_type, as torch computes it: avg_pool1d of x ** p times the kernel
    size (so a ceil_mode window cut by x's end is scaled as a whole one, as torch's); a
    window whose sum is 0 has gradient 0, as torch's; p = inf (-inf): the max (min) of |x|."""
    return _lp_pool("lp_pool1d", 1, x, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool2d of x (N, C, H, W) or (C, H, W): see lp_pool1d."""
    return _lp_pool("lp_pool2d", 2, x, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool3d of x (N, C, D, H, W) or (C, D, H, W): see lp_pool1d."""
    return _lp_pool("lp_pool3d", 3, x, norm_type, kernel_size, stride, ceil_mode)


def _lp_pool(name, spatial, x, norm_type, kernel_size, stride, ceil_mode):
    if (isinstance(norm_type, (bool, np.bool_)) or not isinstance(
            norm_type, (int, float, np.integer, np.floating)) or norm_type == 0
            or math.isnan(norm_type)):
        # (torch: 0 is a ZeroDivisionError at 1 / p)
        _fail(f"{name}: norm_type must be a nonzero number, got {norm_type!r}")
    if not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    kernel, stride, _, _ = C._pool_settings(name, spatial, x, kernel_size, stride, 0, 1,
                                            ceil_mode)
    max_pool, avg_pool = {1: (C.max_pool1d, C.avg_pool1d), 2: (F.max_pool2d, F.avg_pool2d),
                          3: (max_pool3d, avg_pool3d)}[spatial]
    shown = kernel if spatial > 1 else kernel[0]
    strides = stride if spatial > 1 else stride[0]
    p = float(norm_type)
    if math.isinf(p):  # torch's: the max pool of |x| (of -|x|, negated)
        sign = 1.0 if p > 0 else -1.0
        return sign * max_pool(sign * F.abs(x), shown, strides, 0, 1, ceil_mode)
    out = avg_pool(F.pow(x, p), shown, strides, 0, ceil_mode)
    # torch's (sign(out) * relu(|out|) * k) ** (1 / p) is (out * k) ** (1 / p) in value; at
    # out = 0 its gradient is 0 (relu's mask), where (out * k) ** (1 / p)'s is inf or NaN
    zero = F.equal(out, 0.0)
    pooled = F.pow(F.where(zero, 1.0, out) * float(math.prod(kernel)), 1.0 / p)
    return F.where(zero, 0.0 if p > 0 else math.inf, pooled)


# ---- sliding blocks ---------------------------------------------------------------------------
def _block_settings(name, kernel_size, dilation, padding, stride):
    kernel, dilation, padding, stride = (F._pair(name, what, v) for what, v in (
        ("kernel_size", kernel_size), ("dilation", dilation), ("padding", padding),
        ("stride", stride)))
    for what, values, low in (("kernel_size", kernel, 1), ("dilation", dilation, 1),
                              ("padding", padding, 0), ("stride", stride, 1)):
        if builtins.min(values) < low:
            _fail(f"{name}: {what} must be >= {low}, got {values}")
    return kernel, dilation, padding, stride


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold (im2col) of x (N, C, H, W) or (C, H, W): (N, C * kH * kW,
    L), row c * kH * kW + i * kW + j holding tap (i, j) of channel c in each of the L sliding
    blocks (row-major), the zero padding included. Its gradient sums each block's taps back,
    which is fold."""
    name = "unfold"
    if _ndim(x) == 3:
        return F._unbatched(unfold, x, kernel_size, dilation, padding, stride)
    if _ndim(x) != 4:
        _fail(f"{name}: x must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape "
              f"{tuple(_shape(x))}")
    if not is_float(F._dtype(x)):  # (torch's im2col has no integer kernel)
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    kernel, dilation, padding, stride = _block_settings(name, kernel_size, dilation, padding,
                                                        stride)
    views, (ho, wo) = F._windows(name, x, kernel, stride, padding, dilation, 0.0)
    n, c = _shape(x)[:2]
    return F.reshape(F.stack(views, 2), (n, c * len(views), ho * wo))


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold (col2im), unfold's adjoint: x (N, C * kH * kW, L) or
    (C * kH * kW, L), L sliding blocks of an output (N, C, *output_size) in row-major order,
    each block's taps added into the output where they land (the padding's dropped). Its
    gradient is unfold."""
    name = "fold"
    if _ndim(x) == 2:
        return F._unbatched(fold, x, output_size, kernel_size, dilation, padding, stride)
    if _ndim(x) != 3:
        _fail(f"{name}: x must be 3-d (N, C * kH * kW, L) or 2-d (C * kH * kW, L), got shape "
              f"{tuple(_shape(x))}")
    if not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    size = F._pair(name, "output_size", output_size)
    kernel, dilation, padding, stride = _block_settings(name, kernel_size, dilation, padding,
                                                        stride)
    n, rows, count = _shape(x)
    if not isinstance(rows, int) or not isinstance(count, int):
        _fail(f"{name}: needs x's known rows and block count, got shape {tuple(_shape(x))}")
    taps = kernel[0] * kernel[1]
    if rows % taps:
        _fail(f"{name}: x's {rows} rows must divide by the kernel's {taps} taps "
              f"(C * kH * kW, kernel_size {kernel})")
    blocks = tuple((o + 2 * p - d * (k - 1) - 1) // s + 1 for o, k, d, p, s in
                   zip(size, kernel, dilation, padding, stride))
    if builtins.min(size) < 1 or builtins.min(blocks) < 1:
        _fail(f"{name}: output_size {size} with kernel_size {kernel}, dilation {dilation} and "
              f"padding {padding} has no sliding block")
    if blocks[0] * blocks[1] != count:
        _fail(f"{name}: x has {count} blocks, output_size {size} with these settings has "
              f"{blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}")
    c = rows // taps
    hp, wp = (o + 2 * p for o, p in zip(size, padding))
    # the place in the padded (Hp, Wp) plane of tap (i, j) of block (a, b), in x's order
    along = [np.arange(k)[:, None] * d + np.arange(b)[None, :] * s
             for k, d, b, s in zip(kernel, dilation, blocks, stride)]  # (k, blocks) per axis
    places = (along[0][:, None, :, None] * wp + along[1][None, :, None, :]).reshape(-1)
    # taps and blocks first, the axis scatter_add sums along; (N, C) ride along
    updates = F.reshape(F.transpose(F.reshape(x, (n, c, taps, count)), (2, 3, 0, 1)),
                        (taps * count, n, c))
    plane = F.reshape(F.scatter_add(updates, places, hp * wp), (hp, wp, n, c))
    plane = F.transpose(plane, (2, 3, 0, 1))
    return F.slice_(plane, (0, 0, padding[0], padding[1]),
                    (n, c, padding[0] + size[0], padding[1] + size[1]), (1, 1, 1, 1))
