"""One rank of the MPI tests (tests/test_mpi.py starts it under mpiexec).

    python tests/mpi_worker.py CASE[,CASE...] OUT_DIR

grads:    a float64 MLP and the tiny GPT, gradients of this rank's shard averaged by the
          data_parallel pass; each rank saves its results to OUT_DIR/CASE_rankR.npz
kill:     rank 1 kills itself (SIGKILL) at step 3; rank 0's watchdog must stop the job
hang:     rank 1 sleeps at step 3 outside any collective; the watchdog must name it
deadlock: at step 3 rank 1 waits in another collective than rank 0; the watchdog must stop both
mismatch: the ranks disagree on their model config; handshake must refuse
trainer:  gc.Trainer(distributed=True) on a float64 MLP: 10 AdamW steps into OUT_DIR/fresh,
          5 steps into OUT_DIR/half, and OUT_DIR/resumed (5 steps on 1 rank) resumed to 10
resume_apart: after trainer, rank 0 resumes OUT_DIR/fresh and rank 1 OUT_DIR/half; every
          rank must refuse it with one line naming both
accumulate: the same MLP with gradient_accumulation_steps=4: 3 steps; saves the parameters
          and the MPI all-reduces each step made
sigterm1: a SIGTERM reaches rank 1 alone during step 3 of fit(); every rank must stop at the
          same step boundary (rank 0 saving OUT_DIR/sigterm) and print `stopped N at step S`
nan1:     rank 1's rows of step 3's batch hold NaN: its loss alone is not finite; every
          rank must stop together with one divergence error, the checkpoint of step 2 kept
inf1:     the same with finite rows whose loss overflows on rank 1 (an Inf made by an op)
dropout:  one SGD step of a loss through Dropout(0.5) on rows of ones, a row per rank;
          saves the weights, whose entries say how many ranks kept each unit
half:     one SGD step of a float16 and a bfloat16 parameter on rows that differ per rank;
          saves the parameters (the averaged gradient's step, as float32's)
bug1:     rank 1 alone raises an exception no one catches during step 3 of fit(); the job must
          end at once (graphc.distributed's excepthook), not when the watchdog times out
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import graphc as gc
import graphc.distributed as dist
from passes.autodiff import grad_graph
from passes.manager import optimize
from runtime.codegen import compile_graph

GLOBAL_BATCH = 8


def mlp_loss(x, y, w1, b1, w2, b2):
    h = gc.tanh(x @ w1 + b1)
    return gc.mean((h @ w2 + b2 - y) ** 2)


def mlp_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH, 5))
    y = rng.normal(size=(GLOBAL_BATCH, 3))
    params = [rng.normal(size=(5, 16)), rng.normal(size=16), rng.normal(size=(16, 3)),
              rng.normal(size=3)]
    return x, y, params


def mlp_grad_graph(batch):
    specs = [gc.spec((batch, 5), "float64"), gc.spec((batch, 3), "float64"),
             gc.spec((5, 16), "float64"), gc.spec(16, "float64"), gc.spec((16, 3), "float64"),
             gc.spec(3, "float64")]
    graph = gc.trace(mlp_loss, *specs)
    return grad_graph(graph, wrt=["w1", "b1", "w2", "b2"])


def gpt_model(batch):
    from graphc.models.gpt import GPT, GPTConfig
    cfg = GPTConfig.named("tiny", dtype="float64", batch_size=batch, n_layer=1)
    return GPT(cfg, seed=0)


def gpt_params(model):
    return {n: p.data for n, p in model.named_parameters()}


def gpt_inputs():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 65, (GLOBAL_BATCH, 32))
    return idx, np.roll(idx, -1, axis=1)


def case_grads(out):
    from graphc.train import build_eval_loss
    rows = dist.shard(GLOBAL_BATCH)
    x, y, params = mlp_inputs()
    graph = optimize(mlp_grad_graph(GLOBAL_BATCH // dist.size()), "default,data_parallel")
    plan = compile_graph(graph)
    mlp = plan(x[rows], y[rows], *params)
    model = gpt_model(GLOBAL_BATCH // dist.size())
    graph = optimize(build_eval_loss(model, with_grads=True), "default,data_parallel")
    plan_gpt = compile_graph(graph)
    idx, targets = gpt_inputs()
    gpt = plan_gpt(idx[rows], targets[rows], **gpt_params(model))
    np.savez(os.path.join(out, f"grads_rank{dist.rank()}.npz"),
             **{f"mlp{k}": v for k, v in enumerate(mlp)},
             **{f"gpt{k}": v for k, v in enumerate(gpt)},
             source=plan_gpt.source)


def steps(n, fail_at, fail):
    step_fn = gc.compile(lambda a: dist.allreduce(a * 2.0))
    value = np.ones(4)
    for step in range(n):
        dist.beat(step)
        if step == fail_at and dist.rank() == 1:
            fail()
        value = step_fn(value) / 2.0
        time.sleep(0.05)


def case_kill(out):
    steps(100, 3, lambda: os.kill(os.getpid(), signal.SIGKILL))


def case_hang(out):
    steps(100, 3, lambda: time.sleep(120))


def case_deadlock(out):
    """At step 3 rank 1 waits in a receive that no rank sends (a collective of its own, as a
    rank whose program took another path), rank 0 in the step's all-reduce: both wait."""
    from runtime.collectives import in_collective

    def another_collective():
        with in_collective:
            dist._STATE["comm"].recv(source=0, tag=77)
    steps(100, 3, another_collective)


