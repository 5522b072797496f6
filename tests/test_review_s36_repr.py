"""Session 36's review fixes of Module printing and container edits; each test failed before
its fix."""
import numpy as np
import pytest
import torch

import graphc as gc

HERE = "test_review_s36_repr.py"

_LAYERS = [  # (layer, positional, keyword): the same arguments to gc.nn's and torch.nn's
    ("AdaptiveAvgPool1d", (3,), {}), ("AdaptiveAvgPool2d", ((3, 4),), {}),
    ("AdaptiveLogSoftmaxWithLoss", (8, 10, [3, 6]), {"div_value": 2.0, "head_bias": True}),
    ("AdaptiveMaxPool1d", (3,), {}), ("AdaptiveMaxPool2d", ((3, None),), {}),
    ("AdaptiveMaxPool2d", (2,), {"return_indices": True}), ("AlphaDropout", (0.1,), {}),
    ("AvgPool1d", (3,), {}), ("AvgPool1d", (3, 2, 1), {"ceil_mode": True}),
    ("AvgPool2d", (3,), {}), ("AvgPool2d", (3, 2, 1), {"count_include_pad": False}),
    ("BCELoss", (), {}), ("BCEWithLogitsLoss", (), {}), ("BatchNorm1d", (4,), {}),
    ("BatchNorm2d", (4,), {"affine": False, "track_running_stats": False}),
    ("BatchNorm3d", (4,), {"eps": 1e-3}), ("Bilinear", (2, 3, 4), {"bias": False}),
    ("CELU", (), {}), ("CELU", (0.5, True), {}), ("CTCLoss", (), {}),
    ("CTCLoss", (1, "sum", True), {}), ("ChannelShuffle", (3,), {}), ("CircularPad1d", (2,), {}),
    ("CircularPad2d", ((1, 2, 3, 4),), {}), ("CircularPad3d", (1,), {}),
    ("ConstantPad1d", (2, 3.5), {}), ("ConstantPad2d", ((1, 2, 3, 4), 0.0), {}),
    ("ConstantPad3d", (1, 2), {}), ("Conv1d", (2, 4, 3), {}),
    ("Conv1d", (2, 4, 3), {"padding": "same", "padding_mode": "circular", "bias": False}),
    ("Conv2d", (3, 8, (3, 5)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 1}),
    ("ConvTranspose1d", (2, 4, 3), {}),
    ("ConvTranspose1d", (2, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                    "groups": 2, "bias": False, "dilation": 2}),
    ("ConvTranspose2d", (2, 4, 3), {}),
    ("ConvTranspose2d", (2, 4, (3, 5)), {"stride": (2, 1), "output_padding": (1, 0)}),
    ("Conv3d", (2, 4, (3, 1, 2)), {"stride": (1, 2, 1), "padding": (1, 0, 0), "groups": 2,
                                   "padding_mode": "reflect"}),
    ("ConvTranspose3d", (2, 4, 3), {"stride": 2, "output_padding": 1, "bias": False}),
    ("CosineEmbeddingLoss", (), {}), ("CosineSimilarity", (), {}),
    ("CrossEntropyLoss", (), {}), ("Dropout", (), {}), ("Dropout1d", (), {}),
    ("Dropout2d", (0.3, True), {}), ("Dropout3d", (), {}), ("ELU", (0.5, True), {}),
    ("Embedding", (10, 4), {"padding_idx": -1}), ("EmbeddingBag", (10, 4), {}),
    ("EmbeddingBag", (10, 4), {"mode": "max", "padding_idx": 2}), ("FeatureAlphaDropout", (), {}),
    ("Flatten", (0, 2), {}), ("GELU", (), {}), ("GLU", (1,), {}), ("GRU", (3, 4), {}),
    ("GRU", (3, 4, 2), {"bias": False, "batch_first": True, "dropout": 0.5,
                        "bidirectional": True}),
    ("GRUCell", (3, 4), {}), ("GRUCell", (3, 4), {"bias": False}),
    ("GaussianNLLLoss", (), {}), ("GroupNorm", (2, 4), {"affine": False}),
    ("Hardshrink", (), {}), ("Hardshrink", (0.3,), {}), ("Hardsigmoid", (), {}),
    ("Hardsigmoid", (True,), {}), ("Hardswish", (), {}), ("Hardswish", (True,), {}),
    ("Hardtanh", (-2.0, 2.0, True), {}), ("HingeEmbeddingLoss", (), {}),
    ("HuberLoss", (), {}), ("Identity", (), {}), ("InstanceNorm1d", (3,), {}),
    ("InstanceNorm2d", (3,), {"affine": True}), ("InstanceNorm3d", (3,), {}),
    ("KLDivLoss", (), {}), ("L1Loss", (), {}), ("LSTM", (3, 4), {}),
    ("LSTM", (3, 4, 2), {"batch_first": True}),
    ("LSTM", (3, 4), {"bidirectional": True, "dropout": 0.0}), ("LSTMCell", (3, 4), {}),
    ("LSTMCell", (3, 4, False), {}), ("LayerNorm", ((3, 4),), {"eps": 1e-6, "bias": False}),
    ("LeakyReLU", (), {}), ("Linear", (3, 4), {}), ("LocalResponseNorm", (2,), {}),
    ("LocalResponseNorm", (3, 0.5, 0.6, 2.0), {}), ("LogSigmoid", (), {}),
    ("LogSoftmax", (1,), {}), ("MSELoss", (), {}), ("MarginRankingLoss", (), {}),
    ("MaxPool1d", (3, 2, 1, 2, True, True), {}),
    ("MaxPool2d", ((2, 3), 1), {"padding": 1, "dilation": 2, "ceil_mode": True}),
    ("MaxUnpool1d", (2,), {}), ("MaxUnpool1d", (3, 2, 1), {}), ("MaxUnpool2d", (2,), {}),
    ("MaxUnpool2d", ((2, 3), 1, 1), {}), ("MaxUnpool3d", (2,), {}),
    ("MaxUnpool3d", ((2, 3, 1), 1, (1, 0, 0)), {}), ("Mish", (True,), {}), ("Module", (), {}),
    ("ModuleDict", (), {}), ("ModuleList", (), {}), ("MultiLabelSoftMarginLoss", (), {}),
    ("MultiMarginLoss", (), {}), ("NLLLoss", (), {}), ("PReLU", (3, 0.1), {}),
    ("PairwiseDistance", (), {}), ("PixelShuffle", (2,), {}), ("PixelUnshuffle", (2,), {}),
    ("PoissonNLLLoss", (), {}), ("RMSNorm", ((3, 4),), {"elementwise_affine": False}),
    ("RNN", (3, 4), {}), ("RNN", (3, 4, 2), {"nonlinearity": "relu", "bias": False}),
    ("RNNCell", (3, 4), {}), ("RNNCell", (3, 4), {"nonlinearity": "relu"}), ("RReLU", (), {}),
    ("RReLU", (0.1, 0.3, True), {}),
    ("ReLU", (), {}), ("ReLU6", (True,), {}), ("ReflectionPad1d", (2,), {}),
    ("ReflectionPad2d", ((1, 0, 2, 1),), {}), ("ReflectionPad3d", (1,), {}),
    ("ReplicationPad1d", ((1, 2),), {}), ("ReplicationPad2d", (2,), {}),
    ("ReplicationPad3d", (1,), {}), ("SELU", (), {}), ("Sequential", (), {}),
    ("SiLU", (), {}), ("Sigmoid", (), {}), ("SmoothL1Loss", (), {}),
    ("SoftMarginLoss", (), {}), ("Softmax", (), {"dim": 0}), ("Softmax2d", (), {}),
    ("Softmin", (1,), {}), ("Softplus", (2, 10), {}), ("Softshrink", (), {}),
    ("Softshrink", (0.25,), {}), ("Softsign", (), {}), ("Tanh", (), {}),
    ("Tanhshrink", (), {}), ("Threshold", (0.1, 2.0), {}), ("TripletMarginLoss", (), {}),
    ("TripletMarginWithDistanceLoss", (), {}), ("MultiLabelMarginLoss", (), {}),
    ("Unflatten", (1, (2, 3)), {}), ("Upsample", (), {"scale_factor": 2}),
    ("Upsample", (), {"size": (4, 5), "mode": "bilinear", "align_corners": False}),
    ("Upsample", (), {"scale_factor": (2, 3)}), ("UpsamplingBilinear2d", (), {"size": 4}),
    ("UpsamplingNearest2d", (), {"scale_factor": 2}), ("ZeroPad1d", (2,), {}),
    ("ZeroPad2d", ((1, 1, 1, 1),), {}), ("ZeroPad2d", (2,), {}), ("ZeroPad3d", (1,), {})]
