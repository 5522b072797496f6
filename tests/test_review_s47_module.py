"""Session 47's review of gc.nn.Module against torch.nn.Module; each test failed before its
change."""
from collections import OrderedDict

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


def test_a_requires_grad_flag_that_is_an_array_is_refused_in_one_line():
    """bool_flag's line showed the value's repr, which for an array spans lines
    ("got array([[ True, False],\n       [False,  True]])"): one line now, as each of
    graphc's errors."""
    flag = np.array([[True, False], [False, True]])
    line = "expected a bool (True or False), got array([[ True, False], [False, True]]) " \
        "of type ndarray"
    assert_one_line_error(lambda: gc.tensor(np.ones(2), requires_grad=flag),
                          f"tensor: requires_grad: {line}", HERE)
    assert_one_line_error(lambda: gc.nn.Linear(2, 2).requires_grad_(np.ones(40, bool)),
                          "requires_grad_: expected a bool (True or False), got array([ True,",
                          HERE)


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


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_a_torch_tensor_that_requires_grad_or_is_bfloat16_makes_a_parameter_or_buffer():
    """gc.nn.Parameter(torch_layer.weight), the usual way to port a weight, failed with
    torch's raw RuntimeError ("Can't call numpy() on Tensor that requires grad"), as did
    gc.nn.Buffer, register_buffer and gc.tensor; a bfloat16 tensor with TypeError ("Got
    unsupported ScalarType BFloat16"). Now each reads it as backward() and
    load_torch_state_dict read one: the values as torch holds them (bfloat16 into ml_dtypes'
    bfloat16, exactly), copied; a dtype numpy has no form of is one line naming it."""
    theirs = torch.nn.Linear(3, 2)
    expected = theirs.weight.detach().numpy().copy()
    model = gc.nn.Linear(3, 2)
    for made in (gc.nn.Parameter(theirs.weight), gc.nn.Buffer(theirs.weight),
                 gc.tensor(theirs.weight)):
        np.testing.assert_array_equal(made.data, expected)
        assert not np.shares_memory(made.data, theirs.weight.detach().numpy())
    model.register_buffer("extra", theirs.weight)
    np.testing.assert_array_equal(model.extra.data, expected)
    halves = torch.tensor([1.5, -2.0, 3.0e-3], dtype=torch.bfloat16)
    param = gc.nn.Parameter(halves)
    assert str(param.data.dtype) == "bfloat16"
    np.testing.assert_array_equal(param.data.astype(np.float32), halves.float().numpy())
    assert_one_line_error(lambda: gc.nn.Parameter(torch.ones(2, dtype=torch.complex32)),
                          "Parameter: the data, a torch.Tensor, has dtype torch.complex32, "
                          "which numpy has no form of", HERE)


def test_parameter_takes_torch_s_requires_grad():
    """gc.nn.Parameter(data, requires_grad=False), torch's way to make a frozen parameter,
    was a TypeError. Now it is frozen from the start: no .grad after backward(), a bound
    optimiser leaves it alone, and a compiled gradient through apply() gives it zeros, as
    torch's; its data is floating-point all the same, and the flag a bool."""
    rng = np.random.default_rng(0)
    x, w0 = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    layer = gc.nn.Linear(3, 2, dtype="float64")
    layer.weight = gc.nn.Parameter(w0, requires_grad=False)
    assert layer.weight.requires_grad is False
    theirs = torch.nn.Linear(3, 2, dtype=torch.float64)
    theirs.weight = torch.nn.Parameter(torch.tensor(w0.T), requires_grad=False)
    theirs.bias = torch.nn.Parameter(torch.tensor(layer.bias.data.copy()))
    ours_opt = gc.optim.SGD(lr=0.1).bind(layer)
    their_opt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    gc.sum(layer(gc.tensor(x)) ** 2).backward()
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    ours_opt.step()
    their_opt.step()
    assert layer.weight.grad is None and theirs.weight.grad is None
    np.testing.assert_array_equal(layer.weight.data, w0)
    np.testing.assert_allclose(layer.bias.data, theirs.bias.detach().numpy(), rtol=1e-12)
    grads = gc.compile(gc.grad(lambda p, x: gc.sum(layer.apply(p, x) ** 2)))(layer.params(), x)
    np.testing.assert_array_equal(grads["weight"], 0.0)
    assert_one_line_error(lambda: gc.nn.Parameter(np.ones(2, np.int64), requires_grad=False),
                          "Parameter: data must be floating-point, a frozen one's too", HERE)


