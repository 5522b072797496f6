"""Session 33's findings; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc.data import CharData
from ir.errors import GraphcError


def test_batches_reach_the_last_window():
    """CharData.batch drew starts from [0, len - block - 1): the window whose target is the
    last character was never trained on (nanoGPT draws from [0, len - block)), and a split
    of block + 1 characters, which holds exactly one window, failed inside numpy."""
    train = np.arange(9, dtype=np.uint8)
    data = CharData([chr(65 + i) for i in range(10)], train, train.copy())
    x, y = data.batch(np.random.default_rng(0), "train", 3, 8)
    np.testing.assert_array_equal(x, np.tile(np.arange(8), (3, 1)))
    np.testing.assert_array_equal(y, np.tile(np.arange(1, 9), (3, 1)))
    longer = CharData(data.vocab, np.arange(10, dtype=np.uint8), train)
    starts = {int(longer.batch(np.random.default_rng(s), "train", 1, 8)[0][0, 0])
              for s in range(40)}
    assert starts == {0, 1}


def test_compiled_loops_and_branches_range_check_the_weak_ints_they_read():
    """A Python int argument read inside a scan body, a cond branch or a while_loop body
    (or passed as a cond operand) met an int32 tensor there unchecked: 2**32 + 1 wrapped to
    1 and the plan returned x + 2 for two steps, where eager code refuses the value. The
    casts inside regions now count, traced back to the argument through every enclosing
    region (a branch inside a loop body reading k + 1 of the function)."""
    x = np.arange(3, dtype=np.int32)
    scan = gc.compile(lambda x, k: gc.scan(lambda c, _: (c + k, None), x, length=2)[0])
    branch = gc.compile(lambda x, k: gc.cond(x.sum() > 0, lambda a: a + k, lambda a: a - k, x))
    operand = gc.compile(lambda x, k: gc.cond(x.sum() > 0, lambda a, b: a * b,
                                              lambda a, b: a - b, x, k))
    loop = gc.compile(lambda x, k: gc.while_loop(lambda c: c.sum() < 100,
                                                 lambda c: c + k, x))
    nested = gc.compile(lambda x, k: gc.fori_loop(
        0, 3, lambda i, c: gc.cond(i > 0, lambda a: a * (k + 1), lambda a: a, c), x))
    np.testing.assert_array_equal(scan(x, 5), x + 10)
    np.testing.assert_array_equal(branch(x, 7), x + 7)
    np.testing.assert_array_equal(operand(x, 3), x * 3)
    np.testing.assert_array_equal(loop(x, 3), x + 33)
    np.testing.assert_array_equal(nested(x, 2), x * 9)
    for f, k, shown in [(scan, 2**32 + 1, "argument k = 4294967297"),
                        (branch, 2**32 + 1, "argument k = 4294967297"),
                        (operand, 2**31, "argument k = 2147483648"),
                        (loop, -2**40, "argument k = -1099511627776"),
                        (nested, 2**31, "2147483649, computed from k,")]:
        with pytest.raises(GraphcError, match=f"{shown} does not fit in int32"):
            f(x, k)


def test_a_number_operand_of_cond_is_weakly_typed_as_in_eager_code():
    """cond(p, f, g, x, k) with a Python int k (an argument or a literal) and an int32 or
    float32 x: compiled, k was a strong int64 in the branches and `x - k` was refused
    ("operands must have one dtype"); eagerly it takes x's dtype."""
    def f(x, k):
        return gc.cond(x.sum() > 0, lambda x, k: x * k, lambda x, k: x - k, x, k)
    for dtype in (np.int32, np.float32):
        x = np.arange(3, dtype=dtype)
        for k in (3, np.int64(3)):
            out = gc.compile(f)(x, k)
            eager = f(gc.tensor(x), k)
            assert out.dtype == eager.data.dtype == dtype
            np.testing.assert_array_equal(out, x * 3)
            np.testing.assert_array_equal(eager.data, x * 3)
        literal = gc.compile(lambda x: f(x, 4))(x)
        assert literal.dtype == dtype
        np.testing.assert_array_equal(literal, x * 4)


def test_grad_passes_a_number_it_cannot_trace_as_it_is():
    """gc.grad(f)(x, 3) traced the 3, and f's `range(k)` failed with a hint to list it in
    static_argnums, which grad does not have. Un-jitted JAX passes it as it is; graphc
    traces numbers (a new learning rate reuses the plan) until one is used as a Python
    value, and from then on passes them as they are (each value keys its plan)."""
    x = np.arange(3, dtype=np.float32)

    def f(x, k):
        for _ in range(k):
            x = x * 2
        return gc.sum(x)
    g = gc.grad(f)
    np.testing.assert_array_equal(g(x, 3), np.full(3, 8.0))
    np.testing.assert_array_equal(g(x, 2), np.full(3, 4.0))
    value, grad = gc.value_and_grad(f)(x, 1)
    assert float(value) == 6.0
    np.testing.assert_array_equal(grad, np.full(3, 2.0))
    np.testing.assert_array_equal(gc.hessian(f)(x, 2), np.zeros((3, 3)))
    scale = gc.grad(lambda x, s: gc.sum(x * s))  # a number used as a number stays traced
    np.testing.assert_array_equal(scale(x, 2.5), np.full(3, 2.5))
    with pytest.raises(GraphcError, match=r"int\(\) of a symbolic value"):
        gc.grad(lambda x: gc.sum(gc.reshape(x, (int(gc.sum(x)), -1))))(x)


