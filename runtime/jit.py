"""Compiled kernels for the fused primitives, with numba: one pass over memory, both cores.

numpy evaluates GELU's gradient as 15 passes over its operands, each on one core; here it is
one parallel loop (measured on 2 cores, 1M float32: numpy 2.0 ms, this 0.3 ms). The plan uses
these kernels when numba is importable (the numpy emitters of runtime.emitters otherwise, or
with GRAPHC_JIT=0); eager mode keeps the ops' numpy definitions, so the compiled plan and the
interpreter check each other.

Kernels take C-contiguous flat (elementwise) or 2-D (row-wise) arrays and write `out`; the
plan passes reshaped views of its buffers. Compiled machine code is cached on disk
(numba's cache), so only the first process pays the JIT time.

Floating-point policy (tests/test_fpsemantics.py): these kernels compile without LLVM's
fast-math flags, so +, -, *, / and sqrt round as numpy's do, nothing is reassociated (a
result does not depend on the array's size), no reciprocal square root is approximated and
subnormals are kept. libm's float32 tanh and exp do not vectorise, so float32 uses a rational
tanh (the one Eigen and XLA use) and a polynomial exp, both evaluated with fused
multiply-adds (`mul_add`; their arguments are bounded, so nothing overflows inside): within
4 ulp of numpy's, with numpy's NaN, inf, overflow and subnormal results; float64 uses libm. float32 GELU and its
gradient are written as a sigmoid of a vectorised 2**x with fused multiply-adds (`mul_add`):
within 3e-7 of float64 with numpy's NaN and inf (tests/test_row_kernels.py). `FASTMATH` (the flags
Eigen-style compilers use, less `nnan`/`ninf` so that a NaN still reaches a NaN guard) is what
generated kernels get under the `fast_math=True` compile option (runtime/kernelgen.py).
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import math
import os
import shutil
import stat
import sys
import tempfile
import types
import warnings

import numpy as np

try:
    import numba
    from llvmlite import ir as llvm_ir
    from numba import njit, prange
    from numba.extending import intrinsic, overload
except ImportError:  # pragma: no cover - numba is a dependency; this keeps numpy-only use
    numba = None

from ir import settings
from ir.errors import user_stacklevel
from ir.ops import elementwise as _elementwise
from ir.ops.elementwise import GELU_TANH_3CK, GELU_TANH_C, GELU_TANH_CK

from .threads import quiet_blas_spinning

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # only under fast_math=True
_FLAGS = False  # the default: IEEE arithmetic, as numpy's
STRICT = _FLAGS
# error_model="numpy": x / 0 gives inf or nan, as numpy does, instead of raising
_OPTS = dict(parallel=True, fastmath=_FLAGS, cache=True, nogil=True, error_model="numpy")
# Row kernels (LayerNorm and its gradients, softmax, log-softmax, softmax's gradient) may
# reassociate their sums so that LLVM vectorises them: 3-4x faster LayerNorm kernels, ~20% of
# the tiny GPT step. A reassociated sum rounds differently from numpy's pairwise one (as any
# other order does) but keeps NaN and Inf where numpy has them: no other fast-math flag.
_ROW_FLAGS = {"reassoc"}
_ROW_OPTS = dict(_OPTS, fastmath=_ROW_FLAGS)
_SERIAL_ROW_OPTS = dict(_ROW_OPTS, parallel=False)


def _makedirs_private(path: str) -> None:
    """os.makedirs(path, exist_ok=True), each folder it creates 0700 whatever the umask:
    makedirs gives its mode to the last folder only (~/.cache/graphc was made 0777 less the
    umask), and numba makes __pycache__ so too. Under the umask 002 of Debian, Ubuntu and
    Fedora users (their groups are their own) that is 0775, which untrusted refuses, as
    upstream ssh refuses a group-writable ~/.ssh: the cache refused itself on every run
    after the first. Made here first (numba's when it is about to make it), graphc's and
    numba's folders are private."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.lexists(parent):
        _makedirs_private(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _numba_folder(directory: str, numba_dir: str | None = None) -> str:
    """The folder numba keeps its files for a module in `directory` in: NUMBA_CACHE_DIR's
    (`numba_dir`: numba's CACHE_DIR unless given) subfolder for that directory where one is
    set, else its __pycache__."""
    numba_dir = numba_dir or (numba is not None and numba.config.CACHE_DIR)
    if numba_dir:
        from numba.core.caching import _CacheLocator
        subpath = _CacheLocator.get_suitable_cache_subpath(os.path.join(directory, "m.py"))
        return os.path.join(numba_dir, subpath)
    return os.path.join(directory, "__pycache__")


def _numba_folders(directory: str) -> list:
    """The folders numba may keep its files for a module in `directory` in, in the order its
    locators try them (the first it can create and write wins): NUMBA_CACHE_DIR's subfolder
    where one is set, the module's __pycache__, then its user-wide cache's subfolder
    (~/.cache/numba/..., XDG_CACHE_HOME's where set), where an install the user cannot
    write puts them."""
    from numba.core.caching import _CacheLocator
    from numba.misc.appdirs import AppDirs
    subpath = _CacheLocator.get_suitable_cache_subpath(os.path.join(directory, "m.py"))
    user_wide = os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, subpath)
    return ([_numba_folder(directory)] if numba.config.CACHE_DIR else []) + [
        os.path.join(directory, "__pycache__"), user_wide]


def _make_numba_folder(directory: str) -> None:
    """Make the folder numba will keep its files for a module in `directory` in, and the
    missing folders above it, 0700 before numba makes them with os.makedirs (0775 under
    umask 002, which _guard_cache then refused: the cache refused itself on every run). The
    first of _numba_folders that can be made and written, as numba's locators choose (an
    existing folder is not changed: it is checked as it is). None where numba compiles
    nothing (NUMBA_DISABLE_JIT): no folder is made for a cache never written."""
    if numba.config.DISABLE_JIT:
        return
    for folder in _numba_folders(directory):
        try:
            _makedirs_private(folder)
        except OSError:
            continue  # numba's own attempt says what is wrong, or it goes on to the next
        if os.access(folder, os.W_OK | os.X_OK):
            return


_HERE = os.path.dirname(os.path.abspath(__file__))  # the fixed kernels' modules (runtime/)
if numba is not None:
    # The first cached dispatcher below makes NUMBA_CACHE_DIR and its folder for runtime/
    # (or, for an install the user cannot write, numba's user-wide folder for it) with
    # os.makedirs, 0775 under umask 002, and the checks then refused the directory numba had
    # just made (as they do one others may write). Made here first, they are 0700, as
    # graphc's own cache is
    _make_numba_folder(_HERE)


def enabled() -> bool:
    return numba is not None and settings.JIT.get()


if numba is not None:
    @intrinsic
    def mul_add(typingctx, a, b, c):
        """a * b + c as LLVM's fmuladd: one fused multiply-add where the CPU has FMA (rounded
        once), a multiplication and an addition otherwise; it vectorises either way. Used
        where a kernel's accuracy bound allows it, never in the ops numpy defines bitwise."""
        def codegen(context, builder, signature, args):
            ty = context.get_value_type(signature.return_type)
            fn = builder.module.declare_intrinsic("llvm.fmuladd", [ty],
                                                  llvm_ir.FunctionType(ty, [ty] * 3))
            return builder.call(fn, args)
        return a(a, b, c), codegen

    def fast_tanh(x):  # pragma: no cover - replaced by the overload inside kernels
        return math.tanh(x)

    @overload(fast_tanh)
    def _fast_tanh(x):
        if x == numba.float32:
            lo, hi = np.float32(-7.90531110763549805), np.float32(7.90531110763549805)
            p = [np.float32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13,
                                          -8.60467152213735e-11, 5.12229709037114e-08,
                                          1.48572235717979e-05, 6.37261928875436e-04,
                                          4.89352455891786e-03)]
            q = [np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04,
                                          2.26843463243900e-03, 4.89352518554385e-03)]
            p0, p1, p2, p3, p4, p5, p6 = p
            q0, q1, q2, q3 = q

            one = np.float32(1.0)
            tiny = np.float32(4e-4)  # |x| below this: tanh(x) - x < x * 2**-24

            def impl(x):
                # beyond the clamp float32 tanh is exactly +-1 (so 1 - t*t is 0, as with
                # libm); comparisons rather than min/max let NaN through unchanged
                x2 = x * x
                x4 = x2 * x2
                # fused multiply-adds in Estrin's scheme: independent pairs, then Horner in
                # x**4, a dependent chain half as long as Horner's in x**2
                num = x * mul_add(mul_add(mul_add(p0, x4, mul_add(p1, x2, p2)), x4,
                                          mul_add(p3, x2, p4)), x4, mul_add(p5, x2, p6))
                den = mul_add(mul_add(q0, x2, q1), x4, mul_add(q2, x2, q3))
                t = num / den
                # selects, not early returns, so that the loop vectorises
                if abs(x) < tiny:
                    t = x  # tanh(x) rounds to x; the rational form would lose subnormals
                if x > hi:
                    t = one
                if x < lo:
                    t = -one
                return t
            return impl
        return lambda x: math.tanh(x)

    def fast_exp(x):  # pragma: no cover - replaced by the overload inside kernels
        return math.exp(x)

    @intrinsic
    def _float32_from_bits(typingctx, bits):
        """The float32 whose bit pattern is the int32 `bits` (a register move, which LLVM
        vectorises, where a table lookup would be a gather that it does not)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_ir.FloatType())
        return numba.float32(numba.int32), codegen

    @overload(fast_exp)
    def _fast_exp(x):
        if x == numba.float32:
            log2e = np.float32(1.4426950408889634)
            ln2_hi, ln2_lo = np.float32(0.693359375), np.float32(-2.12194440e-4)
            # exp(x) rounds to 0 below -104 (2**-150, half the least subnormal, is
            # exp(-103.97)) and overflows above 88.73: outside [-104, 89] nothing changes
            lo, hi, half = np.float32(-104.0), np.float32(89.0), np.float32(0.5)
            zero = np.float32(0.0)
            # exp(r) for |r| <= ln(2)/2: Taylor series, 8 terms (error < 2e-9)
            c = [np.float32(1.0 / math.factorial(k)) for k in range(8)]
            c0, c1, c2, c3, c4, c5, c6, c7 = c

            def impl(x):
                # exp(x) = 2**k * exp(r), k = round(x / ln 2), r = x - k ln 2 with ln 2 in
                # two parts (Cody and Waite) so that r keeps float32 precision; a polynomial
                # and 2**k built from its exponent bits, which vectorise (libm's expf does
                # not; a table of 2**k did not either: 2.7x slower, measured serially)
                # x at or below -104 (a masked score's -inf, above all) computes exp(0)
                # and is set to 0 below: computed, 2**-150 would underflow, and an underflow
                # costs a microcode assist on x86 (attention's causal softmax, half of its
                # values -inf: 1.46 -> 0.94 ns a value, one thread). NaN: set below too
                xc = x if x > lo else zero
                xc = xc if xc < hi else hi
                k = np.floor(xc * log2e + half)  # -150..128
                r = (xc - k * ln2_hi) - k * ln2_lo
                r2 = r * r
                p = mul_add(mul_add(mul_add(c7, r, c6), r2, mul_add(c5, r, c4)), r2 * r2,
                            mul_add(mul_add(c3, r, c2), r2, mul_add(c1, r, c0)))
                # 2**k as two normal factors 2**k1 * 2**k2 (k1, k2 in -75..64): p * 2**k1 is
                # exact, so the result is rounded once, by the last multiplication, whether
                # it is normal, subnormal (kept, as numpy keeps it) or beyond the largest
                # float32 (inf); no branch, so the loop vectorises
                e = np.int32(k)
                e1 = e >> 1
                p = p * _float32_from_bits(np.int32((e1 + 127) << 23)) \
                    * _float32_from_bits(np.int32((e - e1 + 127) << 23))
                if not x > lo:
                    p = zero
                if x != x:
                    p = x
                return p
            return impl
        return lambda x: np.exp(x)

    def fast_sigmoid(x):  # pragma: no cover - replaced by the overload inside kernels
        """sigmoid of one value, as ir/ops/elementwise.py's: f / (1 + exp(-|x|)) with f = 1
        for x >= 0 and exp(-|x|) below, so a tiny sigmoid keeps its digits (fast_exp is
        within 4 ulp; the division rounds once more)."""

    @overload(fast_sigmoid)
    def _fast_sigmoid(x):
        ty = np.float32 if x == numba.float32 else np.float64
        zero, one = ty(0.0), ty(1.0)

        def impl(x):
            e = fast_exp(-abs(x))  # in [0, 1]: no overflow; NaN for NaN
            f = one if x >= zero else e
            return f / (one + e)
        return impl

    @njit(fastmath=_FLAGS, cache=True, inline="always", error_model="numpy")
    def maximum(a, b):
        """np.maximum's rule for scalars: a NaN on either side wins, and a tie gives b, as
        numpy's does, so the sign of a zero agrees (relu(-0.0) = maximum(-0.0, 0.0) = +0.0)."""
        if a != a or a > b:
            return a
        return b

    @njit(fastmath=_FLAGS, cache=True, inline="always", error_model="numpy")
    def minimum(a, b):
        if a != a or a < b:
            return a
        return b

    @njit(cache=True, inline="always")
    def same_array(a, b):
        """Whether a and b are one array: the same memory in the same layout (generated
        kernels read an operand written in place through their result, runtime.kernelgen)."""
        return a.ctypes.data == b.ctypes.data and a.strides == b.strides

    def exp2_for_sigmoid(t):  # pragma: no cover - replaced by the overload inside kernels
        """2**t, float32, for a sigmoid: 0 below 2**-126 and inf from 2**127.5 on."""

    # 2**r on [-1/2, 1/2]: a minimax fit of degree 6 (Lawson iteration), relative error 8e-8
    # with float32 coefficients and fused multiply-adds
    _EXP2_POLY = (1.0, 0.6931471824645996, 0.24022646248340607, 0.05550328642129898,
                  0.009618489071726799, 0.0013399930903688073, 0.00015345810970757157)

    @overload(exp2_for_sigmoid)
    def _exp2_for_sigmoid(t):
        c0, c1, c2, c3, c4, c5, c6 = (np.float32(c) for c in _EXP2_POLY)
        lo, hi, half = np.float32(-127.0), np.float32(128.0), np.float32(0.5)

        def impl(t):
            # 2**t = 2**k * 2**r, k = round(t), r = t - k (exact). Clamped so that the biased
            # exponent k + 127 is 0..255: 0 gives 2**k = 0 (NaN lands there too: it keeps
            # the conversion to an integer defined), 255 gives inf. No Cody-Waite split is
            # needed: t's own rounding (|t| * 2**-24) is far below a sigmoid's resolution
            # where it matters (|t| < 30)
            tc = t if t > lo else lo
            tc = tc if tc < hi else hi
            k = np.floor(tc + half)
            r = tc - k
            r2 = r * r
            # Estrin's scheme: three short chains instead of one of six multiply-adds
            p = mul_add(mul_add(mul_add(c6, r, c5), r2, mul_add(c4, r, c3)), r2 * r,
                        mul_add(mul_add(c2, r, c1), r, c0))
            return p * _float32_from_bits(np.int32((np.int32(k) + 127) << 23))
        return impl

    _C, _CK, _KC3 = GELU_TANH_C, GELU_TANH_CK, GELU_TANH_3CK  # ir/ops/elementwise.py
    # GELU's tanh form as a sigmoid: 0.5 * (1 + tanh(u)) = 1 / (1 + exp(-2u)) = 1 / (1 + 2**w)
    # with w = -2 u log2(e) = v * (A + B v^2)
    _LOG2E = 1.4426950408889634
    _SIG_A, _SIG_B = -2.0 * _LOG2E * _C, -2.0 * _LOG2E * _CK

    def gelu_tanh(v):  # pragma: no cover - replaced by the overload inside kernels
        """GELU, tanh form, of one value (also called by fused kernels)."""

    def gelu_tanh_grad(v, g):  # pragma: no cover - replaced by the overload inside kernels
        """g * GELU'(v), tanh form."""

    def _constants(x):
        """GELU's constants in the operand's own precision (a float64 literal would turn a
        float32 loop into float64 arithmetic)."""
        ty = np.float32 if x == numba.float32 else np.float64
        return ty(0.5), ty(1.0), ty(_C), ty(_CK), ty(_KC3)

    # float32 GELU is v * sigmoid(2u) = v / (1 + 2**w): the rational tanh (22 operations and
    # a division, most in one dependent chain) made it 1.2 ns a value on one core and
    # gelu_grad 1.6 ns; this form with fused multiply-adds takes 0.7 and 1.1 ns (1M float32
    # values, min of 60, one thread). It is also closer to the float64 definition: 1.2e-7
    # (GELU) and 2.2e-7 (gradient) of max(|GELU|, 1) over [-12, 12], against 7.4e-7 and 4.2e-6
    # for the tanh form (whose 1 - t*t cancels where tanh saturates). Special values are
    # numpy's: NaN for NaN, -inf and (gradient) +-inf or |v| where v*v overflows, v for +inf.
    @overload(gelu_tanh)
    def _gelu_tanh(v):
        half, one, c, ck, _ = _constants(v)
        if v == numba.float32:
            a, b = np.float32(_SIG_A), np.float32(_SIG_B)

            def impl32(v):
                # v / (1 + 0) for large v, v / inf = -0 for very negative v, -inf / inf = NaN
                return v / (one + exp2_for_sigmoid(v * mul_add(b, v * v, a)))
            return impl32

        def impl(v):
            t = fast_tanh(v * (c + ck * v * v))
            return half * v * (one + t)
        return impl

    @overload(gelu_tanh_grad)
    def _gelu_tanh_grad(v, g):
        half, one, c, ck, kc3 = _constants(v)
        if v == numba.float32:
            a, b, two = np.float32(_SIG_A), np.float32(_SIG_B), np.float32(2.0)

            def impl32(v, g):
                # GELU' = s + 2 v s (1 - s) u' with s = 1 / (1 + e), e = 2**w, u' = c + 3ck v^2;
                # 1 - s is e * s where e <= 1 (no cancellation) and 1 - s beyond, where e * s
                # would be inf * 0
                v2 = v * v
                e = exp2_for_sigmoid(v * mul_add(b, v2, a))
                s = one / (one + e)
                one_minus_s = e * s if e <= one else one - s
                return (g * s) * mul_add((two * v) * one_minus_s, mul_add(kc3, v2, c), one)
            return impl32

        def impl(v, g):
            v2 = v * v
            t = fast_tanh(v * (c + ck * v2))
            return half * g * ((one + t) + v * (one - t * t) * (c + kc3 * v2))
        return impl

    @njit(**_OPTS)
    def gelu_tanh_rows(x, out):
        for i in prange(x.size):
            out[i] = gelu_tanh(x[i])

    @njit(**_OPTS)
    def gelu_tanh_grad_rows(x, g, out):
        for i in prange(x.size):
            out[i] = gelu_tanh_grad(x[i], g[i])

    @njit(**_OPTS)
    def gelu_tanh_grad_colsum(x, g, out, bout):
        """gelu_tanh_grad_rows on (rows, n) views, and into bout the result's column sums (a
        dense layer's bias gradient, runtime.lowering.gelu_grad_bias_sums) in the same
        pass, instead of numpy's ones @ out reading the result again. Each column is summed
        in layer_norm_wgrad's chunks of rows, added in chunk order: the bits do not depend on
        the number of threads. out has gelu_tanh_grad_rows' bits; bout is written after
        everything is read."""
        rows, n = x.shape
        chunks, per, partial = _wgrad_chunks(x)
        for k in prange(chunks):
            acc = _zeroed_chunk(partial, k)
            for r in range(k * per, min(rows, (k + 1) * per)):
                xr, gr, row = x[r], g[r], out[r]
                for j in range(n):
                    v = gelu_tanh_grad(xr[j], gr[j])
                    row[j] = v
                    acc[j] += v
        _sum_chunks(partial, bout)
        _column_sums_as_numpy(out, bout)  # (bout may share a dead input's buffer, not out's)

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _row_moments(row, eps):
        # in the row's own dtype and in the order of the numpy definition (ir/ops/composite.py
        # _moments: sum / n, then sum of squares / n + eps): a float32 row whose squares
        # overflow gives numpy's result, not a float64 one
        n = row.shape[0]
        ty = row.dtype.type
        count = ty(n)  # not n: an integer would make the quotients float64
        s = ty(0.0)
        for j in range(n):
            s += row[j]
        mu = s / count
        ss = ty(0.0)
        for j in range(n):
            d = row[j] - mu
            ss += d * d
        return mu, ty(1.0) / np.sqrt(ss / count + ty(eps))

    @njit(fastmath=_FLAGS, cache=True, error_model="numpy")
    def _normalise_row(xr, mu, rstd, w, b, out):
        """out = (x - mu) * rstd * w + b in numpy's order. Not inlined and not reassociated
        (the flags stay with these instructions where LLVM inlines it): under the row
        kernels' reassoc LLVM formed (x - mu) * w first, which overflows a float32 row that
        numpy's order does not: x - mu = 2.95e38, rstd = 0 (its squares overflowed), w = -1.7
        gave nan where numpy gives b."""
        for j in range(xr.shape[0]):
            out[j] = (xr[j] - mu) * rstd * w[j] + b[j]

    @njit(fastmath=_FLAGS, cache=True, error_model="numpy")
    def _xhat_row(xr, mu, rstd, out):
        """out = (x - mu) * rstd, not reassociated (see _normalise_row)."""
        for j in range(xr.shape[0]):
            out[j] = (xr[j] - mu) * rstd

    @njit(**_ROW_OPTS)
    def layer_norm(x, w, b, eps, out):
        rows, n = x.shape
        for r in prange(rows):
            mu, rstd = _row_moments(x[r], eps)
            for j in range(n):
                out[r, j] = (x[r, j] - mu) * rstd * w[j] + b[j]
            if rstd == 0:
                # the row's squares overflowed, and the loop above, reassociated, may have
                # formed (x - mu) * w first and overflowed: numpy's order for this row (see
                # _normalise_row; a call, not inlined, on every row cost ~20% of the kernel)
                _normalise_row(x[r], mu, rstd, w, b, out[r])

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _layer_norm_grad_row(xr, w, gr, mu, rstd, out):
        """out = the gradient of LayerNorm's input for one row (x, its moments, dy)."""
        n = xr.shape[0]
        ty = xr.dtype.type
        a = ty(0.0)
        bsum = ty(0.0)
        for j in range(n):
            gw = gr[j] * w[j]
            a += gw
            bsum += gw * (xr[j] - mu)
        count = ty(n)  # not n: an integer would make the quotients float64
        a = a / count
        bsum = bsum * rstd / count
        if not np.isfinite(bsum):
            # gw * (x - mu) overflowed (a float32 row whose squares did: rstd 0), and inf * 0
            # gave nan where numpy's order, sum(gw * xhat), gives 0: that order, for this row
            _xhat_row(xr, mu, rstd, out)
            bsum = ty(0.0)
            for j in range(n):
                bsum += gr[j] * w[j] * out[j]
            bsum = bsum / count
        for j in range(n):
            xhat = (xr[j] - mu) * rstd
            out[j] = rstd * (gr[j] * w[j] - xhat * bsum - a)

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _add_xhat_times_g(xr, gr, mu, rstd, acc):
        """acc += xhat * dy for one row: its share of LayerNorm's weight gradient."""
        for j in range(xr.shape[0]):
            acc[j] += (xr[j] - mu) * rstd * gr[j]  # numpy's order (no x*rstd - mu*rstd)

    @njit(**_ROW_OPTS)
    def layer_norm_grad(x, w, g, eps, out):
        for r in prange(x.shape[0]):
            mu, rstd = _row_moments(x[r], eps)
            _layer_norm_grad_row(x[r], w, g[r], mu, rstd, out[r])

    # the weight gradient's partial sums: one per chunk of rows, added up in chunk order at
    # the end, so that its bits do not depend on the number of threads
    WGRAD_CHUNKS = 32

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _wgrad_chunks(x):
        """(chunks, rows per chunk, partial sums) of a weight gradient over x's rows. The
        partials are np.empty, each chunk zeroed by its own thread: numba runs an np.zeros
        here as a parallel loop of its own, a second fork-join per call, which costs a
        scheduler time slice (~16 ms measured) whenever the partner thread is descheduled."""
        rows, n = x.shape
        chunks = min(rows, WGRAD_CHUNKS)
        return chunks, (rows + chunks - 1) // chunks, np.empty((chunks, n), x.dtype)

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _zeroed_chunk(partial, k):
        """partial[k], zeroed by the thread that then sums its chunk of rows into it."""
        acc = partial[k]
        for j in range(acc.shape[0]):
            acc[j] = 0
        return acc

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _sum_chunks(partial, out):
        for j in range(out.shape[0]):
            total = out.dtype.type(0.0)
            for k in range(partial.shape[0]):
                total += partial[k, j]
            out[j] = total

    @njit(fastmath=_FLAGS, cache=True, error_model="numpy")
    def _column_sums_as_numpy(x, totals):
        """Each total of x's columns (a bias gradient the chunks summed) that is not finite
        summed again row by row, numpy's order (np.add.reduce(x, axis=0), the fallback of the
        unfused sum: runtime.emitters.reduce): where partial sums overflow, the order decides
        between inf and NaN (a float32 column 2e38, 2e38, -3e38, -3e38: numpy's inf, two
        chunks' inf + -inf = NaN). Only the small result is checked; strict IEEE, not
        inlined, so that no reassociation reaches the adds."""
        for j in range(totals.shape[0]):
            if not np.isfinite(totals[j]):
                total = totals.dtype.type(0.0)
                for r in range(x.shape[0]):
                    total += x[r, j]
                totals[j] = total

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _weight_totals(partial, x, g, eps):
        """LayerNorm's weight gradient from its chunks' partial sums, each total that is not
        finite summed again in numpy's order (_wgrad_sums_as_numpy), in an array of its own:
        x and g may be read again, so the kernel's output (which may share their buffers)
        is written only after."""
        totals = np.empty(partial.shape[1], x.dtype)
        _sum_chunks(partial, totals)
        _wgrad_sums_as_numpy(x, g, eps, totals)
        return totals

    @njit(fastmath=_FLAGS, cache=True, error_model="numpy")
    def _wgrad_sums_as_numpy(x, g, eps, totals):
        """Each total of LayerNorm's weight gradient (xhat * dy summed over rows in chunks)
        that is not finite summed again row by row in numpy's order, as
        _column_sums_as_numpy does for a bias: np.add.reduce(xhat * g, axis=0), the op's
        definition (ir/ops/composite.py layer_norm_wgrad), gives inf where two chunks' inf
        and -inf gave NaN. The rows' moments are computed again only then."""
        n = totals.shape[0]
        finite = True
        for j in range(n):
            finite = finite and np.isfinite(totals[j])
        if finite:
            return
        sums = np.zeros(n, totals.dtype)
        for r in range(x.shape[0]):
            mu, rstd = _row_moments(x[r], eps)
            for j in range(n):
                if not np.isfinite(totals[j]):
                    sums[j] += (x[r, j] - mu) * rstd * g[r, j]
        for j in range(n):
            if not np.isfinite(totals[j]):
                totals[j] = sums[j]

    @njit(**_ROW_OPTS)
    def layer_norm_wgrad(x, g, eps, out):
        rows, n = x.shape
        chunks, per, partial = _wgrad_chunks(x)
        for k in prange(chunks):
            acc = _zeroed_chunk(partial, k)
            for r in range(k * per, min(rows, (k + 1) * per)):
                mu, rstd = _row_moments(x[r], eps)
                _add_xhat_times_g(x[r], g[r], mu, rstd, acc)
        totals = _weight_totals(partial, x, g, eps)
        for j in range(n):  # (a loop: parallel=True would make a slice copy a parallel one)
            out[j] = totals[j]

    @njit(**_ROW_OPTS)
    def layer_norm_grads(x, w, g, eps, out, wout):
        """layer_norm_grad into out and layer_norm_wgrad into wout in one pass over x and g,
        each row's moments computed once (runtime.lowering.layer_norm_grad_pairs): 1.2-1.4x
        faster than the two kernels (float32 (2048, 64), (2048, 128), (8192, 384), one
        thread, min of 100, alternated, load 5). The same row loops and chunks as the two
        kernels: out has their bits; LLVM reassociates wout's xhat * dy differently in this
        context (allowed to row kernels), within 2.1e-7 of the separate kernel's relative to
        its largest value (float32; 5.7e-16 float64). Everything is read before wout is
        written: wout may take the buffer of x or g."""
        rows, n = x.shape
        chunks, per, partial = _wgrad_chunks(x)
        for k in prange(chunks):
            acc = _zeroed_chunk(partial, k)
            for r in range(k * per, min(rows, (k + 1) * per)):
                mu, rstd = _row_moments(x[r], eps)
                _layer_norm_grad_row(x[r], w, g[r], mu, rstd, out[r])
                _add_xhat_times_g(x[r], g[r], mu, rstd, acc)
        weight = _weight_totals(partial, x, g, eps)
        for j in range(n):
            wout[j] = weight[j]

    @njit(**_ROW_OPTS)
    def layer_norm_grads_bias(x, w, g, eps, out, wout, bout):
        """layer_norm_grads, and into bout the LayerNorm bias's gradient (g's column sums) in
        the same pass (runtime.lowering.layer_norm_grad_pairs): one read of g fewer than
        numpy's ones @ g after the kernel. Each sum in the same chunks as wout's, added in
        chunk order: the bits do not depend on the number of threads (they differ from
        BLAS's order by a sum's rounding). Everything is read before wout and bout are
        written."""
        rows, n = x.shape
        chunks, per, partial = _wgrad_chunks(x)
        bias_partial = np.empty_like(partial)
        for k in prange(chunks):
            acc, bias_acc = _zeroed_chunk(partial, k), _zeroed_chunk(bias_partial, k)
            for r in range(k * per, min(rows, (k + 1) * per)):
                mu, rstd = _row_moments(x[r], eps)
                gr = g[r]
                _layer_norm_grad_row(x[r], w, gr, mu, rstd, out[r])
                _add_xhat_times_g(x[r], gr, mu, rstd, acc)
                for j in range(n):
                    bias_acc[j] += gr[j]
        # x and g read again where a total overflowed: before wout and bout are written, as
        # they may share g's buffer
        weight, bias = _weight_totals(partial, x, g, eps), np.empty(n, g.dtype)
        _sum_chunks(bias_partial, bias)
        _column_sums_as_numpy(g, bias)
        for j in range(n):
            wout[j] = weight[j]
            bout[j] = bias[j]

    # BatchNorm (ir/ops/composite.py batch_norm...): x viewed as (N, C, M), each channel's
    # N rows of M apart by C * M. Where M fills a cache line, one thread per channel: its
    # slice (N * M values) is read from cache after the first pass at the shapes of CNNs,
    # each row summed in its own dtype (reassociated, so that LLVM vectorises it) and the row
    # sums in float64 (a float32 channel of 128 x 32 x 32 values keeps ~1e-7 relative error
    # instead of a running float32 sum's ~1e-5, and its squares do not overflow). Where it
    # does not (BatchNorm1d's (N, C): M = 1), threads take chunks of rows instead
    # (_rows_stats), as a channel's values would be read a few bytes from each line: 3.5x
    # slower than numpy at (4096, 256) float32
    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _by_rows(x):
        return x.shape[2] * x.itemsize < 64

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _channel_mean(x, c):
        rows, _, m = x.shape
        ty = x.dtype.type
        total = 0.0
        for i in range(rows):
            row = x[i, c]
            s = ty(0.0)
            for j in range(m):
                s += row[j]
            total += s
        return ty(total / max(rows * m, 1))

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _channel_var(x, c, mu):
        rows, _, m = x.shape
        ty = x.dtype.type
        total = 0.0
        for i in range(rows):
            row = x[i, c]
            s = ty(0.0)
            for j in range(m):
                d = row[j] - mu
                s += d * d
            total += s
        return total / max(rows * m, 1)  # float64

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _channel_grad_sums(x, g, c, mu):
        """sum((x - mu)^2), sum(g), sum(g * (x - mu)) over channel c, in float64."""
        rows, _, m = x.shape
        ty = x.dtype.type
        ss, gs, gxs = 0.0, 0.0, 0.0
        for i in range(rows):
            xr, gr = x[i, c], g[i, c]
            s, sg, sgx = ty(0.0), ty(0.0), ty(0.0)
            for j in range(m):
                d = xr[j] - mu
                s += d * d
                sg += gr[j]
                sgx += gr[j] * d
            ss += s
            gs += sg
            gxs += sgx
        return ss, gs, gxs

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _per_column(v, m):
        """A per-channel (C,) array for each of the C * M columns of x's (N, C * M) view."""
        out = np.empty(v.shape[0] * m, v.dtype)
        for k in range(out.shape[0]):
            out[k] = v[k // m]
        return out

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _sum_rows(x2, g2, shifts, acc, start, stop):
        """acc (4, C * M) = the column sums of d, d * d, g and g * d over rows start:stop."""
        for q in range(4):
            for j in range(acc.shape[1]):
                acc[q, j] = 0.0
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        for i in range(start, stop):
            xr, gr = x2[i], g2[i]
            for j in range(xr.shape[0]):
                d = xr[j] - shifts[j]
                gv = np.float64(gr[j])
                a0[j] += d
                a1[j] += d * d
                a2[j] += gv
                a3[j] += gv * d

    @njit(**_ROW_OPTS)
    def _rows_stats(x, g, eps):
        """(6, C) float64 by chunks of rows of x's (N, C * M) view, in one pass: each
        channel's mean, rstd, variance, sum(g), sum(g * xhat) and mean(g * xhat) (g: x itself
        where no g is wanted). Each column is summed into float64 (contiguous: it
        vectorises), the columns of a channel added at the end. The sums are of d = x - the
        channel's first value: the variance, mean(d * d) - mean(d)^2 in float64, loses ~1e-16
        (distance / spread)^2 of itself to cancellation, where that value lies that far from
        the mean. Chunks are added
        in order: the bits do not depend on the number of threads."""
        rows, channels, m = x.shape
        cols = channels * m
        x2, g2 = x.reshape(rows, cols), g.reshape(rows, cols)
        shift = np.empty(channels)
        for c in range(channels):
            shift[c] = x[0, c, 0]
        shifts = _per_column(shift, m)
        # fixed by the shape (not the thread count), the partial sums kept to ~2 MB
        chunks = max(1, min(rows, WGRAD_CHUNKS, (1 << 16) // cols))
        per = (rows + chunks - 1) // chunks
        partial = np.empty((chunks, 4, cols))
        for k in prange(chunks):
            _sum_rows(x2, g2, shifts, partial[k], k * per, min(rows, (k + 1) * per))
        n = max(rows * m, 1)
        total = partial[0]  # the chunks added in order, a row of sums at a time
        for k in range(1, chunks):
            for q in range(4):
                tq, pq = total[q], partial[k, q]
                for j in range(cols):
                    tq[j] += pq[j]
        stats = np.empty((6, channels))
        for c in range(channels):
            s1, s2, s3, s4 = 0.0, 0.0, 0.0, 0.0
            for j in range(c * m, (c + 1) * m):
                s1 += total[0, j]
                s2 += total[1, j]
                s3 += total[2, j]
                s4 += total[3, j]
            md = s1 / n
            var = s2 / n - md * md
            if var < 0:  # rounding; a NaN stays
                var = 0.0
            rstd = 1.0 / np.sqrt(var + eps)
            stats[0, c] = shift[c] + md
            stats[1, c] = rstd
            stats[2, c] = var
            stats[3, c] = s3
            stats[4, c] = (s4 - md * s3) * rstd  # sum(g * (x - mean)) * rstd
            stats[5, c] = stats[4, c] / n
        return stats

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _normalise_columns(xr, mu, rstd, w, b, out):
        for j in range(xr.shape[0]):
            out[j] = (xr[j] - mu[j]) * rstd[j] * w[j] + b[j]

    @njit(fastmath=_ROW_FLAGS, cache=True, inline="always", error_model="numpy")
    def _grad_columns(xr, gr, mu, rstd, scale, a, b, out):
        for j in range(xr.shape[0]):
            out[j] = scale[j] * (gr[j] - a[j] - (xr[j] - mu[j]) * rstd[j] * b[j])

    @njit(**_ROW_OPTS)
    def _rows_normalise(x, w, b, stats, out):
        rows, channels, m = x.shape
        x2, out2 = x.reshape(rows, channels * m), out.reshape(rows, channels * m)
        mu = _per_column(stats[0].astype(x.dtype), m)
        rstd = _per_column(stats[1].astype(x.dtype), m)
        wc, bc = _per_column(w, m), _per_column(b, m)
        for i in prange(rows):
            _normalise_columns(x2[i], mu, rstd, wc, bc, out2[i])

    @njit(**_ROW_OPTS)
    def _rows_grad(x, w, g, stats, out):
        rows, channels, m = x.shape
        cols = channels * m
        x2, g2, out2 = x.reshape(rows, cols), g.reshape(rows, cols), out.reshape(rows, cols)
        n = max(rows * m, 1)
        mu = _per_column(stats[0].astype(x.dtype), m)
        rstd = _per_column(stats[1].astype(x.dtype), m)
        scale = _per_column((stats[1] * w).astype(x.dtype), m)
        a = _per_column((stats[3] / n).astype(x.dtype), m)
        bc = _per_column(stats[5].astype(x.dtype), m)
        for i in prange(rows):
            _grad_columns(x2[i], g2[i], mu, rstd, scale, a, bc, out2[i])

    @njit(**_ROW_OPTS)
    def _batch_norm_kernel(x, w, b, eps, out):
        rows, channels, m = x.shape
        ty = x.dtype.type
        if _by_rows(x):
            _rows_normalise(x, w, b, _rows_stats(x, x, eps), out)
            return
        for c in prange(channels):
            mu = _channel_mean(x, c)
            rstd = ty(1.0 / np.sqrt(_channel_var(x, c, mu) + eps))
            wc, bc = w[c], b[c]
            for i in range(rows):
                xr, dst = x[i, c], out[i, c]
                for j in range(m):
                    dst[j] = (xr[j] - mu) * rstd * wc + bc

    @njit(**_ROW_OPTS)
    def _batch_norm_grads_kernel(x, w, g, eps, out, wout):
        """w * rstd * (g - mean(g) - xhat * mean(g * xhat)) per channel into out, and into
        wout (2, C) sum(g * xhat) and sum(g), BatchNorm's weight and bias gradients, which
        come from the same sums (runtime.lowering.layer_norm_grad_pairs pairs
        batch_norm_grad and batch_norm_wgrad into this kernel). Per channel: the mean in a
        pass, the variance and the sums of g and g * (x - mean) in a second, dx in a third,
        the channel read from cache by the last two. wout is written after everything is
        read (it may take a buffer that dies here)."""
        rows, channels, m = x.shape
        ty = x.dtype.type
        n = max(rows * m, 1)
        sums = np.empty((2, channels), wout.dtype)
        if _by_rows(x):
            stats = _rows_stats(x, g, eps)
            if out.size:  # (batch_norm_wgrad alone passes no out)
                _rows_grad(x, w, g, stats, out)
            for c in range(channels):
                sums[0, c] = stats[4, c]
                sums[1, c] = stats[3, c]
            wout[:] = sums
            return
        for c in prange(channels):
            mu = _channel_mean(x, c)
            ss, gs, gxs = _channel_grad_sums(x, g, c, mu)
            rstd64 = 1.0 / np.sqrt(ss / n + eps)
            sums[0, c] = gxs * rstd64
            sums[1, c] = gs
            if out.size:
                rstd, scale = ty(rstd64), ty(rstd64 * w[c])
                a = ty(gs / n)
                bc = ty(gxs / n * rstd64)  # mean(g * xhat)
                for i in range(rows):
                    xr, gr, dst = x[i, c], g[i, c], out[i, c]
                    for j in range(m):
                        dst[j] = scale * (gr[j] - a - (xr[j] - mu) * rstd * bc)
        wout[:] = sums

    @njit(**_SERIAL_ROW_OPTS)  # (the kernel it calls runs in parallel)
    def _batch_norm_grad_kernel(x, w, g, eps, out):
        _batch_norm_grads_kernel(x, w, g, eps, out, np.empty((2, x.shape[1]), x.dtype))

    @njit(**_SERIAL_ROW_OPTS)
    def _batch_norm_wgrad_kernel(x, g, eps, out):
        _batch_norm_grads_kernel(x, out[0], g, eps, np.empty((0, 0, 0), x.dtype), out)

    @njit(**_ROW_OPTS)
    def _batch_moments_kernel(x, out):
        """out[0] = each channel's mean, out[1] = its biased variance."""
        if _by_rows(x):
            stats = _rows_stats(x, x, 0.0)
            for c in range(x.shape[1]):
                out[0, c] = stats[0, c]
                out[1, c] = stats[2, c]
            return
        for c in prange(x.shape[1]):
            mu = _channel_mean(x, c)
            out[0, c] = mu
            out[1, c] = _channel_var(x, c, mu)

    @njit(fastmath=_ROW_FLAGS, cache=True, error_model="numpy")
    def row_max(row):
        m = row[0]
        for j in range(1, row.shape[0]):
            if row[j] > m:
                m = row[j]
        return m

    @njit(fastmath=_ROW_FLAGS, cache=True, error_model="numpy")
    def exp_shifted_sum(row, m):
        """row[j] = exp(row[j] - m) in place, and their sum. Generated softmax kernels call
        it: in their own strict loop the sum's order is fixed, which keeps LLVM from
        vectorising the loop, exp included (measured: the fused attention softmax of the
        small GPT at 6% of the step). Reassociated like the other row kernels' sums."""
        s = row.dtype.type(0.0)
        for j in range(row.shape[0]):
            e = fast_exp(row[j] - m)
            row[j] = e
            s += e
        return s

    @njit(fastmath=_ROW_FLAGS, cache=True, nogil=True, error_model="numpy")
    def softmax_row_in_place(row):
        """row = softmax(row): its max, exp(row - max) and their sum, then the scaling.
        Generated softmax kernels write the producers' values of a row and call this once:
        with the three steps inlined into the kernel's own strict loop nest the row took
        twice as long (attention's (8192, 64) scores, one thread: 2.5 -> 1.2-1.4 ms)."""
        m = row_max(row)
        inv = row.dtype.type(1.0) / exp_shifted_sum(row, m)
        for j in range(row.shape[0]):
            row[j] *= inv

    @njit(**_ROW_OPTS)
    def softmax(x, out):
        rows, n = x.shape
        for r in prange(rows):
            m = row_max(x[r])
            s = x.dtype.type(0.0)
            for j in range(n):
                e = fast_exp(x[r, j] - m)
                out[r, j] = e
                s += e
            inv = x.dtype.type(1.0) / s
            for j in range(n):
                out[r, j] *= inv

    @njit(**_ROW_OPTS)
    def log_softmax(x, out):
        rows, n = x.shape
        for r in prange(rows):
            m = row_max(x[r])
            s = x.dtype.type(0.0)
            for j in range(n):
                out[r, j] = x[r, j] - m
                s += fast_exp(out[r, j])
            # (x - m) - log s, with x - m stored first: x - (m + log s) rounds at m's
            # magnitude (and fastmath's reassoc would fold the two subtractions into that)
            log_s = np.log(s)
            for j in range(n):
                out[r, j] -= log_s

    @njit(**_ROW_OPTS)
    def softmax_grad(y, g, out):
        rows, n = y.shape
        for r in prange(rows):
            s = y.dtype.type(0.0)
            for j in range(n):
                s += g[r, j] * y[r, j]
            for j in range(n):
                out[r, j] = y[r, j] * (g[r, j] - s)

    @njit(**_ROW_OPTS)
    def softmax_grad_scaled(y, g, scale, out):
        """softmax_grad(y, g) * scale[0] in one pass: attention's backward multiplies the
        softmax gradient by 1/sqrt(d) (runtime.lowering.softmax_grads_scaled_by_reader).
        Rounded as the two kernels were: y * (g - s), then times the scale."""
        rows, n = y.shape
        c = scale[0]
        for r in prange(rows):
            s = y.dtype.type(0.0)
            for j in range(n):
                s += g[r, j] * y[r, j]
            for j in range(n):
                out[r, j] = y[r, j] * (g[r, j] - s) * c


    # Gathers and scatters of rows are a few microseconds of memory traffic (the small GPT's
    # 2048 x 128 float32 rows: 1 MB): one thread does each at memory speed, where a second
    # would add a fork-join that costs milliseconds when the partner is descheduled (measured
    # on a loaded machine: 7-15 ms for two threads against 28-60 us for one).
    _SERIAL_OPTS = dict(_OPTS, parallel=False)

    @njit(**_SERIAL_OPTS)
    def _all_in_range(idx, rows):
        """Whether every index addresses one of `rows` rows (checked before anything is
        written, so that a bad index leaves the result untouched)."""
        for i in range(idx.shape[0]):
            if idx[i] < -rows or idx[i] >= rows:
                return False
        return True

    @njit(**_SERIAL_OPTS)
    def take_rows(table, idx, out):
        """out[i] = table[idx[i]] (negative indices count from the end): the embedding
        lookup. np.take with out= buffers its result when it checks the indices (mode
        'raise'): 111 us for the small GPT's 2048 rows of 128 against 28 us here (one
        thread, min of 200)."""
        rows, cols = table.shape
        if not _all_in_range(idx, rows):
            raise IndexError("take: an index is out of range for the table's rows")
        for i in range(idx.shape[0]):
            k = idx[i] + rows if idx[i] < 0 else idx[i]
            src, dst = table[k], out[i]
            for c in range(cols):
                dst[c] = src[c]

    @njit(**_SERIAL_OPTS)
    def scatter_add_rows(updates, idx, out):
        """out = rows of zeros with updates[i] added at row idx[i] (negative indices count
        from the end): the embedding gradient, each row added in index order as np.add.at
        does (equal bits). numpy's library form (a one-hot product, a bincount or np.add.at)
        allocates and took 0.75 ms for the small GPT's 2048 x 128 token gradient; this loop
        over row views vectorises: 28 us (one thread; the previous two-way split over
        columns indexed out[k, c] and took 171 us on one thread)."""
        rows, cols = out.shape
        if not _all_in_range(idx, rows):
            raise IndexError("scatter_add: an index is out of range for the rows")
        out[:] = 0
        for i in range(idx.shape[0]):
            k = idx[i] + rows if idx[i] < 0 else idx[i]
            src, dst = updates[i], out[k]
            for c in range(cols):
                dst[c] += src[c]

    @njit(**_SERIAL_OPTS)
    def one_hot_rows(idx, out):
        """out[i] = the one-hot row of idx[i]; an index outside 0..depth-1 (an ignore index
        such as -100) gives a row of zeros, as the op's library implementation does, whose
        broadcast comparison took 98 us for the small GPT's 2048 targets of 65 classes
        against 11 us here."""
        rows, depth = out.shape
        for r in range(rows):
            dst = out[r]
            for j in range(depth):
                dst[j] = 0
            k = idx[r]
            if k >= 0 and k < depth:
                dst[k] = 1


def _frozen(a):
    """a, or a read-only view of it."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


class _ReadOnlyInputs:
    """A fixed kernel whose array inputs (its first `inputs` arguments) it is always given
    read-only. numba types a read-only array apart from a writable one, and a plan passes
    either: its constants are read-only (the zero bias of BatchNorm(bias=False), the ones
    of affine=False, an input a gradient closes over), its buffers writable. Each mix of the
    two compiled a specialisation of its own at a plan's first call (6-16 s of CPU each;
    `python -m runtime.jit` prepares one); a read-only view of each input (~0.4 us) makes
    them all the one it prepares."""
    __slots__ = ("kernel", "inputs")

    def __init__(self, kernel, inputs: int):
        self.kernel, self.inputs = kernel, inputs

    def __call__(self, *args):
        k = self.inputs
        return self.kernel(*[_frozen(a) for a in args[:k]], *args[k:])

    @property
    def signatures(self) -> list:
        return self.kernel.signatures


if numba is not None:
    # BatchNorm's kernels, with their array inputs (x, w, b, g) read-only
    batch_norm = _ReadOnlyInputs(_batch_norm_kernel, 3)
    batch_norm_grads = _ReadOnlyInputs(_batch_norm_grads_kernel, 3)
    batch_norm_grad = _ReadOnlyInputs(_batch_norm_grad_kernel, 3)
    batch_norm_wgrad = _ReadOnlyInputs(_batch_norm_wgrad_kernel, 2)
    batch_moments = _ReadOnlyInputs(_batch_moments_kernel, 1)


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _example_arguments(kernel: str, dtype) -> tuple:
    """The smallest arguments of each fixed kernel's call, for compiling it ahead of use."""
    x = np.ones((1, 2), dtype)
    flat, row, out = x.reshape(-1), x[0], np.empty_like(x)
    x3, out3 = x.reshape(1, 1, 2), np.empty((1, 1, 2), dtype)
    return {
        "gelu_tanh_rows": (flat, flat.copy()), "gelu_tanh_grad_rows": (flat, flat, flat.copy()),
        "softmax": (x, out), "log_softmax": (x, out), "softmax_grad": (x, x, out),
        "softmax_grad_scaled": (x, x, _read_only(row[:1]), out),  # a plan's constant
        "layer_norm": (x, row, row, 1e-5, out), "layer_norm_grad": (x, row, x, 1e-5, out),
        "layer_norm_wgrad": (x, x, 1e-5, row.copy()),
        "layer_norm_grads": (x, row, x, 1e-5, out, row.copy()),
        "layer_norm_grads_bias": (x, row, x, 1e-5, out, row.copy(), row.copy()),
        "gelu_tanh_grad_colsum": (x, x, out, row.copy()),
        "batch_norm": (x3, row[:1], row[:1], 1e-5, out3),
        "batch_norm_grad": (x3, row[:1], x3, 1e-5, out3),
        "batch_norm_wgrad": (x3, x3, 1e-5, np.empty((2, 1), dtype)),
        "batch_norm_grads": (x3, row[:1], x3, 1e-5, out3, np.empty((2, 1), dtype)),
        "batch_moments": (x3, np.empty((2, 1), dtype)),
        "scatter_add_rows": (x, np.zeros(1, np.int64), out),
        "take_rows": (x, np.zeros(1, np.int64), out), "one_hot_rows": (np.zeros(1, np.int64), out),
    }[kernel]


FIXED_KERNELS = ("gelu_tanh_rows", "gelu_tanh_grad_rows", "softmax", "log_softmax",
                 "softmax_grad", "layer_norm", "layer_norm_grad", "layer_norm_wgrad",
                 "batch_norm", "batch_norm_grad", "batch_norm_wgrad", "batch_moments",
                 "scatter_add_rows", "take_rows", "one_hot_rows",
                 "gemm",  # runtime.gemm's matmul kernels
                 "reductions")  # runtime.reductions' sums
# kernels that compute two nodes at once, chosen by runtime.lowering (not an op's own kernel)
PAIR_KERNELS = ("softmax_grad_scaled", "layer_norm_grads", "layer_norm_grads_bias",
                "batch_norm_grads",
                "gelu_tanh_grad_colsum")
_WARM = set()


def warm_all() -> None:
    """Compile every fixed kernel for float32 and float64 into numba's disk cache (run by
    `make setup`, so that a first training run compiles only its generated kernels)."""
    for kernel in FIXED_KERNELS + PAIR_KERNELS:
        for dtype in ("float32", "float64"):
            warm(kernel, dtype)


def warm(kernel: str, dtype) -> None:
    """Compile (or load from the disk cache) `kernel` for C-contiguous arrays of `dtype`,
    so that a plan's build, not its first call, pays for it."""
    quiet_blas_spinning()
    dtype = np.dtype(dtype)
    if (kernel, dtype) not in _WARM:
        _WARM.add((kernel, dtype))
        if kernel == "gemm":
            from . import gemm  # noqa: F401  compiles both dtypes' GEMM kernels on import
        elif kernel == "reductions":
            from . import reductions  # noqa: F401  (the same)
        else:
            globals()[kernel](*_example_arguments(kernel, dtype))


# ---- generated kernels (runtime/kernelgen.py) -------------------------------------------------
_LOADED = {}


@functools.lru_cache(maxsize=None)  # once per file and process, not once per dispatcher
def _file_digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read()).hexdigest()


# numba's disk cache notices a change of the kernel's own file only, not of the helpers it
# inlines from here (nor of the constants these take from ir.ops.elementwise): generated
# sources carry this version, so a change to either renames them
_DEPENDS = (_elementwise.__file__,)
VERSION = hashlib.sha1("".join(_file_digest(f) for f in (__file__,) + _DEPENDS).encode()
                       ).hexdigest()[:12]


class KernelCacheWarning(UserWarning):
    """The kernel cache could not be used as configured (graphc goes on without it)."""


_RESOLVED = {}  # configured cache directory -> the directory used (None: no usable cache)
_PRIVATE = []  # this process's private fallback directory, removed at exit
_WARNED = set()


def _warn_once(key, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, KernelCacheWarning, stacklevel=user_stacklevel())


def untrusted(path: str) -> str | None:
    """Why the cache directory `path` (a real path: no links) must not be used (None if it
    may). numba's cache index files are pickles: whoever can write them, or put a directory
    of their own in this one's place, runs code as the user. So, as ssh's StrictModes checks
    authorized_keys and the folders above it: `path` must be the user's own and writable by
    nobody else, and every folder above it, up to the user's home directory (where ssh stops
    too), owned by the user or root and writable by nobody else (a group-writable one in
    the user's own private group is the user's: _others_can_write). Nobody else can then change
    any of them later either (chmod, chown, rename and rmdir need their owner or write
    access to a folder above), so one check per process holds for all of numba's later
    opens by name. One exception to ssh's rule, for the folders above only: a sticky one
    (/tmp, /dev/shm), where others may create names but cannot rename or remove an entry
    they do not own, and the one entry on the way (the next folder down) is checked to be
    the user's or root's. The cache directory itself gets no such exception: others could
    create the names numba has yet to create."""
    problem = _not_private(os.lstat(path))
    if problem is not None or not hasattr(os, "getuid"):
        return problem
    home = _home()
    child = path
    while os.path.dirname(child) != child:
        parent = os.path.dirname(child)
        st = os.lstat(parent)  # a link here: it was replaced after realpath resolved it
        if not stat.S_ISDIR(st.st_mode):
            return f"is inside {parent}, which is no longer a directory"
        if st.st_uid not in (0, os.getuid()):
            return (f"is inside {parent}, which is owned by uid {st.st_uid}, not by you or "
                    "root (its owner can replace the cache directory: keep the cache "
                    "elsewhere)")
        if _others_can_write(st) and not st.st_mode & stat.S_ISVTX:
            return (f"is inside {parent}, which is writable by {_who(st)} (mode "
                    f"{stat.S_IMODE(st.st_mode):o}; whoever can write there can replace the "
                    "cache directory: chmod go-w it, or keep the cache elsewhere)")
        if parent == home:
            break
        child = parent
    return None


def _others_can_write(st) -> bool:
    """Whether someone other than the user may write the folder above the cache (its stat
    `st`). A group-writable one counts only where the group is not the user's own private
    group, as Debian's ssh judges the folders above authorized_keys: tools under the umask
    002 that Debian, Ubuntu and Fedora give users (pip among them) leave ~/.cache 0775 in
    the user's own group, and refusing it turned the kernel cache off for good there."""
    if st.st_mode & 0o002:
        return True
    return bool(st.st_mode & 0o020) and not _private_group(st.st_gid)


def _private_group(gid) -> bool:
    """The user's primary group with no member but the user (a user private group)."""
    try:
        import grp
        import pwd
        user = pwd.getpwuid(os.getuid())
        return gid == user.pw_gid and set(grp.getgrgid(gid).gr_mem) <= {user.pw_name}
    except (ImportError, KeyError, OSError):
        return False


def _not_private(st) -> str | None:
    """Why a directory of the cache (its stat `st`) is not private to the user, or None."""
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return (f"is writable by {_who(st)} (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w "
                "makes it private)")
    return None


def _who(st) -> str:
    return {0o020: "its group", 0o002: "others"}.get(st.st_mode & 0o022, "group and others")


def _home() -> str | None:
    """The user's home directory from the password database (as ssh takes it, not from
    $HOME), as a real path; None where there is none."""
    try:
        import pwd
        return os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, OSError):
        return None


