"""Review of forward mode through while_loop (passes/forward_mode.py): cases a differential
fuzz against PyTorch's forward-mode AD and finite differences found wrong."""
import inspect

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _finite_difference(fn, x, v, eps=1e-5):
    return (np.asarray(fn(x + eps * v)) - np.asarray(fn(x - eps * v))) / (2 * eps)


def test_hessian_of_a_scan_whose_body_counts_with_a_while_loop():
    # the loop only makes an integer, so the gradient goes through the scan (a scan with
    # save_carries), and the Hessian's forward pass then rebuilds that scan: it crashed
    # with KeyError, as the rebuilt scan's saved carries had no tangents
    def f(x):
        def step(c, r):
            n = gc.while_loop(lambda k: gc.cast(k, c.dtype) < gc.sum(r) * 3.0, lambda k: k + 1, 0)
            return gc.sin(c) * gc.cast(n, c.dtype) * r, None
        c, _ = gc.scan(step, x, gc.stack([x, x * 0.5]))
        return gc.sum(c)

    x = np.array([0.6, 0.8])
    hess = gc.hessian(f)(x)
    grad = gc.grad(f)
    want = np.stack([_finite_difference(grad, x, e) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(hess, want, rtol=1e-6, atol=1e-9)
    # the steps are elementwise (the trip counts are constant near x): a diagonal Hessian
    assert hess[0, 1] == 0.0 and abs(hess[0, 0]) > 1.0


def test_custom_rules_of_functions_holding_a_while_loop_give_the_tangents():
    # forward mode rebuilt the loop inside the custom function, whose results then looked
    # like differentiated values it closed over: "closes over a value that is being
    # differentiated". The rule gives the derivative; the loop needs none.
    def loop(x):
        return gc.while_loop(lambda v: gc.sum(v) < 5.0, lambda v: v * 1.5 + gc.sin(v), x)

    @gc.custom_jvp
    def doubled(x):
        return loop(x)

    @doubled.defjvp
    def doubled_jvp(primals, tangents):
        return loop(primals[0]), 2.0 * tangents[0]

    @gc.custom_vjp
    def tripled(x):
        return loop(x)

    tripled.defvjp(lambda x: (loop(x), None), lambda _, ct: (3.0 * ct,))

    x, dx = np.array([0.6, 0.8]), np.array([1.0, -0.5])
    want_out = x.copy()
    while want_out.sum() < 5.0:
        want_out = want_out * 1.5 + np.sin(want_out)
    for fn, factor in ((doubled, 2.0), (tripled, 3.0)):
        out, tangent = gc.jvp(lambda x: fn(x) * x, (x,), (dx,))
        np.testing.assert_allclose(out, want_out * x, rtol=1e-12)
        np.testing.assert_allclose(tangent, factor * dx * x + want_out * dx, rtol=1e-12)
        np.testing.assert_allclose(gc.jacfwd(fn)(x), factor * np.eye(2), rtol=1e-12)


def test_jvp_and_jacfwd_of_remat_around_a_while_loop():
    # remat's rule replays the loop in reverse mode, which a while_loop has not; forward
    # mode goes through remat's forward instead (JAX: jvp of checkpoint is jvp of f). It was
    # refused: 'while_loop has no reverse-mode gradient ... use forward mode'.
    def block(x, w):
        return gc.while_loop(lambda v: gc.sum(v) < 5.0, lambda v: v * 1.5 + gc.sin(v * w), x)

    def loop(x, w):
        v = x.copy()
        while v.sum() < 5.0:
            v = v * 1.5 + np.sin(v * w)
        return v

    x, w = np.array([0.6, 0.8]), np.array([0.3, -0.2])
    dx, dw = np.array([1.0, -0.5]), np.array([0.4, 0.9])
    wrapped = lambda x, w: gc.remat(block)(x, w) * x
    out, tangent = gc.jvp(wrapped, (x, w), (dx, dw))
    eps = 1e-6
    numeric = (loop(x + eps * dx, w + eps * dw) * (x + eps * dx)
               - loop(x - eps * dx, w - eps * dw) * (x - eps * dx)) / (2 * eps)
    np.testing.assert_allclose(out, loop(x, w) * x, rtol=1e-12)
    np.testing.assert_allclose(tangent, numeric, rtol=1e-6)
    np.testing.assert_allclose(gc.jacfwd(wrapped)(x, w),
                               gc.jacfwd(lambda x, w: block(x, w) * x)(x, w), rtol=1e-12)


def test_custom_vjp_in_a_loop_body_taking_a_value_of_the_enclosing_function():
    # f(x, c) with x read from outside the body: its forward's ops on x alone were built in
    # the enclosing graph (hoisted out of the body) and then taken for a value f closes
    # over: grad and jvp were refused ('closes over a value that is being differentiated')
    @gc.custom_vjp
    def f(u, v):
        return gc.sin(u) * v

    f.defvjp(lambda u, v: (gc.sin(u) * v, (u, v)),
             lambda r, ct: (gc.cos(r[0]) * r[1] * ct, gc.sin(r[0]) * ct))

    x, dx = np.array([0.6, 0.8]), np.array([1.0, -0.5])
    s, c = np.sin(x), np.cos(x)
    # two steps of c <- sin(x) c from c = x: sin(x)^2 x
    want_grad = 2 * s * c * x + s * s
    scanned = lambda x: gc.sum(gc.scan(lambda c, r: (f(x, c), None), x, gc.stack([x, x]))[0])
    np.testing.assert_allclose(gc.grad(scanned)(x), want_grad, rtol=1e-12)
    looped = lambda x: gc.while_loop(lambda c: c[1] < 2, lambda c: (f(x, c[0]), c[1] + 1),
                                     (x, 0))[0]
    np.testing.assert_allclose(gc.jvp(looped, (x,), (dx,))[1], want_grad * dx, rtol=1e-12)


def test_grad_of_a_jvp_through_a_while_loop_names_the_loops_line():
    # the loop forward mode rebuilt had the jvp call's line, so the refusal of its reverse
    # pass pointed there, at no while_loop
    def f(x):
        return gc.sum(gc.while_loop(lambda v: gc.sum(v) < 5.0, lambda v: v * 1.5, x))
    loop_line = inspect.getsourcelines(f)[1] + 1

    def pushed(x):
        return gc.jvp(f, (x,), (gc.ones_like(x),))[1]

    with pytest.raises(GraphcError, match="while_loop has no reverse-mode gradient") as error:
        gc.grad(pushed)(np.array([0.6, 0.8]))
    assert str(error.value).endswith(f"test_review_s21c.py:{loop_line}"), str(error.value)


def test_an_error_raised_entering_a_context_manager_names_the_users_line():
    # it named contextlib.py, Python's frame between graphc and the user's `with`
    with pytest.raises(GraphcError, match="not a half-precision dtype") as error:
        with gc.autocast("float32"):
            pass
    line = inspect.currentframe().f_lineno - 2
    assert str(error.value).endswith(f"test_review_s21c.py:{line}"), str(error.value)


def test_second_order_through_a_custom_vjp_whose_residual_comes_from_a_while_loop():
    # the outer jvp differentiates the inner one's bwd, which reads the residual: a loop
    # result, so forward mode rebuilt the loop and made its result a source, which the
    # custom_vjp's closure check then took for a closed-over value ('closes over a value
    # that is being differentiated'); it is computed from g's argument
    def loop(u):
        return gc.while_loop(lambda c: c[1] < 2, lambda c: (c[0] * 1.5, c[1] + 1), (u, 0))[0]

    @gc.custom_vjp
    def g(u):  # sin(2.25 u)
        return gc.sin(loop(u))

    def fwd(u):
        y = loop(u)
        return gc.sin(y), (y,)

    g.defvjp(fwd, lambda residuals, ct: (ct * gc.cos(residuals[0]) * 2.25,))
    x, d1, d2 = np.array([0.6, 0.8]), np.array([1.0, -0.5]), np.array([0.3, 0.9])

    def first(x):
        return gc.jvp(lambda x: g(x) * x, (x,), (d1,))[1]

    second = gc.jvp(first, (x,), (d2,))[1]
    # d/dx along d2 of 2.25 cos(2.25 x) d1 x + sin(2.25 x) d1
    y = 2.25 * x
    want = (-2.25 ** 2 * np.sin(y) * x + 2 * 2.25 * np.cos(y)) * d1 * d2
    np.testing.assert_allclose(second, want, rtol=1e-12)
