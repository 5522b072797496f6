"""The seeds' classic checks, done symbolically, and transforms composing."""
import re

import ml_dtypes
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def test_four_derivatives_of_sin():
    xs = np.linspace(-3, 3, 13)
    f = gc.sin
    expected = [np.cos(xs), -np.sin(xs), -np.cos(xs), np.sin(xs)]
    for k in range(4):
        f = gc.grad(_summed(f))
        np.testing.assert_allclose(f(xs), expected[k], atol=1e-12)


def _summed(f):
    # grad needs a scalar: d/dx_i sum_j f(x_j) = f'(x_i) elementwise
    return lambda x: gc.sum(f(x))


def test_newton_on_a_quartic_with_grad_of_grad():
    f = lambda x: x ** 4 - 2 * x ** 2  # noqa: E731
    df, d2f = gc.grad(f), gc.grad(gc.grad(f))
    x, steps = 2.0, 0
    while abs(float(df(x))) > 1e-12 and steps < 20:
        x = x - float(df(x)) / float(d2f(x))
        steps += 1
    assert abs(x - 1.0) < 1e-10 and steps < 10


def goldstein_price(x, y):
    a = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x ** 2 - 14 * y + 6 * x * y + 3 * y ** 2)
    b = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x ** 2 + 48 * y - 36 * x * y
                                     + 27 * y ** 2)
    return a * b


def test_goldstein_price_gradient_equals_closed_form():
    x, y = 1.0, 1.0
    gx, gy = gc.grad(goldstein_price, argnums=(0, 1))(x, y)
    assert (float(gx), float(gy)) == (-5376.0, 8064.0)  # the seeds' known values


def test_rosenbrock_gradient_equals_closed_form():
    def rosen(x0, x1):
        return 100 * (x1 - x0 ** 2) ** 2 + (x0 - 1) ** 2
    for x0, x1 in [(0.0, 2.0), (1.5, -0.5), (-1.2, 1.0)]:
        g0, g1 = gc.grad(rosen, argnums=(0, 1))(x0, x1)
        assert np.isclose(g0, -400 * x0 * (x1 - x0 ** 2) + 2 * (x0 - 1))
        assert np.isclose(g1, 200 * (x1 - x0 ** 2))


def test_hessian_and_hvp():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])

    def f(x):
        return gc.sum(x * (x @ a)) + gc.sum(x ** 3)
    x = np.array([[0.5, -1.0]])
    h = gc.hessian(f)(x)
    expected = (a + a.T) + np.diag(6 * x[0])
    np.testing.assert_allclose(h.reshape(2, 2), expected)


