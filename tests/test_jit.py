"""runtime.jit's numba kernels against the numpy emitters of runtime.emitters (the same plan
compiled with jit=False), on large, odd-shaped, non-contiguous and non-finite inputs."""
import os

import numpy as np
import pytest

import graphc as gc
from ir import settings
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")

CASES = {
    "gelu": lambda x, w, g: gc.gelu(x),
    "gelu_grad": lambda x, w, g: gc.gelu_grad(x, g),
    "layer_norm": lambda x, w, g: gc.layer_norm(x, w, w * 0.5, 1e-5),
    "layer_norm_grad": lambda x, w, g: gc.layer_norm_grad(x, w, g, 1e-5),
    "layer_norm_wgrad": lambda x, w, g: gc.layer_norm_wgrad(x, g, 1e-5),
    "softmax": lambda x, w, g: gc.softmax(x, x.ndim - 1),
    "log_softmax": lambda x, w, g: gc.log_softmax(x),
    "softmax_grad": lambda x, w, g: gc.softmax_grad(gc.softmax(x, x.ndim - 1), g, x.ndim - 1),
    # a transposed (non-contiguous) operand
    "gelu_of_transpose": lambda x, w, g: gc.gelu(gc.transpose(x, (1, 0, 2))),
}


def _inputs(shape, dtype, rng, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    w = rng.uniform(0.5, 1.5, shape[-1]).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_jit_kernels_equal_numpy_kernels(case, dtype):
    rng = np.random.default_rng(0)
    shape = (3, 37, 129)  # odd sizes: no vector lane or row split divides them
    x, w, g = _inputs(shape, dtype, rng)
    graph = gc.trace(CASES[case], gc.spec(shape, dtype), gc.spec(shape[-1:], dtype),
                     gc.spec(shape, dtype))
    with_jit, without = compile_graph(graph, jit=True), compile_graph(graph, jit=False)
    assert "_jit." in with_jit.source and "_jit." not in without.source
    tol = 2e-5 if dtype == "float32" else 1e-12
    (got,), (expected,) = with_jit(x, w, g), without(x, w, g)
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(got, run(graph, x, w, g)[0], rtol=tol, atol=tol)


def test_float32_gelu_and_its_gradient_are_accurate_over_the_whole_range():
    """The rational tanh against float64, and numpy's float32 evaluation for scale."""
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    g = np.ones_like(x)
    x64 = x.astype(np.float64)
    t = np.tanh(0.7978845608028654 * (x64 + 0.044715 * x64 ** 3))
    exact = {"gelu": 0.5 * x64 * (1 + t),
             "gelu_grad": 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) *
             0.7978845608028654 * (1 + 3 * 0.044715 * x64 ** 2)}
    for op, fn in (("gelu", lambda x, g: gc.gelu(x)), ("gelu_grad", gc.gelu_grad)):
        graph = gc.trace(fn, gc.spec(x.shape), gc.spec(x.shape))
        scale = np.maximum(np.abs(exact[op]), 1.0)
        for jit_on in (True, False):
            got = compile_graph(graph, jit=jit_on)(x, g)[0].astype(np.float64)
            # measured: numba 4.2e-6, numpy 1.2e-6 (both at the edge of saturation)
            assert np.max(np.abs(got - exact[op]) / scale) < 5e-6, (op, jit_on)


@pytest.mark.parametrize("op", ["gelu", "gelu_grad", "layer_norm", "softmax"])
def test_non_finite_values_propagate_through_jit_kernels(op):
    """Fast-math must not optimise NaN and Inf away: the NaN guard relies on seeing them."""
    x, w, g = _inputs((4, 8), "float32", np.random.default_rng(1))
    x[1, 3] = np.nan
    x[2, 5] = np.inf
    graph = gc.trace(CASES[op], gc.spec((4, 8)), gc.spec((8,)), gc.spec((4, 8)))
    got = compile_graph(graph, jit=True)(x, w, g)[0]
    expected = compile_graph(graph, jit=False)(x, w, g)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))


def test_nan_guard_names_a_jit_kernel():
    graph = gc.trace(lambda x: gc.layer_norm(x), gc.spec((64, 64)))
    plan = compile_graph(graph, check_finite=True, jit=True)
    assert "_jit.layer_norm" in plan.source
    x = np.ones((64, 64), np.float32)
    x[3, 4] = np.inf
    with pytest.raises(gc.GraphcError, match=r"layer_norm[\s\S]*test_jit.py"):
        plan(x)