_LAYERS += [  # graphc/pool_layers.py's (session 52)
    ("MaxPool3d", (2,), {}), ("MaxPool3d", ((2, 3, 1), 1, 1), {"return_indices": True}),
    ("AvgPool3d", (2,), {}), ("AvgPool3d", ((3, 2, 2), 2, 1), {"divisor_override": 4}),
    ("AdaptiveAvgPool3d", ((2, None, 3),), {}), ("AdaptiveMaxPool3d", (2,), {}),
    ("LPPool1d", (2, 3), {}), ("LPPool2d", (1.5, (2, 3), 2), {"ceil_mode": True}),
    ("LPPool3d", (2.0, 2), {}), ("Unfold", (2,), {"padding": 1}),
    ("Fold", ((4, 5), 2), {"stride": (1, 2)})]


def _parameters(nn):
    """A ParameterList and a ParameterDict, of torch.nn or gc.nn."""
    def parameter(shape):
        return nn.Parameter(torch.zeros(shape) if nn is torch.nn else np.zeros(shape, "f4"))
    return [nn.ParameterList([parameter((3, 4)), parameter(2)]), nn.ParameterList(),
            nn.ParameterDict({"a": parameter((3, 4)), "b": parameter(())})]


def _transformers(nn):
    """MultiheadAttention and the transformer layers and stacks, of torch.nn or gc.nn."""
    return [nn.MultiheadAttention(8, 2),
            nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
                                  2, norm=nn.LayerNorm(8)),
            nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, norm_first=True), 1),
            nn.Transformer(8, 2, 1, 2, 16, batch_first=True)]


