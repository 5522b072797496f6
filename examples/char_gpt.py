"""A character-level GPT on Tiny Shakespeare, written with graphc's public library: gc.nn
layers, gc.optim.AdamW with nanoGPT's warmup + cosine schedule, and gc.Trainer (one compiled
step, checkpoints, loss curve). The model, settings and seed are those of
`graphc train --config tiny --steps 300`, so it reaches the same validation loss (~2.16).

    python examples/char_gpt.py [--steps 300] [--out runs/char_gpt] [--resume]
"""
import argparse
import os
import sys
import math

import numpy as np

import graphc as gc
from graphc.checkpoint import CheckpointError
from graphc.data import CharData


class Attention(gc.nn.Module):
    def __init__(self, width, heads, rng, proj_std):
        self.c_attn = gc.nn.Linear(width, 3 * width, rng=rng, std=0.02)
        self.c_proj = gc.nn.Linear(width, width, rng=rng, std=proj_std)
        self.heads = heads

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.reshape(B, T, self.heads, C // self.heads).transpose(0, 2, 1, 3)
                   for t in gc.split(self.c_attn(x), 3, axis=-1))
        scale = 1.0 / math.sqrt(C // self.heads)
        if q.dtype == np.float16:  # under gc.autocast("float16"): q @ k^T would overflow
            att = (q * scale) @ k.transpose(0, 1, 3, 2)  # to inf where the scaled scores fit
        else:
            att = (q @ k.transpose(0, 1, 3, 2)) * scale
        att = gc.softmax(gc.masked_fill(att, ~gc.tril_mask(T), float("-inf")), axis=-1)
        return self.c_proj((att @ v).transpose(0, 2, 1, 3).reshape(B, T, C))


class Block(gc.nn.Module):
    def __init__(self, width, heads, rng, proj_std):
        self.ln_1 = gc.nn.LayerNorm(width)
        self.attn = Attention(width, heads, rng, proj_std)
        self.ln_2 = gc.nn.LayerNorm(width)
        self.c_fc = gc.nn.Linear(width, 4 * width, rng=rng, std=0.02)
        self.c_proj = gc.nn.Linear(4 * width, width, rng=rng, std=proj_std)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(gc.gelu(self.c_fc(self.ln_2(x))))


class GPT(gc.nn.Module):
    def __init__(self, vocab, block, width=64, heads=4, layers=2, seed=1337):
        rng = np.random.default_rng(seed)
        proj_std = 0.02 / math.sqrt(2 * layers)
        self.wte = gc.nn.Embedding(vocab, width, rng=rng, std=0.02)
        self.wpe = gc.nn.Embedding(block, width, rng=rng, std=0.02)
        self.blocks = gc.nn.ModuleList([Block(width, heads, rng, proj_std)
                                        for _ in range(layers)])
        self.ln_f = gc.nn.LayerNorm(width)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(gc.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ gc.transpose(self.wte.weight)  # weights tied, as nanoGPT's
        return gc.cross_entropy(logits, targets)


def train(steps=300, eval_iters=20, out=None, seed=1337, progress=True, resume=False,
          command=None):
    data = CharData.from_file(None, 32)  # the bundled Tiny Shakespeare, 90/10 split
    model = GPT(len(data.vocab), block=32, seed=seed)
    schedule = gc.optim.cosine(5e-3, steps=steps, warmup=30, min_lr=5e-4)
    opt = gc.optim.AdamW(lr=schedule, betas=(0.9, 0.99), weight_decay=0.1,
                         decay_mask=gc.optim.decay_matrices_only)
    trainer = gc.Trainer(lambda params, batch: model.apply(params, *batch), model.params(),
                         opt, lambda rng: data.batch(rng, "train", 64, 32),
                         eval_batches=lambda rng: data.batch(rng, "val", 64, 32),
                         steps=steps, eval_every=100, eval_iters=eval_iters, clip_norm=1.0,
                         seed=seed, units="tokens")
    trainer.command = command  # (a refusal's advice names this script's --resume and --out)
    if resume:  # continue OUT/checkpoint.npz (fit refuses to replace it otherwise)
        trainer.resume(os.path.join(out, "checkpoint.npz"))
        if trainer.step >= steps:  # (fit trains nothing: said, as graphc train says it)
            print(f"no steps to train: the checkpoint is at step {trainer.step} and --steps "
                  f"is {steps} (the total, not the steps to add)")
    trainer.fit(out, progress=progress)
    return trainer.val_history[-1]  # (step, validation loss): a resumed run's own step


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="runs/char_gpt")
    parser.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.npz")
    args = parser.parse_args()
    if args.steps < 1:  # (no step: nothing trained to validate, as graphc train refuses)
        parser.error(f"argument --steps: expected a whole number >= 1, got {args.steps}")
    try:
        step, loss = train(args.steps, out=args.out, resume=args.resume, command=parser.prog)
    except (gc.GraphcError, CheckpointError) as exc:  # one line, as graphc's own commands
        # (an OUT in use, ...; --resume of a missing or foreign checkpoint)
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(2)
    print(f"validation loss after {step} steps: {loss:.4f}")
