"""A bench worker that raises or dies: one line naming the workload and the contender,
status 2, and what was measured before still reaches --json (s54, g1's finding 1)."""
import json
import os
import signal

import pytest

from graphc import bench
from graphc.bench import Result, SharedResult, WorkerFailed, run
from graphc.cli import main


def test_a_failing_worker_keeps_the_workloads_measured_before():
    with pytest.raises(WorkerFailed) as failed:
        run(["mlp-train", "nope"], steps=1, warmup=0, contenders=("eager",), log=None)
    exc = failed.value
    assert str(exc).splitlines()[0].startswith(
        "the bench's eager worker failed (ValueError: unknown workload 'nope'")
    assert str(exc).endswith("while it measured nope")
    assert "Traceback" in exc.detail
    assert [(r.workload, r.contender, len(r.times)) for r in exc.results] == \
        [("mlp-train", "eager", 1)]


def test_a_killed_worker_is_named_with_its_signal():
    worker = bench._Worker("eager")
    try:
        os.kill(worker.process.pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed, match="^the bench's eager worker was killed by "
                           "SIGKILL while it measured mlp-train$"):
            worker.ask("make", "mlp-train")
    finally:
        worker.stop()


def test_a_worker_ends_quietly_when_the_bench_closes_its_pipe(capfd):
    """EOFError's traceback in conn.recv(), then another from the error's send, came from
    every live worker of a bench that had gone."""
    worker = bench._Worker("eager")
    worker.conn.close()
    worker.process.join(timeout=30)
    assert worker.process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


def _failing(results, where):
    def measure(*args, **kwargs):
        exc = WorkerFailed("torch", "mlp-train", "was killed by SIGKILL")
        exc.results = results
        raise exc
    return measure


@pytest.mark.parametrize("phase", ["main", "concurrent"])
def test_the_cli_says_one_line_and_writes_what_was_measured(tmp_path, capsys, monkeypatch,
                                                            phase):
    measured = [Result("gpt-tiny-infer", "compiled", times=[0.01, 0.02], tokens=2048),
                Result("gpt-tiny-infer", "torch", times=[0.03], tokens=2048)]
    shared = [SharedResult("gpt-tiny-infer", "compiled", 2, solo=[0.01], rounds=[[0.02, 0.03]])]
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 100.0)
    if phase == "main":
        monkeypatch.setattr(bench, "run", _failing(measured, phase))
    else:
        monkeypatch.setattr(bench, "run", lambda *a, **k: measured)
        monkeypatch.setattr(bench, "run_shared", _failing(shared, phase))
    out = tmp_path / "b.json"
    argv = ["bench", "--workloads", "gpt-tiny-infer,mlp-train", "--contenders",
            "compiled,torch", "--steps", "2", "--json", str(out)]
    assert main(argv + (["--concurrent", "2"] if phase == "concurrent" else [])) == 2
    printed = capsys.readouterr()
    assert printed.err == ("graphc: error: the bench's torch worker was killed by SIGKILL "
                           f"while it measured mlp-train; what was measured before is in "
                           f"{out}\n")
    assert "gpt-tiny-infer" in printed.out  # the table of what was measured
    data = json.loads(out.read_text())
    assert [(r["workload"], r["contender"], r["times_s"]) for r in data["results"]] == \
        [("gpt-tiny-infer", "compiled", [0.01, 0.02]), ("gpt-tiny-infer", "torch", [0.03])]
    assert data["failed"] == {"workload": "mlp-train", "contender": "torch", "phase": phase,
                              "error": "the bench's torch worker was killed by SIGKILL while "
                              "it measured mlp-train", "traceback": None}
    if phase == "concurrent":
        assert data["concurrent"][0]["factors"] == [2.0, 3.0]


def test_a_worker_killed_before_a_concurrent_round_is_named(monkeypatch):
    """run_shared sent a round's turn itself: a copy that had died gave `graphc: error:
    [Errno 32] Broken pipe` and no --json at all (r6, s54)."""
    made = []

    class Killing(bench._Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def ask(self, command, argument):
            value = super().ask(command, argument)
            if command == "turn" and self is made[0]:  # after the solo turn, the other dies
                os.kill(made[1].process.pid, signal.SIGKILL)
                made[1].process.join(timeout=30)
            return value

    monkeypatch.setattr(bench, "_Worker", Killing)
    with pytest.raises(WorkerFailed, match="^the bench's eager worker was killed by SIGKILL "
                       "while it measured mlp-train$") as failed:
        bench.run_shared(["mlp-train"], copies=2, steps=1, warmup=0, rounds=1,
                         contenders=("eager",), log=None)
    assert failed.value.results == []
