"""Benchmarks: the same GPT training step under graphc compiled (default pipeline and -O0),
graphc eager, and PyTorch eager when torch is importable: same weights, same batch.

Each contender runs in a process of its own; they take turns (a new order each round, a pause
between turns, one untimed step to re-warm, then a few timed steps back to back) so that
machine noise hits them alike; we report the median and the interquartile range of the step
times, measured in one run.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from .bench_generate import WORKLOADS as GEN_WORKLOADS
from .bench_ranks import rank_counts
from .distributed import check_process_count, end_with_parent
from .files import (cannot_create_in, check_writable, refuse_checkpoint, save_figure,
                    write_atomically)
from .models.gpt import GPT, GPTConfig
from .train import TrainConfig, Trainer, lr_at


@dataclass
class Result:
    workload: str
    contender: str
    times: list = field(default_factory=list)
    compile_seconds: float | None = None
    background_seconds: float | None = None  # compiling kernels after the plan could run
    peak_bytes: int | None = None
    tokens: int = 0
    flops: float | None = None  # of one step, every op's (None: not known, no graphc plan)
    matrix_flops: float | None = None  # its matrix products' alone (MATRIX_OPS)

    @property
    def median_ms(self):
        return float(np.median(self.times)) * 1e3

    @property
    def iqr_ms(self):
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1) * 1e3

    def gemm_share(self, gemm_gflops) -> float | None:
        """The step's matrix FLOPs at numpy's GEMM rate over its median time (the %GEMM
        column: the share of the floor); None where the FLOPs are not known."""
        if not self.matrix_flops:
            return None
        return self.matrix_flops / (self.median_ms / 1e3) / 1e9 / gemm_gflops


# the matrix products, whose FLOPs %GEMM rates at numpy's GEMM speed (the README's floor):
# every op's FLOPs (plan.flops()) also hold the elementwise ops', 2.5% of small's step and
# 5% of tiny's, which made the step look that much nearer the floor
MATRIX_OPS = ("matmul", "einsum")


class _Data:
    """A fixed random batch source standing in for CharData (the bench measures compute)."""

    def __init__(self, cfg, seed=0):
        rng = np.random.default_rng(seed)
        self.vocab = [chr(32 + i) for i in range(cfg.vocab_size)]
        self.x = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
        self.y = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))

    def batch(self, rng, split, batch_size, block_size):
        return self.x, self.y


def _wait_for_kernels(*plans) -> float:
    """Seconds until the background compiler (runtime.tiering) has every kernel of these
    plans: the bench times the plans' steady state."""
    start = time.perf_counter()
    for plan in plans:
        plan.wait_for_kernels()
    return time.perf_counter() - start


class CompiledStep:
    def __init__(self, cfg, tc, pipeline, jit=None):
        start = time.perf_counter()
        self.trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), tc, pipeline, jit=jit)
        self.compile_seconds = time.perf_counter() - start
        self.background_seconds = _wait_for_kernels(self.trainer.step_plan,
                                                    self.trainer.eval_plan)
        self.peak_bytes = self.trainer.step_plan.peak_intermediate_bytes
        self.flops = self.trainer.step_plan.flops()
        self.matrix_flops = self.trainer.step_plan.flops(MATRIX_OPS)

    def __call__(self):
        return self.trainer.train_step()


class EagerStep:
    """graphc eager mode: tape forward/backward, then graphc.optim's AdamW (the same
    definitions the compiled step traces) run eagerly on the Parameters."""

    def __init__(self, cfg, tc):
        from runtime.eager import Tensor

        from . import optim
        from .train import optimizer
        self.Tensor, self.optim = Tensor, optim
        self.model = GPT(cfg, seed=0)
        self.tc, self.cfg, self.data = tc, cfg, _Data(cfg)
        self.opt = optimizer(self.model, tc).bind(self.model)
        self.compile_seconds = None
        self.peak_bytes = None

    def __call__(self):
        self.opt.zero_grad()
        loss = self.model(self.Tensor(self.data.x), self.Tensor(self.data.y))
        loss.backward()
        if self.tc.grad_clip:  # 0: no clipping, as nanoGPT (TrainConfig)
            params = self.opt.parameters.values()
            clipped, _ = self.optim.clip_by_global_norm({n: p.grad for n, p in
                                                         self.opt.parameters.items()},
                                                        self.tc.grad_clip)
            for p, g in zip(params, clipped.values()):
                p.grad = g
        self.opt.step()
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
        if self.tc.grad_clip:  # 0: no clipping, as nanoGPT (TrainConfig)
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


def numpy_blas() -> dict:
    """Which BLAS numpy's GEMM runs, as threadpoolctl reports it: its library, version and
    the kernels picked for this CPU, and OPENBLAS_CORETYPE where set. The GEMM floor and
    every product graphc runs go through it; an OpenBLAS pinned to older kernels (Haswell's
    AVX2 on an AVX-512 CPU) halves both, while PyTorch's own BLAS is not pinned."""
    from runtime.gemm import blas_libraries
    infos = blas_libraries()
    info = infos[0] if infos else {}
    library = info.get("internal_api", "unknown")
    return {"library": library, "version": info.get("version"),
            "kernels": info.get("architecture"),
            "coretype": (os.environ.get("OPENBLAS_CORETYPE") or None
                         if library == "openblas" else None)}


def describe_blas(blas: dict) -> str:
    """One line: 'openblas 0.3.31, SkylakeX kernels', noting a pinned OPENBLAS_CORETYPE."""
    text = blas["library"] + (f" {blas['version']}" if blas["version"] else "")
    if blas["kernels"]:
        text += f", {blas['kernels']} kernels"
    if blas["coretype"]:
        text += f" (pinned by OPENBLAS_CORETYPE={blas['coretype']})"
    return text


