"""LayerNorm's input and weight gradients in one kernel (runtime.lowering.layer_norm_grad_pairs,
runtime.jit.layer_norm_grads): the input gradient with the bits of layer_norm_grad, the weight
gradient within a reassociation's rounding of layer_norm_wgrad, independent of the thread
count, and only where the two read the same values."""
import numba
import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F
from passes.manager import optimize
from runtime import jit, lowering
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="numba missing")
# the weight gradient's rows are summed in another order than layer_norm_wgrad's (LLVM
# reassociates the row kernels' sums): measured 2.1e-7 (float32) and 5.7e-16 (float64) of
# the largest value on (2048, 64)
WGRAD_TOL = {np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-14}


def _operands(rows, n, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * 3 + 1).astype(dtype)
    return x, rng.standard_normal(n).astype(dtype), rng.standard_normal((rows, n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, n", [(64, 64), (77, 13), (33, 17), (5, 1), (1, 7), (300, 128)])
def test_kernel_equals_the_two_kernels(rows, n, dtype):
    x, w, g = _operands(rows, n, dtype, rows * n)
    x[min(2, rows - 1), 0] = np.nan  # a NaN row: NaN where the two kernels have it
    dx, dw = np.empty_like(x), np.empty(n, dtype)
    want_dx, want_dw = np.empty_like(x), np.empty(n, dtype)
    jit.layer_norm_grad(x, w, g, 1e-5, want_dx)
    jit.layer_norm_wgrad(x, g, 1e-5, want_dw)
    jit.layer_norm_grads(x, w, g, 1e-5, dx, dw)
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(want_dw))
    x[min(2, rows - 1), 0] = 0.0
    jit.layer_norm_wgrad(x, g, 1e-5, want_dw)
    jit.layer_norm_grads(x, w, g, 1e-5, dx, dw)
    scale = np.abs(want_dw).max()
    assert np.abs(dw - want_dw).max() <= WGRAD_TOL[np.dtype(dtype)] * scale
    exact = ((x.astype(np.float64) - x.mean(1, keepdims=True, dtype=np.float64))
             / np.sqrt(x.var(1, keepdims=True, dtype=np.float64) + 1e-5) * g).sum(0)
    assert np.abs(dw - exact).max() <= WGRAD_TOL[np.dtype(dtype)] * 10 * np.abs(exact).max()


def test_kernel_bits_do_not_depend_on_the_thread_count():
    x, w, g = _operands(1000, 96, np.float32, 7)
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        dx, dw = np.empty_like(x), np.empty(96, np.float32)
        jit.layer_norm_grads(x, w, g, 1e-5, dx, dw)
        results.append((dx, dw))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _two_gradients(shape, dtype, wgrad_eps=1e-5, wgrad_x_doubled=False):
    def f(x, w, g):
        dx = F.layer_norm_grad(x, w, g, 1e-5)
        dw = F.layer_norm_wgrad(x * 2.0 if wgrad_x_doubled else x, g, wgrad_eps)
        return dx, dw
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec((n,), dtype), gc.spec(shape, dtype)]
    rng = np.random.default_rng(len(shape) + n)
    inputs = [rng.standard_normal(shape).astype(dtype), rng.standard_normal(n).astype(dtype),
              rng.standard_normal(shape).astype(dtype)]
    return optimize(gc.trace(f, *specs)), inputs


def _plans(graph, monkeypatch):
    new = compile_graph(graph, jit=True, background_compile=False)
    with monkeypatch.context() as m:
        m.setattr(lowering, "layer_norm_grad_pairs", lambda graph, mp: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    return new, old


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 17), (300, 64), (1, 1), (7, 33, 5)])
def test_plan_equals_the_plan_without_it_and_the_interpreter(shape, dtype, monkeypatch):
    graph, inputs = _two_gradients(shape, dtype)
    new, old = _plans(graph, monkeypatch)
    assert "_jit.layer_norm_grads(" in new.source
    assert "layer_norm_grads" not in old.source and "_jit.layer_norm_wgrad(" in old.source
    (dx, dw), (old_dx, old_dw) = new(*inputs), old(*inputs)
    np.testing.assert_array_equal(dx, old_dx)
    tol = WGRAD_TOL[np.dtype(dtype)]
    np.testing.assert_allclose(dw, old_dw, rtol=tol, atol=tol * np.abs(old_dw).max())
    want_dx, want_dw = evaluate(graph, inputs)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, want_dw, rtol=tol, atol=tol * np.abs(want_dw).max())


