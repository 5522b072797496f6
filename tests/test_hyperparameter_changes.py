"""Optimiser settings changed during training take effect at the next step, as torch's
(`for g in opt.param_groups: g["lr"] = x`), in gc.Trainer's compiled step and in a compiled
step of one's own (graphc/optim.py, graphc/trainer.py). Before, a compiled step kept the lr,
weight decay, momentum, betas and clip norm it was traced with, silently: a number lr is now a
float64 input of the Trainer's step (one plan for every value, checkpointed as the current
one), and every other setting is a guard of the plan (a change compiles the step again)."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import checkpoint, optim

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

F = "test_hyperparameter_changes.py"

RNG = np.random.default_rng(0)
W0 = RNG.normal(size=(3, 2))
B0 = RNG.normal(size=(2,))
# four batches in turn (an iterable: the trainer and torch's loop see the same ones)
BATCHES = [(x, x @ np.array([[1.0, 0.5], [-2.0, 0.0], [0.5, 1.0]]) + 0.3 + 0.1 * x[:, :2])
           for x in RNG.normal(size=(4, 16, 3))]


def loss(params, batch):
    x, y = batch
    return gc.mean((x @ params["w"] + params["b"] - y) ** 2)


def trainer(opt, steps=10, **kw):
    return gc.Trainer(loss, {"w": W0.copy(), "b": B0.copy()}, opt, BATCHES, steps=steps,
                      seed=1, **kw)


def torch_run(make, steps, changes, clip=None):
    """torch's loop over the same batches; changes: {step: {group key: value}} set before
    that step (0-based), as a torch user sets param_groups; "clip" sets the clip norm."""
    w = torch.tensor(W0.copy(), requires_grad=True)
    b = torch.tensor(B0.copy(), requires_grad=True)
    opt = make([w, b])
    for step in range(steps):
        for key, value in changes.get(step, {}).items():
            if key == "clip":
                clip = value
            else:
                for group in opt.param_groups:
                    group[key] = value
        x, y = (torch.tensor(a) for a in BATCHES[step % len(BATCHES)])
        opt.zero_grad()
        ((x @ w + b - y) ** 2).mean().backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([w, b], clip)
        opt.step()
    return {"w": w.detach().numpy(), "b": b.detach().numpy()}


def assert_params(ours, want, rtol=1e-12):
    for k in want:
        np.testing.assert_allclose(ours[k], want[k], rtol=rtol, atol=1e-14)


def header(t, path) -> dict:
    return checkpoint.load_arrays(path, {k: (a.shape, a.dtype)
                                         for k, a in t.state_arrays().items()})[1]


def plans(t) -> int:
    return sum(len(entries) for entries in t._train_step._plans.values())


def test_lr_set_between_steps_is_torchs_with_one_plan():
    t = trainer(optim.AdamW(lr=1e-2, weight_decay=0.1))
    changes = {4: 3e-3, 7: 5e-2}
    while t.step < t.steps:
        if t.step in changes:
            t.optimizer.lr = changes[t.step]  # torch's `group["lr"] = x`
        t.train_step()
    want = torch_run(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 10,
                     {s: {"lr": v} for s, v in changes.items()})
    assert_params(t.params, want)
    # the lr is an input of the one plan (no constant holds it), read at every step
    assert plans(t) == 1 and t._train_step.recompiles == []
    names = [i.name for i in t.step_plan.graph.inputs]
    assert "lr" in names and {"settings.beta1", "settings.beta2", "settings.eps",
                              "settings.weight_decay"} <= set(names)
    assert t.optimizer.lr == 5e-2 and f"{t.optimizer.lr:.0e}" == "5e-02"  # reads as a number
    # before: the step kept lr 1e-2 all along, the result of a run without the changes
    unchanged = torch_run(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 10, {})
    assert np.abs(t.params["w"] - unchanged["w"]).max() > 1e-2


def test_lr_set_between_fit_calls_is_torchs():
    t = trainer(optim.SGD(lr=0.05, momentum=0.9), steps=5)
    assert t.fit(None, progress=False) == 0
    t.optimizer.lr = 0.01  # a callback's between two fit() calls
    t.steps = 10
    assert t.fit(None, progress=False) == 0
    want = torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 10,
                     {5: {"lr": 0.01}})
    assert_params(t.params, want)
    assert plans(t) == 1


def test_resume_goes_on_with_the_lr_set_during_the_run(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    make = lambda: optim.AdamW(lr=1e-2)  # noqa: E731
    run = trainer(make())
    for _ in range(4):
        run.train_step()
    run.optimizer.lr = 2e-3
    run.train_step()
    run.save(path)
    assert header(run, path)["optimizer_lr"] == {"initial": 1e-2, "current": 2e-3}
    while run.step < run.steps:
        run.train_step()
    # the same script started again (lr=1e-2, the change at step 4 behind it) resumes at 2e-3
    resumed = trainer(make())
    resumed.resume(path)
    assert resumed.optimizer.lr == 2e-3 and resumed.step == 5
    while resumed.step < resumed.steps:
        resumed.train_step()
    for k in run.params:
        np.testing.assert_array_equal(resumed.params[k], run.params[k])  # bit for bit
    want = torch_run(lambda p: torch.optim.AdamW(p, lr=1e-2), 10, {4: {"lr": 2e-3}})
    assert_params(resumed.params, want)
    # its next checkpoint still names the lr the run started with
    resumed.save(path)
    assert header(resumed, path)["optimizer_lr"] == {"initial": 1e-2, "current": 2e-3}
    # a trainer given another lr (built with it, or set before resume) keeps its own
    other = trainer(optim.AdamW(lr=5e-3))
    other.resume(path)
    assert other.optimizer.lr == 5e-3
    again = trainer(make())
    again.optimizer.lr = 7e-3
    again.resume(path)
    assert again.optimizer.lr == 7e-3


def test_resume_goes_on_with_a_number_lr_that_replaced_a_schedule(tmp_path):
    """A run that started with a schedule and was set to a number mid-run: the header holds
    None for the schedule. The same script resumed (the schedule given again) went back to
    the schedule from the checkpoint's step, silently not the run it continued."""
    path = str(tmp_path / "checkpoint.npz")
    schedule = optim.cosine(0.05, steps=10, warmup=2)
    make = lambda: optim.SGD(lr=schedule, momentum=0.9)  # noqa: E731
    run = trainer(make())
    for _ in range(3):
        run.train_step()
    run.optimizer.lr = 0.01
    run.train_step()
    run.save(path)
    assert header(run, path)["optimizer_lr"] == {"initial": None, "current": 0.01}
    while run.step < run.steps:
        run.train_step()
    resumed = trainer(make())
    resumed.resume(path)
    assert resumed.optimizer.lr == 0.01 and resumed.step == 4
    while resumed.step < resumed.steps:
        resumed.train_step()
    for k in run.params:
        np.testing.assert_array_equal(resumed.params[k], run.params[k])  # bit for bit
    lrs = {s: {"lr": schedule(s)} for s in range(3)}
    want = torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 10,
                     {**lrs, 3: {"lr": 0.01}})
    assert_params(resumed.params, want)
    # a trainer built with a number keeps its own, as for a number the run started with
    other = trainer(optim.SGD(lr=0.02, momentum=0.9))
    other.resume(path)
    assert other.optimizer.lr == 0.02


