"""gc.switch, as jax.lax.switch: branches[index](*operands) with the index clamped to the
branches' range, built as a tree of conds (graphc/control_flow.py). Checked against Python
indexing eagerly and compiled, its gradients against finite differences in float64, vmap
against a loop over examples, and dropout masks eager against compiled."""
import re

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

BRANCHES = [lambda x, w: x * w, lambda x, w: gc.sin(x) + w, lambda x, w: x * x * w,
            lambda x, w: -x, lambda x, w: gc.exp(x * w)]
NUMPY = [lambda x, w: x * w, lambda x, w: np.sin(x) + w, lambda x, w: x * x * w,
         lambda x, w: -x, lambda x, w: np.exp(x * w)]


def _np(v):
    return np.asarray(getattr(v, "data", v))


def _want(i, x, w):
    return NUMPY[min(max(i, 0), len(NUMPY) - 1)](x, w)


@pytest.mark.parametrize("n_branches", [1, 2, 3, 5])
def test_switch_picks_the_clamped_branch_eagerly_and_compiled(n_branches):
    branches, rng = BRANCHES[:n_branches], np.random.default_rng(n_branches)
    x, w = rng.normal(size=3), rng.normal(size=3)
    compiled = gc.compile(lambda i, x, w: gc.switch(i, branches, x, w))
    for i in range(-2, n_branches + 2):
        want = NUMPY[min(max(i, 0), n_branches - 1)](x, w)
        np.testing.assert_allclose(compiled(np.asarray(i), x, w), want, rtol=1e-15)
        np.testing.assert_allclose(_np(gc.switch(i, branches, gc.tensor(x), w)), want,
                                   rtol=1e-15)
        np.testing.assert_allclose(_np(gc.switch(np.int32(i), branches, x, w)), want,
                                   rtol=1e-15)


@pytest.mark.parametrize("i", range(-1, 6))
def test_switch_gradients_match_finite_differences(i):
    rng = np.random.default_rng(i + 10)
    x, w = rng.normal(size=4), rng.normal(size=4)
    gx, gw = gc.grad(lambda x, w, i: gc.sum(gc.switch(i, BRANCHES, x, w) ** 2),
                     argnums=(0, 1))(x, w, np.asarray(i))
    eps = 1e-6
    for got, k in ((gx, 0), (gw, 1)):
        numeric = np.zeros(4)
        for j in range(4):
            args = [x.copy(), w.copy()]
            args[k][j] += eps
            plus = np.sum(_want(i, *args) ** 2)
            args[k][j] -= 2 * eps
            minus = np.sum(_want(i, *args) ** 2)
            numeric[j] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def test_vmap_of_switch_with_a_batched_and_an_unbatched_index():
    rng = np.random.default_rng(0)
    xs, w = rng.normal(size=(7, 3)), rng.normal(size=3)
    indices = np.array([4, 0, 2, -3, 9, 1, 3])
    batched = gc.vmap(lambda i, x: gc.switch(i, BRANCHES, x, w))(indices, xs)
    np.testing.assert_allclose(_np(batched), np.stack(
        [_want(i, x, w) for i, x in zip(indices, xs)]), rtol=1e-15)
    same = gc.compile(gc.vmap(lambda x, i: gc.switch(i, BRANCHES, x, w), in_axes=(0, None)))
    np.testing.assert_allclose(same(xs, np.asarray(2)), np.stack([_want(2, x, w) for x in xs]),
                               rtol=1e-15)


