"""gc.remat (graphc/remat.py): gradients equal the plain function's on random inputs,
and the compiled training step of a GPT with every block checkpointed needs less memory."""
import functools

import numpy as np
import pytest

import graphc as gc
from gpt_graphs import add_parameter_gradients
from graphc.models.gpt import GPT, GPTConfig
from runtime.build import build_plan


def mlp_block(x, w1, w2):
    return x + gc.tanh(gc.gelu(x @ w1) @ w2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_checkpointed_gradients_equal_the_plain_ones_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 6))
    ws = [(rng.normal(size=(6, 8)) * 0.5, rng.normal(size=(8, 6)) * 0.5) for _ in range(3)]
    target = rng.normal(size=(4, 6))

    def loss(x, ws, block):
        for w1, w2 in ws:
            x = block(x, w1, w2)
        return gc.sum((x - target) ** 2)

    plain = gc.value_and_grad(lambda x, ws: loss(x, ws, mlp_block), argnums=(0, 1))(x, ws)
    remat = gc.value_and_grad(lambda x, ws: loss(x, ws, gc.remat(mlp_block)),
                              argnums=(0, 1))(x, ws)
    np.testing.assert_allclose(remat[0], plain[0], rtol=1e-14)
    np.testing.assert_allclose(remat[1][0], plain[1][0], rtol=1e-12, atol=1e-14)
    for (a1, a2), (b1, b2) in zip(remat[1][1], plain[1][1]):
        np.testing.assert_allclose(a1, b1, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a2, b2, rtol=1e-12, atol=1e-14)
    # the backward pass holds the replay: two copies of each region's matmuls in the graph
    graph = gc.trace(gc.grad(lambda x, ws: loss(x, ws, gc.remat(mlp_block))), x, ws)
    ops = [n.op for n in graph.nodes]
    assert ops.count("optimization_barrier") == 3 * 3 and ops.count("custom_vjp") == 3
    # eagerly it is the function itself
    t = gc.tensor(x, requires_grad=True)
    loss(t, ws, gc.remat(mlp_block)).backward()
    np.testing.assert_allclose(t.grad, plain[1][0], rtol=1e-12)


def test_second_derivatives_and_closed_over_values_go_through_the_replay():
    w = np.array([[0.3, -0.2], [0.5, 0.1]])

    def f(x):  # closes over w (a constant) and reads its argument twice
        return gc.sum(gc.tanh(x @ w) * x)

    x = np.array([[0.4, -1.2], [0.7, 0.2]])
    hv = np.array([[1.0, 0.5], [-0.3, 2.0]])
    plain = gc.grad(lambda x: gc.sum(gc.grad(f)(x) * hv))(x)
    remat = gc.grad(lambda x: gc.sum(gc.grad(gc.remat(f))(x) * hv))(x)
    np.testing.assert_allclose(remat, plain, rtol=1e-12)


