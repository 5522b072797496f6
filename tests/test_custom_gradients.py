"""gc.custom_vjp / gc.custom_jvp (graphc/custom.py, ir/ops/custom.py): the rule is what grad,
vjp, jvp, compiled plans and eager backward() compute; bad rules are one clear error."""
import functools
import gc as python_gc
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from errorcheck import assert_one_line_error
import graphc as gc
from ir.parser import parse
from ir.printer import format_graph
from runtime.interpreter import run

from test_ops import numeric_gradient, rel_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- a numerically stable log(1 + exp(x)), both ways ---------------------------------------
def naive_log1pexp(x):
    return gc.log(1.0 + gc.exp(x))


@gc.custom_jvp
def log1pexp(x):
    return naive_log1pexp(x)


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1.0 - 1.0 / (1.0 + gc.exp(x)))


@gc.custom_vjp
def log1pexp_v(x):
    return naive_log1pexp(x)


log1pexp_v.defvjp(lambda x: (log1pexp_v(x), x),
                  lambda x, g: (g * (1.0 - 1.0 / (1.0 + gc.exp(x))),))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


X = np.array([-3.0, 0.0, 2.0, 100.0], np.float32)  # exp(100) overflows float32


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fn", [log1pexp, log1pexp_v], ids=["custom_jvp", "custom_vjp"])
def test_custom_rule_stays_finite_where_autodiff_of_the_formula_is_nan(fn):
    naive = gc.grad(lambda x: gc.sum(naive_log1pexp(x)))(X)
    assert np.isnan(naive[-1])  # inf / inf in the autodiff of the formula
    expected = sigmoid(X.astype(np.float64))
    custom = gc.grad(lambda x: gc.sum(fn(x)))(X)
    np.testing.assert_allclose(custom, expected, rtol=1e-6)
    # the same through vjp, jvp, a compiled gradient and eager backward()
    _, pull = gc.vjp(fn, X)
    np.testing.assert_allclose(pull(np.ones(4, np.float32))[0], expected, rtol=1e-6)
    _, tangent = gc.jvp(fn, (X,), (np.ones(4, np.float32),))
    np.testing.assert_allclose(tangent, expected, rtol=1e-6)
    step = gc.compile(gc.grad(lambda x: gc.sum(fn(x) * 3.0)))
    np.testing.assert_allclose(step(X), 3 * expected, rtol=1e-6)
    t = gc.tensor(X, requires_grad=True)
    gc.sum(fn(t)).backward()
    np.testing.assert_allclose(t.grad, expected, rtol=1e-6)


# ---- a stable log-sum-exp, its residuals, pytrees -------------------------------------------
@gc.custom_vjp
def logsumexp(x):
    return gc.log(gc.sum(gc.exp(x)))


def _lse_fwd(x):
    m = gc.stop_gradient(gc.max(x))
    y = m + gc.log(gc.sum(gc.exp(x - m)))
    return y, (x, y)


logsumexp.defvjp(_lse_fwd, lambda res, g: (g * gc.exp(res[0] - res[1]),))


def test_stable_logsumexp_gradient_is_the_softmax_of_large_inputs():
    x = np.array([1000.0, 1001.0, 999.0])
    value, grad = gc.value_and_grad(logsumexp)(x)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(value, 1001 + np.log(e.sum()), rtol=1e-14)
    np.testing.assert_allclose(grad, e / e.sum(), rtol=1e-13)
    t = gc.tensor(x, requires_grad=True)
    logsumexp(t).backward()
    np.testing.assert_allclose(t.grad, e / e.sum(), rtol=1e-13)


@gc.custom_vjp
def scaled_pair(params, x):
    """A dict argument and a tuple output: (w * x, sum(b * x))."""
    return params["w"] * x, gc.sum(params["b"] * x)


def _pair_fwd(params, x):
    return scaled_pair(params, x), {"params": params, "x": x}


def _pair_bwd(res, cotangents):
    g_prod, g_sum = cotangents
    p, x = res["params"], res["x"]
    return ({"w": g_prod * x, "b": g_sum * x}, g_prod * p["w"] + g_sum * p["b"])


scaled_pair.defvjp(_pair_fwd, _pair_bwd)


def test_pytree_gradient_equals_finite_differences_in_float64():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=5), "b": rng.normal(size=5)}
    x = rng.normal(size=5)
    weights = rng.normal(size=5)

    def loss(params, x):
        prod, total = scaled_pair(params, x)
        return gc.sum(gc.tanh(prod) * weights) + total ** 2

    g_params, g_x = gc.grad(loss, argnums=(0, 1))(params, x)
    forward = gc.compile(loss)
    flat = lambda w, b, x: float(forward({"w": w, "b": b}, x))  # noqa: E731
    args = [params["w"], params["b"], x]
    for k, got in enumerate([g_params["w"], g_params["b"], g_x]):
        assert rel_error(got, numeric_gradient(flat, args, k)) < 1e-8
    # eager backward() over the same pytrees
    tw, tb, tx = (gc.tensor(a, requires_grad=True) for a in args)
    loss({"w": tw, "b": tb}, tx).backward()
    for t, got in zip((tw, tb, tx), (g_params["w"], g_params["b"], g_x)):
        np.testing.assert_allclose(t.grad, got, rtol=1e-12)


# ---- the rule is what runs, even when it differs from the function's derivative ------------
@gc.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (gc.maximum(gc.minimum(g, 1.0), -1.0),))


def test_compiled_plan_runs_the_rule_not_the_functions_derivative():
    x = np.array([1.0, -2.0, 3.0])
    f = gc.compile(gc.grad(lambda x: gc.sum(clip_gradient(x) * np.array([0.5, -4.0, 9.0]))))
    np.testing.assert_array_equal(f(x), [0.5, -1.0, 1.0])
    graph = gc.trace(gc.grad(lambda x: gc.sum(clip_gradient(x) * 5.0)), x)
    assert "custom_vjp" in {n.op for n in graph.nodes}
    compiled = gc.compile(gc.grad(lambda x: gc.sum(clip_gradient(x) * 5.0)))
    assert all(n.op != "custom_vjp" for n in compiled.plan_for(x).graph.nodes)  # inlined
    np.testing.assert_array_equal(compiled(x), [1.0, 1.0, 1.0])
    # pipeline O0 keeps the node: it lowers to a view of its forward value
    o0 = gc.compile(gc.grad(lambda x: gc.sum(clip_gradient(x) * 5.0)), pipeline="O0")
    np.testing.assert_array_equal(o0(x), [1.0, 1.0, 1.0])


def _round(x):
    """Round half away from zero (cast truncates): no gradient flows through the casts."""
    return gc.cast(gc.cast(x + 0.5 * gc.sign(x), "int64"), x.dtype)


@gc.custom_vjp
def ste_round(x):
    return _round(x)


ste_round.defvjp(lambda x: (_round(x), None), lambda _, g: (g,))  # straight through


def test_straight_through_estimator_trains_a_quantized_model_in_a_compiled_loop():
    rng = np.random.default_rng(0)
    w_true = np.array([[0.75], [-0.5], [0.25], [1.0]])  # on the quantization grid (1/4)
    x = rng.normal(size=(64, 4))
    y = x @ w_true

    def loss(w, quantize):
        return gc.mean((x @ (quantize(w * 4.0) / 4.0) - y) ** 2)

    @gc.compile
    def step(w):
        value, g = gc.value_and_grad(lambda w: loss(w, ste_round))(w)
        return value, w - 0.05 * g

    w = rng.normal(size=(4, 1)) * 0.1
    first, _ = step(w)
    for _ in range(300):
        value, w = step(w)
    assert float(value) < 1e-28 < 0.01 < float(first)  # the quantized weights are w_true
    np.testing.assert_array_equal(np.round(w * 4) / 4, w_true)
    # autodiff of the rounding itself gives no gradient at all: nothing would train
    assert not np.any(gc.grad(lambda w: loss(w, _round))(w + 0.1))


