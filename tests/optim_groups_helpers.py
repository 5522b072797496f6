"""The small two-layer regression the gc.optim.Groups tests train (a backbone and a head, so
that each can be a group of its own), shared by tests/test_optim_groups*.py."""
import numpy as np

import graphc as gc

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
P0 = {"backbone.w": rng.normal(size=(4, 5)) * 0.5, "backbone.b": np.zeros(5),
      "head.w": rng.normal(size=(5, 2)) * 0.5}


def loss(p, batch):
    x, y = batch
    h = gc.tanh(x @ p["backbone.w"] + p["backbone.b"])
    return gc.mean((h @ p["head.w"] - y) ** 2)
