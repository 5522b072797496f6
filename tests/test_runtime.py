"""The compiled plan: equal to the interpreter on random graphs (forward and backward, f32
and f64), pinned generated source, memory figures, donation, profiler and NaN guard."""
import functools
import inspect
import logging
import tracemalloc

import numpy as np
import pytest

import graphc as gc
from passes.manager import optimize
from runtime.codegen import compile_graph
from runtime.interpreter import run

from randgraph import random_graph, with_gradient


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("chunk", range(4))
def test_compiled_plan_equals_interpreter_on_random_graphs(dtype, chunk):
    tol = 1e-9 if dtype == "float64" else 2e-4
    for seed in range(chunk, 400, 4):
        graph, inputs = random_graph(20_000 + seed, dtype=dtype)
        if seed % 2:
            graph = with_gradient(graph)
        for g in (graph, optimize(graph)):
            with np.errstate(all="ignore"):
                expected = run(g, *inputs)
                plan = compile_graph(g)
                got = plan(*inputs)
                again = plan(*inputs)  # reused buffers must not leak between calls
            for k, (e, o, a) in enumerate(zip(expected, got, again)):
                msg = f"seed {20_000 + seed} ({dtype}), output {k}\n{plan.source}"
                assert o.shape == e.shape and o.dtype == e.dtype, msg
                np.testing.assert_allclose(o, e, rtol=tol, atol=tol, equal_nan=True,
                                           err_msg=msg)
                np.testing.assert_array_equal(a, o, err_msg=msg)


def test_two_way_split_kernels_equal_the_interpreter(monkeypatch):
    import runtime.lowering as lowering
    monkeypatch.setattr(lowering, "PARALLEL_MIN_ELEMENTS", 4)
    split_nodes = 0
    for seed in range(150):
        graph, inputs = random_graph(30_000 + seed, n_ops=14)
        graph = optimize(with_gradient(graph))
        with np.errstate(all="ignore"):
            expected = run(graph, *inputs)
            plan = compile_graph(graph, parallel=True)
            got = plan(*inputs)
        split_nodes += plan.source.count("_half.result()")
        for e, o in zip(expected, got):
            np.testing.assert_allclose(o, e, rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=f"seed {30_000 + seed}\n{plan.source}")
    assert split_nodes > 100


def test_nan_guard_works_with_split_kernels(monkeypatch):
    import runtime.lowering as lowering
    monkeypatch.setattr(lowering, "PARALLEL_MIN_ELEMENTS", 4)
    plan = compile_graph(gc.trace(lambda x: gc.log(gc.tanh(x) - 2.0), gc.spec((8, 4))),
                         parallel=True)
    assert "_half.result()" in plan.source
    with pytest.raises(gc.GraphcError, match="non-finite value: 32 of 32 elements of log"):
        plan.run_checked(np.ones((8, 4), np.float32))


def test_outputs_do_not_alias_plan_buffers_across_calls():
    plan = gc.compile(lambda x: (gc.exp(x) * 2.0, gc.exp(x) + 1.0)).plan_for(np.ones(4))
    first = plan(np.zeros(4))
    second = plan(np.ones(4))
    np.testing.assert_allclose(first[0], 2.0)
    np.testing.assert_allclose(second[0], 2 * np.e)


