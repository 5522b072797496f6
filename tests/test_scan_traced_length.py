"""scan(length=n) with n traced says that length must be known when traced and how to make
it so (it was "a symbolic value cannot be turned into a numpy array ..."), and eager grad of
a function taking the Python int n passes it as it is, as JAX's grad does."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.array([0.3, 1.0])


def _sines(c, n):
    return gc.sum(gc.scan(lambda c, _: (gc.sin(c), None), c, None, length=n)[0])


def test_compiled_traced_length_is_explained():
    with pytest.raises(GraphcError, match=r"^scan: length must be known when the loop is "
                                          r"traced, got a traced i64\[\] .*'n' is traced.*"
                                          r"static_argnums"):
        gc.compile(_sines)(X, 3)
    assert np.isclose(gc.compile(_sines, static_argnums=(1,))(X, 3),
                      np.sin(np.sin(np.sin(X))).sum())


def test_eager_grad_passes_the_int_length():
    s1 = np.sin(X)
    s2 = np.sin(s1)
    np.testing.assert_allclose(gc.grad(_sines)(X, 3), np.cos(s2) * np.cos(s1) * np.cos(X),
                               rtol=1e-12)
