"""Thread settings for plans with numba kernels: one thread pool does the parallel work.

numba's parallel kernels and, through runtime.gemm, the plan's GEMMs run on numba's OpenMP
threads. Between two kernels those threads spin for a while (GOMP_SPINCOUNT=100000, about
2 ms here) before they sleep: waking a sleeping thread cost ~50 us per kernel (an empty
parallel loop: 49 us after sleeping, 1.6 us with spinning threads), which was ~20% of the tiny
GPT step. Spinning is only safe because nothing else competes for the cores while a plan
runs: numpy's OpenBLAS is kept single-threaded inside plans (runtime.codegen).

OpenBLAS's own threads, used by numpy outside plans, busy-wait for about 2^28 cycles after
each GEMM; on a 2-core machine a plan started right after numpy code then shares a core with
them (measured: a GELU-gradient kernel over 1M floats took 2.9 ms right after a GEMM instead
of 0.29 ms). We shorten that timeout; OpenBLAS reads it when it starts its threads, so if numpy
is already imported we ask it to read the environment again and restart its thread pool.

A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is left as it is; they are read when numba starts
its threads (the first parallel kernel). Set GRAPHC_BLAS_TUNE=0 to leave both libraries alone.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from contextlib import contextmanager

from ir import settings

_DONE = []


def quiet_blas_spinning() -> None:
    if _DONE or not settings.BLAS_TUNE.get():
        return
    _DONE.append(True)
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "100000")
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT") is None:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        _restart_openblas()


def _restart_openblas() -> None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return
    for info in threadpool_info():
        if info.get("internal_api") != "openblas":
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
            lib.openblas_read_env()
            lib.blas_thread_shutdown_()  # the next BLAS call starts threads with the new timeout
        except (OSError, AttributeError):
            continue


# ---- how many threads a plan may use now -----------------------------------------------------
# A parallel kernel is only as fast as its slowest thread. When another process wants one of
# our CPUs, the scheduler runs it instead of one of our threads, and the partner thread spins
# (GOMP_SPINCOUNT) at the end of every parallel loop until that thread gets a CPU back: two
# such processes on 2 cores measured 3.6-14x their solo time each, PyTorch up to 25x. So each
# plan call asks how many CPUs the other processes leave free, from the machine's busy time
# (/proc/stat) minus this process's own CPU time over the last quarter second, and runs its
# kernels on that many threads; on one thread no loop waits for a partner.

_WINDOW_S = 0.25
# a gap longer than this since the last look, spent mostly idle, is not measured as load
_STALE_S = 2 * _WINDOW_S
# after such a gap the first measurement comes sooner: processes that start together (the
# rounds of `graphc bench --concurrent`) each see the other still idle at that moment
_AFTER_GAP_S = 0.1


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at most numba's thread count."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        import numba
        cpus = min(cpus, numba.config.NUMBA_NUM_THREADS)
    except ImportError:
        pass
    return max(1, cpus)


def pinned_threads():
    """GRAPHC_THREADS=N fixes the plan's thread count; None when unset."""
    value = settings.THREADS.get()
    return None if value is None else min(value, available_cpus())


