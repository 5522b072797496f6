"""Session 33's fixes of data-parallel training and its launchers (graphc train/bench --ranks,
python -m bench.data_parallel, the start-up handshake, the trainer's batch split); each test
failed before its fix."""
from __future__ import annotations

import json
import math
import sys
import textwrap
import types

import numpy as np
import pytest

import graphc as gc
import graphc.distributed as dist


# ---- the handshake: equal NaN settings agree ------------------------------------------------
def _as_a_rank_receives(facts):
    """facts after the JSON round trip the handshake sends them through (each rank gets its
    own float('nan') objects)."""
    return json.loads(json.dumps(facts, sort_keys=True, default=str))


def test_ranks_holding_the_same_nan_setting_agree():
    """Ranks whose settings both hold NaN (checkpoint_meta={"best_val": nan}, a best value
    not yet measured) were refused: `ranks disagree on settings.best_val: rank 0 has NaN,
    rank 1 has NaN` (NaN == NaN is False). Now equal NaNs agree, in lists and nested dicts
    too, and a NaN against a number still differs."""
    facts = {"settings": {"best_val": math.nan, "history": [1.0, math.nan],
                          "runs": [{"val": math.nan}]}, "steps": 3}
    rank0, rank1 = _as_a_rank_receives(facts), _as_a_rank_receives(facts)
    assert dist._first_difference(rank0, rank1) is None
    other = _as_a_rank_receives({**facts, "settings": {**facts["settings"], "best_val": 1.5}})
    path, mine, theirs = dist._first_difference(rank0, other)
    assert path == "settings.best_val" and math.isnan(mine) and theirs == 1.5
    other = _as_a_rank_receives({**facts, "settings": {**facts["settings"],
                                                       "history": [1.0, 2.0]}})
    path, mine, theirs = dist._first_difference(rank0, other)
    assert path == "settings.history" and theirs == [1.0, 2.0]
    assert dist._first_difference({"n": 1}, {"n": 1.0}) is None  # as before


# ---- the trainer's batch split --------------------------------------------------------------
X = np.random.default_rng(0).normal(size=(12, 4))
Y = np.random.default_rng(1).normal(size=(12, 3))
PER_CLASS = np.array([1.0, 2.0, 3.0])


def _weighted_loss(p, batch):
    x, y, w = batch
    return gc.mean(((x @ p["w"] - y) ** 2) * w)


def _trainer(batch):
    return gc.Trainer(_weighted_loss, {"w": np.zeros((4, 3))}, gc.optim.SGD(lr=0.1),
                      lambda rng: batch, steps=2)


def _as_rank(trainer, rank, size=2):
    """The trainer split batches as rank `rank` of `size` does (distributed.shard's rows)."""
    trainer.dist = types.SimpleNamespace(rank=lambda: rank, size=lambda: size,
                                         shard=lambda rows: dist.shard(rows, rank, size))


@pytest.mark.parametrize("third, shape", [(np.float64(2.0), "()"), (PER_CLASS, "(3,)")])
def test_a_batch_element_that_is_not_per_row_is_refused_the_same_on_every_rank(third, shape):
    """Every batch element is split by rows across the ranks. A 0-d element (X, Y, 2.0)
    failed on every rank with a raw IndexError traceback, and a per-class table of 3 rows
    (global batch 12) reached rank 1 empty, so rank 1 alone failed while rank 0 waited in
    the all-reduce. Now every rank raises the same one-line GraphcError naming the element,
    marked as every rank's (rank 0 alone reports it); one process trains as before."""
    batch = (X, Y, third)
    trainer = _trainer(batch)
    loss = trainer.train_step()  # one process: the batch is the loss's as it is
    assert loss == pytest.approx(float(np.mean(Y ** 2 * third)), rel=1e-12)
    messages = []
    for rank in (0, 1):
        _as_rank(trainer, rank)
        with pytest.raises(gc.GraphcError) as caught:
            trainer._shard(batch)
        assert caught.value.on_every_rank
        messages.append(caught.value.message)
    assert messages[0] == messages[1] == (
        f"Trainer(distributed=True): batch element 2 has shape {shape}, but every batch element "
        f"is split by rows across the 2 ranks: its leading axis must be the global batch of 12 "
        "rows (element 0's); "
        "a value the whole batch shares belongs in the loss function, not the batch")


def test_a_scalar_first_batch_element_is_refused_and_per_row_ones_are_split():
    """The first element sets the global batch; a scalar there was an IndexError (len() of
    a 0-d array). Per-row elements are still split into each rank's contiguous rows."""
    trainer = _trainer((X, Y, np.ones((12, 1))))
    _as_rank(trainer, 1)
    with pytest.raises(gc.GraphcError, match=r"^Trainer\(distributed=True\): batch element 0 "
                       r"has shape \(\), but every batch element is split by rows across the 2 "
                       r"ranks: its leading axis must be the global batch; a value"):
        trainer._shard((np.float64(1.0), X))
    x, y, w = trainer._shard((X, Y, np.arange(12.0)))
    np.testing.assert_array_equal(x, X[6:])
    np.testing.assert_array_equal(y, Y[6:])
    np.testing.assert_array_equal(w, np.arange(6.0, 12.0))


# ---- the two on two ranks ------------------------------------------------------------------
TRAINER_WORKER = textwrap.dedent('''
    import numpy as np, graphc as gc, graphc.distributed as dist
    dist.init()
    X = np.ones((4, 2)); Y = np.zeros((4, 1))
    def loss(p, b): return gc.mean(b[0] @ p["w"] - b[1])
    t = gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.1), lambda r: (X, Y),
                   steps=1, distributed=True, checkpoint_meta={"best_val": float("nan")})
    print(dist.rank(), "nan meta: built", flush=True)
    try:
        gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.1),
                   lambda r: (X, Y, np.ones(3)), steps=1, distributed=True)
    except gc.GraphcError as exc:
        print(dist.rank(), "per-class table:", exc.message.split(": ")[1], flush=True)
''')


def test_two_ranks_build_with_a_nan_setting_and_refuse_a_per_class_table_together(tmp_path):
    """Under mpiexec -n 2: the NaN setting no longer stops the handshake, and a batch element
    of 3 rows (global batch 4) is refused on both ranks at once instead of rank 1 alone."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env, run_in_group
    (tmp_path / "worker.py").write_text(TRAINER_WORKER)
    code, output, _ = run_in_group(dist.launch_command(2, [str(tmp_path / "worker.py")]),
                                   rank_env(), 100, merge_output=True)
    assert code == 0, output
    assert sorted(line for line in output.splitlines() if line[:2] in ("0 ", "1 ")) == [
        "0 nan meta: built", "0 per-class table: batch element 2 has shape (3,), but every "
        "batch element is split by rows across the 2 ranks",
        "1 nan meta: built", "1 per-class table: batch element 2 has shape (3,), but every "
        "batch element is split by rows across the 2 ranks"], output
