"""Attention's backward scale folded into the softmax gradient's kernel
(runtime.lowering.softmax_grads_scaled_by_reader, runtime.jit.softmax_grad_scaled): one pass,
the same bits as softmax_grad followed by the multiply, and only where that is safe."""
import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F
from passes.manager import optimize
from runtime import jit, lowering
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="numba missing")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, n", [(64, 64), (77, 13), (5, 1), (1, 7)])
def test_kernel_has_the_bits_of_softmax_grad_then_the_multiply(rows, n, dtype):
    rng = np.random.default_rng(rows * n)
    y = rng.random((rows, n)).astype(dtype)
    y /= y.sum(1, keepdims=True)
    g = rng.standard_normal((rows, n)).astype(dtype)
    scale = np.asarray([1 / np.sqrt(32)], dtype)
    scale.setflags(write=False)
    two_passes, one_pass = np.empty_like(y), np.empty_like(y)
    jit.softmax_grad(y, g, two_passes)
    np.multiply(two_passes, scale[0], out=two_passes)
    jit.softmax_grad_scaled(y, g, scale, one_pass)
    np.testing.assert_array_equal(one_pass, two_passes)


def _scaled_softmax_grad(shape, dtype, read_again=False, scale_shape=()):
    def f(y, g, s):
        dx = F.softmax_grad(y, g, axis=len(shape) - 1)
        out = dx * s
        return (out, gc.sum(dx)) if read_again else out
    specs = [gc.spec(shape, dtype), gc.spec(shape, dtype), gc.spec(scale_shape, dtype)]
    rng = np.random.default_rng(len(shape))
    y = rng.random(shape).astype(dtype)
    inputs = [y / y.sum(-1, keepdims=True), rng.standard_normal(shape).astype(dtype),
              rng.random(scale_shape).astype(dtype) + 0.1]
    return optimize(gc.trace(f, *specs)), inputs


