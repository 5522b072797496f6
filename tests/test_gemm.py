"""runtime.gemm: matrix products on numba's threads through numpy's BLAS, against np.matmul,
for the layouts plans produce (transposed and strided views, broadcast batches, read-only
constants) and the ones BLAS cannot read in place (the plan falls back to np.matmul)."""
import numpy as np
import pytest

import graphc as gc
from runtime import gemm, jit
from runtime.codegen import compile_graph

pytestmark = pytest.mark.skipif(not jit.enabled() or not gemm.available(),
                                reason="numba or numpy's OpenBLAS missing")

RNG = np.random.default_rng(7)


def _mm(a, b):
    """Through the kernels as a plan calls them; None where they decline."""
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    out = np.full(shape, np.nan, a.dtype)
    fn = gemm.blas().address(a.dtype)
    if out.ndim == 2:
        declined = gemm.matmul2d(fn, 2, a, b, out)
    else:
        pad = lambda x: x.reshape((1,) * (4 - x.ndim) + x.shape)
        declined = gemm.matmul4d(fn, 2, pad(a), pad(b), pad(out))
    return None if declined else out


def _r(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


LAYOUTS = {
    "contiguous": lambda dt: (_r(37, 19, dtype=dt), _r(19, 23, dtype=dt)),
    "large, split across threads": lambda dt: (_r(300, 64, dtype=dt), _r(64, 256, dtype=dt)),
    "wide, split by columns": lambda dt: (_r(64, 300, dtype=dt).T, _r(64, 700, dtype=dt)),
    "transposed a": lambda dt: (_r(19, 37, dtype=dt).T, _r(19, 23, dtype=dt)),
    "transposed b": lambda dt: (_r(37, 19, dtype=dt), _r(23, 19, dtype=dt).T),
    "row-strided": lambda dt: (_r(74, 19, dtype=dt)[::2], _r(19, 46, dtype=dt)[:, :23]),
    "one row": lambda dt: (_r(1, 19, dtype=dt), _r(19, 5, dtype=dt)),
    "attention heads": lambda dt: (
        _r(4, 8, 48, dtype=dt)[:, :, :16].reshape(4, 8, 2, 8).transpose(0, 2, 1, 3),
        _r(4, 8, 48, dtype=dt)[:, :, 16:32].reshape(4, 8, 2, 8).transpose(0, 2, 3, 1)),
    "broadcast batch": lambda dt: (_r(3, 1, 5, 4, dtype=dt), _r(6, 4, 7, dtype=dt)),
    "batch times matrix": lambda dt: (_r(5, 6, 4, dtype=dt), _r(2, 4, 3, dtype=dt)[1]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_kernels_equal_np_matmul(layout, dtype):
    a, b = LAYOUTS[layout](dtype)
    out = _mm(a, b)
    assert out is not None
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=tol, atol=tol)


def test_read_only_operands_need_no_copy():
    a, b = _r(8, 5), _r(5, 3)
    a.setflags(write=False)
    b.setflags(write=False)
    np.testing.assert_allclose(_mm(a, b), a @ b, rtol=1e-6)


@pytest.mark.parametrize("a, b", [
    (_r(8, 10)[:, ::2], _r(5, 3)),  # no unit stride: BLAS cannot read it
    (_r(0, 5), _r(5, 3)),  # empty
    (_r(4, 0), _r(0, 3)),  # zero-length sum: the plan's np.matmul writes zeros
])
def test_kernels_decline_what_blas_cannot_do(a, b):
    assert _mm(a, b) is None


def test_plans_use_the_kernels_and_fall_back_to_np_matmul():
    spec = gc.spec((6, 10))
    graph = gc.trace(lambda x, w: x[:, ::2] @ w, spec, gc.spec((5, 4)))
    plan = compile_graph(graph, jit=True)
    assert "_gemm.matmul2d(" in plan.source and "np.matmul(" in plan.source
    x, w = _r(6, 10), _r(5, 4)
    np.testing.assert_allclose(plan(x, w)[0], x[:, ::2] @ w, rtol=1e-5)


def test_attention_products_use_the_batched_kernel():
    # heads too large for runtime.tiles (a 160 x 160 result: more rows than its ROWS_MAX)
    spec = gc.spec((2, 3, 160, 4))
    graph = gc.trace(lambda q, k: q @ gc.transpose(k, (0, 1, 3, 2)), spec, spec)
    plan = compile_graph(graph, jit=True)
    assert "_gemm.matmul4d(" in plan.source and "_tile_products(" not in plan.source
    q, k = _r(2, 3, 160, 4), _r(2, 3, 160, 4)
    np.testing.assert_allclose(plan(q, k)[0], q @ k.transpose(0, 1, 3, 2), rtol=1e-5,
                               atol=1e-6)


def test_numpys_blas_is_single_threaded_inside_a_plan_and_restored_after():
    blas = gemm.blas()
    before = blas.threads()
    seen = []
    plan = compile_graph(gc.trace(lambda x: x @ x, gc.spec((4, 4))), jit=True)
    from runtime.codegen import _with_solo_blas
    probe = _with_solo_blas(lambda: seen.append(blas.threads()), blas)
    probe()
    assert seen == [1] and blas.threads() == before
    with pytest.raises(RuntimeError):
        _with_solo_blas(lambda: (_ for _ in ()).throw(RuntimeError("boom")), blas)()
    assert blas.threads() == before
    np.testing.assert_allclose(plan(np.eye(4, dtype=np.float32))[0], np.eye(4))
    assert blas.threads() == before


def test_head_merge_products_are_written_in_their_readers_layout():
    from runtime.lowering import products_laid_out_for_transpose

    def attention_out(p, v):  # (B, H, T, T) @ (B, H, T, d) -> (B, T, H * d)
        return gc.reshape(gc.transpose(p @ v, (0, 2, 1, 3)), (2, 8, 12)) * 2.0
    graph = gc.trace(attention_out, gc.spec((2, 3, 8, 8)), gc.spec((2, 3, 8, 4)))
    plan = compile_graph(graph, jit=True)
    laid_out = products_laid_out_for_transpose(plan.kernel_graph, plan.memory_plan)
    assert list(laid_out.values()) == [(0, 2, 1, 3)]
    product = next(iter(laid_out))
    buffer = plan._globals[plan._names[product]]
    assert buffer.transpose(0, 2, 1, 3).flags.c_contiguous  # the reshape is a view
    p, v = _r(2, 3, 8, 8), _r(2, 3, 8, 4)
    expected = (p @ v).transpose(0, 2, 1, 3).reshape(2, 8, 12) * 2.0
    np.testing.assert_allclose(plan(p, v)[0], expected, rtol=1e-5, atol=1e-6)


# weight-gradient shapes (X^T @ dY: a long K, a small result), odd sizes among them
K_SPLIT_SHAPES = [(64, 2048, 65), (1, 9000, 33), (3, 6007, 17), (17, 8193, 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", K_SPLIT_SHAPES)
@pytest.mark.parametrize("parts", [2, 3])
def test_long_k_products_are_cut_along_k_and_added_in_block_order(m, k, n, parts, dtype):
    a, b = _r(k, m, dtype=dtype).T, _r(k, n, dtype=dtype)  # a transposed, as X^T is
    assert gemm._splits_k(m, n, k, gemm._blocks(m, n, k, parts))
    fn = gemm.blas().address(dtype)
    out = np.full((m, n), np.nan, dtype)
    assert gemm.matmul2d(fn, parts, a, b, out) == 0
    # the blocks' partial products (each one BLAS call: threads=1), added left to right
    expected = None
    for p in range(parts):
        k0, k1 = k * p // parts, k * (p + 1) // parts
        part = np.empty((m, n), dtype)
        assert gemm.matmul2d(fn, 1, a[:, k0:k1], b[k0:k1], part) == 0
        expected = part if expected is None else expected + part
    np.testing.assert_array_equal(out, expected)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # float32: each partial rounds its own sum, as BLAS's blocking of K does anyway
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, exact, rtol=0, atol=tol * np.abs(exact).max() * 4)


def test_a_long_k_products_bits_do_not_depend_on_the_threads_running_it():
    import numba
    a, b = _r(2048, 64).T, _r(2048, 65)
    fn = gemm.blas().sgemm
    results = []
    before = numba.get_num_threads()
    try:
        for running in (1, min(2, numba.config.NUMBA_NUM_THREADS), 1):
            numba.set_num_threads(running)
            out = np.empty((64, 65), np.float32)
            gemm.matmul2d(fn, 2, a, b, out)  # two blocks, however many threads run them
            results.append(out)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_which_products_are_cut_along_k():
    # tiny's and small's weight gradients are (K = 2048 tokens); activations' products
    # (K = the model width) and medium's large weight gradients are not
    for m, k, n in [(64, 2048, 256), (256, 2048, 64), (64, 2048, 65), (128, 2048, 128)]:
        assert gemm._splits_k(m, n, k, 2)
    for m, k, n in [(2048, 64, 256), (128, 2048, 384), (384, 8192, 1536)]:
        assert not gemm._splits_k(m, n, k, 2)
    assert not gemm._splits_k(64, 65, 2048, 1)  # one block: nothing to cut
    # many blocks: the partials the calling thread adds would be too many
    assert gemm._splits_k(64, 256, 2048, 2) and not gemm._splits_k(64, 256, 2048, 16)
