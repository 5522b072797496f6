"""Hostile review as a PyTorch/JAX user of graphc's public API (s22u): each test failed
before its fix."""
import functools

import numpy as np
import pytest
import torch

import graphc as gc
from errorcheck import assert_one_line_error


class TiedLM(gc.nn.Module):
    """Embedding and output head share one Parameter (GPT-2's, torch's weight tying)."""

    def __init__(self, vocab, width):
        self.emb = gc.nn.Embedding(vocab, width)
        self.mid = gc.nn.Linear(width, width)
        # a plain module holding the table (vocab, width), used transposed below: a Linear's
        # weight is (in, out) and refuses the Embedding's (session 38)
        self.head = gc.nn.Module()
        self.head.weight = self.emb.weight

    def forward(self, idx):
        return gc.tanh(self.mid(self.emb(idx))) @ gc.transpose(self.head.weight)


def test_a_tied_parameter_is_one_parameter_trained_with_both_uses_gradient():
    # named_parameters()/params() listed the tied weight twice ("emb.weight" and
    # "head.weight"): apply() fed each use its own copy, so each got only its own use's share
    # of the gradient and an optimiser trained the two copies apart (tying silently lost),
    # and the parameter count was 352 instead of torch's 264
    gc.nn.manual_seed(0)
    model = TiedLM(11, 8)
    assert [n for n, _ in model.named_parameters()] == ["emb.weight", "mid.weight", "mid.bias"]
    assert sum(p.data.size for p in model.parameters()) == 11 * 8 + 8 * 8 + 8
    params = {k: v.astype(np.float64) for k, v in model.params().items()}
    opt = gc.optim.AdamW(lr=1e-2, weight_decay=0.1)
    state = opt.init(params)

    @gc.compile(donate_argnums=(0, 1))
    def step(p, s, idx, y):
        loss, g = gc.value_and_grad(
            lambda p: gc.cross_entropy(model.apply(p, idx), y))(p)
        p, s = opt.update(g, s, p)
        return loss, p, s

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    topt = torch.optim.AdamW(tp.values(), lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(0)
    for _ in range(4):
        idx, y = rng.integers(0, 11, 16), rng.integers(0, 11, 16)
        loss, params, state = step(params, state, idx, y)
        h = torch.tanh(tp["emb.weight"][torch.tensor(idx)] @ tp["mid.weight"] + tp["mid.bias"])
        tl = torch.nn.functional.cross_entropy(h @ tp["emb.weight"].T, torch.tensor(y))
        topt.zero_grad()
        tl.backward()
        topt.step()
        assert abs(float(loss) - tl.item()) < 1e-12
    for k in tp:
        np.testing.assert_allclose(params[k], tp[k].detach().numpy(), atol=1e-12)


def test_a_tied_model_loads_a_state_dict_naming_either_or_both_of_its_names():
    model = TiedLM(5, 3)
    new = np.arange(15.0).reshape(5, 3).astype(np.float32)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    model.load_state_dict({**{k: v for k, v in state.items() if k != "head.weight"},
                           "emb.weight": new})
    np.testing.assert_array_equal(model.head.weight.data, new)
    # (session 35: one name changed in a state listing both is refused, not half applied)
    assert_one_line_error(lambda: model.load_state_dict({**state, "emb.weight": new + 5}),
                          "name one tied parameter", "test_review_s22u.py")
    np.testing.assert_array_equal(model.emb.weight.data, new)
    # torch's state_dict lists a tied weight under every name
    model.load_state_dict({**state, "emb.weight": new + 1, "head.weight": new + 1})
    np.testing.assert_array_equal(model.emb.weight.data, new + 1)
    del state["emb.weight"]
    model.load_state_dict({**state, "head.weight": new + 2})
    np.testing.assert_array_equal(model.emb.weight.data, new + 2)


def test_clipping_a_bound_optimizer_counts_a_tied_gradient_once():
    # bind(model) took the tied weight twice: its gradient entered the global norm twice, so
    # clip_norm clipped to the wrong norm
    gc.nn.manual_seed(1)
    model = TiedLM(6, 4)
    tp = [torch.tensor(p.data.astype(np.float64), requires_grad=True)
          for p in model.parameters()]
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    opt = gc.optim.SGD(lr=0.5, clip_norm=0.1).bind(model)
    idx, y = np.array([0, 3, 5, 1]), np.array([2, 2, 4, 0])
    gc.cross_entropy(model(gc.tensor(idx)), y).backward()
    opt.step()
    h = torch.tanh(tp[0][torch.tensor(idx)] @ tp[1] + tp[2])
    torch.nn.functional.cross_entropy(h @ tp[0].T, torch.tensor(y)).backward()
    torch.nn.utils.clip_grad_norm_(tp, 0.1)
    torch.optim.SGD(tp, lr=0.5).step()
    for p, t in zip(model.parameters(), tp):
        np.testing.assert_allclose(p.data, t.detach().numpy(), atol=1e-12)


def test_trainer_evaluates_with_dropout_off():
    # evaluate() ran a loss(params, batch) with the model's Dropout still drawing masks (the
    # 2-argument loss cannot switch the model to eval() itself): the validation loss was that
    # of a random thinned network, not of the model (Lightning validates under model.eval())
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(5, 64), gc.nn.ReLU(), gc.nn.Dropout(0.5),
                             gc.nn.Linear(64, 3))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5))
    y = x[:, :3].argmax(1)
    params = {k: v.astype(np.float64) for k, v in model.params().items()}

    def loss(p, batch):
        return gc.cross_entropy(model.apply(p, batch[0]), batch[1])

    trainer = gc.Trainer(loss, params, gc.optim.SGD(lr=0.1), lambda r: (x, y),
                         eval_batches=[(x, y)], eval_iters=1, steps=1)
    t = {k: torch.tensor(v) for k, v in params.items()}
    h = torch.relu(torch.tensor(x) @ t["0.weight"] + t["0.bias"]) @ t["3.weight"] + t["3.bias"]
    expected = torch.nn.functional.cross_entropy(h, torch.tensor(y)).item()
    assert abs(trainer.evaluate() - expected) < 1e-12
    assert model[2].training  # the model's own mode is left as it was
    trainer.train_step()  # training still drops: its loss is not the model's
    assert abs(trainer.history[0][1] - expected) > 1e-3


