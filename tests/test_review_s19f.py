"""Session 19f: `graphc train --ranks 2` reporting bad input.

An error found before training (a resume with another config or --lr) was printed by every
rank, then mpiexec (Open MPI's prterun) added its banner about a process that exited with
non-zero status. Now the ranks agree on such a failure (graphc.distributed.fail_together),
rank 0 alone prints its line, every rank returns 0 so that mpiexec stays quiet, and the
`graphc` process that started mpiexec exits with the status rank 0 handed it
(distributed.exit_status, GRAPHC_LAUNCH_STATUS). A failure only one rank finds (here: its
GRAPHC_DATA_DIR is missing) is reported once, by rank 0, naming that rank.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from graphc.cli import main
from launch import rank_env, run_in_group

ROOT = Path(__file__).resolve().parent.parent
FAST = ["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
        "--sample-tokens", "0", "--steps", "2"]


def _text(tmp_path):
    text = tmp_path / "text.txt"
    words = ["to be ", "or not ", "that is\n", "the question\n"]
    text.write_text("".join(np.random.default_rng(0).choice(words, 300)), encoding="utf-8")
    return text


def _run(command, env, timeout=120):
    return run_in_group(command, env, timeout)


def _env():
    return rank_env()


def test_ranks_2_resume_with_another_config_is_one_line_and_status_2(tmp_path):
    """Before: the line twice, a PMIx error and prterun's banner on stderr (status 2)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    args = [*FAST, "--data", str(_text(tmp_path)), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    ckpt = tmp_path / "run" / "checkpoint.npz"
    before = (ckpt.read_bytes(), ckpt.stat().st_mtime_ns)

    code, out, err = _run([sys.executable, "-m", "graphc.cli", *args, "--resume",
                           "--n-embd", "32", "--ranks", "2"], _env())
    assert code == 2, err
    assert err.splitlines() == [
        f"graphc: error: {ckpt} was trained with another model configuration (n_embd: "
        "checkpoint 16 vs requested 32)"], err
    assert out == ""
    assert "prterun" not in err + out and "mpiexec" not in err + out
    assert (ckpt.read_bytes(), ckpt.stat().st_mtime_ns) == before


def test_a_failure_one_rank_finds_is_reported_once_by_rank_0(tmp_path):
    """Rank 1 alone cannot hold the encoded text (its GRAPHC_DATA_DIR is missing): rank 0,
    which could, reports rank 1's line, and the job ends at once, quietly, handing status 2
    to the launcher (as `graphc train --ranks 2` runs it). Before: rank 1 printed its line
    and exited 2, and prterun killed rank 0 and printed its banner."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    out_dir, missing, status = tmp_path / "run", tmp_path / "missing", tmp_path / "status"
    argv = ["-m", "graphc.cli", *FAST, "--data", str(_text(tmp_path)), "--out", str(out_dir)]
    env = _env()
    env["GRAPHC_LAUNCH_STATUS"] = str(status)  # what graphc train --ranks 2 sets
    # Open MPI's MPMD form: rank 0 as usual, rank 1 with its own GRAPHC_DATA_DIR
    command = [*dist.launch_command(1, argv), ":", "-n", "1", "env",
               f"GRAPHC_DATA_DIR={missing}", sys.executable, *argv]
    code, out, err = _run(command, env)
    assert err.splitlines() == [
        f"graphc: error: rank 1: cannot hold the encoded text in GRAPHC_DATA_DIR={missing}: "
        "No such file or directory; set GRAPHC_DATA_DIR to a writable directory with room "
        "for it"], err
    assert code == 0 and status.read_text() == "2\n", err
    assert out == "" and not out_dir.exists()


def test_a_rank_failing_alone_after_the_checks_ends_the_job_instead_of_hanging(tmp_path):
    """Rank 1 alone refuses its GRAPHC_THREADS (since session 29 when its command starts,
    before it joins the job; before that when it built the step plan). Before: it printed
    its line and waited in MPI_Finalize for rank 0, which waited for it in a collective:
    the job hung. Now it leaves at once (distributed.leave_now) and mpiexec stops the job
    (with its banner: the other rank never learns why)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    argv = ["-m", "graphc.cli", *FAST, "--data", str(_text(tmp_path)),
            "--out", str(tmp_path / "run")]
    command = [*dist.launch_command(1, argv), ":", "-n", "1", "env", "GRAPHC_THREADS=abc",
               sys.executable, *argv]
    code, out, err = _run(command, _env(), timeout=60)
    line = "graphc: error: GRAPHC_THREADS='abc': expected a positive whole number"
    assert code == 2 and err.splitlines().count(line) == 1, err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoint.npz").exists()




def test_a_train_rank_refusing_its_environment_while_another_joins_ends_the_job(tmp_path):
    """Rank 1's `graphc train` refuses its GRAPHC_THREADS when the command starts, while
    rank 0 joins the job (both import the CLI first, so the two come together). Before: rank
    1 left unjoined and Open MPI's launcher hung or crashed (PMIX_ERR_UNREACH, then status
    134 or -11: the CI run of session 29's last commit). Now `graphc train` under mpiexec
    joins first."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    joins = "import graphc.cli; from mpi4py import MPI; MPI.COMM_WORLD.Barrier()"
    argv = [*FAST, "--data", str(_text(tmp_path)), "--out", str(tmp_path / "run")]
    trains = f"import sys, graphc.cli; sys.exit(graphc.cli.main({argv!r}))"
    command = [*dist.launch_command(1, ["-c", joins]), ":", "-n", "1", "env",
               "GRAPHC_THREADS=abc", sys.executable, "-c", trains]
    line = "graphc: error: GRAPHC_THREADS='abc': expected a positive whole number"
    for _ in range(3):
        code, out, err = _run(command, _env(), timeout=30)
        assert code == 2 and err.splitlines().count(line) == 1, err
        assert "PMIX ERROR" not in err, err


def test_a_rank_leaving_unjoined_beside_ranks_that_never_join_exits(tmp_path):
    """A command that never joins the job (eval, sample) failing on one rank while the other
    succeeds: the failing rank leaves without joining (a join would wait for a rank that
    never comes: the job hung, the first form of the fix above)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    fails = ("import sys, graphc.cli; "
             "sys.exit(graphc.cli.main(['eval', '--checkpoint', 'no-such-dir']))")
    command = [*dist.launch_command(1, ["-c", fails]), ":", "-n", "1",
               sys.executable, "-c", "pass"]
    code, out, err = _run(command, _env(), timeout=30)
    assert code == 2 and err.count("graphc: error:") == 1, err
