"""Text where token ids go (f5, session 55): Generator.generate("hello") was "token id 'h' is
not a whole number" (its characters taken as ids), a list of strings the same, and bytes were
taken as ids without a word (Sampler.generate(b"hi", ...) sampled from ids 104 and 105). Each
is now one ValueError line naming the argument (and the row and position) and how to get the
ids: the model's tokenizer, graphc.models.gpt2.load_tokenizer(directory).encode, or the
CharData a graphc checkpoint trained on."""
import numpy as np
import pytest

from graphc import data
from graphc.generate import Generator
from graphc.models import gpt2
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler

ROWS = ("encode the text first with the model's tokenizer: [tok.encode(text) for text in "
        "texts], with tok = graphc.models.gpt2.load_tokenizer(directory) for a GPT-2 directory, "
        "or the CharData (graphc.data) a graphc checkpoint trained on")
ONE = ROWS.replace("[tok.encode(text) for text in texts]", "tok.encode(text)")
# (r3: one text as Generator's prompts is encoded as one row, [tok.encode(text)]: "for text in
# texts" named a list of texts the caller has not)
WHOLE = ROWS.replace("[tok.encode(text) for text in texts]",
                     "[tok.encode(text)] (a list of prompts)")


@pytest.fixture(scope="module")
def model():
    # a vocabulary past 105: b"hi"'s 104 and 105 were ids it took
    return GPT(GPTConfig(vocab_size=120, n_layer=1, n_head=2, n_embd=8, block_size=16), seed=0)


@pytest.mark.parametrize("prompts, where", [
    ("hello", "prompts is text ('hello')"),
    (["hello", "world"], "prompts[0] is text ('hello')"),
    ([[1, 2], "world"], "prompts[1] is text ('world')"),
    ([[1, 2], [3, "4"]], "prompts[1][1] is text ('4')"),
    (np.array(["hi", "yo"]), "prompts[0] is text ('hi')"),
    (b"hi", "prompts is bytes (b'hi')"),
    ([b"hi"], "prompts[0] is bytes (b'hi')"),
])
@pytest.mark.parametrize("call", ["generate", "stream"])
@pytest.mark.parametrize("tokens", [3, 0])
def test_text_as_prompts_is_one_line_saying_how_to_get_ids(model, prompts, where, call,
                                                            tokens):
    gen = Generator(model, model.params())
    with pytest.raises(ValueError) as info:
        getattr(gen, call)(prompts, tokens)
    hint = WHOLE if where.startswith("prompts is") else ROWS
    assert str(info.value) == f"{where}, not token ids: {hint}"


def test_text_with_an_attention_mask_is_the_same_line(model):
    gen = Generator(model, model.params())
    with pytest.raises(ValueError) as info:
        gen.generate(["hello", "world"], 3, attention_mask=[[1] * 5, [1] * 5])
    assert str(info.value) == f"prompts[0] is text ('hello'), not token ids: {ROWS}"
    with pytest.raises(ValueError) as info:
        gen.generate([["a", "b"]], 3, attention_mask=[[1, 1]])
    assert str(info.value) == f"prompts[0][0] is text ('a'), not token ids: {ROWS}"


@pytest.mark.parametrize("prompt, where", [
    ("hello", "prompt_ids is text ('hello')"),
    (["hello"], "prompt_ids[0] is text ('hello')"),
    ([5, 6, "7"], "prompt_ids[2] is text ('7')"),
    (b"hi", "prompt_ids is bytes (b'hi')"),
    (bytearray(b"hi"), "prompt_ids is bytes (bytearray(b'hi'))"),
])
@pytest.mark.parametrize("call", ["generate", "stream"])
def test_text_as_samplers_prompt_is_one_line(model, prompt, where, call):
    with pytest.raises(ValueError) as info:
        getattr(Sampler(model, model.params()), call)(prompt, 3)
    assert str(info.value) == f"{where}, not token ids: {ONE}"


def test_the_named_ways_to_get_ids_exist_and_ids_are_taken(model):
    assert callable(gpt2.load_tokenizer) and callable(gpt2.Tokenizer.encode)
    chars = data.CharData(list("helo"), np.zeros(0, np.int64), np.zeros(0, np.int64))
    ids = chars.encode("hello")
    assert ids.tolist() == [0, 1, 2, 2, 3]
    want = Generator(model, model.params()).generate([ids.tolist()], 3, temperature=0)[0]
    assert Sampler(model, model.params()).generate(ids, 3, temperature=0) == want
    assert Sampler(model, model.params()).generate(list(b"hi"), 2, temperature=0) == \
        Generator(model, model.params()).generate([[104, 105]], 2, temperature=0)[0]


@pytest.mark.parametrize("prompt, where", [
    ([["hello"]], "prompt_ids[0][0] is text ('hello')"),
    ([5, ["a", "b"]], "prompt_ids[1][0] is text ('a')"),
    ([np.array(["hi"])], "prompt_ids[0][0] is text ('hi')"),
])
@pytest.mark.parametrize("call", ["generate", "stream"])
def test_text_in_a_row_of_rows_given_to_sampler_is_one_line(model, prompt, where, call):
    # (r3: a batch of one text prompt, [["hello"]], was "token id ['hello'] is not a whole
    # number"; a row of ids there, [[1, 2]], stays the Generator's line)
    sampler = Sampler(model, model.params())
    with pytest.raises(ValueError) as info:
        getattr(sampler, call)(prompt, 3)
    assert str(info.value) == f"{where}, not token ids: {ONE}"
    with pytest.raises(ValueError, match=r"^token id \[1, 2\] is not a whole number$"):
        getattr(sampler, call)([[1, 2]], 3)
