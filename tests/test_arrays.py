"""numpy's array functions (ir/ops/arrays.py): values against numpy and gradients against
PyTorch in float64, eagerly and compiled, beyond the op cases of tests/opcases.py (which give
each one finite-difference gradient, Hessian-vector, vmap and half-precision checks)."""
import re
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error, one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4, 5))


def both(fn, *args):
    """fn's value eagerly and compiled: equal, but for the last bits of a product or a sum
    (eager and compiled plans may call different BLAS routines: gemv against gemm)."""
    eager = np.asarray(fn(*args))
    compiled = np.asarray(gc.compile(fn)(*args))
    if eager.dtype.kind == "f":
        np.testing.assert_allclose(compiled, eager, rtol=1e-13, atol=0)
    else:
        np.testing.assert_array_equal(compiled, eager)
    return eager


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric", "wrap"])
@pytest.mark.parametrize("width", [2, (1, 3), ((0, 0), (3, 1), (2, 4))])
def test_pad_matches_numpy(mode, width):
    got = both(lambda x: gc.pad(x, width, mode=mode), X)
    np.testing.assert_array_equal(got, np.pad(X, width, mode=mode))


def test_pad_constant_value_and_torch_gradient():
    got = both(lambda x: gc.pad(x, ((0, 0), (1, 2), (0, 3)), constant_values=-1.5), X)
    np.testing.assert_array_equal(got, np.pad(X, ((0, 0), (1, 2), (0, 3)),
                                              constant_values=-1.5))
    w = RNG.normal(size=(3, 4 + 4, 5 + 4))
    g = gc.grad(lambda x: gc.sum(gc.pad(x, ((0, 0), (2, 2), (2, 2)), mode="reflect") * w))(X)
    t = torch.tensor(X, requires_grad=True)
    (torch.nn.functional.pad(t, (2, 2, 2, 2), mode="reflect") * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_flip_roll_tile_repeat_moveaxis_match_numpy():
    np.testing.assert_array_equal(both(lambda x: gc.flip(x, (0, 2)), X), np.flip(X, (0, 2)))
    np.testing.assert_array_equal(both(gc.flip, X), np.flip(X))
    np.testing.assert_array_equal(both(lambda x: gc.roll(x, (1, -7), (1, 2)), X),
                                  np.roll(X, (1, -7), (1, 2)))
    np.testing.assert_array_equal(both(lambda x: gc.roll(x, 13), X), np.roll(X, 13))
    np.testing.assert_array_equal(both(lambda x: gc.tile(x, (2, 1, 1, 3)), X),
                                  np.tile(X, (2, 1, 1, 3)))
    np.testing.assert_array_equal(both(lambda x: gc.repeat(x, 3, -1), X), np.repeat(X, 3, -1))
    np.testing.assert_array_equal(both(lambda x: gc.moveaxis(x, (0, 1), (-1, 0)), X),
                                  np.moveaxis(X, (0, 1), (-1, 0)))


def test_prod_and_cumprod_gradients_at_zeros_match_torch():
    x = np.array([[0.0, 2.0, 3.0, -1.0], [1.0, 0.0, 0.0, 4.0], [1.5, -2.0, 0.5, 3.0]])
    np.testing.assert_allclose(both(lambda a: gc.prod(a, 1), x), np.prod(x, 1), rtol=1e-15)
    np.testing.assert_allclose(both(lambda a: gc.cumprod(a, 1), x), np.cumprod(x, 1),
                               rtol=1e-15)
    w = RNG.normal(size=(3, 4))
    for ours, theirs in [(lambda a: gc.prod(a, 1) * w[:, 0], lambda t: t.prod(1) * tw[:, 0]),
                         (lambda a: gc.cumprod(a, 1) * w, lambda t: t.cumprod(1) * tw)]:
        tw = torch.tensor(w)
        t = torch.tensor(x, requires_grad=True)
        theirs(t).sum().backward()
        g = gc.grad(lambda a: gc.sum(ours(a)))(x)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_sort_argsort_top_k_ties_and_nan_match_numpy_and_torch():
    x = np.array([[3.0, 1.0, np.nan, 3.0, 2.0, 1.0, 3.0]])
    np.testing.assert_array_equal(both(lambda a: gc.argsort(a), x),
                                  np.argsort(x, kind="stable"))
    np.testing.assert_array_equal(both(gc.sort, x), np.sort(x))
    values, idx = both(lambda a: gc.top_k(a, 4)[0], x), both(lambda a: gc.top_k(a, 4)[1], x)
    # NaN as the largest, as torch's; among equal values the first first, as jax.lax.top_k
    # (torch's order among ties is its own)
    np.testing.assert_array_equal(values, torch.topk(torch.tensor(x), 4).values.numpy())
    np.testing.assert_array_equal(idx, [[2, 0, 3, 6]])
    ints = RNG.integers(0, 3, (4, 9))
    np.testing.assert_array_equal(both(lambda a: gc.argsort(a, 0), ints),
                                  np.argsort(ints, 0, kind="stable"))
    np.testing.assert_array_equal(both(lambda a: gc.sort(a, descending=True), ints),
                                  -np.sort(-ints))


@pytest.mark.parametrize("axis", [0, -1, 3])
def test_sort_of_a_0d_value_takes_only_axis_none_as_numpys(axis):
    """gc.sort of a 0-d value took any axis (3 too) and gave the value back, eagerly and
    compiled; numpy's refuses every axis of it (-1, the default, too) and sorts it with
    axis=None as a 1-element array. So does gc.sort now."""
    z = np.array(1.5, np.float32)
    np.testing.assert_array_equal(both(lambda a: gc.sort(a, None), z), np.sort(z, None))
    assert np.asarray(gc.sort(z, None)).shape == np.sort(z, None).shape == (1,)
    with pytest.raises(np.exceptions.AxisError):
        np.sort(z, axis)
    for fn in (gc.sort, gc.compile(gc.sort, static_argnums=(1,))):
        with pytest.raises(gc.GraphcError) as info:
            fn(z, axis)
        assert str(info.value).splitlines()[0] == (
            f"sort: axis {axis} is out of range for a 0-d value; axis=None sorts it as a "
            "1-element array, as numpy's")
    with pytest.raises(gc.GraphcError, match="sort: axis must be an int, got 1.5"):
        gc.sort(z, 1.5)


def test_argsort_of_a_0d_value_is_numpys_one_element_order():
    """gc.argsort of a 0-d value gave a 0-d 0, eagerly and compiled, where numpy's argsort
    sorts it as 1 element, [0] of shape (1,), for axis -1 (the default), 0 and None, and
    refuses other axes (AxisError). So does gc.argsort now, descending too."""
    for z in (np.array(1.5, np.float32), np.float32(3), np.array(2, np.int32), 2.5):
        for axis in (-1, 0, None):
            for descending in (False, True):
                got = both(lambda a: gc.argsort(a, axis, descending=descending), z)
                want = np.argsort(z, axis)
                assert got.shape == want.shape == (1,) and got.dtype == np.int64
                np.testing.assert_array_equal(got, want)
        for axis in (1, -2, 3):
            with pytest.raises(np.exceptions.AxisError):
                np.argsort(z, axis)
            for fn in (gc.argsort, gc.compile(gc.argsort, static_argnums=(1,))):
                with pytest.raises(gc.GraphcError) as info:
                    fn(z, axis)
                assert str(info.value).splitlines()[0] == (
                    f"argsort: axis {axis} is out of range for a 0-d value, which argsort "
                    "sorts as 1 element (axis -1, 0 or None), as numpy's")
    with pytest.raises(gc.GraphcError, match="argsort: axis must be an int, got 0.5"):
        gc.argsort(np.float32(3), 0.5)


def test_sort_and_top_k_gradients_match_torch():
    w = RNG.normal(size=(3, 4, 2))
    g = gc.grad(lambda a: gc.sum(gc.top_k(a, 2)[0] * w))(X)
    t = torch.tensor(X, requires_grad=True)
    (torch.topk(t, 2).values * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(g, t.grad.numpy())
    w = RNG.normal(size=X.shape)
    g = gc.grad(lambda a: gc.sum(gc.sort(a, 1) * w))(X)
    t = torch.tensor(X, requires_grad=True)
    (torch.sort(t, 1).values * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(g, t.grad.numpy())


def test_top_k_under_vmap_is_per_example():
    values, idx = gc.vmap(lambda r: gc.top_k(r, 3))(X[0])
    order = np.argsort(-X[0], 1, kind="stable")[:, :3]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(values, np.take_along_axis(X[0], order, 1))


def test_take_along_axis_negative_and_broadcast_indices_and_gradient():
    idx = RNG.integers(-5, 5, (1, 4, 3))  # broadcasts over axis 0
    got = both(lambda a, i: gc.take_along_axis(a, i, -1), X, idx)
    np.testing.assert_array_equal(got, np.take_along_axis(X, idx, -1))
    w = RNG.normal(size=(3, 4, 3))
    g = gc.grad(lambda a: gc.sum(gc.take_along_axis(a, idx, -1) * w))(X)
    t = torch.tensor(X, requires_grad=True)
    (torch.gather(t, -1, torch.tensor(idx % 5).expand(3, 4, 3)) * torch.tensor(w)).sum() \
        .backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-15)


@pytest.mark.parametrize("key", [
    (slice(None), [2, 0, 2]),                      # x[:, idx]: the array's axes in its place
    (Ellipsis, np.array([[4, -1], [0, 0]])),       # x[..., idx] of a 2-d idx
    (np.array([2, -3, 2]), slice(1, None)),        # x[idx, 1:]
    (1, np.array([3, 3])),                         # an int beside it: together, in place
    (slice(None), 2, np.array([[0], [4]])),
    (np.array([1, 1]), slice(None), 0),            # parted by a slice: the array's axes first
    (0, None, np.array([0, 1])),                   # parted by None: first too
    (None, slice(None, None, -1), np.array([], np.int64)),
    (slice(None), np.array(3)),                    # a 0-d array is numpy's int
])
def test_one_index_array_among_basic_indices_is_numpys(key):
    """x[:, idx], x[0, :, idx] were refused ("with other indices is not supported"); they
    are numpy's advanced indexing now, the array's axes where numpy puts them (where the
    advanced indices stand when they are together, first when a slice or None parts them:
    x[0, :, idx] of (3, 4, 5) is (len(idx), 4), where torch's is (4, len(idx))), eagerly,
    compiled with the index as an argument, and the gradient adds up repeated picks."""
    got = np.asarray(gc.tensor(X)[key])
    np.testing.assert_array_equal(got, X[key])
    at = next(j for j, k in enumerate(key) if isinstance(k, (list, np.ndarray)))
    traced = gc.compile(lambda a, i: a[key[:at] + (i,) + key[at + 1:]])(X, np.asarray(key[at]))
    np.testing.assert_array_equal(traced, X[key])
    w = RNG.normal(size=X[key].shape)
    expected = np.zeros_like(X)
    np.add.at(expected, key, w)
    np.testing.assert_allclose(gc.grad(lambda a: gc.sum(a[key] * w))(X), expected, rtol=1e-15)
    np.testing.assert_allclose(gc.compile(gc.grad(lambda a: gc.sum(a[key] * w)))(X), expected,
                               rtol=1e-15)


def test_one_index_array_among_basic_indices_under_vmap_and_its_errors():
    idx = np.array([[0, 4], [3, 3], [-1, 1]])
    per_example = gc.vmap(lambda a, i: a[:, i])(X, idx)
    np.testing.assert_array_equal(per_example, np.stack([X[b][:, idx[b]] for b in range(3)]))
    np.testing.assert_array_equal(gc.vmap(lambda a: a[None, 1, idx[0]])(X), X[:, None, 1, idx[0]])
    # out of range: named on the axis of x it indexes (the gather runs on it moved first)
    assert_one_line_error(lambda: gc.tensor(X)[:, [0, 4]],
                          "index 4 is out of bounds for axis 1 of size 4", "test_arrays.py")
    assert_one_line_error(lambda: gc.tensor(X)[..., np.array(-6)],
                          "index -6 is out of bounds for axis 2 of size 5", "test_arrays.py")
    assert_one_line_error(lambda: gc.tensor(X)[[0, 1], :, [0, 1, 2]],
                          "shape mismatch: indexing arrays could not be broadcast together "
                          "with shapes (2,) (3,)", "test_arrays.py")
    assert_one_line_error(lambda: gc.compile(lambda a, m: a[:, m])(X, X[0, :, 0] > 0),
                          "boolean mask that is traced has a data-dependent shape",
                          "test_arrays.py")


I, J = np.array([0, 2, -1]), np.array([[1], [-4]])


def _assert_numpys_indexing(key):
    """X[key] eagerly, compiled with key's index arrays as arguments, and its gradient
    against np.add.at (repeats add up); returns (ats, indexed, arrays, w, expected): the
    key's positions of arrays, key as a function of those arrays, the arrays, the gradient's
    weights and the gradient."""
    ats = [n for n, k in enumerate(key) if isinstance(k, (list, np.ndarray))]

    def indexed(a, *arrays):
        parts = list(key)
        for n, array in zip(ats, arrays):
            parts[n] = array
        return a[tuple(parts)]

    arrays = [np.asarray(key[n]) for n in ats]
    np.testing.assert_array_equal(gc.tensor(X)[key], X[key])
    np.testing.assert_array_equal(gc.compile(indexed)(X, *arrays), X[key])
    w = RNG.normal(size=X[key].shape)
    expected = np.zeros_like(X)
    np.add.at(expected, key, w)
    np.testing.assert_allclose(gc.grad(lambda a: gc.sum(a[key] * w))(X), expected, rtol=1e-15)
    return ats, indexed, arrays, w, expected


@pytest.mark.parametrize("key", [(I, J), (slice(None), I, J), (I, slice(None), [4, -5, 0]),
                                 (I, 1, [4, -5, 0]), (None, I, J), (I, J, [4, 0, 0]),
                                 (Ellipsis, I, [4, -5, 0]), (I, slice(1, 4), J), (1, I, J),
                                 (I, None, slice(None), [4, -5, 0]), (I, J[..., None])])
def test_several_index_arrays_are_numpys_pairing(key):
    """x[i, j], x[:, i, j], x[i, :, j] were refused ('several index arrays in one index');
    they are numpy's advanced indexing: the arrays broadcast together, their axes in their
    place when the advanced indices stand together, first when a slice or None parts them;
    eagerly, compiled with the arrays as arguments, gradients against np.add.at (repeats
    add up), and per example under gc.vmap."""
    ats, indexed, arrays, w, expected = _assert_numpys_indexing(key)
    np.testing.assert_allclose(gc.compile(gc.grad(lambda a, *ix: gc.sum(indexed(a, *ix) * w)))(
        X, *arrays), expected, rtol=1e-15)
    stacked = np.stack([X, X[::-1], 2 * X])
    flipped = [array[..., ::-1].copy() for array in arrays]
    per_example = [np.stack([a] * 3) for a in arrays[:-1]] + [np.stack(
        [arrays[-1], flipped[-1], arrays[-1]])]
    got = gc.vmap(indexed)(stacked, *per_example)
    want = np.stack([indexed(stacked[b], *[a[b] for a in per_example]) for b in range(3)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want[1], stacked[1][tuple(
        per_example[ats.index(n)][1] if n in ats else k for n, k in enumerate(key))])


@pytest.mark.parametrize("key", [(None, I, 1, Ellipsis, [4, -5, 0]), (None, 2, Ellipsis, I, J),
                                 (slice(None), 1, Ellipsis, J), (None, I, Ellipsis, 1, 0)])
def test_an_ellipsis_of_no_axis_between_advanced_indices_parts_them_as_numpys(key):
    """Review r3 (session 51): numpy counts a '...' between advanced indices as parting them
    even where it stands for no axis, so the broadcast axes go first (x[None, i, 1, ..., j]
    of x (3, 4, 5) is (3, 1)); graphc expanded it to nothing and kept them in place, (1, 3),
    with one array beside ints as with several."""
    _assert_numpys_indexing(key)
    stacked = np.stack([X, 2 * X])
    np.testing.assert_array_equal(gc.vmap(lambda a: a[key])(stacked),
                                  np.stack([X[key], 2 * X[key]]))


def test_a_traced_index_out_of_range_names_the_users_axis_and_its_value():
    """Compiled, x[:, k] out of range named the gather's table, x's axis moved first
    ('take(f64[4,3,5], i64[2]) ... out of range for the table's rows'), and x[k] gave no
    value; under gc.vmap the message showed an int64-min placeholder ('index
    -9223372036854775808 ... axis 0 with size 15'); several arrays flattened into one
    index would read a neighbouring row. Each names the value and the user's axis now."""
    bad = np.array([0, 9])
    calls = {"axis 1 of size 4": lambda: gc.compile(lambda a, k: a[:, k])(X, bad),
             "axis 0 of size 3": lambda: gc.compile(lambda a, k: a[k])(X, bad),
             "axis 2 of size 5": lambda: gc.compile(lambda a, k: a[[0, 1], 0, k])(X, bad),
             "axis 1 of size 5": lambda: gc.vmap(lambda a, k: a[:, k])(X, np.stack([bad] * 3)),
             "axis 0 of size 4": lambda: gc.vmap(lambda a, k: a[k])(X, np.stack([bad] * 3))}
    for axis, call in calls.items():
        assert_one_line_error(call, f"index 9 is out of bounds for {axis}", "test_arrays.py")
    assert_one_line_error(lambda: gc.vmap(lambda a, k: gc.take(a, k))(X, np.stack([-bad] * 3)),
                          "index -9 is out of bounds for axis 0 of size 4", "test_arrays.py")


M = X[:, :, 0] > 0  # (3, 4): a mask of x's first two axes


@pytest.mark.parametrize("key", [M, M[:, 0], list(M[:, 0]), X > 0, (slice(None), M[0]),
                                 (M[:, 0], 1), (Ellipsis, X[0, 0] > 0), (M[:, 0], I[:2] + 1),
                                 (M[:, 0], slice(None), X[0, 0] > 0), np.zeros(3, bool),
                                 (None, M)])
def test_a_boolean_mask_indexes_as_numpys_with_torchs_gradient(key):
    """x[mask] was refused everywhere ('boolean-mask indexing has a data-dependent shape');
    numpy reads it as x[mask.nonzero()], a mask of d axes standing for d axes of x (a list
    of bools too). Its values known, so is the shape: eagerly (a bool tensor as the mask
    too), and a numpy mask in a trace (a constant gather, as in JAX). Values against numpy,
    the gradient (scattered back to the True places) against torch's."""
    expected = X[key]
    w = RNG.normal(size=expected.shape)
    t = torch.tensor(X, requires_grad=True)
    keys = key if isinstance(key, tuple) else (key,)
    (t[tuple(torch.tensor(k) if isinstance(k, (list, np.ndarray)) else k for k in keys)]
     * torch.tensor(w)).sum().backward()
    x = gc.tensor(X, requires_grad=True)
    np.testing.assert_array_equal(x[key].numpy(), expected)
    gc.sum(x[key] * w).backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    as_tensors = tuple(gc.tensor(k) if isinstance(k, np.ndarray) else k for k in keys)
    np.testing.assert_array_equal(gc.tensor(X)[as_tensors].numpy(), expected)
    np.testing.assert_array_equal(gc.compile(lambda a: a[key])(X), expected)
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(a[key] * w))(X), t.grad.numpy())


def test_a_mask_of_unknown_values_or_sizes_is_refused_in_one_line():
    """A traced mask, or an eager one that a trace reads at each call, would give the
    result a data-dependent shape: refused, naming gc.where; a mask of other sizes than the
    axes it indexes is numpy's IndexError, in one line."""
    mask = M[:, 0]
    for call in (lambda: gc.compile(lambda a, m: a[m])(X, mask),
                 lambda: gc.grad(lambda a, m: gc.sum(a[m]))(X, mask),
                 lambda: gc.vmap(lambda a, m: a[m])(X, M),
                 lambda: gc.compile(lambda a: a[gc.tensor(mask)])(X)):
        assert_one_line_error(call, "has a data-dependent shape, which a traced graph cannot "
                              "have; keep the shape with gc.where(mask, x, 0)", "test_arrays.py")
    assert_one_line_error(lambda: gc.tensor(X)[:, M[0, :3]],
                          "boolean index did not match indexed array along axis 1; size of "
                          "axis is 4 but size of corresponding boolean axis is 3",
                          "test_arrays.py")
    assert_one_line_error(lambda: gc.tensor(X)[[gc.tensor(True), gc.tensor(False)]],
                          "a boolean mask given as a list of tensors", "test_arrays.py")
    with pytest.raises(IndexError, match="boolean index did not match"):
        X[:, M[0, :3]]


def test_review_r4_a_0d_bool_tensor_and_two_ellipses_beside_a_mask_in_numpys_words():
    """Review r4 of 5d5d58d: a 0-d bool tensor index (eager or traced), numpy's 0-d mask,
    read 'a boolean mask given as a list of tensors' (no list was given), where a 0-d bool
    array gets the bool-index line; a mask beside two '...' was checked against an axis the
    first '...' had not placed ('boolean index did not match ... along axis 2') where numpy
    refuses the second '...'."""
    for call in (lambda: gc.tensor(X)[gc.tensor(np.array(True))],
                 lambda: gc.tensor(X)[gc.tensor(np.array(False)), 0],
                 lambda: gc.compile(lambda a, m: a[m])(X, np.array(True))):
        assert_one_line_error(call, "a bool index (True/False) is a 0-d mask to numpy, a new "
                              "axis of size 1 or 0", "test_arrays.py")
    with pytest.raises(IndexError, match="single ellipsis"):
        X[..., M[0], ...]
    for call in (lambda: gc.tensor(X)[..., M[0], ...],
                 lambda: gc.compile(lambda a: a[..., M[0], ...])(X)):
        assert_one_line_error(call, "an index can only have a single ellipsis",
                              "test_arrays.py")


def test_assigning_through_a_boolean_mask_is_numpys_eagerly():
    """x[mask] = v was refused; eagerly it is numpy's (v broadcast to x[mask]'s shape, cast
    to x's dtype) where the tape records neither x nor v. The tape keeps the values it read
    (a gradient taken before the assignment is unchanged); x or v requiring grad in grad
    mode is refused (no in-place op on the tape), as is any assignment in a trace."""
    for key, value in [(M, 0.5), (M, np.arange(M.sum() * 5.0).reshape(-1, 5)),
                       ((slice(None), M[0]), gc.tensor(np.arange(5.0))), (X > 0, -X[X > 0])]:
        x, expected = gc.tensor(X), X.copy()
        x[key] = value
        expected[key] = np.asarray(value)
        np.testing.assert_array_equal(x.numpy(), expected)
    ints = gc.tensor(np.arange(4))
    ints[[True, False, True, False]] = 7.9
    np.testing.assert_array_equal(ints.numpy(), [7, 1, 7, 3])  # (numpy's cast: truncated)
    w = gc.tensor(X, requires_grad=True)
    x = gc.tensor(X)
    y = gc.sum(w * x)
    x[M] = 0.0
    y.backward()
    np.testing.assert_array_equal(w.grad, X)  # (x's values when w * x was taken)
    with gc.no_grad():
        w[M] = 0.0
    assert w.requires_grad and np.all(w.numpy()[M] == 0)
    for call in (lambda: w.__setitem__(M, 1.0), lambda: x.__setitem__(M, w[M])):
        assert_one_line_error(call, "x[mask] = v where x or v requires grad: the tape cannot "
                              "record an assignment in place", "test_arrays.py")
    assert_one_line_error(lambda: x.__setitem__(M[:2], 1.0), "x[mask] = v: boolean index did "
                          "not match", "test_arrays.py")

    def assigns(a):
        a[M] = 0.0
        return a
    for call in (lambda: gc.compile(assigns)(X), lambda: gc.compile(lambda a: assigns(x))(X),
                 lambda: gc.tensor(X).__setitem__(0, 1.0)):
        assert_one_line_error(call, "item assignment x[...] = v is not supported",
                              "test_arrays.py")


def test_a_run_time_index_error_begins_with_numpys_words_at_the_indexing_line():
    """Session 51: a traced index out of range began 'check_index(i64[2]) failed while
    running: ...', an op the user never called; it is numpy's line now (a plan's with why it
    came at run time), at the line of the user's indexing, compiled and under gc.vmap."""
    def pick(a, k):
        return a[:, k]
    line = pick.__code__.co_firstlineno + 1
    bad = np.array([0, 9])
    for call, size, suffix in [
            (lambda: gc.compile(pick)(X, bad), 4,
             " (an index array's value, checked as the plan ran)"),
            (lambda: gc.vmap(pick)(X, np.stack([bad] * 3)), 5, "")]:
        with pytest.raises(gc.GraphcError) as info:
            call()
        assert str(info.value).splitlines() == [
            f"index 9 is out of bounds for axis 1 of size {size}{suffix}",
            f"  at tests/test_arrays.py:{line}"]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.uint32,
                                   np.uint64])
