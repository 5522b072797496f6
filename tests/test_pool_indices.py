"""return_indices=True of max_pool1d/2d, adaptive_max_pool1d/2d and their layers against
torch: (out, indices), indices int64, each window's largest value's place h * W + w in its
plane (w along L in 1-d), the first in row-major order on ties, the first element inside x
for a window of -inf throughout (padding never); eager, compiled, batched and unbatched."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
FILE = "test_pool_indices.py"


def _tied(shape, seed=0):
    """Small integers (many ties in every window) and a corner of -inf."""
    x = np.random.default_rng(seed).integers(-3, 3, size=shape).astype(np.float64)
    x[(0,) * (len(shape) - 2) + (slice(0, 5),) * 2 if len(shape) >= 4 else (0, slice(0, 5))] = \
        -np.inf
    return x


def _same(ours, theirs):
    (out, idx), (t_out, t_idx) = ours, theirs
    assert np.asarray(idx).dtype == np.int64
    np.testing.assert_array_equal(np.asarray(out), t_out.numpy().astype(np.asarray(out).dtype))
    np.testing.assert_array_equal(np.asarray(idx), t_idx.numpy())


def _both(f, x):
    """f(x) eagerly and compiled."""
    return [f(x), gc.compile(f)(x)]


POOL_2D = [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1),
           dict(kernel_size=2, stride=2, ceil_mode=True),
           dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1),
                ceil_mode=True)]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("kw", POOL_2D, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_max_pool2d_indices_match_torch(kw, batched):
    x = _tied((2, 3, 9, 8))
    x = x if batched else x[0]
    theirs = TF.max_pool2d(torch.tensor(x), **kw, return_indices=True)
    for ours in _both(lambda a: gc.max_pool2d(a, **kw, return_indices=True), x):
        _same(ours, theirs)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=2,
                                                           ceil_mode=True),
                                dict(kernel_size=2, dilation=3)], ids=["k3", "ceil", "dilated"])
def test_max_pool1d_indices_match_torch(kw, batched):
    x = _tied((2, 3, 13))
    x = x if batched else x[0]
    theirs = TF.max_pool1d(torch.tensor(x), **kw, return_indices=True)
    for ours in _both(lambda a: gc.max_pool1d(a, **kw, return_indices=True), x):
        _same(ours, theirs)


@pytest.mark.parametrize("size", [(4, 3), (3, 5), 1, (None, 3), (2, None), (9, 8), (12, 11),
                                  (0, 2)])
def test_adaptive_max_pool2d_indices_match_torch(size):
    x = _tied((2, 3, 9, 8))
    theirs = TF.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
    for ours in _both(lambda a: gc.adaptive_max_pool2d(a, size, return_indices=True), x):
        _same(ours, theirs)
    unbatched = TF.adaptive_max_pool2d(torch.tensor(x[1]), size, return_indices=True)
    _same(gc.adaptive_max_pool2d(x[1], size, return_indices=True), unbatched)


@pytest.mark.parametrize("size", [1, 3, 5, 13, 20])
def test_adaptive_max_pool1d_indices_match_torch(size):
    x = _tied((2, 3, 13))
    theirs = TF.adaptive_max_pool1d(torch.tensor(x), size, return_indices=True)
    for ours in _both(lambda a: gc.adaptive_max_pool1d(a, size, return_indices=True), x):
        _same(ours, theirs)


def test_integer_inputs_and_gradients_of_the_values():
    """An int64 input (its least value as the padding); the values' gradient is the one
    without return_indices, torch's where nothing ties."""
    xi = np.random.default_rng(1).integers(-50, 50, size=(2, 2, 7, 7))
    _same(gc.max_pool2d(xi, 3, 2, 1, return_indices=True),
          TF.max_pool2d(torch.tensor(xi), 3, 2, 1, return_indices=True))
    # (torch's adaptive pool takes floats only: the same values as float64)
    _same(gc.adaptive_max_pool2d(xi, (3, 4), return_indices=True),
          TF.adaptive_max_pool2d(torch.tensor(xi, dtype=torch.float64), (3, 4),
                                 return_indices=True))
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 8))
    for f, tf in [(lambda a: gc.max_pool2d(a, 3, 2, 1, return_indices=True),
                   lambda t: TF.max_pool2d(t, 3, 2, 1, return_indices=True)),
                  (lambda a: gc.adaptive_max_pool2d(a, (4, 3), return_indices=True),
                   lambda t: TF.adaptive_max_pool2d(t, (4, 3), return_indices=True))]:
        t = torch.tensor(x, requires_grad=True)
        t_out = tf(t)[0]
        u = np.random.default_rng(3).normal(size=tuple(t_out.shape))
        (t_out * torch.tensor(u)).sum().backward()
        grad = gc.grad(lambda a: gc.sum(f(a)[0] * u))
        for g in (grad(x), gc.compile(grad)(x)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14, atol=0)


