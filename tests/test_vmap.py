"""graphc.vmap: every op has a batching rule (or says why it loops), and vmap of every op in
the op table equals a Python loop over the examples, stacked, with batched and unbatched
arguments mixed; per-example gradients; vmap under compile, grad and vmap; its errors."""
import functools

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from ir.ops.batching import BATCH_RULES, LOOPED, NOT_BATCHED
from ir.ops.registry import REGISTRY, OpDef

from opcases import CASES

BATCH = 3
IDS = [c.name for c in CASES]


def uncovered(registry) -> list:
    """Ops with neither a batching rule nor a stated reason to loop or never be batched."""
    explained = {**{k: v for k, v in LOOPED.items() if v}, **{k: v for k, v in
                                                               NOT_BATCHED.items() if v}}
    return sorted(name for name in registry if name not in BATCH_RULES and name not in explained)


def test_every_registered_op_has_a_batching_rule_or_a_stated_fallback():
    assert uncovered(REGISTRY) == [], "ops without a batching rule (ir/ops/batching.py)"
    assert not set(BATCH_RULES) & set(LOOPED), "an op both has a rule and loops"
    assert set(BATCH_RULES) | set(LOOPED) | set(NOT_BATCHED) <= set(REGISTRY)


def test_an_op_without_a_rule_is_named():
    fake = dict(REGISTRY, frobnicate=OpDef("frobnicate", None, None))
    assert uncovered(fake) == ["frobnicate"]


# ---- vmap of every op case against a loop over the examples ---------------------------------
def examples(case, seed):
    """BATCH examples of the case's inputs (different values each)."""
    rngs = [np.random.default_rng([seed, b]) for b in range(BATCH)]
    return [[mk(rng) for mk in case.inputs] for rng in rngs]


def axes_configs(case):
    """in_axes mixes: everything batched along axis 0; along axis 1 (axis 0 for scalars); only
    the first argument batched; only the last one."""
    ndims = [np.ndim(x) for x in examples(case, 0)[0]]
    n = len(ndims)
    configs = {"axis0": (0,) * n, "axis1": tuple(min(1, d) for d in ndims)}
    if n > 1:
        configs["first_only"] = (0,) + (None,) * (n - 1)
        configs["last_only"] = (None,) * (n - 1) + (0,)
    return configs


def stacked(per_example, axes):
    """The batched arguments: each batched input stacked along its axis; an unbatched one is
    example 0's value, which every example then shares."""
    out = []
    for i, axis in enumerate(axes):
        column = [ex[i] for ex in per_example]
        out.append(column[0] if axis is None else np.stack(column, axis))
    return out


def looped(fn, per_example, axes):
    results = []
    for ex in per_example:
        args = [ex[i] if axis is not None else per_example[0][i] for i, axis in enumerate(axes)]
        results.append(np.asarray(fn(*[gc.tensor(a) for a in args])))
    return np.stack(results)


CASE_CONFIGS = [(case, name, axes) for case in CASES
                for name, axes in axes_configs(case).items()]


@pytest.mark.parametrize("case,config,axes", CASE_CONFIGS,
                         ids=[f"{c.name}-{n}" for c, n, _ in CASE_CONFIGS])
def test_vmap_of_each_op_equals_a_loop_over_examples(case, config, axes):
    per_example = examples(case, 0)
    out = gc.vmap(case.fn, in_axes=axes)(*stacked(per_example, axes))
    expected = looped(case.fn, per_example, axes)
    assert np.shape(out) == expected.shape
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)


GRAD_CASES = [c for c in CASES if c.grad]


def projected_loss(case, example):
    weights = np.random.default_rng(1).normal(size=np.shape(case.reference(*example)))

    def loss(*args):
        return gc.sum(case.fn(*args) * weights)
    return loss


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_per_example_gradients_of_each_op_equal_a_loop(case):
    """vmap(grad(f)) batches the gradient rules' ops (scatter_add, pad_slice, the layer_norm
    and softmax gradients, ...) with the first argument batched and the rest shared."""
    per_example = examples(case, 0)
    loss = projected_loss(case, per_example[0])
    wrt = 0 if 0 not in case.ints else next(i for i in range(len(case.inputs))
                                            if i not in case.ints)
    axes = (0,) + (None,) * (len(case.inputs) - 1)
    out = gc.vmap(gc.grad(loss, argnums=wrt), in_axes=axes)(*stacked(per_example, axes))
    expected = np.stack([gc.grad(loss, argnums=wrt)(ex[0], *per_example[0][1:])
                         for ex in per_example])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_inside_compile_equals_eager(case):
    per_example = examples(case, 1)
    axes = axes_configs(case)["axis1"]
    args = stacked(per_example, axes)
    batched = gc.vmap(case.fn, in_axes=axes)
    np.testing.assert_allclose(gc.compile(batched)(*args), np.asarray(batched(*args)),
                               rtol=1e-10, atol=1e-12)


