"""Session 17 review (lead f): GPT-2 loading and text generation.

Found and fixed:
- a config.json with "n_head": 0 ended `graphc sample --model` in a ZeroDivisionError traceback:
  GPTConfig.validate took n_embd % n_head before checking the sizes are positive (a graphc
  checkpoint header with n_head 0 went the same way). The signs are now checked first.
- a hostile "n_layer" made load_gpt2 name every tensor of every declared layer
  (parameter_shapes, 12 names a layer) before noticing the file has two layers: 10**5 took
  4 s and 400 MB, 10**6 a minute and 4.4 GB (so 10**9 terabytes). The layers the file holds
  are now counted first.
  The missing tensor it names is also the model's first (h.2.ln_1.weight), not the first as
  strings sort (h.10.attn.c_attn.bias, a layer after one that is missing whole).
- a tokenizer.json whose ids skip some (300 tokens, one of them id 5000) passed the check
  against the model's vocab_size, which compared the count of tokens, so a prompt ending in
  that token stopped in the Generator with "token id 5000 is outside the vocabulary", naming
  no file. The largest id is now checked, naming tokenizer.json and the token.
- load_gpt2 refuses non-finite weights, but checked them before the cast to the model's dtype:
  an F64 tensor holding 1e300 loaded as inf in float32, and `graphc sample` then ended in
  "Probabilities contain NaN" (naming no file), or at temperature 0 printed token 0 for every
  step (argmax of NaN logits). The cast value is checked too.
- Generator.advance appended each row's token before checking the next row's: a refused
  advance([3, 99]) left row 0's context holding 3, a token the cache never saw, so the next
  step's logits were those of a context without it (1.3 off the full recompute in float64).
  Every token is checked before any row takes one.
- Generator.start kept the whole of a prompt longer than the block size, and advance dropped
  one token a step, so a 100,000-token prompt stayed 100,000 ids for the whole generation
  (each step's `del ctx[0]` moving them all). start keeps the last block_size.
- `graphc sample --model DIR/model.safetensors` (a file, not the directory) said "model
  directory ... does not exist", which it does; it now says it is not a directory.
- Two streams of one Generator shared its caches and contexts: a stream read after another
  had started went on from the other's prompt (greedy [6, 4, 4, 4, 4, 4] for a prompt whose
  tokens are [6, 3, 3, 8, 8, 8]). Such a stream now stops with a ValueError at its next step.
- A model.safetensors holding both 'transformer.wte.weight' and 'wte.weight' loaded the second
  (keys come sorted) where transformers loads the prefixed one, silently: the two names of one
  tensor are now refused, naming both.
- Generator took token ids through int(), so a prompt [[1.7]] ran as [[1]] and advance([2.9])
  appended 2, silently (transformers refuses float input_ids). Ids are operator.index'd.
- Generator.start tested `not prompts`, so a (B, L) numpy array of prompts (what
  transformers' generate takes, as a tensor) was "The truth value of an array with more than
  one element is ambiguous". It takes len(prompts).
- check_sampling let top_k=2.5 through, and the first token failed in choose with numpy's
  "only integers ... are valid indices" (transformers refuses it up front). top_k must be an
  integer (numpy's too).
- The prefill built its attention mask over every slot of the block, (B, 1, L, block_size),
  though the plan reads only the first span(L) (L rounded up to a power of two): with a block
  of 65,536 a 64-token prompt allocated 55 MB (bool, float64 and float32 copies) and took
  50 ms for a 64 x 64 mask; a long block and a long prompt ran out of memory. The mask (and
  the decode step's) now has the span's slots only.
"""
import json
import tracemalloc

import numpy as np
import pytest

from graphc.cli import main
from graphc.generate import Generator
from graphc.models import gpt2
from graphc.models.gpt import GPTConfig
from ir.errors import GraphcError

from test_generate import NoCache, small_model
from test_gpt2 import write_directory


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphc: error: "), err
    return err[0]


