"""Each Generator.generate call is independent of the last, as each transformers generate
builds a fresh cache (g2's findings 1 and 2): a run whose activations overflowed (inf, nan in
its caches) no longer makes every later prompt of the same cache span fail, and a left-padded
batch runs wherever each of its rows runs alone, whatever token 0's activations are."""
import numpy as np
import pytest

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig

VOCAB = 13


def model_with_huge_token(token: int, dtype="float32"):
    """An untied GPT whose token `token` has an embedding past float32's range in its
    products (1e38, mixed signs): any row holding it has NaN logits."""
    cfg = GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=8, block_size=16,
                    tie_weights=False, dtype=dtype)
    model = GPT(cfg, seed=3)
    params = model.state_dict()
    wte = params["wte.weight"]
    wte[token] = 1e38
    wte[token, 1::4] = -1e38
    return model, params


def greedy(gen, prompts, tokens=2):
    return gen.generate(prompts, tokens=tokens, temperature=0, stop_tokens=())


def test_a_failed_run_leaves_the_generator_usable():
    model, params = model_with_huge_token(7)
    fresh = greedy(Generator(model, params), [[1, 2, 3]])
    gen = Generator(model, params)
    with pytest.raises(ValueError, match="logits hold NaN"):
        greedy(gen, [[1, 2, 3, 7]])  # (the same cache span, 4 slots, as [1, 2, 3])
    assert greedy(gen, [[1, 2, 3]]) == fresh  # was the same NaN error


def test_a_failed_decode_step_leaves_the_generator_usable():
    model, params = model_with_huge_token(7)
    gen = Generator(model, params)
    assert np.isfinite(gen.start([[1, 2]])).all()
    assert np.isfinite(gen.advance([3])).all()
    assert not np.isfinite(gen.advance([7])).all()  # slot 3 now holds NaN keys and values
    assert greedy(gen, [[1, 2, 3]]) == greedy(Generator(model, params), [[1, 2, 3]])


def test_padding_does_not_read_token_0():
    model, params = model_with_huge_token(0)
    alone = [greedy(Generator(model, params), [p])[0] for p in ([1, 2, 3], [4, 5], [6])]
    assert greedy(Generator(model, params), [[1, 2, 3], [4, 5], [6]]) == alone  # was NaN
    # the logits too, to rounding: padding changes nothing a row sees
    gen = Generator(model, params)
    batch = gen.start([[1, 2, 3], [4, 5]])
    np.testing.assert_allclose(batch[1], Generator(model, params).start([[4, 5]])[0],
                               rtol=1e-5, atol=1e-5)
