"""Python operator overloading shared by symbolic nodes and eager tensors."""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import GraphcError, user_location
from ..types import DTYPES, Dim, parse_dim
from . import api, arrays
from .registry import input_symbols


class OperatorMixin:
    __slots__ = ()
    # numpy must hand `ndarray + value` to our reflected operators instead of looping over it.
    # Keep it None (not a method): numpy then passes a scalar left of a comparison as itself
    # (weak), where a method gets it as a strong 0-d array, and np.ma's operators defer to us
    # only when this is None (otherwise they compute off the tape). np.sin(t) stays numpy's
    # TypeError, a known gap in the README.
    __array_ufunc__ = None

    def __add__(self, o): return api.add(self, o)
    def __radd__(self, o): return api.add(o, self)
    def __sub__(self, o): return api.sub(self, o)
    def __rsub__(self, o): return api.sub(o, self)
    def __mul__(self, o): return api.mul(self, o)
    def __rmul__(self, o): return api.mul(o, self)
    def __truediv__(self, o): return api.div(self, o)
    def __rtruediv__(self, o): return api.div(o, self)
    def __floordiv__(self, o): return api.floor_divide(self, o)
    def __rfloordiv__(self, o): return api.floor_divide(o, self)
    def __mod__(self, o): return api.remainder(self, o)
    def __rmod__(self, o): return api.remainder(o, self)
    def __pow__(self, o): return api.pow(self, o)
    def __rpow__(self, o): return api.pow(o, self)
    def __matmul__(self, o): return api.matmul(self, o)
    def __rmatmul__(self, o): return api.matmul(o, self)
    def __neg__(self): return api.neg(self)
    def __pos__(self): return self
    def __abs__(self): return api.abs(self)
    def __lt__(self, o): return api.less(self, o)
    def __le__(self, o): return api.less_equal(self, o)
    def __gt__(self, o): return api.greater(self, o)
    def __ge__(self, o): return api.greater_equal(self, o)
    def __eq__(self, o): return api.equal(self, o)
    def __ne__(self, o): return api.not_equal(self, o)
    def __and__(self, o): return api.logical_and(self, o)
    def __or__(self, o): return api.logical_or(self, o)
    def __rand__(self, o): return api.logical_and(o, self)
    def __ror__(self, o): return api.logical_or(o, self)
    def __invert__(self): return api.logical_not(self)
    def __getitem__(self, key): return api.getitem(self, key)

    def __setitem__(self, key, value):
        # (Python's own refusal named the class: "'Node' object does not support item
        # assignment" while tracing); as in JAX, a new value is built instead
        raise GraphcError("item assignment x[...] = v is not supported: build the new value "
                          "with gc.where(mask, v, x), gc.dynamic_update_slice (a window) or "
                          "gc.scatter_add (rows added)", (user_location(),))
    # torch's name for stop_gradient (an eager Tensor's own detach gives a new leaf)
    def detach(self): return api.stop_gradient(self)

    @property
    def T(self): return api.transpose(self)

    def reshape(self, *shape): return api.reshape(self, *shape)
    # torch's Tensor methods (`size` stays numpy's element count, a property)
    def view(self, *shape):
        if len(shape) == 1 and _is_dtype(shape[0]):
            # torch's view(dtype) reinterprets the bits, which graphc's values cannot
            raise GraphcError(f"view({_dtype_name(shape[0])}): a view as another dtype is not "
                              "supported; use .astype(dtype) for a cast of the values",
                              (user_location(),))
        return api._reshape(self, shape, "view")
    def permute(self, *dims): return api.permute(self, *dims)
    def unsqueeze(self, dim): return api.unsqueeze(self, dim)
    def squeeze(self, dim=None, *, axis=None): return api.squeeze(self, axis, dim=dim)
    def flatten(self, start_dim=0, end_dim=-1): return api.flatten(self, start_dim, end_dim)
    def dim(self): return len(self.shape)
    def split(self, split_size_or_sections, dim=0):  # torch's (gc.split is numpy's)
        return api.split_sizes(self, split_size_or_sections, dim)
    def transpose(self, *perm):  # t.transpose(1, 0) or t.transpose((1, 0)), as numpy's;
        # t.transpose(None) reverses the axes as t.transpose() does: np.transpose(t) calls it;
        # one range or 1-d array of axes too, as numpy's (np.transpose(t, np.array([1, 0])))
        one = len(perm) == 1 and (perm[0] is None or isinstance(perm[0], (tuple, list, range))
                                  or isinstance(perm[0], np.ndarray) and perm[0].ndim == 1)
        return api.transpose(self, perm[0] if one else (perm or None))
    # numpy's functions call these methods on non-arrays with its own keywords
    # (np.mean(t) is t.mean(axis=None, dtype=None, out=None)): dtype casts first, as numpy's.
    # torch's keywords (dim=, keepdim=; var's correction=, unbiased=) arrive in `torchs`.
    # The plain call goes straight to api: passing **torchs on would cost it ~0.2 us.
    def sum(self, axis=None, keepdims=False, *, dtype=None, out=None, **torchs):
        if torchs or dtype is not None or out is not None:
            return _reduce(api.sum, "sum", self, axis, keepdims, dtype, out, torchs)
        return api.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False, *, dtype=None, out=None, **torchs):
        if torchs or dtype is not None or out is not None:
            return _reduce(api.mean, "mean", self, axis, keepdims, dtype, out, torchs)
        return api.mean(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False, *, dtype=None, out=None, **torchs):
        return _reduce(arrays.prod, "prod", self, axis, keepdims, dtype, out, torchs)
    def max(self, axis=None, keepdims=False, *, out=None, **torchs):
        if torchs or out is not None:
            return _reduce(api.max, "max", self, axis, keepdims, None, out, torchs)
        return api.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False, *, out=None, **torchs):
        if torchs or out is not None:
            return _reduce(api.min, "min", self, axis, keepdims, None, out, torchs)
        return api.min(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False, *, out=None, **torchs):
        if torchs or out is not None:
            return _reduce(api.argmax, "argmax", self, axis, keepdims, None, out, torchs)
        return api.argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False, *, out=None, **torchs):
        if torchs or out is not None:
            return _reduce(api.argmin, "argmin", self, axis, keepdims, None, out, torchs)
        return api.argmin(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=api.DDOF_0, *, dtype=None, out=None,
            **torchs):
        return _reduce(api.var, "var", self, axis, keepdims, dtype, out, torchs, ddof)
    def std(self, axis=None, keepdims=False, ddof=api.DDOF_0, *, dtype=None, out=None,
            **torchs):
        return _reduce(api.std, "std", self, axis, keepdims, dtype, out, torchs, ddof)
    def any(self, axis=None, keepdims=False, *, out=None, **torchs):
        return _reduce(api.any, "any", self, axis, keepdims, None, out, torchs)
    def all(self, axis=None, keepdims=False, *, out=None, **torchs):
        return _reduce(api.all, "all", self, axis, keepdims, None, out, torchs)
    def logsumexp(self, axis=None, keepdims=False, *, dim=api.NO_DIM, keepdim=None):
        return api.logsumexp(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def norm(self, ord=None, axis=None, keepdims=False, *, dim=api.NO_DIM, keepdim=None,
             p=None):
        return arrays.norm(self, ord, axis, keepdims, dim=dim, keepdim=keepdim, p=p)
    def astype(self, dtype): return api.cast(self, dtype)
    def exp(self): return api.exp(self)
    def log(self): return api.log(self)
    def sqrt(self): return api.sqrt(self)
    def tanh(self): return api.tanh(self)
    def softmax(self, axis=api._AXIS_LAST, *, dim=api.NO_DIM):
        return api.softmax(self, axis, dim=dim)
    def log_softmax(self, axis=api._AXIS_LAST, *, dim=api.NO_DIM):
        return api.log_softmax(self, axis, dim=dim)


def _is_dtype(arg) -> bool:
    """Whether view's one argument is a dtype (torch's view(torch.float16), numpy's
    view('float32')), not a size: a type, a numpy or torch dtype, or a str numpy or the IR
    reads as a dtype's name. Any other str is a size, as reshape reads it (view('3') was
    "view(3): a view as another dtype is not supported"): torch's view takes sizes or a
    dtype, and a one-letter numpy code ('n', 'b') is read as a symbol's name, a size."""
    if isinstance(arg, (type, np.dtype)) or \
            type(arg).__name__ == "dtype" and type(arg).__module__ == "torch":
        return True
    if not isinstance(arg, str) or len(arg) < 2 or _names_input_axes(arg):
        return False
    if arg in DTYPES:
        return True
    try:  # (a symbolic size's text is ValueError or SyntaxError to numpy: '2*n', '2*(n+1)';
        # view('2*n') was numpy's bare "format number 1 of "2*n" is not recognized")
        with warnings.catch_warnings():  # ('a3': numpy's deprecated code, still a dtype)
            warnings.simplefilter("ignore", DeprecationWarning)
            np.dtype(arg)
    except (TypeError, ValueError, SyntaxError):
        return False
    return True


def _names_input_axes(text) -> bool:
    """Whether `text` is a symbolic size whose symbols an input's axis has (a trace's
    polymorphic 'b1', 'half'): a size then, though numpy reads it as a dtype's name too."""
    symbols = input_symbols()
    if not symbols:
        return False
    try:
        dim = parse_dim(text)
    except ValueError:
        return False
    return isinstance(dim, Dim) and dim.symbols <= symbols


def _dtype_name(dtype):
    return dtype if isinstance(dtype, str) else getattr(dtype, "__name__", str(dtype))


_TORCHS = frozenset(("dim", "keepdim"))
_VAR_TORCHS = _TORCHS | {"correction", "unbiased"}


def _reduce(fn, name, x, axis, keepdims, dtype, out, torchs, *ddof):
    """A reduction method called with numpy's dtype= or out=, or torch's keywords."""
    if out is not None:
        raise GraphcError(f"{name}(out=...): graphc's results are new arrays, never written "
                          "into one given; assign the result instead", (user_location(),))
    takes = _VAR_TORCHS if ddof else _TORCHS
    if not takes.issuperset(torchs):  # numpy's initial=, where=, ... (np.min(t, initial=0))
        raise GraphcError(f"{name}({', '.join(f'{k}=...' for k in torchs if k not in takes)})"
                          f": not taken by graphc's {name} (axis or dim, keepdims or keepdim "
                          "and dtype are)", (user_location(),))
    return fn(x if dtype is None else api.cast(x, dtype), axis, keepdims, *ddof, **torchs)
