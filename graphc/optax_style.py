"""optax's lowercase optimisers: gc.optim.sgd, adam, adamw, rmsprop, adagrad, adamax, nadam and
lion, with optax's argument names, defaults, formulas (its eps placements, its nadam) and
contract: `updates, state = tx.update(grads, state, params)`, then
`params = gc.optim.apply_updates(params, updates)`. Each is a GradientTransformation over a
private rule built on gc.optim's Optimizer (its pytrees, schedules, eager and traced values),
whose per-leaf update is optax's `u * -lr` itself, not a difference of parameters."""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.graph import Node
from ir.ops import api as F
from ir.types import broadcast_shapes, is_float
from runtime.eager import Tensor

from .optim import (Optimizer, _as_schedule, _filled_slot, _flag, _float64, _fraction,
                    _non_negative, _not_a_bool)
from .tracing import flatten, leaves_like, unflatten


class GradientTransformation:
    """optax's contract, which gc.optim.sgd, adam, adamw, rmsprop, adagrad, adamax, nadam and
    lion return: `state = tx.init(params)`, `updates, state = tx.update(grads, state,
    params)`, then `params = gc.optim.apply_updates(params, updates)`. The updates are what
    to add to the parameters (the learning rate's minus sign included), where graphc's
    Optimizer.update returns the new parameters: optax code run with these names adds them
    once. The formulas are optax's (its eps placements, its nadam), not torch's."""

    def __init__(self, rule: "_OptaxRule"):
        self.name, self._rule = rule.optax_name, rule

    def init(self, params) -> dict:
        """{"count": int32 0-d, slot: pytree like params}: optax's state, as a dict (its
        count int32 as optax's, saturating at int32's max; an int64 count, a state saved
        before graphc kept it int32, is taken and continued as int32)."""
        return self._rule.init(params)

    def update(self, grads, state, params=None):
        """-> (updates, new state), each update in its gradient's place (None where the
        gradient is None). params are read only by a weight decay (adamw's, lion's)."""
        if params is None:
            if self._rule.weight_decay:  # optax's ValueError, as one line
                raise GraphcError(f"gc.optim.{self.name}.update: its weight decay needs the "
                                  "parameters: update(grads, state, params)",
                                  (user_location(),))
            # read for the pytree, shapes and dtypes only: a slot's, which init made in the
            # parameters' dtypes (a float64 gradient of a float32 parameter is then cast to
            # it, as optax's update is float32; taking the gradients as the parameters met
            # the float32 state with float64: "add(f64[2], f32[2])"); without a slot (sgd
            # without momentum) the gradients, whose updates apply_updates casts
            slots = self._rule.slots
            if slots and isinstance(state, dict) and slots[0] in state:
                params = state[slots[0]]
                self._check_grads_like_state(grads, params, slots[0])
            else:
                params = grads
        return self._rule.update(grads, state, params)

    def _check_grads_like_state(self, grads, slot_tree, slot):
        """Without params, the gradients against the state's slot the parameters are read
        from, one line naming the state: the update's own lines named parameters the call
        was not given ("the gradient of parameter 'a' has shape (3,), its parameter (3,
        1)", "the gradients' pytree does not match the parameters'")."""
        s_leaves, structure, names = flatten(slot_tree)
        where = f"gc.optim.{self.name}.update"
        g_leaves = leaves_like(structure, grads, f"{where}: the gradients' pytree",
                               f"the state's {slot!r} (no params given)")
        for name, g, s in zip(names, g_leaves, s_leaves):
            if g is not None and s is not None and hasattr(g, "shape") and \
                    tuple(F._shape(g)) != tuple(F._shape(s)):
                raise GraphcError(f"{where}: the gradient of {name!r} has shape "
                                  f"{tuple(F._shape(g))}, the state's {slot!r} "
                                  f"{tuple(F._shape(s))} (no params given: a state init made "
                                  "for other parameters?)", (user_location(),))

    def __repr__(self):
        return f"gc.optim.{self.name}(...)"

    @property
    def capitalised(self) -> str:
        """The matching graphc optimiser (PyTorch-style: update returns the new
        parameters), which gc.Trainer and .bind() take: gc.optim.Adam for adam, ..."""
        return f"gc.optim.{_CAPITALISED[self.name]}"


