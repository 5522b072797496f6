"""Two runs never write into one directory, and a bad output path is found before the work
(session 14, after the review's leads): `graphc train` checked at its start that OUT held no
checkpoint, so two runs started together both passed and the second replaced the first's
checkpoint at its next save; `--out FILE` failed only at the first save, after compiling;
`bench --json/--plot` into a missing directory failed after the whole benchmark."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
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
                           r"graphc train in this process"):
            with exclusive_directory(str(tmp_path / "run")):
                pass
    with exclusive_directory(str(tmp_path / "run")):  # released at the end of the first
        assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"


@pytest.mark.parametrize("left_empty", [False, True])
def test_a_directory_another_process_has_just_taken_is_not_said_held_in_this_process(
        tmp_path, left_empty):
    """"in this process" was decided by the pid written in the lock file, which is the last
    holder's until a new holder writes its own after its flock (and which another pid
    namespace may share): this process, having held the directory, was told another holder
    was in this process while another process held it. The locks this process holds decide.
    And the holder is not known then: the message named this process's own pid (from the
    file) as "another training run", or "process ?" for a lock file not written yet."""
    run = str(tmp_path / "run")
    with exclusive_directory(run, "training run"):
        pass  # held and released: the lock file still names this process
    assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    if left_empty:  # as a lock file another process has just created
        (tmp_path / "run" / LOCK_NAME).write_text("")
    other = subprocess.Popen(  # takes the lock and has not written its pid yet
        [sys.executable, "-c", "import fcntl, os, sys, time; "
         f"fd = os.open({os.path.join(run, LOCK_NAME)!r}, os.O_RDWR); "
         "fcntl.lockf(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "locked\n"
        with pytest.raises(GraphcError) as caught:
            with exclusive_directory(run, "training run"):
                pass
    finally:
        other.kill()
        other.wait()
    message = str(caught.value)
    # the file still names this process, its last holder: never "another training run
    # (process <our own pid>)"
    assert f"process {os.getpid()}" not in message
    assert message == (f"{run} is in use by another training run (process not known yet: it "
                       "has not written its pid); wait for it to end, or write into another "
                       "directory (graphc train: --out)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")
def test_a_child_forked_while_a_directory_is_held_does_not_keep_it_locked(tmp_path):
    """A forked child's copy of the lock's descriptor shares its open file description, and
    with it the flock: a child that outlived the hold (a fork-started multiprocessing.Pool
    made in a Trainer's batches function) kept the directory locked, and this process's
    next fit into it was refused, naming this process's own pid. The child lets go of its
    copy at the fork, without unlocking the parent's."""
    run = str(tmp_path / "run")
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        with exclusive_directory(run, "training run"):
            child = os.fork()
            if child == 0:  # the child stays inside the block until told to end
                try:
                    os.write(up_w, b"u")
                    os.read(go_r, 1)
                finally:
                    os._exit(0)
            assert os.read(up_r, 1) == b"u"
            # the parent still holds it (an flock(LOCK_UN) in the child unlocked both)
            with pytest.raises(GraphcError, match="in use by another training run in this "
                               "process"):
                with exclusive_directory(run, "training run"):
                    pass
        with exclusive_directory(run, "training run"):  # released, the child alive
            assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        os.write(go_w, b"g")
        for fd in (up_r, up_w, go_r, go_w):
            os.close(fd)
    assert os.waitpid(child, 0)[1] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX's")
def test_a_child_holds_no_lock_before_its_fork_hook_runs(tmp_path):
    """s43: the lock was an flock, shared by a forked child's copy of the descriptor until
    the child's at-fork hook let go of it: a take by another holder in those few ms was
    refused (r9's race repro: up to 12 of 40). A fork made through the C library runs no
    hook, and leaves the child as it is in that window: it holds no lock now (a POSIX
    record lock is the process's, never inherited), and the directory is free once the
    holder lets go, the child alive."""
    import ctypes
    run = str(tmp_path / "run")
    go_r, go_w = os.pipe()
    try:
        with exclusive_directory(run, "training run"):
            child = ctypes.CDLL(None).fork()
            if child == 0:  # no at-fork hook ran: its copy of the descriptor is as inherited
                try:
                    os.read(go_r, 1)
                finally:
                    os._exit(0)
            assert child > 0
        with exclusive_directory(run, "training run"):  # "in use by another training run"
            assert (tmp_path / "run" / LOCK_NAME).read_bytes() == b"%d\n" % os.getpid()
    finally:
        os.write(go_w, b"g")
        for fd in (go_r, go_w):
            os.close(fd)
    assert os.waitpid(child, 0)[1] == 0


def _in_child(body):
    """fork; the child runs body() -> bytes and sends it back, or its error; -> what it sent."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            try:
                said = body()
            except BaseException as exc:  # (the parent's assertion shows it)
                said = f"{type(exc).__name__}: {exc}".encode()
            os.write(w, said)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        said = fh.read()
    assert os.waitpid(child, 0)[1] == 0
    return said


def test_a_forked_child_keeps_no_record_of_its_parents_locks(tmp_path):
    """r9: a child forked inside the block kept the parent's _HELD entry, and the at-fork
    hook dup2s /dev/null over every entry's descriptor. A child that closed its inherited
    descriptors and opened a file under the lock's old number had that file replaced by a
    read-only /dev/null in its own child: the grandchild's write failed with EBADF."""
    from graphc.files import _HELD
    run, log = str(tmp_path / "run"), str(tmp_path / "child.log")

    def reuse_the_number():
        os.close(lock_fd)  # (a daemon's closerange)
        opened = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        # the file under the lock's old number (the lowest free one in a small process; in
        # the suite's, a lower one may be free: put there, as a later open may put it)
        fd = opened if opened == lock_fd else os.dup2(opened, lock_fd)
        if opened != fd:
            os.close(opened)
        return _in_child(lambda: b"wrote %d" % os.write(fd, b"grandchild's line\n"))

    with exclusive_directory(run, "training run"):
        (_, lock_fd), = _HELD.values()
        assert _in_child(reuse_the_number) == b"wrote 18"
    assert open(log).read() == "grandchild's line\n"


def test_a_child_forked_in_the_block_may_take_the_directory_once_it_is_free(tmp_path):
    """r9: a child forked inside the block that took the same directory itself once the
    parent let go (its own copy is /dev/null) overwrote the parent's _HELD entry; its inner
    block deleted it, and leaving the inherited block raised KeyError."""
    run = str(tmp_path / "run")
    said_r, said_w = os.pipe()
    go_r, go_w = os.pipe()
    child = None
    try:
        with exclusive_directory(run, "training run"):
            child = os.fork()
            if child == 0:
                os.read(go_r, 1)  # the parent has let go
                with exclusive_directory(run, "training run"):
                    os.write(said_w, b"took it | ")
                os.write(said_w, b"left the inner block | ")
    except BaseException as exc:
        if child != 0:
            raise
        os.write(said_w, f"{type(exc).__name__}: {exc}".encode())
        os._exit(1)
    if child == 0:
        os.write(said_w, b"left the inherited block")
        os._exit(0)
    os.write(go_w, b"g")
    status = os.waitpid(child, 0)[1]
    os.close(said_w)
    with os.fdopen(said_r, "rb") as fh:
        assert fh.read() == b"took it | left the inner block | left the inherited block"
    assert status == 0
    for fd in (go_r, go_w):
        os.close(fd)


def test_a_fork_waits_while_another_thread_opens_the_lock(tmp_path, monkeypatch):
    """r9: the fork hook sees only the locks recorded in _HELD: a fork from another thread
    between the lock file's open and its record gave a child whose copy of the descriptor
    took the flock with the parent's (one open file description), unseen by the hook, and
    the directory stayed locked while that child lived. A fork now waits for that window."""
    import fcntl
    import threading
    import time
    from types import SimpleNamespace
    from graphc import files

    run = str(tmp_path / "run")
    forking, taken = threading.Event(), threading.Event()

    def slow_lockf(fd, how):  # the other thread, inside the window when the fork comes
        forking.wait()
        time.sleep(0.2)
        return fcntl.lockf(fd, how)

    monkeypatch.setattr(files, "fcntl", SimpleNamespace(
        lockf=slow_lockf, flock=fcntl.flock, LOCK_EX=fcntl.LOCK_EX, LOCK_SH=fcntl.LOCK_SH,
        LOCK_NB=fcntl.LOCK_NB))

    def hold_briefly():
        with exclusive_directory(run, "training run"):
            taken.set()

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    time.sleep(0.05)  # (the holder is in slow_lockf)
    up_r, up_w = os.pipe()
    go_r, go_w = os.pipe()
    forking.set()
    child = os.fork()
    if child == 0:  # its at-fork hook has run: it says so, and lives on until told
        try:
            os.write(up_w, b"u")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(up_r, 1) == b"u"
        holder.join()
        assert taken.is_set()
        monkeypatch.undo()
        with exclusive_directory(run, "training run"):  # the holder let go, the child lives
            pass
    finally:
        os.write(go_w, b"g")
        for fd in (up_r, up_w, go_r, go_w):
            os.close(fd)
        assert os.waitpid(child, 0)[1] == 0


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


def _fitting(batches, steps):
    """A Trainer of one 4x2 weight on `batches` (which the tests use to act between saves),
    saving at every step."""
    import graphc as gc
    return gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                      {"w": np.ones((4, 2), np.float32)}, gc.optim.SGD(lr=0.01), batches,
                      steps=steps, eval_every=1)


