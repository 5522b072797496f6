"""Session 19i: `graphc train --ranks 2` stopped by a signal, or failing in training.

A SIGINT or SIGTERM reaching the `graphc` process that launched mpiexec used to end the job
at once (subprocess.run killed mpiexec; a Ctrl-C at the terminal also reached mpiexec, which
ends its ranks): `graphc: interrupted`, status 130, and the checkpoint of the last periodic
save, not of the step it stopped at. A signal reaching the ranks themselves stopped them
together at a step boundary with a save, but each returned 128 + N and mpiexec added its
banner. Now the launcher forwards the signal to rank 0 while it trains
(distributed.stops_forwarded), the ranks agree on the stop, save, and hand the status over
(distributed.exit_status): rank 0's one line, 130 or 143, nothing from mpiexec. A diverged
run (TrainingDiverged, found by every rank at the same step) is reported the same way.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graphc import checkpoint
from launch import rank_env, run_in_group
from test_review_s19f import FAST, _env, _text

ROOT = Path(__file__).resolve().parent.parent
LONG = [*FAST[:-1], "100000", "--eval-every", "5"]  # FAST's --steps 2 made long


def _graphc(args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "graphc.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def _long_run_on_2_ranks(tmp_path):
    """`graphc train --ranks 2` into tmp_path/run, numpy kernels (training starts at once),
    for LONG's steps: (the process, its run directory)."""
    env = _env()
    env["GRAPHC_JIT"] = "0"
    out_dir = tmp_path / "run"
    return _graphc([*LONG, "--data", str(_text(tmp_path)), "--out", str(out_dir), "--ranks",
                    "2"], env), out_dir


def _assert_lock_released(out_dir):
    """The run directory's lock was let go: another run may take it."""
    import fcntl
    with open(out_dir / ".graphc.lock", "rb+") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _finish(proc, timeout=120):
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_every_process_naming(proc.args[proc.args.index("--out") + 1])
        out, err = proc.communicate()
        pytest.fail(f"ran past {timeout} s:\n{out}\n{err}")


def _kill_every_process_naming(marker):
    """SIGKILL the launcher, mpiexec (in a session of its own, maybe orphaned) and the ranks:
    every process whose command line holds `marker` (the run's --out)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_graphc_train_ranks_2_stops_saves_and_says_one_line(tmp_path, signum):
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    env = _env()
    env["GRAPHC_JIT"] = "0"  # numpy kernels: training starts at once
    out_dir = tmp_path / "run"
    args = [*LONG, "--data", str(_text(tmp_path)), "--out", str(out_dir), "--ranks", "2"]
    # SIGINT at its default in the child (the suite may run with it ignored)
    proc = _graphc(args, env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:  # rank 0 prints it just before the first step
        if line.startswith("step 0:"):
            break
    time.sleep(0.5)
    proc.send_signal(signum)  # to the launching process alone, as `kill PID` does
    out, err = _finish(proc)
    ckpt = out_dir / "checkpoint.npz"
    step = checkpoint.load(str(ckpt))[1]["step"]
    assert proc.returncode == 128 + signum, err
    assert err.splitlines() == [
        f"interrupted by {signal.Signals(signum).name}: saved step {step} to {ckpt}; to "
        "continue, run the same command with --resume"], err
    assert "prterun" not in out + err and "mpiexec" not in out + err
    assert step > 0
    # and it resumes there, on two ranks again
    resumed = _graphc([*FAST[:-1], str(step + 2), "--data", str(tmp_path / "text.txt"),
                       "--out", str(out_dir), "--ranks", "2", "--resume"], env)
    out, err = _finish(resumed)
    assert resumed.returncode == 0, err
    assert f"resumed from {ckpt} at step {step}" in out
    assert checkpoint.load(str(ckpt))[1]["step"] == step + 2


def test_training_diverged_under_ranks_2_is_rank_0s_one_line_and_status_2(tmp_path):
    """A run diverging on 2 ranks: every rank finds it at the same step (the loss, gradient
    norm and parameters it checks are all-reduced), and every rank printed its own line,
    rank 1's saying `no checkpoint was written` (only rank 0 writes one), then prterun's
    banner. Now rank 0 alone says it, naming the checkpoint kept, and the status is 2."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    env = _env()
    env["GRAPHC_JIT"] = "0"
    out_dir = tmp_path / "run"
    args = [*FAST, "--data", str(_text(tmp_path)), "--out", str(out_dir), "--ranks", "2"]
    first = _graphc(args, env)
    _, err = _finish(first)
    assert first.returncode == 0, err
    ckpt = out_dir / "checkpoint.npz"
    before = ckpt.read_bytes()

    run = _graphc([*args, "--resume", "--steps", "6", "--lr", "1e308",
                   "--allow-changed-settings"], env)
    out, err = _finish(run)
    assert run.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    line = err.splitlines()[0]
    assert line.startswith("graphc: error: training diverged at step ") and \
        line.endswith(f"Try a lower --lr; {ckpt} (step 2) is kept"), err
    assert "prterun" not in out + err and "mpiexec" not in out + err
    assert ckpt.read_bytes() == before


