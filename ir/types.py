"""Static tensor types: a shape and a dtype, with the short names the IR text uses.

A dimension is an int or a symbolic `Dim` (shape polymorphism, as JAX's `jax.export`
symbolic shapes): `f32[batch,128]` is one type for every batch size, and one compiled plan
serves them all (runtime/polymorphic.py binds the symbols from the inputs at call time).
"""
from __future__ import annotations

import math
import operator
import re
import sys
from dataclasses import dataclass

import ml_dtypes

import numpy as np

from .errors import GraphcError, clipped, user_location

# bfloat16 comes from ml_dtypes (as in JAX); numpy registers it as a dtype of kind "V", so
# code asks `is_float`, never `dtype.kind == "f"`
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
# numpy's float scalars, bfloat16's too: ml_dtypes' scalar type is an np.generic, not an
# np.floating; with Python's float, the float scalars that are weakly typed operands
NUMPY_FLOAT_SCALARS = (np.floating, ml_dtypes.bfloat16)
FLOAT_SCALARS = (float,) + NUMPY_FLOAT_SCALARS

DTYPES = {
    "f32": np.dtype("float32"),
    "f64": np.dtype("float64"),
    "f16": np.dtype("float16"),
    "bf16": BFLOAT16,
    "i32": np.dtype("int32"),
    "i64": np.dtype("int64"),
    "bool": np.dtype("bool"),
}
SHORT_NAMES = {dt: name for name, dt in DTYPES.items()}
FLOAT_DTYPES = (DTYPES["f32"], DTYPES["f64"], DTYPES["f16"], BFLOAT16)
# storage-only floats: ops compute on them in float32 and round their results once
# (ir/ops/registry.py, "Half precision" in the README)
HALF_DTYPES = (DTYPES["f16"], BFLOAT16)
DTYPE_PATTERN = r"bf16|f16|f32|f64|i32|i64|bool"  # the short names, for the parsers
INT_DTYPES = (DTYPES["i32"], DTYPES["i64"])
# an argument of compile or vmap of a small integer dtype the IR lacks is taken as the
# narrowest IR dtype that holds every value (as numpy would promote it): a batch of uint8
# images feeds a compiled step; JAX's raw keys (jax.random.PRNGKey) are uint32[2]. Computed
# so, it does not wrap around where numpy's and JAX's uint8 arithmetic does. uint64 (no IR
# dtype holds it) stays refused (as_dtype names the cast to make).
WIDENED_INPUTS = {**{np.dtype(t): DTYPES["i32"] for t in ("int8", "uint8", "int16", "uint16")},
                  np.dtype("uint32"): DTYPES["i64"]}


class UnsupportedDtype(GraphcError, TypeError):
    """A dtype the IR cannot hold: one line at the user's call (a TypeError too, for callers
    that try a value and fall back)."""


