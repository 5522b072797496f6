"""Regression tests for wrong results and crashes at the edges (issue 13, items 1-12), each
in eager mode and compiled where both apply; reference values from PyTorch (float64) or
numpy."""
import re
import warnings

import numpy as np
import pytest
import torch

import graphc as gc
from ir.errors import GraphcError


# ---- 1: second derivatives through composite gradient rules ------------------------------------
@pytest.mark.parametrize("name", ["gelu", "softmax", "layer_norm"])
def test_hessian_when_the_incoming_gradient_depends_on_the_input(name):
    ours, theirs = {
        "gelu": (lambda x: gc.sum(gc.gelu(x) ** 2.0),
                 lambda x: (torch.nn.functional.gelu(x, approximate="tanh") ** 2).sum()),
        "softmax": (lambda x: gc.sum(gc.softmax(x) ** 2.0),
                    lambda x: (torch.softmax(x, -1) ** 2).sum()),
        "layer_norm": (lambda x: gc.sum(gc.layer_norm(x) ** 3.0),
                       lambda x: (torch.nn.functional.layer_norm(x, (3,)) ** 3).sum()),
    }[name]
    x = np.array([0.3, -0.7, 1.1])
    expected = torch.autograd.functional.hessian(theirs, torch.tensor(x)).numpy()
    np.testing.assert_allclose(gc.hessian(ours)(x), expected, rtol=1e-9, atol=1e-12)


# ---- 2: negative indices in take keep their gradient --------------------------------------------
def _take_loss(t):
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    return gc.sum(gc.take(t, np.array([-1, 0])) * w)


def test_take_gradient_with_negative_indices_compiled():
    g = gc.grad(_take_loss)(np.zeros((3, 2)))
    np.testing.assert_array_equal(g, [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])


def test_take_gradient_with_negative_indices_eager():
    t = gc.tensor(np.zeros((3, 2)), requires_grad=True)
    _take_loss(t).backward()
    np.testing.assert_array_equal(t.grad, [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])


@pytest.mark.parametrize("rows,width", [(3, 2), (2_000_000, 1)])
def test_scatter_add_wraps_negative_indices_on_every_path(rows, width):
    # the three numpy strategies (one-hot product, bincount, add.at) all wrap
    idx = np.array([-1, 0, -rows, 2])
    updates = np.arange(4 * width, dtype=np.float64).reshape(4, width)
    expected = np.zeros((rows, width))
    np.add.at(expected, idx, updates)
    np.testing.assert_array_equal(gc.scatter_add(gc.tensor(updates), idx, rows).data, expected)
    compiled = gc.compile(lambda u, i: gc.scatter_add(u, i, rows))(updates, idx)
    np.testing.assert_array_equal(compiled, expected)
    upd3 = updates.reshape(4, width, 1)
    expected3 = expected.reshape(rows, width, 1)
    np.testing.assert_array_equal(gc.scatter_add(gc.tensor(upd3), idx, rows).data, expected3)


@pytest.mark.parametrize("rows", [3, 3_000_000])
@pytest.mark.parametrize("dtype,values", [(np.int64, [2 ** 60 + 1, 3]),
                                          (np.int32, [2 ** 31 - 1, 2])])
def test_scatter_add_of_integers_is_exact_on_every_path(rows, dtype, values):
    # 3_000_000 rows (past the one-hot product's size) took the bincount path, which adds
    # in float64: 2**60 + 4 came back as 2**60, and an int32 sum past its range as its
    # minimum, where np.add.at wraps
    updates = np.array(values, dtype).reshape(2, 1)
    idx = np.array([0, 0])
    expected = np.zeros((rows, 1), dtype)
    np.add.at(expected, idx, updates)
    with np.errstate(over="ignore"):
        assert expected[0, 0] == np.array(values, dtype).sum(dtype=dtype)
    np.testing.assert_array_equal(gc.scatter_add(updates, idx, rows).data, expected)
    compiled = gc.compile(lambda u, i: gc.scatter_add(u, i, rows))(updates, idx)
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_array_equal(gc.segment_sum(updates, idx, rows).data, expected)


# ---- 3: integer min --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_min_at_the_most_negative_value(dtype):
    x = np.array([[np.iinfo(dtype).min, 5], [7, np.iinfo(dtype).max]], dtype)
    eager = gc.min(gc.tensor(x))
    assert eager.data.dtype == dtype and eager.data == np.iinfo(dtype).min
    np.testing.assert_array_equal(gc.min(gc.tensor(x), 0).data, x.min(0))
    compiled = gc.compile(lambda a: (gc.min(a), gc.min(a, 1, keepdims=True)))(x)
    assert compiled[0] == np.iinfo(dtype).min
    np.testing.assert_array_equal(compiled[1], x.min(1, keepdims=True))


# ---- 4: log_softmax of large inputs -----------------------------------------------------------
def test_log_softmax_keeps_precision_for_large_inputs():
    x = np.array([[1e4, 1e4 + 2, 1e4 - 1]], np.float32)
    expected = torch.log_softmax(torch.tensor(x), -1).numpy()  # [-2.1698, -0.16984604, -3.1698]
    compiled = gc.compile(lambda a: gc.log_softmax(a))(x)
    eager = gc.log_softmax(gc.tensor(x)).data
    for got in (compiled, eager):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    # and through cross_entropy, which is built on it
    t = np.array([1])
    ce = gc.compile(lambda a, t: gc.cross_entropy(a, t))(x, t)
    expected_ce = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t)).item()
    np.testing.assert_allclose(ce, expected_ce, rtol=1e-6)
    np.testing.assert_allclose(gc.cross_entropy(gc.tensor(x), t).data, expected_ce, rtol=1e-6)


# ---- 5: cross_entropy with -inf logits and ignored non-finite rows ----------------------------------
def _ce_both(logits, targets, **kw):
    eager = gc.cross_entropy(gc.tensor(logits), targets, **kw).data
    compiled = gc.compile(lambda z, t: gc.cross_entropy(z, t, **kw))(logits, targets)
    return eager, compiled


def test_cross_entropy_with_a_minus_inf_logit():
    logits, targets = np.array([[0.0, -np.inf, 1.0]]), np.array([0])
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits),
                                                 torch.tensor(targets)).item()  # 1.3133
    for got in _ce_both(logits, targets):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    g = gc.grad(lambda z: gc.cross_entropy(z, targets))(logits)
    tz = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(tz, torch.tensor(targets)).backward()
    np.testing.assert_allclose(g, tz.grad.numpy(), rtol=1e-12)


def test_cross_entropy_probability_zero_on_a_minus_inf_logit_adds_nothing():
    """A documented difference (README): torch's soft-target loss is NaN there (0 * -inf);
    graphc's is the loss over the other classes, as the masked class's log-probability of
    -inf weighs nothing, with torch's gradients of those classes (the masked one's is 0)."""
    logits = np.array([[0.5, -np.inf, 1.0, -0.3], [2.0, 0.1, -np.inf, -np.inf]])
    probs = np.array([[0.2, 0.0, 0.5, 0.3], [0.6, 0.4, 0.0, 0.0]])
    assert np.isnan(torch.nn.functional.cross_entropy(torch.tensor(logits),
                                                      torch.tensor(probs)).item())
    kept = [[0, 2, 3], [0, 1]]  # the finite classes: the loss of each row over them alone
    rows = [torch.tensor(logits[i, k], requires_grad=True) for i, k in enumerate(kept)]
    want = sum(torch.nn.functional.cross_entropy(r, torch.tensor(probs[i, k]))
               for i, (r, k) in enumerate(zip(rows, kept))) / 2
    want.backward()
    for got in _ce_both(logits, probs):
        np.testing.assert_allclose(got, want.item(), rtol=1e-13)
    g = gc.grad(lambda z: gc.cross_entropy(z, probs))(logits)
    for i, (r, k) in enumerate(zip(rows, kept)):
        np.testing.assert_allclose(g[i, k], r.grad.numpy(), rtol=1e-12, atol=1e-15)
        assert (g[i, np.setdiff1d(np.arange(4), k)] == 0).all()


def test_cross_entropy_ignores_rows_with_non_finite_logits():
    logits = np.array([[0.0, 2.0, 1.0], [np.nan, np.inf, -np.inf], [1.0, -1.0, 0.5]])
    targets = np.array([1, -100, 2])
    finite = torch.tensor(logits[[0, 2]])
    expected = torch.nn.functional.cross_entropy(finite, torch.tensor([1, 2])).item()
    for got in _ce_both(logits, targets):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    for got in _ce_both(logits, targets, reduction="none"):
        assert got[1] == 0.0 and np.isfinite(got).all()


