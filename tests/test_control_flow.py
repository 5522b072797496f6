"""Structured control flow (graphc/control_flow.py): scan, fori_loop, while_loop and cond
against the unrolled Python loop / Python `if` on random inputs: values compiled, eagerly and
in the reference interpreter, float64 gradients (reverse mode, to 1e-10), jvp against finite
differences, second derivatives; the IR forms (printer, parser, JSON, verifier, dump); the
errors a user meets."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from ir.ops.registry import apply
from ir.parser import parse
from ir.printer import format_graph
from ir.region import Region
from ir.serialize import dumps, loads
from ir.verify import verify
from passes.manager import optimize
from runtime.interpreter import evaluate

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-10


def _close(a, b, tol=TOL):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _leaves(t)]
    return [tree]


# ---- scan ---------------------------------------------------------------------------------
def _cell(w, u):
    """A step with a pytree carry (a dict and a tuple) and a pytree of per-step outputs."""
    def step(carry, x):
        h, (c,) = carry["h"], carry["c"]
        h = gc.tanh(x["a"] @ w + h * c + x["b"])
        c = c * gc.sigmoid(h) + u
        return {"h": h, "c": (c,)}, (h * x["b"], {"s": gc.sum(c, axis=-1)})
    return step


def _scan_model(reverse):
    def model(h, c, a, b, w, u):
        step = _cell(w, u)
        carry, (ys, extra) = gc.scan(step, {"h": h, "c": (c,)}, {"a": a, "b": b},
                                     reverse=reverse)
        return gc.sum(carry["h"] * carry["c"][0]) + gc.sum(ys * ys) + gc.sum(gc.sin(extra["s"]))
    return model


def _unrolled_model(reverse):
    def model(h, c, a, b, w, u):
        step = _cell(w, u)
        carry, outs = {"h": h, "c": (c,)}, [None] * a.shape[0]
        order = range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0])
        for t in order:
            carry, outs[t] = step(carry, {"a": a[t], "b": b[t]})
        ys = gc.stack([o[0] for o in outs], 0)
        s = gc.stack([o[1]["s"] for o in outs], 0)
        return gc.sum(carry["h"] * carry["c"][0]) + gc.sum(ys * ys) + gc.sum(gc.sin(s))
    return model


def _scan_inputs(seed, T=6):
    rng = np.random.default_rng(seed)
    B, D, H = 2, 3, 4
    return [rng.normal(size=(B, H)), rng.normal(size=(B, H)), rng.normal(size=(T, B, D)),
            rng.normal(size=(T, B, H)), rng.normal(size=(D, H)) * 0.5, rng.normal(size=H)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_scan_values_match_the_unrolled_loop_compiled_eager_and_interpreted(reverse, seed):
    args = _scan_inputs(seed)
    expected = float(gc.compile(_unrolled_model(reverse))(*args))
    model = _scan_model(reverse)
    _close(gc.compile(model)(*args), expected)
    _close(model(*[gc.tensor(a) for a in args]).data, expected)  # eager: a Python loop
    graph = gc.trace(model, *args)
    assert [n.op for n in graph.nodes].count("scan") == 1
    _close(evaluate(graph, args)[0], expected)
    _close(gc.compile(model, pipeline="O0")(*args), expected)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_gradients_match_the_unrolled_loop_in_float64(reverse):
    args = _scan_inputs(2)
    nums = tuple(range(6))
    got = gc.grad(_scan_model(reverse), argnums=nums)(*args)
    want = gc.grad(_unrolled_model(reverse), argnums=nums)(*args)
    for g, w in zip(got, want):
        assert np.abs(w).max() > 1e-3  # every input matters
        _close(g, w)
    # the eager tape through the Python loop agrees too
    tensors = [gc.tensor(a, requires_grad=True) for a in args]
    _scan_model(reverse)(*tensors).backward()
    for t, w in zip(tensors, want):
        _close(t.grad, w)


def _central_difference(fn, args, direction, eps=1e-6):
    plus = [a + eps * d for a, d in zip(args, direction)]
    minus = [a - eps * d for a, d in zip(args, direction)]
    return (float(gc.compile(fn)(*plus)) - float(gc.compile(fn)(*minus))) / (2 * eps)


def test_scan_jvp_matches_finite_differences_and_the_unrolled_jvp():
    args = _scan_inputs(3)
    rng = np.random.default_rng(30)
    direction = [rng.normal(size=a.shape) for a in args]
    value, tangent = gc.jvp(_scan_model(False), args, direction)
    _, unrolled = gc.jvp(_unrolled_model(False), args, direction)
    _close(tangent, unrolled)
    np.testing.assert_allclose(float(tangent), _central_difference(_scan_model(False), args,
                                                                   direction), rtol=1e-6)


def test_scan_second_derivatives_match_the_unrolled_loop():
    args = _scan_inputs(4)
    v = np.random.default_rng(40).normal(size=args[4].shape)

    def hvp(model):
        return gc.grad(lambda *a: gc.sum(gc.grad(model, argnums=4)(*a) * v), argnums=4)(*args)

    _close(hvp(_scan_model(False)), hvp(_unrolled_model(False)))


def test_scan_without_xs_takes_length_and_stacks_outputs():
    def model(x):
        return gc.scan(lambda c, _: (c * 0.5, c + 1.0), x, None, length=4)

    x = np.array([1.0, 2.0])
    last, ys = gc.compile(model)(x)
    _close(last, x / 16)
    _close(ys, np.stack([x / 2 ** t + 1.0 for t in range(4)]))


def test_nested_scans_match_nested_loops_with_gradients():
    rng = np.random.default_rng(5)
    xs, w = rng.normal(size=(3, 4, 2)), rng.normal(size=(2, 2)) * 0.5

    def inner_step(h, x):
        return gc.tanh(h @ w + x), None

    def nested(xs, w_unused):
        def outer_step(h, row):
            h, _ = gc.scan(inner_step, h, row)
            return h * 0.9, gc.sum(h)
        h, sums = gc.scan(outer_step, gc.zeros(2, "float64"), xs)
        return gc.sum(h) + gc.sum(sums * sums)

    def loops(xs, w_unused):
        h, sums = gc.zeros(2, "float64"), []
        for row in xs:
            for x in row:
                h = gc.tanh(h @ w + x)
            sums.append(gc.sum(h))
            h = h * 0.9
        return gc.sum(h) + gc.sum(gc.stack(sums) ** 2)

    _close(gc.compile(nested)(xs, w), gc.compile(loops)(xs, w))
    _close(gc.grad(nested)(xs, w), gc.grad(loops)(xs, w))


def _rnn_loss(T):
    def loss(h, xs, w):
        def step(h, x):
            h = gc.tanh(x + h @ w)
            return h, h
        _, hs = gc.scan(step, h, xs)
        return gc.sum(hs * hs)
    return loss, [gc.spec((2, 3), "float64"), gc.spec((T, 2, 3), "float64"),
                  gc.spec((3, 3), "float64")]


def test_the_compiled_scan_graph_does_not_grow_with_the_sequence_length():
    sizes = []
    for T in (4, 64):
        loss, specs = _rnn_loss(T)
        graph = optimize(gc.trace(gc.value_and_grad(loss, argnums=(0, 1, 2)), *specs))
        sizes.append(len(graph.nodes))
        # the forward scan and its gradient's carry-saving copy are one scan (passes/cse.py),
        # the backward is the other
        assert [n.op for n in graph.nodes].count("scan") == 2
    assert sizes[0] == sizes[1]


def test_a_region_plan_is_built_once_and_run_per_step():
    loss, _ = _rnn_loss(5)
    rng = np.random.default_rng(6)
    args = [rng.normal(size=(2, 3)), rng.normal(size=(5, 2, 3)), rng.normal(size=(3, 3))]
    step = gc.compile(gc.value_and_grad(loss, argnums=(1, 2)))
    first = step(*args)
    plan = step.plan_for(*args)
    runners = [v for k, v in plan._globals.items() if k.startswith("run_")]
    assert len(runners) == 2
    built = [dict(r.plans) for r in runners]
    assert all(len(b) == 1 for b in built)
    again = step(*args)
    assert [dict(r.plans) for r in runners] == built  # the same plan objects
    _close(first[0], again[0], 0)


# ---- fori_loop and while_loop --------------------------------------------------------------
def test_fori_loop_with_python_bounds_is_a_differentiable_scan():
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=3), rng.normal(size=(3, 3)) * 0.5

    def looped(x, w):
        return gc.sum(gc.fori_loop(2, 6, lambda i, v: gc.tanh(v @ w) * gc.cast(i, "float64"), x))

    def unrolled(x, w):
        for i in range(2, 6):
            x = gc.tanh(x @ w) * float(i)
        return gc.sum(x)

    graph = gc.trace(looped, x, w)
    assert [n.op for n in graph.nodes].count("scan") == 1
    _close(gc.compile(looped)(x, w), gc.compile(unrolled)(x, w))
    for g, want in zip(gc.grad(looped, argnums=(0, 1))(x, w),
                       gc.grad(unrolled, argnums=(0, 1))(x, w)):
        _close(g, want)
    # no iterations: the initial value itself
    _close(gc.compile(lambda x: gc.fori_loop(3, 3, lambda i, v: v * 2.0, x))(x), x)


def test_a_loop_bound_as_a_tensor_numpy_cannot_read_is_one_line():
    """r9: fori_loop read its bounds' dtype with np.asarray before checking them, and torch's
    __array__ refuses a bfloat16 tensor: a raw TypeError. A float bound is refused in one
    line, as scan's length is (an int tensor is its number)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    bf16 = torch.tensor(3.0, dtype=torch.bfloat16)
    with pytest.raises(GraphcError, match=r"^fori_loop: upper must be an int, got "
                                          r"tensor\(3\., dtype=torch\.bfloat16\)\n"):
        gc.fori_loop(0, bf16, lambda i, v: v, np.float64(0))
    with pytest.raises(GraphcError, match=r"^scan: length must be an int, got "
                                          r"tensor\(3\., dtype=torch\.bfloat16\)\n"):
        gc.scan(lambda c, x: (c, x), 0.0, None, length=bf16)
    assert float(gc.fori_loop(1, torch.tensor(4), lambda i, v: v + gc.cast(i, "float64"),
                              np.float64(0))) == 1 + 2 + 3


