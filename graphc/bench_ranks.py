"""Data-parallel step time: one process with all the CPUs vs N ranks sharing them.

    graphc bench --ranks 1,2 --steps 30 [--json F]     (python -m bench.data_parallel ...)

For each rank count it runs the tiny GPT's gradient step (loss and every parameter's
gradient, averaged over the ranks by the data_parallel pass) on one global batch split over
the ranks, under mpiexec for N > 1, each rank pinned to its share of the CPUs, and prints the
median step time, the time the step spent waiting for all-reduces (communication not
hidden, plus waiting for a slower rank), the time one blocking all-reduce of all the
gradients takes alone (ranks in step), and so the share of the communication hidden behind
computation (1 - wait / all-reduce alone, 0 when waiting for a slower rank dominates).
Rank 0 prints; run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

from ir.errors import GraphcError


def one_rank_run(config: str, steps: int) -> dict:
    import graphc.distributed as dist
    from graphc.models.gpt import GPT, GPTConfig
    from graphc.train import build_eval_loss
    from runtime import collectives, threads
    from runtime.build import build_plan

    dist.init()
    base = GPTConfig.named(config)
    cfg = GPTConfig.named(config, batch_size=base.batch_size // dist.size())
    model = GPT(cfg, seed=0)
    plan = build_plan(build_eval_loss(model, with_grads=True), "default,data_parallel")
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

    collectives.wait = timed_wait  # the plan calls _collectives.wait through the module
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
    alone = []
    comm = collectives.communicator()
    flat = np.ones(gradient_bytes // 4, np.float32)
    for _ in range(steps if comm is not None and comm.size > 1 else 0):
        comm.comm.Barrier()  # time the communication, not one rank arriving late
        start = time.perf_counter()
        comm.allreduce_sum(flat)
        alone.append(time.perf_counter() - start)
    allreduce_ms = 1e3 * float(np.median(alone)) if alone else 0.0
    wait_ms = 1e3 * float(np.median(waits))
    return {"ranks": dist.size(), "threads": threads.plan_threads(),
            "step_ms": 1e3 * float(np.median(times)), "wait_ms": wait_ms,
            "allreduce_ms": allreduce_ms,
            "hidden": max(0.0, 1 - wait_ms / allreduce_ms) if allreduce_ms else None,
            "gradient_mb": gradient_bytes / 1e6}


def rank_counts(text: str) -> str:
    """--ranks: rank counts separated by commas (kept as the text), checked before any run."""
    if not all(part.strip().isdigit() and int(part) >= 1 for part in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by "
                                         f"commas (e.g. 1,2), got {text!r}")
    return text


def _check_counts(counts, config) -> None:
    """Each rank count, before anything starts (as `graphc train --ranks` checks its own): a
    batch that does not split failed in every rank, with a traceback each, and 1000 ranks
    on 2 cores were started."""
    from .distributed import check_process_count
    from .models.gpt import CONFIGS
    if config not in CONFIGS:
        raise GraphcError(f"--config: unknown config {config!r}; one of {', '.join(CONFIGS)}")
    batch = CONFIGS[config]["batch_size"]
    for n in counts:
        check_process_count("--ranks", n)
        if batch is not None and batch % n:
            raise GraphcError(f"--ranks {n}: the {config} config's batch of {batch} does not "
                              f"split over {n} ranks; use a divisor of {batch}")


def failure_line(output: str) -> str:
    """The line of a failed job's output that says why: the last of graphc's own (`graphc:
    ...`, its prefix dropped), else the last exception line of a traceback, else the last
    line, but not one of mpiexec's banner between its dashed rules ('Exit code: 1' said
    nothing of a rank that could not reach rank 0's watchdog)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("graphc: "):
            return line.removeprefix("graphc: ").removeprefix("error: ")
    outside, inside, banner = [], [], False
    for line in lines:
        if not line.strip("-"):  # a rule opens or closes the banner
            banner = not banner
        else:
            (inside if banner else outside).append(line)
    exception = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b(:|$)")
    # with nothing outside it (a rank killed by a signal), the banner is all there is
    return next((line for line in reversed(outside) if exception.match(line)),
                outside[-1] if outside else " ".join(inside) or "no output")