def test_switch_over_pytrees_with_branches_reading_an_enclosing_value():
    def f(i, tree, scale):
        shift = gc.exp(scale)  # a value of the enclosing function, read by one branch
        branches = [lambda t: {"a": t["a"] * shift, "b": t["b"]},
                    lambda t: {"a": t["a"] + 1.0, "b": t["b"] * 2},
                    lambda t: {"a": gc.tanh(t["a"]), "b": t["b"] - 1}]
        return gc.switch(i, branches, tree)

    tree = {"a": np.array([0.5, -1.0]), "b": np.array([3, 4])}
    compiled = gc.compile(f)
    wants = [{"a": tree["a"] * np.exp(0.3), "b": tree["b"]},
             {"a": tree["a"] + 1.0, "b": tree["b"] * 2},
             {"a": np.tanh(tree["a"]), "b": tree["b"] - 1}]
    for i, want in enumerate(wants):
        got = compiled(np.asarray(i), tree, np.asarray(0.3))
        np.testing.assert_allclose(got["a"], want["a"], rtol=1e-15)
        np.testing.assert_array_equal(got["b"], want["b"])


@pytest.mark.parametrize("i", [0, 1, 2])
def test_dropout_in_and_after_a_switch_draws_the_same_masks_eagerly_as_compiled(i):
    drop = gc.nn.Dropout(0.5)
    x = np.ones(64, np.float32)
    branches = [lambda v: drop(v), lambda v: drop(v) * drop(v), lambda v: v + 1.0]

    def f(x, i, key):
        with gc.nn.rng_key(key):
            return gc.switch(i, branches, x), drop(x)

    key = np.asarray(5, np.int64)
    eager = f(x, np.asarray(i), key)
    compiled = gc.compile(f)(x, np.asarray(i), key)
    for e, c in zip(eager, compiled):
        np.testing.assert_array_equal(_np(e), _np(c))
    after = _np(compiled[1])
    assert set(np.unique(after)) <= {0.0, 2.0} and 0.3 < (after > 0).mean() < 0.7


def test_switch_bad_input_is_one_clear_line_at_the_users_call():
    x = np.ones(2)
    with pytest.raises(GraphcError, match=r"switch: the index must be an integer scalar, "
                                          r"got f64\[\]"):
        gc.switch(1.0, [lambda v: v, lambda v: v], x)
    with pytest.raises(GraphcError, match=r"integer scalar, got i64\[2\]"):
        gc.compile(lambda i, x: gc.switch(i, [lambda v: v], x))(np.array([0, 1]), x)
    for branches in ([], [lambda v: v, 3], lambda v: v):
        with pytest.raises(GraphcError, match="non-empty list or tuple of functions"):
            gc.switch(0, branches, x)
    with pytest.raises(GraphcError) as info:
        gc.compile(lambda i, x: gc.switch(i, [lambda v: v, lambda v: gc.sum(v)], x))(
            np.asarray(0), x)
    first, where = str(info.value).splitlines()
    assert first.startswith("switch: branch 0 <lambda> (defined at ")
    assert first.endswith("returns (f64[2]) but branch 1 <lambda> returns (f64[]); all must "
                          "return the same structure, shapes and dtypes")
    assert "test_switch.py" in where


def test_a_python_int_index_of_any_size_is_clamped_and_a_non_number_named():
    """s49: numpy holds a Python int past int64 as an object, so switch(2**70, ...) was
    refused as 'the index must be an integer scalar, got object[]' (it is one: JAX clamps
    the index, and so does switch below int64); None read 'got object[]' too."""
    x = np.array([1.0, 2.0])
    branches = [lambda v: v * 10.0, lambda v: -v, gc.sin]
    switched = gc.compile(lambda i, v: gc.switch(i, branches, v), static_argnums=0)
    for index, picked in ((2**70, 2), (2**64, 2), (-2**70, 0), (-2**63 - 1, 0)):
        want = np.asarray(branches[picked](x))
        np.testing.assert_array_equal(np.asarray(gc.switch(index, branches, x)), want)
        np.testing.assert_array_equal(np.asarray(switched(index, x)), want)
    for index, said in ((None, "None"), ("1", r"<U1\[\]"), (1 + 0j, r"complex128\[\]")):
        with pytest.raises(GraphcError) as info:
            gc.switch(index, branches, x)
        first, where = str(info.value).splitlines()
        assert re.fullmatch(rf"switch: the index must be an integer scalar, got {said}", first)
        assert "test_switch.py" in where
