"""ir/dot.py's labels and node ids: a fused node's count is its program's instructions (it
was the program text's length), and --collapse gives each layer scope its own node id."""
import re

from graphc.cli import main
from ir.ops.cluster import parse_program


def test_fused_label_counts_ops_not_characters(capsys):
    assert main(["dump", "mlp", "--grad", "--after", "fuse", "--format", "json"]) == 0
    import json
    programs = [n["attrs"]["program"] for n in _json_nodes(json.loads(capsys.readouterr().out))
                if n.get("op") == "fused"]
    assert programs
    assert main(["dump", "mlp", "--grad", "--after", "fuse", "--format", "dot"]) == 0
    labels = re.findall(r'label="(fused\[[^"]*)"', capsys.readouterr().out)
    expected = []
    for p in programs:
        ops = [op for op, _, _ in parse_program(p)]
        assert len(ops) < len(p)
        expected.append(f"fused[{len(ops)}]\\n" + ", ".join(ops))
    assert sorted(labels) == sorted(expected)


def _json_nodes(doc):
    # the node records, wherever the JSON format keeps them
    if isinstance(doc, dict):
        if "op" in doc and "attrs" in doc:
            yield doc
        for v in doc.values():
            yield from _json_nodes(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _json_nodes(v)


def test_collapse_keeps_scopes_that_differ_in_punctuation_apart():
    import graphlib

    import graphc as gc
    from ir.dot import to_dot

    class M(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = gc.nn.ModuleList([gc.nn.Linear(4, 4)])
            self.blocks_0 = gc.nn.Linear(4, 4)

        def forward(self, x):
            return self.blocks_0(gc.relu(self.blocks[0](x)))

    text = to_dot(gc.trace(M(), gc.spec((2, 4))), collapse=True)
    boxes = dict(re.findall(r'^(\w+) \[label="(blocks[._]0)\\n', text, re.M))
    assert sorted(boxes.values()) == ["blocks.0", "blocks_0"]
    assert len(boxes) == 2  # two ids
    edges = re.findall(r"^(\w+) -> (\w+) ", text, re.M)
    order = graphlib.TopologicalSorter()
    for a, b in edges:
        order.add(b, a)
    order.static_order()  # raises CycleError on the false cycle the shared id made
    first, second = (k for k, v in sorted(boxes.items(), key=lambda kv: kv[1]))
    relu = [b for a, b in edges if a == first]
    assert len(relu) == 1 and (relu[0], second) in edges
