"""Review of session 11's two changes: generated kernels that read an operand written in
place through their result (runtime.kernelgen `aliases`, runtime.memory.written_over) and
pool buffers carved from one huge-page arena (runtime.memory.allocate_pool).

Differential: plans against the reference interpreter and against plans built with the
change switched off (written_over -> [], ARENA_MIN_BYTES -> 1 << 62), and an invariant
checked on every generated-kernel call: a result array shares memory with an operand
exactly when the source names that (result, operand) pair as an alias, and then they are
the same array (so the copy path never runs inside a plan)."""
import gc as pygc
import mmap
import os
import re

import numpy as np
import pytest

import graphc as gc
from runtime import fusion, jit, memory, render, tiering
from runtime.build import build_plan
from runtime.codegen import compile_graph
from runtime.interpreter import run

import randgraph
from test_fusion_results import random_shared_graph
from test_pool_arena import _owner

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _aliases(source):
    """(result, operand) pairs a generated kernel reads through its result."""
    return {(0 if o == "" else int(o), int(k))
            for k, o in re.findall(r"_same\(a(\d+), out(\d*)\)", source)}


def _checked_kernels(plan, violations):
    """Wrap every generated kernel the plan calls with the alias invariant."""
    for name, node, source, _ in plan.lowered.rendered.fused:
        pairs = _aliases(source)
        n_out = len(node.attrs["results"]) if "results" in node.attrs else 1
        for env in [plan._globals] + plan._envs:
            def kernel(*args, fn=env[name], pairs=pairs, n_out=n_out, name=name):
                for m, out in enumerate(args[:n_out]):
                    for j, a in enumerate(args[n_out:]):
                        if (m, j) in pairs:
                            if out.ctypes.data != a.ctypes.data or out.strides != a.strides:
                                violations.append(f"{name}: out{m} is not a{j}")
                        elif np.shares_memory(out, a):
                            violations.append(f"{name}: out{m} over a{j}, not aliased")
                return fn(*args)
            env[name] = kernel
    return plan


def _n_aliases(plan):
    return sum(len(_aliases(k.source)) for k in plan.lowered.rendered.fused)


def _differential(graph, inputs, donate, monkeypatch, exact=True):
    """The plan's outputs (two calls, invariant checked) against the interpreter and against
    the plan without aliases; returns the number of aliased operands."""
    violations = []
    with np.errstate(all="ignore"):
        plan = _checked_kernels(compile_graph(graph, jit=True, donate=donate), violations)
        got = plan(*[a.copy() for a in inputs])
        again = plan(*[a.copy() for a in inputs])
        expected = run(graph, *inputs)
        with monkeypatch.context() as m:
            m.setattr(render, "written_over", lambda mp, result, kernel: [])
            plain = compile_graph(graph, jit=True, donate=donate)
            assert _n_aliases(plain) == 0
            before = plain(*[a.copy() for a in inputs])
    assert not violations, f"{violations}\n{plan.source}"
    for k, (o, o2, e, b) in enumerate(zip(got, again, expected, before)):
        msg = f"{graph.name} output {k}\n{plan.source}"
        np.testing.assert_array_equal(o, b, err_msg=msg)
        np.testing.assert_array_equal(o, o2, err_msg=msg)
        if exact:
            np.testing.assert_array_equal(o, e, err_msg=msg)
        else:
            np.testing.assert_allclose(o, e, rtol=2e-5, atol=2e-5, err_msg=msg)
    return _n_aliases(plan)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shared_graphs_alias_exactly_the_operands_written_over(dtype, monkeypatch):
    """Elementwise graphs with several results per kernel, donated or not."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    aliased = 0
    for seed in range(5):
        graph, inputs = random_shared_graph(61_000 + seed, dtype)
        full = [n.attrs["name"] for n in graph.inputs if n.attrs["name"].startswith("x")]
        aliased += _differential(graph, inputs, full, monkeypatch)
        aliased += _differential(graph, inputs, (), monkeypatch)
    assert aliased >= 12


def test_random_graphs_and_their_gradients_alias_exactly_the_operands_written_over(
        monkeypatch):
    """The op library at random (views, reshapes, transposes, softmax, layer norm, concat,
    reductions, matmuls), every input donated; every third with its backward graph."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    aliased = 0
    for seed in range(9):
        graph, inputs = randgraph.random_graph(62_000 + seed, n_ops=14,
                                               dtype=["float32", "float64"][seed % 2])
        names = [n.attrs["name"] for n in graph.inputs]
        for g in (graph, randgraph.with_gradient(graph)) if seed % 3 == 0 else (graph,):
            aliased += _differential(g, inputs, names, monkeypatch, exact=False)
    assert aliased >= 5