# ---- 6: einsum: scalar outputs, '...', implicit output, diagonals -------------------------------
EINSUMS = [
    ("i,i->", [(3,), (3,)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("ij,jk->", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),                 # implicit output: 'ik'
    ("ba,ac", [(2, 3), (3, 4)]),                  # implicit output is sorted: 'bc'
    ("i,i", [(3,), (3,)]),                        # implicit scalar
    ("ii->i", [(3, 3)]),                          # diagonal
    ("ii", [(3, 3)]),                             # trace
    ("iij,jk->ik", [(3, 3, 2), (2, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),  # '...' broadcasting over ranks
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),   # size-1 '...' axis broadcasts
    ("i...->...", [(3, 2, 4)]),
    ("...,...->...", [(), (3,)]),
    (",->", [(), ()]),
    ("ij->", [(2, 3)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("i,j->ij", [(3,), (2,)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUMS, ids=[s for s, _ in EINSUMS])
def test_einsum_matches_numpy_with_gradients(spec, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=s) for s in shapes]
    expected = np.einsum(spec, *xs)
    eager = gc.einsum(spec, *[gc.tensor(x) for x in xs]).data
    compiled = gc.compile(lambda *a: gc.einsum(spec, *a))(*xs)
    for got in (eager, compiled):
        assert np.shape(got) == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    w = rng.normal(size=expected.shape)
    argnums = tuple(range(len(xs)))
    grads = gc.grad(lambda *a: gc.sum(gc.einsum(spec, *a) * w), argnums=argnums)(*xs)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    (torch.einsum(spec, *ts) * torch.tensor(w)).sum().backward()
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-12)
    tensors = [gc.tensor(x, requires_grad=True) for x in xs]
    gc.sum(gc.einsum(spec, *tensors) * w).backward()
    for g, t in zip(grads, tensors):
        np.testing.assert_allclose(t.grad, g, rtol=1e-12, atol=1e-12)


def test_einsum_full_contraction_gradient():
    g = gc.grad(lambda a: gc.einsum("i,i->", a, a))(np.ones(3))
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("spec,shapes", [("ij,jk->ik", [(2, 3), (4, 5)]), ("i.j->", [(2, 3)]),
                                         ("ij,jk->ikk", [(2, 3), (3, 4)]),
                                         ("...ij->", [(3,)]), ("i,j->i", [(2,)])])
def test_einsum_rejects_bad_specs_with_one_line(spec, shapes):
    with pytest.raises(GraphcError) as info:
        gc.einsum(spec, *[gc.tensor(np.ones(s)) for s in shapes])
    assert "\n" not in str(info.value).split("  at ")[0].strip()


# ---- 7: layer_norm over an empty last axis --------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 0), (0,), (3, 2, 0)])
def test_layer_norm_over_an_empty_axis(shape):
    x = np.zeros(shape, np.float32)
    expected = torch.nn.functional.layer_norm(torch.tensor(x), (0,)).numpy()
    assert gc.layer_norm(gc.tensor(x)).data.shape == expected.shape == shape
    assert gc.compile(lambda a: gc.layer_norm(a))(x).shape == shape
    w, b = np.ones(0, np.float32), np.zeros(0, np.float32)
    grads = gc.grad(lambda a, w, b: gc.sum(gc.layer_norm(a, w, b) * 2.0),
                    argnums=(0, 1, 2))(x, w, b)
    assert [g.shape for g in grads] == [shape, (0,), (0,)]
    t = gc.tensor(x, requires_grad=True)
    gc.sum(gc.layer_norm(t)).backward()
    assert t.grad.shape == shape


# ---- 8: matmul over an empty contracted axis --------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [((2, 3, 0), (0, 4)), ((3, 0), (0, 4)), ((2, 3, 0), (2, 0, 4)),
                                   ((2, 0, 3), (3, 4))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_with_empty_axes(sa, sb, dtype):
    a = np.ones(sa, dtype)
    b = np.ones(sb, dtype)
    expected = a @ b
    f = gc.compile(lambda a, b: (a @ b) + 1.0)
    for got in (f(a, b), f(a, b), (gc.tensor(a) @ gc.tensor(b)).data + 1.0):
        assert got.shape == expected.shape and got.dtype == dtype
        np.testing.assert_array_equal(got, expected + 1.0)
    ga, gb = gc.grad(lambda a, b: gc.sum(a @ b), argnums=(0, 1))(a, b)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (ta @ tb).sum().backward()
    np.testing.assert_array_equal(ga, ta.grad.numpy())
    np.testing.assert_array_equal(gb, tb.grad.numpy())


# ---- 9: jvp with primals of two float dtypes ----------------------------------------------------
def test_jvp_with_mixed_float_dtypes():
    def f(a, b):
        return a * gc.cast(b, "float64") + gc.sin(a)
    a, b = np.array([0.5, -1.0]), np.array([2.0, 3.0], np.float32)
    da, db = np.array([1.0, 0.5]), np.array([-1.0, 2.0], np.float32)
    out, tangent = gc.jvp(f, (a, b), (da, db))
    np.testing.assert_allclose(out, a * b + np.sin(a), rtol=1e-12)
    np.testing.assert_allclose(tangent, da * b + a * db + np.cos(a) * da, rtol=1e-7)
    assert tangent.dtype == np.float64
    # and symbolically, inside a traced function
    traced = gc.compile(lambda a, b, da, db: gc.jvp(f, (a, b), (da, db))[1])(a, b, da, db)
    np.testing.assert_allclose(traced, tangent, rtol=1e-12)


# ---- 10: 0-d arrays are tensors, not weak scalars ---------------------------------------------------
def test_zero_d_index_array_is_an_integer_tensor():
    t = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(gc.take(gc.tensor(t), np.array(1)).data, t[1])
    np.testing.assert_array_equal(gc.compile(lambda t: gc.take(t, np.array(1)))(t), t[1])
    np.testing.assert_array_equal(gc.compile(lambda t: t[np.array(-1)])(t), t[-1])


def test_zero_d_bool_array_is_a_condition():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    np.testing.assert_array_equal(gc.where(np.array(True), gc.tensor(a), gc.tensor(b)).data, a)
    f = gc.compile(lambda a, b: gc.where(np.array(False), a, b))
    np.testing.assert_array_equal(f(a, b), b)


def test_zero_d_float64_array_does_not_mix_silently_with_float32():
    x = np.ones(2, np.float32)
    with pytest.raises(GraphcError, match="one dtype"):
        gc.tensor(x) + np.array(1e-50)
    with pytest.raises(GraphcError, match="one dtype"):
        gc.compile(lambda x: x + np.array(1e-50))(x)
    # its own dtype, where it matches; Python scalars stay weak
    assert (gc.tensor(x) + np.array(2.0, np.float32)).data.dtype == np.float32
    assert (gc.tensor(x) + 1e-50).data.dtype == np.float32
    np.testing.assert_array_equal((gc.tensor(np.ones(2)) + np.array(1e-50)).data, 1.0 + 1e-50)


# ---- 11: reflected & and | ---------------------------------------------------------------------
def test_reflected_logical_operators():
    a = np.array([1.0, -1.0, 2.0])
    m = np.array([True, False, False])
    expected_or, expected_and = m | (a > 0), m & (a > 0)
    np.testing.assert_array_equal((m | (gc.tensor(a) > 0)).data, expected_or)
    np.testing.assert_array_equal((m & (gc.tensor(a) > 0)).data, expected_and)
    f = gc.compile(lambda a: (m | (a > 0), m & (a > 0), True & (a > 1), False | (a > 1)))
    got = f(a)
    np.testing.assert_array_equal(got[0], expected_or)
    np.testing.assert_array_equal(got[1], expected_and)
    np.testing.assert_array_equal(got[2], a > 1)
    np.testing.assert_array_equal(got[3], a > 1)


def test_numpy_left_operands_stay_graphc_ops_numpy_scalars_weak_masked_arrays_on_tape():
    """OperatorMixin.__array_ufunc__ is None so that numpy hands an operator with a numpy value
    on the left to the tensor's reflected operator. Making it a method broke two things: a
    numpy scalar left of a comparison reached it as a strong 0-d array (refused "one dtype"),
    and np.ma.masked_array * t computed itself on the values, off the tape (a lost gradient)."""
    x = np.array([2.0, 3.0], np.float32)
    thr = np.mean(np.array([2.0, 3.0]))  # np.float64, as numpy's reductions give
    for got in [thr < gc.tensor(x), gc.compile(lambda v: thr < v)(x)]:
        assert np.asarray(got).dtype == np.bool_
        np.testing.assert_array_equal(np.asarray(got), thr < x)
    ints = np.array([2, 3], np.int32)
    np.testing.assert_array_equal((np.int64(3) == gc.tensor(ints)).data, [False, True])
    np.testing.assert_array_equal(gc.compile(lambda v: np.int64(3) == v)(ints), [False, True])
    # a masked array defers to the tensor (its mask is not graphc's): a Tensor on the tape
    m = np.ma.masked_array(np.array([1.0, 2.0], np.float32), mask=[False, True])
    t = gc.tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    y = m * t
    assert isinstance(y, gc.Tensor)
    np.testing.assert_array_equal(y.data, [3.0, 8.0])
    (gc.sum(t * t) + gc.sum(y)).backward()
    np.testing.assert_array_equal(t.grad, 2 * t.data + m.data)


# ---- 12: an integer scalar too large for the tensor's dtype -----------------------------------------
def test_integer_scalar_overflow_is_a_graphc_error_naming_the_line():
    x = np.ones(2, np.int32)
    with pytest.raises(GraphcError, match=r"1099511627776 does not fit in int32") as info:
        gc.tensor(x) + 2**40
    assert "test_edges.py" in str(info.value)
    with pytest.raises(GraphcError, match=r"does not fit in int32") as info:
        gc.compile(lambda x: x * -2**31 + 2**31)(x)
    assert "test_edges.py" in str(info.value)
    # the bounds themselves fit
    assert (gc.tensor(x) * -2**31).data.tolist() == [-2**31, -2**31]
    assert (gc.tensor(np.ones(1, np.int64)) + 2**62).data.tolist() == [2**62 + 1]


def test_a_longdouble_scalar_is_a_float_scalar():
    # np.longdouble(2.5).item() is an np.longdouble, not a Python float, so the scalar took
    # an int32 tensor's dtype, 2.5 silently truncated to 2 ([2, 4, 6]), eager and compiled;
    # every other float scalar is refused there (numpy gives [2.5, 5., 7.5] in float128)
    i32 = np.array([1, 2, 3], np.int32)
    with pytest.raises(GraphcError, match="float scalar .* meets an integer tensor"):
        gc.tensor(i32) * np.longdouble(2.5)
    with pytest.raises(GraphcError, match="float scalar .* meets an integer tensor"):
        gc.compile(lambda v: v * np.longdouble(2.5))(i32)
    out = (gc.tensor(i32.astype(np.float32)) * np.longdouble(2.5)).data
    assert out.dtype == np.float32 and out.tolist() == [2.5, 5.0, 7.5]
    # numbers alone: a float beside an int is float32, as gc.add(2.5, 1) (it was refused)
    out = gc.add(np.longdouble(2.5), 1).data
    assert out.dtype == np.float32 and out == 3.5


def test_a_longdouble_clip_bound_makes_integers_float32_as_a_float64_one():
    # clip(i32, np.float64(2.5), 5) is float32 [2.5, 3, 5] (JAX's jnp.clip), but clip asked
    # is_float of the bound's dtype, which float128 is not: "maximum: float scalar
    # np.longdouble('2.5') meets an integer tensor"
    i32 = np.array([0, 3, 9], np.int32)
    for out in (gc.clip(gc.tensor(i32), np.longdouble(2.5), 5).data,
                gc.compile(lambda v: gc.clip(v, np.longdouble(2.5), 5))(i32),
                gc.compile(lambda v, lo: gc.clip(v, lo, 5))(i32, np.longdouble(2.5))):
        assert out.dtype == np.float32 and out.tolist() == [2.5, 3.0, 5.0]
    out = gc.clip(gc.tensor(i32), 0, np.longdouble(5.5)).data
    assert out.dtype == np.float32 and out.tolist() == [0.0, 3.0, 5.5]


@pytest.mark.parametrize("name, reference", [
    ("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc), ("round", np.round),
    ("reciprocal", np.reciprocal), ("nan_to_num", np.nan_to_num)])
def test_a_longdouble_scalar_is_the_float_an_np_float64_is(name, reference):
    # api asked is_float(_dtype(x)), which float128 is not: floor, ceil, trunc and round of
    # np.longdouble(2.5) gave float128 2.5 back unrounded, reciprocal refused it ("of
    # float128 values") and nan_to_num kept inf; as np.float64's, float32 (a weak float alone).
    # nan_to_num of a float number gave inf, warning "overflow encountered in cast": its
    # float64 largest was cast to float32
    fn = getattr(gc, name)
    for v in (2.5, -2.5, 0.75, np.inf, -np.inf, np.nan):
        if name == "reciprocal" and not np.isfinite(v):
            continue
        want = reference(np.float32(v))
        for scalar in (np.longdouble(v), np.float64(v)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = np.asarray(fn(scalar).data)
            assert out.dtype == np.float32, (scalar, out.dtype)
            np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(gc.compile(fn)(np.longdouble(v)), want)  # (it was)


@pytest.mark.parametrize("key, message", [
    ((Ellipsis, Ellipsis), r"^an index can only have a single ellipsis \('\.\.\.'\)"),
    ((Ellipsis, 0, Ellipsis), r"^an index can only have a single ellipsis"),
    (slice(None, None, 0), r"^slice \[::0\]: slice step cannot be zero"),
    (slice(1.5, None), r"^slice \[1.5:\]: slice indices must be integers"),
])
def test_a_bad_index_is_one_line_naming_it(key, message):
    # two ellipses raised a bare IndexError "tuple index out of range" from inside getitem,
    # a zero step numpy's bare ValueError, eagerly and traced (numpy refuses both)
    x = np.arange(12.0).reshape(3, 4)
    for run in (lambda: gc.tensor(x)[key], lambda: gc.compile(lambda a: a[key])(x)):
        with pytest.raises(GraphcError, match=message) as info:
            run()
        assert "test_edges.py" in str(info.value)


@pytest.mark.parametrize("cond", [np.array([1, 0, 1], np.int32), np.array([1.0, 0.0, 1.0])])
def test_where_blames_a_non_bool_condition_not_the_number_beside_it(cond):
    # an int32 condition gave "where: float scalar 1.0 meets an integer tensor" (the number
    # took the condition's dtype); torch: "where expected condition to be a boolean tensor"
    for run in (lambda: gc.where(gc.tensor(cond), 1.0, 0.0),
                lambda: gc.compile(lambda c: gc.where(c, 1.0, 0.0))(cond),
                lambda: gc.where(cond, np.ones(3), 0.0)):
        with pytest.raises(GraphcError, match=f"^where: the condition must be bool, got "
                                              f"{cond.dtype}; compare it"):
            run()
    assert gc.where(cond != 0, 1.0, 0.0).data.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("cond, got", [(1, "the int 1"), (1.0, "the float 1.0")])
def test_where_blames_a_number_condition_by_its_own_type(cond, got):
    # a Python number has no dtype, so the bool check missed it: where(1, a, -a) said
    # "where(f64[], ...): condition must be bool, got float64" (the dtype the 1 adopted) and
    # where(1.0, ai, 0) "float scalar 1.0 meets an integer tensor"; torch refuses a number
    # condition too (a TypeError: "where() received an invalid combination of arguments")
    a, ai = np.array([10.0, 20.0, 30.0]), np.array([10, 20, 30], np.int32)
    for run in (lambda: gc.where(cond, a, -a), lambda: gc.where(cond, ai, 0)):
        with pytest.raises(GraphcError, match=f"^where: the condition must be bool, got {got}; "
                                              r"compare it \(cond != 0\)") as info:
            run()
        assert "test_edges.py" in str(info.value)
    assert gc.where(True, a, -a).data.tolist() == [10.0, 20.0, 30.0]  # a bool is a mask
    with pytest.raises(GraphcError, match="got float64; "):  # a numpy scalar keeps its dtype
        gc.where(np.float64(1.0), a, -a)


def test_where_names_itself_refusing_a_torch_condition():
    # the bool check's _dtype refused a torch tensor without the op's name ("got a
    # torch.Tensor, another library's array"), where every other operand's line names it
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    for cond in (torch.tensor([True, False, True]), torch.tensor([1, 0, 1])):
        with pytest.raises(GraphcError, match=r"^where: got a torch\.Tensor, another library's "
                                              "array; pass a numpy array"):
            gc.where(cond, 1.0, 0.0)


@pytest.mark.parametrize("name, call", [
    ("clip", lambda t: gc.clip(t, 0.0, 1.0)), ("floor", gc.floor), ("round", gc.round),
    ("reciprocal", gc.reciprocal), ("cast", lambda t: gc.cast(t, "float64")),
    ("trunc", gc.trunc), ("mean", gc.mean), ("nan_to_num", gc.nan_to_num),
    ("clip", lambda t: gc.clip(gc.tensor(np.arange(3)), t, 5)),
    ("add", lambda t: gc.tensor(np.ones(3, np.float32)) + t)])
def test_an_op_refusing_a_torch_operand_names_itself(name, call):
    # api's _dtype refused a torch tensor without an op name ("got a torch.Tensor, ..."), and
    # a torch bound of clip was blamed on the maximum clip calls ("maximum: got ...")
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    t = torch.tensor([1.0, 2.5, 3.0])
    for run in (call, lambda t: gc.compile(lambda v: call(t) + v)(np.zeros(3, np.float32))):
        with pytest.raises(GraphcError, match=rf"^{name}: got a torch\.Tensor, another library's "
                                              r"array; [^\n]*\n  at [^\n]*test_edges\.py:\d+$"):
            run(t)


_XF, _XI = np.array([1.0, -2.0, 3.0], np.float32), np.array([1, -2, 3])


@pytest.mark.parametrize("name, call, says", [
    ("clip", lambda: gc.clip(_XF, "a", 1), "cannot use a str as a tensor operand"),
    ("stack", lambda: gc.stack([_XF, "a"]), "cannot use a str as a tensor operand"),
    ("dot", lambda: gc.dot(_XF, "a"), "cannot use a str as a tensor operand"),
    ("leaky_relu", lambda: gc.leaky_relu(_XI), "float scalar 0.01 meets an integer tensor"),
    ("dot", lambda: gc.dot(_XI, _XF), r"matmul\(i64\[1,3\], f32\[3,1\]\): operands must "
                                      "have one dtype, got int64 and float32")])
def test_a_refusal_beside_the_torch_one_names_the_function_called(name, call, says):
    # the lines beside refuse_foreign_array's (a str operand, a float scalar meeting
    # integers, a type rule's dtype mix) named the op inside the function the user called:
    # "maximum: cannot use a str", "reshape: ...", "mul: float scalar 0.01 ...", "matmul(...)"
    # (torch refuses these too: leaky_relu of a Long, dot of Long and Float)
    for run in (call, lambda: gc.compile(lambda v: call() + v)(np.zeros((), np.float32))):
        with pytest.raises(GraphcError, match=rf"^{name}: {says}[^\n]*\n  at [^\n]*"
                                              r"test_edges\.py:\d+$"):
            run()


@pytest.mark.parametrize("name", ["huber_loss", "hinge_embedding_loss", "soft_margin_loss"])
def test_an_integer_loss_input_under_autocast_is_the_loss_s_dtype_refusal(name):
    # torch refuses an integer input with a float target (its float result can't be cast to
    # the input's Long), under autocast too; graphc's autocast cast the target to int64,
    # which met the loss's float delta ("float scalar 1.0 meets an integer tensor")
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError):
        getattr(torch.nn.functional, name)(torch.tensor(_XI), torch.tensor(_XF))
    with gc.autocast("bfloat16"), pytest.raises(
            GraphcError, match=rf"^{name}: input is int64 but target is float32 \(under "
                               r"autocast too\); cast one \(\.astype\)"):
        getattr(gc, name)(gc.tensor(_XI), gc.tensor(_XF))
    # a float input with an integer target is torch's promotion there, and graphc's
    with gc.autocast("bfloat16"), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = getattr(gc, name)(gc.tensor(_XF), gc.tensor(_XI))
        theirs = getattr(torch.nn.functional, name)(torch.tensor(_XF), torch.tensor(_XI))
    np.testing.assert_allclose(np.float32(ours.data), theirs.float().item(), rtol=1e-6)


# ---- found by the edge-input fuzzing (tests/randgraph.py) -----------------------------------
def test_max_over_an_empty_axis_is_refused_when_traced():
    f = lambda a: gc.max(a, 0)  # noqa: E731
    for run in (f, gc.compile(f)):
        with pytest.raises(GraphcError, match=r"max over axis 0 of size 0.*\n  at .*test_edges"):
            run(np.zeros((0, 2)))
    assert gc.max(np.zeros((0, 2)), 1).shape == (0,)  # a non-empty axis of an empty array


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((2, 0), 1), ((0, 3), 0), ((0, 3), 1)])
def test_softmax_over_empty_arrays_is_empty(op, shape, axis):
    fn = getattr(gc, op)
    f = lambda a: fn(a, axis)  # noqa: E731
    x = np.zeros(shape, np.float32)
    with np.errstate(divide="ignore"):  # log of an empty row's sum, as numpy
        for run in (f, gc.compile(f)):
            out = np.asarray(run(x))
            assert out.shape == shape and out.dtype == np.float32
        grad = gc.grad(lambda a: gc.sum(f(a) * 2.0))(x.astype(np.float64))
    assert grad.shape == shape


def test_jvp_tangent_of_another_dtype_or_shape_is_named():
    with pytest.raises(GraphcError, match=r"jvp: tangent 0 is float64\[2\] but its primal is "
                                          r"float32\[2\]"):
        gc.jvp(gc.exp, (np.ones(2, np.float32),), (np.ones(2),))
    with pytest.raises(GraphcError, match=r"tangent 1 is float64\[3\] but its primal is "
                                          r"float64\[2\]"):
        gc.jvp(lambda a, b: a * b, (np.ones(2), np.ones(2)), (np.ones(2), np.ones(3)))


@pytest.mark.parametrize("index", [1, np.int64(1), np.int32(1), [1, 2], (0, 2)])
def test_a_python_or_numpy_integer_index_gathers_rows(index):
    """An index is not a weak scalar: it must not take the table's float dtype (take refused
    `gc.take(table, 1)` as "indices must be integers, got float64")."""
    table = np.array([1.0, 2.0, 3.0])
    expected = table[np.asarray(index)]
    np.testing.assert_array_equal(np.asarray(gc.take(table, index)), expected)
    np.testing.assert_array_equal(np.asarray(gc.compile(lambda t: gc.take(t, index))(table)),
                                  expected)
    updates = np.ones(np.shape(index))
    np.testing.assert_array_equal(np.asarray(gc.scatter_add(updates, index, 4)),
                                  np.bincount(np.ravel(index), minlength=4) * 1.0)
    with pytest.raises(GraphcError, match="integers"):
        gc.take(table, True)


@pytest.mark.parametrize("args, kwargs", [
    ((0.5, 3), {}), ((0, 2.5), {}), ((0, 3, 1.5), {}), ((0.0, 1.0, 0.25), {}),
    ((2.9,), {}), ((3, 0, -0.5), {}), ((1.0, 1.0), {}), ((0.5, 3), {"dtype": "float64"}),
    ((5,), {}), ((1, 10, 3), {}), ((4,), {"dtype": "float32"})])
def test_arange_follows_numpy_with_float_bounds_and_steps(args, kwargs):
    """A float bound or step used to be truncated to an int: arange(0.5, 3) gave [0, 1, 2]."""
    expected = np.arange(*args, dtype=kwargs.get("dtype"))
    if expected.dtype == np.float64 and "dtype" not in kwargs:
        expected = expected.astype(np.float32)  # graphc's default float, as JAX's
    for got in (gc.arange(*args, **kwargs), gc.compile(lambda: gc.arange(*args, **kwargs))()):
        got = np.asarray(got)
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.zeros((2.5,)), "zeros: a size must be an int, got 2.5"),
    (lambda x: gc.full((2, 2.5), 1.0), "full: a size must be an int, got 2.5"),
    (lambda x: gc.ones(2.0), "ones: a size must be an int, got 2.0"),
    (lambda x: gc.zeros(np.float32(2)), "zeros: a size must be an int, got np.float32"),
    (lambda x: gc.full(True, 1.0), "full: a size must be an int, got True"),
    (lambda x: gc.ones(np.complex64(2)), "ones: a size must be an int, got np.complex64"),
    (lambda x: gc.eye(2.5), "eye: a size must be an int"),
    (lambda x: gc.one_hot(np.array([0, 1]), 3.5), "one_hot: depth must be an int"),
    (lambda x: gc.roll(x, 1.5, 1), "roll: a shift must be an int"),
    (lambda x: gc.tril(x, 0.5), "diagonal offset k must be an int"),
    (lambda x: gc.dynamic_slice(x, np.int64(1), 2.5, axis=1), "dynamic_slice: size must"),
    (lambda x: gc.segment_sum(x, np.array([0, 1, 1]), 2.5), "segment_sum: num_segments must"),
    (lambda x: gc.scatter_add(x, np.array([0, 1, 1]), 4.5), "scatter_add: rows must"),
    (lambda x: gc.arange(0, 1, 0.0), "step must be nonzero"),
    (lambda x: gc.sum(x, (0, -2)), r"axis \(0, -2\) names an axis twice"),
    (lambda x: gc.max(x, (1, 1)), "names an axis twice"),
    (lambda x: gc.sum(x, 1.0), "axis must be an int, got 1.0"),
    (lambda x: gc.split(x, 2.0, 1), "split: indices_or_sections must be an int or a list"),
    (lambda x: gc.split(x, [2.0, 2], 1), "split: an index must be an int"),
    (lambda x: gc.round(x, 1.5), "round: decimals must be an int"),
])
def test_a_size_count_or_axis_that_is_not_an_int_is_refused_in_one_line(call, message):
    """numpy and torch refuse these; graphc truncated them (int(2.5) == 2) or raised a raw
    TypeError from inside."""
    x = np.arange(12.0).reshape(3, 4)
    with pytest.raises(GraphcError, match=message):
        call(x)
    with pytest.raises(GraphcError, match=message):
        gc.compile(call)(x)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.scatter_add(x, np.array([0, 1, 1]), -2),
     "scatter_add: rows must be non-negative, got -2"),
    (lambda x: gc.segment_sum(x, np.array([0, 1, 1]), -1),
     "segment_sum: num_segments must be non-negative, got -1")])
