"""Session 19a: trust gaps in the training library.

- gc.Trainer.resume(path) did not compare the trainer's checkpoint_meta (the user's settings,
  saved in the checkpoint's header) with the checkpoint's: a run resumed with another
  learning rate or width recorded there continued silently. It is now refused with one line
  naming each difference (old -> new) unless resume(path, allow_changed_settings=True);
  steps, eval_every, eval_iters and precision may change (extending a run). `graphc train
  --resume` with another --lr likewise exits 2 with one line unless
  --allow-changed-settings.
- gc.Trainer(distributed=True)'s start-up handshake compared the optimiser's class across
  ranks but not its settings: ranks built with another lr, schedule, betas or weight decay
  trained diverging models silently (the gradients are averaged, the updates are not). The
  handshake now compares every setting, a schedule by its values over the run, and refuses
  with one line naming the first difference.
- A process killed while saving left its temporary file beside the checkpoint for good
  (checkpoint.save's .ckpt-XXXX.npz.tmp; graphc.files.atomic_writer's .NAME.XXXX.tmp). Saves
  now go through atomic_writer, whose temporaries are named .NAME.XXXX.graphc-tmp and locked
  (flock) while written; the next write of NAME removes those whose writer is gone, and
  nothing else (not a live writer's, not a link, not another name).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint, optim
from graphc.cli import main
from ir.errors import GraphcError

ROOT = Path(__file__).resolve().parent.parent


# ---- resuming with other settings -----------------------------------------------------------
X = np.random.default_rng(0).normal(size=(16, 3))
Y = np.random.default_rng(1).normal(size=(16, 2))


def _trainer(meta, steps=4, lr=0.1):
    def loss(p, batch):
        return gc.mean((gc.matmul(batch[0], p["w"]) - batch[1]) ** 2)

    def batches(rng):
        rows = rng.integers(0, 16, 4)
        return X[rows], Y[rows]
    w = np.random.default_rng(2).normal(size=(3, 2))
    return gc.Trainer(loss, {"w": w}, optim.SGD(lr=lr, momentum=0.9), batches, steps=steps,
                      eval_every=2, checkpoint_meta=meta)


def test_trainer_resume_refuses_other_settings_unless_allowed(tmp_path):
    saved = {"lr": 0.1, "model": {"width": 3, "depth": 1}, "steps": 2}
    first = _trainer(saved, steps=2)
    first.fit(str(tmp_path), progress=False)
    path = str(tmp_path / "checkpoint.npz")
    w_saved = first.params["w"].copy()

    other = _trainer({"lr": 0.01, "model": {"width": 4, "depth": 1}, "steps": 4,
                      "dropout": 0.1}, lr=0.01)
    w_init = other.params["w"].copy()
    with pytest.raises(GraphcError) as info:
        other.resume(path)
    assert str(info.value) == (
        f"{path} was saved with other settings (dropout: (absent) -> 0.1; lr: 0.1 -> 0.01; "
        "model.width: 3 -> 4); resume with the checkpoint's settings, or pass "
        "allow_changed_settings=True to continue with the new ones")
    # nothing was restored: still the fresh trainer at step 0
    assert other.step == 0
    np.testing.assert_array_equal(other.params["w"], w_init)
    # restore() with the header is refused the same way
    arrays, meta = checkpoint.load_arrays(path, {"param/w": ((3, 2), np.float64),
                                                 "opt_momentum/w": ((3, 2), np.float64)})
    with pytest.raises(GraphcError, match=r"lr: 0\.1 -> 0\.01"):
        other.restore(arrays, meta)

    other.resume(path, allow_changed_settings=True)
    assert other.step == 2
    np.testing.assert_array_equal(other.params["w"], w_saved)

    # only the total steps changed (a run extended): resumes without opting in, and continues
    # as the uninterrupted run does
    longer = _trainer({**saved, "steps": 4})
    longer.resume(path)
    longer.fit(str(tmp_path), progress=False)
    straight = _trainer({**saved, "steps": 4})
    straight.fit(None, progress=False)
    np.testing.assert_array_equal(longer.params["w"], straight.params["w"])
    assert checkpoint.load_arrays(path, {})[1]["steps"] == 4


FAST = ["--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
        "--sample-tokens", "0"]


def test_graphc_train_resume_with_another_lr_exits_2_unless_allowed(tmp_path, capsys):
    text = tmp_path / "text.txt"
    words = ["to be ", "or not ", "that is\n", "the question\n"]
    text.write_text("".join(np.random.default_rng(0).choice(words, 300)), encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", *FAST, "--data", str(text), "--out", str(out)]
    assert main([*args, "--steps", "2", "--lr", "0.005"]) == 0
    ckpt = out / "checkpoint.npz"
    before = ckpt.read_bytes()
    capsys.readouterr()

    assert main([*args, "--steps", "4", "--resume", "--lr", "0.01", "--warmup", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"graphc: error: {ckpt} was saved with other settings (train.lr: 0.005 -> "
                   "0.01; train.warmup: 30 -> 3); resume with the checkpoint's settings, or "
                   "pass --allow-changed-settings to continue with the new ones"]
    assert ckpt.read_bytes() == before

    assert main([*args, "--steps", "4", "--resume", "--lr", "0.01", "--warmup", "3",
                 "--allow-changed-settings"]) == 0
    meta = checkpoint.load(str(ckpt))[1]
    assert meta["step"] == 4 and meta["train"]["lr"] == 0.01 and meta["train"]["warmup"] == 3
    # the same command again: nothing changed but --steps, which may
    assert main([*args, "--steps", "5", "--resume", "--lr", "0.01", "--warmup", "3"]) == 0
    assert checkpoint.load(str(ckpt))[1]["step"] == 5


# ---- data parallelism: every rank's optimiser settings ---------------------------------------
OPTIMIZER_WORKER = textwrap.dedent('''
    import numpy as np
    import graphc as gc
    import graphc.distributed as dist
    from graphc import optim
    from ir.errors import GraphcError

    dist.init(timeout=60)
    X = np.random.default_rng(0).normal(size=(16, 3))
    Y = np.random.default_rng(1).normal(size=(16, 2))

    def loss(p, batch):
        return gc.mean((gc.matmul(batch[0], p["w"]) - batch[1]) ** 2)

    def batches(rng):
        rows = rng.integers(0, 16, 4)
        return X[rows], Y[rows]

    one = dist.rank() == 1
    cases = {  # rank 0's optimiser, then rank 1's
        "lr": lambda: optim.AdamW(lr=0.02 if one else 0.01),
        "warmup": lambda: optim.AdamW(lr=optim.cosine(0.01, steps=8, warmup=2 if one else 0)),
        "betas": lambda: optim.AdamW(lr=0.01, betas=(0.9, 0.99 if one else 0.999)),
        "weight_decay": lambda: optim.AdamW(lr=0.01, weight_decay=0.1 if one else 0.01),
        "momentum": lambda: optim.SGD(lr=0.1, momentum=0.8 if one else 0.9),
        "same": lambda: optim.AdamW(lr=optim.cosine(0.01, steps=8, warmup=2), betas=(0.8, 0.9)),
    }
    for name, make in cases.items():
        try:
            trainer = gc.Trainer(loss, {"w": np.ones((3, 2))}, make(), batches, steps=8,
                                 distributed=True)
            trainer.fit(None, progress=False)
            message = f"trained to step {trainer.step}"
        except GraphcError as exc:
            message = exc.message
        if dist.is_main():
            print(f"{name}: {message}", flush=True)
''')


def test_data_parallel_ranks_with_other_optimizer_settings_are_refused(tmp_path):
    """Before: every case but the class trained (each rank its own updates); now each is
    refused on both ranks, naming the setting and both values."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    (tmp_path / "worker.py").write_text(OPTIMIZER_WORKER)
    from launch import rank_env, run_in_group
    code, output, _ = run_in_group(dist.launch_command(2, [str(tmp_path / "worker.py")]),
                                   rank_env(), 240, merge_output=True)
    assert code == 0, output
    lines = [line for line in output.splitlines() if ": " in line]
    assert lines == [
        "lr: ranks disagree on optimizer.lr at step 0: rank 0 has 0.01, rank 1 has 0.02",
        "warmup: ranks disagree on optimizer.lr at step 0: rank 0 has 0.01, rank 1 has "
        "0.0033333333333333335",
        "betas: ranks disagree on optimizer.beta2: rank 0 has 0.999, rank 1 has 0.99",
        "weight_decay: ranks disagree on optimizer.weight_decay: rank 0 has 0.01, rank 1 has "
        "0.1",
        "momentum: ranks disagree on optimizer.momentum: rank 0 has 0.9, rank 1 has 0.8",
        "same: trained to step 8",
    ], output


