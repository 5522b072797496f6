"""Generator.generate / stream with an attention_mask (f5, session 55).

min_length counts input_ids' width L, padding included, as transformers'
MinLengthLogitsProcessor counts input_ids.shape[-1]: with a padding column that every row has
(a tokenizer's padding="max_length"), graphc counted the longest row's tokens, 2 fewer here,
and barred the stop token 2 steps longer than transformers' greedy search. A row that is all
padding (all 0s) was "every prompt needs at least one token", naming neither the mask nor the
row (transformers' generate continues it from padding alone, tokens of no prompt): now one
ValueError line naming attention_mask and the row."""
import numpy as np
import pytest

from graphc.generate import Generator
from graphc.models import gpt2

from test_gpt2 import need_transformers, save_random_gpt2

IDS = [[0, 0, 5, 6, 7], [0, 0, 0, 9, 10]]  # 2 padding columns in every row: L 5, longest 3
MASK = [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    need_transformers()
    directory = tmp_path_factory.mktemp("gpt2_mask_rows")
    reference = save_random_gpt2(directory)
    model, params = gpt2.load_gpt2(str(directory))
    return reference, model, params


def _transformers(reference, eos, **settings):
    """transformers' greedy rows for IDS under MASK, each up to and including its eos."""
    import torch
    with torch.no_grad():
        out = reference.generate(torch.tensor(IDS), attention_mask=torch.tensor(MASK),
                                 max_new_tokens=5, do_sample=False, pad_token_id=299,
                                 eos_token_id=eos, **settings)[:, 5:].tolist()
    return [next((row[:i + 1] for i, t in enumerate(row) if t == eos), row) for row in out]


def test_min_length_counts_the_padded_width_as_transformers(hf):
    reference, model, params = hf
    gen = Generator(model, params)  # (its plans are the model's, whatever its min_length)
    free = gen.generate(IDS, 5, temperature=0, attention_mask=MASK, stop_tokens=())
    assert free == _transformers(reference, eos=299)  # (299: never chosen here)
    try:
        for eos in (free[1][0], free[0][0]):
            for min_length in (5, 6, 7):
                model.min_length = min_length
                got = gen.generate(IDS, 5, temperature=0, attention_mask=MASK,
                                   stop_tokens=eos)
                assert got == _transformers(reference, eos, min_length=min_length), \
                    (eos, min_length)
        # min_length 5 = L bars nothing: row 1 ends at its first token, as transformers'
        model.min_length = 5
        got = gen.generate(IDS, 5, temperature=0, attention_mask=MASK, stop_tokens=free[1][0])
        assert got[1] == [free[1][0]]
    finally:
        model.min_length = 0
    # without a mask the ragged rows' longest is the width: min_length 5 bars 2 steps there
    model.min_length = 5
    try:
        got = gen.generate([[5, 6, 7], [9, 10]], 5, temperature=0, stop_tokens=free[1][0])
        assert got[1][:2] != [free[1][0]] and got[1][0] != free[1][0]
    finally:
        model.min_length = 0


@pytest.mark.parametrize("call", ["generate", "stream"])
@pytest.mark.parametrize("tokens", [3, 0])
def test_a_row_of_padding_only_is_one_line_naming_the_row(hf, call, tokens):
    _, model, params = hf
    ids = np.array([[5, 6, 7], [0, 0, 0], [0, 9, 10]])
    mask = np.array([[1, 1, 1], [0, 0, 0], [0, 1, 1]])
    gen = Generator(model, params)
    with pytest.raises(ValueError) as info:
        getattr(gen, call)(ids, tokens, temperature=0, attention_mask=mask,
                           min_new_tokens=2)
    assert str(info.value) == ("attention_mask row 1 is all 0s (padding only): every row "
                               "needs at least one token (a 1)")
    # the other rows alone run, as before
    assert gen.generate(ids[[0, 2]], 2, temperature=0, attention_mask=mask[[0, 2]]) == \
        gen.generate([[5, 6, 7], [9, 10]], 2, temperature=0)
