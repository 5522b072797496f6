"""Training a GPT with one compiled graph per step: loss, gradients (symbolic autodiff),
global-norm clipping and the AdamW update, all in a single plan.

The learning-rate schedule (linear warmup, cosine decay) is computed in Python and fed in as a
scalar input, as nanoGPT sets it on its optimiser; the step count is an input too, so the
graph is built once and the bias corrections happen inside it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ir.errors import GraphcError
from ir.graph import Graph
from ir.ops import api as F
from ir.ops.registry import graph_param
from passes.autodiff import gradients
from passes.manager import optimize
from runtime.codegen import compile_graph
from runtime import interpreter

from . import checkpoint
from .models.gpt import GPT, GPTConfig


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
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_iters: int = 20
    seed: int = 1337
    decay_steps: int | None = None  # length of the cosine schedule; None: steps

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def lr_at(step: int, tc: TrainConfig) -> float:
    """nanoGPT's schedule: linear warmup, then cosine decay to min_lr at the last step."""
    decay = tc.decay_steps or tc.steps
    if step < tc.warmup:
        return tc.lr * (step + 1) / (tc.warmup + 1)
    if step >= decay:
        return tc.min_lr
    ratio = (step - tc.warmup) / max(1, decay - tc.warmup)
    return tc.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (tc.lr - tc.min_lr)


def build_train_step(model: GPT, tc: TrainConfig) -> Graph:
    cfg = model.cfg
    B, T, dt = cfg.batch_size, cfg.block_size, cfg.dtype
    g = Graph("train_step")
    with g.building():
        idx = g.input("idx", (B, T), "int64")
        targets = g.input("targets", (B, T), "int64")
        seed = g.input("seed", (), "int64")
        lr = g.input("lr", (), dt)
        step = g.input("step", (), dt)  # 1-based, for the bias corrections
        named = list(model.named_parameters())
        params = [graph_param(g, p) for _, p in named]
        ms = [g.input(f"adam_m.{n}", p.data.shape, dt, kind="state") for n, p in named]
        vs = [g.input(f"adam_v.{n}", p.data.shape, dt, kind="state") for n, p in named]
        loss = model(idx, targets, seed=seed, training=True)
        grads = gradients([loss], params)
        sq = None
        for gr in grads:
            s = F.sum(gr * gr)
            sq = s if sq is None else sq + s
        norm = F.sqrt(sq)
        clip = F.minimum(tc.grad_clip / (norm + 1e-6), 1.0)
        bc1 = 1.0 - F.pow(F.full((), tc.beta1, dt), step)
        bc2 = 1.0 - F.pow(F.full((), tc.beta2, dt), step)
        step_size = lr / bc1
        new_p, new_m, new_v = [], [], []
        for (name, _), p, gr, m, v in zip(named, params, grads, ms, vs):
            gr = gr * clip
            m2 = m * tc.beta1 + gr * (1.0 - tc.beta1)
            v2 = v * tc.beta2 + (gr * gr) * (1.0 - tc.beta2)
            denom = F.sqrt(v2) / F.sqrt(bc2) + tc.eps  # PyTorch's AdamW, term for term
            if not model.no_decay(name) and tc.weight_decay:
                p = p * (1.0 - lr * tc.weight_decay)
            new_p.append(p - step_size * (m2 / denom))
            new_m.append(m2)
            new_v.append(v2)
        g.set_outputs([loss, norm] + new_p + new_m + new_v)
    return g


def build_eval_loss(model: GPT, batch_size: int | None = None, with_grads: bool = False,
                    name: str = "eval_loss") -> Graph:
    """The mean loss of a batch (no dropout); with_grads adds each parameter's gradient."""
    cfg = model.cfg
    B, T = batch_size or cfg.batch_size, cfg.block_size
    g = Graph(name)
    with g.building():
        idx = g.input("idx", (B, T), "int64")
        targets = g.input("targets", (B, T), "int64")
        params = [graph_param(g, p) for _, p in model.named_parameters()]
        loss = model(idx, targets)
        g.set_outputs([loss] + (gradients([loss], params) if with_grads else []))
    return g


def build_logits(model: GPT, batch_size: int = 1) -> Graph:
    cfg = model.cfg
    g = Graph("logits")
    with g.building():
        idx = g.input("idx", (batch_size, cfg.block_size), "int64")
        for _, p in model.named_parameters():
            graph_param(g, p)
        g.set_outputs([model(idx)])
    return g


