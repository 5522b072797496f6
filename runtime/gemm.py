"""Matrix products on the numba kernels' thread pool: numpy's own BLAS, called one block per
thread from a parallel numba loop.

On this 2-core machine a plan that mixed numpy's multi-threaded GEMMs with numba's parallel
kernels ran two thread pools on two cores. Each pool's idle threads had to sleep so as not to
steal the other's core, and waking a sleeping thread costs ~50 us per parallel kernel (measured
on an empty parallel loop: 49 us with sleeping threads, 1.6 us with spinning ones). Here a
GEMM's blocks run on the numba pool (OpenBLAS single-threaded inside it), so one pool does all
the parallel work and its threads may spin between kernels.

The BLAS is the one numpy links (OpenBLAS with 64-bit integers, found through threadpoolctl);
its function's address is an argument of the kernels, so numba can cache them on disk. Where
it is not found (another BLAS), `available()` is false and plans keep numpy's matmul.
"""
from __future__ import annotations

import ctypes

import numpy as np

try:
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic

    # runtime.jit first: it refuses an untrusted NUMBA_CACHE_DIR, and a dispatcher's cache
    # directory is fixed when it is decorated (the kernels below, before, used that one)
    from . import jit as _jit  # noqa: F401
except ImportError:  # pragma: no cover - numba is a dependency; this keeps numpy-only use
    njit = None

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# below this many multiply-adds a product runs on one thread: a block of it is too small
# to repay handing it to the other thread (2048x64 @ 64x64 is 8.4M)
PARALLEL_MIN_MACS = 1 << 18
# Products with a long K and a small result (weight gradients X^T @ dY: K = the tokens) are
# cut into blocks along K instead: each block makes a whole partial result, added in block
# order after the join. Alternated per call, two threads, warm, min/median of 100 (cores
# shared with other jobs): tiny's 64x2048x64 1.12x/1.12x faster than bands of the result,
# 64x2048x65 1.14x/1.15x, 64x2048x192 1.03x/1.04x, 64x2048x256 1.06x/1.03x, 256x2048x64
# 1.02x/1.03x, small's 128x2048x128 1.04x/1.04x (a second run against the old code: mins
# 1.09-1.37x on these shapes, medians 1.00-1.11x); with a 2.4 MB result (medium's
# 384x8192x1536) no gain (1.00x/0.97x), nor for 128x2048x384 (1.02x/1.01x): only products
# whose K is at least twice the result's longer side, and whose partials (the result's size
# times blocks - 1) are at most KSPLIT_MAX_PARTIALS elements, so that the serial add after
# the join stays short (32K float32 adds: 10-20 us here) on machines with many blocks too.
KSPLIT_MAX_PARTIALS = 1 << 15
_BLAS = []


class _Blas:
    def __init__(self, lib, prefix, suffix):
        self.sgemm = _address(lib, f"{prefix}cblas_sgemm{suffix}")
        self.dgemm = _address(lib, f"{prefix}cblas_dgemm{suffix}")
        self._set = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
        self._get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
        self._set.argtypes, self._get.restype = [ctypes.c_int], ctypes.c_int

    def address(self, dtype) -> int:
        return self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm

    def threads(self) -> int:
        return self._get()

    def set_threads(self, n: int) -> None:
        self._set(n)


def _address(lib, name) -> int:
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def blas():
    """numpy's OpenBLAS (ILP64 CBLAS interface), or None."""
    if not _BLAS:
        _BLAS.append(_find_blas())
    return _BLAS[0]


