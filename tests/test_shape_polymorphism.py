"""Shape polymorphism: symbolic dimensions (ir.types.Dim), their type rules, one plan for every
size (runtime/polymorphic.py) checked against separate concrete compilations, recompiles only
on concrete changes, the IR's text and JSON forms, dump, and the errors."""
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError
from ir.parser import parse
from ir.printer import format_graph
from ir.serialize import dumps, loads
from ir.specialize import bind_dims, specialize
from ir.types import Dim, InconclusiveDim, TensorType, parse_dim
from runtime.build import build_plan
from runtime.interpreter import evaluate
from runtime.polymorphic import PolymorphicPlan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCHES = (1, 3, 8, 17)
b, t = Dim.symbol("batch"), Dim.symbol("seq")


# ---- Dim ------------------------------------------------------------------------------------
def test_dim_arithmetic_normalises():
    assert b * t == t * b and b * t * 4 // 4 == b * t and (b * 128) // b == 128
    assert b + 1 - 1 == b and isinstance(b - b, int) and b - b == 0
    assert b != 1 and b != t and hash(b * 2) == hash(2 * b)
    assert (b * t).evaluate({"batch": 3, "seq": 5}) == 15
    assert b >= 1 and t - 1 >= 0 and not (b < 1)
    with pytest.raises(InconclusiveDim, match="depends on the value"):
        b > 1  # noqa: B015
    with pytest.raises(InconclusiveDim, match="not a multiple"):
        (2 * b + 1) // 2  # noqa: B018
    with pytest.raises(GraphcError, match="symbolic dimension batch has no value"):
        range(b)


def test_floor_division_of_a_dim_and_strided_symbolic_slices():
    # an output size is a floor: floor((2n+1) / 2) = n, floor((2n-1) / 2) = n-1 for every n;
    # floor(n / 2) is no polynomial. A strided slice of symbolic bounds was refused whatever
    # its length ("with symbolic bounds needs step 1"); conv2d's and the pools' strided
    # windows over 2*h rows take it
    from ir.types import floor_div
    assert floor_div(2 * b + 1, 2) == b and floor_div(2 * b - 1, 2) == b - 1
    assert floor_div(6 * b * t - 7, 3) == 2 * b * t - 3 and floor_div(-7, 2) == -4
    with pytest.raises(InconclusiveDim, match=r"floor\(\(batch\+1\) / 2\) is no polynomial"):
        floor_div(b + 1, 2)
    odd = gc.compile(lambda x: x[:, 1::2], polymorphic_shapes=["(b, 2*n)"])
    for n in (1, 4):
        x = np.arange(2 * 2 * n, dtype=np.float64).reshape(2, 2 * n)
        np.testing.assert_array_equal(odd(x), x[:, 1::2])
    with pytest.raises(GraphcError, match="a slice from 0 to n with step 2: its length "
                                          r"floor\(\(n\+1\) / 2\) is no polynomial"):
        gc.trace(lambda x: x[:, ::2], gc.spec(("b", "n")))
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    for op, theirs in [(lambda x: gc.conv2d(x, w, stride=2, padding=1),
                        lambda x: torch.nn.functional.conv2d(x, torch.tensor(w), stride=2,
                                                             padding=1)),
                       (lambda x: gc.max_pool2d(x, 2), lambda x: torch.nn.functional.max_pool2d(
                           x, 2))]:
        f = gc.compile(op, polymorphic_shapes=["(b, 3, 2*h, 2*w)"])
        for shape in ((1, 3, 4, 6), (2, 3, 8, 2)):
            x = np.random.default_rng(1).normal(size=shape)
            np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).numpy(), rtol=1e-12,
                                       atol=1e-12)
        assert f.recompiles == []


@pytest.mark.parametrize("text", ["batch", "128*batch", "batch*seq", "2*batch*seq+1",
                                  "seq-1", "-batch+3"])
def test_dim_text_round_trip(text):
    d = parse_dim(text)
    assert str(d) == text and parse_dim(str(d)) == d


def test_dim_names_are_checked():
    for bad in ("f32", "true", "2x", ""):
        with pytest.raises(ValueError):
            parse_dim(bad)


# ---- type rules -----------------------------------------------------------------------------
def _types(fn, *specs):
    return [n.type for n in gc.trace(fn, *specs).outputs]


def test_type_rules_with_symbols():
    x = gc.spec(("batch", 128))
    (broadcast,) = _types(lambda x, y: x + y, x, gc.spec((1, 128)))
    assert broadcast == TensorType((b, 128), "f32")
    (flat, back) = _types(lambda x: (gc.reshape(x, (-1,)), gc.reshape(
        gc.reshape(x, (-1,)), (-1, 4, 32))), x)
    assert flat.shape == (128 * b,) and back.shape == (b, 4, 32)
    (product,) = _types(lambda x, w: x @ w, x, gc.spec((128, 10)))
    assert product.shape == (b, 10)
    (tail,) = _types(lambda x: x[:, 1:][1:], gc.spec(("batch", "seq")))
    assert tail.shape == (b - 1, t - 1)
    (ar,) = _types(lambda x: gc.arange(x.shape[1]), gc.spec(("batch", "seq")))
    assert ar.shape == (t,)


def test_type_rule_errors_name_op_and_line():
    with pytest.raises(GraphcError, match=r"matmul\(f32\[batch,5\], f32\[4,2\]\): contracting"):
        gc.trace(lambda x, w: x @ w, gc.spec(("batch", 5)), gc.spec((4, 2)))
    with pytest.raises(GraphcError, match=r"add.*cannot be broadcast") as info:
        gc.trace(lambda x, y: x + y, gc.spec(("batch",)), gc.spec(("seq",)))
    assert "test_shape_polymorphism.py" in str(info.value)
    with pytest.raises(GraphcError, match=r"slice 2:None of axis 0 \(size batch\): whether "
                                          r"batch-2 >= 0 depends on the value of batch"):
        gc.trace(lambda x: x[2:], gc.spec(("batch",)))


