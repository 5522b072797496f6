"""fori_loop takes JAX's `unroll=` keyword (it was a TypeError), checked as scan's, with the
same values: it changes nothing in a graphc loop."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

XS = np.arange(6.0).reshape(3, 2)


@pytest.mark.parametrize("unroll", [1, 2, 5, True, False])
def test_unroll_gives_the_same_values(unroll):
    want = XS.sum(axis=0)
    np.testing.assert_array_equal(
        np.asarray(gc.fori_loop(0, 3, lambda i, c: c + XS[i], np.zeros(2), unroll=unroll)), want)
    f = gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[i], np.zeros(2),
                                          unroll=unroll))
    np.testing.assert_array_equal(f(XS), want)
    g = gc.grad(lambda x: gc.sum(gc.fori_loop(0, 3, lambda i, c: gc.sin(c), x, unroll=unroll)))
    x1 = XS[1]  # d/dx sin(sin(sin(x))), by the chain rule in float64
    s1, s2 = np.sin(x1), np.sin(np.sin(x1))
    np.testing.assert_allclose(g(x1), np.cos(s2) * np.cos(s1) * np.cos(x1), rtol=1e-12)


@pytest.mark.parametrize("unroll", [0, -1, 1.5, "2"])
def test_bad_unroll_is_one_line(unroll):
    with pytest.raises(GraphcError, match=r"^fori_loop: unroll must be an int >= 1 or a bool, "
                                          r"got " + repr(unroll).replace(".", r"\.")):
        gc.fori_loop(0, 3, lambda i, c: c, 0.0, unroll=unroll)


def test_unroll_with_traced_bounds_is_refused_as_jax():
    f = gc.compile(lambda n, x: gc.fori_loop(0, n, lambda i, c: c + 1, x, unroll=2))
    with pytest.raises(GraphcError, match=r"^fori_loop: unroll can only be used if the loop "
                                          r"bounds are statically known"):
        f(np.int64(3), XS[0])
    g = gc.compile(lambda n, x: gc.fori_loop(0, n, lambda i, c: c + 1, x))  # (no unroll: fine)
    np.testing.assert_array_equal(g(np.int64(3), XS[0]), XS[0] + 3)
