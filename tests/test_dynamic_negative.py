"""dynamic_slice / dynamic_update_slice at negative, in-range, past-the-end and extreme starts
follow JAX (jax.lax.dynamic_slice / dynamic_update_slice, allow_negative_indices=True): a
negative start counts from the end of the axis (start + length), then the start is clamped
so that the whole window fits, clamp(start, 0, length - size). Length 6, window 2: start -1
opens at 4, -7 at 0, 5 at 4.

Every path is checked against a numpy reference of that rule: eager, the reference
interpreter, compiled plans (gc.compile; compile_graph with and without numba), gradients
(the gradient lands in the reference's window) and vmap with a start per example (against a
loop). Starts are int64 or int32 scalars, including each dtype's extremes (no overflow: a
very negative start opens at 0, a very large one at the last window)."""
import numpy as np
import pytest

import graphc as gc
from passes.manager import run_pipeline
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

I64, I32 = np.iinfo(np.int64), np.iinfo(np.int32)


def jax_start(start, size, length):
    """The start jax.lax.dynamic_slice opens its window at (Python ints: no overflow)."""
    s = int(start)
    if s < 0:
        s += length
    return min(max(s, 0), length - size)


def window_index(ndim, axis, s, size):
    index = [slice(None)] * ndim
    index[axis] = slice(s, s + size)
    return tuple(index)


def ref_slice(a, start, size, axis):
    s = jax_start(start, size, a.shape[axis])
    return a[window_index(a.ndim, axis, s, size)].copy()


def ref_update(a, u, start, axis):
    s = jax_start(start, u.shape[axis], a.shape[axis])
    out = a.copy()
    out[window_index(a.ndim, axis, s, u.shape[axis])] = u
    return out