def _configured_dir() -> str:
    return settings.CACHE_DIR.get() or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "graphc", "kernels")


def cache_dir() -> str | None:
    """Where generated kernel modules (and numba's compiled code beside them) are kept:
    GRAPHC_CACHE_DIR, else the user's cache directory. Where that cannot be created or
    written, or is not the user's own (see `untrusted`), one warning and a private temporary
    directory for this process (removed at exit); None where no directory can be written
    (kernels then compile in memory, uncached)."""
    base = _configured_dir()
    if base not in _RESOLVED:
        _RESOLVED[base] = _resolve(base)
    return _RESOLVED[base]


def _resolve(base: str) -> str | None:
    try:
        _makedirs_private(base)
        # the real path is checked, and used: a link on the way could be pointed elsewhere
        # by whoever can write the folder it is in
        real = os.path.realpath(base)
        problem = untrusted(real)
        # numba's files for the kernels: NUMBA_CACHE_DIR's subfolder where one is set, but
        # numba falls back to the cache's __pycache__ when it cannot write that one (a
        # read-only NUMBA_CACHE_DIR), so every existing folder it may load pickles from is
        # checked
        for folder in dict.fromkeys((_numba_folder(real), os.path.join(real, "__pycache__"))):
            if problem is None and os.path.lexists(folder):
                inner = _not_private(os.lstat(folder))
                problem = inner and f"has numba's folder {folder}, which {inner}"
        if problem is None and not os.access(real, os.W_OK):
            problem = "is not writable"
    except OSError as exc:
        problem = f"cannot be created ({exc.strerror or exc})"
    if problem is None:
        return real
    private = _private_dir()
    _warn_once(("dir", base), f"graphc: the kernel cache directory {base} {problem}; "
               + (f"using a private directory for this run instead ({private})" if private
                  else "compiling kernels without a cache"))
    return private


