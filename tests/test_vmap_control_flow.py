"""graphc.vmap through control flow (passes/control_flow_batching.py): vmap of scan, fori_loop,
while_loop and cond, with batched and unbatched predicates, in_axes mixes and closures over
outer values, equals a Python loop over the examples, eagerly and compiled; per-example
gradients through a scan equal a loop of gc.grad; the batched graph has the shape promised
(one scan node of a batched body, a where select for a batched predicate)."""
import numpy as np
import pytest

import graphc as gc
from ir.parser import parse
from ir.verify import verify
from passes.control_flow_batching import reached

B, T, D = 3, 5, 4
MODES = ["eager", "compiled"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _example(value, axis, b):
    return value if axis is None else np.take(value, b, axis=axis)


def loop_over_examples(fn, args, in_axes):
    """fn run once per example (eager tensors), the results stacked along a new axis 0."""
    results = [fn(*[gc.tensor(_example(a, ax, b)) for a, ax in zip(args, in_axes)])
               for b in range(B)]
    if isinstance(results[0], (tuple, list)):
        return [np.stack([np.asarray(r[k]) for r in results]) for k in range(len(results[0]))]
    return [np.stack([np.asarray(r) for r in results])]


def batched(fn, args, in_axes, mode):
    f = gc.vmap(fn, in_axes=in_axes)
    if mode == "compiled":
        f = gc.compile(f)
    out = f(*args)
    return [np.asarray(o) for o in (out if isinstance(out, (tuple, list)) else [out])]


def assert_vmap_equals_loop(fn, args, in_axes, mode, tol=1e-12):
    expected = loop_over_examples(fn, args, in_axes)
    got = batched(fn, args, in_axes, mode)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol)
    # examples differ, so a result broadcast from one example would fail above
    assert any(not np.allclose(e[0], e[1]) for e in expected)


# ---- scan -------------------------------------------------------------------------------------
W = _rng(1).normal(size=(D, D)) * 0.6
U = _rng(2).normal(size=(D, D)) * 0.6


def rnn(h0, xs, scale):
    def step(h, x):
        h = gc.tanh(x @ W + h @ U) * scale
        return h, (h * 2.0, gc.sum(h))
    return gc.scan(step, h0, xs)


def _flat_rnn(h0, xs, scale):
    h, (ys, sums) = rnn(h0, xs, scale)
    return h, ys, sums


