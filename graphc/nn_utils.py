"""`gc.nn.utils`: torch.nn.utils' gradient clipping for the eager, PyTorch-style loop

    loss.backward()
    gc.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()

(A functional or compiled step clips with gc.optim.clip_by_global_norm or an optimiser's
clip_norm=, the same factor.) Also parameters_to_vector / vector_to_parameters, and
`gc.nn.utils.rnn` (pad_sequence, pack_padded_sequence ...: graphc/rnn_utils.py).
"""
from __future__ import annotations

import math

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.ops.registry import SymbolicValue
from ir.types import result_dtype
from runtime.eager import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def _gradients(parameters, name):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    elif isinstance(parameters, dict):
        parameters = list(parameters.values())
    out = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise GraphcError(f"{name}: expected tensors or Parameters (model.parameters()), "
                              f"got {a_type(p)}", (user_location(),))
        if p.grad is not None:
            out.append(p)
    return out


def _float_setting(what, value):
    """A clipping setting as torch reads it, float(value): a number, a string or bytes
    float() parses ('inf', torch's documented spelling of the inf-norm, or '2'), a Decimal,
    an object with __float__, a one-element tensor. Only a complex value is refused before
    float(), which takes a numpy complex scalar, dropping its imaginary part (and a torch
    complex tensor whose imaginary part is 0); float()'s own errors are the one line too."""
    dtype = getattr(value, "dtype", None)
    # (numpy's dtypes have .kind 'c', torch's .is_complex; a symbolic value has no number)
    if not (isinstance(value, (complex, SymbolicValue)) or getattr(dtype, "kind", None) == "c"
            or getattr(dtype, "is_complex", False) is True):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError, RuntimeError):
            pass
    got = " ".join(repr(value).split())  # (an array's repr spans lines)
    got = got if len(got) <= 60 else got[:57] + "..."
    raise GraphcError(f"{what} must be a number, got {got}", (user_location(),))


def _writeable_grad(p):
    """p.grad as an array to change in place: a .grad the user assigned as a numpy scalar
    (`p.grad = arr.sum()`) or a read-only array is replaced by a writeable copy, since
    `g *= f` on a scalar rebinds the local name only (the .grad stayed unclipped) and
    np.clip(out=) refuses one."""
    g = p.grad
    if not (isinstance(g, np.ndarray) and g.flags.writeable):
        g = p.grad = np.array(g)
    return g


def _scale(p, factor):
    """p.grad times the clip coefficient `factor` (a 0-d array of the total norm's dtype), as
    torch's mul_ by a 0-d tensor: in the gradient's compute dtype (_compute_dtype: float32
    for a half gradient, which a float32 coefficient is not rounded to float16 for), the
    product rounded to the gradient's dtype."""
    g = p.grad
    if isinstance(g, Tensor):  # a gradient kept differentiable (backward(create_graph=True))
        p.grad = g * float(factor)
    else:  # in place, as torch's mul_
        g = _writeable_grad(p)
        compute = _compute_dtype(g.dtype)  # (a float32 or float64 gradient's own: no copy)
        with np.errstate(invalid="ignore"):  # (an inf gradient times 0: NaN, torch's, silently)
            np.multiply(g.astype(compute, copy=False), np.asarray(factor).astype(compute),
                        out=g)