def test_a_negative_row_or_segment_count_is_refused_in_one_line(call, message):
    """scatter_add's was numpy's 'negative dimensions are not allowed' from inside, and
    segment_sum's 'segment id 1 is outside [0, -1)', blaming the ids."""
    from errorcheck import assert_one_line_error
    x = np.arange(12.0).reshape(3, 4)
    assert_one_line_error(lambda: call(x), message, "test_edges.py")
    assert_one_line_error(lambda: gc.compile(call)(x), message, "test_edges.py")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.uint32, np.uint64])
def test_one_hot_widens_numpys_other_integer_dtypes_as_take_does(dtype):
    """gc.one_hot(np.array([2, 0], np.uint8), 3) was 'dtype uint8 is not supported', where
    gc.take widens such indices (numpy and jax.nn.one_hot take them); a list likewise."""
    idx = np.array([2, 0, 7], dtype)  # 7: outside the depth, a row of zeros as in JAX
    expected = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0]], np.float32)
    for got in (gc.one_hot(idx, 3), gc.compile(lambda: gc.one_hot(idx, 3))(),
                gc.one_hot([2, 0, 7], 3)):
        got = np.asarray(got)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_review_r7_one_hot_names_itself_refusing_an_index_past_int64():
    """Review r7 of 7780b56: read as take reads its indices, one_hot's refusal of a uint64
    index past int64's largest (or a Python int or list one) lost 'one_hot:', which its dtype
    refusal had given."""
    from errorcheck import assert_one_line_error
    for idx, shown in ((np.array([2 ** 64 - 1, 1], np.uint64),
                        "index 18446744073709551615 (uint64)"),
                       ([2 ** 63, 1], "an index in [9223372036854775808, 1]"),
                       (2 ** 63, "index 9223372036854775808")):
        message = f"one_hot: {shown} does not fit in int64, graphc's index type"
        assert_one_line_error(lambda: gc.one_hot(idx, 3), message, "test_edges.py")
        assert_one_line_error(lambda: gc.compile(lambda: gc.one_hot(idx, 3))(), message,
                              "test_edges.py")