def _proc_stat(cpus):
    """(seconds the given CPUs spent running anything since boot, threads runnable on the
    machine now), from /proc/stat; (None, None) where there is none."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None, None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy, running = 0, None
    for line in lines:
        if line.startswith("procs_running"):
            running = int(line.split()[1])
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if int(name[3:]) not in cpus:
            continue
        # user nice system idle iowait irq softirq steal: everything but idle and iowait is
        # time the CPU was not free for us (steal: the hypervisor ran another machine)
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        busy += sum(values) - values[3] - values[4]
    return busy / ticks, running


def _busy_seconds(cpus) -> float | None:
    """Seconds the given CPUs spent running anything (all processes) since boot."""
    return _proc_stat(cpus)[0]


# One look at procs_running is not enough: the process that woke us (the bench's parent after
# sending a turn, a loader handing over a batch) is still runnable for a moment before it
# blocks. Logged at the start of the bench's graphc turns: in 6 of 15 an extra thread was
# runnable at the first look and gone 0.3 ms later (once 1.3 ms), and on that one look a
# quarter of the tiny step's turns ran on one thread. So we look up to _LOOKS times,
# _LOOK_SPACING_S apart, and take what most looks saw.
_LOOKS = 12
_LOOK_SPACING_S = 0.00025


def _running_elsewhere(cpus, looks=_LOOKS, spacing_s=_LOOK_SPACING_S) -> float | None:
    """Threads other than the caller runnable now (the lower median of a few looks over a
    few milliseconds), scaled to the share of the machine's CPUs this process may use
    (procs_running counts the whole machine)."""
    looks = max(1, int(looks))
    seen = []
    for _ in range(looks):
        running = _proc_stat(cpus)[1]
        if running is None:
            return None
        seen.append(max(0, running - 1))
        if 2 * seen.count(0) >= looks:
            break  # half the looks saw no one else: the median is 0 whatever the rest see
        if len(seen) < looks:
            time.sleep(spacing_s)
    median = sorted(seen)[(looks - 1) // 2] if len(seen) == looks else 0
    return median * len(cpus) / max(len(cpus), os.cpu_count() or 1)


class CpuShare:
    """Threads to use now: this process's CPUs less those the other processes keep busy."""

    def __init__(self, clock=time.monotonic, busy=None, own=None, cpus=None,
                 machine_cpus=None, running=None):
        try:
            cpu_set = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            cpu_set = set(range(os.cpu_count() or 1))
        self.cpus = cpus or available_cpus()
        self._cpu_count = machine_cpus or cpus or len(cpu_set)
        self._clock = clock
        self._busy = busy or (lambda: _busy_seconds(cpu_set))
        self._own = own or (lambda: sum(os.times()[:2]))
        self._running = running or (lambda: _running_elsewhere(cpu_set))
        self.threads = self.cpus
        self.others = 0.0  # CPUs the other processes used over the last window
        self._window = _WINDOW_S
        self._signals = None  # CallSignals, made at the first call that reports
        self._mark = self._sample()

    def _sample(self):
        return self._clock(), self._busy(), self._own()

    def update(self) -> int:
        now = self._clock()
        if now - self._mark[0] < self._window:
            return self.threads
        sample = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._mark, sample
        self._mark = sample
        self._window = _WINDOW_S
        if busy0 is None or busy1 is None:
            return self.threads
        if t1 - t0 > _STALE_S and (own1 - own0) / (t1 - t0) < 0.5:
            # This process sat mostly idle since its last look: what the others did
            # meanwhile says little about now. Processes that take turns (a sweep's runs, the
            # bench's contenders) would each find the others' busy time in that gap and start
            # every turn on one thread (measured: the bench's tiny step 48 ms instead of 35).
            # Count the threads that are runnable at this moment instead, and measure the
            # load again after a shorter window than usual.
            now_running = self._running()
            if now_running is not None:
                self._window = _AFTER_GAP_S
                self.others = float(now_running)
                self.threads = max(1, min(self.cpus, self._cpu_count - round(self.others)))
                return self.threads
        self.others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        # the others' load is measured over all of this process's CPUs, which may be more
        # than the threads numba has
        self.threads = max(1, min(self.cpus, self._cpu_count - round(self.others)))
        return self.threads

    def after_call(self, threads, most, wall_s, waited_s) -> None:
        """What a plan call on `threads` threads met (CallSignals) sets the count of the
        next ones; the window starts again from now, so that it measures the new state."""
        if self._signals is None:
            self._signals = CallSignals(clock=self._clock, machine_cpus=self._cpu_count,
                                        cpus=self.cpus)
        count = self._signals.after_call(threads, most, wall_s, waited_s)
        if count is None or count == self.threads:
            return
        self.threads = max(1, min(self.cpus, count))
        self._mark = self._sample()
        self._window = _WINDOW_S


