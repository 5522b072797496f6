"""torch.nn.functional's other losses and distances, built from the primitive ops:
binary_cross_entropy (and _with_logits), l1_loss, smooth_l1_loss, huber_loss, kl_div,
cosine_similarity, normalize and pairwise_distance. Arguments, broadcasting, reductions and
the values and gradients at the edges (a probability of 0 or 1, a zero vector, a target of
0) are torch's; tests/test_losses.py compares them with torch's in float64. As in
ir/ops/activations.py, arithmetic goes through the ops (F.sub, not `-`): an operand may be a
numpy array, whose own operators would not give graphc's errors or dtypes.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import Dim, broadcast_shapes, finfo, is_float
from . import api as F
from . import precision
from .api import (_autocast_promoted, _axis, _check_reduction, _dtype, _fail, _float_operands,
                  _ndim, _no_list, _no_lists, _number, _shape)
from .api import _loss_operands as _both
from .arrays import norm
from .registry import is_weak_scalar

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss",
           "smooth_l1_loss", "huber_loss", "kl_div", "cosine_similarity", "normalize",
           "pairwise_distance"]

# torch's binary_cross_entropy: each log is clamped to >= -100, and its backward divides by
# max(x (1 - x), EPSILON), a C++ float 1e-12 (in float64 too)
_LOG_FLOOR = -100.0
_BCE_EPS = float(np.float32(1e-12))


def _strong(value, like):
    """A Python (or numpy) number meeting a float tensor as a 0-d array of that tensor's
    dtype, as every op gives a weak scalar the dtype of the tensor it meets: inside a loss it
    may meet only numbers and ops that would make it float32 (stop_gradient, exp,
    broadcast_to), then the tensor. A weak value that is not a scalar object (a compiled
    function's or gc.grad's number argument, an eager gc.abs(0)) is cast alike, so that
    kl_div(x, k, log_target=True) takes an int argument k as it takes the literal 0 (asked
    as api._weakly_typed, which _loss_operands asks: exp(k) refused the int64 k)."""
    if value is None or not F._weakly_typed(value) or F._weakly_typed(like) \
            or not is_float(_dtype(like)):
        return value
    if is_weak_scalar(value):
        return F.full((), value, _dtype(like))
    return F.cast(value, _dtype(like))


def _cast_weight(weight, input):
    """A weight of binary_cross_entropy(_with_logits) in a float input's dtype, as torch's
    and as cross_entropy's class weight (a float64 array meeting float32 input)."""
    weight = _strong(weight, input)
    return F._weight_like(weight, input) if weight is not None and is_float(_dtype(input)) \
        else weight


def _promoted(loss, weight):
    """(loss, weight) in one dtype, the one torch's type promotion gives their product: a
    float64 weight makes float32 input's loss float64, an integer or narrower weight takes
    the loss's dtype (float16 with bfloat16: float32). Under autocast the weight takes the
    loss's dtype: graphc's choice, so that the loss stays in autocast's float32 (torch's
    weighted l1/huber losses are plain products, which autocast leaves to promote to float64)."""
    weight = _strong(weight, loss)
    have, given = _dtype(loss), _dtype(weight)
    if have == given or not is_float(have):
        return loss, weight
    autocast = precision.STATE.dtype is not None and not precision.STATE.suspended
    if autocast or not is_float(given) or np.dtype(given).itemsize < np.dtype(have).itemsize:
        return loss, F.cast(weight, have)
    if np.dtype(given).itemsize == np.dtype(have).itemsize:  # float16 and bfloat16
        return F.cast(loss, "float32"), F.cast(weight, "float32")
    return F.cast(loss, given), weight


def _strong_pair(a, b):
    a = _strong(a, b)
    return a, _strong(b, a)


def _same_shape(name, input, target):
    """binary_cross_entropy(_with_logits) take no broadcasting between input and target."""
    if tuple(_shape(input)) != tuple(_shape(target)):
        _fail(f"{name}: target {tuple(_shape(target))} must have the input's shape "
              f"{tuple(_shape(input))}")
    _both(name, input, target)


