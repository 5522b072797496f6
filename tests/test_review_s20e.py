"""Review s20e: JAX-style transforms in composition, against torch.func (float64)."""
import numpy as np
import pytest
import torch
from torch import func as tf

import graphc as gc


def _t(a):
    return torch.tensor(np.asarray(a, np.float64))


W0 = np.array([0.1, 0.5, -0.3])
X = np.array([[0.0, 1.0, 2.0], [3.0, -4.0, 5.0]])


def test_jacfwd_of_a_concrete_array_inside_a_trace():
    # jacfwd called inside vmap or compile on a numpy argument refused it: "a float64 input
    # has no Jacobian; only floating-point values do"; jacrev (and JAX) take it
    def f(w, x):
        return gc.sin(w * x) * w

    want = np.stack([tf.jacfwd(lambda w: torch.sin(w * _t(x)) * w)(_t(W0)).numpy() for x in X])
    for jac in (gc.jacfwd, gc.jacrev):
        per_example = lambda x: jac(lambda w: f(w, x))(W0)  # noqa: E731
        np.testing.assert_allclose(np.asarray(gc.vmap(per_example)(X)), want, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(np.asarray(gc.compile(per_example)(X[1])), want[1],
                                   rtol=1e-12, atol=1e-15)


def test_hessian_keeps_an_integer_argument_it_does_not_differentiate_an_integer():
    # hessian turned every Python int argument into a float, so an index argument failed
    # ("take: indices must be integers"); JAX's (and gc.grad's) keep it an int
    x = np.array([0.3, -1.2, 0.8, 2.0])
    got = gc.hessian(lambda x, n: gc.sum(x[n] ** 3))(x, 1)
    want = tf.hessian(lambda x, n: torch.sum(x[n] ** 3))(_t(x), 1).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_hessian_of_a_pytree_argument_and_of_an_argnums_tuple():
    # hessian read x.size of its argument: a dict gave AttributeError; JAX's hessian is
    # jacfwd(jacrev(f)), so a pytree (and a tuple argnums) gives a tree of blocks
    a, b = np.array([0.3, -1.2, 0.8]), np.array([1.5, 0.2, -0.7])

    def ours(p):
        return gc.sum(gc.sin(p["a"]) * p["b"] * p["b"])

    def theirs(p):
        return torch.sum(torch.sin(p["a"]) * p["b"] * p["b"])

    got = gc.hessian(ours)({"a": a, "b": b})
    want = tf.hessian(theirs)({"a": _t(a), "b": _t(b)})
    for i in "ab":
        for j in "ab":
            np.testing.assert_allclose(np.asarray(got[i][j]), want[i][j].numpy(),
                                       rtol=1e-12, atol=1e-12)
    got = gc.hessian(lambda u, v: gc.sum(gc.tanh(u) * v ** 3), argnums=(0, 1))(a, b)
    want = tf.hessian(lambda u, v: torch.sum(torch.tanh(u) * v ** 3), argnums=(0, 1))(_t(a), _t(b))
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(np.asarray(got[i][j]), want[i][j].numpy(),
                                       rtol=1e-12, atol=1e-12)


def test_a_cotangent_of_the_wrong_shape_is_named_as_such():
    # a cotangent not shaped like fn's output reached autodiff and failed there with
    # "internal: gradient of shape (3,) for a value of shape (4,) from op 'sin'"
    x = np.array([0.3, -1.2, 0.8, 2.0])
    _, pull = gc.vjp(gc.sin, x)
    with pytest.raises(gc.GraphcError, match=r"vjp: the cotangent has shape \[3\] but the "
                                             r"output has shape \[4\]"):
        pull(np.ones(3))
    _, pull = gc.vjp(lambda w: (gc.sin(w), w * 2.0), x)
    with pytest.raises(gc.GraphcError, match=r"cotangent for output leaf 1 has shape \[2, 4\]"):
        pull((np.ones(4), np.ones((2, 4))))
    with pytest.raises(gc.GraphcError, match=r"cotangent has shape \[3\]"):  # traced
        gc.vmap(lambda c: gc.vjp(gc.sin, x)[1](c))(np.ones((2, 3)))
    # right shapes still pull back, eagerly and under vmap
    np.testing.assert_allclose(pull((np.ones(4), np.full(4, 0.5)))[0], np.cos(x) + 1.0,
                               rtol=1e-14)
    cts = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]])
    got = gc.vmap(lambda c: gc.vjp(gc.sin, x)[1](c)[0])(cts)
    np.testing.assert_allclose(np.asarray(got), cts * np.cos(x), rtol=1e-14)


