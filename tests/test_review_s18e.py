"""Session 18e review of today's additions (gc.jacrev / gc.jacfwd, gradients through captured
values, the new elementwise and reduction ops): each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc


X = np.array([0.5, -1.0, 2.0])


@pytest.mark.parametrize("compiled", [False, True])
def test_jacfwd_of_a_result_that_does_not_read_the_argument_is_zero(compiled):
    # refused before: "gradients() with respect to a value of another graph" (the result,
    # built from outer values only, lived outside the vmap of jvp)
    f = gc.jacfwd(lambda v, w: w * 2.0)
    f = gc.compile(f) if compiled else f
    np.testing.assert_array_equal(np.asarray(f(X, X)), np.zeros((3, 3)))
    g = gc.jacfwd(lambda v, w: (v * 2.0, w * 3.0))
    g = gc.compile(g) if compiled else g
    dv, dw = g(X, X)
    np.testing.assert_array_equal(np.asarray(dv), 2.0 * np.eye(3))
    np.testing.assert_array_equal(np.asarray(dw), np.zeros((3, 3)))
    both = gc.jacfwd(lambda v, w: w * 3.0, argnums=(0, 1))(X, X)
    np.testing.assert_array_equal(np.asarray(both[0]), np.zeros((3, 3)))
    np.testing.assert_array_equal(np.asarray(both[1]), 3.0 * np.eye(3))


@pytest.mark.parametrize("ddof", [2, 3])
def test_var_with_ddof_at_least_the_count_is_numpys_inf(ddof):
    # was NaN where numpy divides a positive sum of squares by max(N - ddof, 0) = 0: inf
    # (NaN only where the sum is 0, as numpy)
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        want_var, want_std = np.var(x, axis=1, ddof=ddof), np.std(x, axis=1, ddof=ddof)
    np.testing.assert_array_equal(want_var, [np.inf, np.nan])
    for run in (lambda f: f(gc.tensor(x)), lambda f: gc.compile(f)(x)):
        np.testing.assert_array_equal(np.asarray(run(lambda v: gc.var(v, axis=1, ddof=ddof))),
                                      want_var)
        np.testing.assert_array_equal(np.asarray(run(lambda v: gc.std(v, axis=1, ddof=ddof))),
                                      want_std)


@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_over_an_empty_axis_is_minus_inf(keepdims):
    # was refused: "max over axis 1 of size 0" (JAX's, torch's and scipy's give -inf)
    x = np.zeros((3, 0))
    want = np.full((3, 1) if keepdims else (3,), -np.inf)
    f = lambda v: gc.logsumexp(v, axis=1, keepdims=keepdims)
    for got in (f(gc.tensor(x)), gc.compile(f)(x)):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_gradient_in_vmap_inside_a_scan_body_through_a_body_value():
    # was zero: vmap over the enclosing function's xs inside a scan body hung its region from
    # the function's graph, not the body's, so gradients() found no path from w through cw
    rng = np.random.default_rng(0)
    w, xs = rng.normal(size=3), rng.normal(size=(4, 3))

    def f(w, xs):
        def body(c, x):
            cw = w * 2.0 * x
            g = gc.vmap(lambda r: gc.gradients([gc.sum(cw * r)], [w])[0])(xs)
            return c, gc.sum(g, axis=0)
        return gc.scan(body, gc.ones_like(w), xs)[1]

    want = np.stack([2.0 * x * xs.sum(0) for x in xs])
    np.testing.assert_allclose(np.asarray(gc.compile(f)(w, xs)), want, rtol=1e-12)


def test_std_with_ddof_under_polymorphic_shapes():
    # was refused: "var with ddof needs concrete sizes on the reduced axes"
    f = gc.compile(lambda x: gc.std(x, axis=0, ddof=1), polymorphic_shapes=(("n", "_"),))
    for rows in (5, 3, 1):
        x = np.random.default_rng(rows).normal(size=(rows, 4))
        with np.errstate(divide="ignore", invalid="ignore"):
            np.testing.assert_allclose(np.asarray(f(x)), np.std(x, axis=0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("jac", [gc.jacrev, gc.jacfwd])
def test_jacobians_pass_keyword_arguments_through(jac):
    # was a raw TypeError: "<lambda>() got an unexpected keyword argument 's'" (gc.grad and
    # JAX's jacobians pass keyword arguments through, undifferentiated)
    f = lambda v, s=1.0, m=None: v * s * (1.0 if m is None else m)
    np.testing.assert_array_equal(np.asarray(jac(f)(X, s=2.0)), 2.0 * np.eye(3))
    np.testing.assert_array_equal(np.asarray(jac(f)(X, s=2.0, m=np.full(3, 3.0))),
                                  6.0 * np.eye(3))
    J, aux = jac(lambda v, s: (v * s, s), has_aux=True)(X, s=4.0)
    np.testing.assert_array_equal(np.asarray(J), 4.0 * np.eye(3))
    inside = gc.compile(lambda v: jac(f)(v, s=5.0))(X)
    np.testing.assert_array_equal(np.asarray(inside), 5.0 * np.eye(3))


@pytest.mark.parametrize("decimals", [2, -1, 0])
def test_round_takes_numpys_decimals(decimals):
    # gc.round(x, 2) was a raw TypeError ("round() takes 1 positional argument")
    x = np.array([0.125, 0.135, 2.675, -0.005, 1234.5, 15.0, np.nan])
    for dtype in (np.float64, np.float32):
        v = x.astype(dtype)
        want = np.round(v, decimals)
        f = lambda a: gc.round(a, decimals)
        for got in (f(gc.tensor(v)), gc.compile(f)(v)):
            got = np.asarray(got)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", [gc.tril, gc.triu])
def test_tril_triu_of_fewer_than_two_axes_is_one_error(op):
    # was a raw ValueError ("not enough values to unpack") from the shape's last two axes
    from ir.errors import GraphcError
    for value in (np.arange(3.0), np.float64(1.0)):
        with pytest.raises(GraphcError, match="at least two axes"):
            op(gc.tensor(value))


def test_the_var_method_takes_ddof():
    # x.var(ddof=1) was a raw TypeError (gc.var takes ddof, numpy's method too)
    x = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 3.0]])
    np.testing.assert_allclose(np.asarray(gc.tensor(x).var(axis=1, ddof=1)), x.var(axis=1, ddof=1))
    np.testing.assert_allclose(np.asarray(gc.compile(lambda v: v.var(ddof=1))(x)), x.var(ddof=1))


def test_jacrev_of_a_constant_output_is_zero_as_jacfwds():
    # was refused: "jacrev: a float64 output has no Jacobian; only floating-point values do"
    # (an output fn computes from no argument is a numpy value, not a traced one)
    for jac in (gc.jacrev, gc.jacfwd):
        J = jac(lambda v: X * 2.0)(X)
        np.testing.assert_array_equal(np.asarray(J), np.zeros((3, 3)))
        dy = gc.compile(jac(lambda v, w: (v * w, np.ones(2)), argnums=(0, 1)))(X, X)[1]
        assert [np.shape(d) for d in dy] == [(2, 3), (2, 3)]
        np.testing.assert_array_equal(np.asarray(dy[0]), np.zeros((2, 3)))
        J, aux = jac(lambda v: (1.5, v), has_aux=True)(X)
        np.testing.assert_array_equal(np.asarray(J), np.zeros(3))
