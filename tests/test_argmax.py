"""gc.argmax and gc.argmin (ir/ops/api.py) against numpy's on random inputs with ties, NaN,
infinities and integer extremes: eagerly, compiled, under vmap and with a polymorphic batch;
an index carries no gradient, but a value picked by it does."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

PAIRS = [(gc.argmax, np.argmax), (gc.argmin, np.argmin)]


def _random_input(rng, dtype):
    shape = tuple(rng.integers(1, 5, size=rng.integers(1, 4)))
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        pool = np.array([info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max], dtype)
        return rng.choice(pool, size=shape)
    pool = np.array([-np.inf, -2.0, -0.0, 0.0, 1.5, 1.5, np.inf, np.nan], dtype)
    x = rng.choice(pool, size=shape)  # few values: ties everywhere, a NaN now and then
    return np.where(rng.random(shape) < 0.8, np.nan_to_num(x, nan=3.0), x).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_matches_numpy_on_random_inputs(dtype):
    rng = np.random.default_rng(0)
    for _ in range(30):
        x = _random_input(rng, dtype)
        axis = rng.choice([None] + list(range(-x.ndim, x.ndim)))
        axis = None if axis is None else int(axis)
        keepdims = bool(rng.integers(2))
        for ours, numpys in PAIRS:
            expected = numpys(x, axis=axis, keepdims=keepdims)
            eager = np.asarray(ours(gc.tensor(x), axis, keepdims))
            compiled = gc.compile(lambda x: ours(x, axis, keepdims))(x)
            for got in (eager, compiled):
                assert got.dtype == np.int64
                assert got.shape == expected.shape, (x, axis, keepdims)
                np.testing.assert_array_equal(got, expected, err_msg=f"{x!r} axis={axis}")


def test_under_vmap_with_a_polymorphic_batch_and_as_methods():
    rng = np.random.default_rng(1)
    for batch in (3, 5):
        x = rng.normal(size=(batch, 6)).astype(np.float32)
        rows = gc.compile(gc.vmap(lambda r: gc.argmax(r, 0)), polymorphic_shapes=(("b", "_"),))
        np.testing.assert_array_equal(rows(x), x.argmax(1))
    np.testing.assert_array_equal(np.asarray(gc.tensor(x).argmin(axis=0)), x.argmin(0))


def test_a_value_picked_by_the_index_has_a_gradient():
    x = np.array([0.5, 3.0, -1.0, 3.0])

    def picked(x):
        return x[gc.argmax(x)] * 2.0  # the first of the tied maxima

    np.testing.assert_array_equal(gc.grad(picked)(x), [0.0, 2.0, 0.0, 0.0])
    np.testing.assert_array_equal(gc.compile(gc.grad(picked))(x), [0.0, 2.0, 0.0, 0.0])


def test_bad_axes_are_refused_with_one_line():
    with pytest.raises(GraphcError, match="argmax over axis 1 of size 0"):
        gc.argmax(gc.tensor(np.ones((2, 0))), 1)
    with pytest.raises(GraphcError, match="one axis"):
        gc.argmax(gc.tensor(np.ones((2, 2))), (0, 1))
    with pytest.raises(GraphcError, match="axis 2"):
        gc.compile(lambda x: gc.argmin(x, 2))(np.ones((2, 2)))
