"""Session 38's fixes of half-precision and dtype defects; each test failed before its fix.
torch is the oracle, float16 and float64."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")
TF = torch.nn.functional


def test_half_attention_does_not_overflow_where_torchs_does_not():
    """scaled_dot_product_attention multiplied q @ k^T in float16 before the scale: a
    product of 82944 rounded to inf and the output was NaN (eager, compiled and its
    gradient); torch's gives finite values. Half operands now go through float32 and are
    rounded once, as torch's CPU kernel accumulates."""
    q = np.full((1, 2, 64), 36.0, np.float16)  # q.k = 82944 > 65504; scaled, 10368
    v = (np.arange(128) / 64).astype(np.float16).reshape(1, 2, 64)
    want = TF.scaled_dot_product_attention(*map(torch.tensor, (q, q, v))).numpy()
    sdpa = gc.scaled_dot_product_attention
    eager = sdpa(gc.tensor(q), gc.tensor(q), gc.tensor(v)).data
    compiled = gc.compile(sdpa)(q, q, v)
    for got in (eager, compiled):
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, want)
    weights = np.random.default_rng(0).standard_normal((1, 2, 64))
    grads = gc.grad(lambda q, v: gc.sum(sdpa(q, q, v) * weights.astype(np.float16)),
                    argnums=(0, 1))(q, v)
    tq, tv = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, v))
    (TF.scaled_dot_product_attention(tq, tq, tv) * torch.tensor(weights)).sum().backward()
    for got, expected in zip(grads, (tq.grad, tv.grad)):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got.astype(np.float64), expected.numpy(), atol=2e-2)


def test_half_multihead_attention_scales_queries_before_the_product_as_torchs():
    """nn.MultiheadAttention multiplied q @ k^T in half before scaling it: scores of 80000
    were inf and the output NaN. Half queries are now scaled first, as torch's."""
    E = 64
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, 2, batch_first=True).half()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.eye(E).repeat(3, 1))
    ours = gc.nn.MultiheadAttention(E, 2, batch_first=True).half()
    ours.load_state_dict({"in_proj_weight": np.tile(np.eye(E), 3).astype(np.float16),
                          "in_proj_bias": np.zeros(3 * E, np.float16),
                          "out_proj.weight": theirs.out_proj.weight.detach().numpy().T,
                          "out_proj.bias": np.zeros(E, np.float16)})
    x = np.full((1, 3, E), 50.0, np.float16)  # per head q.k = 32 * 2500 = 80000
    x[0, :, 0] = (10.0, 20.0, 30.0)
    want = theirs(*(torch.tensor(x),) * 3)[0].detach().numpy()
    got = ours(*(gc.tensor(x),) * 3)[0].data
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                               rtol=1e-2, atol=1e-2)
