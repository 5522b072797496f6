"""Keep idle BLAS and OpenMP threads from spinning on the cores the next kernel needs.

After each multi-threaded GEMM, OpenBLAS's worker threads busy-wait for about 2^28 cycles
before sleeping, and libgomp's threads spin after each parallel loop. On a 2-core machine the
next parallel kernel then shares a core with a spinning thread and waits for its slow half:
measured, a GELU-gradient kernel over 1M floats took 2.9 ms right after a GEMM instead of
0.29 ms, and a GEMM after a numba loop 5.1 ms instead of 1.4 ms. With the shortest OpenBLAS
timeout and passive OpenMP waiting both run at full speed (GEMM 1.39 ms, kernel 0.32 ms).

OpenBLAS reads its timeout from the environment when it starts its threads; if numpy is
already imported we ask it to read the environment again and restart its thread pool.
Set GRAPHC_BLAS_TUNE=0 to leave both libraries alone.
"""
from __future__ import annotations

import ctypes
import os

_DONE = []


def quiet_blas_spinning() -> None:
    if _DONE or os.environ.get("GRAPHC_BLAS_TUNE", "1") == "0":
        return
    _DONE.append(True)
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
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
