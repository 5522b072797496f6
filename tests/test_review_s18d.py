"""Session 18d review: training checked the way a PyTorch / optax / DDP user would, for wrong
numbers and lost work (resume, checkpoints, optimizers against torch, data parallelism).

- gc.Trainer(distributed=True) whose ranks initialise their parameters differently (an
  unseeded or rank-dependent init) must train one model, rank 0's, as DDP does by
  broadcasting the module's parameters when it is built; before the fix every rank applied
  the same averaged updates to its own weights, and rank 0's checkpoint held only rank 0's.
- precision="fp16-mixed": a step skipped on an overflow advanced the optimiser's count, so
  Adam's bias corrections counted updates never made (torch's GradScaler does not call
  optimizer.step(); optax's apply_if_finite keeps the inner state) and the first updates after
  skips were too small. The count now counts updates, the schedule follows the step (LambdaLR
  stepping every iteration), and a checkpoint records the skips so that a resume is exact.
- opt.bind(parameters) (PyTorch style) used one global count for Adam's bias corrections and
  SGD's first momentum buffer; torch keeps a step per parameter, so a parameter that first
  got a gradient later (frozen, then thawed) took updates too small (0.058 off in 4 steps).
- graphc.train.Trainer.resume (the GPT trainer's own, inherited from gc.Trainer) checked only
  parameter shapes: a checkpoint of another n_head, or of a vocabulary of the same size, was
  loaded and trained on silently (`graphc train --resume` checked the header; the API not).
- gc.Trainer on a one-pass iterator (a generator), resumed on a fresh one, skipped one batch
  too many: the batch drawn at start-up to compile the step was thrown away by seek().
"""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

ROOT = Path(__file__).resolve().parent.parent


# ---- data parallelism: the same initial parameters on every rank ----------------------------
INIT_WORKER = textwrap.dedent('''
    import os, sys
    import numpy as np
    import graphc.distributed as dist
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    dist.init(timeout=60)
    from case import make
    trainer = make(seed=100 + dist.rank())      # each rank draws its own initial weights
    trainer.fit(None, progress=False)
    np.save(os.path.join(sys.argv[1], f"w{dist.rank()}.npy"), trainer.params["w"])
''')

INIT_CASE = textwrap.dedent('''
    import numpy as np
    import graphc as gc

    X = np.random.default_rng(0).normal(size=(16, 3))
    Y = np.random.default_rng(1).normal(size=(16, 2))

    def make(seed, distributed=True):
        params = {"w": np.random.default_rng(seed).normal(size=(3, 2))}

        def loss(p, batch):
            return gc.mean((gc.matmul(batch[0], p["w"]) - batch[1]) ** 2)

        def batches(rng):
            rows = rng.integers(0, 16, 4)
            return X[rows], Y[rows]
        return gc.Trainer(loss, params, gc.optim.SGD(lr=0.1, momentum=0.9), batches, steps=3,
                          distributed=distributed)
''')


def _mpiexec(script, args, timeout=240):
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    from launch import rank_env, run_in_group
    code, output, _ = run_in_group(dist.launch_command(2, [str(script), *map(str, args)]),
                                   rank_env(), timeout, merge_output=True)
    assert code == 0, output
    return output


def test_data_parallel_ranks_train_rank_0s_initial_parameters(tmp_path):
    (tmp_path / "worker.py").write_text(INIT_WORKER)
    (tmp_path / "case.py").write_text(INIT_CASE)
    _mpiexec(tmp_path / "worker.py", [tmp_path])
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    np.testing.assert_array_equal(w0, w1)  # one model, not one per rank
    # and it is rank 0's init trained on the whole batch by one process
    sys.path.insert(0, str(tmp_path))
    try:
        from case import make
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("case", None)
    single = make(seed=100, distributed=False)
    single.fit(None, progress=False)
    np.testing.assert_allclose(w0, single.params["w"], rtol=0, atol=1e-12)


# ---- fp16-mixed: a step skipped on overflow is not an Adam update --------------------------
C = np.full((3,), 4.0, np.float32)  # the gradient of sum(w * C): 4 everywhere
W0 = np.array([0.5, -1.0, 2.0], np.float32)


def _fp16_trainer(lr, steps):
    from graphc import amp, optim

    def loss(p, batch):
        return gc.sum(p["w"] * batch[0])
    # at 2**127 and 2**126 the scaled gradient 4 * scale overflows float32: steps 0 and 1 are
    # skipped, the scale halving to 2**125, where it fits
    return gc.Trainer(loss, {"w": W0}, optim.Adam(lr=lr), lambda rng: (C,), steps=steps,
                      eval_every=3, precision="fp16-mixed",
                      loss_scaler=amp.LossScaler(init_scale=2.0 ** 127))


