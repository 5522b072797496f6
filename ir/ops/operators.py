"""Python operator overloading shared by symbolic nodes and eager tensors."""
from __future__ import annotations

from ..errors import GraphcError, user_location
from . import api


class OperatorMixin:
    __slots__ = ()
    # numpy must hand `ndarray + value` to our reflected operators instead of looping over it
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

    @property
    def T(self): return api.transpose(self)

    def reshape(self, *shape): return api.reshape(self, *shape)
    # torch's Tensor methods (`size` stays numpy's element count, a property)
    def view(self, *shape): return api.reshape(self, *shape)
    def permute(self, *dims): return api.permute(self, *dims)
    def unsqueeze(self, dim): return api.unsqueeze(self, dim)
    def squeeze(self, dim=None, *, axis=None): return api.squeeze(self, axis, dim=dim)
    def flatten(self, start_dim=0, end_dim=-1): return api.flatten(self, start_dim, end_dim)
    def dim(self): return len(self.shape)
    def transpose(self, *perm): return api.transpose(self, perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else (perm or None))
    # numpy's functions call these methods on non-arrays with its own keywords
    # (np.mean(t) is t.mean(axis=None, dtype=None, out=None)): dtype casts first, as numpy's
    def sum(self, axis=None, keepdims=False, *, dtype=None, out=None, **numpys):
        return api.sum(_numpy_call(self, dtype, out, numpys, "sum"), axis, keepdims)
    def mean(self, axis=None, keepdims=False, *, dtype=None, out=None, **numpys):
        return api.mean(_numpy_call(self, dtype, out, numpys, "mean"), axis, keepdims)
    def max(self, axis=None, keepdims=False, *, out=None, **numpys):
        return api.max(_numpy_call(self, None, out, numpys, "max"), axis, keepdims)
    def min(self, axis=None, keepdims=False, *, out=None, **numpys):
        return api.min(_numpy_call(self, None, out, numpys, "min"), axis, keepdims)
    def argmax(self, axis=None, keepdims=False, *, out=None, **numpys):
        return api.argmax(_numpy_call(self, None, out, numpys, "argmax"), axis, keepdims)
    def argmin(self, axis=None, keepdims=False, *, out=None, **numpys):
        return api.argmin(_numpy_call(self, None, out, numpys, "argmin"), axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=0, *, dtype=None, out=None, **numpys):
        return api.var(_numpy_call(self, dtype, out, numpys, "var"), axis, keepdims, ddof)
    def astype(self, dtype): return api.cast(self, dtype)
    def exp(self): return api.exp(self)
    def log(self): return api.log(self)
    def sqrt(self): return api.sqrt(self)
    def tanh(self): return api.tanh(self)
    def softmax(self, axis=-1): return api.softmax(self, axis)


def _numpy_call(x, dtype, out, numpys, name):
    if out is not None:
        raise GraphcError(f"{name}(out=...): graphc's results are new arrays, never written "
                          "into one given; assign the result instead", (user_location(),))
    if numpys:  # numpy's initial=, where=, ... (np.min(t, initial=0.0))
        raise GraphcError(f"{name}({', '.join(f'{k}=...' for k in numpys)}): not taken by "
                          f"graphc's {name} (axis, keepdims and dtype are)",
                          (user_location(),))
    return x if dtype is None else api.cast(x, dtype)
