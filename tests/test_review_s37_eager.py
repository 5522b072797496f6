"""Session 37's fixes of graphc's eager (PyTorch-like) tensors; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def test_integer_results_of_eager_ops_do_not_require_grad():
    """An int or bool result of an op on a tensor that requires grad was recorded on the
    tape (requires_grad=True) and backward() through it filled x.grad with [3, 3, 3]; now, as
    torch's and compiled's, it requires no grad and backward() on it is refused in one line."""
    x = gc.tensor(np.array([1.7, -2.2, 3.9], np.float32), requires_grad=True)
    k = x.astype("int32")
    assert not k.requires_grad and k._ctx is None
    np.testing.assert_array_equal(k.numpy(), [1, -2, 3])
    assert not (x > 0).requires_grad
    assert not gc.argmax(x).requires_grad
    with pytest.raises(GraphcError, match="dtype int32: only floating-point"):
        gc.sum(k * 3).backward()
    assert x.grad is None
    gc.sum(x * 2).backward()  # float results still on the tape
    np.testing.assert_array_equal(x.grad, [2, 2, 2])