def test_n_head_0_is_one_error_line_naming_config_json(tmp_path, capsys):
    with pytest.raises(ValueError, match="n_head must be positive, got 0"):
        GPTConfig(vocab_size=10, n_layer=1, n_head=0, n_embd=8, block_size=4).validate()
    write_directory(tmp_path, config={"n_head": 0})
    assert main(["sample", "--model", str(tmp_path), "--prompt", "a", "--tokens", "2"]) == 2
    line = one_error_line(capsys)
    assert line.endswith("config.json: n_head must be positive, got 0"), line


def test_a_hostile_n_layer_is_refused_without_naming_every_layer(tmp_path):
    write_directory(tmp_path, config={"n_layer": 50_000})
    tracemalloc.start()
    try:
        with pytest.raises(GraphcError) as err:
            gpt2.load_gpt2(str(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ("model.safetensors: missing tensor 'transformer.h.2.ln_1.weight' (config.json "
            "declares 50000 layers)") in err.value.message
    assert peak < 5_000_000, peak  # 600,000 names were well over 50 MB


def test_the_missing_tensor_named_is_the_models_first(tmp_path):
    write_directory(tmp_path, drop=["transformer.h.1.ln_1.weight",
                                    "transformer.h.1.attn.c_attn.bias"])
    with pytest.raises(GraphcError, match=r"missing tensor 'transformer\.h\.1\.ln_1\.weight'"):
        gpt2.load_gpt2(str(tmp_path))


def test_a_tokenizer_id_past_the_vocabulary_names_tokenizer_json(tmp_path, capsys):
    write_directory(tmp_path)  # vocab_size 300 in config.json, 300 tokens (ids 0-299)
    path = tmp_path / gpt2.TOKENIZER_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["model"]["vocab"]["a"] = 5000  # still 300 tokens; ids 0-299 but 'a''s, and 5000
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert gpt2.Tokenizer(str(path)).vocab_size == 300
    assert gpt2.Tokenizer(str(path)).encode("a") == [5000]
    with pytest.raises(GraphcError, match="the tokenizer's token 'a' has id 5000, outside the "
                       "model's vocab_size 300 in config.json"):
        gpt2.load_tokenizer(str(tmp_path), 300)
    assert main(["sample", "--model", str(tmp_path), "--prompt", "a", "--tokens", "2"]) == 2
    line = one_error_line(capsys)
    assert f"{path}: the tokenizer's token 'a' has id 5000" in line, line


def test_weights_too_large_for_float32_are_refused_naming_the_tensor(tmp_path, capsys):
    write_directory(tmp_path, extra={"transformer.ln_f.bias": np.full(24, 1e300, np.float64)})
    with pytest.raises(GraphcError, match="model.safetensors: tensor 'transformer.ln_f.bias' "
                       "holds values too large for float32"):
        gpt2.load_gpt2(str(tmp_path))
    _, params = gpt2.load_gpt2(str(tmp_path), "float64")  # float64 holds them
    assert params["ln_f.bias"][0] == 1e300
    assert main(["sample", "--model", str(tmp_path), "--prompt", "a", "--tokens", "3",
                 "--temperature", "0"]) == 2
    assert "holds values too large for float32" in one_error_line(capsys)


def test_a_refused_advance_leaves_every_row_as_it_was():
    model, params = small_model("float64")
    reference = NoCache(model, params)
    gen = Generator(model, params)
    gen.start([[1], [2]])
    with pytest.raises(ValueError, match="token id 99 is outside the vocabulary"):
        gen.advance([3, 99])
    logits = gen.advance([4, 5])
    for row, context in enumerate([[1, 4], [2, 5]]):
        assert gen._contexts[row] == context
        np.testing.assert_allclose(logits[row], reference.logits(context), rtol=0, atol=1e-12)


def test_a_prompt_longer_than_the_block_keeps_only_the_window():
    model, params = small_model("float64")
    reference = NoCache(model, params)
    T = model.cfg.block_size
    rng = np.random.default_rng(3)
    long, short = list(rng.integers(0, 11, 5000)), [4, 2]
    gen = Generator(model, params)
    logits = gen.start([long, short])
    assert gen._contexts == [long[-T:], short]
    for row, context in enumerate([long, short]):
        np.testing.assert_allclose(logits[row], reference.logits(context), rtol=0, atol=1e-12)
    assert Generator(model, params).generate([long, short], 3, temperature=0) == [
        reference.greedy(long, 3), reference.greedy(short, 3)]


def test_a_model_path_that_is_a_file_is_not_said_to_be_missing(tmp_path, capsys):
    write_directory(tmp_path)
    weights = str(tmp_path / gpt2.WEIGHTS_FILE)
    assert main(["sample", "--model", weights, "--prompt", "a", "--tokens", "2"]) == 2
    line = one_error_line(capsys)
    assert f"model directory {weights!r} is not a directory (expected a directory" in line, line
    with pytest.raises(GraphcError, match="does not exist"):
        gpt2.load_gpt2(str(tmp_path / "nowhere"))


def test_a_stream_left_behind_by_another_start_refuses_to_go_on():
    model, params = small_model("float64")
    expected = NoCache(model, params).greedy([1, 2, 3], 6)
    gen = Generator(model, params)
    first = gen.stream([[1, 2, 3]], 6, temperature=0)
    assert next(first) == [expected[0]]  # drawn from its own prompt's logits
    second = gen.stream([[7]], 6, temperature=0)
    with pytest.raises(ValueError, match="has started other prompts since"):
        next(first)
    assert [step[0] for step in second] == NoCache(model, params).greedy([7], 6)
    assert gen.generate([[1, 2, 3]], 6, temperature=0) == [expected]


def test_one_tensor_under_two_names_is_refused(tmp_path, capsys):
    write_directory(tmp_path, extra={"wte.weight": np.zeros((300, 24), np.float32)})
    assert main(["sample", "--model", str(tmp_path), "--prompt", "a", "--tokens", "2"]) == 2
    line = one_error_line(capsys)
    assert ("model.safetensors: holds both 'transformer.wte.weight' and 'wte.weight' (one "
            "tensor under two names)") in line, line


def test_a_token_id_that_is_not_a_whole_number_is_refused():
    model, params = small_model("float64")
    gen = Generator(model, params)
    with pytest.raises(ValueError, match="token id 1.7 is not a whole number"):
        gen.start([[1.7]])
    gen.start([[np.int64(1)], [3]])  # numpy integers are ids (bools are not, session 37)
    assert gen._contexts == [[1], [3]]
    with pytest.raises(ValueError, match=r"token id np.float64\(2.9\) is not a whole number"):
        gen.advance([2, np.float64(2.9)])
    assert gen._contexts == [[1], [3]]


def test_prompts_may_be_a_numpy_array():
    model, params = small_model("float64")
    prompts = np.array([[1, 2, 3], [4, 5, 6]])
    expected = [NoCache(model, params).greedy(p, 4) for p in prompts.tolist()]
    assert Generator(model, params).generate(prompts, 4, temperature=0) == expected
    with pytest.raises(ValueError, match="every prompt needs at least one token"):
        Generator(model, params).start(np.zeros((0, 3), np.int64))


def test_top_k_must_be_a_whole_number():
    model, params = small_model("float32")
    gen = Generator(model, params)
    for bad in (2.5, 3.0, "3"):
        with pytest.raises(ValueError, match=f"top_k must be a whole number, got {bad!r}"):
            gen.stream([[1]], 3, temperature=1.0, top_k=bad)
    assert gen.generate([[1, 2]], 4, temperature=5.0, top_k=np.int64(1)) == \
        gen.generate([[1, 2]], 4, temperature=0)


def test_the_prefill_mask_covers_the_slots_read_not_the_whole_block():
    model, params = small_model("float32", block_size=2 ** 16, n_embd=8, n_head=1, n_layer=1)
    gen = Generator(model, params)
    prompt = [t % 11 for t in range(64)]
    gen.start([prompt])  # builds the plan and the caches
    tracemalloc.start()
    try:
        logits = gen.start([prompt])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak  # was 55 MB: a (64, 65536) mask in three dtypes
    reference = NoCache(model, params)
    np.testing.assert_allclose(logits[0], reference.logits(prompt), rtol=0, atol=1e-5)
    logits = gen.advance([3])
    np.testing.assert_allclose(logits[0], reference.logits(prompt + [3]), rtol=0, atol=1e-5)
