"""gc.Trainer.fit with a ReduceLROnPlateau (graphc/trainer.py): the plateau is stepped by the
periodic evaluations alone (every eval_every steps). A fit cut at a step off that grid still
evaluates there (for the log and the plot), but that evaluation does not step the plateau,
so "fit to N, resume, fit to M" is the same run as one fit to M, bit for bit."""
import numpy as np
import pytest

import graphc as gc
from graphc import optim
from plateau_helpers import X, Y, loss, val_batches


def trainer(steps):
    opt = optim.Adam(lr=0.05)
    plateau = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    params = {"w": np.zeros(3), "b": np.zeros(())}
    return gc.Trainer(loss, params, opt, [(X, Y)], eval_batches=val_batches, steps=steps,
                      eval_every=4, eval_iters=2, seed=2), plateau


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    t, plateau = trainer(24)
    lines = []
    assert t.fit(str(tmp_path_factory.mktemp("whole")), progress=False,
                 log=lines.append) == 0
    assert sum("(reduced)" in line for line in lines) >= 2  # the plateau did act
    return t, plateau


@pytest.mark.parametrize("cut", [7, 18])
def test_a_run_cut_off_the_eval_grid_resumes_as_the_whole_run(tmp_path, whole, cut):
    full, full_plateau = whole
    half, _ = trainer(cut)
    lines = []
    assert half.fit(str(tmp_path), progress=False, log=lines.append) == 0
    # the cut's evaluation is still made and reported, without a reduction
    assert half.val_history[-1][0] == cut and lines[-1].startswith(f"step {cut}: ")
    assert "(reduced)" not in lines[-1]
    resumed, plateau = trainer(24)
    resumed.resume(str(tmp_path / "checkpoint.npz"))
    assert resumed.fit(str(tmp_path), progress=False) == 0
    for k in full.params:
        np.testing.assert_array_equal(resumed.params[k], full.params[k])
    assert plateau.state_dict() == full_plateau.state_dict()
    # the periodic evaluations are the whole run's; the cut's one is there in addition
    assert [h for h in resumed.val_history if h[0] != cut] == full.val_history


def test_extending_steps_after_a_cut_is_the_whole_run(tmp_path, whole):
    full, full_plateau = whole
    t, plateau = trainer(18)
    assert t.fit(str(tmp_path), progress=False) == 0
    t.steps = 24
    assert t.fit(str(tmp_path), progress=False) == 0
    for k in full.params:
        np.testing.assert_array_equal(t.params[k], full.params[k])
    assert plateau.state_dict() == full_plateau.state_dict()


def test_the_plateau_sees_the_periodic_losses_as_torchs(whole):
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    full, plateau = whole
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.05)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for step, v in full.val_history:
        if step > 0:
            sched.step(v)
    assert plateau.lr == opt.param_groups[0]["lr"] < 0.05
