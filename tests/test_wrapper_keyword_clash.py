"""A wrapper's own first parameter is positional-only, as JAX's are, so that a keyword of
the user's function of the same name reaches the function: gc.eval_shape(f, x, fn=...) and
gc.compile(f)(x, self=...) were "got multiple values for argument 'fn'/'self'"."""
import numpy as np

import graphc as gc


def _scaled(x, fn):  # a keyword named as eval_shape's own first parameter
    return x * fn


def _by_self(x, self):  # ... and as a bound __call__'s
    return x * self


def test_eval_shape_keyword_named_fn():
    out = gc.eval_shape(_scaled, np.ones((3, 2)), fn=gc.Spec((2,), np.float64))
    assert out.shape == (3, 2) and out.dtype == np.float64
    out = gc.eval_shape(_scaled, x=gc.Spec((4,), np.float32), fn=2.0)  # weak: stays f32
    assert out.shape == (4,) and out.dtype == np.float32


def test_compiled_keyword_named_self():
    x = np.arange(3.0)
    np.testing.assert_array_equal(gc.compile(_by_self)(x, self=2.0), x * 2.0)
    np.testing.assert_array_equal(gc.compile(_scaled)(x, fn=np.full(3, 3.0)), x * 3.0)


def test_custom_vjp_keyword_named_self():
    f = gc.custom_vjp(_by_self)
    f.defvjp(lambda x, self: (x * self, self), lambda s, g: (g * s, None))
    x = np.arange(3.0)
    np.testing.assert_array_equal(f(x, self=2.0), x * 2.0)
    np.testing.assert_array_equal(gc.grad(lambda x: gc.sum(f(x, self=3.0)))(x), np.full(3, 3.0))


def test_transforms_forward_such_keywords():
    x = np.arange(1.0, 4.0)
    np.testing.assert_allclose(gc.grad(lambda x, fn: gc.sum(x * x * fn))(x, fn=2.0), 4.0 * x)
    v, g = gc.value_and_grad(lambda x, self: gc.sum(x * self))(x, self=3.0)
    assert float(v) == 18.0 and np.allclose(g, 3.0)
    np.testing.assert_allclose(gc.jacrev(_scaled)(x, fn=2.0), 2.0 * np.eye(3))
    np.testing.assert_allclose(gc.remat(_scaled)(x, fn=2.0), 2.0 * x)
