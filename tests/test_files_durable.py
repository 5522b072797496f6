"""graphc/files.py's atomic writes reach the disk in order: the temporary file's data is
fsynced before the rename, and the directory after it, so a machine crash leaves the old file
or the new one, never an empty file under the new name (the rename alone is atomic only for
the running system)."""
import os

import graphc.files as files


def test_file_then_rename_then_directory_are_synced(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else "?"
        events.append(("fsync", os.path.basename(path), os.path.isdir(path)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst), False))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "checkpoint.npz"
    files.write_atomically(str(target), b"new weights")
    assert target.read_bytes() == b"new weights"
    kinds = [(kind, is_dir) for kind, _, is_dir in events]
    assert kinds == [("fsync", False), ("replace", False), ("fsync", True)], events
    assert events[0][1].startswith(".checkpoint.npz.") and events[2][1] == tmp_path.name


def test_a_failed_write_syncs_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "sample.txt"
    target.write_bytes(b"old")
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    try:
        with files.atomic_writer(str(target)) as fh:
            fh.write(b"half")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert target.read_bytes() == b"old" and synced == []
    assert os.listdir(tmp_path) == ["sample.txt"]
