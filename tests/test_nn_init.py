"""gc.nn.init against torch.nn.init: gains, fans (graphc's Linear weight is stored (in, out),
the transpose of torch's, and must get torch's fans for the same layer), exact bounds and the
distributions' moments on large tensors, orthogonality, seeding, in-place filling."""
import copy
import math
import pickle
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from scipy import stats

import graphc as gc
from errorcheck import assert_one_line_error
from graphc.nn import init


def test_calculate_gain_is_torchs():
    for nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid",
                         "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)
    for slope in (0, 0.2, 1, math.sqrt(5)):
        assert init.calculate_gain("leaky_relu", slope) == \
            torch.nn.init.calculate_gain("leaky_relu", slope)
    with pytest.raises(gc.GraphcError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def _torch_fans(t):
    return torch.nn.init._calculate_fan_in_and_fan_out(t)


def test_fans_are_torchs_for_the_same_layer():
    pairs = [(gc.nn.Linear(7, 3).weight, torch.nn.Linear(7, 3).weight),
             (gc.nn.Conv2d(4, 6, (3, 5), groups=2).weight,
              torch.nn.Conv2d(4, 6, (3, 5), groups=2).weight),
             (gc.nn.Conv1d(4, 6, 3).weight, torch.nn.Conv1d(4, 6, 3).weight),
             (gc.nn.Embedding(11, 5).weight, torch.nn.Embedding(11, 5).weight),
             (gc.nn.LSTM(5, 7).weight_ih_l0, torch.nn.LSTM(5, 7).weight_ih_l0),
             (gc.nn.MultiheadAttention(8, 2).in_proj_weight,
              torch.nn.MultiheadAttention(8, 2).in_proj_weight)]
    for mine, theirs in pairs:
        assert init._calculate_fan_in_and_fan_out(mine) == _torch_fans(theirs)
    # copies keep it (TransformerEncoder deep-copies its layer)
    encoder = gc.nn.TransformerEncoder(gc.nn.TransformerEncoderLayer(8, 2, 16), 2)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2,
                                         enable_nested_tensor=False)
    for (name, p), (tname, t) in zip(encoder.named_parameters(), theirs.named_parameters()):
        assert name == tname
        if p.data.ndim == 2:
            assert init._calculate_fan_in_and_fan_out(p) == _torch_fans(t), name
    for copied in (copy.deepcopy(gc.nn.Linear(7, 3)), pickle.loads(pickle.dumps(
            gc.nn.Linear(7, 3)))):
        assert init._calculate_fan_in_and_fan_out(copied.weight) == (7, 3)
    # Linear's weight is stored transposed: its fans are not torch's rule applied to its shape
    assert gc.nn.Linear(7, 3).weight.data.shape == (7, 3)
    # a Parameter outside any layer (or an array) is taken as torch takes a tensor
    loose = gc.nn.Parameter(np.zeros((7, 3)))
    assert init._calculate_fan_in_and_fan_out(loose) == _torch_fans(torch.zeros(7, 3)) == (3, 7)
    assert init._calculate_fan_in_and_fan_out(np.zeros((7, 3))) == (3, 7)

    class Dense(gc.nn.Module):  # a layer of one's own: x @ w with w (in, out)
        _TORCH_TRANSPOSED = ("w",)

        def __init__(self):
            self.w = gc.nn.Parameter(np.zeros((7, 3)))
            self.b = gc.nn.Parameter(np.zeros((7, 3)))
    layer = Dense()
    assert init._calculate_fan_in_and_fan_out(layer.w) == (7, 3)
    assert init._calculate_fan_in_and_fan_out(layer.b) == (3, 7)


def _moments_match(mine, theirs, rel=0.01):
    """Two large samples of one distribution: the same spread (1%) and centre."""
    mine, theirs = np.asarray(mine, np.float64).ravel(), np.asarray(theirs, np.float64).ravel()
    assert abs(mine.mean()) < 5 * theirs.std() / math.sqrt(mine.size)
    assert mine.std() == pytest.approx(theirs.std(), rel=rel)