def test_trainer_refuses_nested_params_naming_the_entry():
    # a nested (flax-style) params tree became an object array: "dtype object is not
    # supported", naming neither the entry nor what Trainer takes
    x = np.ones((4, 3), np.float32)
    assert_one_line_error(
        lambda: gc.Trainer(lambda p, b: gc.sum(b[0] @ p["layer"]["w"]),
                           {"layer": {"w": np.ones((3, 1), np.float32)}}, gc.optim.SGD(lr=0.1),
                           lambda r: (x,), steps=1),
        "Trainer: params['layer'] is a dict; params must be a flat dict name -> array",
        "test_review_s22u.py")


class _RunningMean(gc.nn.Module):
    """A torch-style buffer updated in forward: under gc.compile it leaks a traced value."""

    def __init__(self):
        self.running = np.zeros(3)

    def forward(self, x):
        m = gc.mean(x, axis=0)
        self.running = 0.9 * self.running + 0.1 * m
        return x - m


def test_a_value_leaked_out_of_a_compiled_trace_is_refused_where_it_is_used():
    # a traced value stored on a module during gc.compile stayed there as a graph node: eager
    # code (or the next trace) then built nodes into the dead graph silently, the attribute
    # printing as "<%7:f64[3] = add>" (JAX raises UnexpectedTracerError)
    layer = _RunningMean()
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(gc.compile(lambda x: layer(x))(x), x - x.mean(0))
    assert_one_line_error(lambda: layer(gc.tensor(x)),
                          "mul: a value traced in the compiled lambda is used after that trace "
                          "ended: it leaked out", "test_review_s22u.py")


