"""`gc.nn.utils.rnn`: torch.nn.utils.rnn's pad_sequence, which batches sequences of different
lengths for a recurrent layer

    batch = gc.nn.utils.rnn.pad_sequence([a, b, c], batch_first=True)  # (3, L_max, *)

Written with graphc's ops (pad, concat), so it is differentiable and traces into a compiled
function like any op; the lengths are the arrays' static lengths.
"""
from __future__ import annotations

from collections.abc import Iterable

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops.arrays import pad

__all__ = ["pad_sequence"]


def _fail(message):
    raise GraphcError(message, (user_location(),))


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """torch.nn.utils.rnn.pad_sequence: sequences (L_i, *) (a list, or a tensor whose first
    axis holds them) padded with `padding_value` on `padding_side` ("right" or "left") to the
    longest L and stacked: (L, B, *), or (B, L, *) with batch_first. The result has the
    first sequence's dtype, as torch's."""
    if padding_side not in ("left", "right"):
        _fail(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    if hasattr(sequences, "shape"):  # a tensor: its first axis, as torch's unbind(0)
        if len(F._shape(sequences)) < 1:
            _fail("pad_sequence: a 0-d tensor holds no sequences")
        sequences = [sequences[i] for i in range(F._shape(sequences)[0])]
    elif not isinstance(sequences, Iterable) or isinstance(sequences, (str, dict)):
        _fail(f"pad_sequence: expected a list of sequences (tensors), got a "
              f"{type(sequences).__name__}")
    sequences = list(sequences)
    if not sequences:
        _fail("pad_sequence: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not hasattr(s, "shape") or len(F._shape(s)) < 1:
            what = f"shape {tuple(F._shape(s))}" if hasattr(s, "shape") else \
                f"a {type(s).__name__}"
            _fail(f"pad_sequence: sequence {i} must be a tensor of at least 1 dimension "
                  f"(L, *), got {what}")
    trailing = tuple(F._shape(sequences[0])[1:])
    for i, s in enumerate(sequences[1:], 1):
        if tuple(F._shape(s)[1:]) != trailing:
            _fail(f"pad_sequence: sequence {i} has shape {tuple(F._shape(s))}, sequence 0 "
                  f"has {tuple(F._shape(sequences[0]))}: they must agree past the first axis")
    dtype = F._dtype(sequences[0])
    longest = max(F._shape(s)[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - F._shape(s)[0]
        widths = [(0, missing) if padding_side == "right" else (missing, 0)]
        widths += [(0, 0)] * len(trailing)
        padded.append(pad(F.cast(s, dtype), widths, constant_values=padding_value))
    return F.stack(padded, 0 if batch_first else 1)
