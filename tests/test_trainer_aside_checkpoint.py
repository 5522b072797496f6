"""A checkpoint of a gc.Trainer run whose optimiser setting dropped a state slot mid-run (SGD's
momentum set to 0, RMSprop's centered set off): the slot held aside is saved under its own
name and held aside again by the resume, as torch's state_dict keeps a momentum buffer while
the momentum is 0 (it was lost: a resumed run whose setting came back started it afresh, 0.72
relative from the run that never stopped), and the saved slots are compared with the
optimiser as the header's settings restore it (a trainer built as the run started, with the
momentum on, was refused: "was saved with SGD keeping no state"). Against the run that never
stopped, bit for bit, and torch's loop in float64."""
import numpy as np
import pytest

from graphc import checkpoint, optim
from test_hyperparameter_changes import assert_params, torch_run, trainer
from test_trainer_slot_changes import _torch_with_new_slot

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def _run(t, changes, upto=None):
    while t.step < (t.steps if upto is None else upto):
        for key, value in changes.get(t.step, {}).items():
            setattr(t.optimizer, key, value)
        t.train_step()
    return t


def _arrays(path, t):
    """The checkpoint's arrays, each that it holds of those `t` could have."""
    wanted = {k: (a.shape, a.dtype) for k, a in t.state_arrays().items()}
    wanted.update(t._optional_slot_arrays())
    return checkpoint.load_arrays(path, wanted, optional=list(wanted))


def test_a_run_that_set_the_momentum_to_0_resumes_from_its_own_script(tmp_path):
    """Momentum 0.9 -> 0 before step 2, saved at step 3, resumed by the script's own trainer
    (momentum 0.9): the header's momentum of 0 comes back, the buffer held aside, and the
    resumed run is the whole run; a checkpoint without the held-aside buffer (as written
    before they were saved) resumes too."""
    path, older = str(tmp_path / "c.npz"), str(tmp_path / "older.npz")
    changes = {2: {"momentum": 0.0}}
    whole = _run(trainer(optim.SGD(lr=0.05, momentum=0.9), steps=5), changes)
    t = _run(trainer(optim.SGD(lr=0.05, momentum=0.9), steps=5), changes, upto=3)
    t.save(path)
    arrays, meta = _arrays(path, t)
    assert meta["optimizer_record"]["slots"] == []
    np.testing.assert_array_equal(arrays["opt_momentum/w"], t._aside_slots["momentum"]["w"])
    t._aside_slots = {}
    t.save(older)
    assert not any(k.startswith("opt_") for k in _arrays(older, t)[0])
    for file in (path, older):
        resumed = trainer(optim.SGD(lr=0.05, momentum=0.9), steps=5)
        resumed.resume(file)
        assert resumed.optimizer.momentum == 0.0
        assert sorted(resumed.state) == ["count"]
        assert sorted(resumed._aside_slots) == ([] if file == older else ["momentum", "started"])
        _run(resumed, changes)
        assert_params(resumed.params, whole.params, rtol=0)
    assert_params(whole.params, torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                          5, changes))


@pytest.mark.parametrize("built", [0.9, 0.0])
def test_a_buffer_held_aside_is_checkpointed_and_used_when_the_momentum_comes_back(tmp_path,
                                                                                   built):
    """Momentum 0.9, 0 at step 2, saved at step 3, 0.9 again at step 4 after the resume (by
    a trainer built with the momentum on or off): the saved buffer goes on, as torch's."""
    path = str(tmp_path / "c.npz")
    changes = {2: {"momentum": 0.0}, 4: {"momentum": 0.9}}
    whole = _run(trainer(optim.SGD(lr=0.05, momentum=0.9), steps=6), changes)
    t = _run(trainer(optim.SGD(lr=0.05, momentum=0.9), steps=6), changes, upto=3)
    t.save(path)
    resumed = trainer(optim.SGD(lr=0.05, momentum=built), steps=6)
    resumed.resume(path)
    np.testing.assert_array_equal(resumed._aside_slots["momentum"]["w"],
                                  t._aside_slots["momentum"]["w"])
    _run(resumed, changes)
    assert_params(resumed.params, whole.params, rtol=0)
    assert_params(whole.params, torch_run(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                                          6, changes))


def test_rmsprops_mean_g_held_aside_is_checkpointed(tmp_path):
    """RMSprop's centered on at step 1, off at 3 (mean_g aside), saved at 4, on again at 5."""
    path = str(tmp_path / "c.npz")
    changes = {1: {"centered": True}, 3: {"centered": False}, 5: {"centered": True}}
    whole = _run(trainer(optim.RMSprop(lr=0.01), steps=7), changes)
    t = _run(trainer(optim.RMSprop(lr=0.01), steps=7), changes, upto=4)
    t.save(path)
    assert "opt_mean_g/w" in _arrays(path, t)[0]
    resumed = trainer(optim.RMSprop(lr=0.01), steps=7)
    resumed.resume(path)
    assert sorted(resumed._aside_slots) == ["mean_g"]
    _run(resumed, changes)
    assert_params(resumed.params, whole.params, rtol=0)
    # (torch's step fails where centered is set on without grad_avg: started as zeros there)
    assert_params(whole.params, _torch_with_new_slot(
        lambda p: torch.optim.RMSprop(p, lr=0.01), 7, changes, "grad_avg", "centered"))


def test_a_checkpoint_holding_nothing_aside_has_the_arrays_it_always_had(tmp_path):
    """AdamW as `graphc train` runs it: the parameters and adam_m / adam_v, nothing more."""
    path = str(tmp_path / "c.npz")
    t = _run(trainer(optim.AdamW(lr=0.01), steps=2), {})
    t.save(path)
    assert sorted(_arrays(path, t)[0]) == ["adam_m/b", "adam_m/w", "adam_v/b", "adam_v/w",
                                           "param/b", "param/w"]
    assert sorted(t.state_arrays()) == sorted(_arrays(path, t)[0])