def test_generated_source_is_pinned():
    def f(x, w, b):
        return gc.relu(x @ w + b).sum(0)
    g = optimize(gc.trace(f, gc.spec((4, 3)), gc.spec((3, 2)), gc.spec(2)))
    source = """\
def plan(in0, in1, in2):
    np.matmul(in0, in1, out=t0)
    np.add(t0, in2, out=t1)
    np.maximum(t1, 0, out=t2)
    t3 = np.empty((2,), f32)
    np.matmul(_ones(4, np.float32), t2.reshape(4, -1), out=t3.reshape(-1))
    if not np.isfinite(t3).all(): np.add.reduce(t2, axis=(0,), keepdims=False, out=t3)
    return (t3,)
"""
    assert compile_graph(g, jit=False).source == source
    from runtime import gemm, jit
    if jit.enabled() and gemm.available():
        # the product runs on runtime.gemm's kernel, onto the bias (runtime/fusion.py's
        # fold_bias_into_products); numpy's matmul and add where BLAS cannot read a layout
        assert compile_graph(g, jit=True).source == """\
def plan(in0, in1, in2):
    if _gemm.matmul2d_add(_sgemm, _threads, in0, in1, in2, t0):
        np.matmul(in0, in1, out=t0)
        np.add(t0, in2, out=t0)
    np.maximum(t0, 0, out=t1)
    t2 = np.empty((2,), f32)
    np.matmul(_ones(4, np.float32), t1.reshape(4, -1), out=t2.reshape(-1))
    if not np.isfinite(t2).all(): np.add.reduce(t1, axis=(0,), keepdims=False, out=t2)
    return (t2,)
"""


def test_elementwise_chains_run_in_place_in_reused_buffers():
    def f(x):
        return gc.sum(gc.tanh(gc.exp(x) * 2.0 + 1.0))
    plan = gc.compile(f).plan_for(np.ones((64, 64), np.float32))
    assert len(plan.memory_plan.buffers) == 1  # exp, mul, add, tanh share one buffer
    assert plan.memory["workspace"] == 64 * 64 * 4


def test_donated_inputs_are_updated_in_place():
    def step(p, g):
        return p - 0.1 * g
    g = gc.trace(step, gc.spec(5, "float64"), gc.spec(5, "float64"))
    plan = compile_graph(g, donate=["p"])
    p = np.ones(5)
    (out,) = plan(p, np.ones(5))
    assert out is p and np.allclose(p, 0.9)
    strided = np.ones(10)[::2]  # a non-contiguous donation still gives the right answer
    (out,) = plan(strided, np.ones(5))
    np.testing.assert_allclose(out, 0.9)
    with pytest.raises(gc.GraphcError, match="cannot donate"):
        compile_graph(g, donate=["nope"])


