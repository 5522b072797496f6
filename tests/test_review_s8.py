"""Defects found by the hostile review of session 8's speed changes (fair thread sharing, the
weight gradients' K cut, the float32 exp, LayerNorm's paired gradients, causal attention's
banded products). Each test failed on the reviewed snapshot (branch integ); see each
docstring for whether it is fixed; the causal-attention test at the end is a differential
check that held."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F
from passes.manager import optimize
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate


def _layer_norm_backward(shape, dtype):
    """dx and dw of one LayerNorm; dx is read by a later node, so it lives in a pool buffer."""
    def f(x, w, g):
        dx = F.layer_norm_grad(x, w, g, 1e-5)
        dw = F.layer_norm_wgrad(x, g, 1e-5)
        return F.sum(dx * dx), dw
    n = shape[-1]
    specs = [gc.spec(shape, dtype), gc.spec((n,), dtype), gc.spec(shape, dtype)]
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    return optimize(gc.trace(f, *specs)), inputs


@pytest.mark.skipif(not jit.enabled(), reason="numba missing")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_finite_check_does_not_read_layer_norms_input_gradient_before_its_pair_writes_it(
        dtype):
    """Fixed in runtime/instrument.py. LayerNorm's input gradient paired with its weight
    gradient (runtime.lowering.layer_norm_grad_pairs) is written one step late, by the
    weight gradient's kernel; the checked plan called _check on it right after its own
    (empty) step, so the finite check read the buffer's previous contents: a stale NaN was
    blamed on layer_norm_grad ("non-finite value: 96 of 96 elements of layer_norm_grad").
    Here the pool buffers start as NaN (what a buffer may hold from an earlier value)."""
    graph, inputs = _layer_norm_backward((6, 16), dtype)
    plan = compile_graph(graph, jit=True, background_compile=False, check_finite=True)
    assert "_jit.layer_norm_grads(" in plan.source
    for buf in plan._buffers:
        if buf.dtype.kind == "f":
            buf.fill(np.nan)
    got = plan(*inputs)  # raised GraphcError: non-finite value ... of layer_norm_grad
    for g, w in zip(got, evaluate(graph, inputs)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max())



@pytest.mark.skipif(not jit.enabled(), reason="numba missing")
def test_the_finite_check_names_layer_norm_grad_when_its_paired_kernel_makes_the_nan():
    """Fixed in runtime/instrument.py (same cause as the test above). A constant row with
    eps = 0 makes NaN in both LayerNorm gradients. Unpaired, the check names layer_norm_grad
    (the first op that made one); paired, it read layer_norm_grad's buffer before the values
    were there and named layer_norm_wgrad instead."""
    from ir.errors import GraphcError

    def f(x, w, g):
        dx = F.layer_norm_grad(x, w, g, 0.0)
        dw = F.layer_norm_wgrad(x, g, 0.0)  # traced right after dx: the two are paired
        return F.sum(dx * dx), dw
    specs = [gc.spec((6, 16), "float32"), gc.spec((16,), "float32"),
             gc.spec((6, 16), "float32")]
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s.shape).astype(np.float32) for s in specs]
    inputs[0][2] = 1.0  # variance 0: rstd = inf
    plan = compile_graph(optimize(gc.trace(f, *specs)), jit=True, background_compile=False,
                         check_finite=True)
    assert "_jit.layer_norm_grads(" in plan.source
    with pytest.raises(GraphcError, match="elements of layer_norm_grad -> "):
        plan(*inputs)  # named layer_norm_wgrad


# ---- causal attention's banded products: variants of the pattern against the interpreter ----
def _attention(variant, q, k, v, w_out, mask_input):
    """One attention (B, H, T, d) in the given formulation; returns (loss, extra outputs)."""
    T, d = q.shape[-2], q.shape[-1]
    scale = 1.0 / np.sqrt(d)
    s = F.matmul(q, F.transpose(k, (0, 1, 3, 2)))
    extra = []
    if variant == "scores transposed":  # S^T computed as K @ Q^T, transposed back
        s = F.transpose(F.matmul(k, F.transpose(q, (0, 1, 3, 2))), (0, 1, 3, 2))
    if variant == "scores also an output":
        extra.append(s)
    s = s * scale
    if variant == "where keeps first":
        s = F.where(F.tril_mask(T), s, float("-inf"))
    elif variant == "mask k=1":
        s = F.masked_fill(s, ~F.tril_mask(T, k=1), float("-inf"))
    elif variant == "mask k=-1 (first row from its own column)":
        s = F.masked_fill(s, ~F.tril_mask(T, k=-1) & ~F.tril_mask(T, T, 0) | ~F.tril_mask(T),
                          float("-inf"))
    elif variant == "finite mask value":
        s = F.masked_fill(s, ~F.tril_mask(T), -1e9)
    elif variant == "mask from an input":
        s = F.masked_fill(s, mask_input, float("-inf"))
    else:
        s = F.masked_fill(s, ~F.tril_mask(T), float("-inf"))
    p = F.softmax(s, axis=-2 if variant == "softmax over the other axis" else -1)
    if variant == "probabilities also read":
        extra.append(F.matmul(F.transpose(p, (0, 1, 3, 2)), v))
    y = F.matmul(p, v)
    return F.sum(y * w_out), extra


ATTENTION_VARIANTS = ["standard", "where keeps first", "mask k=1",
                      "mask k=-1 (first row from its own column)", "finite mask value",
                      "mask from an input", "softmax over the other axis", "scores transposed",
                      "scores also an output", "probabilities also read",
                      "heads share k and v (broadcast)", "batch of one"]


def _attention_step(variant, T, d, dtype, seed):
    B, H = (1, 1) if variant == "batch of one" else (2, 3)
    kv_heads = 1 if variant == "heads share k and v (broadcast)" else H
    shapes = [(B, H, T, d), (B, kv_heads, T, d), (B, kv_heads, T, d), (B, H, T, d)]
    specs = [gc.spec(s, dtype) for s in shapes] + [gc.spec((T, T), "bool")]

    def f(q, k, v, w_out, mask_input):
        loss, extra = _attention(variant, q, k, v, w_out, mask_input)
        return (loss, *extra)
    graph = gc.trace(f, *specs)
    from passes.autodiff import gradients
    with graph.building():
        floats = [n for n in graph.inputs if n.dtype.kind == "f"]
        graph.set_outputs(list(graph.outputs) + gradients([graph.outputs[0]], floats[:3]))
    graph.output_tree = None
    rng = np.random.default_rng(seed)
    inputs = [(rng.standard_normal(s) * 2).astype(dtype) for s in shapes]
    inputs.append(np.tril(np.ones((T, T), bool)) == 0)
    return optimize(graph), inputs


@pytest.mark.skipif(not jit.enabled(), reason="numba missing")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", ATTENTION_VARIANTS)
def test_attention_variants_match_the_interpreter_with_bands_of_every_size(variant, dtype,
                                                                          monkeypatch):
    """Differential check of runtime/causal.py (holds on the reviewed snapshot): formulations
    of causal attention that may or may not be banded (another diagonal, a finite mask value,
    a mask from an input, the scores or probabilities read twice, shared k/v heads), with
    small bands and T not a multiple of them, pool buffers poisoned with NaN, against the
    interpreter."""
    from runtime import causal
    tol = 1e-10 if dtype == "float64" else 3e-4
    for T, d, band in ((13, 5, 4), (37, 8, 8), (9, 1, 1)):
        graph, inputs = _attention_step(variant, T, d, dtype, T)
        monkeypatch.setattr(causal, "MIN_T", 1)
        monkeypatch.setattr(causal, "BAND", band)
        plan = compile_graph(graph, jit=True, background_compile=False)
        for buf in plan._buffers:
            if buf.dtype.kind == "f":
                buf.fill(np.nan)
        banded = plan.source.count("_banded_matmul4d(")
        if variant in ("standard", "where keeps first", "heads share k and v (broadcast)",
                       "batch of one"):
            assert banded >= 4, (variant, banded)
        elif variant in ("mask k=1", "finite mask value", "mask from an input"):
            assert banded == 0, (variant, banded)
        elif variant == "softmax over the other axis":  # the mask still replaces S's half
            assert banded <= 1, (variant, banded)
        with np.errstate(all="ignore"):
            want = evaluate(graph, inputs)
            got = plan(*inputs)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            ok = np.isfinite(w)
            assert np.abs(g[ok] - w[ok]).max(initial=0) <= tol * (np.abs(w[ok]).max(initial=0)
                                                                   + 1e-30), (variant, T)


# ---- runtime/threads.py: the count of runnable threads after an idle gap, at its edges --------
def _fake_proc(monkeypatch, stat, loadavg):
    """/proc/stat's text and /proc/loadavg's bytes as given; None: the file is missing."""
    import io

    from runtime import contention, threads

    def fake_open(path, *args, **kwargs):
        if path == "/proc/stat":
            if stat is None:
                raise FileNotFoundError(path)
            return io.StringIO(stat)
        return open(path, *args, **kwargs)

    def fake_loadavg():
        if loadavg is None:
            raise FileNotFoundError("/proc/loadavg")
        return loadavg
    monkeypatch.setattr(threads, "open", fake_open, raising=False)
    monkeypatch.setattr(contention.LOADAVG, "read", fake_loadavg)
    return threads


_STAT = ("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
         "cpu1 50 0 50 400 0 0 0 0 0 0\nintr 1\nprocs_running 1\nprocs_blocked 0\n")


@pytest.mark.parametrize("loadavg, expected", [
    (b"0.5 0.4 0.3 1/200 99\n", 0.0), (b"0.5 0.4 0.3 3/200 99\n", 2.0),
    (b"0.5 0.4 0.3 0/200 99\n", 0.0), (b"0.5 0.4 0.3 -5/200 99\n", 0.0),
    (b"0.5 0.4 0.3 100000/200000 99\n", 99999.0), (b"", None), (b"0.5 0.4 0.3\n", None),
    (b"0.5 0.4 0.3 x/200 99\n", None)])
def test_running_elsewhere_reads_the_runnable_count_at_its_edges(loadavg, expected,
                                                                  monkeypatch):
    """Holds on the reviewed snapshot: the caller is not counted, a 0 or negative count is
    none, a missing or garbled count (or no /proc/loadavg) is no answer (None); counts on a
    machine with more CPUs than the process may use are scaled to its share."""
    threads = _fake_proc(monkeypatch, _STAT, loadavg)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads._running_elsewhere({0, 1}) == expected
    if expected is not None:
        monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)  # two of eight CPUs ours
        assert threads._running_elsewhere({0, 1}) == pytest.approx(expected / 4)
    assert threads._busy_seconds({0, 1}) == pytest.approx(2.0)  # 200 ticks at 100 a second
    _fake_proc(monkeypatch, None, None)
    assert threads._running_elsewhere({0, 1}) is None and threads._busy_seconds({0}) is None


@pytest.mark.parametrize("running", [None, 10 ** 6])
def test_after_an_idle_gap_the_thread_count_stays_within_the_cpus(running):
    """Holds on the reviewed snapshot: no count of runnable threads (None) measures the gap's
    load as before; a huge count leaves one thread, never fewer."""
    from runtime import threads
    now, busy, own = [0.0], [0.0], [0.0]
    share = threads.CpuShare(clock=lambda: now[0], busy=lambda: busy[0], own=lambda: own[0],
                             cpus=4, running=lambda: running)
    now[0], busy[0], own[0] = 3.0, 3.0 * 1.0, 0.0  # idle for 3 s; others used one CPU
    got = share.update()
    assert got == (3 if running is None else 1)
    assert 1 <= got <= 4
