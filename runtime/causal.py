"""Causal attention's matrix products without their zero half.

A causal mask makes attention's (..., T, T) matrices triangular: the softmax P of scores
masked with -inf above the diagonal is exactly zero there, and so are softmax_grad(P, dP) and
its scaled form dS; their transposes are zero below it. The scores S = Q @ K^T and the
gradient dP = dY @ V^T are needed only on and below the diagonal: the mask replaces S above
it, and softmax_grad multiplies dP there by P's zeros. Computing the full squares does
about twice the work the result needs.

`triangular_facts` finds these values in the fused kernel graph (it reads the graph, rewrites
nothing); `causal_products` says which 4-D products can skip what. Heads small enough for
runtime.tiles' register tile skip it tile by tile there (`live_k`); for larger ones `kernel()`
computes such a product per (batch, head) matrix in bands of BAND rows (or columns), each one
BLAS call over only the part that is not known to be zero, or only the live columns of a
product whose part above the diagonal is dead. A band still reads (or computes) the triangle
of its own (BAND, BAND) block on the diagonal: BLAS multiplies the operand's zeros there. The
dead part it skips is written with zeros: softmax_grad's row dot product reads dP there (0 *
an uninitialised NaN would be NaN), and the plan's finite check (Plan.run_checked) reads
every value.

Bits: the terms skipped are exact zeros times finite values, and adding a zero does not
change a float sum, so the results are the full product's up to the order of rounding:
OpenBLAS picks its kernels, and with them how a dot product's terms are grouped, by the
product's size, so a band's values may differ from the full product's in the last bits (by
at most a dot product's rounding error; tests/test_causal.py holds them to twice that bound).
Where an input holds a NaN or an Inf, the full product spreads it across a whole row or
column and the banded one only where its live part reaches it; the loss is NaN either way.
"""
from __future__ import annotations

import numpy as np

from ir.ops.cluster import parse_program

from . import gemm

# Facts about a square (..., T, T) value, or what makes one.
ZERO_ABOVE = "zero above the diagonal"
ZERO_BELOW = "zero below the diagonal"
NEG_INF_ABOVE = "-inf above the diagonal"
MASK_ABOVE = "mask: true above the diagonal"  # logical_not(tri(T, T, k=0))
MASK_ON_AND_BELOW = "mask: true on and below the diagonal"  # tri(T, T, k=0)
NEG_INF = "the constant -inf"
FINITE_SCALAR = "a finite constant scalar"

_FLIPPED = {ZERO_ABOVE: ZERO_BELOW, ZERO_BELOW: ZERO_ABOVE,
            MASK_ABOVE: MASK_ON_AND_BELOW, MASK_ON_AND_BELOW: MASK_ABOVE}

# What banded_matmul4d skips (`mode`), after it has turned a column-major result into a
# row-major one by computing out^T = b^T @ a^T (which swaps A's and B's facts):
A_LOWER = 1  # a zero above its diagonal: row band [r0, r1) needs k < r1
A_UPPER = 2  # a zero below its diagonal: row band [r0, r1) needs k >= r0
B_LOWER = 3  # b zero above its diagonal: column band [c0, c1) needs k >= c0
B_UPPER = 4  # b zero below its diagonal: column band [c0, c1) needs k < c1
DEAD_ABOVE = 5  # out dead above its diagonal: row band [r0, r1) computes columns < r1
DEAD_BELOW = 6  # out dead below its diagonal: column band [c0, c1) computes rows < c1
MODES = {A_LOWER: "a zero above the diagonal", A_UPPER: "a zero below the diagonal",
         B_LOWER: "b zero above the diagonal", B_UPPER: "b zero below the diagonal",
         DEAD_ABOVE: "result dead above the diagonal",
         DEAD_BELOW: "result dead below the diagonal"}

