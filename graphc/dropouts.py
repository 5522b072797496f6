"""torch.nn.functional's other dropouts and their layers: dropout1d/2d/3d (whole channels),
alpha_dropout and feature_alpha_dropout (SELU's: dropped values set to SELU's negative
saturation, then an affine map that keeps the mean and variance), AlphaDropout and
FeatureAlphaDropout.

As gc.dropout's, a mask is a pure function of a key: `seed=` if given, else current_key()
(the innermost gc.nn.rng_key block's, or the traced step's implicit dropout key that
gc.Trainer feeds every step). Arguments and defaults are torch's, alpha_dropout's
training=False too. As torch's functions, `training` alone decides: training=True draws
inside a gc.Trainer evaluation too (the layers pass their `training`, False there).

rrelu and RReLU (torch's randomized leaky ReLU) live here too: while training, the slope of
each negative value is drawn uniform in [lower, upper] from the same keys (F.keyed_uniform:
the dropout mask's seed and site numbering), so a compiled step replays its slopes for a key
and its gradient is the slope drawn.
"""
from __future__ import annotations

from ir.errors import GraphcError, user_location, with_article
from ir.ops import api as F
from ir.types import is_float, is_real

from .nn import (Dropout, Module, _keep_inplace, _with_inplace, current_key,
                 dropout_key, keyed_dropout)

__all__ = ["dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
           "rrelu"]

# SELU's negative saturation, -scale * alpha, as torch's _dropout_impl spells it
_SELU_SATURATION = 1.7580993408473766


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _checked(name, x, p, training):
    if not (is_real(p) and 0.0 <= p <= 1.0):
        _fail(f"{name}: p must be a number in [0, 1], got {p!r}")
    if not isinstance(training, bool):
        _fail(f"{name}: training must be True or False, got {training!r}")
    if not is_float(F._dtype(x)):
        _fail(f"{name} of {with_article(F._dtype(x))} value; cast it to a float type first")
    return float(p)


def _scaled_mask(x, shape, p, seed, salt):
    """gc.dropout's mask of `shape` (broadcast against x): 1 / (1 - p) where a draw keeps,
    0 where it drops (everywhere at p = 1); the key seed= or, without one, current_key()."""
    return keyed_dropout(F.ones(shape, F._dtype(x)), p, seed, salt, like=x)


def _channel_dropout(name, spatial, x, p, training, seed, salt):
    nd = len(F._shape(x))
    if nd not in (spatial + 1, spatial + 2):
        _fail(f"{name}: x must be {spatial + 2}-d (N, C, ...) or {spatial + 1}-d (C, ...), "
              f"got shape {tuple(F._shape(x))}")
    p = _checked(name, x, p, training)
    if not training or p == 0.0:
        return x
    if seed is not None and p < 1.0:  # (checked in gc.dropout's words, naming this function)
        F.check_seed(seed, name)
    # torch's dropout2d reads a 3-d x as (N, C, L), not (C, H, W): its masks are per
    # (axis 0, axis 1) pair, and so are these
    lead = 2 if nd == spatial + 2 or spatial == 2 else 1
    shape = tuple(F._shape(x)[:lead]) + (1,) * (nd - lead)
    return F.mul(x, _scaled_mask(x, shape, p, seed, salt))


@F.takes_inplace
def dropout1d(x, p=0.5, training=True, *, seed=None, salt=None):
    """torch.nn.functional.dropout1d: each (sample, channel) row of x (N, C, L) or (C, L)
    zeroed whole with probability p, the rest scaled by 1 / (1 - p)."""
    return _channel_dropout("dropout1d", 1, x, p, training, seed, salt)


@F.takes_inplace
def dropout2d(x, p=0.5, training=True, *, seed=None, salt=None):
    """torch.nn.functional.dropout2d over (N, C, H, W); a 3-d x is read as (N, C, L), as
    torch 2.x does."""
    return _channel_dropout("dropout2d", 2, x, p, training, seed, salt)


@F.takes_inplace
def dropout3d(x, p=0.5, training=True, *, seed=None, salt=None):
    """torch.nn.functional.dropout3d over (N, C, D, H, W) or (C, D, H, W)."""
    return _channel_dropout("dropout3d", 3, x, p, training, seed, salt)


