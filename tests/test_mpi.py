"""Data parallelism under `mpiexec -n 2` (the mpi extra): averaged gradients equal the
single-process gradients of the whole batch, the watchdog stops a job whose rank died or hangs,
and ranks that disagree are refused at start-up. Each case is one mpiexec run of
tests/mpi_worker.py, with a timeout that kills the whole process group."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install 'graphc[mpi]'")

import graphc.distributed as dist  # noqa: E402
from passes.manager import optimize  # noqa: E402
from runtime.codegen import compile_graph  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "mpi_worker.py"
sys.path.insert(0, str(WORKER.parent))
import mpi_worker  # noqa: E402
from launch import rank_env, run_in_group  # noqa: E402


def run_ranks(case, out, ranks=2, timeout=240, watchdog_timeout=200, bucket_mb="0.2"):
    """mpiexec -n RANKS python mpi_worker.py CASE OUT; (exit status, output, seconds).
    `timeout` only stops a run gone wrong: the module's five cases take ~15 s on a quiet
    2-core machine, but ran past 60 s beside other work (load average 9), which failed the
    suite there though every rank was progressing. `watchdog_timeout` likewise, for the
    cases that do not test the watchdog: rank 0 alone saves the checkpoints and draws
    loss.png while the other rank waits in the next collective, and at 20 s beside other
    work (load average 8) the watchdog took that for a hang ("rank 0 made no progress for
    20 s at step 9 while rank 1 waits for it"), failing the two_ranks fixture and its six
    tests. Below `timeout`, so that a real hang is still named by the watchdog."""
    env = rank_env(TEST_WATCHDOG_TIMEOUT=str(watchdog_timeout), GRAPHC_BUCKET_MB=bucket_mb)
    start = time.monotonic()
    code, output, _ = run_in_group(dist.launch_command(ranks, [str(WORKER), case, str(out)]),
                                   env, timeout, merge_output=True)
    return code, output, time.monotonic() - start


def test_mpiexec_is_found_and_two_ranks_start():
    assert Path(dist.mpiexec_path()).name == "mpiexec"
    with dist.launch_session() as (env, _):
        proc = subprocess.run(dist.launch_command(2, ["-c", "from mpi4py import MPI; c = "
                                                      "MPI.COMM_WORLD; print(c.rank, c.size)"]),
                              env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split("\n")[:2]) == ["0 2", "1 2"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One mpiexec job for the gradient and the Trainer cases (each job costs seconds of
    start-up); OUT/resumed holds a 1-rank checkpoint at step 5 for the job to resume."""
    out = tmp_path_factory.mktemp("two_ranks")
    mpi_worker.make_trainer(5, False).fit(str(out / "resumed"), progress=False)
    code, output, _ = run_ranks("grads,trainer,batchnorm,dropout,half,resume_apart", out)
    assert code == 0, output
    return out


def test_two_ranks_average_to_the_single_process_gradient_of_the_whole_batch(two_ranks):
    from graphc.train import build_eval_loss
    tmp_path = two_ranks
    ranks = [np.load(tmp_path / f"grads_rank{r}.npz") for r in range(2)]

    x, y, params = mpi_worker.mlp_inputs()
    whole = compile_graph(optimize(mpi_worker.mlp_grad_graph(8)))(x, y, *params)
    model = mpi_worker.gpt_model(8)
    idx, targets = mpi_worker.gpt_inputs()
    whole_gpt = compile_graph(optimize(build_eval_loss(model, with_grads=True)))(
        idx, targets, **mpi_worker.gpt_params(model))
    assert len(whole_gpt) > 10
    for saved in ranks:
        for k, expected in enumerate(whole):  # loss, then each parameter's gradient
            np.testing.assert_allclose(saved[f"mlp{k}"], expected, rtol=1e-12, atol=1e-12)
        for k, expected in enumerate(whole_gpt):
            np.testing.assert_allclose(saved[f"gpt{k}"], expected, rtol=1e-12, atol=1e-12)
    # the halves differ, so the averaging did something
    half = compile_graph(optimize(mpi_worker.mlp_grad_graph(4)))(x[:4], y[:4], *params)
    assert not np.allclose(half[1], whole[1])
    # 0.2 MB buckets: the GPT's 0.45 MB of gradients go in several, the first started while
    # the backward pass still has products to compute, during which MPI is let progress
    from passes.buckets import average_outputs, plan_buckets
    graph = optimize(build_eval_loss(mpi_worker.gpt_model(4), with_grads=True))
    expected_buckets = len(plan_buckets(average_outputs(graph), 0.2))
    assert expected_buckets >= 2
    source = str(ranks[0]["source"])
    assert source.count("_collectives.start(") == expected_buckets
    first_start, first_wait = source.index("_collectives.start("), source.index(
        "_collectives.wait(")
    assert "_gemm." in source[first_start:first_wait]
    assert "_collectives.progress()" in source[first_start:first_wait]


def test_each_rank_draws_its_own_dropout_mask(two_ranks):
    """The Trainer's dropout key puts the rank in its high bits, and the mask was drawn from
    the key's low 32 bits alone: every rank drew the same mask (each unit kept by both ranks
    or by none). Now -w * 2 / 2 counts the ranks that kept each unit: 0, 1 or 2, about a
    quarter, a half and a quarter of the 1000 units."""
    weights = [np.load(two_ranks / f"dropout_rank{r}.npy") for r in range(2)]
    np.testing.assert_array_equal(weights[0], weights[1])  # the averaged step
    kept = np.bincount(np.round(-weights[0][0]).astype(int), minlength=3)
    assert kept.sum() == 1000 and all(150 < k < 350 for k in kept[[0, 2]]), kept
    assert 400 < kept[1] < 600, kept


def test_half_precision_gradients_are_averaged_over_the_ranks(two_ranks):
    """float16 and bfloat16 gradients were never all-reduced (their bucket ran as the
    library op, which only packs): rank 0 stepped w to 0.0 on its rows of 1s, rank 1 to
    -2.0 on its 3s. Reduced in float32, both take the whole batch's step to -1.0."""
    for r in range(2):
        saved = np.load(two_ranks / f"half_rank{r}.npz")
        for dtype in ("float16", "bfloat16"):
            assert float(saved[dtype][0, 0]) == -1.0, (r, dtype)
            assert float(saved[f"loss_{dtype}"]) == 2.0, (r, dtype)


def test_batchnorm_statistics_are_rank_0s_on_every_rank_after_a_step(two_ranks):
    ranks = [np.load(two_ranks / f"batchnorm_rank{r}.npz") for r in range(2)]
    x = ranks[0]["x"]
    np.testing.assert_array_equal(ranks[1]["x"], x)  # the same global batch
    # rank 0 normalised its own half of the batch: 0.9 * 0 + 0.1 * its rows' mean
    half = len(x) // 2
    expected_mean = 0.1 * x[:half].mean(0)
    expected_var = 0.9 + 0.1 * x[:half].var(0, ddof=1)
    assert not np.allclose(x[half:].mean(0), x[:half].mean(0))  # rank 1's would differ
    for saved in ranks:
        np.testing.assert_allclose(saved["0.running_mean"], expected_mean, rtol=1e-12)
        np.testing.assert_allclose(saved["0.running_var"], expected_var, rtol=1e-12)
        assert int(saved["0.num_batches_tracked"]) == 1


def test_a_killed_rank_stops_the_other_with_its_rank_and_step(tmp_path):
    code, output, seconds = run_ranks("kill", tmp_path)
    assert code != 0
    assert "graphc: rank 1 died at step 3; stopping all 2 ranks" in output, output
    assert seconds < 30


def test_a_hanging_rank_is_named_within_the_timeout(tmp_path):
    code, output, seconds = run_ranks("hang", tmp_path, watchdog_timeout=2)
    assert code != 0
    line = ("graphc: rank 1 made no progress for 2 s at step 3 while rank 0 waits for it at "
            "step 3; stopping all 2 ranks")
    assert line in output, output
    assert output.count("graphc: rank") == 1, output
    assert seconds < 30


def test_ranks_waiting_in_different_collectives_are_stopped_within_the_timeout(tmp_path):
    """Every rank waiting inside a collective, none late: a deadlock (ranks whose programs
    took other paths, as ranks that resumed other checkpoints did). The watchdog judged a
    rank only outside a collective, so the job waited for ever."""
    code, output, seconds = run_ranks("deadlock", tmp_path, timeout=60, watchdog_timeout=2)
    assert code != 0
    line = ("graphc: every rank has waited inside a collective for 2 s (rank 0 at step 3, "
            "rank 1 at step 3): they are in different collectives, or in one slower than "
            "the timeout; stopping all 2 ranks")
    assert line in output, output
    assert output.count("graphc: ") == 1, output
    assert seconds < 30


def test_ranks_with_different_configs_are_refused(tmp_path):
    code, output, _ = run_ranks("mismatch", tmp_path)
    assert code == 2, output
    line = "graphc: error: ranks disagree on config.n_layer: rank 0 has 4, rank 1 has 2"
    assert line in output, output
    assert output.count("graphc: error") == 1
    assert "handshake passed" not in output


def test_trainer_on_two_ranks_equals_one_rank_and_resumes_across_rank_counts(two_ranks):
    """gc.Trainer(distributed=True): 2 ranks x 4 rows train what 1 rank x 8 rows trains
    (float64 parameters and AdamW state after 10 steps, to 1e-12); a 1-rank checkpoint
    resumes on 2 ranks and a 2-rank one on 1 rank, to the same parameters."""
    from graphc import checkpoint

    def arrays(directory):
        wanted = {k: (a.shape, a.dtype) for k, a in expected.items()}
        got, meta = checkpoint.load_arrays(str(tmp_path / directory / "checkpoint.npz"), wanted)
        assert meta["step"] == 10
        return got

    tmp_path = two_ranks
    assert not (tmp_path / "fresh" / "checkpoint.npz.tmp").exists()
    reference = mpi_worker.make_trainer(10, False)
    reference.fit(str(tmp_path / "one_rank"), progress=False)
    expected = {k: a.copy() for k, a in reference.state_arrays().items()}
    two_to_one = mpi_worker.make_trainer(10, False)
    two_to_one.resume(str(tmp_path / "half" / "checkpoint.npz"))
    two_to_one.fit(str(tmp_path / "half"), progress=False)
    for run in ("fresh", "resumed", "half"):
        got = arrays(run)
        assert sorted(got) == sorted(expected)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-12,
                                       err_msg=f"{run}: {key}")
    start = mpi_worker.mlp_inputs()[2][0]
    assert not np.allclose(expected["param/w1"], start)  # it trained


