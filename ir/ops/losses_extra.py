"""torch.nn.functional's margin, embedding and likelihood losses, built from the primitive
ops: margin_ranking_loss, triplet_margin_loss, hinge_embedding_loss, cosine_embedding_loss,
soft_margin_loss, multilabel_soft_margin_loss, multi_margin_loss, multilabel_margin_loss,
triplet_margin_with_distance_loss, poisson_nll_loss and gaussian_nll_loss. Arguments,
defaults, broadcasting, reductions and the gradients at the kinks are torch's (each hinge is
torch's clamp_min, whose gradient passes at 0, or its `z > 0` test where torch's kernel has
one); tests/test_losses_extra.py compares them with
torch's in float64. Where torch raises on data (a negative variance, a class index out of
range) the loss is NaN, as nll_loss's, so that eager and compiled runs agree. As in
ir/ops/losses.py, arithmetic goes through the ops (F.sub, not `-`).
"""
from __future__ import annotations

import math

import numpy as np

from ..types import broadcast_shapes, is_float
from . import api as F
from . import precision
from .api import (_autocast_promoted, _check_reduction, _checked_class_targets, _dtype,
                  _dtype_mix, _fail, _float_operands, _ndim, _no_bool_classes, _no_list,
                  _no_lists, _number, _shape, _weakly_typed)
from .api import _loss_operands as _both
from .losses import _float, _no_bools, _promoted, _p_norm, _reduce, pairwise_distance
from .registry import SymbolicValue, is_weak_scalar

__all__ = ["margin_ranking_loss", "triplet_margin_loss", "hinge_embedding_loss",
           "cosine_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "multi_margin_loss", "multilabel_margin_loss", "triplet_margin_with_distance_loss",
           "poisson_nll_loss", "gaussian_nll_loss"]

# cosine_embedding_loss adds this to each squared norm: torch's EPSILON in Loss.cpp, a C++
# float 1e-12 (in float64 too; a zero vector's gradient shows the difference)
_COSINE_EPS = float(np.float32(1e-12))


def _like(name, target, x, bools=True):
    """An integer or bool target (torch's +-1 labels, Poisson counts) as x's float dtype, as
    torch's type promotion takes it; a float target is left to the dtype check, and so is a
    bool one with bools=False: refused there, as by torch's loss, whose -target or
    1 - target takes no bool. A list is refused naming the loss `name` (cast named itself)."""
    _no_list(name, "target", target)
    if isinstance(target, (bool, int, float)) or is_float(_dtype(target)) \
            or not is_float(_dtype(x)) or (not bools and _dtype(target) == np.bool_):
        return target
    return F.cast(target, _dtype(x))


def _clamp_min0(z):
    """torch's clamp_min(z, 0): max(z, 0) whose gradient passes where z == 0 (graphc's
    maximum gives a tie to its first operand) and not where z is NaN."""
    return F.clip(z, 0.0)


