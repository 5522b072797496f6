"""torch.nn's LocalResponseNorm and ChannelShuffle and their functions
(gc.local_response_norm, gc.channel_shuffle), as composites of existing ops: grad, vmap and
compile are those ops'. Each layer is its function with its settings read as guarded
settings at every call; a bad setting is one line naming the layer (or function) and it."""
from __future__ import annotations

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops.arrays import _along, pad
from ir.types import is_int

from .nn import _Functional

__all__ = ["local_response_norm", "channel_shuffle"]


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _positive_int(name, what, value):
    if not is_int(value) or value < 1:
        _fail(f"{name}: {what} must be a positive int, got {value!r}")
    return int(value)


def _channels_first(name, x):
    if F._ndim(x) < 3:
        _fail(f"{name}: x must have at least 3 axes (N, C, ...), got shape "
              f"{tuple(F._shape(x))}")


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """torch.nn.functional.local_response_norm of x (N, C, ...): x / (k + alpha / size *
    the sum of x**2 over the channels c - size // 2 ... c + (size - 1) // 2, zeros past the
    ends)**beta, as torch's average pool over a zero-padded window of `size` channels."""
    _channels_first("local_response_norm", x)
    size = _positive_int("local_response_norm", "size", size)
    alpha, beta, k = (F._number(f"local_response_norm: {what}", value)
                      for what, value in (("alpha", alpha), ("beta", beta), ("k", k)))
    nd, channels = F._ndim(x), F._shape(x)[1]
    squares = pad(F.mul(x, x), [(0, 0), (size // 2, (size - 1) // 2)] + [(0, 0)] * (nd - 2))
    window = _along(squares, 1, 0, channels)
    for start in range(1, size):
        window = F.add(window, _along(squares, 1, start, start + channels))
    return F.div(x, F.pow(F.add(F.mul(window, alpha / size), k), beta))


def channel_shuffle(x, groups):
    """torch.nn.functional.channel_shuffle of x (N, C, ...): the channels, seen as (groups,
    C / groups), transposed; output channel j * groups + g is input channel g * C / groups + j."""
    _channels_first("channel_shuffle", x)
    groups = _positive_int("channel_shuffle", "groups", groups)
    n, channels, *rest = F._shape(x)
    if not isinstance(channels, int):
        _fail(f"channel_shuffle: needs a known channel count, got the symbolic size {channels}")
    if channels % groups:
        _fail(f"channel_shuffle: x's {channels} channels must divide by groups ({groups})")
    y = F.reshape(x, (n, groups, channels // groups, *rest))
    y = F.transpose(y, (0, 2, 1) + tuple(range(3, len(rest) + 3)))
    return F.reshape(y, (n, channels, *rest))


class LocalResponseNorm(_Functional):
    """torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)."""

    _function = staticmethod(local_response_norm)
    _settings = ("size", "alpha", "beta", "k")
    _repr_format = "{size}, alpha={alpha}, beta={beta}, k={k}"

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        _positive_int("LocalResponseNorm", "size", size)
        for what, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            F._number(f"LocalResponseNorm: {what}", value)
        self._keep(size=size, alpha=alpha, beta=beta, k=k)


class ChannelShuffle(_Functional):
    """torch.nn.ChannelShuffle(groups)."""

    _function = staticmethod(channel_shuffle)
    _settings = ("groups",)
    _repr_format = "groups={groups}"

    def __init__(self, groups):
        self._keep(groups=_positive_int("ChannelShuffle", "groups", groups))