BURST = 3  # steps timed back to back per turn
PAUSE_S = 0.25  # between turns, not counted: idle threads of the last contender stop spinning


class InferStep:
    """GPT forward pass (logits) for the batch: compiled, eager or PyTorch under no_grad."""

    def __init__(self, cfg, contender, pipeline="default"):
        from runtime.build import build_plan

        from .train import build_logits

        self.cfg, self.data = cfg, _Data(cfg)
        self.model = GPT(cfg, seed=0)
        self.contender = contender
        self.compile_seconds = self.peak_bytes = None
        self.flops = self.matrix_flops = None
        if contender in COMPILED:
            start = time.perf_counter()
            self.plan = build_plan(build_logits(self.model, cfg.batch_size), pipeline,
                                   jit=_jit(contender))
            self.compile_seconds = time.perf_counter() - start
            self.background_seconds = _wait_for_kernels(self.plan)
            self.peak_bytes = self.plan.peak_intermediate_bytes
            self.flops = self.plan.flops()
            self.matrix_flops = self.plan.flops(MATRIX_OPS)
            feed = {"idx": self.data.x, **{n: p.data for n, p in self.model.named_parameters()}}
            self.args = [feed[n.attrs["name"]] for n in self.plan.graph.inputs]
        elif contender == "torch":
            import torch

            from .torch_ref import torch_gpt
            self.torch, self.forward = torch, torch_gpt
            self.P = {n: torch.tensor(p.data) for n, p in self.model.named_parameters()}
            self.x = torch.tensor(self.data.x)

    def __call__(self):
        if self.contender in COMPILED:
            return self.plan(*self.args)
        if self.contender == "torch":
            with self.torch.no_grad():
                return self.forward(self.P, self.x, None, self.cfg)
        from runtime.eager import Tensor, no_grad
        with no_grad():
            return self.model(Tensor(self.data.x))


def _mlp_runner(contender):
    """A 2-layer MLP classifier's training step (SGD): compiled, eager or PyTorch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    w1 = (rng.standard_normal((512, 1024)) * 0.03).astype(np.float32)
    w2 = (rng.standard_normal((1024, 10)) * 0.03).astype(np.float32)
    import graphc as gc

    def loss(w1, w2, x, y):
        return gc.cross_entropy(gc.gelu(x @ w1) @ w2, y)

    if contender in COMPILED:
        def step_fn(w1, w2, x, y):
            value, (g1, g2) = gc.value_and_grad(loss, argnums=(0, 1))(w1, w2, x, y)
            return value, w1 - 0.1 * g1, w2 - 0.1 * g2
        start = time.perf_counter()
        from runtime.build import build_plan
        plan = build_plan(gc.trace(step_fn, w1, w2, x, y),
                          "default" if contender == "compiled" else "O0",
                          donate=["w1", "w2"], jit=_jit(contender))
        runner = lambda: plan(w1, w2, x, y)  # noqa: E731  (w1, w2 updated in place)
        runner.compile_seconds = time.perf_counter() - start
        runner.background_seconds = _wait_for_kernels(plan)
        runner.peak_bytes = plan.peak_intermediate_bytes
        runner.flops = plan.flops()
        runner.matrix_flops = plan.flops(MATRIX_OPS)
        return runner
    if contender == "eager":
        t1, t2 = gc.Parameter(w1), gc.Parameter(w2)

        def runner():
            t1.grad = t2.grad = None
            value = loss(t1, t2, gc.tensor(x), gc.tensor(y))
            value.backward()
            t1.data -= 0.1 * t1.grad
            t2.data -= 0.1 * t2.grad
            return value.item()
    else:
        import torch
        import torch.nn.functional as TF
        p1 = torch.tensor(w1, requires_grad=True)
        p2 = torch.tensor(w2, requires_grad=True)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def runner():
            p1.grad = p2.grad = None
            value = TF.cross_entropy(TF.gelu(tx @ p1, approximate="tanh") @ p2, ty)
            value.backward()
            with torch.no_grad():
                p1.sub_(0.1 * p1.grad)
                p2.sub_(0.1 * p2.grad)
            return value.item()
    runner.compile_seconds = runner.peak_bytes = None
    return runner


# "numpy": the default pipeline compiled without numba (numpy kernels only, no fusion)
COMPILED = ("compiled", "numpy", "O0")
# the compiled GPT training step in mixed precision (graphc/amp.py): gpt-*-train only
MIXED = ("bf16-mixed", "fp16-mixed")
CONTENDERS = COMPILED + ("eager", "torch") + MIXED


def _jit(contender):
    return False if contender == "numpy" else None


WORKLOADS = ("gpt-tiny-train", "gpt-small-train", "gpt-medium-train", "gpt-tiny-infer",
             "gpt-small-infer", "gpt-medium-infer", "mlp-train") + GEN_WORKLOADS


def _runs(workload, contender) -> bool:
    """Whether the contender has this workload: the mixed-precision ones only the GPT training
    steps, the gen- workloads only graphc.bench_generate's contenders."""
    if contender in MIXED:
        return workload.startswith("gpt-") and workload.endswith("-train")
    if workload in GEN_WORKLOADS:
        from .bench_generate import CONTENDERS as GEN_CONTENDERS
        return contender in GEN_CONTENDERS
    return True


