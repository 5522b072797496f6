"""Thread settings for plans with numba kernels: one thread pool does the parallel work.

numba's parallel kernels and, through runtime.gemm, the plan's GEMMs run on numba's OpenMP
threads. Between two kernels those threads spin for a while (GOMP_SPINCOUNT=100000, about
2 ms here) before they sleep: waking a sleeping thread cost ~50 us per kernel (an empty
parallel loop: 49 us after sleeping, 1.6 us with spinning threads), which was ~20% of the tiny
GPT step. Spinning is only safe because nothing else competes for the cores while a plan
runs: numpy's OpenBLAS is kept single-threaded inside plans (runtime.codegen).

OpenBLAS's own threads, used by numpy outside plans, busy-wait for about 2^28 cycles after
each GEMM; on a 2-core machine a plan started right after numpy code then shares a core with
them (measured: a GELU-gradient kernel over 1M floats took 2.9 ms right after a GEMM instead
of 0.29 ms). We shorten that timeout; OpenBLAS reads it when it starts its threads, so if numpy
is already imported we ask it to read the environment again and restart its thread pool.

A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is left as it is; they are read when numba starts
its threads (the first parallel kernel). Set GRAPHC_BLAS_TUNE=0 to leave both libraries alone.
"""
from __future__ import annotations

import ctypes
import os

_DONE = []


def quiet_blas_spinning() -> None:
    if _DONE or os.environ.get("GRAPHC_BLAS_TUNE", "1") == "0":
        return
    _DONE.append(True)
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "100000")
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT") is None:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        _restart_openblas()


def _restart_openblas() -> None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return
    for info in threadpool_info():
        if info.get("internal_api") != "openblas":
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
            lib.openblas_read_env()
            lib.blas_thread_shutdown_()  # the next BLAS call starts threads with the new timeout
        except (OSError, AttributeError):
            continue