def _int_graph(seed, dtype):
    """An integer elementwise graph over one shape (wrap-around + - *, max, min, where,
    neg) with row and scalar operands; the full inputs are donated."""
    from ir.graph import Graph
    rng = np.random.default_rng(seed)
    shape = (int(rng.choice([3, 16, 33])), int(rng.choice([1, 8, 67])))
    g = Graph(f"int{seed}")
    with g.building():
        values = [g.input(f"x{k}", shape, dtype) for k in range(3)]
        side = [g.input("row", shape[-1:], dtype), g.input("s", (), dtype)]
        outputs = []
        for _ in range(10):
            x = values[int(rng.integers(len(values)))]
            y = values[int(rng.integers(len(values)))] if rng.random() < 0.7 else \
                side[int(rng.integers(2))]
            op = int(rng.integers(6))
            out = [gc.add, gc.sub, gc.mul, gc.maximum, gc.minimum,
                   lambda a, b: gc.where(a > b, -a, b)][op](x, y)
            values.append(out)
            if rng.random() < 0.3:
                outputs.append(out)
        outputs.append(values[-1])
    g.set_outputs(outputs)
    info = np.iinfo(dtype)
    inputs = [rng.integers(info.min, info.max, n.shape, dtype=dtype, endpoint=True)
              for n in g.inputs]
    return g, inputs


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_graphs_written_over_donated_inputs_are_right(dtype, monkeypatch):
    """Integer clusters are not fused (runtime.fusion._DTYPES): no generated kernel, so no
    alias; the in-place numpy steps over donated inputs still equal the interpreter."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    for seed in range(4):
        graph, inputs = _int_graph(63_000 + seed, dtype)
        assert _differential(graph, inputs, ["x0", "x1", "x2"], monkeypatch) == 0


def _attention(x, y):
    return gc.softmax((x @ y) * 0.125, axis=-1) * 2.0 + x @ y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_kernels_over_their_dying_product_with_symbolic_batch(dtype, monkeypatch):
    """A polymorphic plan lowers one plan per batch; each writes the softmax over its product
    in place and reads it through its result."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    graph = gc.trace(_attention, gc.spec(("batch", 24), dtype), gc.spec((24, 24), dtype))
    plan = compile_graph(graph, jit=True)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((24, 24)).astype(dtype)
    for batch in (1, 5, 32):
        x = rng.standard_normal((batch, 24)).astype(dtype)
        s = (x @ y) * 0.125
        e = np.exp(s - s.max(-1, keepdims=True))
        expected = e / e.sum(-1, keepdims=True) * 2.0 + x @ y
        got = plan(x, y)[0]
        assert _n_aliases(plan.last) >= 1, plan.source
        np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_tier_zero_numpy_kernels_in_aliased_calls_equal_the_compiled_ones(monkeypatch):
    """Until the background compiler is done a plan runs each cluster's numpy evaluation
    (runtime.tiering.numpy_kernel) with the arguments of the aliased kernel: its result
    array is the operand it writes over."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    checked = 0
    for seed in range(5):  # the shared-graph test's plans (its kernels compiled already)
        graph, inputs = random_shared_graph(61_000 + seed, "float64")
        full = [n.attrs["name"] for n in graph.inputs if n.attrs["name"].startswith("x")]
        plan = compile_graph(graph, jit=True, donate=full)
        compiled = plan(*[a.copy() for a in inputs])
        for name, node, source, _ in plan.lowered.rendered.fused:
            if _aliases(source):
                checked += 1
                for env in [plan._globals] + plan._envs:
                    env[name] = tiering.numpy_kernel(node)
        for a, b in zip(plan(*[a.copy() for a in inputs]), compiled):
            np.testing.assert_array_equal(a, b)
    assert checked >= 4


def test_the_checked_run_equals_the_plain_run_and_blames_the_same_node(monkeypatch):
    """run_checked re-renders the source with a check after every step; the aliased kernels
    are the plan's own."""
    def f(x, w, b):
        h = x * 2.0 + b
        return gc.softmax(h * h, axis=-1) + gc.log(h) * w

    specs = [gc.spec((16, 32)), gc.spec((16, 32)), gc.spec((32,))]
    graph = gc.trace(f, *specs)
    rng = np.random.default_rng(1)
    args = [rng.random(s.shape).astype(np.float32) + 0.1 for s in specs]
    plan = compile_graph(graph, jit=True, donate=("w",))
    assert _n_aliases(plan) >= 1
    plain = plan(*[a.copy() for a in args])
    checked = plan.run_checked(*[a.copy() for a in args])
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)
    bad = [a.copy() for a in args]
    bad[0][3, 4] = -5.0  # log of a negative: the log's cluster makes the NaN
    messages = []
    for off in (False, True):
        with monkeypatch.context() as m:
            if off:
                m.setattr(render, "written_over", lambda mp, result, kernel: [])
            p = compile_graph(graph, jit=True, donate=("w",))
            with pytest.raises(gc.GraphcError, match="non-finite") as info:
                p.run_checked(*[a.copy() for a in bad])
            messages.append(str(info.value).split(";")[0])
    assert messages[0] == messages[1]


