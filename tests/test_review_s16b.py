"""Review (session 16b) of two leads from an earlier hostile review.

(1) runtime.lowering.products_laid_out_for_transpose wrote a product read only by transposes
through a transposed view of its pool buffer for any matmul, but runtime.gemm's kernel for
a (..., m, k) @ (k, n) product (a 3-D or 4-D operand times a matrix, runtime.emitters.
jit_matmul) computes it on its result reshaped to rows: a transposed view cannot be, so the
reshape was a copy, the product went into the copy and the plan read an unwritten buffer
(garbage, inf or nan). The tracer never builds that node (graphc.matmul flattens the leading
axes into one 2-D product), but a graph read from IR text or JSON, or built node by node,
does; runtime.memory.products_into_concats already refused it (_writes_any_layout).

(2) vmap of dynamic_update_slice with a start per example and an empty update (a zero-length
window axis) failed: "arange(): step must not be zero" (ir.ops.batching.batch_offsets steps
by the block's row count, 0 here), and past that, a take of index -1 from an empty table. The
same zero step failed vmap of dynamic_slice on an empty axis and of take from empty tables.
Starts past the end are clamped so the update fits, as jax.lax.dynamic_update_slice does
(pinned against numpy and against a loop over examples)."""
import os

import numpy as np
import pytest

import graphc as gc
from ir.parser import parse
from passes.autodiff import grad_graph
from runtime import gemm, jit
from runtime.codegen import compile_graph

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")

RNG = np.random.default_rng(16)
TYPES = {"float32": "f32", "float64": "f64"}


# ---- lead 1: a product laid out for its transpose ------------------------------------------
def _product_then_transpose(x_shape, w_shape, perm, dtype):
    """IR of transpose(x @ w, perm) * 2 with the product as one matmul node of x's rank."""
    t = TYPES[dtype]
    product = x_shape[:-1] + (w_shape[-1],)
    moved = tuple(product[p] for p in perm)

    def ty(shape):
        return f"{t}[{','.join(map(str, shape))}]"
    return (f"graph g(%0:{ty(x_shape)} x, %1:{ty(w_shape)} w) -> (%5)\n"
            f"  %2:{ty(product)} = matmul %0, %1\n"
            f"  %3:{ty(moved)} = transpose %2 {{perm={perm!r}}}\n"
            f"  %4:{t}[] = constant 2.0\n"
            f"  %5:{ty(moved)} = mul %3, %4\n"
            f"  return %5\n")


BATCHED_TIMES_MATRIX = [((3, 4, 5), (5, 6), (1, 0, 2)),
                        ((2, 3, 4, 5), (5, 6), (0, 2, 1, 3)),  # attention's head merge
                        ((2, 3, 4, 5), (5, 6), (2, 1, 0, 3))]


@pytest.mark.skipif(not jit.enabled() or not gemm.available(),
                    reason="numba or numpy's OpenBLAS missing")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape, w_shape, perm", BATCHED_TIMES_MATRIX)
def test_batched_operand_times_matrix_read_by_a_transpose(x_shape, w_shape, perm, dtype):
    graph = parse(_product_then_transpose(x_shape, w_shape, perm, dtype))
    assert [n.ndim for n in graph.nodes if n.op == "matmul"] == [len(x_shape)]
    x = RNG.normal(size=x_shape).astype(dtype)
    w = RNG.normal(size=w_shape).astype(dtype)
    expected = np.transpose(x @ w, perm) * 2
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for use_jit in (True, False):
        plan = compile_graph(graph, jit=use_jit)
        np.testing.assert_allclose(plan(x, w)[0], expected, **tol)


@pytest.mark.skipif(not jit.enabled() or not gemm.available(),
                    reason="numba or numpy's OpenBLAS missing")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_of_batched_operand_times_matrix_read_by_a_transpose(dtype):
    # loss = sum(transpose(x @ w)^2): the backward pass reads the product through the
    # transpose only, so the forward product is still laid out for it
    x_shape, w_shape, perm = (2, 3, 4, 5), (5, 6), (0, 2, 1, 3)
    text = _product_then_transpose(x_shape, w_shape, perm, dtype)
    t = TYPES[dtype]
    text = text.replace("-> (%5)", "-> (%7)").replace(
        "  return %5\n", f"  %6:{t}[2,4,3,6] = mul %5, %5\n"
        f"  %7:{t}[] = sum %6 {{axes=(0, 1, 2, 3), keepdims=false}}\n  return %7\n")
    graph = grad_graph(parse(text))
    x = RNG.normal(size=x_shape).astype(dtype)
    w = RNG.normal(size=w_shape).astype(dtype)
    p = x @ w
    dp = 8 * p  # d/dp sum((2 p)^2)
    expected = [np.sum((2 * p) ** 2), dp @ w.T, np.einsum("btk,btn->kn",
                                                          x.reshape(-1, 4, 5),
                                                          dp.reshape(-1, 4, 6))]
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == "float32" else dict(rtol=1e-11, atol=1e-10)
    plan = compile_graph(graph, jit=True)
    for got, want in zip(plan(x, w), expected):
        np.testing.assert_allclose(got, want, **tol)