def test_value_and_grad_with_pytrees_and_vjp():
    params = {"w": np.ones((3, 2)), "b": np.zeros(2)}
    x = np.arange(6.0).reshape(2, 3)

    def loss(p, x):
        return gc.sum((x @ p["w"] + p["b"]) ** 2)
    value, grads = gc.value_and_grad(loss)(params, x)
    out = x @ params["w"] + params["b"]
    assert np.isclose(value, np.sum(out ** 2))
    np.testing.assert_allclose(grads["w"], x.T @ (2 * out))
    np.testing.assert_allclose(grads["b"], (2 * out).sum(0))
    y, pullback = gc.vjp(lambda v: v * v, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(pullback(np.ones(3))[0], [2.0, 4.0, 6.0])
    np.testing.assert_allclose(y, [1.0, 4.0, 9.0])


def test_fan_out_accumulates():
    g = gc.grad(lambda x: gc.sum(x * x * x + gc.exp(x) * x))(np.array([0.5, 1.0]))
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(g, 3 * x ** 2 + np.exp(x) * (1 + x))


def test_unrelated_input_gets_zero_gradient():
    gx, gy = gc.grad(lambda x, y: gc.sum(x * 2.0), argnums=(0, 1))(np.ones(2), np.ones(3))
    np.testing.assert_allclose(gy, np.zeros(3))
    np.testing.assert_allclose(gx, [2.0, 2.0])


def _mlp_loss(x, y, w1, b1, w2, b2):
    return gc.cross_entropy(gc.gelu(x @ w1 + b1) @ w2 + b2, y)


def test_mlp_gradients_match_eager_and_finite_differences():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    ps = [rng.normal(size=s) for s in [(4, 5), (5,), (5, 3), (3,)]]
    grads = gc.grad(_mlp_loss, argnums=(2, 3, 4, 5))(x, y, *ps)
    ts = [gc.tensor(p, requires_grad=True) for p in ps]
    _mlp_loss(gc.tensor(x), gc.tensor(y), *ts).backward()
    f = gc.compile(_mlp_loss)
    for k, (g, t) in enumerate(zip(grads, ts)):
        np.testing.assert_allclose(t.grad, g, rtol=1e-10)
        p = ps[k]
        num = np.zeros_like(p)
        for i in range(p.size):
            d = np.zeros_like(p)
            d.flat[i] = 1e-6
            hi = [q + d if j == k else q for j, q in enumerate(ps)]
            lo = [q - d if j == k else q for j, q in enumerate(ps)]
            num.flat[i] = (f(x, y, *hi) - f(x, y, *lo)) / 2e-6
        assert np.linalg.norm(num - g) / np.linalg.norm(g) < 1e-6


def test_transformer_block_gradients_match_eager():
    rng = np.random.default_rng(1)
    T, C, H = 4, 8, 2

    def block(x, wqkv, wo, w1, w2):
        h = gc.layer_norm(x)
        q, k, v = gc.split(h @ wqkv, 3, axis=-1)
        heads = lambda t: t.reshape(T, H, C // H).transpose(1, 0, 2)  # noqa: E731
        att = heads(q) @ heads(k).transpose(0, 2, 1) * (1.0 / np.sqrt(C // H))
        att = gc.softmax(gc.masked_fill(att, ~gc.tril_mask(T), -1e9))
        y = (att @ heads(v)).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ wo
        return gc.sum((x + gc.gelu(gc.layer_norm(x) @ w1) @ w2) ** 2)
    args = [rng.normal(size=s) * 0.5 for s in [(T, C), (C, 3 * C), (C, C), (C, 4 * C),
                                               (4 * C, C)]]
    grads = gc.grad(block, argnums=(0, 1, 2, 3, 4))(*args)
    ts = [gc.tensor(a, requires_grad=True) for a in args]
    block(*ts).backward()
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(t.grad, g, rtol=1e-9, atol=1e-12)


def test_jvp_equals_finite_differences_and_composes_with_grad():
    def f(x, w):
        return gc.tanh(x @ w) * gc.sum(x)
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    vx, vw = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    out, tangent = gc.jvp(f, (x, w), (vx, vw))
    eps = 1e-6
    hi = gc.compile(f)(x + eps * vx, w + eps * vw)
    lo = gc.compile(f)(x - eps * vx, w - eps * vw)
    np.testing.assert_allclose(out, gc.compile(f)(x, w))
    np.testing.assert_allclose(tangent, (hi - lo) / (2 * eps), rtol=1e-6, atol=1e-9)
    # forward-over-reverse: d/dt grad(g)(x + t v) = H v
    g = lambda z: gc.sum(z ** 3)  # noqa: E731
    z, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    _, hv = gc.jvp(gc.grad(g), (z,), (v,))
    np.testing.assert_allclose(hv, 6 * z * v)


def test_jvp_and_no_grad_as_the_readme_says():
    """What the README says of forward mode and no_grad: jvp called under no_grad gives the
    full tangent (torch.func.jvp's); a no_grad block inside the function jvp differentiates
    stops the tangent of what it computes there, eagerly and compiled, where torch's
    forward-mode AD ignores no_grad ((x cos x + sin x) t there)."""
    x, t = np.array([0.3, -0.7, 1.1]), np.array([1.0, 2.0, -0.5])
    full, stopped = (x * np.cos(x) + np.sin(x)) * t, np.sin(x) * t

    def inner(x):
        with gc.no_grad():
            y = gc.sin(x)
        return y * x

    def around(x, t):
        with gc.no_grad():
            return gc.jvp(lambda x: gc.sin(x) * x, (x,), (t,))[1]

    for run in (lambda f: f, gc.compile):
        np.testing.assert_allclose(run(around)(x, t), full, rtol=1e-12)
        np.testing.assert_allclose(run(lambda x, t: gc.jvp(inner, (x,), (t,))[1])(x, t),
                                   stopped, rtol=1e-12)


def test_a_python_number_seed_takes_the_dtype_of_its_y():
    # gc.gradients' seed 2.0 was lifted as float32 (2 as int64) and refused beside a float64
    # y; a Python number is weak there as everywhere: d(2 * sum(x**2 * y))/dx = 4 x y
    for dtype in (np.float64, np.float32, np.float16):
        x = np.array([1.0, -2.0, 3.0], dtype)

        def f(x):
            y = gc.sum(x * x)  # scalar
            z = x * x  # not a scalar: the number fills its shape
            return gc.gradients([y, z], [x], seeds=[2.0, 3])[0]

        out = gc.compile(f)(x)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, (2.0 * 2 * x + 3 * 2 * x).astype(dtype))


def test_a_numpy_scalar_seed_is_weak_and_bad_gradients_arguments_are_one_line():
    # a numpy scalar seed (np.mean(...)) was still lifted by the first rule as float32 or
    # int64 and refused beside a float64 or half y; it is weak as a Python number is
    for dtype, seed in [(np.float64, np.float64(2.0)), (np.float16, np.float32(2.0)),
                        (np.float16, np.int64(2)), ("bfloat16", np.float64(2.0))]:
        x = np.array([1.0, -2.0, 3.0], dtype)
        out = gc.compile(lambda v: gc.gradients([gc.sum(v * v)], [v], seeds=[seed])[0])(x)
        assert out.dtype == x.dtype
        np.testing.assert_array_equal(out.astype(np.float64), [4.0, -8.0, 12.0])
    # eager tensors: "len() of a 0-d tensor" (list(y) ran before the check)
    t = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    for ys, xs in [(gc.sum(t * t), t), ([gc.sum(t * t)], [t])]:
        with pytest.raises(GraphcError, match=r"^gradients\(\) needs symbolic values, got "
                                              r"Tensor\n  at .*test_autodiff\.py"):
            gc.gradients(ys, xs)
    # a seed of another shape was broadcast by the first rule ((2, 1): summed, silently
    # [4, 8] for [2, 4]) or refused naming that rule's op
    for seed in [np.ones(3), np.ones((2, 1)), np.ones(())]:
        with pytest.raises(GraphcError, match=rf"^gradients\(\): seed 0 has shape "
                                              rf"{re.escape(str(seed.shape))} but its y has "
                                              rf"shape \(2,\); give a seed of its y's shape"):
            gc.compile(lambda v: gc.gradients([v * v], [v], seeds=[seed])[0])(np.ones(2))
    with pytest.raises(GraphcError, match=r"seed 0 has shape \(1,\) but its y has shape \(2,\)"):
        gc.compile(lambda v: gc.gradients(v * v, v, seeds=v[:1])[0])(np.ones(2))
    got = gc.compile(lambda v: gc.gradients([v * v], [v], seeds=[np.full(2, 3.0)])[0])
    np.testing.assert_array_equal(got(np.array([1.0, 2.0])), [6.0, 12.0])


def test_an_eager_tensor_seed_of_another_shape_is_refused_as_torch_refuses_it():
    # a numpy seed of another shape was refused, but a gc.tensor seed was broadcast by the
    # first rule (sin's: cos(x) * seed), silently; torch.autograd.grad refuses grad_outputs
    # of another shape ("Mismatch in shape"). A seed of y's shape is torch's vjp.
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])
    for seed in [np.ones(3), np.ones((1, 3)), np.array(2.0)]:
        with pytest.raises(RuntimeError, match="Mismatch in shape"):
            xt = torch.tensor(x, requires_grad=True)
            torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch.tensor(seed))
        with pytest.raises(GraphcError, match=rf"^gradients\(\): seed 0 has shape "
                                              rf"{re.escape(str(seed.shape))} but its y has "
                                              rf"shape \(2, 3\); give a seed of its y's shape"):
            gc.compile(lambda v: gc.gradients([gc.sin(v)], [v], [gc.tensor(seed)])[0])(x)
    seed = np.arange(6.0).reshape(2, 3)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch.tensor(seed))[0]
    got = gc.compile(lambda v: gc.gradients(gc.sin(v), v, gc.tensor(seed))[0])(x)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-15)


