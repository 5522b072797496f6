"""Session 37's fixes of what users of the public API met first (messages for a JAX or torch
habit, Module dtype casts); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc


def test_grad_of_a_function_returning_a_tuple_names_it_and_has_aux():
    """gc.grad of a function returning (loss, metrics), JAX's habit without has_aux, said
    "the function must return a tensor computed from its inputs", as if the loss were not
    computed from w; grad and value_and_grad now name what came back and the way out."""
    w = np.ones(3)
    with pytest.raises(gc.GraphcError, match=r"grad: the function returned a tuple of 2; "
                       r"return one scalar, or pass has_aux=True"):
        gc.grad(lambda w: (gc.sum(w * w), gc.mean(w)))(w)
    with pytest.raises(gc.GraphcError, match=r"value_and_grad: the function returned a dict "
                       r"of 1"):
        gc.value_and_grad(lambda w: {"loss": gc.sum(w)})(w)
    with pytest.raises(gc.GraphcError, match=r"tensor computed from its inputs, got None"):
        gc.grad(lambda w: None)(w)
    # the pair with has_aux=True works, as JAX's
    g, aux = gc.grad(lambda w: (gc.sum(w * w), gc.mean(w)), has_aux=True)(w)
    np.testing.assert_allclose(g, [2.0, 2.0, 2.0])
    assert float(aux) == 1.0


def test_trainer_loss_returning_loss_and_metrics_is_refused_naming_the_tuple():
    """A Trainer loss returning (loss, {"acc": ...}) got grad's "the function must return a
    tensor computed from its inputs"; the Trainer now says its loss must return one number
    and what it returned."""
    model = gc.nn.Linear(4, 1)
    params = dict(model.named_parameters())
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)

    def loss(p, batch):
        out = model.apply(p, batch[0])
        return gc.mean((out - batch[1]) ** 2), {"acc": gc.mean(out)}
    with pytest.raises(gc.GraphcError, match=r"^Trainer: the loss must return one number, "
                       r"got a tuple of 2"):
        trainer = gc.Trainer(loss, params, gc.optim.SGD(0.1), lambda rng: (x, y), steps=1)
        trainer.fit(progress=False)
