"""Hostile review of session 21's gc.linearize, gc.switch and uncopied pass-through carries
(session 21e): each test failed before its fix."""
import numpy as np

import graphc as gc


def test_eager_switch_of_one_branch_returns_an_array_of_its_own():
    # as eager cond's (and a switch of two branches'), so that updating the result in place
    # leaves the caller's array alone; before, the one branch's result was x itself
    x = np.array([0.5, -1.0, 2.0])
    for index in (0, 3, -1):
        out = gc.switch(index, [lambda v: v], x)
        data = np.asarray(getattr(out, "data", out))
        assert not np.shares_memory(data, x)
        np.testing.assert_array_equal(data, x)
        tree = gc.switch(index, [lambda d: {"u": d["u"], "w": d["u"].T}], {"u": x})
        assert not any(np.shares_memory(np.asarray(getattr(v, "data", v)), x)
                       for v in tree.values())
    # gradients still flow through the copy
    g = gc.grad(lambda v: gc.sum(gc.switch(2, [lambda u: u], v) * v))(x)
    np.testing.assert_allclose(g, 2.0 * x, rtol=1e-15)
