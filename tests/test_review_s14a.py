"""Session 14a's hostile review of the user-facing function transformations: grad,
value_and_grad, jvp, vjp, hessian, vmap (in_axes/out_axes, nested, vmap of grad and grad of
vmap), custom_vjp/custom_jvp, scan/fori_loop/while_loop/cond under grad and vmap, eager vs
compiled, and the ops' gradient and batching rules (ir/ops). Oracles: numpy written by hand,
central differences in float64 and PyTorch. Each test here failed before its fix."""
import numpy as np
import pytest
import torch  # the oracle; the test set-up installs it (as tests/test_optim.py's)

import graphc as gc


# ---- pow's gradient where the base is 0 --------------------------------------------------------
def test_pow_gradient_in_the_exponent_at_a_zero_base():
    # d/dy 0**y = 0**y * log(0) was 0 * -inf = NaN; PyTorch and JAX give 0
    y = np.array([0.5, 1.0, 2.0, 3.0])
    got = gc.grad(lambda y: gc.sum(gc.pow(np.zeros(4), y)))(y)
    t = torch.tensor(y, requires_grad=True)
    torch.pow(torch.zeros(4, dtype=torch.float64), t).sum().backward()
    np.testing.assert_array_equal(got, t.grad.numpy())
    np.testing.assert_array_equal(got, np.zeros(4))


def test_pow_gradient_in_the_base_for_a_zero_exponent():
    # d/dx x**0 = 0 * x**-1 was 0 * inf = NaN at x = 0; x**0 is the constant 1
    x = np.array([0.0, 1.0, -2.0])
    got = gc.grad(lambda x: gc.sum(x ** 0.0))(x)
    np.testing.assert_array_equal(got, np.zeros(3))
    # an exponent that is an input (0 in places), both gradients, against PyTorch
    a, b = np.array([0.0, 0.0, 2.0, 0.0]), np.array([0.0, 2.0, 0.0, 1.0])
    ga, gb = gc.grad(lambda a, b: gc.sum(gc.pow(a, b)), argnums=(0, 1))(a, b)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    torch.pow(ta, tb).sum().backward()
    np.testing.assert_allclose(ga, ta.grad.numpy())
    np.testing.assert_allclose(gb, tb.grad.numpy())


