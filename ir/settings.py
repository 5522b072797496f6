"""Every GRAPHC_* environment variable, declared once: name, kind, default and what it does.

    from ir.settings import THREADS
    THREADS.get()          # read now: the environment at the time of the call (tests
                           # monkeypatch variables), parsed by one rule per kind

Like jax._src.config, this sits at the bottom layer, since passes read settings too. One rule
for each kind of value: a flag is on for 1/true/yes/on and off for 0/false/no/off (any case);
unset or empty means the default; anything else is an error naming the variable.
`markdown_table()` is the README's "Environment variables" table (a test keeps them equal).
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Callable

from .errors import GraphcError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"expected one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("expected a positive whole number")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    return _positive(value)


def _positive(value: float) -> float:
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number")
    return value


# the longest wait a setting in seconds may ask for (about 31 years): Python's socket and
# lock timeouts overflow past ~9.2e9 s, and GRAPHC_WATCHDOG_TIMEOUT=1e300 (a "never" meant)
# ended every rank with an OverflowError traceback at start-up
MAX_SECONDS = 1e9

# the shortest watchdog timeout: a rank beats every timeout/4 s, but at most every 0.05 s
# (graphc.watchdog), so this keeps 4 beats within the timeout. Below 0.05 s no beat can come
# in time (the hub would stop every rank at start-up with 'rank 1 stopped responding at step
# -1 (no heartbeat for 0.01 s)', naming no setting); just above it one late beat on a busy
# machine would do the same.
MIN_WATCHDOG_SECONDS = 0.2


def seconds(value: float, shortest: float = 0.0) -> float:
    """`value`, a wait in seconds, if it is positive, at least `shortest` and at most
    MAX_SECONDS; else a ValueError saying what is expected (its caller names the setting)."""
    _positive(value)
    if value > MAX_SECONDS:
        raise ValueError(f"expected at most {MAX_SECONDS:.0f} seconds (about 31 years), "
                         f"the longest wait this setting takes")
    if value < shortest:
        raise ValueError(f"expected at least {shortest:g} seconds, 4 of the watchdog's "
                         "heartbeats (a rank beats every timeout/4 s, at most every 0.05 s)")
    return value


def watchdog_seconds(value: float) -> float:
    return seconds(value, MIN_WATCHDOG_SECONDS)


def _address(text: str) -> str:
    # as the socket module encodes a host name: an empty or over-long label (`host..lan`)
    # failed only in the ranks' connect, with a line naming neither this variable nor the
    # address, mpiexec's banner after it
    try:
        text.encode("idna")
    except UnicodeError as exc:  # (its cause says what: "label empty or too long")
        why = str(exc.__cause__ or exc)
        raise ValueError(f"expected a host name or IP address ({why})") from None
    return text


def _directory(text: str) -> str:
    return os.path.expanduser(text)


_PARSERS: dict[str, Callable[[str], object]] = {
    "flag": _flag, "count": _positive_int,
    "seconds": lambda text: seconds(_positive_float(text)),
    "watchdog seconds": lambda text: watchdog_seconds(_positive_float(text)),
    "directory": _directory, "megabytes": _positive_float, "address": _address, "file": str,
}


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # a key of _PARSERS
    default: object  # returned when the variable is unset or empty
    doc: str
    default_doc: str = ""  # how the README states the default, where not `default` itself

    def get(self):
        """The variable's value now, parsed; a bad value is a GraphcError naming it."""
        text = os.environ.get(self.name, "").strip()
        if not text:
            return self.default
        try:
            return _PARSERS[self.kind](text)
        except ValueError as exc:
            raise GraphcError(f"{self.name}={text!r}: {exc}") from None

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name, "").strip())


SETTINGS: list[Setting] = []


def _declare(name, kind, default, doc, default_doc="") -> Setting:
    setting = Setting(name, kind, default, doc, default_doc)
    SETTINGS.append(setting)
    return setting


VERIFY = _declare(
    "GRAPHC_VERIFY", "flag", False,
    "the pass manager verifies the graph after every pass")
BISECT = _declare(
    "GRAPHC_BISECT", "flag", False,
    "the pass manager evaluates the graph after every pass on seeded inputs and names the "
    "first pass that changes a result")
THREADS = _declare(
    "GRAPHC_THREADS", "count", None,
    "pins how many threads a plan runs its kernels on (at most the CPUs available); 2 also "
    "splits batched matmuls and numpy kernels over two workers",
    "follows the machine's load")
