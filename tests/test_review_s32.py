"""Session 32's findings (left from session 31, then this session's helpers); each test
failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint
from graphc.cli import main
from test_review_s30_cli import TINY
from test_review_s31 import _trained


def test_vmap_keeps_an_unmapped_numpy_scalar_weakly_typed():
    """A numpy scalar given in_axes None is weakly typed, as in eager code: float32 examples
    times np.float64(2) stay float32 (before: refused as float32 meeting float64)."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = gc.vmap(lambda a, s: a * s, in_axes=(0, None))(x, np.float64(2.0))
    assert np.asarray(out).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(out), x * 2)
    counts = gc.vmap(lambda a, n: a + n, in_axes=(0, None))(x.astype(np.int32), np.int64(3))
    assert np.asarray(counts).dtype == np.int32
    np.testing.assert_array_equal(np.asarray(counts), x.astype(np.int32) + 3)


def test_resume_refuses_a_negative_second_moment(tmp_path, capsys):
    """A checkpoint with a negative Adam second moment was resumed: the first step made the
    weights NaN and training stopped as diverged. It is refused as changed, and the file is
    left as it was."""
    out, data = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    name = next(k for k in arrays if k.startswith("adam_v/"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = -1e-3
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    before = ckpt.read_bytes()
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"graphc: error: checkpoint {name} holds a negative value, which AdamW's "
                   "running average of squared gradients never does (the file was changed "
                   "or damaged)"], err
    assert ckpt.read_bytes() == before


# ---- generation and GPT-2 directories (helper's findings) ----------------------------------
def _bpe(path, setup=None):
    """A small byte-level BPE tokenizer.json, changed by `setup(tokenizer)` before saving."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["But soft, what light through yonder window breaks"] * 5,
                            trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel
                                                .alphabet(), show_progress=False))
    if setup is not None:
        setup(tok)
    tok.save(str(path))
    return str(path)


@pytest.mark.parametrize("setup", [
    lambda t: t.enable_truncation(max_length=3),
    lambda t: t.enable_padding(length=40, pad_id=0, pad_token="<|endoftext|>"),
])
def test_a_tokenizer_file_saved_with_truncation_or_padding_does_not_cut_or_pad(tmp_path, setup):
    """Encoding used the file's truncation/padding: a prompt was cut to 3 tokens or padded
    with <|endoftext|> (transformers' tokenizers turn both off unless a call asks)."""
    from graphc.models import gpt2
    text = "But soft, what light through yonder window"
    plain = gpt2.Tokenizer(_bpe(tmp_path / "plain.json")).encode(text)
    assert len(plain) > 3
    assert gpt2.Tokenizer(_bpe(tmp_path / "set.json", setup)).encode(text) == plain


def test_tokenizer_failures_are_one_line_naming_the_file(tmp_path):
    """The Rust library's errors (a word-level vocabulary without its unknown token) came out
    of encode as a bare Exception: a traceback from `graphc sample`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from graphc.models import gpt2
    from ir.errors import GraphcError
    t = Tokenizer(models.WordLevel({f"w{i}": i for i in range(50)}, unk_token=None))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    path = str(tmp_path / "tokenizer.json")
    t.save(path)
    tok = gpt2.Tokenizer(path)
    assert tok.encode("w1 w2") == [1, 2]
    with pytest.raises(GraphcError, match=f"^{path} cannot encode the text \\(WordLevel error: "
                                          "Missing \\[UNK\\] token from the vocabulary\\)$"):
        tok.encode("hello")


def test_a_stream_ending_inside_a_character_yields_decodes_replacement(tmp_path):
    """decode_stream dropped the U+FFFD of a character cut short by the end of generation,
    which decode (and so the saved sample) keeps."""
    from graphc.models import gpt2
    tok = gpt2.Tokenizer(_bpe(tmp_path / "tokenizer.json"))
    ids = tok.encode("ab\u6771")[:-1]
    assert tok.decode(ids).endswith("\ufffd")
    assert "".join(tok.decode_stream(ids)) == tok.decode(ids)
    whole = tok.encode("ab\u6771 soft")
    assert "".join(tok.decode_stream(whole)) == tok.decode(whole) == "ab\u6771 soft"


def test_logits_all_minus_inf_are_refused_not_token_0():
    """A row of logits all -inf: greedy returned token 0 silently, sampling failed with
    numpy's "Probabilities contain NaN"."""
    from graphc.generate import choose
    row = np.full(5, -np.inf)
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match="or are all -Inf, so no token can be chosen"):
            choose(row, temperature, rng=np.random.default_rng(0))
    row[3] = -1e300
    assert choose(row, 0.0) == 3
    assert choose(row, 1.0, rng=np.random.default_rng(0)) == 3


def test_sample_dtype_float64_keeps_a_weight_beyond_float32s_range(tmp_path, capsys):
    """--dtype float64 checked the weights by casting them to float32 first, so a finite
    float64 weight past 3.4e38 was 'too large for float64' (and a warning line)."""
    data = tmp_path / "t.txt"
    data.write_text("abcdefgh ijklmnop\n" * 200)
    out = tmp_path / "o"
    assert main(["train", *TINY, "--data", str(data), "--out", str(out), "--dtype",
                 "float64"]) == 0
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    arrays["param/ln_f.bias"] = arrays["param/ln_f.bias"].copy()
    arrays["param/ln_f.bias"][0] = 1e39
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--tokens", "3", "--temperature", "0",
                 "--dtype", "float64"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["sample", "--checkpoint", str(out), "--tokens", "3", "--dtype",
                 "float32"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"graphc: error: --dtype float32: ln_f.bias of {str(ckpt)!r} holds values too large "
        "for float32"]


def test_generator_names_a_missing_or_misshapen_parameter():
    from graphc.generate import Generator
    from graphc.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, n_embd=4, block_size=4))
    params = model.params()
    assert Generator(model, params).generate([[1]], 2, temperature=0)
    with pytest.raises(ValueError, match="^Generator: params has no 'ln_f.weight'"):
        Generator(model, {k: v for k, v in params.items() if k != "ln_f.weight"})
    with pytest.raises(ValueError, match=r"^Generator: params\['ln_f.bias'\] has shape \(3,\), "
                                         r"the model's is \(4,\)$"):
        Generator(model, {**params, "ln_f.bias": np.zeros(3, np.float32)})
