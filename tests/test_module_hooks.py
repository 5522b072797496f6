"""Module hooks on gc.nn.Module (graphc/hooks.py) against torch's: forward hooks (order, return
values, prepend, with_kwargs, always_call, handles; eagerly, under gc.compile, plans traced
again when a hook comes or goes, and through gradients) and full backward hooks (grad_input
and grad_output, replacements, order, prepend; eagerly, under gc.grad and compiled)."""
import numpy as np
import pytest
import torch

import graphc as gc
from errorcheck import assert_one_line_error

HERE = "test_module_hooks.py"


def _pair(seed=0):
    """The same small MLP in graphc and torch, and an input."""
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    ours = gc.nn.Sequential(gc.nn.Linear(3, 5), gc.nn.Tanh(), gc.nn.Linear(5, 2))
    ours.load_torch_state_dict(theirs.state_dict())
    x = np.random.default_rng(seed).normal(size=(4, 3))
    return ours, theirs, x.astype(np.float32)


def _hook_both(ours, theirs, index, kind, hook, **flags):
    return [getattr(m[index], f"register_forward_{kind}")(hook, **flags)
            for m in (ours, theirs)]


def _same(ours, theirs, x, compiled=None):
    want = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(ours(x)), want, rtol=1e-6, atol=1e-6)
    if compiled is not None:
        np.testing.assert_allclose(np.asarray(compiled(x)), want, rtol=1e-6, atol=1e-6)


def test_hooks_change_inputs_and_outputs_in_torchs_order():
    ours, theirs, x = _pair()
    compiled = gc.compile(ours)
    _same(ours, theirs, x, compiled)
    handles = [
        *_hook_both(ours, theirs, 0, "hook", lambda m, args, out: out * 2),
        *_hook_both(ours, theirs, 2, "pre_hook", lambda m, args: args[0] + 1),  # not a tuple
        *_hook_both(ours, theirs, 1, "hook", lambda m, args, out: out - 0.5),
        # prepend: before the one above, so (out * 3) - 0.5, not (out - 0.5) * 3
        *_hook_both(ours, theirs, 1, "hook", lambda m, args, out: out * 3, prepend=True),
        *_hook_both(ours, theirs, 1, "hook", lambda m, args, out: None),  # keeps the output
    ]
    _same(ours, theirs, x, compiled)  # the plan built before the hooks is traced again
    for handle in handles[::2]:
        handle.remove()
        handle.remove()  # (again: nothing)
    with pytest.raises(AssertionError):
        _same(ours, theirs, x)
    for handle in handles[1::2]:
        handle.remove()
    _same(ours, theirs, x, compiled)  # and again after they are removed


def test_with_kwargs_hooks_see_and_replace_keyword_arguments():
    class Scale(gc.nn.Module):
        def forward(self, x, *, factor=1.0):
            return x * factor

    class TorchScale(torch.nn.Module):
        def forward(self, x, *, factor=1.0):
            return x * factor

    x = np.arange(3.0)
    ours, results = Scale(), []
    for module, wrap in ((ours, np.asarray), (TorchScale(), torch.tensor)):
        module.register_forward_pre_hook(
            lambda m, args, kwargs: (args, {"factor": kwargs["factor"] + 1}), with_kwargs=True)
        module.register_forward_hook(
            lambda m, args, kwargs, out: out + kwargs["factor"], with_kwargs=True)
        results.append(np.asarray(module(wrap(x), factor=2.0)))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], x * 3 + 3)
    np.testing.assert_array_equal(gc.compile(lambda x: ours(x, factor=2.0))(x), x * 3 + 3)


