"""Session 47's review of gc.nn.Module against torch.nn.Module; each test failed before its
change."""
import numpy as np
import pytest
import torch

import graphc as gc
from errorcheck import assert_one_line_error

HERE = "test_review_s47_module.py"


@pytest.mark.parametrize("flag", ["False", "no", 0, 1, None])
def test_requires_grad_takes_a_bool_only_as_torch_s(flag):
    """model.requires_grad_("False") (a flag read from a config as a string) left every
    parameter trainable, silently: Python's truth of "False" is True; `p.requires_grad =
    "no"` stored the string, and 0 or None froze. torch refuses anything but a bool there.
    Now each spelling (the module's, the tensor's, the attribute, gc.tensor's keyword) is
    one line naming the value, and the model is left as it was."""
    theirs = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match="must be bool"):
        theirs.requires_grad_(flag)
    model = gc.nn.Sequential(gc.nn.Linear(3, 2))
    line = f"expected a bool (True or False), got {flag!r} of type {type(flag).__name__}"
    assert_one_line_error(lambda: model.requires_grad_(flag), f"requires_grad_: {line}", HERE)
    assert_one_line_error(lambda: gc.nn.Sequential().requires_grad_(flag),
                          f"requires_grad_: {line}", HERE)
    assert_one_line_error(lambda: model[0].weight.requires_grad_(flag),
                          f"requires_grad_: {line}", HERE)
    assert_one_line_error(lambda: setattr(model[0].bias, "requires_grad", flag),
                          f"requires_grad: {line}", HERE)
    assert_one_line_error(lambda: gc.tensor(np.ones(2), requires_grad=flag),
                          f"tensor: requires_grad: {line}", HERE)
    assert [p.requires_grad for p in model.parameters()] == [True, True]
    # a bool (numpy's too, as train() takes) still sets it
    assert model.requires_grad_(np.bool_(False)) is model
    assert [p.requires_grad for p in model.parameters()] == [False, False]
    model[0].bias.requires_grad = True
    assert model[0].bias.requires_grad is True


@pytest.mark.parametrize("kind", ["module", "compiled"])
def test_a_module_set_over_a_parameter_is_refused_as_torch_s(kind):
    """`linear.weight = gc.nn.ReLU()` (or a compiled layer) replaced the Parameter silently:
    state_dict(), parameters() and an optimiser lost the weight, where torch refuses the
    assignment (a plain value there was refused already). Now it is one line naming the
    parameter, and the layer keeps its weight; a Parameter over a child stays allowed, as
    torch's."""
    with pytest.raises(TypeError, match="cannot assign .* as parameter 'weight'"):
        torch.nn.Linear(2, 2).weight = torch.nn.ReLU()
    layer = gc.nn.Linear(2, 2)
    weight = layer.weight
    value = gc.nn.ReLU() if kind == "module" else gc.compile(gc.nn.ReLU())
    assert_one_line_error(lambda: setattr(layer, "weight", value),
                          "Linear: cannot assign a ", HERE)
    assert layer.weight is weight
    assert list(layer.state_dict()) == ["weight", "bias"]
    model = gc.nn.Sequential(gc.nn.Linear(2, 2))
    setattr(model, "0", gc.nn.Parameter(np.ones(2, np.float32)))  # torch's allows it
    assert list(model.state_dict()) == ["0"]
