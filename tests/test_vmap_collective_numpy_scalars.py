"""psum/pmean/pmax of a numpy number scalar passed to vmap with in_axes=None is weakly
typed, as a Python number's: eagerly np.float64(2.0) was read as a weak float32 and summed
into a strong float32, refused beside the float64 examples (compiled gave float64)."""
import numpy as np
import pytest

import graphc as gc

XS = np.arange(6.0).reshape(3, 2)


@pytest.mark.parametrize("scalar", [np.float64(2.0), np.float32(2.0), np.float16(2.0),
                                    np.int32(2), np.int64(2)], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("collective,factor", [("psum", 3.0), ("pmean", 1.0), ("pmax", 1.0)])
def test_numpy_scalar_collective_takes_the_examples_dtype(scalar, collective, factor):
    red = getattr(gc, collective)
    f = gc.vmap(lambda x, s: red(s, "b") * x, in_axes=(0, None), axis_name="b")
    want = XS * 2.0 * factor
    for got in (f(XS, scalar), gc.compile(f)(XS, scalar)):
        got = np.asarray(got)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


def test_numpy_float_sum_alone_keeps_its_dtype_eagerly():
    f = gc.vmap(lambda x, s: gc.psum(s, "b"), in_axes=(0, None), axis_name="b")
    got = f(XS, np.float64(2.0))
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(got), [6.0, 6.0, 6.0])
