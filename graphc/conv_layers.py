"""torch.nn's other CNN layers on graphc.nn's Module: Conv3d, ConvTranspose1d/2d/3d, the
adaptive pools, MaxUnpool1d/2d/3d, Dropout1d/2d/3d, PixelShuffle/PixelUnshuffle, the padding
layers and MaxPool1d / AvgPool1d.
Each computes its function in ir/ops/conv_extra.py (or the core API) with its settings read
as guarded settings at every call, so a compiled plan traced with one value is not reused
after the user sets another."""
from __future__ import annotations

import math

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops import conv_extra as C
from ir.types import is_int

from .dropouts import _channel_dropout
from .nn import (Dropout, Module, Parameter, _AvgPool, _conv_init, _conv_repr, _Functional,
                 _layer_dtype, _MaxPool, _per_axis, _rng, _size, _window_repr)


def _fail(message):
    raise GraphcError(message, (user_location(),))


class _ConvTranspose(Module):
    _spatial = 2
    _function = staticmethod(C.conv_transpose2d)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 rng=None, dtype="float32"):
        name = type(self).__name__
        if padding_mode != "zeros":  # torch's rule
            _fail(f"{name}: only padding_mode 'zeros' is supported, got {padding_mode!r}")
        in_channels = _size(name, "in_channels", in_channels, least=1)
        out_channels = _size(name, "out_channels", out_channels, least=1)
        groups = _size(name, "groups", groups, least=1)
        if in_channels % groups or out_channels % groups:
            _fail(f"{name}: in_channels {in_channels} and out_channels {out_channels} must "
                  f"divide by groups {groups}")
        kernel, = C._settings(name, self._spatial, kernel_size=kernel_size)
        if min(kernel) < 1:
            _fail(f"{name}: kernel_size must be >= 1, got {kernel_size!r}")
        # torch's layout (in, out / groups, *kernel); its kaiming_uniform(a=sqrt(5)) and
        # bias init take fan_in from that tensor's second axis: out / groups * kernel area
        rng, dtype = _rng(rng), _layer_dtype(name, dtype)
        fan_in = out_channels // groups * math.prod(kernel)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (in_channels, out_channels // groups) + kernel
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype))
        else:
            object.__setattr__(self, "bias", None)
        for setting, value in [("stride", stride), ("padding", padding),
                               ("output_padding", output_padding), ("groups", int(groups)),
                               ("dilation", dilation), ("padding_mode", padding_mode)]:
            object.__setattr__(self, setting, value)

    def forward(self, x, output_size=None):
        name = type(self).__name__
        stride, padding, output_padding, groups, dilation, mode = (
            self._setting(s, x) for s in ("stride", "padding", "output_padding", "groups",
                                          "dilation", "padding_mode"))
        if mode != "zeros":  # set after construction: torch refuses it at the call
            _fail(f"{name}: only padding_mode 'zeros' is supported, got {mode!r}")
        if output_size is not None:  # torch: output_padding from the wanted size, not the set
            n = self._spatial
            s, p, d = C._settings(name, n, stride=stride, padding=padding, dilation=dilation)
            output_padding = C.conv_transpose_output_size(
                name, F._shape(x), F._shape(self.weight)[2:], s, p, d,
                output_size)
        return self._function(x, self.weight, self.bias, stride, padding, output_padding,
                              groups, dilation)

    extra_repr = _conv_repr


class ConvTranspose2d(_ConvTranspose):
    """torch.nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros') over (N, C, H,
    W) or (C, H, W) (graphc.conv_transpose2d). The weight in torch's layout (in_channels,
    out_channels / groups, kH, kW) and initialisation; forward(x, output_size=None) as
    torch's."""


class ConvTranspose1d(_ConvTranspose):
    """torch.nn.ConvTranspose1d over (N, C, L) or (C, L) (graphc.conv_transpose1d): weight
    (in_channels, out_channels / groups, K)."""

    _spatial = 1
    _function = staticmethod(C.conv_transpose1d)


class ConvTranspose3d(_ConvTranspose):
    """torch.nn.ConvTranspose3d over (N, C, D, H, W) or (C, D, H, W)
    (graphc.conv_transpose3d): weight (in_channels, out_channels / groups, kD, kH, kW)."""

    _spatial = 3
    _function = staticmethod(C.conv_transpose3d)


