"""The finite check (plan.run_checked / check_finite=True) names the op that made a NaN or an
Inf, element by element for elementwise ops, whatever flowed in before or was overwritten."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def checked(f, *args):
    return gc.compile(f).plan_for(*args).run_checked(*args)


def test_a_new_nan_beside_an_old_one_is_found():
    # row 0 carries the input's NaN, log(-1) makes a new one in row 1: log is to blame
    x = np.array([[np.nan, 1, 2], [1, -1, 2.]])
    with pytest.raises(GraphcError, match=r"2 of 6 elements of log -> f64\[2,3\]; operands: "
                                          r"f64\[2,3\] in \[-1, 2\] and 1 NaN"):
        checked(lambda x, w: gc.log(x) @ w, x, np.ones((3, 2)))


def test_an_op_that_only_passes_nan_on_in_place_is_not_blamed():
    with pytest.raises(GraphcError, match="elements of log"):
        checked(lambda x: gc.log(x) * 2.0 + 1.0, np.array([np.nan, -1, 2.]))


def test_nan_from_an_input_is_still_reported():
    with pytest.raises(GraphcError, match=r"1 elements of exp -> f64\[3\] are NaN or Inf"):
        checked(lambda x: gc.exp(x) * 2.0, np.array([np.nan, 0, 1.]))


def test_the_models_own_minus_inf_is_not_an_error():
    out, = checked(lambda x: gc.softmax(gc.where(x > 0, x, -np.inf), -1),
                   np.array([[1., -1, 2]]))
    np.testing.assert_allclose(out, [[0.26894142, 0., 0.73105858]], rtol=1e-7)


def test_inf_from_finite_operands_is_blamed_on_its_op():
    with pytest.raises(GraphcError, match=r"1 of 2 elements of div"):
        checked(lambda x, y: x / y, np.array([1., 2]), np.array([0., 1]))


def test_an_operand_the_op_overwrote_in_place_is_not_described_by_the_result():
    # sqrt writes over its operand (b - 0.05, a buffer of its own): read after the op, the
    # operand's range was sqrt's ("in [0.1291, 0.5] and 8 NaN"), as if it had held the NaN
    b = np.linspace(-0.2, 0.3, 16).astype(np.float32)
    with pytest.raises(GraphcError) as info:
        checked(lambda b: gc.mean(gc.sqrt(b - 0.05)), b)
    assert str(info.value).splitlines()[0] == (
        "non-finite value: 8 of 16 elements of sqrt -> f32[16]; operands: f32[16] all "
        "finite, overwritten by the result")
    # one that held a NaN when computed says how many
    b[-1] = np.nan
    with pytest.raises(GraphcError, match=r"9 of 16 elements of sqrt -> f32\[16\]; operands: "
                                          r"f32\[16\] 1 NaN, overwritten by the result"):
        checked(lambda b: gc.mean(gc.sqrt(b - 0.05)), b)