def test_a_compiled_function_called_with_too_few_or_too_many_arguments_says_so_in_one_line():
    # a TypeError from inside graphc's trace (transforms.py), where a missing keyword argument
    # was already one GraphcError line
    def step(params, x, y):
        return gc.sum(params * x * y)

    f = gc.compile(step)
    one = np.ones(2)
    assert_one_line_error(lambda: f(one, one),
                          "compiled step: missing a required argument: 'y'", "test_review_s22u.py")
    assert_one_line_error(lambda: f(one, one, one, one),
                          "compiled step: too many positional arguments", "test_review_s22u.py")
    assert f(one, one, one) == 2.0


def test_an_error_raised_through_numpy_names_the_users_line_not_numpys():
    # a nested list is a pytree of traced scalars; matmul's np.shape of it hit
    # Node.__array__, whose error named numpy's fromnumeric.py as the user's line (session
    # 43: the list is named, ir.ops.registry.refuse_array_container)
    model = gc.nn.Sequential(gc.nn.Linear(2, 3))
    f = gc.compile(lambda p, x: model.apply(p, x))
    assert_one_line_error(lambda: f(model.params(), [[1.0, 2.0], [3.0]]),
                          "got a list of 2 values where one array was expected",
                          "test_review_s22u.py")


def test_a_traced_python_argument_used_as_a_python_value_points_at_static_argnums():
    # a Python int used as a shape said "float() of a symbolic value" (it was int()), and
    # neither message said that the argument can be made static
    x = np.ones(6)
    assert_one_line_error(lambda: gc.compile(lambda x, n: gc.reshape(x, (n, -1)))(x, 2),
                          "int() of a symbolic value: its value is only known when the compiled "
                          "graph runs; the value passed as 'n' is traced: to use a Python number "
                          "or bool as a Python value, list its position in static_argnums",
                          "test_review_s22u.py")
    assert_one_line_error(lambda: gc.compile(lambda x, flag: x * 2 if flag else x)(x, True),
                          "the value passed as 'flag' is traced", "test_review_s22u.py")
    np.testing.assert_array_equal(
        gc.compile(lambda x, n: gc.reshape(x, (n, -1)), static_argnums=(1,))(x, 2),
        np.ones((2, 3)))


def test_a_traced_number_in_a_dict_or_list_argument_is_not_pointed_at_static_argnums():
    """Session 41: gc.compile(f)(x, {"k": 3.0}), f using cfg["k"] as a Python value, told to
    list cfg's position in static_argnums, which refuses the dict (not hashable). Session
    42: it says to close over cfg, showing how (functools.partial for leading parameters, as
    jax.jit users do, else a lambda), or to pass that number as an argument of its own in
    static_argnums; static_argnums given the dict says the same; a tuple's number keeps the
    static_argnums advice, which works for a tuple."""
    x = np.ones(3)
    by_dict = lambda x, cfg: gc.sum(x) * (3.0 if cfg["k"] > 2 else 1.0)
    by_list = lambda x, n: gc.sum(x) * float(n[0])

    def first(cfg, x):
        return by_dict(x, cfg)

    for call, name, closure, holder in [
            (lambda: gc.compile(by_dict)(x, {"k": 3.0}), "cfg.k", "a lambda passing cfg to f",
             "a dict"),
            (lambda: gc.compile(by_list)(x, [2.0, 1.0]), "n.0", "a lambda passing n to f",
             "a list"),
            (lambda: gc.compile(first)({"k": 3.0}, x), "cfg.k", "functools.partial(first, cfg)",
             "a dict")]:
        with pytest.raises(gc.GraphcError) as info:
            call()
        problem = str(info.value).splitlines()[0]
        arg = name.split(".")[0]
        assert problem.endswith(
            f"; the value passed as '{name}' is traced: to use it as a Python value, close over "
            f"{arg} (compile {closure}, as with jax.jit: its values are then constants of the "
            "plan) or pass the number as an argument of its own, listed in static_argnums; "
            f"static_argnums cannot take {arg} ({holder} is not hashable)"), problem
    with pytest.raises(gc.GraphcError, match="^compile: static argument cfg is a dict, which is "
                       r"not hashable \(a plan is keyed by it\); close over cfg instead "
                       r"\(compile a functools\.partial or a lambda passing it, as with "
                       r"jax\.jit\) or pass a hashable value such as a tuple\n"):
        gc.compile(first, static_argnums=0)({"k": 3.0}, x)
    with pytest.raises(gc.GraphcError, match="'n.0' is traced: .* list its position in "
                       "static_argnums\n"):
        gc.compile(by_list)(x, (2.0, 1.0))
    # as told: closed over (functools.partial, a lambda), or the number as its own static
    # argument, each value of which keys a plan
    np.testing.assert_allclose(gc.compile(functools.partial(first, {"k": 3.0}))(x), 9.0)
    cfg = {"k": 1.0}
    np.testing.assert_allclose(gc.compile(lambda x: by_dict(x, cfg))(x), 3.0)
    k_alone = gc.compile(lambda x, cfg, k: by_dict(x, {**cfg, "k": k}), static_argnums=(2,))
    np.testing.assert_allclose(k_alone(x, {"w": 1.0}, 3.0), 9.0)
    np.testing.assert_allclose(k_alone(x, {"w": 1.0}, 1.0), 3.0)