def _alpha_dropout(name, x, p, training, seed, salt, feature):
    p = _checked(name, x, p, training)
    if not training or p == 0.0:
        return x
    if p == 1.0:  # (the affine map below divides by 1 - p) zeroed, as gc.dropout zeroes
        return F.dropout(x, p, None)
    if seed is not None:  # (gc.dropout's check named gc.dropout)
        F.check_seed(seed, name)
    shape = tuple(F._shape(x))
    if feature:
        if len(shape) < 2:
            _fail(f"{name}: x must have at least 2 axes (N, C, ...), got shape {shape}")
        shape = shape[:2] + (1,) * (len(shape) - 2)
    keep = F.cast(F.not_equal(_scaled_mask(x, shape, p, seed, salt), 0.0), F._dtype(x))
    # torch's _dropout_impl: a = 1 / sqrt((alpha^2 p + 1)(1 - p)); kept x -> a x + alpha a p,
    # dropped -> -alpha a + alpha a p
    a = 1.0 / ((_SELU_SATURATION ** 2 * p + 1.0) * (1.0 - p)) ** 0.5
    shift = F.add(F.mul(F.sub(keep, 1.0), _SELU_SATURATION * a), _SELU_SATURATION * a * p)
    return F.add(F.mul(x, F.mul(keep, a)), shift)


@F.takes_inplace
def alpha_dropout(x, p=0.5, training=False, *, seed=None, salt=None):
    """torch.nn.functional.alpha_dropout (training=False by default, as torch's): each value
    dropped with probability p to SELU's saturation, then all mapped so that a SELU network's
    zero mean and unit variance are kept."""
    return _alpha_dropout("alpha_dropout", x, p, training, seed, salt, feature=False)


@F.takes_inplace
def feature_alpha_dropout(x, p=0.5, training=False, *, seed=None, salt=None):
    """torch.nn.functional.feature_alpha_dropout: alpha_dropout of whole channels of
    x (N, C, ...)."""
    return _alpha_dropout("feature_alpha_dropout", x, p, training, seed, salt, feature=True)


class AlphaDropout(Dropout):
    """torch.nn.AlphaDropout(p=0.5): alpha_dropout while training, the identity in eval()."""

    _function = staticmethod(alpha_dropout)

    def __init__(self, p=0.5, inplace=False):
        if not 0.0 <= p <= 1.0:
            _fail(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        object.__setattr__(self, "p", float(p))
        object.__setattr__(self, "training", True)
        _keep_inplace(self, inplace)

    def forward(self, x):
        if self._setting("p", x) > 0.0:  # model.train()/eval(), or another p: another plan
            self._setting("training", x)
        training = self.p > 0.0 and self.training  # (p = 0: no guard on training)
        # (p = 1: no key drawn, as every dropout's at p = 1: gc.dropout zeroes without one)
        return self._function(x, self.p, training,
                              seed=dropout_key(self.p, None, x) if training else None)


class FeatureAlphaDropout(AlphaDropout):
    """torch.nn.FeatureAlphaDropout(p=0.5): feature_alpha_dropout while training."""

    _function = staticmethod(feature_alpha_dropout)


def _rrelu_bounds(name, lower, upper):
    lower, upper = (F._number(f"{name}: {what}", value)
                    for what, value in (("lower", lower), ("upper", upper)))
    if not lower <= upper:  # (torch's check, at the call)
        _fail(f"{name}: lower ({lower}) must be at most upper ({upper})")
    return lower, upper


@F.takes_inplace
def rrelu(x, lower=1.0 / 8, upper=1.0 / 3, training=False, *, seed=None, salt=None):
    """torch.nn.functional.rrelu (training=False by default, as torch's): x where x > 0,
    else x times a slope; the slope (lower + upper) / 2 unless training, where each element's
    is drawn uniform in [lower, upper] from `seed=` or, without one, current_key() (the key
    of gc.dropout's masks). The gradient of a value at or below 0 is its slope, as torch's."""
    lower, upper = _rrelu_bounds("rrelu", lower, upper)
    if not isinstance(training, bool):
        _fail(f"rrelu: training must be True or False, got {training!r}")
    if not is_float(F._dtype(x)):
        _fail(f"rrelu of {with_article(F._dtype(x))} value; cast it to a float type first")
    if not training:
        return F.leaky_relu(x, (lower + upper) / 2.0)
    drawn = F.keyed_uniform(x, current_key(x) if seed is None else seed, salt, "rrelu")
    slopes = F.add(F.mul(drawn, upper - lower), lower)
    return F.where(F.greater(x, 0.0), x, F.mul(x, slopes))


class RReLU(Module):
    """torch.nn.RReLU(lower=1/8, upper=1/3, inplace=False): rrelu with slopes drawn while
    training, leaky_relu of slope (lower + upper) / 2 in eval()."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        # (torch's constructor takes lower > upper, its call refuses them: checked here too)
        lower, upper = _rrelu_bounds("RReLU", lower, upper)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "training", True)
        _keep_inplace(self, inplace)

    def forward(self, x):
        lower, upper = self._setting("lower", x), self._setting("upper", x)
        lower, upper = _rrelu_bounds("RReLU", lower, upper)  # (set after construction)
        return rrelu(x, lower, upper, self._setting("training", x))

    def extra_repr(self):
        return _with_inplace(self, f"lower={self.lower}, upper={self.upper}")
