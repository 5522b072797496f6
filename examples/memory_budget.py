"""Peak memory against step time: the GPT's training step compiled with no memory limit and
with budgets (gc.Trainer(memory_limit=...), as `graphc train --memory-limit`), timed in
alternation (one step of each configuration per round), so that a busy machine slows them
alike. Prints a Markdown table: the plan's memory (plan.memory["total"]), what the budget
recomputes and its FLOPs, and the range and median of the step times.

    python examples/memory_budget.py --config medium --budgets 1200MiB,900MiB,600MiB --rounds 5
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphc as gc
from graphc.data import CharData
from graphc.models.gpt import CONFIGS, GPT, GPTConfig
from graphc.train import TrainConfig, gpt_loss, optimizer
from passes.rematerialize import parse_memory_limit


def training_step(cfg: GPTConfig, data: CharData, memory_limit):
    """A compiled GPT training step (loss, gradients, clipping, AdamW) under a budget."""
    model = GPT(cfg, seed=0)
    tc = TrainConfig(steps=10_000, warmup=10)
    B, T = cfg.batch_size, cfg.block_size
    return gc.Trainer(gpt_loss(model), {n: p.data for n, p in model.named_parameters()},
                      optimizer(model, tc), lambda rng: data.batch(rng, "train", B, T),
                      steps=tc.steps, clip_norm=tc.grad_clip, memory_limit=memory_limit)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="medium", choices=CONFIGS)
    p.add_argument("--budgets", default="1200MiB,900MiB,600MiB",
                   help="comma-separated memory limits")
    p.add_argument("--rounds", type=int, default=5, help="timed steps of each configuration")
    args = p.parse_args(argv)
    if args.rounds < 1:  # (no round: no step time to show)
        p.error(f"argument --rounds: expected a whole number >= 1, got {args.rounds}")
    cfg = GPTConfig.named(args.config)
    data = CharData.from_file(None, cfg.block_size)
    cfg.vocab_size = len(data.vocab)
    limits = [None] + [b.strip() for b in args.budgets.split(",") if b.strip()]
    if len(limits) == 1:  # (a table of the unlimited plan alone: no budget to compare)
        p.error(f"argument --budgets: expected comma-separated memory limits, got "
                f"{args.budgets!r}")
    try:  # every budget a size before any configuration is compiled and trained
        for limit in limits[1:]:
            parse_memory_limit(limit)
    except gc.GraphcError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    steps, compile_seconds = [], []
    for limit in limits:
        start = time.perf_counter()
        try:
            trainer = training_step(cfg, data, limit)
            trainer.step_plan.wait_for_kernels()
        except gc.GraphcError as exc:  # a budget that cannot be met
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        compile_seconds.append(time.perf_counter() - start)
        trainer.train_step()  # warm-up
        steps.append(trainer)
    times = [[] for _ in limits]
    for _ in range(args.rounds):
        for k, trainer in enumerate(steps):
            start = time.perf_counter()
            trainer.train_step()
            times[k].append(time.perf_counter() - start)
    print(f"| memory limit | plan memory | recomputed | extra FLOPs | step time (median, "
          f"min-max of {args.rounds}) | compile |")
    print("| --- | --- | --- | --- | --- | --- |")
    for limit, trainer, t, c in zip(limits, steps, times, compile_seconds):
        plan, report = trainer.step_plan, trainer.step_plan.remat_report
        recomputed = f"{len(report.recomputed)} values" if report else "-"
        extra = (f"+{report.extra_flops / 1e9:.1f} GFLOP "
                 f"(+{report.extra_flops / report.flops_before:.1%})" if report else "-")
        print(f"| {limit or 'none'} | {plan.memory['total'] / 2**20:.1f} MiB | {recomputed} | "
              f"{extra} | {np.median(t):.2f} s ({min(t):.2f}-{max(t):.2f}) | {c:.0f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
