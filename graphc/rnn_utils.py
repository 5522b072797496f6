"""`gc.nn.utils.rnn`: torch.nn.utils.rnn's pad_sequence, which batches sequences of different
lengths for a recurrent layer, and its packed sequences, which a recurrent layer runs each for
its own length

    batch = gc.nn.utils.rnn.pad_sequence([a, b, c], batch_first=True)  # (3, L_max, *)
    packed = gc.nn.utils.rnn.pack_padded_sequence(batch, [4, 2, 3], batch_first=True,
                                                  enforce_sorted=False)
    out, h_n = gru(packed)          # h_n: each sequence's state after its last step
    out, lengths = gc.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)

Written with graphc's ops (pad, concat, take), so it is differentiable and traces into a
compiled function like any op. The lengths are static: the arrays' lengths, or `lengths`
given as numbers (a list, a numpy array, a torch CPU tensor), never a traced value, since
they fix the packed data's shape; a PackedSequence's batch_sizes and indices are numpy int64
arrays (torch's CPU tensors).
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.ops import api as F
from ir.ops.arrays import pad
from ir.ops.registry import SymbolicValue
from ir.types import UnsupportedDtype, as_dtype, is_int

__all__ = ["pad_sequence", "PackedSequence", "pack_padded_sequence", "pad_packed_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]


def _fail(message):
    raise GraphcError(message, (user_location(),))


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """torch.nn.utils.rnn.pad_sequence: sequences (L_i, *) (a list, or a tensor whose first
    axis holds them) padded with `padding_value` on `padding_side` ("right" or "left") to the
    longest L and stacked: (L, B, *), or (B, L, *) with batch_first. The result has the
    first sequence's dtype, as torch's."""
    return _pad_sequence(sequences, batch_first, padding_value, padding_side, "pad_sequence")


def _pad_sequence(sequences, batch_first, padding_value, padding_side, who):
    """pad_sequence's work, its errors naming `who` (pack_sequence's: the function called)."""
    if padding_side not in ("left", "right"):
        _fail(f"{who}: padding_side must be 'left' or 'right', got {padding_side!r}")
    if hasattr(sequences, "shape"):  # a tensor: its first axis, as torch's unbind(0)
        if len(F._shape(sequences)) < 1:
            _fail(f"{who}: a 0-d tensor holds no sequences")
        sequences = [sequences[i] for i in range(F._shape(sequences)[0])]
    elif not isinstance(sequences, Iterable) or isinstance(sequences, (str, dict)):
        _fail(f"{who}: expected a list of sequences (tensors), got "
              f"{a_type(sequences)}")
    sequences = list(sequences)
    if not sequences:
        _fail(f"{who}: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not hasattr(s, "shape") or len(F._shape(s)) < 1:
            what = f"shape {tuple(F._shape(s))}" if hasattr(s, "shape") else \
                a_type(s)
            _fail(f"{who}: sequence {i} must be a tensor of at least 1 dimension "
                  f"(L, *), got {what}")
    trailing = tuple(F._shape(sequences[0])[1:])
    for i, s in enumerate(sequences[1:], 1):
        if tuple(F._shape(s)[1:]) != trailing:
            _fail(f"{who}: sequence {i} has shape {tuple(F._shape(s))}, sequence 0 "
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


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """torch.nn.utils.rnn.PackedSequence: `data` (sum of the lengths, *) holds the sequences'
    steps time step by time step, longest sequence first; `batch_sizes[t]` is how many of
    them have a step t; `sorted_indices` (None when the batch came sorted) gives the batch
    position of each sequence in data's order and `unsorted_indices` its inverse. Make one with
    pack_padded_sequence or pack_sequence, not by hand."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _inverse(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    # torch's conversions, on `data` only (batch_sizes and the indices stay int64): torch
    # training code moves a packed batch with .to(device) or casts it with .double()
    def to(self, *args, dtype=None, device=None, non_blocking=False):
        """torch's: `to(dtype)`, `to(device)`, `to(device, dtype)`, `to(tensor)` or keywords;
        the CPU is graphc's only device. self when nothing changes, as torch's."""
        from .nn import _to_dtype  # (graphc.nn's Module.to reads the same arguments)
        return self._cast(_to_dtype(args, dtype, device, "PackedSequence.to"), "to")

    def _cast(self, dtype, method):
        if dtype is None:
            return self
        try:
            dtype = as_dtype(dtype)
        except UnsupportedDtype as exc:
            _fail(f"PackedSequence.{method}: {exc.message}")
        if F._dtype(self.data) == dtype:
            return self
        return self._replace(data=F.cast(self.data, dtype))

    def cpu(self):
        return self

    def cuda(self, device=None):
        _fail("PackedSequence.cuda: graphc runs on the CPU (numpy arrays); no CUDA device")

    def double(self):
        return self._cast("float64", "double")

    def float(self):
        return self._cast("float32", "float")

    def half(self):
        return self._cast("float16", "half")

    def long(self):
        return self._cast("int64", "long")

    def int(self):
        return self._cast("int32", "int")

    # torch's too: graphc has no int16, int8 or uint8 values, so each is refused in one
    # line naming the method (it was an AttributeError)
    def short(self):
        return self._cast("int16", "short")

    def char(self):
        return self._cast("int8", "char")

    def byte(self):
        return self._cast("uint8", "byte")

    @property
    def is_cuda(self):
        return False

    def is_pinned(self):
        return False


