"""Products written straight into their concat's buffer (runtime.memory's `part` storage):
attention's backward head merge copies nothing. Checked against the interpreter and against
the plan without parts (bit for bit in float64; float32 within rounding, see _F32_RTOL), on
the tiny GPT's training step and on random attention shapes, with the memory plan's
invariant (no two live values share memory, but for an operand its node overwrites in place
and a part inside its concat) checked on the plan's real arrays."""
import math

import numpy as np
import pytest

import graphc as gc
from gpt_graphs import gpt_step
from passes.manager import optimize
from runtime import gemm, jit
from runtime import memory
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

pytestmark = pytest.mark.skipif(not jit.enabled() or not gemm.available(),
                                reason="numba or numpy's OpenBLAS missing")

# A part whose result is column-major (dk^T, (B, H, d, T), in its slice of the (B, T, 3C)
# gradient) is computed by BLAS as its transpose, b.T @ a.T: the same dot products, which
# OpenBLAS's kernels may sum in another order (a few ulp apart, float32 and float64 alike),
# so the plans before and after agree within rounding, relative to the largest value; the
# row-major parts (dq, dv) are bit-identical (test_row_major_parts_are_bit_identical).
_RTOL = {"float32": 2e-6, "float64": 1e-13}


def _plans(graph, monkeypatch):
    """(the plan, the same graph's plan without parts)."""
    new = compile_graph(graph, jit=True, background_compile=False)
    with monkeypatch.context() as m:
        m.setattr(memory, "products_into_concats", lambda graph, escaping: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    assert not old.memory_plan.parts
    return new, old


def _assert_close(got, want, dtype, rtol):
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        scale = max(float(np.abs(b).max()), np.finfo(dtype).tiny)
        assert float(np.abs(a - b).max()) <= rtol * scale


def _compare(graph, inputs, dtype, monkeypatch, parts_expected):
    new, old = _plans(graph, monkeypatch)
    assert len(new.memory_plan.parts) == parts_expected
    assert check_no_live_values_overlap(new) > 0
    got, before, reference = new(*inputs), old(*inputs), evaluate(graph, inputs)
    _assert_close(got, before, dtype, _RTOL[dtype])
    _assert_close(got, reference, dtype, 1e-5 if dtype == "float32" else 1e-12)
    return new


def check_no_live_values_overlap(plan):
    """Every pair of values in plan-owned memory (pool buffers and parts) that are live at
    once occupies disjoint bytes; a value may share memory with an operand that dies at it
    only if it overwrites that operand in place, or if the operand is one of its parts."""
    graph, mp = plan.kernel_graph, plan.memory_plan
    order = {n: k for k, n in enumerate(graph.nodes)}
    last = {}
    for n in graph.nodes:
        for i in n.inputs:
            r = mp.root[i]
            last[r] = max(last.get(r, order[r]), order[n])
    for o in graph.outputs:
        last[mp.root[o]] = len(graph.nodes)
    # a softmax_grad its reader's kernel computes (kernel choice "in-reader") is never written
    owned = [n for n in graph.nodes if mp.storage[n].kind in ("pool", "part")
             and plan.lowered.kernels.choice[n].kind != "in-reader"]
    arrays = {n: plan._globals[plan._names[n]] for n in owned}
    live_pairs = 0
    for k, x in enumerate(owned):
        for y in owned[k + 1:]:
            if order[y] > last.get(x, order[x]):
                continue  # x is dead when y is written
            live_pairs += 1
            if not np.shares_memory(arrays[x], arrays[y]):
                continue
            at_last_use = order[y] == last.get(x, order[x])
            in_place = any(i is x for i in memory._writable_operands(y))  # == is symbolic
            part_of = mp.storage[x].kind == "part" and mp.storage[x].part.concat is y
            assert at_last_use and (in_place or part_of), \
                f"{x.op} {x.type} and {y.op} {y.type} share memory while both are live"
    return live_pairs


def test_the_overlap_check_finds_two_live_values_in_one_buffer(monkeypatch):
    monkeypatch.setattr(memory, "PARTS_ONLY_INTO_FREE_BUFFERS", False)
    graph, _ = _attention_grad(2, 7, 2, 3, "float32", True)
    plan = compile_graph(graph, jit=True, background_compile=False)
    dq, dk, dv = plan.memory_plan.parts  # in the concat's order
    assert check_no_live_values_overlap(plan) > 0
    plan._globals[plan._names[dv]] = plan._globals[plan._names[dq]]  # both (B, H, T, d)
    with pytest.raises(AssertionError, match="share memory while both are live"):
        check_no_live_values_overlap(plan)


def _assert_copies_nothing_into(plan, concats):
    assert concats
    for c in concats:
        name = plan._names[c]
        assert f"np.copyto({name}[" not in plan.source
        assert f"np.copyto(_reshaped({name}[" not in plan.source


# ---- the tiny GPT's training step ------------------------------------------------------------
def _gpt_step(dtype, batch=4):
    return gpt_step(dtype, batch)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiny_gpt_step_writes_its_head_gradients_into_the_concat(dtype, monkeypatch):
    """Layer 0's concat is assembled in place; layer 1's (the first the backward pass meets)
    finds no free buffer of its size at its first part and copies, so the plan's memory does
    not grow (memory.PARTS_ONLY_INTO_FREE_BUFFERS)."""
    graph, inputs = _gpt_step(dtype)
    plan = _compare(graph, inputs, dtype, monkeypatch, parts_expected=3)
    kinds = {n: plan.lowered.kernels.choice[n].kind for n in plan.kernel_graph.nodes}
    concats = [n for n in plan.kernel_graph.nodes if n.op == "concat"]
    assert [kinds[c] for c in concats] == ["concat-copies", "assembled"]
    _assert_copies_nothing_into(plan, concats[1:])
    _, old = _plans(graph, monkeypatch)
    assert plan.memory["total"] <= old.memory["total"]


def test_tiny_gpt_step_with_every_concat_in_place(monkeypatch):
    """Taking a new buffer where none is free: every layer's concat is assembled in place."""
    monkeypatch.setattr(memory, "PARTS_ONLY_INTO_FREE_BUFFERS", False)
    graph, inputs = _gpt_step("float64")
    plan = _compare(graph, inputs, "float64", monkeypatch, parts_expected=6)
    concats = [n for n in plan.kernel_graph.nodes if n.op == "concat"]
    assert all(plan.lowered.kernels.choice[c].kind == "assembled" for c in concats)
    _assert_copies_nothing_into(plan, concats)


# ---- random attention shapes ---------------------------------------------------------------
def _attention_grad(B, T, H, D, dtype, causal):
    """Gradients of sum(w * attention(x @ wqkv)) with respect to x and wqkv: GPT's layout,
    the (B, T, 3HD) concat of the heads' gradients read by the two products after it."""
    C = H * D

    def loss(x, wqkv, w):
        qkv = x @ wqkv
        q, k, v = (gc.transpose(gc.reshape(t, (B, T, H, D)), (0, 2, 1, 3))
                   for t in gc.split(qkv, 3, axis=-1))
        att = (q @ gc.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(D))
        if causal:
            att = gc.masked_fill(att, ~gc.tril_mask(T), float("-inf"))
        y = gc.reshape(gc.transpose(gc.softmax(att, axis=-1) @ v, (0, 2, 1, 3)), (B, T, C))
        return gc.sum(y * w)
    specs = [gc.spec((B, T, 5), dtype), gc.spec((5, 3 * C), dtype), gc.spec((B, T, C), dtype)]
    graph = gc.trace(gc.grad(loss, argnums=(0, 1)), *specs)
    rng = np.random.default_rng(B * 1000 + T * 10 + H + D)
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    return optimize(graph), inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B, T, H, D, causal", [
    (2, 7, 1, 3, True), (3, 13, 2, 5, False), (1, 9, 3, 1, True), (2, 17, 4, 7, True),
    (1, 1, 2, 3, False)])
