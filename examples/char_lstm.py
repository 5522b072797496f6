"""A character-level LSTM on Tiny Shakespeare, its time loop written with gc.scan: the
compiled training step holds the LSTM cell once, however long the sequence (the scan's body
is a sub-graph, run by its own plan once per time step), and its backward pass is a reverse
scan. `unroll=True` runs the same cell in a Python loop instead (one copy of the cell per
time step in the graph), the reference the tests compare gradients with.

    python examples/char_lstm.py [--steps 300] [--out runs/char_lstm] [--resume]
"""
import argparse
import os
import sys

import numpy as np

import graphc as gc
from graphc.checkpoint import CheckpointError
from graphc.data import CharData


class LSTM(gc.nn.Module):
    """One LSTM layer (PyTorch's gate order i, f, g, o; weights stored (in, 4 * hidden))."""

    def __init__(self, inputs, hidden, rng, dtype="float32"):
        bound = 1.0 / np.sqrt(hidden)
        self.w_x = gc.nn.Parameter(rng.uniform(-bound, bound, (inputs, 4 * hidden)).astype(dtype))
        self.w_h = gc.nn.Parameter(rng.uniform(-bound, bound, (hidden, 4 * hidden)).astype(dtype))
        bias = np.zeros(4 * hidden)
        bias[hidden:2 * hidden] = 1.0  # forget gate open at the start: gradients flow back
        self.bias = gc.nn.Parameter(bias.astype(dtype))
        self.hidden = hidden

    def cell(self, carry, gates_x):
        h, c = carry                                    # (B, H) each
        gates = gates_x + h @ self.w_h                  # (B, 4H)
        i, f, g, o = gc.split(gates, 4, axis=-1)
        c = gc.sigmoid(f) * c + gc.sigmoid(i) * gc.tanh(g)
        h = gc.sigmoid(o) * gc.tanh(c)
        return (h, c), h

    def forward(self, x, unroll=False):
        B, T, _ = x.shape
        gates_x = gc.transpose(x @ self.w_x + self.bias, (1, 0, 2))  # (T, B, 4H): one GEMM
        zeros = gc.zeros((B, self.hidden), x.dtype)
        if unroll:
            carry, hs = (zeros, zeros), []
            for t in range(T):
                carry, h = self.cell(carry, gates_x[t])
                hs.append(h)
            hs = gc.stack(hs, 0)
        else:
            _, hs = gc.scan(self.cell, (zeros, zeros), gates_x)  # hs: (T, B, H)
        return gc.transpose(hs, (1, 0, 2))                        # (B, T, H)


class CharLSTM(gc.nn.Module):
    def __init__(self, vocab, width=64, hidden=128, seed=1337, dtype="float32"):
        rng = np.random.default_rng(seed)
        self.embed = gc.nn.Embedding(vocab, width, rng=rng, std=0.1, dtype=dtype)
        self.lstm = LSTM(width, hidden, rng, dtype)
        self.head = gc.nn.Linear(hidden, vocab, rng=rng, dtype=dtype)

    def forward(self, idx, targets, unroll=False):
        return gc.cross_entropy(self.head(self.lstm(self.embed(idx), unroll)), targets)


def train(steps=300, batch=32, block=64, out=None, seed=1337, progress=True,
          eval_iters=10, resume=False, command=None):
    """Train compiled; -> (first training loss, the step, its validation estimate)."""
    data = CharData.from_file(None, block)  # the bundled Tiny Shakespeare, 90/10 split
    model = CharLSTM(len(data.vocab), seed=seed)
    opt = gc.optim.AdamW(lr=gc.optim.cosine(1e-2, steps=steps, warmup=10, min_lr=1e-3),
                         weight_decay=0.0)
    trainer = gc.Trainer(lambda params, b: model.apply(params, *b), model.params(), opt,
                         lambda rng: data.batch(rng, "train", batch, block),
                         eval_batches=lambda rng: data.batch(rng, "val", batch, block),
                         steps=steps, eval_every=max(steps // 3, 1), eval_iters=eval_iters,
                         clip_norm=1.0, seed=seed, units="tokens")
    trainer.command = command  # (a refusal's advice names this script's --resume and --out)
    if resume:  # continue OUT/checkpoint.npz (fit refuses to replace it otherwise)
        trainer.resume(os.path.join(out, "checkpoint.npz"))
        if trainer.step >= steps:  # (fit trains nothing: said, as graphc train says it)
            print(f"no steps to train: the checkpoint is at step {trainer.step} and --steps "
                  f"is {steps} (the total, not the steps to add)")
    trainer.fit(out, progress=progress)
    return trainer.history[0][1], *trainer.val_history[-1]  # (step, val): a resumed run's


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="runs/char_lstm")
    parser.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.npz")
    args = parser.parse_args()
    if args.steps < 1:  # (no step: no first training loss to report)
        parser.error(f"argument --steps: expected a whole number >= 1, got {args.steps}")
    try:
        first, step, val = train(args.steps, out=args.out, resume=args.resume,
                                 command=parser.prog)
    except (gc.GraphcError, CheckpointError) as exc:  # one line, as graphc's own commands
        # (an OUT in use, ...; --resume of a missing or foreign checkpoint)
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(2)
    print(f"training loss at the first step {first:.4f}; validation loss after {step} "
          f"steps: {val:.4f}")
