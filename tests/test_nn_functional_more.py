"""graphc.nn.functional's names added in session 54 that the table of
tests/test_nn_functional.py cannot check alone: grid_sample in every mode, padding mode and
align_corners (eagerly, values and both gradients against torch in float64), pdist at zero
distances, the *_with_indices pools' indices, and gumbel_softmax (random: its noise
recovered from one sample and torch's softmax differentiated at it; its argmax frequencies;
its keys)."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn.functional as F
from errorcheck import assert_one_line_error as _one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(54)


def assert_one_line_error(call, message):
    _one_line_error(call, message, "test_nn_functional_more.py")


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_every_padding_and_alignment_as_torch(mode):
    x = RNG.standard_normal((2, 3, 4, 5))
    # points outside [-1, 1] too (padding decides them) and past several reflections
    grid = RNG.uniform(-3.2, 3.2, (2, 3, 4, 2))
    cotangent = RNG.standard_normal((2, 3, 3, 4))
    for padding in ("zeros", "border", "reflection"):
        for align in (False, True):
            tx = torch.tensor(x, requires_grad=True)
            tg = torch.tensor(grid, requires_grad=True)
            want = TF.grid_sample(tx, tg, mode, padding, align)
            (want * torch.tensor(cotangent)).sum().backward()
            got = F.grid_sample(x, grid, mode, padding, align)
            np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-12,
                                       atol=1e-14, err_msg=f"{padding} {align}")
            gx, gg = gc.grad(lambda a, b: gc.sum(F.grid_sample(a, b, mode, padding, align)
                                                 * cotangent), argnums=(0, 1))(x, grid)
            np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-12,
                                       atol=1e-13, err_msg=f"{padding} {align}")
            np.testing.assert_allclose(np.asarray(gg), tg.grad.numpy(), rtol=1e-12,
                                       atol=1e-13, err_msg=f"{padding} {align}")


def test_review_s54_grid_sample_at_the_border_and_at_nan_as_torch():
    """Review r1 s54: a grid point exactly on x's border (affine_grid's identity grid: its
    corners with align_corners=True, its pixel centres 0 and W - 1 with False) took a grid gradient
    through the clip (F.clip passes it at its ends) from the far corner read as zero, where
    torch's clip passes none (-10.5 against 0 at x = 1 below); a NaN point (and an infinite
    one in reflection) was refused as a take_along_axis index out of range, eagerly and
    compiled, where torch reads a zero (zeros) or pixel 0 (border, reflection)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    # pixel coordinates exact in either rounding (torch's kernel fuses a multiply-add):
    # the borders 0 and 3 in both alignments, -0.5 and 3.5 past them, pixel centres
    points = np.array([-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0])
    grid = np.stack(np.meshgrid(points, points), -1)[None]
    for align in (True, False):
        for mode in ("bilinear",):  # (nearest's grid gradient is 0)
            for padding in ("border", "reflection", "zeros"):
                tg = torch.tensor(grid, requires_grad=True)
                TF.grid_sample(torch.tensor(x), tg, mode, padding, align).sum().backward()
                got = gc.grad(lambda g: gc.sum(F.grid_sample(x, g, mode, padding, align)))(grid)
                np.testing.assert_allclose(np.asarray(got), tg.grad.numpy(), atol=1e-12,
                                           err_msg=f"{mode} {padding} {align}")
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    grid = np.array([[[[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.5], [0.2, 0.3]]]])
    for mode in ("bilinear", "nearest"):
        for padding in ("zeros", "border", "reflection"):
            want = TF.grid_sample(torch.tensor(x), torch.tensor(grid), mode, padding, True)
            with np.errstate(invalid="ignore"):
                eager = F.grid_sample(x, grid, mode, padding, True)
                compiled = gc.compile(
                    lambda a, g: F.grid_sample(a, g, mode, padding, True))(x, grid)
            for got in (eager, compiled):
                np.testing.assert_array_equal(np.asarray(got), want.numpy(),
                                              err_msg=f"{mode} {padding}")
    assert_one_line_error(lambda: F.grid_sample(np.zeros((1, 2, 0, 3)), grid),
                          "spatial dimensions must be non-empty")


