"""The generation workloads of `graphc bench` (graphc/bench_generate.py): both contenders
compute the same model, and a decode runner continues greedily from its prompt."""
import numpy as np
import pytest

from graphc import bench_generate as bg
from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig


def test_workload_names_and_bytes_per_decode_step():
    assert "gen-gpt2-decode-b8" in bg.WORKLOADS and "gen-small-prefill-b1" in bg.WORKLOADS
    assert bg.parse("gen-gpt2-decode-b8") == ("gpt2", "decode", 8)
    cfg = bg.MODELS["gpt2"]()
    assert cfg.num_parameters() == 124_439_808  # GPT-2 124M (tied head)
    cache = 2 * 12 * 8 * (128 + 128) * 768 * 4  # keys and values of the slots in use
    assert bg.decode_bytes("gen-gpt2-decode-b8") == 124_439_808 * 4 + cache


def test_the_torch_contender_is_the_same_model_with_the_same_greedy_tokens():
    pytest.importorskip("torch", reason="torch, a bench contender, is not installed")
    pytest.importorskip("transformers", reason="transformers, a bench contender, is not "
                        "installed (make test-setup installs it)")
    import torch
    cfg = GPTConfig(vocab_size=13, n_layer=2, n_head=2, n_embd=16, block_size=12)
    model = GPT(cfg, seed=3)
    rng = np.random.default_rng(0)
    for _, p in model.named_parameters():
        p.data = (p.data + rng.normal(0, 0.3, p.data.shape)).astype(np.float32)
    prompts = rng.integers(0, 13, (2, 4))
    ours = Generator(model, model.state_dict()).generate(prompts.tolist(), 6, temperature=0)
    hf = bg.hf_model(model)
    # GPT2Config's default 50256, past the 13 tokens, printed transformers' config warnings
    assert hf.config.bos_token_id is None and hf.config.eos_token_id is None
    with torch.no_grad():
        ref = hf.generate(torch.tensor(prompts), max_new_tokens=6, do_sample=False,
                          use_cache=True, pad_token_id=0)
    assert ref[:, 4:].tolist() == ours


def test_a_decode_runner_restarts_from_its_prompt_after_its_span(monkeypatch):
    monkeypatch.setitem(bg.MODELS, "small", lambda: GPTConfig(vocab_size=9, n_layer=1,
                                                              n_head=2, n_embd=8,
                                                              block_size=8))
    monkeypatch.setitem(bg.PROMPT, "small", 3)
    monkeypatch.setitem(bg.DECODE_SPAN, "small", 2)
    runner, tokens = bg.make("gen-small-decode-b1", "compiled")
    assert tokens == 1 and bg.make("gen-small-decode-b1", "eager") is None
    seen = []
    for _ in range(5):
        runner()
        seen.append((runner.decoded, len(runner.generator._contexts[0])))
    assert seen == [(1, 4), (2, 5), (1, 4), (2, 5), (1, 4)]
    assert runner.memory["inputs"] > 0
