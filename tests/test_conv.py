"""gc.conv2d, gc.max_pool2d and gc.avg_pool2d (composites of slices, concat and a matmul) and
the nn layers on them, against torch.nn.functional in float64: values and gradients, eager
(the tape) and compiled, finite differences, vmap, PyTorch's init, a tiny CNN that learns,
and one-line errors for bad input."""
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import nn
from ir.errors import GraphcError

RNG = np.random.default_rng(0)

# (x shape, w shape, stride, padding, dilation, groups)
CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 2, 8, 6), (5, 2, 1, 1), 1, 0, 1, 1),            # 1x1
    ((2, 3, 9, 8), (4, 3, 2, 3), (2, 1), (1, 2), 1, 1),  # non-square kernel, pairs
    ((2, 2, 9, 10), (3, 2, 3, 2), 2, 1, (2, 3), 1),      # dilation
    ((1, 1, 5, 5), (2, 1, 5, 5), 1, 0, 1, 1),            # the kernel covers the input
    ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 1, 2),            # groups
    ((2, 3, 6, 7), (3, 1, 3, 3), 2, 1, 1, 3),            # depthwise
    ((2, 3, 6, 7), (4, 3, 3, 5), 1, "same", 1, 1),
    ((2, 3, 6, 7), (4, 3, 2, 4), 1, "same", (1, 1), 1),   # even: the extra row below
    ((1, 2, 6, 7), (2, 2, 3, 2), 1, "same", (1, 3), 1),   # dilated: odd, even totals
    ((2, 3, 6, 7), (4, 3, 3, 3), 1, "valid", 1, 1),
]


def _torch_conv(x, w, b, stride, padding, dilation, groups):
    return TF.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _value_and_grads_torch(fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    weights = torch.tensor(np.cos(np.arange(out.numel())).reshape(out.shape))
    grads = torch.autograd.grad((out * weights).sum(), ts)
    return out.detach().numpy(), [g.numpy() for g in grads], weights.numpy()


def _eager(fn, arrays, weights):
    ts = [gc.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    gc.sum(out * weights).backward()
    return np.asarray(out.data), [np.asarray(t.grad.data if hasattr(t.grad, "data") else t.grad)
                                  for t in ts]


def _compiled(fn, arrays, weights):
    out = gc.compile(fn)(*arrays)
    grads = gc.compile(gc.grad(lambda *a: gc.sum(fn(*a) * weights),
                               argnums=tuple(range(len(arrays)))))(*arrays)
    return np.asarray(out), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("mode", [_eager, _compiled], ids=["eager", "compiled"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d_matches_torch_values_and_gradients(mode, xs, ws, stride, padding, dilation,
                                                   groups):
    x, w, b = RNG.normal(size=xs), RNG.normal(size=ws), RNG.normal(size=ws[0])
    expected, expected_grads, weights = _value_and_grads_torch(
        lambda x, w, b: _torch_conv(x, w, b, stride, padding, dilation, groups), x, w, b)
    got, grads = mode(lambda x, w, b: gc.conv2d(x, w, b, stride, padding, dilation, groups),
                      [x, w, b], weights)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    for name, g, e in zip("xwb", grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10, err_msg=name)


def test_conv2d_without_bias_and_in_float32():
    x, w = RNG.normal(size=(2, 3, 5, 5)).astype(np.float32), RNG.normal(size=(4, 3, 3, 3))
    out = gc.compile(lambda x, w: gc.conv2d(x, w, padding=1))(x, w.astype(np.float32))
    assert out.dtype == np.float32
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w, dtype=torch.float32), padding=1)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)


# (x shape, kernel, stride, padding)
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 7, 9), 3, 2, 1),
    ((1, 2, 7, 6), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 5, 5), 1, None, 0),
    ((1, 2, 6, 6), 3, 1, 0),  # overlapping windows
]