def test_a_vjp_pullback_reads_a_torch_cotangent_as_backward_reads_a_torch_gradient():
    # gc.vjp's pullback given a torch tensor was np.dtype's raw TypeError ("Cannot interpret
    # 'torch.float64' as a data type"); it reads it as backward() and graphc's torch readers
    # do (one that requires grad too), its dtype checked as a numpy cotangent's is: torch's
    # autograd.grad of the same cotangent
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0])
    ct = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.autograd.grad(torch.sin(xt) * 2, xt, grad_outputs=ct)[0].numpy()
    _, pull = gc.vjp(lambda v: gc.sin(v) * 2, x)
    np.testing.assert_allclose(pull(ct)[0], want, rtol=1e-15)
    _, pull = gc.vjp(lambda v: {"a": gc.sin(v) * 2, "b": v}, x)
    np.testing.assert_allclose(pull({"a": ct, "b": None})[0], want, rtol=1e-15)
    with pytest.raises(GraphcError, match=r"^vjp: the cotangent for output leaf 0 is "
                                          r"float32\[3\], but the output is float64\[3\]"):
        pull({"a": torch.ones(3), "b": None})


def test_jvp_reads_a_torch_tangent_as_vjp_reads_a_torch_cotangent():
    """(s45) gc.jvp refused a torch tangent ("jvp: got a torch.Tensor", naming no argument)
    where gc.vjp's pullback reads a torch cotangent: a tangent is read as a cotangent is (one
    helper; one that requires grad too), its dtype checked as a numpy tangent's; linearize's
    f_jvp alike. A torch primal stays refused, as every transformation's argument (README),
    now naming the argument, as grad's line does: jvp's, vjp's, linearize's, and vmap's (a
    vjp pullback mapped over torch cotangents)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0])
    tangent = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    want_y, want_t = torch.func.jvp(lambda v: torch.sin(v) * v, (torch.tensor(x),),
                                    (tangent.detach(),))
    y, t = gc.jvp(lambda v: gc.sin(v) * v, (x,), (tangent,))
    np.testing.assert_allclose(y, want_y.numpy(), rtol=1e-15)
    np.testing.assert_allclose(t, want_t.numpy(), rtol=1e-15)
    _, t = gc.jvp(lambda d: gc.sin(d["v"]) * d["v"], ({"v": x},), ({"v": tangent},))
    np.testing.assert_allclose(t, want_t.numpy(), rtol=1e-15)
    _, f_jvp = gc.linearize(lambda v: gc.sin(v) * v, x)
    np.testing.assert_allclose(f_jvp(tangent), want_t.numpy(), rtol=1e-15)
    with pytest.raises(GraphcError, match=r"^jvp: tangent 0 is float32\[3\] but its primal "
                                          r"is float64\[3\]"):
        gc.jvp(lambda v: gc.sin(v) * v, (x,), (torch.ones(3),))
    refused = r"is a torch.Tensor, another library's array; pass a numpy array \(x\.numpy\(\)"
    for call, says in [
            (lambda: gc.jvp(lambda v: v * 2, (torch.tensor(x),), (x,)),
             r"jvp of <lambda>: argument v "),
            (lambda: gc.vjp(lambda v: v * 2, torch.tensor(x)), r"vjp of <lambda>: argument v "),
            (lambda: gc.linearize(lambda v: v * 2, torch.tensor(x)),
             r"linearize of <lambda>: argument v "),
            (lambda: gc.vmap(gc.vjp(lambda v: v * 2, x)[1])(torch.eye(3, dtype=torch.float64)),
             r"vmap: cotangent ")]:
        with pytest.raises(GraphcError, match="^" + says + refused):
            call()


def test_a_torch_argument_of_hessian_and_of_a_traced_derivative_is_named():
    """(r2) gc.hessian of a torch primal raised numpy's "TypeError: Cannot interpret
    'torch.float32' as a data type" from check_differentiable's read of the leaf's dtype
    (hessian checks before any trace), as did grad and jacfwd called on one inside a traced
    function; grad, jacfwd and jacrev named the argument eagerly. All name it now."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    f = lambda x: gc.sum(gc.sin(x))  # noqa: E731
    x32 = np.ones(3, np.float32)
    refused = r"is a torch.Tensor, another library's array; pass a numpy array \(x\.numpy\(\)"
    for call, says in [
            (lambda: gc.hessian(f)(torch.ones(3)), r"hessian of <lambda>: argument x "),
            (lambda: gc.hessian(lambda d: gc.sum(d["a"] ** 3))({"a": torch.ones(3)}),
             r"hessian of <lambda>: argument d\.a "),
            (lambda: gc.compile(lambda y: gc.grad(f)(torch.ones(3)) + y)(x32),
             r"grad of <lambda>: argument x "),
            (lambda: gc.compile(lambda y: gc.jacfwd(f)(torch.ones(3)) + y)(x32),
             r"jacfwd of <lambda>: argument x "),
            (lambda: gc.compile(lambda y: gc.hessian(f)(torch.ones(3))[0] + y)(x32),
             r"hessian of <lambda>: argument x ")]:
        with pytest.raises(GraphcError, match="^" + says + refused):
            call()
    # its numpy value is torch's
    want = torch.func.hessian(lambda v: torch.sum(torch.sin(v)))(
        torch.tensor([0.5, -1.0], dtype=torch.float64))
    np.testing.assert_allclose(gc.hessian(f)(np.array([0.5, -1.0])), want.numpy(), rtol=1e-15)


