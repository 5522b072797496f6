"""torch.nn.functional's other CNN functions, as composites of existing ops (so grad, vmap
and compile are those ops'): conv3d, conv_transpose1d/2d/3d, adaptive_avg_pool1d/2d,
adaptive_max_pool1d/2d, max_pool1d, avg_pool1d, pixel_shuffle and pixel_unshuffle.

conv3d is one conv2d over the (N * D_out) depth slices, each slice's kD depth taps stacked
as channels. conv_transpose2d (the gradient of conv2d with respect to its input) is s*s
stride-1 conv2d's, one per output phase (see _phases): conv2d's im2col and GEMM, forward and
backward, with no multiplications by inserted zeros; conv_transpose3d is s*s*s conv3d's."""
from __future__ import annotations

import builtins
import itertools
import math

import numpy as np

from . import api as F
from . import precision
from ..errors import with_article
from ..types import InconclusiveDim, floor_div, is_float, is_int
from .api import _fail, _ndim, _shape
from .arrays import _take_along, argsort

__all__ = ["conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "max_pool1d", "avg_pool1d", "pixel_shuffle",
           "pixel_unshuffle", "max_unpool1d", "max_unpool2d", "max_unpool3d"]


def _settings(name, spatial, **values):
    """Each setting as a tuple of `spatial` ints: an int, or a tuple/list of `spatial` ints
    (torch also takes a tuple of one for 1-d)."""
    out = []
    for what, v in values.items():
        vs = tuple(v) if isinstance(v, (tuple, list)) else (v,) * spatial
        if len(vs) != spatial or not builtins.all(is_int(k) for k in vs):
            _fail(f"{name}: {what} must be an int or a tuple of {spatial} ints, got {v!r}")
        out.append(tuple(int(k) for k in vs))
    return out