def test_a_tuple_holding_a_dict_and_a_compiled_partial_get_advice_that_works():
    """Review r5 of a5b2205: a tuple holding a dict was told "a tuple is not hashable" and to
    "pass a hashable value such as a tuple"; a compiled functools.partial was told to compile
    "functools.partial(partial, cfg)" (function_name gives a partial's type). Now the line
    says what inside the tuple is unhashable, and the code advised calls the partial's
    function (a placeholder f where a partial binds arguments or a method is compiled)."""
    x = np.ones(3)

    def nested(x, p):
        return gc.sum(x) * len(range(p[0]["n"]))

    def first(cfg, x):
        return gc.sum(x) * len(range(cfg["n"]))

    p = ({"n": 3},)
    with pytest.raises(gc.GraphcError, match=r"^compile: static argument p is a tuple holding "
                       r"a dict, which is not hashable \(a plan is keyed by it\); close over p "
                       r"instead \(compile a functools\.partial or a lambda passing it, as "
                       r"with jax\.jit\)\n  at .*test_review_s22u\.py:\d+$"):
        gc.compile(nested, static_argnums=1)(x, p)
    with pytest.raises(gc.GraphcError) as info:
        gc.compile(nested)(x, p)
    assert str(info.value).splitlines()[0].endswith(
        "close over p (compile a lambda passing p to nested, as with jax.jit: its values are "
        "then constants of the plan) or pass the number as an argument of its own, listed in "
        "static_argnums; static_argnums cannot take p (a tuple holding a dict is not hashable)")
    for compiled, args, code in [
            (functools.partial(first), ({"n": 3}, x), "functools.partial(first, cfg)"),
            (functools.partial(first, x=x), ({"n": 3},), "functools.partial(f, cfg)"),
            (Holder().first, ({"n": 3}, x), "functools.partial(f, cfg)")]:
        with pytest.raises(gc.GraphcError) as info:
            gc.compile(compiled)(*args)
        assert f"close over cfg (compile {code}, as with jax.jit" in str(info.value)
    # followed: closed over, as a lambda or the partial advised, the values are n * sum(x)
    np.testing.assert_allclose(gc.compile(lambda x: nested(x, p))(x), 9.0)
    np.testing.assert_allclose(gc.compile(functools.partial(first, {"n": 4}))(x), 12.0)
    np.testing.assert_allclose(gc.compile(functools.partial(functools.partial(
        first, x=x), {"n": 2}))(), 6.0)


