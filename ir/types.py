"""Static tensor types: a shape and a dtype, with the short names the IR text uses."""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

# bfloat16 comes from ml_dtypes (as in JAX); numpy registers it as a dtype of kind "V", so
# code asks `is_float`, never `dtype.kind == "f"`
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

DTYPES = {
    "f32": np.dtype("float32"),
    "f64": np.dtype("float64"),
    "f16": np.dtype("float16"),
    "bf16": BFLOAT16,
    "i32": np.dtype("int32"),
    "i64": np.dtype("int64"),
    "bool": np.dtype("bool"),
}
SHORT_NAMES = {dt: name for name, dt in DTYPES.items()}
FLOAT_DTYPES = (DTYPES["f32"], DTYPES["f64"], DTYPES["f16"], BFLOAT16)
# storage-only floats: ops compute on them in float32 and round their results once
# (ir/ops/registry.py, "Half precision" in the README)
HALF_DTYPES = (DTYPES["f16"], BFLOAT16)
DTYPE_PATTERN = r"bf16|f16|f32|f64|i32|i64|bool"  # the short names, for the parsers
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


def is_half(dtype) -> bool:
    """float16 or bfloat16: a storage dtype that ops compute on in float32."""
    return np.dtype(dtype) in HALF_DTYPES


def finfo(dtype):
    """np.finfo that also knows bfloat16 (numpy's refuses it)."""
    return ml_dtypes.finfo(np.dtype(dtype))


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
