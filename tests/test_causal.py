"""Causal attention's products without their zero half (runtime/causal.py): which values the
analysis finds triangular and which products it bands, the banded kernel against np.matmul,
and whole GPT steps against the interpreter and the plan without it."""
import numba
import numpy as np
import pytest

import graphc as gc
from gpt_graphs import gpt_step
from ir.ops import api as F
from passes.manager import optimize
from runtime import causal, gemm
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate
from runtime.stages import LoweringOptions, lower

C = causal


def _kernel_graph(graph):
    return lower(graph, LoweringOptions(jit=True), until="fuse").kernel_graph


def _modes(graph) -> list:
    """The banded products' modes, in graph order."""
    return list(causal.causal_products(_kernel_graph(graph)).values())


# ---- the analysis ---------------------------------------------------------------------------
def _gpt_step(dtype, T=32, layers=2, batch=2, config="tiny"):
    return gpt_step(dtype, batch, seed=T, config=config, block_size=T, n_layer=layers)


def test_finds_the_six_attention_products_of_each_layer_of_the_tiny_gpt():
    graph, _ = _gpt_step("float32")
    kg = _kernel_graph(graph)
    modes = causal.causal_products(kg)
    users = kg.users()
    # per layer, forward S = q @ k^T (dead above: only the mask reads it), P @ V; backward
    # dP = dY @ V^T (dead above: only softmax_grad reads it), dV = P^T @ dY, dQ = dS @ K,
    # dK^T = Q^T @ dS
    assert sorted(modes.values()) == sorted([C.DEAD_ABOVE, C.A_LOWER, C.DEAD_ABOVE, C.A_UPPER,
                                             C.A_LOWER, C.B_LOWER] * 2)
    attention = [n for n in kg.nodes if n.op == "matmul" and n.ndim == 4]
    assert set(modes) == set(attention) and len(attention) == 12
    for n, mode in modes.items():
        if mode == C.DEAD_ABOVE:
            (reader,) = users[n]
            assert reader.op == "softmax_grad" or "softmax" in reader.attrs["program"]
        else:
            a, b = n.inputs
            zero = a if mode in (C.A_LOWER, C.A_UPPER) else b
            assert zero.shape[-2:] == (32, 32)
    facts = causal.triangular_facts(kg)
    softmaxes = [n for n in kg.nodes if n.op == "fused" and "softmax" in n.attrs["program"]
                 and n.ndim == 4]
    assert len(softmaxes) == 2 and all(facts[p] == C.ZERO_ABOVE for p in softmaxes)
    assert all(facts[n] == C.ZERO_ABOVE for n in kg.nodes if n.op == "softmax_grad")


def _attention(variant):
    """Scores, masked softmax and P @ V of a (2, 3, 6, 4) attention, in a variant."""
    T = 6

    def f(q, k, v, w):
        scores = q @ k.transpose(0, 1, 3, 2)
        s = scores * 0.5
        if variant in ("causal", "scores read again", "P scaled by a row", "other axis"):
            s = F.masked_fill(s, ~F.tril_mask(T), float("-inf"))
        elif variant == "where(tri, s, -inf)":
            s = F.where(F.tril_mask(T), s, F.full((), float("-inf"), "float64"))
        elif variant == "k=1":
            s = F.masked_fill(s, ~F.tril_mask(T, k=1), float("-inf"))
        elif variant == "k=-1":
            s = F.masked_fill(s, ~F.tril_mask(T, k=-1), float("-inf"))
        elif variant == "-inf on and below":
            s = F.masked_fill(s, F.tril_mask(T), float("-inf"))
        elif variant == "mask is an input":
            s = F.masked_fill(s, w > 0, float("-inf"))
        p = F.softmax(s, axis=2 if variant == "other axis" else -1)
        if variant == "P scaled by a row":
            p = p * w
        out = p @ v
        return (out, scores) if variant == "scores read again" else out
    spec = gc.spec((2, 3, T, 4), "float64")
    return optimize(gc.trace(f, spec, spec, spec, gc.spec((T, T), "float64")))


