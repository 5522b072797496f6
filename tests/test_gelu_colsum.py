"""A dense layer's bias gradient computed by the GELU gradient's kernel
(runtime.jit.gelu_tanh_grad_colsum, runtime.lowering.gelu_grad_bias_sums): the kernel
against the plain GELU gradient and float64 sums, and plans against the interpreter and
the plan without it."""
import numba
import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F
from passes.autodiff import gradients
from passes.manager import optimize
from runtime import jit, lowering
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

TOL = {np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-14}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, n", [(2048, 256), (77, 13), (5, 1), (1, 7), (300, 128)])
def test_the_kernel_writes_the_gelu_gradient_and_its_column_sums(rows, n, dtype):
    rng = np.random.default_rng(rows * n)
    x = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    g = rng.standard_normal((rows, n)).astype(dtype)
    want = np.empty_like(x)
    jit.gelu_tanh_grad_rows(x.reshape(-1), g.reshape(-1), want.reshape(-1))
    out, sums = np.empty_like(x), np.empty(n, dtype)
    jit.gelu_tanh_grad_colsum(x, g, out, sums)
    np.testing.assert_array_equal(out, want)  # the same scalar function, the same bits
    exact = want.astype(np.float64).sum(0)
    scale = np.abs(want).astype(np.float64).sum(0)  # a sum's rounding: relative to its terms
    assert (np.abs(sums - exact) <= TOL[np.dtype(dtype)] * scale + 1e-300).all()
    g[min(2, rows - 1), 0] = np.nan
    jit.gelu_tanh_grad_colsum(x, g, out, sums)
    assert np.isnan(sums[0]) and not np.isnan(sums[1:]).any()


def test_the_kernel_s_bits_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(1)
    x, g = (rng.standard_normal((1000, 96)).astype(np.float32) for _ in range(2))
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out, sums = np.empty_like(x), np.empty(96, np.float32)
        jit.gelu_tanh_grad_colsum(x, g, out, sums)
        results.append((out, sums))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _mlp(shape, hidden, dtype):
    """A GELU MLP's loss and its parameters' gradients: autodiff writes the first layer's
    bias gradient as the GELU gradient summed over every axis but the last."""
    def f(x, w1, b1, w2):
        return F.sum(F.gelu(x @ w1 + b1, approximate="tanh") @ w2)
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec((n, hidden), dtype), gc.spec((hidden,), dtype),
             gc.spec((hidden, 3), dtype)]
    graph = gc.trace(f, *specs)
    graph.set_outputs([graph.outputs[0]] + gradients([graph.outputs[0]], graph.inputs[1:]))
    rng = np.random.default_rng(hidden + n)
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    return optimize(graph), inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, hidden", [((4, 16, 8), 32), ((300, 5), 7), ((1, 1, 3), 1)])
def test_a_plan_sums_the_bias_gradient_in_the_gelu_gradient_s_kernel(shape, hidden, dtype,
                                                                       monkeypatch):
    graph, inputs = _mlp(shape, hidden, dtype)
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.gelu_tanh_grad_colsum(" in plan.source
    kernels = plan.lowered.kernels
    (bias,) = [s for s, p in kernels.bias_paired.items() if p.op == "gelu_grad"]
    assert bias.op == "sum" and kernels.choice[bias].kind == "in-pair"
    with monkeypatch.context() as m:
        m.setattr(lowering, "gelu_grad_bias_sums", lambda graph, mp: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    assert "gelu_tanh_grad_colsum" not in old.source
    tol = 1e-5 if dtype == "float32" else 1e-12
    for got, base, want in zip(plan(*inputs), old(*inputs), evaluate(graph, inputs)):
        scale = max(np.abs(want).max(), 1.0)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(got, base, rtol=tol, atol=tol * scale)


def test_a_gpt_step_sums_each_mlp_bias_gradient_in_its_gelu_gradient_kernel():
    from gpt_graphs import gpt_step
    graph, inputs = gpt_step("float64", 2, seed=4, config="tiny", block_size=16, n_layer=2)
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert plan.source.count("_jit.gelu_tanh_grad_colsum(") == 2  # one MLP per layer
    assert "_jit.gelu_tanh_grad_rows(" not in plan.source
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        scale = max(np.abs(want).max(), 1.0)
        assert np.abs(got - want).max() <= 1e-11 * scale


def test_the_profile_names_the_kernel():
    graph, inputs = _mlp((64, 32), 48, "float32")
    plan = compile_graph(graph, jit=True, background_compile=False)
    ops = [r["op"] for r in plan.profile(*inputs, repeat=1, file=False)]
    assert ops.count("gelu_tanh_grad_colsum") == 1 and "gelu_grad" not in ops
