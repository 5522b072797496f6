"""graphc.nn.functional: torch.nn.functional's names with torch's signatures.

    import graphc.nn.functional as F       # or: from graphc.nn import functional as F
    y = F.gelu(F.layer_norm(x, (C,), w, b))

graphc's top-level functions follow numpy and JAX where those differ from torch (gc.dropout's
rate and seed, gc.pad's pad_width, gc.layer_norm without normalized_shape, gc.gelu's 'tanh'
default, classes on the last axis of gc.cross_entropy, parameters named x): here every name
takes torch's parameters, by position and by keyword, with torch's defaults. Each is either
graphc's own function (where its signature already is torch's) or a thin adapter onto graphc's
ops; none is a second implementation. The names of torch.nn.functional not here are listed
in the README (tests/test_nn_functional.py keeps that list true).
"""
from __future__ import annotations

import inspect
import sys
import warnings

import numpy as np

from ir.errors import GraphcError, user_location, user_stacklevel
from ir.graph import current_graph
from ir.ops import activations as _activations
from ir.ops import api as _api
from ir.ops import arrays as _arrays
from ir.ops import conv_extra as _conv_extra
from ir.ops import losses as _losses
from ir.ops import losses_extra as _losses_extra
from ir.ops import pool_extra as _pool_extra
from ir.ops.attention import linear  # noqa: F401  (torch's signature already)
from ir.ops.resize import interpolate as _interpolate
from ir.ops.sampling import affine_grid, grid_sample, pdist  # noqa: F401  (torch's signatures)
from ir.types import is_float, is_int, is_real
from runtime.eager import Tensor

from . import batch_norm as _batch_norm
from . import dropouts as _dropouts
from . import extra_layers as _extra_layers
from . import nn as _nn

_library = {}
for _module in (_api, _activations, _arrays, _conv_extra, _losses, _losses_extra,
                _pool_extra, _dropouts, _extra_layers):
    _library.update({name: getattr(_module, name) for name in _module.__all__
                     if hasattr(_module, name)})
_library["interpolate"] = _interpolate

# graphc's functions whose signatures (names, order, defaults) are torch's: re-exported
from ir.ops.activations import bilinear  # noqa: E402,F401
from ir.ops.losses import cosine_similarity, pairwise_distance  # noqa: E402,F401
from ir.ops.losses import huber_loss  # noqa: E402,F401
from ir.ops.losses_extra import gaussian_nll_loss  # noqa: E402,F401
from ir.ops.losses_extra import triplet_margin_with_distance_loss  # noqa: E402,F401

from .ctc import ctc_loss  # noqa: E402,F401
from .extra_layers import embedding_bag  # noqa: E402,F401
from .nn import scaled_dot_product_attention  # noqa: E402,F401  (keyword-only seed, salt extra)


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _signature(parameters: str) -> inspect.Signature:
    """The signature written as a def's parameter list (torch's documented one)."""
    return inspect.signature(eval(f"lambda {parameters}: None"))  # noqa: S307 (literals here)


# torch's legacy loss arguments, size_average and reduce: given, they decide the reduction
# (torch's _Reduction.legacy_get_string, with its deprecation warning)
_LEGACY = "size_average=None, reduce=None"


