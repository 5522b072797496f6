"""torch.nn.functional's scaled_dot_product_attention and linear, built from the primitive ops.

Attention is written as the GPT model writes it (graphc/models/gpt.py): the scores product,
its scale, the causal mask as a masked_fill of -inf, softmax, then the product with the
values, so that the passes fuse and lower it as they do the model's (the fused causal softmax,
the attention heads on the register tile). torch's semantics: a boolean attn_mask is True
where a query may attend (the opposite of MultiheadAttention's masks), a float one is added;
is_causal is the top-left aligned lower triangle and excludes attn_mask; a row no key may be
attended from gives zeros and a zero gradient (torch's safe softmax), not NaN;
enable_gqa repeats each key and value head over its group of query heads.
tests/test_attention.py compares values and gradients with torch's in float64.
"""
from __future__ import annotations

import math

import numpy as np

from ..types import broadcast_shapes, is_float, is_half, is_real
from . import api as F
from . import precision
from .api import _dtype, _fail, _flag, _ndim, _shape
from .arrays import repeat

__all__ = ["scaled_dot_product_attention", "linear"]


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *, seed=None,
                                 salt=None):
    """softmax(query @ key^T * scale + mask) @ value over the last two axes of (..., L, E)
    queries, (..., S, E) keys and (..., S, Ev) values, the leading axes broadcast, as
    torch.nn.functional.scaled_dot_product_attention. scale: 1 / sqrt(E) unless given.
    dropout_p > 0 drops attention weights as gc.dropout does, whose mask is a function of
    `seed` (an integer scalar, usually an input that changes every step) and `salt`; torch
    applies it whenever dropout_p > 0 (pass 0.0 for evaluation), and so does this. A masked
    key never reaches the output, a NaN one neither (torch's math kernel adds -inf to it,
    which lets a NaN through; its fused kernels skip it, as this does)."""
    name = "scaled_dot_product_attention"
    for what, x in (("query", query), ("key", key), ("value", value)):
        if _ndim(x) < 2:
            _fail(f"{name}: {what} must have at least 2 axes (..., length, features), got "
                  f"shape {tuple(_shape(x))}")
        if not is_float(_dtype(x)):
            _fail(f"{name}: {what} must be a float array, got {_dtype(x)}")
    if not (_dtype(query) == _dtype(key) == _dtype(value)):
        _fail(f"{name}: query, key and value must have one dtype, got {_dtype(query)}, "
              f"{_dtype(key)} and {_dtype(value)}")
    if is_half(_dtype(query)):
        # in float32, rounded once, as torch's CPU kernel accumulates: a half q @ k^T
        # overflows to inf (and the softmax to NaN) where the scaled scores fit
        return F.cast(scaled_dot_product_attention(
            *(F.cast(x, "float32") for x in (query, key, value)), attn_mask, dropout_p,
            is_causal, scale, enable_gqa, seed=seed, salt=salt), _dtype(query))
    (L, E), (S, E_key), S_value = _shape(query)[-2:], _shape(key)[-2:], _shape(value)[-2]
    if not _same(E, E_key):
        _fail(f"{name}: query's features ({E}) and key's ({E_key}) differ")
    if not _same(S, S_value):
        _fail(f"{name}: key has {S} positions and value {S_value}")
    _flag(name, "is_causal", is_causal)
    _flag(name, "enable_gqa", enable_gqa)
    if is_causal and attn_mask is not None:  # torch's rule
        _fail(f"{name}: attn_mask must not be given with is_causal=True")
    if not (is_real(dropout_p) and 0.0 <= dropout_p <= 1.0):
        _fail(f"{name}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
    if 0 < dropout_p < 1 and seed is None:
        _fail(f"{name}: dropout_p={dropout_p} needs seed= (an integer scalar that changes every "
              "step, as gc.dropout's), or dropout_p=0.0 for evaluation")
    if scale is None:
        if not isinstance(E, int):
            _fail(f"{name}: the default scale 1/sqrt(E) needs a known feature size, got {E}; "
                  "give scale=")
        # (no features: every score is 0, which torch's inf scale leaves as uniform weights)
        scale = 1.0 / math.sqrt(E) if E else 1.0
    elif not is_real(scale):
        _fail(f"{name}: scale must be a number, got {scale!r}")
    if enable_gqa:
        key, value = _repeat_heads(name, query, key, value)
    lead = [tuple(_shape(x)[:-2]) for x in (query, key, value)]
    if broadcast_shapes(*lead) is None:
        _fail(f"{name}: the leading axes of query {lead[0]}, key {lead[1]} and value "
              f"{lead[2]} do not broadcast")
    score_shape = broadcast_shapes(lead[0], lead[1]) + (L, S)
    if attn_mask is not None and broadcast_shapes(tuple(_shape(attn_mask)),
                                                  score_shape) != score_shape:
        _fail(f"{name}: attn_mask of shape {tuple(_shape(attn_mask))} does not broadcast to "
              f"the scores' {score_shape} (..., L, S)")

    scores = attention_scores(query, key, scale)  # (..., L, S)
    if is_causal:
        scores = F.masked_fill(scores, F.logical_not(F.tril_mask(L, S)), -math.inf)
    weights = None
    if attn_mask is not None:
        mask_dtype = np.dtype(_dtype(attn_mask))
        if mask_dtype == np.bool_:
            scores = F.masked_fill(scores, F.logical_not(attn_mask), -math.inf)
        elif is_float(mask_dtype):
            scores = add_float_mask(scores, attn_mask)
        else:
            _fail(f"{name}: attn_mask must be boolean (True: may attend) or float (added), "
                  f"got {mask_dtype}")
        weights = safe_softmax(scores)
    if weights is None:
        weights = F.softmax(scores, -1)
    if dropout_p > 0:  # (1: every weight zeroed, as torch's, by F.dropout without a seed)
        weights = F.dropout(weights, float(dropout_p), seed, salt=salt)
    return F.matmul(weights, value)


def attention_scores(query, key, scale):
    """query @ key^T * scale, of (..., L, E) queries and (..., S, E) keys: the attention
    scores of scaled_dot_product_attention, MultiheadAttention and the GPT model. Half
    queries, or any under float16 autocast, are scaled before the product: their q @ k^T
    overflows float16 to inf where the scaled scores fit (torch's math kernel scales q and
    k by sqrt(scale) each, to the same end)."""
    if is_half(_dtype(query)) or precision.active_half() == np.float16:
        return F.matmul(F.mul(query, float(scale)), F.swapaxes(key, -1, -2))
    return F.mul(F.matmul(query, F.swapaxes(key, -1, -2)), float(scale))


def add_float_mask(scores, mask):
    """scores + a float mask, the mask in the scores' dtype: numpy's natural
    np.triu(np.full((T, T), -np.inf), 1) is float64 where the scores are float32 (torch
    refuses that mask; a half or bfloat16 one would be promoted). A mask of the scores'
    dtype is added as it is (an eager cast to its own dtype would copy it)."""
    dtype = _dtype(scores)
    return F.add(scores, mask if _dtype(mask) == dtype else F.cast(mask, dtype))


def safe_softmax(scores):
    """softmax over the last axis, torch's safe softmax: a row whose scores are all -inf (a
    query that may attend to nothing) gives zeros and a zero gradient, not NaN. The masked
    attentions (scaled_dot_product_attention with a mask, MultiheadAttention and the
    Transformer layers with one) share it; without a mask no row can be blocked, and the
    plain softmax keeps the causal fusions."""
    keys = _shape(scores)[-1]
    if keys == 0:  # no keys: nothing to divide (and max has no identity)
        return F.softmax(scores, -1)
    if isinstance(keys, int):
        # (from a row's maximum: two ops, where not any(scores != -inf) takes five)
        blocked = F.equal(F.max(scores, -1, keepdims=True), -math.inf)
    else:
        # a symbolic key length may be bound to 0, where max has no identity and any has
        blocked = F.logical_not(F.any(F.not_equal(scores, -math.inf), -1, keepdims=True))
    return F.where(blocked, 0.0, F.softmax(F.where(blocked, 0.0, scores), -1))


def _same(a, b) -> bool:
    return a == b if isinstance(a, int) and isinstance(b, int) else str(a) == str(b)


def _repeat_heads(name, query, key, value):
    """enable_gqa: key's and value's heads (axis -3) each repeated over their group of
    query heads, as torch's repeat_interleave."""
    if min(_ndim(query), _ndim(key), _ndim(value)) < 3:
        _fail(f"{name}: enable_gqa needs heads, (..., heads, length, features)")
    heads = _shape(query)[-3]
    repeated = []
    for what, x in (("key", key), ("value", value)):  # each by its own group, as torch's
        own = _shape(x)[-3]
        if not (isinstance(heads, int) and isinstance(own, int)):
            _fail(f"{name}: enable_gqa needs known head counts, got query's {heads} and "
                  f"{what}'s {own}")
        if not own or heads % own:
            _fail(f"{name}: enable_gqa needs query's heads ({heads}) to be a multiple of "
                  f"{what}'s ({own})")
        repeated.append(x if heads == own else repeat(x, heads // own, -3))
    return tuple(repeated)


def linear(input, weight, bias=None):
    """input @ weight^T + bias, as torch.nn.functional.linear: weight in torch's (out, in)
    layout (graphc's nn.Linear keeps (in, out)), bias (out,)."""
    if _ndim(weight) not in (1, 2):
        _fail(f"linear: weight must be 1-d or 2-d (out, in), got shape {tuple(_shape(weight))}")
    if not _shape(input) or not _same(_shape(input)[-1], _shape(weight)[-1]):
        _fail(f"linear: input's last axis ({_shape(input)[-1] if _shape(input) else 'none'}) "
              f"must be weight's in features ({_shape(weight)[-1]})")
    out = F.matmul(input, F.swapaxes(weight, 0, 1) if _ndim(weight) == 2 else weight)
    if bias is None:
        return out
    if broadcast_shapes(tuple(_shape(bias)), tuple(_shape(out))) != tuple(_shape(out)):
        _fail(f"linear: bias of shape {tuple(_shape(bias))} does not broadcast to the "
              f"output's {tuple(_shape(out))}")
    return F.add(out, bias)

