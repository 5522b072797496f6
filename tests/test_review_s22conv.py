"""Review of conv2d / max_pool2d / avg_pool2d and their nn layers (s22conv), against
torch.nn.functional in float64, eager and compiled: each test failed before its fix."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import graphc as gc
from ir.errors import GraphcError
from errorcheck import assert_one_line_error
from test_conv import _compiled, _eager, _value_and_grads_torch


def _value_and_grad(f, x, compiled):
    """f(x) and the gradient of sum(f(x)), eagerly (the tape) or compiled."""
    if compiled:
        return (np.asarray(gc.compile(f)(x)),
                np.asarray(gc.compile(gc.grad(lambda x: gc.sum(f(x))))(x)))
    t = gc.tensor(x, requires_grad=True)
    out = f(t)
    gc.sum(out).backward()
    return np.asarray(out.data), np.asarray(t.grad.data if hasattr(t.grad, "data") else t.grad)


def _torch_value_and_grad(f, x):
    t = torch.tensor(x, requires_grad=True)
    out = f(t)
    out.sum().backward()
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("compiled", [False, True])
def test_max_pool2d_of_minus_inf_gives_no_gradient_to_its_padding(compiled):
    # a window of -inf tied its -inf padding, and max's gradient, split by all its taps,
    # lost the padding's share: 0.25 everywhere here. Each window's 1 goes to its first
    # element inside x, as PyTorch's (session 24; graphc shared it among them before)
    x = np.full((1, 1, 3, 3), -np.inf)
    value, grad = _value_and_grad(lambda x: gc.max_pool2d(x, 2, 2, 1), x, compiled)
    expected, expected_grad = _torch_value_and_grad(lambda x: TF.max_pool2d(x, 2, 2, 1), x)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(expected_grad[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(grad, expected_grad)
    # -inf blocks among finite values, and where the padding is beside -inf
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6))
    x[0, 0, :2, :2] = -np.inf  # the window (0, 0)'s elements inside x: all -inf
    x[1, 2, -1, :] = x[1, 2, :, -1] = -np.inf  # -inf by the padding, windows' maxima finite
    value, grad = _value_and_grad(lambda x: gc.max_pool2d(x, 3, 2, 1), x, compiled)
    expected, expected_grad = _torch_value_and_grad(lambda x: TF.max_pool2d(x, 3, 2, 1), x)
    np.testing.assert_array_equal(value, expected)
    assert expected_grad[0, 0, :2, :2].sum() == 1
    np.testing.assert_array_equal(grad, expected_grad)


F32, F64 = np.zeros((2, 3, 5, 5), np.float32), np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize("call, message", [
    (lambda: gc.conv2d(gc.tensor(F32), gc.tensor(F64)), "conv2d: x is float32 and w float64"),
    (lambda: gc.compile(lambda x, w: gc.conv2d(x, w))(F32, F64),
     "conv2d: x is float32 and w float64"),
    (lambda: gc.compile(lambda x, w, b: gc.conv2d(x, w, b))(F32, F64.astype(np.float32),
                                                            F64[:, 0, 0, 0]),
     "conv2d: x is float32 and b float64"),
    (lambda: gc.nn.Conv2d(3, 4, 3)(gc.tensor(F64)), "conv2d: x is float64 and w float32"),
])
def test_conv2d_of_mixed_dtypes_is_one_error_naming_them(call, message):
    # this failed inside im2col's matmul, naming its internal shapes (f32[18,27]); PyTorch
    # refuses mixed dtypes too
    assert_one_line_error(call, message, "test_review_s22conv.py")


def test_conv2d_of_mixed_dtypes_under_autocast_runs_in_the_half_dtype():
    # float32 and half operands are cast to the half dtype, as torch.autocast's; float64 ones
    # are not (torch's conv2d of float64 x, w and b stays float64 under autocast, and one of
    # float32 x with a float64 w or b is refused: "Input type (Half) and bias type (double)")
    with gc.autocast("float16"):
        out = gc.conv2d(gc.tensor(F32 + 1), gc.tensor((F64 + 1).astype(np.float16)),
                        gc.tensor(np.zeros(4, np.float32)))
        out64 = gc.conv2d(gc.tensor(F32.astype(np.float64) + 1), gc.tensor(F64 + 1),
                          gc.tensor(F64[:, 0, 0, 0]))
    assert out.data.dtype == np.float16 and out64.data.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(out.data), np.full((2, 4, 3, 3), 27))
    np.testing.assert_array_equal(np.asarray(out64.data), np.full((2, 4, 3, 3), 27))

    def mixed():
        with gc.autocast("float16"):
            gc.conv2d(gc.tensor(F32 + 1), gc.tensor(F64 + 1), gc.tensor(F64[:, 0, 0, 0]))
    assert_one_line_error(mixed, "conv2d: x is float32 and w float64: under autocast float64 "
                          "is not cast (as in torch.autocast), so it cannot meet float32",
                          "test_review_s22conv.py")


# (x shape, kernel, stride, padding, dilation of max_pool2d)
CEIL_CASES = [
    ((1, 2, 5, 6), 2, 2, 0, 1),             # one more window below, none right
    ((2, 2, 8, 8), 3, 2, 1, 1),             # one more both ways, over the padding
    ((1, 2, 9, 4), 2, 3, 0, 1),             # H: the extra window would start below x: none
    ((1, 1, 4, 9), (3, 2), (2, 3), 1, 1),
    ((1, 2, 4, 5), 3, 2, 0, 2),             # the dilated kernel (5) overhangs the input (4)
    ((1, 2, 7, 7), 3, 2, 1, 2),
]


@pytest.mark.parametrize("mode", [_eager, _compiled], ids=["eager", "compiled"])
@pytest.mark.parametrize("pool, options", [
    ("max", {}), ("avg", {}), ("max", {"ceil_mode": True}), ("avg", {"ceil_mode": True}),
    ("avg", {"count_include_pad": False}),
    ("avg", {"ceil_mode": True, "count_include_pad": False})])
@pytest.mark.parametrize("xs, kernel, stride, padding, dilation", CEIL_CASES)
def test_pools_ceil_mode_and_count_include_pad_match_torch(mode, pool, options, xs, kernel,
                                                           stride, padding, dilation):
    # ceil_mode and count_include_pad=False were not supported (a TypeError)
    if pool == "avg":
        if dilation != 1:
            return
        tfn, gfn = TF.avg_pool2d, gc.avg_pool2d
    else:
        tfn, gfn = TF.max_pool2d, gc.max_pool2d
        options = dict(options, dilation=dilation)
    x = np.random.default_rng(0).normal(size=xs)
    if dilation == 2 and xs[2] == 4 and not options.get("ceil_mode"):  # the kernel overhangs
        with pytest.raises(RuntimeError, match="Output size is too small"):
            tfn(torch.tensor(x), kernel, stride, padding, **options)
        with pytest.raises(GraphcError, match=r"kernel \(5, 5\) \(dilated\) is larger"):
            mode(lambda x: gfn(x, kernel, stride, padding, **options), [x], 1.0)
        return
    expected, (expected_grad,), weights = _value_and_grads_torch(
        lambda x: tfn(x, kernel, stride, padding, **options), x)
    got, (grad,) = mode(lambda x: gfn(x, kernel, stride, padding, **options), [x], weights)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_pool_layers_take_ceil_mode_and_count_include_pad():
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 7))
    for ours, theirs in [
            (gc.nn.MaxPool2d(3, 2, 1, ceil_mode=True),
             torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
            (gc.nn.AvgPool2d(3, 2, 1, True, False), torch.nn.AvgPool2d(3, 2, 1, True, False))]:
        expected = theirs(torch.tensor(x)).numpy()
        np.testing.assert_allclose(np.asarray(ours(gc.tensor(x)).data), expected, rtol=1e-12)
        f = gc.compile(lambda x: ours(x))
        np.testing.assert_allclose(f(x), expected, rtol=1e-12)
        ours.ceil_mode = False  # a setting read at every call, as in PyTorch: a new plan
        theirs.ceil_mode = False
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).numpy(), rtol=1e-12)


SYMBOLIC_CEIL = [  # (pool, symbolic H, its sizes, kernel, stride, padding, options)
    ("max", "2*h", (4, 6, 8, 10), 3, 2, 1, {}),
    ("max", "2*h", (2, 4, 6), 2, 2, 0, {}),
    ("max", "2*h+1", (3, 5, 7), 3, 2, 1, {"dilation": 2}),
    ("max", "3*h+1", (4, 7, 10), 3, 3, 1, {}),
    ("avg", "2*h", (4, 6, 8, 10), 3, 2, 1, {}),
    ("avg", "2*h", (4, 6, 8), 3, 2, 1, {"count_include_pad": False}),
    ("avg", "3*h+1", (4, 7, 10), 3, 3, 1, {"count_include_pad": False}),
    ("avg", "4*h", (4, 8, 12), 3, 2, 0, {})]


@pytest.mark.parametrize("pool, spec, sizes, kernel, stride, padding, options", SYMBOLIC_CEIL)
def test_ceil_mode_over_a_symbolic_size_matches_torch_at_every_size(pool, spec, sizes, kernel,
                                                                    stride, padding, options):
    """ceil_mode with a stride over a symbolic height was refused outright; where the stride
    divides the size's coefficients (2*h by 2) the window count is one polynomial: one plan
    serves every h, its values and gradients torch's (max and avg, 2-d and 1-d)."""
    gfn, tfn = getattr(gc, f"{pool}_pool2d"), getattr(TF, f"{pool}_pool2d")
    call = lambda F, x: F(x, kernel, stride, padding, ceil_mode=True, **options)  # noqa: E731
    f = gc.compile(gc.value_and_grad(lambda x: gc.sum(gc.sin(call(gfn, x)))),
                   polymorphic_shapes=(("_", "_", spec, "_"),))
    g1, t1 = getattr(gc, f"{pool}_pool1d"), getattr(TF, f"{pool}_pool1d")
    f1 = gc.compile(lambda x: g1(x, kernel, stride, padding, ceil_mode=True, **options),
                    polymorphic_shapes=(("_", "_", spec),))
    for size in sizes:
        x = np.random.default_rng(size).normal(size=(2, 3, size, 5))
        tx = torch.tensor(x, requires_grad=True)
        want = torch.sin(call(tfn, tx)).sum()
        want.backward()
        value, grad = f(x)
        np.testing.assert_allclose(value, want.item(), rtol=1e-12)
        np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(f1(x[:, :, :, 0]), t1(
            torch.tensor(x[:, :, :, 0]), kernel, stride, padding, ceil_mode=True,
            **options).numpy(), rtol=1e-12, atol=1e-12)
    assert len(f._plans) == len(f1._plans) == 1


