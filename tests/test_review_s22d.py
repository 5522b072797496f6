"""Review s22d of gc.interpolate / gc.nn.Upsample and gc.nn.Embedding(padding_idx): cases
where torch's rules differ from the plain source-index formula, against torch in float64."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch")  # the oracle (a test extra)
TF = torch.nn.functional


def _values_and_grads(x, **kw):
    t = torch.tensor(x, requires_grad=True)
    ref = TF.interpolate(t, **kw)
    w = np.random.default_rng(1).normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    got = gc.interpolate(x, **kw)
    g = gc.compile(gc.grad(lambda x: gc.sum(gc.interpolate(x, **kw) * w)))(x)
    return (np.asarray(got), np.asarray(g)), (ref.detach().numpy(), t.grad.numpy())


@pytest.mark.parametrize("shape,factor", [((2, 3, 4), 1.05), ((1, 2, 2), 1.3),
                                          ((2, 1, 5, 6), 1.1), ((1, 2, 2, 7), (1.3, 1.05))])
def test_linear_axis_kept_by_scale_factor_is_copied(shape, factor):
    # torch copies an axis whose output size equals its input size even when scale_factor
    # is not 1 (graphc interpolated at (i + 0.5) / factor - 0.5 instead)
    x = np.random.default_rng(0).normal(size=shape)
    mode = "linear" if len(shape) == 3 else "bilinear"
    got, ref = _values_and_grads(x, scale_factor=factor, mode=mode, align_corners=False)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[0], x, rtol=0, atol=0)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)
