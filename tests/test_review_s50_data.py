"""Findings in the training text (graphc/data.py), session 50's and then 53's; each test
failed before its fix."""
import re

import numpy as np
import pytest

from graphc.data import CharData, DataError
from graphc.models.gpt import GPT, GPTConfig


def _data():
    train = np.arange(20, dtype=np.uint8) % 10
    val = np.arange(10, 16, dtype=np.uint8)
    return CharData([chr(97 + i) for i in range(16)], train, val)


def test_batches_and_split_loss_refuse_a_split_name_they_do_not_know():
    """CharData.batch drew from the validation split for any name but "train" (a
    `batch(rng, "training", ...)` source trained on the validation text) and split_loss
    scored the training split for any name but "val" ("validation" scored the wrong
    text). Both now take "train" and "val" only, and a split too short for the block is
    named, not numpy's "high <= 0"."""
    from graphc.train import split_loss
    data = _data()
    x, y = data.batch(np.random.default_rng(0), "train", 50, 4)
    assert x.max() <= 9 and (y[:, :-1] == x[:, 1:]).all()  # windows of the training ids
    x, _ = data.batch(np.random.default_rng(0), "val", 50, 4)
    assert x.min() >= 10  # the validation ids, 10 to 15
    for name in ("training", "validation", "test", "Train"):
        with pytest.raises(ValueError, match=re.escape(
                f"split must be one of 'train', 'val', got {name!r}")):
            data.batch(np.random.default_rng(0), name, 2, 4)
    with pytest.raises(ValueError, match=re.escape(
            "the val split has 6 tokens: fewer than one window of block_size 6 + 1")):
        data.batch(np.random.default_rng(0), "val", 2, 6)
    x, _ = data.batch(np.random.default_rng(0), "val", 2, 5)  # exactly one window
    assert x.tolist() == [[10, 11, 12, 13, 14]] * 2

    model = GPT(GPTConfig(vocab_size=16, n_layer=1, n_head=1, n_embd=4, block_size=4,
                          batch_size=2))
    params = {name: p.data for name, p in model.named_parameters()}
    with pytest.raises(ValueError, match=re.escape(
            "split must be one of 'train', 'val', got 'validation'")):
        split_loss(model, params, data, "validation")


@pytest.mark.parametrize("block, shortest", [(4, 41), (32, 321), (1, 11)])
def test_a_text_too_short_is_told_the_fewest_characters_that_train(block, shortest):
    """The refusal said a block of B needs 10 * (B + 1) characters in all, but the 90/10
    split holds B + 1 in each part up to 9 characters sooner: 41 characters train a block
    of 4, while 40 were told that 50 were needed."""
    text = ("abcdefg" * shortest)[:shortest]
    data = CharData.from_text(text, block)
    assert len(data.val) == block + 1 and len(data.train) >= block + 1
    with pytest.raises(DataError, match=re.escape(
            f"'text' is too short: {shortest - 1} characters, but a block of {block} needs "
            f"at least {block + 1} in each of the 90/10 train/validation splits "
            f"({shortest} or more in all)")):
        CharData.from_text(text[:-1], block)


