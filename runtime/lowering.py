"""The "choose kernels" lowering stage: which kernel computes each node of the fused graph,
given its memory plan (`choose_kernels`), and the choices it is made of: running a kernel as
two halves on two threads (batched matmuls; elementwise kernels with GRAPHC_THREADS=2),
nothing for a concat whose operands the memory plan put in its buffer (runtime.memory's
`part` storage), copying attention's head merges straight into the concat that reads them
where they are not, and writing a product in the layout its transposes read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ir import settings
from ir.ops.cluster import parse_program

from .fusion import loop_type
from .op_lowering import (can_emit, is_constant, is_fused_result, is_view, jit_emitter,
                          lowering_of)

# A fused kernel runs on both cores from this size. Measured in whole training steps (same-
# process A/B) once parallel launches cost ~2 us (runtime.threads): 1 << 14 is 4% faster than
# 1 << 16 for tiny and 2.4% for small; 1 << 12 is no faster than 1 << 14, all-serial is 10%
# slower. Each parallel kernel costs more to compile the first time (~0.5 vs ~0.15 s).
FUSED_PARALLEL_MIN_ELEMENTS = 1 << 14

# What computes a node (KernelChoice.kind):
KINDS = {
    "input": "a parameter of the plan",
    "constant": "computed once when the plan is built",
    "view": "a view of its operand's buffer",
    "into-concat": "no code: its concat copies the reshape's operand into place",
    "in-concat": "no code: a view of a product already written into its concat's buffer",
    "assembled": "no code: every operand was written into its slice (memory plan: part)",
    "in-reader": "no code: its only reader, a multiply by a scalar, computes both in one kernel",
    "in-pair": "no code: the node before it computes it too (LayerNorm's weight and bias "
               "gradients, a GELU gradient's bias sum)",
    "library": "its op's library implementation, which allocates the result",
    "generated": "the fused cluster's generated numba kernel (runtime/kernelgen.py)",
    "result": "no code: one of the results its fused node's kernel writes",
    "concat-copies": "one copy per operand into its slice of the result",
    "numba": "a fixed numba kernel (runtime/jit.py, runtime/gemm.py)",
    "causal": "runtime/causal.py's product that skips a causal mask's zero or dead half",
    "tiles": "runtime/tiles.py's register-tiled products of small matrices (attention heads)",
    "split": "its numpy emitter on two halves of axis 0, on two threads",
    "numpy": "its numpy emitter, writing with out=",
}


@dataclass(frozen=True)
class KernelChoice:
    kind: str  # a key of KINDS
    detail: str = ""  # the numba kernel; "parallel"/"serial" for generated kernels


@dataclass
class KernelChoices:
    """The choose-kernels stage's result."""
    graph: object
    choice: dict  # node -> KernelChoice
    into_concat: dict = field(default_factory=dict)  # reshape -> the concat that copies it
    laid_out: dict = field(default_factory=dict)  # matmul -> the perm its buffer is laid out in
    written: dict = field(default_factory=dict)  # concat -> operand positions already in place
    parts: dict = field(default_factory=dict)  # product -> runtime.memory.Part
    scaled: dict = field(default_factory=dict)  # mul -> (softmax_grad, scale) it computes
    paired: dict = field(default_factory=dict)  # layer_norm_wgrad -> the layer_norm_grad
    # whose kernel computes it too
    # a bias's gradient (a sum over the leading axes) -> the node whose kernel computes it
    # too: the LayerNorm's input gradient (a sum of dy), a gelu_grad (its result's sum)
    bias_paired: dict = field(default_factory=dict)
    causal: dict = field(default_factory=dict)  # matmul -> runtime.causal mode
    # tiles product -> the runtime.causal mode its tiles skip by (causal products only)
    tile_modes: dict = field(default_factory=dict)

    def __str__(self) -> str:
        ordered = list(self.graph.inputs) + [n for n in self.graph.nodes if n.op != "input"]
        ref = {n: f"%{k}" for k, n in enumerate(ordered)}
        lines = []
        for n in self.graph.nodes:
            c = self.choice[n]
            what = f"{c.kind} {c.detail}".rstrip()
            if n in self.laid_out:
                what += f" (written in the layout of transpose {self.laid_out[n]})"
            if n in self.parts:
                what += f" (written into its slice of {ref[self.parts[n].concat]})"
            lines.append(f"{ref[n]:>5} {n.op:<16} {str(n.type):<20} {what}")
        return "\n".join(lines)