def _inverse(permutation):
    inverse = np.empty_like(permutation)
    inverse[permutation] = np.arange(len(permutation), dtype=permutation.dtype)
    return inverse


def _static_lengths(lengths, batch, who):
    """`lengths` as a 1-d int64 numpy array of `batch` values, each > 0: numbers known
    before tracing (a list, a numpy array, an eager or torch CPU tensor), as torch wants a CPU
    int64 tensor; a traced value cannot fix the packed data's shape."""
    if isinstance(lengths, SymbolicValue):
        how = ("(an argument of the compiled or differentiated function): close over them"
               if _is_argument(lengths) else "(computed from the function's arguments, as "
               "from a mask of the data): compute them outside it, with numpy, and close "
               "over them")
        _fail(f"{who}: lengths must be known numbers (a list or a numpy array), not a traced "
              f"value {how}")
    if isinstance(lengths, (list, tuple)) and any(isinstance(n, SymbolicValue) for n in lengths):
        # Python numbers passed as an argument, traced: int() asks for their values, so a
        # transformation that can retries with them as they are (grad), or names static_argnums
        lengths = [int(n) if isinstance(n, SymbolicValue) else n for n in lengths]
    try:
        values = np.asarray(lengths)  # (a torch CPU tensor too: torch's own lengths)
    except (TypeError, ValueError):  # a ragged list
        values = np.asarray(None)
    if values.ndim != 1 or values.dtype.kind not in "iuf" or (
            values.dtype.kind == "f" and not np.all(values == np.trunc(values))):
        got = (f"{values.tolist()}" if values.ndim == 1 else
               a_type(lengths) + (f" of shape {values.shape}"
                                                 if values.ndim and values.dtype != object else ""))
        _fail(f"{who}: lengths must be a 1-d list or array of ints, got {got}")
    if len(values) != batch:
        _fail(f"{who}: {len(values)} lengths for a batch of {batch} sequences")
    if values.size and values.min() <= 0:
        _fail(f"{who}: every length must be > 0, as torch's, got {values.min():g} at "
              f"sequence {int(np.argmin(values))}")
    return values.astype(np.int64)


def _is_argument(value) -> bool:
    """Whether a traced value is an input of the function being traced (read inside a loop
    body or a branch too), not one computed in it."""
    while getattr(value, "op", None) == "input":
        outer = getattr(value.graph, "outer_value", None)  # (a region's: what it captures)
        if outer is None:
            return True
        captured = outer(value)
        if captured is None:  # the region's own operand (a carry): computed in the loop
            return False
        value = captured
    return False


def _pack(x, batch_sizes, sorted_indices):
    """x (T, B, *), time first, in the batch's order -> PackedSequence data: step t of the
    first batch_sizes[t] sequences in sorted order, one gather."""
    batch = F._shape(x)[1]
    order = np.arange(batch) if sorted_indices is None else sorted_indices
    rows = np.concatenate([t * batch + order[:size] for t, size in enumerate(batch_sizes)])
    flat = F.reshape(x, (F._shape(x)[0] * batch,) + tuple(F._shape(x)[2:]))
    return F.take(flat, rows.astype(np.int64))


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """torch.nn.utils.rnn.pack_padded_sequence: input (T, B, *) (batch_first: (B, T, *)),
    padded sequences of the given `lengths` (each 1 to T) -> a PackedSequence. enforce_sorted:
    the lengths must be non-increasing (else they are sorted, longest first, and the order
    is kept in sorted_indices)."""
    return _pack_padded_sequence(input, lengths, batch_first, enforce_sorted,
                                 "pack_padded_sequence")


def _pack_padded_sequence(input, lengths, batch_first, enforce_sorted, who):
    """pack_padded_sequence's work, its errors naming `who` (pack_sequence's: the function
    called)."""
    if len(F._shape(input)) < 2:
        _fail(f"{who}: input must have a time and a batch axis (T, B, *), got shape "
              f"{tuple(F._shape(input))}")
    x = F.swapaxes(input, 0, 1) if batch_first else input  # time first
    steps, batch = F._shape(x)[0], F._shape(x)[1]
    if not batch:
        _fail(f"{who}: the input's batch axis is empty (shape {tuple(F._shape(input))}): "
              "there is nothing to pack, as torch's 'Cannot pack empty tensors'")
    lengths = _static_lengths(lengths, batch, who)
    if lengths.size and lengths.max() > steps:  # (torch's reads past the input's end)
        _fail(f"{who}: a length of {lengths.max()} (sequence {int(np.argmax(lengths))}) is "
              f"longer than the input's {steps} time steps")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            _fail(f"{who}: lengths {lengths.tolist()} must be sorted in decreasing order when "
                  "enforce_sorted is True; pass enforce_sorted=False to sort them")
        sorted_indices = None
    else:  # longest first, ties in batch order
        sorted_indices = np.argsort(-lengths, kind="stable").astype(np.int64)
    batch_sizes = (lengths[None, :] > np.arange(lengths.max(initial=0))[:, None]).sum(1)
    return PackedSequence(_pack(x, batch_sizes, sorted_indices), batch_sizes.astype(np.int64),
                          sorted_indices)


