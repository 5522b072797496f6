"""Fused kernels with several results (runtime/fusion.py merge_clusters): clusters of one
shape that read each other's values or one operand become one kernel that writes each result
into its own buffer (in place over donated arrays). Differential tests against the
interpreter and against plans whose clusters are not merged, bit for bit: the ops used here
are exact under the strict float policy, so any difference is a defect."""
import numpy as np
import pytest

import graphc as gc
from ir.graph import Graph
from ir.parser import parse
from ir.printer import format_graph
from ir.serialize import dumps, loads
from ir.verify import verify
from runtime import fusion, jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")

# exact in the fused kernels (numpy's bits): + - * / sqrt maximum minimum where comparisons
_BINARY = ("add", "sub", "mul", "div", "maximum", "minimum")


def _fused(plan):
    return [n for n in plan.kernel_graph.nodes if n.op == "fused"]


def _with_results(plan):
    return [n for n in _fused(plan) if "results" in n.attrs]


def _unmerged(monkeypatch):
    monkeypatch.setattr(fusion, "merge_clusters", lambda graph, found: [m for _, m in found])


def random_shared_graph(seed, dtype="float32"):
    """Elementwise graphs over one shape whose values are read at several places (several
    outputs, values reused across clusters), with row, column and scalar operands too."""
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([1, 3, 7, 16, 33]))
    cols = int(rng.choice([1, 5, 8, 64, 67]))
    shape = (rows, cols)
    g = Graph(f"shared{seed}")
    with g.building():
        full = [g.input(f"x{k}", shape, dtype) for k in range(int(rng.integers(2, 5)))]
        side = [g.input("row", (cols,), dtype), g.input("col", (rows, 1), dtype),
                g.input("s", (), dtype)]
        values = list(full)
        outputs = []
        for _ in range(int(rng.integers(6, 16))):
            x = values[int(rng.integers(len(values)))]
            kind = rng.integers(0, 10)
            if kind < 6:
                partner = (values[int(rng.integers(len(values)))] if rng.random() < 0.7
                           else side[int(rng.integers(3))])
                op = _BINARY[int(rng.integers(len(_BINARY)))]
                if op == "div":
                    partner = partner * partner + 0.5
                out = getattr(gc, op)(x, partner)
            elif kind == 6:
                out = gc.sqrt(x * x + 1.0)
            elif kind == 7:
                out = gc.where(x > values[0], x, -x)
            elif kind == 8:
                out = x * 0.9 + 0.1
            else:
                out = -x
            values.append(out)
            if rng.random() < 0.3:
                outputs.append(out)
        outputs.append(values[-1])
    g.set_outputs(outputs)
    inputs = [rng.standard_normal(n.shape).astype(dtype) for n in g.inputs]
    return g, inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_merged_kernels_equal_the_interpreter_and_unmerged_plans_bit_for_bit(
        dtype, monkeypatch):
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    merged = 0
    plans = []
    for seed in range(30):
        graph, inputs = random_shared_graph(50_000 + seed, dtype)
        with np.errstate(all="ignore"):
            expected = run(graph, *inputs)
            plan = compile_graph(graph, jit=True)
            got = plan(*inputs)
            reference = run(plan.kernel_graph, *inputs)  # the fused graph's numpy evaluation
        merged += len(_with_results(plan))
        plans.append((graph, inputs, got))
        for k, (e, o, r) in enumerate(zip(expected, got, reference)):
            msg = f"seed {50_000 + seed} ({dtype}), output {k}\n{plan.source}"
            assert o.dtype == e.dtype and o.shape == e.shape, msg
            np.testing.assert_array_equal(o, e, err_msg=msg)
            np.testing.assert_array_equal(r, e, err_msg=msg)
    assert merged >= 15
    _unmerged(monkeypatch)
    for graph, inputs, got in plans:
        plan = compile_graph(graph, jit=True)
        assert not _with_results(plan)
        with np.errstate(all="ignore"):
            for o, u in zip(got, plan(*inputs)):
                np.testing.assert_array_equal(o, u)


def donated_plan(seed, dtype="float32"):
    """A random shared graph compiled with its full-shaped inputs donated: (graph, inputs,
    donated names, plan, the plan's outputs on copies of the inputs, the interpreter's)."""
    graph, inputs = random_shared_graph(seed, dtype)
    full = [n.attrs["name"] for n in graph.inputs if n.attrs["name"].startswith("x")]
    with np.errstate(all="ignore"):
        expected = run(graph, *inputs)
        plan = compile_graph(graph, jit=True, donate=full)
        got = plan(*[a.copy() for a in inputs])
    return graph, inputs, full, plan, got, expected


