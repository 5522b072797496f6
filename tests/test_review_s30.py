"""Session 30's findings: each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc


def _pick(x, i):
    return x[i] * 2.0


@pytest.mark.parametrize("index", [2, np.int64(2), np.array(2)], ids=["int", "int64", "0-d"])
def test_vjp_of_an_integer_primal_gives_none_as_jaxs_float0(index):
    """Before: the pullback refused the integer ("cannot differentiate with respect to a
    int64 value"), and a Python int became a float64 that no index takes."""
    x = np.arange(5.0)
    out, pullback = gc.vjp(_pick, x, index)
    assert out == 4.0
    dx, di = pullback(np.float64(1.0))
    np.testing.assert_array_equal(dx, [0, 0, 2, 0, 0])
    assert di is None


def test_vjp_python_int_factor_is_an_integer_and_a_float_one_is_differentiated():
    x = np.arange(5.0)
    out, pullback = gc.vjp(lambda x, s: x * s, x, 3)
    np.testing.assert_array_equal(out, [0, 3, 6, 9, 12])
    dx, ds = pullback(np.ones(5))
    np.testing.assert_array_equal(dx, [3] * 5)
    assert ds is None
    dx, ds = gc.vjp(lambda x, s: x * s, x, 3.0)[1](np.ones(5))
    assert float(ds) == 10.0


def test_vjp_of_an_integer_primal_traced_under_compile_and_vmap():
    x = np.arange(5.0)

    def pulled(x, i):
        return gc.vjp(_pick, x, i)[1](1.0)[0]
    np.testing.assert_array_equal(gc.compile(pulled)(x, 3), [0, 0, 0, 2, 0])
    rows = gc.vmap(lambda ct: gc.vjp(_pick, x, 1)[1](ct)[0])(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(rows), [[0, 2, 0, 0, 0], [0, 4, 0, 0, 0]])


def test_vjp_with_only_integer_primals_pulls_back_to_nones():
    out, pullback = gc.vjp(lambda i: i * 2, 3)
    assert out == 6 and pullback(1) == (None,)
