"""graphc's file writer replaces a symbolic link at the path it writes and never writes
through it (graphc/files.py: "never through a planted link"); session 55 tried writing
through links and took it back, as a link planted in a shared folder could then redirect a
checkpoint or a --json over a file of the user's."""
from __future__ import annotations

from graphc import files


def test_a_link_at_the_path_is_replaced_and_its_target_is_untouched(tmp_path):
    target = tmp_path / "elsewhere" / "precious.json"
    target.parent.mkdir()
    target.write_text("the user's own file")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    files.write_atomically(str(link), b'{"ms": 1.0}')
    assert not link.is_symlink() and link.read_bytes() == b'{"ms": 1.0}'
    assert target.read_text() == "the user's own file"


def test_a_relative_link_into_another_folder_is_replaced_the_same_way(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "run3.json").write_text("kept")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "run.json"
    link.symlink_to("../store/run3.json")
    files.write_atomically(str(link), b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert (tmp_path / "store" / "run3.json").read_text() == "kept"