@pytest.mark.parametrize("kind", ["kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                                  "xavier_normal_"])
def test_linear_weight_draws_from_torchs_distribution_for_the_layer(kind):
    """Linear(1000, 250): fan_in 1000, fan_out 250 in both, though graphc holds (1000, 250)
    and torch (250, 1000); fan_in and fan_out modes differ by 2x in std."""
    settings = {"kaiming_uniform_": [dict(), dict(mode="fan_out", nonlinearity="relu"),
                                     dict(a=math.sqrt(5))],
                "kaiming_normal_": [dict(), dict(mode="fan_out", nonlinearity="relu"),
                                    dict(a=0.2, nonlinearity="leaky_relu")],
                "xavier_uniform_": [dict(), dict(gain=init.calculate_gain("tanh"))],
                "xavier_normal_": [dict(), dict(gain=2.0)]}[kind]
    torch.manual_seed(0)
    for kwargs in settings:
        layer = gc.nn.Linear(1000, 250, dtype="float64")
        out = getattr(init, kind)(layer.weight, generator=np.random.default_rng(1), **kwargs)
        assert out is layer.weight
        theirs = torch.empty(250, 1000, dtype=torch.float64)
        getattr(torch.nn.init, kind)(theirs, **kwargs)
        _moments_match(layer.weight.data, theirs.numpy())
        if "uniform" in kind:  # the exact bound: torch's formula with torch's fans
            if kind == "kaiming_uniform_":
                fan = 1000 if kwargs.get("mode", "fan_in") == "fan_in" else 250
                gain = torch.nn.init.calculate_gain(kwargs.get("nonlinearity", "leaky_relu"),
                                                    kwargs.get("a", 0))
                bound = math.sqrt(3.0) * gain / math.sqrt(fan)
            else:
                bound = kwargs.get("gain", 1.0) * math.sqrt(6.0 / 1250)
            assert np.abs(layer.weight.data).max() <= bound
            assert np.abs(layer.weight.data).max() > 0.999 * bound
            assert np.abs(theirs.numpy()).max() <= bound


def test_conv_weight_is_torchs_kaiming():
    conv = gc.nn.Conv2d(64, 32, 5, dtype="float64")
    init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    theirs = torch.nn.init.kaiming_normal_(torch.empty(32, 64, 5, 5, dtype=torch.float64),
                                           mode="fan_out", nonlinearity="relu")
    _moments_match(conv.weight.data, theirs.numpy())
    assert conv.weight.data.std() == pytest.approx(math.sqrt(2 / (32 * 25)), rel=0.01)


def test_uniform_normal_constant_zeros_ones():
    t = gc.nn.Parameter(np.empty((500, 400)))
    array = t.data
    init.uniform_(t, -0.5, 2.0)
    assert t.data is array  # filled in place: a plan or an optimiser holding it sees it
    assert t.data.min() >= -0.5 and t.data.max() < 2.0
    assert t.data.mean() == pytest.approx(0.75, abs=0.005)
    assert t.data.std() == pytest.approx(2.5 / math.sqrt(12), rel=0.01)
    init.normal_(t, 3.0, 0.5)
    assert t.data.mean() == pytest.approx(3.0, abs=0.005)
    assert t.data.std() == pytest.approx(0.5, rel=0.01)
    init.constant_(t, 0.25)
    assert (t.data == 0.25).all()
    init.zeros_(t)
    assert (t.data == 0).all()
    init.ones_(t)
    assert (t.data == 1).all()
    assert t.requires_grad


def test_trunc_normal_bounds_and_moments_are_the_truncated_normals():
    t = gc.nn.Parameter(np.empty((1000, 500)))
    init.trunc_normal_(t, mean=0.5, std=2.0, a=-1.0, b=3.0, generator=np.random.default_rng(2))
    assert t.data.min() >= -1.0 and t.data.max() <= 3.0
    assert t.data.min() < -0.99 and t.data.max() > 2.99
    law = stats.truncnorm((-1.0 - 0.5) / 2.0, (3.0 - 0.5) / 2.0, loc=0.5, scale=2.0)
    assert t.data.mean() == pytest.approx(law.mean(), abs=0.005)
    assert t.data.std() == pytest.approx(law.std(), rel=0.005)
    theirs = torch.nn.init.trunc_normal_(torch.empty(1000, 500, dtype=torch.float64), 0.5, 2.0,
                                         -1.0, 3.0)
    _moments_match(t.data - law.mean(), theirs.numpy() - law.mean())
    # the usual use: std 0.02 within the default absolute bounds -2, 2 (no truncation)
    init.trunc_normal_(t, std=0.02)
    assert t.data.std() == pytest.approx(0.02, rel=0.01)


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, 10.0, 12.0), (0.0, 1.0, -12.0, -10.0),
                                             (1.0, 0.5, 4.0, math.inf), (0.0, 1.0, 3.0, 3.5),
                                             (0.0, 1.0, -math.inf, -40.0),
                                             (0.0, 1.0, -math.inf, math.inf)])