def test_a_seed_of_another_dtype_is_cast_to_its_ys_as_torch_casts_grad_outputs():
    # a float64 seed of a float32 y (a 0-d or full array, an eager tensor) failed in the
    # first rule ("mul(f64[3], f32[]): operands must have one dtype"), naming an op the user
    # never wrote; torch.autograd.grad casts grad_outputs to the output's dtype (2.13), a
    # bool or int one too (True is 1.0), and refuses a complex one, as gradients() now does
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    for seed in [np.full(3, 1 / 3), np.array([True, False, True]), np.array([3, -1, 2]),
                 np.full(3, 0.1, np.float16)]:
        xt = torch.tensor(x, requires_grad=True)
        want = torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch.tensor(seed))[0]
        for given in (seed, gc.tensor(seed)):
            got = gc.compile(lambda v: gc.gradients(gc.sin(v), v, given)[0])(x)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    xt = torch.tensor(x, requires_grad=True)  # (a scalar y too: sum's rule)
    want = torch.autograd.grad(torch.sum(xt * xt), xt,
                               grad_outputs=torch.tensor(1 / 3, dtype=torch.float64))[0]
    got = gc.compile(lambda v: gc.gradients(gc.sum(v * v), v, np.array(1 / 3))[0])(x)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch.ones(3, dtype=torch.complex64))
    with pytest.raises(GraphcError, match=r"^gradients\(\): seed 0 has dtype complex128, which "
                                          r"graphc does not support; give a seed of its y's "
                                          r"dtype \(float32\)\n  at .*test_autodiff\.py"):
        gc.compile(lambda v: gc.gradients(gc.sin(v), v, np.ones(3, complex))[0])(x)
    # a Python bool is no tensor: torch refuses it ("'bool' object is not iterable"), and
    # gradients() in one line, as before
    with pytest.raises(GraphcError, match=r"^gradients\(\): seed 0 is a bool"):
        gc.compile(lambda v: gc.gradients(gc.sum(v), v, True)[0])(x)