def case_mismatch(out):
    with dist.exit_on_error():
        dist.handshake(config={"n_layer": 4 if dist.rank() == 0 else 2, "n_head": 4})
    print("handshake passed", flush=True)


def trainer_data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(64, 5)), rng.normal(size=(64, 3))


def make_trainer(steps, distributed, dtype="float64", gradient_accumulation_steps=1):
    """An MLP (float64 unless dtype says) trained by gc.Trainer with AdamW and clipping,
    batches of GLOBAL_BATCH rows drawn by the trainer's generator."""
    x, y, params = mlp_inputs()
    params = [p.astype(dtype) for p in params]
    data_x, data_y = (a.astype(dtype) for a in trainer_data())

    def loss(p, batch):
        return mlp_loss(batch[0], batch[1], p["w1"], p["b1"], p["w2"], p["b2"])

    def batches(rng):
        rows = rng.integers(0, len(data_x), GLOBAL_BATCH)
        return data_x[rows], data_y[rows]

    named = dict(zip(["w1", "b1", "w2", "b2"], params))
    return gc.Trainer(loss, named, gc.optim.AdamW(lr=1e-2, weight_decay=0.1), batches,
                      steps=steps, eval_batches=batches, eval_every=5, eval_iters=2,
                      clip_norm=1.0, distributed=distributed,
                      gradient_accumulation_steps=gradient_accumulation_steps)


def case_trainer(out):
    make_trainer(10, True).fit(os.path.join(out, "fresh"), progress=False)
    make_trainer(10, True, "float32").fit(os.path.join(out, "fresh32"), progress=False)
    make_trainer(5, True).fit(os.path.join(out, "half"), progress=False)
    resumed = make_trainer(10, True)
    resumed.resume(os.path.join(out, "resumed", "checkpoint.npz"))
    resumed.fit(os.path.join(out, "resumed"), progress=False)


def case_resume_apart(out):
    """After case_trainer: rank 0 resumes OUT/fresh (step 10), rank 1 OUT/half (step 5), as
    ranks whose --out are on machines of their own may; saves what resume raised."""
    trainer = make_trainer(10, True)
    path = os.path.join(out, "fresh" if dist.rank() == 0 else "half", "checkpoint.npz")
    try:
        trainer.resume(path)
        line, agreed = "", False
    except gc.GraphcError as exc:
        line, agreed = exc.message, getattr(exc, "on_every_rank", False)
    np.savez(os.path.join(out, f"resume_apart_rank{dist.rank()}.npz"), line=line,
             agreed=agreed)


def case_accumulate(out):
    """make_trainer's MLP with gradient_accumulation_steps=4 (micro-batches of GLOBAL_BATCH
    rows, each rank's half of each): 3 steps. Saves the parameters, the MPI all-reduces
    (blocking or bucketed) each step made, and those of each plan's graph."""
    from runtime.collectives import MPICommunicator
    calls = []
    for method in ("allreduce_sum", "start_sum"):
        def counted(self, array, _original=getattr(MPICommunicator, method)):
            calls.append(method)
            return _original(self, array)
        setattr(MPICommunicator, method, counted)
    trainer = make_trainer(3, True, gradient_accumulation_steps=4)
    per_step = []
    for _ in range(3):
        before = len(calls)
        trainer.train_step()
        per_step.append(len(calls) - before)
    def collectives(plan):  # its MPI calls: blocking all-reduces and buckets started
        return sum(n.op in ("allreduce", "allreduce_start") for n in plan.graph.nodes)
    np.savez(os.path.join(out, f"accumulate_rank{dist.rank()}.npz"), per_step=per_step,
             micro_batch_collectives=collectives(trainer.step_plan),
             update_collectives=collectives(trainer.update_plan),
             **{f"param/{n}": a for n, a in trainer.params.items()})


def case_batchnorm(out):
    """A BatchNorm1d model trained on two ranks: each rank normalises its own rows, and after
    each step every rank holds rank 0's running statistics (as DDP's broadcast_buffers).
    Saves each rank's buffers after one step and the step's global batch."""
    data_x, data_y = trainer_data()
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.BatchNorm1d(5, dtype="float64"),
                             gc.nn.Linear(5, 3, dtype="float64"))

    def batches(rng):
        rows = rng.integers(0, len(data_x), GLOBAL_BATCH)
        return data_x[rows], data_y[rows]

    def loss(p, batch):
        return gc.mean((model.apply(p, batch[0]) - batch[1]) ** 2)

    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.1), batches, steps=2,
                         distributed=True)
    first = trainer.train_batches.peek(trainer.rng)
    trainer.train_step()
    np.savez(os.path.join(out, f"batchnorm_rank{dist.rank()}.npz"), x=first[0],
             **{name: b.data for name, b in trainer.buffers.items()})