# ---- ranking and margins ---------------------------------------------------------------------
@precision.in_float32  # torch.autocast's float32 list
def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """max(0, -target * (input1 - input2) + margin), as torch.nn.functional.
    margin_ranking_loss: the three operands have one number of dimensions (torch's check) and
    broadcast; target is +-1 (an integer target is taken as input1's dtype)."""
    name = "margin_ranking_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input1", "input2", "target"), input1, input2, target)
    margin = _number(f"{name}: margin", margin)
    dims = (_ndim(input1), _ndim(input2), _ndim(target))
    if len(set(dims)) != 1:
        _fail(f"{name}: input1 {tuple(_shape(input1))}, input2 {tuple(_shape(input2))} and "
              f"target {tuple(_shape(target))} must have one number of dimensions")
    target = _like(name, target, input1, bools=False)
    input1, input2, target = _autocast_promoted((input1, input2, target), refuse="b")
    # (not _both's 'cast one' of two int dtypes; torch's computes integers)
    _float_operands(name, input1, input2, ("input1", "input2"), torch_too=False)
    _both(name, input1, input2, ("input1", "input2"))
    _both(name, input1, target, ("input1", "target"))
    _both(name, input2, target, ("input2", "target"))
    loss = _clamp_min0(F.add(F.mul(F.neg(target), F.sub(input1, input2)), margin))
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """input where target != -1, plus max(0, margin - input) where target != 1 (a target of
    +-1 takes one of them, any other value both, as torch's); input and target broadcast."""
    name = "hinge_embedding_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    margin = _number(f"{name}: margin", margin)
    target = _like(name, target, input)
    # (a float64 target too: torch's only compares it, so the loss is the input's dtype)
    input, target = _autocast_promoted((input, target), like=0)
    _float_operands(name, input, target)  # (not _both's 'cast one' of two int dtypes)
    _both(name, input, target)
    hinge = _clamp_min0(F.sub(margin, input))
    loss = F.add(F.where(F.not_equal(target, 1.0), hinge, 0.0),
                 F.where(F.not_equal(target, -1.0), input, 0.0))
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-target * input)), as torch.nn.functional.soft_margin_loss; target
    broadcasts to input's shape (torch's writes into it). Computed as -log_sigmoid(target *
    input): torch's value wherever its exp does not overflow, and finite where it does
    (torch's is inf beyond target * input < -709 in float64)."""
    name = "soft_margin_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    target = _like(name, target, input)
    input, target = _autocast_promoted((input, target), like=0)  # (torch's: input's dtype)
    _float_operands(name, input, target)  # (not _both's 'cast one' of two int dtypes)
    _both(name, input, target)
    if broadcast_shapes(tuple(_shape(target)), tuple(_shape(input))) != tuple(_shape(input)):
        _fail(f"{name}: target {tuple(_shape(target))} does not broadcast to the input's "
              f"shape {tuple(_shape(input))}")
    return _reduce(F.neg(F.log_sigmoid(F.mul(target, input))), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    """The binary cross-entropy of sigmoid(input) against 0/1 `target` per class (the last
    axis), times weight, averaged over the classes, as torch.nn.functional.
    multilabel_soft_margin_loss: one loss per sample, then reduced. target and weight
    broadcast; like torch's, the class sum is over axis input.ndim - 1 of the broadcast
    loss."""
    name = "multilabel_soft_margin_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target", "weight"), input, target, weight)
    if _ndim(input) == 0:
        _fail(f"{name}: input must have a class axis (its last), got a 0-d value")
    target = _like(name, target, input, bools=False)
    # not on torch.autocast's list: promoted as torch's ops promote (bfloat16 input, float32
    # or float16 target: float32)
    input, target = _autocast_promoted((input, target), refuse="b")
    _float_operands(name, input, target)  # (not _both's 'cast one' of two int dtypes)
    _both(name, input, target)
    loss = F.neg(F.add(F.mul(target, F.log_sigmoid(input)),
                       F.mul(F.sub(1.0, target), F.log_sigmoid(F.neg(input)))))
    if weight is not None:
        loss, weight = _promoted(loss, weight)
        _both(name, loss, weight, ("loss", "weight"))
        loss = F.mul(loss, weight)
    classes = _shape(input)[-1]
    loss = F.div(F.sum(loss, _ndim(input) - 1), F.full((), classes, _dtype(loss)))
    return _reduce(loss, reduction)


def _class_scores(name, input, target):
    """The margin class losses' input, a non-empty (C,) vector or (N, C) matrix (or 0-d),
    and its integer class target, refused in one line naming `name`: (shape, ndim)."""
    shape, nd = tuple(_shape(input)), _ndim(input)
    if nd > 2 or (nd >= 1 and shape[-1] == 0):
        _fail(f"{name}: input must be a non-empty (C,) vector or (N, C) matrix, got {shape}")
    if is_float(_dtype(target)):
        _fail(f"{name}: target must hold integer class indices, got {_dtype(target)}")
    _no_bool_classes(name, "target", target)
    return shape, nd


