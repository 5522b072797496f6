"""Memory planning: liveness over the schedule and buffer assignment.

Every computed value gets a storage:
- `pool`: a buffer allocated once per plan and reused by values whose lifetimes do not
  overlap (exact dtype and size match), including in place, when an elementwise op's operand
  dies at that op;
- `donated`: the array of a donated input that is dead by then (parameter and optimiser
  updates write over their inputs);
- `fresh`: allocated per call, for outputs (they escape to the caller) and for ops without
  an `out=` kernel.
Views (reshape, transpose, slice, broadcast) share their operand's storage, so a buffer
lives until the last use of any view of it. A fused node with several results has none of
its own (`results`): each result (its `tuple_get`) gets a storage as above when the node is
reached, written over the node's operands as an elementwise op's would be.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ir.errors import GraphcError
from ir.ops.cluster import parse_program
from ir.types import TupleType, format_bytes

from .op_lowering import (can_emit, inplace_operand, inplace_safe, is_constant,
                          is_fused_result, is_view, scratch_buffers)


@dataclass
class Storage:
    kind: str  # input, constant, view, pool, donated, fresh, fallback, results
    buffer: int | None = None  # pool buffer index
    donor: object = None  # the donated input node
    scratch: tuple = ()  # pool buffers the kernel may use as workspace while it runs


@dataclass
class MemoryPlan:
    storage: dict
    buffers: list  # (dtype, size) per pool buffer
    last_use: dict  # root node -> index of its last use
    root: dict  # node -> the node owning its memory
    escaping: set
    stats: dict = field(default_factory=dict)


def plan_memory(graph, donate=(), jit: bool = False) -> MemoryPlan:
    """`jit`: the plan uses runtime.jit's kernels, which need no workspace."""
    donate = set(donate)
    order = {n: i for i, n in enumerate(graph.nodes)}
    root = {}
    for n in graph.nodes:
        root[n] = root[n.inputs[0]] if is_view(n) else n
    end = len(graph.nodes)
    last_use = {n: order[n] for n in graph.nodes}
    for n in graph.nodes:
        for i in n.inputs:
            r = root[i]
            last_use[r] = max(last_use[r], order[n])
    escaping = {root[o] for o in graph.outputs}
    for r in escaping:
        last_use[r] = end

    storage, buffers, free = {}, [], {}
    donors = {}  # (dtype, shape) -> list of donated inputs, in signature order

    def release(r):
        s = storage.get(r)
        if s is not None and s.kind == "pool":
            key = buffers[s.buffer]
            free.setdefault(key, []).append(s.buffer)

    dying_at = {}
    for r, i in last_use.items():
        dying_at.setdefault(i, []).append(r)
    results_of = {}  # fused node with several results -> its tuple_gets, by index
    for n in graph.nodes:
        if is_fused_result(n):
            results_of.setdefault(n.inputs[0], []).append(n)

    def computed(n, kernel, idx):
        """Storage of n, written by `kernel` (n itself, or the fused node n is a result of)
        at position idx: a donated input, in place of a dying operand, or a pool buffer."""
        if n in escaping:
            donor = _take_donor(n, kernel, idx, donors, last_use, root)
            return Storage("donated", donor=donor) if donor is not None else Storage("fresh")
        inplace = _inplace_operand(n, kernel, idx, last_use, root, storage, escaping)
        if inplace is not None:
            last_use[inplace] = -1  # ownership moves on: not released when it dies
            return Storage("pool", storage[inplace].buffer)
        key = (n.dtype, n.size)
        if free.get(key):
            return Storage("pool", free[key].pop())
        buffers.append(key)
        return Storage("pool", len(buffers) - 1)

    for idx, n in enumerate(graph.nodes):
        if is_fused_result(n):
            pass  # given its storage with its fused node's, below
        elif n.op == "fused" and isinstance(n.type, TupleType):
            storage[n] = Storage("results")
            for r in sorted(results_of.get(n, ()), key=lambda r: r.attrs["index"]):
                storage[r] = computed(r, n, idx)
            # results nothing reads (IR read back, then pruned) still need somewhere to go
            read = {r.attrs["index"] for r in results_of.get(n, ())}
            bufs = []
            for k, t in enumerate(n.type.elements):
                if k not in read:
                    key = (t.dtype, t.size)
                    bufs.append(free[key].pop() if free.get(key) else len(buffers))
                    if bufs[-1] == len(buffers):
                        buffers.append(key)
            storage[n].scratch = tuple(bufs)
            for b in bufs:
                free.setdefault(buffers[b], []).append(b)
        elif n.op == "input":
            storage[n] = Storage("input")
            if n.attrs["name"] in donate:
                donors.setdefault((n.dtype, n.shape), []).append(n)
        elif is_constant(n):
            storage[n] = Storage("constant")
        elif is_view(n):
            storage[n] = Storage("view")
        elif not can_emit(n, jit):
            storage[n] = Storage("fallback")
        else:
            storage[n] = computed(n, n, idx)
        n_scratch = scratch_buffers(n, jit)
        if n_scratch and n in storage and storage[n].kind not in ("fallback", "view",
                                                                  "constant"):
            key = (n.dtype, n.size)
            bufs = []
            for _ in range(n_scratch):
                if free.get(key):
                    bufs.append(free[key].pop())
                else:
                    bufs.append(len(buffers))
                    buffers.append(key)
            storage[n].scratch = tuple(bufs)
            for b in bufs:
                free.setdefault(key, []).append(b)
        for r in dying_at.get(idx, ()):
            if last_use.get(r) == idx:
                release(r)

    mp = MemoryPlan(storage, buffers, last_use, root, escaping)
    mp.stats = _stats(graph, mp)
    return mp


