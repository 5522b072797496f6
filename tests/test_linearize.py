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
    with pytest.raises(GraphcError, match="f_jvp takes 1 tangent, one like each primal, "
                                          "got 2"):
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


@gc.custom_vjp
def _sin_with_identity_rule(x):
    return gc.sin(x)


_sin_with_identity_rule.defvjp(lambda x: (gc.sin(x), None), lambda r, g: (g,))


@gc.custom_jvp
def _sin_with_identity_jvp(x):
    return gc.sin(x)


_sin_with_identity_jvp.defjvp(lambda p, t: (gc.sin(p[0]), t[0]))


@gc.custom_vjp
def _double_with_a_wrong_rule(x):  # linear, but its rule is not its derivative
    return 2.0 * x


_double_with_a_wrong_rule.defvjp(lambda x: (2.0 * x, None), lambda r, g: (3.0 * g,))


def test_linear_transpose_refuses_ops_without_a_transpose():
    # Review r1 (1): these have a constant (0 or made-up) derivative, which the first check,
    # on the derivative graph, took for linear: floor's transpose came out 0, x +
    # stop_gradient(x)'s as x's, sin behind a custom rule as the identity. JAX 0.10.2
    # refuses each ("Transpose rule ... for 'floor' not implemented", an AssertionError for
    # mod and trunc); so does the forward check, naming the op and its line
    x = np.zeros(4)
    for f, op in [(gc.floor, "floor"), (gc.sign, "sign"), (gc.trunc, "trunc"),
                  (gc.ceil, "ceil"), (lambda v: v + gc.round(v), "round"),
                  (lambda v: v + gc.stop_gradient(v), "stop_gradient"),
                  (lambda v: gc.mod(v, 2.0), "remainder"),
                  (_sin_with_identity_rule, "sin"), (_sin_with_identity_jvp, "sin"),
                  (_double_with_a_wrong_rule, "custom_vjp"),
                  (lambda v: gc.cond(gc.sum(v) > 0, lambda u: 2.0 * u, lambda u: -u, v), "gt"),
                  (lambda v: gc.where(v > 0, v, 0.0), "gt"),
                  (lambda v: gc.sum(v ** 2), "pow")]:
        with pytest.raises(GraphcError, match=rf"^linear_transpose of \S+: \S+ is not linear in "
                                              rf"its arguments: {op} of a value computed from "
                                              r"them has no transpose \(it is not linear\)\n  at "):
            gc.linear_transpose(f, x)
    # affine maps (JAX transposes their linear part without a word): refused, f never runs
    lin = gc.nn.Linear(4, 3)
    for f, what in [(lambda v: gc.concatenate([v, np.ones(2)]), "concat adds"),
                    (lin, "add adds"),
                    (lambda v: gc.scan(lambda c, u: (c + u, 2.0 * c), 1.0, v)[1],
                     "scan's carry adds"),
                    (lambda v: gc.cond(lin.bias[0] > 0, lambda u: u, lambda u: gc.ones_like(u),
                                       v), "a branch of cond adds"),
                    (lambda v: (v, np.ones(2)), "its output leaf 1 adds")]:
        with pytest.raises(GraphcError, match=f"{what} a value that does not depend on them, "
                                              "not 0 \\(an affine map"):
            gc.linear_transpose(f, np.zeros((2, 4), np.float32) if f is lin else x)
    # no reverse mode for while_loop (as in JAX): one line naming linear_transpose
    with pytest.raises(GraphcError, match="^linear_transpose of lambda: .*while_loop has no "
                                          "transpose"):
        gc.linear_transpose(lambda v: gc.while_loop(lambda s: s[0] < 3, lambda s: (
            s[0] + 1, 2.0 * s[1]), (0, v))[1], x)


