"""torch.nn's 3-d pools, power-average pools and sliding-block layers on graphc.nn's Module:
MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool3d, LPPool1d/2d/3d, Fold and
Unfold. Each computes its function in ir/ops/pool_extra.py with its settings read as
guarded settings at every call (graphc.nn's _Functional), as the 2-d layers do."""
from __future__ import annotations

from ir.ops import pool_extra as P

from .conv_layers import _AdaptiveMaxPool, _AdaptivePool
from .nn import AvgPool2d, _Functional, _MaxPool


class MaxPool3d(_MaxPool):
    """torch.nn.MaxPool3d (graphc.max_pool3d); stride defaults to kernel_size."""

    _function = staticmethod(P.max_pool3d)


class AvgPool3d(AvgPool2d):
    """torch.nn.AvgPool3d (graphc.avg_pool3d), divisor_override too."""

    _function = staticmethod(P.avg_pool3d)


class AdaptiveAvgPool3d(_AdaptivePool):
    """torch.nn.AdaptiveAvgPool3d(output_size) (graphc.adaptive_avg_pool3d)."""

    _function = staticmethod(P.adaptive_avg_pool3d)


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """torch.nn.AdaptiveMaxPool3d(output_size, return_indices=False)
    (graphc.adaptive_max_pool3d)."""

    _function = staticmethod(P.adaptive_max_pool3d)


class _LPPool(_Functional):
    """torch's LPPool1d/2d/3d(norm_type, kernel_size, stride=None, ceil_mode=False)."""

    _settings = ("norm_type", "kernel_size", "stride", "ceil_mode")

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        self._keep(norm_type=norm_type, kernel_size=kernel_size, stride=stride,
                   ceil_mode=ceil_mode)


class LPPool1d(_LPPool):
    """torch.nn.LPPool1d (graphc.lp_pool1d)."""

    _function = staticmethod(P.lp_pool1d)


class LPPool2d(_LPPool):
    """torch.nn.LPPool2d (graphc.lp_pool2d)."""

    _function = staticmethod(P.lp_pool2d)


class LPPool3d(_LPPool):
    """torch.nn.LPPool3d (graphc.lp_pool3d)."""

    _function = staticmethod(P.lp_pool3d)


class Unfold(_Functional):
    """torch.nn.Unfold(kernel_size, dilation=1, padding=0, stride=1) (graphc.unfold)."""

    _function = staticmethod(P.unfold)
    _settings = ("kernel_size", "dilation", "padding", "stride")

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        self._keep(kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride)


class Fold(_Functional):
    """torch.nn.Fold(output_size, kernel_size, dilation=1, padding=0, stride=1)
    (graphc.fold)."""

    _function = staticmethod(P.fold)
    _settings = ("output_size", "kernel_size", "dilation", "padding", "stride")

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        self._keep(output_size=output_size, kernel_size=kernel_size, dilation=dilation,
                   padding=padding, stride=stride)
