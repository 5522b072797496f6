"""Session 37's fixes of graphc's torch.nn-like layers (graphc/nn.py and the layers it
exposes); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from test_recurrent import gradients_match, pair

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s37_nn.py"


# ---- 1. torch keywords: divisor_override, proj_size, and unknown ones -------------------------
@pytest.mark.parametrize("settings", [
    dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False,
         divisor_override=-2),
    dict(kernel_size=2, divisor_override=3),
])
def test_avg_pool2d_divisor_override_as_torch(settings):
    """gc.nn.AvgPool2d(2, divisor_override=3) raised Python's TypeError (and
    gc.avg_pool2d had no divisor_override): now each window's sum is divided by it, whatever
    the padding and count_include_pad, values and gradients as torch's, batched or not."""
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer, reference = gc.nn.AvgPool2d(**settings), torch.nn.AvgPool2d(**settings)
    tx = torch.tensor(x, requires_grad=True)
    ty = reference(tx)
    (ty * ty).sum().backward()
    np.testing.assert_allclose(np.asarray(layer(x)), ty.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    grad = gc.grad(lambda v: (layer(v) * layer(v)).sum())(x)
    np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(x[0])), ty.detach().numpy()[0], rtol=1e-6,
                               atol=1e-6)
    compiled = gc.compile(lambda v: layer(v))
    np.testing.assert_allclose(np.asarray(compiled(x)), ty.detach().numpy(), rtol=1e-6,
                               atol=1e-6)


def test_avg_pool2d_refuses_a_zero_divisor_override():
    """torch refuses divisor_override=0 ("divisor must be not zero"); graphc's now too, in one
    line, where before it did not take the keyword at all."""
    x = np.ones((1, 1, 4, 4), np.float32)
    assert_one_line_error(lambda: gc.avg_pool2d(x, 2, divisor_override=0),
                          "divisor_override must be a nonzero int", HERE)


@pytest.mark.parametrize("make, layer, keyword", [
    (lambda: gc.nn.AvgPool1d(2, divisor_override=3), "AvgPool1d", "divisor_override"),
    (lambda: gc.nn.Linear(2, 3, device="cpu"), "Linear", "device"),
    (lambda: gc.nn.ReLU(inplce=True), "ReLU", "inplce"),
    (lambda: gc.nn.Sequential(foo=1), "Sequential", "foo"),
    (lambda: gc.nn.GRU(4, 8, proj_size=2), "GRU", "proj_size"),
])
def test_an_unknown_keyword_of_a_layer_is_one_line_naming_layer_and_keyword(make, layer,
                                                                           keyword):
    """A keyword a class-based layer does not take raised Python's TypeError naming an
    internal __init__ (`_AvgPool.__init__() got an unexpected keyword argument`); now one
    GraphcError line naming the layer the user built, the keyword and the layer's keywords."""
    assert_one_line_error(make, f"gc.nn.{layer}: unknown keyword argument {keyword!r}", HERE)


def test_rnns_proj_size_is_refused_in_one_line_and_a_users_module_keeps_type_error():
    """gc.nn.RNN(4, 8, proj_size=2) (torch's is LSTM's only) raised Python's TypeError; now
    one line. That refusal is graphc's layers' own: a user's Module subclass's __init__ is
    left as Python (and torch) have it, and the layers' signatures stay inspectable."""
    assert_one_line_error(lambda: gc.nn.RNN(4, 8, proj_size=2),
                          "gc.nn.RNN: unknown keyword argument 'proj_size'", HERE)

    class Mine(gc.nn.Module):
        def __init__(self, width):
            self.width = width

    with pytest.raises(TypeError):
        Mine(width=2, depth=3)
    import inspect
    assert list(inspect.signature(gc.nn.Linear).parameters)[:2] == ["in_features",
                                                                      "out_features"]


@pytest.mark.parametrize("settings", [{"proj_size": 3},
                                      {"proj_size": 2, "num_layers": 2, "bidirectional": True,
                                       "batch_first": True}])
