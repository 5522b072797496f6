"""Optimisers: SGD, Adam, AdamW, RMSprop, Adagrad, Adamax, NAdam, Lion, learning-rate
schedules (ReduceLROnPlateau too, which follows a validation metric) and global-norm
clipping.

Functional, as optax: `state = opt.init(params)`, `params, state = opt.update(grads, state,
params)`, over pytrees (dicts, lists, tuples) of arrays; None is an empty subtree (as in
JAX), kept in place in the state and the new parameters. The update is written with the
functional API, so the same code adds nodes to a graph being traced (a whole training step
compiles into one plan) and computes at once on arrays or eager tensors. The step count lives
in the state, so schedules and bias corrections trace too. Settings may change between
updates (`opt.lr = 0.01`, `opt.weight_decay = 0.1`, as torch's param_groups): a traced update
guards each one it reads, so a compiled step sees the new value (see Optimizer.update).

optax's lowercase names (sgd, adam, adamw, rmsprop, adagrad, adamax, nadam, lion) follow
optax's formulas and its contract: their update returns the updates, which
apply_updates(params, updates) adds (see GradientTransformation).

PyTorch's style is a thin layer over the same definitions:

    opt = gc.optim.AdamW(lr=1e-3).bind(model)    # or a list / dict of Parameters
    loss.backward(); opt.step(); opt.zero_grad()

Numerics follow torch.optim term for term (the tests compare them): scalar factors (the
learning rate, bias corrections, decay factors) are computed in float64 and rounded once to
each parameter's dtype; array arithmetic stays in the parameter's dtype.
"""
from __future__ import annotations

import bisect
import collections.abc
import contextlib
import copy
import functools
import inspect
import math
import numbers
import sys

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.graph import Node
from ir.ops import api as F
from ir.ops.registry import apply, foreign_array_name
from ir.types import UnsupportedDtype, as_dtype, is_float, is_half, is_int, is_real, \
    is_real_dtype
from runtime.eager import Tensor, no_grad

from .tracing import (flatten, keys_sorted, leaf_count, leaves_and_structure, leaves_like,
                      unflatten)
from .transforms import Compiled

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "Lion",
           "BoundOptimizer", "GradientTransformation", "apply_updates",
           "sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "lion",
           "constant", "linear_warmup", "cosine", "exponential_decay", "warmup_cosine_decay",
           "one_cycle", "one_cycle_momentum", "piecewise_constant", "multistep", "polynomial_decay",
           "linear_schedule", "linear_lr", "cosine_decay_schedule", "cosine_warm_restarts",
           "join_schedules",
           "ReduceLROnPlateau", "global_norm",
           "clip_by_global_norm", "decay_matrices_only"]


# ---- schedules: step count (0-based, the number of updates done) -> learning rate -----------
# Each takes a Python int (and returns a Python float: the numbers a training loop logs) or a
# count array, traced or concrete (and returns a float64 scalar of the same kind).
class _ConstantLR(float):
    """A number learning rate: the float itself (`opt.lr * 0.5`, `f"{opt.lr:.3g}"` read as
    torch's param_groups' lr), callable as a schedule of any count. Equal numbers are equal
    (a compiled step's guard on the lr holds while the value is the same)."""

    def __call__(self, count):
        return float(self)

    @property
    def constant_value(self) -> float:  # (what ReduceLROnPlateau and gc.Trainer read)
        return float(self)


def constant(lr: float):
    """A constant learning rate, checked as a number lr= is (_learning_rate): a negative or
    NaN one (which SGD(lr=-0.1) refuses) reached the optimiser unchecked through this
    wrapper."""
    return _ConstantLR(_learning_rate("constant: lr", lr, "a finite number >= 0"))


def linear_warmup(peak: float, warmup: int):
    """nanoGPT's warmup: peak * (count + 1) / (warmup + 1) for the first `warmup` updates,
    then peak."""
    # (checked under its own name: cosine's line named cosine)
    peak = _schedule_lr("linear_warmup: peak", peak)
    warmup = _count_setting("linear_warmup: warmup", warmup)
    return cosine(peak, steps=None, warmup=warmup, min_lr=peak)


def cosine(peak: float, steps: int | None, warmup: int = 0, min_lr: float = 0.0):
    """nanoGPT's get_lr: linear warmup over `warmup` updates, cosine decay from `peak` to
    `min_lr` at update `steps`, then `min_lr` (steps=None: no decay)."""
    peak = _schedule_lr("cosine: peak", peak)
    min_lr = _schedule_lr("cosine: min_lr", min_lr)
    warmup = _count_setting("cosine: warmup", warmup)
    decay = None if steps is None else _count_setting("cosine: steps", steps)
    span = 1 if decay is None else max(1, decay - warmup)

    def python(step):
        if step < warmup:
            return peak * (step + 1) / (warmup + 1)
        if decay is None:
            return peak
        if step >= decay:
            return min_lr
        ratio = (step - warmup) / span
        return min_lr + 0.5 * (1.0 + _as_traced(np.cos, math.pi * ratio)) * (peak - min_lr)

    def schedule(count):
        if isinstance(count, (int, np.integer)):
            return python(int(count))
        step = F.cast(count, "float64")
        warm = (step + 1.0) * peak / (warmup + 1)
        if decay is None:
            return F.where(step < warmup, warm, F.full((), peak, "float64"))
        ratio = F.minimum(F.maximum((step - warmup) / span, 0.0), 1.0)
        decayed = (F.cos(ratio * math.pi) + 1.0) * 0.5 * (peak - min_lr) + min_lr
        return F.where(step < warmup, warm,
                       F.where(step >= decay, F.full((), min_lr, "float64"), decayed))
    return schedule


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float,
                      transition_begin: int = 0, staircase: bool = False,
                      end_value: float | None = None):
    """optax's exponential_decay, its parameters in optax's order: init_value until
    `transition_begin`, then init_value * decay_rate ** (k / transition_steps) at k updates
    after it, the exponent floored with `staircase` (torch's StepLR(step_size, gamma));
    `end_value` bounds it (below for a rate < 1, above for a rate > 1)."""
    # a number as optax's (count / transition_steps): int() made 2.5 into 2
    if not is_real(transition_steps) or not 0 < transition_steps < math.inf:
        raise GraphcError(f"exponential_decay: transition_steps must be a positive number, "
                          f"got {transition_steps!r}", (user_location(),))
    init = _schedule_lr("exponential_decay: init_value", init_value)
    rate = _schedule_finite("exponential_decay: decay_rate", decay_rate)
    every = float(transition_steps)
    # (optax warns and takes 0 for a negative one; a setting graphc would change is refused)
    begin = _count_setting("exponential_decay: transition_begin", transition_begin)
    if rate <= 0:
        raise GraphcError(f"exponential_decay: decay_rate must be positive, got {decay_rate}",
                          (user_location(),))
    bound = None if end_value is None else _schedule_lr(
        "exponential_decay: end_value", end_value)

    def schedule(count):
        if isinstance(count, (int, np.integer)):
            after = int(count) - begin
            exponent = math.floor(after / every) if staircase else after / every
            # (optax's where: init_value up to transition_begin; past float max the power
            # is inf, as the traced one, then capped by end_value as there)
            value = init * _as_traced(np.power, rate, exponent) if after > 0 else init
            if bound is not None:
                value = max(value, bound) if rate < 1 else min(value, bound)
            return value
        # optax's where (init_value up to transition_begin) as an exponent of 0 there: both
        # branches of a where are computed, and rate ** (-count / transition_steps) well
        # before a late transition_begin overflowed, a RuntimeWarning at every such step
        after = F.maximum(F.cast(count, "float64") - float(begin), 0.0)
        exponent = after / every
        if staircase:
            exponent = F.floor(exponent)
        value = F.pow(rate, exponent) * init
        if bound is not None:
            value = F.maximum(value, bound) if rate < 1 else F.minimum(value, bound)
        return value
    return schedule


def _as_traced(ufunc, *args) -> float:
    """ufunc (np.cos, np.power) of Python numbers as a Python float, computed as a traced
    schedule's op computes it: numpy's float64 ufunc on 0-d arrays (runtime/emitters.py;
    0-d values are never fused into numba kernels). Python's math.cos and ** are libm's,
    which numpy's SIMD loops differ from by an ulp or two (float64 power on AVX-512), so a
    schedule evaluated at an int step (bind(), gc.Trainer) and in a compiled update at the
    same count differed there."""
    with np.errstate(over="ignore"):  # (exponential_decay past float max: inf, as traced)
        return float(ufunc(*[np.asarray(a, np.float64) for a in args]))


# The schedules below are written once over `_Scalar` arithmetic: a Python int count gives
# Python floats, a count array (traced or concrete) float64 arrays, as the ones above.
class _Scalar:
    """Elementary functions on a step that is a Python float or a float64 array."""

    def __init__(self, count):
        self.python = isinstance(count, (int, np.integer))
        self.step = float(count) if self.python else F.cast(count, "float64")

    def where(self, cond, a, b):
        if self.python:
            return a if cond else b
        # (a Python number would be a float32 constant)
        a, b = (F.full((), x, "float64") if isinstance(x, float) else x for x in (a, b))
        return F.where(cond, a, b)

    def clip(self, x, low, high):
        return min(max(x, low), high) if self.python else F.minimum(F.maximum(x, low), high)

    def cos(self, x):
        return _as_traced(np.cos, x) if self.python else F.cos(x)

    def pow(self, x, y):
        if y == 1.0:  # (x ** 1 is x: no pow in a traced step)
            return x
        return _as_traced(np.power, x, y) if self.python else F.pow(x, y)


def _count_setting(name, value, low=0):
    if not is_int(value) or value < low:
        raise GraphcError(f"{name} must be a whole number >= {low}, got {value!r}",
                          (user_location(),))
    return int(value)


def warmup_cosine_decay(init_value: float, peak_value: float, warmup_steps: int,
                        decay_steps: int, end_value: float = 0.0, exponent: float = 1.0):
    """optax.warmup_cosine_decay_schedule: linear from init_value to peak_value over
    warmup_steps, then peak * ((1 - a) c^exponent + a), c = (1 + cos(pi k / (decay_steps -
    warmup_steps))) / 2 at k steps after the warmup, a = end_value / peak_value, reaching
    end_value at decay_steps (which counts the warmup, as optax's) and staying there."""
    init, peak, end = (_schedule_lr(f"warmup_cosine_decay: {what}", v) for what, v in (
        ("init_value", init_value), ("peak_value", peak_value), ("end_value", end_value)))
    # (a negative exponent: 0 ** -1 at decay_steps, where the cosine term reaches 0)
    exponent = _schedule_non_negative("warmup_cosine_decay: exponent", exponent)
    warmup = _count_setting("warmup_cosine_decay: warmup_steps", warmup_steps)
    decay = _count_setting("warmup_cosine_decay: decay_steps", decay_steps, warmup + 1)
    span, alpha = decay - warmup, 0.0 if peak == 0 else end / peak

    def schedule(count):
        s = _Scalar(count)
        warm = (init - peak) * (1.0 - s.step / max(warmup, 1)) + peak
        cosine_decay = _cosine_factor(s, s.step - warmup, span)
        decayed = peak * ((1.0 - alpha) * s.pow(cosine_decay, exponent) + alpha)
        return s.where(s.step < warmup, warm, decayed)
    return schedule


def _cosine_factor(s, elapsed, span):
    """optax's cosine decay factor, (1 + cos(pi k / span)) / 2 with k = elapsed clipped to
    [0, span]: from 1 down to 0 (each product rounds as optax's, in any order)."""
    return (s.cos(s.clip(elapsed, 0.0, span) * math.pi / span) + 1.0) * 0.5


def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.3,
              anneal_strategy: str = "cos", div_factor: float = 25.0,
              final_div_factor: float = 1e4, three_phase: bool = False):
    """torch.optim.lr_scheduler.OneCycleLR's learning rate: from max_lr / div_factor up to
    max_lr at step pct_start * total_steps - 1, then down to max_lr / div_factor /
    final_div_factor at step total_steps - 1 (three_phase: back to the initial rate at
    2 pct_start total_steps - 2 first), annealed by cosine or linearly; after that, the final
    rate (torch raises past total_steps). A phase that ends before step 0 (pct_start *
    total_steps < 1) or after the next one (three_phase, pct_start > 0.5) is never reached,
    as in torch. torch's cycle_momentum (on by default there) is one_cycle_momentum, given
    as the optimiser's momentum or beta1."""
    name = "one_cycle"
    top = _schedule_lr(f"{name}: max_lr", max_lr)
    initial = top / _positive(f"{name}: div_factor", div_factor)
    final = initial / _positive(f"{name}: final_div_factor", final_div_factor)
    ends = _one_cycle_ends(name, total_steps, pct_start, anneal_strategy, three_phase)
    values = [(initial, top), (top, initial), (initial, final)] if three_phase else \
        [(initial, top), (top, final)]
    return _phased(ends, values, anneal_strategy)


def one_cycle_momentum(total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                       base_momentum: float = 0.85, max_momentum: float = 0.95,
                       three_phase: bool = False):
    """The momentum torch's OneCycleLR cycles (cycle_momentum=True, its default): from
    max_momentum down to base_momentum while the learning rate rises, back up while it falls
    (three_phase: then it stays at max_momentum), over the phases of one_cycle with the same
    total_steps, pct_start, anneal_strategy and three_phase. Give it as SGD's or RMSprop's
    momentum, or as beta1 of the Adam family (`betas=(one_cycle_momentum(n), 0.999)`), as
    torch sets momentum or betas[0]."""
    name = "one_cycle_momentum"
    low = _schedule_finite(f"{name}: base_momentum", base_momentum)
    high = _schedule_finite(f"{name}: max_momentum", max_momentum)
    ends = _one_cycle_ends(name, total_steps, pct_start, anneal_strategy, three_phase)
    values = [(high, low), (low, high), (high, high)] if three_phase else \
        [(high, low), (low, high)]
    return _phased(ends, values, anneal_strategy)


def _one_cycle_ends(name, total_steps, pct_start, anneal_strategy, three_phase):
    """The steps one_cycle's phases end at, as torch's _schedule_phases."""
    if anneal_strategy not in ("cos", "linear"):
        raise GraphcError(f"{name}: anneal_strategy must be 'cos' or 'linear', got "
                          f"{anneal_strategy!r}", (user_location(),))
    total = _count_setting(f"{name}: total_steps", total_steps, 1)
    pct = _real(f"{name}: pct_start", pct_start)
    if not 0.0 <= pct <= 1.0:  # torch's rule
        raise GraphcError(f"{name}: pct_start must be in [0, 1], got {pct_start!r}",
                          (user_location(),))
    if pct * total - 1 == 0:  # the warm-up's end at step 0: torch divides by zero there
        raise GraphcError(f"{name}: pct_start={pct_start} with total_steps={total} ends the "
                          "warm-up at step 0 (torch divides by zero there)", (user_location(),))
    if three_phase:
        return [pct * total - 1, 2 * pct * total - 2, total - 1]
    return [pct * total - 1, total - 1]


def _phased(ends, values, anneal_strategy):
    """A schedule of phases (end step, (start value, end value)), each starting where the one
    before ends, annealed by cosine or linearly, as torch's OneCycleLR.get_lr."""
    phases = [(end, first, last) for end, (first, last) in zip(ends, values)]

    def schedule(count):
        s = _Scalar(count)
        values, start = [], 0.0
        for end, first, last in phases:  # each phase starts where the one before ends
            if end > start:
                frac = s.clip((s.step - start) / (end - start), 0.0, 1.0)
                if anneal_strategy == "cos":  # torch's _annealing_cos, term for term
                    value = last + (first - last) / 2.0 * (s.cos(frac * math.pi) + 1.0)
                else:
                    value = (last - first) * frac + first
            else:  # never reached before total_steps (past it: the final value)
                value = last
            values.append(value)
            start = end
        # torch's choice: the first phase whose end is at or after the step, else the last
        result = values[-1]
        for (end, _, _), value in reversed(list(zip(phases[:-1], values[:-1]))):
            result = s.where(s.step <= end, value, result)
        return result
    return schedule


def piecewise_constant(init_value: float, boundaries_and_scales: dict | None = None):
    """optax.piecewise_constant_schedule: init_value, multiplied by each scale from its
    boundary step on ({100: 0.1, 200: 0.5}: init, then init/10 from step 100, then init/20
    from step 200)."""
    init = _schedule_lr("piecewise_constant: init_value", init_value)
    if not isinstance(boundaries_and_scales, (dict, type(None))):  # as optax's
        raise GraphcError(f"piecewise_constant: boundaries_and_scales must be a dict "
                          f"{{boundary step: scale}}, got {boundaries_and_scales!r}"[:200],
                          (user_location(),))
    items = list((boundaries_and_scales or {}).items())
    for boundary, scale in items:
        _count_setting("piecewise_constant: a boundary", boundary)
        if not _schedule_finite(f"piecewise_constant: the scale at {boundary!r}", scale) >= 0:
            raise GraphcError(f"piecewise_constant: scales must be >= 0, got {scale!r} at "
                              f"{boundary}", (user_location(),))
    items = sorted((int(b), float(sc)) for b, sc in items)

    def schedule(count):
        s = _Scalar(count)
        value = init
        for boundary, scale in items:
            value = s.where(s.step >= boundary, value * scale, value)
        return value
    return schedule


def _steps_list(what, steps):
    """Steps given in order: a sequence (list, tuple, range, deque) or a 1-d array. A dict or
    set (whose keys would be taken in no promised order), a generator (used up by the first
    call) and a number or 0-d array (a bare TypeError from iterating it) are one line."""
    ordered = isinstance(steps, collections.abc.Sequence) and not isinstance(steps, (str, bytes))
    if not (ordered or isinstance(steps, np.ndarray) and steps.ndim == 1):
        raise GraphcError(f"{what} must be a list of steps, got {steps!r}"[:200],
                          (user_location(),))
    return steps


