"""nn.AdaptiveLogSoftmaxWithLoss, torch's efficient softmax approximation (Grave et al.): a head
over the `cutoffs[0]` most frequent classes plus one entry per cluster, and each cluster's
classes behind a two-layer projection, whose size shrinks by `div_value` cluster by cluster.

Parameters are torch's, by torch's names (head.weight, head.bias with head_bias,
tail.i.0.weight, tail.i.1.weight), so load_torch_state_dict reads a torch module's. Where
torch projects only the rows whose target lies in a cluster (a data-dependent gather), the
graph here projects every row through every cluster and selects, so shapes stay static: the
same values and gradients, at the cost of all the tails' matmuls for every row.
"""
from __future__ import annotations

import collections
import math

import numpy as np

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops.arrays import take_along_axis
from ir.ops.registry import SymbolicValue, foreign_array

from .nn import Linear, Module, ModuleList, Sequential

__all__ = ["AdaptiveLogSoftmaxWithLoss"]

_NAME = "AdaptiveLogSoftmaxWithLoss"

# torch's _ASMoutput: forward's (output, loss), each by name too
ASMoutput = collections.namedtuple("_ASMoutput", ["output", "loss"])


def _fail(message):
    raise GraphcError(f"{_NAME}: {message}", (user_location(),))


class AdaptiveLogSoftmaxWithLoss(Module):
    """torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, div_value=4.0,
    head_bias=False) (rng= and dtype= by keyword, as graphc's Linear's): forward(input,
    target) -> (output, loss), output each row's log probability of its target and loss
    their negative mean; log_prob(input) the full (N, n_classes) log probabilities;
    predict(input) the likeliest class. input is (N, in_features) with (N,) targets, or
    (in_features,) with a 0-d one. Targets known at the call outside [0, n_classes) are
    refused in one line, as torch's; traced ones give NaN there."""

    def __init__(self, in_features, n_classes, cutoffs, div_value=4.0, head_bias=False, *,
                 rng=None, dtype="float32"):
        super().__init__()
        cutoffs = list(cutoffs)
        if not cutoffs:
            _fail("cutoffs should be a sequence of length larger than 0")
        # (torch's test: a whole float such as 2.0 passes, as int(c) == c)
        if any(isinstance(c, bool) or not isinstance(c, (int, float, np.number))
               or not math.isfinite(c) or int(c) != c for c in cutoffs) \
                or cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 \
                or max(cutoffs) > n_classes - 1 or len(set(cutoffs)) != len(cutoffs):
            _fail(f"cutoffs should be a sequence of unique, positive integers sorted in an "
                  f"increasing order, where each value is between 1 and n_classes-1 "
                  f"({n_classes - 1}), got {cutoffs}")
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = [int(c) for c in cutoffs] + [n_classes]
        self.div_value, self.head_bias = div_value, head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        # torch's Linear layers and their initialisation; rng and dtype as graphc's Linear's
        self.head = Linear(in_features, self.head_size, head_bias, rng=rng, dtype=dtype)
        hidden = [int(in_features // div_value ** (i + 1)) for i in range(self.n_clusters)]
        self.tail = ModuleList([
            Sequential(Linear(in_features, size, False, rng=rng, dtype=dtype),
                       Linear(size, high - low, False, rng=rng, dtype=dtype))
            for size, low, high in zip(hidden, self.cutoffs, self.cutoffs[1:])])

    def _rows(self, input, what):
        """input as (N, in_features) and whether it was one unbatched row."""
        nd = F._ndim(input)
        if nd not in (1, 2) or F._shape(input)[-1] != self.in_features:
            _fail(f"{what} must be (N, {self.in_features}) or ({self.in_features},), got shape "
                  f"{tuple(F._shape(input))}")
        return (F.expand_dims(input, 0), True) if nd == 1 else (input, False)

    def _cluster_log_probs(self, input, head):
        """Each cluster's (N, size) log probabilities of its classes, its head entry added."""
        return [F.add(F.log_softmax(tail(input), 1),
                      head[:, self.shortlist_size + i:self.shortlist_size + i + 1])
                for i, tail in enumerate(self.tail)]

    def forward(self, input, target):
        if isinstance(target, (list, tuple)):
            target = np.asarray(target)
        target_dims = F._ndim(target)
        if target_dims not in (0, 1):
            _fail(f"0-D or 1-D target tensor expected, multi-target not supported (got shape "
                  f"{tuple(F._shape(target))})")
        if F._dtype(target).kind not in "iu":
            _fail(f"target must hold integer classes, got {F._dtype(target)}")
        x, unbatched = self._rows(input, "input")
        if unbatched != (target_dims == 0):
            _fail(f"input {tuple(F._shape(input))} and target {tuple(F._shape(target))}: a "
                  "0-d target goes with a 1-d input, a 1-d one with a 2-d input")
        rows = F._shape(x)[0]
        y = F.reshape(target, (1,)) if unbatched else target
        if F._shape(y)[0] != rows:
            _fail("Input and target should have the same size in the batch dimension "
                  f"({rows} and {F._shape(y)[0]})")
        known = None if isinstance(target, SymbolicValue) else \
            foreign_array(getattr(target, "data", target))
        if known is not None and known.size and (known.min() < 0
                                                 or known.max() >= self.n_classes):
            _fail(f"Target values should be in [0, {self.n_classes - 1}], but values in range "
                  f"[{int(known.min())}, {int(known.max())}] were found")
        y = F.cast(y, "int64") if F._dtype(y) != np.int64 else y
        head = F.log_softmax(self.head(x), 1)
        # the head's entry: the class itself in the shortlist, else its cluster's
        entry = F.full(F._shape(y), -1, "int64")
        output = F.zeros(F._shape(y), F._dtype(head))
        for i, (low, high) in enumerate(zip(self.cutoffs, self.cutoffs[1:])):
            inside = F.logical_and(F.greater_equal(y, low), F.less(y, high))
            entry = F.where(inside, self.shortlist_size + i, entry)
            cluster = F.log_softmax(self.tail[i](x), 1)
            local = F.clip(F.sub(y, low), 0, high - low - 1)
            picked = F.reshape(take_along_axis(cluster, F.expand_dims(local, 1), 1), (rows,))
            output = F.where(inside, picked, output)
        shortlist = F.less(y, self.shortlist_size)
        entry = F.where(shortlist, y, entry)
        outside = F.logical_or(F.less(entry, 0), F.greater_equal(y, self.n_classes))
        chosen = take_along_axis(head, F.expand_dims(F.clip(entry, 0, self.head_size - 1), 1), 1)
        output = F.add(output, F.reshape(chosen, (rows,)))
        output = F.where(outside, math.nan, output)  # (traced targets out of range)
        loss = F.mean(F.neg(output))
        return ASMoutput(F.reshape(output, ()) if unbatched else output, loss)

    def log_prob(self, input):
        """The (N, n_classes) log probabilities of every class ((n_classes,) for one row)."""
        x, unbatched = self._rows(input, "input")
        head = F.log_softmax(self.head(x), 1)
        out = F.concat([head[:, :self.shortlist_size], *self._cluster_log_probs(x, head)], 1)
        return F.reshape(out, (self.n_classes,)) if unbatched else out

    def predict(self, input):
        """The likeliest class of each row (int64; 0-d for one row), log_prob's argmax."""
        return F.argmax(self.log_prob(input), -1)

    def extra_repr(self):
        return ""  # torch shows its head and tail only
