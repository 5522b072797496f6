"""Lowering choices the code generator makes for single nodes: running a kernel as two
halves on two threads (batched matmuls; elementwise kernels with GRAPHC_THREADS=2), and
copying attention's head merges straight into the concat that reads them.
"""
from __future__ import annotations

import os

import numpy as np

from ir import settings

from .kernels import INPLACE_SAFE


# ---- two-way kernel splitting ---------------------------------------------------------------
PARALLEL_MIN_ELEMENTS = 1 << 17
_ROW_OPS = {"layer_norm", "layer_norm_grad"}  # reduce along the last axis only
_AXIS_OPS = {"softmax", "log_softmax", "softmax_grad"}  # reduce along attrs["axis"]
_WORKER = []


def worker():
    """One background thread shared by all plans (started on first use)."""
    if not _WORKER:
        from concurrent.futures import ThreadPoolExecutor
        _WORKER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphc"))
    return _WORKER[0]


def parallel_default() -> bool:
    """Off unless GRAPHC_THREADS=2. Measured on a 2-core machine, a GPT step got slower with
    it (tiny 28.0 -> 30.4 ms, small 129.7 -> 134.0): OpenBLAS's own threads keep spinning
    after each GEMM and compete with the second worker, although the same split kernel alone
    runs twice as fast (GELU's gradient over 1M floats: 1.9 -> 0.94 ms)."""
    return settings.THREADS.get() == 2 and (os.cpu_count() or 1) >= 2


def splittable(n) -> bool:
    if n.size < PARALLEL_MIN_ELEMENTS or n.ndim < 1 or n.shape[0] < 2:
        return False
    if n.op in INPLACE_SAFE or n.op in ("gelu", "gelu_grad", "where"):
        return True
    if n.op in _ROW_OPS:
        return n.ndim >= 2
    if n.op in _AXIS_OPS:
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


def reshaped(x, shape):
    """A view of x with this shape; an error rather than a silent copy if there is none."""
    view = x.view()
    view.shape = shape
    return view


def reshapes_into_concat(graph, mp) -> dict:
    """{reshape: its concat} for reshapes of non-contiguous values (attention's head merge in
    the backward pass) read only by a concat: the concat copies the reshape's input straight
    into its slice of the result, one copy instead of two."""
    users = graph.users()
    outputs = set(graph.outputs)  # a set: Node's == is symbolic
    found = {}
    for n in graph.nodes:
        if n.op != "concat" or mp.storage[n].kind == "fallback":
            continue
        offset = 0
        for i in n.inputs:
            index = _concat_slice(n, offset, i.shape[n.attrs["axis"]])
            offset += i.shape[n.attrs["axis"]]
            if (i.op != "reshape" or len(users[i]) != 1 or i in outputs
                    or i.inputs[0].op not in ("transpose", "reshape")):
                continue
            try:  # the plan's arrays are C-ordered: a probe of the same shape answers
                reshaped(np.empty(n.shape, n.dtype)[index], i.inputs[0].shape)
            except AttributeError:
                continue
            found[i] = n
    return found


def products_laid_out_for_transpose(graph, mp) -> dict:
    """{matmul: perm} for products read only by transposes with one permutation that keeps
    the last axis (attention's head merge: (B, H, T, d) -> (B, T, H, d)). The product is
    written through a transposed view of its buffer, laid out as its readers want it, so the
    transpose is contiguous and the reshape after it needs no copy."""
    users = graph.users()
    outputs = set(graph.outputs)
    found = {}
    for n in graph.nodes:
        if n.op != "matmul" or n in outputs or mp.storage[n].kind != "pool" or not users[n]:
            continue
        perms = {tuple(u.attrs["perm"]) if u.op == "transpose" else None for u in users[n]}
        if len(perms) != 1:
            continue
        perm = perms.pop()
        if perm is None or perm[-1] != n.ndim - 1 or perm == tuple(range(n.ndim)):
            continue
        found[n] = perm
    return found


def _concat_slice(n, offset, width) -> tuple:
    axis = n.attrs["axis"]
    return tuple(slice(offset, offset + width) if k == axis else slice(None)
                 for k in range(n.ndim))


def concat_by_copies(n, args, dst, into_concat) -> list:
    lines, offset = [], 0
    axis = n.attrs["axis"]
    for i, a in zip(n.inputs, args):
        width = i.shape[axis]
        index = ", ".join(f"{offset}:{offset + width}" if k == axis else ":"
                          for k in range(n.ndim))
        offset += width
        if i in into_concat:
            lines.append(f"np.copyto(_reshaped({dst}[{index}], {i.inputs[0].shape!r}), {a})")
        else:
            lines.append(f"np.copyto({dst}[{index}], {a})")
    return lines