@pytest.mark.parametrize("mode", [_eager, _compiled], ids=["eager", "compiled"])
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("xs, kernel, stride, padding", POOL_CASES)
def test_pooling_matches_torch_values_and_gradients(mode, pool, xs, kernel, stride, padding):
    x = RNG.normal(size=xs)
    tfn, gfn = {"max": (TF.max_pool2d, gc.max_pool2d), "avg": (TF.avg_pool2d, gc.avg_pool2d)}[pool]
    expected, (expected_grad,), weights = _value_and_grads_torch(
        lambda x: tfn(x, kernel, stride, padding), x)
    got, (grad,) = mode(lambda x: gfn(x, kernel, stride, padding), [x], weights)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_max_pool2d_with_dilation_matches_torch():
    x = RNG.normal(size=(1, 2, 9, 9))
    expected = TF.max_pool2d(torch.tensor(x), 3, 2, 1, dilation=2).numpy()
    np.testing.assert_array_equal(np.asarray(gc.max_pool2d(gc.tensor(x), 3, 2, 1, 2).data),
                                  expected)


def _finite_difference_check(fn, arrays, eps=1e-6):
    grads = gc.grad(lambda *a: gc.sum(gc.sin(fn(*a))), argnums=tuple(range(len(arrays))))(
        *arrays)
    rng = np.random.default_rng(1)
    for k, (a, g) in enumerate(zip(arrays, grads)):
        for _ in range(5):
            i = tuple(rng.integers(0, n) for n in a.shape)
            up, down = [v.copy() for v in arrays], [v.copy() for v in arrays]
            up[k][i] += eps
            down[k][i] -= eps
            f = lambda vs: float(np.sin(np.asarray(gc.compile(fn)(*vs))).sum())
            numeric = (f(up) - f(down)) / (2 * eps)
            assert abs(numeric - np.asarray(g)[i]) < 1e-6 * max(1.0, abs(numeric)), (k, i)


def test_finite_differences():
    x, w, b = RNG.normal(size=(2, 3, 6, 5)), RNG.normal(size=(4, 3, 3, 2)), RNG.normal(size=4)
    _finite_difference_check(lambda x, w, b: gc.conv2d(x, w, b, (2, 1), 1, (1, 2)), [x, w, b])
    _finite_difference_check(lambda x: gc.max_pool2d(x, 3, 2, 1), [x])
    _finite_difference_check(lambda x: gc.avg_pool2d(x, (2, 3), 1, 1), [x])


@pytest.mark.parametrize("compiled", [False, True])
def test_vmap_over_batches_of_images_equals_a_loop(compiled):
    xs, ws = RNG.normal(size=(3, 2, 3, 6, 6)), RNG.normal(size=(3, 4, 3, 3, 3))
    b = RNG.normal(size=4)

    def f(x, w):
        return gc.max_pool2d(gc.relu(gc.conv2d(x, w, b, padding=1, stride=(1, 2))), 2)
    expected = np.stack([np.asarray(gc.compile(f)(x, w)) for x, w in zip(xs, ws)])
    for axes in [(0, None), (0, 0)]:
        batched = gc.vmap(f, in_axes=axes)
        if compiled:
            batched = gc.compile(batched)
        got = np.asarray(batched(xs, ws if axes[1] == 0 else ws[0]))
        want = expected if axes[1] == 0 else np.stack(
            [np.asarray(gc.compile(f)(x, ws[0])) for x in xs])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_layer_init_bounds_as_torch_and_same_output():
    nn.manual_seed(0)
    layer = nn.Conv2d(16, 32, (3, 5), padding=1, groups=2)
    ref = torch.nn.Conv2d(16, 32, (3, 5), padding=1, groups=2)
    assert layer.weight.data.shape == tuple(ref.weight.shape) == (32, 8, 3, 5)
    bound = 1.0 / np.sqrt(8 * 3 * 5)
    for ours, theirs in [(layer.weight.data, ref.weight), (layer.bias.data, ref.bias)]:
        theirs = theirs.detach().numpy()
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
    w = layer.weight.data  # 3840 draws: they reach the bound, centred, uniform's spread
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.05 * bound and abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    x = RNG.normal(size=(2, 16, 7, 9)).astype(np.float32)
    expected = ref(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(layer(gc.tensor(x)).data), expected, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(gc.compile(lambda x: layer(x))(x), expected, rtol=1e-4,
                               atol=1e-5)
    assert nn.Conv2d(3, 4, 3, bias=False).bias is None


def test_a_tiny_cnn_trains():
    nn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AvgPool2d(1), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "5.weight", "5.bias"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum((1, 2)) > 0).astype(np.int64) + (x[:, 0, 4:].sum((1, 2)) > 0)

    def loss(params):
        return gc.cross_entropy(model.apply(params, x), y)
    step = gc.compile(gc.value_and_grad(loss))
    params = model.params()
    losses = []
    for _ in range(30):
        value, grads = step(params)
        losses.append(float(value))
        params = {k: v - 0.5 * np.asarray(grads[k]) for k, v in params.items()}
    assert losses[-1] < 0.7 * losses[0], losses
    # the eager tape gives the compiled step's gradient
    model.load_state_dict(params)
    out = gc.cross_entropy(model(gc.tensor(x)), y)
    out.backward()
    _, grads = step(model.params())
    np.testing.assert_allclose(np.asarray(model[0].weight.grad), grads["0.weight"], rtol=1e-4,
                               atol=1e-6)