def test_gradients_flow_through_what_a_hook_returns():
    ours, theirs, x = _pair(1)
    _hook_both(ours, theirs, 1, "hook", lambda m, args, out: out * out)
    _hook_both(ours, theirs, 0, "pre_hook", lambda m, args: (args[0] * 2,))
    loss = theirs(torch.tensor(x)).square().sum()
    loss.backward()
    grads = gc.grad(lambda params: (ours.apply(params, x) ** 2).sum())(ours.params())
    for name, p in theirs.named_parameters():
        grad = np.asarray(grads[name])  # (graphc's Linear weight is torch's transposed)
        grad = grad.T if grad.ndim == 2 else grad
        np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_always_call_hooks_run_when_forward_raises():
    class Failing(gc.nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    seen = []
    module = Failing()
    module.register_forward_hook(lambda m, args, out: seen.append(("plain", out)))
    module.register_forward_hook(lambda m, args, out: seen.append(("always", out)),
                                 always_call=True)
    with pytest.raises(ValueError, match="boom"):
        module(np.ones(2))
    assert seen == [("always", None)]  # as torch's: the output is None there


def test_a_handle_is_a_context_manager_and_hooks_survive_deepcopy():
    import copy
    ours, _, x = _pair()
    plain = np.asarray(ours(x))
    with ours[2].register_forward_hook(lambda m, args, out: out * 0):
        assert not np.asarray(ours(x)).any()
        copied = copy.deepcopy(ours)  # torch's deepcopy keeps the hooks too
    np.testing.assert_array_equal(np.asarray(ours(x)), plain)
    assert not np.asarray(copied(x)).any()


def test_bad_hook_registrations_are_one_line():
    layer = gc.nn.Linear(2, 2)
    assert_one_line_error(lambda: layer.register_forward_hook(3),
                          "Linear.register_forward_hook: the hook must be callable, got int",
                          HERE)
    assert_one_line_error(lambda: layer.register_forward_pre_hook(print, prepend="yes"),
                          "register_forward_pre_hook: prepend must be True or False", HERE)
    layer.register_forward_pre_hook(lambda m, args, kwargs: args, with_kwargs=True)
    assert_one_line_error(lambda: layer(np.ones(2, np.float32)),
                          "a forward pre-hook with with_kwargs=True must return None or a "
                          "tuple (args, kwargs), got a tuple of 1 item", HERE)


def test_always_call_hooks_run_when_a_pre_hook_raises_and_pass_on_their_results():
    """Review r11 of e7f0712: a pre-hook that raised skipped the always_call forward hooks
    (torch's run them, on output None: its try holds the pre-hooks too); an always_call
    hook's result was not the next one's output (torch's is); a failing one's warning named
    graphc's nn.py, not the call; a with_kwargs pre-hook's 3-tuple was said to be a 'tuple'."""
    import warnings

    def run(lib, failing_pre):
        class Failing(lib.nn.Module):
            def forward(self, x):
                raise ValueError("boom")

        module, seen = (lib.nn.Identity() if failing_pre else Failing()), []
        if failing_pre:
            module.register_forward_pre_hook(lambda m, args: 1 / 0)
        module.register_forward_hook(lambda m, args, out: (seen.append(out), "first")[1],
                                     always_call=True)
        module.register_forward_hook(lambda m, args, out: seen.append(out), always_call=True)
        module.register_forward_hook(lambda m, args, out: 1 / 0, always_call=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ZeroDivisionError if failing_pre else ValueError):
                module(2.0)
        return seen, [w.filename for w in caught]

    for failing_pre in (True, False):
        ours, warned = run(gc, failing_pre)
        assert ours == run(torch, failing_pre)[0] == [None, "first"]
        assert [name.rsplit("/", 1)[-1] for name in warned] == [HERE]
    layer = gc.nn.Identity()
    layer.register_forward_pre_hook(lambda m, args, kwargs: (1, 2, 3), with_kwargs=True)
    assert_one_line_error(lambda: layer(1.0), "must return None or a tuple (args, kwargs), "
                          "got a tuple of 3 items", HERE)


def test_a_hook_the_traced_forward_adds_and_removes_itself_keeps_its_plan():
    """Review r11: a forward doing `with self.a.register_forward_hook(h): ...` traced its
    compiled model again at every call (12 compilations in 12 calls): the handle's remove
    counted as a hook taken off a traced module. A hook the traced function adds and removes
    itself is part of that trace, and the plan is kept."""
    class Doubling(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = gc.nn.Linear(3, 3)

        def forward(self, x):
            with self.a.register_forward_hook(lambda m, args, out: out * 2):
                return self.a(x)

    model = Doubling()
    compiled = gc.compile(model)
    x = np.ones((2, 3), np.float32)
    want = 2 * np.asarray(model.a(x))
    for _ in range(4):
        np.testing.assert_allclose(np.asarray(compiled(x)), want, rtol=1e-6)
    assert len(compiled.recompiles) == 0


def test_a_handle_does_not_keep_its_module_alive():
    """Review r11: RemovableHandle held the module through a bound method; torch's holds
    its hooks by a weak reference. A module dropped is collected with its handle kept, and
    the handle's remove() is then nothing."""
    import gc as garbage
    import weakref
    layer = gc.nn.Linear(2, 2)
    handle = layer.register_forward_hook(lambda m, args, out: out)
    alive = weakref.ref(layer)
    del layer
    garbage.collect()
    assert alive() is None
    handle.remove()


class _Counted(gc.nn.Module):
    """A Linear inside a module that counts its traces (each forward a compiled call runs
    is a trace: a plan runs no Python)."""

    def __init__(self):
        super().__init__()
        self.traces = 0
        self.layer = gc.nn.Linear(3, 3)

    def forward(self, x):
        self.traces += 1
        return self.layer(x)


def test_a_hook_retraces_only_the_plans_that_went_through_its_module():
    """Session 48: a hook added to or removed from any module retraced every plan that had
    gone through any module (one global count). Only the plans whose trace called the module
    are traced again; one on a submodule retraces the model that calls it."""
    a, b = _Counted(), _Counted()
    compiled_a, compiled_b = gc.compile(a), gc.compile(b)
    x = np.ones((2, 3), np.float32)
    with gc.no_grad():  # (one trace a call: the plain plan, not the tape's)
        compiled_a(x), compiled_b(x)
        plain = np.asarray(a.layer(x))
        traced = (a.traces, b.traces)
        handle = a.register_forward_hook(lambda m, args, out: out * 2)
        np.testing.assert_allclose(np.asarray(compiled_a(x)), 2 * plain, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(compiled_b(x)), np.asarray(b.layer(x)), rtol=1e-6)
        assert (a.traces, b.traces) == (traced[0] + 1, traced[1])
        handle.remove()  # (the plan traced without it again: test_..._finds_the_plan_...)
        np.testing.assert_allclose(np.asarray(compiled_a(x)), plain, rtol=1e-6)
        compiled_b(x)
        assert (a.traces, b.traces) == (traced[0] + 1, traced[1])
        shifted = np.asarray(b.layer(x + 1))
        b.layer.register_forward_pre_hook(lambda m, args: args[0] + 1)  # a submodule's
        np.testing.assert_allclose(np.asarray(compiled_b(x)), shifted, rtol=1e-6)
        compiled_a(x)
        assert (a.traces, b.traces) == (traced[0] + 1, traced[1] + 1)
    assert compiled_b.recompiles[-1].endswith(
        "a hook was added to or removed from Linear layer")


def test_taking_a_hook_off_again_finds_the_plan_traced_without_it():
    """Session 49: the guard was a count of the module's hook changes, so a hook added and
    taken off again traced the model once more, as did each add and remove after that. The
    guard is the module's live hooks (their ids, in order): without the hook, the first
    plan; with another hook, or the same ones in another order, a trace of its own."""
    model = _Counted()
    compiled = gc.compile(model)
    x = np.ones((2, 3), np.float32)
    with gc.no_grad():
        plain = np.asarray(model.layer(x))
        compiled(x)
        for _ in range(3):  # add and remove: the plain plan again, traced once
            with model.layer.register_forward_hook(lambda m, args, out: out * 2):
                np.testing.assert_allclose(np.asarray(compiled(x)), 2 * plain, rtol=1e-6)
            np.testing.assert_allclose(np.asarray(compiled(x)), plain, rtol=1e-6)
        assert model.traces == 1 + 3  # (each lambda is a hook of its own: a trace each)
        add = model.layer.register_forward_hook(lambda m, args, out: out + 1)
        np.testing.assert_allclose(np.asarray(compiled(x)), plain + 1, rtol=1e-6)
        times = model.layer.register_forward_hook(lambda m, args, out: out * 3)
        np.testing.assert_allclose(np.asarray(compiled(x)), (plain + 1) * 3, rtol=1e-6)
        times.remove()
        np.testing.assert_allclose(np.asarray(compiled(x)), plain + 1, rtol=1e-6)
        assert model.traces == 4 + 2
        # another hook, first (prepend): a plan of its own, in torch's order
        first = model.layer.register_forward_hook(lambda m, args, out: out * 3, prepend=True)
        np.testing.assert_allclose(np.asarray(compiled(x)), plain * 3 + 1, rtol=1e-6)
        assert model.traces == 4 + 3
        first.remove(), add.remove()
        np.testing.assert_allclose(np.asarray(compiled(x)), plain, rtol=1e-6)
        assert model.traces == 4 + 3


def test_a_hook_that_removes_itself_runs_once_compiled_as_eagerly():
    """Session 48: a forward hook whose handle.remove() it calls itself ran at the first
    trace of a compiled model on the tape, which then traced the model a second time for its
    vjp, without the hook: the first call's result lacked it (torch's, eager's: the hook
    runs at the first call, then is gone). The vjp is built on the call's one trace; the
    first result (and its gradient) has the hook, the next ones not, as torch's."""
    def run(lib, compiled):
        ours, theirs, x = _pair()
        module = ours if lib is gc else theirs
        calls = []

        def hook(m, args, out):
            calls.append(1)
            handle.remove()
            return out * 2

        handle = module[0].register_forward_hook(hook)
        f = gc.compile(module) if compiled else module
        results, grads = [], []
        for _ in range(3):
            module.zero_grad()
            out = f(x if lib is gc else torch.tensor(x))
            out.sum().backward()
            results.append(np.asarray(out.detach().numpy() if lib is torch else out))
            grad = module[0].weight.grad  # (graphc's Linear weight is (in, out): torch's.T)
            grads.append(grad.numpy().T if lib is torch else np.asarray(grad))
        return results, grads, len(calls)

    want, want_grads, want_calls = run(torch, False)
    assert want_calls == 1
    for compiled in (False, True):
        results, grads, calls = run(gc, compiled)
        assert calls == 1
        for got, expected in zip(results, want):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        for got, expected in zip(grads, want_grads):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want[0], want[1])


def test_a_compiled_call_on_the_tape_traces_once():
    """Session 48: a compiled model's first call on the tape traced it twice (the plain
    trace that found it belongs on the tape, then its vjp's), running forward's Python
    twice; now once, and once more only where a guard changed."""
    model = _Counted()
    compiled = gc.compile(model)
    x = np.ones((2, 3), np.float32)
    out = compiled(x)
    out.sum().backward()
    np.testing.assert_allclose(np.asarray(out), np.asarray(model.layer(x)), rtol=1e-6)
    assert model.traces == 1
    compiled(x)
    assert model.traces == 1


# ---- full backward hooks ---------------------------------------------------------------------

def _loss(ours):
    return lambda params, x: (ours.apply(params, x) ** 2).sum()


def _compiled(ours):
    """ours compiled, and its gradient compiled, as _grads_of runs them (made once: their
    plans must be traced again when a hook comes or goes)."""
    return {"compiled": gc.compile(ours),
            "compiled grad": gc.compile(gc.grad(_loss(ours), argnums=(0, 1)))}


def _grads_of(ours, x, how, compiled=None):
    """The gradients of sum(model(x)^2) with respect to the parameters and x, computed
    `how`: eagerly on the tape, by gc.grad, by a compiled model on the tape or by a compiled
    gc.grad (from `compiled`, _compiled's); the parameters' as torch's (graphc's Linear
    weight is torch's transposed)."""
    if how in ("eager", "compiled"):
        model = ours if how == "eager" else compiled[how]
        ours.zero_grad()
        xt = gc.Tensor(x, requires_grad=True)
        out = model(xt)
        (out * out).sum().backward()
        grads = {name: p.grad for name, p in ours.named_parameters()}
        grads["x"] = xt.grad
    else:
        step = gc.grad(_loss(ours), argnums=(0, 1)) if how == "grad" else compiled[how]
        grads, grads["x"] = step(ours.params(), x)
    return {name: np.asarray(g).T if np.ndim(g) == 2 and name != "x" else np.asarray(g)
            for name, g in grads.items()}


def _torch_grads(theirs, x):
    theirs.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).square().sum().backward()
    grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    grads["x"] = xt.grad.numpy()
    return grads


