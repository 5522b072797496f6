"""Segment and scatter reductions (segment_max / min / prod / mean, index_add / copy / fill,
scatter_reduce), cummax / cummin / logcumsumexp, kthvalue / median / nanmedian against
torch in float64 (values and gradients, ties included), eagerly, compiled, under gc.grad
and gc.vmap."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from test_ops import numeric_gradient  # (central differences)

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
REDUCES = ["sum", "prod", "mean", "amax", "amin"]
INT_DTYPES = [np.int32, np.int64]


def ties(*shape, dtype=np.float64):
    """Values with many ties (and zeros, for prod's gradient)."""
    return RNG.integers(-2, 3, shape).astype(dtype)


_COMPILED_FORMS = set()
_FORMS_SEEN = {}


def repeated(form, times):
    """True once `form` has been checked `times` times already: a random loop's later
    cases of one form run the same code path on other values, so a loop checks each form
    a few times rather than every one of its 100 draws (the file took 46 s of CPU)."""
    _FORMS_SEEN[form] = _FORMS_SEEN.get(form, 0) + 1
    return _FORMS_SEEN[form] > times


def both(fn, *args, form=None):
    """fn's value eagerly and compiled: the same. form: the case's form in a random loop
    (the function, its rank, dim, flags, empty or not, NaN or not): a form already compiled
    is checked eagerly only, since its plan and lowering are the same for every shape and
    value of that form (a compile takes 0.3 s; compiling every one of the 100 cases was
    nine tenths of this file's time)."""
    eager = np.asarray(fn(*args))
    if form is not None:
        if form in _COMPILED_FORMS:
            return eager
        _COMPILED_FORMS.add(form)
    compiled = np.asarray(gc.compile(fn)(*args))
    np.testing.assert_allclose(compiled, eager, rtol=1e-13, atol=0)
    return eager


def torch_grad(fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn(*ts).backward()
    return [t.grad.numpy() for t in ts]


def fill(reduce, dtype):
    """torch's scatter_reduce into this with include_self=False leaves JAX's empty-segment
    value where no row lands."""
    lowest = -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
    highest = np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max
    return {"sum": 0, "mean": 0, "prod": 1, "amax": lowest, "amin": highest}[reduce]


SEGMENT = {"sum": gc.segment_sum, "prod": gc.segment_prod, "mean": gc.segment_mean,
           "amax": gc.segment_max, "amin": gc.segment_min}


def torch_segment(reduce, data, ids, n):
    out = torch.full((n,) + tuple(data.shape[1:]), fill(reduce, data.detach().numpy().dtype),
                     dtype=data.dtype)
    index = torch.tensor(ids).reshape((-1,) + (1,) * (data.ndim - 1)).expand(data.shape)
    return out.scatter_reduce(0, index, data, reduce, include_self=False)


@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_reductions_match_torch_values_and_gradients_over_random_cases(reduce):
    """100 random cases per reduction with ties, empty segments and zeros: values eagerly
    and compiled, gradients by gc.grad, against torch's scatter_reduce(include_self=False)
    into JAX's empty-segment value."""
    fn = SEGMENT[reduce]
    for case in range(100):
        n = int(RNG.integers(1, 6))
        rows = int(RNG.integers(0, 8))
        data = ties(rows, *RNG.integers(1, 3, int(RNG.integers(0, 2))))
        ids = RNG.integers(0, n, rows)
        form = ("segment", reduce, data.ndim, rows == 0, rows < n)
        if repeated(form, 8):
            continue
        got = both(lambda a, i: fn(a, i, n), data, ids, form=form)
        want = torch_segment(reduce, torch.tensor(data), ids, n).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-14, err_msg=f"{reduce} case {case}")
        w = RNG.normal(size=want.shape)
        finite = np.isfinite(want)
        g = gc.grad(lambda a: gc.sum(gc.where(finite, fn(a, ids, n), 0.0) * w))(data)
        (tg,) = torch_grad(lambda a: (torch_segment(reduce, a, ids, n).where(
            torch.tensor(finite), torch.tensor(0.0)) * torch.tensor(w)).sum(), data)
        np.testing.assert_allclose(g, tg, rtol=1e-13, atol=1e-15, err_msg=f"{reduce} {case}")


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_reductions_of_integers_match_torch(reduce, dtype):
    data = RNG.integers(-9, 10, (9, 2)).astype(dtype)
    ids = RNG.integers(0, 6, 9)
    got = both(lambda a, i: SEGMENT[reduce](a, i, 7), data, ids)
    want = torch_segment(reduce, torch.tensor(data), ids, 7).numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_segment_max_empty_values_num_segments_flags_and_vmap():
    data = np.array([3.0, 1.0, 3.0])
    ids = np.array([2, 0, 2])
    # num_segments defaults to max(ids) + 1 eagerly, as JAX's
    np.testing.assert_array_equal(gc.segment_max(data, ids), [1.0, -np.inf, 3.0])
    np.testing.assert_array_equal(gc.segment_min(data, ids, 4, indices_are_sorted=False,
                                                 unique_indices=False), [1, np.inf, 3, np.inf])
    np.testing.assert_array_equal(gc.segment_max(np.array([True, False]), [0, 0], 2), [1, 0])
    np.testing.assert_array_equal(gc.segment_min(np.array([True, False]), [0, 0], 2), [0, 1])
    np.testing.assert_array_equal(gc.segment_prod(np.zeros((0, 2)), np.zeros(0, int), 2),
                                  np.ones((2, 2)))
    # ties share the gradient evenly
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(gc.segment_max(a, ids, 3)[2:]))(data),
                                  [0.5, 0.0, 0.5])
    batch = ties(4, 6, 2)
    for reduce, fn in SEGMENT.items():
        got = gc.vmap(lambda a: fn(a, ids[[0, 1, 2, 0, 1, 2]], 3))(batch)
        for b in range(4):
            np.testing.assert_allclose(got[b], fn(batch[b], ids[[0, 1, 2, 0, 1, 2]], 3))
        i_batch = RNG.integers(0, 3, (4, 6))
        got = gc.vmap(lambda a, i: fn(a, i, 3))(batch, i_batch)
        for b in range(4):
            np.testing.assert_allclose(got[b], fn(batch[b], i_batch[b], 3))


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_torch_over_random_cases(reduce, include_self):
    for case in range(100):
        nd = int(RNG.integers(1, 4))
        xs = tuple(int(s) for s in RNG.integers(1, 4, nd))
        dim = int(RNG.integers(-nd, nd))
        ids = tuple(int(RNG.integers(0, s + 1)) if d != dim % nd else int(RNG.integers(0, 5))
                    for d, s in enumerate(xs))
        ss = tuple(i + int(RNG.integers(0, 2)) for i in ids)
        x, src = ties(*xs), ties(*ss)
        if not include_self and reduce in ("amax", "amin"):
            # torch's gradient then still counts an x element equal to the result among the
            # ties (the scattered values get a smaller share, the rest is lost): see below
            x += 0.5
        index = RNG.integers(0, xs[dim], ids)
        fn = lambda a, s: gc.scatter_reduce(a, dim, index, s, reduce, include_self)  # noqa: E731
        form = ("scatter_reduce", reduce, include_self, nd, dim % nd, 0 in ids, ss != ids)
        if repeated(form, 3):
            continue
        got = both(fn, x, src, form=form)
        tfn = lambda a, s: a.scatter_reduce(dim, torch.tensor(index), s, reduce,  # noqa: E731
                                            include_self=include_self)
        np.testing.assert_allclose(got, tfn(torch.tensor(x), torch.tensor(src)).numpy(),
                                   rtol=1e-14, err_msg=f"case {case}")
        if ss != ids:  # (torch's backward refuses a src larger than the index)
            continue
        w = RNG.normal(size=xs)
        g = gc.grad(lambda a, s: gc.sum(fn(a, s) * w), argnums=(0, 1))(x, src)
        tg = torch_grad(lambda a, s: (tfn(a, s) * torch.tensor(w)).sum(), x, src)
        for mine, theirs in zip(g, tg):
            np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15,
                                       err_msg=f"case {case} {x} {src} {index} {dim}")