# the graphc optimiser of each lowercase name (torch-style arguments and defaults; some
# formulas differ from optax's: rmsprop's and adagrad's eps, nadam's momentum schedule)
_CAPITALISED = {"sgd": "SGD", "adam": "Adam", "nadam": "NAdam", "adamw": "AdamW",
                "rmsprop": "RMSprop", "adagrad": "Adagrad", "adamax": "Adamax", "lion": "Lion"}


def apply_updates(params, updates):
    """optax.apply_updates: each parameter plus its update, in the parameter's dtype. A None
    update (a parameter without a gradient) leaves the parameter as it is."""
    p_leaves, structure, names = flatten(params)
    u_leaves = leaves_like(structure, updates, "apply_updates: the updates' pytree",
                           "the parameters'")
    for name, p, u in zip(names, p_leaves, u_leaves):
        if u is not None and p is not None and (isinstance(u, bool) or not isinstance(
                u, (Node, Tensor, np.ndarray, np.generic, int, float))):
            # (a list was numpy's array, a string numpy's error naming a ufunc)
            raise GraphcError(f"apply_updates: the update of parameter {name!r} is "
                              f"{a_type(u)}, not an array or a number",
                              (user_location(),))
        # p + u broadcast an update of another shape: a (3, 2) update made a (2,) parameter
        # (3, 2) without a word, and one that cannot broadcast was numpy's ValueError; one
        # that broadcasts to the parameter's shape (a number, a (1,) row) is added, as optax's
        if u is not None and p is not None and not _broadcasts_to(F._shape(u), F._shape(p)):
            raise GraphcError(f"apply_updates: the update of parameter {name!r} has shape "
                              f"{tuple(F._shape(u))}, its parameter {tuple(F._shape(p))}",
                              (user_location(),))
    return unflatten(structure, [p if u is None or p is None else _added(p, u)
                                 for p, u in zip(p_leaves, u_leaves)])


def _broadcasts_to(shape, target) -> bool:
    """Whether an array of `shape` broadcasts to `target` without changing it (symbolic
    dimensions too: numpy's broadcast_shapes asked a `polymorphic_shapes` dimension for
    its value while tracing)."""
    shape, target = tuple(shape), tuple(target)
    # (the same shape, every call of a training loop's: its broadcast took ~1 us a leaf)
    return shape == target or broadcast_shapes(shape, target) == target


def _added(p, u):
    """p + u in p's dtype (a float64 update of a float32 parameter keeps it float32), as
    optax's `(p + u).astype(p.dtype)`, added in the dtype _added_in picks, the same eager
    and compiled: a traced or eager array's add takes one dtype, so they are cast to it
    first (a compiled apply_updates of float64 updates to float32 parameters failed:
    'add(f32[2], f64[2])')."""
    dtype = np.dtype(F._dtype(p))
    numbers = (np.ndarray, np.generic, float, int)
    if F._dtype(u) == dtype:  # (every update of an optimiser's: one add)
        total = p + u
    else:
        wide = _added_in(dtype, u)
        if isinstance(p, numbers) and isinstance(u, numbers):
            total = np.asarray(p, wide) + np.asarray(u, wide)
        else:
            total = F.cast(p, wide) + F.cast(u, wide)
    if isinstance(total, numbers):
        return np.asarray(total, dtype)
    return total if F._dtype(total) == dtype else F.cast(total, dtype)


def _added_in(dtype, u) -> np.dtype:
    """The dtype an update `u` of another dtype is added to a parameter of `dtype` in: the
    parameter's where u is weakly typed as every graphc op takes it (a Python number or a
    numpy scalar: registry.is_weak_scalar; a weak float on an integer parameter aside),
    else the two dtypes' promoted one, as numpy's and optax's with an array update. The
    parameter is never weak here, its dtype being the result's: a numpy-scalar parameter,
    which a compiled function traces as a weak input (transforms._is_python_number), was
    added as two weak numbers are, in the wider dtype (np.float32(1.5) plus a Python
    float in float64), where numpy's eager add was float32."""
    u_dtype = np.dtype(F._dtype(u))
    if F._weakly_typed(u) and (is_float(dtype) or not is_float(u_dtype)):
        return dtype
    if is_float(dtype) and is_float(u_dtype):
        return F._result_type([dtype, u_dtype])  # (bfloat16 with float16: float32)
    return np.result_type(dtype, u_dtype)