def choose_kernels(graph, mp, jit: bool, parallel: bool) -> KernelChoices:
    """A KernelChoice for every node of `graph` (the fused graph) with memory plan `mp`."""
    written, in_concat = {}, set()
    for part in mp.parts.values():
        written.setdefault(part.concat, set()).add(part.position)
        in_concat.update(part.chain)
    into_concat = reshapes_into_concat(graph, mp, written)
    choices = KernelChoices(graph, {}, into_concat, products_laid_out_for_transpose(graph, mp),
                            written, mp.parts)
    modes = {}  # runtime.causal's products: what their tiles may skip
    if jit:
        choices.scaled = mp.scaled  # the memory plan's choice: it gave no buffer to them
        choices.paired = layer_norm_grad_pairs(graph, mp)
        choices.bias_paired = {**layer_norm_bias_sums(graph, mp, choices.paired),
                               **gelu_grad_bias_sums(graph, mp)}
        from . import causal, tiles  # (import numba, as runtime.gemm does)
        modes = causal.causal_products(graph)
        choices.causal = causal.products_to_band(graph, mp, modes)
    takes_tiles = tiles.takes if jit else (lambda n, causal: False)
    in_reader = {sg for sg, _ in choices.scaled.values()}
    # the weight and bias gradients: their input gradient's kernel
    in_pair = set(choices.paired) | set(choices.bias_paired)
    pair_kernels = set(choices.paired.values())
    with_bias = set(choices.bias_paired.values())
    gelu_with_bias = {n for n in with_bias if n.op == "gelu_grad"}
    for n in graph.nodes:
        if n in in_concat:
            choices.choice[n] = KernelChoice("in-concat")
        elif n in in_reader:
            choices.choice[n] = KernelChoice("in-reader")
        elif n in choices.scaled:
            choices.choice[n] = KernelChoice("numba", "softmax_grad_scaled")
        elif n in in_pair:
            choices.choice[n] = KernelChoice("in-pair")
        elif n in gelu_with_bias:
            choices.choice[n] = KernelChoice("numba", "gelu_tanh_grad_colsum")
        elif n in pair_kernels and n.op == "batch_norm_grad":
            choices.choice[n] = KernelChoice("numba", "batch_norm_grads")
        elif n in pair_kernels:
            choices.choice[n] = KernelChoice("numba", "layer_norm_grads_bias" if n in with_bias
                                             else "layer_norm_grads")
        elif n.op == "concat" and len(written.get(n, ())) == len(n.inputs):
            choices.choice[n] = KernelChoice("assembled")
        elif n.op == "concat" and written.get(n):
            # some operands are in their slices already (memory plan: part), the others are
            # copied in: np.concatenate would read a product through its un-rendered views
            choices.choice[n] = KernelChoice("concat-copies")
        else:
            choices.choice[n] = _choose(n, mp.storage[n].kind, into_concat, jit, parallel)
        if n in choices.causal and choices.choice[n] == KernelChoice("numba", "gemm"):
            choices.choice[n] = KernelChoice("causal", causal.MODES[choices.causal[n]])
        else:  # banded only where runtime.gemm's product would run
            choices.causal.pop(n, None)
            if (choices.choice[n] == KernelChoice("numba", "gemm")
                    and takes_tiles(n, causal=n in modes)):
                mode = modes.get(n, 0)
                choices.choice[n] = KernelChoice("tiles", causal.MODES.get(mode, ""))
                if mode:
                    choices.tile_modes[n] = mode
    return choices


