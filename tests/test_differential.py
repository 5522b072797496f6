"""Differential testing: on 1,200 random graphs (600 forward, 600 with their gradients), each
pass alone and the whole default pipeline compute what the unoptimised graph computes."""
import numpy as np
import pytest

from passes import fusion
from passes.manager import PASSES, run_pipeline
from runtime.interpreter import run

from randgraph import random_graph, with_gradient

SEEDS = range(600)


@pytest.fixture(autouse=True)
def fuse_small_values(monkeypatch):
    """Random graphs' values are smaller than fusion's threshold: here fusion takes them all
    (the interpreter runs fused nodes by their numpy definition; no kernels are compiled)."""
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)


def _check(seed, graph, inputs, label):
    with np.errstate(all="ignore"):
        expected = run(graph, *inputs)
        for name in list(PASSES) + ["default"]:
            optimised = run_pipeline(graph, [name] if name in PASSES else name,
                                     verify_each=True).graph
            got = run(optimised, *inputs)
            assert len(got) == len(expected)
            for k, (e, o) in enumerate(zip(expected, got)):
                assert e.shape == o.shape, f"seed {seed} ({label}), pass {name}, output {k}"
                np.testing.assert_allclose(
                    o, e, rtol=1e-9, atol=1e-12, equal_nan=True,
                    err_msg=f"seed {seed} ({label}), pass {name}, output {k}")


@pytest.mark.parametrize("chunk", range(6))
def test_passes_preserve_values_on_random_graphs(chunk):
    for seed in SEEDS[chunk::6]:
        graph, inputs = random_graph(seed)
        _check(seed, graph, inputs, "forward")


@pytest.mark.parametrize("chunk", range(6))
def test_passes_preserve_values_on_random_gradient_graphs(chunk):
    for seed in SEEDS[chunk::6]:
        graph, inputs = random_graph(10_000 + seed)
        _check(10_000 + seed, with_gradient(graph), inputs, "gradient")


def _computing_nodes(graph):
    return sum(n.op not in ("input", "constant") for n in graph.nodes)


def test_the_generator_exercises_the_passes():
    fired = {name: 0 for name in PASSES}
    for seed in range(100):
        graph, _ = random_graph(seed)
        graph = with_gradient(graph)
        for name in PASSES:
            after = run_pipeline(graph, [name]).graph
            if _computing_nodes(after) < _computing_nodes(graph):
                fired[name] += 1
    assert all(count >= 10 for count in fired.values()), fired
