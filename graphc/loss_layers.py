"""torch.nn's other loss and distance modules (BCELoss, BCEWithLogitsLoss, L1Loss,
SmoothL1Loss, HuberLoss, KLDivLoss, CosineSimilarity, PairwiseDistance; MarginRankingLoss,
TripletMarginLoss, TripletMarginWithDistanceLoss, HingeEmbeddingLoss, CosineEmbeddingLoss,
SoftMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss, MultiLabelMarginLoss,
PoissonNLLLoss, GaussianNLLLoss) and the Softplus
and LogSigmoid activations, on graphc.nn's Module. Each is its function in ir/ops/losses.py
or ir/ops/losses_extra.py (or the core API) with its settings read as guarded settings at
every call, so a compiled plan traced before `loss.reduction = "sum"` is not reused after
it. Weights are buffers, as torch's and nn.CrossEntropyLoss's (nn._weights_as_buffers)."""
from __future__ import annotations

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.ops import losses as L
from ir.ops import losses_extra as LX

from .activation_layers import _activation
from .nn import _Functional, _weights_as_buffers


class _Pair(_Functional):
    """A module `_function(a, b, **settings, **weights)`: the settings guarded, the weights
    (`_weights`: buffers, or None) read as inputs, whether each is None guarded."""

    _weights: tuple = ()

    def _keep(self, **settings):
        _weights_as_buffers(self, settings, self._weights)
        super()._keep(**settings)

    def forward(self, a, b):
        settings = {name: self._setting(name, a) for name in self._settings}
        settings.update((name, self._weight(name, a)) for name in self._weights)
        return self._function(a, b, **settings)

    def extra_repr(self):
        return ""  # torch's losses and distances show no settings: `BCELoss()`


class _Triple(_Pair):
    """A module `_function(a, b, c, **settings, **weights)`, as _Pair."""

    def forward(self, a, b, c):
        settings = {name: self._setting(name, a) for name in self._settings}
        settings.update((name, self._weight(name, a)) for name in self._weights)
        return self._function(a, b, c, **settings)


# The legacy size_average and reduce arguments come before reduction in torch's signatures
# of the first five: graphc has not them, so the settings are keyword-only, and a call
# written for torch's positions cannot put a value in the wrong one.
class BCELoss(_Pair):
    """torch.nn.BCELoss(weight=None, reduction='mean'): graphc.binary_cross_entropy."""

    _function = staticmethod(L.binary_cross_entropy)
    _settings, _weights = ("reduction",), ("weight",)

    def __init__(self, weight=None, *, reduction="mean"):
        self._keep(weight=weight, reduction=reduction)


class BCEWithLogitsLoss(_Pair):
    """torch.nn.BCEWithLogitsLoss(weight=None, reduction='mean', pos_weight=None):
    graphc.binary_cross_entropy_with_logits."""

    _function = staticmethod(L.binary_cross_entropy_with_logits)
    _settings, _weights = ("reduction",), ("weight", "pos_weight")

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        self._keep(weight=weight, reduction=reduction, pos_weight=pos_weight)


class L1Loss(_Pair):
    """torch.nn.L1Loss(reduction='mean'): graphc.l1_loss."""

    _function = staticmethod(L.l1_loss)
    _settings = ("reduction",)

    def __init__(self, *, reduction="mean"):
        self._keep(reduction=reduction)


class SmoothL1Loss(_Pair):
    """torch.nn.SmoothL1Loss(reduction='mean', beta=1.0): graphc.smooth_l1_loss."""

    _function = staticmethod(L.smooth_l1_loss)
    _settings = ("reduction", "beta")

    def __init__(self, *, reduction="mean", beta=1.0):
        self._keep(reduction=reduction, beta=beta)


