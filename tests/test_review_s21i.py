"""Review of conv2d / max_pool2d / avg_pool2d and their nn layers (s21i): each test failed
before its fix."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import graphc as gc


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("compiled", [False, True])
def test_max_pool2d_pads_integers_with_their_least_value(dtype, compiled):
    # the padding was -inf whatever the dtype: an OverflowError for integer input; PyTorch
    # pads with the dtype's least value, so an all-negative window still gives its own max
    x = np.arange(-20, 5).reshape(1, 1, 5, 5).astype(dtype)
    expected = TF.max_pool2d(torch.tensor(x), 3, 2, 1).numpy()
    f = lambda x: gc.max_pool2d(x, 3, 2, 1)
    got = np.asarray(gc.compile(f)(x)) if compiled else np.asarray(f(gc.tensor(x)).data)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    # bool: max is "any", the padding False
    got = np.asarray(gc.compile(f)(x > -3)) if compiled else np.asarray(f(gc.tensor(x > -3)).data)
    np.testing.assert_array_equal(got, expected > -3)
