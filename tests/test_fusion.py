"""Elementwise fusion (runtime/fusion.py, runtime/kernelgen.py): which nodes form clusters,
and differential tests of the fused kernels against the interpreter on random graphs."""
import numpy as np
import pytest

import graphc as gc
from runtime import fusion
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

from randgraph import random_graph, with_gradient

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _fused(plan):
    return [n for n in plan.kernel_graph.nodes if n.op == "fused"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_random_graphs_equal_the_interpreter(dtype, monkeypatch):
    """Random graphs are smaller than FUSE_MIN_ELEMENTS; lowered to 1, they fuse."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    tol = 1e-9 if dtype == "float64" else 2e-4
    fused_nodes = 0
    for seed in range(40):
        graph, inputs = random_graph(40_000 + seed, dtype=dtype)
        if seed % 2:
            graph = with_gradient(graph)
        with np.errstate(all="ignore"):
            expected = run(graph, *inputs)
            plan = compile_graph(graph, jit=True)
            got = plan(*inputs)
            # the fused graph's own numpy evaluation agrees as well
            reference = run(plan.kernel_graph, *inputs)
        fused_nodes += len(_fused(plan))
        for k, (e, o, r) in enumerate(zip(expected, got, reference)):
            msg = f"seed {40_000 + seed} ({dtype}), output {k}\n{plan.source}"
            assert o.shape == e.shape and o.dtype == e.dtype, msg
            np.testing.assert_allclose(o, e, rtol=tol, atol=tol, equal_nan=True, err_msg=msg)
            np.testing.assert_allclose(r, e, rtol=tol, atol=tol, equal_nan=True, err_msg=msg)
    assert fused_nodes >= 20


def test_an_adam_update_is_one_kernel_with_row_col_and_scalar_operands():
    spec = gc.spec((64, 128))

    def update(p, m, v, bias, stat):
        step = m / (gc.sqrt(v) + 1e-8)
        return p * 0.999 - 0.01 * step + bias - stat

    graph = gc.trace(update, spec, spec, spec, gc.spec((128,)), gc.spec((64, 1)))
    plan = compile_graph(graph, jit=True)
    (node,) = _fused(plan)
    assert fusion.fused_operand_kinds(node).count("full") == 3
    assert {"row", "col", "scalar"} <= set(fusion.fused_operand_kinds(node))
    assert fusion.describe(node).startswith("fused(")
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.5, 1.5, s).astype(np.float32)
            for s in [(64, 128)] * 3 + [(128,), (64, 1)]]
    np.testing.assert_allclose(plan(*args)[0], run(graph, *args)[0], rtol=1e-6, atol=1e-6)
    assert plan.memory["temporaries"] == 0


def test_values_used_outside_a_cluster_or_returned_are_not_swallowed():
    spec = gc.spec((32, 32))

    def f(x, y):
        a = x * y + 1.0      # used twice below: its own cluster, computed once
        b = gc.exp(a) * 2.0
        c = gc.sum(a, 0)     # a reduction reads a
        return b, c, a * 3.0

    plan = compile_graph(gc.trace(f, spec, spec), jit=True)
    outputs = set(plan.kernel_graph.outputs)
    for node in _fused(plan):
        assert fusion.describe(node).count(",") >= 1  # two or more ops
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((32, 32)).astype(np.float32) for _ in range(2))
    for got, want in zip(plan(x, y), run(plan.graph, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(outputs) == 3


def test_operands_broadcast_other_ways_stay_numpy_kernels():
    graph = gc.trace(lambda x, y: (x * y) + 1.0, gc.spec((4, 3, 8)), gc.spec((4, 1, 8)))
    assert not fusion.clusters(graph)
    plan = compile_graph(graph, jit=True)
    x = np.ones((4, 3, 8), np.float32)
    np.testing.assert_allclose(plan(x, x[:, :1])[0], x * x[:, :1] + 1.0)


def test_fused_kernels_follow_numpy_on_zero_division_and_nan():
    spec = gc.spec((16, 16))
    graph = gc.trace(lambda x, y: gc.maximum(x / y, 0.5) - gc.minimum(y, x), spec, spec)
    plan = compile_graph(graph, jit=True)
    assert _fused(plan)
    x = np.ones((16, 16), np.float32)
    y = np.ones((16, 16), np.float32)
    y[0, 0], x[1, 1], y[2, 2] = 0.0, np.nan, np.nan
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(plan(x, y)[0], run(graph, x, y)[0])


def test_nan_guard_names_the_fused_ops_and_line():
    spec = gc.spec((16, 16))
    graph = gc.trace(lambda x: gc.sqrt(x - 2.0) * 3.0, spec)
    plan = compile_graph(graph, check_finite=True, jit=True)
    with pytest.raises(gc.GraphcError, match=r"fused\(sub, sqrt, mul\)[\s\S]*test_fusion.py"):
        plan(np.ones((16, 16), np.float32))


def test_equal_kernels_share_one_generated_module(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_LOADED", {})
    for shape in [(8, 64), (16, 64), (8, 64)]:
        compile_graph(gc.trace(lambda a, b: a * b + a, gc.spec(shape), gc.spec(shape)),
                      jit=True)
    assert len(list(tmp_path.glob("k_*.py"))) == 1


def test_attention_scale_mask_and_softmax_are_one_kernel():
    """softmax(where(mask, -inf, scores * scale)) as in the GPT: one fused row kernel, the
    (T, T) mask read as a block; a fully masked row is NaN, as numpy gives."""
    T = 16
    mask = ~np.tri(T, dtype=bool)
    mask[3] = True  # row 3 masked entirely

    def attention(scores):
        return gc.softmax(gc.where(mask, float("-inf"), scores * 0.25), -1)

    graph = gc.trace(attention, gc.spec((4, 2, T, T)))
    plan = compile_graph(graph, jit=True)
    (node,) = _fused(plan)
    assert fusion.describe(node) == "fused(mul, where, softmax)"
    assert "block" in fusion.fused_operand_kinds(node)
    scores = np.random.default_rng(3).standard_normal((4, 2, T, T)).astype(np.float32)
    with np.errstate(all="ignore"):
        got, expected = plan(scores)[0], run(graph, scores)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isnan(got[:, :, 3]).all() and not np.isnan(got[:, :, 4]).any()


def test_a_fused_graph_prints_parses_and_serialises():
    from ir.parser import parse
    from ir.printer import format_graph
    from ir.serialize import dumps, loads
    from passes.manager import optimize

    spec = gc.spec((8, 4, 16, 16))
    mask = ~np.tri(16, dtype=bool)
    graph = gc.trace(lambda s, b: gc.softmax(gc.where(mask, float("-inf"), s * 0.25 + b), -1),
                     spec, gc.spec((16,)))
    fused = fusion.fuse(optimize(graph))
    text = format_graph(fused, max_inline=None)
    assert 'fused' in text and 'program="v0 = mul(a0, a1); v1 = add(v0, a2); ' in text
    scores = np.random.default_rng(4).standard_normal((8, 4, 16, 16)).astype(np.float32)
    bias = np.linspace(0, 1, 16, dtype=np.float32)
    expected = run(graph, scores, bias)[0]
    for copy in (parse(text), loads(dumps(fused))):
        assert format_graph(copy, max_inline=None) == text
        np.testing.assert_allclose(run(copy, scores, bias)[0], expected, rtol=1e-6)


@pytest.mark.parametrize("program, problem", [
    ("v0 = mul(a0, a1); v2 = add(v0, a0)", "cannot read instruction 1"),
    ("v0 = mul(a0, v1)", "v1 used before it is computed"),
    ("v0 = mul(a0, %3)", "bad operand"),
])
def test_bad_fused_programs_are_named(program, problem):
    from ir.parser import parse
    text = (f"graph g(%0:f32[8] a) -> (%1)\n"
            f"  %1:f32[8] = fused %0, %0 {{program=\"{program}\"}}\n  return %1\n")
    with pytest.raises(gc.GraphcError, match=problem):
        parse(text)


def test_an_unwritable_cache_directory_falls_back_to_a_private_one(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocked / "kernels"))
    monkeypatch.setattr(jit, "_LOADED", {})
    graph = gc.trace(lambda a, b: a * b + a, gc.spec((8, 64)), gc.spec((8, 64)))
    plan = compile_graph(graph, jit=True)
    a = np.ones((8, 64), np.float32)
    np.testing.assert_array_equal(plan(a, a)[0], a * a + a)
    assert jit.cache_dir() != str(blocked / "kernels")


def test_fusing_keeps_the_graphs_bound_parameters():
    from passes.manager import optimize
    layer = gc.nn.Linear(64, 64, rng=np.random.default_rng(0))
    graph = gc.trace(lambda x: gc.gelu(layer(x)) * 2.0 + 1.0, gc.spec((32, 64)))
    fused = fusion.fuse(optimize(graph))
    assert any(n.op == "fused" for n in fused.nodes)
    assert set(fused.bound_params) == set(graph.bound_params) != set()
    x = np.ones((32, 64), np.float32)
    np.testing.assert_allclose(run(fused, x)[0], run(graph, x)[0], rtol=1e-6)


def test_a_damaged_cached_kernel_file_is_written_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_LOADED", {})
    graph = gc.trace(lambda a, b: a * b - b, gc.spec((8, 64)), gc.spec((8, 64)))
    compile_graph(graph, jit=True)
    (path,) = tmp_path.glob("k_*.py")
    path.write_text("this is not python")
    monkeypatch.setattr(jit, "_LOADED", {})
    a = np.full((8, 64), 2.0, np.float32)
    np.testing.assert_array_equal(compile_graph(graph, jit=True)(a, a)[0], a * a - a)


def _dense_graph(rng, dtype):
    """A random stack of dense layers: x (2-D or 3-D) @ w + b with the bias on either side,
    products also read elsewhere or returned (those adds must stay), activations between."""
    lead = tuple(int(d) for d in rng.integers(1, 9, int(rng.integers(1, 3))))
    widths = [int(w) for w in rng.integers(1, 40, 4)]
    bias_left = [bool(v) for v in rng.integers(0, 2, 3)]
    shared = int(rng.integers(0, 4))  # this layer's product is read twice (no fold)
    returned = int(rng.integers(0, 4))  # this layer's product is an output too (no fold)

    def fn(x, *params):
        extra = []
        for k in range(3):
            w, b = params[2 * k], params[2 * k + 1]
            p = x @ w
            x = b + p if bias_left[k] else p + b
            if k == shared:
                x = x * p
            if k == returned:
                extra.append(p)
            x = gc.tanh(x) if k % 2 else gc.gelu(x)
        return (x, *extra)

    specs = [gc.spec(lead + (widths[0],), dtype)]
    for k in range(3):
        specs += [gc.spec((widths[k], widths[k + 1]), dtype), gc.spec((widths[k + 1],), dtype)]
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    return gc.trace(fn, *specs), inputs, shared, returned


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bias_folded_into_products_equals_the_interpreter(dtype):
    """fold_bias_into_products (the fuse stage) on random dense stacks, with gradients every
    other graph: results equal the interpreter's on the unfused graph, and exactly the adds
    whose product nothing else reads become matmul_add."""
    tol = 1e-12 if dtype == "float64" else 2e-4  # float32: as the random-graph test's
    for seed in range(24):
        rng = np.random.default_rng(50_000 + seed)
        graph, inputs, shared, returned = _dense_graph(rng, dtype)
        if seed % 2:
            graph = with_gradient(graph)
        plan = compile_graph(graph, jit=True)
        folded = [n for n in plan.kernel_graph.nodes if n.op == "matmul_add"]
        if seed % 2 == 0:  # forward only: three layers, one or two of them not folded
            assert len(folded) == 3 - len({shared, returned} & {0, 1, 2}), plan.source
        assert ("_gemm.matmul2d_add" in plan.source) == bool(folded)
        msg = f"seed {50_000 + seed} ({dtype})\n{plan.source}"
        for got, want in zip(plan(*inputs), run(graph, *inputs)):
            assert got.shape == want.shape and got.dtype == want.dtype, msg
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=msg)


def test_a_dense_layers_bias_is_added_by_its_gemm(monkeypatch):
    """The GPT's qkv and MLP layers: no kernel adds the bias after the product, and for a
    short contraction (one BLAS panel) the sum is rounded once, as before: the bits of the
    same plan without the fold."""
    spec = gc.spec((32, 64, 128))
    graph = gc.trace(lambda x, w, b: x @ w + b, spec, gc.spec((128, 384)), gc.spec((384,)))
    plan = compile_graph(graph, jit=True)
    assert [n.op for n in plan.kernel_graph.nodes if n.op != "input"] == \
        ["reshape", "matmul_add", "reshape"]
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((32, 64, 128), (128, 384),
                                                                  (384,)))
    got = plan(x, w, b)[0]
    monkeypatch.setattr(fusion, "fold_bias_into_products", lambda g: g)
    unfolded = compile_graph(graph, jit=True)
    assert "matmul_add" not in unfolded.source
    np.testing.assert_array_equal(got, unfolded(x, w, b)[0])


def test_a_product_blas_cannot_read_in_place_still_gets_its_bias():
    """A strided operand (every other column): matmul2d_add declines, and the plan's numpy
    lines compute the product and add the bias."""
    graph = gc.trace(lambda x, w, b: gc.tanh(x[:, ::2] @ w + b), gc.spec((6, 8)),
                     gc.spec((4, 5)), gc.spec((5,)))
    plan = compile_graph(graph, jit=True)
    assert "_gemm.matmul2d_add" in plan.source
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((6, 8), (4, 5), (5,)))
    np.testing.assert_allclose(plan(x, w, b)[0], np.tanh(x[:, ::2] @ w + b), rtol=1e-6,
                               atol=1e-6)