def test_fori_loop_with_traced_bounds_and_while_loop_match_python_loops():
    def grow(x, limit):
        def body(carry):
            x, steps = carry
            return gc.where(x > 1.0, x * 1.5, x + 1.0), steps + 1
        return gc.while_loop(lambda c: c[0] < limit, body, (x, gc.zeros((), "int64")))

    def python_grow(x, limit):
        steps = 0
        while x < limit:
            x, steps = (x * 1.5 if x > 1.0 else x + 1.0), steps + 1
        return x, steps

    compiled = gc.compile(grow)
    graph = gc.trace(grow, np.asarray(0.0), np.asarray(0.0))
    for x, limit in ((0.0, 0.0), (0.25, 10.0), (-3.0, 100.0)):
        want_x, want_steps = python_grow(x, limit)
        args = [np.asarray(x), np.asarray(limit)]
        for got_x, got_steps in (compiled(*args), evaluate(graph, args),
                                 [t.data for t in grow(*[gc.tensor(a) for a in args])]):
            _close(got_x, want_x, 0)
            assert int(got_steps) == want_steps

    def sum_below(n, x):
        return gc.fori_loop(gc.zeros((), "int64"), n, lambda i, v: v + gc.cast(i, "float64"), x)

    assert "while_loop" in [n.op for n in gc.trace(sum_below, np.asarray(5), 0.0).nodes]
    for n in (0, 1, 7):
        _close(gc.compile(sum_below)(np.asarray(n), np.asarray(0.5)), 0.5 + n * (n - 1) / 2)


@pytest.mark.parametrize("bound, index", [
    (np.int8, "int32"), (np.int16, "int32"), (np.uint8, "int32"), (np.uint16, "int32"),
    (np.uint32, "int64"), (np.uint64, "int64"), (np.int32, "int32"), (np.int64, "int64")])
def test_fori_loop_bounds_of_a_small_int_dtype_are_widened_eager_and_compiled(bound, index):
    # numpy int8 / uint8 / ... bounds ran eagerly (an int8 index) but compiled were refused
    # ("dtype int8 is not supported"): the index is now int32 (int64 for uint32 and uint64)
    # both ways. 120..127 in int8: i * i would wrap in int8 (JAX keeps int8 there)
    seen = []

    def f(c):
        def body(i, c):
            seen.append(np.dtype(i.dtype))
            return c + gc.cast(i * i, "float64")
        return gc.fori_loop(bound(120), bound(127), body, c)

    want = float(sum(i * i for i in range(120, 127)))
    for run in (f, gc.compile(f)):
        seen.clear()
        assert float(np.asarray(run(np.float64(0.0)))) == want
        assert seen and set(seen) == {np.dtype(index)}


