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


def _torch_and_ours(seed=0):
    """A torch Sequential(Linear(3, 4), Tanh(), Linear(4, 2)) in float64 and graphc's with
    its weights."""
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2)).double()
    ours = gc.nn.Sequential(gc.nn.Linear(3, 4, dtype="float64"), gc.nn.Tanh(),
                            gc.nn.Linear(4, 2, dtype="float64"))
    ours.load_torch_state_dict(theirs.state_dict())
    return theirs, ours


def test_requires_grad_freezes_a_module_as_torch_s():
    """Module.requires_grad_ and Tensor.requires_grad_ were missing (AttributeError), the
    usual way torch code freezes a layer (`model[0].requires_grad_(False)`). Now each sets
    the flag and returns its object, as torch's: the frozen layer gets no .grad eagerly, and
    a compiled gradient traced before the freeze is traced again and gives it zeros, the
    other layers torch's gradients."""
    theirs, ours = _torch_and_ours()
    x = np.random.default_rng(1).normal(size=(5, 3))
    grads = gc.compile(gc.grad(lambda params, x: gc.sum(ours.apply(params, x) ** 2)))
    grads(ours.params(), x)  # traced with every layer trainable
    assert theirs[0].requires_grad_(False) is theirs[0]
    assert ours[0].requires_grad_(False) is ours[0]
    assert [p.requires_grad for p in ours.parameters()] == [False, False, True, True]
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    gc.sum(ours(gc.tensor(x)) ** 2).backward()
    assert ours[0].weight.grad is None and theirs[0].weight.grad is None
    np.testing.assert_allclose(ours[2].weight.grad, theirs[2].weight.grad.numpy().T,
                               rtol=1e-12)
    compiled = grads(ours.params(), x)
    np.testing.assert_array_equal(compiled["0.weight"], 0.0)
    np.testing.assert_allclose(compiled["2.weight"], theirs[2].weight.grad.numpy().T,
                               rtol=1e-12)
    assert ours.requires_grad_() is ours and all(p.requires_grad for p in ours.parameters())
    assert ours[0].bias.requires_grad_(False) is ours[0].bias
    assert not ours[0].bias.requires_grad
    assert_one_line_error(lambda: gc.tensor(np.arange(3)).requires_grad_(),
                          "only floating-point tensors can require gradients, got int64", HERE)


def test_register_parameter_add_module_and_get_submodule_as_torch_s():
    """register_parameter, add_module (register_module), get_submodule and get_parameter
    were missing (AttributeError). Now they are torch's: the names they register are
    named_parameters' and state_dict's, as torch's; a name with a '.', or one the module
    holds another kind of attribute under, is refused in one line; a path that is not there
    is an AttributeError naming its part, as torch's."""
    theirs, ours = _torch_and_ours()
    for model, nn in ((theirs, torch.nn), (ours, gc.nn)):
        scale = np.full(2, 0.5)
        model.register_parameter("scale", nn.Parameter(torch.tensor(scale) if nn is torch.nn
                                                       else scale))
        model.add_module("head", nn.Linear(2, 1))
        model.register_module("act", nn.ReLU())
        model[0].register_parameter("bias", None)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "scale", "0.weight", "2.weight", "2.bias", "head.weight", "head.bias"]
    assert ours.get_submodule("head") is vars(ours)["head"] and ours.get_submodule("") is ours
    assert ours.get_parameter("2.bias") is ours[2].bias
    assert ours.get_parameter("scale") is ours.scale
    for target in ("2.gain", "3", "0.weight.x"):
        with pytest.raises(AttributeError):
            theirs.get_parameter(target)
        with pytest.raises(AttributeError, match=f"get_(submodule|parameter)\\({target!r}\\)"):
            ours.get_parameter(target)
    with pytest.raises(AttributeError, match="Tanh's 'weight' does not exist"):
        ours.get_parameter("1.weight")
    with pytest.raises(AttributeError, match="Linear's 'weight' is not a Module"):
        ours.get_submodule("0.weight")
    assert_one_line_error(lambda: ours.register_parameter("a.b", gc.nn.Parameter(scale)),
                          "register_parameter: the name must be a non-empty string without "
                          "'.', got 'a.b'", HERE)
    assert_one_line_error(lambda: ours.add_module("training", gc.nn.ReLU()),
                          "add_module('training'): Sequential has an attribute 'training' "
                          "already", HERE)
    assert_one_line_error(lambda: ours[2].register_parameter("bias", scale),
                          "register_parameter('bias'): a ndarray is not a Parameter", HERE)
    assert_one_line_error(lambda: ours.add_module("extra", 3), "add_module('extra'): a int "
                          "is not a Module", HERE)


def test_a_registered_child_is_seen_by_a_plan_traced_without_it():
    """add_module and register_parameter bump the count of replaced module attributes, so a
    compiled function traced through the module before is traced again: here a forward that
    uses its optional `head` when there is one."""
    class Net(gc.nn.Module):
        def __init__(self):
            self.body = gc.nn.Linear(3, 2, dtype="float64")

        def forward(self, x):
            y = self.body(x)
            return self.head(y) if hasattr(self, "head") else y

    net = Net()
    f = gc.compile(lambda x: net(x))
    x = np.ones((1, 3))
    assert f(x).shape == (1, 2)
    net.add_module("head", gc.nn.Linear(2, 1, dtype="float64"))
    np.testing.assert_allclose(f(x), net(gc.tensor(x)).numpy(), rtol=1e-12)


