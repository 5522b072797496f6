"""`graphc bench` on small workloads: the JSON has every field, with real, sane values."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graphc.cli import main


def test_bench_writes_complete_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "--workloads", "mlp-train,gpt-tiny-infer", "--steps", "3",
                 "--warmup", "1", "--json", str(out), "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "GEMM on this machine" in printed and "mlp-train" in printed
    data = json.loads(out.read_text())
    assert data["matmul_gflops"] > 1.0
    # the floor is the faster of the GEMM rates measured before and after the steps
    before, after = data["matmul_gflops_before"], data["matmul_gflops_after"]
    assert min(before, after) > 1.0 and data["matmul_gflops"] == max(before, after)
    assert f"the faster of {before:.0f} before and {after:.0f} after" in printed
    # the BLAS behind the floor, as threadpoolctl sees numpy's copy
    from threadpoolctl import threadpool_info
    numpy_copy = [i for i in threadpool_info() if i["user_api"] == "blas"
                  and "numpy" in i.get("filepath", "")]
    if numpy_copy:
        assert data["blas"]["library"] == numpy_copy[0]["internal_api"]
        assert data["blas"]["kernels"] == numpy_copy[0].get("architecture")
    assert f"numpy's BLAS: {data['blas']['library']}" in printed
    rows = data["results"]
    contenders = {(r["workload"], r["contender"]) for r in rows}
    for workload in ("mlp-train", "gpt-tiny-infer"):
        for contender in ("compiled", "numpy", "O0", "eager"):
            assert (workload, contender) in contenders
    for r in rows:
        assert set(r) >= {"workload", "contender", "median_ms", "iqr_ms", "tokens_per_s",
                          "flops_per_step", "peak_bytes", "compile_seconds",
                          "background_compile_seconds", "times_s"}
        assert len(r["times_s"]) == 3 and all(t > 0 for t in r["times_s"])
        assert 0 < r["median_ms"] < 60_000 and r["iqr_ms"] >= 0
        assert r["tokens_per_s"] > 0
        if r["contender"] in ("compiled", "numpy", "O0"):
            # present and positive: how long a compile takes is no test's business (52 s
            # under load with a cold kernel cache failed a 30 s bound); `graphc bench` says it
            assert r["compile_seconds"] > 0 and r["background_compile_seconds"] >= 0
            assert r["peak_bytes"] > 0 and r["flops_per_step"] > 1e6
        # %GEMM rates the matrix products' FLOPs, counted by hand here, not every op's
        # (the elementwise ops' had made it 2-5% too high); the JSON holds the table's share
        assert r["matrix_flops_per_step"] == MATRIX_FLOPS[r["workload"]] < r["flops_per_step"]
        share = r["gemm_share"]
        assert share == pytest.approx(r["matrix_flops_per_step"] / (r["median_ms"] / 1e3)
                                      / 1e9 / data["matmul_gflops"])
        line = next(line for line in printed.splitlines()
                    if line.split()[:2] == [r["workload"], r["contender"]])
        # (past 100% on a noisy host, the floor measured low: marked, and said in --json)
        assert f" {share:.0%}{'*' if share > 1 else ''} " in line
        if share > 1:
            assert data["gemm_floor_measured_low"] is True and "measured low" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _gpt_forward_matrix_flops(B, T, C, L, V):
    """A GPT forward's matrix products: per layer the qkv, projection and two MLP products
    and the two attention products (full T x T), then the logits."""
    N = B * T
    return L * (2 * N * C * 3 * C + 2 * N * C * C + 2 * 2 * N * C * 4 * C
                + 2 * 2 * B * T * T * C) + 2 * N * C * V


MATRIX_FLOPS = {
    # x @ w1 and its weight gradient (x needs none), h @ w2 with both gradients
    "mlp-train": 2 * (2 * 256 * 512 * 1024) + 3 * (2 * 256 * 1024 * 10),
    "gpt-tiny-infer": _gpt_forward_matrix_flops(64, 32, 64, 2, 65),
}


def test_gemm_share_is_blank_where_no_plan_counted_the_flops():
    """--contenders without compiled or numpy (and the gen- workloads) printed %GEMM 0% for
    every row and wrote flops_per_step 0.0: FLOPs not counted, not none."""
    from graphc.bench import Result, table, to_json
    rated = Result("mlp-train", "eager", times=[0.5], tokens=256, flops=2.2e9,
                   matrix_flops=2e9)
    unrated = Result("mlp-train", "torch", times=[0.25], tokens=256)
    printed = table([rated, unrated], 10.0).splitlines()
    assert printed[-2].split()[:8] == ["mlp-train", "eager", "500.0", "0.0", "512", "1.00x",
                                       "0.50x", "40%"]  # 2 GFLOP in 0.5 s at 10 GFLOP/s
    assert printed[-1].split()[:7] == ["mlp-train", "torch", "250.0", "0.0", "1024", "2.00x",
                                       "1.00x"] and "%" not in printed[-1]
    rows = to_json([rated, unrated], 10.0)["results"]
    assert rows[0]["gemm_share"] == pytest.approx(0.4) and rows[0]["flops_per_step"] == 2.2e9
    assert rows[1]["gemm_share"] is None and rows[1]["flops_per_step"] is None


def test_bench_rejects_unknown_workloads(capsys):
    assert main(["bench", "--workloads", "nope"]) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err


def test_bench_rejects_unknown_contenders(capsys):
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled,jax"]) == 2
    assert "unknown contender 'jax'" in capsys.readouterr().err


@pytest.mark.parametrize("flag, given, named", [
    ("--workloads", "mlp-train, gpt-tiny-train,mlp-train", "mlp-train"),
    ("--contenders", "compiled,eager,compiled", "compiled")])
def test_bench_refuses_a_name_given_twice_before_measuring(capsys, monkeypatch, flag,
                                                           given, named):
    """s51: a workload given twice was measured twice (minutes, two rows of one name in the
    table and the JSON); a contender given twice started two workers, the first of which
    was dropped from the table and left idle until the bench ended."""
    from graphc import bench
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("measured"))
    monkeypatch.setattr(bench, "matmul_gflops", lambda *a, **k: pytest.fail("measured"))
    argv = {"--workloads": "mlp-train", "--contenders": "compiled", flag: given}
    assert main(["bench", *[x for kv in argv.items() for x in kv]]) == 2
    assert capsys.readouterr().err == (f"graphc: error: {flag} {given!r} names {named} twice; "
                                       "give each once\n")


def test_a_failing_contender_process_reports_its_traceback():
    import pytest

    from graphc.bench import run
    with pytest.raises(RuntimeError, match="unknown workload 'nope'"):
        run(["nope"], steps=1, warmup=0, contenders=("eager",))


def test_bench_concurrent_reports_each_processs_slowdown(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled", "--steps",
                 "3", "--warmup", "1", "--concurrent", "2", "--rounds", "2",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "slow-down per process" in printed
    shared = json.loads(out.read_text())["concurrent"]
    assert [(r["workload"], r["contender"], r["copies"]) for r in shared] == \
        [("mlp-train", "compiled", 2)]
    # two processes x two rounds, each a positive multiple of the solo step time
    assert len(shared[0]["factors"]) == 4 and all(f > 0 for f in shared[0]["factors"])
    assert shared[0]["solo_ms"] > 0


def test_bench_concurrent_needs_two_copies(capsys):
    with pytest.raises(SystemExit) as stop:  # (refused as it is parsed)
        main(["bench", "--workloads", "mlp-train", "--concurrent", "1"])
    assert stop.value.code == 2
    assert "--concurrent: expected 0 (off) or 2 or more copies, got 1" in \
        capsys.readouterr().err


@pytest.mark.parametrize("concurrent", [[], ["--concurrent", "0"]])
def test_bench_rounds_without_concurrent_is_refused_before_measuring(capsys, monkeypatch,
                                                                      concurrent):
    """`graphc bench --rounds 3` measured everything for minutes with --rounds ignored: it
    counts the rounds of the --concurrent measurement, which did not run."""
    import graphc.bench

    def measured(*args, **kwargs):
        raise AssertionError("the bench measured")
    monkeypatch.setattr(graphc.bench, "matmul_gflops", measured)
    assert main(["bench", "--workloads", "mlp-train", "--rounds", "3", *concurrent]) == 2
    assert capsys.readouterr().err == (
        "graphc: error: --rounds 3 is for --concurrent: it counts the rounds of that "
        "measurement, which runs only with --concurrent N\n")


def test_bench_refuses_a_workload_that_no_contender_runs_before_measuring(capsys,
                                                                            monkeypatch):
    """bf16-mixed runs only the GPT training steps: alone on an inference workload it printed
    an empty table with exit status 0, and under --concurrent its workers, with no runner,
    failed with a TypeError's traceback."""
    import graphc.bench

    def measured(*args, **kwargs):
        raise AssertionError("the bench measured")
    monkeypatch.setattr(graphc.bench, "matmul_gflops", measured)
    assert main(["bench", "--workloads", "mlp-train,gpt-tiny-infer", "--contenders",
                 "bf16-mixed,fp16-mixed", "--concurrent", "2"]) == 2
    assert capsys.readouterr().err == (
        "graphc: error: --workloads mlp-train: none of --contenders bf16-mixed, fp16-mixed "
        "runs it; add one that does: compiled, numpy, O0, eager, torch\n")


