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