# ---- per-example gradients of models ----------------------------------------------------------
def _close(a, b, tol=1e-12):
    for key in b:
        np.testing.assert_allclose(np.asarray(a[key]), b[key], rtol=tol, atol=tol, err_msg=key)


def _stacked_loop_of_grad(loss, params, xs, ys):
    """The reference: grad(loss) of each example in a loop, stacked per parameter. One
    gradient per example (the dict comprehension over the parameters took every example's
    gradient again for each parameter: 28 x 4 gradients for the tiny GPT's 28 parameters)."""
    grad = gc.grad(loss)
    per_example = [grad(params, x, y) for x, y in zip(xs, ys)]
    return {k: np.stack([g[k] for g in per_example]) for k in params}


def test_per_example_gradients_of_an_mlp_equal_a_loop_of_grad():
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(5, 7, dtype="float64"), gc.nn.GELU(),
                             gc.nn.LayerNorm(7, dtype="float64"),
                             gc.nn.Linear(7, 3, dtype="float64"))
    params = model.params()

    def loss(p, x, y):
        return gc.cross_entropy(model.apply(p, x), y)

    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    per_example = gc.vmap(gc.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert set(per_example) == set(params)
    expected = _stacked_loop_of_grad(loss, params, xs, ys)
    _close(per_example, expected)
    compiled = gc.compile(gc.vmap(gc.grad(loss), in_axes=(None, 0, 0)))(params, xs, ys)
    _close(compiled, expected)


def test_per_example_gradients_of_the_tiny_gpt_equal_a_loop_of_grad():
    from graphc.models.gpt import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=16, block_size=8, batch_size=1,
                    dtype="float64")
    model = GPT(cfg, seed=3)
    params = model.params()

    def loss(p, idx, targets):
        return model.apply(p, idx, targets)

    rng = np.random.default_rng(1)
    xs = rng.integers(0, cfg.vocab_size, (4, 1, cfg.block_size))  # 4 examples of (1, T)
    ys = rng.integers(0, cfg.vocab_size, (4, 1, cfg.block_size))
    per_example = gc.compile(gc.vmap(gc.grad(loss), in_axes=(None, 0, 0)))(params, xs, ys)
    expected = _stacked_loop_of_grad(loss, params, xs, ys)
    _close(per_example, expected)
    # their mean is the gradient of the mean loss over the batch
    whole = gc.grad(lambda p: loss(p, xs[:, 0], ys[:, 0]))(params)
    _close({k: per_example[k].mean(0) for k in params}, whole)


# ---- composition ------------------------------------------------------------------------------
def test_grad_of_a_vmapped_function_equals_the_sum_of_per_example_gradients():
    rng = np.random.default_rng(2)
    w, xs = rng.normal(size=(3, 4)), rng.normal(size=(5, 2, 3))

    def f(w, x):
        return gc.sum(gc.softmax(x @ w, -1) ** 2)

    total = gc.grad(lambda w: gc.sum(gc.vmap(f, in_axes=(None, 0))(w, xs) * np.arange(5.0)))(w)
    expected = sum(k * gc.grad(f)(w, x) for k, x in enumerate(xs))
    np.testing.assert_allclose(total, expected, rtol=1e-12, atol=1e-12)


def test_eager_backward_through_vmap_reaches_closed_over_tensors():
    rng = np.random.default_rng(3)
    w = gc.tensor(rng.normal(size=(3, 2)), requires_grad=True)
    xs = rng.normal(size=(4, 3))
    out = gc.vmap(lambda x: gc.tanh(x @ w))(xs)
    assert isinstance(out, gc.Tensor)
    gc.sum(out * out).backward()
    expected = gc.grad(lambda w: gc.sum(gc.tanh(xs @ w) ** 2))(w.data)
    np.testing.assert_allclose(w.grad, expected, rtol=1e-12)


def test_nested_vmap_is_an_outer_product_of_batches():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    dot = lambda u, v: gc.sum(u * v)  # noqa: E731
    table = gc.vmap(gc.vmap(dot, in_axes=(None, 0)), in_axes=(0, None))(a, b)
    np.testing.assert_allclose(np.asarray(table), a @ b.T, rtol=1e-12)
    traced = gc.compile(gc.vmap(gc.vmap(dot, in_axes=(None, 0)), in_axes=(0, None)))(a, b)
    np.testing.assert_allclose(traced, a @ b.T, rtol=1e-12)


def test_vmap_closing_over_values_of_an_enclosing_trace():
    rng = np.random.default_rng(5)
    w, xs = rng.normal(size=(3, 2)), rng.normal(size=(4, 6, 3))

    @gc.compile
    def f(w, xs):
        scale = gc.sum(w)  # a value of the enclosing graph, read inside the vmapped function
        return gc.vmap(lambda x: gc.vmap(lambda row: gc.relu(row @ w) * scale)(x))(xs)

    np.testing.assert_allclose(f(w, xs), np.maximum(xs @ w, 0) * w.sum(), rtol=1e-12)


