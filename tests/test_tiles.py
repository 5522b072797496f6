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
    return tiles.kernel()(a, b, out)


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


def test_fits_bounds():
    rows, most = tiles.ROWS_MAX, tiles.PACK_MAX
    assert tiles.fits(rows, 8, 8) and not tiles.fits(rows + 1, 8, 8)
    assert tiles.fits(8, 8, rows) and not tiles.fits(8, 8, rows + 1)
    assert tiles.fits(8, most // 8, 8) and not tiles.fits(8, most // 8 + 1, 8)
    assert tiles.fits(16, 16, most // 16) and not tiles.fits(16, 16, most // 16 + 1)
    assert tiles.fits(most // 16, 16, 16) and not tiles.fits(most // 16 + 1, 16, 16)
    assert not tiles.fits(0, 4, 4) and not tiles.fits(4, 0, 4) and not tiles.fits(4, 4, 0)


@pytest.mark.parametrize("shape", [(1, 1, 4, 129, 8), (1, 1, 8, 8, 129), (1, 1, 129, 4, 4),
                                   (1, 2, 4, 0, 4)])
def test_products_that_do_not_fit_are_refused_untouched(shape):
    # the stack copy of b holds PACK_MAX elements: the kernel checks, not only the lowering
    p, q, m, k, n = shape
    a, b = np.ones((p, q, m, k), np.float32), np.ones((p, q, k, n), np.float32)
    out = np.full((p, q, m, n), 7.0, np.float32)
    assert not tiles.fits(m, k, n)
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
