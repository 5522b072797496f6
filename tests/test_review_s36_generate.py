"""Session 36's fixes of generation and GPT-2 loading; each test failed before its fix."""
import json
import re

import numpy as np
import pytest

from graphc import cli
from graphc.cli import main
from graphc.generate import Generator
from graphc.models import gpt2
from ir.errors import GraphcError

from test_generate import NoCache, small_model
from test_gpt2 import SMALL, need_transformers, save_random_gpt2, train_tokenizer


def _error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: ") and err.count("\n") == 1, err
    return err[len("graphc: error: "):-1]


def rewrite_generation_config(directory, **settings):
    """generation_config.json (as save_pretrained wrote it) with `settings` changed; a value
    of ... removes the key."""
    path = directory / gpt2.GENERATION_CONFIG_FILE
    config = json.loads(path.read_text())
    for key, value in settings.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


# ---- 1. an empty prompt starts from generation_config.json's bos_token_id -------------------
def test_an_empty_prompt_starts_from_generation_configs_bos_as_transformers(tmp_path, capsys):
    """With generation_config.json's bos_token_id 100 and config.json's 0, graphc started an
    empty prompt from config.json's 0 while transformers' generate (no input_ids) starts
    from 100; now graphc reads it as transformers does (and as eos_token_ids reads eos):
    generation_config.json's when the directory has that file, else config.json's, and the
    greedy tokens are transformers'. A generation_config.json without one is refused in one
    line naming that file, as transformers refuses it, though config.json has one."""
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    save_random_gpt2(tmp_path)  # config.json: bos_token_id 0
    rewrite_generation_config(tmp_path, bos_token_id=100, eos_token_id=None)
    reference = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        want = reference.generate(max_new_tokens=5, do_sample=False, pad_token_id=0)[0]
    assert want[0] == 100
    train_tokenizer(tmp_path / gpt2.TOKENIZER_FILE)
    sample = ["sample", "--model", str(tmp_path), "--tokens", "5", "--temperature", "0"]
    capsys.readouterr()
    assert main(sample) == 0
    tokenizer = gpt2.load_tokenizer(str(tmp_path))
    assert capsys.readouterr().out == tokenizer.decode(want[1:].tolist()) + "\n"
    model, params = gpt2.load_gpt2(str(tmp_path))
    start = gpt2.start_token(str(tmp_path), model.cfg.vocab_size)
    assert start == 100
    got = Generator(model, params).generate([[start]], 5, temperature=0)[0]
    assert got == want[1:].tolist()

    rewrite_generation_config(tmp_path, bos_token_id=...)
    reference = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    with pytest.raises(ValueError, match="bos_token_id"):  # transformers refuses it too
        reference.generate(max_new_tokens=1, do_sample=False, pad_token_id=0)
    message = (f"{tmp_path / gpt2.GENERATION_CONFIG_FILE}: no usable bos_token_id to start an "
               f"empty prompt from (got None; the vocabulary is 0 to {SMALL['vocab_size'] - 1})")
    with pytest.raises(GraphcError) as info:
        gpt2.start_token(str(tmp_path), model.cfg.vocab_size)
    assert str(info.value) == message
    capsys.readouterr()
    assert main(sample) == 2
    assert _error(capsys) == message + "; pass a non-empty --prompt"

    (tmp_path / gpt2.GENERATION_CONFIG_FILE).unlink()  # no file: config.json's
    assert gpt2.start_token(str(tmp_path), model.cfg.vocab_size) == 0


# ---- 2. a stream refuses to go on after another advance() on its Generator ------------------
def test_a_stream_refuses_to_go_on_after_another_advance_on_its_generator():
    """Only start() counted as another use of a stream's Generator: an advance([5]) from
    another caller between two of a stream's tokens fed 5 into the shared context, and the
    stream went on from it, silently giving other tokens than the same stream alone. Now
    advance() counts too, and the stream refuses in the line it gives after a start(); the
    stream's own advances do not count, so a stream alone still gives NoCache's tokens."""
    model, params = small_model("float64")
    expected = NoCache(model, params).greedy([1, 2, 3], 6)
    gen = Generator(model, params)
    assert [step[0] for step in gen.stream([[1, 2, 3]], 6, temperature=0)] == expected
    stream = gen.stream([[1, 2, 3]], 6, temperature=0)
    assert next(stream) == [expected[0]]
    gen.advance([5])
    with pytest.raises(ValueError, match=r"^this stream's Generator has started other prompts "
                       r"since \(or advanced them outside this stream; one stream at a time "
                       r"per Generator\)$"):
        next(stream)