# fori_loop's index is a strong int64 where JAX's is weakly typed (README, Control flow): the
# idiom is to cast it to the carry's dtype. Expected values: JAX 0.10.2's for the uncast body
# (`c + i * 0.5`, `int32_c * (i + 3) - i`, ...), jax.lax.fori_loop with x64 on, computed once.
_X32 = np.array([0.25, -1.5, 2.0], np.float32)
_N32 = np.array([1, -2, 7], np.int32)
_CAST_INDEX = [
    ("c + cast(i) * 0.5", lambda c: gc.fori_loop(
        0, 4, lambda i, c: c + gc.cast(i, c.dtype) * 0.5, c), _X32, [3.25, 1.5, 5.0]),
    ("c * cast(i) + 1", lambda c: gc.fori_loop(
        1, 5, lambda i, c: c * gc.cast(i, c.dtype) + 1.0, c), _X32, [47.0, 5.0, 89.0]),
    ("int32 c + cast(i)", lambda c: gc.fori_loop(
        -2, 3, lambda i, c: c * (gc.cast(i, "int32") + 3) - gc.cast(i, "int32"), c), _N32,
     [413, 53, 1133]),
    ("nested int32", lambda c: gc.fori_loop(0, 3, lambda i, c: gc.fori_loop(
        0, 3, lambda j, d: d + gc.cast(i, "int32") * gc.cast(j, "int32") + gc.cast(j, "int32"),
        c), c), _N32, [19, 16, 25]),
]


@pytest.mark.parametrize("name, f, x, want", _CAST_INDEX, ids=[c[0] for c in _CAST_INDEX])
def test_the_strong_fori_loop_index_cast_to_the_carry_gives_jax_s_values(name, f, x, want):
    for got in (gc.compile(f)(x), f(gc.tensor(x)), f(x)):  # compiled, eager tensor and numpy
        got = np.asarray(got)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, np.asarray(want, x.dtype))


def test_differentiating_a_while_loop_is_one_clear_error():
    def f(x):
        return gc.sum(gc.while_loop(lambda v: gc.sum(v) < 10.0, lambda v: v * 2.0, x))

    with pytest.raises(GraphcError) as info:
        gc.grad(f)(np.ones(2))
    message = str(info.value)
    assert message.splitlines()[0] == (
        "while_loop has no reverse-mode gradient: its trip count is only known when it runs; "
        "use fori_loop with Python-int bounds, or scan, or forward mode (jvp, jacfwd) (a "
        "bound passed as an argument of the differentiated function is traced, not a Python "
        "int: close over it, e.g. with functools.partial)")
    assert "test_control_flow.py" in message.splitlines()[1]


# ---- cond ---------------------------------------------------------------------------------
def _branchy(x, w, offset):
    shift = gc.exp(offset)  # read by the true branch only, from outside it

    def big(x, w):
        return {"y": gc.tanh(x @ w) * shift, "n": gc.sum(x)}

    def small(x, w):
        return {"y": x @ (w * w) + 1.0, "n": gc.sum(x * x)}

    out = gc.cond(gc.sum(x) > 0.0, big, small, x, w)
    return gc.sum(out["y"] * out["y"]) + out["n"]


def _branchy_python(x, w, offset):
    if float(np.sum(x)) > 0.0:
        y, n = np.tanh(x @ w) * np.exp(offset), np.sum(x)
    else:
        y, n = x @ (w * w) + 1.0, np.sum(x * x)
    return np.sum(y * y) + n


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_matches_python_if_in_values_gradients_and_jvp(sign):
    rng = np.random.default_rng(8)
    x = sign * np.abs(rng.normal(size=(2, 3)))
    w, offset = rng.normal(size=(3, 3)), rng.normal(size=3)
    args = [x, w, offset]
    _close(gc.compile(_branchy)(*args), _branchy_python(*args))
    _close(_branchy(*[gc.tensor(a) for a in args]).data, _branchy_python(*args))
    graph = gc.trace(_branchy, *args)
    assert [n.op for n in graph.nodes].count("cond") == 1
    _close(evaluate(graph, args)[0], _branchy_python(*args))
    grads = gc.grad(_branchy, argnums=(0, 1, 2))(*args)
    for k, g in enumerate(grads):  # central differences of the Python `if`
        numeric = np.zeros_like(args[k])
        for idx in np.ndindex(args[k].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[k][idx] += 1e-6
            minus[k][idx] -= 1e-6
            numeric[idx] = (_branchy_python(*plus) - _branchy_python(*minus)) / 2e-6
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7)
    if sign < 0:
        _close(grads[2], 0)  # the branch not taken reads offset: no gradient
    direction = [rng.normal(size=a.shape) for a in args]
    _, tangent = gc.jvp(_branchy, args, direction)
    expected = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
    _close(tangent, expected)


def test_cond_inside_scan_matches_the_python_loop_with_gradients():
    rng = np.random.default_rng(9)
    xs, w = rng.normal(size=(6, 3)), rng.normal(size=(3, 3)) * 0.5

    def model(xs, w):
        def step(h, x):
            h = gc.cond(gc.sum(x) > 0, lambda h: gc.tanh(h @ w + x), lambda h: h * x, h)
            return h, gc.sum(h)
        return gc.sum(gc.scan(step, gc.ones(3, "float64"), xs)[1])

    def loop(xs_traced, w):  # the branch each step takes, decided in Python on the values
        h, total = gc.ones(3, "float64"), 0.0
        for x, value in zip(xs_traced, xs):
            h = gc.tanh(h @ w + x) if float(np.sum(value)) > 0 else h * x
            total = total + gc.sum(h)
        return total

    _close(gc.compile(model)(xs, w), gc.compile(loop)(xs, w))
    for g, want in zip(gc.grad(model, argnums=(0, 1))(xs, w), gc.grad(loop, argnums=(0, 1))(xs, w)):
        _close(g, want)


