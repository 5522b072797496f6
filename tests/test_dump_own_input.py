"""`graphc dump SOURCE -o SOURCE` replaced the file the graph was read from: a user's script
with IR text (exit 0), a --full dump with a summary it cannot be read back from (found by
session 55's finder g3). Now refused in one line, status 2, the file untouched."""
from __future__ import annotations

import textwrap

import pytest

from graphc.cli import main

SCRIPT = textwrap.dedent("""
    import numpy as np
    import graphc as gc

    def build():
        return (lambda x: gc.tanh(x) * 2.0, gc.spec((3,), "float64"))
""")


def _error_lines(capsys):
    return capsys.readouterr().err.splitlines()


def test_dumping_a_script_over_itself_is_refused_and_the_script_kept(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(SCRIPT)
    assert main(["dump", "m.py:build", "-o", "m.py"]) == 2
    assert _error_lines(capsys) == [
        "graphc: error: -o m.py: is the file the graph was read from (m.py:build); write the "
        "dump to another file"]
    assert (tmp_path / "m.py").read_text() == SCRIPT
    assert main(["dump", "m.py:build", "-o", "m.ir"]) == 0  # another file: written
    assert "tanh" in (tmp_path / "m.ir").read_text()


@pytest.mark.parametrize("spelling", ["g.ir", "./g.ir"])
def test_dumping_a_saved_graph_over_itself_is_refused(tmp_path, capsys, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.py").write_text(SCRIPT)
    assert main(["dump", "m.py:build", "--full", "-o", "g.ir"]) == 0
    saved = (tmp_path / "g.ir").read_text()
    capsys.readouterr()
    assert main(["dump", "g.ir", "-o", spelling]) == 2
    assert _error_lines(capsys) == [
        f"graphc: error: -o {spelling}: is the file the graph was read from (g.ir); write the "
        "dump to another file"]
    assert (tmp_path / "g.ir").read_text() == saved