# ---- 3. the tokenizer refuses non-integer ids -----------------------------------------------
def test_the_tokenizer_refuses_ids_that_are_not_whole_numbers(tmp_path):
    """Tokenizer.decode and decode_stream took int() of each id, so 1.7 decoded as token 1
    and 65.9 as 65, silently; now each refuses it in one line, as the Generator refuses such
    a token (numpy integers still decode)."""
    train_tokenizer(tmp_path / gpt2.TOKENIZER_FILE)
    tokenizer = gpt2.load_tokenizer(str(tmp_path))
    assert tokenizer.decode(np.array([65, 66])) == tokenizer.decode([65, 66]) != ""
    with pytest.raises(ValueError, match=r"^token id 1\.7 is not a whole number$"):
        tokenizer.decode([1.7])
    with pytest.raises(ValueError, match=r"^token id 65\.9 is not a whole number$"):
        list(tokenizer.decode_stream([65.9]))


# ---- 4. GPTConfig.validate checks the types -------------------------------------------------
@pytest.mark.parametrize("setting, message", [
    (dict(vocab_size="65"), "vocab_size must be a whole number, got '65'"),
    (dict(n_layer=2.5), "n_layer must be a whole number, got 2.5"),
    (dict(n_head=True), "n_head must be a whole number, got True"),
    (dict(bias="no"), "bias must be True or False, got 'no'"),
    (dict(tie_weights=1), "tie_weights must be True or False, got 1"),
    (dict(dropout="0.1"), "dropout must be in [0, 1), got '0.1'"),
])
def test_gpt_config_refuses_settings_of_the_wrong_type_in_one_line(setting, message):
    """GPTConfig.validate compared the sizes with 0 untyped: vocab_size="65" and n_layer=2.5
    were raw TypeErrors (one from deep in GPT's constructor), n_head=True a size of 1;
    bias="no" and tie_weights=1 were taken as True. Each is now one ValueError line naming
    the setting, as the other checks give."""
    from graphc.models.gpt import GPT, GPTConfig
    with pytest.raises(ValueError) as info:
        GPT(GPTConfig(**{**dict(vocab_size=7, n_layer=1, n_head=2, n_embd=8, block_size=4),
                         **setting}))
    assert str(info.value) == message


def test_gpt_config_takes_numpys_float32_layer_norm_eps():
    """layer_norm_eps=np.float32(1e-5) was refused as "must be a number in (0, 1), got
    np.float32(1e-05)", a number in (0, 1); any real number (numbers.Real, not a bool) is
    now taken, and the model's logits are those of the Python float's to float32 rounding."""
    import graphc as gc
    from graphc.models.gpt import GPT, GPTConfig
    sizes = dict(vocab_size=7, n_layer=1, n_head=2, n_embd=8, block_size=4)
    idx = gc.tensor(np.array([[1, 2, 3]]))
    want = GPT(GPTConfig(**sizes, layer_norm_eps=1e-5))(idx).numpy()
    got = GPT(GPTConfig(**sizes, layer_norm_eps=np.float32(1e-5)))(idx).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# ---- 5. GPT.forward refuses an idx that is not (batch, length) ------------------------------
def test_gpt_refuses_an_idx_that_is_not_batch_by_length_eagerly_and_compiled():
    """A 1-D idx (one sequence without its batch axis, as a torch user may pass it) was an
    IndexError ("tuple index out of range") at idx.shape[1] in GPT.forward; now it is one
    ValueError line naming the shape, eagerly and when traced by gc.compile; a (1, 3) idx
    still gives (1, 3, vocab) logits."""
    import graphc as gc
    from graphc.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=7, n_layer=1, n_head=2, n_embd=8, block_size=4))
    message = r"^idx must be \(batch, length\) token ids, got shape \(3,\)$"
    with pytest.raises(ValueError, match=message):
        model(gc.tensor(np.array([1, 2, 3])))
    compiled = gc.compile(model)
    with pytest.raises(ValueError, match=message):
        compiled(np.array([1, 2, 3]))
    np.testing.assert_allclose(np.asarray(compiled(np.array([[1, 2, 3]]))),
                               model(gc.tensor(np.array([[1, 2, 3]]))).numpy(),
                               rtol=0, atol=1e-5)
    assert np.asarray(compiled(np.array([[1, 2, 3]]))).shape == (1, 3, 7)


