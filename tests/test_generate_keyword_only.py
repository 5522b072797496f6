"""The settings after `tokens` are keyword-only in Generator.generate / stream and
Sampler.generate / stream (g2's finding 7): Sampler took (temperature, top_k, seed, top_p)
and Generator (temperature, top_k, top_p, seed) by position, so `(ids, 50, 0.8, 40, 1)` meant
seed 1 to one and top_p 1 to the other. A positional setting is one TypeError naming the
keywords; keywords give the same tokens in both."""
import pytest

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=16), seed=0)


@pytest.mark.parametrize("which", ["Generator.generate", "Generator.stream",
                                   "Sampler.generate", "Sampler.stream"])
def test_a_positional_setting_is_one_type_error_naming_the_keywords(model, which):
    cls, method = which.split(".")
    obj = {"Generator": Generator, "Sampler": Sampler}[cls](model, model.params())
    prompt = [[1, 2]] if cls == "Generator" else [1, 2]
    for extra, count in (((0.8,), "1 more positional argument"),
                         ((0.8, 4, 1), "3 more positional arguments")):
        with pytest.raises(TypeError) as info:
            getattr(obj, method)(prompt, 5, *extra)
        assert str(info.value) == (
            f"{which}() takes the prompt(s) and tokens by position, its settings by keyword "
            "only: temperature=, top_k=, top_p=, seed=, stop_tokens=, min_new_tokens= ... "
            f"(got {count})")


def test_keywords_mean_the_same_in_both(model):
    settings = dict(temperature=0.8, top_k=4, top_p=0.9, seed=1, stop_tokens=())
    want = Generator(model, model.params()).generate([[1, 2]], 8, **settings)[0]
    assert Sampler(model, model.params()).generate([1, 2], 8, **settings) == want
    assert list(Sampler(model, model.params()).stream([1, 2], tokens=8, **settings)) == want
