"""psum/pmean/pmax/pmin over a tuple of axis names (JAX's): the reduction over every
example of each named vmap; it was refused ("axis_name must be one vmap's axis name")."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.arange(6.0).reshape(2, 3) ** 1.5


def _nested(fn):
    return gc.vmap(gc.vmap(fn, axis_name="j"), axis_name="i")


@pytest.mark.parametrize("names", [("i", "j"), ["j", "i"]])
@pytest.mark.parametrize("name,reduce", [("psum", np.sum), ("pmean", np.mean),
                                         ("pmax", np.max), ("pmin", np.min)])
def test_reduces_over_both_axes(names, name, reduce):
    f = _nested(lambda x: getattr(gc, name)(x, names))
    want = np.full(X.shape, reduce(X))
    np.testing.assert_allclose(np.asarray(f(X)), want, rtol=1e-14)
    np.testing.assert_allclose(gc.compile(f)(X), want, rtol=1e-14)


def test_one_name_in_a_tuple_and_the_inner_axis_alone():
    np.testing.assert_allclose(np.asarray(_nested(lambda x: gc.psum(x, ("j",)))(X)),
                               np.tile(X.sum(1, keepdims=True), (1, 3)))
    np.testing.assert_allclose(np.asarray(_nested(lambda x: gc.psum(x, ("i",)))(X)),
                               np.tile(X.sum(0, keepdims=True), (2, 1)))


def test_gradient():
    g = gc.grad(lambda x: gc.sum(_nested(lambda x: gc.psum(x * x, ("i", "j")))(x)))
    np.testing.assert_allclose(g(X), 2 * X.size * X, rtol=1e-14)


def test_bad_tuples_are_one_line():
    for names, words in [(("i", "i"), r"psum: axis_name \('i', 'i'\) names an axis twice"),
                         (("i", "k"), "psum: unbound axis name 'k'")]:
        with pytest.raises(GraphcError, match="^" + words):
            _nested(lambda x: gc.psum(x, names))(X)