@pytest.mark.parametrize("case", ["another eps", "another x"])
def test_not_paired_where_the_two_read_different_values(case):
    graph, inputs = _two_gradients((4, 7, 13), "float64", wgrad_eps=1e-3 if case ==
                                   "another eps" else 1e-5, wgrad_x_doubled=case == "another x")
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "layer_norm_grads" not in plan.source and "_jit.layer_norm_wgrad(" in plan.source
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tiny_gpt_step_pairs_every_layer_norm_and_keeps_the_input_gradients(monkeypatch):
    from test_memory_parts import _gpt_step
    graph, inputs = _gpt_step("float64")
    new, old = _plans(graph, monkeypatch)
    # every LayerNorm has a bias: its gradient, dy's column sums, joins the pair's kernel
    assert new.source.count("_jit.layer_norm_grads_bias(") == \
        old.source.count("_jit.layer_norm_wgrad(")
    assert "_jit.layer_norm_wgrad(" not in new.source
    assert new.source.count("_ones(") == old.source.count("_ones(") - \
        old.source.count("_jit.layer_norm_wgrad(")
    for a, b in zip(new(*inputs), old(*inputs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(np.abs(b).max(), 1.0))


def _values_after_each_step(plan, inputs):
    """[(step's node, whether its value held a NaN when the step returned)] for one call of
    the plan with every float pool buffer filled with NaN first (what a buffer may hold from
    an earlier value), through the checked plan's hook after every step."""
    from runtime.render import render_source
    for buf in plan._buffers:
        if buf.dtype.kind == "f":
            buf.fill(np.nan)
    seen = []

    def after_step(k, value, *operands):
        arrays = value if isinstance(value, tuple) else (value,)
        seen.append((plan._steps[k][0], any(np.isnan(np.asarray(a)).any() for a in arrays
                                            if np.asarray(a).dtype.kind == "f")))
    source, _ = render_source(plan.lowered.rendered, "check")
    plan._compile(source, "steps", {"_check": after_step})(*plan.bind_call(inputs, {}))
    return seen


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_steps_value_is_written_when_its_step_returns(dtype):
    """The pair's kernel runs at the input gradient's step and the weight gradient's step
    names what it wrote. Before, the input gradient's step was empty and the kernel ran at
    the weight gradient's, so a step returned a buffer still holding its old contents (the
    finite check had to hold that step's check back)."""
    from test_memory_parts import _gpt_step
    graph, inputs = _gpt_step(dtype)
    plan = compile_graph(graph, jit=True, background_compile=False)
    # two layers and the final one, each with its bias's gradient
    assert plan.source.count("_jit.layer_norm_grads_bias(") == 5
    seen = _values_after_each_step(plan, inputs)
    # (a constant is not written by a step: cross_entropy's NaN for a target out of range
    # is one)
    assert len(seen) > 100 and not [node.op for node, nan in seen
                                    if nan and node.op != "constant"]
    ops = [node.op for node, _ in seen]
    pairs = [k for k, op in enumerate(ops) if op == "layer_norm_grad"]
    assert len(pairs) == 5 and all(ops[k + 1] == "layer_norm_wgrad" for k in pairs)
    steps = {id(node): stmts for node, stmts, _ in plan._steps}
    for k in pairs:
        assert any("_jit.layer_norm_grads_bias(" in s for s in steps[id(seen[k][0])])
        assert steps[id(seen[k + 1][0])] == [] and ops[k + 2] == "sum"
        assert steps[id(seen[k + 2][0])] == []  # the bias's gradient: the pair's kernel too


def test_the_profile_shows_the_pairs_kernel_under_its_own_name():
    """One line `layer_norm_grads` with the pair's time; before, the time was shown under
    layer_norm_wgrad and layer_norm_grad had no line."""
    graph, inputs = _two_gradients((300, 64), "float32")
    plan = compile_graph(graph, jit=True, background_compile=False)
    rows = plan.profile(*inputs, repeat=2, file=False)
    ops = [r["op"] for r in rows]
    assert ops.count("layer_norm_grads") == 1
    assert "layer_norm_wgrad" not in ops and "layer_norm_grad" not in ops
    assert rows[ops.index("layer_norm_grads")]["ms"] > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 16), (3, 5, 7), (1, 1)])
def test_the_weight_gradient_may_take_the_buffer_of_the_weight_the_kernel_reads(shape, dtype):
    """The weight gradient is written one step before the memory plan says it is (at its
    pair's step): its buffer may be one that dies at the input gradient, here the computed
    LayerNorm weight's, which the kernel reads for every row before it writes the weight
    gradient. Pool buffers start as NaN; the results equal the interpreter's."""
    def f(x, w0, g):
        w = w0 * 2.0  # a pool value whose last reader is layer_norm_grad
        dx = F.layer_norm_grad(x, w, g, 1e-5)
        dw = F.layer_norm_wgrad(x, g, 1e-5)
        return F.sum(dx * dx), F.exp(dw)  # dw read by a later node: a pool value too
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec((n,), dtype), gc.spec(shape, dtype)]
    rng = np.random.default_rng(n)
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    graph = optimize(gc.trace(f, *specs))
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.layer_norm_grads(" in plan.source
    storage = plan.lowered.memory_plan.storage
    wgrad, = [n for n in plan.kernel_graph.nodes if n.op == "layer_norm_wgrad"]
    weight = [n for n in plan.kernel_graph.nodes
                             if n.op == "layer_norm_grad"][0].inputs[1]
    assert storage[weight].kind == storage[wgrad].kind == "pool"
    assert storage[wgrad].buffer == storage[weight].buffer
    seen = _values_after_each_step(plan, inputs)
    assert not [node.op for node, nan in seen if nan]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(np.abs(want).max(), 1))


