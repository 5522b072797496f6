"""Review s20d: bugs found in session s20's changes."""
from dataclasses import asdict

import numpy as np
import pytest

import graphc as gc

from graphc.train import TrainConfig, lr_at, train_config
from ir.errors import GraphcError


def test_resuming_a_checkpoint_saved_with_a_decay_not_past_its_warmup():
    """--decay-steps <= --warmup is refused now, but a checkpoint an earlier graphc wrote with
    such a schedule (warmup 10, decay 5) must still resume with it (`--resume` alone
    continues bit for bit): it was refused, naming flags the user had not passed."""
    saved = asdict(TrainConfig(steps=20, warmup=10, decay_steps=5))
    tc = train_config("tiny", {"steps": None, "warmup": None, "decay_steps": None}, saved)
    assert (tc.warmup, tc.decay_steps) == (10, 5)
    # its schedule as it was: warmup to the peak, then min_lr
    assert lr_at(9, tc) == pytest.approx(tc.lr * 10 / 11) and lr_at(10, tc) == tc.min_lr
    # settings given now are checked, resuming too
    with pytest.raises(GraphcError, match="--decay-steps 5 must be greater than --warmup 10"):
        train_config("tiny", {"decay_steps": 5}, saved)
    assert train_config("tiny", {"warmup": 3}, saved).warmup == 3


@pytest.mark.parametrize("view", [lambda a: gc.reshape(a, (3,)),
                                  lambda a: gc.transpose(a[None])[:, 0],
                                  lambda a: gc.broadcast_to(a, (3,))])
def test_the_tape_keeps_a_copy_of_an_eager_view_of_a_callers_array(view):
    """The tape copied a caller's numpy operand, but not an eager view of one (gc.reshape
    of a numpy array shares its memory, as documented): refilling the array before
    backward() still changed the gradient (w.grad was [100, 100, 100])."""
    a = np.full(3, 2.0, np.float32)
    w = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    y = gc.sum(w * view(a))
    a[:] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0, 2.0])
