"""Review of numpy's array functions (ir/ops/arrays.py): wrong results and crashes found by a
differential fuzzer against numpy, each with the value numpy gives."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

F = "test_review_s22a.py"
M = np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])


@pytest.mark.parametrize("ord", [1, 2, np.inf, -np.inf, 3])
def test_norm_of_a_matrix_with_a_vector_ord_is_refused_not_the_flattened_vector_norm(ord):
    """numpy.linalg.norm(M, 1) is the largest column sum (9), torch's too; graphc gave the
    sum of every |element| (21)."""
    assert_one_line_error(lambda: gc.norm(M, ord), f"norm: ord={ord!r} over several axes", F)
    assert_one_line_error(lambda: gc.norm(M[None], ord), "over several axes", F)
    # Euclidean/Frobenius over every element is still numpy's
    np.testing.assert_allclose(np.asarray(gc.norm(M)), np.linalg.norm(M), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(gc.norm(M, "fro")), np.linalg.norm(M, "fro"),
                               rtol=1e-15)
    np.testing.assert_allclose(np.asarray(gc.norm(M.reshape(-1), ord)),
                               np.linalg.norm(M.reshape(-1), ord), rtol=1e-15)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_linspace_of_an_integer_dtype_rounds_down_as_numpys(dtype):
    """numpy floors (-3.33 -> -4); graphc truncated towards zero (-3)."""
    for start, stop, num in [(-5, 0, 4), (-7, 3, 6), (2, -9, 5)]:
        got = np.asarray(gc.linspace(start, stop, num, dtype=dtype))
        np.testing.assert_array_equal(got, np.linspace(start, stop, num, dtype=dtype))
        assert got.dtype == dtype


@pytest.mark.parametrize("bad", [3, -4, 7])
def test_take_along_axis_refuses_an_index_out_of_range_not_reads_the_next_row(bad):
    """Index 3 of a row of 3 read the next row's first element (the gather is of the
    flattened x); numpy raises IndexError."""
    idx = np.array([[bad], [0]])
    with pytest.raises(IndexError):
        np.take_along_axis(M, idx, 1)
    assert_one_line_error(lambda: gc.take_along_axis(M, idx, 1),
                          f"take_along_axis: index {bad} is out of range for axis 1 of size 3",
                          F)
    # indices known only when the gather runs: refused there in numpy's words for the
    # user's axis, compiled and under vmap (the flat gather's refusal named a table of 6
    # elements, and under vmap an index of -2**62 that the user never gave)
    f = gc.compile(lambda x, i: gc.take_along_axis(x, i, 1))
    numpys = f"index {bad} is out of bounds for axis 1 of size 3"
    assert_one_line_error(lambda: f(M, idx), numpys, F)
    per_example = gc.vmap(lambda x, i: gc.take_along_axis(x, i, 1), in_axes=(None, 0))
    assert_one_line_error(lambda: per_example(M, np.stack([np.zeros_like(idx), idx])),
                          numpys, F)
    # in range, negative ones included, the values are numpy's
    ok = np.array([[-3, 2, -1], [1, 0, -2]])
    np.testing.assert_array_equal(np.asarray(f(M, ok)), np.take_along_axis(M, ok, 1))
    np.testing.assert_array_equal(np.asarray(gc.take_along_axis(M, ok, 1)),
                                  np.take_along_axis(M, ok, 1))


def test_empty_picks_sort_an_empty_axis_and_top_k_of_0_give_empty_results():
    """All three failed with "cannot reshape 0 elements into shape (-1, 0)"."""
    x = np.random.default_rng(0).normal(size=(3, 4))
    empty = np.zeros((3, 0))
    for fn, want in [
            (lambda a: gc.take_along_axis(a, np.zeros((3, 0), np.int64), 1), empty),
            (lambda a: gc.top_k(a, 0)[0], empty),
            (lambda a: gc.sort(a[:, :0], 1), empty),
            (lambda a: gc.sort(a[:, :0], 0, descending=True), empty)]:
        for got in (fn(x), gc.compile(fn)(x), gc.vmap(fn)(np.stack([x, x]))[0]):
            got = np.asarray(got)
            assert got.shape == want.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(gc.top_k(a, 0)[0]) + gc.sum(a))(x),
                                  np.ones_like(x))


@pytest.mark.parametrize("x, value", [(np.arange(3, dtype=np.int32), 2.5),
                                      (np.arange(3, dtype=np.int64), -1.7),
                                      (np.array([True, False]), 1),
                                      (np.array([True, False]), 0.0),
                                      (np.arange(3.0, dtype=np.float16), 1e5),
                                      (np.arange(3.0, dtype=np.float32), -0.0)])
def test_pad_constant_values_take_xs_dtype_as_numpys(x, value):
    """An int x with a float value failed in `where` ("float scalar 2.5 meets an integer
    tensor"), a bool x with 1 in `gt`; -0.0 padded +0.0. numpy casts the value to x's dtype."""
    want = np.pad(x, (1, 2), constant_values=value)
    for got in (gc.pad(x, (1, 2), constant_values=value),
                gc.compile(lambda a: gc.pad(a, (1, 2), constant_values=value))(x)):
        got = np.asarray(got)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got.astype(np.float64)),
                                      np.signbit(want.astype(np.float64)))


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "wrap", "edge"])
def test_pad_of_an_axis_of_one_element_is_numpys(mode):
    """mode="reflect" along an axis of one element was refused ("needs two elements");
    numpy repeats the element."""
    x = np.random.default_rng(1).normal(size=(3, 1))
    want = np.pad(x, ((1, 0), (2, 3)), mode=mode)
    fn = lambda a: gc.pad(a, ((1, 0), (2, 3)), mode=mode)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(fn(x)), want)
    np.testing.assert_array_equal(np.asarray(gc.compile(fn)(x)), want)
    # the gradient adds every copy back into the element it came from
    w = np.random.default_rng(2).normal(size=want.shape)
    g = gc.grad(lambda a: gc.sum(fn(a) * w))(x)
    source = np.pad(np.arange(x.size).reshape(x.shape), ((1, 0), (2, 3)), mode=mode)
    np.testing.assert_allclose(np.asarray(g).ravel(),
                               np.bincount(source.ravel(), w.ravel(), x.size), rtol=1e-12)