def test_a_subnormal_initial_loss_scale_is_refused():
    """LossScaler(init_scale=1e-40) was accepted: 1/scale is Inf in float32, so every step
    overflowed and training stopped as diverged, blaming the learning rate (a checkpoint
    holding such a scale is refused on resume too: test_review_s33_cli)."""
    from graphc.amp import LossScaler
    for scale in (1e-40, 1e-45):
        with pytest.raises(GraphcError, match="below float32's smallest normal number"):
            LossScaler(init_scale=scale)
    assert LossScaler(init_scale=float(np.finfo(np.float32).tiny)).init_scale > 0


def test_grad_makes_only_the_number_used_as_a_python_value_static():
    """Once f used one number argument as a Python value, every number argument keyed the
    plan: a temperature changing each step built a plan per call. Only that position is
    passed as it is now; the others stay traced."""
    import runtime.build as build
    built, real = [0], build.build_plan

    def counting(*args, **kwargs):
        built[0] += 1
        return real(*args, **kwargs)
    x = np.arange(3, dtype=np.float32)

    def loss(x, n, t):
        for _ in range(n):
            x = x * 2
        return gc.sum(x * t)
    g = gc.grad(loss)
    build.build_plan = counting
    try:
        for step in range(6):
            np.testing.assert_allclose(g(x, 3, 1.0 + step), np.full(3, 8.0 * (1 + step)))
        assert built[0] == 1
        np.testing.assert_allclose(g(x, 2, 1.0), np.full(3, 4.0))
        assert built[0] == 2
    finally:
        build.build_plan = real


def test_messages_for_numbers_passed_to_cond_as_operands():
    """A number operand of cond is weakly typed in the branches: used as a Python value
    there, the message named an internal input ('a0_1') and static_argnums, which cannot
    help a number the function wrote; one that does not fit read "computed from ,"."""
    x = np.arange(3, dtype=np.int32)
    with pytest.raises(GraphcError, match="a number passed to cond as an operand is traced "
                                          "in its branches: close over it") as info:
        gc.compile(lambda x: gc.cond(x.sum() > 0, lambda a, k: a * len(range(k)),
                                     lambda a, k: a, x, 3))(x)
    assert "static_argnums" not in str(info.value)
    with pytest.raises(GraphcError, match=r"compiled function: the number 1099511627776 does "
                                          "not fit in int32"):
        gc.compile(lambda x: gc.cond(x.sum() > 0, lambda a, k: a + k, lambda a, k: a - k,
                                     x, 2**40))(x)
    # a function's number read inside a scan body names the function's argument
    f = gc.compile(lambda x, k: gc.scan(lambda c, _: (c * len(range(k)), None), x,
                                        length=2)[0])
    with pytest.raises(GraphcError, match="the value passed as 'k' is traced"):
        f(x, 3)


def test_a_returned_closed_over_tensor_is_read_at_each_call():
    """A compiled function returning a closed-over tensor (a Parameter) as it is kept
    returning its value from when it was traced after `w -= 10`; the same tensor inside an
    op was read at each call, as README says. The result is a copy, as before."""
    w = gc.tensor(np.arange(3.0))
    f = gc.compile(lambda x: (w + x, w))
    f(np.zeros(3))
    with gc.no_grad():
        w -= 10.0
    summed, returned = f(np.zeros(3))
    np.testing.assert_array_equal(returned, [-10.0, -9.0, -8.0])
    np.testing.assert_array_equal(summed, returned)
    returned[0] = 99.0
    assert w.data[0] == -10.0


def test_compile_options_are_checked_where_compile_is_called():
    """pipeline=None was a TypeError from inside the pass manager at the first call, and
    fast_math="no" turned fast math on (x * 0.0 gave 0 for inf and NaN)."""
    for options, said in [({"pipeline": None}, "compile: pipeline must be"),
                          ({"pipeline": 123}, "compile: pipeline must be"),
                          ({"pipeline": "nonsense"}, "compile: unknown pass 'nonsense'"),
                          ({"fast_math": "no"}, "compile: fast_math must be True or False")]:
        with pytest.raises(GraphcError, match=said):
            gc.compile(lambda x: x * 0.0, **options)
    x = np.array([np.inf, np.nan, 1.0], np.float32)
    np.testing.assert_array_equal(gc.compile(lambda x: x * 0.0, fast_math=False)(x),
                                  [np.nan, np.nan, 0.0])
