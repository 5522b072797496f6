"""Generator.generate / stream's attention_mask refusals name attention_mask and what was
expected and given (f5, session 55): a value that is no 0 or 1 and where it is (was "must hold
0 (padding) and 1 (a token) only", naming neither), the row and columns that pad on the right
(was "pads on the right (a 1 before a 0)"), ragged prompts as the prompts' fault with their
lengths (was "attention_mask must have input_ids' shape (B, L), got (2, 3) for prompts of
shape (2,)": the mask was right), and a ragged mask as its rows' lengths (was numpy's raw
"setting an array element with a sequence ... inhomogeneous shape")."""
import numpy as np
import pytest
import torch

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig

IDS = np.ones((3, 5), np.int64)
RIGHT = "graphc takes left padding, as transformers' generate wants (padding_side=\"left\"), " \
        "or a list of prompts of their own lengths"
NO_MASK = "(a list of prompts of their own lengths needs no attention_mask: graphc pads it " \
          "itself)"


@pytest.fixture(scope="module")
def gen():
    model = GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=12), seed=3)
    return Generator(model, model.params())


@pytest.mark.parametrize("ids, mask, message", [
    (IDS, np.ones((3, 4)), "attention_mask must have input_ids' shape (B, L), got (3, 4) for "
     "input_ids (prompts) of shape (3, 5)"),
    (IDS, torch.ones(3, 1, 5), "attention_mask must have input_ids' shape (B, L), got "
     "(3, 1, 5) for input_ids (prompts) of shape (3, 5)"),
    (IDS, [[1] * 5, [1, 1], [1]], "attention_mask must have input_ids' shape (B, L), got 3 "
     "rows of lengths 5, 2, 1 for input_ids (prompts) of shape (3, 5)"),
    (IDS, 1, "attention_mask must have input_ids' shape (B, L), got 1 (shape ()) for "
     "input_ids (prompts) of shape (3, 5)"),
    (IDS, np.array([[1, 1, 1, 1, 1], [0, 1, 2, 1, 1], [1] * 5]),
     "attention_mask must hold 0 (padding) and 1 (a token) only, got 2 at row 1, column 2"),
    (IDS, np.array([[1.0] * 5, [1.0] * 5, [0.0, 0.0, np.nan, 1.0, 1.0]]),
     "attention_mask must hold 0 (padding) and 1 (a token) only, got nan at row 2, column 2"),
    (IDS, np.array([["1"] * 5] * 3), "attention_mask must hold 0 (padding) and 1 (a token) "
     "only, got '1' (a str) at row 0, column 0"),
    (IDS, np.array([[1, 1, 1, 1, 1], [0, 1, 1, 0, 0], [1] * 5]),
     "attention_mask pads on the right in row 1 (a 1 at column 2 before a 0 at column 3): "
     + RIGHT),
    ([[1, 2, 3], [4, 5]], [[1, 1, 1], [0, 1, 1]], "attention_mask needs prompts as one "
     "left-padded (B, L) input_ids array, got prompts of 2 rows of lengths 3, 2 " + NO_MASK),
    ([1, 2, 3], [1, 1, 1], "attention_mask needs prompts as one left-padded (B, L) input_ids "
     "array, got prompts of shape (3,) " + NO_MASK),
])
@pytest.mark.parametrize("call", ["generate", "stream"])
def test_a_bad_mask_names_attention_mask_and_what_was_given(gen, call, ids, mask, message):
    with pytest.raises(ValueError) as info:
        getattr(gen, call)(ids, 2, attention_mask=mask)
    assert str(info.value) == message


def test_good_masks_of_every_dtype_are_taken(gen):
    ids = np.array([[0, 0, 5, 6], [1, 2, 3, 4]])
    want = gen.generate([[5, 6], [1, 2, 3, 4]], 3, temperature=0)
    for mask in ([[0, 0, 1, 1], [1, 1, 1, 1]], np.array([[0, 0, 1, 1], [1] * 4], bool),
                 torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0] * 4])):
        assert gen.generate(ids, 3, temperature=0, attention_mask=mask) == want


@pytest.mark.parametrize("mask, message", [
    ([[1] * 5, [1, 1, None, 1, 1], [1] * 5], "got None (a NoneType) at row 1, column 2"),
    ([[1] * 5, [0, 0, 1, 1, "1"], [1] * 5], "got '1' (a str) at row 1, column 4"),
    ([[1] * 5, [1, 1, 2, 1, None], [1] * 5], "got 2 (an int) at row 1, column 2"),
])
def test_an_object_mask_names_the_value_that_is_no_0_or_1(gen, mask, message):
    # (r3: a mask holding None or a str among 0s and 1s became an object array, every value of
    # which was taken as the bad one: "got 1 (a int) at row 0, column 0", a good value)
    with pytest.raises(ValueError) as info:
        gen.generate(IDS, 2, attention_mask=mask)
    assert str(info.value) == ("attention_mask must hold 0 (padding) and 1 (a token) only, "
                               + message)