def test_linear_transpose_of_linear_control_flow_and_derivatives():
    # Review r1 (2): refused before ("its derivative depends on them ...; JAX refuses it
    # too"); JAX 0.10.2 gives these values for ct = ones(4)
    a = np.random.default_rng(0).normal(size=(3, 4))
    x, ct = np.zeros(4), np.ones(4)
    for f, want in [
            (lambda v: gc.map(lambda u: 2.0 * u, v), [2.0, 2, 2, 2]),
            (lambda v: gc.fori_loop(0, 3, lambda i, u: 2.0 * u, v), [8.0, 8, 8, 8]),
            (lambda v: gc.scan(lambda c, u: (c + u, 2.0 * c), 0.0, v)[1], [6.0, 4, 2, 0]),
            (lambda v: gc.scan(lambda c, u: (c, 2.0 * u), 0.0, v)[1], [2.0, 2, 2, 2]),
            (gc.grad(lambda v: 0.5 * gc.sum((a @ v) ** 2)), a.T @ a @ ct),
            (gc.remat(lambda v: 3.0 * v[::-1]), [3.0, 3, 3, 3]),
            (lambda v: gc.cond(True, lambda u: 2.0 * u, lambda u: -u, v), [2.0, 2, 2, 2])]:
        (got,) = gc.linear_transpose(f, x)(ct)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # a linear map with an inf coefficient: f(0) is nan, which the f(0) run took for an
    # added constant; f no longer runs (JAX: [1, inf, 0.5, 1])
    with np.errstate(divide="ignore"):
        (got,) = gc.linear_transpose(lambda v: v / np.array([1.0, 0.0, 2.0, 1.0]), x)(ct)
    np.testing.assert_array_equal(got, [1.0, np.inf, 0.5, 1.0])
    # nor does it move the dropout stream or a BatchNorm's statistics
    drop = gc.nn.Dropout(0.5)

    def draw():
        return drop(gc.tensor(np.ones(12, np.float32))).numpy()
    gc.manual_seed(0)
    first = draw()
    gc.manual_seed(0)
    (mask,) = gc.linear_transpose(drop, np.zeros(12, np.float32))(np.ones(12, np.float32))
    np.testing.assert_array_equal(draw(), first)
    np.testing.assert_array_equal(mask, first)  # (the mask the next draw gives)


def test_linear_transpose_refuses_an_integer_cast_term_jax_drops():
    """Review of b98ab22: accepting a cast to an integer or bool as JAX does (float0, its
    transpose 0) gave a transpose that is not the adjoint, without a word: float(int(x)) is
    trunc(x), x - float(int(x)) the fractional part, float(bool(x)) a step, none linear,
    while floor, their twin, is refused. Each is refused in one line naming the cast; the
    adjoint identity <f(x), ct> = <x, f_t(ct)> fails for them at random x (what JAX's
    transpose, ct or 0, gives), and a float cast is still linear."""
    x0 = np.zeros(3)
    for f, dtype in [(lambda v: v + gc.cast(gc.cast(v, "int64"), "float64"), "int64"),
                     (lambda v: gc.cast(gc.cast(v, "int32"), "float64"), "int32"),
                     (lambda v: v - v.astype("int64").astype("float64"), "int64"),
                     (lambda v: 2.0 * v + gc.cast(gc.cast(v, "int64") * 3, "float64"), "int64"),
                     (lambda v: gc.sum(v) + gc.sum(gc.cast(gc.cast(v, "bool"), "float64")),
                      "bool")]:
        with pytest.raises(GraphcError, match=rf"^linear_transpose of \S+: \S+ is not linear "
                                              rf"in its arguments: cast to {dtype} of a value "
                                              r"computed from them is not linear \(.*\)\n  at "):
            gc.linear_transpose(f, x0)
    x, ct = np.array([0.75, -1.5, 2.25]), np.array([0.5, -1.0, 2.0])
    # what dropping the term gives for the first: ct, but <f(x), ct> != <x, ct>
    f = lambda v: v + gc.cast(gc.cast(v, "int64"), "float64")  # noqa: E731
    assert not np.isclose(np.dot(np.asarray(gc.compile(f)(x)), ct), np.dot(x, ct))
    f_t = gc.linear_transpose(lambda v: v.astype("float32").astype("float64") * 2.0, x0)
    np.testing.assert_allclose(f_t(ct)[0], 2.0 * ct)