# ---- custom_jvp composes with grad, at any order ---------------------------------------------
def test_custom_jvp_second_derivative_and_forward_mode_through_grad():
    x = np.array([-1.0, 0.5, 3.0])
    s = sigmoid(x)
    f = lambda x: gc.sum(log1pexp(x))  # noqa: E731
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(gc.grad(f)(x)))(x), s * (1 - s),
                               rtol=1e-13)
    hessian = gc.hessian(f)(x)
    np.testing.assert_allclose(hessian, np.diag(s * (1 - s)), rtol=1e-13, atol=1e-15)
    # forward mode of the gradient (the diagonal Hessian-vector product)
    _, hv = gc.jvp(gc.grad(f), (x,), (np.array([1.0, 2.0, 3.0]),))
    np.testing.assert_allclose(hv, s * (1 - s) * [1, 2, 3], rtol=1e-13)


def test_forward_mode_through_a_bwd_not_linear_in_its_cotangent_is_refused():
    # JAX's own clip_gradient example: bwd clips g. The double vjp differentiated that rule
    # at g = 0, where clip is the identity, so jacfwd gave 3 where jacrev gives 1.5 (JAX
    # refuses jvp of any custom_vjp function); a rule linear in g keeps forward mode.
    @functools.partial(gc.custom_vjp, nondiff_argnums=(0, 1))
    def clip_gradient(lo, hi, x):
        return x
    clip_gradient.defvjp(lambda lo, hi, x: (x, None),
                         lambda lo, hi, _, g: (gc.clip(g, lo, hi),))

    def f(a):
        return clip_gradient(-0.5, 0.5, 3.0 * a)  # (the line the error names)
    line = f.__code__.co_firstlineno + 1
    x = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(gc.jacrev(f)(x), 1.5 * np.eye(3), rtol=0, atol=0)
    for forward in (lambda: gc.jacfwd(f)(x), lambda: gc.jvp(f, (x,), (np.ones(3),)),
                    lambda: gc.hessian(lambda a: gc.sum(f(a) ** 2))(x)):
        with pytest.raises(gc.GraphcError) as info:
            forward()
        message = str(info.value)
        assert message.splitlines()[0] == (
            "forward mode (jvp, jacfwd, hessian, linearize) through custom_vjp function "
            "clip_gradient: its bwd is not linear in the cotangent g, so it has no forward-mode "
            "derivative (JAX refuses jvp of any custom_vjp function); use reverse mode (grad, "
            "vjp, jacrev), or give the function a custom_jvp rule")
        assert f"test_custom_gradients.py:{line}" in message
    # a bwd linear in g (scaled by a residual) still has its exact forward mode
    scaled = gc.custom_vjp(lambda a: gc.sin(a))
    scaled.defvjp(lambda a: (gc.sin(a), gc.cos(a)), lambda c, g: (gc.clip(c, -0.5, 0.5) * g,))
    np.testing.assert_allclose(gc.jacfwd(scaled)(x), np.diag(np.clip(np.cos(x), -0.5, 0.5)),
                               rtol=1e-15)


def test_the_refusal_names_the_function_whose_bwd_is_not_linear():
    # the refusal named any custom_vjp node on the path (the first of a set, by address):
    # clipper(scale2(a)) named scale2, whose bwd 2 * g is linear, and clipper(softplus(a))
    # named softplus, a custom_jvp function ("its bwd is not linear"). Each rule on the path
    # is now run alone on a placeholder cotangent: the one reading it is named.
    @gc.custom_vjp
    def clipper(a):
        return a
    clipper.defvjp(lambda a: (a, None), lambda _, g: (gc.clip(g, -0.5, 0.5),))

    @gc.custom_vjp
    def scale2(a):
        return 2.0 * a
    scale2.defvjp(lambda a: (2.0 * a, None), lambda _, g: (2.0 * g,))

    @gc.custom_jvp
    def softplus(a):
        return gc.log(1.0 + gc.exp(a))
    softplus.defjvps(lambda t, ans, a: t / (1.0 + gc.exp(-a)))

    x = np.array([0.3, -1.0, 2.0])
    for f in (lambda a: clipper(scale2(a)), lambda a: scale2(clipper(a)),
              lambda a: clipper(softplus(a)), lambda a: softplus(clipper(a)),
              lambda a: scale2(softplus(clipper(scale2(softplus(a)))))):
        for forward in (gc.jacfwd(f), gc.hessian(lambda a: gc.sum(f(a) ** 2))):
            with pytest.raises(gc.GraphcError, match="through custom_vjp function clipper: "):
                forward(x)


def test_eager_create_graph_through_a_custom_jvp_rule_is_refused():
    t = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(gc.GraphcError, match="log1pexp: backward.create_graph=True. through"):
        gc.sum(log1pexp(t)).backward(create_graph=True)


def test_non_tensor_arguments_pass_through_and_get_no_cotangent():
    @gc.custom_vjp
    def power(x, n):
        return x ** n

    power.defvjp(lambda x, n: (x ** n, (x, n)), lambda r, g: (g * r[1] * r[0] ** (r[1] - 1),
                                                              None))
    x = np.array([1.5, 2.0])
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(power(x, 3)))(x), 3 * x ** 2)
    # with no tensor requiring grad, eager calls are the function itself
    np.testing.assert_allclose(power(gc.tensor(x), 2).data, x ** 2)


# ---- JAX's nondiff_argnums and defjvps --------------------------------------------------------
# They were missing (TypeError: unexpected keyword argument 'nondiff_argnums'; no defjvps).
# Expected values: JAX 0.10.2's for the same programs (x64 on), computed once.
_XS = np.array([0.5, -1.25, 2.0])
_YS = np.array([1.5, 0.25, -0.75])


def _cube(v):
    return v ** 3


@functools.partial(gc.custom_vjp, nondiff_argnums=(0,))  # the usual JAX idiom
def _clip_gradient(limit, x):
    return x


_clip_gradient.defvjp(lambda limit, x: (x, None),
                      lambda limit, _, g: (gc.clip(g, -limit, limit),))


@functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
def _apply(x, f, y):  # a function as the nondiff argument, between two arrays
    return f(x) * y


def _apply_bwd(f, res, g):  # the nondiff arguments first, then one cotangent per other one
    x, y = res
    return g * y * 3.0 * x ** 2, g * f(x)


_apply.defvjp(lambda x, f, y: (f(x) * y, (x, y)), _apply_bwd)


def test_nondiff_argnums_of_a_custom_vjp_go_to_fwd_and_bwd_and_get_no_cotangent():
    assert gc.grad(lambda x: 10.0 * _clip_gradient(1.0, x))(3.0) == 1.0
    assert gc.compile(gc.grad(lambda x: 10.0 * _clip_gradient(1.0, x)))(3.0) == 1.0
    np.testing.assert_allclose(_apply(_XS, _cube, _YS), [0.1875, -0.48828125, -6.0])

    def loss(x, y):
        return gc.sum(gc.sin(_apply(x, _cube, y)))

    want = ([1.1052824772389123, 1.0349302068832524, -8.641532579853294],
            [0.12280916413765691, -1.7248836781387542, 7.681362293202928])
    for got in (gc.grad(loss, argnums=(0, 1))(_XS, _YS),
                gc.compile(gc.grad(loss, argnums=(0, 1)))(_XS, _YS)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-13)
    x, y = gc.tensor(_XS, requires_grad=True), gc.tensor(_YS, requires_grad=True)
    loss(x, y).backward()  # eagerly, on the tape
    np.testing.assert_allclose(x.grad, want[0], rtol=1e-13)
    np.testing.assert_allclose(y.grad, want[1], rtol=1e-13)
    second = gc.grad(lambda x: gc.sum(gc.grad(loss)(x, _YS)))
    for got in (second(_XS), gc.compile(second)(_XS)):
        np.testing.assert_allclose(got, [4.185213236490902, -1.01166558967864,
                                         -31.27418793396629], rtol=1e-12)
    # a negative position counts from the end, as JAX's
    scale = gc.custom_vjp(lambda k, x: x * k, nondiff_argnums=(-2,))
    scale.defvjp(lambda k, x: (x * k, None), lambda k, _, g: (g * k * 2.0,))
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(scale(3.0, x)))(_XS), [6.0] * 3)