def test_grid_sample_refusals():
    x, grid = RNG.standard_normal((1, 2, 3, 3)), RNG.uniform(-1, 1, (1, 2, 2, 2))
    assert_one_line_error(lambda: F.grid_sample(x, grid, "area"),
                          "mode must be one of 'bilinear', 'nearest', 'bicubic', got 'area'")
    assert_one_line_error(lambda: F.grid_sample(x, grid, padding_mode="edge"), "padding_mode")
    assert_one_line_error(lambda: F.grid_sample(x[0], grid), "input must be 4-d")
    assert_one_line_error(lambda: F.grid_sample(x, grid[..., :1]), "grid must be")
    assert_one_line_error(lambda: F.grid_sample(x, grid.astype(np.float32)), "same dtype")


def test_pdist_zero_distances_pass_a_zero_gradient():
    x = RNG.standard_normal((4, 3))
    x[2] = x[0]          # a zero distance
    x[3, 1] = x[1, 1]    # a zero component of a nonzero distance
    for p in (2, 0.5, 1.5, 3, 0):
        tx = torch.tensor(x, requires_grad=True)
        want = TF.pdist(tx, p)
        cotangent = RNG.standard_normal(want.shape)
        (want * torch.tensor(cotangent)).sum().backward()
        np.testing.assert_allclose(np.asarray(F.pdist(x, p)), want.detach().numpy(),
                                   rtol=1e-12)
        got = gc.grad(lambda a: gc.sum(F.pdist(a, p) * cotangent))(x)
        np.testing.assert_allclose(np.asarray(got), tx.grad.numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=f"p={p}")
    assert np.asarray(F.pdist(x[:1])).shape == (0,)
    assert_one_line_error(lambda: F.pdist(x, -1), "p must be a number >= 0")
    assert_one_line_error(lambda: F.pdist(x[None]), "input must be 2-d")


def test_review_s54_pdist_infinity_norm_ties_and_no_columns_as_torch():
    """Review r1 s54: pdist(p=inf) shared the gradient among the components at the
    maximum (F.max's rule: a third each of three ties), where torch's backward passes the
    whole of it to each; with no columns it was refused (the max of none), torch's 0."""
    x = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [2.0, 2.0, 2.0]])
    tx = torch.tensor(x, requires_grad=True)
    want = TF.pdist(tx, float("inf"))
    cotangent = np.array([0.5, -1.5, 2.0])
    (want * torch.tensor(cotangent)).sum().backward()
    got = gc.grad(lambda a: gc.sum(F.pdist(a, float("inf")) * cotangent))(x)
    np.testing.assert_array_equal(np.asarray(F.pdist(x, float("inf"))), want.detach().numpy())
    np.testing.assert_allclose(np.asarray(got), tx.grad.numpy(), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(F.pdist(np.zeros((3, 0)), float("inf"))),
                                  TF.pdist(torch.zeros(3, 0, dtype=torch.float64),
                                           float("inf")).numpy())


def test_with_indices_pools_give_torchs_indices():
    x1, x2 = RNG.standard_normal((2, 3, 9)), RNG.standard_normal((2, 3, 7, 7))
    x3 = RNG.standard_normal((1, 2, 5, 5, 5))
    for name, x, args in (("max_pool1d_with_indices", x1, (3, 2, 1)),
                          ("max_pool2d_with_indices", x2, (3, 2, 1, 1, True)),
                          ("max_pool3d_with_indices", x3, (2,)),
                          ("adaptive_max_pool1d_with_indices", x1, (4,)),
                          ("adaptive_max_pool2d_with_indices", x2, ((3, 2),)),
                          ("adaptive_max_pool3d_with_indices", x3, (2,))):
        out, indices = getattr(F, name)(x, *args, return_indices=False)  # (ignored, as torch's)
        want_out, want_indices = getattr(TF, name)(torch.tensor(x), *args)
        np.testing.assert_array_equal(np.asarray(out), want_out.numpy())
        np.testing.assert_array_equal(np.asarray(indices), want_indices.numpy())
        assert np.asarray(indices).dtype == np.int64