def blas_libraries() -> list:
    """threadpoolctl's records of the BLAS libraries loaded, numpy's own copy first (scipy
    may bring a second OpenBLAS with 32-bit integers); [] without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy loads its BLAS lazily on some builds
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    infos.sort(key=lambda i: "numpy" not in i.get("filepath", ""))
    return infos


def _find_blas():
    if njit is None:
        return None
    infos = [i for i in blas_libraries() if i.get("internal_api") == "openblas"]
    for info in infos:
        try:
            lib = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("", "64_")):
            try:
                return _Blas(lib, prefix, suffix)
            except AttributeError:
                continue
    return None


def available() -> bool:
    return blas() is not None


def supports(node) -> bool:
    """Matmuls the kernels take: float32/float64 matrices (both operands at least 2-D, at
    most 4-D; batch axes may broadcast)."""
    if node.op == "matmul_add":
        return supports_with_row(node) or supports_with_residual(node)
    if node.op != "matmul" or node.dtype not in (np.float32, np.float64):
        return False
    a, b = node.inputs
    return a.dtype == b.dtype == node.dtype and 2 <= a.ndim <= 4 and 2 <= b.ndim <= 4


def supports_with_row(node) -> bool:
    """matmul_add nodes matmul2d_add takes: a 2-D or flattened-leading-axes product (b a
    matrix) plus a row of one value per column (a bias)."""
    if len(node.inputs) != 3:
        return False
    a, b, c = node.inputs
    return (node.dtype in (np.float32, np.float64) and a.dtype == b.dtype == c.dtype
            == node.dtype and a.ndim >= 2 and b.ndim == 2 and c.ndim == 1)


def supports_with_residual(node) -> bool:
    """matmul_add nodes matmul2d_acc takes: a 2-D or flattened-leading-axes product (b a
    matrix) plus, last, a value of the product's own shape (a residual), with a bias row
    between them or not."""
    a, b, *addends = node.inputs
    full = addends[-1]
    row_ok = len(addends) == 1 or addends[0].shape == (node.shape[-1],)
    return (node.dtype in (np.float32, np.float64)
            and all(x.dtype == node.dtype for x in node.inputs) and a.ndim >= 2
            and b.ndim == 2 and full.shape == node.shape and row_ok)


# matmul2d_acc's bias row when there is none
NO_ROW = {name: np.zeros(0, name) for name in ("float32", "float64")}
for _row in NO_ROW.values():
    _row.setflags(write=False)


if njit is not None:
    @intrinsic
    def _cblas_gemm(typingctx, fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc):
        """cblas_?gemm(RowMajor, ...) through the address `fn`; a, b, c are addresses."""
        sig = types.void(fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

        def codegen(context, builder, signature, args):
            i32, i64 = ir.IntType(32), ir.IntType(64)
            real = ir.FloatType() if signature.args[6] == types.float32 else ir.DoubleType()
            ptr = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, real, ptr,
                                                   i64, ptr, i64, real, ptr, i64])

            def integer(k, width):
                v = context.cast(builder, args[k], signature.args[k], types.int64)
                return builder.trunc(v, i32) if width == 32 else v

            def pointer(k):
                return builder.inttoptr(integer(k, 64), ptr)

            callee = builder.inttoptr(integer(0, 64), fnty.as_pointer())
            builder.call(callee, [ir.Constant(i32, _ROW_MAJOR), integer(1, 32), integer(2, 32),
                                  integer(3, 64), integer(4, 64), integer(5, 64), args[6],
                                  pointer(7), integer(8, 64), pointer(9), integer(10, 64),
                                  args[11], pointer(12), integer(13, 64)])
            return context.get_dummy_value()
        return sig, codegen

    @njit(cache=True, inline="always")
    def _layout(s_rows, s_cols, rows, cols, item):
        """(transpose flag, leading dimension) of a matrix with these byte strides, or
        (0, 0) if BLAS cannot read it in place."""
        if s_cols == item and (s_rows >= cols * item or rows == 1) and s_rows % item == 0:
            return _NO_TRANS, max(s_rows // item, cols, 1)
        if s_rows == item and (s_cols >= rows * item or cols == 1) and s_cols % item == 0:
            return _TRANS, max(s_cols // item, rows, 1)
        return 0, 0

    @njit(cache=True, inline="always")
    def _layouts(a, b, out, m, k, n):
        """BLAS's view of the last two axes of a, b and out: (ta, lda, tb, ldb, ldc), with
        ldc 0 when BLAS cannot read them in place or a dimension is 0."""
        item = out.itemsize
        ta, lda = _layout(a.strides[-2], a.strides[-1], m, k, item)
        tb, ldb = _layout(b.strides[-2], b.strides[-1], k, n, item)
        if ta == 0 or tb == 0 or m == 0 or n == 0 or k == 0 or out.strides[-1] != item \
                or out.strides[-2] < n * item:
            return ta, lda, tb, ldb, 0
        return ta, lda, tb, ldb, out.strides[-2] // item

    @njit(cache=True, inline="always")
    def _layouts2d(a, b, out):
        """(m, k, n, ta, lda, tb, ldb, ldc) of the 2-D product out = a @ b; ldc is 0 where
        BLAS cannot read it in place (see _layouts)."""
        m, k = a.shape
        n = b.shape[1]
        ta, lda, tb, ldb, ldc = _layouts(a, b, out, m, k, n)
        return m, k, n, ta, lda, tb, ldb, ldc

    @njit(cache=True, inline="always")
    def _row_major_product(a, b, out):
        """(a, b, out, swapped) of a 4-D product whose result BLAS writes row-major: where
        out's matrices are column-major (a transposed view of row-major ones), the same dot
        products as out.T = b.T @ a.T."""
        if out.strides[-1] != out.itemsize and out.strides[-2] == out.itemsize:
            return b.transpose(0, 1, 3, 2), a.transpose(0, 1, 3, 2), \
                out.transpose(0, 1, 3, 2), True
        return a, b, out, False

    @njit(cache=True, inline="always")
    def _batch_strides(x):
        """Byte strides of x's two batch axes; 0 along a size-1 axis (it broadcasts)."""
        return (x.strides[0] if x.shape[0] > 1 else 0, x.strides[1] if x.shape[1] > 1 else 0)

    @njit(cache=True, nogil=True)
    def _block(fn, a, b, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item, beta=0.0):
        """out[r0:r1, c0:c1] = a[r0:r1] @ b[:, c0:c1] (2-D views, checked layouts); with
        beta = 1, the product is added to what the block holds."""
        one = out.dtype.type(1.0)
        _cblas_gemm(fn, ta, tb, r1 - r0, c1 - c0, a.shape[1], one,
                    a.ctypes.data + r0 * a.strides[0], lda,
                    b.ctypes.data + c0 * b.strides[1], ldb, out.dtype.type(beta),
                    out.ctypes.data + (r0 * ldc + c0) * item, ldc)

    @njit(cache=True, nogil=True)
    def _k_block(fn, a, b, dst, k0, k1, ta, lda, tb, ldb, ldd):
        """dst = a[:, k0:k1] @ b[k0:k1] (2-D views, checked layouts; dst's leading dimension
        ldd)."""
        _cblas_gemm(fn, ta, tb, a.shape[0], b.shape[1], k1 - k0, dst.dtype.type(1.0),
                    a.ctypes.data + k0 * a.strides[1], lda,
                    b.ctypes.data + k0 * b.strides[0], ldb, dst.dtype.type(0.0),
                    dst.ctypes.data, ldd)

    @njit(cache=True, inline="always")
    def _splits_k(m, n, k, parts):
        """Whether a product cut into `parts` blocks is cut along K (see
        KSPLIT_MAX_PARTIALS)."""
        return (parts > 1 and m * n * (parts - 1) <= KSPLIT_MAX_PARTIALS
                and k >= 2 * max(m, n, parts))

    @njit(cache=True, nogil=True, inline="always")
    def _add_partials(out, partials):
        """out += partials[0] + partials[1] + ..., in that order, element by element."""
        for r in range(out.shape[0]):
            o = out[r]
            for q in range(partials.shape[0]):
                part = partials[q, r]
                for j in range(out.shape[1]):
                    o[j] += part[j]

    # The fills before a product (beta = 1) read rows as slices, with indices from 0: numba
    # then drops its negative-index fix-ups and LLVM vectorises the loop (a (2048, 128)
    # float32 residual + bias: 38 us for C-contiguous operands, 108 us typed layout "A", 450
    # us indexing out[r, c]; numpy's add 68-90 us).
    @njit(cache=True, nogil=True, inline="always")
    def _fill_row(out, row, r0, r1, c0, c1):
        """out[r0:r1, c0:c1] = row[c0:c1] on every row."""
        part = row[c0:c1]
        for r in range(r0, r1):
            o = out[r, c0:c1]
            for j in range(c1 - c0):
                o[j] = part[j]

    @njit(cache=True, nogil=True, inline="always")
    def _fill_sum(out, full, row, r0, r1, c0, c1):
        """out[r0:r1, c0:c1] = full[r0:r1, c0:c1] + row[c0:c1] (row: empty for none)."""
        for r in range(r0, r1):
            o = out[r, c0:c1]
            f = full[r, c0:c1]
            if row.size:
                part = row[c0:c1]
                for j in range(c1 - c0):
                    o[j] = f[j] + part[j]
            else:
                for j in range(c1 - c0):
                    o[j] = f[j]

    @njit(cache=True, nogil=True)
    def _block_onto_row(fn, a, b, row, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item):
        """out[r0:r1, c0:c1] = a[r0:r1] @ b[:, c0:c1] + row[c0:c1]: the block is filled with
        the row (by the thread that computes it, so it is in that core's cache), then BLAS
        adds the product to it. OpenBLAS clears C before a product with beta = 0 anyway;
        with beta = 1 this fill takes that pass's place, and no pass adds the bias later."""
        _fill_row(out, row, r0, r1, c0, c1)
        _block(fn, a, b, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item, 1.0)

    @njit(cache=True, nogil=True)
    def _block_onto_full(fn, a, b, row, full, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc,
                         item):
        """out[r0:r1, c0:c1] = full[r0:r1, c0:c1] (+ row[c0:c1]) + a[r0:r1] @ b[:, c0:c1]: the
        block starts as the residual (plus the bias) and BLAS adds the product (beta = 1).
        Where out is full's own buffer (the residual dies here) only the bias is added first.
        The sum rounds as r + bias, then + the product: float rounding apart from numpy's
        (a @ b + bias) + r."""
        same = (out.ctypes.data == full.ctypes.data and out.strides[0] == full.strides[0]
                and out.strides[1] == full.strides[1])
        if row.size or not same:
            _fill_sum(out, full, row, r0, r1, c0, c1)
        _block(fn, a, b, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item, 1.0)

    @njit(cache=True, inline="always")
    def _blocks(m, n, k, threads):
        """How many blocks a product is cut into: one below PARALLEL_MIN_MACS or on one
        thread, else up to `threads` along the longer side of its result."""
        if m * n * k < PARALLEL_MIN_MACS or threads < 2:
            return 1
        return min(threads, m if m >= n else n)

    @njit(cache=True, inline="always")
    def _block_bounds(m, n, parts, p):
        """(r0, r1, c0, c1) of block p of `parts`: bands of rows when m >= n, else of
        columns."""
        if m >= n:
            return m * p // parts, m * (p + 1) // parts, 0, n
        return 0, m, n * p // parts, n * (p + 1) // parts

    def _matmul2d(fn, threads, a, b, out):
        """out = a @ b for 2-D operands, in up to `threads` blocks (bands of the result, or
        parts of K for a long K and a small result); returns 1 (and writes
        nothing) when a layout is not one BLAS reads in place or a dimension is 0, so the
        caller uses np.matmul. (numba's get_num_threads would keep the kernel out of the
        disk cache.)"""
        m, k, n, ta, lda, tb, ldb, ldc = _layouts2d(a, b, out)
        if ldc == 0:
            return 1
        item = out.itemsize
        parts = _blocks(m, n, k, threads)
        if parts == 1:  # no fork-join: the calling thread does it
            _block(fn, a, b, out, 0, m, 0, n, ta, lda, tb, ldb, ldc, item)
            return 0
        if _splits_k(m, n, k, parts):
            # block 0 writes out, the others a partial each; the calling thread adds them
            # after the join (a second parallel loop would cost a second fork-join, which on
            # a loaded machine waits for a descheduled thread: medians 2x slower measured)
            partials = np.empty((parts - 1, m, n), out.dtype)
            for p in prange(parts):
                k0, k1 = k * p // parts, k * (p + 1) // parts
                if p == 0:
                    _k_block(fn, a, b, out, k0, k1, ta, lda, tb, ldb, ldc)
                else:
                    _k_block(fn, a, b, partials[p - 1], k0, k1, ta, lda, tb, ldb, n)
            _add_partials(out, partials)
            return 0
        for p in prange(parts):
            r0, r1, c0, c1 = _block_bounds(m, n, parts, p)
            _block(fn, a, b, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item)
        return 0

    def _matmul2d_add(fn, threads, a, b, row, out):
        """out = a @ b + row (row: one value per column, a bias) in up to `threads` blocks;
        returns 1 and writes nothing as matmul2d does."""
        m, k, n, ta, lda, tb, ldb, ldc = _layouts2d(a, b, out)
        if ldc == 0:
            return 1
        item = out.itemsize
        parts = _blocks(m, n, k, threads)
        if parts == 1:  # no fork-join: the calling thread does it
            _block_onto_row(fn, a, b, row, out, 0, m, 0, n, ta, lda, tb, ldb, ldc, item)
            return 0
        for p in prange(parts):
            r0, r1, c0, c1 = _block_bounds(m, n, parts, p)
            _block_onto_row(fn, a, b, row, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc, item)
        return 0

    def _matmul2d_acc(fn, threads, a, b, row, full, out):
        """out = full + row + a @ b (full: the product's shape, a residual; row: a bias or
        empty) in up to `threads` blocks; out may be full's own buffer. Returns 1 and writes
        nothing as matmul2d does."""
        m, k, n, ta, lda, tb, ldb, ldc = _layouts2d(a, b, out)
        if ldc == 0:
            return 1
        item = out.itemsize
        parts = _blocks(m, n, k, threads)
        if parts == 1:  # no fork-join: the calling thread does it
            _block_onto_full(fn, a, b, row, full, out, 0, m, 0, n, ta, lda, tb, ldb, ldc, item)
            return 0
        for p in prange(parts):
            r0, r1, c0, c1 = _block_bounds(m, n, parts, p)
            _block_onto_full(fn, a, b, row, full, out, r0, r1, c0, c1, ta, lda, tb, ldb, ldc,
                             item)
        return 0

    def _matmul4d(fn, threads, a, b, out):
        """out[i, j] = a[i, j] @ b[i, j] over two batch axes (size-1 axes of a or b
        broadcast); returns 1 as matmul2d does. `out`'s matrices may be row-major with any
        row stride (a head's slice of a concat's buffer) or column-major (a transposed
        view of one): then BLAS writes out.T = b.T @ a.T, the same dot products."""
        a, b, out, _ = _row_major_product(a, b, out)
        p, q, m, n = out.shape
        k = a.shape[3]
        ta, lda, tb, ldb, ldc = _layouts(a, b, out, m, k, n)
        if ldc == 0:
            return 1
        sa, sb = _batch_strides(a), _batch_strides(b)
        pa, pb = a.ctypes.data, b.ctypes.data
        one, zero = out.dtype.type(1.0), out.dtype.type(0.0)
        pc = out.ctypes.data
        for t in prange(p * q):
            i, j = t // q, t % q
            _cblas_gemm(fn, ta, tb, m, n, k, one, pa + i * sa[0] + j * sa[1], lda,
                        pb + i * sb[0] + j * sb[1], ldb, zero,
                        pc + i * out.strides[0] + j * out.strides[1], ldc)
        return 0

    def _signatures(ndim):
        # one compiled variant per dtype: arrays of any layout (C, F, strided views) convert
        # to layout "A", so transposed operands cost no compilation of their own
        # operands typed read-only: writeable arrays convert to that too (plan constants
        # are read-only arrays, which numba would otherwise compile a variant for)
        return [types.int64(types.int64, types.int64,
                            *[types.Array(t, ndim, "A", readonly=True)] * 2,
                            types.Array(t, ndim, "A"))
                for t in (types.float32, types.float64)]

    def _row_signatures(layout):
        # matmul2d_add: a, b, the row (read-only) and out; row and out in `layout`
        return [types.int64(types.int64, types.int64,
                            *[types.Array(t, 2, "A", readonly=True)] * 2,
                            types.Array(t, 1, layout, readonly=True),
                            types.Array(t, 2, layout))
                for t in (types.float32, types.float64)]

    def _residual_signatures(layout):
        # matmul2d_acc: a, b, the row, the residual (read-only) and out; all but a, b in
        # `layout`
        return [types.int64(types.int64, types.int64,
                            *[types.Array(t, 2, "A", readonly=True)] * 2,
                            types.Array(t, 1, layout, readonly=True),
                            types.Array(t, 2, layout, readonly=True),
                            types.Array(t, 2, layout))
                for t in (types.float32, types.float64)]

    def _compiled(fn, ndim, signatures=None):
        """What njit(signatures) does, with runtime.jit's guard on the disk cache first: a
        damaged cache file is dropped and recompiled, a full disk turns caching off."""
        from .jit import _guard_cache
        dispatcher = njit(parallel=True, nogil=True, cache=True)(fn)
        _guard_cache(dispatcher)
        for signature in signatures or _signatures(ndim):
            dispatcher.compile(signature)
        dispatcher.disable_compile()
        return dispatcher

    # compiled (or loaded from numba's disk cache) when this module is imported
    matmul2d = _compiled(_matmul2d, 2)
    matmul4d = _compiled(_matmul4d, 4)
    # the fill before the product vectorises only with contiguous operands (typed "C"); the
    # plan's buffers are, views may not be: two compiled forms, picked per call
    _onto_row = {layout: _compiled(_matmul2d_add, 2, _row_signatures(layout))
                 for layout in "CA"}
    _onto_full = {layout: _compiled(_matmul2d_acc, 2, _residual_signatures(layout))
                  for layout in "CA"}

    def matmul2d_add(fn, threads, a, b, row, out):
        """out = a @ b + row (_matmul2d_add); returns 1 where np.matmul must do it."""
        contiguous = row.flags.c_contiguous and out.flags.c_contiguous
        return _onto_row["C" if contiguous else "A"](fn, threads, a, b, row, out)

    def matmul2d_acc(fn, threads, a, b, row, full, out):
        """out = full + row + a @ b (_matmul2d_acc); returns 1 where np.matmul must do it."""
        contiguous = (row.flags.c_contiguous and full.flags.c_contiguous
                      and out.flags.c_contiguous)
        return _onto_full["C" if contiguous else "A"](fn, threads, a, b, row, full, out)


def blocks() -> int:
    """Blocks a large product is split into: the CPUs this process may use, fixed for the
    process, so that a product's bits do not depend on how many threads run the blocks."""
    from .threads import available_cpus
    return available_cpus()
