"""Eager grad of a function whose Python int n is scan's length compiles a plan per n; the
recompile warning's advice for n is the int one (loop a fixed N steps and mask), not the
'computed with instead (k * x), it is traced' of a float() use, which a scan length never is."""
import warnings

import numpy as np

import graphc as gc

X = np.array([0.3, 1.0])


def _sines(c, n):
    return gc.sum(gc.scan(lambda c, _: (gc.sin(c), None), c, None, length=n)[0])


def test_scan_length_gets_the_int_advice():
    g = gc.grad(_sines)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 10):
            g(X, n)
    messages = [str(w.message) for w in caught if isinstance(w.message, gc.RecompileWarning)]
    assert len(messages) == 1, messages
    assert "n: used as an int (a range, a shape)" in messages[0]
    assert "k * x" not in messages[0]


def _sines_then_if(c, n):
    c = gc.sum(gc.scan(lambda c, _: (gc.sin(c), None), c, None, length=n)[0])
    if n > 100:  # (a use after the scan: the probe trace must go past the length)
        c = c * 2
    return c


def test_the_probe_goes_past_the_scan_length():
    g = gc.grad(_sines_then_if)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 10):
            g(X, n)
    messages = [str(w.message) for w in caught if isinstance(w.message, gc.RecompileWarning)]
    assert len(messages) == 1, messages
    assert "n: used in an `if`" in messages[0]
    assert "n: used as an int" in messages[0]