def _noise(y, logits, tau, dim):
    """The Gumbel noise g of y = softmax((logits + g) / tau), up to a constant along dim."""
    g = tau * np.log(y) - logits
    return g - g.mean(axis=dim, keepdims=True)


@pytest.mark.parametrize("dim", [-1, 0])
def test_gumbel_softmax_is_torchs_softmax_at_its_noise(dim):
    """Values and gradients: torch's gumbel_softmax formula (softmax((logits + g) / tau),
    straight-through when hard) evaluated at the noise graphc drew, eagerly and compiled."""
    logits, tau = RNG.standard_normal((4, 5)), 0.7
    cotangent = RNG.standard_normal((4, 5))
    for hard in (False, True):
        for compiled in (False, True):
            def sample(a):
                return F.gumbel_softmax(a, tau, hard, dim=dim)
            run = gc.compile(sample) if compiled else sample
            with gc.nn.rng_key(11):
                soft = np.asarray((gc.compile(lambda a: F.gumbel_softmax(a, tau, dim=dim))
                                   if compiled else
                                   (lambda a: F.gumbel_softmax(a, tau, dim=dim)))(logits))
            with gc.nn.rng_key(11):
                got = np.asarray(run(logits))
            gradient = gc.compile(gc.grad(lambda a: gc.sum(sample(a) * cotangent))) \
                if compiled else gc.grad(lambda a: gc.sum(sample(a) * cotangent))
            with gc.nn.rng_key(11):
                grad = np.asarray(gradient(logits))
            g = torch.tensor(_noise(soft, logits, tau, dim))
            t = torch.tensor(logits, requires_grad=True)
            y_soft = ((t + g) / tau).softmax(dim)
            if hard:
                index = y_soft.max(dim, keepdim=True)[1]
                y_hard = torch.zeros_like(t).scatter_(dim, index, 1.0)
                want = y_hard - y_soft.detach() + y_soft
            else:
                want = y_soft
            (want * torch.tensor(cotangent)).sum().backward()
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_gumbel_softmax_samples_the_categorical_and_keys_as_dropout():
    probabilities = np.array([0.1, 0.2, 0.7])
    logits = np.log(np.tile(probabilities, (20000, 1)))
    with gc.nn.rng_key(3):
        y = np.asarray(F.gumbel_softmax(logits, 0.5, hard=True))
    with gc.nn.rng_key(3):
        again = np.asarray(F.gumbel_softmax(logits, 0.5, hard=True))
    np.testing.assert_array_equal(y, again)
    np.testing.assert_array_equal(y.sum(1), 1.0)
    assert set(np.unique(y)) == {0.0, 1.0}
    np.testing.assert_allclose(y.mean(0), probabilities, atol=0.01)  # (std 0.003)
    with gc.nn.rng_key(4):
        other = np.asarray(F.gumbel_softmax(logits, 0.5, hard=True))
    assert (other != y).any()
    np.testing.assert_array_equal(np.asarray(F.gumbel_softmax(logits[:3], seed=7, salt=1)),
                                  np.asarray(F.gumbel_softmax(logits[:3], seed=7, salt=1)))
    with pytest.warns(UserWarning, match="eps"):
        F.gumbel_softmax(logits[:2], eps=1e-5)
    assert_one_line_error(lambda: F.gumbel_softmax(logits[:2], tau=0), "tau must be > 0")
    assert_one_line_error(lambda: F.gumbel_softmax(logits[:2], dim=2), "out of range")


IN_PLACE = [("relu_", ()), ("selu_", ()), ("elu_", (0.7,)), ("celu_", (0.7,)),
            ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.6)), ("threshold_", (0.1, 2.0)),
            ("rrelu_", (0.1, 0.3, False))]


