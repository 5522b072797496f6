"""What the multi-process tests share: the environment mpiexec's ranks need to import this
checkout, and running a command in a process group of its own, killed with everything it
started (mpiexec, its ranks) when it runs past its timeout, so a hung job fails its test
instead of the suite."""
from __future__ import annotations

import os
import signal
import subprocess
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