def check_workloads_run(workloads, contenders, missing=None, unable=None) -> None:
    """Each workload has a contender that runs it, among `contenders` less those `missing`
    (name: why it cannot run here): one that none ran was left out of the table without a
    word (alone, an empty table and exit status 0, as with --contenders torch where torch is
    not installed; under --concurrent, a worker's traceback)."""
    missing, unable = missing or {}, unable or {}
    for w in workloads:
        def can(c):  # (`unable`: {(workload, contender): why}, the gen- ones without
            # transformers)
            return _runs(w, c) and c not in missing and (w, c) not in unable
        if not any(can(c) for c in contenders):
            whys = [f"{c} is not available: {why}" for c, why in missing.items()] + \
                [f"{c} cannot run it: {why}" for (x, c), why in unable.items() if x == w]
            here = " here (" + "; ".join(whys) + ")" if whys else ""
            able = [c for c in CONTENDERS if can(c)]
            raise ValueError(f"--workloads {w}: none of --contenders {', '.join(contenders)} "
                             f"runs it{here}; add one that does: {', '.join(able)}")


def _make(workload, contender):
    if contender == "torch":
        import torch
        torch.manual_seed(0)
    if not _runs(workload, contender):
        return None  # not this one
    if workload.startswith("gpt-"):
        _, config, kind = workload.split("-")
        cfg = GPTConfig.named(config)
        tokens = cfg.batch_size * cfg.block_size
        if contender in MIXED:
            tc = TrainConfig(steps=10_000, warmup=10, precision=contender)
            return CompiledStep(cfg, tc, "default"), tokens
        if kind == "infer":
            return InferStep(cfg, contender, "O0" if contender == "O0" else "default"), tokens
        tc = TrainConfig(steps=10_000, warmup=10)
        if contender in COMPILED:
            return CompiledStep(cfg, tc, "O0" if contender == "O0" else "default",
                                _jit(contender)), tokens
        return (EagerStep(cfg, tc) if contender == "eager" else TorchStep(cfg, tc)), tokens
    if workload == "mlp-train":
        return _mlp_runner(contender), 256
    if workload in GEN_WORKLOADS:  # only compiled and torch generate (None: not this one)
        from .bench_generate import make
        return make(workload, contender)
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")


def run(workloads=("gpt-tiny-train", "gpt-small-train"), steps=10, warmup=2,
        contenders=("compiled", "numpy", "O0", "eager", "torch"), log=print):
    """Interleaved measurements of every contender on every workload, each contender in a
    process of its own (as a user would run it).

    In one shared process the contenders changed each other's speed: graphc eager's step
    depends on the state of the C heap (its large temporaries are allocated and freed every
    op; measured for `small`: 28k page faults and 203 ms per step in a fresh process, 51k and
    241 ms after another contender had mapped 120 MB; for `tiny`, after tracemalloc had grown
    the heap, 36 ms instead of 57), and one contender's idle threads spun on the cores the
    next one needed.

    Returns the Results in a list whose `skipped` holds each contender that cannot run here,
    as {"contender", "workloads" (None: all), "why"} (--json's "skipped")."""
    workers, missing, unable, interrupted = {}, {}, {}, False
    skipped = []
    try:
        for contender in contenders:
            worker = _Worker(contender, workloads)
            if worker.missing:
                log(f"{contender} is not available here ({worker.missing}); column skipped")
                missing[contender] = worker.missing
                skipped.append(dict(contender=contender, workloads=None, why=worker.missing))
                worker.stop()
                continue
            if worker.unable:
                log(f"{contender} cannot run {', '.join(worker.unable)} here "
                    f"({next(iter(worker.unable.values()))}); left out of those rows")
                unable.update({(w, contender): why for w, why in worker.unable.items()})
                skipped.append(dict(contender=contender, workloads=list(worker.unable),
                                    why=next(iter(worker.unable.values()))))
            workers[contender] = worker
        check_workloads_run(workloads, contenders, missing, unable)
        results = Measured()
        results.skipped = skipped
        for w in workloads:
            try:
                results += _run_workload(w, {c: worker for c, worker in workers.items()
                                             if (w, c) not in unable}, steps, warmup)
            except WorkerFailed as exc:
                exc.results = results  # the workloads measured whole before
                raise
        return results
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for worker in workers.values():
            worker.stop(at_once=interrupted)