def test_layers_return_indices_as_torchs():
    """torch's parameter order: MaxPool2d(kernel_size, stride, padding, dilation,
    return_indices, ceil_mode)."""
    x2, x1 = _tied((2, 3, 9, 8)), _tied((2, 3, 13))
    for ours, theirs, x in [
            (gc.nn.MaxPool2d(3, 2, 1, 1, True), torch.nn.MaxPool2d(3, 2, 1, 1, True), x2),
            (gc.nn.MaxPool2d(2, return_indices=True, ceil_mode=True),
             torch.nn.MaxPool2d(2, return_indices=True, ceil_mode=True), x2),
            (gc.nn.MaxPool1d(3, 2, 1, 1, True), torch.nn.MaxPool1d(3, 2, 1, 1, True), x1),
            (gc.nn.AdaptiveMaxPool2d((4, 3), True), torch.nn.AdaptiveMaxPool2d((4, 3), True),
             x2),
            (gc.nn.AdaptiveMaxPool1d(5, return_indices=True),
             torch.nn.AdaptiveMaxPool1d(5, return_indices=True), x1)]:
        for got in _both(ours, x):
            _same(got, theirs(torch.tensor(x)))
    plain = gc.nn.MaxPool2d(3, 2, 1)
    np.testing.assert_array_equal(plain(x2), TF.max_pool2d(torch.tensor(x2), 3, 2, 1).numpy())
    plain.return_indices = True  # a setting read at every call, compiled too
    _same(gc.compile(plain)(x2), TF.max_pool2d(torch.tensor(x2), 3, 2, 1, return_indices=True))


def test_bad_return_indices_give_one_line():
    x = np.zeros((2, 3, 6, 6))
    assert_one_line_error(lambda: gc.max_pool2d(x, 2, return_indices=1),
                          "max_pool2d: return_indices must be True or False", FILE)
    assert_one_line_error(lambda: gc.max_pool1d(x[0], 2, return_indices="no"),
                          "max_pool1d: return_indices must be True or False", FILE)
    assert_one_line_error(lambda: gc.nn.AdaptiveMaxPool1d(2, return_indices=None)(x[0]),
                          "adaptive_max_pool1d: return_indices must be True or False", FILE)


@pytest.mark.parametrize("name, args", [("max_pool1d", (3, 2)), ("adaptive_max_pool1d", (3,)),
                                        ("adaptive_max_pool2d", (1,))])
def test_return_indices_keeps_torchs_tie_rule_for_the_gradient(name, args):
    """With return_indices the values' gradient still goes to the first of tied maxima, as
    torch's (and as without return_indices), at the place the indices name."""
    x = np.array([[[1.0, 3, 3, 2, 5, 5, 5, 0]]])
    if name.endswith("2d"):
        x = x.reshape(1, 1, 2, 4)
    ours, theirs = getattr(gc, name), getattr(torch.nn.functional, name)
    t = torch.tensor(x, requires_grad=True)
    out, index = theirs(t, *args, return_indices=True)
    weights = np.arange(1.0, out.numel() + 1).reshape(tuple(out.shape))
    (out * torch.tensor(weights)).sum().backward()
    grad = gc.grad(lambda x: gc.sum(ours(x, *args, return_indices=True)[0] * weights))(x)
    np.testing.assert_array_equal(np.asarray(grad), t.grad.numpy())
    np.testing.assert_array_equal(np.asarray(ours(x, *args, return_indices=True)[1]),
                                  index.numpy())
