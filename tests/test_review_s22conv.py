"""Review of conv2d / max_pool2d / avg_pool2d and their nn layers (s22conv), against
torch.nn.functional in float64, eager and compiled: each test failed before its fix."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import graphc as gc
from errorcheck import assert_one_line_error


def _value_and_grad(f, x, compiled):
    """f(x) and the gradient of sum(f(x)), eagerly (the tape) or compiled."""
    if compiled:
        return (np.asarray(gc.compile(f)(x)),
                np.asarray(gc.compile(gc.grad(lambda x: gc.sum(f(x))))(x)))
    t = gc.tensor(x, requires_grad=True)
    out = f(t)
    gc.sum(out).backward()
    return np.asarray(out.data), np.asarray(t.grad.data if hasattr(t.grad, "data") else t.grad)


def _torch_value_and_grad(f, x):
    t = torch.tensor(x, requires_grad=True)
    out = f(t)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("compiled", [False, True])
def test_max_pool2d_of_minus_inf_gives_no_gradient_to_its_padding(compiled):
    # a window of -inf tied its -inf padding, and max's gradient, split by all its taps,
    # lost the padding's share: 0.25 everywhere here; PyTorch gives each window's 1 to its
    # first element inside x, graphc shares it equally among the window's elements inside x
    x = np.full((1, 1, 3, 3), -np.inf)
    value, grad = _value_and_grad(lambda x: gc.max_pool2d(x, 2, 2, 1), x, compiled)
    expected, expected_grad = _torch_value_and_grad(lambda x: TF.max_pool2d(x, 2, 2, 1), x)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(expected_grad[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(grad[0, 0], [[1, .5, .5], [.5, .25, .25], [.5, .25, .25]])
    # -inf blocks among finite values: where no tie, PyTorch's gradient exactly
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6))
    x[0, 0, :2, :2] = -np.inf  # the window (0, 0)'s elements inside x: all -inf, shared
    x[1, 2, -1, :] = x[1, 2, :, -1] = -np.inf  # -inf by the padding, windows' maxima finite
    value, grad = _value_and_grad(lambda x: gc.max_pool2d(x, 3, 2, 1), x, compiled)
    expected, expected_grad = _torch_value_and_grad(lambda x: TF.max_pool2d(x, 3, 2, 1), x)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad[0, 0, :2, :2], np.full((2, 2), 0.25))
    assert expected_grad[0, 0, :2, :2].sum() == 1
    grad[0, 0, :2, :2] = expected_grad[0, 0, :2, :2]
    np.testing.assert_array_equal(grad, expected_grad)


F32, F64 = np.zeros((2, 3, 5, 5), np.float32), np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize("call, message", [
    (lambda: gc.conv2d(gc.tensor(F32), gc.tensor(F64)), "conv2d: x is float32 and w float64"),
    (lambda: gc.compile(lambda x, w: gc.conv2d(x, w))(F32, F64),
     "conv2d: x is float32 and w float64"),
    (lambda: gc.compile(lambda x, w, b: gc.conv2d(x, w, b))(F32, F64.astype(np.float32), F64[:, 0, 0, 0]),
     "conv2d: x is float32 and b float64"),
    (lambda: gc.nn.Conv2d(3, 4, 3)(gc.tensor(F64)), "conv2d: x is float64 and w float32"),
])
def test_conv2d_of_mixed_dtypes_is_one_error_naming_them(call, message):
    # this failed inside im2col's matmul, naming its internal shapes (f32[18,27]); PyTorch
    # refuses mixed dtypes too
    assert_one_line_error(call, message, "test_review_s22conv.py")


def test_conv2d_of_mixed_dtypes_under_autocast_runs_in_the_half_dtype():
    # the float64 bias failed in its add to the float16 output; torch.autocast casts all three
    with gc.autocast("float16"):
        out = gc.conv2d(gc.tensor(F32 + 1), gc.tensor(F64 + 1), gc.tensor(F64[:, 0, 0, 0]))
    assert out.data.dtype == np.float16
    np.testing.assert_array_equal(np.asarray(out.data), np.full((2, 4, 3, 3), 27))
