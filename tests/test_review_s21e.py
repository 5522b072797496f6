"""Hostile review of session 21's gc.linearize, gc.switch and uncopied pass-through carries
(session 21e): each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


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


def test_a_cond_inside_a_switch_branch_names_itself_not_the_switch():
    # before, its message was rewritten as switch's: 'switch: <lambda> ... returns (f64[3])
    # but <lambda> returns (f64[1])', naming two functions that are not switch's branches
    def inner(v):
        return gc.cond(gc.sum(v) > 0, lambda u: u, lambda u: u[:1], v)

    x = np.ones(3)
    with pytest.raises(GraphcError, match=r"^cond: true_fun <lambda> .* but false_fun <lambda> "
                                          r"returns \(f64\[1\]\); both must"):
        gc.compile(lambda i, v: gc.switch(i, [inner, lambda v: v], v))(0, x)
    # switch's own disagreement is still phrased as switch's
    with pytest.raises(GraphcError, match=r"^switch: branch 0 <lambda> .* but branch 1 "
                                          r"<lambda> returns \(f64\[2\]\); all must"):
        gc.compile(lambda i, v: gc.switch(i, [lambda v: v, lambda v: v[:2]], v))(0, x)
