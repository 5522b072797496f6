"""gc.eval_shape, as jax.eval_shape: the shapes and dtypes of a function's result, by tracing
it, without running it."""
import numpy as np

import graphc as gc


def _model_step(params, x, targets):
    h = gc.tanh(x @ params["w1"])
    logits = h @ params["w2"]
    loss = gc.cross_entropy(logits, targets)
    return {"loss": loss, "pred": gc.argmax(logits, axis=-1), "grads": None,
            "h": (h, gc.cast(h, "float16"))}


def test_eval_shape_matches_the_results_of_running_it():
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(5, 7)).astype(np.float32),
              "w2": rng.normal(size=(7, 3)).astype(np.float32)}
    x = rng.normal(size=(4, 5)).astype(np.float32)
    targets = np.array([0, 2, 1, 1])
    shapes = gc.eval_shape(_model_step, params, x, targets)
    ran = gc.compile(_model_step)(params, x, targets)
    assert gc.tree_leaves(shapes) and len(gc.tree_leaves(shapes)) == len(gc.tree_leaves(ran))
    assert shapes["grads"] is None
    for spec, value in zip(gc.tree_leaves(shapes), gc.tree_leaves(ran)):
        assert isinstance(spec, gc.Spec)
        assert spec.shape == np.shape(value) and spec.dtype == np.asarray(value).dtype


def test_eval_shape_of_a_result_too_large_to_hold_computes_nothing():
    layer = gc.nn.Linear(1000, 1000)
    # 4 TB of float32 if it ran
    got = gc.eval_shape(lambda x: gc.softmax(layer(x), axis=-1), gc.spec((10 ** 6, 1000)))
    assert got.shape == (10 ** 6, 1000) and got.dtype == np.float32
    # a Python float is weakly typed, as in jax.eval_shape
    assert gc.eval_shape(lambda x, s: x * s, np.ones(3, np.float32), 2.0).dtype == np.float32
