"""gc.draw(tensor): node ids are numbered in traversal order (they were id() addresses, so
two runs, or two equal tapes, gave DOT texts that differed on every line)."""
import re

import numpy as np

import graphc as gc


def _tape():
    x = gc.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    return gc.sum(gc.relu(x) * 2.0)


def test_draw_tensor_is_deterministic():
    a, b = _tape(), _tape()  # both alive: their tensors' id()s differ
    text = gc.draw(a).to_string()
    assert text == gc.draw(b).to_string()
    nodes = re.findall(r"^(\w+) \[label=\"([^\"]*)\"", text, re.M)
    assert [n for n, _ in nodes] == ["t0", "op0", "t1", "op1", "t2", "t3", "op3", "t4"]
    labels = dict(nodes)
    assert labels["op0"] == "sum" and labels["op1"] == "mul" and labels["op3"] == "relu"
    assert labels["t0"] == "{data 8 | grad 1}"
    assert labels["t4"].startswith("{data [ 1., -2.,  3.] | grad [2., 0., 2.]")
    edges = set(re.findall(r"^(\w+) -> (\w+);", text, re.M))
    assert edges == {("op0", "t0"), ("t1", "op0"), ("op1", "t1"), ("t3", "op1"),
                     ("t2", "op1"), ("op3", "t3"), ("t4", "op3")}