def test_resume_refuses_a_starting_lr_whose_run_went_on_with_a_schedule(tmp_path):
    """The other way round: the schedule set mid-run cannot be saved, so the trainer built
    with the starting number would silently go on with that number; refused in one line
    unless allow_changed_settings, and a trainer given the schedule before resuming goes on
    with it."""
    path = str(tmp_path / "checkpoint.npz")
    schedule = optim.cosine(0.01, steps=10)
    run = trainer(optim.SGD(lr=0.05))
    run.train_step()
    run.optimizer.lr = schedule
    run.train_step()
    run.save(path)
    assert header(run, path)["optimizer_lr"] == {"initial": 0.05, "current": None}
    while run.step < run.steps:
        run.train_step()
    # (the line names the file, as resume's other refusals: s49 f9 item 2)
    assert_one_line_error(lambda: trainer(optim.SGD(lr=0.05)).resume(path),
                          f"checkpoint {path!r}: its run started with lr 0.05 and was set to "
                          "a schedule", F)
    allowed = trainer(optim.SGD(lr=0.05))
    allowed.resume(path, allow_changed_settings=True)
    assert allowed.optimizer.lr == 0.05 and allowed.step == 2
    again = trainer(optim.SGD(lr=0.05))
    again.optimizer.lr = schedule
    again.resume(path)
    while again.step < again.steps:
        again.train_step()
    for k in run.params:
        np.testing.assert_array_equal(again.params[k], run.params[k])


# (a setting, the optimiser with a schedule for it, a number for it; torch's key and
# optimiser for the run that switches to the number)
SCHEDULED = [("momentum", lambda v: optim.SGD(lr=0.05, momentum=v), 0.5,
              lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5)),
             ("beta1", lambda v: optim.AdamW(lr=0.05, betas=(v, 0.99)), 0.5,
              lambda p: torch.optim.AdamW(p, lr=0.05, betas=(0.5, 0.99))),
             ("weight_decay", lambda v: optim.AdamW(lr=0.05, weight_decay=v), 0.3,
              lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.3))]


@pytest.mark.parametrize("name, make, number, make_torch", SCHEDULED,
                         ids=[s[0] for s in SCHEDULED])
