"""gc.nn.RNNCell, GRUCell and LSTMCell (graphc/recurrent.py) against torch.nn's in float64: a
torch cell's state_dict loads as it is, and the new state and every gradient agree, eagerly
and compiled, batched and unbatched, with and without a given state; the cell is one step of
the layer (they share the gate math)."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

CASES = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu", "bias": False}),
         ("GRUCell", {}), ("GRUCell", {"bias": False}), ("LSTMCell", {}),
         ("LSTMCell", {"bias": False})]


from test_recurrent import pair  # noqa: E402  (torch's layer, its weights loaded into ours)


def as_tuple(kind, h):
    return tuple(h) if kind == "LSTMCell" else (h,)


@pytest.mark.parametrize("kind,kw", CASES)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("given", [True, False])
def test_state_and_gradients_match_torch(kind, kw, batched, given):
    ours, theirs = pair(kind, **kw)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    rng = np.random.default_rng(len(kw) + 2 * batched + 4 * given)
    lead = (3,) if batched else ()
    x = rng.normal(size=lead + (5,))
    hx = tuple(rng.normal(size=lead + (7,)) for _ in range(2 if kind == "LSTMCell" else 1))
    w = [rng.normal(size=lead + (7,)) for _ in hx]
    tx = torch.tensor(x, requires_grad=True)
    t_hx = [torch.tensor(h, requires_grad=True) for h in hx]
    t_out = as_tuple(kind, theirs(tx, (tuple(t_hx) if kind == "LSTMCell" else t_hx[0])
                                  if given else None))
    sum(torch.sum(o * torch.tensor(u)) for o, u in zip(t_out, w)).backward()

    def call(params, x, hx):
        state = (hx if kind == "LSTMCell" else hx[0]) if given else None
        return as_tuple(kind, ours.apply(params, x, state))

    def loss(params, x, hx):
        return sum(gc.sum(o * u) for o, u in zip(call(params, x, hx), w))

    params = ours.params()
    for out in (call(params, x, hx), gc.compile(call)(params, x, hx)):
        assert len(out) == len(t_out)
        for o, t in zip(out, t_out):
            assert np.shape(o) == tuple(t.shape)
            np.testing.assert_allclose(o, t.detach().numpy(), rtol=1e-12, atol=1e-13)
    eager = gc.grad(loss, argnums=(0, 1, 2))(params, x, hx)
    compiled = gc.compile(gc.grad(loss, argnums=(0, 1, 2)))(params, x, hx)
    for g_params, g_x, g_hx in (eager, compiled):
        np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=name)
        if given:
            for g, t in zip(g_hx, t_hx):
                np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_finite_differences():
    cell = gc.nn.GRUCell(3, 4, dtype="float64", rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    w = rng.normal(size=(2, 4))

    def loss(x, h):
        return gc.sum(cell(x, h) * w)

    g_x, g_h = gc.grad(loss, argnums=(0, 1))(x, h)
    for value, grad, which in ((x, g_x, 0), (h, g_h, 1)):
        for index in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[index] = 1e-6
            args = [x, h]
            args[which] = value + step
            up = float(loss(*args))
            args[which] = value - step
            down = float(loss(*args))
            assert abs((up - down) / 2e-6 - grad[index]) < 1e-7


@pytest.mark.parametrize("layer,cell", [("RNN", "RNNCell"), ("GRU", "GRUCell"),
                                        ("LSTM", "LSTMCell")])
def test_the_cell_steps_the_layer(layer, cell):
    """A layer's weights (its _l0 ones) loaded into the cell: stepping the cell over the
    sequence gives the layer's output, and the layer's state_dict loads into torch's cell."""
    torch.manual_seed(1)
    rnn = getattr(gc.nn, layer)(5, 7, dtype="float64")
    ours = getattr(gc.nn, cell)(5, 7, dtype="float64")
    weights = {k[:-3]: v.data for k, v in rnn.named_parameters()}  # weight_ih_l0 -> weight_ih
    ours.load_state_dict(weights)
    theirs = getattr(torch.nn, cell)(5, 7).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    x = np.random.default_rng(2).normal(size=(4, 3, 5))
    out, _ = rnn(x)
    state, t_state = None, None
    for t in range(4):
        state = ours(x[t], state)
        t_state = theirs(torch.tensor(x[t]), t_state)
        h, t_h = (state[0], t_state[0]) if cell == "LSTMCell" else (state, t_state)
        np.testing.assert_allclose(h, np.asarray(out)[t], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h, t_h.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_symbolic_batch_and_vmap():
    cell = gc.nn.LSTMCell(5, 7, dtype="float64")
    rng = np.random.default_rng(3)
    step = gc.compile(lambda x: cell(x), polymorphic_shapes=[("n", 5)])
    for n in (2, 6):
        x = rng.normal(size=(n, 5))
        h, c = step(x)
        want_h, want_c = cell(x)
        np.testing.assert_allclose(h, want_h, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(c, want_c, rtol=1e-13, atol=1e-14)
        per_row = gc.vmap(lambda row: cell(row)[0])(x)  # each row unbatched
        np.testing.assert_allclose(per_row, want_h, rtol=1e-13, atol=1e-14)


def test_initialisation_bounds_and_float32_default():
    cell = gc.nn.GRUCell(3, 16)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh"]
    assert cell.weight_ih.data.shape == (48, 3) and cell.weight_hh.data.shape == (48, 16)
    for _, p in cell.named_parameters():
        assert p.data.dtype == np.float32
        assert np.abs(p.data).max() <= 0.25 and p.data.std() > 0.1  # uniform(+-1/sqrt(16))
    assert [n for n, _ in gc.nn.RNNCell(3, 4, bias=False).named_parameters()] == [
        "weight_ih", "weight_hh"]


def test_bad_input_gives_one_line():
    f = "test_recurrent_cells.py"
    gru, lstm = gc.nn.GRUCell(5, 7), gc.nn.LSTMCell(5, 7)
    x = np.zeros((3, 5), np.float32)
    assert_one_line_error(lambda: gru(np.zeros((3, 6), np.float32)),
                          "GRUCell: input has 6 features, the cell takes 5", f)
    assert_one_line_error(lambda: gru(np.zeros((2, 3, 5), np.float32)),
                          "GRUCell: input must be 1-d (5,) or 2-d", f)
    assert_one_line_error(lambda: gru(x, np.zeros((2, 7), np.float32)),
                          "GRUCell: hx has shape (2, 7), expected (3, 7)", f)
    assert_one_line_error(lambda: gru(x[0], np.zeros((1, 7), np.float32)),
                          "GRUCell: hx has shape (1, 7), expected (7,)", f)
    assert_one_line_error(lambda: lstm(x, np.zeros((3, 7), np.float32)),
                          "LSTMCell: hx must be a pair (h_0, c_0)", f)
    assert_one_line_error(lambda: lstm(x, (np.zeros((3, 7), np.float32),
                                           np.zeros((3, 8), np.float32))),
                          "LSTMCell: c_0 has shape (3, 8), expected (3, 7)", f)
    assert_one_line_error(lambda: gc.nn.RNNCell(5, 7, nonlinearity="gelu"),
                          "RNNCell: nonlinearity must be 'tanh' or 'relu'", f)
    assert_one_line_error(lambda: gc.nn.LSTMCell(0, 7), "input_size must be a positive int", f)


def test_nonlinearity_attribute_is_torch_s():
    """rnn.nonlinearity and cell.nonlinearity, which torch code reads, were missing (an
    AttributeError). As torch's, RNN keeps the mode it was built with, while RNNCell reads its
    nonlinearity at every call: one set afterwards is used, compiled too (a guarded setting,
    so the plan traced with tanh is not reused), and a bad one is refused there."""
    assert gc.nn.RNN(5, 7).nonlinearity == torch.nn.RNN(5, 7).nonlinearity == "tanh"
    assert gc.nn.RNN(5, 7, nonlinearity="relu").nonlinearity == "relu"
    ours, theirs = pair("RNNCell")
    x = np.random.default_rng(0).normal(size=(3, 5)) * 3
    compiled = gc.compile(lambda x: ours(x))
    np.testing.assert_allclose(compiled(x), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    ours.nonlinearity = theirs.nonlinearity = "relu"
    expected = theirs(torch.tensor(x)).detach().numpy()
    assert (expected == 0).any()  # relu's, not tanh's
    np.testing.assert_allclose(ours(x), expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(compiled(x), expected, rtol=1e-12, atol=1e-13)
    assert repr(ours) == repr(theirs) == "RNNCell(5, 7, nonlinearity=relu)"
    ours.nonlinearity = "gelu"
    assert_one_line_error(lambda: ours(x), "RNNCell: nonlinearity must be 'tanh' or 'relu', "
                          "got 'gelu'", "test_recurrent_cells.py")
