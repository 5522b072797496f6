"""Session 37's fixes of the optimisers and the Trainer's gradient accumulation; each test
failed before its fix."""
import numpy as np
import pytest

import graphc as gc


def _task_loss(p, batch):
    # a multi-task loss: the batch's width picks the head, "c" is shared by both
    x, = batch
    head = p["a"] if x.shape[1] == 3 else p["b"]
    return gc.mean((x @ head) ** 2) + gc.sum(p["c"] ** 2) * float(x.shape[1])


def test_accumulation_keeps_gradients_of_earlier_micro_batches():
    """With gradient_accumulation_steps=2, a parameter reached only by the first micro-batch
    ("a") had its summed gradient thrown away (only the last micro-batch's "no gradient"
    set counted), was not updated and fell behind. Now a parameter is left alone only if no
    micro-batch reached it: "a" (first micro-batch only), "b" (second only) and "c" (both)
    are all updated by the mean gradient, as one batch of both would update them."""
    rng = np.random.default_rng(0)
    A, B = (rng.normal(size=(4, 3)),), (rng.normal(size=(4, 5)),)
    p0 = {"a": np.ones(3), "b": np.ones(5), "c": np.full(2, 0.5)}
    t = gc.Trainer(_task_loss, dict(p0), gc.optim.SGD(lr=0.1), [A, B], steps=1,
                   gradient_accumulation_steps=2)
    t.train_step()
    ga = gc.grad(lambda p: _task_loss(p, A) / 2)(p0)
    gb = gc.grad(lambda p: _task_loss(p, B) / 2)(p0)
    np.testing.assert_allclose(t.params["a"], 1 - 0.1 * np.asarray(ga["a"]), rtol=1e-6)
    np.testing.assert_allclose(t.params["b"], 1 - 0.1 * np.asarray(gb["b"]), rtol=1e-6)
    np.testing.assert_allclose(t.params["c"], 0.5 - 0.1 * (np.asarray(ga["c"])
                                                            + np.asarray(gb["c"])), rtol=1e-6)
    assert not np.allclose(t.params["a"], 1.0)
    assert t.behind == {"a": 0, "b": 0, "c": 0}
    # a parameter no micro-batch reaches is still left alone (and falls behind)
    p1 = dict(p0, d=np.ones(2))
    t = gc.Trainer(_task_loss, p1, gc.optim.SGD(lr=0.1), [A, B], steps=1,
                   gradient_accumulation_steps=2)
    t.train_step()
    np.testing.assert_array_equal(t.params["d"], np.ones(2))
    assert t.behind == {"a": 0, "b": 0, "c": 0, "d": 1}
