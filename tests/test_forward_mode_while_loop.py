"""Forward mode through while_loop (passes/forward_mode.py): jvp and jacfwd carry tangents
through the loop as JAX's jvp of lax.while_loop does, where reverse mode is refused, also
where the loop sits in a scan body, a cond branch or another loop. Each
case is checked against PyTorch's forward-mode AD of the same Python loop (float64, dual
numbers, so the loop runs as many times as it does here) and against finite differences."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="PyTorch is the forward-mode oracle (test extra)")
forward_ad = torch.autograd.forward_ad


def _torch_jvp(fn, primals, tangents):
    """(fn(*primals), J @ tangents) by PyTorch's dual numbers."""
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(torch.tensor(p), torch.tensor(t))
                 for p, t in zip(primals, tangents)]
        out = forward_ad.unpack_dual(fn(*duals))
        return out.primal.detach().numpy(), out.tangent.numpy()


def _finite_difference(fn, primals, tangents, eps=1e-6):
    plus = fn(*[p + eps * t for p, t in zip(primals, tangents)])
    minus = fn(*[p - eps * t for p, t in zip(primals, tangents)])
    return (plus - minus) / (2 * eps)


# each case: (graphc function, the same loop on torch tensors, the same on numpy arrays,
# primal shapes); the trip count of each depends on the primals' values
def _grow(x, w):
    def body(c):
        v, n = c
        return v * 1.5 + gc.tanh(w), n + 1
    return gc.while_loop(lambda c: gc.sum(c[0] * c[0]) < 50.0, body, (x, 0))[0] * x


def _grow_loop(lib):
    def f(x, w):
        v = x
        while float((v * v).sum()) < 50.0:
            v = v * 1.5 + lib.tanh(w)
        return v * x
    return f


def _two_loops(x, w):
    # the second loop starts from the first's result and reads x as a const
    first = gc.while_loop(lambda v: gc.max(v) < 3.0, lambda v: v * v + w, x)
    second = gc.while_loop(lambda c: c[1] < 3, lambda c: (c[0] * gc.sin(x) + first, c[1] + 1),
                           (first, 0))[0]
    return second + gc.exp(first)


def _two_loops_loop(lib):
    def f(x, w):
        first = x
        while float(first.max()) < 3.0:
            first = first * first + w
        second = first
        for _ in range(3):
            second = second * lib.sin(x) + first
        return second + lib.exp(first)
    return f


def _nested(x, w):
    def outer_body(c):
        v, i = c
        v = gc.while_loop(lambda u: gc.sum(u) < 4.0 * gc.cast(i + 1, u.dtype),
                          lambda u: u + w * u, v)
        return v * 0.5, i + 1
    return gc.while_loop(lambda c: c[1] < 3, outer_body, (x, 0))[0]


def _nested_loop(lib):
    def f(x, w):
        v = x
        for i in range(3):
            while float(v.sum()) < 4.0 * (i + 1):
                v = v + w * v
            v = v * 0.5
        return v
    return f


def _in_scan(x, w):
    # a scan over rows of xs whose body holds a while_loop; per-step outputs too
    def step(c, row):
        v = gc.while_loop(lambda v: gc.sum(v * v) < 20.0, lambda v: v * 1.3 + row * w, c + row)
        return v * 0.25, gc.sum(v * row)
    rows = gc.stack([x, w, x * w])
    last, per_step = gc.scan(step, x, rows)
    return last + gc.sum(per_step)


def _in_scan_loop(lib):
    def f(x, w):
        c, per_step = x, 0.0
        for row in (x, w, x * w):
            v = c + row
            while float((v * v).sum()) < 20.0:
                v = v * 1.3 + row * w
            c = v * 0.25
            per_step = per_step + (v * row).sum()
        return c + per_step
    return f


