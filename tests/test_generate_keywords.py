"""An unknown keyword of Generator.generate / stream or Sampler.generate / stream is one
TypeError line naming it, the function called and its keywords, with the close valid names
(difflib) or what transformers' name for it is in graphc (f5, session 55), as transformers'
generate names "model_kwargs not used by the model". Python's line named Sampler.stream()
for a call of Sampler.generate(..., stream=True) and listed nothing."""
import pytest

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler

SETTINGS = ("temperature=, top_k=, top_p=, seed=, stop_tokens=, min_new_tokens=, "
            "repetition_penalty=, no_repeat_ngram_size=, min_p=, do_sample=")
KEYWORDS = {"Sampler": "prompt_ids=, tokens=, " + SETTINGS,
            "Generator": "prompts=, tokens=, " + SETTINGS + ", attention_mask="}


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=16), seed=0)


@pytest.mark.parametrize("which", ["Generator.generate", "Generator.stream",
                                   "Sampler.generate", "Sampler.stream"])
@pytest.mark.parametrize("keywords, hint", [
    ({"temprature": 0.5}, " (did you mean temperature=?)"),
    ({"topk": 3}, " (did you mean top_k= or top_p= or tokens=?)"),
    ({"stream": True}, " ({cls}.stream() gives the tokens one step at a time, as an iterator; "
     "{cls}.generate() all of them at the end)"),
    ({"max_new_tokens": 5}, " (transformers' max_new_tokens is graphc's tokens=)"),
    ({"eos_token_id": 2}, " (transformers' eos_token_id is graphc's stop_tokens=)"),
    ({"num_beams": 4, "zzz": 1}, " (and 'zzz')"),
])
def test_an_unknown_keyword_is_one_line_naming_it_and_the_close_names(model, which, keywords,
                                                                        hint):
    cls, method = which.split(".")
    obj = {"Generator": Generator, "Sampler": Sampler}[cls](model, model.params())
    prompt = [[1, 2]] if cls == "Generator" else [1, 2]
    with pytest.raises(TypeError) as info:
        getattr(obj, method)(prompt, 3, **keywords)
    name = next(iter(keywords))
    assert str(info.value) == (f"{which}() got an unexpected keyword argument {name!r}"
                               f"{hint.format(cls=cls)}; its keywords: {KEYWORDS[cls]}")


def test_attention_mask_to_sampler_says_which_takes_it(model):
    with pytest.raises(TypeError, match=r"^Sampler.generate\(\) got an unexpected keyword "
                       r"argument 'attention_mask' \(Sampler takes one prompt of its own "
                       r"length; Generator.generate takes attention_mask with a left-padded "
                       r"\(B, L\) input_ids\)"):
        Sampler(model, model.params()).generate([1, 2], 3, attention_mask=[1, 1])


def test_known_keywords_still_work_and_signatures_are_kept(model):
    import inspect
    sampler = Sampler(model, model.params())
    want = Generator(model, model.params()).generate([[1, 2]], 4, temperature=0)[0]
    assert sampler.generate(prompt_ids=[1, 2], tokens=4, temperature=0) == want
    assert list(sampler.stream([1, 2], tokens=4, temperature=0, do_sample=None)) == want
    assert "attention_mask" in inspect.signature(Generator.generate).parameters
    assert "do_sample" in inspect.signature(Sampler.stream).parameters