def test_scatter_reduce_amax_without_self_gives_the_scattered_values_the_whole_gradient():
    """A documented difference: torch's amax gradient with include_self=False halves src's
    share where x's (unused) element equals the result; graphc's is the derivative (the
    central difference's), the whole cotangent to the one value scattered there."""
    x, src, index = np.array([1.0, -2.0]), np.array([1.0, 0.5]), np.array([0, 1])
    fn = lambda s: gc.sum(gc.scatter_reduce(x, 0, index, s, "amax", False))  # noqa: E731
    np.testing.assert_array_equal(gc.grad(fn)(src), [1.0, 1.0])
    np.testing.assert_allclose(_central_difference(fn, src), [1.0, 1.0])
    (tg,) = torch_grad(lambda s: torch.tensor(x).scatter_reduce(0, torch.tensor(index), s, "amax",
                                                                include_self=False).sum(), src)
    np.testing.assert_array_equal(tg, [0.5, 1.0])


def test_scatter_reduce_of_integers_and_0d_and_under_vmap():
    x = RNG.integers(-5, 6, (3, 4))
    idx = RNG.integers(0, 3, (2, 4))
    src = RNG.integers(-5, 6, (2, 4))
    for reduce in REDUCES:
        want = torch.tensor(x).scatter_reduce(0, torch.tensor(idx), torch.tensor(src), reduce)
        np.testing.assert_array_equal(gc.scatter_reduce(x, 0, idx, src, reduce), want.numpy())
    x0, s0 = np.float64(2.0), np.float64(5.0)
    want = torch.tensor(x0).scatter_reduce(0, torch.tensor(0), torch.tensor(s0), "amax")
    np.testing.assert_array_equal(gc.scatter_reduce(x0, 0, np.int64(0), s0, "amax"), want)
    xb, sb = ties(5, 3, 4), ties(5, 2, 4)
    got = gc.vmap(lambda a, s: gc.scatter_reduce(a, 1, idx, s, "amin"))(xb, sb)
    for b in range(5):
        np.testing.assert_array_equal(got[b], gc.scatter_reduce(xb[b], 1, idx, sb[b], "amin"))


