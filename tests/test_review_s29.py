"""Session 29's review findings, each against its oracle."""

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim

torch = pytest.importorskip("torch")


class _WithUnusedHead(nn.Module):
    def __init__(self):
        self.used = nn.Linear(3, 2, rng=np.random.default_rng(0))
        self.unused = nn.Linear(3, 2, rng=np.random.default_rng(1))

    def forward(self, x):
        return self.used(x)


@pytest.mark.parametrize("make", ids=["adamw", "sgd"], argvalues=[
    lambda: (optim.AdamW(lr=0.1, weight_decay=0.5), lambda p: torch.optim.AdamW(
        p, lr=0.1, weight_decay=0.5)),
    lambda: (optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.5), lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=0.9, weight_decay=0.5)),
])
def test_trainer_leaves_a_parameter_the_loss_never_uses_as_torch_does(make):
    # torch's optimisers skip a parameter whose .grad is None: no weight decay, no moments.
    # The Trainer decayed it (its gradient was zeros), shrinking unused.weight by lr * wd a step
    model = _WithUnusedHead()
    start = {k: np.array(v) for k, v in model.params().items()}

    def loss(params, batch, key, training):
        (x,) = batch
        return (model.apply(params, x) ** 2).mean()

    ours, theirs = make()
    rng = np.random.default_rng(3)
    batches = [(rng.normal(size=(8, 3)).astype(np.float32),) for _ in range(5)]
    trainer = gc.Trainer(loss, model.params(), ours, batches, steps=5)
    for _ in range(5):
        trainer.train_step()

    reference = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                 for k, v in start.items()}
    opt = theirs(list(reference.values()))
    for (x,) in batches:
        opt.zero_grad()
        out = torch.tensor(x, dtype=torch.float64) @ reference["used.weight"] \
            + reference["used.bias"]
        (out ** 2).mean().backward()
        opt.step()
    for name in ("unused.weight", "unused.bias"):
        np.testing.assert_array_equal(trainer.params[name], start[name])
        np.testing.assert_array_equal(reference[name].detach().numpy(), start[name])
    for name in ("used.weight", "used.bias"):
        np.testing.assert_allclose(trainer.params[name], reference[name].detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_the_cli_shows_graphcs_warnings_as_one_line(tmp_path):
    # Python's form named the launcher's file and line and printed its source line,
    # `sys.exit(main())`, after the kernel cache's warning
    import os
    import subprocess
    import sys
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)  # writable by others: refused, with a warning
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache))
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from graphc.cli import main; sys.exit(main())",
         "train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
         "--block-size", "8", "--batch-size", "4", "--eval-iters", "1", "--no-progress",
         "--sample-tokens", "0", "--steps", "1", "--data", str(text), "--out",
         str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"graphc: warning: the kernel cache directory {cache} is "
                               "writable by group and others (mode 777"), lines
