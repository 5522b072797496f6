"""Session 33's fixes of the command line, its output paths, checkpoints that Trainer.restore
is given and dump's --after; each test failed before its fix."""
import numpy as np
import pytest

from graphc.cli import main
from test_review_s30_cli import TINY, _text


def test_allow_changed_settings_without_resume_is_refused(tmp_path, capsys):
    """--allow-changed-settings without --resume was ignored: the run trained from scratch
    (or was told the checkpoint already exists). It is refused before anything is built."""
    out = tmp_path / "o"
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(out),
                 "--allow-changed-settings"]) == 2
    assert capsys.readouterr().err == (
        "graphc: error: --allow-changed-settings is for --resume: it lets a resumed run "
        "change the checkpoint's settings; a fresh run has none to change\n")
    assert not out.exists()
