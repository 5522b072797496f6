"""A small convolutional network (gc.nn.Conv2d, MaxPool2d, Flatten: PyTorch's layers and
layout) classifies scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download),
trained with Adam through one compiled step. With --batch-norm each convolution is followed
by a BatchNorm2d, whose running statistics the compiled step writes after each call and the
test accuracy (in eval()) uses.

    pip install scikit-learn          # or: pip install -e '.[examples]'
    python examples/digits_cnn.py [--epochs 10] [--seed 0] [--batch-norm]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import graphc as gc

sys.path.insert(0, str(Path(__file__).resolve().parent))  # digits_mlp.py beside this file
from digits_mlp import accuracy, load_digits, parsed, refusing, train_compiled  # noqa: E402


def make_model(batch_norm=False):
    nn = gc.nn

    def norm(channels):
        return [nn.BatchNorm2d(channels)] if batch_norm else []

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), *norm(16), nn.ReLU(), nn.MaxPool2d(2),   # (N, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1), *norm(32), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 2, 2)
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def main(epochs=10, batch_size=32, lr=3e-3, seed=0, batch_norm=False, log=print) -> dict:
    data = load_digits(seed, images=True)
    gc.nn.manual_seed(seed)
    model = make_model(batch_norm)
    times = train_compiled(model, data, epochs, batch_size, lr, seed, log)
    test_accuracy = accuracy(model, data[2], data[3])
    log(f"test accuracy {test_accuracy * 100:.1f}% after {epochs} epochs")
    return {"test_accuracy": test_accuracy, "epoch_s": times}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-norm", action="store_true",
                        help="a BatchNorm2d after each convolution")
    args = parsed(parser)
    refusing(main, args.epochs, args.batch_size, args.lr, args.seed, args.batch_norm)
