"""The functional front end (`graphc.exp`, `graphc.softmax`, ...).

Each function canonicalises its arguments and calls `apply`, so the same call builds a graph
node on symbolic values and computes on concrete ones. Composite functions (mean, layer_norm,
cross_entropy, ...) are written with primitives and so are differentiable to any order.

This module defines sum, max, min, abs, pow, round, any and all, as numpy's namespace does:
inside it, Python's own are `builtins.any(...)` and so on.
"""
from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import numbers
import math
import threading
from typing import NamedTuple

import numpy as np

from ..errors import GraphcError, TracedNumberError, a_type, user_location, with_article
from ..shown import shown
from ..types import (INT_DTYPES, Dim, InconclusiveDim, as_dim, as_dtype, broadcast_shapes, finfo,
                     fits_int, floor_div, has_negative_size, holds_when_bound, is_float, is_half,
                     is_int, is_real, is_real_dtype, may_be_negative, negative_size_error,
                     parse_dim, range_length, unsupported_dtype)
from . import precision
from .registry import (SymbolicValue, _called_op, apply, holds_values, innermost_interpreter,
                       input_symbols, is_weak_scalar, named_sizes, refuse_array_container,
                       refuse_foreign_array, refuse_operand, refuse_unsupported_dtype,
                       scalar_array)

# The functional API, as `graphc` re-exports it (not numpy, math or the registry's apply)
__all__ = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "exp", "log",
           "sqrt", "rsqrt", "tanh", "sin", "cos", "sigmoid", "relu", "abs", "sign", "erf",
           "log1p", "expm1", "softplus", "log_sigmoid", "logsigmoid", "floor", "ceil", "round",
           "isnan", "isfinite", "isinf", "tan", "arcsin", "arccos", "arctan", "arctan2",
           "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "asin", "acos", "atan", "atan2",
           "asinh", "acosh", "atanh", "log2", "log10", "exp2", "reciprocal", "trunc",
           "floor_divide", "remainder", "mod", "fmod", "logaddexp", "hypot", "square", "clip",
           "std", "logsumexp", "any", "all", "cumsum", "ValuesIndices",
           "tril", "triu", "eye",
           "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
           "logical_and", "logical_or", "logical_not", "logical_xor", "where", "stop_gradient", "gelu",
           "cast", "astype", "sum", "max", "min", "argmax", "argmin", "mean", "var", "reshape", "transpose",
           "swapaxes", "broadcast_to", "expand_dims", "squeeze", "unsqueeze", "permute",
           "flatten", "unbroadcast", "slice_",
           "pad_slice", "getitem", "concat", "concatenate", "cat", "stack", "split", "take",
           "embedding", "scatter_add", "one_hot", "dynamic_slice", "dynamic_update_slice",
           "matmul", "einsum", "softmax", "log_softmax",
           "layer_norm", "group_norm", "layer_norm_grad", "layer_norm_wgrad", "gelu_grad", "softmax_grad",
           "cross_entropy", "dropout", "tril_mask", "masked_fill", "full", "zeros", "ones",
           "zeros_like", "ones_like", "arange",
           "nll_loss", "mse_loss", "silu", "leaky_relu", "rms_norm", "conv1d", "conv2d", "max_pool2d",
           "avg_pool2d"]


def _shape(x, opname=""):
    if hasattr(x, "shape"):
        return tuple(x.shape)
    refuse_array_container(x, opname)  # (np.shape read each traced value as an array)
    return np.shape(x)


def _ndim(x):
    return len(_shape(x))


def _dtype(x, opname=""):
    if isinstance(x, (list, tuple)):  # (eager tensors in a list: numpy reads them)
        refuse_array_container(x, opname, traced_only=True)
    try:
        dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
    except TypeError:  # (a torch tensor's dtype: its one line, naming the op called)
        refuse_foreign_array(x, opname)
        raise
    # An np.longdouble scalar is a weak float (registry.is_weak_scalar), lifted as an
    # np.float64 one is; its own float128, which the IR lacks, is no is_float: floor gave it
    # back unrounded, reciprocal refused it. (A longdouble array keeps float128: refused.)
    return _FLOAT64 if dtype is _LONGDOUBLE and isinstance(x, np.generic) else dtype


_LONGDOUBLE, _FLOAT64 = np.dtype(np.longdouble), np.dtype(np.float64)


def _runs_now(x) -> bool:
    """Whether an op on x computes at once: x is an array or an eager tensor and no graph is
    being built. The ops that leave such an x as it is (floor of integers, a cast to its own
    dtype, a reshape to its own shape) then still give a result of their own, as PyTorch's
    and JAX's do: handing back x itself, `y = gc.floor(a)` was the caller's array `a` (so
    was y's value after `a[0] = 5`), and `y += 1` on a tensor changed x too. Traced, x itself
    is right: no node is needed."""
    return (hasattr(x, "shape") and not isinstance(x, (SymbolicValue, np.generic))
            and innermost_interpreter() is None)