def test_a_plan_under_a_memory_limit_equals_the_unlimited_one():
    """Rematerialised plans keep their aliased kernels right."""
    def loss(w1, w2, x):
        h = gc.tanh(x @ w1) * 0.5 + x
        return gc.sum(gc.softmax(h @ w2, axis=-1) * h)

    rng = np.random.default_rng(2)
    args = [rng.standard_normal((64, 64)) * 0.1, rng.standard_normal((64, 64)) * 0.1,
            rng.standard_normal((256, 64))]
    graph = gc.trace(gc.value_and_grad(loss, argnums=(0, 1)),
                     *[gc.spec(a.shape, "float64") for a in args])
    unlimited = build_plan(graph, jit=True)
    expected = unlimited(*args)
    total = unlimited.memory["total"]
    limited = build_plan(graph, jit=True, memory_limit=int(total * 0.9))
    assert limited.remat_report.recomputed
    for a, b in zip(limited(*args), expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_the_tiny_gpt_step_with_aliases_equals_the_step_without(monkeypatch):
    """Two training steps of tiny GPT (attention softmax in place, AdamW's three results over
    donated p, m, v): parameters, moments and losses bit for bit, and the invariant."""
    from graphc.bench import GPT, GPTConfig, TrainConfig, Trainer, _Data

    def train(aliases):
        with monkeypatch.context() as m:
            if not aliases:
                m.setattr(render, "written_over", lambda mp, result, kernel: [])
            cfg = GPTConfig.named("tiny")
            trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), TrainConfig(steps=100, warmup=2))
        violations = []
        if aliases:
            assert _n_aliases(trainer.step_plan) >= 3 * len(trainer.params)
            _checked_kernels(trainer.step_plan, violations)
        losses = [trainer.train_step() for _ in range(2)]
        assert not violations, violations
        return losses, trainer.params, trainer.m, trainer.v

    got, before = train(True), train(False)
    assert got[0] == before[0]
    for new, old in zip(got[1:], before[1:]):
        for name in old:
            np.testing.assert_array_equal(new[name], old[name], err_msg=name)


# ---- the pool arena ------------------------------------------------------------------------
def _on_arena(plan):
    return bool(plan._buffers) and all(isinstance(_owner(b), mmap.mmap) for b in plan._buffers)


needs_arena = pytest.mark.skipif(memory._huge_page_arena(1) is None,
                                 reason="no madvise(MADV_HUGEPAGE)")


def _mlp(x, w):
    h = gc.tanh(x @ w) * 0.5 + x
    return gc.sum(gc.softmax(h * h, axis=-1) * h)