@precision.in_float32  # torch.autocast's float32 list
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """The multi-class hinge loss, as torch.nn.functional.multi_margin_loss: per sample,
    sum over the classes i != y of max(0, margin - input[y] + input[i]) ** p (p = 1 or 2),
    times weight[y], divided by the number of classes. input is (C,) or (N, C) (a 0-d input
    one class); target holds N integer classes (0-d for a single sample: then 'none' gives
    a 0-d loss). A class outside [0, C) gives NaN (torch raises)."""
    name = "multi_margin_loss"
    _check_reduction(name, reduction)
    if isinstance(p, bool) or p not in (1, 2):
        _fail(f"{name}: p must be 1 or 2, got {p!r}")
    margin = _number(f"{name}: margin", margin)
    # (reshape would name a list input itself, one_hot a target)
    _no_lists(name, ("input", "target", "weight"), input, target, weight)
    shape, nd = _class_scores(name, input, target)
    rows, classes = (shape[0], shape[1]) if nd == 2 else (1, shape[0] if nd else 1)
    tshape = tuple(_shape(target))
    if len(tshape) > 1 or math.prod(tshape) != rows:
        _fail(f"{name}: target {tshape} must hold one class per sample: {rows} for the input "
              f"{shape}")
    if weight is not None:
        if _ndim(weight) != 1 or _shape(weight)[0] != classes:
            _fail(f"{name}: weight {tuple(_shape(weight))} must be one per class, ({classes},)")
        _both(name, input, weight, ("input", "weight"))
    x = F.reshape(input, (rows, classes))                     # (N, C)
    y = F.reshape(_checked_class_targets(target, classes), (rows,))  # (N,)
    chosen = F.one_hot(y, classes, "bool")                    # (N, C); all False out of range
    picked = F.sum(F.where(chosen, x, 0.0), -1, keepdims=True)  # input[y], (N, 1)
    z = F.add(F.sub(margin, picked), x)
    hinge = F.relu(z)  # torch's kernel adds where z > 0: no gradient at z == 0
    if p == 2:
        hinge = F.mul(hinge, hinge)
    if weight is not None:
        hinge = F.mul(hinge, F.sum(F.where(chosen, weight, 0.0), -1, keepdims=True))
    loss = F.div(F.sum(F.where(chosen, 0.0, hinge), -1), F.full((), classes, _dtype(hinge)))
    outside = F.logical_or(F.less(y, 0), F.greater_equal(y, classes))
    loss = F.where(outside, math.nan, loss)
    if reduction == "none":
        return loss if len(tshape) else F.reshape(loss, ())
    return _reduce(loss, reduction)