def test_one_rule_for_seeds_gradients_and_backward_cast_any_real_dtype():
    # gradients() refused an int8, uint8 or int16 seed ("which graphc does not support")
    # that torch.autograd.grad and Tensor.backward(gradient=) cast, and backward() refused a
    # bfloat16 gradient as "a ndarray" (ml_dtypes' kind is 'V'); both ask is_real_dtype now
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    for seed in [np.array([1, 0, 3], np.int8), np.array([1, 0, 3], np.uint8),
                 np.array([1, 0, -3], np.int16), np.array([1.5, 0, -3], ml_dtypes.bfloat16)]:
        xt = torch.tensor(x, requires_grad=True)
        torch_seed = torch.tensor(seed.astype(np.float32)).to(torch.bfloat16) \
            if seed.dtype == ml_dtypes.bfloat16 else torch.tensor(seed)
        want = torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch_seed)[0].numpy()
        got = gc.compile(lambda v: gc.gradients(gc.sin(v), v, seed)[0])(x)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)
        t = gc.tensor(x, requires_grad=True)
        gc.sin(t).backward(gradient=seed)
        np.testing.assert_allclose(t.grad, want, rtol=1e-6)
    t = gc.tensor(x.astype(ml_dtypes.bfloat16), requires_grad=True)  # a bfloat16 y too
    gc.sin(t).backward(gradient=np.ones(3, ml_dtypes.bfloat16))
    assert t.grad.dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(t.grad.astype(np.float32),
                               np.cos(x.astype(ml_dtypes.bfloat16).astype(np.float32)),
                               rtol=1e-2)


