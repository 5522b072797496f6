"""Memory planning: liveness over the schedule and buffer assignment.

Every computed value gets a storage:
- `pool`: a buffer allocated once per plan and reused by values whose lifetimes do not
  overlap (exact dtype and size match), including in place, when an elementwise op's operand
  dies at that op;
- `donated`: the array of a donated input that is dead by then (parameter and optimiser
  updates write over their inputs);
- `fresh`: allocated per call, for outputs (they escape to the caller) and for ops without
  an `out=` kernel;
- `part`: a view inside the buffer of the concat that reads it (`products_into_concats`):
  attention's per-head gradient products are written straight into their slice of the
  (B, T, 3C) qkv gradient, so the concat copies nothing. The concat's buffer is taken from
  the pool at its first part, where one of its size is free then (otherwise the concat
  copies as before), and lives until the concat's last use.
- `in-reader`: none, for a softmax_grad its only reader's kernel computes
  (runtime.lowering.softmax_grads_scaled_by_reader): the reader's storage is chosen at the
  softmax_grad, as the kernel's, and may be the buffer of y or g dying there (the kernel
  reads a row before it writes it). Planned as two values, the softmax_grad's buffer was
  taken while y and g were live: one attention-score-sized buffer more (tiny 1 MiB).
Views (reshape, transpose, slice, broadcast) share their operand's storage, so a buffer
lives until the last use of any view of it. A fused node with several results has none of
its own (`results`): each result (its `tuple_get`) gets a storage as above when the node is
reached, written over the node's operands as an elementwise op's would be.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ir.errors import GraphcError
from ir.ops.cluster import parse_program
from ir.types import TupleType, format_bytes

from . import lowering
from .lowering import reshaped
from .op_lowering import (can_emit, inplace_operand, inplace_safe, is_constant,
                          is_fused_result, is_view, jit_emitter, scratch_buffers)


@dataclass(frozen=True)
class Part:
    """Where a product lives inside its concat's buffer: the concat's result sliced by
    `index`, then `steps` (("reshape", shape) or ("transpose", perm)) undo the views between
    the product and the concat (`chain`, from the product up), giving the product's shape."""
    concat: object
    position: int  # which of the concat's operands
    index: tuple  # slices of the concat's result
    steps: tuple
    chain: tuple  # the view nodes from the product to the concat's operand, in graph order


@dataclass
class Storage:
    kind: str  # input, constant, view, pool, donated, fresh, fallback, part, results,
    # in-reader
    buffer: int | None = None  # pool buffer index (for a part: its concat's buffer)
    donor: object = None  # the donated input node
    scratch: tuple = ()  # pool buffers the kernel may use as workspace while it runs
    part: Part | None = None  # kind "part": where in its concat's buffer


@dataclass
class MemoryPlan:
    storage: dict
    buffers: list  # (dtype, size) per pool buffer
    last_use: dict  # root node -> index of its last use
    root: dict  # node -> the node owning its memory
    escaping: set
    stats: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)  # product -> Part (products_into_concats)
    # mul -> (softmax_grad, scale) its kernel computes (softmax_grads_scaled_by_reader)
    scaled: dict = field(default_factory=dict)


def plan_memory(graph, donate=(), jit: bool = False, alias_inputs: bool = False) -> MemoryPlan:
    """`jit`: the plan uses runtime.jit's kernels, which need no workspace, and
    runtime.gemm's products, which write into their concat's buffer (`products_into_concats`).
    `alias_inputs`: outputs in the inputs' arrays are not copied (runtime.stages)."""
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
    parts = products_into_concats(graph, escaping) if jit else {}
    scaled = lowering.softmax_grads_scaled_by_reader(graph, jit)
    in_reader = {sg: mul for mul, (sg, _) in scaled.items()}  # softmax_grad -> its reader
    readers = set(scaled)
    concat_buffer = {}  # concat -> its pool buffer, taken at its first part

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

    def computed(n, kernel, idx, writable=None):
        """Storage of n, written by `kernel` (n itself, or the fused node n is a result of)
        at position idx: a donated input, in place of a dying operand, or a pool buffer.
        `writable`: the operands it may be written over (the kernel's own rule if None)."""
        if writable is None:
            writable = _writable_operands(kernel)
        if n in escaping:
            donor = _take_donor(n, kernel, idx, donors, last_use, root, writable)
            return Storage("donated", donor=donor) if donor is not None else Storage("fresh")
        inplace = _inplace_operand(n, kernel, idx, last_use, root, storage, escaping,
                                   writable)
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
        elif n in parts and _buffer_for_parts(parts[n].concat, concat_buffer, free, buffers):
            storage[n] = Storage("part", concat_buffer[parts[n].concat], part=parts[n])
        elif concat_buffer.get(n) is not None:
            storage[n] = Storage("pool", concat_buffer[n])
        elif n in in_reader:  # its reader's kernel writes the reader's value here
            storage[n] = Storage("in-reader")
            storage[in_reader[n]] = computed(in_reader[n], n, idx, writable=n.inputs)
        elif n in readers:
            pass  # planned with its softmax_grad, the step before
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

    parts = {p: part for p, part in parts.items() if storage[p].kind == "part"}
    mp = MemoryPlan(storage, buffers, last_use, root, escaping, parts=parts, scaled=scaled)
    mp.stats = _stats(graph, mp, donate, alias_inputs)
    return mp