def test_ceil_mode_over_a_symbolic_size_without_one_polynomial_is_refused():
    f = gc.compile(lambda x: gc.max_pool2d(x, 3, 1, 1, ceil_mode=True),
                   polymorphic_shapes=(("_", "_", "h", "_"),))
    x = np.random.default_rng(2).normal(size=(1, 2, 6, 5))
    np.testing.assert_array_equal(f(x), TF.max_pool2d(torch.tensor(x), 3, 1, 1,
                                                      ceil_mode=True).numpy())
    f = gc.compile(lambda x: gc.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
                   polymorphic_shapes=(("_", "_", "h", "_"),))
    assert_one_line_error(lambda: f(x), "avg_pool2d: ceil_mode has no output size for every "
                          "value of the symbolic size h (kernel 3, stride 2, padding 1, "
                          "dilation 1): floor((h) / 2) is no polynomial: it depends on the "
                          "value of h", "test_review_s22conv.py")
    # the 1-d pools say it under their own name and settings (they named max_pool2d and
    # its (1, k) form)
    f = gc.compile(lambda x: gc.max_pool1d(x, 3, 2, ceil_mode=True),
                   polymorphic_shapes=(("_", "_", "n"),))
    assert_one_line_error(lambda: f(x[:, :, :, 0]), "max_pool1d: no output size for every "
                          "value of the symbolic length n (kernel 3, stride 2, padding 0, "
                          "dilation 1, ceil_mode True): floor((n-2) / 2) is no polynomial",
                          "test_review_s22conv.py")
    f = gc.compile(lambda x: gc.avg_pool1d(x, 5, 1), polymorphic_shapes=(("_", "_", "n"),))
    assert_one_line_error(lambda: f(x[:, :, :, 0]), "avg_pool1d: no output size for every "
                          "value of the symbolic length n (kernel 5, stride 1, padding 0, "
                          "dilation 1, ceil_mode False): whether n-5 >= 0 depends on the "
                          "value of n", "test_review_s22conv.py")
    assert_one_line_error(lambda: gc.avg_pool2d(gc.tensor(x), 2, ceil_mode=1),
                          "avg_pool2d: ceil_mode must be True or False, got 1",
                          "test_review_s22conv.py")
    assert_one_line_error(lambda: gc.avg_pool2d(gc.tensor(x), 2, count_include_pad=None),
                          "avg_pool2d: count_include_pad must be True or False, got None",
                          "test_review_s22conv.py")


