"""Session 38's fixes of graphc's torch-like surface (gc.manual_seed, gc.cat, the Tensor
methods and the reductions' dim=/keepdim=); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s38_torchlike.py"


# ---- 1. gc.manual_seed ------------------------------------------------------------------------
def _seeded_run(seed):
    gc.manual_seed(seed)
    model = gc.nn.Sequential(gc.nn.Linear(6, 8), gc.nn.Dropout(0.5), gc.nn.Linear(8, 3),
                             gc.nn.Dropout(0.5))
    x = np.ones((4, 6), np.float32)
    first, second = np.asarray(model(x)), np.asarray(model(x))
    compiled = gc.compile(lambda v: model(v))
    return (model.state_dict()["0.weight"].copy(), first, second, np.asarray(compiled(x)))


def test_manual_seed_replays_parameters_and_eager_dropout_masks():
    """gc.manual_seed did not exist, and gc.nn.manual_seed(0) replayed a model's parameters
    but not its eager dropout masks (the eager sites' count, which salts each mask, went on
    from the first run). Now gc.manual_seed (torch.manual_seed's place) restarts both: the
    same code after the same seed gives the same parameters and masks, eagerly and
    compiled; another seed gives others, and a non-int seed is refused in one line."""
    first, again = _seeded_run(0), _seeded_run(0)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], first[2])  # each call still draws its own masks
    other = _seeded_run(1)
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])
    assert gc.manual_seed is gc.nn.manual_seed
    gc.manual_seed(-1)  # torch takes a negative seed: its 64-bit pattern
    for seed in (1.5, "0", None, True):
        assert_one_line_error(lambda: gc.manual_seed(seed), "manual_seed: seed must be an int",
                              HERE)


# ---- shared: values eagerly and compiled, and the float64 gradient, against torch ------------
def _torch_check(ours, theirs, *arrays, rtol=1e-12, atol=1e-12):
    """ours(*values) and theirs(*torch tensors): equal values eagerly (on gc.tensor) and under
    gc.compile, and equal gradients of a weighted sum of the (first) result, in float64."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(*tensors)
    if isinstance(expected, tuple):
        expected = expected[0]
    weights = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    (expected * torch.tensor(weights)).sum().backward()
    for got in (ours(*[gc.tensor(a) for a in arrays]), gc.compile(ours)(*arrays)):
        got = got[0] if isinstance(got, tuple) else got
        np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), rtol=rtol,
                                   atol=atol)

    def loss(*values):
        out = ours(*values)
        return ((out[0] if isinstance(out, tuple) else out) * weights).sum()
    grads = gc.grad(loss, argnums=tuple(range(len(arrays))))(*arrays)
    for got, tensor in zip(grads, tensors):
        np.testing.assert_allclose(np.asarray(got), tensor.grad.numpy(), rtol=1e-10,
                                   atol=1e-12)


