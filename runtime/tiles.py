"""Batched products of small matrices (attention heads) on a register tile.

runtime.gemm's matmul4d calls BLAS once per matrix. For the tiny GPT's heads (32x16 @ 16x32)
one call does 16K multiply-adds in ~0.9 us, most of it the call itself (argument checks,
buffer set-up, packing), and two threads barely gain over one (256 such matrices: 0.24 ms on
one thread, 0.22 on two). Here each matrix is one iteration of a parallel loop: b's rows are
read in place (or, where b is column-major, K^T, from a row-major copy on the thread's
stack), and each tile of 4 rows x 2 SIMD vectors of the result (4x16 float32, 4x8 float64)
is summed in eight vector registers over the whole of K with fused multiply-adds and stored
once. While one matrix is computed, every cache line of the next one's operands is requested
(`_prefetch_matrix`): in a training step they were just written, often by the other core,
and without the prefetch the tile waited on one demand miss at a time (tiny's 12 products per
step were then no faster than BLAS in the step, though 1.1-2.6x faster warm in isolation).

The tile is an LLVM intrinsic (`_vector_tile`) rather than numba loops: numba's arrays for
the accumulators stay in memory (a tile of numba loops measured 6-27 GFLOP/s, the intrinsic
47-79 on one thread). A column-major b is copied in 8x8 blocks transposed in registers
(`_transpose8`). Inside the training step (the head products spied in the step, BLAS and
tiles rotating step by step, two threads, 100 steps): tiny's 12 head products per step 3.59 /
4.24 ms (min / median) with BLAS, 2.34 / 2.66 with the tiles; the whole step (the plan with
and without the tiles in one process, alternated, 200 steps) 1.04-1.08x. Larger heads gain
less in the step than warm in isolation: small's (64x32 @ 32x64, 64x64 @ 64x32; b of 2048
elements) 1.03-1.11x on the products, but its whole step measured 0.97-0.99x (medians of 60
alternated steps, three runs), so only products whose b (and a.T) have at most PLAIN_MAX
elements, and whose results at most ROWS_MAX rows, take this path; causal ones, up to
PACK_MAX.

A causal product (runtime.causal: attention's scores, P @ V and the four gradient products)
has a triangle of zeros in an operand or a dead triangle in its result. Each tile then sums
only the terms of K that may be nonzero for its rows and columns (`causal.live_k`), and a
tile wholly dead or zero is written with zeros. Small's heads, one thread each way, medians
of 200 calls: S 419 us with BLAS (which computes whole squares) -> 364, P @ V 416 -> 279,
dV 426 -> 287, dK^T 413 -> 300; the 4-D products of its profiled step 14.6-18.5 ms -> 11.7-
15.6, the whole step (plans with and without, alternated in one process, 80 steps) 1.013x
and 1.026x by the median. Tiny's heads gain 0.2-0.3 ms of products a step, within the
step's noise (0.995-0.997x).

Each result element is one sum over K in ascending order: the bits do not depend on the
threads, but they are not BLAS's (a dot product's rounding apart). Skipping a term whose
zero factor the analysis proves changes no sum while the other factor is finite. Where the
other operand holds an Inf or NaN (V, dY, K or Q), the full product makes 0 * Inf = NaN in
every row (or column) and the tiles only where their live part reaches it, as runtime.causal's
bands do: an Inf in V's row 10 of a T = 16 head made all 16 rows of the interpreter's P @ V
non-finite, the plan's rows 8-15 (the tile of rows 8-11 sums K up to 12); the loss is
non-finite either way.
"""
from __future__ import annotations

try:
    from llvmlite import ir
    from numba import carray, njit, prange, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    from .causal import live_k, swapped_mode
    from .gemm import _row_major_product
except ImportError:  # pragma: no cover - numba is a dependency; runtime.gemm checks too
    njit = None

# The largest b (k x n elements) the kernel takes: a column-major b is copied to this many
# elements of the thread's stack.
PACK_MAX = 4096
# The largest b the lowering gives it (`takes`): tiny's heads (512) gain in the step, small's
# (2048) did not (0.97-0.99x) unless the product is causal (a zero or dead triangle that the
# tiles skip and BLAS computes): then up to PACK_MAX.
PLAIN_MAX = 1024
ROWS_MAX = 128
ROWS = 4  # the tile's rows; its columns are two vectors
VECTOR_BYTES = 32  # AVX2's 256-bit registers: 8 float32 or 4 float64


