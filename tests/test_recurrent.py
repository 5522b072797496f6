"""gc.nn.RNN, GRU and LSTM (graphc/recurrent.py) against torch.nn's in float64: a torch
layer's state_dict loads as it is, and outputs, final states and every gradient agree,
eagerly and compiled, for stacked, bidirectional, batch-first, bias-free, unbatched inputs
and given initial states."""
import warnings

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

KINDS = ["RNN", "GRU", "LSTM"]
CONFIGS = [{}, {"num_layers": 2, "bidirectional": True, "batch_first": True},
           {"bias": False, "num_layers": 3}, {"nonlinearity": "relu", "bidirectional": True}]


def pair(kind, **kw):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(5, 7, **kw).double()
    ours = getattr(gc.nn, kind)(5, 7, dtype="float64", **kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def states(kind, h):
    return h if kind == "LSTM" else (h,)


# nonlinearity is RNN's argument only
CASES = [(kind, k) for kind in KINDS for k, kw in enumerate(CONFIGS)
         if kind == "RNN" or "nonlinearity" not in kw]


def gradients_match(ours, theirs, loss, x, tx):
    """graphc's gradients of `loss` (eager and compiled) equal torch's, already computed by
    backward() into theirs' parameters and tx."""
    params = ours.params()
    g_params, g_x = gc.grad(loss, argnums=(0, 1))(params, x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    compiled = gc.compile(gc.value_and_grad(loss))(params, x)[1]
    for name in params:
        np.testing.assert_allclose(compiled[name], g_params[name], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind,config", CASES)
def test_outputs_states_and_gradients_match_torch(kind, config):
    kw = CONFIGS[config]
    ours, theirs = pair(kind, **kw)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    rng = np.random.default_rng(config)
    x = rng.normal(size=(3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_h = theirs(tx)
    w = rng.normal(size=t_out.shape)
    t_states = states(kind, t_h)
    v = [rng.normal(size=s.shape) for s in t_states]
    (torch.sum(t_out * torch.tensor(w))
     + sum(torch.sum(s * torch.tensor(u)) for s, u in zip(t_states, v))).backward()

    def loss(params, x):
        out, h = ours.apply(params, x)
        return gc.sum(out * w) + sum(gc.sum(s * u) for s, u in zip(states(kind, h), v))

    out, h = ours(x)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for s, t in zip(states(kind, h), t_states):
        np.testing.assert_allclose(s, t.detach().numpy(), rtol=1e-12, atol=1e-13)
    gradients_match(ours, theirs, loss, x, tx)


@pytest.mark.parametrize("kind", KINDS)
def test_given_initial_state_and_unbatched_input_match_torch(kind):
    ours, theirs = pair(kind, num_layers=2)
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.normal(size=(6, 5)), rng.normal(size=(2, 7)), rng.normal(size=(2, 7))
    hx = (h0, c0) if kind == "LSTM" else h0
    t_hx = tuple(map(torch.tensor, hx)) if kind == "LSTM" else torch.tensor(hx)
    out, h = gc.compile(lambda x, hx: ours(x, hx))(x, hx)
    t_out, t_h = theirs(torch.tensor(x), t_hx)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for s, t in zip(states(kind, h), states(kind, t_h)):
        assert s.shape == (2, 7)
        np.testing.assert_allclose(s, t.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_vmap_over_sequences_is_the_batched_layer():
    ours, _ = pair("GRU", batch_first=True)
    x = np.random.default_rng(2).normal(size=(3, 4, 5))
    per_sequence = gc.vmap(lambda s: ours(s)[0])(x)  # each (4, 5): unbatched
    np.testing.assert_allclose(per_sequence, ours(x)[0], rtol=1e-13, atol=1e-14)


def test_dropout_between_layers_only_in_training():
    ours, theirs = pair("LSTM", num_layers=2, dropout=0.5)
    theirs.eval()
    x = np.random.default_rng(3).normal(size=(4, 2, 5))
    ours.eval()
    np.testing.assert_allclose(ours(x)[0], theirs(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    ours.train()
    with gc.nn.rng_key(7):
        first = np.asarray(ours(x)[0])
    with gc.nn.rng_key(7):
        again = np.asarray(ours(x)[0])
    np.testing.assert_array_equal(first, again)  # a pure function of the key
    assert not np.allclose(first, np.asarray(ours.eval()(x)[0]))


@pytest.mark.parametrize("kind", KINDS)
def test_a_dropout_of_1_between_layers_is_torch_s(kind):
    """dropout=1.0 was refused ("dropout must be a number in [0, 1)") where torch's takes
    it, as gc.nn.Dropout(1.0) and MultiheadAttention's now do: every value between layers
    zeroed in training, so the output is torch's exactly, eager and compiled; a dropout set
    to 1.0 after a plan was traced is taken too (it failed in the mask op), and 1.5 is still
    refused."""
    ours, theirs = pair(kind, num_layers=2, dropout=1.0)
    x = np.random.default_rng(3).normal(size=(4, 2, 5))
    expected = theirs.train()(torch.tensor(x))[0].detach().numpy()
    ours.train()
    np.testing.assert_allclose(ours(x)[0], expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gc.compile(ours)(x)[0], expected, rtol=1e-12, atol=1e-13)
    later, _ = pair(kind, num_layers=2, dropout=0.5)
    compiled = gc.compile(later)
    compiled(x)
    later.dropout = 1.0
    np.testing.assert_allclose(compiled(x)[0], expected, rtol=1e-12, atol=1e-13)
    with pytest.raises(gc.GraphcError, match=r"dropout must be a number in \[0, 1\], got 1.5"):
        getattr(gc.nn, kind)(5, 7, num_layers=2, dropout=1.5)


def test_torch_initialisation_bounds():
    layer = gc.nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    names = [n for n, _ in layer.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert layer.weight_ih_l1.data.shape == (64, 32) and "weight_hh_l1_reverse" in names
    for _, p in layer.named_parameters():
        assert np.abs(p.data).max() <= 0.25 and p.data.std() > 0.1  # uniform(+-1/sqrt(16))


@pytest.mark.parametrize("kind,kw", [(kind, CONFIGS[k]) for kind, k in CASES]
                         + [("LSTM", {"proj_size": 3, "num_layers": 2, "bidirectional": True}),
                            ("LSTM", {"proj_size": 2, "bias": False})])
def test_all_weights_as_torch_s(kind, kw):
    """torch's all_weights (and _all_weights, its names): per layer, then direction, the
    layer's [w_ih, w_hh, b_ih, b_hh(, w_hr)]; it was missing (an AttributeError)."""
    ours, theirs = pair(kind, **kw)
    assert ours._all_weights == theirs._all_weights
    assert [len(group) for group in ours.all_weights] == \
        [len(group) for group in theirs.all_weights]
    for names, group, their_group in zip(ours._all_weights, ours.all_weights,
                                         theirs.all_weights):
        for name, p, q in zip(names, group, their_group):
            assert p is getattr(ours, name)  # the layer's own Parameter, as torch's
            np.testing.assert_array_equal(p.data, q.detach().numpy())


@pytest.mark.parametrize("kind", ["LSTM", "GRUCell"])
def test_reset_parameters_and_flatten_parameters_as_torch_s(kind):
    """torch's reset_parameters (every parameter uniform(+-1/sqrt(hidden_size)) again) and
    flatten_parameters (a cuDNN buffer: nothing to do here) were missing, so torch code calling
    them stopped with an AttributeError. reset_parameters draws in place from gc.nn's
    generator: a compiled plan sees the new weights, manual_seed repeats them."""
    layer = getattr(gc.nn, kind)(3, 16, **({"proj_size": 4} if kind == "LSTM" else {}))
    if kind == "LSTM":
        assert layer.flatten_parameters() is None
    x = np.ones((2, 1, 3) if kind == "LSTM" else (1, 3), np.float32)
    first = lambda out: out[0] if kind == "LSTM" else out  # noqa: E731
    compiled = gc.compile(lambda x: first(layer(x)))
    before = np.asarray(compiled(x))
    gc.nn.manual_seed(5)
    layer.reset_parameters()
    drawn = {name: np.array(p.data) for name, p in layer.named_parameters()}
    gc.nn.manual_seed(5)
    layer.reset_parameters()
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(p.data, drawn[name])
        assert p.data.dtype == np.float32 and np.abs(p.data).max() <= 0.25
    every = np.concatenate([v.ravel() for v in drawn.values()])
    assert abs(every.std() - 0.25 / np.sqrt(3)) < 0.01  # uniform(+-1/sqrt(16))
    after = np.asarray(compiled(x))
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, first(layer(x)), rtol=1e-5, atol=1e-6)


def test_dropout_with_one_layer_warns_as_torch_s():
    with pytest.warns(UserWarning, match="GRU: dropout is applied between layers, after all "
                      "but the last, so a dropout of 0.5 does nothing with num_layers=1") as w:
        gc.nn.GRU(3, 4, dropout=0.5)
    assert w[0].filename.endswith("test_recurrent.py")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.nn.GRU(3, 4, num_layers=2, dropout=0.5)
        gc.nn.GRU(3, 4, dropout=0.0)


def test_bad_input_gives_one_line():
    f = "test_recurrent.py"
    gru = gc.nn.GRU(5, 7)
    x = np.zeros((3, 4, 5), np.float32)
    assert_one_line_error(lambda: gru(np.zeros((3, 4, 6), np.float32)),
                          "GRU: input has 6 features, the layer takes 5", f)
    assert_one_line_error(lambda: gru(np.zeros(5, np.float32)), "input must be 2-d", f)
    assert_one_line_error(lambda: gru(x, np.zeros((2, 4, 7), np.float32)),
                          "hx has shape (2, 4, 7), expected (1, 4, 7)", f)
    assert_one_line_error(lambda: gc.nn.RNN(5, 7, nonlinearity="gelu"),
                          "nonlinearity must be 'tanh' or 'relu'", f)
    assert_one_line_error(lambda: gc.nn.LSTM(5, 0), "hidden_size must be a positive int", f)


def test_an_input_that_is_not_an_array_is_named():
    """None or a string as a layer's or cell's input read as shape (), so the error said
    "input must be 2-d (L, 5) or 3-d, got shape ()"; it now names what was given."""
    f = "test_recurrent.py"
    for bad, what in [(None, "a NoneType"), ("abc", "a str")]:
        assert_one_line_error(lambda: gc.nn.LSTM(5, 7)(bad), "LSTM: input must be an array "
                              f"(L, 5) or 3-d, got {what}", f)
        assert_one_line_error(lambda: gc.nn.GRUCell(5, 7)(bad), "GRUCell: input must be an "
                              f"array (5,) or (N, 5), got {what}", f)


def test_review_r14_any_input_that_is_not_an_array_is_named():
    """Review r14: only None, a str, a bytes or a dict were named; a set or another object
    still read as shape () ("must be 2-d (L, 5) or 3-d, got shape ()"), and an (x, h) pair
    given as the input was numpy's raw ValueError ("inhomogeneous shape"), naming no layer."""
    f = "test_recurrent.py"
    pair = (np.ones((2, 5), np.float32), np.zeros((1, 7), np.float32))
    for bad, what in [({1, 2}, "a set"), (object(), "an object"),
                      (pair, "a tuple of 2 items of different shapes")]:
        assert_one_line_error(lambda: gc.nn.LSTM(5, 7)(bad), "LSTM: input must be an array "
                              f"(L, 5) or 3-d, got {what}", f)
        assert_one_line_error(lambda: gc.nn.GRUCell(5, 7)(bad), "GRUCell: input must be an "
                              f"array (5,) or (N, 5), got {what}", f)
    # a tuple of equal rows and a number keep their own errors
    rows = (np.ones(5, np.float32), np.ones(5, np.float32))
    assert_one_line_error(lambda: gc.nn.GRUCell(5, 7)(rows), "GRUCell: input is a tuple; give "
                          "an array (np.asarray)", f)
    assert_one_line_error(lambda: gc.nn.GRUCell(5, 7)(3.0), "GRUCell: input must be 1-d", f)


# ---- the other layers added with them --------------------------------------------------------
@pytest.mark.parametrize("groups,affine", [(1, True), (2, True), (6, False)])
def test_group_norm_matches_torch(groups, affine):
    theirs = torch.nn.GroupNorm(groups, 6, eps=1e-4, affine=affine).double()
    if affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
    ours = gc.nn.GroupNorm(groups, 6, eps=1e-4, affine=affine, dtype="float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(groups)
    x, w = rng.normal(size=(3, 6, 4, 5)), rng.normal(size=(3, 6, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    (t_out * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours(x), t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    g_params, g_x = gc.grad(lambda p, x: gc.sum(ours.apply(p, x) * w), argnums=(0, 1))(
        ours.params(), x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_one_line_error(lambda: gc.nn.GroupNorm(4, 6), "must be a multiple of num_groups",
                          "test_recurrent.py")


def test_identity_returns_its_input():
    x = np.arange(3.0, dtype=np.float32)
    assert gc.nn.Identity(54, unused=1)(x) is x
    model = gc.nn.Sequential(gc.nn.Linear(3, 2), gc.nn.Identity())
    np.testing.assert_allclose(model(x), model[0](x))


def test_one_plan_serves_every_sequence_length():
    """A symbolic time axis (gc.scan over a Dim): one plan for sequences of any length,
    equal to the eager layer at each."""
    gru = gc.nn.GRU(3, 4, num_layers=2, dtype="float64")
    f = gc.compile(lambda x: gru(x)[0], polymorphic_shapes=(("length", "_", "_"),))
    rng = np.random.default_rng(6)
    for length in (5, 7, 1):
        x = rng.normal(size=(length, 2, 3))
        np.testing.assert_allclose(f(x), gru(x)[0], rtol=1e-13, atol=1e-14)
    assert len(f._plans) == 1
