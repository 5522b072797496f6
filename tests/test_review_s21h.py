"""Hostile review of gc.random (s21h): each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

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
    assert_one_line_error(call, message, "test_review_s21h.py")


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


@pytest.mark.parametrize("call, message", [
    # key(2**64) was key(0), and key(-2**63 - 1) was key(2**63 - 1)
    (lambda: R.key(2**64), "the seed 18446744073709551616 does not fit in 64 bits"),
    (lambda: R.key(-2**63 - 1), "does not fit in 64 bits"),
    # fold_in(key, 2**32) was fold_in(key, 0); 2**64 was a bare OverflowError
    (lambda: R.fold_in(KEY, 2**32), "data 4294967296 does not fit in 32 bits"),
    (lambda: R.fold_in(KEY, 2**64), "does not fit in 32 bits"),
    (lambda: R.fold_in(KEY, -2**31 - 1), "does not fit in 32 bits"),
])
def test_seeds_and_data_that_would_wrap_onto_another_key_are_refused(call, message):
    assert_one_line_error(call, message, "test_review_s21h.py")


def test_the_widest_seeds_and_data_still_make_keys():
    np.testing.assert_array_equal(R.key(2**64 - 1), [2**32 - 1, 2**32 - 1])
    np.testing.assert_array_equal(R.key(-2**63), [2**31, 0])
    np.testing.assert_array_equal(R.key(-1), R.key(2**64 - 1))  # two's complement, as JAX
    np.testing.assert_array_equal(R.fold_in(KEY, -1), R.fold_in(KEY, 2**32 - 1))
    assert not np.array_equal(R.fold_in(KEY, 2**31), R.fold_in(KEY, 0))


def test_a_zero_d_integer_array_of_any_kind_is_a_concrete_seed_as_its_scalar_is():
    # np.array(5, np.uint64) was refused ("the seed must be an integer") while np.uint64(5)
    # was accepted
    for dtype in (np.uint64, np.uint32, np.int8, np.int16):
        np.testing.assert_array_equal(R.key(np.array(5, dtype)), R.key(5))
        np.testing.assert_array_equal(R.fold_in(KEY, np.array(5, dtype)), R.fold_in(KEY, 5))
    np.testing.assert_array_equal(R.key(np.array(2**63 + 1, np.uint64)), [2**31, 1])
    assert arr(R.permutation(KEY, np.array(4, np.uint8))).shape == (4,)


def test_draws_of_different_sizes_from_one_key_are_unrelated_as_in_jax():
    # numpy's streams are prefixes of each other: split(key, 3) began with split(key, 2),
    # normal(key, (2, 3)) was normal(key, (6,)) reshaped, uniform(key, (3,)) was
    # uniform(key, (5,))[:3]
    two, three = arr(R.split(KEY, 2)), arr(R.split(KEY, 3))
    assert not {tuple(k) for k in two} & {tuple(k) for k in three}
    assert not np.isin(arr(R.normal(KEY, (2, 3))), arr(R.normal(KEY, (6,)))).any()
    assert not np.isin(arr(R.uniform(KEY, (3,))), arr(R.uniform(KEY, (5,)))).any()
    assert not np.isin(arr(R.randint(KEY, (4,), 0, 2**40)), arr(R.randint(KEY, (5,), 0, 2**40))).any()
    # the same size still replays, eagerly, compiled and per key under vmap
    np.testing.assert_array_equal(arr(R.split(KEY, 3)), three)
    f = gc.compile(lambda k: (R.split(k, 3), R.normal(k, (2, 3))))
    np.testing.assert_array_equal(f(KEY)[0], three)
    np.testing.assert_array_equal(f(KEY)[1], arr(R.normal(KEY, (2, 3))))
    keys = arr(R.split(KEY, 4))
    np.testing.assert_array_equal(arr(gc.vmap(lambda k: R.permutation(k, 7))(keys)),
                                  [arr(R.permutation(k, 7)) for k in keys])


@pytest.mark.parametrize("fn, message", [
    # was "x must be an integer or an array with at least one axis", for an integer size
    (lambda k, x: R.permutation(k, x.shape[0]),
     "n is the symbolic dimension n; a permutation needs a concrete size"),
    (lambda k, x: R.permutation(k, x), "axis 0 has the symbolic size n"),
])
def test_a_permutation_of_a_symbolic_size_says_so(fn, message):
    f = gc.compile(fn, polymorphic_shapes=(None, ("n", "_")))
    with pytest.raises(gc.GraphcError) as info:
        f(KEY, np.zeros((3, 2), np.float32))
    problem, where = str(info.value).splitlines()
    assert message in problem and where.strip().startswith("at tests/test_review_s21h.py:")
    # a concrete axis of the same array still shuffles, for every n
    g = gc.compile(lambda k, x: R.permutation(k, x, axis=1), polymorphic_shapes=(None, ("n", "_")))
    for n in (2, 3):
        x = np.arange(2.0 * n).reshape(n, 2)
        np.testing.assert_array_equal(g(KEY, x), arr(R.permutation(KEY, x, axis=1)))


def test_a_ragged_list_as_a_key_is_one_error_line():
    # was numpy's bare ValueError "setting an array element with a sequence"
    with pytest.raises(gc.GraphcError) as info:
        R.normal([1, [2, 3]], (2,))
    problem, where = str(info.value).splitlines()
    assert "gc.random.normal: a key is an integer array of shape (2,)" in problem
    assert "ragged list [1, [2, 3]]" in problem
    assert where.strip().startswith("at tests/test_review_s21h.py:")
    np.testing.assert_array_equal(R.normal([0, 7], (2,)), R.normal(R.key(7), (2,)))