# ---- 6. the Generator checks seed, and refuses a bool top_k ---------------------------------
def test_generation_refuses_a_bad_seed_or_a_bool_top_k_in_one_line():
    """seed was not checked: -1 and 1.5 failed in numpy ("expected non-negative integer",
    "SeedSequence expects int or sequence of ints"), naming no seed, and True seeded as 1;
    top_k=True was taken as 1 while top_p=True was refused. Each is now refused before the
    prompt runs, in one line naming the setting, by the Generator and by graphc.sample's
    Sampler; a numpy integer seed is still the same int's, and None still fresh entropy."""
    from graphc.sample import Sampler
    model, params = small_model("float64")
    gen, sampler = Generator(model, params), Sampler(model, params)
    SEED = ("seed must be a whole number >= 0, None, or a numpy Generator, SeedSequence or "
            "sequence of such numbers, got ")
    for setting, message in [
            (dict(seed=-1), f"{SEED}-1"),
            (dict(seed=1.5), f"{SEED}1.5"),
            (dict(seed=True), f"{SEED}True"),
            (dict(top_k=True), "top_k must be a whole number, got True")]:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            gen.generate([[1, 2]], 2, **setting)
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            sampler.generate([1, 2], 2, **setting)
    assert gen.generate([[1, 2]], 4, seed=np.int64(3)) == gen.generate([[1, 2]], 4, seed=3)
    # what np.random.default_rng takes besides one number still seeds (as before the check)
    for seed in (np.random.SeedSequence(5), [1, 2]):
        assert gen.generate([[1, 2]], 4, seed=seed) == gen.generate([[1, 2]], 4, seed=seed)
    assert len(gen.generate([[1, 2]], 4, seed=np.random.default_rng(0))[0]) == 4
    assert len(gen.generate([[1, 2]], 4, seed=None)[0]) == 4


# ---- 7. the untied-head warning reads as graphc's; a sharded checkpoint is named -------------
def test_the_untied_head_warning_is_graphcs_own_and_points_at_the_callers_line(tmp_path):
    """The warning that a tied config's file holds a different lm_head.weight was a plain
    UserWarning issued at gpt2.py's line, so `graphc sample` printed it as "graphc: warning:
    UserWarning: ..." (the form of a library's warning, not graphc's); it is now
    graphc's own category (gpt2.GPT2Warning, a UserWarning) pointing at the caller's line,
    and prints as graphc's other warnings."""
    need_transformers()
    import safetensors.numpy as safetensors_numpy
    save_random_gpt2(tmp_path)
    train_tokenizer(tmp_path / gpt2.TOKENIZER_FILE)
    weights = tmp_path / gpt2.WEIGHTS_FILE
    tensors = safetensors_numpy.load_file(str(weights))
    tensors["lm_head.weight"] = np.random.default_rng(0).normal(
        0, 1, (SMALL["vocab_size"], SMALL["n_embd"])).astype(np.float32)
    safetensors_numpy.save_file(tensors, str(weights), metadata={"format": "pt"})
    text = (f"{weights}: config.json ties the LM head to wte.weight, but 'lm_head.weight' "
            "differs from it: loaded untied, as transformers does (set tie_word_embeddings "
            "false)")
    # (recorded, not printed: pytest's warnings plugin records them when it runs)
    with pytest.warns(gpt2.GPT2Warning) as record:
        assert main(["sample", "--model", str(tmp_path), "--prompt", "a", "--tokens",
                     "1"]) == 0
    [shown] = [w for w in record if w.category is gpt2.GPT2Warning]
    assert cli._format_warning(shown.message, shown.category, shown.filename,
                               shown.lineno) == f"graphc: warning: {text}\n"
    with pytest.warns(gpt2.GPT2Warning) as record:
        gpt2.load_gpt2(str(tmp_path))
    assert [str(w.message) for w in record] == [text]
    assert record[0].filename == __file__