def test_lstm_proj_size_outputs_states_and_gradients_as_torch(settings):
    """gc.nn.LSTM(5, 7, proj_size=3) raised Python's TypeError: now torch's projection
    h_t = W_hr (o_t * tanh(c_t)), with torch's weight_hr_l{k} parameters (their names,
    order and shapes), h_n and the output proj_size wide, c_n hidden_size wide; a torch
    layer's state_dict loads, and outputs, states and every gradient agree, eagerly and
    compiled, with initial states given too, batched or not."""
    ours, theirs = pair("LSTM", **settings)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    t_out, (t_h, t_c) = theirs(tx)
    w, u, v = (rng.normal(size=t.shape) for t in (t_out, t_h, t_c))
    (torch.sum(t_out * torch.tensor(w)) + torch.sum(t_h * torch.tensor(u))
     + torch.sum(t_c * torch.tensor(v))).backward()

    def loss(params, x):
        out, (h, c) = ours.apply(params, x)
        return gc.sum(out * w) + gc.sum(h * u) + gc.sum(c * v)

    out, (h, c) = ours(x)
    for mine, torchs in ((out, t_out), (h, t_h), (c, t_c)):
        np.testing.assert_allclose(mine, torchs.detach().numpy(), rtol=1e-12, atol=1e-13)
    gradients_match(ours, theirs, loss, x, tx)
    layers = settings.get("num_layers", 1) * (2 if settings.get("bidirectional") else 1)
    h0 = rng.normal(size=(layers, settings["proj_size"]))
    c0 = rng.normal(size=(layers, 7))
    out, (h, c) = gc.compile(lambda x, hx: ours(x, hx))(x[0], (h0, c0))
    t_out, (t_h, t_c) = theirs(torch.tensor(x[0]), (torch.tensor(h0), torch.tensor(c0)))
    for mine, torchs in ((out, t_out), (h, t_h), (c, t_c)):
        np.testing.assert_allclose(mine, torchs.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("proj_size", [7, -1, 2.0])
def test_lstm_proj_size_out_of_range_is_one_line(proj_size):
    """torch refuses a proj_size that is not below hidden_size or negative; graphc's now in
    one line (it raised Python's TypeError for any proj_size)."""
    assert_one_line_error(lambda: gc.nn.LSTM(5, 7, proj_size=proj_size),
                          "LSTM: proj_size must be an int from 0 (none) to hidden_size - 1",
                          HERE)


# ---- 2. a Parameter set on a submodule of a built model is named from the root ---------------
def test_a_parameter_set_on_a_submodule_of_a_built_model_is_named_from_the_root():
    """model.body.extra = gc.nn.Parameter(...) once the model was built (and used) named the
    Parameter 'extra' (its repr, a traced or dumped graph's input, where named_parameters says
    'body.extra'), and a Buffer so set the same; now 'body.extra' and 'body.stat', as a child
    module added there is named from the root (session 36) and as torch's names are."""
    class Net(gc.nn.Module):
        def __init__(self):
            self.body = gc.nn.Sequential(gc.nn.Linear(2, 2))

        def forward(self, x):
            return self.body(x) * self.body.extra

    model = Net()
    model.body.extra = gc.nn.Parameter(np.ones(2, np.float32))
    x = np.ones((1, 2), np.float32)
    model(x)
    model.body.extra = gc.nn.Parameter(np.full(2, 2.0, np.float32))
    model.body.register_buffer("stat", np.zeros(2, np.float32))
    names = [n for n, _ in model.named_parameters()]
    assert names == ["body.extra", "body.0.weight", "body.0.bias"]  # (torch's order)
    assert [p.name for p in model.parameters()] == names
    assert model.body.stat.name == "body.stat"
    assert "name='body.extra'" in repr(model.body.extra)
    graph = gc.trace(model, gc.spec((1, 2)))
    assert sorted(node.attrs["name"] for node in graph.inputs[1:]) == sorted(names)
    np.testing.assert_allclose(np.asarray(model(x)), 2 * np.asarray(model.body(x)))


# ---- 3. a float64 weight on float32 input promotes, as torch's ------------------------------
def _inputs():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 4)).astype(np.float32)
    return x, y, rng.uniform(0.5, 2.0, (3, 4))