@pytest.mark.parametrize("kind", ["custom_vjp", "custom_jvp"])
def test_keyword_arguments_and_defaults_are_placed_by_the_signature_as_jax(kind):
    # `f(x, k=0.5)` was Python's TypeError from __call__ (a traceback, under grad too). As
    # JAX's resolve_kwargs: the arguments by position in fun's signature, defaults filled in,
    # so fwd, the rule, bwd's cotangents and nondiff_argnums count them. The rules are 10
    # times the derivative, so only the rule gives these values.
    def fun(x, k=3.0, *, flag=False):
        return x * k

    custom = getattr(gc, kind)(fun, nondiff_argnums=(1,))
    if kind == "custom_vjp":
        custom.defvjp(lambda x, k: (x * k, None), lambda k, _, g: (g * k * 10.0,))
    else:
        custom.defjvp(lambda k, primals, tangents: (primals[0] * k, tangents[0] * k * 10.0))
    xs = np.array([0.5, -1.5, 2.0])
    for call, k in [(lambda x: custom(x, k=0.5), 0.5), (lambda x: custom(x=x, k=0.5), 0.5),
                    (lambda x: custom(x), 3.0)]:  # (the default, passed to the rule)
        np.testing.assert_array_equal(call(xs), xs * k)
        np.testing.assert_allclose(gc.grad(lambda x: gc.sum(call(x)))(xs), [10.0 * k] * 3)
        np.testing.assert_allclose(gc.compile(gc.grad(lambda x: gc.sum(call(x))))(xs),
                                   [10.0 * k] * 3)
        np.testing.assert_allclose(gc.jvp(call, (xs,), (np.ones(3),))[1], [10.0 * k] * 3)
        x = gc.tensor(xs, requires_grad=True)
        gc.sum(call(x)).backward()
        np.testing.assert_allclose(x.grad, [10.0 * k] * 3)
    # what cannot be placed, or fun does not take, is one line naming the function
    for call, message in [
            (lambda: custom(xs, flag=True), "keyword argument 'flag' cannot be given a "
             "position (keyword-only, or taken by **kwargs)"),
            (lambda: custom(xs, scale=2.0), "got an unexpected keyword argument 'scale'"),
            (lambda: custom(xs, 1.0, 2.0), "too many positional arguments"),
            (lambda: custom(xs, 1.0, k=2.0), "multiple values for argument 'k'")]:
        with pytest.raises(gc.GraphcError) as exc:
            call()
        assert str(exc.value).splitlines()[0] == f"{kind} function fun: {message}" + (
            "; a custom function's arguments are positional, as JAX's: make it a positional "
            "parameter" if "flag" in message else "")
        assert "test_custom_gradients.py" in str(exc.value).splitlines()[1]


@pytest.mark.parametrize("kind", ["custom_vjp", "custom_jvp"])
def test_a_partial_functions_defaults_are_not_passed_to_the_rules_as_jax(kind):
    # JAX's resolve_kwargs takes a functools.partial's signature as opaque: its defaults are
    # not filled in, so fwd and the rule get the arguments given. Filling them in made
    # fwd(x) written for JAX (and graphc before keywords) a TypeError: fwd(x, 3.0).
    def f(a, x, k=3.0):
        return a * x * k

    custom = getattr(gc, kind)(functools.partial(f, 2.0))
    if kind == "custom_vjp":
        custom.defvjp(lambda x: (custom.fun(x), None), lambda _, g: (g * 100.0,))
    else:
        @custom.defjvp
        def rule(primals, tangents):
            (x,), (t,) = primals, tangents  # (one argument given, one primal)
            return custom.fun(x), t * 100.0
    xs = np.array([0.5, -1.5, 2.0])
    np.testing.assert_array_equal(custom(xs), xs * 6.0)
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(custom(x)))(xs), [100.0] * 3)
    x = gc.tensor(xs, requires_grad=True)
    gc.sum(custom(x)).backward()
    np.testing.assert_allclose(x.grad, [100.0] * 3)


def test_a_python_number_given_to_grad_reaches_a_nondiff_position_as_the_number():
    # `gc.grad(f)(x, 0.7)` traces 0.7; in a nondiff position it was refused as "an array being
    # traced". grad and the Jacobians now retry with the number, as remat's static_argnums
    # are (JAX passes it untraced). Expected values: JAX 0.10.2's (x64), hard-coded.
    @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
    def scale(x, k):
        return x * k
    scale.defvjp(lambda x, k: (x * k, None), lambda k, _, g: (g * k * 10.0,))

    @functools.partial(gc.custom_jvp, nondiff_argnums=(1,))
    def jscale(x, k):
        return x * k
    jscale.defjvp(lambda k, p, t: (p[0] * k, t[0] * k * 2.0))

    @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
    def power(x, n):  # n used as a Python int
        for _ in range(n):
            x = x * x
        return x
    power.defvjp(lambda x, n: (power(x, n), x), lambda n, x, g: (g * n * 100.0,))

    grad = gc.grad(lambda x, k: gc.sum(scale(x, k)))
    np.testing.assert_array_equal(grad(_XS, 0.7), [7.0, 7.0, 7.0])
    np.testing.assert_array_equal(grad(_XS, 0.3), [3.0, 3.0, 3.0])  # the new number
    np.testing.assert_array_equal(gc.jacrev(scale)(_XS, 0.7), np.eye(3) * 7.0)
    np.testing.assert_array_equal(gc.grad(lambda x, k: gc.sum(jscale(x, k)))(_XS, 3.0),
                                  [6.0, 6.0, 6.0])
    value_and_grad = gc.value_and_grad(lambda x, n: gc.sum(power(x, n)))
    np.testing.assert_array_equal(value_and_grad(_XS, 1)[1], [100.0, 100.0, 100.0])
    value, g = value_and_grad(_XS, 2)
    assert value == 18.50390625
    np.testing.assert_array_equal(g, [200.0, 200.0, 200.0])
    # a number that gc.compile traces stays refused (JAX's jit refuses the tracer), naming it
    with pytest.raises(gc.GraphcError) as info:
        gc.compile(grad)(_XS, 0.7)
    assert str(info.value).splitlines()[0].startswith(
        "custom_vjp function scale: argument 1 is in nondiff_argnums but is a traced value; "
        "pass it as a differentiable argument (its cotangent None), or close over it; the "
        "value passed as 'k' is traced")


