"""Algebraic simplification: small declarative rewrite rules, applied to a fixed point.

A rule is registered for one op with `@rule(op)` and gets the node being rebuilt (its operands
already rewritten); it returns a replacement value, or None when it does not apply. Rules build
replacements with the ordinary functional API, so types are checked as in user code. As in
tinygrad's PatternMatcher and PyTensor's node rewriters, adding a rule is a few lines.

Floating-point policy: by default a rule may fire only where the rewritten graph computes
what numpy computes on the original one, NaN and inf included. Rules that assume finite
values or reassociate (`x * 0 -> 0`, `exp(log x) -> x`, `log(exp x) -> x`,
`(x * c1) * c2 -> x * (c1 * c2)`) are registered with `fast_math=True` and run only under the
`fast_math=True` compile option. Two default rules are documented exceptions: `x + 0 -> x`
(and `scatter_add_every_row`) keep a -0.0 that numpy would turn into +0.0 (equal as
numbers), and
`masked_softmax_gradient` gives 0 instead of NaN at masked positions when the incoming
gradient is already non-finite there (the row is NaN then anyway). `sum_of_broadcast` sums x
once and multiplies by the copy count, a change of summation order as BLAS's: partial sums
that overflow in numpy's order need not here ([[1e308], [-1e308]] over 3 copies is 0, numpy
inf); the README says so beside the -0.0 note.
"""
from __future__ import annotations

import math

import numpy as np

from ir.ops import api as F
from ir.ops.registry import get_op
from ir.rewrite import rebuild
from ir.types import Dim, InconclusiveDim, holds_dim, is_float, is_half

RULES: dict[str, list] = {}
FAST_MATH_RULES: set = set()  # rules that run only with fast_math=True


def rule(*ops, fast_math=False):
    def register(fn):
        for op in ops:
            RULES.setdefault(op, []).append(fn)
        if fast_math:
            FAST_MATH_RULES.add(fn)
        return fn
    return register


class Match:
    """The node under rewrite: its op, rewritten operands, attributes and type."""

    def __init__(self, node, inputs):
        self.node, self.inputs, self.attrs = node, inputs, node.attrs
        self.shape, self.dtype = node.shape, node.dtype


def scalar_value(node):
    """The value of a node that is one repeated number (a constant or a `full`), else None.
    Repeated bit for bit: 0.0 and -0.0 are equal numbers but not one value (1 / x)."""
    if node.op == "full":
        return node.attrs["value"]
    if node.op == "constant":
        v = node.attrs["value"]
        if v.size == 1:
            return v.reshape(-1)[0].item()
        if v.size and v.size <= 1024 and \
                np.full_like(v, v.reshape(-1)[0]).tobytes() == np.ascontiguousarray(v).tobytes():
            return v.reshape(-1)[0].item()
    return None


def is_scalar_const(node, value) -> bool:
    v = scalar_value(node)
    return v is not None and v == value


def fit(x, m: Match):
    """x with the node's exact shape and dtype (a rewrite may not change a value's type)."""
    if x.dtype != m.dtype:
        return None
    return F.broadcast_to(x, m.shape) if x.shape != m.shape else x


# ---- identities -----------------------------------------------------------------------------
@rule("add")
def add_zero(m):
    a, b = m.inputs
    if is_scalar_const(b, 0):
        return fit(a, m)
    if is_scalar_const(a, 0):
        return fit(b, m)


@rule("sub")
def sub_zero(m):
    """x - 0 -> x, exact for +0.0 only: x - (-0.0) is x + 0.0, which makes a -0.0 +0.0."""
    a, b = m.inputs
    if is_scalar_const(b, 0) and not np.signbit(scalar_value(b)):
        return fit(a, m)


@rule("mul")
def mul_one(m):
    a, b = m.inputs
    if is_scalar_const(b, 1):
        return fit(a, m)
    if is_scalar_const(a, 1):
        return fit(b, m)


@rule("mul", fast_math=True)
def mul_zero(m):
    """x * 0 -> 0: numpy gives NaN for x = inf or NaN."""
    a, b = m.inputs
    if is_scalar_const(a, 0) or is_scalar_const(b, 0):
        return F.zeros(m.shape, m.dtype)