def test_trunc_normal_far_in_a_tail_is_the_truncated_normal(mean, std, a, b):
    # bounds many stds from the mean: (1 + erf(x)) / 2 rounds to 1 there, and the former
    # inverse CDF put every value on b (torch's rejection sampling draws the right law)
    t = init.trunc_normal_(np.empty(200_000), mean, std, a, b, np.random.default_rng(4))
    law = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert a <= t.min() and t.max() <= b
    assert t.mean() == pytest.approx(law.mean(), abs=6 * law.std() / math.sqrt(t.size))
    assert t.std() == pytest.approx(law.std(), rel=0.01)
    if math.isfinite(a) and math.isfinite(b):
        with pytest.warns(UserWarning, match="more than 2 std"):  # (torch warns, then draws)
            theirs = torch.nn.init.trunc_normal_(torch.empty(200_000, dtype=torch.float64),
                                                 mean, std, a, b)
        _moments_match(t - law.mean(), theirs.numpy() - law.mean())


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1e30, -1.0, 1.0), (0.0, 1.0, -1e-300, 1e-300),
                                             (0.0, 1.0, 0.0, 1e-20), (3.0, 1e6, 1.0, 2.0)])
def test_trunc_normal_of_an_interval_tiny_in_stds_is_uniform_on_it(mean, std, a, b):
    # (review r2) [a, b] a sliver of a std near the mean: the law is uniform on it (torch's
    # rejection draws that); log Phi is log(1/2) to 1e-16 there and every value fell on one
    t = init.trunc_normal_(np.empty(100_000), mean, std, a, b, np.random.default_rng(4))
    assert a <= t.min() and t.max() <= b
    assert stats.kstest((t - a) / (b - a), "uniform").pvalue > 1e-4


@pytest.mark.parametrize("mean, std, a, b, near", [(5.0, 1e-300, 0.0, 1.0, 1.0),
                                                   (-5.0, 1e-300, 0.0, 1.0, 0.0),
                                                   (5.0, 1e-310, 0.0, 1.0, 1.0),
                                                   (0.0, 1.0, 1e200, math.inf, 1e200)])
def test_trunc_normal_beyond_1e154_stds_is_the_near_bound(mean, std, a, b, near):
    # (review r2) log_ndtr's square overflows there: -inf - -inf filled NaNs; the law is
    # the bound nearest the mean to every digit
    t = init.trunc_normal_(np.empty(100), mean, std, a, b, np.random.default_rng(4))
    assert (t == near).all()