@precision.in_float32  # torch.autocast's float32 list
def multilabel_margin_loss(input, target, reduction="mean"):
    """The multi-label hinge loss, as torch.nn.functional.multilabel_margin_loss: per
    sample, sum over its target classes j and the classes i that are none of them of
    max(0, 1 - input[j] + input[i]), divided by the number of classes. input is (C,) or
    (N, C) (a 0-d input one class); target, of input's shape, holds integer classes, the
    first -1 ending them (what follows is not read); a class listed twice counts twice, as
    torch's. A target outside [-1, C), after that -1 too, gives NaN (torch raises)."""
    name = "multilabel_margin_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("input", "target"), input, target)
    shape, nd = _class_scores(name, input, target)
    if tuple(_shape(target)) != shape:
        _fail(f"{name}: target {tuple(_shape(target))} must have the input's shape {shape}")
    if not is_float(_dtype(input)):
        _fail(f"{name}: input must be floating-point, got {_dtype(input)}; torch's takes no "
              "integers either: cast it (.astype)")
    rows, classes = (shape[0], shape[1]) if nd == 2 else (1, shape[0] if nd else 1)
    x = F.reshape(input, (rows, classes))                      # (N, C)
    y = F.reshape(target, (rows, classes))                     # (N, C): slot j's class
    # slot j is read while no -1 came at or before it (torch's loop breaks at the first)
    ended = F.cumsum(F.cast(F.equal(y, -1), "int32"), -1)
    read = F.equal(ended, 0)                                   # (N, C) over the slots
    # (torch checks every slot, the unread ones too)
    outside = F.logical_or(F.less(y, -1), F.greater_equal(y, classes))
    slot_class = F.logical_and(F.one_hot(y, classes, "bool"),  # (N, slot, class)
                               F.expand_dims(read, -1))
    is_target = F.any(slot_class, 1)                           # (N, C) over the classes
    picked = F.sum(F.where(slot_class, F.expand_dims(x, 1), 0.0), -1)  # input[y_j], (N, C)
    z = F.add(F.sub(1.0, F.expand_dims(picked, -1)), F.expand_dims(x, 1))  # (N, slot, i)
    counted = F.logical_and(F.expand_dims(read, -1),
                            F.logical_not(F.expand_dims(is_target, 1)))
    hinge = F.where(counted, F.relu(z), 0.0)  # torch's kernel adds where z > 0, as relu
    loss = F.div(F.sum(hinge, (1, 2)), F.full((), classes, _dtype(hinge)))
    loss = F.where(F.any(outside, -1), math.nan, loss)
    if reduction == "none":
        return loss if nd == 2 else F.reshape(loss, ())
    return _reduce(loss, reduction)


# ---- embeddings ------------------------------------------------------------------------------
def _triplet_hinge(d_pos, d_neg, d_swap, margin, reduction):
    """max(0, margin + d_pos - d_neg), d_neg the smaller of itself and d_swap where given (a
    tie shares the gradient, as torch's min and minimum), reduced."""
    if d_swap is not None:
        tie = F.equal(d_neg, d_swap)
        d_neg = F.where(tie, F.mul(F.add(d_neg, d_swap), 0.5), F.minimum(d_neg, d_swap))
    return _reduce(_clamp_min0(F.sub(F.add(d_pos, margin), d_neg)), reduction)


def _triplet_margin(name, margin):
    margin = _number(f"{name}: margin", margin)
    if margin <= 0:
        _fail(f"{name}: margin must be > 0, got {margin}")
    return margin


def _triplet_dims(name, anchor, positive, negative):
    dims = (_ndim(anchor), _ndim(positive), _ndim(negative))
    if len(set(dims)) != 1:
        _fail(f"{name}: anchor {tuple(_shape(anchor))}, positive {tuple(_shape(positive))} "
              f"and negative {tuple(_shape(negative))} must have one number of dimensions")


@precision.in_float32  # torch.autocast's float32 list
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        reduction="mean"):
    """max(0, margin + d(anchor, positive) - d(anchor, negative)) with d pairwise_distance
    (p, eps) along the last axis, as torch.nn.functional.triplet_margin_loss; swap=True
    takes min(d(anchor, negative), d(positive, negative)) (a tie shares the gradient, as
    torch's min). The three have one number of dimensions and broadcast; margin > 0."""
    name = "triplet_margin_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("anchor", "positive", "negative"), anchor, positive, negative)
    margin = _triplet_margin(name, margin)
    p, eps = _p_norm(name, p), _number(f"{name}: eps", eps)
    swap = F._flag(name, "swap", swap)
    _triplet_dims(name, anchor, positive, negative)
    # checked here so that a dtype mix or a shape that does not broadcast is told in this
    # loss's name and its arguments', not pairwise_distance's x1 and x2
    _both(name, anchor, positive, ("anchor", "positive"))
    _both(name, anchor, negative, ("anchor", "negative"))
    _both(name, positive, negative, ("positive", "negative"))
    # (refused here in this loss's words, not pairwise_distance's)
    _no_bools(name, (anchor, positive, negative), "anchor, positive and negative")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    d_swap = pairwise_distance(positive, negative, p, eps) if swap else None
    return _triplet_hinge(d_pos, d_neg, d_swap, margin, reduction)