def _kept(trainer, run):
    """(s46) The end of the line of a save refused or failed at the trainer's step: its
    state is kept in RUN.stepN beside RUN, which holds it (checked here)."""
    kept = f"{run}.step{trainer.step}"
    arrays, meta = checkpoint.load_saved(os.path.join(kept, "checkpoint.npz"))
    assert meta["step"] == trainer.step
    for name, value in trainer.params.items():
        np.testing.assert_array_equal(arrays[f"param/{name}"], value)
    return (f"; this run's step {trainer.step} is saved in {kept} instead; to continue it, "
            f"trainer.fit({kept!r}) (in another process: trainer.resume({kept!r}) first)")


def _trainer(steps, lr=0.01):
    import graphc as gc
    x = np.ones((3, 4), np.float32)
    return gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                      {"w": np.ones((4, 2), np.float32)}, gc.optim.SGD(lr=lr),
                      lambda rng: (x,), steps=steps, checkpoint_meta={"lr": lr})


def test_a_second_trainer_in_this_process_is_told_another_trainer_holds_the_directory(
        tmp_path):
    """Two gc.Trainers of one process fitting into one directory: the second's error said
    the directory was in use by "another training run (process N)", N the user's own pid.
    It now says another gc.Trainer in this process holds it, and its checkpoint is kept."""
    import graphc as gc
    run, x, tried, fitting = str(tmp_path / "run"), np.ones((3, 4), np.float32), [], []
    second = _trainer(2)

    def batches(rng):  # the first trainer's data: the second fits while the first does
        if fitting and not tried:
            try:
                second.fit(run, progress=False)
                tried.append(None)
            except GraphcError as exc:
                tried.append(str(exc))
        return (x,)

    first = gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                       {"w": np.ones((4, 2), np.float32)}, gc.optim.SGD(lr=0.01), batches,
                       steps=3)
    fitting.append(True)
    first.fit(run, progress=False)
    assert tried == [f"{run} is in use by another training run in this process (another "
                     "gc.Trainer fitting into it); let its fit() end first, or write into "
                     "another directory (Trainer.fit: out; graphc train: --out)"]
    assert str(os.getpid()) not in tried[0]
    assert second.step == 0 and checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 3

_PROBE = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
          "try:\n    fcntl.{how}(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
          "except OSError:\n    print('held', flush=True)\n    sys.exit()\n"
          "os.ftruncate(fd, 0); os.write(fd, b'%d\\n' % os.getpid())\n"
          "print('taken', flush=True); {then}\n")


def _other_process(run, how="lockf", then="pass"):
    """Another process taking RUN's lock (`how`: lockf, as graphc does now, or flock, as a
    graphc before session 43 did) and doing `then` while it holds it. It writes its pid
    over the file's content, as graphc does (without the truncation, a holder's longer pid
    left its last digits: '2933\\n\\n' where this process's pid had one digit more)."""
    return subprocess.Popen([sys.executable, "-c", _PROBE.format(how=how, then=then),
                             os.path.join(run, LOCK_NAME)], stdout=subprocess.PIPE, text=True)


def test_a_lock_let_go_by_reading_the_lock_file_is_taken_again_at_the_next_save(tmp_path):
    """r4: a record lock is let go by this process's close of any descriptor of the file, so
    a user's code reading or copying the run directory during fit (a backup in a callback)
    silently freed it, and another run could take the directory and both write the
    checkpoint. fit takes it again before each save: silently where it is free."""
    import shutil
    run, x, seen = str(tmp_path / "run"), np.ones((3, 4), np.float32), []

    def batches(rng):  # the user's code, at each step: it backs the directory up
        if os.path.exists(os.path.join(run, "checkpoint.npz")) and len(seen) < 2:
            other = _other_process(run)  # after the last save: held
            seen.append(other.stdout.readline().strip())
            other.wait()
            shutil.copytree(run, str(tmp_path / f"backup{len(seen)}"))
        return (x,)
    trainer = _fitting(batches, steps=3)
    trainer.fit(run, progress=False)
    assert seen == ["held", "held"]  # the copy after the first save freed it: retaken
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 3
    assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_fit_writes_nothing_into_a_directory_another_run_took_after_this_one_let_go(
        tmp_path):
    """r4: after the user's code freed the lock (a read of the lock file), another run took
    the directory: the next save is refused in one line naming the directory and that
    run's pid, and the checkpoint on disk is the one saved before."""
    run, x, others = str(tmp_path / "run"), np.ones((3, 4), np.float32), []

    def batches(rng):
        if os.path.exists(os.path.join(run, "checkpoint.npz")) and not others:
            open(os.path.join(run, LOCK_NAME)).read()  # frees this process's lock
            others.append(_other_process(run, then="time.sleep(60)"))
            assert others[0].stdout.readline() == "taken\n"
        return (x,)
    trainer = _fitting(batches, steps=3)
    try:
        with pytest.raises(GraphcError) as caught:
            trainer.fit(run, progress=False)
        pid = others[0].pid
    finally:
        for other in others:
            other.kill()
            other.wait()
    assert str(caught.value) == (
        f"{run} has been taken by another training run (process {pid}) while this one held "
        f"it: this process closed a descriptor of its {LOCK_NAME} (reading or copying the "
        "directory does), which let go of the lock; nothing more is written into it: write "
        "into another directory (Trainer.fit: out; graphc train: --out)" + _kept(trainer, run))
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 1
    assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{pid}\n"