def test_an_index_array_of_any_integer_dtype_is_numpys(dtype):
    """numpy indexes with every integer dtype; graphc refused int8, uint8, int16, uint16 and
    uint64 arrays ('dtype int8 is not supported') in x[idx], x[:, idx] and gc.take: they are
    widened to int64 (uint64 past int64's largest refused in one line)."""
    idx = np.array([[2, 0], [1, 2]], dtype)
    for key in ((idx,), (slice(None), idx), (0, slice(None), idx)):
        np.testing.assert_array_equal(gc.tensor(X)[key], X[key])
        np.testing.assert_array_equal(gc.compile(lambda a: a[key])(X), X[key])
        expected = np.zeros_like(X)
        np.add.at(expected, key, 1.0)
        np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(a[key]))(X), expected)
    np.testing.assert_array_equal(gc.take(X, idx), np.take(X, idx, axis=0))
    if dtype == np.uint64:
        assert_one_line_error(lambda: gc.tensor(X)[np.array([2**63 + 1], dtype)],
                              "index 9223372036854775809 (uint64) does not fit in int64",
                              "test_arrays.py")


def test_a_tuple_inside_the_index_is_an_index_array_and_a_none_in_a_list_is_refused():
    """x[:, (0, 1)] was refused ('unsupported index (0, 1) of type tuple') where numpy takes
    the inner tuple as an index array; x[[0, None]] said 'does not fit in int64' where numpy
    says which indices are valid; a list of traced values given to segment_sum or take was
    'a symbolic value cannot be turned into a numpy array'."""
    for key in ((slice(None), (0, 3, 3)), (1, ((0, 1), (2, 3))), ((2, 0),)):
        np.testing.assert_array_equal(gc.tensor(X)[key], X[key])
        np.testing.assert_array_equal(gc.compile(lambda a: a[key])(X), X[key])
    for bad in ([0, None], [[1], [None]]):
        assert_one_line_error(lambda: gc.tensor(X)[bad], f"{bad!r}: only integers, slices (:), "
                              "ellipsis (...), None and integer or boolean arrays are valid "
                              "indices", "test_arrays.py")
    for call in (lambda: gc.compile(lambda a, s: gc.segment_sum(a, [s, 0, s], 2))(X, 1),
                 lambda: gc.compile(lambda a, s: gc.take(a, [s, 0]))(X, 1)):
        assert_one_line_error(call, "an index list holding traced values: stack it into one "
                              "index array (gc.stack([k, 2]))", "test_arrays.py")


