"""gc.vmap's axis_name and the collectives over it, as JAX's lax.psum / pmean / pmax / pmin
inside jax.vmap(f, axis_name=...): each example gets the reduction over every example of the
vmap naming the axis (the innermost of that name), eagerly and compiled, nested, on values
every example shares (axis_size times them), and differentiated (psum's transpose is psum:
grad inside vmap is the gradient of the summed objective, as JAX's). axis_name was Python's
TypeError 'unexpected keyword argument'."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.arange(12.0).reshape(4, 3) - 5.5


def _normalised(r):
    return r / gc.psum(gc.abs(r), "i") + gc.pmax(r, "i") - gc.pmin(r, "i") * gc.pmean(r, "i")


def _expected(x):
    return x / np.abs(x).sum(0) + x.max(0) - x.min(0) * x.mean(0)


@pytest.mark.parametrize("compiled", [False, True])
def test_collectives_reduce_over_the_named_axis(compiled):
    f = gc.vmap(_normalised, axis_name="i")
    got = (gc.compile(f) if compiled else f)(X)
    np.testing.assert_allclose(np.asarray(got), _expected(X), rtol=1e-12, atol=1e-12)
    # in_axes=1: the batch is the columns; a pytree; an int psum
    got = gc.vmap(lambda c: {"s": gc.psum({"v": c}, "i")["v"]}, in_axes=1, axis_name="i")(X)
    np.testing.assert_array_equal(np.asarray(got["s"]), np.tile(X.sum(1), (3, 1)))
    ints = np.arange(6, dtype=np.int32)
    got = np.asarray(gc.vmap(lambda k: gc.psum(k, "i"), axis_name="i")(ints))
    assert got.dtype == np.int32 and (got == 15).all()


def test_nested_names_and_shared_values():
    y = np.arange(24.0).reshape(2, 4, 3)
    inner = gc.vmap(lambda r: gc.psum(r, "outer") * 10 + gc.psum(r, "inner"), axis_name="inner")
    got = gc.vmap(inner, axis_name="outer")(y)
    np.testing.assert_array_equal(np.asarray(got), y.sum(0, keepdims=True) * 10
                                  + y.sum(1, keepdims=True))
    # the same name twice: the innermost binds it, as in JAX
    got = gc.vmap(gc.vmap(lambda r: gc.psum(r, "i"), axis_name="i"), axis_name="i")(y)
    np.testing.assert_array_equal(np.asarray(got), np.broadcast_to(y.sum(1, keepdims=True),
                                                                   y.shape))
    w = np.array([1.0, 2.0, 3.0])  # closed over: every example's the same
    got = gc.vmap(lambda r: r + gc.psum(w, "i") + gc.pmax(w, "i"), axis_name="i")(X)
    np.testing.assert_array_equal(np.asarray(got), X + 5 * w)
    got = gc.compile(lambda x, v: gc.vmap(lambda r: r * gc.psum(v, "i"), axis_name="i")(x))(X, w)
    np.testing.assert_array_equal(np.asarray(got), X * 4 * w)


def test_gradients_through_psum():
    def loss(x):
        return gc.sum(gc.vmap(lambda r: r * gc.psum(r, "i"), axis_name="i")(x) ** 2)
    s = X.sum(0)
    expected = 2 * X * s ** 2 + 2 * (X ** 2).sum(0) * s
    np.testing.assert_allclose(np.asarray(gc.grad(loss)(X)), expected, rtol=1e-12)
    inside = gc.vmap(gc.grad(lambda r: gc.sum(gc.psum(r, "i") * r)), axis_name="i")(X)
    np.testing.assert_allclose(np.asarray(inside), np.tile(2 * s, (4, 1)), rtol=1e-12)


def test_unbound_or_bad_names_are_one_line():
    for call, words in [
            (lambda: gc.psum(X, "i"), "psum: unbound axis name 'i': no gc.vmap around this "
                                      "call has axis_name='i'"),
            (lambda: gc.vmap(lambda r: gc.pmean(r, "j"), axis_name="i")(X),
             "pmean: unbound axis name 'j'"),
            (lambda: gc.vmap(lambda r: gc.psum(r, ("i", 3)), axis_name="i")(X),
             r"psum: axis_name must be a vmap's axis name \(a string\) or a tuple of them, "
             r"got \('i', 3\)"),
            (lambda: gc.vmap(lambda r: r, axis_name=3), "vmap: axis_name must be a non-empty "
                                                        "string, got 3")]:
        with pytest.raises(GraphcError, match="^" + words) as info:
            call()
        assert len(info.value.message.splitlines()) == 1


def test_axis_size_keeps_its_keyword():
    out = gc.vmap(lambda: gc.ones((2,)), in_axes=(), axis_name=None, axis_size=3)()
    np.testing.assert_array_equal(np.asarray(out), np.ones((3, 2)))
    np.testing.assert_array_equal(np.asarray(gc.vmap(lambda r: r * 2.0, 0, 0, None)(X)), X * 2)


def test_python_number_operands_are_constants():
    # JAX's idiom for the axis size, x / psum(1, name): a Python number is the same in every
    # example and stays a weakly typed number (as a node, 1 was an int64 tensor and 2.0 a
    # float32 one, refused beside the float64 or float32 examples)
    got = gc.vmap(lambda r: r / gc.psum(1, "i"), axis_name="i")(X)
    np.testing.assert_array_equal(np.asarray(got), X / 4)
    x32 = X.astype(np.float32)
    got = gc.compile(gc.vmap(lambda r: r * gc.pmean(2, "i") + gc.pmax(2.0, "i")
                             + gc.psum(True, "i"), axis_name="i"))(x32)
    assert np.asarray(got).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got), x32 * 2 + 6)


def test_reduced_value_is_shared_so_out_axes_none_returns_it():
    # as JAX's batching rule leaves it unmapped (it was broadcast back to every example,
    # then refused: 'output 0 depends on the batch, but out_axes gives it None')
    f = gc.vmap(lambda r: (gc.psum(r, "i"), gc.pmax(r, "i") * 2.0), axis_name="i",
                out_axes=(None, None))
    for run in (f, gc.compile(f)):
        total, top = run(X)
        np.testing.assert_array_equal(np.asarray(total), X.sum(0))
        np.testing.assert_array_equal(np.asarray(top), X.max(0) * 2)