SCAN_AXES = {"all": (0, 0, 0), "xs_only": (None, 0, None), "h0_only": (0, None, None),
             "scale_only": (None, None, 0), "xs_time_major": (None, 1, None)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config", list(SCAN_AXES))
def test_vmap_of_scan_equals_a_loop(config, mode):
    in_axes = SCAN_AXES[config]
    rng = _rng(3)
    h0 = rng.normal(size=(B, D))
    xs = rng.normal(size=(B, T, D)) if in_axes[1] != 1 else rng.normal(size=(T, B, D))
    scale = rng.uniform(0.5, 1.5, size=(B,))
    args = [h0 if in_axes[0] is not None else h0[0], xs if in_axes[1] is not None else xs[0],
            scale if in_axes[2] is not None else scale[0]]
    assert_vmap_equals_loop(_flat_rnn, args, in_axes, mode)


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_a_reverse_scan_with_an_unbatched_carry_and_no_xs(mode):
    def f(v):
        def step(carry, _):
            i, acc = carry
            return (i + 1, acc * 0.5 + v * gc.cast(i, "float64")), acc
        (_, acc), accs = gc.scan(step, (np.int64(0), np.zeros(D)), None, length=T,
                                 reverse=True)
        return acc, accs
    assert_vmap_equals_loop(f, [_rng(4).normal(size=(B, D))], (0,), mode)


def test_a_carry_that_a_batched_value_reaches_later_becomes_batched():
    """(a, b): b takes a each step, a takes the batched x: both end up batched (fixpoint)."""
    def f(x):
        def step(carry, _):
            a, b = carry
            return (a + x, b + a), None
        return gc.scan(step, (np.zeros(D), np.zeros(D)), None, length=3)[0]
    x = _rng(5).normal(size=(B, D))
    a, b = gc.compile(gc.vmap(f))(x)
    np.testing.assert_allclose(np.asarray(a), 3 * x, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(b), 3 * x, rtol=1e-12)  # 0 + x + 2x


def test_reached_follows_dependences_only():
    def f(x, y):
        return x * 2.0, y + 1.0
    graph = gc.trace(f, gc.spec((D,), "float64"), gc.spec((D,), "float64"))
    assert reached(graph, [True, False]) == [True, False]
    assert reached(graph, [False, True]) == [False, True]


def test_vmap_of_scan_is_one_scan_over_a_batched_body():
    graph = gc.trace(gc.vmap(_flat_rnn, in_axes=(0, 0, None)), gc.spec((B, D), "float64"),
                     gc.spec((B, T, D), "float64"), gc.spec((), "float64"))
    scans = [n for n in graph.nodes if n.op == "scan"]
    assert len(scans) == 1
    body = scans[0].attrs["body"]
    assert [tuple(n.shape) for n in body.outputs] == [(B, D), (B, D), (B,)]
    assert [tuple(o.shape) for o in graph.outputs] == [(B, D), (B, T, D), (B, T)]


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_scan_inside_scan(mode):
    def f(x):
        def outer(c, row):
            inner, _ = gc.scan(lambda a, v: (a * 0.9 + v * c, None), c, row)
            return inner, gc.sum(inner)
        return gc.scan(outer, np.ones(()), x)[1]
    assert_vmap_equals_loop(f, [_rng(6).normal(size=(B, T, 2))], (0,), mode)


# ---- fori_loop -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)])
def test_vmap_of_fori_loop_equals_a_loop(in_axes, mode):
    def f(x, s):
        return gc.fori_loop(0, 4, lambda i, v: gc.tanh(v @ W) * s + gc.cast(i, "float64"), x)
    rng = _rng(7)
    x, s = rng.normal(size=(B, D)), rng.uniform(0.5, 2.0, size=(B,))
    args = [x if in_axes[0] is not None else x[0], s if in_axes[1] is not None else s[0]]
    assert_vmap_equals_loop(f, args, in_axes, mode)


# ---- while_loop ------------------------------------------------------------------------------
def grow_until(x, limit):
    """Multiplies x until its squared norm passes `limit`; counts the steps."""
    def keep_going(c):
        return gc.sum(c[0] * c[0]) < limit

    def body(c):
        return c[0] * 1.5 + 0.1, c[1] + 1
    x, steps = gc.while_loop(keep_going, body, (x, np.int64(0)))
    return x, steps


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_while_loop_with_a_batched_predicate_runs_each_example_its_own_steps(mode):
    x = _rng(8).normal(size=(B, D))
    limits = np.array([1.0, 30.0, 400.0])
    expected = loop_over_examples(grow_until, [x, limits], (0, 0))
    assert len(set(expected[1].tolist())) == B  # the examples stop at different steps
    assert_vmap_equals_loop(grow_until, [x, limits], (0, 0), mode)


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_while_loop_with_an_unbatched_predicate(mode):
    def f(x, w):
        def body(c):
            return c[0] + 1, gc.tanh(c[1] @ w)
        return gc.while_loop(lambda c: c[0] < 3, body, (np.int64(0), x))[1]
    rng = _rng(9)
    assert_vmap_equals_loop(f, [rng.normal(size=(B, D)), W], (0, None), mode)
    graph = gc.trace(gc.vmap(f, in_axes=(0, None)), gc.spec((B, D), "float64"),
                     gc.spec((D, D), "float64"))
    (loop,) = [n for n in graph.nodes if n.op == "while_loop"]
    assert loop.attrs["cond_fn"].outputs[0].shape == ()  # one predicate for the whole batch
    assert loop.type.elements[0].shape == ()  # the counter stays unbatched


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_a_while_loop_with_traced_bounds(mode):
    def f(x, n):
        return gc.fori_loop(0, n, lambda i, v: v * 2.0 + 1.0, x)
    x, n = _rng(10).normal(size=(B, D)), np.array([1, 3, 4])
    got = batched(f, [x, n], (0, 0), mode)[0]
    expected = np.stack([f(x[b], int(n[b])) for b in range(B)])  # Python-int bounds: a scan
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(expected[2], (x[2] + 1) * 16 - 1, rtol=1e-12)


# ---- cond ------------------------------------------------------------------------------------
def branchy(x, s):
    return gc.cond(s > 0, lambda v: (gc.tanh(v @ W), gc.sum(v)),
                   lambda v: (v * 3.0 - s, gc.max(v)), x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)])
