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
