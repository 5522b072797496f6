"""Symbolic sizes that bind to 0 (n-1 at n = 1, the language-model shift `seq-1`):

- simplify's sum_of_broadcast rewrote sum(broadcast_to(x, (n-1, ...))) to sum(x) * (n-1):
  at n = 1 that is inf * 0 = NaN where x holds inf or NaN, where numpy's (and the O0
  plan's) sum of nothing is 0. The concrete path guarded a count of 0; the symbolic one
  did not. A count that may be 0 now zeroes sum(x) first where it is 0.
- logsumexp over a symbolic axis that binds to 0 was refused when the plan was bound ("max
  over axis 0 of size 0"), where the concrete plan, eager and torch give -inf: its shift is
  now the maximum over x and one -inf slab along such an axis.
"""
import warnings

import torch
import numpy as np

import graphc as gc
from passes.manager import run_pipeline


def _reference(x, copies, dtype, axis_none, keepdims):
    b = np.broadcast_to(x.astype(np.float64), (copies,) + x.shape)
    want = b.sum(axis=None if axis_none else 0, keepdims=keepdims)
    return np.asarray(want).astype(dtype)


def _program(shift, axis_none, keepdims):
    def f(x, y):
        rows = y.shape[0] - shift  # n, n-1, n-2 copies (0 at n = shift)
        b = gc.broadcast_to(x, (rows,) + tuple(x.shape))
        return gc.sum(b, axis=None if axis_none else 0, keepdims=keepdims)
    return f


def test_a_sum_over_a_symbolic_count_that_binds_to_0_is_0_even_for_inf_and_nan():
    x = np.array([np.inf, 1.0, np.nan])
    f = lambda x, y: gc.sum(gc.broadcast_to(x, (y.shape[0] - 1, 3)), axis=0)
    for pipeline in ("O0", "default"):
        g = gc.compile(f, pipeline=pipeline, polymorphic_shapes=(None, ("n",)))
        with np.errstate(all="raise"):  # no inf * 0 computed on the way either
            np.testing.assert_array_equal(g(x, np.ones(1)), np.zeros(3))
        np.testing.assert_array_equal(g(x, np.ones(3)), [np.inf, 2.0, np.nan])


def test_sum_of_broadcast_over_random_symbolic_counts_matches_numpy():
    """Differential: random dtypes, shifts (n-1, n-2, and n itself), bound sizes that make
    the count 0, 1 or more, axis=None or 0, keepdims, inputs with inf, -inf and NaN."""
    rng = np.random.default_rng(55)
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -2.0, 3.0])
    for trial in range(12):
        dtype = ["float64", "float32", "float16", "int64"][trial % 4]
        shift = int(rng.integers(0, 3))
        axis_none, keepdims = bool(rng.integers(2)), bool(rng.integers(2))
        shape = tuple(int(d) for d in rng.integers(1, 4, size=int(rng.integers(1, 3))))
        x = rng.choice(specials, size=shape)
        if dtype == "int64":
            x = rng.integers(-3, 4, size=shape)
        x = x.astype(dtype)
        g = gc.compile(_program(shift, axis_none, keepdims),
                       polymorphic_shapes=(None, ("n",)))
        for n in sorted({max(shift, 1), shift + 1, shift + int(rng.integers(2, 5))}):
            copies = n - shift
            want = _reference(x, copies, dtype, axis_none, keepdims)
            with np.errstate(all="ignore"):
                got = np.asarray(g(x, np.ones(n)))
            assert got.dtype == want.dtype and got.shape == want.shape, (trial, n)
            np.testing.assert_array_equal(got, want, err_msg=f"trial {trial} n={n} "
                                          f"shift={shift} {dtype} x={x}")


def test_a_count_known_positive_multiplies_without_a_guard():
    """n, n+1 and 2*n are never 0: the rewrite stays one product (no where)."""
    for rows in (lambda n: n, lambda n: n + 1, lambda n: 2 * n):
        graph = gc.trace(lambda x, y: gc.sum(gc.broadcast_to(x, (rows(y.shape[0]), 3)), 0),
                         gc.spec((3,), "float64"), gc.spec(("n",), "float64"))
        ops = [node.op for node in run_pipeline(graph, "simplify,dce").graph.nodes]
        assert "where" not in ops and "broadcast_to" not in ops, ops
    graph = gc.trace(lambda x, y: gc.sum(gc.broadcast_to(x, (y.shape[0] - 1, 3)), 0),
                     gc.spec((3,), "float64"), gc.spec(("n",), "float64"))
    ops = [node.op for node in run_pipeline(graph, "simplify,dce").graph.nodes]
    assert "where" in ops and "broadcast_to" not in ops, ops