def _torch_adam(lr_lambda, iterations, skipped):
    """torch: Adam + LambdaLR with GradScaler's loop: optimizer.step() is not called on a
    skipped iteration, scheduler.step() is called on every one."""
    import torch
    w = torch.tensor(W0.copy(), requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    for i in range(iterations):
        if i not in skipped:
            w.grad = torch.tensor(C)
            opt.step()
        sched.step()
    return w.detach().numpy()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fp16_skipped_steps_do_not_advance_adams_bias_correction_and_the_lr_follows_the_step():
    """Two overflowed steps then two updates: torch's first update moves each weight by lr
    (bias-corrected m / sqrt(v) = 1); counting the skipped steps in the bias correction moved
    it by 0.64 lr. The schedule is evaluated at the step (LambdaLR stepping every iteration)."""
    from graphc import optim
    trainer = _fp16_trainer(0.1, 4)
    for _ in range(4):
        trainer.train_step()
    assert trainer.skipped_steps == 2 and int(trainer.state["count"]) == 2
    np.testing.assert_allclose(trainer.params["w"], _torch_adam(lambda i: 0.1, 4, {0, 1}),
                               rtol=0, atol=1e-6)
    schedule = optim.cosine(0.1, steps=6, warmup=3, min_lr=0.01)
    trainer = _fp16_trainer(schedule, 5)
    for _ in range(5):
        trainer.train_step()
    np.testing.assert_allclose(trainer.params["w"], _torch_adam(schedule, 5, {0, 1}),
                               rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fp16_run_with_skipped_steps_resumes_bit_exact(tmp_path):
    from graphc import optim
    schedule = optim.cosine(0.1, steps=6, warmup=3, min_lr=0.01)
    straight = _fp16_trainer(schedule, 6)
    straight.fit(None, progress=False)
    first = _fp16_trainer(schedule, 3)
    first.fit(str(tmp_path), progress=False)
    resumed = _fp16_trainer(schedule, 6)
    resumed.resume(str(tmp_path / "checkpoint.npz"))
    assert resumed.skipped_steps == 2 and int(resumed.state["count"]) == 1
    resumed.fit(str(tmp_path), progress=False)
    for key, value in straight.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], value, err_msg=key)
    assert int(resumed.state["count"]) == int(straight.state["count"]) == 4


# ---- PyTorch-style optimizers: a parameter's own step count --------------------------------
BOUND_CASES = {
    "Adam": (lambda: __import__("graphc").optim.Adam(lr=0.1),
             lambda ps: __import__("torch").optim.Adam(ps, lr=0.1)),
    "AdamW-mask-clip": (
        lambda: __import__("graphc").optim.AdamW(lr=0.05, weight_decay=0.3, clip_norm=0.5,
                                                 decay_mask={"0": True, "1": False,
                                                             "2": True}),
        None),
    "SGD-dampening": (lambda: __import__("graphc").optim.SGD(lr=0.1, momentum=0.9,
                                                             dampening=0.3),
                      lambda ps: __import__("torch").optim.SGD(ps, lr=0.1, momentum=0.9,
                                                               dampening=0.3)),
}


@pytest.mark.parametrize("case", sorted(BOUND_CASES))
def test_bound_optimizer_counts_each_parameters_own_updates_as_torch(case):
    """Parameter 1 gets no gradient for two steps and parameter 2 for one (frozen, then
    thawed): torch's Adam starts their bias corrections (SGD its momentum buffer) at their
    first gradient. A global count gave parameter 1 updates 0.058 off after 4 steps."""
    import torch
    rng = np.random.default_rng(0)
    init = [rng.normal(size=3), rng.normal(size=2), rng.normal(size=(2, 2))]
    grads = [[rng.normal(size=a.shape) for a in init] for _ in range(5)]
    present = [(0,), (0, 2), (0, 1, 2), (1, 2), (0, 1, 2)]
    mine, theirs = BOUND_CASES[case]
    ours = [gc.Parameter(a.copy()) for a in init]
    opt = mine().bind(ours)
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    if theirs is None:  # AdamW, decay on 0 and 2 only, clip_grad_norm_ over the present ones
        topt = torch.optim.AdamW([{"params": [ts[0], ts[2]], "weight_decay": 0.3},
                                  {"params": [ts[1]], "weight_decay": 0.0}], lr=0.05)
    else:
        topt = theirs(ts)
    for g, which in zip(grads, present):
        for i in range(3):
            ours[i].grad = g[i] if i in which else None
            ts[i].grad = torch.tensor(g[i]) if i in which else None
        if theirs is None:
            torch.nn.utils.clip_grad_norm_([ts[i] for i in which], 0.5)
        opt.step()
        topt.step()
    for i in range(3):
        np.testing.assert_allclose(ours[i].data, ts[i].detach().numpy(), rtol=0, atol=1e-12,
                                   err_msg=f"parameter {i}")
    assert int(opt.state["count"]) == 5


