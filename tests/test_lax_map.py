"""gc.map, as jax.lax.map: f over the leading axis, eagerly, compiled, differentiated and
under vmap, against a Python loop."""
import numpy as np

import graphc as gc

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