def fits(m: int, k: int, n: int, limit: int = PLAIN_MAX) -> bool:
    """Whether (m, k) @ (k, n) matrices are small enough for the tile, either way round (a
    column-major result is computed as its transpose, b.T @ a.T), b and a.T at most `limit`
    elements."""
    return (0 < m <= ROWS_MAX and 0 < n <= ROWS_MAX and 0 < k
            and k * n <= limit and k * m <= limit)


def takes(node, causal: bool = False) -> bool:
    """Batched products (both operands at least 3-D, float32/float64) of matrices that fit:
    up to PACK_MAX where the product is `causal` (runtime.causal finds a triangle its tiles
    skip), else PLAIN_MAX. A product with a 2-D right operand stays one GEMM over the
    flattened rows."""
    if node.op != "matmul" or node.ndim not in (3, 4) or node.dtype.name not in (
            "float32", "float64"):
        return False
    a, b = node.inputs
    dims = (a.shape[-2], a.shape[-1], b.shape[-1])
    return (a.ndim >= 3 and b.ndim >= 3 and a.dtype == b.dtype == node.dtype
            and all(isinstance(d, int) for d in dims)
            and fits(*dims, PACK_MAX if causal else PLAIN_MAX))


def work_share(m: int, k: int, n: int, mode: int, itemsize: int,
               transposed: bool = False) -> float:
    """The share of an (m, k) @ (k, n) product's multiply-adds that the tiles compute in
    causal `mode` (0: all): what `graphc profile` rates the kernel by. `_one_matrix`'s
    loops, tile by tile; `transposed`: a column-major result, computed as out.T = b.T @ a.T
    in the swapped mode. Tiny's heads (T = 32, d = 16, float32): S 0.75, P @ V 0.5625."""
    if not mode or not m * k * n:
        return 1.0
    from .causal import live_terms, swapped_mode
    if transposed:
        m, n, mode = n, m, swapped_mode.py_func(mode)
    width = 2 * (VECTOR_BYTES // itemsize)
    narrow = n - n % (width // 2)
    full = m - m % ROWS
    rows = [(r, r + ROWS) for r in range(0, full, ROWS)] + [(r, r + 1) for r in range(full, m)]
    columns = [(c, min(c + width, narrow)) for c in range(0, narrow, width)]
    # the last columns, fewer than a vector's lanes, sum all of K
    return (live_terms(mode, k, rows, columns) + m * (n - narrow) * k) / (m * k * n)


def call_source(n, args, dst, mode=0) -> list:
    """The plan's line for product n, skipping what causal `mode` (runtime.causal) says is
    zero or dead; np.matmul where out's matrices are neither row- nor column-major
    (products returns 1)."""
    from .emitters import batched4d
    a, b = n.inputs
    return [f"_tile_products({batched4d(args[0], a.ndim)}, {batched4d(args[1], b.ndim)}, "
            f"{batched4d(dst, n.ndim)}, {mode}) and np.matmul({args[0]}, {args[1]}, "
            f"out={dst})"]


if njit is not None:
    def _vector_tile(rows, vectors):
        """An intrinsic tile(dtype, a, sa0, sa1, b, sb0, out, so0, k): for r < rows,
        out[r, :w] = sum over p < k of a[r, p] * b[p, :w], with w = vectors x lanes, in
        ascending p. a, b and out are byte addresses; sa0, sa1 (a's rows and columns), sb0
        and so0 (b's and out's rows, whose columns are contiguous) byte strides."""
        @intrinsic
        def tile(typingctx, dtype, a, sa0, sa1, b, sb0, out, so0, k):
            sig = types.void(dtype, a, sa0, sa1, b, sb0, out, so0, k)

            def codegen(context, builder, signature, args):
                _, a_addr, sa0_v, sa1_v, b_addr, sb0_v, out_addr, so0_v, k_v = args
                element = context.get_data_type(signature.args[0].dtype)
                item = 4 if element == ir.FloatType() else 8
                lanes = VECTOR_BYTES // item
                vec = ir.VectorType(element, lanes)
                i64, i32 = ir.IntType(64), ir.IntType(32)
                fma = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                    f"llvm.fma.v{lanes}f{8 * item}")

                def load(address, ty):
                    return builder.load(builder.inttoptr(address, ty.as_pointer()), align=item)

                zero = ir.Constant(vec, [0.0] * lanes)
                # one stack slot per accumulator: LLVM keeps them in registers (mem2reg)
                accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)]
                        for _ in range(rows)]
                splat = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
                with cgutils.for_range(builder, k_v) as loop:
                    p = loop.index
                    row = builder.add(b_addr, builder.mul(p, sb0_v))
                    bs = [load(builder.add(row, ir.Constant(i64, v * VECTOR_BYTES)), vec)
                          for v in range(vectors)]
                    column = builder.add(a_addr, builder.mul(p, sa1_v))
                    for r in range(rows):
                        x = load(builder.add(column, builder.mul(ir.Constant(i64, r), sa0_v)),
                                 element)
                        xs = builder.insert_element(ir.Constant(vec, ir.Undefined), x,
                                                    ir.Constant(i32, 0))
                        xs = builder.shuffle_vector(xs, ir.Constant(vec, ir.Undefined), splat)
                        for v in range(vectors):
                            acc = builder.load(accs[r][v])
                            builder.store(builder.call(fma, [xs, bs[v], acc]), accs[r][v])
                for r in range(rows):
                    row = builder.add(out_addr, builder.mul(ir.Constant(i64, r), so0_v))
                    for v in range(vectors):
                        at = builder.add(row, ir.Constant(i64, v * VECTOR_BYTES))
                        builder.store(builder.load(accs[r][v]),
                                      builder.inttoptr(at, vec.as_pointer()), align=item)
                return context.get_dummy_value()
            return sig, codegen
        return tile

    _tile_full = _vector_tile(ROWS, 2)  # the body: 4 rows x 2 vectors
    _tile_row = _vector_tile(1, 2)  # rows past the last 4
    _tile_narrow = _vector_tile(ROWS, 1)  # columns past the last two vectors
    _tile_one = _vector_tile(1, 1)

    @intrinsic
    def _stack_pack(typingctx, dtype):
        """(pointer, address) of PACK_MAX elements of `dtype` on the calling thread's
        stack (allocated once per call of the function it is inlined into)."""
        sig = types.Tuple([types.CPointer(dtype.dtype), types.uintp])(dtype)

        def codegen(context, builder, signature, args):
            element = context.get_data_type(signature.args[0].dtype)
            pointer = cgutils.alloca_once(builder, element, size=PACK_MAX)
            address = builder.ptrtoint(pointer, ir.IntType(64))
            return context.make_tuple(builder, signature.return_type, [pointer, address])
        return sig, codegen

    # an 8x8 float32 transpose: unpack pairs, then pairs of pairs, then halves (AVX's
    # unpcklps/unpckhps, shufps and vperm2f128 patterns)
    _UNPACK = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])
    _PAIRS = ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])
    _HALVES = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])

    @intrinsic
    def _transpose8(typingctx, src, column_stride, dst, row_stride):
        """dst[j, i] = src[i, j] for an 8x8 float32 block: src's 8 columns (i) of 8
        contiguous values each, column_stride bytes apart; dst's 8 rows of 8 contiguous
        values, row_stride bytes apart (byte addresses)."""
        sig = types.void(src, column_stride, dst, row_stride)

        def codegen(context, builder, signature, args):
            src_v, cs, dst_v, rs = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vec = ir.VectorType(ir.FloatType(), 8)

            def shuffle(x, y, mask):
                return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(i32, 8), mask))

            v = [builder.load(builder.inttoptr(builder.add(src_v, builder.mul(
                ir.Constant(i64, i), cs)), vec.as_pointer()), align=4) for i in range(8)]
            t = [shuffle(v[2 * (i // 2)], v[2 * (i // 2) + 1], _UNPACK[i % 2])
                 for i in range(8)]  # t0, t1 from v0, v1; t2, t3 from v2, v3; ...
            u = [None] * 8
            for g in (0, 4):  # pairs of pairs within each half of the rows
                u[g], u[g + 1] = (shuffle(t[g], t[g + 2], mask) for mask in _PAIRS)
                u[g + 2], u[g + 3] = (shuffle(t[g + 1], t[g + 3], mask) for mask in _PAIRS)
            w = [None] * 8
            for j in range(4):
                w[j], w[j + 4] = (shuffle(u[j], u[j + 4], mask) for mask in _HALVES)
            for j in range(8):
                at = builder.add(dst_v, builder.mul(ir.Constant(i64, j), rs))
                builder.store(w[j], builder.inttoptr(at, vec.as_pointer()), align=4)
            return context.get_dummy_value()
        return sig, codegen

    @intrinsic
    def _prefetch(typingctx, address):
        """Hint that the cache line at this byte address will be read soon."""
        sig = types.void(address)

        def codegen(context, builder, signature, args):
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0i8")
            builder.call(fn, [builder.inttoptr(args[0], i8p), ir.Constant(i32, 0),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return sig, codegen

    @njit(cache=True, inline="always")
    def _prefetch_matrix(x):
        """Every cache line of a 2-D view, requested at once: the lines (often written by
        the other core's last kernel) then arrive together, not one demand miss at a
        time."""
        rows, cols = x.shape
        s0, s1 = x.strides
        base = x.ctypes.data
        if s1 < s0:
            for r in range(rows):
                for byte in range(0, cols * s1, 64):
                    _prefetch(base + r * s0 + byte)
        else:
            for c in range(cols):
                for byte in range(0, rows * s0, 64):
                    _prefetch(base + c * s1 + byte)

    @njit(cache=True, nogil=True)
    def _one_matrix(a, b, out, mode):
        """out = a @ b for one (m, k) @ (k, n) matrix pair that `fits`, out's columns
        contiguous, summing only the terms that causal `mode` (runtime.causal's modes, 0 for
        none) leaves: a zero triangle of a or b, or a dead one of out. b's rows are read in
        place where its columns are contiguous, else from a row-major copy on the stack."""
        m, k = a.shape
        n = b.shape[1]
        item = out.itemsize
        if b.strides[1] == item and b.strides[0] % item == 0:
            pb, sb0 = b.ctypes.data, b.strides[0]
        else:
            pointer, pb = _stack_pack(out.dtype)
            sb0 = n * item
            pack = carray(pointer, (k * n,))
            if b.strides[0] == item:  # column-major (K^T): read down its columns
                # float32 in 8x8 blocks transposed in registers, the rest one at a time
                blocked_k = k - k % 8 if item == 4 else 0
                blocked_n = n - n % 8 if item == 4 else 0
                base, sc = b.ctypes.data, b.strides[1]
                for c in range(0, blocked_n, 8):
                    for p in range(0, blocked_k, 8):
                        _transpose8(base + p * item + c * sc, sc,
                                    pb + (p * n + c) * item, n * item)
                for c in range(n):
                    for p in range(blocked_k if c < blocked_n else 0, k):
                        pack[p * n + c] = b[p, c]
            else:
                for p in range(k):
                    for c in range(n):
                        pack[p * n + c] = b[p, c]
        lanes = VECTOR_BYTES // item
        narrow = n - n % lanes
        full = m - m % ROWS
        sa0, sa1, so0 = a.strides[0], a.strides[1], out.strides[0]
        pa, po = a.ctypes.data, out.ctypes.data
        dt = out.dtype
        for r in range(0, m, ROWS):
            # a tile sums only the terms live_k leaves (a causal product's nonzero part);
            # one with none (zero, or dead) is written with zeros
            if r < full:
                for c in range(0, narrow, 2 * lanes):
                    c1 = min(c + 2 * lanes, narrow)
                    k0, k1 = live_k(mode, r, r + ROWS, c, c1, k)
                    at_a, at_b = pa + r * sa0 + k0 * sa1, pb + c * item + k0 * sb0
                    at_out = po + r * so0 + c * item
                    if k1 <= k0:
                        out[r:r + ROWS, c:c1] = 0
                    elif c1 - c == 2 * lanes:
                        _tile_full(dt, at_a, sa0, sa1, at_b, sb0, at_out, so0, k1 - k0)
                    else:
                        _tile_narrow(dt, at_a, sa0, sa1, at_b, sb0, at_out, so0, k1 - k0)
            else:  # rows past the last full tile, one at a time
                for rr in range(r, m):
                    for c in range(0, narrow, 2 * lanes):
                        c1 = min(c + 2 * lanes, narrow)
                        k0, k1 = live_k(mode, rr, rr + 1, c, c1, k)
                        at_a, at_b = pa + rr * sa0 + k0 * sa1, pb + c * item + k0 * sb0
                        at_out = po + rr * so0 + c * item
                        if k1 <= k0:
                            out[rr, c:c1] = 0
                        elif c1 - c == 2 * lanes:
                            _tile_row(dt, at_a, sa0, sa1, at_b, sb0, at_out, so0, k1 - k0)
                        else:
                            _tile_one(dt, at_a, sa0, sa1, at_b, sb0, at_out, so0, k1 - k0)
        for r in range(m):  # the last columns, fewer than a vector's lanes: all of K
            for c in range(narrow, n):
                total = dt.type(0.0)
                for p in range(k):
                    total += a[r, p] * b[p, c]
                out[r, c] = total

    @njit(cache=True, inline="always")
    def _matrix(x, i, j):
        """Matrix (i, j) of a 4-D operand whose size-1 batch axes broadcast."""
        return x[i if x.shape[0] > 1 else 0, j if x.shape[1] > 1 else 0]

    def _products(a, b, out, mode):
        """out[i, j] = a[i, j] @ b[i, j] over two batch axes (a size-1 axis of a or b
        broadcasts), skipping what causal `mode` says is zero or dead (0: nothing); returns 1
        and writes nothing where out's matrices are neither row- nor column-major (a
        column-major out is written as out.T = b.T @ a.T) or do not `fit`."""
        a, b, out, swapped = _row_major_product(a, b, out)
        if swapped:
            mode = swapped_mode(mode)
        p, q, m, n = out.shape
        k = a.shape[3]
        if out.strides[3] != out.itemsize or not (0 < m <= ROWS_MAX and 0 < n <= ROWS_MAX
                                                  and 0 < k and k * n <= PACK_MAX
                                                  and k * m <= PACK_MAX):
            return 1  # (fits, which numba cannot call here: it is a Python function)
        if a.shape[2] != m or b.shape[2] != k or b.shape[3] != n:
            return 1  # shapes that do not make out: np.matmul raises the error
        for x in (a, b):
            if (x.shape[0] != p and x.shape[0] != 1) or (x.shape[1] != q and x.shape[1] != 1):
                return 1
        for t in prange(p * q):
            i, j = t // q, t % q
            if t + 1 < p * q:  # the next matrix's operands, while this one is computed
                i2, j2 = (t + 1) // q, (t + 1) % q
                _prefetch_matrix(_matrix(a, i2, j2))
                _prefetch_matrix(_matrix(b, i2, j2))
            _one_matrix(_matrix(a, i, j), _matrix(b, i, j), out[i, j], mode)
        return 0

    def _compiled():
        dispatcher = njit(parallel=True, nogil=True, cache=True)(_products)
        _guard_cache(dispatcher, DEPENDS)
        for t in (types.float32, types.float64):
            dispatcher.compile(types.int64(*[types.Array(t, 4, "A", readonly=True)] * 2,
                                           types.Array(t, 4, "A"), types.int64))
        dispatcher.disable_compile()
        return dispatcher

    # the kernels inline runtime.causal's and runtime.gemm's helpers: their sources join the
    # disk cache's key (runtime.jit._guard_cache)
    from . import causal as _causal, gemm as _gemm
    from .jit import _guard_cache, guard_module
    DEPENDS = (_causal.__file__, _gemm.__file__)
    guard_module(globals(), DEPENDS)


_KERNEL = []


def kernel():
    """The products kernel, compiled (or loaded from numba's disk cache) at its first use."""
    if not _KERNEL:
        _KERNEL.append(_compiled())
    return _KERNEL[0]
