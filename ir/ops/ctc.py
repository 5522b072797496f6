"""The CTC loss's primitives: each sequence's negative log-likelihood (`ctc_loss`) and its
gradient w.r.t. log_probs (`ctc_loss_grad`), torch's CPU kernel's alpha and beta recursions
in log space, vectorised over the batch with a numpy loop over time (graphc.ctc_loss does
the argument checks, the NaN of traced bad lengths or labels, zero_infinity and reduction).

Operands: log_probs (T, N, C) float, labels (N, S) int64 (a sequence's labels first, the rest
of its row ignored), input_lengths and target_lengths (N,) int64, and the attribute `blank`.
The states are the L = 2S + 1 extended labels (blank, l1, blank, l2, ..., blank); a label may
be reached from two states back (skipping the blank between) where it differs from the label
before it. Lengths or labels out of range are clipped (graphc.ctc_loss turns those sequences'
losses into NaN). The computation is in log_probs' dtype, as torch's kernel (a half one in
float32, as every op's). The gradient is the derivative of the loss w.r.t. log_probs, without
the exp(log_probs) that torch's kernel adds (graphc/ctc.py says why); an impossible
alignment's (an inf loss's) gradient is 0. The gradient has no gradient w.r.t. log_probs: a
second derivative is refused in one line (forward mode, which differentiates it only w.r.t.
its cotangent operand, is taken).
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphcError, user_location
from ..types import TensorType, is_float
from . import api as F
from .registry import apply, check, defop


def _ctc_infer(types, blank):
    log_probs, labels, input_lengths, target_lengths = types[:4]
    check(is_float(log_probs.dtype) and log_probs.ndim == 3,
          f"log_probs must be a floating-point (T, N, C) array, got {log_probs}")
    steps, batch, classes = log_probs.shape
    check(labels.ndim == 2 and labels.dtype == np.int64 and labels.shape[0] == batch,
          f"labels must be int64 (N, S) with N = {batch}, got {labels}")
    for what, t in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        check(t.dtype == np.int64 and tuple(t.shape) == (batch,),
              f"{what} must be int64 ({batch},), got {t}")
    check(0 <= blank < classes, f"blank must be a class index in [0, {classes}), got {blank}")
    return TensorType((batch,), log_probs.dtype)


def _ctc_grad_infer(types, blank):
    loss = _ctc_infer(types[:4], blank)
    check(tuple(types[4].shape) == tuple(loss.shape) and types[4].dtype == loss.dtype,
          f"the cotangent must be {loss}, got {types[4]}")
    return types[0]


class _Step:
    """One step of a recursion on (N, L) arrays: out = log(exp(a) + exp(b) + exp(c)) +
    emission, -inf where a, b and c all are, written in place into buffers made once (numpy's
    logaddexp is thirty times slower than exp: it has no vectorised loop). The largest of the
    three is subtracted before exp; where all are -inf it is the dtype's lowest value instead,
    so no NaN (-inf - -inf) arises."""

    def __init__(self, shape, dtype):
        self.peak, self.term, self.total = (np.empty(shape, dtype) for _ in range(3))
        self.lowest = np.finfo(dtype).min

    def __call__(self, out, a, b, c, emission):
        peak, term, total = self.peak, self.term, self.total
        np.maximum(a, b, out=peak)
        np.maximum(peak, c, out=peak)
        np.maximum(peak, self.lowest, out=peak)
        np.exp(np.subtract(a, peak, out=term), out=total)
        total += np.exp(np.subtract(b, peak, out=term), out=term)
        total += np.exp(np.subtract(c, peak, out=term), out=term)
        np.add(np.log(total, out=total), peak, out=out)
        out += emission


def _recursions(log_probs, labels, input_lengths, target_lengths, blank, betas):
    """(nll (N,), alphas, betas or None, emitted, extended (N, L)): alphas[t] (t = 0..T,
    (N, L)) the log-probability of the prefixes of t steps ending in each state, betas[t]
    (t < T) that of the suffixes from step t starting there, -inf from the input length on;
    emitted[t] (T, N, L) each state's log_probs at t. Each step is one _Step on the whole
    batch; the alphas run on past a sequence's input length (its loss is read at its length,
    its betas are -inf there). A move two states on is allowed where `skips` (0, else -inf
    added to the state two back)."""
    steps, batch, classes = log_probs.shape
    dtype = log_probs.dtype
    width = labels.shape[1]
    states = 2 * width + 1
    input_lengths = np.clip(input_lengths, 0, steps)
    target_lengths = np.clip(target_lengths, 0, width)
    extended = np.full((batch, states), blank, np.int64)
    extended[:, 1::2] = np.clip(labels, 0, classes - 1)
    skips = np.zeros((batch, states), bool)  # (a blank equals the blank two back: never)
    skips[:, 2:] = extended[:, 2:] != extended[:, :-2]
    emitted = log_probs[:, np.arange(batch)[:, None], extended]  # (T, N, L)
    step = _Step((batch, states), dtype)
    skipped = np.empty((batch, states), dtype)
    barred = np.where(skips, 0, -np.inf).astype(dtype)

    # alpha: the path starts in a state before state 0, whose step gives alpha_1 (after one
    # step); two -inf states before state 0 (columns 0, 1) for the moves of one and two states
    alphas = np.full((steps + 1, batch, states + 2), -np.inf, dtype)
    alphas[0, :, 2] = 0
    # (log 0: an unreachable state's -inf; -inf + inf: a +inf log_prob past an input length)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(steps):
            before = alphas[t]
            step(alphas[t + 1, :, 2:], before[:, 2:], before[:, 1:-1],
                 np.add(before[:, :-2], barred, out=skipped), emitted[t])
    rows = np.arange(batch)
    alpha = alphas[input_lengths, rows, 2:]  # (N, L): each sequence's after its length
    # the path ends in state 2S (the last blank) or 2S - 1 (the last label, if any)
    last = 2 * target_lengths
    label_end = np.where(target_lengths > 0, alpha[rows, np.maximum(last - 1, 0)], -np.inf)
    nll = -np.logaddexp(alpha[rows, last], label_end).astype(dtype)
    if not betas:
        return nll, None, None, emitted, extended

    # beta, backwards from step input_length - 1, where only the end states start (with
    # their emissions); two -inf states after the last (columns L, L + 1)
    position = np.arange(states)
    ends = (position == last[:, None]) | (position == last[:, None] - 1)
    barred_ahead = np.full((batch, states), -np.inf, dtype)
    barred_ahead[:, :-2] = barred[:, 2:]
    betas = np.full((steps + 1, batch, states + 2), -np.inf, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in reversed(range(steps)):
            after, now = betas[t + 1], betas[t, :, :-2]
            step(now, after[:, :-2], after[:, 1:-1],
                 np.add(after[:, 2:], barred_ahead, out=skipped), emitted[t])
            start = rows[input_lengths == t + 1]
            now[start] = np.where(ends[start], emitted[t, start], -np.inf)
    return nll, alphas[1:, :, 2:], betas[:-1, :, :-2], emitted, extended


@defop("ctc_loss", _ctc_infer, arity=4,
       vjp=lambda ctx, g: [apply("ctc_loss_grad", *ctx.inputs, g, **ctx.attrs)
                           if ctx.needs[0] else None, None, None, None],
       flops=lambda types, out, **_: 30 * types[0].shape[0] * types[1].size)
def _ctc_loss(log_probs, labels, input_lengths, target_lengths, blank):
    """Each sequence's -log p(labels | log_probs), (N,); inf where no alignment exists."""
    return _recursions(log_probs, labels, input_lengths, target_lengths, blank, False)[0]


