"""runtime.tiering: a plan runs at once on its clusters' numpy evaluation while a background
process compiles the generated kernels, then swaps them in; the next plan finds them cached."""
import numpy as np
import pytest

import graphc as gc
from runtime import fusion
from runtime import jit, tiering
from runtime.codegen import compile_graph
from runtime.interpreter import run

from randgraph import random_graph, with_gradient

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _fresh_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_LOADED", {})  # kernels this process loaded from elsewhere


def test_tier_zero_kernels_equal_the_interpreter_on_random_graphs(monkeypatch, tmp_path):
    """Every fused node starts as numpy code with the kernel's arguments (all operand kinds)."""
    _fresh_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    monkeypatch.setattr(tiering, "submit", lambda jobs: None)  # nothing compiles ...
    monkeypatch.setattr(tiering, "running", lambda: True)  # ... and nothing is swapped in
    pending = 0
    for seed in range(16):
        graph, inputs = random_graph(41_000 + seed, dtype="float64")
        if seed % 2:
            graph = with_gradient(graph)
        with np.errstate(all="ignore"):
            expected = run(graph, *inputs)
            plan = compile_graph(graph, jit=True, background_compile=True)
            got = plan(*inputs)
        pending += plan.kernels_pending
        for e, o in zip(expected, got):
            np.testing.assert_allclose(o, e, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert pending >= 10


def test_background_kernels_are_swapped_in_and_cached(monkeypatch, tmp_path):
    _fresh_cache(monkeypatch, tmp_path)

    def f(x, b):  # a cluster no other test compiles
        return gc.tanh(gc.sqrt(gc.abs(x) + 0.5) * b) - x * 0.25

    graph = gc.trace(f, gc.spec((64, 32)), gc.spec(32))
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    b = np.linspace(-1, 1, 32, dtype=np.float32)
    expected = run(graph, x, b)[0]
    plan = compile_graph(graph, jit=True, background_compile=True)
    assert plan.kernels_pending == 1
    name = plan._pending[0][0]
    assert not hasattr(plan._globals[name], "py_func")  # numpy code for now
    np.testing.assert_allclose(plan(x, b)[0], expected, rtol=1e-6, atol=1e-6)
    plan.wait_for_kernels()
    assert plan.kernels_pending == 0 and not tiering.running()
    assert hasattr(plan._globals[name], "py_func")  # the numba kernel
    np.testing.assert_allclose(plan(x, b)[0], expected, rtol=1e-5, atol=1e-6)
    assert list(tmp_path.glob("k_*.ready"))
    again = compile_graph(graph, jit=True, background_compile=True)
    assert again.kernels_pending == 0  # compiled in the cache: loaded at build time


def test_kernels_the_background_compiler_missed_are_compiled_at_the_next_call(monkeypatch,
                                                                              tmp_path):
    _fresh_cache(monkeypatch, tmp_path)
    monkeypatch.setattr(tiering, "submit", lambda jobs: None)  # as if the compiler died
    graph = gc.trace(lambda x: gc.exp(-gc.abs(x)) * x + 1.5, gc.spec((16, 8)))
    plan = compile_graph(graph, jit=True, background_compile=True)
    assert plan.kernels_pending == 1
    x = np.linspace(-3, 3, 128, dtype=np.float32).reshape(16, 8)
    np.testing.assert_allclose(plan(x)[0], np.exp(-np.abs(x)) * x + 1.5, rtol=1e-5)
    assert plan.kernels_pending == 0 and list(tmp_path.glob("k_*.ready"))