def _shared_tree(nn):
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), nn.Sequential(shared, nn.BatchNorm1d(2)))
    model.first = shared
    return model


def test_named_modules_get_buffer_and_state_dict_keep_vars_take_torch_s_arguments():
    """named_modules(remove_duplicate=False) and state_dict(keep_vars=True) were TypeErrors
    and get_buffer an AttributeError, though torch code calls each (a walk over every place
    of a shared layer, a state_dict of the tensors themselves, a buffer by its dotted name);
    named_modules' first positional argument was the prefix, torch's is `memo`. Now each is
    torch's: the same names in the same order, the Parameters and Buffers themselves, a
    compiled model's too."""
    ours, theirs = _shared_tree(gc.nn), _shared_tree(torch.nn)
    for args in ({}, {"remove_duplicate": False}, {"prefix": "m"},
                 {"prefix": "m", "remove_duplicate": False}):
        assert [n for n, _ in ours.named_modules(**args)] == \
            [n for n, _ in theirs.named_modules(**args)], args
    ours_memo, their_memo = {ours[1]}, {theirs[1]}
    assert [n for n, _ in ours.named_modules(ours_memo, "r")] == \
        [n for n, _ in theirs.named_modules(their_memo, "r")]
    assert len(ours_memo) == len(their_memo) == 5
    kept = ours.state_dict(keep_vars=True)
    assert list(kept) == list(theirs.state_dict(keep_vars=True))
    assert kept["0.weight"] is ours[0].weight and kept["first.weight"] is ours[0].weight
    assert kept["2.1.running_mean"] is ours[2][1].running_mean
    assert all(isinstance(v, np.ndarray) for v in ours.state_dict().values())
    assert gc.compile(ours).state_dict(keep_vars=True)["2.1.bias"] is ours[2][1].bias
    assert ours.get_buffer("2.1.running_var") is ours[2][1].running_var
    assert gc.compile(ours).get_buffer("2.1.num_batches_tracked") is \
        ours[2][1].num_batches_tracked
    with pytest.raises(AttributeError, match="running_mean"):
        theirs.get_buffer("0.running_mean")
    with pytest.raises(AttributeError, match=r"get_buffer\('2.1.weight'\): BatchNorm1d's "
                                             r"'weight' is not a Buffer"):
        ours.get_buffer("2.1.weight")
    with pytest.raises(AttributeError, match=r"get_buffer\('3.x'\): Sequential's '3' does "
                                             "not exist"):
        ours.get_buffer("3.x")


def test_module_to_takes_a_tensor_and_torch_s_positional_non_blocking():
    """model.to(tensor), torch's way to match another tensor's dtype, failed with numpy's raw
    ValueError ("Could not convert tensor(...) to a NumPy dtype"), an array with "unknown
    dtype array(...)", and to("cpu", dtype, True) (torch's positional non_blocking) was
    refused as three arguments. Now each is torch's: the tensor's dtype (and device: a
    CUDA one is refused as a device string is), the flag taken and of no effect."""
    for like in (torch.zeros(1, dtype=torch.float64), np.zeros(1),
                 gc.tensor(np.zeros(1))):
        model = gc.nn.Sequential(gc.nn.Linear(2, 2), gc.nn.BatchNorm1d(2))
        theirs = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        assert model.to(like) is model
        theirs.to(torch.zeros(1, dtype=torch.float64))
        assert [str(t.dtype) for t in model.state_dict().values()] == \
            [str(t.dtype).replace("torch.", "") for t in theirs.state_dict().values()]
    model = gc.nn.Linear(2, 2)
    assert model.to("cpu", torch.float64, True) is model
    assert model.weight.data.dtype == np.float64
    assert model.to(torch.float32, False).weight.data.dtype == np.float32
    assert model.to(np.float16).weight.data.dtype == np.float16
    meta = torch.zeros(1, dtype=torch.float64, device="meta")
    assert_one_line_error(lambda: model.to(meta), "to: graphc runs on the CPU (numpy arrays); "
                          "device device(type='meta') is not available", HERE)
    assert model.weight.data.dtype == np.float16


