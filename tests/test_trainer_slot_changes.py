"""A setting that adds or drops an optimiser state slot, changed mid-run in gc.Trainer (SGD's or
RMSprop's momentum from or to 0, Adam's amsgrad, RMSprop's centered), as torch's param_groups
edit: the trainer's state follows it (a new slot as init makes it, one set off held aside and
used again when the setting comes back) and the compiled step is compiled again, where it was
refused in one line ("set it back, or build the Trainer with it"). Against torch's loop in
float64."""
import numpy as np
import pytest

import graphc as gc

from graphc import checkpoint, optim
from test_hyperparameter_changes import BATCHES, B0, W0, assert_params, torch_run, trainer

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def _run(t, changes):
    while t.step < t.steps:
        for key, value in changes.get(t.step, {}).items():
            setattr(t.optimizer, key, value)
        t.train_step()
    return t


def test_sgd_momentum_from_zero_to_zero_and_back_is_torchs():
    """torch starts the buffer at the first step under a momentum (undamped), keeps it while
    the momentum is 0 and goes on from it when the momentum comes back."""
    changes = {2: {"momentum": 0.9, "dampening": 0.5}, 4: {"momentum": 0.0},
               5: {"momentum": 0.8}}
    t = _run(trainer(optim.SGD(lr=0.05), steps=7), changes)
    want = torch_run(lambda p: torch.optim.SGD(p, lr=0.05), 7, changes)
    assert_params(t.params, want)
    assert sorted(t.state) == ["count", "momentum", "started"]
    # the buffer held aside over step 4 is used again at step 5: torch's run with a fresh
    # one there gives other parameters
    fresh = _torch_with_new_slot(lambda p: torch.optim.SGD(p, lr=0.05), 7, changes,
                                 "momentum_buffer", "momentum", restart=5)
    assert not np.allclose(fresh["w"], t.params["w"], rtol=1e-6)
    # the step compiled again for each new form of the state, once each
    assert len(t._train_step.recompiles) <= 3


def _torch_with_new_slot(make, steps, changes, slot, flag, restart=None):
    """torch's loop, the slot `flag` adds started as zeros when the flag is set (torch's
    own step fails there, its state lacking it: graphc starts it as init makes it);
    `restart`: the step before which `slot` is dropped (torch starts it again)."""
    w = torch.tensor(W0.copy(), requires_grad=True)
    b = torch.tensor(B0.copy(), requires_grad=True)
    opt = make([w, b])
    for step in range(steps):
        for key, value in changes.get(step, {}).items():
            opt.param_groups[0][key] = value
            if key == flag and value is True:
                for p in (w, b):
                    opt.state[p].setdefault(slot, torch.zeros_like(p))
        if step == restart:
            for p in (w, b):
                del opt.state[p][slot]
        x, y = (torch.tensor(a) for a in BATCHES[step % len(BATCHES)])
        opt.zero_grad()
        ((x @ w + b - y) ** 2).mean().backward()
        opt.step()
    return {"w": w.detach().numpy(), "b": b.detach().numpy()}


@pytest.mark.parametrize("make, torch_make, flag, slot", [
    (lambda: optim.Adam(lr=0.02), lambda p: torch.optim.Adam(p, lr=0.02), "amsgrad",
     "max_exp_avg_sq"),
    (lambda: optim.RMSprop(lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01), "centered",
     "grad_avg"),
])
def test_a_flag_adding_a_slot_mid_run(make, torch_make, flag, slot):
    # on at step 2 (the slot as init makes it), off at step 4 (held aside, the update as
    # torch's without the flag)
    changes = {2: {flag: True}, 4: {flag: False}}
    t = _run(trainer(make(), steps=6), changes)
    assert_params(t.params, _torch_with_new_slot(torch_make, 6, changes, slot, flag))