def test_a_sharded_checkpoint_is_named_as_one_graphc_does_not_load(tmp_path, capsys):
    """A directory that save_pretrained sharded (model-0000N-of-0000M.safetensors and
    model.safetensors.index.json) was refused as having "no model.safetensors", as if the
    weights were missing; the line now says it is a sharded checkpoint, which graphc does
    not load, and how to save it as one file."""
    need_transformers()
    reference = save_random_gpt2(tmp_path / "one")
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert not (tmp_path / "sharded" / gpt2.WEIGHTS_FILE).exists()
    directory = str(tmp_path / "sharded")
    message = (f"model directory {directory!r} holds a sharded checkpoint "
               "(model.safetensors.index.json), which graphc does not load: save it as one "
               "model.safetensors (save_pretrained with a max_shard_size above its size)")
    with pytest.raises(GraphcError) as info:
        gpt2.load_gpt2(directory)
    assert str(info.value) == message
    capsys.readouterr()
    assert main(["sample", "--model", directory, "--prompt", "a", "--tokens", "1"]) == 2
    assert _error(capsys) == message


# ---- s43: min_new_tokens, given or from generation_config.json, as transformers ------------
def test_min_new_tokens_bars_the_eos_as_transformers_does(tmp_path):
    """generation_config.json's min_new_tokens (transformers' generate chooses no eos among
    a row's first that many new tokens) was silently ignored: graphc ended the row at its
    second token where transformers went on. Now load_gpt2 reads it as the model's, and
    generate(min_new_tokens=) overrides it; the greedy tokens are transformers'."""
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    save_random_gpt2(tmp_path)
    prompt = [[5, 7, 9]]

    def reference(**settings):
        model = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
        with torch.no_grad():
            out = model.generate(torch.tensor(prompt), max_new_tokens=10, do_sample=False,
                                 pad_token_id=0, **settings)
        return out[0, 3:].tolist()

    rewrite_generation_config(tmp_path, eos_token_id=None)
    eos = reference()[1]  # the eos is the greedy row's second token
    rewrite_generation_config(tmp_path, eos_token_id=eos, min_new_tokens=4)
    model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.min_new_tokens == 4
    generator = Generator(model, params)
    want = reference()
    assert eos not in want[:4] and want[-1] == eos and len(want) > 4
    assert generator.generate(prompt, 10, temperature=0) == [want]
    short = reference(min_new_tokens=0)
    assert len(short) == 2
    assert generator.generate(prompt, 10, temperature=0, min_new_tokens=0) == [short]
    assert generator.generate(prompt, 10, temperature=0, min_new_tokens=np.int64(6)) == \
        [reference(min_new_tokens=6)]
    with pytest.raises(ValueError) as info:
        generator.generate(prompt, 10, min_new_tokens=-1)
    assert str(info.value) == "min_new_tokens must be a whole number >= 0, got -1"
    rewrite_generation_config(tmp_path, min_new_tokens="4")
    with pytest.raises(GraphcError) as info:
        gpt2.load_gpt2(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path / gpt2.GENERATION_CONFIG_FILE}: key "
                                      "'min_new_tokens' has a bad value '4'")


