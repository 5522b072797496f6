"""Training the GPT: its configuration, its trainer (gc.Trainer with AdamW, nanoGPT's
schedule and clipping), the whole-split validation loss, and `train_gpt`, what `graphc train`
runs.

The training step is the library's: the model's loss traced through `model.apply`, gradients
by the public value_and_grad, graphc.optim's global-norm clipping and AdamW, compiled with
the parameters and AdamW state donated (updated in place). The learning rate (nanoGPT's
warmup + cosine schedule) is evaluated at each step and fed to the step (gc.Trainer); the
bias corrections are computed inside it from the count held in the optimiser state.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from ir.errors import GraphcError
from ir.ops.precision import PRECISIONS
from ir.types import is_int

from . import checkpoint, optim
from .files import cannot_create_in, check_path, check_writable, exclusive_directory, \
    file_identity, written_since
from .models.gpt import GPT, GPTConfig
from .tracing import spec, trace
from .trainer import CHECKPOINT, Trainer as _Trainer, _reader_aware_stdout, _restores, \
    checkpoint_file
from .transforms import Compiled, value_and_grad


# Training defaults per model config (measured on Tiny Shakespeare; see the README).
TRAIN_DEFAULTS = {
    "tiny": dict(steps=300, lr=5e-3, min_lr=5e-4, warmup=30, eval_every=100),
    "small": dict(steps=2500, lr=2e-3, min_lr=2e-4, warmup=100, eval_every=250),
    "medium": dict(steps=5000, lr=1e-3, min_lr=1e-4, warmup=200, eval_every=500),
    # nanoGPT's: --max_iters=2000 --lr_decay_iters=2000, lr 1e-3 -> 1e-4, warmup 100
    "nanogpt-cpu": dict(steps=2000, lr=1e-3, min_lr=1e-4, warmup=100, eval_every=250),
}


@dataclass
class TrainConfig:
    steps: int = 2500
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global norm of the gradients; 0: no clipping, as nanoGPT
    eval_every: int = 250
    eval_iters: int = 20
    seed: int = 1337
    decay_steps: int | None = None  # length of the cosine schedule; None: steps
    precision: str = "fp32"  # or "bf16-mixed", "fp16-mixed" (graphc/amp.py)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def schedule(tc: TrainConfig):
    """nanoGPT's schedule: linear warmup, then cosine decay to min_lr at the last step."""
    return optim.cosine(tc.lr, steps=tc.decay_steps or tc.steps, warmup=tc.warmup,
                        min_lr=tc.min_lr)


def lr_at(step: int, tc: TrainConfig) -> float:
    """The learning rate of (0-based) step `step`: schedule(tc) at a Python int."""
    return schedule(tc)(step)


def optimizer(model: GPT, tc: TrainConfig) -> optim.AdamW:
    """AdamW as nanoGPT configures it: weight decay on tensors of two or more dimensions."""
    return optim.AdamW(lr=schedule(tc), betas=(tc.beta1, tc.beta2), eps=tc.eps,
                       weight_decay=tc.weight_decay, decay_mask=optim.decay_matrices_only)


def gpt_loss(model: GPT):
    """The model's loss as a function of (params, batch, key, training): gc.Trainer's form."""
    def loss(params, batch, key, training):
        idx, targets = batch
        return model.apply(params, idx, targets, seed=key, training=training)
    return loss


def _param_specs(model: GPT) -> dict:
    return {n: p.data for n, p in model.named_parameters()}


def _as_parameters(graph, model: GPT):
    """Mark the parameter inputs of a traced graph as parameters (dumps count them)."""
    names = {n for n, _ in model.named_parameters()}
    for node in graph.inputs:
        if node.attrs["name"] in names:
            node.attrs["kind"] = "param"
    return graph


def build_eval_loss(model: GPT, batch_size: int | None = None, with_grads: bool = False,
                    name: str = "eval_loss"):
    """The traced mean loss of a batch (no dropout); with_grads adds each parameter's
    gradient. Inputs: idx, targets and the parameters under their own names. `batch_size`
    may be a name: a symbolic batch dimension (one plan for every batch size)."""
    cfg = model.cfg
    B, T = batch_size or cfg.batch_size, cfg.block_size

    def eval_loss(idx, targets, params):
        if not with_grads:
            return model.apply(params, idx, targets)
        loss, grads = value_and_grad(lambda p: model.apply(p, idx, targets))(params)
        return [loss] + list(grads.values())

    idx = spec((B, T), "int64")
    return _as_parameters(trace(eval_loss, idx, idx, _param_specs(model),
                                names=["idx", "targets", ""], name=name), model)


def build_logits(model: GPT, batch_size=1, length=None):
    """The traced logits of a batch of windows: inputs idx and the parameters. `batch_size`
    and `length` (default: the block size) may be names: symbolic dimensions, so that one
    plan scores every batch size and every window length up to the block size."""
    idx = spec((batch_size, model.cfg.block_size if length is None else length), "int64")
    return _as_parameters(trace(lambda idx, params: model.apply(params, idx), idx,
                                _param_specs(model), names=["idx", ""], name="logits"),
                          model)