def multistep(init_value: float, milestones, gamma: float = 0.1):
    """torch.optim.lr_scheduler.MultiStepLR: init_value times gamma at each milestone step
    reached (a milestone given twice, gamma twice, as torch's)."""
    counts = {}
    for m in _steps_list("multistep: milestones", milestones):
        m = _count_setting("multistep: a milestone", m)
        counts[m] = counts.get(m, 0) + 1
    # (>= 0 as every schedule's lr: a negative one was refused as piecewise_constant's scale)
    gamma = _schedule_non_negative("multistep: gamma", gamma)
    init = _schedule_lr("multistep: init_value", init_value)
    # each milestone's lr must be a float: gamma=1e200 at a milestone given twice was float
    # pow's raw OverflowError here, and at two milestones an lr of inf from then on (torch's
    # MultiStepLR: an OverflowError at that step). Each lr is the one the schedule computes,
    # the one before times gamma ** (its count), as torch's: init * gamma ** (all of them)
    # overflowed in the power where the lrs did not (init 0 or 1e-300, gamma 1e300)
    lr, scales = init, {}
    for m in sorted(counts):
        try:
            scales[m] = gamma ** counts[m]
            lr *= scales[m]
        except OverflowError:  # (a power past float64's range: no lr the schedule can take)
            # the lr itself may be in range (0.0, or 1e-300 * 1e300 ** 2): then the line
            # names the power, not an lr past float64's range the schedule never reaches
            if lr == 0 or math.log(lr) + counts[m] * math.log(gamma) < \
                    math.log(sys.float_info.max):
                raise GraphcError(f"multistep: gamma={gamma!r} at milestone {m}, given "
                                  f"{counts[m]} times, is gamma ** {counts[m]}, past "
                                  "float64's range (torch's MultiStepLR raises OverflowError "
                                  "there)", (user_location(),))
            lr = math.inf
        if not math.isfinite(lr):
            raise GraphcError(f"multistep: gamma={gamma!r} takes the learning rate past "
                              f"float64's range at milestone {m} ({init!r} * {gamma!r} ** "
                              f"{sum(c for k, c in counts.items() if k <= m)})",
                              (user_location(),))
    return piecewise_constant(init, scales)


def polynomial_decay(init_value: float, end_value: float, power: float,
                     transition_steps: int, transition_begin: int = 0):
    """optax.polynomial_schedule: (init - end) (1 - k / transition_steps)^power + end at
    k = step - transition_begin (clipped to [0, transition_steps]). end_value=0 is torch's
    PolynomialLR(total_iters=transition_steps, power)."""
    power = _schedule_non_negative("polynomial_decay: power", power)  # negative: 0 ** -1 at the end
    return _polynomial("polynomial_decay", init_value, end_value, power, transition_steps,
                       transition_begin)


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0):
    """optax.linear_schedule: init_value until transition_begin, then linearly to end_value
    over transition_steps updates, then end_value (polynomial_decay with power 1)."""
    return _polynomial("linear_schedule", init_value, end_value, 1.0, transition_steps,
                       transition_begin)


def linear_lr(base_lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
              total_iters: int = 5):
    """torch.optim.lr_scheduler.LinearLR's learning rate: base_lr * start_factor at step 0,
    linearly to base_lr * end_factor at step total_iters, then held (torch's closed form,
    which its step-by-step products follow within rounding): linear_schedule's formula."""
    name = "linear_lr"
    base = _schedule_lr(f"{name}: base_lr", base_lr)
    start, end = (_real(f"{name}: {what}", v) for what, v in (
        ("start_factor", start_factor), ("end_factor", end_factor)))
    if not 0.0 < start <= 1.0:  # torch's rules
        raise GraphcError(f"{name}: start_factor must be in (0, 1], got {start_factor!r}",
                          (user_location(),))
    if not 0.0 <= end <= 1.0:
        raise GraphcError(f"{name}: end_factor must be in [0, 1], got {end_factor!r}",
                          (user_location(),))
    total = _count_setting(f"{name}: total_iters", total_iters, 1)  # (torch's name, not optax's)
    return _polynomial(name, base * start, base * end, 1.0, total, 0)


def _polynomial(name, init_value, end_value, power, transition_steps, transition_begin):
    """optax's polynomial_schedule, its argument errors naming the function `name`."""
    init, end = (_schedule_lr(f"{name}: {what}", v) for what, v in (
        ("init_value", init_value), ("end_value", end_value)))
    steps = _count_setting(f"{name}: transition_steps", transition_steps, 1)
    begin = _count_setting(f"{name}: transition_begin", transition_begin)

    def schedule(count):
        s = _Scalar(count)
        frac = 1.0 - s.clip(s.step - begin, 0.0, steps) / steps
        return (init - end) * s.pow(frac, power) + end
    return schedule


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0,
                          exponent: float = 1.0):
    """optax.cosine_decay_schedule: init_value ((1 - alpha) c^exponent + alpha), c = (1 +
    cos(pi min(step, decay_steps) / decay_steps)) / 2, from init_value down to alpha *
    init_value at decay_steps, then held there (torch's CosineAnnealingLR(T_max=decay_steps,
    eta_min=alpha * lr) up to T_max; torch's rises again after it)."""
    name = "cosine_decay_schedule"
    init = _schedule_lr(f"{name}: init_value", init_value)
    decay = _count_setting(f"{name}: decay_steps", decay_steps, 1)
    # (a negative alpha: a negative lr at the end)
    alpha = _schedule_non_negative(f"{name}: alpha", alpha)
    exponent = _schedule_non_negative(f"{name}: exponent", exponent)  # negative: 0 ** -1 at the end

    def schedule(count):
        s = _Scalar(count)
        cosine_decay = _cosine_factor(s, s.step, decay)
        return init * ((1.0 - alpha) * s.pow(cosine_decay, exponent) + alpha)
    return schedule


def cosine_warm_restarts(base_lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0):
    """torch.optim.lr_scheduler.CosineAnnealingWarmRestarts (SGDR) stepped once per update:
    eta_min + (base_lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2, where cycle i lasts T_i =
    T_0 T_mult^i updates and T_cur counts the updates since it began (each restart: back to
    base_lr)."""
    name = "cosine_warm_restarts"
    top, low = (_schedule_lr(f"{name}: {what}", v) for what, v in (
        ("base_lr", base_lr), ("eta_min", eta_min)))
    first = _count_setting(f"{name}: T_0", T_0, 1)  # whole numbers, as torch's
    mult = _count_setting(f"{name}: T_mult", T_mult, 1)

    def cycle(count):
        """(T_cur, T_i) at the count: Python ints, or float64 arrays holding whole numbers."""
        if isinstance(count, (int, np.integer)):
            cur, length = int(count), first
            if mult == 1:
                return cur % first, first
            while cur >= length:  # torch's restarts one by one: under 64 for any int64 count
                cur, length = cur - length, length * mult
            return cur, length
        if mult == 1:
            return F.cast(count % first, "float64"), float(first)
        step = F.cast(count, "float64")

        def start(i):  # cycle i starts at T_0 (T_mult^i - 1) / (T_mult - 1), exact while
            # T_mult^i < 2^53: for any count below 2^53 / T_mult^2 (1e14 for T_mult 10)
            return (F.pow(float(mult), i) - 1.0) / (mult - 1) * first
        # the cycle from a logarithm, then moved by one where its rounding crossed a start
        i = F.floor(F.log(step * ((mult - 1) / first) + 1.0) / math.log(mult))
        i = F.where(step < start(i), i - 1.0, i)
        i = F.where(step >= start(i + 1.0), i + 1.0, i)
        return step - start(i), F.pow(float(mult), i) * first

    def schedule(count):
        s = _Scalar(count)
        cur, length = cycle(count)
        return low + (top - low) * (1.0 + s.cos(math.pi * cur / length)) / 2.0  # torch's order
    return schedule


def join_schedules(schedules, boundaries):
    """optax.join_schedules: schedules[0] before boundaries[0], then schedules[i + 1] from
    boundaries[i] on, given the step less that boundary (each starts from its own step 0).
    torch's SequentialLR(schedulers, milestones) step for step, milestones as boundaries."""
    name = "join_schedules"
    if not isinstance(schedules, (list, tuple)) or not schedules:
        raise GraphcError(f"{name}: schedules must be a non-empty list of schedules, got "
                          f"{schedules!r}"[:200], (user_location(),))
    parts = [_as_schedule(part, f"{name}: schedules[{i}]") for i, part in enumerate(schedules)]
    bounds = [_count_setting(f"{name}: a boundary", b)
              for b in _steps_list(f"{name}: boundaries", boundaries)]
    if len(bounds) != len(parts) - 1:
        raise GraphcError(f"{name}: boundaries must be one fewer than schedules, got "
                          f"{len(parts)} schedules and {len(bounds)} boundaries",
                          (user_location(),))
    if bounds != sorted(bounds):
        raise GraphcError(f"{name}: boundaries must be in increasing order, got {bounds}",
                          (user_location(),))

    def schedule(count):
        if isinstance(count, (int, np.integer)):  # only the schedule running at the step
            i = bisect.bisect_right(bounds, int(count))
            return parts[i](int(count) - (bounds[i - 1] if i else 0))
        value = _float64_scalar(parts[0](count))
        for boundary, part in zip(bounds, parts[1:]):
            # (a schedule not begun yet sees step 0, not a negative step it may not take)
            later = _float64_scalar(part(F.maximum(count - boundary, 0)))
            value = F.where(count < boundary, value, later)
        return value
    return schedule


def _float64_scalar(value):
    """A schedule's value at a count array as float64 (where takes one dtype): a Python
    number (a constant's, at any count) as a constant, a float32 one cast."""
    if isinstance(value, numbers.Real):
        return F.full((), float(value), "float64")
    return F.cast(value, "float64")


class ReduceLROnPlateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau: a learning rate that follows a metric
    rather than the step. `step(metric)` after each evaluation: when the metric has not
    improved (mode "min": fallen below best * (1 - threshold), threshold_mode "abs": best -
    threshold; "max" mirrored) for more than `patience` evaluations in a row, the lr becomes
    max(lr * factor, min_lr) (unless that changes it by eps or less), and `cooldown`
    evaluations follow in which bad ones are not counted. Term for term torch's.

        opt = gc.optim.SGD(lr=0.1)
        plateau = gc.optim.ReduceLROnPlateau(opt, patience=2)   # as torch's, on the optimiser
        trainer = gc.Trainer(loss, params, opt, batches, eval_batches=val, steps=1000)

    The first argument is the optimiser (or a BoundOptimizer), whose lr, a number, is the
    starting one: the scheduler becomes its lr (a second one is refused); or the starting lr
    itself, to give as an optimiser's lr=. gc.Trainer steps it with each periodic validation
    loss (not the one before training) and checkpoints it; its lr is an input of the
    compiled step, so a change does not compile the step again. Eagerly (`.bind()`, or
    update() on arrays) the optimiser reads `lr` at each update; a compiled update of one's
    own takes it as an input, a float64 0-d array as gc.Trainer's: `step(grads, state,
    params, np.asarray(plateau.lr, np.float64))` for `step = gc.compile(lambda g, s, p, lr:
    opt.update(g, s, p, lr=lr))` (a float scalar argument is float32 there: see update).
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        owner = getattr(optimizer, "optimizer", optimizer)  # a BoundOptimizer's
        if isinstance(owner, Optimizer):
            if isinstance(owner.lr, ReduceLROnPlateau):
                _fail("ReduceLROnPlateau: the optimizer's lr already is a ReduceLROnPlateau")
            start = getattr(owner.lr, "constant_value", None)
            if start is None:
                _fail("ReduceLROnPlateau: the optimizer's lr is a schedule of the step; "
                      "ReduceLROnPlateau sets the lr itself and starts from a number (give "
                      "the optimizer lr=<number>)")
        else:  # a starting lr by lr='s one rule (a 0-d array or tensor was refused here,
            # 10**400 float()'s raw OverflowError)
            start, owner = _learning_rate("ReduceLROnPlateau: optimizer", optimizer,
                                          "an optimizer or a starting lr (a number >= 0)"), None
        if mode not in ("min", "max"):
            _fail(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            _fail(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got "
                  f"{threshold_mode!r}")
        if not _is_number(factor) or not factor < 1.0:
            _fail(f"ReduceLROnPlateau: factor must be a number < 1.0, got {factor!r}")
        self.initial_lr = _non_negative("ReduceLROnPlateau: lr", start)
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = float(factor)
        self.patience = _count_setting("ReduceLROnPlateau: patience", patience)
        self.cooldown = _count_setting("ReduceLROnPlateau: cooldown", cooldown)
        if not _is_number(threshold):
            _fail(f"ReduceLROnPlateau: threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)
        if not _is_number(min_lr):  # (one number: a graphc optimiser has one param group)
            _fail(f"ReduceLROnPlateau: min_lr must be a number, got {min_lr!r}")
        self.min_lr = _non_negative("ReduceLROnPlateau: min_lr", min_lr)
        if not _is_number(eps):
            _fail(f"ReduceLROnPlateau: eps must be a number, got {eps!r}")
        self.eps = float(eps)
        self.lr = self.initial_lr
        self.last_epoch = 0  # step() calls, torch's name
        self._reset()
        if owner is not None:
            owner.lr = self

    _SETTINGS = ("initial_lr", "mode", "factor", "patience", "threshold", "threshold_mode",
                 "cooldown", "min_lr", "eps")
    _STATE = ("lr", "best", "num_bad_epochs", "cooldown_counter", "last_epoch")

    @property
    def lr(self) -> float:
        return self._lr

    def __setstate__(self, state):  # a plateau pickled when its lr was a plain attribute
        if "lr" in state:
            state = {**state, "_lr": state.pop("lr")}
        self.__dict__.update(state)

    @lr.setter
    def lr(self, value):  # (the Trainer's advice to a user is `plateau.lr = x`)
        if callable(value):
            _fail("ReduceLROnPlateau: lr must be a number (the plateau is the schedule), got "
                  f"{value!r}"[:200])
        self._lr = _non_negative("ReduceLROnPlateau: lr", value)

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def __call__(self, count):
        """The learning rate now (a schedule's interface; the count is not used)."""
        if any(isinstance(x, Node) for x in _leaves(count)):
            _fail("ReduceLROnPlateau: its lr changes between calls of a compiled step, so it "
                  "cannot be a constant of one; give it as an input of the step, a float64 "
                  "0-d array np.asarray(plateau.lr, np.float64) passed on as update(..., "
                  "lr=lr) (gc.Trainer does)")
        return self.lr

    def step(self, metrics) -> None:
        """One evaluation's metric (a number or a 0-d tensor), as torch's step(metrics)."""
        try:  # (float() takes what torch's takes: bfloat16, a 0-d or one-element tensor)
            current = float(metrics.data if isinstance(metrics, Tensor) else metrics)
        except (TypeError, ValueError):
            _fail(f"ReduceLROnPlateau.step: the metric must be one number, got "
                  f"{metrics!r}"[:200])
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad evaluations in cooldown are not counted
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def get_last_lr(self) -> list:
        return [self.lr]

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in self._SETTINGS}

    def state_dict(self) -> dict:
        """Settings and state, JSON values (best may be +-inf): load_state_dict takes it."""
        return {**self.settings(), **{k: getattr(self, k) for k in self._STATE}}

    def load_state_dict(self, state: dict) -> None:
        """The state of state_dict() (lr, best, counters); its settings, as torch's, too."""
        missing = [k for k in self._SETTINGS + self._STATE
                   if not isinstance(state, dict) or k not in state]
        if missing:
            _fail(f"ReduceLROnPlateau.load_state_dict: the state lacks {', '.join(missing)}")
        restored = copy.copy(self)
        try:
            ReduceLROnPlateau.__init__(restored, state["initial_lr"], **{
                k: state[k] for k in self._SETTINGS if k != "initial_lr"})
            for k in ("num_bad_epochs", "cooldown_counter", "last_epoch"):
                setattr(restored, k, _count_setting(f"ReduceLROnPlateau: {k}", state[k]))
            restored.lr = _non_negative("ReduceLROnPlateau: lr", state["lr"])
            if not isinstance(state["best"], (int, float)) or isinstance(state["best"], bool):
                _fail(f"ReduceLROnPlateau: best must be a number, got {state['best']!r}")
            restored.best = float(state["best"])
        except GraphcError as exc:
            raise GraphcError(f"ReduceLROnPlateau.load_state_dict: {exc.message}",
                              (user_location(),)) from None
        self.__dict__.update(restored.__dict__)


def _as_schedule(lr, what="lr"):
    """A learning rate as the schedule the updates call: a schedule (a function of the step
    count) as it is, a number as constant()'s, checked by the same rule (_learning_rate)."""
    if callable(lr):
        return lr
    return _ConstantLR(_learning_rate(what, lr, "a number >= 0 or a schedule (a function of "
                                                "the step count)"))


def _learning_rate(what, lr, wanted) -> float:
    """A number learning rate as a float: one rule for constant(), every optimiser's lr and
    optax's learning_rate, where constant() took a 0-d array and True, which SGD(lr=...)
    refused. A number setting by _real's rule (torch's: a 0-d real array or tensor too, read
    once, as torch's optimisers take a tensor lr), finite and >= 0, but not a bool: lr=True
    is a slip, not 1.0. An int past float64's range (10**400) was float()'s raw
    OverflowError; each is one line naming `what`, saying it must be `wanted`."""
    try:
        number = None if _is_boolean(lr) else F._as_number(lr)
    except OverflowError:
        _fail(f"{what} must be {wanted}, got {_past_float64(lr)}")
    if number is None or not (math.isfinite(number) and number >= 0):
        _fail(f"{what} must be {wanted}, got {lr!r}"[:300])
    return number


def _is_boolean(value) -> bool:
    """A bool, or a 0-d bool array or tensor: a slip where a learning rate is wanted."""
    return isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", "")) in (
        "bool", "torch.bool")


def _past_float64(value) -> str:
    """An int too large for a float (float() raises OverflowError), for a message: its
    digit count, not its hundreds of digits."""
    return f"an integer of {len(str(abs(int(value))))} digits, past float64's range"


# ---- clipping -------------------------------------------------------------------------------
def global_norm(grads):
    """The L2 norm of all the leaves of a pytree together (float32 for half leaves): a 0-d
    numpy array for numpy leaves (Python numbers too), as clip_by_global_norm's norm and the
    optimisers' updates are, an eager tensor for tensors, and a float32 tensor 0 for a tree
    of no gradient (torch's clip_grad_norm_ of none)."""
    grads, lifted = _lift_tree(grads)  # (a Python number leaf was "'float' object has no
    # attribute 'dtype'"; numpy leaves gave an eager Tensor, clip_by_global_norm an array)
    norm = _global_norm(grads, "global_norm")
    return _unlift(norm) if lifted else norm


def _global_norm(grads, who):
    leaves, _, names = flatten(grads)
    for g, name in zip(leaves, names):
        if g is not None and not isinstance(g, (Node, Tensor)):  # (numbers: lifted before)
            # a torch tensor was numpy's raw "Cannot interpret 'torch.int64' as a data type",
            # a string "'str' object has no attribute 'dtype'": the optimisers refuse both
            foreign = foreign_array_name(g)
            whose = f" of parameter {name!r}" if name else ""
            _fail(f"{who}: the gradient{whose} is " + (
                f"a {foreign}, another library's array; pass numpy arrays or gc tensors "
                "(x.numpy(), or np.asarray(x))" if foreign else
                f"{a_type(g)}, not an array or a number"))
        # (an integer or boolean leaf was refused by the op inside, 'sum_squares(i64[2]):
        # sum_squares of int64 values', naming neither `who` nor the leaf; torch's
        # clip_grad_norm_ refuses one too)
        if g is not None and not is_float(g.dtype):
            _refuse_gradient_dtype(who, name, g.dtype, None)
    leaves = [g for g in leaves if g is not None]
    if not leaves:  # no gradient at all (a loss that reads no parameter): 0, as torch's
        return F.full((), 0.0, "float32")  # clip_grad_norm_ over parameters without .grad
    # one sum_squares per dtype over all its leaves (accumulated in float64): in a compiled
    # step a kernel per 8 leaves, where a g*g, a sum and an add per leaf were ~150 kernels
    # for the small GPT (runtime/reductions.py)
    by_dtype = {}
    for g in leaves:
        by_dtype.setdefault(np.dtype(g.dtype), []).append(g)
    # half leaves are summed as float32: a half sum of squares overflows at a norm of 256
    # (float16's max is 65504), and the Inf would clip every gradient to 0
    parts = [apply("sum_squares", *[F.cast(g, "float32") for g in group])
             if is_half(dtype) else apply("sum_squares", *group)
             for dtype, group in by_dtype.items()]
    if len(parts) > 1:  # mixed dtypes meet in float64
        parts = [F.cast(part, "float64") for part in parts]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return F.sqrt(total)


def clip_by_global_norm(grads, max_norm: float):
    """(grads scaled so that their global norm is at most max_norm, the norm before), as
    torch.nn.utils.clip_grad_norm_: the factor is min(1, max_norm / (norm + 1e-6))."""
    # a number (a string was "div: cannot use a str as a tensor operand", naming neither the
    # function nor max_norm) is a Python float, which takes the norm's dtype. A value of the
    # step, or an eager tensor (kept: a gradient reaches it, as under gc.grad), is checked
    # 0-d and real as a number is, and cast to the norm's dtype: a float64 one for float32
    # gradients (or an int one) was "div(f64[], f32[]): operands must have one dtype" in a
    # compiled step, and a (2,) one broadcast every gradient to its shape there
    kept = isinstance(max_norm, (Node, Tensor)) and not F._weakly_typed(max_norm)
    if kept and isinstance(max_norm, Node):
        if tuple(max_norm.shape) != () or not is_real_dtype(max_norm.dtype):
            raise GraphcError(f"clip_by_global_norm: max_norm must be a number, got a value "
                              f"of the step, {max_norm.dtype}{list(max_norm.shape)}",
                              (user_location(),))
    elif kept or not isinstance(max_norm, Node):
        number = _real("clip_by_global_norm: max_norm", max_norm)
        max_norm = max_norm if kept else number
    grads, lifted = _lift_tree(grads)
    norm = _global_norm(grads, "clip_by_global_norm")
    if kept:
        max_norm = F.cast(max_norm, norm.dtype)
    factor = F.minimum(max_norm / (norm + 1e-6), 1.0)
    leaves, structure, _ = flatten(grads)
    clipped = [None if g is None else g * F.cast(factor, g.dtype) for g in leaves]
    out = unflatten(structure, clipped)
    return (_unlift_tree(out), _unlift(norm)) if lifted else (out, norm)


def decay_matrices_only(name: str, value) -> bool:
    """nanoGPT's weight-decay split (configure_optimizers): tensors of two or more dimensions
    (matmul weights, embeddings) decay; biases and norm weights do not."""
    return len(value.shape) >= 2


# ---- the optimisers -------------------------------------------------------------------------
def _torch_style_init(init):
    """Wraps the __init__ of a torch-named optimiser (and Lion's) for what its signature
    cannot say in one line of its own:
    - a value given by position where graphc's earlier order had one of its own settings
      (_moved_positional) gets the one line saying so, before __init__'s plainer check;
    - torch's keywords that choose how its step runs (foreach=, fused=, capturable=;
      `torch_step_keywords`, those torch's class takes) are taken and do nothing: a compiled
      step is one fused kernel per parameter already, and an eager step one numpy update per
      parameter, with no device to choose for. differentiable=True is refused (graphc's step
      is not differentiated through), False taken;
    - any other keyword __init__ has not is one line naming the optimiser and the keyword,
      not Python's TypeError.
    - positional arguments past its own that torch's class of the name takes by position
      (RMSprop's capturable, foreach, maximize, differentiable; Adagrad's and Adamax's
      foreach) are bound by name as torch's binds them; more than torch's class takes is one
      line naming the keyword-only ones (_torch_positional_extras), not Python's TypeError.
    Checked here, not in __new__, which sees only the outer call: a user's subclass with
    its own constructor passes graphc's earlier order (or torch's foreach=) on in its
    super().__init__(...). The signature stays the wrapped one's (inspect follows
    __wrapped__), so torch's param_groups' foreach or fused keys are not shown as settings
    in the .bind() line (_group_settings)."""
    parameters = list(inspect.signature(init).parameters.values())[1:]
    positions = [p.name for p in parameters if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in parameters]
    owner = init.__qualname__.split(".")[0]  # (the graphc class whose __init__ this is)

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        cls = type(self)
        if len(args) > len(positions):  # (torch's positional foreach=, maximize=, ...)
            args, kwargs = _torch_positional_extras(cls, owner, positions, names, args,
                                                    kwargs)
        for name, (valid, rule, before) in cls._moved_positional.items():
            at = positions.index(name) if name in positions else len(args)
            if at < len(args) and not valid(args[at]):
                ordinal = _ORDINALS.get(at + 1, f"#{at + 1}")
                raise GraphcError(f"{cls.__name__}: {name} {rule}, got {args[at]!r} "
                                  f"(the {ordinal} positional argument is {name}, as "
                                  f"torch's: give {before}= by name)", (user_location(),))
        step_keywords = {}
        for name in [k for k in kwargs if k not in names]:
            if name not in cls.torch_step_keywords:
                steps = ", ".join(f"{k}=" for k in cls.torch_step_keywords)
                raise GraphcError(
                    f"{cls.__name__}: no keyword argument {name!r}; it takes "
                    f"{', '.join(f'{k}=' for k in names)}" +
                    (f" (and torch's {steps}, which change nothing here)" if steps else ""),
                    (user_location(),))
            step_keywords[name] = kwargs.pop(name)
            _torch_step_keyword(cls.__name__, name, step_keywords[name])
        if all(bool(step_keywords.get(k)) for k in ("foreach", "fused")):
            _fail(f"{cls.__name__}: fused=True and foreach=True cannot be given together "
                  "(torch's `fused` and `foreach` cannot be `True` together); give one of "
                  "them, or neither: they change nothing here")
        init(self, *args, **kwargs)
    return checked


def _by_position(cls, by_position) -> str:
    """'5 arguments by position (lr, momentum, ...)', as torch's class of that name takes
    them after params where it has one."""
    torchs = ", as torch's after params" if cls.torch_step_keywords else ""
    return f"{len(by_position)} arguments by position ({', '.join(by_position)}{torchs})"


def _torch_positional_extras(cls, owner, positions, names, args, kwargs):
    """(args, kwargs) with the positional arguments past graphc's own that torch's
    constructor of the same name takes by position (RMSprop's capturable, foreach,
    maximize and differentiable; Adagrad's and Adamax's foreach) given by name, as torch
    binds them; more than torch's class takes by position (SGD's foreach=, which torch's
    takes by name only) is one line naming those it takes so, not Python's TypeError."""
    extras = _TORCH_POSITIONAL_EXTRAS.get(owner, ())
    given = args[len(positions):]
    if len(given) > len(extras):
        by_position = positions + list(extras)
        by_name = [n for n in names if n not in by_position] + \
            [k for k in cls.torch_step_keywords if k not in by_position]
        _fail(f"{cls.__name__}: takes at most {_by_position(cls, by_position)}, got "
              f"{len(args)}; give the others by name: {', '.join(f'{k}=' for k in by_name)}")
    kwargs = dict(kwargs)
    for at, (name, value) in enumerate(zip(extras, given), len(positions) + 1):
        if name in kwargs:
            _fail(f"{cls.__name__}: {name} given twice: by position (the "
                  f"{_ORDINALS.get(at, f'#{at}')} argument is {name}, as torch's) and by "
                  "name")
        kwargs[name] = value
    return args[:len(positions)], kwargs


def _torch_step_keyword(who, name, value):
    """torch's foreach= / fused= (None, True or False), capturable= (True or False) and
    differentiable= (False) given to optimiser `who`: checked, and dropped (they change
    nothing here: see _torch_style_init)."""
    choice = name in ("foreach", "fused")  # (None: torch picks; here nothing to pick)
    if choice and value is None:
        return
    if not isinstance(value, (bool, np.bool_)):
        _fail(f"{who}: {name} must be {'None, ' if choice else ''}True or False, got "
              f"{value!r}")
    if name == "differentiable" and value:
        _fail(f"{who}: differentiable=True is not supported: graphc's optimiser step is not "
              "differentiated through (torch's differentiable=True takes gradients of the "
              "update itself); leave it False")


_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth",
             7: "seventh", 8: "eighth", 9: "ninth", 10: "tenth"}


class Optimizer:
    """Base class. A subclass names its per-parameter state (`slots`) and defines
    `_update_leaf`; the base class handles pytrees, the step count, schedules, clipping,
    weight-decay masks and eager vs traced values."""

    slots: tuple = ()
    # slots no update makes negative (running averages of squared gradients): a checkpoint
    # holding a negative one was changed (gc.Trainer.restore refuses it)
    non_negative_slots: tuple = ()
    # slots holding one 0-d value per parameter (SGD's started mark, NAdam's mu_product);
    # every other slot graphc's init makes is an array of its parameter's shape and dtype,
    # which update checks (_parameter_like_slots)
    scalar_slots: tuple = ()
    # scalars _update_leaf takes in float64, not rounded to the parameter's dtype (NAdam's
    # momentum products, which it multiplies into its float64 state); a bool scalar (SGD's
    # and RMSprop's momentum_off) is kept as it is without being listed (_is_bool)
    float64_scalars: tuple = ()
    # the number settings the update reads, which update(settings=...) takes as values of
    # the step (gc.Trainer feeds them as inputs, as the lr): `opt.beta1 = 0.8` between steps
    # then compiles nothing again. Whether one is 0 stays a guard: a momentum or a weight
    # decay of 0 leaves its computation out of the plan. Each may also be a schedule of the
    # step, as the lr (one_cycle_momentum as SGD's momentum or Adam's beta1, a weight-decay
    # schedule), evaluated at the step the lr schedule is.
    hyperparameters: tuple = ("weight_decay",)
    # the settings that are True or False (torch's param_groups' flags: nesterov, amsgrad,
    # centered, maximize), each checked as one when set; BoundOptimizer.state_dict() saves
    # them with the number settings, as torch's saves its param_groups, since the state is
    # for them (amsgrad's and centered's slots)
    flag_settings: tuple = ("maximize",)
    # the dtype of the state's count that init makes (optax's rules: int32, as optax's)
    count_dtype: str = "int64"
    # slots a setting adds (SGD's momentum buffer, amsgrad's v_max, centered's mean_g): set
    # off mid-run on a bound optimiser, the slot stays in its state unused and serves again
    # when the setting comes back, as torch's state keeps a momentum buffer while the
    # momentum is 0 (BoundOptimizer._state_for_settings)
    optional_slots: tuple = ()
    # _update_leaf returns the update to add to the parameter (optax's contract, the rules
    # behind gc.optim.adam and the other lowercase names), not the new parameter
    gives_updates: bool = False
    # torch's names of settings kept under graphc's own, each a property of the class that
    # reads and writes through (param_groups' keys, _settings_of)
    torch_names: tuple = ()
    # settings whose position changed to torch's, each with a check of its value and the
    # keyword-only setting graphc's earlier order had in its place: given there by position
    # and failing the check, the one line says where the argument went (given by name, the
    # setting's own check speaks). Checked by the __init__ that takes them
    # (_torch_style_init), so a user's subclass whose super().__init__ passes
    # graphc's earlier order gets the line too
    _moved_positional: dict = {}
    # torch's keywords of how its step runs that torch's class of this name takes, each
    # accepted and changing nothing (_torch_style_init): torch 2.13's signatures
    torch_step_keywords: tuple = ()
    # each slot in a user's words, for messages naming a state (a checkpoint's): torch's
    # name of its state (exp_avg for Adam's "m"), then the setting that adds it in
    # parentheses. A slot of None is part of another's and not shown (SGD's "started" mark,
    # its momentum buffer's); one not listed (a user's subclass's own) is shown by its name
    slot_words: dict = {}

    @classmethod
    def describe_slots(cls, slots, brief: bool = False) -> str:
        """The state slots `slots` in a user's words (slot_words), 'no state' for none;
        `brief`: without the settings that add them."""
        words = [cls.slot_words.get(slot, slot) for slot in slots]
        if brief:
            words = [w if w is None else w.split(" (")[0] for w in words]
        return ", ".join(dict.fromkeys(w for w in words if w is not None)) or "no state"

    def __new__(cls, *args, **kwargs):
        # torch's SGD(params, lr=...) or SGD(params=..., lr=...), refused before __init__
        # binds it (a TypeError, or the parameters taken as the lr); optax's rules take no
        # parameters either way
        if cls.gives_updates or not (args or "params" in kwargs):
            return super().__new__(cls)
        if args and _holds_parameters(args[0]) and _takes_lr_first(cls):
            _parameters_given(cls, args[0], args[1:], kwargs)
        if "params" in kwargs and _takes_lr_first(cls) and \
                "params" not in _constructor_names(cls):  # (not a subclass's own params=)
            kwargs = dict(kwargs)
            _parameters_given(cls, kwargs.pop("params"), args, kwargs)
        return super().__new__(cls)

    def __init__(self, lr, weight_decay: float = 0.0, decay_mask=None,
                 clip_norm: float | None = None, *, maximize: bool = False):
        self.lr = lr
        self.weight_decay = weight_decay
        self.decay_mask = decay_mask
        self.clip_norm = _clip_norm("clip_norm", clip_norm)
        self.maximize = maximize  # as torch's: the update ascends, -g for g

    def __setattr__(self, name, value):
        # `opt.lr = 0.01` mid-training, as torch's `group["lr"] = 0.01`: a number (checked)
        # becomes the constant schedule the updates call. Every number setting is checked
        # here, in the constructor and when set later (`opt.beta1 = 1.0` gave NaN updates)
        current = self.__dict__.get("lr") if name == "lr" else None
        if isinstance(current, ReduceLROnPlateau) and not callable(value):
            # under a ReduceLROnPlateau, as torch's: the plateau goes on from the number
            # (replacing it would leave it reducing an lr that nothing reads), a number by
            # lr='s one rule (_learning_rate): a 0-d array or tensor too, which replaced the
            # plateau by a constant once lr= took them
            current.lr = value if is_real(value) else _learning_rate(
                f"{type(self).__name__}: lr", value, "a number >= 0 or a schedule (a function "
                "of the step count)")
            return
        if name == "lr":
            value = _as_schedule(value, f"{type(self).__name__}: lr")
        elif name == "clip_norm":
            value = _clip_norm(name, value)
        elif name in type(self).flag_settings:  # (amsgrad adds or drops a slot: a new
            value = _flag(f"{type(self).__name__}: {name}", value)  # state, as momentum's)
        else:
            value = self.checked_setting(name, value)
        super().__setattr__(name, value)

    def checked_setting(self, name, value):
        """A number setting's value (a float, or a schedule of the step), checked by its
        rule (_SETTING_RULES) where graphc's optimiser class that this one is or derives
        from has it; one GraphcError line naming it if it breaks the rule. A subclass's own
        setting (one its graphc base has not, `momentum` of an Optimizer subclass too) is
        returned as it is."""
        ours = next(k for k in type(self).__mro__ if k.__module__ == __name__)
        rule = _SETTING_RULES.get(name)
        if rule is None or name not in ours.hyperparameters:
            return value
        what = f"{type(self).__name__}: {name}"
        return rule(what, _not_a_bool(what, value))

    @property
    def _display_name(self) -> str:
        """How messages about its update name this optimiser."""
        return type(self).__name__

    def _state_origin(self) -> str:
        """Where update's state comes from, for the message refusing another state."""
        return (f"from {type(self).__name__}.init; a setting that adds or drops a slot, such "
                "as a momentum set from or to 0, needs a new state: give it when the "
                "optimizer, or the Trainer, is built")

    @property
    def betas(self) -> tuple:
        """(beta1, beta2) of an optimiser with betas (Adam's family, Lion), set together as
        torch's `group["betas"] = (0.8, 0.99)`."""
        if "beta1" not in self.hyperparameters:
            raise AttributeError(f"{type(self).__name__} has no betas")
        return self.beta1, self.beta2

    @betas.setter
    def betas(self, value):
        if "beta1" not in self.hyperparameters:  # (setting them would change nothing)
            raise GraphcError(f"{type(self).__name__} has no betas", (user_location(),))
        self.beta1, self.beta2 = _betas(type(self).__name__, value)

    # ---- functional API ----
    def init(self, params) -> dict:
        """The optimiser state for `params`: {"count": 0-d of count_dtype, slot: pytree like
        params}. Concrete params give numpy zeros; symbolic ones give symbolic zeros."""
        # (a bool or integer leaf is refused where it is trained, in update, bind and
        # gc.Trainer: a state_dict()'s num_batches_tracked, never given a gradient, is fine)
        leaves, structure, names = flatten(params)
        for name, p in zip(names, leaves):  # (a complex one: the state could never be used)
            if _unheld_dtype(p) is not None:
                self._refuse_non_float("init", name, p)
        state = {"count": _zeros_like_scalar(leaves, self.count_dtype)}
        for slot in self.slots:
            state[slot] = unflatten(structure, [_zeros_like(p) for p in leaves])
        return state

    def _slot_dtype(self, slot: str, dtype) -> np.dtype:
        """The dtype this optimiser keeps slot `slot` of a parameter of float dtype `dtype`
        in: the parameter's (NAdam's mu_product has its own). BoundOptimizer's state follows
        a cast of the parameters by it."""
        return np.dtype(dtype)

    def _refuse_non_float(self, method, name, p):
        """One line naming parameter `name` if it is not floating-point: torch lets only
        floating-point tensors require gradients, and an integer or bool one failed deep in
        the update's arithmetic, naming an op, not the parameter."""
        if not is_float(F._dtype(p)):
            raise GraphcError(f"{self._display_name}.{method}: parameter {name!r} has dtype "
                              f"{F._dtype(p)}; only floating-point parameters can be "
                              "optimised (cast it, or keep it out of the parameters)",
                              (user_location(),))

    def _refuse_unheld(self, method, grads, state, params):
        """After an UnsupportedDtype from `method`'s arrays, one line naming the first leaf of
        a dtype graphc cannot hold (complex64, a string): the parameter, the gradient or the
        state's leaf, as the other dtype refusals name them; the IR's own line named none.
        Returns where no leaf is such (the caller re-raises)."""
        p_leaves, _, p_names = flatten(params)
        for kind, tree in (("parameter", params), ("gradient", grads), ("state", state)):
            leaves, _, names = flatten(tree)
            for name, x in zip(names, leaves):
                dtype = _unheld_dtype(x)
                if dtype is None:
                    continue
                if kind == "parameter":
                    self._refuse_non_float(method, name, x)
                if kind == "gradient":
                    p = dict(zip(p_names, p_leaves)).get(name)
                    _refuse_gradient_dtype(f"{self._display_name}.{method}", name, dtype,
                                           None if p is None else F._dtype(p))
                raise GraphcError(f"{self._display_name}.{method}: the state's {name!r} has "
                                  f"dtype {dtype}, which graphc does not hold; give the state "
                                  f"{self._display_name}.init made", (user_location(),))

    def update(self, grads, state, params, step=None, lr=None, settings=None):
        """-> (new params, new state). A leaf whose gradient is None (a None in `grads` may
        stand for a whole subtree of `params`) is left as it is, its slots too; the state's
        count is one for every leaf, as optax's, so the leaf's later bias corrections count
        the updates it missed (bind() keeps a count per parameter, as torch's). `step`: the
        step count the learning-rate schedule is evaluated at where it is not the state's
        count of updates made (mixed-precision training that skipped overflowed steps: as
        PyTorch, the scheduler steps every iteration and Adam's bias corrections count the
        updates); None: the count. `lr`: this update's learning rate, given instead of the
        schedule's (a number lr's or a ReduceLROnPlateau's, an input of a compiled step: a
        float64 0-d array, `np.asarray(lr, np.float64)`, so that a new value compiles nothing
        again; gc.Trainer passes it). A Python float or numpy float scalar argument of the
        compiled step is not one: gc.compile traces it as a weak scalar of its float arrays'
        dtype, as jax.jit does, so with float32 parameters the update's float64 step size
        starts from the lr rounded to float32 (the eager update's at float(np.float32(lr)),
        an ulp off the eager update's at lr for a few percent of values).
        `settings`: values of the optimiser's `hyperparameters` (betas, eps, momentum,
        weight_decay, ...) to use instead of its attributes, likewise float64 0-d inputs of a
        compiled step (gc.Trainer passes those that are not 0); only whether each is 0 is
        then a guard, and a traced value for a setting whose attribute is 0 is refused (the
        plan leaves that computation out).

        Traced, the update reads the optimiser's settings (lr unless given, weight_decay,
        betas, momentum, eps, decay_mask, clip_norm, ...) as constants of the plan, each
        guarded: setting one (`opt.weight_decay = 0.1`) compiles the step again at its next
        call, as torch's optimisers read their param_groups at every step."""
        optimizer = self
        settings = self._checked_settings(settings)
        if lr is not None and not isinstance(lr, Node):  # lr='s one rule (a 0-d array too;
            # lr=True was taken as 1.0 here, refused by lr= and constant())
            number = _learning_rate(f"{type(self).__name__}.update: lr", lr,
                                    "a finite number >= 0")
        if lr is not None or settings:
            optimizer = copy.copy(self)
        if lr is not None:  # (a torch 0-d tensor as its number: it was cast's refusal)
            given = lr if isinstance(lr, (Node, Tensor)) else number
            optimizer.lr = lambda count: given
        if settings:
            object.__setattr__(optimizer, "_fed", {
                name: float(v) if isinstance(v, (int, float, np.number, np.ndarray)) else v
                for name, v in settings.items()})
            # gc.Trainer's: each a number attribute's own value (or a schedule's), so a
            # fed value is 0 only where its attribute is (_with_momentum_off reads it)
            object.__setattr__(optimizer, "_fed_follows_attributes",
                               isinstance(settings, _AttributeSettings))
        grads = _gradient_numbers_like(grads, params, f"{self._display_name}.update")
        symbolic = [x for x in _leaves((grads, state, params, step, lr, settings))
                    if isinstance(x, Node)]
        if symbolic:
            graph = symbolic[0].graph
            for name, value in vars(self).items():
                if name in settings:  # a value of the step: only its being 0 is read
                    graph.guard(_IsZero(self), name, _IsZero.of(value))
                elif name != "lr" or lr is None:
                    graph.guard(self, name, value)
            grads, state, params = _numbers_as_arrays((grads, state, params))
            return optimizer._update(grads, state, params, step)
        # no tape unless the caller differentiates through the update (eager tensors that
        # require grad)
        with contextlib.nullcontext() if _tracks_grad((grads, params)) else no_grad():
            try:
                (grads, state, params), lifted = _lift_tree((grads, state, params))
            except UnsupportedDtype:  # (the float path checks nothing: found only here)
                self._refuse_unheld("update", grads, state, params)
                raise
            new_params, new_state = optimizer._update(grads, state, params, step)
        if lifted:
            return _unlift_tree(new_params), _unlift_tree(new_state)
        return new_params, new_state

    @classmethod
    def reads_settings(cls) -> bool:
        """Whether the update reads its number settings through hyper() and its scalars, so
        that update(settings=) can give them: graphc's optimisers, and a subclass whose own
        _update_leaf or _scalars comes with its own `hyperparameters`. A subclass that
        overrides them and reads the attributes does not: its settings stay guarded constants
        (gc.Trainer then feeds none)."""
        for method in ("_update_leaf", "_scalars"):
            owner = next(k for k in cls.__mro__ if method in vars(k))
            if owner.__module__ != __name__ and "hyperparameters" not in vars(owner):
                return False
        return True

    def _checked_settings(self, settings) -> dict:
        if settings is None:
            return {}
        if not self.reads_settings():
            raise GraphcError(f"{type(self).__name__}.update: settings= needs an update that "
                              f"reads them (its _update_leaf and _scalars through "
                              f"scalars[name] and hyper(name), and a `hyperparameters` tuple "
                              f"naming them); this one reads its attributes",
                              (user_location(),))
        if not isinstance(settings, dict) or set(settings) - set(self.hyperparameters):
            names = sorted(settings) if isinstance(settings, dict) else type(settings).__name__
            raise GraphcError(f"{type(self).__name__}.update: settings must be a dict of "
                              f"{', '.join(self.hyperparameters)}, got {names}",
                              (user_location(),))
        for name, value in settings.items():
            if not isinstance(value, Node):  # a concrete value, by the setting's own rule
                self.checked_setting(name, np.asarray(value).item()
                                     if isinstance(value, np.ndarray) else value)
            # an attribute of 0 leaves the setting's computation out of the update: a value
            # for it that may not be 0 cannot be taken. A value of 0 where the attribute is
            # not 0 (a number or a schedule) is: every update computes a 0 as torch's does
            # (SGD's and RMSprop's momentum at 0 skip the buffer: _with_momentum_off)
            if _is_zero(getattr(self, name)) and (isinstance(value, Node)
                                                  or not _is_zero(value)):
                given = "a value of the step" if isinstance(value, Node) else float(value)
                raise GraphcError(f"{type(self).__name__}.update: settings[{name!r}] is "
                                  f"{given}, and the optimizer's {name} is 0, which leaves "
                                  f"its computation out of the update; set {name} to the "
                                  "value first (or leave it out of settings)",
                                  (user_location(),))
        return settings

    def hyper(self, name):
        """A number setting as this update reads it: the value given to update(settings=)
        (a float64 0-d value of the step) or the attribute."""
        fed = self.__dict__.get("_fed")
        return fed[name] if fed and name in fed else getattr(self, name)

    def _update(self, grads, state, params, step=None):
        settings = {name: self.hyper(name) for name in self.hyperparameters}
        scheduled = {name: value for name, value in settings.items() if callable(value)}
        if scheduled:  # each at the step the lr schedule is evaluated at
            at = state["count"] if step is None else step
            resolved = copy.copy(self)
            object.__setattr__(resolved, "_fed", {
                **(self.__dict__.get("_fed") or {}),
                **{name: _float64(schedule(at)) for name, schedule in scheduled.items()}})
            return resolved._update(grads, state, params, step)
        p_leaves, structure, names = flatten(params)
        g_leaves = leaves_like(structure, grads, f"{self._display_name}.update: the "
                               "gradients' pytree", "the parameters'")
        slot_leaves = self._slot_leaves(state, structure)
        checked = self._parameter_like_slots()
        for i, (name, p, g) in enumerate(zip(names, p_leaves, g_leaves)):
            if g is not None:  # torch refuses such a .grad too;
                self._refuse_non_float("update", name, p)
            if g is not None and not isinstance(g, (Node, Tensor, np.ndarray, np.generic)):
                raise GraphcError(f"{self._display_name}.update: the gradient of parameter "
                                  f"{name!r} is {a_type(g)}, not an array or a "
                                  "number", (user_location(),))
            # numpy would broadcast the update into the parameter, changing its shape
            if g is not None and tuple(F._shape(g)) != tuple(F._shape(p)):
                raise GraphcError(f"{self._display_name}.update: the gradient of parameter "
                                  f"{name!r} has shape {tuple(F._shape(g))}, its parameter "
                                  f"{tuple(F._shape(p))}", (user_location(),))
            # a float gradient of another float dtype (numpy's float64: a hand-written or
            # finite-difference one, for float32 parameters) in the parameter's, as bind()
            # casts a .grad and as optax's update ends in the parameter's dtype; it failed
            # inside the update's arithmetic ("add(f64[2,2], f32[2,2])"), naming no parameter
            if g is not None and F._dtype(g) != F._dtype(p):
                if not is_float(F._dtype(g)):
                    _refuse_gradient_dtype(f"{self._display_name}.update", name,
                                           F._dtype(g), F._dtype(p))
                g_leaves[i] = F.cast(g, F._dtype(p))
            if g is not None:
                self._check_slot_leaves(name, p, {s: slot_leaves[s][i] for s in checked})
        if self.clip_norm is not None and any(g is not None for g in g_leaves):
            g_leaves = leaves_like(structure, clip_by_global_norm(
                unflatten(structure, g_leaves), self.clip_norm)[0])
        count = state["count"]
        scalars = self._scalars(count, count if step is None else step)
        for name in self.hyperparameters:  # and 1 - each, made in float64 and rounded once
            value = self.hyper(name)
            scalars.setdefault(name, value)
            scalars.setdefault("1-" + name, 1.0 - value)
        if "weight_decay" in self.hyperparameters and self.weight_decay:  # (_coupled_decay)
            scalars.setdefault("weight_decay_off", _setting_off(self, "weight_decay"))
        mask = self._decay_flags(names, p_leaves, structure)
        new_p, new_slots = [], {s: [] for s in self.slots}
        cast_cache = {}
        for i, (p, g) in enumerate(zip(p_leaves, g_leaves)):
            slots = {s: slot_leaves[s][i] for s in self.slots}
            if g is None:  # (an optax rule's update for it is None: an empty subtree)
                new_p.append(None if self.gives_updates else p)
                for s in self.slots:
                    new_slots[s].append(slots[s])
                continue
            key = np.dtype(p.dtype)
            if key not in cast_cache:  # one rounding of each float64 scalar per dtype
                cast_cache[key] = {k: v if isinstance(v, (float, int))
                                   or k in self.float64_scalars or _is_bool(v)
                                   else F.cast(v, key) for k, v in scalars.items()}
            if self.maximize:  # before weight decay and the moments, as torch's
                g = -g
            p2, slots2 = self._update_leaf(p, g, slots, cast_cache[key], mask[i], count)
            new_p.append(p2)
            for s in self.slots:  # a mark a subclass's _update_leaf, written before the
                # mark was kept, does not return stays as it was (SGD's "started")
                new_slots[s].append(slots2[s] if s in slots2 or s not in self.marks
                                    else slots[s])
        new_state = {"count": self._next_count(count)}
        for s in self.slots:
            new_state[s] = unflatten(structure, new_slots[s])
        return unflatten(structure, new_p), new_state

    def _parameter_like_slots(self) -> tuple:
        """The slots that are arrays like their parameter: those of graphc's init, less the
        0-d scalar_slots. A user's subclass with an init of its own may keep a slot of
        another shape (a per-row statistic): none of its slots is checked."""
        owner = next(k for k in type(self).__mro__ if "init" in vars(k))
        if owner.__module__ not in (__name__, "graphc.optax_style"):
            return ()
        return tuple(s for s in self.slots if s not in self.scalar_slots)

    def _check_slot_leaves(self, name, p, slots):
        """One line naming the state's slot and parameter `name` where a slot that is an
        array like the parameter has another shape or dtype: a (3, 1) slot of a (3,)
        parameter was broadcast, silently giving (3, 3) updates and state, and one of
        another dtype failed in the update's arithmetic naming an op ("add(f64[3],
        f32[3])"). A state init made for other parameters, or changed, meets this."""
        for slot, leaf in slots.items():
            if isinstance(leaf, (int, float)):
                continue  # (a Python number: weakly typed, a 0-d parameter's own)
            if leaf is None:
                got = "no value"
            elif tuple(F._shape(leaf)) != tuple(F._shape(p)):
                got = f"shape {tuple(F._shape(leaf))}, its parameter {tuple(F._shape(p))}"
            elif F._dtype(leaf) != self._slot_dtype(slot, F._dtype(p)):
                got = f"dtype {F._dtype(leaf)}, its parameter {F._dtype(p)}"
            else:
                continue
            raise GraphcError(f"{self._display_name}.update: state[{slot!r}] of parameter "
                              f"{name!r} has {got}; give the state "
                              f"{self._display_name}.init made for these parameters",
                              (user_location(),))

    def _next_count(self, count):
        """The state's count after this update (optax's rules saturate it: _OptaxRule)."""
        return F.add(count, 1)

    def _scalars(self, count, step) -> dict:
        """Float64 scalars shared by every leaf (the learning rate at `step`, bias corrections
        from `count`)."""
        return {"lr": _float64(self.lr(step))}

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        raise NotImplementedError

    # slots that mark what a parameter's count of updates told before they were kept (SGD's
    # "started"): a state may lack one (saved before it was kept: update(), load_state_dict()
    # and gc.Trainer make it from each parameter's count, _older_slot, follow_marks) or hold
    # one the optimiser no longer keeps (left out, unless one of optional_slots: aside)
    marks: tuple = ()

    @property
    def older_slots(self) -> tuple:
        """The marks this optimiser keeps now (see `marks`)."""
        return tuple(s for s in self.slots if s in self.marks)

    def _older_slot(self, slot, count):
        """The value slot `slot` holds for a parameter that has had `count` updates (an int,
        or a 0-d count array, traced or not), for a state saved before the optimiser kept
        that slot; None where such a state cannot lack it."""
        return None

    def follow_marks(self, state: dict, updates: dict) -> dict:
        """`state` (slot -> {parameter name: array}) with the marks this optimiser keeps now
        (see `marks`): one it no longer keeps left out, one it lacks made from each
        parameter's count of updates (`updates`, name -> int, parameter_updates), as update()
        takes such a state. A new dict where a mark changes (the other slots shared)."""
        slots = self.slots
        # (one of optional_slots stays, aside: SGD's "started" while the momentum is 0)
        left_out = [k for k in self.marks if k in state and k not in slots
                    and k not in self.optional_slots]
        # a mark is made only for a state holding the slots it marks: one lacking them (a
        # momentum set from 0 since gc.Trainer's init) gets the update's line about them
        lacking = [s for s in self.older_slots if s not in state] \
            if all(s in state for s in slots if s not in self.marks) else []
        if not left_out and not lacking:  # (every step of a run whose settings stay)
            return state
        followed = {k: v for k, v in state.items() if k not in left_out}
        for slot in lacking:
            followed[slot] = self.older_marks(slot, updates)
        return followed

    def older_marks(self, slot, updates: dict) -> dict:
        """{name: the mark `slot` holds for a parameter of `updates[name]` updates}."""
        return {n: np.asarray(self._older_slot(slot, count)) for n, count in updates.items()}

    def _decay_flags(self, names, leaves, structure):
        if not self.weight_decay:
            return [False] * len(leaves)
        mask = self.decay_mask
        if mask is None:
            return [True] * len(leaves)
        if callable(mask):
            return [bool(mask(n, p)) for n, p in zip(names, leaves)]
        # a pytree of flags like the parameters; None (for a subtree) is False
        return [bool(f) for f in leaves_like(structure, mask, "decay_mask",
                                             "the parameters' pytree")]

    def _check_count(self, count):
        """One line where the state's count (the updates made) is not a 0-d integer >= 0: a
        count vector was broadcast into the bias corrections, each element its own
        (wrong updates without a word), a negative one gave NaN (1 - b1^0 is 0), a float
        one was taken, and a string failed in a cast naming no state."""
        if isinstance(count, (Node, Tensor, np.ndarray, np.generic)) and \
                np.dtype(F._dtype(count)).kind in "iu" and tuple(F._shape(count)) == ():
            if isinstance(count, Node) or \
                    int(np.asarray(count.data if isinstance(count, Tensor) else count)) >= 0:
                return
        if isinstance(count, (Node, Tensor)):  # (a traced one: its dtype and shape)
            got = f"{F._dtype(count)}{list(F._shape(count))}" + (
                f" {np.asarray(count.data).tolist()}"[:60] if isinstance(count, Tensor) else "")
        else:
            got = repr(count)[:60]
        raise GraphcError(f"{self._display_name}.update: the state's count must be a whole "
                          f"number >= 0 (0-d, the updates made), got {got}",
                          (user_location(),))

    def _slot_leaves(self, state, structure):
        """{slot: its leaves in the order of the parameters' leaves}, the state checked."""
        expected = ("count",) + tuple(self.slots)
        older = [s for s in self.older_slots if isinstance(state, dict) and s not in state]
        # (a mark the optimiser no longer keeps: left out)
        if not isinstance(state, dict) or \
                set(state) - set(self.marks) != set(expected) - set(self.marks):
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            # (a setting changed since init, SGD's momentum from 0, makes other slots)
            raise GraphcError(f"{self._display_name}.update: the state has {keys}, expected "
                              f"{sorted(expected)} ({self._state_origin()})",
                              (user_location(),))
        self._check_count(state["count"])
        slot_leaves = {}
        for s in older:  # a state saved before the slot was kept: its value from the count
            slot_leaves[s] = [self._older_slot(s, state["count"])
                              for _ in range(leaf_count(structure))]
        for s in self.slots:
            if s in older:
                continue
            leaves, own = leaves_and_structure(state[s])
            if own != structure:
                # a state made from a dict serves its OrderedDict and the other way round
                # (as gradients are): the same keys hold the same parameters
                if keys_sorted(own, ordered_dicts=False) != \
                        keys_sorted(structure, ordered_dicts=False):
                    raise GraphcError(f"{self._display_name}.update: state[{s!r}] does not "
                                      "match the parameters' pytree", (user_location(),))
                leaves = leaves_like(structure, state[s])
            slot_leaves[s] = leaves
        return slot_leaves

    # ---- PyTorch-style ----
    def bind(self, parameters) -> "BoundOptimizer":
        """An eager optimiser over Parameters (a Module, a dict name -> Parameter, or a list),
        with step() and zero_grad()."""
        return BoundOptimizer(self, parameters)


class SGD(Optimizer):
    """torch.optim.SGD: coupled L2 weight decay, momentum (with dampening), Nesterov."""

    slot_words = {"momentum": "momentum_buffer (momentum > 0)", "started": None}

    marks = ("started",)
    scalar_slots = ("started",)

    hyperparameters = ("weight_decay", "momentum", "dampening")
    flag_settings = ("maximize", "nesterov")
    # a buffer and its mark kept aside while the momentum is 0, as torch keeps the buffer
    optional_slots = ("momentum", "started")
    # graphc's earlier SGD(lr, 0.9, True) gave nesterov third
    _moved_positional = {"dampening": (lambda v: not isinstance(v, (bool, np.bool_)),
                                       "must be a number", "nesterov")}
    torch_step_keywords = ("foreach", "differentiable", "fused")

    # torch's positional order (a torch user's SGD(lr, 0.9, 0.5) is dampening 0.5; before,
    # nesterov came third); graphc's own settings keyword-only (see Adam). lr 1e-3 by
    # default, as torch's (2.x)
    @_torch_style_init
    def __init__(self, lr=1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, decay_mask=None,
                 clip_norm=None, maximize: bool = False):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov  # (checked as a flag, __setattr__)
        if nesterov and ((not callable(momentum) and momentum <= 0) or callable(dampening)
                         or dampening != 0):
            raise GraphcError("SGD: Nesterov momentum needs momentum > 0 and dampening 0",
                              (user_location(),))

    @property
    def slots(self):  # read at each update: momentum set to 0, or from 0, since init
        if not self.momentum:
            return ()
        # torch starts a parameter's buffer undamped, at its first gradient under a momentum
        # that is not 0; with a dampening that start differs from a damped one, so each
        # buffer is marked once started. Kept at dampening 0 too: a buffer may begin after
        # the parameter's first update (the momentum set from 0 on a bound optimiser, or a
        # momentum schedule at 0), so a dampening set later cannot tell it from the count
        return ("momentum", "started")

    def init(self, params) -> dict:
        state = super().init(params)
        if self.momentum:
            leaves, structure, _ = flatten(params)
            traced = any(isinstance(p, Node) for p in leaves)
            state["started"] = unflatten(structure, [
                F.full((), False, "bool") if traced else np.zeros((), np.bool_)
                for _ in leaves])
        return state

    def _slot_dtype(self, slot, dtype):
        return np.dtype(np.bool_) if slot == "started" else super()._slot_dtype(slot, dtype)

    def _older_slot(self, slot, count):
        # a state saved before "started" was kept started every buffer at the parameter's
        # first update: the mark is whether it has had one
        if slot != "started":
            return super()._older_slot(slot, count)
        if isinstance(count, (Node, Tensor)):
            return F.greater(count, 0)
        return np.asarray(int(count) > 0)

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        g = _coupled_decay(g, p, scalars, decay)
        new_slots = {}
        if self.momentum:
            buf = slots["momentum"] * scalars["momentum"] + g * scalars["1-dampening"]
            if self.dampening:  # torch's first buffer is the gradient itself, undamped
                buf = F.where(slots["started"], buf, g)
            step = g + buf * scalars["momentum"] if self.nesterov else buf
            off = _momentum_off(scalars)
            buf, g = _unless_momentum_off(off, slots["momentum"], buf, g, step)
            new_slots["momentum"] = buf
            # started unless the step's momentum is 0 (buffer skipped)
            new_slots["started"] = _started(off, slots["started"])
        return p - scalars["lr"] * g, new_slots

    def _scalars(self, count, step):
        return _with_momentum_off(self, super()._scalars(count, step))


def _with_momentum_off(optimizer, scalars) -> dict:
    """scalars with "momentum_off": whether the step's momentum (SGD's, RMSprop's) is 0,
    read once per update, not per leaf. A concrete momentum (a number; eager, a schedule's
    value or update(settings=)'s) gives a Python bool, so that each leaf picks its branch in
    Python: exact, and no eager op. A traced one gives a bool value of the step, selected on
    (_unless_momentum_off): a schedule's in a compiled update, or one fed by
    update(settings=), which may be 0 where the attribute is not; except gc.Trainer's
    (_AttributeSettings): it feeds a number attribute's own value, 0 only where the
    attribute is, which a guard of the plan holds, so a constant momentum's plan has no
    select. (A bool: never cast to a parameter's dtype, _is_bool.)"""
    if optimizer.momentum:  # (else no buffer)
        scalars["momentum_off"] = _setting_off(optimizer, "momentum")
    return scalars


def _setting_off(optimizer, name):
    """Whether the step's value of number setting `name` is 0 (see _with_momentum_off): a
    Python bool, or a bool value of the step to select on."""
    value = optimizer.hyper(name)
    if isinstance(value, Tensor):  # (an eager value: its number decides)
        value = value.data
    if not isinstance(value, Node):
        return _is_zero(value)
    if not callable(getattr(optimizer, name)) and \
            optimizer.__dict__.get("_fed_follows_attributes"):
        return False
    return F.equal(value, 0.0)  # (its float64 value, not rounded)


def _coupled_decay(g, p, scalars, decay):
    """g + weight_decay * p, torch's coupled (L2) weight decay, where the parameter decays
    and the step's weight decay is not 0: torch skips the term at 0 (`if weight_decay !=
    0`), which differs from adding 0 * p for an infinite parameter (inf, not NaN). A weight
    decay of 0 given to update(settings=) or reached by a schedule: weight_decay_off
    (_setting_off, selected on where it is a value of the step)."""
    if not decay:
        return g
    off = scalars.get("weight_decay_off", False)
    if off is True:
        return g
    added = g + p * scalars["weight_decay"]
    return added if off is False else F.where(off, g, added)


def _started(off, started):
    """SGD's mark of a buffer started after an update whose momentum is 0 where `off` is
    True (the buffer skipped: the mark as it was), not 0 where False, or either (a bool
    value of the step)."""
    if off is True:
        return started
    if off is False:
        return F.full((), True, "bool")
    return F.logical_or(started, F.logical_not(off))


def _momentum_off(scalars):
    """scalars' momentum_off; False (the buffer always updated, as before it was read) where
    a user's subclass has _scalars of its own that do not call SGD's or RMSprop's."""
    return scalars.get("momentum_off", False)


def _is_bool(value) -> bool:
    """A bool scalar (momentum_off), which _update keeps as it is for every dtype."""
    return isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (Node, Tensor)) and np.dtype(F._dtype(value)) == np.bool_)


def _unless_momentum_off(off, old_buf, buf, plain, step):
    """(new momentum buffer, step) of SGD's or RMSprop's update: (buf, step), except at a
    step whose momentum is 0 (`off`, from _with_momentum_off: a bool, or a traced one that
    is selected on). There torch's `if momentum != 0` skips the buffer: it stays as it was
    and the step is the plain one (buf became 0 * old + (1 - dampening) g, the old buffer
    lost and the step damped)."""
    if off is True:
        return old_buf, plain
    if off is False:
        return buf, step
    return F.where(off, old_buf, buf), F.where(off, plain, step)


class _DecoupledWeightDecay:
    """torch's name of Adam's, AdamW's and NAdam's flag `decoupled` (their constructors' and
    param_groups' key: `group["decoupled_weight_decay"] = True` as torch's), reading and
    writing through."""

    torch_names = ("decoupled_weight_decay",)

    @property
    def decoupled_weight_decay(self) -> bool:
        return self.decoupled

    @decoupled_weight_decay.setter
    def decoupled_weight_decay(self, value):
        self.decoupled = _flag(f"{type(self).__name__}: decoupled_weight_decay", value)


class Adam(_DecoupledWeightDecay, Optimizer):
    """torch.optim.Adam: weight decay is coupled (added to the gradient, L2), or decoupled
    (p *= 1 - lr * weight_decay, AdamW's) with decoupled_weight_decay=True, as torch's.
    amsgrad, as torch's: the step divides by the largest v so far (slot "v_max"), not by v."""

    slot_words = {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq (amsgrad=True)"}

    decoupled = False  # (the class's default: AdamW's True)
    hyperparameters = ("weight_decay", "beta1", "beta2", "eps")
    flag_settings = ("maximize", "amsgrad", "decoupled")
    # graphc's earlier order gave decay_mask fifth
    _moved_positional = {"amsgrad": (lambda v: isinstance(v, (bool, np.bool_)),
                                     "must be True or False", "decay_mask")}
    torch_step_keywords = ("foreach", "capturable", "differentiable", "fused")

    # torch's positional order, amsgrad fifth (decay_mask was fifth, so torch's Adam(lr,
    # betas, eps, weight_decay, True) took the True as a mask and dropped AMSGrad unsaid).
    # graphc's own settings (decay_mask, clip_norm) are keyword-only in every torch-named
    # optimiser, so no positional argument of torch's lands on one
    @_torch_style_init
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, decay_mask=None,
                 clip_norm=None, maximize: bool = False,
                 decoupled_weight_decay: bool | None = None):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.betas = betas
        self.eps = eps
        self.amsgrad = amsgrad
        # an attribute of each optimiser (a setting a compiled step guards, as amsgrad);
        # None: the class's (False, AdamW's True, a subclass's own)
        self.decoupled_weight_decay = type(self).decoupled if decoupled_weight_decay is None \
            else decoupled_weight_decay

    non_negative_slots = ("v", "v_max")
    optional_slots = ("v_max",)

    @property
    def slots(self):  # read at each update, as SGD's: amsgrad set since init adds a slot
        return ("m", "v", "v_max") if self.amsgrad else ("m", "v")

    def _scalars(self, count, step):
        lr = _float64(self.lr(step))
        t = F.cast(count, "float64") + 1.0  # the update being made, 1-based
        bc1 = 1.0 - F.pow(self.hyper("beta1"), t)
        bc2 = 1.0 - F.pow(self.hyper("beta2"), t)
        scalars = {"step_size": lr / bc1, "bc2_sqrt": F.sqrt(bc2)}
        if self.decoupled and self.weight_decay:
            scalars["decay_factor"] = 1.0 - lr * self.hyper("weight_decay")
        return scalars

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        g = _coupled_decay(g, p, scalars, decay and not self.decoupled)
        m = slots["m"] * scalars["beta1"] + g * scalars["1-beta1"]
        v = slots["v"] * scalars["beta2"] + (g * g) * scalars["1-beta2"]
        new_slots = {"m": m, "v": v}
        if self.amsgrad:
            v = new_slots["v_max"] = F.maximum(slots["v_max"], v)
        denom = F.sqrt(v) / scalars["bc2_sqrt"] + scalars["eps"]
        if decay and self.decoupled:
            p = p * scalars["decay_factor"]
        return p - scalars["step_size"] * (m / denom), new_slots


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay, p *= 1 - lr * weight_decay (default 0.01,
    every parameter unless decay_mask says otherwise)."""

    decoupled = True

    @_torch_style_init
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False, *, decay_mask=None,
                 clip_norm=None, maximize: bool = False):
        # amsgrad by name: Adam's __init__ would read a positional one as given by position
        # (no decoupled_weight_decay=, as torch's AdamW: its param_groups' flag may be set)
        super().__init__(lr, betas, eps, weight_decay, amsgrad=amsgrad,
                         decay_mask=decay_mask, clip_norm=clip_norm, maximize=maximize)


class RMSprop(Optimizer):
    """torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2, the step g / (sqrt(v) + eps);
    `centered` subtracts the squared running mean of g from v, `momentum` accumulates the
    steps; weight decay coupled (L2)."""

    slot_words = {"v": "square_avg", "mean_g": "grad_avg (centered=True)",
                  "momentum": "momentum_buffer (momentum > 0)"}

    hyperparameters = ("weight_decay", "alpha", "eps", "momentum")
    flag_settings = ("maximize", "centered")
    torch_step_keywords = ("capturable", "foreach", "differentiable")

    @_torch_style_init
    def __init__(self, lr=1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, decay_mask=None, clip_norm=None, maximize: bool = False):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.centered = centered  # (checked as a flag, __setattr__)

    non_negative_slots = ("v",)
    optional_slots = ("mean_g", "momentum")

    @property
    def slots(self):  # read at each update, as SGD's
        return ("v",) + (("mean_g",) if self.centered else ()) + \
            (("momentum",) if self.momentum else ())

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        g = _coupled_decay(g, p, scalars, decay)
        alpha, one_minus_alpha = scalars["alpha"], scalars["1-alpha"]
        new = {"v": slots["v"] * alpha + (g * g) * one_minus_alpha}
        if self.centered:
            new["mean_g"] = slots["mean_g"] * alpha + g * one_minus_alpha
            avg = F.sqrt(new["v"] - new["mean_g"] * new["mean_g"]) + scalars["eps"]
        else:
            avg = F.sqrt(new["v"]) + scalars["eps"]
        step = g / avg
        if self.momentum:
            buf = slots["momentum"] * scalars["momentum"] + step
            new["momentum"], step = _unless_momentum_off(_momentum_off(scalars),
                                                         slots["momentum"], buf, step, buf)
        return p - scalars["lr"] * step, new

    def _scalars(self, count, step):
        return _with_momentum_off(self, super()._scalars(count, step))


class Adagrad(Optimizer):
    """torch.optim.Adagrad: the sum of squared gradients (from initial_accumulator_value)
    scales each step, g / (sqrt(sum) + eps), at the rate lr / (1 + (t - 1) lr_decay) of
    update t; weight decay coupled (L2)."""

    slot_words = {"sum": "sum"}

    slots = ("sum",)
    non_negative_slots = ("sum",)
    hyperparameters = ("weight_decay", "lr_decay", "eps")
    torch_step_keywords = ("foreach", "differentiable", "fused")

    @_torch_style_init
    def __init__(self, lr=1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *,
                 decay_mask=None, clip_norm=None, maximize: bool = False):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.lr_decay = lr_decay
        self.initial = initial_accumulator_value  # (checked, checked_setting)
        self.eps = eps

    torch_names = ("initial_accumulator_value",)

    @property
    def initial_accumulator_value(self) -> float:
        """torch's name of `initial` (its constructor's and param_groups' key)."""
        return self.initial

    @initial_accumulator_value.setter
    def initial_accumulator_value(self, value):
        self.initial = value

    def checked_setting(self, name, value):
        # the accumulator's start, read by init: a negative one (set after the constructor
        # checked it) gave NaN updates from the first step
        if name == "initial":
            what = f"{type(self).__name__}: initial_accumulator_value"
            return _non_negative(what, _not_a_bool(what, value))
        return super().checked_setting(name, value)

    def init(self, params) -> dict:
        return _filled_slot(super().init(params), "sum", self.initial, params)

    def _scalars(self, count, step):
        lr = _float64(self.lr(step))
        return {"lr": lr / (F.cast(count, "float64") * self.hyper("lr_decay") + 1.0)}

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        g = _coupled_decay(g, p, scalars, decay)
        total = slots["sum"] + g * g
        return p - scalars["lr"] * (g / (F.sqrt(total) + scalars["eps"])), {"sum": total}


class Adamax(Optimizer):
    """torch.optim.Adamax: Adam with the infinity norm, u = max(beta2 u, |g| + eps), the step
    lr / (1 - beta1^t) * m / u; weight decay coupled (L2)."""

    slot_words = {"m": "exp_avg", "exp_inf": "exp_inf"}

    slots = ("m", "exp_inf")
    non_negative_slots = ("exp_inf",)
    hyperparameters = ("weight_decay", "beta1", "beta2", "eps")
    torch_step_keywords = ("foreach", "differentiable", "capturable")

    @_torch_style_init
    def __init__(self, lr=2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, decay_mask=None, clip_norm=None,
                 maximize: bool = False):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.betas = betas
        self.eps = eps

    def _scalars(self, count, step):
        t = F.cast(count, "float64") + 1.0
        return {"step_size": _float64(self.lr(step)) / (1.0 - F.pow(self.hyper("beta1"), t))}

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        g = _coupled_decay(g, p, scalars, decay)
        m = slots["m"] * scalars["beta1"] + g * scalars["1-beta1"]
        u = F.maximum(slots["exp_inf"] * scalars["beta2"], F.abs(g) + scalars["eps"])
        return p - scalars["step_size"] * (m / u), {"m": m, "exp_inf": u}


class NAdam(_DecoupledWeightDecay, Optimizer):
    """torch.optim.NAdam: Adam with Nesterov momentum and torch's momentum schedule
    mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)). The product of the mu_t so far is
    state, as torch's: a 0-d array per parameter (slot "mu_product") in torch's default
    dtype taken as the parameter's: float64 for float64 parameters, float32 otherwise (torch's
    float32 default), each product rounded as torch's `mu_product *= mu` (mu rounded to
    float32 first); the two step factors from it in float64, as torch's Python floats. Weight
    decay coupled (L2), or decoupled (p *= 1 - lr * weight_decay) with
    decoupled_weight_decay=True, as torch's."""

    slot_words = {"m": "exp_avg", "v": "exp_avg_sq", "mu_product": "mu_product"}

    slots = ("m", "v", "mu_product")
    non_negative_slots = ("v", "mu_product")
    scalar_slots = ("mu_product",)
    float64_scalars = ("lr", "mu", "mu_next")
    hyperparameters = ("weight_decay", "beta1", "beta2", "eps", "momentum_decay")
    flag_settings = ("maximize", "decoupled")  # (torch's decoupled_weight_decay)
    torch_step_keywords = ("foreach", "capturable", "differentiable")

    @_torch_style_init
    def __init__(self, lr=2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, decay_mask=None, clip_norm=None,
                 maximize: bool = False):
        super().__init__(lr, weight_decay, decay_mask, clip_norm, maximize=maximize)
        self.betas = betas
        self.eps = eps
        self.momentum_decay = momentum_decay
        self.decoupled_weight_decay = decoupled_weight_decay

    def init(self, params) -> dict:
        state = super().init(params)
        leaves, structure, _ = flatten(params)
        traced = any(isinstance(p, Node) for p in leaves)

        def one(p):
            dtype = self._slot_dtype("mu_product", F._dtype(p)).name
            return F.full((), 1.0, dtype) if traced else np.ones((), dtype)
        state["mu_product"] = unflatten(structure, [None if p is None else one(p)
                                                    for p in leaves])
        return state

    def _slot_dtype(self, slot, dtype):
        # mu_product in torch's default dtype taken as the parameter's: float64 for float64,
        # else float32, a float16 or bfloat16 parameter's too (torch's NAdam over float16
        # parameters keeps a float32 mu_product, and model.half() leaves it float32)
        if slot == "mu_product":
            return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)
        return super()._slot_dtype(slot, dtype)

    def _scalars(self, count, step):
        lr = _float64(self.lr(step))
        t = F.cast(count, "float64") + 1.0
        beta1, decay = self.hyper("beta1"), self.hyper("momentum_decay")
        scalars = {"lr": lr, "bc2": 1.0 - F.pow(self.hyper("beta2"), t),
                   "mu": (1.0 - F.pow(0.96, t * decay) * 0.5) * beta1,
                   "mu_next": (1.0 - F.pow(0.96, (t + 1.0) * decay) * 0.5) * beta1}
        if self.decoupled and self.weight_decay:
            scalars["decay_factor"] = 1.0 - lr * self.hyper("weight_decay")
        return scalars

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        if decay and self.decoupled:
            p = p * scalars["decay_factor"]
        g = _coupled_decay(g, p, scalars, decay and not self.decoupled)
        mu, mu_next, lr = scalars["mu"], scalars["mu_next"], scalars["lr"]
        # in the state's own dtype (a float64 state saved before it followed torch's goes on
        # in float64)
        state_dtype = np.dtype(slots["mu_product"].dtype)
        mu_product = slots["mu_product"] * F.cast(mu, state_dtype)
        exact = F.cast(mu_product, "float64")
        # torch's two factors, in float64, each rounded once to the parameter's dtype
        dtype = np.dtype(p.dtype)
        grad_factor = F.cast(lr * (1.0 - mu) / (1.0 - exact), dtype)
        momentum_factor = F.cast(lr * mu_next / (1.0 - exact * mu_next), dtype)
        m = slots["m"] * scalars["beta1"] + g * scalars["1-beta1"]
        v = slots["v"] * scalars["beta2"] + (g * g) * scalars["1-beta2"]
        denom = F.sqrt(v / scalars["bc2"]) + scalars["eps"]
        p = p - grad_factor * (g / denom) - momentum_factor * (m / denom)
        return p, {"m": m, "v": v, "mu_product": mu_product}


class Lion(Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as
    optax.lion (torch.optim has none): p -= lr * (sign(beta1 m + (1 - beta1) g) +
    weight_decay p), then m = beta2 m + (1 - beta2) g. Weight decay is decoupled (outside
    the moment) and, as optax's, defaults to 1e-3 on every parameter (decay_mask= is optax's
    mask). The sign makes every step lr in size: use a learning rate 3-10x below AdamW's."""

    slot_words = {"m": "momentum (optax's mu)"}

    slots = ("m",)
    hyperparameters = ("weight_decay", "beta1", "beta2")

    # graphc's own decay_mask= and clip_norm= keyword-only, as in the torch-named optimisers
    # (so Lion(lr, betas, weight_decay) is called as they are)
    @_torch_style_init
    def __init__(self, lr=1e-4, betas=(0.9, 0.99), weight_decay: float = 1e-3, *,
                 decay_mask=None, clip_norm=None):
        super().__init__(lr, weight_decay, decay_mask, clip_norm)
        self.betas = betas

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        step = F.sign(g * scalars["1-beta1"] + slots["m"] * scalars["beta1"])
        if decay:
            step = step + p * scalars["weight_decay"]
        m = slots["m"] * scalars["beta2"] + g * scalars["1-beta2"]
        return p - scalars["lr"] * step, {"m": m}


# ---- eager, PyTorch-style -------------------------------------------------------------------
def _settings_of(optimizer) -> list:
    """The names of an optimiser's settings, as torch's param_groups' keys: lr, the numbers
    and flags it keeps (momentum, nesterov, weight_decay, ...), betas where it has them."""
    names = [name for name in vars(optimizer) if not name.startswith("_")]
    # torch's names of settings graphc's names otherwise (NAdam's decoupled_weight_decay,
    # Adagrad's initial_accumulator_value): properties reading and writing through
    names += list(getattr(optimizer, "torch_names", ()))
    return names + ["betas"] if "beta1" in optimizer.hyperparameters else names


class _ParamGroup(collections.abc.MutableMapping):
    """torch's `opt.param_groups[i]`: "params" (bind()'s for group 0, each add_param_group's
    for the next) and the optimiser's settings, each read from and written to the optimiser
    itself (`group["lr"] = 0.01` is `opt.lr = 0.01`, checked), so that torch's
    `for g in opt.param_groups: g["lr"] = lr` works. The groups share one set of settings:
    with several, a value written into some groups only is held (and read back) there until
    every group has it, and step() refuses it in one line meanwhile (torch's would step the
    groups with their own values)."""

    def __init__(self, bound, index: int = 0):
        self._bound, self._index = bound, index

    def __getitem__(self, key):
        if key == "params":
            names = self._bound._group_names(self._index)
            return [self._bound.parameters[n] for n in names]
        if key not in _settings_of(self._bound.optimizer):
            raise KeyError(key)
        held = self._bound._held.get(key, {})
        if self._index in held:
            return held[self._index]
        return getattr(self._bound, key)  # (lr: the number, see BoundOptimizer.__getattr__)

    def __setitem__(self, key, value):
        if key not in _settings_of(self._bound.optimizer):
            raise GraphcError(f"param_groups: {type(self._bound.optimizer).__name__} has no "
                              f"setting {key!r} (its settings: "
                              f"{', '.join(_settings_of(self._bound.optimizer))}); the "
                              "parameters are bind()'s", (user_location(),))
        count = len(self._bound._groups)
        if count == 1:
            setattr(self._bound.optimizer, key, value)
            return
        # (checked now, by the setting's own rule, as a write into every group is)
        optimizer = self._bound.optimizer
        if key == "lr" and not callable(value):
            _learning_rate(f"{type(optimizer).__name__}: lr", value, "a number >= 0 or a "
                           "schedule (a function of the step count)")
        else:
            optimizer.checked_setting(key, value)
        held = self._bound._held.setdefault(key, {})
        held[self._index] = value
        if _same_setting(value, getattr(self._bound.optimizer, key)):  # (the groups' own
            del held[self._index]  # value: nothing to hold, as torch's step takes it)
            if not held:
                del self._bound._held[key]
            return
        if len(held) == count and all(_same_setting(v, value) for v in held.values()):
            del self._bound._held[key]  # (every group has it: the optimiser's, checked)
            setattr(self._bound.optimizer, key, value)

    def __delitem__(self, key):
        raise GraphcError(f"param_groups: cannot delete {key!r}", (user_location(),))

    def __iter__(self):
        return iter(["params", *_settings_of(self._bound.optimizer)])

    def __len__(self):
        return 1 + len(_settings_of(self._bound.optimizer))

    def __repr__(self):
        return repr(dict(self))


class BoundOptimizer:
    """An optimiser bound to eager Parameters: `step()` applies the update to each
    Parameter's `.data` from its `.grad` (Parameters without a gradient are left alone);
    `zero_grad()` clears the gradients. `state` is the functional state, checkpointable.
    The optimiser's settings read and write through (`opt.lr = 0.01`, `opt.momentum`), as
    do torch's `opt.param_groups[0]["lr"]`; any other attribute set is refused."""

    _OWN = frozenset(("optimizer", "parameters", "state", "behind", "_dtypes", "_groups",
                      "_held"))

    def __init__(self, optimizer: Optimizer, parameters):
        named = _named_tensors(optimizer, parameters, "bind")
        self.optimizer, self.parameters = optimizer, named
        self.state = optimizer.init({n: p.data for n, p in named.items()})
        # state["count"] counts step() calls, the step the learning-rate schedule is at
        # (torch's LR scheduler); a parameter's own count of updates (torch's
        # state[p]["step"]) is that less the step() calls it had no gradient at. Kept as
        # that difference so that a state saved and assigned back (`opt.state = saved`, the
        # functional state being the checkpoint) resumes every parameter at its count.
        self.behind = {n: 0 for n in named}
        self._dtypes = {n: p.data.dtype for n, p in named.items()}  # (see _follow_casts)
        # torch's param groups: bind()'s parameters, then each add_param_group's (their
        # names; the settings are the optimiser's, one set for all: _ParamGroup)
        self._groups = [list(named)]
        self._held = {}  # setting -> {group: value} written into some groups only

    def _group_names(self, index) -> list:
        return self._groups[index]

    def _refuse_held(self):
        """One line where a setting was written into some param groups only (_ParamGroup)."""
        for key, held in self._held.items():
            i, value = next(iter(held.items()))
            _fail(f"{type(self.optimizer).__name__}.step: param_groups[{i}][{key!r}] was set "
                  f"to {value!r}, the other groups' {key} is {getattr(self, key)!r}: the "
                  f"param groups of a bound optimizer share their settings; set it in every "
                  f"group (for g in opt.param_groups: g[{key!r}] = ...), or bind another "
                  "optimizer to those parameters (gc.optim.Groups gives gc.Trainer one per "
                  "group)")

    def _follow_casts(self):
        """The state follows a cast of the parameters made since the last step
        (model.double(), .half(), .to(dtype)): each slot that was in the dtype the optimiser
        keeps it in for a parameter's old float dtype (the parameter's, Optimizer._slot_dtype)
        is cast to the one for its new dtype, as torch's load_state_dict casts a saved state
        to its parameters' dtype. (torch's step() fails there, "expected dtype float for
        `end` but got dtype double"; graphc's failed deep in the update, naming an add of
        float32 and float64.) NAdam's mu_product stays float32 under .half(), as torch's
        state after it and a torch NAdam over float16 parameters hold it (it followed to
        float16, whose rounding of the product each step torch's has not). Only the slots
        there are: a setting that needs others (momentum 0 -> 0.9) gets the update's own
        line about a new state."""
        for n, p in self.parameters.items():
            dtype, before = p.data.dtype, self._dtypes[n]
            if dtype == before:
                continue
            self._dtypes[n] = dtype
            if not (is_float(str(dtype)) and is_float(str(before))):
                continue
            slot_dtype = getattr(self.optimizer, "_slot_dtype", lambda slot, d: np.dtype(d))
            for slot, values in self.state.items():
                value = values.get(n) if isinstance(values, dict) else None
                if isinstance(value, (np.ndarray, np.generic)) and \
                        value.dtype == slot_dtype(slot, before):
                    values[n] = value.astype(slot_dtype(slot, dtype))

    def step(self):
        self._refuse_held()
        self._follow_casts()
        params = {n: p.data for n, p in self.parameters.items()}
        grads = {n: None if p.grad is None else _grad_array(n, p)
                 for n, p in self.parameters.items()}
        count = int(self.state["count"])  # (a state assigned afresh, count 0: no lag left)
        self.behind = {n: min(behind, count) for n, behind in self.behind.items()}
        # a state saved before a mark was kept (SGD's "started"): step()'s groups of
        # parameters of different counts read the state's slots by name
        updates = self.updates
        aside = self._state_for_settings(params)
        self.state = self.optimizer.follow_marks(self.state, updates)
        counts = {updates[n] for n, g in grads.items() if g is not None}
        for n, g in grads.items():
            if g is None:
                self.behind[n] += 1
        if len(counts) <= 1:  # one count for every parameter updated: one update
            with no_grad():
                new, state = self.optimizer.update(
                    grads, {**{s: v for s, v in self.state.items() if s not in aside},
                            "count": np.asarray(min(counts, default=0), np.int64)},
                    params, step=self.state["count"])
            self.state = {**aside, **state, "count": self.state["count"] + 1}
            self._assign(new)
            return
        # Parameters that began receiving gradients at different steps (a frozen one thawed,
        # a branch unused for a while): torch keeps a step per parameter, and Adam's bias
        # corrections (SGD's first momentum buffer) follow it, so each group of parameters
        # with the same count is updated with its own; a global count made a late
        # parameter's first Adam updates too small. Clipping is over all of them at once.
        optimizer = self.optimizer
        if optimizer.clip_norm is not None:
            grads = {n: g for n, g in grads.items()}
            clipped, _ = clip_by_global_norm({n: g for n, g in grads.items() if g is not None},
                                             optimizer.clip_norm)
            grads.update(clipped)
            optimizer = copy.copy(optimizer)
            optimizer.clip_norm = None
        mask = optimizer.decay_mask
        groups = {count: [n for n, g in grads.items() if g is not None
                          and updates[n] == count] for count in sorted(counts)}
        for count, group in groups.items():  # (the counts advance as the groups update)
            if isinstance(mask, dict):  # a pytree of flags: this group's
                optimizer = copy.copy(optimizer)
                optimizer.decay_mask = {n: mask[n] for n in group}
            state = {"count": np.asarray(count, np.int64)}
            for slot in optimizer.slots:
                state[slot] = {n: self.state[slot][n] for n in group}
            with no_grad():
                new, state = optimizer.update({n: grads[n] for n in group}, state,
                                              {n: params[n] for n in group},
                                              step=self.state["count"])
            for slot in optimizer.slots:
                self.state[slot].update(state[slot])
            self._assign(new)
        self.state["count"] = self.state["count"] + 1

    def _state_for_settings(self, params) -> dict:
        """Make self.state hold the slots the optimiser's settings keep now, and return those
        it holds aside. A slot a setting set since adds (SGD's or RMSprop's momentum from 0,
        amsgrad, centered) starts as init makes it (SGD's buffer not started), as torch starts
        a momentum buffer at the first step under a momentum (step() failed on it: a KeyError,
        or the update's line asking for a new state); one of `optional_slots` the settings no
        longer keep stays in the state, unused by the update, as torch's state keeps a
        momentum buffer while the momentum is 0 (or v_max after amsgrad=False), and serves
        again when the setting comes back."""
        optimizer = self.optimizer
        missing = [s for s in optimizer.slots if s not in self.state
                   and s not in optimizer.marks]
        if missing:  # (a buffer made now has not started: its mark too, not from the count,
            # nor a mark kept without its buffer, from a state_dict lacking the buffer)
            fresh = optimizer.init(params)
            self.state = {**self.state, **{s: fresh[s] for s in optimizer.slots
                                           if s not in self.state or s in optimizer.marks}}
        return {s: v for s, v in self.state.items()
                if s in optimizer.optional_slots and s not in optimizer.slots}

    @property
    def updates(self) -> dict:
        """The updates made to each parameter (torch's state[p]["step"])."""
        return parameter_updates(self.state["count"], self.behind, self.parameters)

    def state_dict(self) -> dict:
        """Everything step() reads besides the parameters, as torch's optimizer.state_dict():
        the functional state (copied), each parameter's lag behind the step count (the
        steps it had no gradient at), so a frozen-then-thawed parameter resumes at its own
        count, and the settings that are numbers (lr, betas, eps, ...) or flags (nesterov,
        amsgrad, centered, maximize, ...): torch's param_groups, so that one set during the
        run goes on. load_state_dict() takes it back."""
        numbers = number_settings(self.optimizer, ("lr", *self.optimizer.hyperparameters))
        return {"state": copy.deepcopy(self.state), "behind": dict(self.behind),
                "settings": {**numbers, **_flags_of(self.optimizer)}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what state_dict() returned, checked against these parameters and against
        the optimiser as its saved settings make it, as torch's restores its param_groups
        with the state (a dict without "settings", from before they were kept, leaves the
        settings as they are; one whose settings lack the flags, from before those were
        kept, leaves the flags as they are)."""
        if not isinstance(state_dict, dict) or not {"state", "behind"} <= set(state_dict) \
                or not set(state_dict) <= {"state", "behind", "settings"}:
            raise GraphcError("load_state_dict: expected the dict state_dict() returns "
                              "(keys 'state', 'behind' and 'settings')", (user_location(),))
        state, behind = state_dict["state"], state_dict["behind"]
        settings = state_dict.get("settings", {})
        flags = getattr(self.optimizer, "flag_settings", ())
        names = ("lr", *self.optimizer.hyperparameters, *flags)
        if not isinstance(settings, dict) or set(settings) - set(names):
            got = sorted(settings) if isinstance(settings, dict) else type(settings).__name__
            raise GraphcError(f"load_state_dict: the settings are {got}; "
                              f"{type(self.optimizer).__name__}'s are {sorted(names)}",
                              (user_location(),))
        # a setting that is a schedule here keeps it (the schedule sets it at each step); a
        # number lr under a ReduceLROnPlateau becomes the plateau's (Optimizer.__setattr__)
        def scheduled(name):
            now = getattr(self.optimizer, name, None)
            return callable(now) and getattr(now, "constant_value", None) is None \
                and not isinstance(now, ReduceLROnPlateau)
        settings = {n: v for n, v in settings.items() if not scheduled(n)}
        for name, value in settings.items():  # each by its rule, before anything changes
            if name in flags:
                _flag(f"load_state_dict: the setting {name}", value)
            elif not _is_number(value):
                raise GraphcError(f"load_state_dict: the setting {name} must be a finite "
                                  f"number, got {value!r}"[:200], (user_location(),))
            if name == "lr":
                _non_negative("load_state_dict: lr", value)
            else:
                self.optimizer.checked_setting(name, value)
        if set(behind) != set(self.parameters):
            raise GraphcError(f"load_state_dict: the state is for parameters "
                              f"{sorted(behind)}, this optimizer has {sorted(self.parameters)}",
                              (user_location(),))
        # the state is for the optimiser as the saved settings make it, as torch's
        # load_state_dict restores its param_groups' settings with the state: one holding a
        # momentum buffer and its "started" marks loads where the momentum is 0 now (both
        # aside), one saved with amsgrad (centered) brings its v_max (mean_g) and the flag
        view = copy.copy(self.optimizer)
        for name, value in settings.items():
            if name != "lr":  # (no slot follows it; under a plateau it would set the plateau's)
                setattr(view, name, value)
        expected, marks = {"count", *view.slots}, set(view.marks)
        # a slot a setting adds, saved where the saved settings leave it out (a momentum
        # buffer saved at momentum 0: step() keeps it aside, _state_for_settings): loaded,
        # aside as well
        aside = (set(state) - expected) & set(view.optional_slots) \
            if isinstance(state, dict) else set()
        # (a mark the optimiser keeps may be missing, one it does not keep left out below)
        if not isinstance(state, dict) or set(state) - marks - aside != expected - marks:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise GraphcError(f"load_state_dict: the state has {got}, "
                              f"{type(self.optimizer).__name__} keeps {sorted(expected)}",
                              (user_location(),))
        # counts are whole numbers >= 0: Adam's bias corrections are computed from them
        _count_setting("load_state_dict: the state's count", _whole_value(state["count"]))
        for n, b in behind.items():
            _count_setting(f"load_state_dict: behind[{n!r}]", _whole_value(b))
        # a mark saved before the optimiser kept it: from each parameter's saved count
        state = view.follow_marks(state, parameter_updates(
            _whole_value(state["count"]), {n: _whole_value(b) for n, b in behind.items()},
            self.parameters))
        self._follow_casts()  # (a cast since the last step: the state to compare with)
        # the state to compare with, as the saved settings make it (a slot they add, a
        # momentum from 0: as init makes it)
        own_state = self.state
        if set(view.slots) - set(own_state):
            own_state = {**view.init({n: p.data for n, p in self.parameters.items()}),
                         **own_state}
        own_state = view.follow_marks(own_state, self.updates)
        for slot in aside - set(own_state):  # (each as init makes it: like its parameter,
            # or 0-d, SGD's "started")
            own_state = {**own_state, slot: {
                n: np.zeros(() if slot in view.scalar_slots else p.data.shape,
                            view._slot_dtype(slot, p.data.dtype))
                for n, p in self.parameters.items()}}
        cast = {}  # (slot, name) -> a saved float slot in the parameter's float dtype
        for slot in (*view.slots, *sorted(aside)):  # checked now: step() failed on them, or
            # deep inside ("'list' object has no attribute 'get'")
            if not isinstance(state[slot], dict):
                raise GraphcError(f"load_state_dict: the state's {slot} must be a dict "
                                  f"parameter name -> array, got "
                                  f"{a_type(state[slot])}", (user_location(),))
            if set(state[slot]) != set(self.parameters):
                raise GraphcError(f"load_state_dict: the state's {slot} is for parameters "
                                  f"{sorted(state[slot], key=str)}, this optimizer has "
                                  f"{sorted(self.parameters)}", (user_location(),))
            for n in self.parameters:
                # the parameter's shape and dtype, or a slot's own (NAdam's 0-d mu_product);
                # a floating-point one of another float dtype is cast, as torch casts a
                # saved state to its parameters' dtype (a float32 run's state loaded after
                # model.double())
                saved, own = state[slot][n], np.asarray(own_state[slot][n])
                if not isinstance(saved, (np.ndarray, np.generic)) or \
                        np.shape(saved) != own.shape or (saved.dtype != own.dtype and not (
                            is_float(str(saved.dtype)) and is_float(str(own.dtype)))):
                    got = (f"{saved.dtype}{list(np.shape(saved))}"
                           if isinstance(saved, (np.ndarray, np.generic))
                           else a_type(saved))
                    raise GraphcError(f"load_state_dict: {slot} of {n} is {got}, expected "
                                      f"{own.dtype}{list(own.shape)}", (user_location(),))
                if saved.dtype != own.dtype:  # (checked below as cast: 1e5 is inf in float16)
                    with np.errstate(over="ignore"):
                        saved = cast[slot, n] = np.asarray(saved).astype(own.dtype)
                # as gc.Trainer refuses such a checkpoint: NaN weights at the next step
                if not np.isfinite(saved).all() or \
                        (slot in self.optimizer.non_negative_slots and (saved < 0).any()):
                    what = "a NaN or an infinity" if not np.isfinite(saved).all() else (
                        f"a negative value, which {type(self.optimizer).__name__}'s running "
                        "average of squared gradients never holds")
                    raise GraphcError(f"load_state_dict: {slot} of {n} holds {what} (the "
                                      "state was changed or damaged)", (user_location(),))
        self.state = copy.deepcopy(state)
        for (slot, n), value in cast.items():
            self.state[slot][n] = value
        self.behind = {n: int(_whole_value(b)) for n, b in behind.items()}
        for name, value in settings.items():
            setattr(self.optimizer, name, value)

    def __getattr__(self, name):  # (only for what is not BoundOptimizer's own)
        optimizer = self.__dict__.get("optimizer")
        if name == "lr" and optimizer is not None:
            # the number of the next step, as torch's group["lr"] (`g["lr"] *= 0.5`,
            # f"{opt.lr:.2e}"), not the schedule or ReduceLROnPlateau behind it; writing
            # still goes to the optimiser (under a plateau, the plateau goes on from it)
            return self.get_last_lr()[0]
        if optimizer is not None and name in _settings_of(optimizer):
            return getattr(optimizer, name)
        raise AttributeError(f"{type(self).__name__} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in self._OWN:
            object.__setattr__(self, name, value)
        elif name in _settings_of(self.optimizer):
            setattr(self.optimizer, name, value)  # (checked there)
            self._held.pop(name, None)  # (every group's now)
        else:  # an attribute here would change nothing the update reads
            raise GraphcError(f"{type(self.optimizer).__name__} has no setting {name!r} "
                              f"(its settings: {', '.join(_settings_of(self.optimizer))})",
                              (user_location(),))

    def add_param_group(self, param_group: dict) -> None:
        """torch's: more parameters to optimise, `{"params": ...}` (a Module, a dict name ->
        Parameter, a list or any iterable of them). graphc's bound optimiser is one group: the
        group's other settings must be the optimiser's own (a group with another lr, say, is
        one line: bind another optimiser to those parameters). Each new parameter starts at
        its own first update, as torch's (its state as init makes it); one from a list or an
        iterable is named by the next free number, as torch's state_dict numbers them."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise GraphcError(f"add_param_group: expected a dict with 'params', got "
                              f"{a_type(param_group)}", (user_location(),))
        settings = _settings_of(self.optimizer)
        for key, value in param_group.items():
            if key == "params":
                continue
            if key not in settings:
                raise GraphcError(f"add_param_group: {type(self.optimizer).__name__} has no "
                                  f"setting {key!r} (its settings: {', '.join(settings)})",
                                  (user_location(),))
            if not _same_setting(value, getattr(self, key)):
                raise GraphcError(f"add_param_group: the group's {key} is {value!r}, the "
                                  f"optimizer's {getattr(self, key)!r}; the param groups "
                                  "of a bound optimizer share their settings: bind another "
                                  "optimizer to these parameters (in gc.Trainer: "
                                  "gc.optim.Groups((opt1, names1), (opt2, names2)))",
                                  (user_location(),))
        params = param_group["params"]
        _refuse_set("add_param_group", params)
        if isinstance(params, Tensor):  # one tensor, as torch's [params] (iterated, its rows
            params = [params]  # were taken for parameters and it was never updated)
        first = len(self.parameters)  # (a list's: numbered on from the bound ones)
        if not isinstance(params, dict) and not _is_module(params):
            taken, numbered = set(self.parameters), {}
            for p in params:
                while str(first) in taken:
                    first += 1
                numbered[str(first)] = p
                first += 1
            params = numbered
        new = _named_tensors(self.optimizer, params, "add_param_group")
        held = {id(p): n for n, p in self.parameters.items()}
        for name, p in new.items():
            if id(p) in held:  # as torch's "some parameters appear in more than one group"
                raise GraphcError(f"add_param_group: the group's parameter {name} is this "
                                  f"optimizer's {held[id(p)]} already", (user_location(),))
            if name in self.parameters:
                raise GraphcError(f"add_param_group: this optimizer has a parameter named "
                                  f"{name!r} already (give the group as a dict of other "
                                  "names)", (user_location(),))
        fresh = self.optimizer.init({n: p.data for n, p in new.items()})
        for slot, values in self.state.items():
            if slot == "count":
                continue
            for n, p in new.items():  # (a slot held aside has no init: zeros like init's)
                values[n] = fresh[slot][n] if slot in fresh else np.zeros_like(
                    p.data, dtype=self.optimizer._slot_dtype(slot, p.data.dtype))
        count = int(self.state["count"])
        for n, p in new.items():  # (no update made yet: behind by every step so far)
            self.parameters[n], self.behind[n], self._dtypes[n] = p, count, p.data.dtype
        self._groups.append(list(new))

    @property
    def param_groups(self) -> list:
        """torch's: one group for bind()'s parameters and one for each add_param_group's,
        whose settings are the optimiser's (see _ParamGroup)."""
        return [_ParamGroup(self, i) for i in range(len(self._groups))]

    def get_last_lr(self) -> list:
        """The learning rate of the next step(), as torch's scheduler's: [lr]."""
        lr = self.optimizer.lr
        if isinstance(lr, ReduceLROnPlateau):
            return [lr.lr]
        return [float(lr(int(self.state["count"])))]

    def _assign(self, new):
        for n, value in new.items():
            self.parameters[n].data = value

    def zero_grad(self, set_to_none: bool = True):
        """Forget the gradients, as torch's: None by default (step() then leaves the
        parameter alone); set_to_none=False zeroes them instead (step() then updates with a
        zero gradient: Adam's moments decay, weight decay applies), in place as torch's."""
        from .nn import zero_grads
        zero_grads(self.parameters.values(), set_to_none)


# ---- helpers --------------------------------------------------------------------------------
def _is_module(value) -> bool:
    from .nn import Module
    return isinstance(value, (Module, Compiled))


def _named_tensors(optimizer, parameters, where) -> dict:
    """{name: tensor} of bind()'s (add_param_group's) parameters: a Module's (a compiled
    one's) named parameters, a dict's entries (None: an empty subtree, skipped) or a list's
    (one tensor's: as torch's add_param_group, a list of it), numbered; none, one listed
    twice, one that is not a tensor, or one that is not floating-point is one line."""
    from .nn import Module
    _refuse_set(where, parameters)
    if isinstance(parameters, Compiled):  # gc.compile(model): its Module's, as torch's
        parameters = parameters._module(where)  # (a model's `module` is its own)
    if isinstance(parameters, Tensor):  # one tensor: the one parameter (iterated, its rows
        parameters = [parameters]  # were taken, copies step() updated, it never)
    if isinstance(parameters, Module):
        named = dict(parameters.named_parameters())
    elif isinstance(parameters, dict):  # an entry of None is an empty subtree: skipped
        named = {n: p for n, p in parameters.items() if p is not None}
    else:
        named = {str(i): p for i, p in enumerate(parameters) if p is not None}
    if not named:  # as torch's "optimizer got an empty parameter list"
        raise GraphcError(f"{where}: no parameters to optimise (an empty list, dict or "
                          "Module)", (user_location(),))
    seen = {}
    for name, p in named.items():
        if id(p) in seen:  # torch warns and updates it twice; one state per tensor here
            raise GraphcError(f"{where}: {seen[id(p)]} and {name} are the same tensor; list "
                              "each parameter once", (user_location(),))
        seen[id(p)] = name
    for name, p in named.items():
        # a frozen one (requires_grad False) is taken, as torch.optim takes it: it has no
        # gradient, so step() leaves it alone until it is unfrozen
        if not isinstance(p, Tensor):
            raise GraphcError(f"{where}: {name} is {a_type(p)}, not a tensor "
                              "(gc.tensor(..., requires_grad=True) or a Parameter)",
                              (user_location(),))
    if isinstance(optimizer, Optimizer):  # (update's refusal, before any step)
        for name, p in named.items():
            optimizer._refuse_non_float(where, name, p.data)
    return named


def _refuse_set(where, parameters):
    """A set of parameters (or a frozenset) is one line, as torch's add_param_group refuses
    one: its order changes between runs, and a list's or iterable's parameters are named
    by their position ("0", "1", ...), the names their state is saved and restored under.
    (torch's constructor takes a set, listing it in whatever order it iterates.)"""
    if isinstance(parameters, (set, frozenset)):
        _fail(f"{where}: the parameters are {a_type(parameters)}, whose order changes between "
              "runs (their state is saved by position); give a list, a dict name -> "
              "Parameter or the Module")


def _grad_array(name, p):
    """Parameter `p`'s .grad as an array of its dtype: one line naming it where the gradient
    is not floating-point (numpy cast a complex one to real with only a warning, dropping its
    imaginary part; torch refuses such a .grad when it is assigned)."""
    g = np.asarray(p.grad)
    if g.dtype != p.data.dtype:
        if not is_float(g.dtype):
            _refuse_gradient_dtype("step", name, g.dtype, p.data.dtype)
        g = g.astype(p.data.dtype)
    return g


def _holds_parameters(value) -> bool:
    """Whether an optimiser's first argument is what torch's optimisers take there and
    graphc's take in bind(): a Module (gc.compile(model) too: callable, it is no lr
    schedule), an iterator (model.parameters(), itertools.chain of two, filter(...)) or any
    other iterable but a string (a list, tuple or dict of tensors or arrays, model.params(),
    torch's param-group dicts). An lr is a number or a schedule (callable); a 0-d array is a
    number too, and so is a 0-d tensor (graphc's, torch's), left to the lr's own check."""
    from .nn import Module
    if isinstance(value, Module) or (isinstance(value, Compiled)
                                     and isinstance(value.__wrapped__, Module)):
        return True
    return not (callable(value) or isinstance(value, (str, bytes, np.ndarray))
                or getattr(value, "ndim", None) == 0) and \
        isinstance(value, collections.abc.Iterable)


def _takes_lr_first(cls) -> bool:
    """Whether cls's constructor takes the lr first: graphc's own, or a user's subclass
    whose first parameter is `lr` (or who passes its *args on to one). One that takes
    torch's parameters first and binds them itself (`def __init__(self, params, lr=0.1)`)
    is the user's to call so."""
    if cls.__init__.__module__ == __name__:  # (optax's rules, gives_updates, are not checked)
        return True
    return _constructor_names(cls)[:1] == ["lr"]


def _constructor(cls):
    """The class whose `__init__` names cls's constructor's parameters, and those
    parameters less self: a user's `__init__(self, *args, **kwargs)` passes its arguments
    on, so the first constructor up its classes that names them."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = _parameters_of(init)
        if not parameters or parameters[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            return klass, parameters
    return object, []


def _parameters_of(init) -> list:
    """An __init__'s parameters less self, by inspect.signature: 15-65 us a read, by its
    signature's length and the machine's load (measured on a 2-core box: Adam's 34-63 us).
    Read only where the first argument holds parameters (a user's subclass that takes
    torch's params itself, about doubling its construction, ~35 -> ~70 us; torch's call,
    refused with the .bind() line), never for graphc's own construction or a step. Not
    cached: an lru_cache keyed on the function kept every user subclass whose __init__
    calls super() alive, through its closure cell (__class__); a weak-keyed cache would
    not, but this path is too rare to need one."""
    return list(inspect.signature(init).parameters.values())[1:]


def _constructor_names(cls, positional=False) -> list:
    """The names of cls's constructor's parameters, less self (with `positional`, those a
    positional argument can fill), as _constructor finds them."""
    return [p.name for p in _constructor(cls)[1] if not positional or p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]


def _torch_positions(cls) -> list:
    """The names torch's constructor of cls gives its positional arguments after params:
    graphc's, then torch's positional settings graphc has not (RMSprop's capturable,
    foreach and maximize, the last of which graphc takes by name). A user's subclass with
    its own constructor: its own names."""
    klass, _ = _constructor(cls)
    return _constructor_names(cls, positional=True) + list(
        _TORCH_POSITIONAL_EXTRAS.get(klass.__name__, ()) if klass.__module__ == __name__
        else ())


# torch 2.13's positional parameters after those graphc's class shares (graphc's own
# settings are keyword-only, so none of these lands on one)
_TORCH_POSITIONAL_EXTRAS = {
    "RMSprop": ("capturable", "foreach", "maximize", "differentiable"),
    "Adagrad": ("foreach",), "Adamax": ("foreach",),
}


def _parameters_given(cls, params, args, kwargs):
    """One line for torch's `SGD(model.parameters(), lr=0.01)` (or `params=`): graphc's
    form, with the settings given, a param group's own included."""
    # torch's positions after params, named as torch's; those graphc lacks (capturable,
    # foreach) are left out, maximize (RMSprop's ninth) is kept
    names = _constructor_names(cls)
    positions = _torch_positions(cls)
    settings = {name: value for name, value in zip(positions, args) if name in names}
    settings.update(kwargs)
    too_many = "" if len(args) <= len(positions) else (
        f"; and {cls.__name__} takes at most {_by_position(cls, positions)}, got "
        f"{len(args)}: give the others by name")
    differ = _group_settings(cls, params, settings)
    order = {name: i for i, name in enumerate(names)}  # (lr first)
    shown = ", ".join(f"{name}={settings[name]!r}"
                      for name in sorted(settings, key=lambda n: order.get(n, len(order))))
    cannot = "" if not differ else (
        f"; the param groups' different {', '.join(differ)} cannot be kept: each setting "
        "holds for every parameter" +
        (" (decay_mask= picks those that decay)" if "weight_decay" in differ else "") +
        f"; for settings per group, gc.Trainer takes gc.optim.Groups((gc.optim."
        f"{cls.__name__}(lr=...), names1), (gc.optim.{cls.__name__}(lr=...), names2))")
    where = "gc.optim." if cls.__module__ == __name__ else ""  # (not a user's subclass)
    raise GraphcError(f"graphc's optimisers take their parameters in .bind(): "
                      f"{where}{cls.__name__}({shown}).bind(model) (a Module, or a list or "
                      f"dict of its Parameters){cannot}{too_many}", (user_location(),))


def _group_settings(cls, params, settings) -> list:
    """torch's param groups ([{"params": ..., "lr": 0.1}, ...], in a list, a tuple or any
    other iterable, a generator too): a setting of cls's that every group gives the same
    value (a group without it has the constructor's) goes into `settings`, as torch's group
    value overrides the constructor's; the names of those the groups differ on, which one
    graphc optimiser cannot hold, are returned."""
    if isinstance(params, collections.abc.Iterator):  # (read once: the call is refused)
        params = list(params)
    if not (isinstance(params, (list, tuple)) and params and
            all(isinstance(g, dict) and "params" in g for g in params)):
        return []
    signature = {p.name: p for p in _constructor(cls)[1]}  # (a subclass's *args too)
    unset = object()
    differ = []
    for name in dict.fromkeys(k for g in params for k in g):
        if name == "params" or name not in signature:
            continue  # (a key graphc has no setting for: torch's foreach, initial_lr)
        default = settings.get(name, getattr(signature.get(name), "default", unset))
        if default is inspect.Parameter.empty:  # (a required lr: a group without one differs)
            default = unset
        values = [g.get(name, default) for g in params]
        if all(v is not unset and _same_setting(v, values[0]) for v in values):
            settings[name] = values[0]
        else:
            differ.append(name)
    return differ


def _same_setting(a, b) -> bool:
    """Whether two param groups' values of a setting are one: equal numbers whatever
    their type (np.float64(0.1) and 0.1), betas as a list or a tuple; a bool is not a
    number here (amsgrad True and a momentum of 1), and a schedule only itself."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same_setting, a, b))
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # (an array of several numbers)
        return a is b


def parameter_updates(count, behind: dict, names) -> dict:
    """{name: the updates made to that parameter} (torch's state[p]["step"]): the optimiser's
    `count` of steps less the parameter's lag, the steps it had no gradient at (`behind`,
    none where it has no entry)."""
    return {n: max(0, int(count) - int(behind.get(n, 0))) for n in names}


def number_settings(optimizer, names) -> dict:
    """The settings among `names` that are numbers now: an lr given as a number is a constant
    schedule, its number; a schedule or a ReduceLROnPlateau is none."""
    out = {}
    for name in names:
        value = getattr(optimizer, name, None)
        value = getattr(value, "constant_value", value)
        if _is_number(value):
            out[name] = value
    return out


def _flags_of(optimizer) -> dict:
    """The optimiser's flag settings (its flag_settings that it has, a user's subclass that
    set none has none), as bools."""
    return {name: bool(getattr(optimizer, name)) for name in
            getattr(optimizer, "flag_settings", ())
            if isinstance(getattr(optimizer, name, None), (bool, np.bool_))}


def _filled_slot(state, slot, value, params):
    """state with `slot` starting at `value` (Adagrad's initial accumulator) where init
    made zeros."""
    if value:  # in each zeros' dtype: numpy's bfloat16 + 0.1 is float32, which the
        # update then met ("add(bf16[3], f32[3])"), and a 0-d float32 one a numpy scalar
        state[slot] = unflatten(flatten(params)[1], [
            s if s is None else s + value if isinstance(s, Node) else np.full_like(s, value)
            for s in flatten(state[slot])[0]])
    return state


class _AttributeSettings(dict):
    """update(settings=) as gc.Trainer gives them: the optimiser's number settings that are
    not 0, and its schedules at the step, as values of the step. A number attribute's value
    is then 0 only where the attribute is, a guard of the plan (_IsZero), so the update
    needs no select on its being 0 (_with_momentum_off); a caller's own settings may be 0
    where the attribute is not, and get one."""


def _is_zero(value) -> bool:
    return bool(np.all(np.asarray(value) == 0))


class _IsZero:
    """A guard's view of an optimiser whose number settings are values of the step: its
    attribute `name` reads as whether that setting is 0 (the plan leaves out a momentum or a
    weight decay of 0; any other value it takes as an input)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def __getattr__(self, name):
        if name.startswith("__") or name == "optimizer":  # (copy and pickle probe dunders
            raise AttributeError(name)  # before `optimizer` is set: no recursion there)
        return self.of(getattr(self.optimizer, name))

    @staticmethod
    def of(value):
        """What the plan reads of a setting fed as a value of the step: whether it is 0, or
        that it is a schedule (its value may reach 0 at a step: SGD's and RMSprop's momentum
        select on it, _with_momentum_off, where a number attribute's plan does not)."""
        return "schedule" if callable(value) else _is_zero(value)

    def describe_change(self):
        return (f"{type(self.optimizer).__name__}: a number setting became 0, stopped being 0, "
                "or became a schedule or a number")


def _real(what, value):
    """A number setting as a float, by the layers' rule (F._number: torch's, a bool and a
    0-d array or tensor of any real dtype, bfloat16 too, taken as torch's optimisers take
    them); one GraphcError line naming it otherwise, not float()'s TypeError or ValueError
    (nor a string float() would take). The rule here refused True and a bfloat16 0-d
    array, which the layers took: one rule now. (A learning rate, which refuses a bool, is
    _learning_rate's.)"""
    try:
        return F._number(what, value)
    except OverflowError:  # (float() of an int such as 10**400: a raw OverflowError)
        _fail(f"{what} must be a finite number, got {_past_float64(value)}")


def _betas(name, betas):
    """(beta1, beta2), each a number in [0, 1) or a schedule of the step (a callable, such as
    one_cycle_momentum)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
            callable(b) or _a_number(b) for b in betas):  # (_real's rule)
        raise GraphcError(f"{name}: betas must be a pair of numbers (beta1, beta2), got "
                          f"{betas!r}", (user_location(),))
    return tuple(_fraction(f"{name}: {which}", _not_a_bool(f"{name}: {which}", b))
                 for which, b in zip(("beta1", "beta2"), betas))


def _not_a_bool(name, value):
    """`value`, an optimiser's number setting (betas, eps, weight_decay, momentum, ...), unless
    it is a bool: refused in one line naming the setting, as lr= refuses it
    (_learning_rate). Adam(betas=(True, 0.9)) was beta1 1.0, refused as 'got 1.0', and
    eps=True or momentum=True were 1.0, as torch's optimisers take them (not its betas): a
    slip, not a setting."""
    if _is_boolean(value):
        _fail(f"{name} must be a number, not a bool, got {value!r}")
    return value


def _a_number(value) -> bool:
    """Whether _real takes `value` as a number: an int past float64's range (10**400) is one,
    which _real refuses in its own line (F._as_number's raw OverflowError here before)."""
    try:
        return F._as_number(value) is not None
    except OverflowError:
        return True


def _fraction(name, value, one_included=False):
    """A number setting in [0, 1) (a beta), or [0, 1] with one_included (RMSprop's alpha),
    or a schedule of the step."""
    if callable(value):
        return value
    value = _real(name, value)
    if not (0.0 <= value < 1.0 or (one_included and value == 1.0)):
        raise GraphcError(f"{name} must be in [0, 1{']' if one_included else ')'}, got "
                          f"{value}", (user_location(),))
    return value


def _positive(name, value):
    value = _schedule_finite(name, value)  # (one_cycle's factors: never a schedule)
    if value <= 0:
        raise GraphcError(f"{name} must be > 0, got {value}", (user_location(),))
    return value


def _finite(name, value):
    if callable(value):
        return value
    value = _real(name, value)
    if not math.isfinite(value):
        raise GraphcError(f"{name} must be a finite number, got {value}", (user_location(),))
    return value


def _flag(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise GraphcError(f"{name} must be True or False, got {value!r}", (user_location(),))
    return bool(value)


def _whole_value(value):
    """A 0-d integer array (a saved count) as an int, for _count_setting."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value)
    return value


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _is_number(value) -> bool:
    return is_real(value) and math.isfinite(value)


def _schedule_non_negative(name, value):
    """A schedule's number argument that must be >= 0: finite, and not a schedule itself
    (which an optimiser's setting may be). _schedule_finite: one that may be negative."""
    return _non_negative(name, _real(name, value))


def _schedule_lr(name, value):
    """A schedule's learning rate (its peak, start, end): _schedule_non_negative's, but not a
    bool, as an optimiser's lr (_learning_rate): multistep(True, ...) was an lr of 1.0."""
    if _is_boolean(value):
        _fail(f"{name} must be a finite number >= 0, got {value!r}")
    return _schedule_non_negative(name, value)


def _schedule_finite(name, value):
    """A schedule's number argument that may be negative (a decay rate, a momentum): finite,
    and not a schedule itself, which _finite passes on (an optimiser's setting may be one)."""
    return _finite(name, _real(name, value))


def _non_negative(name, value):
    if callable(value):  # a schedule of the step (see Optimizer.hyperparameters)
        return value
    value = _real(name, value)
    if not (math.isfinite(value) and value >= 0):
        raise GraphcError(f"{name} must be a finite number >= 0, got {value}",
                          (user_location(),))
    return value


# each number setting's rule (Optimizer.checked_setting); dampening any number, as torch's
_SETTING_RULES = {
    "weight_decay": _non_negative, "momentum": _non_negative, "eps": _non_negative,
    "lr_decay": _non_negative, "momentum_decay": _non_negative, "dampening": _finite,
    "beta1": _fraction, "beta2": _fraction,
    "alpha": lambda name, v: _fraction(name, v, one_included=True),
}


def _clip_norm(name, value):
    """A gradient clip's max norm: None (no clipping) or a finite number > 0. Zero is
    refused: clipping to norm 0 zeroes every gradient, as torch's clip_grad_norm_(0) does,
    which nobody means (nanoGPT's grad_clip=0 means no clipping)."""
    if value is None:
        return None
    value = _non_negative(name, _not_a_bool(name, value))  # (clip_norm=True: 1.0 before)
    if value == 0:
        raise GraphcError(f"{name}=0 would zero every gradient; pass None for no clipping",
                          (user_location(),))
    return value


def _float64(x):
    if isinstance(x, (bool, np.bool_)):
        raise GraphcError("a learning-rate schedule returned a bool", (user_location(),))
    if isinstance(x, (int, float, np.number)):
        return float(x)
    return F.cast(x, "float64")


def _leaves(tree):
    return flatten(tree)[0]


def _refuse_gradient_dtype(who, name, dtype, p_dtype):
    """One line naming parameter `name`, whose gradient has a dtype that is not
    floating-point (`p_dtype`: its parameter's, where known)."""
    its = "" if p_dtype is None else f", its parameter {p_dtype}"
    whose = f" of parameter {name!r}" if name else ""  # (a bare array: global_norm(g))
    raise GraphcError(f"{who}: the gradient{whose} has dtype {dtype}{its}; a gradient must be "
                      "floating-point", (user_location(),))


def _unheld_dtype(x):
    """The dtype of leaf `x` where graphc cannot hold it (complex, strings), else None."""
    if x is None or isinstance(x, (Node, Tensor)):  # (whose dtypes it holds)
        return None
    dtype = F._dtype(x)
    try:
        as_dtype(dtype)
    except UnsupportedDtype:
        return dtype
    return None


def _zeros_like(p):
    if isinstance(p, Node):
        return F.zeros_like(p)
    return np.zeros(np.shape(p), np.asarray(p).dtype if not isinstance(p, Tensor) else p.dtype)


def _zeros_like_scalar(leaves, dtype="int64"):
    if any(isinstance(p, Node) for p in leaves):
        return F.zeros((), dtype)
    return np.zeros((), dtype)


def _is_builtin_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _gradient_numbers_like(grads, params, where="update"):
    """Python-number gradient leaves as 0-d arrays of their parameter's float dtype: weakly
    typed, as an eager op takes a Python float (a float32 parameter's gradient 1.0 is
    float32, not float64 meeting float32). Other trees as they are. `where` names the
    update in the pytree's line ("Adam.update", as the update's own line names it)."""
    g_leaves, _, _ = flatten(grads)
    if not any(_is_builtin_number(g) for g in g_leaves):
        return grads
    p_leaves, structure, _ = flatten(params)
    g_leaves = leaves_like(structure, grads, f"{where}: the gradients' pytree",
                           "the parameters'")
    dtypes = [getattr(p, "dtype", None) for p in p_leaves]
    return unflatten(structure, [
        np.asarray(g, d if d is not None and is_float(d) else None) if _is_builtin_number(g) else g
        for g, d in zip(g_leaves, dtypes)])


def _number_as_array(x):
    """A Python number leaf as the 0-d numpy array it stands for (float64, int64), as optax
    takes one; any other leaf as it is."""
    return np.asarray(x) if _is_builtin_number(x) else x


def _numbers_as_arrays(tree):
    leaves, structure, _ = flatten(tree)
    return unflatten(structure, [_number_as_array(x) for x in leaves])


def _lift_tree(tree):
    """Numpy leaves (and Python numbers) as eager Tensors (so operators run graphc's ops);
    whether any was lifted."""
    leaves, structure, _ = flatten(tree)
    leaves = [_number_as_array(x) for x in leaves]
    lifted = any(isinstance(x, (np.ndarray, np.generic)) for x in leaves)
    out = [Tensor(x) if isinstance(x, (np.ndarray, np.generic)) else x for x in leaves]
    return unflatten(structure, out), lifted


def _unlift(x):
    return x.data if isinstance(x, Tensor) and not x.requires_grad else x


def _unlift_tree(tree):
    leaves, structure, _ = flatten(tree)
    return unflatten(structure, [_unlift(x) for x in leaves])


def _tracks_grad(tree):
    return any(isinstance(x, Tensor) and x.requires_grad for x in _leaves(tree))


# optax's lowercase names live in their own module, built on Optimizer above: read from it at
# first use (PEP 562), as importing it here would make a module-level import cycle
_OPTAX_NAMES = ("GradientTransformation", "apply_updates", "sgd", "adam", "adamw", "rmsprop",
                "adagrad", "adamax", "nadam", "lion")


def __getattr__(name):
    if name == "Groups":  # (graphc/optim_groups.py: several optimisers, one per param group)
        from .optim_groups import Groups
        return Groups
    if name in _OPTAX_NAMES:
        from . import optax_style
        return getattr(optax_style, name)
    raise AttributeError(f"module 'graphc.optim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_OPTAX_NAMES) | {"Groups"})
