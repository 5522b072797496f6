"""The op registry and the single dispatch point that every op call goes through.

An op is defined once (`defop`) with its type rule, its numpy evaluation and its gradient rule.
`apply` hands each call to an interpreter: the graph being built (some input is symbolic, or a
graph is being traced) adds a node; eager mode, registered from runtime.eager, computes at once
on concrete arrays; both use the same definition.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
from dataclasses import dataclass
from typing import Callable, NamedTuple

import ml_dtypes
import numpy as np

from ..errors import GraphcError, a_type, library_frames, user_location
from ..printer import format_attr, is_region
from ..types import (FLOAT_SCALARS, ML_REAL_DTYPES, NUMPY_FLOAT_SCALARS, Dim, TensorType,
                     UnsupportedDtype, is_float, is_half, unsupported_dtype)


class TypeRuleError(Exception):
    """Raised by a type rule; `apply` turns it into a GraphcError naming op and user line."""


@dataclass
class OpDef:
    name: str
    infer: Callable  # (input types, **attrs) -> TensorType
    impl: Callable  # (*arrays, **attrs) -> ndarray
    # (ctx: VJPContext, g) -> list of gradients; a DerivedVJP; None: no gradient
    vjp: Callable | DerivedVJP | None = None
    arity: int | None = None  # None: variadic
    flops: Callable | None = None  # (input types, out type, **attrs) -> float
    stochastic: bool = False
    collective: bool = False  # communicates with the other ranks (ir/ops/collective.py)

    def arity_mismatch(self, count: int) -> str | None:
        """The complaint about `count` operands for an op of fixed arity, else None. Type
        rules (the elementwise ones) accept any count, so every caller of `infer` asks this
        first: an extra operand would reach numpy as its `out=`."""
        if self.arity is not None and count != self.arity:
            noun = "operand" if self.arity == 1 else "operands"
            return f"{self.name} takes {self.arity} {noun}, got {count}"
        return None

    @functools.cached_property
    def attribute_names(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """(the attributes the op takes, those it must be given): its type rule's parameters
        after the operand types, which every node's attributes are passed to."""
        params = list(inspect.signature(self.infer).parameters.values())[1:]
        return (tuple(p.name for p in params),
                frozenset(p.name for p in params if p.default is inspect.Parameter.empty))

    def attribute_problem(self, attrs: dict) -> tuple[str, str] | None:
        """(name, complaint) for the first attribute the op does not take, the first it
        lacks, or the first not of its kind (ATTRIBUTE_KINDS), else None. The type rules check
        ranges but trust the kinds `api` makes (`0 <= 0.5 < 1` holds); IR from outside
        (ir/parser.py, ir/serialize.py) and the verifier ask this before `infer`, which named
        its own function for an unknown or missing one ("_reduce_infer() got an unexpected
        keyword argument 'foo'"). Not for `constant`, whose `value` is an array."""
        names, required = self.attribute_names
        for key in attrs:
            if key not in names:
                takes = ", ".join(names) if names else "no attributes"
                return key, f"{self.name}: unknown attribute {key} ({self.name} takes {takes})"
        for key in names:
            if key in required and key not in attrs:
                return key, f"{self.name}: missing attribute {key}"
        for key, value in attrs.items():
            kind = ATTRIBUTE_KINDS.get(key)
            if kind is not None and not kind[1](value):
                return key, f"{self.name}: attribute {key}={_shown(value)} must be {kind[0]}"
        return None


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _size(v):
    return _int(v) or isinstance(v, Dim)


def _tuple_of(test):
    return lambda v: isinstance(v, tuple) and all(test(x) for x in v)