def test_an_uncaught_exception_in_one_rank_ends_the_job_at_once(tmp_path):
    """A bug (an exception no one catches) in rank 1 alone during training. Before: rank 1
    printed its traceback and waited in MPI_Finalize, rank 0 in the step's all-reduce, until
    the watchdog's timeout (60 s by default, 30 here) ended the job with `graphc: rank 1
    ended at step 2 while rank 0 waits at step 3`. Now distributed.init's excepthook leaves
    at once (leave_now) after the traceback and mpiexec stops the job."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from test_mpi import run_ranks

    code, output, seconds = run_ranks("bug1", tmp_path, timeout=90, watchdog_timeout=30)
    assert code != 0, output
    assert output.count("RuntimeError: a bug in rank 1") == 1, output
    assert "graphc: rank" not in output, output  # not the watchdog's line
    assert seconds < 25, output


def test_ranks_2_prints_each_evaluation_line_once(tmp_path):
    """`step N: train loss ..., val loss ...` came from every rank (tqdm.write prints even
    when the rank's progress bar is off), so `graphc train --ranks 2` printed it twice."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    env = _env()
    env["GRAPHC_JIT"] = "0"
    run = _graphc([*FAST, "--steps", "4", "--eval-every", "2", "--data", str(_text(tmp_path)),
                   "--out", str(tmp_path / "run"), "--ranks", "2"], env)
    out, err = _finish(run)
    assert run.returncode == 0, err
    evaluations = [line.split(":")[0] for line in out.splitlines() if "train loss" in line]
    assert evaluations == ["step 2", "step 4"], out


def test_a_hangup_of_graphc_train_ranks_2_ends_its_job(tmp_path):
    """mpiexec runs in a session of its own (so that a Ctrl-C reaches the launcher alone),
    so the terminal's SIGHUP no longer reaches it: the launcher, on SIGHUP, ends the job
    (status 129) instead of dying and leaving mpiexec and its ranks training."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    env = _env()
    env["GRAPHC_JIT"] = "0"
    # A terminal's hangup, not nohup's: a test runner started under nohup passes SIGHUP on
    # ignored, and the launcher rightly keeps ignoring an ignored SIGHUP
    proc = _graphc([*LONG, "--data", str(_text(tmp_path)), "--out", str(tmp_path / "run"),
                    "--ranks", "2"], env,
                   preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith("step 0:"):
            break
    proc.send_signal(signal.SIGHUP)
    out, err = _finish(proc, timeout=30)  # the ranks held stdout open, training on
    assert proc.returncode == 128 + signal.SIGHUP, err


@pytest.mark.parametrize("lines_read", [0, 4])
def test_a_reader_gone_stops_graphc_train_ranks_2_as_one_process(tmp_path, lines_read):
    """`graphc train --ranks 2 | head`: mpiexec wrote into the command's stdout itself, so
    rank 0 (writing into mpiexec's forwarding pipe) never saw the reader go; the ranks
    trained on until mpiexec got the SIGPIPE of a later line and aborted the job: status 1,
    `prterun: SIGPIPE detected - aborting`, the ranks killed mid-step and the steps since
    the last periodic save lost. Now the launcher relays mpiexec's output and tells rank 0
    (a file it looks for at each step boundary; lines_read=0: the reader gone before the
    first line), and the ranks stop as one process does: at a step boundary,
    saved there, rank 0's one line, status 141, the directory's lock released."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    proc, out_dir = _long_run_on_2_ranks(tmp_path)
    read = [proc.stdout.readline() for _ in range(lines_read)]  # the last: `step 5: ...`
    proc.stdout.close()  # the reader goes away, as `head -4` does
    out, err = _finish(proc)
    ckpt = out_dir / "checkpoint.npz"
    step = checkpoint.load(str(ckpt))[1]["step"]
    assert proc.returncode == 128 + signal.SIGPIPE, err
    assert err.splitlines() == [
        f"interrupted by SIGPIPE: saved step {step} to {ckpt}; to continue, run the same "
        "command with --resume"], err
    assert "prterun" not in err
    if lines_read:
        assert read[-1].startswith("step 5: train loss"), read
        assert 5 <= step < 100  # at the next boundary after the next line found it gone
    else:
        assert step == 0  # told before training: stopped at its first boundary
    _assert_lock_released(out_dir)


_LAUNCH = ("import sys, graphc.distributed as dist; "
           "sys.exit(dist.launch(2, sys.argv[1:], timeout=100).returncode)")
_SIDE_PIPE = '''
import subprocess, sys, time, numpy as np, graphc as gc, graphc.distributed as dist
dist.init(timeout=30)
side = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
def log(text):
    print(text, flush=True)
    try:
        side.stdin.write(text.encode() + b"\\n"); side.stdin.flush()
    except BrokenPipeError:
        pass   # the side process went; training goes on
    time.sleep(0.2)  # (head has gone before the next line)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 3))
t = gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"] - b[1]) ** 2), {"w": np.zeros((5, 3))},
               gc.optim.SGD(lr=0.01), lambda g: (x, y), eval_batches=lambda g: (x, y),
               steps=30, eval_every=5, distributed=True)
stopped = t.fit(out=sys.argv[1], progress=False, log=log)
dist.print0("fit returned", stopped, "at step", t.step)
'''


def test_a_pipe_of_rank_0s_own_whose_reader_goes_does_not_stop_ranks_2(tmp_path):
    """Review r7 of 6ed5338: rank 0 took any SIGPIPE for its stdout's reader gone (a Python
    SIGPIPE handler while training), so a log that also feeds a side process that went away
    (catching its BrokenPipeError, as the README says a log of one's own does) stopped
    training: `fit returned 13 at step 5`. One process trains on, and so do 2 ranks now:
    the launcher tells rank 0 by a file it looks for at each step boundary."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    script = tmp_path / "side_pipe.py"
    script.write_text(_SIDE_PIPE)
    code, out, err = run_in_group([sys.executable, "-c", _LAUNCH, str(script),
                                   str(tmp_path / "run")], rank_env(GRAPHC_JIT="0"),
                                  timeout=120)
    assert code == 0, err
    assert out.splitlines()[-1] == "fit returned 0 at step 30", out


def test_a_slow_reader_of_a_non_blocking_pipe_gets_all_of_ranks_2s_output(tmp_path):
    """Review r7 of 6ed5338: the relay of mpiexec's output took any failed write for the
    reader gone, EAGAIN too: on a stdout pipe set O_NONBLOCK by its parent (some CI runners)
    a slow reader lost output (389,824 of 3,920,000 bytes) and the job stopped with 141. A
    full pipe is waited for now: every byte, status 0."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import fcntl
    import select
    lines = 20000
    script = tmp_path / "many_lines.py"
    script.write_text("import sys, graphc.distributed as dist\ndist.init(timeout=30)\n"
                      "line = f'rank {dist.rank()} ' + 'x' * 90 + '\\n'\n"
                      f"sys.stdout.write(line * {lines})\n")
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(script)], cwd=ROOT,
                            env=rank_env(), stdout=w, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.close(w)
    try:
        time.sleep(3)  # a slow reader: the pipe fills meanwhile
        total, deadline = 0, time.monotonic() + 100
        while select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            total += len(chunk)
        else:
            pytest.fail(f"no end of output in 100 s ({total} bytes)")
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        os.close(r)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert total == 2 * lines * 98


def test_a_save_refused_on_rank_0_stops_graphc_train_ranks_2_together(tmp_path):
    """(s44) Another run wrote OUT/checkpoint.npz while `graphc train --ranks 2` trained:
    rank 0 refused its next save and left alone (leave_now), rank 1 trained on into the
    next all-reduce, and mpiexec killed the job with its banner after rank 0's line. The
    ranks now agree on rank 0's refusal (Trainer._rank_0_writes, fail_together): its one
    line, status 2 handed to the launcher, nothing from mpiexec, the other run's file kept
    and the directory's lock released."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    proc, out_dir = _long_run_on_2_ranks(tmp_path)
    for line in proc.stdout:  # printed after the save of step 5
        if line.startswith("step 5:"):
            break
    ckpt = out_dir / "checkpoint.npz"
    # put again until the run ends (r10): one landing between a save's check and its rename
    # (not detected) is replaced by that save, and the run went on for LONG's steps, past
    # _finish's 120 s; the next one is refused at the save after it
    ended = threading.Event()

    def put_theirs():
        while not ended.is_set():
            (tmp_path / "other.npz").write_bytes(b"another run's checkpoint")
            os.replace(tmp_path / "other.npz", ckpt)  # as that run's save does
            ended.wait(0.05)
    putting = threading.Thread(target=put_theirs)
    putting.start()
    try:
        out, err = _finish(proc)
    finally:
        ended.set()
        putting.join()
    assert proc.returncode == 2, err
    # (s46) this run's state, kept beside OUT: at the first save after the replace, step 10
    # where this test's reader kept up with the run, a later one where it did not (r5: the
    # step read from the line, not assumed)
    found = re.search(r"this run's step (\d+) is saved", err)
    step = int(found.group(1)) if found else 10
    assert step >= 10 and step % 5 == 0, err
    kept = tmp_path / f"run.step{step}"
    assert err.splitlines() == [
        f"graphc: error: {ckpt} has been written by another run since this trainer resumed "
        f"(or saved) it; graphc train does not replace it; this run's step {step} is saved in "
        f"{kept} instead; to continue it, run the same command with --out {kept} --resume"], err
    assert "prterun" not in err + out
    assert ckpt.read_bytes() == b"another run's checkpoint"
    assert checkpoint.load_saved(str(kept / "checkpoint.npz"))[1]["step"] == step
    _assert_lock_released(out_dir)


_ONE_RANK_SIGNALLED = """
import os, signal, sys
import numpy as np
import graphc as gc
import graphc.distributed as dist
dist.init(timeout=15)
x, sent, trainer, steps = np.ones((4, 4), np.float32), [], None, int(sys.argv[2])
def batches(rng):  # (also called while the Trainer is built)
    # steps 3: in the last step; steps 0: in the first evaluation, before no loop step
    if dist.rank() == 0 and trainer is not None and trainer.step == min(steps, 2) \
            and not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's signal to this one rank
    return (x,)
trainer = gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                     {"w": np.ones((4, 2), np.float32)}, gc.optim.SGD(lr=0.01), batches,
                     steps=steps, eval_every=1, eval_batches=None if steps else batches,
                     distributed=True)
