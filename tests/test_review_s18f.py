"""Session 18f review: today's training changes (per-parameter counts in opt.bind, step= in
Optimizer.update, fp16 skipped steps, checkpoints) checked against torch 2.x for wrong numbers.

- opt.bind(...): BoundOptimizer's `state` is the functional state, documented as the
  checkpoint. The per-parameter counts added today lived outside it (`updates`), so a state
  saved and assigned to a fresh bound optimizer (`opt.state = saved`) restarted Adam's bias
  corrections at update 1 with the saved moments: 0.09 off torch (Adam.load_state_dict) after
  3 more steps, where before today's change it was exact. The counts are now kept as the
  step() calls each parameter missed, relative to state["count"].
- the same after a reset (opt.state = opt.optimizer.init(...)) following a frozen stretch: the
  missed steps counted before the reset pinned the parameter's count at 0 (the first update's
  bias correction again); a state with a lower count now clears them.
- gc.Trainer: since today an fp16 run's count is step - skipped steps, but only the fp16 step
  passed the step to the optimiser for its schedule; a float32 Trainer resuming such a
  checkpoint evaluated its schedule at the count, 2 steps behind torch's LambdaLR (0.015 off
  after 6 steps). graphc's optimisers now get the step at every precision.
- gc.Trainer passed step= to any graphc Optimizer subclass, one overriding update(grads,
  state, params) without it too: TypeError in fp16-mixed (b0044a7) and then at every
  precision; such an optimiser gets no step now.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from graphc import optim
from runtime.eager import Tensor

import torch  # noqa: E402  (the test extra, as the other oracle tests)


def _step_both(r, gp, tp, bound, topt):
    """One step of graphc's bound optimizer and torch's on the same random gradients."""
    for k in gp:
        g = r.standard_normal(gp[k].data.shape).astype(np.float32)
        gp[k].grad, tp[k].grad = g.copy(), torch.tensor(g)
    bound.step()
    topt.step()


def _assert_same(gp, tp):
    for k in gp:
        np.testing.assert_allclose(gp[k].data, tp[k].detach().numpy(), atol=1e-6)


def _params(seed=0):
    r = np.random.default_rng(seed)
    return {"a": r.standard_normal((3, 4)).astype(np.float32),
            "b": r.standard_normal(4).astype(np.float32)}


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_bound_optimizer_state_assigned_back_resumes_as_torch_load_state_dict(name):
    make = {"Adam": (lambda: optim.Adam(lr=0.1),
                     lambda p: torch.optim.Adam(p, lr=0.1)),
            "AdamW": (lambda: optim.AdamW(lr=0.1, weight_decay=0.1),
                      lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1))}[name]
    init = _params()
    gp = {k: Tensor(v.copy(), requires_grad=True) for k, v in init.items()}
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in init.items()}
    bound, topt = make[0]().bind(gp), make[1](list(tp.values()))
    r = np.random.default_rng(1)
    for i in range(6):
        if i == 3:  # checkpoint and resume both
            saved = copy.deepcopy(bound.state)
            bound = make[0]().bind(gp)
            bound.state = saved
            sd = topt.state_dict()
            topt = make[1](list(tp.values()))
            topt.load_state_dict(sd)
        _step_both(r, gp, tp, bound, topt)
    _assert_same(gp, tp)


def test_float32_trainer_resumed_from_fp16_checkpoint_with_skips_keeps_the_schedule_at_the_step(
        tmp_path):
    """An fp16-mixed run that skipped 2 overflowed steps, resumed by a float32 gc.Trainer (the
    precision may change on resume): the count is step - skipped, and the float32 step
    evaluated the schedule at the count, 2 steps behind torch's LambdaLR (0.015 off after 6
    steps); graphc's optimisers now get the step whatever the precision."""
    import sys
    from pathlib import Path
    import warnings
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_review_s18d import C, W0, _fp16_trainer, _torch_adam
    finally:
        sys.path.remove(str(Path(__file__).parent))
    import graphc as gc
    schedule = optim.cosine(0.1, steps=6, warmup=3, min_lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _fp16_trainer(schedule, 3).fit(str(tmp_path), progress=False)
    trainer = gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]), {"w": W0},
                         optim.Adam(lr=schedule), lambda rng: (C,), steps=6, eval_every=3)
    trainer.resume(str(tmp_path / "checkpoint.npz"))
    assert trainer.skipped_steps == 2 and int(trainer.state["count"]) == 1
    trainer.fit(str(tmp_path), progress=False)
    np.testing.assert_allclose(trainer.params["w"], _torch_adam(schedule, 6, {0, 1}),
                               rtol=0, atol=1e-6)