# Parts are written into their concat's buffer only where one of its size is free at the
# first part: the concat's buffer then lives from its first part on, while the values its
# parts read are still live (attention's q, k and v: the forward qkv product, which the old
# plan's concat reused once the last part had read it). Always taking a new buffer made the
# tiny GPT step's plan 25.5 -> 27.0 MiB; this way its memory does not grow, and the top
# layer's concat (the first one the backward pass meets) copies as before.
PARTS_ONLY_INTO_FREE_BUFFERS = True


def _buffer_for_parts(concat, concat_buffer, free, buffers) -> bool:
    """Whether the concat has a buffer for its parts: taken at its first part, if one of its
    size is free then; False from then on otherwise (it copies its operands)."""
    if concat not in concat_buffer:
        key = (concat.dtype, concat.size)
        if free.get(key) or not PARTS_ONLY_INTO_FREE_BUFFERS:
            concat_buffer[concat] = _take(free, buffers, key)
        else:
            concat_buffer[concat] = None
    return concat_buffer[concat] is not None


def _take(free, buffers, key) -> int:
    """A free pool buffer of this (dtype, size), or a new one."""
    if free.get(key):
        return free[key].pop()
    buffers.append(key)
    return len(buffers) - 1


def products_into_concats(graph, escaping) -> dict:
    """{product: Part} for products a concat reads through views only (attention's head
    merge in the backward pass: dq, dk and dv, each (B, H, T, d) transposed and reshaped
    to (B, T, C), concatenated into the (B, T, 3C) qkv gradient). The product is written
    straight into its slice of the concat's buffer (runtime.gemm's batched product takes any
    row stride, and a column-major result as its transpose), so the concat copies nothing.
    Measured on the small GPT's shapes, one product and its copy against the product alone,
    min of 60 calls under load: dk 1.17 -> 0.38 ms, dq 0.85 -> 0.42 ms.

    Each view on the way and the product itself must be read by nothing else and not be an
    output (their memory is the concat's, and readers would see a strided view), the concat
    must live in the pool (not an output: it is written before its own node runs), and the
    slice must be reachable as a view (no copy) with a layout BLAS writes in place."""
    users = graph.users()
    outputs = set(graph.outputs)  # sets: Node's == is symbolic
    found = {}
    for n in graph.nodes:
        if (n.op != "concat" or n in escaping or n.size == 0 or not can_emit(n, True)
                or is_constant(n)):
            continue
        axis, offset = n.attrs["axis"], 0
        for position, operand in enumerate(n.inputs):
            width = operand.shape[axis]
            index = tuple(slice(offset, offset + width) if k == axis else slice(None)
                          for k in range(n.ndim))
            offset += width
            chain, product = [], operand
            while product.op in ("reshape", "transpose"):
                chain.append(product)
                product = product.inputs[0]
            if (product in found or not _writes_any_layout(product)
                    or any(len(users[x]) != 1 or x in outputs or x in escaping
                           for x in [product] + chain)):
                continue
            steps = _steps_to_product(n, index, chain)
            if steps is not None:
                found[product] = Part(n, position, index, steps, tuple(reversed(chain)))
    return found


def _writes_any_layout(n) -> bool:
    """A product whose kernel writes a strided or transposed result in place: runtime.gemm's
    batched kernel, or its 2-D one (row-major results). The (..., m, k) @ (k, n) form
    reshapes its result to rows, which a strided view cannot be without a copy."""
    if n.op != "matmul" or jit_emitter(n) is None:
        return False
    return n.ndim == 2 or n.inputs[1].ndim > 2