@precision.in_float32  # torch.autocast's float32 list
def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """triplet_margin_loss with a distance of the user's, as
    torch.nn.functional.triplet_margin_with_distance_loss: max(0, margin + d(anchor,
    positive) - d(anchor, negative)), d `distance_function` (a callable of two tensors, a
    module too; pairwise_distance when None), swap=True taking min(d(anchor, negative),
    d(positive, negative)). The three have one number of dimensions; margin > 0."""
    name = "triplet_margin_with_distance_loss"
    _check_reduction(name, reduction)
    _no_lists(name, ("anchor", "positive", "negative"), anchor, positive, negative)
    margin = _triplet_margin(name, margin)
    swap = F._flag(name, "swap", swap)
    if distance_function is None:
        distance_function = pairwise_distance
    elif not callable(distance_function):
        _fail(f"{name}: distance_function must be a callable of two tensors or None, got "
              f"{type(distance_function).__name__}")
    _triplet_dims(name, anchor, positive, negative)
    d_pos = distance_function(anchor, positive)
    d_neg = distance_function(anchor, negative)
    d_swap = distance_function(positive, negative) if swap else None
    return _triplet_hinge(d_pos, d_neg, d_swap, margin, reduction)


@precision.in_float32  # torch.autocast's float32 list
def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """1 - cos(input1, input2) where target == 1, max(0, cos - margin) where target == -1
    (0 elsewhere), as torch.nn.functional.cosine_embedding_loss: (N, D) inputs with an (N,)
    target, or (D,) inputs with a 0-d one; cos = x1.x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps)),
    torch's, with its eps, float32's 1e-12."""
    name = "cosine_embedding_loss"
    _check_reduction(name, reduction)
    margin = _number(f"{name}: margin", margin)
    # (a list input1 was read as float64 by _float and refused as a dtype mix)
    _no_lists(name, ("input1", "input2", "target"), input1, input2, target)
    axis = _ndim(target)
    if axis > 1:
        _fail(f"{name}: target must be 0-d or 1-d, got {tuple(_shape(target))}")
    if _ndim(input1) != axis + 1 or _ndim(input2) != axis + 1:
        _fail(f"{name}: a {axis}-d target needs {axis + 1}-d inputs, got "
              f"{tuple(_shape(input1))} and {tuple(_shape(input2))}")
    x1, x2 = _float(input1), _float(input2)
    target = _like(name, target, x1)
    # (a float64 target too: torch's only compares it, so the loss is the inputs' dtype)
    x1, target = _autocast_promoted((x1, target), like=0)
    if _dtype(target) != _dtype(x1) and not _weakly_typed(target):  # named as given
        _dtype_mix(name, input1, target, ("input1", "target"))
    _both(name, x1, x2, ("input1", "input2"))
    dot = F.sum(F.mul(x1, x2), axis)
    sq1 = F.add(F.sum(F.mul(x1, x1), axis), _COSINE_EPS)
    sq2 = F.add(F.sum(F.mul(x2, x2), axis), _COSINE_EPS)
    cos = F.div(dot, F.sqrt(F.mul(sq1, sq2)))
    _both(name, cos, target, ("cosine", "target"))  # (its shape: the dtypes are one now)
    loss = F.add(F.where(F.equal(target, 1.0), F.sub(1.0, cos), 0.0),
                 F.where(F.equal(target, -1.0), _clamp_min0(F.sub(cos, margin)), 0.0))
    return _reduce(loss, reduction)