# Rows (or columns) per band. A band's product is one BLAS call over up to its last row, so
# the work is (n + 1) / 2n of the full square's with n bands: 62.5% for medium's T = 256.
# Measured one thread, medium's shapes (2 x 6 heads, T 256, d 64), min/median of 60 calls
# alternated, load 5: bands of 32, 64, 128 rows gave P @ V 1.26x/1.39x/1.25x faster, dV
# 1.51x/1.40x/1.27x, dQ 1.33x/1.24x/1.17x, dK 1.50x/1.46x/1.35x, S and dP 1.08-1.11x /
# 1.12x / 1.05-1.07x (medians): smaller bands skip more but make OpenBLAS's calls smaller.
BAND = 64
# Smallest T that uses the banded kernel: with T <= BAND the one band is the full product;
# up to 2 * BAND little is skipped (T = 100: 18%) and it was not measured.
MIN_T = 2 * BAND


# ---- the analysis ---------------------------------------------------------------------------
def _square(shape) -> bool:
    return len(shape) >= 2 and shape[-1] == shape[-2]


def _last_axis(axis, ndim) -> bool:
    return axis in (-1, ndim - 1)


def _fact_of_instruction(op, facts, shapes, attrs, shape):
    """The fact about the value `op` makes of operands with `facts` and `shapes`; `shape` is
    the result's. None: nothing known."""
    if op == "logical_not":
        return _FLIPPED[facts[0]] if facts[0] in (MASK_ABOVE, MASK_ON_AND_BELOW) else None
    if not _square(shape):
        return None
    if op == "where":
        c, x, y = facts
        if tuple(shapes[0][-2:]) != tuple(shape[-2:]):
            return None
        if (c == MASK_ABOVE and x == NEG_INF) or (c == MASK_ON_AND_BELOW and y == NEG_INF):
            return NEG_INF_ABOVE
        return None
    if op == "softmax":
        ok = facts[0] == NEG_INF_ABOVE and _last_axis(attrs["axis"], len(shape))
        return ZERO_ABOVE if ok else None
    if op == "softmax_grad":
        ok = (facts[0] == ZERO_ABOVE and _last_axis(attrs["axis"], len(shape))
              and tuple(shapes[0]) == tuple(shapes[1]) == tuple(shape))
        return ZERO_ABOVE if ok else None
    if op == "mul":
        for zero, other in ((0, 1), (1, 0)):
            if (facts[zero] in (ZERO_ABOVE, ZERO_BELOW) and facts[other] == FINITE_SCALAR
                    and tuple(shapes[zero]) == tuple(shape)):
                return facts[zero]
        return None
    if op == "transpose" and facts[0] in (ZERO_ABOVE, ZERO_BELOW):
        last_two = tuple(attrs["perm"][-2:])
        nd = len(shape)
        if last_two == (nd - 1, nd - 2):
            return _FLIPPED[facts[0]]
        if last_two == (nd - 2, nd - 1):
            return facts[0]
    return None


def _fact_of_source(n):
    """Facts of nodes without operands: the causal mask and constant scalars."""
    if n.op == "tri" and n.attrs["rows"] == n.attrs["cols"] and n.attrs["k"] == 0:
        return MASK_ON_AND_BELOW
    if n.op == "constant" and n.size == 1 and n.dtype.kind == "f":
        value = float(np.asarray(n.attrs["value"]).reshape(()))
        if value == -np.inf:
            return NEG_INF
        if np.isfinite(value):
            return FINITE_SCALAR
    return None


def _program_values(n, facts):
    """[(fact, shape)] of each instruction of fused node n's program."""
    values = []
    for op, args, attrs in parse_program(n.attrs["program"]):
        operands = [(facts.get(n.inputs[i]), n.inputs[i].shape) if kind == "a" else values[i]
                    for kind, i in args]
        shape = np.broadcast_shapes(*(s for _, s in operands))
        values.append((_fact_of_instruction(op, [f for f, _ in operands],
                                            [s for _, s in operands], attrs, shape), shape))
    return values