def test_out_axes_and_pytrees():
    rng = np.random.default_rng(6)
    xs = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(4, 2))}  # b batched along 1

    def f(d, c):
        return {"sum": d["a"] * 2.0 + c, "outer": gc.expand_dims(d["a"], 1) * d["b"]}, c

    out, c = gc.vmap(f, in_axes=({"a": 1, "b": 0}, None),
                     out_axes=({"sum": 0, "outer": -1}, None))(xs, 1.5)
    assert c == 1.5
    np.testing.assert_allclose(np.asarray(out["sum"]), xs["a"].T * 2.0 + 1.5)
    outer = np.stack([xs["a"][:, k][:, None] * xs["b"][k] for k in range(4)], -1)
    np.testing.assert_allclose(np.asarray(out["outer"]), outer)
    # an output that does not depend on the batch is broadcast along out_axes
    const = gc.vmap(lambda x: (x, gc.ones((2,), "float64")), out_axes=1)(xs["b"])
    np.testing.assert_allclose(np.asarray(const[1]), np.ones((2, 4)))


def test_numpy_integers_in_in_axes_and_out_axes_are_axes_as_ints():
    # np.int64(1) was refused ("in_axes must be an int, None or a tuple"), where 1 works
    xs = np.arange(6.0).reshape(2, 3)
    rows = np.array([[0.0, 6.0], [2.0, 8.0], [4.0, 10.0]])  # xs.T * 2: mapped over axis 1
    for in_axes in (np.int64(1), np.int32(-1), (np.int64(1),), [np.uint8(1)]):
        np.testing.assert_array_equal(gc.vmap(lambda x: x * 2.0, in_axes=in_axes)(xs), rows)
    np.testing.assert_array_equal(
        gc.vmap(lambda x: x * 2.0, in_axes=np.int64(1), out_axes=np.int64(1))(xs), xs * 2.0)
    out, c = gc.compile(gc.vmap(lambda d, c: ({"s": d["a"] * 2.0 + c}, c),
                                in_axes=({"a": np.int64(1)}, None),
                                out_axes=({"s": np.int16(0)}, None)))({"a": xs}, 1.5)
    np.testing.assert_array_equal(out["s"], rows + 1.5)
    assert c == 1.5
    with pytest.raises(gc.GraphcError, match="in_axes must be an int, None or a tuple with "
                                             "one entry per argument, got a bool"):
        gc.vmap(lambda x: x, in_axes=np.bool_(True))(xs)  # a bool is no axis


def test_vmap_of_a_custom_vjp_function_keeps_its_gradient_rule():
    @gc.custom_vjp
    def clip_gradient(x):
        return x * 1.0

    clip_gradient.defvjp(lambda x: (clip_gradient(x), None),
                         lambda _, g: (gc.minimum(gc.maximum(g, -0.5), 0.5),))
    xs = np.linspace(-2.0, 2.0, 6).reshape(3, 2)
    weights = np.array([[3.0, 0.1], [-0.2, -3.0], [1.0, 0.25]])
    grad = gc.grad(lambda x: gc.sum(gc.vmap(clip_gradient)(x) * weights))(xs)
    np.testing.assert_allclose(grad, np.clip(weights, -0.5, 0.5))
    per_example = gc.vmap(gc.grad(lambda x, w: gc.sum(clip_gradient(x) * w)))(xs, weights)
    np.testing.assert_allclose(np.asarray(per_example), np.clip(weights, -0.5, 0.5))


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)])
@pytest.mark.parametrize("kind", ["custom_vjp", "custom_jvp"])
def test_eager_backward_through_vmap_of_a_custom_gradient_function(kind, in_axes):
    # eagerly, vmap runs the rule in a trace of its own where an unbatched (in_axes None)
    # tensor stays the eager tensor: bwd's cotangent for it (a node) was turned into a numpy
    # array ("a symbolic value cannot be ..."), and a custom_jvp rule's placeholder tangents
    # were eager zeros ("gradients() needs symbolic values"), with any in_axes. The rules are
    # 3 and 5 times the derivatives of a * w, so only the rule gives these values.
    if kind == "custom_vjp":
        scaled = gc.custom_vjp(lambda a, w: a * w)
        scaled.defvjp(lambda a, w: (a * w, (a, w)), lambda r, g: (3.0 * g * r[1], 5.0 * g * r[0]))
    else:
        scaled = gc.custom_jvp(lambda a, w: a * w)
        scaled.defjvp(lambda p, t: (p[0] * p[1], 3.0 * t[0] * p[1] + 5.0 * t[1] * p[0]))
    rows = np.array([[0.3, -1.2, 2.0], [0.5, 0.25, -1.5]])
    one = np.array([1.5, -0.5, 4.0])
    a_value = rows if in_axes[0] == 0 else one
    w_value = rows[::-1] if in_axes[1] == 0 else one
    a, w = gc.tensor(a_value, requires_grad=True), gc.tensor(w_value, requires_grad=True)
    gc.sum(gc.vmap(scaled, in_axes=in_axes)(a, w)).backward()
    w_rows, a_rows = np.broadcast_to(w_value, (2, 3)), np.broadcast_to(a_value, (2, 3))
    want_a, want_w = 3.0 * w_rows, 5.0 * a_rows  # per example; summed where one is shared
    np.testing.assert_allclose(np.asarray(a.grad), want_a if in_axes[0] == 0 else want_a.sum(0))
    np.testing.assert_allclose(np.asarray(w.grad), want_w if in_axes[1] == 0 else want_w.sum(0))
    traced = gc.grad(lambda a, w: gc.sum(gc.vmap(scaled, in_axes=in_axes)(a, w)),
                     argnums=(0, 1))(a_value, w_value)
    np.testing.assert_allclose(np.asarray(a.grad), traced[0])
    np.testing.assert_allclose(np.asarray(w.grad), traced[1])


