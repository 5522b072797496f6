"""BatchNorm's primitives (ir/ops/composite.py batch_norm, batch_norm_grad, batch_norm_wgrad,
batch_moments) and their numba kernels (runtime/jit.py): a compiled BatchNorm training step
runs three kernels for the layer (the batch statistics, the normalisation, and both
gradients in one pass) where the composite of means, variances and broadcasts ran ~70, with
torch's values (float32, both kernel layouts: threads by channel, and by rows for (N, C))."""
import numba
import numpy as np
import pytest
import torch

import graphc as gc
from runtime import jit

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="numba missing")


def _step(shape, seed=0):
    """A compiled forward and backward of one BatchNorm layer, its plan, and torch's."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    up = rng.standard_normal(shape).astype(np.float32)
    bn = (gc.nn.BatchNorm1d if len(shape) < 4 else gc.nn.BatchNorm2d)(shape[1])
    p = {"weight": rng.uniform(0.5, 2, shape[1]).astype(np.float32),
         "bias": rng.standard_normal(shape[1]).astype(np.float32)}

    @gc.compile
    def f(p, x, state):
        def loss(p, x):
            y, new = bn.apply(p, x, state=state)
            return gc.sum(y * up), new
        (value, new), grads = gc.value_and_grad(loss, argnums=(0, 1), has_aux=True)(p, x)
        return value, grads, new
    got = f(p, x, bn.state())
    plan = f.plan_for(p, x, bn.state())

    t = torch.nn.BatchNorm1d(shape[1]) if len(shape) < 4 else torch.nn.BatchNorm2d(shape[1])
    t = t.double()
    with torch.no_grad():
        t.weight.copy_(torch.tensor(p["weight"]))
        t.bias.copy_(torch.tensor(p["bias"]))
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    (t(tx) * torch.tensor(up.astype(np.float64))).sum().backward()
    want = {"dx": tx.grad.numpy(), "weight": t.weight.grad.numpy(),
            "bias": t.bias.grad.numpy(), "running_mean": t.running_mean.numpy(),
            "running_var": t.running_var.numpy()}
    return got, plan, want


@pytest.mark.parametrize("shape", [(16, 8, 6, 6), (2048, 256), (5, 3)])
def test_training_step_runs_the_kernels_with_torchs_values(shape):
    (_, (dp, dx), new), plan, want = _step(shape)
    kernels = [line.split("(")[0].strip() for line in plan.source.splitlines()
               if "_jit.batch" in line]
    assert kernels == ["_jit.batch_moments", "_jit.batch_norm", "_jit.batch_norm_grads"]
    assert "np.add.reduce" not in plan.source.split("_jit.batch_norm(")[0]
    for name, got in (("dx", dx), ("weight", dp["weight"]), ("bias", dp["bias"]),
                      ("running_mean", new["running_mean"]),
                      ("running_var", new["running_var"])):
        scale = np.abs(want[name]).max()
        assert np.abs(np.asarray(got, np.float64) - want[name]).max() <= 2e-6 * scale, name


@pytest.mark.parametrize("shape", [(64, 24, 25), (1200, 230, 1)])  # by channel, by rows
def test_kernels_bits_do_not_depend_on_the_thread_count(shape):
    rng = np.random.default_rng(1)
    x, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    w, b = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        y, dx = np.empty_like(x), np.empty_like(x)
        sums, moments = np.empty((2, shape[1]), np.float32), np.empty((2, shape[1]), np.float32)
        jit.batch_norm(x, w, b, 1e-5, y)
        jit.batch_norm_grads(x, w, g, 1e-5, dx, sums)
        jit.batch_moments(x, moments)
        results.append((y, dx, sums, moments))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_rows_kernels_keep_a_far_off_mean():
    """The rows kernels' one-pass variance is of values shifted by the channel's first one:
    a mean 1e4 spreads off zero loses nothing (an unshifted float32 sum of squares would)."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((1200, 230, 1)) + 1e4).astype(np.float32)
    moments = np.empty((2, 230), np.float32)
    jit.batch_moments(x, moments)
    x64 = x.astype(np.float64)[..., 0]
    np.testing.assert_allclose(moments[0], x64.mean(0), rtol=1e-7)
    np.testing.assert_allclose(moments[1], x64.var(0), rtol=1e-5)