def _run_workload(workload, workers, steps, warmup):
    # built one after another, so that each compile time is measured on a quiet machine
    meta = {c: w.ask("make", workload) for c, w in workers.items()}
    workers = {c: w for c, w in workers.items() if meta[c] is not None}  # has this workload
    meta = {c: m for c, m in meta.items() if m is not None}
    for w in workers.values():
        w.ask("warmup", warmup)
    # every contender's step is rated by the FLOPs of the default pipeline's plan (-O0's may
    # hold more; the others have none): without compiled or numpy, %GEMM was 0% throughout
    counted = next((meta[c] for c in ("compiled", "numpy") if c in meta), {})
    res = {c: Result(workload, c, tokens=m["tokens"], flops=counted.get("flops"),
                     matrix_flops=counted.get("matrix_flops"),
                     compile_seconds=m["compile_seconds"],
                     background_seconds=m["background_seconds"], peak_bytes=m["peak_bytes"])
           for c, m in meta.items()}
    order = list(workers)
    shuffle = np.random.default_rng(0)
    for _ in range(-(-steps // BURST)):
        # A new order every round, and a pause between turns: a contender's idle threads
        # (OpenBLAS's after numpy's GEMMs, OpenMP's after PyTorch's ops or graphc's kernels)
        # spin for up to ~0.1 s and must not slow down whoever runs next. In its turn a
        # contender runs one untimed step that re-warms caches and sleeping threads
        # (measured for the compiled tiny step: median 32.5 ms first after a pause, worst
        # 61, vs 25.7 for the next ones), then BURST steps timed back to back, as steps run
        # in training.
        for k in shuffle.permutation(len(order)):
            c = order[k]
            time.sleep(PAUSE_S)
            res[c].times += workers[c].ask("turn", min(BURST, steps - len(res[c].times)))
    if "eager" in workers and res["eager"].peak_bytes is None:
        # tracemalloc reshapes the heap: measured after the timed steps
        res["eager"].peak_bytes = workers["eager"].ask("peak", None)
    return list(res.values())


class Measured(list):
    """run's Results, with `skipped`: the contenders that could not run here and why."""
    skipped: list = []


class WorkerFailed(RuntimeError):
    """A contender's process raised or ended (killed: the OOM killer, a stray `kill`) while
    it measured: its first line names the workload and the contender (`graphc bench` says it
    in one line, status 2), `detail` holds the worker's traceback where it raised, and
    `results` (set by run and run_shared) what was measured before."""

    def __init__(self, contender, workload, what, detail=None):
        self.contender, self.workload, self.what, self.detail = contender, workload, what, \
            detail
        self.results = []
        on = f"while it measured {workload}" if workload else "as it started"
        super().__init__(f"the bench's {contender} worker {what} {on}")


def _exit_text(code) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited (code {code})"


class _Worker:
    """A contender's process: builds a workload's runner, runs its turns, reports times."""

    def __init__(self, contender, workloads=()):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, contender, os.getpid(),
                                                        tuple(workloads)),
                                   daemon=True,
                                   name=f"graphc-bench-{contender}")
        # multiprocessing's resource tracker, which the first start launches, unblocks
        # SIGINT after launching: launched first, so that the block holds for this start
        from multiprocessing import resource_tracker
        resource_tracker.ensure_running()
        with _sigint_blocked():
            self.process.start()
        child.close()
        self.contender, self.workload = contender, None  # (the one it measures, if any)
        # why it cannot run here at all (torch not installed), and which of `workloads` it
        # cannot (the gen- ones without transformers): None, {workload: why}
        self.missing, self.unable = self._reply()

    def ask(self, command, argument):
        self.send(command, argument)
        return self._reply()

    def send(self, command, argument):
        """The command alone (a --concurrent round sends every copy its turn, then reads
        their replies)."""
        if command == "make":
            self.workload = argument
        try:
            self.conn.send((command, argument))
        except OSError:  # (its end of the pipe closed: it ended)
            self._ended()

    def _reply(self):
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            self._ended()
        if status == "error":
            # the exception's own line (the last of its traceback) in the one-line message
            last = value.strip().splitlines()[-1] if value.strip() else "an error"
            raise WorkerFailed(self.contender, self.workload, f"failed ({last})", value)
        return value

    def _ended(self):
        self.process.join(timeout=5)  # (its exit code is known once it is reaped)
        raise WorkerFailed(self.contender, self.workload,
                           _exit_text(self.process.exitcode)) from None

    def stop(self, at_once=False):
        """Ends the process: after its turn, or `at_once` (Ctrl-C: a --concurrent turn is
        all the steps, which the user has stopped waiting for)."""
        if at_once:
            self.process.kill()
        try:
            self.conn.send(("stop", None))
        except (OSError, EOFError):
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while it starts a process, which keeps the block
    (fork and exec keep a signal mask): a terminal's Ctrl-C goes to the whole process group,
    and every worker printed a KeyboardInterrupt's traceback (from its turn, or its start-up's
    imports) above the bench's own line; the bench ends its workers itself. A Ctrl-C meanwhile
    is delivered here when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # (not on Windows: nothing blocked)
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _unable(contender, workloads) -> dict:
    """{workload: why} for those of `workloads` this contender has but cannot run here:
    PyTorch's gen- workloads run transformers' GPT2LMHeadModel, which `graphc[torch]` does
    not install (a worker's traceback, and every column lost, until s54)."""
    if contender != "torch" or not any(w in GEN_WORKLOADS for w in workloads):
        return {}
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        return {w: f"transformers: {exc}" for w in workloads if w in GEN_WORKLOADS}
    return {}


def _serve(conn, contender, parent, workloads=()):
    import traceback
    # a bench ended by a signal (`timeout`, `kill`: SIGTERM, or SIGKILL) ran no cleanup,
    # and its workers ran the rest of their turn, up to all the steps of a --concurrent
    # round, on the cores the user wanted back (bench starts them from the thread that
    # asks them every step)
    end_with_parent(parent, signal.SIGKILL)
    try:
        if contender not in CONTENDERS:
            raise ValueError(f"unknown contender {contender!r}; choose from "
                             f"{', '.join(CONTENDERS)}")
        missing = None
        if contender == "torch":
            try:
                import torch  # noqa: F401
            except ImportError as exc:
                missing = f"torch: {exc}"
        conn.send(("ok", (missing, {} if missing else _unable(contender, workloads))))
        runner = None
        while True:
            try:
                command, argument = conn.recv()
            except (EOFError, OSError):  # the bench ended or gave up on this worker: quietly
                return
            if command == "stop":
                return
            if command == "make":
                runner = None  # the previous workload's memory goes first
                made = _make(argument, contender)
                if made is None:
                    conn.send(("ok", None))
                    continue
                runner, tokens = made
                value = dict(tokens=tokens, flops=getattr(runner, "flops", None),
                             matrix_flops=getattr(runner, "matrix_flops", None),
                             compile_seconds=getattr(runner, "compile_seconds", None),
                             background_seconds=getattr(runner, "background_seconds", None),
                             peak_bytes=getattr(runner, "peak_bytes", None))
            elif command == "warmup":
                for _ in range(argument):
                    runner()
                value = None
            elif command == "turn":
                runner()
                value = []
                for _ in range(argument):
                    start = time.perf_counter()
                    runner()
                    value.append(time.perf_counter() - start)
            elif command == "peak":
                measure = getattr(runner, "measure_peak", None)
                if measure is not None:
                    measure()
                value = getattr(runner, "peak_bytes", None)
            conn.send(("ok", value))
    except Exception:  # reported by the parent, with this process's traceback
        with contextlib.suppress(OSError):  # (the bench is gone: nobody to tell)
            conn.send(("error", traceback.format_exc()))