def test_flatten_matches_torch():
    x = RNG.normal(size=(2, 3, 4, 5))
    for start, end in [(1, -1), (0, 1), (2, 3), (1, 1)]:
        got = np.asarray(nn.Flatten(start, end)(gc.tensor(x)).data)
        np.testing.assert_array_equal(got, torch.nn.Flatten(start, end)(torch.tensor(x)).numpy())
    with pytest.raises(GraphcError, match="start_dim 3 comes after end_dim 1"):
        nn.Flatten(3, 1)(gc.tensor(x))


@pytest.mark.parametrize("call, message", [
    (lambda x, w: gc.conv2d(x, w[:, :2]), r"x has 3 channels, w \(4, 2, 3, 3\) takes 2"),
    (lambda x, w: gc.conv2d(x[0, 0], w), r"x must be 4-d \(N, C, H, W\) or 3-d \(C, H, W\), "
                                          r"got shape \(5, 5\)"),
    (lambda x, w: gc.conv2d(x, w, dilation=3), r"kernel \(7, 7\) \(dilated\) is larger than "
                                               r"the padded input \(5, 5\)"),
    (lambda x, w: gc.conv2d(x, w, stride=0), r"stride must be >= 1"),
    (lambda x, w: gc.conv2d(x, w, padding="same", stride=2), "'same' needs stride 1"),
    (lambda x, w: gc.conv2d(x, w[0]), r"w must be 4-d"),
    (lambda x, w: gc.max_pool2d(x, 6), r"kernel \(6, 6\) \(dilated\) is larger"),
    (lambda x, w: gc.avg_pool2d(x, 2, padding=2), "at most half the kernel size"),
    (lambda x, w: gc.max_pool2d(x, (2, 2, 2)), "kernel_size must be an int or a pair"),
])
@pytest.mark.parametrize("compiled", [False, True])
def test_bad_input_is_one_line_naming_the_users_line(call, message, compiled):
    x, w = RNG.normal(size=(2, 3, 5, 5)), RNG.normal(size=(4, 3, 3, 3))
    line = inspect.getsourcelines(call)[1]
    with pytest.raises(GraphcError, match=message) as error:
        if compiled:
            gc.compile(call)(x, w)
        else:
            call(gc.tensor(x), gc.tensor(w))
    assert "\n" not in error.value.message, error.value.message
    assert str(error.value).endswith(f"test_conv.py:{line}"), str(error.value)


def test_max_pool2d_gives_a_ties_gradient_to_its_first_maximum():
    # a window of equal values: its gradient goes to the first element in row-major order,
    # as PyTorch's and JAX's (it used to be split between them)
    grad = gc.grad(lambda x: gc.sum(gc.max_pool2d(x, 2)))(np.zeros((1, 1, 2, 4)))
    np.testing.assert_array_equal(grad, [[[[1, 0, 1, 0], [0, 0, 0, 0]]]])
    # with a symbolic height and width (no known places for the taps) the tie is shared
    # (stride 1 and a height of 2h: one output size for every h)
    f = gc.compile(gc.grad(lambda x: gc.sum(gc.max_pool2d(x, 2, stride=1))),
                   polymorphic_shapes=(("_", "_", "2*h", "_"),))
    np.testing.assert_array_equal(f(np.zeros((1, 1, 2, 4))),
                                  [[[[0.25, 0.5, 0.5, 0.25], [0.25, 0.5, 0.5, 0.25]]]])
    known = gc.grad(lambda x: gc.sum(gc.max_pool2d(x, 2, stride=1)))(np.zeros((1, 1, 2, 4)))
    np.testing.assert_array_equal(known, [[[[1, 1, 1, 0], [0, 0, 0, 0]]]])