def test_resume_goes_on_with_a_number_setting_that_replaced_a_schedule(tmp_path, name, make,
                                                                       number, make_torch):
    """The lr's rule (test_resume_goes_on_with_a_number_lr_that_replaced_a_schedule) for
    each setting that may be a schedule: the header left a scheduled one out, so a run whose
    momentum, beta1 or weight decay schedule was replaced by a number mid-run resumed on the
    schedule, silently not the run it continued. Now it holds None there and the resumed run
    ends bit for bit where the uninterrupted one does; the other way round is refused in one
    line, unless allow_changed_settings."""
    path = str(tmp_path / "c.npz")
    schedule = (lambda step: 0.01 * step) if name == "weight_decay" else \
        (lambda step: 0.9 - 0.05 * step)
    whole, first = trainer(make(schedule)), trainer(make(schedule))
    for t, steps in ((whole, 10), (first, 6)):
        while t.step < steps:
            if t.step == 4:
                setattr(t.optimizer, name, number)
            t.train_step()
    first.save(path)
    resumed = trainer(make(schedule))  # the same script started again
    resumed.resume(path)
    while resumed.step < 10:
        resumed.train_step()
    assert_params(resumed.params, whole.params, rtol=0)  # bit for bit
    assert getattr(resumed.optimizer, name) == number
    saved = header(first, path)["optimizer_settings"]
    assert saved["initial"][name] is None and saved["current"][name] == number
    # torch's run: the schedule's first 4 values, then the number (the AdamW step's
    # float64 arithmetic against torch's is as test_optim's: to rounding)
    key = "betas" if name == "beta1" else name
    changes = {s: {key: (schedule(s), 0.99) if name == "beta1" else schedule(s)}
               for s in range(4)}
    changes[4] = {key: (number, 0.99) if name == "beta1" else number}
    assert_params(resumed.params, torch_run(make_torch, 10, changes), rtol=1e-10)
    # the other way round: a starting number set to a schedule, which no file holds
    run = trainer(make(number))
    run.train_step()
    setattr(run.optimizer, name, schedule)
    run.train_step()
    run.save(path)
    saved = header(run, path)["optimizer_settings"]
    assert saved["initial"][name] == number and saved["current"][name] is None
    assert_one_line_error(lambda: trainer(make(number)).resume(path),
                          f"checkpoint {path!r}: its run started with {name} {number} and was "
                          "set to a schedule", F)
    allowed = trainer(make(number))
    allowed.resume(path, allow_changed_settings=True)
    assert getattr(allowed.optimizer, name) == number and allowed.step == 2


def test_a_schedule_replaced_by_another_resumes_on_the_resumed_scripts_schedule(tmp_path):
    """Review s50: a run whose lr and momentum schedules were replaced mid-run by other
    schedules saves null for both (no file holds a function), so nothing can be compared:
    the resumed run goes on with its own script's schedules, evaluated at the resumed step,
    as optax's (whose state is the step count). Here the run used schedules A for steps
    0-3 and B for 4-5, saved at step 6; resumed by a trainer built with C, its steps 6-9
    use C(6)..C(9), as torch's loop setting param_groups so (to rounding) and as the run
    itself continued with C (bit for bit)."""
    path = str(tmp_path / "c.npz")
    lr = {"A": lambda s: 0.05, "B": lambda s: 0.02 + 0.001 * s, "C": lambda s: 0.1 / (s + 1)}
    momentum = {"A": lambda s: 0.9, "B": lambda s: 0.5, "C": lambda s: 0.8 - 0.05 * s}
    run = trainer(optim.SGD(lr=lr["A"], momentum=momentum["A"]))
    while run.step < 6:
        if run.step == 4:
            run.optimizer.lr, run.optimizer.momentum = lr["B"], momentum["B"]
        run.train_step()
    run.save(path)
    saved = header(run, path)
    assert saved["optimizer_settings"]["current"]["momentum"] is None
    assert "optimizer_lr" not in saved  # (a schedule from the start: nothing to hold)
    resumed = trainer(optim.SGD(lr=lr["C"], momentum=momentum["C"]))
    resumed.resume(path)
    assert resumed.step == 6 and resumed.optimizer.lr is lr["C"]
    assert float(resumed._lr_input()) == lr["C"](6) == 0.1 / 7
    assert float(resumed._settings_input()["momentum"]) == momentum["C"](6)
    run.optimizer.lr, run.optimizer.momentum = lr["C"], momentum["C"]
    for t in (run, resumed):
        while t.step < 10:
            t.train_step()
    assert_params(resumed.params, run.params, rtol=0)
    changes = {s: {"lr": lr[k](s), "momentum": momentum[k](s)}
               for k, steps in (("A", range(4)), ("B", range(4, 6)), ("C", range(6, 10)))
               for s in steps}
    assert_params(resumed.params, torch_run(
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 10, changes))