JIT = _declare(
    "GRAPHC_JIT", "flag", True,
    "compiled plans use numba kernels (fusion, row kernels, GEMMs); off: numpy kernels only")
CACHE_DIR = _declare(
    "GRAPHC_CACHE_DIR", "directory", None,
    "where compiled kernels are cached (refused, with a warning, when others can write it)",
    "`$XDG_CACHE_HOME/graphc/kernels`, else `~/.cache/graphc/kernels`")
BACKGROUND_COMPILE = _declare(
    "GRAPHC_BACKGROUND_COMPILE", "flag", True,
    "kernels not cached yet compile in a background process while the plan runs their numpy "
    "form; off: they compile while the plan is built")
COMPILE_TIMEOUT = _declare(
    "GRAPHC_COMPILE_TIMEOUT", "seconds", 300.0,
    "how long a plan waits for the background compiler without a finished kernel", "300")
DATA_DIR = _declare(
    "GRAPHC_DATA_DIR", "directory", None,
    "where training text is held as a memory-mapped, unlinked token file",
    "the system's temporary directory")
BLAS_TUNE = _declare(
    "GRAPHC_BLAS_TUNE", "flag", True,
    "building a plan shortens OpenBLAS's and OpenMP's idle spinning; off: leaves them alone")
MAX_PLANS = _declare(
    "GRAPHC_MAX_PLANS", "count", 16,
    "plans one gc.compile'd function keeps (each with its buffers); past it, the one used "
    "longest ago is dropped and compiled again if it is needed again", "16")


BUCKET_MB = _declare(
    "GRAPHC_BUCKET_MB", "megabytes", 25.0,
    "data-parallel training: the size cap of a gradient bucket reduced by one all-reduce, "
    "in MB of 10^6 bytes (at 25, each dtype's first bucket is at most 1 MB; another cap "
    "holds for every bucket: PyTorch DDP too makes its first bucket small only at its "
    "default cap)", "25")
WATCHDOG_TIMEOUT = _declare(
    "GRAPHC_WATCHDOG_TIMEOUT", "watchdog seconds", 60.0,
    "data-parallel training: how long a rank may stay silent before every rank stops, naming "
    "it (set it above the longest pause, e.g. rank 0 writing a large checkpoint)", "60")
WATCHDOG_ADDR = _declare(
    "GRAPHC_WATCHDOG_ADDR", "address", None,
    "data-parallel training: the address rank 0's watchdog listens on",
    "127.0.0.1 when all ranks share a machine, else rank 0's host address")
LAUNCH_STATUS = _declare(
    "GRAPHC_LAUNCH_STATUS", "file", None,
    "set by `graphc train --ranks N` for its ranks (not by users): where rank 0 writes the "
    "exit status of a failure or stop every rank agreed on, which the command then exits "
    "with (and, while it trains, its process id in FILE.pid, to be sent a Ctrl-C; "
    "FILE.gone, which rank 0 looks for at each step boundary, when the command's output "
    "reader goes away or a write to it fails, that failure in FILE.failed)",
    "unset")


def check_environment() -> list[str]:
    """Every GRAPHC_* variable of the environment read now: a bad value of a declared one is
    a GraphcError naming it (up front, not when some later code path first reads it), and
    a name nobody reads (a misspelt one) is a warning, returned, naming the
    closest declared one."""
    declared = {s.name: s for s in SETTINGS}
    warnings = []
    for name in sorted(n for n in os.environ if n.startswith("GRAPHC_")):
        if name in declared:
            declared[name].get()
            continue
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"environment variable {name} is not a graphc setting, ignored{hint} "
                        "(the README's \"Environment variables\" lists them)")
    return warnings


def markdown_table() -> str:
    """The README's table of the variables, generated from the declarations above."""
    kinds = {"flag": "0 or 1", "count": "whole number", "seconds": "seconds (at most 1e9)",
             "watchdog seconds": f"seconds ({MIN_WATCHDOG_SECONDS:g} to 1e9)",
             "directory": "directory", "megabytes": "megabytes", "address": "host address",
             "file": "file"}
    rows = ["| variable | value | default | what it does |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = s.default_doc or {True: "1", False: "0"}.get(s.default, str(s.default))
        rows.append(f"| `{s.name}` | {kinds[s.kind]} | {default} | {s.doc} |")
    return "\n".join(rows) + "\n"