def split_loss(model: GPT, params: dict, data, split="val", pipeline="default",
               jit=None, fast_math=False) -> tuple[float, int]:
    """Mean cross-entropy (nats per token) over all non-overlapping windows of a data split,
    and the number of tokens scored. The 20-batch estimate printed while training has a
    standard deviation of ~0.015 nats on Tiny Shakespeare; this one has none."""
    cfg = model.cfg
    T = cfg.block_size
    from .data import split_tokens, token_count
    ids = split_tokens(data, split)
    windows = (len(ids) - 1) // T
    if windows < 1:
        raise ValueError(f"the {split} split has {token_count(len(ids))}: fewer than one window "
                         f"of {T} + 1")
    # the last batch may be smaller: a symbolic batch serves it from the same traced and
    # optimised graph (shape polymorphism; it is only lowered for its size)
    mean_loss = Compiled(lambda params, idx, targets: model.apply(params, idx, targets),
                         pipeline, fast_math, jit=jit,
                         polymorphic_shapes=(None, ("batch", "_"), ("batch", "_")))
    total, tokens = 0.0, 0
    for first in range(0, windows, cfg.batch_size):
        count = min(cfg.batch_size, windows - first)
        offsets = ((first + np.arange(count)) * T)[:, None] + np.arange(T)
        loss = float(mean_loss(params, ids[offsets].astype(np.int64),
                               ids[offsets + 1].astype(np.int64)))
        total += loss * count * T
        tokens += count * T
    return total / tokens, tokens


class Trainer(_Trainer):
    """gc.Trainer for the GPT on character data: AdamW with nanoGPT's schedule, decay split
    and clipping, batches drawn by CharData.batch, checkpoints that record the model
    configuration, the training configuration and the vocabulary."""

    def __init__(self, model: GPT, data, tc: TrainConfig, pipeline="default", jit=None,
                 fast_math=False, distributed=False, memory_limit=None,
                 gradient_accumulation_steps: int = 1):
        cfg = model.cfg
        if cfg.dtype not in ("float32", "float64"):
            # (a GPT checkpoint's header records float32 or float64 weights, as --dtype takes)
            raise GraphcError(f"Trainer: the GPT is {cfg.dtype}; train a float32 or float64 "
                              "GPT; half precision training is --precision fp16-mixed / "
                              "bf16-mixed (TrainConfig.precision)")
        self.model, self.data, self.tc = model, data, tc
        self.pipeline, self.jit, self.fast_math = pipeline, jit, fast_math
        B, T = cfg.batch_size, cfg.block_size
        super().__init__(
            gpt_loss(model), {n: p.data for n, p in model.named_parameters()},
            optimizer(model, tc), lambda rng: data.batch(rng, "train", B, T),
            eval_batches=lambda rng: data.batch(rng, "val", B, T), steps=tc.steps,
            eval_every=tc.eval_every, eval_iters=tc.eval_iters, clip_norm=tc.grad_clip or None,
            seed=tc.seed, units="tokens", divergence_hint="Try a lower --lr",
            checkpoint_meta=gpt_settings(cfg, tc, data.vocab, _text_sha256(data)),
            pipeline=pipeline, fast_math=fast_math, jit=jit, distributed=distributed,
            precision=tc.precision, memory_limit=memory_limit,
            gradient_accumulation_steps=gradient_accumulation_steps)
        self.plot_title = "graphc GPT on character-level text"
        self.plot_ylabel = "cross-entropy (nats)"

    @property
    def m(self) -> dict:
        return self.state["m"]

    @property
    def v(self) -> dict:
        return self.state["v"]

    def evaluate(self, split="val", checked: bool = False, record: bool = True) -> float:
        cfg = self.model.cfg
        source = lambda rng: self.data.batch(rng, split, cfg.batch_size,  # noqa: E731
                                             cfg.block_size)
        return super().evaluate(source, checked, record and split == "val")

    def evaluate_split(self, split="val") -> tuple[float, int]:
        """(mean loss, tokens) over every non-overlapping window of a split: the figure to
        compare runs by (the periodic estimate samples eval_iters batches)."""
        return split_loss(self.model, self.params, self.data, split, self.pipeline, self.jit,
                          self.fast_math)

    def sync_model(self):
        for n, p in self.model.named_parameters():
            p.data = self.params[n]

    @_restores
    def restore(self, arrays: dict, meta: dict, allow_changed_settings: bool = False,
                path: str | None = None, *, how: str = "allow_changed_settings=True"):
        # the parameters' shapes do not tell every configuration apart (n_head, dropout, a
        # vocabulary of the same size): the header must be this model's, as `graphc train
        # --resume` checks, or another model's weights would be trained on silently
        if not checkpoint.is_gpt_header(meta):
            raise checkpoint.CheckpointError("the checkpoint is not a GPT's (its header has no "
                                             "GPT model configuration, training settings "
                                             "and vocabulary)")
        meta = with_defaults(meta)
        check_compatible(meta, self.model.cfg, self.data.vocab)
        meta = checked_text(meta, self.data, path or "the checkpoint", allow_changed_settings,
                            how)
        super().restore(arrays, meta, allow_changed_settings, path, how=how)
        self.sync_model()

    @_restores
    def resume(self, path: str, allow_changed_settings: bool = False):
        """restore() from a GPT checkpoint file, refused with one line unless it was written
        for this model configuration and vocabulary, and with these training settings
        unless `allow_changed_settings` (steps, eval_every, eval_iters and precision may
        change). `path` may be fit()'s directory."""
        path = checkpoint_file(path)
        read = file_identity(path)  # (see gc.Trainer._resumed)
        arrays, meta = checkpoint.load(path)
        meta = with_defaults(meta)
        check_compatible(meta, self.model.cfg, self.data.vocab, path)
        meta = checked_text(meta, self.data, path, allow_changed_settings)
        checkpoint.check_settings(meta, self.checkpoint_meta, path, allow_changed_settings)
        self.restore(arrays, meta, allow_changed_settings, path)
        self._resumed(path, read)


