"""Session 36's additions of torch.nn's Module and container API that torch code uses; each
test failed before its change."""
import numpy as np
import pytest
import torch

import graphc as gc
from errorcheck import assert_one_line_error

HERE = "test_review_s36_module_api.py"


def test_load_state_dict_of_a_list_says_so_in_one_line():
    """model.load_state_dict([w, b]) (a list, not a dict) failed with AttributeError ("'list'
    object has no attribute 'items'") deep inside; torch refuses it with a TypeError. Now it
    is one GraphcError line at the caller's line, as load_torch_state_dict's, and the model
    is left as it was."""
    layer = gc.nn.Linear(3, 2)
    before = layer.weight.data.copy()
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        torch.nn.Linear(3, 2).load_state_dict([np.zeros((2, 3)), np.zeros(2)])
    assert_one_line_error(lambda: layer.load_state_dict([np.zeros((3, 2)), np.zeros(2)]),
                          "load_state_dict: state must be a dict name -> array (as "
                          "model.state_dict() gives), got list", HERE)
    np.testing.assert_array_equal(layer.weight.data, before)
