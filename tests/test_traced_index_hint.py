"""Indexing a closed-over numpy array with a traced loop index (X[i]) works eagerly but not
traced; the refusal now says how to write it (a gc.tensor, or X as an argument)."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.arange(6.0).reshape(3, 2)


def test_hint_and_both_ways_out():
    with pytest.raises(GraphcError, match=r"if it indexes a numpy array \(X\[i\] of a "
                                          r"closed-over X\), make X a tensor \(gc.tensor\(X\)\)"):
        gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + X[i], x))(np.zeros(2))
    t = gc.tensor(X)
    np.testing.assert_array_equal(
        gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + t[i], x))(np.zeros(2)), [6, 9])
    np.testing.assert_array_equal(
        gc.compile(lambda x, a: gc.fori_loop(0, 3, lambda i, c: c + a[i], x))(np.zeros(2), X),
        [6, 9])


def test_no_hint_for_a_float_value():
    with pytest.raises(GraphcError) as info:
        gc.compile(lambda x: np.asarray(x) + 1)(np.zeros(2))
    assert "indexes" not in info.value.message