class Conv3d(Module):
    """torch.nn.Conv3d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, groups=1, bias=True, padding_mode='zeros') over (N, C, D, H, W) or (C, D, H,
    W) (graphc.conv3d): the weight in torch's layout (out_channels, in_channels / groups, kD,
    kH, kW) and initialisation, as Conv2d's; padding_mode 'zeros', 'reflect', 'replicate' or
    'circular'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", rng=None,
                 dtype="float32"):
        kernel, = C._settings("Conv3d", 3, kernel_size=kernel_size)
        _conv_init(self, "Conv3d", in_channels, out_channels, kernel, stride, padding,
                   dilation, groups, bias, padding_mode, rng, dtype)

    def forward(self, x):
        stride, padding, dilation, groups, mode = (self._setting(name, x) for name in (
            "stride", "padding", "dilation", "groups", "padding_mode"))
        if mode != "zeros" and not (isinstance(padding, str) and padding == "valid"):
            # as torch: x padded by the mode, then a convolution without padding
            if len(F._shape(x)) not in (4, 5):
                _fail(f"Conv3d: x must be 5-d (N, C, D, H, W) or 4-d (C, D, H, W), got shape "
                      f"{tuple(F._shape(x))}")
            given = None
            if isinstance(padding, str) and padding == "same":
                stride3, dilation3 = C._settings("Conv3d", 3, stride=stride, dilation=dilation)
                padding = F._same_padding("Conv3d", F._shape(self.weight)[2:], stride3,
                                          dilation3)
            else:
                given, = C._settings("Conv3d", 3, padding=padding)
                padding = [(p, p) for p in given]
            x, padding = F._pad2d_mode("Conv3d", x, padding, mode, given), 0
        return C.conv3d(x, self.weight, self.bias, stride, padding, dilation, groups)

    extra_repr = _conv_repr


# ---- pooling ----------------------------------------------------------------------------------
class _AdaptivePool(_Functional):
    _settings = ("output_size",)

    def __init__(self, output_size):
        self._keep(output_size=output_size)


class _AdaptiveMaxPool(_Functional):
    _settings = ("output_size", "return_indices")  # return_indices: forward gives (out, indices)
    _repr_format = "output_size={output_size}"  # (torch's shows no return_indices)

    def __init__(self, output_size, return_indices=False):
        self._keep(output_size=output_size, return_indices=return_indices)


class AdaptiveAvgPool2d(_AdaptivePool):
    """torch.nn.AdaptiveAvgPool2d(output_size) (graphc.adaptive_avg_pool2d)."""

    _function = staticmethod(C.adaptive_avg_pool2d)


class AdaptiveAvgPool1d(_AdaptivePool):
    """torch.nn.AdaptiveAvgPool1d(output_size) (graphc.adaptive_avg_pool1d)."""

    _function = staticmethod(C.adaptive_avg_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """torch.nn.AdaptiveMaxPool2d(output_size) (graphc.adaptive_max_pool2d)."""

    _function = staticmethod(C.adaptive_max_pool2d)


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """torch.nn.AdaptiveMaxPool1d(output_size) (graphc.adaptive_max_pool1d)."""

    _function = staticmethod(C.adaptive_max_pool1d)


class MaxPool1d(_MaxPool):
    """torch.nn.MaxPool1d (graphc.max_pool1d)."""

    _function = staticmethod(C.max_pool1d)


class _MaxUnpool(_Functional):
    """torch's MaxUnpool1d/2d/3d(kernel_size, stride=None, padding=0): forward(x, indices,
    output_size=None), the indices a max pool's return_indices gave."""

    _settings = ("kernel_size", "stride", "padding")
    extra_repr = _window_repr

    def __init__(self, kernel_size, stride=None, padding=0):
        self._keep(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x, indices, output_size=None):
        return self._function(x, indices, *(self._setting(name, x) for name in self._settings),
                              output_size=output_size)


class MaxUnpool1d(_MaxUnpool):
    """torch.nn.MaxUnpool1d (graphc.max_unpool1d)."""

    _function = staticmethod(C.max_unpool1d)
    _repr_axes = 1


class MaxUnpool2d(_MaxUnpool):
    """torch.nn.MaxUnpool2d (graphc.max_unpool2d)."""

    _function = staticmethod(C.max_unpool2d)
    _repr_axes = 2


class MaxUnpool3d(_MaxUnpool):
    """torch.nn.MaxUnpool3d (graphc.max_unpool3d)."""

    _function = staticmethod(C.max_unpool3d)
    _repr_axes = 3


class AvgPool1d(_AvgPool):
    """torch.nn.AvgPool1d (graphc.avg_pool1d)."""

    _function = staticmethod(C.avg_pool1d)
    _repr_axes = 1


