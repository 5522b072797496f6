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


def test_exponential_decay_growing_past_float_max_is_capped_by_end_value():
    """exponential_decay(1e-6, 1, 2.0, end_value=0.1) grows twofold a step up to its bound,
    but at a Python-int step past 1023 (2.0 ** 1024 is past float max) it raised
    OverflowError, stopping a bound optimiser's step() loop, while the traced schedule gave
    0.1. Now the overflow is inf and the bound applies, as traced; without end_value it is
    inf, as optax's."""
    sched = gc.optim.exponential_decay(1e-6, 1, 2.0, end_value=0.1)
    traced = gc.compile(lambda c: sched(c))
    assert sched(1100) == 0.1
    assert float(traced(np.asarray(1100, np.int64))) == 0.1
    p = gc.Parameter(np.ones(2))
    opt = gc.optim.SGD(lr=sched).bind([p])
    for _ in range(1100):
        p.grad = np.ones(2)
        opt.step()
    # 0.1 a step from step 17 on (1e-6 * 2 ** 17 > 0.1), the steps before sum below 0.2
    expected = 1.0 - sum(sched(k) for k in range(1100))
    np.testing.assert_allclose(p.data, [expected, expected], rtol=1e-12)
    unbounded = gc.optim.exponential_decay(1e-6, 1, 2.0)
    assert unbounded(1100) == np.inf
    with np.errstate(over="ignore"):
        assert float(gc.compile(lambda c: unbounded(c))(np.asarray(1100, np.int64))) == np.inf