def test_vmap_of_cond_equals_a_loop(in_axes, mode):
    x = _rng(11).normal(size=(B, D))
    s = np.array([0.5, -1.0, 2.0])
    args = [x if in_axes[0] is not None else x[0], s if in_axes[1] is not None else s[0]]
    if in_axes == (0, None):  # one branch for all: try both
        for pred in (0.5, -1.0):
            assert_vmap_equals_loop(branchy, [x, np.float64(pred)], in_axes, mode)
        return
    assert_vmap_equals_loop(branchy, args, in_axes, mode)


def test_a_batched_predicate_becomes_a_select_and_an_unbatched_one_stays_a_cond():
    spec = gc.spec((B, D), "float64")
    per_example = gc.trace(gc.vmap(branchy), spec, gc.spec((B,), "float64"))
    assert not any(n.op == "cond" for n in per_example.nodes)
    assert any(n.op == "where" for n in per_example.nodes)
    shared = gc.trace(gc.vmap(branchy, in_axes=(0, None)), spec, gc.spec((), "float64"))
    assert sum(n.op == "cond" for n in shared.nodes) == 1


@pytest.mark.parametrize("mode", MODES)
def test_cond_with_an_integer_predicate_batched(mode):
    def f(k, x):
        return gc.cond(k, lambda v: v + 1.0, lambda v: v - 1.0, x)
    assert_vmap_equals_loop(f, [np.array([0, 2, 0]), _rng(12).normal(size=(B, D))], (0, 0),
                            mode)


# ---- closures over outer values ----------------------------------------------------------------
def test_vmap_of_scan_closing_over_values_of_an_enclosing_trace():
    """Inside compile, the scan body reads w, a traced argument of the outer function."""
    rng = _rng(13)
    w, xs = rng.normal(size=(D, D)) * 0.5, rng.normal(size=(B, T, D))

    def model(w, xs):
        def one(x):
            return gc.scan(lambda h, xt: (gc.tanh(xt @ w + h), h), np.zeros(D), x)[0]
        return gc.vmap(one)(xs)

    got = np.asarray(gc.compile(model)(w, xs))
    expected = []
    for b in range(B):
        h = np.zeros(D)
        for t in range(T):
            h = np.tanh(xs[b, t] @ w + h)
        expected.append(h)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(model(w, xs)), np.stack(expected), rtol=1e-12)


# ---- per-example gradients through a scan ------------------------------------------------------
def rnn_loss(params, xs, targets):
    def step(h, x):
        h = gc.tanh(x @ params["w"] + h @ params["u"] + params["b"])
        return h, h
    _, hs = gc.scan(step, np.zeros(D), xs)
    return gc.sum((hs - targets) ** 2)


@pytest.mark.parametrize("mode", MODES)
def test_per_example_gradients_through_a_scan_equal_a_loop_of_grad(mode):
    rng = _rng(14)
    params = {"w": rng.normal(size=(D, D)) * 0.5, "u": rng.normal(size=(D, D)) * 0.5,
              "b": rng.normal(size=(D,)) * 0.1}
    xs, targets = rng.normal(size=(B, T, D)), rng.normal(size=(B, T, D))
    per_example = gc.vmap(gc.grad(rnn_loss), in_axes=(None, 0, 0))
    if mode == "compiled":
        per_example = gc.compile(per_example)
    grads = per_example(params, xs, targets)
    for name in params:
        expected = np.stack([np.asarray(gc.grad(rnn_loss)(params, xs[b], targets[b])[name])
                             for b in range(B)])
        assert expected.shape == (B,) + params[name].shape
        assert not np.allclose(expected[0], expected[1])
        np.testing.assert_allclose(np.asarray(grads[name]), expected, rtol=1e-10, atol=1e-10)