def _steps_to_product(concat, index, chain):
    """The views from the concat's slice to the product (inverse to the chain), or None
    where one would need a copy or BLAS cannot write the result's layout."""
    steps = []
    for x in chain:  # from the concat's operand down
        if x.op == "reshape":
            steps.append(("reshape", x.inputs[0].shape))
        else:
            steps.append(("transpose", tuple(int(p) for p in np.argsort(x.attrs["perm"]))))
    try:  # the plan's arrays are C-ordered: a probe of the same shape answers
        probe = part_view(lowering.c_ordered_probe(concat.shape, concat.dtype), index, steps)
    except AttributeError:
        return None
    item = probe.itemsize
    rows_ok = probe.strides[-1] == item
    columns_ok = probe.ndim > 2 and probe.strides[-2] == item  # matmul4d writes out.T
    return tuple(steps) if rows_ok or columns_ok else None


def part_view(concat_array, index, steps):
    """The product's view of its concat's array (Part.index and Part.steps)."""
    view = concat_array[index]
    for kind, arg in steps:
        view = reshaped(view, arg) if kind == "reshape" else view.transpose(arg)
    return view


def _writable_operands(n):
    """The operands n may write its result over: any (elementwise ops) or one."""
    position = inplace_operand(n)
    if position is not None:
        return [n.inputs[position]]
    return list(n.inputs) if inplace_safe(n) else []


def _inplace_operand(n, kernel, idx, last_use, root, storage, escaping, writable):
    """The pool value n (computed by `kernel`: n itself or the fused node n is a result of)
    may be written over: an operand of the kernel (one of `writable`) that dies here, or
    for an op that names its in-place operand, the root of a chain of reshapes ending at it."""
    roots = [root[i] for i in kernel.inputs]
    for i in writable:
        r = _reshaped_root(kernel, i, root)
        s = storage.get(r)
        if (s is not None and s.kind == "pool" and root[i] is r and r not in escaping
                and last_use[r] == idx and i.shape == n.shape and r.dtype == n.dtype
                and r.size == n.size and sum(x is r for x in roots) == 1):
            return r
    return None


def _reshaped_root(n, i, root):
    """The operand itself, or for an op that names its in-place operand (matmul_add's
    residual), the root of a chain of reshapes ending at it: a reshape of a pool buffer
    holds the same elements in the same order, so the result may take over that buffer."""
    if inplace_operand(n) is None:
        return i
    x = i
    while x.op == "reshape" and x is not root[x]:
        x = x.inputs[0]
    return x


def _take_donor(n, kernel, idx, donors, last_use, root, writable):
    candidates = donors.get((n.dtype, n.shape), [])
    roots = [root[i] for i in kernel.inputs]
    ordered = candidates
    if is_fused_result(n):  # first the donors its own value reads
        reads = result_operands(kernel, n.attrs["index"])
        ordered = sorted(candidates, key=lambda d: not any(i is d for i in reads))  # stable
    for d in ordered:
        dead_before = last_use[d] < idx
        dies_here = (last_use[d] == idx and any(i is d for i in writable)
                     and sum(r is d for r in roots) == 1)
        if dead_before or dies_here:
            candidates[:] = [c for c in candidates if c is not d]
            return d
    return None


def written_over(mp: MemoryPlan, result, kernel) -> list:
    """Positions of `kernel`'s operands whose buffer `result` (the kernel's value, or one of
    a fused node's results) is written into: a pool buffer taken over in place, or a donated
    input the result updates."""
    s = mp.storage.get(result)
    if s is None:
        return []
    positions = []
    for k, i in enumerate(kernel.inputs):
        t = mp.storage.get(i)
        if (s.kind == "pool" and t is not None and t.kind == "pool" and t.buffer == s.buffer
                and mp.root.get(i) is i) or (s.kind == "donated" and s.donor is i):
            positions.append(k)
    return positions


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


def aliasing_outputs(graph, mp: MemoryPlan, donate=(), alias_inputs: bool = False) -> list:
    """Per output of `graph`: whether it is in a caller's array that is not donated (an
    input, a view of one; not with `alias_inputs`) or in the memory of another output, so
    that the plan returns a copy (runtime.render). Of several outputs in one memory, one is
    left as it is: the value that owns it where one is returned (a donated input returned as
    it is stays that array, with (x.T, x) too), else the first."""
    outputs = graph.outputs
    own_first = sorted(range(len(outputs)), key=lambda k: mp.root[outputs[k]] is not outputs[k])
    copied, seen = [False] * len(outputs), set()
    for k in own_first:
        r = mp.root[outputs[k]]
        copied[k] = r in seen or (mp.storage[r].kind == "input" and not alias_inputs
                                  and r.attrs["name"] not in donate)
        seen.add(r)
    return copied


