"""Value-sized array functions (ir/ops/search.py): searchsorted, bucketize, nonzero, argwhere,
flatnonzero, unique and bincount against numpy (and torch for searchsorted and bucketize) on
random inputs of every dtype, 0-d and empty ones too, eagerly, compiled and under vmap; the
gradient of bincount's weights against finite differences; the one-line refusals."""
import warnings

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error, one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

DTYPES = ["bool", "int32", "int64", "float16", "float32", "float64"]
# values with ties, both zeros, infinities and NaN: where the orders of the libraries differ
FLOATS = np.array([-np.inf, -2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, np.nan])


def _random(rng, dtype, shape):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-3, 4, shape).astype(dtype)
    return rng.choice(FLOATS, shape).astype(dtype)


def _shape(rng, max_rank=2):
    """A random shape: 0-d, empty or small."""
    return tuple(int(d) for d in rng.integers(0, 5, rng.integers(0, max_rank + 1)))


def _eager(fn, *xs):
    out = fn(*[gc.tensor(x) for x in xs])
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def _compiled(fn, *xs):
    out = gc.compile(fn)(*xs)
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def _vmapped(fn, *xs):
    out = gc.vmap(fn)(*xs)
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def _same(got, want):
    """Equal arrays of the same shape, NaN equal to NaN, -0.0 to 0.0."""
    for g, w in zip(got, want, strict=True):
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        np.testing.assert_array_equal(g, w)


# ---- searchsorted and bucketize ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_searchsorted_matches_numpy_and_torch_eagerly_compiled_and_vmapped(dtype):
    rng = np.random.default_rng(DTYPES.index(dtype))
    torch_dtype = getattr(torch, dtype) if dtype != "bool" else None
    for trial in range(20):  # (x 6 dtypes: 120 random inputs)
        a = np.sort(_random(rng, dtype, (int(rng.integers(0, 7)),)))  # (NaN last)
        v = _random(rng, dtype, _shape(rng))
        side = ["left", "right"][trial % 2]
        want = np.searchsorted(a, v, side)
        fn = lambda a, v: gc.searchsorted(a, v, side)  # noqa: E731
        _same(_eager(fn, a, v), [want])
        _same(_compiled(fn, a, v), [want])
        if torch_dtype is not None and not np.isnan(a.astype(float)).any() and v.ndim:
            # (torch's binary search goes astray on a NaN in a; numpy's and ours sort it last)
            theirs = torch.searchsorted(torch.tensor(a, dtype=torch_dtype),
                                        torch.tensor(v, dtype=torch_dtype), right=side == "right")
            _same(_eager(lambda a, v: gc.searchsorted(a, v, right=side == "right"), a, v),
                  [theirs.numpy()])
    # vmapped: a batch of values in one sorted a, and a batch of sorted rows with theirs
    a = np.sort(_random(rng, dtype, (6,)))
    vs = _random(rng, dtype, (4, 5))
    _same(_vmapped(lambda v: gc.searchsorted(a, v, "right"), vs),
          [np.stack([np.searchsorted(a, v, "right") for v in vs])])
    rows = np.sort(_random(rng, dtype, (4, 6)), -1)
    _same(_vmapped(lambda a, v: gc.searchsorted(a, v), rows, vs),
          [np.stack([np.searchsorted(a, v) for a, v in zip(rows, vs)])])
    _same(_vmapped(lambda a: gc.searchsorted(a, vs[0]), rows),
          [np.stack([np.searchsorted(a, vs[0]) for a in rows])])


def test_searchsorted_nan_is_sorted_last_as_numpys_and_results_are_int64():
    a = np.array([1.0, 2.0, np.nan, np.nan])
    v = np.array([np.nan, 5.0, 0.5, 2.0])
    for side, want in (("left", [2, 2, 0, 1]), ("right", [4, 2, 0, 2])):
        assert np.searchsorted(a, v, side).tolist() == want
        for got in _eager(lambda a, v: gc.searchsorted(a, v, side), a, v) + \
                _compiled(lambda a, v: gc.searchsorted(a, v, side), a, v):
            assert got.dtype == np.int64 and got.tolist() == want
    assert np.asarray(gc.searchsorted(a, v, out_int32=True)).dtype == np.int32