_INT32_MAX = int(np.iinfo(np.int32).max)


def _int32_count(count):
    """A state's 0-d integer count as the int32 optax keeps: an int64 one (init's before
    graphc kept optax's, or one saved by the user's code) cast, held at int32's max past it
    (where optax's count saturated). Anything else (an eager negative count too) as it is,
    for _check_count to refuse in its own dtype."""
    if not isinstance(count, (Node, Tensor)) or tuple(F._shape(count)) != () or \
            np.dtype(F._dtype(count)).kind not in "iu" or F._dtype(count) == np.int32 or \
            isinstance(count, Tensor) and int(count.data) < 0:
        return count
    # (clipped below too: a traced count's sign is not checked, and a cast would wrap it)
    low = int(np.iinfo(np.int32).min)
    return F.cast(F.maximum(F.minimum(count, _INT32_MAX), low), "int32")


class _OptaxRule(Optimizer):
    """An optax update rule behind a GradientTransformation: _update_leaf returns the update,
    `u * -lr` as optax's scale_by_learning_rate makes it. `decay_mask` is optax's `mask`: a
    pytree of flags (a prefix of the parameters': a flag may stand for a subtree), or a
    function of the parameters' pytree returning one."""

    gives_updates = True
    count_dtype = "int32"  # as optax's init (jnp.int32)

    def __init__(self, name, learning_rate, weight_decay=0.0, mask=None):
        self.optax_name = name  # sgd, adam, ...: its messages name it gc.optim.<name>
        super().__init__(learning_rate, weight_decay, mask)

    @property
    def _display_name(self) -> str:
        return f"gc.optim.{self.optax_name}"

    def _state_origin(self) -> str:
        return f"from {self._display_name}(...).init"

    def _update(self, grads, state, params, step=None):
        if isinstance(state, dict) and "count" in state:
            state = {**state, "count": _int32_count(state["count"])}
        return super()._update(grads, state, params, step)

    def _next_count(self, count):
        """optax's numerics.safe_int32_increment: count + 1, held at int32's max where
        count + 1 wrapped to int32's min (a negative count, refused at the next update)."""
        return F.minimum(count, _INT32_MAX - 1) + 1

    def _set_momentum(self, momentum):
        """optax's optional momentum (None: none): a trace slot only when one is given."""
        self.has_trace = momentum is not None
        self.momentum = 0.0 if momentum is None else momentum

    def _scalars(self, count, step):
        return {"-lr": -_float64(self.lr(step))}

    def _bias_corrections(self, count, **decays):
        """1 - decay^t for update t (1-based) of each named decay setting, as optax's
        bias_correction."""
        t = F.cast(count, "float64") + 1.0
        return {name: 1.0 - F.pow(self.hyper(setting), t + shift)
                for name, (setting, shift) in decays.items()}

    def _decay_flags(self, names, leaves, structure):
        mask = self.decay_mask
        if not self.weight_decay or mask is None:
            return super()._decay_flags(names, leaves, structure)
        if callable(mask):
            mask = mask(unflatten(structure, leaves))
        # as optax's, a flag may stand for a whole subtree (the mask is a prefix of the
        # parameters' pytree)
        return [bool(f) for f in leaves_like(structure, mask, f"{self._display_name}: mask",
                                             "the parameters' pytree", prefix=True)]


class _Trace(_OptaxRule):
    """optax.sgd: trace = g + momentum * trace (a slot only with a momentum); nesterov steps
    along g + momentum * trace."""

    hyperparameters = ("weight_decay", "momentum")

    def __init__(self, learning_rate, momentum, nesterov):
        super().__init__("sgd", learning_rate)
        self._set_momentum(momentum)
        self.nesterov = nesterov

    @property
    def slots(self):
        return ("trace",) if self.has_trace else ()

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        if not self.has_trace:
            return g * scalars["-lr"], {}
        trace = g + slots["trace"] * scalars["momentum"]
        u = g + trace * scalars["momentum"] if self.nesterov else trace
        return u * scalars["-lr"], {"trace": trace}


