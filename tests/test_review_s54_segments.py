"""Session 54 (f4): segment_prod's speed and its gradient with zeros, the gradient of a NaN
maximum, index_fill of a float into integers, the segment / scatter / running-extreme
functions under the polymorphic compile, the traced bincount / searchsorted range errors and
the traced unique's sort, against torch 2.13 / numpy in float64."""
import time

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


# ---- 1. segment_prod: one np.multiply.at, torch's gradient --------------------------------
def test_segment_prod_is_one_scatter_not_a_doubling_scan_and_fast():
    """It was a doubling scan over the sorted rows (50 nodes for 6 elements, 0.9-2.1 s on 1e6
    eagerly, 3.2 s compiled); now one scatter_prod node (np.multiply.at)."""
    graph = gc.trace(lambda a, i: gc.segment_prod(a, i, 4), np.ones(6), np.zeros(6, int))
    assert sorted(n.op for n in graph.nodes if n.op not in ("input", "check_index")) == \
        ["scatter_prod"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.999, 1.001, 10**6) * np.where(rng.random(10**6) < 0.5, -1, 1)
    ids = rng.integers(0, 1000, 10**6)
    start = time.perf_counter()
    got = gc.segment_prod(x, ids, 1000)
    elapsed = time.perf_counter() - start
    want = torch.ones(1000, dtype=torch.float64).scatter_reduce(
        0, torch.tensor(ids), torch.tensor(x), "prod").numpy()
    np.testing.assert_array_equal(got, want)  # (the same products in the same order)
    assert elapsed < 0.4, elapsed  # (0.02 s here; the scan took 0.9 s)


def _torch_segment_prod(a, ids, n):
    index = torch.tensor(ids).reshape((-1,) + (1,) * (a.ndim - 1)).expand(a.shape)
    return torch.ones((n,) + tuple(a.shape[1:]), dtype=a.dtype).scatter_reduce(
        0, index, a, "prod", include_self=False)