def test_a_ragged_pad_width_is_one_line():
    """np.asarray(((1, 2), (3,))) raised numpy's ValueError ('inhomogeneous shape')."""
    assert_one_line_error(lambda: gc.pad(M, ((1, 2), (3,))), "pad: pad_width must hold ints", F)


def test_top_k_of_a_0d_value_is_one_line():
    """It raised IndexError ('list assignment index out of range') from inside graphc."""
    assert_one_line_error(lambda: gc.top_k(np.float32(3.0), 0), "top_k: needs a value with at "
                          "least one axis", F)


def test_the_euclidean_norm_of_values_with_a_nan_is_nan_not_0():
    """The sum of squares was tested with > 0 to keep sqrt's slope at 0 out of the gradient,
    so a NaN sum gave a norm of 0 (a NaN hidden from, say, clipping by norm)."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    x = np.array([[np.nan, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    for fn, want in [(lambda a: gc.norm(a, axis=1), np.linalg.norm(x, axis=1)),
                     (lambda a: gc.norm(a, 2, -1, True), np.linalg.norm(x, 2, -1, True)),
                     (gc.norm, np.linalg.norm(x))]:
        np.testing.assert_array_equal(np.asarray(fn(x)), want)
        np.testing.assert_array_equal(np.asarray(gc.compile(fn)(x)), want)
    g = np.asarray(gc.grad(lambda a: gc.sum(gc.norm(a, axis=1)))(x))
    t = torch.tensor(x, requires_grad=True)
    torch.linalg.vector_norm(t, dim=1).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-15)  # NaN row, 0 row, (.6, .8, 0)


@pytest.mark.parametrize("ord", [0.5, 1.5, 3])
def test_p_norm_gradients_at_zeros_are_torchs_not_nan(ord):
    """sum(|x|**p)**(1/p) gave a NaN gradient at a zero vector (the outer root's infinite
    slope times 0) and, for p < 1, at a zero element; PyTorch's is 0 there."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    x = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, -2.0], [np.nan, 1.0, 0.5]])
    want = np.linalg.norm(x, ord, axis=1)
    np.testing.assert_allclose(np.asarray(gc.norm(x, ord, 1)), want, rtol=1e-15)
    g = np.asarray(gc.grad(lambda a: gc.sum(gc.norm(a, ord, 1)))(x))
    t = torch.tensor(x, requires_grad=True)
    torch.linalg.vector_norm(t, ord, dim=1).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13)
    h = np.asarray(gc.hessian(lambda a: gc.norm(a, ord))(x[1]))
    assert np.isfinite(h).all()