class _ScaleByAdam(_OptaxRule):
    """optax.scale_by_adam (+ add_decayed_weights: adamw): u = mu_hat / (sqrt(nu_hat +
    eps_root) + eps); nesterov (nadam) takes mu_hat = b1 mu / (1 - b1^(t+1)) + (1 - b1) g /
    (1 - b1^t)."""

    slots = ("mu", "nu")
    non_negative_slots = ("nu",)
    hyperparameters = ("weight_decay", "b1", "b2", "eps", "eps_root")

    def __init__(self, name, learning_rate, b1, b2, eps, eps_root, nesterov, weight_decay=0.0,
                 mask=None):
        super().__init__(name, learning_rate, weight_decay, mask)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.nesterov = nesterov

    def _scalars(self, count, step):
        return {**super()._scalars(count, step), **self._bias_corrections(
            count, bc1=("b1", 0.0), bc2=("b2", 0.0), bc1_next=("b1", 1.0))}

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        mu = g * scalars["1-b1"] + slots["mu"] * scalars["b1"]
        nu = (g * g) * scalars["1-b2"] + slots["nu"] * scalars["b2"]
        if self.nesterov:
            mu_hat = (mu / scalars["bc1_next"]) * scalars["b1"] + \
                (g / scalars["bc1"]) * scalars["1-b1"]
        else:
            mu_hat = mu / scalars["bc1"]
        u = mu_hat / (F.sqrt(nu / scalars["bc2"] + scalars["eps_root"]) + scalars["eps"])
        if decay:
            u = u + p * scalars["weight_decay"]
        return u * scalars["-lr"], {"mu": mu, "nu": nu}


class _ScaleByRms(_OptaxRule):
    """optax.rmsprop: nu = decay nu + (1 - decay) g^2 (from initial_scale), u = g / sqrt(nu +
    eps) (eps_in_sqrt) or g / (sqrt(nu) + eps); centered subtracts mu^2 (optax's
    scale_by_stddev); bias_correction divides by 1 - decay^t; the momentum trace follows the
    learning rate, as optax's chain has it."""

    non_negative_slots = ("nu",)
    hyperparameters = ("weight_decay", "decay", "eps", "momentum")

    def __init__(self, learning_rate, decay, eps, initial_scale, eps_in_sqrt, centered,
                 momentum, nesterov, bias_correction):
        super().__init__("rmsprop", learning_rate)
        self.decay, self.eps, self.initial_scale = decay, eps, initial_scale
        self.eps_in_sqrt, self.centered = eps_in_sqrt, centered
        self._set_momentum(momentum)
        self.nesterov, self.bias_correction = nesterov, bias_correction

    @property
    def slots(self):
        return ("nu",) + (("mu",) if self.centered else ()) + \
            (("trace",) if self.has_trace else ())

    def init(self, params) -> dict:
        return _filled_slot(super().init(params), "nu", self.initial_scale, params)

    def _scalars(self, count, step):
        scalars = super()._scalars(count, step)
        if self.bias_correction:
            scalars.update(self._bias_corrections(count, bc=("decay", 0.0)))
        return scalars

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        new = {"nu": (g * g) * scalars["1-decay"] + slots["nu"] * scalars["decay"]}
        nu_hat = new["nu"] / scalars["bc"] if self.bias_correction else new["nu"]
        if self.centered:
            new["mu"] = g * scalars["1-decay"] + slots["mu"] * scalars["decay"]
            mu_hat = new["mu"] / scalars["bc"] if self.bias_correction else new["mu"]
            nu_hat = nu_hat - mu_hat * mu_hat
        if self.eps_in_sqrt:
            u = F.rsqrt(nu_hat + scalars["eps"]) * g
        else:
            u = g / (F.sqrt(nu_hat) + scalars["eps"])
        u = u * scalars["-lr"]
        if self.has_trace:
            new["trace"] = u + slots["trace"] * scalars["momentum"]
            u = u + new["trace"] * scalars["momentum"] if self.nesterov else new["trace"]
        return u, new


