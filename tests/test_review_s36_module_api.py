"""Session 36's additions of torch.nn's Module and container API that torch code uses; each
test failed before its change."""
import re

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


_FUNCTIONS_WITH_INPLACE = [  # torch.nn.functional's that take inplace, with their settings
    ("relu", ()), ("relu6", ()), ("elu", (0.7,)), ("selu", ()), ("celu", (0.8,)),
    ("leaky_relu", (0.2,)), ("hardtanh", (-0.5, 0.75)), ("hardswish", ()),
    ("hardsigmoid", ()), ("silu", ()), ("mish", ()), ("threshold", (0.1, -2.0)),
    ("rrelu", (0.1, 0.3, False))]


@pytest.mark.parametrize("name, settings", _FUNCTIONS_WITH_INPLACE)
def test_activation_functions_take_torch_s_inplace_as_their_layers(name, settings):
    """F.relu(x, inplace=True) (torch code's other common spelling) raised Python's TypeError
    'unexpected keyword argument', where the layers took it. Now each function torch gives an
    `inplace` takes it (ir.ops.api.takes_inplace), by keyword or in torch's position after the
    settings, with the layers' semantics: torch's values (eager and compiled), a new value,
    the input unchanged. Anything but True or False is refused in one line, as the layers'."""
    x = np.linspace(-3.0, 3.0, 13)
    function = getattr(gc, name)
    for inplace in (True, False):
        expected = getattr(torch.nn.functional, name)(torch.tensor(x), *settings,
                                                      inplace=inplace).numpy()
        given = x.copy()
        for value in (function(given, *settings, inplace=inplace),
                      function(given, *settings, inplace),
                      gc.compile(lambda v: function(v, *settings, inplace=inplace))(given)):
            np.testing.assert_allclose(np.asarray(value), expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(given, x)
    assert_one_line_error(lambda: function(x, *settings, inplace="yes"),
                          f"{name}: inplace must be True or False, got 'yes'", HERE)


@pytest.mark.parametrize("name", ["dropout", "dropout1d", "dropout2d", "dropout3d",
                                  "alpha_dropout", "feature_alpha_dropout"])
def test_dropout_functions_take_torch_s_inplace(name):
    """F.dropout(x, 0.25, inplace=True) and the other dropouts' raised TypeError. Now each
    takes it (gc.dropout's by keyword only: its positional arguments are rate, seed), with no
    effect: the same masks for a key as without it, the input unchanged, the identity when
    not training; a non-bool is refused in one line."""
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5, 6))
    x = x[:, :, 0, 0] if name == "dropout1d" else x[:, :, 0] if name == "dropout2d" else x
    function = getattr(gc, name)
    args = (0.25, 11) if name == "dropout" else (0.25,)
    given = x.copy()
    if name != "dropout":  # (torch's fourth positional: p, training, inplace)
        with gc.nn.rng_key(7):
            dropped = function(given, 0.25, True, True)
        with gc.nn.rng_key(7):
            np.testing.assert_array_equal(dropped, function(x, 0.25, True))
    else:  # (an eager call without salt= is a site of its own, with its own mask)
        dropped = function(given, *args, training=True, salt=5, inplace=True)
        np.testing.assert_array_equal(dropped, function(x, *args, training=True, salt=5))
    assert not np.array_equal(dropped, x)
    np.testing.assert_array_equal(function(given, *args, training=False, inplace=True), x)
    np.testing.assert_array_equal(given, x)
    assert_one_line_error(lambda: function(x, *args, inplace=1),
                          f"{name}: inplace must be True or False, got 1", HERE)


def test_review_r10_too_many_arguments_to_a_function_taking_inplace_name_it():
    """Review r10 of 1ba8fb9: takes_inplace bound a call with more positional arguments
    than the function's through inspect's Signature.bind, whose TypeError named no function
    ('too many positional arguments', 'multiple values for argument 'inplace''), where
    Python's said 'relu() takes 1 positional argument but 3 were given'."""
    x = np.linspace(-1.0, 1.0, 5)
    for call, words in [(lambda: gc.relu(x, True, 3), "relu(): too many positional"),
                        (lambda: gc.elu(x, 1.0, True, 3), "elu(): too many positional"),
                        (lambda: gc.hardtanh(x, -1.0, 1.0, True, inplace=False),
                         "hardtanh(): multiple values for argument 'inplace'")]:
        with pytest.raises(TypeError, match=re.escape(words)):
            call()


