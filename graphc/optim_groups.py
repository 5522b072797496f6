"""gc.optim.Groups: several of graphc's optimisers, each over its own group of parameters, as
one optimiser for gc.Trainer (or a compiled step of one's own): torch's param groups with
their own settings (`Adam([{"params": backbone, "lr": 1e-4}, {"params": head}], lr=1e-3)`,
a lower backbone lr, layer-wise lr decay), optax's multi_transform. Each group's optimiser
keeps its own state, count and schedule, so a schedule that scales every group's lr, as
torch's LambdaLR does, is each group's lr given as a schedule."""
from __future__ import annotations

import copy

from ir.errors import GraphcError, a_type, user_location

from .tracing import flatten, leaves_like, unflatten


def _fail(message):
    raise GraphcError(message, (user_location(),))


class Groups:
    """`gc.optim.Groups((gc.optim.Adam(lr=1e-4), ["backbone"]), (gc.optim.Adam(lr=1e-3),
    ["head"]))`: each group is (an optimiser, which parameters): a list of names (a name is a
    parameter's, "backbone.0.weight" as model.params() names it, or a leaf's path in a nested
    pytree; a name picks those under it, so "backbone" picks every "backbone.*" and
    "backbone/*"), one name, or a function name -> bool. Every
    parameter must be in exactly one group. `init(params)` -> a list of the groups' states;
    `update(grads, state, params)` -> (new params, new state), as gc.optim.Optimizer's. A
    setting is changed mid-run on the group's optimiser (`groups.optimizers[0].lr = 1e-5`,
    torch's `param_groups[0]["lr"] = 1e-5`; weight_decay, betas, ... likewise): gc.Trainer's
    checkpoint keeps the groups' states and each group's lr and settings (header
    group_settings), which a resumed run goes on with as a single optimiser's (a checkpoint
    written before they were kept resumes with the trainer's own); a setting that adds or
    drops a state slot (amsgrad, a momentum from or to 0) is followed by the group's state as
    a single optimiser's (gc.Trainer._follow_group_slots);
    a gradient clip over all the parameters is gc.Trainer's clip_norm= (an optimiser's own
    clip_norm= clips its group alone)."""

    def __init__(self, *groups):
        from .optim import Optimizer, ReduceLROnPlateau
        if not groups:
            _fail("gc.optim.Groups: no group given; give (optimizer, names) pairs")
        for i, group in enumerate(groups):
            if not (isinstance(group, tuple) and len(group) == 2):
                _fail(f"gc.optim.Groups: group {i} is {a_type(group)}; each group is a pair "
                      "(optimizer, names), e.g. (gc.optim.Adam(lr=1e-4), ['backbone'])")
            opt, names = group
            if not isinstance(opt, Optimizer) or opt.gives_updates:
                _fail(f"gc.optim.Groups: group {i}'s optimizer is {a_type(opt)}; expected one "
                      "of gc.optim's torch-named optimisers (gc.optim.Adam(lr=...), SGD, ...)")
            if isinstance(opt.lr, ReduceLROnPlateau):
                _fail(f"gc.optim.Groups: group {i}'s lr is a ReduceLROnPlateau, which gc.Trainer "
                      "steps only as a whole optimiser's lr; give the group a schedule")
            if not (callable(names) or isinstance(names, str) or (
                    isinstance(names, (list, tuple)) and names
                    and all(isinstance(n, str) for n in names))):
                _fail(f"gc.optim.Groups: group {i}'s parameters are {a_type(names)}; give a "
                      "list of names (paths in the parameters' pytree), one name, or a "
                      "function name -> bool")
        if len({id(opt) for opt, _ in groups}) != len(groups):
            _fail("gc.optim.Groups: one optimiser is given to two groups; give each group "
                  "its own (its state is the group's)")
        self.optimizers = [opt for opt, _ in groups]
        self._selectors = [names for _, names in groups]

    def _group_of(self, name) -> int:
        found = [i for i, sel in enumerate(self._selectors) if _picks(sel, name)]
        if len(found) != 1:
            which = "no group" if not found else \
                f"groups {', '.join(map(str, found))}"
            _fail(f"gc.optim.Groups: parameter {name!r} is in {which}; each parameter must "
                  "be in exactly one group")
        return found[0]

    def _split(self, params):
        leaves, structure, names = flatten(params)
        at = [self._group_of(n) for n in names]
        return leaves, structure, names, at

    def init(self, params) -> list:
        leaves, _, names, at = self._split(params)
        for i, opt in enumerate(self.optimizers):
            if i not in at:
                _fail(f"gc.optim.Groups: group {i} ({_said(self._selectors[i])}) picks no "
                      f"parameter (their names: {', '.join(names)})")
        return [opt.init({n: leaf for n, leaf, g in zip(names, leaves, at) if g == i})
                for i, opt in enumerate(self.optimizers)]

    def update(self, grads, state, params=None, step=None, behind=None):
        """-> (new params, new state). `step`: the step each group's schedule is evaluated
        at where it is not the group's count (gc.Trainer's, skipped fp16 steps counted, as
        gc.optim.Optimizer.update's step= and torch's schedulers); None: each group's count.
        `behind`: {name: the updates that parameter missed} (gc.Trainer's lags: no gradient
        for some steps, frozen), each parameter then updated at its own count of updates, as
        torch's state[p]["step"] and a single optimiser's under gc.Trainer
        (update_at_own_counts); None: every parameter at its group's count."""
        if params is None:
            _fail("gc.optim.Groups.update: give the parameters: update(grads, state, params)")
        leaves, structure, names, at = self._split(params)
        grad_leaves = leaves_like(structure, grads, "the gradients", "the parameters")
        if not isinstance(state, (list, tuple)) or len(state) != len(self.optimizers):
            _fail(f"gc.optim.Groups.update: the state is {a_type(state)}; expected the list "
                  f"of {len(self.optimizers)} groups' states that init() gives")
        new, states = list(leaves), []
        for i, (opt, s) in enumerate(zip(self.optimizers, state)):
            mine = [k for k, g in enumerate(at) if g == i]
            lags = {names[k]: (behind or {}).get(names[k], 0) for k in mine
                    if grad_leaves[k] is not None}
            group = ({names[k]: grad_leaves[k] for k in mine}, s,
                     {names[k]: leaves[k] for k in mine})
            p, s = update_at_own_counts(opt, *group, lags, {"step": step}) \
                if any(lags.values()) else opt.update(*group, step=step)
            for k in mine:
                new[k] = p[names[k]]
            states.append(s)
        return unflatten(structure, new), states