class Holder:
    def first(self, cfg, x):
        return gc.sum(x) * len(range(cfg["n"]))


def test_vjp_jvp_and_linearize_tell_to_close_over_a_number_not_static_argnums():
    # gc.vjp / gc.jvp / gc.linearize of f(x, n) using n as a Python value told to list n in
    # static_argnums, an option only gc.compile has; as JAX's vjp and jvp they take none
    x = np.ones(3)

    def f(x, n):
        return gc.sum(x * x) * (2.0 if n > 1 else 1.0)
    for call, example in [
            (lambda: gc.vjp(f, x, 3), "gc.vjp(lambda x: f(x, n), x)"),
            (lambda: gc.jvp(f, (x, 3), (x, 0)), "gc.jvp(lambda x: f(x, n), (x,), (t,))"),
            (lambda: gc.linearize(f, x, 3), "gc.linearize(lambda x: f(x, n), x)")]:
        with pytest.raises(gc.GraphcError) as info:
            call()
        problem = str(info.value).splitlines()[0]
        assert "static_argnums" not in problem, problem
        assert problem.endswith("is traced: to use a Python number or bool as a Python value, "
                                f"close over it, as in {example}: "
                                f"{example.partition('(')[0]} takes no static arguments"), problem
    # closing over it, as told, works: d/dx 2 * sum(x * x) = 4x
    _, pullback = gc.vjp(lambda x: f(x, 3), x)
    np.testing.assert_allclose(pullback(1.0)[0], 4.0 * x)
    np.testing.assert_allclose(gc.jvp(lambda x: f(x, 3), (x,), (x,))[1], 4.0 * 3)
    # gc.compile, which has static_argnums, still names them; so does a vjp inside it
    assert_one_line_error(lambda: gc.compile(lambda x, n: gc.vjp(f, x, n)[0])(x, 3),
                          "list its position in static_argnums", "test_review_s22u.py")


def test_jvp_and_linearize_name_the_functions_parameters_as_vjp_does():
    """Session 42: gc.jvp's traced-number line named its inner function's 'arg1' and
    gc.linearize's 'p1' where gc.vjp (and grad) name f's parameter 'n'; a leaf of a dict
    argument 'arg1.k'. Now they name f's parameters, as vjp does."""
    x = np.ones(3)

    def f(x, n):
        return gc.sum(x * x) * (2.0 if n > 1 else 1.0)

    def g(x, cfg):
        return x * len(range(cfg["k"]))
    for call, name in [(lambda: gc.vjp(f, x, 3), "n"), (lambda: gc.jvp(f, (x, 3), (x, 0)), "n"),
                       (lambda: gc.linearize(f, x, 3), "n"),
                       (lambda: gc.jvp(g, (x, {"k": 2}), (x, {"k": 0})), "cfg.k"),
                       (lambda: gc.linearize(g, x, {"k": 2}), "cfg.k")]:
        with pytest.raises(gc.GraphcError, match=f"; the value passed as '{name}' is traced: "
                                                 r"[^\n]*\n  at [^\n]*test_review_s22u\.py"):
            call()
    # names that meet (a parameter "tangent_x" beside x's tangent) stay apart: values as before
    h = lambda x, tangent_x: gc.sin(x) * tangent_x  # noqa: E731
    np.testing.assert_allclose(gc.jvp(h, (x, 2.0 * x), (x, x))[1], np.cos(1.0) * 2 + np.sin(1.0))
    y, f_jvp = gc.linearize(h, x, 2.0 * x)
    np.testing.assert_allclose(f_jvp(x, x), np.full(3, np.cos(1.0) * 2 + np.sin(1.0)))


