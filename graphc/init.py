"""`gc.nn.init`: torch.nn.init's initialisers, on graphc tensors and Parameters.

Each fills `tensor` in place (its `.data` array; a numpy array is filled itself) and returns
it, as torch's `*_` functions do; the values are drawn in float64 and rounded to the
tensor's dtype. Random draws come from `generator` (a numpy Generator; `rng=` is the same
argument under graphc's name) when given, else from graphc.nn's generator, which
`gc.nn.manual_seed(seed)` resets (torch.manual_seed).

Fans (xavier_*, kaiming_*): as torch's `_calculate_fan_in_and_fan_out` (fan_in = size(1) x
the receptive field, fan_out = size(0) x it), except for a Parameter that its layer stores as
the transpose of torch's layout (graphc.nn.Linear's weight is (in_features, out_features),
MultiheadAttention's in_proj_weight (embed_dim, 3 embed_dim): the attributes a layer class
lists in `_TORCH_TRANSPOSED`), whose fans are (size(0), size(1)). So
`kaiming_uniform_(linear.weight)` draws from torch's distribution for the same layer, and a
convolution's, an Embedding's or an RNN's weight (stored as torch's) the same as torch. A
layer of your own that computes x @ W with W (in, out) gets this too by naming W in its
class's `_TORCH_TRANSPOSED`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops.registry import scalar_array
from ir.types import finfo, is_float, is_int
from runtime.eager import Tensor

from . import nn

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_",
           "ones_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "eye_", "dirac_", "sparse_"]


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _array(tensor, name):
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        return tensor
    _fail(f"init.{name}: expected a graphc tensor or Parameter (or a numpy array), got "
          f"{type(tensor).__name__}")


def _fill(tensor, values, name, exact=False):
    """Write `values` into the tensor's own array (a plan, an optimiser or a Trainer may hold
    it), rounded to its dtype. exact: values that an integer or bool tensor holds as they
    are (constant_'s checked value, ones, eye_'s), which torch fills such tensors with."""
    array = _array(tensor, name)
    integral = array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)
    if not (is_float(array.dtype) or exact and integral):  # (is_float: bfloat16 too)
        _fail(f"init.{name}: the tensor is {array.dtype}, not floating point"
              + (", integer or bool" if exact else ""))
    array[...] = values
    return tensor


def _float_dtype(tensor, name):
    """The tensor's dtype, refused where it is no floating-point one (a random draw's)."""
    dtype = _array(tensor, name).dtype
    if not is_float(dtype):
        _fail(f"init.{name}: the tensor is {dtype}, not floating point")
    return dtype


def _number(name, what, value) -> float:
    """A number argument (a bound, a mean, a std, a gain) as a float, by the layers' rule
    (F._number: a 0-d tensor or a bool too, as torch's): numpy's draws and float() took a
    numpy complex as its real part, and a Python complex failed raw inside numpy."""
    return F._number(f"init.{name}: {what}", value, True)


def _generator(generator, rng, name):
    if generator is not None and rng is not None:
        _fail(f"init.{name}: give generator= or rng=, not both (they are the same argument)")
    return nn._rng(generator if generator is not None else rng, f"init.{name}: generator")


def _shape(tensor, name):
    return _array(tensor, name).shape


def _calculate_fan_in_and_fan_out(tensor, name="fans"):
    shape = _shape(tensor, name)
    if len(shape) < 2:
        _fail(f"init.{name}: fan in and fan out can not be computed for a tensor of shape "
              f"{shape}, with fewer than 2 dimensions")
    if len(shape) == 2 and nn._TRANSPOSED.get(id(tensor)) is tensor:
        return shape[0], shape[1]  # (in, out): graphc's x @ W layout
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode, name):
    if mode not in ("fan_in", "fan_out"):
        _fail(f"init.{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, name)
    return fan_in if mode == "fan_in" else fan_out


def calculate_gain(nonlinearity: str, param=None) -> float:
    """torch.nn.init.calculate_gain: the recommended gain for a nonlinearity. A leaky_relu
    slope past 1e154, whose square overflows (torch's OverflowError), gets sqrt(2) / |slope|."""
    return _gain("calculate_gain", nonlinearity, param, "negative_slope")


def _gain(name, nonlinearity, param, what):
    """calculate_gain, its refusals naming `name` and the slope as `what` (its caller's
    argument)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            _fail(f"{name}: {what} {param!r} is not a valid number")
        if abs(slope) > 1e154:  # 1 + slope ** 2 is slope ** 2, which may overflow
            return math.sqrt(2.0) / abs(slope)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    _fail(f"{name}: unsupported nonlinearity {nonlinearity!r}")


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None, *, rng=None):
    """Fill with uniform(a, b) values in [a, b), as torch's (a draw that rounds to b in the
    tensor's dtype takes the value below it); a <= b, both within the tensor's dtype's range and so
    is b - a (torch refuses the rest; a float32 tensor was filled with inf past 3.4e38)."""
    return _uniform(tensor, a, b, generator, rng, "uniform_")


def _uniform(tensor, a, b, generator, rng, name):
    """uniform_, its messages naming `name`: the public function that draws (xavier_*'s)."""
    a, b = _number(name, "a", a), _number(name, "b", b)
    if not (math.isfinite(a) and math.isfinite(b) and a <= b):  # torch's refusal too
        _fail(f"init.{name}: the bounds must be finite with a <= b, got a={a}, b={b}")
    dtype = _float_dtype(tensor, name)
    largest = float(finfo(dtype).max)
    if max(-a, b) > largest:  # torch's "from/to is out of bounds for float"
        _fail(f"init.{name}: the bounds must be within {dtype}'s range (+-{largest:.8g}), as in "
              f"PyTorch, got a={a}, b={b}")
    if b - a > largest:  # torch's refusal too (float64's: numpy's raw OverflowError)
        _fail(f"init.{name}: b - a must be at most {dtype}'s largest value {largest:.8g}, as "
              f"in PyTorch, got a={a}, b={b}")
    gen = _generator(generator, rng, name)
    _fill(tensor, gen.uniform(a, b, _shape(tensor, name)), name)
    if a < b:
        # a draw rounded to the dtype may be b (bfloat16's [0, 1): 1.0 one time in 512),
        # which torch's never is: it takes the value below b
        # (never below a: where a and b round to one value of the dtype, that value, as
        # torch's; the value below b there was below a)
        array = _array(tensor, name)
        top = np.nextafter(np.asarray(b, array.dtype), np.asarray(-np.inf, array.dtype))
        np.minimum(array, np.maximum(top, np.asarray(a, array.dtype)), out=array)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None, *, rng=None):
    """Fill with normal(mean, std) values; std >= 0 (as torch) and both finite (torch fills
    with inf or NaN for a non-finite mean; here it is refused, as a NaN std is). Draws past
    the dtype's range are inf, as torch's (a float32 tensor with std=1e39)."""
    return _normal(tensor, mean, std, generator, rng, "normal_")


def _normal(tensor, mean, std, generator, rng, name):
    """normal_, its messages naming `name`: the public function that draws."""
    mean, std = _number(name, "mean", mean), _number(name, "std", std)
    if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):  # torch's: std >= 0
        _fail(f"init.{name}: mean must be finite and std finite and >= 0, got mean={mean}, "
              f"std={std}")
    _float_dtype(tensor, name)
    gen = _generator(generator, rng, name)
    with np.errstate(over="ignore"):  # (inf where a draw overflows the dtype, as torch's)
        return _fill(tensor, gen.normal(mean, std, _shape(tensor, name)), name)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None, *, rng=None):
    """Fill with normal(mean, std) values truncated to [a, b] (absolute bounds, as torch's,
    not in units of std; infinite ones too). Drawn by the inverse CDF of one uniform draw
    each, in log space and on the side of the mean where the interval's tail lies (so that
    an interval many stds from the mean still gets its truncated normal: (1 + erf(x)) / 2
    rounds to 1 there, and torch's former inverse-CDF method, which graphc had, put every
    value on b); torch now draws by rejection, the same law with other values. Where both
    bounds lie within one std of the mean it inverts erf instead (log Phi is log(1/2) to
    1e-16 there, so an interval narrower than that in stds, [-1, 1] with std=1e30, fell on
    the mean; erf keeps its precision near 0); a == b fills that value, as torch's."""
    mean, std, a, b = (_number("trunc_normal_", what, value) for what, value in
                       (("mean", mean), ("std", std), ("a", a), ("b", b)))
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        _fail(f"init.trunc_normal_: mean must be finite and std finite and > 0, got "
              f"mean={mean}, std={std}")
    if not a <= b:  # (a NaN bound too)
        _fail(f"init.trunc_normal_: a must not be above b, got a={a}, b={b}")
    gen = _generator(generator, rng, "trunc_normal_")
    shape = _shape(tensor, "trunc_normal_")
    low, high = (a - mean) / std, (b - mean) / std
    if -1.0 <= low and high <= 1.0:  # near the mean: erf(x / sqrt 2) = 2 Phi(x) - 1
        lo, hi = special.erf(low / math.sqrt(2.0)), special.erf(high / math.sqrt(2.0))
        z = special.erfinv(lo + gen.uniform(0.0, 1.0, shape) * (hi - lo)) * math.sqrt(2.0)
        return _fill(tensor, np.clip(np.clip(z, low, high) * std + mean, a, b),
                     "trunc_normal_")
    flip = low + high > 0  # mostly above the mean: draw -z from [-high, -low] instead
    if flip:
        low, high = -high, -low
    log_low, log_high = special.log_ndtr(low), special.log_ndtr(high)
    if log_high == -math.inf:  # beyond ~1e154 stds (low ** 2 overflows; NaNs followed):
        return _fill(tensor, min(max(mean, a), b), "trunc_normal_")  # all on the near bound
    u = gen.uniform(0.0, 1.0, shape)
    # log(Phi(low) + u (Phi(high) - Phi(low))), accurate where both are tiny
    z = special.ndtri_exp(log_high + np.log1p(u * np.expm1(log_low - log_high)))
    z = np.clip(z, low, high)
    return _fill(tensor, np.clip((-z if flip else z) * std + mean, a, b), "trunc_normal_")