# ---- 2. gc.cat, and stack's dim= --------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack_take_torch_dim(dim):
    """gc.cat did not exist and gc.stack(xs, dim=1) raised Python's TypeError: now gc.cat is
    torch.cat (numpy's concatenate, gc.concat, with torch's dim= or numpy's axis=), and
    stack takes dim= too; values and float64 gradients as torch's, eager and compiled."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    _torch_check(lambda u, v: gc.cat([u, v * 2], dim=dim),
                 lambda u, v: torch.cat([u, v * 2], dim=dim), a, b)
    _torch_check(lambda u, v: gc.cat((u, v), axis=dim), lambda u, v: torch.cat((u, v), dim),
                 a, b)
    _torch_check(lambda u, v: gc.stack([u, v * 2], dim=dim),
                 lambda u, v: torch.stack([u, v * 2], dim=dim), a, b)
    np.testing.assert_array_equal(np.asarray(gc.concatenate([a, b], dim=dim)),
                                  np.concatenate([a, b], dim))


def test_cat_refuses_both_spellings_and_an_empty_list():
    """gc.cat([]) (as gc.concat([])) raised Python's IndexError: now an empty list, and
    numpy's axis= beside torch's dim= (even axis=0, the default), are one-line errors."""
    a = np.ones((2, 3))
    assert_one_line_error(lambda: gc.cat([]), "cat needs at least one array", HERE)
    assert_one_line_error(lambda: gc.stack([], dim=0), "stack needs at least one array", HERE)
    assert_one_line_error(lambda: gc.cat([a, a], axis=0, dim=1),
                          "cat: both axis= (numpy's) and dim= (torch's) given", HERE)
    assert_one_line_error(lambda: gc.stack([a, a], 1, dim=1),
                          "stack: both axis= (numpy's) and dim= (torch's) given", HERE)
    assert_one_line_error(lambda: gc.cat([a, a], dim=2), "cat: axis 2 is out of range", HERE)


def test_concatenate_and_cat_errors_name_the_function_called():
    """s43 f3 item 6: gc.concatenate and gc.cat were aliases of gc.concat, so each error
    said "concat:" (the function's own name, which registry._called_op reads from its
    frame), a name the user may never have written. Each line now names the one called,
    the op inside it after, as other functions' errors (`stack: concat(...)`)."""
    x, y = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    for name in ("concatenate", "cat", "concat"):
        f = getattr(gc, name)
        inner = "" if name == "concat" else f"{name}: "
        for call, message in [
                (lambda: f([gc.tensor(x), "a"]), f"{name}: cannot use a str as a tensor operand"),
                (lambda: f([gc.tensor(x), gc.tensor(y)]),
                 f"{inner}concat(f32[2,3], f32[2,4]): operands differ in shape off the "
                 "concatenation axis"),
                (lambda: gc.compile(lambda a, b: f([a, b]))(x, x.astype(np.float64)),
                 f"{inner}concat(f32[2,3], f64[2,3]): operands must have one dtype"),
                (lambda: f([]), f"{name} needs at least one array, got none"),
                (lambda: f([x, x], axis=-3), f"{name}: axis -3 is out of range for a 2-d value"),
                (lambda: f([x, x], axis=1, dim=0), f"{name}: both axis= (numpy's) and dim= "
                                                  "(torch's) given; pass one")]:
            with pytest.raises(gc.GraphcError) as info:
                call()
            line, where = str(info.value).splitlines()
            assert line.startswith(message), line
            assert where.strip().startswith(f"at tests/{HERE}:"), where
        np.testing.assert_array_equal(np.asarray(f([x, y], dim=1)), np.concatenate([x, y], 1))


# ---- 3. torch's Tensor methods: view, permute, unsqueeze, squeeze, flatten, dim ---------------
@pytest.mark.parametrize("method, args", [
    ("view", (3, -1)), ("view", ((6, 4),)), ("view", (-1,)),
    ("permute", (2, 0, 1)), ("permute", ((1, -1, 0),)),
    ("unsqueeze", (0,)), ("unsqueeze", (-1,)), ("unsqueeze", (2,)),
    ("flatten", ()), ("flatten", (1,)), ("flatten", (0, 1)), ("flatten", (-2, -1)),
    ("squeeze", ()), ("squeeze", (1,)), ("squeeze", (0,)), ("squeeze", (-1,)),
])
def test_torch_shape_methods(method, args):
    """Tensors and traced values had no view, permute, unsqueeze, flatten or dim (and no
    squeeze method): now each is torch's, squeezing a dim whose size is not 1 leaving it as
    it is, as torch's (numpy's squeeze(axis=) refuses that); values and float64 gradients
    as torch's, eager and compiled."""
    shape = (2, 1, 3, 4) if method == "squeeze" else (2, 3, 4)
    x = np.random.default_rng(0).standard_normal(shape)
    _torch_check(lambda v: getattr(v * 1.5, method)(*args),
                 lambda v: getattr(v * 1.5, method)(*args), x)


