"""Review of session 12: plan.memory's workspace_reserved and plans in forked processes."""
import os

import numpy as np
import pytest

import graphc as gc
from graphc.transforms import Compiled
from ir.errors import GraphcError
from runtime import memory, threads
from runtime.codegen import compile_graph
from runtime.jit import enabled as jit_enabled
from runtime.polymorphic import PolymorphicPlan

from test_fork import _args, _in_child, _mlp, _parent_started_openmp as _openmp_started
from test_trainer import make_trainer

F32 = np.dtype("float32")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
needs_jit = pytest.mark.skipif(not jit_enabled(), reason="GRAPHC_JIT=0 or numba missing")


@needs_jit
# ---- forked children ----------------------------------------------------------------------------
@needs_fork
def test_a_polymorphic_plan_in_a_forked_child():
    step = gc.compile(gc.value_and_grad(_mlp, argnums=(1, 2)),
                      polymorphic_shapes=[("b", 128), None, None])
    a3, a5 = _args(0, 3 * 64), _args(1, 5 * 64)
    want3, want5 = step(*a3), step(*a5)
    _openmp_started()

    def work():
        return step(*a5), step(*a3), step(*_args(2, 7 * 64))

    (got5, got3, got7), caught = _in_child(work)
    want7 = Compiled(gc.value_and_grad(_mlp, argnums=(1, 2)), jit=False)(*_args(2, 7 * 64))
    for got, want in ((got5, want5), (got3, want3), (got7, want7)):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        for g, w in zip(got[1], want[1]):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    assert [name for name, *_ in caught].count("ForkedProcessWarning") == 1


@needs_fork
def test_donated_inputs_in_a_forked_child_leave_the_parents_arrays():
    def update(w, m, g):
        m2 = m * 0.9 + g
        return w - 0.1 * m2, m2

    step = gc.compile(update, donate_argnums=(0, 1))
    rng = np.random.default_rng(3)
    w0, m0, g = (rng.standard_normal((300, 200)).astype(np.float32) for _ in range(3))
    w, m = step(w0.copy(), m0.copy(), g)  # starts OpenMP; warm
    want = [w0.copy(), m0.copy()]
    for _ in range(3):
        want = list(step(want[0], want[1], g))
    _openmp_started()
    mine = [w0.copy(), m0.copy()]
    before = [a.copy() for a in mine]

    def work():
        state = mine
        for _ in range(3):
            state = list(step(state[0], state[1], g))
        return state

    got, _ = _in_child(work)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(mine, before):  # the child's writes stay in the child
        np.testing.assert_array_equal(a, b)


@needs_fork
def test_a_check_finite_plan_in_a_forked_child_names_the_op():
    graph = gc.trace(lambda x, w: gc.sum(gc.log(x @ w) * 2.0), gc.spec((64, 32)),
                     gc.spec((32, 16)))
    plan = compile_graph(graph, check_finite=True)
    rng = np.random.default_rng(4)
    x, w = np.abs(rng.standard_normal((64, 32))).astype(np.float32), \
        np.abs(rng.standard_normal((32, 16))).astype(np.float32)
    want = plan(x, w)[0]
    _openmp_started()

    def work():
        good = float(plan(x, w)[0])
        try:
            plan(-x, w)
        except GraphcError as exc:
            return good, str(exc)
        return good, None

    (good, message), _ = _in_child(work)
    np.testing.assert_allclose(good, want, rtol=1e-5)
    assert message is not None and "log" in message


@needs_fork
def test_a_trainer_steps_in_a_forked_child_as_in_its_parent():
    trainer = make_trainer(steps=10)
    trainer.train_step()
    _openmp_started()
    start = {k: a.copy() for k, a in trainer.state_arrays().items()}

    def work():
        losses = [trainer.train_step() for _ in range(4)]
        return losses, {k: a.copy() for k, a in trainer.state_arrays().items()}

    (losses, state), _ = _in_child(work)
    for k, a in trainer.state_arrays().items():
        np.testing.assert_array_equal(a, start[k])  # the parent's state is untouched
    want = [trainer.train_step() for _ in range(4)]
    np.testing.assert_allclose(losses, want, rtol=1e-5)
    for k, a in trainer.state_arrays().items():
        np.testing.assert_allclose(state[k], a, rtol=1e-4, atol=1e-6)