def test_merged_kernels_writing_over_donated_inputs_equal_the_interpreter(monkeypatch):
    """Results written in place over donated operands that other results still read at the
    same element (each element's operands are read before its results are stored)."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    donated_results = 0
    for seed in range(20):
        _, _, _, plan, got, expected = donated_plan(60_000 + seed)
        storage = plan.memory_plan.storage
        donated_results += sum(1 for n in plan.kernel_graph.nodes if n.op == "tuple_get"
                               and storage[n].kind == "donated"
                               and any(i is storage[n].donor for i in n.inputs[0].inputs))
        for k, (e, o) in enumerate(zip(expected, got)):
            np.testing.assert_array_equal(o, e, err_msg=f"seed {60_000 + seed}, output {k}\n"
                                                        f"{plan.source}")
    assert donated_results >= 10  # over an operand of their own kernel


def _adamw(p, g, m, v):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * (g * g)
    p = p * 0.99 - 0.01 * (m / (gc.sqrt(v) + 1e-8))
    return p, m, v


@pytest.mark.parametrize("shape", [(64, 128), (65, 3), (130,), (2, 3, 40)])
def test_an_adamw_update_is_one_kernel_writing_over_its_donated_state(shape):
    spec = gc.spec(shape)
    graph = gc.trace(_adamw, spec, spec, spec, spec)
    names = [n.attrs["name"] for n in graph.inputs]
    plan = compile_graph(graph, jit=True, donate=[names[0], names[2], names[3]])
    (node,) = _fused(plan)
    assert len(node.attrs["results"]) == 3
    assert fusion.describe(node).count(",") >= 9
    # the three results overwrite p, m and v: no buffer of the plan's own, none allocated
    assert plan.memory["workspace"] == 0 and plan.memory["outputs"] == 0
    rng = np.random.default_rng(1)
    args = [rng.uniform(0.5, 1.5, shape).astype(np.float32) for _ in range(4)]
    expected = run(graph, *args)
    donated = [a.copy() for a in args]
    got = plan(*donated)
    for o, e in zip(got, expected):
        np.testing.assert_array_equal(o, e)
    # each result over the donated array it updates, as with one kernel per value
    for o, d in zip(got, [donated[0], donated[2], donated[3]]):
        assert np.shares_memory(o, d)


def test_a_kernel_with_several_results_reads_broadcast_operands_and_keeps_pool_buffers():
    """Results that are not returned live in pool buffers (one may reuse a dying operand's)."""
    spec = gc.spec((16, 24))

    def f(x, y, bias, stat):
        a = x * y + bias        # read by two clusters below, and by a reduction
        b = gc.exp(a) - stat    # its own cluster: reads a
        c = a * 3.0 - y
        return gc.sum(b + c, 0), gc.sum(a, 1)

    graph = gc.trace(f, spec, spec, gc.spec((24,)), gc.spec((16, 1)))
    plan = compile_graph(graph, jit=True)
    assert _with_results(plan)
    rng = np.random.default_rng(2)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(16, 24)] * 2 + [(24,), (16, 1)]]
    for got, want in zip(plan(*args), run(graph, *args)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_merge_that_would_put_a_reader_before_the_kernel_is_not_made():
    """`a`'s cluster feeds `c`'s, but a reduction of `a` sits between them and `c` reads it:
    one kernel at `c`'s place would come after that reduction."""
    spec = gc.spec((8, 16))

    def f(x, y):
        a = x * y + 1.0
        total = gc.sum(a, 1, keepdims=True)
        c = a * total - x
        return a * 2.0, c

    graph = gc.trace(f, spec, spec)
    plan = compile_graph(graph, jit=True)
    (total,) = [n for n in plan.kernel_graph.nodes if n.op == "sum"]
    assert total.inputs[0].op == "fused"  # a's own kernel, not a result of c's
    rng = np.random.default_rng(3)
    x, y = (rng.standard_normal((8, 16)).astype(np.float32) for _ in range(2))
    for got, want in zip(plan(x, y), run(graph, x, y)):  # the row sum adds in its own order
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_a_fused_node_with_results_prints_parses_and_serialises():
    spec = gc.spec((8, 32))
    graph = gc.trace(_adamw, spec, spec, spec, spec)
    fused = fusion.fuse(graph)
    verify(fused)  # the type rules agree with the types the fuse stage gave
    text = format_graph(fused, max_inline=None)
    assert "results=(" in text and "tuple_get" in text
    args = [np.random.default_rng(4).uniform(0.5, 1.5, (8, 32)).astype(np.float32)
            for _ in range(4)]
    expected = run(graph, *args)
    for copy in (parse(text), loads(dumps(fused))):
        assert format_graph(copy, max_inline=None) == text
        for o, e in zip(run(copy, *args), expected):
            np.testing.assert_array_equal(o, e)


@pytest.mark.parametrize("results, problem", [
    ("(0,)", "two or more"),
    ("(1, 1)", "one value twice"),
    ("(0, 5)", "no instruction v5"),
])
def test_bad_results_are_named(results, problem):
    text = ("graph g(%0:f32[8] a) -> (%2)\n"
            f"  %1:(f32[8], f32[8]) = fused %0, %0 {{program=\"v0 = mul(a0, a1); "
            f"v1 = add(v0, a0)\", results={results}}}\n"
            "  %2:f32[8] = tuple_get %1 {index=0}\n  return %2\n")
    with pytest.raises(gc.GraphcError, match=problem):
        parse(text)


def test_the_nan_guard_names_the_kernel_with_several_results():
    spec = gc.spec((16, 16))

    def f(x, y):
        a = x * y
        return a + 1.0, gc.sqrt(a - 2.0) * 3.0 + a

    graph = gc.trace(f, spec, spec)
    plan = compile_graph(graph, jit=True, check_finite=True)
    assert _with_results(plan)
    ones = np.ones((16, 16), np.float32)
    with pytest.raises(gc.GraphcError, match=r"fused\(mul, add, sub, sqrt[\s\S]*"
                                             r"test_fusion_results.py"):
        plan(ones, ones)
    nan = ones.copy()
    nan[0, 0] = np.nan  # a NaN passed in is carried, not blamed on the kernel
    with pytest.raises(gc.GraphcError, match="its operands held NaN or Inf too"):
        plan(nan, ones * 9.0)


def test_a_gpt_training_step_merges_adamw_and_equals_the_unmerged_plan(monkeypatch):
    """The tiny GPT's whole training step (forward, backward, clipping, AdamW): fewer kernels,
    the same parameters, moments and loss bit for bit."""
    from graphc.bench import GPT, GPTConfig, TrainConfig, Trainer, _Data

    def steps():
        cfg = GPTConfig.named("tiny")
        trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), TrainConfig(steps=100, warmup=2))
        kernels = sum(1 for _, lines, _ in trainer.step_plan._steps if lines)
        losses = [trainer.train_step() for _ in range(3)]
        state = [np.array(d[k]) for d in (trainer.params, trainer.m, trainer.v)
                 for k in sorted(d)]
        return kernels, losses, state, trainer.step_plan

    kernels, losses, state, plan = steps()
    assert len(_with_results(plan)) >= 20
    _unmerged(monkeypatch)
    kernels_before, losses_before, state_before, _ = steps()
    assert kernels <= kernels_before - 40
    assert losses == losses_before
    for a, b in zip(state, state_before):
        np.testing.assert_array_equal(a, b)