def gpt_settings(cfg: GPTConfig, tc: TrainConfig, vocab, text_sha256=None) -> dict:
    """What a GPT checkpoint's header records of the run (the trainer's checkpoint_meta): with
    `text_sha256`, the SHA-256 of the text it trains on (CharData.text_sha256)."""
    settings = {"model": cfg.to_dict(), "train": asdict(tc), "vocab": "".join(vocab)}
    if text_sha256 is not None:
        settings[TEXT_FIELD] = text_sha256
    return settings


TEXT_FIELD = "text_sha256"  # the header field of the text's SHA-256


def _text_sha256(data):
    """The SHA-256 of the text `data` holds (a CharData's), None where it is unknown."""
    return getattr(data, "text_sha256", None)


def checked_text(meta: dict, data, path: str, allow_changed_settings: bool,
                 how: str = "allow_changed_settings=True") -> dict:
    """Refuse (one line) to resume the checkpoint at `path` on another text than the one it
    was trained on, unless allow_changed_settings: its characters fitting the vocabulary, a
    changed text resumed silently. Returns the header with this run's text in its place, for
    check_settings to compare the rest: a header from before the text was recorded, or
    ids whose text is unknown (a CharData made of arrays), have nothing to compare."""
    saved, mine = meta.get(TEXT_FIELD), _text_sha256(data)
    if saved is not None and mine is not None and saved != mine \
            and not allow_changed_settings:
        raise GraphcError(f"{path} was trained on another text (its SHA-256 {saved[:12]}..., "
                          f"this one's {mine[:12]}...), though its characters fit the "
                          f"vocabulary; resume on the text it was trained on, or pass {how} "
                          "to continue on this one")
    meta = {k: v for k, v in meta.items() if k != TEXT_FIELD}
    return meta if mine is None else {**meta, TEXT_FIELD: mine}


def with_defaults(meta: dict) -> dict:
    """A GPT checkpoint's header with each model and training field it lacks at that field's
    default, which is what a run resumed from it uses (GPTConfig.from_dict,
    TrainConfig.from_dict): a header written before the field existed (model.layer_norm_eps,
    before GPT-2 support) was refused as "saved with other settings" by the very run that
    reads it so. A non-dict model or train is left for the header's own checks."""
    completed = dict(meta)
    for key, config in (("model", GPTConfig), ("train", TrainConfig)):
        if isinstance(meta.get(key), dict):
            completed[key] = {**asdict(config()), **meta[key]}
    return completed


def check_compatible(meta: dict, cfg: GPTConfig, vocab, path: str = "checkpoint") -> None:
    """A checkpoint (at `path`, for the message) must match the model configuration and the
    vocabulary it resumes with."""
    saved = GPTConfig.from_dict(meta["model"])
    if saved != cfg:
        diffs = [f"{k}: checkpoint {v!r} vs requested {getattr(cfg, k)!r}"
                 for k, v in saved.to_dict().items() if getattr(cfg, k) != v]
        raise checkpoint.CheckpointError(f"{path} was trained with another model "
                                         "configuration (" + "; ".join(diffs) + ")")
    if meta["vocab"] != "".join(vocab):
        raise checkpoint.CheckpointError(f"{path} was trained on another vocabulary "
                                         f"({len(meta['vocab'])} characters vs {len(vocab)})")


# ---- what `graphc train` runs -----------------------------------------------------------------
MODEL_OPTIONS = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout", "bias",
                 "tie_weights", "dtype")
# (gradient_accumulation_steps is the trainer's, recorded in the header as a run field)
TRAIN_OPTIONS = ("steps", "lr", "min_lr", "warmup", "decay_steps", "weight_decay", "beta1",
                 "beta2", "grad_clip", "eval_every", "eval_iters", "seed", "precision",
                 "gradient_accumulation_steps")


_real_number = checkpoint.finite_number


# What each of train_gpt's options takes: the values the CLI's parsers let through
_OPTION_RULES = {
    **{k: ("a positive whole number", lambda v: is_int(v) and v > 0)
       for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "steps",
                 "decay_steps", "eval_every", "eval_iters", "gradient_accumulation_steps")},
    **{k: ("a whole number >= 0", lambda v: is_int(v) and v >= 0)
       for k in ("warmup", "seed")},
    **{k: ("a finite number >= 0", lambda v: _real_number(v) and v >= 0)
       for k in ("dropout", "min_lr", "weight_decay", "grad_clip")},
    **{k: ("a number in [0, 1)", lambda v: _real_number(v) and 0 <= v < 1)
       for k in ("beta1", "beta2")},
    "lr": ("a finite number > 0", lambda v: _real_number(v) and v > 0),
    **{k: ("True or False", lambda v: isinstance(v, (bool, np.bool_)))
       for k in ("bias", "tie_weights")},
    "dtype": ("'float32' or 'float64'",
              lambda v: isinstance(v, str) and v in ("float32", "float64")),
    "precision": (", ".join(map(repr, list(PRECISIONS)[:-1])) + f" or {list(PRECISIONS)[-1]!r}",
                  lambda v: isinstance(v, str) and v in PRECISIONS),
}
assert set(_OPTION_RULES) == set(MODEL_OPTIONS + TRAIN_OPTIONS)