def test_take_along_axis_of_axis_none_gathers_from_the_flattened_x():
    """numpy's axis=None; graphc raised TypeError ('<=' between int and NoneType)."""
    idx = np.array([5, 0, -1, 3])
    np.testing.assert_array_equal(np.asarray(gc.take_along_axis(M, idx, None)),
                                  np.take_along_axis(M, idx, None))
    assert_one_line_error(lambda: gc.take_along_axis(M, idx[None], None),
                          "indices have 2 dimensions, x has 1", F)


def test_a_repeated_axis_is_refused_as_numpys():
    """flip(x, (0, 0)) flipped once (numpy: 'repeated axis'); prod and norm took the axis
    once too."""
    x = np.ones((2, 3))
    assert_one_line_error(lambda: gc.flip(x, (0, 0)), "flip: axis (0, 0) repeats an axis", F)
    assert_one_line_error(lambda: gc.prod(x, (1, -1)), "prod: axis (1, -1) repeats", F)
    assert_one_line_error(lambda: gc.norm(x, axis=[0, 0]), "norm: axis [0, 0] repeats", F)
    np.testing.assert_array_equal(np.asarray(gc.flip(M, (1, 0))), np.flip(M, (1, 0)))
    np.testing.assert_array_equal(np.asarray(gc.prod(M, (-1, 0))), np.prod(M, (-1, 0)))


def test_tile_refuses_non_integer_reps():
    """tile(x, 1.5) tiled once (int(1.5)); numpy raises TypeError."""
    assert_one_line_error(lambda: gc.tile(M, 1.5), "tile: reps must be an int or a sequence "
                          "of ints, got 1.5", F)
    assert_one_line_error(lambda: gc.tile(M, (2, 0.5)), "tile: reps must be", F)
    for reps in (2, (2, 1, 3), np.array([1, 2]), []):
        np.testing.assert_array_equal(np.asarray(gc.tile(M, reps)), np.tile(M, reps))


@pytest.mark.parametrize("bad", [-1, -3, 3])
def test_segment_sum_refuses_a_negative_id_not_adds_it_to_the_last_segment(bad):
    """Id -1 added its row to the last segment (scatter_add counts from the end); JAX drops
    it and the docstring promised an error for ids out of range."""
    data = np.arange(6.0).reshape(3, 2)
    ids = np.array([0, bad, 2])
    assert_one_line_error(lambda: gc.segment_sum(data, ids, 3),
                          f"segment_sum: segment id {bad} is outside [0, 3)", F)
    # ids known when the plan runs: refused there with the id given (under vmap, -1 was
    # refused as 'index 3', the row it was sent to, and compiled with no value at all)
    f = gc.compile(lambda d, i: gc.segment_sum(d, i, 3))
    at_run = f"segment_sum: segment id {bad} is outside [0, 3)"  # (session 54: named)
    assert_one_line_error(lambda: f(data, ids), at_run, F)
    per_example = gc.vmap(lambda i: gc.segment_sum(data, i, 3))
    assert_one_line_error(lambda: per_example(np.stack([np.zeros_like(ids), ids])), at_run, F)
    ok = np.array([2, 0, 2])
    np.testing.assert_array_equal(np.asarray(f(data, ok)), [[2, 3], [0, 0], [4 + 0, 1 + 5]])
    g = gc.grad(lambda d: gc.sum(gc.segment_sum(d, ok, 3) * np.array([[1.0], [2], [3]])))(data)
    np.testing.assert_array_equal(np.asarray(g), [[3, 3], [1, 1], [3, 3]])


