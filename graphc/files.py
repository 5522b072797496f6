"""Writing a user's files: whole or not at all, never through a planted link."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
import zipfile
from contextlib import contextmanager

from ir.errors import GraphcError, user_location

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks
    fcntl = None

LOCK_NAME = ".graphc.lock"
# The lock files this process holds, by (st_dev, st_ino), each with the pid that took it (a
# forked child is not its holder) and its descriptor: what tells another holder "in this
# process". The pid written in the file does not: it is stale between a release and the
# next holder's write, and another pid namespace (a container) may run graphc as this pid.
_HELD: dict[tuple[int, int], tuple[int, int]] = {}
# Held from a lock file's open until its descriptor is in _HELD (or closed), and from its
# removal from _HELD until its close: a take in another thread sees this process's holds
# whole (it must refuse one before opening the file, see _take_lock_file), and a fork waits
# for it (register_at_fork below), so that the child's hook sees every lock descriptor.
# Never held across the yield (a fork inside the block would wait forever).
_FORK_GUARD = threading.Lock()
# atomic_writer's temporary for PATH is .NAME.RANDOM.graphc-tmp beside it (NAME: PATH's file
# name): a name no other program uses, so a killed writer's leftover is recognisably graphc's
TEMP_SUFFIX = ".graphc-tmp"
# what flock/lockf fail with on a file system that has no locks (NFS without its lock daemon,
# some FUSE and network mounts): the lock is then gone without, with a warning, rather than
# the run lost to a facility it can do without
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


class NoLockWarning(UserWarning):
    """A run writes into a directory it could not lock (exclusive_directory)."""


def write_atomically(path: str, data) -> None:
    """Write `data` (str or bytes) to a fresh temporary file beside `path`, then rename it
    over `path`."""
    with atomic_writer(path) as fh:
        fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))


# what writing, syncing or renaming a file fails with (a full disk, a quota, an I/O error, a
# read-only file system): said as "cannot write FILE"; another OSError raised by the
# writer's caller keeps its own message and traceback
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS, errno.EPERM,
                errno.EACCES}


def check_path(value, what: str, expected: str = "a path") -> None:
    """A file or directory name given to the Python API (`what`: the argument; `expected`:
    the name it must be), refused as the command line refuses it: an empty one (taken for
    one not given, it trained on the bundled text, wrote into runs/ or saved nothing) or a
    value of another type."""
    # (a PathLike of bytes, os.scandir(b"runs")'s entries, is refused as bytes are: joined
    # with a str name it was a raw TypeError, "Can't mix strings and bytes")
    if not isinstance(value, (str, os.PathLike)) or not isinstance(os.fspath(value), str):
        raise GraphcError(f"{what} must be {expected}, got {value!r}"[:200],
                          (user_location(),))
    if not os.fspath(value):
        raise GraphcError(f"{what}: expected a path, got an empty string", (user_location(),))


def check_writable(path: str, what: str = "") -> None:
    """Refuse now, in one line, a `path` that atomic_writer would refuse only after the work
    that fills it (a training, a benchmark): an empty name, a directory (or a name ending in
    a separator), or a read-only file. `what` names the option it came from."""
    path = os.fspath(path)  # (a pathlib.Path too, as open() takes)
    if not path:  # os.path.abspath("") is the current directory: its parent was written
        raise GraphcError(f"{what}: expected a path, got an empty string" if what
                          else "expected a path, got an empty string")
    name = f"{what} {path!r}" if what else path
    if os.path.isdir(path):
        raise GraphcError(f"{name} is a directory; give the name of a file to write")
    if path.endswith(("/", os.sep)):  # the rename's error named only the temporary file
        raise GraphcError(f"{name} ends in '/', a directory's name; give the name of a file "
                          "to write")
    if os.path.isfile(path) and not os.access(path, os.W_OK):
        raise GraphcError(f"cannot write {name}: the file is read-only")


def file_in_the_way(path: str) -> str | None:
    """The existing non-directory among the folders above `path` (d.txt of d.txt/a/out.npz),
    or None: creating those folders fails with a bare "File exists"."""
    above = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    return None if os.path.isdir(above) else above


def file_type(path: str) -> str | None:
    """What the existing `path` is when it is not a regular file ("a character device" for
    /dev/null, "a directory", "a FIFO", "a dangling symbolic link (to 'gone.npz')"...), or
    None (a regular file, or nothing there): for a message that says what was found
    instead of a file, not that nothing was."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if not os.path.islink(path):
            return None
        # the link is there, and what it points at is not (or is a loop of links)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"a dangling symbolic link (to {os.readlink(path)!r})"
        if exc.errno == errno.ELOOP:
            return f"a symbolic link in a loop of links (to {os.readlink(path)!r})"
        return None
    for test, name in ((stat.S_ISREG, None), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def cannot_create_in(directory: str) -> str | None:
    """Why no file can be created in the existing `directory` (the system's reason), or
    None. Found by creating a temporary directory there and removing it: os.access says yes
    where the file system refuses (/proc, for root), and the refusal came only when the
    output was written, after the work that filled it."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".graphc-probe.", dir=directory))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def fresh_directory(path: str, name: str, beside: bool = True) -> str:
    """A new, empty directory: beside directory `path`, PATH.NAME or PATH.NAME.2, .3, ...
    where that name is taken (by anything: it is made with mkdir, which never uses or
    replaces what exists); where PATH's parent refuses it (read-only, full) or not
    `beside`, in the system's temporary directory (PATH's name.NAME.RANDOM). OSError where
    it cannot be made."""
    base = os.path.normpath(os.fspath(path))
    if os.path.basename(base) in ("", ".", ".."):  # (--out . : its name, not ".NAME")
        base = os.path.abspath(base)
    for n in range(1, 1000 if beside else 1):
        candidate = f"{base}.{name}" + (f".{n}" if n > 1 else "")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError:
            break
    return tempfile.mkdtemp(prefix=f"{os.path.basename(base) or 'run'}.{name}.")


def refuse_checkpoint(path: str, what: str) -> None:
    """An output (a dump, a benchmark's JSON or plot) never replaces a graphc checkpoint
    that is there: `-o run/checkpoint.npz` would have put IR text over a training run. A
    checkpoint is known by what it holds, whatever its name: `graphc sample --checkpoint
    best.ckpt` reads one named so, and another zip file is an output like any other."""
    if os.path.isfile(path) and is_checkpoint(path):
        raise GraphcError(f"{what} {path!r} is a checkpoint (a .npz archive); give another "
                          "file name")


def is_checkpoint(path: str) -> bool:
    """Whether `path` is a zip archive holding a graphc checkpoint's header member (read
    from its directory of members only; an unreadable file is none: the write itself says
    what is wrong)."""
    from .checkpoint import META_KEY  # (checkpoint writes through this module)
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # numpy's zip archive
                return False
            with zipfile.ZipFile(fh) as zf:
                return META_KEY + ".npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return False


@contextmanager
def atomic_writer(path: str, before_replace=None):
    """A binary file to write `path` through, piece by piece: it is a fresh temporary file
    beside `path`, renamed over `path` when the block ends, and removed if it fails, so
    `path` is whole or untouched. `before_replace(tmp)`: called with the temporary's path
    once the data is on the disk, just before the rename (what it raises removes the
    temporary and leaves `path` as it is): a check of what the rename would replace, made
    as late as it can be, and the file written, read before another can take its name;
    called with None before a special file (below) is written in place. The temporary name
    is random and created exclusively (mkstemp: O_EXCL, so a symlink planted under a
    predictable name like PATH.tmp is never followed or truncated). The data reaches the
    disk before the rename and the rename before the writer returns (fsync of the file, then
    of its directory), so a crash of the machine leaves the old file or the new one, not an
    empty file under the new name. A process killed mid-write leaves its temporary behind:
    the next write of `path` removes it (remove_stale_temporaries). A device, a FIFO or a
    terminal (-o /dev/stdout, /dev/null, a shell's >(...)) is written in place, as open()
    would: a file renamed over it would replace the device (see _special)."""
    # a directory: the rename's own error says "Device or resource busy"; a read-only file:
    # open() would refuse, the rename would not ask and replace a file kept read-only
    check_writable(path)
    if _special(path):
        if before_replace is not None:
            before_replace(None)
        try:
            fh = open(path, "wb")
        except OSError as exc:  # -o /proc/x: "[Errno 2] ..." alone, as root
            raise GraphcError(f"cannot write {path}: {exc.strerror or exc}") from None
        try:
            with fh:
                yield fh
        except OSError as exc:  # -o /dev/full: name the file, not only the errno
            if exc.errno not in WRITE_ERRORS:
                raise
            raise GraphcError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:  # (before the writing: as open() would, the file as it was then)
        existing = os.lstat(path)
    except OSError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):  # a link: replaced
        existing = None
    remove_stale_temporaries(path)
    try:
        fd, tmp = _locked_temporary(directory, os.path.basename(path))
    except OSError as exc:  # its message names the temporary file, not the one asked for
        raise GraphcError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            # mkstemp makes the file 0600; give the output the permissions open() would
            # have: a new file's from the umask, an existing file's its own (a checkpoint
            # made private, 0600, stayed 0644 after the next save; one shared 0660 lost
            # its group), with its owner and group where this process may set them
            _keep_permissions(tmp, existing)
            if before_replace is not None:
                before_replace(tmp)
            # renamed while still locked, so that no other writer takes it for a stale one
            os.replace(tmp, path)
        finally:
            os.close(fd)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:  # name the file
            raise GraphcError(f"cannot write {path}: {exc.strerror or exc}; it is as it "
                              "was before") from None
        raise
    _sync_directory(directory)


def _keep_permissions(tmp: str, existing) -> None:
    """Give the temporary file `tmp` the permission bits (not set-id bits, which open()
    would not keep either) of the file it replaces (`existing`: its stat, or None: those of
    a new file, 0666 less the umask), and its owner and group where allowed (root; the
    group, for one of the user's own groups)."""
    if existing is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    if hasattr(os, "chown"):
        mine = os.stat(tmp)
        uid = existing.st_uid if existing.st_uid != mine.st_uid else -1
        gid = existing.st_gid if existing.st_gid != mine.st_gid else -1
        if uid != -1 or gid != -1:
            try:
                os.chown(tmp, uid, gid)
            except OSError:  # another's file this user may write: now the user's own
                try:
                    os.chown(tmp, -1, gid)
                except OSError:
                    pass
    os.chmod(tmp, existing.st_mode & 0o777)


def _locked_temporary(directory: str, name: str):
    """(fd, path) of a fresh temporary file for `name`, locked (flock) until it is closed:
    the kernel drops the lock when the process ends however it ends, which is how
    remove_stale_temporaries tells a killed writer's leftover from a live writer's file."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=directory)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # no locks there: written unlocked (remove_stale_temporaries
            if exc.errno not in NO_LOCKS:  # cannot lock it either, so removes none)
                os.close(fd)
                raise
            return fd, tmp
        # another writer may have removed it as stale before it was locked: make another
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temporaries(path: str) -> None:
    """Remove the temporaries atomic_writer left beside `path` when their processes were
    killed mid-write: regular files named as its temporaries for `path` whose lock no
    process holds. Nothing else is touched: no other name, no link, no file a live writer
    (another process writing `path` now) holds locked. Without flock (not POSIX), nothing."""
    if fcntl is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.") + r"[a-z0-9_]+"
                         + re.escape(TEMP_SUFFIX) + r"\Z")
    try:
        names = [n for n in os.listdir(directory) if pattern.match(n)]
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        try:  # O_NOFOLLOW: a link is not ours; O_NONBLOCK: a FIFO does not hang the open
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer's
            mine = os.fstat(fd)
            if stat.S_ISREG(mine.st_mode) and os.path.samestat(mine, os.lstat(full)):
                os.unlink(full)
        except OSError:
            pass
        finally:
            os.close(fd)


def _special(path: str) -> bool:
    """Not a regular file to replace: an existing file of another type (a device, a FIFO, a
    socket, a terminal: os.stat follows links to it), or a name that leads through a link
    to a process's descriptor (/dev/stdout -> /proc/self/fd/1, /dev/fd/N), whatever file
    the descriptor is: `graphc dump -o /dev/stdout > out.txt` reaches a regular file, and
    the rename would have replaced /dev/stdout itself. Decided by what the name is, not by
    where it is: a regular file under /dev/shm (a tmpfs, a common place for runs) was taken
    for a device for being under /dev, and written in place, so a full tmpfs or a kill
    mid-save left the previous checkpoint truncated."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
    except OSError:  # not there yet (or unreadable: the writer's own error says so)
        pass
    return _leads_to_a_descriptor(path)


# a process's descriptor as /proc shows it (/proc/self is a link to /proc/PID, and /dev/fd
# one to /proc/self/fd): a "magic" link, resolved by the kernel to the open file itself
_DESCRIPTOR = re.compile(r"/proc/[^/]+(/task/[^/]+)?/fd/[0-9]+\Z")


def _leads_to_a_descriptor(path: str) -> bool:
    """Whether `path`, its links followed one at a time, names a descriptor's link."""
    name = os.path.abspath(path)
    for _ in range(40):  # as many links as the kernel follows
        # the folders' links resolved (/dev/fd -> /proc/self/fd -> /proc/PID/fd), the
        # last name's not: resolving a descriptor's link gives the file it is open on
        name = os.path.join(os.path.realpath(os.path.dirname(name)), os.path.basename(name))
        if _DESCRIPTOR.match(name):
            return True
        try:
            target = os.readlink(name)
        except OSError:  # not a link (or not there)
            return False
        name = os.path.join(os.path.dirname(name), target)
    return False


_TAIL = 1 << 16  # bytes of a file's end that file_identity reads


def file_identity(path: str):
    """What tells the checkpoint now at `path` from another written there since (None: none
    there): its inode (a file renamed over it is another, but for the same bytes: see
    same_file, which compares two), its size, and a digest of its last
    64 KiB, since a file system may give a removed file's inode to the next one made. Not
    its modification time: a `touch` (a backup or sync tool) changes that alone, and the
    file touched is still the one that was read. The end tells a rewrite in one small read
    whatever the size: a checkpoint is an npz, ending with the zip's central directory,
    which holds each member's CRC-32 and time of writing, the header's (step, RNG state,
    history) last (all of it is read where it starts before the last 64 KiB)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    tail = None  # (unreadable, or not a regular file: inode and size alone)
    if not stat.S_ISREG(st.st_mode):
        # a FIFO's open() waits for a writer, a terminal's read() for a line: read nothing,
        # and the loader says there is no checkpoint there
        return st.st_dev, st.st_ino, st.st_size, tail
    try:
        # O_NONBLOCK: the path may have become a FIFO since the stat (no effect on a file)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            st = os.fstat(fd)  # the file read, if it was replaced since the stat
            if stat.S_ISREG(st.st_mode):
                start = max(0, st.st_size - _TAIL)
                fh.seek(start)
                end = fh.read(_TAIL)
                # a zip's central directory past the last 64 KiB (some 600 members: a
                # GPT of 17 layers and its AdamW moments) holds the first members' CRCs
                # before it: read from where the directory starts, or a file differing
                # only there had this one's digest
                directory = _central_directory(end, start)
                if directory is not None and directory < start:
                    fh.seek(directory)
                    end = fh.read(start - directory) + end
                tail = hashlib.sha1(end).digest()
    except OSError:
        pass
    return st.st_dev, st.st_ino, st.st_size, tail


def _central_directory(end: bytes, start: int) -> int | None:
    """Where the central directory of the zip whose bytes from offset `start` to its end
    are `end` begins (from its end record, or the zip64 one it points to), or None (not a
    zip's end, or a record past `end`)."""
    at = end.rfind(b"PK\x05\x06")
    if at < 0 or len(end) - at < 22:
        return None
    offset = int.from_bytes(end[at + 16:at + 20], "little")
    if offset == 0xFFFFFFFF and at >= 20 and end[at - 20:at - 16] == b"PK\x06\x07":
        record = int.from_bytes(end[at - 12:at - 4], "little") - start  # the zip64 record
        if record < 0 or end[record:record + 4] != b"PK\x06\x06":
            return None
        offset = int.from_bytes(end[record + 48:record + 56], "little")
    return offset


def same_file(recorded, now) -> bool:
    """Whether the file_identity `now` is of the file recorded as `recorded`: the same
    identity, or the same bytes renamed over it, as a sync or backup tool replaces a file
    (a copy written to a temporary and renamed: another inode, the same device, size and
    end). The end is what tells a rewrite in place already (the inode is the same then):
    for a checkpoint, the zip's central directory, each member's CRC-32, size and time of
    writing, and the header last (step, RNG state, every loss of the history), so another
    run's file differs there, and a copy of this one, replacing nothing of value, does
    not. Without the end (an unreadable file) the inode must match."""
    if recorded == now:
        return True
    if recorded is None or now is None or recorded[3] is None:
        return False
    (device, _, size, end), (device_now, _, size_now, end_now) = recorded, now
    return (device, size, end) == (device_now, size_now, end_now)


def written_since(path: str, checkpoint: str) -> bool:
    """Whether the file at `path` (a run's loss.png or sample.txt) was written no earlier
    than the checkpoint at `checkpoint` was: drawn from it by the run that saved it, not
    left by an earlier run of the same directory (one stopped after its last save, or
    with --sample-tokens 0, kept the older run's). False if either is not there."""
    try:
        return os.stat(path).st_mtime_ns >= os.stat(checkpoint).st_mtime_ns
    except OSError:
        return False


def read_error(path: str) -> str | None:
    """Why the file at `path` cannot be read (the errno's text: EACCES's 'Permission denied',
    EISDIR's for a directory there), or None if it can or is gone. file_identity reads past
    such a file (inode and size alone), so an identity that differs may mean only that: its
    caller asks this before it says the file was rewritten."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # (a FIFO: no wait)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    try:  # POSIX opens a directory for reading; read() would fail
        return os.strerror(errno.EISDIR) if stat.S_ISDIR(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


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


def stdout_error(exc: OSError) -> OSError:
    """A failed write to stdout as an OSError that says it was stdout's: `graphc sample >
    /dev/full` ended with "graphc: error: [Errno 28] No space left on device", naming no
    file."""
    return OSError(exc.errno, f"cannot write to stdout: {exc.strerror or exc}")


def discard_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (`| head`): the interpreter flushes
    it again at exit, and each later print would fail with "Broken pipe" too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def new_figure(size):
    """A matplotlib Figure of `size` inches drawn without pyplot: pyplot's figures live in
    its global state, and choosing its Agg backend (matplotlib.use) switched the backend of
    the caller's process, e.g. a notebook's, as a side effect of Trainer.fit."""
    from matplotlib.figure import Figure
    return Figure(figsize=size)


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG at `path`, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_atomically(path, buffer.getvalue())


@contextmanager
def exclusive_directory(path: str, what: str = "graphc train"):
    """Hold PATH/.graphc.lock (a POSIX record lock, see _take_lock_file) while a run writes
    into directory `path`: a second run given the same directory stops at once with one
    line, instead of replacing the first one's checkpoint at its next save (each checks at
    its start that no checkpoint exists, and both pass when they start together). The kernel
    releases the lock when the process ends, however it ends, so a killed run leaves nothing
    to clean up; the empty file stays (removing it would let a third run lock a file the
    second one no longer sees). Yields hold_again(), which the run calls before each write
    into `path`: this process's close of any descriptor of the lock file (a read of it, a
    shutil.copytree of the directory) released the lock silently, and a lock file removed or
    replaced (rm, a sync tool) left this process holding a file no other run opens.
    hold_again() says whether the lock is held: False where the file system has no locks
    (NoLockWarning, once), and the caller's own checks are all that protect the directory."""
    if fcntl is None:  # not POSIX: no advisory locks, no protection
        yield lambda: False
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:  # (a name too long, a file system that refuses): "[Errno 36]"
        # alone named neither the directory nor the option
        raise GraphcError(f"cannot create the directory {path} ({exc.strerror or exc}); "
                          "write into another directory (graphc train: --out)") from None
    lock = os.path.join(path, LOCK_NAME)
    with _FORK_GUARD:
        # [key, fd, warned]: hold_again may move it to a new lock file at `lock`; warned:
        # this block has said NoLockWarning (_warn_unlocked)
        key, fd, unlocked = _take_lock_file(path, lock, what)
        held = [key, fd, False]
    try:  # (a warning made an error, -W error, ends the block here: the finally lets go)
        if unlocked is not None:  # held in this process's _HELD alone: the run goes on
            _warn_unlocked(path, what, unlocked, held)
        os.ftruncate(held[1], 0)
        os.write(held[1], f"{os.getpid()}\n".encode())
        yield lambda: _hold_again(path, what, held)
    finally:
        with _FORK_GUARD:
            key, fd = held[:2]
            # only this process's own entry: a child forked inside the block holds none
            # (_drop_inherited_locks cleared them), and if it took the directory itself in an
            # inner block, that block removed its own entry (del raised KeyError here)
            if _HELD.get(key) == (os.getpid(), fd):
                del _HELD[key]
            os.close(fd)


def _take_lock_file(path: str, lock: str, what: str,
                    refusal=None) -> tuple[tuple[int, int], int, OSError | None]:
    """exclusive_directory's open and lock of `lock`, recorded in _HELD -> (key, fd,
    unlocked); on a refusal the descriptor is closed and one GraphcError line raised
    (`refusal(holder)`'s, where another process holds it, if given). Called holding
    _FORK_GUARD. `unlocked`: the OSError of a file system that has no locks (NO_LOCKS),
    else None; the file is recorded in _HELD all the same, since refusing this process's
    second take needs no kernel lock (without it, a second gc.Trainer of this process
    fitting into the directory silently replaced the first one's checkpoint, or the other
    way round).

    The lock is a POSIX record lock (fcntl F_SETLK, as lockf), not an flock: an flock
    belongs to the open file description, which a forked child's copy of the descriptor
    shares, so a child kept the directory locked until its at-fork hook let go of its copy,
    and another process's take in those few ms was refused. A record lock belongs to the
    process, and a child never inherits it (a C library's fork() too). Its rule in return:
    closing any descriptor of the file releases the process's lock, so this process never
    opens the file of a directory it holds: a second take here is refused before the open
    (and exclusive_directory's hold_again takes it again where the user's code did).

    A shared flock is taken too, before the record lock: a graphc before session 43 takes
    an exclusive flock (Linux keeps flocks and record locks apart), which the shared one
    refuses, and which refuses it. Shared flocks do not refuse each other, so a forked
    child's copy of one (r9's window, above) refuses no newer graphc, only an older one."""
    try:
        st = os.lstat(lock)
    except OSError:  # (none yet, or one the open below reports)
        pass
    else:
        if _HELD.get((st.st_dev, st.st_ino), (None,))[0] == os.getpid():
            raise _held_in_this_process(path, what)
    try:  # not following a link, and not blocking on a FIFO
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:  # a directory or a link there: Python's "[Errno 21]" alone said
        fd, problem = None, exc.strerror  # nothing of the file
    else:
        st = os.fstat(fd)
        problem = None if stat.S_ISREG(st.st_mode) else "not a plain file"
    if problem is not None:
        if fd is not None:
            os.close(fd)
        if not os.path.lexists(lock):  # nothing there to remove: the directory refused it
            raise GraphcError(f"cannot create {lock}, this run's lock file ({problem}); write "
                              "into another directory (graphc train: --out)")
        raise GraphcError(f"{lock} cannot be this run's lock file ({problem}); remove it, or "
                          "write into another directory (graphc train: --out)")
    key = (st.st_dev, st.st_ino)
    if _HELD.get(key, (None,))[0] == os.getpid():
        # (the file renamed back between the lstat and the open) this open is left open:
        # its close would release this process's lock, the holder's
        raise _held_in_this_process(path, what)
    unlocked = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # an older graphc's holds
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in NO_LOCKS:  # (kept open and in _HELD: see above)
                unlocked = exc
            # (what F_SETLK says "held" with, and flock: EWOULDBLOCK, which is EAGAIN)
            elif exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            else:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
                if holder in ("", str(os.getpid())):
                    # the holder took the lock and has not written its pid yet: the file is
                    # empty or still names its last holder, this process, which no longer
                    # holds it ("another training run (process <our own pid>)"; a holder in
                    # another pid namespace running as this pid is not known to us either)
                    holder = "not known yet: it has not written its pid"
                if refusal is not None:
                    raise refusal(holder) from None
                raise GraphcError(f"{path} is in use by another {what} (process {holder}); "
                                  "wait for it to end, or write into another directory "
                                  "(graphc train: --out)") from None
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = (os.getpid(), fd)
    return key, fd, unlocked


def _hold_again(path: str, what: str, held: list) -> bool:
    """Take the lock of `path` again on its held descriptor (`held`: [key, fd, warned]):
    silently where it is still held or free (a close of another descriptor of the file in
    this process released it), one GraphcError line where another process took the directory
    since, so that the caller writes nothing into it. Where PATH/.graphc.lock is no longer
    the file held (removed or replaced: another run may have created and locked a new one,
    and both wrote the checkpoint), the file there now is taken instead, `held` moved to it,
    or refused likewise. Nothing in a forked child, which holds no lock (its descriptor is
    /dev/null's, _drop_inherited_locks), or after the block's end. True where the lock is
    held now, False where it is not (a file system without locks: the write goes on)."""
    key, fd = held[:2]
    if _HELD.get(key) != (os.getpid(), fd):
        return False
    lock = os.path.join(path, LOCK_NAME)
    try:  # (lstat: _take_lock_file does not follow a link there either)
        st = os.lstat(lock)
        here = (st.st_dev, st.st_ino)
    except OSError:  # (removed; any other error, _take_lock_file's open reports)
        here = None
    if here != key:
        def refusal(holder):
            return GraphcError(
                f"{path} has been taken by another {what} (process {holder}) while this one "
                f"held it: its {LOCK_NAME} was removed or replaced, and that run locked the "
                "new one; nothing more is written into it: write into another directory "
                "(Trainer.fit: out; graphc train: --out)")
        # the whole directory removed or renamed: the save would create it again, as it
        # did before this check, so the lock file is created in it (a file there instead:
        # _take_lock_file's open says so in its line)
        with contextlib.suppress(OSError):
            os.makedirs(path, exist_ok=True)
        with _FORK_GUARD:
            new = _take_lock_file(path, lock, what, refusal)  # the old one kept on a refusal
            try:
                held[:2] = new[:2]
            finally:  # (a Ctrl-C here must not leave the old file locked by this process)
                try:
                    os.close(fd)  # the old file's: only its lock goes (a record lock is per file)
                finally:
                    _HELD.pop(key, None)
        fd, unlocked = new[1:]
        if unlocked is not None:  # (held in _HELD alone: the write goes on)
            _warn_unlocked(path, what, unlocked, held)
    else:
        unlocked = None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (a no-op where it is held)
        except OSError as exc:
            if exc.errno in NO_LOCKS:  # (a lock server gone since): the write goes on
                _warn_unlocked(path, what, exc, held)
                return False
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or \
                "not known yet"
            raise GraphcError(f"{path} has been taken by another {what} (process {holder}) "
                              f"while this one held it: this process closed a descriptor of "
                              f"its {LOCK_NAME} (reading or copying the directory does), "
                              "which let go of the lock; nothing more is written into it: "
                              "write into another directory (Trainer.fit: out; graphc train: "
                              "--out)") from None
    # re-taken: the file may name the process that held it in between
    mine = f"{os.getpid()}\n".encode()
    if os.pread(fd, 32, 0) != mine:
        os.ftruncate(fd, 0)
        os.pwrite(fd, mine, 0)
    return unlocked is None


def _warn_unlocked(path: str, what: str, exc: OSError, held: list) -> None:
    """The one line of a take (or re-take) of `path`'s lock that the file system refused
    for having no locks (NO_LOCKS): the run goes on unlocked; losing it to a missing lock
    facility (a raw "[Errno 37] No locks available") cost the user more than the lock
    protects. Once per exclusive_directory block (`held`'s flag, [2]): a re-take fails before
    every save once the locks are gone, and Python's registry of warnings shown does not
    hide the repeats (any warnings.catch_warnings() or filter change clears it, -W always)."""
    if held[2]:
        return
    held[2] = True
    warnings.warn(NoLockWarning(
        f"{path}: its file system does not lock files ({exc.strerror or exc}); this {what} "
        "goes on without the lock: another process's run writing into this directory at "
        "the same time is noticed only when a save finds a checkpoint it did not write"),
        stacklevel=2)


def _held_in_this_process(path: str, what: str) -> GraphcError:
    """The refusal of a second take of `path` by this process: each take is a holder, in one
    process too ("another process (pid N)" named the user's own); the holders here are
    gc.Trainers (graphc train hands its lock to its Trainer)."""
    return GraphcError(f"{path} is in use by another {what} in this process (another "
                       "gc.Trainer fitting into it); let its fit() end first, or write into "
                       "another directory (Trainer.fit: out; graphc train: --out)")


def _drop_inherited_locks() -> None:
    """In a forked child, let go of its copies of the lock descriptors. The child holds none
    of the parent's record locks, but a close of its copy would release the lock the child
    takes on that directory itself (a lock file's close releases all of the process's).
    /dev/null takes the descriptor's number rather than a close(), so
    that the exclusive_directory that opened it (still on the child's stack when it forked
    inside the block) closes /dev/null at its end, not a file the child opened since under
    the freed number. _HELD is cleared after: the child holds none of those locks, and a
    stale entry made its own child's hook dup2 /dev/null over a file the child had opened
    since under a number it had closed. Releases _FORK_GUARD, which the fork took."""
    try:
        if not _HELD:
            return
        try:
            devnull = os.open(os.devnull, os.O_RDONLY)
        except OSError:  # (out of descriptors) the lock matters more than the number
            for _, fd in _HELD.values():
                os.close(fd)
            return
        for _, fd in _HELD.values():
            os.dup2(devnull, fd, inheritable=False)
        os.close(devnull)
    finally:
        _HELD.clear()
        _FORK_GUARD.release()


if fcntl is not None and hasattr(os, "register_at_fork"):
    # a fork waits while another thread is between a lock file's open and its record in
    # _HELD, or between its removal and its close (_FORK_GUARD); it is not held across forks
    os.register_at_fork(before=_FORK_GUARD.acquire, after_in_parent=_FORK_GUARD.release,
                        after_in_child=_drop_inherited_locks)
