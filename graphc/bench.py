"""Benchmarks: the same GPT training step under graphc compiled (default pipeline and -O0),
graphc eager, and PyTorch eager when torch is importable: same weights, same batch.

Contenders are interleaved step by step so that machine noise hits them alike; we report the
median and the interquartile range of the step times, measured in one run.
"""
from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from .models.gpt import GPT, GPTConfig
from .train import TrainConfig, Trainer, lr_at


@dataclass
class Result:
    workload: str
    contender: str
    times: list = field(default_factory=list)
    compile_seconds: float | None = None
    peak_bytes: int | None = None
    tokens: int = 0
    flops: float = 0.0

    @property
    def median_ms(self):
        return float(np.median(self.times)) * 1e3

    @property
    def iqr_ms(self):
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1) * 1e3


class _Data:
    """A fixed random batch source standing in for CharData (the bench measures compute)."""

    def __init__(self, cfg, seed=0):
        rng = np.random.default_rng(seed)
        self.vocab = [chr(32 + i) for i in range(cfg.vocab_size)]
        self.x = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
        self.y = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))

    def batch(self, rng, split, batch_size, block_size):
        return self.x, self.y


class CompiledStep:
    def __init__(self, cfg, tc, pipeline):
        start = time.perf_counter()
        self.trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), tc, pipeline)
        self.compile_seconds = time.perf_counter() - start
        self.peak_bytes = self.trainer.step_plan.peak_intermediate_bytes
        self.flops = self.trainer.step_plan.flops()

    def __call__(self):
        return self.trainer.train_step()


class EagerStep:
    """graphc eager mode: tape forward/backward, then AdamW on numpy arrays."""

    def __init__(self, cfg, tc):
        from runtime.eager import Tensor
        self.Tensor = Tensor
        self.model = GPT(cfg, seed=0)
        self.tc, self.cfg, self.data = tc, cfg, _Data(cfg)
        self.params = list(self.model.named_parameters())
        self.m = [np.zeros_like(p.data) for _, p in self.params]
        self.v = [np.zeros_like(p.data) for _, p in self.params]
        self.step = 0
        self.compile_seconds = None
        self.peak_bytes = None

    def __call__(self):
        tc = self.tc
        for _, p in self.params:
            p.grad = None
        loss = self.model(self.Tensor(self.data.x), self.Tensor(self.data.y))
        loss.backward()
        norm = np.sqrt(sum(float(np.sum(p.grad * p.grad)) for _, p in self.params))
        clip = min(1.0, tc.grad_clip / (norm + 1e-6))
        self.step += 1
        lr = lr_at(self.step - 1, tc)
        bc1, bc2 = 1 - tc.beta1 ** self.step, 1 - tc.beta2 ** self.step
        for (name, p), m, v in zip(self.params, self.m, self.v):
            g = p.grad * clip
            m *= tc.beta1
            m += (1 - tc.beta1) * g
            v *= tc.beta2
            v += (1 - tc.beta2) * g * g
            if not self.model.no_decay(name):
                p.data *= 1 - lr * tc.weight_decay
            p.data -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + tc.eps)
        return loss.item()

    def measure_peak(self):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        self()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        self.peak_bytes = peak


class TorchStep:
    """The same model and update in PyTorch eager on the CPU (the tests' oracle model)."""

    def __init__(self, cfg, tc):
        import torch

        from .torch_ref import torch_gpt
        self.torch, self.forward = torch, torch_gpt
        model = GPT(cfg, seed=0)
        self.cfg, self.tc, self.data = cfg, tc, _Data(cfg)
        self.P = {n: torch.tensor(p.data, requires_grad=True) for n, p in model.named_parameters()}
        decay = [t for n, t in self.P.items() if not model.no_decay(n)]
        nodecay = [t for n, t in self.P.items() if model.no_decay(n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                                      {"params": nodecay, "weight_decay": 0.0}],
                                     lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)
        self.x, self.y = torch.tensor(self.data.x), torch.tensor(self.data.y)
        self.step = 0
        self.compile_seconds = None
        self.peak_bytes = None

    def __call__(self):
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.tc)
        self.step += 1
        self.opt.zero_grad(set_to_none=True)
        _, loss = self.forward(self.P, self.x, self.y, self.cfg)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(list(self.P.values()), self.tc.grad_clip)
        self.opt.step()
        return loss.item()


