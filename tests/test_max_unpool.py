"""gc.max_unpool1d/2d/3d and gc.nn.MaxUnpool1d/2d/3d against torch's in float64: values and
gradients, overlapping windows (an index twice), output_size, eager and compiled, errors
(ir/ops/conv_extra.py)."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")
TF = torch.nn.functional


@pytest.mark.parametrize("spatial, shape, kernel, stride, padding, output_size", [
    (2, (2, 3, 6, 8), 2, 2, 0, None),
    (2, (2, 2, 5, 5), 3, 1, 0, None),            # overlapping: indices repeat
    (2, (1, 2, 7, 6), 3, 2, 0, (7, 6)),          # output_size picks the input's size back
    (2, (3, 6, 6), 2, 2, 1, None),               # no batch axis, padding
    (2, (2, 2, 6, 4), (2, 1), (2, 1), 0, None),  # per-axis settings
    (1, (2, 3, 9), 3, 2, 0, (9,)),
    (1, (3, 8), 2, None, 0, None),
    (3, (2, 2, 4, 6, 4), 2, 2, 0, None),
    (3, (1, 2, 5, 4, 5), (3, 2, 3), (1, 2, 1), (1, 0, 1), None),  # overlapping, padding
    (3, (2, 5, 7, 6), 3, 2, 1, (5, 7, 6)),       # no batch axis, output_size
])
def test_max_unpool_undoes_max_pool_as_torchs(spatial, shape, kernel, stride, padding,
                                              output_size):
    rng = np.random.default_rng(sum(shape))
    x = torch.tensor(rng.standard_normal(shape))
    pool, unpool_theirs, ours_fn, layer = (
        getattr(TF, f"max_pool{spatial}d"), getattr(TF, f"max_unpool{spatial}d"),
        getattr(gc, f"max_unpool{spatial}d"), getattr(gc.nn, f"MaxUnpool{spatial}d"))
    pooled, idx = pool(x, kernel, stride, padding, return_indices=True)
    pooled = pooled.detach().requires_grad_(True)
    want = unpool_theirs(pooled, idx, kernel, stride, padding, output_size=output_size)
    upstream = rng.standard_normal(tuple(want.shape))
    (want * torch.tensor(upstream)).sum().backward()
    p, i = pooled.detach().numpy(), idx.numpy()

    def loss(p, i):
        return gc.sum(gc.mul(ours_fn(p, i, kernel, stride, padding, output_size), upstream))
    np.testing.assert_array_equal(np.asarray(ours_fn(p, i, kernel, stride, padding,
                                                     output_size)), want.detach().numpy())
    np.testing.assert_array_equal(np.asarray(gc.grad(loss)(p, i)), pooled.grad.numpy())
    step = gc.compile(lambda p, i: (ours_fn(p, i, kernel, stride, padding, output_size),
                                    gc.grad(loss)(p, i)))
    value, grad = step(p, i)
    np.testing.assert_allclose(np.asarray(value), want.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(grad), pooled.grad.numpy(), rtol=1e-15)
    # the layer, as torch's module
    layer = layer(kernel, stride, padding)
    np.testing.assert_array_equal(np.asarray(layer(p, i, output_size)), want.detach().numpy())


@pytest.mark.parametrize("spatial", [2, 3])
def test_graphc_pool_indices_feed_the_unpool(spatial):
    x = np.random.default_rng(3).standard_normal((2, 3) + (8,) * spatial)
    pooled, idx = getattr(gc, f"max_pool{spatial}d")(x, 2, return_indices=True)
    restored = np.asarray(getattr(gc, f"max_unpool{spatial}d")(pooled, idx, 2))
    kept = restored != 0
    assert kept.sum() == pooled.size
    np.testing.assert_array_equal(restored[kept], x[kept])
    np.testing.assert_array_equal(restored, getattr(TF, f"max_unpool{spatial}d")(
        torch.tensor(np.asarray(pooled)), torch.tensor(np.asarray(idx)), 2).numpy())


def test_empty_batch_and_torchs_output_size_lengths():
    x, i = np.zeros((0, 3, 4, 4), np.float32), np.zeros((0, 3, 4, 4), np.int64)
    want = TF.max_unpool2d(torch.tensor(x), torch.tensor(i), 2)
    got = gc.max_unpool2d(x, i, 2)
    assert got.shape == tuple(want.shape) == (0, 3, 8, 8) and got.dtype == np.float32
    assert gc.compile(lambda x, i: gc.max_unpool2d(x, i, 2))(x, i).shape == (0, 3, 8, 8)
    # (N, C, H, W) or (H, W), for a batched or an unbatched x, as torch's
    pooled, idx = gc.max_pool2d(np.random.default_rng(4).standard_normal((3, 4, 4)), 2,
                                return_indices=True)
    for size in ((4, 4), (1, 3, 4, 4)):
        want = TF.max_unpool2d(torch.tensor(np.asarray(pooled)), torch.tensor(np.asarray(idx)),
                               2, output_size=size).numpy()
        np.testing.assert_array_equal(gc.max_unpool2d(pooled, idx, 2, output_size=size), want)
    with pytest.raises(GraphcError, match="output_size must be 2 ints \\(or 4: N, C and"):
        gc.max_unpool2d(pooled, idx, 2, output_size=(3, 4, 4))


@pytest.mark.parametrize("call, message", [
    (lambda p, i: gc.max_unpool2d(p, i[..., :1], 2), "indices must have x's shape"),
    (lambda p, i: gc.max_unpool2d(p, i.astype(np.float64), 2), "indices must be integers"),
    (lambda p, i: gc.max_unpool2d(p[0, 0], i[0, 0], 2), "x must be 4-d or 3-d"),
    (lambda p, i: gc.max_unpool2d(p, i, 2, output_size=(9, 9)),
     "output_size (9, 9) is not reachable"),
    (lambda p, i: gc.max_unpool2d(p, i + 100, 2), "an index is outside the output plane"),
    (lambda p, i: gc.max_unpool2d(p, i, 0), "the output would be empty"),
])
def test_bad_unpool_arguments_are_one_line(call, message):
    pooled, idx = gc.max_pool2d(np.ones((2, 3, 4, 4)), 2, return_indices=True)
    with pytest.raises(GraphcError) as info:
        call(np.asarray(pooled), np.asarray(idx))
    first, *where = str(info.value).splitlines()
    assert message in first and "test_max_unpool.py" in where[0]


@pytest.mark.parametrize("compiled", [False, True])
def test_max_unpool_passes_the_gradient_to_inf_and_nan_values_as_torch(compiled):
    # non-overlapping windows: every value has its own cell, so each gets the output's
    # gradient there whatever its value (it was 0 for inf and NaN)
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    x[0, 0, 1, 2], x[1, 1, 0, 0], x[0, 1, 2, 1] = np.inf, -np.inf, np.nan
    pooled, idx = TF.max_pool2d(torch.tensor(np.pad(x, ((0, 0),) * 2 + ((0, 3),) * 2)),
                                2, return_indices=True)
    pooled = torch.tensor(x).requires_grad_(True)  # any values at the pooled indices
    upstream = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    (TF.max_unpool2d(pooled, idx, 2) * torch.tensor(upstream)).sum().backward()
    want = pooled.grad.numpy()
    assert np.isfinite(want).all() and np.abs(want).min() > 0

    def loss(p):
        return gc.sum(gc.mul(gc.max_unpool2d(p, idx.numpy(), 2), upstream))
    grad = gc.grad(loss)
    got = np.asarray((gc.compile(grad) if compiled else grad)(x))
    np.testing.assert_array_equal(got, want)