def split_loss(model: GPT, params: dict, data, split="val", pipeline="default",
               jit=None, fast_math=False) -> tuple[float, int]:
    """Mean cross-entropy (nats per token) over all non-overlapping windows of a data split,
    and the number of tokens scored. The 20-batch estimate printed while training has a
    standard deviation of ~0.015 nats on Tiny Shakespeare; this one has none."""
    cfg = model.cfg
    T = cfg.block_size
    ids = data.val if split == "val" else data.train
    windows = (len(ids) - 1) // T
    if windows < 1:
        raise ValueError(f"the {split} split has {len(ids)} tokens: fewer than one window of "
                         f"{T} + 1")
    plans, total, tokens = {}, 0.0, 0
    for first in range(0, windows, cfg.batch_size):
        count = min(cfg.batch_size, windows - first)
        if count not in plans:  # the last batch may be smaller: a plan of its own
            plan = compile_graph(optimize(build_eval_loss(model, count), pipeline,
                                          fast_math=fast_math, evaluate=interpreter.evaluate),
                                 jit=jit, fast_math=fast_math)
            plans[count] = (plan, [n.attrs["name"] for n in plan.graph.inputs])
        plan, order = plans[count]
        offsets = ((first + np.arange(count)) * T)[:, None] + np.arange(T)
        feed = {"idx": ids[offsets].astype(np.int64),
                "targets": ids[offsets + 1].astype(np.int64), **params}
        loss = float(plan(*[feed[n] for n in order])[0])
        total += loss * count * T
        tokens += count * T
    return total / tokens, tokens


