"""mpiexec's session files: each job started by graphc gets a private folder for them.

Open MPI 5's mpiexec keeps them in the temporary directory under a folder named after its
own pid (ompi.PID), which a killed job leaves behind. A later mpiexec given the same pid
failed to start: "The PMIx server's listener thread failed to start" (it ended a CI run of
this suite, whose multi-process tests kill hung jobs, on a machine whose pids wrap at 32768).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import graphc.distributed as dist

PRINT_SESSION = ["-c", "import os; print(os.environ['PMIX_SERVER_TMPDIR'])"]


def leave_stale_sessions(tmp: Path, count: int) -> int:
    """Leave what a killed mpiexec leaves (ompi.PID/pmix.HOST.tool) in `tmp` for the next
    `count` pids this machine will hand out; how many were left (0 where the kernel does not
    say which pid comes next)."""
    last_pid, pid_max = Path("/proc/sys/kernel/ns_last_pid"), Path("/proc/sys/kernel/pid_max")
    if not (last_pid.exists() and pid_max.exists()):
        return 0
    last, top = int(last_pid.read_text()), int(pid_max.read_text())
    for k in range(1, count + 1):
        pid = last + k if last + k < top else last + k - top + 300  # pids wrap round to 300
        folder = tmp / f"ompi.{pid}"
        folder.mkdir(exist_ok=True)
        (folder / f"pmix.{socket.gethostname()}.tool").write_text("left by a killed job\n")
    return count


def test_a_killed_jobs_session_files_do_not_stop_the_next_job(tmp_path):
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import rank_env
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    leave_stale_sessions(system_tmp, 400)
    done = dist.launch(1, PRINT_SESSION, env=rank_env(TMPDIR=str(system_tmp)),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    session = Path(done.stdout.strip().splitlines()[-1])
    # the job's session files were in a folder of its own, gone once the job ended
    assert system_tmp not in session.parents, session
    assert session.name.startswith("ompi.") and not session.parent.exists(), session


def test_launch_session_gives_each_job_a_new_folder_and_removes_it():
    with dist.launch_session({"PATH": os.environ.get("PATH", "")}) as (env, folder):
        assert env[dist.SESSION_FOLDER] == folder and os.path.isdir(folder)
        with dist.launch_session(env) as (inner, other):
            # a folder the caller named is kept: the user's own choice of session folder
            assert inner[dist.SESSION_FOLDER] == folder != other
    assert not os.path.exists(folder) and not os.path.exists(other)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGQUIT])
def test_a_launcher_ended_by_a_signal_it_does_not_handle_ends_its_job(tmp_path, signum,
                                                                     monkeypatch):
    """(s47) `launch` starts mpiexec in a session of its own (so that a Ctrl-C reaches rank
    0 through the launcher, not mpiexec), so a launcher ended by a signal it has no handler
    for, SIGKILL (`kill -9`, the OOM killer) or Ctrl-\\'s SIGQUIT, left mpiexec and its
    ranks running on: `graphc train --ranks 2` trained on in the background into --out,
    holding its lock, after the command had ended. mpiexec now gets a SIGTERM with it, as
    from a second Ctrl-C, and ends its ranks."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import children, left_running, rank_env
    started, system_tmp = tmp_path / "ranks", tmp_path / "tmp"
    started.mkdir(), system_tmp.mkdir()
    rank = (f"import os, time; open(os.path.join({str(started)!r}, str(os.getpid())), 'w')"
            f".close(); time.sleep(120)")
    launcher = ("import signal, graphc.distributed as dist\n"
                "signal.signal(signal.SIGQUIT, signal.SIG_DFL)\n"  # (as at a terminal)
                f"dist.launch(2, ['-c', {rank!r}])\n")
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=tmp_path,  # (a core file)
                            env=rank_env(TMPDIR=str(system_tmp)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(started)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        ranks = [int(name) for name in os.listdir(started)]
        assert len(ranks) == 2, "the ranks did not start"
        job = children(proc.pid) + ranks  # mpiexec (it runs as prterun) and its ranks
        assert len(job) == 3, job
    finally:
        os.kill(proc.pid, signum)
        proc.wait()
    assert proc.returncode == -signum
    assert left_running(job) == []
    # (s48) the session folder it left behind goes at the next launch
    left = list(system_tmp.glob("graphc-launch-*"))
    assert len(left) == 1, left
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    with dist.launch_session({}) as (_, folder):
        assert not left[0].exists() and Path(folder).parent == system_tmp


def test_the_next_launch_removes_a_killed_launchers_session_folder_not_a_live_ones(
        tmp_path, monkeypatch):
    """Session 48: a launcher killed by SIGKILL (`kill -9` of `graphc train --ranks 2`) left
    its session folder (graphc-launch-...) in the temporary directory for ever. Its name now
    holds its pid and start time, and the next launch removes those of processes that have
    ended (or whose pid is now another process's); a live launcher's folder, and any folder
    not named so, is kept."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with dist.launch_session({}) as (_, own):  # a live one's, as another launcher's
            name = Path(own).name
            assert name.startswith(f"graphc-launch-{os.getpid()}-")
            started, space = name.split("-")[3:5]
            alive_started = dist._started(alive.pid)
            assert alive_started > 0 or not sys.platform.startswith("linux")
            folders = {
                "dead": f"graphc-launch-{ended.pid}-{started}-{space}-abc",
                "reused": f"graphc-launch-{alive.pid}-{alive_started + 1}-{space}-abc",
                "alive": f"graphc-launch-{alive.pid}-{alive_started}-{space}-abc",
                "other": "graphc-launch-q1w2e3r4",  # (an older graphc's name: not guessed at)
                # (a launcher's in another container or machine sharing the folder: its pid
                # is not this pid space's, dead here or another process here)
                "elsewhere": f"graphc-launch-{ended.pid}-{started}-0000beef-abc",
            }
            for folder in folders.values():
                (tmp_path / folder).mkdir()
                (tmp_path / folder / "status").write_text("0\n")
            with dist.launch_session({}) as (_, second):
                left = {p.name for p in tmp_path.iterdir()}
            kept = {folders["alive"], folders["other"], folders["elsewhere"], name,
                    Path(second).name}
            gone = {folders["dead"]} | ({folders["reused"]} if alive_started > 0 else set())
            assert kept <= left and not gone & left, left
    finally:
        alive.kill()
        alive.wait()
    with dist.launch_session({}):
        assert not (tmp_path / folders["alive"]).exists()  # (its process has ended now)
    assert {p.name for p in tmp_path.iterdir()} == {folders["other"], folders["elsewhere"]} | (
        set() if alive_started > 0 else {folders["reused"]})


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-pf", "--mount-proc", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _unshare_works(),
                    reason="a pid namespace of its own (unshare -p, as root)")
def test_a_launch_in_another_pid_namespace_keeps_a_live_launchers_session_folder(tmp_path):
    """Review of session 48: the next launch removed the session folder of any launcher whose
    pid it could not see, so one in a container of its own pid namespace sharing the
    temporary directory (there, pids start again at 1) removed a live launcher's folder
    outside it, whose job then failed on its missing status.pid.tmp; and the other way
    round. A folder is judged only by a launcher of its own pid space."""
    code = ("import sys, time, tempfile, graphc.distributed as dist\n"
            f"tempfile.tempdir = {str(tmp_path)!r}\n"
            "with dist.launch_session({}) as (_, folder):\n"
            "    print(folder, flush=True); time.sleep(float(sys.argv[1]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    inside = subprocess.Popen(["unshare", "-pf", "--kill-child", "--mount-proc", sys.executable,
                               "-c", code, "60"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        theirs = Path(inside.stdout.readline().strip())
        assert theirs.parent == tmp_path
        import tempfile
        saved, tempfile.tempdir = tempfile.tempdir, str(tmp_path)
        try:
            with dist.launch_session({}) as (_, ours):  # (out here: its pid is another's)
                assert theirs.is_dir()
                # and a launch in a namespace of its own keeps this live launcher's folder
                subprocess.run(["unshare", "-pf", "--mount-proc", sys.executable, "-c", code,
                                "0"], check=True, capture_output=True, env=env, timeout=60)
                assert Path(ours).is_dir() and theirs.is_dir()
        finally:
            tempfile.tempdir = saved
    finally:
        inside.kill()
        inside.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_launch_whose_wait_fails_ends_its_ranks_too(monkeypatch):
    """s51: when launch's wait for mpiexec ended in an exception (its `timeout`), it sent
    mpiexec SIGKILL, which ends mpiexec alone: its ranks ran on as orphans (here: for the
    two minutes of their sleep). mpiexec gets SIGTERM first now, and ends them."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    from launch import failing_once_the_job_runs, left_running
    seen = []
    failing_once_the_job_runs(monkeypatch, 2, seen)
    with pytest.raises(RuntimeError, match="wait failed"):
        dist.launch(2, ["-c", "import time; time.sleep(120)"], timeout=600)
    [(timeout, job)] = seen
    assert len(job) == 3, job  # mpiexec (it runs as prterun) and its two ranks
    assert left_running(job) == []