def _choose(n, storage, into_concat, jit, parallel) -> KernelChoice:
    if n.op == "input":
        return KernelChoice("input")
    if n in into_concat:
        return KernelChoice("into-concat")
    if is_fused_result(n):
        return KernelChoice("result")
    if is_constant(n):
        return KernelChoice("constant")
    if is_view(n):
        return KernelChoice("view")
    if storage == "fallback":
        return KernelChoice("library")
    if n.op == "fused":
        loop = loop_type(n)
        rows = loop.size // loop.shape[-1]
        parallel_kernel = loop.size >= FUSED_PARALLEL_MIN_ELEMENTS and rows >= 2
        return KernelChoice("generated", "parallel" if parallel_kernel else "serial")
    if n.op == "concat" and any(i in into_concat for i in n.inputs):
        return KernelChoice("concat-copies")
    if jit and jit_emitter(n) is not None:
        return KernelChoice("numba", lowering_of(n.op).jit_kernel)
    # batched matmuls are split only where runtime.gemm is unavailable (no numba kernel above)
    if (parallel and splittable(n)) or (jit and batched_matmul(n)):
        return KernelChoice("split")
    return KernelChoice("numpy")


# ---- two-way kernel splitting ---------------------------------------------------------------
PARALLEL_MIN_ELEMENTS = 1 << 17
_WORKER = []


def worker():
    """One background thread shared by all plans (started on first use; a forked child
    starts its own: the parent's thread does not exist there)."""
    if not _WORKER:
        from concurrent.futures import ThreadPoolExecutor
        _WORKER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphc"))
    return _WORKER[0]


def submit(fn, *args):
    """worker().submit, looked up per call: a plan built before a fork, called in the
    child, then uses the child's thread."""
    return worker().submit(fn, *args)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER.clear)


def parallel_default() -> bool:
    """Off unless GRAPHC_THREADS=2. Measured on a 2-core machine, a GPT step got slower with
    it (tiny 28.0 -> 30.4 ms, small 129.7 -> 134.0): OpenBLAS's own threads keep spinning
    after each GEMM and compete with the second worker, although the same split kernel alone
    runs twice as fast (GELU's gradient over 1M floats: 1.9 -> 0.94 ms)."""
    return settings.THREADS.get() == 2 and (os.cpu_count() or 1) >= 2


def splittable(n) -> bool:
    if n.size < PARALLEL_MIN_ELEMENTS or n.ndim < 1 or n.shape[0] < 2:
        return False
    split = lowering_of(n.op).split  # how the op's record says a split cuts it
    if split == "elementwise":
        return True
    if split == "rows":
        return n.ndim >= 2
    if split == "axis":
        return n.attrs["axis"] != 0
    return False


def batched_matmul(n) -> bool:
    """Batched matmuls of small matrices (attention's per-head products) run one GEMM per
    matrix on one core each; two threads on two halves of the batch use both cores
    (measured, 128 products of 64x32 @ 32x64: 0.56 -> 0.35 ms). Requires quiet BLAS threads
    (runtime.threads), which plans with numba kernels set up."""
    if n.op != "matmul" or n.ndim < 3 or n.shape[0] < 2 or (os.cpu_count() or 1) < 2:
        return False
    return all(i.ndim == n.ndim and i.shape[0] == n.shape[0] for i in n.inputs) and \
        n.size >= PARALLEL_MIN_ELEMENTS // 4


def c_ordered_probe(shape, dtype) -> np.ndarray:
    """An array with the shape, dtype and strides of np.empty(shape, dtype), over one element:
    its views' strides answer which views need no copy. Never read it. np.empty allocated the
    whole array, so planning a huge batch (dump --stats, a step whose memory check would refuse
    it) failed with a MemoryError instead of the plan's figures or its memory error."""
    dtype = np.dtype(dtype)
    if 0 in shape:  # costs nothing (and numpy gives an empty array zero strides)
        return np.empty(shape, dtype)
    strides, step = [], dtype.itemsize
    for d in reversed(shape):
        strides.append(step)
        step *= int(d)
    return np.lib.stride_tricks.as_strided(np.empty(1, dtype), tuple(shape),
                                           tuple(reversed(strides)), writeable=False)