def test_a_ragged_index_list_is_one_line_at_the_users_line():
    """Review r12 of b5d9b62: x[:, [[0, 1], [2]]] (now taken beside other indices), x[ragged]
    and Embedding(ragged) were numpy's ValueError ("setting an array element with a
    sequence ... inhomogeneous shape"), naming no line of the user's."""
    ragged = [[0, 1], [2]]
    emb = gc.nn.Embedding(4, 2, padding_idx=0)
    for call in (lambda: gc.tensor(X)[:, ragged], lambda: gc.tensor(X)[ragged],
                 lambda: gc.compile(lambda a: a[0, ragged])(X), lambda: emb(ragged)):
        assert_one_line_error(call, "an index list must be rectangular (an array's rows of "
                              "one length), got [[0, 1], [2]]", "test_arrays.py")


def test_review_m4_a_ragged_list_to_segment_sum_or_take_along_axis_is_one_line():
    """Review m4 of 79bdda8: segment_sum reads its ids with np.asarray before scatter_add's
    _index_operand, and take_along_axis asked the list's dtype first, so a ragged list was
    still numpy's ValueError ('inhomogeneous shape') there, naming no line of the user's."""
    ragged = [[0, 1], [2]]
    for call in (lambda: gc.segment_sum(X, ragged, 2),
                 lambda: gc.compile(lambda a: gc.segment_sum(a, ragged, 2))(X)):
        assert_one_line_error(call, "an index list must be rectangular (an array's rows of "
                              "one length), got [[0, 1], [2]]", "test_arrays.py")
    for indices in (ragged, [[0], [1]]):  # (a list is no indices array, ragged or not)
        assert_one_line_error(lambda: gc.take_along_axis(X, indices, 1),
                              "take_along_axis: cannot use a list as a tensor operand",
                              "test_arrays.py")
    np.testing.assert_array_equal(gc.segment_sum(X, [0, 1, 1], 2),
                                  np.stack([X[0], X[1] + X[2]]))


