"""Review r2 s54: gc.psum of a bool operand and gc.pmean of an int one were refused where
JAX's lax.psum sums bools as ints and lax.pmean of ints returns a float; pmax/pmin over a
vmap of no examples failed in the words of max ('max over axis 0 of size 0'), not pmax's.
graphc's psum of bools is int64 (graphc's int, gc.sum's of bools; JAX's is int32), its
pmean of ints and bools float32 (JAX's with x64 off), psum(x) / n as JAX's."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


@pytest.mark.parametrize("compiled", [False, True])
def test_psum_of_bools_counts_them_in_int64(compiled):
    x = np.array([[True, False], [True, True], [False, False]])
    f = gc.vmap(lambda r: gc.psum(r, "i"), axis_name="i")
    got = np.asarray((gc.compile(f) if compiled else f)(x))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.broadcast_to(x.sum(0), x.shape))
    # nested: the outer vmap's axis, read from the inner vmap
    y = np.arange(6).reshape(2, 3)
    g = gc.vmap(gc.vmap(lambda r: gc.psum(r > 2, "i"), axis_name="j"), axis_name="i")
    np.testing.assert_array_equal(np.asarray(g(y)), [[1, 1, 1], [1, 1, 1]])


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_pmean_of_ints_is_float32(compiled, dtype):
    x = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype)
    f = gc.vmap(lambda r: gc.pmean(r, "i"), axis_name="i")
    got = np.asarray((gc.compile(f) if compiled else f)(x))
    assert got.dtype == np.float32
    want = x.astype(np.int64).sum(0) / np.float32(4)
    np.testing.assert_allclose(got, np.broadcast_to(want, x.shape), rtol=1e-7)
    empty = np.asarray(f(np.zeros((0, 3), dtype)))
    assert empty.shape == (0, 3) and empty.dtype == np.float32


@pytest.mark.parametrize("name, word", [("pmax", "largest"), ("pmin", "smallest")])
def test_pmax_over_no_examples_is_refused_in_its_own_name(name, word):
    f = gc.vmap(lambda r: getattr(gc, name)(r, "i"), axis_name="i")
    with pytest.raises(GraphcError) as info:
        f(np.zeros((0, 3)))
    message = str(info.value).splitlines()[0]
    assert message == (f"{name}: the vmap naming 'i' has no examples (batch size 0): the "
                       f"{word} of none is undefined")