# ---- what one plan call saw -------------------------------------------------------------------
# The window above reacts a quarter second late, and after an idle gap it trusts one moment's
# look. Logged in `graphc bench --concurrent 2` (tiny step, 30-step turns): a turn that began
# on two threads while the other process did too ran steps of 100-276 ms instead of 8 (each
# parallel loop waiting for a partner thread the scheduler had given to the other process),
# and a process alone for the next turn ran all of it on one thread, its window still holding
# the other's busy time. Each call now says at once what it met:
# - waiting: the time this process's threads were runnable but had no CPU, summed (the
#   kernel's schedstat, in ns); solo a two-thread tiny step's was 0-1% of its wall time (at
#   most 21%), beside another two-thread process 30-60%. Above a quarter a thread, the next
#   calls run on fewer threads.
# - room: the threads runnable on the machine as the call ends (/proc/loadavg), one cheap
#   look a call; after a few calls in a row that each saw a free CPU, the next runs on more.
# A drop for waiting holds for a while before looks may raise the count again, doubling
# each time a raise is followed by another drop, so that a co-runner that comes and goes
# costs a contended call now and then, not every few calls.
_WAITING_SHARE = 0.25   # runqueue wait per thread, as a share of a call's wall time: contention
_MIN_CALL_S = 0.001     # shorter calls say too little (a few scheduler ticks at most)
_ROOM_LOOKS = 3         # calls in a row that must each see a free CPU before we take it
_HOLD_S = 0.25          # the least time a drop for waiting holds ...
_MAX_HOLD_S = 4.0       # ... doubled per drop that follows a raise within it, up to this
_CALM_S = 5.0           # a raise that runs this long without a drop: the hold is _HOLD_S again


class _ProcFile:
    """One small /proc file kept open and read again with pread (~1 us, against ~9 us for
    open-read-close); opened again in a forked child, where the parent's is not ours."""

    def __init__(self, path):
        self.path, self.fd, self.pid = path, None, None

    def read(self):
        pid = os.getpid()
        if self.fd is None or self.pid != pid:
            self.fd, self.pid = os.open(self.path, os.O_RDONLY), pid
        return os.pread(self.fd, 256, 0)

    def close(self):
        if self.fd is not None and self.pid == os.getpid():
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None


class _ThreadsWaiting:
    """Seconds this process's threads have spent runnable but not running, summed (Linux
    schedstat, one file per thread). A spinning partner thread that the scheduler has put
    aside waits there, whichever thread it is: beside a one-thread busy process, a two-thread
    plan's calling thread waited 0% of a step while its steps took twice as long."""

    _RELIST_S = _WINDOW_S  # numba starts its threads at the first parallel loop

    def __init__(self):
        self.files, self.pid, self.listed = {}, None, -1.0

    def _relist(self, now):
        pid = os.getpid()
        if pid != self.pid:
            self.files = {}  # the parent's threads
            self.pid = pid
        alive = set(os.listdir("/proc/self/task"))
        for tid in set(self.files) - alive:
            self.files.pop(tid).close()
        for tid in alive - set(self.files):
            self.files[tid] = _ProcFile(f"/proc/self/task/{tid}/schedstat")
        self.listed = now

    def seconds(self, now) -> float | None:
        try:
            if now - self.listed > self._RELIST_S or os.getpid() != self.pid:
                self._relist(now)
            total = 0
            for tid, probe in list(self.files.items()):
                try:
                    total += int(probe.read().split()[1])
                except OSError:  # the thread ended
                    self.files.pop(tid).close()
            return total * 1e-9
        except (OSError, IndexError, ValueError):
            return None


_WAITING = _ThreadsWaiting()
_LOADAVG = _ProcFile("/proc/loadavg")


