"""Session 17 review (lead f): GPT-2 loading and text generation.

Found and fixed:
- a config.json with "n_head": 0 ended `graphc sample --model` in a ZeroDivisionError traceback:
  GPTConfig.validate took n_embd % n_head before checking the sizes are positive (a graphc
  checkpoint header with n_head 0 went the same way). The signs are now checked first.
- a hostile "n_layer" (10**5, 10**9) made load_gpt2 name every tensor of every declared layer
  (parameter_shapes, 12 names a layer) before noticing the file has two layers: 10**5 took
  4 s and 400 MB, 10**9 never ended. The layers the file holds are now counted first.
  The missing tensor it names is also the model's first (h.2.ln_1.weight), not the first as
  strings sort (h.10.attn.c_attn.bias, a layer after one that is missing whole).
- a tokenizer.json whose ids skip some (300 tokens, one of them id 5000) passed the check
  against the model's vocab_size, which compared the count of tokens, so a prompt ending in
  that token stopped in the Generator with "token id 5000 is outside the vocabulary", naming
  no file. The largest id is now checked, naming tokenizer.json and the token.
"""
import json
import tracemalloc

import pytest

from graphc.cli import main
from graphc.models import gpt2
from graphc.models.gpt import GPTConfig
from ir.errors import GraphcError

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
    assert ("model.safetensors: missing tensor 'h.2.ln_1.weight' (config.json declares "
            "50000 layers)") in err.value.message
    assert peak < 5_000_000, peak  # 600,000 names were well over 50 MB


def test_the_missing_tensor_named_is_the_models_first(tmp_path):
    write_directory(tmp_path, drop=["transformer.h.1.ln_1.weight",
                                    "transformer.h.1.attn.c_attn.bias"])
    with pytest.raises(GraphcError, match=r"missing tensor 'h\.1\.ln_1\.weight'"):
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
