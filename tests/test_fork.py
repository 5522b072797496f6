"""Plans in a process forked after its parent ran parallel kernels.

GNU OpenMP's threads do not survive fork(): numba ends a child that starts a parallel loop,
and a multiprocessing pool of such children used to hang. Such a child runs plans without
numba kernels (runtime.codegen.Plan._in_forked_child), with one ForkedProcessWarning.
"""
import multiprocessing
import os
import pickle
import signal
import warnings

import numpy as np
import pytest

import graphc as gc
from runtime import lowering, threads, tiering
from runtime.codegen import ForkedProcessWarning, compile_graph

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _mlp(x, w1, w2):
    return gc.sum(gc.tanh(x @ w1) @ w2 * 0.5)


def _args(seed=0, batch=256):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) * 0.1
            for s in ((batch, 128), (128, 256), (256, 64))]


def _in_child(work, seconds=120, record_warnings=True):
    """work() in a forked child; (what it returns (pickled through a pipe), the warnings it
    gave as (category, message, file)), or the exception it raised. The child is killed by
    an alarm after `seconds` (a hang fails the test). Without `record_warnings` the child
    leaves the warnings module as it found it (its filters and registries) and reports
    none."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            signal.alarm(seconds)
            if record_warnings:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    value = work()
            else:
                value, caught = work(), []
            result = ("ok", value, [(w.category.__name__, str(w.message), w.filename)
                                    for w in caught])
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result, code = ("error", repr(exc), []), 1
        with os.fdopen(write, "wb") as fh:
            pickle.dump(result, fh)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert data, f"the child died without a result (status {status})"
    kind, value, caught = pickle.loads(data)
    assert kind == "ok", value
    return value, caught


def _parent_started_openmp():
    if not threads._uses_gnu_openmp():
        pytest.skip("numba's threading layer here is not GNU OpenMP")


def test_a_jit_plan_called_in_a_forked_child_gives_its_values():
    step = gc.compile(gc.value_and_grad(_mlp, argnums=(1, 2)))
    args = _args()
    want = step(*args)
    _parent_started_openmp()
    (loss, grads), caught = _in_child(lambda: step(*args))
    np.testing.assert_allclose(loss, want[0], rtol=1e-5)
    for g, w in zip(grads, want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    forked = [(m, where) for name, m, where in caught if name == ForkedProcessWarning.__name__]
    assert len(forked) == 1 and "spawn" in forked[0][0]
    assert os.path.basename(forked[0][1]) == os.path.basename(__file__)  # the user's line


def test_the_child_builds_its_twin_once_and_new_plans_without_numba():
    graph = gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()])
    plan = compile_graph(graph)
    assert plan.jit
    args = _args(1)
    want = plan(*args)[0]
    _parent_started_openmp()

    def work():
        first = plan(*args)[0]
        twin = plan._forked_twin
        second = plan(*args)[0]
        fresh = compile_graph(graph)
        return (float(first), float(second), twin is plan._forked_twin, twin.jit,
                fresh.jit, float(fresh(*args)[0]), threads.forked_from_openmp())

    (first, second, same_twin, twin_jit, fresh_jit, fresh_value, flagged), caught = \
        _in_child(work)
    assert flagged and same_twin and not twin_jit and not fresh_jit
    for value in (first, second, fresh_value):
        np.testing.assert_allclose(value, want, rtol=1e-5)
    assert [name for name, *_ in caught].count(ForkedProcessWarning.__name__) == 1
    assert not threads.forked_from_openmp()  # the parent is unchanged


def test_checked_runs_and_profiles_in_a_forked_child():
    graph = gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()])
    plan = compile_graph(graph)
    args = _args(2)
    want = plan(*args)[0]
    _parent_started_openmp()

    def work():
        checked = plan.run_checked(*args)[0]
        rows = plan.profile(*args, repeat=1, file=False)
        return float(checked), sorted({r["op"] for r in rows})

    (checked, ops), _ = _in_child(work)
    np.testing.assert_allclose(checked, want, rtol=1e-5)
    assert "matmul" in ops


def test_a_fork_pool_maps_a_compiled_step():
    """The reported hang: multiprocessing's default start method on Linux is fork."""
    want = [_call_global_step(k) for k in range(4)]
    _parent_started_openmp()
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        with ctx.Pool(2) as pool:
            got = pool.map_async(_call_global_step, range(4)).get(timeout=180)
    np.testing.assert_allclose(got, want, rtol=1e-5)


_GLOBAL = {}