def _private_dir() -> str | None:
    if not _PRIVATE:
        try:
            _PRIVATE.append(tempfile.mkdtemp(prefix="graphc-kernels-"))  # mode 700
        except OSError:
            return None
        atexit.register(_remove_private_dir)
    return _PRIVATE[0]


def _remove_private_dir() -> None:
    tiering = sys.modules.get(__package__ + ".tiering")
    if tiering is not None:
        tiering.stop()  # the background compiler writes there
    for path in _PRIVATE:
        shutil.rmtree(path, ignore_errors=True)


def cache_failed(path: str, exc: OSError) -> None:
    """A write into the kernel cache failed (a full or read-only disk): one warning, and
    this process goes on without the cache (a private directory in use is removed)."""
    for base, used in _RESOLVED.items():
        if used is not None and (path == used or path.startswith(used + os.sep)):
            _RESOLVED[base] = None
            if used in _PRIVATE:
                shutil.rmtree(used, ignore_errors=True)
    _warn_once("write", f"graphc: cannot write the kernel cache ({path}: "
               f"{exc.strerror or exc}); going on without it, kernels compile in memory")


def _guard_cache(dispatcher, depends=()) -> None:
    """Make numba's disk cache of `dispatcher` survive damage: an entry that cannot be
    loaded (a truncated .nbi or .nbc raises a bare UnpicklingError otherwise) is dropped
    and recompiled, with one warning naming the file; a save that fails (a full disk)
    turns this dispatcher's caching off instead of failing the compilation.
    `depends`: files of other modules whose code the kernel compiles in (njit helpers it
    inlines, constants). numba keys its cache by the kernel's own file only, so after a
    change there (a `git pull`, an upgrade) it loaded the kernel built with their old code;
    their contents join the key."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "_cache_file"):
        return
    problem = _untrusted_folder(cache.cache_path)
    if problem:  # checked here, where numba has chosen it, before anything is compiled
        cache.disable()
        _warn_once(("folder", cache.cache_path), f"graphc: numba's cache folder "
                   f"{cache.cache_path} {problem}; its kernels compile without a disk cache")
    files = cache._cache_file
    if depends:
        own = getattr(files, "_graphc_own_stamp", files._source_stamp)
        files._graphc_own_stamp = own
        files._source_stamp = (own, tuple(_file_digest(path) for path in depends))
    if hasattr(cache, "_graphc_guard"):
        return
    load, save = cache.load_overload, cache.save_overload

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as exc:  # whatever unpickling a damaged file raises
            _drop_damaged(cache, sig, target_context, exc)
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except OSError as exc:
            cache.disable()
            cache_failed(getattr(exc, "filename", None) or cache.cache_path, exc)

    cache.load_overload, cache.save_overload = load_overload, save_overload
    cache._graphc_guard = True


def _untrusted_folder(folder: str) -> str | None:
    """Why numba must not load kernels from `folder`, the one its locators chose for a
    dispatcher (None if it may). Checked where numba has chosen it, so every folder numba
    loads pickles from passes `untrusted` (the rule for graphc's own cache): NUMBA_CACHE_DIR
    and graphc's cache are checked earlier too, but when numba cannot write one of them (or
    NUMBA_CACHE_DIR was refused) it falls back to __pycache__ or its user-wide cache
    (~/.cache/numba), which nothing checked. runtime/__pycache__ is exempt: Python loads this
    package's own bytecode from there, so whoever can write it runs code as the user anyway
    (a `pip install --user` or a checkout: the user's own)."""
    if folder == os.path.join(_HERE, "__pycache__"):
        return None
    try:
        real = os.path.realpath(folder)
        return untrusted(real)
    except OSError as exc:  # (numba made it: gone since)
        return f"cannot be checked ({exc.strerror or exc})"


def guard_module(namespace, depends=()) -> None:
    """_guard_cache(d, depends) for every numba dispatcher a module defines (`namespace`: its
    globals; dispatchers it imports keep their own module's key)."""
    from numba.core.dispatcher import Dispatcher
    for value in list(namespace.values()):
        if (isinstance(value, Dispatcher)
                and value.py_func.__module__ == namespace["__name__"]):
            _guard_cache(value, depends)


def _drop_damaged(cache, sig, target_context, exc) -> None:
    files = cache._cache_file
    try:
        index = files._load_index()
        name = index.get(cache._index_key(sig, target_context.codegen()))
        damaged = files._data_path(name) if name else files._index_path
    except Exception:
        damaged = files._index_path
    try:
        os.remove(damaged)
    except OSError:
        pass
    _warn_once(("damaged", damaged), f"graphc: dropped the damaged numba cache file "
               f"{damaged} ({type(exc).__name__}: {exc}); recompiling it")


def source_key(source: str) -> str:
    """The name of a generated kernel's module: a hash of its source."""
    return hashlib.sha1(source.encode()).hexdigest()[:20]


def load_generated(source: str):
    """The `kernel` function of a generated module, written once per distinct source (named
    by its hash, so equal kernels share one compilation, also across processes). Without a
    usable cache the module is compiled in memory, its kernel uncached."""
    key = source_key(source)
    if key in _LOADED:
        return _LOADED[key]
    name = f"graphc_kernel_{key}"
    directory = cache_dir()
    path = directory and os.path.join(directory, f"k_{key}.py")
    if path and not _holds(path, source):  # missing, or changed by something other than graphc
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(source)
            os.replace(tmp, path)  # atomic: a concurrent process sees all of it or nothing
        except OSError as exc:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
            cache_failed(path, exc)
            path = None
    if path:
        _make_numba_folder(directory)  # numba's folder for its files, before numba makes it
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        if "cache=True" not in source:
            raise RuntimeError("generated kernel source without cache=True")  # kernelgen's
        module = types.ModuleType(name)
        exec(compile(source.replace("cache=True", "cache=False"), f"<graphc kernel {key}>",
                     "exec"), module.__dict__)
    _guard_cache(module.kernel)
    _LOADED[key] = module.kernel
    return module.kernel


def _holds(path: str, source: str) -> bool:
    try:
        with open(path) as fh:
            return fh.read() == source
    except (OSError, UnicodeDecodeError):
        return False


def argument_spec(node, kinds, operand_types=None) -> tuple:
    """What a generated kernel is compiled for: the output's dtype, then each operand's kind,
    dtype and whether it is read-only (constants are read-only arrays, a distinct type for
    numba), and its layout where that is not C-ordered ('F' or 'A': a transposed or sliced
    view, also a distinct type). `operand_types`: (read_only, layout) per operand, as the
    plan passes it (runtime.layouts.operand_type); without it, constants are read-only and
    everything C-ordered."""
    from .op_lowering import is_constant
    if operand_types is None:
        operand_types = [(is_constant(i), "C") for i in node.inputs]
    return (node.dtype.name,) + tuple(
        (kind, i.dtype.name, read_only) + ((layout,) if layout != "C" else ())
        for i, kind, (read_only, layout) in zip(node.inputs, kinds, operand_types))


def _example_array(kind: str, dtype, read_only: bool, layout: str) -> np.ndarray:
    """A small array of a generated kernel's operand kind with this numba type (out: 2 x 2)."""
    if kind == "scalar":  # one element: contiguous whatever its strides
        a = np.zeros(1, dtype)
    elif kind in ("row", "col"):
        a = np.zeros(4, dtype)[::2] if layout == "A" else np.zeros(2, dtype)
    elif layout == "F":
        a = np.zeros((2, 2), dtype).T
    elif layout == "A":
        a = np.zeros((2, 4), dtype)[:, ::2]
    else:
        a = np.zeros((2, 2), dtype)
    a.setflags(write=not read_only)
    return a


def warm_generated(fn, spec) -> None:
    """Compile (or load from the disk cache) a generated kernel for `spec` before its first
    call."""
    quiet_blas_spinning()
    if (fn, spec) in _WARM:
        return
    # spec[0]: the result's dtype, or a tuple of them for a kernel with several results
    args = [np.zeros((2, 2), d) for d in (spec[0] if isinstance(spec[0], tuple) else
                                         (spec[0],))]
    for kind, dtype, read_only, *layout in spec[1:]:
        args.append(_example_array(kind, dtype, read_only, layout[0] if layout else "C"))
    with np.errstate(all="ignore"):
        fn(*args)
    _WARM.add((fn, spec))


def _guard_fixed_kernels() -> None:
    """The fixed kernels' numba cache: beside this file (runtime/__pycache__, as trusted as
    the code itself) or numba's user-wide cache, unless NUMBA_CACHE_DIR names another
    directory; that one holds the generated kernels' pickles too, so it must pass the same
    test as graphc's own cache (else numba's default places are used)."""
    if numba is None:
        return
    from numba.core.dispatcher import Dispatcher
    dispatchers = [v for v in globals().values() if isinstance(v, Dispatcher)]
    directory = numba.config.CACHE_DIR
    real = directory and os.path.isdir(directory) and os.path.realpath(directory)
    problem = real and untrusted(real)
    own = real and _numba_folder(_HERE, real)  # the pickles of runtime/'s kernels
    if not problem and own and os.path.lexists(own):  # as _resolve checks __pycache__
        inner = _not_private(os.lstat(own))
        problem = inner and f"has numba's folder {own}, which {inner}"
    if problem:
        _warn_once(("dir", directory), f"graphc: NUMBA_CACHE_DIR {directory} {problem}; "
                   "numba's default cache directories are used instead")
        numba.config.CACHE_DIR = ""
        _make_numba_folder(_HERE)  # numba's default one for runtime/, before it makes it
    elif real and real != directory:  # numba opens its files by the name that was checked
        numba.config.CACHE_DIR = real
    if numba.config.CACHE_DIR != directory:
        for d in dispatchers:
            d.enable_caching()  # locate the cache again, under the new CACHE_DIR
    for d in dispatchers:
        _guard_cache(d, _DEPENDS)  # the GELU constants


_guard_fixed_kernels()


if __name__ == "__main__":
    if enabled():
        warm_all()