def _check_packed(sequence, who):
    if not isinstance(sequence, PackedSequence):
        kind = type(sequence)
        got = f"{kind.__module__}.{kind.__qualname__}" if kind.__name__ == "PackedSequence" \
            else kind.__name__  # (torch's: unpack it and pack again with gc.nn.utils.rnn)
        _fail(f"{who}: expected gc.nn.utils.rnn's PackedSequence (its pack_padded_sequence's), "
              f"got a {got}")
    if isinstance(sequence.batch_sizes, SymbolicValue):
        _fail(f"{who}: the PackedSequence's batch_sizes are traced; pack the sequences inside "
              "the compiled or differentiated function, not outside it")


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """torch.nn.utils.rnn.pad_packed_sequence: a PackedSequence -> (padded, lengths): padded
    (T, B, *) (batch_first: (B, T, *)) in the batch's original order, `padding_value` past
    each sequence's length and T the longest length (or total_length, at least it); lengths a
    numpy int64 array (torch's a CPU tensor)."""
    who = "pad_packed_sequence"
    _check_packed(sequence, who)
    data, batch_sizes = sequence.data, np.asarray(sequence.batch_sizes, np.int64)
    steps, batch = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    if total_length is not None:
        if not is_int(total_length):  # (ir.types': not a bool nor an np.timedelta64)
            _fail(f"{who}: total_length must be an int, got {total_length!r}")
        if total_length < steps:
            _fail(f"{who}: total_length={total_length} is shorter than the longest sequence "
                  f"({steps} steps)")
        steps = int(total_length)
    # each (t, b)'s row of data, or the padding row appended after it
    starts = np.concatenate([[0], np.cumsum(batch_sizes)])
    position = np.arange(batch)  # where each sequence of the original order sits in data's
    if sequence.unsorted_indices is not None:
        position = np.asarray(sequence.unsorted_indices, np.int64)
    rows = np.full((steps, batch), starts[-1], np.int64)
    for t, size in enumerate(batch_sizes):
        rows[t] = np.where(position < size, starts[t] + position, starts[-1])
    table = pad(data, [(0, 1)] + [(0, 0)] * (len(F._shape(data)) - 1),
                constant_values=padding_value)
    padded = F.reshape(F.take(table, rows.reshape(-1)), (steps, batch) + tuple(F._shape(data)[1:]))
    lengths = (batch_sizes[None, :] > position[:, None]).sum(1).astype(np.int64)
    return (F.swapaxes(padded, 0, 1) if batch_first else padded), lengths


def pack_sequence(sequences, enforce_sorted=True):
    """torch.nn.utils.rnn.pack_sequence: sequences (L_i, *) -> a PackedSequence, as
    pack_padded_sequence(pad_sequence(sequences), their lengths)."""
    who = "pack_sequence"
    if not hasattr(sequences, "shape") and isinstance(sequences, Iterable) and \
            not isinstance(sequences, (str, dict)):
        sequences = list(sequences)  # (a generator: read once, for the lengths too)
    # (it checks the list; a tensor's rows are equally long)
    padded = _pad_sequence(sequences, False, 0.0, "right", who)
    lengths = [F._shape(s)[0] for s in sequences] if not hasattr(sequences, "shape") else \
        [F._shape(sequences)[1]] * F._shape(sequences)[0]
    return _pack_padded_sequence(padded, lengths, False, enforce_sorted, who)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """torch.nn.utils.rnn.unpad_sequence: padded (T, B, *) (batch_first: (B, T, *)) -> the
    list of the B sequences, each cut to its length."""
    who = "unpad_sequence"
    if len(F._shape(padded_sequences)) < 2:
        _fail(f"{who}: padded_sequences must have a time and a batch axis, got shape "
              f"{tuple(F._shape(padded_sequences))}")
    x = padded_sequences if batch_first else F.swapaxes(padded_sequences, 0, 1)  # batch first
    lengths = _static_lengths(lengths, F._shape(x)[0], who)
    if lengths.size and lengths.max() > F._shape(x)[1]:
        _fail(f"{who}: a length of {lengths.max()} is longer than the {F._shape(x)[1]} time "
              "steps")
    return [x[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """torch.nn.utils.rnn.unpack_sequence: a PackedSequence -> the list of its sequences,
    in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
