"""torch.nn's transformer layers: `nn.TransformerEncoderLayer`, `nn.TransformerDecoderLayer`,
the stacks `nn.TransformerEncoder`, `nn.TransformerDecoder` and the whole `nn.Transformer`,
with torch's arguments, submodule names, computation (post-norm by default,
`norm_first=True` pre-norm), dropout sites and initialisation, built from graphc's
MultiheadAttention, Linear, LayerNorm and Dropout. Weights are in graphc's layout
(Linear's and in_proj_weight transposed against torch's), as everywhere in gc.nn.

    layer = gc.nn.TransformerEncoderLayer(64, 4, dim_feedforward=256, batch_first=True)
    y = layer(x, is_causal=True)            # x (N, T, 64)
"""
from __future__ import annotations

import copy

import numpy as np

from ir.errors import GraphcError, user_location
from ir.ops import api as F
from ir.types import is_float

from . import init
from .nn import (Dropout, LayerNorm, Linear, Module, ModuleList, MultiheadAttention,
                 _check_mask_kind, _check_mask_shape, _layer_dtype, _probability,
                 _refuse_device, _refuse_non_array_mask, _rng, _size)


def _activation(name, activation):
    """The feed-forward block's activation: a Module as it is, else a function, as torch's
    F.relu or F.gelu (the exact form) for the names."""
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return _exact_gelu
    if isinstance(activation, Module) or (callable(activation)
                                          and not isinstance(activation, (str, type))):
        return activation  # torch takes a unary callable (F.gelu) too
    raise GraphcError(f"{name}: activation must be 'relu', 'gelu', a Module or a function, got "
                      f"{activation!r}", (user_location(),))


def _exact_gelu(x):
    return F.gelu(x, approximate="none")


def _check_settings(name, d_model, nhead, dim_feedforward, dropout, layer_norm_eps):
    """A layer's (or the Transformer's) sizes and rates, named as the user passed them: the
    parts they reach named their own (d_model=10, nhead=3 as "MultiheadAttention: embed_dim
    10 is not a multiple of num_heads 3", dim_feedforward as Linear's out_features,
    layer_norm_eps as LayerNorm's eps, dropout as MultiheadAttention's)."""
    d_model = _size(name, "d_model", d_model, least=1)
    nhead = _size(name, "nhead", nhead, least=1)
    if d_model % nhead:
        raise GraphcError(f"{name}: d_model {d_model} is not a multiple of nhead {nhead}",
                          (user_location(),))
    _size(name, "dim_feedforward", dim_feedforward)
    _probability(name, "dropout", dropout)
    F._number(f"{name}: layer_norm_eps", layer_norm_eps, True)


def _check_arrays(where, **inputs):
    """The layer's inputs (src, tgt, memory) as the user passed them: a list or another
    library's array is refused in one line naming it, before an attention inside names it
    as its query or key ("MultiheadAttention 'multihead_attn': key is a list" for a
    decoder's memory)."""
    for what, x in inputs.items():
        _refuse_non_array_mask(where, what, x)


def _check_masks(where, attention, query, key, masks):
    """The masks' shapes by torch's attention's rules (MultiheadAttention's own check),
    before the attention runs, named as the user passed them: `masks` holds (argument name,
    mask, whether it is a key padding mask). MultiheadAttention would name its attn_mask, and
    a private keyword telling it the layer's names broke a user's attention module with
    torch's signature. Only graphc's own MultiheadAttention (its forward) is checked for: a
    user's attention module gets the masks as given and checks them itself, as torch's
    layer passes them (one taking SDPA's (N, 1, L, S) masks has num_heads and batch_first
    too); so do query and key shapes that attention refuses (its "one batch size" error
    is about the inputs, not a key padding mask that fits the key). Each mask's kind (bool
    or float array) is checked whatever the attention, as torch's layers read each mask's
    dtype before their attention runs."""
    for what, mask, _ in masks:
        _check_mask_kind(where, what, mask)
    if all(mask is None for _, mask, _ in masks) or \
            getattr(type(attention), "forward", None) is not MultiheadAttention.forward:
        return
    heads, batch_first = attention.num_heads, attention.batch_first
    q, k = tuple(F._shape(query)), tuple(F._shape(key))
    if len(q) == len(k) == 2:  # unbatched (L, E) and (S, E), as torch's
        L, S = q[0], k[0]
        attn_mask = {"(target length, source length)": (L, S),
                     "(num_heads, target length, source length)": (heads, L, S)}
        padding = {"(source length,)": (S,)}
    elif len(q) == len(k) == 3:
        batch = 0 if batch_first else 1
        if q[batch] != k[batch]:
            return
        N, L, S = q[batch], q[1 - batch], k[1 - batch]
        attn_mask = {"(target length, source length)": (L, S),
                     "(batch * num_heads, target length, source length)": (N * heads, L, S)}
        padding = {"(batch, source length)": (N, S)}
    else:
        return
    for what, mask, is_padding in masks:
        _check_mask_shape(where, what, mask, padding if is_padding else attn_mask)