def test_in_place_spellings_return_torchs_value_and_leave_the_input():
    """torch's F.relu_ and kin: graphc returns the value torch's writes in place (compared
    with torch's in-place call on a copy) and does not overwrite the input, eagerly (an
    array, a Tensor) and compiled."""
    x = RNG.standard_normal((3, 4))
    for name, args in IN_PLACE:
        theirs = torch.tensor(x)
        returned = getattr(TF, name)(theirs, *args)
        for value in (x.copy(), gc.tensor(x.copy())):
            got = getattr(F, name)(value, *args)
            np.testing.assert_allclose(np.asarray(got), theirs.numpy(), rtol=1e-15)
            np.testing.assert_array_equal(np.asarray(value), x)
        np.testing.assert_allclose(np.asarray(returned), theirs.numpy())
        compiled = gc.compile(lambda v, n=name, a=args: getattr(F, n)(v, *a))(x)
        np.testing.assert_allclose(np.asarray(compiled), theirs.numpy(), rtol=1e-15)
    with pytest.raises(TypeError, match="relu_"):
        F.relu_(x, True)


def test_pad_negative_widths_in_every_mode_as_torch():
    """Review s54: F.pad refused a negative width (a crop) outside mode 'constant'; torch
    pads then crops in reflect and replicate and crops then wraps in circular. Values and
    gradients against torch, eager and compiled; torch's refusals refused in one line."""
    x = RNG.standard_normal((1, 2, 4, 5))
    cases = {"reflect": [(-1, 2, 0, 0), (2, -1, -1, 1), (-3, 2, 1, -2), (-4, 4, 0, 0),
                         (1, -5, 0, 0)],
             "replicate": [(-1, 2, 0, 0), (2, -1, -1, 1), (-3, 2, 1, -2), (-4, 4, 0, 0),
                           (1, -5, 0, 0)],
             "circular": [(-1, 2, 0, 0), (2, -1, -1, 1), (-3, 2, 1, -2), (-2, 3, 0, 0),
                          (-2, -3, 0, 0)],
             "constant": [(-5, 0), (-2, -3, 1, 1)]}
    for mode, pads in cases.items():
        for widths in pads:
            tx = torch.tensor(x, requires_grad=True)
            want = TF.pad(tx, widths, mode)
            got = F.pad(x, widths, mode)
            compiled = gc.compile(lambda v: F.pad(v, widths, mode))(x)
            for value in (got, compiled):
                np.testing.assert_array_equal(np.asarray(value), want.detach().numpy(),
                                              err_msg=f"{mode} {widths}")
            if want.numel() == 0:
                continue
            cotangent = RNG.standard_normal(tuple(want.shape))
            (want * torch.tensor(cotangent)).sum().backward()
            grad = gc.grad(lambda v: gc.sum(F.pad(v, widths, mode) * cotangent))(x)
            np.testing.assert_allclose(np.asarray(grad), tx.grad.numpy(), rtol=1e-14,
                                       err_msg=f"{mode} {widths}")
    for mode, widths, message in (("reflect", (5, 0, 0, 0), "less than the input's size"),
                                  ("reflect", (-5, 0, -4, 0), "the output would be empty"),
                                  ("replicate", (-2, -3, 1, -5), "the output would be empty"),
                                  ("constant", (-7, 0), "crops axis 3 (size 5) to -2"),
                                  ("circular", (0, 6, 0, 0), "wraps around more than once"),
                                  ("circular", (-4, 4, 0, 0), "wraps around more than once"),
                                  ("circular", (1, -5, 0, 0), "empty before the circular")):
        assert_one_line_error(lambda: F.pad(x, widths, mode), message)


