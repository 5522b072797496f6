"""Reproductions of defects found reviewing the merged work; each test failed before its fix."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def test_donated_array_also_passed_as_another_argument_is_not_overwritten_early():
    # the plan wrote w * 2 over the donated w while x (the same array) was still to be read
    def step(w, x):
        y = w * 2.0
        return y, (x * 3.0).sum() + y.sum()

    w = np.arange(4.0)
    y, total = gc.compile(step, donate_argnums=(0,))(w, w)
    np.testing.assert_array_equal(y, [0.0, 2.0, 4.0, 6.0])
    assert float(total) == 30.0


def test_same_array_donated_twice_gives_both_results():
    def step(a, b):
        return a + 1.0, b * 2.0

    w = np.arange(4.0)
    a1, b2 = gc.compile(step, donate_argnums=(0, 1))(w, w)
    np.testing.assert_array_equal(a1, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(b2, [0.0, 2.0, 4.0, 6.0])


def test_donated_view_of_another_argument_is_not_overwritten_early():
    def step(a, b):
        return a * 10.0, b.sum()

    base = np.arange(6.0)
    out, total = gc.compile(step, donate_argnums=(0,))(base[:3], base)
    np.testing.assert_array_equal(out, [0.0, 10.0, 20.0])
    assert float(total) == 15.0


def test_unrelated_donated_arrays_are_still_updated_in_place():
    def step(w):
        return w * 2.0

    compiled = gc.compile(step, donate_argnums=(0,))
    w = np.arange(4.0)
    out = compiled(w)
    assert np.shares_memory(out, w)  # the donation still takes effect without aliasing


class _DropoutNet(gc.nn.Module):
    def __init__(self):
        self.fc1 = gc.nn.Linear(2, 16, rng=np.random.default_rng(1))
        self.drop = gc.nn.Dropout(0.3)
        self.fc2 = gc.nn.Linear(16, 3, rng=np.random.default_rng(2))

    def forward(self, x):
        return self.fc2(self.drop(gc.tanh(self.fc1(x))))


def _blobs(rng, size=32):
    labels = rng.integers(0, 3, size)
    x = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])[labels] + rng.normal(0, 0.5, (size, 2))
    return x.astype(np.float32), labels.astype(np.int64)


def _dropout_trainer(steps):
    model = _DropoutNet()

    def loss(params, batch):  # no key handling: Dropout must still follow the step's key
        x, y = batch
        return gc.cross_entropy(model.apply(params, x), y)

    return gc.Trainer(loss, model.params(), gc.optim.Adam(lr=0.05), _blobs, steps=steps,
                      seed=5)


def test_trainer_resume_with_dropout_is_bit_exact(tmp_path):
    # the step drew its dropout masks from graphc.nn's generator (an implicit dropout_key
    # input), which the checkpoint does not hold: the resumed run trained on other masks
    straight = _dropout_trainer(6)
    straight.fit(None, progress=False)
    first = _dropout_trainer(3)
    first.fit(str(tmp_path), progress=False)
    gc.nn.manual_seed(123)  # as a new process, or anything else drawing from the generator
    resumed = _dropout_trainer(6)
    resumed.resume(str(tmp_path / "checkpoint.npz"))
    resumed.fit(None, progress=False)
    for name, value in straight.state_arrays().items():
        np.testing.assert_array_equal(value, resumed.state_arrays()[name], err_msg=name)
    inputs = [n.attrs["name"] for n in straight.step_plan.graph.inputs]
    assert "dropout_key" not in inputs and "key" in inputs


def test_trainer_dropout_masks_change_with_the_step():
    trainer = _dropout_trainer(2)
    batch = _blobs(np.random.default_rng(0))
    losses = []
    for step in (0, 1):
        # the same parameters and batch, another step's key (it counts the batches drawn)
        trainer.step = trainer.train_batches.position = step
        params = {k: v.copy() for k, v in trainer.params.items()}
        state = {k: ({n: a.copy() for n, a in v.items()} if isinstance(v, dict) else v.copy())
                 for k, v in trainer.state.items()}
        loss, *_ = trainer._train_step.call((params, state, batch, trainer._key()))
        losses.append(float(loss))
    assert losses[0] != losses[1]


def test_static_argument_left_to_its_default_is_not_an_error():
    # compile(static_argnums=(1,)) refused g(x) although `training` has a default (JAX's jit
    # takes the call); passing it later compiles the other branch
    def g(x, training=True):
        return x * 2.0 if training else x

    compiled = gc.compile(g, static_argnums=(1,))
    np.testing.assert_array_equal(compiled(np.ones(2)), [2.0, 2.0])
    np.testing.assert_array_equal(compiled(np.ones(2), False), [1.0, 1.0])
    with pytest.raises(gc.GraphcError, match="static_argnums has 2"):
        gc.compile(g, static_argnums=(2,))(np.ones(2))


def test_module_eval_and_train_switch_every_dropout_as_in_pytorch():
    # nn.Module had no train()/eval(): a model's Dropout layers (here inside Sequential and
    # MultiheadAttention) could only be switched off one attribute at a time
    model = gc.nn.Sequential(gc.nn.Linear(4, 8), gc.nn.Dropout(0.5),
                             gc.nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True))
    x = gc.tensor(np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32))

    def forward(model):
        out, _ = model[2](model[1](model[0](x)))
        return out.data

    assert model.eval() is model
    assert not model[1].training and not model[2].training
    np.testing.assert_array_equal(forward(model), forward(model))  # deterministic
    model.train()
    assert model[1].training and model[2].training
    assert not np.array_equal(forward(model), forward(model))  # fresh masks per call


def test_compiled_function_takes_keyword_arguments():
    # Compiled.__call__ took *args only: step(params, x=x) was a TypeError traceback
    def f(x, y, training=True):
        return x * y if training else x

    compiled = gc.compile(f, static_argnums=(2,))
    np.testing.assert_array_equal(compiled(np.ones(2), y=np.full(2, 3.0)), [3.0, 3.0])
    np.testing.assert_array_equal(compiled(np.ones(2), np.full(2, 3.0)), [3.0, 3.0])
    assert compiled.recompiles == []  # f(x, y=y) is the call f(x, y)
    np.testing.assert_array_equal(compiled(np.ones(2), np.full(2, 3.0), training=False),
                                  [1.0, 1.0])
    assert compiled.recompiles == ["recompiling f (compilation 2): the number of arguments "
                                   "changed from 2 to 3"]

    def g(x, y=1.0, z=2.0):  # y, skipped before z, takes its default
        return x * y + z

    np.testing.assert_array_equal(gc.compile(g)(np.ones(2), z=np.float64(5.0)), [6.0, 6.0])
    with pytest.raises(gc.GraphcError, match="compiled f: missing a required argument: 'y'"):
        compiled(np.ones(2), z=1)

    def g(x, *, k=2.0):
        return x * k

    with pytest.raises(gc.GraphcError, match="k is keyword-only"):
        gc.compile(g)(np.ones(2), k=3.0)


@pytest.mark.parametrize("ranks", ["0", "a,b", "1,,2"])
def test_bench_ranks_bad_value_is_one_line_before_any_output(ranks, capsys):
    # `graphc bench --ranks a,b` printed the table header, then "invalid literal for int()"
    from graphc.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["bench", "--ranks", ranks])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"graphc: error: argument --ranks: expected positive whole numbers separated by "
        f"commas (e.g. 1,2), got {ranks!r} (see graphc bench --help)"]


def test_checked_run_of_a_donated_alias_is_right():
    # Plan.run_checked bound its inputs without the donation safeguards of a plain call
    def step(w, x):
        y = w * 2.0
        return y, (x * 3.0).sum() + y.sum()

    w = np.arange(4.0)
    y, total = gc.compile(step, donate_argnums=(0,)).call((w, w), checked=True)
    np.testing.assert_array_equal(y, [0.0, 2.0, 4.0, 6.0])
    assert float(total) == 30.0


def test_profiling_a_plan_leaves_donated_arguments_alone():
    # plan.profile ran the plan 1 + repeat times over the caller's donated arrays: profiling
    # a Trainer's step (bench does) applied four updates to its parameters
    def step(w):
        return w - 1.0

    w = np.arange(4.0)
    plan = gc.compile(step, donate_argnums=(0,)).plan_for(w)
    rows = plan.profile(w, repeat=3, file=False)
    assert rows and rows[0]["op"]
    np.testing.assert_array_equal(w, [0.0, 1.0, 2.0, 3.0])


def test_compiled_function_follows_model_eval_and_train():
    # a compiled function kept the plan traced in training mode after model.eval(): the
    # Dropout still dropped (torch.compile guards on module.training likewise)
    model = gc.nn.Sequential(gc.nn.Linear(4, 8), gc.nn.Dropout(0.5))
    forward = gc.compile(lambda p, x: model.apply(p, x))
    params, x = model.params(), np.ones((2, 4), np.float32)
    dropped = forward(params, x)
    assert (dropped == 0).sum() > 0
    model.eval()
    np.testing.assert_array_equal(forward(params, x), model(gc.tensor(x)).data)
    model.train()
    assert (forward(params, x) == 0).sum() > 0
    assert forward.recompiles == [
        "recompiling lambda (compilation 2): Dropout 1.training: True -> False"]


def test_loss_that_sets_the_model_mode_itself_compiles_once_per_mode():
    # with guards on Dropout.training, a Trainer loss that calls model.train(training) must
    # not make every switch between training steps and evaluations retrace
    model = _DropoutNet()

    def loss(params, batch, key, training):
        model.train(training)
        x, y = batch
        return gc.cross_entropy(model.apply(params, x), y)

    trainer = gc.Trainer(loss, model.params(), gc.optim.Adam(lr=0.05), _blobs, steps=4,
                         eval_batches=_blobs, eval_every=1, eval_iters=1, seed=5)
    trainer.fit(None, progress=False)
    assert trainer._train_step.recompiles == [] and trainer._eval_loss.recompiles == []
    batch = _blobs(np.random.default_rng(3))
    # the evaluation ran without dropout: equal to the eager model in eval mode
    model.load_state_dict(trainer.params)
    model.eval()
    expected = gc.cross_entropy(model(gc.tensor(batch[0])), gc.tensor(batch[1])).data
    assert trainer.evaluate([batch], record=False) == pytest.approx(float(expected), rel=1e-6)


def test_namedtuple_pytrees_round_trip_through_compile():
    # unflatten rebuilt every tuple type from a generator: a namedtuple argument or result
    # (JAX treats them as pytrees) was a TypeError traceback
    from collections import namedtuple

    Pair = namedtuple("Pair", "w b")
    compiled = gc.compile(lambda p, x: Pair(p.w * x, p.b + 1.0))
    out = compiled(Pair(np.ones(2), np.zeros(2)), np.full(2, 2.0))
    assert isinstance(out, Pair)
    np.testing.assert_array_equal(out.w, [2.0, 2.0])
    np.testing.assert_array_equal(out.b, [1.0, 1.0])


def test_trainer_evaluation_with_an_active_dropout_repeats_exactly():
    # a 2-argument loss cannot switch Dropout off; its evaluation masks came from graphc.nn's
    # generator, so two evaluations of the same parameters (or a resumed run's) differed
    model = _DropoutNet()

    def loss(params, batch):
        x, y = batch
        return gc.cross_entropy(model.apply(params, x), y)

    trainer = gc.Trainer(loss, model.params(), gc.optim.Adam(lr=0.05), _blobs,
                         eval_batches=_blobs, eval_iters=3, steps=2, seed=5)
    first = trainer.evaluate(record=False)
    gc.nn.manual_seed(99)
    assert trainer.evaluate(record=False) == first
    inputs = [n.attrs["name"] for n in trainer.eval_plan.graph.inputs]
    assert "dropout_key" not in inputs
    trainer.step = 1  # another step: other masks
    assert trainer.evaluate(record=False) != first


# ---- control flow, shape polymorphism, memory budget (issue 18 review) -------------------------
def _rnn_loss(w, h0, xs):
    def step(h, x):
        h = gc.tanh(x @ w + h @ w)
        return h, h
    h_last, hs = gc.scan(step, h0, xs)
    return gc.sum(hs * hs) + gc.sum(h_last)


def _rnn_loss_unrolled(w, h0, xs):
    h, total = h0, 0.0
    for x in xs:
        h = np.tanh(x @ w + h @ w)
        total = total + (h * h).sum()
    return total + h.sum()


def test_scan_over_a_symbolic_batch_runs_at_each_size():
    # specialize() rebuilt the scan node's tuple type as a tensor (TypeError: dtype uint8) and
    # left the body region symbolic
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3))
    loss = gc.compile(_rnn_loss, polymorphic_shapes=(None, ("b", "_"), ("_", "b", "_")))
    for b in (1, 3, 5):
        h0, xs = rng.normal(size=(b, 3)), rng.normal(size=(4, b, 3))
        np.testing.assert_allclose(loss(w, h0, xs), _rnn_loss_unrolled(w, h0, xs), rtol=1e-12)
    assert loss.recompiles == []


def test_gradient_of_scan_over_a_symbolic_batch_equals_the_concrete_plans():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3))
    symbolic = gc.compile(gc.grad(_rnn_loss, argnums=(0, 1)),
                          polymorphic_shapes=(None, ("b", "_"), ("_", "b", "_")))
    for b in (1, 4):
        h0, xs = rng.normal(size=(b, 3)), rng.normal(size=(5, b, 3))
        expected = gc.compile(gc.grad(_rnn_loss, argnums=(0, 1)))(w, h0, xs)
        for got, want in zip(symbolic(w, h0, xs), expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_scan_compiles_in_bf16_mixed_precision_and_tracks_float32():
    # autocast made the body's carry bfloat16 (a half matmul) while it came in float32: one
    # error line "returns the carry as (bf16[2,3]) but it came in as (f32[2,3])", and the
    # scan's own operands were cast to bfloat16 as if it were an elementwise op
    rng = np.random.default_rng(2)
    w = (0.3 * rng.normal(size=(3, 3))).astype(np.float32)  # contracting: float32 comparable
    h0, xs = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(6, 2, 3)).astype(np.float32)
    loss, grad = gc.compile(gc.value_and_grad(_rnn_loss), precision="bf16-mixed")(w, h0, xs)
    assert np.asarray(grad).dtype == np.float32

    def unrolled(w, h0, xs):
        h, total = h0, 0.0
        for t in range(xs.shape[0]):
            h = gc.tanh(xs[t] @ w + h @ w)
            total = total + gc.sum(h * h)
        return total + gc.sum(h)

    loss_u, grad_u = gc.compile(gc.value_and_grad(unrolled), precision="bf16-mixed")(w, h0, xs)
    np.testing.assert_allclose(float(loss), float(loss_u), rtol=1e-6)
    np.testing.assert_allclose(grad, grad_u, rtol=2e-2, atol=2e-2)
    loss32, grad32 = gc.compile(gc.value_and_grad(_rnn_loss))(w, h0, xs)
    np.testing.assert_allclose(float(loss), float(loss32), rtol=2e-2)
    np.testing.assert_allclose(grad, grad32, rtol=5e-2, atol=5e-2)
    assert np.abs(grad - grad32).max() > 0  # the half-precision path was taken


def test_memory_limit_with_a_symbolic_batch_fits_each_binding():
    # rematerialize ran on the symbolic graph: matmul's FLOP count met a Dim (TypeError:
    # unsupported operand type(s) for *: 'float' and 'Dim'); the budget is met per binding
    from passes.rematerialize import MemoryLimitError

    rng = np.random.default_rng(3)
    acts = (gc.tanh, gc.relu, gc.sigmoid, gc.tanh)

    def loss(ws, x):
        h = x
        for w, act in zip(ws, acts):
            h = h + act(h @ w)
        return gc.sum(h * h)

    ws = [rng.normal(size=(32, 32)) / np.sqrt(32) for _ in acts]
    shapes = (None, ("b", "_"))
    unlimited = gc.compile(gc.value_and_grad(loss), polymorphic_shapes=shapes)
    x = rng.normal(size=(64, 32))
    unlimited(ws, x)  # a polymorphic plan reports memory for the binding of its latest call
    total = unlimited.plan_for(ws, x).memory["total"]
    with pytest.raises(MemoryLimitError) as info:
        gc.compile(gc.value_and_grad(loss), polymorphic_shapes=shapes, memory_limit=1)(ws, x)
    assert info.value.best < total
    budget = int((info.value.best + total) / 2)
    limited = gc.compile(gc.value_and_grad(loss), polymorphic_shapes=shapes, memory_limit=budget)
    for b in (64, 3):
        xb = rng.normal(size=(b, 32))
        (value0, grads0), (value, grads) = unlimited(ws, xb), limited(ws, xb)
        np.testing.assert_allclose(value, value0, rtol=1e-12)
        for g, g0 in zip(grads, grads0):
            np.testing.assert_allclose(g, g0, rtol=1e-12, atol=1e-14)
        assert limited.plan_for(ws, xb).memory["total"] <= budget
        if b == 64:  # 64 rows needed recomputation
            assert limited.plan_for(ws, xb).remat_report.recomputed
    assert limited.recompiles == []


def test_dump_memory_limit_of_a_symbolic_graph_asks_for_bind(capsys):
    # rematerialize ran on the symbolic graph: "the symbolic dimension 2048*batch has no
    # value while tracing", which names neither the option nor the fix
    from graphc.cli import main
    assert main(["dump", "gpt", "--grad", "--batch", "batch", "--memory-limit", "25MB"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["graphc: error: the graph has symbolic dimensions (batch); --memory-limit "
                   "needs sizes: add --bind batch=N"]


def test_eager_scan_under_autocast_keeps_the_carry_dtype_as_the_compiled_one():
    # eagerly the carry turned bfloat16 after the first step while the traced scan keeps it
    # float32, so eager and compiled runs of one function rounded differently
    rng = np.random.default_rng(6)
    w = rng.normal(size=(3, 3)).astype(np.float32)
    h0, xs = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(4, 2, 3)).astype(np.float32)

    def last(w, h0, xs):
        with gc.autocast("bfloat16"):
            h, _ = gc.scan(lambda h, x: (gc.tanh(x @ w + h @ w), h), h0, xs)
        return h

    eager = last(gc.tensor(w), gc.tensor(h0), gc.tensor(xs))
    assert eager.data.dtype == np.float32
    np.testing.assert_array_equal(eager.data, gc.compile(last)(w, h0, xs))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_whose_branches_round_differently_compiles_in_bf16_mixed(sign):
    # under autocast the matmul branch returned bf16 and the other float32: "cond: true_fun
    # returns (bf16[2,3]) but false_fun returns (f32[2,3])" for a function that runs in fp32
    rng = np.random.default_rng(7)
    w = rng.normal(size=(3, 3)).astype(np.float32)
    x = (sign * np.abs(rng.normal(size=(2, 3)))).astype(np.float32)

    def f(w, x):
        return gc.sum(gc.cond(gc.sum(x) > 0, lambda a: a @ w, lambda a: a * 2.0, x))

    value, grad = gc.compile(gc.value_and_grad(f), precision="bf16-mixed")(w, x)
    expected = (x @ w).sum() if sign > 0 else (x * 2.0).sum()
    np.testing.assert_allclose(float(value), expected, rtol=2e-2)
    expected_grad = np.broadcast_to(x.sum(0)[:, None], (3, 3)) if sign > 0 else np.zeros((3, 3))
    np.testing.assert_allclose(grad, expected_grad, rtol=2e-2, atol=1e-6)


def test_more_polymorphic_shapes_than_arguments_is_one_line():
    # the extra entries were ignored: a template meant for x but written one place too far
    # right left x concrete without a word
    from ir.errors import GraphcError

    square = gc.compile(lambda x: x * x, polymorphic_shapes=(None, ("b",)))
    with pytest.raises(GraphcError) as info:
        square(np.ones(3))
    assert str(info.value).splitlines()[0] == (
        "compile: polymorphic_shapes has 2 entries but the function was called with 1 "
        "positional arguments (one entry per argument)")


def test_loop_bodies_are_built_with_the_enclosing_plans_options():
    # a plan built without numba kernels built its loop bodies' plans with them (review)
    import graphc as gc
    from runtime.build import build_plan

    def f(h0, xs, w):
        def step(h, x):
            h = gc.tanh(x @ w + h)
            return h, h
        return gc.scan(step, h0, xs)[1]

    rng = np.random.default_rng(0)
    args = (rng.standard_normal((2, 3)), rng.standard_normal((4, 2, 3)),
            rng.standard_normal((3, 3)))
    graph = gc.trace(f, *args)
    for jit in (False, True):
        plan = build_plan(graph, jit=jit)
        (ys,) = plan(*args)
        runner = next(v for k, v in plan._globals.items() if k.startswith("run_"))
        (body_plan,) = runner.plans.values()
        assert body_plan.jit == jit
        h, expected = args[0], []
        for x in args[1]:
            h = np.tanh(x @ args[2] + h)
            expected.append(h)
        np.testing.assert_allclose(ys, np.stack(expected), rtol=1e-12)


def test_dump_batch_zero_is_one_line(capsys):
    from graphc.cli import main
    assert main(["dump", "gpt", "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch 0: a batch size must be at least 1" in err and err.count("\n") == 1


def test_a_compiled_vmap_that_sets_autocast_itself_does_not_recompile_under_an_outer_one():
    # vmap's traced graph did not forward set_while_tracing to the graph around it, so the
    # policy the function set itself became a guard and a second call under an outer autocast
    # recompiled (review finding); vmap's graph is an ir.region.Region now
    def f(w, x):
        with gc.autocast("bfloat16"):
            return gc.sum(x @ w)

    step = gc.compile(gc.vmap(f, in_axes=(None, 0)))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    first = np.asarray(step(w, x))
    with gc.autocast("float16"):
        second = np.asarray(step(w, x))
    assert step.recompiles == []
    np.testing.assert_array_equal(first, second)
