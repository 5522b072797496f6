"""nn.AdaptiveLogSoftmaxWithLoss against torch's in float64: parameter names (its state dict
loads), forward's (output, loss), log_prob, predict, gradients w.r.t. the input and every
parameter, eagerly and compiled; the refusals of bad cutoffs and targets."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="PyTorch is the reference")
HERE = "test_adaptive_softmax.py"


def _pair(in_features=8, n_classes=10, cutoffs=(3, 6), **settings):
    torch.manual_seed(0)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, list(cutoffs),
                                                 **settings).double()
    ours = gc.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, **settings,
                                            dtype="float64")
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    ours.load_torch_state_dict(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    return ours, theirs


@pytest.mark.parametrize("settings", [{}, {"div_value": 2.0, "head_bias": True},
                                      {"cutoffs": (1,), "n_classes": 3},
                                      {"cutoffs": (2, 4, 7), "div_value": 1.5}])
def test_values_and_gradients_match_torch(settings):
    ours, theirs = _pair(**settings)
    n_classes = theirs.n_classes
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 8))
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, 9)])[:9]
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt, torch.tensor(y))
    expected.loss.backward()
    xg = gc.tensor(x, requires_grad=True)
    got = ours(xg, y)
    assert got._fields == ("output", "loss")
    np.testing.assert_allclose(got.output.data, expected.output.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(got.loss.data, expected.loss.item(), rtol=1e-12)
    got.loss.backward()
    np.testing.assert_allclose(xg.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        expected_grad = theirs_params[name].grad.numpy()  # (a Linear's weight: (in, out) here)
        np.testing.assert_allclose(p.grad, expected_grad.T if name.endswith("weight") else
                                   expected_grad, rtol=1e-10, atol=1e-14, err_msg=name)
    compiled = gc.compile(lambda a, b: ours(a, b).loss)(x, y)
    np.testing.assert_allclose(np.asarray(getattr(compiled, "data", compiled)),
                               expected.loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.log_prob(x).data,
                               theirs.log_prob(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(ours.predict(x).data, theirs.predict(torch.tensor(x)).numpy())


def test_one_row_with_a_0d_target():
    ours, theirs = _pair()
    x = np.random.default_rng(2).normal(size=8)
    got, expected = ours(x, np.int64(7)), theirs(torch.tensor(x), torch.tensor(7))
    assert got.output.shape == () and got.loss.shape == ()
    np.testing.assert_allclose(got.output.data, expected.output.item(), rtol=1e-12)
    assert ours.log_prob(x).shape == (10,)


def test_traced_targets_out_of_range_give_nan():
    ours, _ = _pair()
    x = np.random.default_rng(3).normal(size=(2, 8))
    out = gc.compile(lambda a, b: ours(a, b).output)(x, np.array([10, 2]))
    out = np.asarray(getattr(out, "data", out))
    assert np.isnan(out[0]) and np.isfinite(out[1])


@pytest.mark.parametrize("call, message", [
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, []),
     "AdaptiveLogSoftmaxWithLoss: cutoffs should be a sequence of length larger than 0"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [6, 3]),
     "cutoffs should be a sequence of unique, positive integers sorted in an increasing order"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3, 10]),
     "each value is between 1 and n_classes-1 (9), got [3, 10]"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [0, 3]), "got [0, 3]"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3, 3]), "got [3, 3]"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [2.5]), "got [2.5]"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(np.zeros((2, 8), np.float32),
                                                          np.array([1, 10])),
     "Target values should be in [0, 9], but values in range [1, 10] were found"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(np.zeros((2, 8), np.float32),
                                                          np.array([1.0, 2.0])),
     "AdaptiveLogSoftmaxWithLoss: target must hold integer classes, got float64"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(np.zeros((2, 8), np.float32),
                                                          np.array([1, 2, 3])),
     "Input and target should have the same size in the batch dimension (2 and 3)"),
    (lambda: gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(np.zeros((2, 5), np.float32),
                                                          np.array([1, 2])),
     "AdaptiveLogSoftmaxWithLoss: input must be (N, 8) or (8,), got shape (2, 5)"),
])
def test_bad_arguments_are_one_line(call, message):
    assert_one_line_error(call, message, HERE)


def test_whole_float_cutoffs_are_taken_as_torch_s():
    assert gc.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3.0]).cutoffs == [3, 10]