def test_one_hot_of_torchs_num_classes_minus_one_says_to_pass_the_count():
    """torch's F.one_hot(x, -1) infers the count from the values; graphc said only 'depth
    must be positive', naming no way out."""
    from errorcheck import assert_one_line_error
    assert_one_line_error(lambda: gc.one_hot(np.array([0, 2]), -1),
                          "one_hot: depth must be positive, got -1; torch's num_classes=-1 (the "
                          "largest index + 1) is a shape that depends on the values: pass the "
                          "number of classes", "test_edges.py")


@pytest.mark.parametrize("fill", [0.5, 5, -1, 0.25, float("nan"), float("inf"), 0, 0.0,
                                  np.float32(0.5), True])
def test_a_bool_full_holds_the_fills_truth_as_numpy_and_torch(fill):
    """gc.full((2,), 0.5, "bool") was [False, False] (the fill went through int(): 0); numpy
    and torch fill the number's truth, True for any number but 0; NaN and inf, which int()
    refused, are True too."""
    expected = np.full((2,), fill, np.bool_)
    assert expected.tolist() == torch.full((2,), float(fill), dtype=torch.bool).tolist()
    for got in (gc.full((2,), fill, "bool"), gc.compile(lambda: gc.full((2,), fill, "bool"))()):
        got = np.asarray(got)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [np.int64(3), np.int32(3), np.uint8(3), np.array(3)])
def test_a_numpy_integer_is_a_size_of_ones_zeros_and_full(size):
    """gc.ones(np.int64(3)) iterated the size: a raw TypeError ("'numpy.int64' object is not
    iterable"); numpy and torch take a numpy integer (and a 0-d integer array) as a size."""
    for make, expected in ((lambda: gc.ones(size), np.ones(size, np.float32)),
                           (lambda: gc.zeros(size, "int32"), np.zeros(size, np.int32)),
                           (lambda: gc.full(size, 2.5), np.full(size, 2.5, np.float32))):
        for got in (make(), gc.compile(make)()):
            got = np.asarray(got)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size", [3, np.int64(3), np.int32(3), np.array(3)])
def test_a_number_is_a_shape_of_broadcast_to(size):
    """f5 item 4: gc.broadcast_to(x, np.int64(3)) iterated the number (a raw TypeError
    "'numpy.int64' object is not iterable", a Python int too); numpy takes it as (3,)."""
    x = np.array([1.5], np.float32)
    expected = np.broadcast_to(x, size)
    for got in (gc.broadcast_to(x, size), gc.broadcast_to(gc.tensor(x), size),
                gc.compile(lambda v: gc.broadcast_to(v, size))(x)):
        got = np.asarray(got)
        assert got.shape == expected.shape == (3,) and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(GraphcError, match=r"^broadcast_to: a size must be an int, got 3\.0"):
        gc.broadcast_to(x, 3.0)