@dataclass
class SharedResult:
    """`copies` processes running the same workload at once, against one of them alone."""
    workload: str
    contender: str
    copies: int
    solo: list = field(default_factory=list)      # step times, one process running
    rounds: list = field(default_factory=list)    # per round: each process's mean step time

    @property
    def solo_ms(self):
        return float(np.median(self.solo)) * 1e3

    @property
    def factors(self):
        """Slow-down of each process in each round, as a multiple of the solo step (each
        process's mean step over the median of the solo steps), the rounds one after
        another in one list: round_factors keeps them apart."""
        return [f for round_ in self.round_factors for f in round_]

    @property
    def round_factors(self):
        """factors, one list per round (a factor per process)."""
        solo = float(np.median(self.solo))
        return [[t / solo for t in round_] for round_ in self.rounds]

    def to_json(self) -> dict:
        return dict(workload=self.workload, contender=self.contender, copies=self.copies,
                    solo_ms=self.solo_ms, factors=self.factors,
                    round_factors=self.round_factors,
                    round_means_ms=[[t * 1e3 for t in round_] for round_ in self.rounds],
                    solo_times_s=list(self.solo))


def run_shared(workloads=("gpt-tiny-train",), copies=2, steps=10, warmup=2, rounds=5,
               contenders=("compiled", "torch"), log=print):
    """Fair sharing of a machine: `copies` processes of each contender run `steps` steps at
    the same moment, `rounds` times (how their phases line up differs from round to round);
    each round also times one of them alone. Reports each process's slow-down; the fair
    share of a machine among N equal processes is N x (less when one process alone cannot
    use every core)."""
    results, interrupted = [], False
    for contender in contenders:
        workers = []
        try:
            for _ in range(copies):
                worker = _Worker(contender, workloads)
                workers.append(worker)
                if worker.missing:
                    break
            if workers[-1].missing:
                log(f"{contender} is not available here ({workers[-1].missing}); skipped")
                continue
            for workload in workloads:
                if not _runs(workload, contender):  # (its workers had no runner to turn)
                    continue
                if workload in workers[0].unable:
                    log(f"{contender} cannot run {workload} here "
                        f"({workers[0].unable[workload]}); skipped")
                    continue
                for w in workers:
                    w.ask("make", workload)
                for w in workers:
                    w.ask("warmup", warmup)
                res = SharedResult(workload, contender, copies)
                for k in range(rounds):
                    time.sleep(PAUSE_S)
                    res.solo += workers[k % copies].ask("turn", steps)
                    time.sleep(PAUSE_S)
                    for w in workers:
                        w.send("turn", steps)
                    res.rounds.append([float(np.mean(w._reply())) for w in workers])
                results.append(res)
        except WorkerFailed as exc:
            exc.results = results  # the workloads measured whole before
            raise
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            for w in workers:
                w.stop(at_once=interrupted)
    return results


def shared_table(results) -> str:
    rows = []
    for r in results:
        f = r.factors
        rows.append([r.workload, r.contender, str(r.copies), f"{r.solo_ms:.1f}",
                     f"{min(f):.2f}x / {float(np.median(f)):.2f}x / {max(f):.2f}x"])
    return "\n".join(aligned(["workload", "contender", "copies", "solo ms", "slow-down per "
                               "process, each round (min / median / max)"], rows, "llrrl",
                              (18, 9, 6, 8, 0)))


def aligned(header, rows, align, widths=()) -> list:
    """A table's lines: `header` and `rows` (lists of cells, strings), each column as wide as
    its widest cell (at least `widths`' entry), `align` a letter per column (l or r), one
    space between columns. (Fixed widths had let a wide cell push the
    rest of its row out of line: a gen- workload's name, 20 characters, in --concurrent's
    18, a 5-digit ±iqr, an 8-digit tok/s.)"""
    widths = [max([w] + [len(row[k]) for row in [header, *rows]])
              for k, w in enumerate(list(widths) + [0] * (len(header) - len(widths)))]

    def line(cells):
        # (a last column aligned left is not padded: --concurrent's rows ended in 34
        # spaces, under its long header, where the fixed-width table had none)
        last = len(cells) - 1
        return " ".join(c.rjust(w) if a == "r" else c if k == last else c.ljust(w)
                        for k, (c, w, a) in enumerate(zip(cells, widths, align)))
    return [line(header)] + [line(row) for row in rows]


