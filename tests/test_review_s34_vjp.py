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
