"""Session 18d review: training checked the way a PyTorch / optax / DDP user would, for wrong
numbers and lost work (resume, checkpoints, optimizers against torch, data parallelism).

- gc.Trainer(distributed=True) whose ranks initialise their parameters differently (an
  unseeded or rank-dependent init) must train one model, rank 0's, as DDP does by
  broadcasting the module's parameters when it is built; before the fix every rank applied
  the same averaged updates to its own weights, and rank 0's checkpoint held only rank 0's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

ROOT = Path(__file__).resolve().parent.parent


# ---- data parallelism: the same initial parameters on every rank ----------------------------
INIT_WORKER = textwrap.dedent('''
    import os, sys
    import numpy as np
    import graphc.distributed as dist
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    dist.init(timeout=60)
    from case import make
    trainer = make(seed=100 + dist.rank())      # each rank draws its own initial weights
    trainer.fit(None, progress=False)
    np.save(os.path.join(sys.argv[1], f"w{dist.rank()}.npy"), trainer.params["w"])
''')

INIT_CASE = textwrap.dedent('''
    import numpy as np
    import graphc as gc

    X = np.random.default_rng(0).normal(size=(16, 3))
    Y = np.random.default_rng(1).normal(size=(16, 2))

    def make(seed, distributed=True):
        params = {"w": np.random.default_rng(seed).normal(size=(3, 2))}

        def loss(p, batch):
            return gc.mean((gc.matmul(batch[0], p["w"]) - batch[1]) ** 2)

        def batches(rng):
            rows = rng.integers(0, 16, 4)
            return X[rows], Y[rows]
        return gc.Trainer(loss, params, gc.optim.SGD(lr=0.1, momentum=0.9), batches, steps=3,
                          distributed=distributed)
''')


def _mpiexec(script, args, timeout=240):
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    env = dist.launch_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")
    proc = subprocess.Popen(dist.launch_command(2, [str(script), *map(str, args)]), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec ran past {timeout} s:\n{output}")
    assert proc.returncode == 0, output
    return output


def test_data_parallel_ranks_train_rank_0s_initial_parameters(tmp_path):
    (tmp_path / "worker.py").write_text(INIT_WORKER)
    (tmp_path / "case.py").write_text(INIT_CASE)
    _mpiexec(tmp_path / "worker.py", [tmp_path])
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    np.testing.assert_array_equal(w0, w1)  # one model, not one per rank
    # and it is rank 0's init trained on the whole batch by one process
    sys.path.insert(0, str(tmp_path))
    try:
        from case import make
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("case", None)
    single = make(seed=100, distributed=False)
    single.fit(None, progress=False)
    np.testing.assert_allclose(w0, single.params["w"], rtol=0, atol=1e-12)

