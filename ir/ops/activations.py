"""torch.nn.functional's other activations, built from the primitive ops: elu, selu, celu,
relu6, hardtanh, hardsigmoid, hardswish, mish, softsign, glu, softshrink, hardshrink,
prelu, threshold, tanhshrink and softmin, and two small layers' functions, bilinear and
unflatten. Values and gradients are torch's, at the kinks too: each piece is chosen by `where`
with torch's own comparisons, so a gradient at a boundary (x = 0, +-3, 6) is the piece torch's
backward takes. A piece that overflows where it is not selected (expm1 of a large x) is fed a
clamped operand, so its zero share of the gradient stays 0 (not inf * 0 = NaN). Arithmetic
on x goes through the ops (F.mul, not `*`): x may be a numpy array, whose own operators
would promote (bfloat16 * 0.5 is float32 in numpy) where graphc and a compiled plan do not.
"""
from __future__ import annotations

import math
import warnings

from ..errors import user_stacklevel
from ..types import Dim, is_float, is_half
from . import api as F
from . import precision
from .api import _axis, _fail, _ndim, _number, _rounded_once, _shape, takes_inplace
from .registry import apply

__all__ = ["elu", "selu", "celu", "relu6", "hardtanh", "hardsigmoid", "hardswish", "mish",
           "softsign", "glu", "softshrink", "hardshrink", "prelu", "threshold", "tanhshrink",
           "softmin", "bilinear", "unflatten"]

# selu's constants (Klambauer et al.; torch's)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@takes_inplace
def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    alpha = _number("elu: alpha", alpha)
    if is_half(F._dtype(x)):  # rounded once, as torch's: expm1 rounded to half, then times
        return _rounded_once(elu, x, alpha)  # alpha rounded to half, was 2 ulps off
    return F.where(F.less_equal(x, 0.0), F.expm1(_negative_part(x)) * float(alpha), x)


def _negative_part(x):
    """min(x, 0), the input of elu's (celu's) exp branch. A NaN x takes the other branch,
    gradient 1, as torch's; the exp branch's zero share of the gradient, 0 * exp(NaN) = NaN,
    stops here, where minimum would pass it to x."""
    return F._no_gradient_where_nan(F.minimum(x, 0.0))


@takes_inplace
def selu(x):
    """scale * elu(x, alpha) with selu's fixed constants."""
    if is_half(F._dtype(x)):
        return _rounded_once(selu, x)
    return elu(x, SELU_ALPHA) * SELU_SCALE


@takes_inplace
def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    alpha = _number("celu: alpha", alpha)
    if alpha == 0:
        _fail("celu: alpha must not be 0")
    if is_half(F._dtype(x)):  # rounded once, as torch's: x / alpha rounded to half before
        return _rounded_once(celu, x, alpha)  # the exp was up to 55 ulps (bfloat16) off
    negative = F.expm1(_negative_part(x) * (1.0 / alpha)) * float(alpha)
    return F.where(F.less_equal(x, 0.0), negative, x)


def hardtanh_bounds(who, min_val, max_val) -> tuple[float, float]:
    """Hardtanh's bounds as numbers, a NaN one refused in one line naming `who` and it:
    torch's Hardtanh (layer and function) takes one and gives NaN for every input, inside
    the other bound too, where graphc's clamp left a NaN bound out (gc.hardtanh(x, nan, 1)
    was min(x, 1))."""
    bounds = [_number(f"{who}: {name}", value)
              for name, value in (("min_val", min_val), ("max_val", max_val))]
    for name, bound in zip(("min_val", "max_val"), bounds):
        if math.isnan(bound):
            _fail(f"{who}: {name} is NaN, which makes every output NaN (as torch's "
                  "Hardtanh gives); expected a number")
    return bounds[0], bounds[1]