def test_a_layer_s_inplace_is_true_or_false_as_the_functions():
    """nn.ReLU(inplace='no') was kept as it was (truthy: its repr said inplace=True); the
    layers check it as the functions do."""
    assert_one_line_error(lambda: gc.nn.ReLU(inplace="no"),
                          "ReLU: inplace must be True or False, got 'no'", HERE)
    assert_one_line_error(lambda: gc.nn.Dropout(0.1, 1),
                          "Dropout: inplace must be True or False, got 1", HERE)
    assert gc.nn.ELU(inplace=np.bool_(True)).inplace


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
                          "register_parameter('bias'): an ndarray is not a Parameter", HERE)
    assert_one_line_error(lambda: ours.add_module("extra", 3), "add_module('extra'): the value "
                          "is an int, not a Module", HERE)


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


def _layers(nn, sizes=(2, 3, 4, 5, 6)):
    """Linear layers of distinct shapes (so a state_dict's shapes say which is where)."""
    return [nn.Linear(n, n + 1) for n in sizes]


def _names_and_shapes(model):
    """(name, shape) of the state_dict, in torch's layout (graphc's Linear weights are the
    transposes)."""
    ours = isinstance(model, gc.nn.Module)
    return [(name, tuple(value.shape)[::-1] if ours and name.endswith("weight") else
             tuple(value.shape)) for name, value in model.state_dict().items()]


def test_sequential_of_an_ordered_dict_names_its_children_by_the_keys():
    """gc.nn.Sequential(OrderedDict(...)) refused the dict ("item 0 is a OrderedDict, not a
    Module"). Now, as torch's, the children are named by the dict's keys (state_dict
    "fc.weight", ..., repr `(fc): Linear(...)`), applied in its order, and a key that is
    not an attribute name or is the container's own attribute is refused in one line."""
    from collections import OrderedDict
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(3, 4)),
                                              ("act", torch.nn.Tanh()),
                                              ("out", torch.nn.Linear(4, 2))])).double()
    ours = gc.nn.Sequential(OrderedDict([("fc", gc.nn.Linear(3, 4, dtype="float64")),
                                         ("act", gc.nn.Tanh()),
                                         ("out", gc.nn.Linear(4, 2, dtype="float64"))]))
    ours.load_torch_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs) and ours[2] is ours.out and len(ours) == 3
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(ours(gc.tensor(x)).numpy(), theirs(torch.tensor(x)).detach(),
                               rtol=1e-12)
    assert_one_line_error(lambda: gc.nn.Sequential(OrderedDict([("forward", gc.nn.Tanh())])),
                          "Sequential('forward'): Sequential has an attribute 'forward' "
                          "already", HERE)
    assert_one_line_error(lambda: gc.nn.Sequential({"a.b": gc.nn.Tanh()}),
                          "the name must be a non-empty string without '.'", HERE)


def test_slices_keep_their_keys_in_sequential_and_are_renumbered_in_modulelist():
    """A Sequential slice numbered its items from 0 (model[2:].state_dict() said
    "0.weight"), where torch's keeps their keys ("2.weight", or the OrderedDict's names),
    so a torch state_dict of the slice did not load. Now Sequential's slice keeps them and
    ModuleList's numbers from 0, both as torch's; the items are the same modules."""
    from collections import OrderedDict
    for nn in (torch.nn, gc.nn):
        sequential, modules = nn.Sequential(*_layers(nn)), nn.ModuleList(_layers(nn))
        named = nn.Sequential(OrderedDict(zip("abcde", _layers(nn))))
        got = [_names_and_shapes(part) for part in (sequential[2:], sequential[::2],
                                                    modules[1:4], named[1::2])]
        if nn is torch.nn:
            expected = got
        assert sequential[-2:][0] is sequential[3] and modules[1:][0] is modules[1]
    assert got == expected
    assert expected[0][0] == ("2.weight", (5, 4)) and expected[2][0] == ("0.weight", (4, 3))
    assert expected[3][0] == ("b.weight", (4, 3))