def test_trunc_normal_of_a_point_interval_is_the_point():
    # (review r2) torch's fills a == b with it; the uniform_ of a == b did already
    assert (init.trunc_normal_(np.empty(5), 0.0, 1.0, 0.5, 0.5) == 0.5).all()
    assert (torch.nn.init.trunc_normal_(torch.empty(5, dtype=torch.float64), 0.0, 1.0, 0.5,
                                        0.5).numpy() == 0.5).all()
    assert (init.trunc_normal_(np.empty(5), 0.0, 1.0, 7.0, 7.0) == 7.0).all()


@pytest.mark.parametrize("shape", [(30, 80), (80, 30), (16, 8, 3, 3)])
def test_orthogonal(shape):
    t = gc.nn.Parameter(np.empty(shape))
    init.orthogonal_(t, gain=2.0)
    flat = t.data.reshape(shape[0], -1) / 2.0
    small = min(flat.shape)
    gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)
    # the sign correction: uniform over orthogonal matrices, so the diagonal centres on 0
    draws = [init.orthogonal_(np.empty((3, 3)))[0, 0] for _ in range(2000)]
    assert abs(np.mean(draws)) < 0.05


def test_seeding_generator_and_dtype():
    gc.nn.manual_seed(7)
    a = init.kaiming_uniform_(gc.nn.Linear(20, 10).weight).data.copy()
    gc.nn.manual_seed(7)
    b = init.kaiming_uniform_(gc.nn.Linear(20, 10).weight).data.copy()
    assert (a != 0).all()
    # manual_seed(7) then Linear() draws its default init; the next draw is the same again
    np.testing.assert_array_equal(a, b)
    c = init.normal_(gc.nn.Parameter(np.empty(50, np.float32)), generator=np.random.default_rng(3))
    d = init.normal_(gc.nn.Parameter(np.empty(50, np.float32)), rng=np.random.default_rng(3))
    assert c.data.dtype == np.float32
    np.testing.assert_array_equal(c.data, d.data)
    np.testing.assert_array_equal(c.data, np.random.default_rng(3).normal(0, 1, 50)
                                  .astype(np.float32))


def test_bad_arguments_are_one_line_errors():
    cases = [(lambda: init.kaiming_uniform_(gc.nn.Parameter(np.zeros(5))),
              "fewer than 2 dimensions"),
             (lambda: init.kaiming_normal_(gc.nn.Parameter(np.zeros((2, 2))), mode="fan"),
              "mode must be 'fan_in' or 'fan_out'"),
             (lambda: init.orthogonal_(gc.nn.Parameter(np.zeros(3))), "2 or more dimensions"),
             (lambda: init.normal_(gc.nn.Parameter(np.zeros(3)), generator=0),
              "generator must be a numpy Generator"),
             (lambda: init.normal_(gc.nn.Parameter(np.zeros(3)), generator=np.random.
                                   default_rng(), rng=np.random.default_rng()), "not both"),
             (lambda: init.zeros_([1.0, 2.0]), "expected a graphc tensor"),
             (lambda: init.uniform_(gc.tensor(np.zeros(3, np.int64))), "not floating point"),
             (lambda: init.normal_(np.zeros(3, bool)), "init.normal_: the tensor is bool, not "
              "floating point"),
             (lambda: init.trunc_normal_(gc.nn.Parameter(np.zeros(3)), a=1, b=0),
              "a must not be above b, got a=1.0, b=0.0"),
             (lambda: init.trunc_normal_(gc.nn.Parameter(np.zeros(3)), std=0.0),
              r"std finite and > 0, got mean=0.0, std=0.0"),
             (lambda: init.trunc_normal_(gc.nn.Parameter(np.zeros(3)), std=-1.0),
              r"std finite and > 0, got mean=0.0, std=-1.0"),
             # torch refuses these too (numpy's raw ValueError / OverflowError, NaNs before)
             (lambda: init.normal_(gc.nn.Parameter(np.zeros(3)), 0.0, -1.0),
              r"init.normal_: mean must be finite and std finite and >= 0, got mean=0.0, "
              r"std=-1.0"),
             (lambda: init.normal_(gc.nn.Parameter(np.zeros(3)), 0.0, math.nan), "std=nan"),
             (lambda: init.normal_(gc.nn.Parameter(np.zeros(3)), math.nan), "mean=nan"),
             (lambda: init.uniform_(gc.nn.Parameter(np.zeros(3)), 1.0, 0.0),
              r"init.uniform_: the bounds must be finite with a <= b, got a=1.0, b=0.0"),
             (lambda: init.uniform_(gc.nn.Parameter(np.zeros(3)), 0.0, math.inf), "b=inf"),
             (lambda: init.uniform_(gc.nn.Parameter(np.zeros(3)), -1e308, 1e308),
              r"init.uniform_: b - a must be at most float64's largest value "
              r"1.7976931e\+308, as in PyTorch, got a=-1e\+308, b=1e\+308")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message):
            make()