def test_a_bad_optimizer_lr_header_is_one_line(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    t = trainer(optim.SGD(lr=0.1))
    t.train_step()
    arrays = t.state_arrays()
    meta = {"step": 1, "rng": t.rng.bit_generator.state, "data_position": 1,
            "optimizer_lr": {"initial": 0.1, "current": -1.0}}
    checkpoint.save(path, arrays, meta)
    with pytest.raises(checkpoint.CheckpointError, match="optimizer_lr must be"):
        trainer(optim.SGD(lr=0.1)).resume(path)
    checkpoint.save(path, arrays, {**meta, "optimizer_lr": {"initial": None, "current": None}})
    with pytest.raises(checkpoint.CheckpointError, match="optimizer_lr must be"):
        trainer(optim.SGD(lr=0.1)).resume(path)
    for bad in ({"initial": {"beta1": 0.9}, "current": {"beta1": 1.5}},
                {"initial": {"eps": 1e-8}, "current": {"eps": "x"}}, {"current": {}}):
        checkpoint.save(path, trainer(optim.Adam(lr=0.1)).state_arrays(),
                        {**meta, "optimizer_lr": {"initial": 0.1, "current": 0.1},
                         "optimizer_settings": bad})
        with pytest.raises(checkpoint.CheckpointError, match="optimizer_settings must be"):
            trainer(optim.Adam(lr=0.1)).resume(path)


def test_review_r11_resume_of_an_optimizer_whose_update_takes_no_lr(tmp_path):
    """r11: 9e9d4e5 made _checked_lr return None for an optimiser whose update takes no
    step=/lr= (a subclass's override): its lr set during the run was saved, and restored
    before, but the resumed run silently went back to the starting lr."""
    class OwnSGD(optim.SGD):
        def update(self, grads, state, params):  # reads self.lr (a guard of the plan)
            return super().update(grads, state, params)

    path = str(tmp_path / "checkpoint.npz")
    run = trainer(OwnSGD(lr=0.05, momentum=0.9))
    run.train_step()
    run.optimizer.lr = 0.01
    run.train_step()
    run.save(path)
    while run.step < run.steps:
        run.train_step()
    resumed = trainer(OwnSGD(lr=0.05, momentum=0.9))
    resumed.resume(path)
    assert resumed.optimizer.lr == 0.01
    while resumed.step < resumed.steps:
        resumed.train_step()
    for k in run.params:
        np.testing.assert_array_equal(resumed.params[k], run.params[k])


def test_review_r11_an_optimizer_lr_header_lacking_a_key_is_one_line(tmp_path):
    """r11: with null allowed, a header lacking "initial" or "current" passed the check and
    was a KeyError."""
    path = str(tmp_path / "checkpoint.npz")
    for make, bad in ((lambda: optim.SGD(lr=0.1), {"initial": 0.1}),
                      (lambda: optim.SGD(lr=optim.cosine(0.1, steps=10)), {"current": 0.01})):
        t = trainer(make())
        t.train_step()
        checkpoint.save(path, t.state_arrays(), {"step": 1, "rng": t.rng.bit_generator.state,
                                                 "data_position": 1, "optimizer_lr": bad})
        with pytest.raises(checkpoint.CheckpointError, match="optimizer_lr must be"):
            trainer(make()).resume(path)


def test_other_settings_set_between_steps_take_effect_as_torchs():
    """weight_decay, momentum, dampening, betas, eps: read by torch at every step; here
    inputs of the Trainer's step as the lr is (one plan for every value that is not 0). The
    Trainer's clip_norm is a guard of the plan: a change is one recompilation."""
    sgd = trainer(optim.SGD(lr=0.05, momentum=0.9, weight_decay=0.01), clip_norm=1.0)
    while sgd.step < sgd.steps:
        if sgd.step == 3:
            sgd.optimizer.momentum, sgd.optimizer.weight_decay = 0.5, 0.1
        if sgd.step == 6:
            sgd.clip_norm = 0.1
        sgd.train_step()
    want = torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
                     10, {3: {"momentum": 0.5, "weight_decay": 0.1}, 6: {"clip": 0.1}},
                     clip=1.0)
    assert_params(sgd.params, want)
    assert sgd._train_step.recompiles == [
        "recompiling _step_function (compilation 2): Trainer.clip_norm: 1.0 -> 0.1"]
    assert sgd.step_plan is sgd._train_step.plan_for(*sgd._step_args(BATCHES[0]))

    adam = trainer(optim.AdamW(lr=1e-2, weight_decay=0.1))
    while adam.step < adam.steps:
        if adam.step == 5:
            adam.optimizer.betas = (0.8, 0.99)  # torch's group["betas"]
            adam.optimizer.weight_decay, adam.optimizer.eps = 0.3, 1e-6
        adam.train_step()
    want = torch_run(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 10,
                     {5: {"betas": (0.8, 0.99), "weight_decay": 0.3, "eps": 1e-6}})
    assert_params(adam.params, want)
    assert plans(adam) == 1
    # a weight decay set to 0 leaves its computation out: one more plan, and back
    adam.optimizer.weight_decay = 0.0
    adam.train_step()
    adam.optimizer.weight_decay = 0.2
    adam.train_step()
    assert plans(adam) == 2 and len(adam._train_step.recompiles) == 1
    # (a setting of 0 is a constant of the plan, not one of the step's settings inputs)
    assert "settings: pytree structure changed (4 -> 3 arrays)" in \
        adam._train_step.recompiles[0]


def test_a_schedule_replaced_or_a_number_for_one_takes_effect():
    t = trainer(optim.SGD(lr=optim.cosine(0.1, steps=10, warmup=2)))
    for _ in range(3):
        t.train_step()
    t.optimizer.lr = optim.multistep(0.05, [5])  # another schedule: evaluated at each step
    for _ in range(3):
        t.train_step()
    t.optimizer.lr = 0.02  # a number: an input
    for _ in range(2):
        t.train_step()
    t.optimizer.lr = 0.03
    for _ in range(2):
        t.train_step()
    lrs = [optim.cosine(0.1, steps=10, warmup=2)(s) for s in range(3)] + \
        [optim.multistep(0.05, [5])(s) for s in range(3, 6)] + [0.02] * 2 + [0.03] * 2
    w = torch.tensor(W0.copy(), requires_grad=True)
    b = torch.tensor(B0.copy(), requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lrs[0])
    for step, lr in enumerate(lrs):
        opt.param_groups[0]["lr"] = lr
        x, y = (torch.tensor(a) for a in BATCHES[step % len(BATCHES)])
        opt.zero_grad()
        ((x @ w + b - y) ** 2).mean().backward()
        opt.step()
    assert_params(t.params, {"w": w.detach().numpy(), "b": b.detach().numpy()})
    assert plans(t) == 1  # schedules and numbers alike: the lr is an input of the one plan


