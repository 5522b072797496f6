"""gc.jacrev and gc.jacfwd (graphc/jacobians.py) against central finite differences in float64
on random inputs, eagerly and inside a compiled function, with JAX's pytree and argnums
conventions; and the composition they rest on: the pullback of a vjp taken in a trace,
vmapped over cotangents."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

JACOBIANS = [gc.jacrev, gc.jacfwd]


def finite_difference_jacobian(f, args, argnum, eps=1e-6):
    """d f(args) / d args[argnum], shape f.shape + arg.shape, from numpy evaluations of f."""
    x = np.asarray(args[argnum], dtype=np.float64)
    out_shape = np.shape(f(*args))
    jac = np.zeros(out_shape + x.shape)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        plus = f(*[up if k == argnum else a for k, a in enumerate(args)])
        minus = f(*[down if k == argnum else a for k, a in enumerate(args)])
        jac[(Ellipsis,) + idx] = (np.asarray(plus) - np.asarray(minus)) / (2 * eps)
    return jac


def model(x, w, b):
    h = gc.tanh(x @ w + b)
    return gc.softmax(h * h, axis=-1) * gc.sum(x, axis=1, keepdims=True)


def model_numpy(x, w, b):
    h = np.tanh(x @ w + b)
    e = np.exp(h * h - (h * h).max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True) * x.sum(1, keepdims=True)


@pytest.mark.parametrize("jac", JACOBIANS)
@pytest.mark.parametrize("seed", range(4))
def test_random_model_against_finite_differences(jac, seed):
    rng = np.random.default_rng(seed)
    n, d, k = rng.integers(1, 4), rng.integers(1, 5), rng.integers(1, 4)
    args = (rng.normal(size=(n, d)), rng.normal(size=(d, k)), rng.normal(size=(k,)))
    expected = [finite_difference_jacobian(model_numpy, args, i) for i in range(3)]
    eager = jac(model, argnums=(0, 1, 2))(*args)
    traced = gc.compile(lambda *a: jac(model, argnums=(0, 1, 2))(*a))(*args)
    for got in (eager, traced):
        for g, e in zip(got, expected):
            assert np.shape(g) == e.shape
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("jac", JACOBIANS)
def test_pytrees_argnums_and_aux_as_jax(jac):
    rng = np.random.default_rng(7)
    u, v = rng.normal(size=3), rng.normal(size=2)

    def f(params, scale):
        out = {"dot": gc.sum(params["u"]) * gc.sum(params["v"]) * scale,
               "outer": params["u"][:, None] * params["v"][None, :]}
        return out, gc.sum(params["u"])

    J, aux = jac(f, argnums=0, has_aux=True)({"u": u, "v": v}, 2.0)
    assert np.shape(J["dot"]["u"]) == (3,) and np.shape(J["outer"]["v"]) == (3, 2, 2)
    np.testing.assert_allclose(np.asarray(J["dot"]["u"]), np.full(3, 2.0 * v.sum()))
    np.testing.assert_allclose(np.asarray(J["outer"]["u"]),
                               np.einsum("ik,j->ijk", np.eye(3), v))
    np.testing.assert_allclose(np.asarray(aux), u.sum())
    (J_scale,) = jac(lambda p, s: f(p, s)[0]["dot"], argnums=(-1,))({"u": u, "v": v}, 2.0)
    np.testing.assert_allclose(np.asarray(J_scale), u.sum() * v.sum())


def test_jacfwd_of_jacrev_is_the_hessian():
    x = np.random.default_rng(3).normal(size=4)
    f = lambda x: gc.sum(gc.sin(x) * x * x)
    np.testing.assert_allclose(np.asarray(gc.jacfwd(gc.jacrev(f))(x)),
                               np.asarray(gc.hessian(f)(x)), rtol=1e-12, atol=1e-12)


def test_per_example_jacobians_under_vmap_and_a_gradient_through_one():
    rng = np.random.default_rng(5)
    xs, w = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    per_example = gc.vmap(gc.jacrev(lambda x: gc.tanh(x @ w)))(xs)
    for x, J in zip(xs, np.asarray(per_example)):
        np.testing.assert_allclose(J, finite_difference_jacobian(
            lambda x: np.tanh(x @ w), (x,), 0), rtol=1e-6, atol=1e-9)
    # d/dx of the Jacobian's trace: sum_i d/dx_i tanh'(x @ w)_i w_ii
    trace_grad = gc.grad(lambda x: gc.sum(gc.jacrev(lambda x: gc.tanh(x @ w))(x)
                                          * np.eye(2)))(xs[0])
    expected = finite_difference_jacobian(
        lambda x: (np.diag((1 - np.tanh(x @ w) ** 2)) * w.T).trace(), (xs[0],), 0)
    np.testing.assert_allclose(np.asarray(trace_grad), expected, rtol=1e-6, atol=1e-8)


def test_a_pullback_taken_in_a_trace_vmapped_over_cotangents():
    """vmap(vjp_fn)(eye) where the vjp was taken on the traced values themselves: the
    backward nodes go into the vmapped region (they read the cotangent) and read the
    trace's values through it. It failed: 'mul: operands belong to different graphs'."""
    x = np.random.default_rng(2).normal(size=3)

    def jacobian(x):
        y, pull = gc.vjp(lambda x: gc.tanh(x) * gc.sum(x), x)
        return gc.vmap(pull)(np.eye(3))[0]

    expected = finite_difference_jacobian(lambda x: np.tanh(x) * x.sum(), (x,), 0)
    np.testing.assert_allclose(gc.compile(jacobian)(x), expected, rtol=1e-6, atol=1e-9)