def _check_memory(where, attention, tgt, memory):
    """A decoder's memory that its cross-attention would refuse, named as the memory: the
    attention names tgt and memory as its query, key and value (of two batch sizes, or one
    batched and one not), and the memory's other width as its key's, with a kdim/vdim hint
    that does not apply to the argument the user passed. (A user's attention module checks
    its inputs itself.)"""
    if getattr(type(attention), "forward", None) is not MultiheadAttention.forward:
        return
    t, shape = tuple(F._shape(tgt)), tuple(F._shape(memory))
    if len(t) in (2, 3) and len(shape) != len(t):
        raise GraphcError(f"{where}: tgt {t} and memory {shape} must both be batched (3-d) or "
                          "both unbatched (2-d)", (user_location(),))
    batch = 0 if attention.batch_first else 1
    if len(t) == 3 and t[batch] != shape[batch]:
        layout = "(N, L, E)" if attention.batch_first else "(L, N, E)"
        raise GraphcError(f"{where}: tgt {t} and memory {shape} ({layout}, batch_first="
                          f"{attention.batch_first}) must have one batch size",
                          (user_location(),))
    for width in (attention.kdim, attention.vdim):  # (the memory is the key and the value)
        if shape and shape[-1] != width:
            raise GraphcError(f"{where}: memory has {shape[-1]} features, the layer takes "
                              f"{width}", (user_location(),))


class _Layer(Module):
    def _common(self, name, d_model, nhead, dim_feedforward, dropout, activation,
                layer_norm_eps, batch_first, norm_first, bias, rng, dtype, norms):
        """The submodules in torch's order (named_children, named_parameters and state_dict
        list them so): the attentions (a decoder's two), the feed-forward block, the norms,
        their dropouts, then the activation, a submodule only when it is a Module (torch
        holds "relu", "gelu" and a function as a plain attribute)."""
        dtype = _layer_dtype(name, dtype)  # (a bad one named as the user's layer, not a part)
        _check_settings(name, d_model, nhead, dim_feedforward, dropout, layer_norm_eps)
        for attention in ("self_attn", "multihead_attn")[:norms - 1]:
            setattr(self, attention, MultiheadAttention(
                d_model, nhead, dropout, bias, batch_first=batch_first, rng=rng, dtype=dtype))
        self.linear1 = Linear(d_model, dim_feedforward, bias, rng, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias, rng, dtype=dtype)
        for k in range(1, norms + 1):
            setattr(self, f"norm{k}",
                    LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for k in range(1, norms + 1):
            setattr(self, f"dropout{k}", Dropout(dropout))
        activation = _activation(name, activation)
        if isinstance(activation, Module):
            self.activation = activation
        else:
            object.__setattr__(self, "activation", activation)
        object.__setattr__(self, "norm_first", bool(norm_first))

    def _sa_block(self, x, mask, key_padding_mask, is_causal):
        y = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(y)

    def _ff_block(self, x, last_dropout):
        y = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return last_dropout(y)


class TransformerEncoderLayer(_Layer):
    """torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with
    a residual connection and LayerNorm (after it; before it with norm_first)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 rng=None, dtype="float32"):
        self._common("TransformerEncoderLayer", d_model, nhead, dim_feedforward, dropout,
                     activation, layer_norm_eps, batch_first, norm_first, bias, rng, dtype, 2)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        _check_arrays(self._where(), src=src)
        _check_masks(self._where(), self.self_attn, src, src,
                     (("src_mask", src_mask, False),
                      ("src_key_padding_mask", src_key_padding_mask, True)))
        x = src
        if self._setting("norm_first", x):
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x, self.dropout2))


class TransformerDecoderLayer(_Layer):
    """torch.nn.TransformerDecoderLayer: self-attention, attention over the encoder's output
    (`memory`) and a feed-forward block, each with a residual connection and LayerNorm."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 rng=None, dtype="float32"):
        self._common("TransformerDecoderLayer", d_model, nhead, dim_feedforward, dropout,
                     activation, layer_norm_eps, batch_first, norm_first, bias, rng, dtype, 3)

    def _mha_block(self, x, memory, mask, key_padding_mask, is_causal):
        y = self.multihead_attn(x, memory, memory, attn_mask=mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)[0]
        return self.dropout2(y)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        _check_arrays(self._where(), tgt=tgt, memory=memory)
        _check_masks(self._where(), self.self_attn, tgt, tgt,
                     (("tgt_mask", tgt_mask, False),
                      ("tgt_key_padding_mask", tgt_key_padding_mask, True)))
        _check_memory(self._where(), self.multihead_attn, tgt, memory)
        _check_masks(self._where(), self.multihead_attn, tgt, memory,
                     (("memory_mask", memory_mask, False),
                      ("memory_key_padding_mask", memory_key_padding_mask, True)))
        x = tgt
        if self._setting("norm_first", x):
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                           memory_is_causal))
        return self.norm3(x + self._ff_block(x, self.dropout3))