def test_a_compiled_step_of_ones_own_sees_the_new_settings():
    params = {"w": W0.copy(), "b": B0.copy()}
    opt = optim.SGD(lr=0.1, weight_decay=0.0)
    grads = {"w": np.ones((3, 2)), "b": np.ones(2)}
    step = gc.compile(lambda g, s, p: opt.update(g, s, p))
    state = opt.init(params)
    new, _ = step(grads, state, params)
    np.testing.assert_allclose(new["b"], B0 - 0.1)
    opt.lr = 0.25  # a constant of this plan, guarded: compiled again
    new, _ = step(grads, state, params)
    np.testing.assert_allclose(new["b"], B0 - 0.25)
    opt.weight_decay = 0.5
    new, _ = step(grads, state, params)
    np.testing.assert_allclose(new["b"], B0 - 0.25 * (1 + 0.5 * B0))
    assert len(step.recompiles) == 2 and "SGD.lr: 0.1 -> 0.25" in step.recompiles[0]
    opt.lr = 0.25  # the same number again (a new object): the plan holds
    step(grads, state, params)
    assert len(step.recompiles) == 2
    # given as an input (as gc.Trainer gives it): one plan for every lr
    given = gc.compile(lambda g, s, p, lr: opt.update(g, s, p, lr=lr))
    for lr in (0.1, 0.3):
        opt.lr = lr
        new, _ = given(grads, state, params, np.asarray(opt.lr, np.float64))
        np.testing.assert_allclose(new["b"], B0 - lr * (1 + 0.5 * B0))
    assert given.recompiles == []


def test_eager_bound_optimizer_takes_a_number_lr():
    w = gc.nn.Parameter(np.ones(2))
    opt = optim.SGD(lr=0.1).bind([w])
    w.grad = np.ones(2)
    opt.step()
    opt.optimizer.lr = 0.5  # was: 'float' object is not callable at step()
    opt.step()
    np.testing.assert_allclose(w.data, 1 - 0.1 - 0.5)


def test_changes_the_step_cannot_take_are_one_line_errors():
    t = trainer(optim.SGD(lr=0.05))
    t.train_step()
    t.optimizer.momentum = 0.9  # a momentum buffer the state does not have: the trainer
    t.train_step()  # makes it, as torch's step does (tests/test_trainer_slot_changes.py)
    assert sorted(t.state) == ["count", "momentum", "started"] and plans(t) == 2
    t.optimizer.momentum = 0.0
    t.train_step()  # the plan of before again (the buffer held aside)
    assert sorted(t.state) == ["count"] and plans(t) == 2
    # the functional update, in a step of one's own, cannot make it: one line
    sgd = optim.SGD(lr=0.1)
    params = {"w": W0.copy()}
    state = sgd.init(params)
    sgd.momentum = 0.9
    step = gc.compile(lambda g, s, p: sgd.update(g, s, p))
    assert_one_line_error(lambda: step(params, state, params),
                          "a momentum set from or to 0, needs a new state", F)

    def set_lr(value):
        t.optimizer.lr = value
    assert_one_line_error(lambda: set_lr(-0.1), "lr must be a number >= 0 or a schedule", F)
    assert_one_line_error(lambda: set_lr(True), "lr must be a number >= 0 or a schedule", F)
    set_lr(np.float32(0.02))  # a numpy number is a number
    assert t.optimizer.lr == np.float32(0.02)

    def set_betas(opt, value):
        opt.betas = value
    assert_one_line_error(lambda: set_betas(t.optimizer, (0.9, 0.99)), "SGD has no betas", F)
    assert_one_line_error(lambda: set_betas(optim.Adam(), (0.9, 1.0)),
                          "beta2 must be in [0, 1)", F)
    # a ReduceLROnPlateau made after the Trainer: nothing would step it
    optim.ReduceLROnPlateau(t.optimizer)
    assert_one_line_error(lambda: t.train_step(), "became a ReduceLROnPlateau after the Trainer", F)


def test_a_number_set_as_a_plateaus_lr_is_its_lr_and_a_schedule_is_one_line():
    opt = optim.SGD(lr=0.05)
    plateau = optim.ReduceLROnPlateau(opt)
    t = trainer(opt, eval_batches=BATCHES, eval_iters=1)
    t.train_step()
    plateau.lr = 0.01  # the way to set it: an input of the same plan
    t.train_step()
    opt.lr = 0.02  # torch's param_groups edit under a plateau: the plateau goes on from it
    assert opt.lr is plateau and plateau.lr == 0.02
    t.train_step()
    assert plans(t) == 1
    opt.lr = optim.cosine(0.1, 10)  # a schedule replaces it: nothing would step the plateau
    assert_one_line_error(lambda: t.train_step(), "set the plateau's lr (plateau.lr = x)", F)