def test_searchsorted_of_nd_rows_is_torchs_batched_search_and_sorter_is_numpys():
    rng = np.random.default_rng(7)
    rows = np.sort(rng.normal(size=(2, 3, 5)), -1)
    v = rng.normal(size=(2, 3, 4))
    for right in (False, True):
        want = torch.searchsorted(torch.tensor(rows), torch.tensor(v), right=right).numpy()
        fn = lambda a, v: gc.searchsorted(a, v, right=right)  # noqa: E731
        _same(_eager(fn, rows, v), [want])
        _same(_compiled(fn, rows, v), [want])
    a = rng.normal(size=7)
    sorter = np.argsort(a)
    v = rng.normal(size=(3, 2))
    for side in ("left", "right"):
        want = np.searchsorted(a, v, side, sorter)
        fn = lambda a, s, v: gc.searchsorted(a, v, side, sorter=s)  # noqa: E731
        _same(_eager(fn, a, sorter, v), [want])
        _same(_compiled(fn, a, sorter, v), [want])


def test_searchsorted_of_nd_rows_with_no_elements_or_no_values():
    """Review r5: an N-d search (torch's, and any vmapped one) of empty sorted rows or of
    rows of no values was numpy's 'cannot reshape array of size 0' from inside."""
    cases = [(np.zeros((2, 0)), np.ones((2, 3))), (np.ones((2, 3)), np.zeros((2, 0))),
             (np.zeros((2, 3, 0)), np.ones((2, 3, 1)))]
    for a, v in cases:
        want = torch.searchsorted(torch.tensor(a), torch.tensor(v)).numpy()
        fn = lambda a, v: gc.searchsorted(a, v)  # noqa: E731
        _same(_eager(fn, a, v), [want])
        _same(_compiled(fn, a, v), [want])
    _same(_vmapped(lambda a: gc.searchsorted(a, np.array([1.0, 2.0])), np.zeros((3, 0))),
          [np.zeros((3, 2), np.int64)])
    _same(_vmapped(lambda v: gc.searchsorted(np.array([1.0, 2.0]), v, "right"), np.ones((3, 0))),
          [np.zeros((3, 0), np.int64)])


def test_a_python_number_meets_a_as_a_weak_scalar():
    """0.1 against a float32 a is float32's 0.1 (equal to a's element: after it on the right),
    as jnp's weak scalar; against an int a, 2.5 is not truncated to 2."""
    a = np.array([0.1, 0.2], np.float32)
    assert int(np.asarray(gc.searchsorted(a, 0.1, "right"))) == 1
    assert int(np.asarray(gc.searchsorted(np.array([1, 2, 3], np.int32), 2.5))) == 2