def test_grad_of_vmap_with_an_unbatched_python_number_used_as_a_python_value():
    # gc.grad(f)(xs, 2.0) traces 2.0; vmap(in_axes=(0, None)) made it an input of its own graph
    # that a refused value could not be followed out of, so grad did not retry with the
    # number (as it does without vmap): a custom_vjp's nondiff argument was "a traced value",
    # range(n) "a number passed to cond as an operand". JAX's grad passes the number as it
    # is and its vmap passes an unbatched Python value through: the rules' values, by hand.
    xs = np.array([0.5, -1.25, 2.0])

    @functools.partial(gc.custom_vjp, nondiff_argnums=(1,))
    def scaled_sin(x, k):
        return gc.sin(x) * k
    scaled_sin.defvjp(lambda x, k: (gc.sin(x) * k, x),
                      lambda k, x, g: (g * gc.cos(x) * k * 10.0,))  # 10 times the derivative

    @gc.custom_vjp
    def power(x, n):  # n used as a Python int, not in nondiff_argnums
        for _ in range(n):
            x = x * x
        return x
    power.defvjp(lambda x, n: (power(x, n), x), lambda x, g: (g * 100.0, None))

    grad = gc.grad(lambda x, k: gc.sum(gc.vmap(scaled_sin, in_axes=(0, None))(x, k)))
    np.testing.assert_allclose(grad(xs, 2.0), 20.0 * np.cos(xs), rtol=1e-14)
    np.testing.assert_allclose(grad(xs, 0.5), 5.0 * np.cos(xs), rtol=1e-14)  # the new number
    np.testing.assert_array_equal(
        gc.grad(lambda x, n: gc.sum(gc.vmap(power, in_axes=(0, None))(x, n)))(xs, 2), [100.0] * 3)
    np.testing.assert_allclose(  # a plain function: d/dx x**3, the branch taken in Python
        gc.grad(lambda x, n: gc.sum(gc.vmap(lambda a, m: a ** m if m > 1 else a,
                                            in_axes=(0, None))(x, n)))(xs, 3), 3.0 * xs ** 2)
    # traced by gc.compile it stays refused, naming the argument as without vmap
    with pytest.raises(GraphcError) as exc:
        gc.compile(grad)(xs, 2.0)
    assert _one_line(exc).endswith("the value passed as 'k' is traced: to use a Python number or "
                                   "bool as a Python value, list its position in static_argnums")


# ---- errors ---------------------------------------------------------------------------------
def _one_line(exc_info):
    return str(exc_info.value).splitlines()[0]


def test_mismatched_batch_sizes_name_the_arguments():
    def f(xs, ys):
        return xs + ys

    with pytest.raises(GraphcError) as exc:
        gc.vmap(f)(np.ones((4, 2)), np.ones((5, 2)))
    assert _one_line(exc) == ("vmap: ys has batch size 5 (axis 0) but xs has 4 (axis 0); every "
                              "batched argument needs the same size")


@pytest.mark.parametrize("call, message", [
    (lambda: gc.vmap(gc.exp, in_axes=2)(np.ones((2, 3))),
     "vmap: in_axes 2 is out of range for x, which has 2 axes"),
    (lambda: gc.vmap(lambda a, b: a * b, in_axes=(0,))(np.ones(2), np.ones(2)),
     "vmap: in_axes has 1 entries but the function was called with 2 arguments"),
    (lambda: gc.vmap(lambda a: a, in_axes=None)(np.ones(2)),
     "vmap: in_axes maps no argument (every one is None); batch at least one, or give "
     "axis_size"),
    (lambda: gc.vmap(lambda a: a, out_axes=None)(np.ones(2)),
     "vmap: output 0 depends on the batch, but out_axes gives it None"),
    (lambda: gc.vmap(lambda a, s: a * s)(np.ones(2), 3.0),
     "vmap: s is a float, which has no axis 0 to map over; give it in_axes None"),
])
def test_vmap_errors_are_one_line(call, message):
    with pytest.raises(GraphcError) as exc:
        call()
    assert _one_line(exc) == message