def plot(results, path):
    from .files import new_figure

    by = {}
    for r in results:
        by.setdefault(r.workload, {})[r.contender] = r
    # the speed-ups are over graphc eager: a workload without its row (gen-) had bars of 0
    by = {w: rs for w, rs in by.items() if "eager" in rs}
    workloads = list(by)
    contenders = [c for c in CONTENDERS
                  if any(c in rs for rs in by.values())]
    fig = new_figure((max(6, 1.6 * len(workloads)), 4))
    ax = fig.subplots()
    width = 0.8 / max(len(contenders), 1)
    for k, c in enumerate(contenders):
        # no bar where the contender did not run the workload (bf16-mixed on mlp-train): a
        # bar of 0 read as 0x eager's speed
        ran = [i for i, w in enumerate(workloads) if c in by[w]]
        ratios = [by[workloads[i]]["eager"].median_ms / by[workloads[i]][c].median_ms
                  for i in ran]
        ax.bar([i + k * width for i in ran], ratios, width, label=c)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks([i + width * (len(contenders) - 1) / 2 for i in range(len(workloads))])
    ax.set_xticklabels(workloads, rotation=15)
    ax.set_ylabel("speed-up over graphc eager (higher is better)")
    ax.set_title("graphc bench: median step time ratios, measured in one run")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def table(results, gemm_gflops, measured=None, blas=None) -> str:
    """The results side by side; %GEMM is each step's matrix FLOPs at gemm_gflops over its
    time, blank where they are not known (`measured`: the GEMM rates taken before and after
    the steps, shown beside it; `blas`: numpy_blas(), named under it)."""
    rates = f" (the faster of {measured[0]:.0f} before and {measured[1]:.0f} after the steps)" \
        if measured else ""
    lines = [f"numpy float32 GEMM on this machine: {gemm_gflops:.0f} GFLOP/s{rates}"]
    if blas:
        lines.append(f"numpy's BLAS: {describe_blas(blas)}")
    rows = []
    by = {}
    for r in results:
        by.setdefault(r.workload, {})[r.contender] = r
    for workload, rs in by.items():
        eager, torch = rs.get("eager"), rs.get("torch")
        for c, r in rs.items():
            vs_eager = f"{eager.median_ms / r.median_ms:.2f}x" if eager else ""
            vs_torch = f"{torch.median_ms / r.median_ms:.2f}x" if torch else ""
            share = r.gemm_share(gemm_gflops)
            share = "" if share is None else f"{share:.0%}" + ("*" if share > 1 else "")
            peak = f"{r.peak_bytes / 2**20:.1f}" if r.peak_bytes else ""
            comp = f"{r.compile_seconds:.2f}" if r.compile_seconds else ""
            bg = f"{r.background_seconds:.2f}" if r.background_seconds is not None else ""
            rows.append([workload, c, f"{r.median_ms:.1f}", f"{r.iqr_ms:.1f}",
                         f"{r.tokens / (r.median_ms / 1e3):.0f}", vs_eager, vs_torch, share,
                         peak, comp, bg])
    lines += [""] + aligned(["workload", "contender", "ms/step", "±iqr", "tok/s", "vs eager",
                             "vs torch", "%GEMM", "peak MiB", "compile s", "+bg s"], rows,
                            "llrrrrrrrrr", (22, 10, 9, 6, 8, 8, 8, 6, 8, 9, 6))
    if floor_measured_low(results, gemm_gflops):
        lines += ["", f"* over 100% of the GEMM floor: the floor ({gemm_gflops:.0f} GFLOP/s) "
                  "was measured low, in a slow moment of this host; no step beats it"]
    return "\n".join(lines)


def floor_measured_low(results, gemm_gflops) -> bool:
    """Whether a row's %GEMM is over 100%: no step runs its matrix products faster than
    numpy's GEMM, so the floor was measured in a slow moment (both rates, before and after
    the steps), and the table and --json (`gemm_floor_measured_low`) say so."""
    return any((r.gemm_share(gemm_gflops) or 0) > 1 for r in results)


def to_json(results, gemm_gflops) -> dict:
    return {
        "matmul_gflops": gemm_gflops,
        "gemm_floor_measured_low": floor_measured_low(results, gemm_gflops),
        "results": [{
            "workload": r.workload, "contender": r.contender, "median_ms": r.median_ms,
            "iqr_ms": r.iqr_ms, "tokens_per_s": r.tokens / (r.median_ms / 1e3),
            "flops_per_step": r.flops, "matrix_flops_per_step": r.matrix_flops,
            "gemm_share": r.gemm_share(gemm_gflops), "peak_bytes": r.peak_bytes,
            "compile_seconds": r.compile_seconds,
            "background_compile_seconds": r.background_seconds, "times_s": r.times,
        } for r in results],
    }


def profile_step(config="small", repeat=5, top=20, jit=None, file=None, warm=False,
                 json_path=None) -> list:
    """Per-kernel times of one compiled GPT training step (`graphc profile`): a table by op,
    then the slowest kernels with their shapes and source lines (`top` of them; None: all).
    Profiling updates the parameters in place like training does. `warm` (`--warm`): each
    kernel that does not write over its operands is also timed again right after itself,
    and each op's line shows that warm time beside its time in the step. `json_path`
    (`--json`): the rows, as plan.profile returns them, written there with the run's
    settings."""
    from runtime.instrument import format_profile
    if json_path:  # found writable now, not after the profile
        check_output("--json", json_path)
    cfg = GPTConfig.named(config)
    trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), TrainConfig(steps=10_000, warmup=10),
                      jit=jit)
    trainer.step_plan.wait_for_kernels()  # profile the compiled kernels, not tier 0
    for _ in range(2):
        trainer.train_step()
    data = trainer.data
    rows = trainer.step_plan.profile(*trainer.step_inputs((data.x, data.y)), repeat=repeat,
                                     file=False, warm=warm)
    total = sum(r["ms"] for r in rows)
    by_op = {}
    for r in rows:
        ms, count, again, hot = by_op.get(r["op"], (0.0, 0, 0.0, 0.0))
        if r.get("warm_ms") is not None:  # (the time in the step of the kernels run again)
            again, hot = again + r["ms"], hot + r["warm_ms"]
        by_op[r["op"]] = (ms + r["ms"], count + 1, again, hot)
    # each op whole: cut to 48 characters, two fused ops of the optimiser's update (their
    # names differ after 'add, sqrt, div, add, ') showed as two rows of the same name
    width = max([48] + [len(op) for op in by_op])
    lines = [f"GPT {config} training step, {len(rows)} kernels, {total:.2f} ms "
             f"(mean of {repeat} profiled calls)",
             f"numpy's BLAS: {describe_blas(numpy_blas())}", "",
             f"{'op':<{width}} {'ms':>8} {'share':>6} {'kernels':>8}"
             + (f" {'warm/step':>10}" if warm else ""), "-" * (width + 25 + 11 * warm)]
    for op, (ms, count, again, hot) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        line = f"{op:<{width}} {ms:>8.2f} {ms / total:>6.1%} {count:>8}"
        if warm:  # warm time over in-step time, of the kernels that could run again
            line += f" {hot / again:>10.2f}" if again else ""
        lines.append(line)
    print("\n".join(lines) + "\n", file=file)
    print(format_profile(rows, total / 1e3, top), file=file)
    if json_path:
        write_atomically(json_path, json.dumps(
            {"config": config, "repeat": repeat, "warm": warm, "total_ms": total,
             "blas": numpy_blas(), "rows": rows}, indent=1))
    return rows


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="graphc bench", description="compiled vs -O0 vs eager "
                                "vs PyTorch, interleaved, in one run")
    add_arguments(p)
    return run_cli(p.parse_args(argv))