def test_index_add_copy_fill_match_torch_with_gradients():
    for case in range(100):
        x = ties(3, 4, 2)
        dim = int(RNG.integers(0, 3))
        k = int(RNG.integers(0, 5))
        index = RNG.integers(0, x.shape[dim], k)
        shape = list(x.shape)
        shape[dim] = k
        source = ties(*shape)
        w = RNG.normal(size=x.shape)
        form = (dim, k == 0, k > len(set(index)))
        if repeated(("index",) + form, 4):
            continue
        got = both(lambda a, s: gc.index_add(a, dim, index, s, alpha=2.5), x, source,
                   form=("index_add",) + form)
        ti = torch.tensor(index)
        np.testing.assert_allclose(got, torch.tensor(x).index_add(
            dim, ti, torch.tensor(source), alpha=2.5).numpy(), rtol=1e-15)
        g = gc.grad(lambda a, s: gc.sum(gc.index_add(a, dim, index, s, alpha=2.5) * w),
                    argnums=(0, 1))(x, source)
        tg = torch_grad(lambda a, s: (a.index_add(dim, ti, s, alpha=2.5) * torch.tensor(w)).sum(),
                        x, source)
        for mine, theirs in zip(g, tg):
            np.testing.assert_allclose(mine, theirs, rtol=1e-15)
        unique = RNG.permutation(x.shape[dim])[:min(k, x.shape[dim])]
        shape[dim] = len(unique)
        source = ties(*shape)
        tu = torch.tensor(unique)
        got = both(lambda a, s: gc.index_copy(a, dim, unique, s), x, source,
                   form=("index_copy",) + form)
        np.testing.assert_array_equal(got, torch.tensor(x).index_copy(dim, tu,
                                                                      torch.tensor(source)))
        g = gc.grad(lambda a, s: gc.sum(gc.index_copy(a, dim, unique, s) * w), argnums=(0, 1))(
            x, source)
        tg = torch_grad(lambda a, s: (a.index_copy(dim, tu, s) * torch.tensor(w)).sum(), x, source)
        for mine, theirs in zip(g, tg):
            np.testing.assert_array_equal(mine, theirs)
        got = both(lambda a: gc.index_fill(a, dim, index, -3.0), x, form=("index_fill",) + form)
        np.testing.assert_array_equal(got, torch.tensor(x).index_fill(dim, ti, -3.0))
        g = gc.grad(lambda a: gc.sum(gc.index_fill(a, dim, index, -3.0) * w))(x)
        (tg,) = torch_grad(lambda a: (a.index_fill(dim, ti, -3.0) * torch.tensor(w)).sum(), x)
        np.testing.assert_array_equal(g, tg)
    # repeated indices: index_copy writes the last one's row
    np.testing.assert_array_equal(gc.index_copy(np.zeros(2), 0, [1, 1], np.array([5.0, 6.0])),
                                  [0, 6])


