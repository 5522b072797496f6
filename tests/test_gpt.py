"""The GPT against a PyTorch nanoGPT with the same weights, and training behaviour."""
import numpy as np
import pytest

from graphc.data import CharData
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import TrainConfig, Trainer, lr_at
from ir.graph import Graph
from ir.ops.registry import graph_param
from passes.autodiff import gradients
from passes.manager import optimize
from runtime.codegen import compile_graph

try:
    import torch

    from graphc.torch_ref import torch_gpt
except ImportError:  # torch is an optional test oracle
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the optional oracle extra, "
                                 "torch==2.13.0) is not installed")

SMALL = dict(vocab_size=11, n_layer=2, n_head=2, n_embd=16, block_size=8, batch_size=3)


def _batch(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    return x, y


def graphc_loss_and_grads(model, x, y):
    g = Graph("loss_grads")
    with g.building():
        idx = g.input("idx", x.shape, "int64")
        tgt = g.input("targets", y.shape, "int64")
        params = [graph_param(g, p) for _, p in model.named_parameters()]
        loss = model(idx, tgt)
        logits = model(idx)
        g.set_outputs([loss, logits] + gradients([loss], params))
    plan = compile_graph(optimize(g))
    feed = {"idx": x, "targets": y, **{n: p.data for n, p in model.named_parameters()}}
    outs = plan(*[feed[n.attrs["name"]] for n in plan.graph.inputs])
    names = [n for n, _ in model.named_parameters()]
    return outs[0], outs[1], dict(zip(names, outs[2:]))


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


@needs_torch
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-9), ("float32", 1e-4)])
def test_logits_loss_and_gradients_match_pytorch(dtype, tol):
    cfg = GPTConfig(**SMALL, dtype=dtype)
    model = GPT(cfg, seed=3)
    x, y = _batch(cfg)
    loss, logits, grads = graphc_loss_and_grads(model, x, y)
    P = {n: torch.tensor(p.data, requires_grad=True) for n, p in model.named_parameters()}
    t_logits, t_loss = torch_gpt(P, torch.tensor(x), torch.tensor(y), cfg)
    t_loss.backward()
    assert _rel(logits, t_logits.detach().numpy()) < tol
    assert abs(float(loss) - t_loss.item()) / t_loss.item() < tol
    for name, g in grads.items():
        assert _rel(g, P[name].grad.numpy()) < tol, name


@needs_torch
def test_three_adamw_steps_match_pytorch():
    cfg = GPTConfig(**SMALL, dtype="float64")
    tc = TrainConfig(steps=3, lr=1e-2, min_lr=1e-3, warmup=1, weight_decay=0.1, grad_clip=0.5)
    model = GPT(cfg, seed=4)
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.data.copy() for n, p in model.named_parameters()}

    class Batches:  # the batches of steps 0, 1, 2, whatever the trainer's RNG
        def __init__(self):
            self.step, self.vocab = 0, [str(i) for i in range(cfg.vocab_size)]

        def batch(self, rng, split, batch_size, block_size):
            if split != "train":
                return _batch(cfg)
            self.step += 1
            return _batch(cfg, seed=10 + self.step - 1)

    # the library's step: model.apply, value_and_grad, clipping and graphc.optim's AdamW
    batches = Batches()
    trainer = Trainer(model, batches, tc)
    batches.step = 0  # the trainer drew one batch to compile its step

    P = {n: torch.tensor(a.copy(), requires_grad=True) for n, a in params.items()}
    # nanoGPT's own rule (configure_optimizers), not derived from graphc's no_decay
    decay = [P[n] for n in names if P[n].dim() >= 2]
    no_decay = [P[n] for n in names if P[n].dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)
    for step in range(3):
        x, y = _batch(cfg, seed=10 + step)
        lr = lr_at(step, tc)
        outs = [trainer.train_step()]
        params = trainer.params

        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        _, t_loss = torch_gpt(P, torch.tensor(x), torch.tensor(y), cfg)
        t_loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), tc.grad_clip)
        opt.step()
        assert abs(float(outs[0]) - t_loss.item()) < 1e-9
    for n in names:
        np.testing.assert_allclose(params[n], P[n].detach().numpy(), rtol=1e-8, atol=1e-12)


def _tiny_data(block_size):
    words = ["the cat ", "sat on ", "a mat\n", "and he ", "had a hat\n"]
    text = "".join(np.random.default_rng(0).choice(words, 800))
    return CharData.from_text(text, block_size)


def test_training_lowers_the_loss_and_dropout_runs():
    data = _tiny_data(SMALL["block_size"])
    cfg = GPTConfig(**{**SMALL, "vocab_size": len(data.vocab), "batch_size": 8}, dropout=0.1)
    trainer = Trainer(GPT(cfg), data, TrainConfig(steps=50, lr=1e-2, warmup=5, eval_iters=4))
    start = trainer.evaluate()
    losses = [trainer.train_step() for _ in range(50)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert trainer.evaluate() < start
    assert "dropout_mask" in {n.op for n in trainer.step_plan.graph.nodes}


def test_eager_forward_matches_the_compiled_graph():
    cfg = GPTConfig(**SMALL, dtype="float64")
    model = GPT(cfg, seed=5)
    x, y = _batch(cfg)
    loss, logits, grads = graphc_loss_and_grads(model, x, y)
    import graphc as gc
    eager_loss = model(gc.tensor(x), gc.tensor(y))
    eager_loss.backward()
    assert abs(eager_loss.item() - float(loss)) < 1e-12
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-9, atol=1e-14)


def test_weight_tying_switch_and_no_decay_set():
    tied = GPT(GPTConfig(**SMALL))
    untied = GPT(GPTConfig(**SMALL, tie_weights=False))
    names = dict(untied.named_parameters())
    assert "lm_head.weight" in names and "lm_head.weight" not in dict(tied.named_parameters())
    assert not tied.no_decay("wte.weight") and not tied.no_decay("wpe.weight")  # as nanoGPT
    assert tied.no_decay("blocks.0.ln_1.weight")
    assert tied.no_decay("blocks.1.mlp.c_fc.bias") and tied.no_decay("ln_f.bias")
    assert not tied.no_decay("blocks.0.attn.c_attn.weight")
    proj = dict(tied.named_parameters())["blocks.0.attn.c_proj.weight"].data
    assert abs(proj.std() - 0.02 / np.sqrt(2 * SMALL["n_layer"])) < 0.003


def test_tiny_config_reaches_the_issue_target_in_300_steps():
    """The acceptance run of `graphc train --config tiny --steps 300`: val loss < 2.3 nats."""
    from graphc.train import TRAIN_DEFAULTS
    cfg = GPTConfig.named("tiny")
    data = CharData.from_file(None, cfg.block_size)
    cfg.vocab_size = len(data.vocab)
    tc = TrainConfig(**{**TRAIN_DEFAULTS["tiny"], "steps": 300, "eval_iters": 20})
    trainer = Trainer(GPT(cfg, seed=tc.seed), data, tc)
    start = trainer.evaluate()
    for _ in range(300):
        trainer.train_step()
    final = trainer.evaluate()
    assert start > 4.0 and final < 2.3, (start, final)