def _close(got, want):
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


_WAYS = ("eager", "grad", "compiled", "compiled grad")


def test_backward_hooks_change_gradients_as_torchs_in_order_eagerly_and_compiled():
    ours, theirs, x = _pair(2)
    compiled = _compiled(ours)
    plain = _torch_grads(theirs, x)
    for how in _WAYS:
        _close(_grads_of(ours, x, how, compiled), plain)
    handles = []
    for m in (ours, theirs):
        handles += [
            m[1].register_full_backward_hook(lambda mod, gi, go: (gi[0] * 3,)),
            m[1].register_full_backward_hook(lambda mod, gi, go: (gi[0] + 0.5,)),
            m[1].register_full_backward_hook(lambda mod, gi, go: None),  # keeps grad_input
            # prepend: before both above, so (g * -2) * 3 + 0.5
            m[1].register_full_backward_hook(lambda mod, gi, go: (gi[0] * -2,), prepend=True),
            m[2].register_full_backward_pre_hook(lambda mod, go: (go[0] * 2 + 1,)),
            m[2].register_full_backward_pre_hook(lambda mod, go: (go[0] * 0.5,), True),
        ]
    hooked = _torch_grads(theirs, x)
    assert not np.allclose(hooked["0.weight"], plain["0.weight"])
    for how in _WAYS:  # (the compiled plans are traced again with the hooks)
        _close(_grads_of(ours, x, how, compiled), hooked)
    for handle in handles:
        handle.remove()
    for how in _WAYS:  # and again without them
        _close(_grads_of(ours, x, how, compiled), plain)
    assert compiled["compiled grad"].recompiles[0].endswith(
        "a hook was added to or removed from Tanh 1; a hook was added to or removed from "
        "Linear 2")