def test_vmap_of_a_model_with_dropout_eager_and_compiled():
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(4, 6, dtype="float64"), gc.nn.ReLU(),
                             gc.nn.Dropout(0.5), gc.nn.Linear(6, 2, dtype="float64"))
    xs = np.random.default_rng(7).normal(size=(5, 4))
    model.eval()
    expected = model(gc.tensor(xs)).data
    np.testing.assert_allclose(np.asarray(gc.vmap(model)(xs)), expected, rtol=1e-12)
    compiled = gc.compile(lambda xs: gc.vmap(model)(xs))
    np.testing.assert_allclose(compiled(xs), expected, rtol=1e-12)
    gc.sum(gc.vmap(model)(xs) ** 2).backward()  # the layers' Parameters get gradients
    assert np.abs(model[0].weight.grad).sum() > 0
    model.train()  # the Dropout's flag read inside vmap guards the compiled plan
    assert not np.array_equal(compiled(xs), expected)
    assert compiled.recompiles == ["recompiling lambda (compilation 2): Dropout 2.training: "
                                   "False -> True"]


def test_a_batch_of_dropout_seeds_draws_one_mask_per_example():
    seeds, x = np.arange(4, dtype=np.int64), np.ones((4, 8))
    masks = gc.vmap(lambda x, s: gc.dropout(x, 0.5, s, salt=1))(x, seeds)
    expected = np.stack([gc.dropout(gc.tensor(x[i]), 0.5, seeds[i], salt=1).data
                         for i in range(4)])
    np.testing.assert_array_equal(np.asarray(masks), expected)
    assert len({m.tobytes() for m in expected}) == 4


def test_remat_jvp_and_hessian_under_vmap():
    rng = np.random.default_rng(8)
    xs, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))

    def f(w, x):
        return gc.sum(gc.tanh(x @ w) ** 2)

    block = gc.remat(lambda x, w: gc.tanh(x @ w))
    per_example = gc.vmap(gc.grad(lambda w, x: gc.sum(block(x, w) ** 2)), in_axes=(None, 0))
    expected = np.stack([gc.grad(f)(w, x) for x in xs])
    np.testing.assert_allclose(np.asarray(per_example(w, xs)), expected, rtol=1e-12, atol=1e-14)
    _, tangent = gc.jvp(lambda w: gc.vmap(f, in_axes=(None, 0))(w, xs), (w,), (np.ones_like(w),))
    np.testing.assert_allclose(tangent, expected.sum((1, 2)), rtol=1e-12)
    cube = lambda x: gc.sum(gc.tanh(x) ** 3)  # noqa: E731
    np.testing.assert_allclose(np.asarray(gc.vmap(gc.hessian(cube))(xs)),
                               np.stack([gc.hessian(cube)(x) for x in xs]), rtol=1e-12)


def test_keyword_arguments_are_passed_through_unbatched():
    xs = np.arange(6.0).reshape(3, 2)
    out = gc.vmap(lambda x, scale=1.0, bias=None: x * scale + bias)(xs, scale=2.0,
                                                                     bias=np.ones(2))
    np.testing.assert_allclose(np.asarray(out), xs * 2.0 + 1.0)


def test_an_op_without_a_rule_is_named_with_the_line_that_called_it(monkeypatch):
    monkeypatch.delitem(BATCH_RULES, "tanh")
    with pytest.raises(GraphcError) as exc:
        gc.vmap(lambda x: gc.tanh(x) * 2.0)(np.ones((2, 3)))
    assert _one_line(exc) == "vmap: op 'tanh' has no batching rule (ir/ops/batching.py)"
    assert "test_vmap.py" in str(exc.value)


def test_a_rule_giving_the_wrong_shape_is_caught(monkeypatch):
    monkeypatch.setitem(BATCH_RULES, "exp", lambda args, batched, size: gc.exp(args[0])[0])
    with pytest.raises(GraphcError) as exc:
        gc.vmap(gc.exp)(np.ones((2, 3)))
    assert _one_line(exc) == "vmap: the batching rule of exp gave float64[3], expected " \
                             "float64[2, 3]"