# every number setting changed before every step, as torch's param_groups edits (and
# OneCycleLR's cycled momentum) do: (our optimiser, torch's, {our setting: values per step})
EVERY_STEP = [
    (lambda: optim.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
     {"momentum": [0.9, 0.85, 0.8, 0.95, 0.7, 0.9], "dampening": [0.1, 0.2, 0.05, 0.1, 0.3, 0.1],
      "weight_decay": [0.01, 0.02, 0.05, 0.01, 0.03, 0.04]}),
    (lambda: optim.AdamW(lr=1e-2, weight_decay=0.1),
     lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
     {"beta1": [0.9, 0.85, 0.8, 0.95, 0.9, 0.85], "beta2": [0.999, 0.99, 0.995, 0.98, 0.99, 0.9],
      "eps": [1e-8, 1e-6, 1e-3, 1e-8, 1e-5, 1e-7],
      "weight_decay": [0.1, 0.2, 0.05, 0.3, 0.1, 0.01]}),
    (lambda: optim.Adam(lr=1e-2, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),
     {"beta1": [0.9, 0.8, 0.85, 0.95, 0.9, 0.7], "weight_decay": [0.1, 0.2, 0.05, 0.3, 0.1, 0.4]}),
    (lambda: optim.RMSprop(lr=1e-2, momentum=0.5, weight_decay=0.01),
     lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5, weight_decay=0.01),
     {"alpha": [0.99, 0.9, 0.95, 0.8, 0.99, 0.9], "eps": [1e-8, 1e-4, 1e-6, 1e-3, 1e-8, 1e-2],
      "momentum": [0.5, 0.6, 0.9, 0.1, 0.5, 0.3]}),
    (lambda: optim.Adagrad(lr=0.1, lr_decay=0.01, weight_decay=0.01),
     lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01),
     {"lr_decay": [0.01, 0.1, 0.05, 0.2, 0.01, 0.3], "eps": [1e-10, 1e-3, 1e-6, 1e-2, 1e-10, 1e-4]}),
    (lambda: optim.Adamax(lr=1e-2, weight_decay=0.01),
     lambda p: torch.optim.Adamax(p, lr=1e-2, weight_decay=0.01),
     {"beta1": [0.9, 0.8, 0.7, 0.95, 0.9, 0.85], "beta2": [0.999, 0.9, 0.99, 0.95, 0.9, 0.99],
      "eps": [1e-8, 1e-3, 1e-6, 1e-2, 1e-8, 1e-4]}),
    (lambda: optim.NAdam(lr=1e-2, weight_decay=0.01),
     lambda p: torch.optim.NAdam(p, lr=1e-2, weight_decay=0.01),
     {"beta1": [0.9, 0.8, 0.7, 0.95, 0.9, 0.85], "momentum_decay": [4e-3, 1e-2, 4e-2, 1e-3, 4e-3, 2e-2],
      "weight_decay": [0.01, 0.1, 0.05, 0.02, 0.01, 0.2]}),
]


def _torch_key(name):
    return "betas" if name in ("beta1", "beta2") else name


@pytest.mark.parametrize("ours, theirs, values", EVERY_STEP,
                         ids=["SGD", "AdamW", "Adam", "RMSprop", "Adagrad", "Adamax", "NAdam"])
def test_number_settings_changed_every_step_are_torchs_with_one_plan(ours, theirs, values):
    t = trainer(ours(), steps=6)
    changes = {}
    for step in range(6):
        for name, per_step in values.items():
            setattr(t.optimizer, name, per_step[step])
        if "beta1" in values or "beta2" in values:  # torch sets the pair
            changes.setdefault(step, {})["betas"] = t.optimizer.betas
        for name in values:
            if name not in ("beta1", "beta2"):
                changes.setdefault(step, {})[name] = values[name][step]
        t.train_step()
    # (NAdam: torch keeps its momentum products in its float32 default dtype, 1e-9 apart
    # with no change too; tests/test_optim_extra.py)
    assert_params(t.params, torch_run(theirs, 6, changes),
                  rtol=1e-8 if isinstance(t.optimizer, optim.NAdam) else 1e-12)
    assert plans(t) == 1 and t._train_step.recompiles == []


def test_lion_settings_changed_every_step_equal_the_eager_update():
    """Lion has no torch version: the compiled step with its settings changed every step
    equals the eager functional update given the same settings as attributes."""
    values = {"beta1": [0.9, 0.8, 0.95, 0.7], "beta2": [0.99, 0.9, 0.999, 0.95],
              "weight_decay": [1e-3, 1e-2, 0.1, 1e-3]}
    t = trainer(optim.Lion(lr=1e-3), steps=4)
    eager, params = optim.Lion(lr=1e-3), {"w": W0.copy(), "b": B0.copy()}
    state = eager.init(params)
    for step in range(4):
        for name, per_step in values.items():
            setattr(t.optimizer, name, per_step[step])
            setattr(eager, name, per_step[step])
        t.train_step()
        grads = gc.grad(loss)(params, BATCHES[step % len(BATCHES)])
        params, state = eager.update(grads, state, params)
    assert_params(t.params, params)
    assert plans(t) == 1