print(f"rank {dist.rank()}: fit returned {trainer.fit(sys.argv[1], progress=False)}",
      flush=True)
"""


@pytest.mark.parametrize("steps", [3, 0])
def test_a_signal_to_one_rank_at_the_end_does_not_hang_fit(tmp_path, steps):
    """(s44, r1, r5) rank 0, stopped alone by a signal in the last step, skipped the
    end-of-fit plot's agreement (fail_together's allgather) while rank 1 entered it and
    waited for ever, past the watchdog; every rank now enters it. With no loop step (steps
    0: no agreed stop check), rank 0 alone saved (its own agreement) and then entered the
    plot's: the late save is agreed too. fit returns on both (143 - 128 on the signalled
    rank, 0 on the other) as before the agreements."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    script = tmp_path / "one_rank_signalled.py"
    script.write_text(_ONE_RANK_SIGNALLED)
    code, out, _ = run_in_group(
        dist.launch_command(2, [str(script), str(tmp_path / "run"), str(steps)]), rank_env(),
        90, merge_output=True)
    assert code == 0, out
    assert sorted(line for line in out.splitlines() if line.startswith("rank ")) == [
        "rank 0: fit returned 15", "rank 1: fit returned 0"], out


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_stdout_that_cannot_be_written_stops_graphc_train_ranks_2_as_one_process(tmp_path):
    """Session 48: `graphc train --ranks 2 > /dev/full` trained to the end, status 0, every
    line lost (mpiexec wrote the ranks' output into it itself); one process stops at its
    failed write, one line, status 2. The launcher relays the output into a file or device
    too, and a failed write (not a reader gone) stops the ranks at a step boundary, saved,
    rank 0's one line naming stdout, status 2. (Also the first line here: one process
    fails at it, before training.)"""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    env = _env()
    env["GRAPHC_JIT"] = "0"
    results = {}
    for ranks in ("1", "2"):
        out_dir = tmp_path / f"run{ranks}"
        with open("/dev/full", "w") as full:
            proc = subprocess.Popen(
                [sys.executable, "-m", "graphc.cli", *LONG, "--data", str(_text(tmp_path)),
                 "--out", str(out_dir), "--ranks", ranks], cwd=ROOT, env=env, stdout=full,
                stderr=subprocess.PIPE, text=True, start_new_session=True)
        err = _finish(proc)[1]
        results[ranks] = (proc.returncode, err, out_dir)
    assert results["1"][:2] == (2, "graphc: error: [Errno 28] cannot write to stdout: No "
                                   "space left on device\n")
    code, err, out_dir = results["2"]
    ckpt = out_dir / "checkpoint.npz"
    step = checkpoint.load(str(ckpt))[1]["step"]
    assert code == 2, err
    assert err.splitlines() == [
        f"graphc: error: cannot write to stdout: No space left on device: training stopped "
        f"at step {step}, saved in {ckpt}; to continue, run the same command with --resume"]
    assert step < 100, step  # (told at the first line, before training: its first boundary)
    _assert_lock_released(out_dir)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_launched_jobs_output_that_cannot_be_written_raises_after_it_ends():
    """Session 48: output of a job that trains nothing (or of the end of a run, after its
    last step boundary) that cannot be written is the launcher's OSError once the job has
    ended, as a failed print is one process's (the command's one line, status 2)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    script = ("import sys, graphc.distributed as dist\n"
              "try:\n"
              "    dist.launch(2, ['-c', 'print(1)'], timeout=100)\n"
              "except OSError as exc:\n"
              "    sys.stderr.write(f'{exc.errno} {exc.strerror}'); sys.exit(3)\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=rank_env(),
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=150)
    assert (proc.returncode, proc.stderr) == (
        3, "28 cannot write to stdout: No space left on device"), proc.stderr