@takes_inplace
def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clamped to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere."""
    min_val, max_val = hardtanh_bounds("hardtanh", min_val, max_val)
    if min_val > max_val:
        _fail(f"hardtanh: min_val {min_val} is above max_val {max_val}")
    return F.where(F.less_equal(x, min_val), float(min_val),
                   F.where(F.greater_equal(x, max_val), float(max_val), x))


@takes_inplace
def relu6(x):
    """min(max(x, 0), 6)."""
    return hardtanh(x, 0.0, 6.0)


@takes_inplace
def hardsigmoid(x):
    """relu6(x + 3) / 6; the gradient 1/6 strictly between -3 and 3."""
    if is_half(F._dtype(x)):
        return _rounded_once(hardsigmoid, x)
    # (x + 3) / 6, torch's order: x + 3 is exact near -3, where x / 6 + 1/2 cancelled (float32
    # x = -2.995 was 341 ulps off, a value just above -3 up to half its size). NaN takes the
    # middle piece: its gradient there is 0, as torch's (whose -3 < x < 3 fails)
    middle = F._no_gradient_where_nan(F.div(F.add(x, 3.0), 6.0))
    return F.where(F.less_equal(x, -3.0), 0.0, F.where(F.greater_equal(x, 3.0), 1.0, middle))


@takes_inplace
def hardswish(x):
    """x * relu6(x + 3) / 6 (its gradient is 0 at -3 and 1 at 3, as torch's)."""
    if is_half(F._dtype(x)):  # rounded once, as torch's: the product's three half roundings
        return _rounded_once(hardswish, x)  # put it 2 ulps off
    # the middle piece is fed x where it is picked and finite numbers elsewhere, so at x =
    # +-inf or NaN (which takes the last piece, gradient 1, as torch's) its zero share of the
    # gradient stays 0 (not 0 * inf or 0 * NaN)
    # (x * (x + 3)) / 6, torch's order: times a rounded 1/6 was 1 ulp off torch's in a third
    # of the float32 and float64 values between -3 and 3
    below_3 = F.less(x, 3.0)
    mid = F.where(below_3, F.maximum(x, -3.0), 0.0)
    return F.where(F.less_equal(x, -3.0), 0.0,
                   F.where(below_3, F.div(mid * (mid + 3.0), 6.0), x))


@takes_inplace
def mish(x):
    """x * tanh(softplus(x)) (the smooth softplus, as torch's mish: no threshold)."""
    if is_half(F._dtype(x)):
        return _rounded_once(mish, x)
    return F.mul(x, F.tanh(apply("softplus", x)))


def softsign(x):
    """x / (1 + |x|)."""
    return F.div(x, F.abs(x) + 1.0)


def glu(x, dim=-1):
    """a * sigmoid(b), a and b the two halves of x along `dim`."""
    dim = _axis(dim, _ndim(x), "glu: dim")
    if _shape(x)[dim] % 2:
        _fail(f"glu: dim {dim} has size {_shape(x)[dim]}, which does not halve")
    if is_half(F._dtype(x)):
        return _rounded_once(glu, x, dim)
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


@precision.in_half  # torch.autocast's CPU lower-precision list
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


@takes_inplace
def threshold(x, threshold, value):
    """x where x > threshold, `value` elsewhere, as torch.nn.functional.threshold (a NaN x
    stays NaN, with gradient 1, as torch's; integer x keeps its dtype, threshold and value
    truncated to integers, as torch's)."""
    threshold = _number("threshold: threshold", threshold)
    value = _number("threshold: value", value)
    if not is_float(F._dtype(x)):
        threshold, value = int(threshold), int(value)
    return F.where(F.less_equal(x, threshold), value, x)


def tanhshrink(x):
    """x - tanh(x)."""
    return F.sub(x, F.tanh(x))


def _implicit_dim(name, nd):
    """torch's deprecated choice of axis for softmax-like functions called without one."""
    warnings.warn(f"{name}: called without dim; taking torch's implicit (deprecated) choice, "
                  f"axis {0 if nd in (0, 1, 3) else 1} of a {nd}-d input; pass dim",
                  UserWarning, stacklevel=user_stacklevel())
    return 0 if nd in (0, 1, 3) else 1


def softmin(x, dim=None):
    """softmax(-x) along `dim`, as torch.nn.functional.softmin; without dim, torch's
    implicit axis (0 for 0-, 1- and 3-d inputs, else 1) with a warning."""
    if dim is None:
        dim = _implicit_dim("softmin", _ndim(x))
    if _ndim(x) == 0:  # torch's softmax of a 0-d value: 1
        _axis(dim, 1, "softmin: dim")
        return F.reshape(F.softmax(F.reshape(F.neg(x), (1,)), 0), ())
    return F.softmax(F.neg(x), _axis(dim, _ndim(x), "softmin: dim"))


# ---- small layers' functions -------------------------------------------------------------------
def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = sum_ij input1[..., i] weight[o, i, j] input2[..., j] + bias[o], as
    torch.nn.functional.bilinear: weight is (out, in1, in2), the inputs (..., in1) and
    (..., in2) with the same leading axes. One matrix product, (..., in1) @ (in1, out *
    in2), then input2's contraction."""
    ws, s1, s2 = tuple(_shape(weight)), tuple(_shape(input1)), tuple(_shape(input2))
    if len(ws) != 3:
        _fail(f"bilinear: weight must be (out, in1, in2), got {ws}")
    if not s1 or not s2:
        _fail(f"bilinear: the inputs need a feature axis, got {s1} and {s2}")
    if len(s1) != len(s2) or s1[:-1] != s2[:-1]:
        _fail(f"bilinear: input1 {s1} and input2 {s2} must have the same leading axes")
    out, in1, in2 = ws
    if s1[-1] != in1 or s2[-1] != in2:
        _fail(f"bilinear: inputs of {s1[-1]} and {s2[-1]} features for a weight {ws}, which "
              f"takes {in1} and {in2}")
    if bias is not None and tuple(_shape(bias)) != (out,):
        _fail(f"bilinear: bias {tuple(_shape(bias))} must be ({out},) for a weight {ws}")
    lead = s1[:-1]
    rows = math.prod(lead)
    w = F.reshape(F.transpose(weight, (1, 0, 2)), (in1, out * in2))  # (in1, out * in2)
    t = F.reshape(F.matmul(F.reshape(input1, (rows, in1)), w), (rows, out, in2))
    y = F.sum(F.mul(t, F.reshape(input2, (rows, 1, in2))), -1)        # (rows, out)
    if bias is not None:
        y = F.add(y, bias)
    return F.reshape(y, lead + (out,))


def unflatten(x, dim, sizes):
    """x with axis `dim` split into `sizes` (one of them may be -1), as torch.unflatten."""
    nd = _ndim(x)
    if nd == 0:
        _fail("unflatten: a 0-d value has no axis to split")
    dim = _axis(dim, nd, "unflatten: dim")
    if not isinstance(sizes, (tuple, list)) or not all(
            isinstance(s, (int, Dim)) and not isinstance(s, bool) for s in sizes):
        _fail(f"unflatten: sizes must be a tuple of ints, got {sizes!r}")
    sizes = tuple(sizes)
    if not sizes:
        _fail("unflatten: sizes must be non-empty")
    if any(not isinstance(s, Dim) and s < -1 for s in sizes) or sizes.count(-1) > 1:
        _fail(f"unflatten: sizes {sizes} may hold one -1 and no other negative size")
    shape = tuple(_shape(x))
    known = math.prod(s for s in sizes if isinstance(s, Dim) or s != -1)
    size = shape[dim]
    if -1 in sizes:
        if isinstance(size, Dim) or isinstance(known, Dim):
            _fail(f"unflatten: -1 in sizes {sizes} needs concrete sizes, axis {dim} is {size}")
        if known == 0 or size % known:
            _fail(f"unflatten: sizes {sizes} cannot split axis {dim} of size {size}")
        sizes = tuple(size // known if not isinstance(s, Dim) and s == -1 else s
                      for s in sizes)
    elif known != size:
        _fail(f"unflatten: sizes {sizes} do not multiply to the size {size} of axis {dim}")
    return F.reshape(x, shape[:dim] + sizes + shape[dim + 1:])