def check_options(options: dict) -> dict:
    """train_gpt's `options` checked as `graphc train` checks its flags, numpy scalars as
    Python values (None: the default). Before, a key with a typo was ignored, and
    tie_weights='no' trained and saved a checkpoint graphc then refused to read."""
    unknown = sorted(set(options) - set(_OPTION_RULES))
    if unknown:
        raise GraphcError(f"options: unknown {', '.join(map(repr, unknown))}; the options are "
                          f"{', '.join(MODEL_OPTIONS + TRAIN_OPTIONS)}")
    checked = {}
    for key, value in options.items():
        words, ok = _OPTION_RULES[key]
        if value is not None and not ok(value):
            raise GraphcError(f"options[{key!r}] must be {words}, got {value!r}")
        checked[key] = value.item() if isinstance(value, np.generic) else value
    return checked


def model_config(config: str, vocab_size: int, options: dict | None = None,
                 saved: dict | None = None) -> GPTConfig:
    """A named configuration, or resuming the checkpoint's model (`saved`, as nanoGPT's
    init_from="resume"), with the given fields overridden (None: keep)."""
    given = {k: v for k, v in (options or {}).items() if k in MODEL_OPTIONS and v is not None}
    cfg = GPTConfig.from_dict({**saved, **given}) if saved else GPTConfig.named(config, **given)
    cfg.vocab_size = vocab_size
    cfg.validate()
    return cfg


def train_config(config: str, options: dict | None = None, saved: dict | None = None
                 ) -> TrainConfig:
    """The training settings: a checkpoint's (resuming) or the config's defaults, with the
    given fields overridden (None: keep)."""
    base = dict(saved) if saved else dict(TRAIN_DEFAULTS.get(config, {}))
    base.update({k: v for k, v in (options or {}).items() if k in TRAIN_OPTIONS
                 and v is not None})
    tc = TrainConfig.from_dict(base)
    if tc.min_lr > tc.lr:
        if (options or {}).get("min_lr") is not None:  # asked for: say so, not clamp it
            raise GraphcError(f"--min-lr {tc.min_lr:g} is above the learning rate "
                              f"{tc.lr:g} (--lr); the decay ends at --min-lr")
        tc.min_lr = tc.lr  # the config's default floor under a lower --lr
    # a checkpoint written before this check resumes with its own schedule, bit for bit;
    # only settings given now are checked
    given = not saved or any((options or {}).get(k) is not None
                             for k in ("decay_steps", "warmup"))
    if given and tc.decay_steps is not None and tc.decay_steps <= tc.warmup:
        # the cosine would end before the warmup does: the rate dropped from the peak to
        # min_lr in one step (nanoGPT divides by zero at equal counts; optax's
        # warmup_cosine_decay_schedule refuses decay_steps <= warmup_steps). Without
        # --decay-steps, a run shorter than its warmup (a quick test) only warms up.
        raise GraphcError(f"--decay-steps {tc.decay_steps} must be greater than --warmup "
                          f"{tc.warmup}: the decay counts the warmup's steps and ends after it")
    return tc


# Training keeps: the model's initial weights, the trainer's parameters, AdamW's m and v, and
# the last good state (parameters, m, v) to re-run a diverged step from; with gradient
# accumulation, one more: the gradient sums.
PARAMETER_COPIES = 7
# Drawing a batch (CharData.batch) holds about this many bytes per token at once: int64
# offsets, ids and targets and the temporaries between them. The trainer draws its first
# batch before the step's plan (whose memory check covers the activations) exists.
BATCH_BYTES_PER_TOKEN = 40


def compiled_line(seconds: float, nodes: int, pending: int) -> str:
    """The line `graphc train` says after compiling its step: the time, the graph's node
    count and the fused kernels numba is still compiling (their numpy code runs meanwhile),
    one kernel said in the singular."""
    waiting = "" if not pending else (
        "; 1 fused kernel runs as numpy code until numba has compiled it in the background"
        if pending == 1 else f"; {pending} fused kernels run as numpy code until numba has "
        "compiled them in the background")
    return f"compiled the training step in {seconds:.2f}s ({nodes} nodes{waiting})"