def test_fro_norm_of_one_axis_says_it_needs_two():
    """Since matrix ords over several axes are refused, ord='fro' of a vector said only
    "unsupported ord 'fro'"."""
    assert_one_line_error(lambda: gc.norm(M[0], "fro"), "norm: ord='fro' needs two axes, got 1",
                          F)
    assert_one_line_error(lambda: gc.norm(M, "nuc"), "ord='nuc' over several axes", F)


def test_sort_along_a_symbolic_axis_names_sort():
    """The refusal named take_along_axis, which the user never called."""
    with pytest.raises(gc.GraphcError, match="^sort: needs a concrete size along the axis, "
                       "got the symbolic batch"):
        gc.trace(lambda x: gc.sort(x, 0), gc.spec(("batch", 4)))


def test_nan_to_num_and_diag_refuse_non_numbers_in_one_line():
    """nan="a" raised ValueError from float(); diag's k=1.5 failed inside take ('indices
    must be integers'), naming an op the user never called."""
    assert_one_line_error(lambda: gc.nan_to_num(M, nan="a"), "nan_to_num: nan must be one "
                          "number, got 'a'", F)
    assert_one_line_error(lambda: gc.nan_to_num(M, posinf=[1.0]), "posinf must be one", F)
    assert_one_line_error(lambda: gc.diag(M, 1.5), "diag: k must be an int, got 1.5", F)
    np.testing.assert_array_equal(np.asarray(gc.diag(M, np.int64(-1))), np.diag(M, -1))
    x = np.array([np.nan, np.inf, -np.inf, 1.0])
    np.testing.assert_array_equal(np.asarray(gc.nan_to_num(x, nan=np.float32(2), posinf=3)),
                                  np.nan_to_num(x, nan=2, posinf=3))


def test_tensordot_with_a_repeated_axis_names_tensordot():
    """It failed inside transpose ('perm (1, 0, 0) is not a permutation of 2 axes')."""
    assert_one_line_error(lambda: gc.tensordot(M, M, ((0, -2), (0, 1))),
                          "tensordot: axes ((0, -2), (0, 1)) repeat an axis", F)
    # neither an int nor a pair: one line naming axes, not len()'s raw TypeError (c6a1dc1
    # left a bool to the pair branch; review r12)
    for axes in (True, 1.0, np.timedelta64(1)):
        assert_one_line_error(lambda: gc.tensordot(M, M, axes), "tensordot: axes must be an "
                              f"int or a pair of axis sequences, got {axes!r}", F)


@pytest.mark.parametrize("axes", [{0, 1}, {0: (1,), 1: (0,)}, {1: 1, 0: 0}, range(2)])
def test_tensordot_unpacks_its_axes_pair_as_numpy_does(axes):
    """A set failed raw ("'set' object is not subscriptable"), and a dict contracted by its
    values (shape (2, 2)) where numpy unpacks its keys (3, 3); numpy's `a_axes, b_axes =
    axes` reads any iterable of two, eager and compiled alike (review r1 of e9d83d5)."""
    N = np.arange(6.0).reshape(3, 2)
    want = np.tensordot(M, N, axes)
    np.testing.assert_array_equal(np.asarray(gc.tensordot(gc.tensor(M), gc.tensor(N), axes)),
                                  want)
    np.testing.assert_array_equal(gc.compile(lambda m, n: gc.tensordot(m, n, axes))(M, N),
                                  want)
    # of one or three, still the one line
    assert_one_line_error(lambda: gc.tensordot(M, N, {0, 1, 2}), "tensordot: axes must be an "
                          "int or a pair of axis sequences, got {0, 1, 2}", F)



