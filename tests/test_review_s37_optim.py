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


def test_python_number_leaves_are_0d_arrays_and_a_list_gradient_is_refused():
    """A Python-float parameter or gradient leaf crashed update() with AttributeError
    ('float' object has no attribute 'dtype'), and a list gradient leaf with clip_norm
    crashed in global_norm. Now Python numbers are 0-d float64 leaves, as numpy scalars
    already were (and as optax takes them), eager and traced; a gradient leaf that is
    neither an array nor a number is refused in one GraphcError naming the parameter."""
    opt = gc.optim.Adam(lr=0.1)
    params, state = opt.update({"a": 1.0}, opt.init({"a": 2.0}), {"a": 2.0})
    scalar_params, scalar_state = opt.update({"a": np.float64(1.0)},
                                             opt.init({"a": np.float64(2.0)}),
                                             {"a": np.float64(2.0)})
    assert params["a"].dtype == np.float64 and params["a"].shape == ()
    np.testing.assert_allclose(params["a"], 1.9, rtol=1e-7)  # Adam's first step: ~lr * sign
    np.testing.assert_array_equal(params["a"], scalar_params["a"])
    np.testing.assert_array_equal(state["m"]["a"], scalar_state["m"]["a"])
    # a number gradient beside an array one, clipped together: 3-4-5 scaled to norm 1
    clipping = gc.optim.SGD(lr=1.0, clip_norm=1.0)
    params, _ = clipping.update({"a": 3.0, "b": np.array([4.0])},
                                clipping.init({"a": 0.0, "b": np.zeros(1)}),
                                {"a": 0.0, "b": np.zeros(1)})
    np.testing.assert_allclose(params["a"], -0.6, rtol=1e-5)
    np.testing.assert_allclose(params["b"], [-0.8], rtol=1e-5)
    # traced, a number gradient is a constant of the plan
    traced = gc.compile(lambda p: opt.update({"a": 1.0}, opt.init(p), p)[0])
    np.testing.assert_allclose(traced({"a": np.float64(2.0)})["a"], 1.9, rtol=1e-7)
    clipped = gc.optim.Adam(lr=0.1, clip_norm=1.0)
    for optimizer in (clipped, gc.optim.SGD(lr=0.1)):
        with pytest.raises(gc.GraphcError, match=r"the gradient of parameter 'a' is a list, "
                                                 r"not an array or a number"):
            optimizer.update({"a": [1.0, 1.0]}, optimizer.init({"a": np.ones(2)}),
                             {"a": np.ones(2)})


def test_a_python_float_gradient_takes_its_parameters_float_dtype():
    """Python-number leaves made 0-d float64 arrays, so a float32 parameter's gradient 1.0
    failed eagerly ("sub(f32[], f64[]): operands must have one dtype"), where it updated in
    float32 before and compiled; a Python float gradient is weakly typed again: its
    parameter's float dtype."""
    for opt in (gc.optim.SGD(lr=0.1), gc.optim.Adam(lr=0.1)):
        for p in (np.array(2.0, np.float32), np.float32(2.0), np.float16(2.0)):
            new = opt.update({"a": 1.0}, opt.init({"a": p}), {"a": p})[0]["a"]
            assert np.asarray(new).dtype == p.dtype
            assert float(new) == pytest.approx(1.9, rel=1e-3)
    new = gc.optim.SGD(lr=0.1).update({"a": 1.0}, {"count": np.array(0)}, {"a": 2.0})[0]["a"]
    assert np.asarray(new).dtype == np.float64 and float(new) == pytest.approx(1.9)