def test_cond_with_a_concrete_predicate_runs_one_branch():
    calls = []

    def f(x):
        return gc.cond(True, lambda v: calls.append("t") or v * 2.0,
                       lambda v: calls.append("f") or v, x)

    _close(gc.compile(f)(np.ones(2)), 2.0)
    assert calls == ["t"]


# ---- the IR forms -------------------------------------------------------------------------
def _grad_graph():
    def f(h, xs, w):
        def step(h, x):
            h = gc.tanh(x + h @ w)
            return h, h * 2.0
        h, ys = gc.scan(step, h, xs)
        return gc.cond(gc.sum(h) > 0, lambda a: gc.sum(a), lambda a: gc.sum(a * a), ys)
    specs = [gc.spec((2, 3), "float64"), gc.spec((5, 2, 3), "float64"),
             gc.spec((3, 3), "float64")]
    return gc.trace(gc.grad(f, argnums=(0, 1, 2)), *specs)


def test_regions_print_nested_and_parse_and_serialise_back():
    graph = _grad_graph()
    text = format_graph(graph, locations=True, max_inline=None)
    assert "{body={\n    graph step_body(" in text and "\n  }, consts=1, carries=1" in text
    assert "branches=({\n    graph <lambda>_false(" in text
    parsed = parse(text)
    verify(parsed)
    assert format_graph(parsed, locations=True, max_inline=None) == text
    from_json = loads(dumps(graph))
    verify(from_json)
    assert format_graph(from_json, locations=True, max_inline=None) == text
    rng = np.random.default_rng(10)
    args = [rng.normal(size=(2, 3)), rng.normal(size=(5, 2, 3)), rng.normal(size=(3, 3))]
    for other in (parsed, from_json):
        for a, b in zip(evaluate(graph, args), evaluate(other, args)):
            _close(a, b, 0)


def test_the_verifier_checks_a_body_against_the_carries():
    graph = gc.Graph("g")
    with graph.building():
        h = graph.input("h", (3,), "float64")
        xs = graph.input("xs", (4, 3), "float64")
        body = Region("body")
        with body.building():
            c, x = body.input("c", (3,), "float64"), body.input("x", (3,), "float64")
            body.set_outputs([c + x, c])
        node = apply("scan", h, xs, body=body, consts=0, carries=1, length=4)
        graph.set_outputs([apply("tuple_get", node, index=0)])
    verify(graph)
    wrong = Region("wrong")
    with wrong.building():
        c, x = wrong.input("c", (3,), "float64"), wrong.input("x", (3,), "float64")
        wrong.set_outputs([gc.sum(c), c])
    node.attrs["body"] = wrong
    with pytest.raises(GraphcError, match=r"node 2 \(scan\): ill-typed: body returns carries "
                                          r"\(f64\[\]\) for carries \(f64\[3\]\)"):
        verify(graph)