def test_bound_optimizer_state_reset_to_init_after_a_frozen_stretch_counts_from_one():
    """A parameter frozen for two steps, then opt.state = opt.optimizer.init(...) (a reset)
    and two more steps: torch's Adam, rebuilt, takes updates 1 and 2; the missed steps kept
    from before the reset pinned the parameter's count at 0 (update 1's bias correction
    twice)."""
    init = _params()
    gp = {k: Tensor(v.copy(), requires_grad=True) for k, v in init.items()}
    bound = optim.Adam(lr=0.1).bind(gp)
    r = np.random.default_rng(2)
    for _ in range(2):
        gp["a"].grad, gp["b"].grad = r.standard_normal((3, 4)).astype(np.float32), None
        bound.step()
    bound.state = bound.optimizer.init({k: p.data for k, p in gp.items()})
    tp = {k: torch.tensor(p.data.copy(), requires_grad=True) for k, p in gp.items()}
    topt = torch.optim.Adam(list(tp.values()), lr=0.1)
    for _ in range(3):
        _step_both(r, gp, tp, bound, topt)
    _assert_same(gp, tp)
    assert bound.updates == {"a": 3, "b": 3}


@pytest.mark.parametrize("precision", ["fp32", "fp16-mixed"])
def test_trainer_takes_an_optimizer_subclass_whose_update_has_no_step(precision):
    """A graphc optimiser subclass overriding update(grads, state, params), written before
    update took step=: gc.Trainer passed step= to it (fp16 since b0044a7, every precision
    since 9671671): TypeError. It gets no step, its schedule at the count, as before."""
    import graphc as gc

    class MySGD(optim.SGD):
        def update(self, grads, state, params):
            return super().update(grads, state, params)
    c = np.full((3,), 4.0, np.float32)
    trainer = gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]),
                         {"w": np.array([0.5, -1.0, 2.0], np.float32)}, MySGD(lr=0.1),
                         lambda rng: (c,), steps=2, eval_every=5, precision=precision)
    trainer.fit(None, progress=False)
    np.testing.assert_allclose(trainer.params["w"], [-0.3, -1.8, 1.2], rtol=1e-6)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_bound_optimizer_zero_grad_takes_set_to_none_as_torch(set_to_none):
    """zero_grad(set_to_none=False) zeroes the gradients, so the step after a backward-less
    iteration still updates (Adam's moments carry it on), where None leaves the parameter
    alone: both as torch's. It was a TypeError (zero_grad took no argument)."""
    import graphc as gc
    w0 = np.array([1.0, -2.0, 3.0])
    w = gc.tensor(w0.copy(), requires_grad=True)
    opt = optim.Adam(lr=0.1).bind({"w": w})
    tw = torch.tensor(w0.copy(), requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.1)
    for k in range(4):
        if k != 2:  # no backward at step 2
            gc.sum(w * w).backward()
            (tw * tw).sum().backward()
        opt.step()
        topt.step()
        opt.zero_grad(set_to_none=set_to_none)
        topt.zero_grad(set_to_none=set_to_none)
    np.testing.assert_allclose(np.asarray(w.data), tw.detach().numpy(), rtol=0, atol=1e-12)


def test_bound_optimizer_state_dict_round_trip_resumes_a_thawed_parameter_as_torch():
    """opt.state_dict() / opt.load_state_dict() carry each parameter's own update count, so a
    parameter frozen for the first steps resumes at its count after a reload, as torch's
    load_state_dict (assigning opt.state back lost it: 0.013 off, session 18f review)."""
    import graphc as gc
    rng = np.random.default_rng(3)
    a0, b0 = rng.normal(size=3), rng.normal(size=2)
    a, b = gc.tensor(a0.copy(), requires_grad=True), gc.tensor(b0.copy(), requires_grad=True)
    opt = optim.Adam(lr=0.1).bind({"a": a, "b": b})
    ta, tb = torch.tensor(a0.copy(), requires_grad=True), torch.tensor(b0.copy(), requires_grad=True)
    topt = torch.optim.Adam([ta, tb], lr=0.1)

    def one_step(k, opt, topt, a, b, ta, tb):
        loss = gc.sum(a * a * 2.0) + (gc.sum(b * b * b) if k >= 2 else 0.0)  # b frozen at first
        loss.backward()
        tloss = (ta * ta * 2.0).sum() + ((tb * tb * tb).sum() if k >= 2 else 0.0)
        tloss.backward()
        opt.step(), topt.step()
        opt.zero_grad(), topt.zero_grad()

    for k in range(4):
        one_step(k, opt, topt, a, b, ta, tb)
    saved, tsaved = opt.state_dict(), topt.state_dict()
    a2, b2 = gc.tensor(np.asarray(a.data).copy(), requires_grad=True), \
        gc.tensor(np.asarray(b.data).copy(), requires_grad=True)
    opt2 = optim.Adam(lr=0.1).bind({"a": a2, "b": b2})
    opt2.load_state_dict(saved)
    topt2 = torch.optim.Adam([ta, tb], lr=0.1)
    topt2.load_state_dict(tsaved)
    for k in range(4, 7):
        one_step(k, opt2, topt2, a2, b2, ta, tb)
    np.testing.assert_allclose(np.asarray(a2.data), ta.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(b2.data), tb.detach().numpy(), atol=1e-12)
    with pytest.raises(gc.GraphcError, match="parameters"):
        optim.Adam(lr=0.1).bind({"a": a2}).load_state_dict(saved)