def test_value_dependent_size_is_one_clear_error():
    def uses_length_in_python(x):
        total = 0
        for i in range(x.shape[0]):  # a concrete size needed while tracing
            total = total + x[i]
        return total
    with pytest.raises(GraphcError) as info:
        gc.trace(uses_length_in_python, gc.spec(("batch", 4)))
    message = str(info.value)
    assert "symbolic dimension batch has no value while tracing" in message
    assert "test_shape_polymorphism.py" in message and len(message.splitlines()) == 2


# ---- one plan, every size ---------------------------------------------------------------------
def _mlp_loss_and_grads(x, y, w1, b1, w2):
    def loss(w1, b1, w2):
        return gc.cross_entropy(gc.relu(x @ w1 + b1) @ w2, y) + gc.mean(x * x)
    return gc.value_and_grad(loss, argnums=(0, 1, 2))(w1, b1, w2)


def test_mlp_one_plan_equals_concrete_plans():
    rng = np.random.default_rng(0)
    w1, b1, w2 = rng.normal(size=(6, 16)), rng.normal(size=16), rng.normal(size=(16, 5))
    graph = gc.trace(_mlp_loss_and_grads, gc.spec(("batch", 6), "f64"),
                     gc.spec(("batch",), "int64"), w1, b1, w2)
    plan = build_plan(graph)
    assert isinstance(plan, PolymorphicPlan)
    for batch in BATCHES:
        x, y = rng.normal(size=(batch, 6)), rng.integers(0, 5, batch)
        got = plan(x, y, w1, b1, w2)
        concrete = build_plan(gc.trace(_mlp_loss_and_grads, x, y, w1, b1, w2))(x, y, w1, b1, w2)
        reference = evaluate(graph, (x, y, w1, b1, w2))  # the interpreter specialises too
        for g, c, r in zip(got, concrete, reference):
            assert g.shape == c.shape
            np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    assert plan.lowerings == len(BATCHES)
    assert [sorted(bd) for bd in plan.bindings] == [["batch"]] * len(BATCHES)
    plan(np.ones((3, 6)), np.zeros(3, np.int64), w1, b1, w2)
    assert plan.lowerings == len(BATCHES)  # batch=3 again: its lowered plan was kept


def _tiny_gpt():
    cfg = GPTConfig.named("tiny", dtype="float64", n_layer=1, vocab_size=11, n_embd=16,
                          block_size=8)
    return GPT(cfg, seed=1)


def test_gpt_loss_and_grads_one_plan_equals_concrete_compilations():
    model = _tiny_gpt()
    params = model.params()

    def loss_and_grads(params, idx, targets):
        return gc.value_and_grad(lambda p: model.apply(p, idx, targets))(params)

    poly = gc.compile(loss_and_grads, polymorphic_shapes=(None, "(batch, seq)",
                                                          "(batch, seq)"))
    concrete = gc.compile(loss_and_grads)
    rng = np.random.default_rng(2)
    for batch, seq in zip(BATCHES, (8, 3, 5, 1)):
        idx, targets = rng.integers(0, 11, (batch, seq)), rng.integers(0, 11, (batch, seq))
        loss, grads = poly(params, idx, targets)
        ref_loss, ref_grads = concrete(params, idx, targets)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        assert np.isfinite(float(loss)) and 1.0 < float(loss) < 5.0
        for name in ref_grads:
            np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10,
                                       atol=1e-13)
    assert poly.recompiles == [] and len(poly._plans) == 1
    assert len(concrete.recompiles) == len(BATCHES) - 1
    (graph_input,) = [n for n in next(iter(poly._plans.values()))[0][1].graph.inputs
                      if n.attrs["name"] == "idx"]
    assert str(graph_input.type) == "i64[batch,seq]"


def test_training_step_recompiles_only_on_concrete_change(caplog):
    model = gc.nn.Sequential(gc.nn.Linear(4, 8), gc.nn.ReLU(), gc.nn.Linear(8, 3))
    opt = gc.optim.AdamW(lr=1e-2)
    params = model.params()
    state = opt.init(params)

    @gc.compile(donate_argnums=(0, 1), polymorphic_shapes=(None, None, ("batch", "_"),
                                                           ("batch",)))
    def step(params, state, x, y):
        loss, grads = gc.value_and_grad(
            lambda p: gc.cross_entropy(model.apply(p, x), y))(params)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    rng = np.random.default_rng(3)
    losses = []
    for batch in BATCHES:
        x, y = rng.normal(size=(batch, 4)).astype(np.float32), rng.integers(0, 3, batch)
        loss, params, state = step(params, state, x, y)
        losses.append(float(loss))
    assert step.recompiles == [] and all(np.isfinite(losses))
    with caplog.at_level(logging.INFO, logger="graphc"):
        with pytest.raises(GraphcError, match="Linear: input has 5 features, the layer takes 4"):
            step(params, state, np.ones((2, 5), np.float32), np.zeros(2, np.int64))
    assert step.recompiles == ["recompiling step (compilation 2): x: float32[batch, 4] -> "
                               "float32[batch, 5]"]
    assert "x: float32[batch, 4] -> float32[batch, 5]" in caplog.text