def test_a_pytree_of_python_numbers_given_to_grad_reaches_a_nondiff_position_as_it_is():
    # a lone number was retried as it is, but a tuple (or list, dict) of numbers stayed traced
    # and was refused as "a traced value" naming 'arg1.0'. JAX's un-jitted grad passes every
    # argument it does not differentiate as it is: the values are the rules' by hand.
    @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
    def scale(x, k):
        return x * k[0] * k[1]
    scale.defvjp(lambda x, k: (x * k[0] * k[1], None),
                 lambda k, _, g: (g * k[0] * k[1] * 10.0,))

    @functools.partial(gc.custom_jvp, nondiff_argnums=(1,))
    def jscale(x, k):
        return x * k["a"][0]
    jscale.defjvp(lambda k, p, t: (p[0] * k["a"][0], t[0] * k["a"][0] * 2.0))

    @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
    def power(x, n):  # n[0] used as a Python int
        for _ in range(n[0]):
            x = x * x
        return x
    power.defvjp(lambda x, n: (power(x, n), x), lambda n, x, g: (g * n[0] * 100.0,))

    grad = gc.grad(lambda x, k: gc.sum(scale(x, k)))
    np.testing.assert_allclose(grad(_XS, (0.7, 2.0)), [14.0] * 3)  # 10 * 0.7 * 2
    np.testing.assert_allclose(grad(_XS, [0.5, 3.0]), [15.0] * 3)  # a list, new values
    np.testing.assert_allclose(gc.grad(lambda x, k: gc.sum(jscale(x, k)))(_XS, {"a": [3.0]}),
                               [6.0] * 3)  # 2 * 3
    value_and_grad = gc.value_and_grad(lambda x, n: gc.sum(power(x, n)))
    np.testing.assert_array_equal(value_and_grad(_XS, (1,))[1], [100.0] * 3)
    value, g = value_and_grad(_XS, (2,))  # x**4 forward, 2 * 100 backward
    assert value == 18.50390625
    np.testing.assert_array_equal(g, [200.0] * 3)
    np.testing.assert_array_equal(gc.jacrev(scale)(_XS, (0.5, 2.0)), np.eye(3) * 10.0)
    # (the same retry for a plain function using a tuple's number as a Python value)
    np.testing.assert_array_equal(
        gc.grad(lambda x, n: gc.sum(x ** 2) * n[0] if n[1] else gc.sum(x))(_XS, (3, True)),
        6.0 * _XS)
    # traced by gc.compile, it stays refused (JAX's jit refuses the tracer), naming the leaf
    with pytest.raises(gc.GraphcError) as info:
        gc.compile(grad)(_XS, (0.7, 2.0))
    assert str(info.value).splitlines()[0].startswith(
        "custom_vjp function scale: argument 1 is in nondiff_argnums but is a traced value; "
        "pass it as a differentiable argument (its cotangent None), or close over it; the "
        "value passed as 'k.0' is traced")