class Trainer:
    """Owns parameters, AdamW state, the data RNG and the compiled plans."""

    def __init__(self, model: GPT, data, tc: TrainConfig, pipeline="default", jit=None,
                 fast_math=False):
        self.model, self.data, self.tc = model, data, tc
        self.names = [n for n, _ in model.named_parameters()]
        # the step plan updates these arrays in place (they are donated to it)
        self.params = {n: p.data.copy() for n, p in model.named_parameters()}
        self.m = {n: np.zeros_like(a) for n, a in self.params.items()}
        self.v = {n: np.zeros_like(a) for n, a in self.params.items()}
        self.step = 0
        self.rng = np.random.default_rng(tc.seed)
        self.history = []  # (step, train loss)
        self.grad_norm = None  # of the last step
        self._good = None  # see mark_good
        self.val_history = []  # (step, val loss)
        self.pipeline, self.jit, self.fast_math = pipeline, jit, fast_math
        donated = self.names + [f"adam_{k}.{n}" for k in "mv" for n in self.names]
        # fast_math: rewrites that assume finite values (graphc.compile's option)
        self.step_plan = compile_graph(
            optimize(build_train_step(model, tc), pipeline, fast_math=fast_math,
                     evaluate=interpreter.evaluate),
            donate=donated, jit=jit, fast_math=fast_math)
        self.eval_plan = compile_graph(
            optimize(build_eval_loss(model), pipeline, fast_math=fast_math,
                     evaluate=interpreter.evaluate), jit=jit,
            fast_math=fast_math)
        self._order = [n.attrs["name"] for n in self.step_plan.graph.inputs]

    def step_inputs(self, x, y) -> list:
        """The step plan's inputs, in order, for a batch at the current step."""
        cfg, tc = self.model.cfg, self.tc
        dt = np.dtype(cfg.dtype)
        feed = {"idx": x, "targets": y, "seed": np.int64(tc.seed * 1_000_003 + self.step),
                "lr": np.asarray(lr_at(self.step, tc), dt),
                "step": np.asarray(self.step + 1, dt)}
        for n in self.names:
            feed[n] = self.params[n]
            feed[f"adam_m.{n}"] = self.m[n]
            feed[f"adam_v.{n}"] = self.v[n]
        return [feed[name] for name in self._order]

    def train_step(self, checked: bool = False) -> float:
        """One step; `checked` runs it with the plan's finite check, which raises GraphcError
        naming the first op that produced a NaN or an Inf."""
        cfg = self.model.cfg
        x, y = self.data.batch(self.rng, "train", cfg.batch_size, cfg.block_size)
        run = self.step_plan.run_checked if checked else self.step_plan
        outs = run(*self.step_inputs(x, y))
        loss, k = float(outs[0]), len(self.names)
        self.grad_norm = float(outs[1])
        for i, n in enumerate(self.names):
            self.params[n] = outs[2 + i]
            self.m[n] = outs[2 + k + i]
            self.v[n] = outs[2 + 2 * k + i]
        self.step += 1
        self.history.append((self.step, loss))
        return loss

    def evaluate(self, split="val", checked: bool = False) -> float:
        cfg = self.model.cfg
        rng = np.random.default_rng([self.tc.seed, 7, self.step])  # leaves training RNG alone
        order = [n.attrs["name"] for n in self.eval_plan.graph.inputs]
        run = self.eval_plan.run_checked if checked else self.eval_plan
        losses = []
        for _ in range(self.tc.eval_iters):
            x, y = self.data.batch(rng, split, cfg.batch_size, cfg.block_size)
            feed = {"idx": x, "targets": y, **self.params}
            losses.append(float(run(*[feed[n] for n in order])[0]))
        loss = float(np.mean(losses))
        if split == "val":
            self.val_history.append((self.step, loss))
        return loss

    def evaluate_split(self, split="val") -> tuple[float, int]:
        """(mean loss, tokens) over every non-overlapping window of a split: the figure to
        compare runs by (the periodic estimate samples eval_iters batches)."""
        return split_loss(self.model, self.params, self.data, split, self.pipeline, self.jit,
                          self.fast_math)

    def sync_model(self):
        for n, p in self.model.named_parameters():
            p.data = self.params[n]

    # ---- divergence -------------------------------------------------------------------------
    def non_finite(self) -> str | None:
        """The first parameter or optimiser array holding a NaN or an Inf, or None."""
        for n in self.names:
            for prefix, store in (("param", self.params), ("adam_m", self.m), ("adam_v", self.v)):
                if not np.isfinite(store[n]).all():
                    return f"{prefix}/{n}"
        return None

    def mark_good(self) -> None:
        """Remember the current (finite) state, to re-run from it if training diverges: the
        step plan updates the arrays in place, so the state before a bad step is gone."""
        self._good = (self.step, self.rng.bit_generator.state,
                      {n: (self.params[n].copy(), self.m[n].copy(), self.v[n].copy())
                       for n in self.names}, list(self.history), list(self.val_history))

    @property
    def good_step(self) -> int:
        return self._good[0]

    def find_non_finite_op(self, failed_step: int) -> GraphcError | None:
        """Re-run from the state of mark_good() up to `failed_step`, the last two steps (and
        then an evaluation) with the plans' finite check; return its error, which names the
        first op that produced a NaN or an Inf, its operand ranges and the model's line."""
        step, rng_state, arrays, history, val_history = self._good
        self.step, self.history, self.val_history = step, list(history), list(val_history)
        self.rng.bit_generator.state = rng_state
        for n, (p, m, v) in arrays.items():
            self.params[n], self.m[n], self.v[n] = p.copy(), m.copy(), v.copy()
        try:
            while self.step < failed_step:
                self.train_step(checked=self.step >= failed_step - 2)
            self.evaluate(checked=True)
        except GraphcError as exc:
            return exc
        return None

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, path: str):
        bad = self.non_finite()
        if bad is None:
            bad = next((f"the loss of step {st}" for st, loss in self.history + self.val_history
                        if not math.isfinite(loss)), None)
        if bad is not None:  # the file on disk is the last good state; keep it
            raise GraphcError(f"not saving step {self.step} to {path}: {bad} is not finite")
        arrays = {}
        for n in self.names:
            arrays[f"param/{n}"] = self.params[n]
            arrays[f"adam_m/{n}"] = self.m[n]
            arrays[f"adam_v/{n}"] = self.v[n]
        meta = {
            "model": self.model.cfg.to_dict(),
            "train": asdict(self.tc),
            "vocab": "".join(self.data.vocab),
            "step": self.step,
            "rng": _jsonable_state(self.rng.bit_generator.state),
            "history": self.history,
            "val_history": self.val_history,
        }
        checkpoint.save(path, arrays, meta)

    def restore(self, arrays: dict, meta: dict):
        for n in self.names:
            for prefix, store in (("param", self.params), ("adam_m", self.m), ("adam_v", self.v)):
                key = f"{prefix}/{n}"
                if key not in arrays:
                    raise checkpoint.CheckpointError(f"checkpoint lacks {key}")
                if arrays[key].shape != store[n].shape or arrays[key].dtype != store[n].dtype:
                    raise checkpoint.CheckpointError(
                        f"checkpoint {key} is {arrays[key].dtype}{list(arrays[key].shape)}, "
                        f"the model needs {store[n].dtype}{list(store[n].shape)}")
                store[n] = arrays[key]
        self.step = int(meta["step"])
        self.rng.bit_generator.state = meta["rng"]
        self.history = [tuple(h) for h in meta.get("history", [])]
        self.val_history = [tuple(h) for h in meta.get("val_history", [])]
        self.sync_model()


def _jsonable_state(state):
    if isinstance(state, dict):
        return {k: _jsonable_state(v) for k, v in state.items()}
    if isinstance(state, np.integer):
        return int(state)
    return state


def check_compatible(meta: dict, cfg: GPTConfig, vocab) -> None:
    """A checkpoint must match the model configuration and the vocabulary it resumes with."""
    saved = GPTConfig.from_dict(meta["model"])
    if saved != cfg:
        diffs = [f"{k}: checkpoint {v!r} vs requested {getattr(cfg, k)!r}"
                 for k, v in saved.to_dict().items() if getattr(cfg, k) != v]
        raise checkpoint.CheckpointError("checkpoint was trained with another model "
                                         "configuration (" + "; ".join(diffs) + ")")
    if meta["vocab"] != "".join(vocab):
        raise checkpoint.CheckpointError("checkpoint was trained on another vocabulary "
                                         f"({len(meta['vocab'])} characters vs {len(vocab)})")
