"""Test helper: the GPT's loss graph with its parameters' gradients as further outputs (the
graph a training step compiles), for tests of the passes and kernels that act on it."""
import numpy as np

import graphc as gc
from graphc.models.gpt import GPT, GPTConfig
from passes.autodiff import gradients
from passes.manager import optimize


def add_parameter_gradients(graph):
    """graph's outputs become (loss, d loss / d each parameter), in the inputs' order."""
    with graph.building():
        params = [n for n in graph.inputs if n.attrs["kind"] == "param"]
        graph.set_outputs([graph.outputs[0]] + gradients([graph.outputs[0]], params))
    graph.output_tree = None
    return graph


def gpt_step(dtype, batch, seed=0, **config):
    """(the optimized training-step graph of a tiny-based GPT, its (idx, targets) inputs);
    `config` overrides the tiny config (block_size, n_layer, ...)."""
    cfg = GPTConfig.named(config.pop("config", "tiny"), vocab_size=65, dtype=dtype, **config)
    model = GPT(cfg, seed=0)
    T = cfg.block_size
    graph = gc.trace(lambda idx, targets: model(idx, targets),
                     gc.spec((batch, T), "int64"), gc.spec((batch, T), "int64"))
    rng = np.random.default_rng(seed)
    inputs = (rng.integers(0, 65, (batch, T)), rng.integers(0, 65, (batch, T)))
    return optimize(add_parameter_gradients(graph)), inputs