def test_a_python_int_past_an_integer_as_range_goes_past_every_element_or_before_all():
    """2**63 against an int64 a was 'dtype uint64 is not supported', 2**64 'got object':
    numpy's places (past every element, before them all), eagerly and compiled; 1e5 against
    a float16 a is its inf (the weak scalar rule) with no numpy overflow warning."""
    edges = np.array([-2**63, 0, 2**63 - 1])  # (numpy's float64 compare says 1 for 2**63)
    for a in (np.array([-1, 0, 5]), np.array([-1, 0, 5], np.int32), np.array([False, True]),
              edges):
        for v, want in ((2**63, len(a)), (2**70, len(a)), (-2**63 - 1, 0), (-2**70, 0)):
            for side in ("left", "right"):
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    assert int(np.asarray(gc.searchsorted(a, v, side))) == want, (a, v, side)
                if a is not edges:
                    assert want == np.searchsorted(a, v, side)
        f = gc.compile(lambda a: gc.stack([gc.searchsorted(a, 2**64),
                                           gc.searchsorted(a, -2**64)]))
        np.testing.assert_array_equal(f(a), [len(a), 0])
    h = np.array([-np.inf, 1, 2, np.inf], np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [int(np.asarray(gc.searchsorted(h, v, side)))
               for v in (1e5, -1e5) for side in ("left", "right")]
    assert got == [3, 4, 0, 1]  # (1e5 is float16's inf, as jnp's)


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_bucketize_matches_torch(dtype):
    rng = np.random.default_rng(11)
    for trial in range(25):  # (x 4 dtypes: 100 random inputs)
        boundaries = np.unique(_random(rng, dtype, (int(rng.integers(0, 6)),)))
        boundaries = boundaries[~np.isnan(boundaries.astype(float))]
        x = _random(rng, dtype, _shape(rng))
        right = bool(trial % 2)
        want = torch.bucketize(torch.tensor(x), torch.tensor(boundaries), right=right).numpy()
        fn = lambda x, b: gc.bucketize(x, b, right=right)  # noqa: E731
        _same(_eager(fn, x, boundaries), [want])
        _same(_compiled(fn, x, boundaries), [want])
    xs = _random(rng, dtype, (3, 4))
    b = np.array([-1, 0, 1], dtype)
    _same(_vmapped(lambda x: gc.bucketize(x, b), xs),
          [torch.bucketize(torch.tensor(xs), torch.tensor(b)).numpy()])
    out = gc.bucketize(gc.tensor(xs), b, out_int32=True)
    assert out.dtype == np.int32


def test_searchsorted_has_no_gradient_its_index_is_a_constant():
    b = np.array([-1.0, 0.0, 1.0])
    x = np.array([-2.0, 0.5, 3.0, -0.5])
    g = gc.grad(lambda x: gc.sum(x * gc.cast(gc.searchsorted(b, x), "float64")))(x)
    np.testing.assert_array_equal(g, np.searchsorted(b, x).astype(float))


# ---- nonzero, argwhere, flatnonzero ----------------------------------------------------------
def _padded(index, size, fill):
    return np.concatenate([index, np.full(size - len(index), fill, index.dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonzero_argwhere_flatnonzero_match_numpy(dtype):
    rng = np.random.default_rng(20 + DTYPES.index(dtype))
    for trial in range(20):  # (x 6 dtypes: 120 random inputs)
        x = _random(rng, dtype, _shape(rng, 3))
        size = x.size + 2  # a size past the count: filled places
        _same(_eager(gc.flatnonzero, x), [np.flatnonzero(x)])
        _same(_eager(gc.argwhere, x), [np.argwhere(x)])
        _same(_compiled(lambda x: gc.flatnonzero(x, size=size, fill_value=-1), x),
              [_padded(np.flatnonzero(x), size, -1)])
        want = np.argwhere(x)
        _same(_compiled(lambda x: gc.argwhere(x, size=size), x),
              [np.concatenate([want, np.zeros((size - len(want), x.ndim), np.int64)])])
        if x.ndim:
            _same(_eager(gc.nonzero, x), np.nonzero(x))
            _same(_compiled(lambda x: gc.nonzero(x, size=size, fill_value=-1), x),
                  [_padded(i, size, -1) for i in np.nonzero(x)])
            cut = max(np.count_nonzero(x) - 1, 0)  # a size short of the count: the first ones
            _same(_compiled(lambda x: gc.nonzero(x, size=cut), x),
                  [i[:cut] for i in np.nonzero(x)])
    xs = _random(rng, dtype, (3, 2, 4))
    got = _vmapped(lambda x: gc.nonzero(x, size=8, fill_value=(7, 9)), xs)
    for j, x in enumerate(xs):
        rows, cols = np.nonzero(x)
        _same([got[0][j], got[1][j]], [_padded(rows, 8, 7), _padded(cols, 8, 9)])


# ---- unique -------------------------------------------------------------------------------
def _jax_padded_unique(x, size, fill):
    """jnp.unique(x, True, True, True, size=size, fill_value=fill), built from numpy's."""
    values, index, inverse, counts = np.unique(x, True, True, True)
    more = size - len(values)
    return [np.concatenate([values, np.full(more, fill, values.dtype)]),
            np.concatenate([index, np.full(more, index[0] if len(index) else 0)]), inverse,
            np.concatenate([counts, np.zeros(more, np.int64)])]


@pytest.mark.parametrize("dtype", DTYPES)
def test_unique_matches_numpy_eagerly_and_jax_padded_compiled_and_vmapped(dtype):
    rng = np.random.default_rng(40 + DTYPES.index(dtype))
    for trial in range(20):  # (x 6 dtypes: 120 random inputs)
        x = _random(rng, dtype, _shape(rng, 3))
        _same(_eager(lambda x: gc.unique(x, True, True, True), x), np.unique(x, True, True, True))
        _same(_eager(gc.unique, x), [np.unique(x)])
        size = x.size + 1
        _same(_compiled(lambda x: gc.unique(x, True, True, True, size=size, fill_value=1), x),
              _jax_padded_unique(x, size, 1))
    xs = _random(rng, dtype, (3, 6))
    got = _vmapped(lambda x: gc.unique(x, True, True, True, size=6, fill_value=0), xs)
    for j, x in enumerate(xs):
        _same([g[j] for g in got], _jax_padded_unique(x, 6, 0))


def test_unique_without_fill_value_pads_with_the_smallest_as_jax():
    x = np.array([3.0, 1.0, 3.0])
    got = _compiled(lambda x: gc.unique(x, return_index=True, size=4), x)
    _same(got, [np.array([1.0, 3.0, 1.0, 1.0]), np.array([1, 0, 1, 1])])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unique_along_an_axis_matches_numpy(axis):
    rng = np.random.default_rng(60 + axis)
    for trial in range(34):  # (x 3 axes: 102 random inputs)
        shape = (int(rng.integers(0, 6)), int(rng.integers(0, 4)))
        x = rng.integers(0, 2, shape) if trial % 2 else rng.choice(FLOATS[:-1], shape)
        want = np.unique(x, True, True, True, axis=axis)
        _same(_eager(lambda x: gc.unique(x, True, True, True, axis=axis), x), want)
        if x.size:  # padded with copies of the smallest slice, as JAX's
            n, u = x.shape[axis], want[0].shape[axis]
            got = _compiled(lambda x: gc.unique(x, True, True, True, axis=axis, size=n), x)
            _same(got, [np.take(want[0], list(range(u)) + [0] * (n - u), axis),
                        _padded(want[1], n, want[1][0]), want[2], _padded(want[3], n, 0)])
    nan_rows = np.array([[np.nan, 1.0], [np.nan, 1.0], [0.0, 1.0], [-0.0, 1.0]])
    _same(_eager(lambda x: gc.unique(x, True, True, True, axis=0), nan_rows),
          np.unique(nan_rows, True, True, True, axis=0))  # (NaN rows apart, as numpy's)


def test_unique_values_gradient_goes_to_each_first_occurrence():
    x = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    w = np.array([10.0, 20.0, 30.0, 40.0])
    g = gc.grad(lambda x: gc.sum(gc.unique(x, size=4, fill_value=0.0) * w))(x)
    np.testing.assert_array_equal(g, [30.0, 10.0, 0.0, 20.0, 0.0])
    # without a fill_value the padding is a copy of the smallest value, as JAX's: its
    # gradient goes to that value's first occurrence too
    g = gc.grad(lambda x: gc.sum(gc.unique(x, size=4) * w))(x)
    np.testing.assert_array_equal(g, [30.0, 10.0 + 40.0, 0.0, 20.0, 0.0])
    t = gc.tensor(x, requires_grad=True)
    gc.sum(gc.unique(t) * w[:3]).backward()
    np.testing.assert_array_equal(t.grad, [30.0, 10.0, 0.0, 20.0, 0.0])



def test_eager_unique_of_values_and_counts_needs_no_stable_argsort(monkeypatch):
    """Eagerly, with neither return_index nor return_inverse and no gradient to take, the
    values and counts need the sorted values alone: a plain sort, as np.unique's (1e6
    float32s: 417 ms, nearly all the stable argsort, now 9 ms; nonzero's places 50 ms, 3 ms).
    The values are the stable path's bit for bit: of 0.0 and -0.0, and of NaNs of either
    sign, the first occurrence's."""
    from ir.ops.registry import REGISTRY

    rng = np.random.default_rng(9)
    pool = np.array([2.0, -1.0, 0.0, -0.0, np.nan, -np.nan, 1.0])
    cases = [rng.choice(pool, 40) for _ in range(10)] + [
        np.array([0.0, -0.0, 1.0]), np.array([-0.0, 0.0]), np.array([-np.nan, np.nan, 3.0])]
    for dtype in ["float16", "float32", "float64"]:
        for x in (c.astype(dtype) for c in cases):
            stable = gc.unique(x, return_index=True, return_counts=True)  # (the argsort)
            with monkeypatch.context() as patch:
                patch.setattr(REGISTRY["argsort"], "impl", lambda *a, **k: 1 / 0)
                values, counts = (np.asarray(v) for v in gc.unique(x, return_counts=True))
                np.testing.assert_array_equal(np.asarray(gc.unique(x)), values)
                nonzero = [np.asarray(i) for i in gc.nonzero(x)]
            bits = f"u{x.itemsize}"
            np.testing.assert_array_equal(values.view(bits), np.asarray(stable[0]).view(bits))
            np.testing.assert_array_equal(counts, stable[2])
            np.testing.assert_array_equal(counts, np.unique(x, return_counts=True)[1])
            _same(nonzero, np.nonzero(x))
    assert np.signbit(np.asarray(gc.unique(np.array([-0.0, 0.0])))).tolist() == [True]
    assert np.signbit(np.asarray(gc.unique(np.array([0.0, -0.0])))).tolist() == [False]

# ---- bincount --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64"])
def test_bincount_matches_numpy(dtype):
    rng = np.random.default_rng(80 + DTYPES.index(dtype))
    for trial in range(34):  # (x 3 dtypes: 102 random inputs)
        x = rng.integers(0, 2 if dtype == "bool" else 6, int(rng.integers(0, 8))).astype(dtype)
        minlength = int(rng.integers(0, 9))
        weights = _random(rng, DTYPES[3 + trial % 3], x.shape)
        weights[np.isnan(weights) | np.isinf(weights)] = 1.5
        _same(_eager(lambda x: gc.bincount(x, minlength=minlength), x),
              [np.bincount(x, minlength=minlength)])
        got = _eager(lambda x, w: gc.bincount(x, w, minlength), x, weights)[0]
        assert got.dtype == weights.dtype  # (JAX's; numpy's is float64)
        np.testing.assert_array_equal(got, np.bincount(x, weights, minlength).astype(got.dtype))
        length = max(minlength, x.size and int(x.max()) + 1)
        _same(_compiled(lambda x, w: gc.bincount(x, w, length=length), x, weights),
              [np.bincount(x, weights, length).astype(weights.dtype)])
    xs = rng.integers(0, 5, (3, 6)).astype(dtype)
    _same(_vmapped(lambda x: gc.bincount(x, length=5), xs),
          [np.stack([np.bincount(x, minlength=5) for x in xs])])


def test_bincount_of_bool_weights_counts_the_true_ones_in_int64():
    """bool weights have no dtype to sum in: they count their True elements, int64 as a count
    without weights (numpy's values, in float64; README says so), eagerly and compiled."""
    x = np.array([0, 1, 1, 3, 1])
    w = np.array([True, False, True, True, True])
    for got in (gc.bincount(x, w), gc.compile(lambda x, w: gc.bincount(x, w, length=4))(x, w)):
        got = np.asarray(got)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, np.bincount(x, w))
        np.testing.assert_array_equal(got, [1, 2, 0, 1])

def test_bincount_gradient_wrt_weights_matches_finite_differences():
    rng = np.random.default_rng(90)
    x = rng.integers(0, 5, 9)
    w = rng.normal(size=9)
    c = rng.normal(size=6)

    def loss(w):
        return gc.sum(gc.sin(gc.bincount(x, w, length=6)) * c)

    g = np.asarray(gc.grad(loss)(w))
    eps = 1e-6
    fd = [(float(loss(w + eps * e)) - float(loss(w - eps * e))) / (2 * eps)
          for e in np.eye(len(w))]
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)
    ws = rng.normal(size=(3, 9))
    gs = gc.vmap(gc.grad(loss))(ws)
    np.testing.assert_allclose(gs, [np.asarray(gc.grad(loss)(w)) for w in ws], rtol=1e-14)


# ---- refusals --------------------------------------------------------------------------------
X = np.array([3.0, 1.0, 3.0])


@pytest.mark.parametrize("call, message", [
    (lambda: gc.compile(gc.unique)(X), "unique: the result's size depends on the values"),
    (lambda: gc.compile(gc.nonzero)(X), "nonzero: the result's size depends on the values"),
    (lambda: gc.compile(gc.argwhere)(X), "argwhere: the result's size depends on the values"),
    (lambda: gc.vmap(gc.flatnonzero)(X[None]), "flatnonzero: the result's size depends on"),
    (lambda: gc.compile(gc.bincount)(np.array([0, 1])), "bincount: the result's length depends"),
    (lambda: gc.unique(X, size=-1), "unique: size must be non-negative, got -1"),
    (lambda: gc.unique(X, size=2.5), "unique: size must be an int, got 2.5"),
    (lambda: gc.unique(X, return_counts="yes"), "unique: return_counts must be True or False"),
    (lambda: gc.unique(X, axis=1), "unique: axis 1 is out of range"),
    (lambda: gc.unique(X, size=4, fill_value=[1, 2]), "unique: fill_value must be one number"),
    (lambda: gc.nonzero(np.float32(2)), "nonzero: a 0-d value has no axis to index"),
    (lambda: gc.nonzero(np.ones((2, 2)), size=3, fill_value=(1, 2, 3)),
     "nonzero: fill_value holds 3 values for a 2-d value"),
    (lambda: gc.searchsorted(X, 1.0, side="middle"), "searchsorted: side must be 'left' or"),
    (lambda: gc.searchsorted(X, 1.0, side="left", right=True),
     "searchsorted: side='left' and right=True say opposite things"),
    (lambda: gc.searchsorted(np.float32(1), 1.0), "searchsorted: the sorted sequence must"),
    (lambda: gc.searchsorted(X, 1.0, sorter=[0, 1, 5]), "searchsorted: sorter index 5 is"),
    (lambda: gc.searchsorted(X, 1.0, sorter=[0, 1]), "searchsorted: sorter of shape (2,)"),
    (lambda: gc.searchsorted(X, np.array([1j])), "searchsorted: the values must be real"),
    (lambda: gc.searchsorted(np.ones((2, 3)), np.ones((3, 3))),
     "searchsorted: an N-d sorted sequence of shape (2, 3) takes values"),
    (lambda: gc.bucketize(X, np.ones((2, 2))), "bucketize: boundaries must be 1-d, got 2-d"),
    (lambda: gc.bucketize(X, X, right="yes"), "bucketize: right must be True or False"),
    (lambda: gc.bincount(X), "bincount: x must hold non-negative integers, got float64"),
    (lambda: gc.bincount(np.array([1, -1])), "bincount: x must hold non-negative integers, "
                                             "got -1"),
    (lambda: gc.bincount(np.array([[1]])), "bincount: x must be 1-d, got 2-d"),
    (lambda: gc.bincount(np.array([1, 2]), np.ones(3)), "bincount: weights of shape (3,)"),
    (lambda: gc.bincount(np.array([1, 5]), length=3), "bincount: value 5 is outside [0, 3)"),
    (lambda: gc.bincount(np.array([1]), minlength=-2), "bincount: minlength must be "
                                                       "non-negative"),
])
def test_bad_arguments_are_one_line_naming_the_function(call, message):
    assert_one_line_error(call, message, "test_search.py")


@pytest.mark.parametrize("function, setting", [
    (lambda a, s: gc.unique(a, size=s), "unique: size"),
    (lambda a, s: gc.nonzero(a, size=s), "nonzero: size"),
    (lambda a, s: gc.argwhere(a, size=s), "argwhere: size"),
    (lambda a, s: gc.flatnonzero(a, size=s), "flatnonzero: size"),
    (lambda a, s: gc.bincount(a, length=s), "bincount: length"),
    (lambda a, s: gc.bincount(a, minlength=s, length=4), "bincount: minlength")])
def test_a_traced_size_asks_for_a_python_int_not_ir_text(function, setting):
    """A size passed to a compiled function is traced: its line was 'size must be an int,
    got <%1:i64[] = input>'; it says the size must be known when tracing, and how."""
    x = np.array([1, 0, 2])
    problem = one_line_problem(lambda: gc.compile(function)(x, 2), "test_search.py")
    assert problem == (f"{setting} must be a Python int known when tracing, got a traced "
                       "value; the value passed as 's' is traced: to use a Python number or "
                       "bool as a Python value, list its position in static_argnums"), problem
    assert_one_line_error(lambda: gc.compile(lambda a: function(a, gc.sum(a)))(x),
                          f"{setting} must be a Python int known when tracing, got a traced "
                          "value", "test_search.py")
    assert_one_line_error(lambda: gc.compile(lambda a: function(a, a))(x),
                          "known when tracing, got a traced value of shape (3,)",
                          "test_search.py")
    np.testing.assert_array_equal(
        gc.compile(function, static_argnums=1)(x, 4), function(x, 4))

def test_numpys_unique_of_a_tensor_that_requires_grad_names_gc_unique():
    t = gc.tensor(X, requires_grad=True)
    assert_one_line_error(lambda: np.unique(t), "np.unique() of a tensor that requires grad "
                          "would leave its gradient out: use gc.unique,", "test_search.py")