@pytest.mark.parametrize("variant, expected", [
    ("causal", [C.DEAD_ABOVE, C.A_LOWER]),
    ("where(tri, s, -inf)", [C.DEAD_ABOVE, C.A_LOWER]),
    ("scores read again", [C.A_LOWER]),  # S is an output: its upper half is not dead
    ("k=1", []), ("k=-1", []), ("-inf on and below", []), ("mask is an input", []),
        ("P scaled by a row", [C.DEAD_ABOVE]),
    # the scores are masked before the softmax, whose axis the analysis does not prove
    ("other axis", [C.DEAD_ABOVE])])
def test_only_a_causal_mask_makes_products_banded(variant, expected):
    assert _modes(_attention(variant)) == expected


def test_dp_read_by_more_than_softmax_grad_is_computed_whole():
    def f(p, dy, v):
        dp = dy @ v.transpose(0, 1, 3, 2)
        return F.softmax_grad(p, dp), dp
    spec = gc.spec((2, 3, 6, 4), "float64")
    p_spec = gc.spec((2, 3, 6, 6), "float64")
    graph = optimize(gc.trace(f, p_spec, spec, spec))
    assert _modes(graph) == []


# ---- the kernel -----------------------------------------------------------------------------
def _operands(mode, T, d, dtype, rng, batch=(2, 3)):
    """(a, b) of a product in `mode` with its triangular operand; non-contiguous views."""
    tri = np.tril(rng.standard_normal(batch + (T, T))).astype(dtype)
    x = rng.standard_normal(batch + (d, T + 3)).astype(dtype)[..., :T]  # (d, T) strided
    xt = x.transpose(0, 1, 3, 2)  # (T, d), column-major
    if mode == C.A_LOWER:
        return tri, xt
    if mode == C.A_UPPER:
        return tri.transpose(0, 1, 3, 2), xt
    if mode == C.B_LOWER:
        return x, tri
    if mode == C.B_UPPER:
        return x, tri.transpose(0, 1, 3, 2)
    return xt, x  # DEAD_ABOVE, DEAD_BELOW: (T, d) @ (d, T)


def _bound(a, b, dtype):
    """Twice the classic error bound of a k-term dot product (each side's rounding):
    the banded product's sums run over fewer (zero) terms, in an order BLAS picks per size."""
    k = a.shape[-1]
    return 2 * (k + 1) * np.finfo(dtype).eps * (np.abs(a) @ np.abs(b)) + np.finfo(dtype).tiny


def _check(mode, a, b, out, dtype):
    want = np.matmul(a, b)
    live = np.ones(want.shape[-2:], bool)
    if mode == C.DEAD_ABOVE:
        live = np.tri(*want.shape[-2:], dtype=bool)
    elif mode == C.DEAD_BELOW:
        live = np.tri(*want.shape[-2:], dtype=bool).T
    live = np.broadcast_to(live, want.shape)
    close = np.abs(out - want) <= _bound(a, b, dtype)
    assert np.all(close[live])
    # dead parts hold the product's value or zero: finite for softmax_grad and the check
    assert np.all(close | (out == 0) | live)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", sorted(C.MODES))
@pytest.mark.parametrize("T, d", [(1, 1), (3, 5), (17, 16), (65, 8)])
@pytest.mark.parametrize("band", [1, 4, 64])
def test_kernel_matches_matmul(mode, T, d, band, dtype):
    rng = np.random.default_rng(T * 10 + mode)
    fn = gemm.blas().address(dtype)
    a, b = _operands(mode, T, d, dtype, rng)
    shape = np.broadcast_shapes(a.shape[:-1] + (1,), b.shape[:-2] + (1, b.shape[-1]))
    for column_major in (False, True):
        out = np.full(shape[:-2] + shape[:-3:-1], np.nan, dtype).swapaxes(-1, -2) \
            if column_major else np.full(shape, np.nan, dtype)
        if C.kernel()(fn, mode, band, a, b, out):
            assert 1 in shape[-2:]  # a layout BLAS cannot write: the plan's np.matmul
            continue
        _check(mode, a, b, out, dtype)