def test_index_copy_of_repeated_indices_gives_the_written_row_alone_the_gradient():
    """Of repeated indices the last source row is written (as torch's CPU kernel) and only
    it gets the gradient: the true derivative (the rows overwritten change nothing). torch's
    backward gives every duplicated row the gradient (README says both)."""
    x, src, idx = np.zeros((3, 2)), RNG.normal(size=(3, 2)), [1, 1, 0]
    w = RNG.normal(size=(3, 2))
    ts = torch.tensor(src, requires_grad=True)
    out = torch.zeros(3, 2, dtype=torch.float64).index_copy(0, torch.tensor(idx), ts)
    (out * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(both(lambda s: gc.index_copy(x, 0, idx, s), src),
                                  out.detach().numpy())
    g = gc.grad(lambda s: gc.sum(gc.index_copy(x, 0, idx, s) * w))(src)
    np.testing.assert_array_equal(g, [[0.0, 0.0], w[1], w[0]])
    np.testing.assert_array_equal(ts.grad.numpy(), [w[1], w[1], w[0]])  # (torch's)
    np.testing.assert_allclose(g, _central_difference(
        lambda s: gc.sum(gc.index_copy(x, 0, idx, s) * w), src), atol=1e-8)


@pytest.mark.parametrize("fn", ["cummax", "cummin"])
def test_cummax_cummin_match_torch_values_indices_and_gradients(fn):
    for case in range(100):
        nd = int(RNG.integers(1, 4))
        x = ties(*RNG.integers(0, 5, nd))
        if x.size and case % 4 == 0:
            x.reshape(-1)[RNG.integers(0, x.size, 2)] = np.nan
        dim = int(RNG.integers(-nd, nd))
        form = (fn, nd, dim % nd, x.size == 0, bool(np.isnan(x).any()))
        if repeated(form, 3):
            continue
        values = both(lambda a: getattr(gc, fn)(a, dim).values, x, form=form + ("values",))
        indices = both(lambda a: getattr(gc, fn)(a, dim).indices, x, form=form + ("indices",))
        want = getattr(torch, fn)(torch.tensor(x), dim)
        np.testing.assert_array_equal(values, want.values.numpy())
        np.testing.assert_array_equal(indices, want.indices.numpy())
        w = RNG.normal(size=x.shape)
        g = gc.grad(lambda a: gc.sum(getattr(gc, fn)(a, dim).values * w))(x)
        (tg,) = torch_grad(lambda a: (getattr(torch, fn)(a, dim).values * torch.tensor(w)).sum(),
                           x)
        np.testing.assert_array_equal(g, tg)
    for dtype in INT_DTYPES + [np.bool_]:
        x = RNG.integers(0, 3, (4, 5)).astype(dtype)
        got = getattr(gc, fn)(x, 1)
        want = getattr(torch, fn)(torch.tensor(x), 1)
        np.testing.assert_array_equal(got.values, want.values.numpy())
        np.testing.assert_array_equal(got.indices, want.indices.numpy())
    got = gc.vmap(lambda r: getattr(gc, fn)(r, 0))(x)
    np.testing.assert_array_equal(got.indices, getattr(torch, fn)(torch.tensor(x), 1).indices)
    zero_d = getattr(gc, fn)(np.float64(2.0), 0)
    np.testing.assert_array_equal(zero_d.values, 2.0)
    np.testing.assert_array_equal(zero_d.indices, 0)


def test_logcumsumexp_matches_torch_with_minus_inf_and_large_values():
    for case in range(100):
        x = RNG.normal(size=(3, int(RNG.integers(0, 9)))) * 300
        if case % 3 == 0 and x.size:
            x[:, 0] = -np.inf
        form = ("logcumsumexp", x.size == 0, bool(np.isinf(x).any()))
        if repeated(form, 12):
            continue
        got = both(lambda a: gc.logcumsumexp(a, 1), x, form=form)
        want = torch.logcumsumexp(torch.tensor(x), 1).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-13)
        w = RNG.normal(size=x.shape)
        g = gc.grad(lambda a: gc.sum(gc.logcumsumexp(a, 1) * w))(x)
        (tg,) = torch_grad(lambda a: (torch.logcumsumexp(a, 1) * torch.tensor(w)).sum(), x)
        # torch's gradient is NaN at a -inf element; graphc's its limit, where the running
        # sum starts there: out[0] = x[0], so w[0]
        finite = np.isfinite(x)
        np.testing.assert_allclose(g[finite], tg[finite], rtol=1e-10, atol=1e-300)
        np.testing.assert_array_equal(g[~finite], w[~finite])
    got = gc.vmap(lambda r: gc.logcumsumexp(r, 0))(x)
    np.testing.assert_allclose(got, torch.logcumsumexp(torch.tensor(x), 1).numpy(), rtol=1e-13)


