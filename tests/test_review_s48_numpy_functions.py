"""Session 48's fixes of numpy's functions on graphc values and of graphc's array
functions, found by comparing with numpy; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc

X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("traced", [False, True])
def test_np_transpose_of_a_tensor_reverses_its_axes_as_numpys(traced):
    """np.transpose(t) calls t.transpose(None), which was taken as the axis None: 'axis
    must be an int, got None', eagerly and traced. It reverses the axes now, as numpy's
    a.transpose(None) and t.transpose(); the gradient is the transpose's."""
    fn = gc.compile(np.transpose) if traced else np.transpose
    out = fn(X if traced else gc.tensor(X))
    np.testing.assert_array_equal(np.asarray(out), np.transpose(X))
    assert np.asarray(out).shape == (4, 3, 2)
    np.testing.assert_array_equal(np.asarray(gc.tensor(X).transpose(None)), X.T)
    weights = np.arange(24.0, dtype=np.float32).reshape(4, 3, 2)
    grad = gc.grad(lambda a: gc.sum(np.transpose(a) * weights))(X)
    np.testing.assert_array_equal(np.asarray(grad), np.transpose(weights))


@pytest.mark.parametrize("descending", [False, True])
def test_argsort_with_axis_none_sorts_the_flattened_value_as_numpys(descending):
    """gc.argsort(x, axis=None) was refused ('axis must be an int, got None', naming no
    argsort) where numpy's, and gc.sort's axis=None, take the flattened x. It is the order
    of the flattened x now, eagerly and compiled."""
    x = np.array([[3.0, 1.0, 2.0], [1.0, 0.0, 3.0]], np.float32)
    expected = np.argsort(-x if descending else x, axis=None, kind="stable")
    for fn in (gc.argsort, gc.compile(gc.argsort, static_argnums=(1, 2))):
        out = np.asarray(fn(x, None, descending))
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == np.int64
    np.testing.assert_array_equal(np.asarray(gc.sort(x, None, descending)),
                                  x.ravel()[expected])


@pytest.mark.parametrize("call, name", [
    (lambda: gc.flip(np.zeros(3), 3), "flip"),
    (lambda: gc.roll(np.zeros(3), 1, axis=3), "roll"),
    (lambda: gc.repeat(np.zeros(3), 2, axis=-2), "repeat"),
    (lambda: gc.cumprod(np.zeros(3), 5), "cumprod"),
    (lambda: gc.prod(np.zeros(3), 1), "prod"),
    (lambda: gc.norm(np.zeros(3), axis=2), "norm"),
    (lambda: gc.sort(np.zeros(3), 5), "sort"),
    (lambda: gc.argsort(np.zeros(3), 5), "argsort"),
    (lambda: gc.take_along_axis(np.zeros(3), np.zeros(3, np.int64), 1), "take_along_axis"),
    (lambda: gc.random.categorical(gc.random.key(0), np.zeros(3, np.float32), axis=5),
     "gc.random.categorical"),
    (lambda: gc.random.permutation(gc.random.key(0), np.zeros((2, 3)), axis=3),
     "gc.random.permutation"),
])
def test_an_axis_out_of_range_names_the_function_called(call, name):
    """An axis out of range was 'axis 3 is out of range for a 1-d value', naming none of
    these functions; the line names the one called now (the user's line follows it)."""
    with pytest.raises(gc.GraphcError) as info:
        call()
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{name}: axis ") and "is out of range for a" in first, first


@pytest.mark.parametrize("traced", [False, True])
def test_transpose_takes_numpys_other_forms_of_axes_and_its_errors_name_it(traced):
    """Review of 239fe76: np.transpose(t, np.array([2, 0, 1])) (numpy calls
    t.transpose(array)) and t.transpose(range(3)) were 'axis must be an int, got
    array([2, 0, 1])', gc.transpose(v, 0) of a 1-d v a TypeError, where numpy takes each;
    t.transpose(None, None) and an axis out of range were 'axis must be an int, got None' and
    'axis 3 is out of range', naming no transpose."""
    run = gc.compile if traced else (lambda f: f)
    t = X if traced else gc.tensor(X)
    for axes in (np.array([2, 0, 1]), range(3), [-1, 0, 1], (2, 0, 1)):
        out = run(lambda a: np.transpose(a, axes))(t)
        np.testing.assert_array_equal(np.asarray(out), np.transpose(X, axes))
        out = run(lambda a: a.transpose(axes))(t)
        np.testing.assert_array_equal(np.asarray(out), X.transpose(axes))
    v = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(run(lambda a: gc.transpose(a, 0))(v)), v)
    for call, message in [(lambda a: a.transpose(None, None), "transpose: axis must be an int"),
                          (lambda a: a.transpose(3, 0, 1), "transpose: axis 3 is out of range"),
                          (lambda a: gc.transpose(a, (0, 0, 1)), "is not a permutation"),
                          (lambda a: np.transpose(a, (0, 1)), "is not a permutation")]:
        with pytest.raises(gc.GraphcError) as info:
            run(call)(t)
        assert message in str(info.value).splitlines()[0], str(info.value)