_INT, _SIZE = ("an int", _int), ("an int or a symbolic dimension", _size)
_FLAG = ("true or false", lambda v: isinstance(v, bool))
_TEXT = ("a string", lambda v: isinstance(v, str))
_SIZES = ("a tuple of ints or symbolic dimensions", _tuple_of(_size))
_NUMBER = ("a number", lambda v: _int(v) or isinstance(v, float))
# The kind of value each attribute holds, by its name (one meaning per name, whatever the op).
ATTRIBUTE_KINDS = {
    "axis": _INT, "index": _INT, "blank": _INT, "consts": _INT, "carries": _INT,
    "cond_consts": _INT, "body_consts": _INT, "args": _INT, "bucket": _INT, "salt": _INT,
    "k": _INT, "rule": _INT,
    "axes": ("a tuple of distinct ints",
             lambda v: _tuple_of(_int)(v) and len(set(v)) == len(v)),
    "perm": ("a tuple of ints", _tuple_of(_int)),
    "size": _SIZE, "rows": _SIZE, "cols": _SIZE, "depth": _SIZE, "length": _SIZE, "n": _SIZE,
    "num": _SIZE, "start": _SIZE, "stop": _SIZE, "step": _SIZE,
    "shape": _SIZES, "starts": _SIZES, "stops": _SIZES, "steps": _SIZES,
    "keepdims": _FLAG, "reverse": _FLAG, "descending": _FLAG, "save_carries": _FLAG,
    "right": _FLAG,
    "eps": _NUMBER, "rate": _NUMBER,
    "value": ("a number or a symbolic dimension",  # (full's; a constant's is not asked)
              lambda v: isinstance(v, (int, float, Dim))),
    "dtype": ("a dtype (f32, i64, bool, ...)", lambda v: isinstance(v, np.dtype)),
    "approximate": _TEXT, "fn": _TEXT, "spec": _TEXT, "reduce": _TEXT, "program": _TEXT,
    "name": _TEXT, "kind": _TEXT,
    "body": ("a region", is_region), "cond_fn": ("a region", is_region),
    "body_fn": ("a region", is_region), "branches": ("a tuple of regions", _tuple_of(is_region)),
}


def _shown(value) -> str:
    text = type(value).__name__ if is_region(value) else format_attr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class DerivedVJP:
    """The gradient rule of a composite primitive (ir/ops/composite.py): the gradient of its
    `reference` definition, built from simpler primitives, so second derivatives stay exact
    without a hand-written rule. Differentiation lives above ir, and runs such a rule itself:
    passes.autodiff on graphs (partial derivatives of the reference), runtime.eager on a tape."""
    reference: Callable


class VJPContext(NamedTuple):
    inputs: list
    out: object
    attrs: dict
    needs: tuple  # needs[i]: is a gradient for input i wanted
    # eager backward(inputs=...)'s tensors as ids, None: every leaf (the tape's closure
    # check of a custom-gradient call, ir/ops/custom.py, refuses only gradients that are wanted)
    wanted: object = None

REGISTRY: dict[str, OpDef] = {}


def defop(name, infer, *, vjp=None, arity=None, flops=None, stochastic=False, collective=False):
    def register(impl):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} defined twice")
        run = impl if name in MOVES_DATA_ONLY else computing_half_in_float32(impl)
        REGISTRY[name] = OpDef(name, infer, run, vjp, arity, flops, stochastic, collective)
        return impl
    return register


# ---- half precision -------------------------------------------------------------------------
# float16 and bfloat16 are storage dtypes. An op on them computes in float32 and rounds its
# result once: sums, matmuls and einsums accumulate in float32, softmax, layer_norm and the
# losses' log_softmax run their float32 formulas, elementwise ops round once per op (exactly
# the correctly rounded half result for + - * / sqrt: float32 holds twice a half's bits + 2).
# PyTorch on CPU does the same for bf16 (float accumulation, one rounding per op's output).
# Control-flow ops and their tuple reader (ir/ops/control_flow.py) leave dtypes to the ops of
# their regions, traced under the same policy: each of those rounds its own result and casts
# what it uses under autocast (ir/ops/precision.py), so neither touches the node itself (a
# tuple is not one array; a cast would change a loop carry's declared dtype).
CONTROL_FLOW_OPS = frozenset(("scan", "cond", "while_loop", "tuple_get"))
# Ops that only move or copy values keep their operands' dtype: nothing to round.
MOVES_DATA_ONLY = frozenset((
    "cast", "input", "constant", "reshape", "transpose", "broadcast_to", "slice", "concat",
    "take", "dynamic_slice", "dynamic_update_slice", "stop_gradient", "optimization_barrier",
    "custom_vjp", "where", "allreduce_wait")) | CONTROL_FLOW_OPS


