"""Session 35's fixes of weak typing and fused sums found by review; each test failed before
its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def test_a_weak_float_carry_the_body_returns_as_an_int_is_refused():
    """A compiled loop promoted a weakly typed initial carry to whatever dtype the body
    returned, so a float carry the body casts to int32 was truncated to one (0.7 -> 0, the
    loop then gave 0 where eager code gives 2). Now it is promoted only where JAX promotes a
    weak carry (an int to an int or float dtype, a float to a float dtype); a float the body
    returns as an int is refused in one line naming the function, as JAX refuses it."""
    def doubled(i, c):
        return gc.cast(c * 2, "int32")
    with pytest.raises(GraphcError, match=r"returns the carry as \(i32\[\]\) but it came in as "
                                          r"\(f32\[\]\)"):
        gc.compile(lambda z: gc.fori_loop(0, 2, doubled, 0.7) + z)(np.int32(0))
    with pytest.raises(GraphcError, match="while_loop body function"):
        gc.compile(lambda z: gc.while_loop(lambda c: c < 3, lambda c: gc.cast(c + 1, "int32"),
                                           0.5) + z)(np.int32(0))
    # the promotions JAX makes still happen: an int or a float to float16
    x16 = np.array([1, 2], np.float16)
    _same(gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[0], 0.5))(x16), 3.5,
          np.float16)
    _same(gc.compile(lambda x: gc.fori_loop(0, 3, lambda i, c: c + x[0], 0))(x16), 3,
          np.float16)


def test_a_weak_int_carry_the_body_returns_as_a_weak_float_stays_weak():
    """A loop carry starting as a Python int that the body returns as a weak float (c / 2 + 1)
    was carried as a strong float64, so `x_float32 + fori_loop(...)` was refused ("operands
    must have one dtype") where eager code and JAX give float32. Now such a carry stays
    weak, a float64 that takes the dtype of the tensor the loop's result meets."""
    x = np.ones(2, np.float32)

    def halved(i, c):
        return c / 2 + 1
    _same(gc.compile(lambda x: x + gc.fori_loop(0, 3, halved, 0))(x), [2.75, 2.75], np.float32)
    _same(x + gc.fori_loop(0, 3, halved, 0), [2.75, 2.75], np.float32)  # (eagerly)
    _same(gc.compile(lambda x, k: x + gc.fori_loop(0, 3, halved, k))(x, 0), [2.75, 2.75],
          np.float32)
    _same(gc.compile(lambda: gc.fori_loop(0, 3, halved, 0))(), 1.75, np.float64)
    _same(gc.compile(lambda x: x + gc.while_loop(
        lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] / 2 + 1), (0, 0))[1])(x),
        [2.75, 2.75], np.float32)
    _same(gc.compile(lambda x: x + gc.scan(lambda c, r: (c / 2 + 1, r), 0, np.arange(3))[0])(x),
          [2.75, 2.75], np.float32)


def test_fused_layer_norm_weight_gradients_overflow_as_numpy_sums():
    """The numba kernels that sum LayerNorm's weight gradient (xhat * dy over rows:
    layer_norm_wgrad, layer_norm_grads, layer_norm_grads_bias) add chunks of rows, so a
    float32 column whose chunks overflow to inf and -inf gave NaN where numpy's sum in row
    order (the op's definition) gives inf; 37d21d1 fixed only the bias's column sums. Now a
    weight total that is not finite is summed again in numpy's order, and finite ones keep
    their bits."""
    from ir.ops.composite import layer_norm_wgrad
    from runtime import jit
    if not jit.enabled():
        pytest.skip("numba kernels are off")
    rows, n, eps = 64, 3, 1e-5  # 32 chunks of 2 rows
    x = np.tile(np.array([1, 0, -1], np.float32), (rows, 1))
    g = np.zeros((rows, n), np.float32)
    g[:2, 0], g[2:4, 0] = 1.5e38, -2.5e38
    g[:, 2] = np.linspace(0, 1, rows, dtype=np.float32)
    with np.errstate(all="ignore"):
        want = layer_norm_wgrad(x, g, eps)
    assert want[0] == np.inf and np.isfinite(want[1:]).all()
    w = np.ones(n, np.float32)
    wgrad = np.empty(n, np.float32)
    jit.layer_norm_wgrad(x, g, eps, wgrad)
    out, wout = np.empty_like(x), np.empty(n, np.float32)
    jit.layer_norm_grads(x, w, g, eps, out, wout)
    out, wout_b, bout = np.empty_like(x), np.empty(n, np.float32), np.empty(n, np.float32)
    jit.layer_norm_grads_bias(x, w, g, eps, out, wout_b, bout)
    for got in (wgrad, wout, wout_b):
        assert got[0] == np.inf and got[1] == 0
        np.testing.assert_allclose(got[2], want[2], rtol=1e-6)
    np.testing.assert_allclose(bout, g.sum(axis=0, dtype=np.float64), rtol=1e-6)  # (the bias)


