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