def computing_half_in_float32(impl):
    """`impl` run on float32 copies of its float16/bfloat16 operands, its float32 result
    rounded to that half dtype (other dtypes pass straight through)."""
    def run(*xs, **attrs):
        half = next((x.dtype for x in xs if hasattr(x, "dtype") and is_half(x.dtype)), None)
        if half is None:
            return impl(*xs, **attrs)
        out = impl(*[x.astype(np.float32) if hasattr(x, "dtype") and is_half(x.dtype) else x
                     for x in xs], **attrs)
        out = np.asarray(out)
        return out.astype(half) if out.dtype == np.float32 else out
    run.__wrapped__ = impl
    run.__name__ = getattr(impl, "__name__", "impl")
    return run


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise GraphcError(f"unknown op {name!r}") from None


# ---- dispatch -------------------------------------------------------------------------------
def is_weak_scalar(x):
    """Weakly typed operands: Python (and numpy) scalars. A 0-d array is a tensor with its own
    dtype, as in numpy 2, JAX and PyTorch."""
    # (the second test runs for numbers only: a tensor operand pays nothing for it)
    return isinstance(x, _WEAK_SCALARS) and type(x) is not _TIMEDELTA


# np.integer, not np.number: a numpy complex scalar (np.complex64, np.clongdouble) is no weak
# number, as a Python complex is not; as np.number it took a float tensor's dtype, its
# imaginary part dropped with only numpy's ComplexWarning
_WEAK_SCALARS = (bool, int, float, np.integer, np.bool_) + NUMPY_FLOAT_SCALARS
# np.timedelta64 is an np.signedinteger to numpy's type tree, but no number: a time (numpy
# gives `x * td` its units). Weak, it was taken as its count (x * timedelta64(3, 's') was
# x * 3); refused now as a datetime64 is, "cannot use a timedelta64 as a tensor operand"
_TIMEDELTA = np.timedelta64


def scalar_dtype(x, like, opname):
    """The dtype a weak scalar takes (None: a float meeting integers), checked to hold it:
    `int32_tensor + 2**40` is an error naming the line, not numpy's OverflowError."""
    dtype = _weak_dtype(x, like)
    if dtype is not None and dtype.kind in "iu" and not isinstance(x, (bool, np.bool_)):
        info = np.iinfo(dtype)
        if not info.min <= int(x) <= info.max:
            raise GraphcError(f"{_called_op(opname)}: integer scalar {int(x)} does not fit in "
                              f"{dtype} (the dtype of the tensor it meets); cast the tensor first",
                              (user_location(),))
    return dtype


def _weak_dtype(value, like):
    """A Python scalar takes the dtype of the tensor it meets (as in JAX and PyTorch)."""
    v = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
    if like == np.dtype("bool") and not isinstance(v, bool):
        like = None  # a number meeting only masks takes the default dtype of its kind
    if like is not None:
        # FLOAT_SCALARS, not float: np.longdouble's item() is an np.longdouble, which took
        # an integer tensor's dtype, 2.5 truncated to 2
        if isinstance(v, FLOAT_SCALARS) and not is_float(like):
            return None
        return like
    if isinstance(v, bool):
        return np.dtype("bool")
    if isinstance(v, int):
        return np.dtype("int64")
    return np.dtype("float32")


def foreign_array_name(x):
    """The type name of `x` ('torch.Tensor') if it is another library's array, one with
    __array__ or __dlpack__ that is no numpy array, else None. (graphc's Tensor and traced
    values have __array__ too: callers ask once those are ruled out.)"""
    if isinstance(x, (np.ndarray, np.generic)) or not (
            hasattr(x, "__array__") or hasattr(x, "__dlpack__")):
        return None
    kind = type(x)
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"


def scalar_array(x):
    """`x` as numpy reads it (np.asarray), or, for a 0-d tensor of another library that
    numpy cannot read, as torch reads a tensor given as a number: the .item() of its
    detached CPU copy, as a 0-d array (torch's __array__ refuses a bfloat16, requires_grad,
    CUDA or meta tensor, a raw TypeError or RuntimeError where a setting or a token id is
    read). None where neither reads it (a meta tensor has no number): the caller's one line.
    For settings and concrete numbers, read once; not for operands (refuse_foreign_array)."""
    try:
        return np.asarray(x)
    except (TypeError, RuntimeError, ValueError):
        pass
    if getattr(x, "shape", None) != ():  # (.item() would read a 1-element tensor too)
        return None
    try:  # (duck-typed: ir imports no torch)
        return np.asarray(x.detach().cpu().item())
    except (AttributeError, TypeError, RuntimeError, ValueError, NotImplementedError):
        return None