def as_dtype(dtype, cast_hint=True) -> np.dtype:
    """Accepts 'float32', 'f32', np.float32, a numpy dtype or torch's (torch.float64, read by
    its name: ir imports no torch); rejects what the IR cannot hold (cast_hint: see
    unsupported_dtype)."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        dt = _torch_dtype_as_numpy(dtype)
        if dt is None:
            raise UnsupportedDtype(f"unknown dtype {dtype!r}", (user_location(),)) from exc
    reason = unsupported_dtype(dt, cast_hint)
    if reason:
        raise UnsupportedDtype(reason, (user_location(),))
    return dt


def unsupported_dtype(dtype, cast_hint=True) -> str | None:
    """Why the IR cannot hold numpy dtype `dtype` ("dtype complex64 is not supported
    (supported: ...)", with the cast to make where one keeps the values, unless cast_hint is
    False: a dtype= setting names no array to cast), None where it can:
    a check comparing an operand's dtype with another's asks it first, or its message
    named the other dtype (a complex input to a float32 Linear was told to cast to float32)."""
    dt = np.dtype(dtype)
    if dt in SHORT_NAMES:
        return None
    supported = ", ".join(str(d) for d in SHORT_NAMES)
    hint = "; cast it first (x.astype(np.int32))" if dt.kind in "uib" else \
        "; cast it first (x.astype(np.float32))" if dt.kind == "f" else ""
    hint = hint if cast_hint else ""
    return f"dtype {dt} is not supported (supported: {supported}){hint}"


def _torch_dtype_as_numpy(dtype):
    """torch.float64 -> float64 (numpy has each of torch's names that the IR holds), else None:
    users porting torch code write `model.to(torch.float64)`."""
    name = str(dtype)
    if type(dtype).__module__ != "torch" or not name.startswith("torch."):
        return None
    try:
        return np.dtype(name[len("torch."):])
    except TypeError:
        return None


def is_float(dtype) -> bool:
    return np.dtype(dtype) in FLOAT_DTYPES


def is_half(dtype) -> bool:
    """float16 or bfloat16: a storage dtype that ops compute on in float32."""
    return np.dtype(dtype) in HALF_DTYPES


def result_dtype(*dtypes) -> np.dtype:
    """np.result_type of dtypes, where float16 meeting bfloat16 (which numpy and ml_dtypes
    cannot promote) is float32, exact for both, as in torch and JAX."""
    dtypes = [np.dtype(d) for d in dtypes]
    if all(half in dtypes for half in HALF_DTYPES):
        dtypes = [DTYPES["f32"] if d in HALF_DTYPES else d for d in dtypes]
    return np.result_type(*dtypes)


def finfo(dtype):
    """np.finfo that also knows bfloat16 (numpy's refuses it)."""
    return ml_dtypes.finfo(np.dtype(dtype))


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))
        object.__setattr__(self, "dtype", as_dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{SHORT_NAMES[self.dtype]}[{','.join(str(d) for d in self.shape)}]"

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, Dim) for d in self.shape)


def broadcast_shapes(*shapes) -> tuple | None:
    """numpy's broadcasting rule; None when the shapes are incompatible."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        size = 1
        for s in shapes:
            k = axis - (ndim - len(s))
            if k < 0:
                continue
            d = s[k]
            if d == 1:
                continue
            if size != 1 and d != size:
                return None
            size = d
        out.append(size)
    return tuple(out)


@dataclass(frozen=True)
class TupleType:
    """The result of a control-flow node (ir/ops/control_flow.py): several tensors, read one
    at a time by `tuple_get` nodes, as a JAX equation has several outvars. The IR stays
    single-output: only region ops produce one, and only `tuple_get` reads one.

    `size` counts bytes and `dtype` is uint8, so code that sizes a node's storage as
    `size * dtype.itemsize` (memory statistics) counts a tuple right."""
    elements: tuple

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(self.elements))

    shape = ()
    ndim = 0
    dtype = np.dtype("uint8")

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.elements)

    @property
    def symbolic(self) -> bool:
        return any(t.symbolic for t in self.elements)

    @property
    def size(self) -> int:
        return self.nbytes

    def __str__(self) -> str:
        return "(" + ", ".join(str(t) for t in self.elements) + ")"
# ---- symbolic dimensions ------------------------------------------------------------------
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# names the IR text reads as something else (dtypes and booleans in attributes)
RESERVED_SYMBOLS = frozenset(DTYPES) | {"true", "false", "inf", "nan"}


class InconclusiveDim(GraphcError):
    """A comparison or division of symbolic dimensions whose answer depends on the symbols'
    values (raised where the user's code or an op's rule asked it)."""

    def __init__(self, message):
        super().__init__(message, (user_location(),))


# What an integer or number check must leave out: a bool (int() would take it as 0 or 1),
# and np.timedelta64, an np.signedinteger (so a numbers.Integral) to numpy's type tree but a
# time: numpy refuses it as an index or a size and gives it units in arithmetic. Every
# user-facing integer or number check asks is_int or is_real, so this is said once.
NOT_NUMBERS = (bool, np.bool_, np.timedelta64)
# The numbers a number setting takes, as torch's: Python's and numpy's ints and floats.
# Not numbers.Real, which takes a Fraction (torch refuses one as a float or a Scalar, as
# numbers.Real does a Decimal): one rule at every setting, a size too (int() truncated
# Fraction(5, 2) to 2)
REAL_TYPES = (int, float, np.integer, np.floating)


def is_int(x) -> bool:
    """A Python or numpy integer scalar, not a bool nor an np.timedelta64 (NOT_NUMBERS)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, NOT_NUMBERS)


