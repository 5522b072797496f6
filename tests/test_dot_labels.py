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
