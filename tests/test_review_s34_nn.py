"""Session 34's fixes of gc.nn's modules, checked against torch in float64; each test failed
before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def _attention_pair(batch_first=False, dropout=0.0):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(8, 2, dropout=dropout,
                                         batch_first=batch_first).double()
    ours = gc.nn.MultiheadAttention(8, 2, dropout=dropout, batch_first=batch_first,
                                    dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    return ours, theirs


def test_a_wrongly_shaped_key_padding_mask_is_refused():
    """Any key_padding_mask of B * S elements was reshaped to (B, 1, 1, S): a sequence-first
    (S, B) one (a common slip with batch_first=False), (B * S,), (1, B * S) or (B, S, 1)
    masked the wrong keys without a word. torch refuses them all; now graphc does too, in
    one line naming the shape it needs, and a (B, S) or unbatched (S,) mask is torch's."""
    ours, theirs = _attention_pair()
    x = np.random.default_rng(0).normal(size=(3, 2, 8))  # (L, N, E): L = 3, N = 2
    padding = np.array([[False, False, True], [False, True, False]])  # (N, S)
    for wrong in (padding.T, padding.reshape(6), padding.reshape(1, 6),
                  padding.reshape(2, 3, 1)):
        with pytest.raises(GraphcError, match=r"^MultiheadAttention: key_padding_mask has "
                           r"shape \(.*\); it must be \(batch, source length\) = \(2, 3\)\n"):
            ours(x, key_padding_mask=wrong)
        with pytest.raises(AssertionError):
            theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(wrong))
    out, weights = ours(x, key_padding_mask=padding)
    t_out, t_weights = theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(padding))
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(weights.data, t_weights.detach().numpy(), atol=1e-12)
    single = x[:, 0]  # unbatched (L, E): a 1-d (S,) mask
    out = ours(single, key_padding_mask=padding[0])[0]
    t_out = theirs(*(torch.tensor(single),) * 3, key_padding_mask=torch.tensor(padding[0]))[0]
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), atol=1e-12)
    with pytest.raises(GraphcError, match=r"unbatched .* must be 1-d \(S,\), got shape \(1, 3\)"):
        ours(single, key_padding_mask=padding[:1])
    # inside a model, the message names the layer
    layer = gc.nn.TransformerEncoderLayer(8, 2, 16, dtype="float64")
    with pytest.raises(GraphcError, match=r"^MultiheadAttention 'self_attn': key_padding_mask "
                       r"has shape \(3, 2\)"):
        layer(x, src_key_padding_mask=padding.T)