def case_dropout(out):
    drop = gc.nn.Dropout(0.5)
    size, width = dist.size(), 1000

    def loss(p, batch):
        return gc.sum(drop(batch[0]) * p["w"])
    trainer = gc.Trainer(loss, {"w": np.zeros((1, width))}, gc.optim.SGD(lr=1.0),
                         lambda rng: (np.ones((size, width)),), steps=1, distributed=True)
    trainer.train_step()
    np.save(os.path.join(out, f"dropout_rank{dist.rank()}.npy"), trainer.params["w"])


def case_half(out):
    saved = {}
    for dtype in ("float16", "bfloat16"):
        rows = np.array([[1.0], [1.0], [3.0], [3.0]], dtype)  # rank 0: the 1s; rank 1: the 3s

        def loss(p, batch):
            return gc.mean(batch[0] * p["w"])  # the whole batch's: 2 w, gradient 2
        trainer = gc.Trainer(loss, {"w": np.ones((1, 1), dtype)}, gc.optim.SGD(lr=1.0),
                             lambda rng: (rows,), steps=1, distributed=True)
        saved[f"loss_{dtype}"] = trainer.train_step()
        saved[dtype] = trainer.params["w"].astype(np.float32)
    np.savez(os.path.join(out, f"half_rank{dist.rank()}.npz"), **saved)


def case_buffers_at_start(out):
    """Rank 1's model holds other running statistics when the Trainer is built (loaded
    on rank 0 alone, say): saves each rank's buffers and validation loss before any step."""
    data_x, data_y = trainer_data()
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.BatchNorm1d(5, dtype="float64"),
                             gc.nn.Linear(5, 3, dtype="float64"))
    if dist.rank() == 1:
        model[0].running_mean.data[...] = 3.0
        model[0].running_var.data[...] = 7.0

    def loss(p, batch):
        return gc.mean((model.apply(p, batch[0]) - batch[1]) ** 2)

    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.1),
                         [(data_x, data_y)], steps=2, eval_batches=[(data_x, data_y)],
                         eval_iters=1, distributed=True)
    np.savez(os.path.join(out, f"buffers_at_start_rank{dist.rank()}.npz"),
             val=trainer.evaluate(), **{name: b.data for name, b in trainer.buffers.items()})


def case_sigterm1(out):
    trainer = make_trainer(10, True)
    draw, fired = trainer.train_batches.function, []

    def batches(rng):  # the signal arrives while rank 1 draws step 3's batch
        if dist.rank() == 1 and trainer.step == 3 and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return draw(rng)
    trainer.train_batches.function = batches
    stopped = trainer.fit(os.path.join(out, "sigterm"), progress=False)
    print(f"rank {dist.rank()} stopped {int(stopped)} at step {trainer.step}", flush=True)


def case_bug1(out):
    trainer = make_trainer(10, True)
    draw = trainer.train_batches.function

    def batches(rng):  # a bug in rank 1 alone, while it draws step 3's batch
        if dist.rank() == 1 and trainer.step == 3:
            raise RuntimeError("a bug in rank 1")
        return draw(rng)
    trainer.train_batches.function = batches
    trainer.fit(os.path.join(out, "bug"), progress=False)


def _one_rank_diverges(out, name, spoil):
    """fit() with `spoil(x, y)` applied to rank 1's rows of step 3's batch, each time it is
    drawn (the re-run with finite checks draws it again); the error reported as graphc.cli
    reports it: once, by rank 0, when every rank raised it."""
    trainer = make_trainer(10, True)
    trainer.eval_every = 2  # a checkpoint of step 2 to keep
    draw = trainer.train_batches.function

    def batches(rng):
        x, y = (a.copy() for a in draw(rng))
        if trainer.step == 2 and dist.rank() == 1:
            rows = dist.shard(len(x))
            x[rows], y[rows] = spoil(x[rows], y[rows])
        return x, y
    trainer.train_batches.function = batches
    try:
        trainer.fit(os.path.join(out, name), progress=False)
    except gc.GraphcError as exc:
        agreed = getattr(exc, "on_every_rank", False)
        if dist.is_main() or not agreed:
            print(f"graphc: error: {exc.message}", flush=True)
        print(f"{name}: rank {dist.rank()} stopped at step {trainer.step}, on every rank: "
              f"{agreed}", flush=True)
        if not agreed:
            dist.leave_now(2)


def case_nan1(out):
    _one_rank_diverges(out, "nan1", lambda x, y: (np.full_like(x, np.nan), y))


def case_inf1(out):  # finite targets whose squared error overflows: Inf made by `pow`
    _one_rank_diverges(out, "inf1", lambda x, y: (x, np.full_like(y, 1e200)))


if __name__ == "__main__":
    case, out = sys.argv[1], sys.argv[2]
    dist.init(timeout=float(os.environ.get("TEST_WATCHDOG_TIMEOUT", "20")))
    for name in case.split(","):  # several cases in one job save its start-up
        globals()[f"case_{name}"](out)