def is_real(x) -> bool:
    """A Python or numpy int or float (REAL_TYPES), not a bool nor an np.timedelta64; not a
    Fraction or a Decimal either, as torch's settings refuse them."""
    return isinstance(x, REAL_TYPES) and not isinstance(x, NOT_NUMBERS)


# ml_dtypes' real-number dtypes: bfloat16, the float8/float6/float4 formats and the small
# ints (int4, uint2 ...). numpy makes most of them kind 'V' (float8_e5m2 alone 'f'), so a
# kind test took float8_e5m2 and refused float8_e4m3fn; each casts exactly to float32.
# Its complex types (complex32, kind 'W') are no real numbers
ML_REAL_DTYPES = frozenset(
    np.dtype(kind) for name, kind in vars(ml_dtypes).items()
    if name.startswith(("bfloat", "float", "int", "uint")) and isinstance(kind, type)
    and issubclass(kind, np.generic))


def is_real_dtype(dtype) -> bool:
    """A dtype of real numbers: bool, an integer of any width, a float, ml_dtypes' floats
    and ints (ML_REAL_DTYPES: bfloat16, float8_e4m3fn, int4 ...). The rule for a gradient
    seed of another dtype than its output's, gradients()' and Tensor.backward()'s alike:
    cast, as torch casts grad_outputs, even a dtype graphc has no values of (int8, uint16,
    a float8 as torch's float8_e4m3fn); a complex one is refused, as torch's."""
    dtype = np.dtype(dtype)
    return dtype.kind in "biuf" or dtype in ML_REAL_DTYPES


def is_complex(x) -> bool:
    """A complex number or array (a Python complex, a numpy complex scalar or array), which
    graphc has no dtype for. A number check that calls float() or numpy must ask this first:
    float() refuses a Python complex but takes a numpy one, as numpy's casts take either,
    dropping the imaginary part with only a ComplexWarning."""
    return isinstance(x, (complex, np.complexfloating)) or \
        (isinstance(x, np.ndarray) and x.dtype.kind == "c")


def _operand(x):
    """An operand of Dim arithmetic: a Dim or an int (numpy integers included)."""
    if isinstance(x, Dim):
        return x
    if is_int(x):
        return int(x)
    return NotImplemented