@pytest.mark.parametrize("axis", [0, 1])
def test_windows_at_a_start_per_example(axis):
    """dynamic_slice / dynamic_update_slice with a batch of starts (one clamped) gather and
    write each example's own window, and their per-example gradients match a loop."""
    rng = np.random.default_rng(9)
    a, u = rng.normal(size=(4, 6, 5)), rng.normal(size=(4, 6, 2))
    if axis == 0:
        u = rng.normal(size=(4, 2, 5))
    starts = np.array([0, 3, 5, -1], np.int64)

    def window(a, s):
        return gc.dynamic_slice(a, s, 2, axis=axis)

    def put(a, u, s):
        return gc.dynamic_update_slice(a * 2.0, u, s, axis=axis)

    for fn, args in ((window, (a, starts)), (put, (a, u, starts))):
        out = gc.vmap(fn)(*args)
        expected = np.stack([np.asarray(fn(*[gc.tensor(x[b]) for x in args]))
                             for b in range(4)])
        np.testing.assert_array_equal(np.asarray(out), expected)
        loss = lambda *xs: gc.sum(fn(*xs) ** 2)  # noqa: E731
        grads = gc.vmap(gc.grad(loss))(*args)
        np.testing.assert_allclose(np.asarray(grads),
                                   np.stack([gc.grad(loss)(*[x[b] for x in args])
                                             for b in range(4)]), rtol=1e-12)


def test_an_unmapped_weak_number_keeps_its_value_and_weak_type_eagerly():
    """Eager vmap made an unmapped weak number (-gc.sqrt(4.0), np.float32(-2.0)) an input of
    its traced graph, a value unknown there: a negative gaussian_nll_loss var gave NaN where
    the call without vmap, and vmap of a Python -2.0, refuse it, and float(v) was refused.
    A closed-over -gc.sqrt(4.0) lost its weak type: it met float64 rows as float32, refused.
    Such a number now reaches fun as the value it is (a weak constant of the trace)."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)

    def loss(x, v):
        return gc.gaussian_nll_loss(x, x * 0, v)
    for v in (-gc.sqrt(4.0), np.float32(-2.0), np.float64(-2.0)):
        with pytest.raises(GraphcError) as exc:
            gc.vmap(loss, in_axes=(0, None))(x, v)
        assert _one_line(exc) == "gaussian_nll_loss: var must be >= 0, got -2.0"
    for v in (gc.sqrt(4.0), np.float64(2.0)):
        got = gc.vmap(loss, in_axes=(0, None))(x, v)
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.asarray(got), np.mean(0.5 * (np.log(2) + x ** 2 / 2), 1),
                                   rtol=1e-6)
    got = gc.vmap(lambda x, v: x * float(v), in_axes=(0, None))(x, -gc.sqrt(4.0))
    np.testing.assert_array_equal(np.asarray(got), -2 * x)
    rows = x.astype(np.float64) / 3
    v = -gc.sqrt(2.0)
    for got in (gc.vmap(lambda r, v: r * v, in_axes=(0, None))(rows, v),
                gc.vmap(lambda r: r * v)(rows)):
        assert got.dtype == np.float64  # as rows * v without vmap: the float32 root widened
        np.testing.assert_array_equal(np.asarray(got), rows * np.float64(np.float32(-2 ** 0.5)))
    # a gradient with respect to it inside vmap: a weak value of its own dtype, as eagerly
    grads = gc.vmap(gc.grad(lambda r, h: gc.sum(r * r) * h["s"], argnums=1),
                    in_axes=(0, None))(x, {"s": gc.sqrt(4.0)})
    assert np.asarray(grads["s"]).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(grads["s"]), [5.0, 25.0])


def test_what_fun_computes_from_unmapped_concrete_values_stays_concrete_eagerly():
    """892f09b kept an unmapped weak number's own value, not that of what fun computes from
    it: in an eager vmap an op on concrete operands alone became a node of vmap's graph, its
    value unknown, so gaussian_nll_loss(r, r * 0, -v) was NaN (refused without vmap and by
    torch.func.vmap) and float(v * 2) and `if -v < 0` were refused as symbolic (torch.func.vmap
    and jax.vmap compute them). Such an op now runs eagerly (ir.ops.registry.apply)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    w = -gc.sqrt(4.0)
    for call in (
            lambda: gc.vmap(lambda r, v: gc.gaussian_nll_loss(r, r * 0, -v),
                            in_axes=(0, None))(x, gc.sqrt(4.0)),
            lambda: gc.vmap(lambda r, v: gc.gaussian_nll_loss(r, r * 0, v - 4),
                            in_axes=(0, None))(x, np.float32(2)),
            lambda: gc.vmap(lambda r: gc.gaussian_nll_loss(r, r * 0, w * 1))(x)):
        with pytest.raises(GraphcError) as exc:
            call()
        assert _one_line(exc) == "gaussian_nll_loss: var must be >= 0, got -2.0"
    tx, tv = torch.from_numpy(x), torch.tensor(2.0)
    for fun, oracle in (
            (lambda r, v: r * float(v * 2), lambda r, v: r * float(v * 2)),
            (lambda r, v: r if -v < 0 else -r, lambda r, v: r if -v < 0 else -r),
            (lambda r, v: gc.gaussian_nll_loss(r, r * 0, v * 1),
             lambda r, v: torch.nn.functional.gaussian_nll_loss(r, r * 0, v * torch.ones(2)))):
        got = gc.vmap(fun, in_axes=(0, None))(x, gc.sqrt(4.0))
        want = torch.func.vmap(oracle, in_dims=(0, None))(tx, tv)
        assert np.asarray(got).dtype == np.float32
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)
    got = gc.vmap(gc.vmap(lambda a, v: a * float(-v), in_axes=(0, None)),
                  in_axes=(0, None))(x[:, :, None], gc.sqrt(4.0))  # vmap of vmap, eagerly
    np.testing.assert_array_equal(np.asarray(got), -2 * x[:, :, None])
    # a closed-over leaf: p * 2, computed now, is on the tape that backward() follows to p
    p, tp = gc.tensor(np.float32(3.0), requires_grad=True), torch.tensor(3.0, requires_grad=True)
    gc.sum(gc.vmap(lambda r: r * (p * 2))(x)).backward()
    torch.func.vmap(lambda r: r * (tp * 2))(tx).sum().backward()
    assert float(p.grad) == tp.grad.item() == 20.0