def test_tier_zero_and_the_background_compiler_handle_several_results(monkeypatch, tmp_path):
    """Until the background compiler has the kernel the plan runs the fused node's numpy
    form (its results computed before any is written over a donated operand); the compiler
    marks the kernel compiled under the same spec (the results' dtypes survive its JSON), so
    a second plan loads it at build time."""
    from runtime import tiering
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_LOADED", {})
    spec = gc.spec((24, 40))
    graph = gc.trace(_adamw, spec, spec, spec, spec)
    names = [n.attrs["name"] for n in graph.inputs]
    donate = [names[0], names[2], names[3]]
    args = [np.random.default_rng(5).uniform(0.5, 1.5, (24, 40)).astype(np.float32)
            for _ in range(4)]
    expected = run(graph, *args)
    plan = compile_graph(graph, jit=True, donate=donate, background_compile=True)
    assert plan.kernels_pending == 1
    for o, e in zip(plan(*[a.copy() for a in args]), expected):
        np.testing.assert_array_equal(o, e)
    tiering.wait()
    _, _, kernel_spec, source = plan._pending[0]
    assert isinstance(kernel_spec[0], tuple) and tiering.compiled(source, kernel_spec)
    plan.wait_for_kernels()
    assert plan.kernels_pending == 0
    for o, e in zip(plan(*[a.copy() for a in args]), expected):
        np.testing.assert_array_equal(o, e)
    again = compile_graph(graph, jit=True, donate=donate, background_compile=True)
    assert again.kernels_pending == 0


def test_results_nothing_reads_still_get_buffers():
    """IR read back with a fused node whose second result no tuple_get reads: the kernel
    writes it into a pool buffer of its own."""
    text = ("graph g(%0:f32[4,80] a, %1:f32[4,80] b) -> (%3)\n"
            "  %2:(f32[4,80], f32[4,80]) = fused %0, %1 {program=\"v0 = mul(a0, a1); "
            "v1 = add(v0, a0); v2 = sub(v1, a1)\", results=(1, 2)}\n"
            "  %3:f32[4,80] = tuple_get %2 {index=0}\n  return %3\n")
    graph = parse(text)
    rng = np.random.default_rng(6)
    a, b = (rng.standard_normal((4, 80)).astype(np.float32) for _ in range(2))
    plan = compile_graph(graph, jit=True)
    assert len(plan.memory_plan.storage[graph.nodes[2]].scratch) == 1
    np.testing.assert_array_equal(plan(a, b)[0], a * b + a)
