"""Session 35's fixes of known leftovers; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_a_weak_initial_carry_is_promoted_to_the_dtype_the_body_returns():
    """A loop carry starting as a Python number that the body returns in another dtype
    (c + x_int32[i] from 0, c + x_float64[i] from 0.0) was carried as int64 or float32 when
    compiled and refused ("operands must have one dtype"), where eager graphc and JAX (which
    promotes a weakly typed initial carry) give the body's dtype. Now compiled loops promote
    it too, and an initial int that does not fit the new dtype is refused in one line."""
    ints = np.arange(5, dtype=np.int32)
    floats64, floats32 = np.arange(5, dtype=np.float64), np.arange(5, dtype=np.float32)

    def summed(x):
        return gc.fori_loop(0, 5, lambda i, c: c + x[i], 0)
    for x, dtype in ((ints, np.int32), (floats32, np.float32)):
        _same(gc.compile(summed)(x), 10, dtype)
        _same(summed(gc.tensor(x)), 10, dtype)
    _same(gc.compile(lambda x: gc.fori_loop(0, 5, lambda i, c: c + x[i], 0.0))(floats64),
          10.0, np.float64)
    _same(gc.compile(lambda x, k: gc.fori_loop(0, 5, lambda i, c: c + x[i], k))(ints, 3),
          13, np.int32)

    carry, ys = gc.compile(lambda x: gc.scan(lambda c, r: (c + r, c), 0, x))(ints)
    _same(carry, 10, np.int32)
    _same(ys, [0, 0, 1, 3, 6], np.int32)
    i, total = gc.compile(lambda x: gc.while_loop(
        lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] + x[c[0]]), (0, 0)))(ints)
    _same(i, 5, np.int64)  # (kept weak by the body: a Python int's int64)
    _same(total, 10, np.int32)

    with pytest.raises(GraphcError, match="1099511627776 does not fit in int32"):
        gc.compile(lambda x: gc.fori_loop(0, 5, lambda i, c: c + x[i], 2**40))(ints)