def test_torch_shape_functions_and_dim():
    """gc.permute, gc.unsqueeze, gc.flatten did not exist, and dim() neither: now they are
    torch's, and dim() is the number of dims eagerly and while tracing (size stays numpy's
    element count)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    _torch_check(lambda v: gc.permute(v, (2, 0, 1)), lambda v: torch.permute(v, (2, 0, 1)), x)
    _torch_check(lambda v: gc.unsqueeze(v, 1), lambda v: torch.unsqueeze(v, 1), x)
    _torch_check(lambda v: gc.flatten(v, 1), lambda v: torch.flatten(v, 1), x)
    _torch_check(lambda v: gc.squeeze(v[:, :1], dim=(0, 1)),
                 lambda v: torch.squeeze(v[:, :1], dim=(0, 1)), x)
    assert gc.tensor(x).dim() == 3 and gc.tensor(x).size == 24
    assert gc.compile(lambda v: v * v.dim())(x)[0, 0, 0] == x[0, 0, 0] * 3
    assert gc.tensor(np.float64(2.0)).flatten().shape == (1,)


def test_torch_shape_methods_refuse_bad_dims_in_one_line():
    """An out-of-range dim and a permute that is no permutation are one-line errors naming
    the method; numpy's squeeze(axis=) of a size that is not 1 is still refused."""
    t = gc.tensor(np.ones((2, 3)))
    assert_one_line_error(lambda: t.unsqueeze(3), "unsqueeze: dim 3 is out of range", HERE)
    assert_one_line_error(lambda: t.permute(0, 2), "permute: dim 2 is out of range", HERE)
    assert_one_line_error(lambda: t.permute(0, 0),
                          "permute: dims (0, 0) are not a permutation of a 2-d value's", HERE)
    assert_one_line_error(lambda: t.permute(0), "not a permutation", HERE)
    assert_one_line_error(lambda: t.flatten(2), "flatten start_dim 2 is out of range", HERE)
    assert_one_line_error(lambda: t.flatten(1, 0), "flatten: start_dim 1 comes after end_dim 0",
                          HERE)
    assert_one_line_error(lambda: t.squeeze(2), "squeeze: dim 2 is out of range", HERE)
    assert_one_line_error(lambda: t.squeeze(axis=0), "cannot squeeze axis 0 of size 2", HERE)
    assert_one_line_error(lambda: t.view(4, -1), "cannot reshape 6 elements", HERE)


# ---- 4. torch's dim= and keepdim= on reductions -----------------------------------------------
@pytest.mark.parametrize("name, kwargs", [
    ("sum", dict(dim=1)), ("sum", dict(dim=(0, 2), keepdim=True)),
    ("mean", dict(dim=-1, keepdim=True)), ("prod", dict(dim=1)),
    ("var", dict(dim=1)), ("var", dict(dim=1, correction=0)), ("var", dict(dim=(0, 1))),
    ("std", dict(dim=0, unbiased=False, keepdim=True)), ("std", dict(dim=2)),
    ("logsumexp", dict(dim=1)), ("logsumexp", dict(dim=(1, 2), keepdim=True)),
    ("softmax", dict(dim=0)), ("log_softmax", dict(dim=1)), ("norm", dict(dim=1)),
    ("norm", dict(dim=(1, 2), keepdim=True)),
])
def test_reductions_take_dim_and_keepdim(name, kwargs):
    """x.sum(dim=1), gc.mean(x, dim=-1, keepdim=True), x.var(dim=1) and the rest raised
    one-line 'not taken' errors or Python's TypeError: now torch's dim= and keepdim= are
    taken by the methods and the gc.* functions, with torch's results (var and std spelled as
    torch's divide by N - 1 unless correction=/unbiased= say otherwise); values and float64
    gradients as torch's, eager and compiled."""
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    _torch_check(lambda v: getattr(v * 1.5, name)(**kwargs),
                 lambda v: getattr(v * 1.5, name)(**kwargs), x)
    _torch_check(lambda v: getattr(gc, name)(v * 1.5, **kwargs),
                 lambda v: getattr(torch, name)(v * 1.5, **kwargs), x)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_with_dim_give_values_and_indices(name, keepdim):
    """x.max(dim=1) and gc.max(x, dim=1) raised: now, as torch's, they give the pair
    (values, indices) (a namedtuple, compiled too); the values' float64 gradient is torch's.
    numpy's axis= still gives the values alone."""
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    for ours in (lambda v: getattr(v, name)(dim=1, keepdim=keepdim),
                 lambda v: getattr(gc, name)(v, dim=1, keepdim=keepdim)):
        expected = getattr(torch.tensor(x), name)(dim=1, keepdim=keepdim)
        for got in (ours(gc.tensor(x)), gc.compile(ours)(x)):
            assert type(got).__name__ == "ValuesIndices" and got._fields == ("values", "indices")
            np.testing.assert_array_equal(np.asarray(got.values), expected.values.numpy())
            np.testing.assert_array_equal(np.asarray(got.indices), expected.indices.numpy())
        _torch_check(ours, lambda v: getattr(v, name)(dim=1, keepdim=keepdim), x)
    plain = getattr(gc.tensor(x), name)(axis=1)
    np.testing.assert_array_equal(np.asarray(plain), getattr(x, name)(axis=1))
    np.testing.assert_array_equal(np.asarray(getattr(gc, name)(x, keepdim=True)),
                                  getattr(x, name)(keepdims=True))


