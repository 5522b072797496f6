"""Session 37's fixes of the eager control-flow constructs' weakly typed carries and results;
each test failed before its fix."""
import numpy as np

import graphc as gc


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, want)


def _both(fn, *args):
    """fn's result eagerly and compiled, as (eager, compiled) pairs of leaves."""
    def leaves(tree):
        return [x for t in tree for x in leaves(t)] if isinstance(tree, (tuple, list)) else [tree]
    return list(zip(leaves(fn(*args)), leaves(gc.compile(fn)(*args))))


def test_an_eager_scan_whose_weak_carry_the_body_retypes_runs_as_compiled():
    """An eager scan of `lambda c, x: (c + x, c)` from the Python int 0 recorded step 0's y
    as the int 0 and failed to stack it with the later float32 (or int32) ys ("concat(i64[1],
    f32[1], f32[1]): operands must have one dtype"), where the compiled scan promotes the
    weak initial carry to the dtype the body returns it in. Now the eager loop retypes such
    a carry as the traced one does and runs again from the start: the same values and dtypes
    in both modes, forward and reverse, with a tensor on the tape (while_loop shares the
    retyping, and keeps giving the compiled loop's values)."""
    xs = np.array([1.5, 2.0, 3.0], np.float32)
    for reverse, carry, ys in ((False, 6.5, [0, 1.5, 3.5]), (True, 6.5, [5, 3, 0])):
        def prefix(xs, reverse=reverse):
            return gc.scan(lambda c, x: (c + x, c), 0, xs, reverse=reverse)
        for got, want in zip(_both(prefix, xs), (carry, ys)):
            for value in got:
                _same(value, want, np.float32)
    xi = np.array([1, 2, 3], np.int32)
    for got, want in zip(_both(lambda xi: gc.scan(lambda c, x: (c + x, c), 0, xi), xi),
                         (6, [0, 1, 3])):
        for value in got:
            _same(value, want, np.int32)
    # a weak carry the body returns as a weak float64 (c / 2 + 1) is one from the start
    halves = lambda z: gc.scan(lambda c, _: (c / 2 + 1, c), 0, None, length=3)  # noqa: E731
    for got, want in zip(_both(halves, np.zeros(1)), (1.75, [0, 1, 1.5])):
        for value in got:
            _same(value, want, np.float64)
    # on the tape: the gradient flows through every step, step 0's y included
    t = gc.Tensor(xs, requires_grad=True)
    carry, ys = gc.scan(lambda c, x: (c + x, c), 0, t)
    _same(ys, [0, 1.5, 3.5], np.float32)
    (carry + ys.sum()).backward()
    np.testing.assert_array_equal(t.grad, [3, 2, 1])
    # while_loop: a weak int counter beside a carry the body makes float32
    counted = lambda xs: gc.while_loop(  # noqa: E731
        lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2 + xs[c[0]]), (0, 0))
    (n_eager, n_compiled), (s_eager, s_compiled) = _both(counted, xs)
    for value, want, dtype in ((n_eager, 3, np.int64), (n_compiled, 3, np.int64),
                               (s_eager, 13, np.float32), (s_compiled, 13, np.float32)):
        _same(value, want, dtype)