# ---- pixel shuffle ----------------------------------------------------------------------------
class PixelShuffle(_Functional):
    """torch.nn.PixelShuffle(upscale_factor) (graphc.pixel_shuffle)."""

    _function = staticmethod(C.pixel_shuffle)
    _settings = ("upscale_factor",)

    def __init__(self, upscale_factor):
        self._keep(upscale_factor=upscale_factor)


class PixelUnshuffle(_Functional):
    """torch.nn.PixelUnshuffle(downscale_factor) (graphc.pixel_unshuffle)."""

    _function = staticmethod(C.pixel_unshuffle)
    _settings = ("downscale_factor",)

    def __init__(self, downscale_factor):
        self._keep(downscale_factor=downscale_factor)


# ---- padding layers ---------------------------------------------------------------------------
def _torch_pad(name, spatial, mode, x, padding, value=0.0):
    """x padded as torch's F.pad(x, pads, mode, value) by a padding layer over the last
    `spatial` axes: padding an int or (left, right[, top, bottom[, front, back]]). A negative
    side crops, as torch's: reflect and edge read x itself there (pad the other side, then
    cut: x[map(i - left)] at output i), constant and wrap pad what the cut leaves."""
    pads = _per_axis(padding, 2 * spatial)
    if len(pads) != 2 * spatial or not all(is_int(p) for p in pads):
        sides = ["left, right", "left, right, top, bottom",
                 "left, right, top, bottom, front, back"][spatial - 1]
        _fail(f"{name}: padding must be an int or a tuple of {2 * spatial} ints ({sides}), "
              f"got {padding!r}")
    nd = len(F._shape(x))
    if mode != "constant" and nd not in (spatial + 1, spatial + 2):
        _fail(f"{name}: x must be {spatial + 2}-d or {spatial + 1}-d, got shape "
              f"{tuple(F._shape(x))}")
    if nd < spatial:
        _fail(f"{name}: x must have at least {spatial} axes, got shape {tuple(F._shape(x))}")
    widths, cuts = [(0, 0)] * nd, [(0, 0)] * nd
    emptied = []  # (axis, size) of each axis reflect or edge crops to nothing
    for k in range(spatial):  # pads name the last axis first, as torch's
        axis = nd - 1 - k
        before, after = pads[2 * k], pads[2 * k + 1]
        size = F._shape(x)[axis]
        if min(before, after) < 0:
            cut = (max(0, -before), max(0, -after))
            if (size + before + after < 0 if mode in ("reflect", "edge")  # torch's limits
                    else size - cut[0] - cut[1] < 0):
                _fail(f"{name}: padding {tuple(pads)} crops more than axis {axis}'s {size}")
            if mode in ("reflect", "edge") and size + before + after == 0:
                emptied.append((axis, size))
            before, after = max(0, before), max(0, after)
            if mode in ("reflect", "edge"):  # cut from the padded result
                cuts[axis] = cut
            else:
                starts, stops = [0] * nd, list(F._shape(x))
                starts[axis], stops[axis] = cut[0], size - cut[1]
                x = F.slice_(x, starts, stops, [1] * nd)
                size -= cut[0] + cut[1]
        most = {"reflect": size - 1, "wrap": size}.get(mode)
        if most is not None and max(before, after) > most:
            cropped = mode == "wrap" and min(pads) < 0  # (torch's copies overlap there)
            _fail(f"{name}: padding {tuple(pads)} must be at most {most} on an axis of size "
                  f"{size}{' after the crop' if cropped else ', as in PyTorch'}")
        widths[axis] = (before, after)
    if len(emptied) == spatial:
        # torch's reflect and replicate refuse an output with no element (every spatial
        # axis cropped to nothing); one empty axis beside a kept one they return, as the
        # other modes do
        emptied.sort()
        axes = ", ".join(str(a) for a, _ in emptied[:-1]) + " and " * (spatial > 1) + \
            str(emptied[-1][0])
        sizes = ", ".join(str(n) for _, n in emptied)
        what = (f"axis {axes}'s {sizes}" if spatial == 1 else f"axes {axes} (sizes {sizes})")
        _fail(f"{name}: padding {tuple(pads)} crops all of {what}; the output needs an "
              "element, as in PyTorch")
    from ir.ops.arrays import pad
    if mode == "constant":
        return pad(x, widths, "constant", constant_values=value)
    x = pad(x, widths, mode)
    if any(a or b for a, b in cuts):
        shape = F._shape(x)
        x = F.slice_(x, [a for a, _ in cuts], [n - b for n, (_, b) in zip(shape, cuts)],
                     [1] * nd)
    return x