def add_arguments(p):
    # checked here: a bad count would otherwise be found after minutes of measuring
    from .cli import _non_negative_int, _path, _positive_int
    # the contenders' options default to None, their defaults applied in run_cli, so that
    # --ranks can tell one passed at its default value from one not passed
    p.add_argument("--workloads", help=f"comma-separated, from: {', '.join(WORKLOADS)} "
                   f"(default: {CONTENDERS_DEFAULTS['workloads']})")
    p.add_argument("--steps", type=_positive_int, default=10,
                   help="measured steps per contender (default: 10)")
    p.add_argument("--warmup", type=_non_negative_int, help="unmeasured steps each contender "
                   f"runs first (default: {CONTENDERS_DEFAULTS['warmup']})")
    p.add_argument("--contenders",
                   help="from: compiled, numpy (compiled without numba kernels), O0 (no "
                   "passes), eager, torch, bf16-mixed, fp16-mixed (the compiled training "
                   f"step in mixed precision) (default: {CONTENDERS_DEFAULTS['contenders']})")
    p.add_argument("--concurrent", type=_copies, metavar="N",
                   help="also run N copies of graphc compiled and N of torch (those of them "
                   "among --contenders; each contender when neither is) at once and report "
                   "each one's slow-down against running alone (fair sharing of the machine; "
                   f"default: {CONTENDERS_DEFAULTS['concurrent']}, off)")
    p.add_argument("--rounds", type=_positive_int, help="rounds of the --concurrent measurement "
                   f"(default: {CONTENDERS_DEFAULTS['rounds']})")
    p.add_argument("--beside-busy", action="store_true", default=None,
                   help="run everything beside a busy process (one core kept busy by a "
                   "Python loop), as on a shared machine")
    p.add_argument("--json", type=_path, help="write the measurements to this JSON file (with "
                   "--ranks too)")
    p.add_argument("--plot", type=_path, help="write a bar chart of the speed-ups over graphc "
                   "eager to this PNG (with eager among --contenders)")
    p.add_argument("--ranks", type=rank_counts,
                   help="instead: the data-parallel tiny GPT step on these rank counts (e.g. "
                   "1,2; MPI, graphc.bench_ranks): step time, all-reduce time, share of the "
                   "communication hidden; with --steps and --json, none of the contenders' "
                   "options")


def _copies(text):
    """--concurrent: 0 (off) or 2 or more copies (one copy is the solo run each is compared
    with)."""
    import argparse

    from .cli import _whole
    value = _whole(text)
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"expected 0 (off) or 2 or more copies, got {value}")
    return value


def _refuse_options_not_for_ranks(args) -> None:
    """An option of the contenders' measurement given with --ranks, in one line: it was
    dropped without a word (a --json never written, a --workloads never run), and so was
    one given at its default value."""
    for flag in NOT_FOR_RANKS:
        if getattr(args, flag[2:].replace("-", "_")) is not None:
            raise ValueError(f"{flag} is not for --ranks, which measures the data-parallel "
                             "tiny GPT step (it takes --steps and --json); leave it out or "
                             "run the two measurements apart")


def check_output(flag: str, path: str) -> None:
    """--json or --plot's file, found writable now, not after minutes of measurements that
    would then be lost."""
    check_writable(path, flag)  # first: "out.json/" has a writable folder, the cwd
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path}: there is no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path}: the directory {folder} is not writable")
    reason = cannot_create_in(folder)
    if reason:
        raise ValueError(f"{flag} {path}: cannot write into the directory {folder} "
                         f"({reason})")
    refuse_checkpoint(path, flag)


def _busy_process():
    """A process that keeps one core busy, as a user's other job would, until this process
    ends: `while True: pass` outlived a bench killed by a signal, spinning forever. It looks
    every few ms whether its parent is still this process (portable; the loop stays busy)."""
    import subprocess
    # a session of its own, out of reach of a terminal's Ctrl-C (the bench's to handle: the
    # loop printed a KeyboardInterrupt's traceback)
    return subprocess.Popen([sys.executable, "-c", "import os\n"
                             f"while os.getppid() == {os.getpid()}:\n"
                             "    for _ in range(100_000): pass"], start_new_session=True)


# options of the contenders' measurement, which `--ranks` (another measurement) does not take
NOT_FOR_RANKS = ("--workloads", "--contenders", "--warmup", "--concurrent", "--rounds",
                 "--beside-busy", "--plot")
# their values when not given (None as parsed: see add_arguments)
CONTENDERS_DEFAULTS = {"workloads": "gpt-tiny-train,gpt-small-train,gpt-tiny-infer,mlp-train",
                       "contenders": "compiled,numpy,O0,eager,torch", "warmup": 2,
                       "concurrent": 0, "rounds": 5, "beside_busy": False}