def test_grad_of_a_vmapped_scan_equals_the_sum_of_per_example_gradients():
    rng = _rng(15)
    params = {"w": rng.normal(size=(D, D)) * 0.5, "u": rng.normal(size=(D, D)) * 0.5,
              "b": rng.normal(size=(D,)) * 0.1}
    xs, targets = rng.normal(size=(B, T, D)), rng.normal(size=(B, T, D))

    def total(p):
        return gc.sum(gc.vmap(rnn_loss, in_axes=(None, 0, 0))(p, xs, targets))
    grads = gc.compile(gc.grad(total))(params)
    for name in params:
        expected = sum(np.asarray(gc.grad(rnn_loss)(params, xs[b], targets[b])[name])
                       for b in range(B))
        np.testing.assert_allclose(np.asarray(grads[name]), expected, rtol=1e-10, atol=1e-10)


def test_eager_backward_through_a_vmapped_scan_reaches_closed_over_tensors():
    rng = _rng(16)
    w = gc.tensor(rng.normal(size=(D, D)) * 0.5, requires_grad=True)
    xs = rng.normal(size=(B, T, D))

    def final_norm(x, weight):
        h, _ = gc.scan(lambda h, xt: (gc.tanh(xt @ weight + h), None), np.zeros(D), x)
        return gc.sum(h * h)

    gc.sum(gc.vmap(lambda x: final_norm(x, w))(xs)).backward()
    expected = sum(np.asarray(gc.grad(final_norm, argnums=1)(xs[b], w.data)) for b in range(B))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(w.grad, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_nested_vmap_of_scan(mode):
    def states(h, x):
        return gc.scan(lambda h, xt: (gc.tanh(xt * h), h), h, x)[1]
    rng = _rng(17)
    hs, xs = rng.normal(size=(2, B, D)), rng.normal(size=(2, B, T, D))
    f = gc.vmap(gc.vmap(states))
    got = np.asarray((gc.compile(f) if mode == "compiled" else f)(hs, xs))
    expected = np.stack([np.stack([np.asarray(states(gc.tensor(hs[i, b]), gc.tensor(xs[i, b])))
                                   for b in range(B)]) for i in range(2)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_batched_regions_print_parse_back_and_verify():
    spec = gc.spec((B, D), "float64")
    for fn, specs, in_axes in [
            (grow_until, [spec, gc.spec((B,), "float64")], 0),
            (_flat_rnn, [spec, gc.spec((B, T, D), "float64"), gc.spec((B,), "float64")], 0),
            (branchy, [spec, gc.spec((), "float64")], (0, None))]:
        graph = gc.trace(gc.vmap(fn, in_axes=in_axes), *specs)
        verify(graph)
        again = parse(str(graph))
        verify(again)
        assert str(again) == str(graph)


@pytest.mark.parametrize("mode", MODES)
def test_vmap_of_an_empty_scan(mode):
    def f(h, xs):
        return gc.scan(lambda c, x: (c + x, c * x), h, xs)
    h, xs = _rng(18).normal(size=(B, D)), np.zeros((B, 0, D))
    g = gc.vmap(f)
    carry, ys = (gc.compile(g) if mode == "compiled" else g)(h, xs)
    np.testing.assert_array_equal(np.asarray(carry), h)
    assert np.shape(ys) == (B, 0, D)


# ---- indices kept in range by the predicate (both branches, or a finished example's step) -----
def _run(fn, mode):
    return gc.compile(fn) if mode == "compiled" else fn


@pytest.mark.parametrize("mode", MODES)
def test_a_batched_predicate_that_guards_a_gather_keeps_per_example_results(mode):
    """Under vmap a batched cond runs both branches on every example, so an index that the
    predicate keeps in range for the examples taking a branch reaches it out of range for
    the others: it is clamped there (their results are thrown away), as JAX's gathers do,
    not refused. Per example the same function never sees the index out of range."""
    table = np.array([1.0, 2.0, 3.0, 4.0])
    f = lambda i: gc.cond(i < 4, lambda j: gc.take(table, j),  # noqa: E731
                          lambda j: gc.cast(j, "float64") * 0.0 - 1.0, i)
    idx = np.array([0, 3, 4, 7, -2])
    per_example = [float(gc.compile(f)(np.array(i))) for i in idx]
    assert per_example == [1.0, 4.0, -1.0, -1.0, 3.0]
    np.testing.assert_array_equal(np.asarray(_run(gc.vmap(f), mode)(idx)), per_example)


@pytest.mark.parametrize("mode", MODES)
def test_a_guarded_gather_from_batched_tables_and_its_gradient(mode):
    def g(t, i):
        return gc.cond(i < 4, lambda a, j: gc.take(a, j), lambda a, j: a[0] * 0.0 - 1.0, t, i)
    tables = _rng(4).standard_normal((4, 4))
    idx = np.array([0, 3, 4, 7])
    got = np.asarray(_run(gc.vmap(g), mode)(tables, idx))
    np.testing.assert_array_equal(got, [tables[0, 0], tables[1, 3], -1.0, -1.0])
    grad = np.asarray(_run(gc.grad(lambda t: gc.sum(gc.vmap(g)(t, idx))), mode)(tables))
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[1, 3] = 1.0
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("mode", MODES)
def test_a_finished_examples_step_may_index_out_of_range(mode):
    """A batched while_loop runs its body on every example until the last one finishes; a
    finished example's step (thrown away) reads one past the table here."""
    table = np.arange(5.0) * 10

    def f(i0):
        def body(c):
            i, acc = c
            return i + 1, acc + gc.take(table, i + 1)  # in range while the predicate holds
        return gc.while_loop(lambda c: c[0] + 1 < 5, body, (i0, np.array(0.0)))[1]
    starts = np.array([2, 0, 3])
    np.testing.assert_array_equal(np.asarray(_run(gc.vmap(f), mode)(starts)), [70.0, 100.0, 40.0])


@pytest.mark.parametrize("mode", MODES)
def test_an_index_out_of_range_for_a_kept_example_is_still_refused(mode):
    # outside such branches; and inside one, for an example that takes the branch (one
    # flag for the whole branch had clamped it: vmap gave [1, 4] where the loop raises)
    table = np.array([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(Exception, match="out of (range|bounds)"):
        np.asarray(_run(gc.vmap(lambda i: gc.take(table, i)), mode)(np.array([1, 5])))
    f = lambda i: gc.cond(i < 100, lambda j: gc.take(table, j),  # noqa: E731
                          lambda j: gc.cast(j, "float64") * 0.0 - 1.0, i)
    with pytest.raises(Exception, match="out of (range|bounds)"):
        np.asarray(_run(gc.vmap(f), mode)(np.array([0, 7])))
    np.testing.assert_array_equal(np.asarray(_run(gc.vmap(f), mode)(np.array([0, 300]))),
                                  [1.0, -1.0])


@pytest.mark.parametrize("mode", MODES)
def test_nested_guards_keep_an_example_only_where_both_take_their_branch(mode):
    table = np.array([1.0, 2.0, 3.0, 4.0])

    def f(i, on):
        inner = lambda j: gc.cond(j >= 0, lambda k: gc.take(table, k),  # noqa: E731
                                  lambda k: gc.cast(k, "float64") * 0.0 - 2.0, j)
        return gc.cond(on, inner, lambda j: gc.cast(j, "float64") * 0.0 - 1.0, i)
    idx, on = np.array([1, 9, -9, 3]), np.array([True, False, True, True])
    got = np.asarray(_run(gc.vmap(f), mode)(idx, on))
    np.testing.assert_array_equal(got, [2.0, -1.0, -2.0, 4.0])
    with pytest.raises(Exception, match="out of (range|bounds)"):  # kept by both: refused
        np.asarray(_run(gc.vmap(f), mode)(np.array([1, 9]), np.array([True, True])))


@pytest.mark.parametrize("mode", MODES)
def test_a_batched_while_loop_over_no_examples(mode):
    f = lambda a: gc.while_loop(lambda c: gc.sum(c) < 10.0, lambda c: c + 1.0, a)  # noqa: E731
    out = _run(gc.vmap(f), mode)(np.zeros((0, 4)))
    assert np.asarray(out).shape == (0, 4)
    np.testing.assert_array_equal(np.asarray(_run(gc.vmap(f), mode)(np.ones((2, 4)))),
                                  np.full((2, 4), 3.0))


@pytest.mark.parametrize("mode", MODES)
def test_an_index_shared_by_the_batch_is_refused_only_if_some_example_takes_its_branch(mode):
    # an unbatched index inside a branch of a batched predicate: clamped when no example
    # takes the branch (each example alone never reads it), refused when one does
    table = np.array([1.0, 2.0, 3.0, 4.0])
    gather = lambda j: gc.take(table, j)  # noqa: E731
    scatter = lambda j: gc.sum(  # noqa: E731  (a scatter with a shared index likewise)
        gc.scatter_add(np.ones(2), gc.stack([j, j * 0]), 4) ** 2)
    for taken, fine, bad, kept, refused in ((gather, 2, 7, 3.0, [False, True]),
                                            (scatter, 3, 9, 2.0, [True, True])):
        f = lambda on, k, taken=taken: gc.cond(  # noqa: E731
            on, taken, lambda j: gc.cast(j, "float64") * 0.0 - 1.0, k)
        batched = _run(gc.vmap(f, in_axes=(0, None)), mode)
        np.testing.assert_array_equal(
            np.asarray(batched(np.array([False, False]), np.array(bad))), [-1.0, -1.0])
        np.testing.assert_array_equal(
            np.asarray(batched(np.array([True, False]), np.array(fine))), [kept, -1.0])
        with pytest.raises(Exception, match="out of (range|bounds)"):
            np.asarray(batched(np.array(refused), np.array(bad)))


@pytest.mark.parametrize("mode", MODES)
def test_a_negative_embedding_index_or_segment_id_clamps_where_its_example_is_dropped(mode):
    """nn.Embedding's traced indices and segment_sum's ids are checked in [0, rows) (their
    refusal names the negative index given); an example a batched cond drops is clamped
    into that range, not refused, and a kept one is refused with its value."""
    emb = gc.nn.Embedding(4, 2, dtype="float64")
    rows = np.asarray(emb.weight.data)
    for taken, k, kept in ((lambda i: gc.sum(emb(i)), [1, 2], rows[[1, 2]].sum()),
                           (lambda i: gc.sum(gc.segment_sum(np.ones(2), i, 3) ** 2), [0, 0],
                            4.0)):
        f = lambda on, i, taken=taken: gc.cond(  # noqa: E731
            on, taken, lambda i: gc.cast(gc.sum(i), "float64") * 0.0 - 1.0, i)
        batched = _run(gc.vmap(f), mode)
        ids = np.array([k, [-1, 0]])
        np.testing.assert_allclose(np.asarray(batched(np.array([True, False]), ids)),
                                   [kept, -1.0], rtol=1e-15)
        # (segment_sum's names itself since session 54, as its eager check)
        with pytest.raises(gc.GraphcError, match=r"index -1 is out of bounds for axis 0|"
                                                 r"segment_sum: segment id -1 is outside"):
            np.asarray(batched(np.array([True, True]), ids))


@pytest.mark.parametrize("mode", MODES)
def test_a_shared_index_array_of_getitem_is_clamped_where_no_example_takes_its_branch(mode):
    """Review r3 (session 51): x[k] and x[i, j] with a traced index array run it through
    check_index, which was not among SHARED_INDEX_OPS: an index the batch shares, out of
    range in a branch no example takes, was refused (x[k] had given -1 as gc.take does)."""
    table = np.array([1.0, 2.0, 3.0, 4.0])
    grid = np.arange(12.0).reshape(3, 4)
    for taken, fine, bad, kept in ((lambda j: gc.sum(gc.tensor(table)[j]), [2], [7], 3.0),
                                   (lambda j: gc.sum(gc.tensor(grid)[j, j]), [2], [3], 10.0)):
        f = lambda on, k, taken=taken: gc.cond(  # noqa: E731
            on, taken, lambda j: gc.cast(gc.sum(j), "float64") * 0.0 - 1.0, k)
        batched = _run(gc.vmap(f, in_axes=(0, None)), mode)
        np.testing.assert_array_equal(
            np.asarray(batched(np.array([False, False]), np.array(bad))), [-1.0, -1.0])
        np.testing.assert_array_equal(
            np.asarray(batched(np.array([True, False]), np.array(fine))), [kept, -1.0])
        with pytest.raises(gc.GraphcError, match=f"index {bad[0]} is out of bounds for axis 0"):
            np.asarray(batched(np.array([False, True]), np.array(bad)))
