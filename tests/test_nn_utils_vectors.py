"""gc.nn.utils.parameters_to_vector / vector_to_parameters and gc.nn.utils.rnn.pad_sequence
(graphc/nn_utils.py, graphc/rnn_utils.py) against torch.nn.utils' in float64: values, and
gradients eagerly and compiled."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

F = "test_nn_utils_vectors.py"


def gru_pair():
    """A model without weights graphc stores transposed: the same vector as torch's."""
    torch.manual_seed(0)
    theirs = torch.nn.GRU(3, 4, num_layers=2).double()
    ours = gc.nn.GRU(3, 4, num_layers=2, dtype="float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def test_parameters_to_vector_values_and_gradients_match_torch():
    ours, theirs = gru_pair()
    t_vec = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(gc.nn.utils.parameters_to_vector(ours.parameters()),
                                  t_vec.detach().numpy())
    w = np.random.default_rng(0).normal(size=t_vec.shape)
    (torch.sum(t_vec * torch.tensor(w)) ** 2).backward()

    def loss(params):
        return gc.sum(gc.nn.utils.parameters_to_vector(params) * w) ** 2

    params = ours.params()  # a dict: its values, in named_parameters' order
    for grads in (gc.grad(loss)(params), gc.compile(gc.grad(loss))(params)):
        for name, p in theirs.named_parameters():
            np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-13, err_msg=name)
    # eager Parameters record the tape: backward reaches each .grad
    ours_loss = loss(ours.parameters())
    ours_loss.backward()
    for (name, p), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-13, err_msg=name)


def test_vector_to_parameters_matches_torch_and_inverts():
    ours, theirs = gru_pair()
    total = sum(p.numel() for p in theirs.parameters())
    vec = np.random.default_rng(1).normal(size=total + 3)  # the tail is unused, as torch's
    torch.nn.utils.vector_to_parameters(torch.tensor(vec), theirs.parameters())
    gc.nn.utils.vector_to_parameters(gc.tensor(vec), ours.parameters())
    for (name, p), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.data.dtype == np.float64
        np.testing.assert_array_equal(p.data, t.detach().numpy(), err_msg=name)
    x = np.random.default_rng(2).normal(size=(5, 2, 3))
    compiled = gc.compile(lambda x: ours(x)[0])
    np.testing.assert_allclose(compiled(x), theirs(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-12)
    # a float32 model with Linear (stored (in, out)): the round trip, cast to its dtype, and
    # a compiled call that sees the new values
    model = gc.nn.Sequential(gc.nn.Linear(3, 4), gc.nn.Tanh(), gc.nn.Linear(4, 2))
    run = gc.compile(lambda x: model(x))
    x = np.ones((2, 3), np.float32)
    before = np.asarray(run(x))
    vec = np.asarray(gc.nn.utils.parameters_to_vector(model.parameters()))
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,) and vec.dtype == np.float32
    gc.nn.utils.vector_to_parameters(vec * 2.0, model)  # float64 in, float32 kept
    for p, part in zip(model.parameters(), np.split(vec * 2.0, [12, 16, 24])):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data.reshape(-1), part.astype(np.float32))
    np.testing.assert_allclose(run(x), model(x), rtol=1e-6)
    assert not np.allclose(run(x), before)


def test_vector_bad_input_gives_one_line():
    model = gc.nn.Linear(3, 2)
    assert_one_line_error(lambda: gc.nn.utils.vector_to_parameters([1.0] * 8, model),
                          "vec must be a tensor or an array, got a list", F)
    assert_one_line_error(lambda: gc.nn.utils.vector_to_parameters(np.zeros(7), model),
                          "vec has 7 entries, the parameters hold 8", F)
    assert_one_line_error(lambda: gc.nn.utils.vector_to_parameters(np.zeros((2, 4)), model),
                          "vec must be 1-d, got shape (2, 4)", F)
    assert_one_line_error(lambda: gc.nn.utils.parameters_to_vector([]), "no parameters", F)
    assert_one_line_error(lambda: gc.nn.utils.parameters_to_vector(["weight"]),
                          "expected tensors or Parameters", F)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("trailing", [(), (2, 3)])
def test_pad_sequence_matches_torch(batch_first, side, trailing):
    rng = np.random.default_rng(len(trailing))
    seqs = [rng.normal(size=(n,) + trailing) for n in (3, 5, 1)]
    t_seqs = [torch.tensor(s, requires_grad=True) for s in seqs]
    t_out = torch.nn.utils.rnn.pad_sequence(t_seqs, batch_first=batch_first,
                                            padding_value=-2.5, padding_side=side)
    w = rng.normal(size=t_out.shape)
    torch.sum(t_out * torch.tensor(w)).backward()

    def pad(*seqs):
        return gc.nn.utils.rnn.pad_sequence(list(seqs), batch_first=batch_first,
                                            padding_value=-2.5, padding_side=side)

    def loss(*seqs):
        return gc.sum(pad(*seqs) * w)

    for out in (pad(*seqs), gc.compile(pad)(*seqs)):
        assert out.shape == tuple(t_out.shape)
        np.testing.assert_array_equal(out, t_out.detach().numpy())
    argnums = tuple(range(len(seqs)))
    for grads in (gc.grad(loss, argnums=argnums)(*seqs),
                  gc.compile(gc.grad(loss, argnums=argnums))(*seqs)):
        for g, t in zip(grads, t_seqs):
            np.testing.assert_array_equal(g, t.grad.numpy())


def test_pad_sequence_of_a_tensor_and_mixed_dtypes():
    x = np.arange(12.0).reshape(3, 4)  # three sequences of length 4, as torch's unbind(0)
    np.testing.assert_array_equal(
        gc.nn.utils.rnn.pad_sequence(x),
        torch.nn.utils.rnn.pad_sequence(torch.tensor(x)).numpy())
    a, b = np.ones(2, np.float32), np.arange(3.0)  # the first's dtype, as torch's
    out = gc.nn.utils.rnn.pad_sequence([a, b], batch_first=True)
    assert out.dtype == np.float32
    t_out = torch.nn.utils.rnn.pad_sequence([torch.tensor(a), torch.tensor(b)],
                                            batch_first=True)
    assert t_out.dtype == torch.float32
    np.testing.assert_array_equal(out, t_out.numpy())


def test_pad_sequence_bad_input_gives_one_line():
    pad = gc.nn.utils.rnn.pad_sequence
    assert_one_line_error(lambda: pad([]), "received an empty list of sequences", F)
    assert_one_line_error(lambda: pad([np.zeros(2)], padding_side="top"),
                          "padding_side must be 'left' or 'right', got 'top'", F)
    assert_one_line_error(lambda: pad([np.zeros((2, 3)), np.zeros((2, 4))]),
                          "sequence 1 has shape (2, 4), sequence 0 has (2, 3)", F)
    assert_one_line_error(lambda: pad([np.zeros(2), 3.0]),
                          "sequence 1 must be a tensor of at least 1 dimension", F)
    assert_one_line_error(lambda: pad(7), "expected a list of sequences", F)