def foreign_array(x):
    """Another library's array `x` as numpy reads it (np.asarray), or, where numpy cannot, a
    torch tensor as graphc reads torch's weights (load_torch_state_dict,
    Embedding.from_pretrained): its detached CPU copy, a bfloat16 or float8 one through
    float32 (which holds each of its values exactly) into ml_dtypes' type of that name
    (torch's __array__ refuses those dtypes and a tensor that requires grad, a raw TypeError
    or RuntimeError). None where neither reads it (a dtype with no numpy form: torch's
    float4_e2m1fn_x2, int4, complex32; a meta tensor): the caller's one line names it."""
    try:
        return np.asarray(x)
    except (TypeError, RuntimeError, ValueError):
        pass
    try:  # (duck-typed: ir imports no torch)
        x = x.detach().cpu()
        return np.asarray(x)  # (one that required grad, or on a device)
    except (AttributeError, TypeError, RuntimeError, ValueError, NotImplementedError):
        pass
    try:
        kind = np.dtype(getattr(ml_dtypes, str(x.dtype).rpartition(".")[2]))
        if kind not in ML_REAL_DTYPES or kind.kind in "iu":  # (a float format alone)
            return None
        return x.float().numpy().astype(kind)
    except (AttributeError, TypeError, RuntimeError, ValueError, NotImplementedError):
        return None


def unread_foreign_array(x) -> str:
    """Why foreign_array(x) gave None, as the rest of a line naming x ("the gradient, a
    torch.Tensor, ..."): a meta tensor holds no values; a dtype numpy and ml_dtypes have no
    form of (torch's int4, complex32); else the library's own reason, where the values
    are what it will not hand over (torch's "can't convert Sparse layout tensor to numpy.
    Use Tensor.to_dense() first.", a conjugate bit's): the dtype's line was false there."""
    if getattr(x, "is_meta", False):
        return "is a meta tensor, which holds no values"
    name = str(getattr(x, "dtype", "?")).rpartition(".")[2]
    kind = getattr(ml_dtypes, name, None)  # (foreign_array reads its float formats alone)
    try:
        has_form = np.dtype(name) if kind is None else \
            np.dtype(kind) in ML_REAL_DTYPES and "float" in name  # (ml_dtypes' int4 is V)
    except TypeError:
        has_form = False
    if not has_form:
        return f"has dtype {x.dtype}, which numpy has no form of"
    try:  # (duck-typed, as foreign_array)
        x.detach().cpu().numpy()
    except (AttributeError, TypeError, RuntimeError, ValueError, NotImplementedError) as exc:
        return f"cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return "cannot be read as an array"


def read_foreign_array(x, what):
    """foreign_array(x), or one line naming it (`what`: "backward(): the gradient") with
    unread_foreign_array's reason where it gives None: what backward() and graphc.nn's
    torch readers say."""
    read = foreign_array(x)
    if read is None:
        raise GraphcError(f"{what}, a {foreign_array_name(x)}, {unread_foreign_array(x)}",
                          (user_location(),))
    return read


def refuse_foreign_array(x, opname=""):
    """Raise the one-line refusal of `x` if it is another library's array (a torch.Tensor, a
    JAX or CuPy array: it has __array__ or __dlpack__ but is no numpy array), which graphc
    does not convert unseen: a torch operand met numpy's "Cannot interpret 'torch.float32' as
    a data type" from deep inside. Called where an operand is refused, off the hot path."""
    name = foreign_array_name(x)
    if name is None:
        return
    opname = _called_op(opname)
    raise GraphcError(f"{opname + ': ' if opname else ''}got a {name}, another library's "
                      "array; pass a numpy array (x.numpy(), or np.asarray(x))",
                      (user_location(),))