def test_ranks_resuming_different_checkpoints_are_refused_on_every_rank(two_ranks):
    """Each rank reads the file it is given: rank 1 resuming an older checkpoint (its own
    --out on a machine that does not share rank 0's files) trained other parameters with
    the averaged gradients, from another step, silently, until the ranks met in different
    collectives and waited for ever (the watchdog sees ranks waiting, none stuck). The
    ranks compare what they restored and refuse together."""
    fresh, half = (two_ranks / run / "checkpoint.npz" for run in ("fresh", "half"))
    line = (f"ranks resumed different checkpoints: rank 0 read {fresh} at step 10, rank 1 "
            f"read {half} at step 5; every rank must resume the same one (rank 0 alone "
            "writes checkpoints: give each rank that file, or a copy of it)")
    for r in range(2):
        saved = np.load(two_ranks / f"resume_apart_rank{r}.npz")
        assert str(saved["line"]) == line, (r, str(saved["line"]))
        assert bool(saved["agreed"]), r


def test_trainer_on_two_ranks_equals_one_rank_in_float32(two_ranks):
    """The same in float32: the two ranks' sums are added in another order, so the result
    agrees to 1e-5 relative rather than bit for bit."""
    from graphc import checkpoint

    reference = mpi_worker.make_trainer(10, False, "float32")
    reference.fit(str(two_ranks / "one_rank32"), progress=False)
    expected = reference.state_arrays()
    wanted = {k: (a.shape, a.dtype) for k, a in expected.items()}
    got, meta = checkpoint.load_arrays(str(two_ranks / "fresh32" / "checkpoint.npz"), wanted)
    assert meta["step"] == 10 and sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert value.dtype == np.float32
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def test_graphc_train_ranks_2_matches_one_process_and_rank_0_alone_reports(tmp_path):
    """`graphc train --ranks 2` starts mpiexec; in float64 its checkpoint equals a
    one-process run's to 1e-12, and the job prints its header, sample and checkpoint once."""
    from graphc import checkpoint
    from graphc.cli import main

    text = tmp_path / "text.txt"
    words = ["to be ", "or not ", "that is\n", "the question\n"]
    text.write_text("".join(np.random.default_rng(0).choice(words, 300)), encoding="utf-8")
    options = ["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head",
               "2", "--block-size", "8", "--batch-size", "4", "--eval-iters", "2",
               "--no-progress", "--sample-tokens", "5", "--steps", "4", "--eval-every", "2",
               "--dtype", "float64", "--data", str(text)]
    env = dist.launch_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "graphc.cli", *options, "--ranks", "2",
                             "--out", str(tmp_path / "two")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"graphc train --ranks 2 ran past 90 s:\n{proc.communicate()[0]}")
    assert proc.returncode == 0, output
    assert output.count("graphc train: tiny GPT") == 1, output
    assert output.count("checkpoint: ") == 1 and output.count("---- sample ----") == 1
    assert main([*options, "--out", str(tmp_path / "one")]) == 0
    two, meta_two = checkpoint.load(str(tmp_path / "two" / "checkpoint.npz"))
    one, meta_one = checkpoint.load(str(tmp_path / "one" / "checkpoint.npz"))
    assert meta_two["step"] == meta_one["step"] == 4
    assert sorted(two) == sorted(one)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_a_non_finite_loss_on_one_rank_stops_every_rank_with_one_line(tmp_path):
    """Rank 1's batch alone makes the loss non-finite at step 3 (NaN rows; finite rows whose
    squared error overflows). The all-reduced loss is non-finite on every rank, and each
    re-ran the step with finite checks, on its own: rank 1's check raised at its `pow`
    before the all-reduce, so rank 0 waited in it until the watchdog stopped the job
    ('rank 1 ended at step 2 while rank 0 waits', status 1, no error line), and with NaN
    rows rank 0 blamed the all-reduce. Now both stop at once, rank 0 says once what
    rank 1 found, and the checkpoint of step 2 is kept as a one-process run saves it."""
    from graphc import checkpoint

    code, output, seconds = run_ranks("nan1,inf1", tmp_path, timeout=60, watchdog_timeout=10)
    assert code == 0, output
    assert "graphc: rank" not in output and seconds < 30, output  # not the watchdog's line
    errors = [line for line in output.splitlines() if line.startswith("graphc: error: ")]
    assert len(errors) == 2, output
    for error, what, op in zip(errors, ("loss nan", "loss inf"), ("matmul_add", "pow")):
        assert error.startswith(f"graphc: error: training diverged at step 3 ({what}, "), error
        assert f"elements of {op} -> f64[4," in error and " on rank 1 at tests/mpi_worker.py:" \
            in error, error
    reference = mpi_worker.make_trainer(2, False)
    reference.fit(str(tmp_path / "one"), progress=False)
    expected = reference.state_arrays()
    wanted = {k: (a.shape, a.dtype) for k, a in expected.items()}
    for name in ("nan1", "inf1"):
        lines = sorted(line for line in output.splitlines() if line.startswith(f"{name}: "))
        assert lines == [f"{name}: rank {r} stopped at step 2, on every rank: True"
                         for r in range(2)], output
        ckpt = tmp_path / name / "checkpoint.npz"
        assert f"{ckpt} (step 2) is kept" in output
        got, meta = checkpoint.load_arrays(str(ckpt), wanted)
        assert meta["step"] == 2
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)
