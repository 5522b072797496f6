"""A nanoGPT-style character-level GPT written with graphc layers.

The same model code runs eagerly (on Tensors) and traces into a graph (on symbolic values);
parameters are named like nanoGPT's (`blocks.0.attn.c_attn.weight`, ...). Linear weights are
stored (in, out), so a layer computes x @ W + b.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ir.ops import api as F
from ir.ops.attention import attention_scores
from ir.errors import GraphcError
from ir.types import Dim, UnsupportedDtype, as_dtype, is_int, is_real

from .. import nn

CONFIGS = {
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, block_size=32, batch_size=64),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=32),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=32),
    # nanoGPT's CPU recipe for Shakespeare (its README): no biases, dropout 0
    "nanogpt-cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12,
                        bias=False),
}
# The dtypes a model's weights can have: half precision halves the weights' memory (each
# half op computes in float32 between casts, README "Half precision").
DTYPES = ("float32", "float64", "bfloat16", "float16")


def model_dtype(dtype, who: str) -> str:
    """The canonical name of one of DTYPES in any of numpy's spellings (np.float32, "f8",
    "half"); anything else one GraphcError line ("foo" was numpy's raw TypeError in the first
    layer; None is no dtype here, where numpy reads it as float64)."""
    try:
        name = None if dtype is None else as_dtype(dtype).name
    except UnsupportedDtype:
        name = None
    if name not in DTYPES:
        raise GraphcError(f"{who}: dtype {dtype!r} is not a dtype such as 'float32'; the "
                          f"accepted ones are {', '.join(DTYPES)}")
    return name


@dataclass
class GPTConfig:
    vocab_size: int = 65
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 32
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    dtype: str = "float32"
    layer_norm_eps: float = 1e-5  # GPT-2's config.json calls it layer_norm_epsilon

    @classmethod
    def named(cls, name: str, **overrides) -> "GPTConfig":
        if name not in CONFIGS:
            raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
        return cls(**{**CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def validate(self):
        for f in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size", "batch_size"):
            value = getattr(self, f)
            if not is_int(value):  # ("65" and 2.5 were raw TypeErrors; True a size of 1)
                raise ValueError(f"{f} must be a whole number, got {value!r}")
            if value <= 0:
                raise ValueError(f"{f} must be positive, got {value}")
        if self.n_embd % self.n_head:  # after the signs: n_head 0 is no ZeroDivisionError
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head "
                             f"({self.n_head})")
        if not (is_real(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        eps = self.layer_norm_eps  # (numpy's float32 too: 1e-5 read from a float32 array)
        if not (is_real(eps) and 0 < eps < 1):
            raise ValueError(f"layer_norm_eps must be a number in (0, 1), got {eps!r}")
        for f in ("bias", "tie_weights"):  # "no" was taken as True
            if not isinstance(getattr(self, f), (bool, np.bool_)):
                raise ValueError(f"{f} must be True or False, got {getattr(self, f)!r}")
        self.dtype = model_dtype(self.dtype, "GPTConfig")

    def to_dict(self):
        return asdict(self)

    def num_parameters(self) -> int:
        """GPT(self).num_parameters(), from the configuration alone: memory can be checked
        before any weight is allocated."""
        V, T, C, bias = self.vocab_size, self.block_size, self.n_embd, int(self.bias)
        layer_norm = C * (1 + bias)
        linear = lambda i, o: i * o + bias * o  # noqa: E731
        block = (2 * layer_norm + linear(C, 3 * C) + linear(C, C) + linear(C, 4 * C)
                 + linear(4 * C, C))
        head = 0 if self.tie_weights else C * V
        return V * C + T * C + self.n_layer * block + layer_norm + head

    def parameter_bytes(self) -> int:
        return self.num_parameters() * np.dtype(self.dtype).itemsize

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, rng):
        proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, cfg.bias, rng, 0.02, cfg.dtype)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, cfg.bias, rng, proj_std, cfg.dtype)
        object.__setattr__(self, "cfg", cfg)

    def forward(self, x, dropout):
        B, T, C = x.shape
        H = self.cfg.n_head
        q, k, v = F.split(self.c_attn(x), 3, axis=-1)
        q, k, v = (t.reshape(B, T, H, C // H).transpose(0, 2, 1, 3) for t in (q, k, v))
        scale = 1.0 / math.sqrt(C // H)
        att = attention_scores(q, k, scale)
        att = F.masked_fill(att, ~F.tril_mask(T), float("-inf"))
        att = dropout(F.softmax(att, axis=-1))
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        return dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig, rng):
        proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, cfg.bias, rng, 0.02, cfg.dtype)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, cfg.bias, rng, proj_std, cfg.dtype)

    def forward(self, x, dropout):
        return dropout(self.c_proj(F.gelu(self.c_fc(x))))


def _layer_norm(cfg):
    return nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias, dtype=cfg.dtype)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, rng):
        self.ln_1 = _layer_norm(cfg)
        self.attn = CausalSelfAttention(cfg, rng)
        self.ln_2 = _layer_norm(cfg)
        self.mlp = MLP(cfg, rng)

    def forward(self, x, dropout):
        x = x + self.attn(self.ln_1(x), dropout)
        return x + self.mlp(self.ln_2(x), dropout)


class GPT(nn.Module):
    # token ids after which graphc.generate's Generator ends a row: a GPT-2 checkpoint's
    # eos_token_id (load_gpt2 sets them); a character model has no end-of-text token
    eos_token_ids: tuple[int, ...] = ()
    # the new tokens a row has before its eos may come (transformers' min_new_tokens): a
    # GPT-2 directory's (load_gpt2 sets it), 0 for graphc's own
    min_new_tokens: int = 0
    # the same as transformers' min_length, which counts the prompt's tokens too: no eos
    # while the (left-padded) rows are shorter than it; a GPT-2 directory's, 0 for graphc's
    min_length: int = 0
    # transformers' repetition_penalty, no_repeat_ngram_size, min_p and do_sample, a GPT-2
    # directory's (load_gpt2 sets them), the default of a Generator's: off for graphc's own
    # (do_sample None: sample unless the temperature is 0)
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_p: float | None = None
    do_sample: bool | None = None

    def __init__(self, cfg: GPTConfig, seed: int = 0):
        cfg.validate()
        rng = np.random.default_rng(seed)
        object.__setattr__(self, "cfg", cfg)
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd, rng, 0.02, cfg.dtype)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd, rng, 0.02, cfg.dtype)
        self.blocks = nn.ModuleList([Block(cfg, rng) for _ in range(cfg.n_layer)])
        self.ln_f = _layer_norm(cfg)
        if not cfg.tie_weights:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, False, rng, 0.02, cfg.dtype)

    def forward(self, idx, targets=None, seed=None, training=False):
        """Logits for idx (B, T); with targets, the mean cross-entropy loss instead."""
        cfg = self.cfg
        if len(idx.shape) != 2:  # (a 1-D idx was an IndexError at idx.shape[1])
            raise ValueError(f"idx must be (batch, length) token ids, got shape "
                             f"{tuple(idx.shape)}")
        T = idx.shape[1]
        # a symbolic length (shape polymorphism) is checked when bound: its position
        # embedding (wpe[arange(T)]) cannot gather past the block
        if isinstance(T, int) and T > cfg.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {cfg.block_size}")
        use_dropout = training and cfg.dropout > 0.0 and seed is not None

        def dropout(x):
            return F.dropout(x, cfg.dropout, seed) if use_dropout else x

        if isinstance(T, Dim):  # a symbolic length: the table's first T rows, a slice whose
            # bound (T <= block_size) is checked when T is bound, naming this line
            positions = self.wpe.weight[:T]
        else:
            positions = self.wpe(F.arange(T))
        x = dropout(self.wte(idx) + positions)
        for block in self.blocks:
            x = block(x, dropout)
        x = self.ln_f(x)
        head = F.transpose(self.wte.weight) if cfg.tie_weights else self.lm_head.weight
        logits = x @ head
        if targets is None:
            return logits
        return F.cross_entropy(logits, targets)

    def _cast_floats(self, dtype, method):
        """nn.Module's cast (.double(), .half(), .to(dtype), ...), with cfg.dtype following
        the weights: generation's caches and masks and a checkpoint's header take their dtype
        from it (generating after .double() failed inside the plan)."""
        super()._cast_floats(dtype, method)
        old = self.cfg
        if old.dtype != as_dtype(dtype).name:
            # a new config: the old one may configure other models, which keep their dtype
            cfg = replace(old, dtype=as_dtype(dtype).name)
            for module in self.modules():  # (the attention layers hold it too)
                if getattr(module, "cfg", None) is old:
                    object.__setattr__(module, "cfg", cfg)
        return self

    def no_decay(self, name: str) -> bool:
        """nanoGPT's split (configure_optimizers): tensors of two or more dimensions (matmul
        weights and the embeddings wte/wpe) are decayed; biases and LayerNorm weights are
        not."""
        return dict(self.named_parameters())[name].data.ndim < 2

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())