@needs_fork
def test_a_grandchild_runs_plans_too():
    step = gc.compile(_mlp)
    args = _args(5)
    want = float(step(*args))
    _openmp_started()

    def child():
        mine = float(step(*args))
        value, caught = _in_child(lambda: (float(step(*args)),
                                           float(compile_graph(step.plan_for(*args).graph)(
                                               *args)[0]),
                                           threads.forked_from_openmp()), seconds=40)
        return mine, value

    (mine, (grand, fresh, flagged)), _ = _in_child(child)
    assert flagged
    for v in (mine, grand, fresh):
        np.testing.assert_allclose(v, want, rtol=1e-5)


@needs_jit
@needs_fork
def test_a_fast_math_plan_in_a_forked_child():
    step = gc.compile(lambda x, w1, w2: gc.sum(gc.exp(gc.tanh(x @ w1)) @ w2), fast_math=True)
    args = _args(6)
    want = float(step(*args))
    _openmp_started()
    (got, fast), _ = _in_child(lambda: (float(step(*args)),
                                        step.plan_for(*args)._forked_twin.fast_math))
    assert fast
    np.testing.assert_allclose(got, want, rtol=1e-4)


@needs_fork
def test_waiting_for_background_kernels_in_a_forked_child(monkeypatch):
    """A plan whose generated kernels the parent's background compiler had not finished:
    wait_for_kernels() in the child loaded them and ran each once to warm it, a parallel
    loop there, which numba ends with SIGTERM."""
    from runtime import jit as jit_kernels, tiering
    monkeypatch.setattr(tiering, "compiled", lambda source, spec: False)
    monkeypatch.setattr(tiering, "submit", lambda jobs: None)  # no compiler process
    parent = os.getpid()  # whose compiler is still at work (the child forgets it)
    monkeypatch.setattr(tiering, "running", lambda: os.getpid() == parent)
    monkeypatch.setattr(jit_kernels, "_WARM", set())
    graph = gc.trace(lambda x: gc.tanh(x * 1.25) * 2.0 + 1.0, gc.spec((512, 512)))
    plan = compile_graph(graph, jit=True, background_compile=True)
    assert plan.kernels_pending  # a parallel kernel: 512 x 512 elements
    x = np.random.default_rng(7).standard_normal((512, 512)).astype(np.float32)
    want = plan(x)[0]  # tier 0, numpy's values; starts numba's threads
    _openmp_started()
    assert plan.kernels_pending

    def work():
        plan.wait_for_kernels()
        return plan(x)[0]

    got, _ = _in_child(work)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _ln_loss(x, w1, w2, y):
    return gc.cross_entropy(gc.gelu(gc.layer_norm(x @ w1)) @ w2, y)


def _ln_args():
    rng = np.random.default_rng(8)
    return [rng.standard_normal((256, 128)).astype(np.float32),
            rng.standard_normal((128, 512)).astype(np.float32) * 0.1,
            rng.standard_normal((512, 64)).astype(np.float32) * 0.1,
            rng.integers(0, 64, 256)]


# numba's fused kernels keep this step's plan at 3.2 MB; numpy's kernels need 4.2 MB
# without recomputation, 3.7 MB with it
_LIMIT = 4_000_000