def test_norms_match_numpy_and_the_euclidean_gradient_at_zero_is_torchs():
    for ord in [None, 1, 2, 3, 0.5, np.inf, -np.inf, 0]:
        np.testing.assert_allclose(both(lambda a: gc.norm(a, ord, axis=1), X),
                                   np.linalg.norm(X, ord, axis=1), rtol=1e-14)
    np.testing.assert_allclose(both(lambda a: gc.norm(a[0], "fro", (0, 1)), X),
                               np.linalg.norm(X[0], "fro"), rtol=1e-14)
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    t = torch.tensor(x, requires_grad=True)
    torch.linalg.vector_norm(t, dim=1).sum().backward()
    g = gc.grad(lambda a: gc.sum(gc.norm(a, axis=1)))(x)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(g, [[0.0, 0.0], [0.6, 0.8]], rtol=1e-15)


def test_negative_orders_are_torchs_vector_norm_with_a_zero_element_giving_0():
    """ord=-1, -2, -0.5 were refused; torch's sum(|x|**p)**(1/p) is 0 (gradient 0) for a
    vector holding a zero, NaN for one holding a NaN."""
    x = np.array([[1.0, -2.0, 4.0], [0.0, 3.0, -1.0], [np.nan, 1.0, 2.0], [np.inf, 2.0, 5.0]])
    for ord in (-1, -2, -0.5):
        for axis in (0, 1):
            t = torch.tensor(x, requires_grad=True)
            want = torch.linalg.vector_norm(t, ord, dim=axis)
            (want * torch.arange(1.0, want.numel() + 1, dtype=torch.float64)).sum().backward()
            got = both(lambda a: gc.norm(a, ord, axis=axis), x)
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-14)
            g = gc.grad(lambda a: gc.sum(gc.norm(a, ord, axis=axis)
                                         * np.arange(1.0, want.numel() + 1)))(x)
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14)
    assert np.asarray(gc.norm(x[1], -2)) == 0.0
    with pytest.raises(gc.GraphcError, match="ord=-1 of an empty vector"):
        gc.norm(np.zeros((2, 0)), -1, axis=1)


