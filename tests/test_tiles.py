"""runtime.tiles: batched products of small matrices on a register tile, against float64
numpy on random inputs (odd sizes, both dtypes, broadcast batch axes, every layout the plan
hands it), and in plans against the interpreter."""
import numba
import numpy as np
import pytest

import graphc as gc
from passes.autodiff import gradients
from runtime import tiles
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

TOLERANCE = {np.float32: 2e-6, np.float64: 1e-14}


def _products(a, b, out):
    return tiles.kernel()(a, b, out, 0)


def _assert_product(out, a, b):
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    # a dot product's rounding: relative to the sum of the terms' magnitudes
    scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    assert np.all(np.abs(out - want) <= TOLERANCE[out.dtype.type] * (scale + 1e-30))


SHAPES = [(64, 4, 32, 16, 32), (64, 4, 32, 32, 16), (3, 4, 16, 64, 16), (2, 3, 5, 7, 9),
          (1, 1, 1, 1, 1), (2, 2, 33, 17, 19), (1, 2, 13, 3, 40), (2, 1, 128, 2, 8),
          (1, 1, 1, 1024, 1), (2, 2, 4, 1, 17), (1, 1, 128, 8, 128)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_products_match_float64_numpy(shape, dtype):
    p, q, m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal((p, q, m, k)).astype(dtype)
    b = rng.standard_normal((p, q, k, n)).astype(dtype)
    out = np.full((p, q, m, n), np.nan, dtype)
    assert _products(a, b, out) == 0
    _assert_product(out, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["b transposed", "a transposed", "a broadcast",
                                    "b broadcast", "out column-major", "out a head's slice"])
def test_the_layouts_a_plan_hands_it(layout, dtype):
    p, q, m, k, n = 3, 4, 21, 13, 27
    rng = np.random.default_rng(len(layout))
    a = rng.standard_normal((p, q, m, k)).astype(dtype)
    b = rng.standard_normal((p, q, k, n)).astype(dtype)
    out = np.full((p, q, m, n), np.nan, dtype)
    whole = None
    if layout == "b transposed":  # K^T: a transposed view of a row-major K
        b = np.ascontiguousarray(b.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    elif layout == "a transposed":
        a = np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    elif layout == "a broadcast":
        a = a[:1, :, :, :]
    elif layout == "b broadcast":
        b = b[:, :1]
    elif layout == "out column-major":  # written as out.T = b.T @ a.T
        out = np.full((p, q, n, m), np.nan, dtype).transpose(0, 1, 3, 2)
    else:  # rows of a (p, m, q, n + 3) buffer: a row stride that is not n
        whole = np.full((p, m, q, n + 3), np.nan, dtype)
        out = whole[..., 1:n + 1].transpose(0, 2, 1, 3)
    assert _products(a, b, out) == 0
    _assert_product(out, a, b)
    if whole is not None:  # nothing written outside the slice
        assert np.isnan(whole[..., 0]).all() and np.isnan(whole[..., n + 1:]).all()


def test_an_out_it_cannot_write_is_refused_untouched():
    a, b = np.ones((1, 1, 4, 3), np.float32), np.ones((1, 1, 3, 5), np.float32)
    out = np.full((1, 1, 4, 10), 7.0, np.float32)[..., ::2]  # columns 8 bytes apart
    assert _products(a, b, out) == 1
    assert (out == 7.0).all()


def test_non_finite_values_propagate_as_in_a_dot_product():
    a = np.ones((1, 2, 5, 6), np.float32)
    b = np.ones((1, 2, 6, 18), np.float32)
    a[0, 0, 2, 3] = np.nan
    b[0, 1, 4, 17] = np.inf
    out = np.zeros((1, 2, 5, 18), np.float32)
    assert _products(a, b, out) == 0
    np.testing.assert_array_equal(out, np.matmul(a, b))  # NaN row, inf column, 6 elsewhere


def test_the_bits_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((16, 4, 32, 16)).astype(np.float32)
    b = rng.standard_normal((16, 4, 16, 32)).astype(np.float32)
    outs = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            out = np.empty((16, 4, 32, 32), np.float32)
            _products(a, b, out)
            outs.append(out)
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs)


@pytest.mark.parametrize("limit", ["default", "causal"])
def test_fits_bounds(limit):
    # the lowering's bound on b (and a.T): PLAIN_MAX, or the kernel's PACK_MAX for a causal
    # product (the tiles skip its zero triangle)
    rows = tiles.ROWS_MAX
    most = tiles.PLAIN_MAX if limit == "default" else tiles.PACK_MAX
    if limit == "causal":
        def fits(m, k, n, fits=tiles.fits):
            return fits(m, k, n, tiles.PACK_MAX)
    else:
        fits = tiles.fits
    assert fits(rows, 8, 8) and not fits(rows + 1, 8, 8)
    assert fits(8, 8, rows) and not fits(8, 8, rows + 1)
    assert fits(8, most // 8, 8) and not fits(8, most // 8 + 1, 8)
    assert fits(32, 32, most // 32) and not fits(32, 32, most // 32 + 1)
    assert fits(most // 32, 32, 32) and not fits(most // 32 + 1, 32, 32)
    assert not fits(0, 4, 4) and not fits(4, 0, 4) and not fits(4, 4, 0)


@pytest.mark.parametrize("shape", [(1, 1, 4, 513, 8), (1, 1, 8, 8, 129), (1, 1, 129, 4, 4),
                                   (1, 2, 4, 0, 4)])
def test_products_that_do_not_fit_are_refused_untouched(shape):
    # the stack copy of b holds PACK_MAX elements: the kernel checks, not only the lowering
    p, q, m, k, n = shape
    a, b = np.ones((p, q, m, k), np.float32), np.ones((p, q, k, n), np.float32)
    out = np.full((p, q, m, n), 7.0, np.float32)
    assert not tiles.fits(m, k, n, tiles.PACK_MAX)
    assert _products(a, b, out) == 1 and (out == 7.0).all()
    column_major = np.full((p, q, n, m), 7.0, np.float32).transpose(0, 1, 3, 2)
    assert _products(a, b, column_major) == 1 and (column_major == 7.0).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_attention_in_a_plan_uses_the_tiles_and_matches_the_interpreter(dtype):
    def attention(q, k, v):
        scores = gc.softmax(q @ gc.transpose(k, (0, 1, 3, 2)) * 0.25, axis=-1)
        return gc.sum(scores @ v * v)
    spec = gc.spec((3, 2, 24, 16), dtype)
    graph = gc.trace(attention, spec, spec, spec)
    graph.set_outputs([graph.outputs[0]] + gradients([graph.outputs[0]], graph.inputs))
    plan = compile_graph(graph, jit=True, background_compile=False)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((3, 2, 24, 16)).astype(dtype) for _ in range(3)]
    assert plan.source.count("_tile_products(") >= 4
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


def test_a_product_with_a_matrix_operand_stays_one_gemm():
    # (..., m, k) @ (k, n): one product over the flattened rows, not many small ones
    graph = gc.trace(lambda x, w: x @ w, gc.spec((4, 8, 16)), gc.spec((16, 16)))
    plan = compile_graph(graph, jit=True)
    assert "_tile_products(" not in plan.source and "_gemm.matmul2d(" in plan.source


@pytest.mark.parametrize("shapes", [((1, 1, 4, 3), (1, 1, 5, 6), (1, 1, 4, 6)),  # inner dims
                                    ((1, 1, 4, 3), (1, 1, 3, 6), (1, 1, 5, 6)),  # rows
                                    ((1, 1, 4, 3), (1, 1, 3, 6), (1, 1, 4, 7)),  # columns
                                    ((3, 1, 4, 3), (1, 1, 3, 6), (2, 1, 4, 6)),  # batch
                                    ((1, 1, 4, 3), (1, 2, 3, 6), (1, 3, 4, 6))])
def test_shapes_that_do_not_make_out_are_refused_untouched(shapes):
    # a planner's mistake must not read or write past the arrays: the kernel refuses it
    a, b = (np.ones(s, np.float32) for s in shapes[:2])
    out = np.full(shapes[2], 7.0, np.float32)
    assert _products(a, b, out) == 1 and (out == 7.0).all()


# ---- causal modes: the tiles sum only what runtime.causal says may be nonzero -------------
def _triangular(rng, shape, dtype, lower):
    x = rng.standard_normal(shape).astype(dtype)
    return np.tril(x) if lower else np.triu(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T, d", [(32, 16), (64, 32), (37, 9), (5, 3), (17, 40)])
@pytest.mark.parametrize("column_major", [False, True])
def test_causal_modes_match_the_full_product_where_it_is_live(dtype, T, d, column_major):
    """Each mode against float64 numpy: a triangular a or b (zero above or below the
    diagonal: the tiles skip those terms) must give the full product everywhere; a dead
    result (its triangle above or below the diagonal unused) must give it on the live side
    and finite values (zeros or the product) on the other. A column-major result is
    computed as its transpose, whose mode is the swapped one."""
    from runtime import causal as C
    rng = np.random.default_rng(T * 100 + d)
    p, q = 2, 3
    square = (p, q, T, T)
    operands = {
        C.A_LOWER: (_triangular(rng, square, dtype, True), rng.standard_normal((p, q, T, d))),
        C.A_UPPER: (_triangular(rng, square, dtype, False), rng.standard_normal((p, q, T, d))),
        C.B_LOWER: (rng.standard_normal((p, q, d, T)), _triangular(rng, square, dtype, True)),
        C.B_UPPER: (rng.standard_normal((p, q, d, T)), _triangular(rng, square, dtype, False)),
        C.DEAD_ABOVE: (rng.standard_normal((p, q, T, d)), rng.standard_normal((p, q, d, T))),
        C.DEAD_BELOW: (rng.standard_normal((p, q, T, d)), rng.standard_normal((p, q, d, T))),
    }
    for mode, (a, b) in operands.items():
        a, b = a.astype(dtype), b.astype(dtype)
        m, n = a.shape[2], b.shape[3]
        out = (np.full((p, q, n, m), np.nan, dtype).transpose(0, 1, 3, 2) if column_major
               else np.full((p, q, m, n), np.nan, dtype))
        assert tiles.kernel()(a, b, out, mode) == 0
        assert np.isfinite(out).all(), C.MODES[mode]
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
        scale = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
        live = np.ones((m, n), bool)
        if mode == C.DEAD_ABOVE:
            live = np.tri(m, n, dtype=bool)
        elif mode == C.DEAD_BELOW:
            live = np.tri(m, n, dtype=bool).T | np.eye(m, n, dtype=bool)
        error = np.abs(out - want) <= TOLERANCE[dtype] * (scale + 1e-30)
        assert error[..., live].all(), C.MODES[mode]
        dead = ~live
        assert (error[..., dead] | (out[..., dead] == 0)).all(), C.MODES[mode]


def test_a_causal_mode_skips_the_zero_triangle_s_terms():
    # the skipped terms are really skipped: where the zero triangle holds NaN instead (a
    # value the analysis proves zero), the lower-triangular rows never read it
    from runtime import causal as C
    rng = np.random.default_rng(0)
    a = np.tril(rng.standard_normal((1, 2, 32, 32))).astype(np.float32)
    a[np.triu(np.ones((32, 32), bool), 8)[None, None].repeat(2, 1)] = np.nan
    b = rng.standard_normal((1, 2, 32, 16)).astype(np.float32)
    out = np.empty((1, 2, 32, 16), np.float32)
    assert tiles.kernel()(a, b, out, C.A_LOWER) == 0
    # rows whose 4-row tile ends at or before the NaN columns (k >= row + 8) stay finite
    assert np.isfinite(out[:, :, :8]).all()
    assert tiles.kernel()(a, b, out, 0) == 0 and np.isnan(out[:, :, :8]).any()


@pytest.mark.parametrize("config, T", [("tiny", 32), ("small", 64)])
def test_gpt_attention_products_take_the_tiles_with_their_causal_modes(config, T):
    # every attention product of the GPT step is causal (runtime.causal): the tiles take
    # tiny's and small's heads and skip their zero or dead triangles; the step's loss and
    # gradients match the interpreter (float64) and the plan with BLAS's full products
    from gpt_graphs import gpt_step
    from runtime import causal
    graph, inputs = gpt_step("float64", 2, seed=5, config=config, block_size=T, n_layer=1)
    plan = compile_graph(graph, jit=True, background_compile=False)
    kernels = plan.lowered.kernels
    tiled = [n for n in kernels.graph.nodes if kernels.choice[n].kind == "tiles"]
    assert len(tiled) == 6 and set(kernels.tile_modes) == set(tiled)
    assert plan.source.count("_tile_products(") == 6
    original = causal.causal_products
    try:
        causal.causal_products = lambda graph: {}
        full = compile_graph(graph, jit=True, background_compile=False)
    finally:
        causal.causal_products = original
    if config == "small":  # without a causal mode, small's heads stay on BLAS
        assert "_tile_products(" not in full.source
    got, base, want = plan(*inputs), full(*inputs), evaluate(graph, inputs)
    for g, b, w in zip(got, base, want):
        scale = np.abs(w).max() + 1e-30
        assert np.abs(g - w).max() <= 1e-11 * scale
        assert np.abs(g - b).max() <= 1e-11 * scale