def test_a_0d_integer_tensor_is_a_size_and_a_str_or_traced_one_is_one_line():
    """8781a2a left gc.ones(torch.tensor(3)) a raw TypeError (iterated: 'iteration over a 0-d
    tensor') where numpy and torch take it; a 0-d float tensor in a tuple was truncated by
    int() (torch and numpy refuse it); gc.ones("12") was iterated into the shape (1, 2); and
    compile(lambda n: gc.ones(n)) said 'len() of a 0-d symbolic value' where gc.ones((n,))
    names the argument n and static_argnums."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    for size, oracle in ((torch.tensor(3), torch.tensor(3)),
                         (torch.tensor(3, dtype=torch.uint8), torch.tensor(3, dtype=torch.uint8)),
                         (gc.tensor(3), torch.tensor(3))):
        for make, expected in ((lambda: gc.ones(size), torch.ones(oracle)),
                               (lambda: gc.zeros((size, 2)), torch.zeros((oracle, 2)))):
            for got in (make(), gc.compile(make)()):
                assert np.asarray(got).dtype == np.float32
                np.testing.assert_array_equal(np.asarray(got), expected.numpy())
    for size, shown in ((torch.tensor(2.5), "tensor(2.5000)"), (torch.tensor(True), "tensor(True)"),
                        (gc.tensor(2.5), "Tensor(2.5, dtype=f64)")):
        for name, call in (("ones", lambda: gc.ones(size)), ("zeros", lambda: gc.zeros((size,)))):
            with pytest.raises(GraphcError) as info:
                call()
            line, where = str(info.value).splitlines()
            assert line == f"{name}: a size must be an int, got {shown}"
            assert "test_edges.py" in where
    with pytest.raises(GraphcError, match=r"^ones: a size must be an int, got '12'\n"):
        gc.ones("12")
    for make in (lambda n: gc.ones(n), lambda n: gc.ones((n,))):
        with pytest.raises(GraphcError, match=r"^int\(\) of a symbolic value: .* the value "
                           r"passed as 'n' is traced: .* static_argnums"):
            gc.compile(make)(np.int64(3))


def test_a_str_size_is_refused_eagerly_and_a_symbolic_one_kept_in_a_trace():
    """s50 f1 item 1: a str size reached as_dim, which reads IR text, so eagerly gc.eye('3')
    and tril_mask('3') were 3 x 3 matrices, gc.zeros(('3', 2)) a (3, 2) array, arange('4')
    [0 1 2 3] and gc.reshape(x, ('2', 6)) a reshape, where numpy and torch refuse a str size;
    eye('-3') was parse_dim's bare ValueError. A str is a size only where it names a symbol
    inside a trace (s49's refusal of every str, reverted in 3412c4f and 3ec8d23, broke that):
    eagerly, or an integer text traced, it is one line naming the function."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    for np_call in (lambda: np.eye("3"), lambda: np.zeros(("3", 2)), lambda: np.arange("4"),
                    lambda: x.reshape(("2", 6)), lambda: torch.zeros(("3", 2)),
                    lambda: torch.eye("3")):
        with pytest.raises(TypeError):
            np_call()
    for call, line in ((lambda v: gc.eye("3"), "eye: a size must be an int, got '3'"),
                       (lambda v: gc.eye("-3"), "eye: a size must be an int, got '-3'"),
                       (lambda v: gc.eye(3, "2"), "eye: a size must be an int, got '2'"),
                       (lambda v: gc.tril_mask("3"), "tril_mask: a size must be an int, got '3'"),
                       (lambda v: gc.arange("4"), "arange: a bound must be an int, got '4'"),
                       (lambda v: gc.arange(1, "4"), "arange: a bound must be an int, got '4'"),
                       (lambda v: gc.reshape(v, ("2", 6)),
                        "reshape: a size must be an int, got '2'"),
                       (lambda v: gc.reshape(v, "-1"), "reshape: a size must be an int, got '-1'"),
                       (lambda v: v.reshape("12"), "reshape: a size must be an int, got '12'"),
                       (lambda v: gc.zeros(("3", 2)), "zeros: a size must be an int, got '3'"),
                       (lambda v: gc.ones(["-3", 2]), "ones: a size must be an int, got '-3'"),
                       (lambda v: gc.full(("3", 2), 1.0), "full: a size must be an int, got '3'"),
                       (lambda v: gc.broadcast_to(v, ("2", 3, 4)),
                        "broadcast_to: a size must be an int, got '2'")):
        for run in (lambda: call(gc.tensor(x)), lambda: gc.compile(call)(x)):
            with pytest.raises(GraphcError) as info:
                run()
            got, where = str(info.value).splitlines()
            assert got == line and "test_edges.py" in where
    # eagerly a name binds nothing ('the symbolic dimension n has no value while tracing')
    for call, line in ((lambda: gc.zeros(("n", 2)), "zeros: a size must be an int, got 'n'"),
                       (lambda: gc.eye("n"), "eye: a size must be an int, got 'n'")):
        with pytest.raises(GraphcError) as info:
            call()
        assert str(info.value).splitlines()[0] == line
    # traced, a name (or an expression of names) is a symbolic size, bound per call
    sym = gc.compile(lambda v: (gc.reshape(v, (3, "n")), v.reshape("3*n"),
                                v[:, :2] + gc.zeros(("n", 2)), gc.eye("n"), gc.arange("n"),
                                gc.tril_mask("n", 2), gc.broadcast_to(v[0], ("n", 3))),
                     polymorphic_shapes=(("n", 3),))
    for n in (4, 2):
        v = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
        expected = (v.reshape(3, n), v.reshape(3 * n), v[:, :2], np.eye(n, dtype=np.float32),
                    np.arange(n), np.tri(n, 2, dtype=bool), np.broadcast_to(v[0], (n, 3)))
        for got, want in zip(sym(v), expected):
            assert np.asarray(got).dtype == want.dtype
            np.testing.assert_array_equal(np.asarray(got), want)
    with pytest.raises(GraphcError) as info:  # (was parse_dim's bare ValueError)
        gc.trace(lambda v: gc.reshape(v, ("n+", 3)), gc.spec(("n", 3)))
    assert str(info.value).splitlines()[0] == ("reshape: a size must be an int or a symbolic "
                                               "size, got 'n+': bad dimension 'n+'")
    assert str(gc.spec(("n", "2*n"))) == "f32[n,2*n]"  # (gc.spec's names, eagerly)


def test_a_str_size_whose_symbols_cancel_is_that_size_in_a_trace():
    """s51 f1 item 4: a str size 'n-n' (or 'n - n') in a trace was refused ("zeros: a size
    must be an int, got 'n-n'"), though it is 0 for every n, as the expression
    x.shape[0] - x.shape[0] is, and numpy and JAX take a size of 0. It is that number now
    (polymorphic, and in a plain compile, where it needs no binding); 'n-n-1' is still no
    size, and eagerly a str size is refused as before."""
    sizes = lambda v: (gc.zeros(("n-n", 2)), gc.eye("n - n"), gc.arange("n-n+2"),  # noqa
                       gc.reshape(v[:0], ("n-n", 3)), gc.tril_mask("n-n+1", 2),
                       gc.zeros((v.shape[0] - v.shape[0], 2)))
    expected = (np.zeros((0, 2), np.float32), np.eye(0, dtype=np.float32), np.arange(2),
                np.zeros((0, 3), np.float32), np.tri(1, 2, dtype=bool),
                np.zeros((0, 2), np.float32))
    for fn in (gc.compile(sizes, polymorphic_shapes=(("n", 3),)), gc.compile(sizes)):
        for n in (1, 4):
            got = fn(np.ones((n, 3), np.float32))
            for g, want in zip(got, expected):
                assert np.asarray(g).dtype == want.dtype
                np.testing.assert_array_equal(np.asarray(g), want)
    with pytest.raises(GraphcError) as info:
        gc.trace(lambda v: gc.zeros(("n-n-1", 2)), gc.spec(("n", 3)))
    assert str(info.value).splitlines()[0] == ("zeros: a size must be an int or a symbolic "
                                               "size, got 'n-n-1': a dimension is 0 or more, "
                                               "got -1")
    with pytest.raises(GraphcError, match="^zeros: a size must be an int, got 'n-n'\n"):
        gc.zeros(("n-n", 2))  # (eagerly no str is a size, as numpy's)


def test_a_str_size_naming_a_symbol_no_input_has_is_refused_naming_the_function():
    """s50 f7 item 2: inside an eager gc.grad or jvp, or a plain compile, no input's axis is
    symbolic, so no call binds a name: eye('n') and eye('n-5') were refused when the graph
    was specialised, naming the op inside eye, 'tri: the symbolic dimension n is not the size
    of any input's axis, so no call binds it' (zeros: 'full: ...'). The size's reader refuses
    it at the call, naming the function and the user's line; a name an input has (a
    polymorphic compile's) is still a symbolic size, bound per call."""
    x = np.ones((3, 3), np.float32)
    runs = (lambda f: gc.grad(lambda v: gc.sum(v) + gc.sum(f()))(x),
            lambda f: gc.jvp(lambda v: gc.sum(v) + gc.sum(f()), (x,), (x,)),
            lambda f: gc.compile(lambda v: gc.sum(v) + gc.sum(f()))(x))
    # (a polymorphic compile binds n only: m is refused there)
    bound_n = lambda f: gc.compile(lambda v: gc.sum(v) + gc.sum(f()),  # noqa: E731
                                   polymorphic_shapes=(("n", 3),))(x)
    for call, line, where_run in (
            (lambda: gc.eye("n"), "eye: a size 'n' names n", runs),
            (lambda: gc.eye("n-5"), "eye: a size 'n-5' names n", runs),
            (lambda: gc.eye(3, "2*n"), "eye: a size '2*n' names n", runs),
            (lambda: gc.zeros(("m", 2)), "zeros: a size 'm' names m", runs + (bound_n,)),
            (lambda: gc.eye("m+n"), "eye: a size 'm+n' names m", (bound_n,))):
        for run in where_run:
            with pytest.raises(GraphcError) as info:
                run(call)
            got, where = str(info.value).splitlines()
            assert got == (f"{line}, which is not the size of any input's axis, so no call "
                           "binds it") and "test_edges.py" in where
    sym = gc.compile(lambda v: gc.eye("n") + gc.zeros(("n", "n")) + v[:, :1],
                     polymorphic_shapes=(("n", 3),))
    for n in (2, 4):
        v = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
        np.testing.assert_array_equal(np.asarray(sym(v)), np.eye(n, dtype=np.float32) + v[:, :1])


