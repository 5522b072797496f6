"""Session 31's findings (left from session 30's reviews, then this session's helpers);
each test failed before its fix."""
import errno

import numpy as np
import pytest

from graphc import checkpoint
from graphc.cli import main
from test_review_s30_cli import TINY, _text


def _trained(tmp_path, capsys):
    out, data = tmp_path / "o", _text(tmp_path)
    assert main(["train", *TINY, "--data", data, "--out", str(out)]) == 0
    capsys.readouterr()
    return out, data


def _edit_header(ckpt, **changes):
    arrays, meta = checkpoint.load(str(ckpt))
    meta.update(changes)
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})


def test_a_refused_lr_on_plateau_header_names_the_flag_on_the_command_line(tmp_path, capsys):
    """`graphc train --resume` of a header with an lr_on_plateau state the run has not
    named the library's keyword (allow_changed_settings=True), not the flag."""
    out, data = _trained(tmp_path, capsys)
    _edit_header(out / "checkpoint.npz", lr_on_plateau={"mode": "min", "factor": 0.5,
                                                        "patience": 2})
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "pass --allow-changed-settings to continue" in err, err
    assert "allow_changed_settings=True" not in err


def test_a_vocabulary_with_a_lone_surrogate_is_refused_on_load(tmp_path, capsys):
    """JSON's \\ud800 reached sample's encoder and print, which failed on it (a traceback
    from deep inside the output stream)."""
    out, _ = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    _, meta = checkpoint.load(str(ckpt))
    vocab = meta["vocab"]
    _edit_header(ckpt, vocab="\ud800" + vocab[1:])
    assert main(["sample", "--checkpoint", str(out), "--tokens", "5"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"graphc: error: checkpoint {str(ckpt)!r}: header field vocab holds a lone "
        "surrogate (character 0, U+D800), which no UTF-8 text has"]


def test_a_sample_that_cannot_be_saved_ends_its_line_before_the_error(tmp_path, capsys,
                                                                      monkeypatch):
    """On a full disk sample.txt's error line was glued onto the sample's last token."""
    import graphc.files

    real = graphc.files.atomic_writer

    def full_disk(path, *a, **k):
        if not str(path).endswith("sample.txt"):
            return real(path, *a, **k)

        class Full:
            def __enter__(self):
                return self

            def write(self, data):
                pass

            def __exit__(self, *exc):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return Full()

    monkeypatch.setattr(graphc.files, "atomic_writer", full_disk)
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(tmp_path / "o"),
                 "--sample-tokens", "20", "--no-progress"]) == 2
    captured = capsys.readouterr()
    sample = captured.out.split("---- sample ----\n", 1)[1]
    assert sample.endswith("\n") and len(sample) == 21, repr(sample)
    assert "No space left on device" in captured.err
