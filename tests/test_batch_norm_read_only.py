"""BatchNorm's numba kernels (runtime/jit.py) with read-only operands: a plan's constants
(the zero bias of bias=False, an input a gradient closes over) are read-only arrays, which
numba types apart from writable ones; each mix compiled a kernel of its own at the plan's
first call (6-16 s of CPU each), after `python -m runtime.jit` had prepared the kernels."""
import numpy as np
import pytest

import graphc as gc
from runtime import jit

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="numba missing")

KERNELS = ("batch_norm", "batch_norm_grad", "batch_norm_grads", "batch_norm_wgrad",
           "batch_moments")


def _signatures():
    return {k: len(getattr(jit, k).signatures) for k in KERNELS}


def _frozen(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def test_read_only_operands_use_the_prepared_kernel():
    for k in KERNELS:
        jit.warm(k, "float64")
    before = _signatures()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    g = rng.standard_normal(x.shape)
    outs = []
    for args in ((x, w, b, g), tuple(_frozen(a) for a in (x, w, b, g))):
        y, dx, sums = np.empty_like(x), np.empty_like(x), np.empty((2, 3))
        jit.batch_norm(args[0], args[1], args[2], 1e-5, y)
        jit.batch_norm_grads(args[0], args[1], args[3], 1e-5, dx, sums)
        outs.append((y, dx, sums))
    assert _signatures() == before
    for a, c in zip(*outs):
        np.testing.assert_array_equal(a, c)
    mu, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    xhat = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(outs[0][0], xhat * w[:, None] + b[:, None], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(outs[0][2], [(g * xhat).sum((0, 2)), g.sum((0, 2))],
                               rtol=1e-12, atol=1e-12)


def test_bias_false_with_a_closed_over_input_compiles_no_batch_norm_kernel():
    """BatchNorm1d(bias=False) (its zero bias a constant) and a gradient closing over x (a
    constant too): torch's values, and no kernel compiled beyond the prepared ones."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    for k in KERNELS:
        jit.warm(k, "float64")
    before = _signatures()
    ours = gc.nn.BatchNorm1d(3, bias=False, dtype="float64")
    theirs = torch.nn.BatchNorm1d(3, bias=False).double()
    x = np.random.default_rng(0).normal(size=(4, 3, 5)) + 2
    w = np.random.default_rng(1).uniform(0.5, 2.0, 3)
    ours.weight.data[...] = w
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
    tx = torch.tensor(x, requires_grad=True)
    want = theirs(tx)
    (want ** 2).sum().backward()
    got = gc.compile(lambda p, x: ours.apply(p, x))(ours.params(), x)
    grads = gc.compile(gc.grad(lambda p: gc.sum(ours.apply(p, x) ** 2)))(ours.params())
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["weight"], theirs.weight.grad.numpy(), rtol=1e-9)
    assert _signatures() == before
