"""gc.ctc_loss on float16 log_probs outside autocast: torch's CPU kernel refuses Half
('"ctc_loss_cpu" not implemented for 'Half''); graphc computes in float32 and rounds the
result once, so it is torch's float64 loss of the same (half) inputs rounded to float16,
and its gradient is float16 within half precision of graphc's float64 one."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch is the reference")
TF = torch.nn.functional


def _case():
    rng = np.random.default_rng(0)
    steps, batch, classes = 12, 3, 5
    x = rng.normal(size=(steps, batch, classes))
    log_probs = (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float16)
    targets = rng.integers(1, classes, size=(batch, 4))
    return log_probs, targets, np.array([12, 10, 9]), np.array([4, 3, 2])


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_half_ctc_is_the_float64_loss_rounded_once(reduction):
    log_probs, targets, il, tl = _case()
    args = (torch.tensor(targets), torch.tensor(il), torch.tensor(tl))
    with pytest.raises(NotImplementedError, match="Half"):  # (what torch on CPU does)
        TF.ctc_loss(torch.tensor(log_probs), *args, reduction=reduction)
    expected = TF.ctc_loss(torch.tensor(log_probs.astype(np.float64)), *args,
                           reduction=reduction).numpy()
    for got in (gc.ctc_loss(log_probs, targets, il, tl, reduction=reduction),
                gc.compile(lambda lp: gc.ctc_loss(lp, targets, il, tl,
                                                  reduction=reduction))(log_probs)):
        got = np.asarray(got)
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, expected.astype(np.float16))


def test_half_ctc_gradient():
    log_probs, targets, il, tl = _case()

    def loss(lp):
        return gc.ctc_loss(lp, targets, il, tl)
    half = np.asarray(gc.grad(loss)(log_probs))
    full = np.asarray(gc.grad(loss)(log_probs.astype(np.float64)))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float64), full, rtol=2e-3, atol=2e-4)
