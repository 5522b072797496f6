"""The IR as a Graphviz picture: DOT text, and SVG/PNG/PDF through pydot and Graphviz.

Ops are boxes, tensors are edges labelled with their type; named inputs, parameters and
outputs are highlighted; a fused kernel (`graphc dump --after fuse`) is one box labelled
`fused[N]` with the number of ops in its program and their names. `collapse=True` folds each
layer scope (a transformer block, say) into one box, so large graphs stay readable.
"""
from __future__ import annotations

import shutil

from .errors import GraphcError
from .printer import format_constant

_STYLE = {
    "input": dict(shape="ellipse", style="filled", fillcolor='"#cde8ff"'),
    "param": dict(shape="ellipse", style="filled", fillcolor='"#ffe4b5"'),
    "state": dict(shape="ellipse", style="filled", fillcolor='"#f0e0ff"'),
    "constant": dict(shape="note", style="filled", fillcolor='"#eeeeee"', fontsize="9"),
    "op": dict(shape="box", style='"rounded,filled"', fillcolor='"#ffffff"'),
    "output": dict(shape="box", style='"rounded,filled,bold"', fillcolor='"#d8f5d0"',
                   penwidth="2"),
    "block": dict(shape="box3d", style="filled", fillcolor='"#e8eefc"'),
}


def _quote(text: str) -> str:
    """A DOT string literal; newlines become DOT's line-break escape."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _block_of(scope: str, depth: int) -> str:
    return ".".join(scope.split(".")[:depth]) if scope else ""


def _fused_label(program: str) -> str:
    """`fused[N]` with N the program's instruction count (not its text's length), and a
    second line naming its ops in order (the first few, then how many more)."""
    from .ops.cluster import parse_program
    ops = [op for op, _, _ in parse_program(program)]
    names = ", ".join(ops[:6]) + (f", ... (+{len(ops) - 6})" if len(ops) > 6 else "")
    return f"fused[{len(ops)}]\n{names}"


def build_pydot(graph, collapse: bool = False, collapse_depth: int = 2):
    """A pydot.Dot of the graph. With collapse, nodes whose layer scope shares its first
    `collapse_depth` parts (e.g. 'blocks.0') become one box labelled with its op count."""
    import pydot

    outputs = set(graph.outputs)
    dot = pydot.Dot(graph.name, graph_type="digraph", rankdir="TB")
    if len(graph.nodes) > 150:
        # Graphviz's default layout effort grows steeply with graph size (a tiny GPT's
        # training graph takes minutes); bounded effort lays it out in seconds.
        dot.set_graph_defaults(nslimit="2", mclimit="0.2", splines="line")
    dot.set_node_defaults(fontname="Helvetica", fontsize="10")
    dot.set_edge_defaults(fontname="Helvetica", fontsize="8", color="#555555")
    ident, blocks, block_ids = {}, {}, {}
    for i, n in enumerate(graph.nodes):
        block = _block_of(n.scope, collapse_depth) if collapse else ""
        if block and n.op not in ("input", "constant"):
            # the index keeps scopes that differ only in punctuation ('blocks.0' and
            # 'blocks_0') apart: one id for both merged them into a false cycle
            ident[n] = block_ids.setdefault(block, f"block_{len(block_ids)}_" + "".join(
                c if c.isalnum() else "_" for c in block))
            blocks.setdefault(block, []).append(n)
            continue
        ident[n] = f"n{i}"
        if n.op == "input":
            label = f"{n.attrs['name']}\n{n.type}"
            style = _STYLE.get(n.attrs["kind"], _STYLE["input"])
        elif n.op == "constant":
            label = format_constant(n.attrs["value"], 4)
            style = _STYLE["constant"]
        else:
            label = n.op
            if n.op == "fused":
                label = _fused_label(n.attrs["program"])
            style = _STYLE["output"] if n in outputs else _STYLE["op"]
        dot.add_node(pydot.Node(ident[n], label=_quote(label), **style))
    for block, members in blocks.items():
        ops = {}
        for m in members:
            ops[m.op] = ops.get(m.op, 0) + 1
        top = ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:3])
        label = f"{block}\n{len(members)} ops ({top})"
        dot.add_node(pydot.Node(ident[members[0]], label=_quote(label), **_STYLE["block"]))
    seen = set()
    for n in graph.nodes:
        for i in n.inputs:
            a, b = ident[i], ident[n]
            if a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            dot.add_edge(pydot.Edge(a, b, label=_quote(str(i.type))))
    for k, o in enumerate(graph.outputs):
        dot.add_node(pydot.Node(f"out{k}", label=_quote(f"output {k}"), shape="plaintext"))
        dot.add_edge(pydot.Edge(ident[o], f"out{k}", label=_quote(str(o.type))))
    return dot


def to_dot(graph, collapse: bool = False, collapse_depth: int = 2) -> str:
    return build_pydot(graph, collapse, collapse_depth).to_string()


def render(graph, fmt: str, collapse: bool = False) -> bytes:
    """SVG/PNG/PDF bytes through pydot and Graphviz's `dot` program."""
    if shutil.which("dot") is None:
        raise GraphcError(f"--format {fmt} needs Graphviz's `dot` program, which is not "
                          "installed; install it (Debian: apt-get install graphviz) or use "
                          "--format dot/text/json")
    return build_pydot(graph, collapse).create(format=fmt)