def test_a_save_after_the_flag_resumes_as_the_whole_run(tmp_path):
    """save() between the change and the next step holds the new slot as the step makes it
    (it was refused in one line); the resumed run goes on as the one that never stopped."""
    path = str(tmp_path / "c.npz")
    t, whole = trainer(optim.Adam(lr=0.02), steps=5), trainer(optim.Adam(lr=0.02), steps=5)
    for run in (t, whole):
        run.train_step()
        run.train_step()
        run.optimizer.amsgrad = True
    t.save(path)
    arrays, meta = checkpoint.load_arrays(path, {k: (a.shape, a.dtype)
                                                 for k, a in t.state_arrays().items()})
    assert meta["optimizer_settings"]["current"]["amsgrad"] is True
    np.testing.assert_array_equal(arrays["adam_v_max/w"], np.zeros_like(W0))
    resumed = trainer(optim.Adam(lr=0.02), steps=5)
    resumed.resume(path)
    assert resumed.optimizer.amsgrad is True
    _run(resumed, {})
    _run(whole, {})
    assert_params(resumed.params, whole.params, rtol=0)


@pytest.mark.parametrize("saved, resuming, line", [
    (lambda: optim.SGD(lr=0.05), lambda: optim.SGD(lr=0.05, momentum=0.9),
     "SGD keeping no state, this run uses SGD keeping momentum_buffer (momentum > 0); resume "
     "with the checkpoint's optimizer, or pass allow_changed_settings=True to start "
     "momentum_buffer afresh"),
    (lambda: optim.Adam(lr=0.02), lambda: optim.Adam(lr=0.02, amsgrad=True),
     "Adam keeping exp_avg, exp_avg_sq, this run uses Adam keeping exp_avg, exp_avg_sq, "
     "max_exp_avg_sq (amsgrad=True); resume with the checkpoint's optimizer, or pass "
     "allow_changed_settings=True to start max_exp_avg_sq afresh"),
])
def test_resume_names_the_state_in_torchs_words(tmp_path, saved, resuming, line):
    """The resume line named graphc's slots, SGD's internal "started" mark among them
    ("keeping momentum, started"); it names torch's state (momentum_buffer, exp_avg, ...)
    and the setting that adds it, the mark left out."""
    path = str(tmp_path / "c.npz")
    t = trainer(saved(), steps=2)
    t.train_step()
    t.save(path)
    with pytest.raises(gc.GraphcError) as info:
        trainer(resuming(), steps=2).resume(path)
    assert str(info.value).splitlines()[0] == f"{path} was saved with {line}"
    assert "started" not in str(info.value)


def test_a_slot_that_cannot_be_held_aside_is_one_line_in_torchs_words():
    """An optimiser of one's own whose dropped slot is not optional: the one line names the
    state as the resume line does (it listed ['momentum', 'started'])."""
    class MySGD(optim.SGD):
        optional_slots = ()
    t = trainer(MySGD(lr=0.05, momentum=0.9), steps=3)
    t.train_step()
    t.optimizer.momentum = 0.0
    with pytest.raises(gc.GraphcError) as info:
        t.train_step()
    assert str(info.value).splitlines()[0] == (
        "Trainer: MySGD's settings now keep no state, the trainer's state holds "
        "momentum_buffer (momentum > 0), and a slot not in its optional_slots cannot be held "
        "aside; set it back, or build the Trainer with it")
    assert t.step == 1  # (refused before the batch was drawn)


def test_a_run_whose_momentum_was_set_from_zero_resumes_with_its_buffer(tmp_path):
    """Saved after SGD's momentum was set from 0 mid-run, resumed by a trainer built with
    the run's starting settings (momentum 0): the header's current momentum comes back and
    so does the checkpoint's buffer (the trainer's own state had none: it started afresh at
    the next step, silently another run), as torch's load_state_dict gives both back."""
    path = str(tmp_path / "c.npz")
    changes = {2: {"momentum": 0.9, "dampening": 0.3}}
    t = trainer(optim.SGD(lr=0.05), steps=6)
    while t.step < 4:
        for key, value in changes.get(t.step, {}).items():
            setattr(t.optimizer, key, value)
        t.train_step()
    t.save(path)
    resumed = trainer(optim.SGD(lr=0.05), steps=6)
    resumed.resume(path)
    assert resumed.optimizer.momentum == 0.9
    np.testing.assert_array_equal(resumed.state["momentum"]["w"], t.state["momentum"]["w"])
    _run(resumed, {})
    _run(t, {})
    assert_params(resumed.params, t.params, rtol=0)
    assert_params(t.params, torch_run(lambda p: torch.optim.SGD(p, lr=0.05), 6, changes))
