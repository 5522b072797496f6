"""torch.nn.functional.ctc_loss and nn.CTCLoss: the connectionist temporal classification loss.

This module checks the arguments and brings them to one form (padded (N, S) labels, int64
lengths); each sequence's loss is the primitive op `ctc_loss` (ir/ops/ctc.py: the alpha
recursion over the extended label sequence in log space, a numpy loop over time vectorised
over the batch, in log_probs' dtype as torch's CPU kernel) and its gradient `ctc_loss_grad`
(the alpha-beta recursion); vmap folds the vmapped axis into the batch. A second derivative
is refused (in one line).

The gradient is the derivative of the loss w.r.t. log_probs. Torch's kernel returns that plus
exp(log_probs) at each t < input_length (it folds in log_softmax's backward, assuming the
rows are normalised), so the two agree on the logits after log_softmax, where that term
cancels, and not on log_probs themselves. An impossible alignment's loss is inf and its
gradient 0 (torch's is NaN); with zero_infinity both are 0, as torch's.
"""
from __future__ import annotations

import math

import numpy as np

from ir.ops import api as F
from ir.ops import precision
from ir.ops.api import _check_reduction, _dtype, _fail, _ndim, _shape
from ir.ops.registry import SymbolicValue, apply, foreign_array
from ir.types import is_float

from .nn import _Functional

__all__ = ["ctc_loss", "CTCLoss"]

_NAME = "ctc_loss"


def _known(x):
    """x's values as a numpy array where they are known now (a list, a number, a numpy, torch
    or eager array), None where x is traced."""
    if isinstance(x, SymbolicValue):
        return None
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x)
        except ValueError:
            _fail(f"{_NAME}: a list must be rectangular, got {x!r}"[:160])
    data = getattr(x, "data", x) if not isinstance(x, (np.ndarray, np.generic)) else x
    return foreign_array(data)


def _integers(what, x, known):
    """The lengths or targets `x` as an int64 operand (its values `known`, or None where
    traced); floats and bools refused naming `what`: torch's ctc_loss takes integers."""
    kind = known.dtype if known is not None else np.dtype(_dtype(x))
    if kind.kind not in "iu":
        shown = "a list of non-integers" if kind == object else str(kind)
        _fail(f"{_NAME}: {what} must hold integers, got {shown}")
    if known is not None:
        return known.astype(np.int64)
    return x if _dtype(x) == np.int64 else F.cast(x, "int64")


def _lengths(what, x, count, limit, limit_what):
    """input_lengths or target_lengths: `count` integers in [0, limit] (None: any int64),
    of any shape holding `count` (torch's flattens them: (N, 1) too) -> (operand, values or
    None where traced, bad: None, or where traced a bool (N,) of the entries out of
    range)."""
    if isinstance(x, (bool, np.bool_)):
        _fail(f"{_NAME}: {what} must hold integers, got a bool")
    known = _known(x)
    if known is not None and known.dtype.kind in "OUSV":  # (a str: '44' was 'got shape ()')
        shown = f"str {x!r}"[:60] if isinstance(x, str) else type(x).__name__
        _fail(f"{_NAME}: {what} must be integers (a tuple, list or array), got {shown}")
    shape = known.shape if known is not None else tuple(_shape(x))
    if math.prod(shape) != count:
        _fail(f"{_NAME}: {what} must hold one length per sequence ({count}), got shape "
              f"{tuple(shape)}")
    value = F.reshape(_integers(what, x, known), (count,))
    if known is not None:
        # checked before the cast to int64, which would wrap a uint64 2**63 to -2**63
        known = known.reshape(count)
        if known.size and known.min() < 0:
            _fail(f"{_NAME}: {what} must be >= 0, got {int(known.min())}")
        top = np.iinfo(np.int64).max if limit is None else limit
        if known.size and known.max() > top:
            _fail(f"{_NAME}: {what} must be at most "
                  f"{limit_what + f' ({limit})' if limit is not None else f'{top} (int64)'}, "
                  f"got {int(known.max())}")
        known = known.astype(np.int64)
        return known, known, None
    bad = F.less(value, 0)
    if limit is not None:
        bad = F.logical_or(bad, F.greater(value, limit))
    return value, None, bad


def _rows(targets, known, lengths, known_lengths, batch):
    """1-d concatenated targets (the sequences' sum(target_lengths) labels one after another)
    as (N, S) rows, padded -> (rows, their values or None, S, bad): S the longest length
    (len(targets) where the lengths are traced, whose sum differing from it is `bad`)."""
    total = int(known.shape[0] if known is not None else _shape(targets)[0])
    if known_lengths is not None:
        if int(known_lengths.sum()) != total:
            _fail(f"{_NAME}: targets holds {total} labels but target_lengths sum to "
                  f"{int(known_lengths.sum())} (1-d targets are the sequences concatenated)")
        width = int(known_lengths.max()) if known_lengths.size else 0
        starts = np.cumsum(known_lengths) - known_lengths
        index = np.clip(starts[:, None] + np.arange(width), 0, max(total - 1, 0))
        bad = None
    else:
        width = total
        starts = F.sub(F.cumsum(lengths), lengths)
        index = F.clip(F.add(F.reshape(starts, (batch, 1)), F.arange(width, dtype="int64")),
                       0, max(total - 1, 0))
        bad = F.broadcast_to(F.not_equal(F.sum(lengths), total), (batch,))
    if total == 0:  # every sequence empty: nothing to gather
        return np.zeros((batch, 0), np.int64), np.zeros((batch, 0), np.int64), 0, bad
    rows = known[index] if known is not None and not isinstance(index, SymbolicValue) \
        else None
    return (rows if rows is not None else F.take(targets, index)), rows, width, bad