def test_bench_with_torch_its_only_contender_and_torch_missing_is_refused(tmp_path,
                                                                          monkeypatch, capsys):
    """--contenders torch without torch: the column was skipped, and the table printed with
    no row, exit status 0."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # (the spawned workers get this sys.path)
    out = tmp_path / "bench.json"
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "torch", "--steps",
                 "1", "--json", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.err == (
        "graphc: error: --workloads mlp-train: none of --contenders torch runs it here (torch "
        "is not available: torch: no torch here); add one that does: compiled, numpy, O0, "
        "eager\n")
    assert "ms/step" not in printed.out and not out.exists()


def test_concurrent_leaves_out_the_workloads_a_contender_does_not_run():
    from graphc.bench import run_shared
    assert run_shared(["gpt-tiny-infer"], copies=2, steps=1, warmup=0, rounds=1,
                      contenders=("bf16-mixed",)) == []


@pytest.mark.parametrize("options, said", [
    (["--workloads", "mlp-train", "--contenders", "compiled,torch"],
     "over graphc eager; add eager to --contenders, or leave --plot out"),
    (["--workloads", "gen-small-decode-b1", "--contenders", "compiled,eager"],
     "over graphc eager, which runs none of the gen- workloads; leave --plot out")])
def test_bench_plot_without_eager_rows_is_refused_before_measuring(tmp_path, capsys,
                                                                   monkeypatch, options, said):
    """The chart's bars are speed-ups over graphc eager: without eager's rows every bar was
    0, written after the whole run with exit status 0."""
    import graphc.bench

    def measured(*args, **kwargs):
        raise AssertionError("the bench measured")
    monkeypatch.setattr(graphc.bench, "matmul_gflops", measured)
    png = tmp_path / "bench.png"
    assert main(["bench", *options, "--plot", str(png)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: --plot {png}: the chart shows each "
                                       f"contender's speed-up {said}\n")
    assert not png.exists()


def test_the_plot_leaves_out_workloads_without_an_eager_row(tmp_path, monkeypatch):
    import graphc.bench
    from graphc.bench import Result, plot
    saved = []
    monkeypatch.setattr(graphc.bench, "save_figure", lambda fig, path: saved.append(fig))
    plot([Result("mlp-train", "compiled", times=[0.1]), Result("mlp-train", "eager",
                                                               times=[0.4]),
          Result("gen-small-decode-b1", "compiled", times=[0.2])], tmp_path / "x.png")
    ax, = saved[0].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mlp-train"]
    assert [bar.get_height() for bar in ax.patches] == [4.0, 1.0]  # compiled, eager


def test_medium_workloads_build_the_medium_config():
    from graphc.bench import WORKLOADS, _make
    assert {"gpt-medium-train", "gpt-medium-infer"} <= set(WORKLOADS)
    runner, tokens = _make("gpt-medium-train", "eager")
    cfg = runner.cfg
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (6, 6, 384, 256)
    assert tokens == cfg.batch_size * 256 == 8192


def test_bench_names_a_pinned_openblas_kernel(monkeypatch):
    import graphc.bench as bench
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    blas = bench.numpy_blas()
    if blas["library"] != "openblas":  # the variable pins only OpenBLAS
        assert blas["coretype"] is None
        return
    assert blas["coretype"] == "Haswell"
    assert bench.describe_blas(blas).endswith("(pinned by OPENBLAS_CORETYPE=Haswell)")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert bench.numpy_blas()["coretype"] is None
    assert bench.describe_blas({"library": "openblas", "version": "0.3.31",
                                "kernels": "SkylakeX", "coretype": None}) \
        == "openblas 0.3.31, SkylakeX kernels"
    assert bench.describe_blas({"library": "mkl", "version": None, "kernels": None,
                                "coretype": None}) == "mkl"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
def test_a_bench_killed_by_sigterm_leaves_no_process_running(tmp_path):
    """s43: a bench ended by SIGTERM (`timeout`, `kill PID`) runs no cleanup: its workers
    (multiprocessing spawn processes) ran the rest of their turn, all the steps of a
    --concurrent round, and the --beside-busy loop spun forever. They end with it now."""
    from launch import children, left_running, rank_env
    bench = ("from graphc import bench\n"
             "busy = bench._busy_process()\n"  # --beside-busy's
             "bench.run_shared(['mlp-train'], copies=2, steps=10**6, warmup=0, rounds=1, "
             "contenders=('compiled',))\n")  # a round of a million steps: hours
    proc = subprocess.Popen([sys.executable, "-c", bench], env=rank_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(children(proc.pid)) < 4 and time.monotonic() < deadline:  # busy, two
            time.sleep(0.1)  # workers and multiprocessing's resource tracker
        time.sleep(3)  # (the workers build the step and start their turn)
        workers = children(proc.pid)
        assert len(workers) >= 3, workers
    finally:
        proc.terminate()
        proc.wait()
    assert left_running(workers) == []


# the benches say on stdout when they first ask for a turn, the moment to press Ctrl-C
TELLS_ITS_TURNS = ("import sys\nfrom graphc import bench\nask = bench._Worker.ask\n"
                   "def told(worker, command, argument):\n"
                   "    if command == 'turn':\n        print('turn', flush=True)\n"
                   "    return ask(worker, command, argument)\n"
                   "bench._Worker.ask = told\n")
CTRL_C_BENCHES = {
    "contenders' turns": (
        "from graphc.cli import main\nsys.exit(main(['bench', '--workloads', 'mlp-train', "
        "'--contenders', 'compiled,eager', '--steps', '1000000', '--warmup', '0', "
        "'--beside-busy']))\n", "graphc: interrupted\n"),
    "a --concurrent round": (  # its solo turn of a million steps: hours
        "try:\n    bench.run_shared(['mlp-train'], copies=2, steps=10**6, warmup=0, rounds=1, "
        "contenders=('compiled',))\nexcept KeyboardInterrupt:\n    sys.exit(130)\n", ""),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("during", list(CTRL_C_BENCHES))
def test_ctrl_c_ends_the_bench_at_once_with_its_one_line(during):
    """s48: a terminal's Ctrl-C (SIGINT to the whole process group) printed a
    KeyboardInterrupt's traceback from every worker (and from the --beside-busy loop) above
    `graphc: interrupted`, and the bench then waited up to 10 s per worker for the rest of
    its turn: all the steps of a --concurrent round."""
    from launch import children, left_running, rank_env
    script, said = CTRL_C_BENCHES[during]
    proc = subprocess.Popen([sys.executable, "-c", TELLS_ITS_TURNS + script], env=rank_env(),
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "turn\n"
        time.sleep(1)  # (into the turn)
        workers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, err) == (130, said)
    assert took < 5
    assert len(workers) >= 3 and left_running(workers) == []  # (with the tracker, or busy)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_bench_ranks_killed_by_sigterm_or_sigkill_ends_its_job(tmp_path, signum):
    """s43: `graphc bench --ranks` ran each job with subprocess.run: killed by SIGTERM, the
    bench ended alone and the job (mpiexec and its ranks; for 1 rank, python) ran all its
    steps on. Its SIGTERM now ends the job, then the bench, with 143 and one line; s47: a
    SIGKILL, which it cannot handle, ended it alone still: the job now gets a SIGTERM."""
    from launch import ROOT, children, left_running, rank_env
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, graphc_entry; sys.exit(graphc_entry.main())",
         "bench", "--ranks", "1", "--steps", "1000000"], cwd=ROOT,
        env=rank_env(TMPDIR=str(tmp_path)),  # (the job's session folder, which a SIGKILL leaves)
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # (its signal handlers are set before the job starts)
        job = children(proc.pid)
        assert job
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert left_running(job) == []
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return
    assert proc.returncode == 143
    assert err.splitlines()[-1] == ("graphc: interrupted by SIGTERM: the 1-rank job was "
                                    "ended")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_bench_ranks_waits_for_its_job_and_ends_it_when_the_wait_fails(monkeypatch):
    """s51: `graphc bench --ranks` gave each job 600 s, a cap no option shows: a run of
    many --steps (or on a busy machine) ended after 10 minutes in a TimeoutExpired
    traceback, its measurements lost, and the SIGKILL it then sent mpiexec left the ranks
    running on as orphans. It waits for the job as long as it runs now (a Ctrl-C, SIGTERM or
    SIGHUP ends it), and a wait that fails all the same ends the ranks with mpiexec."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import failing_once_the_job_runs, left_running
    from graphc import bench_ranks
    seen = []
    failing_once_the_job_runs(monkeypatch, 2, seen)
    with pytest.raises(RuntimeError, match="wait failed"):
        bench_ranks.main(["--ranks", "2", "--steps", "1000000"])
    [(timeout, job)] = seen
    assert timeout is None
    assert len(job) == 3, job  # mpiexec and its two ranks
    assert left_running(job) == []