def _no_second_derivative(ctx, g):
    """ctc_loss_grad is linear in its cotangent operand: that operand's own cotangent (the
    unit gradient of each sequence, summed against g) is what forward mode (jvp, jacfwd,
    linearize: the double-vjp trick) differentiates; log_probs' would be a second
    derivative, refused in one line."""
    if ctx.needs[0]:
        raise GraphcError("ctc_loss: no second derivative (its gradient is the alpha-beta "
                          "recursion of a primitive op, which has no gradient w.r.t. log_probs)",
                          (user_location(),))
    if not ctx.needs[4]:
        return [None] * 5
    unit = apply("ctc_loss_grad", *ctx.inputs[:4], F.ones_like(ctx.inputs[4]), **ctx.attrs)
    return [None] * 4 + [F.sum(F.mul(unit, g), (0, 2))]


# (its refusal and the cotangent's gradient are tested in tests/test_ctc.py)
_no_second_derivative.refuses = True


@defop("ctc_loss_grad", _ctc_grad_infer, arity=5,
       vjp=_no_second_derivative,
       flops=lambda types, out, **_: 70 * types[0].shape[0] * types[1].size)
def _ctc_loss_grad(log_probs, labels, input_lengths, target_lengths, g, blank):
    """g (N,) times d nll / d log_probs, (T, N, C): -sum over the states s emitting class c
    at t of alpha_t(s) beta_t(s) / (y_t(c) p), the share of the alignments through (t, s);
    0 past a sequence's input length and where its loss is inf."""
    nll, alphas, betas, emitted, extended = _recursions(
        log_probs, labels, input_lengths, target_lengths, blank, True)
    steps, batch, classes = log_probs.shape
    through = alphas + betas  # (-inf past a sequence's input length: its betas are)
    finite = (through > -np.inf) & np.isfinite(nll)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        share = np.where(finite, np.exp(through - emitted + nll[:, None]), 0.0)
    # the shares summed into each (t, n, class) cell at once
    cell = (np.arange(steps)[:, None, None] * batch + np.arange(batch)[:, None]) * classes \
        + extended
    total = np.bincount(cell.ravel(), share.ravel().astype(np.float64),
                        steps * batch * classes).reshape(steps, batch, classes)
    weight = np.where(np.isfinite(nll), g, 0).astype(np.float64)  # (an inf loss's g: unused)
    return (total * -weight[:, None]).astype(log_probs.dtype)


def _register_batching():
    from .batching import batch_all, defbatch

    # the examples' sequences are more sequences of one batch: the vmapped axis folded into N
    def folded(args, batched, size):
        log_probs, *rest = batch_all(args, batched, size)
        _, steps, batch, classes = F._shape(log_probs)
        log_probs = F.reshape(F.transpose(log_probs, (1, 0, 2, 3)),
                              (steps, size * batch, classes))
        return [log_probs] + [F.reshape(x, (size * batch,) + F._shape(x)[2:]) for x in rest]

    @defbatch("ctc_loss")
    def _ctc_loss_rule(args, batched, size, blank):
        out = apply("ctc_loss", *folded(args, batched, size), blank=blank)
        return F.reshape(out, (size, F._shape(args[0])[-2]))

    @defbatch("ctc_loss_grad")
    def _ctc_loss_grad_rule(args, batched, size, blank):
        steps, batch, classes = F._shape(args[0])[-3:]
        out = apply("ctc_loss_grad", *folded(args, batched, size), blank=blank)
        return F.transpose(F.reshape(out, (steps, size, batch, classes)), (1, 0, 2, 3))


_register_batching()