# ---- 3-d convolution -------------------------------------------------------------------------
def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation as torch.nn.functional.conv3d: x (N, C, D, H, W) or (C, D, H,
    W), w (O, C/groups, kD, kH, kW), b (O,) or None; stride, padding and dilation an int or
    a tuple of 3, padding also 'valid' (0) or 'same' (stride 1). Gives (N, O, Do, Ho, Wo).
    One conv2d over the N * Do output depth slices, each the kD depth taps of x stacked as
    its channels (group by group, w's taps reordered to match): conv2d's im2col and GEMM,
    whose gradients are the gradients here."""
    name = "conv3d"
    if _ndim(x) not in (4, 5):
        _fail(f"{name}: x must be 5-d (N, C, D, H, W) or 4-d (C, D, H, W), got shape "
              f"{tuple(_shape(x))}")
    if _ndim(w) != 5:
        _fail(f"{name}: w must be 5-d (O, C/groups, kD, kH, kW), got shape {tuple(_shape(w))}")
    # everything conv2d would refuse is refused here first: its lines would name conv2d and
    # the stacked (N * Do, kD * C, H, W) form the user never wrote
    o, cg, *kernel = _shape(w)
    kernel = tuple(kernel)
    stride, dilation = _settings(name, 3, stride=stride, dilation=dilation)
    if isinstance(padding, str) and padding not in ("same", "valid"):
        _fail(f"{name}: padding must be an int, a tuple of 3 ints, 'same' or 'valid', got "
              f"{padding!r}")
    if not is_int(groups) or groups < 1 or o % groups:
        _fail(f"{name}: groups={groups!r} must be a positive int dividing w's {o} output "
              "channels")
    groups = int(groups)
    if o == 0:  # torch's rule (conv2d's composite would give an empty result)
        _fail(f"{name}: w {tuple(_shape(w))} is empty: it needs at least one output channel, "
              "as in PyTorch")
    c = _shape(x)[-4]
    if c != cg * groups:
        _fail(f"{name}: x has {c} channels, w {tuple(_shape(w))} takes {cg * groups}"
              + (f" (groups={groups})" if groups > 1 else ""))
    if b is not None and tuple(_shape(b)) != (o,):
        _fail(f"{name}: b must have shape ({o},), one value per output channel, got "
              f"{tuple(_shape(b))}")
    for what, values in (("kernel size", kernel), ("stride", stride),
                         ("dilation", dilation)):
        if builtins.min(values) < 1:
            _fail(f"{name}: {what} must be >= 1, got {values}")
    if isinstance(padding, str):
        sides = (F._same_padding(name, kernel, stride, dilation) if padding == "same"
                 else ((0, 0),) * 3)
    else:
        padding, = _settings(name, 3, padding=padding)
        if builtins.min(padding) < 0:
            _fail(f"{name}: padding must be >= 0, got {padding}")
        sides = tuple((p, p) for p in padding)
    for what, v in (("w", w), ("b", b)):  # as conv2d's check
        why = None if v is None else precision.dtype_clash(F._dtype(x), F._dtype(v))
        if why:
            _fail(f"{name}: x is {F._dtype(x)} and {what} {F._dtype(v)}: {why}; cast one with "
                  ".astype")
    size = tuple(_shape(x)[-3:])
    padded = tuple(n + before + after for n, (before, after) in zip(size, sides))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    try:
        if builtins.any(r > n for r, n in zip(reach, padded)):
            _fail(f"{name}: the kernel {reach} (dilated) is larger than the padded input "
                  f"{padded}")
        depth = floor_div(padded[0] - reach[0], stride[0]) + 1
        for n, r, s in zip(padded[1:], reach[1:], stride[1:]):  # (conv2d's, under this name)
            floor_div(n - r, s)
    except InconclusiveDim as exc:  # a symbolic size: the plan has no one output size
        shown = sides if isinstance(padding, str) else padding
        _fail(f"{name}: no output size for every value of a symbolic depth, height or width "
              f"(kernel {kernel}, stride {stride}, padding {shown}, dilation {dilation}): "
              f"{exc.message}")
    if _ndim(x) == 4:
        return F._unbatched(conv3d, x, w, b, stride, padding, dilation, groups)
    n = _shape(x)[0]
    # (N, D, groups, C/groups, H, W), zero padded: a depth tap is a strided slice along D
    x = F.transpose(x, (0, 2, 1, 3, 4))
    x = F._pad2d(x, sides[0], (0, 0), 0.0, (1, 1))
    x = F._pad2d(x, sides[1], sides[2], 0.0, (3, 4))
    x = F.reshape(x, (n, padded[0], groups, cg) + padded[1:])
    def tap(i):
        starts, stops = [0] * 6, list(_shape(x))
        starts[1], stops[1] = i * dilation[0], i * dilation[0] + stride[0] * (depth - 1) + 1
        steps = [1] * 6
        steps[1] = stride[0]
        return F.slice_(x, starts, stops, steps)
    # (N * Do, groups * kD * C/groups, H, W): each group's channels taps first, as w2's
    slices = F.reshape(F.stack([tap(i) for i in range(kernel[0])], 3),
                       (n * depth, groups * kernel[0] * cg) + padded[1:])
    w2 = F.reshape(F.transpose(w, (0, 2, 1, 3, 4)), (o, kernel[0] * cg) + kernel[1:])
    out = F.conv2d(slices, w2, b, stride[1:], 0, dilation[1:], groups)
    out = F.reshape(out, (n, depth) + tuple(_shape(out))[1:])
    return F.transpose(out, (0, 2, 1, 3, 4))


def conv_transpose_output_size(name, shape, kernel, stride, padding, dilation, output_size):
    """torch's output_padding for the module's forward(x, output_size) of an x of `shape`:
    the output sizes from min_size = (size - 1) * s - 2p + d * (k - 1) + 1 to min_size + s - 1
    are reachable (torch's _output_padding)."""
    spatial = len(kernel)
    size = tuple(shape)[-spatial:]
    if not isinstance(output_size, (tuple, list)) or len(output_size) not in (
            spatial, len(shape)) or not builtins.all(is_int(v) for v in output_size):
        _fail(f"{name}: output_size must be {spatial} ints (or {len(shape)}, x's shape), got "
              f"{output_size!r}")
    if not builtins.all(isinstance(n, int) for n in size):  # it fits one value of n only
        _fail(f"{name}: output_size needs a known input size, got the symbolic size "
              f"{tuple(size)}; leave output_size out or declare the size concrete")
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


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """torch.nn.functional.conv_transpose3d: x (N, C_in, D, H, W) or (C_in, D, H, W), weight
    (C_in, C_out / groups, kD, kH, kW): conv_transpose2d's phases over three axes, each a
    stride-1 conv3d."""
    return _conv_transpose("conv_transpose3d", 3, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def _conv_transpose(name, spatial, x, w, b, stride, padding, output_padding, groups,
                    dilation):
    nd = spatial + 2
    axes, taps = {1: ("L", "K"), 2: ("H, W", "kH, kW"), 3: ("D, H, W", "kD, kH, kW")}[spatial]
    if _ndim(x) not in (nd - 1, nd):
        _fail(f"{name}: x must be {nd}-d (N, C, {axes}) or {nd - 1}-d, got shape "
              f"{tuple(_shape(x))}")
    if _ndim(w) != nd:
        _fail(f"{name}: weight must be {nd}-d (C_in, C_out/groups, {taps}), got shape "
              f"{tuple(_shape(w))}")
    stride, padding, output_padding, dilation = _settings(
        name, spatial, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation)
    if not is_int(groups) or groups < 1:
        _fail(f"{name}: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    cin, cout_g, *kernel = _shape(w)
    if cin < groups or cout_g == 0:  # torch's rule: no channel to sum over (or none to give)
        # left a result of the bias alone
        _fail(f"{name}: weight {tuple(_shape(w))} is empty: it needs at least groups={groups} "
              "input channels and one output channel per group, as in PyTorch")
    if cin % groups:
        _fail(f"{name}: groups={groups} must divide weight's {cin} input channels")
    cout = cout_g * groups
    if _shape(x)[-nd + 1] != cin:
        _fail(f"{name}: x has {_shape(x)[-nd + 1]} channels, weight {tuple(_shape(w))} takes "
              f"{cin}")
    if b is not None and tuple(_shape(b)) != (cout,):
        _fail(f"{name}: bias must have shape ({cout},), one value per output channel, got "
              f"{tuple(_shape(b))}")
    for what, values, low in (("kernel size", tuple(kernel), 1), ("stride", stride, 1),
                              ("dilation", dilation, 1), ("padding", padding, 0),
                              ("output_padding", output_padding, 0)):
        if builtins.min(values) < low:
            _fail(f"{name}: {what} must be >= {low}, got {values if spatial > 1 else values[0]}")
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:  # torch's rule
            _fail(f"{name}: output_padding must be smaller than either stride or dilation, "
                  f"got output_padding={output_padding}, stride={stride}, dilation={dilation}")
    for what, v in (("weight", w), ("bias", b)):  # as conv2d's check
        why = None if v is None else precision.dtype_clash(F._dtype(x), F._dtype(v))
        if why:
            _fail(f"{name}: x is {F._dtype(x)} and {what} {F._dtype(v)}: {why}; cast one with "
                  ".astype")
    size = _shape(x)[-spatial:]
    if 0 in size:  # torch's rule: an empty batch only (the output size formula gave a
        # result of the bias alone)
        _fail(f"{name}: x has an empty {'length' if spatial == 1 else 'spatial axis'} (shape "
              f"{tuple(_shape(x))}); only an empty batch is taken, as in PyTorch")
    out_size = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, d, op in
                     zip(size, kernel, stride, padding, dilation, output_padding))
    # a symbolic size n (>= 1): the output size is affine in it, (n - 1) * s + c, and must
    # be >= 1 already at n = 1 (torch refuses the sizes where it is not); a phase's rows,
    # ceil(out / s) = n + c', are then one polynomial (_phases)
    settings = (f"input {tuple(size)}, kernel {tuple(kernel)}, padding "
                f"{padding if spatial > 1 else padding[0]}")
    try:
        empty = builtins.any(o < 1 for o in out_size)
    except InconclusiveDim as exc:
        _fail(f"{name}: the output size {out_size} is empty for the least values of a "
              f"symbolic size ({settings}: {exc.message}); declare the size concrete")
    if empty:
        _fail(f"{name}: the output size {out_size} is empty ({settings})")
    unbatched = _ndim(x) == nd - 1
    if unbatched:
        x = F.expand_dims(x, 0)
    if spatial == 1:  # a height of one
        x, w = F.expand_dims(x, 2), F.expand_dims(w, 2)
        kernel, stride, padding, dilation = ([1] + list(kernel), (1,) + stride,
                                             (0,) + padding, (1,) + dilation)
        size, out_size = (1,) + tuple(size), (1,) + out_size
    out = _phases(x, w, b, groups, kernel, stride, padding, dilation, size, out_size, cout)
    if spatial == 1:
        out = F.squeeze(out, 2)
    return F.squeeze(out, 0) if unbatched else out


def _phases(x, w, b, groups, kernel, stride, padding, dilation, size, out_size, cout):
    """(N, C_out, Ho, Wo) as s*s stride-1 convolutions (conv2d, its im2col and GEMM), one
    per output phase ((N, C_out, Do, Ho, Wo): s*s*s conv3d's, each axis as below): the rows
    r, r + s, r + 2s, ... (r < s) of the output take only the kernel taps t with t*d - p = r
    (mod s), each row m reading input row m - q_t, q_t = (t*d - p - r) / s. Those taps are
    evenly spaced, so a phase is a correlation of x, padded (or cut) to line up, with the
    flipped sub-kernel at dilation d / gcd(s, d). The phases are interleaved by one
    transpose. No multiplications by inserted zeros (the dilate-then-convolve form spends
    s*s times the work), and the gradients are conv2d's: summing each tap's block into the
    output instead cost the backward a full-size copy of the GEMM's result per tap."""
    n, cin, kernel = _shape(x)[0], _shape(w)[0], tuple(kernel)
    spatial = len(kernel)
    axes, rank, ones = tuple(range(2, 2 + spatial)), 2 + spatial, (1,) * spatial
    conv = F.conv2d if spatial == 2 else conv3d
    # the convolution's layout (C_out, C_in / groups, *kernel), group by group
    wc = F.reshape(F.transpose(F.reshape(w, (groups, cin // groups, cout // groups) + kernel),
                               (0, 2, 1) + tuple(range(3, 3 + spatial))),
                   (cout, cin // groups) + kernel)
    grid = tuple(-floor_div(-o, s) for o, s in zip(out_size, stride))  # a phase's rows, columns
    if b is not None and F._dtype(b) != F._dtype(x):  # under autocast: torch casts it too
        b = F.cast(b, F._dtype(x))
    phases, empty = [], None
    for phase in itertools.product(*(range(s) for s in stride)):
        per_axis = [_phase_axis(*args) for args in zip(kernel, stride, padding, dilation,
                                                       phase, grid, size)]
        if builtins.any(a is None for a in per_axis):  # no tap lands on this phase
            if empty is None:
                empty = F.zeros((n, cout) + grid, F._dtype(x))
                empty = empty if b is None else empty + F.reshape(b, (cout,) + ones)
            phases.append(empty)
            continue
        xp, kernel_p, crops = x, wc, []
        for axis, (taps, step, cut, pad) in zip(axes, per_axis):
            if builtins.any(cut) and not isinstance(_shape(xp)[axis], int):
                # a symbolic size may be cut whole (no tap reads x at n = 1, a padding
                # wider than the kernel): the rows of the uncut x's result from cut[0] on
                # are the cut x's (each result row reads the same rows of x), for every n
                crops.append((axis, cut[0]))
            elif builtins.any(cut):
                starts, stops = [0] * rank, list(_shape(xp))
                starts[axis], stops[axis] = cut[0], stops[axis] - cut[1]
                xp = F.slice_(xp, starts, stops, [1] * rank)
            if builtins.any(pad):
                xp = F._pad2d(xp, pad, (0, 0), 0.0, (axis, axis))
            # the phase's taps, last first (the convolution correlates)
            kernel_p = F.swapaxes(F.take(F.swapaxes(kernel_p, axis, 0), np.asarray(taps)),
                                  0, axis)
        out = conv(xp, kernel_p, b, 1, 0, tuple(a[1] for a in per_axis), groups)
        for axis, start in crops:
            starts, stops = [0] * rank, list(_shape(out))
            starts[axis], stops[axis] = start, start + grid[axis - 2]
            out = F.slice_(out, starts, stops, [1] * rank)
        phases.append(out)
    if builtins.all(s == 1 for s in stride):
        out = phases[0]
    else:
        # (s0, s1, .., N, M0, M1, .., C) -> (N, M0, s0, M1, s1, .., C): row m * s + r of
        # phase r along each axis. In conv2d's channels-last layout (its NCHW result is a
        # transpose of it) whole channel vectors move; a 6-d transpose to NCHW directly was
        # 3x slower
        last = (0,) + axes + (1,)
        out = F.stack([F.transpose(p, last) for p in phases], 0)
        interleave = (spatial,) + builtins.sum(((spatial + 1 + i, i) for i in range(spatial)),
                                               ()) + (2 * spatial + 1,)
        out = F.reshape(F.transpose(F.reshape(out, tuple(stride) + (n,) + grid + (cout,)),
                                    interleave),
                        (n,) + tuple(g * s for g, s in zip(grid, stride)) + (cout,))
        out = F.transpose(F.slice_(out, (0,) * rank, (n,) + tuple(out_size) + (cout,),
                                   (1,) * rank),
                          (0, rank - 1) + tuple(range(1, rank - 1)))
    return F.slice_(out, (0,) * rank, (n, cout) + tuple(out_size), (1,) * rank)


def _phase_axis(k, s, p, d, r, rows, n_in):
    """Along one axis, for output phase r of `rows` rows: the taps on it (last first), their
    spacing in input rows, and the input rows (cut before, cut after) and zeros (before,
    after) that line x up with them; None where no tap lands or all read outside x."""
    taps = [t for t in range(k) if (t * d - p - r) % s == 0]
    if not taps:
        return None
    q = [(t * d - p - r) // s for t in taps]  # output row m reads input row m - q
    step = q[1] - q[0] if len(q) > 1 else 1
    before = q[-1]  # padded row i is input row i - q[-1]
    after = rows + (q[-1] - q[0]) - n_in - before  # padded rows: rows + the kernel's reach
    cut = (builtins.max(0, -before), builtins.max(0, -after))
    if isinstance(n_in, int) and cut[0] + cut[1] >= n_in:  # (a symbolic one: _phases)
        return None
    return taps[::-1], step, cut, (builtins.max(0, before), builtins.max(0, after))


# ---- adaptive pooling -------------------------------------------------------------------------
_AXIS_LETTERS = {1: "L", 2: "H, W", 3: "D, H, W"}  # (N, C, ...) in the pools' messages


def adaptive_avg_pool2d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool2d of x (N, C, H, W) or (C, H, W): output cell i
    of an axis of size n averages x's window floor(i * n / out) .. ceil((i + 1) * n / out)
    (out larger than n too). output_size an int or a pair; an entry None of the pair keeps
    that size ((None, 3)), as torch's; a bare None is refused, as torch refuses it."""
    return _adaptive("adaptive_avg_pool2d", 2, x, output_size, "avg")


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool2d over torch's windows (see adaptive_avg_pool2d);
    a window's gradient goes to its first maximum in row-major order, as torch's.
    return_indices=True: (out, indices), int64 without gradient, as torch's: h * W + w, where
    in its (H, W) plane each window's largest value is (the first in row-major order on ties;
    a NaN: the first, where torch's takes the last)."""
    return _adaptive("adaptive_max_pool2d", 2, x, output_size, "max", return_indices)


def adaptive_avg_pool1d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool1d of x (N, C, L) or (C, L)."""
    return _adaptive("adaptive_avg_pool1d", 1, x, output_size, "avg")


def adaptive_max_pool1d(x, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool1d of x (N, C, L) or (C, L); return_indices=True:
    (out, indices), the position along L of each window's largest value."""
    return _adaptive("adaptive_max_pool1d", 1, x, output_size, "max", return_indices)


def _adaptive(name, spatial, x, output_size, kind, return_indices=False):
    if _ndim(x) not in (spatial + 1, spatial + 2):
        _fail(f"{name}: x must be {spatial + 2}-d (N, C, {_AXIS_LETTERS[spatial]}) or "
              f"{spatial + 1}-d, got shape {tuple(_shape(x))}")
    # None keeps an axis's input size only as an entry of a tuple, as torch's (a bare
    # None, there "object of type 'NoneType' has no len()", was taken for (None, None))
    sizes = (tuple(output_size) if isinstance(output_size, (tuple, list))
             else (output_size,) * spatial)
    if output_size is None or len(sizes) != spatial or not builtins.all(
            (is_int(s) and s >= 0) or (s is None and spatial > 1) for s in sizes):
        such = ("such ints (an entry None keeps that input size)" if spatial > 1
                else "such int")
        _fail(f"{name}: output_size must be an int >= 0 or a tuple of {spatial} {such}, got "
              f"{output_size!r}")
    if kind == "avg" and not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    axes = tuple(range(_ndim(x) - spatial, _ndim(x)))
    if kind == "max":
        F._flag(name, "return_indices", return_indices)
    for axis, out in zip(axes, sizes):
        n = _shape(x)[axis]
        # a symbolic size (>= 1) pools into one cell for every value (global pooling, a
        # CNN's head over images of any size) or keeps its size; other windows, and the
        # places in a plane of unknown size, differ per value
        if not isinstance(n, int) and out not in (None, 1):
            _fail(f"{name}: a symbolic size {n} takes output_size 1"
                  f"{' or None' if spatial > 1 else ''} only, got {output_size!r}; declare "
                  "the size concrete for other windows")
        if not isinstance(n, int) and return_indices:
            _fail(f"{name}: return_indices needs a known spatial size, got a symbolic size "
                  f"{n}; declare it concrete")
        if n == 0:
            _fail(f"{name}: x has an empty spatial axis (shape {tuple(_shape(x))})")
    if kind == "max":
        if return_indices:  # the values (and their gradient) as without; the places beside
            return (_adaptive(name, spatial, x, output_size, kind),
                    _adaptive_max_with_indices(x, axes, sizes)[1])
    if builtins.all(out == 1 for out in sizes):  # global pooling, the common case
        if kind == "avg":
            return F.mean(x, axes, keepdims=True)
        lead = tuple(_shape(x)[:axes[0]])
        window = math.prod(_shape(x)[a] for a in axes)
        flat = F.reshape(x, lead + (window,))  # the window in row-major order (N may be 0)
        return F.reshape(_first_max(flat, -1), lead + (1,) * spatial)
    given = x
    # separable: a window is a product of intervals. The last axis first: the first maximum
    # of each row's maxima, then the first of those, is the row-major first
    for axis, out in reversed(list(zip(axes, sizes))):
        if out is not None:
            x = _adaptive_axis(x, axis, int(out), kind)
    return F._unchanged(x) if x is given else x


def _adaptive_axis(x, axis, out, kind):
    """x pooled along `axis` into `out` cells over torch's windows."""
    shape, n = _shape(x), _shape(x)[axis]
    if isinstance(n, int) and out == n:
        return x
    if out == 1:  # one window of the whole axis (its size may be symbolic)
        pooled = F.mean(x, axis) if kind == "avg" else _first_max(x, axis)
        return F.expand_dims(pooled, axis)
    if out == 0:  # torch gives an empty result
        stops = list(shape)
        stops[axis] = 0
        return F.slice_(x, (0,) * len(shape), stops, (1,) * len(shape))
    if n % out == 0:  # equal windows side by side: one reshape and a reduction
        split = F.reshape(x, shape[:axis] + (out, n // out) + shape[axis + 1:])
        return F.mean(split, axis + 1) if kind == "avg" else _first_max(split, axis + 1)
    starts = np.arange(out) * n // out
    ends = -(-(np.arange(out) + 1) * n // out)
    # the windows' elements gathered as (out, longest) rows; past a window's end the row
    # repeats a position, masked: by 0 for a sum, by the dtype's least value for a max, so
    # that it never wins. (An averaging matrix contracted along the axis multiplied every
    # element by the other windows' zeros: one inf made theirs 0 * inf = NaN.)
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
    if kind == "avg":
        counts = (ends - starts).reshape((out,) + (1,) * (len(shape) - 1)).astype(dtype)
        pooled = F.sum(F.where(mask, rows, 0.0), 1) / counts
    else:
        pooled = _first_max(F.where(mask, rows, lowest), 1)
    return F.swapaxes(pooled, 0, axis)


def _adaptive_max_with_indices(x, axes, sizes):
    """(pooled, indices) over torch's windows, an axis at a time from the last: along each
    axis the window's values and the places (index in the plane) they carry, the least place
    among the window's maxima kept. The last axis first, then the one before: the first row
    holding the window's max, at its first column there, is torch's row-major first."""
    plane = tuple(_shape(x)[a] for a in axes)
    places = F.broadcast_to(np.arange(math.prod(plane), dtype=np.int64).reshape(plane),
                            _shape(x))
    for axis, out in reversed(list(zip(axes, sizes))):
        if out is not None:
            x, places = _adaptive_axis_places(x, places, axis, int(out))
    return x, places


def _adaptive_axis_places(x, places, axis, out):
    """x pooled by max along `axis` into `out` cells over torch's windows, with the place of
    each window's (first) largest value."""
    shape, n = _shape(x), _shape(x)[axis]
    if out == 0:  # torch gives empty results
        stops = list(shape)
        stops[axis] = 0
        cut = (0,) * len(shape), stops, (1,) * len(shape)
        return F.slice_(x, *cut), F.slice_(places, *cut)
    starts = np.arange(out) * n // out
    ends = -(-(np.arange(out) + 1) * n // out)
    longest = int(builtins.max(ends - starts))
    offsets = np.arange(longest)
    index = np.minimum(starts[:, None] + offsets, ends[:, None] - 1).reshape(-1)
    inside = ((starts[:, None] + offsets) < ends[:, None]).reshape(
        (out, longest) + (1,) * (len(shape) - 1))
    dtype = np.dtype(F._dtype(x))
    lowest = (-math.inf if is_float(dtype) else 0 if dtype == np.bool_
              else int(np.iinfo(dtype).min))

    def windows(v):  # (out, longest, ...rest) along the moved axis
        moved = F.swapaxes(v, axis, 0)
        return F.reshape(F.take(moved, index), (out, longest) + _shape(moved)[1:])
    values = F.where(inside, windows(x), lowest)  # past a window's end: never the max
    # a repeated position past the end carries a place no greater than the real one's
    last = (0,) + tuple(range(2, len(shape) + 1)) + (1,)  # the window's taps last
    taps, tap_places = F.transpose(values, last), F.transpose(windows(places), last)
    pooled = F.max(taps, -1)
    first = F._first_largest(taps, pooled, tap_places)
    return F.swapaxes(pooled, 0, axis), F.swapaxes(first, 0, axis)


_WHERE_CHAIN = 16  # windows up to this long pick their first maximum by a chain of wheres


def _first_max(x, axis):
    """The largest element along `axis`, its gradient all to the first of tied maxima (the
    element at argmax), as torch's max pools give it, not shared between them."""
    if not is_float(F._dtype(x)):  # (no gradient to place)
        return F.max(x, axis)
    shape = _shape(x)
    axis = axis % len(shape)
    if isinstance(shape[axis], int) and shape[axis] <= _WHERE_CHAIN:  # a short window
        # (of a known length): elementwise ops, which fuse
        def element(j):
            starts, stops = [0] * len(shape), list(shape)
            starts[axis], stops[axis] = j, j + 1
            return F.squeeze(F.slice_(x, starts, stops, [1] * len(shape)), axis)
        return F._first_of_maxima([element(j) for j in range(shape[axis])])
    index = F.argmax(F.stop_gradient(x), axis, keepdims=True)
    if not isinstance(shape[axis], int):  # (a gather needs a known length) the element at
        # the argmax picked by a mask of positions along the axis
        places = F.reshape(F.arange(shape[axis]),
                           tuple(n if a == axis else 1 for a, n in enumerate(shape)))
        return F.sum(F.where(F.equal(places, index), x, 0.0), axis)
    return F.squeeze(_take_along(x, index, axis, in_range=True), axis)


# ---- 1-d pooling ------------------------------------------------------------------------------
def _pool1d_args(name, x, kernel_size, stride, padding, dilation, ceil_mode):
    """The 1-d settings checked under the 1-d names (what max_pool2d would say of its
    (1, k) form is not what the user wrote), as (1, k) pairs for the 2-d pool. A kernel
    longer than the padded input still has ceil_mode's one window, as in torch."""
    (k,), (s,), (p,), (d,) = _pool_settings(name, 1, x, kernel_size, stride, padding,
                                            dilation, ceil_mode)
    return (1, k), (1, s), (0, p), (1, d)


_POOL_AXES = {1: ("input",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def _pool_settings(name, spatial, x, kernel_size, stride, padding, dilation, ceil_mode):
    """kernel, stride, padding and dilation of a pool over x's last `spatial` axes, each a
    tuple of one int per axis, checked under the pool's own name as torch checks them
    (stride None: the kernel's; padding at most half the kernel; at least one window along
    every axis)."""
    if _ndim(x) not in (spatial + 1, spatial + 2):
        axes = _AXIS_LETTERS[spatial]
        _fail(f"{name}: x must be {spatial + 2}-d (N, C, {axes}) or {spatial + 1}-d (C, "
              f"{axes}), got shape {tuple(_shape(x))}")
    stride = kernel_size if stride is None or stride == () or stride == [] else stride
    kernel, stride, padding, dilation = _settings(
        name, spatial, kernel_size=kernel_size, stride=stride, padding=padding,
        dilation=dilation)
    F._flag(name, "ceil_mode", ceil_mode)
    for what, v, low in (("kernel_size", kernel, 1), ("stride", stride, 1),
                         ("dilation", dilation, 1), ("padding", padding, 0)):
        if builtins.min(v) < low:
            _fail(f"{name}: {what} must be >= {low}, got {v if spatial > 1 else v[0]}")
    if builtins.any(2 * p > k for p, k in zip(padding, kernel)):
        shown = (padding, kernel) if spatial > 1 else (padding[0], kernel[0])
        _fail(f"{name}: padding {shown[0]} must be at most half the kernel size {shown[1]}, "
              "as in PyTorch")
    for n, k, s, p, d, what in zip(_shape(x)[-spatial:], kernel, stride, padding, dilation,
                                   _POOL_AXES[spatial]):
        _pool_windows(name, n, k, s, p, d, ceil_mode, what,
                      "length" if spatial == 1 else what)
    return kernel, stride, padding, dilation


def _pool_windows(name, length, k, s, p, d, ceil_mode, what="input", symbol="length"):
    """torch's window count along one axis of a pool of x's `length` (`what`: the axis, as
    the messages name it): (span / s rounded down, or up in ceil_mode) + 1, less
    ceil_mode's last window where it would start in the padding after x; refused under the
    pool's own name where none fits (what a 2-d pool of its (1, k) form would say names
    another op and other settings). A symbolic length: the same polynomial for every
    value, or refused."""
    span = length + 2 * p - d * (k - 1) - 1  # the room for windows after the first
    try:
        windows = floor_div(span + s - 1 if ceil_mode else span, s) + 1
        if ceil_mode and windows > 0 and (windows - 1) * s >= length + p:
            windows -= 1
        empty = windows < 1
    except InconclusiveDim as exc:
        _fail(f"{name}: no output size for every value of the symbolic {symbol} {length} "
              f"(kernel {k}, stride {s}, padding {p}, dilation {d}, ceil_mode {ceil_mode}): "
              f"{exc.message}")
    if empty:
        _fail(f"{name}: the kernel {d * (k - 1) + 1} (dilated) is longer than the padded "
              f"{what} {length + 2 * p}")
    return windows


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool1d of x (N, C, L) or (C, L): max_pool2d over a height of
    one (its -inf padding, ceil_mode and gradient rule: a window's gradient to its first
    maximum inside x, as torch's). return_indices=True: (out, indices), the position along L
    of each window's largest value, as torch's."""
    F._flag("max_pool1d", "return_indices", return_indices)
    kernel, stride, padding, dilation = _pool1d_args("max_pool1d", x, kernel_size, stride,
                                                     padding, dilation, ceil_mode)
    out = F.max_pool2d(F.expand_dims(x, -2), kernel, stride, padding, dilation, ceil_mode,
                       return_indices)
    if return_indices:  # the plane is one row: h * L + w is w
        return tuple(F.squeeze(o, -2) for o in out)
    return F.squeeze(out, -2)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """torch.nn.functional.avg_pool1d of x (N, C, L) or (C, L): avg_pool2d over a height of
    one."""
    kernel, stride, padding, _ = _pool1d_args("avg_pool1d", x, kernel_size, stride, padding,
                                              1, ceil_mode)
    return F.squeeze(F.avg_pool2d(F.expand_dims(x, -2), kernel, stride, padding, ceil_mode,
                                  count_include_pad), -2)


# ---- pixel shuffle ----------------------------------------------------------------------------
def _factor(name, what, factor):
    if not is_int(factor) or factor < 1:
        _fail(f"{name}: {what} must be a positive int, got {factor!r}")
    return int(factor)


def _known(name, sizes):
    """Sizes a shuffle divides must be known: a symbolic one has no answer to n % r."""
    for what, n in sizes:
        if not isinstance(n, int):
            _fail(f"{name}: needs a known {what}, got the symbolic size {n}")


def pixel_shuffle(x, upscale_factor):
    """torch.nn.functional.pixel_shuffle: (*, C * r * r, H, W) -> (*, C, H * r, W * r),
    output pixel (h * r + i, w * r + j) of channel c from input channel c * r * r + i * r + j."""
    r = _factor("pixel_shuffle", "upscale_factor", upscale_factor)
    if _ndim(x) < 3:
        _fail(f"pixel_shuffle: x must have at least 3 axes (*, C, H, W), got shape "
              f"{tuple(_shape(x))}")
    *lead, c, h, w = _shape(x)
    _known("pixel_shuffle", (("channel count", c),))
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
    _known("pixel_unshuffle", (("height", h), ("width", w)))
    for what, n in (("height", h), ("width", w)):
        if n % r:
            _fail(f"pixel_unshuffle: x's {what} {n} must divide by downscale_factor {r}")
    k = len(lead)
    y = F.reshape(x, tuple(lead) + (c, h // r, r, w // r, r))
    y = F.transpose(y, tuple(range(k + 1)) + (k + 2, k + 4, k + 1, k + 3))
    return F.reshape(y, tuple(lead) + (c * r * r, h // r, w // r))


# ---- max unpooling ---------------------------------------------------------------------------
def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool2d: x (N, C, H, W) or (C, H, W) placed at `indices`
    (max_pool2d(..., return_indices=True)'s: h * W_out + w in each output plane), zeros
    elsewhere; the output (H - 1) * stride - 2 * padding + kernel_size high (and wide)
    unless output_size (2 ints, or x's rank of them) picks another within one stride of it.
    The gradient of each value is the output gradient at its index, as torch's (a value
    that is not finite: 0). Where overlapping windows gave one index twice (stride <
    kernel_size), torch writes one of the equal values, and so does this."""
    return _max_unpool("max_unpool2d", 2, x, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool1d of x (N, C, L) or (C, L): see max_unpool2d."""
    return _max_unpool("max_unpool1d", 1, x, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool3d of x (N, C, D, H, W) or (C, D, H, W), indices
    max_pool3d's (d * H_out * W_out + h * W_out + w): see max_unpool2d."""
    return _max_unpool("max_unpool3d", 3, x, indices, kernel_size, stride, padding,
                       output_size)


def _max_unpool(name, spatial, x, indices, kernel_size, stride, padding, output_size):
    shape = tuple(_shape(x))
    if len(shape) not in (spatial + 1, spatial + 2):
        _fail(f"{name}: x must be {spatial + 2}-d or {spatial + 1}-d, got shape {shape}")
    if tuple(_shape(indices)) != shape:
        _fail(f"{name}: indices must have x's shape {shape}, got {tuple(_shape(indices))}")
    if is_float(F._dtype(indices)) or F._dtype(indices) == np.bool_:
        _fail(f"{name}: indices must be integers (max_pool's return_indices), got "
              f"{F._dtype(indices)}")
    if not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    kernel, = _settings(name, spatial, kernel_size=kernel_size)
    stride, padding = _settings(name, spatial, stride=kernel if stride is None else stride,
                                padding=padding)
    size = shape[-spatial:]
    if not builtins.all(isinstance(n, int) for n in size):
        _fail(f"{name}: needs known spatial sizes, got {size}")
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(size, stride, padding, kernel))
    if output_size is None:
        out = default
    else:
        # torch's rule: the spatial sizes, or (N, C) and them, whatever x's rank
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (
                spatial, spatial + 2) or not builtins.all(is_int(v) for v in output_size):
            _fail(f"{name}: output_size must be {spatial} ints (or {spatial + 2}: N, C and "
                  f"those), got {output_size!r}")
        out = tuple(int(v) for v in tuple(output_size)[-spatial:])
        for want, least, s in zip(out, default, stride):  # torch's range
            if not least - s < want < least + s:
                _fail(f"{name}: output_size {tuple(output_size)} is not reachable: each size "
                      f"must be within one stride of {default}")
    if builtins.min(out) <= 0:
        _fail(f"{name}: the output would be empty ({out}); check kernel_size, stride and "
              "padding")
    lead, cells, each = shape[:-spatial], math.prod(size), math.prod(out)
    if builtins.any(not isinstance(n, int) for n in lead):
        _fail(f"{name}: needs a known batch and channel count, got {lead}")
    planes = math.prod(lead)
    if planes * cells == 0:  # nothing to place (an empty batch): zeros of the output's shape
        return F.zeros(lead + out, F._dtype(x))
    if F._runs_now(indices):  # (torch checks them; a traced plan cannot raise on data)
        found = np.asarray(getattr(indices, "data", indices))
        if found.size and (found.min() < 0 or found.max() >= each):
            _fail(f"{name}: an index is outside the output plane of {each} cells "
                  f"(from {int(found.min())} to {int(found.max())})")
    # each plane's indices moved to its stretch of one flat output
    offsets = (np.arange(planes, dtype=np.int64) * each).reshape(planes, 1)
    places = F.reshape(F.add(F.reshape(F.cast(indices, "int64"), (planes, cells)), offsets),
                       (planes * cells,))
    values = F.reshape(x, (planes * cells,))
    rows = planes * each
    # overlapping windows repeat an index (with the same value): only the first of each is
    # placed, found among the places sorted stably (a sum and a division by the count were
    # an ulp off with three or more)
    order = argsort(places)
    ordered = F.take(places, order)
    differs = F.not_equal(F.slice_(ordered, (1,), (planes * cells,), (1,)),
                          F.slice_(ordered, (0,), (planes * cells - 1,), (1,)))
    first_sorted = F.concatenate([F.full((1,), True, "bool"), differs], 0)
    first = F.take(first_sorted, argsort(order))  # back in the values' order
    placed = F.scatter_add(F.where(first, values, 0.0), places, rows)
    # placed's own gradient gives each first value the output's gradient at its index, inf
    # and NaN too (as torch); the repeats, cut by the mask, get theirs through a zero term
    # (x - x, so finite repeats only: inf - inf would be NaN)
    repeats = F.where(F.logical_and(F.logical_not(first), F.isfinite(values)), values, 0.0)
    through = F.scatter_add(F.sub(repeats, F.stop_gradient(repeats)), places, rows)
    return F.reshape(F.add(placed, through), lead + out)