def test_backward_hooks_see_torchs_grad_input_and_grad_output():
    ours, theirs, x = _pair(3)
    seen = {"ours": [], "theirs": []}
    for key, m in (("ours", ours), ("theirs", theirs)):
        record = seen[key].append
        m[0].register_full_backward_hook(lambda mod, gi, go, record=record: record((gi, go)))
        m[2].register_full_backward_pre_hook(lambda mod, go, record=record: record(go))
        m[2].register_full_backward_hook(lambda mod, gi, go, record=record: record((gi, go)))
    _close(_grads_of(ours, x, "eager"), _torch_grads(theirs, x))

    def arrays(entry):
        if isinstance(entry, tuple):
            return [arrays(e) for e in entry]
        return entry.detach().numpy() if isinstance(entry, torch.Tensor) else np.asarray(entry)

    got, want = arrays(tuple(seen["ours"])), arrays(tuple(seen["theirs"]))
    assert len(got) == len(want) == 3  # the last layer's pre-hook, its hook, the first's
    np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-5, atol=1e-6)
    for (gi, go), (tgi, tgo) in zip(got[1:], want[1:]):
        np.testing.assert_allclose(gi[0], tgi[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(go[0], tgo[0], rtol=1e-5, atol=1e-6)


def test_backward_hook_entries_are_none_for_non_tensors_as_torchs():
    """grad_input has one entry per positional argument (None for a non-tensor, zeros for a
    tensor that is not differentiated while another is, as torch's); grad_output one per
    output. An output the loss does not use has zeros in grad_output where torch's has
    None (graphc's gradients are zeros there: the README says so)."""
    def run(lib, traced):
        class Two(lib.nn.Module):
            def forward(self, x, k, y):
                return x * k, y * 3, "label"

        module, seen = Two(), []
        module.register_full_backward_pre_hook(lambda m, go: seen.append(go))
        module.register_full_backward_hook(lambda m, gi, go: (gi[0] * gi[2] + gi[0],
                                                               None, None))
        x, y = np.arange(1.0, 4.0, dtype=np.float32), np.ones(3, np.float32)
        if lib is torch:
            xt = torch.tensor(x, requires_grad=True)
            module(xt, 2.0, torch.tensor(y))[0].sum().backward()
            return seen, xt.grad.numpy()
        if traced:
            return seen, np.asarray(gc.grad(lambda x, y: module(x, 2.0, y)[0].sum())(x, y))
        xt = gc.Tensor(x, requires_grad=True)
        module(xt, 2.0, gc.Tensor(y))[0].sum().backward()
        return seen, np.asarray(xt.grad)

    (theirs,), want = run(torch, False)
    for traced in (False, True):
        (ours,), got = run(gc, traced)
        np.testing.assert_array_equal(got, want)  # (2 * 0 + 2: y's entry is zeros)
        assert [g is None for g in theirs] == [False, True, True]
        assert [g is None for g in ours] == [False, False, True]  # (zeros, not torch's None)
        if not traced:
            np.testing.assert_array_equal(np.asarray(ours[0]), theirs[0].numpy())
            np.testing.assert_array_equal(np.asarray(ours[1]), np.zeros(3))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_backward_hooks_run_at_each_call_of_a_module_called_twice(dtype, tol):
    seen = {}
    for lib in (torch, gc):
        torch.manual_seed(4)
        theirs = torch.nn.Linear(3, 3, dtype=getattr(torch, dtype))
        layer = theirs if lib is torch else gc.nn.Linear(3, 3, dtype=dtype)
        if lib is gc:
            layer.load_torch_state_dict(theirs.state_dict())
        calls = seen[lib.__name__] = []
        layer.register_full_backward_hook(
            lambda m, gi, go, calls=calls: (calls.append((gi[0], go[0])), (gi[0] * 2,))[1])
        x = np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
        xt = torch.tensor(x, requires_grad=True) if lib is torch else \
            gc.Tensor(x, requires_grad=True)
        (layer(layer(xt)) ** 2).sum().backward()
        calls.append(xt.grad)
    theirs, ours = seen["torch"], seen["graphc"]
    assert len(ours) == len(theirs) == 3  # the outer call's hook first, then the inner's
    for got, want in zip(ours[:2], theirs[:2]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w.detach().numpy(), rtol=tol, atol=tol)
            assert np.asarray(g).dtype == dtype
    np.testing.assert_allclose(np.asarray(ours[2]), theirs[2].numpy(), rtol=tol, atol=tol)
    # the inner call's grad_output is what the outer call's hook made of its grad_input
    np.testing.assert_allclose(np.asarray(ours[0][0]) * 2, np.asarray(ours[1][1]), rtol=1e-6)


@pytest.mark.parametrize("combine", ["sum", "concatenate"])
def test_sibling_modules_backward_hooks_run_in_torchs_order(combine):
    """Session 49: eagerly, sibling modules' backward hooks ran in the tape's depth-first
    order (act(a(x)) + b(y) + c(x): act's and a's first), torch's in the reverse of the
    forward (c's, b's, then act's and a's): backward() now sweeps the tape in the reverse of
    the order its entries were computed, as torch's autograd. gc.grad's order was torch's
    already; the gradients are torch's either way."""
    def run(lib, how):
        torch.manual_seed(7)

        class Siblings(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.act = lib.nn.Linear(3, 4), lib.nn.Tanh()
                self.b, self.c = lib.nn.Linear(3, 4), lib.nn.Linear(3, 4)

            def forward(self, x, y):
                outs = [self.act(self.a(x)), self.b(y), self.c(x)]
                if combine == "sum":
                    return outs[0] + outs[1] + outs[2]
                return torch.cat(outs, 1) if lib is torch else gc.concatenate(outs, 1)

        module, order = Siblings(), []
        if lib is gc:
            module.load_torch_state_dict(reference.state_dict())
        for name in ("a", "act", "b", "c"):
            layer = getattr(module, name)
            layer.register_full_backward_pre_hook(
                lambda m, go, name=name: order.append(f"pre {name}"))
            layer.register_full_backward_hook(lambda m, gi, go, name=name: order.append(name))
        x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
        y = x[::-1] * 2
        if how == "grad":
            grads = gc.grad(lambda x, y: (module(x, y) ** 2).sum(), argnums=(0, 1))(x, y)
            return order, [np.asarray(g) for g in grads], module
        wrap = torch.tensor if lib is torch else gc.Tensor
        xt, yt = wrap(x, requires_grad=True), wrap(y, requires_grad=True)
        (module(xt, yt) ** 2).sum().backward()
        return order, [np.asarray(t.grad.numpy() if lib is torch else t.grad)
                       for t in (xt, yt)], module

    want, want_grads, reference = run(torch, "eager")
    assert want == ["pre c", "c", "pre b", "b", "pre act", "act", "pre a", "a"]
    for how in ("eager", "grad"):
        got, grads, _ = run(gc, how)
        assert got == want, how
        for g, w in zip(grads, want_grads):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=how)


@pytest.mark.parametrize("wanted,x_requires_grad", [("2.weight", True), ("2.weight", False),
                                                     ("0.weight", True), ("0.weight", False),
                                                     ("x", True)])
def test_backward_with_inputs_runs_only_the_hooks_on_their_paths(wanted, x_requires_grad):
    """Session 49: backward(inputs=[...]) ran every hooked layer's backward hooks (and every
    rule of the tape); torch's runs only the nodes on a path to its inputs: with inputs=[the
    last layer's weight], that layer's pre-hook alone; with the first layer's, its pre-hook
    but not its hook (x's gradient is not wanted), unless x needs no gradient at all (then
    it runs, grad_input None, as without inputs=). The gradients are torch's."""
    import warnings

    def run(lib):
        torch.manual_seed(8)
        theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                     torch.nn.Linear(4, 2))
        model = theirs
        if lib is gc:
            model = gc.nn.Sequential(gc.nn.Linear(3, 4), gc.nn.Tanh(), gc.nn.Linear(4, 2))
            model.load_torch_state_dict(theirs.state_dict())
        seen = []
        for i in range(3):
            model[i].register_full_backward_pre_hook(lambda m, go, i=i: seen.append(f"pre {i}"))
            model[i].register_full_backward_hook(
                lambda m, gi, go, i=i: seen.append(f"{i}: {[g is None for g in gi]}"))
        x = (lib.tensor if lib is torch else gc.Tensor)(
            np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), requires_grad=x_requires_grad)
        tensor = x if wanted == "x" else dict(model.named_parameters())[wanted]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (torch's 'no input requires gradients')
            (model(x) ** 2).sum().backward(inputs=[tensor])
        grad = tensor.grad.numpy() if lib is torch else np.asarray(tensor.grad)
        others = [n for n, p in model.named_parameters() if p.grad is not None and n != wanted]
        # (graphc's Linear weight is torch's transposed)
        return seen, grad.T if lib is torch and wanted != "x" else grad, others

    want, want_grad, want_others = run(torch)
    got, grad, others = run(gc)
    assert got == want
    assert others == want_others == []
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
    if wanted == "2.weight":
        assert want == ["pre 2"]


def test_a_hook_under_vmap_differentiated_outside_refuses_grad_output_in_one_line():
    """Session 49: gc.grad of a gc.vmap whose module's full backward hook returned a
    grad_input computed from grad_output failed at batching ('add: operands belong to
    different graphs': the outputs' and inputs' rules are vmapped apart). torch.func runs no
    module hooks there; graphc runs them, and refuses that one use in one line naming it. A
    hook on grad_input alone gives what it gives without vmap, torch's eager gradient."""
    torch.manual_seed(9)
    theirs = torch.nn.Linear(3, 2)
    theirs.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    xt = torch.tensor(x, requires_grad=True)
    (theirs(xt) ** 2).sum().backward()
    layer = gc.nn.Linear(3, 2)
    layer.load_torch_state_dict(theirs.state_dict())
    with layer.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,)):
        got = gc.grad(lambda x: (gc.vmap(layer)(x) ** 2).sum())(x)
    np.testing.assert_allclose(np.asarray(got), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0] + go[0].sum(),))
    assert_one_line_error(lambda: gc.grad(lambda x: (gc.vmap(layer)(x) ** 2).sum())(x),
                          "Linear: a full backward hook of a module called inside gc.vmap and "
                          "differentiated outside it returned a grad_input computed from "
                          "grad_output", HERE)
    want = gc.vmap(gc.grad(lambda x: (layer(x) ** 2).sum()))(x)  # (inside: it can)
    assert np.isfinite(np.asarray(want)).all()


