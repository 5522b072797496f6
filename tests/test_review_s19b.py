"""Session 19b: gaps in the op API (integer floor/ceil/round, clip of integers with float
bounds, jacobians over no arguments): each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc


INTS = np.array([-3, 0, 2, 7], np.int32)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name", ["floor", "ceil", "round"])
def test_floor_ceil_round_of_integers_and_bools_are_the_identity(name, compiled):
    # refused before: "floor(i32[4]): needs a floating-point operand, got int32"
    op = getattr(gc, name)
    f = gc.compile(op) if compiled else op
    for x in (INTS, INTS.astype(np.int64), INTS > 0):
        out = np.asarray(f(x))
        assert out.dtype == x.dtype  # JAX's (and numpy 2's floor/ceil): not promoted to float
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("compiled", [False, True])
def test_round_of_integers_with_negative_decimals_is_numpys(compiled):
    x = np.array([-25, -15, 5, 14, 15, 25, 149, 151], np.int64)
    f = lambda v: gc.round(v, -1)
    f = gc.compile(f) if compiled else f
    out = np.asarray(f(x))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.round(x, -1))  # halves to even: 15 -> 20, 25 -> 20


def test_integer_floor_under_vmap_and_grad():
    a = np.array([[0.5, -1.0, 2.0, 3.0], [1.5, 2.0, -0.5, 1.0]])
    i = np.array([[1, 2, 3, 4], [-1, 0, 5, 2]])

    def f(a, i):
        return gc.sum(a * gc.cast(gc.floor(i) + gc.round(i) + gc.ceil(i), a.dtype))
    np.testing.assert_array_equal(np.asarray(gc.vmap(f)(a, i)), (a * 3 * i).sum(1))
    np.testing.assert_array_equal(gc.grad(f)(a, i), 3.0 * i)
    np.testing.assert_array_equal(gc.compile(gc.grad(f))(a, i), 3.0 * i)
    np.testing.assert_array_equal(np.asarray(gc.vmap(gc.grad(f))(a, i)), 3.0 * i)


@pytest.mark.parametrize("compiled", [False, True])
def test_clip_of_integers_with_float_bounds_promotes_as_numpy(compiled):
    # refused before: "maximum: float scalar 0.5 meets an integer tensor; cast one of them first"
    x = np.arange(-1, 5, dtype=np.int32)
    cases = [(lambda v: gc.clip(v, 0.5, 2.5), np.clip(x, 0.5, 2.5)),
             (lambda v: gc.clip(v, max=2.5), np.minimum(x, 2.5)),
             (lambda v: gc.clip(v > 1, 0.5), np.maximum(x > 1, 0.5))]
    for f, expected in cases:
        out = np.asarray((gc.compile(f) if compiled else f)(x))
        assert out.dtype == np.float32  # a weak float meeting integers: float32, as JAX's
        np.testing.assert_array_equal(out, expected)
    # integer bounds keep integers integers, as numpy's
    f = lambda v: gc.clip(v, 0, 3)
    out = np.asarray((gc.compile(f) if compiled else f)(x))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.clip(x, 0, 3))


@pytest.mark.parametrize("transform", [gc.jacrev, gc.jacfwd, gc.grad, gc.value_and_grad])
def test_derivatives_over_no_arguments_are_one_error_as_jaxs(transform):
    # before: jacrev(f, argnums=()) gave (), grad gave (), jacfwd "the arguments picked by
    # argnums hold no arrays"; JAX refuses each (max(()) in grad, an unflatten error in jacrev,
    # vmap of nothing in jacfwd)
    from ir.errors import GraphcError
    with pytest.raises(GraphcError, match=r"argnums=\(\) picks no argument") as info:
        transform(lambda v: gc.sum(v * 2.0), argnums=())
    assert "test_review_s19b.py" in str(info.value)  # the user's line
    assert transform.__name__ in str(info.value)


HINT = ("numpy would clamp it, which a plan traced once for symbolic sizes cannot (the clamped "
        "size is no dimension); where a clamp is meant, declare the dimension concrete in "
        "polymorphic_shapes")


@pytest.mark.parametrize("index,bad", [(lambda x: x[:10], "0:10"), (lambda x: x[-10:], "-7:3"),
                                       (lambda x: x[:, 5:9], "5:9")])
def test_a_symbolic_slice_numpy_would_clamp_says_why_and_what_to_do(index, bad):
    # before: "slice with m=3, n=3: bad range 0:10:1 for an axis of 3" (no reason, no way out);
    # numpy's clamped size (min(n, 10) rows) is no polynomial of the symbols
    from ir.errors import GraphcError
    f = gc.compile(lambda x: index(x) * 2.0, polymorphic_shapes=(("n", "m"),))
    assert f(np.ones((12, 12))).shape[0] in (10, 12)  # where the bounds fit: as numpy
    with pytest.raises(GraphcError) as info:
        f(np.ones((3, 3)))
    first, where = str(info.value).splitlines()
    assert first == f"slice with m=3, n=3: range {bad} does not fit an axis of 3: {HINT}"
    assert "test_review_s19b.py" in where  # the line of the slice


def test_a_symbolic_slice_whose_size_the_trace_cannot_decide_says_what_to_do():
    from ir.errors import GraphcError
    with pytest.raises(GraphcError) as info:
        gc.compile(lambda x: x[2:] * 2.0, polymorphic_shapes=(("n",),))(np.ones(5))
    first, where = str(info.value).splitlines()
    assert first == ("slice 2:None of axis 0 (size n): whether n-2 >= 0 depends on the value "
                     f"of n: {HINT}")
    assert "test_review_s19b.py" in where
