"""Generator.generate(input_ids, ..., attention_mask=) takes transformers' left-padded (B, L)
input_ids with its 0/1 mask (a tokenizer's padding=True, padding_side="left"): the same
tokens as the ragged prompts under the 1s, which are transformers' greedy tokens for such a
batch (test_gpt2; checked against GPT2LMHeadModel.generate token for token by hand). Without
it, the padding was taken as tokens. A mask of another shape, not 0/1, or padding on the
right is one ValueError line."""
import numpy as np
import pytest
import torch

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig


@pytest.fixture(scope="module")
def gen():
    model = GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=12), seed=3)
    return Generator(model, model.params())


def test_left_padded_input_ids_are_the_ragged_prompts(gen):
    ids = np.array([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    mask = (np.arange(5)[None] >= np.array([2, 0, 4])[:, None]).astype(np.int64)
    want = gen.generate([[5, 6, 7], [1, 2, 3, 4, 5], [9]], 5, temperature=0)
    assert gen.generate(ids, 5, temperature=0, attention_mask=mask) == want
    assert gen.generate(torch.tensor(ids), 5, temperature=0,
                        attention_mask=torch.tensor(mask)) == want
    assert gen.generate(ids, 5, temperature=0) != want  # (the padding read as tokens)


@pytest.mark.parametrize("mask, message", [
    (np.ones((3, 4)), r"attention_mask must have input_ids' shape \(B, L\), got \(3, 4\)"),
    (np.full((3, 5), 2), "attention_mask must hold 0 .padding. and 1 .a token. only"),
    (np.array([[1, 1, 1, 1, 0]] * 3), "attention_mask pads on the right"),
])
def test_a_bad_mask_is_one_error_line(gen, mask, message):
    with pytest.raises(ValueError, match=message):
        gen.generate(np.ones((3, 5), np.int64), 2, attention_mask=mask)


def test_stream_takes_the_mask_as_generate_does(gen):
    # (generate's only: stream(input_ids, attention_mask=...) was a TypeError, and
    # stream(input_ids) alone reads the padding as tokens)
    ids = np.array([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    mask = (np.arange(5)[None] >= np.array([2, 0, 4])[:, None]).astype(np.int64)
    want = gen.generate([[5, 6, 7], [1, 2, 3, 4, 5], [9]], 5, temperature=0.9, seed=4)
    steps = list(gen.stream(ids, 5, temperature=0.9, seed=4, attention_mask=mask))
    assert [list(row) for row in zip(*steps)] == want
    with pytest.raises(ValueError, match="attention_mask pads on the right"):
        gen.stream(ids, 2, attention_mask=np.array([[1, 1, 1, 1, 0]] * 3))