def test_a_float8_or_int4_gradient_is_cast_as_torch_casts_a_float8_grad_output():
    """Session 42 (f3): backward(gradient=) with an ml_dtypes float8_e4m3fn or int4 array
    was refused as 'got a ndarray' (their numpy kind is 'V'; float8_e5m2's, 'f', was
    taken), gradients() as a dtype 'graphc does not support'. torch 2.13 casts a float8
    grad_output (checked below); each of ml_dtypes' real dtypes is cast now (exact), and a
    gradient still refused names its dtype."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    for seed, torch_dtype in [(np.array([1.5, 0, -3], ml_dtypes.float8_e4m3fn),
                               torch.float8_e4m3fn),
                              (np.array([1.5, 0, -3], ml_dtypes.float8_e5m2fnuz),
                               torch.float8_e5m2fnuz),
                              (np.array([1, 0, -3], ml_dtypes.int4), None)]:
        xt = torch.tensor(x, requires_grad=True)
        torch_seed = torch.tensor(seed.astype(np.float32))
        if torch_dtype is not None:  # (torch has no int4 values: "copy_" not implemented)
            torch_seed = torch_seed.to(torch_dtype)
        want = torch.autograd.grad(torch.sin(xt), xt, grad_outputs=torch_seed)[0].numpy()
        t = gc.tensor(x, requires_grad=True)
        gc.sin(t).backward(gradient=seed)
        assert t.grad.dtype == np.float32
        np.testing.assert_allclose(t.grad, want, rtol=1e-6)
        got = gc.compile(lambda v: gc.gradients(gc.sin(v), v, seed)[0])(x)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    t = gc.tensor(x, requires_grad=True)
    for bad, says in [(np.array([1, 2, 3], "datetime64[s]"), "an array of dtype datetime64[s]"),
                      (np.array([1, 2, 3], ml_dtypes.complex32), "an array of dtype complex32"),
                      ("abc", "a str")]:
        with pytest.raises(GraphcError) as info:
            gc.sin(t).backward(gradient=bad)
        assert str(info.value).splitlines()[0] == "backward(): the gradient must be real " \
            f"numbers (a tensor or an array), got {says}"


def test_a_torch_gradient_of_bfloat16_or_float8_is_read_as_torchs_own_backward_reads_it():
    """Session 43 (f1, s42 r8): loss.backward(g) with g a torch bfloat16 or float8 tensor
    (or one that requires grad) was a raw TypeError (RuntimeError) from np.asarray(g): torch's
    __array__ has no numpy form for them. Now g is read as load_torch_state_dict reads
    torch's tensors (through float32, exactly, into ml_dtypes' type), giving torch's own
    backward's gradient; a dtype numpy has no form of is refused in one line naming it."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    values = torch.tensor([1.5, 0.0, -3.0])
    for seed in [values.to(torch.bfloat16), values.to(torch.float8_e4m3fn),
                 values.to(torch.float8_e5m2), values.clone().requires_grad_()]:
        xt = torch.tensor(x, requires_grad=True)
        torch.sin(xt).backward(seed)  # torch's own reading of that gradient
        t = gc.tensor(x, requires_grad=True)
        gc.sin(t).backward(seed)
        assert t.grad.dtype == np.float32
        np.testing.assert_allclose(t.grad, xt.grad.numpy(), rtol=1e-6)
    t = gc.tensor(x, requires_grad=True)
    for bad, says in [(torch.zeros(3, dtype=torch.int4), "has dtype torch.int4, which numpy "
                       "has no form of"),
                      (torch.zeros(3, device="meta"), "is a meta tensor, which holds no values")]:
        with pytest.raises(GraphcError) as info:
            gc.sin(t).backward(bad)
        assert str(info.value).splitlines()[0] == \
            f"backward(): the gradient, a torch.Tensor, {says}"


