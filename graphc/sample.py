"""Text generation from a trained GPT with a compiled inference graph.

The graph has a fixed (1, block_size) input: the context is written at the start of the
window and padded on the right; causal attention makes the logits at the last real position
independent of the padding, so one plan serves every context length without recompiling.
"""
from __future__ import annotations

import numpy as np

from passes.manager import optimize
from runtime.codegen import compile_graph
from runtime.interpreter import evaluate

from .train import build_logits


def default_prompt(vocab) -> str:
    """A newline, nanoGPT's usual start, when the text has one; otherwise the vocabulary's
    first character (a text without newlines cannot encode "\n")."""
    return "\n" if "\n" in vocab else vocab[0]


class Sampler:
    def __init__(self, model, params: dict):
        self.model = model
        self.params = params
        self.plan = compile_graph(optimize(build_logits(model), evaluate=evaluate))
        self._order = [n.attrs["name"] for n in self.plan.graph.inputs]

    def next_logits(self, context: list) -> np.ndarray:
        T = self.model.cfg.block_size
        window = context[-T:]
        idx = np.zeros((1, T), dtype=np.int64)
        idx[0, :len(window)] = window
        feed = {"idx": idx, **self.params}
        logits = self.plan(*[feed[n] for n in self._order])[0]
        return logits[0, len(window) - 1].astype(np.float64)

    def generate(self, prompt_ids, tokens: int, temperature=1.0, top_k=None, seed=0) -> list:
        if not (np.isfinite(temperature) and temperature >= 0):  # nan fails both ways
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        rng = np.random.default_rng(seed)
        context = list(prompt_ids) or [0]
        out = []
        for _ in range(tokens):
            logits = self.next_logits(context)
            if temperature == 0:
                choice = int(np.argmax(logits))
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.size:
                    cutoff = np.sort(logits)[-top_k]
                    logits = np.where(logits < cutoff, -np.inf, logits)
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                choice = int(rng.choice(logits.size, p=probs))
            context.append(choice)
            out.append(choice)
        return out
