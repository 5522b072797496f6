"""Session 18 review (lead a): GPT-2 generation's memory and checkpoint dtypes.

Found and fixed:
- The Generator's key/value caches were (B, n_head, block_size, head_dim) whatever the
  generation needed: a 1-token prompt and 4 new tokens on a GPT-2-shaped model (12 layers,
  768 wide, block 1024) allocated 75.5 MB of caches for 4 slots (295 KB). Like transformers'
  DynamicCache they now grow with the slots written: each step's caches have its span's
  slots (the slots in use rounded up to a power of two), and a step past them copies the
  slots written so far into caches twice the size.
- Generator._plans kept every concrete plan it ever ran, one per (batch, prompt length, span),
  each holding its buffers, and its reference kept alive the plans the step's own LRU
  (runtime/polymorphic.py, MAX_BINDINGS) had dropped: 60 prompt lengths, 60 plans. A
  Generator now holds at most MAX_PLANS concrete plans, the most recently run.
- load_gpt2 refused bfloat16 checkpoints ("tensor 'transformer.wte.weight' has dtype BF16;
  graphc reads F16, F32 and F64 weights"); they load upcast to the model's dtype, as
  transformers does with torch_dtype=float32.
"""
import gc
import os
import weakref

import ml_dtypes
import numpy as np
import safetensors.numpy as safetensors_numpy

from graphc import generate
from graphc.generate import Generator, _span
from graphc.models import gpt2

from test_generate import VOCAB, NoCache, small_model
from test_gpt2 import (SMALL, graphc_logits, need_transformers, save_random_gpt2,
                       write_directory)


def test_kv_caches_grow_with_the_tokens_generated_not_the_block():
    model, params = small_model("float32", block_size=1024, n_embd=8, n_head=2)
    reference = NoCache(model, params)
    gen = Generator(model, params)
    out = gen.generate([[3]], 4, temperature=0)
    assert out == [reference.greedy([3], 4)]
    # the prefill and three decode steps wrote slots 0-3: four slots, not 1024
    assert {c.shape for c in gen._caches.values()} == {(1, 2, 4, 4)}
    assert sum(c.nbytes for c in gen._caches.values()) == 4 * (2 * 4 * 4 * 4)  # 512 bytes
    # growing past a power of two keeps what the caches hold: every step's logits are the
    # no-cache path's, and the caches are as large as the span each step attends over
    model, params = small_model("float64", block_size=64)
    reference = NoCache(model, params)
    gen = Generator(model, params)
    context = [1, 2, 3]
    logits = gen.start([context])
    for t in range(40):
        np.testing.assert_allclose(logits[0], reference.logits(context), rtol=0, atol=1e-12)
        assert gen._caches["cache.1.v"].shape[2] == _span(len(context), 64)
        context.append(t % VOCAB)
        logits = gen.advance([t % VOCAB])


def test_a_generator_holds_a_bounded_number_of_plans():
    model, params = small_model("float64", block_size=64)
    gen = Generator(model, params)
    gen.start([[1]])
    first = weakref.ref(gen.last_plan)
    for length in range(2, 61):  # one prefill plan per prompt length
        gen.start([[t % VOCAB for t in range(length)]])
    assert len(gen._plans) == generate.MAX_PLANS
    # the steps keep no plan the Generator dropped: the first is gone, with its buffers
    assert sum(len(step.bindings) for step in gen._steps.values()) <= generate.MAX_PLANS
    gc.collect()
    assert first() is None
    # a dropped plan is lowered again when needed, and gives what it gave
    prompt = [4, 1, 7]
    again = Generator(model, params).generate([prompt], 5, temperature=0)
    assert gen.generate([prompt], 5, temperature=0) == again


def test_a_bfloat16_checkpoint_loads_upcast(tmp_path):
    directory = tmp_path / "bf16"
    write_directory(directory)
    path = os.path.join(directory, gpt2.WEIGHTS_FILE)
    weights = safetensors_numpy.load_file(path)
    halves = {k: v.astype(ml_dtypes.bfloat16) for k, v in weights.items()}
    safetensors_numpy.save_file(halves, path)
    rounded = tmp_path / "rounded"
    write_directory(rounded)  # the same weights, float32 values rounded through bfloat16
    safetensors_numpy.save_file({k: v.astype(np.float32) for k, v in halves.items()},
                                os.path.join(rounded, gpt2.WEIGHTS_FILE))
    for dtype in ("float32", "float64"):
        _, got = gpt2.load_gpt2(str(directory), dtype)
        _, want = gpt2.load_gpt2(str(rounded), dtype)
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got[name], want[name])
    # and the values are not all equal: bfloat16 rounding kept them apart
    assert len(np.unique(got["wte.weight"])) > 100


def test_a_bfloat16_checkpoint_from_transformers_gives_its_float32_logits(tmp_path):
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    save_random_gpt2(tmp_path).to(torch.bfloat16).save_pretrained(tmp_path)
    reference = GPT2LMHeadModel.from_pretrained(tmp_path, torch_dtype=torch.float32).eval()
    model, params = gpt2.load_gpt2(str(tmp_path))
    idx = np.random.default_rng(1).integers(0, SMALL["vocab_size"], (2, SMALL["n_positions"]))
    with torch.no_grad():
        ref = reference(torch.tensor(idx)).logits.numpy()
    assert np.abs(ref).max() > 1.0
    np.testing.assert_allclose(graphc_logits(model, params, idx), ref, rtol=0, atol=1e-4)
