"""A user's value as one line of an error message: an array or a tensor (a Parameter given
where a size or a setting goes) by its kind, shape and dtype, where its repr() was the whole
array over many lines, and anything else by its repr(), cut short."""
from __future__ import annotations

import numpy as np

from .errors import clipped


def _is_array(value) -> bool:
    """numpy's array, graphc's Tensor (a Parameter, a Buffer) or another library's tensor:
    anything with a shape and a dtype that is no numpy scalar or Python number."""
    return not isinstance(value, (np.generic, int, float, complex, str, bytes)) and \
        hasattr(value, "shape") and hasattr(value, "dtype")


def shown(value, limit: int = 80) -> str:
    """`value` for a one-line message: "Parameter(shape=(3, 4), dtype=float32)" for a
    tensor or an array (a 0-d one with its number: "Tensor(0.5, dtype=float32)"), a list or
    tuple of them item by item, else repr(value) cut to `limit` characters."""
    if _is_array(value):
        kind = type(value).__name__
        if not isinstance(value, np.ndarray) and \
                not type(value).__module__.startswith("runtime."):
            # another library's tensor whose repr is one short line keeps it (a torch meta
            # tensor's says device='meta', why it has no number)
            text = repr(value)
            if "\n" not in text and len(text) <= limit:
                return text
        try:
            shape, dtype = tuple(value.shape), value.dtype
        except TypeError:  # (a traced value's symbolic shape: its own short repr)
            return clipped(" ".join(repr(value).split()), limit)
        array = value if isinstance(value, np.ndarray) else getattr(value, "data", None)
        if shape == () and isinstance(array, np.ndarray):
            return f"{kind}({array.item()!r}, dtype={dtype})"
        return f"{kind}(shape={shape}, dtype={dtype})"
    if isinstance(value, (list, tuple)) and any(_is_array(v) for v in value):
        items = ", ".join(shown(v, limit) for v in value[:4]) + (
            ", ..." if len(value) > 4 else "," if len(value) == 1 and
            isinstance(value, tuple) else "")  # ((x,) as repr writes a 1-tuple)
        return clipped(("[%s]" if isinstance(value, list) else "(%s)") % items, 4 * limit)
    text = repr(value)
    return clipped(" ".join(text.split()), limit) if "\n" in text or len(text) > limit \
        else text