def test_a_str_argument_of_view_is_a_size_read_as_reshape_reads_it():
    """s50 f7 item 3: v.view('3') and v.view('n') said "view(3): a view as another dtype is not
    supported", taking a str for a dtype; torch's view takes sizes or a torch dtype (a str is
    neither: TypeError). A str that names no dtype is a size now, read by reshape's rule:
    eagerly (or an integer text) refused naming view, a name a symbolic size in a trace.
    A dtype (numpy's name, the IR's, a torch dtype: that was reshape's size refusal) is
    still the dtype line."""
    x = np.arange(6, dtype=np.float32)
    for size, traced in (("3", True), ("n", False)):  # (traced, 'n' is a symbol: below)
        with pytest.raises(TypeError):
            torch.from_numpy(x).view(size)
        runs = (lambda: gc.tensor(x).view(size), lambda: gc.compile(lambda v: v.view(size))(x))
        for run in runs[:1 + traced]:
            with pytest.raises(GraphcError) as info:
                run()
            got, where = str(info.value).splitlines()
            assert got == f"view: a size must be an int, got {size!r}" and "test_edges.py" in where
    sym = gc.compile(lambda v: (v.view("n"), v.view("n", 1)), polymorphic_shapes=(("n",),))
    for n in (6, 2):
        v = np.arange(n, dtype=np.float32)
        flat, column = sym(v)
        np.testing.assert_array_equal(np.asarray(flat), v.reshape(n))
        np.testing.assert_array_equal(np.asarray(column), torch.from_numpy(v).view(n, 1).numpy())
    for dtype, shown in (("float32", "float32"), ("bf16", "bf16"), ("int32", "int32"),
                         (torch.float16, "torch.float16")):
        with pytest.raises(GraphcError) as info:
            gc.tensor(x).view(dtype)
        assert str(info.value).splitlines()[0] == (f"view({shown}): a view as another dtype is "
                                                   "not supported; use .astype(dtype) for a "
                                                   "cast of the values")


def test_a_symbolic_size_text_or_an_input_s_symbol_named_as_a_dtype_is_a_size_of_view():
    """s50 review r13 of f7 item 3: view read a str as a dtype where numpy's np.dtype did not
    raise TypeError, so view('2*n') (a size's text, the README's '2*b*t' form) was numpy's
    bare ValueError 'format number 1 of "2*n" is not recognized', eagerly and in a
    polymorphic trace, where reshape('2*n') is a size; and a symbol an input's axis has whose
    name numpy reads as a dtype ('half', 'b1') was refused as a view as another dtype."""
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    for text in ("2*n", "2*(n+1)"):
        with pytest.raises(GraphcError) as info:
            gc.tensor(x).view(text)
        got, where = str(info.value).splitlines()
        assert got == f"view: a size must be an int, got {text!r}" and "test_edges.py" in where
    flat = gc.compile(lambda v: v.view("2*n"), polymorphic_shapes=("(n, 2)",))
    for n in (3, 5):
        v = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
        np.testing.assert_array_equal(np.asarray(flat(v)), v.reshape(2 * n))
    for name in ("half", "b1"):
        same = gc.compile(lambda v: v.view(name), polymorphic_shapes=(f"({name},)",))
        np.testing.assert_array_equal(np.asarray(same(x.reshape(6))), x.reshape(6))
    with pytest.raises(GraphcError, match=r"^view\(half\): a view as another dtype"):
        gc.compile(lambda v: v.view("half"), polymorphic_shapes=("(n,)",))(x.reshape(6))


def test_a_str_size_inside_an_eager_vmap_is_refused_as_eagerly():
    """Review r7 (s50) of f1's _size: an eager gc.vmap's graph (which runs its ops at once on
    concrete values) was taken for a trace, so a name there was read as a symbol no call can
    bind: gc.vmap(lambda v: gc.eye('n')) said "whether -n+127 >= 0 depends on the value of
    n" and gc.zeros(('n', 2)) "the symbolic dimension n has no value while tracing", naming
    no function. It is the eager line now; inside a compiled vmap the name is still a size."""
    xs = np.ones((2, 3, 4), np.float32)
    for call, line in ((lambda v: gc.eye("n"), "eye: a size must be an int, got 'n'"),
                       (lambda v: gc.tril_mask("2*n"),
                        "tril_mask: a size must be an int, got '2*n'"),
                       (lambda v: gc.arange("n"), "arange: a bound must be an int, got 'n'"),
                       (lambda v: gc.zeros(("n", 2)), "zeros: a size must be an int, got 'n'"),
                       (lambda v: gc.broadcast_to(v[0], ("n", 4)),
                        "broadcast_to: a size must be an int, got 'n'"),
                       (lambda v: gc.reshape(v, ("n", -1)),
                        "reshape: a size must be an int, got 'n'")):
        with pytest.raises(GraphcError) as info:
            gc.vmap(call)(xs)
        got, where = str(info.value).splitlines()
        assert got == line and "test_edges.py" in where
    sym = gc.compile(lambda v: gc.vmap(lambda r: gc.eye("n") * r[0] + gc.zeros(("n", 1)))(v),
                     polymorphic_shapes=(("b", "n"),))
    for b, n in ((2, 3), (3, 5)):
        v = np.arange(b * n, dtype=np.float32).reshape(b, n)
        want = np.eye(n, dtype=np.float32)[None] * v[:, :1, None]
        np.testing.assert_array_equal(np.asarray(sym(v)), want)


def test_review_m2_a_str_size_in_a_loop_body_or_branch_inside_an_eager_vmap_is_refused():
    """Review s50 (m2) of 5e0df84: a str size in a region (a fori_loop or scan body, a cond
    branch) inside an eager gc.vmap still read as a symbol, the region's graph not being the
    eager vmap's: "whether -n+127 >= 0 depends on the value of n", naming no function; inside
    a compiled vmap's loop body it is still a symbolic size."""
    xs = np.ones((2, 3), np.float32)
    for body in (lambda r: gc.fori_loop(0, 2, lambda i, c: c + gc.sum(gc.eye("n")), r),
                 lambda r: gc.scan(lambda c, x: (c + gc.sum(gc.eye("n")), x), r[0], r),
                 lambda r: gc.cond(r[0] > 0, lambda: gc.sum(gc.eye("n")) + r[0],
                                   lambda: r[0])):
        with pytest.raises(GraphcError) as info:
            gc.vmap(body)(xs)
        got, where = str(info.value).splitlines()
        assert got == "eye: a size must be an int, got 'n'" and "test_edges.py" in where
    sym = gc.compile(lambda v: gc.vmap(lambda r: gc.fori_loop(
        0, 2, lambda i, c: c + gc.eye("n") * r[0], gc.zeros(("n", "n"))))(v),
        polymorphic_shapes=(("b", "n"),))
    for b, n in ((2, 3), (3, 4)):
        v = np.arange(b * n, dtype=np.float32).reshape(b, n)
        np.testing.assert_array_equal(np.asarray(sym(v)),
                                      2 * np.eye(n, dtype=np.float32)[None] * v[:, :1, None])


def test_review_m3_a_str_size_two_or_three_regions_deep_in_a_polymorphic_compile_is_bound():
    """Review s50 (m3) of 5e8a12e: a str size in a loop body or branch inside another one whose
    values are all concrete (a scalar carry) was refused by a polymorphic compile, "tri: the
    symbolic dimension n is not the size of any input's axis": the outer body was taken for
    concrete (ir.specialize.graph_is_symbolic looked at its nodes' types only), so the body
    inside it was never specialised; one region deep it was bound."""
    n_of = lambda: gc.sum(gc.eye("n"))  # noqa: E731
    fori = lambda f: lambda c: gc.fori_loop(0, 2, lambda i, c: f(c), c)  # noqa: E731
    scan = lambda f: lambda c: gc.scan(lambda d, x: (f(d), x), c, gc.ones((2,)))[0]  # noqa: E731
    cond = lambda f: lambda c: gc.cond(c > -1e9, lambda: f(c), lambda: c)  # noqa: E731
    for body, times in ((fori(fori(lambda c: c + n_of())), 4),
                        (scan(cond(lambda c: c + n_of())), 2),
                        (cond(scan(fori(lambda c: c + gc.sum(gc.zeros(("n",))) + n_of()))), 4)):
        f = gc.compile(lambda v: body(v[0, 0]), polymorphic_shapes=(("b", "n"),))
        for b, n in ((2, 3), (3, 5)):
            v = np.arange(b * n, dtype=np.float32).reshape(b, n) + 1
            np.testing.assert_allclose(np.asarray(f(v)), 1 + times * n)


@pytest.mark.parametrize("shape, shown", [((2.0, 6), "2.0"), ((True, 12), "True"),
                                          ((np.float32(2), 6), "np.float32(2.0)"),
                                          (2.5, "2.5")])
def test_a_float_or_bool_reshape_size_is_one_line_naming_reshape(shape, shown):
    """s50 f1 item 2: gc.reshape(x, (2.0, 6)) (a bool, a numpy float) was as_dim's line 'a
    size must be an int, got 2.0', naming no function; numpy and torch refuse each too."""
    x = np.arange(12, dtype=np.float32)
    for oracle in (lambda: x.reshape(shape), lambda: torch.from_numpy(x).reshape(shape)):
        with pytest.raises(TypeError):
            oracle()
    for run in (lambda: gc.reshape(gc.tensor(x), shape), lambda: gc.tensor(x).reshape(shape),
                lambda: gc.compile(lambda v: gc.reshape(v, shape))(x)):
        with pytest.raises(GraphcError) as info:
            run()
        got, where = str(info.value).splitlines()
        assert got == f"reshape: a size must be an int, got {shown}" and "test_edges.py" in where
    np.testing.assert_array_equal(gc.reshape(x, (np.int64(2), -1)), x.reshape(2, 6))


