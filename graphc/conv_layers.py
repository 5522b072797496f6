"""torch.nn's other CNN layers on graphc.nn's Module: ConvTranspose1d/2d, the adaptive
pools, Dropout1d/2d, PixelShuffle/PixelUnshuffle, the padding layers and MaxPool1d/AvgPool1d.
Each computes its function in ir/ops/conv_extra.py (or the core API) with its settings read
as guarded settings at every call, so a compiled plan traced with one value is not reused
after the user sets another."""
from __future__ import annotations

import math

import numpy as np

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops import conv_extra as C

from .nn import Module, Parameter, _Functional, _rng


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
        for what, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not C._int(v) or v < 1:
                _fail(f"{name}: {what} must be a positive int, got {v!r}")
        if not C._int(groups) or groups < 1 or in_channels % groups or out_channels % groups:
            _fail(f"{name}: in_channels {in_channels} and out_channels {out_channels} must "
                  f"divide by groups {groups}")
        kernel, = C._settings(name, self._spatial, kernel_size=kernel_size)
        if min(kernel) < 1:
            _fail(f"{name}: kernel_size must be >= 1, got {kernel_size!r}")
        # torch's layout (in, out / groups, *kernel); its kaiming_uniform(a=sqrt(5)) and
        # bias init take fan_in from that tensor's second axis: out / groups * kernel area
        rng = _rng(rng)
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
        stride, padding, output_padding, groups, dilation = (self._setting(s, x) for s in (
            "stride", "padding", "output_padding", "groups", "dilation"))
        if output_size is not None:  # torch: output_padding from the wanted size, not the set
            n = self._spatial
            s, p, d = C._settings(name, n, stride=stride, padding=padding, dilation=dilation)
            output_padding = C.conv_transpose_output_size(
                name, F._shape(x), F._shape(self.weight)[2:], s, p, d,
                output_size)
        return self._function(x, self.weight, self.bias, stride, padding, output_padding,
                              groups, dilation)


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


# ---- pooling ----------------------------------------------------------------------------------
class _AdaptivePool(_Functional):
    _settings = ("output_size",)

    def __init__(self, output_size):
        self._keep(output_size=output_size)


class _AdaptiveMaxPool(_Functional):
    _settings = ("output_size",)

    def __init__(self, output_size, return_indices=False):
        if return_indices:
            _fail(f"{type(self).__name__}: return_indices=True is not supported")
        self._keep(output_size=output_size)


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