def constant_(tensor, val: float):
    """Fill with `val`, a number (a 0-d tensor or a bool too, as torch's), as torch's fill_:
    a float tensor takes it rounded (inf and NaN too), one of ints truncated toward zero, a
    bool one nonzero as True; a finite value past the dtype's range (1e39 in float32, 256 or
    -0.5 in uint8) and NaN or inf in ints are refused. As torch's, an integer val must fit
    int64 or uint64 (torch's OverflowError), and a negative one down to -max wraps in an
    unsigned dtype (-1 fills a uint8 tensor with 255)."""
    number = _whole_number(val)
    if number is None:
        number = _number("constant_", "val", val)
    dtype = _array(tensor, "constant_").dtype
    if isinstance(number, int) and not -2 ** 63 <= number < 2 ** 64:
        _fail(f"init.constant_: val {number} does not fit a 64-bit integer, as in PyTorch")
    integral = np.issubdtype(dtype, np.integer)
    if integral or is_float(dtype):
        info = np.iinfo(dtype) if integral else finfo(dtype)
        low, high = (info.min, info.max) if integral else (float(info.min), float(info.max))
        if integral and low == 0 and isinstance(number, int) and -high <= number < 0:
            number += high + 1  # torch's two's complement wrap of a negative int
        elif not integral and isinstance(number, int):
            number = float(number)  # (ml_dtypes' bfloat16 takes no int past int64)
        finite = isinstance(number, int) or math.isfinite(number)
        if (finite or integral) and not (finite and low <= number <= high):
            span = f"{low} to {high}" if integral else f"+-{high:.8g}"
            _fail(f"init.constant_: val {number} does not fit the tensor's {dtype} ({span}), "
                  "as in PyTorch")
        if integral:
            number = math.trunc(number)
    return _fill(tensor, number, "constant_", exact=True)