def reshaped(x, shape):
    """A view of x with this shape; an error rather than a silent copy if there is none."""
    view = x.view()
    view.shape = shape
    return view


def reshapes_into_concat(graph, mp, written=None) -> dict:
    """{reshape: its concat} for reshapes of non-contiguous values (attention's head merge in
    the backward pass) read only by a concat: the concat copies the reshape's input straight
    into its slice of the result, one copy instead of two. Operands at the positions in
    `written` (concat -> positions) are already in place (memory plan: part)."""
    written = written or {}
    users = graph.users()
    outputs = set(graph.outputs)  # a set: Node's == is symbolic
    found = {}
    for n in graph.nodes:
        if n.op != "concat" or mp.storage[n].kind == "fallback":
            continue
        offset = 0
        for position, i in enumerate(n.inputs):
            index = _concat_slice(n, offset, i.shape[n.attrs["axis"]])
            offset += i.shape[n.attrs["axis"]]
            if (position in written.get(n, ()) or i.op != "reshape" or len(users[i]) != 1
                    or i in outputs
                    or i.inputs[0].op not in ("transpose", "reshape")):
                continue
            try:  # the plan's arrays are C-ordered: a probe of the same shape answers
                reshaped(c_ordered_probe(n.shape, n.dtype)[index], i.inputs[0].shape)
            except AttributeError:
                continue
            found[i] = n
    return found


def products_laid_out_for_transpose(graph, mp) -> dict:
    """{matmul: perm} for products read only by transposes with one permutation that keeps
    the last axis (attention's head merge: (B, H, T, d) -> (B, T, H, d)). The product is
    written through a transposed view of its buffer, laid out as its readers want it, so the
    transpose is contiguous and the reshape after it needs no copy.
    Not a (..., m, k) @ (k, n) product of a 3-D or 4-D operand and a matrix: runtime.gemm
    computes it on its result reshaped to rows (runtime.emitters.jit_matmul), which a
    transposed view cannot be without a copy, so the product would go to the copy and its
    buffer stay unwritten (runtime.memory._writes_any_layout refuses it for the same reason).
    graphc.matmul never builds one (it flattens the leading axes into a 2-D product); a graph
    read from IR text or JSON may hold one."""
    users = graph.users()
    outputs = set(graph.outputs)
    found = {}
    for n in graph.nodes:
        if n.op != "matmul" or n in outputs or mp.storage[n].kind != "pool" or not users[n]:
            continue
        if n.ndim > 2 and n.inputs[1].ndim == 2:
            continue
        perms = {tuple(u.attrs["perm"]) if u.op == "transpose" else None for u in users[n]}
        if len(perms) != 1:
            continue
        perm = perms.pop()
        if perm is None or perm[-1] != n.ndim - 1 or perm == tuple(range(n.ndim)):
            continue
        found[n] = perm
    return found


def softmax_grads_scaled_by_reader(graph, jit: bool) -> dict:
    """{mul: (softmax_grad, scale)} for `mul(softmax_grad(y, g), scale)` with a one-value
    scale, the multiply (or a fused node of it alone) right after the softmax_grad, its only
    reader: attention's backward scaling by 1/sqrt(d). runtime.jit.softmax_grad_scaled
    computes both in one pass, rounded as the two kernels were (same bits). Measured on
    one thread, min of 3 x 60 calls under load (float32): small's (8192, 64) rows 0.173 ->
    0.138 ms, medium's (49152, 256) 19.5 -> 13.8 ms (one pass over memory fewer).
    Right after: the values y and g may die at the softmax_grad, and nothing may take
    their buffers before the kernel has read them (it reads a row before writing it, so
    the multiply's result may be one of them).
    The memory plan asks first (runtime.memory.plan_memory): the softmax_grad gets no
    buffer, its reader's is chosen at the softmax_grad, and choose-kernels takes the plan's
    answer (MemoryPlan.scaled)."""
    if not jit:
        return {}
    users = graph.users()
    outputs = set(graph.outputs)
    order = {n: k for k, n in enumerate(graph.nodes)}
    found = {}
    for n in graph.nodes:
        if len(n.inputs) != 2 or not can_emit(n, jit):  # written into a buffer of the plan's
            continue
        if n.op != "mul" and not (n.op == "fused" and parse_program(n.attrs["program"]) ==
                                  (("mul", (("a", 0), ("a", 1)), {}),)):
            continue
        for sg, scale in (n.inputs, n.inputs[::-1]):
            if (sg.op == "softmax_grad" and jit_emitter(sg) is not None and scale.size == 1
                    and scale is not sg
                    and sg.shape == n.shape and sg.dtype == n.dtype == scale.dtype
                    and len(users[sg]) == 1 and sg not in outputs
                    and order[n] == order[sg] + 1):
                found[n] = (sg, scale)
                break
    return found


