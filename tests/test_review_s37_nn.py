"""Session 37's fixes of graphc's torch.nn-like layers (graphc/nn.py and the layers it
exposes); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch")

HERE = "test_review_s37_nn.py"


# ---- 1. torch keywords: divisor_override, proj_size, and unknown ones -------------------------
@pytest.mark.parametrize("settings", [
    dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False,
         divisor_override=-2),
    dict(kernel_size=2, divisor_override=3),
])
def test_avg_pool2d_divisor_override_as_torch(settings):
    """gc.nn.AvgPool2d(2, divisor_override=3) raised Python's TypeError (and
    gc.avg_pool2d had no divisor_override): now each window's sum is divided by it, whatever
    the padding and count_include_pad, values and gradients as torch's, batched or not."""
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    layer, reference = gc.nn.AvgPool2d(**settings), torch.nn.AvgPool2d(**settings)
    tx = torch.tensor(x, requires_grad=True)
    ty = reference(tx)
    (ty * ty).sum().backward()
    np.testing.assert_allclose(np.asarray(layer(x)), ty.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    grad = gc.grad(lambda v: (layer(v) * layer(v)).sum())(x)
    np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(x[0])), ty.detach().numpy()[0], rtol=1e-6,
                               atol=1e-6)
    compiled = gc.compile(lambda v: layer(v))
    np.testing.assert_allclose(np.asarray(compiled(x)), ty.detach().numpy(), rtol=1e-6,
                               atol=1e-6)


def test_avg_pool2d_refuses_a_zero_divisor_override():
    """torch refuses divisor_override=0 ("divisor must be not zero"); graphc's now too, in one
    line, where before it did not take the keyword at all."""
    x = np.ones((1, 1, 4, 4), np.float32)
    assert_one_line_error(lambda: gc.avg_pool2d(x, 2, divisor_override=0),
                          "divisor_override must be a nonzero int", HERE)


@pytest.mark.parametrize("make, layer, keyword", [
    (lambda: gc.nn.AvgPool1d(2, divisor_override=3), "AvgPool1d", "divisor_override"),
    (lambda: gc.nn.Linear(2, 3, device="cpu"), "Linear", "device"),
    (lambda: gc.nn.ReLU(inplce=True), "ReLU", "inplce"),
    (lambda: gc.nn.Sequential(foo=1), "Sequential", "foo"),
    (lambda: gc.nn.GRU(4, 8, proj_size=2), "GRU", "proj_size"),
])
def test_an_unknown_keyword_of_a_layer_is_one_line_naming_layer_and_keyword(make, layer,
                                                                           keyword):
    """A keyword a class-based layer does not take raised Python's TypeError naming an
    internal __init__ (`_AvgPool.__init__() got an unexpected keyword argument`); now one
    GraphcError line naming the layer the user built, the keyword and the layer's keywords."""
    assert_one_line_error(make, f"gc.nn.{layer}: unknown keyword argument {keyword!r}", HERE)


def test_lstm_proj_size_was_refused_in_one_line_and_a_users_module_keeps_type_error():
    """(Before LSTM took proj_size) it raised Python's TypeError; the one-line refusal is
    graphc's layers' own: a user's Module subclass's __init__ is left as Python (and torch)
    have it, and the layers' signatures stay inspectable."""
    assert_one_line_error(lambda: gc.nn.RNN(4, 8, proj_size=2),
                          "gc.nn.RNN: unknown keyword argument 'proj_size'", HERE)

    class Mine(gc.nn.Module):
        def __init__(self, width):
            self.width = width

    with pytest.raises(TypeError):
        Mine(width=2, depth=3)
    import inspect
    assert list(inspect.signature(gc.nn.Linear).parameters)[:2] == ["in_features",
                                                                      "out_features"]
