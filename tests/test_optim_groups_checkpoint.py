"""gc.optim.Groups under gc.Trainer's checkpoints: a group's setting changed mid-run
(`trainer.optimizer.optimizers[i].lr = x`, torch's `opt.param_groups[i]["lr"] = x`, weight
decay, betas, eps) is in the header (group_settings), so a run saved after the change and
resumed ends bit for bit where the uninterrupted run does; before, the resumed run went on
with the settings it was built with (0.086 off in head.w after 6 steps). A checkpoint
written before group_settings resumes with the trainer's own settings, as it did."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import checkpoint, optim

F = "test_optim_groups_checkpoint.py"

from optim_groups_helpers import P0, X, Y, loss


def make(backbone_lr=1e-2):
    groups = optim.Groups((optim.AdamW(lr=backbone_lr, weight_decay=0.1), ["backbone"]),
                          (optim.AdamW(lr=1e-1, weight_decay=0.0), "head"))
    return gc.Trainer(loss, {k: v.copy() for k, v in P0.items()}, groups, [(X, Y)], steps=6,
                      seed=1)


def change(trainer):  # at step 2, as torch's param_groups[i][...] = ... between steps
    first, second = trainer.optimizer.optimizers
    first.lr, first.weight_decay = 3e-3, 0.2
    second.betas, second.eps = (0.8, 0.99), 1e-6


def run(trainer, until):
    while trainer.step < until:
        if trainer.step == 2:
            change(trainer)
        trainer.train_step()
    return trainer


def test_a_group_setting_changed_mid_run_is_resumed_bit_for_bit(tmp_path):
    whole = run(make(), 6)
    run(make(), 4).save(str(tmp_path / "c.npz"))
    _, meta = checkpoint.load_arrays(str(tmp_path / "c.npz"), {})
    saved = meta["group_settings"]
    assert [g["class"] for g in saved] == ["AdamW", "AdamW"]
    assert saved[0]["optimizer_lr"] == {"initial": 1e-2, "current": 3e-3}
    assert saved[0]["optimizer_settings"]["current"]["weight_decay"] == 0.2
    assert saved[1]["optimizer_settings"]["current"]["beta1"] == 0.8
    resumed = make()
    resumed.resume(str(tmp_path / "c.npz"))
    first, second = resumed.optimizer.optimizers
    assert (first.lr, first.weight_decay, second.beta1, second.beta2, second.eps) == \
        (3e-3, 0.2, 0.8, 0.99, 1e-6)
    run(resumed, 6)
    want = whole.state_arrays()
    assert set(resumed.state_arrays()) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], value, err_msg=key)
    # the settings of the run it continued: not those it was built with
    built_with = make()
    built_with.resume(str(tmp_path / "c.npz"))
    built_with.optimizer.optimizers[0].lr = 1e-2
    while built_with.step < 6:
        built_with.train_step()
    assert not np.array_equal(built_with.params["backbone.w"], whole.params["backbone.w"])


def test_a_trainer_given_another_group_setting_keeps_its_own(tmp_path):
    """As a single optimiser's (_resumed_setting): a value this trainer was built with that
    is not the one the saved run started with is the user's choice, and stays."""
    run(make(), 4).save(str(tmp_path / "c.npz"))
    resumed = make(backbone_lr=5e-3)
    resumed.resume(str(tmp_path / "c.npz"))
    first, second = resumed.optimizer.optimizers
    assert (first.lr, first.weight_decay, second.beta1) == (5e-3, 0.2, 0.8)


def test_a_checkpoint_without_group_settings_resumes_with_the_trainers_own(tmp_path):
    trainer = run(make(), 4)
    trainer.save(str(tmp_path / "c.npz"))
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    arrays, meta = checkpoint.load_arrays(str(tmp_path / "c.npz"), wanted)
    old = {k: v for k, v in meta.items() if k not in ("format", "version", "group_settings")}
    checkpoint.save(str(tmp_path / "old.npz"), arrays, old)
    resumed = make()
    resumed.resume(str(tmp_path / "old.npz"))
    first, second = resumed.optimizer.optimizers
    assert resumed.step == 4
    assert (first.lr, first.weight_decay, second.beta1, second.eps) == (1e-2, 0.1, 0.9, 1e-8)
    for key, value in arrays.items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], value, err_msg=key)


def test_a_group_lr_set_to_a_schedule_is_refused_on_resuming_unless_allowed(tmp_path):
    trainer = run(make(), 1)
    trainer.optimizer.optimizers[0].lr = lambda step: 1e-3
    trainer.save(str(tmp_path / "c.npz"))
    assert_one_line_error(
        lambda: make().resume(str(tmp_path / "c.npz")),
        "its run started with optimizers[0].lr 0.01 and was set to a schedule, which a "
        "checkpoint cannot hold; set trainer.optimizer.optimizers[0].lr to that schedule", F)
    resumed = make()
    resumed.resume(str(tmp_path / "c.npz"), allow_changed_settings=True)
    assert resumed.optimizer.optimizers[0].lr == 1e-2


@pytest.mark.parametrize("bad", [{"class": "AdamW"}, [1], [{"optimizer_lr": 1}]])
def test_a_bad_group_settings_header_is_one_line(tmp_path, bad):
    trainer = run(make(), 1)
    trainer.save(str(tmp_path / "c.npz"))
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    arrays, meta = checkpoint.load_arrays(str(tmp_path / "c.npz"), wanted)
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    checkpoint.save(str(tmp_path / "bad.npz"), arrays, {**meta, "group_settings": bad})
    with pytest.raises(checkpoint.CheckpointError, match="group_settings must be a list"):
        make().resume(str(tmp_path / "bad.npz"))