def test_an_unmapped_numpy_float_reaches_fun_as_it_is_eagerly():
    """Eager vmap gave fun an unmapped numpy float scalar as a weak stand-in of the rows'
    dtype (a float64 WeakTensor beside float64 rows), and ops on it stayed traced, values
    unknown: gaussian_nll_loss(r, r * 0, v - 4) was NaN where a loop over the rows refuses
    it, float(v * 2) was refused as symbolic, and np.log(v) was a raw TypeError ("operand
    'WeakTensor' does not support ufuncs"). fun now gets the number as eager code does."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])  # float64 rows
    for v in (np.float32(2), np.float64(2), np.float16(2)):
        with pytest.raises(GraphcError) as exc:
            gc.vmap(lambda r, v: gc.gaussian_nll_loss(r, r * 0, v - 4), in_axes=(0, None))(x, v)
        assert _one_line(exc) == "gaussian_nll_loss: var must be >= 0, got -2.0"
        for fun, want in (
                (lambda r, v: gc.gaussian_nll_loss(r, r * 0, v * 1),
                 np.mean(0.5 * (np.log(2.0) + x ** 2 / 2), 1)),
                (lambda r, v: r * (v - 1.5), x * 0.5),
                (lambda r, v: r * float(v * 2) + (1 if -v < 0 else 0), x * 4 + 1),
                (lambda r, v: r * np.log(v), x * float(np.log(v)))):
            got = gc.vmap(fun, in_axes=(0, None))(x, v)
            assert got.dtype == np.float64
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-15)
        for fun in (lambda r, v: gc.gaussian_nll_loss(r, r * 0, v * 1),
                    lambda r, v: r * (v - 1.5)):  # compiled vmap gives the same values
            np.testing.assert_array_equal(
                gc.compile(gc.vmap(fun, in_axes=(0, None)))(x, v),
                np.asarray(gc.vmap(fun, in_axes=(0, None))(x, v)))
    # a result computed from the number alone keeps its dtype when broadcast over the batch
    # (vmap._place; as a weak scalar np.float64(2) * 2 came back float32), as the loop's
    for out_axes in (0, -1):
        got = gc.vmap(lambda r, v: v * 2, in_axes=(0, None), out_axes=out_axes)(
            x, np.float64(2))
        assert got.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(got), [4.0, 4.0])


def test_an_unmapped_eager_tensor_or_0d_array_reaches_fun_as_it_is_eagerly():
    """The same number as an unmapped 0-d numpy array or eager tensor was still an input node
    of vmap's graph, its value unknown, where closed over it worked: gaussian_nll_loss(r,
    r * 0, v - 4) was NaN where a loop refuses it, float(gc.sum(v * 2)) was refused as
    symbolic, np.log(v) a raw TypeError, and jacfwd with respect to an eager tensor in fun
    refused it as having no Jacobian. Each now equals a Python loop over the rows, with v
    as it is; grad, jvp, a custom_jvp rule and vmap of vmap too, and backward() reaches it."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])  # float64 rows

    def loop(fun, v):
        return np.stack([np.asarray(fun(gc.tensor(r), v)) for r in x])

    with pytest.raises(GraphcError) as exc:
        gc.vmap(lambda r, v: gc.gaussian_nll_loss(r, r * 0, v - 4), in_axes=(0, None))(
            x, np.array(2.0))
    assert _one_line(exc) == "gaussian_nll_loss: var must be >= 0, got -2.0"
    got = gc.vmap(lambda r, v: r * np.log(v), in_axes=(0, None))(x, np.array(2.0))
    np.testing.assert_allclose(np.asarray(got), x * np.log(2.0), rtol=1e-15)

    @gc.custom_jvp
    def triple_slope(s):
        return s * 1.0

    @triple_slope.defjvp
    def _(primals, tangents):
        return triple_slope(primals[0]), tangents[0] * 3.0

    for v in (np.array(2.0), gc.tensor(np.array(2.0)), gc.tensor(np.array([2.0, 0.5]))):
        for fun in (lambda r, v: r * float(gc.sum(v * 2)),
                    lambda r, v: r * gc.grad(lambda s: gc.sum(s * s * r))(v),
                    lambda r, v: gc.jacfwd(lambda s: r * s * s)(v),
                    lambda r, v: gc.jvp(lambda s: s * v * r, (v,), (gc.ones_like(v),))[1],
                    gc.grad(lambda r, v: gc.sum(triple_slope(r) * v)),
                    lambda r, v: gc.vmap(lambda a, w: a * float(gc.sum(w)), in_axes=(0, None))(
                        gc.stack([r, -r]), v)):
            got = gc.vmap(fun, in_axes=(0, None))(x, v)
            want = loop(fun, v)
            assert got.dtype == want.dtype == np.float64
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-15)
    np.testing.assert_allclose(  # (values checked against the loop above; here by hand)
        np.asarray(gc.vmap(lambda r, v: gc.jacfwd(lambda s: r * s * s)(v), in_axes=(0, None))(
            x, gc.tensor(np.array(2.0)))), 4 * x)
    w = gc.tensor(np.array(3.0), requires_grad=True)
    y = gc.vmap(lambda r, w: r * w * float(gc.sum(w)), in_axes=(0, None))(x, w)
    gc.sum(y).backward()  # d/dw of sum(x) * w * 3 (float() is a constant)
    np.testing.assert_allclose(np.asarray(y), x * 9.0)
    np.testing.assert_allclose(np.asarray(w.grad), x.sum() * 3.0)