def test_mismatched_symbol_names_both_inputs():
    fn = gc.compile(lambda x, y: x * y[:, None], polymorphic_shapes=(("batch", 3), ("batch",)))
    fn(np.ones((2, 3)), np.ones(2))
    with pytest.raises(GraphcError) as info:
        fn(np.ones((5, 3)), np.ones(6))
    problem, where = str(info.value).splitlines()
    assert problem == ("inputs 'x' and 'y' disagree on dimension batch: 'x' axis 0 has 5, "
                       "'y' axis 0 has 6")
    assert where.strip().startswith("at tests/test_shape_polymorphism.py:")
    assert fn.recompiles == []


def test_polymorphic_shape_declaration_errors():
    fn = gc.compile(lambda x: x * 2, polymorphic_shapes=(("batch", 4),))
    with pytest.raises(GraphcError, match=r"argument x has shape \(2, 3\), but its polymorphic "
                       r"shape \(batch, 4\) declares 4"):
        fn(np.ones((2, 3)))
    with pytest.raises(GraphcError, match=r"argument x has shape \(3,\), 1 dimensions, but its "
                       r"polymorphic shape \(batch, 4\) has 2"):
        fn(np.ones(3))
    bad = gc.compile(lambda x: x * 2, polymorphic_shapes=(("f32", 4),))
    with pytest.raises(GraphcError, match="not a valid dimension name"):
        bad(np.ones((2, 4)))


def test_polymorphic_shapes_has_one_entry_per_argument_or_one_text_for_all():
    """s49: fewer entries than arguments meant "concrete" for the rest, so a left-out entry
    was a broadcast error naming no declaration (add(f64[b,3], f64[2,3])); as in JAX (a tuple
    is no pytree prefix of arguments of another count), it is one line naming the argument.
    A single text is one shape for every argument, as jax.export.symbolic_args_specs'
    (it was taken letter by letter: "polymorphic_shapes has 6 entries")."""
    x2, x4 = np.ones((2, 3)), np.ones((4, 3))
    short = gc.compile(lambda x, y: x + y, polymorphic_shapes=(("b", 3),))
    with pytest.raises(GraphcError) as info:
        short(x2, x2)
    line, where = str(info.value).splitlines()
    assert line == ("compile: polymorphic_shapes has 1 entries but the function was called "
                    "with 2 positional arguments (one entry per argument): argument 'y' has "
                    "none (None: every dimension concrete)")
    assert where.strip().startswith("at tests/test_shape_polymorphism.py:")
    for shapes in ("(b, 3)", (("b", 3), "(b, 3)")):
        both = gc.compile(lambda x, y: x + y, polymorphic_shapes=shapes)
        np.testing.assert_array_equal(both(x2, x2), x2 + x2)
        np.testing.assert_array_equal(both(x4, x4), x4 + x4)
        assert both.recompiles == []
    # an argument passed by keyword, or left to its default, needs no entry (as jax.export's
    # entries cover the positional arguments): it is concrete; one given an entry is symbolic
    scaled = gc.compile(lambda x, scale=2.0: x * scale, polymorphic_shapes=(("b", 3),))
    np.testing.assert_array_equal(scaled(x2, scale=3.0), x2 * 3.0)
    np.testing.assert_array_equal(scaled(x4, scale=3.0), x4 * 3.0)
    assert scaled.recompiles == []
    np.testing.assert_array_equal(scaled(x4), x4 * 2.0)
    added = gc.compile(lambda x, y: x + y, polymorphic_shapes=(("b", 3), ("b", 3)))
    np.testing.assert_array_equal(added(x2, y=x2), x2 + x2)
    np.testing.assert_array_equal(added(x4, y=x4), x4 + x4)
    assert added.recompiles == []
    with pytest.raises(GraphcError, match="has 1 entries but the function was called with 2 "
                       "positional arguments"):
        gc.compile(lambda x, y, z=1.0: x + y + z, polymorphic_shapes=(("b", 3),))(x2, x2, z=1.0)
    # the vjp of a compiled function (split_vjp's, on the tape) takes the text too
    squares = gc.compile(lambda x: gc.sum(x * x), polymorphic_shapes="(b, 3)")
    for n in (2, 4):
        t = gc.tensor(np.full((n, 3), 1.5), requires_grad=True)
        squares(t).backward()
        np.testing.assert_array_equal(t.grad, np.full((n, 3), 3.0))


def test_an_entry_left_out_is_refused_by_plan_for_after_the_arity_and_not_in_a_trace():
    # review r9 (s49) of 34a6a04, which moved the count of polymorphic_shapes' entries from
    # _key_and_leaves to Compiled.__call__: plan_for (README's) no longer checked it (a
    # broadcast error naming no declaration), a call with one argument too many said an
    # entry was missing for 'arg1', and a call inside a trace, where fn runs inline and no
    # polymorphic shape is read, was refused
    x2 = np.ones((2, 3))
    one = gc.compile(lambda x, y: x + y, polymorphic_shapes=(("b", 3),))
    with pytest.raises(GraphcError, match="has 1 entries but the function was called with 2 "
                       "positional arguments .*argument 'y' has none"):
        one.plan_for(x2, x2)
    with pytest.raises(GraphcError, match="too many positional arguments"):
        gc.compile(lambda x: x, polymorphic_shapes=(("b", 3),))(x2, x2)
    np.testing.assert_array_equal(gc.grad(lambda x: gc.sum(one(x, x)))(x2), 2 * x2)


def test_bind_dims_errors():
    graph = gc.trace(lambda x, y: x + y, gc.spec(("batch", 3)), gc.spec(("batch", 3)))
    with pytest.raises(GraphcError, match=r"input 'y' expects shape \(batch, 3\), got "
                                          r"\(2, 4\) \(axis 1 is concrete: 3\)"):
        bind_dims(graph, [(2, 3), (2, 4)])
    with pytest.raises(GraphcError, match="symbolic dimensions are at least 1"):
        bind_dims(graph, [(0, 3), (0, 3)])
    assert bind_dims(graph, [(7, 3), (7, 3)]) == {"batch": 7}
    concrete = specialize(graph, {"batch": 7})
    assert [str(n.type) for n in concrete.inputs] == ["f32[7,3]", "f32[7,3]"]