def triangular_facts(graph) -> dict:
    """{node: fact} for the values of the fused graph known to be zero above (or below) their
    diagonal, and for what proves it (masks, -inf, finite scalars)."""
    facts, fused_values = {}, {}
    for n in graph.nodes:
        if n.op == "fused":
            values = _program_values(n, facts)
            fused_values[n] = values
            fact = None if "results" in n.attrs else values[-1][0]
        elif n.op == "tuple_get" and n.inputs[0] in fused_values:
            k = n.inputs[0].attrs["results"][n.attrs["index"]]
            fact = fused_values[n.inputs[0]][k][0]
        elif not n.inputs:
            fact = _fact_of_source(n)
        else:
            fact = _fact_of_instruction(n.op, [facts.get(i) for i in n.inputs],
                                        [i.shape for i in n.inputs], n.attrs, n.shape)
        if fact is not None:
            facts[n] = fact
    return facts


def _masked_above_by(reader, value, facts) -> bool:
    """Whether fused node `reader` uses `value` above the diagonal only through a where that
    replaces it there with -inf (attention's mask after the scores' scaling)."""
    values = _program_values(reader, facts)
    tainted = []  # per instruction: does its value above the diagonal depend on `value`'s?
    for (op, args, attrs), (fact, shape) in zip(parse_program(reader.attrs["program"]), values):
        hit = [reader.inputs[i] is value if kind == "a" else tainted[i] for kind, i in args]
        if op == "where" and fact == NEG_INF_ABOVE:
            c_mask = facts.get(reader.inputs[args[0][1]]) if args[0][0] == "a" else \
                values[args[0][1]][0]
            kept = 2 if c_mask == MASK_ABOVE else 1  # the operand kept below the diagonal
            tainted.append(any(h for k, h in enumerate(hit) if k != kept))
        elif op == "softmax" and any(hit):
            return False  # a row's sum mixes the dead values in
        else:
            tainted.append(any(hit))
    results = reader.attrs.get("results", (len(tainted) - 1,))
    return not any(tainted[k] for k in results)


def dead_above(graph, facts, users=None) -> set:
    """Square products whose part above the diagonal no reader uses: the scores read only by
    the masking softmax, and dP read only by softmax_grad(P, dP) with P zero there."""
    users = graph.users() if users is None else users
    outputs = set(graph.outputs)
    found = set()
    for n in graph.nodes:
        if n.op != "matmul" or not _square(n.shape) or n in outputs or len(users[n]) != 1:
            continue
        reader = users[n][0]
        if reader.op == "fused" and _masked_above_by(reader, n, facts):
            found.add(n)
        elif (reader.op == "softmax_grad" and reader.inputs[1] is n
              and reader.inputs[0] is not n and facts.get(reader.inputs[0]) == ZERO_ABOVE
              and _last_axis(reader.attrs["axis"], reader.ndim)):
            found.add(n)
    return found


def causal_products(graph) -> dict:
    """{matmul: mode} for the graph's 3-D/4-D products banded_matmul4d may compute (any T;
    runtime.lowering decides where it pays)."""
    facts = triangular_facts(graph)
    dead = dead_above(graph, facts)
    modes = {}
    for n in graph.nodes:
        if n.op != "matmul" or n.ndim not in (3, 4) or not gemm.supports(n) \
                or any(i.ndim != n.ndim for i in n.inputs):
            continue
        a, b = n.inputs
        mode = (A_LOWER if facts.get(a) == ZERO_ABOVE else
                A_UPPER if facts.get(a) == ZERO_BELOW else
                B_LOWER if facts.get(b) == ZERO_ABOVE else
                B_UPPER if facts.get(b) == ZERO_BELOW else
                DEAD_ABOVE if n in dead else None)
        if mode is not None:
            modes[n] = mode
    return modes


def square_size(n, mode) -> int:
    """T of the product's triangular (T, T) operand or result."""
    a, b = n.inputs
    return {A_LOWER: a, A_UPPER: a, B_LOWER: b, B_UPPER: b}.get(mode, n).shape[-1]


def live_terms(mode, k, row_blocks, col_blocks) -> int:
    """The multiply-adds of a product whose result is cut into row_blocks x col_blocks
    ((start, stop) ranges) when each block sums only the terms of K that `live_k` leaves for
    it in `mode`: what a kernel computing block by block does (`graphc profile` rates it by
    this, not the full square)."""
    done = 0
    for r0, r1 in row_blocks:
        for c0, c1 in col_blocks:
            k0, k1 = live_k.py_func(mode, r0, r1, c0, c1, k)
            done += (r1 - r0) * (c1 - c0) * max(k1 - k0, 0)
    return done


