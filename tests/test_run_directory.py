"""Two runs never write into one directory, and a bad output path is found before the work
(session 14, after the review's leads): `graphc train` checked at its start that OUT held no
checkpoint, so two runs started together both passed and the second replaced the first's
checkpoint at its next save; `--out FILE` failed only at the first save, after compiling;
`bench --json/--plot` into a missing directory failed after the whole benchmark."""
import os

import pytest

from graphc import checkpoint
from graphc.cli import main
from graphc.files import LOCK_NAME, exclusive_directory
from ir.errors import GraphcError
from test_cli import FAST, error_line, text_file, train  # noqa: F401 (a fixture)


def test_a_directory_is_held_by_one_run_at_a_time(tmp_path):
    with exclusive_directory(str(tmp_path / "run")):
        # another open of the lock file is another holder, even in this process
        with pytest.raises(GraphcError, match=rf"{tmp_path / 'run'} is in use by another "
                           rf"graphc train \(process {os.getpid()}\)"):
            with exclusive_directory(str(tmp_path / "run")):
                pass
    with exclusive_directory(str(tmp_path / "run")):  # released at the end of the first
        assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_second_training_into_a_held_directory_stops_and_keeps_its_checkpoint(
        tmp_path, text_file, capsys):  # noqa: F811
    assert train(tmp_path, text_file, "--steps", "2") == 0
    saved = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))[0]
    capsys.readouterr()
    with exclusive_directory(str(tmp_path / "run")):  # a run still training there
        assert train(tmp_path, text_file, "--steps", "4", "--resume") == 2
    line = error_line(capsys)
    assert f"{tmp_path / 'run'} is in use by another training run" in line
    assert "--out" in line
    after = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))[0]
    assert after.keys() == saved.keys()
    assert all((after[k] == saved[k]).all() for k in saved)


def test_out_naming_a_file_is_refused_before_compiling(tmp_path, text_file, capsys,
                                                       monkeypatch):  # noqa: F811
    import graphc.train
    monkeypatch.setattr(graphc.train, "Trainer", None)  # reaching it would be a TypeError
    (tmp_path / "run").write_text("mine")
    assert train(tmp_path, text_file) == 2
    assert error_line(capsys) == (f"graphc: error: --out {str(tmp_path / 'run')!r} is a file; "
                                  "pass a directory for the checkpoint")
    assert (tmp_path / "run").read_text() == "mine"


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_bench_outputs_in_a_missing_directory_are_refused_before_measuring(
        tmp_path, capsys, monkeypatch, flag):
    import graphc.bench

    def started(*args, **kwargs):
        raise AssertionError("the benchmark started")
    monkeypatch.setattr(graphc.bench, "matmul_gflops", started)
    target = tmp_path / "missing" / "out.file"
    assert main(["bench", flag, str(target)]) == 2
    assert error_line(capsys) == (f"graphc: error: {flag} {target}: there is no directory "
                                  f"{tmp_path / 'missing'}")