def run_cli(args) -> int:
    if args.ranks:
        from .bench_ranks import main as bench_ranks
        _refuse_options_not_for_ranks(args)
        return bench_ranks(["--ranks", args.ranks, "--steps", str(args.steps),
                            *(["--json", args.json] if args.json else [])])
    if args.rounds is not None and not args.concurrent:  # (it was ignored: the one
        # measurement it counts rounds of never ran)
        raise ValueError(f"--rounds {args.rounds} is for --concurrent: it counts the rounds "
                         "of that measurement, which runs only with --concurrent N")
    for name, default in CONTENDERS_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    for c in contenders:
        if c not in CONTENDERS:
            raise ValueError(f"unknown contender {c!r}; choose from {', '.join(CONTENDERS)}")
    for flag, chosen, names in (("--workloads", workloads, WORKLOADS),
                                ("--contenders", contenders, CONTENDERS)):
        if not chosen:  # an empty table and exit status 0
            raise ValueError(f"{flag} {getattr(args, flag[2:])!r} names none; choose from "
                             f"{', '.join(names)}")
        # a workload twice was measured twice (two rows of one name); a contender twice
        # started two workers, the first dropped from the table and left idle
        twice = next((name for k, name in enumerate(chosen) if name in chosen[:k]), None)
        if twice is not None:
            raise ValueError(f"{flag} {getattr(args, flag[2:])!r} names {twice} twice; give "
                             "each once")
    check_workloads_run(workloads, contenders)
    check_process_count("--concurrent", args.concurrent)
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            check_output(flag, path)
    if args.json and args.plot and os.path.abspath(args.json) == os.path.abspath(args.plot):
        raise ValueError(f"--json and --plot name one file, {args.json}: the plot would "
                         "replace the JSON")
    if args.plot:  # (every bar was 0 without eager's rows: the chart's speed-ups are over it)
        if "eager" not in contenders:
            raise ValueError(f"--plot {args.plot}: the chart shows each contender's speed-up "
                             "over graphc eager; add eager to --contenders, or leave --plot "
                             "out")
        if not any(_runs(w, "eager") for w in workloads):
            raise ValueError(f"--plot {args.plot}: the chart shows each contender's speed-up "
                             "over graphc eager, which runs none of the gen- workloads; "
                             "leave --plot out")
    concurrent_contenders = ([c for c in contenders if c in ("compiled", "torch")]
                             or list(contenders)) if args.concurrent else []
    left = [c for c in contenders if c not in concurrent_contenders]
    if args.concurrent and left:  # (they were left out without a word)
        print(f"--concurrent {args.concurrent} measures {' and '.join(concurrent_contenders)} "
              f"only, not {', '.join(left)}")
    busy = _busy_process() if args.beside_busy else None
    results, shared, failed, skipped, decode = [], [], None, [], None
    before = after = gemm = blas = None
    try:
        # the GEMM rate wanders minute to minute here (75-140 GFLOP/s between two runs of
        # one afternoon): measured before and after the steps, the floor uses the faster, so
        # a dip at the start cannot make a step look faster than the floor (103% measured)
        before = matmul_gflops()
        try:
            results = run(workloads, args.steps, args.warmup, contenders)
        except WorkerFailed as exc:  # what was measured is still printed and written
            results, failed, phase = exc.results, exc, "main"
        skipped = getattr(results, "skipped", [])
        after = matmul_gflops()
        gemm = max(before, after)
        blas = numpy_blas()
        if results:
            print(table(results, gemm, (before, after), blas))
        if results and any("-decode-" in r.workload for r in results):
            from .bench_generate import bandwidth_rows, bandwidth_table, memory_bandwidth
            bandwidth = memory_bandwidth()
            decode = dict(memory_bytes_per_s=bandwidth, rows=bandwidth_rows(results, bandwidth))
            print()
            print(bandwidth_table(results, bandwidth))
        if args.concurrent and failed is None:
            try:
                shared = run_shared(workloads, args.concurrent, args.steps, args.warmup,
                                    args.rounds, concurrent_contenders)
            except WorkerFailed as exc:
                shared, failed, phase = exc.results, exc, "concurrent"
            if shared:
                print()
                print(shared_table(shared))
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if args.json:
        report = to_json(results, gemm)
        report["matmul_gflops_before"], report["matmul_gflops_after"] = before, after
        report["blas"] = blas
        report["beside_busy"] = bool(args.beside_busy)
        # what a later reader needs to interpret the rows: the run's parameters
        report["run"] = dict(steps=args.steps, warmup=args.warmup, workloads=workloads,
                             contenders=list(contenders), skipped=skipped,
                             concurrent=args.concurrent,
                             concurrent_contenders=concurrent_contenders,
                             rounds=args.rounds if args.concurrent else None)
        report["concurrent"] = [r.to_json() for r in shared]
        report["decode_bandwidth"] = decode
        report["failed"] = None if failed is None else {
            "workload": failed.workload, "contender": failed.contender,
            "phase": phase,
            "error": str(failed).splitlines()[0], "traceback": failed.detail}
        write_atomically(args.json, json.dumps(report, indent=1))
    # (the checks above leave eager's rows missing only after a worker failed: that the
    # plot was skipped then was said nowhere, and the user looked for a file never written)
    plotted = bool(args.plot) and any(r.contender == "eager" for r in results)
    if plotted:
        plot(results, args.plot)
    if failed is not None:  # one line, status 2 (cli), once what was measured is kept
        raise ValueError(str(failed).splitlines()[0] + _kept(args, results or shared, plotted))
    return 0


def _kept(args, measured, plotted) -> str:
    """The end of a failed bench's line: the files that hold what was measured before, and
    a --plot that was not written (no workload measured with graphc eager, whose speed-ups
    it draws)."""
    files = [f for f, kept in ((args.json, args.json and measured), (args.plot, plotted))
             if kept]
    said = f"; what was measured before is in {' and '.join(files)}" if files else ""
    if args.plot and not plotted:
        said += (f"; --plot {args.plot} not written: no workload was measured with graphc "
                 "eager before the failure")
    return said