def softmax_grad_scaled_call(sg, scale, names, dst) -> list:
    n = sg.shape[-1]
    y, g = (f"{names[i]}.reshape(-1, {n})" for i in sg.inputs)
    return [f"_jit.softmax_grad_scaled({y}, {g}, {names[scale]}.reshape(1), "
            f"{dst}.reshape(-1, {n}))"]


_GRAD_OF_WGRAD = {"layer_norm_wgrad": "layer_norm_grad", "batch_norm_wgrad": "batch_norm_grad"}


def layer_norm_grad_pairs(graph, mp) -> dict:
    """{layer_norm_wgrad: layer_norm_grad} for the two gradients of one LayerNorm (the same
    x, dy and eps), the weight's right after the input's: runtime.jit.layer_norm_grads
    computes both in one pass over x and dy at the first one's step, each row's moments
    once, and the second one's step names the buffer it wrote. Measured on one thread, min
    of 100 calls alternated, load 5 (float32): (2048, 64) 0.208 -> 0.176 ms, (2048, 128)
    0.301 -> 0.247, (8192, 384) 5.9 -> 4.0.
    Right after: nothing runs between the two, so the weight gradient is written one step
    early with nothing else running in between; x and dy are live until the second one
    reads them, so neither result's buffer is one of theirs; the weight gradient's may be
    one that dies at the first (the LayerNorm weight's: the kernel writes it after reading
    everything).
    BatchNorm's two gradients (batch_norm_grad, batch_norm_wgrad: its weight's and bias's
    together) pair the same way, in runtime.jit.batch_norm_grads."""
    order = {n: k for k, n in enumerate(graph.nodes)}
    found = {}
    for n in graph.nodes:
        if n.op not in _GRAD_OF_WGRAD or order[n] == 0:
            continue
        grad = graph.nodes[order[n] - 1]
        if (grad.op == _GRAD_OF_WGRAD[n.op] and jit_emitter(grad) is not None
                and jit_emitter(n) is not None
                and grad.inputs[0] is n.inputs[0] and grad.inputs[2] is n.inputs[1]
                and grad.attrs["eps"] == n.attrs["eps"] and grad.dtype == n.dtype
                and mp.storage[grad].kind in ("pool", "fresh", "donated")
                and mp.storage[n].kind in ("pool", "fresh", "donated")):
            found[n] = grad
    return found


def layer_norm_bias_sums(graph, mp, pairs) -> dict:
    """{sum: layer_norm_grad} for the LayerNorm bias's gradient, dy summed over every axis
    but the last, right after a pair of `layer_norm_grad_pairs`: the pair's kernel
    (runtime.jit.layer_norm_grads_bias) sums dy's columns in the same pass, one read of dy
    fewer than numpy's ones @ dy after it. Right after, as for the weight gradient: nothing
    runs between the kernel's step and the sum's; the kernel writes the sum after reading
    everything, so its buffer may be one that dies at the pair."""
    order = {n: k for k, n in enumerate(graph.nodes)}
    found = {}
    for wgrad, grad in pairs.items():
        k = order[wgrad] + 1
        if k >= len(graph.nodes) or grad.op != "layer_norm_grad":  # (BatchNorm's has db)
            continue
        n = graph.nodes[k]
        if (_sums_leading_axes(n, grad.inputs[2])
                and mp.storage[n].kind in ("pool", "fresh", "donated")):
            found[n] = grad
    return found