def test_order_statistics_match_torch_values_and_gradients():
    for case in range(100):
        nd = int(RNG.integers(1, 4))
        x = ties(*RNG.integers(1, 5, nd))
        if case % 3 == 0:
            x.reshape(-1)[RNG.integers(0, x.size, 2)] = np.nan
        dim = int(RNG.integers(-nd, nd))
        k = int(RNG.integers(1, x.shape[dim] + 1))
        keep = bool(case % 2)
        shape_form = (nd, dim % nd, keep, bool(np.isnan(x).any()), x.shape[dim] == 1)
        if repeated(("order",) + shape_form[:4], 1):
            continue
        tx = torch.tensor(x)
        w = RNG.normal(size=np.asarray(torch.median(tx, dim, keep).values).shape)
        cases = [("kthvalue", lambda a: gc.kthvalue(a, k, dim, keep),
                  lambda a: torch.kthvalue(a, k, dim, keep)),
                 ("median", lambda a: gc.median(a, dim, keep),
                  lambda a: torch.median(a, dim, keep)),
                 ("nanmedian", lambda a: gc.nanmedian(a, dim, keep),
                  lambda a: torch.nanmedian(a, dim, keep))]
        for name, mine, theirs in cases:
            form = (name,) + shape_form
            values = both(lambda a: mine(a).values, x, form=form + ("values",))
            indices = both(lambda a: mine(a).indices, x, form=form + ("indices",))
            want = theirs(tx)
            np.testing.assert_array_equal(values, want.values.numpy(), err_msg=name)
            # the index names an element of that value (torch's choice among ties is its own)
            picked = np.take_along_axis(x, indices if keep else np.expand_dims(indices, dim), dim)
            np.testing.assert_array_equal(picked if keep else np.squeeze(picked, dim), values)
            if name != "kthvalue" and not np.isnan(x).any():
                np.testing.assert_array_equal(indices, want.indices.numpy(), err_msg=name)
            g = gc.grad(lambda a: gc.sum(mine(a).values * w))(x)
            (tg,) = torch_grad(lambda a: (theirs(a).values * torch.tensor(w)).sum(), x)
            if name == "kthvalue" or np.isnan(x).any():  # the same element up to ties
                np.testing.assert_array_equal(np.sort(g.reshape(-1)), np.sort(tg.reshape(-1)))
            else:
                np.testing.assert_array_equal(g, tg)
        for fn in ("median", "nanmedian"):
            np.testing.assert_array_equal(getattr(gc, fn)(x), getattr(torch, fn)(tx).numpy())
    for dtype in INT_DTYPES:
        x = RNG.integers(0, 9, (3, 6)).astype(dtype)
        np.testing.assert_array_equal(gc.median(x, 1).values, torch.median(torch.tensor(x), 1)
                                      .values.numpy())
        np.testing.assert_array_equal(gc.kthvalue(x, 4).values,
                                      torch.kthvalue(torch.tensor(x), 4).values.numpy())
    zero_d = gc.median(np.float64(3.0), 0)
    assert float(zero_d.values) == 3.0 and int(zero_d.indices) == 0
    got = gc.vmap(lambda r: gc.median(r, 0).values)(x)
    np.testing.assert_array_equal(got, torch.median(torch.tensor(x), 1).values.numpy())


