"""top_k=0 is no top-k, as transformers' top_k=0 (its TopKLogitsWarper is left out; g2's
finding 4): the same draws as top_k=None, in Generator, Sampler and `graphc sample --top-k
0`; a negative top_k is still one error line."""
import numpy as np
import pytest
import torch

from graphc.cli import build_parser, main
from graphc.generate import Generator, check_sampling, sampling_probs
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler


def test_top_k_0_samples_from_every_token():
    model = GPT(GPTConfig(vocab_size=13, n_layer=1, n_head=2, n_embd=8, block_size=16), seed=0)
    params = model.params()
    gen = Generator(model, params)
    want = gen.generate([[1, 2], [3]], 12, temperature=1.5, top_k=None, seed=4)
    assert gen.generate([[1, 2], [3]], 12, temperature=1.5, top_k=0, seed=4) == want
    assert gen.generate([[1, 2], [3]], 12, temperature=1.5, top_k=np.int64(0), seed=4) == want
    one = Sampler(model, params)
    assert one.generate([1, 2], 12, temperature=1.5, top_k=0, seed=4) == \
        one.generate([1, 2], 12, temperature=1.5, top_k=None, seed=4)
    assert check_sampling(1.0, 0, None) == (1.0, None, None, None)
    assert check_sampling(1.0, torch.tensor(0), None)[1] is None


def test_top_k_0_probabilities_are_transformers():
    logits = np.random.default_rng(0).normal(size=20)
    # transformers' generate builds no TopKLogitsWarper for top_k=0: the softmax of its
    # TemperatureLogitsWarper's scores / temperature (transformers not imported: seconds)
    scores = torch.tensor(logits[None]) / 0.7
    top_k = check_sampling(0.7, 0, None)[1]
    np.testing.assert_allclose(sampling_probs(logits, 0.7, top_k=top_k),
                               torch.softmax(scores, -1)[0].numpy(), rtol=1e-12)


def test_negative_top_k_is_refused(capsys):
    with pytest.raises(ValueError) as info:
        check_sampling(1.0, -1, None)
    assert str(info.value) == "top_k must be a whole number >= 0 (0 or None: all), got -1"
    assert build_parser().parse_args(["sample", "--checkpoint", "run", "--top-k",
                                      "0"]).top_k == 0
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--checkpoint", "run", "--top-k", "-1"])
    assert exit_.value.code == 2
    assert "--top-k: expected a number >= 0, got -1" in capsys.readouterr().err
