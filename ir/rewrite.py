"""Rebuilding a graph node by node: the mechanism that functional passes share.

`rebuild(graph, visit)` walks the nodes in order and re-emits each into a fresh graph; `visit`
may return a replacement (a node of the new graph) for any node, or None to copy it; nodes
outside `keep` (when given) are dropped (a visit that replaces a node may read dropped ones:
their places in `inputs` are None). A `mapping` dict passed in is filled as the walk goes
(old node -> new node), so a visit can reach any earlier node. Inputs keep their names and
order, so the new graph has the same signature.
"""
from __future__ import annotations

from .graph import Graph


def rebuild(graph: Graph, visit=None, name: str | None = None, keep=None, mapping=None):
    new = Graph(name or graph.name)
    new.output_tree = graph.output_tree
    new.param_values = dict(graph.param_values)
    new._next_salt = graph._next_salt
    mapping = {} if mapping is None else mapping
    for node in graph.nodes:
        if node.op == "input":
            copy = new.input(node.attrs["name"], node.shape, node.dtype, node.attrs["kind"])
            copy.locs = node.locs
            mapping[node] = copy
            continue
        if keep is not None and node not in keep:
            continue
        inputs = [mapping.get(i) for i in node.inputs]
        replacement = visit(node, inputs, new) if visit is not None else None
        if replacement is None:
            if any(i is None for i in inputs):  # not `None in`: Node.__eq__ is symbolic
                raise ValueError(f"rebuild: {node.op} reads a node that was dropped")
            replacement = new.add_node(node.op, inputs, dict(node.attrs), node.type, node.locs,
                                       node.scope)
        mapping[node] = replacement
    new.set_outputs([mapping[o] for o in graph.outputs])
    by_name = {n.attrs["name"]: n for n in new.inputs}
    new.bound_params = {k: by_name[v.attrs["name"]] for k, v in graph.bound_params.items()
                        if v.attrs["name"] in by_name}
    return new, mapping


def clone(graph: Graph, name: str | None = None) -> Graph:
    return rebuild(graph, name=name)[0]


def merge_locs(*loc_lists):
    """Union of source locations, order kept: a merged node remembers every origin."""
    out = []
    for locs in loc_lists:
        for loc in locs:
            if loc not in out:
                out.append(loc)
    return tuple(out)
