"""What one plan call met on a shared machine: its threads' wait for a CPU, and the room left.

runtime.threads sizes a plan's thread team from the other processes' busy time over
quarter-second windows. That reacts a quarter second late, and after an idle gap it trusts
one moment's look. Logged in `graphc bench --concurrent 2` (tiny step, 30-step turns, numpy's
SkylakeX kernels): a turn that began on two threads while the other process did too ran steps
of 100-276 ms instead of 8 (each parallel loop waiting for a partner thread the scheduler had
given to the other process), and a process alone for the next turn ran all of it on one
thread, its window still holding the other's busy time. So each call says at once what it
met (CallSignals):

- waiting: how long the process's working threads were runnable but had no CPU during the
  call, summed (the kernel's schedstat, in ns). Solo, a two-thread tiny step's was 0-1% of
  its wall time (at most about 20%); beside another two-thread process, 30-60%. Above a
  quarter of the call per thread, the next calls run on fewer threads; above a tenth, when
  the call also took SLOW_FACTOR times the plan's fastest call on as many threads. The
  first shared calls of a bench turn waited 36-48% of their wall time (under the quarter a
  thread) but ran 13-35 times as long as the fastest; a solo call seldom meets both.
- room: the threads runnable on the machine as a call on fewer threads ends (/proc/loadavg),
  one cheap look a call; three calls in a row that each see a free CPU take it.

A drop holds for a while before the calls' looks may raise the count again, twice as long
each time a rise meets contention again within HOLD_S, so that a co-runner that comes and
goes costs a contended call now and then, not one every few calls. The shortest hold is a
window's length (the window restarts at the drop and measures the others anew); a longer
one binds the windows' rises too. After an idle gap the signals start afresh (no hold): a
process taking turns had otherwise kept a drop from its shared turn through its next turn
alone. Where /proc says nothing (not Linux, no schedstat) every reading is None and the
windows alone decide.
"""
from __future__ import annotations

import os
import threading
import time

WAITING_SHARE = 0.25   # runqueue wait per thread, as a share of a call's wall time: contention
SLOW_FACTOR = 2.0      # a call this many times the plan's fastest on as many threads ...
SLOW_WAITING_SHARE = 0.1  # ... is contended above this much wait per thread
MIN_CALL_S = 0.001     # shorter calls say too little (a few scheduler ticks at most)
ROOM_LOOKS = 3         # calls in a row that must each see a free CPU before we take it
HOLD_S = 0.25          # the least time a drop holds ...
MAX_HOLD_S = 4.0       # ... doubled per drop within HOLD_S of a rise, up to this
CALM_S = 5.0           # a rise that runs this long without a drop: the hold is HOLD_S again
RELIST_S = 1.0         # how often the working threads are found again
ACTIVE_S = 10.0        # a thread that ran within this long counts as working

LOCK = threading.Lock()  # plans may be called from several Python threads at once


class ProcFile:
    """One small /proc file kept open and read again with pread (~1 us, against ~9 us for
    open-read-close)."""

    def __init__(self, path):
        self.path, self.fd = path, None

    def read(self) -> bytes:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        return os.pread(self.fd, 256, 0)

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def _schedstat(probe) -> tuple[int, int]:
    """(ns run, ns waited for a CPU) of one thread's schedstat file."""
    fields = probe.read().split()
    return int(fields[0]), int(fields[1])


class ThreadsWaiting:
    """How long each of the process's working threads has spent runnable but not running
    (Linux schedstat, one file per thread). A spinning partner thread that the scheduler put
    aside waits there, whichever thread it is: beside a one-thread busy process, a two-thread
    plan's calling thread waited 0% of a step while its steps took twice as long.

    Only the threads seen running within the last ACTIVE_S are read (numba's workers in use
    and the caller, not idle pools: a 64-CPU machine has over a hundred threads): a listing,
    made every RELIST_S, keeps a thread whose run time grew since the last one, and a new
    thread for two listings (numba starts its workers at the first parallel loop, and a
    plan's first calls may already meet contention: counting them only from their second
    listing, a bench turn's first calls read no wait and ran 246 ms instead of 8). The
    calling thread is always read. A call's wait is taken over the threads both of its
    readings have (waited_s): a listing made between them, by another Python thread's call,
    changes the set."""

    def __init__(self):
        self.files = {}        # tid -> ProcFile, the threads that ran lately
        self.ran = {}          # tid -> ns run at the last listing
        self.active = {}       # tid -> when its run time was last seen to grow
        self.listed = None     # when the list was made
        self.broken = False    # /proc has no schedstat for us here: stop asking

    def _relist(self, now, caller):
        old, files, ran = self.files, {}, {}
        tids = os.listdir("/proc/self/task")
        if caller not in tids:  # /proc is not this process's (another pid namespace)
            raise FileNotFoundError("the calling thread is not in /proc/self/task")
        for tid in tids:
            probe = old.pop(tid, None) or ProcFile(f"/proc/self/task/{tid}/schedstat")
            try:
                ran[tid] = _schedstat(probe)[0]
            except FileNotFoundError:
                probe.close()
                if tid == caller:  # alive for sure: the kernel keeps no schedstat
                    raise
                continue  # ended meanwhile
            except OSError:  # out of descriptors, say: try again at the next listing
                probe.close()
                continue
            if tid not in self.ran:  # new: working until two listings show it idle
                self.active[tid] = now - ACTIVE_S + 2 * RELIST_S
            elif ran[tid] != self.ran[tid]:
                self.active[tid] = now
            seen = self.active.get(tid)
            if tid == caller or (seen is not None and now - seen < ACTIVE_S):
                files[tid] = probe
            else:
                probe.close()
        for probe in old.values():  # threads that ended
            probe.close()
        self.active = {tid: t for tid, t in self.active.items() if tid in ran}
        self.files, self.ran, self.listed = files, ran, now

    def read(self, now) -> dict | None:
        """{thread: ns waited} of the working threads now; None where /proc cannot say."""
        if self.broken:
            return None
        caller = str(threading.get_native_id())
        try:
            if self.listed is None or now - self.listed > RELIST_S or caller not in self.files:
                self._relist(now, caller)
        except FileNotFoundError:
            self.broken = True
            return None
        except (OSError, IndexError, ValueError):
            return None
        waits = {}
        for tid, probe in list(self.files.items()):
            try:
                waits[tid] = _schedstat(probe)[1]
            except OSError:  # the thread ended
                self.files.pop(tid, None)
                probe.close()
            except (IndexError, ValueError):
                self.broken = True
                return None
        return waits or None

    def forget(self) -> None:
        """In a forked child: the inherited descriptors name the parent's threads."""
        for probe in self.files.values():
            probe.close()
        self.files, self.ran, self.active, self.listed = {}, {}, {}, None