def test_kernel_broadcasts_size_one_batch_axes():
    rng = np.random.default_rng(1)
    a, b = _operands(C.A_LOWER, 70, 8, np.float64, rng)
    b = b[:1, :1]
    out = np.empty((2, 3, 70, 8))
    assert C.kernel()(gemm.blas().address(np.float64), C.A_LOWER, 64, a, b, out) == 0
    _check(C.A_LOWER, a, b, out, np.float64)


@pytest.mark.parametrize("mode", [C.A_LOWER, C.A_UPPER, C.B_LOWER, C.B_UPPER])
def test_nan_and_inf_in_the_known_zero_half_do_not_leak(mode):
    """The kernel reads nothing of an operand's zero half outside the (BAND, BAND) blocks on
    its diagonal (the bands' own triangles, read as zeros by BLAS)."""
    rng = np.random.default_rng(2)
    a, b = (x.copy() for x in _operands(mode, 130, 8, np.float32, rng))
    zero = a if mode in (C.A_LOWER, C.A_UPPER) else b
    clean = zero.copy()
    i, j = np.indices(zero.shape[-2:])
    upper = (j > i) & (i // 64 != j // 64)
    dead = upper if mode in (C.A_LOWER, C.B_LOWER) else upper.T
    assert dead.sum() == 64 * 64 + 2 * 64 * 2  # blocks (0, 1), (0, 2), (1, 2)
    zero[..., dead] = np.where(rng.random(int(dead.sum())) < 0.5, np.nan, np.inf)
    out = np.empty(np.matmul(a, b).shape, np.float32)
    assert C.kernel()(gemm.blas().address(np.float32), mode, 64, a, b, out) == 0
    a_clean, b_clean = (clean, b) if zero is a else (a, clean)
    assert np.isfinite(out).all()
    _check(mode, a_clean, b_clean, out, np.float32)


@pytest.mark.parametrize("mode", sorted(C.MODES))
def test_bits_do_not_depend_on_the_thread_count(mode):
    rng = np.random.default_rng(3)
    a, b = _operands(mode, 200, 32, np.float32, rng, batch=(3, 5))
    fn = gemm.blas().address(np.float32)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            out = np.full(np.matmul(a, b).shape, np.nan, np.float32)
            assert C.kernel()(fn, mode, 64, a, b, out) == 0
            results.append(out)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


# ---- whole plans ------------------------------------------------------------------------------
def _plans(graph, monkeypatch, min_t=1):
    with monkeypatch.context() as m:
        m.setattr(causal, "MIN_T", min_t)
        new = compile_graph(graph, jit=True, background_compile=False)
    with monkeypatch.context() as m:
        m.setattr(causal, "products_to_band", lambda graph, mp, modes=None: {})
        old = compile_graph(graph, jit=True, background_compile=False)
    return new, old


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("T, config", [(32, "tiny"), (80, "small")])
def test_gpt_step_matches_the_interpreter_and_the_plan_without_it(T, config, dtype, tol,
                                                                  monkeypatch):
    graph, inputs = _gpt_step(dtype, T=T, config=config)
    new, old = _plans(graph, monkeypatch)
    assert new.source.count("_banded_matmul4d(") == 12  # 6 per layer
    assert "_banded_matmul4d" not in old.source
    dump = str(new.lowered.kernels)
    assert dump.count("causal result dead above the diagonal") == 4
    got, base, want = new(*inputs), old(*inputs), evaluate(graph, inputs)
    assert np.isfinite(got[0]) and abs(got[0] - want[0]) <= tol * abs(want[0])
    for g, b, w in zip(got, base, want):
        scale = np.abs(w).max() + 1e-30
        assert np.abs(g - w).max() <= tol * scale
        assert np.abs(g - b).max() <= tol * scale


def test_finite_check_sees_no_garbage_in_the_skipped_halves(monkeypatch):
    graph, inputs = _gpt_step("float32", T=80, layers=1, config="small")
    with monkeypatch.context() as m:
        m.setattr(causal, "MIN_T", 1)
        plan = compile_graph(graph, jit=True, background_compile=False, check_finite=True)
    assert "_banded_matmul4d(" in plan.source
    # the pool buffers start as whatever np.empty gave: poison them so that an unwritten
    # dead half would hold NaNs the check would blame
    for buf in plan._buffers:
        if buf.dtype.kind == "f":
            buf.fill(np.nan)
    want = evaluate(graph, inputs)
    for got, w in zip(plan(*inputs), want):
        assert np.abs(got - w).max() <= 2e-4 * (np.abs(w).max() + 1e-30)


def test_default_threshold_leaves_short_sequences_alone():
    graph, _ = _gpt_step("float32", T=32, layers=1)
    plan = compile_graph(graph, jit=True, background_compile=False)
    assert causal.MIN_T > 32 and "_banded_matmul4d" not in plan.source


def test_banded_share_counts_the_blas_calls_multiply_adds():
    # T = 256 in bands of 64: the bands' calls reach 64, 128, 192, 256 of K (or of the
    # result's columns), 10 of 16 quarters of the square; T = 100: bands of 64 and 36
    graph, _ = _gpt_step("float32")
    products = [n for n in _kernel_graph(graph).nodes if n.op == "matmul" and n.ndim == 4]

    class Operand:
        def __init__(self, shape):
            self.shape = shape

    class Product:
        def __init__(self, a, b):
            self.inputs = (Operand(a), Operand(b))
    assert products  # the analysis above runs on the same graphs
    for mode in (C.A_LOWER, C.A_UPPER):
        assert causal.banded_share(Product((2, 6, 256, 256), (2, 6, 256, 64)), mode) == 0.625
    for mode in (C.B_LOWER, C.B_UPPER):
        assert causal.banded_share(Product((2, 6, 64, 256), (2, 6, 256, 256)), mode) == 0.625
    for mode in (C.DEAD_ABOVE, C.DEAD_BELOW):
        assert causal.banded_share(Product((2, 6, 256, 64), (2, 6, 64, 256)), mode) == 0.625
    want = (64 * 64 + 36 * 100) / (100 * 100)
    assert causal.banded_share(Product((1, 1, 100, 16), (1, 1, 16, 100)), C.DEAD_ABOVE) == \
        pytest.approx(want)
    assert causal.banded_share(Product((1, 1, 64, 16), (1, 1, 16, 64)), C.DEAD_ABOVE) == 1.0


def test_the_profile_rates_a_banded_product_by_the_work_it_does(monkeypatch):
    # graphc profile's GFLOP/s for a banded product: its multiply-adds, not the full
    # square's (it read 2x too high for medium's S at T = 256 before)
    graph, inputs = _gpt_step("float32", T=256, layers=1, batch=1)
    plan = compile_graph(graph, jit=True, background_compile=False)
    banded = {n: mode for n, mode in plan.lowered.kernels.causal.items()
              if plan.lowered.kernels.choice[n].kind == "causal"}
    assert len(banded) == 6
    assert all(causal.banded_share(n, mode) == 0.625 for n, mode in banded.items())
    rows = [r for r in plan.profile(*inputs, repeat=1, file=False)
            if r["op"] == "matmul" and r["type"].count(",") == 3]
    assert len(rows) == 6  # the attention products: all banded
    def dims(text):  # "f32[1,4,256,16]" -> [1, 4, 256, 16]
        return [int(d) for d in text[text.index("[") + 1:text.index("]")].split(",")]
    for row in rows:
        k = dims(row["operands"].split(", f")[0])[-1]  # a's columns
        full = 2 * np.prod(dims(row["type"])) * k
        assert row["gflops"] == pytest.approx(0.625 * full / (row["ms"] / 1e3) / 1e9)