class KLDivLoss(_Pair):
    """torch.nn.KLDivLoss(reduction='mean', log_target=False): graphc.kl_div."""

    _function = staticmethod(L.kl_div)
    _settings = ("reduction", "log_target")

    def __init__(self, *, reduction="mean", log_target=False):
        self._keep(reduction=reduction, log_target=log_target)


class HuberLoss(_Pair):
    """torch.nn.HuberLoss(reduction='mean', delta=1.0): graphc.huber_loss."""

    _function = staticmethod(L.huber_loss)
    _settings = ("reduction", "delta")

    def __init__(self, reduction="mean", delta=1.0):
        self._keep(reduction=reduction, delta=delta)


class CosineSimilarity(_Pair):
    """torch.nn.CosineSimilarity(dim=1, eps=1e-8): graphc.cosine_similarity."""

    _function = staticmethod(L.cosine_similarity)
    _settings = ("dim", "eps")

    def __init__(self, dim=1, eps=1e-8):
        self._keep(dim=dim, eps=eps)


class PairwiseDistance(_Pair):
    """torch.nn.PairwiseDistance(p=2.0, eps=1e-6, keepdim=False): graphc.pairwise_distance."""

    _function = staticmethod(L.pairwise_distance)
    _settings = ("p", "eps", "keepdim")

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        self._keep(p=p, eps=eps, keepdim=keepdim)


Softplus = _activation("Softplus", F.softplus, "torch.nn.Softplus(beta=1.0, threshold=20.0)",
                       beta=1.0, threshold=20.0)
LogSigmoid = _activation("LogSigmoid", F.log_sigmoid, "torch.nn.LogSigmoid()")


# torch's legacy size_average and reduce come after these modules' own settings (and before
# PoissonNLLLoss's eps): reduction, and what follows them, is keyword-only, as above.
class MarginRankingLoss(_Triple):
    """torch.nn.MarginRankingLoss(margin=0.0, reduction='mean'): graphc.margin_ranking_loss
    of (input1, input2, target)."""

    _function = staticmethod(LX.margin_ranking_loss)
    _settings = ("margin", "reduction")

    def __init__(self, margin=0.0, *, reduction="mean"):
        self._keep(margin=margin, reduction=reduction)


class TripletMarginLoss(_Triple):
    """torch.nn.TripletMarginLoss(margin=1.0, p=2.0, eps=1e-6, swap=False, reduction='mean'):
    graphc.triplet_margin_loss of (anchor, positive, negative); margin must be > 0."""

    _function = staticmethod(LX.triplet_margin_loss)
    _settings = ("margin", "p", "eps", "swap", "reduction")

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, *, reduction="mean"):
        if not isinstance(margin, bool) and isinstance(margin, (int, float)) and margin <= 0:
            raise GraphcError(f"TripletMarginLoss: margin must be > 0, got {margin}",
                              (user_location(),))
        self._keep(margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)


class TripletMarginWithDistanceLoss(_Triple):
    """torch.nn.TripletMarginWithDistanceLoss(*, distance_function=None, margin=1.0,
    swap=False, reduction='mean'): graphc.triplet_margin_with_distance_loss of (anchor,
    positive, negative); margin must be > 0. As torch's, None is a PairwiseDistance(), and a
    module distance is a child (shown, saved with its buffers)."""

    _function = staticmethod(LX.triplet_margin_with_distance_loss)
    _settings = ("distance_function", "margin", "swap", "reduction")

    def __init__(self, *, distance_function=None, margin=1.0, swap=False, reduction="mean"):
        if not isinstance(margin, bool) and isinstance(margin, (int, float)) and margin <= 0:
            raise GraphcError(f"TripletMarginWithDistanceLoss: margin must be > 0, got "
                              f"{margin}", (user_location(),))
        self._keep(margin=margin, swap=swap, reduction=reduction)
        self.distance_function = PairwiseDistance() if distance_function is None else \
            distance_function  # (set as an attribute: a module is a child)