def _writable_operands(n):
    """The operands n may write its result over: any (elementwise ops) or one."""
    position = inplace_operand(n)
    if position is not None:
        return [n.inputs[position]]
    return list(n.inputs) if inplace_safe(n) else []


def _inplace_operand(n, kernel, idx, last_use, root, storage, escaping):
    roots = [root[i] for i in kernel.inputs]
    for i in _writable_operands(kernel):
        s = storage.get(i)
        if (s is not None and s.kind == "pool" and root[i] is i and i not in escaping
                and last_use[i] == idx and i.shape == n.shape and i.dtype == n.dtype
                and sum(r is i for r in roots) == 1):
            return i
    return None


def _take_donor(n, kernel, idx, donors, last_use, root):
    candidates = donors.get((n.dtype, n.shape), [])
    roots = [root[i] for i in kernel.inputs]
    ordered = candidates
    if n is not kernel:  # a fused node's result: first the donors its own value reads
        reads = result_operands(kernel, n.attrs["index"])
        ordered = sorted(candidates, key=lambda d: not any(i is d for i in reads))  # stable
    for d in ordered:
        dead_before = last_use[d] < idx
        dies_here = (last_use[d] == idx and any(i is d for i in _writable_operands(kernel))
                     and sum(r is d for r in roots) == 1)
        if dead_before or dies_here:
            candidates[:] = [c for c in candidates if c is not d]
            return d
    return None


def result_operands(fused, k) -> list:
    """The operands that result k of a fused node with several results is computed from: an
    AdamW update's new m reads the old m (and the gradient), not the parameter, so it is
    written over the old m, each state in place of itself as with one kernel per value."""
    instructions = parse_program(fused.attrs["program"])
    reads, todo = set(), [fused.attrs["results"][k]]
    while todo:
        for kind, i in instructions[todo.pop()][1]:
            if kind == "a":
                reads.add(i)
            else:
                todo.append(i)
    return [fused.inputs[i] for i in sorted(reads)]


def _stats(graph, mp: MemoryPlan) -> dict:
    itemsize_bytes = lambda n: n.size * n.dtype.itemsize  # noqa: E731
    pool = sum(dtype.itemsize * size for dtype, size in mp.buffers)
    inputs = sum(itemsize_bytes(n) for n in graph.inputs)
    constants = sum(itemsize_bytes(n) for n in graph.nodes
                    if mp.storage[n].kind == "constant")
    outputs = sum(itemsize_bytes(r) for r in mp.escaping if mp.storage[r].kind in
                  ("fresh", "fallback"))
    # fallback temporaries: live from definition to last use; find their peak
    order = {n: i for i, n in enumerate(graph.nodes)}
    events = []
    for n in graph.nodes:
        if mp.storage[n].kind == "fallback" and n not in mp.escaping:
            events.append((order[n], itemsize_bytes(n)))
            events.append((mp.last_use[n] + 0.5, -itemsize_bytes(n)))
    live = peak_temp = 0
    for _, delta in sorted(events):
        live += delta
        peak_temp = max(peak_temp, live)
    return {
        "inputs": inputs,
        "constants": constants,
        "workspace": pool,
        "temporaries": peak_temp,
        "outputs": outputs,
        "peak_intermediate": pool + peak_temp,
        "total": inputs + constants + pool + peak_temp + outputs,
    }


def format_memory_plan(graph, mp: MemoryPlan) -> str:
    """One line per node (its storage), the pool's buffers and the byte counts."""
    ordered = list(graph.inputs) + [n for n in graph.nodes if n.op != "input"]
    ref = {n: f"%{k}" for k, n in enumerate(ordered)}
    lines = []
    for n in graph.nodes:
        s = mp.storage[n]
        where = s.kind
        if s.kind == "pool":
            where += f" buf{s.buffer}"
        elif s.kind == "donated":
            where += f" by {ref[s.donor]} ({s.donor.attrs['name']})"
        elif s.kind == "view":
            where += f" of {ref[mp.root[n]]}"
        if s.scratch:
            where += ", workspace " + ", ".join(f"buf{b}" for b in s.scratch)
        if n in mp.escaping:
            where += ", output"
        lines.append(f"{ref[n]:>5} {n.op:<16} {str(n.type):<20} {where}")
    lines.append("")
    for k, (dtype, size) in enumerate(mp.buffers):
        lines.append(f"buf{k}: {dtype}[{size}] ({format_bytes(size * dtype.itemsize)})")
    lines.append("bytes: " + ", ".join(f"{key} {value:,}" for key, value in mp.stats.items()))
    return "\n".join(lines)


class PlanMemoryError(GraphcError):
    """A plan whose buffers would not fit in the memory the machine has available."""

    def __init__(self, message, needed: int, available: int):
        super().__init__(message)
        self.needed, self.available = needed, available


def available_bytes() -> int | None:
    """Memory the kernel says can be allocated without swapping (Linux's MemAvailable), or
    None where it cannot be read: then nothing is refused."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(stats: dict, name: str) -> None:
    """Refuse a plan before its buffers are allocated when what one call needs beyond its
    inputs (pool buffers, temporaries, outputs) exceeds the available memory: numpy would
    otherwise fail deep inside with 'Unable to allocate', or the OOM killer end the process."""
    needed = stats["peak_intermediate"] + stats["outputs"] + stats["constants"]
    available = available_bytes()
    if available is not None and needed > available:
        raise PlanMemoryError(f"plan {name!r} needs {format_bytes(needed)} for its buffers, "
                              f"but only {format_bytes(available)} of memory is available",
                              needed, available)