@pytest.mark.parametrize("name, kwargs", [
    ("argmax", dict(dim=1)), ("argmin", dict(dim=0, keepdim=True)),
    ("any", dict(dim=1)), ("all", dict(dim=(0, 1), keepdim=True)),
])
def test_index_and_logical_reductions_take_dim(name, kwargs):
    """argmax, argmin, any and all took no dim=/keepdim=: now they are torch's, eager and
    compiled, as methods and gc.* functions."""
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).round()
    expected = getattr(torch.tensor(x), name)(**kwargs).numpy()
    for ours in (lambda v: getattr(v, name)(**kwargs), lambda v: getattr(gc, name)(v, **kwargs)):
        np.testing.assert_array_equal(np.asarray(ours(gc.tensor(x))), expected)
        np.testing.assert_array_equal(np.asarray(gc.compile(ours)(x)), expected)


def test_numpy_spelling_is_unchanged_and_mixed_spellings_refused():
    """numpy's axis=/keepdims=/ddof= keep numpy's results (var divides by N); giving numpy's
    and torch's spelling of one setting, or a tuple dim to max, is refused in one line."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = gc.tensor(x)
    np.testing.assert_allclose(np.asarray(t.var(axis=1)), x.var(axis=1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gc.std(x, 0, True, 1)), x.std(0, keepdims=True,
                                                                         ddof=1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(np.var(t)), x.var(), rtol=1e-12)
    for call, message in [
            (lambda: t.sum(axis=0, dim=1), "sum: both axis= (numpy's) and dim= (torch's)"),
            (lambda: gc.mean(x, keepdims=True, keepdim=True),
             "mean: both keepdims= (numpy's) and keepdim= (torch's)"),
            (lambda: t.var(ddof=1, correction=1), "var: both ddof= (numpy's) and correction="),
            (lambda: gc.std(x, dim=0, correction=1, unbiased=True),
             "std: both correction= and unbiased= given"),
            (lambda: t.max(dim=(0, 1)), "max: dim= takes one dim, as torch's"),
            (lambda: t.min(dim=2), "min: dim 2 is out of range"),
            (lambda: gc.softmax(x, 0, dim=1), "softmax: both axis= (numpy's) and dim="),
            (lambda: t.sum(dim=0, where=True), "sum(where=...): not taken by graphc's sum"),
            (lambda: t.prod(dim=0, correction=1), "prod(correction=...): not taken")]:
        assert_one_line_error(call, message, HERE)


# ---- session 38's review: numpy's functions, max/min's gradient, var/std's divisor, ... -------
def test_numpy_reductions_of_integers_and_numpys_keywords_compute_as_before():
    """The new std method made np.std of an int or bool tensor (numpy's float64 before)
    refuse 'var of int32 values', and np.std(t, where=...) / mean=... (numpy's before) refuse
    the keyword. Now numpy computes those from the values, as before (np.var of integers
    too, and any reduction given where=/initial=), unless a tensor requires grad (a one-line
    refusal), and np.mean of integers (refused before) too; np.prod/any/all/squeeze/sum of
    tensors stay graphc's methods (numpy's TypeError or an ndarray before)."""
    ints = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    floats = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]], np.float32)
    mask = np.array([True, False, True])
    for a in (ints, ints > 2):
        for fn in (np.std, np.var, np.mean):
            for kwargs in ({}, dict(axis=0), dict(keepdims=True)):
                got, want = fn(gc.tensor(a), **kwargs), fn(a, **kwargs)
                assert type(got) is type(want) and got.dtype == want.dtype == np.float64
                np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.std(gc.tensor(ints), 0, ddof=1), np.std(ints, 0, ddof=1))
    t = gc.tensor(floats)
    for fn, kwargs in [(np.std, dict(where=mask)), (np.var, dict(where=mask)),
                       (np.std, dict(mean=floats.mean(keepdims=True))),
                       (np.mean, dict(where=mask)), (np.prod, dict(initial=2.0)),
                       (np.max, dict(initial=9.0)), (np.any, dict(where=mask))]:
        got, want = fn(t, **kwargs), fn(floats, **kwargs)
        assert type(got) is type(want) and got.dtype == want.dtype and got == want
    for fn, a in [(np.prod, ints), (np.any, ints), (np.all, ints > 2), (np.squeeze, floats),
                  (np.mean, floats), (np.sum, ints > 2), (np.std, floats)]:
        got, want = fn(gc.tensor(a)), fn(a)
        assert isinstance(got, gc.Tensor)  # (integer products and sums keep int32)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    leaf = gc.tensor(floats, requires_grad=True)
    assert_one_line_error(lambda: np.std(leaf, where=mask), "std(where=...): not taken", HERE)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_and_min_with_dim_send_the_gradient_to_the_index(name, keepdim):
    """x.max(dim=1).values shared the gradient among tied elements (graphc's max op), where
    torch's goes all to the element at the index returned. Now the values are taken at the
    indices, so the gradient follows the index, eagerly (backward()), compiled and by
    gc.grad, as torch's."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0], [0.0, -1.0, -1.0]])
    _torch_check(lambda v: getattr(v, name)(dim=1, keepdim=keepdim),
                 lambda v: getattr(v, name)(dim=1, keepdim=keepdim), x)
    _torch_check(lambda v: getattr(gc, name)(v, dim=0, keepdim=keepdim),
                 lambda v: getattr(torch, name)(v, dim=0, keepdim=keepdim), x)
    theirs = torch.tensor(x, requires_grad=True)
    getattr(theirs, name)(dim=1, keepdim=keepdim).values.sum().backward()
    ours = gc.tensor(x, requires_grad=True)
    getattr(ours, name)(dim=1, keepdim=keepdim).values.sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
    assert ours.grad[2].tolist() == [1.0, 0.0, 0.0]


def test_var_and_std_spelled_with_dim_none_are_torchs():
    """t.std(dim=None) and gc.var(x, dim=None), torch's spelling, divided by N (numpy's):
    dim=None was taken for 'not given'. Now an explicit dim=None is torch's (N - 1), as is a
    positional axis with another of torch's keywords (t.std(1, keepdim=True)); a positional
    axis alone (t.std(1)) and numpy's keywords stay numpy's (N)."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    _torch_check(lambda v: v.std(dim=None), lambda v: v.std(dim=None), x)
    _torch_check(lambda v: gc.var(v, dim=None), lambda v: torch.var(v, dim=None), x)
    _torch_check(lambda v: v.var(dim=None, keepdim=True), lambda v: v.var(dim=None,
                                                                          keepdim=True), x)
    _torch_check(lambda v: v.std(1, keepdim=True), lambda v: v.std(1, keepdim=True), x)
    _torch_check(lambda v: gc.std(v, 0, unbiased=False), lambda v: v.std(0, unbiased=False), x)
    t = gc.tensor(x)
    np.testing.assert_allclose(np.asarray(t.std(1)), x.std(1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gc.var(x, None)), x.var(), rtol=1e-12)
    assert_one_line_error(lambda: t.var(0, dim=None),
                          "var: both axis= (numpy's) and dim= (torch's) given", HERE)
    assert_one_line_error(lambda: t.squeeze(0, axis=0),
                          "squeeze: both axis= (numpy's) and dim= (torch's) given", HERE)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "norm"])
@pytest.mark.parametrize("empty", [(), []])
def test_an_empty_dim_reduces_every_dim_as_torchs(name, empty):
    """x.sum(dim=()) reduced nothing (numpy's axis=()), where torch 2's reduces every dim.
    Now an empty dim= reduces every dim, as torch's, eager and compiled (sum's and mean's
    gradients as torch's); numpy's axis=() still reduces none, and so do any/all's dim=(), as torch's."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    if name in ("sum", "mean"):  # (torch's var, std and norm have an inf gradient here)
        _torch_check(lambda v: getattr(v, name)(dim=empty),
                     lambda v: getattr(v, name)(dim=empty), x)
    expected = getattr(torch, name)(torch.tensor(x), dim=empty, keepdim=True).numpy()
    np.testing.assert_allclose(np.asarray(getattr(gc, name)(x, dim=empty, keepdim=True)),
                               expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(getattr(gc.tensor(x), name)(dim=empty)),
                               getattr(torch.tensor(x), name)(dim=empty).numpy(), rtol=1e-12)
    if name != "norm":
        np.testing.assert_allclose(np.asarray(getattr(gc.tensor(x), name)(axis=())),
                                   getattr(np, name)(x, axis=()))
    for logical in ("any", "all"):
        np.testing.assert_array_equal(np.asarray(getattr(gc.tensor(x > 0), logical)(dim=empty)),
                                      getattr(torch.tensor(x > 0), logical)(dim=empty).numpy())


@pytest.mark.parametrize("kwargs", [dict(p=1, dim=1), dict(p=1), dict(p=2, dim=0, keepdim=True),
                                    dict(p=float("inf"), dim=1), dict(p="fro"),
                                    dict(p=3, dim=(0, 1))])
def test_norm_takes_torchs_p(kwargs):
    """t.norm(p=1, dim=1) and gc.norm(t, p=1) raised Python's TypeError: now torch's p= is
    taken in ord's place, torch.norm's vector norm over the dims given ('fro': the
    Euclidean), with torch's values and float64 gradients, eager and compiled."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    _torch_check(lambda v: v.norm(**kwargs), lambda v: v.norm(**kwargs), x)
    _torch_check(lambda v: gc.norm(v, **kwargs), lambda v: torch.norm(v, **kwargs), x)


def test_norm_with_ord_and_p_and_a_dtype_view_are_one_line_errors():
    """t.norm(1, p=1) (numpy's ord and torch's p) and t.view(np.float32) (torch's view as a
    dtype) raised Python's TypeError; now each is one line saying what to do."""
    t = gc.tensor(np.ones((2, 3)))
    assert_one_line_error(lambda: t.norm(1, p=1),
                          "norm: both ord= (numpy's) and p= (torch's) given; pass one", HERE)
    assert_one_line_error(lambda: gc.norm(t, ord=2, p=2), "norm: both ord=", HERE)
    for dtype in (np.float32, "float32", np.dtype(np.float32)):
        assert_one_line_error(lambda: t.view(dtype), "view(float32): a view as another dtype "
                              "is not supported; use .astype(dtype)", HERE)
    assert_one_line_error(lambda: gc.compile(lambda v: v.view(np.int32))(np.ones(3)),
                          "view(int32): a view as another dtype", HERE)


def test_manual_seed_refuses_torchs_out_of_range_seeds_and_keeps_an_rng_key_blocks_masks():
    """gc.manual_seed(2**70) and (-2**70) were taken (reduced modulo 2**64) where torch
    refuses a seed outside [-2**63, 2**64): now they are one-line errors, the range's ends
    taken. Inside a `with gc.nn.rng_key(k):` block manual_seed leaves the block's masks
    (its key and count) as they are, as README says."""
    for seed in (2**64, 2**70, -2**63 - 1, -2**70):
        assert_one_line_error(lambda: gc.manual_seed(seed),
                              f"manual_seed: seed {seed} is out of range [-2**63, 2**64)", HERE)
    gc.manual_seed(2**64 - 1)
    gc.manual_seed(-2**63)
    x = np.ones((4, 16), np.float32)
    drop = gc.nn.Dropout(0.5)

    def block_masks(reseed_inside):
        gc.manual_seed(3)
        with gc.nn.rng_key(7):
            first = np.asarray(drop(x))
            if reseed_inside:
                gc.manual_seed(3)
            return first, np.asarray(drop(x))
    plain, reseeded = block_masks(False), block_masks(True)
    np.testing.assert_array_equal(plain[1], reseeded[1])
    assert not np.array_equal(plain[0], plain[1])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_of_a_0d_value_is_torchs(name, dim):
    """x.softmax(dim=0) and gc.softmax of a 0-d value failed with an op-level message (softmin
    worked): now softmax gives 1 and log_softmax 0, as torch's, with torch's gradient (0),
    eager and compiled; a dim out of a 0-d value's range is a one-line error."""
    x = np.array(0.7)
    _torch_check(lambda v: getattr(v * 2, name)(dim=dim), lambda v: getattr(v * 2, name)(dim),
                 x)
    _torch_check(lambda v: getattr(gc, name)(v, dim), lambda v: getattr(torch, name)(v, dim), x)
    assert float(getattr(gc, name)(gc.tensor(x))) == (1.0 if name == "softmax" else 0.0)
    assert_one_line_error(lambda: getattr(gc.tensor(x), name)(dim=1),
                          f"{name}: dim 1 is out of range for a 0-d value (0 or -1", HERE)