def _sums_leading_axes(n, x) -> bool:
    """Whether n sums x over every axis but the last (a bias's gradient)."""
    return (n.op == "sum" and n.inputs[0] is x and not n.attrs["keepdims"]
            and tuple(n.attrs["axes"]) == tuple(range(x.ndim - 1))
            and n.shape == (x.shape[-1],) and n.dtype == x.dtype)


def gelu_grad_bias_sums(graph, mp) -> dict:
    """{sum: gelu_grad} for a dense layer's bias gradient, the gelu_grad's result summed over
    every axis but the last, the step right after it: runtime.jit.gelu_tanh_grad_colsum
    writes the result and sums its columns in one pass, where numpy's ones @ dy read it
    again. The sum is written after everything is read, so its buffer may be one that dies
    at the gelu_grad."""
    order = {n: k for k, n in enumerate(graph.nodes)}
    found = {}
    for n in graph.nodes:
        if n.op != "gelu_grad" or order[n] + 1 >= len(graph.nodes):
            continue
        after = graph.nodes[order[n] + 1]
        if (jit_emitter(n) is not None and n.ndim >= 2 and _sums_leading_axes(after, n)
                and mp.storage[n].kind in ("pool", "fresh", "donated")
                and mp.storage[after].kind in ("pool", "fresh", "donated")):
            found[after] = n
    return found


def kernel_with_written_call(kernel, n, written, names) -> list:
    """The call of `kernel` (n's KernelChoice detail) computing n and, in order, the nodes
    `written` after it into their buffers: LayerNorm's weight gradient and its bias's
    (KernelChoices.paired, bias_paired), BatchNorm's (one (2, C) node), or a GELU gradient's
    bias sum."""
    # rows of the last axis; BatchNorm's (N, C, M) (runtime.emitters.jit_batch_norm_grad)
    view = (f"reshape({n.shape[0]}, {n.shape[1]}, -1)" if n.op == "batch_norm_grad"
            else f"reshape(-1, {n.shape[-1]})")

    def rows(x):
        return f"{names[x]}.{view}"
    if n.op == "batch_norm_grad":
        # contiguous, as runtime.emitters._channels_operand makes them for the kernel alone:
        # it flattens them to rows, which numba does only for a contiguous array, and g may
        # be a broadcast (the gradient of a mean over the spatial axes after the layer)
        x, w, g = n.inputs
        operands = [f"np.ascontiguousarray({rows(x)})", names[w],
                    f"np.ascontiguousarray({rows(g)})", repr(n.attrs["eps"])]
    elif n.op == "layer_norm_grad":
        x, w, g = n.inputs
        operands = [rows(x), names[w], rows(g), repr(n.attrs["eps"])]
    else:  # gelu_grad
        operands = [rows(i) for i in n.inputs]
    return [f"_jit.{kernel}({', '.join(operands + [rows(n)] + [names[m] for m in written])})"]


def _concat_slice(n, offset, width) -> tuple:
    axis = n.attrs["axis"]
    return tuple(slice(offset, offset + width) if k == axis else slice(None)
                 for k in range(n.ndim))


def concat_by_copies(n, args, dst, into_concat, written=()) -> list:
    """One copy per operand into its slice, but for the positions `written` (in place)."""
    lines, offset = [], 0
    axis = n.attrs["axis"]
    for position, (i, a) in enumerate(zip(n.inputs, args)):
        width = i.shape[axis]
        index = ", ".join(f"{offset}:{offset + width}" if k == axis else ":"
                          for k in range(n.ndim))
        offset += width
        if position in written:
            continue
        if i in into_concat:
            lines.append(f"np.copyto(_reshaped({dst}[{index}], {i.inputs[0].shape!r}), {a})")
        else:
            lines.append(f"np.copyto({dst}[{index}], {a})")
    return lines