def test_settings_given_to_update_in_a_step_of_ones_own():
    """update(settings=...) takes the number settings as values of the step, as gc.Trainer
    gives them: one plan for every beta1; a 0 and another value are different plans."""
    opt = optim.SGD(lr=0.1, momentum=0.9)
    params, grads = {"w": W0.copy()}, {"w": np.ones((3, 2))}
    state = opt.init(params)
    step = gc.compile(lambda g, s, p, m: opt.update(g, s, p, settings={"momentum": m}))
    for momentum in (0.9, 0.5, 0.3):
        opt.momentum = momentum  # (as the attribute: the guard reads whether it is 0)
        new, new_state = step(grads, {**state, "momentum": {"w": np.full((3, 2), 2.0)},
                                      "count": np.int64(1)}, params, np.float64(momentum))
        np.testing.assert_allclose(new_state["momentum"]["w"], 2.0 * momentum + 1.0)
        np.testing.assert_allclose(new["w"], W0 - 0.1 * (2.0 * momentum + 1.0))
    assert step.recompiles == []
    assert_one_line_error(lambda: opt.update(grads, state, params, settings={"beta1": 0.5}),
                          "SGD.update: settings must be a dict of weight_decay, momentum, "
                          "dampening, got ['beta1']", F)
    # a value where the attribute is 0: its computation is not in the update
    assert_one_line_error(lambda: optim.SGD(lr=0.1).update(grads, optim.SGD(lr=0.1).init(
        params), params, settings={"momentum": 0.5}), "settings['momentum'] is 0.5, and the "
        "optimizer's momentum is 0, which leaves its computation out of the update", F)
    # a value of the step where the attribute is 0: its computation is not in the plan
    sgd = optim.SGD(lr=0.1)
    given = gc.compile(lambda g, s, p, wd: sgd.update(g, s, p, settings={"weight_decay": wd}))
    assert_one_line_error(lambda: given(grads, sgd.init(params), params, np.float64(0.5)),
                          "settings['weight_decay'] is a value of the step, and the "
                          "optimizer's weight_decay is 0", F)


