"""Data-parallel step time: one process with all the CPUs vs N ranks sharing them.

    python -m bench.data_parallel --ranks 1,2 --steps 30

For each rank count it runs the tiny GPT's gradient step (loss and every parameter's
gradient, averaged over the ranks by the data_parallel pass) on one global batch split over
the ranks, under mpiexec for N > 1, and prints the median step time, the time spent waiting
for all-reduces (the part of the communication not hidden behind computation) and the threads
each rank used. Rank 0 prints; run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def one_rank_run(config: str, steps: int) -> dict:
    import graphc.distributed as dist
    from graphc.models.gpt import GPT, GPTConfig
    from graphc.train import build_eval_loss
    from passes.manager import optimize
    from runtime import collectives, threads
    from runtime.codegen import compile_graph

    dist.init()
    base = GPTConfig.named(config)
    cfg = GPTConfig.named(config, batch_size=base.batch_size // dist.size())
    model = GPT(cfg, seed=0)
    plan = compile_graph(optimize(build_eval_loss(model, with_grads=True),
                                  "default,data_parallel"))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cfg.vocab_size, (base.batch_size, cfg.block_size))
    rows = dist.shard(base.batch_size)
    x, y = idx[rows], np.roll(idx, -1, axis=1)[rows]
    waited = [0.0]
    wait = collectives.wait

    def timed_wait(buffer, reduce):
        start = time.perf_counter()
        try:
            return wait(buffer, reduce)
        finally:
            waited[0] += time.perf_counter() - start

    collectives.wait = timed_wait
    plan._globals["_collectives"] = collectives
    for env in plan._envs:
        env["_collectives"] = collectives
    params = {n: p.data for n, p in model.named_parameters()}
    for _ in range(3):
        plan(x, y, **params)
    times, waits = [], []
    for step in range(steps):
        dist.beat(step)
        waited[0] = 0.0
        start = time.perf_counter()
        plan(x, y, **params)
        times.append(time.perf_counter() - start)
        waits.append(waited[0])
    gradient_bytes = sum(p.data.nbytes for _, p in model.named_parameters())
    return {"ranks": dist.size(), "threads": threads.plan_threads(),
            "step_ms": 1e3 * float(np.median(times)), "wait_ms": 1e3 * float(np.median(waits)),
            "gradient_mb": gradient_bytes / 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = one_rank_run(args.config, args.steps)
        import graphc.distributed as dist
        if dist.is_main():
            print(json.dumps(result), flush=True)
        return 0
    import subprocess

    import graphc.distributed as dist
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dist.launch_env()
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    from runtime.threads import available_cpus
    cpus = available_cpus()
    print(f"{'ranks':>5} {'threads/rank':>12} {'step ms':>8} {'all-reduce wait ms':>19}")
    for n in [int(r) for r in args.ranks.split(",")]:
        worker = ["-m", "bench.data_parallel", "--worker", "--steps", str(args.steps),
                  "--config", args.config]
        command = [sys.executable, *worker] if n == 1 else dist.launch_command(n, worker)
        # each rank pinned to its share of the CPUs: the comparison is not left to how busy
        # the machine looked (runtime.threads.CpuShare) at the moment
        env["GRAPHC_THREADS"] = str(max(1, cpus // n))
        out = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True,
                             timeout=600)
        if out.returncode:
            sys.stderr.write(out.stdout + out.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['ranks']:>5} {r['threads']:>12} {r['step_ms']:>8.1f} {r['wait_ms']:>19.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
