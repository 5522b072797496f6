"""gc.optim.ReduceLROnPlateau (graphc/optim.py) and gc.Trainer with it (graphc/trainer.py): the
lr sequence is torch.optim.lr_scheduler.ReduceLROnPlateau's for the same metrics, in every
mode; the eager optimiser and the Trainer's compiled step use it (an input of the step: one
plan for every lr); a checkpoint resumes the same schedule."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import optim
from plateau_helpers import X, Y, loss, val_batches

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

F = "test_plateau.py"

CONFIGS = [{}, {"patience": 1, "factor": 0.5},
           {"mode": "max", "patience": 2, "threshold": 0.05, "cooldown": 2},
           {"threshold_mode": "abs", "threshold": 0.3, "patience": 0, "min_lr": 0.02},
           {"mode": "max", "threshold_mode": "abs", "patience": 1, "factor": 0.9, "eps": 0.005},
           {"patience": 0, "factor": 0.0, "cooldown": 1, "min_lr": 1e-3}]


def metrics(seed, n=60):
    """A noisy metric that falls, stalls and rises (mode max sees the mirror image)."""
    rng = np.random.default_rng(seed)
    trend = np.concatenate([np.linspace(5, 2, n // 3), np.full(n // 3, 2.0),
                            np.linspace(2, 3, n - 2 * (n // 3))])
    return list(trend + rng.normal(0, 0.2, n))


def torch_lrs(values, lr=0.1, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    out = []
    for v in values:
        sched.step(v)
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_lr_sequence_is_torchs(config):
    kw = CONFIGS[config]
    values = metrics(config)
    opt = optim.SGD(lr=0.1)
    plateau = optim.ReduceLROnPlateau(opt, **kw)
    assert opt.lr is plateau
    ours = []
    for v in values:
        plateau.step(v)
        ours.append(plateau.lr)
    want = torch_lrs(values, **kw)
    assert ours == want  # exactly: the same float64 arithmetic
    assert len(set(want)) > 1  # the case reduces the lr
    assert plateau.get_last_lr() == [want[-1]]


def test_state_dict_resumes_the_same_sequence():
    values = metrics(7)
    plateau = optim.ReduceLROnPlateau(0.1, patience=1, cooldown=1, factor=0.5)
    for v in values[:25]:
        plateau.step(v)
    saved = plateau.state_dict()
    again = optim.ReduceLROnPlateau(0.1, patience=1, cooldown=1, factor=0.5)
    again.load_state_dict(saved)
    rest = []
    for v in values[25:]:
        plateau.step(v)
        again.step(v)
        rest.append(again.lr)
        assert again.lr == plateau.lr
    assert rest == torch_lrs(values, patience=1, cooldown=1, factor=0.5)[25:]


def test_eager_sgd_follows_the_plateau_as_torchs():
    w0 = np.array([1.0, -2.0, 0.5])
    p = gc.tensor(w0.copy(), requires_grad=True)
    opt = optim.SGD(lr=0.1, momentum=0.9).bind([p])
    plateau = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    tp = torch.nn.Parameter(torch.tensor(w0.copy()))
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0, factor=0.5)
    for epoch, metric in enumerate([3.0, 2.0, 2.5, 2.6, 1.0, 1.5]):
        for _ in range(2):
            loss = gc.sum(p * p * p)
            loss.backward()
            opt.step()
            opt.zero_grad()
            tloss = torch.sum(tp ** 3)
            tloss.backward()
            topt.step()
            topt.zero_grad()
        plateau.step(metric)
        tsched.step(metric)
        assert plateau.lr == topt.param_groups[0]["lr"]
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-14)
    assert plateau.lr == 0.1 * 0.5 ** 3


# ---- gc.Trainer (X, Y, loss, val_batches: tests/plateau_helpers.py) --------------------------
def trainer(steps=24, lr=0.05, **kw):
    opt = optim.SGD(lr=lr)
    plateau = optim.ReduceLROnPlateau(opt, **({"patience": 0, "factor": 0.5} | kw))
    params = {"w": np.zeros(3), "b": np.zeros(())}
    return gc.Trainer(loss, params, opt, [(X, Y)], eval_batches=val_batches, steps=steps,
                      eval_every=2, eval_iters=2, seed=3), plateau


def test_trainer_steps_with_the_validation_loss_as_torch_and_does_not_recompile(tmp_path):
    t, plateau = trainer()
    grad = gc.grad(loss)
    lrs = []
    while t.step < t.steps:  # fit()'s loop, with each step checked
        before = {k: np.array(v) for k, v in t.params.items()}
        t.train_step()
        g = grad(before, (X, Y))
        for k in before:  # SGD: the step used the plateau's lr
            np.testing.assert_allclose(t.params[k], before[k] - plateau.lr * np.asarray(g[k]),
                                       rtol=1e-12, atol=1e-15)
        if t.step % t.eval_every == 0:
            t._plateau_step(t.evaluate())
            lrs.append(plateau.lr)
    assert lrs == torch_lrs([v for _, v in t.val_history], lr=0.05, patience=0, factor=0.5)
    assert len(set(lrs)) >= 3  # reduced at least twice
    # the lr is an input of the step: one plan served every value, and no constant holds it
    assert sum(len(e) for e in t._train_step._plans.values()) == 1
    assert "lr" in [i.name for i in t.step_plan.graph.inputs]
    assert 0.05 not in _constants(t.step_plan)
    plain = gc.Trainer(loss, {"w": np.zeros(3), "b": np.zeros(())}, optim.SGD(lr=0.05),
                       [(X, Y)], steps=4, seed=3)
    # a number lr is one too (set between steps, it takes effect without a recompilation:
    # tests/test_hyperparameter_changes.py), and so is a schedule's value at each step
    assert 0.05 not in _constants(plain.step_plan)
    assert "lr" in [i.name for i in plain.step_plan.graph.inputs]
    scheduled = gc.Trainer(loss, {"w": np.zeros(3), "b": np.zeros(())},
                           optim.SGD(lr=optim.multistep(0.05, [2])), [(X, Y)], steps=4, seed=3)
    assert "lr" in [i.name for i in scheduled.step_plan.graph.inputs]
    assert 0.05 not in _constants(scheduled.step_plan)


def _constants(plan):
    """The values of every constant of the step's graph."""
    return [float(v) for node in plan.graph.nodes if node.op == "constant"
            for v in np.ravel(node.attrs["value"])]


