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


# ---- gc.linear_transpose (graphc/linear_transpose.py), as jax.linear_transpose -------------
# No JAX in the test environment: each transpose is checked by the adjoint identity
# <f(x), ct> == <x, f_t(ct)> on random x and ct, and against explicit matrices.

def _inner(a, b):
    return sum(float(np.sum(np.asarray(u, np.float64) * np.asarray(v, np.float64)))
               for u, v in zip(gc.tree_leaves(a), gc.tree_leaves(b)))


_M = np.random.default_rng(7).normal(size=(3, 4))
_K = np.random.default_rng(8).normal(size=(2, 3, 3, 3))  # conv weights (O, C, kH, kW)
_LINEAR = {  # name: (f, primals)
    "matmul": (lambda x: _M @ x, (np.zeros((4, 2)),)),
    "sums": (lambda x: (gc.sum(x, axis=0), gc.mean(x) * 3.0, gc.cumsum(x, 1)),
             (np.zeros((3, 5)),)),
    "slicing and indexing": (lambda x: gc.concatenate([x[1:, ::2].reshape(-1),
                                                      x[np.array([0, 2, 2])][:, 1]]),
                             (np.zeros((3, 4)),)),
    "reshape and transpose": (lambda x: gc.transpose(x.reshape(4, 3, 2), (2, 0, 1)) / 2.0,
                              (np.zeros((6, 4)),)),
    "concat, pad, where": (lambda x, y: (gc.concatenate([x, -y, gc.pad(x, (1, 2))]),
                                         gc.where(np.arange(12) % 2 == 0, gc.tile(y, 2), 0.0)),
                           (np.zeros(3), np.zeros(6))),
    "conv in its input": (lambda x: gc.conv2d(x, _K, stride=1, padding=1),
                          (np.zeros((2, 3, 5, 4)),)),
    "conv in its weights": (lambda w: gc.conv2d(np.ones((1, 3, 4, 4)) * 0.5, w),
                            (np.zeros((2, 3, 3, 3)),)),
    "pytrees": (lambda p, q: {"s": p["a"] @ _M.T + q[0], "t": (gc.sum(p["b"]), q[1].T)},
                ({"a": np.zeros((2, 4)), "b": np.zeros((2, 2))},
                 (np.zeros((2, 3)), np.zeros((3, 2))))),
}


@pytest.mark.parametrize("case", sorted(_LINEAR))
def test_linear_transpose_is_the_adjoint(case):
    f, primals = _LINEAR[case]
    f_t = gc.linear_transpose(f, *primals)
    rng = np.random.default_rng(0)
    for _ in range(3):
        xs = gc.tree_map(lambda p: rng.normal(size=np.shape(p)), primals)
        y = gc.tree_map(np.asarray, gc.compile(f)(*xs))
        ct = gc.tree_map(lambda v: rng.normal(size=np.shape(v)), y)
        got = f_t(ct)
        assert type(got) is tuple and len(got) == len(primals)
        for g, p in zip(gc.tree_leaves(got), gc.tree_leaves(primals)):
            assert g.shape == p.shape and g.dtype == p.dtype
        np.testing.assert_allclose(_inner(y, ct), _inner(xs, got), rtol=1e-12)
        # the transpose is the vjp, whatever the point
        for g, v in zip(gc.tree_leaves(got), gc.tree_leaves(gc.vjp(f, *xs)[1](ct))):
            np.testing.assert_allclose(g, v, rtol=1e-12)


def test_linear_transpose_of_explicit_matrices():
    import types
    a = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    ct = np.arange(3, dtype=np.float32)
    for primal in (np.ones(4, np.float32), gc.spec((4,), "float32"),
                   types.SimpleNamespace(shape=(4,), dtype=np.float32)):  # ShapeDtypeStruct
        (got,) = gc.linear_transpose(lambda x: a @ x, primal)(ct)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, a.T @ ct, rtol=1e-6)
    # JAX's docstring example: two scalar primals, a tuple of two cotangents
    f_t = gc.linear_transpose(lambda x, y: 0.5 * x - 0.5 * y, 1.0, 1.0)
    assert f_t(1.0) == (0.5, -0.5)
    # the transpose of the transpose is the function
    f_t = gc.linear_transpose(lambda x: a @ x, np.ones(4, np.float32))
    (back,) = gc.linear_transpose(f_t, ct)((np.ones(4, np.float32),))
    np.testing.assert_allclose(back, a @ np.ones(4, np.float32), rtol=1e-6)


def test_linear_transpose_composes_with_compile_vmap_and_grad():
    a = np.random.default_rng(2).normal(size=(3, 4))
    cts = np.random.default_rng(3).normal(size=(5, 3))
    f_t = gc.linear_transpose(lambda x: a @ x, np.zeros(4))
    np.testing.assert_allclose(gc.compile(lambda c: f_t(c)[0] * 2.0)(cts[0]),
                               2.0 * a.T @ cts[0], rtol=1e-12)
    np.testing.assert_allclose(gc.vmap(lambda c: f_t(c)[0])(cts).numpy(), cts @ a, rtol=1e-12)
    np.testing.assert_allclose(gc.grad(lambda c: gc.sum(f_t(c)[0] ** 2))(cts[0]),
                               2.0 * a @ (a.T @ cts[0]), rtol=1e-12)
    # made inside a compiled function: the primal gives its shape only
    inside = gc.compile(lambda x, c: gc.linear_transpose(lambda v: a @ v, x)(c)[0])
    np.testing.assert_allclose(inside(np.ones(4), cts[1]), a.T @ cts[1], rtol=1e-12)


def test_linear_transpose_refuses_what_is_not_linear_in_one_line():
    x = np.ones(3)

    def square(v):
        return v * v
    for f, args, message in [
            (square, (x,), "square is not linear in its arguments: its derivative depends"),
            (lambda u, v: u * v, (x, x), "not linear in its arguments"),
            (gc.sin, (x,), "sin is not linear in its arguments"),
            (gc.relu, (x,), "relu is not linear in its arguments"),
            (lambda v: v + 1.0, (x,), r"not linear: it is not 0 at 0 \(output leaf 0 is 1.0"),
            (lambda v: 2.0 * v, (1,), r"only supports float -> float functions, but got "
                                      r"\['int64'\] -> \['float64'\]")]:
        with pytest.raises(GraphcError, match=message) as info:
            gc.linear_transpose(f, *args)
        assert "linear_transpose of " in str(info.value) and "Traceback" not in str(info.value)
    f_t = gc.linear_transpose(lambda v: gc.stack([v, v]), x)
    with pytest.raises(GraphcError, match=r"the cotangent has shape \[3\] but the output has "
                                          r"shape \[2, 3\]"):
        f_t(x)
    with pytest.raises(GraphcError, match=r"the cotangent is float32\[2, 3\], but the output "
                                          r"is float64\[2, 3\]"):
        f_t(np.ones((2, 3), np.float32))
    with pytest.raises(GraphcError, match="the cotangent is a list, but lambda returns one "
                                          "array"):
        f_t([np.ones((2, 3))])
    with pytest.raises(GraphcError, match="reads a value of the function being traced"):
        gc.compile(lambda w, c: gc.linear_transpose(lambda v: w * v, x)(c)[0])(x, x)