def _torch_or_none(fill):
    """torch's result of fill() as a numpy array (float64 where it is floating point: numpy
    holds no torch bfloat16), or None where torch refuses it."""
    try:
        result = fill()
    except (RuntimeError, ValueError, TypeError, OverflowError):
        return None
    return (result.double() if result.is_floating_point() else result).numpy()


INT_DTYPES = [("int32", torch.int32), ("int64", torch.int64), ("uint8", torch.uint8),
              ("bool", torch.bool)]


@pytest.mark.parametrize("dtype,torch_dtype", INT_DTYPES)
def test_fills_of_integer_and_bool_tensors_are_torchs(dtype, torch_dtype):
    """ones_, zeros_, constant_, eye_ and dirac_ fill integer and bool tensors, as torch's
    (they were refused as 'not floating point'): constant_ truncates toward zero, a bool
    tensor takes nonzero as True, and a value outside the dtype's range is refused where
    torch refuses it."""
    for val in (2.7, -2.7, -0.5, 0, 5, True, 1e20, 255, 256, 2 ** 31 - 1, 2 ** 31, 2 ** 63,
                math.nan, math.inf, np.float32(-3.9), -1, -255, -256, -1.0, np.int64(-3),
                2 ** 64, -2 ** 63 - 1):  # (torch wraps -1 .. -255 in uint8, no int past 64 bits)
        want = _torch_or_none(lambda: torch.nn.init.constant_(
            torch.zeros(3, dtype=torch_dtype), float(val) if isinstance(val, np.floating)
            else int(val) if isinstance(val, np.integer) else val))
        if want is None:
            with pytest.raises(gc.GraphcError, match=f"init.constant_: val .* does not fit "
                               f"(the tensor's {dtype}|a 64-bit integer)"):
                init.constant_(np.zeros(3, dtype), val)
        else:
            got = init.constant_(np.zeros(3, dtype), val)
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got, want, err_msg=repr(val))
    t = np.full((2, 3), 7, dtype)  # a graphc tensor, filled in place (one holds no uint8)
    t = t if dtype == "uint8" else gc.tensor(t)
    array = t if isinstance(t, np.ndarray) else t.data
    for fill in ("ones_", "zeros_", "eye_"):
        assert getattr(init, fill)(t) is t and (t is array or t.data is array)
        np.testing.assert_array_equal(array, getattr(torch.nn.init, fill)(
            torch.full((2, 3), 7, dtype=torch_dtype)).numpy())
    np.testing.assert_array_equal(init.dirac_(np.full((4, 2, 3, 3), 7, dtype), 2),
                                  torch.nn.init.dirac_(torch.full((4, 2, 3, 3), 7,
                                                                  dtype=torch_dtype), 2))


FLOAT_DTYPES = [(np.float32, torch.float32), (np.float16, torch.float16),
                (ml_dtypes.bfloat16, torch.bfloat16), (np.float64, torch.float64)]


