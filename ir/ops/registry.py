"""The op registry and the single dispatch point that every op call goes through.

An op is defined once (`defop`) with its type rule, its numpy evaluation and its gradient rule.
`apply` decides whether a call builds a graph node (some input is symbolic, or a graph is being
traced) or runs eagerly on concrete arrays; both paths use the same definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..errors import GraphcError, user_location
from ..types import TensorType, as_dtype, is_float


class TypeRuleError(Exception):
    """Raised by a type rule; `apply` turns it into a GraphcError naming op and user line."""


@dataclass
class OpDef:
    name: str
    infer: Callable  # (input types, **attrs) -> TensorType
    impl: Callable  # (*arrays, **attrs) -> ndarray
    vjp: Callable | None = None  # (ctx: VJPContext, g) -> list of gradients (None: no gradient)
    elementwise: bool = False
    arity: int | None = None  # None: variadic
    flops: Callable | None = None  # (input types, out type, **attrs) -> float
    stochastic: bool = False
    collective: bool = False  # communicates with the other ranks (ir/ops/collective.py)


class VJPContext(NamedTuple):
    inputs: list
    out: object
    attrs: dict
    needs: tuple  # needs[i]: is a gradient for input i wanted

REGISTRY: dict[str, OpDef] = {}


def defop(name, infer, *, vjp=None, elementwise=False, arity=None, flops=None, stochastic=False,
          collective=False):
    def register(impl):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} defined twice")
        REGISTRY[name] = OpDef(name, infer, impl, vjp, elementwise, arity, flops, stochastic,
                               collective)
        return impl
    return register


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise GraphcError(f"unknown op {name!r}") from None


# ---- dispatch -------------------------------------------------------------------------------
def _is_scalar(x):
    """Weakly typed operands: Python (and numpy) scalars. A 0-d array is a tensor with its own
    dtype, as in numpy 2, JAX and PyTorch."""
    return isinstance(x, (bool, int, float, np.number, np.bool_))


def _scalar_dtype(x, like, opname):
    """The dtype a weak scalar takes (None: a float meeting integers), checked to hold it:
    `int32_tensor + 2**40` is an error naming the line, not numpy's OverflowError."""
    dtype = _weak_dtype(x, like)
    if dtype is not None and dtype.kind in "iu" and not isinstance(x, (bool, np.bool_)):
        info = np.iinfo(dtype)
        if not info.min <= int(x) <= info.max:
            raise GraphcError(f"{opname}: integer scalar {int(x)} does not fit in {dtype} "
                              f"(the dtype of the tensor it meets); cast the tensor first",
                              (user_location(),))
    return dtype


def _weak_dtype(value, like):
    """A Python scalar takes the dtype of the tensor it meets (as in JAX and PyTorch)."""
    v = value.item() if isinstance(value, (np.ndarray, np.generic)) else value
    if like == np.dtype("bool") and not isinstance(v, bool):
        like = None  # a number meeting only masks takes the default dtype of its kind
    if like is not None:
        if isinstance(v, float) and not is_float(like):
            return None
        return like
    if isinstance(v, bool):
        return np.dtype("bool")
    if isinstance(v, int):
        return np.dtype("int64")
    return np.dtype("float32")


def _like_dtype(inputs):
    """The dtype a weak scalar operand adopts: the first tensor's, preferring non-bool ones
    (so that `where(mask, g, 0.0)` gives 0.0 the dtype of g)."""
    found = None
    for x in inputs:
        if not _is_scalar(x) and hasattr(x, "dtype"):
            dt = np.dtype(x.dtype)
            if dt != np.dtype("bool"):
                return dt
            found = found or dt
    return found


_DEPS = []


def _deps():
    """(Node, current_graph, eager module), imported once: apply is on every op's hot path
    and these modules import this one."""
    if not _DEPS:
        from runtime import eager

        from ..graph import Node, current_graph
        _DEPS.extend((Node, current_graph, eager))
    return _DEPS


def apply(name: str, *inputs, **attrs):
    Node, current_graph, eager = _deps()
    op = REGISTRY[name]
    graph = None
    for x in inputs:
        if isinstance(x, Node):
            if graph is None:
                graph = x.graph
            elif x.graph is not graph:
                raise GraphcError(f"{name}: operands belong to different graphs",
                                  (user_location(),))
    if graph is None:
        graph = current_graph()

    like = _like_dtype(inputs)

    if graph is not None:
        args = [_lift_symbolic(graph, x, like, name) for x in inputs]
        types = [a.type for a in args]
        out_type = _infer(op, types, attrs)
        return graph.add_node(name, args, attrs, out_type)
    args = [eager.lift(x, _scalar_dtype(x, like, name) if _is_scalar(x) else None, name)
            for x in inputs]
    out_type = _infer(op, [TensorType(a.data.shape, a.data.dtype) for a in args], attrs)
    return eager.run_op(op, args, attrs, out_type)


def _infer(op, types, attrs):
    if op.arity is not None and len(types) != op.arity:
        raise GraphcError(f"{op.name} takes {op.arity} operands, got {len(types)}",
                          (user_location(),))
    try:
        return op.infer(types, **attrs)
    except TypeRuleError as exc:
        operands = ", ".join(str(t) for t in types)
        raise GraphcError(f"{op.name}({operands}): {exc}", (user_location(),)) from None


def _lift_symbolic(graph, x, like, opname):
    Node, _, eager = _deps()
    Parameter, Tensor = eager.Parameter, eager.Tensor
    if isinstance(x, Node):
        return x
    if isinstance(x, Parameter):
        return graph_param(graph, x)
    if isinstance(x, Tensor):
        return graph.constant(x.data)
    if _is_scalar(x):
        dtype = _scalar_dtype(x, like, opname)
        if dtype is None:
            raise GraphcError(f"{opname}: float scalar {x!r} meets an integer tensor; cast one "
                              "of them first", (user_location(),))
        return graph.constant(np.asarray(x, dtype=dtype))
    if isinstance(x, np.ndarray):
        as_dtype(x.dtype)
        return graph.constant(x)
    raise GraphcError(f"{opname}: cannot use a {type(x).__name__} as a tensor operand",
                      (user_location(),))


def graph_param(graph, param):
    """The input node standing for an eager Parameter inside `graph` (created on first use)."""
    node = graph.bound_params.get(id(param))
    if node is None:
        base = param.name or "param"
        taken = {n.attrs["name"] for n in graph.inputs}
        name, k = base, 1
        while name in taken:  # two standalone layers may both call theirs "weight"
            name, k = f"{base}_{k}", k + 1
        node = graph.input(name, param.data.shape, param.data.dtype, kind="param")
        graph.bound_params[id(param)] = node
        graph.param_values[name] = param
    return node


def check(cond, message):
    if not cond:
        raise TypeRuleError(message)
