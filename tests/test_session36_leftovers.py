"""Session 36's fixes of items left open at the end of session 35; each test failed before
its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _linear(n_in, n_out, seed):
    return gc.nn.Linear(n_in, n_out, rng=np.random.default_rng(seed), dtype="float64")


def test_containers_take_compiled_modules_as_items():
    """gc.nn.Sequential(gc.compile(layer), ...) and ModuleList/ModuleDict of compiled layers
    were refused ("item 0 is a Compiled, not a Module"), where torch's containers take
    torch.compile'd modules. Now such an item is the child: its parameters are the
    container's under the item's name, and outputs and gradients equal the uncompiled
    container's."""
    x = np.random.default_rng(3).normal(size=(5, 3))
    plain = gc.nn.Sequential(_linear(3, 4, 0), gc.nn.Tanh(), _linear(4, 2, 1))
    fast = gc.nn.Sequential(gc.compile(_linear(3, 4, 0)), gc.nn.Tanh(),
                            gc.compile(_linear(4, 2, 1)))
    assert [n for n, _ in fast.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                       "2.bias"]
    for model in (plain, fast):
        loss = gc.sum(model(gc.tensor(x)) ** 2)
        loss.backward()
    np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-12)
    for (name, p), (_, q) in zip(plain.named_parameters(), fast.named_parameters()):
        assert q.grad is not None, name
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(gc.compile(fast)(x), plain(x).numpy(), rtol=1e-12)

    items = gc.nn.ModuleList([gc.compile(_linear(2, 2, 4))])
    items.append(gc.compile(_linear(2, 3, 5)))
    assert list(items.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    heads = gc.nn.ModuleDict({"a": gc.compile(_linear(2, 2, 6))})
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias"]
    heads.eval()
    assert not heads["a"].__wrapped__.training


def test_containers_still_refuse_what_is_not_a_module():
    """A plain function (compiled or not) is still no item: one GraphcError line."""
    for bad in (lambda x: x, gc.compile(lambda x: x)):
        with pytest.raises(GraphcError, match="item 0 is a .*not a Module"):
            gc.nn.Sequential(bad)
        with pytest.raises(GraphcError, match="'k' is a .*not a Module"):
            gc.nn.ModuleDict({"k": bad})


class _Tempered(gc.nn.Module):
    def __init__(self):
        self.proj = _linear(3, 3, 0)
        self.temperature = 2.0
        self.mode = "soft"
        self.calls = 0
        self.unread = 0

    def forward(self, x):
        self.calls += 1  # set by the forward itself: no guard
        y = self.proj(x) / self.temperature
        return gc.softmax(y, -1) if self.mode == "soft" else y


def test_a_setting_of_ones_own_layer_that_forward_reads_selects_another_plan():
    """A plain setting of a user's layer read in forward (`self.temperature`, a mode string)
    was baked into the compiled plan: setting another value changed nothing, compiled or
    in a gc.Trainer step (torch.compile guards such reads). Now each read inside a trace is a
    guard, as graphc's own layers' settings are: the plan is traced again and equals the
    eager result. A counter the forward bumps itself, and an attribute it never reads, select
    no new plan (that would trace every call again)."""
    model = _Tempered()
    compiled = gc.compile(model)
    x = np.random.default_rng(1).normal(size=(2, 3))
    for change in ({}, {"temperature": 0.5}, {"mode": "raw"}, {"temperature": 3.0}):
        for name, value in change.items():
            setattr(model, name, value)
        with gc.no_grad():
            np.testing.assert_allclose(compiled(x), model(gc.tensor(x)).numpy(), rtol=1e-12)
    assert len(compiled.recompiles) == 3
    for step in range(4):
        model.unread = step
        compiled(x)
    assert len(compiled.recompiles) == 3


def test_a_trainer_step_sees_a_changed_setting_of_ones_own_layer():
    """The same through gc.Trainer's compiled step (model.apply): the loss after
    `model.temperature = 0.5` is the eager loss at 0.5, not at the traced 2.0."""
    model = _Tempered()
    x = np.random.default_rng(2).normal(size=(4, 3))
    loss = lambda p, b: gc.sum(model.apply(p, b[0]) ** 2)  # noqa: E731
    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.0), [(x,)], steps=3)
    trainer.train_step()
    model.temperature = 0.5
    expected = float(np.asarray(loss(model.params(), (x,))))
    assert trainer.train_step() == pytest.approx(expected, rel=1e-12)