@pytest.mark.parametrize("mode", [_eager, _compiled], ids=["eager", "compiled"])
@pytest.mark.parametrize("name, call", [
    ("conv2d", lambda F, x, w, b: F.conv2d(x, w, b, 2, 1, 1, 2)),
    ("max_pool2d", lambda F, x, w, b: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("avg_pool2d", lambda F, x, w, b: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
])
def test_unbatched_3d_input_as_torch(mode, name, call):
    # x (C, H, W) was refused ("x must be 4-d"); PyTorch takes it as a batch of one
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(4, 7, 6)), rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    if name == "conv2d":
        arrays, f = [x, w, b], lambda F, *a: call(F, *a)
    else:
        arrays, f = [x], lambda F, x: call(F, x, w, b)
    expected, expected_grads, weights = _value_and_grads_torch(lambda *a: f(TF, *a), *arrays)
    assert expected.ndim == 3
    got, grads = mode(lambda *a: f(gc, *a), arrays, weights)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_unbatched_3d_input_to_the_layers_and_bad_ranks():
    gc.nn.manual_seed(0)
    x = np.random.default_rng(4).normal(size=(3, 6, 6)).astype(np.float32)
    model = gc.nn.Sequential(gc.nn.Conv2d(3, 4, 3, padding=1), gc.nn.MaxPool2d(2),
                             gc.nn.AvgPool2d(3, 1, 1, count_include_pad=False))
    conv = model[0]
    expected = TF.avg_pool2d(TF.max_pool2d(TF.conv2d(
        torch.tensor(x), torch.tensor(conv.weight.data), torch.tensor(conv.bias.data),
        padding=1), 2), 3, 1, 1, count_include_pad=False).numpy()
    np.testing.assert_allclose(np.asarray(model(gc.tensor(x)).data), expected, rtol=1e-5,
                               atol=1e-6)
    for call in [lambda: gc.max_pool2d(gc.tensor(x[0]), 2),
                 lambda: gc.avg_pool2d(gc.tensor(x[None, None]), 2)]:
        assert_one_line_error(call, "x must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape",
                              "test_review_s22conv.py")
    # vmap over images: each call sees one (C, H, W) image
    xs = np.random.default_rng(5).normal(size=(5, 3, 6, 6))
    f = lambda x: gc.avg_pool2d(gc.max_pool2d(gc.conv2d(x, xs[0, :, :3, :3][None]), 2,
                                              ceil_mode=True), 2, 1, 1)
    np.testing.assert_allclose(gc.compile(gc.vmap(f))(xs), gc.compile(f)(xs), rtol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, stride, dilation, xs", [
    (1, 1, 1, (2, 2, 5, 6)), ((2, 1), 2, 1, (2, 2, 5, 6)), ("same", 1, 2, (2, 5, 6)),
    (2, 1, (1, 2), (1, 2, 3, 4))])