@precision.in_float32  # torch.autocast's float32 list: a half log_probs runs in float32
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """The CTC loss, as torch.nn.functional.ctc_loss: log_probs (T, N, C) (log_softmax
    output; (T, C) unbatched), targets (N, S) padded or 1-d concatenated (sum(target_lengths)
    labels; (S,) unbatched), input_lengths and target_lengths one integer per sequence (a
    tuple, list or array, of any shape holding N, flattened as torch's; a number
    unbatched). 'none' gives each sequence's loss, 'sum' their sum, 'mean'
    the mean of each divided by its target length (at least 1). A target that cannot be
    aligned (longer than its input allows) costs inf, or 0 with zero_infinity. Lengths and
    targets known at the call are checked (one line); traced ones out of range, a label equal
    to blank or outside [0, C) give NaN for that sequence (torch raises or reads past C).
    Under gc.autocast a half log_probs is computed and returned in float32, as torch's."""
    _check_reduction(_NAME, reduction)
    zero_infinity = F._flag(_NAME, "zero_infinity", zero_infinity)
    if isinstance(log_probs, (list, tuple)):
        _fail(f"{_NAME}: log_probs must be an array, got a {type(log_probs).__name__}")
    if not is_float(_dtype(log_probs)):
        _fail(f"{_NAME}: log_probs must be floating-point (log_softmax output), got "
              f"{_dtype(log_probs)}")
    nd = _ndim(log_probs)
    if nd not in (2, 3):
        _fail(f"{_NAME}: log_probs must be (T, N, C) or unbatched (T, C), got shape "
              f"{tuple(_shape(log_probs))}")
    unbatched = nd == 2
    if unbatched:
        log_probs = F.expand_dims(log_probs, 1)
    steps, batch, classes = (int(d) for d in _shape(log_probs))
    if isinstance(blank, (bool, np.bool_)) or not isinstance(blank, (int, np.integer)) \
            or not 0 <= blank < classes:
        _fail(f"{_NAME}: blank must be a class index in [0, {classes}), got {blank!r}")
    blank = int(blank)

    known = _known(targets)
    if known is not None and known.dtype == object:
        _fail(f"{_NAME}: targets must be an integer array, got {type(targets).__name__}")
    tshape = tuple(known.shape if known is not None else _shape(targets))
    targets = _integers("targets", targets, known)
    if unbatched:
        if len(tshape) != 1:
            _fail(f"{_NAME}: unbatched log_probs (T, C) takes 1-d targets, got shape {tshape}")
        targets, tshape = F.reshape(targets, (1,) + tshape), (1,) + tshape
        known = None if known is None else known.reshape(tshape)
    elif len(tshape) not in (1, 2) or (len(tshape) == 2 and tshape[0] != batch):
        _fail(f"{_NAME}: targets must be padded (N, S) with N = {batch}, or 1-d "
              f"concatenated, got shape {tshape}")
    il, _, bad_il = _lengths("input_lengths", input_lengths, batch, steps, "T")
    width = None if len(tshape) == 1 else tshape[1]
    tl, known_tl, bad_tl = _lengths("target_lengths", target_lengths, batch, width,
                                    "the targets' S")
    bad = [b for b in (bad_il, bad_tl) if b is not None]
    if len(tshape) == 1:
        targets, known, width, misfit = _rows(targets, known, tl, known_tl, batch)
        bad += [misfit] if misfit is not None else []

    # the labels a sequence reads, the first target_length of its row, are classes other
    # than blank: checked now where known, NaN for that sequence where traced
    if known is not None and known_tl is not None:
        read = np.arange(width) < known_tl[:, None]
        wrong = read & ((known < 0) | (known >= classes) | (known == blank))
        if wrong.any():
            value = int(known[wrong][0])
            _fail(f"{_NAME}: targets hold the label {value}, " + (
                f"the blank: a label must be another class" if value == blank else
                f"outside the classes [0, {classes})"))
    reads = F.less(F.arange(width, dtype="int64"), F.reshape(tl, (batch, 1)))  # (N, S)
    if known is None or known_tl is None:
        outside = F.logical_or(F.less(targets, 0), F.greater_equal(targets, classes))
        bad.append(F.any(F.logical_and(reads, F.logical_or(outside, F.equal(targets, blank))),
                         -1))
    labels = F.clip(F.where(reads, targets, blank), 0, classes - 1)  # (N, S)

    loss = apply("ctc_loss", log_probs, labels, il, tl, blank=blank)
    if zero_infinity:
        loss = F.where(F.isinf(loss), 0.0, loss)
    for b in bad:
        loss = F.where(b, math.nan, loss)
    if reduction == "mean":
        return F.mean(F.div(loss, F.cast(F.maximum(tl, 1), _dtype(loss))))
    if reduction == "sum":
        return F.sum(loss)
    return F.reshape(loss, ()) if unbatched else loss


class CTCLoss(_Functional):
    """torch.nn.CTCLoss(blank=0, reduction='mean', zero_infinity=False): graphc.ctc_loss of
    (log_probs, targets, input_lengths, target_lengths)."""

    _function = staticmethod(ctc_loss)
    _settings = ("blank", "reduction", "zero_infinity")

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        self._keep(blank=blank, reduction=reduction, zero_infinity=zero_infinity)

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        settings = {name: self._setting(name, log_probs) for name in self._settings}
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, **settings)

    def extra_repr(self):
        return ""  # torch's losses show no settings: `CTCLoss()`
