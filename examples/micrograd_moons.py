"""micrograd's demo, compiled: an MLP 2-16-16-1 learns two interleaved half-moons with an SVM
max-margin loss + L2 and plain SGD (learning rate 1.0 decaying linearly to 0.1), full batch.

    python examples/micrograd_moons.py [--steps 100] [--seed 0]

As in micrograd's demo.ipynb (100 points, noise 0.1, labels -1/+1, alpha 1e-4), but the whole
training step (forward, loss, gradient and SGD update) is one compiled graphc plan.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import graphc as gc


def make_moons(n: int = 100, noise: float = 0.1, seed: int = 0):
    """scikit-learn's make_moons in numpy: an upper half circle and a lower one, shifted."""
    rng = np.random.default_rng(seed)
    n_out, n_in = n // 2, n - n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    x += rng.normal(0.0, noise, x.shape)
    return x.astype(np.float32), (2 * y - 1).astype(np.float32)  # labels -1 / +1


def main(steps: int = 100, seed: int = 0, log_every: int = 10) -> dict:
    x, y = make_moons(seed=seed)
    gc.nn.manual_seed(seed)
    model = gc.nn.Sequential(gc.nn.Linear(2, 16), gc.nn.ReLU(), gc.nn.Linear(16, 16),
                             gc.nn.ReLU(), gc.nn.Linear(16, 1))
    lr = lambda count: 1.0 - 0.9 * gc.cast(count, "float64") / steps  # noqa: E731
    opt = gc.optim.SGD(lr=lr)
    params = model.params()
    state = opt.init(params)

    def loss_fn(params, x, y):
        scores = model.apply(params, x)[:, 0]
        data_loss = gc.mean(gc.relu(1.0 - y * scores))  # max-margin (hinge) loss
        reg_loss = 1e-4 * sum(gc.sum(p * p) for p in params.values())
        accuracy = gc.mean(gc.cast((y > 0) == (scores > 0), "float32"))
        return data_loss + reg_loss, accuracy

    @gc.compile(donate_argnums=(0, 1))
    def step(params, state, x, y):
        (loss, accuracy), grads = gc.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        params, state = opt.update(grads, state, params)
        return loss, accuracy, params, state

    for k in range(steps):
        loss, accuracy, params, state = step(params, state, x, y)
        if log_every and (k % log_every == 0 or k == steps - 1):
            print(f"step {k:3d} loss {float(loss):.4f}, accuracy {float(accuracy) * 100:.1f}%")
    model.load_state_dict(params)
    scores = model(gc.tensor(x)).data[:, 0]
    final = float(np.mean((scores > 0) == (y > 0)))
    print(f"training accuracy after {steps} steps: {final * 100:.1f}%")
    return {"accuracy": final, "loss": float(loss)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for option, low in (("steps", 1), ("seed", 0)):  # (no step: no loss to report)
        if getattr(args, option) < low:  # the usage and one error line, status 2, as argparse
            parser.error(f"argument --{option}: expected a whole number >= {low}, "
                         f"got {getattr(args, option)}")
    try:
        main(args.steps, args.seed)
    except gc.GraphcError as exc:  # the library's refusal (a seed past manual_seed's range)
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)