def test_pow_gradients_away_from_zero_and_second_order():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2.0, 5), rng.normal(size=5)
    ga, gb = gc.grad(lambda a, b: gc.sum(gc.pow(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, b * a ** (b - 1), rtol=1e-12)
    np.testing.assert_allclose(gb, a ** b * np.log(a), rtol=1e-12)
    d2 = gc.grad(gc.grad(lambda x: x ** 3.0))(np.float64(1.5))
    np.testing.assert_allclose(d2, 9.0)
    # eagerly, through the tape
    t = gc.tensor(np.array([0.0, 2.0]), requires_grad=True)
    gc.sum(t ** 0.0).backward()
    np.testing.assert_array_equal(t.grad, np.zeros(2))


# ---- scan of no steps, eagerly ------------------------------------------------------------------
def _step(c, x):
    return c + x, {"y": c * x, "n": gc.sum(x)}


def test_eager_scan_of_no_steps_stacks_empty_ys():
    # eagerly, ys of a length-0 scan were None; JAX and the traced scan give (0, ...) arrays
    xs = np.zeros((0, 3), np.float32)
    carry, ys = gc.scan(_step, np.ones(3, np.float32), xs)
    np.testing.assert_array_equal(np.asarray(carry), np.ones(3, np.float32))
    assert np.asarray(ys["y"]).shape == (0, 3) and np.asarray(ys["y"]).dtype == np.float32
    assert np.asarray(ys["n"]).shape == (0,)
    compiled = gc.compile(lambda xs: gc.scan(_step, np.ones(3, np.float32), xs))(xs)[1]
    for key in ("y", "n"):
        assert np.asarray(ys[key]).shape == np.asarray(compiled[key]).shape
        assert np.asarray(ys[key]).dtype == np.asarray(compiled[key]).dtype
    # length= without xs, and a step with no y
    _, ys = gc.scan(lambda c, _: (c, c * 2.0), np.ones(2), None, length=0)
    assert np.asarray(ys).shape == (0, 2)
    assert gc.scan(lambda c, x: (c + x, None), np.ones(3), np.zeros((0, 3)))[1] is None


# ---- keyword arguments of grad and value_and_grad ------------------------------------------------
def _scaled(w, x, scale=1.0, power=2, bias=None):
    y = gc.sum(gc.tanh(w * x) ** power) * scale
    return y if bias is None else y + gc.sum(bias * w)


def test_grad_passes_keyword_arguments_through():
    # grad(f)(w, x, scale=3.0) was a TypeError from grad's wrapper; JAX passes keyword
    # arguments to f undifferentiated
    rng = np.random.default_rng(1)
    w, x, bias = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)

    def oracle(scale, power, b=None):
        t = torch.tensor(w, requires_grad=True)
        y = (torch.tanh(t * torch.tensor(x)) ** power).sum() * scale
        if b is not None:
            y = y + (torch.tensor(b) * t).sum()
        y.backward()
        return y.item(), t.grad.numpy()

    value, g = oracle(3.0, 3)
    np.testing.assert_allclose(gc.grad(_scaled)(w, x, scale=3.0, power=3), g, rtol=1e-12)
    v, g2 = gc.value_and_grad(_scaled)(w, x, power=3, scale=3.0)
    np.testing.assert_allclose(v, value, rtol=1e-12)
    np.testing.assert_allclose(g2, g, rtol=1e-12)
    # an array keyword argument is traced (not differentiated); another value, another result
    np.testing.assert_allclose(gc.grad(_scaled)(w, x, bias=bias), oracle(1.0, 2, bias)[1],
                               rtol=1e-12)
    np.testing.assert_allclose(gc.grad(_scaled)(w, x, bias=2 * bias),
                               oracle(1.0, 2, 2 * bias)[1], rtol=1e-12)
    # a Python float keyword stays a weak scalar: float32 arguments give float32 gradients
    g32 = gc.grad(_scaled)(w.astype(np.float32), x.astype(np.float32), scale=3.0)
    assert g32.dtype == np.float32
    # traced (inside compile and vmap), and with argnums
    compiled = gc.compile(lambda w, x: gc.grad(_scaled, argnums=1)(w, x, scale=3.0, power=3))
    t = torch.tensor(x, requires_grad=True)
    ((torch.tanh(torch.tensor(w) * t) ** 3).sum() * 3.0).backward()
    np.testing.assert_allclose(compiled(w, x), t.grad.numpy(), rtol=1e-12)
    ws = rng.normal(size=(4, 3))
    per_example = gc.vmap(lambda w: gc.grad(_scaled)(w, x, scale=3.0, power=3))(ws)
    np.testing.assert_allclose(per_example[1], gc.grad(_scaled)(ws[1], x, scale=3.0, power=3),
                               rtol=1e-12)


# ---- Python numbers as arguments of grad, jvp and hessian ---------------------------------------
def test_python_number_arguments_are_weakly_typed():
    # grad(f)(w32, 3.0) was "mul(f32[3], f64[]): operands must have one dtype": the number
    # became a float64 array; it takes the arguments' float dtype, as a weak scalar (JAX)
    w = np.array([0.5, -1.0, 2.0], np.float32)
    f = lambda a, n: gc.sum(gc.sin(a) * n)  # noqa: E731
    t = torch.tensor(w, requires_grad=True)
    (torch.sin(t) * 3.0).sum().backward()
    for n in (3.0, 3, np.float64(3.0)):  # numpy float scalars are weak too
        g = gc.grad(f)(w, n)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6)
    value, tangent = gc.jvp(f, (w, 3.0), (np.ones(3, np.float32), 0.0))
    assert tangent.dtype == np.float32
    np.testing.assert_allclose(tangent, t.grad.numpy().sum(), rtol=1e-6)
    h = gc.hessian(lambda a, n: gc.sum(a * a * a) * n)(w, 2.0)
    assert h.dtype == np.float32
    np.testing.assert_allclose(h, np.diag(12.0 * w), rtol=1e-6)
    # the number itself differentiated: float64 as before when nothing else fixes a dtype
    np.testing.assert_allclose(gc.grad(lambda n: n * n)(3.0), 6.0)
    assert np.asarray(gc.grad(lambda n: n * n)(3.0)).dtype == np.float64


