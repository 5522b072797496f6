"""Session 37's fixes of the control-flow constructs run eagerly; each test failed before its
fix."""
import numpy as np
import pytest

import graphc as gc


@pytest.mark.parametrize("xs", [np.array([1.5, 2.0, 3.0], np.float32),
                                np.array([1, 2, 3], np.int32)], ids=["float32", "int32"])
@pytest.mark.parametrize("reverse", [False, True])
def test_an_eager_scan_returning_its_weak_carry_as_a_y_runs_as_compiled(xs, reverse):
    """An exclusive prefix sum from a Python 0, `scan(lambda c, x: (c + x, c), 0, xs)`,
    failed eagerly ("concat(i64[1], f32[1], f32[1]): operands must have one dtype": step
    0's y is the int 0), where the compiled scan types the weak carry as xs; now eager
    gives the compiled values and dtypes."""
    def prefix(xs):
        return gc.scan(lambda c, x: (c + x, c), 0, xs, reverse=reverse)

    (total, ys), (total_c, ys_c) = prefix(xs), gc.compile(prefix)(xs)
    np.testing.assert_array_equal(np.asarray(ys), ys_c)
    assert np.asarray(ys).dtype == ys_c.dtype == xs.dtype
    assert float(total) == float(total_c) == float(np.sum(xs))


def test_an_eager_scan_of_python_numbers_alone_stacks_them_as_numpy_types_them():
    """`scan(lambda c, _: (c / 2 + 1, c), 0, None, length=3)`: ys 0, 1.0, 1.5 (an int, then
    floats) failed to stack eagerly; now float64, as compiled."""
    def halving():
        return gc.scan(lambda c, _: (c / 2 + 1, c), 0, None, length=3)

    (carry, ys), (carry_c, ys_c) = halving(), gc.compile(halving)()
    np.testing.assert_array_equal(np.asarray(ys), [0.0, 1.0, 1.5])
    assert np.asarray(ys).dtype == ys_c.dtype == np.float64
    assert float(carry) == float(carry_c) == 1.75


def test_the_gradient_through_an_eager_prefix_sum_from_zero():
    """The same scan on the tape: each x reaches the ys after it."""
    x = gc.tensor(np.array([1.5, 2.0, 3.0], np.float32), requires_grad=True)
    _, ys = gc.scan(lambda c, v: (c + v, c), 0, x)
    gc.sum(ys).backward()
    np.testing.assert_array_equal(x.grad, [2.0, 1.0, 0.0])
