"""A small convolutional network (gc.nn.Conv2d, MaxPool2d, Flatten: PyTorch's layers and
layout) classifies scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download),
trained with Adam through one compiled step.

    pip install scikit-learn          # or: pip install -e '.[examples]'
    python examples/digits_cnn.py [--epochs 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import graphc as gc


def load_digits(seed: int = 0, test_fraction: float = 0.2):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) scaled to [0, 1], a seeded
    random split."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # one channel, as NCHW
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def make_model():
    nn = gc.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 2, 2)
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model(gc.tensor(x)).data, -1) == y))


def main(epochs=10, batch_size=32, lr=3e-3, seed=0, log=print) -> dict:
    x_train, y_train, x_test, y_test = load_digits(seed)
    gc.nn.manual_seed(seed)
    model = make_model()
    opt = gc.optim.Adam(lr=lr)
    params = model.params()
    state = opt.init(params)

    @gc.compile(donate_argnums=(0, 1))
    def step(params, state, x, y):
        loss, grads = gc.value_and_grad(
            lambda p: gc.cross_entropy(model.apply(p, x), y))(params)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    rng, times = np.random.default_rng(seed), []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x_train))
        # full batches only (the remainder is in other epochs' batches): one compiled plan
        for k in range(len(x_train) // batch_size):
            idx = order[k * batch_size:(k + 1) * batch_size]
            loss, params, state = step(params, state, x_train[idx], y_train[idx])
        times.append(time.perf_counter() - start)
        model.load_state_dict(params)
        log(f"epoch {epoch + 1:2d} loss {float(loss):.4f} test accuracy "
            f"{accuracy(model, x_test, y_test) * 100:.1f}% ({times[-1] * 1e3:.0f} ms)")
    test_accuracy = accuracy(model, x_test, y_test)
    log(f"test accuracy {test_accuracy * 100:.1f}% after {epochs} epochs")
    return {"test_accuracy": test_accuracy, "epoch_s": times}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.batch_size, args.lr, args.seed)