def _whole_number(val) -> int | None:
    """constant_'s val as the exact int it is: a Python or numpy integer, or a 0-d integer
    array or tensor (as torch's fill_ reads a 0-d integer tensor: np.array(2**62 + 1) went
    through a float and filled 2**62, np.array(-1) was refused in uint8 where -1 wraps), or
    None for any other val (_number's: a float, a bool, a 0-d float array ...)."""
    if is_int(val):
        return int(val)
    if getattr(val, "shape", None) != ():
        return None
    held = scalar_array(val)
    return int(held) if held is not None and held.dtype.kind in "iu" else None


def zeros_(tensor):
    """Fill with zeros (an integer or bool tensor too, as torch's)."""
    return _fill(tensor, 0, "zeros_", exact=True)


def ones_(tensor):
    """Fill with ones (an integer or bool tensor too, as torch's)."""
    return _fill(tensor, 1, "ones_", exact=True)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None, *, rng=None):
    """Glorot: uniform(-bound, bound), bound = gain sqrt(6 / (fan_in + fan_out))."""
    gain = _xavier_gain(gain, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    if fan_in + fan_out == 0:  # no elements to fill (torch divides by zero)
        return tensor
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _uniform(tensor, -bound, bound, generator, rng, "xavier_uniform_")


def _xavier_gain(gain, name):
    """xavier_*'s gain, a number, finite and >= 0: a negative or NaN one was refused as
    uniform_'s bounds or normal_'s std, naming that inner function (torch's too)."""
    gain = _number(name, "gain", gain)
    if not (math.isfinite(gain) and gain >= 0):  # (torch's xavier_normal_ fills +-inf at inf)
        _fail(f"init.{name}: gain must be finite and >= 0, got {gain}")
    return gain


def xavier_normal_(tensor, gain: float = 1.0, generator=None, *, rng=None):
    """Glorot: normal(0, gain sqrt(2 / (fan_in + fan_out)))."""
    gain = _xavier_gain(gain, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    if fan_in + fan_out == 0:  # no elements to fill (torch divides by zero)
        return tensor
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return _normal(tensor, 0.0, std, generator, rng, "xavier_normal_")


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None, *, rng=None):
    """He: uniform(-bound, bound), bound = sqrt(3) gain / sqrt(fan), the gain
    calculate_gain(nonlinearity, a) and fan the fan_in or the fan_out (`mode`)."""
    gain = _kaiming_gain(nonlinearity, a, "kaiming_uniform_")
    fan = _calculate_correct_fan(tensor, mode, "kaiming_uniform_")
    if fan == 0:  # torch warns and leaves it
        return tensor
    bound = math.sqrt(3.0) * gain / math.sqrt(fan)
    return _uniform(tensor, -bound, bound, generator, rng, "kaiming_uniform_")


def _kaiming_gain(nonlinearity, a, name):
    """calculate_gain(nonlinearity, a), its refusals naming kaiming_*: an unknown
    nonlinearity, a slope `a` that is no number or NaN (uniform_'s NaN bounds before)."""
    gain = _gain(f"init.{name}", nonlinearity, a, "a")
    if math.isnan(gain):
        _fail(f"init.{name}: a (leaky_relu's negative slope) must not be NaN")
    return gain


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None, *, rng=None):
    """He: normal(0, gain / sqrt(fan)), as kaiming_uniform_."""
    gain = _kaiming_gain(nonlinearity, a, "kaiming_normal_")
    fan = _calculate_correct_fan(tensor, mode, "kaiming_normal_")
    if fan == 0:
        return tensor
    return _normal(tensor, 0.0, gain / math.sqrt(fan), generator, rng, "kaiming_normal_")


