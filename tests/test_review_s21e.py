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


def test_linearize_f_jvp_under_vmap_compile_and_grad():
    # jax's idiom vmap(f_jvp)(basis) for a Jacobian; before, a traced tangent failed with 'a
    # symbolic value cannot be turned into a numpy array'. The tangent part is added to the
    # traced graph, its residuals constants: J stays the one at the linearization point.
    x = np.array([0.1, 0.2, 0.3])
    _, f_jvp = gc.linearize(lambda x: gc.sin(x) * x[0], x)
    jac = np.cos(x) * x[0] * np.eye(3)
    jac[:, 0] += np.sin(x)
    np.testing.assert_allclose(gc.vmap(f_jvp)(np.eye(3)), jac.T, rtol=1e-14)
    np.testing.assert_allclose(gc.compile(gc.vmap(f_jvp, in_axes=1, out_axes=1))(np.eye(3)),
                               jac, rtol=1e-14)
    w = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(gc.grad(lambda v: gc.sum(f_jvp(v) * w))(np.ones(3)), jac.T @ w,
                               rtol=1e-14)
    np.testing.assert_allclose(f_jvp(np.ones(3)), jac @ np.ones(3), rtol=1e-14)
    # in a branch or a loop body on a value of the enclosing function (captured)
    branchy = gc.compile(lambda v, p: gc.cond(p > 0, lambda: f_jvp(v), lambda: f_jvp(v * 2.0)))
    np.testing.assert_allclose(branchy(np.ones(3), -1.0), jac @ np.full(3, 2.0), rtol=1e-14)
    looped = gc.compile(lambda v: gc.scan(lambda c, _: (c + f_jvp(v), None), np.zeros(3), None,
                                          length=2)[0])
    np.testing.assert_allclose(looped(w), 2.0 * jac @ w, rtol=1e-14)
    with pytest.raises(GraphcError, match=r"tangent leaf 0 is float64\[2\] but its primal"):
        gc.vmap(f_jvp)(np.eye(2))
    layer = gc.nn.Linear(3, 2)
    x32 = np.ones((1, 3), np.float32)
    _, g_jvp = gc.linearize(lambda x: gc.tanh(layer(x)), x32)
    before = g_jvp(x32)
    layer.weight.data[...] = 0.0  # traced too, f_jvp is J at the weights it was taken at
    np.testing.assert_array_equal(gc.compile(g_jvp)(x32), before)


@pytest.mark.parametrize("case", ["stack", "concat"])
def test_a_concat_with_only_some_operands_written_in_place_copies_the_others(case):
    # With generated kernels a product read by a concat is written straight into its slice
    # when a pool buffer of the concat's size is free (runtime.memory.products_into_concats,
    # here the buffer of x * 2). A concat with other operands too ran np.concatenate over
    # all of them, the product unreshaped: 'concat(f64[1,1,3], f64[1,1,3]) failed while
    # running: all the input arrays must have same number of dimensions' (found by the
    # aliasing fuzzer under vmap; numpy plans were right).
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3))

    def f(x, w):
        p = gc.sum(x * 2.0, axis=0, keepdims=True)
        if case == "stack":
            return gc.stack([p @ w, p], 1) * 3.0
        return gc.concatenate([p, p @ w, gc.transpose(w @ gc.transpose(p, (1, 0)), (1, 0))],
                              0) * 3.0

    def want(x, w):
        p = (x * 2.0).sum(0, keepdims=True)
        if case == "stack":
            return np.stack([p @ w, p], 1) * 3.0
        return np.concatenate([p, p @ w, (w @ p.T).T], 0) * 3.0

    compiled = gc.compile(f)
    for _ in range(3):
        x = rng.normal(size=(2, 3) if case == "stack" else (3, 3))
        np.testing.assert_allclose(compiled(x, w), want(x, w), rtol=1e-13)
