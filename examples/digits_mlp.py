"""An MLP classifies scikit-learn's bundled 8x8 handwritten digits (1,797 images, no
download), trained with Adam through one compiled step; the same model is also trained
eagerly (loss.backward(), opt.step()) for a few epochs to compare the time per epoch.

    pip install scikit-learn          # or: pip install -e '.[examples]'
    python examples/digits_mlp.py [--epochs 20] [--eager-epochs 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphc as gc


def load_digits(seed: int = 0, test_fraction: float = 0.2, images: bool = False):
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], a seeded random split;
    rows of 64 pixels, or with `images` (N, 1, 8, 8) images, one channel as NCHW."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise ImportError(f"{exc}: the digits come with scikit-learn (pip install "
                          "scikit-learn, or pip install -e '.[examples]')") from None
    digits = sklearn_digits()
    x = (digits.images[:, None] if images else digits.data) / 16.0
    x = x.astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def make_model():
    return gc.nn.Sequential(gc.nn.Linear(64, 128), gc.nn.ReLU(), gc.nn.Linear(128, 10))


def batches(n: int, batch_size: int, rng):
    """Shuffled full batches (the remainder is dropped; it is in other epochs' batches): one
    batch shape, one compiled plan."""
    if batch_size > n:  # (no batch: nothing would train)
        raise ValueError(f"a batch of {batch_size} is more than the {n} training images")
    order = rng.permutation(n)
    for k in range(n // batch_size):
        yield order[k * batch_size:(k + 1) * batch_size]


def accuracy(model, x, y) -> float:
    """Test accuracy with the model in eval() (BatchNorm uses its running statistics), then
    back in training mode."""
    model.eval()
    try:
        return float(np.mean(np.argmax(model(gc.tensor(x)).data, -1) == y))
    finally:
        model.train()


def train_compiled(model, data, epochs, batch_size, lr, seed, log=print):
    x_train, y_train, x_test, y_test = data
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
        for idx in batches(len(x_train), batch_size, rng):
            loss, params, state = step(params, state, x_train[idx], y_train[idx])
        times.append(time.perf_counter() - start)
        # the parameters only: the compiled step wrote a BatchNorm's running statistics
        # into the model's Buffers itself (digits_cnn.py --batch-norm)
        model.load_state_dict(params, strict=False)
        log(f"epoch {epoch + 1:2d} loss {float(loss):.4f} test accuracy "
            f"{accuracy(model, x_test, y_test) * 100:.1f}% ({times[-1] * 1e3:.0f} ms)")
    return times


def train_eager(model, data, epochs, batch_size, lr, seed):
    x_train, y_train = data[0], data[1]
    opt = gc.optim.Adam(lr=lr).bind(model)
    rng, times = np.random.default_rng(seed), []
    for _ in range(epochs):
        start = time.perf_counter()
        for idx in batches(len(x_train), batch_size, rng):
            loss = gc.cross_entropy(model(gc.tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times


def main(epochs=20, eager_epochs=2, batch_size=32, lr=1e-3, seed=0, log=print) -> dict:
    data = load_digits(seed)
    gc.nn.manual_seed(seed)
    model = make_model()
    initial = model.state_dict()
    compiled_times = train_compiled(model, data, epochs, batch_size, lr, seed, log)
    test_accuracy = accuracy(model, data[2], data[3])
    result = {"test_accuracy": test_accuracy,
              # the first epoch includes tracing and compiling the step: one epoch alone
              # has no compiled epoch's time to give (nor to compare the eager one with)
              "compiled_epoch_s": float(np.median(compiled_times[1:])) if epochs > 1 else None,
              "first_epoch_s": compiled_times[0]}
    if eager_epochs:
        eager_model = make_model()
        eager_model.load_state_dict(initial)
        eager_times = train_eager(eager_model, data, eager_epochs, batch_size, lr, seed)
        result["eager_epoch_s"] = float(np.median(eager_times))
        result["eager_test_accuracy"] = accuracy(eager_model, data[2], data[3])
    log(f"test accuracy {test_accuracy * 100:.1f}% after {epochs} epochs")
    compiled = (f"compiled {result['compiled_epoch_s'] * 1e3:.1f} ms (first, with "
                f"compilation, {result['first_epoch_s'] * 1e3:.0f} ms)" if epochs > 1 else
                f"compiled: the one epoch, with compilation, {result['first_epoch_s'] * 1e3:.0f}"
                " ms (--epochs 2 or more times one without)")
    eager = (f", eager {result['eager_epoch_s'] * 1e3:.1f} ms" if eager_epochs else "") + (
        f" ({result['eager_epoch_s'] / result['compiled_epoch_s']:.1f}x)"
        if eager_epochs and epochs > 1 else "")
    log(f"time per epoch: {compiled}{eager}")
    return result


def parsed(parser):
    """parser.parse_args(), the counts checked: one out of range is refused as argparse
    refuses a word for a number (the usage line, one error line, exit status 2), not met
    later by a traceback (no epoch: no loss; a batch of 0)."""
    args = parser.parse_args()
    for option, low in (("epochs", 1), ("eager_epochs", 0), ("batch_size", 1), ("seed", 0)):
        value = getattr(args, option, low)  # (digits_cnn.py has no --eager-epochs)
        if value < low:
            parser.error(f"argument --{option.replace('_', '-')}: expected a whole number "
                         f">= {low}, got {value}")
    return args


def refusing(main, *args):
    """main(*args), a setting refused on the way (a negative --lr, a batch larger than the
    training set) or scikit-learn missing reported in one line, exit status 2, instead of
    a traceback."""
    try:
        return main(*args)
    except (gc.GraphcError, ValueError, ImportError) as exc:
        message = exc.message if isinstance(exc, gc.GraphcError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eager-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parsed(parser)
    refusing(main, args.epochs, args.eager_epochs, args.batch_size, args.lr, args.seed)
