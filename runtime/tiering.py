"""Tiered kernels: a plan runs at once, its generated kernels are compiled in the background.

numba takes ~0.15 s to compile a fused kernel, ~0.5 s for a parallel one, so the first build
of a GPT step on a machine spent ~8 s compiling 16 kernels. Instead, a kernel that is not in
the disk cache yet starts as its cluster's numpy evaluation (tier 0, the same values), and one
background process compiles the missing kernels into the cache; at the start of a later call
the plan swaps each compiled kernel in (tier 1). The next process finds them cached.

A marker file beside the kernel's module records each (source, argument types) that has been
compiled, so that a plan knows before calling whether loading a kernel will be quick.
GRAPHC_BACKGROUND_COMPILE=0 compiles every kernel while the plan is built (as tests do).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from ir.ops.registry import get_op

_RUNNING = []  # [(process, job file)] of the background compiler, at most one at a time
_QUEUED = []   # jobs waiting for the running compiler to finish


def enabled() -> bool:
    return os.environ.get("GRAPHC_BACKGROUND_COMPILE", "1") != "0"


def _marker(source: str, spec) -> str:
    from .jit import cache_dir, source_key
    sig = hashlib.sha1(repr(spec).encode()).hexdigest()[:12]
    return os.path.join(cache_dir(), f"k_{source_key(source)}.{sig}.ready")


def compiled(source: str, spec) -> bool:
    return os.path.exists(_marker(source, spec))


def mark_compiled(source: str, spec) -> None:
    path = _marker(source, spec)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    os.close(fd)
    os.replace(tmp, path)


def numpy_kernel(node):
    """Tier 0 for a fused node: a function with the generated kernel's arguments (output and
    operands viewed as the kernel sees them) that runs the fused op's numpy evaluation."""
    evaluate, program = get_op("fused").impl, node.attrs["program"]
    shapes = [i.shape for i in node.inputs]
    out_shape = node.shape

    def kernel(out, *operands):
        result = evaluate(*[x.reshape(shape) for x, shape in zip(operands, shapes)],
                          program=program)
        np.copyto(out.reshape(out_shape), result)
    return kernel


@contextmanager
def one_thread():
    """numba's parallel loops (and so runtime.gemm's blocks) on the calling thread only, for
    plans that run while the background compiler uses another core."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def submit(jobs) -> None:
    """Compile [(source, spec)] in the background compiler process."""
    _QUEUED.extend(jobs)
    if not running():
        _start()


def running() -> bool:
    """Whether the background compiler is still at work (starting the next batch when the
    last one has finished)."""
    if _RUNNING:
        process, path = _RUNNING[0]
        if process.poll() is None:
            return True
        _RUNNING.clear()
        try:
            os.remove(path)
        except OSError:
            pass
    if _QUEUED:
        _start()
        return True
    return False


def wait(timeout: float | None = None) -> None:
    while running():
        _RUNNING[0][0].wait(timeout)


def _start() -> None:
    from .jit import cache_dir
    jobs = [(source, list(spec)) for source, spec in _QUEUED]
    _QUEUED.clear()
    fd, path = tempfile.mkstemp(dir=cache_dir(), prefix="jobs-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(jobs, fh)
    # the same directory even where this process fell back to a private one
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache_dir())
    process = subprocess.Popen([sys.executable, "-m", "runtime.tiering", path], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _RUNNING.append((process, path))


def _compile_jobs(path: str) -> None:
    from .jit import load_generated, warm_generated
    with open(path) as fh:
        jobs = json.load(fh)
    for source, spec in jobs:
        spec = (spec[0],) + tuple(tuple(item) for item in spec[1:])
        if compiled(source, spec):
            continue
        warm_generated(load_generated(source), spec)
        mark_compiled(source, spec)


if __name__ == "__main__":
    _compile_jobs(sys.argv[1])
