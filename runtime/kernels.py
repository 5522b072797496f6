"""Kernel emitters: the numpy source for one node, writing into a destination buffer.

`EMITTERS[op](node, args, dst)` returns source lines that compute the node into the array
named `dst` with numpy's `out=` arguments, so no temporary array is allocated. Ops without an
emitter fall back to their library implementation, which allocates its result.

`INPLACE_SAFE` ops compute each output element from the same-position input elements in one
pass, so their destination may be one of their (same-shaped, dying) operands.
"""
from __future__ import annotations

import functools

import numpy as np

@functools.lru_cache(maxsize=None)
def ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of ones: sums over a contiguous last (or first) axis run as one
    matrix-vector product, several times faster than np.add.reduce along a short axis."""
    v = np.ones(n, dtype)
    v.setflags(write=False)
    return v


def row_sum(x: str, node_in, keep: bool) -> str:
    """Source for the sum of `x` over its last axis (shape of node_in), keepdims or not."""
    n = node_in.shape[-1]
    dt = f"np.{node_in.dtype}"
    # the shape is read at run time: a split kernel runs this on half of the rows
    shape = f"{x}.shape[:-1] + (1,)" if keep else f"{x}.shape[:-1]"
    if n == 0:  # reshape(-1, 0) cannot infer the rows; rows of nothing sum to 0
        return f"np.zeros({shape}, {dt})"
    return f"({x}.reshape(-1, {n}) @ _ones({n}, {dt})).reshape({shape})"


_UFUNCS = {
    "add": "np.add", "sub": "np.subtract", "mul": "np.multiply", "div": "np.divide",
    "pow": "np.power", "maximum": "np.maximum", "minimum": "np.minimum",
    "neg": "np.negative", "exp": "np.exp", "log": "np.log", "sqrt": "np.sqrt",
    "tanh": "np.tanh", "sin": "np.sin", "cos": "np.cos", "abs": "np.abs", "sign": "np.sign",
    "lt": "np.less", "le": "np.less_equal", "gt": "np.greater", "ge": "np.greater_equal",
    "eq": "np.equal", "ne": "np.not_equal", "logical_and": "np.logical_and",
    "logical_or": "np.logical_or", "logical_not": "np.logical_not", "erf": "special.erf",
}
# "fused" (passes/fusion.py): its kernel reads every operand at the position it writes
INPLACE_SAFE = set(_UFUNCS) | {"relu", "rsqrt", "sigmoid", "cast", "fused"}
GELU_C = "0.7978845608028654"  # c = sqrt(2/pi); GELU's tanh form uses k = 0.044715
_CK = "0.035677408136300125"  # c*k
_KC3 = "0.10703222440890038"  # 3*k*c


def _ufunc(name):
    def emit(node, args, dst):
        return [f"{name}({', '.join(args)}, out={dst})"]
    return emit


def _relu(node, args, dst):
    return [f"np.maximum({args[0]}, 0, out={dst})"]


def _rsqrt(node, args, dst):
    return [f"np.sqrt({args[0]}, out={dst})", f"np.reciprocal({dst}, out={dst})"]


def _sigmoid(node, args, dst):
    return [f"np.multiply({args[0]}, 0.5, out={dst})", f"np.tanh({dst}, out={dst})",
            f"np.multiply({dst}, 0.5, out={dst})", f"np.add({dst}, 0.5, out={dst})"]


def _cast(node, args, dst):
    return [f"np.copyto({dst}, {args[0]}, casting='unsafe')"]


def _where(node, args, dst):
    cond, a, b = args
    return [f"np.copyto({dst}, {b})", f"np.copyto({dst}, {a}, where={cond})"]


def _gelu(node, args, dst):
    x = args[0]
    if node.attrs["approximate"] != "tanh":
        return None
    # inner = x * (c + c*k*x^2): one pass fewer than c * (x + k*x^3)
    return [f"np.multiply({x}, {x}, out={dst})", f"np.multiply({dst}, {_CK}, out={dst})",
            f"np.add({dst}, {GELU_C}, out={dst})", f"np.multiply({dst}, {x}, out={dst})",
            f"np.tanh({dst}, out={dst})", f"np.add({dst}, 1.0, out={dst})",
            # 0.5 before x: (1 + t) * x overflows for |x| above max / 2
            f"np.multiply({dst}, 0.5, out={dst})", f"np.multiply({dst}, {x}, out={dst})"]




def _gelu_grad(node, args, dst, scratch):
    if node.attrs["approximate"] != "tanh":
        return None
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
            f"np.multiply(_mu, {1.0 / n!r}, out=_mu)",
            f"np.subtract({x}, _mu, out={dst})",
            f"_rstd = np.einsum('...i,...i->...', {dst}, {dst})[..., None]",
            f"np.multiply(_rstd, {1.0 / n!r}, out=_rstd)", f"np.add(_rstd, {eps!r}, out=_rstd)",
            "np.sqrt(_rstd, out=_rstd)", "np.reciprocal(_rstd, out=_rstd)"]


def _layer_norm(node, args, dst):
    x, w, b = args
    n = max(node.shape[-1], 1)  # rows of no elements: nothing to scale, no division by 0
    return _moments(node, x, dst, node.attrs["eps"], n) + [
        f"np.multiply({dst}, _rstd, out={dst})", f"np.multiply({dst}, {w}, out={dst})",
        f"np.add({dst}, {b}, out={dst})"]


def _layer_norm_grad(node, args, dst, scratch):
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
        f"np.multiply(_b, {1.0 / n!r}, out=_b)",
        f"np.multiply({dst}, _b, out={dst})",
        f"np.subtract({gw}, {dst}, out={dst})",
        f"np.multiply(_a, {1.0 / n!r}, out=_a)",
        f"np.subtract({dst}, _a, out={dst})",
        f"np.multiply({dst}, _rstd, out={dst})"]


def _softmax_grad(node, args, dst):
    y, g = args
    axis = node.attrs["axis"]
    return [f"np.multiply({g}, {y}, out={dst})",
            f"np.subtract({g}, {_axis_sum(node, dst, axis)}, out={dst})",
            f"np.multiply({dst}, {y}, out={dst})"]


def _matmul(node, args, dst):
    return [f"np.matmul({args[0]}, {args[1]}, out={dst})"]


def _reduce(ufunc):
    def emit(node, args, dst):
        a = node.attrs
        x = node.inputs[0]
        axes, nd = a["axes"], x.ndim
        if ufunc == "np.add" and nd >= 2 and 0 < len(axes) < nd and x.size:
            if axes == (nd - 1,):
                return [f"np.copyto({dst}, {row_sum(args[0], x, a['keepdims'])})"]
            if axes == tuple(range(len(axes))):  # leading axes: ones @ matrix
                m = 1
                for d in x.shape[:len(axes)]:
                    m *= d
                return [f"np.matmul(_ones({m}, np.{x.dtype}), {args[0]}.reshape({m}, -1), "
                        f"out={dst}.reshape(-1))"]
        return [f"{ufunc}.reduce({args[0]}, axis={a['axes']!r}, keepdims={a['keepdims']}, "
                f"out={dst})"]
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


def _softmax(node, args, dst):
    axis = node.attrs["axis"]
    return [_shift_by_max(args[0], axis, dst), f"np.exp({dst}, out={dst})",
            f"np.divide({dst}, {_axis_sum(node, dst, axis)}, out={dst})"]


def _log_softmax(node, args, dst):
    axis = node.attrs["axis"]
    return [_shift_by_max(args[0], axis, dst), f"_e = np.exp({dst})",
            f"np.subtract({dst}, np.log({_axis_sum(node, '_e', axis)}), out={dst})"]


def _take(node, args, dst):
    return [f"np.take({args[0]}, {args[1]}, axis=0, out={dst})"]


def _slice_index(attrs) -> str:
    """Source for the basic index of a slice/pad_slice node, e.g. '0:4:1, 2:6:1'."""
    return ", ".join(f"{s}:{e}:{k}"
                     for s, e, k in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def _pad_slice(node, args, dst):
    # item assignment into dst does not rebind it, so dst may be a plan global
    return [f"{dst}.fill(0)", f"{dst}[{_slice_index(node.attrs)}] = {args[0]}"]


def _concat(node, args, dst):
    return [f"np.concatenate(({', '.join(args)},), axis={node.attrs['axis']}, out={dst})"]


def _einsum(node, args, dst):
    return [f"np.einsum({node.attrs['spec']!r}, {', '.join(args)}, out={dst})"]


EMITTERS = {name: _ufunc(fn) for name, fn in _UFUNCS.items()}
EMITTERS.update({
    "relu": _relu, "rsqrt": _rsqrt, "sigmoid": _sigmoid, "cast": _cast, "where": _where,
    "gelu": _gelu, "matmul": _matmul, "sum": _reduce("np.add"), "max": _reduce("np.maximum"),
    "softmax": _softmax, "log_softmax": _log_softmax, "take": _take, "pad_slice": _pad_slice,
    "concat": _concat, "einsum": _einsum, "gelu_grad": _gelu_grad,
    "layer_norm": _layer_norm, "layer_norm_grad": _layer_norm_grad,
    "softmax_grad": _softmax_grad,
})


# Collectives (runtime/collectives.py): the bucket's buffer is this node's destination; its
# wait is a view of it that completes the reduction.
def _allreduce_start(node, args, dst):
    return [f"_collectives.start({dst}, ({''.join(a + ', ' for a in args)}))"]


EMITTERS["allreduce_start"] = _allreduce_start
# While a bucket is in flight the plan lets MPI progress after each of these (longer) kernels.
PROGRESS_AFTER = {"matmul", "fused", "einsum", "layer_norm_grad", "softmax_grad", "gelu_grad"}
# Workspace buffers (of the node's own size) a kernel needs while it runs.
SCRATCH = {"gelu_grad": 2, "layer_norm_grad": 1}

# Ops whose result is a view of their first operand (no computation, no buffer).
VIEW_OPS = {"reshape", "transpose", "broadcast_to", "slice", "stop_gradient", "allreduce_wait"}
# Ops with no operands whose value is fixed: computed once when the plan is built.
CONSTANT_OPS = {"constant", "full", "arange", "tri"}


# ---- numba kernels (runtime.jit) ---------------------------------------------------------------
def _flat(x):
    return f"{x}.reshape(-1)"


def _rows(x, n):
    return f"{x}.reshape(-1, {n})"


def _jit_gelu(node, args, dst):
    return [f"_jit.gelu_tanh_rows({_flat(args[0])}, {_flat(dst)})"]


def _jit_gelu_grad(node, args, dst):
    return [f"_jit.gelu_tanh_grad_rows({_flat(args[0])}, {_flat(args[1])}, {_flat(dst)})"]


def _jit_layer_norm(node, args, dst):
    x, w, b = args
    n = node.shape[-1]
    return [f"_jit.layer_norm({_rows(x, n)}, {w}, {b}, {node.attrs['eps']!r}, {_rows(dst, n)})"]


def _jit_layer_norm_grad(node, args, dst):
    x, w, g = args
    n = node.shape[-1]
    return [f"_jit.layer_norm_grad({_rows(x, n)}, {w}, {_rows(g, n)}, {node.attrs['eps']!r}, "
            f"{_rows(dst, n)})"]


def _jit_layer_norm_wgrad(node, args, dst):
    x, g = args
    n = node.shape[-1]
    return [f"_jit.layer_norm_wgrad({_rows(x, n)}, {_rows(g, n)}, {node.attrs['eps']!r}, "
            f"{dst})"]


def _jit_rows(kernel):
    def emit(node, args, dst):
        n = node.shape[-1]
        operands = ", ".join(_rows(a, n) for a in args)
        return [f"_jit.{kernel}({operands}, {_rows(dst, n)})"]
    return emit


def _jit_matmul(node, args, dst):
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
        pad = lambda x, nd: x if nd == 4 else f"{x}[{', '.join(['None'] * (4 - nd))}]"
        call = (f"_gemm.matmul4d({fn}, _threads, {pad(args[0], a.ndim)}, "
                f"{pad(args[1], b.ndim)}, {pad(dst, node.ndim)})")
    return [f"{call} and {fallback}"]


JIT_EMITTERS = {
    "gelu": _jit_gelu, "matmul": _jit_matmul, "gelu_grad": _jit_gelu_grad, "layer_norm": _jit_layer_norm,
    "layer_norm_grad": _jit_layer_norm_grad, "layer_norm_wgrad": _jit_layer_norm_wgrad,
    "softmax": _jit_rows("softmax"),
    "log_softmax": _jit_rows("log_softmax"), "softmax_grad": _jit_rows("softmax_grad"),
}
# op -> the runtime.jit kernel its emitter calls
JIT_KERNELS = {"gelu": "gelu_tanh_rows", "gelu_grad": "gelu_tanh_grad_rows", "matmul": "gemm"}
JIT_KERNELS.update({op: op for op in JIT_EMITTERS if op not in JIT_KERNELS})


def jit_emitter(node):
    """The numba kernel's emitter for this node, or None where it does not apply (other
    dtypes, exact GELU, reductions over an axis other than the last)."""
    emit = JIT_EMITTERS.get(node.op)
    if emit is None or node.dtype not in (np.float32, np.float64) or node.ndim == 0:
        return None
    if node.op in ("gelu", "gelu_grad") and node.attrs["approximate"] != "tanh":
        return None
    if "axis" in node.attrs and node.attrs["axis"] != node.ndim - 1:
        return None
    if node.size == 0:
        return None
    if node.op == "matmul":
        from . import gemm  # imports numba
        return emit if gemm.supports(node) and gemm.available() else None
    return emit


def scratch_buffers(node, jit: bool) -> int:
    return 0 if jit and jit_emitter(node) else SCRATCH.get(node.op, 0)


def view_expression(node, x):
    a = node.attrs
    if node.op == "reshape":
        return f"{x}.reshape({a['shape']!r})"
    if node.op == "transpose":
        return f"{x}.transpose({a['perm']!r})"
    if node.op == "broadcast_to":
        return f"np.broadcast_to({x}, {a['shape']!r})"
    if node.op == "slice":
        return f"{x}[{_slice_index(a)}]"
    if node.op == "allreduce_wait":
        return f"_collectives.wait({x}, {a['reduce']!r})"
    return x


def can_emit(node, jit: bool = False) -> bool:
    if node.op == "fused" or (jit and jit_emitter(node) is not None):
        return True
    emitter = EMITTERS.get(node.op)
    if emitter is None:
        return False
    if node.op in ("gelu", "gelu_grad") and node.attrs["approximate"] != "tanh":
        return False
    if node.op in ("layer_norm", "layer_norm_grad") and node.ndim == 0:
        return False
    return node.ndim > 0 or node.op not in ("where",)


def needs_distinct_output(node) -> bool:
    """Ops that read an operand after writing part of the output (matmul, reductions,
    multi-statement kernels) must not write over their operands."""
    return node.op not in INPLACE_SAFE


__all__ = ["EMITTERS", "PROGRESS_AFTER", "JIT_EMITTERS", "JIT_KERNELS", "jit_emitter",
           "scratch_buffers", "SCRATCH", "INPLACE_SAFE", "VIEW_OPS", "CONSTANT_OPS",
           "view_expression", "can_emit", "needs_distinct_output", "np"]