def _layer_classes():
    return {name for name in dir(gc.nn) if not name.startswith("_")
            and isinstance(getattr(gc.nn, name), type)
            and issubclass(getattr(gc.nn, name), gc.nn.Module)}


def test_every_layer_prints_as_torch_s():
    """Many layers printed otherwise than torch's with the same arguments: `LSTM()` (torch's
    `LSTM(3, 4)`, and num_layers, bias, batch_first, dropout, bidirectional where not their
    defaults), the cells, ConvTranspose1d/2d and every padding layer with nothing in the
    parentheses, Upsample every setting (torch's: `Upsample(scale_factor=2.0,
    mode='nearest')`), `Hardshrink(lambd=0.5)` (torch's `Hardshrink(0.5)`), AvgPool1d and
    MaxUnpool1d/2d their settings as given (torch's: tuples, MaxUnpool's stride the kernel's),
    AdaptiveMaxPool a return_indices torch does not show, Hardsigmoid/Hardswish an inplace
    torch does not show, and ParameterList a line of its own (`ParameterList(0 parameters:
    )`). Now every gc.nn layer class prints as torch's, but for two differences README names:
    MultiheadAttention's out_proj is the Linear it is (torch's a
    NonDynamicallyQuantizableLinear) and a ParameterList/Dict names the dtype as graphc
    does."""
    for name, args, kwargs in _LAYERS:
        assert repr(getattr(gc.nn, name)(*args, **kwargs)) == \
            repr(getattr(torch.nn, name)(*args, **kwargs)), (name, args, kwargs)
    for ours, theirs in zip(_parameters(gc.nn), _parameters(torch.nn)):
        assert repr(ours) == repr(theirs).replace("torch.float32", "float32").replace(
            "torch.FloatTensor", "float32")
    for ours, theirs in zip(_transformers(gc.nn), _transformers(torch.nn)):
        assert repr(ours) == repr(theirs).replace("NonDynamicallyQuantizableLinear", "Linear")
    assert repr(gc.nn.LSTM(3, 4, 2, batch_first=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(gc.nn.Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
    shown = {name for name, _, _ in _LAYERS} | {type(m).__name__ for m in _parameters(gc.nn)}
    shown |= {type(m).__name__ for m in _transformers(gc.nn)} | {
        "TransformerEncoderLayer", "TransformerDecoderLayer"}
    assert _layer_classes() <= shown, sorted(_layer_classes() - shown)


def _linears(nn, sizes=(2, 3, 4, 5)):
    """Linear layers of distinct shapes, of torch.nn or gc.nn, chained."""
    return [nn.Linear(n, n + 1) for n in sizes]


def test_appending_to_a_sequential_slice_takes_the_next_free_key():
    """model[1:3].append(layer) was refused ("the new item's key '2' ... is an item's
    already"), where it worked before the session (a slice was numbered from 0), and torch's
    replaces item '2' with it. Now the new item takes the next number free ('3', then '4'),
    so it is added and nothing is replaced; where its position is free (a whole Sequential, a
    named one) it is the key, as torch's."""
    from collections import OrderedDict
    model = gc.nn.Sequential(*_linears(gc.nn))
    part = model[1:3]
    part.append(gc.nn.Linear(5, 6))
    assert [k.split(".")[0] for k in part.state_dict()][::2] == ["1", "2", "3"]
    assert part[0] is model[1] and part[1] is model[2] and len(part) == 3
    part.extend([gc.nn.Tanh(), gc.nn.Linear(6, 2)])
    assert [name for name, _ in part.named_children()] == ["1", "2", "3", "4", "5"]
    assert part(np.ones((1, 3), "f4")).shape == (1, 2)
    assert len(model) == 4
    theirs = torch.nn.Sequential(OrderedDict(fc=torch.nn.Linear(2, 3), act=torch.nn.Tanh()))
    ours = gc.nn.Sequential(OrderedDict(fc=gc.nn.Linear(2, 3), act=gc.nn.Tanh()))
    theirs.append(torch.nn.Linear(3, 1))
    ours.append(gc.nn.Linear(3, 1))
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()] \
        == ["fc", "act", "2"]


def _scopes(graph):
    return sorted({node.scope for node in graph.nodes} - {""})


def test_editing_a_slice_leaves_its_model_s_names():
    """`part = model[1:3]; del part[0]` renamed the layers the slice shares with the model:
    model's Parameters were named '0.weight', '1.weight', '0.weight', '3.weight' and its
    third layer traced under scope '0' (insert, append and setitem on the slice likewise).
    A slice is a view of the model's layers: now its edits leave their names and scopes as
    the model's, and the layers new to the slice are named by the slice's keys."""
    model = gc.nn.Sequential(*_linears(gc.nn))
    names = [q.name for q in model.parameters()]
    assert names == [f"{k}.{w}" for k in "0123" for w in ("weight", "bias")]
    part = model[1:3]
    del part[0]
    part.insert(0, gc.nn.Tanh())
    part.append(gc.nn.Linear(5, 5))
    part[0] = gc.nn.Linear(4, 4)
    assert [q.name for q in model.parameters()] == names
    assert [m._path for m in model] == ["0", "1", "2", "3"]
    assert _scopes(gc.trace(model, gc.spec((1, 2)))) == ["0", "1", "2", "3"]
    assert [n for n, _ in part.named_parameters()] == [
        f"{k}.{w}" for k in "012" for w in ("weight", "bias")]
    assert [q.name for q in part[0].parameters() + part[2].parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]  # (part[1] is model[2])


def test_an_item_put_in_a_model_s_container_is_named_from_the_model():
    """model.body.insert(1, layer) (and append, extend, body[i] = layer, del) named the
    container's items from the container ('1.weight', scope '1') where model's
    named_parameters say 'body.1.weight', so a traced or dumped graph's parameters and
    scopes lost the 'body.' prefix. Now a child added to a module of a built model is named
    from the model's root, as the module is: 'body.1.weight', scope 'body.1'."""
    class Net(gc.nn.Module):
        def __init__(self):
            self.body = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.Tanh())

        def forward(self, x):
            return self.body(x)

    model = Net()
    model.body.insert(1, gc.nn.Linear(3, 3))
    model.body.append(gc.nn.Linear(3, 1))
    names = [n for n, _ in model.named_parameters()]
    assert [q.name for q in model.parameters()] == names == [
        f"body.{k}.{w}" for k in "013" for w in ("weight", "bias")]
    graph = gc.trace(model, gc.spec((1, 2)))
    assert [node.attrs["name"] for node in graph.inputs][1:] == names
    assert _scopes(graph) == ["body.0", "body.1", "body.2", "body.3"]
    del model.body[0]
    model.body[0] = gc.nn.Linear(2, 3)
    assert [q.name for q in model.parameters()] == [n for n, _ in model.named_parameters()] \
        == [f"body.{k}.{w}" for k in "02" for w in ("weight", "bias")]


def test_module_dict_of_a_non_iterable_is_one_line_as_torch_s():
    """ModuleDict().update(5) failed with a raw TypeError ("'int' object is not iterable")
    from inside graphc, and ModuleDict(5) with dict()'s. Now both are one GraphcError line at
    the caller's, in torch's words (torch's TypeError: 'ModuleDict.update should be called
    with an iterable of key/value pairs, but got int'), and the dict is left as it was;
    dicts and iterables of pairs still go in, in their order."""
    from errorcheck import assert_one_line_error
    with pytest.raises(TypeError, match="ModuleDict.update should be called with an "
                                        "iterable of key/value pairs, but got int"):
        torch.nn.ModuleDict().update(5)
    heads = gc.nn.ModuleDict({"a": gc.nn.Tanh()})
    assert_one_line_error(lambda: heads.update(5), "ModuleDict.update should be called with "
                          "an iterable of key/value pairs, but got int", HERE)
    assert_one_line_error(lambda: gc.nn.ModuleDict(5), "ModuleDict should be called with an "
                          "iterable of key/value pairs, but got int", HERE)
    assert_one_line_error(lambda: heads.update([("b", gc.nn.ReLU()), 3]),
                          "ModuleDict.update: item 1 is not a (key, module) pair, got int",
                          HERE)
    assert list(heads) == ["a"]
    heads.update([("b", gc.nn.ReLU())])
    heads.update({"c": gc.nn.SiLU()})
    assert list(heads) == ["a", "b", "c"] and isinstance(heads["b"], gc.nn.ReLU)
    assert list(gc.nn.ModuleDict([("x", gc.nn.Tanh()), ("y", gc.nn.ReLU())])) == ["x", "y"]


def test_graphc_s_own_attribute_names_are_refused_as_names_in_one_line():
    """Sequential(OrderedDict(_compiled_views=layer)) was taken, and the model then failed
    at its first walk with a raw TypeError ("argument of type 'Linear' is not iterable"):
    the key replaced graphc's own bookkeeping on the module; a ModuleDict key, add_module,
    register_parameter or register_buffer of such a name (_non_persistent, _empty_buffers,
    _none_view, _keys, ...) likewise. Now each is refused in one line at the caller's,
    naming the call and the name, and the module is left as it was."""
    from collections import OrderedDict

    from errorcheck import assert_one_line_error
    taken = "is a name graphc keeps on modules for its own bookkeeping; choose another"
    assert_one_line_error(lambda: gc.nn.Sequential(OrderedDict(_compiled_views=gc.nn.Tanh())),
                          f"Sequential: '_compiled_views' {taken}", HERE)
    heads = gc.nn.ModuleDict({"a": gc.nn.Linear(2, 2)})
    assert_one_line_error(lambda: heads.update({"_non_persistent": gc.nn.Linear(2, 2)}),
                          f"ModuleDict: '_non_persistent' {taken}", HERE)
    assert_one_line_error(lambda: gc.nn.ModuleDict({"_compiled_views": gc.nn.Tanh()}),
                          f"ModuleDict: '_compiled_views' {taken}", HERE)
    layer = gc.nn.Linear(2, 2)
    assert_one_line_error(lambda: layer.add_module("_empty_buffers", gc.nn.Tanh()),
                          f"add_module: '_empty_buffers' {taken}", HERE)
    assert_one_line_error(lambda: layer.register_parameter(
        "_none_view", gc.nn.Parameter(np.zeros(2, "f4"))),
        f"register_parameter: '_none_view' {taken}", HERE)
    assert_one_line_error(lambda: layer.register_buffer("_keys", np.zeros(2)),
                          f"register_buffer: '_keys' {taken}", HERE)
    assert list(heads) == ["a"] and list(heads.state_dict()) == ["a.weight", "a.bias"]
    assert list(layer.state_dict()) == ["weight", "bias"] and repr(layer).startswith("Linear(")
    layer.register_buffer("_running", np.zeros(2))  # a private name of the user's own
    assert list(layer.state_dict()) == ["weight", "bias", "_running"]