def refuse_operand(x, opname):
    """Raise the one-line refusal of operand `x`, which no op takes (another library's array,
    a str, a list), naming the function the user called as refuse_foreign_array does: the
    line beside it named the inner op ('maximum: cannot use a str' for gc.clip(x, 'a', 1))."""
    refuse_foreign_array(x, opname)
    raise GraphcError(f"{_called_op(opname)}: cannot use {a_type(x)} as a tensor "
                      "operand", (user_location(),))


def refuse_unsupported_dtype(x, opname):
    """Refuse numpy array operand `x` if the IR cannot hold its dtype (complex), naming the
    function the user called as refuse_operand does: the line named no function."""
    reason = unsupported_dtype(x.dtype)
    if reason:
        raise UnsupportedDtype(f"{_called_op(opname)}: {reason}", (user_location(),))


def refuse_array_container(x, opname, what="one array", traced_only=False):
    """One line where `x`, a list or tuple (nested too) holding a traced value or an eager
    tensor, is passed where `what` is expected: numpy read each traced value as an array
    ("a symbolic value cannot be turned into a numpy array", naming no list), or stacked
    the eager ones into an array with a new leading axis. A gc.Trainer's batch is such a
    tuple (`model(batch)`). Lists of plain numbers or arrays pass: they are array-likes;
    so do lists of eager tensors where `traced_only` (a dtype read by numpy, as an index
    list x[[t, 2]] is read)."""
    if isinstance(x, (list, tuple)) and holds_values(x, traced_only):
        count, called = len(x), _called_op(opname)
        raise GraphcError(f"{called + ': ' if called else ''}got {a_type(x)} of {count} "
                          f"value{'s' if count != 1 else ''} where {what} was expected: take "
                          f"an element (a gc.Trainer's batch is a tuple: `x, y = batch`, "
                          f"`x, = batch`) or stack them (gc.stack)", (user_location(),))


def holds_values(items, traced_only=False) -> bool:
    """Whether a list or tuple holds (at any depth) a traced value or an eager tensor (an
    OperatorMixin: runtime.eager's Tensor, which ir does not import; not a torch tensor,
    refused as another library's array where it is read)."""
    from .operators import OperatorMixin  # (operators imports api, which imports this)
    kinds = SymbolicValue if traced_only else (SymbolicValue, OperatorMixin)
    for item in items:
        if isinstance(item, (list, tuple)):
            if holds_values(item, traced_only):
                return True
        elif isinstance(item, kinds):
            return True
    return False


def refuse_float_scalar(x, opname):
    """Raise the refusal of float scalar `x` meeting an integer tensor, naming the function
    the user called (gc.leaky_relu of an int tensor named the mul inside it)."""
    raise GraphcError(f"{_called_op(opname)}: float scalar {x!r} meets an integer tensor; "
                      "cast one of them first", (user_location(),))


def _called_op(opname):
    """The op-library function the user called (the outermost one named in an ir.ops
    module's __all__ between the user's line and here), else `opname`: a torch operand of
    gc.floor, refused by api's _dtype, had no name, and a torch bound of gc.clip was blamed
    on the maximum that clip calls. An op that a library layer's forward calls (gc.nn's
    BatchNorm1d, Embedding) is named by the layer's class, the innermost one: its internal
    ops (batch_moments, take) were no call of the user's. Found on the error path, so no op
    call pays for it."""
    for frame in library_frames(sys._getframe(1)):
        names = frame.f_globals
        if names.get("__package__") == __package__ and \
                frame.f_code.co_name in names.get("__all__", ()):
            opname = frame.f_code.co_name
        elif frame.f_code.co_name == "forward" and \
                isinstance(frame.f_locals.get("self"), _LAYER_TYPES):
            # (a layer's, not any forward: a compiled function's on the tape, split_vjp's
            # Differentiated.forward, named that class)
            return type(frame.f_locals["self"]).__name__
    return opname


_LAYER_TYPES = ()  # the library layers' base class (gc.nn.Module), which graphc registers


def register_layer_type(cls: type):
    """Make the `forward` of a `cls` instance name the ops it calls (_called_op)."""
    global _LAYER_TYPES
    _LAYER_TYPES = (*_LAYER_TYPES, cls)