def _legacy_reduction(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", UserWarning, stacklevel=user_stacklevel())
    return reduction


def _named(name, signature, call, doc):
    """torch.nn.functional.<name> of `signature`: binds its arguments as torch's (a wrong call
    is a TypeError naming `name`), passes their dict to `call`; named, signed and documented
    as torch's (`doc`). The one wrapper of _port, _with_indices and _in_place."""
    def wrapper(*args, **kwargs):
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError as exc:  # (bind's words name no function)
            raise TypeError(f"{name}() {exc}") from None
        return call(arguments)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__module__ = __name__
    wrapper.__signature__ = signature
    wrapper.__doc__ = doc
    return wrapper


def _port(name, parameters, function=None, **renamed):
    """torch.nn.functional.<name>: a function of torch's `parameters` (a def's parameter
    list) that calls graphc's `function` (by default the same name) by keyword: torch's
    `input` is graphc's `x` where graphc calls it so, other differing names in `renamed`
    (torch's = graphc's), size_average and reduce folded into reduction."""
    function = function or _library[name]
    signature = _signature(parameters)
    ours = inspect.signature(function).parameters
    if "input" not in ours and "x" in ours:
        renamed.setdefault("input", "x")
    legacy = "size_average" in signature.parameters
    unknown = [p for p in signature.parameters
               if renamed.get(p, p) not in ours and not (legacy and p in ("size_average",
                                                                            "reduce"))]
    assert not unknown, f"{name}: graphc's {function.__name__} has no {unknown}"

    def call(arguments):
        if legacy:
            arguments["reduction"] = _legacy_reduction(
                arguments.pop("size_average", None), arguments.pop("reduce", None),
                arguments.get("reduction", "mean"))
        return function(**{renamed.get(k, k): v for k, v in arguments.items()})

    return _named(name, signature, call,
                  f"torch.nn.functional.{name}{signature}: graphc's {function.__name__}."
                  + (f"\n\n{function.__doc__}" if function.__doc__ else ""))


_PORTED = {
    # activations
    **{name: "input, inplace=False" for name in (
        "relu", "relu6", "selu", "silu", "mish", "hardsigmoid", "hardswish")},
    **{name: "input" for name in ("sigmoid", "tanh", "softsign", "tanhshrink", "logsigmoid")},
    "elu": "input, alpha=1.0, inplace=False",
    "celu": "input, alpha=1.0, inplace=False",
    "leaky_relu": "input, negative_slope=0.01, inplace=False",
    "hardtanh": "input, min_val=-1.0, max_val=1.0, inplace=False",
    "threshold": "input, threshold, value, inplace=False",
    "glu": "input, dim=-1",
    "hardshrink": "input, lambd=0.5",
    "softshrink": "input, lambd=0.5",
    "softplus": "input, beta=1.0, threshold=20.0",
    "prelu": "input, weight",
    "rrelu": "input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False",
    # dropouts (the key: graphc.nn's, as its layers')
    **{name: "input, p=0.5, training=True, inplace=False" for name in (
        "dropout1d", "dropout2d", "dropout3d")},
    **{name: "input, p=0.5, training=False, inplace=False" for name in (
        "alpha_dropout", "feature_alpha_dropout")},
    # convolutions, pools, resampling
    **{f"conv{d}d": "input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1"
       for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": "input, weight, bias=None, stride=1, padding=0, "
       "output_padding=0, groups=1, dilation=1" for d in (1, 2, 3)},
    **{f"max_pool{d}d": "input, kernel_size, stride=None, padding=0, dilation=1, "
       "ceil_mode=False, return_indices=False" for d in (1, 2, 3)},
    "avg_pool1d": "input, kernel_size, stride=None, padding=0, ceil_mode=False, "
    "count_include_pad=True",
    **{f"avg_pool{d}d": "input, kernel_size, stride=None, padding=0, ceil_mode=False, "
       "count_include_pad=True, divisor_override=None" for d in (2, 3)},
    **{f"adaptive_avg_pool{d}d": "input, output_size" for d in (1, 2, 3)},
    **{f"adaptive_max_pool{d}d": "input, output_size, return_indices=False" for d in (1, 2, 3)},
    **{f"lp_pool{d}d": "input, norm_type, kernel_size, stride=None, ceil_mode=False"
       for d in (1, 2, 3)},
    **{f"max_unpool{d}d": "input, indices, kernel_size, stride=None, padding=0, "
       "output_size=None" for d in (1, 2, 3)},
    "fold": "input, output_size, kernel_size, dilation=1, padding=0, stride=1",
    "unfold": "input, kernel_size, dilation=1, padding=0, stride=1",
    "pixel_shuffle": "input, upscale_factor",
    "pixel_unshuffle": "input, downscale_factor",
    "channel_shuffle": "input, groups",
    "interpolate": "input, size=None, scale_factor=None, mode='nearest', align_corners=None, "
    "recompute_scale_factor=None, antialias=False",
    # normalisation
    "group_norm": "input, num_groups, weight=None, bias=None, eps=1e-5",
    "local_response_norm": "input, size, alpha=1e-4, beta=0.75, k=1.0",
    # losses
    "binary_cross_entropy": f"input, target, weight=None, {_LEGACY}, reduction='mean'",
    "binary_cross_entropy_with_logits": f"input, target, weight=None, {_LEGACY}, "
    "reduction='mean', pos_weight=None",
    "cosine_embedding_loss": f"input1, input2, target, margin=0, {_LEGACY}, reduction='mean'",
    "margin_ranking_loss": f"input1, input2, target, margin=0, {_LEGACY}, reduction='mean'",
    "hinge_embedding_loss": f"input, target, margin=1.0, {_LEGACY}, reduction='mean'",
    "kl_div": f"input, target, {_LEGACY}, reduction='mean', log_target=False",
    "l1_loss": f"input, target, {_LEGACY}, reduction='mean', weight=None",
    "mse_loss": f"input, target, {_LEGACY}, reduction='mean', weight=None",
    "smooth_l1_loss": f"input, target, {_LEGACY}, reduction='mean', beta=1.0",
    "soft_margin_loss": f"input, target, {_LEGACY}, reduction='mean'",
    "multilabel_margin_loss": f"input, target, {_LEGACY}, reduction='mean'",
    "multilabel_soft_margin_loss": f"input, target, weight=None, {_LEGACY}, reduction='mean'",
    "multi_margin_loss": f"input, target, p=1, margin=1.0, weight=None, {_LEGACY}, "
    "reduction='mean'",
    "poisson_nll_loss": "input, target, log_input=True, full=False, size_average=None, "
    "eps=1e-8, reduce=None, reduction='mean'",
    "triplet_margin_loss": f"anchor, positive, negative, margin=1.0, p=2, eps=1e-6, "
    f"swap=False, {_LEGACY}, reduction='mean'",
}
_RENAMED = {f"conv{d}d": {"weight": "w", "bias": "b"} for d in (1, 2, 3)}
for _name, _parameters in _PORTED.items():
    globals()[_name] = _port(_name, _parameters, **_RENAMED.get(_name, {}))


# ---- adapters: where graphc's function takes other arguments than torch's -------------------
def _implicit_dim(name, input, dim):
    """torch's softmax-like dim: None takes torch's legacy choice (axis 0 of a 0-, 1- or 3-d
    input, else 1) with a warning, as torch does (the warning names the axis taken)."""
    return _activations._implicit_dim(name, _api._ndim(input)) if dim is None else dim


def _cast_to(input, dtype):
    """torch's dtype= of softmax and its kin: the input cast before the operation."""
    return input if dtype is None else _api.cast(input, dtype)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """torch.nn.functional.softmax; dim=None: torch's legacy implicit axis, with a warning."""
    dim = _implicit_dim("softmax", input, dim)
    input = _cast_to(input, dtype)
    if _api._ndim(input) == 0:  # torch's softmax of a 0-d value: 1 (dim 0 or -1)
        return _api.reshape(_api.softmax(_api.reshape(input, (1,)), dim=dim), ())
    return _api.softmax(input, dim=dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """torch.nn.functional.log_softmax; dim=None: torch's legacy implicit axis, with a
    warning."""
    dim = _implicit_dim("log_softmax", input, dim)
    input = _cast_to(input, dtype)
    if _api._ndim(input) == 0:
        return _api.reshape(_api.log_softmax(_api.reshape(input, (1,)), dim=dim), ())
    return _api.log_softmax(input, dim=dim)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """torch.nn.functional.softmin; dim=None: torch's legacy implicit axis, with a warning."""
    return _activations.softmin(_cast_to(input, dtype), _implicit_dim("softmin", input, dim))


def gelu(input, *, approximate="none"):
    """torch.nn.functional.gelu: the exact erf form by default (gc.gelu's is 'tanh');
    approximate is keyword-only, as torch's."""
    return _api.gelu(input, approximate=approximate)


def dropout(input, p=0.5, training=True, inplace=False):
    """torch.nn.functional.dropout: inverted dropout at rate p while training, its mask keyed
    as graphc.nn.Dropout's (the innermost gc.nn.rng_key block's key, else a fresh one).
    `training` alone decides, as torch's: training=True (the default) drops inside a
    gc.Trainer evaluation too, as torch's does after model.eval(); pass
    training=self.training (False while a Trainer evaluates) or the loss's `training`."""
    _api._flag("dropout", "inplace", inplace)
    p = _dropouts._checked("dropout", input, p, training)
    if not training or p == 0.0:
        return input
    return _nn.keyed_dropout(input, p)


def gumbel_softmax(logits, tau=1, hard=False, eps=1e-10, dim=-1, *, seed=None, salt=None):
    """torch.nn.functional.gumbel_softmax: softmax((logits + g) / tau) along dim, g standard
    Gumbel noise; hard=True: the one-hot of its argmax in the forward pass, the soft sample's
    gradient in the backward (straight-through), as torch's. The noise is keyed as F.dropout's
    mask (and rrelu's slopes): `seed=` if given, else the innermost gc.nn.rng_key block's key,
    else the traced step's dropout key (gc.Trainer's), else a fresh one eagerly; it is drawn
    whatever the mode (torch's has no training flag). eps is unused, as torch's (a value other
    than its default warns, as torch's)."""
    hard = _api._flag("gumbel_softmax", "hard", hard)
    tau = _api._number("gumbel_softmax: tau", tau)
    if not tau > 0.0:
        _fail(f"gumbel_softmax: tau must be > 0, got {tau!r}")
    if not is_float(_api._dtype(logits)):
        _fail(f"gumbel_softmax: logits must be a float array, got {_api._dtype(logits)}")
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", UserWarning,
                      stacklevel=user_stacklevel())
    nd = max(_api._ndim(logits), 1)
    if not is_int(dim) or not -nd <= dim < nd:
        _fail(f"gumbel_softmax: dim {dim!r} is out of range for {_api._ndim(logits)}-d logits")
    drawn = _api.keyed_uniform(logits, _nn.current_key(logits) if seed is None else seed, salt,
                               "gumbel_softmax")
    noise = _api.neg(_api.log(_api.neg(_api.log(drawn))))
    if _api._ndim(logits) == 0:  # (torch's softmax of a 0-d value: 1)
        return softmax(_api.div(_api.add(logits, noise), tau), dim)
    y_soft = _api.softmax(_api.div(_api.add(logits, noise), tau), dim=dim)
    if not hard:
        return y_soft
    depth = _api._shape(logits)[dim]
    y_hard = _arrays.moveaxis(_api.one_hot(_api.argmax(y_soft, dim), depth,
                                           dtype=_api._dtype(logits)), -1, dim)
    return _api.add(_api.sub(y_hard, _api.stop_gradient(y_soft)), y_soft)


def _with_indices(name):
    """torch's <pool>_with_indices: the pool with return_indices=True, whatever
    return_indices says (torch's ignores it): (out, int64 indices)."""
    pool = globals()[name.removesuffix("_with_indices")]
    signature = inspect.signature(pool)

    def call(arguments):
        arguments["return_indices"] = True
        return pool(**arguments)

    return _named(name, signature, call,
                  f"torch.nn.functional.{name}{signature}: {pool.__name__} with "
                  "return_indices=True (the argument is ignored, as torch's): (out, int64 "
                  "indices).")


_WITH_INDICES = [f"{kind}max_pool{d}d_with_indices" for kind in ("", "adaptive_")
                 for d in (1, 2, 3)]
for _name in _WITH_INDICES:
    globals()[_name] = _with_indices(_name)


# torch's in-place spellings (documented as builtins: these are their parameter lists)
_IN_PLACE = {"relu_": "input", "selu_": "input", "elu_": "input, alpha=1.0",
             "celu_": "input, alpha=1.0", "leaky_relu_": "input, negative_slope=0.01",
             "hardtanh_": "input, min_val=-1.0, max_val=1.0",
             "threshold_": "input, threshold, value",
             "rrelu_": "input, lower=1.0 / 8, upper=1.0 / 3, training=False"}


def _in_place(name, parameters):
    """torch.nn.functional.<name>, the in-place spelling of <name without _>: the same
    function, returning the new value. graphc's values are never overwritten (as
    inplace=True changes nothing), so the input is left as it was: use the result."""
    function = globals()[name[:-1]]
    signature = _signature(parameters)

    return _named(name, signature, lambda arguments: function(**arguments),
                  f"torch.nn.functional.{name}{signature}: {function.__name__}'s value, "
                  "returned; the input is not overwritten (graphc's values never are): use "
                  "the result.")


for _name, _parameters in _IN_PLACE.items():
    globals()[_name] = _in_place(_name, _parameters)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm over the trailing `normalized_shape` axes."""
    shape = _nn._normalized_shape(normalized_shape, "layer_norm")
    return _nn._over_trailing("layer_norm", _api.layer_norm, input, shape, weight, bias, eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """torch.nn.functional.rms_norm over the trailing `normalized_shape` axes (eps=None: the
    machine epsilon of the dtype computed in, as torch's)."""
    shape = _nn._normalized_shape(normalized_shape, "rms_norm")
    return _nn._over_trailing("rms_norm", _api.rms_norm, input, shape, weight, eps)


# torch's pad modes by numpy's names (gc.pad's)
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: `pad` holds (before, after) pairs from the LAST axis backwards
    (gc.pad's pad_width is numpy's, from the first); modes constant, reflect, replicate,
    circular. A negative width crops, as torch's: in modes constant, reflect and replicate
    the input is padded and then cropped, in circular cropped and then padded (torch's
    order: a circular pad wraps the cropped input). torch's refusals are kept: a reflect
    width must be below the input's size, a circular one at most the (cropped) size, a
    constant crop at most the size (torch narrows before it pads), and a crop must leave an
    axis of size 0 or more (an empty one as torch's: in constant mode, in reflect and
    replicate with a 2- or 3-d pad (a 1-d one refuses it), in circular where nothing is
    padded back; circular refuses padding an axis its crops emptied, where torch reads
    memory it never wrote)."""
    widths = tuple(pad) if isinstance(pad, (tuple, list)) else None
    nd = _api._ndim(input)
    if widths is None or len(widths) % 2 or len(widths) > 2 * nd \
            or not all(is_int(w) for w in widths):
        _fail(f"pad: pad must be a tuple of ints of even length at most {2 * nd} (twice the "
              f"input's dimensions), got {pad!r}")
    if mode not in _PAD_MODES:
        _fail(f"pad: unsupported mode {mode!r}; use " + ", ".join(_PAD_MODES))
    if mode != "constant" and value is not None:  # torch's check
        _fail(f"pad: mode {mode!r} takes no value (got value={value!r})")
    pairs = [(0, 0)] * (nd - len(widths) // 2) + [
        (int(widths[i]), int(widths[i + 1])) for i in range(len(widths) - 2, -1, -2)]
    shape = _api._shape(input)
    _check_pad_sizes(pad, mode, shape, pairs)

    def crop(value):
        now = _api._shape(value)
        return value[tuple(slice(-min(b, 0), now[axis] + min(a, 0))
                           for axis, (b, a) in enumerate(pairs))]
    cropping = any(b < 0 or a < 0 for b, a in pairs)
    if mode == "circular" and cropping:
        input = crop(input)
        if any(s == 0 for s in _api._shape(input)):  # (torch's: nothing to wrap; the other
            # axes still padded to their widths, an empty output of torch's shape)
            return _arrays.pad(input, [(max(b, 0), max(a, 0)) for b, a in pairs], "constant")
    grown = [(max(b, 0), max(a, 0)) for b, a in pairs]
    kwargs = {"constant_values": 0 if value is None else value} if mode == "constant" else {}
    out = _arrays.pad(input, grown, _PAD_MODES[mode], **kwargs)
    if cropping and mode != "circular":  # torch's negative padding: a crop of the padded
        out = crop(out)
    return out


def _check_pad_sizes(pad, mode, shape, pairs):
    """torch's refusals of pad widths for an input of `shape` (known sizes only)."""
    for axis, ((before, after), size) in enumerate(zip(pairs, shape)):
        if not is_int(size) or (before, after) == (0, 0):
            continue
        size = int(size)
        kept = size + min(before, 0) + min(after, 0)  # (after the crops)
        if mode == "reflect" and max(before, after) >= size:
            _fail(f"pad: a reflect width must be less than the input's size: pad {pad!r} at "
                  f"axis {axis} of size {size}")
        if mode == "circular":
            if kept < 0 or (kept == 0 and max(before, after) > 0):
                _fail(f"pad: the crops of pad {pad!r} leave axis {axis} (size {size}) empty "
                      "before the circular padding")
            if max(before, after) > kept:
                _fail(f"pad: a circular width must be at most the (cropped) input's size "
                      f"{kept}: pad {pad!r} at axis {axis} wraps around more than once")
        elif mode == "constant" and kept < 0:
            # (torch narrows before it pads: a crop past the size is refused even where
            # the other side's padding would bring the axis back)
            _fail(f"pad: pad {pad!r} crops axis {axis} (size {size}) to {kept} before "
                  "padding it")
        elif min(before, after) < 0 and size + before + after < 0:
            _fail(f"pad: pad {pad!r} crops axis {axis} (size {size}) to "
                  f"{size + before + after}")
    last = len(pad) // 2  # (the padded axes: the last ones)
    sizes = tuple(shape)[len(shape) - last:]
    padded = tuple(int(size) + before + after for size, (before, after)
                   in zip(sizes, pairs[len(pairs) - last:]) if is_int(size))
    if mode in ("reflect", "replicate") and last and len(padded) == last \
            and not any(n > 0 for n in padded):
        # (torch's reflect and replicate give an empty output where one of the padded axes
        # keeps an element, and refuse one where none does)
        _fail(f"pad: pad {pad!r} crops every padded axis to 0 (sizes {padded}): the "
              f"output would be empty")


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """torch.nn.functional.embedding: weight's rows at the indices `input`; padding_idx's row
    passes no gradient back. max_norm (an in-place renormalisation of weight's rows),
    scale_grad_by_freq=True and sparse=True are refused, as gc.nn.Embedding refuses them."""
    _nn._refuse_unsupported("embedding", max_norm, scale_grad_by_freq, sparse,
                            why=" (graphc's rows are not renormalised, its gradient is dense "
                                "and unscaled)")
    return _nn.embedding_rows("embedding", weight, input, padding_idx)


def one_hot(input, num_classes=-1):
    """torch.nn.functional.one_hot: int64 rows of num_classes, 1 at the index. num_classes=-1
    is the largest index + 1, which needs the indices' values: eager only. Eagerly an index
    outside [0, num_classes) is refused, as torch's (traced, its row is zeros). The first
    parameter is `input`, the name torch's binding takes (its documentation says tensor).
    num_classes 0 or below -1 is refused, as every torch call with it is (an empty input:
    'Can not infer total number of classes'; another: an index not below num_classes)."""
    if isinstance(num_classes, (bool, np.bool_)) or not is_int(num_classes):
        _fail(f"one_hot: num_classes must be an int, got {num_classes!r}")
    num_classes = int(num_classes)
    if num_classes == 0 or num_classes < -1:
        _fail(f"one_hot: num_classes must be positive (or -1: the largest index + 1), got "
              f"{num_classes}")
    values = input.data if isinstance(input, Tensor) else input
    concrete = isinstance(values, (np.ndarray, np.generic, list, tuple, int)) \
        and current_graph() is None
    if concrete:
        values = np.asarray(values)
        if values.dtype.kind not in "iu":
            _fail(f"one_hot: the indices must be integers, got {values.dtype}")
        largest = int(values.max()) if values.size else -1
        if num_classes == -1:
            num_classes = largest + 1
            if num_classes == 0:
                _fail("one_hot: num_classes=-1 of no indices; pass num_classes")
        elif values.size and (values.min() < 0 or largest >= num_classes):
            _fail(f"one_hot: index {int(values.min()) if values.min() < 0 else largest} is "
                  f"outside [0, {num_classes})")
    elif num_classes == -1:
        _fail("one_hot: num_classes=-1 (the largest index + 1) depends on the values, "
              "unknown while tracing: pass num_classes")
    return _api.one_hot(input, num_classes, dtype="int64")


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """torch.nn.functional.normalize; out= (a tensor to write into) is refused: graphc's
    results are new values."""
    if out is not None:
        _fail("normalize: out= is not supported (graphc's results are new values); use the "
              "returned one")
    return _losses.normalize(input, p, dim, eps)


def _classes_last(input):
    """torch's (N, C, d1, ...) as graphc's (N, d1, ..., C): the classes moved to the end."""
    return _arrays.moveaxis(input, 1, -1) if _api._ndim(input) > 2 else input


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy: input (C,), (N, C) or (N, C, d1, ...), classes on
    axis 1 (gc.cross_entropy's are on the last); target class indices or probabilities."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    soft = _api._ndim(target) == _api._ndim(input) and _api._ndim(input) > 2
    return _api.cross_entropy(_classes_last(input),
                              _classes_last(target) if soft else target, ignore_index,
                              reduction, weight, label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """torch.nn.functional.nll_loss: log-probabilities (N, C) or (N, C, d1, ...), classes on
    axis 1 (gc.nll_loss's are on the last)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _api.nll_loss(_classes_last(input), target, ignore_index, reduction, weight)


def _statistics_in_place(name, running, moved):
    """Write the moved running statistics into the given arrays, as torch's in-place update:
    eagerly only (a traced function has nowhere to write them: refused)."""
    if any(getattr(value, "graph", None) is not None for value in (*running, *moved)) \
            or current_graph() is not None:
        _fail(f"{name}: training=True with running_mean and running_var updates them in "
              "place, which a traced function cannot do: use graphc.nn's layer "
              "(model.apply(..., state=) carries the update), or pass running_mean=None and "
              "running_var=None")
    for array, value in zip(running, moved):
        target = array.data if isinstance(array, Tensor) else array
        if not isinstance(target, np.ndarray):
            _fail(f"{name}: the running statistics must be arrays to update in place, got "
                  f"{type(array).__name__}")
        target[...] = np.asarray(value.data if isinstance(value, Tensor) else value)


def _both_or_neither(name, running_mean, running_var):
    """torch's check: one running statistic without the other was left neither used nor
    moved."""
    if (running_mean is None) != (running_var is None):
        _fail(f"{name}: running_mean and running_var must either both be None or neither be "
              "None")


def _momentum(name, momentum):
    if not is_real(momentum) or isinstance(momentum, bool):
        _fail(f"{name}: momentum must be a number, got {momentum!r}")
    return float(momentum)


def _by_running(input, running_mean, running_var, weight, bias, eps):
    """input normalised by the running statistics, scaled and shifted per channel (axis 1)."""
    per_channel = (1, _api._shape(input)[1]) + (1,) * (_api._ndim(input) - 2)
    dtype = _api._dtype(input)
    mean = _api.reshape(_api.cast(running_mean, dtype), per_channel)
    var = _api.reshape(_api.cast(running_var, dtype), per_channel)
    y = (input - mean) * _api.rsqrt(var + eps)
    if weight is None:  # (a bias without a weight still shifts, as torch's)
        return y if bias is None else y + _api.reshape(bias, per_channel)
    return _batch_norm._scale_shift(y, weight, bias, per_channel)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """torch.nn.functional.batch_norm: input (N, C, ...) normalised per channel by the batch's
    statistics while training (moving running_mean and running_var in place when given,
    eagerly), else by running_mean and running_var."""
    name = "batch_norm"
    shape, momentum = _norm_arguments(name, input, running_mean, running_var, momentum, 2,
                                      "(N, C, ...)")
    if not training:
        if running_mean is None or running_var is None:  # torch's
            _fail(f"{name}: running_mean and running_var must be given when training=False")
        return _by_running(input, running_mean, running_var, weight, bias, eps)
    count = int(np.prod([shape[0], *shape[2:]]))
    if count < 2:  # torch's check: one value's variance is 0
        _fail(f"{name}: expected more than 1 value per channel when training, got input of "
              f"shape {tuple(shape)}")
    out = _api.batch_norm(input, weight, bias, eps)
    if running_mean is not None:
        moments = _api.batch_moments(input)
        _moved_in_place(name, running_mean, running_var, moments[0], moments[1], count,
                        momentum)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """torch.nn.functional.instance_norm: each sample's channel normalised by its own
    statistics (use_input_stats, moving running_mean and running_var in place by their mean
    over the batch when given, eagerly), else by running_mean and running_var."""
    name = "instance_norm"
    shape, momentum = _norm_arguments(name, input, running_mean, running_var, momentum, 3,
                                      "(N, C, ...) with spatial axes")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            _fail(f"{name}: running_mean and running_var must be given when "
                  "use_input_stats=False")
        return _by_running(input, running_mean, running_var, weight, bias, eps)
    count = int(np.prod(shape[2:]))
    if count < 2:
        _fail(f"{name}: expected more than 1 spatial element when training, got input of "
              f"shape {tuple(shape)}")
    out = _api.instance_norm(input, weight, bias, eps)
    if running_mean is not None:
        N, C = shape[0], shape[1]
        folded = _api.reshape(input, (1, N * C) + tuple(shape[2:]))
        moments = _api.reshape(_api.batch_moments(folded), (2, N, C))
        _moved_in_place(name, running_mean, running_var, _api.mean(moments[0], 0),
                        _api.mean(moments[1], 0), count, momentum)
    return out


def _norm_arguments(name, input, running_mean, running_var, momentum, dims, layout):
    """(input's shape, momentum) of batch_norm / instance_norm, each argument checked as
    torch's: a float input of at least `dims` axes laid out as `layout`, both running
    statistics or neither, a momentum in torch's terms."""
    _batch_norm._check_float_input(name, input)
    _both_or_neither(name, running_mean, running_var)
    momentum = _momentum(name, momentum)
    shape = _api._shape(input)
    if len(shape) < dims:
        _fail(f"{name}: expected input {layout}, got shape {tuple(shape)}")
    return shape, momentum


def _moved_in_place(name, running_mean, running_var, mean, var, count, momentum):
    """The running statistics moved toward the batch's `mean` and `var` (of `count` values
    each), in place, as torch's functional norms move them. Called after the output is
    computed: a refused call leaves them unmoved."""
    moved = _batch_norm.moved_statistics(running_mean, running_var, mean, var, count,
                                         momentum)
    _statistics_in_place(name, (running_mean, running_var), moved)


_ADAPTED = ["softmax", "log_softmax", "softmin", "gelu", "dropout", "gumbel_softmax",
            *_WITH_INDICES, *_IN_PLACE, "layer_norm", "rms_norm",
            "pad", "embedding", "one_hot", "normalize", "cross_entropy", "nll_loss",
            "batch_norm", "instance_norm"]
_REEXPORTED = ["linear", "bilinear", "cosine_similarity", "pairwise_distance", "huber_loss",
               "gaussian_nll_loss", "triplet_margin_with_distance_loss", "ctc_loss",
               "embedding_bag", "scaled_dot_product_attention", "affine_grid", "grid_sample",
               "pdist"]
__all__ = sorted([*_PORTED, *_ADAPTED, *_REEXPORTED])

# `import graphc.nn.functional as F`: graphc.nn is a module, not a package, so this module is
# registered under that name (graphc/__init__.py imports it) and set as its attribute
sys.modules["graphc.nn.functional"] = sys.modules[__name__]
_nn.functional = sys.modules[__name__]
