"""gc.linearize, as jax.linearize: (f(x), f_jvp) with f_jvp(v) = J(x) @ v. The graph of the
jvp is split into the part no tangent reaches, run once, and the tangent part each f_jvp call
runs (graphc/linearize.py). Checked against gc.jvp and finite differences in float64, and
structurally: the tangent part recomputes nothing of the primal."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

W = np.array([[0.5, -1.0, 0.2], [2.0, 0.3, -0.7]])


def f(x, y):
    h = gc.tanh(x @ W) * y[0]
    return {"h": h, "s": gc.sum(gc.exp(h) * y[1]), "n": gc.argmax(h, axis=0)}


def _numpy_f(x, y):
    h = np.tanh(x @ W) * y[0]
    return {"h": h, "s": np.sum(np.exp(h) * y[1])}


@pytest.mark.parametrize("seed", range(3))
def test_linearize_matches_jvp_and_finite_differences(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(4, 2)), (rng.normal(size=()), rng.normal(size=3))
    out, f_jvp = gc.linearize(f, x, y)
    want = _numpy_f(x, y)
    np.testing.assert_allclose(out["h"], want["h"], rtol=1e-14)
    np.testing.assert_allclose(out["s"], want["s"], rtol=1e-14)
    for _ in range(3):  # one linearization, many tangents
        dx, dy = rng.normal(size=(4, 2)), (rng.normal(size=()), rng.normal(size=3))
        got = f_jvp(dx, dy)
        ref = gc.jvp(f, (x, y), (dx, dy))[1]
        np.testing.assert_allclose(got["h"], ref["h"], rtol=1e-13)
        np.testing.assert_allclose(got["s"], ref["s"], rtol=1e-13)
        assert got["n"].dtype == np.int64 and not got["n"].any()  # an int result: zero
        eps = 1e-6
        plus = _numpy_f(x + eps * dx, (y[0] + eps * dy[0], y[1] + eps * dy[1]))
        minus = _numpy_f(x - eps * dx, (y[0] - eps * dy[0], y[1] - eps * dy[1]))
        for k in ("h", "s"):
            np.testing.assert_allclose(got[k], (plus[k] - minus[k]) / (2 * eps), rtol=1e-6,
                                       atol=1e-8)


def test_the_tangent_part_recomputes_nothing_of_the_primal():
    def chain(x):
        return gc.sin(gc.exp(gc.sin(x)))

    x = np.linspace(-1.0, 1.0, 5)
    out, f_jvp = gc.linearize(chain, x)
    np.testing.assert_allclose(out, np.sin(np.exp(np.sin(x))), rtol=1e-15)
    v = np.arange(5.0)
    want = np.cos(np.exp(np.sin(x))) * np.exp(np.sin(x)) * np.cos(x) * v
    np.testing.assert_allclose(f_jvp(v), want, rtol=1e-14)
    ops = {n.op for n in f_jvp.plan.graph.nodes}
    assert not ops & {"sin", "cos", "exp"}, ops  # only the linear map: products of residuals
    assert "mul" in ops


def test_a_models_parameters_are_read_at_the_linearization_point():
    layer = gc.nn.Linear(3, 2)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    v = np.ones((4, 3), np.float32)
    out, f_jvp = gc.linearize(lambda x: gc.tanh(layer(x)), x)
    before = f_jvp(v)
    np.testing.assert_allclose(before, gc.jvp(lambda x: gc.tanh(layer(x)), (x,), (v,))[1],
                               rtol=1e-6)
    layer.weight.data[...] = 0.0  # changed afterwards: J was taken at the old weights
    np.testing.assert_array_equal(f_jvp(v), before)


def test_linearize_through_a_while_loop():
    def grow(x):
        return gc.while_loop(lambda v: gc.sum(v * v) < 30.0, lambda v: v * 1.5 + 0.1, x)

    x, v = np.array([0.5, 1.0]), np.array([1.0, -2.0])
    out, f_jvp = gc.linearize(grow, x)
    want_out, want_t = gc.jvp(grow, (x,), (v,))
    np.testing.assert_allclose(out, want_out, rtol=1e-15)
    np.testing.assert_allclose(f_jvp(v), want_t, rtol=1e-15)


def test_linearize_bad_input_is_one_clear_line():
    x = np.ones(3)
    _, f_jvp = gc.linearize(lambda x: x * 2.0, x)
    with pytest.raises(GraphcError, match=r"tangent leaf 0 is float64\[2\] but its primal is "
                                          r"float64\[3\]"):
        f_jvp(np.ones(2))
    with pytest.raises(GraphcError, match=r"tangent leaf 0 is float32\[3\]"):
        f_jvp(np.ones(3, np.float32))
    with pytest.raises(GraphcError, match="f_jvp takes tangents like the 1 primals"):
        f_jvp(np.ones(3), np.ones(3))
    with pytest.raises(GraphcError, match="inside a traced function use gc.jvp"):
        gc.compile(lambda x: gc.linearize(lambda y: y * 2.0, x)[0])(x)