def test_a_graphc_before_session_43_and_a_newer_one_exclude_each_other(tmp_path):
    """r4: a graphc before session 43 held the directory with an exclusive flock, which
    Linux keeps apart from a record lock: each took a directory the other held. The newer
    one takes a shared flock too."""
    run = str(tmp_path / "run")
    os.makedirs(run)
    (tmp_path / "run" / LOCK_NAME).write_text("")
    old = _other_process(run, how="flock", then="time.sleep(60)")
    try:
        assert old.stdout.readline() == "taken\n"
        with pytest.raises(GraphcError) as caught:
            with exclusive_directory(run, "training run"):
                pass
    finally:
        old.kill()
        old.wait()
    assert str(caught.value) == (f"{run} is in use by another training run (process "
                                 f"{old.pid}); wait for it to end, or write into another "
                                 "directory (graphc train: --out)")
    with exclusive_directory(run, "training run"):
        older = _other_process(run, how="flock")
        assert older.stdout.readline() == "held\n"
        older.wait()


def test_fit_does_not_replace_a_checkpoint_another_run_wrote_after_the_resume(tmp_path):
    """Trainer.resume read OUT/checkpoint.npz, and fit() took OUT's lock only after the step
    was compiled: another run that trained on and saved in between (step 20) had its
    checkpoint replaced by this run's continuation of the older state (step 8), with no
    word. fit() now refuses a checkpoint that has changed since it was resumed."""
    run = str(tmp_path / "run")
    _trainer(5).fit(run, progress=False)
    b = _trainer(8)
    b.resume(run)  # reads step 5, then (in a real run) compiles for a while
    a = _trainer(20)
    a.resume(run)
    a.fit(run, progress=False)  # meanwhile another run trains on to step 20 and ends
    with pytest.raises(GraphcError, match=f"{run}/checkpoint.npz has been written by another "
                                          "run since this trainer resumed"):
        b.fit(run, progress=False)
    arrays, meta = checkpoint.load_saved(f"{run}/checkpoint.npz")
    assert meta["step"] == 20 and b.step == 5
    np.testing.assert_array_equal(arrays["param/w"], a.params["w"])
    b.resume(run)  # resumed again: its state is that run's, and it may go on
    b.steps = 22
    b.fit(run, progress=False)
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 22