def _stats(graph, mp: MemoryPlan, donate=(), alias_inputs=False) -> dict:
    itemsize_bytes = lambda n: n.size * n.dtype.itemsize  # noqa: E731
    pool = sum(dtype.itemsize * size for dtype, size in mp.buffers)
    inputs = sum(itemsize_bytes(n) for n in graph.inputs)
    constants = sum(itemsize_bytes(n) for n in graph.nodes
                    if mp.storage[n].kind == "constant")
    outputs = sum(itemsize_bytes(r) for r in mp.escaping if mp.storage[r].kind in
                  ("fresh", "fallback"))
    # copies (runtime.render): an output in a caller's array that is not donated, and each
    # output in the memory of another one, counted at the output's own size (a view)
    outputs += sum(itemsize_bytes(o) for o, copied in
                   zip(graph.outputs, aliasing_outputs(graph, mp, donate, alias_inputs))
                   if copied)
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
        # the pool's allocation with its alignment (allocate_pool): what check_fits counts
        "workspace_reserved": pool_reserved_bytes(mp.buffers),
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
        elif s.kind == "part":
            where += f" buf{s.buffer}, a slice of {ref[s.part.concat]}'s result"
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
    otherwise fail deep inside with 'Unable to allocate', or the OOM killer end the process.
    The pool counts as allocated, with the arena's alignment (`workspace_reserved`)."""
    needed = (stats["workspace_reserved"] + stats["temporaries"] + stats["outputs"]
              + stats["constants"])
    available = available_bytes()
    if available is not None and needed > available:
        raise PlanMemoryError(f"plan {name!r} needs {format_bytes(needed)} for its buffers, "
                              f"but only {format_bytes(available)} of memory is available",
                              needed, available)


# ---- allocating the pool -----------------------------------------------------------------------
# A plan's kernels stream through megabytes of pool buffers each step; with 4 KiB pages those
# are thousands of TLB entries (tiny GPT: 25 MiB of buffers, 0.5-2 MiB each, below the 4 MiB
# from which numpy asks for huge pages itself). So a pool of at least ARENA_MIN_BYTES is
# carved from one anonymous mapping the kernel may back with 2 MiB pages (Linux's
# MADV_HUGEPAGE; transparent huge pages set to "madvise" or "always"). Alternated steps in one
# process, medians (mins): tiny 1.027-1.035x (1.05-1.07x), nanogpt-cpu 1.041x (1.055x), small
# 1.028x. Smaller pools keep np.empty: a 2 MiB page for a plan of a few kilobytes would
# multiply its memory.
ARENA_MIN_BYTES = 4 << 20
_HUGE_PAGE = 2 << 20
_PAGE = 4096


def _padded_sizes(buffers) -> list:
    """Each buffer's bytes rounded up to whole pages: its span in the arena."""
    return [(np.dtype(dtype).itemsize * size + _PAGE - 1) // _PAGE * _PAGE
            for dtype, size in buffers]


def pool_reserved_bytes(buffers) -> int:
    """What allocate_pool holds for these buffers: an arena's page-padded buffers rounded up
    to whole huge pages (the kernel may back the last one in full, so this is at most what
    it holds), else the buffers' own bytes (np.empty's allocator adds its headers).
    plan.memory's "workspace_reserved"; check_fits counts it."""
    padded = sum(_padded_sizes(buffers))
    if padded < ARENA_MIN_BYTES:
        return sum(np.dtype(dtype).itemsize * size for dtype, size in buffers)
    return -(-padded // _HUGE_PAGE) * _HUGE_PAGE


def allocate_pool(buffers) -> list:
    """One 1-D array per pool buffer ((dtype, size) pairs): views into a huge-page arena when
    the pool is large enough and the platform has one, else separate np.empty arrays."""
    sizes = _padded_sizes(buffers)
    total = sum(sizes)
    arena = _huge_page_arena(total) if total >= ARENA_MIN_BYTES else None
    if arena is None:
        return [np.empty(size, dtype) for dtype, size in buffers]
    arrays, offset = [], 0
    for (dtype, size), padded in zip(buffers, sizes):
        nbytes = np.dtype(dtype).itemsize * size
        arrays.append(arena[offset:offset + nbytes].view(dtype))
        offset += padded
    return arrays


def _huge_page_arena(nbytes: int):
    """nbytes of zeroed memory starting at a 2 MiB boundary, advised to be backed by huge
    pages; None where mmap.madvise or MADV_HUGEPAGE is missing or the mapping fails."""
    import mmap
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    anonymous = getattr(mmap, "MAP_ANONYMOUS", None)
    if advice is None or anonymous is None or not hasattr(mmap.mmap, "madvise"):
        return None
    try:
        # private: mmap's default for -1 is a shared mapping, which a forked child would
        # write into too, and which Linux backs with huge pages only under shmem's setting
        mapping = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | anonymous)
        mapping.madvise(advice)
    except (OSError, ValueError):
        return None
    raw = np.frombuffer(mapping, np.uint8)  # keeps the mapping alive as long as any view
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + nbytes]