def test_review_s54_circular_pad_emptied_by_a_crop_keeps_the_other_axes_widths():
    """Review r1 s54: a circular pad whose crop empties one axis returned the cropped input,
    without the other axes' padding: (-4, 0, 1, -1) of (1, 2, 3, 4) was (1, 2, 2, 0) where
    torch's is (1, 2, 3, 0), eagerly and compiled."""
    x = RNG.standard_normal((1, 2, 3, 4))
    for widths in ((-4, 0, 1, -1), (-4, 0, 2, 0), (0, -4, -1, 2)):
        want = TF.pad(torch.tensor(x), widths, "circular")
        for got in (F.pad(x, widths, "circular"),
                    gc.compile(lambda v: F.pad(v, widths, "circular"))(x)):
            assert np.asarray(got).shape == tuple(want.shape), widths


def test_review_s54_pad_empty_outputs_and_constant_crops_as_torch():
    """Review r1 s54: a 2- or 3-d reflect or replicate pad whose crops empty an axis was
    refused "as torch", where torch returns the empty output (it refuses one only where
    every padded axis is empty, and for a 1-d pad); a constant crop past the axis's size was
    padded back where torch, narrowing first, refuses it (e.g. (-5, 1) of width 4)."""
    for shape, widths, mode in (((1, 2, 4, 5), (-5, 0, 0, 0), "reflect"),
                                ((1, 2, 4, 5), (-2, -3, 0, 0), "replicate"),
                                ((1, 2, 4, 5), (0, -5, -3, 0), "reflect"),
                                ((1, 2, 4, 5), (2, 5, -4, 0), "replicate"),
                                ((2, 4, 5), (-6, 1, -1, -1), "replicate"),
                                ((1, 1, 3, 4, 3), (1, -4, 3, -2, 1, -1), "reflect"),
                                ((1, 1, 3, 4, 3), (4, -1, 0, -4, -3, 0), "replicate")):
        x = RNG.standard_normal(shape)
        want = TF.pad(torch.tensor(x), widths, mode)
        assert want.numel() == 0
        for got in (F.pad(x, widths, mode),
                    gc.compile(lambda v: F.pad(v, widths, mode))(x)):
            assert np.asarray(got).shape == tuple(want.shape), (mode, widths)
        grad = gc.grad(lambda v: gc.sum(F.pad(v, widths, mode)))(x)
        np.testing.assert_array_equal(np.asarray(grad), np.zeros(shape))
    refused = (((2, 5), (-5, 0), "reflect", "the output would be empty"),
               ((1, 2, 5), (-2, -3), "replicate", "the output would be empty"),
               ((1, 2, 4, 5), (-6, 1, -1, -3), "replicate", "crops every padded axis to 0"),
               ((2, 4, 5), (1, -6, -6, 2), "reflect", "crops every padded axis to 0"),
               ((1, 2, 4), (-5, 1), "constant", "crops axis 2 (size 4) to -1 before padding"),
               ((2, 4, 5), (0, 0, -6, 5), "constant", "crops axis 1 (size 4) to -2"),
               ((2, 5), (-3, -3), "constant", "crops axis 1 (size 5) to -1"))
    for shape, widths, mode, message in refused:
        x = np.zeros(shape)
        with pytest.raises(RuntimeError):
            TF.pad(torch.tensor(x), widths, mode)
        assert_one_line_error(lambda: F.pad(x, widths, mode), message)
    x = RNG.standard_normal((1, 2, 4))
    for widths in ((-4, 1), (2, -4), (-2, -2)):  # (a crop up to the size is torch's)
        np.testing.assert_array_equal(np.asarray(F.pad(x, widths)),
                                      TF.pad(torch.tensor(x), widths).numpy())


