"""The regression set-up tests/test_plateau.py's Trainer tests and tests/test_plateau_cut_runs.py
share: a linear model's data, its mean squared loss and a noisy validation batch source, whose
loss stalls and rises while training goes on, so a ReduceLROnPlateau's decision turns on each
value it is given."""
import numpy as np

import graphc as gc

X = np.random.default_rng(0).normal(size=(16, 3))
Y = X @ np.array([1.0, -2.0, 0.5]) + 0.3


def loss(params, batch):
    x, y = batch
    return gc.mean((x @ params["w"] + params["b"] - y) ** 2)


def val_batches(rng):
    return X + rng.normal(0, 2.0, X.shape), Y