def test_dot_tensordot_outer_diag_meshgrid_linspace_nan_to_num_segment_sum():
    y = RNG.normal(size=(2, 5, 6))
    np.testing.assert_allclose(both(gc.dot, X, y), np.dot(X, y), rtol=1e-13)
    np.testing.assert_allclose(both(lambda a, b: gc.tensordot(a, b, ((2,), (1,))), X, y),
                               np.tensordot(X, y, ((2,), (1,))), rtol=1e-13)
    np.testing.assert_array_equal(both(gc.outer, X[0], X[1, 0]), np.outer(X[0], X[1, 0]))
    for k in (-3, 0, 2, 6):
        np.testing.assert_array_equal(both(lambda a: gc.diag(a, k), X[0]), np.diag(X[0], k))
        np.testing.assert_array_equal(both(lambda a: gc.diag(a, k), X[0, 0]),
                                      np.diag(X[0, 0], k))
    for got, want in zip(gc.meshgrid(X[0, 0], X[0, 1, :2], X[1, 0, :3]),
                         np.meshgrid(X[0, 0], X[0, 1, :2], X[1, 0, :3])):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gc.linspace(2, -3, 11, dtype="float64"),
                                  np.linspace(2, -3, 11))
    v = np.array([np.nan, -np.inf, np.inf, 2.0], np.float32)
    np.testing.assert_array_equal(both(gc.nan_to_num, v), np.nan_to_num(v))
    ids = np.array([2, 0, 2, 1])
    expected = np.zeros((3, 5))
    np.add.at(expected, ids, X[0])
    np.testing.assert_array_equal(both(lambda a: gc.segment_sum(a, ids, 3), X[0]), expected)