def _pad_layer(name, spatial, mode, doc, with_value=False):
    """A padding layer class: __init__(padding) (with_value: __init__(padding, value))."""
    if with_value:
        def __init__(self, padding, value):
            self._keep(padding=padding, value=value)
    else:
        def __init__(self, padding):
            self._keep(padding=padding, value=0.0)

    def forward(self, x):
        return _torch_pad(name, spatial, mode, x, self._setting("padding", x),
                          self._setting("value", x))

    def extra_repr(self):  # torch's: each side's padding, and the value a ConstantPad fills
        pads = _per_axis(self.padding, 2 * spatial)
        return f"padding={pads}, value={self.value}" if with_value else f"{pads}"
    return type(name, (_Functional,), {"__init__": __init__, "forward": forward,
                                        "extra_repr": extra_repr, "__doc__": doc})


ZeroPad1d = _pad_layer("ZeroPad1d", 1, "constant", "torch.nn.ZeroPad1d(padding)")
ZeroPad2d = _pad_layer("ZeroPad2d", 2, "constant", "torch.nn.ZeroPad2d(padding): (left, "
                       "right, top, bottom) or an int; a negative side crops")
ConstantPad1d = _pad_layer("ConstantPad1d", 1, "constant", "torch.nn.ConstantPad1d(padding, "
                           "value)", with_value=True)
ConstantPad2d = _pad_layer("ConstantPad2d", 2, "constant", "torch.nn.ConstantPad2d(padding, "
                           "value)", with_value=True)
ReflectionPad1d = _pad_layer("ReflectionPad1d", 1, "reflect", "torch.nn.ReflectionPad1d"
                             "(padding): at most size - 1 a side")
ReflectionPad2d = _pad_layer("ReflectionPad2d", 2, "reflect", "torch.nn.ReflectionPad2d"
                             "(padding): at most size - 1 a side")
ReplicationPad1d = _pad_layer("ReplicationPad1d", 1, "edge", "torch.nn.ReplicationPad1d"
                              "(padding)")
ReplicationPad2d = _pad_layer("ReplicationPad2d", 2, "edge", "torch.nn.ReplicationPad2d"
                              "(padding)")
CircularPad1d = _pad_layer("CircularPad1d", 1, "wrap", "torch.nn.CircularPad1d(padding): at "
                           "most size a side")
CircularPad2d = _pad_layer("CircularPad2d", 2, "wrap", "torch.nn.CircularPad2d(padding): at "
                           "most size a side")

ZeroPad3d = _pad_layer("ZeroPad3d", 3, "constant", "torch.nn.ZeroPad3d(padding)")
ConstantPad3d = _pad_layer("ConstantPad3d", 3, "constant", "torch.nn.ConstantPad3d(padding, "
                           "value)", with_value=True)
ReflectionPad3d = _pad_layer("ReflectionPad3d", 3, "reflect", "torch.nn.ReflectionPad3d"
                             "(padding): at most size - 1 a side")
ReplicationPad3d = _pad_layer("ReplicationPad3d", 3, "edge", "torch.nn.ReplicationPad3d"
                              "(padding)")
CircularPad3d = _pad_layer("CircularPad3d", 3, "wrap", "torch.nn.CircularPad3d(padding): at "
                           "most size a side")


# ---- channel dropout --------------------------------------------------------------------------
class _ChannelDropout(Dropout):
    """torch's Dropout1d/2d/3d: each (sample, channel) map zeroed whole with probability p,
    the rest scaled by 1 / (1 - p), while training; the key as Dropout's (current_key)."""

    _spatial = 2

    def __init__(self, p=0.5, inplace=False):
        # (Dropout's rule, under this layer's name)
        if not 0.0 <= F._number(f"{type(self).__name__}: p", p, True) <= 1.0:
            _fail(f"{type(self).__name__}: p must be in [0, 1], got {p!r}")
        super().__init__(p, inplace)

    def forward(self, x):
        if self._setting("p", x) > 0.0:  # model.train()/eval(), or another p: another plan
            self._setting("training", x)
        return _channel_dropout(type(self).__name__, self._spatial, x, self.p,
                                bool(self.training), None, None)


class Dropout1d(_ChannelDropout):
    """torch.nn.Dropout1d(p=0.5) over (N, C, L) or (C, L)."""

    _spatial = 1


class Dropout2d(_ChannelDropout):
    """torch.nn.Dropout2d(p=0.5) over (N, C, H, W); a 3-d x is read as (N, C, L), as torch
    2.x does (with a warning)."""


class Dropout3d(_ChannelDropout):
    """torch.nn.Dropout3d(p=0.5) over (N, C, D, H, W) or (C, D, H, W)."""

    _spatial = 3