def main(argv=None, prog=None) -> int:
    # graphc's parser: a bad option in one line, as `graphc bench` says it
    from .cli import _Parser, _path, _positive_int
    parser = _Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=rank_counts, default="1,2")
    parser.add_argument("--steps", type=_positive_int, default=30)  # 0: a row of NaN
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--json", type=_path, help="write the measurements to this JSON file")
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
    if dist.under_mpiexec():  # each rank would start jobs of its own, joined to this one
        raise GraphcError(f"--ranks {args.ranks}: the benchmark starts an MPI job of its own "
                          f"for each rank count, but this process looks started by mpiexec "
                          f"({dist.launcher_variable()} is set); run it without mpiexec")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
    env = dist.launch_env()
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    from runtime.threads import available_cpus
    cpus = available_cpus()
    counts = [int(r) for r in args.ranks.split(",")]
    _check_counts(counts, args.config)
    if args.json:
        from .bench import check_output
        try:
            check_output("--json", args.json)
        except ValueError as exc:  # (one line under python -m too)
            raise GraphcError(str(exc)) from None
    rows = []
    print(f"{'ranks':>5} {'threads/rank':>12} {'step ms':>8} {'waiting ms':>10} "
          f"{'all-reduce alone ms':>19} {'hidden':>6}")
    for n in counts:
        worker = ["-m", "graphc.bench_ranks", "--worker", "--steps", str(args.steps),
                  "--config", args.config]
        command = [sys.executable, *worker] if n == 1 else dist.launch_command(n, worker)
        # each rank pinned to its share of the CPUs: the comparison is not left to how busy
        # the machine looked (runtime.threads.CpuShare) at the moment
        env["GRAPHC_THREADS"] = str(max(1, cpus // n))
        with dist.launch_session(env) as (job_env, folder):
            # the job ends with this process: killed by a signal (`timeout`, `kill`: SIGTERM)
            # the bench ended alone, and the job's ranks ran all their steps on; here a
            # SIGINT, SIGTERM or SIGHUP ends the job (mpiexec ends its ranks) and then the
            # bench (no rank 0 pid file: none is told to stop at a step boundary); a SIGKILL
            # of the bench, which it cannot handle, sends the job a SIGTERM (s47: the job
            # ran on)
            with subprocess.Popen(command, env=job_env, cwd=root, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  preexec_fn=dist.ends_with_this_process()) as proc:
                no_pid_file = os.path.join(folder, "no-rank-0")
                with dist._forwarding_stops(proc, no_pid_file) as ended_by:
                    # no time limit: the job runs its --steps however long they take
                    # (a hidden 600 s ended long runs in a traceback, the ranks left running)
                    try:
                        stdout, stderr = proc.communicate()
                    except BaseException:
                        dist.end_job(proc)
                        raise
            out = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
        if ended_by:
            import signal
            if ended_by[0] == signal.SIGINT:
                raise KeyboardInterrupt
            print(f"graphc: interrupted by {signal.Signals(ended_by[0]).name}: the {n}-rank "
                  "job was ended", file=sys.stderr)
            return 128 + ended_by[0]
        if out.returncode:  # one line: the ranks' own
            raise GraphcError(f"--ranks: the {n}-rank job failed (exit status "
                              f"{out.returncode}): {failure_line(out.stderr + out.stdout)}"
                              [:400])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        hidden = "" if r["hidden"] is None else f"{r['hidden']:.0%}"
        print(f"{r['ranks']:>5} {r['threads']:>12} {r['step_ms']:>8.1f} {r['wait_ms']:>10.2f} "
              f"{r['allreduce_ms']:>19.2f} {hidden:>6}")
    if args.json:  # a row per rank count, the table's columns (times in ms, hidden a share)
        from .files import write_atomically
        write_atomically(args.json, json.dumps({"config": args.config, "steps": args.steps,
                                                "cpus": cpus, "ranks": rows}, indent=1))
    return 0


def run_as_module(prog: str) -> int:
    """main() for `python -m MODULE` (this one, bench.data_parallel): an error in one line
    and status 2, as `graphc bench --ranks` gives it, not a traceback."""
    try:
        return main(prog=prog)
    except GraphcError as exc:
        print(f"graphc: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run_as_module("python -m graphc.bench_ranks"))