def like_dtype(inputs):
    """The dtype a weak scalar operand adopts: the first tensor's, preferring non-bool ones
    (so that `where(mask, g, 0.0)` gives 0.0 the dtype of g)."""
    found = None
    for x in inputs:
        if not is_weak_scalar(x) and hasattr(x, "dtype"):
            try:
                dt = np.dtype(x.dtype)
            except TypeError:  # (a torch tensor's dtype: lifting the operand refuses it)
                continue
            if dt != np.dtype("bool"):
                return dt
            found = found or dt
    if found is None:  # numbers alone: an int or bool meeting a float is a float (1 + 1.5),
        # a bool meeting an int an int, as in Python and JAX; each kind's default dtype
        kinds = {float if isinstance(x, FLOAT_SCALARS) else  # (np.longdouble's item())
                 type(x.item() if isinstance(x, np.generic) else x) for x in inputs
                 if is_weak_scalar(x)}
        if float in kinds and len(kinds) > 1:
            return np.dtype("float32")
        if kinds == {int, bool}:
            return np.dtype("int64")
    return found


# ---- the interpreter stack ------------------------------------------------------------------
# As in JAX's autodidax, `apply` hands each op call to an interpreter. Two exist: a Graph being
# built (ir.graph) adds a node, and eager mode (runtime.eager) computes at once. A call goes to
# the graph that owns a symbolic operand, else to the innermost graph being built, else to the
# base interpreter, which runtime.eager registers when it is imported: ir never imports it.
class Interpreter:
    """Runs op calls: `process(op, inputs, attrs)` returns the op's result for these operands."""

    def process(self, op: OpDef, inputs: tuple, attrs: dict):
        raise NotImplementedError


class SymbolicValue:
    """A value of a graph being built (ir.graph.Node); its `graph` is the interpreter that
    takes the op calls it is an operand of."""

    __slots__ = ()


class _InterpreterStack(threading.local):
    def __init__(self):
        self.stack = []  # innermost last (Graph.building pushes its graph)
        self.graph_valued = 0  # how many graph_valued() blocks are open
        # {name: size} per compiled function called inline in a trace (naming_sizes)
        self.named_sizes = []


_STACK = _InterpreterStack()


class _GradMode(threading.local):
    enabled = True
    # how many no_grad blocks of the graph being built enclose the transformation being traced
    # inline (differentiating(): 1 for h in gc.grad(h) called in a block). h's ops are that
    # deep in blocks in grad mode, one deeper under a no_grad of h's own (block_depth), and an
    # op in a block reads a value computed less deep through a stop_gradient (ir.graph's
    # Graph.process). With the flag alone h's block took the values h computed in the outer
    # block for its own, stopped none, and h's derivative went through them. (no_grad and
    # enable_grad switch the flag alone, so they cost eager code nothing more.)
    floor = 0


# grad mode, which runtime.eager's no_grad, enable_grad and set_grad_enabled switch: eager ops
# record no tape while it is off, and a graph being built makes what it computes then a
# constant for differentiation (ir.graph's Graph.process)
GRAD_MODE = _GradMode()
_BASE: list = []  # [the base interpreter], registered from above (runtime.eager)


def block_depth() -> int:
    """How deep in no_grad blocks an op traced now is (GRAD_MODE.floor)."""
    return GRAD_MODE.floor + (not GRAD_MODE.enabled)


class differentiating:  # noqa: N801  (a context manager, used as a function is)
    """Grad mode for the function a transformation traces inline (gc.grad, vjp, jvp called
    inside a trace), as torch.func.grad's: on for its own derivative, however it was called,
    so a no_grad around the transformation does not stop that. The blocks open around it stay
    open for the derivatives outside it: what it builds is a value of those blocks (read there
    with no stop_gradient, so that a jvp or a second derivative taken in a block goes through
    it), and a no_grad inside the function opens a block one deeper, which reads the
    function's values through a stop_gradient, as eagerly. (A class: an eager gc.grad traces
    at each call.)"""

    __slots__ = ("_saved",)

    def __enter__(self):
        self._saved = GRAD_MODE.enabled, GRAD_MODE.floor
        GRAD_MODE.floor = block_depth()
        GRAD_MODE.enabled = True

    def __exit__(self, *exc):
        GRAD_MODE.enabled, GRAD_MODE.floor = self._saved


