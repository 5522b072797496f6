"""torch.nn.functional's other CNN functions, as composites of existing ops (so grad, vmap
and compile are those ops'): conv_transpose1d/2d, adaptive_avg_pool1d/2d,
adaptive_max_pool1d/2d, max_pool1d, avg_pool1d, pixel_shuffle and pixel_unshuffle.

conv_transpose2d is the gradient of conv2d with respect to its input, written out: one GEMM
of every input pixel by the whole kernel (no multiplications by inserted zeros, which the
dilate-then-convolve form spends s*s times over), then each kernel tap's block added into
the output at its strided place (col2im), the padding cropped tap by tap."""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import api as F
from . import precision
from ..types import Dim, is_float
from .api import _fail, _ndim, _shape

__all__ = ["conv_transpose1d", "conv_transpose2d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "max_pool1d",
           "avg_pool1d", "pixel_shuffle", "pixel_unshuffle"]


def _int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _settings(name, spatial, **values):
    """Each setting as a tuple of `spatial` ints: an int, or a tuple/list of `spatial` ints
    (torch also takes a tuple of one for 1-d)."""
    out = []
    for what, v in values.items():
        vs = tuple(v) if isinstance(v, (tuple, list)) else (v,) * spatial
        if len(vs) != spatial or not builtins.all(_int(k) for k in vs):
            _fail(f"{name}: {what} must be an int or a tuple of {spatial} ints, got {v!r}")
        out.append(tuple(int(k) for k in vs))
    return out


def conv_transpose_output_size(name, shape, kernel, stride, padding, dilation, output_size):
    """torch's output_padding for the module's forward(x, output_size) of an x of `shape`:
    the output sizes from min_size = (size - 1) * s - 2p + d * (k - 1) + 1 to min_size + s - 1
    are reachable (torch's _output_padding)."""
    spatial = len(kernel)
    size = tuple(shape)[-spatial:]
    if not isinstance(output_size, (tuple, list)) or len(output_size) not in (
            spatial, len(shape)) or not builtins.all(_int(v) for v in output_size):
        _fail(f"{name}: output_size must be {spatial} ints (or {len(shape)}, x's shape), got "
              f"{output_size!r}")
    output_padding = []
    for n, want, k, s, p, d in zip(size, tuple(output_size)[-spatial:], kernel, stride,
                                   padding, dilation):
        least = (n - 1) * s - 2 * p + d * (k - 1) + 1
        if not least <= want <= least + s - 1:
            _fail(f"{name}: output_size {tuple(output_size)} is not reachable: each size "
                  f"must be from {least} to {least + s - 1} for input size {n}")
        output_padding.append(want - least)
    return tuple(output_padding)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """torch.nn.functional.conv_transpose2d: x (N, C_in, H, W) or (C_in, H, W), weight
    (C_in, C_out / groups, kH, kW) (torch's layout), bias (C_out,) or None. Gives (N, C_out,
    Ho, Wo), Ho = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1:
    the gradient of conv2d(., weight) with respect to its input, plus bias."""
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """torch.nn.functional.conv_transpose1d: x (N, C_in, L) or (C_in, L), weight (C_in,
    C_out / groups, K): conv_transpose2d over a height of one."""
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def _conv_transpose(name, spatial, x, w, b, stride, padding, output_padding, groups,
                    dilation):
    nd = spatial + 2
    if _ndim(x) not in (nd - 1, nd):
        _fail(f"{name}: x must be {nd}-d (N, C, {'L' if spatial == 1 else 'H, W'}) or "
              f"{nd - 1}-d, got shape {tuple(_shape(x))}")
    if _ndim(w) != nd:
        _fail(f"{name}: weight must be {nd}-d (C_in, C_out/groups, "
              f"{'K' if spatial == 1 else 'kH, kW'}), got shape {tuple(_shape(w))}")
    stride, padding, output_padding, dilation = _settings(
        name, spatial, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation)
    if not _int(groups) or groups < 1:
        _fail(f"{name}: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    cin, cout_g, *kernel = _shape(w)
    if cin % groups:
        _fail(f"{name}: groups={groups} must divide weight's {cin} input channels")
    cout = cout_g * groups
    if _shape(x)[-nd + 1] != cin:
        _fail(f"{name}: x has {_shape(x)[-nd + 1]} channels, weight {tuple(_shape(w))} takes "
              f"{cin}")
    if b is not None and tuple(_shape(b)) != (cout,):
        _fail(f"{name}: bias must have shape ({cout},), one value per output channel, got "
              f"{tuple(_shape(b))}")
    for what, values, low in (("stride", stride, 1), ("dilation", dilation, 1),
                              ("padding", padding, 0), ("output_padding", output_padding, 0)):
        if builtins.min(values) < low:
            _fail(f"{name}: {what} must be >= {low}, got {values if spatial > 1 else values[0]}")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:  # torch's rule
            _fail(f"{name}: output_padding must be smaller than either stride or dilation, "
                  f"got output_padding={output_padding}, stride={stride}, dilation={dilation}")
    if precision.STATE.dtype is None or precision.STATE.suspended:  # as conv2d's check
        for what, v in (("weight", w), ("bias", b)):
            if v is not None and F._dtype(v) != F._dtype(x):
                _fail(f"{name}: x is {F._dtype(x)} and {what} {F._dtype(v)}: they must have "
                      "one dtype (outside autocast), as in PyTorch; cast one with .astype")
    size = _shape(x)[-spatial:]
    if not builtins.all(isinstance(n, int) for n in size):
        _fail(f"{name}: needs a known {'length' if spatial == 1 else 'height and width'}, "
              f"got a symbolic size {tuple(size)}")
    out_size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in
                     zip(size, kernel, stride, padding, dilation, output_padding))
    if builtins.min(out_size) < 1:
        _fail(f"{name}: the output size {out_size} is empty (input {tuple(size)}, kernel "
              f"{tuple(kernel)}, padding {padding if spatial > 1 else padding[0]})")
    unbatched = _ndim(x) == nd - 1
    if unbatched:
        x = F.expand_dims(x, 0)
    if spatial == 1:  # a height of one
        x, w = F.expand_dims(x, 2), F.expand_dims(w, 2)
        kernel, stride, padding, dilation = ([1] + list(kernel), (1,) + stride,
                                             (0,) + padding, (1,) + dilation)
        size, out_size = (1,) + tuple(size), (1,) + out_size
    out = _col2im(x, w, b, groups, kernel, stride, padding, dilation, size, out_size, cout)
    if spatial == 1:
        out = F.squeeze(out, 2)
    return F.squeeze(out, 0) if unbatched else out


