"""Session 18b: a reviewer's open leads on indexing, symbolic slices, einsum broadcasting,
relu's sign of zero, eager fori_loop carries and layer_norm overflow. Oracles: numpy, torch
(CPU) and JAX's documented rules; eager and compiled (gc.compile) paths are both checked.
Each test failed before its fix.

1. A run-time index (a 0-d integer tensor) on the first axis, x[i], went to a gather that
   raised out of range (index 5 of 3 rows), while x[:, i] clamped as JAX does for every
   traced index (a negative one counts from the end first). Fix (ir/ops/api.py, getitem):
   a 0-d integer index takes the dynamic_slice path on every axis.
"""
import numpy as np
import pytest

import graphc as gc


def jax_index(i, length):
    """The position a traced scalar index reads in JAX: negative counts from the end, then
    clamped into the axis."""
    i = int(i)
    if i < 0:
        i += length
    return min(max(i, 0), length - 1)


ROWS = np.arange(12.0, dtype=np.float32).reshape(3, 4)


@pytest.mark.parametrize("i", [-9, -4, -3, -1, 0, 2, 3, 5, np.iinfo(np.int64).max])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_traced_index_on_the_first_axis_clamps_like_the_others(i, dtype):
    i = np.asarray(i).astype(dtype) if abs(i) < 2 ** 31 or dtype == np.int64 else None
    if i is None:
        pytest.skip("out of int32's range")
    want_row = ROWS[jax_index(i, 3)]
    want_col = ROWS[:, jax_index(i, 4)]
    first = gc.compile(lambda x, k: x[k])
    second = gc.compile(lambda x, k: x[:, k])
    np.testing.assert_array_equal(np.asarray(first(ROWS, i)), want_row)
    np.testing.assert_array_equal(np.asarray(second(ROWS, i)), want_col)
    np.testing.assert_array_equal(np.asarray(gc.tensor(ROWS)[gc.tensor(i)]), want_row)
    np.testing.assert_array_equal(np.asarray(gc.tensor(ROWS)[:, gc.tensor(i)]), want_col)


@pytest.mark.parametrize("i", [-5, -1, 1, 7])
def test_traced_index_gradient_lands_on_the_clamped_row(i):
    k = np.int64(i)
    want = np.zeros_like(ROWS)
    want[jax_index(i, 3)] = 2 * ROWS[jax_index(i, 3)]
    loss = lambda x, k: gc.sum(x[k] * x[k])
    np.testing.assert_allclose(np.asarray(gc.compile(gc.grad(loss))(ROWS, k)), want)
    np.testing.assert_allclose(np.asarray(gc.grad(loss)(gc.tensor(ROWS), gc.tensor(k))), want)


def test_traced_index_per_example_under_vmap():
    ks = np.array([-7, -1, 0, 2, 4], np.int64)
    want = np.stack([ROWS[jax_index(k, 3)] for k in ks])
    f = gc.vmap(lambda x, k: x[k], in_axes=(None, 0))
    np.testing.assert_array_equal(np.asarray(gc.compile(f)(ROWS, ks)), want)
    np.testing.assert_array_equal(np.asarray(f(gc.tensor(ROWS), gc.tensor(ks))), want)