def _call_global_step(k):
    step, args = _GLOBAL["step"], _GLOBAL["args"]
    return float(step(args[0] * (k + 1), *args[1:]))


@pytest.fixture(autouse=True)
def _global_step(request):
    if request.node.name == "test_a_fork_pool_maps_a_compiled_step":
        _GLOBAL["step"], _GLOBAL["args"] = gc.compile(_mlp), _args(3)
    yield
    _GLOBAL.clear()


def test_a_numpy_plan_with_its_worker_thread_runs_in_a_forked_child():
    """GRAPHC_THREADS=2's numpy plans hand half of a split op to a worker thread; a child
    has none of its parent's threads, so it starts its own."""
    graph = gc.trace(lambda x: gc.tanh(x) * 2.0 + 1.0, gc.spec((512, 512)))
    plan = compile_graph(graph, jit=False, parallel=True)
    assert "_submit(" in plan.source
    x = np.random.default_rng(4).standard_normal((512, 512)).astype(np.float32)
    want = plan(x)[0]
    assert lowering._WORKER  # the parent's thread has started
    parents = lowering._WORKER[0]

    def work():
        fresh = not lowering._WORKER
        value = plan(x)[0]
        return fresh, lowering._WORKER[0] is not parents, value

    (fresh, own, got), _ = _in_child(work, seconds=60)
    assert fresh and own
    np.testing.assert_array_equal(got, want)


def test_a_child_forgets_the_parents_background_compiler(monkeypatch):
    """It closes its copy of the pipe (the compiler sees the end when the parent goes), and
    never stops or waits for a process that is not its own."""
    read, write = os.pipe()

    class Process:
        stdin = os.fdopen(write, "wb")

    monkeypatch.setattr(tiering, "_COMPILER", {"process": Process(), "jobs": [], "log": ""})
    monkeypatch.setattr(tiering, "_QUEUED", [("source", "spec")])
    monkeypatch.setattr(tiering, "_OFF", [])
    monkeypatch.setattr(tiering, "_PARENTS_COMPILER", [])

    def work():
        tiering._forget_the_parents_compiler()
        return (dict(tiering._COMPILER), list(tiering._QUEUED), list(tiering._OFF),
                len(tiering._PARENTS_COMPILER))

    (compiler, queued, off, kept), _ = _in_child(work, seconds=30)
    assert compiler == {} and queued == [] and off == [True] and kept == 1
    Process.stdin.close()  # the parent's copy: now every writer is closed
    assert os.read(read, 1) == b""  # end of file: the child's copy was closed too
    os.close(read)


def test_graphcs_warnings_point_at_the_users_line():
    """ir.errors.user_stacklevel skips graphc's frames (runtime.jit's kernel-cache warning
    here, called from this file)."""
    from runtime import jit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jit._warn_once(("test_fork", object()), "a kernel-cache warning")
    assert [os.path.basename(w.filename) for w in caught] == [os.path.basename(__file__)]


def test_a_plan_in_a_forked_child_describes_its_twin():
    """plan.source, kernel_graph and memory are the plan that runs there, the twin's."""
    graph = gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()])
    plan = compile_graph(graph)
    parent_source = plan.source
    _parent_started_openmp()

    def work():
        source, kernels, memory = plan.source, plan.kernel_graph, plan.memory
        twin = plan._forked_twin
        return (source == twin._source, kernels is twin._kernel_graph,
                memory == dict(twin.memory_plan.stats), source == parent_source,
                plan.peak_intermediate_bytes)

    (same_source, same_kernels, same_memory, parents_source, peak), _ = \
        _in_child(work)
    assert same_source and same_kernels and same_memory
    assert not parents_source  # the numba plan's source is not what runs in the child
    assert peak > 0
    assert plan.source == parent_source  # the parent is unchanged


def test_a_grandchild_is_warned_again():
    """Warnings are per process: the flag a warned child set is cleared in its children."""
    plan = compile_graph(gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()]))
    args = _args(3)
    want = float(plan(*args)[0])
    _parent_started_openmp()

    def child():
        first = float(plan(*args)[0])
        grandchild_value, grandchild_caught = _in_child(lambda: float(plan(*args)[0]))
        return first, grandchild_value, [name for name, *_ in grandchild_caught]

    (first, second, grandchild_warnings), caught = _in_child(child)
    np.testing.assert_allclose([first, second], want, rtol=1e-5)
    assert [name for name, *_ in caught].count(ForkedProcessWarning.__name__) == 1
    assert grandchild_warnings.count(ForkedProcessWarning.__name__) == 1
