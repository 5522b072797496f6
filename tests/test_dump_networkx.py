"""`graphc dump --stats` facts computed by networkx over Graph.to_networkx, and
`graphc dump --format graphml`."""
import networkx as nx
import pytest

import graphc as gc
from graphc.cli import main
from graphc.dump import dependency_facts

MODEL = '''
import graphc as gc


def f(x, w):
    unused = gc.tanh(x)
    return gc.exp(x @ w) + gc.sum(x)


def build():
    return f, gc.spec((4, 3)), gc.spec((3, 8))
'''


def _graph():
    def f(x, w):
        gc.tanh(x)  # no output depends on it
        return gc.exp(x @ w) + gc.sum(x)
    return gc.trace(f, gc.spec((4, 3)), gc.spec((3, 8)))


def test_to_networkx_carries_each_node_and_operand():
    g = _graph()
    nxg = g.to_networkx()
    assert sorted(nxg.nodes) == [n.id for n in g.nodes]
    assert sorted(nxg.edges(keys=True)) == sorted((i.id, n.id, k) for n in g.nodes
                                                  for k, i in enumerate(n.inputs))
    matmul = next(n for n in g.nodes if n.op == "matmul")
    assert nxg.nodes[matmul.id]["flops"] == 2 * 4 * 3 * 8
    assert nxg.nodes[matmul.id]["type"] == "f32[4,8]"
    assert nxg.nodes[g.outputs[0].id]["output"] is True
    assert nxg.nodes[g.inputs[1].id]["name"] == "w"
    assert nxg.graph["name"] == "f"


def test_dependency_facts_of_a_small_graph():
    facts = dependency_facts(_graph())
    # matmul 2*4*3*8 + exp 4 per element * 32 + add 32; the other chain is sum (12) + add
    assert facts["critical_flops"] == 192 + 128 + 32
    assert facts["critical_ops"] == ["matmul", "exp", "add"]
    assert facts["total_flops"] == 192 + 128 + 32 + 12 + 6 * 12  # tanh: 6 per element
    assert facts["longest_chain"] == 3
    tanh = next(n for n in _graph().nodes if n.op == "tanh")
    assert facts["unused"] == [tanh.id]


def test_longest_chain_counts_ops_not_flops():
    """A long chain of cheap ops beats one costly op in length, not in FLOPs."""
    def f(x, w):
        cheap = gc.neg(gc.neg(gc.neg(gc.neg(x))))
        return gc.sum(x @ w) + gc.sum(cheap)
    facts = dependency_facts(gc.trace(f, gc.spec((4, 3)), gc.spec((3, 8))))
    assert facts["longest_chain"] == 6  # 4 negs, their sum, the add
    assert facts["critical_ops"] == ["matmul", "sum", "add"]  # 192 + 32 + 1 FLOPs
    assert facts["unused"] == []


def test_stats_print_the_critical_path(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    assert main(["dump", f"{path}:build", "--stats", "-O0"]) == 0
    out = capsys.readouterr().out
    assert "critical path: 352 FLOPs (80.7% of all), 3 ops: matmul -> exp -> add" in out
    assert "longest dependency chain: 3 ops; ops no output depends on: 1" in out


def test_graphml_export_reads_back_as_the_same_graph(tmp_path, capsys):
    target = tmp_path / "g.graphml"
    assert main(["dump", "mlp", "--grad", "--format", "graphml", "-o", str(target)]) == 0
    back = nx.read_graphml(target)
    from graphc.dump import load_target
    from passes.manager import optimize
    expected = optimize(load_target("mlp", grad=True)).to_networkx()
    assert back.number_of_nodes() == expected.number_of_nodes()
    assert back.number_of_edges() == expected.number_of_edges()
    ops = sorted(d["op"] for _, d in back.nodes(data=True))
    assert ops == sorted(d["op"] for _, d in expected.nodes(data=True))
    assert sum(d["flops"] for _, d in back.nodes(data=True)) == \
        pytest.approx(sum(d["flops"] for _, d in expected.nodes(data=True)))
    assert not list(tmp_path.glob(".g.graphml.*"))  # no temporary file left beside it


def _square_graphml(tmp_path):
    """The GraphML file `graphc dump -O0` writes of y - x * x (x used twice by one op)."""
    model = tmp_path / "square.py"
    model.write_text("import graphc as gc\n\n\ndef build():\n"
                     "    return (lambda x, y: y - x * x), gc.spec(3), gc.spec(3)\n")
    target = tmp_path / "g.graphml"
    assert main(["dump", f"{model}:build", "-O0", "--format", "graphml", "-o",
                 str(target)]) == 0
    return target


def test_graphml_keeps_each_operand_of_an_op_that_uses_a_value_twice(tmp_path):
    """`x * x` has two operands, both x; the graph was a DiGraph, so the export gave it ONE
    edge from x (and a reader could not tell which operand x is of `x - y`). Each operand is
    an edge of its own now, carrying its position, as the file reads back."""
    target = _square_graphml(tmp_path)
    back = nx.read_graphml(target)
    assert back.number_of_edges() == 4  # x, x -> mul; y, mul -> sub
    ops = dict(back.nodes(data="op"))
    names = dict(back.nodes(data="name"))

    def operands(op):
        (node,) = [n for n, o in ops.items() if o == op]
        edges = sorted((d["operand"], u) for u, _, d in back.in_edges(node, data=True))
        return [(k, ops[u] if ops[u] != "input" else names[u]) for k, u in edges]
    assert operands("mul") == [(0, "x"), (1, "x")]
    assert operands("sub") == [(0, "y"), (1, "mul")]


def test_graphml_gives_each_edge_an_id_of_its_own(tmp_path):
    """Review r1 (s49) of 9a21e04 (an edge per operand): networkx writes a multigraph's keys,
    the operand positions, as the edges' ids, so most edges of a file had id "0" or "1",
    where GraphML's schema requires an edge's id unique in its graph (readers that index
    edges by id kept one of each). Each edge's id is USER.POSITION now; the operands still
    read back with their positions."""
    import xml.etree.ElementTree as ET
    target = _square_graphml(tmp_path)
    edges = ET.parse(target).getroot().iter("{http://graphml.graphdrawing.org/xmlns}edge")
    ids = [e.get("id") for e in edges]
    assert len(ids) == 4 and len(set(ids)) == 4 and None not in ids
    back = nx.read_graphml(target)
    assert sorted(d["operand"] for _, _, d in back.edges(data=True)) == [0, 0, 1, 1]


def test_graphml_to_stdout(capsys):
    assert main(["dump", "mlp", "--format", "graphml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<graphml") and out.rstrip().endswith("</graphml>")
    assert nx.parse_graphml(out).number_of_nodes() > 5