def rank_counts_dividing(batch: int) -> str:
    """The rank counts a batch of `batch` rows splits over, as a list in words ("1, 2, 3,
    6"): where a resumed run, whose batch size is its checkpoint's, may go. The divisors
    up to its square root and their pairs: trying each count up to `batch` took 42 s
    for `--resume --batch-size 1000000007 --ranks 3` before its one line."""
    low = [k for k in range(1, math.isqrt(batch) + 1) if batch % k == 0]
    high = [batch // k for k in reversed(low) if batch // k != k]
    return ", ".join(str(k) for k in low + high)


def check_parameter_memory(cfg: GPTConfig, gradient_accumulation_steps: int = 1):
    """Refuse a model whose weights and optimiser state, or whose first batch, cannot fit,
    before allocating them."""
    from ir.types import format_bytes
    from runtime.memory import available_bytes
    copies = PARAMETER_COPIES + (gradient_accumulation_steps > 1)
    needed = copies * cfg.parameter_bytes()
    available = available_bytes()
    if available is not None and needed > available:
        raise GraphcError(f"the model's {cfg.num_parameters():,} parameters need "
                          f"{format_bytes(needed)} with AdamW's state, but only "
                          f"{format_bytes(available)} of memory is available; lower --n-embd "
                          f"({cfg.n_embd}) or --n-layer ({cfg.n_layer})")
    batch = BATCH_BYTES_PER_TOKEN * cfg.batch_size * cfg.block_size
    if available is not None and needed + batch > available:
        raise GraphcError(f"a batch of {cfg.batch_size}x{cfg.block_size} tokens needs "
                          f"{format_bytes(batch)} to draw, but only "
                          f"{format_bytes(available - needed)} of memory is available beside "
                          f"the model; lower --batch-size ({cfg.batch_size}) or --block-size "
                          f"({cfg.block_size})")


def _refuse_to_overwrite(ckpt_path: str) -> None:
    """A fresh run never replaces a checkpoint that is there."""
    if os.path.isdir(ckpt_path):  # (--resume would then say there is no checkpoint)
        raise GraphcError(f"{ckpt_path} is a directory, not a checkpoint; move it away or "
                          "train into another directory (--out)")
    if os.path.exists(ckpt_path):
        raise GraphcError(f"{ckpt_path} already exists; pass --resume to continue it or --out "
                          "to train into another directory")


def _check_out(out: str, writes=("loss.png", "sample.txt")) -> None:
    """--out must be a directory this process can write into, or one it can create, and
    the files the run writes there (`writes`; a resumed checkpoint's is checked once it is
    read) must be writable where they exist: found now, not at the first save, after the
    training it would lose (a resumed run's lock file is already there, so nothing else is
    written before that save)."""
    if os.path.islink(out) and not os.path.exists(out):
        raise GraphcError(f"--out {out!r} is a symbolic link to nothing "
                          f"({os.readlink(out)!r}); pass a directory for the checkpoint")
    for name in writes:
        check_writable(os.path.join(out, name), "--out's")
    existing = _existing_ancestor(out)
    if not os.path.isdir(existing):
        what = "a file" if existing == os.path.abspath(out) else f"inside {existing}, a file"
        raise GraphcError(f"--out {out!r} is {what}; pass a directory for the checkpoint")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GraphcError(f"--out {out!r}: no permission to write into {existing}; pass a "
                          "directory you can write into")
    reason = cannot_create_in(existing)
    if reason:
        raise GraphcError(f"--out {out!r}: cannot write into {existing} ({reason}); pass a "
                          "directory you can write into")


def _existing_ancestor(out: str) -> str:
    """`out` made absolute, or the nearest folder above it that exists (what a run that
    creates it writes into)."""
    existing = os.path.abspath(out)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


def _check_sample_space(out: str, tokens: int, vocab) -> None:
    """Refuse, before training, a --sample-tokens whose sample no run could write: it goes
    whole into OUT/sample.txt (streamed through a temporary file beside it, nothing else
    grows with it), each token at least the shortest UTF-8 character of the vocabulary, and
    a character model has no stop token, so all of them are written. 10**12 trained, then
    sampled for weeks until the disk was full. (A count that fits runs as long as it
    takes: each token is one step of the model.)"""
    from ir.types import format_bytes
    least = tokens * min(len(c.encode("utf-8")) for c in vocab)
    folder = _existing_ancestor(out)
    free = shutil.disk_usage(folder).free
    if least > free:
        raise GraphcError(f"--sample-tokens {tokens:,} writes at least {format_bytes(least)} "
                          f"to {os.path.join(out, 'sample.txt')}, but only "
                          f"{format_bytes(free)} is free on the file system of {folder}; "
                          "lower --sample-tokens (0: no sample)")


def checkpoint_text(data, block_size: int, vocab, checkpoint_path: str, splits=("train", "val")):
    """The CharData a checkpoint of vocabulary `vocab` (None: a fresh run's) trains or is
    scored on: the text file `data`, or without it the bundled Tiny Shakespeare, which must
    then be the text it was trained on. A checkpoint records its vocabulary, not its text:
    one trained on another text was refused for the bundled text's characters outside its
    vocabulary, with no word of --data. `splits`: those that must hold one window (graphc eval
    --split train refused a text whose validation part, which it does not score, was short)."""
    from .data import CharData
    if data is not None or vocab is None:
        return CharData.from_file(data, block_size, vocab, splits)
    text = CharData.from_file(None, block_size, splits=splits)
    if text.vocab != list(vocab):
        raise GraphcError(f"{checkpoint_path} was not trained on the bundled Tiny Shakespeare "
                          f"({_vocabulary_difference(vocab, text.vocab)}); pass --data, the "
                          "text it was trained on")
    return text


def _vocabulary_difference(vocab, bundled) -> str:
    """How a checkpoint's vocabulary differs from the bundled text's, for a message: sizes
    alone said "65 characters, the bundled text's 65" of two that differ."""
    if len(vocab) != len(bundled):
        return f"its vocabulary has {len(vocab)} characters, the bundled text's {len(bundled)}"
    other = next((c for c in vocab if c not in set(bundled)), None)
    if other is None:
        return "its vocabulary has the bundled text's characters in another order"
    return (f"its vocabulary of {len(vocab)} characters holds {other!r}, which the bundled "
            "text has not")


def _print_line(text, file=None):
    print(text, file=file or sys.stdout, flush=True)


def _print_on_rank0(text, file=None):
    from .distributed import is_main
    if is_main():
        _print_line(text, file)


def train_gpt(config: str = "small", *, data: str | None = None, out: str | None = None,
              resume: bool = False, options: dict | None = None, sample_tokens: int = 300,
              progress: bool = True, pipeline: str = "default", fast_math: bool = False,
              distributed: bool = False, memory_limit=None,
              allow_changed_settings: bool = False) -> int:
    """Train a character-level GPT (`graphc train`): build it, train it with gc.Trainer into
    OUT/checkpoint.npz (resuming it with `resume`), then score the whole validation split and
    write a sample. `options`: model fields (MODEL_OPTIONS) and training settings
    (TRAIN_OPTIONS; gradient_accumulation_steps: micro-batches of batch_size per optimiser
    step, default 1 or the checkpoint's), None meaning the default. Returns 0, or the signal
    that stopped training after a save (SIGPIPE also where stdout's reader went away after
    training, the rest done). `distributed`: one rank of an MPI job (mpiexec -n N graphc
    train): rank 0 alone prints, writes the checkpoint and the sample. `memory_limit`: the
    training step's memory budget (`--memory-limit`), met by recomputing activations.
    Resuming with other training settings than the checkpoint's (but steps, eval_every,
    eval_iters, precision) is refused unless `allow_changed_settings`."""
    # One process: stdout's reader going away (`graphc train | head -3`) is noted wherever
    # it happens, as fit() notes it while training (its _ReaderAwareStdout is this one),
    # not an error: the line's BrokenPipeError before or after training ended the run with
    # status 2 (before: nothing saved; after: no sample.txt). Before training, fit() now
    # stops at its first step boundary after saving; after it, the validation score and
    # sample.txt are done with the output discarded, and the run ends with SIGPIPE's
    # status, quietly, as `--ranks N`'s launcher ends (its relay notes the reader for the
    # ranks, whose stdout is mpiexec's pipe).
    with contextlib.nullcontext() if distributed else _reader_aware_stdout() as stdout:
        # with `resume`, OUT's lock is held from before the checkpoint is read to the end of
        # training: taken only by fit(), after the compile (seconds to minutes), it let
        # another run write a newer checkpoint in between, which this run then replaced.
        # Let go here if the run ends before fit() takes it over.
        with contextlib.ExitStack() as held:
            stopped = _train_gpt(held, config, data, out, resume, options, sample_tokens,
                                 progress, pipeline, fast_math, distributed, memory_limit,
                                 allow_changed_settings)
    return stopped or getattr(stdout, "reader_gone", 0)


def _train_gpt(held, config, data, out, resume, options, sample_tokens, progress, pipeline,
               fast_math, distributed, memory_limit, allow_changed_settings) -> int:
    from passes.rematerialize import MemoryLimitError
    from runtime.memory import PlanMemoryError

    from . import distributed as dist
    if distributed:
        dist.init()
    main_rank = dist.is_main()
    _say = _print_on_rank0 if distributed else _print_line

    from .data import CharData
    from .models.gpt import CONFIGS
    from .sample import Sampler, default_prompt

    options = check_options(dict(options or {}))
    if not is_int(sample_tokens) or sample_tokens < 0:
        raise GraphcError(f"sample_tokens must be a whole number >= 0, got {sample_tokens!r}")
    if data is not None:  # (5, a descriptor, is no file name)
        check_path(data, "data", "a file name")
    if out is None:
        out = os.path.join("runs", config)
    check_path(out, "out", "a directory name")
    ckpt_path = os.path.join(out, CHECKPOINT)
    # every rank checks the input; a failure on any is every rank's, reported once
    with dist.fail_together():
        _check_out(out)
        arrays = meta = None
        # (rank 0 alone writes OUT; where it cannot, or OUT is missing, the read or the
        # check after it says what is wrong)
        locked = resume and main_rank and os.access(out, os.W_OK)
        if locked:
            hold_again = held.enter_context(exclusive_directory(out, "training run"))
        if resume:
            arrays, meta = checkpoint.load(ckpt_path)
            meta = with_defaults(meta)
            check_writable(ckpt_path, "--out's")  # (read first: an unreadable one says so)
            vocab = list(meta["vocab"])
        else:
            _refuse_to_overwrite(ckpt_path)
            vocab = None
        if config not in CONFIGS:
            raise GraphcError(f"unknown config {config!r}; choose one of {', '.join(CONFIGS)}")
        if data is not None and os.path.isdir(data):
            raise GraphcError(f"--data {data!r} is a directory; pass a UTF-8 text file")
        block = options.get("block_size") or (meta["model"]["block_size"] if meta else
                                              CONFIGS[config]["block_size"])
        text = checkpoint_text(data, block, vocab, ckpt_path)
        if main_rank and sample_tokens:  # (rank 0 alone writes the sample)
            _check_sample_space(out, sample_tokens, text.vocab)
        try:
            cfg = model_config(config, len(text.vocab), options,
                               meta["model"] if meta else None)
        except ValueError as exc:  # GPTConfig's field names, as the options that set them
            raise GraphcError(re.sub(r"\b(" + "|".join(MODEL_OPTIONS) + r")\b",
                                     lambda m: "--" + m.group(1).replace("_", "-"),
                                     str(exc))) from None
        if meta:
            check_compatible(meta, cfg, text.vocab, ckpt_path)
        tc = train_config(config, options, meta["train"] if meta else None)
        if tc.precision != "fp32" and cfg.dtype != "float32":  # (autocast casts float32
            # values only: a float64 model would run in float64, mixed precision in name only)
            raise GraphcError(f"--precision {tc.precision} is for float32 models, and this "
                              f"one is {cfg.dtype} (--dtype, or the checkpoint's); train it "
                              "with --precision fp32")
        if meta:  # before the step is compiled
            meta = checked_text(meta, text, ckpt_path, allow_changed_settings,
                                "--allow-changed-settings")
            checkpoint.check_settings(meta, gpt_settings(cfg, tc, text.vocab,
                                                         _text_sha256(text)), ckpt_path,
                                      allow_changed_settings, "--allow-changed-settings")
            checkpoint.check_optimizer(meta, checkpoint.optimizer_record(optimizer(None, tc)),
                                       ckpt_path, allow_changed_settings,
                                       "--allow-changed-settings")
        # not a TrainConfig field: a run setting of the trainer's header (absent from a
        # checkpoint written before it, which accumulated nothing)
        accumulation = options.get("gradient_accumulation_steps")
        if meta:
            if accumulation is None:
                accumulation = checkpoint.saved_accumulation(meta, ckpt_path)
            checkpoint.check_accumulation(meta, accumulation, ckpt_path,
                                          allow_changed_settings, "--allow-changed-settings",
                                          "--gradient-accumulation-steps")
        accumulation = accumulation or 1
        check_parameter_memory(cfg, accumulation)
        if cfg.batch_size % dist.size():  # found now, not after compiling
            n = dist.size()
            if meta:  # (a --batch-size given here is the checkpoint's: checked above)
                # a resumed run's batch size is its checkpoint's, which --batch-size cannot
                # change (another model configuration): "use a multiple" was no way out
                raise GraphcError(f"{ckpt_path} was trained with batch size "
                                  f"{cfg.batch_size}, which does not split over {n} ranks; "
                                  f"resume it on a number of ranks that divides it "
                                  f"({rank_counts_dividing(cfg.batch_size)})")
            raise GraphcError(f"--batch-size {cfg.batch_size} does not split over "
                              f"{n} ranks; use a multiple of {n}")
        model = GPT(cfg, seed=tc.seed)
    what = f"{config} GPT" if meta is None else f"the GPT of {ckpt_path}"
    batch = f"batch {cfg.batch_size}x{cfg.block_size}"
    if accumulation > 1:  # the effective batch, which the learning rate is tuned for
        tokens = accumulation * cfg.batch_size * cfg.block_size
        batch += f" x {accumulation} micro-batches ({tokens:,} tokens per step)"
    _say(f"graphc train: {what}, {model.num_parameters():,} parameters, vocab "
         f"{cfg.vocab_size}, {batch}, {tc.steps} steps")
    untrained = False  # resumed with no step left to train
    # a signal while the step compiles (until fit() stops at step boundaries) stops with one
    # line, as one in training does (SIGTERM ended the process without a word). Not for
    # ranks: one stopping here while another went on into the first evaluation's all-reduce
    # would leave it waiting
    try:
        with contextlib.nullcontext() if distributed else _signals_stop() as signals:
            t0 = time.perf_counter()
            try:
                trainer = Trainer(model, text, tc, pipeline, fast_math=fast_math,
                                  distributed=distributed, memory_limit=memory_limit,
                                  gradient_accumulation_steps=accumulation)
            except (MemoryLimitError, PlanMemoryError) as exc:
                refusal = (MemoryLimitError(exc.limit, exc.peak, exc.best, "--memory-limit")
                           if isinstance(exc, MemoryLimitError) else GraphcError(
                               f"{exc.message}; lower --batch-size ({cfg.batch_size}) or "
                               f"--block-size ({cfg.block_size})"))
                # a --memory-limit refusal comes from the plan alone, the same on every rank
                # (outside fail_together: building the Trainer holds collectives); the
                # memory available is each rank's own, so that refusal may be one rank's
                refusal.on_every_rank = isinstance(exc, MemoryLimitError)
                raise refusal from None
            _say(compiled_line(time.perf_counter() - t0, len(trainer.step_plan.graph.nodes),
                               trainer.step_plan.kernels_pending))
            if trainer.step_plan.remat_report is not None:
                _say(str(trainer.step_plan.remat_report))
            with dist.fail_together():
                if meta:
                    trainer.restore(arrays, meta, allow_changed_settings, ckpt_path,
                                    how="--allow-changed-settings")
                if not resume:  # again: another run may have written it while this was built
                    _refuse_to_overwrite(ckpt_path)
            if meta:
                _say(f"resumed from {ckpt_path} at step {trainer.step}")
                untrained = trainer.step >= tc.steps
                if untrained:
                    _say(f"no steps to train: the checkpoint is at step {trainer.step} and "
                         f"--steps is {tc.steps} (the total, not the steps to add)")
        if signals:  # raised where Python drops exceptions (a weakref callback, a __del__)
            raise _Stopped(signals[0])
    except _Stopped as stop:
        import signal
        kept = f"; {ckpt_path} is as it was" if resume else ""
        _say(f"interrupted by {signal.Signals(stop.signum).name} before training: nothing "
             f"was saved{kept}", file=sys.stderr)
        return stop.signum
    trainer.command = "graphc train"  # (its refusals name --resume and --out)
    if locked:  # the trainer's now: fit() lets go of it when it ends
        trainer._hold(out, held.pop_all(), hold_again)
    stopped = trainer.fit(out, progress, log=_say)  # holds `out` (files.exclusive_directory)
    if stopped and trainer.step >= tc.steps:  # in the last step, or while loss.png was drawn
        _stopped_after_training(_say, stopped, trainer.step, ckpt_path, out)
        return stopped
    if stopped:
        import signal
        how = "again" if resume else "with --resume"
        _say(f"interrupted by {signal.Signals(stopped).name}: saved step {trainer.step} to "
             f"{ckpt_path}; to continue, run the same command {how}", file=sys.stderr)
        return stopped
    if not main_rank:
        return 0
    trainer.sync_model()
    sample_path = os.path.join(out, "sample.txt")
    before = _file_identity(sample_path)  # (a --resume run's directory may hold an old one)
    if untrained and sample_tokens > 0 and written_since(sample_path, ckpt_path):
        # a run that trained nothing changes nothing saved (fit() keeps loss.png likewise):
        # a sample of the same weights replaced the one there (one older than the
        # checkpoint is an earlier run's: a run with --sample-tokens 0, or stopped before
        # its sample, left it, and it is replaced)
        _say(f"{sample_path} is kept as it was, as no step was trained "
             f"({_command('sample', out)} draws another)")
        sample_tokens = 0
    try:
        with _signals_stop() as signals:
            loss, tokens = trainer.evaluate_split("val")
            _say(f"validation loss over the whole split: {loss:.4f} ({tokens:,} tokens; "
                 f"{_command('eval', out, data)} scores it again)")
            if sample_tokens > 0:
                _sample(Sampler(model, trainer.params), text, sample_tokens, tc.seed,
                        sample_path)
        if signals:  # raised where Python drops exceptions (a weakref callback, a __del__)
            raise _Stopped(signals[0])
    except _Stopped as stop:
        if sample_tokens > 0:
            print(flush=True)  # (a sample stopped mid-line)
        # what is on disk: a signal just after the rename (while the directory was synced,
        # or the closing rule printed) comes with the whole sample in place
        written = sample_tokens > 0 and _file_identity(sample_path) not in (None, before)
        _stopped_after_training(_say, stop.signum, trainer.step, ckpt_path, out,
                                sample_path if written else None)
        return stop.signum
    print(f"checkpoint: {ckpt_path}")
    return 0


def _stopped_after_training(say, signum, step, ckpt_path, out, sample_path=None) -> None:
    import signal
    sample = f"the sample was written to {sample_path}" if sample_path else \
        f"no sample was written ({_command('sample', out)} draws one)"
    say(f"interrupted by {signal.Signals(signum).name} after training: step {step} is saved "
        f"in {ckpt_path}; {sample}", file=sys.stderr)


def _command(name: str, out, data=None) -> str:
    """The `graphc NAME` command line, quoted for a shell, that reads the run in `out`: with
    the text it was trained on, `data`, where NAME scores one (eval)."""
    words = ["graphc", name, "--checkpoint", os.fspath(out)]
    if data is not None:
        words += ["--data", os.fspath(data)]
    return shlex.join(words)


def _file_identity(path):
    """(device, inode) of the file at `path`, None if there is none: a file renamed over it
    is another inode."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Stopped(BaseException):
    """A signal after training. Not an Exception, as KeyboardInterrupt is not: an `except
    Exception` on the way (numba's cache guard, which took it for a damaged cache file and
    deleted the file) must not take it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop():
    """SIGINT and SIGTERM raise _Stopped in the block, for the evaluation and the sample
    after training: the checkpoint is saved by then, and a SIGTERM there ended the process
    without a word (SIGINT said only `graphc: interrupted`). A signal the launcher ignores
    stays ignored; outside the main thread, signals stay as they are. Yields the signals
    received, which the caller checks after the block: a _Stopped raised inside a weakref
    callback or a __del__ is printed and dropped by Python."""
    import signal

    signals = []  # (each signal is also noted: see the caller)

    def stop(signum, frame):
        signals.append(signum)
        raise _Stopped(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, stop)
    except ValueError:
        pass
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sample(sampler, text, tokens: int, seed: int, path: str) -> None:
    """Print the trained model's sample as it is drawn, token by token, and keep it in
    `path` (written whole at the end): a long one shows progress and holds no list of ids."""
    from .files import atomic_writer
    from .sample import default_prompt
    print("---- sample ----")
    try:
        with atomic_writer(path) as fh:
            for token in sampler.stream(text.encode(default_prompt(text.vocab)), tokens,
                                        temperature=0.8, seed=seed):
                piece = text.decode([token])
                fh.write(piece.encode("utf-8"))
                print(piece, end="", flush=True)
    except BaseException:
        print(flush=True)  # an error's line (a full disk, ^C) starts a line of its own
        raise
    print("\n----------------")