def test_ops_of_no_operands_are_concrete_in_an_eager_vmap():
    """In an eager vmap an op of no operands (gc.ones(3), gc.arange) stayed a node of vmap's
    graph, its value unknown, while ops on other unbatched concrete values ran at once:
    float(gc.sum(gc.ones(3))) and `if gc.arange(3)[2] > 1` were refused as symbolic, where
    torch.func.vmap (and jax.vmap) compute them. Transformations traced inside still build
    their seeds as graph values (jvp's zeros_like cotangents, a custom_jvp rule's placeholder
    tangents: registry.graph_valued on autodiff.gradients and forward_mode.tangents)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    for fun, oracle in (
            (lambda r: r * float(gc.sum(gc.ones(3))), lambda r: r * float(torch.ones(3).sum())),
            (lambda r: r if float(gc.arange(3)[2]) > 1 else -r,
             lambda r: r if float(torch.arange(3)[2]) > 1 else -r),
            (lambda r: r + gc.zeros(int(gc.arange(3)[2])), lambda r: r + torch.zeros(2))):
        got = gc.vmap(fun)(x)
        np.testing.assert_array_equal(np.asarray(got), torch.func.vmap(oracle)(
            torch.from_numpy(x)).numpy())
    got = gc.vmap(gc.vmap(lambda a: a + float(gc.sum(gc.ones(2)))))(x)  # vmap of vmap
    np.testing.assert_array_equal(np.asarray(got), x + 2)
    got = gc.vmap(lambda r: gc.jvp(lambda s: s * s * gc.ones(2), (r,), (gc.ones(2),))[1])(x)
    np.testing.assert_array_equal(np.asarray(got), 2 * x)

    # a custom_jvp rule under grad and jvp: custom.py differentiates with respect to zeros_like
    # placeholder tangents it builds, which must be graph values (passes/autodiff.gradients'
    # graph_valued; without it grad silently dropped the rule's 3 * t: r, not 4 * r), and
    # forward_mode.tangents' (without it jvp was refused: 'gradients() needs symbolic values')
    @gc.custom_jvp
    def cj(s):
        return s * gc.ones(2)

    @cj.defjvp
    def _(primals, tangents):
        return cj(primals[0]), tangents[0] * gc.full((2,), 3.0)

    for fun in (gc.grad(lambda r: gc.sum(cj(r) * r)),  # d/dr = 3 r + r
                lambda r: gc.jvp(lambda s: cj(s) * s, (r,), (gc.ones(2),))[1]):
        got = np.asarray(gc.vmap(fun)(x))
        np.testing.assert_array_equal(got, np.stack([np.asarray(fun(gc.tensor(r))) for r in x]))
        np.testing.assert_array_equal(got, 4 * x)