class HingeEmbeddingLoss(_Pair):
    """torch.nn.HingeEmbeddingLoss(margin=1.0, reduction='mean'):
    graphc.hinge_embedding_loss."""

    _function = staticmethod(LX.hinge_embedding_loss)
    _settings = ("margin", "reduction")

    def __init__(self, margin=1.0, *, reduction="mean"):
        self._keep(margin=margin, reduction=reduction)


class CosineEmbeddingLoss(_Triple):
    """torch.nn.CosineEmbeddingLoss(margin=0.0, reduction='mean'):
    graphc.cosine_embedding_loss of (input1, input2, target)."""

    _function = staticmethod(LX.cosine_embedding_loss)
    _settings = ("margin", "reduction")

    def __init__(self, margin=0.0, *, reduction="mean"):
        self._keep(margin=margin, reduction=reduction)


class SoftMarginLoss(_Pair):
    """torch.nn.SoftMarginLoss(reduction='mean'): graphc.soft_margin_loss."""

    _function = staticmethod(LX.soft_margin_loss)
    _settings = ("reduction",)

    def __init__(self, *, reduction="mean"):
        self._keep(reduction=reduction)


class MultiLabelSoftMarginLoss(_Pair):
    """torch.nn.MultiLabelSoftMarginLoss(weight=None, reduction='mean'):
    graphc.multilabel_soft_margin_loss."""

    _function = staticmethod(LX.multilabel_soft_margin_loss)
    _settings, _weights = ("reduction",), ("weight",)

    def __init__(self, weight=None, *, reduction="mean"):
        self._keep(weight=weight, reduction=reduction)


class MultiMarginLoss(_Pair):
    """torch.nn.MultiMarginLoss(p=1, margin=1.0, weight=None, reduction='mean'):
    graphc.multi_margin_loss; p must be 1 or 2 and weight 1-d."""

    _function = staticmethod(LX.multi_margin_loss)
    _settings, _weights = ("p", "margin", "reduction"), ("weight",)

    def __init__(self, p=1, margin=1.0, weight=None, *, reduction="mean"):
        if isinstance(p, bool) or p not in (1, 2):
            raise GraphcError(f"MultiMarginLoss: p must be 1 or 2, got {p!r}",
                              (user_location(),))
        # (after _keep, whose _weights_as_buffers refuses a list of traced values, which
        # _ndim cannot read)
        self._keep(p=p, margin=margin, weight=weight, reduction=reduction)
        if self.weight is not None and F._ndim(self.weight) != 1:
            raise GraphcError(f"MultiMarginLoss: weight must be None or 1-d, got shape "
                              f"{tuple(F._shape(self.weight))}", (user_location(),))


class MultiLabelMarginLoss(_Pair):
    """torch.nn.MultiLabelMarginLoss(reduction='mean'): graphc.multilabel_margin_loss."""

    _function = staticmethod(LX.multilabel_margin_loss)
    _settings = ("reduction",)

    def __init__(self, *, reduction="mean"):
        self._keep(reduction=reduction)


class PoissonNLLLoss(_Pair):
    """torch.nn.PoissonNLLLoss(log_input=True, full=False, eps=1e-8, reduction='mean'):
    graphc.poisson_nll_loss."""

    _function = staticmethod(LX.poisson_nll_loss)
    _settings = ("log_input", "full", "eps", "reduction")

    def __init__(self, log_input=True, full=False, *, eps=1e-8, reduction="mean"):
        self._keep(log_input=log_input, full=full, eps=eps, reduction=reduction)


class GaussianNLLLoss(_Triple):
    """torch.nn.GaussianNLLLoss(*, full=False, eps=1e-6, reduction='mean'):
    graphc.gaussian_nll_loss of (input, target, var); var may be a number."""

    _function = staticmethod(LX.gaussian_nll_loss)
    _settings = ("full", "eps", "reduction")

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        self._keep(full=full, eps=eps, reduction=reduction)