def runnable_now() -> int | None:
    """Threads runnable on the whole machine at this moment (the caller among them)."""
    try:
        return int(_LOADAVG.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


class CallSignals:
    """Turns what each plan call met (its wall time, its runqueue wait, the threads runnable
    as it ended) into a thread count for the next call, between the CpuShare's windows."""

    def __init__(self, clock=time.monotonic, runnable=None, machine_cpus=None, cpus=None):
        self._clock = clock
        self._runnable = runnable or runnable_now
        try:
            cpus_allowed = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus_allowed = os.cpu_count() or 1
        self._machine_cpus = machine_cpus or os.cpu_count() or 1
        self._cpus_allowed = cpus or cpus_allowed
        self._free_looks = 0
        self._held_until = -1.0
        self._hold = _HOLD_S
        self._last_raise = None

    def after_call(self, threads, most, wall_s, waited_s):
        """The thread count for the next call, given that this one ran on `threads` of at
        most `most`; None to keep the CpuShare's own. `waited_s` may be None (unknown)."""
        now = self._clock()
        if threads > 1 and waited_s is not None and wall_s >= _MIN_CALL_S \
                and waited_s > _WAITING_SHARE * threads * wall_s:
            self._free_looks = 0
            if self._last_raise is not None:
                since_raise = now - self._last_raise
                if since_raise > _CALM_S:  # the raise ran clean for a good while
                    self._hold = _HOLD_S
                elif since_raise < 2 * self._hold:
                    self._hold = min(_MAX_HOLD_S, 2 * self._hold)
            self._held_until = now + self._hold
            # our threads together had about this many CPUs
            return max(1, min(threads - 1, round(threads - waited_s / wall_s)))
        if threads >= most or now < self._held_until:
            self._free_looks = 0
            return None
        running = self._runnable()
        if running is None:
            return None
        # the others' runnable threads, scaled to our share of the machine's CPUs
        others = max(0, running - 1) * self._cpus_allowed / max(self._machine_cpus,
                                                                  self._cpus_allowed)
        if threads + round(others) < self._cpus_allowed:
            self._free_looks += 1
        else:
            self._free_looks = 0
        if self._free_looks < _ROOM_LOOKS:
            return None
        self._free_looks = 0
        self._last_raise = now
        return min(most, self._cpus_allowed - round(others))


_SHARE = []
_RANKS_HERE = [1]  # processes of one MPI job on this machine (graphc.distributed)


# ---- a process forked from one that ran parallel kernels --------------------------------------
# GNU OpenMP's thread pool does not survive fork(): numba ends a forked child that starts a
# parallel loop ("Terminating: fork() called from a process already using GNU OpenMP"), and a
# multiprocessing pool of such children hangs waiting for them. So a child forked after its
# parent started that pool runs plans without numba kernels (runtime.codegen.Plan); one
# started with multiprocessing's "spawn" has its own pool and full speed ("forkserver" too,
# unless the main module, which the fork server imports, builds a plan when imported).
_FORKED_FROM_OPENMP = []


def _uses_gnu_openmp() -> bool:
    """Whether this process has started numba's GNU OpenMP threads (its threading layer is
    chosen at the first parallel kernel)."""
    numba = sys.modules.get("numba")
    if numba is None:
        return False
    try:
        if numba.threading_layer() != "omp":
            return False
    except ValueError:  # no parallel kernel has run
        return False
    try:
        from numba.np.ufunc import omppool
    except ImportError:  # pragma: no cover - the layer was loaded, so this imports
        return True
    return getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def forked_from_openmp() -> bool:
    """True in a process forked from one that had started GNU OpenMP's threads."""
    return bool(_FORKED_FROM_OPENMP)


def _after_fork_in_child() -> None:
    if _uses_gnu_openmp():
        _FORKED_FROM_OPENMP[:] = [True]
    _SHARE.clear()  # its load window counted the parent's CPU time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def share_cpus_with(ranks_on_this_machine: int) -> None:
    """N ranks of a job on one machine each take 1/N of its CPUs, so that together they never
    oversubscribe it (mpiexec may bind each rank to its cores already; then this changes
    nothing)."""
    _RANKS_HERE[0] = max(1, int(ranks_on_this_machine))


def rank_cpus() -> int:
    """The CPUs this process may use: its affinity mask's, less the other ranks' shares."""
    return max(1, available_cpus() // _RANKS_HERE[0])


def plan_threads() -> int:
    """How many threads a plan call should use (GRAPHC_THREADS pins it)."""
    pinned = pinned_threads()
    if pinned is not None:
        return pinned
    if not _SHARE:
        _SHARE.append(CpuShare())
    return min(_SHARE[0].update(), rank_cpus())


@contextmanager
def watched_call(count: int):
    """One plan call on `count` threads; what it met (its runqueue wait, the room left as
    it ends) sets the thread count of the next calls (CallSignals). Pinned counts
    (GRAPHC_THREADS) are left alone."""
    if not _SHARE or pinned_threads() is not None:
        yield
        return
    start = time.perf_counter()
    waited = _WAITING.seconds(start)
    yield
    wall = time.perf_counter() - start
    if wall < _MIN_CALL_S:
        return
    if waited is not None:
        after = _WAITING.seconds(start)
        waited = None if after is None else after - waited
    _SHARE[0].after_call(count, min(_SHARE[0].cpus, rank_cpus()), wall, waited)


@contextmanager
def numba_threads(count: int):
    """numba's parallel loops (and so runtime.gemm's blocks) on `count` threads; with one,
    they run on the calling thread."""
    import numba
    before = numba.get_num_threads()
    if before == count:
        yield
        return
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(before)