def test_a_number_or_numpy_scalar_gives_a_tensor_as_an_array_does():
    """median of np.float64(3.0) with no dim was that bare np.float64 (so were kthvalue's,
    cummax's and logcumsumexp's of a number), where a 0-d array's is a tensor: a tensor in
    the dtype graphc's reductions give the number (gc.max's: float32, int64, bool)."""
    for number in (np.float64(3.0), 3.0, np.int32(3), True):
        want = gc.max(number)
        for got in (gc.median(number), gc.nanmedian(number), gc.median(number, 0).values,
                    gc.kthvalue(number, 1).values, gc.cummax(number, 0).values,
                    gc.cummin(number, -1).values):
            assert type(got) is type(want) and got.dtype == want.dtype, (number, got)
            assert got.item() == number
    got = gc.logcumsumexp(np.float64(3.0), 0)
    assert type(got) is type(gc.max(3.0)) and got.dtype == np.float32 and float(got) == 3.0
    for x in (np.array(3.0), gc.tensor(np.array(3.0))):  # (x's own dtype, a new value)
        got = gc.median(x)
        assert got.dtype == np.float64 and got is not x and float(got) == 3.0


@pytest.mark.parametrize("value, shown", [("a", "a str"), (None, "a NoneType"),
                                          (1j, "a complex"), (np.complex64(1j), "a complex64")])
def test_review_s53_a_0d_non_operand_is_refused_as_medians_without_a_dim(value, shown):
    """Review r12 of d551412: _itself made a number a tensor but handed anything else back as
    it was: kthvalue('a', 1).values was 'a', cummax(None, 0).values None, median(1j, 0) and
    cummin(np.complex64(1j), 0) the complex itself, where median(1j) is one line."""
    for name, call in (("median", lambda: gc.median(value)),
                       ("median", lambda: gc.median(value, 0)),
                       ("nanmedian", lambda: gc.nanmedian(value, -1)),
                       ("kthvalue", lambda: gc.kthvalue(value, 1)),
                       ("cummax", lambda: gc.cummax(value, 0)),
                       ("cummin", lambda: gc.cummin(value, -1))):
        assert_one_line_error(call, f"{name}: cannot use {shown} as a tensor operand",
                              "test_scatter_reduce.py")


def _central_difference(fn, x):
    return numeric_gradient(lambda v: float(fn(v)), [x], 0)