def test_segment_prod_gradient_with_zeros_matches_torch_and_its_hessian_is_exact():
    """Segments with no zero, one, two and three zeros, and negatives: the gradient is
    torch's scatter_reduce 'prod' one exactly; the Hessian-vector product is the exact one
    (the product of the others but two), also with two zeros (torch refuses that)."""
    data = np.array([[2.0, -3.0], [0.0, 5.0], [-0.5, 0.0], [0.0, 0.0], [4.0, -1.5],
                     [0.0, 7.0], [1.5, 2.0], [-2.5, 0.0]])
    ids = np.array([0, 0, 1, 1, 2, 1, 0, 3])
    n = 4
    w = np.array([[1.0, -2.0], [0.5, 3.0], [-1.25, 0.75], [2.0, -1.0]])
    grad = gc.grad(lambda a: gc.sum(gc.segment_prod(a, ids, n) * w))
    t = torch.tensor(data, requires_grad=True)
    (_torch_segment_prod(t, ids, n) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(grad(data), t.grad.numpy())
    compiled = gc.compile(grad)(data)
    np.testing.assert_array_equal(compiled, t.grad.numpy())
    v = np.linspace(-1, 1, data.size).reshape(data.shape)
    hvp = gc.grad(lambda a: gc.sum(grad(a) * v))(data)
    hessian = np.zeros(data.shape * 2)
    for c in range(2):
        for i in range(len(ids)):
            for k in range(len(ids)):
                if i != k and ids[i] == ids[k]:
                    rest = [data[j, c] for j in range(len(ids))
                            if ids[j] == ids[i] and j not in (i, k)]
                    hessian[i, c, k, c] = w[ids[i], c] * np.prod(rest)
    np.testing.assert_allclose(hvp, np.einsum("icjd,jd->ic", hessian, v), rtol=1e-14,
                               atol=1e-15)
    # scatter_reduce 'prod' with zeros in x and src, and vmap of the primitive
    x, src = np.array([0.0, 2.0, -1.0]), np.array([3.0, 0.0, 0.0, 4.0])
    index = np.array([0, 1, 1, 2])
    gx, gs = gc.grad(lambda a, b: gc.sum(gc.scatter_reduce(a, 0, index, b, "prod") *
                                         np.array([1.0, 2.0, 3.0])), argnums=(0, 1))(x, src)
    tx, ts = (torch.tensor(a, requires_grad=True) for a in (x, src))
    (tx.scatter_reduce(0, torch.tensor(index), ts, "prod") *
     torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    np.testing.assert_array_equal(gs, ts.grad.numpy())
    batch = np.stack([data[:, 0], data[:, 1]])
    np.testing.assert_array_equal(gc.vmap(lambda a: gc.segment_prod(a, ids, n))(batch),
                                  gc.segment_prod(data, ids, n).T)


# ---- 2. the gradient where a maximum is NaN -----------------------------------------------
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_a_nan_maximum_gives_its_whole_row_nan_gradients_as_torch(reduce, include_self):
    """torch's scatter_reduce amax / amin: every element reduced into a NaN result gets NaN
    (0 * g / 0 ties), whatever the cotangent (0 here for row 2); graphc gave them 0."""
    x = np.array([0.5, 7.0, -1.0])
    src = np.array([1.0, np.nan, 3.0, 2.0, 5.0, np.nan])
    index = np.array([0, 0, 0, 1, 1, 2])
    w = np.array([1.0, 2.0, 0.0])
    got = gc.grad(lambda a, b: gc.sum(gc.scatter_reduce(a, 0, index, b, reduce, include_self)
                                      * w), argnums=(0, 1))(x, src)
    tx, ts = (torch.tensor(a, requires_grad=True) for a in (x, src))
    (tx.scatter_reduce(0, torch.tensor(index), ts, reduce, include_self=include_self)
     * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(got[0], tx.grad.numpy())
    np.testing.assert_array_equal(got[1], ts.grad.numpy())
    assert np.isnan(got[1][:3]).all() and np.isnan(got[1][5])


def test_segment_max_min_of_a_nan_segment_and_the_max_reductions_beside_torch():
    data = np.array([1.0, np.nan, 3.0, 2.0, 5.0], np.float32)
    ids = np.array([0, 0, 0, 1, 1])
    w = np.array([1.0, 2.0], np.float32)
    for fn, reduce in ((gc.segment_max, "amax"), (gc.segment_min, "amin")):
        got = gc.compile(gc.grad(lambda a: gc.sum(fn(a, ids, 2) * w)))(data)
        t = torch.tensor(data, requires_grad=True)
        fill = -np.inf if reduce == "amax" else np.inf
        (torch.full((2,), fill).scatter_reduce(0, torch.tensor(ids), t, reduce,
                                               include_self=False) * torch.tensor(w)).sum().backward()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, t.grad.numpy())
    # (unchanged: max along an axis is torch.amax's and JAX's, NaN everywhere; with torch's
    # dim= it is torch.max's, the gradient to the index)
    x = data.astype(np.float64).reshape(1, 5)
    t = torch.tensor(x, requires_grad=True)
    torch.amax(t, 1).sum().backward()
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(gc.max(a, axis=1)))(x),
                                  t.grad.numpy())
    t = torch.tensor(x, requires_grad=True)
    torch.max(t, 1).values.sum().backward()
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(gc.max(a, dim=1).values))(x),
                                  t.grad.numpy())


# ---- 3. index_fill of a float into integers -----------------------------------------------
@pytest.mark.parametrize("value", [2.7, -2.7, np.float64(2.7), np.float32(-0.5), True, 7])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_index_fill_converts_a_number_as_torch_eagerly_compiled_and_traced(value, dtype):
    """A Python float into an integer x was refused (a weak scalar meeting an int tensor)
    where a numpy float was truncated; now every path truncates toward zero as torch's
    (2.7 -> 2, -2.7 -> -2), a bool x takes the number's truth."""
    x = np.arange(6).reshape(2, 3).astype(dtype)
    index = np.array([1, -1])
    want = torch.tensor(x).index_fill(1, torch.tensor(index), value.item()
                                      if isinstance(value, np.generic) else value).numpy()
    paths = {"eager": gc.index_fill(x, 1, index, value),
             "compiled": gc.compile(lambda a, i: gc.index_fill(a, 1, i, value))(x, index),
             "vmap": gc.vmap(lambda row: gc.index_fill(row, 0, index, value))(x),
             "a traced 0-d value": gc.compile(lambda a, v: gc.index_fill(a, 1, index, v))(
                 x, np.asarray(value))}
    for path, got in paths.items():
        assert np.asarray(got).dtype == dtype, path
        np.testing.assert_array_equal(got, want, err_msg=path)


def test_index_fill_refuses_a_number_its_integer_dtype_does_not_hold_in_one_line():
    from errorcheck import assert_one_line_error
    x = np.zeros((2, 3), np.int32)
    for value, message in ((float("nan"), "index_fill: value nan does not fit in int32"),
                           (1e20, "index_fill: value 1e+20 does not fit in int32"),
                           (2**31, "index_fill: value 2147483648 does not fit in int32"),
                           (1 + 2j, "index_fill: value must be a real number or a 0-d value")):
        for fn in (lambda a, v=value: gc.index_fill(a, 0, [1], v),
                   gc.compile(lambda a, v=value: gc.index_fill(a, 0, [1], v))):
            assert_one_line_error(lambda: fn(x), message, "test_review_s54_segments.py")


