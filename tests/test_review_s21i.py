"""Review of conv2d / max_pool2d / avg_pool2d and their nn layers (s21i): each test failed
before its fix."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import graphc as gc
from ir.errors import GraphcError


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


@pytest.mark.parametrize("call, message", [
    (lambda x, w: gc.conv2d(x, w, padding="SAME"),
     r"padding must be an int, a pair of ints, 'same' or 'valid', got 'SAME'"),
    (lambda x, w: gc.conv2d(x, w, padding=np.array([1, 1])), r"padding must be an int or a pair"),
    (lambda x, w: gc.conv2d(x, w, groups=1.5), r"groups must be an int, got 1.5"),
    (lambda x, w: gc.conv2d(x, w, np.zeros(3)), r"b must have shape \(4,\).*got \(3,\)"),
    (lambda x, w: gc.conv2d(x, w, np.zeros((4, 1))), r"b must have shape \(4,\).*got \(4, 1\)"),
    (lambda x, w: gc.max_pool2d(x, 2.0), r"kernel_size must be an int or a pair of ints, got 2.0"),
    (lambda x, w: gc.avg_pool2d(x, 2, "same"),
     r"stride must be an int or a pair of ints, got 'same'"),
])
@pytest.mark.parametrize("compiled", [False, True])
def test_bad_conv_arguments_are_one_graphc_error(call, message, compiled):
    # these were a TypeError / ValueError from Python, a message of characters ('S', 'A',
    # 'M', 'E'), a reshape error, or (b of shape (4, 1)) silently accepted (PyTorch refuses)
    x, w = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))
    with pytest.raises(GraphcError, match=message) as error:
        if compiled:
            gc.compile(call)(x, w)
        else:
            call(gc.tensor(x), gc.tensor(w))
    assert "\n" not in error.value.message
    assert "test_review_s21i.py" in str(error.value)


def test_conv2d_layer_refuses_a_float_groups():
    with pytest.raises(GraphcError, match="groups must be a positive int, got 1.5"):
        gc.nn.Conv2d(3, 3, 3, groups=1.5)


@pytest.mark.parametrize("start, end", [(0, -1), (-1, -1), (0, 0), (-1, 0)])
def test_flatten_of_a_0d_value_is_1d_as_torch(start, end):
    # Flatten(0, -1) and Flatten(-1, -1) of a scalar were refused ("end_dim -1 is out of
    # range for a 0-d value"); PyTorch gives shape (1,)
    expected = torch.nn.Flatten(start, end)(torch.tensor(3.0)).numpy()
    got = np.asarray(gc.nn.Flatten(start, end)(gc.tensor(np.float64(3.0))).data)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (1,)
    compiled = gc.compile(lambda x: gc.nn.Flatten(start, end)(x))(np.float64(3.0))
    np.testing.assert_array_equal(compiled, expected)
    with pytest.raises(GraphcError, match="start_dim 1 is out of range"):
        gc.nn.Flatten(1, -1)(gc.tensor(np.float64(3.0)))


@pytest.mark.parametrize("compiled", [False, True])
def test_avg_pool2d_under_autocast_keeps_the_half_dtype(compiled):
    # autocast computes sum (so mean) in float32: avg_pool2d of a float16 activation came
    # back float32, where torch.autocast keeps float16 (max_pool2d and conv2d did already)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)

    def f(x, w):
        with gc.autocast("float16"):
            return gc.avg_pool2d(gc.conv2d(x, w, padding=1), 3, 2, 1)
    got = gc.compile(f)(x, w) if compiled else f(gc.tensor(x), gc.tensor(w)).data
    with torch.autocast("cpu", dtype=torch.float16):
        expected = TF.avg_pool2d(TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1), 3, 2, 1)
    assert expected.dtype == torch.float16
    assert np.asarray(got).dtype == np.float16
    np.testing.assert_allclose(np.asarray(got, np.float32), expected.float().numpy(), rtol=2e-2,
                               atol=2e-2)
    # the float32 weight still gets a float32 gradient
    grad = gc.grad(lambda w: gc.sum(gc.cast(f(x, w), "float32")))(w)
    assert np.asarray(grad).dtype == np.float32