@rule("mul", fast_math=True)
def mul_constants_merge(m):
    """(x * c1) * c2 -> x * (c1 * c2) for scalar constants."""
    a, b = m.inputs
    c2 = scalar_value(b)
    if c2 is None or a.op != "mul" or b.size != 1:
        return None
    x, c1_node = a.inputs
    c1 = scalar_value(c1_node)
    if c1 is None or c1_node.size != 1:
        return None
    # the product in the node's dtype, as the two multiplies compute it (integers wrap)
    merged = (np.asarray([c1], m.dtype) * np.asarray([c2], m.dtype)).reshape(
        np.broadcast_shapes(c1_node.shape, b.shape))
    return fit(F.mul(x, _const(merged)), m)


def _const(value):
    from ir.graph import current_graph
    return current_graph().constant(value)


@rule("div")
def div_one(m):
    a, b = m.inputs
    if is_scalar_const(b, 1):
        return fit(a, m)


@rule("neg")
def neg_neg(m):
    (x,) = m.inputs
    if x.op == "neg":
        return x.inputs[0]


@rule("exp", fast_math=True)
def exp_log(m):
    """exp(log x) -> x: numpy gives NaN for x < 0."""
    (x,) = m.inputs
    if x.op == "log":
        return x.inputs[0]


@rule("log", fast_math=True)
def log_exp(m):
    """log(exp x) -> x: numpy gives inf where exp(x) overflows."""
    (x,) = m.inputs
    if x.op == "exp":
        return x.inputs[0]


@rule("custom_vjp")
def inline_custom_gradient(m):
    """A custom-gradient node is its forward value; its rule matters only to autodiff, which
    runs before the passes (ir/ops/custom.py)."""
    return m.inputs[0]


@rule("cast")
def cast_same(m):
    (x,) = m.inputs
    if x.dtype == m.attrs["dtype"]:
        return x


# ---- shapes ---------------------------------------------------------------------------------
@rule("transpose")
def transpose_transpose(m):
    (x,) = m.inputs
    if x.op == "transpose":
        inner, outer = x.attrs["perm"], m.attrs["perm"]
        return F.transpose(x.inputs[0], tuple(inner[p] for p in outer))
    if m.attrs["perm"] == tuple(range(x.ndim)):
        return x


@rule("reshape")
def reshape_reshape(m):
    (x,) = m.inputs
    if x.op == "reshape":
        return F.reshape(x.inputs[0], m.shape)
    if x.shape == m.shape:
        return x


@rule("reshape")
def reshape_of_single_value_broadcast(m):
    """reshape(broadcast_to(v)) with one-element v -> broadcast_to(v as all-ones shape)."""
    (x,) = m.inputs
    if x.op == "broadcast_to" and x.inputs[0].size == 1:
        ones = F.reshape(x.inputs[0], (1,) * len(m.shape))
        return F.broadcast_to(ones, m.shape)
    if x.op == "full":
        return F.full(m.shape, x.attrs["value"], m.dtype)


@rule("broadcast_to")
def broadcast_broadcast(m):
    (x,) = m.inputs
    if x.op == "broadcast_to":
        return F.broadcast_to(x.inputs[0], m.shape)


@rule("broadcast_to")
def broadcast_scalar(m):
    (x,) = m.inputs
    if x.shape == m.shape:
        return x
    v = scalar_value(x)
    if v is not None:
        return F.full(m.shape, v, m.dtype)


@rule("sum")
def sum_of_broadcast(m):
    """sum(broadcast_to(x, S), A) = sum(x, A') * (copies), when A covers every broadcast axis
    (0 for no copies, and no product for bool, whose sum is a logical or)."""
    (b,) = m.inputs
    if b.op != "broadcast_to":
        return None
    x = b.inputs[0]
    shape, axes = b.shape, set(m.attrs["axes"])
    lead = len(shape) - x.ndim
    expanded = {i for i in range(len(shape))
                if i < lead or (x.shape[i - lead] == 1 and shape[i] != 1)}
    if not expanded <= axes:
        return None
    copies = math.prod(shape[i] for i in expanded)
    if copies == 0:  # a sum of nothing is 0, whatever x holds (inf * 0 would be NaN)
        return F.zeros(m.shape, m.dtype)
    inner = tuple(i - lead for i in sorted(axes) if i >= lead and i not in expanded)
    dropped = tuple(d for i, d in enumerate(x.shape) if i not in inner)
    # a half sum adds in float32 and rounds once: so do its sum of x and product by the
    # count here (a half count rounds, 257 copies to 256 in bfloat16, or overflows, 70000
    # is inf in float16; a half inner sum rounds before the product)
    half = is_half(m.dtype)
    if half:
        x = F.cast(x, "float32")
    y = F.sum(x, inner, keepdims=dropped != m.shape) if inner else x
    if m.dtype != np.bool_ and (isinstance(copies, Dim) or copies != 1):
        y = _times_count(y, copies, y.dtype)  # (a bool sum is `any`: copies change nothing)
    if half:
        y = F.cast(y, m.dtype)
    return fit(F.reshape(y, m.shape), m)