def test_a_string_index_is_torch_s_type_error_in_one_line():
    """model["0"] failed with "'<=' not supported between instances of 'int' and 'str'";
    torch's is a TypeError too. Now it is a TypeError that names the container and says
    how to get a child by its name."""
    with pytest.raises(TypeError):
        torch.nn.Sequential(torch.nn.Tanh())["0"]
    for container in (gc.nn.Sequential(gc.nn.Tanh()), gc.nn.ModuleList([gc.nn.Tanh()])):
        with pytest.raises(TypeError) as info:
            container["0"]
        assert str(info.value) == (f"{type(container).__name__} indices must be integers or "
                                   "slices, not str; a child by its name: getattr(model, '0')")


def _mutate(container, nn):
    """The same edits of a container of _layers(nn), each followed by its names and shapes."""
    seen = []
    container[1] = nn.Linear(7, 8)
    seen.append(_names_and_shapes(container))
    del container[0]
    seen.append(_names_and_shapes(container))
    del container[1:3]
    seen.append(_names_and_shapes(container))
    container.insert(0, nn.Linear(9, 10))
    container.insert(1, nn.Linear(11, 12))
    container.insert(len(container), nn.Linear(13, 14))
    seen.append(_names_and_shapes(container))
    seen.append(container.pop(1).bias.shape[0])
    seen.append(_names_and_shapes(container))
    container.extend([nn.Linear(15, 16), nn.Linear(17, 18)])
    container.append(nn.Linear(19, 20))
    seen.append(_names_and_shapes(container))
    return seen


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
def test_containers_are_edited_as_torch_s(kind):
    """Sequential and ModuleList had no __setitem__, __delitem__, insert, extend nor pop
    (ModuleList had append only). Now each edit is torch's, numbering too: after a deletion
    or an insertion the items are numbered again from 0, as torch's Sequential and
    ModuleList do; pop returns the item."""
    def build(nn):
        layers = _layers(nn)
        return nn.Sequential(*layers) if kind == "Sequential" else nn.ModuleList(layers)
    ours, theirs = build(gc.nn), build(torch.nn)
    assert _mutate(ours, gc.nn) == _mutate(theirs, torch.nn)
    assert repr(ours) == repr(theirs)
    # a negative index counts from the end, as torch's Sequential.insert (its ModuleList's
    # fails with a KeyError)
    last = ours[-1]
    ours.insert(-1, gc.nn.Sigmoid())
    assert isinstance(ours[-2], gc.nn.Sigmoid) and ours[-1] is last and len(ours) == 8
    with pytest.raises(IndexError):
        ours[len(ours)] = gc.nn.Tanh()
    with pytest.raises(IndexError):
        ours.insert(len(ours) + 1, gc.nn.Tanh())
    assert_one_line_error(lambda: ours.insert(0, 3), f"{kind}: item 0 is an int, not a Module",
                          HERE)


@pytest.mark.parametrize("edit", ["setitem", "delitem", "insert", "extend", "pop",
                                  "setitem_compiled", "insert_compiled"])
def test_a_compiled_container_sees_each_edit(edit):
    """A function compiled through a Sequential kept its first plan after the Sequential was
    edited in place, computing with the old layers. Each edit now counts as a replaced
    module attribute, so the plan is traced again and gives the edited model's values; a
    gc.compile'd layer may be the item put in, as in the constructor."""
    def linear(n, m, seed):
        return gc.nn.Linear(n, m, rng=np.random.default_rng(seed), dtype="float64")
    model = gc.nn.Sequential(linear(3, 3, 0), gc.nn.Tanh(), linear(3, 3, 1))
    f = gc.compile(lambda x: model(x))
    x = np.random.default_rng(2).normal(size=(4, 3))
    before = f(x)
    {"setitem": lambda: model.__setitem__(0, linear(3, 3, 5)),
     "delitem": lambda: model.__delitem__(1),
     "insert": lambda: model.insert(1, gc.nn.Sigmoid()),
     "extend": lambda: model.extend([gc.nn.Tanh(), linear(3, 3, 6)]),
     "pop": lambda: model.pop(),
     "setitem_compiled": lambda: model.__setitem__(2, gc.compile(linear(3, 3, 7))),
     "insert_compiled": lambda: model.insert(0, gc.compile(linear(3, 3, 8)))}[edit]()
    expected = model(gc.tensor(x)).numpy()
    assert not np.allclose(expected, before)
    np.testing.assert_allclose(f(x), expected, rtol=1e-12)


