"""Elementwise math ops numpy, JAX and PyTorch users reach for (session 35).

Before, `x // 2` and `x % 3` raised TypeError on tensors and traced values, and graphc had
no tan, arcsin/arccos/arctan, arctan2, sinh/cosh, arcsinh/arccosh/arctanh, log2, log10,
exp2, reciprocal, floor_divide, remainder (mod), fmod, trunc, isinf, logaddexp or hypot;
each test failed then. tests/opcases.py gives every one the generic checks (finite
differences, Hessian-vector products, vmap, half precision, eager/compiled/interpreter);
here: numpy's values at the edges, PyTorch's gradients in float64, and compiled == eager
with and without the numba kernels.

Session 35's fixes of their gradients at the edges (logaddexp beside an infinity, arctan2 at
the origin) follow; each test failed before its fix."""
import math

import numpy as np
import pytest

import graphc as gc
from ir.ops.registry import REGISTRY

torch = pytest.importorskip("torch", reason="PyTorch is the gradient oracle")

INF, NAN = math.inf, math.nan
I32 = np.iinfo(np.int32)


def _three_ways(fn, *xs, monkeypatch):
    """fn's results eagerly, compiled on numpy kernels (GRAPHC_JIT=0) and compiled with the
    numba kernels (the environment's default, GRAPHC_JIT=1)."""
    eager = fn(*[gc.tensor(x) for x in xs])
    eager = [np.asarray(e.data) for e in (eager if isinstance(eager, tuple) else (eager,))]
    out = [eager]
    for jit in ("0", "1"):
        monkeypatch.setenv("GRAPHC_JIT", jit)
        got = gc.compile(fn)(*xs)
        out.append([np.asarray(g) for g in (got if isinstance(got, tuple) else (got,))])
    return out