def test_one_hot_empty_input_and_num_classes_zero_as_torch():
    """Review s54: an empty input with num_classes given is torch's (0, n) of int64, eagerly
    and compiled; num_classes 0 (or below -1), which torch refuses for every input, and -1
    of an empty input were refused in the words of gc.one_hot's `depth`, not the argument
    the caller passed."""
    empty = np.zeros((2, 0), np.int64)
    want = TF.one_hot(torch.tensor(empty), 4).numpy()
    for got in (F.one_hot(empty, 4), gc.compile(lambda i: F.one_hot(i, 4))(empty)):
        assert np.asarray(got).shape == want.shape == (2, 0, 4)
        assert np.asarray(got).dtype == np.int64
    for indices in (empty, np.array([1, 0])):
        for n in (0, -2):
            with pytest.raises(RuntimeError):
                TF.one_hot(torch.tensor(indices), n)
            assert_one_line_error(lambda: F.one_hot(indices, n),
                                  f"num_classes must be positive (or -1: the largest index "
                                  f"+ 1), got {n}")
            assert_one_line_error(lambda: gc.compile(lambda i: F.one_hot(i, n))(indices),
                                  "num_classes must be positive")
    with pytest.raises(RuntimeError, match="empty tensor"):
        TF.one_hot(torch.tensor(empty), -1)
    assert_one_line_error(lambda: F.one_hot(empty), "num_classes=-1 of no indices")
    assert_one_line_error(lambda: F.one_hot(np.array([1]), 2.0), "num_classes must be an int")
    assert_one_line_error(lambda: F.one_hot(np.array([1]), True), "num_classes must be an int")


class _Dropping(gc.nn.Module):
    """F.dropout's torch idioms: training=self.training, or the default training=True."""

    def __init__(self, follow_mode, function):
        super().__init__()
        self.w = gc.nn.Parameter(np.ones(6))
        object.__setattr__(self, "follow_mode", follow_mode)
        object.__setattr__(self, "function", function)

    def forward(self, x):
        training = self.training if self.follow_mode else True
        return self.function(x * self.w, 0.5, training)


@pytest.mark.parametrize("name", ["dropout", "dropout1d", "alpha_dropout", "rrelu"])
def test_functional_dropout_with_training_true_drops_while_a_trainer_evaluates(name):
    """Review s54: while gc.Trainer evaluated, F.dropout(x, p, training=True) (and the other
    functional dropouts, rrelu) returned x, where torch's drops whatever the module's mode:
    `training` alone decides, as torch's. training=self.training (False while evaluating)
    and the loss's training flag still give x; an evaluation repeats exactly."""
    x = RNG.uniform(0.5, 1.5, (16, 4, 6))
    sign = -1.0 if name == "rrelu" else 1.0  # (rrelu changes negative values only)
    if name == "rrelu":
        function = lambda v, p, training: F.rrelu(v, 0.1, 0.3, training)  # noqa: E731
        theirs = lambda v, training: TF.rrelu(v, 0.1, 0.3, training)  # noqa: E731
    else:
        function = getattr(F, name)
        theirs = lambda v, training: getattr(TF, name)(v, 0.5, training)  # noqa: E731
    # torch's: model.eval() does not switch off an explicit training=True
    module = torch.nn.Module().eval()
    assert not module.training
    tx = torch.tensor(sign * x)
    assert not torch.equal(theirs(tx, True), theirs(tx, False))
    # (in eval rrelu's slope is the mean, 0.2)
    plain = float(np.sum(theirs(tx, False).numpy()))
    for follow_mode in (True, False):
        model = _Dropping(follow_mode, function)

        def loss(params, batch, m=model):
            return gc.sum(m.apply(params, batch[0]))
        trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.0),
                             lambda rng: (sign * x,), steps=1, eval_batches=[(sign * x,)],
                             eval_iters=1)
        first, again = trainer.evaluate(), trainer.evaluate()
        assert first == again
        if follow_mode:
            np.testing.assert_allclose(first, plain, rtol=1e-12)
        else:
            assert abs(first - plain) > 1e-6 * abs(plain), (name, first, plain)

    def flagged(params, batch, key, training):
        return gc.sum(function(batch[0] * params["w"], 0.5, training))
    trainer = gc.Trainer(flagged, {"w": np.ones(6)}, gc.optim.SGD(lr=0.0),
                         lambda rng: (sign * x,), steps=1, eval_batches=[(sign * x,)],
                         eval_iters=1)
    np.testing.assert_allclose(trainer.evaluate(), plain, rtol=1e-12)