def test_fit_replaces_a_resumed_checkpoint_only_touched_since(tmp_path):
    """The identity recorded at resume held the file's modification time: a `touch` (a backup
    or sync tool) of the checkpoint after Trainer.resume made fit() refuse it as written by
    another run. Inode, size and the file's end (the zip's central directory, with each
    member's CRC-32) tell a rewrite, not a touch."""
    run = str(tmp_path / "run")
    _trainer(5).fit(run, progress=False)
    b = _trainer(8)
    b.resume(run)
    st = os.stat(f"{run}/checkpoint.npz")
    os.utime(f"{run}/checkpoint.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b.fit(run, progress=False)
    arrays, meta = checkpoint.load_saved(f"{run}/checkpoint.npz")
    assert meta["step"] == 8
    np.testing.assert_array_equal(arrays["param/w"], b.params["w"])


def _another_runs_of_the_same_size(tmp_path, path) -> bytes:
    """The bytes of another run's checkpoint of the size of the one at `path`."""
    for k in range(2, 10):  # (its losses' digits vary)
        _trainer(5, lr=k / 100).fit(str(tmp_path / f"other{k}"), progress=False)
        new = open(tmp_path / f"other{k}" / "checkpoint.npz", "rb").read()
        if len(new) == os.path.getsize(path):
            return new
    raise AssertionError("no other run's checkpoint of the same size")


def _renamed_over(path, data) -> None:
    """`data` written to a temporary and renamed over `path`, as a sync tool replaces a
    file: another inode."""
    inode = os.stat(path).st_ino
    with open(path + ".sync-tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".sync-tmp", path)
    assert os.stat(path).st_ino != inode


def test_fit_replaces_its_checkpoint_a_sync_tool_renamed_over_with_the_same_bytes(tmp_path):
    """A sync or backup tool that replaces a file with a copy of it (written to a temporary,
    renamed over it: another inode, the same bytes) made fit()'s next save refuse the
    checkpoint as another run's, and the run was moved to RUN.stepN. The same bytes are
    the same checkpoint: the run goes on saving there. Another run's checkpoint of the same
    size renamed over it is still refused, and kept."""
    run, path = str(tmp_path / "run"), str(tmp_path / "run" / "checkpoint.npz")
    x, copied = np.ones((3, 4), np.float32), []

    def batches(rng):  # after the first save (eval_every=1), before the second
        if os.path.exists(path) and not copied:
            _renamed_over(path, open(path, "rb").read())
            copied.append(True)
        return (x,)
    trainer = _fitting(batches, steps=4)
    assert trainer.fit(run, progress=False) == 0
    assert copied == [True]
    arrays, meta = checkpoint.load_saved(path)
    assert meta["step"] == 4
    np.testing.assert_array_equal(arrays["param/w"], trainer.params["w"])
    assert os.listdir(tmp_path) == ["run"]

    run, path = str(tmp_path / "second"), str(tmp_path / "second" / "checkpoint.npz")
    _trainer(5).fit(run, progress=False)
    new = _another_runs_of_the_same_size(tmp_path, path)
    b = _trainer(8)
    b.resume(run)
    _renamed_over(path, new)
    with pytest.raises(GraphcError, match=f"{run}/checkpoint.npz has been written by another "
                                          "run since this trainer resumed"):
        b.fit(run, progress=False)
    assert open(path, "rb").read() == new


@pytest.mark.parametrize("layers", [2, 24])
def test_a_checkpoint_differing_before_its_last_64_kib_is_another_file(tmp_path, monkeypatch,
                                                                       layers):
    """Review of same_file (a copy renamed over the checkpoint is accepted where its size and
    the digest of its last 64 KiB match): the zip's central directory, which holds every
    member's CRC-32, outgrows 64 KiB at some 600 members (a GPT of 24 layers with its AdamW
    moments: 877), and a checkpoint differing only in its first parameter, with the same
    header, written in the same two seconds (the zip's times), had the same digest: taken
    for the same file, it would have been replaced. The whole directory is read now; a
    byte-identical copy is still the same file."""
    import time

    from graphc.files import file_identity, same_file
    names = ["wte"] + [f"h.{i}.{p}" for i in range(layers) for p in (
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")]
    rng = np.random.default_rng(0)
    arrays = {f"{kind}/transformer.{n}": rng.standard_normal(4).astype(np.float32)
              for kind in ("param", "adam_m", "adam_v") for n in names}
    meta = {"step": 7, "history": [[1, 2.5]]}
    monkeypatch.setattr(time, "time", lambda: 1.7e9)  # (one time of writing for both)
    a, b, copy = (str(tmp_path / f"{x}.npz") for x in "abc")
    checkpoint.save(a, arrays, meta)
    checkpoint.save(b, {**arrays, "param/transformer.wte": -arrays["param/transformer.wte"]},
                    meta)
    shutil.copyfile(a, copy)
    assert os.path.getsize(a) == os.path.getsize(b)
    assert not same_file(file_identity(a), file_identity(b))
    assert same_file(file_identity(a), file_identity(copy))


def test_fit_refuses_a_resumed_checkpoint_rewritten_with_its_inode_size_and_time(tmp_path):
    """Another run's checkpoint at the same inode (a file system reuses a removed file's
    inode), of the same size and with the same modification time, is still another file:
    refused. (Here the other run's bytes are written into the file in place.)"""
    run, path = str(tmp_path / "run"), str(tmp_path / "run" / "checkpoint.npz")
    _trainer(5).fit(run, progress=False)
    new = _another_runs_of_the_same_size(tmp_path, path)
    b = _trainer(8)
    b.resume(run)
    st = os.stat(path)
    assert len(new) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with pytest.raises(GraphcError, match=f"{run}/checkpoint.npz has been written by another "
                                          "run since this trainer resumed"):
        b.fit(run, progress=False)
    assert open(path, "rb").read() == new  # not replaced


def test_fit_says_a_resumed_checkpoint_it_cannot_read_cannot_be_read(tmp_path, monkeypatch):
    """A checkpoint made unreadable after Trainer.resume (chmod 000: EACCES) has no digest of
    its end, so its identity differed and fit() said it had been written by another run. It
    now says it cannot read it, with the errno's text and the path. (Root reads past chmod
    000: os.open is refused by a mock, and a directory put at the path is read by none.)"""
    import errno
    run = str(tmp_path / "run")
    path = f"{run}/checkpoint.npz"
    _trainer(5).fit(run, progress=False)
    b = _trainer(8)
    b.resume(run)
    real_open = os.open

    def refused(name, *args, **kwargs):
        if os.fspath(name) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(GraphcError) as caught:
        b.fit(run, progress=False)
    assert str(caught.value) == (
        f"cannot read checkpoint {path!r}: Permission denied; fit() does not replace a "
        "checkpoint it cannot check: make it readable, or fit into another directory")
    monkeypatch.setattr(os, "open", real_open)
    assert checkpoint.load_saved(path)[1]["step"] == 5 and b.step == 5  # kept
    os.replace(path, f"{run}/kept.npz")
    os.mkdir(path)
    with pytest.raises(GraphcError, match=f"cannot read checkpoint {path!r}: Is a directory;"):
        b.fit(run, progress=False)
    os.rmdir(path)
    os.replace(f"{run}/kept.npz", path)
    b.fit(run, progress=False)  # readable again, the same file: fit() goes on
    assert checkpoint.load_saved(path)[1]["step"] == 8


def test_a_fifo_as_the_checkpoint_is_no_checkpoint_at_once(
        tmp_path, text_file, capsys):  # noqa: F811
    """file_identity, which resume calls before the loader's own checks, open()ed the path to
    digest its end: a FIFO there (given, or left as OUT/checkpoint.npz) blocked for good
    waiting for a writer. It reads regular files only; the loader says the path is a FIFO
    (it said "no checkpoint at" the path, which is there)."""
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "checkpoint.npz")

    def hung(signum, frame):  # (pytest's Failed: not an OSError file_identity would catch)
        pytest.fail("resume blocked on the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)  # a bound for a hang only: both answer in seconds
    try:
        with pytest.raises(checkpoint.CheckpointError) as caught:
            _trainer(2).resume(str(run))
        said = f"checkpoint {str(run / 'checkpoint.npz')!r} is a FIFO, not a checkpoint file"
        assert str(caught.value) == said
        assert train(tmp_path, text_file, "--steps", "2", "--resume") == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert error_line(capsys) == f"graphc: error: {said}"


def test_graphc_train_resume_holds_out_before_it_reads_the_checkpoint(
        tmp_path, text_file, capsys, monkeypatch):  # noqa: F811
    """`graphc train --resume` read the checkpoint first, compiled, and took OUT's lock in
    fit(): another run could write a newer checkpoint in between, which this one replaced.
    Another run trying OUT as the checkpoint is read is now refused."""
    import graphc.train
    assert train(tmp_path, text_file, "--steps", "2") == 0
    out = str(tmp_path / "run")
    tried = []
    real_load = graphc.train.checkpoint.load

    def load_while_another_run_tries(path, *args, **kwargs):
        try:  # what a second `graphc train --out OUT` does at its start
            with exclusive_directory(out, "training run"):
                tried.append("another run got OUT")
        except GraphcError as exc:
            tried.append(str(exc))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(graphc.train.checkpoint, "load", load_while_another_run_tries)
    assert train(tmp_path, text_file, "--steps", "4", "--resume") == 0
    assert len(tried) == 1 and tried[0].startswith(f"{out} is in use by another training run")
    assert checkpoint.load_saved(f"{out}/checkpoint.npz")[1]["step"] == 4
    with exclusive_directory(out):  # let go when the run ended
        pass


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


def test_fit_does_not_replace_a_checkpoint_another_run_saved_while_the_lock_was_let_go(tmp_path):
    """(review r7) a user's callback read the lock file, which lets go of the POSIX lock;
    another run took the directory, saved its steps and ended before this run's next save,
    which took the free lock again and replaced that run's checkpoint. The save now refuses
    as fit's start does: the file is not the one this trainer saved."""
    run = str(tmp_path / "run")
    other = f"""
import sys, numpy as np; sys.path.insert(0, {os.getcwd()!r})
import graphc as gc
t = gc.Trainer(lambda p, b: gc.mean((b[0] @ p['w']) ** 2), {{'w': np.ones((4, 2), np.float32)}},
               gc.optim.SGD(lr=0.01), lambda rng: (np.ones((3, 4), np.float32),), steps=50,
               eval_every=50)
t.resume({run!r} + '/checkpoint.npz'); t.steps = t.step + 40
t.fit({run!r}, progress=False)
"""
    done = []

    def batches(rng):
        if os.path.exists(os.path.join(run, "checkpoint.npz")) and not done:
            with open(os.path.join(run, LOCK_NAME)) as f:  # the user's code: lets go of it
                f.read()
            done.append(subprocess.run([sys.executable, "-c", other], capture_output=True,
                                       text=True, timeout=300))
        return (np.ones((3, 4), np.float32),)
    trainer = _fitting(batches, steps=3)
    with pytest.raises(GraphcError, match=r"checkpoint\.npz has been written by another run "
                                          r"since this trainer resumed \(or saved\) it"):
        trainer.fit(run, progress=False)
    assert done and done[0].returncode == 0, done[0].stderr[-500:]
    assert checkpoint.load_saved(os.path.join(run, "checkpoint.npz"))[1]["step"] == 41


_HOLDER = ("import sys, time\nfrom graphc.files import exclusive_directory\n"
           "with exclusive_directory(sys.argv[1], 'training run'):\n"
           "    print('taken', flush=True)\n    time.sleep(60)\n")


def _remove_or_replace(lock, how):
    """The lock file gone from under its holder: removed (rm), or replaced by another file
    (a sync tool's rename)."""
    if how == "remove":
        os.remove(lock)
    elif how == "remove the directory":  # rm -rf OUT: the next save creates it again
        shutil.rmtree(os.path.dirname(lock))
    elif how == "rename the directory":  # mv OUT OUT.old
        os.rename(os.path.dirname(lock), os.path.dirname(lock) + ".old")
    else:
        with open(lock + ".new", "w") as fh:
            fh.write("")
        os.replace(lock + ".new", lock)


@pytest.mark.parametrize("how", ["remove", "replace"])
def test_fit_writes_nothing_once_another_run_locked_a_new_lock_file(tmp_path, how):
    """(s44) OUT/.graphc.lock removed or replaced while a run trained: the run still held
    its lock on the old file, which no one opens any more, so another run created (or
    found) a new one, locked it, and both wrote the checkpoint. The save now sees that the
    file at the path is not the one held, and, the new one being held by that run, refuses
    in one line and writes nothing."""
    run, x, others = str(tmp_path / "run"), np.ones((3, 4), np.float32), []
    lock = os.path.join(run, LOCK_NAME)

    def batches(rng):
        if os.path.exists(os.path.join(run, "checkpoint.npz")) and not others:
            _remove_or_replace(lock, how)
            others.append(subprocess.Popen([sys.executable, "-c", _HOLDER, run],
                                           stdout=subprocess.PIPE, text=True))
            assert others[0].stdout.readline() == "taken\n"
        return (x,)
    trainer = _fitting(batches, steps=3)
    try:
        with pytest.raises(GraphcError) as caught:
            trainer.fit(run, progress=False)
        pid = others[0].pid
        assert open(lock).read() == f"{pid}\n"  # (read while that run holds it)
    finally:
        for other in others:
            other.kill()
            other.wait()
    assert str(caught.value) == (
        f"{run} has been taken by another training run (process {pid}) while this one held "
        f"it: its {LOCK_NAME} was removed or replaced, and that run locked the new one; "
        "nothing more is written into it: write into another directory (Trainer.fit: out; "
        "graphc train: --out)" + _kept(trainer, run))
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 1
    with exclusive_directory(run):  # nothing left held
        pass


@pytest.mark.parametrize("how", ["remove", "replace", "remove the directory",
                                 "rename the directory"])
def test_a_removed_or_replaced_lock_file_no_run_took_is_locked_at_the_next_save(tmp_path,
                                                                                 how):
    """(s44) with no other run there, the save takes the file now at the path (creating it
    where it was removed): another run is kept out of the directory again, and fit goes on."""
    run, x, seen = str(tmp_path / "run"), np.ones((3, 4), np.float32), []
    lock = os.path.join(run, LOCK_NAME)

    def batches(rng):
        saved = os.path.join(run, "checkpoint.npz")
        if os.path.exists(saved) and not seen:
            seen.append(checkpoint.load_saved(saved)[1]["step"])
            _remove_or_replace(lock, how)
        elif len(seen) == 1 and os.path.exists(saved) and \
                checkpoint.load_saved(saved)[1]["step"] > seen[0]:
            other = _other_process(run)  # after the next save: the new file is held
            seen.append(other.stdout.readline().strip())
            other.wait()
        return (x,)
    trainer = _fitting(batches, steps=4)
    trainer.fit(run, progress=False)
    assert seen == [1, "held"]
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 4
    assert (tmp_path / "run" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    with exclusive_directory(run):  # let go when fit ended
        pass


def test_a_file_put_where_the_run_directory_was_is_one_line_at_the_next_save(tmp_path):
    """(s44, r5) `rm -rf OUT; touch OUT` during fit: the save's re-creation of the directory
    raised a raw FileExistsError; the lock file's one line says it instead, nothing written."""
    run, x, done = str(tmp_path / "run"), np.ones((3, 4), np.float32), []

    def batches(rng):
        if os.path.exists(os.path.join(run, "checkpoint.npz")) and not done:
            done.append(shutil.rmtree(run))
            open(run, "w").close()
        return (x,)
    trainer = _fitting(batches, steps=3)
    with pytest.raises(GraphcError) as caught:
        trainer.fit(run, progress=False)
    assert str(caught.value) == (
        f"cannot create {run}/{LOCK_NAME}, this run's lock file (Not a directory); write "
        "into another directory (graphc train: --out)" + _kept(trainer, run))
    assert os.path.isfile(run) and os.path.getsize(run) == 0


def _copying_in(theirs, ckpt, x):
    """Batches of x that first copy checkpoint `theirs` to `ckpt` once its directory exists
    and before this run's first save there: another process's run, or a copy, writing it."""
    def batches(rng):
        if os.path.isdir(os.path.dirname(ckpt)) and not os.path.exists(ckpt):
            shutil.copy(theirs, ckpt)
        return (x,)
    return batches


def _no_locks(monkeypatch, number, calls=("flock", "lockf")):
    """fcntl's `calls` fail as on a file system without locks (NFS without its lock daemon)."""
    import fcntl

    def refuse(*args):
        raise OSError(number, os.strerror(number))
    for name in calls:
        monkeypatch.setattr(fcntl, name, refuse)


def _unlocked_warnings(record):
    from graphc.files import NoLockWarning
    return [str(w.message) for w in record if issubclass(w.category, NoLockWarning)]


@pytest.mark.parametrize("name", ["ENOLCK", "EOPNOTSUPP", "ENOSYS"])
def test_a_file_system_without_locks_is_written_unlocked_with_one_warning(
        tmp_path, monkeypatch, name):
    """(s45) flock/lockf failing with ENOLCK (or EOPNOTSUPP, ENOSYS) raised a raw "[Errno 37]
    No locks available" from the run lock, losing the run; the run goes on unlocked, with
    one warning naming the directory, and its saves (atomic_writer's locked temporaries) too."""
    import errno
    from graphc.files import write_atomically
    number = getattr(errno, name)
    _no_locks(monkeypatch, number)
    run = str(tmp_path / "run")
    with pytest.warns(UserWarning) as record:
        with exclusive_directory(run, "training run") as hold_again:
            hold_again()  # (before each save: nothing more to take, nothing more said)
            write_atomically(os.path.join(run, "checkpoint.npz"), b"saved")
    assert _unlocked_warnings(record) == [
        f"{run}: its file system does not lock files ({os.strerror(number)}); this training "
        "run goes on without the lock: another process's run writing into this directory at "
        "the same time is noticed only when a save finds a checkpoint it did not write"]
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == b"saved"
    assert sorted(os.listdir(run)) == [LOCK_NAME, "checkpoint.npz"]  # no temporary left


def test_graphc_train_and_resume_on_a_file_system_without_locks(
        tmp_path, text_file, capsys, monkeypatch):  # noqa: F811
    """`graphc train --out DIR` (and --resume, which takes the lock before reading) on a file
    system without locks: trained and saved, one warning each, no error."""
    import errno
    from graphc import cli
    _no_locks(monkeypatch, errno.ENOLCK)
    out = str(tmp_path / "run")
    for extra in (["--steps", "2"], ["--steps", "4", "--resume"]):
        with pytest.warns(UserWarning) as record:
            assert train(tmp_path, text_file, *extra) == 0
        said = _unlocked_warnings(record)
        assert len(said) == 1 and said[0].startswith(f"{out}: its file system does not lock")
        assert "error" not in capsys.readouterr().err
    assert checkpoint.load_saved(f"{out}/checkpoint.npz")[1]["step"] == 4
    from graphc.files import NoLockWarning
    line = cli._format_warning(said[0], NoLockWarning, "files.py", 1)
    assert line.startswith(f"graphc: warning: {out}: ") and line.count("\n") == 1


@pytest.mark.parametrize("filters", ["default", "always", "catch_warnings"])
def test_locks_lost_during_fit_let_the_saves_go_on_with_one_warning(
        tmp_path, monkeypatch, filters):
    """The directory locked at fit's start, its file system's locks gone since (a lock
    daemon stopped): the re-take before each save raised the raw ENOLCK; it warns once.
    (r2) Once per run, not once per save hidden by Python's registry of warnings shown: the
    user's "always" filter, or a warnings.catch_warnings() between saves (which clears the
    registry; libraries do it), showed it at every save after the first."""
    import errno
    import warnings
    run, x = str(tmp_path / "run"), np.ones((3, 4), np.float32)

    def batches(rng):
        if os.path.exists(os.path.join(run, "checkpoint.npz")):
            _no_locks(monkeypatch, errno.ENOLCK, ["lockf"])
        if filters == "catch_warnings":
            with warnings.catch_warnings():
                pass
        return (x,)
    with pytest.warns(UserWarning) as record:  # (records every warning: no registry)
        if filters == "always":
            warnings.simplefilter("always")
        _fitting(batches, steps=6).fit(run, progress=False)
    assert len(_unlocked_warnings(record)) == 1
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 6


def test_a_second_trainer_of_this_process_is_refused_without_locks(tmp_path, monkeypatch):
    """(r2) On a file system without locks the take that failed with ENOLCK recorded nothing,
    so the in-process check, which needs no kernel lock, went too: a second gc.Trainer of
    this process fitted into the directory while the first was in its fit, and the first
    one's next save replaced its checkpoint without a word. It is refused as with locks."""
    import errno
    _no_locks(monkeypatch, errno.ENOLCK)
    run, x, said = str(tmp_path / "run"), np.ones((3, 4), np.float32), []

    def batches(rng):
        if os.path.isdir(run) and not said:  # (inside fit: not the Trainer's first draw)
            with pytest.raises(GraphcError) as caught:
                _fitting(lambda rng: (x,), steps=5).fit(run, progress=False)
            said.append(str(caught.value))
        return (x,)
    with pytest.warns(UserWarning) as record:
        _fitting(batches, steps=2).fit(run, progress=False)
    assert said == [f"{run} is in use by another training run in this process (another "
                    "gc.Trainer fitting into it); let its fit() end first, or write into "
                    "another directory (Trainer.fit: out; graphc train: --out)"]
    assert len(_unlocked_warnings(record)) == 1
    assert checkpoint.load_saved(f"{run}/checkpoint.npz")[1]["step"] == 2
    with pytest.warns(UserWarning), exclusive_directory(run):  # let go when fit ended
        pass


def test_a_checkpoint_another_run_wrote_during_fit_is_not_replaced_without_locks(
        tmp_path, monkeypatch):
    """(r2) Without locks nothing kept another process's run out of the directory, and a
    save replaced a checkpoint that appeared during fit (fit refuses one only at its start):
    the save refuses a checkpoint this trainer neither resumed nor wrote, in one line. (s46)
    It keeps this run's state too: saved in a fresh directory beside OUT, which the line
    names with the call that continues it (the trainer also keeps it). With locks (the
    other tests) the lock refuses that run instead."""
    import errno
    _no_locks(monkeypatch, errno.ENOLCK)
    run, x = str(tmp_path / "run"), np.ones((3, 4), np.float32)
    ckpt, kept = os.path.join(run, "checkpoint.npz"), str(tmp_path / "run.step1")
    with pytest.warns(UserWarning):
        _fitting(lambda rng: (x,), steps=4).fit(str(tmp_path / "other"), progress=False)
    theirs = (tmp_path / "other" / "checkpoint.npz").read_bytes()

    # another process's run saves into `run` before this one's first save
    trainer = _fitting(_copying_in(tmp_path / "other" / "checkpoint.npz", ckpt, x), steps=3)
    with pytest.warns(UserWarning), pytest.raises(GraphcError) as caught:
        trainer.fit(run, progress=False)
    assert str(caught.value) == (
        f"{ckpt} has been written by another run during this fit (its file system has no "
        "locks to keep that run out); fit() does not replace it; this run's step 1 is saved "
        f"in {kept} instead; to continue it, trainer.fit({kept!r}) (in another process: "
        f"trainer.resume({kept!r}) first)")
    assert open(ckpt, "rb").read() == theirs  # the other run's, kept
    assert trainer.step == 1
    arrays, meta = checkpoint.load_saved(os.path.join(kept, "checkpoint.npz"))
    assert meta["step"] == 1
    np.testing.assert_array_equal(arrays["param/w"], trainer.params["w"])
    with pytest.warns(UserWarning):  # as the line says
        assert trainer.fit(kept, progress=False) == 0
    arrays, meta = checkpoint.load_saved(os.path.join(kept, "checkpoint.npz"))
    assert meta["step"] == 3
    straight = _fitting(lambda rng: (x,), steps=3)  # the run not stopped: the same weights
    with pytest.warns(UserWarning):
        straight.fit(str(tmp_path / "straight"), progress=False)
    np.testing.assert_array_equal(arrays["param/w"], straight.params["w"])


@pytest.mark.parametrize("temporary", ["writable", "refused"])
def test_a_run_kept_from_a_refused_save_goes_to_the_temporary_directory_if_need_be(
        tmp_path, monkeypatch, temporary):
    """(s46) Where OUT's parent refuses the fresh directory for the refused save's state
    (read-only, full: os.mkdir mocked, root writing through modes), it goes to one in the
    system's temporary directory; where that is refused too, the line says that the state
    could not be saved and why (the trainer keeps it)."""
    import errno
    import tempfile
    _no_locks(monkeypatch, errno.ENOLCK)
    run, x = str(tmp_path / "out" / "run"), np.ones((3, 4), np.float32)
    ckpt, temp = os.path.join(run, "checkpoint.npz"), tmp_path / "temp"
    temp.mkdir()
    with pytest.warns(UserWarning):
        _fitting(lambda rng: (x,), steps=4).fit(str(tmp_path / "other"), progress=False)
    real_mkdir = os.mkdir

    def mkdir(name, *args, **kwargs):  # OUT's siblings refused, and the temporary's too
        if os.fspath(name).startswith(run + ".") or temporary == "refused" and \
                os.fspath(name).startswith(str(temp)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), name)
        return real_mkdir(name, *args, **kwargs)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    trainer = _fitting(_copying_in(tmp_path / "other" / "checkpoint.npz", ckpt, x), steps=3)
    with pytest.warns(UserWarning), pytest.raises(GraphcError) as caught:
        trainer.fit(run, progress=False)
    start = (f"{ckpt} has been written by another run during this fit (its file system has "
             "no locks to keep that run out); fit() does not replace it")
    if temporary == "refused":
        assert str(caught.value) == (
            f"{start}; this run's step 1 could not be saved elsewhere (Read-only file "
            "system): this trainer keeps its state: fit it into another directory")
        assert os.listdir(temp) == [] and os.listdir(tmp_path / "out") == ["run"]
        return
    [kept] = os.listdir(temp)
    assert kept.startswith("run.step1.")
    kept = str(temp / kept)
    assert str(caught.value).startswith(f"{start}; this run's step 1 is saved in {kept} "
                                        "instead; to continue it, trainer.fit(")
    arrays, meta = checkpoint.load_saved(os.path.join(kept, "checkpoint.npz"))
    assert meta["step"] == 1
    np.testing.assert_array_equal(arrays["param/w"], trainer.params["w"])


def _copied_in_at(monkeypatch, step, source, target):
    """Another run's checkpoint `source` copied over `target` (shutil.copy, which takes no
    lock: another process's run on a file system without locks, or a sync tool) when the
    trainer is at `step`, before its next step."""
    from graphc.trainer import Trainer
    train_step, done = Trainer.train_step, []

    def step_copying(self, *args, **kwargs):
        if self.step == step and not done:
            done.append(shutil.copy(source, target))
        return train_step(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "train_step", step_copying)
    return done


@pytest.mark.parametrize("locks", [False, True])
@pytest.mark.parametrize("when", ["before the first save", "after a save"])
def test_graphc_train_keeps_its_run_beside_a_checkpoint_another_run_wrote(
        tmp_path, text_file, capsys, monkeypatch, locks, when):  # noqa: F811
    """(s46) `graphc train` whose save found --out's checkpoint written by another process
    (a run on a file system without locks; with locks, a copy that takes none) refused to
    replace it, then exited 2 with advice naming the Python API (trainer.resume), and every
    step since its last save was lost. The other checkpoint stays untouched, this run's
    state is saved in a fresh directory beside --out, and the one line names it and the
    options that continue it; continued so, the run ends where one never stopped ends, bit
    for bit. With locks a copy before the first save was replaced without a word."""
    import errno
    import warnings
    if not locks:
        _no_locks(monkeypatch, errno.ENOLCK)
    warnings.simplefilter("ignore", UserWarning)  # (NoLockWarning: its own tests)
    steps = ["--steps", "6", "--eval-every", "2"]
    assert train(tmp_path, text_file, "--steps", "2", "--seed", "7", out="other") == 0
    theirs = (tmp_path / "other" / "checkpoint.npz").read_bytes()
    out, kept = tmp_path / "run", tmp_path / "run.step4"
    (tmp_path / "run.step4").mkdir()  # taken: never used, nor what is in it
    (tmp_path / "run.step4" / "checkpoint.npz").write_bytes(b"mine")
    kept = tmp_path / "run.step4.2"
    if when == "before the first save":  # (saves at steps 2, 4, 6)
        kept = tmp_path / "run.step2"
    done = _copied_in_at(monkeypatch, 1 if when == "before the first save" else 3,
                         str(tmp_path / "other" / "checkpoint.npz"), str(out / "checkpoint.npz"))
    capsys.readouterr()
    assert train(tmp_path, text_file, *steps) == 2
    assert done
    how = ("by another run during this fit (its file system has no locks to keep that run "
           "out)" if not locks else "during this fit by a program that does not take its "
           "directory's .graphc.lock (a copy, a sync tool)")
    if when == "after a save":
        how = "by another run since this trainer resumed (or saved) it"
    step = 2 if when == "before the first save" else 4
    assert error_line(capsys) == (
        f"graphc: error: {out}/checkpoint.npz has been written {how}; graphc train does not "
        f"replace it; this run's step {step} is saved in {kept} instead; to continue it, run "
        f"the same command with --out {kept} --resume")
    assert (out / "checkpoint.npz").read_bytes() == theirs
    assert (tmp_path / "run.step4" / "checkpoint.npz").read_bytes() == b"mine"
    assert checkpoint.load_saved(str(kept / "checkpoint.npz"))[1]["step"] == step
    monkeypatch.undo()
    if not locks:
        _no_locks(monkeypatch, errno.ENOLCK)
    assert train(tmp_path, text_file, *steps, "--resume", out=kept.name) == 0
    assert train(tmp_path, text_file, *steps, out="straight") == 0
    mine, meta = checkpoint.load_saved(str(kept / "checkpoint.npz"))
    straight, expected = checkpoint.load_saved(str(tmp_path / "straight" / "checkpoint.npz"))
    assert meta["step"] == 6 and meta["history"] == expected["history"]
    assert mine.keys() == straight.keys()
    for name in straight:
        np.testing.assert_array_equal(mine[name], straight[name])


@pytest.mark.parametrize("resume", [True, False])
def test_graphc_train_refused_at_fit_start_names_its_options(
        tmp_path, text_file, capsys, monkeypatch, resume):  # noqa: F811
    """(s46) `graphc train --resume` on a file system without locks, whose checkpoint another
    process's run rewrote between the read and the start of training (or, without
    --resume, wrote after the command's own check): the refusal named the Python API
    (trainer.resume). It names the command's options, and keeps nothing beside --out: no
    step was trained, the state is the checkpoint as it was read (or the fresh model)."""
    import errno
    import warnings

    from graphc.trainer import Trainer
    _no_locks(monkeypatch, errno.ENOLCK)
    warnings.simplefilter("ignore", UserWarning)
    assert train(tmp_path, text_file, "--steps", "2", "--seed", "7", out="other") == 0
    if resume:
        assert train(tmp_path, text_file, "--steps", "2") == 0
    theirs = (tmp_path / "other" / "checkpoint.npz").read_bytes()
    ckpt, fit = tmp_path / "run" / "checkpoint.npz", Trainer.fit

    def fit_after_a_rewrite(self, *args, **kwargs):
        ckpt.parent.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "other" / "checkpoint.npz", ckpt)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "fit", fit_after_a_rewrite)
    capsys.readouterr()
    assert train(tmp_path, text_file, "--steps", "4", *["--resume"][:resume]) == 2
    assert error_line(capsys) == (
        f"graphc: error: {ckpt} has been written by another run since this trainer resumed "
        "(or saved) it; graphc train does not replace it: run the same command again, which "
        "resumes it as it is now, or train into another --out" if resume else
        f"graphc: error: {ckpt} already exists, from another run; graphc train does not "
        "replace it: pass --resume to continue it or --out to train into another directory")
    assert ckpt.read_bytes() == theirs
    assert sorted(os.listdir(tmp_path)) == ["other", "run", "text.txt"]


@pytest.mark.parametrize("failure", ["ENOSPC", "EROFS"])
def test_graphc_train_keeps_its_run_when_the_disk_of_out_is_full_or_read_only(
        tmp_path, text_file, capsys, monkeypatch, failure):  # noqa: F811
    """(s46) A save that could not write --out's checkpoint (a full disk: the data's fsync
    fails with ENOSPC; a file system remounted read-only: EROFS) kept the previous
    checkpoint whole but ended `graphc train` with status 2, every step since that save
    lost. The state is now saved where it can be: beside --out, and where that disk refuses
    it too, in the system's temporary directory (here another file system, as a tmpfs /tmp
    often is); nothing is left half-written on the full disk."""
    import errno
    import stat
    import tempfile
    disk, elsewhere = tmp_path / "disk", tmp_path / "elsewhere"
    disk.mkdir(), elsewhere.mkdir()
    out = disk / "run"
    assert train(disk, text_file, "--steps", "2") == 0
    before = (out / "checkpoint.npz").read_bytes()
    number = getattr(errno, failure)
    fsync, full = os.fsync, []

    def fsync_on_a_full_disk(fd):  # each file written on `disk` from the step-3 save on
        if full and stat.S_ISREG(os.fstat(fd).st_mode) and \
                os.readlink(f"/proc/self/fd/{fd}").startswith(str(disk)):
            raise OSError(number, os.strerror(number))
        return fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync_on_a_full_disk)
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    from graphc.trainer import Trainer
    train_step = Trainer.train_step

    def step(self, *args, **kwargs):
        if self.step == 3:
            full.append(True)
        return train_step(self, *args, **kwargs)
    monkeypatch.setattr(Trainer, "train_step", step)
    capsys.readouterr()
    assert train(disk, text_file, "--steps", "6", "--eval-every", "2", "--resume") == 2
    [kept] = os.listdir(elsewhere)
    kept = elsewhere / kept
    assert kept.name.startswith("run.step4.")
    assert error_line(capsys) == (
        f"graphc: error: cannot write {out}/checkpoint.npz: {os.strerror(number)}; it is as "
        f"it was before; this run's step 4 is saved in {kept} instead; to continue it, run "
        f"the same command with --out {kept} --resume")
    assert (out / "checkpoint.npz").read_bytes() == before
    assert sorted(os.listdir(disk)) == ["run"]  # the sibling tried, removed
    assert sorted(os.listdir(out)) == [LOCK_NAME, "checkpoint.npz", "loss.png", "sample.txt"]
    monkeypatch.undo()
    assert train(elsewhere, text_file, "--steps", "6", "--eval-every", "2", "--resume",
                 out=kept.name) == 0
    assert checkpoint.load_saved(str(kept / "checkpoint.npz"))[1]["step"] == 6


@pytest.mark.parametrize("failure", ["ESTALE", "ENOENT"])
def test_a_save_failing_with_an_errno_atomic_writer_does_not_name_keeps_the_run(
        tmp_path, monkeypatch, failure):
    """(r5, review of s46's kept runs) A save whose rename failed with an errno that
    atomic_writer passes on as it is (NFS's ESTALE, the file system without locks this
    check is for; ENOENT, the directory removed under the rename) escaped Trainer._save's
    `except GraphcError`: the run ended with a bare "[Errno 116] Stale file handle", not
    naming the checkpoint, and every step since the last save was lost. It is kept as the
    other failed writes are."""
    import errno
    number = getattr(errno, failure)
    run, x = str(tmp_path / "run"), np.ones((3, 4), np.float32)
    ckpt, replace, failing = os.path.join(run, "checkpoint.npz"), os.replace, []

    def replace_failing(source, target, *args, **kwargs):
        if failing and os.fspath(target) == ckpt:
            raise OSError(number, os.strerror(number), os.fspath(source))
        return replace(source, target, *args, **kwargs)
    monkeypatch.setattr(os, "replace", replace_failing)

    def batches(rng):  # fails from the step-2 save on
        if os.path.exists(ckpt):
            failing.append(True)
        return (x,)
    trainer = _fitting(batches, steps=4)
    with pytest.raises(GraphcError) as caught:
        trainer.fit(run, progress=False)
    assert str(caught.value) == (f"cannot write {ckpt}: {os.strerror(number)}"
                                 + _kept(trainer, run))
    assert checkpoint.load_saved(ckpt)[1]["step"] == 1  # the last save's, whole


@pytest.mark.parametrize("when", ["while this run's file is written", "just after its rename",
                                  "while the file written is read"])
def test_a_checkpoint_put_in_during_a_save_is_not_replaced(tmp_path, monkeypatch, when):
    """(r5, review of s46's check of a lock-ignoring copy) The save checked the checkpoint
    there before writing its own file, and read its own file's identity after the rename
    and the directory's fsync: a checkpoint renamed into OUT while the save wrote and synced
    its file (most of a save's time), or just after its rename, was replaced without a word
    (with a copy landing at a random moment, 7 to 9 times in 10 for a small model saving at
    each step). The check is made just before the rename, and the identity kept is the
    file written (the temporary's)."""
    import stat

    from graphc import files
    run, x = str(tmp_path / "run"), np.ones((3, 4), np.float32)
    ckpt = os.path.join(run, "checkpoint.npz")
    _fitting(lambda rng: (x,), steps=4).fit(str(tmp_path / "other"), progress=False)
    theirs = (tmp_path / "other" / "checkpoint.npz").read_bytes()
    done, steps = [], []

    def put_theirs():
        (tmp_path / "theirs").write_bytes(theirs)
        os.replace(tmp_path / "theirs", ckpt)
        done.append(True)
    if when == "while this run's file is written":
        fsync = os.fsync

        def fsync_putting_theirs(fd):  # this run's temporary, synced at the step-2 save
            if steps[-1:] == [2] and not done and stat.S_ISREG(os.fstat(fd).st_mode):
                put_theirs()
            return fsync(fd)
        monkeypatch.setattr(os, "fsync", fsync_putting_theirs)
    elif when == "while the file written is read":
        # (r10, review of e9cfbd4) the identity of the file written (the temporary's: a
        # file opened, 64 KiB read and hashed) was read after the check, widening the
        # window it leaves before the rename: read first, the check last
        from graphc import trainer as trainer_module
        identity = trainer_module.file_identity

        def identity_putting_theirs(path):  # the step-2 save's temporary
            if steps[-1:] == [2] and not done and path.endswith(files.TEMP_SUFFIX):
                put_theirs()
            return identity(path)
        monkeypatch.setattr(trainer_module, "file_identity", identity_putting_theirs)
    else:
        sync = files._sync_directory

        def sync_putting_theirs(directory):  # the step-2 save's rename done
            sync(directory)
            if steps[-1:] == [2] and not done:
                put_theirs()
        monkeypatch.setattr(files, "_sync_directory", sync_putting_theirs)
    trainer = _fitting(lambda rng: (x,), steps=4)
    train_step = type(trainer).train_step

    def counted(self, *args, **kwargs):
        loss = train_step(self, *args, **kwargs)
        steps.append(self.step)
        return loss
    monkeypatch.setattr(type(trainer), "train_step", counted)
    with pytest.raises(GraphcError) as caught:
        trainer.fit(run, progress=False)
    assert done
    assert str(caught.value) == (
        f"{ckpt} has been written by another run since this trainer resumed (or saved) it; "
        "fit() does not replace it" + _kept(trainer, run))
    assert trainer.step == (3 if when == "just after its rename" else 2)
    assert open(ckpt, "rb").read() == theirs
    assert [n for n in os.listdir(run) if n.endswith(".tmp") or "graphc-tmp" in n] == []


def test_ordinary_runs_leave_nothing_beside_their_directory(
        tmp_path, text_file, capsys):  # noqa: F811
    """The check that refuses a checkpoint written during fit (above) leaves ordinary runs
    as they were: a fresh --out saving three times, then resumed twice into the same
    directory, each saving again, all succeed and write nothing beside --out."""
    assert train(tmp_path, text_file, "--steps", "3", "--eval-every", "1") == 0
    for steps in ("5", "7"):
        assert train(tmp_path, text_file, "--steps", steps, "--eval-every", "1",
                     "--resume") == 0
    assert "error" not in capsys.readouterr().err
    assert checkpoint.load_saved(str(tmp_path / "run" / "checkpoint.npz"))[1]["step"] == 7
    assert sorted(os.listdir(tmp_path)) == ["run", "text.txt"]