def test_bound_optimizer_schedule_follows_step_calls_not_a_parameters_count():
    """LambdaLR steps with the optimizer, not per parameter: a parameter thawed at step 2
    gets lr(2) with the bias correction of its first update."""
    import torch
    from graphc import optim
    a, b = gc.Parameter(np.array([1.0, -2.0])), gc.Parameter(np.array([0.5]))
    schedule = optim.linear_warmup(0.1, warmup=4)
    opt = optim.Adam(lr=schedule).bind([a, b])
    ta = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    topt = torch.optim.Adam([ta, tb], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(topt, schedule)
    for step in range(4):
        a.grad, ta.grad = np.array([0.3, -0.1]), torch.tensor([0.3, -0.1], dtype=torch.float64)
        b.grad = np.array([0.7]) if step >= 2 else None
        tb.grad = torch.tensor([0.7], dtype=torch.float64) if step >= 2 else None
        opt.step()
        topt.step()
        sched.step()
    np.testing.assert_allclose(a.data, ta.detach().numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=0, atol=1e-14)


# ---- the GPT trainer's own resume: another configuration with the same shapes --------------
def _gpt_trainer(n_head, text="to be or not"):
    from graphc.data import CharData
    from graphc.models.gpt import GPT, GPTConfig
    from graphc.train import TrainConfig, Trainer
    words = [w + " " for w in text.split()] + ["\n"]
    data = CharData.from_text("".join(np.random.default_rng(0).choice(words, 300)), 8)
    cfg = GPTConfig.named("tiny", n_layer=1, n_embd=16, n_head=n_head, block_size=8,
                          batch_size=4)
    cfg.vocab_size = len(data.vocab)
    return Trainer(GPT(cfg, seed=1), data, TrainConfig(steps=2, eval_every=2, eval_iters=1))


def test_gpt_trainer_resume_refuses_another_configuration_with_the_same_shapes(tmp_path):
    """n_head 2 and 4 at n_embd 16 have the same parameter shapes; so do two vocabularies of
    the same size. graphc.train.Trainer.resume loaded either silently."""
    from graphc import checkpoint
    _gpt_trainer(2).fit(str(tmp_path), progress=False)
    path = str(tmp_path / "checkpoint.npz")
    with pytest.raises(checkpoint.CheckpointError, match="n_head: checkpoint 2 vs requested 4"):
        _gpt_trainer(4).resume(path)
    other = _gpt_trainer(2, text="ta be ar nat")  # 'o' -> 'a': same size, another character
    assert len(other.data.vocab) == len(_gpt_trainer(2).data.vocab)
    with pytest.raises(checkpoint.CheckpointError, match="another vocabulary"):
        other.resume(path)
    same = _gpt_trainer(2)
    same.resume(path)
    assert same.step == 2


# ---- a one-pass iterator of batches, resumed ------------------------------------------------
def test_a_one_pass_iterator_resumes_on_the_next_batch_not_the_one_after(tmp_path):
    """Batch i is (i, i): 6 SGD steps take batches 0..5. A run stopped at step 3 and resumed
    on a fresh generator skipped one more (the batch the new trainer had drawn to compile
    its step): it trained on 4, 5, 6, ending at -0.8 instead of -0.5."""
    from graphc import optim

    def generator():
        for i in range(100):
            yield (np.full(2, float(i)),)

    def make(steps):
        return gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]), {"w": np.ones(2)},
                          optim.SGD(lr=0.1), generator(), steps=steps)
    straight = make(6)
    straight.fit(None, progress=False)
    make(3).fit(str(tmp_path), progress=False)
    resumed = make(6)
    resumed.resume(str(tmp_path / "checkpoint.npz"))
    resumed.fit(str(tmp_path), progress=False)
    np.testing.assert_allclose(straight.params["w"], [-0.5, -0.5], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    assert resumed.history == straight.history
