"""Review s20e: JAX-style transforms in composition, against torch.func (float64)."""
import numpy as np
import torch
from torch import func as tf

import graphc as gc


def _t(a):
    return torch.tensor(np.asarray(a, np.float64))


W0 = np.array([0.1, 0.5, -0.3])
X = np.array([[0.0, 1.0, 2.0], [3.0, -4.0, 5.0]])


def test_jacfwd_of_a_concrete_array_inside_a_trace():
    # jacfwd called inside vmap or compile on a numpy argument refused it: "a float64 input
    # has no Jacobian; only floating-point values do"; jacrev (and JAX) take it
    def f(w, x):
        return gc.sin(w * x) * w

    want = np.stack([tf.jacfwd(lambda w: torch.sin(w * _t(x)) * w)(_t(W0)).numpy() for x in X])
    for jac in (gc.jacfwd, gc.jacrev):
        per_example = lambda x: jac(lambda w: f(w, x))(W0)  # noqa: E731
        np.testing.assert_allclose(np.asarray(gc.vmap(per_example)(X)), want, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(np.asarray(gc.compile(per_example)(X[1])), want[1],
                                   rtol=1e-12, atol=1e-15)