def test_a_backward_hook_of_a_module_whose_inputs_need_no_gradient_gets_nones():
    """As torch's: where no input of the module is differentiated (the first layer, on data)
    the hooks still run, when the gradient of its output is computed, with grad_input all
    None, and torch's warning; a hook returning gradients there is an error."""
    import warnings
    ours, theirs, x = _pair(5)
    seen = []
    for m in (ours, theirs):
        m[0].register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go[0])))
    for run in (lambda: theirs(torch.tensor(x)).sum().backward(),
                lambda: ours(x).sum().backward(),
                lambda: gc.grad(lambda p: ours.apply(p, x).sum())(ours.params())):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
        assert len(caught) == 1 and "no input" in str(caught[0].message)
    assert [gi for gi, _ in seen] == [(None,)] * 3
    np.testing.assert_allclose(np.asarray(seen[1][1]), seen[0][1].numpy(), rtol=1e-5, atol=1e-6)
    ours[0].register_full_backward_hook(lambda mod, gi, go: (np.ones((4, 3), np.float32),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_one_line_error(lambda: ours(x).sum().backward(),
                              "a full backward hook of a module none of whose inputs is "
                              "differentiated must return None or Nones", HERE)


def test_a_compiled_plan_runs_the_backward_hooks_it_was_traced_with():
    """Traced, a backward hook runs when the trace is differentiated, on traced values, and
    its effect is part of the plan: the plan's later calls run no Python."""
    ours, theirs, x = _pair(6)
    calls = []
    ours[2].register_full_backward_hook(lambda m, gi, go: (calls.append(1), (gi[0] * 4,))[1])
    theirs[2].register_full_backward_hook(lambda m, gi, go: (gi[0] * 4,))
    step = gc.compile(gc.grad(lambda params, x: (ours.apply(params, x) ** 2).sum(),
                              argnums=(0, 1)))
    want = _torch_grads(theirs, x)
    for _ in range(3):
        grads, grads["x"] = step(ours.params(), x)
        _close({n: np.asarray(g).T if np.ndim(g) == 2 and n != "x" else np.asarray(g)
                for n, g in grads.items()}, want)
    assert len(calls) == 1


def test_bad_backward_hook_results_are_one_line():
    layer = gc.nn.Linear(2, 2)
    x = gc.Tensor(np.ones((1, 2), np.float32), requires_grad=True)
    assert_one_line_error(lambda: layer.register_full_backward_hook("h"),
                          "Linear.register_full_backward_hook: the hook must be callable", HERE)
    assert_one_line_error(lambda: layer.register_full_backward_pre_hook(print, prepend=1),
                          "register_full_backward_pre_hook: prepend must be True or False",
                          HERE)
    for register, hook, message in (
            ("hook", lambda m, gi, go: (gi[0], gi[0]),
             "a full backward hook must return None or a tuple of 1 (one per entry of "
             "grad_input), got a tuple of 2"),
            ("hook", lambda m, gi, go: (np.ones(3),),
             "a full backward hook returned grad_input[0] of shape (3,), but it is the "
             "gradient of a value of shape (1, 2)"),
            ("pre_hook", lambda m, go: go[0],
             "a full backward pre-hook must return None or a tuple of 1 (one per entry of "
             "grad_output), got a Tensor")):
        with getattr(layer, f"register_full_backward_{register}")(hook):
            assert_one_line_error(lambda: layer(x).sum().backward(), message, HERE)
    layer(x).sum().backward()  # (the handles' `with` took them off)


@pytest.mark.parametrize("dtype", ["float64", "int64"])
@pytest.mark.parametrize("register", ["hook", "pre_hook"])
def test_a_backward_hook_changing_a_gradients_dtype_is_refused_as_torchs(register, dtype):
    """A float64 gradient for a float32 value was cast without a word, an int64 one refused
    in custom_vjp's words ("custom_vjp function Linear backward hook inputs: bwd's cotangent
    ..."), naming no hook; torch refuses both ("hook 'hook' has changed the type of value"):
    one line naming the hook, eagerly and traced."""
    what = "grad_input" if register == "hook" else "grad_output"
    shape = (4, 3) if register == "hook" else (4, 2)
    torch_layer = torch.nn.Linear(3, 2)
    getattr(torch_layer, f"register_full_backward_{register}")(
        lambda m, *grads: (torch.ones(shape, dtype=getattr(torch, dtype)),))
    with pytest.raises(RuntimeError, match="has changed the type of value"):
        torch_layer(torch.ones(4, 3, requires_grad=True)).sum().backward()
    layer = gc.nn.Linear(3, 2)
    getattr(layer, f"register_full_backward_{register}")(
        lambda m, *grads: (gc.Tensor(np.ones(shape, dtype)),))
    kind = "full backward hook" if register == "hook" else "full backward pre-hook"
    message = (f"Linear: a {kind} returned {what}[0] of dtype {dtype}, but it is the gradient "
               "of a value of dtype float32; return it in float32")
    x = np.ones((4, 3), np.float32)
    assert_one_line_error(lambda: layer(gc.Tensor(x, requires_grad=True)).sum().backward(),
                          message, HERE)
    assert_one_line_error(lambda: gc.grad(lambda x: gc.sum(layer(x)))(x), message, HERE)
