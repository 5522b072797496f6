"""Review of session 14 (hostile, wrong results of compiled plans): aliasing between values
in the memory plan (control-flow results that are their operands, in-place writes, donated
inputs, views), fused kernels on odd layouts and sizes, concats written in parts, causal
products, polymorphic plans and repeated calls. Each test compares a compiled plan with
numpy written by hand."""
import numpy as np

import graphc as gc
from runtime.codegen import compile_graph


def _plan(fn, *specs, **kwargs):
    return compile_graph(gc.trace(fn, *specs), **kwargs)


# ---- control flow: a region's plan returns its operand itself (runtime/control_flow.py) ---

def test_a_cond_branch_returning_its_operand_is_not_overwritten_by_later_values():
    def f(x, p):
        a = x * 2.0  # a pool buffer, dead after the cond
        c = gc.cond(p > 0, lambda a: a, lambda a: a * 3.0, a)
        return c + (x * 5.0 + 1.0)  # x * 5 took a's buffer: c was overwritten
    plan = _plan(f, gc.spec((2, 3), "float64"), gc.spec((), "float64"))
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(plan(x, np.float64(1.0))[0], x * 2 + x * 5 + 1)
    np.testing.assert_array_equal(plan(x, np.float64(-1.0))[0], x * 6 + x * 5 + 1)


def test_a_cond_output_passed_through_survives_the_next_call():
    plan = _plan(lambda x, p: gc.cond(p > 0, lambda a: a, lambda a: a * 3.0, x * 2.0),
                 gc.spec((2, 3), "float64"), gc.spec((), "float64"))
    x = np.arange(6.0).reshape(2, 3)
    first = plan(x, np.float64(1.0))[0]
    plan(x + 100.0, np.float64(1.0))
    np.testing.assert_array_equal(first, x * 2)


def test_a_carry_passed_through_a_scan_or_an_idle_while_loop_keeps_its_value():
    def scan(h, xs):
        last, _ = gc.scan(lambda c, x: (c, x + c), h * 2.0, xs)
        return last + (h * 7.0 + 1.0)

    def loop(h):
        last = gc.while_loop(lambda c: gc.sum(c) < 0.0, lambda c: c * 2.0, h * 2.0)
        return last + (h * 7.0 + 1.0)
    h, xs = np.ones((2, 3)), np.zeros((4, 2, 3))
    want = h * 2 + h * 7 + 1
    got = _plan(scan, gc.spec((2, 3), "float64"), gc.spec((4, 2, 3), "float64"))(h, xs)[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_plan(loop, gc.spec((2, 3), "float64"))(h)[0], want)


# ---- passes/simplify.py: masked_softmax_gradient ------------------------------------------

def test_a_row_masked_whole_and_then_dropped_has_a_zero_gradient_not_nan():
    """softmax of a row masked whole is NaN; a padding row whose output is then replaced has a
    finite loss, and numpy's gradient is 0 there (the mask's where). The rewrite dropped that
    where, assuming softmax is 0 wherever the mask holds: NaN gradients."""
    w = np.arange(6.0).reshape(2, 3)

    def loss(x, mask, valid):
        y = gc.softmax(gc.where(mask, float("-inf"), x), axis=-1)
        return gc.sum(gc.where(valid, y, 0.0) * w)
    mask = np.array([[False, True, True], [True, True, True]])
    valid = np.array([[True], [False]])
    with np.errstate(all="ignore"):
        got = gc.compile(gc.grad(loss))(np.ones((2, 3)), mask, valid)
    np.testing.assert_array_equal(got, np.zeros((2, 3)))
