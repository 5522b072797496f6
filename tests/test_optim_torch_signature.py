"""The torch-named optimisers' constructors against torch.optim 2.13's signatures: how many
settings each takes by position (torch's positional foreach=, maximize=, ... where torch's
takes them so, one line where it takes them by name only), foreach=True with fused=True
refused as torch's refuses it, and a set of parameters refused as torch's add_param_group
refuses one."""
import inspect

import numpy as np
import pytest
import torch

import graphc as gc
from graphc import optim

# graphc's class -> torch's (Lion has none)
NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "NAdam", "Adamax")


def _torch_positional(name) -> list:
    """torch's names its constructor takes by position after params."""
    return [p.name for p in inspect.signature(getattr(torch.optim, name)).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]


def _defaults(name) -> list:
    return [p.default for p in inspect.signature(getattr(torch.optim, name)).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]


@pytest.mark.parametrize("name", NAMES)
def test_as_many_by_position_as_torch(name):
    """Every setting torch's takes by position is taken so (its defaults: lr 0.1), one past
    them is one line naming those given by name, as torch's refuses it (TypeError)."""
    values = [0.1] + _defaults(name)[1:]
    getattr(optim, name)(*values)  # torch's whole positional order, taken
    p = torch.nn.Parameter(torch.ones(2))
    getattr(torch.optim, name)([p], *values)
    with pytest.raises(TypeError, match="positional arguments"):
        getattr(torch.optim, name)([p], *values, None)
    n = len(values)
    with pytest.raises(gc.GraphcError, match=rf"^{name}: takes at most {n} arguments by "
                       rf"position \({', '.join(_torch_positional(name))}, as torch's after "
                       rf"params\), got {n + 1}; give the others by name: "):
        getattr(optim, name)(*values, None)


def test_sgd_foreach_by_position():
    """The items file's call, less params: SGD's foreach is keyword-only in torch."""
    with pytest.raises(gc.GraphcError) as info:
        optim.SGD(0.1, 0.9, 0, 0, False, None)
    assert str(info.value).splitlines()[0] == (
        "SGD: takes at most 5 arguments by position (lr, momentum, dampening, weight_decay, "
        "nesterov, as torch's after params), got 6; give the others by name: decay_mask=, "
        "clip_norm=, maximize=, foreach=, differentiable=, fused=")
    # with the parameters first, as torch's: the .bind() line says it too
    model = gc.nn.Linear(2, 2)
    with pytest.raises(gc.GraphcError, match=r"\.bind\(model\) .*; and SGD takes at most 5 "
                       r"arguments by position \(.*\), got 6: give the others by name"):
        optim.SGD(model.parameters(), 0.1, 0.9, 0, 0, False, None)
    with pytest.raises(gc.GraphcError, match=r"^Lion: takes at most 3 arguments by position "
                       r"\(lr, betas, weight_decay\), got 4; give the others by name: "
                       r"decay_mask=, clip_norm="):
        optim.Lion(1e-3, (0.9, 0.99), 0.0, None)


def _steps(make_graphc, make_torch, steps=4):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    grads = rng.standard_normal((steps, 5))
    w = gc.nn.Parameter(w0.copy(), name="w")
    bound = make_graphc().bind({"w": w})
    t = torch.nn.Parameter(torch.tensor(w0))
    opt = make_torch([t])
    for g in grads:
        w.grad = g.copy()
        bound.step()
        t.grad = torch.tensor(g)
        opt.step()
    return w.data, t.detach().numpy()


def test_rmsprop_positional_maximize_as_torch():
    """RMSprop's ninth positional (after capturable and foreach) is maximize, as torch's:
    it was a TypeError; now it ascends, step for step as torch's (float64)."""
    args = (0.01, 0.9, 1e-8, 0.1, 0.5, True, False, None, True, False)
    ours, theirs = _steps(lambda: optim.RMSprop(*args),
                          lambda ps: torch.optim.RMSprop(ps, *args))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    descending, _ = _steps(lambda: optim.RMSprop(*args[:8]),
                           lambda ps: torch.optim.RMSprop(ps, *args[:8]))
    assert not np.allclose(ours, descending)  # (maximize did change the steps)
    with pytest.raises(gc.GraphcError, match=r"^RMSprop: maximize given twice: by position "
                       r"\(the ninth argument is maximize, as torch's\) and by name"):
        optim.RMSprop(*args, maximize=True)
    with pytest.raises(gc.GraphcError, match=r"^RMSprop: foreach must be None, True or "
                       r"False, got 3"):
        optim.RMSprop(0.01, 0.9, 1e-8, 0, 0, False, False, 3)


@pytest.mark.parametrize("name, args", [
    ("Adagrad", (0.1, 0.01, 0.1, 0.2, 1e-10, True)),
    ("Adamax", (0.01, (0.8, 0.99), 1e-8, 0.1, False)),
])
def test_positional_foreach_as_torch(name, args):
    ours, theirs = _steps(lambda: getattr(optim, name)(*args),
                          lambda ps: getattr(torch.optim, name)(ps, *args))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_foreach_and_fused_not_together(name):
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        getattr(torch.optim, name)([p], lr=0.1, foreach=True, fused=True)
    with pytest.raises(gc.GraphcError, match=rf"^{name}: fused=True and foreach=True cannot be "
                       r"given together .*; give one of them, or neither"):
        getattr(optim, name)(lr=0.1, foreach=True, fused=True)
    for foreach, fused in ((True, False), (False, True), (None, True), (True, None)):
        getattr(optim, name)(lr=0.1, foreach=foreach, fused=fused)  # (as torch's takes)
        getattr(torch.optim, name)([p], lr=0.1, foreach=foreach, fused=fused)


def test_set_of_parameters_refused():
    model = gc.nn.Linear(2, 2)
    with pytest.raises(gc.GraphcError, match=r"^bind: the parameters are a set, whose order "
                       r"changes between runs .*; give a list, a dict name -> Parameter or "
                       r"the Module"):
        optim.SGD(lr=0.1).bind(set(model.parameters()))
    with pytest.raises(gc.GraphcError, match=r"^bind: the parameters are a frozenset"):
        optim.Adam(lr=0.1).bind(frozenset(model.parameters()))
    bound = optim.SGD(lr=0.1).bind(list(model.parameters()))
    extra = gc.nn.Parameter(np.ones(2), name="extra")
    with pytest.raises(gc.GraphcError, match=r"^add_param_group: the parameters are a set"):
        bound.add_param_group({"params": {extra}})
    assert len(bound.parameters) == 2  # (nothing added)
    # torch's add_param_group refuses a set in the same words' sense
    t = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(TypeError, match="ordering of tensors in sets will change"):
        t.add_param_group({"params": {torch.nn.Parameter(torch.ones(1))}})
    bound.add_param_group({"params": [extra]})
    assert len(bound.parameters) == 3
