"""Half precision in the compiled runtime: float16/bfloat16 ops run as float32 kernels.

    %5:bf16[64,128] = matmul %3, %4      =>   %6:f32[64,32] = cast %3 {dtype=f32}
                                               %7:f32[32,128] = cast %4 {dtype=f32}
                                               %8:f32[64,128] = matmul %6, %7
                                               %5:bf16[64,128] = cast %8 {dtype=bf16}

numba has no bfloat16 and numpy's half loops are slow, so each op that computes on half
values (runtime.op_lowering.computes_on_half) becomes the same op on float32 operands,
converted at its boundary, with its result rounded back: the semantics of the op library
(ir/ops/registry.py: compute in float32, round once per op), now run by the float32
kernels (runtime.gemm's GEMMs, fused numba clusters, row kernels) into planned buffers.
Each reader widens a half value itself, just before it runs: a copy shared by the forward
and the backward pass would keep a float32 activation alive in between and undo the saving
(measured for the small GPT: 84.6 MB peak instead of 51.6). The `fuse` stage runs this first
(`graphc dump --after fuse` shows the casts). Ops that fix their own dtype (one_hot,
dropout_mask, creators), constants and collectives keep their library implementations.
"""
from __future__ import annotations

import numpy as np

from ir.ops.registry import get_op
from ir.rewrite import rebuild
from ir.types import TensorType, is_half

from .op_lowering import computes_on_half, is_constant

_FLOAT32 = np.dtype("float32")


def widens(node) -> bool:
    return (computes_on_half(node) and "dtype" not in node.attrs and not is_constant(node)
            and node.op != "fused" and not get_op(node.op).collective)


def widen_half(graph):
    """The graph with every half-precision op computed in float32 between casts (the graph
    itself when it has none)."""
    if not any(widens(n) for n in graph.nodes):
        return graph
    constants = {}  # a half constant -> its float32 copy, converted once, not every call

    def wide(x, new):
        if not is_half(x.dtype):
            return x
        if x.op == "constant":
            if x not in constants:
                constants[x] = new.constant(np.asarray(x.attrs["value"]).astype(_FLOAT32))
            return constants[x]
        return new.add_node("cast", [x], {"dtype": _FLOAT32}, TensorType(x.shape, _FLOAT32),
                            x.locs, x.scope)

    def visit(node, inputs, new):
        if not widens(node):
            return None
        out_dtype = _FLOAT32 if is_half(node.dtype) else node.dtype
        result = new.add_node(node.op, [wide(i, new) for i in inputs], dict(node.attrs),
                              TensorType(node.shape, out_dtype), node.locs, node.scope)
        if not is_half(node.dtype):
            return result
        return new.add_node("cast", [result], {"dtype": node.dtype}, node.type, node.locs,
                            node.scope)

    return rebuild(graph, visit)[0]