def test_set_submodule_cpu_and_cuda_are_torch_s():
    """model.set_submodule("1.0", layer) (torch's way to swap a layer by its dotted name),
    model.cpu() and model.cuda() were AttributeErrors. Now set_submodule sets the attribute
    of the path's parent, as torch's (the names, parameters and a compiled plan follow; a
    path that is no module, a parameter in the way, strict=True on a new name refused, as
    torch's), cpu() returns the module, and cuda() is to("cuda")'s one line."""
    def tree(nn):
        return nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 3), nn.ReLU()))

    def shapes(model, transposed):
        return [(n, tuple(p.shape)[::-1] if transposed and n.endswith("weight") else
                 tuple(p.shape)) for n, p in model.named_parameters()]

    ours, theirs = tree(gc.nn), tree(torch.nn)
    x = np.ones((4, 2), np.float32)
    compiled = gc.compile(ours)
    assert compiled(x).shape == (4, 3)
    ours.set_submodule("1.0", gc.nn.Linear(2, 5))
    theirs.set_submodule("1.0", torch.nn.Linear(2, 5))
    compiled.set_submodule("1.extra", gc.nn.Tanh())
    theirs.set_submodule("1.extra", torch.nn.Tanh())
    assert shapes(ours, False) == shapes(theirs, True)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert compiled(x).shape == (4, 5)
    hidden = ours[1][0](ours[0](x)).data
    np.testing.assert_allclose(compiled(x), np.tanh(np.maximum(hidden, 0)), rtol=1e-6)
    for target, strict, match in (("1.new", True, "Sequential's 'new' does not exist"),
                                  ("0.weight", False, "Linear's 'weight' is not a Module"),
                                  ("5.x", False, "Sequential's '5' does not exist")):
        with pytest.raises(AttributeError):
            theirs.set_submodule(target, torch.nn.ReLU(), strict=strict)
        with pytest.raises(AttributeError, match=match):
            ours.set_submodule(target, gc.nn.ReLU(), strict=strict)
    assert_one_line_error(lambda: ours.set_submodule("0", 3),
                          "set_submodule('0'): the value is an int, not a Module", HERE)
    assert shapes(ours, False) == shapes(theirs, True)
    assert ours.cpu() is ours and compiled.cpu() is compiled
    assert_one_line_error(lambda: ours.cuda(), "cuda: graphc runs on the CPU (numpy arrays); "
                          "device 'cuda' is not available", HERE)
    assert_one_line_error(lambda: ours.cuda(1), "device 'cuda:1' is not available", HERE)


def _parameters(nn, dtype):
    return [nn.Parameter(np.full(2, v, dtype) if nn is gc.nn else torch.full((2,), v))
            for v in (1.0, 2.0, 3.0, 4.0)]