@pytest.mark.parametrize("transform", [gc.grad, gc.value_and_grad, gc.jacrev, gc.jacfwd,
                                       gc.hessian])
def test_has_aux_without_a_pair_is_named_as_such(transform):
    # grad said "too many indices (1) for a 0-d value", jacrev/jacfwd raised ValueError
    # "too many values to unpack (expected 2)"
    x = np.array([0.3, -1.2, 0.8])
    with pytest.raises(gc.GraphcError, match=r"has_aux=True the function must return a pair "
                                             r"\(output, aux\), got a tuple of 3"):
        transform(lambda w: (gc.sum(w * w), 1, 2), has_aux=True)(x)
    with pytest.raises(gc.GraphcError, match="must return a pair"):
        transform(lambda w: gc.sum(w * w), has_aux=True)(x)
    # a pair works, with the gradients JAX gives
    out, aux = gc.hessian(lambda w: (gc.sum(w ** 3), {"n": gc.sum(w)}), has_aux=True)(x)
    np.testing.assert_allclose(np.asarray(out), np.diag(6 * x), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(aux["n"]), x.sum(), rtol=1e-13)


def test_remat_in_a_loop_body_or_branch_of_a_value_of_the_enclosing_function():
    # remat built the region in the graph of its first tensor argument: w, a value of the
    # function around the scan, so its ops met the body's x there: "mul: operands belong to
    # different graphs" (compile, grad), "input 'outer1' is not bound" (vmap)
    w = np.array([0.5, -0.3])
    xs = np.array([[1.0, 2.0], [0.3, 0.1], [-0.7, 0.4]])
    block = gc.remat(lambda w, x: gc.sin(x * w) * w)

    def f(w):
        return gc.sum(gc.scan(lambda c, x: (block(w, x) + c, None), np.zeros(2), xs)[0])

    def theirs(w):
        return torch.sum(torch.sin(_t(xs) * w) * w)

    ws = np.stack([w, -2.0 * w])
    np.testing.assert_allclose(float(gc.compile(f)(w)), float(theirs(_t(w))), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gc.grad(f)(w)), tf.grad(theirs)(_t(w)).numpy(),
                               rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gc.vmap(gc.grad(f))(ws)),
                               tf.vmap(tf.grad(theirs))(_t(ws)).numpy(), rtol=1e-13)

    def g(w, p):
        return gc.sum(gc.cond(p, lambda x: block(w, x), lambda x: x * w, xs[0]))

    for p in (True, False):
        want = tf.grad(lambda w: torch.sum(torch.sin(_t(xs[0]) * w) * w if p
                                           else _t(xs[0]) * w))(_t(w)).numpy()
        np.testing.assert_allclose(np.asarray(gc.compile(gc.grad(g))(w, np.array(p))), want,
                                   rtol=1e-13)


@gc.custom_vjp
def _sin_xw(w, x):
    return gc.sin(x * w)


_sin_xw.defvjp(lambda w, x: (_sin_xw(w, x), (w, x)),
               lambda r, g: (g * gc.cos(r[1] * r[0]) * r[1], g * gc.cos(r[1] * r[0]) * r[0]))


@gc.custom_jvp
def _sin_xw_jvp(w, x):
    return gc.sin(x * w)


@_sin_xw_jvp.defjvp
def _(p, t):
    (w, x), (tw, tx) = p, t
    return _sin_xw_jvp(w, x), gc.cos(x * w) * (tw * x + tx * w)


@pytest.mark.parametrize("block", [_sin_xw, _sin_xw_jvp])
def test_custom_rules_in_a_loop_body_of_a_value_of_the_enclosing_function(block):
    # as remat: custom_vjp/custom_jvp functions recorded their node in the graph of their
    # first tensor argument, the enclosing function's w, not the scan body's graph
    w = np.array([0.5, -0.3])
    xs = np.array([[1.0, 2.0], [0.3, 0.1], [-0.7, 0.4]])

    def f(w):
        return gc.sum(gc.scan(lambda c, x: (block(w, x) + c, None), np.zeros(2), xs)[0])

    def theirs(w):
        return torch.sum(torch.sin(_t(xs) * w))

    np.testing.assert_allclose(float(gc.compile(f)(w)), float(theirs(_t(w))), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gc.grad(f)(w)), tf.grad(theirs)(_t(w)).numpy(),
                               rtol=1e-13)
    ws = np.stack([w, -2.0 * w])
    np.testing.assert_allclose(np.asarray(gc.vmap(gc.grad(f))(ws)),
                               tf.vmap(tf.grad(theirs))(_t(ws)).numpy(), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(gc.hessian(f)(w)), tf.hessian(theirs)(_t(w)).numpy(),
                               rtol=1e-12, atol=1e-14)