def test_a_size_negative_for_a_binding_is_one_error_naming_the_line():
    """zeros((n-5, 2)) is traced for every n; n = 3 makes it -2, which numpy refused with a
    bare ValueError from inside the plan (eye(n-5) with 'can only specify one unknown
    dimension'), and `graphc dump --bind` counted negative FLOPs for an input of 1-b rows."""
    fn = gc.compile(lambda x: gc.zeros((x.shape[0] - 5, 2)) + gc.sum(x),
                    polymorphic_shapes=(("n", 2),))
    assert fn(np.ones((7, 2), np.float32)).shape == (2, 2)
    assert fn(np.ones((5, 2), np.float32)).shape == (0, 2)
    with pytest.raises(GraphcError) as info:
        fn(np.ones((3, 2), np.float32))
    first, where = str(info.value).splitlines()
    # (the function the user called, though the passes make its full a broadcast_to)
    assert first == "zeros with n=3: axis 0 has size n-5 = -2; a size cannot be negative"
    assert where.strip().startswith("at tests/test_shape_polymorphism.py:")
    eye = gc.compile(lambda x: gc.eye(x.shape[0] - 5), polymorphic_shapes=(("n", 2),))
    np.testing.assert_array_equal(eye(np.ones((7, 2))), np.eye(2))
    with pytest.raises(GraphcError, match="axis 0 has size n-5 = -2; a size cannot be "):
        eye(np.ones((3, 2)))
    graph = gc.trace(lambda x: gc.sum(x), gc.spec(("1-b", 3)))
    assert specialize(graph, {"b": 1}).inputs[0].shape == (0, 3)
    with pytest.raises(GraphcError, match=r"^input 'x' with b=2: axis 0 has size -b\+1 = -1; "
                                          "a size cannot be negative"):
        specialize(graph, {"b": 2})


def test_a_creators_symbolic_size_negative_for_a_binding_names_the_creator():
    """s51 f1 item 3: eye(n - 5) traced for every n and called with n = 3 was refused as
    "tri with n=3: ...", the op eye makes, and zeros((n - 5, 2)) as "full with n=3"; each
    creator records its sizes for the binding's check (ir.specialize), naming itself. The
    sizes that are no negative stay what eager (numpy) gives."""
    key = gc.random.key(0)
    creators = {"eye": (lambda n: gc.eye(n), lambda n: np.eye(n)),
                "tril_mask": (lambda n: gc.tril_mask(2, n), lambda n: np.tri(2, n, dtype=bool)),
                "zeros": (lambda n: gc.zeros((n, 2)), lambda n: np.zeros((n, 2))),
                "ones": (lambda n: gc.ones((2, n)), lambda n: np.ones((2, n))),
                "full": (lambda n: gc.full((n,), 2.0), lambda n: np.full((n,), 2.0)),
                "broadcast_to": (lambda n: gc.broadcast_to(np.float32(3), (n,)),
                                 lambda n: np.full((n,), 3.0)),
                "gc.random.normal": (lambda n: gc.random.normal(key, (n,)),
                                     lambda n: np.asarray(gc.random.normal(key, (n,))))}
    axis = {"tril_mask": 1, "ones": 1}
    for name, (make, numpy_) in creators.items():
        fn = gc.compile(lambda x: make(x.shape[0] - 5), polymorphic_shapes=(("n", 2),))
        for rows in (7, 5):
            got = fn(np.ones((rows, 2), np.float32))
            np.testing.assert_allclose(got, numpy_(rows - 5), rtol=1e-6)
            assert np.asarray(got).dtype == np.asarray(make(rows - 5)).dtype
        with pytest.raises(GraphcError) as info:
            fn(np.ones((3, 2), np.float32))
        first, where = str(info.value).splitlines()
        assert first == (f"{name} with n=3: axis {axis.get(name, 0)} has size n-5 = -2; a size "
                         "cannot be negative")
        assert where.strip().startswith("at tests/test_shape_polymorphism.py:")


def test_a_polymorphic_compiles_str_size_is_its_arguments_size_when_called_inside_a_trace():
    """s51 f1 item 5: gc.vmap of a polymorphic compile whose function has gc.eye('n') was
    refused ("eye: a size must be an int, got 'n'"; compiled around it, "names n, which is
    not the size of any input's axis"): called inside a trace, the compiled function runs
    inline and its polymorphic_shapes bind no symbol. A name polymorphic_shapes gives an axis
    is now that axis' size there (concrete, or the trace's symbolic one), so each example's
    result is the compiled function's own on it, eagerly, compiled and polymorphic around."""
    def f(x):
        return (gc.sum(x) + gc.sum(gc.eye("n")) + gc.sum(gc.zeros(("n", 2)) + 1)
                + gc.sum(gc.arange("2*n")).astype("float32"), gc.reshape(x, ("n", -1)))
    pf = gc.compile(f, polymorphic_shapes=(("n", 2),))
    batched = (gc.vmap(pf), gc.compile(gc.vmap(pf)),
               gc.compile(gc.vmap(pf), polymorphic_shapes=(("b", "m", 2),)))
    rng = np.random.default_rng(0)
    for rows in (3, 5):
        xs = rng.standard_normal((4, rows, 2)).astype(np.float32)
        for i, x in enumerate(xs):  # (the per-example value by numpy, as the plan's)
            want = x.sum() + rows + 2 * rows + (2 * rows) * (2 * rows - 1) // 2
            np.testing.assert_allclose(pf(x)[0], want, rtol=1e-6)
        for fn in batched:
            total, rows_back = fn(xs)
            np.testing.assert_allclose(total, [pf(x)[0] for x in xs], rtol=1e-6)
            np.testing.assert_array_equal(rows_back, xs)
    grad = gc.compile(lambda x: gc.grad(lambda y: pf(y)[0])(x))  # (inline under gc.grad too)
    np.testing.assert_array_equal(grad(np.ones((3, 2), np.float32)), np.ones((3, 2)))


