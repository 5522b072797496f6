"""Session 19e: a hostile sweep of the `graphc` command line. Each bad input is one
`graphc: error:` line and exit status 2, and leaves the user's files as they were."""
import os
import stat

import pytest

from graphc.cli import main


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("graphc: error: ") and "Traceback" not in err[0]
    return err[0]


def test_dump_output_to_a_fifo_writes_into_it_instead_of_replacing_it(tmp_path, capsys):
    # -o /dev/stdout, /dev/null or a shell's >(...) are not regular files: renaming a
    # temporary file over them replaced the device (as root, /dev/null itself)
    assert main(["dump", "mlp"]) == 0
    printed = capsys.readouterr().out
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so writing never waits
    try:
        assert main(["dump", "mlp", "-o", str(fifo)]) == 0
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received == printed and received.startswith("graph mlp_loss(")
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary file left behind


def test_dump_output_to_a_directory_is_one_line(tmp_path, capsys):
    assert main(["dump", "mlp", "-o", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory" in error_line(capsys)
    assert os.listdir(tmp_path) == []
