"""Session 55: an error message showed every array by its shape and dtype (ir/shown.py),
"Parameter(shape=(3,), dtype=float32)" for a Parameter of three numbers, where torch's
message shows a tensor's values. A tensor or array of at most 8 numbers is now shown by
them, on one line (nesting gives the shape), with its dtype; a larger one (or one whose
numbers run past the line) by its shape as before."""
import ml_dtypes
import numpy as np
import pytest

import graphc as gc
from errorcheck import one_line_problem
from ir.shown import shown


@pytest.mark.parametrize("value, text", [
    (gc.nn.Parameter(np.array([1.0, 2.0, 3.0], np.float32)),
     "Parameter([1., 2., 3.], dtype=float32)"),
    (gc.nn.Buffer(np.zeros(2)), "Buffer([0., 0.], dtype=float64)"),
    (np.array([0.1, 0.2], np.float32), "ndarray([0.1, 0.2], dtype=float32)"),  # (not 0.1000…)
    (np.array([[1, 2], [3, 4]]), "ndarray([[1, 2], [3, 4]], dtype=int64)"),
    (np.array([True, False]), "ndarray([True, False], dtype=bool)"),
    (np.array([np.nan, -np.inf]), "ndarray([nan, -inf], dtype=float64)"),
    (gc.tensor(np.array([1.5, 2.0], ml_dtypes.bfloat16)), "Tensor([1.5, 2], dtype=bfloat16)"),
    (np.arange(8.0), "ndarray([0., 1., 2., 3., 4., 5., 6., 7.], dtype=float64)"),
    (np.arange(9.0), "ndarray(shape=(9,), dtype=float64)"),  # more than 8: the shape
    (np.zeros((0, 3)), "ndarray(shape=(0, 3), dtype=float64)"),  # none: the shape
    (np.full(8, 1 / 3), "ndarray(shape=(8,), dtype=float64)"),  # past the line: the shape
    ([np.ones(2), 3], "[ndarray([1., 1.], dtype=float64), 3]"),
    (np.array(0.5, np.float32), "ndarray(0.5, dtype=float32)"),
])
def test_a_small_array_is_shown_by_its_values(value, text):
    assert shown(value) == text


def test_an_error_shows_a_small_parameter_s_values():
    p = gc.nn.Parameter(np.array([1.0, 2.0, 3.0], np.float32))
    problem = one_line_problem(lambda: gc.nn.Linear(p, 2), "test_shown_small_arrays.py")
    assert problem == ("Linear: in_features must be a non-negative int, got "
                       "Parameter([1., 2., 3.], dtype=float32)"), problem
    problem = one_line_problem(lambda: gc.nn.Dropout(gc.tensor([0.5])),
                               "test_shown_small_arrays.py")
    assert problem == "Dropout: p must be a number, got Tensor([0.5], dtype=float64)", problem
