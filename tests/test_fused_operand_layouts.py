"""A generated (fused) kernel is compiled at the plan's build for the numba types its call
passes (runtime/layouts.py): a transposed operand ('F'), a sliced one ('A') or a view of a
constant (read-only) compiled a second specialisation at the plan's first call."""
import sys
import os

import numpy as np
import pytest

import graphc as gc
from runtime import fusion, jit
from runtime.codegen import compile_graph

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from randgraph import random_graph, with_gradient  # noqa: E402

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _compiled():
    """The number of specialisations of the generated kernels this process has loaded."""
    return sum(len(k.signatures) for k in jit._LOADED.values())


def _fused_plan(fn, *args):
    graph = gc.compile(fn).plan_for(*args).graph
    return compile_graph(graph, jit=True, background_compile=False)


def test_transposed_and_sliced_operands_compile_nothing_at_the_first_call(monkeypatch):
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))

    def fn(x, y):
        return gc.exp(x.T) * y + 1.0, gc.tanh(x[:, 1:4]) * 2.0 + y[:, :3]
    plan = _fused_plan(fn, x, y)
    specs = [f.spec for f in plan.lowered.rendered.fused]
    assert len(specs) == 2
    layouts = sorted(item[3] for spec in specs for item in spec[1:] if len(item) > 3)
    assert layouts == ["A", "A", "F"]  # x[:, 1:4] and y[:, :3]; x.T
    before = _compiled()
    a, b = plan(x, y)
    assert _compiled() == before
    np.testing.assert_allclose(a, np.exp(x.T) * y + 1.0, rtol=1e-15)
    np.testing.assert_allclose(b, np.tanh(x[:, 1:4]) * 2.0 + y[:, :3], rtol=1e-15)


@pytest.mark.parametrize("seed", [3, 5, 7, 21])  # views of inputs and of constants
def test_random_graphs_compile_nothing_after_the_build(seed, monkeypatch):
    """Seeds of tests/test_fusion.py's random graphs whose first call compiled a kernel."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    graph, inputs = random_graph(40_000 + seed, dtype="float64")
    if seed % 2:
        graph = with_gradient(graph)
    with np.errstate(all="ignore"):
        plan = compile_graph(graph, jit=True, background_compile=False)
        before = _compiled()
        got = plan(*inputs)
        assert _compiled() == before
        again = compile_graph(graph, jit=False)(*inputs)
    for g, want in zip(got, again):
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_operand_types_follow_numpys_views():
    from runtime.layouts import operand_type

    def ops(fn, *args):
        graph = gc.compile(fn).plan_for(*args).graph
        return {n.op: n for n in graph.nodes}
    x = np.zeros((4, 6))
    found = ops(lambda x: (x.T, x[:, 1:3], x[1:3, :], gc.broadcast_to(x[0], (4, 6))), x)
    assert operand_type(found["transpose"], (6, 4)) == (False, "F")
    assert operand_type(found["transpose"], (24,)) == (False, "C")  # reshaped: a copy
    slices = [n for n in gc.compile(lambda x: (x[:, 1:3], x[1:3, :])).plan_for(x).graph.nodes
              if n.op == "slice"]
    assert [operand_type(n, n.shape) for n in slices] == [(False, "A"), (False, "C")]
    assert operand_type(found["broadcast_to"], (4, 6)) == (True, "A")