def register_base_interpreter(interpreter: Interpreter):
    """Make `interpreter` run op calls on concrete operands outside any graph."""
    _BASE[:] = [interpreter]


@contextlib.contextmanager
def interpreting(interpreter: Interpreter):
    """Op calls inside (on operands not owned by another graph) go to `interpreter`, in grad
    mode: a trace differentiates as the function would (a no_grad entered inside it counts,
    one around the transformation does not: torch.func.grad's), and builds the same graph
    under an outer no_grad (an inference call). Re-entering the graph being built (the
    backward nodes passes.autodiff.gradients adds to it) keeps the mode its ops run in: a
    gradient taken in a no_grad block of the traced function is a value of that block, as
    the forward it differentiates is, so a later derivative through it (jvp, grad of grad,
    inside the block too) is not cut by the stop_gradient the block puts on values from
    outside (ir.graph's Graph.process). (A new graph opens no block of the enclosing one's.)"""
    saved = GRAD_MODE.enabled, GRAD_MODE.floor
    if not (_STACK.stack and _STACK.stack[-1] is interpreter):
        GRAD_MODE.enabled, GRAD_MODE.floor = True, 0
    _STACK.stack.append(interpreter)
    try:
        yield interpreter
    finally:
        _STACK.stack.pop()
        GRAD_MODE.enabled, GRAD_MODE.floor = saved


@contextlib.contextmanager
def graph_valued():
    """Inside, an op of no operands (full, arange) is a value of the graph being built even
    where that graph runs ops on concrete values eagerly (an eager vmap's: apply): what a
    transformation traced there builds as a value of the graph it differentiates (autodiff's
    seeds, forward mode's zeros_like cotangents, which gradients() differentiates with
    respect to) must be the graph's. A decorator too; trace time only. Only what is built
    inside such a block is protected (passes.autodiff.gradients, passes.forward_mode.tangents
    carry it): a new transformation that builds a value to differentiate with respect to from
    an op of no operands outside them gets a concrete value there and a silently zero
    gradient, not an error, unless it opens the block too."""
    _STACK.graph_valued += 1
    try:
        yield
    finally:
        _STACK.graph_valued -= 1


def input_symbols() -> set:
    """The symbols on an input's axis of the graphs being built: the only ones a call can
    bind (ir.specialize binds each from an input's size), an enclosing trace's too (a loop
    body's or a differentiated function's graph reads the outer graph's values)."""
    return {symbol for interpreter in _STACK.stack
            for node in getattr(interpreter, "inputs", ())
            for d in getattr(node, "shape", ()) if isinstance(d, Dim) for symbol in d.symbols}


@contextlib.contextmanager
def naming_sizes(names):
    """Inside, a str size naming only these names (a compiled function's polymorphic_shapes
    names, {name: the size of its argument's axis}) is that size (ir.ops.api._size): the
    function is called inline in a trace (graphc.transforms), where its polymorphic_shapes
    bind no symbol, so its gc.eye('n') under gc.vmap was refused ("eye: a size must be an
    int, got 'n'"); a name not among them is refused, as at a call of its own. None (a
    compiled function with no polymorphic_shapes): the trace's names, as outside any."""
    _STACK.named_sizes.append(names)
    try:
        yield
    finally:
        _STACK.named_sizes.pop()


def named_sizes():
    """The innermost naming_sizes' names (None outside any)."""
    return _STACK.named_sizes[-1] if _STACK.named_sizes else None


def innermost_interpreter():
    """The interpreter pushed last (a graph being built), or None outside any."""
    stack = _STACK.stack
    return stack[-1] if stack else None


