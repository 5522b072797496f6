"""graphc bench / profile, session 55 (f6): a --plot skipped after a worker failed is said,
the %GEMM column past 100% is explained, and the table stays aligned."""
import pytest

from graphc import bench
from graphc.bench import Result, WorkerFailed
from graphc.cli import main


def _failing(results):
    def measure(*args, **kwargs):
        exc = WorkerFailed("eager", "gpt-tiny-infer", "was killed by SIGKILL")
        exc.results = results
        raise exc
    return measure


@pytest.fixture
def quiet_gemm(monkeypatch):
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 100.0)
    monkeypatch.setattr(bench, "numpy_blas", lambda: dict(library="openblas", version=None,
                                                          kernels=None, coretype=None))


def _argv(tmp_path, *more):
    return ["bench", "--workloads", "mlp-train,gpt-tiny-infer", "--contenders",
            "compiled,eager", "--steps", "2", "--plot", str(tmp_path / "p.png"), *more]


def test_a_plot_skipped_after_a_worker_failed_is_said(tmp_path, capsys, monkeypatch,
                                                      quiet_gemm):
    """The worker failed before eager had measured a workload: the plot was skipped without
    a word. Now the one line says so (and the JSON is still named)."""
    measured = [Result("mlp-train", "compiled", times=[0.01, 0.02], tokens=256)]
    monkeypatch.setattr(bench, "run", _failing(measured))
    out = tmp_path / "b.json"
    assert main(_argv(tmp_path, "--json", str(out))) == 2
    err = capsys.readouterr().err
    assert err == ("graphc: error: the bench's eager worker was killed by SIGKILL while it "
                   f"measured gpt-tiny-infer; what was measured before is in {out}; --plot "
                   f"{tmp_path / 'p.png'} not written: no workload was measured with graphc "
                   "eager before the failure\n")
    assert not (tmp_path / "p.png").exists() and out.exists()


def test_a_plot_of_what_was_measured_before_a_failure_is_named(tmp_path, capsys, monkeypatch,
                                                               quiet_gemm):
    measured = [Result("mlp-train", "compiled", times=[0.01, 0.02], tokens=256),
                Result("mlp-train", "eager", times=[0.04, 0.05], tokens=256)]
    monkeypatch.setattr(bench, "run", _failing(measured))
    assert main(_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == ("graphc: error: the bench's eager worker was killed by SIGKILL while it "
                   "measured gpt-tiny-infer; what was measured before is in "
                   f"{tmp_path / 'p.png'}\n")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_gemm_share_over_100_percent_is_explained(tmp_path, capsys, monkeypatch, quiet_gemm):
    """%GEMM is the step's matrix FLOPs at the floor's rate over its time: past 100% the floor
    was measured in a slow moment, and the table printed the impossible number unexplained."""
    # 2e9 matrix FLOPs in 10 ms at a floor of 100 GFLOP/s: 200%; in 40 ms: 50%
    fast = Result("mlp-train", "compiled", times=[0.01], tokens=256, matrix_flops=2e9)
    slow = Result("mlp-train", "eager", times=[0.04], tokens=256, matrix_flops=2e9)
    text = bench.table([fast, slow], 100.0)
    rows = {line.split()[1]: line for line in text.splitlines()
            if line.startswith("mlp-train")}
    assert "200%*" in rows["compiled"].split() and "50%" in rows["eager"].split()
    assert text.splitlines()[-1] == ("* over 100% of the GEMM floor: the floor (100 GFLOP/s) "
                                     "was measured low, in a slow moment of this host; no "
                                     "step beats it")
    assert bench.to_json([fast, slow], 100.0)["gemm_floor_measured_low"] is True
    assert bench.to_json([slow], 100.0)["gemm_floor_measured_low"] is False
    assert "*" not in bench.table([slow], 100.0)
    # through the command: the flag in --json
    monkeypatch.setattr(bench, "run", lambda *a, **k: [fast, slow])
    out = tmp_path / "b.json"
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled,eager",
                 "--steps", "2", "--json", str(out)]) == 0
    import json
    data = json.loads(out.read_text())
    assert data["gemm_floor_measured_low"] is True
    assert [r["gemm_share"] for r in data["results"]] == [2.0, 0.5]
    assert "measured low" in capsys.readouterr().out