def test_a_0d_integer_val_fills_its_exact_int_as_torchs():
    """Review r9 of 471d947: a 0-d integer array or tensor as constant_'s val went through a
    float (np.array(2**62 + 1) filled 2**62, torch's 0-d tensor fills 2**62 + 1) and was not
    wrapped as its int is (np.array(-1) in uint8 was refused, torch fills 255)."""
    from runtime.eager import Tensor
    for val, dtype, torch_dtype in ((2 ** 62 + 1, np.int64, torch.int64),
                                    (2 ** 53 + 1, np.uint64, torch.uint64),
                                    (-1, np.uint8, torch.uint8), (-255, np.uint8, torch.uint8),
                                    (-7, np.int8, torch.int8), (3, np.float32, torch.float32)):
        want = torch.nn.init.constant_(torch.zeros(2, dtype=torch_dtype), torch.tensor(val))
        for given in (np.array(val), Tensor(np.array(val))):
            got = init.constant_(np.zeros(2, dtype), given)
            assert got.tolist() == want.tolist(), (val, dtype, type(given))


def test_uniform_never_fills_b_in_a_narrow_dtype_as_torch():
    """Values drawn in float64 and rounded to the tensor's dtype could be b (bfloat16 in
    [0, 1): 1.0 one time in 512, float16 in [1, 2): 2.0 one in 4096); torch's uniform_ never
    gives b. As torch's, the top value is the one below b."""
    for dtype, a, b in ((ml_dtypes.bfloat16, 0.0, 1.0), (np.float16, 1.0, 2.0),
                        (np.float32, 100.0, 101.0)):
        t = gc.nn.Parameter(np.zeros((1000, 1000), dtype))
        init.uniform_(t, a, b, rng=np.random.default_rng(0))
        values = t.data.astype(np.float64)
        below = float(np.nextafter(np.asarray(b, dtype), np.asarray(-np.inf, dtype)))
        assert values.min() >= a and values.max() == below, (dtype, values.max())
    reference = torch.empty(1000, 1000, dtype=torch.bfloat16).uniform_(0.0, 1.0)
    assert reference.max().item() < 1.0
    t = gc.nn.Parameter(np.zeros((3,), np.float32))
    assert (init.uniform_(t, 2.0, 2.0).data == 2.0).all()  # a == b: that value, as torch


def test_uniform_where_a_and_b_round_to_one_value_fills_it_as_torch():
    """Review r1: the clamp to the value below b filled every element with it where a < b
    round to one value of the dtype, below a (float32 [1, 1 + 1e-8): 0.99999994, bfloat16
    [0.999, 1): 0.99609375); torch fills the value they round to."""
    for dtype, tdtype, a, b in ((np.float32, torch.float32, 1.0, 1.0 + 1e-8),
                                (ml_dtypes.bfloat16, torch.bfloat16, 0.999, 1.0),
                                (np.float16, torch.float16, 1.0, 1.0001)):
        t = gc.nn.Parameter(np.zeros((100,), dtype))
        init.uniform_(t, a, b, rng=np.random.default_rng(0))
        want = torch.empty(100, dtype=tdtype).uniform_(a, b).double().numpy()
        np.testing.assert_array_equal(t.data.astype(np.float64), want)


