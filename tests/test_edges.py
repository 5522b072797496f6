"""Regression tests for wrong results and crashes at the edges (issue 13, items 1-12), each
in eager mode and compiled where both apply; reference values from PyTorch (float64) or
numpy."""
import numpy as np
import pytest
import torch

import graphc as gc
from ir.errors import GraphcError


# ---- 1: second derivatives through composite gradient rules ------------------------------------
@pytest.mark.parametrize("name", ["gelu", "softmax", "layer_norm"])
def test_hessian_when_the_incoming_gradient_depends_on_the_input(name):
    ours, theirs = {
        "gelu": (lambda x: gc.sum(gc.gelu(x) ** 2.0),
                 lambda x: (torch.nn.functional.gelu(x, approximate="tanh") ** 2).sum()),
        "softmax": (lambda x: gc.sum(gc.softmax(x) ** 2.0),
                    lambda x: (torch.softmax(x, -1) ** 2).sum()),
        "layer_norm": (lambda x: gc.sum(gc.layer_norm(x) ** 3.0),
                       lambda x: (torch.nn.functional.layer_norm(x, (3,)) ** 3).sum()),
    }[name]
    x = np.array([0.3, -0.7, 1.1])
    expected = torch.autograd.functional.hessian(theirs, torch.tensor(x)).numpy()
    np.testing.assert_allclose(gc.hessian(ours)(x), expected, rtol=1e-9, atol=1e-12)