class _ScaleByRss(_OptaxRule):
    """optax.adagrad: sum = g^2 + sum (from initial_accumulator_value), u = g / sqrt(sum +
    eps) where sum > 0, else 0."""

    slots = ("sum_of_squares",)
    non_negative_slots = ("sum_of_squares",)
    hyperparameters = ("weight_decay", "eps")

    def __init__(self, learning_rate, initial_accumulator_value, eps):
        super().__init__("adagrad", learning_rate)
        self.initial, self.eps = initial_accumulator_value, eps

    def init(self, params) -> dict:
        return _filled_slot(super().init(params), "sum_of_squares", self.initial, params)

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        total = g * g + slots["sum_of_squares"]
        scale = F.where(F.greater(total, 0.0), F.rsqrt(total + scalars["eps"]), 0.0)
        return (scale * g) * scalars["-lr"], {"sum_of_squares": total}


class _ScaleByAdamax(_OptaxRule):
    """optax.adamax: nu = max(|g| + eps, b2 nu), u = mu / (1 - b1^t) / nu."""

    slots = ("mu", "nu")
    non_negative_slots = ("nu",)
    hyperparameters = ("weight_decay", "b1", "b2", "eps")

    def __init__(self, learning_rate, b1, b2, eps):
        super().__init__("adamax", learning_rate)
        self.b1, self.b2, self.eps = b1, b2, eps

    def _scalars(self, count, step):
        return {**super()._scalars(count, step),
                **self._bias_corrections(count, bc1=("b1", 0.0))}

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        mu = g * scalars["1-b1"] + slots["mu"] * scalars["b1"]
        nu = F.maximum(F.abs(g) + scalars["eps"], slots["nu"] * scalars["b2"])
        return ((mu / scalars["bc1"]) / nu) * scalars["-lr"], {"mu": mu, "nu": nu}


class _ScaleByLion(_OptaxRule):
    """optax.lion: u = sign((1 - b1) g + b1 mu) + weight_decay p, then mu = (1 - b2) g +
    b2 mu."""

    slots = ("mu",)
    hyperparameters = ("weight_decay", "b1", "b2")

    def __init__(self, learning_rate, b1, b2, weight_decay, mask):
        super().__init__("lion", learning_rate, weight_decay, mask)
        self.b1, self.b2 = b1, b2

    def _update_leaf(self, p, g, slots, scalars, decay, count):
        u = F.sign(g * scalars["1-b1"] + slots["mu"] * scalars["b1"])
        if decay:
            u = u + p * scalars["weight_decay"]
        mu = g * scalars["1-b2"] + slots["mu"] * scalars["b2"]
        return u * scalars["-lr"], {"mu": mu}


def _optax_settings(name, learning_rate, betas=(), fractions=(), non_negative=(), flags=(),
                    dtypes=()):
    """Each setting of gc.optim.`name` checked by its rule, one line naming it; -> the
    learning rate as a schedule (the rule's, so that it is checked once)."""
    schedule = _as_schedule(learning_rate, f"gc.optim.{name}: learning_rate")
    for setting, value in dtypes:  # optax's mu_dtype, accumulator_dtype
        if value is not None:
            raise GraphcError(f"gc.optim.{name}: {setting}={value!r} is not supported: the "
                              "state keeps each parameter's dtype (give None)",
                              (user_location(),))
    for setting, value in (*betas, *fractions, *non_negative):  # (optim's rule: no bool)
        _not_a_bool(f"gc.optim.{name}: {setting}", value)
    for setting, value in betas:  # in [0, 1)
        _fraction(f"gc.optim.{name}: {setting}", value)
    for setting, value in fractions:  # in [0, 1]
        _fraction(f"gc.optim.{name}: {setting}", value, one_included=True)
    for setting, value in non_negative:
        if value is not None:
            _non_negative(f"gc.optim.{name}: {setting}", value)
    for setting, value in flags:
        _flag(f"gc.optim.{name}: {setting}", value)
    return schedule