def banded_share(n, mode, band=BAND) -> float:
    """The share of product n's multiply-adds that banded_matmul4d computes in `mode`: its
    bands, cut into (band, band) blocks, sum what live_k leaves (a dead part is the blocks
    past the diagonal; a column-major result's swap computes the same count). Medium's S
    and dP (T = 256, bands of 64): 0.625."""
    a, b = n.inputs
    m, k, cols = a.shape[-2], a.shape[-1], b.shape[-1]
    if not m * k * cols:
        return 1.0

    def blocks(extent):
        return [(s, min(s + band, extent)) for s in range(0, extent, band)]
    return live_terms(mode, k, blocks(m), blocks(cols)) / (m * k * cols)


def products_to_band(graph, mp, modes=None) -> dict:
    """{matmul: mode} for the products the plan computes with banded_matmul4d: those of
    causal_products (`modes`, if found already) with T >= MIN_T whose result has a buffer of
    the plan's."""
    if not gemm.available():
        return {}
    modes = causal_products(graph) if modes is None else modes
    found = {n: mode for n, mode in modes.items()
             if square_size(n, mode) >= MIN_T and mp.storage[n].kind != "fallback"}
    if found:
        kernel()  # compiled (or loaded) while the plan is built, not at its first call
    return found


def call_source(n, mode, args, dst) -> list:
    """The plan's lines for product n in this mode; np.matmul where BLAS cannot read the
    layout in place (the full product: right as well)."""
    fn = "_sgemm" if n.dtype == np.float32 else "_dgemm"
    from .emitters import batched4d
    a, b = n.inputs
    call = (f"_banded_matmul4d({fn}, {mode}, {BAND}, {batched4d(args[0], a.ndim)}, "
            f"{batched4d(args[1], b.ndim)}, {batched4d(dst, n.ndim)})")
    return [f"{call} and np.matmul({args[0]}, {args[1]}, out={dst})"]