# ---- 4. under a polymorphic (symbolic batch) compile --------------------------------------
def _polymorphic_agrees(fn, shapes, make):
    compiled = gc.compile(fn, polymorphic_shapes=shapes)
    for b in (2, 5):
        args = make(b)
        np.testing.assert_allclose(compiled(*args), fn(*args), rtol=1e-13, atol=1e-15)
    assert compiled.recompiles == []


def test_segment_reductions_and_running_extremes_serve_every_batch_size():
    """segment_prod over a symbolic number of rows was refused (its scan needed the count);
    the other segment reductions, their gradients and vmap, and cummax / cummin along a
    concrete axis of a symbolic batch, run one plan for every size."""
    rng = np.random.default_rng(4)
    rows = lambda b: (rng.integers(-2, 3, (b, 2)).astype(float), rng.integers(0, 4, b))
    for fn in (gc.segment_prod, gc.segment_max, gc.segment_min, gc.segment_mean):
        _polymorphic_agrees(lambda d, i, fn=fn: fn(d, i, 4), (("b", "_"), ("b",)), rows)
        _polymorphic_agrees(gc.grad(lambda d, i, fn=fn: gc.sum(fn(d, i, 4) ** 2)),
                            (("b", "_"), ("b",)), rows)
    _polymorphic_agrees(gc.vmap(lambda d: gc.segment_prod(d, np.array([0, 1, 0]), 2)),
                        (("b", "_"),), lambda b: (rng.normal(size=(b, 3)),))
    for fn in (gc.cummax, gc.cummin):
        _polymorphic_agrees(lambda x, fn=fn: fn(x, 1).values * fn(x, 1).indices.astype("float64"),
                            (("b", "_"),), lambda b: (rng.normal(size=(b, 3)),))


def test_a_scan_along_a_symbolic_axis_and_scatter_reduce_refuse_in_one_line():
    """scatter_reduce said 'needs a concrete size along the axis' of a symbolic batch axis
    that was not its dim; it flattens all of x, and now says which argument's shape."""
    from errorcheck import assert_one_line_error
    x = np.ones((3, 4))
    index = np.zeros((3, 2), np.int64)
    f = gc.compile(lambda a, i, s: gc.scatter_reduce(a, 1, i, s, "prod"),
                   polymorphic_shapes=(("b", "_"), ("b", "_"), ("b", "_")))
    assert_one_line_error(lambda: f(x, index, x[:, :2]),
                          "scatter_reduce: needs concrete shapes (a polymorphic compile's "
                          "symbolic sizes are refused), got x's shape (b, 4) with the symbolic b",
                          "test_review_s54_segments.py")
    for name in ("cummax", "cummin", "logcumsumexp"):
        fn = getattr(gc, name)
        g = gc.compile(lambda a, fn=fn: fn(a, 0), polymorphic_shapes=(("b", "_"),))
        assert_one_line_error(lambda: g(x), f"{name}: needs a concrete size along the axis, "
                              "got the symbolic b", "test_review_s54_segments.py")


# ---- 5. traced range errors name the user's function ---------------------------------------
def test_traced_bincount_searchsorted_and_segment_range_errors_name_the_function():
    """Compiled or under vmap they said 'index 7 is out of bounds for axis 0 of size 3',
    naming the internal check; now the eager check's words."""
    from errorcheck import assert_one_line_error
    here = "test_review_s54_segments.py"
    count = gc.compile(lambda x: gc.bincount(x, length=3))
    weighed = gc.compile(lambda x, w: gc.bincount(x, w, length=3))
    per_row = gc.vmap(lambda x: gc.bincount(x, length=3))
    search = gc.compile(lambda a, v, s: gc.searchsorted(a, v, sorter=s))
    a, v = np.array([1.0, 2.0, 3.0]), np.array([2.0])
    for call, message in (
            (lambda: count(np.array([0, 7])), "bincount: value 7 is outside [0, 3)"),
            (lambda: count(np.array([0, -1])), "bincount: value -1 is outside [0, 3)"),
            (lambda: weighed(np.array([7, 0]), np.ones(2)), "bincount: value 7 is outside [0, 3)"),
            (lambda: per_row(np.array([[0, 1], [0, 7]])), "bincount: value 7 is outside [0, 3)"),
            (lambda: search(a, v, np.array([0, 1, 5])),
             "searchsorted: sorter index 5 is outside [0, 3)"),
            (lambda: search(a, v, np.array([0, -1, 2])),
             "searchsorted: sorter index -1 is outside [0, 3)"),
            (lambda: gc.compile(lambda d, i: gc.segment_max(d, i, 2))(v, np.array([2])),
             "segment_max: segment id 2 is outside [0, 2)"),
            (lambda: gc.compile(lambda x, i: gc.index_fill(x, 0, i, 1.0))(a, np.array([-4])),
             "index_fill: index -4 is outside [-3, 3)")):
        assert_one_line_error(call, message, here)
    # the eager checks say the same
    assert_one_line_error(lambda: gc.bincount(np.array([0, 7]), length=3),
                          "bincount: value 7 is outside [0, 3)", here)
    assert_one_line_error(lambda: gc.searchsorted(a, v, sorter=np.array([0, 1, 5])),
                          "searchsorted: sorter index 5 is outside [0, 3)", here)