def sgd(learning_rate, momentum=None, nesterov=False,
        accumulator_dtype=None) -> GradientTransformation:
    """optax.sgd: updates -lr * g, or -lr * trace with a momentum (trace = g + momentum *
    trace; nesterov: g + momentum * trace). accumulator_dtype: None only (the trace has its
    parameter's dtype)."""
    lr = _optax_settings("sgd", learning_rate, non_negative=(("momentum", momentum),),
                         flags=(("nesterov", nesterov),),
                         dtypes=(("accumulator_dtype", accumulator_dtype),))
    return GradientTransformation(_Trace(lr, momentum, nesterov))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *,
         nesterov=False) -> GradientTransformation:
    """optax.adam: -lr * mu_hat / (sqrt(nu_hat + eps_root) + eps). mu_dtype: None only (mu
    has its parameter's dtype)."""
    name = "nadam" if nesterov else "adam"
    lr = _optax_settings(name, learning_rate, betas=(("b1", b1), ("b2", b2)),
                         non_negative=(("eps", eps), ("eps_root", eps_root)),
                         flags=(("nesterov", nesterov),), dtypes=(("mu_dtype", mu_dtype),))
    return GradientTransformation(_ScaleByAdam(name, lr, b1, b2, eps, eps_root, nesterov))


def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
          mu_dtype=None) -> GradientTransformation:
    """optax.nadam: adam with optax's Nesterov momentum (not torch.optim.NAdam's schedule)."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
          weight_decay=1e-4, mask=None, *, nesterov=False) -> GradientTransformation:
    """optax.adamw: -lr * (adam's direction + weight_decay * p), the decay on the
    parameters `mask` selects (a pytree of flags, or a function of the parameters giving
    one); weight_decay 1e-4 by default, as optax's (torch's AdamW: 0.01). mu_dtype: None
    only."""
    lr = _optax_settings("adamw", learning_rate, betas=(("b1", b1), ("b2", b2)),
                         non_negative=(("eps", eps), ("eps_root", eps_root),
                                       ("weight_decay", weight_decay)),
                         flags=(("nesterov", nesterov),), dtypes=(("mu_dtype", mu_dtype),))
    return GradientTransformation(_ScaleByAdam(
        "adamw", lr, b1, b2, eps, eps_root, nesterov, weight_decay, mask))


def rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
            centered=False, momentum=None, nesterov=False,
            bias_correction=False) -> GradientTransformation:
    """optax.rmsprop: eps inside the square root by default (torch's RMSprop adds it
    outside), decay 0.9 (torch's alpha: 0.99)."""
    lr = _optax_settings("rmsprop", learning_rate, fractions=(("decay", decay),),
                         non_negative=(("eps", eps), ("initial_scale", initial_scale),
                                       ("momentum", momentum)),
                         flags=(("eps_in_sqrt", eps_in_sqrt), ("centered", centered),
                                ("nesterov", nesterov), ("bias_correction", bias_correction)))
    return GradientTransformation(_ScaleByRms(
        lr, decay, eps, initial_scale, eps_in_sqrt, centered, momentum, nesterov,
        bias_correction))


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7) -> GradientTransformation:
    """optax.adagrad: -lr * g / sqrt(sum of g^2 + eps), the sum from 0.1 by default."""
    lr = _optax_settings("adagrad", learning_rate, non_negative=(
        ("initial_accumulator_value", initial_accumulator_value), ("eps", eps)))
    return GradientTransformation(_ScaleByRss(lr, initial_accumulator_value, eps))


def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> GradientTransformation:
    """optax.adamax: -lr * mu / (1 - b1^t) / max(|g| + eps, b2 nu)."""
    lr = _optax_settings("adamax", learning_rate, betas=(("b1", b1), ("b2", b2)),
                         non_negative=(("eps", eps),))
    return GradientTransformation(_ScaleByAdamax(lr, b1, b2, eps))


def lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3,
         mask=None) -> GradientTransformation:
    """optax.lion: -lr * (sign(b1 mu + (1 - b1) g) + weight_decay * p). mu_dtype: None
    only."""
    lr = _optax_settings("lion", learning_rate, betas=(("b1", b1), ("b2", b2)),
                         non_negative=(("weight_decay", weight_decay),),
                         dtypes=(("mu_dtype", mu_dtype),))
    return GradientTransformation(_ScaleByLion(lr, b1, b2, weight_decay, mask))