def _arena_cases(dtype):
    """Random float32 graphs, or a small MLP's loss and gradient in `dtype`."""
    if dtype == "float32":
        for seed in range(5):
            yield randgraph.random_graph(62_000 + 2 * seed + 1, n_ops=14, dtype="float32")
        return
    graph = gc.trace(gc.value_and_grad(_mlp, argnums=(0, 1)), gc.spec((64, 48), dtype),
                     gc.spec((48, 48), dtype))
    rng = np.random.default_rng(4)
    yield graph, [(rng.standard_normal(n.shape) * 0.3).astype(n.dtype) for n in graph.inputs]


@needs_arena
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_plans_on_the_arena_equal_plans_on_separate_arrays(dtype, monkeypatch):
    """Every pool on the arena (ARENA_MIN_BYTES = 0) against none on it: outputs bit for
    bit, no output shares memory with a pool buffer, and outputs outlive their plan."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    for graph, inputs in _arena_cases(dtype):
        results = []
        for smallest in (0, 1 << 62):
            with monkeypatch.context() as m:
                m.setattr(memory, "ARENA_MIN_BYTES", smallest)
                with np.errstate(all="ignore"):
                    plan = compile_graph(graph, jit=True)
                    assert _on_arena(plan) == (smallest == 0 and bool(plan._buffers))
                    outs = plan(*inputs)
                    outs2 = plan(*inputs)
            for o, o2 in zip(outs, outs2):
                np.testing.assert_array_equal(o, o2)
                for buf in plan._buffers:
                    assert not np.shares_memory(o, buf)
            kept = [o.copy() for o in outs]
            del plan
            pygc.collect()
            for o, k in zip(outs, kept):  # the arena is gone; the outputs are their own
                np.testing.assert_array_equal(o, k)
            results.append(outs)
        for a, b in zip(*results):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=graph.name)


@needs_arena
def test_a_pool_buffer_outlives_its_plan_and_a_forked_child_keeps_to_its_copy():
    def f(x):
        return gc.sum(gc.tanh(x * 2.0) * x + 1.0, axis=0)

    graph = gc.trace(f, gc.spec((1024, 1024)))
    # numpy kernels: a forked child may not call into the parent's OpenMP threads (numba's
    # workqueue/omp layer terminates it), which has nothing to do with the arena
    plan = compile_graph(graph, jit=False)
    assert _on_arena(plan) and plan.memory["workspace"] >= memory.ARENA_MIN_BYTES
    x = np.random.default_rng(3).standard_normal((1024, 1024)).astype(np.float32)
    expected = plan(x)[0]
    buf = plan._buffers[0]
    snapshot = buf.copy()
    pid = os.fork()
    if pid == 0:  # the child runs the plan on other values, writing its (copied) buffers
        try:
            plan(x * 3.0)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    np.testing.assert_array_equal(buf, snapshot)
    np.testing.assert_array_equal(plan(x)[0], expected)
    del plan
    pygc.collect()
    buf[:] = 7.0  # still mapped: the view keeps the arena alive
    assert float(buf[-1]) == 7.0


def test_bindings_of_one_symbolic_plan_may_alias_different_operands(monkeypatch):
    """Which operand a kernel reads through its result is the memory plan's choice, and it
    may differ by binding: at batch 8 x (8, 8) is a donor of the (8, 8) result's shape, dead
    before it, so the result takes x and its kernel aliases nothing; at batch 5 it takes the
    dying y and reads y through its result. Both bindings are right; the second compiles a
    kernel source of its own (the README and runtime/polymorphic.py said no binding
    compiles a kernel again: true before aliases, for these graphs)."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)

    def f(x, y):
        s = gc.sum(gc.tanh(x * 3.0), axis=0)  # x's last use
        return ((y * 2.0 + s) * y + 1.0,)

    graph = gc.trace(f, gc.spec(("batch", 8)), gc.spec((8, 8)))
    plan = compile_graph(graph, jit=True, donate=("x", "y"))
    rng = np.random.default_rng(5)
    pairs = {}
    for batch in (5, 8):
        x = rng.standard_normal((batch, 8)).astype(np.float32)
        y = rng.standard_normal((8, 8)).astype(np.float32)
        s = np.tanh(x * np.float32(3.0)).sum(0)
        expected = (y * np.float32(2.0) + s) * y + np.float32(1.0)
        got = plan(x.copy(), y.copy())[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        pairs[batch] = sorted(p for k in plan.last.lowered.rendered.fused
                              for p in _aliases(k.source))
    assert pairs[5] and not pairs[8]
