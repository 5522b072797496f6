"""Common-subexpression elimination: nodes with the same op, the same operands and equal
attributes are merged into the first one, which keeps the source locations of both. A scan
and its gradient's copy that also saves its carries become one (the copy).

Random ops are pure functions of their seed operand and `salt` attribute here, so two
dropout masks merge only when they would draw the very same mask.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ir.ops.registry import get_op
from ir.rewrite import merge_locs, rebuild

MAX_CONSTANT_BYTES = 1 << 20


def attrs_key(attrs):
    items = []
    for k, v in sorted(attrs.items()):
        if isinstance(v, np.ndarray):
            if v.nbytes > MAX_CONSTANT_BYTES:
                v = ("array", id(v))
            else:
                v = ("array", v.shape, str(v.dtype), hashlib.sha1(v.tobytes()).hexdigest())
        elif isinstance(v, np.dtype):
            v = ("dtype", str(v))
        elif isinstance(v, float):
            v = ("float", v.hex())  # 0.0 and -0.0 differ; so do the IEEE bits
        items.append((k, v))
    return tuple(items)


def cse(graph):
    table = {}
    saving = _scans_saving_carries(graph)

    def visit(node, inputs, new):
        attrs, type_ = node.attrs, node.type
        if node.op == "scan" and not attrs.get("save_carries") and _scan_key(node) in saving:
            # the gradient's copy of this scan also saves its carries: one scan does both
            attrs = {**attrs, "save_carries": True}
            type_ = get_op("scan").infer([i.type for i in inputs], **attrs)
        key = (node.op, tuple(id(i) for i in inputs), attrs_key(attrs), type_)
        existing = table.get(key)
        if existing is not None:
            existing.locs = merge_locs(existing.locs, node.locs)
            return existing
        made = new.add_node(node.op, inputs, dict(attrs), type_, node.locs, node.scope)
        table[key] = made
        return made

    return rebuild(graph, visit)[0]


# A scan's gradient rule (passes/control_flow_ad.py) runs the forward scan again with
# save_carries=True; its results start with the plain scan's, so the plain one is that one.
def _scan_key(node):
    return id(node.attrs["body"]), tuple(id(i) for i in node.inputs)


def _scans_saving_carries(graph) -> set:
    return {_scan_key(n) for n in graph.nodes if n.op == "scan" and n.attrs.get("save_carries")}