# ---- 6. the traced unique's sort -----------------------------------------------------------
def test_traced_unique_sorts_one_column_unstably_and_keeps_numpys_results():
    """Traced, unique of one column sorted it with a stable argsort (2.6 s compiled on 1e6
    floats, the eager path 0.35 s); now np.argsort's default one (0.76 s), each run's first
    occurrence found as its smallest place: index, inverse, counts, the values' bits (0.0 /
    -0.0, NaN) and their gradient, to the first occurrence, as before."""
    graph = gc.trace(lambda a: gc.unique(a, size=3), np.ones(6))
    ops = [n.op for n in graph.nodes]
    assert ops.count("argsort_unstable") == 1 and ops.count("argsort") == 1  # (the mask's)
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, 40).astype(float)
    x[[3, 9]], x[[5, 20, 31]], x[7] = np.nan, -0.0, -np.inf
    x[rng.random(40) < 0.2] = 0.0
    values, index, inverse, counts = np.unique(x, return_index=True, return_inverse=True,
                                               return_counts=True)
    size = len(values)
    fn = lambda a: gc.unique(a, return_index=True, return_inverse=True,  # noqa: E731
                             return_counts=True, size=size)
    for got in (gc.compile(fn)(x), gc.vmap(fn)(x[None])):
        got = [np.asarray(g).reshape(-1) for g in got]
        np.testing.assert_array_equal(got[0], values)
        np.testing.assert_array_equal(np.signbit(got[0]), np.signbit(x[index]))
        for g, want in zip(got[1:], (index, inverse, counts)):
            np.testing.assert_array_equal(g, want)
    w = np.arange(1.0, size + 1)
    grad = gc.compile(gc.grad(lambda a: gc.sum(gc.where(gc.isfinite(gc.unique(a, size=size)),
                                                        gc.unique(a, size=size), 0.0) * w)))(x)
    want = np.zeros_like(x)
    finite = np.isfinite(values)
    want[index[finite]] = w[finite]
    np.testing.assert_array_equal(grad, want)
    # integers past the values' own count: filled, their index the smallest's
    ints = rng.integers(0, 50, 1000)
    got = gc.compile(lambda a: gc.unique(a, return_index=True, size=60, fill_value=-1))(ints)
    vals, first = np.unique(ints, return_index=True)
    np.testing.assert_array_equal(got[0], np.r_[vals, [-1] * (60 - len(vals))])
    np.testing.assert_array_equal(got[1], np.r_[first, [first[0]] * (60 - len(vals))])


def test_traced_unique_telling_nans_apart_keeps_them_in_their_places_order():
    """(review r5) With equal_nan=False (or an axis, whose slices numpy tells apart by
    NaN), each NaN is a run of its own and numpy orders them by their places in x; the
    unstable sort shuffled them (the index and inverse differed from numpy's at every NaN,
    eagerly and compiled, from 20 elements on)."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 5, 200).astype(float)
    x[rng.random(200) < 0.3] = np.nan
    x[rng.random(200) < 0.1] = -0.0
    want = np.unique(x, return_index=True, return_inverse=True, return_counts=True,
                     equal_nan=False)
    size = len(want[0])
    fn = lambda a: gc.unique(a, return_index=True, return_inverse=True,  # noqa: E731
                             return_counts=True, equal_nan=False, size=size)
    by_axis = lambda a: gc.unique(a, return_index=True, return_inverse=True,  # noqa: E731
                                  return_counts=True, axis=0, size=size)
    for got in (fn(x), gc.compile(fn)(x), gc.vmap(fn)(x[None]), gc.compile(by_axis)(x)):
        got = [np.asarray(g).reshape(-1) for g in got]
        np.testing.assert_array_equal(got[0], want[0])
        for g, w in zip(got[1:], want[1:]):
            np.testing.assert_array_equal(g, w.reshape(-1))