def _compute_dtype(dtype) -> np.dtype:
    """The dtype torch's CPU kernels compute a `dtype` tensor's elementwise ops and
    reductions in (its opmath type): float64's own, float32 for float32, float16 and
    bfloat16."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _rounded(value, dtype) -> np.ndarray:
    """A float64 `value` rounded to `dtype`, as a torch kernel writing it there: past the
    dtype's range it is inf (silently, as torch's), below it 0."""
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(value, np.float64).astype(dtype)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None):
    """torch.nn.utils.clip_grad_norm_: scale the parameters' gradients (those that have one)
    by min(1, max_norm / (total + 1e-6)), `total` the norm of all of them together (the
    norm_type-norm of their norms, any order torch's takes: inf the largest magnitude, -inf
    the smallest, 0 the count of nonzeros, a negative order's sum(|g|**p)**(1/p), NaN a NaN
    total and factor). Returns `total`, a 0-d tensor of the gradients' dtype (float32 for
    float16 with bfloat16, as torch's; 0 when no parameter has a gradient). `foreach` is
    accepted and ignored.

    In torch's dtypes (torch's _get_total_norm and _clip_grads_with_norm_): each gradient's
    norm is rounded to that gradient's dtype (a float16 one's to float16's 3 digits, inf past
    65504), their norms' norm computed in the dtype they promote to, the coefficient in that
    dtype as torch's reciprocal(total + 1e-6) * max_norm, and each gradient multiplied by it
    in its compute dtype. The sums are float64 ones rounded to torch's compute dtype
    (_vector_norm), which torch accumulates in (float32 for float32 and half gradients: a
    float32 gradient's squares past float32's range make the norm inf, as torch's; one
    element's norm is its magnitude, as torch's, 1e30 not inf); torch's
    own summation order is not reproduced, so the total is torch's but for the rounding of
    torch's float32 sums: about an ulp for small gradients, tens to hundreds of ulps for 10^5
    elements (orders other than 2 most), and a half gradient's norm may round an ulp of its
    dtype apart (thousands of float32 ulps in the total); bit for bit where sums are exact."""
    max_norm = _float_setting("clip_grad_norm_: max_norm", max_norm)
    norm_type = _float_setting("clip_grad_norm_: norm_type", norm_type)
    with_grad = _gradients(parameters, "clip_grad_norm_")
    if not with_grad:
        return Tensor(np.zeros((), np.float32))
    # (a numpy grad's own .data is a buffer, which a bfloat16 array cannot give)
    grads = [np.asarray(p.grad.data if isinstance(p.grad, Tensor) else p.grad)
             for p in with_grad]
    dtype = result_dtype(*[g.dtype for g in grads])  # (float16 with bfloat16: float32)
    if norm_type < 0 or norm_type == math.inf:  # (-inf too; not NaN)
        empty = next((g.shape for g in grads if g.size == 0), None)
        if empty is not None:  # a negative or infinite order's norm of nothing has no
            # value (no identity): torch's refusal
            raise GraphcError(f"clip_grad_norm_: norm_type={norm_type} has no norm of an "
                              f"empty gradient (a parameter of shape {empty}), as torch "
                              "refuses it: set that parameter's .grad to None or use a "
                              "finite norm_type >= 0", (user_location(),))
    # each gradient's norm in its dtype (torch's _foreach_norm per dtype group), then the
    # norm of those, stacked in the dtype they promote to, as torch's _get_total_norm
    norms = [_vector_norm(g, norm_type) for g in grads]
    total = _vector_norm(np.array([n.astype(dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise GraphcError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                          f"gradients is {float(total)}; error_if_nonfinite=False clips "
                          "anyway", (user_location(),))
    # torch's clamp(max_norm / (total + 1e-6), max=1.0), its division reciprocal(x) *
    # max_norm, each op in the total's dtype (NaN for a NaN total, as torch's clamp); the
    # gradients are scaled by max_norm / inf = 0, as torch scales them
    # (silently, as torch's: a max_norm past float32's range is inf, a float16 total's
    # reciprocal may be inf, and inf times a max_norm of 0 NaN; numpy warned of each)
    compute = _compute_dtype(dtype)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        shifted = _rounded(total.astype(compute) + compute.type(1e-6), dtype)
        reciprocal = _rounded(compute.type(1) / shifted.astype(compute), dtype)
        factor = _rounded(reciprocal.astype(compute) * compute.type(max_norm), dtype)
        # (a bfloat16 NaN compared warns 'invalid value encountered in greater')
        factor = np.where(factor > 1, np.asarray(1, dtype), factor)
    for p in with_grad:
        _scale(p, factor)
    return Tensor(total)


def _vector_norm(x, p: float):
    """torch.linalg.vector_norm(x, p) for any float order p, of `x`'s dtype as torch's: the
    sum of |x|**p made in float64 and rounded to the dtype torch accumulates it in
    (_compute_dtype: past float32's range a float32 or half x's sum is inf, as torch's), its
    root rounded to x's dtype (a float16 norm past 65504 is inf). clip_grad_norm_ refused p
    <= 0 and NaN, which torch computes. A NaN in x is kept (np.max and np.min propagate it,
    as torch's); an empty x is the identity of max (0) or min (inf), where torch refuses the
    +-inf norm of an empty tensor (clip_grad_norm_ refuses an empty gradient's norm of a
    negative or infinite order before this, as torch does)."""
    a = np.abs(x.astype(np.float64))
    if p == math.inf:
        return _rounded(a.max(initial=0.0), x.dtype)
    if p == -math.inf:
        return _rounded(a.min(initial=math.inf), x.dtype)
    if p == 0:  # the count of nonzeros (|x| ** 0 would count the zeros too)
        return _rounded(np.count_nonzero(a), x.dtype)
    if a.size == 1:  # torch's norm of one element is its magnitude, no power taken: a
        # float32 1e30's is 1e30 (its square past float32's range is not summed), 1e-30's
        # 1e-30 (not 0), a scalar parameter's gradient or a single norm's total
        return _rounded(a.reshape(()), x.dtype)
    # 0 ** -p is inf, and its sum's ** (1/-p) 0; a power past float64 (1e-200 ** -2,
    # 1e300 ** 3) is inf, and so may be its root: torch's values, silently as torch's
    with np.errstate(divide="ignore", over="ignore"):
        powers = _rounded(np.sum(a ** p), _compute_dtype(x.dtype))
        return _rounded(powers.astype(np.float64) ** (1.0 / p), x.dtype)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """torch.nn.utils.clip_grad_value_: clamp each gradient to [-clip_value, clip_value]."""
    clip_value = _float_setting("clip_grad_value_: clip_value", clip_value)
    for p in _gradients(parameters, "clip_grad_value_"):
        g = p.grad
        if isinstance(g, Tensor):
            from ir.ops import api as F
            p.grad = F.clip(g, -clip_value, clip_value)
        else:
            g = _writeable_grad(p)
            np.clip(g, -clip_value, clip_value, out=g)


def _tensors(parameters, name):
    """The parameters as a list (a dict's values: model.params(); a Module's parameters())."""
    if isinstance(parameters, dict):
        parameters = parameters.values()
    elif hasattr(parameters, "named_parameters"):
        parameters = parameters.parameters()
    parameters = list(parameters)
    for p in parameters:
        if not hasattr(p, "shape") or not hasattr(p, "dtype") or isinstance(p, str):
            raise GraphcError(f"{name}: expected tensors or Parameters (model.parameters()), "
                              f"got {a_type(p)}", (user_location(),))
    return parameters


def parameters_to_vector(parameters):
    """torch.nn.utils.parameters_to_vector: the parameters flattened and concatenated, in
    their order, into one 1-d tensor. Differentiable, and traced like any op (inside
    `apply`, a compiled function, a loss given to gc.grad). Each is flattened as graphc
    stores it: a weight graphc keeps transposed against torch (Linear's (in, out)) comes in
    that order, the same eagerly and traced; vector_to_parameters reads it back so."""
    from ir.ops import api as F
    parameters = _tensors(parameters, "parameters_to_vector")
    if not parameters:
        raise GraphcError("parameters_to_vector: no parameters (an empty iterable)",
                          (user_location(),))
    return F.concat([F.reshape(p, -1) for p in parameters], 0)


def vector_to_parameters(vec, parameters) -> None:
    """torch.nn.utils.vector_to_parameters: each Parameter's data becomes the next numel()
    entries of the 1-d `vec`, reshaped (cast to the parameter's dtype, a copy: the
    Parameters do not share vec's memory, as torch's do). As torch's, entries past the
    parameters' total are left unused."""
    if isinstance(vec, Tensor):
        vec = vec.data
    if not isinstance(vec, np.ndarray):
        raise GraphcError(f"vector_to_parameters: vec must be a tensor or an array, got "
                          f"{a_type(vec)}", (user_location(),))
    if vec.ndim != 1:
        raise GraphcError(f"vector_to_parameters: vec must be 1-d, got shape {vec.shape}",
                          (user_location(),))
    parameters = _tensors(parameters, "vector_to_parameters")
    for p in parameters:
        if not isinstance(p, Tensor):
            raise GraphcError(f"vector_to_parameters: expected Parameters or tensors to fill, "
                              f"got {a_type(p)}", (user_location(),))
    total = sum(p.data.size for p in parameters)
    if vec.size < total:
        raise GraphcError(f"vector_to_parameters: vec has {vec.size} entries, the "
                          f"parameters hold {total}", (user_location(),))
    pointer = 0
    for p in parameters:
        n = p.data.size
        p.data = vec[pointer:pointer + n].reshape(p.data.shape).astype(p.data.dtype)
        pointer += n


def __getattr__(name):  # `gc.nn.utils`: this module, as torch.nn.utils
    if name == "utils":
        import sys
        return sys.modules[__name__]
    if name == "rnn":  # gc.nn.utils.rnn.pad_sequence, as torch.nn.utils.rnn's
        import importlib
        return importlib.import_module("graphc.rnn_utils")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