def test_bad_arguments_give_one_line_naming_the_users_line():
    f = "test_arrays.py"
    assert_one_line_error(lambda: gc.pad(X, 1, mode="mirror"), "pad: unsupported mode", f)
    assert_one_line_error(lambda: gc.pad(X, -1), "pad_width must be non-negative", f)
    assert_one_line_error(lambda: gc.pad(X, ((1, 1), (2, 2))), "does not fit a 3-d value", f)
    assert_one_line_error(lambda: gc.pad(X[:, :0], 1, mode="edge"), "needs an element", f)
    assert_one_line_error(lambda: gc.repeat(X, [1, 2]), "`repeats` must be an int", f)
    assert_one_line_error(lambda: gc.moveaxis(X, (0, 1), 2), "2 source axes but 1", f)
    assert_one_line_error(lambda: gc.top_k(X, 6), "k must be an int from 0 to", f)
    assert_one_line_error(lambda: gc.take_along_axis(X, np.zeros((3, 4)), 1),
                          "indices must be integers", f)
    assert_one_line_error(lambda: gc.take_along_axis(X, np.zeros((3, 4), int), 1),
                          "indices have 2 dimensions, x has 3", f)
    assert_one_line_error(lambda: gc.tensordot(X, X, 4), "tensordot: axes=4", f)
    assert_one_line_error(lambda: gc.norm(X, "nuc", (0, 1)), "only the Euclidean (None) and 'fro'", f)
    assert_one_line_error(lambda: gc.norm(X, "max"), "unsupported ord 'max'", f)
    assert_one_line_error(lambda: gc.diag(X), "needs a 1-d or 2-d value", f)


def test_descending_and_reverse_must_be_true_or_false():
    """descending='no' and reverse='no' went through bool(): True, so gc.sort(x,
    descending='no') sorted from the largest and gc.cumsum(x, 0, reverse='no') summed from
    the end, with no word; torch and JAX take a bool there. numpy's bool is one."""
    f = "test_arrays.py"
    for call, name in [(lambda v: gc.sort(X, descending=v), "sort: descending"),
                       (lambda v: gc.argsort(X, descending=v), "argsort: descending"),
                       (lambda v: gc.cumsum(X, 0, reverse=v), "cumsum: reverse")]:
        for bad in ("no", 1, None):
            assert_one_line_error(lambda: call(bad), f"{name} must be True or False, got "
                                  f"{bad!r}", f)
    np.testing.assert_array_equal(gc.sort(X, descending=np.bool_(True)), -np.sort(-X))
    np.testing.assert_array_equal(gc.cumsum(X, 0, reverse=np.False_), np.cumsum(X, 0))


def _torch(fn, *arrays, **kw):
    return fn(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays), **kw).numpy()


def _exclusive_cumsum(a, reverse):
    return np.cumsum(a[::-1])[::-1] - a if reverse else np.cumsum(a) - a