def test_module_dict_pops_updates_deletes_and_clears_as_torch_s():
    """ModuleDict had no pop, update, `del d[key]` nor clear. Now they are torch's: the
    same keys in the same order as torch's after each, pop returns the module, and a
    function compiled through the dict is traced again after each edit."""
    def edits(nn):
        d = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.Linear(2, 4)})
        seen = [list(d.keys())]
        d.update({"c": nn.Linear(2, 5), "a": nn.Linear(2, 6)})
        d.update([("d", nn.Linear(2, 7))])
        seen.append(_names_and_shapes(d))
        seen.append((d.pop("b").bias.shape[0], list(d.keys())))
        del d["c"]
        seen.append(list(d.keys()))
        with pytest.raises(KeyError):
            del d["zz"]
        d.clear()
        seen.append((list(d.keys()), len(d)))
        return seen
    assert edits(gc.nn) == edits(torch.nn)

    heads = gc.nn.ModuleDict({"a": gc.nn.Linear(2, 1, dtype="float64")})
    f = gc.compile(lambda x: sum(head(x) for head in heads.values()))
    x = np.ones((1, 2))
    f(x)
    heads.update({"b": gc.nn.Linear(2, 1, dtype="float64")})
    np.testing.assert_allclose(f(x), (heads["a"](gc.tensor(x)) + heads["b"](gc.tensor(x)))
                               .numpy(), rtol=1e-12)
    del heads["a"]
    np.testing.assert_allclose(f(x), heads["b"](gc.tensor(x)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name, weights", [
    ("BCELoss", ("weight",)), ("BCEWithLogitsLoss", ("weight",)),
    ("BCEWithLogitsLoss", ("pos_weight",)), ("BCEWithLogitsLoss", ("weight", "pos_weight"))])
def test_binary_cross_entropy_casts_a_float64_weight_as_cross_entropy_does(name, weights):
    """nn.BCELoss(weight=np.array([1., 2., 3.])) (numpy's float64) with float32 input
    failed with "mul(f32[4,3], f64[3]): operands must have one dtype", where
    CrossEntropyLoss casts its weight, and torch's BCE losses cast theirs too. Now
    binary_cross_entropy(_with_logits) cast weight and pos_weight to a float input's dtype
    (api._weight_like, as cross_entropy's): torch's float32 loss and input gradient, eager
    and compiled."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    t = (rng.uniform(size=(4, 3)) > 0.5).astype(np.float32)
    given = {w: np.array([0.5, 2.0, 3.0]) for w in weights}
    xt = torch.tensor(x, requires_grad=True)
    expected = getattr(torch.nn, name)(**{w: torch.tensor(v) for w, v in given.items()})(
        xt, torch.tensor(t))
    expected.backward()
    loss = getattr(gc.nn, name)(**given)
    xg = gc.tensor(x, requires_grad=True)
    got = loss(xg, t)
    got.backward()
    assert got.dtype == np.float32 and expected.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xg.grad, xt.grad.numpy(), rtol=1e-5)
    compiled = gc.compile(gc.value_and_grad(lambda x: loss(x, t)))(x)
    np.testing.assert_allclose(compiled[0], expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(compiled[1], xt.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_compiled_embedding_of_bool_indices_says_what_eager_says(padding_idx):
    """A compiled Embedding given bool indices failed with "lt(bool[2], i64[]): operands
    must have one dtype" (its check for negative indices), where eagerly take says
    "indices must be integers, got bool" (torch refuses them too). Now the compiled call
    gives the eager line; integer indices still give torch's rows."""
    layer = gc.nn.Embedding(5, 3, padding_idx=padding_idx)
    flags = np.array([True, False])
    with pytest.raises(RuntimeError):
        torch.nn.Embedding(5, 3)(torch.tensor(flags))
    for call in (lambda: layer(gc.tensor(flags)), lambda: gc.compile(layer)(flags)):
        assert_one_line_error(call, "take(f32[5,3], bool[2]): indices must be integers, got "
                              "bool", HERE)
    np.testing.assert_array_equal(gc.compile(layer)(np.array([4, 1])),
                                  layer.weight.data[[4, 1]])
