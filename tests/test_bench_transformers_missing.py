"""PyTorch's gen- workloads need transformers, which `graphc[torch]` does not install: the
column is skipped with a line, as for torch missing, instead of a worker's traceback that
lost every column (s54, g1's finding 2)."""
import sys

import pytest

from graphc import bench


def test_torch_without_transformers_cannot_run_the_gen_workloads_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # (import raises ImportError)
    assert bench._unable("torch", ["mlp-train", "gen-small-decode-b1"]) == {
        "gen-small-decode-b1": "transformers: import of transformers halted; None in "
                               "sys.modules"}
    assert bench._unable("compiled", ["gen-small-decode-b1"]) == {}
    assert bench._unable("torch", ["mlp-train"]) == {}  # (not even looked for)


def test_a_workload_only_torch_without_transformers_would_run_is_refused():
    unable = {("gen-small-prefill-b1", "torch"): "transformers: none here"}
    bench.check_workloads_run(["gen-small-prefill-b1"], ("compiled", "torch"), None, unable)
    with pytest.raises(ValueError) as refused:
        bench.check_workloads_run(["mlp-train", "gen-small-prefill-b1"], ("torch",), None,
                                  unable)
    assert str(refused.value) == (
        "--workloads gen-small-prefill-b1: none of --contenders torch runs it here (torch "
        "cannot run it: transformers: none here); add one that does: compiled")


def test_the_torch_worker_reports_transformers_missing(tmp_path, monkeypatch):
    (tmp_path / "transformers").mkdir()
    (tmp_path / "transformers" / "__init__.py").write_text(
        "raise ImportError('no transformers here')\n")
    (tmp_path / "torch").mkdir()  # (an empty torch: the real one's import takes seconds)
    (tmp_path / "torch" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))  # (the spawned workers get this sys.path)
    said = []
    with pytest.raises(ValueError, match="torch cannot run it: transformers: no "
                       "transformers here"):
        bench.run(["gen-small-prefill-b1"], steps=1, warmup=0, contenders=("torch",),
                  log=said.append)
    assert said == ["torch cannot run gen-small-prefill-b1 here (transformers: no "
                    "transformers here); left out of those rows"]


def test_run_says_which_contenders_it_skipped(monkeypatch):
    """(--json's run.skipped): torch missing, or the gen- workloads of a torch without
    transformers; the workers mocked."""
    class Worker:
        def __init__(self, contender, workloads):
            self.contender = contender
            self.missing = "torch: no torch here" if contender == "torch" else None
            self.unable = {}

        def stop(self, at_once=False):
            pass
    monkeypatch.setattr(bench, "_Worker", Worker)
    monkeypatch.setattr(bench, "_run_workload", lambda w, workers, steps, warmup: [
        bench.Result(w, c, times=[0.1]) for c in workers])
    said = []
    results = bench.run(["mlp-train"], steps=1, warmup=0, contenders=("eager", "torch"),
                        log=said.append)
    assert [(r.workload, r.contender) for r in results] == [("mlp-train", "eager")]
    assert results.skipped == [{"contender": "torch", "workloads": None,
                                "why": "torch: no torch here"}]
    assert said == ["torch is not available here (torch: no torch here); column skipped"]