def _unchanged(x):
    """x as the result of an op that computes x itself: a copy where it runs now."""
    return apply("cast", x, dtype=_dtype(x)) if _runs_now(x) else x


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _flag(name, what, value) -> bool:
    """A public True/False setting `what` of function `name`, as a bool (numpy's np.bool_
    taken too); anything else refused in one line: read by its truth, keepdims='no' or
    reverse='no' would be True, and the call would silently do what it was told not to."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(f"{name}: {what} must be True or False, got {value!r}")
    return bool(value)


def takes_inplace(function=None, *, keyword_only=False):
    """Decorate a torch.nn.functional function that torch gives an `inplace=` (F.relu(x,
    inplace=True)): the function takes it, True or False (_flag), by keyword or in torch's
    place after its positional settings, with the layers' semantics (graphc.nn's
    _keep_inplace): no effect, since graphc's ops never overwrite their input (a traced value
    has no storage, an eager result is a new array), so the result is the same new value
    either way. keyword_only: where the function's positional arguments are not torch's
    (gc.dropout's rate, seed), so torch's fourth positional would land elsewhere."""
    if function is None:
        return functools.partial(takes_inplace, keyword_only=keyword_only)
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    position = builtins.sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in params)  # (before `*`)
    kind = inspect.Parameter.KEYWORD_ONLY if keyword_only else \
        inspect.Parameter.POSITIONAL_OR_KEYWORD
    params.insert(len(params) if keyword_only else position,
                  inspect.Parameter("inplace", kind, default=False))
    with_inplace_signature = signature.replace(parameters=params)

    @functools.wraps(function)
    def with_inplace(*args, **kwargs):
        if len(args) > position and not keyword_only:  # (torch's positional inplace; bound
            # by the whole signature, so a value given twice is a TypeError, as Python's)
            try:
                bound = with_inplace_signature.bind(*args, **kwargs)
            except TypeError as exc:  # (bind's words name no function: 'too many
                # positional arguments', where Python's said 'relu() takes 1 positional ...')
                raise TypeError(f"{function.__name__}(): {exc}") from None
            inplace = bound.arguments.pop("inplace")
            args, kwargs = bound.args, bound.kwargs
        else:
            inplace = kwargs.pop("inplace", False)
        _flag(function.__name__, "inplace", inplace)
        return function(*args, **kwargs)

    with_inplace.__signature__ = with_inplace_signature
    return with_inplace


def _rounded_once(fn, x, *args):
    """fn of a half x computed on its float32 copy and rounded once, as torch's: each piece
    rounded to half (hardsigmoid's x / 6 before the + 0.5, mish's tanh before the product)
    put the result up to hundreds of ulps off, and half sums and squares overflow."""
    return cast(fn(cast(x, "float32"), *args), _dtype(x))


class _Default(int):
    """An int default that a value given can be told from (`is`), so that torch's keyword
    beside numpy's is refused even where the value given equals the default."""


_AXIS_0, _AXIS_LAST, DDOF_0 = _Default(0), _Default(-1), _Default(0)


class _NoDim:
    """The default of torch's dim=: not given (an explicit dim=None is torch's spelling of
    every dim, which makes var and std torch's)."""
    __slots__ = ()

    def __repr__(self):
        return "<dim not given>"


NO_DIM = _NoDim()


def _axis_or_dim(fn, axis, dim, default):
    """numpy's `axis` or torch's `dim`, whichever was given (`axis` is given unless it is
    `default`); both is refused."""
    if dim is NO_DIM:
        return axis
    if axis is not default:
        _fail(f"{fn}: both axis= (numpy's) and dim= (torch's) given; pass one")
    return dim


def _axis(axis, ndim, what=None):
    """`axis` of an ndim-d value as 0..ndim-1 (a 0-d value takes 0). An error names `what`
    ('roll: axis', 'unsqueeze: dim'), by default the axis of the op-library function the
    user called: 'swapaxes: axis 3 is out of range for a 2-d value', and var's, not the
    mean's it is computed with."""
    if not is_int(axis):  # None, "1", 1.5, True, a timedelta64: one line, not a TypeError
        _fail(f"{_axis_name(what)} must be an int, got {axis!r}")
    if not -ndim <= axis < builtins.max(ndim, 1):
        _fail(f"{_axis_name(what)} {axis} is out of range for a {ndim}-d value")
    # int(): a numpy integer (np.int64(0), as numpy and JAX take) is stored as a Python int,
    # which the IR's text and JSON forms hold
    return int(axis) % ndim if ndim else 0


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if is_int(axis) or not _iterable(axis):
        axis = (axis,)  # (1.0 is then refused by _axis in one line)
    if ndim == 0 and builtins.all(is_int(a) and a in (0, -1)
                                  for a in axis):
        return ()  # numpy reduces a scalar over axis 0 or -1: over nothing
    axes = [_axis(a, ndim) for a in axis]
    if len(set(axes)) != len(axes):  # numpy and torch refuse (0, -2) on a 2-d value too
        _fail(f"{_axis_name(None)} {tuple(axis)} names an axis twice")
    return tuple(sorted(axes))


def _axis_name(what):
    """`what`, or 'fn: axis' for the function the user called (read from the stack on the
    error path only, so no call pays for it); 'axis' where no library function is found."""
    if what is not None:
        return what
    called = _called_op(None)
    return "axis" if called is None else f"{called}: axis"


def _iterable(value) -> bool:
    """A tuple, list, range or numpy array of axes or sizes (not a string)."""
    return isinstance(value, (tuple, list, range, np.ndarray)) and np.ndim(value) == 1


def _whole(value, what):
    """An integer argument (a size, a count, an offset), numpy integers included: a float
    or anything else is refused in one line, not truncated as int() would. A traced value
    (a compiled function's argument) has none while the graph is built: its line says so, and
    where it is a Python number the caller passed, that static_argnums would keep it one
    (the value's repr was IR text: 'got <%1:i64[] = input>')."""
    if is_int(value):
        return int(value)
    if isinstance(value, SymbolicValue):
        known = f"{what} must be a Python int known when tracing, got a traced value"
        if tuple(value.shape) != ():
            _fail(f"{known} of shape {tuple(value.shape)}")
        value = value._no_value(known)  # (a probe trace's value: the trace goes on)
        if is_int(value):
            return int(value)
    _fail(f"{what} must be an int, got {value!r}")


def _count(value, what):
    """A count the user gives (rows, segments): an int of at least 0, refused in one line
    (a negative one was numpy's 'negative dimensions are not allowed' from inside)."""
    value = _whole(value, what)
    if value < 0:
        _fail(f"{what} must be non-negative, got {value}")
    return value


def _size(value, what="a size"):
    """A size the user passed (a shape's, reshape's, eye's, arange's bound) as a dimension;
    anything else is one line, "<what> must be an int, got ...". A str is a symbolic size
    ('n', '2*n') only where one can be meant: inside a trace, where gc.spec's names bind it
    (gc.reshape(x, (3, 'n')) of x = gc.spec(('n', 3))). Eagerly no symbol has a value, and
    a text that names none ('3', '-3') is no symbol either: each is refused as numpy's and
    torch's refuse a str size (read as IR text, eye('3') was a 3 x 3 matrix and eye('-3')
    parse_dim's bare ValueError)."""
    if not isinstance(value, str):
        return as_dim(value, what)
    names = named_sizes()  # (a compiled function's own names, where it is called inline)
    if names is not None and builtins.any(c.isalpha() for c in value):
        try:
            dim = parse_dim(value)
        except ValueError:
            dim = None  # (refused below, in its words)
        if isinstance(dim, Dim):
            # a name it does not declare, or one of its own the call binds to no one size,
            # is refused, as at a call of its own: it was read as the enclosing trace's
            # symbol of that name
            undeclared = sorted(dim.symbols - names.keys())
            if undeclared:
                _not_an_input_size(what, value, undeclared)
            unbound = sorted(s for s in dim.symbols if names[s] is None)
            if unbound:
                _fail(f"{what} {value!r} names {', '.join(unbound)}, to which the compiled "
                      "function's polymorphic_shapes give no one axis size of this call "
                      "(it is called inside a trace), so nothing binds it")
            return dim.evaluate(names)  # (a Dim where the argument's size is one)
    # (an eager vmap's graph runs its ops at once on concrete values: no symbol has a value
    # there either; gc.vmap(lambda v: gc.eye('n')) was "whether -n+127 >= 0 depends on the
    # value of n", naming no function)
    if _in_a_trace(innermost_interpreter()) \
            and builtins.any(c.isalpha() or c == "_" for c in value):  # (it names a symbol)
        try:
            dim = parse_dim(value)
        except ValueError as exc:  # ('n+', 'n-5' bound to be negative)
            _fail(f"{what} must be an int or a symbolic size, got {value!r}: {exc}")
        if isinstance(dim, Dim):
            # a symbol no input's axis has (any, in a plain compile or an eager gc.grad) is
            # refused here, naming the function: ir.specialize's refusal names the op that
            # holds it (eye('n') under gc.grad: 'tri: the symbolic dimension n is not ...')
            unbound = dim.symbols - input_symbols()
            if unbound:
                _not_an_input_size(what, value, sorted(unbound))
        # else its symbols cancel ('n-n' is 0, 'n-n+2' 2): that size for every binding, as
        # x.shape[0] - x.shape[0] is (a Dim that simplifies to 0); it was refused as no int
        return dim
    _fail(f"{what} must be an int, got {value!r}")


def _not_an_input_size(what, value, names):
    _fail(f"{what} {value!r} names {', '.join(names)}, which is not the size of any input's "
          "axis, so no call binds it")


def _in_a_trace(interpreter) -> bool:
    """Whether the graph being built (None: eagerly) is in a trace, where a symbol can be
    bound: not in an eager vmap's graph, nor in a region (a loop body, a branch) inside one
    (gc.vmap(lambda r: gc.fori_loop(0, 2, lambda i, c: c + gc.sum(gc.eye('n')), r)) said
    "whether -n+127 >= 0 depends on the value of n")."""
    while interpreter is not None:
        if getattr(interpreter, "concrete_runs_eagerly", False):
            return False
        if getattr(interpreter, "parent", None) is None:
            return True
        interpreter = interpreter.parent
    return False


def _traced_setting(what, exc):
    """exc, float()'s TracedNumberError for a traced number setting, its line led by the
    setting (`what`: "layer_norm: eps") in place of "float() of a symbolic value"; the
    argument it names, the advice and what transformations read of it kept."""
    said = "float() of a symbolic value"
    lead = f"{what} must be a number, got a traced value"

    def led(text):
        return lead + text[len(said):] if text.startswith(said) else f"{lead}: {text}"
    return TracedNumberError(led(exc.message), exc.locs, exc.arguments, led(exc.reason),
                             exc.advice, exc.value)


def _number(what, value, torch_scalars=True) -> float:
    """A number setting (a slope, an eps, a probability, a fill value, an optimiser's
    momentum: graphc.optim's _real is this) as a float, by torch's rule for a float or Scalar
    argument, the one rule of every setting: a Python or numpy real number (is_real), a bool,
    or a 0-d array or eager tensor of real numbers (bfloat16 too), read once. Anything else
    is one GraphcError line naming the setting, not float()'s TypeError, nor float()'s
    silence: it takes a numpy complex, dropping the imaginary part; a complex 0-d array, an
    ml_dtypes scalar and a traced value are refused. torch_scalars=False: a number only."""
    number = _as_number(value, torch_scalars)
    if number is None:
        if isinstance(value, SymbolicValue) and tuple(value.shape) == ():
            # a compiled function's number argument (layer_norm's eps, var's ddof): the
            # TracedNumberError that names the argument and gives the static_argnums advice
            # ('must be a number, got <%1:f32[] = input>' hid that the user passed a number),
            # led by the setting it is (float()'s own line named neither the function nor
            # the setting: 'float() of a symbolic value', a call the user never wrote)
            try:
                return float(value)  # (a probe trace's value: the trace goes on)
            except TracedNumberError as exc:
                raise _traced_setting(what, exc) from None
        _fail(f"{what} must be a number, got {shown(value)}")  # (a Parameter: one line)
    return number


def _as_number(value, torch_scalars=True):
    """_number's float, or None where `value` is none (for a setting whose line says more
    than 'a number', label_smoothing's range)."""
    if is_real(value):
        return float(value)
    if torch_scalars and not isinstance(value, SymbolicValue):
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        # (not a numpy scalar of ml_dtypes' bfloat16 or float8, which is_real leaves out
        # and torch refuses)
        if hasattr(value, "__array__") and not isinstance(value, np.generic) and \
                getattr(value, "shape", None) == ():
            array = scalar_array(value)  # (a bfloat16 or requires_grad tensor too)
            if array is not None and is_real_dtype(array.dtype):
                return float(array)
    return None


# ---- elementwise ----------------------------------------------------------------------------
def add(a, b): return apply("add", a, b)
def sub(a, b): return apply("sub", a, b)
def mul(a, b): return apply("mul", a, b)
def div(a, b): return apply("div", a, b)
def pow(a, b):
    if is_int(b) and b >= 0 and _is_weak_int(a):
        return _weak_int_power(a, int(b))
    if _is_weak_int(b) and (is_int(a) or _is_weak_int(a)):
        return _weak_int_traced_power(a, b)
    return apply("pow", a, b)


def _is_weak(x) -> bool:
    return _weak_module().is_weak(x)


@functools.cache
def _weak_module():
    """ir.weak, imported once, at the first call (as _operator_mixin below): ir.weak imports
    ir.ops, whose modules import this one. pow asks on every call."""
    from .. import weak
    return weak


def _weakly_typed(x) -> bool:
    """Whether operand x takes the dtype of the tensor it meets: a Python or numpy scalar, an
    eager weak value (runtime.eager.WeakTensor, gc.sqrt(2.0)) or a traced one (ir.weak: a
    compiled function's number argument). A check that exempts numbers from a dtype rule asks
    this, not is_weak_scalar, so that the argument and the literal are taken alike."""
    return is_weak_scalar(x) or getattr(x, "weak", False) is True or _is_weak(x)


def _is_weak_int(x) -> bool:
    return _is_weak(x) and np.dtype(x.dtype).kind in "iu"


def _weak_int_traced_power(base, k):
    """base ** k for a weak integer k (a compiled function's Python-int argument, traced)
    and a weak integer or Python int base: a weak int, as jnp.power gives for an integer
    exponent (pow is a floating-point op), by squaring over k's bits. A k over 64 counts as
    64 or 65 (its parity), so that 7 bits do (each a few scalar ops per call): exact for a
    base of 0 or +-1, and any other power then does not fit int64 (an even base's wraps to
    0, as the full product would; an odd one's to some other value). A negative k gives
    Python's float result truncated, as JAX does for 2 ** -1: (+-1) ** k is +-1, any other
    base 0. Where it meets a narrower tensor its value is checked to fit, as other weak
    ints are (ir.weak.exact_range reads graph.int_powers)."""
    one = k * 0 + 1
    result, square = one, base
    rest = where(k < 0, 0, where(k > 64, 64 + k % 2, k))
    for bit in range(7):
        result = where(rest % 2 == 1, result * square, result)
        rest = rest // 2
        if bit < 6:  # (a Python int base: its squares wrapped as the graph's would be)
            square = _wrapped_int64(square * square) if is_int(square) else square * square
    if is_int(base):
        unit = 1 if base == 1 else 1 - 2 * (k % 2) if base == -1 else 0
    else:
        unit = where(base == 1, one, where(base == -1, 1 - 2 * (k % 2), 0))
    power = where(k < 0, unit, result)  # (0 ** -n: 0, as JAX gives)
    power.graph.int_powers[power] = (base, k)
    return power


def _wrapped_int64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def _weak_int_power(k, n):
    """k ** n for a weak integer k (a compiled function's Python-int argument) and an int
    n >= 0: the int Python computes, weak, as products by squaring, since pow is a
    floating-point op and weak integer products keep their range check (ir.weak)."""
    result, square = None, k
    while n:
        if n & 1:
            result = square if result is None else result * square
        n >>= 1
        if n:
            square = square * square
    return k * 0 + 1 if result is None else result
def maximum(a, b): return apply("maximum", a, b)
def minimum(a, b): return apply("minimum", a, b)
def neg(x): return apply("neg", x)
def exp(x): return apply("exp", x)
def log(x): return apply("log", x)
def sqrt(x): return apply("sqrt", x)
def rsqrt(x): return apply("rsqrt", x)
def tanh(x): return apply("tanh", x)
def sin(x): return apply("sin", x)
def cos(x): return apply("cos", x)
def sigmoid(x): return apply("sigmoid", x)
@takes_inplace
def relu(x): return apply("relu", x)
def abs(x): return apply("abs", x)
def sign(x): return apply("sign", x)
def erf(x): return apply("erf", x)
def erfinv(x): return apply("erfinv", x)  # (gc.random's; not re-exported by graphc)
def log1p(x): return apply("log1p", x)
def expm1(x): return apply("expm1", x)
def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta without overflow, as torch.nn.functional.softplus: x itself
    where beta * x > threshold (torch's linear piece, gradient 1)."""
    beta, threshold = _number("softplus: beta", beta), _number("softplus: threshold", threshold)
    if beta == 0:
        _fail("softplus: beta must not be 0")
    if is_half(_dtype(x)):  # rounded once, as torch's: beta * x and the log rounded to half
        return _rounded_once(softplus, x, beta, threshold)  # were 1 ulp off (beta = 2)
    bx = x if beta == 1 else mul(x, float(beta))
    smooth = apply("softplus", bx)
    # the smooth piece is finite everywhere (logaddexp), so where's unselected branch adds
    # no NaN to the gradient
    return where(greater(bx, float(threshold)), x,
                 smooth if beta == 1 else mul(smooth, 1.0 / float(beta)))


# Integers and bools are whole already: floor, ceil and round give them back unchanged, in
# their dtype (JAX's; numpy 2's floor and ceil), as cast to their own dtype does.
def floor(x): return apply("floor", x) if is_float(_dtype(x)) else _unchanged(x)
def ceil(x): return apply("ceil", x) if is_float(_dtype(x)) else _unchanged(x)
def round(x, decimals=0):
    """To the nearest integer, halves to even (numpy's); decimals as numpy's: x * 10**d
    rounded, then divided back (d < 0: divided, rounded, multiplied)."""
    decimals = _whole(decimals, "round: decimals")
    if not is_float(_dtype(x)):
        if decimals >= 0:
            return _unchanged(x)
        # to tens, hundreds, ...: numpy's way, through float64 and back to x's dtype
        return cast(round(cast(x, "float64"), decimals), _dtype(x))
    # (the ops, not Python's operators: on a 0-d numpy array those give a numpy scalar, which
    # the next op would take as weakly typed, float32)
    if decimals > 0:
        return div(apply("round", mul(x, 10.0 ** decimals)), 10.0 ** decimals)
    if decimals < 0:
        return mul(apply("round", div(x, 10.0 ** -decimals)), 10.0 ** -decimals)
    return apply("round", x)
def isnan(x): return apply("isnan", x)
def isfinite(x): return apply("isfinite", x)
def isinf(x): return apply("isinf", x)
def tan(x): return apply("tan", x)
def arcsin(x): return apply("arcsin", x)
def arccos(x): return apply("arccos", x)
def arctan(x): return apply("arctan", x)
def arctan2(y, x):
    """The angle of the point (x, y), in [-pi, pi], numpy's quadrants and signed zeros."""
    return apply("arctan2", y, x)
def sinh(x): return apply("sinh", x)
def cosh(x): return apply("cosh", x)
def arcsinh(x): return apply("arcsinh", x)
def arccosh(x): return apply("arccosh", x)
def arctanh(x): return apply("arctanh", x)
# numpy 2's array-API names (PyTorch's too)
asin, acos, atan, atan2, asinh, acosh, atanh = arcsin, arccos, arctan, arctan2, arcsinh, \
    arccosh, arctanh
def log2(x): return apply("log2", x)
def log10(x): return apply("log10", x)
def exp2(x): return apply("exp2", x)
def reciprocal(x):
    """1 / x, of floats (integers are refused, as div refuses them)."""
    if not is_float(_dtype(x)):
        _fail(f"reciprocal of {_dtype(x)} values; cast them to a float type first")
    return div(1.0, x)
def trunc(x): return apply("trunc", x) if is_float(_dtype(x)) else _unchanged(x)
def floor_divide(a, b):
    """a // b rounded down (numpy's and Python's), of integers or floats."""
    return apply("floor_divide", a, b)
def remainder(a, b):
    """a % b with the sign of b (numpy's and Python's); fmod's has the sign of a."""
    return apply("remainder", a, b)
mod = remainder
def fmod(a, b): return apply("fmod", a, b)
def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow (-inf for two -inf)."""
    return apply("logaddexp", a, b)
def hypot(a, b):
    """sqrt(a^2 + b^2) without overflow or underflow."""
    return apply("hypot", a, b)
def less(a, b): return apply("lt", a, b)
def less_equal(a, b): return apply("le", a, b)
def greater(a, b): return apply("gt", a, b)
def greater_equal(a, b): return apply("ge", a, b)
def equal(a, b): return apply("eq", a, b)
def not_equal(a, b): return apply("ne", a, b)
def logical_and(a, b): return apply("logical_and", a, b)
def logical_or(a, b): return apply("logical_or", a, b)
def logical_not(x): return apply("logical_not", x)


def logical_xor(a, b):
    """jnp.logical_xor / torch.logical_xor of bool operands (broadcast): a != b, one `ne`
    node; other dtypes are refused as logical_and refuses them."""
    for x in (a, b):
        dtype = _dtype(x, "logical_xor")
        if dtype != _BOOL:
            raise GraphcError(f"logical_xor: needs bool operands, got {dtype}",
                              (user_location(),))
    return apply("ne", a, b)
_BOOL = np.dtype("bool")


def where(cond, a, b):
    # a Python or numpy bool condition is a mask, not a weak scalar taking a's float dtype
    # (numpy's 0-d comparisons give np.bool_ scalars: LossScaler.update on numpy state)
    if isinstance(cond, (bool, np.bool_)):
        cond = np.asarray(cond)
    elif getattr(cond, "dtype", _BOOL) != _BOOL or isinstance(cond, (int, float)):
        # refused here, before a number operand takes the condition's dtype (like_dtype)
        # and is blamed: "where: float scalar 1.0 meets an integer tensor"; a Python number
        # (no dtype) too, which took a's ("where(f64[], ...)" for the int 1); a torch
        # tensor gets its foreign-array line, naming where; a numpy scalar keeps its dtype
        got = f"the {type(cond).__name__} {cond!r}" if not hasattr(cond, "dtype") \
            else _dtype(cond, "where")
        _fail(f"where: the condition must be bool, got {got}; compare it (cond != 0)")
    plain = [v for v in (a, b) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(plain) == 2 and builtins.any(isinstance(v, float) for v in plain):
        a, b = float(a), float(b)  # where(c, 1.0, 0): a float, as numpy and JAX give
    return apply("where", cond, a, b)
def stop_gradient(x): return apply("stop_gradient", x)


def gelu(x, approximate: str = "tanh"):
    """GELU; approximate='tanh' (GPT-2's) or 'none' (the exact erf form)."""
    return apply("gelu", x, approximate=approximate)


def cast(x, dtype):
    dtype = as_dtype(dtype)
    if _dtype(x) == dtype and not _runs_now(x):
        return x
    return apply("cast", x, dtype=dtype)


astype = cast


# ---- reductions -----------------------------------------------------------------------------
def _torch_axes(fn, axis, keepdims, dim, keepdim, empty_dim_is_every_dim=True):
    """torch's dim= and keepdim= in numpy's axis= and keepdims= places: one of each pair.
    An empty dim (dim=(), dim=[]) reduces every dim, as torch's sum, mean, var and norm
    (numpy's axis=() reduces none, as torch's any and all: empty_dim_is_every_dim=False)."""
    axis = _axis_or_dim(fn, axis, dim, None)
    if empty_dim_is_every_dim and isinstance(dim, (tuple, list)) and not dim:
        axis = None
    if keepdim is not None:
        _flag(fn, "keepdim", keepdim)
        if keepdims is not False:
            _fail(f"{fn}: both keepdims= (numpy's) and keepdim= (torch's) given; pass one")
        keepdims = keepdim
    return axis, keepdims


class ValuesIndices(NamedTuple):
    """What max and min give with torch's dim= (torch.return_types.max): the extreme values
    along dim and their indices."""
    values: object
    indices: object


def _values_indices(fn, x, axis, keepdims, dim, keepdim):
    """torch.max(x, dim=...) and torch.min's (values, indices); without dim= (keepdim=
    alone) the values, as numpy's."""
    axis, keepdims = _torch_axes(fn, axis, keepdims, dim, keepdim)
    if dim is NO_DIM or dim is None:
        return (max if fn == "max" else min)(x, axis, keepdims)
    if not is_int(dim):
        _fail(f"{fn}: dim= takes one dim, as torch's, got {dim!r}; for several use axis=")
    dim = _axis(dim, _ndim(x), f"{fn}: dim")
    from .arrays import _take_along  # (arrays builds on this module)
    # the values are those at the indices, so that the gradient goes to the element indexed
    # alone, as torch's (max's own shares it among tied elements)
    indices = (argmax if fn == "max" else argmin)(x, dim, True)
    values = _take_along(x, indices, dim, in_range=True, name=fn)
    if not keepdims:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return ValuesIndices(values, indices)


def sum(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """The sum along `axis` (torch's `dim`); of booleans, how many are true (int64), as
    numpy's and torch's (the op itself keeps its operand's dtype: a bool sum would be a
    logical or)."""
    _flag("sum", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("sum", axis, keepdims, dim, keepdim)
    if _dtype(x) == np.bool_:
        x = cast(x, "int64")
    return apply("sum", x, axes=_axes(axis, _ndim(x)), keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """The largest element along `axis`, as numpy's; with torch's `dim=`, torch.max's
    (values, indices) pair (ValuesIndices)."""
    _flag("max", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:
        return _values_indices("max", x, axis, keepdims, dim, keepdim)
    return apply("max", x, axes=_axes(axis, _ndim(x)), keepdims=bool(keepdims))


def _refuse_empty(x, axis, what):
    """min and argmin are built on max and argmax: their error for an empty axis, under
    their own name."""
    for a in _axes(axis, _ndim(x)) if _ndim(x) else ():
        if isinstance(_shape(x)[a], int) and _shape(x)[a] == 0:
            _fail(f"{what} over axis {a} of size 0: an empty axis has no smallest element")


def min(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """The smallest element along `axis`, as numpy's; with torch's `dim=`, torch.min's
    (values, indices) pair (ValuesIndices)."""
    _flag("min", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:
        return _values_indices("min", x, axis, keepdims, dim, keepdim)
    _refuse_empty(x, axis, "min")
    if is_float(_dtype(x)):
        return neg(max(neg(x), axis, keepdims))
    if _dtype(x) == np.bool_:  # every element true: none false
        return logical_not(max(logical_not(x), axis, keepdims))
    # -x overflows for the most negative integer; -1 - x (bitwise not) reverses the order
    # of every integer and never overflows
    return sub(-1, max(sub(-1, x), axis, keepdims))


def argmax(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """The index of the largest element along `axis` (torch's `dim`; int64), the first on
    ties and the first NaN where there is one, as numpy's; axis=None: into the flattened
    array. Built from max, a comparison and an integer min, so it has every op's lowering and
    batching rule; it carries no gradient (an index)."""
    _flag("argmax", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("argmax", axis, keepdims, dim, keepdim)
    if axis is None:
        flat = reshape(x, (-1,))
        out = argmax(flat, 0)
        return reshape(out, (1,) * _ndim(x)) if keepdims else out
    if isinstance(axis, (tuple, list)):
        _fail("argmax takes one axis (or None), not a tuple")
    if _ndim(x) == 0 and is_int(axis) and axis in (0, -1):
        return full((), 0, "int64")  # (numpy: axis 0 or -1 of a scalar; its only index)
    ax = _axis(axis, _ndim(x))
    size = _shape(x)[ax]
    if isinstance(size, int) and size == 0:
        _fail(f"argmax over axis {axis} of size 0: an empty axis has no largest element")
    if _dtype(x) == np.bool_:
        x = cast(x, "int32")
    hits = equal(x, max(x, ax, keepdims=True))
    if is_float(_dtype(x)):
        hits = logical_or(hits, not_equal(x, x))  # numpy: the first NaN wins
    positions = reshape(arange(size), tuple(-1 if i == ax else 1 for i in range(_ndim(x))))
    missing = np.int64(np.iinfo(np.int64).max)
    return min(where(hits, positions, missing), ax, keepdims)


def argmin(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """The index of the smallest element along `axis` (torch's `dim`), as numpy's (see
    argmax)."""
    _flag("argmin", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("argmin", axis, keepdims, dim, keepdim)
    if not isinstance(axis, (tuple, list)):
        _refuse_empty(x, axis, "argmin")
    dtype = _dtype(x)
    if is_float(dtype):
        return argmax(neg(x), axis, keepdims)
    if dtype == np.bool_:
        return argmax(logical_not(x), axis, keepdims)
    return argmax(sub(-1, x), axis, keepdims)  # (reverses every integer's order, see min)


def mean(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    _flag("mean", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("mean", axis, keepdims, dim, keepdim)
    axes = _axes(axis, _ndim(x))
    count = math.prod(_shape(x)[a] for a in axes)
    if not is_float(_dtype(x)):
        _fail(f"mean of {_dtype(x)} values; cast them to a float type first")
    if is_half(_dtype(x)):  # in float32, as torch's: a half sum of 256 x 1000.0 is inf
        return _rounded_once(mean, x, axes, keepdims)
    # divided by the count, as numpy's: times its reciprocal is an ulp off for some counts
    # (the mean of 49 ones was 0.9999999999999999)
    if isinstance(count, Dim):  # known per call: a scalar the plan computes from the binding
        return div(sum(x, axes, keepdims), full((), count, _dtype(x)))
    # over no elements the mean is NaN, as numpy's (and PyTorch's): 0 / NaN
    return div(sum(x, axes, keepdims), float(count) if count else math.nan)


def var(x, axis=None, keepdims=False, ddof=DDOF_0, *, dim=NO_DIM, keepdim=None,
        correction=None, unbiased=None):
    """The variance, divided by N - ddof (ddof=0, numpy's and JAX's default). Spelled as
    torch's (dim=, keepdim=, correction= or unbiased=), torch's: divided by N - correction,
    1 unless given (unbiased=False: 0). A half x is computed in float32 (its squares overflow
    or underflow in half), as torch's."""
    _flag("var", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None or correction is not None \
            or unbiased is not None:
        axis, keepdims = _torch_axes("var", axis, keepdims, dim, keepdim)
        ddof = _torch_correction("var", ddof, correction, unbiased)
    elif ddof is not DDOF_0:
        ddof = _ddof("var", "ddof", ddof)
    if not is_float(_dtype(x)):
        _fail(f"var of {_dtype(x)} values; cast them to a float type first")
    if is_half(_dtype(x)):
        return _rounded_once(var, x, axis, keepdims, ddof)
    centred = x - mean(x, axis, keepdims=True)
    squares = centred * centred
    if not ddof:
        return mean(squares, axis, keepdims)
    axes = _axes(axis, _ndim(x))
    count = math.prod(_shape(x)[a] for a in axes)
    if isinstance(count, Dim):  # known per call: divided as below, the divisor chosen per call
        n = full((), count, _dtype(x))
        total, enough = sum(squares, axes, keepdims), greater(n, ddof)
        # (the inf branch's total without a gradient: where sends it a zero cotangent, and
        # 0 * inf would make every gradient NaN)
        return where(enough, div(total, where(enough, n - ddof, 1.0)),
                     stop_gradient(total) * math.inf)
    if count > ddof:  # the sum of squares divided by N - ddof, as numpy's (not rescaled)
        return div(sum(squares, axes, keepdims), float(count - ddof))
    # numpy divides by max(N - ddof, 0): inf, or NaN where the sum is 0
    return mean(squares, axes, keepdims) * math.inf


def std(x, axis=None, keepdims=False, ddof=DDOF_0, *, dim=NO_DIM, keepdim=None,
        correction=None, unbiased=None):
    """The square root of var (numpy's, or torch's when spelled as torch's: see var)."""
    _flag("std", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None or correction is not None \
            or unbiased is not None:
        axis, keepdims = _torch_axes("std", axis, keepdims, dim, keepdim)
        ddof = _torch_correction("std", ddof, correction, unbiased)
    elif ddof is not DDOF_0:
        ddof = _ddof("std", "ddof", ddof)
    if is_half(_dtype(x)):  # in float32, rounded once: a half variance overflows past 65504
        return _rounded_once(std, x, axis, keepdims, ddof)
    return sqrt(var(x, axis, keepdims, ddof))


def _torch_correction(fn, ddof, correction, unbiased):
    """var's and std's divisor N - ddof as torch's: `correction`, else 1 (0 where
    unbiased=False); numpy's ddof beside either is refused, as torch refuses both of its."""
    if ddof is not DDOF_0 and (correction is not None or unbiased is not None):
        torchs = "correction" if correction is not None else "unbiased"
        _fail(f"{fn}: both ddof= (numpy's) and {torchs}= (torch's) given; pass one")
    if correction is not None and unbiased is not None:
        _fail(f"{fn}: both correction= and unbiased= given; pass one, as torch takes one")
    if ddof is not DDOF_0:
        return _ddof(fn, "ddof", ddof)
    if correction is not None:
        return _ddof(fn, "correction", correction)
    return 1 if unbiased is None else int(_flag(fn, "unbiased", unbiased))


def _ddof(fn, name, value):
    """var's or std's ddof= or correction= as a number: what torch's correction takes (a
    number, a bool, a 0-d tensor; numpy's ddof a 0-d array too), an int kept an int. A
    timedelta64 or a Fraction is one line naming it, not float()'s TypeError deep in the
    division, nor its count."""
    if is_int(value):
        return value
    return _number(f"{fn}: {name}", value, torch_scalars=True)  # (a traced one: its advice)


def logsumexp(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """log(sum(exp(x))) over `axis` (torch's `dim`) without overflow: shifted by the
    maximum, as JAX's (an infinite maximum shifts by 0, so all -inf gives -inf and an inf
    gives inf)."""
    _flag("logsumexp", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("logsumexp", axis, keepdims, dim, keepdim)
    axes = _axes(axis, _ndim(x))
    count = math.prod(_shape(x)[a] for a in axes)
    if isinstance(count, int) and count == 0:  # the log of an empty sum, as JAX's and torch's
        # -inf built from x, so that the eager tape reaches x (its gradient: no elements)
        return add(sum(mul(x, 0), axes, keepdims=keepdims), -math.inf)
    # a symbolic axis that may bind to 0 (n-1 at n = 1) has no maximum then: the max is taken
    # over x and one -inf slab along it, which leaves it as it is and defined; the shift is
    # then 0 and the result log(0) = -inf, as the concrete empty case's
    shifted = x
    for a in axes:
        d = _shape(x)[a]
        try:
            surely = not isinstance(d, Dim) or d >= 1
        except InconclusiveDim:
            surely = False
        if not surely and is_float(_dtype(x)):
            slab = tuple(1 if i == a else s for i, s in enumerate(_shape(shifted)))
            shifted = concat([shifted, full(slab, -math.inf, _dtype(x))], a)
    peak = stop_gradient(max(shifted, axes, keepdims=True))
    peak = where(isfinite(peak), peak, zeros_like(peak))
    total = sum(exp(x - peak), axes, keepdims=True)
    if shifted is not x:  # at 0 elements -inf without taking log(0), as the concrete empty
        # case (no numpy "divide by zero" warning); a count >= 1 keeps log(total) as it is
        some = greater(full((), count, "int64"), full((), 0, "int64"))
        total = where(some, total, full((), 1, _dtype(total)))
        out = where(some, log(total) + peak, full((), -math.inf, _dtype(total)))
    else:
        out = log(total) + peak
    return out if keepdims else reshape(out, tuple(d for i, d in enumerate(_shape(x))
                                                   if i not in axes))


def any(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """Whether any element along `axis` (torch's `dim`) is true (non-zero); False over no
    elements."""
    _flag("any", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("any", axis, keepdims, dim, keepdim, False)
    truth = x if _dtype(x) == np.bool_ else not_equal(x, 0)
    return greater(sum(cast(truth, "int64"), axis, keepdims), 0)


def all(x, axis=None, keepdims=False, *, dim=NO_DIM, keepdim=None):
    """Whether every element along `axis` (torch's `dim`) is true (non-zero); True over no
    elements."""
    _flag("all", "keepdims", keepdims)
    if dim is not NO_DIM or keepdim is not None:  # torch's spelling
        axis, keepdims = _torch_axes("all", axis, keepdims, dim, keepdim, False)
    truth = x if _dtype(x) == np.bool_ else not_equal(x, 0)
    return equal(sum(cast(logical_not(truth), "int64"), axis, keepdims), 0)


def cumsum(x, axis=None, reverse=False):
    """Running sums along `axis` (numpy's cumsum; axis=None: of the flattened array), in x's
    dtype as JAX's (of booleans: counts, int64, as numpy's); reverse=True sums from the end
    (JAX's lax.cumsum)."""
    _flag("cumsum", "reverse", reverse)  # (bool('no') was True: summed from the end)
    if _dtype(x) == np.bool_:
        x = cast(x, "int64")
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return apply("cumsum", x, axis=_axis(axis, _ndim(x)), reverse=bool(reverse))


# ---- shapes ---------------------------------------------------------------------------------
def reshape(x, *shape):
    return _reshape(x, shape, "reshape")


def _reshape(x, shape, name):
    """reshape's body; `name` the function the user called (reshape, a tensor's view), which
    a size's refusal names."""
    one = shape[0] if len(shape) == 1 else None
    if isinstance(one, (tuple, list, range)) or (isinstance(one, np.ndarray) and one.ndim == 1):
        # one sequence of sizes: a 1-d array or a range too, as numpy's (gc.reshape(x,
        # np.array([4, 3])) was 'a size must be an int'); not np.ndim of a tuple, which would
        # turn its traced sizes into arrays
        shape = tuple(one)
    shape = tuple(_size(d, f"{name}: a size") for d in shape)
    size = math.prod(_shape(x))
    if shape.count(-1) > 1:
        _fail(f"reshape to {shape}: only one dimension can be -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        inferred = _exact_quotient(size, known)
        if inferred is None:
            _fail(f"cannot reshape {size} elements into shape {shape}")
        shape = tuple(inferred if d == -1 else d for d in shape)
    if shape == _shape(x) and not _runs_now(x):  # (eagerly a view, as any reshape's)
        return x
    return apply("reshape", x, shape=shape)


def _exact_quotient(size, known):
    """size / known when it divides exactly (for every value of the symbols), else None."""
    if isinstance(size, Dim):
        return size.divide(known)
    if isinstance(known, Dim):
        return None if size else 0
    return None if known == 0 or size % known else size // known


def transpose(x, perm=None):
    nd = _ndim(x)
    if perm is not None and not (isinstance(perm, (tuple, list, range))
                                 or isinstance(perm, np.ndarray) and perm.ndim == 1):
        perm = (perm,)  # one axis, as numpy's (np.transpose(a, 0) of a 1-d a): checked below
    perm = (tuple(range(nd))[::-1] if perm is None
            else tuple(_axis(p, nd, "transpose: axis") for p in perm))
    if perm == tuple(range(nd)) and not _runs_now(x):
        return x
    return apply("transpose", x, perm=perm)


def swapaxes(x, a, b):
    nd = _ndim(x)
    perm = list(range(nd))
    a, b = _axis(a, nd), _axis(b, nd)
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def broadcast_to(x, shape):
    shape = _shape_argument(shape, "broadcast_to")  # (np.broadcast_to(x, 2) is (2,) too)
    _check_sizes("broadcast_to", shape)
    if _shape(x) == shape and not _runs_now(x):
        return x
    return apply("broadcast_to", x, shape=shape)


def expand_dims(x, axis):
    shape = list(_shape(x))
    shape.insert(_axis(axis, len(shape) + 1), 1)
    return reshape(x, tuple(shape))


def unsqueeze(x, dim):
    """torch.unsqueeze: a new axis of size 1 at `dim` (numpy's expand_dims of one axis)."""
    return expand_dims(x, _axis(dim, _ndim(x) + 1, "unsqueeze: dim"))


def permute(x, *dims):
    """torch.permute: the axes in the order `dims` (ints, or one tuple of them)."""
    if len(dims) == 1 and _iterable(dims[0]):
        dims = tuple(dims[0])
    nd = _ndim(x)
    perm = tuple(_axis(d, nd, "permute: dim") for d in dims)
    if sorted(perm) != list(range(nd)):
        _fail(f"permute: dims {dims} are not a permutation of a {nd}-d value's {nd} dims")
    return transpose(x, perm)


def flatten(x, start_dim=0, end_dim=-1, *, name="flatten"):
    """torch.flatten: axes start_dim..end_dim merged into one (a 0-d value becomes (1,))."""
    shape = _shape(x)
    if not shape:
        x, shape = reshape(x, (1,)), (1,)
    nd = len(shape)
    start = _axis(start_dim, nd, f"{name} start_dim")
    end = _axis(end_dim, nd, f"{name} end_dim")
    if end < start:
        _fail(f"{name}: start_dim {start_dim} comes after end_dim {end_dim} for a {nd}-d "
              "input")
    return reshape(x, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


def _may_be_one(d) -> bool:
    """Whether a symbolic size is 1 for some value of its symbols (`batch`; not `2*batch`)."""
    try:
        return not d >= 2
    except InconclusiveDim:
        return True


def squeeze(x, axis=None, *, dim=None):
    """numpy's squeeze: `axis` must name axes of size 1. torch's, with `dim=` (the Tensor
    method's place too): a named dim of another size is left as it is."""
    if dim is not None:  # (None: every dim of size 1, numpy's and torch's alike)
        dim = _axis_or_dim("squeeze", axis, dim, None)
        shape = _shape(x)
        dims = [_axis(d, len(shape), "squeeze: dim") for d in
                (dim if _iterable(dim) else (dim,))] if shape else ()
        for a in dims:
            if isinstance(shape[a], Dim) and _may_be_one(shape[a]):
                _fail(f"squeeze cannot tell whether dim {a} (size {shape[a]}) is 1: that "
                      f"depends on the value of {', '.join(sorted(shape[a].symbols))}")
        axis = tuple(a for a in dims if shape[a] == 1)
    shape = _shape(x)
    for i, d in enumerate(shape if axis is None else ()):
        # as JAX's: an axis squeezed at some sizes only would give the plan no one shape
        if isinstance(d, Dim) and _may_be_one(d):
            _fail(f"squeeze cannot tell whether axis {i} (size {d}) is 1: that depends on the "
                  f"value of {', '.join(sorted(d.symbols))}; name the axes to squeeze with "
                  "axis=")
    axes = [i for i, d in enumerate(shape) if d == 1] if axis is None else _axes(axis, len(shape))
    for a in axes:
        if shape[a] != 1:
            _fail(f"cannot squeeze axis {a} of size {shape[a]}")
    return reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def unbroadcast(g, shape):
    """Sum g down to `shape`: the gradient of numpy broadcasting, for every binary op."""
    gshape = _shape(g)
    shape = tuple(shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, d in enumerate(shape) if d == 1 and gshape[i + lead] != 1)
    if axes:
        g = apply("sum", g, axes=axes, keepdims=False)
    return reshape(g, shape)


def slice_(x, starts, stops, steps):
    shape = _shape(x)
    if tuple(starts) == (0,) * len(shape) and tuple(stops) == shape and set(steps) <= {1} \
            and not _runs_now(x):
        return x
    return apply("slice", x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))


def pad_slice(g, shape, starts, stops, steps):
    return apply("pad_slice", g, shape=tuple(shape), starts=tuple(starts), stops=tuple(stops),
                 steps=tuple(steps))


def getitem(x, key):
    """Basic indexing (ints, slices: a negative step on a concrete axis is a reversed
    gather, None, ...) plus integer index arrays (a list too) on any axes, one gather whose
    axes numpy places (_gather_among; several arrays are numpy's pairing). A run-time integer scalar (a 0-d integer
    tensor) may index any axis, as in JAX: a window of one at that position
    (dynamic_slice: a negative index counts from the end, one out of range is clamped). A
    boolean mask of known values is its nonzero() index arrays (_masks_as_indices)."""
    if not isinstance(key, tuple):
        key = (key,)
    # a 0-d integer numpy array is an int to numpy (x[:, np.array(2)] is x[:, 2]; out of
    # range it is refused as an int is, not clamped as a run-time scalar is)
    key = tuple(int(k) if isinstance(k, np.ndarray) and k.ndim == 0 and k.dtype.kind in "iu"
                else k for k in key)
    # a tuple inside the index tuple is an index array to numpy (x[:, (0, 1)] is x[:, [0, 1]])
    key = tuple(list(k) if isinstance(k, tuple) else k for k in key)
    if builtins.any(isinstance(k, (bool, np.bool_, np.timedelta64)) or _is_0d_bool(k)
                    for k in key):
        # (True is an int: it indexed row 1 where numpy adds an axis; a timedelta64 is an
        # np.integer to numpy's type tree, which numpy refuses as an index, as a time)
        if builtins.any(isinstance(k, np.timedelta64) for k in key):
            _fail("an index must be an int, a slice, None, ... or an integer array; got a "
                  "numpy.timedelta64, a time")
        _fail("a bool index (True/False) is a 0-d mask to numpy, a new axis of size 1 or 0, "
              "which graphc does not take: write None for the new axis, or use graphc.where")
    # a 0-d integer tensor is a run-time scalar index, not a gather: it takes the
    # dynamic_slice path below on every axis, the first included, so that it clamps there
    # as it does on the others (JAX: x[i] and x[:, i] both clamp a traced i)
    if builtins.any(isinstance(k, (list, tuple)) and holds_values(k, traced_only=True)
                    for k in key):
        _fail(f"{_TRACED_LIST} (x[gc.stack([k, 2])])")
    key = _masks_as_indices(x, key)
    if len(key) == 1 and not isinstance(key[0], (int, np.integer, slice, type(None),
                                                 type(Ellipsis))) \
            and not _is_scalar_index(key[0]):
        index = _index_array(key[0])
        if isinstance(index, SymbolicValue) and isinstance(_shape(x)[0], int):
            # (numpy's message with the index's value: the compiled gather's names neither)
            index = check_index(index, _shape(x)[0], 0)
        return take(x, index)
    shape = _shape(x)
    n_real = len([k for k in key if k is not None and k is not Ellipsis])
    if n_real > len(shape):
        _fail(f"too many indices ({n_real}) for a {len(shape)}-d value")
    ellipses = [j for j, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:  # (numpy's and JAX's refusal; the expansion below read past key)
        _fail("an index can only have a single ellipsis ('...')")
    # numpy counts '...' between advanced indices as parting them even where it stands for
    # no axis (x of (3, 4): x[None, [0, 1, 2], ..., 0] is (3, 1), the broadcast axes first)
    parted = bool(ellipses) and len(shape) == n_real and _advanced_around(key, ellipses[0])
    if ellipses:
        i = ellipses[0]
        key = key[:i] + (slice(None),) * (len(shape) - n_real) + key[i + 1:]
    else:
        key = key + (slice(None),) * (len(shape) - n_real)
    arrays = [j for j, k in enumerate(key) if _is_index_array(k)]
    if arrays:
        return _gather_among(x, key, arrays, parted)
    starts, stops, steps, out_shape, dynamic, reversed_axes = [], [], [], [], [], []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        d = shape[axis]
        if isinstance(k, (int, np.integer)):
            try:
                inside = d + k >= 0 if k < 0 else d - k >= 1
            except InconclusiveDim as exc:
                _fail(f"index {k} of axis {axis} (size {d}): {exc.message}")
            if not inside:
                _fail(f"index {k} is out of bounds for axis {axis} of size {d}")
            k = d + int(k) if k < 0 else int(k)
            starts.append(k), stops.append(k + 1), steps.append(1)
        elif isinstance(k, slice):
            try:
                a, b, s = _slice_indices(k, d)  # a negative step only on a concrete axis
                if s < 0:
                    # numpy's x[a:b:-s]: the same elements taken forwards by a positive
                    # step, from the last one reached, then the axis reversed
                    n = len(range(a, b, s))
                    a, b, s = (a + (n - 1) * s, a + 1, -s) if n else (0, 0, 1)
                    reversed_axes.append(axis)
                b = b if b >= a else a  # not max(): `t > 1` is undecided where `t >= 1` holds
            except InconclusiveDim as exc:
                _fail(f"slice {k.start}:{k.stop} of axis {axis} (size {d}): {exc.message}: "
                      f"{SYMBOLIC_CLAMP}")
            starts.append(a), stops.append(b), steps.append(s)
            out_shape.append(slice_length(a, b, s))
        elif _is_scalar_index(k):
            starts.append(0), stops.append(d), steps.append(1)
            dynamic.append((axis, k))
        elif isinstance(k, (float, np.floating)):  # (numpy's line, as x[1.5]'s)
            _fail(_NOT_AN_INDEX.format(k))
        else:
            _fail(f"unsupported index {k!r} of type {type(k).__name__}")
        axis += 1
    out = slice_(x, starts, stops, steps)
    for at in reversed_axes:
        out = reverse_axis(out, at)
    for at, k in dynamic:
        out = dynamic_slice(out, k, 1, at)
    return reshape(out, tuple(out_shape))


def _is_0d_bool(k) -> bool:
    """k is a 0-d bool array, tensor or traced value: a 0-d mask to numpy (a new axis), which
    mask_of does not take (a bool tensor was 'a boolean mask given as a list of tensors')."""
    return not isinstance(k, (type, np.generic)) and hasattr(k, "dtype") \
        and hasattr(k, "shape") and len(k.shape) == 0 and _dtype(k) == np.bool_


def mask_of(k):
    """k as a boolean mask of 1+ axes (a numpy array, a list of bools, which numpy takes as
    a mask too, or an eager tensor), else None; a mask whose values a trace does not know (a
    traced one, or an eager tensor, which a trace reads at each call) refused: the result's
    shape would depend on them."""
    if isinstance(k, list):
        if not k or holds_values(k):
            return None
        try:
            k = np.asarray(k)
        except ValueError:  # (ragged: _index_operand names it)
            return None
    if not hasattr(k, "dtype") or not hasattr(k, "shape") or len(k.shape) == 0 \
            or _dtype(k) != np.bool_:
        return None
    if isinstance(k, np.ndarray):
        return k
    if isinstance(k, SymbolicValue) or innermost_interpreter() is not None:
        what = "traced" if isinstance(k, SymbolicValue) else "a tensor read while tracing"
        _fail(f"x[mask] with a boolean mask that is {what} has a data-dependent shape, which "
              "a traced graph cannot have; keep the shape with gc.where(mask, x, 0) or "
              "gc.masked_fill(x, ~mask, 0), or index eagerly")
    return np.asarray(k)


def _masks_as_indices(x, key):
    """key with each boolean mask replaced by its True places' index arrays (np.nonzero),
    as numpy reads x[mask] (x[mask.nonzero()]): a mask of d axes stands for d axes of x,
    whose sizes it must have. Its values being known, the result's shape is (eagerly, or a
    numpy mask in a trace: a constant gather, as in JAX)."""
    masks = [mask_of(k) for k in key]
    if builtins.all(m is None for m in masks) or builtins.sum(k is Ellipsis for k in key) > 1:
        return key  # (two '...': getitem refuses them, as numpy; they placed no mask)
    shape = _shape(x)
    n_real = builtins.sum(m.ndim if m is not None else 0 if k is None or k is Ellipsis else 1
                          for k, m in zip(key, masks))
    out, axis = [], 0
    for k, m in zip(key, masks):
        if k is Ellipsis:
            axis += builtins.max(len(shape) - n_real, 0)
        elif m is not None:
            for j, (size, length) in enumerate(zip(m.shape, shape[axis:])):
                if size != length:
                    _fail(f"boolean index did not match indexed array along axis {axis + j}; "
                          f"size of axis is {length} but size of corresponding boolean axis "
                          f"is {size}")
            out.extend(m.nonzero())
            axis += m.ndim
            continue
        elif k is not None:
            axis += 1
        out.append(k)
    return tuple(out)


def _is_advanced(k) -> bool:
    """An index numpy counts among the advanced ones beside an array: an array, an int."""
    return _is_index_array(k) or isinstance(k, (int, np.integer)) or _is_scalar_index(k)


def _advanced_around(key, at) -> bool:
    """Whether key (holding an index array) has advanced indices on both sides of key[at]:
    numpy's advanced indices then do not stand together."""
    return builtins.any(_is_index_array(k) for k in key) and \
        builtins.any(_is_advanced(k) for k in key[:at]) and \
        builtins.any(_is_advanced(k) for k in key[at + 1:])


def _gather_among(x, key, ats, parted=False):
    """x[key] where key[at] for each `at` of ats is an index array among basic indices (key
    has one entry per axis of x, Nones beside): the basic indices applied with those axes
    kept whole, then one gather. Several arrays are numpy's pairing: they broadcast, and
    the gather reads a table of those axes flattened into one at the flat index
    (ravel_multi_index's sum of each index times its stride). The broadcast axes go where
    numpy puts them: in the arrays' place when the advanced indices (the arrays and any
    ints, run-time scalars included) stand together, first when a slice, None or a '...'
    (parted: of no axis, gone from key) parts them
    (x of (2, 3, 4): x[0, :, [0, 1]] is (2, 3), x[[0, 1], :, [0, 1]] is (2, 3))."""
    idxs = [_index_array(key[at]) for at in ats]
    if len(ats) > 1:
        try:
            np.broadcast_shapes(*(_shape(idx) for idx in idxs))
        except ValueError:  # (numpy's words)
            _fail("shape mismatch: indexing arrays could not be broadcast together with "
                  "shapes " + " ".join(str(tuple(_shape(idx))) for idx in idxs))
    shape = _shape(x)
    sizes = []
    for n, at in enumerate(ats):
        of_x = builtins.sum(1 for k in key[:at] if k is not None)  # the axis of x it indexes
        size = shape[of_x]
        sizes.append(size)
        if not isinstance(size, int):
            if len(ats) > 1:  # (the flat index's strides would be symbolic values)
                _fail(f"several index arrays need concrete sizes on the axes they index; "
                      f"axis {of_x} is {size}: declare it concrete in polymorphic_shapes, or "
                      "gather one axis at a time with gc.take")
            continue
        if isinstance(idxs[n], SymbolicValue):
            # refused at run time on x's axis: the gather below runs on that axis moved first
            # (its message named that table), and a flat index would carry an index past
            # one axis into the next one's rows
            idxs[n] = check_index(idxs[n], size, of_x)
            continue
        known = np.asarray(idxs[n])
        if known.dtype.kind in "iu" and known.size and (known.min() < -size
                                                        or known.max() >= size):
            bad = known.min() if known.min() < -size else known.max()
            _fail(f"index {bad} is out of bounds for axis {of_x} of size {size}")
    whole = tuple(slice(None) if j in ats else k for j, k in enumerate(key))
    basic = getitem(x, whole)

    def axes_made(part):  # the output axes a run of basic indices makes (an int makes none)
        return builtins.sum(1 for k in part if k is None or isinstance(k, slice))

    kept = [axes_made(whole[:at]) for at in ats]  # the kept axes, in basic
    advanced = [j for j, k in enumerate(key) if j in ats or _is_advanced(k)]
    together = advanced == list(range(advanced[0], advanced[-1] + 1)) and not parted
    place = axes_made(key[:advanced[0]]) if together else 0
    nd = _ndim(basic)
    table = transpose(basic, kept + [i for i in range(nd) if i not in kept])
    flat = idxs[0]
    if len(ats) > 1:
        table = reshape(table, (int(np.prod(sizes)),) + _shape(table)[len(ats):])
        flat = _flat_index(idxs, sizes)
    gathered = take(table, flat)
    k = _ndim(gathered) - (nd - len(ats))  # the broadcast index axes, leading
    rest = list(range(k, _ndim(gathered)))
    order = rest[:place] + list(range(k)) + rest[place:]
    return transpose(gathered, order) if order != sorted(order) else gathered


def _flat_index(idxs, sizes):
    """The index into axes of `sizes` flattened (C order) that the index arrays `idxs`
    (broadcast together, each in range) address: ravel_multi_index, a negative index first
    counted from its axis's end. int64 (a product of sizes may pass int32's range)."""
    flat = None
    for idx, size in zip(idxs, sizes):
        if isinstance(idx, SymbolicValue) or hasattr(idx, "dtype") and \
                not isinstance(idx, np.ndarray):
            idx = cast(idx, "int64")
            idx = where(less(idx, 0), add(idx, np.int64(size)), idx)
        else:
            idx = np.asarray(idx, np.int64)
            idx = np.where(idx < 0, idx + size, idx)
        flat = idx if flat is None else add(mul(flat, np.int64(size)), idx)
    return flat


def reverse_axis(x, axis: int):
    """x with the elements along `axis` in reverse order (numpy's flip of one concrete axis):
    a gather of the axis moved first, so that its gradient is the scatter back."""
    n, nd = _shape(x)[axis], _ndim(x)
    if n <= 1:
        return x
    front = [axis] + [i for i in range(nd) if i != axis]
    gathered = take(transpose(x, front), np.arange(n - 1, -1, -1))
    return transpose(gathered, tuple(int(i) for i in np.argsort(front)))


def _is_index_array(k) -> bool:
    """An index array numpy takes as advanced indexing: a list, an array, a tensor of 1+ axes."""
    return isinstance(k, (list, np.ndarray)) or (
        hasattr(k, "dtype") and hasattr(k, "shape") and len(k.shape) >= 1)


def _is_scalar_index(k) -> bool:
    """A run-time integer scalar: a 0-d integer tensor (symbolic or eager), not an array."""
    return not isinstance(k, (np.ndarray, np.generic)) and hasattr(k, "dtype") and \
        hasattr(k, "shape") and len(k.shape) == 0 and np.dtype(k.dtype).kind in "iu"


# Why a slice numpy clamps (x[:10] of n rows has min(n, 10)) is refused where a size is
# symbolic: the clamped size is no polynomial of the symbols, so no one plan has it
SYMBOLIC_CLAMP = ("numpy would clamp it, which a plan traced once for symbolic sizes cannot "
                  "(the clamped size is no dimension); where a clamp is meant, declare the "
                  "dimension concrete in polymorphic_shapes")


def _slice_indices(k: slice, d):
    """slice.indices(d) for concrete sizes; with symbolic ones (a size or a bound) Python's
    clamping rules written with Dim comparisons, which raise where the answer depends on
    the symbols' values (`x[2:]` of a `batch` axis: is batch >= 2?)."""
    parts = (k.start, k.stop, k.step)
    if not isinstance(d, Dim) and not builtins.any(isinstance(v, Dim) for v in parts):
        try:
            return k.indices(d)
        except (ValueError, TypeError) as exc:  # x[::0], x[1.5:]: one line at the user's
            shown = ":".join("" if v is None else str(v)
                             for v in (parts if k.step is not None else parts[:2]))
            raise GraphcError(f"slice [{shown}]: {exc}", (user_location(),)) from None
    step = 1 if k.step is None else k.step
    if isinstance(step, Dim) or step <= 0:
        _fail(f"slice {k} of an axis of size {d}: symbolic slices need a positive integer "
              "step")

    def bound(v, default):
        if v is None:
            return default
        # a negative bound counts from the end, then clamps at 0, as Python's; a symbolic
        # one too where its sign is decided (`-n-3`, `-seq` below a size `n`); where the
        # clamp depends on the symbols (`-10` of a `batch` axis) the bound stays, and the
        # slice's type rule checks it when they are bound
        if not holds_when_bound(lambda: v >= 0):
            v = d + v
            return v if holds_when_bound(lambda: v >= 0) else 0
        # Python clamps a bound past the end to the size; where that depends on the symbols
        # (`table[:seq]` of a table of 64 rows) the bound stays, and the slice's type rule
        # checks it when they are bound: an error then, not a clamp
        return v if holds_when_bound(lambda: v <= d) else d

    return bound(k.start, 0), bound(k.stop, d), step


def slice_length(start, stop, step):
    """len(range(start, stop, step)), also for symbolic bounds (stop >= start): a step
    other than 1 where the length is one polynomial for every value (1:2*n:2 has n)."""
    try:
        return range_length(start, stop, step)
    except InconclusiveDim as exc:
        _fail(f"a slice from {start} to {stop} with step {step}: its length {exc.message}")


def concat(xs, axis=_AXIS_0, *, dim=NO_DIM):
    """numpy's concatenate along `axis`, torch.cat along `dim` (gc.cat): one of them, 0
    unless given."""
    return _concatenated("concat", xs, axis, dim)


# concatenate and cat are functions of their own, not aliases, so that an error names the
# one the user called: registry._called_op reads the function's name from its frame (an
# alias's is concat's)
def concatenate(xs, axis=_AXIS_0, *, dim=NO_DIM):
    """numpy's name of concat."""
    return _concatenated("concatenate", xs, axis, dim)


def cat(xs, axis=_AXIS_0, *, dim=NO_DIM):
    """torch's name of concat."""
    return _concatenated("cat", xs, axis, dim)


def _concatenated(name, xs, axis, dim):
    axis = _axis_or_dim(name, axis, dim, _AXIS_0)
    xs = list(xs)
    if not xs:
        _fail(f"{name} needs at least one array, got none")
    if len(xs) == 1:
        return _unchanged(xs[0])  # (np.concatenate and stack copy too)
    return apply("concat", *xs, axis=_axis(axis, _ndim(xs[0]), f"{name}: axis"))


def stack(xs, axis=_AXIS_0, *, dim=NO_DIM):
    """numpy's and torch's stack along a new `axis` (numpy's) or `dim` (torch's), 0 unless
    given."""
    axis = _axis_or_dim("stack", axis, dim, _AXIS_0)
    xs = list(xs)
    if not xs:
        _fail("stack needs at least one array, got none")
    axis = _axis(axis, _ndim(xs[0]) + 1)
    return concat([expand_dims(x, axis) for x in xs], axis)


def split(x, indices_or_sections, axis=0):
    """numpy's and jnp.split: an int splits into that many equal sections (refused where the
    axis does not divide), a list gives the indices to split at (`split(x, [2, 4])` is
    x[:2], x[2:4], x[4:], each bound taken as a slice's, so out of range means empty).
    Returns a list of views of x built from slice ops. torch's form (a chunk size or a list
    of sizes) is the tensor method x.split, split_sizes here."""
    shape = _shape(x)
    axis = _axis(axis, len(shape))
    length = shape[axis]
    if is_int(indices_or_sections):
        sections = indices_or_sections
        if sections <= 0:
            _fail(f"split: sections must be positive, got {sections}")
        if length % sections:
            _fail(f"axis of size {length} does not split into {sections} equal parts")
        bounds = [length // sections * k for k in range(sections + 1)]
    elif _iterable(indices_or_sections):
        bounds = [0] + [_whole(i, "split: an index") for i in indices_or_sections] + [length]
    else:
        _fail("split: indices_or_sections must be an int or a list of indices, got "
              f"{indices_or_sections!r}")
    return _pieces(x, shape, axis, bounds)


def split_sizes(x, split_size_or_sections, dim=0):
    """torch.split (the tensor method x.split): an int is the size of each chunk (the last
    one smaller where it does not divide), a list the chunks' sizes, which add up to the
    axis. A tuple of views of x built from slice ops."""
    shape = _shape(x)
    axis = _axis(dim, len(shape), "split: dim")
    length = shape[axis]
    if is_int(split_size_or_sections):
        size = split_size_or_sections
        if size <= 0:
            _fail(f"split: split_size must be positive, got {size}")
        if not is_int(length):
            _fail(f"split: a chunk size splits a dimension of known size, not {length}")
        bounds = list(range(0, length, size)) + [length] if length else [0, 0]
    elif _iterable(split_size_or_sections):
        sizes = [_whole(n, "split: a size") for n in split_size_or_sections]
        if builtins.sum(sizes) != length:
            _fail(f"split sizes {sizes} do not add up to {length}")
        bounds = [0]
        for n in sizes:
            bounds.append(bounds[-1] + n)
    else:
        _fail("split: split_size_or_sections must be an int or a list of sizes, got "
              f"{split_size_or_sections!r}")
    return tuple(_pieces(x, shape, axis, bounds))


def _pieces(x, shape, axis, bounds):
    """The slices of x along `axis` between consecutive bounds, each bound read as a Python
    slice's (negative from the end, clamped to the axis; a stop before its start is empty),
    as numpy's split reads its indices."""
    outs = []
    for start, stop in zip(bounds, bounds[1:]):
        if is_int(shape[axis]):
            start, stop, _ = slice(start, stop).indices(shape[axis])
            stop = builtins.max(start, stop)
        starts = [0] * len(shape)
        stops = list(shape)
        starts[axis], stops[axis] = start, stop
        outs.append(slice_(x, starts, stops, [1] * len(shape)))
    return outs


# ---- gathers --------------------------------------------------------------------------------
_TRACED_LIST = "an index list holding traced values: stack it into one index array"
_NOT_AN_INDEX = ("{!r:.120}: only integers, slices (:), ellipsis (...), None and integer or "
                 "boolean arrays are valid indices")


def _index_operand(idx, who=""):
    """A Python or numpy integer (or a list of them) as an index array: indices are not weak
    scalars, which would take the table's float dtype. A numpy integer array of a dtype
    graphc has no tensors of (int8 ... uint64: numpy indexes with every one) is widened to
    int64, a uint64 index past int64's largest refused. who: the function the user called
    (take_along_axis), naming the refusals as its others do; "" for x[...] (numpy's words)."""
    def refuse(message):
        _fail(f"{who}: {message}" if who else message)
    if is_int(idx) or isinstance(idx, (list, tuple)):
        if not is_int(idx) and holds_values(idx, traced_only=True):  # (np.asarray's message
            # named no remedy)
            refuse(f"{_TRACED_LIST} (gc.stack([k, 2]))")
        try:
            array = np.asarray(idx)
        except ValueError:  # numpy's own error, no line of the user's: rows of other lengths
            refuse(f"an index list must be rectangular (an array's rows of one length), got "
                   f"{idx!r}"[:160])
        if array.dtype == object and not builtins.all(is_int(v) for v in array.reshape(-1)):
            refuse(_NOT_AN_INDEX.format(idx))  # ([0, None]: numpy's IndexError, where the
            # object array met take's dtype check)
        if array.dtype == object or array.size and (
                (array.dtype == np.uint64 and array.max() > np.iinfo(np.int64).max)
                # ([1, 2**63]: numpy's float64, refused as a float index, every element an int)
                or (array.dtype == np.float64 and builtins.all(map(is_int, _flat_list(idx))))):
            # (2**70 fits no numpy integer, 2**63 only uint64: Python ints either way)
            refuse(f"{'index' if is_int(idx) else 'an index in'} {idx!r} does not fit in "
                   "int64, graphc's index type")
        idx = array.astype(np.int64) if array.size == 0 else array  # [] is no float64 index
    if isinstance(idx, np.ndarray) and idx.dtype.kind in "iu" \
            and idx.dtype not in (np.int32, np.int64):
        if idx.dtype == np.uint64 and idx.size and idx.max() > np.iinfo(np.int64).max:
            refuse(f"index {idx.max()} (uint64) does not fit in int64, graphc's index type")
        idx = idx.astype(np.int64)
    return idx


def _flat_list(items):
    """The leaves of a nested list or tuple of index elements (an int: itself)."""
    if not isinstance(items, (list, tuple)):
        yield items
        return
    for v in items:
        if isinstance(v, (list, tuple)):
            yield from _flat_list(v)
        else:
            yield v


def _index_array(k):
    """getitem's index array `k` (a list, an array, a traced one) as take's operand (a list
    read once: a ragged one refused in a line), one that holds no integers refused in
    numpy's words (take's named an op the user never called)."""
    index = _index_operand(k)
    dtype = _dtype(index)
    if dtype == np.dtype("bool"):
        # (a mask _masks_as_indices did not read: a list holding tensors)
        _fail("a boolean mask given as a list of tensors: make it one mask (gc.stack them)")
    if dtype.kind not in "iu":  # ([0, 1.5] and [0.0] were 'take(f64[3,4,5], f64[2]):
        # indices must be integers')
        # (a float scalar, x[1.5] or x[np.float32(1)], is no array: numpy's line is the
        # list's, as x[0, 1.5]'s)
        _fail(_NOT_AN_INDEX.format(k) if isinstance(k, list) or is_weak_scalar(k) else
              f"arrays used as indices must be of integer (or boolean) type, got {dtype}")
    return index


def check_index(idx, length, axis, negative=True, who=None, what="index"):
    """idx, refused at run time where an index lies outside [-length, length) of `axis`
    (named in the message: the user's axis of the value the index array indexes), or
    outside [0, length) where `negative` is False. who: the function the user called, named
    in the message as its eager check words it ('bincount: value 7 is outside [0, 3)',
    `what` the index's name), where the message named no function."""
    # (the attributes only where given: graphs and their dumps stay as they were)
    extra = {} if negative else {"negative": False}
    if who is not None:
        extra.update(who=str(who), what=str(what))
    return apply("check_index", idx, length=int(length), axis=int(axis), **extra)


def check_offsets(offsets, who, length, include_last_offset=False):
    """embedding_bag's offsets, refused at run time where torch refuses them (ir/ops/index.py's
    offsets_problem) for an input of `length` indices (an int, or a symbolic Dim bound as the
    plan runs), naming `who`."""
    return apply("check_offsets", offsets, who=who, length=length,
                 include_last_offset=bool(include_last_offset))


def take(table, idx):
    return apply("take", table, _index_operand(idx))


embedding = take


def scatter_add(updates, idx, rows):
    # a symbolic row count (the gradient of take from a table of symbolic rows) stays a Dim
    if not isinstance(rows, Dim):
        rows = _count(rows, "scatter_add: rows")
    return apply("scatter_add", updates, _index_operand(idx), rows=rows)


def _start_axis(x, start, axis):
    """A Python int start becomes an int64 scalar (a constant); a negative axis counts from
    the end."""
    if is_int(start):
        start = np.asarray(start, np.int64)
    return start, _axis(axis, _ndim(x))  # (5 on a 2-d x was taken as 1, 1.5 a TypeError)


def _starts_per_axis(x, starts, axis, who):
    """JAX's form of the starts, a tuple or list with one per axis of x, checked."""
    if axis != 0:
        _fail(f"{who}: give one start with axis=, or a start per axis of x (JAX's form), "
              "not both")
    if len(starts) != _ndim(x):
        _fail(f"{who}: a {_ndim(x)}-d x takes {_ndim(x)} start indices (JAX's form: one per "
              f"axis), got {len(starts)}; or give one start with axis=")
    return starts


def _whole_axis(x, start, size, axis):
    """Whether a window of `size` from a Python 0 along `axis` is the whole axis: that
    axis's slice or update is x itself."""
    return is_int(start) and start == 0 and is_int(size) and size == _shape(x)[axis]


def dynamic_slice(x, start, size, axis=0):
    """x's window of `size` along `axis` from a run-time start (a scalar integer tensor), as
    JAX's lax.dynamic_slice: a negative start counts from the end (start + length), then the
    start is clamped to [0, length - size] so that the window fits (length 6, size 2: start
    -1 opens at 4, -7 at 0, 5 at 4). JAX's form, a start and a size per axis of x
    (`dynamic_slice(x, (i, 0), (2, 3))`, or the starts as a 1-d integer array), slices each
    axis so."""
    start = _starts_as_sequence(start)
    if isinstance(start, (tuple, list)):
        starts = _starts_per_axis(x, start, axis, "dynamic_slice")
        if not isinstance(size, (tuple, list)) or len(size) != len(starts):
            _fail(f"dynamic_slice: {len(starts)} start indices need as many sizes, got "
                  f"{size!r}")
        window = x
        for k, (s, n) in enumerate(zip(starts, size)):
            if not _whole_axis(x, s, n, k):
                window = dynamic_slice(window, s, n, axis=k)
        return _unchanged(x) if window is x else window
    start, axis = _start_axis(x, start, axis)
    return apply("dynamic_slice", x, start, size=_whole(size, "dynamic_slice: size"), axis=axis)


def dynamic_update_slice(x, update, start, axis=0):
    """x with `update` written from a run-time start along `axis`, as JAX's
    lax.dynamic_update_slice along one axis: a negative start counts from the end, then the
    start is clamped so that the update fits (see dynamic_slice). Compiled, it writes into
    x's buffer when x dies here (a donated KV cache is updated in place). JAX's form, a
    start per axis of x (`dynamic_update_slice(x, u, (i, 0))`, or a 1-d integer array of
    them), places it on each axis so."""
    start = _starts_as_sequence(start)
    if isinstance(start, (tuple, list)):
        starts = _starts_per_axis(x, start, axis, "dynamic_update_slice")
        if _ndim(update) != len(starts):
            _fail(f"dynamic_update_slice: the update is {_ndim(update)}-d, x "
                  f"{len(starts)}-d; give them the same number of axes (as JAX)")
        if not builtins.all(_whole_axis(x, s, n, k) for k, (s, n)
                            in enumerate(zip(starts, _shape(update)))):
            return _update_from(x, update, starts, 0)
        start = 0  # (the update is all of x: the op still checks and copies it)
    start, axis = _start_axis(x, start, axis)
    return apply("dynamic_update_slice", x, update, start, axis=axis)


def _starts_as_sequence(start):
    """JAX's start_indices given as a 1-d array (numpy, eager or traced) as the tuple of its
    items, one per axis; a scalar start or a tuple/list as it is."""
    if isinstance(start, (tuple, list, numbers.Number)) or _ndim(start) != 1:
        return start
    return tuple(start[k] for k in range(_shape(start)[0]))


def _update_from(x, update, starts, axis):
    """x with `update` placed from starts[axis:] on the axes from `axis` on: the window of x
    the update falls in along `axis`, updated on the axes after it, written back."""
    if axis == len(starts):
        return update
    size = _shape(update)[axis]
    if _whole_axis(x, starts[axis], size, axis):
        return _update_from(x, update, starts, axis + 1)
    window = _update_from(dynamic_slice(x, starts[axis], size, axis=axis), update, starts,
                          axis + 1)
    return dynamic_update_slice(x, window, starts[axis], axis=axis)


def one_hot(idx, depth, dtype="float32"):
    """jax.nn.one_hot: a row of `depth` per index, 1 at the index; one outside [0, depth)
    gives a row of zeros, as JAX's (torch's F.one_hot refuses it). Indices of numpy's other
    integer dtypes are widened, as take's (uint8 ones were 'dtype uint8 is not supported')."""
    depth = _whole(depth, "one_hot: depth")
    if depth <= 0:  # (torch's -1 was 'depth must be positive', naming no way out)
        _fail(f"one_hot: depth must be positive, got {depth}" + (
            "; torch's num_classes=-1 (the largest index + 1) is a shape that depends on the "
            "values: pass the number of classes" if depth == -1 else ""))
    # (named: a uint64 index past int64's largest was refused as 'index ... does not fit'
    # with no one_hot, where its dtype refusal named it)
    return apply("one_hot", _index_operand(idx, "one_hot"), depth=depth, dtype=as_dtype(dtype))


# ---- linear algebra -------------------------------------------------------------------------
def matmul(a, b):
    a_vec, b_vec = _ndim(a) == 1, _ndim(b) == 1
    if a_vec:
        a = reshape(a, (1,) + _shape(a))
    if b_vec:
        b = reshape(b, _shape(b) + (1,))
    a_shape, b_shape = _shape(a), _shape(b)
    if len(a_shape) > 2 and len(b_shape) == 2:
        # one large GEMM instead of numpy's loop of small ones over the batch axes
        # the rows counted out: (-1, 0) cannot be inferred when the contracted axis is empty
        flat = apply("matmul", reshape(a, (math.prod(a_shape[:-1]), a_shape[-1])), b)
        out = reshape(flat, a_shape[:-1] + (b_shape[-1],))
    else:
        out = apply("matmul", a, b)
    if a_vec:
        out = squeeze(out, -2)
    if b_vec:
        out = squeeze(out, -1)
    return out


EINSUM_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sublist_spec(args):
    """numpy's other einsum form, einsum(a, [0, 1], b, [1, 2], [0, 2]) (integers 0-51 and
    Ellipsis), as (subscripts string, operands)."""
    def letters(sublist):
        out = []
        for k in sublist:
            if k is Ellipsis:
                out.append("...")
            elif is_int(k) and 0 <= k < len(EINSUM_LETTERS):
                out.append(EINSUM_LETTERS[k])
            else:
                _fail(f"einsum: subscript {k!r} in {list(sublist)} is not an integer in "
                      f"[0, {len(EINSUM_LETTERS)}) or Ellipsis")
        return "".join(out)
    operands, subs = list(args[0:-1:2]) if len(args) % 2 else list(args[0::2]), []
    for k in range(1, 2 * len(operands), 2):
        subs.append(letters(args[k]))
    spec = ",".join(subs)
    if len(args) % 2:
        spec += "->" + letters(args[-1])
    return spec, operands


def einsum(spec, *xs):
    """numpy's einsum: '...', implicit output (letters used once, sorted, after the '...'
    axes), repeated letters (diagonals, traces), 0-d operands, and the sublist form
    einsum(a, [0, 1], b, [1, 2], [0, 2]). The op itself always gets an explicit,
    letters-only spec; '...' axes that broadcast are broadcast first, so that
    broadcast_to's gradient sums them back."""
    if not isinstance(spec, str):
        spec, xs = _sublist_spec((spec,) + xs)
    spec = spec.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(xs):
        _fail(f"einsum spec {spec!r} has {len(ins)} operands, got {len(xs)}")
    if not arrow:
        used = "".join(ins).replace(".", "")
        out = ("..." if "..." in lhs else "") + "".join(
            sorted(c for c in set(used) if used.count(c) == 1))
    for sub in ins + [out]:
        rest = sub.replace("...", "", 1)
        if not builtins.all(c in EINSUM_LETTERS for c in rest):
            _fail(f"einsum spec {spec!r}: bad subscripts {sub!r} (letters and one '...')")
    if "..." in lhs or "..." in out:
        # (operand, where its '...' starts, how many axes it stands for)
        ellipses = [(k, sub.index("..."), _ndim(x) - len(sub) + 3)
                    for k, (sub, x) in enumerate(zip(ins, xs)) if "..." in sub]
        rank = builtins.max((r for _, _, r in ellipses), default=0)
        spare = [c for c in EINSUM_LETTERS if c not in spec]
        if builtins.any(r < 0 for _, _, r in ellipses) or rank > len(spare):
            _fail(f"einsum spec {spec!r} does not match operands of {[_ndim(x) for x in xs]} "
                  "axes")
        dims = spare[:rank]  # right-aligned, as numpy broadcasts '...'
        lead = _broadcast_shape([_shape(xs[k])[i:i + r] for k, i, r in ellipses], spec)
        ins, xs = list(ins), list(xs)
        for k, i, r in ellipses:
            shape = _shape(xs[k])
            if shape[i:i + r] != lead[rank - r:]:
                xs[k] = broadcast_to(xs[k], shape[:i] + lead[rank - r:] + shape[i + r:])
            ins[k] = ins[k].replace("...", "".join(dims[rank - r:]))
        out = out.replace("...", "".join(dims))
    xs = _broadcast_einsum_letters(ins, list(xs))
    return apply("einsum", *xs, spec=",".join(ins) + "->" + out)


def _broadcast_einsum_letters(ins, xs):
    """numpy's einsum broadcasts a letter of size 1 in one operand against its size in the
    others ('ij,ij->ij' of (3, 4) and (1, 4); 'ij,jk' of (3, 4) and (1, 5)): such operands
    are broadcast first, so the op sees equal sizes and broadcast_to's gradient sums back.
    Other mismatches are left to the op's rule, which names them."""
    sizes = {}
    for sub, x in zip(ins, xs):
        for c, d in zip(sub, _shape(x)):
            if not (isinstance(d, int) and d == 1):
                sizes.setdefault(c, d)
    for k, (sub, x) in enumerate(zip(ins, xs)):
        shape = _shape(x)
        if len(sub) != len(shape):
            continue  # the op's rule names the mismatch
        # a letter repeated in one operand (a diagonal) broadcasts only where all its
        # axes there are 1: numpy refuses 'ii' of (1, 3)
        ones = {c for c in sub if builtins.all(isinstance(d, int) and d == 1
                                      for e, d in zip(sub, shape) if e == c)}
        want = tuple(sizes.get(c, d) if c in ones else d for c, d in zip(sub, shape))
        if want != shape:
            xs[k] = broadcast_to(x, want)
    return xs


def _broadcast_shape(shapes, spec):
    rank = builtins.max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for k, d in enumerate(s, rank - len(s)):
            if d != 1 and out[k] not in (1, d):
                _fail(f"einsum spec {spec!r}: the '...' axes {shapes} cannot be broadcast")
            out[k] = d if d != 1 else out[k]
    return tuple(out)


# ---- neural-network functions ----------------------------------------------------------------
def softmax(x, axis=_AXIS_LAST, *, dim=NO_DIM):
    """Softmax along `axis` (torch's `dim`), the last unless given."""
    if dim is not NO_DIM:
        axis = _axis_or_dim("softmax", axis, dim, _AXIS_LAST)
    return _softmax_op("softmax", x, axis)


def log_softmax(x, axis=_AXIS_LAST, *, dim=NO_DIM):
    """log(softmax(x)) along `axis` (torch's `dim`), the last unless given."""
    if dim is not NO_DIM:
        axis = _axis_or_dim("log_softmax", axis, dim, _AXIS_LAST)
    return _softmax_op("log_softmax", x, axis)


def _softmax_op(op, x, axis):
    """softmax's or log_softmax's op along `axis`; a 0-d x as one element (1, or 0 for
    log_softmax), as torch's, taking the dims 0 and -1."""
    nd = _ndim(x)
    if not nd:
        if is_int(axis) and axis not in (0, -1):
            _fail(f"{op}: dim {axis} is out of range for a 0-d value (0 or -1, as torch's)")
        _axis(axis, 1, f"{op}: dim")  # (refuses a dim that is no int)
        return reshape(apply(op, reshape(x, (1,)), axis=0), ())
    return apply(op, x, axis=_axis(axis, nd))


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """LayerNorm over the last axis (biased variance, as in PyTorch); one fused kernel."""
    _refuse_normalized_shape("layer_norm", weight, "LayerNorm")
    eps = _number("layer_norm: eps", eps)
    n = _shape(x)[-1] if _shape(x) else 1
    if _norm_parameters("layer_norm", x, n, "LayerNorm", weight=weight,
                        bias=bias) != _dtype(x):  # float32 parameters of a half x (autocast's,
        # or a float32 model given a half input): torch's mixed-type kernel, in float32
        # rounded once (the op takes one dtype)
        return _rounded_once(layer_norm, x, weight, bias, eps)
    weight = ones(n, _dtype(x)) if weight is None else weight
    bias = zeros(n, _dtype(x)) if bias is None else bias
    return apply("layer_norm", x, weight, bias, eps=float(eps))


def _refuse_normalized_shape(op, weight, layer):
    """One line for torch's F.layer_norm(x, normalized_shape, weight, bias, eps) called as
    graphc's op(x, weight, ...): the shape was read as a weight ("cannot use a tuple as a
    tensor operand", "weight must have shape (4,), got (1,)") and a weight as eps (numpy's
    "only 0-dimensional arrays can be converted")."""
    if is_int(weight) or (isinstance(weight, (tuple, list)) and weight
                          and builtins.all(is_int(d) for d in weight)):
        _fail(f"{op}: weight must be an array, got {weight!r}: graphc's {op} normalises over "
              f"x's last axis and takes no normalized_shape, torch's second argument (drop it; "
              f"graphc.nn.{layer} normalises over several trailing axes)")


def _norm_parameters(op, x, n, layer, any_real=False, **params):
    """torch's rule for a norm's x and parameters (`params`: name=value, None where absent),
    checked on the dtypes the user gave, each refusal one line naming op and parameter: x of a
    float dtype, each parameter of shape (n,); layer_norm's and group_norm's of one dtype, x's
    or (x half) float32, torch's mixed-type kernel; any real dtype with any_real (rms_norm's
    weight: torch multiplies by it in the wider dtype and rounds to x's). Returns the
    parameters' one dtype (x's where there are none or any_real)."""
    def refuse(message):  # (named on the error path: gc.nn.LayerNorm's forward by the layer,
        # as _called_op names every op a library layer calls)
        _fail(f"{_called_op(op)}: {message}")

    for operand in (x, *params.values()):  # (a str, dict, list or tuple parameter was
        # read as numpy reads it: 'weight must have shape (4,), got ()', 'weight of a float32
        # x must be float32, got float64', a list x rms_norm's raw TypeError)
        if operand is not None and not hasattr(operand, "shape") and \
                not is_weak_scalar(operand):
            refuse_array_container(operand, op)  # (tensors in a list: its own line)
            refuse_operand(operand, op)
    dtype = _dtype(x)
    if unsupported_dtype(dtype):  # (complex64: "not supported", as every op's)
        refuse(unsupported_dtype(dtype))
    if not is_float(dtype):  # (the op's or finfo's message named neither)
        _fail(f"{_called_op(op)} of {with_article(dtype)} value; cast it to a float type first")
    allowed = (dtype, np.dtype(np.float32)) if is_half(dtype) else (dtype,)
    first = None
    for what, p in params.items():
        if p is None:
            continue
        if tuple(_shape(p)) != (n,):  # (torch's F.{op} would normalise over the weight's axes;
            # a broadcast weight would not)
            hint = f"; graphc.nn.{layer} normalises over several trailing axes" if layer else ""
            refuse(f"{what} must have shape ({n},), got {tuple(_shape(p))}{hint}")
        given = _dtype(p)
        if unsupported_dtype(given):  # (any other dtype graphc holds is real)
            refuse(f"{what}: {unsupported_dtype(given)}")
        if any_real:
            continue
        if given not in allowed:
            refuse(f"{what} of {with_article(dtype)} x must be "
                  f"{' or '.join(map(str, allowed))}, got {given}")
        if first is not None and given != first[1]:  # torch's "expected scalar type"
            refuse(f"{what} must have the {first[0]}'s dtype, {first[1]}, got {given}")
        first = first or (what, given)
    return dtype if first is None else first[1]


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.group_norm: x (N, C, *) normalised over each group of
    C // num_groups channels and the other axes (biased variance, eps), then scaled by weight
    and shifted by bias (each (C,), optional) per channel."""
    shape = _shape(x)
    if len(shape) < 2:
        _fail(f"group_norm: x must be (N, C, ...), got shape {tuple(shape)}")
    channels = shape[1]
    if (not is_int(num_groups) or num_groups < 1 or not isinstance(channels, int)
            or channels % num_groups):
        _fail(f"group_norm: num_groups must be a positive int dividing the {channels} "
              f"channels, got {num_groups!r}")
    _norm_parameters("group_norm", x, channels, None, weight=weight, bias=bias)
    per_channel = (1, channels) + (1,) * (len(shape) - 2)
    # (N, G, C/G, *spatial), reduced over all but N and G: no -1 to infer, which an empty
    # batch (zero elements) does not allow
    if is_half(_dtype(x)):
        # in float32, the affine included, rounded once, as torch's: the half squares
        # overflow or underflow, and a half affine rounds twice (float32 weights, as
        # autocast's or torch's mixed-type kernel's, are used as they are)
        weight, bias = (p if p is None or _dtype(p) != _dtype(x) else cast(p, "float32")
                        for p in (weight, bias))
        return _rounded_once(group_norm, x, num_groups, weight, bias, eps)
    groups = reshape(x, (shape[0], int(num_groups), channels // int(num_groups))
                     + tuple(shape[2:]))
    axes = tuple(range(2, len(shape) + 1))
    centred = sub(groups, mean(groups, axes, keepdims=True))
    var = mean(mul(centred, centred), axes, keepdims=True)
    y = reshape(mul(centred, rsqrt(add(var, float(eps)))), shape)
    if weight is not None:
        y = mul(y, reshape(weight, per_channel))
    if bias is not None:
        y = add(y, reshape(bias, per_channel))
    return y


def layer_norm_grad(x, weight, g, eps):
    return apply("layer_norm_grad", x, weight, g, eps=float(eps))


def layer_norm_wgrad(x, g, eps):
    """LayerNorm's weight gradient: g times the normalised x, summed over the leading axes."""
    return apply("layer_norm_wgrad", x, g, eps=float(eps))


# BatchNorm's kernels (graphc/batch_norm.py builds the layer on them), not re-exported by
# graphc: gc.batch_norm is that module, and torch's F.batch_norm has another signature
def batch_norm(x, weight=None, bias=None, eps=1e-5):
    """x (N, C, ...) normalised per channel (axis 1) by its mean and biased variance over
    every other axis, times weight plus bias (C,), as BatchNorm in training; one kernel."""
    c = _shape(x)[1]
    weight = ones(c, _dtype(x)) if weight is None else weight
    bias = zeros(c, _dtype(x)) if bias is None else bias
    return apply("batch_norm", x, weight, bias, eps=float(eps))


def batch_norm_grad(x, weight, g, eps):
    return apply("batch_norm_grad", x, weight, g, eps=float(eps))


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """x (N, C, ...) normalised per sample and channel by its mean and biased variance over
    the further axes, times weight plus bias (C,): torch's instance_norm with the input's
    statistics (graphc/batch_norm.py's InstanceNorm adds the running ones). BatchNorm's
    kernel on x as (1, N*C, ...), each sample's channel a channel of its own."""
    shape = _shape(x)
    n, c = shape[0], shape[1]
    folded = reshape(x, (1, n * c) + tuple(shape[2:]))
    if weight is not None or bias is not None:
        weight, bias = (None if t is None else reshape(broadcast_to(reshape(t, (1, c)), (n, c)),
                                                       (n * c,))
                        for t in (weight, bias))
    return reshape(batch_norm(folded, weight, bias, eps), shape)


def batch_norm_wgrad(x, g, eps):
    """(2, C): BatchNorm's weight and bias gradients (g * xhat and g summed per channel)."""
    return apply("batch_norm_wgrad", x, g, eps=float(eps))


def batch_moments(x):
    """(2, C): the mean and biased variance of each channel (axis 1) of x (N, C, ...)."""
    return apply("batch_moments", x)


def gelu_grad(x, g, approximate="tanh"):
    """g * GELU'(x): the gradient of gelu, as one kernel."""
    return apply("gelu_grad", x, g, approximate=approximate)


def softmax_grad(y, g, axis=-1):
    """y * (g - sum(g * y)): the gradient of softmax given its output y."""
    return apply("softmax_grad", y, g, axis=_axis(axis, _ndim(y)))


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), finite for large |x| (the smooth softplus: torch's
    logsigmoid has no threshold)."""
    return neg(apply("softplus", neg(x)))


logsigmoid = log_sigmoid  # torch.nn.functional's name


def square(x):
    return mul(x, x)  # (mul, not *: see round)


def clip(x, min=None, max=None):
    """x limited to [min, max] (either may be None), as jnp.clip and torch.clamp; at a bound
    the gradient passes to x, and where the result is NaN to nothing, as PyTorch's. A float
    scalar bound (a weak value too: a compiled function's float argument, gc.sqrt(2.0))
    makes integers (bools) floats, as numpy's and JAX's: of the dtype a weak float takes
    alone, float32 (JAX's default)."""
    if not is_float(_dtype(x)) and builtins.any(
            _weakly_typed(b) and is_float(_dtype(b)) for b in (min, max)):
        x = cast(x, "float32")
    if min is None and max is None:
        return _unchanged(x)
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return _no_gradient_where_nan(x)


def _no_gradient_where_nan(y):
    """y passing no gradient where it is NaN, as torch.clamp's (x >= min and x <= max both
    fail there), where maximum's and minimum's send a NaN's gradient to both operands, as
    torch.maximum's. Eagerly only a value that needs a gradient and holds a NaN gets the mask
    (np.min, which a NaN makes NaN, is a fifth of the cost of a maximum); compiled, the
    forward pass drops it (passes/simplify.py: the where's branches are one value)."""
    if not is_float(_dtype(y)) or not getattr(y, "requires_grad", True):
        return y
    if _runs_now(y) and (y.size == 0 or not np.isnan(np.min(np.asarray(y)))):
        return y
    return where(not_equal(y, y), stop_gradient(y), y)  # (ne fuses into a kernel; isnan not)


@takes_inplace
def silu(x):
    """x * sigmoid(x) (a.k.a. swish), as torch.nn.functional.silu."""
    if is_half(_dtype(x)):  # in float32, rounded once, as torch's: the sigmoid rounded to
        # half first put it 9 ulps (float16) to 41 (bfloat16) off
        return _rounded_once(silu, x)
    return mul(x, sigmoid(x))


@takes_inplace
def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, negative_slope * x elsewhere (the gradient at 0 is negative_slope, as
    in PyTorch); negative_slope is one number (or a 0-d value), as torch's."""
    # a 0-d array or tensor is the number it holds, as torch's Scalar setting (of any real
    # dtype: a float32 one met bfloat16 x as a mix of dtypes); a traced value stays as it
    # is, and so does a tensor that requires grad (the tape differentiates it, as graphc.grad
    # does a traced one; taken as a number its gradient was lost silently)
    number = None if getattr(negative_slope, "requires_grad", False) else \
        _as_number(negative_slope)
    if number is None and not hasattr(negative_slope, "shape"):  # (a list: "cannot use a
        # list as a tensor operand", naming no argument)
        _fail(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}"[:200])
    if number is None and tuple(negative_slope.shape) != ():
        # torch's is one number; one of shape (1,) or (3,) broadcast against x (x of shape
        # () came back of shape (3,)), a slope per element
        _fail(f"leaky_relu: negative_slope must be a number, got a value of shape "
              f"{tuple(negative_slope.shape)}")
    negative_slope = negative_slope if number is None else number
    # a slope operand (traced: a compiled function's 0-d argument, a vmapped slope; or a
    # tensor that requires grad) is torch's Scalar too, whatever its real dtype: cast to the
    # dtype x is computed in, as torch's kernel converts its slope (float64 0.1 rounded to
    # float32; a half one exact in float32), where it met x as a mix of dtypes (float32 x and
    # a float64 slope were refused compiled, taken eagerly). The cast keeps its gradient.
    computed_in = np.dtype("float32") if is_half(_dtype(x)) else _dtype(x)
    if number is None and is_float(computed_in) and _dtype(negative_slope) != computed_in:
        negative_slope = cast(negative_slope, computed_in)
    if is_half(_dtype(x)):  # in float32, rounded once, as torch's: the slope rounded to half
        # first (a weak number takes x's dtype) put x * 0.01 1 ulp off
        return _rounded_once(leaky_relu, x, negative_slope)
    return where(greater(x, 0), x, mul(x, negative_slope))


def rms_norm(x, weight=None, eps=None):
    """RMSNorm over the last axis: x / sqrt(mean(x**2) + eps) * weight, as torch's
    F.rms_norm; eps=None is the machine epsilon of the dtype it is computed in, as in PyTorch:
    x's, float32's for a half x (computed in float32, weight included, and rounded once)."""
    _refuse_normalized_shape("rms_norm", weight, "RMSNorm")
    if eps is not None:
        eps = _number("rms_norm: eps", eps)
    n = _shape(x)[-1] if _shape(x) else 1
    _norm_parameters("rms_norm", x, n, "RMSNorm", any_real=True, weight=weight)
    compute = np.dtype(np.float32) if is_half(_dtype(x)) else _dtype(x)
    if eps is None:  # torch's: the epsilon of the dtype it computes in, float32 for a half
        # x (half's own, 1e-3 or 8e-3, outweighed mean(x**2) for |x| < 0.03: the RMS norm
        # of 0.001s was 0.032 in float16, torch's 0.95)
        eps = float(finfo(compute).eps)

    def to(v, dtype):  # (no eager copy where v has it)
        return v if _dtype(v) == dtype else cast(v, dtype)

    # a half x in float32, weight included, rounded once, as torch's: x * x overflows half
    # past |x| = 256, and a half product rounded twice (1 ulp off)
    wide = to(x, compute)
    y = wide * rsqrt(mean(wide * wide, -1, keepdims=True) + eps)
    if weight is not None:  # torch takes a weight of any real dtype: the product in the
        # wider of the two (float64 where either is; an integer weight in the float one)
        both = (compute, _dtype(weight))
        product = np.dtype(np.float64) if np.dtype(np.float64) in both else compute
        y = to(y, product) * to(weight, product)
    return to(y, _dtype(x))


# ---- convolution and pooling (PyTorch's NCHW layout) -----------------------------------------
# Composites, no op of their own: a zero (or -inf) padding by concat, one strided slice per
# kernel tap, stacked (im2col) and contracted by one matmul. Gradients, vmap and fusion are
# those of the ops they are made of.
def _pair(name, what, v):
    pair = (v, v) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else ()
    if len(pair) != 2 or not builtins.all(is_int(k) for k in pair):
        _fail(f"{name}: {what} must be an int or a pair of ints, got {v!r}")
    return int(pair[0]), int(pair[1])


def _pad2d(x, rows, cols, value, spatial=(2, 3)):
    """x (N, C, H, W) with rows = (above, below) rows and cols = (left, right) columns of
    `value` added (`spatial`: the axes of H and W; (1, 2) for (N, H, W, C))."""
    for axis, sizes in ((spatial[0], rows), (spatial[1], cols)):
        edges = [full(_shape(x)[:axis] + (k,) + _shape(x)[axis + 1:], value, _dtype(x))
                 if k else None for k in sizes]
        if builtins.any(sizes):
            x = concat([e for e in (edges[0], x, edges[1]) if e is not None], axis)
    return x


def _pad2d_mode(name, x, padding, mode, given=None):
    """x (..., H, W) padded by padding ((above, below), (left, right)) with torch.nn.Conv2d's
    padding_mode 'reflect', 'replicate' or 'circular' (F.pad's): rows (columns) of x itself,
    each a slice of one, so that their gradients flow back to x; three pairs pad (..., D, H,
    W) (Conv3d). `given`: the padding as the layer was given it (Conv1d's int, Conv2d's
    pair), which the messages name; without it (padding="same") they name one axis's
    (before, after), which was '(-1, -1)' for Conv1d's padding -1 and for Conv2d's (1, -1)."""
    for axis, (before, after) in zip(range(-len(padding), 0), padding):
        if builtins.min(before, after) < 0:  # F.pad would crop; conv2d refuses it too
            shown = (before, after) if given is None else given
            _fail(f"{name}: padding must be >= 0, got {shown}")
        size = _shape(x)[axis]
        most = {"reflect": size - 1, "circular": size}.get(mode)
        if isinstance(size, int) and most is not None and builtins.max(before, after) > most:
            shown = (before, after) if given is None else given
            _fail(f"{name}: padding_mode {mode!r} pads at most {most} on an axis of size "
                  f"{size}, got padding {shown}")
        # the rows above (before) and below (after), as sums that a symbolic size allows
        rows = {"reflect": ([before - k for k in range(before)],
                            [size - 2 - k for k in range(after)]),
                "replicate": ([0] * before, [size - 1] * after),
                "circular": ([size - before + k for k in range(before)], list(range(after)))}[mode]
        def row(i):
            starts, stops = [0] * _ndim(x), list(_shape(x))
            starts[axis], stops[axis] = i, i + 1
            return slice_(x, starts, stops, [1] * _ndim(x))
        x = concat([row(i) for i in rows[0]] + [x] + [row(i) for i in rows[1]], axis)
    return x


def _windows(name, x, kernel, stride, padding, dilation, pad_value, channels_last=False):
    """The kH*kW strided views of padded x, each (N, C, Ho, Wo), in kernel row-major order
    (PyTorch's unfold order), and (Ho, Wo). padding: (ph, pw), each side alike, or
    ((above, below), (left, right)). `channels_last`: x is (N, C, H, W) as always, and the
    views are (N, Ho, Wo, C), cut from one transposed copy of x."""
    if _ndim(x) != 4:
        _fail(f"{name}: x must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape {_shape(x)}")
    spatial = (1, 2) if channels_last else (2, 3)
    if channels_last:
        x = transpose(x, (0, 2, 3, 1))
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    sides = tuple(p if isinstance(p, tuple) else (p, p) for p in padding)
    for what, given, values, low in (("kernel size", kernel, kernel, 1),
                                     ("stride", stride, stride, 1),
                                     ("dilation", dilation, dilation, 1),
                                     ("padding", padding, sides[0] + sides[1], 0)):
        if builtins.min(values) < low:
            _fail(f"{name}: {what} must be >= {low}, got {given}")
    x = _pad2d(x, *sides, pad_value, spatial)
    hp, wp = (_shape(x)[a] for a in spatial)
    reach_h, reach_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    try:
        if reach_h > hp or reach_w > wp:
            _fail(f"{name}: the kernel ({reach_h}, {reach_w}) (dilated) is larger than the "
                  f"padded input ({hp}, {wp})")
        ho, wo = floor_div(hp - reach_h, sh) + 1, floor_div(wp - reach_w, sw) + 1
    except InconclusiveDim as exc:  # a symbolic H or W: the plan has no one output size
        _fail(f"{name}: no output size for every value of a symbolic height or width "
              f"(kernel {kernel}, stride {stride}, padding {padding}): {exc.message}")
    def window(i, j):  # the tap (i, j): starts, stops and steps of its strided view
        rows = (i * dh, i * dh + sh * (ho - 1) + 1, sh)
        cols = (j * dw, j * dw + sw * (wo - 1) + 1, sw)
        whole = (0, None, 1)
        parts = (whole, rows, cols, whole) if channels_last else (whole, whole, rows, cols)
        stops = [shape if stop is None else stop
                 for (_, stop, _), shape in zip(parts, _shape(x))]
        return slice_(x, [p[0] for p in parts], stops, [p[2] for p in parts])

    return [window(i, j) for i in range(kh) for j in range(kw)], (ho, wo)


def _taps(x, kernel, stride, padding, dilation, count_padding=False, dtype=None):
    """(1, 1, Ho, Wo): how many of each window's taps fall inside x, in `dtype` (x's if
    None), the padding counted too with `count_padding`, ceil_mode's overhang never.
    padding: from _pool_args, ((p, p + overhang), (p, p + overhang)) for H and W."""
    (ph, ph_end), (pw, pw_end) = padding
    h, w = _shape(x)[-2:]
    area = full((1, 1, h, w), 1, _dtype(x) if dtype is None else dtype)
    area = _pad2d(area, (ph, ph), (pw, pw), float(count_padding))
    views, _ = _windows("pool", area, kernel, stride, ((0, ph_end - ph), (0, pw_end - pw)),
                        dilation, 0.0)
    return sum(stack(views, -1), -1)


def _unbatched(f, x, *args):
    """f of a 3-d x (C, H, W), PyTorch's unbatched input: of a batch of one (each of f's
    results, where it returns a tuple)."""
    out = f(expand_dims(x, 0), *args)
    if isinstance(out, tuple):
        return tuple(squeeze(o, 0) for o in out)
    return squeeze(out, 0)


def _same_padding(name, kernel, stride, dilation):
    if builtins.any(s != 1 for s in stride):
        _fail(f"{name}: padding='same' needs stride 1, as in PyTorch")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    # an odd total puts the extra row (column) below (right), as PyTorch
    return tuple((t // 2, t - t // 2) for t in totals)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation as torch.nn.functional.conv2d: x (N, C, H, W), w (O, C/groups,
    kH, kW), b (O,) or None; stride, padding and dilation an int or a pair, padding also
    'valid' (0) or 'same' (stride 1). Gives (N, O, Ho, Wo); x (C, H, W) gives (O, Ho, Wo)."""
    if _ndim(x) == 3:
        return _unbatched(conv2d, x, w, b, stride, padding, dilation, groups)
    if _ndim(w) != 4:
        _fail(f"conv2d: w must be 4-d (O, C/groups, kH, kW), got shape {_shape(w)}")
    o, cg, kh, kw = _shape(w)
    stride, dilation = _pair("conv2d", "stride", stride), _pair("conv2d", "dilation", dilation)
    if not isinstance(padding, str):
        padding = _pair("conv2d", "padding", padding)
    elif padding in ("same", "valid"):
        padding = (_same_padding("conv2d", (kh, kw), stride, dilation) if padding == "same"
                   else (0, 0))
    else:
        _fail(f"conv2d: padding must be an int, a pair of ints, 'same' or 'valid', got "
              f"{padding!r}")
    if not is_int(groups):
        _fail(f"conv2d: groups must be an int, got {groups!r}")
    groups = int(groups)
    if groups < 1 or o % groups:
        _fail(f"conv2d: groups={groups} must be >= 1 and divide w's {o} output channels")
    if _ndim(x) == 4 and _shape(x)[1] != cg * groups:
        _fail(f"conv2d: x has {_shape(x)[1]} channels, w {_shape(w)} takes {cg * groups}"
              + (f" (groups={groups})" if groups > 1 else ""))
    if b is not None and _shape(b) != (o,):
        _fail(f"conv2d: b must have shape ({o},), one value per output channel, got "
              f"{_shape(b)}")
    # under autocast matmul casts float32 and half to the half dtype; outside, numpy would
    # promote them where PyTorch refuses, and matmul's own error names im2col's internal
    # shapes
    for name, v in (("w", w), ("b", b)):
        why = None if v is None else precision.dtype_clash(_dtype(x), _dtype(v))
        if why:
            _fail(f"conv2d: x is {_dtype(x)} and {name} {_dtype(v)}: {why}; cast one with "
                  ".astype")
    # the views cut from x in (N, H, W, C), so that stacking them last gives (N, Ho, Wo, C,
    # kH*kW), the patches' channels and taps in w's order, with no transpose of the nine
    # times larger stack: one GEMM of (N*Ho*Wo, C*kH*kW) rows by w's columns does the rest
    views, (ho, wo) = _windows("conv2d", x, (kh, kw), stride, padding, dilation, 0.0,
                               channels_last=True)
    n = _shape(x)[0]
    cols = stack(views, -1)
    if groups == 1:
        out = matmul(reshape(cols, (n, ho, wo, cg * kh * kw)),
                     transpose(reshape(w, (o, cg * kh * kw))))
        out = transpose(out, (0, 3, 1, 2))
    else:
        cols = reshape(cols, (n, ho, wo, groups, cg * kh * kw))
        wg = reshape(w, (groups, o // groups, cg * kh * kw))
        out = reshape(einsum("nhwgk,gok->ngohw", cols, wg), (n, o, ho, wo))
    if b is not None:  # under autocast b may be any float dtype: PyTorch casts it too
        out = out + reshape(b if _dtype(b) == _dtype(out) else cast(b, _dtype(out)), (o, 1, 1))
    return out


def _single(name, what, v):
    """A 1-d convolution's setting: an int or a tuple of one."""
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if not is_int(v):
        _fail(f"{name}: {what} must be an int or a tuple of one int, got {v!r}")
    return int(v)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation as torch.nn.functional.conv1d: x (N, C, L) or (C, L), w (O,
    C/groups, K), b (O,) or None; padding an int, 'valid' or 'same'. Gives (N, O, Lo): conv2d
    over a height of one, so its gradients and kernels are conv2d's."""
    if _ndim(x) not in (2, 3):
        _fail(f"conv1d: x must be 3-d (N, C, L) or 2-d (C, L), got shape {_shape(x)}")
    if _ndim(w) != 3:
        _fail(f"conv1d: w must be 3-d (O, C/groups, K), got shape {_shape(w)}")
    # what conv2d would refuse naming itself and the (1, K) settings and (O, C, 1, K) weight
    # it is given, not what the user wrote
    o, cg, k = _shape(w)
    if not is_int(groups) or groups < 1 \
            or o % groups:
        _fail(f"conv1d: groups={groups!r} must be a positive int dividing w's {o} output "
              "channels")
    if _shape(x)[-2] != cg * groups:
        _fail(f"conv1d: x has {_shape(x)[-2]} channels, w {_shape(w)} takes {cg * groups}"
              + (f" (groups={groups})" if groups > 1 else ""))
    if b is not None and _shape(b) != (o,):
        _fail(f"conv1d: b must have shape ({o},), one value per output channel, got "
              f"{_shape(b)}")
    stride, dilation = _single("conv1d", "stride", stride), _single("conv1d", "dilation",
                                                                    dilation)
    for what, v in (("stride", stride), ("dilation", dilation)):
        if v < 1:
            _fail(f"conv1d: {what} must be >= 1, got {v}")
    if k < 1:
        _fail(f"conv1d: kernel size must be >= 1, got {k}")
    if isinstance(padding, str) and padding not in ("same", "valid"):
        _fail(f"conv1d: padding must be an int, a tuple of one int, 'same' or 'valid', got "
              f"{padding!r}")
    if isinstance(padding, str) and padding == "same" and stride != 1:
        _fail("conv1d: padding='same' needs stride 1, as in PyTorch")
    for name, v in (("w", w), ("b", b)):  # as conv2d's check
        why = None if v is None else precision.dtype_clash(_dtype(x), _dtype(v))
        if why:
            _fail(f"conv1d: x is {_dtype(x)} and {name} {_dtype(v)}: {why}; cast one with "
                  ".astype")
    if not isinstance(padding, str) or padding == "valid":
        padding = (0, 0 if isinstance(padding, str) else _single("conv1d", "padding", padding))
        if padding[1] < 0:
            _fail(f"conv1d: padding must be >= 0, got {padding[1]}")
        span = dilation * (k - 1) + 1
        length = _shape(x)[-1]
        try:
            if length + 2 * padding[1] < span:
                _fail(f"conv1d: the kernel {span} (dilated) is longer than the padded input "
                      f"{length + 2 * padding[1]}")
            floor_div(length + 2 * padding[1] - span, stride)
        except InconclusiveDim as exc:  # a symbolic length (conv2d's line would name
            # itself and the (1, K) form)
            _fail(f"conv1d: no output size for every value of a symbolic length (kernel {k}, "
                  f"stride {stride}, padding {padding[1]}, dilation {dilation}): "
                  f"{exc.message}")
    out = conv2d(expand_dims(x, -2), expand_dims(w, -2), b,
                 (1, stride), padding, (1, dilation), groups)
    return squeeze(out, -2)


def _pool_args(name, x, kernel_size, stride, padding, dilation, ceil_mode):
    """kernel, stride, dilation and the padding ((above, below), (left, right)): below and
    right with ceil_mode's overhang, enough rows (columns) for one more window where PyTorch
    has one: one that starts inside x or its padding above (left)."""
    kernel = _pair(name, "kernel_size", kernel_size)
    stride = kernel if stride is None else _pair(name, "stride", stride)
    padding, dilation = _pair(name, "padding", padding), _pair(name, "dilation", dilation)
    _flag(name, "ceil_mode", ceil_mode)
    for what, values, low in (("kernel size", kernel, 1), ("stride", stride, 1),
                              ("dilation", dilation, 1), ("padding", padding, 0)):
        if builtins.min(values) < low:
            _fail(f"{name}: {what} must be >= {low}, got {values}")
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        _fail(f"{name}: padding {padding} must be at most half the kernel size {kernel}, as "
              "in PyTorch")
    if _ndim(x) != 4:
        _fail(f"{name}: x must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape {_shape(x)}")
    sides = []
    for size, k, s, p, d in zip(_shape(x)[2:], kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1  # the room for windows after the first
        overhang = 0
        if ceil_mode and s > 1:  # (at stride 1 it changes nothing)
            try:  # a symbolic size: where the stride divides its symbols' coefficients
                # (2*h by 2), the count is one polynomial and the overhang one number
                windows = floor_div(span + s - 1, s) + 1  # the ceiling of span / s, + 1
                if (windows - 1) * s >= size + p:  # the last would start in the padding below
                    windows -= 1
                # (none: _windows says the kernel is larger than the input)
                overhang = builtins.max(0, (windows - 1) * s - span) if windows > 0 else 0
            except InconclusiveDim as exc:
                _fail(f"{name}: ceil_mode has no output size for every value of the symbolic "
                      f"size {size} (kernel {k}, stride {s}, padding {p}, dilation {d}): "
                      f"{exc.message}")
        sides.append((p, p + overhang))
    return kernel, stride, tuple(sides), dilation


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """torch.nn.functional.max_pool2d of x (N, C, H, W): stride defaults to kernel_size, the
    padding is -inf; ceil_mode as PyTorch's. A window's gradient goes where PyTorch's (and
    JAX's) goes: to its first maximum in row-major order inside x, never the padding; where
    the window holds NaNs (its value is NaN) to the first, where torch's goes to the last.
    x may be (C, H, W), as in PyTorch. return_indices=True: (out, indices), indices (int64,
    no gradient) as torch's: where in its (H, W) plane, h * W + w,
    each window's largest value is, the first in row-major order on ties (a NaN: the first,
    where torch's takes the last); a window lying wholly in the padding (possible with
    dilation; its value is -inf) has the index 2**40 (_OUTSIDE), past any plane, where
    torch's gives some place it never read. With a symbolic height or width, tied maxima
    share a window's gradient instead."""
    if _ndim(x) == 3:
        return _unbatched(max_pool2d, x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices)
    _flag("max_pool2d", "return_indices", return_indices)
    kernel, stride, padding, dilation = _pool_args("max_pool2d", x, kernel_size, stride,
                                                   padding, dilation, ceil_mode)
    # the padding must never win a window: -inf, or an integer (bool) dtype's least value
    dtype = np.dtype(_dtype(x))
    lowest = (-math.inf if is_float(dtype) else 0 if dtype == np.bool_
              else int(np.iinfo(dtype).min))
    views, (ho, wo) = _windows("max_pool2d", x, kernel, stride, padding, dilation, lowest)
    h, w = _shape(x)[2:]
    known = builtins.all(isinstance(d, int) for d in (h, w, ho, wo))
    if known:
        # each tap's place h * W + w per output row (and column), _OUTSIDE off x
        rows = _tap_places(ho, kernel[0], stride[0], padding[0][0], dilation[0], h, w)
        cols = _tap_places(wo, kernel[1], stride[1], padding[1][0], dilation[1], w, 1)
    if known and is_float(dtype):
        # tap (a, b) of each window inside x; a window of padding alone (possible with
        # dilation) ends at its last tap: -inf, no gradient into x
        rows_in, cols_in = rows != _OUTSIDE, cols != _OUTSIDE
        inside = [rows_in[:, t // kernel[1]][:, None] & cols_in[:, t % kernel[1]][None, :]
                  for t in range(len(views))]
        out = _first_of_maxima(views, inside)
    else:
        out = max(stack(views, -1), -1)
        if is_float(dtype) and builtins.any(padding[0] + padding[1]):
            # a window that is -inf throughout ties its real elements with its -inf padding,
            # and max's gradient, shared by all kH*kW taps, loses the padding's part: scaled
            # by taps / real taps there, the window's real elements share all of it (the
            # value is unchanged: -inf times a positive number, or anything times 1)
            real = _taps(x, kernel, stride, padding, dilation)
            scale = where(equal(out, -math.inf), (kernel[0] * kernel[1]) / maximum(real, 1),
                          1.0)
            out = out * stop_gradient(scale)
    if not return_indices:
        return out
    if not known:
        _fail(f"max_pool2d: return_indices=True needs a known height and width, got {h} "
              f"and {w}")
    # a tap outside x along either axis is at _OUTSIDE itself, so a window of padding alone
    # (possible with dilation) has the index _OUTSIDE, whatever its other axis
    places = np.minimum(rows[:, None, :, None] + cols[None, :, None, :],
                        _OUTSIDE).reshape(ho, wo, -1)
    return out, _first_largest(stack(views, -1), stop_gradient(out), places)


def _first_of_maxima(views, inside=None):
    """The largest of `views` (arrays of one shape), with its gradient going to the first
    view that equals it (or is NaN), not shared between tied ones, as torch's and JAX's max
    pools place it: a chain of elementwise maxima and wheres, which fuse into one kernel (a
    stack of the views and a reduction cost about 20x as much for max_pool1d's windows).
    inside: per view, a mask (broadcast against it) of where it may be picked (a pool's tap
    inside x); where none of them may, the last view."""
    best = views[0]
    for view in views[1:]:
        best = maximum(best, view)
    out = views[-1]
    for t in range(len(views) - 2, -1, -1):  # the first hit outermost
        view = views[t]
        hit = logical_or(equal(view, best), not_equal(view, view))
        if inside is not None and not inside[t].all():
            hit = logical_and(hit, inside[t])
        out = where(hit, view, out)
    return out


# a tap outside x (padding, ceil_mode's overhang) has this place: above any inside
_OUTSIDE = np.int64(1) << 40


def _tap_places(n_out, k, s, p, d, size, unit):
    """(n_out, k) int64: the place (position * unit) of tap j of window i along one axis,
    position i * s - p + j * d, or _OUTSIDE where that is not in 0 .. size - 1."""
    position = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :] * d
    return np.where((position >= 0) & (position < size), position * unit, _OUTSIDE)


def _first_largest(taps, out, places):
    """Where each window's largest value is: taps (..., T) a window's values along the last
    axis, out (...) their max, places (T,) or out's trailing shape + (T,) each tap's index in
    the plane (_OUTSIDE outside x). The least place of a tap equal to the max (or NaN): places
    grow in the window's row-major order, so it is the first, as torch's; a tap outside x is
    never picked, not even in a window of -inf throughout (torch's: the first inside)."""
    hits = equal(taps, expand_dims(out, -1))
    if is_float(_dtype(taps)):
        hits = logical_or(hits, not_equal(taps, taps))
    return stop_gradient(min(where(hits, places, _OUTSIDE), -1))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """torch.nn.functional.avg_pool2d of x (N, C, H, W): each window's sum over the taps
    inside x and, with count_include_pad (PyTorch's default), its zero padding; ceil_mode's
    overhang is never counted, as in PyTorch. divisor_override (a nonzero int): each
    window's sum divided by it instead, whatever the taps, as PyTorch's. x may be
    (C, H, W)."""
    if _ndim(x) == 3:
        return _unbatched(avg_pool2d, x, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)
    if not is_float(_dtype(x)):
        _fail(f"avg_pool2d of {with_article(_dtype(x))} value; cast it to a float type first")
    _flag("avg_pool2d", "count_include_pad", count_include_pad)
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        _fail(f"avg_pool2d: divisor_override must be a nonzero int or None, got "
              f"{divisor_override!r}")
    kernel, stride, padding, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1,
                                            ceil_mode)
    views, _ = _windows("avg_pool2d", x, kernel, stride, padding, (1, 1), 0.0)
    overhang = padding[0][1] > padding[0][0] or padding[1][1] > padding[1][0]
    if divisor_override is not None:
        out = sum(stack(views, -1), -1) / int(divisor_override)
    elif not overhang and (count_include_pad or not builtins.any(padding[0] + padding[1])):
        out = mean(stack(views, -1), -1)  # every window counts all its taps
    else:
        out = sum(stack(views, -1), -1)
        out = out / _taps(x, kernel, stride, padding, (1, 1), count_include_pad, _dtype(out))
    # autocast sums half values in float32; the pooled activation keeps x's dtype, as PyTorch's
    return cast(out, _dtype(x)) if _dtype(out) != _dtype(x) else out


def _check_reduction(name, reduction):
    if reduction not in ("mean", "sum", "none"):
        _fail(f"{name}: unknown reduction {reduction!r} (choose 'mean', 'sum' or 'none')")


def _autocast_reconciles(*dtypes) -> bool:
    """Whether the ops under the active autocast policy cast operands of these dtypes to one:
    float32 and the policy's half dtype (float32 is cast to it), not the other half dtype
    (bfloat16 meeting float16 is refused there), float64 or integers."""
    half = precision.active_half()
    return half is not None and builtins.all(d == np.float32 or d == half for d in dtypes)


def _result_type(dtypes):
    """torch's type promotion of tensors of these dtypes (a float one among them, which
    _autocast_promoted asks first: of integers alone it is no float32): the float
    dtype, float64 if any is, float32 for float32 with a half dtype or for the two half
    dtypes; an integer or bool tensor takes the float one's dtype."""
    floats = {np.dtype(d) for d in dtypes if is_float(d)}
    if len(floats) == 1:
        return floats.pop()
    f64 = np.dtype("float64")
    return f64 if f64 in floats else np.dtype("float32")


def _autocast_promoted(operands, refuse="", like=None):
    """A loss's operands (input, target, ...) under autocast, cast to one dtype as torch's
    loss computes them there: torch.autocast casts the half operands of the losses on its
    float32 list to float32 (in_float32) and leaves float64 and integers alone, and the loss
    then promotes (mse_loss of float32 and float64 is float64; an integer target takes the
    input's float dtype; gaussian_nll_loss, not on the list, of bfloat16 and float32 is
    float32). like=k: the loss keeps operand k's dtype, as torch's huber_loss,
    soft_margin_loss and the losses that only compare their target (hinge, cosine), and
    binary_cross_entropy_with_logits its target's (like=1). Left
    as given outside autocast (a dtype mix is refused there: graphc mixes no dtypes
    silently), for weak numbers, and where an operand's kind is in `refuse` ("b": bool,
    "iub": integers too), which torch's loss refuses under autocast too: _loss_operands
    refuses the mix then, naming the loss. So is a Python list or tuple operand: its
    float64 is numpy's reading, no dtype it has, and cast or the loss's ops would refuse
    it naming themselves ("sub: cannot use a list ..."). So are integer (or bool)
    operands alone: autocast casts no integer, so torch's loss sees them as outside
    autocast, and graphc's refuses them as there, _loss_operands naming the loss (promoted
    to _result_type's float32, multilabel_soft_margin_loss of int64 and int32 computed,
    where torch's says '"log_sigmoid_cpu" not implemented for 'Long'')."""
    if precision.active_half() is None:
        return operands
    dtypes = [_dtype(x) for x in operands]
    if len(set(dtypes)) == 1 or builtins.any(map(_weakly_typed, operands)) or \
            builtins.any(np.dtype(d).kind in refuse for d in dtypes) or \
            not builtins.all(hasattr(x, "dtype") for x in operands) or \
            not builtins.any(map(is_float, dtypes)):
        return operands
    to = dtypes[like] if like is not None else _result_type(dtypes)
    if not is_float(to):  # an integer input meeting a float target: torch's loss refuses it
        # (its float result can't be cast to the input's dtype), so does _loss_operands by
        # the loss's name; cast to int64, the target met the loss's float delta or margin
        # ("float scalar 1.0 meets an integer tensor")
        return operands
    return [x if d == to else cast(x, to) for x, d in zip(operands, dtypes)]


def _no_list(name, what, x, numbers_too=True):
    """Refuse a Python list or tuple given as a loss's operand (or cosine_similarity's,
    pairwise_distance's) in one line naming the function and the argument, as torch's
    refuse one: let through, its dtype was numpy's reading and the ops refused it naming
    themselves ("cast: cannot use a list ..."). One holding traced values or tensors is
    told to gc.stack them: np.asarray cannot read a traced value (numpy's reading of one was
    "a symbolic value cannot be turned into a numpy array", naming neither), and drops an
    eager one's gradient. numbers_too=False lets a list of numbers through (a class weight,
    an array-like there), refusing only those."""
    if not isinstance(x, (list, tuple)):
        return
    if holds_values(x):
        # (or an array: a compiled function's list argument is such a list inside it)
        _fail(f"{name}: {what} is {a_type(x)} of tensors or traced values; stack "
              f"them into one (gc.stack) or give an array, as torch's {name} takes one "
              "tensor")
    if numbers_too:
        _fail(f"{name}: {what} is {a_type(x)}; give an array or a tensor "
              f"(np.asarray), as torch's {name} takes a tensor")


def _no_lists(name, what, *operands):
    """_no_list of each of a loss's tensor operands, named in `what`, asked before anything
    reads one: a list of traced values (f([a, b], t) in a compiled function) has no shape or
    dtype to read (np.asarray of each refused it, naming neither the loss nor the argument),
    so the loss's first _shape, _ndim or _dtype, or autocast's promotion, would not get to
    _loss_operands' check."""
    for w, x in zip(what, operands):
        if isinstance(x, (list, tuple)):
            _no_list(name, w, x)


def _loss_operands(name, a, b, what=("input", "target")):
    """The shape a loss's two operands broadcast to, after the checks torch makes: one
    GraphcError line naming the loss, not sub's (or numpy's, for two arrays)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):  # (no call per loss)
        _no_list(name, what[0], a)
        _no_list(name, what[1], b)
    sa, sb = _shape(a), _shape(b)
    # a weak scalar (a number argument of a compiled function too) takes the other's dtype;
    # under autocast the ops cast a half activation and a float32 operand to one dtype, and
    # the losses promote the other mixes torch's do (_autocast_promoted): the rest, which
    # torch refuses too, is refused here, not by sub's type rule naming sub (asked last:
    # one dtype, the common case, costs no weak test)
    if _dtype(a) != _dtype(b) and not _autocast_reconciles(_dtype(a), _dtype(b)) and \
            not (_weakly_typed(a) or _weakly_typed(b)):
        _dtype_mix(name, a, b, what)
    shape = broadcast_shapes(tuple(sa), tuple(sb))
    if shape is None:
        _fail(f"{name}: {what[0]} {tuple(sa)} and {what[1]} {tuple(sb)} do not broadcast")
    return shape


def _float_operands(name, a, b, what=("input", "target"), torch_too=True):
    """Refuse integer (or bool) operands alone of a loss that computes in floats (mse_loss,
    l1_loss, smooth_l1_loss, huber_loss, kl_div, the binary cross-entropies, the margin and
    Poisson losses), in one line naming the loss, as torch's refuse them, in and out of
    autocast ("mse_cpu" not implemented for 'Long'; l1_loss's mean() cannot infer an output
    dtype). Only the wording: _autocast_promoted leaves integers alone, and _loss_operands
    would refuse two integer dtypes, but with 'cast one', which a cast to the other integer
    dtype does not help, and one dtype met mean's or a float scalar's line. An integer
    beside a float operand is promoted (under autocast) or refused as a dtype mix, as
    before. A list operand was refused before (_no_lists). torch_too=False: torch's loss
    computes integers (margin_ranking_loss, poisson_nll_loss), graphc's does not."""
    if is_float(_dtype(a)) or is_float(_dtype(b)):
        return
    _unsupported_operands(name, a, b, what)  # (two complex ones were told 'no integers')
    given = ("are " + str(_dtype(a)) if _dtype(a) == _dtype(b) else
             f"are {_dtype(a)} and {_dtype(b)}")
    whose = (f"torch's {name} takes no integers alone either" if torch_too else
             f"graphc's {name} takes no integers alone")
    _fail(f"{name}: {what[0]} and {what[1]} {given}; {whose}: cast them to a float dtype "
          "(.astype)")


def _unsupported_operands(name, a, b, what):
    """A loss's line for an operand of a dtype graphc does not hold (complex), naming it."""
    for role, x in zip(what, (a, b)):
        reason = unsupported_dtype(_dtype(x))
        if reason:
            _fail(f"{name}: {role}: {reason}")


def _dtype_mix(name, a, b, what=("input", "target")):
    """A loss's one line for operands of two dtypes it does not take together, naming them
    in the dtypes the user gave (a half one that autocast cast to float32 by its own)."""
    _unsupported_operands(name, a, b, what)  # (a complex input was told to cast to float32)
    under = " (under autocast too)" if precision.active_half() is not None else ""
    _fail(f"{name}: {what[0]} is {precision.given_dtype(a, _dtype(a))} but {what[1]} is "
          f"{precision.given_dtype(b, _dtype(b))}{under}; cast one (.astype)")


def _class_axis(who, what, scores):
    """Refuse 0-d logits (log-probabilities) of cross_entropy and nll_loss, which have no
    class axis to read, in one line naming the loss and its argument (its shape's [-1] was
    an IndexError; torch refuses them too)."""
    if len(_shape(scores)) == 0:
        _fail(f"{who}: {what} must have a class axis (the last), got a 0-d value; an unbatched "
              f"input is a (C,) vector")


def _class_weight(who, weight, classes, ignore_index, layout=""):
    """cross_entropy's and nll_loss's `weight`: None, or one value per class (a list, an
    array or a tensor; _weight_like casts it to the log-probabilities' dtype), after checking
    ignore_index, an int: torch's third positional argument is the weight, which graphc's
    takes there. `layout`: _torch_class_axis's words, for a torch user's (C,) weight beside
    logits of torch's (N, C, d1, ...) layout."""
    if ignore_index is not None and not is_int(ignore_index):
        _fail(f"{who}: ignore_index must be an int, got {a_type(ignore_index)} "
              "(torch's third positional argument is the weight: pass weight=...)")
    if weight is None:
        return None
    _no_list(who, "weight", weight, numbers_too=False)  # (np.asarray would read each)
    if isinstance(weight, (list, tuple, np.ndarray, np.generic)):
        weight = np.asarray(weight)
        if not (is_float(weight.dtype) or weight.dtype.kind in "iu"):  # bfloat16's is "V"
            _fail(f"{who}: weight must hold numbers, got {weight.dtype}")
    if tuple(_shape(weight)) != (classes,):
        _fail(f"{who}: weight must have one value per class, shape ({classes},), got shape "
              f"{tuple(_shape(weight))}{layout}")
    return weight


def _no_bool_classes(who, what, targets):
    """Refuse bool class indices in one line naming the loss and its argument, as torch's
    losses refuse them ("expected target dtype to be Long or Byte, but got Bool"): let
    through, the ops reading them refused them naming themselves (ne, one_hot)."""
    if _dtype(targets) == np.bool_:
        _fail(f"{who}: {what} has dtype bool; class indices must be integers, as torch's "
              f"{who} requires: cast with .astype(np.int64)")


def _weight_like(weight, logp):
    """A loss's weight (a class weight, binary_cross_entropy's weight and pos_weight) in the
    dtype of what it weighs: float32 under autocast, where the losses run in float32 as
    torch's (so a float32 weight is not rounded to bf16), and a module's float64 weight
    buffer (numpy's default) meets float32 input, which torch's losses cast to as well."""
    if weight is None or _dtype(weight) == _dtype(logp):
        return weight
    return cast(weight, _dtype(logp))


@precision.in_float32  # torch.autocast's float32 list
def cross_entropy(logits, targets, ignore_index=-100, reduction="mean", weight=None,
                  label_smoothing=0.0):
    """Cross-entropy of `logits` (classes on the LAST axis; PyTorch puts them on axis 1, the
    same thing for (N, C) logits) against
    - integer `targets` of shape logits.shape[:-1]: positions whose target equals
      `ignore_index` count for nothing; `weight` (C,) weighs each class and the mean divides
      by the summed weight of the counted targets, as in PyTorch;
    - float `targets` of logits' shape (class probabilities, "soft" targets): the mean is
      over the leading positions.
    reduction: 'mean', 'sum' or 'none' (per position), as torch.nn.functional.cross_entropy.
    label_smoothing in [0, 1], as torch's: the target is a mix of (1 - label_smoothing) of
    itself and label_smoothing of the uniform distribution over the classes."""
    _check_reduction("cross_entropy", reduction)
    _no_list("cross_entropy", "logits", logits)  # (log_softmax would name itself)
    _no_list("cross_entropy", "targets", targets)  # (before ne or the dtype check read it)
    _class_axis("cross_entropy", "logits", logits)
    weight = _class_weight("cross_entropy", weight, _shape(logits)[-1], ignore_index,
                           _torch_class_axis(_shape(logits), _shape(targets), "logits"))
    smoothing = _label_smoothing(label_smoothing)
    lshape, tshape = _shape(logits), _shape(targets)
    classes = lshape[-1]
    if is_float(_dtype(targets)):
        if lshape != tshape:
            _fail(f"cross_entropy: probability targets must have the logits' shape {lshape}, "
                  f"got {tshape}")
        if smoothing:
            targets = targets * (1.0 - smoothing) + smoothing / classes
        logp = log_softmax(logits, -1)
        if _dtype(targets) != _dtype(logp):
            # torch's log_softmax, then its product with the probabilities, promoted under
            # autocast (float64 ones: a float64 loss); refused outside it, as a loss's mix
            logp, targets = _autocast_promoted((logp, targets))
            if _dtype(targets) != _dtype(logp):
                _dtype_mix("cross_entropy", logits, targets, ("logits", "targets"))
        if weight is not None:
            logp = logp * _weight_like(weight, logp)
        # where, not a product alone: a zero probability on a -inf logit adds nothing
        losses = -sum(where(targets == 0.0, 0.0, targets * logp), -1)
        if reduction == "none":
            return losses
        return sum(losses) if reduction == "sum" else mean(losses)
    if lshape[:-1] != tshape:
        if lshape == tshape:  # (torch's rule: the logits' shape makes them probabilities)
            _fail(f"cross_entropy: targets of the logits' shape {lshape} are class "
                  f"probabilities, which must be floating-point, got {_dtype(targets)} (class "
                  f"indices have shape {lshape[:-1]})")
        _fail(f"cross_entropy: logits {lshape} need targets of shape {lshape[:-1]}, "
              f"got {tshape}{_torch_class_axis(lshape, tshape, 'logits')}")
    _no_bool_classes("cross_entropy", "targets", targets)
    targets = _checked_class_targets(targets, classes, ignore_index)  # (smoothing's too)
    logp = log_softmax(logits, -1)
    loss = _nll(logp, targets, ignore_index, reduction, weight)
    if not smoothing:
        return loss
    return (1.0 - smoothing) * loss + (smoothing / classes) * _smoothing_term(
        logp, targets, ignore_index, reduction, weight)


def _torch_class_axis(lshape, tshape, what) -> str:
    """The end of cross_entropy's and nll_loss's line for targets of another shape, when
    that shape is the one torch's (N, C, d1, ...) layout, classes on axis 1, would take:
    graphc's classes are on the last axis (README), which the user likely missed."""
    if len(lshape) >= 3 and tuple(tshape) == (lshape[0],) + tuple(lshape[2:]):
        return (f" (classes are on the last axis here; torch's are on axis 1: move them "
                f"with gc.moveaxis({what}, 1, -1))")
    return ""


def _label_smoothing(value) -> float:
    # torch's float argument takes True (1.0) and a 0-d tensor as well as a number: a layer
    # setting's rule (_as_number's torch_scalars; is_real, not np.number, which holds
    # numpy's complex scalars, which float() takes)
    number = _as_number(value, torch_scalars=True)
    if number is None or not 0.0 <= number <= 1.0:
        _fail(f"cross_entropy: label_smoothing must be a number in [0, 1], got {value!r}")
    return number


def _smoothing_term(logp, targets, ignore_index, reduction, weight):
    """torch's label-smoothing part of cross_entropy: each position's -sum_c w_c logp_c (0 at
    ignored positions), reduced as the nll part is (a mean divides by the same count or
    summed weight of the counted targets)."""
    weight = _weight_like(weight, logp)
    per_class = logp if weight is None else logp * weight
    smooth = -sum(per_class, -1)
    counted = None if ignore_index is None else not_equal(targets, ignore_index)
    if counted is not None:
        smooth = where(counted, smooth, 0.0)
    if reduction == "none":
        return smooth
    if reduction == "sum":
        return sum(smooth)
    if weight is not None:
        chosen = one_hot(targets, _shape(logp)[-1], "bool")
        if counted is not None:
            chosen = logical_and(chosen, expand_dims(counted, -1))
        return sum(smooth) / sum(where(chosen, weight, 0.0))
    if counted is None:
        return mean(smooth)
    return sum(smooth) / sum(cast(counted, _dtype(logp)))


@precision.in_float32  # torch.autocast's float32 list
def nll_loss(log_probs, targets, ignore_index=-100, reduction="mean", weight=None):
    """Negative log-likelihood of integer `targets` given log-probabilities (classes on the
    last axis), as torch.nn.functional.nll_loss; `weight`, `ignore_index` and `reduction` as
    in cross_entropy."""
    _check_reduction("nll_loss", reduction)
    _no_list("nll_loss", "log_probs", log_probs)  # (one of _nll's ops would name itself)
    _no_list("nll_loss", "targets", targets)
    _class_axis("nll_loss", "log_probs", log_probs)
    weight = _class_weight("nll_loss", weight, _shape(log_probs)[-1], ignore_index,
                           _torch_class_axis(_shape(log_probs), _shape(targets), "log_probs"))
    if is_float(_dtype(targets)):
        _fail("nll_loss: targets must be integer class indices; for probabilities use "
              "cross_entropy")
    lshape, tshape = _shape(log_probs), _shape(targets)
    if lshape[:-1] != tshape:
        _fail(f"nll_loss: log-probabilities {lshape} need targets of shape {lshape[:-1]}, "
              f"got {tshape}{_torch_class_axis(lshape, tshape, 'log_probs')}")
    _no_bool_classes("nll_loss", "targets", targets)
    return _nll(log_probs, targets, ignore_index, reduction, weight)


class ClassTargetOutOfRange(GraphcError):
    """An integer class target outside [0, classes), not ignore_index, that
    checking_class_targets() found."""


class _ClassTargetCheck(threading.local):
    found = None      # within checking_class_targets(): a list, the first target found
    in_range = False  # such targets taken as class 0


_CLASS_TARGET_CHECK = _ClassTargetCheck()


@contextlib.contextmanager
def checking_class_targets(in_range=False):
    """Within it, the class-target losses (cross_entropy, nll_loss, multi_margin_loss) of
    concrete (eager) targets record the first one outside [0, classes) other than
    ignore_index, as PyTorch's "Target 3 is out of bounds", in the list it yields (still
    giving NaN there, README); in_range=True takes such targets as class 0 instead, to tell
    whether they are what made a loss NaN: a masked padding target is not. gc.Trainer probes
    a diverged step's batches with it, so that such a NaN is not taken for a learning rate
    too high."""
    check = _CLASS_TARGET_CHECK
    before = check.found, check.in_range
    check.found, check.in_range = [], in_range
    try:
        yield check.found
    finally:
        check.found, check.in_range = before


def _checked_class_targets(targets, classes, ignore_index=None):
    """targets, with the first one out of range recorded within checking_class_targets()
    (and each such taken as class 0 under its in_range=True)."""
    check = _CLASS_TARGET_CHECK
    if check.found is None or isinstance(targets, SymbolicValue):
        return targets
    held = np.asarray(targets)
    outside = (held < 0) | (held >= classes)
    if ignore_index is not None:
        outside &= held != ignore_index
    if not outside.any():
        return targets
    if not check.found:
        ignored = "" if ignore_index is None else f" or ignore_index ({ignore_index})"
        check.found.append(ClassTargetOutOfRange(
            f"class target {held[outside].flat[0]} is out of bounds: targets must be in "
            f"[0, {classes}){ignored}", (user_location(),)))
    return np.where(outside, 0, held).astype(held.dtype) if check.in_range else targets


def _nll(logp, targets, ignore_index, reduction, weight):
    classes = _shape(logp)[-1]
    targets = _checked_class_targets(targets, classes, ignore_index)
    weight = _weight_like(weight, logp)
    # the rows that are not ignored, computed once for the uses below
    kept = None if ignore_index is None else not_equal(targets, ignore_index)
    # select, not multiply by a one-hot: 0 * -inf (a masked-out class) and 0 * nan (an
    # ignored row's non-finite logits) would be nan. one_hot of an ignored (out-of-range)
    # target is all False.
    chosen = one_hot(targets, classes, "bool")
    if ignore_index is not None and 0 <= ignore_index < classes:
        chosen = logical_and(chosen, expand_dims(kept, -1))
    picked = sum(where(chosen, logp, 0.0), -1)
    if weight is not None:
        row_weight = sum(where(chosen, weight, 0.0), -1)
        picked = picked * row_weight
    # a target outside [0, classes) that is not ignore_index gives NaN, as JAX's out-of-range
    # gather fills (PyTorch raises): its all-False one-hot row added a silent 0 to the loss
    outside = logical_or(less(targets, 0), greater_equal(targets, classes))
    if reduction == "none":
        loss = where(outside, float("nan"), -picked)
        # +0.0 at an ignored row (ignore_index in range or not), as PyTorch's: its picked is
        # +0.0, so -picked was -0.0 (not 0 - picked: that would make a counted row's -0.0,
        # PyTorch's at logp 0, +0.0). This where replaces outside's logical_and with kept.
        return loss if kept is None else where(kept, loss, 0.0)
    if ignore_index is not None:
        outside = logical_and(outside, kept)
    if reduction == "sum":
        loss = -sum(picked)
    elif weight is not None:
        loss = -sum(picked) / sum(row_weight)  # NaN (0 / 0) when no target counts
    elif ignore_index is None:
        loss = -mean(picked)
    else:
        valid = cast(kept, _dtype(logp))
        loss = -sum(picked) / sum(valid)  # NaN (0 / 0) when no target counts, as in PyTorch
    # (added to the reduced loss, not selected per row: the gradient passes as it did)
    return loss + cast(where(any(outside), float("nan"), 0.0), _dtype(loss))


@precision.in_float32  # torch.autocast's float32 list
def mse_loss(input, target, reduction="mean", weight=None):
    """(input - target) ** 2 (broadcast), reduced as torch.nn.functional.mse_loss; its
    optional `weight`, of input's shape, multiplies each term, and the weighted mean divides
    by sum(weight), as torch's (and l1_loss's)."""
    _check_reduction("mse_loss", reduction)
    _no_lists("mse_loss", ("input", "target"), input, target)
    _float_operands("mse_loss", input, target)
    input, target = _autocast_promoted((input, target))
    _loss_operands("mse_loss", input, target)
    # the ops, not `-`: two numpy arrays would subtract by numpy's rules
    diff = sub(input, target)
    sq = mul(diff, diff)
    if weight is not None:
        from .losses import _weighted  # (losses builds on this module)
        return _weighted("mse_loss", sq, input, weight, reduction, True)
    if reduction == "none":
        return sq
    return sum(sq) if reduction == "sum" else mean(sq)


# Eager dropout sites are numbered in call order, as a trace numbers them in its graph
# (Graph.next_salt): graphc.nn.rng_key restarts the count, and a control-flow construct takes
# one number and numbers the sites its functions run within it (ir.graph.site_salt; an eager
# loop restarts that count every iteration, since a traced body holds one copy of each site),
# so that the same key draws the same masks as compiled. Per thread, as rng_key's blocks are.
class _EagerDropout(threading.local):
    def __init__(self):
        self._next_salt = 0  # the last eager site's number in its scope
        self.salt_scope = None  # as Graph.salt_scope
        self.iterations = []  # of the eager loops running now, outermost first

    def restart(self):
        """Number the next eager dropout site 1 again (graphc.nn.manual_seed)."""
        self._next_salt = 0


EAGER_DROPOUT = _EagerDropout()


def next_eager_salt() -> int:
    from ..graph import site_salt
    EAGER_DROPOUT._next_salt += 1
    return site_salt(EAGER_DROPOUT.salt_scope, EAGER_DROPOUT._next_salt)


def _loop_iterations(graph):
    """The iteration numbers a dropout site in `graph` mixes in, outermost loop first: the
    counters of the loop bodies it is traced in (ir.region.Region.iteration), and the eager
    loops' numbers when nothing or a region traced in eager code (graphc.vmap's) is."""
    from ..region import Region
    found = []
    while isinstance(graph, Region):
        if graph.is_loop:
            found.append(graph.iteration())
        if graph.parent is None:
            break
        graph = graph.parent
    eager = EAGER_DROPOUT.iterations if graph is None or isinstance(graph, Region) else []
    return [np.asarray(t, np.int64) for t in eager] + found[::-1]


@takes_inplace(keyword_only=True)
def dropout(x, rate, seed, training=True, salt=None):
    """Inverted dropout whose mask is a pure function of (seed, salt) and, inside loop
    bodies, the iteration numbers: the same seed replays the same masks, so a compiled step
    and its checkpoints are reproducible, while every iteration of a loop draws its own mask
    (as JAX users fold the step into the key). `seed` is an integer scalar (usually a graph
    input that changes every step). Rate 1 zeroes every value, as torch's dropout: the one
    place that says so for every dropout (the layers, attention's, the recurrent layers',
    the channel dropouts). No mask is drawn there (the mask op takes rates below 1: 1 / (1 -
    rate) is no scale), so `seed` is not read and no salt taken: the sites after it keep
    their masks."""
    if not (is_real(rate) and 0.0 <= rate <= 1.0):  # (the mask op's line said [0, 1))
        _fail(f"dropout: rate must be a number in [0, 1], got {rate!r}")
    if isinstance(x, np.ndarray):  # (a complex one: the mask op's line named an i64[] seed)
        refuse_unsupported_dtype(x, "dropout")
    if not _flag("dropout", "training", training) or rate == 0.0:
        return x
    if rate == 1.0:
        return mul(x, 0.0)
    graph, seed, salt = _random_site(x, seed, salt, "dropout")
    mask = apply("dropout_mask", seed, *_loop_iterations(graph), shape=_shape(x),
                 rate=float(rate), salt=salt, dtype=_dtype(x))
    return x * mask


def seed_problem(seed):
    """Why `seed` is not a random site's seed (an integer scalar: an int within int64, or an
    int32 / int64 0-d array or value), as the words after 'got', or None where it is one.
    A gc.random key (shape (2,)), which a JAX user would hand over, is named as one: the
    mask op's own line (`dropout_mask(i64[2]): the seed must be an integer scalar`) named
    neither the call nor its argument. (graphc.nn.rng_key's key, gc.dropout's seed.)"""
    if is_int(seed):
        # (a Python int past int64 failed at the mask as numpy's OverflowError; an np.uint64
        # past it wrapped silently onto a negative seed's masks)
        if -2**63 <= int(seed) < 2**63:
            return None
        return f"{int(seed)}, which does not fit in int64"
    if not (hasattr(seed, "shape") and hasattr(seed, "dtype")):
        return repr(seed)[:80]
    shape, dtype = tuple(_shape(seed)), _dtype(seed)
    if shape == () and dtype in INT_DTYPES:
        return None
    got = f"{dtype} array of shape {shape}"
    if shape == () and np.issubdtype(dtype, np.integer):
        return got + "; cast it to int64"
    if shape == (2,):
        return got + ("; a gc.random key is not a seed: pass an int seed (a step, or "
                      "gc.random.randint of a key)")
    return got


def check_seed(seed, who):
    """A random site's seed= (gc.dropout's, rrelu's, the channel and alpha dropouts'), or
    one line naming `who`, the function called, where seed_problem finds it none."""
    got = seed_problem(seed)
    if got:
        _fail(f"{who}: seed must be an integer scalar (an int, or an int64 0-d array or "
              f"input), got {got}")


def _random_site(x, seed, salt, who):
    """(graph, seed, salt) of a keyed random site drawing for x (dropout's mask, rrelu's
    slopes) in function `who`: the graph being built (x's where none is: x may be a value a
    loop body reads from outside it), the seed as an int64 scalar, and the site's salt:
    `salt` if given, else the next number of the graph or of the eager run."""
    check_seed(seed, who)
    from ..graph import current_graph
    graph = current_graph()
    if graph is None:
        graph = getattr(x, "graph", None)
    if salt is None:
        salt = graph.next_salt() if graph is not None else next_eager_salt()
    if is_int(seed):
        seed = np.asarray(seed, dtype=np.int64)
    return graph, seed, int(salt)


def keyed_uniform(x, seed, salt=None, who="keyed_uniform"):
    """Draws uniform in [0, 1) of x's shape and dtype, a pure function of (seed, salt) and
    the enclosing loops' iteration numbers, as dropout's mask is (the same seed replays
    them, eagerly as compiled): a key of the seed with the salt's two 32-bit words (a salt
    is up to 56 bits) and the iteration numbers folded in, then random_uniform's draw.
    A constant for autodiff, as every draw. who: the function drawing, for an error's line."""
    graph, seed, salt = _random_site(x, seed, salt, who)
    key = apply("random_key", seed)
    words = [np.asarray(salt >> 32, np.int64), np.asarray(salt & 0xFFFFFFFF, np.int64)]
    for word in words + _loop_iterations(graph):
        key = apply("random_fold_in", key, word)
    return apply("random_uniform", key, shape=tuple(_shape(x)), dtype=_dtype(x))


def tril_mask(rows, cols=None, k=0):
    """Boolean lower-triangular mask: True where column <= row + k (the causal mask)."""
    rows, cols = _size(rows, "tril_mask: a size"), \
        _size(rows if cols is None else cols, "tril_mask: a size")
    _check_sizes("tril_mask", (rows, cols))
    return apply("tri", rows=rows, cols=cols, k=_whole(k, "the diagonal offset k"))


def _last_two(x, name):
    if _ndim(x) < 2:
        _fail(f"{name} of a {_ndim(x)}-d value: it needs at least two axes (a matrix)")
    return _shape(x)[-2:]


def tril(x, k=0):
    """x with the elements above the k-th diagonal of its last two axes zeroed, as numpy."""
    rows, cols = _last_two(x, "tril")
    return where(tril_mask(rows, cols, k), x, zeros((), _dtype(x)))


def triu(x, k=0):
    """x with the elements below the k-th diagonal of its last two axes zeroed, as numpy."""
    rows, cols = _last_two(x, "triu")
    return where(tril_mask(rows, cols, k - 1), zeros((), _dtype(x)), x)


def eye(n, m=None, k=0, dtype="float32"):
    """Ones on the k-th diagonal of an n x m matrix (numpy's eye)."""
    n = _size(n, "eye: a size")
    m = n if m is None else _size(m, "eye: a size")
    if has_negative_size((n, m)):
        # refused here, as numpy's eye refuses it, eagerly and traced alike (in a branch or
        # loop body too, unlike _check_sizes): the tri op's own refusal (where it runs, or
        # fold) named tri(), which the user never called
        raise negative_size_error("eye", (user_location(),))
    _check_sizes("eye", (n, m))  # (a symbolic size: checked per binding, naming eye)
    return cast(logical_and(tril_mask(n, m, k), logical_not(tril_mask(n, m, k - 1))), dtype)


def masked_fill(x, mask, value):
    """x where mask is False, `value` where it is True (PyTorch's masked_fill)."""
    if _dtype(mask) != np.bool_:  # torch's rule; where would take it as a value operand
        _fail(f"masked_fill: mask must be a bool array (True where value goes), got "
              f"{_dtype(mask)}; compare it first (mask != 0)")
    return where(mask, value, x)


# ---- creators -------------------------------------------------------------------------------
@functools.cache
def _operator_mixin():
    """The class of graph nodes and eager tensors, imported once, at the first call:
    ir/ops/operators.py imports this module."""
    from .operators import OperatorMixin
    return OperatorMixin


def _check_sizes(name, shape):
    """The sizes of the result of `name` (a creator: zeros, full, tril_mask, broadcast_to's
    shape) refused where one is negative, in numpy's words naming `name` and the user's
    line, eagerly and in a trace alike: the op's own refusal, where it runs or folds, named
    full() or tri() ("full() failed" for ones((-3,))), and in a trace the f32[2,-1] value was
    not refused at all until an op on it failed ("add: shapes cannot be broadcast").
    Where the graph being built is one a call may not run (a cond's branch, a loop's body:
    Graph.may_not_run), nothing is refused here, as eagerly such a body never runs (its op
    refuses it where it runs). A symbolic size some binding makes negative (`n-5`) is
    recorded in the graph's size_checks, so that ir.specialize's refusal for n = 3 names
    `name`, not the op it traced to (tri for eye(n - 5))."""
    graph = innermost_interpreter()
    # graphc's own code building a node for another (a pass's rewrite, vmap's batching of a
    # cond's branches into the graph around it) names that node's line, not the pass's plan
    # line; it is refused all the same where that graph runs (returning there, vmap of a
    # cond computed on a branch's negative size: sum(broadcast_to(v, (-2,))) was -2 * v)
    override = getattr(graph, "loc_override", None)
    locs = override if override is not None else (user_location(),)
    while getattr(graph, "parent", None) is not None and not graph.may_not_run:
        graph = graph.parent  # (a vmap's graph runs where the graph around it does)
    if getattr(graph, "may_not_run", False):
        return
    if has_negative_size(shape):
        raise negative_size_error(name, locs)
    if not hasattr(graph, "size_checks"):  # (eagerly every size is concrete)
        return
    recorded = {d for _, _, d, _ in graph.size_checks}
    graph.size_checks += tuple((name, axis, d, locs)
                               for axis, d in enumerate(shape)
                               if isinstance(d, Dim) and d not in recorded and may_be_negative(d))


def _shape_argument(shape, name, size=_size) -> tuple:
    """A shape argument of the function `name` as a tuple of dims. One size: a Python or
    numpy integer, or a 0-d integer array (numpy's, torch's, a tensor), as numpy's and
    torch's ones(np.int64(2)) and np.broadcast_to(x, 2) (each was iterated: a raw TypeError,
    a traced one "len() of a 0-d symbolic value"); a float or bool one is as_dim's one line,
    a traced one its TracedNumberError naming the argument, as in a tuple. Each size is read
    by `size`: _size's rule, where a str is a symbolic size only in a trace (gc.spec's is
    as_dim, where a name always is one). Each refusal names `name` (zeros(('3', 2)) said 'a
    size must be an int, got '3'', naming no function)."""
    what = f"{name}: a size"
    if isinstance(shape, (tuple, list)):
        return tuple(size(d, what) for d in shape)
    if isinstance(shape, str):  # one size (iterated, "12" was the shape (1, 2))
        return (size(shape, what),)
    if isinstance(shape, (dict, set, frozenset)):  # (iterated: a dict's keys, a set's order)
        _fail(f"{name}: shape must be an int or a sequence of ints, got {a_type(shape)}: "
              f"{shape!r}"[:200])
    if isinstance(shape, (numbers.Number, np.generic, Dim)) or \
            getattr(shape, "shape", None) == ():
        return (size(shape, what),)
    try:
        sizes = iter(shape)
    except TypeError:  # None (numpy's and torch's refusal too) was iter()'s raw TypeError
        _fail(f"{name}: shape must be an int or a sequence of ints, got {shape!r}"
              + ("; a 0-d one is ()" if shape is None else ""))
    return tuple(size(d, what) for d in sizes)  # another sequence: a range, a 1-d array


def full(shape, value, dtype=None):
    """numpy's and jnp.full; a number (a Python or numpy scalar) fills float32 unless `dtype`
    says otherwise. An array fill (a numpy array, a traced or eager tensor) keeps its dtype
    unless `dtype` is given, as numpy's and JAX's, and is broadcast to `shape` (a traced
    one so that its gradient flows)."""
    shape = _shape_argument(shape, "full")
    _check_sizes("full", shape)
    # a graphc array (traced or eager) fills as an array; another library's (torch's, JAX's)
    # as a number: a 0-d one by its value, any other refused below as not a number
    if isinstance(value, _operator_mixin()):
        if dtype is None and _is_weak(value):
            dtype = "float32"  # a Python-number argument, traced: it fills as the number would
        # (eager: a copy, not broadcast_to's read-only view, so the result can be written)
        return _unchanged(broadcast_to(value if dtype is None else cast(value, dtype), shape))
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "c":  # (astype to a real dtype would drop the imaginary part)
            _fail(f"full: fill value must be real numbers, got {with_article(value.dtype)} array")
        dtype = value.dtype if dtype is None else dtype
        if value.ndim:  # a row that broadcasts, as numpy's full((2, 3), [1., 2., 3.])
            return _unchanged(broadcast_to(value.astype(as_dtype(dtype), copy=False), shape))
        value = value[()]  # (its dtype kept: the number fills it below)
    dtype = as_dtype("float32" if dtype is None else dtype)
    if isinstance(value, Dim):  # a symbolic size as a value: filled in per call
        if dtype.kind == "b":  # its truth, as a number's below: the size's int64 fill, cast
            # (the type rule takes a bool fill as true or false; a size bound to 5 is neither)
            return cast(apply("full", shape=shape, value=value, dtype=np.dtype("int64")), dtype)
        return apply("full", shape=shape, value=value, dtype=dtype)
    if not _fill_number(value):
        # another library's 0-d tensor (torch's, JAX's) fills by its value, a number
        item = value.item() if getattr(value, "shape", None) == () and \
            hasattr(value, "item") and not isinstance(value, np.generic) else None
        if not _fill_number(item):
            _fail(f"full: fill value {value!r} is not a number {dtype} holds")
        value = item
    try:  # (a bool fill is the number's truth, as numpy's and torch's: 0.5 fills True)
        number = float(value) if is_float(dtype) else bool(value) if dtype.kind == "b" \
            else int(value)
    except (ValueError, OverflowError):  # NaN or inf for an int dtype
        _fail(f"full: fill value {value!r} is not a number {dtype} holds")
    check_fits_dtype("full: fill value", number, dtype)
    return apply("full", shape=shape, value=number, dtype=dtype)


def _fill_number(value) -> bool:
    """Whether full takes `value` as its fill: is_real's numbers and a bool, as numpy's and
    torch's full, and a numpy scalar of ml_dtypes' (bfloat16). Not whatever float() and
    int() take: a str, a Fraction, a Decimal, a numpy complex (its real part) or a numpy
    time (its count)."""
    return is_real(value) or isinstance(value, (bool, np.bool_)) or \
        isinstance(value, np.generic) and is_real_dtype(value.dtype)


def check_fits_dtype(what, value, dtype):
    """One GraphcError line where an integer `dtype` cannot hold the number `value` (NaN,
    infinite or out of range; a float in range is truncated, as numpy's), which numpy
    would raise raw on or wrap silently."""
    if dtype.kind in "iu" and not fits_int(value, dtype):
        _fail(f"{what} {value!r} does not fit in {dtype}")


class _DefaultDtype(str):
    """zeros'/ones' default dtype, 'float32' (as their signature shows it), told apart by
    identity from a dtype given by keyword."""


_NO_DTYPE = _DefaultDtype("float32")


def zeros(shape, *dtype_or_sizes, dtype=_NO_DTYPE):
    dtype = _shape_and_dtype("zeros", shape, dtype_or_sizes, dtype)
    shape = _shape_argument(shape, "zeros")
    _check_sizes("zeros", shape)
    return full(shape, 0, dtype)  # (its refusals naming zeros)


def ones(shape, *dtype_or_sizes, dtype=_NO_DTYPE):
    dtype = _shape_and_dtype("ones", shape, dtype_or_sizes, dtype)
    shape = _shape_argument(shape, "ones")
    _check_sizes("ones", shape)
    return full(shape, 1, dtype)


def _shape_and_dtype(name, shape, args, dtype):
    """zeros'/ones' dtype: numpy's zeros(shape, dtype) or zeros(shape, dtype=dtype). torch's
    spread sizes are one line saying where the shape goes (the sizes' tuple where all are
    ints): zeros(2, 3) read the 3 as a dtype ('unknown dtype 3'), zeros(2, 3, 4) and
    zeros(2, 3, dtype=...) were Python's raw TypeError."""
    keyword = dtype is not _NO_DTYPE
    if not keyword:
        dtype, args = (args[0], args[1:]) if args else ("float32", ())
    if not args and not (is_int(dtype) and not isinstance(dtype, (bool, np.bool_))):
        return dtype
    sizes = (shape, *args) if keyword and args else (shape, dtype, *args)
    if builtins.all(is_int(k) and not isinstance(k, (bool, np.bool_)) for k in sizes):
        given = f", dtype={dtype!r}" if keyword and args else ""
        _fail(f"{name}: the shape is one argument, {name}({tuple(int(k) for k in sizes)}"
              f"{given}), as numpy's (torch's {name}(*size) spreads it)"
              + ("" if given else "; the second is the dtype"))
    if keyword and args:
        _fail(f"{name} takes (shape, dtype), as numpy's; got {len(sizes)} positional "
              f"arguments and the keyword dtype {dtype!r}")
    _fail(f"{name} takes (shape, dtype), as numpy's; got {len(sizes)} arguments, the "
          f"dtype {dtype!r}" if args else f"{name}: dtype {dtype!r} is not a dtype; the "
          "shape is the first argument, the dtype the second (a name such as 'float32')")


def zeros_like(x):
    return full(_shape(x), 0, _dtype(x))


def ones_like(x):
    return full(_shape(x), 1, _dtype(x))


def arange(start, stop=None, step=1, dtype=None):
    """numpy's arange. With integer bounds and step the default dtype is int64; a float
    among them gives float32 values start + i * step, ceil((stop - start) / step) of them
    (numpy's length; JAX's default float dtype)."""
    if stop is None:
        start, stop = 0, start
    # (a complex one is refused there, by is_real: as_dim's int() takes a numpy one)
    if builtins.any(isinstance(v, (float, np.floating, complex, np.complexfloating))
                    for v in (start, stop, step)):
        return _float_arange(start, stop, step, "float32" if dtype is None else dtype)
    return apply("arange", start=_size(start, "arange: a bound"),
                 stop=_size(stop, "arange: a bound"),
                 step=_whole(step, "arange: step"),
                 dtype=as_dtype("int64" if dtype is None else dtype))


def _float_arange(start, stop, step, dtype):
    for v in (start, stop, step):
        if not is_real(v):
            _fail(f"arange: a bound or step must be a number, got {v!r}")
    if step == 0 or not math.isfinite(step) or not math.isfinite(start) \
            or not math.isfinite(stop):
        _fail(f"arange({start}, {stop}, {step}): the step must be nonzero, all three finite")
    count = builtins.max(0, math.ceil((stop - start) / step))
    # in float64, then cast: each value start + i * step, as numpy computes it
    steps = apply("arange", start=0, stop=count, step=1, dtype=np.dtype("float64"))
    return cast(add(mul(steps, float(step)), float(start)), as_dtype(dtype))