def _assert_same_bits(got, expected):
    """Equal values, NaN where NaN, and the same sign of every zero."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_floor_division_and_remainder_of_floats_are_numpys_at_the_edges(monkeypatch):
    """`//` and `%` were TypeErrors (no __floordiv__ or __mod__); now they are numpy's
    floor_divide and remainder (Python's rules: the quotient rounded down, the remainder
    with the divisor's sign), with numpy's results at negative operands, signed zeros, zero
    divisors, infinities and NaN; fmod is C's (the dividend's sign); eager and compiled."""
    a = np.array([7, -7, 7, -7, -0.0, 0.0, 1, -1, 0, INF, 5, -5, 5, NAN, 2.5], np.float32)
    b = np.array([2, 2, -2, -2, 3, -3, 0, 0, 0, 2, INF, INF, -INF, 1, NAN], np.float32)
    with np.errstate(all="ignore"):
        expected = [np.floor_divide(a, b), np.remainder(a, b), np.fmod(a, b)]
    assert list(expected[0][:4]) == [3, -4, -4, 3] and list(expected[1][:4]) == [1, 1, -1, -1]
    with np.errstate(all="ignore"):
        for outs in _three_ways(lambda a, b: (a // b, a % b, gc.fmod(a, b)), a, b,
                                monkeypatch=monkeypatch):
            for got, want in zip(outs, expected):
                _assert_same_bits(got, want)


def test_integer_floor_division_and_remainder_are_numpys(monkeypatch):
    """Integers keep their dtype; numpy's results for negative operands, int min // -1
    (wraps to int min) and division by zero (0 for //, % and fmod, with numpy's
    RuntimeWarning; JAX gives XLA's values there, PyTorch raises)."""
    a = np.array([7, -7, 7, -7, I32.min, I32.min, 5, -5, 0], np.int32)
    b = np.array([2, 2, -2, -2, -1, 3, 0, 0, 0], np.int32)
    with np.errstate(all="ignore"):
        expected = [np.floor_divide(a, b), np.remainder(a, b), np.fmod(a, b)]
        assert expected[0][4] == I32.min and not expected[0][6:].any()
        for outs in _three_ways(lambda a, b: (a // b, a % b, gc.fmod(a, b)), a, b,
                                monkeypatch=monkeypatch):
            for got, want in zip(outs, expected):
                _assert_same_bits(got, want)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        gc.tensor(a) // gc.tensor(b)


def test_reflected_operators_and_weak_scalars_keep_the_tensors_dtype():
    """`x // 2`, `2 // x`, `x % 3` and `3 % x` on float32 stay float32 and on int32 stay
    int32 (a Python number is weakly typed), eagerly, traced and with a Python-number
    argument of a compiled function (JAX's weak typing)."""
    f32 = np.array([7.5, -7.5, 2.0], np.float32)
    i32 = np.array([7, -7, 2], np.int32)
    for x in (f32, i32):
        t = gc.tensor(x)
        for got, want in [(t // 2, x // 2), (2 // t, 2 // x), (t % 3, x % 3), (3 % t, 3 % x),
                          (gc.mod(t, 3), x % 3), (gc.floor_divide(t, 2), x // 2)]:
            _assert_same_bits(got.data, want.astype(x.dtype))
        traced = gc.compile(lambda v: (v // 2, 7 % v))(x)
        _assert_same_bits(traced[0], (x // 2).astype(x.dtype))
        _assert_same_bits(traced[1], (7 % x).astype(x.dtype))
        weak = gc.compile(lambda v, k: (v // k, k % v))
        got = weak(x, 3)
        _assert_same_bits(got[0], (x // 3).astype(x.dtype))
        _assert_same_bits(got[1], (3 % x).astype(x.dtype))


def test_arctan2_quadrants_and_signed_zeros_are_numpys(monkeypatch):
    """gc.arctan2(y, x) (also gc.atan2) did not exist; now numpy's angle: every quadrant,
    +-pi at a negative x, and the sign of a zero y or x kept (arctan2(-0, -1) = -pi)."""
    y = np.array([1, 1, -1, -1, 0.0, -0.0, 0.0, -0.0, INF, -INF, INF, 1, NAN], np.float64)
    x = np.array([1, -1, 1, -1, -1, -1, 0.0, -0.0, INF, -INF, 1, -INF, 1], np.float64)
    expected = np.arctan2(y, x)
    assert expected[5] == -math.pi and expected[7] == -math.pi
    for (got,) in _three_ways(gc.arctan2, y, x, monkeypatch=monkeypatch):
        _assert_same_bits(got, expected)
    _assert_same_bits(gc.atan2(gc.tensor(y), gc.tensor(x)).data, expected)


def test_logaddexp_is_stable_and_its_gradient_is_jaxs(monkeypatch):
    """gc.logaddexp did not exist; now numpy's: no overflow at 1000, -inf for two -inf, inf
    for an inf. Its gradient g / (1 + exp(other - x)): 1/2 each at two equal large values,
    (1, 1) at (inf, inf), NaN at (-inf, -inf) (as JAX's and PyTorch's: -inf - -inf)."""
    a = np.array([1000.0, -INF, INF, -INF, 1.0, -1000.0])
    b = np.array([1000.0, -INF, INF, 2.0, -INF, -1000.0])
    expected = np.logaddexp(a, b)
    assert expected[1] == -INF and expected[0] == 1000.0 + math.log(2.0)
    for (got,) in _three_ways(gc.logaddexp, a, b, monkeypatch=monkeypatch):
        _assert_same_bits(got, expected)
    with np.errstate(invalid="ignore"):
        ga, gb = gc.grad(lambda a, b: gc.sum(gc.logaddexp(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, [0.5, NAN, 1.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(gb, [0.5, NAN, 1.0, 1.0, 0.0, 0.5])


def test_hypot_does_not_overflow_and_its_gradient_at_the_origin_is_zero(monkeypatch):
    """gc.hypot did not exist; now numpy's: sqrt(x^2 + y^2) for 1e30 in float32 (whose
    squares overflow), inf for an inf even beside NaN. Its gradient x / hypot is 0 at the
    origin (JAX's), not 0 / 0."""
    a = np.array([1e30, 3.0, 0.0, INF, 1e-30], np.float32)
    b = np.array([1e30, -4.0, 0.0, NAN, 1e-30], np.float32)
    expected = np.hypot(a, b)
    assert np.isfinite(expected[0]) and expected[1] == 5.0 and expected[3] == INF
    for (got,) in _three_ways(gc.hypot, a, b, monkeypatch=monkeypatch):
        _assert_same_bits(got, expected)
    ga, gb = gc.grad(lambda a, b: gc.sum(gc.hypot(a, b)), argnums=(0, 1))(
        np.array([3.0, 0.0]), np.array([-4.0, 0.0]))
    np.testing.assert_allclose(ga, [0.6, 0.0])
    np.testing.assert_allclose(gb, [-0.8, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hypot_gradient_at_a_subnormal_result_is_pytorchs(dtype):
    """hypot's gradient was (g / out) * x: for a subnormal out (float64 below 5.6e-309,
    float32 below 2.9e-39) g / out overflows, so it gave inf for x and NaN (inf * 0) for
    the zero operand, by the eager tape, gc.grad and compiled. Now g * (x / out), PyTorch's
    x / r, y / r (at most 1); the origin still gives 0 (JAX's). Forward mode was right all
    along (see its assertion)."""
    tiny = np.finfo(dtype).smallest_normal / 8  # (a subnormal hypot, 1 / it overflows)
    a = np.array([tiny, 0.0, tiny, -tiny, 3.0, 0.0], dtype)
    b = np.array([0.0, tiny, tiny, tiny, -4.0, 0.0], dtype)
    with np.errstate(over="ignore"):
        assert np.isinf(1.0 / np.hypot(a, b)[:4]).all()
    expected = _torch_gradients(torch.hypot, a, b)
    np.testing.assert_allclose(expected[0][:5], [1.0, 0.0, 0.5 ** 0.5, -(0.5 ** 0.5), 0.6],
                               rtol=1e-5)
    loss = lambda a, b: gc.sum(gc.hypot(a, b))
    traced = gc.grad(loss, argnums=(0, 1))(a, b)
    compiled = gc.compile(gc.grad(loss, argnums=(0, 1)))(a, b)
    ta, tb = gc.tensor(a, requires_grad=True), gc.tensor(b, requires_grad=True)
    loss(ta, tb).backward()
    for got in (traced, compiled, (ta.grad, tb.grad)):
        for g, want in zip(got, expected):
            np.testing.assert_array_equal(g[:5], want[:5])
            np.testing.assert_array_equal(g[5], 0.0)  # the origin: 0, not PyTorch's NaN
    # forward mode, the tangent along (1, 0) and (0, 1): gc.jvp transposes the rule (the
    # double vjp), reversing its order, so (g / out) * x was (t * x) / out there, finite.
    # It guards that order: a rule (g * x) / out passes the reverse-mode checks above but
    # gives (t / out) * x, inf and NaN, here
    for k in range(2):
        tangents = tuple(np.full_like(a, float(k == j)) for j in range(2))
        _, tangent = gc.jvp(gc.hypot, (a, b), tangents)
        np.testing.assert_array_equal(np.asarray(tangent)[:5], expected[k][:5])


UNARY = ["tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
         "arctanh", "log2", "log10", "exp2", "trunc"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_math_functions_equal_numpys_at_the_edges(dtype, monkeypatch):
    """The unary functions did not exist; now each gives numpy's own value, bit for bit, at
    zeros of both signs, infinities, NaN, out-of-domain values and exact points (log2 of
    powers of two and exp2 of integers exact, as numpy's are and a log(x) / ln 2 composite
    is not), eager and compiled."""
    x = np.array([0.0, -0.0, INF, -INF, NAN, 0.5, -0.5, 1.0, -1.0, 2.0, 8.0, 1024.0, 1e-3,
                  100.0, 1000.0, -3.7, 710.0, 1e-40], dtype)
    fns = [getattr(gc, name) for name in UNARY]
    with np.errstate(all="ignore"):
        expected = [getattr(np, name)(x) for name in UNARY]
        runs = _three_ways(lambda v: tuple(f(v) for f in fns), x, monkeypatch=monkeypatch)
    for outs in runs:
        for name, got, want in zip(UNARY, outs, expected):
            assert got.dtype == np.dtype(dtype), name
            np.testing.assert_array_equal(got, want, err_msg=name)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)
    assert list(runs[0][UNARY.index("log2")][9:12]) == [1.0, 3.0, 10.0]
    if dtype == "float64":  # (numpy's float32 log10(100) is 2.0000002, and so is ours)
        assert list(runs[0][UNARY.index("log10")][13:15]) == [2.0, 3.0]


def test_reciprocal_isinf_and_trunc_of_integers():
    """gc.reciprocal is 1 / x (integers refused in one line, as `/` refuses them);
    gc.isinf gives bools and no gradient (as isnan); gc.trunc gives integers back
    unchanged, as floor and ceil do."""
    x = np.array([2.0, -0.0, 0.0, INF, NAN], np.float32)
    with np.errstate(divide="ignore"):
        _assert_same_bits(gc.reciprocal(gc.tensor(x)).data, np.reciprocal(x))
    inf = gc.isinf(gc.tensor(np.array([INF, -INF, NAN, 1.0])))
    assert inf.dtype == np.bool_ and list(inf.data) == [True, True, False, False]
    assert REGISTRY["isinf"].vjp is None
    assert not gc.isinf(gc.tensor(np.array([1, 2], np.int32))).data.any()
    ints = np.array([-3, 4], np.int32)
    _assert_same_bits(gc.trunc(gc.tensor(ints)).data, ints)
    with pytest.raises(gc.GraphcError, match="reciprocal of int32 values; cast them"):
        gc.reciprocal(gc.tensor(ints))
    with pytest.raises(gc.GraphcError, match="arctan2.*needs floating-point operands"):
        gc.arctan2(gc.tensor(ints), gc.tensor(ints))


def _torch_grads(torch_fn, *xs):
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    weights = torch.tensor(np.random.default_rng(3).normal(size=np.broadcast_shapes(
        *(np.shape(x) for x in xs))))
    (torch_fn(*ts) * weights).sum().backward()
    return [t.grad.numpy() for t in ts], weights.numpy()


GRADIENT_CASES = {  # name: (graphc, torch, operand makers)
    "tan": (gc.tan, torch.tan, [(-1.2, 1.2)]),
    "arcsin": (gc.arcsin, torch.asin, [(-0.95, 0.95)]),
    "arccos": (gc.arccos, torch.acos, [(-0.95, 0.95)]),
    "arctan": (gc.arctan, torch.atan, [(-5.0, 5.0)]),
    "sinh": (gc.sinh, torch.sinh, [(-5.0, 5.0)]),
    "cosh": (gc.cosh, torch.cosh, [(-5.0, 5.0)]),
    "arcsinh": (gc.arcsinh, torch.asinh, [(-5.0, 5.0)]),
    "arccosh": (gc.arccosh, torch.acosh, [(1.01, 5.0)]),
    "arctanh": (gc.arctanh, torch.atanh, [(-0.95, 0.95)]),
    "log2": (gc.log2, torch.log2, [(0.1, 5.0)]),
    "log10": (gc.log10, torch.log10, [(0.1, 5.0)]),
    "exp2": (gc.exp2, torch.exp2, [(-5.0, 5.0)]),
    "reciprocal": (gc.reciprocal, torch.reciprocal, [(0.2, 5.0)]),
    "trunc": (gc.trunc, torch.trunc, [(-5.0, 5.0)]),
    # (torch.floor_divide has no derivative; div with rounding_mode="floor" has, zero)
    "floor_divide": (lambda a, b: a // b, lambda a, b: torch.div(a, b, rounding_mode="floor"),
                     [(-5.0, 5.0), (0.3, 2.0)]),
    "remainder": (lambda a, b: a % b, torch.remainder, [(-5.0, 5.0), (-2.0, 2.0)]),
    "fmod": (gc.fmod, torch.fmod, [(-5.0, 5.0), (-2.0, 2.0)]),
    "arctan2": (gc.arctan2, torch.atan2, [(-3.0, 3.0), (-3.0, 3.0)]),
    "logaddexp": (gc.logaddexp, torch.logaddexp, [(-30.0, 30.0), (-30.0, 30.0)]),
    "hypot": (gc.hypot, torch.hypot, [(-3.0, 3.0), (-3.0, 3.0)]),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_equal_pytorchs_in_float64(name):
    """Each op's gradient (floor_divide's zero, remainder's -floor(x / y) and fmod's
    -trunc(x / y) for the divisor, arctan2's, logaddexp's, hypot's, ...) equals
    torch.autograd's in float64, for broadcast operands too, eagerly (the tape) and as
    gc.grad's graph."""
    ours, theirs, ranges = GRADIENT_CASES[name]
    rng = np.random.default_rng(0)
    shapes = [(4, 5), (5,)][:len(ranges)]
    xs = [rng.uniform(lo, hi, shape) for (lo, hi), shape in zip(ranges, shapes)]
    expected, weights = _torch_grads(theirs, *xs)
    positions = tuple(range(len(xs)))
    loss = lambda *a: gc.sum(ours(*a) * weights)
    traced = gc.grad(loss, argnums=positions)(*xs)
    tensors = [gc.tensor(x, requires_grad=True) for x in xs]
    loss(*tensors).backward()
    for got_graph, t, want in zip(traced, tensors, expected):
        np.testing.assert_allclose(got_graph, want, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(t.grad, want, rtol=1e-12, atol=1e-13)


def _all_ops(a, b, i, j):
    return (a // b, a % b, gc.fmod(a, b), 3.0 // b, 2.0 % b, gc.tan(a), gc.arcsin(a * 0.4),
            gc.arccos(a * 0.4), gc.arctan(a), gc.arctan2(a, b), gc.sinh(a), gc.cosh(a),
            gc.arcsinh(a), gc.arccosh(gc.abs(a) + 1.0), gc.arctanh(a * 0.4),
            gc.log2(gc.abs(b)), gc.log10(gc.abs(b)), gc.exp2(a), gc.reciprocal(b),
            gc.trunc(a * 3.0) * a, gc.where(gc.isinf(a / gc.round(b)), a, b),
            gc.logaddexp(a, b), gc.hypot(a, b), i // j, i % j, gc.fmod(i, j), 7 // j)


def test_compiled_equals_eager_with_and_without_the_numba_kernels(monkeypatch):
    """Compiled plans (numpy kernels, GRAPHC_JIT=0, and numba ones, the default, which fuse
    trunc and isinf into their kernels) give exactly the eager values of every new op on
    random inputs, in float32 and float64, and int32 for the integer ones."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        a = rng.uniform(-2.5, 2.5, (64, 33)).astype(dtype)
        b = (rng.uniform(0.3, 2.0, (64, 33)) * rng.choice([-1, 1], (64, 33))).astype(dtype)
        i = rng.integers(-50, 50, (64, 33)).astype(np.int32)
        j = (rng.integers(1, 7, 33) * rng.choice([-1, 1], 33)).astype(np.int32)
        eager, numpy_plan, numba_plan = _three_ways(_all_ops, a, b, i, j,
                                                    monkeypatch=monkeypatch)
        for k, want in enumerate(eager):
            _assert_same_bits(numpy_plan[k], want)
            _assert_same_bits(numba_plan[k], want)


def test_weak_integer_floor_division_is_checked_to_fit_as_addition_is():
    """A Python-int argument k of a compiled function: `k // 2` meeting an int32 tensor is
    checked, as `k + 1` is (ir/weak.py computes it exactly, as Python does)."""
    f = gc.compile(lambda v, k: v + k // 2)
    x = np.array([1, 2], np.int32)
    _assert_same_bits(f(x, 7), np.array([4, 5], np.int32))
    _assert_same_bits(f(x, -7), np.array([-3, -2], np.int32))
    with pytest.raises(gc.GraphcError, match="does not fit"):
        f(x, 2 ** 40)


def _torch_gradients(torch_fn, a, b):
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    torch_fn(ta, tb).sum().backward()
    return ta.grad.numpy(), tb.grad.numpy()


def test_logaddexp_gradient_beside_an_infinity_is_pytorchs():
    """logaddexp's gradient read +inf as 0 in both x and out (JAX's rule), so at (inf, 2)
    the finite operand got exp(2 - 0) = 7.389 where PyTorch gives 0 (it adds nothing to
    the result). Now g * exp(x - out) is exact there: (1, 0) at (inf, 2), (0, 1) at (2, inf)
    and (-inf, 2), (1, 0) at (2, -inf), as PyTorch's, by gc.grad and the eager tape. Where
    they differ: two +inf give g to each operand (PyTorch: NaN), as before; two -inf give
    NaN, as PyTorch's and JAX's."""
    a = np.array([INF, 2.0, -INF, 2.0, -1000.0, INF, -INF])
    b = np.array([2.0, INF, 2.0, -INF, 1000.0, INF, -INF])
    with np.errstate(invalid="ignore"):  # (-inf - -inf at the last)
        grads = gc.grad(lambda a, b: gc.sum(gc.logaddexp(a, b)), argnums=(0, 1))(a, b)
        ta, tb = gc.tensor(a, requires_grad=True), gc.tensor(b, requires_grad=True)
        gc.sum(gc.logaddexp(ta, tb)).backward()
    want = [[1.0, 0.0, 0.0, 1.0, 0.0, 1.0, NAN], [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, NAN]]
    for got in (grads, (ta.grad, tb.grad)):
        np.testing.assert_array_equal(got, want)
    expected = _torch_gradients(torch.logaddexp, a, b)
    np.testing.assert_array_equal(np.array(grads)[:, :5], np.array(expected)[:, :5])
    assert np.isnan(expected).all(axis=0).tolist()[5:] == [True, True]  # PyTorch: NaN twice


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logaddexp_gradient_where_the_result_rounds_is_pytorchs(dtype):
    """logaddexp's gradient was g * exp(x - out), whose error is an ulp of out: at x = y it
    gave 0.49989 each at 1e4 and 1.0 each (summing to 2) at 3e7 in float32, 1.0 each at
    1e300 in float64. Now PyTorch's g / (1 + exp(other - x)): 0.5 each exactly, by the eager
    tape, gc.grad, compiled and forward mode, and PyTorch's values at ordinary points, at
    infinities beside finite values and at NaN (NaN to both operands, where the +inf beside a
    NaN took g before); two +inf still give g each, where PyTorch gives NaN (documented)."""
    big = [1e4, 1e5, 3e7, -3e7] + ([1e300, -1e300] if dtype == "float64" else [1e38, -1e38])
    a = np.array(big + [1.0, -800.0, INF, 2.0, -INF, INF, NAN, INF, 3.0, -INF, INF], dtype)
    b = np.array(big + [2.0, -800.5, 2.0, INF, 2.0, -INF, 1.0, NAN, NAN, -INF, INF], dtype)
    loss = lambda a, b: gc.sum(gc.logaddexp(a, b))
    with np.errstate(invalid="ignore"):
        expected = _torch_gradients(torch.logaddexp, a, b)
        traced = gc.grad(loss, argnums=(0, 1))(a, b)
        compiled = gc.compile(gc.grad(loss, argnums=(0, 1)))(a, b)
        ta, tb = gc.tensor(a, requires_grad=True), gc.tensor(b, requires_grad=True)
        loss(ta, tb).backward()
        # forward mode (built from the same rule): the tangent along (1, 0) and (0, 1)
        forward = [np.asarray(gc.jvp(gc.logaddexp, (a, b), tuple(
            np.full_like(a, float(k == j)) for j in range(2)))[1]) for k in range(2)]
    np.testing.assert_array_equal(expected[0][:6], 0.5)
    tol = dict(rtol=1e-6 if dtype == "float32" else 1e-15, atol=0)  # (float32 exp: 4 ulp)
    for got in (traced, compiled, (ta.grad, tb.grad)):
        for g, want in zip(got, expected):
            np.testing.assert_array_equal(g[:6], 0.5)
            np.testing.assert_allclose(g[:-1], want[:-1], **tol)  # NaN where PyTorch's is
            np.testing.assert_array_equal(g[-1], 1.0)  # two +inf: g each (PyTorch: NaN)
            assert np.isnan(want[-1])
    for g, want in zip(forward, expected):
        np.testing.assert_allclose(g[:-1], want[:-1], **tol)



@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_logaddexp_second_derivative_is_finite_far_apart(dtype):
    """logaddexp's gradient as g / (1 + exp(other - x)) overflowed its exp once the operands
    were far apart (a gap past 11.1 in float16, 88.7 in float32, 709.8 in float64), and its
    second derivative was inf / inf = NaN there (the softplus logaddexp(x, 0) too). As
    g * sigmoid(x - other) it is sigmoid' = s (1 - s): finite, and the Hessian at equal
    operands exactly 0.25 (a large value: 1e4)."""
    gap = {"float16": 12.0, "float32": 100.0, "float64": 1000.0}[dtype]
    x = np.array([0.0, 0.0, 1e4, -3.0], dtype)
    y = np.array([gap, -gap, 1e4, 1.5], dtype)
    second = gc.grad(lambda x, y: gc.sum(gc.grad(
        lambda x: gc.sum(gc.logaddexp(x, y)))(x)))(x, y)
    s = 1.0 / (1.0 + np.exp(np.float64(y) - np.float64(x)))  # sigmoid(x - y), in float64
    want = (s * (1.0 - s)).astype(dtype)
    assert np.isfinite(second).all()
    np.testing.assert_allclose(second, want, rtol=2e-3 if dtype == "float16" else 1e-6,
                               atol=np.finfo(dtype).tiny)
    assert second[2] == 0.25

def test_arctan2_gradient_at_the_origin_is_pytorchs_zero():
    """arctan2's gradient was g x / (x^2 + y^2), NaN at the origin (0 / 0), its comment
    saying "as JAX's and PyTorch's"; PyTorch 2.13 gives 0 there (JAX NaN). Now it is 0
    where x^2 + y^2 is 0 (the origin with every sign of zero, and squares that underflow),
    with PyTorch's signs of zero, and unchanged elsewhere."""
    y = np.array([0.0, -0.0, 0.0, -0.0, 1e-200, 1.0, -3.0])
    x = np.array([0.0, 0.0, -0.0, -0.0, 1e-200, 0.0, 4.0])
    grads = gc.grad(lambda y, x: gc.sum(gc.arctan2(y, x)), argnums=(0, 1))(y, x)
    ty, tx = gc.tensor(y, requires_grad=True), gc.tensor(x, requires_grad=True)
    gc.sum(gc.arctan2(ty, tx)).backward()
    expected = _torch_gradients(torch.atan2, y, x)
    np.testing.assert_array_equal(expected[0][:5], 0.0)
    for got in (grads, (ty.grad, tx.grad)):
        for g, want in zip(got, expected):
            _assert_same_bits(g, want)
    np.testing.assert_allclose(grads[0][5:], [0.0, 4.0 / 25.0], rtol=1e-15)



def _div_grid(dtype, rng):
    """a, b, g over every combination of the dtype's edge values (signed zeros, the smallest
    subnormal and normal, its largest, inf, NaN), review r1's cases, and random normals."""
    info = np.finfo(dtype)
    edges = [0.0, -0.0, info.smallest_subnormal, info.tiny, 3 * info.tiny, 1.0, -2.5, 3.0,
             info.max, info.max / 7, np.sqrt(info.max), 1 / np.sqrt(info.max), np.inf,
             -np.inf, np.nan, 1e-30, 1e38, 1e20, 1e-10, 1e14, 1e30, 1e-300, 1e300, 1000.0,
             6e4, 100.0, 1e4, 1e-4, 1e-3]
    with np.errstate(over="ignore", under="ignore"):
        edges = np.unique(np.array([float(v) for v in edges]).astype(dtype))
    grid = [v.ravel() for v in np.meshgrid(edges, edges, edges, indexing="ij")]
    n = 3000
    rows = [rng.standard_normal(n) * 100, rng.uniform(10, 1000, n) * rng.choice([-1, 1], n),
            rng.standard_normal(n) * 1e-3]
    return [np.concatenate([v, r.astype(dtype)]) for v, r in zip(grid, rows)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_div_gradients_are_pytorchs_bit_for_bit(dtype):
    """div's gradient for the divisor was (-g * out) / b, whose g * out overflowed where the
    gradient -g a / b^2 is finite (float32 a = 1e30, b = 1e10, g = 1e20: -inf for -1e30),
    then -(g / b) * out, whose g / b overflowed, underflowed to 0, or became a float16
    subnormal rounded before the multiply (a = 1000, b = 100, g = 1e-4: -1.013e-05 for
    -1e-05). Now PyTorch's own -g * ((a / b) / b), each op rounded to the dtype as PyTorch's
    CPU kernels do for float16 (in float32, rounded once per op): PyTorch's bits wherever
    it is finite, and its inf or NaN elsewhere (NaN where out / b overflows and g is 0),
    by vjp, compiled and the eager tape."""
    a, b, g = _div_grid(dtype, np.random.default_rng(0))
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (ta / tb).backward(torch.tensor(g))
    want = ta.grad.numpy(), tb.grad.numpy()
    finite = [np.isfinite(w) for w in want]
    assert finite[1].mean() > 0.5  # (the edges make many infinite)
    pull = lambda a, b, g: gc.vjp(lambda a, b: a / b, a, b)[1](g)
    ea, eb = gc.tensor(a, requires_grad=True), gc.tensor(b, requires_grad=True)
    with np.errstate(all="ignore"):
        (ea / eb).backward(g)
        runs = [pull(a, b, g), gc.compile(pull)(a, b, g), (ea.grad, eb.grad)]
    for got in runs:
        for got_x, want_x, fin in zip(got, want, finite):
            got_x = np.asarray(got_x)
            _assert_same_bits(got_x[fin], want_x[fin])
            np.testing.assert_array_equal(got_x[~fin], want_x[~fin])  # (NaN where NaN)
    if dtype == np.float16:  # r1's cases, exactly -1e-5 and -6e-7 rounded to float16
        a, b, g = (np.array(v, dtype) for v in ([1000.0, 6e4], [100.0, 1e4], [1e-4, 1e-3]))
        got = pull(a, b, g)[1]
        np.testing.assert_array_equal(got, np.array([-1e-5, -6e-7], dtype))