def test_train_refuses_a_mode_that_is_not_a_bool():
    """model.train("eval") and train(None) set training mode (bool("eval") is True, None
    put it in eval); torch refuses them ("training mode is expected to be boolean"). Now
    it is one line, and the mode is left as it was."""
    _, ours = _torch_and_ours()
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        torch.nn.ReLU().train("eval")
    for mode in ("eval", None, 0):
        assert_one_line_error(lambda: ours.train(mode), "train: training mode is expected "
                              f"to be boolean (True or False), got {mode!r}", HERE)
    assert ours.training and ours[0].training
    assert not ours.train(np.bool_(False)).training and not ours[2].training


_REPR_CASES = [  # (layer, positional, keyword): graphc's repr is torch's
    ("Linear", (3, 4), {}), ("Linear", (3, 4), {"bias": False}), ("Conv2d", (3, 8, 3), {}),
    ("Conv2d", (3, 8, (3, 5)), dict(stride=2, padding=1, dilation=2, bias=False,
                                    padding_mode="reflect")),
    ("Conv2d", (4, 8, 3), dict(groups=2, padding="same")),
    ("Conv1d", (2, 4, 3), dict(stride=2, padding=1)), ("Embedding", (10, 4), {}),
    ("Embedding", (10, 4), {"padding_idx": 0}), ("LayerNorm", (4,), {}),
    ("LayerNorm", ((3, 4),), {"elementwise_affine": False}), ("RMSNorm", (4,), {}),
    ("GroupNorm", (2, 4), {}), ("BatchNorm1d", (4,), {}), ("BatchNorm2d", (4,),
                                                          {"momentum": None}),
    ("InstanceNorm1d", (3,), {}), ("Dropout", (), {}), ("Dropout", (0.1,), {"inplace": True}),
    ("Dropout2d", (0.2,), {}), ("AlphaDropout", (0.1,), {}), ("ReLU", (), {}),
    ("ReLU", (), {"inplace": True}), ("GELU", ("tanh",), {}), ("SiLU", (True,), {}),
    ("Tanh", (), {}), ("Sigmoid", (), {}), ("LeakyReLU", (0.2, True), {}), ("ELU", (), {}),
    ("ELU", (), {"inplace": True}), ("SELU", (True,), {}), ("ReLU6", (), {}),
    ("Hardtanh", (), {"inplace": True}), ("GLU", (), {}), ("PReLU", (), {}),
    ("Softmax", (-1,), {}), ("LogSoftmax", (), {"dim": 1}), ("Softplus", (), {}),
    ("Threshold", (0.1, 20.0, True), {}), ("Flatten", (), {}), ("Unflatten", (1, (2, 3)), {}),
    ("Identity", (), {}), ("MaxPool2d", (2,), {}), ("AvgPool2d", (3, 2), {}),
    ("CrossEntropyLoss", (), {}), ("MSELoss", (), {}), ("BCEWithLogitsLoss", (), {}),
    ("HuberLoss", (), {}), ("CosineSimilarity", (), {}), ("Bilinear", (2, 3, 4), {})]


@pytest.mark.parametrize("name, args, kwargs", _REPR_CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(_REPR_CASES)])
def test_a_layer_s_repr_is_torch_s(name, args, kwargs):
    """print(layer) gave Python's `<graphc.nn.Linear object at 0x...>`. Now a layer's repr
    is torch's: `Linear(in_features=3, out_features=4, bias=True)`, its settings from its
    extra_repr()."""
    assert repr(getattr(gc.nn, name)(*args, **kwargs)) == \
        repr(getattr(torch.nn, name)(*args, **kwargs))


def _net(nn):
    """A model with named children, a ModuleList with a run of equal layers, a ModuleDict,
    a shared layer and its own extra_repr, built from torch.nn or gc.nn."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True),
                                         nn.Linear(4, 4))
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)]
                                        + [nn.LayerNorm(4), nn.Linear(4, 4)])
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Dropout(0.1)})
            self.tied = self.encoder

        def extra_repr(self):
            return "width=4\ndepth=3"

    return Net()


def test_a_model_s_repr_is_torch_s_nested_print():
    """A model's repr named nothing of its layers. Now it is torch's nested print: the
    model's extra_repr lines, then each child `(name): repr`, indented, a shared child under
    each of its names, and a ModuleList's run of equal layers once (`(0-2): 3 x Linear(...)`);
    a user's extra_repr() shows as torch's does."""
    assert repr(_net(gc.nn)) == repr(_net(torch.nn))
    assert repr(gc.nn.ModuleList()) == repr(torch.nn.ModuleList()) == "ModuleList()"
    assert repr(gc.nn.Sequential()) == repr(torch.nn.Sequential()) == "Sequential()"
