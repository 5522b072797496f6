"""Dead-code elimination: drop every node that no output depends on (inputs always stay,
since they are the graph's signature). A scan's per-step outputs that nothing reads are
dropped from its body too, with what computes only them:

    %3 = scan ... {body: -> (h, y, z)};  %5 = tuple_get %3 {index=2}   (y unread)
    => %3 = scan ... {body: -> (h, z)};  %5 = tuple_get %3 {index=1}
"""
from __future__ import annotations

from ir.ops.registry import get_op
from ir.rewrite import rebuild


def dce(graph):
    live = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node in live:
            live.update(node.inputs)
    narrowed = _narrowed_scans(graph, live)
    if not narrowed:
        return rebuild(graph, keep=live)[0]

    def visit(node, inputs, new):
        if node in narrowed:
            attrs = narrowed[node][0]
            return new.add_node("scan", inputs, attrs,
                                get_op("scan").infer([i.type for i in inputs], **attrs),
                                node.locs, node.scope)
        if node.op == "tuple_get" and node.inputs[0] in narrowed:
            index = narrowed[node.inputs[0]][1][node.attrs["index"]]
            return new.add_node("tuple_get", inputs, {"index": index}, node.type, node.locs,
                                node.scope)
        return None

    return rebuild(graph, visit, keep=live)[0]


def _narrowed_scans(graph, live) -> dict:
    """{scan: (its attributes with a body without the unread per-step outputs, old result
    index -> new)} for the live scans that have some."""
    read = {}
    for n in graph.nodes:
        if n.op == "tuple_get" and n in live:
            read.setdefault(n.inputs[0], set()).add(n.attrs["index"])
    found = {}
    for n in graph.nodes:
        if n.op != "scan" or n not in live:
            continue
        body, carries = n.attrs["body"], n.attrs["carries"]
        n_y = len(body.outputs) - carries
        kept_ys = [j for j in range(n_y) if carries + j in read.get(n, ())]
        if len(kept_ys) == n_y:
            continue
        narrow = rebuild(body)[0]
        narrow.set_outputs(narrow.outputs[:carries] +
                           [narrow.outputs[carries + j] for j in kept_ys])
        narrow = dce(narrow)
        kept = list(range(carries)) + [carries + j for j in kept_ys] + \
            list(range(carries + n_y, len(n.type.elements)))  # saved carries stay
        found[n] = ({**n.attrs, "body": narrow}, {old: new for new, old in enumerate(kept)})
    return found