class Dim:
    """A symbolic dimension: a polynomial with integer coefficients over named symbols, each
    standing for an integer >= 1 fixed per call (`batch`, `2*batch`, `batch*seq`, `seq+1`).

    Arithmetic with ints and other Dims normalises (a Dim that is a constant is returned as
    an int), so two dimensions are equal exactly when their polynomials are: `b*t == t*b`.
    Floor division is exact division only (reshape's -1); comparisons that depend on the
    symbols' values raise InconclusiveDim, as JAX's. int() raises GraphcError: a size used
    as a Python number while tracing (`range(T)`) cannot be known yet."""

    __slots__ = ("terms",)

    def __init__(self, terms):
        # terms: ((monomial: sorted tuple of symbol names, coefficient), ...), sorted
        self.terms = terms

    @staticmethod
    def symbol(name: str) -> Dim:
        if not isinstance(name, str) or not _SYMBOL.fullmatch(name) or \
                name in RESERVED_SYMBOLS:
            raise ValueError(f"{name!r} is not a valid dimension name (a Python identifier, "
                             f"not one of {sorted(RESERVED_SYMBOLS)})")
        return Dim(((((name,), 1),)))

    @staticmethod
    def _make(poly: dict):
        terms = tuple(sorted((m, c) for m, c in poly.items() if c))
        if not terms:
            return 0
        if len(terms) == 1 and terms[0][0] == ():
            return terms[0][1]
        return Dim(terms)

    @staticmethod
    def _poly(x) -> dict:
        if isinstance(x, Dim):
            return dict(x.terms)
        return {(): int(x)} if int(x) else {}

    @property
    def symbols(self) -> set:
        return {s for m, _ in self.terms for s in m}

    def evaluate(self, binding: dict) -> int:
        """The value for these symbol values ({name: int}); a KeyError names a missing one."""
        total = 0
        for monomial, coeff in self.terms:
            for name in monomial:
                coeff *= binding[name]
            total += coeff
        return total

    # arithmetic (with ints and Dims; anything else is NotImplemented)
    def __add__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        poly = self._poly(self)
        for m, c in self._poly(other).items():
            poly[m] = poly.get(m, 0) + c
        return self._make(poly)

    __radd__ = __add__

    def __neg__(self):
        return self._make({m: -c for m, c in self.terms})

    def __sub__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        other = _operand(other)
        if not isinstance(other, int):
            return NotImplemented
        return (-self) + other

    def __mul__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        poly = {}
        for m1, c1 in self._poly(self).items():
            for m2, c2 in self._poly(other).items():
                m = tuple(sorted(m1 + m2))
                poly[m] = poly.get(m, 0) + c1 * c2
        return self._make(poly)

    __rmul__ = __mul__

    def divide(self, other):
        """self / other when it divides exactly for every value of the symbols, else None."""
        if isinstance(other, int):
            if other == 0 or any(c % other for _, c in self.terms):
                return None
            return self._make({m: c // other for m, c in self.terms})
        if not isinstance(other, Dim) or len(other.terms) != 1:
            return None
        (divisor, k), = other.terms  # a monomial: each term must contain it
        poly = {}
        for m, c in self.terms:
            rest = list(m)
            for name in divisor:
                if name not in rest:
                    return None
                rest.remove(name)
            if c % k:
                return None
            poly[tuple(rest)] = c // k
        return self._make(poly)

    def __floordiv__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        q = self.divide(other)
        if q is None:
            raise InconclusiveDim(f"{self} is not a multiple of {other} for every value of "
                                  f"{', '.join(sorted(self.symbols))}")
        return q

    def __rfloordiv__(self, other):
        other = _operand(other)
        if not isinstance(other, int):
            return NotImplemented
        if other == 0:
            return 0
        raise InconclusiveDim(f"{other} // {self} depends on the value of {self}")

    def __mod__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        if self.divide(other) is not None:
            return 0
        raise InconclusiveDim(f"{self} % {other} depends on the value of "
                              f"{', '.join(sorted(self.symbols))}")

    # comparisons: == is structural (a symbol is never equal to a constant); order is
    # decided where it holds for every value >= 1 of the symbols
    def __eq__(self, other):
        if isinstance(other, Dim):
            return self.terms == other.terms
        if isinstance(other, (int, float, np.integer, np.floating)) and \
                not isinstance(other, bool):
            return False
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.terms)

    def _at_least_zero(self) -> bool:
        """Whether self >= 0 for every value >= 1 of its symbols (an InconclusiveDim when
        that depends on the values)."""
        constant = sum(c for m, c in self.terms if not m)
        rest = [c for m, c in self.terms if m]
        if all(c >= 0 for c in rest):
            if constant + sum(rest) >= 0:  # its least value: every symbol 1
                return True
        elif all(c <= 0 for c in rest) and constant + sum(rest) < 0:
            return False
        raise InconclusiveDim(f"whether {self} >= 0 depends on the value of "
                              f"{', '.join(sorted(self.symbols))}")

    def __ge__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        d = self - other
        return d >= 0 if isinstance(d, int) else d._at_least_zero()

    def __le__(self, other):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented
        d = other - self
        return d >= 0 if isinstance(d, int) else d._at_least_zero()

    def __gt__(self, other):
        return not self.__le__(other)

    def __lt__(self, other):
        return not self.__ge__(other)

    def __bool__(self):
        return True  # every symbol is >= 1, so no dimension made of them is 0

    def __int__(self):
        raise GraphcError(f"the symbolic dimension {self} has no value while tracing (it is "
                          "bound per call); use it as a shape, or declare the dimension "
                          "concrete", (user_location(),))

    __index__ = __int__

    def __str__(self):
        parts = []
        for monomial, coeff in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            body = "*".join(monomial)
            if not monomial:
                text = str(abs(coeff))
            elif abs(coeff) == 1:
                text = body
            else:
                text = f"{abs(coeff)}*{body}"
            if parts:
                parts.append(("-" if coeff < 0 else "+") + text)
            else:
                parts.append(("-" if coeff < 0 else "") + text)
        return "".join(parts)

    __repr__ = __str__


def floor_div(d, k: int):
    """floor(d / k) for an int k >= 1 and a dimension d, the same for every value of d's
    symbols: where k divides each of d's symbolic coefficients (floor((2*n+1) / 2) is n,
    floor((2*n-1) / 2) is n-1), else an InconclusiveDim (floor(n / 2)). Dim's // divides
    exactly only (reshape's -1); an output size (a strided window count, a strided slice's
    length) is a floor."""
    if not isinstance(d, Dim):
        return d // k
    constant = sum(c for m, c in d.terms if not m)
    whole = (d - constant).divide(k)
    if whole is None:
        raise InconclusiveDim(f"floor(({d}) / {k}) is no polynomial: it depends on the value "
                              f"of {', '.join(sorted(d.symbols))}")
    return whole + constant // k


def range_length(start, stop, step: int):
    """len(range(start, stop, step)) for step >= 1 and stop >= start, also of symbolic
    bounds: ceil((stop - start) / step), the same polynomial for every value (1:2*n:2 has n),
    else floor_div's InconclusiveDim. A slice's length (api.slice_length, the slice rule)."""
    if isinstance(start, Dim) or isinstance(stop, Dim):
        return floor_div(stop - start + step - 1, step)
    return len(range(start, stop, step))


def float_of_text(text: str) -> float:
    """float(text) of a number as IR text or JSON writes it, refusing (ValueError) a finite
    number past float64's range, which float() reads as inf (1e309); inf written as such
    stays inf (the printer writes it so)."""
    number = float(text)
    if math.isinf(number) and "inf" not in text.lower():  # (clipped: 1e followed by 5,000
        # digits was echoed whole)
        raise ValueError(f"{clipped(text)} does not fit in float64 (it would read as "
                         f"{number})")
    return number


def int_of_text(text: str) -> int:
    """int(text) of an int as IR text or JSON writes it, refusing (ValueError) one past the
    digits Python reads (4,300) in words that name no call of the user's (int's advised
    sys.set_int_max_str_digits); leading zeros are no digits of it (int() counted them)."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    digits = digits.lstrip("0") or "0"
    try:
        return int(sign + digits)
    except ValueError:
        raise ValueError(f"an int of {len(digits)} digits, more than the "
                         f"{sys.get_int_max_str_digits()} Python reads") from None


def holds_when_bound(comparison) -> bool:
    """comparison() (a test of dimensions), or True where its answer depends on the symbols'
    values: the rule that asks is run again on the sizes of each call (ir.specialize), which
    then checks it. For bounds such as "an update of `length` rows fits a cache of 64"."""
    try:
        return bool(comparison())
    except InconclusiveDim:
        return True


def as_dim(d, what="a size"):
    """A dimension as the IR holds it: an int (numpy integers included) or a Dim. A str is
    read as IR text (`n`, `2*n`, `3`); anything else that is no integer is one GraphcError
    line, "<what> must be an int, got ..."."""
    if isinstance(d, Dim):
        return d
    if isinstance(d, str):
        return parse_dim(d)
    if is_int(d):
        return int(d)
    # numpy's and torch's rule: an integer is what has __index__ (a 0-d integer array or
    # torch tensor, a sympy.Integer), not what int() takes (int() truncated a 0-d float
    # tensor's 2.5 to 2 and took Fraction(2, 1)). A bool of any library is left out; a
    # traced value's __index__ raises its own message (only known when the graph runs)
    if not isinstance(d, NOT_NUMBERS) and "bool" not in str(getattr(d, "dtype", "")):
        try:
            return operator.index(d)
        except TypeError:
            pass
        # graphc's eager tensor (runtime: not importable here) has no __index__: its value
        if getattr(d, "ndim", None) == 0 and hasattr(d, "item") \
                and not isinstance(d, np.generic) and is_int(d.item()):
            return int(d.item())
    raise GraphcError(f"{what} must be an int, got {d!r}", (user_location(),))


# numpy's words for a negative size (np.zeros((-3, 4)), np.eye(-2)), which eager mode's run_op
# passes on for full: every refusal of a concrete negative size says them, so that it is the
# same line eagerly, traced (eval_shape) and compiled
NEGATIVE_SIZE = "negative dimensions are not allowed"


def has_negative_size(shape) -> bool:
    """Whether a concrete size of `shape` is negative (a symbolic one is checked per call,
    when its symbols are bound: ir.specialize)."""
    return any(not isinstance(d, Dim) and d < 0 for d in shape)


def may_be_negative(d) -> bool:
    """Whether some binding of its symbols makes the size `d` negative (`n-5`, `1-b`; not
    `batch-1`, symbols being at least 1): a size ir.specialize checks at each binding."""
    try:
        return not d >= 0
    except InconclusiveDim:
        return True


def negative_size_error(op: str, locs) -> GraphcError:
    """The one line refusing `op`'s result (full, tri, eye: made from no operands) of a
    negative size, eager run_op's for it: `full() failed: negative dimensions are not
    allowed`."""
    return GraphcError(f"{op}() failed: {NEGATIVE_SIZE}", locs)


def is_symbolic_shape(shape) -> bool:
    return any(isinstance(d, Dim) for d in shape)


def evaluate_dim(d, binding: dict) -> int:
    return d.evaluate(binding) if isinstance(d, Dim) else d


def substitute(value, binding: dict):
    """value (an attribute: a Dim, or tuples, lists and dicts holding Dims) with every Dim
    replaced by its value under `binding`; anything else is returned as it is."""
    if isinstance(value, Dim):
        return value.evaluate(binding)
    if isinstance(value, tuple):
        return tuple(substitute(v, binding) for v in value)
    if isinstance(value, list):
        return [substitute(v, binding) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, binding) for k, v in value.items()}
    return value


def holds_dim(value) -> bool:
    if isinstance(value, Dim):
        return True
    if isinstance(value, (tuple, list)):
        return any(holds_dim(v) for v in value)
    if isinstance(value, dict):
        return any(holds_dim(v) for v in value.values())
    return False


_DIM_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")


# the largest dimension (and factor of one) the IR holds: numpy's shapes are int64 (intp);
# a larger one parsed and failed later, in numpy, naming no line or node
MAX_DIM = 2 ** 63 - 1


# the most digits a number in a dimension may have: twice int64's, room for one that a
# difference brings back (`9223372036854775808-1`); one longer cannot be meant
_MAX_DIM_DIGITS = 2 * len(str(2**63 - 1))


def parse_dim(text: str):
    """A dimension from its printed form: `128`, `batch`, `2*batch*seq+1`, `seq-1`. Its
    value must fit int64 (a symbolic one's coefficients), not each number written in it:
    `9223372036854775808-1` is MAX_DIM, as `4611686018427387904*4` is past it."""
    tokens = [m.groups() for m in _DIM_TOKEN.finditer(text.strip())]
    if not tokens:
        raise ValueError("empty dimension")
    total, sign, term, expect_factor = 0, 1, 1, True
    if tokens[0][2] == "-":
        sign, tokens = -1, tokens[1:]
    for number, name, other in tokens:
        if expect_factor:
            if number is not None:
                digits = len(number.lstrip("0"))
                if digits > _MAX_DIM_DIGITS:  # (past 4,300, int() raised Python's own limit)
                    raise ValueError(f"a number of {digits} digits is past int64 ({MAX_DIM}), "
                                     "the largest dimension numpy takes")
                term = term * int_of_text(number)
            elif name is not None:
                term = term * Dim.symbol(name)
            else:
                raise ValueError(f"bad dimension {text!r}")
            expect_factor = False
        elif other == "*":
            expect_factor = True
        elif other in ("+", "-"):
            total, sign, term, expect_factor = total + sign * term, \
                (1 if other == "+" else -1), 1, True
        else:
            raise ValueError(f"bad dimension {text!r}")
    if expect_factor:
        raise ValueError(f"bad dimension {text!r}")
    dim = total + sign * term
    if isinstance(dim, int) and dim < 0:  # (a plan of it counted -48 bytes, rendered
        raise ValueError(f"a dimension is 0 or more, got {dim}")  # np.empty((-3, 4)))
    # decided by the value, as the printer writes it: a concrete dimension, or each
    # coefficient of a symbolic one (its numbers, printed: `2*n-1`)
    numbers = [dim] if isinstance(dim, int) else [c for _, c in dim.terms]
    past = next((n for n in numbers if not -MAX_DIM - 1 <= n <= MAX_DIM), None)
    if past is not None:
        raise ValueError(f"{past} is past int64 ({MAX_DIM}), the largest dimension numpy "
                         "takes")
    return dim


def format_bytes(n: float) -> str:
    """A size in bytes as text: 512 B, 23.8 MiB (memory plans, budgets, errors)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def fits_int(value, dtype) -> bool:
    """Whether an integer `dtype` holds the number `value` once truncated: it is finite and
    in the dtype's range (numpy would raise raw on, or wrap, any other)."""
    info = np.iinfo(dtype)
    # (an int is checked as it is: math.isfinite overflows past float's range)
    finite = isinstance(value, (int, np.integer)) or math.isfinite(value)
    return finite and info.min <= int(value) <= info.max


def held_problem(what, value, dtype) -> str | None:
    """Why an int or bool `dtype` does not hold the number `value` read from IR text or JSON
    as it is written (None where it does), which numpy would change on the way in: NaN,
    infinite, out of range or a fraction for an int dtype (wrapped, truncated: 1.5 -> 1),
    other than true, false, 0 or 1 for bool (its truth: 5 -> true). A float dtype rounds a
    number as numpy does; exact_array refuses one rounded to inf."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b" and value not in (0, 1):
        return f"{what} {value!r} is not true, false, 0 or 1, which bool holds"
    if dtype.kind in "iu":
        if not fits_int(value, dtype):
            return f"{what} {value!r} does not fit in {dtype}"
        if not isinstance(value, (int, np.integer)) and not float(value).is_integer():
            return f"{what} {value!r} is not a whole number, which {dtype} holds"
    return None


class NotHeld(ValueError):
    """exact_array's refusal of one value: `index` is its place among the values given, for
    a reader to name where it is written."""

    def __init__(self, message, index):
        super().__init__(message)
        self.index = index


def exact_array(values, dtype, shape) -> np.ndarray:
    """A saved constant's values as an array of this dtype and shape, refusing what numpy
    would change beyond a float's rounding (held_problem's: a fraction for an int dtype, a
    value past its range, 5 for bool; for a float dtype a finite number past its range,
    which would read as inf: f16's 70000). inf, -inf and nan written as such stay. Raises
    NotHeld naming the value, for the reader to place (a line of IR text, a path in IR
    JSON)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        # (the common case at once: bools for bool, ints in range for an int dtype)
        plain = all(type(v) is bool for v in values) if dtype.kind == "b" else \
            all(type(v) is int for v in values) and fits_int(min(values, default=0), dtype) \
            and fits_int(max(values, default=0), dtype)
        for i, value in enumerate(() if plain else values):
            problem = held_problem("value", value, dtype)
            if problem is not None:
                raise NotHeld(problem, i)
    try:
        with np.errstate(over="ignore"):  # (a float dtype's overflow: refused below)
            array = np.array(values, dtype=dtype).reshape(shape)
    except (OverflowError, TypeError):  # an int past int64 for a float dtype: numpy's
        # float32 reads it by float(), bfloat16 took none (ml_dtypes' raw TypeError,
        # 'expected number, got int'); it is read as float32's, past float64 (10**400) refused
        numbers = []
        for i, v in enumerate(values):
            if type(v) is int and not -2 ** 63 <= v < 2 ** 63:
                if not _fits_float(v):
                    raise NotHeld(f"value {v!r} does not fit in {dtype}", i) from None
                v = float(v)
            numbers.append(v)
        with np.errstate(over="ignore"):
            array = np.array(numbers, dtype=dtype).reshape(shape)
    if is_float(dtype):
        flat = array.reshape(-1)
        i = next((int(i) for i in np.flatnonzero(np.isinf(flat))
                  if math.isfinite(values[i])), None)
        if i is not None:
            raise NotHeld(f"value {values[i]!r} does not fit in {dtype} (it would read as "
                          f"{flat[i].item()})", i)
    return array


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True