def test_grad_passes_only_the_numbers_used_as_python_values_as_they_are():
    # review r2 of 210d63a: (1, [2]) was refused ("argument 1 is a tuple, which is not
    # hashable; pass a tuple") where [[2]] and {"a": [2]} ran; (k, lr) keyed the plan by lr
    # too, so each new learning rate recompiled (a RecompileWarning blaming "a setting");
    # (k, array) stayed refused with a hint to grad's non-existent static_argnums; a numpy
    # number keyword (k=np.int64(2)) too. Only the leaf used as a Python value passes as it
    # is now (JAX's un-jitted grad passes them all as given), the others stay traced.
    count = lambda x, n: gc.sum(x) * len(range(n[1][0]))  # noqa: E731
    for n in ((1, [2]), [[0.5], [2]], {0: 1, 1: [2]}):
        np.testing.assert_array_equal(gc.grad(count)(_XS, n), [2.0] * 3)
    scaled = gc.grad(lambda x, n: gc.sum(x * n[1]) * len(range(n[0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error", gc.RecompileWarning)  # (8 plans would warn)
        for i in range(12):
            np.testing.assert_allclose(scaled(_XS, (2, 0.25 * i)), [0.5 * i] * 3)
    np.testing.assert_array_equal(scaled(_XS, (3, 1.0)), [3.0] * 3)  # a new k: its own plan
    np.testing.assert_array_equal(scaled(_XS, (2, np.array([1.0, 2.0, 4.0]))), [2.0, 4.0, 8.0])
    by_keyword = gc.grad(lambda x, k=None: gc.sum(x) * len(range(k["n"])))
    np.testing.assert_array_equal(by_keyword(_XS, k={"n": np.int64(3), "w": np.ones(2)}),
                                  [3.0] * 3)
    np.testing.assert_array_equal(gc.jacrev(lambda x, n: x * len(range(n[0])))(_XS, (2, 0.5)),
                                  2.0 * np.eye(3))


def test_nondiff_argnums_of_a_custom_jvp_and_defjvps():
    @functools.partial(gc.custom_jvp, nondiff_argnums=(0,))
    def apply(f, x):
        return f(x)

    @apply.defjvp
    def _(f, primals, tangents):  # twice the true derivative: the rule is what is used
        (x,), (t,) = primals, tangents
        return f(x), 2.0 * 3.0 * x ** 2 * t

    def loss(x):
        return gc.sum(apply(_cube, x) ** 2)

    for got in (gc.grad(loss)(_XS), gc.compile(gc.grad(loss))(_XS)):
        np.testing.assert_allclose(got, [0.375, -36.62109375, 384.0], rtol=1e-13)
    value, tangent = gc.jvp(lambda x: apply(_cube, x), (_XS,), (_YS,))
    np.testing.assert_allclose(value, [0.125, -1.953125, 8.0])
    np.testing.assert_allclose(tangent, [2.25, 2.34375, -18.0])

    @functools.partial(gc.custom_jvp, nondiff_argnums=(0,))
    def exact(f, x):
        return f(x)

    exact.defjvp(lambda f, p, t: (f(p[0]), 3.0 * p[0] ** 2 * t[0]))  # f's own derivative
    second = gc.grad(lambda x: gc.sum(gc.grad(lambda v: gc.sum(exact(_cube, v) ** 2))(x)))
    np.testing.assert_allclose(second(_XS), 30.0 * _XS ** 4, rtol=1e-13)  # d2/dx2 of x**6

    @gc.custom_jvp
    def sin_times(x, y):
        return gc.sin(x) * y

    sin_times.defjvps(lambda x_dot, out, x, y: 2.0 * gc.cos(x) * x_dot * y,  # twice again
                      lambda y_dot, out, x, y: 2.0 * gc.sin(x) * y_dot)

    def loss2(x, y):
        return gc.sum(sin_times(x, y) ** 2)

    want = ([3.7866194316355344, -0.07480901801299457, -0.8514028072214193],
            [1.379093082395581, 0.9005718077734668, -2.4804654312954177])
    for got in (gc.grad(loss2, argnums=(0, 1))(_XS, _YS),
                gc.compile(gc.grad(loss2, argnums=(0, 1)))(_XS, _YS)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-13)
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(gc.grad(loss2)(x, _YS)))(_XS),
                               [11.794081129219887, -0.17542885583010012, -1.08104722041469],
                               rtol=1e-12)

    @gc.custom_jvp
    def product(x, y):
        return x * y

    product.defjvps(lambda x_dot, out, x, y: x_dot * y * 3.0, None)  # None: no tangent
    gx, gy = gc.grad(lambda x, y: gc.sum(product(x, y)), argnums=(0, 1))(_XS, _YS)
    np.testing.assert_allclose(gx, [4.5, 0.75, -2.25])
    np.testing.assert_array_equal(gy, [0.0, 0.0, 0.0])


def test_bad_nondiff_argnums_and_defjvps_are_one_line_each():
    def first_line(fn):
        with pytest.raises(gc.GraphcError) as info:
            fn()
        return str(info.value).splitlines()[0]

    assert first_line(lambda: gc.custom_vjp(_cube, nondiff_argnums="a")) == \
        "custom_vjp: nondiff_argnums must be an int or a tuple of ints, got 'a'"
    scale = gc.custom_vjp(lambda k, x: x * k, nondiff_argnums=(2,))
    scale.defvjp(lambda k, x: (x * k, None), lambda k, _, g: (g,))
    assert first_line(lambda: scale(2.0, _XS)) == \
        "custom_vjp function <lambda>: nondiff_argnums has 2 but it was called with 2 arguments"
    twice = gc.custom_vjp(lambda k, x: x * k, nondiff_argnums=(0,))
    twice.defvjp(lambda k, x: (x * k, None), lambda k, _, g: (g * k, g))
    assert first_line(lambda: gc.grad(lambda x: gc.sum(twice(2.0, x)))(_XS)) == (
        "custom_vjp function <lambda>: bwd returned 2 cotangents for 1 differentiable "
        "argument; return one per argument not in nondiff_argnums (0,) (None for no gradient)")
    # a traced array in a nondiff position: refused, as JAX refuses a tracer there
    assert first_line(lambda: gc.grad(lambda x: gc.sum(twice(x[0], x)))(_XS)).startswith(
        "custom_vjp function <lambda>: argument 0 is in nondiff_argnums but is a traced value; "
        "pass it as a differentiable argument (its cotangent None), or close over it")
    assert first_line(lambda: twice(gc.tensor(2.0, requires_grad=True), _XS)) == (
        "custom_vjp function <lambda>: argument 0 is in nondiff_argnums but is a tensor that "
        "requires grad; pass it as a differentiable argument (its cotangent None), or close "
        "over it")
    one = gc.custom_jvp(lambda x, y: x * y)
    one.defjvps(lambda t, out, x, y: t * y)
    assert first_line(lambda: gc.grad(lambda x: gc.sum(one(x, x)))(_XS)) == (
        "custom_jvp function <lambda>: defjvps was given 1 functions for 2 arguments; give one "
        "per argument (None for none)")
    assert first_line(lambda: gc.custom_jvp(_cube).defjvps(3)) == \
        "custom_jvp function _cube: defjvps' function 0 is 3, not a function or None"
    assert first_line(lambda: gc.custom_jvp(lambda f, x: f(x), nondiff_argnums=(0,))
                      .defjvps(None, None)) == \
        "custom_jvp function <lambda>: defjvps does not take nondiff_argnums (as JAX's); use " \
        "defjvp"


# ---- bad rules: one GraphcError naming the function ------------------------------------------
def _with_rule(fwd, bwd):
    @gc.custom_vjp
    def scale(x, y):
        return x * y
    scale.defvjp(fwd, bwd)
    return lambda x, y: gc.sum(scale(x, y))


GOOD_FWD = lambda x, y: (x * y, (x, y))  # noqa: E731


@pytest.mark.parametrize("fwd, bwd, message", [
    (GOOD_FWD, lambda r, g: (g * r[1],),
     "scale: bwd returned 1 cotangents for 2 arguments"),
    (GOOD_FWD, lambda r, g: g * r[1],
     r"scale: bwd must return a tuple with one cotangent per argument \(2\), got one array"),
    (GOOD_FWD, lambda r, g: (g * r[1], gc.sum(g)),
     r"scale: bwd's cotangent for argument 1 has shape \(\) but the argument has shape \(3,\)"),
    (lambda x, y: x * y, lambda r, g: (g, g),
     r"scale: fwd must return a pair \(output, residuals\), got one array"),
    # a wrongly nested cotangent: traced, np.shape((g,)) turned g into an array, "a symbolic
    # value cannot be turned into a numpy array"; values of two shapes were numpy's
    # inhomogeneous-shape ValueError eagerly
    (GOOD_FWD, lambda r, g: ((g * r[1],), g * r[0]),
     r"scale: bwd's cotangent for argument 0 has shape \(1, 3\) but the argument has shape "
     r"\(3,\)"),
    # a dict or a string where an array belongs was "has shape ()", as if it were a number
    (GOOD_FWD, lambda r, g: (g, {"y": g}),
     r"scale: bwd's cotangent for argument 1 is a dict, not an array of the argument's shape "
     r"\(3,\)"),
    (GOOD_FWD, lambda r, g: ("g", g),
     r"scale: bwd's cotangent for argument 0 is a str, not an array of the argument's shape "
     r"\(3,\)"),
    (GOOD_FWD, lambda r, g: (np.array(["a", "b", "c"]), g),
     r"scale: bwd's cotangent for argument 0 is an array of dtype <U1, not an array of "
     r"numbers of the argument's shape \(3,\)"),
    (GOOD_FWD, lambda r, g: ((g, g[:2]), g),
     r"scale: bwd's cotangent for argument 0 is a tuple of values of different shapes, not "
     r"one array of the argument's shape \(3,\)"),
])
def test_bad_rules_are_one_error_naming_the_function(fwd, bwd, message):
    f = _with_rule(fwd, bwd)
    x = np.ones(3)
    with pytest.raises(gc.GraphcError, match=message) as err:
        gc.grad(f)(x, x)
    assert "\n" not in str(err.value).split("\n  at ")[0]
    assert "test_custom_gradients.py" in str(err.value).split("\n  at ")[1]
    with pytest.raises(gc.GraphcError, match=message):  # eagerly too
        t = gc.tensor(x, requires_grad=True)
        f(t, gc.tensor(x)).backward()


@pytest.mark.parametrize("fun, primal, problem", [
    (lambda x: gc.sin(x), lambda x: gc.sum(x),
     r" is float32 of shape \(\) where the function's output is float32 of shape \(3,\)"),
    (lambda x: gc.sin(x), lambda x: x.astype("float64"),
     r" is float64 of shape \(3,\) where the function's output is float32 of shape \(3,\)"),
    (lambda x: gc.sin(x), lambda x: (x, x),
     r" does not match the function's output: a tuple of 2 where an array is"),
    (lambda x: {"a": x, "b": (gc.sum(x), x)}, lambda x: {"a": x, "b": (gc.sum(x), x * 1.0)},
     None),
    (lambda x: {"a": x, "b": (gc.sum(x), x)},
     lambda x: {"a": x, "b": (gc.sum(x).astype("float64"), x)},
     r"\['b'\]\[0\] is float64 of shape \(\) where the function's output is float32 of "
     r"shape \(\)"),
    (lambda x: {"a": x, "b": (gc.sum(x), x)}, lambda x: {"a": x, "c": (gc.sum(x), x)},
     r" does not match the function's output: .*keys"),
    # a Python number is weakly typed (JAX's check ignores weak types): it matches a 0-d
    # array of its kind; a numpy scalar has its own dtype
    (lambda x: gc.sum(x), lambda x: 1.0, None),
    (lambda x: gc.sum(x), lambda x: np.float32(1.0), None),
    (lambda x: 2.0, lambda x: gc.sum(x), None),
    (lambda x: gc.sum(x), lambda x: np.float64(1.0),
     r" is float64 of shape \(\) where the function's output is float32 of shape \(\)"),
    (lambda x: gc.sum(x), lambda x: 1,
     r" is a Python int where the function's output is float32 of shape \(\)"),
    (lambda x: gc.sin(x), lambda x: 1.0,
     r" is a Python float where the function's output is float32 of shape \(3,\)"),
])
def test_a_fwd_primal_unlike_the_function_is_refused_eagerly_and_traced(fun, primal, problem):
    """fwd's primal output of another structure, shape or dtype than the function's was taken
    as it was (an eager or compiled value of fwd's shape or dtype); as JAX's, one line naming
    fwd, the place and both types, wherever fwd runs (its value is taken, as before)."""
    f = gc.custom_vjp(fun)
    f.defvjp(lambda x: (primal(x), None), lambda _, g: (None,))
    x = np.array([0.1, 0.2, 0.3], np.float32)
    runs = (lambda: f(gc.tensor(x, requires_grad=True)),
            lambda: gc.compile(f)(x),
            lambda: gc.grad(lambda x: gc.sum(x) + 0.0 * gc.sum(gc.stack(
                [gc.sum(y) for y in gc.tree_leaves(f(x))])))(x),
            lambda: gc.compile(lambda x: gc.scan(lambda c, _: (c, f(c)), x, None, length=2))(x))
    if problem is None:
        expected = primal(x)
        for run in runs[:2]:
            for got, want in zip(gc.tree_leaves(run()), gc.tree_leaves(expected)):
                np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
                assert np.shape(got) == np.shape(want)
        for run in runs[2:]:
            run()
        return
    message = "custom_vjp function <lambda>: fwd's primal output .the first of its pair." + problem
    for run in runs:
        with pytest.raises(gc.GraphcError, match=message) as err:
            run()
        line, where = str(err.value).split("\n  at ")
        assert "\n" not in line and "fwd must return (output, residuals)" in line
        assert "test_custom_gradients.py" in where


def test_the_function_is_traced_once_per_argument_types_apart_from_the_plan():
    """The check traces the function (gc.eval_shape) once per shapes and dtypes of its
    arguments, in a graph of its own: the plan holds fwd's nodes alone, as before, and
    custom functions the function calls are their plain functions there (no rule of theirs
    numbered, none checked)."""
    calls = []

    @gc.custom_vjp
    def inner(x):
        return x * 2.0
    inner.defvjp(lambda x: ((x * 2.0).astype("float64"), None), lambda _, g: (g,))

    @gc.custom_vjp
    def f(x):
        calls.append(x.shape)
        return gc.sin(inner(x))
    f.defvjp(lambda x: (gc.cos(x), x), lambda x, g: (g * 3.0,))
    x = np.array([0.1, 0.2, 0.3], np.float32)
    for _ in range(3):
        y = f(gc.tensor(x, requires_grad=True))
        np.testing.assert_allclose(y.data, np.cos(x), rtol=1e-6)  # fwd's value, as before
    f(gc.tensor(np.ones((2, 2), np.float32), requires_grad=True))
    assert calls == [(3,), (2, 2)]
    np.testing.assert_allclose(gc.compile(f)(x), np.cos(x), rtol=1e-6)
    graph = gc.trace(lambda x: f(x), gc.spec((3,)))
    assert [n.op for n in graph.nodes if n.op in ("sin", "mul", "custom_vjp")] == ["custom_vjp"]
    assert "rule=" in format_graph(graph) and calls == [(3,), (2, 2), (3,)]


def test_a_cached_function_output_is_traced_again_before_fwd_is_refused():
    """The function's output was cached by its arguments' types alone, so that a valid fwd
    was refused where the output follows more (review r14): the same call under autocast
    after one without it ("float16 ... where the function's output is float32"), and a
    module taken as a nondiff argument after its weights were replaced. A numpy argument's
    values are not in the key (a new batch each step traced the function again)."""
    @gc.custom_vjp
    def f(w, x):
        return gc.matmul(x, w)
    f.defvjp(lambda w, x: (gc.matmul(x, w), (w, x)),
             lambda r, g: (gc.matmul(r[1].T.astype(g.dtype), g), None))
    w, x = np.ones((3, 2), np.float32), np.ones((4, 3), np.float32)

    def loss(w, x):
        return gc.sum(f(w, x)).astype("float32")

    def amp_loss(w, x):
        with gc.autocast("float16"):
            return loss(w, x)
    assert f(gc.tensor(w, requires_grad=True), x).dtype == np.float32
    with gc.autocast("float16"):
        assert f(gc.tensor(w, requires_grad=True), x).dtype == np.float16
    for lossfn in (loss, amp_loss, loss):
        np.testing.assert_allclose(gc.compile(gc.grad(lossfn))(w, x), np.full((3, 2), 4.0))
    assert f(gc.tensor(w, requires_grad=True), x).dtype == np.float32
    for batch in range(70):  # (one entry: the batch's values are no key)
        f(gc.tensor(w, requires_grad=True), np.full((4, 3), batch, np.float32))
    assert len(f._outputs) <= 3

    apply = gc.custom_vjp(lambda layer, x: layer(x), nondiff_argnums=(0,))
    apply.defvjp(lambda layer, x: (layer(x), None), lambda layer, _, g: (None,))
    layer = gc.nn.Linear(3, 2)
    assert apply(layer, gc.tensor(x, requires_grad=True)).shape == (4, 2)
    layer.weight = gc.nn.Parameter(np.zeros((3, 5), np.float32))
    layer.bias = gc.nn.Parameter(np.zeros(5, np.float32))
    assert apply(layer, gc.tensor(x, requires_grad=True)).shape == (4, 5)
    bad = gc.custom_vjp(lambda layer, x: layer(x), nondiff_argnums=(0,))
    bad.defvjp(lambda layer, x: (gc.sum(layer(x)), None), lambda layer, _, g: (None,))
    with pytest.raises(gc.GraphcError, match=r"is float32 of shape \(\) where the function's "
                       r"output is float32 of shape \(4, 5\)"):
        bad(layer, gc.tensor(x, requires_grad=True))


def test_a_function_not_traceable_on_shapes_leaves_fwd_unchecked():
    """A function that reads a value in Python, eagerly allowed, cannot be traced on shapes:
    fwd's output goes unchecked there, as before, not refused."""
    @gc.custom_vjp
    def f(x):
        return x * float(np.asarray(x)[0])  # (concrete values only)
    f.defvjp(lambda x: (x * 2.0, x), lambda x, g: (g * 2.0,))
    t = gc.tensor(np.array([2.0, 3.0], np.float32), requires_grad=True)
    y = f(t)
    np.testing.assert_allclose(y.data, [4.0, 6.0])
    gc.sum(y).backward()
    np.testing.assert_allclose(t.grad, [2.0, 2.0])


def test_a_wrongly_nested_cotangent_with_nondiff_argnums_is_the_shape_error_traced_too():
    # traced calls (grad, compile, vjp) gave "a symbolic value cannot be turned into a numpy
    # array" where backward() gave this shape error; rows of traced values (a list the
    # argument's shape, as eagerly) were that error too, and now stack into the cotangent
    def make(bwd):
        @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
        def f(x, k, y):
            return x * k + y
        f.defvjp(lambda x, k, y: (f(x, k, y), y), bwd)
        return f

    f = make(lambda k, y, g: ((g * k,), g))
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    message = (r"^custom_vjp function f: bwd's cotangent for argument 0 has shape \(1, 2\) but "
               r"the argument has shape \(2,\)\n  at .*test_custom_gradients\.py")
    loss = lambda x, y: gc.sum(f(x, 2.0, y))  # noqa: E731
    for run in (lambda: gc.grad(loss, argnums=(0, 1))(x, y),
                lambda: gc.compile(gc.grad(loss, argnums=(0, 1)))(x, y),
                lambda: gc.vjp(lambda x, y: f(x, 2.0, y), x, y)[1](np.ones(2)),
                lambda: loss(gc.tensor(x, requires_grad=True), gc.tensor(y)).backward()):
        with pytest.raises(gc.GraphcError, match=message):
            run()
    f = make(lambda k, y, g: ([g[0] * k, g[1] * y[1]], g))
    loss = lambda x, y: gc.sum(f(x, 2.0, y))  # noqa: E731
    t = gc.tensor(x, requires_grad=True)
    loss(t, gc.tensor(y)).backward()
    for gx, gy in (gc.grad(loss, argnums=(0, 1))(x, y),
                   gc.compile(gc.grad(loss, argnums=(0, 1)))(x, y), (t.grad, np.ones(2))):
        np.testing.assert_array_equal(gx, [2.0, 4.0])
        np.testing.assert_array_equal(gy, [1.0, 1.0])


def test_a_none_among_a_cotangents_rows_is_a_zero_row():
    # a None row ([g[0] * r, None]) went through np.asarray as NaN, eagerly and traced; None
    # stands for zeros of a whole argument or subtree in bwd (as in JAX), so it is a zero
    # row, of a 2-d argument's row shape too (that was "values of different shapes")
    @gc.custom_vjp
    def f(x):
        return x * 2.0
    f.defvjp(lambda x: (f(x), 2.0), lambda r, g: ([g[0] * r, None],))

    @gc.custom_vjp
    def h(m):
        return m * 3.0
    h.defvjp(lambda m: (h(m), 3.0), lambda r, g: ([None, g[1] * r, [g[2][0] * r, None]],))

    x, m = np.array([1.0, 2.0]), np.ones((3, 2))
    for grad in (gc.grad, lambda fn: gc.compile(gc.grad(fn))):
        np.testing.assert_array_equal(grad(lambda x: gc.sum(f(x)))(x), [2.0, 0.0])
        np.testing.assert_array_equal(grad(lambda m: gc.sum(h(m)))(m),
                                      [[0.0, 0.0], [3.0, 3.0], [3.0, 0.0]])
    t = gc.tensor(x, requires_grad=True)
    gc.sum(f(t)).backward()
    np.testing.assert_array_equal(t.grad, [2.0, 0.0])
    np.testing.assert_array_equal(gc.vjp(f, x)[1](np.ones(2))[0], [2.0, 0.0])


def test_missing_rules_and_bad_jvp_rules_are_errors():
    @gc.custom_vjp
    def no_rule(x):
        return x
    with pytest.raises(gc.GraphcError, match=r"no_rule has no rule: call its \.defvjp"):
        gc.grad(lambda x: gc.sum(no_rule(x)))(np.ones(2))

    @gc.custom_jvp
    def bad_tangent(x):
        return x * 2.0
    bad_tangent.defjvp(lambda p, t: (p[0] * 2.0, gc.sum(t[0])))
    with pytest.raises(gc.GraphcError, match=r"bad_tangent: the rule's tangent_out has shape "
                                             r"\(\) but the output has shape \(2,\)"):
        gc.grad(lambda x: gc.sum(bad_tangent(x)))(np.ones(2))


# ---- the IR: printed, parsed back, dumped ---------------------------------------------------
def test_custom_node_prints_parses_and_differentiates_only_in_its_process():
    graph = gc.trace(lambda x: gc.sum(clip_gradient(x) * 3.0), gc.spec((3,), "float64"))
    text = format_graph(graph, max_inline=None)
    assert 'custom_vjp %0, %0 {fn="clip_gradient", args=1, rule=' in text
    back = parse(text)
    assert format_graph(back, max_inline=None) == text
    x = np.array([1.0, 2.0, 3.0])
    assert run(back, x)[0] == run(graph, x)[0] == 18.0
    from passes.autodiff import grad_graph
    np.testing.assert_array_equal(run(grad_graph(back), x)[1], [1.0, 1.0, 1.0])
    del graph
    python_gc.collect()  # the rule lived as long as a graph holding it
    with pytest.raises(gc.GraphcError, match="custom_vjp node of 'clip_gradient' .rule [0-9]+. "
                                             "has no gradient rule in this process"):
        grad_graph(parse(text))


def test_graphc_dump_shows_the_custom_node(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("import graphc as gc\n"
                     "@gc.custom_jvp\n"
                     "def softplus(x):\n"
                     "    return gc.log(1.0 + gc.exp(x))\n"
                     "softplus.defjvp(lambda p, t: (softplus(p[0]), t[0] * gc.sigmoid(p[0])))\n"
                     "def build():\n"
                     "    return gc.trace(lambda x: gc.sum(softplus(x)), gc.spec((4,)))\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    dump = [sys.executable, "-m", "graphc.cli", "dump", f"{model}:build"]
    plain = subprocess.run(dump + ["-O0"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert plain.returncode == 0, plain.stderr
    assert 'custom_vjp %' in plain.stdout and 'fn="softplus"' in plain.stdout
    grad = subprocess.run(dump + ["--grad"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert grad.returncode == 0, grad.stderr
    assert "sigmoid" in grad.stdout  # the rule's backward computation
    assert "custom_vjp" not in grad.stdout  # inlined by the default pipeline


def test_cli_reports_a_bad_rule_in_one_line_with_exit_2(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("import graphc as gc\n"
                     "@gc.custom_vjp\n"
                     "def halve(x):\n"
                     "    return x * 0.5\n"
                     "halve.defvjp(lambda x: (x * 0.5, None), lambda r, g: (g, g))\n"
                     "def build():\n"
                     "    return gc.trace(lambda x: gc.sum(halve(x)), gc.spec((4,)))\n")
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "dump", f"{model}:build",
                           "--grad"], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2
    assert proc.stderr.startswith("graphc: error: custom_vjp function halve: bwd returned 2 "
                                  "cotangents for 1 arguments")
    assert "model.py:5" in proc.stderr  # the rule's line
    assert "Traceback" not in proc.stderr


def test_a_custom_vjp_of_float32_arguments_with_a_half_result_under_autocast():
    """Under gc.autocast a custom_vjp function of float32 arguments whose result is half (its
    matmul cast to bfloat16) was refused, eagerly and traced, as closing over its arguments:
    autocast cast the node's operands, so the rule's cotangents reached new half values.
    Now the rule runs and its float32 cotangents reach the arguments."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)

    @gc.custom_vjp
    def product(x, w):
        return x @ w

    product.defvjp(lambda x, w: (product(x, w), (x, w)),
                   lambda res, g: (2 * (g.astype("float32") @ res[1].T),  # twice the true
                                   2 * (res[0].T @ g.astype("float32"))))  # gradients

    def loss(x, w):
        with gc.autocast("bfloat16"):
            y = product(x, w)
            assert y.dtype == "bfloat16"
            return gc.sum(y.astype("float32"))

    want = (2 * np.ones((4, 3), np.float32) @ w.T, 2 * x.T @ np.ones((4, 3), np.float32))
    for got in (gc.grad(loss, argnums=(0, 1))(x, w),
                gc.compile(gc.grad(loss, argnums=(0, 1)))(x, w)):
        for g, expected in zip(got, want):
            assert np.asarray(g).dtype == np.float32
            np.testing.assert_allclose(g, expected, rtol=1e-6)
    tx, tw = gc.tensor(x, requires_grad=True), gc.tensor(w, requires_grad=True)
    loss(tx, tw).backward()  # the eager tape
    np.testing.assert_allclose(tx.grad, want[0], rtol=1e-6)
    np.testing.assert_allclose(tw.grad, want[1], rtol=1e-6)


def test_jaxs_rule_options_are_taken_at_their_default_and_refused_otherwise_in_one_line():
    """defvjp(..., symbolic_zeros=, optimize_remat=) and defjvp(..., symbolic_zeros=) were a
    raw TypeError traceback (unexpected keyword). JAX's default (False) is taken, the rule
    seeing plain arrays as it does without the option; True (graphc has no SymbolicZero or
    CustomVJPPrimal objects to pass) is one line naming the option and the user's line."""
    import inspect
    f = gc.custom_vjp(lambda x: x * 2)
    for options in ({"symbolic_zeros": True}, {"optimize_remat": True},
                    {"symbolic_zeros": True, "optimize_remat": False}):
        line = inspect.currentframe().f_lineno + 2
        with pytest.raises(gc.GraphcError) as info:
            f.defvjp(lambda x: (x * 2, None), lambda r, g: (g * 2,), **options)
        option = next(k for k, v in options.items() if v)
        assert info.value.message.startswith(
            f"custom_vjp function <lambda>: defvjp(fwd, bwd, {option}=True) is not supported")
        assert info.value.message.endswith(f"; leave {option} out")
        assert info.value.locs == ((f"tests/{os.path.basename(__file__)}", line),)
    assert f.fwd is None  # (nothing defined by a refused call)
    f.defvjp(lambda x: (x * 2, None), lambda r, g: (g * 3,), symbolic_zeros=False,
             optimize_remat=False)
    np.testing.assert_array_equal(gc.grad(lambda x: gc.sum(f(x)))(np.ones(2)), [3.0, 3.0])

    g = gc.custom_jvp(lambda x: x * 2)
    with pytest.raises(gc.GraphcError, match=r"^custom_jvp function <lambda>: defjvp\(jvp, "
                       r"symbolic_zeros=True\) is not supported: .*SymbolicZero.*\n  at "
                       r"tests/test_custom_gradients\.py:\d+$"):
        g.defjvp(lambda p, t: (p[0] * 2, t[0] * 2), symbolic_zeros=True)
    g.defjvp(lambda p, t: (p[0] * 2, t[0] * 5), symbolic_zeros=False)
    out, tangent = gc.jvp(g, (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(tangent, [5.0, 5.0])


def test_a_bwd_cotangent_of_another_dtype_than_its_arguments_is_refused_in_one_line():
    """An int32 (or int64) cotangent bwd returned for a float64 argument was cast to
    float64 without a word. JAX's contract is 'bwd rule must produce an output with the same
    shape/dtypes as the args tuple' (its check lets a dtype through for now: the gradient
    is then int32, or a lax.add error beside another path's float64 one); graphc refuses an
    int array for a float argument, eagerly, compiled and on the tape. A number (Python or
    numpy scalar, a list of numbers) is weakly typed and takes the argument's dtype, and a
    float array of another float dtype is cast (test below)."""
    import inspect
    for bad in (np.array([1, 2], np.int32), np.array([True, False]),
                gc.tensor(np.array([1, 2], np.int64))):
        f = gc.custom_vjp(lambda x: x * 2)
        line = inspect.currentframe().f_lineno + 1
        f.defvjp(lambda x: (f(x), None), lambda r, g: (bad,))
        loss = lambda x: gc.sum(f(x))  # noqa: E731
        t = gc.tensor(np.ones(2), requires_grad=True)
        for call in (lambda: gc.grad(loss)(np.ones(2)),
                     lambda: gc.compile(gc.grad(loss))(np.ones(2)),
                     lambda: loss(t).backward()):
            with pytest.raises(gc.GraphcError) as info:
                call()
            assert info.value.message == (
                f"custom_vjp function <lambda>: bwd's cotangent for argument 0 has dtype "
                f"{np.dtype(bad.dtype)} but the argument has dtype float64; return a float "
                "cotangent (.astype('float64'))")
            assert info.value.locs[0] == (f"tests/{os.path.basename(__file__)}", line)
    for number, x in ((3, np.array(1.0)), (np.float32(0.5), np.array(1.0)),
                      ([1, 2], np.ones(2)), (np.array([1.0, 2.0]), np.ones(2))):
        f = gc.custom_vjp(lambda x: x * 2)
        f.defvjp(lambda x: (f(x), None), lambda r, g: (number,))
        for grad in (gc.grad(lambda x: gc.sum(f(x))),
                     gc.compile(gc.grad(lambda x: gc.sum(f(x))))):
            got = grad(x)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, np.asarray(number, np.float64))


def test_a_float_bwd_cotangent_of_another_float_dtype_is_cast_to_the_arguments():
    """Review of the dtype check above: it first refused any cotangent of another dtype, so
    rules that give one naturally broke: a float32 cotangent of a Python-float (float64)
    argument beside a float32 array (x * a), a bfloat16 one of a float32 argument under
    autocast, np.ones(n) (float64) for a float32 argument, a function that casts its float64
    argument to float32. JAX's check lets a float one through and torch's autograd.Function
    casts it; graphc casts it to the argument's dtype, as it did."""
    x32 = np.arange(1.0, 4.0, dtype=np.float32)
    s = gc.custom_vjp(lambda x, a: x * a)
    s.defvjp(lambda x, a: (s(x, a), (x, a)), lambda r, g: (g * r[1], gc.sum(g * r[0])))
    for grad in (gc.grad(lambda a: gc.sum(s(x32, a))),
                 gc.compile(gc.grad(lambda a: gc.sum(s(x32, a))))):
        got = grad(0.5)
        assert np.asarray(got).dtype == np.float64 and float(got) == 6.0

    product = gc.custom_vjp(lambda x, w: x @ w)  # float32 arguments, a bfloat16 result
    product.defvjp(lambda x, w: (product(x, w), (x, w)),
                   lambda r, g: (g @ r[1].T.astype(g.dtype), r[0].T.astype(g.dtype) @ g))

    def loss(x, w):
        with gc.autocast("bfloat16"):
            y = product(x, w)
            assert y.dtype == "bfloat16"
            return gc.sum(y.astype("float32"))
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    for got in (gc.grad(loss, argnums=(0, 1))(x, w),
                gc.compile(gc.grad(loss, argnums=(0, 1)))(x, w)):
        for g, want in zip(got, (np.full((2, 3), 4.0), np.full((3, 4), 2.0))):
            assert np.asarray(g).dtype == np.float32
            np.testing.assert_array_equal(g, want)

    ones = gc.custom_vjp(lambda x: x * 2)
    ones.defvjp(lambda x: (ones(x), None), lambda r, g: (np.ones(3),))
    narrow = gc.custom_vjp(lambda x: x.astype("float32") * 2)
    narrow.defvjp(lambda x: (narrow(x), None), lambda r, g: (2 * g,))
    for f, x, dtype in ((ones, x32, np.float32), (narrow, x32.astype(np.float64), np.float64)):
        t = gc.tensor(x, requires_grad=True)
        gc.sum(f(t)).backward()
        for got in (gc.grad(lambda x: gc.sum(f(x)))(x),
                    gc.compile(gc.grad(lambda x: gc.sum(f(x))))(x), t.grad):
            assert np.asarray(got).dtype == dtype
            np.testing.assert_array_equal(got, np.full(3, 1.0 if f is ones else 2.0))


@pytest.mark.parametrize("who", ["grad", "value_and_grad"])
@pytest.mark.parametrize("compiled", [False, True])
def test_grad_of_a_non_scalar_output_names_the_transformation_and_function(who, compiled):
    """(session 52, finder g8) gc.grad(f) of an f returning shape (3,) was refused by the
    autodiff pass as 'the gradient of a non-scalar output (shape (3,)) needs a seed; use vjp',
    naming neither grad nor f; now one line naming both. A one-element output keeps its
    gradient (as torch's backward of a one-element tensor)."""
    def doubled(a):
        return a * 2
    x = np.ones(3)
    transform = getattr(gc, who)(doubled)
    run = gc.compile(transform) if compiled else transform
    assert_one_line_error(lambda: run(x), f"{who}: doubled returned a value of shape (3,); a "
                          "gradient needs a scalar output: reduce it (gc.sum, gc.mean), or use "
                          "gc.vjp / gc.jacrev", "test_custom_gradients.py")
    np.testing.assert_array_equal(gc.grad(lambda a: a[:1] * 2)(x), [2.0, 0.0, 0.0])
