"""Tiered kernels: a plan runs at once, its generated kernels are compiled in the background.

numba takes ~0.15 s to compile a fused kernel, ~0.5 s for a parallel one, so the first build
of a GPT step on a machine spent ~8 s compiling 16 kernels. Instead, a kernel that is not in
the disk cache yet starts as its cluster's numpy evaluation (tier 0), and one
background process compiles the missing kernels into the cache; at the start of a later call
the plan swaps each compiled kernel in (tier 1). The next process finds them cached.

A marker file beside the kernel's module records each (source, argument types) that has been
compiled, so that a plan knows before calling whether loading a kernel will be quick.
Tier 0's values are numpy's, the kernels' are runtime.jit's (float32 exp and tanh polynomials,
libm): they may differ in the last bits, so runs that must match bit for bit compile first
(README, "Fusion and generated kernels").
GRAPHC_BACKGROUND_COMPILE=0 compiles every kernel while the plan is built (as tests do).

The compiler process imports graphc's own packages only (isolated, with this process's import
path), reads its jobs from a pipe whose end means this process has gone (it then stops after
the kernel at hand), writes its errors to compiler.log in the cache directory (a failure is
one warning naming it), and is stopped at exit; waiting for it gives up, with a warning, after
GRAPHC_COMPILE_TIMEOUT seconds without a finished kernel. Where it fails, hangs or cannot
write a cache, the plans compile their kernels themselves at their next call.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

import numpy as np

from ir import settings
from ir.errors import user_stacklevel
from ir.ops.registry import get_op

_COMPILER = {}  # the running background compiler: "process", "jobs", "log"
_STOP_AT_EXIT = []  # whether stop() is registered with atexit (once per process)
_QUEUED = []    # jobs waiting for the running compiler to finish
_OFF = []       # set once the compiler failed or hung: later kernels compile in the process
_PARENTS_COMPILER = []  # in a forked child: the parent's compiler, never used (see below)
# after its parent has gone, the compiler finishes the kernel at hand and exits; one that
# takes longer than this is abandoned (and the parent waits this long at exit, at most)
GRACE_SECONDS = 3.0


def enabled() -> bool:
    return settings.BACKGROUND_COMPILE.get()


def _timeout() -> float:
    """Seconds that wait() allows the compiler without one more kernel finished."""
    return settings.COMPILE_TIMEOUT.get()


def _marker(directory: str, source: str, spec) -> str:
    from .jit import source_key
    sig = hashlib.sha1(repr(spec).encode()).hexdigest()[:12]
    return os.path.join(directory, f"k_{source_key(source)}.{sig}.ready")


def compiled(source: str, spec) -> bool:
    from .jit import cache_dir
    directory = cache_dir()
    return directory is not None and os.path.exists(_marker(directory, source, spec))


def mark_compiled(source: str, spec) -> None:
    from .jit import cache_dir, cache_failed
    directory = cache_dir()
    if directory is None:  # no usable cache: nothing to record
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        os.close(fd)
        os.replace(tmp, _marker(directory, source, spec))
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        cache_failed(directory, exc)


def numpy_kernel(node):
    """Tier 0 for a fused node: a function with the generated kernel's arguments (output(s)
    and operands viewed as the kernel sees them) that runs the fused op's numpy evaluation."""
    evaluate, program = get_op("fused").impl, node.attrs["program"]
    shapes = [i.shape for i in node.inputs]
    results = node.attrs.get("results")
    if results is None:
        out_shape = node.shape

        def kernel(out, *operands):
            result = evaluate(*[x.reshape(shape) for x, shape in zip(operands, shapes)],
                              program=program)
            np.copyto(out.reshape(out_shape), result)
        return kernel
    n_out, out_shape = len(results), node.type.elements[0].shape

    def kernel_with_results(*args):
        values = evaluate(*[x.reshape(shape) for x, shape in zip(args[n_out:], shapes)],
                          program=program, results=results)
        for out, value in zip(args[:n_out], values):  # all computed before any is written
            np.copyto(out.reshape(out_shape), value)
    return kernel_with_results


def submit(jobs) -> None:
    """Compile [(source, spec)] in the background compiler process. Without a usable cache
    (or after the compiler failed) nothing is submitted: the plans compile their kernels at
    their next call."""
    from .jit import cache_dir
    if _OFF or cache_dir() is None:
        return
    _QUEUED.extend(jobs)
    if not running():
        _start()


def running() -> bool:
    """Whether the background compiler is still at work (starting the next batch when the
    last one has finished)."""
    process = _COMPILER.get("process")
    if process is not None:
        if process.poll() is None:
            return True
        _finished()
    if _QUEUED and not _OFF:
        _start()
        return bool(_COMPILER)
    return False


def wait(timeout: float | None = None) -> None:
    """Until the background compiler has finished. One that has not finished a kernel for
    `timeout` seconds (GRAPHC_COMPILE_TIMEOUT, default 300) is stopped, with a warning: the
    plans then compile what is missing themselves."""
    limit = _timeout() if timeout is None else timeout
    done, deadline = -1, 0.0
    while running():
        jobs = _COMPILER["jobs"]
        now = sum(compiled(source, spec) for source, spec in jobs)
        if now != done:
            done, deadline = now, time.monotonic() + limit
        elif time.monotonic() > deadline:
            log = _COMPILER["log"]
            _OFF.append(True)
            _QUEUED.clear()
            stop(grace=0)
            _warn(f"graphc: the background kernel compiler finished no kernel in {limit:g} s "
                  f"(GRAPHC_COMPILE_TIMEOUT); stopped it (its log: {log}); compiling the "
                  "kernels in this process")
            return
        try:
            _COMPILER["process"].wait(min(0.2, limit))
        except subprocess.TimeoutExpired:
            pass


