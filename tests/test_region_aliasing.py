"""A loop body's plan returns a carry it passes through as it is, not a copy per iteration.

Compiled plans copy an output that is an input (or a view of one) so that results never
share memory with the caller's arrays. A region's plan (the body of a scan, fori_loop,
while_loop, or a cond's branch) did so too, so `lambda c: (c[0], c[1] + 1)` copied c[0]
every iteration: with a 1M-float32 carry, 0.10 ms of a 0.11 ms iteration. The loop driver
(runtime/control_flow.py) owns its carries and never writes into them: the region's plan
now returns its inputs uncopied, and the driver copies what still shares an operand's memory
once, at the end. These tests check values against numpy, that the compiled function's
results share no memory with its arguments nor with each other, over three calls, with numpy
and numba plans, and gradients through such loops.
"""
import numpy as np
import pytest

import graphc as gc
from runtime import jit as jit_kernels
from runtime.build import build_plan
from runtime.control_flow import _RegionPlans

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 3)).astype(np.float32)
B = RNG.standard_normal((3, 3)).astype(np.float32)
XS = RNG.standard_normal((4, 3, 3)).astype(np.float32)


@pytest.fixture(params=["numpy", "numba"])
def plans(request, monkeypatch):
    if request.param == "numba":
        if not jit_kernels.enabled():
            pytest.skip("numba missing or GRAPHC_JIT=0")
    else:
        monkeypatch.setenv("GRAPHC_JIT", "0")
    return request.param


def _np_fori(n, body, init):
    for i in range(n):
        init = body(i, init)
    return init


def _np_scan(f, carry, xs):
    ys = []
    for x in xs:
        carry, y = f(carry, x)
        ys.append(y)
    return carry, np.stack(ys)


# (name, function of (a, b, xs), numpy reference of (a, b, xs)); results are flat tuples
CASES = [
    ("fori-pass-through",
     lambda a, b, xs: gc.fori_loop(0, 5, lambda i, c: (c[0], c[1] + 1.0), (a, b)),
     lambda a, b, xs: (a, b + 5.0)),
    ("fori-swapped",
     lambda a, b, xs: gc.fori_loop(0, 3, lambda i, c: (c[1], c[0]), (a, b)),
     lambda a, b, xs: (b, a)),
    ("fori-duplicated",
     lambda a, b, xs: gc.fori_loop(0, 3, lambda i, c: (c[0], c[0]), (a, b)),
     lambda a, b, xs: (a, a)),
    ("fori-transposed",
     lambda a, b, xs: gc.fori_loop(0, 3, lambda i, c: (c[0].T, c[1] * 2.0), (a, b)),
     lambda a, b, xs: (a.T, b * 8.0)),
    ("fori-same-array-twice",
     lambda a, b, xs: gc.fori_loop(0, 3, lambda i, c: (c[0], c[1]), (a, a)),
     lambda a, b, xs: (a, a)),
    ("scan-weight-passed-through",
     lambda a, b, xs: gc.scan(lambda c, x: ((c[0], c[1] + c[0] @ x), c[0] * x),
                              (a, b), xs),
     lambda a, b, xs: _np_scan(lambda c, x: ((c[0], c[1] + c[0] @ x), c[0] * x), (a, b), xs)),
    ("scan-slice-as-carry",
     lambda a, b, xs: gc.scan(lambda c, x: ((x, c[0]), c[1]), (a, b), xs),
     lambda a, b, xs: _np_scan(lambda c, x: ((x, c[0]), c[1]), (a, b), xs)),
    ("scan-const-as-carry",
     lambda a, b, xs: gc.scan(lambda c, x: ((b, c[0] + x), c[0]), (a, a), xs),
     lambda a, b, xs: _np_scan(lambda c, x: ((b, c[0] + x), c[0]), (a, a), xs)),
    ("while-pass-through-and-swapped",
     lambda a, b, xs: gc.while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, c[2], c[1], c[3]),
                                    (0, a, b, xs)),
     lambda a, b, xs: (4, a, b, xs)),
    ("while-never-runs",
     lambda a, b, xs: gc.while_loop(lambda c: c[0] < 0, lambda c: (c[0] + 1, c[2], c[1]),
                                    (0, a, b)),
     lambda a, b, xs: (0, a, b)),
    ("nested-fori-swapped",
     lambda a, b, xs: gc.fori_loop(0, 2, lambda i, c: gc.fori_loop(
         0, 3, lambda j, d: (d[1], d[0] + 0.0), (c[1], c[0])), (a, b)),
     lambda a, b, xs: (a, b)),
    ("cond-operands",
     lambda a, b, xs: gc.cond(gc.sum(a) > -100.0, lambda u, v: (v, u, u), lambda u, v: (u, v, v),
                              a, b),
     lambda a, b, xs: (b, a, a)),
]


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_loop_results_are_right_and_do_not_alias_the_arguments(case, plans):
    _, f, reference = case
    compiled = gc.compile(f)
    expected = [np.asarray(e) for e in _leaves(reference(A, B, XS))]
    earlier = []
    for _ in range(3):
        args = (A.copy(), B.copy(), XS.copy())
        results = [np.asarray(r) for r in _leaves(compiled(*args))]
        assert len(results) == len(expected)
        for r, e in zip(results, expected):
            np.testing.assert_allclose(r, e, rtol=1e-5, atol=1e-5)
            assert not any(np.shares_memory(r, a) for a in args)
        for j, r in enumerate(results):
            assert not any(np.shares_memory(r, s) for s in results[j + 1:] if r.size > 1)
        for a in args:  # the caller updates its arrays in place, as an optimiser does
            a += 100.0
        earlier.append(results)
    for results in earlier:  # the next calls did not write into earlier results
        for r, e in zip(results, expected):
            np.testing.assert_allclose(r, e, rtol=1e-5, atol=1e-5)


