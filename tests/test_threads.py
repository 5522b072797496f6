"""Plans size their thread team from the CPUs other processes leave free (runtime.threads)."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from runtime import contention, threads


class FakeMachine:
    """A clock, the machine's busy CPU-seconds and this process's CPU-seconds, advanced by
    hand: `run(seconds, own_cpus, other_cpus)`."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0
        self.running = 0  # other threads runnable at this moment

    def run(self, seconds, own_cpus, other_cpus):
        self.now += seconds
        self.own += seconds * own_cpus
        self.busy += seconds * (own_cpus + other_cpus)

    def share(self, cpus, machine_cpus=None):
        return threads.CpuShare(clock=lambda: self.now, busy=lambda: self.busy,
                                own=lambda: self.own, cpus=cpus, machine_cpus=machine_cpus,
                                running=lambda: self.running)


@pytest.mark.parametrize("cpus, others, expected", [
    (2, 0.0, 2), (2, 0.3, 2), (2, 1.0, 1), (2, 1.9, 1), (2, 3.0, 1),
    (4, 1.0, 3), (4, 2.0, 2), (4, 8.0, 1), (1, 0.0, 1),
])
def test_threads_are_the_cpus_others_leave_free(cpus, others, expected):
    machine = FakeMachine()
    share = machine.share(cpus)
    assert share.threads == cpus  # nothing measured yet: all of them
    machine.run(0.5, own_cpus=min(cpus, 2), other_cpus=others)
    assert share.update() == expected
    assert share.others == pytest.approx(others)


def test_the_load_is_counted_against_all_the_processs_cpus():
    # 16 CPUs to run on, numba capped at 4 threads, others busy on 10: 6 are free, use 4
    machine = FakeMachine()
    share = machine.share(4, machine_cpus=16)
    machine.run(0.5, own_cpus=4, other_cpus=10.0)
    assert share.update() == 4
    machine.run(0.5, own_cpus=4, other_cpus=14.0)
    assert share.update() == 2


def test_the_share_is_measured_over_a_window_not_every_call():
    machine = FakeMachine()
    share = machine.share(2)
    machine.run(0.1, own_cpus=2, other_cpus=1.0)
    assert share.update() == 2  # under a quarter second: no new measurement
    machine.run(0.2, own_cpus=2, other_cpus=1.0)
    assert share.update() == 1
    machine.run(0.3, own_cpus=1, other_cpus=0.0)  # the other process ended
    assert share.update() == 2


def test_after_an_idle_gap_the_threads_runnable_now_count_not_the_gap():
    """Processes taking turns: while this one waited, another ran on both CPUs and has just
    stopped. That gap is not load now; the first call after it uses every CPU free at that
    moment, and the windows after it measure as before."""
    machine = FakeMachine()
    share = machine.share(2)
    machine.run(0.3, own_cpus=2, other_cpus=0.0)
    assert share.update() == 2
    machine.run(2.0, own_cpus=0.0, other_cpus=2.0)  # our idle turn: the other one ran
    machine.running = 0
    assert share.update() == 2
    machine.run(0.3, own_cpus=2, other_cpus=0.0)
    assert share.update() == 2
    # the same gap, but the other process is still running when we start: one thread
    machine.run(2.0, own_cpus=0.0, other_cpus=2.0)
    machine.running = 1
    assert share.update() == 1
    assert share.others == 1
    # that guess is checked after a short window: the other process did start
    machine.run(2.0, own_cpus=0.0, other_cpus=2.0)
    machine.running = 0
    assert share.update() == 2
    machine.run(threads._AFTER_GAP_S + 0.01, own_cpus=1.0, other_cpus=1.0)
    assert share.update() == 1
    machine.run(0.1, own_cpus=1.0, other_cpus=1.0)
    assert share.update() == 1  # the usual window again: no new measurement yet
    # busy through the gap ourselves (a long step): the gap is measured load as before
    machine.running = 0
    machine.run(2.0, own_cpus=1.0, other_cpus=1.0)
    assert share.update() == 1
    assert share.others == pytest.approx(1.0)