def test_without_runtime_gemm_batched_matmul_runs_as_two_halves(monkeypatch):
    from runtime import gemm
    monkeypatch.setattr(gemm, "available", lambda: False)
    spec = gc.spec((8, 4, 64, 32))
    graph = gc.trace(lambda q, k: q @ gc.transpose(k, (0, 1, 3, 2)), spec, spec)
    plan = compile_graph(graph, jit=True)
    assert "_gemm" not in plan.source
    assert "_submit(" in plan.source and "_half.result()" in plan.source
    rng = np.random.default_rng(2)
    q, k = (rng.standard_normal((8, 4, 64, 32)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(plan(q, k)[0], q @ k.transpose(0, 1, 3, 2), rtol=1e-5,
                               atol=1e-5)


def test_jit_plans_need_no_workspace():
    spec = gc.spec((16, 32))
    graph = gc.trace(lambda x, g: gc.gelu_grad(x, g), spec, spec)
    assert compile_graph(graph, jit=True).memory["workspace"] == 0
    assert compile_graph(graph, jit=False).memory["workspace"] == 2 * 16 * 32 * 4


def test_building_a_jit_plan_quiets_idle_blas_threads():
    compile_graph(gc.trace(gc.gelu, gc.spec((4,))), jit=True)
    if settings.BLAS_TUNE.get():
        assert os.environ["OPENBLAS_THREAD_TIMEOUT"]
        assert os.environ.get("OMP_WAIT_POLICY") or os.environ["GOMP_SPINCOUNT"]


def test_float32_exp_is_accurate_and_keeps_numpys_special_values():
    x = np.linspace(-87, 88.7, 400_001, dtype=np.float32)
    graph = gc.trace(lambda a, b: gc.exp(a) * b, gc.spec(x.shape), gc.spec(x.shape))
    got = compile_graph(graph, jit=True)(x, np.ones_like(x))[0]
    assert "_fused_" in compile_graph(graph, jit=True).source  # the fused kernel's exp
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 5e-7  # measured 3.0e-7; numpy 2.0e-7
    special = np.array([np.nan, np.inf, -np.inf, 0.0, 89.0, -100.0] + [1.0] * 58, np.float32)
    graph = gc.trace(lambda a, b: gc.exp(a) * b, gc.spec((64,)), gc.spec((64,)))
    with np.errstate(all="ignore"):
        got = compile_graph(graph, jit=True)(special, np.ones(64, np.float32))[0]
    # exp(-100) is subnormal in float32 (3.78e-44): kept, as numpy keeps it (issue 13, 16)
    np.testing.assert_array_equal(got[:6], [np.nan, np.inf, 0.0, 1.0, np.inf,
                                            np.exp(np.float32(-100.0))])


def test_float32_tanh_is_accurate():
    x = np.linspace(-10, 10, 400_001, dtype=np.float32)
    graph = gc.trace(lambda a, b: gc.tanh(a) * b, gc.spec(x.shape), gc.spec(x.shape))
    got = compile_graph(graph, jit=True)(x, np.ones_like(x))[0]
    exact = np.tanh(x.astype(np.float64))
    nonzero = exact != 0
    # measured 2.7e-7; numpy's float32 tanh 1.1e-7
    assert np.max(np.abs(got - exact)[nonzero] / np.abs(exact[nonzero])) < 5e-7


def test_every_jit_emitter_names_a_fixed_kernel_that_warms():
    from runtime.op_lowering import LOWERINGS
    JIT_EMITTERS = {op for op, r in LOWERINGS.items() if r.jit_emit is not None}
    JIT_KERNELS = {op: r.jit_kernel for op, r in LOWERINGS.items() if r.jit_kernel is not None}
    assert set(JIT_KERNELS) == set(JIT_EMITTERS)
    assert set(JIT_KERNELS.values()) == set(jit.FIXED_KERNELS)
    for kernel in jit.FIXED_KERNELS:
        jit.warm(kernel, "float64")


@pytest.mark.parametrize("shape", [(1, 67), (3, 37), (17, 33), (5, 129), (64, 250)])
def test_float32_exp_and_softmax_kernels_equal_numpy_on_odd_and_transposed_inputs(shape):
    """The float32 exp (2**k from its exponent bits) in a fused kernel and in the fixed
    softmax kernel, against numpy, on odd sizes (vector loop remainders) and on a transposed
    operand; inputs span exp's whole range, subnormal and overflowing results included."""
    rng = np.random.default_rng(sum(shape))
    x = rng.uniform(-110.0, 90.0, shape).astype(np.float32)
    x.flat[::5] = rng.standard_normal(x.flat[::5].shape)  # and many ordinary values
    xt = np.ascontiguousarray(x.T)
    graph = gc.trace(lambda a, b: gc.exp(gc.transpose(a, (1, 0))) * b, gc.spec(xt.shape),
                     gc.spec(shape))
    plan = compile_graph(graph, jit=True)
    assert "_fused_" in plan.source  # fused kernels at least 64 elements large
    with np.errstate(all="ignore"):
        got, want = plan(xt, np.ones(shape, np.float32))[0], np.exp(x)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got == 0, want == 0)
    finite = np.isfinite(want) & (want > 0)
    ulps = np.abs(got[finite].view(np.int32).astype(np.int64)
                  - want[finite].view(np.int32).astype(np.int64))
    assert ulps.max(initial=0) <= 4  # the documented bound (tests/test_fpsemantics.py)

    y = (rng.standard_normal(shape) * 20).astype(np.float32)
    graph = gc.trace(lambda a: gc.softmax(gc.transpose(a, (1, 0)), 1), gc.spec(y.T.shape))
    plan = compile_graph(graph, jit=True)
    assert "_jit.softmax" in plan.source or "_fused_" in plan.source
    got = plan(np.ascontiguousarray(y.T))[0]
    e = np.exp(y.astype(np.float64) - y.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 13), (1, 2, 33, 33), (3, 1, 7, 64), (2, 2, 9, 250)])
