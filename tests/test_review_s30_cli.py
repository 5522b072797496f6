"""Session 30's findings on the training library, checkpoints and the CLI (a helper's
hostile review); each test failed before its fix."""
import os

import numpy as np
import pytest

from graphc import checkpoint
from graphc.cli import main
from test_trainer import make_trainer


def _header(path):
    trainer = make_trainer()
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    return checkpoint.load_arrays(str(path), wanted)[1]


def test_fit_refuses_to_replace_another_runs_checkpoint(tmp_path, capsys):
    """`graphc train` refuses an --out holding a checkpoint ("already exists; pass
    --resume"); Trainer.fit(out), which the README says has what graphc train has, replaced a
    step-40 checkpoint with a step-5 one."""
    first = make_trainer(steps=10)
    first.fit(str(tmp_path), progress=False)
    ckpt = tmp_path / "checkpoint.npz"
    before = ckpt.read_bytes()
    with pytest.raises(Exception, match="already exists, from another run"):
        make_trainer(steps=5).fit(str(tmp_path), progress=False)
    assert ckpt.read_bytes() == before
    first.steps = 20  # the run that wrote it goes on, and a resumed one may
    first.fit(str(tmp_path), progress=False)
    resumed = make_trainer(steps=30)
    resumed.resume(str(ckpt))
    resumed.fit(str(tmp_path), progress=False)
    assert _header(ckpt)["step"] == 30


def test_checkpoint_meta_with_numpy_scalars_is_saved_and_other_values_refused_at_once(
        tmp_path):
    """n_head=np.int64(2) trained to the first save and crashed there ("int64 is not JSON
    serializable"), the work lost; a value JSON cannot hold is refused when the trainer is
    built, before any step."""
    trainer = make_trainer(steps=10, checkpoint_meta={"lr": np.float32(0.5),
                                                      "heads": np.int64(2)})
    trainer.fit(str(tmp_path), progress=False)
    meta = _header(tmp_path / "checkpoint.npz")
    assert meta["lr"] == 0.5 and meta["heads"] == 2
    with pytest.raises(Exception, match="checkpoint_meta: a checkpoint header holds JSON"):
        make_trainer(checkpoint_meta={"when": object()})


def test_evaluation_batches_are_drawn_one_at_a_time():
    """A large eval_iters drew every batch first (24 GB, then the kernel's out-of-memory
    kill); they are drawn as they are scored."""
    trainer = make_trainer()
    drawn = []

    def batches(rng):
        drawn.append(1)
        return np.zeros((1, 2), np.float32), np.zeros(1, np.int64)
    from graphc.trainer import _Batches
    lazy = _Batches(batches, "eval_batches").sample(np.random.default_rng(0), 10 ** 12)
    assert drawn == []
    next(lazy)
    assert drawn == [1]
    assert np.isfinite(trainer.evaluate())


def test_bench_concurrent_is_limited_as_ranks_is(capsys):
    """--concurrent 100000 started a process per copy (load 29 on 2 CPUs)."""
    assert main(["bench", "--concurrent", "100000", "--workloads", "mlp-train",
                 "--steps", "1"]) == 2
    cpus = os.cpu_count() or 1
    assert capsys.readouterr().err == (
        f"graphc: error: --concurrent 100000 is more than 8 processes for each of this "
        f"machine's {cpus} CPUs; use fewer\n")