def starts_for(length, dtype):
    """Negative (in range and past the front), in range, past the end, and the extremes."""
    info = np.iinfo(dtype)
    values = {-1, -2, -length, -length - 1, -length - 7, 0, 1, length - 1, length, length + 5,
              info.min, info.min + 1, info.max, info.max - 1, -(length // 2) - 1}
    return [np.asarray(v, dtype) for v in sorted(values)]


def test_the_documented_examples():
    assert [jax_start(s, 2, 6) for s in (-1, -7, 5, -2, -6, 0, 9)] == [4, 0, 4, 4, 0, 0, 4]
    a = np.arange(6.0)
    for start, first in ((-1, 4), (-7, 0), (5, 4), (-3, 3)):
        for s in (start, np.asarray(start, np.int64), np.asarray(start, np.int32)):
            np.testing.assert_array_equal(np.asarray(gc.dynamic_slice(gc.tensor(a), s, 2)),
                                          a[first:first + 2])
            put = gc.dynamic_update_slice(gc.tensor(a), gc.tensor(np.array([-1.0, -2.0])), s)
            expected = a.copy()
            expected[first:first + 2] = [-1.0, -2.0]
            np.testing.assert_array_equal(np.asarray(put), expected)


# (operand shape, axis, window size along axis)
CONFIGS = [((6,), 0, 2), ((5, 7), 1, 3), ((4, 3, 2), 0, 1), ((3, 5, 4), 1, 5),
           ((2, 3, 6), 2, 0), ((7, 2), 0, 7), ((3, 4), -1, 2)]


def _plans(fn, example):
    """The ways a traced fn runs: interpreter, gc.compile, compile_graph without and (where
    numba is there) with jit."""
    graph = gc.trace(fn, *example)
    optimised = run_pipeline(graph, "default").graph
    plans = {"interpreter": lambda *xs: run(graph, *xs)[0],
             "gc.compile": gc.compile(fn),
             "numpy plan": lambda *xs, p=compile_graph(optimised, jit=False): p(*xs)[0]}
    if jit.enabled():
        plans["jit plan"] = lambda *xs, p=compile_graph(optimised, jit=True): p(*xs)[0]
    return plans


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("shape, axis, size", CONFIGS)
def test_slice_and_update_on_every_path(shape, axis, size, dtype):
    rng = np.random.default_rng(len(shape) * 10 + size)
    a = rng.normal(size=shape)
    ax = axis % len(shape)
    u_shape = list(shape)
    u_shape[ax] = size
    u = rng.normal(size=u_shape)
    example = np.asarray(0, dtype)

    def window(a, s):
        return gc.dynamic_slice(a, s, size, axis=axis)

    def put(a, u, s):
        return gc.dynamic_update_slice(a * 2.0, u, s, axis=axis)

    slice_plans, put_plans = _plans(window, (a, example)), _plans(put, (a, u, example))
    for s in starts_for(shape[ax], dtype):
        want = ref_slice(a, s, size, ax)
        np.testing.assert_array_equal(np.asarray(window(gc.tensor(a), s)), want,
                                      err_msg=f"eager slice, start {s}")
        for name, plan in slice_plans.items():
            np.testing.assert_array_equal(np.asarray(plan(a, s)), want,
                                          err_msg=f"{name} slice, start {s}")
        want = ref_update(a * 2.0, u, s, ax)
        np.testing.assert_array_equal(np.asarray(put(gc.tensor(a), gc.tensor(u), s)), want,
                                      err_msg=f"eager update, start {s}")
        for name, plan in put_plans.items():
            np.testing.assert_array_equal(np.asarray(plan(a, u, s)), want,
                                          err_msg=f"{name} update, start {s}")


@pytest.mark.parametrize("shape, axis, size", CONFIGS[:4])
def test_a_python_int_start(shape, axis, size):
    a = np.random.default_rng(3).normal(size=shape)
    for s in (-1, -shape[axis] - 3, -(2 ** 63), 2 ** 63 - 1, 1):
        np.testing.assert_array_equal(
            np.asarray(gc.dynamic_slice(gc.tensor(a), s, size, axis=axis)),
            ref_slice(a, s, size, axis))
        np.testing.assert_array_equal(
            np.asarray(gc.compile(lambda a: gc.dynamic_slice(a, s, size, axis=axis))(a)),
            ref_slice(a, s, size, axis))


@pytest.mark.parametrize("shape, axis, size", CONFIGS)
def test_gradients_land_in_the_window(shape, axis, size):
    """d/da sum(w * slice(a)) is w in the window, 0 elsewhere; d/da sum(w * put(a, u)) is 2w
    outside the window, 0 in it; d/du is w's window."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=shape)
    ax = axis % len(shape)
    u_shape = list(shape)
    u_shape[ax] = size
    u = rng.normal(size=u_shape)
    wa, wu = rng.normal(size=u_shape), rng.normal(size=shape)

    def slice_loss(a, s):
        return gc.sum(gc.dynamic_slice(a, s, size, axis=axis) * wa)

    def put_loss(a, u, s):
        return gc.sum(gc.dynamic_update_slice(a * 2.0, u, s, axis=axis) * wu)

    slice_grad, put_grad = gc.grad(slice_loss), gc.grad(put_loss, argnums=(0, 1))
    compiled_slice, compiled_put = gc.compile(slice_grad), gc.compile(put_grad)
    for s in starts_for(shape[ax], np.int64):
        first = jax_start(s, size, shape[ax])
        index = window_index(len(shape), ax, first, size)
        want = np.zeros(shape)
        want[index] = wa
        for got in (slice_grad(a, s), compiled_slice(a, s)):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12,
                                       err_msg=f"slice grad, start {s}")
        want_a = 2.0 * wu
        want_a[index] = 0.0
        for got in (put_grad(a, u, s), compiled_put(a, u, s)):
            np.testing.assert_allclose(np.asarray(got[0]), want_a, rtol=1e-12,
                                       err_msg=f"update grad (operand), start {s}")
            np.testing.assert_allclose(np.asarray(got[1]), wu[index], rtol=1e-12,
                                       err_msg=f"update grad (update), start {s}")


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(11)
    a, u = rng.normal(size=(6, 3)), rng.normal(size=(2, 3))
    w = rng.normal(size=(6, 3))

    def loss(a, u, s):
        return gc.sum(gc.sin(gc.dynamic_update_slice(a, u * u, s)) * w) + \
            gc.sum(gc.dynamic_slice(a, s, 3) ** 3)

    def numeric(i, s, eps=1e-6):
        xs = [a, u]
        g = np.zeros_like(xs[i])
        for k in range(g.size):
            plus, minus = [x.copy() for x in xs], [x.copy() for x in xs]
            plus[i].flat[k] += eps
            minus[i].flat[k] -= eps
            g.flat[k] = (float(np.asarray(loss(*plus, s))) -
                         float(np.asarray(loss(*minus, s)))) / (2 * eps)
        return g

    for s in (-1, -2, -5, -9, 3, 8):
        s = np.asarray(s, np.int64)
        got = gc.grad(loss, argnums=(0, 1))(a, u, s)
        for i in (0, 1):
            np.testing.assert_allclose(np.asarray(got[i]), numeric(i, s), rtol=1e-6,
                                       atol=1e-8, err_msg=f"start {s}, argument {i}")


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("axis", [0, 1])
def test_vmap_with_a_start_per_example(axis, dtype):
    rng = np.random.default_rng(5)
    length, size = 6, 2
    starts = np.concatenate([s.reshape(1) for s in starts_for(length, dtype)])
    b = len(starts)
    a = rng.normal(size=(b, length, 3) if axis == 0 else (b, 3, length))
    u = rng.normal(size=(b, size, 3) if axis == 0 else (b, 3, size))
    w = rng.normal(size=a.shape)

    def window(a, s):
        return gc.dynamic_slice(a, s, size, axis=axis)

    def put(a, u, s):
        return gc.dynamic_update_slice(a * 2.0, u, s, axis=axis)

    want = np.stack([ref_slice(a[i], starts[i], size, axis) for i in range(b)])
    for got in (gc.vmap(window)(a, starts), gc.compile(gc.vmap(window))(a, starts)):
        np.testing.assert_array_equal(np.asarray(got), want)
    want = np.stack([ref_update(a[i] * 2.0, u[i], starts[i], axis) for i in range(b)])
    for got in (gc.vmap(put)(a, u, starts), gc.compile(gc.vmap(put))(a, u, starts)):
        np.testing.assert_array_equal(np.asarray(got), want)
    # one operand for every example
    np.testing.assert_array_equal(
        np.asarray(gc.compile(gc.vmap(put, in_axes=(None, 0, 0)))(a[0], u, starts)),
        np.stack([ref_update(a[0] * 2.0, u[i], starts[i], axis) for i in range(b)]))
    # per-example gradients equal a loop of gradients at each example's start
    loss = gc.grad(lambda a, u, s: gc.sum(put(a, u, s) * w[0]) +
                   gc.sum(window(a, s) ** 2), argnums=(0, 1))
    grads = gc.compile(gc.vmap(loss))(a, u, starts)
    for i in range(b):
        first = jax_start(starts[i], size, length)
        index = window_index(2, axis, first, size)
        want_a = 2.0 * w[0]
        want_a[index] = 0.0
        want_a[index] += 2.0 * a[i][index]
        np.testing.assert_allclose(np.asarray(grads[0][i]), want_a, rtol=1e-12,
                                   err_msg=f"start {starts[i]}")
        np.testing.assert_allclose(np.asarray(grads[1][i]), w[0][index], rtol=1e-12,
                                   err_msg=f"start {starts[i]}")


def test_negative_starts_in_a_loop():
    """A fori_loop (a scan) reading and writing windows counted from the end."""
    x = np.arange(8.0)

    def f(x):
        def body(i, acc):
            s = gc.neg(i) - 1  # -1, -2, ...: the last element, the one before it, ...
            return gc.dynamic_update_slice(acc, gc.dynamic_slice(x, s, 1) * 10.0, s)
        return gc.fori_loop(0, 3, body, x)

    want = x.copy()
    want[-3:] *= 10.0
    np.testing.assert_array_equal(np.asarray(gc.compile(f)(x)), want)
    np.testing.assert_array_equal(np.asarray(f(gc.tensor(x))), want)
