"""Session 54's fixes to gc.nn.Module and the norm layers against torch.nn.Module: a buffer set
to a Python number, load_state_dict copying into the Parameters' arrays, register_buffer over
an (empty) parameter or child, BatchNorm's running statistics given as lists, and errors
that show a Parameter in one line; each against torch on the same code."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error, one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s54_module.py"


# -- 1. a buffer set to a Python number ------------------------------------------------------

@pytest.mark.parametrize("value", [1, 2.5, True])
def test_setting_a_buffer_to_a_python_number_is_torchs_type_error(value):
    theirs = torch.nn.BatchNorm1d(3)
    with pytest.raises(TypeError, match="cannot assign .* as buffer 'running_var'"):
        theirs.running_var = value
    ours = gc.nn.BatchNorm1d(3)
    with pytest.raises(TypeError):
        ours.running_var = value
    problem = one_line_problem(lambda: setattr(ours, "running_var", value), HERE)
    assert problem.startswith(f"BatchNorm1d: cannot assign {'a bool' if value is True else 'an int' if isinstance(value, int) else 'a float'} as buffer 'running_var'"), problem
    # the Buffer is as it was (before: an int64 or float64 0-d Buffer took its place)
    assert isinstance(ours.running_var, gc.nn.Buffer)
    assert ours.running_var.data.dtype == np.float32
    np.testing.assert_array_equal(ours.running_var.data, np.ones(3, np.float32))


def test_a_buffer_set_to_a_list_of_numbers_keeps_its_dtype_and_trains_as_torchs():
    x = np.random.default_rng(0).normal(size=(4, 3))
    theirs = torch.nn.BatchNorm1d(3).double()
    theirs.running_mean = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    theirs(torch.tensor(x))
    ours = gc.nn.BatchNorm1d(3, dtype="float64")
    ours.running_mean = [0, 1, 2]  # ints: before, an int64 Buffer the update failed on
    assert isinstance(ours.running_mean, gc.nn.Buffer)
    assert ours.running_mean.data.dtype == np.float64
    ours(gc.tensor(x))
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-12)
    assert_one_line_error(lambda: setattr(ours, "running_var", [1.0, "a", 2.0]),
                          "BatchNorm1d.running_var = ...: the buffer's list is not an array "
                          "of numbers", HERE)
    assert_one_line_error(lambda: setattr(ours, "running_var", [1.0, [2.0], 3.0]),
                          "BatchNorm1d.running_var = ...: the buffer's list is not an array "
                          "of numbers", HERE)
