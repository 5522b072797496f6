"""Session 35's fixes of weak typing and fused sums found by review; each test failed before
its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_a_weak_float_carry_the_body_returns_as_an_int_is_refused():
    """A compiled loop promoted a weakly typed initial carry to whatever dtype the body
    returned, so a float carry the body casts to int32 was truncated to one (0.7 -> 0, the
    loop then gave 0 where eager code gives 2). Now it is promoted only where JAX promotes a
    weak carry (an int to an int or float dtype, a float to a float dtype); a float the body
    returns as an int is refused in one line naming the function, as JAX refuses it."""
    def doubled(i, c):
        return gc.cast(c * 2, "int32")
    with pytest.raises(GraphcError, match=r"returns the carry as \(i64\[\], i32\[\]\) but it "
                                          r"came in as \(i64\[\], f32\[\]\)"):
        gc.compile(lambda z: gc.fori_loop(0, 2, doubled, 0.7) + z)(np.int32(0))
    with pytest.raises(GraphcError, match="while_loop body function"):
        gc.compile(lambda z: gc.while_loop(lambda c: c < 3, lambda c: gc.cast(c + 1, "int32"),
                                           0.5) + z)(np.int32(0))
    # the promotions JAX makes still happen: an int or a float to float16
    x16 = np.array([1, 2], np.float16)
    _same(gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[0], 0.5))(x16), 3.5,
          np.float16)
    _same(gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[0], 0))(x16), 3,
          np.float16)


def test_a_weak_int_carry_the_body_returns_as_a_weak_float_stays_weak():
    """A loop carry starting as a Python int that the body returns as a weak float (c / 2 + 1)
    was carried as a strong float64, so `x_float32 + fori_loop(...)` was refused ("operands
    must have one dtype") where eager code and JAX give float32. Now such a carry stays
    weak, a float64 that takes the dtype of the tensor the loop's result meets."""
    x = np.ones(2, np.float32)

    def halved(i, c):
        return c / 2 + 1
    _same(gc.compile(lambda x: x + gc.fori_loop(0, 3, halved, 0))(x), [2.75, 2.75], np.float32)
    _same(x + gc.fori_loop(0, 3, halved, 0), [2.75, 2.75], np.float32)  # (eagerly)
    _same(gc.compile(lambda x, k: x + gc.fori_loop(0, 3, halved, k))(x, 0), [2.75, 2.75],
          np.float32)
    _same(gc.compile(lambda: gc.fori_loop(0, 3, halved, 0))(), 1.75, np.float64)
    _same(gc.compile(lambda x: x + gc.while_loop(
        lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] / 2 + 1), (0, 0))[1])(x),
        [2.75, 2.75], np.float32)
    _same(gc.compile(lambda x: x + gc.scan(lambda c, r: (c / 2 + 1, r), 0, np.arange(3))[0])(x),
          [2.75, 2.75], np.float32)
