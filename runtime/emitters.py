"""Source emitters: the Python source a plan runs for one node, writing into a destination.

An emitter `emit(node, args, dst)` (or `emit(node, args, dst, scratch)` for ops that need
workspace) returns source lines that compute the node into the array named `dst`: with
numpy's `out=` arguments (the numpy emitters), or as a call of one of runtime.jit's numba
kernels or runtime.gemm's products (the `jit_*` emitters). Which op uses which emitter, and
when, is its lowering record (runtime/op_lowering.py); ops without an emitter run their
library implementation, which allocates its result.
"""
from __future__ import annotations

import functools

import numpy as np

from ir.ops.elementwise import GELU_TANH_3CK, GELU_TANH_C, GELU_TANH_CK

@functools.lru_cache(maxsize=None)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of ones: sums over a contiguous last (or first) axis run as one
    matrix-vector product, several times faster than np.add.reduce along a short axis."""
    v = np.ones(n, dtype)
    v.setflags(write=False)
    return v


def checked_row_sum(total, x):
    """total, x summed over its last axis as a product with ones (row_sum), where it is
    finite; else numpy's np.add.reduce(x, axis=-1). BLAS adds in another order than numpy,
    and where partial sums overflow the order decides between inf and NaN (a float32 row of
    3e38, 3e38, -3e38, -3e38: numpy's inf, BLAS's NaN). Only the small result is checked,
    not the input: one value per row."""
    if np.isfinite(total).all():
        return total
    return np.add.reduce(x, axis=-1)


def row_sum(x: str, node_in, keep: bool) -> str:
    """Source for the sum of `x` over its last axis (shape of node_in), keepdims or not."""
    n = node_in.shape[-1]
    dt = f"np.{node_in.dtype}"
    # the shape is read at run time: a split kernel runs this on half of the rows
    shape = f"{x}.shape[:-1] + (1,)" if keep else f"{x}.shape[:-1]"
    if n == 0:  # reshape(-1, 0) cannot infer the rows; rows of nothing sum to 0
        return f"np.zeros({shape}, {dt})"
    return f"_checked_row_sum({x}.reshape(-1, {n}) @ _ones({n}, {dt}), {x}).reshape({shape})"


UFUNCS = {  # op -> the numpy ufunc its emitter calls
    "add": "np.add", "sub": "np.subtract", "mul": "np.multiply", "div": "np.divide",
    "pow": "np.power", "maximum": "np.maximum", "minimum": "np.minimum",
    "neg": "np.negative", "exp": "np.exp", "log": "np.log", "sqrt": "np.sqrt",
    "tanh": "np.tanh", "sin": "np.sin", "cos": "np.cos", "abs": "np.abs", "sign": "np.sign",
    "lt": "np.less", "le": "np.less_equal", "gt": "np.greater", "ge": "np.greater_equal",
    "eq": "np.equal", "ne": "np.not_equal", "logical_and": "np.logical_and",
    "logical_or": "np.logical_or", "logical_not": "np.logical_not", "erf": "special.erf",
    "log1p": "np.log1p", "expm1": "np.expm1", "floor": "np.floor", "ceil": "np.ceil",
    "round": "np.round", "isnan": "np.isnan", "isfinite": "np.isfinite", "isinf": "np.isinf",
    "tan": "np.tan", "arcsin": "np.arcsin", "arccos": "np.arccos", "arctan": "np.arctan",
    "sinh": "np.sinh", "cosh": "np.cosh", "arcsinh": "np.arcsinh", "arccosh": "np.arccosh",
    "arctanh": "np.arctanh", "log2": "np.log2", "log10": "np.log10", "exp2": "np.exp2",
    "trunc": "np.trunc", "floor_divide": "np.floor_divide", "remainder": "np.remainder",
    "fmod": "np.fmod", "arctan2": "np.arctan2", "logaddexp": "np.logaddexp",
    "hypot": "np.hypot",
}
# GELU's tanh-form constants as source literals (their one home is ir/ops/elementwise.py)
GELU_C = repr(GELU_TANH_C)  # c = sqrt(2/pi)
_CK = repr(GELU_TANH_CK)  # c*k
_KC3 = repr(GELU_TANH_3CK)  # 3*c*k


def ufunc(name):
    def emit(node, args, dst):
        return [f"{name}({', '.join(args)}, out={dst})"]
    return emit


def relu(node, args, dst):
    return [f"np.maximum({args[0]}, 0, out={dst})"]


def rsqrt(node, args, dst):
    return [f"np.sqrt({args[0]}, out={dst})", f"np.reciprocal({dst}, out={dst})"]


def sigmoid(node, args, dst, scratch):
    # f / (1 + e) with e = exp(-|x|) and f = 1 for x >= 0, e below (ir/ops/elementwise.py):
    # f = max(x >= 0, e) since e <= 1; x is read before dst is first written (dst may be x)
    x, (e,) = args[0], scratch
    return [f"np.abs({x}, out={e})", f"np.greater_equal({x}, 0, out={dst})",
            f"np.negative({e}, out={e})", f"np.exp({e}, out={e})",
            f"np.maximum({dst}, {e}, out={dst})", f"np.add({e}, 1.0, out={e})",
            f"np.divide({dst}, {e}, out={dst})"]


def cast(node, args, dst):
    return [f"np.copyto({dst}, {args[0]}, casting='unsafe')"]


def where(node, args, dst):
    cond, a, b = args
    return [f"np.copyto({dst}, {b})", f"np.copyto({dst}, {a}, where={cond})"]


def gelu(node, args, dst):
    x = args[0]
    # inner = x * (c + c*k*x^2): one pass fewer than c * (x + k*x^3)
    return [f"np.multiply({x}, {x}, out={dst})", f"np.multiply({dst}, {_CK}, out={dst})",
            f"np.add({dst}, {GELU_C}, out={dst})", f"np.multiply({dst}, {x}, out={dst})",
            f"np.tanh({dst}, out={dst})", f"np.add({dst}, 1.0, out={dst})",
            # 0.5 before x: (1 + t) * x overflows for |x| above max / 2
            f"np.multiply({dst}, 0.5, out={dst})", f"np.multiply({dst}, {x}, out={dst})"]


def gelu_grad(node, args, dst, scratch):
    x, g = args
    slope, t = scratch
    return [f"np.multiply({x}, {x}, out={t})",
            f"np.multiply({t}, {_KC3}, out={slope})", f"np.add({slope}, {GELU_C}, out={slope})",
            f"np.multiply({t}, {_CK}, out={t})", f"np.add({t}, {GELU_C}, out={t})",
            f"np.multiply({t}, {x}, out={t})", f"np.tanh({t}, out={t})",
            f"np.multiply({t}, {t}, out={dst})", f"np.subtract(1.0, {dst}, out={dst})",
            f"np.multiply({dst}, {x}, out={dst})", f"np.multiply({dst}, {slope}, out={dst})",
            f"np.add({t}, 1.0, out={t})", f"np.add({dst}, {t}, out={dst})",
            f"np.multiply({dst}, 0.5, out={dst})", f"np.multiply({dst}, {g}, out={dst})"]


def _moments(node, x, dst, eps, n):
    """Lines that leave x - mean in dst and bind _rstd (keepdims shape) for the row."""
    mean = row_sum(x, node, True) if node.ndim >= 2 else \
        f"np.add.reduce({x}, axis=-1, keepdims=True)"
    return [f"_mu = {mean}",
            f"np.divide(_mu, {float(n)!r}, out=_mu)",
            f"np.subtract({x}, _mu, out={dst})",
            f"_rstd = np.einsum('...i,...i->...', {dst}, {dst})[..., None]",
            f"np.divide(_rstd, {float(n)!r}, out=_rstd)", f"np.add(_rstd, {eps!r}, out=_rstd)",
            "np.sqrt(_rstd, out=_rstd)", "np.reciprocal(_rstd, out=_rstd)"]


def layer_norm(node, args, dst):
    x, w, b = args
    n = max(node.shape[-1], 1)  # rows of no elements: nothing to scale, no division by 0
    return _moments(node, x, dst, node.attrs["eps"], n) + [
        f"np.multiply({dst}, _rstd, out={dst})", f"np.multiply({dst}, {w}, out={dst})",
        f"np.add({dst}, {b}, out={dst})"]


def layer_norm_grad(node, args, dst, scratch):
    x, w, g = args
    (gw,) = scratch
    n = max(node.shape[-1], 1)
    rows_a = row_sum(gw, node, True) if node.ndim >= 2 else \
        f"np.add.reduce({gw}, axis=-1, keepdims=True)"
    return _moments(node, x, dst, node.attrs["eps"], n) + [
        f"np.multiply({dst}, _rstd, out={dst})",  # xhat
        f"np.multiply({g}, {w}, out={gw})",
        f"_a = {rows_a}",
        f"_b = np.einsum('...i,...i->...', {gw}, {dst})[..., None]",
        f"np.divide(_b, {float(n)!r}, out=_b)",
        f"np.multiply({dst}, _b, out={dst})",
        f"np.subtract({gw}, {dst}, out={dst})",
        f"np.divide(_a, {float(n)!r}, out=_a)",
        f"np.subtract({dst}, _a, out={dst})",
        f"np.multiply({dst}, _rstd, out={dst})"]


def softmax_grad(node, args, dst):
    y, g = args
    axis = node.attrs["axis"]
    return [f"np.multiply({g}, {y}, out={dst})",
            f"np.subtract({g}, {_axis_sum(node, dst, axis)}, out={dst})",
            f"np.multiply({dst}, {y}, out={dst})"]


def matmul(node, args, dst):
    return [f"np.matmul({args[0]}, {args[1]}, out={dst})"]


def matmul_add(node, args, dst):
    a, b, *addends = args
    if node.inputs[-1].shape != node.shape:
        return [f"np.matmul({a}, {b}, out={dst})",
                *(f"np.add({dst}, {c}, out={dst})" for c in addends)]
    # dst may be the full-shape last addend's own buffer: the product (and bias) go to a
    # temporary first
    return [f"_p = np.matmul({a}, {b})", *(f"np.add(_p, {c}, out=_p)" for c in addends[:-1]),
            f"np.add(_p, {addends[-1]}, out={dst})"]


def softplus(node, args, dst):
    return [f"np.logaddexp({args[0]}, np.{node.dtype}(0), out={dst})"]


def cumsum(node, args, dst):
    axis, dtype = node.attrs["axis"], f"np.{node.dtype}"
    if not node.attrs["reverse"]:
        return [f"np.cumsum({args[0]}, axis={axis}, dtype={dtype}, out={dst})"]
    backwards = ", ".join([":"] * axis + ["::-1"])  # a reversed view of each, no copy
    return [f"np.cumsum({args[0]}[{backwards}], axis={axis}, dtype={dtype}, "
            f"out={dst}[{backwards}])"]


def reduce(ufunc):
    def emit(node, args, dst):
        a = node.attrs
        x = node.inputs[0]
        axes, nd = a["axes"], x.ndim
        numpys = (f"{ufunc}.reduce({args[0]}, axis={a['axes']!r}, keepdims={a['keepdims']}, "
                  f"out={dst})")
        if ufunc == "np.add" and nd >= 2 and 0 < len(axes) < nd and x.size:
            if axes == (nd - 1,):
                return [f"np.copyto({dst}, {row_sum(args[0], x, a['keepdims'])})"]
            if axes == tuple(range(len(axes))):  # leading axes: ones @ matrix
                m = 1
                for d in x.shape[:len(axes)]:
                    m *= d
                # a NaN or Inf from BLAS's order of adds is numpy's instead (checked_row_sum)
                return [f"np.matmul(_ones({m}, np.{x.dtype}), {args[0]}.reshape({m}, -1), "
                        f"out={dst}.reshape(-1))",
                        f"if not np.isfinite({dst}).all(): {numpys}"]
        return [numpys]
    return emit


def _axis_sum(node, x, axis):
    if axis == node.ndim - 1 and node.ndim >= 2:
        return row_sum(x, node, True)
    return f"np.add.reduce({x}, axis={axis}, keepdims=True)"


def _shift_by_max(x, axis, dst):
    """x minus its maximum along axis, into dst: the stable start of (log-)softmax."""
    # initial=-inf: softmax over an empty axis is an empty result, not a reduction error
    return (f"np.subtract({x}, np.max({x}, axis={axis}, keepdims=True, initial=-np.inf), "
            f"out={dst})")


def softmax(node, args, dst):
    axis = node.attrs["axis"]
    return [_shift_by_max(args[0], axis, dst), f"np.exp({dst}, out={dst})",
            f"np.divide({dst}, {_axis_sum(node, dst, axis)}, out={dst})"]


def log_softmax(node, args, dst):
    axis = node.attrs["axis"]
    return [_shift_by_max(args[0], axis, dst), f"_e = np.exp({dst})",
            f"np.subtract({dst}, np.log({_axis_sum(node, '_e', axis)}), out={dst})"]


def take(node, args, dst):
    return [f"np.take({args[0]}, {args[1]}, axis=0, out={dst})"]


def slice_index(attrs) -> str:
    """Source for the basic index of a slice/pad_slice node, e.g. '0:4:1, 2:6:1'."""
    return ", ".join(f"{s}:{e}:{k}"
                     for s, e, k in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def pad_slice(node, args, dst):
    # item assignment into dst does not rebind it, so dst may be a plan global
    return [f"{dst}.fill(0)", f"{dst}[{slice_index(node.attrs)}] = {args[0]}"]


def concat(node, args, dst):
    return [f"np.concatenate(({', '.join(args)},), axis={node.attrs['axis']}, out={dst})"]


def einsum(node, args, dst):
    return [f"np.einsum({node.attrs['spec']!r}, {', '.join(args)}, out={dst})"]


def _dynamic_window(node, operand_node, size, start):
    """Source lines for the run-time start `_s`, and the index of the window it opens: as
    ir/ops/index.py's _clamped_start (JAX's rule), a negative start counts from the end, then
    the start is clamped so that the window fits (on Python ints: no overflow)."""
    axis, length = node.attrs["axis"], operand_node.shape[node.attrs["axis"]]
    return ([f"_s = int({start})",
             f"_s = min(max(_s + {length} if _s < 0 else _s, 0), {length - size})"],
            ":, " * axis + f"_s:_s + {size}")


def dynamic_slice(node, args, dst):
    clamp, index = _dynamic_window(node, node.inputs[0], node.attrs["size"], args[1])
    return clamp + [f"np.copyto({dst}, {args[0]}[{index}])"]


def dynamic_update_slice(node, args, dst):
    size = node.inputs[1].shape[node.attrs["axis"]]
    clamp, index = _dynamic_window(node, node.inputs[0], size, args[2])
    # dst is the operand's own buffer when the operand dies here (its lowering record's inplace_operand)
    return [f"if not np.may_share_memory({dst}, {args[0]}): np.copyto({dst}, {args[0]})",
            *clamp, f"{dst}[{index}] = {args[1]}"]



# Collectives (runtime/collectives.py): the bucket's buffer is this node's destination; its
# wait is a view of it that completes the reduction.
def allreduce_start(node, args, dst):
    return [f"_collectives.start({dst}, ({''.join(a + ', ' for a in args)}))"]


# ---- calls of numba kernels (runtime.jit, runtime.gemm) -----------------------------------
def _flat(x):
    return f"{x}.reshape(-1)"


def batched4d(x, ndim):
    """Source of x (an array of `ndim` axes, 2 to 4) as a 4-D array, size-1 batch axes in
    front: the batched-product kernels (runtime.gemm, runtime.causal, runtime.tiles) take
    4-D operands and broadcast size-1 batch axes."""
    return x if ndim == 4 else f"{x}[{', '.join(['None'] * (4 - ndim))}]"


def _rows(x, n):
    return f"{x}.reshape(-1, {n})"


def jit_gelu(node, args, dst):
    return [f"_jit.gelu_tanh_rows({_flat(args[0])}, {_flat(dst)})"]


def jit_gelu_grad(node, args, dst):
    return [f"_jit.gelu_tanh_grad_rows({_flat(args[0])}, {_flat(args[1])}, {_flat(dst)})"]


def jit_layer_norm(node, args, dst):
    x, w, b = args
    n = node.shape[-1]
    return [f"_jit.layer_norm({_rows(x, n)}, {w}, {b}, {node.attrs['eps']!r}, {_rows(dst, n)})"]


def jit_layer_norm_grad(node, args, dst):
    x, w, g = args
    n = node.shape[-1]
    return [f"_jit.layer_norm_grad({_rows(x, n)}, {w}, {_rows(g, n)}, {node.attrs['eps']!r}, "
            f"{_rows(dst, n)})"]


def jit_layer_norm_wgrad(node, args, dst):
    x, g = args
    n = node.shape[-1]
    return [f"_jit.layer_norm_wgrad({_rows(x, n)}, {_rows(g, n)}, {node.attrs['eps']!r}, "
            f"{dst})"]


def _channels(x, node):
    """x (N, C, ...) as the (N, C, M) view the BatchNorm kernels take."""
    return f"{x}.reshape({node.inputs[0].shape[0]}, {node.inputs[0].shape[1]}, -1)"


def _channels_operand(x, node):
    """An operand as _channels' view, contiguous: the kernels flatten it to rows, which numba
    does only for a contiguous array, and an operand may be a strided view (BatchNorm1d of
    x.swapaxes(1, 2), a sliced input) that reshape leaves strided. A copy only then."""
    return f"np.ascontiguousarray({_channels(x, node)})"


def jit_batch_norm(node, args, dst):
    x, w, b = args
    return [f"_jit.batch_norm({_channels_operand(x, node)}, {w}, {b}, {node.attrs['eps']!r}, "
            f"{_channels(dst, node)})"]


def jit_batch_norm_grad(node, args, dst):
    x, w, g = args
    return [f"_jit.batch_norm_grad({_channels_operand(x, node)}, {w}, "
            f"{_channels_operand(g, node)}, {node.attrs['eps']!r}, {_channels(dst, node)})"]


def jit_batch_norm_wgrad(node, args, dst):
    x, g = args
    return [f"_jit.batch_norm_wgrad({_channels_operand(x, node)}, "
            f"{_channels_operand(g, node)}, {node.attrs['eps']!r}, {dst})"]


def jit_batch_moments(node, args, dst):
    return [f"_jit.batch_moments({_channels_operand(args[0], node)}, {dst})"]


def jit_scatter_add(node, args, dst):
    updates, idx = node.inputs
    n, cols = idx.size, int(np.prod(updates.shape[idx.ndim:], dtype=np.int64))
    return [f"_jit.scatter_add_rows({args[0]}.reshape({n}, {cols}), {_flat(args[1])}, "
            f"{dst}.reshape({node.shape[0]}, {cols}))"]


def jit_take(node, args, dst):
    table, idx = node.inputs
    cols = int(np.prod(table.shape[1:], dtype=np.int64))
    return [f"_jit.take_rows({args[0]}.reshape({table.shape[0]}, {cols}), {_flat(args[1])}, "
            f"{dst}.reshape({idx.size}, {cols}))"]


def jit_one_hot(node, args, dst):
    return [f"_jit.one_hot_rows({_flat(args[0])}, {_rows(dst, node.attrs['depth'])})"]


def jit_rows(kernel):
    def emit(node, args, dst):
        n = node.shape[-1]
        operands = ", ".join(_rows(a, n) for a in args)
        return [f"_jit.{kernel}({operands}, {_rows(dst, n)})"]
    return emit


def jit_matmul(node, args, dst):
    """runtime.gemm's kernels; they return 1 for layouts BLAS cannot read in place, and
    np.matmul then does the product."""
    a, b = node.inputs
    fn = "_sgemm" if node.dtype == np.float32 else "_dgemm"
    fallback = f"np.matmul({args[0]}, {args[1]}, out={dst})"
    if node.ndim == 2:
        call = f"_gemm.matmul2d({fn}, _threads, {args[0]}, {args[1]}, {dst})"
    elif b.ndim == 2:  # (..., m, k) @ (k, n) is one product over the flattened leading axes
        call = (f"_gemm.matmul2d({fn}, _threads, {_rows(args[0], a.shape[-1])}, {args[1]}, "
                f"{_rows(dst, node.shape[-1])})")
    else:
        call = (f"_gemm.matmul4d({fn}, _threads, {batched4d(args[0], a.ndim)}, "
                f"{batched4d(args[1], b.ndim)}, {batched4d(dst, node.ndim)})")
    return [f"{call} and {fallback}"]


def jit_matmul_add(node, args, dst):
    """runtime.gemm's product onto the bias row or onto the residual (beta = 1); np.matmul
    then the adds where BLAS cannot read the layout in place."""
    a = node.inputs[0]
    fn = "_sgemm" if node.dtype == np.float32 else "_dgemm"
    a2d, dst2d = (args[0], dst) if a.ndim == 2 else (_rows(args[0], a.shape[-1]),
                                                      _rows(dst, node.shape[-1]))
    if node.inputs[-1].shape == node.shape:  # onto a residual (runtime.gemm.matmul2d_acc)
        row = args[2] if len(args) == 4 else f"_gemm.NO_ROW[{node.dtype.name!r}]"
        full = args[-1] if a.ndim == 2 else _rows(args[-1], node.shape[-1])
        call = f"_gemm.matmul2d_acc({fn}, _threads, {a2d}, {args[1]}, {row}, {full}, {dst2d})"
    else:
        call = f"_gemm.matmul2d_add({fn}, _threads, {a2d}, {args[1]}, {args[2]}, {dst2d})"
    return [f"if {call}:", *(f"    {line}" for line in matmul_add(node, args, dst))]



# ---- runtime.reductions' kernels --------------------------------------------------------------
def jit_sum_squares(node, args, dst):
    """One runtime.reductions.sum_squares call per WIDTH operands (flattened, padded with an
    empty array), their float64 results added in order and rounded once into dst."""
    from .reductions import WIDTH  # (loads its kernels: the plan calls them anyway)
    empty = f"_reductions.EMPTY[{node.dtype.name!r}]"
    calls = []
    for k in range(0, len(args), WIDTH):
        chunk = [f"np.ravel({a})" for a in args[k:k + WIDTH]]
        chunk += [empty] * (WIDTH - len(chunk))
        calls.append(f"_reductions.sum_squares(({', '.join(chunk)}))")
    return [f"{dst}[()] = " + " + ".join(calls)]


# ---- views: source for a view of operand x (no computation, no buffer of its own) ----------
def view_reshape(node, x):
    return f"{x}.reshape({node.attrs['shape']!r})"


def view_transpose(node, x):
    return f"{x}.transpose({node.attrs['perm']!r})"


def view_broadcast_to(node, x):
    return f"np.broadcast_to({x}, {node.attrs['shape']!r})"


def view_slice(node, x):
    return f"{x}[{slice_index(node.attrs)}]"


def view_allreduce_wait(node, x):
    """The bucket's buffer once its reduction has completed (runtime/collectives.py)."""
    return f"_collectives.wait({x}, {node.attrs['reduce']!r})"


def view_same(node, x):
    """stop_gradient, custom_vjp, optimization_barrier: the (first) operand itself."""
    return x