def test_parameter_dict_has_torch_s_dict_methods():
    """A ParameterDict had none of torch's get, pop, popitem, setdefault, clear, copy,
    fromkeys, `|`, `|=` (AttributeError, TypeError), and reversed() raised a raw KeyError: 1
    (Python's sequence fallback); a ParameterList had no `+=`. Now each is torch's: the same
    keys in the same order, the same Parameters (a copy shares them), every change seen by
    named_parameters() and state_dict()."""
    def run(nn):
        p1, p2, p3, p4 = _parameters(nn, np.float32)
        d = nn.ParameterDict({"b": p1, "a": p2})
        seen = [d.get("a") is p2, d.get("zz", 5), list(reversed(d))]
        seen.append(d.setdefault("c", p3) is p3 and d.setdefault("c", p4) is p3)
        seen.append(d.pop("a") is p2)
        key, value = d.popitem()
        seen += [key, value is p3, list(d.keys())]
        copied = d.copy()
        seen += [list(copied.keys()), copied["b"] is p1]
        merged = d | nn.ParameterDict({"e": p4})
        seen += [list(merged.keys()), [n for n, _ in merged.named_parameters()]]
        d |= {"f": p2, "e": p4}
        seen += [list(d.keys()), list(d.state_dict()), list(d.fromkeys(["x", "y"], p3).keys())]
        d.clear()
        seen += [len(d), list(d.state_dict())]
        params = nn.ParameterList([p1])
        params += [p2, p3]
        seen += [[n for n, _ in params.named_parameters()], params[2] is p3]
        return seen

    assert run(gc.nn) == run(torch.nn)
    with pytest.raises(KeyError):
        gc.nn.ParameterDict().popitem()


def test_sequential_times_an_int_is_torch_s():
    """`block * 3`, `3 * block` and `block *= 3` (torch's Sequential repeats its modules
    so) were TypeErrors. Now each is torch's: the same modules shared (one layer, its
    parameters once in named_parameters), numbered from 0 in a new Sequential, the same
    names as torch's and the same output; a factor not positive is one line, a float
    Python's TypeError, as torch's."""
    def names(model):
        return ([n for n, _ in model.named_parameters(remove_duplicate=False)],
                [n for n, _ in model.named_modules(remove_duplicate=False)],
                [n for n, _ in model.named_parameters()])

    def block(nn):
        return nn.Sequential(nn.Linear(2, 2), nn.Tanh())

    ours, theirs = block(gc.nn), block(torch.nn)
    theirs.load_state_dict({"0.weight": torch.tensor(ours[0].weight.data.T.copy()),
                            "0.bias": torch.tensor(ours[0].bias.data)})
    assert names(ours * 3) == names(theirs * 3)
    assert names(2 * ours) == names(2 * theirs)
    assert (ours * 2)[2] is ours[0]
    x = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(ours * 3)(x),
                               (theirs * 3)(torch.tensor(x)).detach().numpy(), rtol=1e-5)
    ours *= 2
    theirs *= 2
    assert names(ours) == names(theirs)
    with pytest.raises(ValueError):
        theirs * 0
    assert_one_line_error(lambda: ours * 0, "Sequential * 0: the factor must be positive",
                          HERE)
    with pytest.raises(TypeError):
        ours * 1.5


@pytest.mark.parametrize("name, shape", [("Dropout", (3, 4)), ("Dropout1d", (2, 3, 4)),
                                         ("Dropout2d", (2, 3, 2, 2)),
                                         ("Dropout3d", (2, 3, 2, 2, 1))])
def test_dropout_of_p_one_zeroes_everything_as_torch_s(name, shape):
    """gc.nn.Dropout(1.0) (and Dropout1d/2d/3d's) was refused ("p must be in [0, 1)"), and
    a layer's p set to 1.0 later failed inside its mask op ("dropout_mask(i64[]): rate must
    be in [0, 1)"), where torch zeroes every value in training, as graphc's own
    AlphaDropout and functional dropout2d did. Now each layer is torch's: zeros (and zero
    gradients) while training, eager and compiled, the identity in eval(); above 1 is
    refused as before."""
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    theirs = getattr(torch.nn, name)(1.0)
    expected = theirs(torch.tensor(x)).numpy()
    assert not expected.any()
    layer = getattr(gc.nn, name)(1.0)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(gc.compile(layer)(x), expected)
    grads = gc.grad(lambda a: gc.sum(layer(a) * 3.0))(x)
    np.testing.assert_array_equal(grads, np.zeros_like(x))
    later = getattr(gc.nn, name)(0.5)
    compiled = gc.compile(later)
    compiled(x)
    later.p = 1.0
    np.testing.assert_array_equal(compiled(x), expected)
    layer.eval()
    np.testing.assert_array_equal(gc.compile(layer)(x), x)
    assert_one_line_error(lambda: getattr(gc.nn, name)(1.5), f"{name}: p must be in [0, 1]",
                          HERE)