# every public True/False setting a sample of graphc's functions takes, with its reference:
# (the call of x and the setting, "function: setting", the reference for a real bool)
FLAGS = {
    "sum": (lambda x, v: gc.sum(x, 1, keepdims=v), "sum: keepdims",
            lambda v: np.sum(X, 1, keepdims=v)),
    "mean": (lambda x, v: gc.mean(x, dim=1, keepdim=v), "mean: keepdim",
             lambda v: _torch(torch.mean, X, dim=1, keepdim=v)),
    "max": (lambda x, v: gc.max(x, 1, keepdims=v), "max: keepdims",
            lambda v: np.max(X, 1, keepdims=v)),
    "argmin": (lambda x, v: gc.argmin(x, 1, keepdims=v), "argmin: keepdims",
               lambda v: np.argmin(X, 1, keepdims=v)),
    "prod": (lambda x, v: gc.prod(x, 1, keepdims=v), "prod: keepdims",
             lambda v: np.prod(X, 1, keepdims=v)),
    "all": (lambda x, v: gc.all(x > -1, 1, keepdims=v), "all: keepdims",
            lambda v: np.all(X > -1, 1, keepdims=v)),
    "var": (lambda x, v: gc.var(x, dim=1, unbiased=v), "var: unbiased",
            lambda v: _torch(torch.var, X, dim=1, unbiased=v)),
    "std": (lambda x, v: gc.std(x, 1, keepdims=v), "std: keepdims",
            lambda v: np.std(X, 1, keepdims=v)),
    "logsumexp": (lambda x, v: gc.logsumexp(x, 1, keepdims=v), "logsumexp: keepdims",
                  lambda v: _torch(torch.logsumexp, X, dim=1, keepdim=v)),
    "norm": (lambda x, v: gc.norm(x, None, 1, keepdims=v), "norm: keepdims",
             lambda v: np.linalg.norm(X, None, 1, keepdims=v)),
    "scan": (lambda x, v: gc.scan(lambda c, a: (c + a, c), 0.0, x[:, 0, 0], reverse=v)[1],
             "scan: reverse", lambda v: _exclusive_cumsum(X[:, 0, 0], v)),
    "pairwise_distance": (lambda x, v: gc.pairwise_distance(x, x[::-1], keepdim=v),
                          "pairwise_distance: keepdim",
                          lambda v: _torch(torch.nn.functional.pairwise_distance, X, X[::-1],
                                           keepdim=v)),
    "interpolate": (lambda x, v: gc.interpolate(x, size=7, mode="linear", align_corners=v),
                    "interpolate: align_corners",
                    lambda v: _torch(torch.nn.functional.interpolate, X, size=7,
                                     mode="linear", align_corners=v)),
    "linspace": (lambda x, v: gc.linspace(0.0, 1.0, 5, endpoint=v, dtype="float64") + x[0, 0, 0],
                 "linspace: endpoint", lambda v: np.linspace(0.0, 1.0, 5, endpoint=v) + X[0, 0, 0]),
    "dropout": (lambda x, v: gc.dropout(x, 0.5, 0, training=v), "dropout: training",
                lambda v: None if v else X),  # (training=True: a random mask)
}


@pytest.mark.parametrize("name", FLAGS)
def test_a_true_or_false_setting_takes_only_a_bool(name):
    """keepdims='no', reverse='no', align_corners='no' (and 1) went through bool(): True,
    so gc.sum(x, 0, keepdims='no') kept the axis and gc.scan(..., reverse='no') ran from the
    end, with no word; torch and JAX take a bool there. Each is refused in one line naming
    the function and the setting, eagerly and compiled; numpy's bool is taken, and a real
    bool's result is the reference's."""
    call, flag, reference = FLAGS[name]
    f = "test_arrays.py"
    for bad in ("no", 1):
        assert_one_line_error(lambda: call(X, bad), f"{flag} must be True or False, got "
                              f"{bad!r}", f)
        assert_one_line_error(lambda: gc.compile(lambda x: call(x, bad))(X),
                              f"{flag} must be True or False", f)
    for v in (True, False, np.True_, np.False_):
        expected = reference(bool(v))
        if expected is None:
            continue
        for fn in (lambda x: call(x, v), gc.compile(lambda x: call(x, v))):
            np.testing.assert_allclose(np.asarray(fn(X)), expected, rtol=1e-12, atol=1e-12)


# every op README's "Numerics" list says needs a concrete size along its axis (prod and
# top_k were missing from it); each refuses a symbolic one in one line naming itself
NEEDS_A_CONCRETE_AXIS = {
    "flip": lambda x: gc.flip(x, 0), "roll": lambda x: gc.roll(x, 1, 0),
    "prod": lambda x: gc.prod(x, 0), "cumprod": lambda x: gc.cumprod(x, 0),
    "pad": lambda x: gc.pad(x, ((1, 1), (0, 0)), mode="edge"),
    "diag": lambda x: gc.diag(x[:, 0]), "sort": lambda x: gc.sort(x, 0),
    "top_k": lambda x: gc.top_k(gc.swapaxes(x, 0, 1), 2),
    "take_along_axis": lambda x: gc.take_along_axis(x, np.zeros((1, 4), np.int32), 0)}


@pytest.mark.parametrize("name", NEEDS_A_CONCRETE_AXIS)
def test_a_symbolic_axis_is_refused_where_an_index_is_built_from_it(name):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = re.search(r"- `flip`, (.*?) need a concrete size along their axis", readme, re.S)
    assert listed and f"`{name}`" in listed.group(0), f"README's list lacks {name}"
    with pytest.raises(gc.GraphcError, match=f"^{name}: needs a concrete size along the axis, "
                                             "got the symbolic batch"):
        gc.trace(NEEDS_A_CONCRETE_AXIS[name], gc.spec(("batch", 4)))


def test_a_symbolic_batch_is_fine_along_other_axes():
    # along a concrete axis the symbolic batch is fine
    graph = gc.trace(lambda x: gc.sort(gc.flip(x, 1), 1), gc.spec(("batch", 4)))
    assert graph.outputs[0].shape[1] == 4