# ---- the bias's gradient in the pair's kernel --------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, n", [(64, 64), (77, 13), (5, 1), (1, 7), (300, 128)])
def test_the_bias_kernel_adds_dy_s_column_sums_to_the_pair(rows, n, dtype):
    x, w, g = _operands(rows, n, dtype, rows + n)
    dx, dw, db = np.empty_like(x), np.empty(n, dtype), np.empty(n, dtype)
    want_dx, want_dw = np.empty_like(x), np.empty(n, dtype)
    jit.layer_norm_grads(x, w, g, 1e-5, want_dx, want_dw)
    jit.layer_norm_grads_bias(x, w, g, 1e-5, dx, dw, db)
    np.testing.assert_array_equal(dx, want_dx)
    tol = WGRAD_TOL[np.dtype(dtype)]
    assert np.abs(dw - want_dw).max() <= tol * np.abs(want_dw).max()
    exact = g.astype(np.float64).sum(0)
    scale = np.abs(g).astype(np.float64).sum(0)  # a sum's rounding: relative to its terms
    assert (np.abs(db - exact) <= tol * scale).all()
    g[min(3, rows - 1), n - 1] = np.inf
    jit.layer_norm_grads_bias(x, w, g, 1e-5, dx, dw, db)
    assert np.isinf(db[n - 1]) and np.isfinite(db[:n - 1]).all()


def test_the_bias_kernel_s_bits_do_not_depend_on_the_thread_count():
    x, w, g = _operands(1000, 96, np.float32, 8)
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out = np.empty_like(x), np.empty(96, np.float32), np.empty(96, np.float32)
        jit.layer_norm_grads_bias(x, w, g, 1e-5, *out)
        results.append(out)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _three_gradients(shape, dtype, bias_of="dy"):
    """A LayerNorm's three gradients as autodiff writes them (the bias's: dy summed over
    every axis but the last); bias_of="another" sums another value instead."""
    def f(x, w, g, other):
        dx = F.layer_norm_grad(x, w, g, 1e-5)
        dw = F.layer_norm_wgrad(x, g, 1e-5)
        db = F.sum(g if bias_of == "dy" else other, axis=tuple(range(len(shape) - 1)))
        return dx, dw, db
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec((n,), dtype), gc.spec(shape, dtype),
             gc.spec(shape, dtype)]
    rng = np.random.default_rng(len(shape) * 7 + n)
    inputs = [rng.standard_normal(sp.shape).astype(dtype) for sp in specs]
    return optimize(gc.trace(f, *specs)), inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 17), (300, 64), (1, 1), (7, 33, 5)])
def test_a_plan_computes_the_bias_gradient_in_the_pair_s_kernel(shape, dtype, monkeypatch):
    graph, inputs = _three_gradients(shape, dtype)
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.layer_norm_grads_bias(" in plan.source
    kernels = plan.lowered.kernels
    (bias,) = kernels.bias_paired
    assert bias.op == "sum" and kernels.choice[bias].kind == "in-pair"
    with monkeypatch.context() as m:
        m.setattr(lowering, "layer_norm_bias_sums", lambda graph, mp, pairs: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.layer_norm_grads(" in old.source and "layer_norm_grads_bias" not in old.source
    got, base, want = plan(*inputs), old(*inputs), evaluate(graph, inputs)
    np.testing.assert_array_equal(got[0], base[0])
    tol = 1e-5 if dtype == "float32" else 1e-12
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(np.abs(w).max(), 1.0))


def test_a_sum_of_another_value_is_not_folded_into_the_pair():
    graph, inputs = _three_gradients((4, 7, 13), "float64", bias_of="another")
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.layer_norm_grads(" in plan.source and "layer_norm_grads_bias" not in plan.source
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_each_step_s_value_is_written_when_its_step_returns_with_the_bias():
    graph, inputs = _three_gradients((6, 5, 16), "float32")
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "_jit.layer_norm_grads_bias(" in plan.source
    seen = _values_after_each_step(plan, inputs)
    assert not [node.op for node, nan in seen if nan]