def test_sequential_slices_and_appends_as_pytorchs():
    # model[:-1] (a feature extractor) raised TypeError: '<=' not supported between 'int' and
    # 'slice'; ModuleList had no append
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(2, 3, dtype="float64"), gc.nn.ReLU(),
                             gc.nn.Linear(3, 1, dtype="float64"))
    x = np.arange(4.0).reshape(2, 2)
    features = model[:-1]
    assert isinstance(features, gc.nn.Sequential) and len(features) == 2
    assert features[0] is model[0]  # the same modules, shared
    w, b = model[0].weight.data, model[0].bias.data
    np.testing.assert_allclose(features(gc.tensor(x)).data, np.maximum(x @ w + b, 0.0),
                               atol=1e-15)
    np.testing.assert_allclose(gc.compile(lambda x: features(x))(x),
                               np.maximum(x @ w + b, 0.0), atol=1e-15)
    # a Sequential slice keeps its items' keys, as torch's (session 36)
    assert [n for n, _ in model[2:].named_parameters()] == ["2.weight", "2.bias"]
    assert model[0].weight.name == "0.weight"  # the model's own names are left alone
    layers = gc.nn.ModuleList([])
    for _ in range(2):
        layers.append(gc.nn.Linear(2, 2))
    assert len(layers) == 2 and [n for n, _ in layers.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]


def test_a_plan_traced_before_an_append_is_not_reused_after_it():
    model = gc.nn.Sequential(gc.nn.Linear(2, 2, dtype="float64"))
    f = gc.compile(lambda x: model(x))
    x = np.ones((1, 2))
    f(x)
    model.append(gc.nn.Linear(2, 1, dtype="float64"))
    np.testing.assert_allclose(f(x), model(gc.tensor(x)).data, atol=1e-15)
    assert f(x).shape == (1, 1)


def test_bind_takes_frozen_parameters_and_trains_them_once_unfrozen_as_torch():
    # bind(model) refused a model with a frozen layer ("0.weight is not a tensor that
    # requires grad"), where torch.optim takes every parameter and skips those without grad
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(2, 3, dtype="float64"), gc.nn.ReLU(),
                             gc.nn.Linear(3, 1, dtype="float64"))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.params().items()}
    for p in model[0].parameters():
        p.requires_grad = False
    for k in ("0.weight", "0.bias"):
        t[k].requires_grad_(False)
    opt = gc.optim.AdamW(lr=0.1).bind(model)
    topt = torch.optim.AdamW(t.values(), lr=0.1)
    x = np.random.default_rng(0).normal(size=(4, 2))
    for i in range(4):
        if i == 2:  # unfrozen: its Adam count starts at its first update, as torch's
            for p in model[0].parameters():
                p.requires_grad = True
            for k in ("0.weight", "0.bias"):
                t[k].requires_grad_(True)
        gc.sum(model(gc.tensor(x)) ** 2).backward()
        opt.step()
        opt.zero_grad()
        h = torch.relu(torch.tensor(x) @ t["0.weight"] + t["0.bias"]) @ t["2.weight"] + t["2.bias"]
        topt.zero_grad()
        (h ** 2).sum().backward()
        topt.step()
        for n, p in model.named_parameters():
            np.testing.assert_allclose(p.data, t[n].detach().numpy(), atol=1e-14)