def _col2im(x, w, b, groups, kernel, stride, padding, dilation, size, out_size, cout):
    """(N, C_out, Ho, Wo): every input pixel times the whole kernel (one GEMM, channels
    last), then each tap's (N, H, W, C_out) block added at output rows i*d + s*a - p (and
    columns alike), only the rows and columns that land inside the cropped output.

    The blocks are added phase by phase: output rows r, r + s, r + 2s, ... (r < s) form a
    grid of their own, into which a tap whose rows fall on them adds a contiguous block; the
    s*s grids are then interleaved by one transpose (which also gives torch's NCHW). Adding
    at the output's full resolution instead wrote s*s times more zeros and sums. The bias is
    added to each grid, in the same loop as its taps' sum, not in a pass of its own."""
    n = _shape(x)[0]
    cin = _shape(w)[0]
    (kh, kw), taps = kernel, kernel[0] * kernel[1]
    xt = F.transpose(x, (0, 2, 3, 1))  # (N, H, W, C_in): one GEMM over all pixels
    # the weight's taps before its output channels, so that each tap's block of the GEMM's
    # result is contiguous
    if groups == 1:
        wt = F.transpose(w, (0, 2, 3, 1))
        cols = F.matmul(xt, F.reshape(wt, (cin, taps * cout)))
    else:
        wt = F.reshape(w, (groups, cin // groups, cout // groups, taps))
        cols = F.einsum("nhwgc,gcot->nhwtgo",
                        F.reshape(xt, (n,) + tuple(size) + (groups, cin // groups)), wt)
    cols = F.reshape(cols, (n,) + tuple(size) + (kh, kw, cout))
    (sh, sw), (ho, wo) = stride, out_size
    grid = (n, -(-ho // sh), -(-wo // sw), cout)  # one phase's rows and columns
    phases = {}
    for i in range(kh):
        for j in range(kw):
            ranges = [_landing(t, n_in, n_out, s, p, d) for t, n_in, n_out, s, p, d in
                      zip((i, j), size, out_size, stride, padding, dilation)]
            if builtins.any(r is None for r in ranges):
                continue  # the tap lands wholly in the cropped padding
            (a0, a1, y0), (b0, b1, z0) = ranges
            tap = F.slice_(cols, (0, a0, b0, i, j, 0), (n, a1, b1, i + 1, j + 1, cout),
                           (1,) * 6)
            tap = F.reshape(tap, (n, a1 - a0, b1 - b0, cout))
            m0, q0 = y0 // sh, z0 // sw
            placed = F.pad_slice(tap, grid, (0, m0, q0, 0),
                                 (n, m0 + a1 - a0, q0 + b1 - b0, cout), (1,) * 4)
            phase = (y0 % sh, z0 % sw)
            phases[phase] = placed if phase not in phases else phases[phase] + placed
    if b is not None and F._dtype(b) != F._dtype(cols):  # under autocast: torch casts it too
        b = F.cast(b, F._dtype(cols))
    empty = None
    grids = []
    for phase in [(r, c) for r in range(sh) for c in range(sw)]:
        if phase not in phases:  # no tap lands there: zeros (plus bias)
            if empty is None:
                empty = F.zeros(grid, F._dtype(cols))
                empty = empty if b is None else empty + b
            grids.append(empty)
        else:
            grids.append(phases[phase] if b is None else phases[phase] + b)
    if sh == sw == 1:
        return F.transpose(grids[0], (0, 3, 1, 2))
    # (sh, sw, N, Mh, Mw, C) -> (N, Mh, sh, Mw, sw, C): row m * sh + r of phase r; moving
    # whole channel vectors, then to NCHW, is 4x faster than one 6-d transpose to NCHW
    out = F.reshape(F.stack(grids, 0), (sh, sw) + grid)
    out = F.reshape(F.transpose(out, (2, 3, 0, 4, 1, 5)),
                    (n, grid[1] * sh, grid[2] * sw, cout))
    out = F.slice_(out, (0, 0, 0, 0), (n, ho, wo, cout), (1,) * 4)
    return F.transpose(out, (0, 3, 1, 2))


def _landing(t, n_in, n_out, s, p, d):
    """Input positions a0..a1-1 of tap t that land inside the output (row t*d + s*a - p in
    [0, n_out)) and where the first lands, or None."""
    a0 = builtins.max(0, -(-(p - t * d) // s))
    a1 = builtins.min(n_in, (n_out - 1 + p - t * d) // s + 1)
    if a0 >= a1:
        return None
    return a0, a1, t * d + s * a0 - p


# ---- adaptive pooling -------------------------------------------------------------------------
def adaptive_avg_pool2d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool2d of x (N, C, H, W) or (C, H, W): output cell i
    of an axis of size n averages x's window floor(i * n / out) .. ceil((i + 1) * n / out)
    (out larger than n too). output_size an int or a pair; an entry None keeps that size."""
    return _adaptive("adaptive_avg_pool2d", 2, x, output_size, "avg")


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool2d over torch's windows (see adaptive_avg_pool2d);
    a window's gradient is shared by its tied maxima (torch gives it to one).
    return_indices=True is not supported."""
    if return_indices:
        _fail("adaptive_max_pool2d: return_indices=True is not supported")
    return _adaptive("adaptive_max_pool2d", 2, x, output_size, "max")


def adaptive_avg_pool1d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool1d of x (N, C, L) or (C, L)."""
    return _adaptive("adaptive_avg_pool1d", 1, x, output_size, "avg")


def adaptive_max_pool1d(x, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool1d of x (N, C, L) or (C, L)."""
    if return_indices:
        _fail("adaptive_max_pool1d: return_indices=True is not supported")
    return _adaptive("adaptive_max_pool1d", 1, x, output_size, "max")


def _adaptive(name, spatial, x, output_size, kind):
    if _ndim(x) not in (spatial + 1, spatial + 2):
        _fail(f"{name}: x must be {spatial + 2}-d (N, C, {'L' if spatial == 1 else 'H, W'}) "
              f"or {spatial + 1}-d, got shape {tuple(_shape(x))}")
    sizes = (tuple(output_size) if isinstance(output_size, (tuple, list))
             else (output_size,) * spatial)
    if len(sizes) != spatial or not builtins.all(
            (_int(s) and s >= 0) or (s is None and spatial == 2) for s in sizes):
        _fail(f"{name}: output_size must be an int >= 0 or a tuple of {spatial} "
              f"{'such ints (or None: the input size)' if spatial == 2 else 'such int'}, "
              f"got {output_size!r}")
    if kind == "avg" and not is_float(F._dtype(x)):
        _fail(f"{name} of a {F._dtype(x)} value; cast it to a float type first")
    axes = tuple(range(_ndim(x) - spatial, _ndim(x)))
    for axis, out in zip(axes, sizes):
        n = _shape(x)[axis]
        if not isinstance(n, int):
            _fail(f"{name}: needs a known spatial size, got a symbolic size {n}")
        if n == 0:
            _fail(f"{name}: x has an empty spatial axis (shape {tuple(_shape(x))})")
    if builtins.all(out == 1 for out in sizes):  # global pooling, the common case
        reduce = F.mean if kind == "avg" else F.max
        return reduce(x, axes, keepdims=True)
    given = x
    for axis, out in zip(axes, sizes):  # separable: a window is a product of intervals
        if out is not None:
            x = _adaptive_axis(x, axis, int(out), kind)
    return F._unchanged(x) if x is given else x


def _adaptive_axis(x, axis, out, kind):
    """x pooled along `axis` into `out` cells over torch's windows."""
    shape, n = _shape(x), _shape(x)[axis]
    if out == n:
        return x
    if out == 0:  # torch gives an empty result
        stops = list(shape)
        stops[axis] = 0
        return F.slice_(x, (0,) * len(shape), stops, (1,) * len(shape))
    if n % out == 0:  # equal windows side by side: one reshape and a reduction
        split = F.reshape(x, shape[:axis] + (out, n // out) + shape[axis + 1:])
        return (F.mean if kind == "avg" else F.max)(split, axis + 1)
    starts = np.arange(out) * n // out
    ends = -(-(np.arange(out) + 1) * n // out)
    if kind == "avg":  # a constant (n, out) averaging matrix, contracted along the axis
        cells = np.arange(n)[:, None]
        weights = ((cells >= starts) & (cells < ends)) / (ends - starts)
        moved = F.swapaxes(x, axis, -1)
        return F.swapaxes(F.matmul(moved, F.cast(weights, F._dtype(x))), -1, axis)
    # max: the windows' elements gathered as (out, longest) rows; past a window's end the
    # row repeats a position, masked by the dtype's least value so that it never wins
    longest = int(builtins.max(ends - starts))
    offsets = np.arange(longest)
    index = np.minimum(starts[:, None] + offsets, ends[:, None] - 1)
    inside = (starts[:, None] + offsets) < ends[:, None]
    dtype = np.dtype(F._dtype(x))
    lowest = (-math.inf if is_float(dtype) else 0 if dtype == np.bool_
              else int(np.iinfo(dtype).min))
    moved = F.swapaxes(x, axis, 0)
    rows = F.reshape(F.take(moved, index.reshape(-1)), (out, longest) + _shape(moved)[1:])
    mask = inside.reshape((out, longest) + (1,) * (len(shape) - 1))
    pooled = F.max(F.where(mask, rows, lowest), 1)
    return F.swapaxes(pooled, 0, axis)


# ---- 1-d pooling ------------------------------------------------------------------------------
def _pool1d_args(name, x, kernel_size, stride, padding, dilation):
    """The 1-d settings checked under the 1-d names (what max_pool2d would say of its
    (1, k) form is not what the user wrote), as (1, k) pairs for the 2-d pool."""
    if _ndim(x) not in (2, 3):
        _fail(f"{name}: x must be 3-d (N, C, L) or 2-d (C, L), got shape {tuple(_shape(x))}")
    stride = kernel_size if stride is None or stride == () or stride == [] else stride
    (k,), (s,), (p,), (d,) = _settings(name, 1, kernel_size=kernel_size, stride=stride,
                                       padding=padding, dilation=dilation)
    for what, v, low in (("kernel_size", k, 1), ("stride", s, 1), ("dilation", d, 1),
                         ("padding", p, 0)):
        if v < low:
            _fail(f"{name}: {what} must be >= {low}, got {v}")
    if 2 * p > k:
        _fail(f"{name}: padding {p} must be at most half the kernel size {k}, as in PyTorch")
    length = _shape(x)[-1]
    if isinstance(length, int) and length + 2 * p < d * (k - 1) + 1:
        _fail(f"{name}: the kernel {d * (k - 1) + 1} (dilated) is longer than the padded "
              f"input {length + 2 * p}")
    return (1, k), (1, s), (0, p), (1, d)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch.nn.functional.max_pool1d of x (N, C, L) or (C, L): max_pool2d over a height of
    one (its -inf padding, ceil_mode and tie rule)."""
    kernel, stride, padding, dilation = _pool1d_args("max_pool1d", x, kernel_size, stride,
                                                     padding, dilation)
    return F.squeeze(F.max_pool2d(F.expand_dims(x, -2), kernel, stride, padding, dilation,
                                  ceil_mode), -2)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """torch.nn.functional.avg_pool1d of x (N, C, L) or (C, L): avg_pool2d over a height of
    one."""
    kernel, stride, padding, _ = _pool1d_args("avg_pool1d", x, kernel_size, stride, padding,
                                              1)
    return F.squeeze(F.avg_pool2d(F.expand_dims(x, -2), kernel, stride, padding, ceil_mode,
                                  count_include_pad), -2)


# ---- pixel shuffle ----------------------------------------------------------------------------
def _factor(name, what, factor):
    if not _int(factor) or factor < 1:
        _fail(f"{name}: {what} must be a positive int, got {factor!r}")
    return int(factor)


def pixel_shuffle(x, upscale_factor):
    """torch.nn.functional.pixel_shuffle: (*, C * r * r, H, W) -> (*, C, H * r, W * r),
    output pixel (h * r + i, w * r + j) of channel c from input channel c * r * r + i * r + j."""
    r = _factor("pixel_shuffle", "upscale_factor", upscale_factor)
    if _ndim(x) < 3:
        _fail(f"pixel_shuffle: x must have at least 3 axes (*, C, H, W), got shape "
              f"{tuple(_shape(x))}")
    *lead, c, h, w = _shape(x)
    if c % (r * r):
        _fail(f"pixel_shuffle: x's {c} channels must divide by upscale_factor squared "
              f"({r * r})")
    k = len(lead)
    y = F.reshape(x, tuple(lead) + (c // (r * r), r, r, h, w))
    y = F.transpose(y, tuple(range(k + 1)) + (k + 3, k + 1, k + 4, k + 2))
    return F.reshape(y, tuple(lead) + (c // (r * r), h * r, w * r))


def pixel_unshuffle(x, downscale_factor):
    """torch.nn.functional.pixel_unshuffle, pixel_shuffle's inverse: (*, C, H * r, W * r) ->
    (*, C * r * r, H, W)."""
    r = _factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    if _ndim(x) < 3:
        _fail(f"pixel_unshuffle: x must have at least 3 axes (*, C, H, W), got shape "
              f"{tuple(_shape(x))}")
    *lead, c, h, w = _shape(x)
    for what, n in (("height", h), ("width", w)):
        if n % r:
            _fail(f"pixel_unshuffle: x's {what} {n} must divide by downscale_factor {r}")
    k = len(lead)
    y = F.reshape(x, tuple(lead) + (c, h // r, r, w // r, r))
    y = F.transpose(y, tuple(range(k + 1)) + (k + 2, k + 4, k + 1, k + 3))
    return F.reshape(y, tuple(lead) + (c * r * r, h // r, w // r))
