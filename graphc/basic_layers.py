"""torch.nn's Bilinear and Unflatten, the companions of nn.Linear and nn.Flatten, on
graphc.nn's Module. Bilinear keeps torch's weight layout, (out, in1, in2), so a torch
state_dict loads as it is; Unflatten's settings are guarded settings, read at every call."""
from __future__ import annotations

import math

from ir.errors import GraphcError, user_location
from ir.ops import activations as A
from ir.types import is_int

from .nn import Module, Parameter, _Functional, _layer_dtype, _rng


class Bilinear(Module):
    """torch.nn.Bilinear(in1_features, in2_features, out_features, bias=True):
    y = x1^T W x2 + b (graphc.bilinear), weight (out, in1, in2) and bias (out,) uniform
    in +-1/sqrt(in1_features), torch's initialisation (from `rng` or graphc.nn's
    generator)."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, rng=None,
                 dtype="float32"):
        sizes = {"in1_features": in1_features, "in2_features": in2_features,
                 "out_features": out_features}
        for what, n in sizes.items():
            if not is_int(n) or n < 0:
                raise GraphcError(f"Bilinear: {what} must be an int >= 0, got {n!r}",
                                  (user_location(),))
        if in1_features == 0:
            raise GraphcError("Bilinear: in1_features must be > 0, got 0", (user_location(),))
        for what, n in sizes.items():
            object.__setattr__(self, what, int(n))
        rng, dtype = _rng(rng), _layer_dtype("Bilinear", dtype)
        bound = 1.0 / math.sqrt(in1_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in1_features,
                                                            in2_features)).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype))
        else:
            object.__setattr__(self, "bias", None)

    def forward(self, x1, x2):
        return A.bilinear(x1, x2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Unflatten(_Functional):
    """torch.nn.Unflatten(dim, unflattened_size): axis `dim` split into the sizes (a tuple or
    list of ints, one of them may be -1); graphc.unflatten."""

    _function = staticmethod(A.unflatten)
    _settings = ("dim", "unflattened_size")

    def __init__(self, dim, unflattened_size):
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                is_int(s) for s in unflattened_size):
            raise GraphcError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                              f"{unflattened_size!r}", (user_location(),))
        self._keep(dim=dim, unflattened_size=tuple(int(s) for s in unflattened_size))
