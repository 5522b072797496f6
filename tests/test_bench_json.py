"""What --json records beside the rows: the run's parameters, the contenders skipped and why,
the --concurrent rounds apart, the decode bandwidth table (s54, g1's findings 4-5); the
workers are mocked."""
import json

import pytest

from graphc import bench
from graphc.bench import Result, SharedResult
from graphc.cli import main


def test_the_json_records_the_run_and_keeps_the_rounds_apart(tmp_path, monkeypatch, capsys):
    def run(workloads, steps, warmup, contenders):
        results = bench.Measured([Result("mlp-train", "compiled", times=[0.01, 0.03],
                                         tokens=256)])
        results.skipped = [dict(contender="torch", workloads=None, why="torch: none here")]
        return results
    shared = SharedResult("mlp-train", "compiled", 2, solo=[0.01, 0.02, 0.03],
                          rounds=[[0.02, 0.04], [0.06, 0.02]])
    asked = []
    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 100.0)
    monkeypatch.setattr(bench, "run_shared",
                        lambda *args: asked.append(args[-1]) or [shared])
    out = tmp_path / "b.json"
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled,eager,torch",
                 "--steps", "2", "--warmup", "0", "--concurrent", "2", "--rounds", "2",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["run"] == {"steps": 2, "warmup": 0, "workloads": ["mlp-train"],
                           "contenders": ["compiled", "eager", "torch"],
                           "skipped": [{"contender": "torch", "workloads": None,
                                        "why": "torch: none here"}],
                           "concurrent": 2, "concurrent_contenders": ["compiled", "torch"],
                           "rounds": 2}
    assert asked == [["compiled", "torch"]]
    conc, = data["concurrent"]
    # each process's mean step over the median solo step (20 ms), a list per round
    assert conc["round_factors"] == [[1.0, 2.0], [3.0, 1.0]]
    assert conc["factors"] == [1.0, 2.0, 3.0, 1.0]  # (the old flat list, kept)
    assert [pytest.approx(r) for r in conc["round_means_ms"]] == [[20, 40], [60, 20]]
    assert conc["solo_times_s"] == [0.01, 0.02, 0.03] and conc["solo_ms"] == 20.0
    assert data["decode_bandwidth"] is None and data["failed"] is None
    row, = data["results"]
    assert row["median_ms"] == 20.0 and row["tokens_per_s"] == 256 / 0.02


def test_the_decode_bandwidth_rows_are_the_printed_table():
    from graphc.bench_generate import bandwidth_rows, bandwidth_table, decode_bytes
    results = [Result("gen-small-decode-b1", "compiled", times=[0.002], tokens=1),
               Result("mlp-train", "compiled", times=[0.01], tokens=256)]
    row, = bandwidth_rows(results, 10e9)
    need = decode_bytes("gen-small-decode-b1")
    assert row == {"workload": "gen-small-decode-b1", "contender": "compiled",
                   "tokens_per_s": 500.0, "bound_tokens_per_s": 10e9 / need,
                   "share_of_bound": 500.0 / (10e9 / need), "bytes_read_per_step": need}
    header, line = bandwidth_table(results, 10e9).splitlines()[2:]
    assert header.split()[-2:] == ["MiB", "read/step"]
    assert line.split()[-1] == f"{need / 2**20:.0f}"


def test_the_plot_has_no_bar_where_a_contender_did_not_run(tmp_path, monkeypatch):
    """bf16-mixed runs only gpt-*-train: it had a bar of 0 on mlp-train (0x eager's speed)."""
    saved = []
    monkeypatch.setattr(bench, "save_figure", lambda fig, path: saved.append(fig))
    bench.plot([Result("gpt-tiny-train", "eager", times=[0.4]),
                Result("gpt-tiny-train", "bf16-mixed", times=[0.2]),
                Result("mlp-train", "eager", times=[0.3])], tmp_path / "x.png")
    ax, = saved[0].axes
    bars = [(round(b.get_x() + b.get_width() / 2, 3), b.get_height()) for b in ax.patches]
    assert bars == [(0.0, 1.0), (1.0, 1.0), (0.4, 2.0)]  # eager twice, bf16-mixed once


def test_concurrent_names_the_contenders_it_does_not_measure(tmp_path, monkeypatch, capsys):
    """--contenders compiled,eager --concurrent 2 measured compiled alone without a word,
    while --help said 'N copies of each contender'."""
    asked = []
    monkeypatch.setattr(bench, "run", lambda *a, **k: [
        Result("mlp-train", c, times=[0.01], tokens=256) for c in ("compiled", "eager")])
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 100.0)
    monkeypatch.setattr(bench, "run_shared", lambda *args: asked.append(args[-1]) or [])
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled,eager,O0",
                 "--concurrent", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "--concurrent 2 measures compiled only, not eager, O0"
    assert asked == [["compiled"]]
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "N copies of graphc compiled and N of torch" in " ".join(
        capsys.readouterr().out.split())
