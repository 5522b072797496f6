"""What the multi-process tests share: the environment mpiexec's ranks need to import this
checkout, and running a command in a process group of its own, killed with everything it
started (mpiexec, its ranks) when it runs past its timeout, so a hung job fails its test
instead of the suite."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def rank_env(**extra) -> dict:
    """graphc.distributed.launch_env() with this checkout importable and no background
    compiler (a rank's first step compiles in the foreground: fewer threads per core)."""
    import graphc.distributed as dist
    env = dist.launch_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")
    env.pop("GRAPHC_LAUNCH_STATUS", None)  # a test's own `graphc --ranks` sets its own
    env.update(extra)
    return env


def run_in_group(command, env, timeout, merge_output=False):
    """(exit status, stdout, stderr: None with merge_output) of `command` run from the
    checkout's root in its own session."""
    import graphc.distributed as dist
    with dist.launch_session(env) as (env, _):  # mpiexec's session files: a private folder
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"{Path(command[0]).name} ran past {timeout} s:\n{out}\n{err or ''}")
    return proc.returncode, out, err


def children(pid):
    """The pids of pid's child processes (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if entry.isdigit() and int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # (a zombie has ended)
    except OSError:
        return False


def left_running(pids) -> list:
    """Those of `pids` still running 10 s on (each then killed, so that none outlives the
    test)."""
    deadline = time.monotonic() + 10
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def failing_once_the_job_runs(monkeypatch, ranks: int, seen: list):
    """subprocess.Popen.communicate patched to fail (RuntimeError) once the job it waits for
    (mpiexec) has started its `ranks` ranks: a launcher's wait that ends in an exception (its
    timeout, a bug). `seen` gets each call's (timeout, the job's pids: mpiexec, its ranks)."""
    def communicate(proc, input=None, timeout=None):
        deadline = time.monotonic() + 120
        while len(children(proc.pid)) < ranks and time.monotonic() < deadline:
            time.sleep(0.1)
        seen.append((timeout, [proc.pid, *children(proc.pid)]))
        raise RuntimeError("the launcher's wait failed")
    monkeypatch.setattr(subprocess.Popen, "communicate", communicate)