def test_eager_results_are_arrays_of_their_own_as_numpys():
    """A result that is the input (a flip of a length-1 axis, repeats of 1) or a view of it
    (a broadcast tile or meshgrid) would let a write through one change the other."""
    a = np.ones((1, 3))
    results = [gc.flip(a, 0), gc.prod(a, 0, keepdims=True), gc.roll(a, 0, 1), gc.pad(a, 0),
               gc.cumprod(a[:, :1], 1), gc.tile(a, 1), gc.tile(a, (2, 1, 1)),
               gc.repeat(a, 1, 0), gc.sort(a, 0), gc.nan_to_num(a), *gc.meshgrid(a[0], a[0])]
    for r in results:
        r = np.asarray(r)
        assert not np.shares_memory(r, a) and r.flags.writeable


def test_review_r3_a_float_index_and_a_huge_python_int_are_refused_in_numpys_terms():
    """x[[0, 1.5]] and x[[0.0]] were 'getitem: take(f64[3,4,5], f64[2]): indices must be
    integers' (an op the user never called) where numpy says which indices are valid; a
    float array index (numpy's 'arrays used as indices must be of integer (or boolean) type')
    the same; x[[2**63]] called the Python int a '(uint64)'."""
    def line(call):
        return one_line_problem(call, "test_arrays.py")

    valid = ": only integers, slices (:), ellipsis (...), None and integer or boolean arrays " \
            "are valid indices"
    for key in ([0, 1.5], [0.0], (slice(None), [[0], [2.5]])):
        bad = key if isinstance(key, list) else key[1]
        with pytest.raises(IndexError, match="only integers, slices"):
            X[key]  # numpy refuses it too
        assert line(lambda: gc.tensor(X)[key]) == f"{bad!r}{valid}"
        assert line(lambda: gc.compile(lambda a: a[key])(X)) == f"{bad!r}{valid}"
    arrays = "arrays used as indices must be of integer (or boolean) type, got float64"
    with pytest.raises(IndexError, match=re.escape(arrays[:-14])):
        X[np.array([0.0])]
    assert line(lambda: gc.tensor(X)[np.array([0.0])]) == arrays
    assert line(lambda: gc.compile(lambda a, i: a[:, i])(X, np.array([0.0]))) == arrays
    assert line(lambda: gc.tensor(X)[[2 ** 63]]) == \
        "an index in [9223372036854775808] does not fit in int64, graphc's index type"
    # take keeps its own words: it was the function called
    assert line(lambda: gc.take(X, [0.5])) == \
        "take(f64[3,4,5], f64[1]): indices must be integers, got float64"


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "uint32", "uint64"])
def test_review_r3_take_along_axis_takes_numpys_other_integer_dtypes(dtype):
    """take_along_axis refused an index array of uint8 ('dtype uint8 is not supported')
    where numpy takes it (and getitem widened it already): widened as getitem's."""
    idx = np.array([[[2, 0, 1, 1, 0]], [[0, 2, 2, 1, 0]]]).astype(dtype).reshape(2, 1, 5)
    want = np.take_along_axis(X, idx, 0)
    np.testing.assert_array_equal(gc.take_along_axis(gc.tensor(X), idx, 0), want)
    np.testing.assert_array_equal(gc.compile(lambda a: gc.take_along_axis(a, idx, 0))(X), want)
    grad = gc.grad(lambda a: (gc.take_along_axis(a, idx, 0) * want).sum())(X)
    expect = np.zeros_like(X)  # each pick's weight added into the element it picked
    rows = np.broadcast_to(idx.astype(np.int64), want.shape)
    np.add.at(expect, (rows, np.arange(4)[None, :, None], np.arange(5)), want)
    np.testing.assert_allclose(grad, expect)


def test_a_uint64_index_past_int64_is_refused_in_the_called_functions_name():
    """take_along_axis's (and segment_sum's) refusal of a uint64 index past int64's largest
    lacked the 'take_along_axis:' prefix that its other refusals have; x[...]'s keeps
    numpy's unprefixed words."""
    huge = np.array([[[2**63, 0, 0, 0, 0]]], np.uint64)
    fits = "index 9223372036854775808 (uint64) does not fit in int64, graphc's index type"
    for call, who in [(lambda: gc.take_along_axis(gc.tensor(X), huge, 0), "take_along_axis: "),
                      (lambda: gc.compile(lambda a: gc.take_along_axis(a, huge, 0))(X),
                       "take_along_axis: "),
                      (lambda: gc.segment_sum(X, huge[0, 0, :3], 4), "segment_sum: "),
                      (lambda: gc.tensor(X)[huge[0, 0]], "")]:
        assert one_line_problem(call, "test_arrays.py") == who + fits


def test_review_r13_a_float_scalar_index_and_a_list_of_huge_ints_in_the_lists_words():
    """x[1.5] was 'arrays used as indices must be of integer (or boolean) type' (no array was
    given; numpy's line is the list's) and x[0, 1.5] 'unsupported index 1.5 of type float';
    x[[1, 2**63]] (numpy's float64) '[1, 9223372036854775808]: only integers ... are valid
    indices', every element an integer, where x[[2**63]] does not fit in int64."""
    valid = ": only integers, slices (:), ellipsis (...), None and integer or boolean arrays " \
            "are valid indices"
    huge = " does not fit in int64, graphc's index type"
    for key, line in ((1.5, f"1.5{valid}"), (np.float32(1), f"np.float32(1.0){valid}"),
                      ((0, 1.5), f"1.5{valid}"), ((slice(None), 0.5), f"0.5{valid}"),
                      (([0, 1], 0.5), f"0.5{valid}"),
                      ([1, 2 ** 63], f"an index in [1, 9223372036854775808]{huge}"),
                      ((slice(None), [[0], [2 ** 63]]),
                       f"an index in [[0], [9223372036854775808]]{huge}")):
        with pytest.raises(IndexError):
            X[key]  # numpy refuses each
        for call in (lambda: gc.tensor(X)[key], lambda: gc.compile(lambda a: a[key])(X)):
            with pytest.raises(gc.GraphcError) as info:
                call()
            assert str(info.value).splitlines()[0] == line, key
    np.testing.assert_array_equal(gc.tensor(X)[[]], X[[]])  # (an empty list: no float index)