def waited_s(before, after) -> float | None:
    """Seconds waited between two readings, over the threads both have."""
    if before is None or after is None:
        return None
    common = before.keys() & after.keys()
    if not common:
        return None
    return max(0, sum(after[t] - before[t] for t in common)) * 1e-9


WAITING = ThreadsWaiting()
LOADAVG = ProcFile("/proc/loadavg")


def runnable_now() -> int | None:
    """Threads runnable on the whole machine at this moment (the caller among them)."""
    try:
        return int(LOADAVG.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def after_fork_in_child() -> None:
    """The parent's descriptors closed, and a lock another of its threads may have held as
    it forked made anew (only the forking thread lives on in the child)."""
    global LOCK
    LOCK = threading.Lock()
    WAITING.forget()
    LOADAVG.close()


class CallSignals:
    """Turns what each plan call met (its wall time, its threads' runqueue wait, the threads
    runnable as it ended) into a thread count for the next call.

    `cpus_allowed` is how many CPUs the process may run on (its affinity mask), out of the
    machine's `machine_cpus`: /proc/loadavg counts the whole machine's runnable threads, so
    the others' are scaled to our share of it."""

    def __init__(self, cpus_allowed, machine_cpus, clock=time.monotonic, runnable=None):
        self._clock = clock
        self._runnable = runnable or runnable_now
        self._cpus_allowed = max(1, cpus_allowed)
        self._machine_cpus = max(self._cpus_allowed, machine_cpus)
        self._free_looks = 0
        self._held_until = -1.0
        self._hold = HOLD_S
        self._last_rise = None

    def start_afresh(self) -> None:
        """After an idle gap: no hold, the shortest hold next, no rise to lengthen it."""
        self._free_looks = 0
        self._held_until = -1.0
        self._hold = HOLD_S
        self._last_rise = None

    def holding(self) -> bool:
        """Whether a drop still holds (no rise, from the calls or the window)."""
        return self._clock() < self._held_until

    def rose(self) -> None:
        """The count went up (here or by the window): a drop soon after holds longer."""
        self._last_rise = self._clock()

    def after_call(self, threads, most, wall_s, waited_s, fastest_s=None):
        """The thread count for the next call, given that this one ran on `threads` of at
        most `most`; None to keep the current one. `waited_s` may be None (unknown);
        `fastest_s` is the plan's fastest call on `threads` threads so far, if known."""
        now = self._clock()
        share = WAITING_SHARE
        if fastest_s is not None and wall_s > SLOW_FACTOR * fastest_s:
            share = SLOW_WAITING_SHARE
        if threads > 1 and waited_s is not None and wall_s >= MIN_CALL_S \
                and waited_s > share * threads * wall_s:
            self._free_looks = 0
            if self._last_rise is not None:
                since_rise = now - self._last_rise
                if since_rise > CALM_S:  # the rise ran clean for a good while
                    self._hold = HOLD_S
                elif since_rise < HOLD_S:  # the rise met contention at once
                    self._hold = min(MAX_HOLD_S, 2 * self._hold)
                self._last_rise = None  # one rise doubles the hold once
            self._held_until = now + self._hold
            # our threads together had about this many CPUs
            return max(1, min(threads - 1, round(threads - waited_s / wall_s)))
        if threads >= most or now < self._held_until:
            self._free_looks = 0
            return None
        running = self._runnable()
        if running is None:
            return None
        # the others' runnable threads, scaled to our share of the machine's CPUs. Only the
        # caller is taken off: our workers may still spin after the call's last parallel
        # loop, or may sleep (OMP_WAIT_POLICY=passive, numpy work at the call's end), and
        # counting them as others errs on the side of no rise (the windows still raise the
        # count when the others' measured load leaves room)
        others = max(0, running - 1) * self._cpus_allowed / self._machine_cpus
        if threads + round(others) < self._cpus_allowed:
            self._free_looks += 1
        else:
            self._free_looks = 0
        if self._free_looks < ROOM_LOOKS:
            return None
        self._free_looks = 0
        self._last_rise = now
        return min(most, self._cpus_allowed - round(others))
