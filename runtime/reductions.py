"""Reduction kernels on numba's threads: the sum of squares over many arrays (the global
gradient norm).

The input is cut into blocks of a fixed size; each block is summed in a fixed order (on any
thread) and the blocks' partial sums are added in block order: the bits of a result depend on
the input only, never on how many threads ran or how loaded the machine was. No fast-math
flags: a block is summed in independent lanes, which LLVM vectorises without reassociating
anything.

- `sum_squares(arrays)`: the sum of x*x over the elements of up to `WIDTH` flat arrays,
  accumulated in float64 (a float32 square is exact in float64), returned as a float. The
  global norm used to be, per parameter, a g*g kernel, a sum kernel and a scalar add
  (~150 kernels for the small GPT's 52 parameters); the plan now calls this once per
  `WIDTH` parameters (runtime.emitters.jit_sum_squares).

Bias gradients (column sums of dY) stay numpy's sgemv with a ones vector
(runtime.emitters.reduce): a numba column-sum kernel in the same fixed-block form measured
1.1-1.3x slower on one thread ((2048, 512) float32: 92-107 us vs 84-133 us, min of 300, load
3-5), and its two-thread speed could not be measured on the loaded machine. Measured again
with blocks of 64 rows (each block's column sums as one vector of partial sums, the blocks
added in order), one thread, min of 100 alternated, load 2.6: equal to sgemv from 64 to 256
columns ((2048, 64) 18 vs 18 us, (2048, 256) 53 vs 55 us), slower from 384 ((2048, 512) 101
vs 84 us); two threads again unmeasurable (2-12 ms a call: the fork-join waits for a
descheduled partner).

Compiled for float32 and float64 when this module is imported (or loaded from numba's disk
cache), as runtime.gemm's kernels are: runtime.jit.warm("reductions") imports it.
"""
from __future__ import annotations

import numpy as np

try:
    from numba import njit, prange, types

    # runtime.jit first: it refuses an untrusted NUMBA_CACHE_DIR, and a dispatcher's cache
    # directory is fixed when it is decorated (the kernels below, before, used that one)
    from . import jit as _jit  # noqa: F401
except ImportError:  # pragma: no cover - numba is a dependency; this keeps numpy-only use
    njit = None

WIDTH = 8  # arrays per sum_squares call: one compiled signature per dtype, padded with EMPTY
SQUARES_BLOCK = 1 << 14  # elements per partial sum of squares
LANES = 256  # a block of squares is summed as rows of this many independent lanes
# below this many elements a call runs on one thread (same blocks, same bits). One thread
# sums the small GPT's 810k gradient values in 173-179 us (7 calls, min of 400, load 5),
# while a parallel loop whose partner thread is descheduled waits for it (milliseconds per
# call in the tiny GPT's profile at load 6.5). Only models far larger than the small GPT go
# parallel.
PARALLEL_MIN_ELEMENTS = 1 << 21
EMPTY = {name: np.zeros(0, name) for name in ("float32", "float64")}  # by dtype name
for _empty in EMPTY.values():
    _empty.setflags(write=False)


if njit is not None:
    @njit(cache=True, nogil=True, inline="always")
    def _block_squares(x, lo, hi):
        """sum of x[lo:hi]**2 in float64: the block read as rows of LANES elements, each
        lane's squares summed over the rows (a loop LLVM vectorises without reassociating:
        the lanes are independent), then the lanes in order."""
        # np.empty and a loop, not np.zeros: in a parallel=True kernel numba turns np.zeros
        # into a parallel loop of its own, a thread-team start per block
        acc = np.empty(LANES)
        for c in range(LANES):
            acc[c] = 0.0
        rows = (hi - lo) // LANES
        for r in range(rows):
            row = x[lo + r * LANES:lo + (r + 1) * LANES]
            for c in range(LANES):
                v = np.float64(row[c])
                acc[c] += v * v
        tail = lo + rows * LANES
        for i in range(hi - tail):
            v = np.float64(x[tail + i])
            acc[i] += v * v
        total = 0.0
        for c in range(LANES):
            total += acc[c]
        return total

    @njit(cache=True, nogil=True, inline="always")
    def _squares_of_block(arrays, starts, b):
        """The partial sum of global block b (starts: the first global block of each array)."""
        k = 0
        while starts[k + 1] <= b:
            k += 1
        x = arrays[k]
        lo = (b - starts[k]) * SQUARES_BLOCK
        return _block_squares(x, lo, min(x.size, lo + SQUARES_BLOCK))

    def _sum_squares(arrays):
        starts = np.empty(WIDTH + 1, np.int64)
        starts[0] = 0
        elements = 0
        for k in range(WIDTH):
            n = arrays[k].size
            starts[k + 1] = starts[k] + (n + SQUARES_BLOCK - 1) // SQUARES_BLOCK
            elements += n
        blocks = starts[WIDTH]
        partial = np.empty(blocks)
        if elements >= PARALLEL_MIN_ELEMENTS:
            for b in prange(blocks):
                partial[b] = _squares_of_block(arrays, starts, b)
        else:
            for b in range(blocks):
                partial[b] = _squares_of_block(arrays, starts, b)
        total = 0.0
        for b in range(blocks):
            total += partial[b]
        return total

    def _compiled(fn, signatures):
        """njit(signatures) with runtime.jit's guard on the disk cache (as runtime.gemm)."""
        from .jit import _guard_cache
        dispatcher = njit(parallel=True, nogil=True, cache=True, error_model="numpy")(fn)
        _guard_cache(dispatcher)
        for signature in signatures:
            dispatcher.compile(signature)
        dispatcher.disable_compile()
        return dispatcher

    _FLOATS = (types.float32, types.float64)
    # operands typed read-only: writeable arrays convert to that (plan constants are read-only)
    sum_squares = _compiled(_sum_squares, [
        types.float64(types.UniTuple(types.Array(t, 1, "C", readonly=True), WIDTH))
        for t in _FLOATS])