def test_a_torch_gradient_numpy_cannot_read_is_refused_for_its_real_reason():
    """r3 on d639c60: a sparse torch gradient (float32) was refused as 'has dtype
    torch.float32, which numpy has no form of', a false reason, and so was any tensor whose
    values torch will not hand to numpy (a conjugate bit). Now the line gives torch's own
    reason, which names the fix; a dense bfloat16 gradient is still read (torch's value)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([0.5, -1.0, 2.0], np.float32)
    sparse = torch.tensor([1.5, 0.0, -3.0]).to_sparse()
    with pytest.raises(TypeError) as theirs:
        sparse.numpy()
    t = gc.tensor(x, requires_grad=True)
    for bad in (sparse, sparse.to(torch.bfloat16)):
        with pytest.raises(GraphcError) as info:
            gc.sin(t).backward(bad)
        assert str(info.value).splitlines()[0] == \
            f"backward(): the gradient, a torch.Tensor, cannot be read: {theirs.value}"
        assert "to_dense()" in str(info.value)
    dense = sparse.to_dense().to(torch.bfloat16)
    xt = torch.tensor(x, requires_grad=True)
    torch.sin(xt).backward(dense)
    gc.sin(t).backward(dense)
    np.testing.assert_allclose(t.grad, xt.grad.numpy(), rtol=1e-6)


def test_a_list_seed_is_refused_naming_gradients_as_torch_refuses_it():
    # a list seed was refused by the first rule, naming its op ("mul: cannot use a list as
    # a tensor operand"); torch.autograd.grad takes tensors only ("gradients can be either
    # Tensors or None, but got list"), and so does gradients(), saying so in one line
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    xt = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="but got list"):
        torch.autograd.grad(xt * xt, xt, grad_outputs=([1.0, 2.0],))
    for seed, kind in [([1.0, 2.0], "list"), ((1.0, 2.0), "tuple"), ("1", "str"),
                       (np.complex64(1.0), "complex64")]:
        with pytest.raises(GraphcError, match=rf"^gradients\(\): seed 1 is a {kind}; give a "
                                              r"numpy array or graphc value of its y's shape, "
                                              r"or a number\n  at .*test_autodiff\.py"):
            gc.compile(lambda v: gc.gradients([gc.sum(v), v * v], [v], [None, seed])[0])(
                np.ones(2))
    with pytest.raises(GraphcError, match=r"^gradients\(\) seed 0: got a torch.Tensor"):
        gc.compile(lambda v: gc.gradients([v * v], [v], [torch.ones(2)])[0])(np.ones(2))
    # the array the list spells is torch's vjp: d(x * x) . [1, 2] = [2, 8]
    got = gc.compile(lambda v: gc.gradients([v * v], [v], [np.asarray([1.0, 2.0])])[0])
    want = torch.autograd.grad(xt * xt, xt, grad_outputs=torch.tensor([1.0, 2.0]))[0]
    np.testing.assert_array_equal(got(np.array([1.0, 2.0])), want.numpy())
