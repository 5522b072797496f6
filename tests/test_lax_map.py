"""gc.map, as jax.lax.map: f over the leading axis, eagerly, compiled, differentiated and
under vmap, against a Python loop; with batch_size= as well (chunks mapped by vmap)."""
import numpy as np
import pytest

import graphc as gc

from errorcheck import assert_one_line_error

XS = np.random.default_rng(0).normal(size=(5, 3))


def f(x):
    return {"sq": gc.sum(x * x), "sin": gc.sin(x) * 2.0}


def loop(xs):
    return {"sq": np.array([np.sum(x * x) for x in xs]),
            "sin": np.stack([np.sin(x) * 2.0 for x in xs])}


def test_map_is_a_loop_over_the_leading_axis():
    for got in (gc.map(f, XS), gc.compile(lambda xs: gc.map(f, xs))(XS)):
        for k, want in loop(XS).items():
            np.testing.assert_allclose(got[k], want, rtol=1e-14)
    pairs = gc.map(lambda p: p[0] * p[1], (XS, XS[:, :1]))  # a pytree of xs
    np.testing.assert_allclose(pairs, XS * XS[:, :1], rtol=1e-15)


def test_map_gradient_and_vmap():
    g = gc.grad(lambda xs: gc.sum(gc.map(lambda x: gc.sum(gc.sin(x) * x), xs)))(XS)
    np.testing.assert_allclose(g, np.cos(XS) * XS + np.sin(XS), rtol=1e-13)
    batched = gc.vmap(lambda xs: gc.map(lambda x: x * 3.0, xs))(np.stack([XS, -XS]))
    np.testing.assert_allclose(batched, np.stack([XS, -XS]) * 3.0, rtol=1e-15)


# ---- batch_size= (jax.lax.map's): a scan over chunks of batch_size rows, each mapped by
# vmap, and one more vmap over the rows left; 0 is one vmap over all of xs (JAX's docs)
SIZES = (1, 2, 3, 4, 5, 6, 0)  # dividing 5 rows, not dividing, >= 5, one vmap


def pairs_f(p):
    x, (y,) = p["x"], p["y"]
    return gc.sum(x * y), (gc.tanh(x) + y, {"c": gc.cos(x[0])})


def pairs_loop(x, y):
    return (np.array([np.sum(a * b) for a, b in zip(x, y)]),
            (np.tanh(x) + y, {"c": np.cos(x[:, 0])}))


def test_map_batch_size_equals_the_loop_eagerly_and_compiled():
    y = np.random.default_rng(1).normal(size=(5, 3))
    want = pairs_loop(XS, y)
    for b in SIZES:
        compiled = gc.compile(lambda xs, y: gc.map(pairs_f, {"x": xs, "y": (y,)},
                                                   batch_size=b))
        for got in (gc.map(pairs_f, {"x": XS, "y": (y,)}, batch_size=b), compiled(XS, y)):
            assert gc.tree_flatten(got)[1] == gc.tree_flatten(want)[1]
            for g, w in zip(gc.tree_leaves(got), gc.tree_leaves(want)):
                np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
    assert np.shape(gc.map(lambda x: x * 2.0, np.zeros((0, 3)), batch_size=2)) == (0, 3)


def test_map_batch_size_traces_f_for_the_chunks_and_for_the_rest():
    # as JAX's docs: 7 rows in chunks of 3 trace f twice, once per chunk shape
    for b, (length, rest) in {3: (2, 1), 7: (1, 0), 8: (None, 7), 0: (None, 7)}.items():
        seen = []

        def f(x):
            seen.append(x.shape)
            return x * 2.0

        graph = gc.trace(lambda xs: gc.map(f, xs, batch_size=b), gc.spec((7, 4), "float64"))
        assert seen == [(4,)] * ((length is not None) + (rest > 0))
        scans = [n for n in graph.nodes if n.op == "scan"]
        assert [n.attrs["length"] for n in scans] == ([length] if length else [])
        if length:
            assert scans[0].attrs["body"].inputs[0].type.shape == (b, 4)


def test_map_batch_size_gradients_equal_the_unbatched_map_in_float64():
    w = np.random.default_rng(2).normal(size=(3,))

    def loss(xs, w, b):
        return gc.sum(gc.map(lambda x: gc.sin(x @ w) * gc.sum(x * x), xs, batch_size=b))

    want = gc.grad(lambda xs, w: loss(xs, w, None), argnums=(0, 1))(XS, w)
    assert all(np.abs(g).max() > 1e-3 for g in want)
    dots = XS @ w  # and the unbatched map's against the closed form
    sq = np.sum(XS * XS, 1)
    np.testing.assert_allclose(want[0], np.cos(dots)[:, None] * w * sq[:, None]
                               + 2 * np.sin(dots)[:, None] * XS, rtol=1e-13)
    np.testing.assert_allclose(want[1], (np.cos(dots) * sq) @ XS, rtol=1e-13)
    for b in SIZES:
        grad = gc.grad(lambda xs, w: loss(xs, w, b), argnums=(0, 1))
        tensors = [gc.tensor(a, requires_grad=True) for a in (XS, w)]
        loss(*tensors, b).backward()  # the eager tape
        for got in (grad(XS, w), gc.compile(grad)(XS, w), [t.grad for t in tensors]):
            for g, v in zip(got, want):
                np.testing.assert_allclose(g, v, rtol=1e-13, atol=1e-15)


def test_map_batch_size_under_vmap():
    stacked = np.stack([XS, -XS, 2 * XS])
    for b in SIZES:
        fn = gc.vmap(lambda xs: gc.map(lambda x: gc.sum(gc.sin(x)) * x, xs, batch_size=b))
        want = np.sum(np.sin(stacked), -1, keepdims=True) * stacked
        for got in (fn(stacked), gc.compile(fn)(stacked)):
            np.testing.assert_allclose(got, want, rtol=1e-14)


def test_map_batch_size_over_a_symbolic_length():
    # 0 and 1 split every size; 2 splits 2*n rows, and n rows only where n is declared
    square = lambda x: gc.sum(x * x)  # noqa: E731
    for b, shape, sizes in ((0, "(n, 3)", (1, 4, 7)), (1, "(n, 3)", (1, 4, 7)),
                            (2, "(2*n, 3)", (2, 6))):
        fn = gc.compile(lambda xs: gc.map(square, xs, batch_size=b),
                        polymorphic_shapes=[shape])
        for n in sizes:
            xs = np.random.default_rng(n).normal(size=(n, 3))
            np.testing.assert_allclose(fn(xs), np.sum(xs * xs, 1), rtol=1e-14)
        assert fn.recompiles == []
    assert_one_line_error(
        lambda: gc.compile(lambda xs: gc.map(square, xs, batch_size=2),
                           polymorphic_shapes=["(n, 3)"])(XS),
        "map: batch_size=2 must divide the symbolic length n", "test_lax_map.py")


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3", np.float64(2.0)])
def test_map_batch_size_errors_name_it(bad):
    for call in (lambda: gc.map(lambda x: x, XS, batch_size=bad),
                 lambda: gc.compile(lambda xs: gc.map(lambda x: x, xs, batch_size=bad))(XS)):
        assert_one_line_error(call, f"map: batch_size must be an int >= 0 (0: one vmap over "
                                    f"all of xs), got {bad!r}", "test_lax_map.py")