# ---- the kernel -----------------------------------------------------------------------------
if gemm.njit is not None:
    from numba import njit, prange, types

    from .gemm import _batch_strides, _cblas_gemm, _layouts, _row_major_product

    @njit(cache=True, inline="always")
    def swapped_mode(mode):
        """The mode of out.T = b.T @ a.T for a product in `mode`: a's facts are b's, and the
        dead half of the result is the other one."""
        return (B_UPPER if mode == A_LOWER else B_LOWER if mode == A_UPPER else
                A_UPPER if mode == B_LOWER else A_LOWER if mode == B_UPPER else
                DEAD_BELOW if mode == DEAD_ABOVE else DEAD_ABOVE if mode == DEAD_BELOW else
                mode)

    @njit(cache=True, inline="always")
    def live_k(mode, r0, r1, c0, c1, k):
        """(k0, k1): the terms of K that may be nonzero for the result's block [r0, r1) x
        [c0, c1) in `mode` (0: any); k1 <= k0 where the block is zero or dead. The register
        tile (runtime.tiles) sums only these."""
        k0, k1 = 0, k
        if mode == A_LOWER:
            k1 = min(r1, k)
        elif mode == B_UPPER:
            k1 = min(c1, k)
        elif mode == A_UPPER:
            k0 = min(r0, k)
        elif mode == B_LOWER:
            k0 = min(c0, k)
        elif (mode == DEAD_ABOVE and c0 >= r1) or (mode == DEAD_BELOW and r0 >= c1):
            k1 = 0
        return k0, k1

    @njit(cache=True, nogil=True)
    def _bands(fn, mode, band, a, b, out, i, j, pa, pb, pc, m, n, k, ta, lda, tb, ldb, ldc):
        """Matrix (i, j) of out, band by band; pa, pb, pc: the matrices' addresses."""
        one, zero = out.dtype.type(1.0), out.dtype.type(0.0)
        sa_r, sa_k, sb_k, sb_c = a.strides[2], a.strides[3], b.strides[2], b.strides[3]
        sc_r, item = ldc * out.itemsize, out.itemsize

        def clear(r0, r1, c0, c1):
            """out[r0:r1, c0:c1] = 0 by BLAS: alpha = beta = 0 sets C to zero without reading
            A, B or C (the BLAS definition). Medium's S at batch 32, one thread: a numba loop
            over out[i, j, r, c] took 4.3 of the banded product's 28 ms (min of 20), this
            fill ~0.1 ms."""
            if r1 > r0 and c1 > c0:
                _cblas_gemm(fn, ta, tb, r1 - r0, c1 - c0, 1, zero, pa, lda, pb, ldb, zero,
                            pc + r0 * sc_r + c0 * item, ldc)

        by_rows = mode == A_LOWER or mode == A_UPPER or mode == DEAD_ABOVE
        extent = m if by_rows else n
        for s0 in range(0, extent, band):
            s1 = min(s0 + band, extent)
            r0, r1, c0, c1, k0, k1 = (s0, s1, 0, n, 0, k) if by_rows else (0, m, s0, s1, 0, k)
            if mode == A_LOWER or mode == B_UPPER:
                k1 = min(s1, k)
            elif mode == A_UPPER or mode == B_LOWER:
                k0 = min(s0, k)
            elif mode == DEAD_ABOVE:
                c1 = min(s1, n)
                clear(r0, r1, c1, n)
            else:  # DEAD_BELOW
                r1 = min(s1, m)
                clear(r1, m, c0, c1)
            if k1 <= k0:  # nothing live: the band is zero (not left to BLAS's k = 0 case)
                clear(r0, r1, c0, c1)
                continue
            if r1 <= r0 or c1 <= c0:
                continue
            _cblas_gemm(fn, ta, tb, r1 - r0, c1 - c0, k1 - k0, one,
                        pa + r0 * sa_r + k0 * sa_k, lda, pb + k0 * sb_k + c0 * sb_c, ldb,
                        zero, pc + r0 * sc_r + c0 * item, ldc)

    def _banded_matmul4d(fn, mode, band, a, b, out):
        """out[i, j] = a[i, j] @ b[i, j] as runtime.gemm's matmul4d (size-1 batch axes of a or
        b broadcast; out row- or column-major), skipping what `mode` says is zero or dead.
        Returns 1 and writes nothing where BLAS cannot read the layout in place. One thread
        computes a matrix's bands, in order: the bits do not depend on the thread count."""
        a, b, out, swapped = _row_major_product(a, b, out)
        p, q, m, n = out.shape
        k = a.shape[3]
        if swapped:
            mode = swapped_mode(mode)
        ta, lda, tb, ldb, ldc = _layouts(a, b, out, m, k, n)
        if ldc == 0:
            return 1
        sa, sb = _batch_strides(a), _batch_strides(b)
        pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
        for t in prange(p * q):
            i, j = t // q, t % q
            _bands(fn, mode, band, a, b, out, i, j, pa + i * sa[0] + j * sa[1],
                   pb + i * sb[0] + j * sb[1], pc + i * out.strides[0] + j * out.strides[1],
                   m, n, k, ta, lda, tb, ldb, ldc)
        return 0

    def _compiled():
        dispatcher = njit(parallel=True, nogil=True, cache=True)(_banded_matmul4d)
        _guard_cache(dispatcher, DEPENDS)
        for t in (types.float32, types.float64):
            dispatcher.compile(types.int64(types.int64, types.int64, types.int64,
                                           *[types.Array(t, 4, "A", readonly=True)] * 2,
                                           types.Array(t, 4, "A")))
        dispatcher.disable_compile()
        return dispatcher

    # the kernel inlines runtime.gemm's helpers: its source joins the disk cache's key
    # (runtime.jit._guard_cache)
    from .jit import _guard_cache, guard_module
    DEPENDS = (gemm.__file__,)
    guard_module(globals(), DEPENDS)


_KERNEL = []


def kernel():
    """banded_matmul4d, compiled (or loaded from numba's disk cache) at its first use: plans
    without a causal product do not wait for it."""
    if not _KERNEL:
        _KERNEL.append(_compiled())
    return _KERNEL[0]
