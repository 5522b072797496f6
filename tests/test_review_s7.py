"""Defects found by the hostile review of session 7's speed changes (attn, accum, rowk); both
were on main before those branches (the branches' own changes held up). Each test failed
before its fix."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from runtime.codegen import compile_graph
from runtime.interpreter import run


def test_a_fortran_ordered_donated_array_receives_the_kernels_writes():
    """A donated input that is not C-contiguous is copied on entry; the copy was Fortran-ordered
    again (np.array keeps the layout), and the numba kernels, which write their result through
    a C-order reshape of it (gelu's rows), wrote into a temporary: the returned array held
    the input's old values."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 4)).astype(np.float32)
    idx = np.array([1, 3, 0, 4, 2, 2])

    def fn(x, t, i):
        return gc.gelu(gc.take(t, i) * 2.0)

    for dtype in (np.float32, np.float64):
        x = np.asfortranarray(rng.standard_normal((6, 4)).astype(dtype))
        t = table.astype(dtype)
        want = gc.compile(fn)(x.copy(), t, idx)
        got = gc.compile(fn, donate_argnums=(0,))(x, t, idx)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        # and the values are gelu's (not the donated input's)
        u = 2.0 * t[idx].astype(np.float64)
        ref = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u ** 3)))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def _scatter_graph(shape, n_idx, rows):
    return gc.trace(lambda u, i: gc.scatter_add(u, i, rows), gc.spec(shape, "float32"),
                    gc.spec((n_idx,), "int64"))


def test_scatter_add_with_an_inf_update_touches_only_its_row():
    """The library scatter_add (the interpreter, eager mode, plans without numba) summed
    few-row scatters as a one-hot matrix product: 0 * inf put NaN into every row of that
    column. The compiled kernel adds each update to its own row only."""
    updates = np.ones((3, 4), np.float32)
    updates[1, 2] = np.inf
    updates[0, 3] = np.nan
    idx = np.array([0, 2, 2])
    want = np.zeros((5, 4), np.float32)
    want[0] = [1, 1, 1, np.nan]
    want[2] = [2, 2, np.inf, 2]
    graph = _scatter_graph((3, 4), 3, 5)
    np.testing.assert_array_equal(run(graph, updates, idx)[0], want)
    np.testing.assert_array_equal(compile_graph(graph, jit=True)(updates, idx)[0], want)
    np.testing.assert_array_equal(compile_graph(graph, jit=False)(updates, idx)[0], want)


def test_scatter_add_out_of_range_indices_are_an_error_everywhere():
    """The library scatter_add dropped an index >= rows or < -rows (the one-hot product
    matched no row) where take and the compiled kernel raise: now one error in both."""
    graph = _scatter_graph((3, 4), 3, 5)
    updates = np.ones((3, 4), np.float32)
    for bad in ([0, 5, 1], [0, -6, 1]):
        idx = np.array(bad)
        with pytest.raises(IndexError, match="out of range"):
            run(graph, updates, idx)
        for jit in (True, False):
            with pytest.raises(GraphcError, match="out of range"):
                compile_graph(graph, jit=jit)(updates, idx)
    # in range, negative indices count from the end in both
    idx = np.array([-1, -5, 4])
    want = np.zeros((5, 4), np.float32)
    want[4], want[0] = 2, 1
    np.testing.assert_array_equal(run(graph, updates, idx)[0], want)
    np.testing.assert_array_equal(compile_graph(graph, jit=True)(updates, idx)[0], want)