# ---- a save killed midway: its temporary file -----------------------------------------------
KILLED_WRITER = textwrap.dedent('''
    import sys, time
    from graphc.files import atomic_writer
    with atomic_writer(sys.argv[1]) as fh:
        fh.write(b"half a checkpoint")
        fh.flush()
        print("writing", flush=True)
        time.sleep(120)  # killed here
''')


def test_the_next_save_removes_a_killed_saves_temporary_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "checkpoint.npz"
    # files a user (or another program) may keep there: never touched
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    users = {".checkpoint.npz.abc123.tmp": "old style", "notes.graphc-tmp": "notes",
             ".checkpoint.npz.a.b.graphc-tmp": "dots", ".other.npz.abc.graphc-tmp": "other",
             "checkpoint.npz.abcdefgh.graphc-tmp": "no leading dot"}
    for name, text in users.items():
        (run / name).write_text(text)
    os.symlink(victim, run / ".checkpoint.npz.linked99.graphc-tmp")

    meta = {"step": 1, "rng": np.random.default_rng(0).bit_generator.state}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(ckpt)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        live = [n for n in os.listdir(run) if n not in users and "linked" not in n]
        assert len(live) == 1 and live[0].startswith(".checkpoint.npz.") \
            and live[0].endswith(".graphc-tmp"), live
        # a save while that writer is alive leaves its file alone
        checkpoint.save(str(ckpt), {"w": np.arange(3.0)}, meta)
        assert (run / live[0]).read_bytes() == b"half a checkpoint"
    finally:
        writer.kill()
        writer.wait()
    assert (run / live[0]).exists()  # the killed save's leftover (before: there for good)

    checkpoint.save(str(ckpt), {"w": np.arange(4.0)}, {**meta, "step": 2})
    assert not (run / live[0]).exists()
    assert sorted(os.listdir(run)) == sorted([*users, ".checkpoint.npz.linked99.graphc-tmp",
                                              "checkpoint.npz"])
    for name, text in users.items():
        assert (run / name).read_text() == text
    assert victim.read_text() == "keep"
    arrays, saved = checkpoint.load_arrays(str(ckpt), {"w": ((4,), np.float64)})
    np.testing.assert_array_equal(arrays["w"], np.arange(4.0))
    assert saved["step"] == 2