def test_logsumexp_over_a_symbolic_axis_that_binds_to_0_is_minus_inf_as_torch():
    """n-1 rows (x[1:]) reduced alone, with the other axis, or kept; values and gradients
    against torch float64 and the concrete plan, for n = 1 (no rows), 2 and 4 (inf, -inf
    and NaN among them)."""
    rng = np.random.default_rng(7)
    for axis, keepdims in [(0, False), (0, True), (None, False), ((0, 1), True),
                           (-2, False), (1, False)]:
        f = lambda x: gc.logsumexp(x[1:], axis=axis, keepdims=keepdims)
        poly = gc.compile(f, polymorphic_shapes=(("n", "_"),))
        grad = gc.compile(gc.grad(lambda x: gc.sum(gc.tanh(f(x)))),
                          polymorphic_shapes=(("n", "_"),))
        dims = (0, 1) if axis is None else axis
        for n in (1, 2, 4):
            x = rng.normal(size=(n, 3))
            if n == 4:
                x[1, 0], x[2, 1], x[3, 2] = np.inf, -np.inf, np.nan
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            want = torch.logsumexp(t[1:], dim=dims, keepdim=keepdims)
            torch.tanh(want).sum().backward()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # log(0) is -inf, with numpy's warning
                got, g = np.asarray(poly(x)), np.asarray(grad(x))
                concrete = gc.compile(f)(x)
                concrete_g = gc.compile(gc.grad(lambda x: gc.sum(gc.tanh(f(x)))))(x)
            where = f"axis={axis} keepdims={keepdims} n={n}"
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-14, atol=0,
                                       err_msg=where)
            np.testing.assert_array_equal(got, np.asarray(concrete), err_msg=where)
            np.testing.assert_array_equal(g, np.asarray(concrete_g), err_msg=where)
            if n < 4:  # (at inf and NaN torch's gradient has its own NaN pattern)
                np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-300,
                                           err_msg=where)
            if n == 1 and axis != 1:
                assert np.all(got == -np.inf) and np.array_equal(g, np.zeros((1, 3)))


def test_sum_of_broadcast_reorders_the_sum_as_documented_for_overflow():
    """Item 3 (decided: documented, README "Floating-point semantics"): the rewrite sums x
    once and multiplies by the count, so partial sums that overflow in numpy's order of the
    broadcast array need not; a total out of range is inf and inf + -inf NaN either way."""
    def both(x, shape, axis=None):
        f = lambda x: gc.sum(gc.broadcast_to(x, shape), axis)
        with np.errstate(all="ignore"):
            want = np.sum(np.broadcast_to(x, shape), axis)
            return want, np.asarray(gc.compile(f, pipeline="O0")(x)), np.asarray(gc.compile(f)(x))
    numpy_, o0, default = both(np.array([[1e308], [-1e308]]), (2, 3))
    assert numpy_ == np.inf and o0 == np.inf and default == 0.0  # 0 * 3: the reordered sum
    numpy_, o0, default = both(np.array([[3e38], [-3e38]], np.float32), (2, 3))
    assert numpy_ == np.inf and o0 == np.inf and default == 0.0
    for x, shape, axis, want in [(np.array([1e308]), (3, 1), None, np.inf),      # total > max
                                 (np.array([-1e308, 1.0]), (2, 2), 0, [-np.inf, 2.0]),
                                 (np.array([np.inf, -np.inf]), (4, 2), None, np.nan)]:
        for got in both(x, shape, axis):
            np.testing.assert_array_equal(got, want)


def test_logsumexp_over_a_symbolic_axis_at_0_takes_no_log_of_0_as_the_concrete_plan():
    """Review (r6): at n = 1 the symbolic plan took log(0), with numpy's "divide by zero
    encountered in log" warning, where the concrete empty case, eager, torch and scipy give
    -inf silently. Values, gradients and the vmapped plan, under warnings as errors; an
    all -inf row (log(0) in every plan, as before) is left as it is."""
    f = lambda x: gc.logsumexp(x[1:], axis=0)
    for dtype in ("float64", "float16"):
        x = np.zeros((1, 3), dtype)
        for pipeline in ("O0", "default"):
            poly = gc.compile(f, pipeline=pipeline, polymorphic_shapes=(("n", "_"),))
            grad = gc.compile(gc.grad(lambda x: gc.sum(gc.exp(f(x)))), pipeline=pipeline,
                              polymorphic_shapes=(("n", "_"),))
            batched = gc.compile(gc.vmap(f), pipeline=pipeline,
                                 polymorphic_shapes=(("b", "n", "_"),))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                np.testing.assert_array_equal(poly(x), np.full(3, -np.inf, dtype))
                np.testing.assert_array_equal(grad(x), np.zeros((1, 3), dtype))
                np.testing.assert_array_equal(batched(np.zeros((2, 1, 3), dtype)),
                                              np.full((2, 3), -np.inf, dtype))
                np.testing.assert_array_equal(poly(np.array([[0, 0, 0], [1, 2, 3]], dtype)),
                                              np.array([1, 2, 3], dtype))
