"""The plan's pool buffers carved from one huge-page arena (runtime.memory.allocate_pool)."""
import os

import numpy as np
import pytest

import graphc as gc
from runtime import memory
from runtime.codegen import compile_graph

F32 = np.dtype("float32")


def _owner(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    base = array.base
    return base.obj if isinstance(base, memoryview) else base


def _arena_of(arrays):
    """The mmap all the arrays are views of, or None for separate allocations."""
    import mmap
    owners = {id(_owner(a)) for a in arrays}
    owner = _owner(arrays[0])
    return owner if len(owners) == 1 and isinstance(owner, mmap.mmap) else None


@pytest.mark.skipif(memory._huge_page_arena(1) is None, reason="no madvise(MADV_HUGEPAGE)")
def test_a_large_pool_is_one_aligned_arena_of_disjoint_buffers():
    spec = [(F32, 1 << 20), (np.dtype("float64"), 3), (np.dtype("bool"), 5000), (F32, 0),
            (F32, 300_000)]
    arrays = memory.allocate_pool(spec)
    assert _arena_of(arrays) is not None
    assert arrays[0].ctypes.data % (2 << 20) == 0  # huge-page aligned start
    for a, (dtype, size) in zip(arrays, spec):
        assert a.dtype == dtype and a.shape == (size,) and a.flags.writeable
        assert a.flags.c_contiguous and a.ctypes.data % 4096 == 0
    for k, a in enumerate(arrays):
        a[...] = k + 1
    for k, a in enumerate(arrays):  # nothing written over another buffer
        assert (a == np.array(k + 1).astype(a.dtype)).all()
    ends = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays if a.size)
    assert all(e0 <= s1 for (_, e0), (s1, _) in zip(ends, ends[1:]))


def test_a_small_pool_keeps_separate_arrays():
    arrays = memory.allocate_pool([(F32, 1000), (F32, 2000)])
    assert _arena_of(arrays) is None
    assert [a.shape for a in arrays] == [(1000,), (2000,)]


@pytest.mark.skipif(not hasattr(os, "fork") or memory._huge_page_arena(1) is None,
                    reason="needs fork and madvise(MADV_HUGEPAGE)")
def test_a_forked_child_does_not_write_into_its_parents_buffers():
    """The mapping is private: mmap's default for anonymous memory is shared, which a child
    process running the same plan would write into."""
    (buf,) = memory.allocate_pool([(F32, 2 << 20)])
    buf[:] = 1.0
    pid = os.fork()
    if pid == 0:  # the child
        buf[:] = 2.0
        os._exit(0 if buf[0] == 2.0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (buf == 1.0).all()


def test_a_plan_on_the_arena_equals_one_on_separate_arrays(monkeypatch):
    def mlp(x, w1, w2):
        h = gc.tanh(x @ w1)
        return gc.sum(gc.softmax(h @ w2, axis=-1) * h[:, :64])

    shapes = [(1024, 256), (256, 512), (512, 64)]
    graph = gc.trace(gc.value_and_grad(mlp, argnums=(1, 2)), *[gc.spec(s) for s in shapes])
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in shapes]
    plan = compile_graph(graph)
    assert plan.memory["workspace"] >= memory.ARENA_MIN_BYTES
    assert _arena_of(plan._buffers) is not None or memory._huge_page_arena(1) is None
    got = plan(*args)
    monkeypatch.setattr(memory, "ARENA_MIN_BYTES", 1 << 62)
    separate = compile_graph(graph)
    assert _arena_of(separate._buffers) is None
    for a, b in zip(got, separate(*args)):
        np.testing.assert_array_equal(a, b)


def _span(arrays) -> int:
    """Bytes from the first array's start to the end of the last one's huge page."""
    starts = [a.ctypes.data for a in arrays if a.size]
    ends = [a.ctypes.data + a.nbytes for a in arrays if a.size]
    first = min(starts) // (2 << 20) * (2 << 20)
    return -(-(max(ends) - first) // (2 << 20)) * (2 << 20)


@pytest.mark.skipif(memory._huge_page_arena(1) is None, reason="no madvise(MADV_HUGEPAGE)")
@pytest.mark.parametrize("sizes", [[1 << 20, 3, 5000], [(4 << 20) // 4], [1000, 1 << 20, 7]])
def test_reserved_bytes_cover_the_arena_and_its_last_huge_page(sizes):
    spec = [(F32, n) for n in sizes]
    arrays = memory.allocate_pool(spec)
    own = sum(4 * n for n in sizes)
    reserved = memory.pool_reserved_bytes(spec)
    assert _arena_of(arrays) is not None
    assert reserved == _span(arrays)  # whole huge pages from the aligned start
    assert own <= reserved < own + (2 << 20) + 4096 * len(sizes)


def test_reserved_bytes_of_a_small_pool_are_its_buffers():
    spec = [(F32, 1000), (np.dtype("float64"), 7)]
    assert memory.pool_reserved_bytes(spec) == 4000 + 56


def test_a_plans_memory_reports_its_reserved_workspace():
    def f(x, w):
        return gc.sum(gc.tanh(x @ w) * 2.0)

    graph = gc.trace(gc.value_and_grad(f, argnums=1), gc.spec((1024, 300)),
                     gc.spec((300, 1000)))
    mem = compile_graph(graph).memory
    assert mem["workspace"] >= memory.ARENA_MIN_BYTES
    assert mem["workspace_reserved"] % (2 << 20) == 0
    assert mem["workspace"] < mem["workspace_reserved"] < mem["workspace"] + (2 << 20) + (1 << 16)


def test_the_memory_check_counts_the_arenas_alignment(monkeypatch):
    """A pool whose buffers fit the available memory but whose arena does not is refused
    before it is allocated."""
    def f(x, w):
        return gc.sum(gc.tanh(x @ w) * 2.0)

    graph = gc.trace(f, gc.spec((1000, 300)), gc.spec((300, 1100)))  # a 4.4 MB pool
    mem = compile_graph(graph).memory
    needed = mem["peak_intermediate"] + mem["outputs"] + mem["constants"]
    gap = mem["workspace_reserved"] - mem["workspace"]
    assert gap > 0
    monkeypatch.setattr(memory, "available_bytes", lambda: needed + gap // 2)
    with pytest.raises(memory.PlanMemoryError, match="needs .* for its buffers"):
        compile_graph(graph)
    monkeypatch.setattr(memory, "available_bytes", lambda: needed + gap)
    compile_graph(graph)
