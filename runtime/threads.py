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

from . import contention

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
# kernels on that many threads; on one thread no loop waits for a partner. Between those
# windows, each call's own evidence (its threads' wait for a CPU, the room as it ends) moves
# the count at once: runtime.contention, through plan_call and CpuShare.after_call.

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


def _busy_seconds(cpus) -> float | None:
    """Seconds the given CPUs spent running anything (all processes) since boot, from
    /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if int(name[3:]) not in cpus:
            continue
        # user nice system idle iowait irq softirq steal: everything but idle and iowait is
        # time the CPU was not free for us (steal: the hypervisor ran another machine)
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        busy += sum(values) - values[3] - values[4]
    return busy / ticks


# One look at the machine's runnable count (contention.runnable_now) is not enough: the
# process that woke us (the bench's parent after sending a turn, a loader handing over a
# batch) is still runnable for a moment before it blocks. Logged at the start of the bench's graphc turns: in 6 of 15 an extra thread was
# runnable at the first look and gone 0.3 ms later (once 1.3 ms), and on that one look a
# quarter of the tiny step's turns ran on one thread. So we look up to _LOOKS times,
# _LOOK_SPACING_S apart, and take what most looks saw.
_LOOKS = 12
_LOOK_SPACING_S = 0.00025


def _running_elsewhere(cpus, looks=_LOOKS, spacing_s=_LOOK_SPACING_S) -> float | None:
    """Threads other than the caller runnable now (the lower median of a few looks over a
    few milliseconds), scaled to the share of the machine's CPUs this process may use
    (the count is the whole machine's)."""
    looks = max(1, int(looks))
    seen = []
    for _ in range(looks):
        running = contention.runnable_now()
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
                 machine_cpus=None, running=None, runnable=None):
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
        # what each call meets; /proc/loadavg counts the whole machine's runnable threads
        self.signals = contention.CallSignals(
            cpus_allowed=self._cpu_count, machine_cpus=machine_cpus or os.cpu_count() or 1,
            clock=clock, runnable=runnable)
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
                # a new situation: what the calls met before the gap no longer holds (a
                # process taking turns had kept its drop through the next turn alone)
                self.signals.start_afresh()
                self.threads = max(1, min(self.cpus, self._cpu_count - round(self.others)))
                return self.threads
        self.others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        # the others' load is measured over all of this process's CPUs, which may be more
        # than the threads numba has
        return self._settle(max(1, min(self.cpus, self._cpu_count - round(self.others))))

    def _settle(self, threads) -> int:
        """The window's count, except that it may not rise while a call's drop holds."""
        if threads > self.threads:
            if self.signals.holding():
                return self.threads
            self.signals.rose()
        self.threads = threads
        return threads

    def after_call(self, threads, most, wall_s, waited_s, fastest_s=None) -> None:
        """What a plan call on `threads` threads met (runtime.contention.CallSignals) sets
        the count of the next ones; the window starts again from now, so that it measures
        the new state."""
        count = self.signals.after_call(threads, most, wall_s, waited_s, fastest_s)
        if count is None or count == self.threads:
            return
        self.threads = max(1, min(self.cpus, count))
        self._mark = self._sample()
        self._window = _WINDOW_S


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
    contention.after_fork_in_child()


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
    return pinned if pinned is not None else _shared_threads()


def _shared_threads() -> int:
    if not _SHARE:
        _SHARE.append(CpuShare())
    return min(_SHARE[0].update(), rank_cpus())


class PlanCall:
    """One plan call: the threads it runs on, and its wall time once it has ended (None
    when it was not watched)."""
    threads = 1
    wall_s = None


@contextmanager
def plan_call(short: bool = False, fastest: dict | None = None):
    """One plan call on the threads plan_threads gives it; unless GRAPHC_THREADS pins the
    count, what the call met (its threads' runqueue wait, the room left as it ends) sets
    the count of the next calls (runtime.contention). About 15 us a call on a 2-CPU
    machine; `short` (the plan's last call took under contention.MIN_CALL_S, too short to
    judge) skips the first reading of the wait, so that a call that is short again costs
    two clock reads. `fastest` (the caller's, kept across its calls) maps a thread count to
    the fastest such call so far: a call far slower than that needs less runqueue wait to
    count as contended. Yields a PlanCall, its wall time filled as the call ends. The
    bookkeeping never fails the call: an unexpected error in it turns the call signals off
    for the process, with a warning."""
    call = PlanCall()
    pinned = pinned_threads()
    call.threads = pinned if pinned is not None else _shared_threads()
    with numba_threads(call.threads):
        if pinned is not None or _SIGNALS_OFF:
            yield call
            return
        share = _SHARE[0]
        start = time.perf_counter()
        before = None
        if not short:
            with contention.LOCK:
                before = _guarded(contention.WAITING.read, start)
        yield call
        wall = call.wall_s = time.perf_counter() - start
    if wall < contention.MIN_CALL_S or _SIGNALS_OFF:
        return
    fastest_s = None
    if fastest is not None:
        fastest_s = fastest.get(call.threads)
        if fastest_s is None or wall < fastest_s:
            fastest[call.threads] = wall
    with contention.LOCK:
        after = None if before is None else _guarded(contention.WAITING.read, start)
        _guarded(share.after_call, call.threads, min(share.cpus, rank_cpus()), wall,
                 contention.waited_s(before, after), fastest_s)


_SIGNALS_OFF = []


def _guarded(step, *args):
    """A step of plan_call's bookkeeping; an unexpected error turns the signals off."""
    try:
        return step(*args)
    except Exception as error:  # noqa: BLE001 - a user's call must not fail for this
        if not _SIGNALS_OFF:
            _SIGNALS_OFF.append(error)
            import warnings
            warnings.warn(f"graphc: sharing the CPUs by each call's signals is off for this "
                          f"process ({type(error).__name__}: {error}); the load windows "
                          f"still decide", RuntimeWarning, stacklevel=2)
        return None


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
