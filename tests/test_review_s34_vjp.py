"""Session 34's fixes of vjp, has_aux, the eager tape through compiled functions and the
transforms' argument checks; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


@pytest.mark.parametrize("transform", [gc.vmap, gc.jacrev, gc.jacfwd, gc.hessian])
def test_transforms_refuse_a_function_that_is_not_callable(transform):
    """gc.vmap(None)(x), gc.jacrev(None), gc.jacfwd(None) and gc.hessian(None) raised
    Python's TypeError "'NoneType' object is not callable" from inside graphc (vmap at the
    call, the Jacobians when they ran), where grad, jvp and remat say what is wrong: now one
    GraphcError naming the transform, when it is made."""
    with pytest.raises(GraphcError, match=rf"^{transform.__name__}: the function to transform "
                                          "must be callable, got None"):
        transform(None)


def test_vmap_names_an_output_that_is_not_a_tensor():
    """gc.vmap(lambda x: "s")(x) failed with numpy's "dtype <U1 is not supported" from the
    batching; now one line naming the output (a Python number still broadcasts)."""
    def labelled(v):
        return v, "s"
    x = np.ones(3)
    with pytest.raises(GraphcError, match=r"^vmap\(labelled\): output 1 is a str, which is "
                                          "not a tensor"):
        gc.vmap(labelled)(x)
    np.testing.assert_array_equal(gc.vmap(lambda v: 2.0)(x), [2.0, 2.0, 2.0])


def test_vjp_checks_the_cotangents_dtype():
    """The pullback took a cotangent of another dtype than its output's: a float32 0-d
    cotangent of a float64 sum gave a float32 gradient, and float32 ones for gc.sin's float64
    output failed in a gradient rule ("mul(f32[2], f64[2]): operands must have one dtype").
    As JAX ("got float32[2], but expected float64[2]"), one line naming both; a Python
    number still takes the output's dtype."""
    x = np.array([1.0, 2.0])
    _, pull = gc.vjp(gc.sin, x)
    with pytest.raises(GraphcError, match=r"^vjp: the cotangent is float32\[2\], but the "
                                          r"output is float64\[2\]; pass a cotangent of the "
                                          "output's dtype"):
        pull(np.ones(2, np.float32))
    _, pull = gc.vjp(lambda v: gc.sum(v), x)
    with pytest.raises(GraphcError, match=r"cotangent is float32\[\], but the output is "
                                          r"float64\[\]"):
        pull(np.array(1.0, np.float32))
    (g,) = pull(2)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 2.0])
    _, pull = gc.vjp(lambda v: {"a": v, "b": v * 2}, x)
    with pytest.raises(GraphcError, match=r"cotangent for output leaf 1 is float32\[2\], "
                                          r"but the output is float64\[2\]"):
        pull({"a": np.ones(2), "b": np.ones(2, np.float32)})