def _times_count(y, copies, dtype):
    if isinstance(copies, Dim):  # a count bound per call (shape polymorphism)
        count = F.full((), copies, dtype)
        try:
            positive = copies >= 1  # n, 2*n, n+1: never 0
        except InconclusiveDim:  # n-1 is 0 at n = 1: a sum of nothing is 0, and inf * 0
            positive = False     # NaN, so zero y first where the count is 0 (0 * 0 is 0)
        if not positive:
            y = F.where(F.greater(count, F.zeros((), dtype)), y, F.zeros((), dtype))
        return y * count
    return y * float(copies) if np.issubdtype(dtype, np.floating) else y * int(copies)


@rule("sum")
def sum_no_axes(m):
    """sum(x, axes=()) -> x, for integers and bools only: numpy adds each float element to
    the sum's +0.0, which makes a -0.0 +0.0 (1 / x is then inf, not -inf)."""
    (x,) = m.inputs
    if not m.attrs["axes"] and x.shape == m.shape and not is_float(m.dtype):
        return x


def _slab(node):
    """(axis, start, stop) when a pad_slice fills one contiguous slab along one axis."""
    a = node.attrs
    if any(st != 1 for st in a["steps"]):
        return None
    partial = [k for k, (lo, hi, d) in enumerate(zip(a["starts"], a["stops"], a["shape"]))
               if (lo, hi) != (0, d)]
    if len(partial) != 1:
        return None
    k = partial[0]
    return k, a["starts"][k], a["stops"][k]


@rule("add")
def add_adjacent_pad_slices(m):
    """pad(a) + pad(b) over adjacent slabs of one axis -> pad(concat(a, b)): the gradient of
    split (q, k, v) becomes one concatenation instead of zero-fills and adds."""
    a, b = m.inputs
    if a.op != "pad_slice" or b.op != "pad_slice" or a.attrs["shape"] != b.attrs["shape"]:
        return None
    sa, sb = _slab(a), _slab(b)
    if sa is None or sb is None or sa[0] != sb[0]:
        return None
    try:
        if sa[1] > sb[1]:
            (a, sa), (b, sb) = (b, sb), (a, sa)
    except InconclusiveDim:  # symbolic starts in no order known for every size
        return None
    if sa[2] != sb[1]:
        return None
    axis = sa[0]
    joined = F.concat([a.inputs[0], b.inputs[0]], axis)
    starts, stops = list(a.attrs["starts"]), list(a.attrs["stops"])
    starts[axis], stops[axis] = sa[1], sb[2]
    return F.pad_slice(joined, m.shape, starts, stops, a.attrs["steps"])


@rule("concat")
def concat_of_concat(m):
    axis = m.attrs["axis"]
    if not any(x.op == "concat" and x.attrs["axis"] == axis for x in m.inputs):
        return None
    parts = []
    for x in m.inputs:
        parts += x.inputs if x.op == "concat" and x.attrs["axis"] == axis else [x]
    return F.concat(parts, axis)


@rule("pad_slice")
def pad_slice_everything(m):
    (x,) = m.inputs
    if x.shape == m.shape:
        return x


@rule("check_index")
def check_index_of_known_index(m):
    """check_index(i) -> i where i's values are known when the plan is built (a constant, or
    an arange: the Embedding's positions) and all lie in bounds: the check could never fail,
    yet ran every step. An index out of bounds keeps its check, which refuses it at run
    time in the user's terms, as it would without this rule."""
    (idx,) = m.inputs
    values = _known_values(idx)
    if values is None:
        return None
    lowest = -m.attrs["length"] if m.attrs.get("negative", True) else 0
    if values.size and (values.min() < lowest or values.max() >= m.attrs["length"]):
        return None
    return fit(idx, m)