def test_linear_transpose_made_in_compile_reads_the_current_weights():
    # Review r1 (3): the weights were baked into the compiled plan as constants, so after an
    # optimizer step the compiled call still gave the first weights' transpose
    gc.manual_seed(0)
    lin = gc.nn.Linear(4, 3, bias=False)
    x = np.ones((1, 4), np.float32)
    c = np.arange(3, dtype=np.float32).reshape(1, 3)
    via_lt = gc.compile(lambda x, c: gc.linear_transpose(lin, x)(c)[0])
    via_vjp = gc.compile(lambda x, c: gc.vjp(lin, x)[1](c)[0])
    np.testing.assert_allclose(np.asarray(via_lt(x, c)), np.asarray(via_vjp(x, c)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(via_lt(x, c)), c @ lin.weight.numpy().T, rtol=1e-6)
    for p in lin.parameters():
        p.data[...] = 2.0
    np.testing.assert_allclose(np.asarray(via_lt(x, c)), np.asarray(via_vjp(x, c)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(via_lt(x, c)), np.full((1, 4), 6.0), rtol=1e-6)


def test_linear_transpose_refuses_what_is_not_linear_in_one_line():
    x = np.ones(3)

    def square(v):
        return v * v
    for f, args, message in [
            (square, (x,), "square is not linear in its arguments: mul multiplies two values "
                           "computed from them\n  at "),
            (lambda u, v: u * v, (x, x), "not linear in its arguments"),
            (gc.sin, (x,), "sin is not linear in its arguments: sin of a value computed"),
            (gc.relu, (x,), "relu is not linear in its arguments"),
            (lambda v: v + 1.0, (x,), r"add adds a value that does not depend on them, not 0 "
                                      r"\(an affine map.*; transpose x -> lambda\(x\) - "),
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
    with pytest.raises(GraphcError, match=r"^linear_transpose of lambda: the cotangent is a "
                                          r"list, but the function returns one array; pass one "
                                          r"array, float64\[2, 3\]"):
        f_t([np.ones((2, 3))])
    with pytest.raises(GraphcError, match=r"^linear_transpose of lambda: the cotangent does not "
                                          r"match the function's result: an ndarray where a "
                                          r"tuple of 2 is"):
        gc.linear_transpose(lambda v: (v, 2.0 * v), np.zeros(2))(np.ones(2))
    with pytest.raises(GraphcError, match="reads a value of the function being traced"):
        gc.compile(lambda w, c: gc.linear_transpose(lambda v: w * v, x)(c)[0])(x, x)


def test_linear_transpose_made_in_one_compiled_function_is_refused_in_another():
    # Review r5 (2): an f_t made inside compiled a, kept and called inside compiled b, read
    # a's weight node there: an internal "ValueError rebuild: matmul reads a node that was
    # dropped". Eagerly and in another trace it is the same one line
    gc.manual_seed(0)
    lin = gc.nn.Linear(4, 3, bias=False)
    kept = {}

    def a(x, c):
        kept["f_t"] = gc.linear_transpose(lin, x)
        return kept["f_t"](c)[0]
    c = np.arange(3, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(gc.compile(a)(np.ones(4, np.float32), c)),
                               lin.weight.numpy() @ c, rtol=1e-6)  # (weight: in x out)
    message = (r"^linear_transpose of Linear was made inside a traced function, whose values "
               r"it reads, and is called outside it; make it where it is called\n  at \S+:\d+$")
    for call in [lambda: gc.compile(lambda c: kept["f_t"](c)[0])(c),
                 lambda: gc.vmap(lambda c: kept["f_t"](c)[0])(np.ones((2, 3), np.float32)),
                 lambda: kept["f_t"](c)]:
        with pytest.raises(GraphcError, match=message):
            call()


def test_linear_transpose_names_the_multiply_not_an_added_constant():
    # Review r5 (3): cumprod (concat(1, x[:-1]), then x times that) was refused as affine at
    # the concat, advising f(x) - f(0), which is not linear either; the walk now reports an
    # added constant only where no op is not linear
    for f in [gc.cumprod, lambda v: (v + 1.0) * v]:
        with pytest.raises(GraphcError, match="is not linear in its arguments: mul multiplies "
                                              "two values computed from them") as info:
            gc.linear_transpose(f, np.zeros(4))
        assert "affine" not in str(info.value) and "transpose x" not in str(info.value)
    with pytest.raises(GraphcError, match=r"concat adds a value that does not depend on them, "
                                          r"not 0 \(an affine map.*; transpose x -> "):
        gc.linear_transpose(lambda v: gc.concatenate([np.ones(1), 2.0 * v]), np.zeros(4))


@gc.custom_jvp
def _double_with_a_wrong_jvp(x):
    return 2.0 * x


_double_with_a_wrong_jvp.defjvp(lambda p, t: (2.0 * p[0], 3.0 * t[0]))


def test_linear_transpose_refusal_gives_the_ops_line_once():
    # Review r5 (4): the op's line was in the first line (" at f.py:N") and again as the
    # error's own "at" (the linear_transpose call's line, often the same); a custom rule's
    # refusal named the linear_transpose call, not the line calling the custom function
    def scaled(v):
        w = 3.0 * v
        return w * v  # <- this line

    def custom(v):
        w = 3.0 * v
        return _double_with_a_wrong_rule(w) + _double_with_a_wrong_jvp(w)  # <- this line
    for f, why in [(scaled, "mul multiplies two values computed from them"),
                   (custom, "custom_vjp of a value computed from them has no transpose (it "
                            "is not linear)")]:
        line = f.__code__.co_firstlineno + 2
        with pytest.raises(GraphcError) as info:
            gc.linear_transpose(f, np.zeros(4))
        first, where = str(info.value).split("\n")
        assert first == f"linear_transpose of {f.__name__}: {f.__name__} is not linear in its "\
                        f"arguments: {why}"
        assert where == f"  at {info.value.locs[0][0]}:{line}" and len(info.value.locs) == 1
        assert info.value.locs[0][0].endswith("test_linearize.py")