def test_the_running_threads_are_read_from_the_machine():
    others = threads._running_elsewhere(os.sched_getaffinity(0))
    assert others is not None and others >= 0
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        # the busy loop is runnable at every look (at least most of them: the scheduler may
        # catch it between two time slices, so the most of ten looks)
        seen = max(threads._running_elsewhere(set(range(os.cpu_count()))) for _ in range(10))
        assert seen >= 1
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize("looks, expected, taken_looks", [
    # a quiet machine: half the looks, all empty, settle it
    ([1] * 12, 0, 6),
    # the process that woke us, runnable for a moment and then blocked: nobody
    ([2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0, 8),
    ([3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1], 0, 11),
    # a busy process, missed by one look between two time slices: one
    ([2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], 1, 12),
    ([3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2], 1, 12),
    ([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2], 2, 12),
])
def test_what_most_looks_see_is_the_load_now(monkeypatch, looks, expected, taken_looks):
    readings = iter(looks)
    taken = []

    def runnable_now():
        taken.append(1)
        return next(readings)
    monkeypatch.setattr(contention, "runnable_now", runnable_now)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert threads._running_elsewhere({0, 1, 2, 3}, spacing_s=0) == expected
    assert len(taken) == taken_looks


def test_a_busy_process_beside_takes_a_cpu_from_the_plan():
    share = threads.CpuShare()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        share.update()
        time.sleep(0.6)
        assert share.update() == max(1, share.cpus - 1), share.others
        assert share.others >= 0.6
    finally:
        busy.kill()
        busy.wait()


def test_graphc_threads_pins_the_count(monkeypatch):
    monkeypatch.setenv("GRAPHC_THREADS", "1")
    assert threads.plan_threads() == 1
    monkeypatch.setenv("GRAPHC_THREADS", "999")
    assert threads.plan_threads() == threads.available_cpus()
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("GRAPHC_THREADS", bad)
        with pytest.raises(GraphcError, match="GRAPHC_THREADS"):
            threads.plan_threads()


@pytest.mark.parametrize("run", ["profile", "run_checked", "call"])
def test_profiled_and_checked_runs_take_the_threads_a_call_gets(run, monkeypatch):
    """graphc profile and the finite check run the plan's own kernels: on as many threads as
    a call would get (a profile on every CPU beside a busy process timed each parallel
    kernel's wait for a descheduled thread: tiny's step at 560 ms, its calls at 49)."""
    import numba
    a = np.random.default_rng(1).standard_normal((256, 512)).astype(np.float32)
    f = gc.compile(lambda a: gc.sum(gc.gelu(a @ a.T), axis=0))
    plan = f.plan_for(a)
    seen = []
    spy = numba.njit(lambda: numba.get_num_threads())
    original = threads.numba_threads

    def recording(count):
        seen.append(count)
        return original(count)
    monkeypatch.setattr(threads, "numba_threads", recording)
    monkeypatch.setenv("GRAPHC_THREADS", "1")
    before = numba.get_num_threads()
    if run == "profile":
        plan.profile(a, repeat=2, file=False)
    elif run == "run_checked":
        plan.run_checked(a)
    else:
        plan(a)
    assert seen and set(seen) == {1}
    assert numba.get_num_threads() == before == spy()  # restored afterwards


def test_a_plan_gives_the_same_bits_on_any_thread_count(monkeypatch):
    """The thread count follows the machine's load call by call; the results must not:
    float32 products split into blocks differently would differ in their last bits."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal((512, 192)).astype(np.float32)
    f = gc.compile(lambda a, b: gc.sum(gc.gelu(a @ b) * 2.0, axis=0) + gc.tanh(a @ b)[0])
    results = {}
    for pin in ("1", "2", "1"):
        monkeypatch.setenv("GRAPHC_THREADS", pin)
        results.setdefault(pin, []).append(f(a, b))
        assert f.plan_for(a, b)._thread_count == min(int(pin), threads.available_cpus())
    np.testing.assert_array_equal(results["1"][0], results["2"][0])
    np.testing.assert_array_equal(results["1"][0], results["1"][1])
    expected = np.sum(np.asarray(gc.gelu(gc.tensor(a.astype(np.float64) @ b)).numpy()) * 2.0,
                      axis=0) + np.tanh(a.astype(np.float64) @ b)[0]
    np.testing.assert_allclose(results["2"][0], expected, rtol=2e-4, atol=2e-3)


# ---- what each call met (runtime.contention) ------------------------------------------------

class FakeCalls:
    """A clock and the threads runnable on the machine, set by hand, for CallSignals."""

    def __init__(self, cpus=2, machine_cpus=None):
        self.now, self.running, self.looks = 0.0, 1, 0
        self.signals = contention.CallSignals(cpus, machine_cpus or cpus,
                                              clock=lambda: self.now, runnable=self._look)

    def _look(self):
        self.looks += 1
        return self.running

    def call(self, used, most=2, wall=0.01, waited=0.0, running=1, fastest=None):
        """A call on `used` threads of at most `most`, with `running` threads runnable on
        the machine as it ends (default: the caller alone); returns the count it asks for."""
        self.now += wall
        self.running = running
        return self.signals.after_call(used, most, wall, waited, fastest)

    def rise(self):
        """Calls on one thread that each see a free CPU, until one asks for more."""
        asked = [self.call(1) for _ in range(contention.ROOM_LOOKS)]
        assert asked == [None] * (contention.ROOM_LOOKS - 1) + [2]

    def contended(self):
        return self.call(2, waited=0.01, running=4)


@pytest.mark.parametrize("used, cpus, waited, expected", [
    (2, 2, 0.000, None), (2, 2, 0.004, None), (2, 2, 0.005, None),  # at most a quarter each
    (2, 2, 0.006, 1), (2, 2, 0.010, 1), (2, 2, 0.020, 1),
    (4, 4, 0.011, 3), (4, 4, 0.020, 2), (4, 4, 0.035, 1),
    (1, 2, 0.009, None),  # one thread: nothing to give up
])
def test_a_call_whose_threads_waited_for_a_cpu_drops_threads(used, cpus, waited, expected):
    calls = FakeCalls(cpus=cpus)
    assert calls.call(used, most=cpus, wall=0.01, waited=waited, running=cpus + 2) == expected


@pytest.mark.parametrize("wall, fastest, waited, expected", [
    # two threads waiting 15% of the call each: contended only when the call was also
    # SLOW_FACTOR times the plan's fastest on two threads
    (0.010, None, 0.003, None), (0.010, 0.006, 0.003, None), (0.010, 0.0049, 0.003, 1),
    (0.030, 0.005, 0.009, 1),
    (0.030, 0.005, 0.005, None),  # slow, but waiting under a tenth a thread: the host, not us
    (0.010, 0.006, 0.006, 1),  # over a quarter a thread is contended whatever the speed
])
def test_a_slow_call_needs_less_waiting_to_count_as_contended(wall, fastest, waited,
                                                               expected):
    calls = FakeCalls()
    assert calls.call(2, wall=wall, waited=waited, running=4, fastest=fastest) == expected


def test_plan_call_passes_the_fastest_call_on_as_many_threads(monkeypatch):
    monkeypatch.delenv("GRAPHC_THREADS", raising=False)
    monkeypatch.setattr(threads, "_shared_threads", lambda: 2)
    monkeypatch.setattr(threads, "rank_cpus", lambda: 2)
    share = threads.CpuShare(cpus=2, machine_cpus=2)
    monkeypatch.setattr(threads, "_SHARE", [share])
    seen = []
    monkeypatch.setattr(share, "after_call", lambda *args: seen.append(args[-1]))
    fastest = {}
    for pause in (0.03, 0.002, 0.01):
        with threads.plan_call(fastest=fastest):
            time.sleep(pause)
    # each call is judged against the fastest before it; the record keeps the fastest
    # (a sleep of 2 ms that overran 30 ms on a loaded machine would fail the last line)
    assert seen[0] is None
    assert 0.03 <= seen[1] < 1.0
    assert 0.002 <= seen[2] == fastest[2] < seen[1]


def test_short_calls_say_nothing_and_unknown_waits_leave_the_room_looks():
    calls = FakeCalls()
    assert calls.call(2, wall=contention.MIN_CALL_S / 2, waited=contention.MIN_CALL_S) is None
    asked = [calls.call(1, waited=None) for _ in range(contention.ROOM_LOOKS)]
    assert asked[-1] == 2


def test_a_few_calls_in_a_row_that_see_a_free_cpu_take_it():
    calls = FakeCalls()
    calls.rise()
    # one look that sees the CPU taken starts the count again
    calls.call(1)
    assert calls.call(1, running=2) is None
    calls.rise()
    # at the most already: no looks taken
    looks = calls.looks
    assert [calls.call(2) for _ in range(contention.ROOM_LOOKS + 1)] == [None] * 4
    assert calls.looks == looks


def test_the_room_is_counted_within_the_processs_share_of_the_machine():
    # 4 of a 16-CPU machine's CPUs, on 2 threads: 5 threads runnable machine-wide besides
    # the caller are about one of ours (scaled), so one more thread fits; 13 are three of
    # ours, and none does
    calls = FakeCalls(cpus=4, machine_cpus=16)
    asked = [calls.call(2, most=4, running=2 + 4) for _ in range(contention.ROOM_LOOKS)]
    assert asked[-1] == 3
    asked = [calls.call(2, most=4, running=2 + 12) for _ in range(contention.ROOM_LOOKS)]
    assert asked == [None] * contention.ROOM_LOOKS


def test_a_drop_holds_and_a_rise_that_meets_contention_at_once_holds_it_longer():
    calls = FakeCalls()
    assert calls.contended() == 1
    # free CPUs right after the drop do not raise it until the hold is over
    for _ in range(10):
        assert calls.call(1) is None
    calls.now += contention.HOLD_S
    calls.rise()
    # contended again at once: the hold doubles, and again, up to its cap
    assert calls.contended() == 1
    assert calls.signals._hold == 2 * contention.HOLD_S
    holds = []
    for _ in range(8):
        calls.now += calls.signals._hold
        calls.rise()
        assert calls.contended() == 1
        holds.append(calls.signals._hold)
    assert holds[0] == 4 * contention.HOLD_S and holds[-1] == contention.MAX_HOLD_S
    # a rise that ran clean for a good while: the next drop holds for the shortest time
    calls.now += contention.MAX_HOLD_S
    calls.rise()
    calls.now += contention.CALM_S
    assert calls.contended() == 1
    assert calls.signals._hold == contention.HOLD_S


def test_a_rise_that_ran_a_while_before_contention_does_not_lengthen_the_hold():
    """The bench's turns: alone for a turn (risen at its start), then two at once."""
    calls = FakeCalls()
    assert calls.contended() == 1
    calls.now += contention.HOLD_S
    calls.rise()
    calls.now += 2 * contention.HOLD_S
    assert calls.contended() == 1
    assert calls.signals._hold == contention.HOLD_S


def test_one_rise_lengthens_the_hold_once():
    # 4 threads dropping to 3, 2, 1 within a moment of one rise: one doubling, not three
    calls = FakeCalls(cpus=4)
    assert calls.call(4, most=4, waited=0.011, running=8) == 3
    calls.now += contention.HOLD_S
    assert [calls.call(3, most=4) for _ in range(contention.ROOM_LOOKS)][-1] == 4
    for used in (4, 3, 2):
        assert calls.call(used, most=4, waited=0.011 * used / 4, running=8) == used - 1
    assert calls.signals._hold == 2 * contention.HOLD_S


def test_a_calls_signal_sets_the_share_until_its_next_window():
    machine = FakeMachine()
    share = machine.share(2)
    machine.run(0.3, own_cpus=2, other_cpus=0.0)
    assert share.update() == 2
    machine.run(0.24, own_cpus=2, other_cpus=0.0)  # a window nearly over ...
    share.signals._hold = 0.0  # (no hold: the window alone)
    share.after_call(2, 2, wall_s=0.01, waited_s=0.012)  # ... when a call met contention
    assert share.threads == 1
    machine.run(0.02, own_cpus=1, other_cpus=1.0)
    assert share.update() == 1  # the window starts at the drop: no new measurement yet
    machine.run(0.25, own_cpus=1, other_cpus=0.0)  # the other process left
    assert share.update() == 2


def test_the_window_does_not_raise_the_count_while_a_drop_holds():
    machine = FakeMachine()
    share = machine.share(2)
    share.signals._hold = 1.0  # as after a few rises that met contention at once
    share.after_call(2, 2, wall_s=0.01, waited_s=0.012)
    machine.run(0.3, own_cpus=1, other_cpus=0.0)
    assert share.update() == 1  # the window saw a free CPU; the hold keeps the drop
    machine.run(0.8, own_cpus=1, other_cpus=0.0)
    assert share.update() == 2
    # a drop soon after the window's rise lengthens the hold as a call's rise does
    share.after_call(2, 2, wall_s=0.01, waited_s=0.012)
    assert share.signals._hold == 2.0


def test_the_share_scales_the_room_to_the_whole_machine(monkeypatch):
    """/proc/loadavg counts every CPU's runnable threads: on a 16-CPU machine, 4 others
    runnable are half a CPU of a 2-CPU process's share, so one thread finds room."""
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    machine = FakeMachine()
    runnable = []
    share = threads.CpuShare(clock=lambda: machine.now, busy=lambda: machine.busy,
                             own=lambda: machine.own, cpus=2, running=lambda: 0,
                             runnable=lambda: runnable[-1])
    share.threads = 1
    asked = []
    for _ in range(contention.ROOM_LOOKS):
        runnable.append(1 + 3)
        machine.run(0.01, own_cpus=1, other_cpus=0.4)
        share.after_call(1, 2, wall_s=0.01, waited_s=0.0)
        asked.append(share.threads)
    assert asked == [1] * (contention.ROOM_LOOKS - 1) + [2]


def test_a_plan_call_reports_what_it_met(monkeypatch):
    """Plan.thread_scope hands each call's wall time and its threads' runqueue wait to the
    share: a call that waited most of its time makes the next one run on one thread."""
    if threads.available_cpus() < 2:
        pytest.skip("one CPU: a plan never runs on two threads here")
    machine = FakeMachine()
    share = machine.share(2)
    monkeypatch.setattr(threads, "_SHARE", [share])
    monkeypatch.setattr(contention, "MIN_CALL_S", 0.0)
    monkeypatch.delenv("GRAPHC_THREADS", raising=False)
    waits = []

    class Waiting:
        def read(self, now):
            waits.append(now)
            return {"1": int(10e9) * len(waits)}  # 10 s of waiting during any call: contended
    monkeypatch.setattr(contention, "WAITING", Waiting())
    a = np.random.default_rng(2).standard_normal((64, 64)).astype(np.float32)
    f = gc.compile(lambda a: gc.sum(gc.tanh(a @ a), axis=0))
    first = f(a)
    assert f.plan_for(a)._thread_count == 2 and len(waits) == 2
    second = f(a)
    assert f.plan_for(a)._thread_count == 1
    np.testing.assert_array_equal(first, second)
    # the plan keeps its fastest call on each thread count, for the next calls' judging;
    # a checked call, slower on purpose, is neither judged nor recorded
    plan = f.plan_for(a)
    assert set(plan._fastest_calls) == {1, 2}
    plan._fastest_calls.clear()
    plan.run_checked(a)
    assert plan._fastest_calls == {}


def test_a_plan_called_from_several_threads_at_once(monkeypatch):
    """Each call gets its own input's result, and the call signals' bookkeeping, shared by
    the threads, raises nothing. (The calls share the plan's memory pool: unserialized, four
    threads got 395-659 wrong results of 800.)"""
    import threading as py_threading
    monkeypatch.setattr(contention, "MIN_CALL_S", 0.0)
    monkeypatch.delenv("GRAPHC_THREADS", raising=False)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((128, 128)).astype(np.float32) for _ in range(4)]
    f = gc.compile(lambda a: gc.tanh(a @ a) * 2.0 + a)
    f(inputs[0])
    f.plan_for(inputs[0]).wait_for_kernels()
    expected = [f(a) for a in inputs]
    errors, wrong, done = [], [], []

    def calls(k):
        try:
            for _ in range(200):
                if not np.array_equal(f(inputs[k]), expected[k]):
                    wrong.append(k)
                done.append(k)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)
    workers = [py_threading.Thread(target=calls, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert len(done) == 800 and wrong == []


# the skips below are for kernels without schedstat, decided from the file itself, so that a
# reader that wrongly finds none fails instead of skipping
_KERNEL_HAS_SCHEDSTAT = os.path.exists("/proc/thread-self/schedstat")

_WAIT_PROBE = """
import os, subprocess, sys, time
from runtime import contention
os.sched_setaffinity(0, {cpu})
busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu})) for _ in range(2)]
time.sleep(0.2)
before = contention.WAITING.read(time.monotonic())
t0 = time.perf_counter()
while time.perf_counter() - t0 < 0.5:
    pass
after = contention.WAITING.read(time.monotonic())
for p in busy:
    p.kill()
print(before is None or after is None, contention.waited_s(before, after) or 0.0)
"""


def test_the_threads_waiting_are_read_from_the_kernel():
    """Three busy threads pinned to one CPU: ours runs about a third of the half second and
    waits about two thirds (the run time field would read about 0.17 s)."""
    cpu = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", _WAIT_PROBE.format(cpu={cpu})],
                         capture_output=True, text=True, timeout=60, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    missing, waited = out.stdout.split()
    if not _KERNEL_HAS_SCHEDSTAT:
        pytest.skip("this kernel does not report schedstat (/proc/thread-self/schedstat)")
    assert missing == "False", out.stdout  # a reading where the kernel has one
    assert 0.25 < float(waited) < 0.5, out.stdout


def test_the_threads_read_are_those_that_ran_lately():
    """A new thread is read until two listings find it idle (numba's workers must count
    from the start); one whose run time grew is read for ACTIVE_S; the caller always."""
    import threading as py_threading
    waiting = contention.ThreadsWaiting()
    go, done, stop = py_threading.Event(), py_threading.Event(), py_threading.Event()

    def worker():  # runs once, when told, and then blocks without waking
        go.wait()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.05:
            pass
        done.set()
        stop.wait()
    busy, idle = py_threading.Thread(target=worker), py_threading.Thread(target=stop.wait)
    busy.start()
    idle.start()
    time.sleep(0.05)  # (until both block)
    try:
        if not _KERNEL_HAS_SCHEDSTAT:
            pytest.skip("this kernel does not report schedstat (/proc/thread-self/schedstat)")
        assert waiting.read(0.0) is not None
        busy_tid, idle_tid = str(busy.native_id), str(idle.native_id)
        caller = str(py_threading.get_native_id())
        assert {caller, busy_tid, idle_tid} <= set(waiting.files)  # new ones count
        go.set()
        done.wait(5)
        time.sleep(0.05)  # (until it blocks again)
        step = contention.RELIST_S + 0.01
        waiting.read(step)  # listed again: one ran, the other is new still
        assert busy_tid in waiting.files and idle_tid in waiting.files
        reading = waiting.read(2 * step)  # two listings since it appeared, idle: dropped
        assert idle_tid not in waiting.files and busy_tid in reading
        waiting.read(step + contention.ACTIVE_S - 0.1)  # idle since it ran, within ACTIVE_S
        assert busy_tid in waiting.files
        waiting.read(2 * step + contention.ACTIVE_S + 0.1)  # idle for longer: not read
        assert busy_tid not in waiting.files and caller in waiting.files
    finally:
        go.set()
        stop.set()
        busy.join()
        idle.join()
    waiting.forget()
    assert waiting.files == {}


def test_a_calls_wait_is_taken_over_the_threads_both_readings_have():
    """Another Python thread's call may list the threads again between a call's two
    readings: a thread listed in between brings its whole past wait, which is not ours."""
    before = {"10": 5_000_000, "11": 1_000_000}
    after = {"10": 7_000_000, "12": 3_000_000_000}  # 11 ended, 12 newly listed
    assert contention.waited_s(before, after) == pytest.approx(0.002)
    assert contention.waited_s(before, None) is None
    assert contention.waited_s({"1": 0}, {"2": 5}) is None


def test_no_schedstat_reads_as_unknown(monkeypatch):
    waiting = contention.ThreadsWaiting()

    tried = []

    def missing(self):
        tried.append(self.path)
        raise FileNotFoundError(self.path)
    monkeypatch.setattr(contention.ProcFile, "read", missing)
    assert waiting.read(0.0) is None  # not 0.0: a wait nobody measured is not "none"
    assert tried
    tried.clear()
    assert waiting.read(contention.RELIST_S + 1) is None
    assert not tried  # the calling thread's own file was missing: not asked again
    assert contention.runnable_now() is None


def test_a_forked_child_does_not_keep_the_parents_files_nor_its_lock():
    """A child keeps only the forking thread: a lock another thread held at the fork would
    never be released there, and the next plan call would hang on it."""
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc here: nothing is kept open to inherit")
    contention.WAITING.read(time.monotonic())
    contention.runnable_now()
    inherited = [p.fd for p in contention.WAITING.files.values()] + [contention.LOADAVG.fd]
    inherited = [fd for fd in inherited if fd is not None]
    assert inherited
    read, write = os.pipe()
    contention.LOCK.acquire()  # as another thread's plan call would hold it
    try:
        pid = os.fork()
        if pid == 0:  # the child: report which inherited descriptors are still open
            try:
                still = []
                for fd in inherited:
                    try:
                        os.fstat(fd)
                        still.append(fd)
                    except OSError:
                        pass
                free = contention.LOCK.acquire(timeout=1)
                os.write(write, repr((still, contention.WAITING.files == {}, free)).encode())
            finally:
                os._exit(0)
    finally:
        contention.LOCK.release()
    os.close(write)
    os.waitpid(pid, 0)
    still, emptied, free = eval(os.read(read, 4096).decode())
    os.close(read)
    assert still == [] and emptied and free
    assert all(os.fstat(fd) for fd in inherited)  # the parent's are its own still


def test_a_plan_whose_calls_are_short_skips_reading_the_wait(monkeypatch):
    """A call under contention.MIN_CALL_S says nothing about the load; the plan's next call
    then saves the ~6 us of reading its threads' wait (a decoding loop's calls are short)."""
    machine = FakeMachine()
    monkeypatch.setattr(threads, "_SHARE", [machine.share(2)])
    monkeypatch.delenv("GRAPHC_THREADS", raising=False)
    reads = []

    class Waiting:
        def read(self, now):
            reads.append(now)
            return {"1": 0}
    monkeypatch.setattr(contention, "WAITING", Waiting())
    a = np.ones((8, 8), np.float32)
    f = gc.compile(lambda a: a @ a + 1.0)
    f(a)  # compiled (and called once) before counting
    f.plan_for(a).wait_for_kernels()  # (a plan whose kernels are still compiling is not watched)
    monkeypatch.setattr(contention, "MIN_CALL_S", 0.0)
    f(a)  # long enough by this measure: the next call is watched
    monkeypatch.setattr(contention, "MIN_CALL_S", 60.0)
    reads.clear()
    f(a)
    assert len(reads) == 1  # the wait before it; too short: not after
    f(a)
    assert len(reads) == 1  # the last call was short: none at all
    monkeypatch.setattr(contention, "MIN_CALL_S", 0.0)
    f(a)
    assert len(reads) == 1  # still short by the last call, but long enough now ...
    f(a)
    assert len(reads) == 3  # ... so this one is measured again


def test_after_an_idle_gap_a_drop_before_it_no_longer_holds():
    """Processes taking turns (the bench's rounds): a drop at the start of a shared turn,
    even one held long, does not keep the next turn, alone, on fewer threads; nor does the
    gap's rise count as one that met contention."""
    machine = FakeMachine()
    share = machine.share(2)
    share.signals._hold = contention.MAX_HOLD_S
    machine.run(0.3, own_cpus=2, other_cpus=0.0)
    share.update()
    share.after_call(2, 2, wall_s=0.01, waited_s=0.012)
    assert share.threads == 1 and share.signals.holding()
    machine.run(1.0, own_cpus=0.0, other_cpus=0.0)  # idle, then a turn alone
    machine.running = 0
    assert share.update() == 2
    assert not share.signals.holding()
    share.after_call(2, 2, wall_s=0.01, waited_s=0.012)  # contended at once after the gap
    assert share.signals._hold == contention.HOLD_S


def test_the_call_signals_never_fail_a_call(monkeypatch):
    """An unexpected error in the bookkeeping after a call: the call returns its result,
    a warning says the signals are off, and later calls skip them."""
    machine = FakeMachine()
    share = machine.share(2)
    monkeypatch.setattr(threads, "_SHARE", [share])
    monkeypatch.setattr(threads, "_SIGNALS_OFF", [])
    monkeypatch.setattr(contention, "MIN_CALL_S", 0.0)
    monkeypatch.delenv("GRAPHC_THREADS", raising=False)
    broken = []

    def after_call(*args):
        broken.append(args)
        raise KeyError("a bug")
    a = np.ones((4, 4), np.float32)
    f = gc.compile(lambda a: a * 2.0 + 1.0)
    f(a)
    f.plan_for(a).wait_for_kernels()
    monkeypatch.setattr(share, "after_call", after_call)
    with pytest.warns(RuntimeWarning, match="signals is off"):
        np.testing.assert_array_equal(f(a), np.full((4, 4), 3.0, np.float32))
    assert len(broken) == 1 and threads._SIGNALS_OFF
    np.testing.assert_array_equal(f(a), np.full((4, 4), 3.0, np.float32))
    assert len(broken) == 1