def test_gradients_match_central_differences_away_from_ties():
    x = RNG.normal(size=(6, 3))
    ids = np.array([0, 2, 0, 1, 2, 2])
    index = RNG.integers(0, 3, (4, 3))
    w = RNG.normal(size=(3, 3))
    fns = [lambda a: gc.sum(gc.segment_max(a, ids, 3) * w),
           lambda a: gc.sum(gc.segment_min(a, ids, 3) * w),
           lambda a: gc.sum(gc.segment_prod(a, ids, 3) * w),
           lambda a: gc.sum(gc.segment_mean(a, ids, 3) * w),
           lambda a: gc.sum(gc.scatter_reduce(a[:3], 0, index, a[2:], "prod") * w),
           lambda a: gc.sum(gc.scatter_reduce(a[:3], 0, index, a[2:], "amax", False) * w),
           lambda a: gc.sum(gc.cummax(a, 0).values),
           lambda a: gc.sum(gc.logcumsumexp(a, 0) * a),
           lambda a: gc.sum(gc.median(a, 0).values * w[0]),
           lambda a: gc.sum(gc.kthvalue(a, 4, 0).values * w[0])]
    for fn in fns:
        np.testing.assert_allclose(gc.grad(fn)(x), _central_difference(fn, x), rtol=1e-6,
                                   atol=1e-8)


def test_bad_arguments_give_one_line_naming_the_function_and_argument():
    x = np.zeros((3, 4))
    for call, message in [
            (lambda: gc.segment_max(x, [0, 5, 1], 2),
             "segment_max: segment id 5 is outside [0, 2)"),
            (lambda: gc.segment_prod(x, [0, 1], 2),
             "segment_prod: data of shape (3, 4) must start with segment_ids' shape (2,)"),
            (lambda: gc.segment_mean(x, [0, 1, 1], -1), "segment_mean: num_segments must be "
             "non-negative"),
            (lambda: gc.compile(lambda a, i: gc.segment_min(a, i))(x, np.array([0, 1, 1])),
             "segment_min: num_segments is needed while tracing"),
            (lambda: gc.segment_max(x, [0, 1, 1], 2, unique_indices="no"),
             "segment_max: unique_indices"),
            (lambda: gc.scatter_reduce(x, 0, np.zeros((1, 4), int), x, "max"),
             "scatter_reduce: reduce must be one of sum, prod, mean, amax, amin, got 'max'"),
            (lambda: gc.scatter_reduce(x, 0, np.full((1, 4), 3), x, "sum"),
             "scatter_reduce: index 3 is outside [0, 3)"),
            (lambda: gc.scatter_reduce(x, 2, np.zeros((1, 4), int), x, "sum"),
             "scatter_reduce: dim"),
            (lambda: gc.scatter_reduce(x, 0, np.zeros((1, 5), int), x, "sum"),
             "scatter_reduce: index of shape (1, 5) is larger"),
            (lambda: gc.index_add(x, 1, [0, 4], np.zeros((3, 2))),
             "index_add: index 4 is outside [0, 4)"),
            (lambda: gc.index_add(x, 1, [0, 1], np.zeros((3, 3))),
             "index_add: source of shape (3, 3) does not fit 2 indices"),
            (lambda: gc.index_copy(x, 0, [[0]], np.zeros((1, 4))), "index_copy: index must be 1-d"),
            (lambda: gc.index_fill(x, 0, [0], np.zeros(2)), "index_fill: value must be a number"),
            (lambda: gc.cummax(x, 2), "cummax: dim"),
            (lambda: gc.logcumsumexp(np.zeros(3, np.int64), 0), "logcumsumexp: needs a floating"),
            (lambda: gc.kthvalue(x, 5), "kthvalue: k must be an int from 1 to 4"),
            (lambda: gc.median(x, 0, keepdim="yes"), "median: keepdim"),
            (lambda: gc.nanmedian(np.zeros((0, 2))), "nanmedian: of an empty value")]:
        assert_one_line_error(call, message, "test_scatter_reduce.py")


