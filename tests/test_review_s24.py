"""Session 24's differential review of session 23's ops against torch in float64 (a fuzzer's
view: random settings and edge cases, values and gradients eagerly and compiled). Each test
is one finding: it failed before its fix."""
import warnings

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import optim

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
FILE = "test_review_s24.py"


def _torch_value_and_grad(f, *arrays):
    """torch's f(*arrays) and the gradients of its sum with respect to every array."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = f(*ts)
    out.sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


# ---- a Python-number target ------------------------------------------------------------------
@pytest.mark.parametrize("name,target", [
    ("binary_cross_entropy", 1.0), ("binary_cross_entropy_with_logits", 0.25),
    ("kl_div", 0.2), ("cosine_similarity", 1.5), ("pairwise_distance", 0.5)])
def test_a_python_number_target_takes_the_inputs_dtype(name, target):
    # a float64 input with a Python-number target raised mul's (or sub's) "operands must
    # have one dtype, got float32 and float64": the number became a float32 array inside
    # the loss, where every other op gives a weak scalar the tensor's dtype
    x = np.random.default_rng(0).uniform(0.1, 0.9, (2, 3))
    if name.startswith("binary"):  # (no broadcasting there: a 0-d input)
        x = np.asarray(x[0, 0])
    ours = getattr(gc, name)
    theirs = getattr(TF, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's 'mean' warning
        want = theirs(torch.tensor(x), torch.tensor(target, dtype=torch.float64)).numpy()
    for run in (ours, gc.compile(ours)):
        got = run(x, target)
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)
    grad = gc.grad(lambda x: gc.sum(ours(x, target)))(x)
    _, (want_grad,) = _torch_value_and_grad(
        lambda t: theirs(t, torch.tensor(target, dtype=torch.float64)), x)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_python_number_weights_of_the_binary_cross_entropies():
    x, t = np.array([0.2, 0.7]), np.array([0.0, 1.0])  # weight and pos_weight broadcast
    want = TF.binary_cross_entropy(torch.tensor(x), torch.tensor(t),
                                   torch.tensor(2.0, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(gc.binary_cross_entropy(x, t, 2.0), want, rtol=1e-12)
    want = TF.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t), torch.tensor(0.5, dtype=torch.float64),
        pos_weight=torch.tensor(3.0, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(
        gc.binary_cross_entropy_with_logits(x, t, 0.5, pos_weight=3.0), want, rtol=1e-12)


# ---- 1-d pools --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,kw", [
    ("avg", dict(kernel_size=5, stride=3, ceil_mode=True)),
    ("avg", dict(kernel_size=7, stride=4, padding=1, ceil_mode=True,
                 count_include_pad=False)),
    ("max", dict(kernel_size=7, ceil_mode=True)),
    ("max", dict(kernel_size=4, stride=2, padding=1, dilation=2, ceil_mode=True))])
def test_1d_pools_in_ceil_mode_with_a_kernel_longer_than_the_input(kind, kw):
    # torch has a window there (ceil_mode's last one starts inside x), as graphc's 2-d pools:
    # the 1-d pools refused "the kernel ... is longer than the padded input"
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    ours, theirs = getattr(gc, f"{kind}_pool1d"), getattr(TF, f"{kind}_pool1d")
    want, (want_grad,) = _torch_value_and_grad(lambda t: theirs(t, **kw), x)
    np.testing.assert_allclose(ours(x, **kw), want, rtol=1e-13)
    for run in (gc.grad(lambda x: gc.sum(ours(x, **kw))),
                gc.compile(gc.grad(lambda x: gc.sum(ours(x, **kw))))):
        np.testing.assert_allclose(run(x), want_grad, rtol=1e-13)


def test_1d_pools_without_a_window_give_one_line():
    x = np.ones((2, 3, 4))
    assert_one_line_error(lambda: gc.max_pool1d(x, 7), "longer than the padded input", FILE)
    assert_one_line_error(lambda: gc.avg_pool1d(x, 8, stride=3, ceil_mode=True),
                          "longer than the padded input", FILE)


# ---- one_cycle --------------------------------------------------------------------------------
def _one_cycle_lrs(total, **kw):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=total,
                                                cycle_momentum=False, **kw)
    lrs = []
    for k in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if k < total - 1:
            sched.step()
    return lrs


@pytest.mark.parametrize("total,kw", [
    (1, {}), (2, {}), (3, {}), (10, dict(pct_start=0.05)), (10, dict(pct_start=0.0)),
    (10, dict(pct_start=1.0)), (10, dict(pct_start=0.6, three_phase=True)),
    (10, dict(pct_start=0.55, three_phase=True, anneal_strategy="linear"))])
def test_one_cycle_where_a_phase_ends_before_step_0_or_after_the_next(total, kw):
    # torch skips a phase that ends before step 0 (pct_start * total_steps < 1) and one
    # that ends after the next phase (three_phase with pct_start > 0.5): graphc refused them
    # ("leaves a phase without steps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _one_cycle_lrs(total, **kw)
    schedule = optim.one_cycle(0.3, total, **kw)
    compiled = gc.compile(schedule)
    for k, lr in enumerate(want):
        assert schedule(k) == pytest.approx(lr, rel=1e-12, abs=1e-15)
        assert float(compiled(np.int64(k))) == pytest.approx(lr, rel=1e-12, abs=1e-15)


def test_one_cycle_settings_torch_refuses_give_one_line():
    # pct_start * total_steps == 1: torch divides by zero at step 0
    assert_one_line_error(lambda: optim.one_cycle(0.3, 10, pct_start=0.1), "step 0", FILE)
    assert_one_line_error(lambda: optim.one_cycle(0.3, 10, pct_start=1.5), "pct_start", FILE)


# ---- optimiser and schedule settings ----------------------------------------------------------
@pytest.mark.parametrize("call,message", [
    (lambda: optim.Adamax(betas=0.9), "betas must be a pair of numbers"),
    (lambda: optim.NAdam(betas=(0.9, 0.99, 0.5)), "betas must be a pair of numbers"),
    (lambda: optim.Lion(betas=("a", 0.9)), "betas must be a pair of numbers"),
    (lambda: optim.Adamax(eps="a"), "eps must be a number"),
    (lambda: optim.NAdam(momentum_decay=None), "momentum_decay must be a number"),
    (lambda: optim.warmup_cosine_decay("a", 1.0, 1, 5), "init_value must be a number"),
    (lambda: optim.one_cycle(0.1, 10, pct_start="0.3"), "pct_start must be a number"),
    (lambda: optim.multistep(0.1, [2], gamma=None), "gamma must be a number"),
    (lambda: optim.piecewise_constant(0.1, {2: "x"}), "the scale at 2 must be a number"),
    (lambda: optim.polynomial_decay(1.0, 0.0, "2", 10), "power must be a number")])
def test_bad_optimiser_settings_give_one_line(call, message):
    # each raised Python's TypeError or ValueError from float() or tuple unpacking
    assert_one_line_error(call, message, FILE)


# ---- max pools' ties --------------------------------------------------------------------------
@pytest.mark.parametrize("name,size,shape", [
    ("adaptive_max_pool2d", (2, 3), (2, 3, 5, 7)), ("adaptive_max_pool2d", 1, (2, 3, 4, 4)),
    ("adaptive_max_pool2d", (4, None), (3, 6, 5)), ("adaptive_max_pool2d", (3, 5), (1, 2, 6, 5)),
    ("adaptive_max_pool2d", (7, 9), (2, 3, 4, 6)), ("adaptive_max_pool1d", 3, (2, 3, 8)),
    ("adaptive_max_pool1d", 2, (3, 6)), ("adaptive_max_pool1d", 1, (2, 2, 5))])
def test_adaptive_max_pool_ties_send_the_gradient_where_torch_does(name, size, shape):
    # torch gives a window's gradient to its first maximum (row-major); graphc shared it
    # equally between the tied maxima
    x = np.random.default_rng(2).integers(0, 3, shape).astype(np.float64)
    want, (want_grad,) = _torch_value_and_grad(lambda t: getattr(TF, name)(t, size), x)
    ours = getattr(gc, name)
    np.testing.assert_array_equal(ours(x, size), want)
    for run in (gc.grad(lambda x: gc.sum(ours(x, size))),
                gc.compile(gc.grad(lambda x: gc.sum(ours(x, size))))):
        np.testing.assert_array_equal(run(x), want_grad)
    if len(shape) == int(name[-2]) + 2:  # batched: a batch of none too, as torch's
        empty = np.zeros((0,) + shape[1:])
        assert ours(empty, size).shape == getattr(TF, name)(torch.tensor(empty), size).shape


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=2, stride=1), dict(kernel_size=4, stride=2, padding=2),
    dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
    dict(kernel_size=5, stride=3, padding=2, ceil_mode=True)])
def test_max_pool1d_ties_send_the_gradient_where_torch_does(kw):
    # shared equally between tied maxima before (max_pool2d's rule); torch gives it to the
    # first, and to the first tap inside x where a window's real elements are all -inf
    x = np.random.default_rng(3).integers(0, 3, (2, 3, 9)).astype(np.float64)
    x[0, 0, :4] = -np.inf
    want, (want_grad,) = _torch_value_and_grad(lambda t: TF.max_pool1d(t, **kw), x)
    np.testing.assert_array_equal(gc.max_pool1d(x, **kw), want)
    loss = gc.grad(lambda x: gc.sum(gc.max_pool1d(x, **kw)))
    for run in (loss, gc.compile(loss)):
        np.testing.assert_array_equal(run(x), want_grad)
    np.testing.assert_array_equal(gc.nn.MaxPool1d(**kw)(x[0]), want[0])


# ---- padding layers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,padding,shape", [
    ("ReflectionPad1d", (-1, 2), (2, 3, 5)), ("ReflectionPad1d", (3, -2), (3, 5)),
    ("ReplicationPad1d", (-3, 3), (2, 4, 4)), ("ReplicationPad1d", (2, -3), (3, 2)),
    ("ReflectionPad2d", (0, 3, -2, 1), (2, 4, 3, 4)), ("ReplicationPad2d", -1, (1, 2, 4, 3)),
    ("ReplicationPad3d", (1, -2, 2, -1, -1, 2), (2, 3, 3, 4)),
    ("ReflectionPad3d", (-1, 1, 1, -2, 2, 0), (1, 2, 4, 3, 4)),
    ("CircularPad1d", (-1, 2), (2, 3, 4)), ("CircularPad2d", (2, -1, -2, 1), (2, 3, 4, 4)),
    ("CircularPad3d", -1, (1, 2, 4, 3, 4))])
def test_negative_padding_of_the_reflection_replication_and_circular_layers(name, padding,
                                                                            shape):
    # torch crops a side with negative padding in every mode; graphc refused it ("padding
    # must be >= 0") outside ZeroPad/ConstantPad
    x = np.random.default_rng(4).normal(size=shape)
    layer = getattr(gc.nn, name)(padding)
    want, (want_grad,) = _torch_value_and_grad(getattr(torch.nn, name)(padding), x)
    np.testing.assert_array_equal(layer(x), want)
    u = np.arange(want.size, dtype=np.float64).reshape(want.shape)  # every position its own
    loss = gc.grad(lambda x: gc.sum(layer(x) * u))
    ts = torch.tensor(x, requires_grad=True)
    (getattr(torch.nn, name)(padding)(ts) * torch.tensor(u)).sum().backward()
    for run in (loss, gc.compile(loss)):
        np.testing.assert_array_equal(run(x), ts.grad.numpy())


def test_negative_padding_torch_cannot_do_gives_one_line():
    x = np.ones((2, 3, 4))
    # torch's reflect and replicate refuse an output with no element; a 2-d or 3-d one with
    # an empty axis beside a kept one they return
    assert_one_line_error(lambda: gc.nn.ReplicationPad1d((-2, -2))(x),
                          "crops all of axis 2's 4", FILE)
    # every spatial axis cropped to nothing: torch's 'input (H: 3, W: 4) is too small.
    # Calculated output H: 0 W: 0' (graphc returned the empty (2, 0, 0) and (1, 2, 0, 0, 0))
    torch_refuses = [("ReflectionPad2d", (-1, -3, -2, -1), x),
                     ("ReplicationPad2d", (0, -4, -3, 0), x),
                     ("ReplicationPad3d", (-4, 0, -1, -2, 0, -2), x[None]),
                     ("ReflectionPad3d", (-2, -2, -3, 0, -2, 0), x[None])]
    for name, padding, v in torch_refuses:
        with pytest.raises(RuntimeError, match="too small"):
            getattr(torch.nn, name)(padding)(torch.tensor(v))
        assert_one_line_error(lambda: getattr(gc.nn, name)(padding)(v),
                              f"{name}: padding {padding} crops all of axes", FILE)
    assert_one_line_error(lambda: gc.nn.ReflectionPad2d((-1, -3, -2, -1))(x),
                          "crops all of axes 1 and 2 (sizes 3, 4); the output needs an element, "
                          "as in PyTorch", FILE)
    empty = gc.nn.ReflectionPad2d((-1, -3, 1, 1))(x)  # one empty axis beside a kept one
    assert np.shape(empty) == tuple(torch.nn.ReflectionPad2d((-1, -3, 1, 1))(
        torch.tensor(x)).shape) == (2, 5, 0)
    assert_one_line_error(lambda: gc.nn.ReplicationPad1d((-3, -2))(x), "crops more than", FILE)
    # circular padding wider than what the crop leaves would wrap around it more than once
    assert_one_line_error(lambda: gc.nn.CircularPad1d((3, -2))(x), "at most 2", FILE)


def test_pixel_shuffle_of_a_symbolic_channel_count_gives_one_line():
    # raised the dimension algebra's "b % 4 depends on the value of b", naming neither the
    # function nor the axis
    spec = gc.spec(("b", 2, 3))
    assert_one_line_error(lambda: gc.trace(lambda x: gc.pixel_shuffle(x, 2), spec),
                          "pixel_shuffle: needs a known channel count", FILE)
    spec = gc.spec((3, "h", 4))
    assert_one_line_error(lambda: gc.trace(lambda x: gc.pixel_unshuffle(x, 2), spec),
                          "pixel_unshuffle: needs a known height", FILE)