def test_a_parameter_s_data_takes_an_array_or_a_tensor_s_as_torch_s():
    """`layer.weight.data = other.weight` (torch's way to copy weights over: the other
    tensor's storage) stored the Parameter itself as the array, and the next forward failed
    far from the assignment ("operand 'Tensor' does not support ufuncs"); a torch tensor
    or a list, stored as they were, failed alike ("'list' object has no attribute
    'shape'"). Now a Parameter's or Buffer's data takes an array, or a tensor's array
    (graphc's, a torch tensor's as load_torch_state_dict reads it), as torch's `p.data = q`,
    eager and compiled; anything else is one line where it is set, the old array kept."""
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    layer, other = gc.nn.Linear(3, 2), gc.nn.Linear(3, 2)
    compiled = gc.compile(layer)
    compiled(x)
    layer.weight.data = other.weight
    assert layer.weight.data is other.weight.data  # (torch's shares the storage too)
    expected = x @ other.weight.data + layer.bias.data
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
    np.testing.assert_allclose(compiled(x), expected, rtol=1e-6)
    theirs = torch.nn.Linear(3, 2)
    layer.bias.data = theirs.bias  # (requires grad: numpy refuses to read it)
    np.testing.assert_array_equal(layer.bias.data, theirs.bias.detach().numpy())
    np.testing.assert_allclose(compiled(x), x @ other.weight.data + layer.bias.data,
                               rtol=1e-6)
    kept = layer.weight.data
    for bad in ([[1.0, 2.0]] * 3, 2.0, None):
        assert_one_line_error(lambda: setattr(layer.weight, "data", bad),
                              f"Parameter.data = ...: expected an array (or a tensor), got "
                              f"a {type(bad).__name__}", HERE)
    assert layer.weight.data is kept
    norm = gc.nn.BatchNorm1d(3)
    assert_one_line_error(lambda: setattr(norm.running_mean, "data", [0.0] * 3),
                          "Buffer.data = ...: expected an array (or a tensor), got a list",
                          HERE)
    norm.running_mean.data = np.float32(2.0) + np.zeros(3, np.float32)
    np.testing.assert_array_equal(norm.running_mean.data, 2.0)


# ---- session 47 review (r6) of the changes above -----------------------------------------------
def test_multihead_attention_of_dropout_one_is_torch_s():
    """Dropout(1.0) was made torch's, but MultiheadAttention(dropout=1.0) (so
    TransformerEncoderLayer(dropout=1.0) too) was still refused ("must be in [0, 1)") where
    torch's takes it and zeroes every attention weight; the same layer's dropout set to 1.0
    after it was built already ran so. Now it is taken: zero weights while training, the
    output out_proj's bias, as torch's."""
    x = np.random.default_rng(0).normal(size=(3, 2, 4)).astype(np.float32)
    theirs = torch.nn.MultiheadAttention(4, 2, dropout=1.0)
    torch.nn.init.normal_(theirs.out_proj.bias)
    t_out, t_weights = theirs(*[torch.tensor(x)] * 3)
    ours = gc.nn.MultiheadAttention(4, 2, dropout=1.0)
    ours.out_proj.bias.data = theirs.out_proj.bias
    out, weights = ours(x, x, x)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(weights, t_weights.detach().numpy())
    assert not np.asarray(weights).any()
    torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=1.0)
    gc.nn.TransformerEncoderLayer(4, 2, 8, dropout=1.0)
    assert_one_line_error(lambda: gc.nn.MultiheadAttention(4, 2, dropout=1.5),
                          "MultiheadAttention: dropout must be in [0, 1], got 1.5", HERE)