# ---- lead 2: vmap of windows at a start per example ----------------------------------------
def _put_reference(a, u, start, axis):
    """jax.lax.dynamic_update_slice along `axis` for a start >= 0: moved back so that the
    update fits (a start past the end writes the last window)."""
    length, count = a.shape[axis], u.shape[axis]
    s = min(int(start), length - count)
    out = a.copy()
    index = [slice(None)] * a.ndim
    index[axis] = slice(s, s + count)
    out[tuple(index)] = u
    return out


STARTS = np.array([0, 2, 4, 9], np.int64)  # the last two clamped to the last window


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("count", [0, 1, 3])  # 0: an empty update
def test_vmapped_update_at_a_start_per_example(count, axis, dtype):
    a = RNG.normal(size=(4, 5, 3)).astype(dtype)
    u_shape = [4, 5, 3]
    u_shape[axis + 1] = count
    u = RNG.normal(size=u_shape).astype(dtype)

    def put(a, u, s):
        return gc.dynamic_update_slice(a * 2.0, u, s, axis=axis)
    expected = np.stack([_put_reference(a[b] * 2, u[b], STARTS[b], axis) for b in range(4)])
    loop = np.stack([np.asarray(gc.compile(put)(a[b], u[b], STARTS[b])) for b in range(4)])
    np.testing.assert_array_equal(loop, expected)
    np.testing.assert_array_equal(np.asarray(gc.vmap(put)(a, u, STARTS)), expected)
    np.testing.assert_array_equal(np.asarray(gc.compile(gc.vmap(put))(a, u, STARTS)), expected)
    # one operand or one update for every example
    np.testing.assert_array_equal(
        np.asarray(gc.compile(gc.vmap(put, in_axes=(None, 0, 0)))(a[0], u, STARTS)),
        np.stack([_put_reference(a[0] * 2, u[b], STARTS[b], axis) for b in range(4)]))
    np.testing.assert_array_equal(
        np.asarray(gc.compile(gc.vmap(put, in_axes=(0, None, 0)))(a, u[0], STARTS)),
        np.stack([_put_reference(a[b] * 2, u[0], STARTS[b], axis) for b in range(4)]))
    # per-example gradients: d/da sum(w * put) is 2w outside each example's window, d/du
    # is w inside it
    w = RNG.normal(size=a.shape).astype(dtype)
    grads = gc.compile(gc.vmap(gc.grad(lambda a, u, s, w: gc.sum(put(a, u, s) * w),
                                       argnums=(0, 1))))(a, u, STARTS, w)
    inside = np.stack([_put_reference(np.zeros_like(a[b]), np.ones_like(u[b]), STARTS[b], axis)
                       for b in range(4)]).astype(bool)
    np.testing.assert_allclose(np.asarray(grads[0]), np.where(inside, 0, 2 * w), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grads[1]).ravel(), w[inside], rtol=1e-6)


@pytest.mark.parametrize("length, size", [(0, 0), (4, 0), (4, 2)])
def test_vmapped_window_at_a_start_per_example(length, size):
    a = RNG.normal(size=(4, 2, length))

    def window(a, s):
        return gc.dynamic_slice(a, s, size, axis=1)
    expected = np.stack([a[b][:, min(int(STARTS[b]), length - size):][:, :size]
                         for b in range(4)])
    np.testing.assert_array_equal(np.asarray(gc.vmap(window)(a, STARTS)), expected)
    np.testing.assert_array_equal(np.asarray(gc.compile(gc.vmap(window))(a, STARTS)), expected)


def test_vmapped_take_from_empty_tables():
    tables, idx = np.zeros((3, 0, 2)), np.zeros((3, 0), np.int64)
    out = gc.compile(gc.vmap(gc.take))(tables, idx)
    assert np.asarray(out).shape == (3, 0, 2)
