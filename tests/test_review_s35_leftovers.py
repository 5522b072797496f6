"""Session 35's fixes of known leftovers; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from ir.errors import GraphcError


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_a_weak_initial_carry_is_promoted_to_the_dtype_the_body_returns():
    """A loop carry starting as a Python number that the body returns in another dtype
    (c + x_int32[i] from 0, c + x_float64[i] from 0.0) was carried as int64 or float32 when
    compiled and refused ("operands must have one dtype"), where eager graphc and JAX (which
    promotes a weakly typed initial carry) give the body's dtype. Now compiled loops promote
    it too, and an initial int that does not fit the new dtype is refused in one line."""
    ints = np.arange(5, dtype=np.int32)
    floats64, floats32 = np.arange(5, dtype=np.float64), np.arange(5, dtype=np.float32)

    def summed(x):
        return gc.fori_loop(0, 5, lambda i, c: c + x[i], 0)
    for x, dtype in ((ints, np.int32), (floats32, np.float32)):
        _same(gc.compile(summed)(x), 10, dtype)
        _same(summed(gc.tensor(x)), 10, dtype)
    _same(gc.compile(lambda x: gc.fori_loop(0, 5, lambda i, c: c + x[i], 0.0))(floats64),
          10.0, np.float64)
    _same(gc.compile(lambda x, k: gc.fori_loop(0, 5, lambda i, c: c + x[i], k))(ints, 3),
          13, np.int32)

    carry, ys = gc.compile(lambda x: gc.scan(lambda c, r: (c + r, c), 0, x))(ints)
    _same(carry, 10, np.int32)
    _same(ys, [0, 0, 1, 3, 6], np.int32)
    i, total = gc.compile(lambda x: gc.while_loop(
        lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] + x[c[0]]), (0, 0)))(ints)
    _same(i, 5, np.int64)  # (kept weak by the body: a Python int's int64)
    _same(total, 10, np.int32)

    with pytest.raises(GraphcError, match="1099511627776 does not fit in int32"):
        gc.compile(lambda x: gc.fori_loop(0, 5, lambda i, c: c + x[i], 2**40))(ints)


def test_a_power_of_a_python_int_argument_is_taken_when_traced():
    """`k ** 2` with k a compiled (or differentiated) function's Python-int argument was
    refused ("pow needs floating-point operands": k is traced as a weak int64), where eager
    code (Python's int) and jax.jit take it. Now a power by an int >= 0 is the weak int
    Python computes (products, range-checked where it meets a tensor), and one by a negative
    int literal a weak float, as Python's k ** -1 is (a traced int exponent, 2 ** k, gives
    a weak int: tests/test_review_s35_weak.py)."""
    x = np.array([1.0, 2.0], np.float32)
    _same(gc.compile(lambda x, k: x * k ** 2)(x, 3), [9, 18], np.float32)
    _same(gc.grad(lambda x, k: gc.sum(x * k ** 2))(x, 3), [9, 9], np.float32)
    _same(gc.compile(lambda k: k ** 5)(3), 243, np.int64)
    _same(gc.compile(lambda x, k: x * k ** 0)(x, 7), [1, 2], np.float32)
    _same(gc.compile(lambda x, k: x[k ** 2 - 8])(x, 3), 2, np.float32)  # an int: an index
    _same(gc.compile(lambda x, k: x * k ** -1)(x, 4), [0.25, 0.5], np.float32)
    _same(gc.compile(lambda x, k: x * 2 ** k)(x, 3), [8, 16], np.float32)
    ints = np.array([1, 2], np.int32)
    _same(gc.compile(lambda x, k: x * k ** 2)(ints, 3), [9, 18], np.int32)
    with pytest.raises(GraphcError, match="1099511627776, computed from k, does not fit"):
        gc.compile(lambda x, k: x * k ** 2)(ints, 2**20)


def test_jvp_takes_a_python_number_primal_beside_traced_ones():
    """gc.compile(lambda x, v: gc.jvp(f, (x, 3), (v, 0))) was refused ("gradients() needs
    symbolic values, got int"), and so was a Python float primal (3.0) there and a Python
    int under vmap: with some primals traced, the Python numbers skipped the conversion
    eager jvp gives them and were differentiated as they were. Now they are taken as
    eagerly and as jax.jit of jax.jvp with a float0 tangent: the int has no tangent (a
    non-zero one is still refused), the float is differentiated."""
    x, v = np.array([1.0, 2.0], np.float32), np.ones(2, np.float32)

    def scaled(x, n):
        return x * n
    for run in (gc.compile(lambda x, v: gc.jvp(scaled, (x, 3), (v, 0))),
                lambda x, v: gc.jvp(scaled, (x, 3), (v, 0))):
        y, tangent = run(x, v)
        _same(y, [3, 6], np.float32)
        _same(tangent, [3, 3], np.float32)
    y, tangent = gc.compile(lambda x, v: gc.jvp(lambda x, i: x[i], (x, 1), (v, 0)))(x, v)
    _same(y, 2, np.float32)
    _same(tangent, 1, np.float32)
    y, tangent = gc.compile(lambda x, v: gc.jvp(scaled, (x, 3.0), (v, 1.0)))(x, v)
    _same(tangent, [4, 5], np.float32)  # 3 * v + x * 1
    _same(gc.vmap(lambda v: gc.jvp(scaled, (x, 3), (v, 0))[1])(np.ones((2, 2), np.float32)),
          np.full((2, 2), 3.0), np.float32)
    with pytest.raises(GraphcError, match="integer with no tangent"):
        gc.compile(lambda x, v: gc.jvp(scaled, (x, 3), (v, 1)))(x, v)


class _Tied(gc.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = gc.nn.Linear(2, 2, bias=False)
        self.second = gc.nn.Linear(2, 2, bias=False)
        self.second.weight = self.first.weight


def test_load_state_dict_refuses_two_different_values_for_one_tied_parameter():
    """A state giving a tied Parameter's two names different values (an untied model's
    state loaded into a tied one) loaded the first name's silently, where torch keeps the
    last name its modules visit and transformers 5 unties them: either way one of the two
    was lost without a word. Now that is refused in one line naming both; equal values (a
    tied model's own state_dict) and one name alone still load."""
    model = _Tied()
    zeros, ones = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    assert_one_line_error(
        lambda: model.load_state_dict({"first.weight": zeros, "second.weight": ones}),
        "first.weight and second.weight name one tied parameter but the state gives them "
        "different values", "test_review_s35_leftovers.py")
    assert model.first.weight is model.second.weight
    model.load_state_dict({"first.weight": ones, "second.weight": ones.copy()})
    _same(model.second.weight.data, ones, np.float32)
    model.load_state_dict({"second.weight": zeros})
    _same(model.first.weight.data, zeros, np.float32)
    model.load_state_dict(model.state_dict())
    _same(model.first.weight.data, zeros, np.float32)


def test_fused_bias_column_sums_overflow_as_numpy_sums():
    """The numba kernels that sum a bias gradient's columns in the same pass as the GELU or
    LayerNorm gradient (gelu_tanh_grad_colsum, layer_norm_grads_bias) add chunks of rows, so
    a float32 column 2e38, 2e38, -3e38, -3e38 gave inf + -inf = NaN where numpy's sum (and
    the unfused compiled sum, which falls back to it) gives inf. Now a total that is not
    finite is summed again in numpy's order: inf there, NaN still for a column holding inf
    and -inf, and finite columns unchanged."""
    from runtime import jit
    if not jit.enabled():
        pytest.skip("numba kernels are off")
    rows, n = 64, 3  # 32 chunks of 2 rows
    g = np.zeros((rows, n), np.float32)
    g[:2, 0], g[2:4, 0] = 2e38, -3e38
    g[0, 1], g[5, 1] = np.inf, -np.inf
    g[::2, 2], g[1::2, 2] = 3e38, -3e38
    with np.errstate(all="ignore"):
        want = np.add.reduce(g, axis=0)
    np.testing.assert_array_equal(want, [np.inf, np.nan, 0])
    x = np.random.default_rng(0).standard_normal((rows, n)).astype(np.float32)
    out, wout, bout = np.empty_like(x), np.empty(n, np.float32), np.empty(n, np.float32)
    jit.layer_norm_grads_bias(x, np.ones(n, np.float32), g, 1e-5, out, wout, bout)
    np.testing.assert_array_equal(bout, want)
    steep = np.full((rows, n), 10.0, np.float32)  # GELU's slope 1 there: the result is g
    out, bout = np.empty_like(steep), np.empty(n, np.float32)
    jit.gelu_tanh_grad_colsum(steep, g, out, bout)
    np.testing.assert_array_equal(out, g)
    np.testing.assert_array_equal(bout, want)