def _weight_into(name, what, weight, shape):
    """A weight that broadcasts to `shape` without growing it (torch multiplies in place)."""
    if weight is not None and broadcast_shapes(tuple(_shape(weight)), shape) != shape:
        _fail(f"{name}: {what} {tuple(_shape(weight))} does not broadcast to the loss's shape "
              f"{shape}")


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return F.sum(loss) if reduction == "sum" else F.mean(loss)


def _float(x):
    """Integer operands as float32 (torch takes them as its default float dtype)."""
    return x if is_float(_dtype(x)) else F.cast(x, "float32")


def _floored_log(log, v, pole):
    """max(log(v), -100), torch's clamp, with log's pole (v == pole: -inf, so -100) not
    evaluated: a probability of exactly 0 or 1 is ordinary input, not a RuntimeWarning."""
    at_pole = F.equal(v, pole)
    return F.where(at_pole, _LOG_FLOOR,
                   F.maximum(log(F.where(at_pole, 0.5, v)), _LOG_FLOOR))


# ---- probabilities ---------------------------------------------------------------------------
@precision.in_float32  # torch.autocast's float32 list
def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-weight * (target * log(input) + (1 - target) * log(1 - input)), each log clamped to
    >= -100, as torch.nn.functional.binary_cross_entropy. input and target have one shape;
    weight broadcasts to it. The gradient is torch's: (input - target) / max(input (1 -
    input), 1e-12) w.r.t. input (finite at probabilities 0 and 1, and 0 where input equals a
    0/1 target) and log(1 - input) - log(input) w.r.t. target (the clamped logs' difference
    where a log is clamped, where torch's is the unclamped, infinite one). An input outside
    [0, 1] gives NaN (torch raises)."""
    name = "binary_cross_entropy"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    _float_operands(name, input, target)  # (not _same_shape's 'cast one' of two int dtypes)
    _same_shape(name, input, target)
    input, target = _strong_pair(input, target)
    _no_list(name, "weight", weight)  # (_cast_weight's cast would name itself)
    weight = _cast_weight(weight, input)
    _weight_into(name, "weight", weight, tuple(_shape(target)))
    x, t = input, target
    # float16's smallest normal number is far above 1e-12: its slope 1 / eps stays finite
    eps = max(_BCE_EPS, float(finfo(_dtype(x)).tiny)) if is_float(_dtype(x)) else _BCE_EPS
    inner = F.greater_equal(F.mul(x, F.sub(1.0, x)), eps)
    # inside, the logs are the loss and its gradient; fed 0.5 elsewhere, so that log's
    # infinite slope at 0 does not meet where's zero cotangent (0 * inf = NaN)
    xs = F.where(inner, x, 0.5)
    smooth = F.neg(F.add(F.mul(t, F.log(xs)), F.mul(F.sub(1.0, t), F.log1p(F.neg(xs)))))
    # at the edge: the clamped value, and torch's slope (x - t) / 1e-12 through x - stop(x)
    # (0, slope 1); the logs are constants there, so t's gradient is their difference
    vx, vt = F.stop_gradient(x), F.stop_gradient(t)
    log_x = _floored_log(F.log, vx, 0.0)
    log_1mx = _floored_log(lambda v: F.log1p(F.neg(v)), vx, 1.0)
    edge = F.add(F.neg(F.add(F.mul(t, log_x), F.mul(F.sub(1.0, t), log_1mx))),
                 F.mul(F.sub(x, vx), F.mul(F.sub(vx, vt), 1.0 / eps)))
    loss = F.where(inner, smooth, edge)
    if weight is not None:
        loss = F.mul(loss, weight)
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target) computed from the logits without
    overflow, as torch's: torch's (1 - target) * input - (1 + (pos_weight - 1) * target) *
    log_sigmoid(input), written as -pos_weight * target * log_sigmoid(input) + (1 - target) *
    softplus(input), whose gradient (1 - target) * sigmoid(x) - pos_weight * target *
    sigmoid(-x) keeps its digits where torch's form has 1 - sigmoid(-x) (0 below x = -37),
    times weight. pos_weight weighs the positive term (one per class, the last axis); weight
    and pos_weight broadcast to input's shape."""
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    # under autocast in the target's dtype, as torch's: its kernel writes into a copy of the
    # target, so a float64 input beside a float32 target is float32 there (a float64 target
    # makes a float32 input's float64, as promoting would); torch's refusals kept
    input, target = _autocast_promoted((input, target), refuse="iub", like=1)
    _float_operands(name, input, target)  # (not _same_shape's 'cast one' of two int dtypes)
    _same_shape(name, input, target)
    input, target = _strong_pair(input, target)
    _no_list(name, "weight", weight)  # (_cast_weight's cast would name itself)
    _no_list(name, "pos_weight", pos_weight)
    weight, pos_weight = _cast_weight(weight, input), _cast_weight(pos_weight, input)
    shape = tuple(_shape(input))
    _weight_into(name, "weight", weight, shape)
    _weight_into(name, "pos_weight", pos_weight, shape)
    positive = F.mul(target, F.log_sigmoid(input))
    if pos_weight is not None:
        positive = F.mul(positive, pos_weight)
    loss = F.sub(F.mul(F.sub(1.0, target), F.softplus(input)), positive)
    if weight is not None:
        loss = F.mul(loss, weight)
    return _reduce(loss, reduction)


# ---- regression ------------------------------------------------------------------------------
def _weighted(name, loss, input, weight, reduction, mean_over_weight):
    """torch's optional weight of l1_loss, huber_loss and mse_loss: input's own shape; the
    weighted mean divides by sum(weight) for l1_loss and mse_loss, by the element count for
    huber_loss (torch's)."""
    if weight is None:
        return _reduce(loss, reduction)
    _no_list(name, "weight", weight)  # (_promoted's cast or mul would name itself)
    if tuple(_shape(weight)) != tuple(_shape(input)):
        _fail(f"{name}: weight {tuple(_shape(weight))} must have the input's shape "
              f"{tuple(_shape(input))}")
    loss, weight = _promoted(loss, weight)
    loss = F.mul(loss, weight)
    if reduction == "mean" and mean_over_weight:
        return F.div(F.sum(loss), F.sum(weight))
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def l1_loss(input, target, reduction="mean", weight=None):
    """|input - target| (broadcast), as torch.nn.functional.l1_loss; the gradient at
    input == target is 0."""
    _check_reduction("l1_loss", reduction)
    _no_lists("l1_loss", ("input", "target"), input, target)
    _float_operands("l1_loss", input, target)
    input, target = _autocast_promoted((input, target), refuse="b")  # (torch's input - target)
    _both("l1_loss", input, target)
    loss = F.abs(F.sub(input, target))
    return _weighted("l1_loss", loss, input, weight, reduction, True)


def _quadratic_inside(diff, width):
    """0.5 * diff^2 of diff clamped to [-width, width]: where diff is outside, this piece is
    not selected, and the clamp keeps an infinite diff's slope (inf * 0 = NaN) out of it."""
    inside = F.clip(diff, -width, width)
    return F.mul(F.mul(inside, inside), 0.5)


@precision.in_float32  # torch.autocast's float32 list
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 * d^2 / beta where |d| < beta, |d| - 0.5 * beta elsewhere (d = input - target,
    broadcast), as torch.nn.functional.smooth_l1_loss; beta=0 is l1_loss."""
    name = "smooth_l1_loss"
    beta = _number(f"{name}: beta", beta)
    if not beta >= 0:  # (NaN too, as torch's: its loss was NaN everywhere)
        _fail(f"{name}: beta must be >= 0, got {beta}")
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    _float_operands(name, input, target)
    input, target = _autocast_promoted((input, target))
    _both(name, input, target)
    diff = F.sub(input, target)
    size = F.abs(diff)
    if beta == 0:  # torch's l1_loss (the formula would divide by 0)
        return _reduce(size, reduction)
    loss = F.where(F.less(size, beta), F.mul(_quadratic_inside(diff, beta), 1.0 / beta),
                   F.sub(size, 0.5 * beta))
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 * d^2 where |d| < delta, delta * (|d| - 0.5 * delta) elsewhere (d = input -
    target, broadcast), as torch.nn.functional.huber_loss (smooth_l1_loss times beta)."""
    name = "huber_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    delta = _number(f"{name}: delta", delta)
    if not delta > 0:  # (NaN too, as torch's)
        _fail(f"{name}: delta must be > 0, got {delta}")
    input, target = _autocast_promoted((input, target), like=0)  # (torch's: input's dtype)
    _float_operands(name, input, target)  # (not _both's 'cast one' of two int dtypes)
    _both(name, input, target)
    diff = F.sub(input, target)
    size = F.abs(diff)
    loss = F.where(F.less(size, delta), _quadratic_inside(diff, delta),
                   F.mul(F.sub(size, 0.5 * delta), delta))
    return _weighted(name, loss, input, weight, reduction, False)


# ---- distributions ---------------------------------------------------------------------------
@precision.in_float32  # torch.autocast's float32 list
def kl_div(input, target, reduction="mean", log_target=False):
    """The pointwise KL divergence target * (log(target) - input) of log-probabilities
    `input` (broadcast with target), as torch.nn.functional.kl_div: a target of 0 adds 0
    (torch's xlogy); log_target=True takes target as log-probabilities, exp(target) *
    (target - input). reduction 'batchmean' is the sum divided by input's first dimension
    (the KL divergence per sample; 'mean' divides by every element, as torch's)."""
    name = "kl_div"
    if reduction not in ("mean", "batchmean", "sum", "none"):
        _fail(f"{name}: unknown reduction {reduction!r} (choose 'mean', 'batchmean', 'sum' "
              "or 'none')")
    F._flag(name, "log_target", log_target)
    _no_lists(name, ("input", "target"), input, target)
    input, target = _autocast_promoted((input, target), refuse="iub")  # (torch's refusal)
    _float_operands(name, input, target)  # (not _both's 'cast one' of two int dtypes)
    _both(name, input, target)
    input, target = _strong_pair(input, target)
    if log_target:
        loss = F.mul(F.exp(target), F.sub(target, input))
    else:
        # xlogy(t, t): 0 where t == 0 (its log fed 1 there: a one-hot target is no
        # RuntimeWarning); a NaN or negative t gives NaN, as torch's
        zero = F.equal(target, 0.0)
        loss = F.sub(F.where(zero, 0.0, F.mul(target, F.log(F.where(zero, 1.0, target)))),
                     F.mul(target, input))
    if reduction != "batchmean":
        return _reduce(loss, reduction)
    total = F.sum(loss)
    if _ndim(input) == 0:
        return total
    rows = _shape(input)[0]
    if isinstance(rows, Dim):  # known per call: a scalar the plan computes from the binding
        return F.div(total, F.full((), rows, _dtype(total)))
    return F.div(total, float(rows) if rows else math.nan)  # no rows: NaN, as torch's 0 / 0


# ---- vectors ---------------------------------------------------------------------------------
def _broadcast_pair(name, x1, x2, bools=True):
    """x1 and x2 of one dtype (torch's integers into float32), broadcast to one shape.
    bools=False: two bools are refused, as by torch's x1 - x2 (_float read them as 0/1)."""
    shape = _both(name, x1, x2, ("x1", "x2"))
    if not bools:
        _no_bools(name, (x1, x2), "x1 and x2")
    x1, x2 = _strong_pair(x1, x2)
    x1, x2 = _float(x1), _float(x2)
    if tuple(_shape(x1)) != shape:
        x1 = F.broadcast_to(x1, shape)
    if tuple(_shape(x2)) != shape:
        x2 = F.broadcast_to(x2, shape)
    return x1, x2


def _no_bools(name, operands, what):
    """Refuse bool operands (every one: a weak True beside floats is a number) of a distance
    torch computes from their difference, which torch refuses for two bools ("Subtraction,
    the `-` operator, with two bool tensors is not supported"), in one line naming `name`."""
    if all(_dtype(x) == np.bool_ for x in operands):
        _fail(f"{name}: {what} are bool; torch's {name} subtracts them, which takes no "
              "bools: cast them to a number dtype (.astype)")


def _along(name, x, dim):
    """(x with a 0-d value as one element, its axis `dim`): torch takes dim 0 or -1 of a 0-d
    tensor as that element."""
    if _ndim(x) == 0:
        _axis(dim, 0, f"{name}: dim")
        return F.reshape(x, (1,)), 0
    return x, _axis(dim, _ndim(x), f"{name}: dim")


def _p_norm(name, p):
    p = _number(f"{name}: p", p)
    if p < 0 and p != -math.inf:
        _fail(f"{name}: p must be >= 0, inf or -inf, got {p}")
    return p


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)) along `dim` (x1 and x2 broadcast), as
    torch's: each norm clamped to eps on its own (a zero vector gives 0), and the clamp, done
    by torch under no_grad, is invisible to the gradient: it flows through the norm as
    though unclamped (0 through a zero vector's norm)."""
    name = "cosine_similarity"
    eps = _number(f"{name}: eps", eps)
    # integers (or bools) alone: torch's refuses them ("expected common dtype to be floating
    # point"), in and out of autocast; _float read them as float32 and computed. (Lists
    # first: _float_operands would read a list's dtype as numpy does.)
    _no_lists(name, ("x1", "x2"), x1, x2)
    _float_operands(name, x1, x2, ("x1", "x2"))
    x1, x2 = _broadcast_pair(name, x1, x2)
    scalar = _ndim(x1) == 0
    (x1, dim), (x2, _) = _along(name, x1, dim), _along(name, x2, dim)

    def unit(x):
        n = norm(x, 2, dim, keepdims=True)
        clamped = F.add(F.stop_gradient(F.maximum(n, eps)), F.sub(n, F.stop_gradient(n)))
        return F.div(x, clamped)

    out = F.sum(F.mul(unit(x1), unit(x2)), dim)
    return F.reshape(out, ()) if scalar else out


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p, eps) along `dim`, as torch.nn.functional.normalize (a zero
    vector stays zero; the clamp's gradient is torch.clamp_min's)."""
    name = "normalize"
    _no_list(name, "input", input)  # (the ops would name themselves, not the argument)
    p, eps = _p_norm(name, p), _number(f"{name}: eps", eps)
    x = _float(input)
    scalar = _ndim(x) == 0
    x, dim = _along(name, x, dim)
    out = F.div(x, F.clip(norm(x, p, dim, keepdims=True), eps))
    return F.reshape(out, ()) if scalar else out


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p along the last axis (x1 and x2 broadcast), as
    torch.nn.functional.pairwise_distance; keepdim keeps that axis as size 1."""
    name = "pairwise_distance"
    p, eps = _p_norm(name, p), _number(f"{name}: eps", eps)
    keepdim = F._flag(name, "keepdim", keepdim)
    x1, x2 = _broadcast_pair(name, x1, x2, bools=False)
    diff = F.add(F.sub(x1, x2), eps)
    if _ndim(diff) == 0:  # torch's norm of a 0-d value: its magnitude, 0-d
        return F.reshape(norm(F.reshape(diff, (1,)), p, 0), ())
    return norm(diff, p, _ndim(diff) - 1, keepdims=keepdim)
