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


def keyed_linear_trainer(keys, first, second, data, steps):
    """A Linear(3, 2) trained by gc.Trainer on params keyed by `keys` (its weight's, its
    bias's: text or numbers), its weight in Groups' group `first`, its bias in `second`:
    (the layer, the trainer), for runs keyed by text and by numbers to be compared."""
    lin = gc.nn.Linear(3, 2, dtype="float64", rng=np.random.default_rng(1))
    names = list(lin.params())

    def linear_loss(p, b):
        own = {n: p[k] for n, k in zip(names, keys)}
        return gc.mean((lin.apply(own, b[0]) - b[1]) ** 2)
    groups = gc.optim.Groups((first, str(keys[0])), (second, str(keys[1])))
    return lin, gc.Trainer(linear_loss, dict(zip(keys, lin.params().values())), groups, data,
                           steps=steps)