def test_random_attention_shapes_equal_the_interpreter(B, T, H, D, causal, dtype,
                                                       monkeypatch):
    monkeypatch.setattr(memory, "PARTS_ONLY_INTO_FREE_BUFFERS", False)  # one layer: none free
    graph, inputs = _attention_grad(B, T, H, D, dtype, causal)
    plan = _compare(graph, inputs, dtype, monkeypatch, parts_expected=3)
    _assert_copies_nothing_into(plan, [n for n in plan.kernel_graph.nodes if n.op == "concat"])


# ---- where a product must keep its own buffer ----------------------------------------------
def _merge(read_elsewhere):
    """concat of two transposed head products; the first is also an output or read again."""
    def f(a, b, c):
        p, r = a @ b, a @ c
        merged = [gc.reshape(gc.transpose(x, (0, 2, 1, 3)), (2, 5, 12)) for x in (p, r)]
        out = gc.concat(merged, axis=2) * 2.0
        return (out, p) if read_elsewhere == "output" else (out, gc.sum(p * p))
    spec = [gc.spec((2, 3, 5, 4)), gc.spec((2, 3, 4, 4)), gc.spec((2, 3, 4, 4))]
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal(s.shape).astype(np.float32) for s in spec]
    return optimize(gc.trace(f, *spec)), inputs