def _in_cond(x, w):
    # a while_loop in the branch taken, another in the one not taken, and in a loop body
    def grows(x, w):
        return gc.while_loop(lambda v: gc.sum(v) < 6.0, lambda v: v + v * w, x)

    def shrinks(x, w):
        return gc.while_loop(lambda v: gc.sum(v) > 0.1, lambda v: v * w, x)

    def body(c):
        v, i = c
        return gc.cond(gc.sum(v) < 3.0 + gc.cast(i, v.dtype), grows, shrinks, v, w), i + 1
    return gc.while_loop(lambda c: c[1] < 3, body, (x, 0))[0] * gc.exp(w)


def _in_cond_loop(lib):
    def f(x, w):
        v = x
        for i in range(3):
            if float(v.sum()) < 3.0 + i:
                while float(v.sum()) < 6.0:
                    v = v + v * w
            else:
                while float(v.sum()) > 0.1:
                    v = v * w
        return v * lib.exp(w)
    return f


CASES = {"grow": (_grow, _grow_loop), "two_loops": (_two_loops, _two_loops_loop),
         "nested": (_nested, _nested_loop), "in_scan": (_in_scan, _in_scan_loop),
         "in_cond": (_in_cond, _in_cond_loop)}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", range(4))
def test_jvp_through_while_loop_matches_torch_forward_mode(name, seed):
    fn, loop = CASES[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.0, 3)
    w = rng.uniform(0.1, 0.4, 3)
    dx, dw = rng.normal(size=3), rng.normal(size=3)
    out, tangent = gc.jvp(fn, (x, w), (dx, dw))
    want_out, want_tangent = _torch_jvp(loop(torch), (x, w), (dx, dw))
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    np.testing.assert_allclose(tangent, want_tangent, rtol=1e-10, atol=1e-12)
    # and the finite difference, away from a change of the trip count
    numeric = _finite_difference(loop(np), (x, w), (dx, dw))
    np.testing.assert_allclose(tangent, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacfwd_through_while_loop_matches_torch(name):
    fn, loop = CASES[name]
    rng = np.random.default_rng(7)
    x, w = rng.uniform(0.5, 1.0, 3), rng.uniform(0.1, 0.4, 3)
    jx, jw = gc.jacfwd(fn, argnums=(0, 1))(x, w)
    # PyTorch's: one forward-mode pass per input element, a column each
    eye, zero = np.eye(3), np.zeros(3)
    want_x = np.stack([_torch_jvp(loop(torch), (x, w), (e, zero))[1] for e in eye], axis=1)
    want_w = np.stack([_torch_jvp(loop(torch), (x, w), (zero, e))[1] for e in eye], axis=1)
    np.testing.assert_allclose(jx, want_x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jw, want_w, rtol=1e-10, atol=1e-12)


def test_jvp_of_while_loop_inside_compile_and_fori_loop_with_traced_bounds():
    def f(x, n):
        return gc.fori_loop(0, n, lambda i, v: gc.sin(v) * (1.0 + gc.cast(i, v.dtype)), x)

    @gc.compile
    def pushed(x, n, dx):
        return gc.jvp(lambda x: f(x, n), (x,), (dx,))

    x, dx = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    for n in (0, 1, 4):
        out, tangent = pushed(x, np.asarray(n), dx)
        want_out, want_tangent = x.copy(), dx.copy()
        for i in range(n):
            want_tangent = np.cos(want_out) * (1.0 + i) * want_tangent
            want_out = np.sin(want_out) * (1.0 + i)
        np.testing.assert_allclose(out, want_out, rtol=1e-12)
        np.testing.assert_allclose(tangent, want_tangent, rtol=1e-12)


def test_a_loop_reached_only_through_its_predicate_and_integer_carries_have_zero_tangent():
    def f(x):
        # x only picks the trip count: the result is piecewise constant in x
        c, steps = gc.while_loop(lambda c: c[0] < gc.sum(x), lambda c: (c[0] + 1.0, c[1] + 1),
                                 (gc.zeros((), "float64"), 0))
        return c, steps

    (c, steps), (dc, dsteps) = gc.jvp(f, (np.array([1.5, 2.0]),), (np.ones(2),))
    assert float(c) == 4.0 and int(steps) == 4
    assert float(dc) == 0.0 and int(dsteps) == 0


def test_pass_through_and_swapped_float_carries_get_their_tangents():
    def f(a, b):
        def body(c):
            u, v, keep, i = c
            return v, u * 2.0, keep, i + 1  # swaps u and v, passes keep through
        u, v, keep, _ = gc.while_loop(lambda c: c[3] < 3, body, (a, b, a * b, 0))
        return u + 10.0 * v + 100.0 * keep

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    da, db = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    _, tangent = gc.jvp(f, (a, b), (da, db))
    # after 3 swaps: u = 2b, v = 2a... u0=a, v0=b -> (b, 2a) -> (2a, 2b) -> (2b, 4a)
    want = 2.0 * db + 40.0 * da + 100.0 * (da * b + a * db)
    np.testing.assert_allclose(tangent, want, rtol=1e-12)


def test_grad_through_a_while_loop_is_still_refused():
    def f(x):
        return gc.sum(gc.while_loop(lambda v: gc.sum(v) < 10.0, lambda v: v * 2.0, x))

    with pytest.raises(GraphcError, match="while_loop has no reverse-mode gradient"):
        gc.grad(f)(np.ones(2))


def test_vmapped_and_second_order_jvp_through_while_loop():
    fn = CASES["grow"][0]
    rng = np.random.default_rng(3)
    xs, w = rng.uniform(0.5, 1.0, (5, 3)), rng.uniform(0.1, 0.4, 3)
    dxs, dw = rng.normal(size=(5, 3)), rng.normal(size=3)
    # each example loops a different number of times: the batched predicate's rule
    batched = gc.vmap(lambda x, dx: gc.jvp(fn, (x, w), (dx, dw))[1])(xs, dxs)
    one_by_one = [gc.jvp(fn, (x, w), (dx, dw))[1] for x, dx in zip(xs, dxs)]
    np.testing.assert_allclose(getattr(batched, "data", batched), np.stack(one_by_one),
                               rtol=1e-12)

    def pushed(x):  # the directional derivative along dxs[0], a function of x
        return gc.jvp(lambda x: fn(x, w), (x,), (dxs[0],))[1]

    second = gc.jvp(pushed, (xs[0],), (dxs[1],))[1]
    eps = 1e-5
    numeric = (pushed(xs[0] + eps * dxs[1]) - pushed(xs[0] - eps * dxs[1])) / (2 * eps)
    np.testing.assert_allclose(second, numeric, rtol=1e-6, atol=1e-8)


def _loops(graph) -> int:
    """The while_loop nodes that run, at every depth: those some output of their graph (or
    region, whose plan drops its dead code too) depends on."""
    from ir.ops.control_flow import regions_of

    def count(g):
        live = set(g.outputs)
        for n in reversed(g.nodes):
            if n in live:
                live.update(n.inputs)
        return sum((n.op == "while_loop") + sum(count(r) for r in regions_of(n))
                   for n in g.nodes if n in live)
    return count(graph)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jvp_runs_each_loop_once(name):
    """The rebuilt loop (or scan, cond) gives the primal results too: the original is dead
    code, so a jvp holds as many loops as the function (it held twice as many: each ran
    twice). jacfwd batches the same graph (one batch per input leaf: argnums=0)."""
    fn = CASES[name][0]
    spec = gc.spec((3,), "float64")
    alone = _loops(gc.trace(fn, spec, spec))
    assert alone >= 1
    assert _loops(gc.trace(lambda x, w, dx, dw: gc.jvp(fn, (x, w), (dx, dw)), *[spec] * 4)) \
        == alone
    assert _loops(gc.trace(lambda x, w: gc.jacfwd(fn)(x, w), spec, spec)) == alone