@pytest.mark.parametrize("size, negative, zero, positive", [
    (lambda n: n - 5, 3, 5, 7), (lambda n: 2 * n - 7, 3, None, 4),
    (lambda n: (n - 5) * 3, 1, 5, 6), (lambda n: n - n - 1, 4, None, None)])
def test_a_size_negative_for_a_binding_is_refused_before_a_pass_computes_on_it(
        size, negative, zero, positive):
    """s49: simplify made sum(zeros((n-5, 2)) + 1) a product by the count 2*n-10 and dce
    drops an unused zeros, so the node whose size specialize checked was gone: compiled
    at n = 3 it was -4.0 (an unused zeros((n-5, 2)) ran, zeros((n-5, n-5)) gave 4.0) where
    eager refuses. The sizes are recorded before the passes and checked at each binding."""
    def total(x):
        return gc.sum(gc.zeros((size(x.shape[0]), 2)) + 1)

    def square(x):
        n = size(x.shape[0])
        return gc.sum(gc.zeros((n, n)) + 1)

    def unused(x):
        gc.zeros((size(x.shape[0]), 2))
        return x * 2
    for f in (total, square, unused):
        compiled = gc.compile(f, polymorphic_shapes=(("n", 2),))
        for n in (negative, zero, positive):
            if n is None:
                continue
            x = np.ones((n, 2), np.float32)
            if size(n) < 0:
                with pytest.raises(GraphcError, match="negative dimensions"):
                    f(x)  # (eager refuses)
                with pytest.raises(GraphcError) as info:
                    compiled(x)
                first, where = str(info.value).splitlines()
                if size(n) == size(n + 1):  # n-n-1: a concrete -1, refused where traced
                    assert first == "zeros() failed: negative dimensions are not allowed"
                else:
                    assert first.startswith(f"zeros with n={n}: axis 0 has size ") and \
                        first.endswith(f" = {size(n)}; a size cannot be negative"), first
                assert where.strip().startswith("at tests/test_shape_polymorphism.py:")
            else:
                np.testing.assert_array_equal(compiled(x), f(x))
                assert float(gc.sum(compiled(x))) == float(gc.sum(f(x)))


def test_a_bool_full_of_a_symbolic_size_fills_its_truth_for_every_binding():
    """review r6 (s49): full's type rule took a bool fill as true, false, 0 or 1 only, and
    specialize checks each rule again with the sizes bound, so gc.full((2,), n - 5, "bool")
    traced for every n was refused for n = 7 ('a bool fill is true, false, 0 or 1, got 2')
    where eager and a concrete plan fill True; the size's truth is its int64 fill, cast. A
    bool full of a size read from IR text (`value=n`) is refused, not filled True unbound."""
    f = lambda x: gc.full((2,), x.shape[0] - 5, "bool")  # noqa: E731
    fn = gc.compile(f, polymorphic_shapes=(("n", 2),))
    for rows in (7, 5, 3, 1):
        x = np.ones((rows, 2), np.float32)
        expected = np.full((2,), rows - 5, np.bool_)
        for got in (fn(x), gc.compile(f)(x), f(x)):
            assert np.asarray(got).dtype == np.bool_
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(GraphcError, match="ill-typed full: fill value n is not true, false, 0 "
                                          "or 1, which bool holds$"):
        parse("graph g() -> (%0)\n  %0:bool[2] = full {shape=(2,), value=n, dtype=bool}\n"
              "  return %0")


def test_a_size_negative_only_in_a_branch_not_taken_is_not_refused():
    """r13 (s48): the negative-size check refused a cond whose untaken branch had a size
    n-5 < 0 (n = 1), a call eager and a concrete plan run; a branch that runs still fails."""
    def f(x):
        n = x.shape[0]
        return gc.cond(gc.sum(x) > 4, lambda v: gc.sum(gc.zeros((n - 5, 2)) + v[0]),
                       lambda v: gc.sum(v), x)
    fn = gc.compile(f, polymorphic_shapes=(("n", 2),))
    x = np.ones((1, 2), np.float32)
    assert float(fn(x)) == float(gc.compile(f)(x)) == float(f(x)) == 2.0
    assert float(fn(np.ones((7, 2), np.float32))) == 4.0
    with pytest.raises(GraphcError, match="negative dimensions"):
        fn(np.ones((3, 2), np.float32))


def test_dump_refuses_a_binding_that_makes_a_size_negative(tmp_path, capsys):
    from graphc.cli import main
    path = tmp_path / "g.ir"
    path.write_text("graph g(%0:f32[-b+1,3] x) -> (%1)\n"
                    "  %1:f32[] = sum %0 {axes=(0, 1), keepdims=false}\n  return %1\n")
    assert main(["dump", str(path), "--bind", "b=1", "--stats"]) == 0
    capsys.readouterr()
    assert main(["dump", str(path), "--bind", "b=2", "--stats"]) == 2  # was: -6 FLOPs
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == ("graphc: error: input 'x' with b=2: axis 0 has size -b+1 "
                                    "= -1; a size cannot be negative")