def update_at_own_counts(optimizer, grads, state, params, lags: dict, given: dict):
    """`optimizer.update(grads, state, params, **given)` (one of graphc's own) with each
    parameter that gets a gradient at its own count of updates, the optimiser's count less
    its lag (`lags`: {name: the updates it missed}, gc.Trainer's behind), as torch's
    state[p]["step"] and BoundOptimizer.step: Adam's bias corrections, SGD's first momentum
    buffer, Adagrad's lr_decay. Parameters with the same lag are updated together; clipping
    by the optimiser's clip_norm is over all of them at once; the state's count goes on by
    one, as the optimiser's own update counts."""
    from .optim import clip_by_global_norm
    groups = {}
    for n, lag in lags.items():
        groups.setdefault(lag, []).append(n)
    first = optimizer
    if optimizer.clip_norm is not None:
        grads = {**grads, **clip_by_global_norm({n: grads[n] for n in lags},
                                                optimizer.clip_norm)[0]}
        optimizer = copy.copy(optimizer)
        optimizer.clip_norm = None
    new_params = dict(params)
    new_state = {"count": state["count"] + 1,
                 **{slot: dict(state[slot]) for slot in optimizer.slots}}
    for lag, group in groups.items():
        if isinstance(first.decay_mask, dict):  # a pytree of flags: this group's
            optimizer = copy.copy(optimizer)
            optimizer.decay_mask = {n: first.decay_mask[n] for n in group}
        count = state["count"] - lag if lag else state["count"]
        group_state = {"count": count, **{slot: {n: state[slot][n] for n in group}
                                          for slot in optimizer.slots}}
        group_params, group_state = optimizer.update(
            {n: grads[n] for n in group}, group_state, {n: params[n] for n in group}, **given)
        new_params.update(group_params)
        for slot in optimizer.slots:
            new_state[slot].update(group_state[slot])
    return new_params, new_state


def _picks(selector, name) -> bool:
    if callable(selector):
        return bool(selector(name))
    for s in [selector] if isinstance(selector, str) else selector:
        if name == s or name.startswith((s + ".", s + "/")):
            return True
    return False


def _said(selector) -> str:
    return getattr(selector, "__name__", "a function") if callable(selector) else repr(selector)