def test_symbolic_batch_and_height():
    # one plan for every batch size (and, at stride 1, every height); a stride over a
    # symbolic axis has no one output size and says so
    w = RNG.normal(size=(4, 3, 3, 3))
    f = gc.compile(lambda x, w: gc.max_pool2d(gc.conv2d(x, w, padding=1, stride=2), 2,
                                              padding=1),
                   polymorphic_shapes=(("batch", "_", "_", "_"), None))
    g = gc.compile(lambda x, w: gc.conv2d(x, w, padding=1),
                   polymorphic_shapes=(("_", "_", "h", "_"), None))
    for n, h in [(2, 9), (5, 6)]:
        x = RNG.normal(size=(n, 3, h, 9))
        expected = TF.max_pool2d(TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1,
                                           stride=2), 2, padding=1).numpy()
        np.testing.assert_allclose(f(x, w), expected, rtol=1e-12, atol=1e-12)
        expected = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
        np.testing.assert_allclose(g(x, w), expected, rtol=1e-12, atol=1e-12)
    for stride, padding, why in [(2, 1, "floor\\(\\(h-1\\) / 2\\) is no polynomial: it depends on "
                                  "the value of h"),
                                 (1, 0, "whether h-3 >= 0 depends on the value of h")]:
        refused = gc.compile(lambda x, w: gc.conv2d(x, w, stride=stride, padding=padding),
                             polymorphic_shapes=(("_", "_", "h", "_"), None))
        with pytest.raises(GraphcError, match="conv2d: no output size for every value of a "
                                              "symbolic height or width .*: " + why):
            refused(RNG.normal(size=(2, 3, 9, 9)), w)


def test_conv_layers_refuse_a_bad_padding_string_where_they_are_made():
    # as torch's: at construction. They were refused only at the first call, naming that
    # line (and the functional conv2d) rather than the one that set them
    f = "test_conv.py"
    for layer, torch_layer in ((nn.Conv2d, torch.nn.Conv2d), (nn.Conv1d, torch.nn.Conv1d)):
        name = layer.__name__
        assert_one_line_error(lambda: layer(3, 4, 3, stride=2, padding="same"),
                              f"{name}: padding='same' needs stride 1, as in PyTorch, got "
                              "stride=2", f)
        assert_one_line_error(lambda: layer(3, 4, 3, padding="full", padding_mode="reflect"),
                              f"{name}: padding must be 'same', 'valid', an int or", f)
        for kwargs in (dict(stride=2, padding="same"), dict(padding="full")):
            with pytest.raises(ValueError):
                torch_layer(3, 4, 3, **kwargs)
    assert_one_line_error(lambda: nn.Conv2d(3, 4, 3, stride=(1, 2), padding="same"),
                          "got stride=(1, 2)", f)
    # stride 1 in every form, and "valid" with any stride, are made
    for stride in (1, (1, 1), [1, 1]):
        assert nn.Conv2d(3, 4, 3, stride=stride, padding="same").padding == "same"
    assert nn.Conv1d(3, 4, 3, stride=(1,), padding="same").padding == "same"
    assert nn.Conv2d(3, 4, 3, stride=2, padding="valid").padding == "valid"


def test_a_conv_layer_with_a_stride_of_no_int_and_same_padding_is_refused_in_one_line():
    # review (s49): the construction check of padding='same' compared a numpy-array stride
    # with 1 ("The truth value of an array ... is ambiguous", a bare ValueError); a stride
    # that is no int is left to the call, which refuses it in one line as before
    for stride in (np.array([1, 1]), np.array([2, 2])):
        layer = nn.Conv2d(3, 4, 3, stride=stride, padding="same")
        assert_one_line_error(lambda: layer(np.zeros((1, 3, 5, 5), np.float32)),
                              "stride must be an int or a pair of ints, got array(",
                              "test_conv.py")
    assert_one_line_error(lambda: nn.Conv2d(3, 4, 3, stride=[2, np.int64(1)], padding="same"),
                          "Conv2d: padding='same' needs stride 1", "test_conv.py")
