"""Prompts given as torch tensors and numpy arrays (g2's finding 3): a 0-d array or tensor among
the prompts, or a 1-D tensor as the prompts (transformers' input_ids[0]), is the one
ValueError line a 1-D list or array gets (Generator takes a list of prompts; Sampler one
prompt, a 1-D tensor included); they were raw TypeErrors from len()."""
import numpy as np
import pytest
import torch

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=16), seed=0)


@pytest.mark.parametrize("prompts, got", [
    (torch.tensor([1, 2, 3]), "tensor([1, 2, 3])"),
    ([np.array(1)], "[array(1)]"),
    ([torch.tensor(1), torch.tensor(2)], "[tensor(1), tensor(2)]"),
    ([[1, 2], np.array(3)], "[[1, 2], array(3)]"),
    (np.array(3), "array(3)"),
    (torch.tensor(3), "tensor(3)"),
])
def test_0d_and_1d_tensors_as_prompts_are_one_error_line(model, prompts, got):
    gen = Generator(model, model.params())
    for tokens in (2, 0):
        with pytest.raises(ValueError) as info:
            gen.generate(prompts, tokens, temperature=0)
        assert str(info.value) == ("prompts must be a list of token-id lists (one per row), "
                                   f"got {got}")


def test_tensor_rows_and_a_1d_tensor_prompt_for_sampler_are_taken(model):
    gen = Generator(model, model.params())
    want = gen.generate([[1, 2, 3]], 3, temperature=0)
    assert gen.generate([torch.tensor([1, 2, 3])], 3, temperature=0) == want
    assert gen.generate(torch.tensor([[1, 2, 3]]), 3, temperature=0) == want
    assert gen.generate([np.array([1, 2, 3])], 3, temperature=0) == want
    assert Sampler(model, model.params()).generate(torch.tensor([1, 2, 3]), 3,
                                                   temperature=0) == want[0]