# ---- printer, parser, JSON -----------------------------------------------------------------
def test_symbolic_graph_text_and_json_round_trip():
    def f(x, y):
        h = gc.reshape(x, (-1, 4))
        return gc.mean(gc.relu(h)) + gc.sum(y[:, 1:]), gc.broadcast_to(y, (3,) + tuple(y.shape))
    graph = gc.trace(f, gc.spec(("b", "t", 8), "f64"), gc.spec(("b", "t"), "f64"))
    text = format_graph(graph, max_inline=None)
    assert "%2:f64[2*b*t,4] = reshape %0 {shape=(2*b*t, 4)}" in text
    assert "value=8*b*t" in text and "f64[b,t-1] = slice" in text
    assert format_graph(parse(text), max_inline=None) == text
    assert format_graph(loads(dumps(graph)), max_inline=None) == text
    x, y = np.arange(48.0).reshape(2, 3, 8), np.arange(6.0).reshape(2, 3)
    for a, c in zip(evaluate(parse(text), (x, y)), evaluate(graph, (x, y))):
        np.testing.assert_array_equal(a, c)
    mean = np.maximum(x, 0).mean() + y[:, 1:].sum()
    np.testing.assert_allclose(evaluate(graph, (x, y))[0], mean, rtol=1e-6)


# ---- dump ------------------------------------------------------------------------------------
def _dump(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "graphc.cli", "dump", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_dump_prints_the_symbol_and_binds_for_lowering():
    out = _dump("mlp", "--batch", "batch", "--grad")
    assert out.returncode == 0, out.stderr
    assert "%0:f32[batch,64] x, %1:i64[batch] y" in out.stdout
    refused = _dump("mlp", "--batch", "batch", "--after", "render")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "graphc: error: the graph has symbolic dimensions (batch); lowering stages, --stats "
        "and GraphML need sizes: add --bind batch=N")
    bound = _dump("mlp", "--batch", "batch", "--after", "plan-memory", "--bind", "batch=8")
    assert bound.returncode == 0, bound.stderr
    assert "f32[8,64]" in bound.stdout and "batch" not in bound.stdout


# ---- where users feel it: generation and evaluation ------------------------------------------
def test_generation_prefill_lengths_share_one_traced_step():
    from graphc.generate import Generator
    model = _tiny_gpt()  # block size 8
    params = {name: p.data for name, p in model.named_parameters()}
    logits_of = gc.compile(lambda params, idx: model.apply(params, idx))
    gen = Generator(model, params)
    prompts = ([1, 2, 3, 4, 5], [3, 1, 4, 1, 5, 9, 2], [2, 7, 1, 8, 2, 8])  # all in span 8
    for prompt in prompts:
        got = gen.start([prompt])
        expected = logits_of(params, np.array([prompt]))[:, -1]
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert list(gen._steps) == [8]  # one traced and optimised step for every prompt length
    step = gen._steps[8]
    assert isinstance(step, PolymorphicPlan) and step.lowerings == len(prompts)
    assert {"length": 7, "batch": 1} in step.bindings
    assert "i64[batch,length] idx" in format_graph(step.graph)


def test_split_loss_scores_a_smaller_last_batch_from_the_same_graph(monkeypatch):
    import graphc.transforms as transforms
    from graphc.train import split_loss
    model = _tiny_gpt()  # batches of 64 windows of 8: 67 windows are a batch of 64 and one of 3
    traced = []
    monkeypatch.setattr(transforms, "trace", lambda *a, **k: traced.append(1) or
                        gc.trace(*a, **k))

    class Data:
        val = np.random.default_rng(4).integers(0, 11, 67 * 8 + 1)
    params = {name: p.data for name, p in model.named_parameters()}
    loss, tokens = split_loss(model, params, Data)
    assert tokens == 67 * 8 and traced == [1]
    mean_loss = gc.compile(lambda p, i, t: model.apply(p, i, t))
    windows = Data.val[:-1].reshape(67, 8), Data.val[1:].reshape(67, 8)
    expected = float(mean_loss(params, *windows))  # one batch of all windows
    assert loss == pytest.approx(expected, rel=1e-12)


# ---- differential: one symbolic plan vs the interpreter on each size's concrete graph ----------
FUNCTIONS = {
    "reductions": lambda x, w: (gc.sum(x, 0), gc.max(x, 0, keepdims=True), gc.mean(x, 0),
                                gc.var(x), gc.min(x * w[0], -1)),
    "softmax over batch": lambda x, w: (gc.softmax(x, 0), gc.log_softmax(x @ w.T, -1)),
    "concat and stack": lambda x, w: (gc.concat([x, x * 2.0], 0), gc.stack([x, -x], 1),
                                      gc.concat([x, gc.ones_like(x)], 1)),
    "views": lambda x, w: (gc.transpose(x)[::2, 1:], gc.reshape(x, (-1,))[3:],
                           gc.expand_dims(x, 1) + w, x[-1], x[:, None, :2]),
    "broadcast against 1": lambda x, w: (x + gc.sum(x, 0, keepdims=True),
                                         gc.broadcast_to(w[:1], x.shape) * x),
    "layers": lambda x, w: (gc.layer_norm(x, w[0], w[1]), gc.gelu(x @ w.T),
                            gc.rms_norm(x, w[0]), gc.cast(gc.tril_mask(x.shape[0]), "f64")),
    "gradients": lambda x, w: gc.grad(lambda w: gc.mean(gc.tanh(x @ w.T) ** 2) +
                                      gc.var(x * w[0]))(w),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_symbolic_plan_matches_the_interpreter(name):
    fn = FUNCTIONS[name]
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 4))
    graph = gc.trace(fn, gc.spec(("batch", 4), "f64"), w)
    assert graph.inputs[0].type.symbolic
    plan = build_plan(graph)
    for batch in (1, 2, 5, 9):
        x = rng.normal(size=(batch, 4))
        concrete = gc.trace(fn, x, w)
        expected = evaluate(concrete, (x, w))
        got = plan(x, w)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_bisect_checks_each_pass_of_a_symbolic_graph(monkeypatch):
    monkeypatch.setenv("GRAPHC_BISECT", "1")
    graph = gc.trace(_mlp_loss_and_grads, gc.spec(("batch", 6), "f64"),
                     gc.spec(("batch",), "int64"), np.ones((6, 16)), np.ones(16),
                     np.ones((16, 5)))
    plan = build_plan(graph)  # each pass's graph evaluated at batch=3 against the one before
    assert plan.graph.inputs[0].type.symbolic


