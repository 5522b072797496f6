"""Session 36's fixes of compiled plans that went stale when a module changed; each test
failed before its fix."""
import numpy as np
import pytest

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


X = np.array([[1.0, -2.0]], np.float32)


def _eager(fn, *args):
    with gc.no_grad():
        return np.asarray(fn(*[gc.tensor(a) if isinstance(a, np.ndarray) else a
                               for a in args]).data)


def test_a_child_replaced_in_a_parameter_free_model_selects_another_plan():
    """A compiled Sequential(ReLU()) kept computing ReLU after `seq[0]` was replaced by
    Tanh: only a Parameter read by the trace made a plan guard the replacement count, and
    this model has none. Now every module call in a trace guards it."""
    seq = G.Sequential(G.ReLU())
    f = gc.compile(seq)
    np.testing.assert_array_equal(np.asarray(f(X)), [[1.0, 0.0]])
    setattr(seq, "0", G.Tanh())
    np.testing.assert_allclose(np.asarray(f(X)), np.tanh(X), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(f(X)), _eager(seq, X), rtol=1e-6)
    assert f.recompiles == ["recompiling fn (compilation 2): a submodule was added to or "
                            "replaced in a module the trace went through"]


def test_a_functional_step_over_model_apply_sees_a_replaced_child():
    """gc.compile(lambda p, x: model.apply(p, x)) reads every Parameter as a traced input,
    so its plan guarded nothing: after `model[1] = Tanh()` it still applied ReLU. Now it
    traces again and computes what model.apply computes eagerly."""
    model = G.Sequential(G.Linear(2, 2, rng=np.random.default_rng(1)), G.ReLU())
    step = gc.compile(lambda p, x: model.apply(p, x))
    step(model.params(), X)
    setattr(model, "1", G.Tanh())
    with gc.no_grad():
        expected = np.asarray(model.apply(model.params(), gc.tensor(X)).data)
    assert (expected < 0).any()  # (so ReLU's result could not pass for it)
    np.testing.assert_allclose(np.asarray(step(model.params(), X)), expected, rtol=1e-6)


def test_a_child_or_parameter_added_after_compiling_selects_another_plan():
    """Adding to a module a trace went through did not make its plans stale: a new
    ModuleDict key (ModuleDict.__setitem__ did not count it, where ParameterDict's does), a
    child set over None, a bias set on a Linear built without one; the plans computed as
    before. Now each is counted, and the compiled results are the eager ones; building a new
module (no trace has reached it) still selects no new plan (test_review_s29)."""
    class Net(G.Module):
        def __init__(self):
            self.layers = G.ModuleDict({"fc": G.Linear(2, 2, rng=np.random.default_rng(2))})
            self.act = None

        def forward(self, x):
            for layer in self.layers.values():
                x = layer(x)
            return x if self.act is None else self.act(x)

    net = Net()
    g = gc.compile(net)
    with gc.no_grad():
        g(X)
        net.layers["act"] = G.Tanh()
        np.testing.assert_allclose(np.asarray(g(X)), _eager(net, X), rtol=1e-6)
        net.act = G.Sigmoid()
        np.testing.assert_allclose(np.asarray(g(X)), _eager(net, X), rtol=1e-6)
    assert len(g.recompiles) == 2

    linear = G.Linear(2, 2, bias=False, rng=np.random.default_rng(3))
    h = gc.compile(linear)
    without = np.asarray(h(X))
    linear.bias = G.Parameter(np.full(2, 5.0, np.float32))
    np.testing.assert_allclose(np.asarray(h(X)), without + 5.0, rtol=1e-6)

    with gc.no_grad():
        g(X)  # (the count is global: its plan for the new count)
    compilations = len(g.recompiles), len(h.recompiles)
    G.Sequential(G.Linear(2, 2), G.Tanh())
    G.ModuleDict({"a": G.Linear(2, 2)})
    net(gc.tensor(X))  # (an eager call is no trace)
    with gc.no_grad():
        g(X)
    h(X)
    assert (len(g.recompiles), len(h.recompiles)) == compilations



def test_unrelated_changes_leave_functional_and_parameter_free_plans_alone():
    """Review of the change above: every traced module call guarded the process-wide count
    of replaced tensor attributes, so a functional step (model.apply's), a parameter-free
    compiled module and gc.Trainer's step were traced again at every call while an
    unrelated eager module kept a tensor (`self.last = x`): 10 recompiles in 12 steps,
    and RecompileWarning. They guard a count of their own now (children added or replaced
    in a traced module), which such an assignment leaves alone: no recompile."""
    model = G.Sequential(G.Linear(4, 8), G.ReLU(), G.Linear(8, 1))
    step = gc.compile(gc.value_and_grad(lambda p, x: gc.sum(model.apply(p, x) ** 2)))
    activation = gc.compile(G.Tanh())

    class Meter(G.Module):  # unrelated, never compiled
        def __init__(self):
            self.last = None

        def forward(self, x):
            self.last = x
            return x

    meter, params, x = Meter(), model.params(), np.ones((2, 4), np.float32)
    for _ in range(12):
        step(params, x)
        activation(x)
        meter(gc.tensor(x))
        model(x)  # the model itself, eagerly
    assert step.recompiles == [] and activation.recompiles == []


def test_a_child_built_in_its_first_traced_forward_makes_no_plan_stale():
    """A layer created lazily in forward (`if self.proj is None: self.proj = Linear(...)`)
    counted as a change made after the trace: the plan traced it was stale at its next
    call (one recompile). The trace's own assignments are part of it now."""
    class Lazy(G.Module):
        def __init__(self):
            self.proj = None

        def forward(self, x):
            if self.proj is None:
                self.proj = G.Linear(x.shape[-1], 3)
            return self.proj(x)

    f = gc.compile(Lazy())
    x = np.ones((2, 4), np.float32)
    first = np.asarray(f(x))
    for _ in range(2):
        np.testing.assert_array_equal(np.asarray(f(x)), first)
    assert f.recompiles == []


def test_a_compiled_module_holding_the_container_is_refused_as_a_cycle():
    """`net.heads["fast"] = gc.compile(net)` was refused as "a Compiled, not a Module"; it is
    one, but holding it would make the module tree a cycle, which the line now says."""
    class Net(G.Module):
        def __init__(self):
            self.fc = G.Linear(2, 2)
            self.heads = G.ModuleDict()

    net = Net()
    with pytest.raises(gc.GraphcError, match="'fast' is a gc.compile'd module that holds "
                                             "this one: a child there would make a cycle"):
        net.heads["fast"] = gc.compile(net)


def test_building_modules_with_the_new_methods_leaves_plans_alone():
    """Review: register_parameter, add_module and the containers' edits counted a change
    wherever they ran, so building a torch-style module (register_parameter in __init__,
    ModuleList().extend(...), ModuleDict().update(...)) after compiling traced every
    compiled model again (3 constructions, 6 more traces). Only modules a trace went
    through (or whose items it called) count now."""
    f = gc.compile(G.Sequential(G.Linear(4, 4)))
    x = np.ones((2, 4), np.float32)
    f(x)

    class Scaled(G.Module):
        def __init__(self):
            self.register_parameter("scale", G.Parameter(np.ones(4, np.float32)))
            self.add_module("body", G.Linear(4, 4))

    for _ in range(3):
        Scaled()
        G.ModuleList().extend([G.Linear(2, 2), G.ReLU()]).insert(0, G.Tanh())
        heads = G.ModuleDict({"a": G.Linear(2, 2)})
        heads.update({"b": G.Linear(2, 2)})
        del heads["a"]
        f(x)
    assert f.recompiles == []