def test_fit_resume_continues_the_same_schedule(tmp_path):
    whole, plateau = trainer()
    assert whole.fit(str(tmp_path / "whole"), progress=False) == 0
    half, _ = trainer(steps=12)
    assert half.fit(str(tmp_path / "half"), progress=False) == 0
    resumed, resumed_plateau = trainer()
    resumed.resume(str(tmp_path / "half" / "checkpoint.npz"))
    assert resumed_plateau.lr == half.plateau.lr and resumed_plateau.lr < 0.05
    assert resumed.fit(str(tmp_path / "resumed"), progress=False) == 0
    assert resumed_plateau.state_dict() == plateau.state_dict()
    assert resumed.val_history == whole.val_history
    for k in whole.params:
        np.testing.assert_array_equal(resumed.params[k], whole.params[k])
    # the validation losses of the periodic evaluations (not step 0's) drive it, as torch's
    want = torch_lrs([v for s, v in whole.val_history if s > 0], lr=0.05, patience=0,
                     factor=0.5)
    assert plateau.lr == want[-1] and plateau.last_epoch == len(want) == 12


def test_resume_refuses_other_plateau_settings(tmp_path):
    t, _ = trainer(steps=4)
    t.fit(str(tmp_path), progress=False)
    path = str(tmp_path / "checkpoint.npz")
    other, _ = trainer(steps=4, patience=3)
    assert_one_line_error(lambda: other.resume(path), "saved with ReduceLROnPlateau", F)
    other.resume(path, allow_changed_settings=True)
    assert other.plateau.patience == 3 and other.plateau.lr == t.plateau.lr
    plain = gc.Trainer(loss, {"w": np.zeros(3), "b": np.zeros(())}, optim.SGD(lr=0.05),
                       [(X, Y)], eval_batches=val_batches, steps=4, eval_every=2,
                       eval_iters=2, seed=3)
    assert_one_line_error(lambda: plain.resume(path), "this trainer has none", F)


def test_bad_use_gives_one_line():
    opt = optim.SGD(lr=0.1)
    optim.ReduceLROnPlateau(opt)
    params = {"w": np.zeros(3), "b": np.zeros(())}
    assert_one_line_error(lambda: gc.Trainer(loss, params, opt, [(X, Y)], steps=4),
                          "ReduceLROnPlateau, which steps on the validation loss; give "
                          "eval_batches=", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(opt), "already is a", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(optim.Adam(lr=optim.cosine(1e-3, 10))),
                          "the optimizer's lr is a schedule of the step", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(0.1, factor=1.0),
                          "factor must be a number < 1.0", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(0.1, mode="least"),
                          "mode must be 'min' or 'max'", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(0.1, threshold_mode="pct"),
                          "threshold_mode must be 'rel' or 'abs'", F)
    assert_one_line_error(lambda: optim.ReduceLROnPlateau(0.1, patience=-1),
                          "patience must be a whole number >= 0", F)
    # a compiled update of one's own: the lr is an input, not a constant of the plan
    sgd = optim.SGD(lr=optim.ReduceLROnPlateau(0.1))
    state = sgd.init(params)
    step = gc.compile(lambda p, s: sgd.update(p, s, p))
    assert_one_line_error(lambda: step(params, state), "give it as an input of the step, a "
                          "float64 0-d array np.asarray(plateau.lr, np.float64)", F)
    given = gc.compile(lambda p, s, lr: sgd.update(p, s, p, lr=lr))
    for lr in (0.1, 0.25):
        new, _ = given(params | {"w": np.ones(3)}, state, np.asarray(lr, np.float64))
        np.testing.assert_allclose(new["w"], 1.0 - lr)
    assert sum(len(e) for e in given._plans.values()) == 1
