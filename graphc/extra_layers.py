"""torch.nn's LocalResponseNorm, ChannelShuffle and EmbeddingBag and their functions
(gc.local_response_norm, gc.channel_shuffle, gc.embedding_bag), as composites of existing
ops: grad, vmap and compile are those ops'. Each layer is its function with its settings read as guarded
settings at every call; a bad setting is one line naming the layer (or function) and it."""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, user_location, with_article
from ir.ops import api as F
from ir.ops.arrays import _along, pad, segment_sum, take_along_axis
from ir.ops.index import offsets_problem
from ir.ops.registry import SymbolicValue
from ir.types import INT_DTYPES, is_float

from .nn import (Module, Parameter, _Functional, _embedding_table, _no_negative_indices,
                 _padding_index, _pretrained_table, _refuse_unsupported, _size)

__all__ = ["local_response_norm", "channel_shuffle", "embedding_bag"]


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _channels_first(name, x):
    if F._ndim(x) < 3:
        _fail(f"{name}: x must have at least 3 axes (N, C, ...), got shape "
              f"{tuple(F._shape(x))}")


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """torch.nn.functional.local_response_norm of x (N, C, ...): x / (k + alpha / size *
    the sum of x**2 over the channels c - size // 2 ... c + (size - 1) // 2, zeros past the
    ends)**beta, as torch's average pool over a zero-padded window of `size` channels. An
    integer or bool x is refused, as graphc's pools refuse one (torch's computes it in
    float32): cast it to a float type first."""
    _channels_first("local_response_norm", x)
    if not is_float(F._dtype(x)):  # (its mul by a float alpha failed naming mul; the
        # layer's is named by the layer, as its ops were: _called_op)
        _fail(f"{F._called_op('local_response_norm')} of {with_article(F._dtype(x))} value; "
              "cast it to a float type first")
    size = _size("local_response_norm", "size", size, least=1)
    alpha, beta, k = (F._number(f"local_response_norm: {what}", value)
                      for what, value in (("alpha", alpha), ("beta", beta), ("k", k)))
    nd, channels = F._ndim(x), F._shape(x)[1]
    # as torch: x * x in x's dtype, its average pool over the window (summed in float32 for
    # a half x, as torch's pools accumulate), then times alpha, plus k, to the power beta
    dtype = F._dtype(x)
    squares = F.mul(x, x)
    if np.dtype(dtype).itemsize < 4:
        squares = F.cast(squares, "float32")
    squares = pad(squares, [(0, 0), (size // 2, (size - 1) // 2)] + [(0, 0)] * (nd - 2))
    window = _along(squares, 1, 0, channels)
    for start in range(1, size):
        window = F.add(window, _along(squares, 1, start, start + channels))
    average = F.cast(F.div(window, float(size)), dtype)
    return F.div(x, F.pow(F.add(F.mul(average, alpha), k), beta))


def channel_shuffle(x, groups):
    """torch.nn.functional.channel_shuffle of x (N, C, ...): the channels, seen as (groups,
    C / groups), transposed; output channel j * groups + g is input channel g * C / groups + j."""
    _channels_first("channel_shuffle", x)
    groups = _size("channel_shuffle", "groups", groups, least=1)
    n, channels, *rest = F._shape(x)
    if not isinstance(channels, int):
        _fail(f"channel_shuffle: needs a known channel count, got the symbolic size {channels}")
    if channels % groups:
        _fail(f"channel_shuffle: x's {channels} channels must divide by groups ({groups})")
    y = F.reshape(x, (n, groups, channels // groups, *rest))
    y = F.transpose(y, (0, 2, 1) + tuple(range(3, len(rest) + 3)))
    return F.reshape(y, (n, channels, *rest))


class LocalResponseNorm(_Functional):
    """torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)."""

    _function = staticmethod(local_response_norm)
    _settings = ("size", "alpha", "beta", "k")
    _repr_format = "{size}, alpha={alpha}, beta={beta}, k={k}"

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        _size("LocalResponseNorm", "size", size, least=1)
        for what, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            F._number(f"LocalResponseNorm: {what}", value)
        self._keep(size=size, alpha=alpha, beta=beta, k=k)


class ChannelShuffle(_Functional):
    """torch.nn.ChannelShuffle(groups)."""

    _function = staticmethod(channel_shuffle)
    _settings = ("groups",)
    _repr_format = "groups={groups}"

    def __init__(self, groups):
        self._keep(groups=_size("ChannelShuffle", "groups", groups, least=1))


# ---- embedding bags ---------------------------------------------------------------------------
_MODES = ("sum", "mean", "max")


def _check_mode(name, mode):
    if mode not in _MODES:
        _fail(f"{name}: mode must be 'sum', 'mean' or 'max', got {mode!r}")


def _bags(name, idx, offsets, include_last_offset):
    """(flat indices, offsets, number of bags, longest bag or None where unknown) of a 2-d
    input (one bag per row; torch takes no offsets there and ignores include_last_offset)
    or a 1-d input and its offsets, checked as torch checks them where they are known."""
    shape = tuple(F._shape(idx))
    if len(shape) == 2:
        if offsets is not None:
            _fail(f"{name}: offsets must be None for a 2-d input (each row is a bag), got "
                  f"{type(offsets).__name__}")
        bags, length = shape  # (a row of no index: an empty bag, np.arange's step 0 refused)
        return F.reshape(idx, (-1,)), np.arange(bags) * length, bags, length
    if len(shape) != 1:
        _fail(f"{name}: input must be 1-d (with offsets) or 2-d (bags, length), got shape "
              f"{shape}")
    if offsets is None:
        _fail(f"{name}: a 1-d input needs offsets (a 1-d array of the bags' starts)")
    offsets = F._index_operand(offsets)
    if F._ndim(offsets) != 1 or F._dtype(offsets) not in INT_DTYPES:
        _fail(f"{name}: offsets must be a 1-d array of integers, got "
              f"{F._dtype(offsets)} of shape {tuple(F._shape(offsets))}")
    count = F._shape(offsets)[0]
    bags = count - 1 if include_last_offset else count
    if not isinstance(count, int) or bags < 0:
        _fail(f"{name}: offsets must hold a known number of bags (at least one offset with "
              f"include_last_offset), got shape {tuple(F._shape(offsets))}")
    length = shape[0]
    if isinstance(offsets, SymbolicValue) or not isinstance(length, int):  # (checked as the
        # plan runs: the gathers below failed naming scatter_add's rows, or gave values,
        # where torch refuses; a symbolic input length is bound only then)
        return idx, F.check_offsets(offsets, name, length, include_last_offset), bags, None
    known = np.asarray(offsets)
    problem = offsets_problem(known, length, include_last_offset)
    if problem is not None:
        _fail(f"{name}: {problem}")
    ends = np.append(known[1:], shape[0])
    return idx, known, bags, int((ends - known)[:bags].max(initial=0))


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2.0,
                  scale_grad_by_freq=False, mode="mean", sparse=False, per_sample_weights=None,
                  include_last_offset=False, padding_idx=None):
    """torch.nn.functional.embedding_bag: the sum, mean or max of each bag's rows of `weight`
    (num_embeddings, embedding_dim). Bags are the rows of a 2-d input, or the runs of a 1-d
    input starting at `offsets` (the last running to the end, or to offsets[-1] with
    include_last_offset). per_sample_weights (mode 'sum', input's shape) scale the rows;
    entries equal to padding_idx are left out of their bag (and of a mean's count); an empty
    bag gives zeros. max's gradient goes to each feature's first maximum, as torch's.
    max_norm, scale_grad_by_freq and sparse are refused, as Embedding refuses them, and
    norm_type is taken without effect (it is max_norm's). Offsets are checked as torch's,
    traced ones as the plan runs."""
    return _embedding_bag("embedding_bag", input, weight, offsets, max_norm,
                          scale_grad_by_freq, mode, sparse, per_sample_weights,
                          include_last_offset, padding_idx)


def _embedding_bag(name, input, weight, offsets, max_norm, scale_grad_by_freq, mode, sparse,
                   per_sample_weights, include_last_offset, padding_idx):
    _refuse_unsupported(name, max_norm, scale_grad_by_freq, sparse)
    _check_mode(name, mode)
    if F._ndim(weight) != 2:
        _fail(f"{name}: weight must be 2-d (num_embeddings, embedding_dim), got shape "
              f"{tuple(F._shape(weight))}")
    rows, dim = F._shape(weight)
    padding_idx = _padding_index(name, padding_idx, rows)
    idx = F._index_operand(input)
    if per_sample_weights is not None:
        if mode != "sum":
            _fail(f"{name}: per_sample_weights is only for mode 'sum', got mode {mode!r}")
        if tuple(F._shape(per_sample_weights)) != tuple(F._shape(idx)):
            _fail(f"{name}: per_sample_weights must have the input's shape "
                  f"{tuple(F._shape(idx))}, got {tuple(F._shape(per_sample_weights))}")
        per_sample_weights = F.reshape(per_sample_weights, (-1,))
    if F._ndim(idx) == 2:  # (torch's offsets there are the rows' starts: no last offset)
        include_last_offset = False
    idx, offsets, bags, longest = _bags(name, idx, offsets, include_last_offset)
    idx = _no_negative_indices(idx, rows, name)
    length = F._shape(idx)[0]
    if length == 0 or bags == 0:
        return F.zeros((bags, dim), F._dtype(weight))
    kept = None if padding_idx is None else F.not_equal(idx, padding_idx)
    if mode == "max":
        return _bag_max(weight, idx, kept, offsets, bags, length, longest,
                        include_last_offset)
    # each position's bag: how many offsets are at or before it, less one (a position past
    # include_last_offset's end gets bag number `bags`, summed into a row dropped below)
    starts = F.scatter_add(F.ones(F._shape(offsets), "int64"), offsets, length + 1)
    bag = F.sub(F.cumsum(_along(starts, 0, 0, length), 0), 1)
    count = F._shape(offsets)[0]
    picked = F.take(weight, idx)
    if per_sample_weights is not None:
        picked = F.mul(picked, F.expand_dims(F.cast(per_sample_weights, F._dtype(weight)), 1))
    if kept is not None:
        picked = F.where(F.expand_dims(kept, 1), picked, F.zeros((), F._dtype(weight)))
    sums = _along(segment_sum(picked, bag, count), 0, 0, bags)
    if mode == "sum":
        return sums
    members = F.ones((length,), F._dtype(weight)) if kept is None else \
        F.cast(kept, F._dtype(weight))
    sizes = _along(segment_sum(members, bag, count), 0, 0, bags)
    return F.div(sums, F.expand_dims(F.maximum(sizes, 1.0), 1))  # (an empty bag: zeros)


def _bag_max(weight, idx, kept, offsets, bags, length, longest, include_last_offset):
    """Each bag's feature-wise maximum: its rows gathered into (bags, longest, dim) (the
    input's length where the offsets are traced), the padding and positions past its end
    masked out, and the first maximum's row taken, so that the gradient reaches it alone."""
    width = length if longest is None else max(longest, 1)
    starts = _along(offsets, 0, 0, bags)
    ends = _along(offsets, 0, 1, bags + 1) if include_last_offset else \
        F.concatenate([_along(offsets, 0, 1, bags), np.array([length], np.int64)])
    where = F.add(F.expand_dims(F.cast(starts, "int64"), 1), F.arange(width))
    inside = F.less(where, F.expand_dims(F.cast(ends, "int64"), 1))
    picked = F.take(idx, F.where(inside, where, 0))
    if kept is not None:
        inside = F.logical_and(inside, F.take(kept, F.where(inside, where, 0)))
    values = F.take(weight, picked)  # (bags, width, dim)
    masked = F.where(F.expand_dims(inside, 2), values, -np.inf)
    first = F.argmax(masked, axis=1, keepdims=True)
    best = F.squeeze(take_along_axis(values, first, 1), 1)
    any_row = F.expand_dims(F.any(inside, axis=1), 1)
    return F.where(any_row, best, F.zeros((), F._dtype(weight)))


class EmbeddingBag(Module):
    """torch.nn.EmbeddingBag(num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
    scale_grad_by_freq=False, mode='mean', sparse=False, _weight=None,
    include_last_offset=False, padding_idx=None) in torch's order, graphc's rng, std and
    dtype by keyword; forward(input, offsets=None, per_sample_weights=None) is
    embedding_bag of its weight (normal(0, 1) as torch's; padding_idx's row zero). max_norm,
    scale_grad_by_freq and sparse are refused, as Embedding refuses them."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, *, rng=None, std=None,
                 dtype="float32"):
        _refuse_unsupported("EmbeddingBag", max_norm, scale_grad_by_freq, sparse)
        _check_mode("EmbeddingBag", mode)
        weight, padding_idx = _embedding_table("EmbeddingBag", num_embeddings, embedding_dim,
                                               rng, std, dtype, padding_idx, _weight)
        self.weight = Parameter(weight)
        # (norm_type is kept, as torch's layer keeps it, for its repr: it only matters with
        # max_norm, which is refused)
        for name, value in (("norm_type", norm_type), ("mode", mode),
                            ("include_last_offset", bool(include_last_offset)),
                            ("padding_idx", padding_idx)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, mode="mean", sparse=False,
                        include_last_offset=False, padding_idx=None):
        """torch's: an EmbeddingBag whose weight is a copy of `embeddings` (2-d, float, a
        torch tensor too), frozen unless freeze=False; nothing drawn."""
        where = "EmbeddingBag.from_pretrained"
        _refuse_unsupported(where, max_norm, scale_grad_by_freq, sparse)
        table = _pretrained_table(where, embeddings, padding_idx)
        rows, cols = table.shape
        layer = cls(num_embeddings=rows, embedding_dim=cols, norm_type=norm_type, mode=mode,
                    _weight=table,
                    include_last_offset=include_last_offset, padding_idx=padding_idx)
        layer.weight.requires_grad_(not freeze)
        return layer

    def forward(self, input, offsets=None, per_sample_weights=None):
        return _embedding_bag("EmbeddingBag", input, self.weight, offsets, None, False,
                              self._setting("mode"), False, per_sample_weights,
                              self._setting("include_last_offset"),
                              self._setting("padding_idx"))

    def extra_repr(self):
        num, dim = F._shape(self.weight)
        # torch's: norm_type where it is not 2, then mode and a padding_idx that is set
        norm_type = getattr(self, "norm_type", 2.0)  # (a layer pickled before it was kept)
        norm = "" if norm_type == 2 else f", norm_type={norm_type}"
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{num}, {dim}{norm}, mode={self.mode!r}{padding}"
