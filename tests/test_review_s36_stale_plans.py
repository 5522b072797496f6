"""Session 36's fixes of compiled plans that went stale when a module changed; each test
failed before its fix."""
import numpy as np

import graphc as gc

G = gc.nn


class _WithCompiledBody(G.Module):
    def __init__(self):
        self.body = gc.compile(G.Linear(2, 2))  # a compiled child, as the README documents

    def forward(self, x):
        return self.body(x)


def _uncompiled(net, x):
    """What net's layer computes with its own Parameters, eagerly."""
    with gc.no_grad():
        return net.body.__wrapped__(gc.tensor(x)).data


def test_eager_apply_gives_a_compiled_child_the_params_and_leaves_its_plan_alone():
    """Eager model.apply(params, x) ran a compiled child's plan, which is bound to the
    layer's own Parameters: `params` were ignored once the plan existed, and a plan first
    built inside apply() stayed bound to apply's temporary values, so every later net(x)
    computed with them. Now the child computes with `params` inside apply, and net(x)
    after it with the layer's own Parameters, from the plan it had."""
    x = np.array([[1.0, -2.0]], np.float32)
    net = _WithCompiledBody()
    zeros = {k: np.zeros_like(v) for k, v in net.params().items()}
    ones = {k: np.ones_like(v) for k, v in net.params().items()}
    with gc.no_grad():
        np.testing.assert_allclose(np.asarray(net(x)), _uncompiled(net, x), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(net.apply(zeros, x)), [[0.0, 0.0]])
        np.testing.assert_array_equal(np.asarray(net.apply(ones, x)), [[0.0, 0.0]])  # 1-2+1
        np.testing.assert_allclose(np.asarray(net(x)), _uncompiled(net, x), rtol=1e-6)
    assert net.body.recompiles == []  # (its one plan, still right)

    fresh = _WithCompiledBody()  # no plan yet when apply runs
    with gc.no_grad():
        np.testing.assert_array_equal(np.asarray(fresh.apply(zeros, x)), [[0.0, 0.0]])
        np.testing.assert_allclose(np.asarray(fresh(x)), _uncompiled(fresh, x), rtol=1e-6)
    assert not np.allclose(_uncompiled(fresh, x), 0.0)
    # gradients reach the tensors given, eagerly, as with an uncompiled child
    w = gc.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    b = gc.tensor(np.zeros(2, np.float32), requires_grad=True)
    gc.sum(fresh.apply({"body.weight": w, "body.bias": b}, x)).backward()
    np.testing.assert_array_equal(w.grad, [[1.0, 1.0], [-2.0, -2.0]])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