@pytest.mark.parametrize("shape", [np.array([4, 3]), np.array([-1, 2], np.int32), range(4, 2, -1)])
def test_a_1d_integer_array_or_a_range_is_a_shape_of_reshape(shape):
    """s50 f7 item 4: gc.reshape(x, np.array([4, 3])) (and x.view of one, a range too) was
    refused, 'reshape: a size must be an int, got array([4, 3])', where numpy's reshape
    takes one 1-d integer array or range as the shape."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = x.reshape(shape)
    for got in (gc.reshape(x, shape), gc.reshape(gc.tensor(x), shape), gc.tensor(x).view(shape),
                gc.compile(lambda v: gc.reshape(v, shape))(x)):
        got = np.asarray(got)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    # not a float array, nor a 2-d one (numpy refuses each)
    for bad in (np.array([4.0, 3.0]), np.array([[4, 3]])):
        with pytest.raises(TypeError):
            x.reshape(bad)
        with pytest.raises(GraphcError, match=r"^reshape: a size must be an int, got "):
            gc.reshape(x, bad)


def test_a_shape_that_is_no_sequence_is_one_line():
    """s43 f3 item 3: gc.ones(None) (zeros, full, broadcast_to, eagerly and compiled) was
    iter()'s raw TypeError "'NoneType' object is not iterable"; numpy ("Use () not None as
    shape arguments") and torch ("argument 'size' ... must be tuple of ints") refuse it too.
    (graphc has no gc.empty or gc.randn; gc.random's draws named the shape already.)"""
    with pytest.raises(TypeError):
        torch.ones(None)
    with pytest.raises((TypeError, ValueError)):
        np.ones(None)
    x = gc.tensor(np.ones(3, np.float32))
    for shape, hint in ((None, "; a 0-d one is ()"), (object, "")):
        for name, call in (("ones", lambda: gc.ones(shape)),
                           ("zeros", lambda: gc.zeros(shape, "int32")),
                           ("full", lambda: gc.full(shape, 2.0)),
                           ("broadcast_to", lambda: gc.broadcast_to(x, shape)),
                           ("ones", lambda: gc.compile(lambda v: v + gc.ones(shape))(np.ones(3)))):
            with pytest.raises(GraphcError) as info:
                call()
            line, where = str(info.value).splitlines()
            assert line == (f"{name}: shape must be an int or a sequence of ints, got "
                            f"{shape!r}{hint}")
            assert "test_edges.py" in where
    # every sequence of sizes still is one: a range, a 1-d array, a generator
    for shape in (range(2, 4), np.array([2, 3]), (d for d in (2, 3))):
        got = gc.ones(shape)
        assert got.shape == (2, 3) and got.numpy().tolist() == np.ones((2, 3)).tolist()
    # a dict or a set was iterated (a dict's keys, a set's order) into a shape; torch and
    # numpy refuse them
    for shape in ({2: 0, 3: 0}, {2}, frozenset([2])):
        with pytest.raises(TypeError):
            torch.ones(shape)
        for name, call in (("ones", lambda: gc.ones(shape)), ("full", lambda: gc.full(shape, 2.0))):
            with pytest.raises(GraphcError, match=rf"^{name}: shape must be an int or a sequence "
                                                  rf"of ints, got a {type(shape).__name__}: "):
                call()

@pytest.mark.parametrize("size", [3, np.int64(3), np.int32(3), np.array(3)])
def test_a_number_is_a_shape_of_spec(size):
    """r10 on d27e237: gc.spec(np.int64(3)) iterated the number (a raw TypeError "'numpy.int64'
    object is not iterable", a 0-d array too); as broadcast_to, full and numpy's zeros, it is
    (3,), and it traces as one: eval_shape equals numpy's."""
    expected = np.zeros(size, np.float32) * 2
    spec = gc.spec(size)
    assert spec.shape == expected.shape == (3,) and spec.dtype == np.float32
    out = gc.eval_shape(lambda v: v * 2, spec)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    with pytest.raises(GraphcError, match=r"^spec: a size must be an int, got 3\.0"):
        gc.spec(3.0)
    with pytest.raises(GraphcError,  # was a raw TypeError, then "spec: bad shape None: ..."
                       match=r"^spec: shape must be an int or a sequence of ints, got None; "):
        gc.spec(None)



def test_a_negative_size_of_spec_is_refused_as_numpy_and_the_ir_text_refuse_it():
    """g7 (s48): gc.spec((-3, 4)) was taken; trace and eval_shape gave f32[-3,4], a type no
    array has (numpy's zeros((-3, 4)) and the IR text's parser refuse it)."""
    with pytest.raises(ValueError):
        np.zeros((-3, 4))
    for shape, size in (((-3, 4), -3), ((2, "-1"), -1), (np.int64(-2), -2)):
        with pytest.raises(GraphcError, match=r"^spec: bad shape .*: a dimension is 0 or "
                                              rf"more, got {size}\n"):
            gc.spec(shape)
    assert gc.eval_shape(lambda v: v * 2, gc.spec((0, 4))).shape == (0, 4)

@pytest.mark.parametrize("reduce", [lambda v: gc.prod(v, axis=0),
                                    lambda v: gc.logsumexp(v, axis=0),
                                    lambda v: gc.sum(v, axis=0)])
def test_a_reduction_over_no_elements_stays_on_the_eager_tape(reduce):
    """prod and logsumexp over an empty axis built their result from a new constant, so
    backward() found no tensor needing a gradient; torch and gc.grad give zeros."""
    x = gc.tensor(np.zeros((0, 3)), requires_grad=True)
    gc.sum(reduce(x)).backward()
    assert np.asarray(x.grad).shape == (0, 3)
    assert np.asarray(gc.grad(lambda v: gc.sum(reduce(v)))(np.zeros((0, 3)))).shape == (0, 3)


def test_axes_and_sizes_may_be_ranges_or_arrays_and_indices_empty():
    # the int checks of this session first refused np.array([0, 1]) as axes, a range of
    # split sizes, and gc.take(x, []) (np.asarray([]) is float64)
    x = np.arange(12.0).reshape(3, 4)
    assert float(np.asarray(gc.sum(x, np.array([0, 1])))) == 66.0
    assert float(np.asarray(gc.sum(x, range(2)))) == 66.0
    assert [np.asarray(p).shape for p in gc.split(x, np.array([1]), 1)] == [(3, 1), (3, 3)]
    assert np.asarray(gc.take(x, [])).shape == (0, 4)
    with pytest.raises(GraphcError, match="does not fit in int64"):
        gc.take(x, 2 ** 70)


def test_gc_tensor_of_a_string_or_a_ragged_list_is_one_line():
    """gc.tensor("1e20", dtype="int32") was numpy's raw ValueError (invalid literal for
    int()), gc.tensor("abc") said "dtype <U3 is not supported", a ragged list with a dtype
    numpy's raw ValueError; torch refuses a str ("invalid data type 'str'")."""
    with pytest.raises(TypeError):
        torch.tensor("1e20", dtype=torch.int32)
    for data, dtype in (("1e20", "int32"), ("abc", None), (b"ab", None)):
        with pytest.raises(GraphcError, match=rf"^tensor: data must be numbers, got a "
                                              rf"{type(data).__name__}: "):
            gc.tensor(data, dtype=dtype)
    with pytest.raises(GraphcError, match=r"^tensor: data cannot be read as float32 numbers: "
                                          r"setting an array element with a sequence"):
        gc.tensor([[1, 2], [3]], dtype="float32")


def test_negative_slice_steps_take_numpys_elements_and_gradient():
    # x[::-1] was refused ("negative slice steps are not supported") where numpy and JAX
    # take it; random slices of every sign against numpy, eager and compiled, and the
    # gradient (the scatter back) against numpy's np.add.at of the same key
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 3))
    bound = lambda d: [None] + list(range(-d - 2, d + 2))  # noqa: E731
    for _ in range(60):
        key = tuple(slice(*rng.choice(bound(d), 2), rng.choice([None, -1, -2, -3, 1, 2]))
                    for d in x.shape[:rng.integers(1, 4)])
        want = x[key]
        np.testing.assert_array_equal(np.asarray(gc.tensor(x)[key]), want, err_msg=str(key))
        np.testing.assert_array_equal(np.asarray(gc.compile(lambda a: a[key])(x)), want)
        weights = rng.standard_normal(want.shape)
        expected = np.zeros_like(x)
        np.add.at(expected, key, weights)
        np.testing.assert_array_equal(
            np.asarray(gc.grad(lambda a: gc.sum(a[key] * weights))(x)), expected)


def test_a_negative_slice_step_on_a_symbolic_axis_is_one_line():
    f = gc.compile(lambda a: a[::-1], polymorphic_shapes=["(n,)"])
    with pytest.raises(GraphcError, match=r"symbolic slices need a positive integer step"):
        f(np.arange(3.0))


def test_gc_tensor_of_a_list_holding_a_string_is_one_line():
    """gc.tensor(['1', 2], dtype='int32') parsed the str as numpy does (tensor([1, 2])) and
    without a dtype said "dtype <U21 is not supported"; torch refuses both."""
    with pytest.raises((TypeError, ValueError)):
        torch.tensor(["1", 2])
    with pytest.raises((TypeError, ValueError)):
        torch.tensor(["1", 2], dtype=torch.int32)
    cases = ((["1", 2], "int32", "str: '1'"), ([1, "2"], None, "str: '2'"),
             ([[3.0], [b"1.5"]], "float32", "bytes: b'1.5'"),
             (np.array([1, "a"], object), "int64", "str: 'a'"))
    for data, dtype, shown in cases:
        holder = "list" if isinstance(data, list) else "numpy.ndarray"
        with pytest.raises(GraphcError, match=rf"^tensor: data must be numbers, got a "
                                              rf"{holder} holding a {shown}\n"):
            gc.tensor(data, dtype=dtype)
    with pytest.raises(GraphcError, match=r"^tensor: data must be numbers, got a "
                                          r"numpy.ndarray of dtype <U1\n"):
        gc.tensor(np.array(["7"]), dtype="int32")
    np.testing.assert_array_equal(gc.tensor([1, 2.5], dtype="int32").numpy(), [1, 2])


def test_gc_tensor_names_the_str_inside_an_array_and_a_ragged_list_is_one_line():
    """r2 of 95c1008: a str array inside a list said "got a list of dtype <U21" (numpy's
    stringified numbers beside it, not the user's str); and a ragged list without a dtype
    was numpy's raw ValueError ("inhomogeneous shape"), with one line with a dtype. torch
    refuses each. Now the user's str is named, a ragged list holding a str names the str,
    one of numbers is one line with numpy's reason, with or without a dtype."""
    cases = (([np.array(["1", "2"]), [3, 4]], "float32", "str: '1'"),
             ([np.array(["1", "2"]), [3, 4]], None, "str: '1'"),
             ([np.array([b"x"]), [1]], None, "bytes: b'x'"),
             ([1, [2, "3"]], None, "str: '3'"), ([1, [2, "3"]], "float32", "str: '3'"))
    for data, dtype, shown in cases:
        with pytest.raises((TypeError, ValueError)):
            torch.tensor(data)
        with pytest.raises(GraphcError) as info:
            gc.tensor(data, dtype=dtype)
        line, where = str(info.value).splitlines()
        assert line == f"tensor: data must be numbers, got a list holding a {shown}"
        assert "test_edges.py" in where
    for dtype, read in ((None, ""), ("int32", "int32 ")):
        with pytest.raises(GraphcError) as info:
            gc.tensor([[1, 2], [3]], dtype=dtype)
        line, where = str(info.value).splitlines()
        assert line.startswith(f"tensor: data cannot be read as {read}numbers: setting an "
                               "array element with a sequence"), line
        assert "test_edges.py" in where


