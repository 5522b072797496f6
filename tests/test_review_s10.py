"""Review of session 10's causal register tiles (runtime.tiles' modes from runtime.causal)."""
import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F
from passes.manager import optimize
from runtime import causal as C
from runtime import gemm, jit, tiles
from runtime.codegen import compile_graph

pytestmark = pytest.mark.skipif(not jit.enabled() or not gemm.available(),
                                reason="numba or numpy's OpenBLAS missing")


def _attention(T, d, dtype="float32"):
    """Causal attention's forward, (2, 3) heads: S = q @ k^T (dead above its diagonal), then
    P @ V (P zero above its diagonal)."""
    def f(q, k, v):
        s = F.masked_fill(q @ F.swapaxes(k, -1, -2), ~F.tril_mask(T), float("-inf"))
        return F.softmax(s, axis=-1) @ v
    spec = gc.spec((2, 3, T, d), dtype)
    return optimize(gc.trace(f, spec, spec, spec))


def _dims(text):  # "f32[2,3,32,16]" -> [2, 3, 32, 16]
    return [int(x) for x in text[text.index("[") + 1:text.index("]")].split(",")]


def test_the_profile_rates_a_causal_tile_product_by_the_work_it_does():
    """graphc profile rated the tiles' causal products by the full square's multiply-adds
    (1.3-1.9x too fast), as it did banded ones before session 10's fix of those. Tiny's heads
    (T = 32, d = 16, float32: tiles of 4 rows x 16 columns): S's tiles of columns 16-31 in
    rows 0-15 are dead, 4 of 16 (0.75 done); P @ V's row tile r sums K up to r + 4:
    (4 + 8 + ... + 32) / (8 x 32) = 0.5625."""
    graph = _attention(32, 16)
    plan = compile_graph(graph, jit=True, background_compile=False)
    modes = plan.lowered.kernels.tile_modes
    assert sorted(modes.values()) == [C.A_LOWER, C.DEAD_ABOVE]
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 3, 32, 16)).astype(np.float32) for _ in range(3)]
    rows = [r for r in plan.profile(*inputs, repeat=1, file=False)
            if r["op"] == "matmul" and r["type"].count(",") == 3]
    assert len(rows) == 2
    for row in rows:
        full = 2 * np.prod(_dims(row["type"])) * _dims(row["operands"].split(", f")[0])[-1]
        share = 0.75 if _dims(row["type"])[-1] == 32 else 0.5625
        assert row["gflops"] == pytest.approx(share * full / (row["ms"] / 1e3) / 1e9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, d", [(32, 16), (64, 32), (17, 5), (1, 1), (9, 40)])
def test_work_share_counts_the_multiply_adds_the_kernel_does(dtype, T, d):
    """tiles.work_share against a count element by element: each result element of a full
    tile (ROWS rows x two vectors) or of a row past the last full tile sums live_k's terms of
    its tile, one in the last columns (fewer than a vector's lanes) all of K; a column-major
    result is computed as its transpose, in the swapped mode."""
    item = np.dtype(dtype).itemsize
    lanes = tiles.VECTOR_BYTES // item
    shapes = {C.A_LOWER: (T, T, d), C.A_UPPER: (T, T, d), C.B_LOWER: (d, T, T),
              C.B_UPPER: (d, T, T), C.DEAD_ABOVE: (T, d, T), C.DEAD_BELOW: (T, d, T)}
    for mode, (m, k, n) in shapes.items():
        for transposed in (False, True):
            mm, nn, mo = (n, m, C.swapped_mode.py_func(mode)) if transposed else (m, n, mode)
            done = 0
            narrow = nn - nn % lanes
            for r in range(mm):
                r0 = r - r % tiles.ROWS if r < mm - mm % tiles.ROWS else r
                r1 = r0 + tiles.ROWS if r < mm - mm % tiles.ROWS else r + 1
                for c in range(nn):
                    if c >= narrow:
                        done += k
                        continue
                    c0 = c - c % (2 * lanes)
                    c1 = min(c0 + 2 * lanes, narrow)
                    k0, k1 = C.live_k.py_func(mo, r0, r1, c0, c1, k)
                    done += max(k1 - k0, 0)
            assert tiles.work_share(m, k, n, mode, item, transposed) == \
                pytest.approx(done / (m * k * n)), (C.MODES[mode], transposed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_inf_in_v_reaches_the_rows_the_tiles_docstring_says(dtype):
    """The tiles skip P's zero triangle; an Inf in V (row 10, T = 16) then reaches only the
    rows whose live terms include it (the 4-row tile of rows 8-11 sums K up to 12, float32
    and float64 alike), and every other row is the interpreter's value with that V entry
    zeroed (the full product would make them NaN: 0 * Inf)."""
    from runtime.interpreter import evaluate
    graph = _attention(16, 8, dtype)
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert C.A_LOWER in plan.lowered.kernels.tile_modes.values()
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 3, 16, 8)).astype(dtype) for _ in range(3))
    clean = v.copy()
    v[0, 0, 10, 3] = np.inf
    (got,), (full,), (want,) = plan(q, k, v), evaluate(graph, [q, k, v]), \
        evaluate(graph, [q, k, clean])
    assert not np.isfinite(full[0, 0, :, 3]).any()
    assert np.flatnonzero(~np.isfinite(got[0, 0, :, 3])).tolist() == list(range(8, 16))
    finite = np.isfinite(got)
    assert finite.sum() == got.size - 8
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol)


def test_the_profile_rates_a_column_major_tile_product_as_its_transpose():
    """dK^T = Q^T @ dS written into its (column-major) slice of the qkv gradient's concat is
    computed as dK = dS^T @ Q in tiles of dK's rows: tiny's heads, 0.5625 of the square (its
    row-major orientation would do 0.75)."""
    from gpt_graphs import gpt_step
    from runtime import instrument
    graph, _ = gpt_step("float32", 4)
    plan = compile_graph(graph, jit=True, background_compile=False)
    kernels = plan.lowered.kernels
    (dkt,) = [n for n, mode in kernels.tile_modes.items()
              if mode == C.B_LOWER and n in kernels.parts]
    dst = plan._globals[plan.lowered.rendered.names[dkt]]
    assert dst.strides[-2] == dst.itemsize  # column-major matrices
    assert tiles.work_share(16, 32, 32, C.B_LOWER, 4) == 0.75
    assert instrument._tile_share(plan, dkt, C.B_LOWER) == 0.5625
