"""A user's value as one line of an error message: an array or a tensor (a Parameter given
where a size or a setting goes) by its kind, its numbers where it has a few (as torch shows
a tensor) or else its shape, and its dtype, where its repr() was the whole array over many
lines, and anything else by its repr(), cut short."""
from __future__ import annotations

import re

import numpy as np

from .errors import clipped


def _is_array(value) -> bool:
    """numpy's array, graphc's Tensor (a Parameter, a Buffer) or another library's tensor:
    anything with a shape and a dtype that is no numpy scalar or Python number."""
    return not isinstance(value, (np.generic, int, float, complex, str, bytes)) and \
        hasattr(value, "shape") and hasattr(value, "dtype")


SMALL = 8  # an array of at most this many numbers is shown by them, as torch's repr


def _values(array: np.ndarray, limit: int):
    """A small array's numbers on one line ("[1.0, 2.5, 3.0]", "[[1, 2], [3, 4]]": its
    nesting gives its shape), numpy's shortest digits for its dtype (a float32's 0.1, not
    0.10000000149011612); None where that is longer than `limit` or numpy cannot print it."""
    try:
        text = np.array2string(array, separator=", ", max_line_width=10 ** 6)
    except Exception:  # (a dtype numpy cannot print)
        return None
    # (numpy pads to align its columns: "[ True, False]", "[0. , 0.33333333]")
    text = re.sub(r" +([,\]])", r"\1", re.sub(r"\[ +", "[", " ".join(text.split())))
    return text if len(text) <= limit else None


def shown(value, limit: int = 80) -> str:
    """`value` for a one-line message: a small tensor or array (at most SMALL numbers) by
    its numbers, "Parameter([1., 2., 3.], dtype=float32)" (a 0-d one:
    "Tensor(0.5, dtype=float32)"), a larger one by its shape,
    "Parameter(shape=(3, 4), dtype=float32)", a list or tuple of them item by item, else
    repr(value) cut to `limit` characters."""
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
            text = repr(array.item())  # (an object's or a string's: one line, cut short)
            return f"{kind}({clipped(' '.join(text.split()), limit)}, dtype={dtype})"
        values = _values(array, limit) if isinstance(array, np.ndarray) and \
            0 < array.size <= SMALL else None
        if values is not None:
            return f"{kind}({values}, dtype={dtype})"
        return f"{kind}(shape={shape}, dtype={dtype})"
    if isinstance(value, (list, tuple)) and any(_is_array(v) for v in value):
        items = ", ".join(shown(v, limit) for v in value[:4]) + (
            ", ..." if len(value) > 4 else "," if len(value) == 1 and
            isinstance(value, tuple) else "")  # ((x,) as repr writes a 1-tuple)
        return clipped(("[%s]" if isinstance(value, list) else "(%s)") % items, 4 * limit)
    text = repr(value)
    return clipped(" ".join(text.split()), limit) if "\n" in text or len(text) > limit \
        else text
