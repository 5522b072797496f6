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
    assert f.recompiles == ["recompiling Sequential (compilation 2): a submodule was added to or "
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
        del heads["a"]  # (no trace read its tensors)
        f(x)
    assert f.recompiles == []


class _Counted(G.Module):
    def __init__(self):
        self.lin = G.Linear(3, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_a_forward_that_bumps_a_counter_runs_under_vmap_cond_and_fori_loop():
    """Review of the settings guard: a forward setting a number on itself (a counter)
    crashed inside vmap, cond and fori_loop (Region.set_while_tracing took no forget_read):
    TypeError. They run, as before the guard."""
    model, x = _Counted(), np.ones((2, 3), np.float32)
    expected = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(gc.vmap(model)(x)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gc.compile(
        lambda x: gc.cond(gc.sum(x) > 0, model, lambda v: v, x))(x)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gc.compile(
        lambda x: gc.fori_loop(0, 1, lambda i, h: model(h), x))(x)), expected, rtol=1e-6)


def test_a_loss_that_sets_a_setting_per_mode_keeps_its_two_plans():
    """Review: a loss setting a module's setting itself (`m.noise = 0.1 if training else
    0.0`, outside any forward) got a guard on the value it set, so each switch between
    training and evaluation traced the step again (12 recompiles in 20 steps). A setting
    the traced function sets is no guard now: no recompile."""
    class Net(G.Module):
        def __init__(self):
            self.lin = G.Linear(3, 1)
            self.noise = 0.0

        def forward(self, x):
            return self.lin(x) + self.noise

    model = Net()

    def loss(params, batch, key, training):
        model.noise = 0.1 if training else 0.0
        return gc.mean(model.apply(params, batch[0]) ** 2)

    batches = [(np.ones((4, 3), np.float32),)]
    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=1e-2), batches,
                         eval_batches=batches, eval_every=2, eval_iters=1, steps=20)
    trainer.fit(None, progress=False)
    compiled = [f for f in vars(trainer).values() if isinstance(f, gc.transforms.Compiled)]
    assert compiled and all(f.recompiles == [] for f in compiled)


@pytest.mark.parametrize("before, after", [
    (None, 2.0), (np.bool_(True), np.bool_(False)), ((2.0,), (3.0,))])
def test_none_numpy_bool_and_tuple_settings_are_guarded(before, after):
    """Review: only numbers and strings were guarded: a setting None -> 2.0, a numpy bool,
    or a tuple left the compiled plan on the old value. They are guarded too now."""
    class Scaled(G.Module):
        def __init__(self, scale):
            self.scale = scale

        def forward(self, x):
            s = self.scale
            if s is None:
                return x * 1.0
            if isinstance(s, tuple):
                return x * s[0]
            return x * (2.0 if s else 1.0)

    model = Scaled(before)
    compiled = gc.compile(model)
    x = np.ones(3, np.float32)
    compiled(x)
    model.scale = after
    np.testing.assert_allclose(np.asarray(compiled(x)), np.asarray(model(x)), rtol=1e-6)


def test_removing_a_container_item_makes_a_plan_reading_its_tensors_stale():
    """Review: a removal counted only for plans that went through a module, so a function
    reading an item's weight without calling it (`x @ md["a"].weight`) kept the removed
    item's. It counts for those too now."""
    def linear(fill):
        layer = G.Linear(3, 1, bias=False)
        layer.weight.data[...] = fill
        return layer
    x = np.ones((1, 3), np.float32)
    heads = G.ModuleDict({"a": linear(1.0)})
    compiled = gc.compile(lambda x: x @ heads["a"].weight)
    compiled(x)
    del heads["a"]
    heads["a"] = linear(5.0)
    np.testing.assert_allclose(np.asarray(compiled(x)), [[15.0]])
    layers = G.Sequential(linear(1.0), linear(2.0))
    first = gc.compile(lambda x: x @ layers[0].weight)
    first(x)
    layers.pop(0)
    np.testing.assert_allclose(np.asarray(first(x)), [[6.0]])


def test_graphcs_own_attribute_names_are_refused_for_an_assigned_child():
    """Review: `self._non_persistent = gc.nn.Linear(2, 2)` was taken, and a later
    register_buffer failed with a raw TypeError; it is one line, as add_module's."""
    model = G.Module()
    with pytest.raises(gc.GraphcError, match="'_non_persistent' is a name graphc keeps"):
        model._non_persistent = G.Linear(2, 2)


def test_a_setting_read_in_forward_and_set_after_it_by_the_function_stays_a_guard():
    """Review: every attribute the traced function set dropped the guard on it, so a step
    that read `model.scale` in the forward and set it after (an annealing step) kept the
    value it traced with, even after the user set another. Only a set inside a forward
    (a counter) forgets the read now: the plan is traced again, as eagerly."""
    class Net(G.Module):
        def __init__(self):
            self.scale = 2.0

        def forward(self, x):
            return x * self.scale

    model = Net()

    def step(x):
        y = model(x)
        model.scale = 1.0
        return y

    f = gc.compile(step)
    x = np.ones(2, np.float32)
    np.testing.assert_array_equal(np.asarray(f(x)), [2.0, 2.0])
    np.testing.assert_array_equal(np.asarray(f(x)), [1.0, 1.0])
    model.scale = 3.0
    np.testing.assert_array_equal(np.asarray(f(x)), [3.0, 3.0])


def test_removing_items_no_trace_read_leaves_plans_alone():
    """Review: every removal from any container counted as a change of a read tensor, so a
    queue of layers (append, then del the oldest) retraced every compiled model at each
    step (48 recompiles in 50 steps). Only a removed item whose tensors a trace read counts."""
    model = G.Sequential(G.Linear(4, 4), G.ReLU())
    f = gc.compile(model)
    x = np.ones((2, 4), np.float32)
    f(x)
    recent, heads = G.ModuleList(), G.ModuleDict({"a": G.Linear(2, 2)})
    for _ in range(12):
        recent.append(G.Linear(2, 2))
        if len(recent) > 2:
            del recent[0]
        heads["b"] = G.Linear(2, 2)
        del heads["b"]
        f(x)
    assert f.recompiles == []


def test_a_setting_replaced_by_an_array_retraces_instead_of_failing():
    """Review: a guarded tuple (or number) setting replaced by an array failed numpy's
    truth test in the guard check (ValueError: the truth value of an array ... is
    ambiguous); the guard now counts as changed and the plan is traced again."""
    class Net(G.Module):
        def __init__(self, s):
            self.s = s

        def forward(self, x):
            return x * gc.tensor(np.asarray(self.s, np.float32))

    model = Net((2.0, 3.0))
    f = gc.compile(model)
    x = np.ones(2, np.float32)
    f(x)
    model.s = np.array([4.0, 5.0], np.float32)
    np.testing.assert_array_equal(np.asarray(f(x)), [4.0, 5.0])
