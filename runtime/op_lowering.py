"""One lowering record per op: everything the compiled runtime knows about running it.

The op library (ir/ops/) defines what an op computes; its record here says how a plan runs
it: the numpy source emitter (runtime/emitters.py), whether its destination may be one of its
operands, the workspace it needs, whether it is a view or a constant, its scalar expression
inside a fused kernel (runtime/fusion.py, runtime/kernelgen.py), the numba kernel that
replaces its emitter, and how a two-way split cuts it (runtime/lowering.py). An op without an
emitter runs its library implementation, which allocates its result; its record says why.
tests/test_lowering_coverage.py checks that every registered op has a record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ir.ops.elementwise import is_tanh_approximation
from ir.ops.registry import MOVES_DATA_ONLY
from ir.types import is_half

from . import control_flow as CF
from . import emitters as E

FORMS = ("kernel", "view", "constant", "input", "cluster")


@dataclass(frozen=True)
class Lowering:
    op: str
    # kernel: computed by `emit` (or `jit_emit`) into its buffer, else by its library
    # implementation; view: `view` of its first operand; constant: computed once when the plan
    # is built; input: a parameter of the plan; cluster: a fused node's generated kernel
    form: str = "kernel"
    emit: Callable | None = None  # (node, args, dst[, scratch]) -> numpy source lines
    # one pass reading each operand at the position it writes: dst may be a dying operand
    inplace_safe: bool = False
    # not elementwise, but may write its result over this operand (by position) when that
    # operand dies at it: the update of a KV cache writes into the cache's own buffer
    inplace_operand: int | None = None
    scratch: int = 0  # workspace buffers of the node's own size its numpy emitter needs
    view: Callable | None = None  # (node, x) -> source of the view
    # its scalar expression in a fused kernel: a format string over the operands' expressions
    # ({t}: the result's numpy type; helpers from runtime.jit) or a callable
    # (operands, attrs, t) -> str; None: never a member of a fused cluster
    scalar_expr: str | Callable | None = None
    program_attrs: tuple = ()  # attributes a fused program records for it
    jit_emit: Callable | None = None  # numba kernel call (runtime.jit, runtime.gemm)
    jit_kernel: str | None = None  # the runtime.jit kernel jit_emit calls (warmed at build)
    jit_dtypes: tuple = ("float32", "float64")  # the result dtypes jit_emit handles
    # the nodes jit_emit handles, where that is its own rule (others use `emit`); reductions
    # to a single value are among them, which the general rule (jit_emitter) excludes
    jit_supports: Callable | None = None
    # how a two-way split cuts it: "elementwise" (any axis 0), "rows" (reduces the last axis;
    # needs 2-D), "axis" (reduces attrs["axis"]; not when that is axis 0), None: not split
    split: str | None = None
    # the nodes the emitters, the numba kernel and the fused expression handle (e.g. GELU's
    # tanh form only); other nodes of this op run its library implementation
    supports: Callable | None = None
    # a long kernel: while an all-reduce bucket is in flight, the plan lets MPI progress
    # after it (runtime/render.py)
    mpi_progress: bool = False
    reason: str = ""  # why an op without a numpy emitter runs its library implementation
    # (node) -> what a plan calls instead of the library implementation, built once per
    # plan (control flow: runtime/control_flow.py runs the regions' own plans)
    runner: Callable | None = None

    def handles(self, node) -> bool:
        return self.supports is None or self.supports(node)

    def scalar(self, operands, attrs, t) -> str:
        if callable(self.scalar_expr):
            return self.scalar_expr(operands, attrs, t)
        return self.scalar_expr.format(*operands, t=t)


def _tanh_form(node) -> bool:
    return is_tanh_approximation(node.attrs["approximate"])


def _not_scalar(node) -> bool:
    return node.ndim > 0


def _cast_scalar(operands, attrs, t):
    dtype = np.dtype(attrs["dtype"])
    return f"({operands[0]} != 0)" if dtype == np.bool_ else f"np.{dtype.name}({operands[0]})"


# scalar expressions of the ufunc ops that fused kernels implement
_SCALAR = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "neg": "(-{0})", "exp": "fast_exp({0})", "log": "np.log({0})", "sqrt": "np.sqrt({0})",
    "tanh": "fast_tanh({0})", "abs": "abs({0})",
    "maximum": "maximum({0}, {1})", "minimum": "minimum({0}, {1})",
    "lt": "({0} < {1})", "le": "({0} <= {1})", "gt": "({0} > {1})", "ge": "({0} >= {1})",
    "eq": "({0} == {1})", "ne": "({0} != {1})",
    "logical_not": "(not {0})", "logical_and": "({0} and {1})", "logical_or": "({0} or {1})",
    # exact in numba as in numpy (its tan, arcsin, ..., libm's, may differ from numpy's in
    # the last bit, and its float // and % from numpy's at a zero divisor: those stay numpy's)
    "trunc": "np.trunc({0})", "isinf": "np.isinf({0})",
}

_RECORDS = [
    *(Lowering(op, emit=E.ufunc(fn), inplace_safe=True, split="elementwise",
               scalar_expr=_SCALAR.get(op)) for op, fn in E.UFUNCS.items()),
    Lowering("relu", emit=E.relu, inplace_safe=True, split="elementwise",
             scalar_expr="maximum({0}, {t}(0.0))"),
    Lowering("rsqrt", emit=E.rsqrt, inplace_safe=True, split="elementwise",
             scalar_expr="({t}(1.0) / np.sqrt({0}))"),
    Lowering("sigmoid", emit=E.sigmoid, scratch=1, inplace_safe=True, split="elementwise",
             scalar_expr="fast_sigmoid({0})"),
    Lowering("softplus", emit=E.softplus, inplace_safe=True, split="elementwise"),
    Lowering("cumsum", emit=E.cumsum),
    Lowering("cast", emit=E.cast, inplace_safe=True, split="elementwise",
             scalar_expr=_cast_scalar, program_attrs=("dtype",)),
    Lowering("where", emit=E.where, split="elementwise", scalar_expr="({1} if {0} else {2})",
             supports=_not_scalar),
    Lowering("gelu", emit=E.gelu, split="elementwise", scalar_expr="gelu_tanh({0})",
             program_attrs=("approximate",), jit_emit=E.jit_gelu, jit_kernel="gelu_tanh_rows",
             supports=_tanh_form),
    Lowering("gelu_grad", emit=E.gelu_grad, scratch=2, split="elementwise", mpi_progress=True,
             scalar_expr="gelu_tanh_grad({0}, {1})", program_attrs=("approximate",),
             jit_emit=E.jit_gelu_grad, jit_kernel="gelu_tanh_grad_rows", supports=_tanh_form),
    Lowering("matmul", emit=E.matmul, jit_emit=E.jit_matmul, jit_kernel="gemm",
             mpi_progress=True),
    # written by the fuse stage for add(matmul(a, b), bias) and for a residual added to a
    # product (runtime/fusion.py); the result may take over a full-shape last addend's buffer
    Lowering("matmul_add", emit=E.matmul_add, inplace_operand=-1, jit_emit=E.jit_matmul_add,
             jit_kernel="gemm", mpi_progress=True),
    Lowering("sum", emit=E.reduce("np.add")),
    # written by graphc.optim.global_norm; runtime.reductions.sum_squares with numba
    Lowering("sum_squares", jit_emit=E.jit_sum_squares, jit_kernel="reductions",
             jit_supports=lambda node: True,
             reason="without numba: a float64 dot per operand, then one value (its library "
                    "implementation allocates only that scalar and the float64 copies)"),
    Lowering("max", emit=E.reduce("np.maximum")),
    # a softmax over the last axis may end a fused cluster (runtime/fusion.py)
    Lowering("softmax", emit=E.softmax, split="axis", program_attrs=("axis",),
             jit_emit=E.jit_rows("softmax"), jit_kernel="softmax"),
    Lowering("log_softmax", emit=E.log_softmax, split="axis",
             jit_emit=E.jit_rows("log_softmax"), jit_kernel="log_softmax"),
    Lowering("softmax_grad", emit=E.softmax_grad, split="axis", mpi_progress=True,
             jit_emit=E.jit_rows("softmax_grad"), jit_kernel="softmax_grad"),
    Lowering("layer_norm", emit=E.layer_norm, split="rows", jit_emit=E.jit_layer_norm,
             jit_kernel="layer_norm", supports=_not_scalar),
    Lowering("layer_norm_grad", emit=E.layer_norm_grad, scratch=1, split="rows",
             mpi_progress=True,
             jit_emit=E.jit_layer_norm_grad, jit_kernel="layer_norm_grad",
             supports=_not_scalar),
    Lowering("layer_norm_wgrad", jit_emit=E.jit_layer_norm_wgrad, jit_kernel="layer_norm_wgrad",
             reason="without numba a sum over rows into a weight-shaped result; its library "
                    "implementation is that numpy code already"),
    *(Lowering(op, jit_emit=getattr(E, f"jit_{op}"), jit_kernel=op,
               jit_supports=lambda node: node.inputs[0].size > 0,  # (no values: numpy's)
               reason="without numba: its library implementation (numpy's reductions over "
                      "the batch and spatial axes) allocates its result")
      for op in ("batch_norm", "batch_norm_grad", "batch_norm_wgrad", "batch_moments")),
    Lowering("take", emit=E.take, jit_emit=E.jit_take, jit_kernel="take_rows"),
    Lowering("pad_slice", emit=E.pad_slice),
    Lowering("concat", emit=E.concat),
    Lowering("einsum", emit=E.einsum, mpi_progress=True),
    Lowering("dynamic_slice", emit=E.dynamic_slice),
    Lowering("dynamic_update_slice", emit=E.dynamic_update_slice, inplace_operand=0),
    Lowering("one_hot", jit_emit=E.jit_one_hot, jit_kernel="one_hot_rows",
             jit_dtypes=("bool", "int32", "int64", "float32", "float64"),
             reason="without numba: a broadcast comparison of integer targets, once per step; "
                    "its allocation is small"),
    Lowering("scatter_add", jit_emit=E.jit_scatter_add, jit_kernel="scatter_add_rows",
             reason="without numba: np.add.at into a zeroed result (embedding gradients) has "
                    "no out= form"),
    Lowering("scatter_max", reason="np.maximum.at into rows of the dtype's lowest value "
                                   "(segment_max, scatter_reduce) has no out= form"),
    Lowering("scatter_prod", reason="np.multiply.at into rows of ones (segment_prod, "
                                    "scatter_reduce) has no out= form"),
    Lowering("check_index", reason="a comparison of the index array's extremes, then its "
                                   "copy; its library implementation raises numpy's message"),
    Lowering("check_offsets", reason="embedding_bag's offsets compared with their neighbours "
                                     "and the input's length, then copied; its library "
                                     "implementation raises the eager check's message"),
    Lowering("argsort", reason="a stable sort (np.argsort, kind='stable') has no out= form; "
                               "its library implementation allocates the index array"),
    Lowering("argsort_unstable", reason="np.argsort's default sort has no out= form; its "
                                        "library implementation allocates the index array"),
    Lowering("searchsorted", reason="np.searchsorted has no out= form (one call per row of "
                                    "a batched search); its library implementation allocates "
                                    "the index array"),
    *(Lowering(op, reason="the CTC alpha (and beta) recursion: a numpy loop over time, "
                          "vectorised over the batch, as its library implementation runs it")
      for op in ("ctc_loss", "ctc_loss_grad")),
    Lowering("dropout_mask", reason="draws from a generator seeded by its operand on every "
                                    "call, as its library implementation does"),
    *(Lowering(op, reason="seeds numpy's generator with its key operand on every call, as "
                          "its library implementation does (ir/ops/random.py)")
      for op in ("random_key", "random_split", "random_fold_in", "random_uniform",
                 "random_normal", "random_randint", "random_permutation", "random_poisson")),
    *(Lowering(op, reason="scipy.special's inverse incomplete gamma function (and its "
                          "derivative's differences), as its library implementation calls it")
      for op in ("gamma_log_quantile", "gamma_log_quantile_grad")),
    Lowering("cov_factor", reason="numpy.linalg's cholesky, eigh or svd per matrix, as its "
                                  "library implementation calls them"),
    Lowering("erfinv", reason="scipy.special.erfinv allocates its result; its library "
                              "implementation is that call"),
    Lowering("reshape", form="view", view=E.view_reshape),
    Lowering("transpose", form="view", view=E.view_transpose),
    Lowering("broadcast_to", form="view", view=E.view_broadcast_to),
    Lowering("slice", form="view", view=E.view_slice),
    Lowering("stop_gradient", form="view", view=E.view_same),
    # simplify inlines it; under pipeline O0 it is its forward value (ir/ops/custom.py)
    Lowering("custom_vjp", form="view", view=E.view_same),
    Lowering("optimization_barrier", form="view", view=E.view_same),
    *(Lowering(op, form="constant") for op in ("constant", "full", "arange", "tri")),
    Lowering("input", form="input"),
    # its kernel reads every operand at the position it writes (runtime/kernelgen.py)
    Lowering("fused", form="cluster", inplace_safe=True, split="elementwise",
             mpi_progress=True),
    # collectives (runtime/collectives.py): a bucket is packed into its own buffer and
    # reduced in place; the wait is a view of that buffer once the reduction is complete
    Lowering("allreduce_start", emit=E.allreduce_start),
    Lowering("allreduce_wait", form="view", view=E.view_allreduce_wait),
    # control flow (ir/ops/control_flow.py): the node's tuple of results is what its runner
    # returns; tuple_get picks one without copying
    Lowering("scan", runner=CF.ScanRunner,
             reason="runs its body's own plan per step (runtime/control_flow.py)"),
    Lowering("cond", runner=CF.CondRunner,
             reason="runs the plan of the branch its predicate picks"),
    Lowering("while_loop", runner=CF.WhileRunner,
             reason="runs its condition's and its body's plans until the condition is false"),
    Lowering("tuple_get", form="view", view=lambda node, x: f"{x}[{node.attrs['index']}]"),
    # (a tuple_get of a fused node is that node's kernel's result instead: is_fused_result)
    Lowering("allreduce", reason="a blocking reduction of the operand across ranks: its library "
                                 "implementation calls the registered communicator"),
    Lowering("vmap_reduce", reason="a psum over a vmap axis that vmap left unbatched (every "
                                   "example's operand the same): axis_size times it, or it"),
]
LOWERINGS: dict[str, Lowering] = {r.op: r for r in _RECORDS}
assert len(LOWERINGS) == len(_RECORDS), "an op with two lowering records"
assert all(r.form in FORMS for r in _RECORDS)


def lowering_of(op: str) -> Lowering:
    """The op's record; an op without one runs its library implementation (the coverage test
    fails on it)."""
    record = LOWERINGS.get(op)
    return record if record is not None else Lowering(op, reason="no lowering record")


def is_view(node) -> bool:
    return lowering_of(node.op).form == "view" and not is_fused_result(node)


def is_fused_result(node) -> bool:
    """A result of a fused node with several: written by that node's kernel into storage of
    its own (runtime/memory.py), not a view of a tuple."""
    return node.op == "tuple_get" and node.inputs[0].op == "fused"


def is_constant(node) -> bool:
    """No operands and a fixed value: computed once when the plan is built."""
    return lowering_of(node.op).form == "constant"


def inplace_safe(node) -> bool:
    return lowering_of(node.op).inplace_safe


def inplace_operand(node) -> int | None:
    return lowering_of(node.op).inplace_operand


def view_expression(node, x) -> str:
    return lowering_of(node.op).view(node, x)


def has_fused_expression(node) -> bool:
    """Whether the node may be a member of a fused cluster (it has a scalar expression)."""
    record = lowering_of(node.op)
    return record.scalar_expr is not None and record.handles(node)


def computes_on_half(node) -> bool:
    """A node that computes on float16/bfloat16 values (not only moves them). The fuse stage
    turns it into float32 kernels between casts (runtime/widen.py); those it leaves (ops
    that fix their own dtype, collectives) run their library implementation, which computes
    in float32 and rounds once (ir/ops/registry.py): numba has no bfloat16."""
    return node.op not in MOVES_DATA_ONLY and (
        is_half(node.dtype) or any(is_half(i.dtype) for i in node.inputs))


def jit_emitter(node):
    """The numba kernel's emitter for this node, or None where it does not apply (other
    dtypes, exact GELU, reductions over an axis other than the last)."""
    record = lowering_of(node.op)
    if computes_on_half(node):
        return None
    if record.jit_supports is not None:
        return record.jit_emit if (node.dtype in record.jit_dtypes
                                   and record.jit_supports(node)) else None
    if record.jit_emit is None or node.dtype not in record.jit_dtypes or node.ndim == 0:
        return None
    if not record.handles(node):
        return None
    if "axis" in node.attrs and node.attrs["axis"] != node.ndim - 1:
        return None
    if node.size == 0:
        return None
    if node.op in ("matmul", "matmul_add"):
        from . import gemm  # imports numba
        return record.jit_emit if gemm.supports(node) and gemm.available() else None
    return record.jit_emit


def can_emit(node, jit: bool = False) -> bool:
    """Whether the node is computed into a buffer the memory plan provides (otherwise its
    library implementation allocates the result)."""
    record = lowering_of(node.op)
    if record.form == "cluster" or (jit and jit_emitter(node) is not None):
        return True
    if computes_on_half(node):
        return False
    return record.emit is not None and record.handles(node)


def scratch_buffers(node, jit: bool) -> int:
    return 0 if jit and jit_emitter(node) else lowering_of(node.op).scratch


def emit_numpy(node, args, dst, scratch=()) -> list:
    """The numpy emitter's source lines for the node into `dst`."""
    emit = lowering_of(node.op).emit
    return emit(node, args, dst, scratch) if scratch else emit(node, args, dst)