def test_a_sequence_longer_than_the_block_is_refused_when_bound():
    model = _tiny_gpt()  # block size 8
    logits = gc.compile(lambda p, idx: model.apply(p, idx),
                        polymorphic_shapes=(None, "(batch, seq)"))
    params = model.params()
    assert logits(params, np.zeros((2, 8), np.int64)).shape == (2, 8, 11)
    with pytest.raises(GraphcError) as info:
        logits(params, np.zeros((2, 9), np.int64))
    assert str(info.value).splitlines()[0].startswith(
        "slice with batch=2, seq=9: range 0:9 does not fit an axis of 8: numpy would clamp it")
    assert "graphc/models/gpt.py" in str(info.value)


def test_a_symbol_no_input_has_is_refused():
    n = Dim.symbol("n")
    graph = gc.trace(lambda x: x + gc.sum(gc.ones((n,), "f64")), gc.spec(("batch",), "f64"))
    with pytest.raises(GraphcError, match="full: the symbolic dimension n is not the size of "
                                          "any input's axis, so no call binds it"):
        evaluate(graph, (np.ones(3),))


def test_one_shape_for_a_pytree_argument_applies_to_each_leaf_as_jaxs_prefix_rule():
    """A dict argument given one shape was refused ("gives argument d one shape ... but it
    holds 2 arrays"); JAX's pytree-prefix rule applies an entry to every leaf under it: one
    plan for every batch size, as an entry per leaf gives."""
    def f(d, w):
        return d["a"] * w + d["b"]

    w = np.arange(3.0)
    for entry in ("(batch, 3)", ("batch", 3), {"a": "(batch, 3)", "b": ("batch", 3)}):
        fn = gc.compile(f, polymorphic_shapes=(entry, None))
        for n in (2, 5):
            d = {"a": np.full((n, 3), 2.0), "b": np.ones((n, 3))}
            np.testing.assert_array_equal(fn(d, w), d["a"] * w + d["b"])
        assert fn.recompiles == []
    # inside a pytree entry too: its second item one shape for the dict's two arrays
    nested = gc.compile(lambda t: t[0] + t[1]["c"] * t[1]["e"],
                        polymorphic_shapes=(["(n,)", "(n,)"],))
    for n in (2, 4):
        got = nested((np.ones(n), {"c": np.full(n, 2.0), "e": np.full(n, 3.0)}))
        np.testing.assert_array_equal(got, np.full(n, 7.0))
    assert nested.recompiles == []
    # a leaf unlike the shape is named by its path in the argument
    with pytest.raises(GraphcError) as info:
        gc.compile(f, polymorphic_shapes=("(batch, 3)", None))({"a": np.ones((2, 3)),
                                                               "b": np.ones(3)}, w)
    line, where = str(info.value).splitlines()
    assert line == ("compile: polymorphic_shapes: argument d.b has shape (3,), 1 dimensions, "
                    "but its polymorphic shape (batch, 3) has 2")
    assert where.strip().startswith("at tests/test_shape_polymorphism.py:")


def test_one_text_shape_and_a_python_float_argument_names_the_argument():
    """One text shape for every argument met a Python float: "polymorphic shape (batch, 3)
    has 2 dimensions, the argument 0 (shape ())" named no argument."""
    scaled = gc.compile(lambda x, scale: x * scale, polymorphic_shapes="(batch, 3)")
    with pytest.raises(GraphcError) as info:
        scaled(np.ones((2, 3)), 0.5)
    line, where = str(info.value).splitlines()
    assert line == ("compile: polymorphic_shapes: argument scale has shape (), 0 dimensions, "
                    "but its polymorphic shape (batch, 3) has 2; one text shape is every "
                    "argument's: give one entry per argument, None for scale")
    assert where.strip().startswith("at tests/test_shape_polymorphism.py:")
    fixed = gc.compile(lambda x, scale: x * scale, polymorphic_shapes=("(batch, 3)", None))
    for n in (2, 4):
        np.testing.assert_array_equal(fixed(np.ones((n, 3)), 0.5), np.full((n, 3), 0.5))
    assert fixed.recompiles == []


def test_a_mismatch_names_the_leaf_by_its_position_where_one_array_is_there_twice():
    """Review r8 of 67fba72: the failing leaf was found by identity (`x is exc.leaf`), so
    an array (or an interned number) held twice in one argument named its first place,
    d.a, whose shape is concrete, where d.b's polymorphic shape failed."""
    a = np.ones((5, 3), np.float32)
    cases = [({"a": a, "b": a}, {"a": None, "b": "(batch, 4)"}, "d.b", "declares 4"),
             ({"a": 2.0, "b": 2.0}, {"a": None, "b": "(batch, 4)"}, "d.b", "0 dimensions"),
             ((a, a), (None, "(batch, 4)"), "d.1", "declares 4")]
    for arg, shapes, name, problem in cases:
        f = gc.compile(lambda d: d[1] if isinstance(d, tuple) else d["b"],
                       polymorphic_shapes=(shapes,))
        with pytest.raises(gc.GraphcError, match=rf"argument {name} has shape .*{problem}"):
            f(arg)