def _plans(graph, monkeypatch):
    new = compile_graph(graph, jit=True, background_compile=False)
    with monkeypatch.context() as m:
        m.setattr(lowering, "softmax_grads_scaled_by_reader", lambda graph, mp: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    return new, old


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 9, 9), (4, 7, 13), (300, 64), (3, 1)])
def test_plan_equals_the_plan_without_it_and_the_interpreter(shape, dtype, monkeypatch):
    graph, inputs = _scaled_softmax_grad(shape, dtype)
    new, old = _plans(graph, monkeypatch)
    assert "_jit.softmax_grad_scaled(" in new.source
    assert "softmax_grad_scaled" not in old.source and "_jit.softmax_grad(" in old.source
    got = new(*inputs)[0]
    np.testing.assert_array_equal(got, old(*inputs)[0])
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(got, evaluate(graph, inputs)[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("case", ["gradient read again", "scale of many values"])
def test_not_folded_where_the_gradient_or_a_broadcast_scale_is_needed(case, monkeypatch):
    graph, inputs = _scaled_softmax_grad(
        (4, 7, 13), "float64", read_again=case == "gradient read again",
        scale_shape=(13,) if case == "scale of many values" else ())
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert "softmax_grad_scaled" not in plan.source and "_jit.softmax_grad(" in plan.source
    for got, want in zip(plan(*inputs), evaluate(graph, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiny_gpt_step_is_bit_identical_with_the_scale_folded(dtype, monkeypatch):
    from test_memory_parts import _gpt_step
    graph, inputs = _gpt_step(dtype)
    new, old = _plans(graph, monkeypatch)
    assert new.source.count("_jit.softmax_grad_scaled(") == 2  # one per layer
    for a, b in zip(new(*inputs), old(*inputs)):
        np.testing.assert_array_equal(a, b)


def test_the_pair_kernel_is_warmed_with_the_fixed_ones():
    """make setup (jit.warm_all) compiles it ahead of a first plan, as the ops' own kernels."""
    graph, _ = _scaled_softmax_grad((4, 7, 13), "float32")
    plan = compile_graph(graph, jit=True, background_compile=False)
    kernels = {c.detail for c in plan.lowered.kernels.choice.values() if c.kind == "numba"}
    assert "softmax_grad_scaled" in kernels and "softmax_grad_scaled" in jit.PAIR_KERNELS
    for kernel in jit.PAIR_KERNELS:
        for dtype in ("float32", "float64"):
            jit.warm(kernel, dtype)


def _softmax_grad_of_computed_values(shape, dtype):
    """softmax_grad(y, g) * s where y and g are computed values dying at the softmax_grad
    and the product is read by a later node (all three live in pool buffers)."""
    def f(a, b, s, v):
        y = F.softmax(a, axis=len(shape) - 1)
        g = b * 2.0
        out = F.softmax_grad(y, g, axis=len(shape) - 1) * s
        return F.matmul(out, v)
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec(shape, dtype), gc.spec((), dtype),
             gc.spec((n, 3), dtype)]
    rng = np.random.default_rng(n)
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    return optimize(gc.trace(f, *specs)), inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 9, 9), (4, 7, 13), (300, 64), (3, 1)])
def test_the_softmax_grad_gets_no_buffer_and_the_pool_shrinks_by_it(shape, dtype,
                                                                      monkeypatch):
    """The memory plan gives the softmax_grad its reader's kernel computes no storage and
    plans the reader at the softmax_grad, over y's or g's buffer (both die there). Before,
    the softmax_grad took a buffer of its own while y and g were live, never written: the
    pool was one such tensor larger. Results: the same bits as the plan without the fold."""
    graph, inputs = _softmax_grad_of_computed_values(shape, dtype)
    new, old = _plans(graph, monkeypatch)
    assert "_jit.softmax_grad_scaled(" in new.source
    mp = new.lowered.memory_plan
    (mul, (sg, _)), = mp.scaled.items()
    assert mp.storage[sg].kind == "in-reader" and mp.storage[sg].buffer is None
    operand_buffers = {mp.storage[mp.root[i]].buffer for i in sg.inputs}
    assert mp.storage[mul].kind == "pool" and mp.storage[mul].buffer in operand_buffers
    assert len(operand_buffers) == 2 and all(mp.storage[mp.root[i]].kind == "pool"
                                             for i in sg.inputs)
    tensor = sg.size * sg.dtype.itemsize
    assert old.memory["workspace"] - new.memory["workspace"] == tensor
    assert len(old.lowered.memory_plan.buffers) == len(mp.buffers) + 1
    got = new(*inputs)[0]
    np.testing.assert_array_equal(got, old(*inputs)[0])
    tol = 1e-5 if dtype == "float32" else 1e-12
    want = evaluate(graph, inputs)[0]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(np.abs(want).max(), 1))


def test_tiny_and_small_gpt_steps_need_one_attention_score_tensor_less(monkeypatch):
    """Measured with the default pipeline and lowering (`graphc dump gpt --grad --after
    plan-memory`): tiny 25,892,360 -> 24,843,784 pool bytes (one f32[64,4,32,32]), small
    88,351,752 -> 86,254,600 (one f32[32,4,64,64]). Medium's pool keeps its size: the
    buffer is needed at the top of its backward pass anyway."""
    from graphc.dump import builtin_gpt, lowering_options
    from passes.manager import run_pipeline
    from runtime.memory import plan_memory
    from runtime.stages import lower
    for config, shape in (("tiny", (64, 4, 32, 32)), ("small", (32, 4, 64, 64))):
        graph = run_pipeline(builtin_gpt(config, True), "default").graph
        fused = lower(graph, lowering_options(), until="fuse").kernel_graph
        new = plan_memory(fused, (), True)
        with monkeypatch.context() as m:
            m.setattr(lowering, "softmax_grads_scaled_by_reader", lambda graph, mp: {})
            old = plan_memory(fused, (), True)
        assert [new.storage[sg].kind for sg, _ in new.scaled.values()] == \
            ["in-reader"] * (2 if config == "tiny" else 4)
        assert old.stats["workspace"] - new.stats["workspace"] == 4 * np.prod(shape)
