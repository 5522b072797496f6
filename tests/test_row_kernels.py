"""runtime.jit's elementwise and row kernels (GELU and its gradient, ...) against float64 and
numpy's definitions: accuracy over the whole range, numpy's special values (NaN, inf, -0,
subnormals, overflowing squares), odd sizes, float32 and float64, and the fused kernels that
call the same helpers."""
import numpy as np
import pytest

import graphc as gc
from runtime import jit
from runtime.codegen import compile_graph

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")

C, K = 0.7978845608028654, 0.044715
GELU_OPS = {"gelu": lambda x, g: gc.gelu(x), "gelu_grad": gc.gelu_grad}
# |v| where the sigmoid form's exponent saturates, v * v overflows, or both
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, -1e-38, 1e-30, 1e10,
           -1e10, 1e13, -1e13, 1e20, -1e20, 3e38, -3e38, 20.0, -20.0, 12.0, -12.0, 5.0, -5.0]


def _gelu64(x, g):
    t = np.tanh(C * (x + K * x ** 3))
    return {"gelu": 0.5 * x * (1 + t),
            "gelu_grad": g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * K * x * x))}


def _plans(op, shape, dtype):
    graph = gc.trace(GELU_OPS[op], gc.spec(shape, dtype), gc.spec(shape, dtype))
    return compile_graph(graph, jit=True), compile_graph(graph, jit=False)


@pytest.mark.parametrize("op", sorted(GELU_OPS))
def test_float32_gelu_kernels_are_within_3e7_of_float64(op):
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    g = np.ones_like(x)
    plan, _ = _plans(op, x.shape, "float32")
    assert "_jit.gelu_tanh" in plan.source
    exact = _gelu64(x.astype(np.float64), 1.0)[op]
    err = np.abs(plan(x, g)[0] - exact) / np.maximum(np.abs(exact), 1.0)
    # measured 1.2e-7 (gelu) and 2.2e-7 (gradient); the tanh form's were 7.4e-7 and 4.2e-6
    assert err.max() < 3e-7, (x[err.argmax()], err.max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(GELU_OPS))
def test_gelu_kernels_keep_numpys_special_values(op, dtype):
    """NaN and inf where the numpy emitter has them (gelu(-inf) and the gradient at +-inf or
    where v * v overflows are inf * 0 = NaN there), on an odd size."""
    x = np.array(SPECIAL * 3, dtype)[:67]  # 67: no vector width divides it
    g = np.linspace(-2.0, 2.0, x.size).astype(dtype)
    fast, reference = _plans(op, x.shape, dtype)
    with np.errstate(all="ignore"):
        got, want = fast(x, g)[0], reference(x, g)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)])
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=2e-6)
    if op == "gelu":  # odd function's halves: -0 and subnormals kept (gelu(v) ~ v / 2)
        np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
        tiny = (np.abs(x) < 1e-30) & (x != 0)
        np.testing.assert_array_equal(got[tiny], want[tiny])


def test_float32_gelu_is_exact_to_float64_where_numpys_tanh_saturates():
    """Below about -9 numpy's float32 tanh is -1 and its GELU 0; the sigmoid form keeps the
    tiny true value (float64's exp form for reference)."""
    x = np.array([-9.5, -10.0], np.float32)
    plan, _ = _plans("gelu", x.shape, "float32")
    x64 = x.astype(np.float64)
    exact = x64 / (1 + np.exp(-2 * C * (x64 + K * x64 ** 3)))
    # relative: the exponent (about 120 here) is rounded to float32, 120 * 2**-24 = 7e-6
    np.testing.assert_allclose(plan(x, np.ones_like(x))[0], exact, rtol=2e-5)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 37, 129)])
def test_fused_gelu_calls_the_same_helper_as_the_fixed_kernel(shape):
    """gelu inside a generated kernel (gelu(x) * w) gives the fixed kernel's bits times w."""
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.flat[0] = -11.0
    w = np.ones(shape, np.float32)
    fused = compile_graph(gc.trace(lambda a, b: gc.gelu(a) * b, gc.spec(shape), gc.spec(shape)),
                          jit=True)
    fixed = compile_graph(gc.trace(gc.gelu, gc.spec(shape)), jit=True)
    if x.size >= 64:  # smaller clusters run as numpy lines
        assert "_fused_" in fused.source
    got = fused(x, w)[0]
    if x.size >= 64:
        np.testing.assert_array_equal(got, fixed(x)[0])
    exact = _gelu64(x.astype(np.float64), 1.0)["gelu"]
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6)
