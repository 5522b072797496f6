"""torch.nn.functional's other activations (ir/ops/activations.py) and their modules
(graphc/activation_layers.py): values and gradients against torch in float64, at the kinks
too (the gradient torch's backward gives at x = 0, +-3, 6 and the shrink thresholds)."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

# the kinks of every function below, and values either side and far out
X = np.array([-50.0, -7.0, -3.0, -2.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.5, 3.0,
              5.0, 6.0, 7.0, 50.0])

CASES = {  # name: (graphc, torch)
    "elu": (lambda x: gc.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    "selu": (gc.selu, TF.selu),
    "celu": (lambda x: gc.celu(x, 1.3), lambda x: TF.celu(x, 1.3)),
    "relu6": (gc.relu6, TF.relu6),
    "hardtanh": (lambda x: gc.hardtanh(x, -2.5, 3.0), lambda x: TF.hardtanh(x, -2.5, 3.0)),
    "hardsigmoid": (gc.hardsigmoid, TF.hardsigmoid),
    "hardswish": (gc.hardswish, TF.hardswish),
    "mish": (gc.mish, TF.mish),
    "softsign": (gc.softsign, TF.softsign),
    "softshrink": (lambda x: gc.softshrink(x, 0.5), lambda x: TF.softshrink(x, 0.5)),
    "hardshrink": (lambda x: gc.hardshrink(x, 0.5), lambda x: TF.hardshrink(x, 0.5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_gradients_match_torch_at_the_kinks(name):
    ours, theirs = CASES[name]
    t = torch.tensor(X, requires_grad=True)
    out = theirs(t)
    out.sum().backward()
    np.testing.assert_allclose(ours(X), out.detach().numpy(), rtol=3e-7, atol=1e-15)
    np.testing.assert_allclose(gc.compile(ours)(X), ours(X), rtol=1e-14, atol=1e-15)
    g = gc.grad(lambda x: gc.sum(ours(x)))(X)
    assert np.isfinite(g).all()  # no inf * 0 from a piece that is not selected
    # (torch's float64 celu and hardsigmoid gradients use float32 constants: 1e-7 apart;
    # tests/opcases.py checks these gradients against finite differences to 1e-6)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=3e-7, atol=1e-15)


def test_glu_and_prelu_match_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 6))
    t = torch.tensor(x, requires_grad=True)
    TF.glu(t, 1).square().sum().backward()
    np.testing.assert_allclose(gc.glu(x, 1), TF.glu(torch.tensor(x), 1).numpy(), rtol=1e-14)
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(gc.square(gc.glu(x, 1))))(x),
                               t.grad.numpy(), rtol=1e-12)
    theirs = torch.nn.PReLU(4, 0.1).double()
    ours = gc.nn.PReLU(4, 0.1, dtype="float64")
    with torch.no_grad():
        theirs.weight.uniform_(-0.5, 0.5)
    ours.load_torch_state_dict(theirs.state_dict())
    t = torch.tensor(x, requires_grad=True)
    theirs(t).square().sum().backward()
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-14)
    g_params, g_x = gc.grad(lambda p, x: gc.sum(gc.square(ours.apply(p, x))),
                            argnums=(0, 1))(ours.params(), x)
    np.testing.assert_allclose(g_x, t.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g_params["weight"], theirs.weight.grad.numpy(), rtol=1e-12)


def test_modules_compute_their_functions_and_guard_their_settings():
    x = X.astype(np.float32)
    for name, module, fn in [("ELU", gc.nn.ELU(0.5), lambda x: TF.elu(x, 0.5)),
                             ("Hardtanh", gc.nn.Hardtanh(min_val=-2.0), lambda x:
                              TF.hardtanh(x, -2.0, 1.0)),
                             ("Softmax", gc.nn.Softmax(0), lambda x: TF.softmax(x, 0)),
                             ("LogSoftmax", gc.nn.LogSoftmax(0), lambda x: TF.log_softmax(x, 0)),
                             ("GLU", gc.nn.GLU(), lambda x: TF.glu(x[:16], -1)),
                             ("Mish", gc.nn.Mish(), TF.mish)]:
        operand = x[:16] if name == "GLU" else x  # (GLU halves its input)
        np.testing.assert_allclose(module(operand), fn(torch.tensor(x)).numpy(), rtol=2e-6,
                                   atol=1e-6, err_msg=name)
    elu = gc.nn.ELU(1.0)
    f = gc.compile(lambda x: elu(x))
    first = np.asarray(f(x))
    elu.alpha = 0.2  # a plan traced with the old alpha is not reused
    np.testing.assert_allclose(f(x), TF.elu(torch.tensor(x), 0.2).numpy(), rtol=1e-6)
    assert not np.allclose(first, np.asarray(f(x)))


def test_module_dict_names_and_orders_its_modules():
    d = gc.nn.ModuleDict({"enc": gc.nn.Linear(3, 4), "act": gc.nn.ReLU()})
    d["dec"] = gc.nn.Linear(4, 2)
    assert d.keys() == ["enc", "act", "dec"] and len(d) == 3 and "act" in d
    assert [n for n, _ in d.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight",
                                                    "dec.bias"]
    x = np.ones((1, 3), np.float32)
    y = x
    for _, layer in d.items():
        y = layer(y)
    assert np.asarray(y).shape == (1, 2)
    f = "test_activations.py"
    assert_one_line_error(lambda: d.__setitem__("train", gc.nn.ReLU()),
                          "the key 'train' is an attribute of the dict itself", f)
    assert_one_line_error(lambda: d.__setitem__("x", 3), "'x' is an int, not a Module", f)


def test_bad_settings_give_one_line():
    f = "test_activations.py"
    assert_one_line_error(lambda: gc.glu(np.ones((2, 3)), 1), "glu: dim 1 has size 3", f)
    assert_one_line_error(lambda: gc.hardtanh(np.ones(2), 2.0, 1.0), "min_val 2.0 is above", f)
    assert_one_line_error(lambda: gc.prelu(np.ones((2, 3)), np.ones(4)), "prelu: 4 weights", f)
    assert_one_line_error(lambda: gc.nn.ELU(1.0, False, 2.0), "ELU: takes alpha, inplace", f)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("ours, theirs", [
    (gc.hardswish, TF.hardswish),
    (gc.leaky_relu, TF.leaky_relu),
    (lambda x: gc.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    (gc.nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)),
], ids=["hardswish", "leaky_relu", "leaky_relu_0.2", "LeakyReLU_0.1"])
def test_half_hardswish_and_leaky_relu_are_torchs_bits(ours, theirs, dtype):
    """hardswish of half values rounded each of its three products to half, and leaky_relu
    multiplied by its slope rounded to half first (0.01 is 0.010009765625 in bfloat16): 2
    and 1 ulps off torch's, whose CPU kernels compute in float32 and round once, in about
    one value in eight. Now rounded once: torch's bits over every finite half value in
    [-8, 8], eagerly and compiled."""
    half = torch.bfloat16 if dtype == "bfloat16" else torch.float16
    x = np.arange(-32768, 32768).astype(np.int16).view(dtype)
    x = x[np.abs(x.astype(np.float32)) <= 8]
    want = theirs(torch.tensor(x.astype(np.float32)).to(half)).float().numpy()
    for got in (ours(gc.tensor(x)).data, gc.compile(ours)(x)):
        assert got.dtype.name == dtype
        np.testing.assert_array_equal(got.astype(np.float32), want)


def test_leaky_relu_takes_a_0d_slope_of_any_real_dtype():
    """A 0-d array or tensor slope is the number it holds, as torch's Scalar argument and
    graphc's other settings: a float32 one beside bfloat16 x (a float64 tensor beside
    float32 x) was refused as a mix of dtypes."""
    x = np.array([-1.5, 2.0, -3.25], np.float32)
    for slope in (np.array(0.2, np.float32), gc.tensor(0.2), np.float64(0.2)):
        np.testing.assert_array_equal(gc.leaky_relu(gc.tensor(x), slope).data,
                                      TF.leaky_relu(torch.tensor(x), 0.2).numpy())
        half = gc.leaky_relu(gc.tensor(x.astype("float16")), slope).data
        assert half.dtype == np.float16
        np.testing.assert_array_equal(
            half, TF.leaky_relu(torch.tensor(x).half(), 0.2).numpy())
    # a traced slope (a compiled function's number argument) is still differentiated
    np.testing.assert_allclose(gc.grad(lambda s: gc.sum(gc.leaky_relu(x, s)))(0.2), -4.75)


def test_leaky_relu_refuses_a_slope_that_is_not_one_number_as_torch():
    """torch's negative_slope is one number ("must be Number, not Tensor" for one of shape
    (1,)); graphc's broadcast a slope of shape (1,) or (3,) against x, a slope per element
    (x of shape () came back of shape (3,)), eager, compiled and on the tape. Now one line
    naming negative_slope, as for a list, which was 'cannot use a list as a tensor operand';
    a 0-d one, traced or vmapped (per example 0-d) included, is taken as before."""
    x = np.array([-1.5, 2.0, -3.25])
    with pytest.raises(TypeError, match="negative_slope"):
        TF.leaky_relu(torch.tensor(x), torch.tensor([0.2]))
    for slope in (np.array([0.2]), np.array([0.1, 0.2, 0.3]), torch.tensor([0.2]),
                  gc.tensor(np.array([0.2]), requires_grad=True)):
        shape = tuple(slope.shape)
        for x_of in (lambda: x, lambda: gc.tensor(x), lambda: x.astype(np.float16)):
            assert_one_line_error(
                lambda: gc.leaky_relu(x_of(), slope),
                f"leaky_relu: negative_slope must be a number, got a value of shape {shape}",
                "test_activations.py")
        if not isinstance(slope, torch.Tensor):
            assert_one_line_error(
                lambda: gc.compile(gc.leaky_relu)(x, slope),
                f"leaky_relu: negative_slope must be a number, got a value of shape {shape}",
                "test_activations.py")
    for bad in ([0.2], "0.2", None):
        assert_one_line_error(lambda: gc.leaky_relu(x, bad),
                              f"leaky_relu: negative_slope must be a number, got {bad!r}",
                              "test_activations.py")
    want = TF.leaky_relu(torch.tensor(x), 0.2).numpy()
    for got in (gc.leaky_relu(x, np.array(0.2)).data, gc.compile(gc.leaky_relu)(x, 0.2),
                gc.vmap(lambda s: gc.leaky_relu(x, s))(np.array([0.1, 0.2]))[1].data):
        np.testing.assert_array_equal(got, want)


def test_leaky_relu_slope_operands_of_xs_half_dtype_and_requiring_grad():
    """Review of a189c76: a traced slope of x's own half dtype (a compiled function's float16
    0-d argument, a vmapped slope) met x's float32 copy and was refused as a mix of dtypes,
    naming an f32 operand the user never gave (it was taken before); and a 0-d tensor slope
    that requires grad was read as a number, so the tape dropped its gradient silently
    (graphc.grad of a traced slope gives it). Now both are operands, the first rounded once
    as torch's with that slope's value."""
    x = np.array([-1.5, 2.0, -3.25], np.float32)
    x16, s16 = x.astype(np.float16), np.array(0.2, np.float16)
    want = TF.leaky_relu(torch.tensor(x16), float(s16)).numpy()
    np.testing.assert_array_equal(gc.compile(gc.leaky_relu)(x16, s16), want)
    slopes = np.array([0.1, 0.2], np.float16)
    np.testing.assert_array_equal(gc.vmap(lambda s: gc.leaky_relu(x16, s))(slopes)[1], want)
    for dtype in ("float32", "float16"):
        s = gc.tensor(np.array(0.2, dtype), requires_grad=True)
        gc.sum(gc.leaky_relu(gc.tensor(x.astype(dtype)), s)).backward()
        assert float(s.grad) == -4.75


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_leaky_relu_slope_operand_of_another_dtype_compiled_as_eager(dtype):
    """A 0-d slope of another real dtype (np.array(0.1, np.float64), float16, int64) passed
    to a compiled function is traced, an operand: it met x (or x's float32 copy for a half
    x) as a mix of dtypes and was refused ('mul(f32[6], f64[]): operands must have one
    dtype'), where eager mode takes it as the number it holds. Now it is cast to the dtype x
    is computed in, as torch's Scalar slope: torch's values and x's dtype, both modes; a
    slope that requires grad keeps its gradient, in its own dtype."""
    half = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype, torch.float32)
    x = (np.arange(-12, 12, dtype=np.float32) / 3).astype(dtype)
    tx = torch.tensor(x.astype(np.float32)).to(half)
    for slope in (np.array(0.1, np.float64), np.array(0.1, np.float16),
                  np.array(0.1, np.float32), np.array(2, np.int64)):
        want = TF.leaky_relu(tx, negative_slope=slope.item()).float().numpy()
        for got in (gc.leaky_relu(gc.tensor(x), slope).data,
                    gc.compile(gc.leaky_relu)(x, slope),
                    gc.compile(lambda x, s: gc.leaky_relu(x, negative_slope=s))(x, slope)):
            assert got.dtype.name == dtype
            np.testing.assert_array_equal(got.astype(np.float32), want)
    # the slope's gradient: the sum of the negative x, in the slope's float64
    s = gc.tensor(np.array(0.1, np.float64), requires_grad=True)
    gc.sum(gc.leaky_relu(gc.tensor(x), s)).backward()
    assert s.grad.dtype == np.float64
    want = float(np.sum(x.astype(np.float32)[x.astype(np.float32) < 0]))
    np.testing.assert_allclose(float(s.grad), want, rtol=1e-6)
    got = gc.compile(gc.grad(lambda s: gc.sum(gc.leaky_relu(x, s))))(np.array(0.1))
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_float32_hardsigmoid_near_minus_3_is_torchs_bits():
    """hardsigmoid computed x / 6 + 1/2, which cancels near x = -3: float32 x = -2.995 gave
    0.00083333254 where torch's (x + 3) / 6 gives 0.00083335239 (341 ulps), and a value
    just above -3 came out up to half its size off. Now torch's order of operations: its
    bits over [-3.01, -2.9] and [-4, 4], eager and compiled, float32 and float16."""
    x = np.concatenate([np.linspace(-3.01, -2.9, 2001), np.linspace(-4, 4, 3001)])
    for dtype in ("float32", "float16"):
        xs = x.astype(dtype)
        want = TF.hardsigmoid(torch.tensor(xs)).numpy()
        for got in (gc.hardsigmoid(xs), gc.compile(gc.hardsigmoid)(xs),
                    gc.nn.Hardsigmoid()(xs)):
            got = np.asarray(got)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("ours, theirs", [
    (lambda x: gc.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    (lambda x: gc.celu(x, 1.3), lambda x: TF.celu(x, 1.3)),
    (lambda x: gc.celu(x, -1.3), lambda x: TF.celu(x, -1.3)),
    (lambda x: gc.softplus(x, 2.0, 10.0), lambda x: TF.softplus(x, 2.0, 10.0)),
    (gc.nn.CELU(0.5), torch.nn.CELU(0.5)),
], ids=["elu_0.7", "celu_1.3", "celu_-1.3", "softplus_2", "CELU_0.5"])
def test_half_elu_celu_and_softplus_are_rounded_once(ours, theirs, dtype):
    """elu, celu and softplus (beta != 1) of half values rounded each step to half (elu's
    expm1, then alpha rounded to half; celu's x / alpha before the exp): 2 ulps off torch's
    (whose kernels compute in float32 and round once) in a fifth of the values, and celu
    with a negative alpha up to 55 ulps (bfloat16). Now rounded once: within 1 ulp of
    torch's everywhere (expm1's own last bit in float32), its bits in 99.9% of the finite
    half values in [-30, 30], eager and compiled, of x's dtype."""
    half = torch.bfloat16 if dtype == "bfloat16" else torch.float16
    x = np.arange(-32768, 32768).astype(np.int16).view(np.dtype(dtype))
    x = x[np.abs(x.astype(np.float32)) <= 30]
    want = theirs(torch.tensor(x.astype(np.float32)).to(half)).float().numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # (float16 celu(-30, -1.3) is inf)
        ulp = np.spacing(np.abs(want).astype(x.dtype)).astype(np.float64)
        results = (np.asarray(ours(x)), gc.compile(ours)(x))
    want = want.astype(np.float64)
    for got in results:
        assert got.dtype.name == dtype
        got = got.astype(np.float64)
        same = got == want  # (celu of a negative alpha overflows to inf, as torch's)
        with np.errstate(invalid="ignore"):  # (inf - inf, where same holds)
            assert np.all(same | (np.abs(got - want) <= ulp))
        assert np.mean(same) >= 0.999


def test_hardtanh_layer_refuses_its_bounds_where_built_and_prelu_keeps_its_count():
    """gc.nn.Hardtanh(2.0, 1.0) was built (torch's constructor refuses it: 'max_val (1.0)
    must be greater than min_val (2.0)') and failed only at its first call, naming the
    function. Now refused where it is built, in one line naming the layer, as torch's (equal
    bounds too); bounds set later are still checked at the call. PReLU keeps torch's
    num_parameters attribute, which torch code reads."""
    f = "test_activations.py"
    for low, high in ((2.0, 1.0), (1.0, 1.0)):
        with pytest.raises(AssertionError, match="must be greater than min_val"):
            torch.nn.Hardtanh(low, high)
        assert_one_line_error(lambda: gc.nn.Hardtanh(low, high),
                              f"Hardtanh: max_val ({high}) must be greater than min_val "
                              f"({low})", f)
    assert_one_line_error(lambda: gc.nn.Hardtanh(min_val=2.0),
                          "Hardtanh: max_val (1.0) must be greater than min_val (2.0)", f)
    layer = gc.nn.Hardtanh(-2.0, 3.0, True)
    assert repr(layer) == repr(torch.nn.Hardtanh(-2.0, 3.0, True))
    np.testing.assert_array_equal(layer(X), TF.hardtanh(torch.tensor(X), -2.0, 3.0).numpy())
    layer.min_val = 4.0
    assert_one_line_error(lambda: layer(X), "hardtanh: min_val 4.0 is above max_val 3.0", f)
    assert gc.nn.PReLU(3).num_parameters == torch.nn.PReLU(3).num_parameters == 3


def test_a_nan_hardtanh_bound_is_refused_where_torch_gives_nan_everywhere():
    """(s52) torch builds Hardtanh(nan, 1.0) and its hardtanh takes a NaN bound, giving NaN
    for every input (inside the other bound too): no result to match. graphc's layer
    refused it as 'max_val (1.0) must be greater than min_val (nan)', and its hardtanh
    left the NaN bound out (min(x, 1)): both now refuse it in one line naming the bound."""
    f = "test_activations.py"
    x = torch.tensor(X)
    for low, high in ((float("nan"), 1.0), (-1.0, float("nan"))):
        assert torch.isnan(torch.nn.Hardtanh(low, high)(x)).all()
        assert torch.isnan(TF.hardtanh(x, low, high)).all()
    nan = "is NaN, which makes every output NaN (as torch's Hardtanh gives); expected a number"
    assert_one_line_error(lambda: gc.nn.Hardtanh(float("nan"), 1.0), f"Hardtanh: min_val {nan}",
                          f)
    assert_one_line_error(lambda: gc.nn.Hardtanh(max_val=np.array(np.nan)),
                          f"Hardtanh: max_val {nan}", f)
    assert_one_line_error(lambda: gc.hardtanh(gc.tensor(X), float("nan"), 1.0),
                          f"hardtanh: min_val {nan}", f)
    layer = gc.nn.Hardtanh()
    layer.max_val = float("nan")
    assert_one_line_error(lambda: layer(gc.tensor(X)), f"hardtanh: max_val {nan}", f)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hardswish_between_minus_3_and_3_is_torchs_bits(dtype):
    """Review r14 of d97607a (hardsigmoid's torch order): hardswish, which has its own
    formula, multiplied x * (x + 3) by a rounded 1/6 where torch divides by 6: 1 ulp off
    torch's in about a third of the float32 and float64 values in (-3, 3). (At x >= 3 torch
    gives x * 6 / 6, 1 ulp from x at times, and inf past float's max / 6; graphc's is x.)"""
    x = np.linspace(-3, 3, 60001)[1:-1].astype(dtype)
    want = TF.hardswish(torch.tensor(x)).numpy()
    for got in (gc.hardswish(x), gc.compile(gc.hardswish)(x), gc.nn.Hardswish()(x)):
        got = np.asarray(got)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