def test_cuda_of_the_cpu_is_refused_not_none():
    """cuda("cpu") (or cuda(torch.device("cpu"))) returned None, so `model =
    model.cuda("cpu")` lost the model, compiled too; torch's refuses a device that is not
    CUDA. Now it is one line, as cuda() and cuda(0) are."""
    with pytest.raises(RuntimeError, match="must be cuda device"):
        torch.nn.Linear(2, 2).cuda("cpu")
    model = gc.nn.Linear(2, 2)
    for device in ("cpu", torch.device("cpu"), "cpu:0"):
        assert_one_line_error(lambda: model.cuda(device), "cuda: device ", HERE)
        assert_one_line_error(lambda: gc.compile(model).cuda(device), "is not a CUDA device",
                              HERE)
    assert_one_line_error(lambda: model.cuda(0), "cuda: graphc runs on the CPU", HERE)


def test_a_dict_or_a_parameter_dict_is_torch_s():
    """`{...} | params` gave a ParameterDict whose keys were the dict's sorted, then the
    ParameterDict's; torch's gives the dict's own type, its keys in their order, updated by
    the ParameterDict's items."""
    def run(nn):
        p1, p2, p3, _ = _parameters(nn, np.float32)
        params = nn.ParameterDict(OrderedDict([("b", p1), ("a", p2)]))
        merged = {"z": p3, "c": p3, "a": p3} | params
        ordered = OrderedDict(z=p3) | params
        return [type(merged).__name__, list(merged), merged["a"] is p2,
                type(ordered).__name__, list(ordered)]

    assert run(gc.nn) == run(torch.nn)


def test_named_modules_given_a_prefix_first_is_one_line():
    """named_modules' first argument became torch's memo; graphc's callers of the old order
    (named_modules("enc"), the prefix) met a raw "'str' object has no attribute 'add'"
    from inside the walk. Now that is one line saying the prefix is a keyword."""
    model = gc.nn.Sequential(gc.nn.Linear(2, 2))
    assert_one_line_error(lambda: list(model.named_modules("enc")),
                          "named_modules: memo, the first argument (torch's order), is a set "
                          "of modules, got a str; the prefix is a keyword: "
                          "named_modules(prefix='enc')", HERE)
    assert [n for n, _ in model.named_modules(prefix="enc")] == ["enc", "enc.0"]
    assert [n for n, _ in model.named_modules(set(), "enc")] == ["enc", "enc.0"]


def test_tensor_of_complex_data_given_a_dtype_names_its_type_in_one_line():
    """gc.tensor reads a torch tensor into an array first (6733bd2), after which a complex
    one given a dtype was named by that array's repr ("got array([1.+2.j],
    dtype=complex64)": test_weak_arguments' test of "a torch.Tensor of complex64" failed),
    and a complex numpy array's repr took several lines. Now each is its type and dtype."""
    for data, got in ((torch.tensor([1 + 2j]), "a torch.Tensor of complex64"),
                      (np.ones((5, 5), np.complex128), "a numpy.ndarray of complex128")):
        assert_one_line_error(lambda: gc.tensor(data, dtype="float32"),
                              f"tensor: data must be real numbers, got {got}", HERE)