def test_review_r6_an_inline_polymorphic_compiles_name_it_cannot_bind_is_refused():
    """Review r6 of s51 f1's ff3ac5f: called inside a trace, a polymorphic compile's str size
    naming its own symbol that no axis gives alone (declared `2*n`), that two arguments give
    different sizes, or beside a symbol it does not declare ('n+m'), was read as the
    enclosing trace's symbol of that name: eye('n') of a ("2*n", 2) argument of 6 rows was
    5 x 5 inside a plan whose own n was 5 (3 x 3 called alone), zeros(('n+m',)) 8 long, not
    3 + 3. Refused now in one line naming the size; a name its axis gives alone is still its
    size, whatever the enclosing trace calls n. (Later: `2*n` binds where the size solves it,
    here the enclosing trace's m rows or 5; 'n+m' is refused as alone, m being undeclared.)"""
    x5, y3, y6 = (np.ones((r, 2), np.float32) for r in (5, 3, 6))
    a3, b4 = np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)
    outer = lambda pf: gc.compile(lambda x, y: pf(y) + gc.sum(x),  # noqa: E731
                                  polymorphic_shapes=(("n", 2), ("m", 2)))
    alone = gc.compile(lambda y: gc.sum(gc.eye("n")), polymorphic_shapes=(("n", 2),))
    assert outer(alone)(x5, y3) == 3 + 10 and alone(y3) == 3
    twice = gc.compile(lambda y: gc.sum(gc.eye("n")), polymorphic_shapes=(("2*n", 2),))
    mixed = gc.compile(lambda y: gc.sum(gc.zeros(("n+m",)) + 1), polymorphic_shapes=(("n", 2),))
    both = gc.compile(lambda a, b: gc.sum(gc.eye("n")) + gc.sum(a) + gc.sum(b),
                      polymorphic_shapes=(("n",), ("n",)))
    assert twice(y6) == 3
    for run, text, name in ((lambda: outer(twice)(x5, y6), "'n'", "n"),
                            # (6 rows bind n = 3: test_inline_polymorphic_sizes_as_alone)
                            (lambda: gc.vmap(twice)(np.ones((2, 5, 2), np.float32)), "'n'", "n"),
                            (lambda: gc.vmap(both)(a3, b4), "'n'", "n"),
                            (lambda: gc.compile(both)(a3[0], b4[0]), "'n'", "n")):
        with pytest.raises(GraphcError) as info:
            run()
        line, where = str(info.value).splitlines()
        assert re.fullmatch(rf"\w+: a size {text} names {name}, to which the compiled "
                            r"function's polymorphic_shapes give no one axis size of this "
                            r"call \(it is called inside a trace\), so nothing binds it",
                            line), line
        assert "test_shape_polymorphism.py" in where
    for run in (lambda: outer(mixed)(x5, y3), lambda: mixed(y3)):  # (m: declared by none)
        with pytest.raises(GraphcError, match=r"^zeros: a size 'n\+m' names m, which is not "
                                              r"the size of any input's axis, so no call"):
            run()
    np.testing.assert_array_equal(gc.vmap(both)(a3, a3), [9.0, 9.0])


def test_inline_polymorphic_sizes_as_alone():
    """A polymorphic compile called inside a trace reads its str sizes as a call of its own
    binds them (review r6 leftovers): a name declared only as `2*n` was refused inline (under
    gc.vmap, gc.grad, a compile) where alone 6 rows bind n = 3; now the inline call solves
    2*n = 6 as the standalone binding does (ir.specialize.solve_dim), from a symbolic size
    too where it divides (`2*k` rows: n = k). A name it does not declare at all (eye('m'),
    only the enclosing trace has m) was the enclosing trace's m inline (5 x 5) and refused
    alone: refused inline too, in the same words."""
    x5, y3, y6 = (np.ones((r, 2), np.float32) for r in (5, 3, 6))

    def outer(pf, shape):
        return gc.compile(lambda x, y: pf(y) + gc.sum(x), polymorphic_shapes=(("m", 2), shape))
    # eye(n) * 2 sums to 6 and 2n+1 ones to 7 for n = 3
    twice = gc.compile(lambda y: gc.sum(gc.eye("n") * 2) + gc.sum(gc.zeros(("2*n+1",)) + 1),
                       polymorphic_shapes=(("2*n", 2),))
    assert twice(y6) == 13
    assert outer(twice, None)(x5, y6) == outer(twice, ("2*k", 2))(x5, y6) == 13 + 10
    np.testing.assert_array_equal(gc.vmap(twice)(np.ones((2, 6, 2), np.float32)), [13, 13])
    np.testing.assert_array_equal(gc.compile(gc.vmap(twice))(np.ones((2, 6, 2), np.float32)),
                                  [13, 13])
    np.testing.assert_array_equal(gc.grad(lambda y: twice(y) * gc.sum(y))(y6),
                                  np.full((6, 2), 13.0))
    other = gc.compile(lambda y: gc.sum(gc.eye("m")), polymorphic_shapes=(("n", 2),))
    for run in (lambda: other(y3), lambda: outer(other, ("k", 2))(x5, y3),
                lambda: outer(other, None)(x5, y3), lambda: gc.vmap(other)(y3[None])):
        with pytest.raises(GraphcError) as info:
            run()
        line, where = str(info.value).splitlines()
        assert line == ("eye: a size 'm' names m, which is not the size of any input's axis, "
                        "so no call binds it"), line
        assert "test_shape_polymorphism.py" in where