def test_dump_collapse_prints_a_shared_body_once(tmp_path):
    model = tmp_path / "rnn.py"
    model.write_text(
        "import graphc as gc\n"
        "def rnn(h, xs, w):\n"
        "    def step(h, x):\n"
        "        h = gc.tanh(x + h @ w)\n"
        "        return h, h\n"
        "    return gc.sum(gc.scan(step, h, xs)[1])\n"
        "def build():\n"
        "    return rnn, gc.spec((2, 3)), gc.spec((6, 2, 3)), gc.spec((3, 3))\n")

    def dump(*flags):
        run = subprocess.run([sys.executable, "-m", "graphc.cli", "dump", f"{model}:build",
                              "--grad", "-O0", *flags], cwd=ROOT, capture_output=True,
                             text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0, run.stderr
        return run.stdout

    full, collapsed = dump(), dump("--collapse")
    assert full.count("graph step_body(") == 2  # the scan and its carry-saving copy
    assert collapsed.count("graph step_body(") == 1
    assert "body={ step_body: as printed above }" in collapsed
    assert collapsed.count("graph step_body_vjp(") == 1


# ---- errors -------------------------------------------------------------------------------
def _one_line_error(fn, *args):
    with pytest.raises(GraphcError) as info:
        gc.compile(fn)(*args)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  at "), str(info.value)
    return lines


def test_a_body_returning_a_carry_of_another_shape_is_one_line_naming_it():
    def model(h, xs):
        def grows(h, x):
            return gc.concat([h, x], 0), x
        return gc.scan(grows, h, xs)[0]

    first, where = _one_line_error(model, np.zeros(3), np.zeros((4, 3)))
    assert first.startswith("scan function grows (defined at ") and \
        first.endswith("returns the carry as (f32[6]) but it came in as (f32[3])".replace(
            "f32", "f64"))
    assert "test_control_flow.py" in first and "test_control_flow.py" in where


def test_other_misuse_is_one_line_each():
    x = np.zeros(3)
    xs = np.zeros((4, 3))
    first, _ = _one_line_error(lambda h, xs: gc.scan(lambda c, x: ({"c": c}, x), h, xs)[0], x, xs)
    assert "must return a carry with the structure of the initial one" in first
    first, _ = _one_line_error(lambda h, xs: gc.scan(lambda c, x: c, h, xs)[0], x, xs)
    assert "must return a pair (carry, y)" in first
    first, _ = _one_line_error(
        lambda h, xs: gc.scan(lambda c, x: (c, x), h, (xs, np.zeros((5, 3))))[0], x, xs)
    assert first == "scan: the leaves of xs (and length=) disagree on the length: [4, 5]"
    first, _ = _one_line_error(
        lambda h: gc.cond(gc.sum(h) > 0, lambda v: v, lambda v: gc.sum(v), h), x)
    assert first.startswith("cond: true_fun <lambda> (defined at ") and \
        "returns (f64[3]) but false_fun <lambda> returns (f64[])" in first
    first, _ = _one_line_error(
        lambda h: gc.while_loop(lambda v: gc.sum(v), lambda v: v, h), x)
    assert "must return a bool scalar, got (f64[])" in first


@pytest.mark.parametrize("call, says", [
    (lambda t: gc.scan(lambda c, x: (c + x, c), np.float32(0), t), "scan: xs is"),
    (lambda t: gc.scan(lambda c, x: (c + x, c), t, np.ones(3, np.float32)), "scan: init is"),
    (lambda t: gc.scan(lambda c, x: (c, x), {"h": t}, np.ones(3)), "scan: init holds"),
    (lambda t: gc.scan(lambda c, x: (c, x), 0.0, (np.ones(3), t)), "scan: xs holds"),
    (lambda t: gc.fori_loop(0, 3, lambda i, c: c + 1, t), "fori_loop: init_val is"),
    (lambda t: gc.while_loop(lambda c: gc.sum(c) < 9, lambda c: c + 1, t),
     "while_loop: init_val is"),
    (lambda t: gc.map(lambda x: x + 1, t), "map: xs is")])
def test_a_torch_tensor_argument_of_a_loop_is_one_line_naming_it(call, says):
    # a torch.Tensor leaf met numpy deep inside: a bare TypeError "Cannot interpret
    # 'torch.float32' as a data type" (while_loop: gc.sum's line, from inside cond_fun)
    t = _refused_as_a_torch_operand(call, says)
    # the numpy array it asks for runs, as the loop over the values does
    np.testing.assert_array_equal(gc.map(lambda x: x + 1, t.numpy()), [2.0, 2.0, 2.0])


def _refused_as_a_torch_operand(call, says):
    """call(t) of a torch tensor t, eagerly and inside gc.compile, is the one line `says` ...
    naming the test's line; returns t."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    t = torch.ones(3)
    for run in (call, lambda t: gc.compile(lambda v: call(t))(np.zeros(3))):
        with pytest.raises(GraphcError, match=rf"^{re.escape(says)} a torch\.Tensor, another "
                                              r"library's array; pass numpy arrays or gc "
                                              r"tensors \(x\.numpy\(\), or np\.asarray\(x\)\)"
                                              r"\n  at [^\n]*test_control_flow\.py:\d+$"):
            run(t)
    return t


@pytest.mark.parametrize("call, says", [
    (lambda t: gc.cond(True, lambda a: a * 2, lambda a: a, t), "cond: operands[0] is"),
    (lambda t: gc.cond(False, lambda a, b: b["h"], lambda a, b: a, np.ones(3), {"h": t}),
     "cond: operands[1] holds"),
    (lambda t: gc.switch(1, [lambda a: a * 2, lambda a: a + 1], t), "switch: operands[0] is"),
    (lambda t: gc.switch(0, [lambda a, b: b[0]], np.ones(3), (t,)), "switch: operands[1] holds")])
def test_a_torch_tensor_operand_of_cond_and_switch_is_one_line_naming_it(call, says):
    # f5 item 5: eagerly the branch ran on the torch tensor and returned a torch result
    # (cond(True, f, g, torch.ones(3)) was tensor([2., 2., 2.])); compiled, numpy's bare
    # TypeError "Cannot interpret 'torch.float32' as a data type". As the loops do (above)
    t = _refused_as_a_torch_operand(call, says)
    # the numpy array it asks for runs
    np.testing.assert_array_equal(call(t.numpy()), [2.0, 2.0, 2.0] if "[0] is" in says else
                                  [1.0, 1.0, 1.0])


# ---- what a body may read and return ------------------------------------------------------
def test_a_layer_used_inside_a_body_is_an_operand_of_the_node_and_trains():
    gc.nn.manual_seed(0)
    layer = gc.nn.Linear(3, 3, dtype="float64")
    rng = np.random.default_rng(11)
    h, xs = rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 3))

    def model(h, xs):
        return gc.sum(gc.scan(lambda c, x: (gc.tanh(layer(c) + x), c * x), h, xs)[1])

    graph = gc.trace(model, h, xs)
    scan_node = next(n for n in graph.nodes if n.op == "scan")
    assert [i.attrs["name"] for i in scan_node.inputs[:2]] == ["weight", "bias"]
    eager = model(gc.tensor(h), gc.tensor(xs))
    _close(gc.compile(model)(h, xs), eager.data)
    eager.backward()
    want = layer.weight.grad.copy()
    params = layer.params()
    grads = gc.grad(lambda p: gc.sum(gc.scan(
        lambda c, x: (gc.tanh(layer.apply(p, c) + x), c * x), h, xs)[1]))(params)
    _close(grads["weight"], want)


def test_bodies_may_pass_values_through_and_scan_zero_steps():
    h, xs = np.ones((2, 3)), np.arange(24.0).reshape(4, 2, 3)
    last, ys = gc.compile(lambda h, xs: gc.scan(lambda c, x: (c, x), h, xs))(h, xs)
    _close(last, h, 0)
    _close(ys, xs, 0)
    g_h, g_xs = gc.grad(lambda h, xs: gc.sum(gc.scan(lambda c, x: (c, x * c), h, xs)[1]),
                        argnums=(0, 1))(h, xs)
    _close(g_h, xs.sum(0))
    _close(g_xs, np.ones_like(xs))
    last, ys = gc.compile(lambda h, xs: gc.scan(lambda c, x: (c + x, x), h, xs))(h, xs[:0])
    _close(last, h, 0)
    assert ys.shape == (0, 2, 3)


def test_a_checked_run_names_the_scan_that_made_a_nan():
    def model(x, xs):
        return gc.scan(lambda c, x: (c * x, gc.log(c)), x, xs)[1]

    with pytest.raises(GraphcError) as info:
        gc.compile(model).call((np.ones(2), -np.ones((3, 2))), checked=True)
    assert str(info.value).startswith("non-finite value: 2 of 6 elements of tuple_get")
    assert "test_control_flow.py" in str(info.value)


def test_dropout_inside_a_body_follows_train_and_eval_and_draws_per_call():
    drop = gc.nn.Dropout(0.5)
    xs = np.ones((4, 3))

    def total(xs):
        return gc.scan(lambda c, x: (c + drop(x), c), gc.zeros(3, "float64"), xs)[0]

    step = gc.compile(total)
    draws = [step(xs) for _ in range(6)]
    for d in draws:  # a mask per step (each 0 or 2), drawn anew every call
        assert set(np.unique(d)) <= {0.0, 2.0, 4.0, 6.0, 8.0}
    assert len({tuple(d) for d in draws}) > 1  # the plan's dropout key is fresh per call
    drop.eval()
    _close(step(xs), np.full(3, 4.0), 0)  # model.eval() selects another plan
    drop.train()
    assert set(np.unique(step(xs))) <= {0.0, 2.0, 4.0, 6.0, 8.0}


def test_dce_drops_unread_per_step_outputs_from_a_scan_body():
    def model(h, xs, w):
        def step(c, x):
            c = gc.tanh(x + c @ w)
            return c, (gc.exp(c @ w @ w), c * 2.0, gc.sum(c))  # the first is never read
        last, (_, doubled, sums) = gc.scan(step, h, xs)
        return gc.sum(doubled) + gc.sum(sums) + gc.sum(last)

    rng = np.random.default_rng(12)
    args = [rng.normal(size=(2, 3)), rng.normal(size=(5, 2, 3)), rng.normal(size=(3, 3))]
    graph = gc.trace(model, *args)
    optimised = optimize(graph)
    verify(optimised)
    (scan_node,) = [n for n in optimised.nodes if n.op == "scan"]
    body = scan_node.attrs["body"]
    assert len(body.outputs) == 3 and "exp" not in [n.op for n in body.nodes]
    assert [n.attrs["index"] for n in optimised.nodes if n.op == "tuple_get"] == [0, 1, 2]
    _close(evaluate(optimised, args)[0], evaluate(graph, args)[0])
    _close(gc.compile(model)(*args), evaluate(graph, args)[0])
    grads = gc.grad(model, argnums=(0, 1, 2))(*args)  # the gradient's scans narrowed too
    unrolled = gc.grad(_unrolled_narrow, argnums=(0, 1, 2))(*args)
    for g, want in zip(grads, unrolled):
        _close(g, want)


def _unrolled_narrow(h, xs, w):
    total = 0.0
    for x in xs:
        h = gc.tanh(x + h @ w)
        total = total + gc.sum(h * 2.0) + gc.sum(h)
    return total + gc.sum(h)


def _bodies_returning_torch(torch):
    """Bodies of scan, fori_loop, cond, ... that return a torch tensor (and one that does
    not), named as the refusals name them."""
    def carry_body(c, x):
        return torch.ones(2), c

    def ys_body(c, x):
        return c + x, {"y": torch.ones(2)}

    def loop_body(i, c):
        return torch.ones(2)

    def branch(x):
        return torch.ones(2)

    def plain(x):
        return x
    return carry_body, ys_body, loop_body, branch, plain


def _assert_names_the_function(call, start, part):
    """call() is refused in one line starting `start` (the construct and function) naming
    where the function is defined, that it returns a torch tensor (`part`: in its carry...)."""
    with pytest.raises(gc.GraphcError) as info:
        call()
    line = str(info.value).splitlines()[0]
    assert re.match(re.escape(start) + r" \(defined at .*test_control_flow\.py:\d+\) "
                    r"returns a torch\.Tensor" + re.escape(part) + r", another library's "
                    r"array; return numpy arrays", line), line


def test_an_eager_body_returning_a_torch_tensor_is_one_line_naming_the_function():
    """An eager scan, fori_loop or while_loop body returning a torch carry (or scan ys, or a
    map result) met numpy as a bare "got a torch.Tensor" naming no function; an eager cond
    or switch handed the branch's torch result back as it was (traced, it is refused)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    c0, xs = np.zeros(2, np.float32), np.ones((3, 2), np.float32)
    carry_body, ys_body, loop_body, branch, plain = _bodies_returning_torch(torch)
    for call, start, part in [
            (lambda: gc.scan(carry_body, c0, xs), "scan function carry_body", " in its carry"),
            (lambda: gc.scan(ys_body, c0, xs), "scan function ys_body", " in its ys"),
            (lambda: gc.fori_loop(0, 3, loop_body, c0), "fori_loop body function loop_body",
             " in its carry"),
            (lambda: gc.while_loop(lambda c: c[0] < 3, lambda c: torch.ones(2), c0),
             "while_loop body function <lambda>", " in its carry"),
            (lambda: gc.cond(True, branch, plain, c0), "cond: true_fun branch", ""),
            (lambda: gc.cond(False, plain, branch, c0), "cond: false_fun branch", ""),
            (lambda: gc.switch(1, [plain, branch, plain], c0), "switch: branch 1 branch", ""),
            (lambda: gc.switch(2, [plain, plain, branch], c0), "switch: branch 2 branch", ""),
            (lambda: gc.map(branch, xs), "map: f branch", "")]:
        _assert_names_the_function(call, start, part)
    # the branch not taken is not run eagerly, so a torch result there is not seen
    np.testing.assert_array_equal(np.asarray(gc.cond(True, plain, branch, c0)), c0)


def test_a_traced_body_returning_a_torch_tensor_is_the_eager_line_naming_the_function():
    """r3 on c60688d: the same bodies traced (the loop under gc.grad, gc.vmap or gc.compile;
    a vmap'd cond with a batched predicate) were the bare "region result: got a
    torch.Tensor" naming nothing, and gc.map(f, xs, batch_size=2) said "vmap(f): output 0 is
    a Tensor, which is not a tensor". Now each is the eager line naming the function."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    c0, xs = np.zeros(2, np.float32), np.ones((3, 2), np.float32)
    rows = np.ones((4, 2), np.float32)
    carry_body, ys_body, loop_body, branch, plain = _bodies_returning_torch(torch)
    for call, start, part in [
            (lambda: gc.grad(lambda c: gc.sum(gc.scan(carry_body, c, xs)[0]))(c0),
             "scan function carry_body", " in its carry"),
            (lambda: gc.compile(lambda c: gc.scan(ys_body, c, xs)[1]["y"])(c0),
             "scan function ys_body", " in its ys"),
            (lambda: gc.vmap(lambda c: gc.fori_loop(0, 2, loop_body, c))(rows),
             "fori_loop body function loop_body", " in its carry"),
            (lambda: gc.compile(lambda c: gc.while_loop(lambda v: v[0] < 3,
                                                        lambda v: torch.ones(2), c))(c0),
             "while_loop body function <lambda>", " in its carry"),
            (lambda: gc.vmap(lambda c: gc.cond(c[0] > 0, branch, plain, c))(rows),
             "cond: true_fun branch", ""),
            (lambda: gc.compile(lambda c: gc.cond(c[0] > 0, plain, branch, c))(c0),
             "cond: false_fun branch", ""),
            (lambda: gc.compile(lambda c, i: gc.switch(i, [plain, branch], c))(c0, 1),
             "switch: branch 1 branch", ""),
            (lambda: gc.map(branch, xs, batch_size=2), "map: f branch", "")]:
        _assert_names_the_function(call, start, part)
    with pytest.raises(gc.GraphcError, match=r"^vmap\(branch\): output 0 is a torch\.Tensor, "
                                             "another library's array"):
        gc.vmap(branch)(xs)
    # the same programs returning numpy give numpy's values
    np.testing.assert_array_equal(
        gc.map(lambda x: x * 2, xs, batch_size=2), xs * 2)
    np.testing.assert_array_equal(
        gc.compile(lambda c: gc.cond(c[0] > 0, plain, lambda x: x + 1, c))(c0), c0 + 1)


def test_a_body_that_never_runs_is_not_built_so_its_negative_size_is_no_error():
    """s49: a compiled while_loop whose condition is false at once, or a scan of zero steps,
    built its body's plan before looping, and building refuses a body holding zeros((-2, 2))
    (fold) that eager never runs; a body that runs is still refused, as eagerly."""
    def body_value():
        return gc.sum(gc.zeros((-2, 2)) + 1)

    def never(x):
        return gc.while_loop(lambda c: gc.sum(c) > 100, lambda c: c + body_value(), x)

    def runs(x):
        return gc.while_loop(lambda c: gc.sum(c) < 100, lambda c: c + body_value(), x)

    def scan(x):
        return gc.scan(lambda c, xi: (c + body_value() + xi, c), gc.sum(x), x)

    x = np.ones(3, np.float32)
    for pipeline in ("default", "O0"):
        np.testing.assert_array_equal(gc.compile(never, pipeline=pipeline)(x), never(x))
        np.testing.assert_array_equal(gc.compile(never, pipeline=pipeline)(x), x)
        for got, want in zip(gc.compile(scan, pipeline=pipeline)(x[:0]), (0.0, [])):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(scan(x[:0]), (0.0, [])):
            np.testing.assert_array_equal(got, want)
        for f in (runs, scan):
            with pytest.raises(GraphcError, match="negative dimensions"):
                f(x)
            with pytest.raises(GraphcError, match="negative dimensions"):
                gc.compile(f, pipeline=pipeline)(x)
    # a symbolic scan whose length x[1:] is 0 at n = 1: the body's n-5 is not checked then
    def sliced(x):
        n = x.shape[0]
        return gc.scan(lambda c, xi: (c + gc.sum(gc.zeros((n - 5, 2)) + 1) + gc.sum(xi), c),
                       gc.sum(x), x[1:])
    poly = gc.compile(sliced, polymorphic_shapes=(("n", 2),))
    for n in (1, 7):
        xs = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
        for got, want in zip(poly(xs), sliced(xs)):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(GraphcError, match="negative dimensions"):
        poly(np.ones((3, 2), np.float32))


def test_a_scan_of_no_steps_whose_ys_has_a_negative_size_is_one_line_at_the_users_call():
    """review r9 (s49) of 178c86a: the eager scan of no steps types its ys by an eval_shape
    that no longer refuses a negative size; a ys of shape (-2,) then reached
    np.zeros((0, -2)), a bare ValueError naming no line. A negative size only inside the
    body (not in the ys) is still no error."""
    x = np.ones((3, 2), np.float32)
    for ys in (lambda: gc.zeros((-2,)), lambda: gc.zeros((-2, 2)) * 2):
        # (naming zeros, the function called, since s51: it was its op, full)
        with pytest.raises(GraphcError, match=r"^zeros\(\) failed: negative dimensions") as info:
            gc.scan(lambda c, xi: (c, ys()), np.float32(0), x[:0])
        assert any("test_control_flow.py" in str(loc) for loc in info.value.locs)
    carry, out = gc.scan(lambda c, xi: (c + gc.sum(gc.zeros((-2,))), xi), np.float32(0), x[:0])
    assert float(carry) == 0.0 and out.shape == (0, 2)


_PREDICATE_OPERAND = np.array([1.0, 2.0])
_DOUBLE, _NEGATE = (lambda v: v * 2.0), (lambda v: -v)


def _refused_in_one_line_here(call, message):
    """call() is refused with exactly `message`, located in this file (the user's line)."""
    with pytest.raises(GraphcError) as info:
        call()
    first, where = str(info.value).splitlines()
    assert first == message
    assert "test_control_flow.py" in where


def test_a_predicate_or_bound_numpy_cannot_type_is_one_line_at_the_users_call():
    """s49: cond described a refused predicate with a TensorType, which refuses the dtype
    itself: cond(None, ...), a str or a complex predicate (and an eager cond_fun returning
    one) were 'dtype object is not supported' located at '<string>:5' (the dataclass's
    __init__), naming neither cond nor the predicate. A Python int past int64 (an object to
    numpy) decided nothing: cond(2**70) is true, as `if 2**70:`; a scan length or fori_loop
    bound past int64 was a raw OverflowError (eager scan) or that same dtype line (compiled
    fori_loop), and is one line naming it."""
    x, double, negate = _PREDICATE_OPERAND, _DOUBLE, _NEGATE
    one_line = _refused_in_one_line_here

    for pred, said in ((None, "None"), ("yes", "<U3[]"), (1 + 2j, "complex128[]"),
                       (np.timedelta64(1, "s"), "timedelta64[s][]")):
        message = f"cond: the predicate must be a bool or integer scalar, got {said}"
        one_line(lambda: gc.cond(pred, double, negate, x), message)
        one_line(lambda: gc.compile(lambda v: gc.cond(pred, double, negate, v))(x), message)
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    for pred, said in ((torch.tensor(1.0, requires_grad=True), "f32[]"),
                       (torch.tensor(1.0, dtype=torch.bfloat16), "bf16[]")):
        one_line(lambda: gc.cond(pred, double, negate, x),
                 f"cond: the predicate must be a bool or integer scalar, got {said}")
    for result, said in ((None, "None"), (1 + 2j, "complex128[]")):
        with pytest.raises(GraphcError) as info:
            gc.while_loop(lambda c: result, double, x)
        assert str(info.value).splitlines()[0].endswith(f"must return a bool scalar, got {said}")
    for pred, want in ((2**70, x * 2.0), (-2**70, x * 2.0), (0, -x)):
        np.testing.assert_array_equal(np.asarray(gc.cond(pred, double, negate, x)), want)
        np.testing.assert_array_equal(
            gc.compile(lambda v: gc.cond(pred, double, negate, v))(x), want)
    for run in (lambda f: f(x), lambda f: gc.compile(f)(x)):
        one_line(lambda: run(lambda v: gc.scan(lambda c, _: (c, None), v, None, length=2**70)),
                 f"scan: length {2**70} does not fit in int64")
        one_line(lambda: run(lambda v: gc.fori_loop(0, 2**64, lambda i, c: c, v)),
                 f"fori_loop: upper {2**64} does not fit in int64")
        one_line(lambda: run(lambda v: gc.fori_loop(-2**63 - 1, 0, lambda i, c: c, v)),
                 f"fori_loop: lower {-2**63 - 1} does not fit in int64")
    # the edges of int64 still run (no step between them: the carry as it came)
    np.testing.assert_array_equal(
        gc.fori_loop(2**63 - 1, 2**63 - 1, lambda i, c: c * 2.0, x), x)
    np.testing.assert_array_equal(gc.fori_loop(-2**63, -2**63 + 2, lambda i, c: c * 2.0, x),
                                  x * 4.0)


def test_a_refused_known_predicate_array_or_span_is_one_line_naming_what_the_user_gave():
    """s49 review: an ndarray predicate was read through its .data buffer, so a 0-d
    timedelta64, datetime64 or bfloat16 array was a raw ValueError ('cannot include dtype
    'm' in a buffer'); a bfloat16 torch tensor above 0-d was named by its repr (many lines
    for a big one) and a 0-d one as f64[]; fori_loop(-2**63, 2**63 - 1), whose bounds both
    fit, was 'scan: length ... does not fit in int64', naming no argument the user gave."""
    import ml_dtypes
    x, double, negate = _PREDICATE_OPERAND, _DOUBLE, _NEGATE
    one_line = _refused_in_one_line_here

    cases = [(np.array(np.timedelta64(1, "s")), "timedelta64[s][]"),
             (np.array([np.datetime64(1, "s")]), "datetime64[s][1]"),
             (np.array(1.0, ml_dtypes.bfloat16), "bf16[]")]
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    cases += [(torch.ones(3, 40, dtype=torch.bfloat16), "bf16[3,40]")]
    for pred, said in cases:
        message = f"cond: the predicate must be a bool or integer scalar, got {said}"
        one_line(lambda: gc.cond(pred, double, negate, x), message)
        one_line(lambda: gc.compile(lambda v: gc.cond(pred, double, negate, v))(x), message)
        one_line(lambda: gc.switch(pred, [double, negate], x),
                 f"switch: the index must be an integer scalar, got {said}")
    for run in (lambda f: f(x), lambda f: gc.compile(f)(x)):
        one_line(lambda: run(lambda v: gc.fori_loop(-2**63, 2**63 - 1, lambda i, c: c, v)),
                 f"fori_loop: upper - lower = {2**64 - 1} does not fit in int64")


def test_review_r6_a_negative_size_in_a_branch_or_body_that_runs_is_refused_at_the_users_line():
    """Review r6 of s51 f1's bb18fed: a negative size made in a cond's branch or a loop's body
    is not refused where traced (it may not run), but compiled, where it ran: the passes
    computed on it (sum(broadcast_to(v, (-2,))) was -2 * v, returned where eager refuses),
    or _check_sizes refused from inside simplify's rewrite, at "<graphc plan lambda #N>",
    not the user's line. Refused now where the region's plan is built (it runs), in one
    line naming its op and the user's line; a branch or body that never runs is no error."""
    x = np.ones(2, np.float32)
    makes = (lambda v: gc.broadcast_to(v[0], (-2,)), lambda v: gc.full((-2,), v[0]),
             lambda v: gc.zeros((-2,)) + v[0], lambda v: gc.broadcast_to(np.float32(1), (-2,)),
             lambda v: gc.zeros((2, -1)))
    for make in makes:
        branch = lambda v, big: gc.cond(v[0] > big, lambda v: gc.sum(make(v)) + v,  # noqa
                                        lambda v: v, v)
        loop = lambda v, steps: gc.fori_loop(0, steps, lambda i, c: c + gc.sum(make(c)), v)  # noqa
        for pipeline in ("default", "O0"):
            for fn, runs, skips in ((branch, 0.0, 5.0), (loop, 1, 0)):
                compiled = gc.compile(fn, pipeline=pipeline)
                with pytest.raises(GraphcError) as info:
                    compiled(x, runs)
                line, where = str(info.value).splitlines()
                assert re.fullmatch(r"\w+\(\) failed: negative dimensions are not allowed",
                                    line), line
                assert "test_control_flow.py" in where, where
                with pytest.raises(GraphcError, match="negative dimensions"):
                    fn(x, runs)  # (as eager refuses)
                np.testing.assert_array_equal(compiled(x, skips), x)


def test_review_r8_a_negative_size_in_a_batched_conds_branch_is_refused_compiled_too():
    """Review r8 of r6's 0463553: _check_sizes passed over every call made under
    Graph.locations, which vmap's batching of a cond (its branches then run, inlined in the
    graph around it) is too: compiled, gc.vmap of cond(v[0] > a, lambda v:
    gc.sum(gc.broadcast_to(v[0], (-2,))) + v, ...) returned -1 (the sum simplified to -2 * v)
    where eager vmap refuses, and the parent refused. Refused now, naming the branch's line."""
    batch = np.ones((2, 2), np.float32)
    makes = (lambda v: gc.broadcast_to(v[0], (-2,)), lambda v: gc.full((-2,), v[0]),
             lambda v: gc.zeros((-2,)) + v[0], lambda v: gc.broadcast_to(np.float32(1), (-2,)),
             lambda v: gc.zeros((2, -1)))
    for make in makes:
        fn = lambda v, a: gc.cond(v[0] > a, lambda v: gc.sum(make(v)) + v,  # noqa: E731
                                  lambda v: v, v)
        for pipeline in ("default", "O0"):
            for a in (0.0, 5.0):  # (taken by every example, by none: eager refuses both)
                for run in (gc.vmap(fn, in_axes=(0, None)),
                            gc.compile(gc.vmap(fn, in_axes=(0, None)), pipeline=pipeline)):
                    with pytest.raises(GraphcError) as info:
                        run(batch, a)
                    line, where = str(info.value).splitlines()
                    assert re.fullmatch(r"\w+\([^)]*\) failed[\w ]*: (negative dimensions are "
                                        r"not allowed|all elements of broadcast shape must "
                                        r"be non-negative)", line), line
                    assert "test_control_flow.py" in where, where
