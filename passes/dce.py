"""Dead-code elimination: drop every node that no output depends on (inputs always stay,
since they are the graph's signature)."""
from __future__ import annotations

from ir.rewrite import rebuild


def dce(graph):
    live = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node in live:
            live.update(node.inputs)
    return rebuild(graph, keep=live)[0]
