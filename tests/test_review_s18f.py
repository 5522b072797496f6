"""Session 18f review: today's training changes (per-parameter counts in opt.bind, step= in
Optimizer.update, fp16 skipped steps, checkpoints) checked against torch 2.x for wrong numbers.

- opt.bind(...): BoundOptimizer's `state` is the functional state, documented as the
  checkpoint. The per-parameter counts added today lived outside it (`updates`), so a state
  saved and assigned to a fresh bound optimizer (`opt.state = saved`) restarted Adam's bias
  corrections at update 1 with the saved moments: 0.09 off torch (Adam.load_state_dict) after
  3 more steps, where before today's change it was exact. The counts are now kept as the
  step() calls each parameter missed, relative to state["count"].
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from graphc import optim
from runtime.eager import Tensor

torch = pytest.importorskip("torch")


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
        for k in gp:
            g = r.standard_normal(gp[k].data.shape).astype(np.float32)
            gp[k].grad, tp[k].grad = g.copy(), torch.tensor(g)
        bound.step()
        topt.step()
    for k in gp:
        np.testing.assert_allclose(gp[k].data, tp[k].detach().numpy(), atol=1e-6)
