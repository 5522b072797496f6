"""Generation workloads of `graphc bench`: prefill and decode tokens/s with a KV cache.

`gen-{model}-{phase}-b{batch}`: model `small` (the char model's config) or `gpt2` (GPT-2
124M's shape: 12 layers, 12 heads, 768 wide, 1024 positions, vocabulary 50257, random
weights); phase `prefill` (one step: a prompt of PROMPT[model] tokens per row into an empty
cache) or `decode` (one step: one greedy token per row, after the prompt). Contenders:
graphc compiled (graphc.generate's plans) and PyTorch eager running transformers'
GPT2LMHeadModel on the same weights with its KV cache, as `generate(use_cache=True)` does
greedily (one forward per token on the new token and the cache).

A decode runner continues from where its last step left off; after DECODE_SPAN tokens it
starts again from the prompt (that step includes the prefill; the bench reports medians).
"""
from __future__ import annotations

import inspect
import time

import numpy as np

from .models.gpt import GPT, GPTConfig

MODELS = {
    "small": lambda: GPTConfig.named("small"),
    "gpt2": lambda: GPTConfig(vocab_size=50257, n_layer=12, n_head=12, n_embd=768,
                              block_size=1024),
}
PROMPT = {"small": 32, "gpt2": 128}
DECODE_SPAN = {"small": 32, "gpt2": 128}
BATCHES = (1, 8)
WORKLOADS = tuple(f"gen-{m}-{phase}-b{b}" for m in MODELS for phase in ("prefill", "decode")
                  for b in BATCHES)
CONTENDERS = ("compiled", "torch")


def parse(workload: str):
    _, model, phase, batch = workload.split("-")
    return model, phase, int(batch[1:])


def _prompts(cfg, batch, length):
    return np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, length))


class _Runner:
    """One prefill (phase `prefill`) or one decode token (phase `decode`) per call."""

    def __init__(self, model_name, phase, batch):
        self.cfg = MODELS[model_name]()
        self.model = GPT(self.cfg, seed=0)
        self.prompts = _prompts(self.cfg, batch, PROMPT[model_name])
        self.phase, self.span = phase, DECODE_SPAN[model_name]
        self.compile_seconds = self.background_seconds = self.peak_bytes = None
        self.flops = None  # (graphc.generate's plans are not counted: %GEMM is blank)
        self.next_tokens, self.decoded = None, self.span

    def __call__(self):
        if self.phase == "prefill":
            return self.prefill()
        if self.decoded >= self.span:  # start again from the prompt
            self.next_tokens, self.decoded = self._argmax(self.prefill()), 0
        self.next_tokens = self._argmax(self.decode(self.next_tokens))
        self.decoded += 1


class GraphcRunner(_Runner):
    def __init__(self, model_name, phase, batch):
        super().__init__(model_name, phase, batch)
        from .generate import Generator
        self.generator = Generator(self.model, self.model.state_dict())
        start = time.perf_counter()
        self.generator.start(self.prompts.tolist())
        if phase == "decode":
            self.generator.advance(list(self.prompts[:, -1]))
        self.compile_seconds = time.perf_counter() - start
        plan = self.generator.last_plan
        from .bench import _wait_for_kernels
        self.background_seconds = _wait_for_kernels(
            *(plan for plan, _ in self.generator._plans.values()))
        self.peak_bytes = plan.peak_intermediate_bytes
        self.memory = plan.memory
        self.decoded = self.span

    def prefill(self):
        return self.generator.start(self.prompts.tolist())

    def decode(self, tokens):
        return self.generator.advance(tokens)

    @staticmethod
    def _argmax(logits):
        return [int(i) for i in np.argmax(logits, axis=-1)]