@needs_fork
def test_a_memory_limit_holds_for_plans_built_in_a_forked_child():
    """The budget was met for numba's kernels' memory plan while the child's plan lowers
    without numba: plan.memory["total"] exceeded the memory_limit."""
    f = gc.value_and_grad(_ln_loss, argnums=(1, 2))
    args = _ln_args()
    want = Compiled(f, jit=False)(*args)
    gc.compile(_mlp)(*_args(9))  # parallel kernels have run
    _openmp_started()

    def work():
        step = gc.compile(f, memory_limit=_LIMIT)
        got = step(*args)
        plan = step.plan_for(*args)
        return plan.jit, plan.memory["total"], got

    (jit, total, got), _ = _in_child(work)
    assert not jit and total <= _LIMIT
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@needs_jit
@needs_fork
def test_a_memory_limit_holds_for_the_twin_of_a_parents_plan():
    f = gc.value_and_grad(_ln_loss, argnums=(1, 2))
    args = _ln_args()
    step = gc.compile(f, memory_limit=_LIMIT)
    want = step(*args)
    plan = step.plan_for(*args)
    assert plan.jit and plan.memory["total"] <= _LIMIT
    _openmp_started()

    def work():
        got = step(*args)
        return plan._forked_twin.memory["total"], got

    (total, got), _ = _in_child(work)
    assert total <= _LIMIT
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@needs_fork
def test_a_memory_limit_holds_for_a_polymorphic_plans_new_binding_in_a_child():
    f = gc.value_and_grad(_ln_loss, argnums=(1, 2))
    args = _ln_args()
    step = gc.compile(f, memory_limit=_LIMIT, polymorphic_shapes=[("b", 128), None, None, ("b",)])
    half = [args[0][:128], args[1], args[2], args[3][:128]]
    step(*half)
    assert isinstance(step.plan_for(*half), PolymorphicPlan)
    want = Compiled(f, jit=False)(*args)
    _openmp_started()

    def work():
        got = step(*args)
        return step.plan_for(*args).memory["total"], got

    (total, got), _ = _in_child(work)
    assert total <= _LIMIT
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)


_BEFORE_ANY_PLAN = r"""
import json, os, signal, sys, warnings
import numpy as np
import graphc as gc
from runtime import threads

def mlp(x, w1, w2):
    return gc.sum(gc.tanh(x @ w1) @ w2 * 0.5)

rng = np.random.default_rng(0)
args = [rng.standard_normal(s).astype(np.float32) * 0.1
        for s in ((256, 128), (128, 256), (256, 64))]
step = gc.compile(mlp)

def child(report):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(100)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(step(*args))
        plan = step.plan_for(*args)
        report.update(value=value, flagged=threads.forked_from_openmp(), jit=plan.jit,
                      twin=plan._forked_twin is not None,
                      warned=[w.category.__name__ for w in caught])
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while True:
        chunk = os.read(read, 4096)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    return json.loads(data) if data else {"status": status}

first = child({"omp": threads._uses_gnu_openmp()})  # nothing compiled yet
plan = step.plan_for(*args)  # built, never called: its kernels are loaded
second = child({"omp": threads._uses_gnu_openmp()})
print(json.dumps([first, second, float(step(*args))]))
"""