def matmul_gflops(n=1024, dtype=np.float32, repeat=10) -> float:
    """This machine's numpy GEMM throughput: the ceiling for a matmul-bound step."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.copy()
    a @ b
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def run_gpt_steps(configs=("tiny", "small"), steps=10, warmup=2, torch_threads=None,
                  contenders=("compiled", "O0", "eager", "torch"), log=print):
    results = []
    for name in configs:
        cfg = GPTConfig.named(name)
        tc = TrainConfig(steps=10_000, warmup=10)
        tokens = cfg.batch_size * cfg.block_size
        runners = {}
        for contender in contenders:
            if contender == "compiled":
                runners[contender] = CompiledStep(cfg, tc, "default")
            elif contender == "O0":
                runners[contender] = CompiledStep(cfg, tc, "O0")
            elif contender == "eager":
                runners[contender] = EagerStep(cfg, tc)
            elif contender == "torch":
                try:
                    import torch
                except ImportError:
                    log("torch is not installed: PyTorch column skipped")
                    continue
                if torch_threads:
                    torch.set_num_threads(torch_threads)
                runners[contender] = TorchStep(cfg, tc)
        for runner in runners.values():
            for _ in range(warmup):
                runner()
        if "eager" in runners:
            runners["eager"].measure_peak()
        flops = runners["compiled"].flops if "compiled" in runners else 0.0
        res = {c: Result(f"gpt-{name}-train", c, tokens=tokens, flops=flops,
                         compile_seconds=r.compile_seconds, peak_bytes=r.peak_bytes)
               for c, r in runners.items()}
        for _ in range(steps):
            for c, runner in runners.items():
                start = time.perf_counter()
                runner()
                res[c].times.append(time.perf_counter() - start)
        results.extend(res.values())
    return results


def table(results, gemm_gflops) -> str:
    lines = [f"numpy float32 GEMM on this machine: {gemm_gflops:.0f} GFLOP/s", "",
             f"{'workload':<18} {'contender':<9} {'ms/step':>9} {'±iqr':>6} {'tok/s':>8} "
             f"{'vs eager':>8} {'vs torch':>8} {'%GEMM':>6} {'peak MB':>8} {'compile s':>9}"]
    by = {}
    for r in results:
        by.setdefault(r.workload, {})[r.contender] = r
    for workload, rs in by.items():
        eager, torch = rs.get("eager"), rs.get("torch")
        for c, r in rs.items():
            vs_eager = f"{eager.median_ms / r.median_ms:.2f}x" if eager else ""
            vs_torch = f"{torch.median_ms / r.median_ms:.2f}x" if torch else ""
            share = r.flops / (r.median_ms / 1e3) / 1e9 / gemm_gflops if r.flops else 0
            peak = f"{r.peak_bytes / 2**20:.1f}" if r.peak_bytes else ""
            comp = f"{r.compile_seconds:.2f}" if r.compile_seconds else ""
            lines.append(f"{workload:<18} {c:<9} {r.median_ms:>9.1f} {r.iqr_ms:>6.1f} "
                         f"{r.tokens / (r.median_ms / 1e3):>8.0f} {vs_eager:>8} {vs_torch:>8} "
                         f"{share:>6.0%} {peak:>8} {comp:>9}")
    return "\n".join(lines)


def to_json(results, gemm_gflops) -> dict:
    return {
        "matmul_gflops": gemm_gflops,
        "results": [{
            "workload": r.workload, "contender": r.contender, "median_ms": r.median_ms,
            "iqr_ms": r.iqr_ms, "tokens_per_s": r.tokens / (r.median_ms / 1e3),
            "flops_per_step": r.flops, "peak_bytes": r.peak_bytes,
            "compile_seconds": r.compile_seconds, "times_s": r.times,
        } for r in results],
    }


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="graphc GPT training-step benchmark")
    p.add_argument("--configs", default="tiny,small")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args(argv)
    gemm = matmul_gflops()
    results = run_gpt_steps(args.configs.split(","), steps=args.steps)
    print(table(results, gemm))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(to_json(results, gemm), fh, indent=1)