def _dims(tensor, name, allowed):
    shape = _shape(tensor, name)
    if len(shape) not in allowed:
        counts = ", ".join(map(str, allowed[:-1])) + " or " * (len(allowed) > 1) + \
            str(allowed[-1])
        _fail(f"init.{name}: only tensors with {counts} dimensions are supported, got shape "
              f"{shape}")
    return shape


def eye_(tensor):
    """The identity matrix of a 2-d tensor's shape (ones on the main diagonal), as torch's;
    its transpose is the identity of the transposed shape, so a weight stored transposed
    (Linear's) gets the same layer as torch's."""
    return _fill(tensor, np.eye(*_dims(tensor, "eye_", (2,)), dtype=int), "eye_", exact=True)


def dirac_(tensor, groups: int = 1):
    """A 3-, 4- or 5-d convolution weight (out, in / groups, *kernel) that passes its input
    through, as torch's: in each of `groups` groups of output channels, channel d of the
    group takes input channel d at the kernel's centre (size // 2), as far as both go."""
    shape = _dims(tensor, "dirac_", (3, 4, 5))
    if not is_int(groups) or groups < 1 or shape[0] % groups:
        _fail(f"init.dirac_: groups must be a positive int that divides dim 0 ({shape[0]}), "
              f"got {groups!r}")
    per_group = shape[0] // int(groups)
    values = np.zeros(shape, int)  # (exact: an integer or bool tensor too, as torch's)
    centre = tuple(size // 2 for size in shape[2:])
    for g in range(int(groups)):
        for d in range(min(per_group, shape[1])):
            values[(g * per_group + d, d) + centre] = 1
    return _fill(tensor, values, "dirac_", exact=True)


def sparse_(tensor, sparsity: float, std: float = 0.01, generator=None, *, rng=None):
    """A 2-d tensor of normal(0, std) values with ceil(sparsity x rows) zeros, at random,
    in each column, as torch's (Martens 2010). Rows and columns are torch's: a weight its
    layer stores transposed (Linear's (in, out)) gets its zeros along its second axis, so
    that the layer is torch's."""
    shape = _dims(tensor, "sparse_", (2,))
    sparsity, std = _number("sparse_", "sparsity", sparsity), _number("sparse_", "std", std)
    if not 0 <= sparsity <= 1:
        _fail(f"init.sparse_: sparsity must be in [0, 1], got {sparsity}")
    if not (math.isfinite(std) and std >= 0):
        _fail(f"init.sparse_: std must be finite and >= 0, got {std}")
    gen = _generator(generator, rng, "sparse_")
    array = _array(_fill(tensor, gen.normal(0.0, std, shape), "sparse_"), "sparse_")
    torch_view = array.T if nn._TRANSPOSED.get(id(tensor)) is tensor else array
    rows, cols = torch_view.shape
    zeros = math.ceil(sparsity * rows)
    # a random permutation of the rows for each column: the first `zeros` of it
    chosen = gen.uniform(0.0, 1.0, (rows, cols)).argsort(axis=0)[:zeros]
    torch_view[chosen, np.arange(cols)] = 0
    return tensor


def orthogonal_(tensor, gain: float = 1, generator=None, *, rng=None):
    """A (semi-)orthogonal matrix times `gain`, as torch's: the Q of the QR decomposition of
    a normal matrix (size(0), numel / size(0)), its column signs those of R's diagonal (so
    that it is uniform over orthogonal matrices), transposed where there are fewer rows."""
    gain = _number("orthogonal_", "gain", gain)
    shape = _shape(tensor, "orthogonal_")
    if len(shape) < 2:
        _fail(f"init.orthogonal_: only tensors with 2 or more dimensions are supported, got "
              f"shape {shape}")
    if math.prod(shape) == 0:
        return tensor
    gen = _generator(generator, rng, "orthogonal_")
    rows = shape[0]
    cols = math.prod(shape) // rows
    flat = gen.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (q * gain).reshape(shape), "orthogonal_")


def __getattr__(name):  # `from graphc.nn import init`: this module, as torch.nn.init
    if name == "init":
        import sys
        return sys.modules[__name__]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
