"""Mixed-precision training: autocast and dynamic loss scaling (PyTorch's torch.amp).

    scaler = gc.amp.LossScaler()                # float16 training; bfloat16 needs none
    amp = scaler.init()                         # {"scale": f32[], "good_steps": i64[]}

    @gc.compile(donate_argnums=(0, 1))
    def step(params, state, amp, x, y):
        def loss_fn(p):
            with gc.autocast("float16"):        # half activations, float32 loss
                return gc.cross_entropy(model.apply(p, x), y)
        loss, grads = gc.value_and_grad(lambda p: scaler.scale(loss_fn(p), amp))(params)
        grads, finite, amp = scaler.unscale(grads, amp)
        new_params, new_state = opt.update(grads, state, params)
        params, state = scaler.select(finite, (new_params, new_state), (params, state))
        return loss / amp_scale_before, params, state, amp

(`gc.Trainer(..., precision="fp16-mixed")` does all of this.) float16 gradients of a
float32 loss underflow to zero below 6e-8; the loss is multiplied by a large scale before
the backward pass and the float32 gradients divided by it after. As torch.amp.GradScaler:
the scale starts at 2**16; a step whose gradients hold an Inf or a NaN is skipped (parameters
and optimiser state unchanged) and halves the scale; `growth_interval` good steps in a row
double it. The test for "finite" is the gradients' global norm (an Inf or NaN anywhere makes
it one), which training computes anyway; a norm past float32's range (about 1.8e19) counts
as an overflow too, where GradScaler, which tests each element, would take the step.
`LossScaler(enabled=False)`, as GradScaler's, passes everything through (scale 1.0, every
step taken).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops.precision import PRECISIONS, autocast, precision_dtype  # noqa: F401
from ir.types import is_float, is_half
from .optim import _count_setting, _finite, _flag, _real, global_norm
from .tracing import flatten, leaves_like, unflatten

FLOAT32_MAX = float(np.finfo(np.float32).max)


# The smallest loss scale: float32's smallest normal number. Below it (a subnormal) 1/scale,
# by which the gradients are unscaled, is Inf, so every step overflows and training stops as
# diverged with a hint to lower the learning rate
SMALLEST_LOSS_SCALE = float(np.finfo(np.float32).tiny)


class LossScaler:
    """Dynamic loss scaling, functional (optax-style): the state is two scalars that a
    compiled step takes and returns, and a checkpoint saves."""

    STATE_KEYS = ("scale", "good_steps")  # init()'s (a Trainer checkpoint's member names)
    # the settings that decide how a resumed scale goes on, which a Trainer checkpoint records
    # (header field loss_scaler_settings) as GradScaler.state_dict holds them beside its scale
    # and growth tracker; init_scale is no longer read once the scale is restored
    RESUMED_SETTINGS = ("growth_factor", "backoff_factor", "growth_interval")
    enabled = True  # (a scaler pickled before `enabled` was kept)

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 enabled: bool = True):
        init_scale = _real("LossScaler: init_scale", init_scale)  # (inf: refused below)
        if not init_scale > 0:
            raise GraphcError(f"LossScaler: init_scale must be > 0, got {init_scale}",
                              (user_location(),))
        if not init_scale >= SMALLEST_LOSS_SCALE:
            raise GraphcError(f"LossScaler: init_scale {init_scale} is below float32's "
                              f"smallest normal number {SMALLEST_LOSS_SCALE:.4g}; 1/scale "
                              "would be Inf and every step would overflow", (user_location(),))
        growth_interval = self.checked_setting("growth_interval", growth_interval)
        growth_factor = self.checked_setting("growth_factor", growth_factor)
        backoff_factor = self.checked_setting("backoff_factor", backoff_factor)
        if not init_scale <= FLOAT32_MAX:  # GradScaler: "cannot be converted ... overflow"
            raise GraphcError(f"LossScaler: init_scale {init_scale} is past float32's largest "
                              f"value {FLOAT32_MAX:.4g}; an Inf scale would skip every step",
                              (user_location(),))
        self.init_scale, self.growth_factor = float(init_scale), float(growth_factor)
        self.backoff_factor, self.growth_interval = float(backoff_factor), int(growth_interval)
        # torch's GradScaler(enabled=False): a pass-through, so that one training loop serves
        # float32 and float16 runs. The scale is 1.0 (its get_scale()) and stays so, the loss
        # and the gradients are as given, and every step is taken (its step() calls the
        # optimiser's, an Inf gradient included)
        self.enabled = bool(_flag("LossScaler: enabled", enabled))

    @staticmethod
    def checked_setting(name: str, value, what: str | None = None):
        """One of RESUMED_SETTINGS by the constructor's rule (growth_interval a whole number
        >= 1, growth_factor > 1, 0 < backoff_factor < 1, both finite numbers), as an int or a
        float; one GraphcError line naming it as `what` (`LossScaler: NAME`) otherwise. A
        checkpoint header's recorded settings are read by it too (check_loss_scaler)."""
        what = what or f"LossScaler: {name}"
        if name == "growth_interval":
            return _count_setting(what, value, 1)
        number = _finite(what, value)
        if name == "growth_factor" and not number > 1:
            raise GraphcError(f"{what} must be > 1, got {value!r}", (user_location(),))
        if name == "backoff_factor" and not 0 < number < 1:
            raise GraphcError(f"{what} must be in (0, 1), got {value!r}", (user_location(),))
        return number

    def settings(self) -> dict:
        """The settings that decide the scale's course (JSON values): what data-parallel
        ranks must agree on, each of them stepping its own copy of the scale (a disabled
        one's, whose scale stays 1.0, but `enabled`: none has an effect)."""
        return {"enabled": self.enabled, "init_scale": self.init_scale,
                "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval}

    def init(self) -> dict:
        return {"scale": np.asarray(self.init_scale if self.enabled else 1.0, np.float32),
                "good_steps": np.asarray(0, np.int64)}

    def scale(self, loss, state):
        """The loss times the current scale (differentiate this one). A half-precision loss
        is scaled in float32, as GradScaler's `loss * scale` promotes it: in float16 the
        scaled loss overflows past 65504 on steps whose gradients are finite (and 2**16, the
        initial scale, is Inf itself). Its gradient is the scale in the loss's dtype, so
        gradients that overflow still make the step skipped.

        As GradScaler.scale's `outputs`, `loss` may be a list or tuple of losses (nested at
        any depth), each scaled so, given back in a container of its type, or another
        iterable of them (a generator), given back as an iterator of the scaled losses
        (torch's is a lazy map; each loss here is checked and scaled at the call, so a bad
        one is refused where it is passed). Disabled, `loss` comes back as it is, a list the
        very list, as GradScaler(enabled=False)'s."""
        state = _scaler_state("LossScaler.scale", state)
        return self._scaled(loss, state, "")

    def _scaled(self, loss, state, where):
        """scale() of `loss`, a loss or a container or iterable of losses at `where` (its
        index path, [0][1], for messages)."""
        if isinstance(loss, (list, tuple)) or _iterable_of_losses(loss):
            given = loss if isinstance(loss, (list, tuple)) else list(loss)
            scaled = [self._scaled(x, state, f"{where}[{i}]") for i, x in enumerate(given)]
            if not self.enabled and given is loss:
                return loss
            if isinstance(loss, tuple) and hasattr(loss, "_fields"):  # (a namedtuple, which
                return type(loss)(*scaled)  # torch's type(val)(map) fails to build)
            return type(loss)(scaled) if given is loss else iter(scaled)
        _float_value(f"LossScaler.scale: the loss{where}", loss)
        if not self.enabled:
            return loss
        if is_half(loss.dtype):
            loss = F.cast(loss, "float32")
        return loss * F.cast(state["scale"], loss.dtype)

    def unscale(self, grads, state):
        """(grads / scale, finite: a bool scalar, the next scaler state). The global norm of
        the unscaled gradients decides `finite`."""
        state = _scaler_state("LossScaler.unscale", state)
        leaves, structure, names = flatten(grads)
        for name, g in zip(names, leaves):  # (named by its path: a position among the
            # leaves of nested dicts is no name the user knows)
            _float_value(f"LossScaler.unscale: gradient {name}" if name else
                         "LossScaler.unscale: the gradient", g)
        if not self.enabled:  # (finite: every step is taken)
            return grads, np.asarray(True), state
        for name, g in zip(names, leaves):
            # as torch's GradScaler.unscale_ ("Attempting to unscale FP16 gradients"): a
            # float16 gradient is of a float16 parameter, whose update rounds away what the
            # scale kept from underflowing, and, scaled in float16, it overflows at 65504
            # where a float32 one would not (graphc unscaled it and trained on, silently)
            if g is not None and np.dtype(g.dtype) == np.float16:
                what = f"gradient {name}" if name else "the gradient"
                raise GraphcError(f"LossScaler.unscale: {what} is float16: loss scaling needs "
                                  "float32 parameters (master weights), autocast computing in "
                                  "float16 (torch's GradScaler refuses to unscale FP16 "
                                  "gradients too)", (user_location(),))
        inverse = 1.0 / state["scale"]
        leaves = [None if g is None else g * F.cast(inverse, g.dtype) for g in leaves]
        grads = unflatten(structure, leaves)
        finite = F.cast(global_norm(grads), "float32") <= FLOAT32_MAX  # False for Inf, NaN
        return grads, finite, self.update(finite, state)

    def update(self, finite, state) -> dict:
        """The scaler state after a step: halved on an overflow, doubled after
        growth_interval good steps in a row (disabled: as it was)."""
        if not self.enabled:
            return state
        scale, good = state["scale"], state["good_steps"] + 1
        grow = good >= self.growth_interval
        # as GradScaler (torch._amp_update_scale_): a scale whose growth would overflow
        # float32 stays as it is; an Inf scale would make every later step Inf or NaN (Inf * 0)
        # and so skipped, and halving Inf gives Inf again: training would stall for good
        fits = scale <= FLOAT32_MAX / self.growth_factor
        grown = F.where(grow, F.where(fits, scale * self.growth_factor, scale), scale)
        return {"scale": F.where(finite, grown, scale * self.backoff_factor),
                "good_steps": F.where(finite, F.where(grow, 0, good), 0)}

    @staticmethod
    def select(finite, updated, kept):
        """`updated` where the step's gradients were finite, else `kept` (a skipped step),
        leaf by leaf over two pytrees of the same structure."""
        new, structure, names = flatten(updated)
        # kept's leaves by updated's keys, as an optimiser's update matches its state to the
        # parameters (a dict's keys in another order, or an OrderedDict beside a dict, are
        # the same things; zip had paired them by position silently); else one line naming
        # where they differ
        old = leaves_like(structure, kept, "LossScaler.select: kept", "updated")
        for name, b in zip(names, old):
            if b is None:  # (a None in kept stands for a subtree of leaves_like's)
                raise GraphcError(f"LossScaler.select: kept has None at {name or 'its root'} "
                                  "where updated has a value", (user_location(),))
        return unflatten(structure, [F.where(finite, a, b) for a, b in zip(new, old)])


def _iterable_of_losses(x) -> bool:
    """Whether scale() takes `x` as an iterable of losses (GradScaler.scale's outputs): an
    iterable that is no array (an array, a tensor and a traced value have a dtype), no text
    and no mapping (whose iteration gives its keys: torch's scale refuses them)."""
    return isinstance(x, Iterable) and not hasattr(x, "dtype") \
        and not isinstance(x, (str, bytes, Mapping))


def _float_value(what, x):
    """x, a float array, tensor or traced value; one line naming `what` otherwise (a Python
    number or list had no dtype: an AttributeError; an integer loss was scaled in its own
    dtype, a scale below 1 making it 0)."""
    try:
        dtype = np.dtype(getattr(x, "dtype"))
    except (AttributeError, TypeError):  # (no dtype, or another library's: a torch tensor)
        dtype = None
    if dtype is None or not is_float(dtype):
        library = type(x).__module__.split(".")[0]
        got = f"dtype {dtype}" if dtype is not None else type(x).__name__ \
            if library == "builtins" else f"{library}.{type(x).__name__}"
        raise GraphcError(f"{what} must be a float array, tensor or traced value, got {got}",
                          (user_location(),))


def _scaler_state(what, state):
    """The scaler state init() made (a dict with scale and good_steps); one line otherwise,
    not a KeyError."""
    if not isinstance(state, dict) or any(k not in state for k in LossScaler.STATE_KEYS):
        got = f"a dict of keys {sorted(map(str, state))}" if isinstance(state, dict) \
            else type(state).__name__
        raise GraphcError(f"{what}: state must be the dict LossScaler.init() returns (keys "
                          f"{' and '.join(LossScaler.STATE_KEYS)}), got {got}",
                          (user_location(),))
    return state