def test_fused_masked_softmax_equals_numpy_on_odd_and_transposed_inputs(shape, dtype):
    """Attention's scale, causal mask and softmax as one generated kernel (its row max and
    exp-sum in runtime.jit's row helpers) against numpy, on odd row lengths and on a
    transposed operand, with whole masked-out rows (NaN, as numpy gives) and -inf scores."""
    rng = np.random.default_rng(sum(shape))
    t = shape[-1]
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x[0, 0, 1, :2] = -np.inf
    mask = np.tril(np.ones((shape[-2], t), bool), t - shape[-2])
    mask[0] = False  # a row with nothing left: 0/0
    xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    fn = lambda a, m: gc.softmax(gc.where(m, gc.transpose(a, (1, 0, 2, 3)) * 0.3, -np.inf), 3)  # noqa: E731
    graph = gc.trace(fn, gc.spec(xt.shape, dtype), gc.spec(mask.shape, "bool"))
    plan = compile_graph(graph, jit=True)
    assert "_fused_" in plan.source
    with np.errstate(all="ignore"):
        got = plan(xt, mask)[0]
        s = np.where(mask, x.astype(np.float64) * 0.3, -np.inf)
        e = np.exp(s - s.max(3, keepdims=True))
        want = e / e.sum(3, keepdims=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,width", [(65, 128), (7, 3), (300, 1)])
def test_scatter_add_kernel_equals_np_add_at(rows, width, dtype, index_dtype):
    """The embedding gradient's kernel adds each row in index order, as np.add.at does:
    equal bits, with repeated and negative indices, on one thread or two (65 x 128)."""
    rng = np.random.default_rng(rows)
    idx = rng.integers(-rows, rows, (32, 64)).astype(index_dtype)
    idx[0, :3] = [-1, rows - 1, -rows]
    updates = rng.standard_normal((32, 64, width)).astype(dtype)
    graph = gc.trace(lambda u, i: gc.scatter_add(u, i, rows), gc.spec(updates.shape, dtype),
                     gc.spec(idx.shape, index_dtype))
    plan = compile_graph(graph, jit=True)
    assert "_jit.scatter_add_rows" in plan.source
    want = np.zeros((rows, width), dtype)
    np.add.at(want, idx.reshape(-1), updates.reshape(-1, width))
    np.testing.assert_array_equal(plan(updates, idx)[0], want)
    np.testing.assert_allclose(run(graph, updates, idx)[0], want, rtol=1e-5, atol=1e-5)


def test_scatter_add_kernel_refuses_an_index_out_of_range():
    graph = gc.trace(lambda u, i: gc.scatter_add(u, i, 4), gc.spec((3, 2)),
                     gc.spec((3,), "int64"))
    plan = compile_graph(graph, jit=True)
    with pytest.raises(gc.GraphcError, match="scatter_add.*out of range"):
        plan(np.ones((3, 2), np.float32), np.array([0, 4, 1]))
