"""Writing a user's files: whole or not at all, never through a planted link."""
from __future__ import annotations

import io
import os
import stat
import tempfile
from contextlib import contextmanager

from ir.errors import GraphcError

LOCK_NAME = ".graphc.lock"


def write_atomically(path: str, data) -> None:
    """Write `data` (str or bytes) to a fresh temporary file beside `path`, then rename it
    over `path`."""
    with atomic_writer(path) as fh:
        fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))


@contextmanager
def atomic_writer(path: str):
    """A binary file to write `path` through, piece by piece: it is a fresh temporary file
    beside `path`, renamed over `path` when the block ends, and removed if it fails, so
    `path` is whole or untouched. The temporary name is random and created exclusively
    (mkstemp: O_EXCL, so a symlink planted under a predictable name like PATH.tmp is never
    followed or truncated). The data reaches the disk before the rename and the rename
    before the writer returns (fsync of the file, then of its directory), so a crash of the
    machine leaves the old file or the new one, not an empty file under the new name.
    A device, a FIFO or a terminal (-o /dev/stdout, /dev/null, a shell's >(...)) is
    written in place, as open() would: a file renamed over it would replace the device."""
    if os.path.isdir(path):  # the rename's own error says "Device or resource busy"
        raise GraphcError(f"{path} is a directory; give the name of a file to write")
    if _special(path):
        with open(path, "wb") as fh:
            yield fh
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=directory)
    except OSError as exc:  # its message names the temporary file, not the one asked for
        raise GraphcError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give the output the permissions open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _special(path: str) -> bool:
    """Not a regular file to replace: an existing non-regular file, or any name in /dev or
    /proc (/dev/stdout is a link to the process's descriptor, whatever it points at)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
    except OSError:  # not there yet (or unreadable: the writer's own error says so)
        pass
    directory = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return directory.split(os.sep)[1] in ("dev", "proc")


def _sync_directory(directory: str) -> None:
    """fsync a directory, so a rename in it is on the disk (POSIX; elsewhere a no-op)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system or platform that cannot sync directories
        pass
    finally:
        os.close(fd)


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG at `path`, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_atomically(path, buffer.getvalue())


@contextmanager
def exclusive_directory(path: str, what: str = "graphc train"):
    """Hold PATH/.graphc.lock (flock) while a run writes into directory `path`: a second run
    given the same directory stops at once with one line, instead of replacing the first
    one's checkpoint at its next save (each checks at its start that no checkpoint exists,
    and both pass when they start together). The kernel releases the lock when the process
    ends, however it ends, so a killed run leaves nothing to clean up; the empty file stays
    (removing it would let a third run lock a file the second one no longer sees)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, no protection
        yield
        return
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            raise GraphcError(f"{path} is in use by another {what} (process {holder}); wait "
                              "for it to end, or write into another directory (graphc "
                              "train: --out)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