# ---- likelihoods -----------------------------------------------------------------------------
@precision.in_float32  # torch.autocast's float32 list
def poisson_nll_loss(input, target, log_input=True, full=False, eps=1e-8, reduction="mean"):
    """The Poisson negative log-likelihood of `target` counts, as torch.nn.functional.
    poisson_nll_loss: exp(input) - target * input with log_input (input is the log-rate),
    else input - target * log(input + eps); full adds Stirling's term target * log(target) -
    target + log(2 pi target) / 2 where target > 1. input and target broadcast. Where target
    <= 1 the Stirling term is a constant 0 (torch's target gradient there is NaN at 0)."""
    name = "poisson_nll_loss"
    _check_reduction(name, reduction)
    log_input, full = F._flag(name, "log_input", log_input), F._flag(name, "full", full)
    eps = _number(f"{name}: eps", eps)
    _no_lists(name, ("input", "target"), input, target)
    target = _like(name, target, input)
    input, target = _autocast_promoted((input, target))
    # (not _both's 'cast one' of two int dtypes; torch's computes integers)
    _float_operands(name, input, target, torch_too=False)
    _both(name, input, target)
    if log_input:
        loss = F.sub(F.exp(input), F.mul(target, input))
    else:
        loss = F.sub(input, F.mul(target, F.log(F.add(input, eps))))
    if full:
        small = F.less_equal(target, 1.0)
        t = F.where(small, 2.0, target)  # the logs fed 2 where masked: no log(0), no NaN
        stirling = F.add(F.sub(F.mul(t, F.log(t)), t), F.mul(F.log(F.mul(t, 2 * math.pi)),
                                                              0.5))
        loss = F.add(loss, F.where(small, 0.0, stirling))
    return _reduce(loss, reduction)


def _variance(name, var, input):
    """torch's shapes for var: input's, input's without its last axis (one variance per
    row, given a trailing axis), or input's with one axis of size 1."""
    xs, vs = tuple(_shape(input)), tuple(_shape(var))
    if vs == xs:
        return var
    if vs == xs[:-1]:
        return F.expand_dims(var, -1)
    differing = [v for x, v in zip(xs, vs) if x != v]
    if len(vs) == len(xs) and all(isinstance(v, int) for v in differing) \
            and sum(differing) == 1:
        return var
    _fail(f"{name}: var {vs} is of incorrect size for the input {xs} (its shape, its shape "
          "without the last axis, or its shape with one axis of size 1)")


