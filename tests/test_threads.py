"""Plans size their thread team from the CPUs other processes leave free (runtime.threads)."""
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from runtime import threads


class FakeMachine:
    """A clock, the machine's busy CPU-seconds and this process's CPU-seconds, advanced by
    hand: `run(seconds, own_cpus, other_cpus)`."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0

    def run(self, seconds, own_cpus, other_cpus):
        self.now += seconds
        self.own += seconds * own_cpus
        self.busy += seconds * (own_cpus + other_cpus)

    def share(self, cpus):
        return threads.CpuShare(clock=lambda: self.now, busy=lambda: self.busy,
                                own=lambda: self.own, cpus=cpus)


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


def test_the_share_is_measured_over_a_window_not_every_call():
    machine = FakeMachine()
    share = machine.share(2)
    machine.run(0.1, own_cpus=2, other_cpus=1.0)
    assert share.update() == 2  # under a quarter second: no new measurement
    machine.run(0.2, own_cpus=2, other_cpus=1.0)
    assert share.update() == 1
    machine.run(0.3, own_cpus=1, other_cpus=0.0)  # the other process ended
    assert share.update() == 2


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


@pytest.mark.parametrize("pin", ["1", "2"])
def test_plans_give_the_same_values_on_any_thread_count(monkeypatch, pin):
    monkeypatch.setenv("GRAPHC_THREADS", pin)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 192)), rng.standard_normal((192, 160))
    f = gc.compile(lambda a, b: gc.sum(gc.gelu(a @ b) * 2.0, axis=0))
    expected = np.sum(np.asarray(gc.gelu(gc.tensor(a @ b)).numpy()) * 2.0, axis=0)
    np.testing.assert_allclose(f(a, b), expected, rtol=1e-12)
    plan = f.plan_for(a, b)
    assert plan._thread_count == min(int(pin), threads.available_cpus())
