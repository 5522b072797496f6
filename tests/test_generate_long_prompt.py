"""A prompt longer than the model's positions is read from its last block_size tokens, as
before, but no longer silently (g2's finding 5): one LongPromptWarning line per call naming
the lengths, as transformers' tokenizer warns of a sequence past the model's maximum."""
import warnings

import numpy as np
import pytest

from graphc.generate import Generator, LongPromptWarning
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=4), seed=0)


def test_a_prompt_past_the_block_warns_once_and_reads_its_last_tokens(model):
    gen = Generator(model, model.params())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        want = gen.generate([[6, 7, 8, 9], [1]], 3, temperature=0)  # (4: the block, no warning)
        assert caught == []
        got = gen.generate([list(range(10)), [1], [2] * 7], 3, temperature=0)
    assert [str(w.message) for w in caught] == [
        "a prompt of 10 tokens is longer than the model's 4 positions (block_size, a GPT-2's "
        "n_positions): only its last 4 tokens are read"]
    assert caught[0].category is LongPromptWarning and caught[0].filename == __file__
    assert got[:2] == want
    with pytest.warns(LongPromptWarning, match="a prompt of 5 tokens"):
        assert Sampler(model, model.params()).generate(np.arange(5), 3, temperature=0) == \
            gen.generate([[1, 2, 3, 4]], 3, temperature=0)[0]