def test_eval_of_one_split_needs_a_window_in_that_split_only(tmp_path, capsys):
    """`graphc eval --split train` refused a text whose validation part (its last 10%), which
    it does not score, was shorter than one window, and its message spoke of both splits.
    Each split now needs a window only where it is scored: a text of 20 characters scores
    the training split's 18 in windows of 8 and is refused for the validation split, whose
    2 are too few, in words and a minimum that are that split's."""
    from graphc.cli import main
    from graphc.train import checkpoint_text
    text = ("to be or not to be, that is the question\n" * 8)[:200]
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    assert main(["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16",
                 "--n-head", "2", "--block-size", "8", "--batch-size", "4", "--eval-iters",
                 "1", "--no-progress", "--sample-tokens", "0", "--steps", "1",
                 "--data", str(path), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    short = tmp_path / "short.txt"
    short.write_text(text[:20], encoding="utf-8")
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(short),
                 "--split", "train"]) == 0
    assert "over the whole train split (16 tokens in windows of 8" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", str(short)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"graphc: error: {str(short)!r} is too short: 20 characters, but a block of 8 needs "
        "at least 9 in the 10% validation split (81 or more in all)")
    # the training split alone: 10 characters hold 9 there (int(0.9 * 10)), 9 do not
    vocab = sorted(set(text))
    for n, splits in ((10, ("train",)), (81, ("val",)), (81, ("train", "val"))):
        short.write_text(text[:n], encoding="utf-8")
        checkpoint_text(str(short), 8, vocab, "--checkpoint run", splits)
        short.write_text(text[:n - 1], encoding="utf-8")
        with pytest.raises(DataError, match=re.escape(f"({n} or more in all)")):
            checkpoint_text(str(short), 8, vocab, "--checkpoint run", splits)


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_a_byte_order_mark_is_no_character_of_the_text(tmp_path, monkeypatch, chunk):
    """(s51) A file saved with a UTF-8 byte order mark (Notepad's "UTF-8 with BOM") made
    U+FEFF a character of the vocabulary, and the first token of the text; Python reads
    such a file with encoding="utf-8-sig" without it. Dropped at the start (read in pieces of
    any size), kept elsewhere as utf-8-sig keeps it; a bad byte's position still counts the
    BOM's three bytes."""
    from graphc import data as data_module
    if chunk is not None:
        monkeypatch.setattr(data_module, "CHUNK_BYTES", chunk)
    text = "ab\ufeffcd" * 20
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    data = CharData.from_file(str(path), 4)
    assert open(path, encoding="utf-8-sig").read() == text
    assert data.vocab == sorted(set(text))  # (U+FEFF of the middle kept, as utf-8-sig)
    assert data.decode(np.concatenate([data.train, data.val])) == text
    assert data.text_sha256 == CharData.from_text(text, 4).text_sha256
    path.write_bytes(b"\xef\xbb\xbfab\xff" + text.encode("utf-8"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(invalid start byte at byte 5\)"):
        CharData.from_file(str(path), 4)
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(DataError, match="is empty"):
        CharData.from_file(str(path), 4)


def test_from_text_reads_a_text_as_from_file_reads_it_saved():
    """(s51) from_text kept '\r' (a CRLF text's vocabulary had '\r', its ids another text's
    than the same characters saved to a file, which text mode reads with \n) and a byte
    order mark. Both are now read as from_file reads them: CRLF and a lone CR as LF, the
    BOM at the start dropped."""
    text = "to be\nor not\n" * 10
    plain = CharData.from_text(text, 4)
    for given in (text.replace("\n", "\r\n"), text.replace("\n", "\r"), "\ufeff" + text):
        read = CharData.from_text(given, 4)
        assert read.vocab == plain.vocab and "\r" not in read.vocab
        np.testing.assert_array_equal(read.train, plain.train)
        np.testing.assert_array_equal(read.val, plain.val)
        assert read.text_sha256 == plain.text_sha256


def test_one_token_is_said_in_the_singular():
    """(s51) "the val split has 1 tokens"."""
    from graphc.data import token_count
    from graphc.train import split_loss
    data = CharData(list("ab"), np.zeros(20, np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match=re.escape("the val split has 1 token: fewer than one "
                                                   "window of block_size 2 + 1")):
        data.batch(np.random.default_rng(0), "val", 2, 2)
    model = GPT(GPTConfig(vocab_size=2, n_layer=1, n_head=1, n_embd=4, block_size=2,
                          batch_size=2))
    params = {name: p.data for name, p in model.named_parameters()}
    with pytest.raises(ValueError, match=re.escape("the val split has 1 token: fewer than one "
                                                   "window of 2 + 1")):
        split_loss(model, params, data, "val")
    assert [token_count(n) for n in (0, 1, 2)] == ["0 tokens", "1 token", "2 tokens"]


def test_trainer_resume_on_another_text_is_refused_unless_allowed(tmp_path):
    """(s51) graphc.train.Trainer.resume, as `graphc train --resume`: a checkpoint records
    the SHA-256 of its text, and a resume on another text of the same characters is refused
    in one line unless allow_changed_settings."""
    from graphc import checkpoint
    from ir.errors import GraphcError
    from graphc.train import Trainer, TrainConfig
    text = "to be or not to be, that is the question\n" * 8
    cfg = GPTConfig(vocab_size=len(set(text)), n_layer=1, n_head=1, n_embd=8, block_size=4,
                    batch_size=2)
    tc = TrainConfig(steps=1, eval_every=1, eval_iters=1)
    first = Trainer(GPT(cfg), CharData.from_text(text, 4), tc)
    assert first.fit(str(tmp_path), progress=False, log=lambda *_: None) == 0
    path = str(tmp_path / "checkpoint.npz")
    saved = checkpoint.load(path)[1]["text_sha256"]
    assert saved == CharData.from_text(text, 4).text_sha256
    other = CharData.from_text(text[::-1], 4)
    with pytest.raises(GraphcError) as info:
        Trainer(GPT(cfg), other, tc).resume(path)
    assert str(info.value).startswith(
        f"{path} was trained on another text (its SHA-256 {saved[:12]}..., this one's "
        f"{other.text_sha256[:12]}...), though its characters fit the vocabulary; resume on "
        "the text it was trained on, or pass allow_changed_settings=True to continue on this "
        "one")
    Trainer(GPT(cfg), CharData.from_text(text.replace("\n", "\r\n"), 4), tc).resume(path)
    Trainer(GPT(cfg), other, tc).resume(path, allow_changed_settings=True)


@pytest.mark.parametrize("call, name", [
    (lambda d, v: d.batch(np.random.default_rng(0), "train", 2, v), "CharData.batch: block_size"),
    (lambda d, v: d.batch(np.random.default_rng(0), "train", v, 4), "CharData.batch: batch_size"),
    (lambda d, v: CharData.from_text("ab" * 50, v), "CharData.from_text: block_size"),
])
@pytest.mark.parametrize("value", [0, -3, 2.5, 2.0, "4", True, None])
def test_batch_and_block_sizes_are_whole_numbers_of_at_least_one(call, name, value):
    """Session 53: a block_size of 0 or below gave batches of empty windows, (2, 0), without
    a word (from_text took it too); 2.5 or -1 were numpy's errors from inside ("arrays used
    as indices must be of integer type", "negative dimensions are not allowed"), "4" a
    TypeError of str + int. Each is one line naming the argument; numpy integers are
    taken."""
    with pytest.raises(ValueError) as exc:
        call(_data(), value)
    assert str(exc.value) == f"{name} must be a whole number >= 1, got {value!r}"
    x, y = _data().batch(np.random.default_rng(0), "train", np.int64(3), np.int32(4))
    assert x.shape == y.shape == (3, 4) and (x[:, 1:] == y[:, :-1]).all()


def test_from_text_refuses_what_is_no_text_in_one_line():
    """Session 53: from_text(None) was AttributeError "'NoneType' object has no attribute
    'removeprefix'", bytes a TypeError of str.replace, and a lone surrogate (a file name
    decoded with surrogateescape) UnicodeEncodeError from the utf-32 codec inside."""
    for text, kind in ((None, "NoneType"), (b"ab" * 50, "bytes")):
        with pytest.raises(DataError, match=re.escape(
                f"CharData.from_text: text must be a str, got {kind} (CharData.from_file "
                "reads a file)")):
            CharData.from_text(text, 4)
    with pytest.raises(DataError, match=re.escape(
            "'notes' is not Unicode text: character 3 is '\\udc80', a lone surrogate")):
        CharData.from_text("abc\udc80" + "ab" * 50, 4, source="notes")
