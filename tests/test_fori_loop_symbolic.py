"""gc.fori_loop with a symbolic size as a bound (`x.shape[0]` under polymorphic_shapes): it
was refused ("the symbolic dimension n has no value while tracing", from int(upper)). Now a
scan of that symbolic length where upper - lower >= 0 for every size (differentiable), else a
while_loop of the sizes filled in per call (forward only, as JAX's for any symbolic bound);
either way one compiled plan serves every size. Checked against a numpy loop and float64
finite differences."""
import numpy as np
import pytest

import graphc as gc


def body(i, c, xs):
    return c * 0.5 + gc.sin(xs[i]) * gc.cast(i, c.dtype)


def numpy_loop(lo, hi, xs):
    c = np.zeros(xs.shape[1])
    for i in range(lo, hi):
        c = c * 0.5 + np.sin(xs[i]) * i
    return c


def looped(bounds):
    """f(x): the fori_loop over bounds(n) of x's n rows, reading rows of x twice over (so an
    upper bound up to 2n indexes a row)."""
    def f(x):
        xs = gc.concatenate([x, x], 0)
        lo, hi = bounds(x.shape[0])
        return gc.fori_loop(lo, hi, lambda i, c: body(i, c, xs), gc.zeros((3,), x.dtype))
    return f


def loop_ops(compiled):
    (_, plan), = next(iter(compiled._plans.values()))
    return sorted({n.op for n in plan.graph.nodes} & {"scan", "while_loop"})


SIZES = (1, 2, 3, 5)
ALWAYS_RUN = {"0..n": lambda n: (0, n), "1..n": lambda n: (1, n),
              "n-1..2n": lambda n: (n - 1, 2 * n), "0..2n-1": lambda n: (0, 2 * n - 1),
              "n-1..n+1": lambda n: (n - 1, n + 1)}


@pytest.mark.parametrize("name", ALWAYS_RUN)
def test_bounds_always_in_order_are_one_differentiable_scan_for_every_size(name):
    bounds = ALWAYS_RUN[name]
    f = looped(bounds)
    fn = gc.compile(f, polymorphic_shapes=["(n, 3)"])
    grad = gc.compile(gc.grad(lambda x: gc.sum(f(x) * f(x))), polymorphic_shapes=["(n, 3)"])
    for n in SIZES:
        x = np.random.default_rng(n).normal(size=(n, 3))
        want = numpy_loop(*[int(b) for b in bounds(n)], np.concatenate([x, x]))
        np.testing.assert_allclose(fn(x), want, rtol=1e-13, atol=1e-15)
        g, eps = grad(x), 1e-6
        for k in np.ndindex(x.shape):
            dx = np.zeros_like(x)
            dx[k] = eps
            loss = [np.sum(numpy_loop(*bounds(n), np.concatenate([v, v])) ** 2)
                    for v in (x + dx, x - dx)]
            np.testing.assert_allclose(g[k], (loss[0] - loss[1]) / (2 * eps), rtol=1e-6,
                                       atol=1e-8)
    assert fn.recompiles == [] and len(fn._plans) == 1 and loop_ops(fn) == ["scan"]
    assert grad.recompiles == [] and len(grad._plans) == 1


def test_bounds_whose_order_depends_on_the_size_are_a_while_loop():
    # 2..n runs no step at n = 1 and n - 2 of them after: JAX's max(upper - lower, 0), which
    # no scan length is, so the loop is a while_loop of the bounds filled in per call
    f = looped(lambda n: (2, n))
    fn = gc.compile(f, polymorphic_shapes=["(n, 3)"])
    for n in SIZES:
        x = np.random.default_rng(n).normal(size=(n, 3))
        np.testing.assert_allclose(fn(x), numpy_loop(2, n, np.concatenate([x, x])),
                                   rtol=1e-13, atol=1e-15)
    assert fn.recompiles == [] and len(fn._plans) == 1 and loop_ops(fn) == ["while_loop"]
    # reverse mode is refused as JAX's is; forward mode goes through the loop
    with pytest.raises(gc.GraphcError, match="while_loop has no reverse-mode gradient"):
        gc.compile(gc.grad(lambda x: gc.sum(f(x))), polymorphic_shapes=["(n, 3)"])(
            np.ones((4, 3)))
    jvp = gc.compile(lambda x, t: gc.jvp(lambda v: gc.sum(f(v)), (x,), (t,)),
                     polymorphic_shapes=["(n, 3)", "(n, 3)"])
    x = np.random.default_rng(7).normal(size=(5, 3))
    t = np.random.default_rng(8).normal(size=(5, 3))
    value, tangent = jvp(x, t)
    loss = [np.sum(numpy_loop(2, 5, np.concatenate([v, v]))) for v in (x + 1e-6 * t,
                                                                        x - 1e-6 * t)]
    np.testing.assert_allclose(value, np.sum(numpy_loop(2, 5, np.concatenate([x, x]))),
                               rtol=1e-13)
    np.testing.assert_allclose(tangent, (loss[0] - loss[1]) / 2e-6, rtol=1e-6)


def test_a_size_against_a_traced_bound_takes_its_dtype():
    # the size is filled in as the traced bound's int32, not int64 (lt would refuse the mix)
    fn = gc.compile(lambda x, k: gc.fori_loop(k, x.shape[0], lambda i, c: c + x[i],
                                              gc.zeros((3,), x.dtype)),
                    polymorphic_shapes=["(n, 3)", None])
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(fn(x, np.int32(1)), x[1:].sum(0))
    np.testing.assert_array_equal(fn(x[:2], np.int32(1)), x[1])
    np.testing.assert_array_equal(fn(x[:2], np.int32(3)), np.zeros(3))
    assert fn.recompiles == []