def test_conv2d_layer_padding_mode_as_torch(compiled, mode, padding, stride, dilation, xs):
    # padding_mode was not a parameter (a TypeError)
    gc.nn.manual_seed(0)
    ours = gc.nn.Conv2d(2, 4, 3, stride, padding, dilation, padding_mode=mode, dtype="float64")
    theirs = torch.nn.Conv2d(2, 4, 3, stride, padding, dilation, padding_mode=mode,
                             dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(6).normal(size=xs)
    t = torch.tensor(x, requires_grad=True)
    expected = theirs(t)
    weights = np.cos(np.arange(expected.numel())).reshape(expected.shape)
    (expected * torch.tensor(weights)).sum().backward()
    if compiled:
        got = gc.compile(lambda x: ours(x))(x)
        grads = gc.compile(gc.grad(lambda p, x: gc.sum(ours.apply(p, x) * weights),
                                   argnums=(0, 1)))(ours.params(), x)
        grad_w, grad_x = grads[0]["weight"], grads[1]
    else:
        tx = gc.tensor(x, requires_grad=True)
        out = ours(tx)
        gc.sum(out * weights).backward()
        got, grad_w, grad_x = out.data, ours.weight.grad, tx.grad
    np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad_x), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad_w), theirs.weight.grad.numpy(), rtol=1e-12,
                               atol=1e-12)


def test_conv2d_layer_bad_padding_mode():
    assert_one_line_error(lambda: gc.nn.Conv2d(2, 4, 3, padding_mode="mirror"),
                          "Conv2d: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                          "'circular', got 'mirror'", "test_review_s22conv.py")
    x = gc.tensor(np.zeros((1, 2, 2, 5)))  # reflect pads at most size - 1, as in PyTorch
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        torch.nn.Conv2d(2, 4, 3, padding=2, padding_mode="reflect")(torch.zeros(1, 2, 2, 5))
    assert_one_line_error(lambda: gc.nn.Conv2d(2, 4, 3, padding=2, padding_mode="reflect")(x),
                          "Conv2d: padding_mode 'reflect' pads at most 1 on an axis of size 2, "
                          "got padding (2, 2)", "test_review_s22conv.py")


@pytest.mark.parametrize("compiled", [False, True])
def test_max_pool2d_of_minus_inf_gives_no_gradient_to_ceil_modes_overhang(compiled):
    # ceil_mode's overhang is -inf like the padding: it must not take a share either
    x = np.full((1, 1, 3, 3), -np.inf)
    value, grad = _value_and_grad(lambda x: gc.max_pool2d(x, 2, 2, ceil_mode=True), x, compiled)
    np.testing.assert_array_equal(value, np.full((1, 1, 2, 2), -np.inf))
    # each window's 1 to its first element inside x, as PyTorch's
    np.testing.assert_array_equal(grad[0, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    expected, expected_grad = _torch_value_and_grad(
        lambda x: TF.max_pool2d(x, 2, 2, ceil_mode=True), x)
    np.testing.assert_array_equal(grad, expected_grad)