def stop(grace: float = GRACE_SECONDS) -> None:
    """End the background compiler (at exit, or when it hangs): its input closes, which it
    takes as the sign to stop after the kernel at hand; killed if that takes over `grace`
    seconds."""
    process = _COMPILER.get("process")
    if process is None:
        return
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    _COMPILER.clear()


def _forget_the_parents_compiler() -> None:
    """In a forked child: the compiler process is the parent's. The child closes its copy of
    the pipe (the compiler must see its end when the parent goes), never stops or waits for
    it, and compiles whatever kernels it still needs itself."""
    process = _COMPILER.get("process")
    if process is not None:
        try:
            # not .close(), which would flush the parent's buffered jobs into the pipe again;
            # the file object is kept, so that collecting it never closes a reused number
            os.close(process.stdin.fileno())
        except (OSError, ValueError):
            pass
        _PARENTS_COMPILER.append(process)
    _COMPILER.clear()
    _QUEUED.clear()
    _OFF[:] = [True]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_parents_compiler)


def _warn(message: str) -> None:
    from .jit import KernelCacheWarning
    warnings.warn(message, KernelCacheWarning, stacklevel=user_stacklevel())


def _finished() -> None:
    process, log = _COMPILER["process"], _COMPILER["log"]
    _COMPILER.clear()
    if process.returncode != 0:
        _OFF.append(True)
        _QUEUED.clear()
        _warn(f"graphc: the background kernel compiler failed (exit status "
              f"{process.returncode}; its log: {log}); compiling the kernels in this process")


# The compiler runs isolated (-I: neither the working directory nor PYTHONPATH is on its
# path, where a runtime/ package of the user's would otherwise be imported) with this
# process's own import path: the directory `runtime` came from first.
_CHILD_CODE = "import sys; sys.path[:0] = {path!r}; from runtime.tiering import _main; _main()"


def _child_path() -> list:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cwd = os.getcwd()
    return [root] + [p for p in sys.path if p and os.path.isabs(p) and p not in (cwd, root)]


def _start() -> None:
    from .jit import cache_dir, cache_failed
    directory = cache_dir()
    jobs = [(source, list(spec)) for source, spec in _QUEUED]
    _QUEUED.clear()
    if directory is None:
        return
    log = os.path.join(directory, "compiler.log")
    try:
        log_file = open(log, "ab")
    except OSError as exc:
        cache_failed(directory, exc)
        return
    # the same directory even where this process fell back to a private one
    env = dict(os.environ, GRAPHC_CACHE_DIR=directory)
    try:
        with log_file:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _CHILD_CODE.format(path=_child_path())], env=env,
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log_file)
    except OSError as exc:
        _OFF.append(True)
        _warn(f"graphc: cannot start the background kernel compiler ({exc}); compiling the "
              "kernels in this process")
        return
    if not _STOP_AT_EXIT:
        import atexit
        atexit.register(stop)
        _STOP_AT_EXIT.append(True)
    _COMPILER.update(process=process, jobs=[(s, _spec(p)) for s, p in jobs], log=log)
    # the jobs go over the pipe, which stays open: its end tells the compiler this process
    # has gone. A thread writes them, so that a large batch does not wait for the child.
    data = (json.dumps(jobs) + "\n").encode()
    threading.Thread(target=_send, args=(process.stdin, data), daemon=True).start()


def _send(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.flush()
    except (OSError, ValueError):  # the compiler died (its exit status says why) or stopped
        pass


def _spec(spec) -> tuple:
    """A spec read back from JSON: lists to tuples (the results' dtypes of a kernel with
    several are a tuple too)."""
    first = tuple(spec[0]) if isinstance(spec[0], list) else spec[0]
    return (first,) + tuple(tuple(item) for item in spec[1:])


def _main() -> None:
    """The background compiler: jobs from stdin, one JSON line; stops when stdin ends."""
    from .jit import load_generated, warm_generated
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us too; the parent ends us
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the parent has gone already
    stopping = threading.Event()

    def watch_parent():
        # end of file: the parent exited or stopped us (os.read, as a blocked buffered read
        # would hold stdin's lock when the interpreter shuts down)
        while os.read(0, 4096):
            pass
        stopping.set()
        time.sleep(GRACE_SECONDS)
        os._exit(3)  # the kernel at hand took too long

    threading.Thread(target=watch_parent, daemon=True).start()
    failed = 0
    for source, spec in json.loads(line):
        if stopping.is_set():
            break
        spec = _spec(spec)
        try:
            if not compiled(source, spec):
                warm_generated(load_generated(source), spec)
                mark_compiled(source, spec)
        except Exception:
            failed += 1
            sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} graphc background "
                             f"compiler (pid {os.getpid()}): kernel for {spec}:\n"
                             f"{traceback.format_exc()}{source}\n")
            sys.stderr.flush()
    sys.exit(1 if failed else 0)