def test_peak_memory_prediction_matches_tracemalloc():
    def f(x, w):
        h = gc.gelu(x @ w)
        return gc.one_hot(gc.cast(gc.sum(h, 1) > 0, "int64"), 8) * 2.0, gc.softmax(h @ w.T)
    args = [np.ones((256, 128), np.float32), np.ones((128, 128), np.float32) * 0.01]
    plan = gc.compile(f).plan_for(*args)
    plan(*args)
    tracemalloc.start()
    plan(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mem = plan.memory
    predicted = mem["temporaries"] + mem["outputs"]  # the workspace exists before the call
    assert predicted <= peak <= predicted * 1.25 + 64 * 1024, (predicted, peak, mem)


def test_profile_reports_ops_lines_shares_and_gflops(capsys):
    def f(x, w):
        return gc.tanh(x @ w)  # PROFILED
    args = [np.ones((64, 32), np.float32), np.ones((32, 16), np.float32)]
    rows = gc.compile(f).plan_for(*args).profile(*args)
    ops = {r["op"] for r in rows}
    assert ops == {"matmul", "tanh"}
    mm = [r for r in rows if r["op"] == "matmul"][0]
    assert mm["gflops"] > 0 and 0 < mm["share"] <= 1
    line = inspect.getsourcelines(f)[1] + 1
    assert mm["where"].endswith(f"test_runtime.py:{line}")
    assert "matmul" in capsys.readouterr().out


def test_profile_rates_a_product_with_its_bias_add():
    # the fusion stage writes x @ w + b as one matmul_add: its line shows a rate too, from
    # its flops (2*m*k*n for the product, one per element for the bias)
    def f(x, w, b):
        return x @ w + b
    args = [np.ones((64, 32), np.float32), np.ones((32, 16), np.float32),
            np.ones(16, np.float32)]
    rows = gc.compile(f).plan_for(*args).profile(*args, file=False)
    fused = [r for r in rows if r["op"] == "matmul_add"]
    assert len(fused) == 1
    row = fused[0]
    flops = 2 * 64 * 32 * 16 + 64 * 16
    assert row["gflops"] == pytest.approx(flops / (row["ms"] / 1e3) / 1e9)


def test_a_warm_profile_runs_again_only_kernels_that_keep_their_operands(capsys):
    """`warm=True` times a kernel a second time right after itself only where running it
    twice gives the same result: not a kernel written over its operand (the tanh over the
    dying product) nor an update over a donated input."""
    def f(x, w, p):
        h = gc.tanh(x @ w)  # in place over the product, which dies here
        return h @ w.T, p * 0.5 + 1.0  # the second written over the donated p

    args = [np.full((256, 128), 0.01, np.float32), np.full((128, 128), 0.02, np.float32),
            np.ones((64, 64), np.float32)]
    plan = gc.compile(f, donate_argnums=(2,)).plan_for(*args)
    expected = [np.array(o) for o in plan(*[a.copy() for a in args])]
    kept = [a.copy() for a in args]
    rows = plan.profile(*args, repeat=2, warm=True)
    by_op = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    assert [r["warm_ms"] is not None for r in by_op["matmul"]] == [True, True]
    assert all(r["warm_ms"] > 0 for r in by_op["matmul"])
    assert by_op["tanh"][0]["warm_ms"] is None
    updates = [r for r in rows if r["op"] not in ("matmul", "tanh")]
    assert updates and all(r["warm_ms"] is None for r in updates)
    for a, b in zip(args, kept):  # the caller's arrays, donated one included, untouched
        np.testing.assert_array_equal(a, b)
    for o, e in zip(plan(*[a.copy() for a in args]), expected):  # nothing left changed
        np.testing.assert_array_equal(o, e)
    out = capsys.readouterr().out
    assert "warm ms" in out and "kernels run again right after themselves" in out
    assert all(r.get("warm_ms") is None for r in plan.profile(*args, file=False))


@pytest.mark.parametrize("setting, value", [("repeat", 0), ("repeat", -1), ("repeat", 2.5),
                                            ("repeat", True), ("top", -1), ("top", 1.0)])
def test_profile_refuses_a_count_that_is_not_one(setting, value):
    """repeat=0 divided by zero after the warm-up, repeat=-1 returned a table of negative
    times, repeat=2.5 was range()'s TypeError and top=-1 dropped the slowest-but-last row."""
    args = [np.ones((8, 4), np.float32), np.ones((4, 4), np.float32)]
    plan = gc.compile(lambda x, w: gc.tanh(x @ w)).plan_for(*args)
    with pytest.raises(gc.GraphcError, match=rf"^profile: {setting} must be a whole number "
                       rf">= {1 if setting == 'repeat' else 0}, got {value!r}$"):
        plan.profile(*args, file=False, **{setting: value})
    rows = plan.profile(*args, repeat=np.int64(1), top=np.int64(0), file=False)
    assert {r["op"] for r in rows} == {"matmul", "tanh"} and all(r["ms"] >= 0 for r in rows)


def test_a_symbolic_plan_profiles_warm_too():
    """compile_graph of a symbolic graph is a PolymorphicPlan: its profile() left warm= in
    the inputs, "graph 'lambda' has no inputs named ['warm']"."""
    graph = optimize(gc.trace(lambda x, w: gc.tanh(x @ w) @ w.T, gc.spec(("batch", 32)),
                              gc.spec((32, 32))))
    plan = compile_graph(graph)
    args = [np.full((8, 32), 0.1, np.float32), np.full((32, 32), 0.02, np.float32)]
    rows = plan.profile(*args, repeat=1, warm=True, file=False)
    products = [r for r in rows if r["op"] == "matmul"]
    assert len(products) == 2 and all(r["warm_ms"] > 0 for r in products)
    assert all(r.get("warm_ms") is None for r in plan.profile(*args, repeat=1, file=False))


def test_nan_guard_names_the_op_ranges_and_line():
    def f(x):
        y = x * 2.0
        return gc.log(y - 3.0)  # NAN HERE
    plan = gc.compile(f).plan_for(np.ones(3))
    with pytest.raises(gc.GraphcError, match=r"non-finite value: 3 of 3 elements of log") as e:
        plan.run_checked(np.ones(3))
    assert "in [-1, -1]" in str(e.value)
    assert e.value.locs[0][1] == inspect.getsourcelines(f)[1] + 2
    checked = compile_graph(plan.graph, check_finite=True)
    with pytest.raises(gc.GraphcError, match="non-finite"):
        checked(np.ones(3))
    np.testing.assert_allclose(checked(np.full(3, 4.0))[0], np.log(5.0))


def test_new_signature_recompiles_and_logs(caplog):
    f = gc.compile(lambda x: x + 1.0)
    with caplog.at_level(logging.DEBUG, logger="graphc"):
        f(np.ones(2))
        f(np.ones(3))
        f(np.ones(2))
    assert len(f._plans) == 2
    assert sum("recompiling" in r.message for r in caplog.records) == 1


def test_flops_of_a_matmul_plan():
    plan = gc.compile(lambda a, b: a @ b).plan_for(np.ones((8, 4)), np.ones((4, 5)))
    assert plan.flops() == 2 * 8 * 4 * 5


def test_flops_of_some_ops_count_them_inside_loops_and_conds_too():
    """s48 review: plan.flops(ops) (graphc bench's %GEMM: ("matmul", "einsum")) counted a
    scan's or a cond's node whole or not at all, so the products of a loop's body (an RNN's,
    graphc.recurrent's) were not among a plan's matrix products (0.0 here); a str was read
    as the names in it ("matmul" counted the muls: `"mul" in "matmul"`), and a name that is
    no op counted 0 without a word."""
    from ir.errors import GraphcError
    w, x, p = np.ones((8, 8), np.float32), np.ones((5, 4, 8), np.float32), np.float32(1)

    def f(w, x, p):
        def body(h, xt):
            h = gc.tanh(h @ w + xt)
            return h, h
        h, hs = gc.scan(body, gc.zeros((4, 8)), x)
        h = gc.cond(p > 0, lambda h: (h @ w) @ w, lambda h: h * 2.0, h)
        return (hs * 2.0).sum() + (h @ w).sum()
    plan = gc.compile(f).plan_for(w, x, p)
    product = 2 * 4 * 8 * 8  # (4, 8) @ (8, 8)
    assert plan.flops(("matmul", "einsum")) == (5 + 2 + 1) * product  # body 5 times, a branch
    assert plan.flops("matmul") == plan.flops(("matmul",)) == plan.flops(["matmul"])
    assert plan.flops(()) == 0.0 and plan.flops() > plan.flops(("matmul",))
    with pytest.raises(GraphcError) as err:
        plan.flops(("matmul", "matmull"))
    assert "\n" not in str(err.value) and "'matmull'" in str(err.value)


def test_head_merges_copy_straight_into_their_concat():
    """concat(reshape(transpose(a)), ...): one copy into the result instead of two."""
    spec = gc.spec((2, 4, 8, 3))

    def merge(q, k):
        heads = [gc.reshape(gc.transpose(x, (0, 2, 1, 3)), (2, 8, 12)) for x in (q, k)]
        return gc.concat(heads + [gc.reshape(q, (2, 8, 12))], axis=2)

    graph = gc.trace(merge, spec, spec)
    plan = compile_graph(graph)
    assert plan.source.count("np.copyto(_reshaped(") == 2  # the third is contiguous anyway
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((2, 2, 4, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(plan(q, k)[0], run(graph, q, k)[0])


def test_compile_donate_argnums_updates_pytrees_in_place():
    @gc.compile(donate_argnums=0)
    def step(params, grads):
        return {k: params[k] - 0.5 * grads[k] for k in params}

    params = {"a": np.ones(3), "b": np.ones((2, 2))}
    a, b = params["a"], params["b"]
    out = step(params, {"a": np.ones(3), "b": np.full((2, 2), 2.0)})
    assert out["a"] is a and out["b"] is b  # written into the donated arrays
    np.testing.assert_array_equal(a, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(b, np.zeros((2, 2)))
    plain = gc.compile(lambda params, grads: {k: params[k] - grads[k] for k in params})
    kept = {"a": np.ones(3), "b": np.ones((2, 2))}
    result = plain(kept, kept)
    assert result["a"] is not kept["a"] and (kept["a"] == 1).all()


def test_compile_static_argnums_select_the_graph_and_are_part_of_the_signature():
    calls = []

    def f(x, training):
        calls.append(training)
        return x * 2.0 if training else x + 1.0

    g = gc.compile(f, static_argnums=1)
    np.testing.assert_array_equal(g(np.ones(2), True), [2.0, 2.0])
    np.testing.assert_array_equal(g(np.ones(2), False), [2.0, 2.0])
    np.testing.assert_array_equal(g(np.zeros(2), False), [1.0, 1.0])
    np.testing.assert_array_equal(g(np.zeros(2), True), [0.0, 0.0])
    assert calls == [True, False]  # traced once per static value, with the Python value
    assert len(g.recompiles) == 1
    assert g.recompiles[0].endswith("training (static): True -> False")
    with pytest.raises(gc.GraphcError, match="static argument training is a list"):
        g(np.ones(2), [1])
    with pytest.raises(gc.GraphcError, match="static_argnums has 3"):
        gc.compile(f, static_argnums=3)(np.ones(2), True)
    with pytest.raises(gc.GraphcError, match="both static and donated"):
        gc.compile(f, static_argnums=1, donate_argnums=1)


def test_recompile_log_names_the_argument_that_changed(caplog):
    f = gc.compile(lambda params, x: params["w"] @ x)
    w = {"w": np.ones((2, 3), np.float32)}
    with caplog.at_level(logging.INFO, logger="graphc"):
        f(w, np.ones(3, np.float32))
        f(w, np.ones(3, np.float32))
        f(w, np.ones((3, 4), np.float32))
        f({"w": np.ones((5, 3), np.float32)}, np.ones((3, 4), np.float32))
    assert f.recompiles == [
        "recompiling lambda (compilation 2): x: float32[3] -> float32[3, 4]",
        "recompiling lambda (compilation 3): params.w: float32[2, 3] -> float32[5, 3]"]
    logged = [r.getMessage() for r in caplog.records if "recompiling" in r.getMessage()]
    assert logged == ["graphc: " + m for m in f.recompiles]
    assert all(r.levelno == logging.INFO for r in caplog.records
               if "recompiling" in r.getMessage())


def test_a_partial_or_callable_object_is_named_by_its_type_everywhere(caplog):
    """function_name's rule (a callable's __name__, else its type's) holds for every place a
    function is named: a trace's graph, gc.compile's and gc.grad's recompile lines."""
    def scaled(x, k):
        return gc.sum(x * k)

    p = functools.partial(scaled, k=2.0)
    assert gc.trace(p, gc.spec((3,))).name == "partial"
    compiled, differentiated = gc.compile(p), gc.grad(p)
    with caplog.at_level(logging.INFO, logger="graphc"):
        for f in (compiled, differentiated):
            f(np.ones(3, np.float32))
            f(np.ones(4, np.float32))
    assert compiled.recompiles == [
        "recompiling partial (compilation 2): x: float32[3] -> float32[4]"]
    logged = [r.getMessage() for r in caplog.records if "recompiling" in r.getMessage()]
    # (gc.grad's names the argument by fn's parameter too: it said "arg0", its own name)
    assert logged == ["graphc: recompiling partial (compilation 2): x: float32[3] -> "
                      "float32[4]"] * 2

    class Head:
        def __call__(self, x):
            return gc.sum(x)

    assert gc.trace(Head(), gc.spec((2,))).name == "Head"
