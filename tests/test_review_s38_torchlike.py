"""Session 38's fixes of graphc's torch-like surface (gc.manual_seed, gc.cat, the Tensor
methods and the reductions' dim=/keepdim=); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s38_torchlike.py"


# ---- 1. gc.manual_seed ------------------------------------------------------------------------
def _seeded_run(seed):
    gc.manual_seed(seed)
    model = gc.nn.Sequential(gc.nn.Linear(6, 8), gc.nn.Dropout(0.5), gc.nn.Linear(8, 3),
                             gc.nn.Dropout(0.5))
    x = np.ones((4, 6), np.float32)
    first, second = np.asarray(model(x)), np.asarray(model(x))
    compiled = gc.compile(lambda v: model(v))
    return (model.state_dict()["0.weight"].copy(), first, second, np.asarray(compiled(x)))


def test_manual_seed_replays_parameters_and_eager_dropout_masks():
    """gc.manual_seed did not exist, and gc.nn.manual_seed(0) replayed a model's parameters
    but not its eager dropout masks (the eager sites' count, which salts each mask, went on
    from the first run). Now gc.manual_seed (torch.manual_seed's place) restarts both: the
    same code after the same seed gives the same parameters and masks, eagerly and
    compiled; another seed gives others, and a non-int seed is refused in one line."""
    first, again = _seeded_run(0), _seeded_run(0)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], first[2])  # each call still draws its own masks
    other = _seeded_run(1)
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])
    assert gc.manual_seed is gc.nn.manual_seed
    gc.manual_seed(-1)  # torch takes a negative seed: its 64-bit pattern
    for seed in (1.5, "0", None, True):
        assert_one_line_error(lambda: gc.manual_seed(seed), "manual_seed: seed must be an int",
                              HERE)