@needs_jit
def test_a_child_forked_before_any_plan_keeps_numba_and_one_after_a_build_does_not():
    """No numba kernel is loaded before a plan is built: a child forked then builds its
    plans with numba and runs them. Building a plan (never run) loads runtime.gemm's
    parallel kernels, which starts GNU OpenMP: a child forked after that runs the twin (numba
    would end it at its first parallel loop)."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo)
    done = subprocess.run([sys.executable, "-c", _BEFORE_ANY_PLAN], env=env, cwd=repo,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    import json
    first, second, parent = json.loads(done.stdout.strip().splitlines()[-1])
    if not second.get("omp"):
        pytest.skip("numba's threading layer here is not GNU OpenMP")
    assert not first["omp"] and not first["flagged"] and first["jit"] and not first["twin"]
    assert first["warned"] == []
    assert second["flagged"] and second["twin"]
    assert second["warned"] == ["ForkedProcessWarning"]
    np.testing.assert_allclose([first["value"], second["value"]], parent, rtol=1e-5)


# ---- workspace_reserved -------------------------------------------------------------------------
def _resident(address) -> dict:
    """Rss and AnonHugePages of the mapping holding `address` (/proc/self/smaps), bytes."""
    found, inside = {}, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head in ("Rss:", "AnonHugePages:"):
                found[head[:-1]] = int(line.split()[1]) * 1024
    return found


_SPECS = [
    [("float32", (4 << 20) // 4)],  # exactly the threshold, whole huge pages
    [("float32", (4 << 20) // 4 - 1024)],  # a page below: np.empty
    [("float32", (4 << 20) // 4 - 1025)],  # a page below, not page-sized: np.empty
    [("float32", (4 << 20) // 4 - 1025), ("int8", 1)],  # the padding reaches it: an arena
    [("float16", 1 << 21), ("float64", 1)],  # 4 MiB and 8 bytes: three huge pages
    [("int8", (4 << 20) - 4095), ("bool", 1)],
    [("float64", 0), ("float32", 1 << 20), ("float64", 0), ("int64", 3)],  # empty buffers
    [("float32", 1000)] * 1100,  # a page each
    [("complex64", 600000)],
]


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs /proc/self/smaps")
@pytest.mark.parametrize("spec", _SPECS)
def test_reserved_bytes_bound_what_the_pool_holds_once_written(spec):
    spec = [(np.dtype(d), n) for d, n in spec]
    own = sum(d.itemsize * n for d, n in spec)
    padded = sum(-(-d.itemsize * n // 4096) * 4096 for d, n in spec)
    arrays = memory.allocate_pool(spec)
    reserved = memory.pool_reserved_bytes(spec)
    assert [(a.dtype, a.size) for a in arrays] == spec
    on_arena = arrays[0].base is not None
    if memory._huge_page_arena(1) is not None:
        assert on_arena == (padded >= memory.ARENA_MIN_BYTES)
    if not on_arena:
        assert reserved == own
        return
    assert reserved % (2 << 20) == 0 and padded <= reserved < padded + (2 << 20)
    for k, a in enumerate(arrays):
        a[...] = k % 2
    for k, a in enumerate(arrays):  # the buffers do not overlap
        assert (a == k % 2).all()
    resident = _resident(min(a.ctypes.data for a in arrays if a.size))
    assert resident["Rss"] <= reserved
    assert resident.get("AnonHugePages", 0) <= reserved


def test_the_memory_check_counts_reserved_bytes_around_the_threshold(monkeypatch):
    """A pool just below 4 MiB in its buffers' bytes but an arena by its pages: three
    buffers of 349200 float32 (1396800 bytes, 342 pages each)."""
    n = 349200
    graph = gc.trace(lambda x, y: gc.sum(gc.tanh(x) * gc.exp(y) + gc.sin(x) * gc.cos(y)),
                     gc.spec((n,)), gc.spec((n,)))
    plan = compile_graph(graph, jit=False)
    mem = plan.memory
    assert mem["workspace"] < memory.ARENA_MIN_BYTES
    if memory._huge_page_arena(1) is not None:
        assert plan._buffers[0].base is not None  # views into the arena
    padded = sum(-(-d.itemsize * n // 4096) * 4096 for d, n in plan.memory_plan.buffers)
    assert padded >= memory.ARENA_MIN_BYTES  # the case: an arena by its pages alone
    assert mem["workspace_reserved"] == -(-padded // (2 << 20)) * (2 << 20)
    needed = mem["peak_intermediate"] + mem["outputs"] + mem["constants"]
    gap = mem["workspace_reserved"] - mem["workspace"]
    monkeypatch.setattr(memory, "available_bytes", lambda: needed + gap - 1)
    with pytest.raises(memory.PlanMemoryError):
        compile_graph(graph, jit=False)
    monkeypatch.setattr(memory, "available_bytes", lambda: needed + gap)
    compile_graph(graph, jit=False)


@needs_jit
@needs_fork
def test_control_flow_regions_run_without_numba_in_a_forked_child():
    """Each region's plan is built at the region's first call, as its enclosing plan was:
    the twin's regions without numba."""
    def f(x, w, n):
        def body(h, _):
            h = gc.tanh(h @ w) + h * 0.5
            return h, gc.sum(h)
        h, sums = gc.scan(body, x, None, length=3)
        h = gc.while_loop(lambda v: gc.sum(v * v) > 1.0, lambda v: v * 0.5, h)
        return gc.cond(n > 0, lambda a: a * 2.0, lambda a: a - 1.0, h), sums

    step = gc.compile(f)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((256, 128)).astype(np.float32)
    w = rng.standard_normal((128, 128)).astype(np.float32) * 0.1
    n = np.int64(1)
    want = step(x, w, n)
    _openmp_started()

    def work():
        got = step(x, w, n)
        twin = step.plan_for(x, w, n)._forked_twin
        region_plans = [p for env in twin._envs for v in env.values()
                        if hasattr(v, "plans") for p in v.plans.values()]
        return got, [p.jit for p in region_plans]

    (got, region_jit), _ = _in_child(work)
    assert region_jit and not any(region_jit)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_fork