def test_jvp_takes_a_numpy_int_or_bool_primal_inside_a_trace():
    """Inside a trace jvp lifted a numpy int or bool scalar primal (np.int32(3)) into a strong
    int64 or bool value, so `x * n` was refused ("mul(f32[2], i64[])") where eager jvp and a
    compiled function closing over np.int32(3) take it. Now such a primal stays a number,
    weakly typed, with no tangent, as a Python int primal does; a True primal gives x * 1
    compiled and eagerly alike."""
    x, v = np.array([1.0, 2.0], np.float32), np.ones(2, np.float32)

    def scaled(x, n):
        return x * n
    for n, want in ((np.int32(3), 3), (np.int64(3), 3), (np.bool_(True), 1), (True, 1)):
        for run in (gc.compile(lambda x, v: gc.jvp(scaled, (x, n), (v, 0))),
                    lambda x, v: gc.jvp(scaled, (x, n), (v, 0))):
            y, tangent = run(x, v)
            _same(y, x * want, np.float32)
            _same(tangent, v * want, np.float32)
    y, tangent = gc.compile(lambda x, v: gc.jvp(lambda x, i: x[i], (x, np.int64(1)), (v, 0)))(x, v)
    _same(y, 2, np.float32)
    _same(tangent, 1, np.float32)
    batched = gc.vmap(lambda v: gc.jvp(scaled, (x, np.int32(3)), (v, 0))[1])
    _same(batched(np.ones((2, 2), np.float32)), np.full((2, 2), 3.0), np.float32)


def test_a_power_of_ints_by_a_traced_int_argument_is_a_weak_int():
    """`2 ** k` with k a compiled function's Python-int argument was a weak float64, so
    `x_int32 * 2 ** k` was refused and `x[2 ** k]` said indices must be integers, where eager
    code and jax.jit give an int. Now a Python or weak int raised to a traced weak int is a
    weak int, as jnp.power's integer power (squaring over k's bits): range-checked where it
    meets a narrower tensor, and for a negative k 0 as JAX gives for 2 ** -1 ((+-1) ** k:
    +-1)."""
    ints = np.arange(10, dtype=np.int32)
    _same(gc.compile(lambda x, k: x * 2 ** k)(ints, 3), ints * 8, np.int32)
    _same(gc.compile(lambda x, k: x[2 ** k])(ints, 3), 8, np.int32)
    _same(gc.compile(lambda x, k: x * 2 ** k)(ints.astype(np.float32), 3), ints * 8,
          np.float32)
    power = gc.compile(lambda b, k: b ** k)
    for base, k, want in ((3, 5, 243), (-3, 5, -243), (2, 0, 1), (0, 0, 1), (0, 5, 0),
                          (2, 62, 2**62), (2, -1, 0), (3, -2, 0), (1, -3, 1), (-1, -3, -1),
                          (-1, 4, 1), (0, -1, 0)):
        _same(power(base, k), want, np.int64)
        _same(gc.compile(lambda k: base ** k)(k), want, np.int64)
    with pytest.raises(GraphcError, match="1099511627776, computed from k, does not fit in int32"):
        gc.compile(lambda x, k: x * 2 ** k)(ints, 40)