def test_bad_arguments_are_refused_with_one_line():
    x = np.ones(3)
    with pytest.raises(GraphcError, match="jacrev: an int32 output has no Jacobian"):
        gc.jacrev(lambda x: gc.cast(x, "int32"))(x)
    with pytest.raises(GraphcError, match="jacfwd: argument 1 has dtype int..; only floating"):
        gc.jacfwd(lambda x, i: x * i, argnums=1)(x, np.arange(3))
    with pytest.raises(GraphcError, match="argnums 2 but only 1 arguments"):
        gc.jacrev(lambda x: x, argnums=2)(x)


def test_jacfwd_of_an_integer_output_is_float_zeros_of_the_input_dtype():
    """An integer or boolean output has no derivative: JAX's jacfwd gives it float0 zeros
    (jacrev refuses it, above). jacfwd gave integer zeros (jvp's tangent of it), an int64
    'derivative' of an argmax; it gives zeros of the input's float dtype, shape
    output.shape + input.shape, eagerly and compiled, the float output's Jacobian unchanged."""
    x = np.array([0.5, 1.5, -2.0], np.float32)

    def f(x):
        return x * 3.0, gc.argmax(x), gc.cast(x, "int32"), x > 1.0

    for jacfwd in (gc.jacfwd(f), gc.compile(gc.jacfwd(f))):
        dense, argmax, cast, mask = jacfwd(x)
        np.testing.assert_array_equal(dense, 3.0 * np.eye(3, dtype=np.float32))
        for got, shape in ((argmax, (3,)), (cast, (3, 3)), (mask, (3, 3))):
            assert got.dtype == np.float32 and got.shape == shape
            np.testing.assert_array_equal(got, np.zeros(shape, np.float32))
    # per input leaf: each Jacobian leaf takes its own input's dtype
    jac = gc.jacfwd(lambda a, b: gc.argmax(a) + gc.argmax(b), argnums=(0, 1))(
        x, np.array([1.0, 2.0]))
    assert (jac[0].dtype, jac[0].shape, jac[1].dtype, jac[1].shape) == \
        (np.float32, (3,), np.float64, (2,))
    assert not jac[0].any() and not jac[1].any()


def test_hessian_names_itself_in_the_messages_of_its_jacobians():
    # hessian is jacfwd(jacrev(fn)): a differentiated number used as a Python value was told
    # "jacfwd takes no static_argnums", an int output "jacrev: ... has no Jacobian"
    def f(x, n):
        return gc.sum(x ** 2) * len(range(n))

    x = np.array([1.0, 2.0])
    with pytest.raises(GraphcError, match=r"^int\(\) of a symbolic value: [^\n]*; 'n' is "
                       "differentiated \\(in argnums\\), so traced: hessian takes no "
                       "static_argnums; to use it as a Python value, leave 'n' out of "
                       r"argnums: [^\n]*\n  at [^\n]*test_jacobians\.py:\d+$"):
        gc.hessian(f, argnums=1)(x, 3.0)
    with pytest.raises(GraphcError, match="^hessian: an int64 output has no Jacobian"):
        gc.hessian(lambda x: gc.argmax(x))(x)
    # the advice followed: n left out of argnums passes as it is, the Hessian is 2 n I
    np.testing.assert_array_equal(gc.hessian(f)(x, 3), 6.0 * np.eye(2))


def test_an_argnums_past_the_arguments_names_the_jacobian_as_grads_does():
    """s43: gc.hessian(f, argnums=5)(x, y) said 'argnums 5 but only 2 arguments', naming
    no function (so did jacrev and jacfwd), where gc.grad's says 'grad: argnums ...'. Each
    names itself now, eagerly and compiled, in one line at the caller's; argnums in range
    gives the values."""
    def f(x, y):
        return gc.sum(x ** 2 * y)

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for who in ("jacrev", "jacfwd", "hessian", "grad"):
        for argnums in (5, -3, (0, 5)):
            bad = argnums if isinstance(argnums, int) else 5
            for run in (getattr(gc, who)(f, argnums=argnums),
                        gc.compile(getattr(gc, who)(f, argnums=argnums))):
                with pytest.raises(GraphcError) as info:
                    run(x, y)
                line, where = str(info.value).splitlines()
                assert line == f"{who}: argnums {bad} but only 2 arguments"
                assert "test_jacobians.py" in where
    np.testing.assert_allclose(gc.hessian(f, argnums=1)(x, y), np.zeros((2, 2)))
    np.testing.assert_allclose(gc.hessian(f)(x, y), np.diag(2 * y))
    np.testing.assert_allclose(gc.jacrev(f, argnums=-1)(x, y), x ** 2)

def test_jacfwd_traces_fn_once_per_input_leaf_and_returns_aux_unbatched():
    """aux comes from the first column's trace, returned once (JAX's out_axes=None for it):
    fn is not traced again for it (it was, once more), and aux has no batch axis."""
    calls = []

    def f(x):
        calls.append(1)
        return gc.sin(x) * 2.0, {"total": gc.sum(x)}

    x = np.array([0.1, 0.2, 0.3])
    for run in (gc.jacfwd(f, has_aux=True), gc.compile(gc.jacfwd(f, has_aux=True))):
        calls.clear()
        J, aux = run(x)
        assert len(calls) == 1
        np.testing.assert_allclose(np.asarray(J), np.diag(2.0 * np.cos(x)), rtol=1e-12)
        assert np.shape(aux["total"]) == ()
        np.testing.assert_allclose(np.asarray(aux["total"]), 0.6, rtol=1e-12)
