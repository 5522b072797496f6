"""Review s22c: the activations, transformer layers, gc.map and sample --dtype against torch."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional


@pytest.mark.parametrize("name", ["softshrink", "hardshrink", "hardswish"])
def test_shrinks_and_hardswish_at_nan_and_inf_are_torchs(name):
    # softshrink/hardshrink(NaN) gave 0 (torch: NaN); hardswish's gradient at +-inf was NaN
    # (torch: 0 and 1) from its unselected middle piece, inf * 0
    x = np.array([-np.inf, -50.0, -0.5, 0.5, 50.0, np.inf, np.nan])
    ours, theirs = getattr(gc, name), getattr(TF, name)
    t = torch.tensor(x, requires_grad=True)
    out = theirs(t)
    out.sum().backward()
    want = out.detach().numpy()
    if name == "hardswish":  # torch's -inf * 0 = NaN at -inf; graphc's is the limit, 0
        want[0] = 0.0
    for got in (ours(x), gc.compile(ours)(x)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-15, atol=0)
    with np.errstate(invalid="ignore"):
        g = gc.grad(lambda x: gc.sum(ours(x)))(x)
    np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=1e-15, atol=0)


def test_load_torch_state_dict_takes_half_tensors_and_names_a_non_dict():
    # a bfloat16/float16 torch state raised TypeError (numpy has no bfloat16); a list raised
    # AttributeError
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16):
        theirs = torch.nn.Linear(4, 3).to(dtype)
        ours = gc.nn.Linear(4, 3)
        ours.load_torch_state_dict(theirs.state_dict())
        np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().float().numpy().T)
        np.testing.assert_array_equal(ours.bias.data, theirs.bias.detach().float().numpy())
    assert_one_line_error(lambda: ours.load_torch_state_dict([1, 2]),
                          "load_torch_state_dict: state must be a dict", "test_review_s22c.py")


def test_map_errors_say_map():
    # a non-function f raised TypeError; the xs errors said scan and suggested scan's length=
    xs = np.zeros((3, 2))
    assert_one_line_error(lambda: gc.map(3, xs), "map: f must be a function, got int",
                          "test_review_s22c.py")
    assert_one_line_error(lambda: gc.map(lambda x: x, None), "map: xs has no arrays",
                          "test_review_s22c.py")
    assert_one_line_error(lambda: gc.map(lambda x: x, np.float64(1.0)),
                          "map: every leaf of xs needs a leading axis", "test_review_s22c.py")
    assert_one_line_error(lambda: gc.map(lambda p: p[0], (xs, np.zeros((4,)))),
                          "map: the leaves of xs disagree on the leading axis' length: [3, 4]",
                          "test_review_s22c.py")


def test_transformer_layer_takes_a_function_as_activation_as_torch_does():
    # torch takes a unary callable (F.gelu, torch.tanh); graphc refused anything but a Module
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=torch.tanh)
    theirs = theirs.double()
    ours = gc.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=gc.tanh,
                                         dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).normal(size=(5, 2, 8))
    want = theirs(torch.tensor(x)).detach().numpy()
    for got in (ours(x), gc.compile(lambda x: ours(x))(x)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert_one_line_error(lambda: gc.nn.TransformerDecoderLayer(8, 2, activation="tanh"),
                          "activation must be 'relu', 'gelu', a Module or a function",
                          "test_review_s22c.py")


def test_elu_family_and_prelu_take_scalars_as_torch_takes_0d_tensors():
    # gc.elu(-2.0) failed with "gt(f32[], i64[])" (x > 0 compared a weak float with a weak
    # int); gc.prelu of a 0-d x with a (1,) weight gave shape (1,) (torch: 0-d)
    for name in ("elu", "selu", "celu"):  # a Python float computes in float32
        want = getattr(TF, name)(torch.tensor(-2.0, dtype=torch.float64)).item()
        np.testing.assert_allclose(float(getattr(gc, name)(-2.0)), want, rtol=1e-6)
    x, w = np.array(-2.0), np.array([0.25])
    want = TF.prelu(torch.tensor(x), torch.tensor(w)).numpy()
    for got in (gc.prelu(x, w), gc.compile(gc.prelu)(x, w), gc.nn.PReLU(dtype="float64")(x)):
        assert np.shape(got) == want.shape == ()
        np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize("make, message", [
    (lambda: gc.nn.ELU("a"), "elu: alpha must be a number, got 'a'"),
    (lambda: gc.nn.CELU(None), "celu: alpha must be a number, got None"),
    (lambda: gc.nn.Hardtanh(None), "Hardtanh: min_val must be a number, got None"),
    (lambda: gc.nn.Softshrink("a"), "softshrink: lambd must be a number"),
    (lambda: gc.nn.Hardshrink([1]), "hardshrink: lambd must be a number"),
    (lambda: gc.nn.Softmax(None), "axis must be an int, got None"),
    (lambda: gc.nn.GLU("a"), "glu: dim must be an int, got 'a'"),
])
def test_activation_settings_that_are_not_numbers_are_one_line(make, message):
    # they raised float()'s ValueError or a comparison's TypeError
    x = np.zeros((2, 4))
    assert_one_line_error(lambda: make()(x), message, "test_review_s22c.py")


def test_load_torch_state_dict_says_a_transposed_weights_shape_in_torchs_layout():
    # Linear(3, 4) given torch's Linear(4, 3) weight (3, 4) said "weight has shape (4, 3),
    # the model's is (3, 4)": the user's tensor is (3, 4), and torch's model wants (4, 3)
    theirs = torch.nn.Linear(4, 3)
    assert_one_line_error(lambda: gc.nn.Linear(3, 4).load_torch_state_dict(theirs.state_dict()),
                          "load_torch_state_dict: weight has shape (3, 4), the model's is "
                          "(4, 3) in torch's layout", "test_review_s22c.py")


@pytest.mark.parametrize("name", ["hardsigmoid", "softshrink", "mish", "softsign"])
def test_activations_of_a_bfloat16_numpy_array_stay_bfloat16_as_compiled(name):
    # eagerly, hardsigmoid and softshrink of a bfloat16 numpy array gave float32 (numpy's
    # own `x * 0.5` promotes), the compiled plan bfloat16
    from ir.types import as_dtype
    x = np.linspace(-4, 4, 9).astype(as_dtype("bfloat16"))
    f = getattr(gc, name)
    eager, compiled = np.asarray(f(x)), np.asarray(gc.compile(f)(x))
    assert eager.dtype == compiled.dtype == x.dtype
    want = getattr(TF, name)(torch.tensor(x.astype(np.float32)).bfloat16()).float().numpy()
    np.testing.assert_allclose(eager.astype(np.float32), want, atol=8e-3)


def test_prelu_of_numpy_arrays_of_two_dtypes_is_refused_eagerly_as_compiled():
    # eagerly numpy's `x * weight` promoted float64 x and a float32 weight; compiled refused
    x, w = np.array([[-1.0, 2.0]]), np.array([0.25], np.float32)
    for f in (gc.prelu, gc.compile(gc.prelu)):
        assert_one_line_error(lambda: f(x, w), "operands must have one dtype",
                              "test_review_s22c.py")