@pytest.mark.parametrize("read_elsewhere", ["output", "another reader"])
def test_a_product_read_elsewhere_keeps_its_own_buffer(read_elsewhere, monkeypatch):
    monkeypatch.setattr(memory, "PARTS_ONLY_INTO_FREE_BUFFERS", False)
    graph, inputs = _merge(read_elsewhere)
    plan = compile_graph(graph, jit=True, background_compile=False)
    parts = plan.memory_plan.parts
    assert [p.op for p in parts] == ["matmul"] and parts[next(iter(parts))].position == 1
    assert check_no_live_values_overlap(plan) > 0
    got, want = plan(*inputs), evaluate(graph, inputs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the product read elsewhere has a buffer of its own, copied into its slice
    assert plan.source.count("np.copyto(_reshaped(") == 1


def test_a_concat_that_is_an_output_copies_its_operands(monkeypatch):
    monkeypatch.setattr(memory, "PARTS_ONLY_INTO_FREE_BUFFERS", False)

    def f(a, b):
        return gc.concat([gc.reshape(gc.transpose(a @ b, (0, 2, 1, 3)), (2, 5, 12))] * 2, 2)
    spec = [gc.spec((2, 3, 5, 4)), gc.spec((2, 3, 4, 4))]
    graph = optimize(gc.trace(f, *spec))
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert not plan.memory_plan.parts
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal(s.shape).astype(np.float32) for s in spec]
    # (runtime.tiles sums each dot product in its own order: rounding apart, not bits)
    np.testing.assert_allclose(plan(*inputs)[0], evaluate(graph, inputs)[0], rtol=1e-6,
                               atol=1e-6)


# ---- the kernel: a column-major result -------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul4d_writes_a_transposed_slice_of_a_larger_buffer(dtype):
    rng = np.random.default_rng(5)
    B, H, T, D = 3, 2, 7, 5
    a = rng.standard_normal((B, H, D, T)).astype(dtype)
    b = rng.standard_normal((B, H, T, T)).astype(dtype)
    buffer = np.full((B, T, 3 * H * D), np.nan, dtype)
    out = buffer[:, :, H * D:2 * H * D].reshape(B, T, H, D).transpose(0, 2, 3, 1)
    assert out.strides[-2] == out.itemsize  # column-major matrices
    assert gemm.matmul4d(gemm.blas().address(dtype), 2, a, b, out) == 0
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol)
    assert np.isnan(buffer[:, :, :H * D]).all() and np.isnan(buffer[:, :, 2 * H * D:]).all()


def test_row_major_parts_are_bit_identical():
    """dq and dv: the same BLAS call with a longer row stride (ldc) gives the same bits."""
    rng = np.random.default_rng(6)
    B, H, T, D = 2, 3, 13, 5
    for dtype in (np.float32, np.float64):
        a, b = rng.standard_normal((B, H, T, T)).astype(dtype), \
            rng.standard_normal((B, H, T, D)).astype(dtype)
        fn = gemm.blas().address(dtype)
        alone = np.empty((B, H, T, D), dtype)
        assert gemm.matmul4d(fn, 2, a, b, alone) == 0
        buffer = np.full((B, T, 3 * H * D), np.nan, dtype)
        part = buffer[:, :, :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)
        assert gemm.matmul4d(fn, 2, a, b, part) == 0
        np.testing.assert_array_equal(part, alone)