def test_scan_over_a_symbolic_axis_is_one_plan_for_every_length():
    # gc.scan read its length with int(): a sequence axis declared polymorphic ("(t, b, 3)")
    # was refused ("the symbolic dimension t has no value while tracing"), so an RNN needed a
    # compilation per sequence length
    rng = np.random.default_rng(0)
    params = {"wx": rng.normal(size=(3, 4)) * 0.5, "wh": rng.normal(size=(4, 4)) * 0.5}
    drop = gc.nn.Dropout(0.25)

    def loss(p, xs, key):
        def cell(h, x):
            h = gc.tanh(x @ p["wx"] + h @ p["wh"])
            return h, drop(h)
        with gc.nn.rng_key(key):
            h, hs = gc.scan(cell, gc.zeros((xs.shape[1], 4), "float64"), xs)
        return gc.mean(gc.sum(h ** 2, axis=1)) + 0.1 * gc.sum(hs)

    poly = gc.compile(gc.value_and_grad(loss), polymorphic_shapes=(None, "(t, b, 3)", None))
    concrete = gc.compile(gc.value_and_grad(loss))
    for t, b in [(5, 2), (1, 3), (7, 1)]:
        xs, key = rng.normal(size=(t, b, 3)), np.int64(t)
        value, grads = poly(params, xs, key)
        expected, expected_grads = concrete(params, xs, key)
        assert float(value) == float(expected)  # the same masks and the same arithmetic
        for k in params:
            np.testing.assert_array_equal(grads[k], expected_grads[k])
    assert poly.recompiles == []
    drop.eval()  # without dropout, against torch
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xs = rng.normal(size=(6, 2, 3))
    value, grads = poly(params, xs, np.int64(0))
    h = torch.zeros(2, 4, dtype=torch.float64)
    hs = []
    for x in torch.tensor(xs):
        h = torch.tanh(x @ tp["wx"] + h @ tp["wh"])
        hs.append(h)
    tl = (h ** 2).sum(1).mean() + 0.1 * torch.stack(hs).sum()
    tl.backward()
    assert abs(float(value) - tl.item()) < 1e-12
    for k in params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_class_target_out_of_range_gives_nan_not_a_silent_zero(reduction):
    # labels 1..C instead of 0..C-1 (or -1 for padding): the all-False one-hot row of a target
    # outside [0, C) added 0 to the loss, a plausible number PyTorch refuses ("Target 2 is
    # out of bounds"); now NaN, as JAX's out-of-range gather fills. ignore_index still counts
    # for nothing.
    logits = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    ce = gc.compile(lambda l, t: gc.cross_entropy(l, t, reduction=reduction))
    for bad in (2, -1):
        targets = np.array([0, bad, 1])
        for value in (ce(logits, targets),
                      gc.cross_entropy(gc.tensor(logits), targets, reduction=reduction).data,
                      gc.cross_entropy(gc.tensor(logits), targets, weight=np.ones(2),
                                       reduction=reduction).data):
            value = np.atleast_1d(value)
            assert np.isnan(value[1] if reduction == "none" else value[0])
    targets = np.array([0, -100, 1])
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets),
                                                 reduction=reduction).numpy()
    np.testing.assert_allclose(ce(logits, targets), expected, atol=1e-15)
    g = gc.grad(lambda l: gc.sum(gc.cross_entropy(l, targets, reduction=reduction)))(logits)
    t = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(t, torch.tensor(targets),
                                      reduction=reduction).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), atol=1e-15)


def test_load_state_dict_refuses_a_wrong_shape_in_one_line_loading_nothing():
    # a ValueError with no line of the user's, raised after the earlier parameters had been
    # overwritten: the model was left half loaded
    model = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.Linear(3, 1))
    before = {k: v.copy() for k, v in model.params().items()}
    state = {k: v + 1.0 for k, v in before.items()}
    state["1.bias"] = np.zeros(4, np.float32)
    assert_one_line_error(lambda: model.load_state_dict(state),
                          "load_state_dict: 1.bias has shape (4,), the model's is (1,)",
                          "test_review_s22u.py")
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, before[k])
    assert_one_line_error(lambda: model.load_state_dict({}), "load_state_dict: the state does "
                          "not match the model: missing ['0.bias',", "test_review_s22u.py")


def test_a_call_whose_shapes_bind_no_symbols_names_the_callers_line():
    # the binding errors of a polymorphic plan named the inputs but no line of the user's
    f = gc.compile(lambda x, y: x * y, polymorphic_shapes=("(b,)", "(b,)"))
    assert_one_line_error(lambda: f(np.ones(6), np.ones(5)),
                          "inputs 'x' and 'y' disagree on dimension b", "test_review_s22u.py")
    assert_one_line_error(lambda: f(np.ones(0), np.ones(0)),
                          "input 'x' axis 0 has size 0, which gives b no value >= 1",
                          "test_review_s22u.py")
