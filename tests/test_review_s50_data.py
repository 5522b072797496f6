"""Session 50's findings in the training text (graphc/data.py); each test failed before its
fix."""
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