_A3 = np.arange(24.0).reshape(2, 3, 4)
_B3 = np.arange(24.0).reshape(4, 3, 2)


@pytest.mark.parametrize("axes", [
    (np.array([1, 2]), np.array([1, 0])),      # a pair of arrays
    np.array([[1, 2], [1, 0]]),                # a (2, k) array: its rows
    (range(1, 2), range(1, 2)),                # a pair of ranges
    np.array(1),                               # a 0-d int array: the count
    ({2: "x", 0: "y"}, np.array([0, 2])),      # a dict's keys beside an array
], ids=["arrays", "2xk", "ranges", "0d-count", "dict-array"])
def test_tensordot_reads_each_half_of_its_axes_as_numpy_does(axes):
    """31927c1 unpacked the pair as numpy does, but read each half as a tuple or list only:
    an array, a range or a (2, k) array's rows were 'axis must be an int, got array([1, 2])'
    (naming no tensordot), and a 0-d array, numpy's count, 'axes must be an int or a pair',
    eager and compiled (review r7)."""
    want = np.tensordot(_A3, _B3, axes)
    np.testing.assert_array_equal(np.asarray(gc.tensordot(gc.tensor(_A3), gc.tensor(_B3),
                                                          axes)), want)
    np.testing.assert_array_equal(gc.compile(lambda a, b: gc.tensordot(a, b, axes))(_A3, _B3),
                                  want)


def test_tensordot_of_a_traced_or_malformed_axis_is_one_line_naming_it():
    """A compiled function's int axes argument said 'len() of a 0-d symbolic value', naming
    neither tensordot nor the remedy; a bad axis inside a half said 'axis must be an int'.
    grad on concrete arrays now retries with the number as it is, as for int()."""
    run = gc.compile(lambda a, b, k: gc.tensordot(a, b, k))
    assert_one_line_error(lambda: run(_A3, _B3, 1), "tensordot: axes must be known while the "
                          "graph is built (ints or axis sequences), not a traced value; the "
                          "value passed as 'k' is traced: to use a Python number or bool as "
                          "a Python value, list its position in static_argnums", F)
    np.testing.assert_array_equal(
        gc.compile(lambda a, b, k: gc.tensordot(a, b, k), static_argnums=(2,))(_A3, _B3, 1),
        np.tensordot(_A3, _B3, 1))
    np.testing.assert_array_equal(
        gc.grad(lambda a, k: gc.sum(gc.tensordot(a, _B3, k)))(_A3, 1),
        np.broadcast_to(_B3.sum(axis=(1, 2)), (2, 3, 4)))
    assert_one_line_error(lambda: gc.tensordot(_A3, _B3, (np.array([1]), ["x"])),
                          "tensordot: axis must be an int, got 'x'", F)
    assert_one_line_error(lambda: gc.tensordot(_A3, _B3, (np.array(2), 0)),  # (numpy's too)
                          "tensordot: axis must be an int, got array(2)", F)
    assert_one_line_error(lambda: gc.tensordot(_A3, _B3, np.ones((3, 3), int)),
                          "tensordot: axes must be an int or a pair of axis sequences, got "
                          "array([[1, 1, 1], [1, 1, 1], [1, 1, 1]])", F)

def test_pad_constant_of_a_bfloat16_value():
    """The value cast to x's dtype was a bfloat16 numpy scalar, which `where` refused
    ('cannot use a bfloat16 as a tensor operand')."""
    x = gc.cast(np.arange(3.0, dtype=np.float32), "bfloat16")
    got = gc.pad(x, 1, constant_values=0.3)
    assert str(np.asarray(got).dtype) == "bfloat16"
    np.testing.assert_array_equal(np.asarray(got).astype(np.float32),
                                  np.asarray(gc.cast(np.array([0.3, 0, 1, 2, 0.3], np.float32),
                                                     "bfloat16")).astype(np.float32))
