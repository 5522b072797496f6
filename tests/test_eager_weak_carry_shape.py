"""Eager loops check the shape of a weakly typed initial carry (a Python or numpy number),
as the compiled loop and JAX do: `fori_loop(0, 3, lambda i, c: c + xs[i], 0.0)` returned a
vector eagerly where compiled refuses, and scan's ys then failed inside its stacking."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

XS = np.arange(6.0).reshape(3, 2)
MESSAGE = r"returns the carry as \(f64\[2\]\) but it came in as \((f64|i64)\[\]\)"


@pytest.mark.parametrize("init", [0.0, np.float64(0.0), 0], ids=["float", "np.float64", "int"])
def test_fori_and_scan_and_while_refuse_a_reshaped_weak_carry(init):
    with pytest.raises(GraphcError, match=r"fori_loop body function <lambda>.*" + MESSAGE):
        gc.fori_loop(0, 3, lambda i, c: c + XS[i], init)
    with pytest.raises(GraphcError, match=r"scan function <lambda>.*" + MESSAGE):
        gc.scan(lambda c, x: (c + x, c), init, XS)
    with pytest.raises(GraphcError, match=r"scan function <lambda>.*" + MESSAGE):
        gc.scan(lambda c, x: (c + x, None), init, XS)
    with pytest.raises(GraphcError, match=r"while_loop body function <lambda>.*" + MESSAGE):
        gc.while_loop(lambda c: gc.sum(c) < 10, lambda c: c + XS[0] + 1, init)


def test_compiled_says_the_same():
    with pytest.raises(GraphcError, match=MESSAGE):
        gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[i], 0.0))(XS)


def test_weak_carries_that_keep_their_shape_still_run():
    assert float(gc.fori_loop(0, 3, lambda i, c: c + XS[i, 0], 0.0)) == 6.0
    assert int(gc.fori_loop(0, 4, lambda i, c: c + i, 0)) == 6
    c, ys = gc.scan(lambda c, x: (c + gc.sum(x), c), 0.0, XS)
    assert float(c) == 15.0
    np.testing.assert_array_equal(np.asarray(ys), [0.0, 1.0, 6.0])
    a, b = gc.fori_loop(0, 3, lambda i, c: (c[0] + XS[i], c[1] + 1.0), (np.zeros(2), 0.0))
    np.testing.assert_array_equal(np.asarray(a), [6.0, 9.0])
    assert float(b) == 3.0