@pytest.mark.parametrize("loss", ["l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight_dtype", ["float64", "int64"])
def test_l1_and_huber_loss_promote_their_weight_as_torch(loss, reduction, weight_dtype):
    """gc.l1_loss / huber_loss(float32 input, weight=float64 array) failed (mul: "operands
    must have one dtype"), where torch promotes: the loss is float64. Now as torch's, values
    and the input's gradient (float32); an integer weight keeps the loss float32."""
    x, y, w = _inputs()
    w = (w * 3).astype(weight_dtype)
    tx = torch.tensor(x, requires_grad=True)
    expected = getattr(torch.nn.functional, loss)(tx, torch.tensor(y), reduction=reduction,
                                                  weight=torch.tensor(w))
    expected.sum().backward()
    got = getattr(gc, loss)(x, y, reduction=reduction, weight=w)
    assert np.asarray(got).dtype == {torch.float64: np.float64,
                                     torch.float32: np.float32}[expected.dtype]
    np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), rtol=1e-6)
    grad = gc.grad(lambda v: getattr(gc, loss)(v, y, reduction=reduction, weight=w).sum())(x)
    assert np.asarray(grad).dtype == np.float32
    np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_multilabel_soft_margin_loss_promotes_a_float64_weight_as_torch(reduction):
    """gc.nn.MultiLabelSoftMarginLoss(weight=float64 array) on float32 input was refused
    ("loss is float32 but weight is float64"), where torch's promotes: a float64 loss. Now
    as torch's, values and the input's gradient."""
    x, y, w = _inputs()
    target = (y > 0).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.MultiLabelSoftMarginLoss(weight=torch.tensor(w[0]),
                                                 reduction=reduction)(tx, torch.tensor(target))
    expected.sum().backward()
    layer = gc.nn.MultiLabelSoftMarginLoss(weight=w[0], reduction=reduction)
    got = layer(x, target)
    assert expected.dtype == torch.float64 and np.asarray(got).dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), rtol=1e-6)
    grad = gc.grad(lambda v: layer(v, target).sum())(x)
    np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---- 4. ModuleList.append sets the new item only ---------------------------------------------
def test_append_and_extend_set_only_the_new_items(monkeypatch):
    """ModuleList.append (extend too) set every item held again (each one renamed and its
    attribute re-set), so n appends took time growing as n squared (300: ~400 ms). Now only
    the new items are set; names, order, and a plan traced through the list being traced
    again (tests/test_review_s36_stale_plans.py) are as before."""
    class Net(gc.nn.Module):
        def __init__(self):
            self.body = gc.nn.ModuleList([gc.nn.Linear(2, 2) for _ in range(20)])

    model = Net()
    layers, new = model.body, [gc.nn.Linear(2, 2) for _ in range(3)]
    calls = []
    setattr_ = gc.nn.Module.__setattr__

    def counting(module, name, value):
        calls.append(name)
        setattr_(module, name, value)

    monkeypatch.setattr(gc.nn.Module, "__setattr__", counting)
    layers.append(new[0])
    layers.extend(new[1:])
    monkeypatch.undo()
    assert calls == ["20", "21", "22"]
    assert [n for n, _ in layers.named_children()] == [str(k) for k in range(23)]
    assert layers[22].weight.name == "body.22.weight"
    assert [n for n, _ in model.named_parameters()][-2:] == ["body.22.weight", "body.22.bias"]


# ---- the session's review: names in messages and of tied parameters ---------------------------
def test_an_unknown_keyword_names_the_graphc_layer_that_refused_it():
    """The refusal named a user's subclass as gc.nn.<UserClass> with the parent's keywords as
    its own, and graphc.models' GPT as gc.nn.GPT; now it names graphc's class that refused
    the keyword, as a user spells it."""
    class MyLinear(gc.nn.Linear):
        def __init__(self, a, b, **kw):
            super().__init__(a, b, **kw)

    with pytest.raises(gc.GraphcError, match=r"^gc\.nn\.Linear: unknown keyword argument "
                                          r"'devic' \(it takes in_features, out_features"):
        MyLinear(2, 3, devic="cpu")
    from graphc.models import GPT, GPTConfig
    with pytest.raises(gc.GraphcError, match=r"^graphc\.models\.GPT: unknown keyword argument "
                                          r"'rng' \(it takes cfg, seed\)"):
        GPT(GPTConfig(), rng=0)


def test_a_tied_parameter_keeps_the_name_of_its_first_place():
    """`dec.weight = enc.weight` renamed the shared Parameter 'dec.weight' (a traced graph's
    input), where named_parameters, state_dict and torch call it enc.weight; now it keeps the
    name of the place it was first put in, in the constructor and after building."""
    class Net(gc.nn.Module):
        def __init__(self, tie):
            self.enc = gc.nn.Linear(2, 2)
            self.dec = gc.nn.Linear(2, 2)
            if tie:
                self.dec.weight = self.enc.weight

        def forward(self, x):
            return self.dec(self.enc(x))

    for model in (Net(tie=True), Net(tie=False)):
        if model.dec.weight is not model.enc.weight:
            model.dec.weight = model.enc.weight  # tied after building
        names = [n for n, _ in model.named_parameters()]
        assert names == ["enc.weight", "enc.bias", "dec.bias"]
        assert model.enc.weight.name == "enc.weight"
        graph = gc.trace(model, gc.spec((1, 2)))
        assert [node.attrs["name"] for node in graph.inputs[1:]] == names
