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
from test_review_s19f import FAST, _text


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
    try:  # (session 34: refused when built, on every rank, as JSON has no NaN)
        gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.1), lambda r: (X, Y),
                   steps=1, distributed=True, checkpoint_meta={"best_val": float("nan")})
    except gc.GraphcError as exc:
        print(dist.rank(), "nan meta:", exc.message.split(": ", 2)[2], flush=True)
    t = gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.1), lambda r: (X, Y),
                   steps=1, distributed=True, checkpoint_meta={"best_val": None})
    print(dist.rank(), "None meta: built", flush=True)
    try:
        gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.1),
                   lambda r: (X, Y, np.ones(3)), steps=1, distributed=True)
    except gc.GraphcError as exc:
        print(dist.rank(), "per-class table:", exc.message.split(": ")[1], flush=True)
''')


def test_two_ranks_build_with_a_nan_setting_and_refuse_a_per_class_table_together(tmp_path):
    """Under mpiexec -n 2: a NaN setting is refused on both ranks when the trainer is built
    (session 34: JSON has no NaN; None, a best value not yet measured, builds), and a batch
    element of 3 rows (global batch 4) is refused on both ranks at once instead of rank 1
    alone."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env, run_in_group
    (tmp_path / "worker.py").write_text(TRAINER_WORKER)
    code, output, _ = run_in_group(dist.launch_command(2, [str(tmp_path / "worker.py")]),
                                   rank_env(), 100, merge_output=True)
    assert code == 0, output
    assert sorted(line for line in output.splitlines() if line[:2] in ("0 ", "1 ")) == [
        "0 None meta: built", "0 nan meta: best_val is NaN, which never equals itself: a "
        "run saving it could not be resumed with the same settings (use None)",
        "0 per-class table: batch element 2 has shape (3,), but every "
        "batch element is split by rows across the 2 ranks",
        "1 None meta: built", "1 nan meta: best_val is NaN, which never equals itself: a "
        "run saving it could not be resumed with the same settings (use None)",
        "1 per-class table: batch element 2 has shape (3,), but every "
        "batch element is split by rows across the 2 ranks"], output


# ---- --ranks in a process that mpiexec started --------------------------------------------

@pytest.mark.parametrize("job, rank", [(1, 0), (2, 1)])
def test_ranks_other_than_the_running_jobs_size_is_refused(monkeypatch, job, rank):
    """--ranks N was ignored in a process that looks started by mpiexec: a job of 2 trained
    with --ranks 3, a stray variable trained --ranks 2 in one process. Now N must be the
    job's size, else one line naming the variable (checked after init() joins the job)."""
    for variable in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(variable, raising=False)
    dist.check_ranks_option(3)  # not started by mpiexec: nothing to compare (launch starts 3)
    monkeypatch.setenv("PMI_SIZE", str(job))
    monkeypatch.setattr(dist, "init", lambda: None)
    monkeypatch.setitem(dist._STATE, "size", job)
    monkeypatch.setitem(dist._STATE, "rank", rank)
    dist.check_ranks_option(job)
    with pytest.raises(gc.GraphcError) as caught:
        dist.check_ranks_option(3)
    assert caught.value.on_every_rank
    assert caught.value.message == (
        "--ranks 3, but this process looks started by mpiexec (PMI_SIZE is set) and its MPI "
        "job has 1 process; unset PMI_SIZE for --ranks to start 3 ranks, or run mpiexec -n 3 "
        "without --ranks" if job == 1 else
        "--ranks 3, but this process is rank 1 of an MPI job of 2 (PMI_SIZE is set); give "
        "--ranks 2 or leave it out")


def _graphc(tmp_path, *args, env=None, timeout=100):
    from launch import rank_env, run_in_group
    return run_in_group([sys.executable, "-m", "graphc.cli", *args], env or rank_env(), timeout)


def test_graphc_train_ranks_2_with_a_stray_mpi_variable_is_refused(tmp_path):
    """`OMPI_COMM_WORLD_SIZE=2 graphc train --ranks 2` trained in one process with no word
    (exit 0); now it exits 2 with one line saying which variable made it look MPI-started."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env
    out = tmp_path / "run"
    code, stdout, stderr = _graphc(tmp_path, *FAST, "--data", str(_text(tmp_path)), "--out",
                                   str(out), "--ranks", "2",
                                   env=rank_env(OMPI_COMM_WORLD_SIZE="2"))
    assert (code, stdout) == (2, ""), stderr
    assert stderr.splitlines() == [
        "graphc: error: --ranks 2, but this process looks started by mpiexec "
        "(OMPI_COMM_WORLD_SIZE is set) and its MPI job has 1 process; unset "
        "OMPI_COMM_WORLD_SIZE for --ranks to start 2 ranks, or run mpiexec -n 2 without "
        "--ranks"]
    assert not out.exists()


def test_mpiexec_2_graphc_train_ranks_3_is_refused_by_rank_0(tmp_path):
    """`mpiexec -n 2 graphc train --ranks 3` trained on 2 ranks (exit 0); now rank 0 says
    once that the job has 2, and the ranks exit 2 (mpiexec adds its banner under a user's
    own mpiexec, as for any agreed failure there)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env, run_in_group
    out = tmp_path / "run"
    argv = ["-m", "graphc.cli", *FAST, "--data", str(_text(tmp_path)), "--out", str(out),
            "--ranks", "3"]
    code, output, _ = run_in_group(dist.launch_command(2, argv), rank_env(), 100,
                                   merge_output=True)
    assert code == 2, output
    assert [line for line in output.splitlines() if line.startswith("graphc")] == [
        "graphc: error: --ranks 3, but this process is rank 0 of an MPI job of 2 "
        "(OMPI_COMM_WORLD_SIZE is set); give --ranks 2 or leave it out"], output
    assert not out.exists()


def test_graphc_bench_ranks_in_a_process_mpiexec_started_is_refused(monkeypatch, capsys):
    """graphc bench --ranks starts an MPI job of its own for each rank count; under mpiexec
    each rank did so (nested jobs), and under a stray variable the same was not said. Now
    it is refused before anything starts, naming the variable."""
    from graphc.cli import main
    monkeypatch.setenv("PMIX_RANK", "0")
    # An earlier test in this process may have imported mpi4py.MPI, which joins a job of
    # one: with the variable set, main() would then leave the process at once after the
    # line (distributed.leave_now), as a rank really started by mpiexec must, and end the
    # test runner's process with it.
    monkeypatch.setattr(dist, "joined", lambda: False)
    assert main(["bench", "--ranks", "1,2", "--steps", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "graphc: error: --ranks 1,2: the benchmark starts an MPI job of its own for each rank "
        "count, but this process looks started by mpiexec (PMIX_RANK is set); run it "
        "without mpiexec"]


# ---- python -m bench.data_parallel and python -m graphc.bench_ranks ---------------------
@pytest.mark.parametrize("args, says", [
    (["--ranks", "3"], "--ranks 3: the tiny config's batch of 64 does not split over 3 ranks; "
                       "use a divisor of 64"),
    (["--config", "bogus", "--ranks", "1"], "--config: unknown config 'bogus'; one of tiny, "
                                            "small, medium, nanogpt-cpu"),
    (["--steps", "0", "--ranks", "1"], "argument --steps: expected a positive number, got 0 "
                                       "(see python -m bench.data_parallel --help)")])
def test_bench_data_parallel_as_readme_runs_it_is_one_line(tmp_path, args, says):
    """`python -m bench.data_parallel` (README's entry point) called main() without the
    GraphcError handler `python -m graphc.bench_ranks` has: an 11-line traceback, exit 1.
    Now both run through bench_ranks.run_as_module: one line, exit 2. --steps 0 printed a
    row of nan, exit 0; now it is refused as `graphc bench --steps 0` refuses it."""
    import subprocess
    from launch import rank_env
    out = subprocess.run([sys.executable, "-m", "bench.data_parallel", *args], cwd=tmp_path,
                         env=rank_env(), capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (2, ""), out.stderr
    assert out.stderr.splitlines() == [f"graphc: error: {says}"]


def test_bench_ranks_refuses_steps_below_1(capsys):
    """--steps -3 (or 0) measured nothing and printed a row of nan, exit 0; now refused as
    `graphc bench --steps -3` refuses it."""
    from graphc.bench_ranks import main
    with pytest.raises(SystemExit) as stop:
        main(["--ranks", "1", "--steps", "-3"])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("graphc: error: argument --steps: expected a positive "
                                   "number, got -3 (see ")


# ---- a rank that cannot reach rank 0's watchdog -------------------------------------------
BANNER = """\
--------------------------------------------------------------------------
prterun detected that one or more processes exited with non-zero status,
thus causing the job to be terminated. The first process to do so was:

   Process name: [prterun-vm-5322@1,0]
   Exit code:    1
--------------------------------------------------------------------------
"""


def test_a_failed_bench_job_is_reported_by_the_ranks_own_line():
    """`GRAPHC_WATCHDOG_ADDR=bogus.invalid graphc bench --ranks 2` reported `the 2-rank job
    failed (exit status 1): Exit code:    1`, a line of mpiexec's banner (the last line that
    was not a rule). Now the last `graphc:` line is taken, else a traceback's exception
    line, never the banner's."""
    from graphc.bench_ranks import failure_line
    said = ("graphc: watchdog: rank 1 cannot reach rank 0 at bogus.invalid:4000 ([Errno -2] "
            "Name or service not known)")
    assert failure_line(f"{said}\n{BANNER}") == said.removeprefix("graphc: ")
    assert failure_line(f"graphc: error: no data\n[vm:1] PMIX ERROR: UNREACH\n{BANNER}") \
        == "no data"
    traceback = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                 "    f()\nnumpy.core._exceptions._ArrayMemoryError: Unable to allocate\n")
    assert failure_line(traceback + BANNER) == \
        "numpy.core._exceptions._ArrayMemoryError: Unable to allocate"
    assert failure_line("Killed\n" + BANNER) == "Killed"
    assert failure_line("") == "no output"
    # a rank killed by a signal says nothing itself: the banner is all there is
    killed = BANNER.replace("Exit code:    1", "exited on signal 9 (Killed).")
    assert failure_line(killed).endswith("Process name: [prterun-vm-5322@1,0] exited on "
                                         "signal 9 (Killed).")


def test_graphc_train_ranks_2_whose_rank_cannot_reach_the_watchdog_exits_2_in_one_line(
        tmp_path):
    """With GRAPHC_WATCHDOG_ADDR unreachable, rank 0 printed `only 1 of 2 ranks connected`
    and the job ended with status 1 and mpiexec's banner. Now the ranks agree on the
    failure: rank 0 prints the line of the rank that could not connect, and the command
    exits 2 without the banner, as for other start-up errors."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env
    out = tmp_path / "run"
    code, stdout, stderr = _graphc(
        tmp_path, *FAST, "--data", str(_text(tmp_path)), "--out", str(out), "--ranks", "2",
        env=rank_env(GRAPHC_WATCHDOG_ADDR="bogus.invalid", GRAPHC_WATCHDOG_TIMEOUT="2"))
    assert (code, stdout) == (2, ""), stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("graphc: error: watchdog: rank 1 cannot reach rank 0 at "
                               "bogus.invalid:"), stderr
    assert lines[0].endswith("; set GRAPHC_WATCHDOG_ADDR to an address of rank 0's machine "
                             "that every rank reaches"), stderr
    assert not out.exists()


# ---- graphc bench --ranks and the other options ------------------------------------------
@pytest.mark.parametrize("option", [["--workloads", "mlp-train"], ["--contenders", "torch"],
                                    ["--plot", "ranks.png"], ["--concurrent", "2"]])
def test_graphc_bench_ranks_refuses_the_contenders_options(tmp_path, monkeypatch, capsys,
                                                            option):
    """`graphc bench --ranks ...` dropped --workloads, --contenders, --plot (and --warmup,
    --concurrent, --rounds, --beside-busy) without a word: they belong to the other
    measurement. Now each is refused in one line before anything runs."""
    from graphc.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--ranks", "1", "--steps", "1", *option]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"graphc: error: {option[0]} is not for --ranks, which measures the data-parallel tiny "
        "GPT step (it takes --steps and --json); leave it out or run the two measurements "
        "apart"]
    assert list(tmp_path.iterdir()) == []


def test_graphc_bench_ranks_writes_json(tmp_path, capsys):
    """`graphc bench --ranks 1 --json F` printed its table and never wrote F; now F holds a
    row per rank count (the table's columns), and an F it could not write is refused before
    the measurement starts."""
    from graphc.cli import main
    missing = tmp_path / "no" / "ranks.json"
    assert main(["bench", "--ranks", "1", "--steps", "2", "--json", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [
        f"graphc: error: --json {missing}: there is no directory {missing.parent}"]
    path = tmp_path / "ranks.json"
    assert main(["bench", "--ranks", "1", "--steps", "2", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert (report["config"], report["steps"]) == ("tiny", 2)
    [row] = report["ranks"]
    assert row["ranks"] == 1 and row["step_ms"] > 0 and row["allreduce_ms"] == 0
    assert sorted(row) == ["allreduce_ms", "gradient_mb", "hidden", "ranks", "step_ms",
                           "threads", "wait_ms"]
    assert f"{row['step_ms']:.1f}" in capsys.readouterr().out  # the table's row