def _gpt_step(remat: bool, dropout: float = 0.0):
    cfg = GPTConfig.named("tiny", vocab_size=65, dtype="float64", dropout=dropout)
    model = GPT(cfg, seed=0)
    if remat:
        for block in model.blocks:
            object.__setattr__(block, "forward", gc.remat(block.forward))
    B, T = cfg.batch_size, cfg.block_size
    graph = gc.trace(lambda idx, targets, seed: model(idx, targets, seed=seed, training=True),
                     gc.spec((B, T), "int64"), gc.spec((B, T), "int64"), gc.spec((), "int64"))
    add_parameter_gradients(graph)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 65, (B, T))
    return build_plan(graph, "default"), (idx, rng.integers(0, 65, (B, T)), np.int64(7))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_checkpointed_gpt_blocks_lower_peak_memory_with_equal_gradients(dropout):
    plain, inputs = _gpt_step(False, dropout)
    remat, _ = _gpt_step(True, dropout)
    assert remat.memory["peak_intermediate"] < 0.75 * plain.memory["peak_intermediate"]
    assert remat.memory["total"] < plain.memory["total"]
    expected, got = plain(*inputs), remat(*inputs)
    assert len(expected) == len(got) > 10
    for a, b in zip(expected, got):  # dropout masks: the replay draws the same ones
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_a_traced_graph_differentiated_later_replays_in_its_clone():
    """passes.autodiff.grad_graph differentiates a clone of the traced graph (as `graphc dump
    --grad` does): the replay is built from the clone's nodes, and the result verifies."""
    from ir.verify import verify
    from passes.autodiff import grad_graph
    from runtime.interpreter import run

    rng = np.random.default_rng(3)
    x, w1, w2 = rng.normal(size=(3, 6)), rng.normal(size=(6, 8)), rng.normal(size=(8, 6))
    plain = grad_graph(gc.trace(lambda x, a, b: gc.sum(mlp_block(x, a, b)), x, w1, w2))
    remat = grad_graph(gc.trace(lambda x, a, b: gc.sum(gc.remat(mlp_block)(x, a, b)),
                                x, w1, w2))
    verify(remat)
    assert any(n.op == "optimization_barrier" for n in remat.nodes)
    for a, b in zip(run(remat, x, w1, w2), run(plain, x, w1, w2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---- JAX's jax.checkpoint options: static_argnums, prevent_cse, policy ------------------------
# They were a TypeError ("remat() got an unexpected keyword argument"). Expected gradients are
# the plain function's, written out by hand.
_X = np.array([0.5, -1.25, 2.0])


def _sin_sin(x):
    return gc.sin(gc.sin(x) * x)


def _plan_ops(fn, x, ops=("sin", "cos")):
    """(fn(x), the ops of `ops` in fn's compiled plan, sorted)."""
    compiled = gc.compile(fn)
    out = compiled(x)
    (_, plan), = next(iter(compiled._plans.values()))
    return out, sorted(n.op for n in plan.graph.nodes if n.op in ops)


def _sin_sin_grad(x):  # d/dx of 2 sum(sin(sin(x) x))
    return 2.0 * np.cos(np.sin(x) * x) * (np.cos(x) * x + np.sin(x))


def test_remat_prevent_cse_keeps_the_replay_apart_and_false_lets_cse_merge_it():
    counts = {}
    for name, fn in (("remat", gc.remat(_sin_sin)), ("plain", _sin_sin),
                     ("prevent_cse=False", gc.remat(_sin_sin, prevent_cse=False))):
        (value, grad), counts[name] = _plan_ops(
            gc.value_and_grad(lambda x: gc.sum(fn(x) * 2.0)), _X)
        np.testing.assert_allclose(value, 2.0 * np.sum(np.sin(np.sin(_X) * _X)), rtol=1e-14)
        np.testing.assert_allclose(grad, _sin_sin_grad(_X), rtol=1e-13)
    # the inner sin is computed again in the backward pass (from barriers CSE cannot merge
    # through); without prevent_cse CSE merges the replay with the forward copy: the plain plan
    assert counts["remat"] == ["cos", "cos", "sin", "sin", "sin"]
    assert counts["prevent_cse=False"] == counts["plain"] == ["cos", "cos", "sin", "sin"]
    # second order through the replay without barriers
    hess = gc.hessian(lambda x: gc.sum(gc.remat(_sin_sin, prevent_cse=False)(x)))(_X)
    np.testing.assert_allclose(hess, gc.hessian(lambda x: gc.sum(_sin_sin(x)))(_X),
                               rtol=1e-12)


def test_remat_policies_jax_names_and_the_ones_that_save_some_values():
    policies = gc.checkpoint_policies
    counts = {name: _plan_ops(gc.value_and_grad(
        lambda x: gc.sum(gc.remat(_sin_sin, policy=policy)(x) * 2.0)), _X)[1]
        for name, policy in (("nothing", policies.nothing_saveable),
                             ("everything", policies.everything_saveable))}
    assert counts == {"nothing": ["cos", "cos", "sin", "sin", "sin"],  # gc.remat's default
                      "everything": ["cos", "cos", "sin", "sin"]}  # nothing recomputed
    assert gc.compile(gc.grad(lambda x: gc.sum(gc.remat(
        _sin_sin, policy=policies.everything_saveable)(x))))(_X) == pytest.approx(
        _sin_sin_grad(_X) / 2.0, rel=1e-13)
    # the policies that save some values were refused; they replay the whole region, as
    # nothing_saveable (JAX's gradients, more recomputation). Expected: JAX 0.10.2's (x64)
    # jax.grad(jax.checkpoint(f, policy=...), argnums=(0, 1)), hard-coded
    x = np.array([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]])
    w = np.array([[0.3, -0.2, 0.1], [0.4, 0.5, -0.6], [-0.7, 0.8, 0.9]])
    want_x = [[-0.2850562812474553, 0.8573510761783891, -1.5037951875934175],
              [0.17993867915312234, 0.33176740175712494, -0.612165022811418]]
    want_w = [[0.8371170849991568, 1.27754451950102, -4.785662698852308],
              [-0.4114343163152647, 0.7246711327537936, 2.879856987152576],
              [-0.8172099462899542, -2.5117588507437536, 0.5558040751451043]]

    def dots(x, w):
        return gc.sum(gc.tanh(gc.sin(x @ w) @ w) * x)

    for policy in (policies.dots_saveable, policies.checkpoint_dots,
                   policies.dots_with_no_batch_dims_saveable,
                   policies.checkpoint_dots_with_no_batch_dims,
                   policies.save_only_these_names("a"), policies.save_any_names_but_these("a"),
                   policies.save_anything_except_these_names("a"),
                   policies.save_from_both_policies(policies.dots_saveable,
                                                    policies.nothing_saveable),
                   lambda prim, *avals, **params: prim.name == "sin"):  # one of your own
        grad = gc.grad(gc.remat(dots, policy=policy), argnums=(0, 1))
        for gx, gw in (grad(x, w), gc.compile(grad)(x, w)):
            np.testing.assert_allclose(gx, want_x, rtol=1e-13)
            np.testing.assert_allclose(gw, want_w, rtol=1e-13)
        assert _plan_ops(gc.value_and_grad(
            lambda x: gc.sum(gc.remat(_sin_sin, policy=policy)(x) * 2.0)), _X)[1] == \
            counts["nothing"]  # the region replayed whole
    with pytest.raises(gc.GraphcError) as info:
        gc.remat(_sin_sin, policy="dots")
    assert str(info.value).splitlines()[0] == (
        "remat: policy must be one of gc.checkpoint_policies or a function, got 'dots'")
    with pytest.raises(gc.GraphcError, match="remat: prevent_cse must be True or False, got"):
        gc.remat(_sin_sin, prevent_cse="yes")


def test_remat_static_argnums_are_python_values_in_the_trace():
    def layers(x, n, scale):
        for _ in range(n):  # n is used as a Python int
            x = gc.sin(x) * scale
        return gc.sum(x)

    def by_hand(x, n, scale):  # d/dx of layers, by the chain rule
        g = np.ones_like(x)
        for _ in range(n):
            g, x = g * np.cos(x) * scale, np.sin(x) * scale
        return g

    checkpointed = functools.partial(gc.remat, static_argnums=(1, 2))(layers)  # JAX's idiom
    for n in (1, 3):
        np.testing.assert_allclose(gc.grad(checkpointed)(_X, n, 1.5), by_hand(_X, n, 1.5),
                                   rtol=1e-13)
        step = gc.compile(lambda x, n: gc.grad(checkpointed)(x, n, 1.5), static_argnums=(1,))
        np.testing.assert_allclose(step(_X, n), by_hand(_X, n, 1.5), rtol=1e-13)
        np.testing.assert_allclose(gc.hessian(lambda x: checkpointed(x, n, 1.5))(_X),
                                   gc.hessian(lambda x: layers(x, n, 1.5))(_X), rtol=1e-12)
    # a traced value in a static position is refused, as a tracer is by JAX's
    with pytest.raises(gc.GraphcError) as info:
        gc.compile(lambda x, n: checkpointed(x, n, 1.5))(_X, 2)
    assert str(info.value).splitlines()[0].startswith(
        "remat: argument 1 of layers is in static_argnums but is a traced value")
    with pytest.raises(gc.GraphcError, match="remat: static_argnums must be an int or a "
                                             "tuple of ints, got 'a'"):
        gc.remat(layers, static_argnums="a")
    with pytest.raises(gc.GraphcError, match="remat: static_argnums has 5 but layers was "
                                             "called with 3 positional arguments"):
        gc.remat(layers, static_argnums=5)(_X, 2, 1.5)


def test_a_remat_function_returning_a_torch_tensor_is_one_line_eager_and_traced():
    """gc.remat(f) whose f returns a torch tensor handed it back eagerly, became a constant
    of a compiled function and met an op under gc.grad ("sum: got a torch.Tensor"), where the
    control-flow constructs refuse such a body; now the same line, naming the function."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")

    def torch_block(x):
        return x * 2, {"t": torch.ones(3, dtype=torch.float64)}

    x = np.ones(3)
    saving_all = gc.checkpoint_policies.everything_saveable
    for call in (lambda: gc.remat(torch_block)(x),
                 lambda: gc.compile(gc.remat(torch_block))(x),
                 lambda: gc.grad(lambda v: gc.sum(gc.remat(torch_block)(v)[0]))(x),
                 lambda: gc.remat(torch_block, policy=saving_all)(x)):
        with pytest.raises(gc.GraphcError) as info:
            call()
        line, where = str(info.value).splitlines()
        assert line.startswith("remat function torch_block (defined at "), line
        assert line.endswith("returns a torch.Tensor, another library's array; return numpy "
                             "arrays or gc tensors (x.numpy(), or np.asarray(x))"), line
        assert "test_remat.py" in where
    np.testing.assert_array_equal(gc.grad(lambda v: gc.sum(gc.remat(lambda u: u * 2)(v)))(x),
                                  [2.0, 2.0, 2.0])


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_remat_under_autocast_gives_float32_arguments_the_plain_gradients(half):
    """A remat region of float32 arguments whose result is half (a matmul under gc.autocast,
    mixed precision's usual block) was refused as closing over its own arguments: autocast
    cast the custom_vjp node's float32 operands beside its half result, so the rule's
    gradient stopped at the casts. Now the replay's gradients are the plain function's, bit
    for bit, traced and compiled, and float32 as the arguments."""
    rng = np.random.default_rng(0)
    x, w1, w2 = (rng.normal(size=s).astype(np.float32) for s in ((4, 6), (6, 8), (8, 6)))

    def loss(block):
        def f(x, w1, w2):
            with gc.autocast(half):
                y = block(block(x, w1, w2), w1, w2)
                return gc.mean(y.astype("float32") ** 2)
        return gc.value_and_grad(f, argnums=(0, 1, 2))

    block = lambda x, w1, w2: x + gc.tanh(gc.gelu(x @ w1) @ w2)  # noqa: E731
    for run in (lambda f: f, gc.compile):
        plain = run(loss(block))(x, w1, w2)
        remat = run(loss(gc.remat(block)))(x, w1, w2)
        np.testing.assert_array_equal(remat[0], plain[0])
        for got, want in zip(remat[1], plain[1]):
            assert got.dtype == np.float32 and np.all(np.isfinite(got))
            np.testing.assert_array_equal(got, want)
