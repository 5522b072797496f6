"""runtime.reductions' sum of squares and the plans that use it (the global gradient norm of
graphc.optim), against float64 numpy and the interpreter, on odd sizes, non-contiguous
operands, float32 and float64; its bits do not depend on the number of threads."""
import numba
import numpy as np
import pytest

import graphc as gc
from graphc import optim
from graphc.models.gpt import GPT, GPTConfig
from ir.ops.registry import apply
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")

# sizes around the kernel's lanes (256), blocks (16384) and its parallel threshold (2M)
SIZES = [0, 1, 7, 255, 256, 257, 16383, 16385 + (1 << 21)]


def _reductions():
    from runtime import reductions
    return reductions


def _float64_squares(arrays):
    return sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in arrays)


def _with_threads(n, fn):
    saved = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_squares_kernel_equals_float64_numpy_and_ignores_the_thread_count(dtype):
    R = _reductions()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n).astype(dtype) for n in SIZES[:R.WIDTH]]
    frozen = arrays[2].copy()
    frozen.setflags(write=False)  # plan constants are read-only arrays
    arrays[2] = frozen
    got = _with_threads(1, lambda: R.sum_squares(tuple(arrays)))
    assert got == _with_threads(2, lambda: R.sum_squares(tuple(arrays)))
    # float64 sums of exact squares: only the order of ~100k additions differs
    assert got == pytest.approx(_float64_squares(arrays), rel=1e-13)
    empty = tuple([R.EMPTY[dtype]] * R.WIDTH)
    assert R.sum_squares(empty) == 0.0


def _clip_graph(shapes, dtype, transposed=()):
    specs = [gc.spec(s, dtype) for s in shapes]

    def clip(*grads):
        grads = [g.T if k in transposed else g for k, g in enumerate(grads)]
        clipped, norm = optim.clip_by_global_norm(list(grads), 1.0)
        return [norm, *clipped]
    return gc.trace(clip, *specs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_compiled_global_norm_is_one_kernel_per_eight_arrays_and_equals_numpy(dtype):
    """19 gradients (three kernel calls, the last padded), odd sizes, a 1-element and a
    transposed (non-contiguous) one: the norm equals float64 numpy's within one rounding of
    the dtype, and no g*g or per-array sum is left in the plan."""
    shapes = [(5, 7), (13,), (1,), (64, 33), (33, 64)] * 3 + [(257,), (3, 1), (1, 9), (40,)]
    graph = _clip_graph(shapes, dtype, transposed={4})
    plan = compile_graph(graph, jit=True)
    ops = [n.op for n in plan.kernel_graph.nodes]
    assert ops.count("sum_squares") == 1 and "sum" not in ops and "mul" not in ops[:-19]
    assert plan.source.count("_reductions.sum_squares(") == 3
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    got = plan(*grads)
    arrays = [g.T if k == 4 else g for k, g in enumerate(grads)]
    exact = np.sqrt(_float64_squares(arrays))
    assert got[0].dtype == dtype
    assert abs(float(got[0]) - exact) <= 2 * np.finfo(dtype).eps * exact
    factor = 1.0 / (exact + 1e-6)
    for g, c in zip(arrays, got[1:]):
        np.testing.assert_allclose(c, g * factor, rtol=4 * np.finfo(dtype).eps)
    # the interpreter runs the op's numpy definition: the same norm up to the order of sums
    np.testing.assert_allclose(run(graph, *grads)[0], got[0], rtol=2 * np.finfo(dtype).eps)


def test_global_norm_of_mixed_dtypes_meets_in_float64():
    graph = gc.trace(lambda a, b, c: optim.global_norm([a, b, c]), gc.spec((300,), "float32"),
                     gc.spec((7, 3), "float64"), gc.spec((2,), "float32"))
    assert [n.op for n in graph.nodes].count("sum_squares") == 2
    rng = np.random.default_rng(2)
    a, b, c = (rng.standard_normal(s).astype(t) for s, t in
               (((300,), "float32"), ((7, 3), "float64"), ((2,), "float32")))
    got = compile_graph(graph, jit=True)(a, b, c)[0]
    assert got.dtype == np.float64
    assert got == pytest.approx(np.sqrt(_float64_squares([a, b, c])), rel=1e-7)


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-6), ("float64", 1e-13)])
def test_the_tiny_gpts_clipped_gradients_equal_the_interpreter(dtype, tol):
    """The whole GPT gradient and its global-norm clipping in one compiled plan against the
    interpreter."""
    cfg = GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=24, block_size=9, batch_size=3,
                    dtype=dtype)
    model = GPT(cfg, seed=5)
    params = model.params()

    def step(p, idx, targets):
        loss, grads = gc.value_and_grad(lambda q: model.apply(q, idx, targets))(p)
        clipped, norm = optim.clip_by_global_norm(grads, 0.5)
        return loss, norm, clipped

    rng = np.random.default_rng(6)
    idx = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    tgt = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    graph = gc.trace(step, params, idx, tgt)
    plan = compile_graph(graph, jit=True)
    assert "_reductions.sum_squares(" in plan.source
    leaves = gc.tracing.flatten((params, idx, tgt))[0]
    want = run(graph, *leaves)
    got = plan(*leaves)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * np.max(np.abs(w)))


def test_sum_squares_has_the_gradient_2x_and_one_dtype():
    x, y = np.arange(3.0), np.ones((2, 2))
    gx, gy = gc.grad(lambda a, b: apply("sum_squares", a, b), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, 2 * x)
    np.testing.assert_array_equal(gy, 2 * y)
    with pytest.raises(gc.GraphcError, match="one dtype"):
        gc.trace(lambda a, b: apply("sum_squares", a, b), gc.spec((2,), "float32"),
                 gc.spec((2,), "float64"))