def _integer_input_float(name, input, target, var):
    """The float dtype torch's gaussian_nll_loss computes an integer `input` in, None where
    there is none to take (a float or bool input, a bool target, an integer var array:
    those are left to the checks after). Torch's type promotion, in which a Python number
    (a weak operand: a literal or a compiled function's number argument) has no dtype of its
    own: a float number beside an integer tensor is torch's default float32 (input - 1.5,
    var * ones_like(input); `var` None: a number), promoted with a float array's dtype
    (beside float16 or bfloat16: float32; beside float64: float64). A weak target was taken
    for float64 (int64 input, target 1.5: float64, torch's float32), and a float16 target
    beside a number var was refused as a mix with the float32 var the user never made. Two
    float arrays of different dtypes (target and var) are a mix the user made: refused in
    one line naming them, as graphc mixes no floats silently (the line blamed the integer
    input)."""
    if _dtype(input).kind not in "iu" or _dtype(target) == np.bool_ or \
            (var is not None and not is_float(_dtype(var))):
        return None
    given = [(what, _dtype(x)) for what, x in (("target", target), ("var", var))
             if x is not None and not F._weakly_typed(x) and is_float(_dtype(x))]
    if len(given) == 2 and given[0][1] != given[1][1]:
        _fail(f"{name}: target is {given[0][1]} but var is {given[1][1]}; cast one (.astype)")
    if given and not (var is None or (F._weakly_typed(target) and is_float(_dtype(target)))):
        return given[0][1]  # (one float array, nothing made float32 beside it)
    # a float number (var, or target) made float32 beside the integer input
    return np.dtype(np.float64) if given and given[0][1] == np.float64 else \
        np.dtype(np.float32)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """The Gaussian negative log-likelihood 0.5 * (log(var) + (input - target)^2 / var), plus
    0.5 * log(2 pi) with full, as torch.nn.functional.gaussian_nll_loss. var is a number or
    has input's shape, input's without its last axis, or input's with one axis of size 1;
    target broadcasts. var is clamped to >= eps for the value, and the clamp (torch's, under
    no_grad) is invisible to the gradient. A negative variance gives NaN there (torch
    raises; a negative number is an error)."""
    name = "gaussian_nll_loss"
    _check_reduction(name, reduction)
    full, eps = F._flag(name, "full", full), _number(f"{name}: eps", eps)
    # (var before _variance's expand_dims of one per row named itself)
    _no_lists(name, ("input", "target", "var"), input, target, var)
    if F._weakly_typed(var):  # a number
        # (a compiled function's number argument too, which _variance took for one variance
        # per row: an int64 one was then refused as not input's dtype)
        if _dtype(var) == np.bool_:
            # torch refuses a bool var (its any(var < 0) takes no bool); a traced True was
            # var 1 where the literal was refused: both are this line
            _fail(f"{name}: var must be a number or an array of variances, got a bool")
        # its value is known now for a scalar object and an eager weak value (-gc.sqrt(4.0)
        # gave NaN where -2.0 is refused), also one that a compiled, vmapped or
        # differentiated function closes over (a constant of the trace: asking whether ops
        # run now missed it, NaN or zero gradients); a traced one's only as the plan runs,
        # so a negative one is NaN there, as an array's
        known = var if is_weak_scalar(var) else \
            np.asarray(var.data).item() if not isinstance(var, SymbolicValue) else None
        if known is not None:
            if known < 0:
                _fail(f"{name}: var must be >= 0, got {known}")
            var = float(known)
        # no gradient: a tensor of input's dtype, torch's var * ones_like(input); beside an
        # integer input, of the float dtype _integer_input_float gives
        kind = _dtype(input) if is_float(_dtype(input)) else \
            _integer_input_float(name, input, target, None)
        var = F.full(tuple(_shape(input)), var, kind or np.float32)
    else:
        var = _variance(name, var, input)
        kind = _integer_input_float(name, input, target, var)
    if kind is not None and _dtype(input).kind in "iu":
        # an integer input (and target) computes in torch's result type, as under autocast:
        # it was refused outside it with 'cast one', which a cast to the other integer dtype
        # or to var's did not end. A float array of another dtype is promoted to it too (a
        # float16 target beside the float32 a number var is made), a weak target takes it
        input = F.cast(input, kind)
        if _dtype(var) != kind:
            var = F.cast(var, kind)
        if not F._weakly_typed(target) and is_float(_dtype(target)) and _dtype(target) != kind:
            target = F.cast(target, kind)
    target = _like(name, target, input, bools=False)
    # not on torch.autocast's list: promoted as torch's ops promote (bfloat16 input and
    # target, float32 var: float32); an integer var is not, as torch clamps var in place
    # (clamp_(min=eps)), which refuses a float result into it, under autocast too. So an
    # integer var is checked first: torch refuses it whatever the target, and a float64
    # target beside it is one autocast would promote, not the one to blame
    if _dtype(var).kind in "iu":
        if not is_float(_dtype(input)):  # (_both's 'cast one' would not help: both ints)
            _fail(f"{name}: var is {_dtype(var)}; torch's {name} takes no integer var (it "
                  "clamps var in place): cast it to a float dtype (.astype)")
        _both(name, input, var, ("input", "var"))
    else:
        input, target, var = _autocast_promoted((input, target, var), refuse="b")
    _both(name, input, target)
    _both(name, input, var, ("input", "var"))
    clamped = F.add(F.stop_gradient(F.maximum(var, eps)), F.sub(var, F.stop_gradient(var)))
    diff = F.sub(input, target)
    loss = F.mul(F.add(F.log(clamped), F.div(F.mul(diff, diff), clamped)), 0.5)
    if full:
        loss = F.add(loss, 0.5 * math.log(2 * math.pi))
    loss = F.where(F.less(var, 0.0), math.nan, loss)
    return _reduce(loss, reduction)