def _fori_loss(w, x):
    # w is passed through every iteration; the counter-like carry reads it
    _, h = gc.fori_loop(0, 3, lambda i, c: (c[0], gc.tanh(c[1] @ c[0])), (w, x))
    return gc.sum(h * h)


def _scan_loss(w, x):
    def step(c, xt):
        w, h = c
        return (w, gc.tanh(h @ w + xt)), h
    (_, h), hs = gc.scan(step, (w, x), XS.astype(np.float64))
    return gc.sum(h * h) + gc.sum(hs)


def _numeric_grad(f, w, x, eps=1e-6):
    g = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        up, down = w.copy(), w.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (float(f(up, x)) - float(f(down, x))) / (2 * eps)
    return g


@pytest.mark.parametrize("loss", [_fori_loss, _scan_loss], ids=["fori", "scan"])
def test_gradients_through_a_pass_through_carry(loss, plans):
    w, x = A.astype(np.float64) * 0.5, B.astype(np.float64)
    grad = gc.compile(gc.grad(loss, argnums=(0, 1)))
    value = gc.compile(loss)
    expected = _numeric_grad(value, w, x)
    for _ in range(3):
        args = (w.copy(), x.copy())
        gw, gx = grad(*args)
        np.testing.assert_allclose(gw, expected, rtol=1e-6, atol=1e-8)
        assert not any(np.shares_memory(g, a) for g in (gw, gx) for a in args)


def _region_plans(plan):
    plan(A, B)  # region plans are built on their first run
    return [p for v in vars(plan)["_globals"].values() if isinstance(v, _RegionPlans)
            for p in v.plans.values()]


def test_a_pass_through_body_copies_nothing(plans):
    """Before, the body's plan returned `in1.copy()` for the carry it passed through, and
    its memory counted the copy among its outputs (80 bytes, not 44); the swapped carries
    were both copied (80 bytes, not 8)."""
    counter, carry = 8, A.nbytes  # the fori_loop's int64 counter: fresh, as c[1] + 1.0 is
    for body, outputs in ((lambda i, c: (c[0], c[1] + 1.0), counter + carry),
                          (lambda i, c: (c[1], c[0]), counter)):
        graph = gc.trace(lambda a, b: gc.fori_loop(0, 3, body, (a, b)), A, B)
        regions = _region_plans(build_plan(graph))
        assert len(regions) == 1
        assert ".copy()" not in regions[0].source
        assert regions[0].memory["outputs"] == outputs