class TorchRunner(_Runner):
    def __init__(self, model_name, phase, batch):
        super().__init__(model_name, phase, batch)
        import torch
        self.torch = torch
        self.hf = hf_model(self.model)
        self.ids = torch.tensor(self.prompts)
        self.decoded = self.span
        # transformers 5 renamed past_key_values to cache (the old name warns)
        self.cache_name = "cache" if "cache" in inspect.signature(self.hf.forward).parameters \
            else "past_key_values"

    def prefill(self):
        with self.torch.no_grad():
            out = self.hf(input_ids=self.ids, use_cache=True)
        self.cache = getattr(out, self.cache_name)
        return out.logits[:, -1]

    def decode(self, tokens):
        with self.torch.no_grad():
            out = self.hf(input_ids=tokens[:, None], use_cache=True,
                          **{self.cache_name: self.cache})
        self.cache = getattr(out, self.cache_name)
        return out.logits[:, -1]

    @staticmethod
    def _argmax(logits):
        return logits.argmax(-1)


def hf_model(model: GPT):
    """transformers' GPT2LMHeadModel holding a graphc GPT's weights (Conv1D stores (in, out)
    like graphc's Linear: no transposes)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from .models.gpt2 import hf_name
    cfg = model.cfg
    config = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size,
                        n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, layer_norm_epsilon=cfg.layer_norm_eps,
                        tie_word_embeddings=cfg.tie_weights, bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(config).eval()
    state = {"transformer." + hf_name(n): torch.tensor(p) for n, p in
             model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
    return hf


def make(workload: str, contender: str):
    """-> (runner, tokens per step), or None where the contender has no such workload."""
    model_name, phase, batch = parse(workload)
    if contender not in CONTENDERS:
        return None
    runner = (GraphcRunner if contender == "compiled" else TorchRunner)(model_name, phase,
                                                                         batch)
    tokens = batch * (PROMPT[model_name] if phase == "prefill" else 1)
    return runner, tokens


def memory_bandwidth(megabytes=256, repeat=5) -> float:
    """This machine's memory bandwidth in bytes/s as numpy's copy sees it (bytes read plus
    bytes written, best of `repeat`): the ceiling for a decode step, which reads every weight
    once."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def decode_bytes(workload: str) -> int:
    """Bytes a decode step reads at least: every weight once, plus the keys and values of
    the cache slots in use by the end of the decode span (any KV-cache decoder reads those;
    graphc's plans read the slots in use rounded up to a power of two)."""
    model_name, _, batch = parse(workload)
    cfg = MODELS[model_name]()
    itemsize = np.dtype(cfg.dtype).itemsize
    slots = min(PROMPT[model_name] + DECODE_SPAN[model_name], cfg.block_size)
    cache = 2 * cfg.n_layer * batch * slots * cfg.n_embd * itemsize
    return cfg.parameter_bytes() + cache


def bandwidth_rows(results, bandwidth) -> list:
    """Per decode row: tokens/s, the bandwidth bound on them, and the bytes a step reads at
    least (--json's "decode_bandwidth" rows; bandwidth_table prints them)."""
    rows = []
    for r in results:
        if not r.workload.startswith("gen-") or "-decode-" not in r.workload:
            continue
        _, _, batch = parse(r.workload)
        need = decode_bytes(r.workload)
        bound = bandwidth / need * batch
        speed = r.tokens / (r.median_ms / 1e3)
        rows.append(dict(workload=r.workload, contender=r.contender, tokens_per_s=speed,
                         bound_tokens_per_s=bound, share_of_bound=speed / bound,
                         bytes_read_per_step=need))
    return rows


def bandwidth_table(results, bandwidth) -> str:
    """Decode tokens/s against the memory-bandwidth bound of each decode workload."""
    lines = [f"memory bandwidth (numpy copy, read + write): {bandwidth / 1e9:.1f} GB/s", "",
             f"{'workload':<22} {'contender':<9} {'tok/s':>8} {'bound tok/s':>11} "
             f"{'of bound':>8} {'MiB read/step':>13}"]
    for row in bandwidth_rows(results, bandwidth):
        lines.append(f"{row['workload']:<22} {row['contender']:<9} {row['tokens_per_s']:>8.1f} "
                     f"{row['bound_tokens_per_s']:>11.1f} {row['share_of_bound']:>8.0%} "
                     f"{row['bytes_read_per_step'] / 2**20:>13.0f}")
    return "\n".join(lines)
