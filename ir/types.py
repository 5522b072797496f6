"""Static tensor types: a shape and a dtype, with the short names the IR text uses."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = {
    "f32": np.dtype("float32"),
    "f64": np.dtype("float64"),
    "i32": np.dtype("int32"),
    "i64": np.dtype("int64"),
    "bool": np.dtype("bool"),
}
SHORT_NAMES = {dt: name for name, dt in DTYPES.items()}
FLOAT_DTYPES = (DTYPES["f32"], DTYPES["f64"])
INT_DTYPES = (DTYPES["i32"], DTYPES["i64"])


def as_dtype(dtype) -> np.dtype:
    """Accepts 'float32', 'f32', np.float32 or a numpy dtype; rejects what the IR cannot hold."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}") from exc
    if dt not in SHORT_NAMES:
        supported = ", ".join(str(d) for d in SHORT_NAMES)
        raise TypeError(f"dtype {dt} is not supported (supported: {supported})")
    return dt


def is_float(dtype) -> bool:
    return np.dtype(dtype) in FLOAT_DTYPES


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
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
    def size(self) -> int:
        return self.nbytes

    def __str__(self) -> str:
        return "(" + ", ".join(str(t) for t in self.elements) + ")"