def test_uniform_and_constant_past_a_float_dtypes_range_are_refused_as_torch():
    """A float32 (float16, bfloat16) tensor's uniform_ bounds or constant_ value past its
    dtype's range filled inf, where torch refuses them; so does a b - a past it. normal_'s
    draws past it are inf, as torch's (without numpy's overflow warning)."""
    for dtype, torch_dtype in FLOAT_DTYPES:
        name, largest = np.dtype(dtype).name, float(torch.finfo(torch_dtype).max)
        for a, b in [(-1e39, 1e39), (0.0, 1e39), (-1e39, 0.0), (3e38, 3.4e38), (-3e38, 3e38),
                     (-6e4, 6e4), (0.0, 65519.0), (0.0, 65504.0), (-1e308, 1e308),
                     (0.0, largest), (-1.0, 2.0)]:
            refused = _torch_or_none(lambda: torch.nn.init.uniform_(
                torch.zeros(4, dtype=torch_dtype), a, b)) is None
            if refused:
                with pytest.raises(gc.GraphcError, match=f"init.uniform_: (the bounds must be "
                                   f"within|b - a must be at most) {name}'s"):
                    init.uniform_(np.zeros(4, dtype), a, b)
            else:
                values = init.uniform_(np.zeros(4, dtype), a, b).astype(np.float64)
                assert np.isfinite(values).all() and (values >= a).all() and \
                    (values <= b).all(), (name, a, b)
        for val in (1e39, 7e4, -7e4, 65504.0, math.inf, -math.inf, math.nan, 3.4e38, 0.1,
                    2 ** 63, 2 ** 64 - 1, 2 ** 64):  # (bfloat16 raised a raw TypeError)
            want = _torch_or_none(lambda: torch.nn.init.constant_(
                torch.zeros(2, dtype=torch_dtype), val))
            if want is None:
                with pytest.raises(gc.GraphcError, match=f"init.constant_: val .* does not "
                                   f"fit (the tensor's {name}|a 64-bit integer)"):
                    init.constant_(np.zeros(2, dtype), val)
            else:
                np.testing.assert_array_equal(
                    init.constant_(np.zeros(2, dtype), val).astype(np.float64),
                    want, err_msg=f"{name} {val}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = init.normal_(np.zeros(2000, np.float32), 0.0, 1e39)
    theirs = torch.nn.init.normal_(torch.zeros(2000), 0.0, 1e39).numpy()
    # (torch's draws of 16 or more are all inf: its float32 path casts the std to inf)
    assert np.isinf(values).mean() > 0.5 and np.isinf(theirs).mean() > 0.5


@pytest.mark.parametrize("kind", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_"])
def test_a_bad_gain_is_refused_naming_the_public_function(kind):
    """A negative or NaN xavier gain was refused as uniform_'s bounds or normal_'s std, and a
    kaiming slope that is no number or an unknown nonlinearity as calculate_gain's, naming
    those inner functions; torch refuses each of them too."""
    xavier = kind.startswith("xavier")
    cases = [(-1.0, "gain must be finite and >= 0, got -1.0"),
             (math.nan, "gain must be finite and >= 0, got nan"),
             ("x", "gain must be a number, got 'x'")] if xavier else \
        [(math.nan, "a (leaky_relu's negative slope) must not be NaN"),
         ("x", "a 'x' is not a valid number")]
    for value, message in cases:
        kwargs = {"gain" if xavier else "a": value}
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            getattr(torch.nn.init, kind)(torch.zeros(3, 4), **kwargs)
        assert_one_line_error(lambda: getattr(init, kind)(np.zeros((3, 4)), **kwargs),
                              f"init.{kind}: {message}", "test_nn_init.py")
    if xavier:  # a gain of inf: torch's xavier_uniform_ refuses it (its normal_ fills +-inf)
        assert_one_line_error(lambda: getattr(init, kind)(np.zeros((3, 4)), gain=math.inf),
                              f"init.{kind}: gain must be finite and >= 0, got inf",
                              "test_nn_init.py")
        assert (getattr(init, kind)(np.ones((3, 4)), gain=0.0) == 0).all()  # torch's too
    else:
        with pytest.raises(ValueError, match="Unsupported nonlinearity"):
            getattr(torch.nn.init, kind)(torch.zeros(3, 4), nonlinearity="swish")
        assert_one_line_error(lambda: getattr(init, kind)(np.zeros((3, 4)),
                                                          nonlinearity="swish"),
                              f"init.{kind}: unsupported nonlinearity 'swish'", "test_nn_init.py")
        # a huge slope: torch's calculate_gain overflows (slope ** 2); the gain is
        # sqrt(2) / |slope|, and inf gives torch's 0
        assert init.calculate_gain("leaky_relu", 1e200) == pytest.approx(math.sqrt(2) / 1e200)
        assert init.calculate_gain("leaky_relu", -1e200) == pytest.approx(math.sqrt(2) / 1e200)
        assert (getattr(init, kind)(np.ones((3, 4)), a=math.inf) == 0).all()
        assert (getattr(torch.nn.init, kind)(torch.ones(3, 4), a=math.inf) == 0).all()


@pytest.mark.parametrize("kind", ["xavier_uniform_", "xavier_normal_"])
def test_xavier_of_an_empty_tensor_fills_nothing(kind):
    # fan_in + fan_out is 0 only without elements (torch divides by it: ZeroDivisionError);
    # as kaiming_*'s zero fan, nothing to fill and the tensor is returned
    for shape in [(0, 0), (0, 0, 3), (4, 3, 0)]:
        t = gc.nn.Parameter(np.zeros(shape))
        assert getattr(init, kind)(t) is t and t.data.shape == shape
    with pytest.raises(ZeroDivisionError):
        getattr(torch.nn.init, kind)(torch.empty(0, 0))


def test_eye_dirac_sparse_are_torchs():
    for shape in [(3, 5), (5, 3), (4, 4)]:
        np.testing.assert_array_equal(init.eye_(np.empty(shape)),
                                      torch.nn.init.eye_(torch.empty(shape)).numpy())
    # Linear's weight is stored (in, out): its eye_ is torch's for the same layer
    layer = gc.nn.Linear(3, 5)
    assert init.eye_(layer.weight) is layer.weight
    np.testing.assert_array_equal(layer.weight.data.T, torch.nn.init.eye_(
        torch.nn.Linear(3, 5).weight.detach()).numpy())
    for shape, groups in [((4, 4, 3), 1), ((6, 4, 3, 5), 2), ((8, 2, 3, 3, 3), 4),
                          ((2, 4, 4), 1), ((6, 1, 2, 2), 3)]:
        np.testing.assert_array_equal(init.dirac_(np.empty(shape), groups), torch.nn.init.dirac_(
            torch.empty(shape), groups).numpy())
    # sparse_: ceil(sparsity x rows) zeros in each column, the rest normal(0, std)
    t = init.sparse_(np.empty((1000, 300)), 0.3, 0.05, np.random.default_rng(5))
    theirs = torch.nn.init.sparse_(torch.empty(1000, 300, dtype=torch.float64), 0.3, 0.05)
    assert ((t == 0).sum(0) == 300).all() and ((theirs == 0).sum(0) == 300).all()
    _moments_match(t[t != 0], theirs[theirs != 0].numpy())
    assert t[t != 0].std() == pytest.approx(0.05, rel=0.01)
    assert len({tuple(np.flatnonzero(column == 0)) for column in t.T}) > 290  # at random
    layer = gc.nn.Linear(200, 50)  # torch's columns: graphc's rows, one per input feature
    init.sparse_(layer.weight, 0.5)
    assert ((layer.weight.data == 0).sum(1) == 25).all()
    cases = [(lambda: init.sparse_(np.empty((3, 3)), 1.5),
              r"sparsity must be in \[0, 1\], got 1.5"),
             (lambda: init.sparse_(np.empty((3, 3)), -0.1), "sparsity must be in"),
             (lambda: init.sparse_(np.empty((3, 3)), 0.5, -1.0), "std must be finite and >= 0"),
             (lambda: init.sparse_(np.empty(3), 0.1), "only tensors with 2 dimensions"),
             (lambda: init.eye_(np.empty((2, 2, 2))), "only tensors with 2 dimensions"),
             (lambda: init.dirac_(np.empty((3, 3))), "only tensors with 3, 4 or 5 dimensions"),
             (lambda: init.dirac_(np.empty((3, 3, 3)), 2),
              r"groups must be a positive int that divides dim 0 \(3\), got 2")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message):
            make()
