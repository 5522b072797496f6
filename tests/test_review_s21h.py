"""Hostile review of gc.random (s21h): each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc

R = gc.random
KEY = R.key(0)


def arr(x):
    return np.asarray(x.data if isinstance(x, gc.Tensor) else x)


@pytest.mark.parametrize("call, message", [
    # p of 6 drawn with shape () gave 6 copies of one uniform: perfectly correlated flips
    (lambda: R.bernoulli(KEY, np.full(6, 0.5, np.float32), ()),
     "p of shape (6,) does not broadcast to the shape () drawn"),
    (lambda: R.bernoulli(KEY, np.full(6, 0.5, np.float32), (1,)), "does not broadcast"),
    (lambda: R.uniform(KEY, (), minval=np.zeros(4, np.float32)),
     "minval of shape (4,) does not broadcast to the shape () drawn"),
    (lambda: R.bernoulli(KEY, np.array([0, 1])), "p must be floating point, got int64"),
    (lambda: R.uniform(KEY, (2,), minval="a"), "minval must be a number or a floating-point"),
])
def test_parameters_that_would_widen_or_break_a_draw_are_refused(call, message):
    with pytest.raises(gc.GraphcError) as info:
        call()
    problem, where = str(info.value).splitlines()
    assert message in problem and where.strip().startswith("at tests/test_review_s21h.py:")


def test_parameters_that_broadcast_to_the_shape_still_draw_independently():
    p = np.array([0.0, 1.0, 0.5], np.float32)
    b = arr(R.bernoulli(KEY, p, (2000, 3)))
    assert b.shape == (2000, 3) and not b[:, 0].any() and b[:, 1].all()
    assert 0.45 < b[:, 2].mean() < 0.55
    # float64 bounds of a float32 draw are taken in float32, as JAX converts them
    lo, hi = np.zeros(3), np.full(3, 2.0)
    u = arr(R.uniform(KEY, (3,), "float32", lo, hi))
    assert u.dtype == np.float32
    np.testing.assert_array_equal(u, arr(R.uniform(KEY, (3,))) * np.float32(2.0))
    g = gc.grad(lambda h: gc.sum(R.uniform(KEY, (3,), "float32", lo, h)))(hi)
    np.testing.assert_allclose(arr(g), arr(R.uniform(KEY, (3,))), rtol=1e-7)
