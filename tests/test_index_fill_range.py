"""Session 55: index_fill's number into an integer x was truncated before its range check,
so 2147483647.5 filled an int32 x with 2147483647 (and -2147483648.9 with its minimum)
where torch 2.13 refuses any value outside the dtype's range ("value cannot be converted
to type int without overflow"), checking the number as given; a concrete 0-d tensor value
out of range was cast by numpy (INT_MIN, a RuntimeWarning) where torch refuses it alike.
Now refused in one line, eager and compiled; values in range still truncate toward zero."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_index_fill_range.py"


def _torch(x, value):
    return torch.tensor(x).index_fill(0, torch.tensor([1]), value).numpy()


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("value", [2147483647.5, -2147483648.5, -2147483648.9, 2.0 ** 63,
                                   1e19, np.float64(2147483647.5)])
def test_a_value_out_of_range_before_truncation_is_refused_as_torch(value, dtype):
    x = np.zeros(3, dtype)
    info = np.iinfo(dtype)
    out = not info.min <= float(value) <= info.max or float(value) == 2.0 ** 63
    if not out:  # (int64 holds the int32 ones: filled, truncated toward zero, as torch's)
        want = _torch(x, float(value))
        for got in (gc.index_fill(x, 0, [1], value),
                    gc.compile(lambda a: gc.index_fill(a, 0, [1], value))(x)):
            np.testing.assert_array_equal(np.asarray(got), want)
        return
    if float(value) != 2.0 ** 63:  # (torch lets 2**63 through its float check and wraps)
        with pytest.raises(RuntimeError, match="without overflow"):
            _torch(x, float(value))
    message = f"index_fill: value {float(value)!r} does not fit in {np.dtype(dtype)}"
    for fn in (lambda a: gc.index_fill(a, 0, [1], value),
               gc.compile(lambda a: gc.index_fill(a, 0, [1], value))):
        assert_one_line_error(lambda: fn(x), message, HERE)


def test_the_range_ends_and_fractions_inside_are_filled_as_torch():
    x = np.zeros(3, np.int32)
    for value in (2147483647, -2147483648, 2147483646.5, -2147483647.9, 2.7, -2.7, True):
        want = _torch(x, value)
        for got in (gc.index_fill(x, 0, [1], value),
                    gc.compile(lambda a: gc.index_fill(a, 0, [1], value))(x)):
            np.testing.assert_array_equal(np.asarray(got), want)


def test_a_concrete_0d_tensor_out_of_range_is_refused_as_torch():
    x = np.zeros(3, np.int32)
    with pytest.raises(RuntimeError, match="without overflow"):
        torch.tensor(x).index_fill(0, torch.tensor([1]), torch.tensor(2147483648.0))
    for value in (gc.tensor(2147483648.0), np.array(2147483647.5)):
        assert_one_line_error(lambda: gc.index_fill(gc.tensor(x), 0, [1], value),
                              "does not fit in int32", HERE)
    np.testing.assert_array_equal(np.asarray(gc.index_fill(x, 0, [1], gc.tensor(2.5))),
                                  _torch(x, torch.tensor(2.5)))
