"""Review of session 14 (d): the training library (graphc/trainer.py, graphc/optim.py,
graphc/amp.py) and data-parallel training on MPI (graphc/distributed.py, the watchdog,
tests/mpi_worker.py). Each test failed before its fix."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def test_a_signal_reaching_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """mpiexec forwards SIGINT/SIGTERM to every rank, but each rank receives it at its own
    moment: one rank may see it before its step-boundary check and another after. Each rank
    used its own flag, so rank 1 stopped after step 3 while rank 0 went on into step 5's
    all-reduce, waiting for a rank that had left (a hang until the watchdog, no checkpoint
    of step 3). The ranks now agree at each boundary: both stop after
    step 3 (at step 4) and rank 0 saves it."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install "
                        "'graphc[mpi]'")  # as tests/test_mpi.py
    from test_mpi import run_ranks
    from graphc import checkpoint

    code, output, _ = run_ranks("sigterm1", tmp_path, timeout=90, watchdog_timeout=10)
    assert code == 0, output
    lines = sorted(line for line in output.splitlines() if " stopped " in line)
    assert lines == [f"rank 0 stopped {int(signal.SIGTERM)} at step 4",
                     f"rank 1 stopped {int(signal.SIGTERM)} at step 4"], output
    import mpi_worker
    expected = mpi_worker.make_trainer(4, False)  # one process, 4 steps: what was saved
    expected.fit(str(tmp_path / "one"), progress=False)
    wanted = {k: (a.shape, a.dtype) for k, a in expected.state_arrays().items()}
    got, meta = checkpoint.load_arrays(str(tmp_path / "sigterm" / "checkpoint.npz"), wanted)
    assert meta["step"] == 4
    for key, value in expected.state_arrays().items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


def test_the_progress_rate_counts_the_global_batch_once_on_many_ranks():
    """The progress bar's samples (tokens) per second: every rank draws the whole global
    batch (then keeps its rows), and _per_batch was given that global batch, yet multiplied
    it by the rank count again: 2 ranks x a global batch of 8 rows reported 16 samples per
    step (N times the true rate). A stand-in for graphc.distributed with 2 ranks shows it."""
    import types
    import mpi_worker

    trainer = mpi_worker.make_trainer(1, False)
    batch = trainer.train_batches.peek(trainer.rng)  # what _loop gives it: the global batch
    assert len(batch[0]) == mpi_worker.GLOBAL_BATCH == 8
    assert trainer._per_batch(batch) == 8
    trainer.dist = types.SimpleNamespace(size=lambda: 2, rank=lambda: 0)
    assert trainer._per_batch(batch) == 8  # was 16
    trainer.units = "tokens"
    assert trainer._per_batch(batch) == 8 * 5  # the x rows' values: 8 rows of 5


def test_resume_continues_a_float32_checkpoint_in_fp16_mixed(tmp_path):
    """Trainer.restore() lets a float32 run's checkpoint continue under fp16-mixed (the loss
    scale starts afresh, as GradScaler's; `graphc train --resume` relies on it), but
    Trainer.resume(path), the library's way in, asked the file for amp/scale and refused it:
    `checkpoint ... lacks amp/scale`. It now resumes at the checkpoint's step, with the
    saved parameters and AdamW moments and a fresh scale of 2**16."""
    import mpi_worker
    import graphc as gc

    plain = mpi_worker.make_trainer(2, False, "float32")
    assert plain.fit(str(tmp_path / "plain"), progress=False) == 0
    saved = {k: a.copy() for k, a in plain.state_arrays().items()}
    x, y, params = mpi_worker.mlp_inputs()
    switched = gc.Trainer(plain.loss, dict(zip(["w1", "b1", "w2", "b2"],
                                               [p.astype("float32") for p in params])),
                          gc.optim.AdamW(lr=1e-2, weight_decay=0.1),
                          plain.train_batches.function, steps=4, clip_norm=1.0,
                          precision="fp16-mixed")
    switched.resume(str(tmp_path / "plain" / "checkpoint.npz"))
    assert switched.step == 2 and float(switched.amp_state["scale"]) == 2.0 ** 16
    got = switched.state_arrays()
    for key, value in saved.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    # and a fp16-mixed checkpoint still gives back its own scale
    switched.amp_state["scale"] = np.asarray(2.0 ** 10, np.float32)
    switched.save(str(tmp_path / "half.npz"))
    again = gc.Trainer(plain.loss, dict(zip(["w1", "b1", "w2", "b2"],
                                            [p.astype("float32") for p in params])),
                       gc.optim.AdamW(lr=1e-2, weight_decay=0.1),
                       plain.train_batches.function, steps=4, clip_norm=1.0,
                       precision="fp16-mixed")
    again.resume(str(tmp_path / "half.npz"))
    assert float(again.amp_state["scale"]) == 2.0 ** 10