def _ends(line, cell):
    """The column just past `cell` in `line` (its last occurrence)."""
    return line.rindex(cell) + len(cell)


def test_the_tables_stay_aligned_with_wide_cells():
    """Fixed column widths: a cell wider than its column (a 5-digit ±iqr, an 8-digit tok/s,
    a gen- workload's 20 characters in --concurrent's table) pushed the rest of its row
    out of line with the header. Each column is now as wide as its widest cell."""
    wide = Result("gen-small-prefill-b1", "bf16-mixed", times=[1.0, 4.0, 30.0],
                  tokens=64, matrix_flops=1e9, peak_bytes=5 * 2**30, compile_seconds=1234.5,
                  background_seconds=12345.25)
    small = Result("mlp-train", "compiled", times=[0.00001], tokens=2560)
    eager = Result("mlp-train", "eager", times=[12.0], tokens=256, peak_bytes=2**20)
    lines = bench.table([wide, small, eager], 100.0).splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    rows = {tuple(line.split()[:2]): line for line in lines
            if line.split()[:1] in (["gen-small-prefill-b1"], ["mlp-train"])}
    assert len(rows) == 3
    wide_row = rows["gen-small-prefill-b1", "bf16-mixed"]
    small_row = rows["mlp-train", "compiled"]
    eager_row = rows["mlp-train", "eager"]
    # ms/step 4000.0 and ±iqr 14500.0 (q3 17000 - q1 2500); tok/s 256000000
    for line, ms, iqr in ((wide_row, "4000.0", "14500.0"), (small_row, "0.0", "0.0"),
                          (eager_row, "12000.0", "0.0")):
        ms_end = line.index(f" {ms} ", 30) + len(ms) + 1  # (past the names)
        assert ms_end == _ends(header, "ms/step")
        assert line.index(f" {iqr} ", ms_end - 1) + len(iqr) + 1 == _ends(header, "±iqr")
    assert _ends(small_row, " 256000000") == _ends(header, "tok/s")
    assert _ends(eager_row, " 21 ") - 1 == _ends(header, "tok/s")
    assert _ends(wide_row, "5120.0") == _ends(header, "peak MiB")
    assert _ends(eager_row, " 1.0") == _ends(header, "peak MiB")
    assert _ends(wide_row, "1234.50") == _ends(header, "compile s")
    assert wide_row.endswith(" 12345.25") and len(wide_row) == len(header)
    assert _ends(eager_row, "1.00x") == _ends(header, "vs eager")
    assert _ends(small_row, "1200000.00x") == _ends(header, "vs eager")

    shared = bench.shared_table([
        bench.SharedResult("gen-small-prefill-b1", "compiled", 12, solo=[1.5],
                           rounds=[[12.0, 13.0]]),
        bench.SharedResult("mlp-train", "torch", 2, solo=[0.01], rounds=[[0.02, 0.03]])])
    header, gen, mlp = shared.splitlines()
    assert _ends(gen, " 12 ") - 1 == _ends(mlp, " 2 ") - 1 == _ends(header, "copies")
    assert _ends(gen, "1500.0") == _ends(mlp, " 10.0") == _ends(header, "solo ms")
    assert gen.index("8.00x") == mlp.index("2.00x") == header.index("slow-down")


def test_the_concurrent_table_of_ordinary_values_is_as_before():
    """Review (r2) of the aligned tables: --concurrent's last column, aligned left under its
    55-character header, padded each row with trailing spaces the fixed-width table never
    printed ("an ordinary table prints as before, byte for byte" was not so)."""
    shared = [bench.SharedResult("gpt-tiny-train", "compiled", 2, solo=[0.05, 0.06],
                                 rounds=[[0.07, 0.08], [0.09, 0.1]]),
              bench.SharedResult("mlp-train", "eager", 4, solo=[0.01],
                                 rounds=[[0.02, 0.03, 0.04, 0.05]])]
    assert bench.shared_table(shared) == (
        "workload           contender copies  solo ms slow-down per process, each round "
        "(min / median / max)\n"
        "gpt-tiny-train     compiled       2     55.0 1.27x / 1.55x / 1.82x\n"
        "mlp-train          eager          4     10.0 2.00x / 3.50x / 5.00x")
