"""graphc/files.py's atomic writes reach the disk in order: the temporary file's data is
fsynced before the rename, and the directory after it, so a machine crash leaves the old file
or the new one, never an empty file under the new name (the rename alone is atomic only for
the running system)."""
import errno
import os
import shutil
import tempfile

import numpy as np
import pytest

import graphc.files as files
from ir.errors import GraphcError


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


# ---- what is written in place: decided by what the name is, not by where it is -------------
@pytest.mark.parametrize("path, special", [
    ("/dev/shm/run/checkpoint.npz", False),  # a regular file's name on a tmpfs
    ("/dev/null", True),  # a device
    ("/dev/stdout", True),  # a link to descriptor 1, whatever file that is (pytest's: regular)
    ("/dev/fd/1", True),
    ("/proc/self/fd/1", True),
])
def test_a_name_is_special_for_what_it_is_not_for_where_it_is(path, special):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux's /proc")
    assert files._special(path) is special


def _interrupted_write(target):
    """atomic_writer on `target`, failing mid-write as a full disk fails it."""
    with pytest.raises(GraphcError, match="No space left on device; it is as it was before"):
        with files.atomic_writer(target) as fh:
            fh.write(b"half of the new")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_checkpoint_under_dev_shm_is_replaced_atomically():
    """Every name under /dev was written in place, as a device is: a regular file on the
    /dev/shm tmpfs was truncated first, so a full tmpfs (or a kill mid-save) left a broken
    checkpoint instead of the previous one. (A directory of its own there, removed after.)"""
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        pytest.skip("needs a writable /dev/shm")
    directory = tempfile.mkdtemp(prefix="graphc-test-", dir="/dev/shm")
    try:
        target = os.path.join(directory, "checkpoint.npz")
        files.write_atomically(target, b"the previous checkpoint")
        _interrupted_write(target)
        assert open(target, "rb").read() == b"the previous checkpoint"
        assert os.listdir(directory) == ["checkpoint.npz"]  # no temporary left
    finally:
        shutil.rmtree(directory)


def test_a_link_to_a_descriptor_is_written_in_place_not_replaced(tmp_path):
    """`-o /dev/stdout > out.txt` reaches a regular file through /proc/self/fd/1: the output
    goes into that file, and the link (here one of the user's) stays a link."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux's /proc")
    real = tmp_path / "out.txt"
    fd = os.open(real, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{fd}")
        files.write_atomically(str(link), b"the dump")
        assert link.is_symlink() and real.read_bytes() == b"the dump"
        assert sorted(os.listdir(tmp_path)) == ["out.txt", "stdout"]
    finally:
        os.close(fd)


# ---- a replaced file keeps its permissions, as open() keeps them -----------------------------
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660, 0o755])
def test_a_replaced_file_keeps_its_permission_bits(tmp_path, mode):
    """Every save set 0666 less the umask: a checkpoint the user made private (0600) became
    readable by everyone (0644) at the next save, and a group-shared one (0660) lost its
    group. open(path, "w"), np.savez and torch.save keep an existing file's mode."""
    target = tmp_path / "sample.txt"
    target.write_bytes(b"old")
    os.chmod(target, mode)
    files.write_atomically(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert oct(os.stat(target).st_mode & 0o7777) == oct(mode)
    fresh = tmp_path / "fresh.txt"  # a new file: as open() makes it
    files.write_atomically(str(fresh), b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert oct(os.stat(fresh).st_mode & 0o7777) == oct(0o666 & ~umask)


def test_a_private_checkpoint_stays_private_when_the_run_saves_it_again(tmp_path):
    import graphc as gc
    from graphc import checkpoint
    x = np.ones((3, 4), np.float32)
    trainer = gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                         {"w": np.ones((4, 2), np.float32)}, gc.optim.SGD(lr=0.1),
                         lambda rng: (x,), steps=2)
    ckpt = tmp_path / "run" / "checkpoint.npz"
    trainer.fit(str(ckpt.parent), progress=False)
    os.chmod(ckpt, 0o600)  # the user makes the weights private
    trainer.steps = 4
    trainer.fit(str(ckpt.parent), progress=False)  # goes on, saving twice more
    assert checkpoint.load_saved(str(ckpt))[1]["step"] == 4
    assert oct(os.stat(ckpt).st_mode & 0o777) == oct(0o600)