def test_an_unhashable_keyword_argument_is_named():
    # static keyword arguments key the plan; a list used to fail as "static argument static
    # is a tuple, which is not hashable", naming grad's internals instead of the keyword
    def f(w, sizes=(1,)):
        return (w * len(sizes)).sum()

    w = np.ones(3)
    np.testing.assert_array_equal(gc.grad(f)(w, sizes=(1, 2)), [2.0, 2.0, 2.0])
    with pytest.raises(gc.GraphcError, match=r"keyword argument sizes= is a list, which is "
                       r"not hashable; pass a tuple") as info:
        gc.grad(f)(w, sizes=[1, 2])
    assert "test_review_s14a.py" in str(info.value)


def test_a_keyword_dict_of_arrays_and_numbers_is_traced_leaf_by_leaf(caplog):
    # gc.grad(f)(x, cfg={"w": w, "k": 2, "s": 0.5}) was refused ("keyword argument cfg= is a
    # dict, which is not hashable"): a keyword argument was traced only when every leaf was
    # an array. As a positional one (and as jax.jit traces a dict's leaves), its arrays and
    # numbers are traced, and a number fn uses as a Python value (k) then reaches it as it is
    def g(x, cfg=None):
        return gc.sum(x * cfg["w"]) * (2.0 if cfg["k"] > 1 else 1.0) * cfg["s"]

    x, w = np.ones(3, np.float32), np.arange(3.0, dtype=np.float32)
    dg = gc.grad(g)
    cases = [(2, 1.0), (2, 3.0), (0, 3.0), (0, 0.5)]
    with caplog.at_level("INFO", logger="graphc"):
        got = [dg(x, cfg={"w": w, "k": k, "s": s}) for k, s in cases]
    # a new s reuses the plan (traced); only the new k compiles again
    assert sum("recompiling" in r.getMessage() for r in caplog.records) == 1
    for (k, s), g_ks in zip(cases, got):
        assert g_ks.dtype == np.float32  # s is weakly typed, as a positional number
        np.testing.assert_allclose(g_ks, w * (2.0 if k > 1 else 1.0) * s, rtol=1e-6)
        np.testing.assert_allclose(dg(x, {"w": w, "k": k, "s": s}), g_ks)  # as positional
    value, grad = gc.value_and_grad(g)(x, cfg={"w": w, "k": 2, "s": 0.5})
    np.testing.assert_allclose((value, *grad), (3.0, 0.0, 1.0, 2.0), rtol=1e-6)
    # a keyword holding no array is a setting (README): a dict of numbers alone is refused
    with pytest.raises(gc.GraphcError, match=r"keyword argument cfg= is a dict, which is "
                       r"not hashable"):
        dg(x, cfg={"w": 1.0, "k": 2, "s": 0.5})


def test_compiled_functions_take_python_floats_as_weakly_typed():
    # gc.compile(f)(w_float32, 3.0) traced a float64 input, and the product failed with
    # "mul(f32[3], f64[]): operands must have one dtype" (jax.jit's scalars are weak)
    from ir.ops import api as F
    w = np.linspace(-1.0, 1.0, 3).astype(np.float32)
    f = gc.compile(lambda w, s: F.sin(w) * s)
    out = f(w, 3.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.sin(w) * np.float32(3.0), rtol=1e-6)
    np.testing.assert_allclose(f(w, 0.5), np.sin(w) * 0.5, rtol=1e-6)  # same plan, new value
    assert f(w.astype(np.float64), 3.0).dtype == np.float64
    assert f(w.astype(np.float64), np.float32(3.0)).dtype == np.float64  # weak both ways
    # numpy scalar objects are weak too (README, "Design"); a 0-d array keeps its dtype
    assert f(w, np.float64(3.0)).dtype == np.float32
    with pytest.raises(gc.GraphcError, match="operands must have one dtype"):
        f(w, np.array(3.0))
    # ints keep their meaning; a static float is the value itself
    take = gc.compile(lambda w, i: w[i])
    assert take(w, 2) == w[2]
    scale = gc.compile(lambda w, s: w * s, static_argnums=(1,))
    np.testing.assert_array_equal(scale(w, 2.0), w * 2)
    assert scale(w, 2.0).dtype == np.float32
