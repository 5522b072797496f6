"""A cond or switch branch returning a Python number (weakly typed, as in JAX) takes the
dtype of the other branch's result: `cond(p, lambda x: 0.0, lambda x: x[0], x)` over float64
data was refused as f32[] against f64[] (and `0` as i64[] against i32[])."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X64 = np.array([5.0, 6.0])
A32 = np.array([5, 6], np.int32)


def _check(got, want, dtype):
    got = np.asarray(got)
    assert got.dtype == dtype, got.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("pred", [True, False])
def test_python_float_branch_takes_float64(pred):
    f = gc.compile(lambda p, x: gc.cond(p, lambda x: 0.0, lambda x: x[0], x))
    _check(f(np.bool_(pred), X64), 0.0 if pred else 5.0, np.float64)
    g = gc.compile(lambda p, x: gc.cond(p, lambda x: x[1], lambda x: 2.5, x))
    _check(g(np.bool_(pred), X64.astype(np.float16)), 6.0 if pred else 2.5, np.float16)


def test_python_int_branch_takes_int32_and_floats():
    f = gc.compile(lambda p, x: gc.cond(p, lambda x: 0, lambda x: x[0], x))
    _check(f(np.bool_(True), A32), 0, np.int32)
    _check(f(np.bool_(False), A32), 5, np.int32)
    _check(f(np.bool_(True), X64.astype(np.float16)), 0, np.float16)


def test_float_number_beside_int_branch_stays_refused():
    f = gc.compile(lambda p, x: gc.cond(p, lambda x: 1.5, lambda x: x[0], x))
    with pytest.raises(GraphcError, match=r"returns \(f32\[\]\) but false_fun <lambda> "
                                          r"returns \(i32\[\]\)"):
        f(np.bool_(True), A32)


def test_both_weak_stay_weak():
    # an int and a float number: a weak float, which then takes the data's float32
    f = gc.compile(lambda p, x: gc.cond(p, lambda x: 1, lambda x: 2.5, x) + x)
    _check(f(np.bool_(True), X64.astype(np.float32)), [6.0, 7.0], np.float32)
    _check(f(np.bool_(False), X64), [7.5, 8.5], np.float64)


def test_under_vmap_and_switch_and_grad():
    p = np.array([True, False])
    body = gc.vmap(lambda p, x: gc.cond(p, lambda x: 0.0, lambda x: x, x))
    _check(gc.compile(body)(p, X64), [0.0, 6.0], np.float64)
    _check(body(p, X64), [0.0, 6.0], np.float64)  # eagerly, a batched predicate
    unbatched = gc.vmap(lambda x, p: gc.cond(p, lambda x: 0.0, lambda x: x, x), in_axes=(0, None))
    _check(gc.compile(unbatched)(X64, np.bool_(True)), [0.0, 0.0], np.float64)
    s = gc.compile(lambda i, x: gc.switch(i, [lambda x: 0.0, lambda x: x[1], lambda x: 7], x))
    for i, want in enumerate([0.0, 6.0, 7.0]):
        _check(s(np.int32(i), X64), want, np.float64)
    loss = gc.compile(gc.grad(lambda x, p: gc.cond(p, lambda x: 0.0, lambda x: gc.sum(x * x), x)))
    np.testing.assert_allclose(loss(X64, np.bool_(False)), 2 * X64)
    np.testing.assert_allclose(loss(X64, np.bool_(True)), 0 * X64)
