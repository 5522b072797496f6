"""gc.axis_index(name) (jax.lax.axis_index): the example's index along a named vmap axis,
int32, eager and compiled, nested, inside loops and branches, and under grad."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.arange(6.0).reshape(2, 3)


def _index(name):
    return gc.cast(gc.axis_index(name), "float64")


def _both(f, *args):
    return [np.asarray(f(*args)), gc.compile(f)(*args)]


def test_index_per_example():
    for got in _both(gc.vmap(lambda r: gc.axis_index("i"), axis_name="i"), X):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, [0, 1])
    for got in _both(gc.vmap(lambda r: r * _index("i"), axis_name="i"), X):
        np.testing.assert_array_equal(got, X * np.arange(2)[:, None])


def test_nested_names():
    f = gc.vmap(gc.vmap(lambda v: gc.axis_index("i") * 10 + gc.axis_index("j"), axis_name="j"),
                axis_name="i")
    for got in _both(f, X):
        np.testing.assert_array_equal(got, [[0, 1, 2], [10, 11, 12]])


def test_inside_scan_and_cond():
    f = gc.vmap(lambda r: gc.scan(lambda c, v: (c + v * _index("i"), None), 0.0, r)[0],
                axis_name="i")
    for got in _both(f, X):
        np.testing.assert_array_equal(got, X.sum(1) * np.arange(2))
    g = gc.vmap(lambda r: gc.cond(gc.axis_index("i") > 0, lambda r: r, lambda r: -r, r),
                axis_name="i")
    for got in _both(g, X):
        np.testing.assert_array_equal(got, [-X[0], X[1]])


def test_gradient():
    g = gc.grad(lambda x: gc.sum(gc.vmap(lambda r: r * r * _index("i"), axis_name="i")(x)))
    np.testing.assert_array_equal(g(X), 2 * X * np.arange(2)[:, None])


def test_unbound_is_one_line():
    with pytest.raises(GraphcError, match=r"^axis_index: unbound axis name 'i'"):
        gc.axis_index("i")
    with pytest.raises(GraphcError, match=r"^axis_index: axis_name must be a vmap's axis "):
        gc.vmap(lambda r: gc.axis_index(0), axis_name="i")(X)
