"""Session 34's fixes of GPT-2 loading and generation (graphc/models/gpt2.py,
graphc/generate.py, `graphc sample`); each test failed before its fix."""
import json
import warnings

import numpy as np
import pytest
import safetensors.numpy as safetensors_numpy

from graphc.models import gpt2
from ir.errors import GraphcError

from test_gpt2 import SMALL, graphc_logits, need_transformers, save_random_gpt2


def rewrite_weights(directory, change):
    """model.safetensors rewritten with change(tensors by name) applied."""
    path = directory / gpt2.WEIGHTS_FILE
    tensors = safetensors_numpy.load_file(str(path))
    change(tensors)
    safetensors_numpy.save_file(tensors, str(path), metadata={"format": "pt"})


def transformers_logits(directory, idx):
    import torch
    from transformers import GPT2LMHeadModel
    reference = GPT2LMHeadModel.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        return reference, reference(torch.tensor(idx)).logits.numpy()


IDX = np.random.default_rng(1).integers(0, SMALL["vocab_size"], (2, SMALL["n_positions"]))


# ---- 1. a tied config over a file whose lm_head.weight is not wte's copy ---------------------
def test_a_tied_config_with_a_different_head_in_the_file_loads_untied_as_transformers(tmp_path):
    """config.json ties the head (tie_word_embeddings true) but model.safetensors holds an
    lm_head.weight that differs from wte: graphc dropped it as "a tied copy" and computed
    logits with wte (13.9 off transformers'); now it loads untied, with a warning, and its
    logits are transformers' (which keeps the file's head); a copy of wte there is
    still dropped."""
    need_transformers()
    save_random_gpt2(tmp_path)
    head = np.random.default_rng(0).normal(0, 1, (SMALL["vocab_size"], SMALL["n_embd"]))
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": head.astype(np.float32)}))
    reference, want = transformers_logits(tmp_path, IDX)
    assert reference.lm_head.weight.data_ptr() != reference.transformer.wte.weight.data_ptr()
    with pytest.warns(UserWarning, match="'lm_head.weight' differs from it: loaded untied"):
        model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is False
    np.testing.assert_array_equal(params["lm_head.weight"], head.astype(np.float32).T)
    np.testing.assert_allclose(graphc_logits(model, params, IDX), want, rtol=0, atol=1e-4)
    # the file's head a copy of wte (as torch .bin conversions write it): tied, no warning
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is True and "lm_head.weight" not in params