def test_the_parents_background_compiler_outlives_a_forked_child(monkeypatch, tmp_path):
    """A child forked while the compiler works runs the plan (numpy), forks a grandchild
    and exits; the parent's compiler still finishes, and the parent swaps its kernel in."""
    from runtime import jit as jit_kernels, tiering
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit_kernels, "_LOADED", {})

    def f(x, b):  # a cluster no other test compiles
        return gc.exp(-gc.abs(x * b)) * gc.sqrt(gc.abs(x) + 1.25) - b * 0.75

    graph = gc.trace(f, gc.spec((256, 128)), gc.spec(128))
    x = np.random.default_rng(11).standard_normal((256, 128)).astype(np.float32)
    b = np.linspace(-1, 1, 128, dtype=np.float32)
    plan = compile_graph(graph, jit=True, background_compile=True)
    assert plan.kernels_pending == 1 and tiering.running()
    want = plan(x, b)[0]  # tier 0, while the compiler works
    _openmp_started()

    def work():
        got = plan(x, b)[0]
        grand, _ = _in_child(lambda: plan(x, b)[0], seconds=40)
        return got, grand, tiering.running()

    (got, grand, child_sees_compiler), _ = _in_child(work)
    assert not child_sees_compiler
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grand, want, rtol=1e-6, atol=1e-7)
    plan.wait_for_kernels()
    assert plan.kernels_pending == 0 and list(tmp_path.glob("k_*.ready"))
    assert hasattr(plan._globals[plan.lowered.rendered.fused[0][0]], "py_func")
    np.testing.assert_allclose(plan(x, b)[0], want, rtol=1e-5, atol=1e-6)


def _pool_task(seed):
    """A compiled step in a pool's worker: its value, whether its plan has numba kernels,
    whether the worker counts as forked from GNU OpenMP."""
    step = _POOL_STEP.setdefault("step", gc.compile(_mlp))
    value = float(step(*_args(seed)))
    return value, step.plan_for(*_args(seed)).jit, threads.forked_from_openmp()


_POOL_STEP = {}


@needs_jit
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawned_and_forkserver_workers_keep_numba(method):
    import multiprocessing
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    want = [float(gc.compile(_mlp)(*_args(seed))) for seed in (12, 13)]
    with multiprocessing.get_context(method).Pool(1) as pool:
        got = pool.map_async(_pool_task, (12, 13)).get(timeout=120)
    assert [(jit, flagged) for _, jit, flagged in got] == [(True, False)] * 2
    np.testing.assert_allclose([v for v, _, _ in got], want, rtol=1e-5)