def test_a_frozen_integer_parameter_and_a_parameter_list_plus_a_number_say_so():
    """gc.nn.Parameter(ints, requires_grad=False) answered "only floating-point tensors can
    require gradients", which the caller had not asked for (a Parameter's data is
    floating-point, frozen too); `params += 3` (ParameterList's new +=) was Python's
    "'int' object is not iterable", naming no list, where torch's names extend."""
    assert_one_line_error(lambda: gc.nn.Parameter(np.arange(3), requires_grad=False),
                          "Parameter: data must be floating-point, a frozen one's too "
                          "(requires_grad=False), got int64", HERE)
    assert_one_line_error(lambda: gc.nn.Parameter(np.arange(3)),
                          "Parameter: only floating-point tensors can require gradients", HERE)
    params = gc.nn.ParameterList()

    def add():
        nonlocal params
        params += 3

    with pytest.raises(TypeError, match=r"ParameterList.extend \(or \+=\) takes an iterable"):
        add()


def test_a_parameter_list_plus_a_tensor_is_refused_as_torch_s():
    """Review r9 of b7f7173: `params += p` (a Parameter meant for append) iterated p and
    appended its rows as new Parameters, silently, as extend(a tensor) and ParameterList(p)
    did (that one asked the array for its truth: numpy's raw ValueError), where torch's
    refuses a tensor there with its TypeError; a 0-d one met "len() of a 0-d tensor"."""
    w = np.ones((3, 2), np.float32)
    for value in (gc.nn.Parameter(w), gc.tensor(w), gc.nn.Parameter(np.float32(1)),
                  torch.nn.Parameter(torch.ones(3, 2)), torch.ones(3, 2)):
        params = gc.nn.ParameterList([gc.nn.Parameter(np.zeros(2, np.float32))])

        def add():
            nonlocal params
            params += value

        for refused in (add, lambda: params.extend(value),
                        lambda: gc.nn.ParameterList(value)):
            with pytest.raises(TypeError, match=r"ParameterList.extend \(or \+=\) takes an "
                                                f"iterable of Parameters, got "
                                                f"{type(value).__name__}$"):
                refused()
        assert len(params) == 1 and [n for n, _ in params.named_parameters()] == ["0"]
    with pytest.raises(TypeError, match="should be called with an iterable"):
        torch.nn.ParameterList([]).extend(torch.ones(3, 2))  # (torch's, for the record)
    # an array's rows, a list or a generator of Parameters are still taken, as torch's
    params = gc.nn.ParameterList(w)
    params += (gc.nn.Parameter(np.zeros(2, np.float32)) for _ in range(2))
    assert [p.shape for p in params] == [(2,)] * 5
    assert len(gc.nn.ParameterList()) == len(gc.nn.ParameterList([])) == 0


def test_parameter_list_and_dict_take_torch_tensors_as_torch_s():
    """ParameterList([torch.nn.Parameter(...)]) said "item 0 is a Parameter, not a
    Parameter, a tensor or an array" (and a torch tensor likewise), where gc.nn.Parameter
    takes one. Now each is read as gc.nn.Parameter reads it: a plain tensor made a Parameter
    that requires grad, a torch Parameter keeping its requires_grad, as torch's containers."""
    values = [torch.nn.Parameter(torch.arange(2.0)), torch.ones(3, dtype=torch.float64),
              torch.nn.Parameter(torch.ones(1), requires_grad=False)]
    ours, theirs = gc.nn.ParameterList(values), torch.nn.ParameterList(values)
    assert [p.requires_grad for p in ours] == [p.requires_grad for p in theirs] == \
        [True, True, False]
    for p, q in zip(ours, theirs):
        assert isinstance(p, gc.nn.Parameter)
        np.testing.assert_array_equal(p.data, q.detach().numpy())
        assert p.data.dtype == q.detach().numpy().dtype
    named = gc.nn.ParameterDict({"a": values[2], "b": torch.ones(2, dtype=torch.bfloat16)})
    assert not named["a"].requires_grad and named["b"].requires_grad
    assert str(named["b"].data.dtype) == "bfloat16"
    assert list(named.state_dict()) == list(torch.nn.ParameterDict(
        {"a": values[2], "b": torch.ones(2)}).state_dict()) == ["a", "b"]