def apply(name: str, *inputs, **attrs):
    op = REGISTRY[name]
    interpreter = None
    for x in inputs:
        if isinstance(x, SymbolicValue):
            if interpreter is None:
                interpreter = x.graph
            elif x.graph is not interpreter:
                interpreter = _capturing_region(interpreter, x.graph)
                if interpreter is None:
                    raise GraphcError(f"{name}: operands belong to different graphs",
                                      (user_location(),))
    if getattr(interpreter, "finished", None) and interpreter not in _STACK.stack:
        raise GraphcError(f"{name}: a value traced in {interpreter.finished} is used after that "
                          "trace ended: it leaked out (stored on a module, an object or a "
                          "global while tracing); return it from the function instead",
                          (user_location(),))
    if interpreter is None:
        stack = _STACK.stack
        if stack:
            interpreter = stack[-1]
            if getattr(interpreter, "concrete_runs_eagerly", False) and _BASE and \
                    (inputs or not _STACK.graph_valued):
                # an eager vmap's graph (graphc/vmap.py): no operand is batched, so the op
                # computes now, as without vmap (torch.func's and JAX's vmap keep such values
                # concrete); a node there had an unknown value: -v of an unmapped v was NaN
                # as a gaussian_nll_loss var, float(v * 2) refused; so did an op of no
                # operands (gc.zeros(3), gc.arange), unless a transformation builds it
                # (graph_valued: a seed to differentiate with respect to)
                interpreter = _BASE[0]
        elif _BASE:
            interpreter = _BASE[0]
        else:
            raise GraphcError(f"{name} on concrete values needs eager mode, which `import "
                              "runtime.eager` (or `import graphc`) provides", (user_location(),))
    if OPERAND_POLICY:
        inputs = OPERAND_POLICY[0](name, inputs, interpreter)
    return interpreter.process(op, inputs, attrs)


def _capturing_region(a, b):
    """The graph being built that takes an op mixing values of graphs a and b (a control-flow
    region, ir/region.py, or the graph graphc.vmap traces into):
    the innermost one on the stack that is a or b and captures the other's values; else None."""
    for interpreter in reversed(_STACK.stack):
        if interpreter is a or interpreter is b:
            return interpreter if getattr(interpreter, "captures_outer", False) else None
    return None


# [the function giving an op call's operands under the active mixed-precision policy]:
# ir/ops/precision.py registers it (autocast)
OPERAND_POLICY: list = []


def infer_type(op: OpDef, types, attrs) -> TensorType:
    """The op's result type for operands of these types; a type rule's complaint becomes a
    GraphcError naming the op, its operand types and the user's line."""
    mismatch = op.arity_mismatch(len(types))
    if mismatch:
        raise GraphcError(mismatch, (user_location(),))
    try:
        return op.infer(types, **attrs)
    except TypeRuleError as exc:
        operands = ", ".join(str(t) for t in types)
        # the function the user called first, where it is another (gc.dot's int and float
        # operands were 'matmul(i64[1,3], f32[3,1]): ...', naming only the op inside it)
        called = _called_op(op.name)
        called = "" if called == op.name else called + ": "
        raise GraphcError(f"{called}{op.name}({operands}): {exc}", (user_location(),)) from None


def lift_symbolic(graph, x, like, opname):
    """Operand `x` as a node of `graph`: constants for arrays and weak scalars; values of other
    interpreters (eager tensors, parameters) enter through their `graph_operand(graph)`."""
    if isinstance(x, SymbolicValue):
        return x
    if is_weak_scalar(x):
        dtype = scalar_dtype(x, like, opname)
        if dtype is None:
            refuse_float_scalar(x, opname)
        return graph.constant(np.asarray(x, dtype=dtype))
    if isinstance(x, np.ndarray):
        refuse_unsupported_dtype(x, opname)
        return graph.constant(x)
    to_graph = getattr(x, "graph_operand", None)
    if to_graph is not None:
        return to_graph(graph)
    refuse_operand(x, opname)


def graph_param(graph, param, kind="param"):
    """The input node standing for an eager Parameter (or, kind "input", an eager Tensor)
    inside `graph` (created on first use); a plan reads its `.data` at each call."""
    node = graph.bound_params.get(id(param))
    if node is None:
        base = param.name or ("param" if kind == "param" else "tensor")
        taken = {n.attrs["name"] for n in graph.inputs}
        name, k = base, 1
        while name in taken:  # two standalone layers may both call theirs "weight"
            name, k = f"{base}_{k}", k + 1
        node = graph.input(name, param.data.shape, param.data.dtype, kind=kind)
        graph.bound_params[id(param)] = node
        graph.param_values[name] = param
    return node


def check(cond, message):
    if not cond:
        raise TypeRuleError(message)