def _every_row_in_order(idx, rows) -> bool:
    """idx is arange(rows): each of a table's `rows` rows once, in order."""
    return idx.op == "arange" and idx.shape == (rows,) and \
        (idx.attrs["start"], idx.attrs["stop"], idx.attrs["step"]) == (0, rows, 1)


@rule("take")
def take_every_row(m):
    """take(table, arange(rows)) -> table: the gather of every row in order (the GPT's
    position embeddings at the full block) is the table itself."""
    table, idx = m.inputs
    if table.shape and _every_row_in_order(idx, table.shape[0]):
        return fit(table, m)
    return None


@rule("scatter_add")
def scatter_add_every_row(m):
    """scatter_add(g, arange(rows), rows) -> g: each row added once to a row of zeros (the
    position embeddings' gradient). Keeps a -0.0 that 0.0 + -0.0 would make +0.0, as
    `x + 0 -> x` does (equal as numbers)."""
    updates, idx = m.inputs
    if _every_row_in_order(idx, m.attrs["rows"]):
        return fit(updates, m)
    return None


def _known_values(node, max_elements: int = 1 << 16):
    """The values of a node computed from its attributes alone (a constant, an arange, a
    full), small enough to compute now; None for anything else."""
    if node.op == "constant":
        return np.asarray(node.attrs["value"])
    if node.op not in ("arange", "full") or node.type.symbolic or \
            holds_dim(node.attrs) or node.size > max_elements:
        return None
    return np.asarray(get_op(node.op).impl(**node.attrs))


@rule("where")
def where_of_one_value(m):
    """where(mask, stop_gradient(y), y) -> y: both branches are y's value (NaN too). The
    stop_gradient only shaped the gradient, which has been taken (graphs are differentiated
    before they are simplified, as custom_vjp's inlining needs)."""
    _, a, b = m.inputs
    if a.op == "stop_gradient":
        a = a.inputs[0]
    if a is b:
        return fit(b, m)
    return None


@rule("where")
def masked_softmax_gradient(m):
    """where(mask, 0, softmax_grad(y, g)) -> softmax_grad(y, g) when y = softmax(where(mask,
    -inf, x)) and the mask is causal (_keeps_one_per_row): y is exactly 0 where the mask
    holds, so the gradient there is already 0 (the causal-attention backward drops one pass
    over B*H*T*T values)."""
    cond, a, b = m.inputs
    if not is_scalar_const(a, 0) or b.op != "softmax_grad" or b.shape != m.shape:
        return None
    y = b.inputs[0]
    if y.op != "softmax" or y.inputs[0].op != "where":
        return None
    masked = y.inputs[0]
    if (masked.inputs[0] is cond and scalar_value(masked.inputs[1]) == float("-inf")
            and _keeps_one_per_row(cond, y)):
        return b
    return None


def _keeps_one_per_row(cond, y) -> bool:
    """Whether mask `cond` leaves every row of softmax y (along its axis) a position it
    does not mask. A row masked whole is softmax(-inf, ..., -inf) = NaN, softmax_grad is NaN
    there and only the where makes the gradient 0 (a padding row whose output is dropped
    later has a finite loss and a zero gradient). Provable for the causal mask
    ~tril_mask(T, S, k) with k >= 0 over its last axis: row i keeps columns 0..i+k."""
    return (cond.op == "logical_not" and cond.inputs[0].op == "tri"
            and cond.inputs[0].attrs["k"] >= 0 and y.attrs["axis"] in (-1, y.ndim - 1))


# ---- the pass -------------------------------------------------------------------------------
def simplify(graph, max_rounds: int = 8, fast_math: bool = False):
    rules = {op: [fn for fn in fns if fast_math or fn not in FAST_MATH_RULES]
             for op, fns in RULES.items()}
    for _ in range(max_rounds):
        fired = [0]

        def visit(node, inputs, new):
            m = Match(node, inputs)
            for fn in rules.get(node.op, ()):
                with new.building(), new.locations(node.locs, node.scope):
                    out = fn(m)
                if out is not None:
                    if out.type != node.type:
                        raise AssertionError(f"rule {fn.__name__} changed type {node.type} "
                                             f"-> {out.type}")
                    fired[0] += 1
                    return out
            return None

        graph = rebuild(graph, visit)[0]
        if not fired[0]:
            break
    return graph
