"""Reproductions of defects found reviewing the merged work; each test failed before its fix."""
from __future__ import annotations

import numpy as np

import graphc as gc


def test_donated_array_also_passed_as_another_argument_is_not_overwritten_early():
    # the plan wrote w * 2 over the donated w while x (the same array) was still to be read
    def step(w, x):
        y = w * 2.0
        return y, (x * 3.0).sum() + y.sum()

    w = np.arange(4.0)
    y, total = gc.compile(step, donate_argnums=(0,))(w, w)
    np.testing.assert_array_equal(y, [0.0, 2.0, 4.0, 6.0])
    assert float(total) == 30.0


def test_same_array_donated_twice_gives_both_results():
    def step(a, b):
        return a + 1.0, b * 2.0

    w = np.arange(4.0)
    a1, b2 = gc.compile(step, donate_argnums=(0, 1))(w, w)
    np.testing.assert_array_equal(a1, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(b2, [0.0, 2.0, 4.0, 6.0])


def test_donated_view_of_another_argument_is_not_overwritten_early():
    def step(a, b):
        return a * 10.0, b.sum()

    base = np.arange(6.0)
    out, total = gc.compile(step, donate_argnums=(0,))(base[:3], base)
    np.testing.assert_array_equal(out, [0.0, 10.0, 20.0])
    assert float(total) == 15.0


def test_unrelated_donated_arrays_are_still_updated_in_place():
    def step(w):
        return w * 2.0

    compiled = gc.compile(step, donate_argnums=(0,))
    w = np.arange(4.0)
    out = compiled(w)
    assert np.shares_memory(out, w)  # the donation still takes effect without aliasing
