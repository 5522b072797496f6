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


_ACTIVATIONS_WITH_INPLACE = [  # torch's layers that take inplace, with their settings
    ("ReLU", ()), ("ReLU6", ()), ("ELU", (0.7,)), ("SELU", ()), ("CELU", (0.8,)),
    ("LeakyReLU", (0.2,)), ("Hardtanh", (-0.5, 0.75)), ("Hardswish", ()),
    ("Hardsigmoid", ()), ("SiLU", ()), ("Mish", ()), ("Threshold", (0.1, -2.0))]


@pytest.mark.parametrize("name, settings", _ACTIVATIONS_WITH_INPLACE)
def test_activations_take_torch_s_inplace_and_compute_the_same(name, settings):
    """gc.nn.ReLU(inplace=True), the most common spelling in torch code, raised TypeError,
    as did every activation layer's `inplace` but Threshold's. Now each layer torch gives an
    `inplace` takes it, by keyword or in torch's position after the settings, keeps it as
    `layer.inplace`, and computes torch's values (eager and compiled) without changing its
    input."""
    x = np.linspace(-3.0, 3.0, 13)
    expected = getattr(torch.nn, name)(*settings)(torch.tensor(x)).numpy()
    for layer in (getattr(gc.nn, name)(*settings, inplace=True),
                  getattr(gc.nn, name)(*settings, True)):
        assert layer.inplace is True
        given = x.copy()
        np.testing.assert_allclose(layer(gc.tensor(given)).numpy(), expected, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(gc.compile(layer)(given), expected, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_array_equal(given, x)
    assert getattr(gc.nn, name)(*settings).inplace is False


@pytest.mark.parametrize("name", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                  "AlphaDropout", "FeatureAlphaDropout"])
def test_dropouts_take_torch_s_inplace(name):
    """gc.nn.Dropout(0.1, inplace=True) (torch's signature, Dropout(p=0.5, inplace=False)
    for each of its dropouts) raised TypeError. Now each takes it, by keyword or second
    positionally, keeps it as `layer.inplace` and is the same layer: the identity in eval(),
    and in training the same masks as without it, the input left as it was."""
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 6))
    x = x[:, :, 0, 0] if name == "Dropout1d" else x[:, :, 0] if name == "Dropout2d" else x
    for layer in (getattr(gc.nn, name)(0.25, inplace=True), getattr(gc.nn, name)(0.25, True)):
        assert layer.inplace is True and layer.p == 0.25
        plain = getattr(gc.nn, name)(0.25)
        given = x.copy()
        with gc.nn.rng_key(7):
            dropped = layer(gc.tensor(given)).numpy()
        with gc.nn.rng_key(7):
            np.testing.assert_array_equal(dropped, plain(gc.tensor(x)).numpy())
        assert not np.array_equal(dropped, x)
        np.testing.assert_array_equal(layer.eval()(gc.tensor(given)).numpy(), x)
        np.testing.assert_array_equal(given, x)
