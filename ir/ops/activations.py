"""torch.nn.functional's other activations, built from the primitive ops: elu, selu, celu,
relu6, hardtanh, hardsigmoid, hardswish, mish, softsign, glu, softshrink, hardshrink and
prelu. Values and gradients are torch's, at the kinks too: each piece is chosen by `where`
with torch's own comparisons, so a gradient at a boundary (x = 0, +-3, 6) is the piece torch's
backward takes. A piece that overflows where it is not selected (expm1 of a large x) is fed a
clamped operand, so its zero share of the gradient stays 0 (not inf * 0 = NaN). Arithmetic
on x goes through the ops (F.mul, not `*`): x may be a numpy array, whose own operators
would promote (bfloat16 * 0.5 is float32 in numpy) where graphc and a compiled plan do not.
"""
from __future__ import annotations

import math
import numbers

from . import api as F
from .api import _axis, _fail, _ndim, _shape
from .registry import apply

__all__ = ["elu", "selu", "celu", "relu6", "hardtanh", "hardsigmoid", "hardswish", "mish",
           "softsign", "glu", "softshrink", "hardshrink", "prelu"]

# selu's constants (Klambauer et al.; torch's)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _number(what, value):
    """A setting as a float; anything else is one GraphcError line, not float()'s error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(f"{what} must be a number, got {value!r}")
    return float(value)


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    alpha = _number("elu: alpha", alpha)
    return F.where(F.greater(x, 0.0), x, F.expm1(F.minimum(x, 0.0)) * float(alpha))


def selu(x):
    """scale * elu(x, alpha) with selu's fixed constants."""
    return elu(x, SELU_ALPHA) * SELU_SCALE


def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    alpha = _number("celu: alpha", alpha)
    if alpha == 0:
        _fail("celu: alpha must not be 0")
    return F.where(F.greater(x, 0.0), x,
                   F.expm1(F.minimum(x, 0.0) * (1.0 / alpha)) * float(alpha))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere."""
    min_val, max_val = _number("hardtanh: min_val", min_val), _number("hardtanh: max_val",
                                                                      max_val)
    if min_val > max_val:
        _fail(f"hardtanh: min_val {min_val} is above max_val {max_val}")
    return F.where(F.less_equal(x, min_val), float(min_val),
                   F.where(F.greater_equal(x, max_val), float(max_val), x))


def relu6(x):
    """min(max(x, 0), 6)."""
    return hardtanh(x, 0.0, 6.0)


def hardsigmoid(x):
    """relu6(x + 3) / 6; the gradient 1/6 strictly between -3 and 3."""
    return F.where(F.less_equal(x, -3.0), 0.0,
                   F.where(F.greater_equal(x, 3.0), 1.0, F.add(F.mul(x, 1.0 / 6.0), 0.5)))


def hardswish(x):
    """x * relu6(x + 3) / 6 (its gradient is 0 at -3 and 1 at 3, as torch's)."""
    # the middle piece is fed x clamped to [-3, 3], so at x = +-inf its zero share of the
    # gradient stays 0 (not inf * 0 = NaN)
    mid = F.minimum(F.maximum(x, -3.0), 3.0)
    return F.where(F.less_equal(x, -3.0), 0.0,
                   F.where(F.less(x, 3.0), mid * (mid + 3.0) * (1.0 / 6.0), x))


def mish(x):
    """x * tanh(softplus(x)) (the smooth softplus, as torch's mish: no threshold)."""
    return F.mul(x, F.tanh(apply("softplus", x)))


def softsign(x):
    """x / (1 + |x|)."""
    return F.div(x, F.abs(x) + 1.0)


def glu(x, dim=-1):
    """a * sigmoid(b), a and b the two halves of x along `dim`."""
    dim = _axis(dim, _ndim(x), "glu: dim")
    if _shape(x)[dim] % 2:
        _fail(f"glu: dim {dim} has size {_shape(x)[dim]}, which does not halve")
    a, b = F.split(x, 2, dim)
    return a * F.sigmoid(b)


def softshrink(x, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    lambd = _number("softshrink: lambd", lambd)
    if lambd < 0:
        _fail(f"softshrink: lambd must be >= 0, got {lambd}")
    # the zero band is tested, not the outside, so a NaN falls outside it and stays NaN
    # (torch's value, with gradient 1)
    return F.where(F.logical_and(F.greater_equal(x, -lambd), F.less_equal(x, lambd)), 0.0,
                   F.where(F.greater(x, lambd), F.sub(x, float(lambd)),
                           F.add(x, float(lambd))))


def hardshrink(x, lambd=0.5):
    """x where |x| > lambd, 0 elsewhere."""
    lambd = _number("hardshrink: lambd", lambd)
    # the zero band is tested, so a NaN stays NaN (torch's value, with gradient 1)
    return F.where(F.logical_and(F.greater_equal(x, -lambd), F.less_equal(x, lambd)), 0.0, x)


def prelu(x, weight):
    """x for x > 0, weight * x otherwise; weight has one value or one per channel (x's
    axis 1, as torch's)."""
    count = math.prod(_shape(weight))
    if _ndim(weight) > 1:
        _fail(f"prelu: weight must be 1-d, got shape {tuple(_shape(weight))}")
    if count != 1:
        if _ndim(x) < 2 or _shape(x)[1] != count:
            _fail(f"prelu: {count} weights for input of shape {tuple(_shape(x))}: one per "
                  "channel (axis 1) or one")
        weight = F.reshape(weight, (count,) + (1,) * (_ndim(x) - 2))
    else:  # one slope: a 0-d x stays 0-d (a (1,) weight would broadcast it to (1,))
        weight = F.reshape(weight, ())
    return F.where(F.greater(x, 0.0), x, F.mul(x, weight))