def test_a_tied_config_with_a_wrongly_shaped_head_is_refused(tmp_path):
    """A head of the wrong shape under a tied config was dropped unread; now it is one error
    line naming the file, the tensor and the shape config.json implies."""
    need_transformers()
    save_random_gpt2(tmp_path)
    V, C = SMALL["vocab_size"], SMALL["n_embd"]
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": np.ones((V - 1, C),
                                                                           np.float32)}))
    with pytest.raises(GraphcError) as caught:
        gpt2.load_gpt2(str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith(f"{gpt2.WEIGHTS_FILE}: tensor 'lm_head.weight' has shape "
                            f"[{V - 1}, {C}], config.json implies [{V}, {C}]"), message


# ---- 2. a tied checkpoint that stores the shared matrix as lm_head.weight only ---------------
def test_a_tied_checkpoint_holding_only_lm_head_loads_it_as_wte(tmp_path):
    """safetensors.torch.save_model writes GPT-2's shared matrix once, as lm_head.weight:
    graphc refused it ("missing tensor 'wte.weight' (config.json declares 2 layers)"); now it
    loads it as wte, tied, and its logits are transformers'. A missing tensor outside the
    layers no longer speaks of the layers config.json declares."""
    need_transformers()
    from safetensors import safe_open
    from safetensors.torch import save_model
    reference = save_random_gpt2(tmp_path)
    save_model(reference, str(tmp_path / gpt2.WEIGHTS_FILE))
    with safe_open(str(tmp_path / gpt2.WEIGHTS_FILE), "np") as f:
        assert "lm_head.weight" in f.keys() and "transformer.wte.weight" not in f.keys()
    model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is True and "lm_head.weight" not in params
    np.testing.assert_array_equal(params["wte.weight"],
                                  reference.transformer.wte.weight.detach().numpy())
    _, want = transformers_logits(tmp_path, IDX)
    np.testing.assert_allclose(graphc_logits(model, params, IDX), want, rtol=0, atol=1e-4)

    rewrite_weights(tmp_path, lambda t: t.pop("transformer.ln_f.weight"))
    with pytest.raises(GraphcError) as caught:
        gpt2.load_gpt2(str(tmp_path))
    assert str(caught.value).endswith(
        f"{gpt2.WEIGHTS_FILE}: missing tensor 'transformer.ln_f.weight'"), str(caught.value)


# ---- 3. generation ends each row at the checkpoint's eos_token_id ----------------------------
def first_new(row, others):
    """Tokens of `row` first seen after its start and before its end, in none of `others`:
    each would end this row mid-way and no other."""
    return [t for k, t in enumerate(row) if 0 < k < len(row) - 1 and t not in row[:k]
            and all(t not in other for other in others)]


def set_eos(directory, file, value):
    path = directory / file
    raw = json.loads(path.read_text())
    raw["eos_token_id"] = value
    path.write_text(json.dumps(raw))


def test_generation_ends_each_row_at_eos_as_transformers_generate(tmp_path):
    """Generation ignored eos_token_id, where transformers' generate ends a row at it (the
    eos kept, the other rows going on): now a GPT-2 checkpoint's Generator ends each row at
    generation_config.json's eos_token_id (else config.json's; an id or a list), token for
    token transformers' greedy search on a left-padded batch; stream() gives None for an
    ended row and stops when all have ended; stop_tokens=() turns it off."""
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    from graphc.generate import Generator
    from graphc.models.gpt import GPT, GPTConfig
    save_random_gpt2(tmp_path)
    rng = np.random.default_rng(5)
    prompts = [rng.integers(1, SMALL["vocab_size"], n).tolist() for n in (2, 5, 3)]
    model, params = gpt2.load_gpt2(str(tmp_path))
    free = Generator(model, params).generate(prompts, 10, temperature=0, stop_tokens=())
    eos = [first_new(free[0], free[1:])[0], first_new(free[2], free[:2])[-1]]
    set_eos(tmp_path, gpt2.GENERATION_CONFIG_FILE, eos)
    set_eos(tmp_path, gpt2.CONFIG_FILE, free[1][0])  # (generation_config.json's comes first)
    model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.eos_token_ids == tuple(eos)
    got = Generator(model, params).generate(prompts, 10, temperature=0)

    L = max(map(len, prompts))
    ids = torch.tensor([[0] * (L - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in prompts])
    reference = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        out = reference.generate(ids, attention_mask=mask, max_new_tokens=10,
                                 do_sample=False, pad_token_id=0)[:, L:].tolist()
    want = [row[:next((k + 1 for k, t in enumerate(row) if t in eos), len(row))]
            for row in out]
    assert got == want
    assert [len(row) for row in got] == [free[0].index(eos[0]) + 1, 10,
                                         free[2].index(eos[1]) + 1]
    assert len({len(row) for row in got}) == 3 and got[0][-1] == eos[0]

    steps = list(Generator(model, params).stream([prompts[0], prompts[2]], 10,
                                                 temperature=0))
    assert len(steps) == max(len(got[0]), len(got[2])) < 10
    assert [[t for t in row if t is not None] for row in zip(*steps)] == [got[0], got[2]]
    assert steps[-1][0 if len(got[0]) < len(got[2]) else 1] is None
    assert Generator(model, params).generate(prompts, 10, temperature=0,
                                             stop_tokens=()) == free
    assert Generator(model, params).generate(prompts, 10, temperature=0,
                                             stop_tokens=eos[1]) == [free[0], free[1], got[2]]
    with pytest.raises(ValueError, match=r"^stop_tokens: token id 300 is outside"):
        Generator(model, params).generate(prompts, 10, stop_tokens=[300])
    # graphc's own GPT has no end-of-text token
    assert GPT(GPTConfig.named("tiny", vocab_size=50)).eos_token_ids == ()

    set_eos(tmp_path, gpt2.GENERATION_CONFIG_FILE, "2")
    with pytest.raises(GraphcError, match=r"generation_config.json: key 'eos_token_id' has a "
                                          r"bad value '2'"):
        gpt2.load_gpt2(str(tmp_path))


def test_sample_stops_at_eos_unless_told_to_ignore_it(tmp_path, capsys):
    """`graphc sample --model` printed past the end-of-text token; now it stops after it,
    as transformers' generate does, and --ignore-eos goes on."""
    need_transformers()
    from graphc.cli import main
    from graphc.generate import Generator
    from test_gpt2 import train_tokenizer
    save_random_gpt2(tmp_path)
    train_tokenizer(tmp_path / gpt2.TOKENIZER_FILE)
    tok = gpt2.load_tokenizer(str(tmp_path))
    model, params = gpt2.load_gpt2(str(tmp_path))
    prompt = "ROMEO:"
    free = Generator(model, params).generate([tok.encode(prompt)], 10, temperature=0,
                                             stop_tokens=())[0]
    eos = first_new(free, [])[0]
    set_eos(tmp_path, gpt2.GENERATION_CONFIG_FILE, eos)
    args = ["sample", "--model", str(tmp_path), "--prompt", prompt, "--tokens", "10",
            "--temperature", "0"]
    assert main(args) == 0
    assert capsys.readouterr().out == prompt + tok.decode(free[:free.index(eos) + 1]) + "\n"
    assert main(args + ["--ignore-eos"]) == 0
    assert capsys.readouterr().out == prompt + tok.decode(free) + "\n"
    # --min-new-tokens N: no end-of-text among the first N new tokens (transformers'
    # min_new_tokens), so with N past the eos's place the greedy text goes another way
    n = str(free.index(eos) + 1)
    masked = Generator(model, params).generate([tok.encode(prompt)], 10, temperature=0,
                                               stop_tokens=eos, min_new_tokens=int(n))[0]
    assert masked[:int(n)] != free[:int(n)] and main(args + ["--min-new-tokens", n]) == 0
    assert capsys.readouterr().out == prompt + tok.decode(masked) + "\n"
    with pytest.raises(SystemExit) as info:
        main(args + ["--min-new-tokens", "-1"])
    assert info.value.code == 2
    assert "--min-new-tokens: expected a number >= 0, got -1" in capsys.readouterr().err


# ---- 4. generate/stream check their settings' types and the prompts up front -----------------
def tiny_generator():
    from graphc.generate import Generator
    from graphc.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig.named("tiny", vocab_size=50))
    return Generator(model, model.params())


@pytest.mark.parametrize("settings, message", [
    (dict(tokens=2.5), "tokens must be a whole number, got 2.5"),
    (dict(tokens="3"), "tokens must be a whole number, got '3'"),
    (dict(tokens=True), "tokens must be a whole number, got True"),
    (dict(tokens=3, temperature=None), "temperature must be a finite number >= 0, got None"),
    (dict(tokens=3, temperature="0.8"), "temperature must be a finite number >= 0, got '0.8'"),
    (dict(tokens=3, temperature=True), "temperature must be a finite number >= 0, got True"),
    (dict(tokens=3, top_p="0.9"), r"top_p must be in \(0, 1\], got '0.9'"),
    (dict(tokens=3, top_p=True), r"top_p must be in \(0, 1\], got True"),
])
@pytest.mark.parametrize("call", ["generate", "stream"])
def test_settings_of_the_wrong_type_are_one_line_before_the_prompt_runs(call, settings,
                                                                         message):
    """tokens 2.5 was a TypeError from range() after the prompt had run, "3", temperature
    None and top_p "0.9" raw TypeErrors from numpy or a comparison, and True passed as 1:
    now each is a one-line ValueError like top_k's, raised before any prompt runs."""
    gen = tiny_generator()
    gen.start = lambda prompts: pytest.fail("the prompt ran")
    with pytest.raises(ValueError, match=f"^{message}$"):
        getattr(gen, call)([[1, 2]], **settings)


def test_prompts_are_checked_when_no_token_is_asked_for():
    """tokens=0 returned [[]] for a prompt outside the vocabulary (tokens=1 refused it): now
    the prompts are checked whatever the count, and a valid one still gives no tokens. A
    negative count is refused (it gave no tokens too), as transformers' max_new_tokens and
    graphc sample --tokens refuse it."""
    gen = tiny_generator()
    with pytest.raises(ValueError, match=r"^token id 5000 is outside the vocabulary "
                                         r"\(0 to 49\)$"):
        gen.generate([[1], [5000]], 0)
    with pytest.raises(ValueError, match="^every prompt needs at least one token$"):
        gen.stream([[1], []], 0)
    assert gen.generate([[1], [2, 3]], 0) == [[], []]
    for call in (gen.generate, gen.stream):
        with pytest.raises(ValueError, match=r"^tokens must be >= 0 \(0: none\), got -2$"):
            call([[1], [2, 3]], -2)


# ---- 5. top_p keeps the set transformers' TopPLogitsWarper keeps -----------------------------
class CapturingRng:
    """An rng whose choice records the probabilities choose() samples from."""

    def choice(self, n, p):
        self.p = p
        return 0


def kept_by_graphc(logits, top_p, temperature=1.0, top_k=None):
    rng = CapturingRng()
    from graphc.generate import choose
    choose(logits, temperature, top_k, top_p, rng)
    return rng.p > 0


def kept_by_transformers(logits, top_p, temperature=1.0, top_k=None):
    import torch
    from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    scores = TemperatureLogitsWarper(temperature)(None, torch.tensor(logits)[None])
    if top_k is not None:
        scores = TopKLogitsWarper(top_k)(None, scores)
    return torch.isfinite(TopPLogitsWarper(top_p)(None, scores))[0].numpy()


def test_top_p_keeps_the_tokens_transformers_keeps_on_ties_and_at_boundaries():
    """Summing from the most likely down, np.searchsorted over a cumulative sum rounded
    below top_p kept one token too many: 12 equal tokens at top_p 0.5 kept 7 (6 hold
    0.49999999999999994). Now the cut is transformers' (least likely first, drop while the
    sum is <= 1 - top_p), so the kept sets equal TopPLogitsWarper's on that case, on random
    logits, on exact ties (float16-rounded logits) and after temperature and top_k. (Past 16
    tokens torch's sort orders ties arbitrarily, so which of the tied tokens at the cut
    transformers keeps is arbitrary too: there the kept logits agree, not their places.)"""
    need_transformers()
    assert kept_by_graphc(np.zeros(12), 0.5).sum() == 6
    rng = np.random.default_rng(0)
    cases = [(np.zeros(12), k / 12) for k in range(1, 12)]
    cases += [(np.zeros(10), k / 10) for k in range(1, 10)]
    cases += [(rng.normal(0, 2, 64), p) for p in rng.uniform(0.05, 0.99, 40)]
    # ties: a few distinct float16 values, many tokens holding each
    tied = np.float16(0.1) * rng.integers(-4, 4, (80, 16)).astype(np.float16)
    cases += [(row.astype(np.float64), p) for row, p in zip(tied, rng.uniform(0.05, 0.99, 80))]
    cases += [(np.log(np.array([1, 1, 2, 2, 2, 4], np.float16)).astype(np.float64), p)
              for p in (0.25, 0.5, 0.75, 0.875, 0.9)]
    differing = [(logits, p) for logits, p in cases
                 if not np.array_equal(kept_by_graphc(logits, p), kept_by_transformers(logits, p))]
    assert not differing, differing[:3]
    for temperature, top_k in ((0.7, None), (1.3, 10), (1.0, 5)):
        for logits, p in cases[::5]:
            if top_k is None or top_k < logits.size:
                np.testing.assert_array_equal(
                    kept_by_graphc(logits, p, temperature, top_k),
                    kept_by_transformers(logits, p, temperature, top_k))
    wide = np.float16(0.1) * rng.integers(-4, 4, (40, 30)).astype(np.float16)
    for row, p in zip(wide.astype(np.float64), rng.uniform(0.05, 0.99, 40)):
        assert sorted(row[kept_by_graphc(row, p)]) == sorted(row[kept_by_transformers(row, p)])