class _Stack(Module):
    def __init__(self, layer, num_layers, norm=None):
        name = type(self).__name__
        if not isinstance(layer, Module):
            raise GraphcError(f"{name}: the layer must be a Module, got {type(layer).__name__}",
                              (user_location(),))
        if not isinstance(num_layers, int) or num_layers < 1:
            raise GraphcError(f"{name}: num_layers must be a positive int, got {num_layers!r}",
                              (user_location(),))
        # independent copies of the layer (its initial weights repeated), as torch's
        self.layers = ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        if norm is not None:
            self.norm = norm
        else:
            object.__setattr__(self, "norm", None)


class TransformerEncoder(_Stack):
    """torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None): `num_layers` copies
    of an encoder layer, then `norm`. torch's enable_nested_tensor and mask_check are
    accepted and ignored: graphc computes every position, as torch's ordinary path does.
    torch's nested-tensor fast path (taken in eval mode, autograd off, batch_first layers and
    a src_key_padding_mask, among other conditions) differs there: its output is zero at the
    padded positions before `norm` (so norm(0), the norm's bias for a LayerNorm, after it);
    the other positions agree. Without a norm, multiply graphc's output by
    `~src_key_padding_mask[..., None]` to compare with it."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__(encoder_layer, num_layers, norm)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False):
        # (its mask is the layers' src_mask: named here as the user passed it)
        _check_arrays(self._where(), src=src)
        _check_masks(self._where(), getattr(self.layers[0], "self_attn", None), src, src,
                     (("mask", mask, False), ("src_key_padding_mask", src_key_padding_mask,
                                              True)))
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(_Stack):
    """torch.nn.TransformerDecoder(decoder_layer, num_layers, norm=None): `num_layers` copies
    of a decoder layer, then `norm`."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__(decoder_layer, num_layers, norm)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        # (named here as the user passed them, as TransformerEncoder's: its first layer named
        # them as its own, "TransformerDecoderLayer 'layers.0'"); memory's by memory's shape
        where = self._where()
        _check_arrays(where, tgt=tgt, memory=memory)
        _check_masks(where, _first_attention(self, "self_attn"), tgt, tgt,
                     (("tgt_mask", tgt_mask, False),
                      ("tgt_key_padding_mask", tgt_key_padding_mask, True)))
        _check_masks(where, _first_attention(self, "multihead_attn"), tgt, memory,
                     (("memory_mask", memory_mask, False),
                      ("memory_key_padding_mask", memory_key_padding_mask, True)))
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                      memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """torch.nn.Transformer: a TransformerEncoder of num_encoder_layers layers and a
    TransformerDecoder of num_decoder_layers, each ending in a LayerNorm (`encoder`,
    `decoder`: torch's names, so a torch checkpoint loads by load_torch_state_dict), or the
    custom_encoder / custom_decoder given; every parameter of two or more axes
    xavier-uniform, as torch's _reset_parameters. forward(src, tgt, ...) encodes src and
    decodes tgt against it, with torch's masks."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False,
                 norm_first=False, bias=True, rng=None, dtype="float32"):
        rng = _rng(rng)
        # (named as the Transformer's arguments, not as the stack's or layer's they build:
        # "TransformerEncoder: num_layers must be ..." for num_encoder_layers=0, which
        # torch's fails on as a raw IndexError)
        dtype = _layer_dtype("Transformer", dtype)
        _check_settings("Transformer", d_model, nhead, dim_feedforward, dropout,
                        layer_norm_eps)
        _activation("Transformer", activation)
        for what, count, custom in (("num_encoder_layers", num_encoder_layers, custom_encoder),
                                    ("num_decoder_layers", num_decoder_layers, custom_decoder)):
            if custom is None and (not isinstance(count, int) or count < 1):
                raise GraphcError(f"Transformer: {what} must be a positive int, got {count!r}",
                                  (user_location(),))
        settings = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                    batch_first, norm_first, bias, rng, dtype)
        for part, custom, stack, layer, count in (
                ("encoder", custom_encoder, TransformerEncoder, TransformerEncoderLayer,
                 num_encoder_layers),
                ("decoder", custom_decoder, TransformerDecoder, TransformerDecoderLayer,
                 num_decoder_layers)):
            setattr(self, part, custom if custom is not None else stack(
                layer(*settings), count,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=_layer_dtype(
                    "Transformer", dtype))))
        for p in self.parameters():
            if p.data.ndim > 1:  # (graphc's transposed layout: xavier's bound is the same)
                init.xavier_uniform_(p, rng=rng)
        for name, value in (("d_model", d_model), ("nhead", nhead),
                            ("batch_first", batch_first)):
            object.__setattr__(self, name, value)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        self._check_inputs(src, tgt)
        # each mask named as given here (the encoder stack names src_mask as its `mask`, and
        # both stacks as their own); memory's by memory's shape
        _check_masks(self._where(), _first_attention(self.encoder, "self_attn"), src, src,
                     (("src_mask", src_mask, False),
                      ("src_key_padding_mask", src_key_padding_mask, True)))
        _check_masks(self._where(), _first_attention(self.decoder, "self_attn"), tgt, tgt,
                     (("tgt_mask", tgt_mask, False),
                      ("tgt_key_padding_mask", tgt_key_padding_mask, True)))
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        _check_masks(self._where(), _first_attention(self.decoder, "multihead_attn"), tgt,
                     memory, (("memory_mask", memory_mask, False),
                              ("memory_key_padding_mask", memory_key_padding_mask, True)))
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    def _check_inputs(self, src, tgt):
        """torch's checks of src and tgt, before either runs: arrays, one batch size, d_model
        features (graphc's attentions named the decoder's cross-attention, or the query
        of a layer deep inside, as the culprit)."""
        _check_arrays(self._where(), src=src, tgt=tgt)
        s, t = tuple(F._shape(src)), tuple(F._shape(tgt))
        batch_first = self._setting("batch_first", src)
        if len(s) not in (2, 3) or len(s) != len(t):
            raise GraphcError(f"{self._where()}: src {s} and tgt {t} must both be batched "
                              "(3-d) or both unbatched (2-d)", (user_location(),))
        if len(s) == 3 and s[1 - bool(batch_first)] != t[1 - bool(batch_first)]:
            layout = "(N, S, E)" if batch_first else "(S, N, E)"
            raise GraphcError(f"{self._where()}: src {s} and tgt {t} ({layout}, batch_first="
                              f"{batch_first}) must have one batch size", (user_location(),))
        if s[-1] != self.d_model or t[-1] != self.d_model:
            raise GraphcError(f"{self._where()}: src {s} and tgt {t} must have d_model = "
                              f"{self.d_model} features", (user_location(),))

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """torch's causal mask of `sz` positions, as a numpy array: 0 on and below the
        diagonal, -inf above; torch's arguments (sz, device, dtype): dtype None is torch's
        default, float32, and bool is True above the diagonal (torch's cast of -inf);
        device the CPU (graphc's only one) or None."""
        where = "Transformer.generate_square_subsequent_mask"
        _refuse_device(where, device)
        size = _size(where, "sz", sz)
        dtype = _layer_dtype(where, "float32" if dtype is None else dtype, parameters=False)
        if str(dtype) == "bool":
            return np.triu(np.ones((size, size), bool), 1)
        if not is_float(dtype):
            raise GraphcError(f"{where}: dtype={dtype}: the mask is a float (0 and -inf) or "
                              "bool one, as torch's", (user_location(),))
        return np.triu(np.full((size, size), -np.inf, dtype=dtype), 1)


def _first_attention(stack, name):
    """A graphc stack's first layer's attention `name` (whose masks _check_masks checks by
    its rules), or None for a custom encoder or decoder (its masks' kinds alone)."""
    layers = getattr(stack, "layers", None)
    if not isinstance(stack, _Stack) or not layers:
        return None
    return getattr(layers[0], name, None)