def test_review_torch_dim_of_a_0d_value_negative_index_fill_unsigned_and_traced_dims():
    """Review of the scatter_reduce module: torch takes dim=-1 of a 0-d value (graphc took
    0 alone, numpy's axis rule), index_fill takes an index in [-size, 0) counting from the
    end as torch's (graphc refused it), segment_min / cummin of uint8 were numpy's
    OverflowError, and an index out of range found as the plan ran named axis 0 for dim 1."""
    x0, t0 = np.float64(2.0), torch.tensor(2.0, dtype=torch.float64)
    i0, s0 = torch.tensor([0]), torch.tensor(3.0, dtype=torch.float64)
    for mine, theirs in [
            (lambda d: gc.index_add(x0, d, [0], np.float64(3.0)),
             lambda d: t0.index_add(d, i0, s0)),
            (lambda d: gc.index_copy(x0, d, [0], np.float64(3.0)),
             lambda d: t0.index_copy(d, i0, s0)),
            (lambda d: gc.index_fill(x0, d, [0], 3.0), lambda d: t0.index_fill(d, i0, 3.0)),
            (lambda d: gc.scatter_reduce(x0, d, np.int64(0), np.float64(3.0), "amax"),
             lambda d: t0.scatter_reduce(d, torch.tensor(0), s0, "amax")),
            (lambda d: gc.cummin(x0, d).values, lambda d: torch.cummin(t0, d).values),
            (lambda d: gc.logcumsumexp(x0, d), lambda d: torch.logcumsumexp(t0, d)),
            (lambda d: gc.kthvalue(x0, 1, d).values, lambda d: torch.kthvalue(t0, 1, d).values),
            (lambda d: gc.nanmedian(x0, d).indices, lambda d: torch.nanmedian(t0, d).indices)]:
        np.testing.assert_array_equal(mine(-1), theirs(-1).numpy())
    assert_one_line_error(lambda: gc.cummax(x0, -2), "cummax: dim -2 is out of range for a 0-d",
                          "test_scatter_reduce.py")
    x = RNG.normal(size=(3, 4))
    for index in ([-1, 0], [-4, 3, -3]):
        want = torch.tensor(x).index_fill(1, torch.tensor(index), 7.0).numpy()
        got = both(lambda a, i: gc.index_fill(a, 1, i, 7.0), x, np.array(index))
        np.testing.assert_array_equal(got, want)
    w = RNG.normal(size=x.shape)
    (tg,) = torch_grad(lambda a: (a.index_fill(1, torch.tensor([-1]), 7.0) * torch.tensor(w)).sum(),
                       x)
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(gc.index_fill(a, 1, [-1], 7.0) * w))(x),
                                  tg)
    for call, message in [
            (lambda: gc.index_fill(x, 1, [-5], 7.0), "index_fill: index -5 is outside [-4, 4)"),
            (lambda: gc.index_fill(x, 0, [3], 7.0), "index_fill: index 3 is outside [-3, 3)"),
            (lambda: gc.compile(lambda a, i: gc.index_fill(a, 1, i, 7.0))(x, np.array([-5])),
             "index_fill: index -5 is outside [-4, 4)"),
            (lambda: gc.compile(lambda a, i: gc.index_add(a, 1, i, a[:, :1]))(x, np.array([4])),
             "index_add: index 4 is outside [0, 4)"),
            (lambda: gc.compile(lambda a, i: gc.scatter_reduce(a, 1, i, a, "sum"))(
                x, np.full((3, 4), -1)), "scatter_reduce: index -1 is outside [0, 4)"),
            (lambda: gc.segment_min(np.arange(3, dtype=np.uint8), [0, 0, 1], 2),
             "segment_min: dtype uint8 is not supported"),
            (lambda: gc.cummin(np.arange(3, dtype=np.uint8), 0),
             "cummin: dtype uint8 is not supported")]:
        assert_one_line_error(call, message, "test_scatter_reduce.py")