def test_a_momentum_of_0_given_to_update_is_torchs_plain_step():
    """update(settings={"momentum": 0.0}) eagerly, the attribute a schedule or a number:
    torch's `if momentum != 0` skips the buffer (kept for the next step) and steps along the
    plain gradient. It was refused with 'a value of 0 and another leave different
    computations', no longer true: the update decides on the step's value."""
    momenta = [0.9, 0.0, 0.9, 0.0, 0.5]
    grads = [np.array([1.0, -2.0]) * (i + 1) for i in range(len(momenta))]
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([t], lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)
    for m, g in zip(momenta, grads):
        topt.param_groups[0]["momentum"] = m
        t.grad = torch.tensor(g)
        topt.step()
    for attribute in (optim.one_cycle_momentum(10), 0.9):
        opt = optim.SGD(lr=0.1, momentum=attribute, dampening=0.3, weight_decay=0.01)
        params = {"w": np.zeros(2)}
        state = opt.init(params)
        for m, g in zip(momenta, grads):
            params, state = opt.update({"w": g}, state, params, settings={"momentum": m})
        np.testing.assert_allclose(params["w"], t.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_resume_goes_on_with_the_settings_set_during_the_run(tmp_path):
    """As torch's load_state_dict gives back param_groups' betas and weight decay: a run
    resumed from a checkpoint written after `betas` and `weight_decay` changed goes on with
    them and ends where the uninterrupted run does; a trainer built with other settings keeps
    its own."""
    def run():
        return trainer(optim.AdamW(lr=0.05), steps=8)
    whole = run()
    for step in range(8):
        if step == 4:
            whole.optimizer.betas, whole.optimizer.weight_decay = (0.5, 0.9), 0.3
        whole.train_step()
    first = run()
    for step in range(6):
        if step == 4:
            first.optimizer.betas, first.optimizer.weight_decay = (0.5, 0.9), 0.3
        first.train_step()
    path = str(tmp_path / "c.npz")
    first.save(path)
    assert header(first, path)["optimizer_settings"]["current"]["beta1"] == 0.5
    resumed = run()
    resumed.resume(path)
    assert resumed.optimizer.betas == (0.5, 0.9) and resumed.optimizer.weight_decay == 0.3
    while resumed.step < 8:
        resumed.train_step()
    assert_params(resumed.params, whole.params, rtol=0)
    other = trainer(optim.AdamW(lr=0.05, betas=(0.8, 0.99)), steps=8)
    other.resume(path)
    assert other.optimizer.betas == (0.8, 0.99)  # its own, asked for
    assert other.optimizer.weight_decay == 0.3  # the run's: this trainer started as it did


# (graphc's flag, torch's param_groups key, the optimisers built alike, the tolerance
# against torch: its NAdam keeps mu_product in float32, as test_optim's comparison says)
FLAGS = [("nesterov", "nesterov", lambda: optim.SGD(lr=0.05, momentum=0.9),
          lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 1e-12),
         ("maximize", "maximize", lambda: optim.Adam(lr=0.01),
          lambda p: torch.optim.Adam(p, lr=0.01), 1e-12),
         ("decoupled", "decoupled_weight_decay", lambda: optim.NAdam(lr=0.01, weight_decay=0.2),
          lambda p: torch.optim.NAdam(p, lr=0.01, weight_decay=0.2), 1e-8)]


@pytest.mark.parametrize("flag, theirs, make, make_torch, rtol", FLAGS,
                         ids=[f[0] for f in FLAGS])
def test_resume_goes_on_with_the_flags_set_during_the_run(tmp_path, flag, theirs, make,
                                                          make_torch, rtol):
    """A flag set during the run (`trainer.optimizer.nesterov = True`, torch's
    `group["nesterov"] = True`) is checkpointed with the number settings and restored as
    they are: before, the header kept the numbers only, and the resumed run went on with the
    constructor's flag while the lr set at the same step was kept."""
    path = str(tmp_path / "c.npz")

    def changed(t):  # the script's change at step 4
        t.optimizer.lr = t.optimizer.lr * 0.5
        setattr(t.optimizer, flag, True)
    whole = trainer(make())
    first = trainer(make())
    for t, steps in ((whole, 10), (first, 6)):
        while t.step < steps:
            if t.step == 4:
                changed(t)
            t.train_step()
    first.save(path)
    assert header(first, path)["optimizer_settings"]["current"][flag] is True
    assert header(first, path)["optimizer_settings"]["initial"][flag] is False
    resumed = trainer(make())  # the same script started again
    resumed.resume(path)
    assert getattr(resumed.optimizer, flag) is True
    while resumed.step < 10:
        resumed.train_step()
    assert_params(resumed.params, whole.params, rtol=0)  # bit for bit
    want = torch_run(make_torch, 10, {4: {"lr": whole.optimizer.lr, theirs: True}})
    assert_params(resumed.params, want, rtol)
    # (a flag has two values: a trainer built with another than the run started with has
    # the one the run ended with, which the number settings' rule, its own, keeps)


def test_a_checkpoint_without_flags_resumes_with_the_trainers_own(tmp_path):
    """A header written before the flags were kept (optimizer_settings of numbers only):
    the trainer's flags stay, its numbers are the checkpoint's."""
    path = str(tmp_path / "c.npz")
    t = trainer(optim.SGD(lr=0.05, momentum=0.9))
    t.train_step()
    t.optimizer.nesterov, t.optimizer.momentum = True, 0.5
    t.train_step()
    arrays, meta = checkpoint.load_arrays(*_saved(t, path))
    flags = optim._flags_of(t.optimizer)
    meta["optimizer_settings"] = {k: {n: v for n, v in values.items() if n not in flags}
                                  for k, values in meta["optimizer_settings"].items()}
    checkpoint.save(path, arrays, meta)
    resumed = trainer(optim.SGD(lr=0.05, momentum=0.9))
    resumed.resume(path)
    assert resumed.optimizer.nesterov is False and resumed.optimizer.momentum == 0.5


def _saved(t, path):
    t.save(path)
    return path, {k: (a.shape, a.dtype) for k, a in t.state_arrays().items()}


def test_a_bad_flag_in_the_header_and_a_save_the_state_cannot_hold_are_one_line(tmp_path):
    path = str(tmp_path / "c.npz")
    t = trainer(optim.SGD(lr=0.05, momentum=0.9))
    t.train_step()
    arrays, meta = checkpoint.load_arrays(*_saved(t, path))
    meta["optimizer_settings"]["current"]["nesterov"] = 1  # not a flag
    checkpoint.save(path, arrays, meta)
    with pytest.raises(checkpoint.CheckpointError, match="optimizer_settings must be"):
        trainer(optim.SGD(lr=0.05, momentum=0.9)).resume(path)
    # a flag adding a slot the state lacks: save() holds it as the next step makes it (a
    # KeyError of state_arrays once, then a one-line refusal; test_trainer_slot_changes.py)
    for make, flag, prefix in ((lambda: optim.Adam(lr=0.01), "amsgrad", "adam_v_max"),
                               (lambda: optim.RMSprop(lr=0.01), "centered", "opt_mean_g")):
        t = trainer(make())
        t.train_step()
        setattr(t.optimizer, flag, True)
        arrays, _ = checkpoint.load_arrays(*_saved(t, path))
        np.testing.assert_array_equal(arrays[f"{prefix}/w"], np.zeros_like(W0))
    # a dampening set since the last step: saved with its marks, as the next step makes them
    t = trainer(optim.SGD(lr=0.05, momentum=0.9))
    whole = trainer(optim.SGD(lr=0.05, momentum=0.9))
    for run in (t, whole):
        run.train_step()
        run.optimizer.dampening = 0.5
    t.save(path)
    resumed = trainer(optim.SGD(lr=0.05, momentum=0.9))
    resumed.resume(path)
    assert resumed.optimizer.dampening == 0.5
    for run in (resumed, whole):
        while run.step < 4:
            run.train_step()
    assert_params(resumed.params, whole.params, rtol=0)


def test_a_subclass_reading_its_attributes_keeps_them_guarded():
    """A user's optimiser whose _update_leaf reads self.momentum (written before settings
    were inputs) gets no settings from gc.Trainer: a change recompiles, as before, instead
    of being read as a stale constant; update(settings=) says why it cannot."""
    class MySGD(optim.SGD):
        def _update_leaf(self, p, g, slots, scalars, decay, count):
            buf = slots["momentum"] * self.momentum + g
            return p - scalars["lr"] * buf, {"momentum": buf}
    assert optim.SGD.reads_settings() and optim.AdamW.reads_settings()
    assert not MySGD.reads_settings()
    t = trainer(MySGD(lr=0.05, momentum=0.9), steps=6)
    for step in range(6):
        t.optimizer.momentum = [0.9, 0.5, 0.5, 0.8, 0.8, 0.9][step]
        t.train_step()
    want = torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 6,
                     {1: {"momentum": 0.5}, 3: {"momentum": 0.8}, 5: {"momentum": 0.9}})
    assert_params(t.params, want)
    assert plans(t) == 3  # 0.9, 0.5, 0.8 (0.9 again reuses the first)
    opt = MySGD(lr=0.1, momentum=0.9)
    params = {"w": W0.copy()}
    assert_one_line_error(lambda: opt.update(params, opt.init(params), params,
                                             settings={"momentum": 0.5}),
                          "MySGD.update: settings= needs an update that reads them", F)