def test_eye_and_tril_mask_of_a_negative_size_are_refused_as_numpys():
    """np.tri clipped a negative size to 0: gc.eye(-2) was a (0, 0) matrix, eager and
    compiled, where numpy's eye and torch's refuse it (g7). s49: eye's refusal named tri(),
    the op inside it, eagerly and compiled; it names eye, the function the user called, in
    one line at the user's line."""
    import graphc as gc
    with pytest.raises(ValueError):
        np.eye(-2)
    for op, make in (("eye", lambda: gc.eye(-2)), ("eye", lambda: gc.eye(3, -1)),
                     ("eye", lambda: gc.eye(-1, 3, k=1)), ("tril_mask", lambda: gc.tril_mask(-1, 2)),
                     ("eye", lambda: gc.compile(lambda: gc.eye(-2))()),
                     ("eye", lambda: gc.compile(lambda x: x + gc.eye(3, -2))(np.float32(1))),
                     ("eye", lambda: gc.eval_shape(lambda: gc.eye(-2)))):
        with pytest.raises(gc.GraphcError) as info:
            make()
        line, where = str(info.value).splitlines()
        assert line == f"{op}() failed: negative dimensions are not allowed"
        assert "test_edges.py" in where
    assert gc.eye(0).shape == (0, 0) and np.asarray(gc.eye(2, 0)).shape == (2, 0)
    np.testing.assert_array_equal(gc.eye(3, 4, 1), np.eye(3, 4, 1, dtype=np.float32))


def test_a_negative_size_is_refused_in_numpys_words_by_one_helper():
    """s50 f1 item 3: the refusal's wording was written out in eye, tri's kernel and
    eval_shape's check, and came from numpy for full eagerly; ir.types' negative_size_error
    (and NEGATIVE_SIZE, numpy's words) is now the one source, so each line is the same."""
    from ir.types import NEGATIVE_SIZE, negative_size_error
    with pytest.raises(ValueError) as numpy_info:
        np.zeros((-3, 4))
    assert str(numpy_info.value) == NEGATIVE_SIZE  # (eager full passes numpy's on)
    for op, make in (("eye", lambda: gc.eye(-2)), ("eye", lambda: gc.eye(2, -1)),
                     ("tril_mask", lambda: gc.tril_mask(-1, 2)),
                     ("zeros", lambda: gc.zeros((-3, 4))),
                     ("full", lambda: gc.full((2, -1), 1.0))):
        for run in (make, lambda: gc.eval_shape(make)):
            with pytest.raises(GraphcError) as info:
                run()
            line, where = str(info.value).splitlines()
            assert line == negative_size_error(op, ()).message == f"{op}() failed: {NEGATIVE_SIZE}"
            assert "test_edges.py" in where


def test_a_compiled_constant_of_a_negative_size_is_one_line_naming_it():
    """Review r15 (s48) of 0310f25, which moved tri's negative-size refusal from its type rule
    to where it runs: compiled, only a square eye(-2) was refused in one line; eye(3, -1),
    eye(-1), tril_mask(-1, 2) and zeros((-2,)) were a bare numpy ValueError from constant
    folding (passes/fold.py) or from allocating the plan's pool of a negative size."""
    import graphc as gc
    for op, make in (("eye", lambda: gc.eye(3, -1)), ("eye", lambda: gc.eye(-1)),
                     ("tril_mask", lambda: gc.tril_mask(-1, 2)),
                     ("eye", lambda: gc.eye(-2, 3) * 2), ("zeros", lambda: gc.zeros((-2,))),
                     ("zeros", lambda: gc.zeros((3, -1)))):
        with pytest.raises(gc.GraphcError) as info:
            gc.compile(make)()
        line, where = str(info.value).splitlines()
        # (each refuses its sizes where it is called, as eagerly: not while building the plan,
        # naming its op, since s51)
        assert line == f"{op}() failed: negative dimensions are not allowed"
        assert "test_edges.py" in where


def test_a_compiled_constant_of_two_negative_sizes_is_refused_not_computed_on():
    """Review r16 (s48) of 898edfc: fold refused a full or tri of a negative size only where
    it folds (at most one element), so zeros((-2, -3)) (6 "elements") was left to simplify,
    which computed sum(zeros((-2, -3)) + 1) = 6.0 where eager refuses; and without fold (O0)
    the plan's binding names the op (the constants bound before the pool)."""
    import graphc as gc
    x = np.ones(2, np.float32)
    for pipeline, op, fn in (
            ("default", "zeros", lambda x: gc.sum(gc.zeros((-2, -3)) + 1) + x),
            ("default", "ones", lambda x: gc.mean(gc.ones((-300, -300))) + x),
            ("default", "tril_mask", lambda x: gc.sum(gc.cast(gc.tril_mask(-2, -3), "f32")) + x),
            ("O0", "zeros", lambda x: gc.sum(gc.zeros((3, -1)) + 1) + x)):
        with pytest.raises(gc.GraphcError) as info:
            gc.compile(fn, pipeline=pipeline)(x)
        line, where = str(info.value).splitlines()
        # (since s51 refused where traced, naming the function called: no pass sees it)
        assert line == f"{op}() failed: negative dimensions are not allowed"
        assert "test_edges.py" in where
        with pytest.raises(gc.GraphcError, match="negative dimensions"):
            fn(x)  # (eager refuses each)


def test_each_creator_refuses_a_negative_size_naming_itself_eagerly_and_compiled():
    """s51 f1 items 1, 2: ones((-3,)) said "full() failed", the op it makes, and tril_mask
    "tri() failed"; compiled, ones((2, -1)) was an f32[2,-1] value that the next op failed
    on ("add(f32[2], f32[2,-1]): shapes cannot be broadcast together"), and a lone zeros
    "full() failed while building the plan". Each creator refuses where it is called, naming
    itself and the user's line, eagerly, compiled and inside a vmap alike; numpy refuses
    each (np.arange(-3) is empty, as gc.arange's); a zero size is still a size."""
    import graphc as gc
    x = np.ones(2, np.float32)
    key = gc.random.key(0)
    creators = {"zeros": gc.zeros, "ones": gc.ones, "full": lambda s: gc.full(s, 2.0),
                "broadcast_to": lambda s: gc.broadcast_to(np.float32(1), s),
                "eye": lambda s: gc.eye(*np.atleast_1d(s)),
                "tril_mask": lambda s: gc.cast(gc.tril_mask(*np.atleast_1d(s)), "float32")}
    numpys = {"zeros": np.zeros, "ones": np.ones, "full": lambda s: np.full(s, 2.0),
              "broadcast_to": lambda s: np.broadcast_to(np.float32(1), s),
              "eye": lambda s: np.eye(*np.atleast_1d(s)),
              # (np.tri clips a negative size to 0; a lower triangle of ones refuses it)
              "tril_mask": lambda s: np.tril(np.ones(np.broadcast_to(s, (2,))))}
    for name, make in creators.items():
        for shape in (-3, (2, -1)):
            with pytest.raises((ValueError, TypeError)):
                numpys[name](shape)
            for run in (lambda: make(shape), lambda: gc.compile(lambda x: make(shape))(x),
                        lambda: gc.compile(lambda x: x + make(shape))(x),
                        lambda: gc.vmap(lambda r: r + make(shape))(x),
                        lambda: gc.compile(gc.vmap(lambda r: r + make(shape)))(x)):
                with pytest.raises(GraphcError) as info:
                    run()
                line, where = str(info.value).splitlines()
                assert line == f"{name}() failed: negative dimensions are not allowed"
                assert "test_edges.py" in where
        for run in (lambda s: make(s), lambda s: gc.compile(lambda x: make(s))(x)):
            np.testing.assert_array_equal(run((2, 0)), numpys[name]((2, 0)))
    for fn, draw in (("normal", lambda s: gc.random.normal(key, s)),
                     ("uniform", lambda s: gc.random.uniform(key, s)),
                     ("randint", lambda s: gc.random.randint(key, s, 0, 5))):
        for shape in (-3, (2, -1)):
            for run in (lambda: draw(shape), lambda: gc.compile(lambda x: draw(shape))(x)):
                with pytest.raises(GraphcError, match=rf"^gc\.random\.{fn}: shape must be a "
                                   "tuple of non-negative integers, got "):
                    run()
    for num in (-3, -1):
        with pytest.raises(GraphcError, match=f"^linspace: num must be a non-negative int, "
                                              f"got {num}\n"):
            gc.compile(lambda x: gc.linspace(0, 1, num))(x)
    for run in (lambda: gc.arange(-3), lambda: gc.compile(lambda x: gc.arange(-3))(x)):
        np.testing.assert_array_equal(run(), np.arange(-3))


def test_eval_shape_refuses_a_negative_size_as_running_does():
    """s49: gc.eval_shape of zeros((-3, 4)) was f32[-3,4] where running it refuses; now the
    same line as eager's, at the user's line. A branch that may not run keeps its own."""
    import graphc as gc
    for make in (lambda: gc.zeros((-3, 4)), lambda: gc.ones((2, -1)) * 2,
                 lambda: gc.eye(-2), lambda: gc.tril_mask(3, -1)):
        with pytest.raises(gc.GraphcError) as eager:
            make()
        with pytest.raises(gc.GraphcError) as info:
            gc.eval_shape(make)
        line, where = str(info.value).splitlines()
        assert line == str(eager.value).splitlines()[0]
        assert line.endswith("() failed: negative dimensions are not allowed")
        assert "test_edges.py" in where
    assert str(gc.eval_shape(lambda: gc.zeros((0, 4)))) == "f32[0,4]"
    x = np.ones(3, np.float32)
    branch = lambda x: gc.cond(gc.sum(x) < 0, lambda v: v + gc.sum(gc.zeros((-2, 2))),  # noqa
                               lambda v: v, x)
    assert str(gc.eval_shape(branch, x)) == "f32[3]" and branch(x).shape == (3,)
