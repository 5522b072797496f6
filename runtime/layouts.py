"""The numba type of a generated kernel's operand as the plan will pass it: its memory layout
('C', 'F' or 'A', as numba reads an array's flags) and whether it is read-only.

A plan's build compiles each generated kernel (runtime.jit.warm_generated) for the types its
call will pass. numba types a transposed or sliced view apart from a contiguous array ('F' or
'A' layout) and a read-only array apart from a writable one, so a spec that assumed
contiguous, writable operands compiled a second specialisation at the plan's first call
(16 of tests/test_fusion.py's 117 kernels in float64): a transposed or sliced view, or a
reshape or slice of a constant. The layout is read from a probe (runtime.lowering's
c_ordered_probe, one element of memory) taken through the same views the plan's code takes,
from the array the memory plan gives the view's root. A plan's inputs are taken as C-ordered
and writable (what gc.compile passes; a caller's other array gets a specialisation of its
own at that call)."""
from __future__ import annotations

import numpy as np

from .lowering import c_ordered_probe, reshaped
from .memory import part_view
from .op_lowering import is_constant, is_fused_result, lowering_of

_SAME = ("stop_gradient", "custom_vjp", "optimization_barrier")  # views of their operand


def numba_layout(a) -> str:
    """The layout numba's typeof gives the ndarray a."""
    return "C" if a.flags.c_contiguous else "F" if a.flags.f_contiguous else "A"


def _reshape(probe, shape, read_only):
    """probe reshaped as numpy's reshape does it: a view where there is one, else a copy
    (C-ordered, writable)."""
    try:
        return reshaped(probe, tuple(shape)), read_only
    except AttributeError:
        return c_ordered_probe(tuple(shape), probe.dtype), False


def _probe(node, mp, laid_out):
    """(probe, read_only): an array with node's value's shape and strides in the plan."""
    op = node.op
    if lowering_of(op).form == "view" and not is_fused_result(node):
        if op in _SAME:
            return _probe(node.inputs[0], mp, laid_out)
        if op in ("reshape", "transpose", "broadcast_to", "slice"):
            probe, read_only = _probe(node.inputs[0], mp, laid_out)
            if op == "reshape":
                return _reshape(probe, node.attrs["shape"], read_only)
            if op == "transpose":
                return probe.transpose(tuple(node.attrs["perm"])), read_only
            if op == "broadcast_to":  # np.broadcast_to's views are read-only
                return np.broadcast_to(probe, tuple(node.attrs["shape"])), True
            a = node.attrs
            return probe[tuple(slice(s, e, k) for s, e, k in
                               zip(a["starts"], a["stops"], a["steps"]))], read_only
    storage = mp.storage.get(node) if mp is not None else None
    kind = storage.kind if storage is not None else None
    if kind == "pool" and laid_out.get(node) is not None:  # written through a transpose
        perm = laid_out[node]
        probe = c_ordered_probe(tuple(node.shape[p] for p in perm), node.dtype)
        return probe.transpose(tuple(int(p) for p in np.argsort(perm))), False
    if kind == "part":  # a view inside its concat's buffer
        part = storage.part
        return part_view(c_ordered_probe(part.concat.shape, node.dtype), part.index,
                         part.steps), False
    if op == "constant" and isinstance(node.attrs.get("value"), np.ndarray):
        value = node.attrs["value"]
        if value.shape == tuple(node.shape) and value.dtype == node.dtype:  # bound as is
            return np.lib.stride_tricks.as_strided(np.empty(1, node.dtype), value.shape,
                                                   value.strides, writeable=False), True
    return c_ordered_probe(tuple(node.shape), node.dtype), is_constant(node)


def operand_type(node, shape, mp=None, laid_out=None) -> tuple:
    """(read_only, layout) of node's value as a generated kernel receives it, viewed with
    `shape` (runtime.render's reshaped_view). Anything the probe cannot follow is taken as
    C-ordered, read-only where node is a constant (the spec before layouts were known)."""
    try:
        probe, read_only = _probe(node, mp, laid_out or {})
        probe, read_only = _reshape(probe, shape, read_only)
    except (ValueError, TypeError, KeyError, IndexError):
        return is_constant(node), "C"
    return read_only, numba_layout(probe)