def test_min_length_bars_the_eos_as_transformers_does(tmp_path):
    """r4: generation_config.json's min_length (transformers' MinLengthLogitsProcessor: no
    eos while a row, prompt included, is shorter) was silently ignored: graphc's row was
    [eos] where transformers' went on to 7 tokens. load_gpt2 reads it as model.min_length;
    with left-padded rows of 3, 2 and 5 tokens the greedy rows are transformers', alone and
    with min_new_tokens (each bars the eos while it holds)."""
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    save_random_gpt2(tmp_path)
    prompts = [[5, 7, 9], [11, 3], [42, 17, 8, 250, 6]]

    def reference(**settings):  # each row's new tokens up to and including its eos
        model = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
        L = max(map(len, prompts))
        ids = torch.tensor([[0] * (L - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                                 pad_token_id=299, **settings)[:, L:].tolist()
        eos = set(model.generation_config.eos_token_id or ())
        return [next((row[:i + 1] for i, t in enumerate(row) if t in eos), row) for row in out]

    rewrite_generation_config(tmp_path, eos_token_id=None)
    free = reference()
    eos = [free[0][0], free[1][1]]  # row 0 ends at its first token, row 1 at its second
    rewrite_generation_config(tmp_path, eos_token_id=eos)
    unbarred = reference()
    assert [len(row) for row in unbarred[:2]] == [1, 2]
    # (min_length, the file's min_new_tokens, the argument's, barred as unbarred): a
    # min_new_tokens given, in the file or as the argument, 0 too, replaces min_length
    for min_length, in_file, given, same in ((9, ..., None, False), (7, ..., None, False),
                                              (9, 0, None, True), (9, 1, None, False),
                                              (7, ..., 0, True), (9, ..., 2, False)):
        rewrite_generation_config(tmp_path, eos_token_id=eos, min_length=min_length,
                                  min_new_tokens=in_file)
        model, params = gpt2.load_gpt2(str(tmp_path))
        settings = {} if given is None else {"min_new_tokens": given}
        want = reference(**settings)
        assert (want == unbarred) == same, (min_length, in_file, given)
        got = Generator(model, params).generate(prompts, 10, temperature=0, **settings)
        assert got == want, (min_length, in_file, given)
    assert model.min_length == 9
    rewrite_generation_config(tmp_path, min_length=-2, min_new_tokens=...)
    with pytest.raises(GraphcError) as info:
        gpt2.load_gpt2(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path / gpt2.GENERATION_CONFIG_FILE}: key "
                                      "'min_length' has a bad value -2")


@pytest.mark.parametrize("name", ["min_new_tokens", "min_length"])
@pytest.mark.parametrize("value", [-1, "3", 2.5, True])
def test_a_models_min_new_tokens_set_by_hand_is_checked_as_the_argument_is(name, value):
    """r4: model.min_new_tokens set by hand was not checked as generate's argument is: -1
    said "got None", "3" was a raw TypeError, 2.5 was taken. One line naming it now."""
    model, params = small_model()
    setattr(model, name, value)
    with pytest.raises(ValueError) as info:
        Generator(model, params).generate([[1, 2]], 3, temperature=0)
    assert str(info.value) == f"model.{name} must be a whole number >= 0, got {value!r}"
    setattr(model, name, np.int64(2))  # as the argument takes it
    assert len(Generator(model, params).generate([[1, 2]], 3, temperature=0)[0]) == 3


# ---- s44: graphc.sample's Sampler takes min_new_tokens too ---------------------------------
def test_sampler_takes_min_new_tokens_as_generate_and_transformers_do(tmp_path):
    """Sampler.generate and Sampler.stream (graphc sample, the sample after graphc train)
    took no min_new_tokens (a TypeError) while Generator.generate did: they take it now,
    with its meaning (transformers' min_new_tokens: no eos among a row's first that many
    new tokens; None: the model's, which a given one, 0 too, replaces). Greedy: the tokens
    are transformers' and the Generator's; sampled: the Generator's."""
    need_transformers()
    import torch
    from transformers import GPT2LMHeadModel
    from graphc.sample import Sampler
    save_random_gpt2(tmp_path)
    prompt = [5, 7, 9]

    def reference(**settings):
        model = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False,
                                 pad_token_id=0, **settings)
        return out[0, 3:].tolist()

    rewrite_generation_config(tmp_path, eos_token_id=None)
    eos = reference()[1]  # the eos is the greedy row's second token
    rewrite_generation_config(tmp_path, eos_token_id=eos, min_new_tokens=3)
    model, params = gpt2.load_gpt2(str(tmp_path))
    generator, sampler = Generator(model, params), Sampler(model, params)
    for given in (None, 0, 5, np.int64(7)):
        settings = {} if given is None else {"min_new_tokens": given}
        # (transformers takes a Python int only)
        want = reference(**({} if given is None else {"min_new_tokens": int(given)}))
        assert eos not in want[:3 if given is None else int(given)]
        assert want[-1] == eos or len(want) == 10
        assert sampler.generate(prompt, 10, temperature=0, **settings) == want
        assert list(sampler.stream(prompt, 10, temperature=0, **settings)) == want
        assert generator.generate([prompt], 10, temperature=0, **settings) == [want]
    assert len(reference(min_new_tokens=0)) == 2  # (the bar is what kept the rows going)
    for seed in range(3):  # sampled: the same draws as the Generator's
        assert sampler.generate(prompt, 10, seed=seed, min_new_tokens=4) == \
            generator.generate([prompt], 10, seed=seed, min_new_tokens=4)[0]
    with pytest.raises(ValueError) as info:
        sampler.generate(prompt, 10, min_new_tokens=-1)
    assert str(info.value) == "min_new_tokens must be a whole number >= 0, got -1"
