"""Session 34's fixes of weak typing, integer inputs and repeated argnums in the transforms;
each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


X = np.array([1.0, 2.0])
ROWS32 = np.ones((3, 2), np.float32)


def _same(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_numbers_computed_from_python_number_arguments_stay_weak_when_traced():
    """README: values computed from weak numbers "stay weak". Traced, they did not: -k and
    abs(k) (unary ops), the identity reshape grad's fresh variables are, k / n of two ints
    and lr * step (a weak float meeting a weak int) gave strong int64 or float64 values, so
    `x * -k`, `x * (1 / n)`, `lr * step` and a Python float inside a differentiated dict were
    refused ("operands must have one dtype", "div needs floating-point operands") where eager
    code and JAX take them. Each now agrees with eager code and the hand value."""
    def times_minus(x, k):
        return gc.sum(x * -k)
    _same(gc.grad(times_minus)(X, 3), [-3, -3], np.float64)
    _same(gc.compile(gc.grad(times_minus))(X, 3), [-3, -3], np.float64)
    t = gc.tensor(X, requires_grad=True)
    times_minus(t, 3).backward()
    _same(t.grad, [-3, -3], np.float64)

    def times_abs(x, k):
        return x * abs(k)
    _same(gc.compile(times_abs)(ROWS32[0], -3), [3, 3], np.float32)
    _same(times_abs(gc.tensor(ROWS32[0]), -3), [3, 3], np.float32)

    def over(x, n):
        return gc.sum(x * (1 / n))
    _same(gc.grad(over)(X, 4), [0.25, 0.25], np.float64)
    _same(gc.compile(gc.grad(over))(X, 4), [0.25, 0.25], np.float64)
    _same(gc.compile(lambda x, a, b: x * (a / b))(ROWS32[0], 1, 4), [0.25, 0.25], np.float32)

    y, tangent = gc.jvp(lambda x, n: x * -n, (X, 3), (X, 0))
    _same(y, [-3, -6], np.float64)
    _same(tangent, [-3, -6], np.float64)
    y, tangent = gc.compile(lambda x, n, v: gc.jvp(lambda x, n: x * -n, (x, n), (v, 0)))(
        X, 3, X)
    _same(tangent, [-3, -6], np.float64)

    _same(gc.compile(lambda lr, step: lr * step)(0.1, 3), 0.1 * 3, np.float64)
    _same(gc.compile(lambda x, lr, step: x * (lr * step))(ROWS32[0], 0.5, 3), [1.5, 1.5],
          np.float32)

    def scaled(d, x):
        return gc.sum(x * d["k"])
    x32 = X.astype(np.float32)
    _same(gc.grad(scaled)({"k": 0.5}, x32)["k"], 3.0, np.float64)
    _same(gc.compile(gc.grad(scaled))({"k": 0.5}, x32)["k"], 3.0, np.float64)


def test_weak_numbers_keep_their_range_check_and_strong_values_still_refuse_mixing():
    """The weak rules above must not let a value wrap or a strong array mix silently: -k
    meeting an int32 tensor is range-checked at the call as k is, and 0-d arrays (strong)
    still refuse mixed dtypes as before."""
    i32 = np.arange(3, dtype=np.int32)
    minus = gc.compile(lambda x, k: x * -k)
    np.testing.assert_array_equal(minus(i32, 2), [0, -2, -4])
    assert minus(i32, 2).dtype == np.int32
    with pytest.raises(GraphcError, match="-1099511627776, computed from k, does not fit"):
        minus(i32, 2**40)
    with pytest.raises(GraphcError, match="operands must have one dtype"):
        gc.compile(lambda x, k: x * -k)(X.astype(np.float32), np.array(3))
    with pytest.raises(GraphcError, match="needs floating-point operands"):
        gc.compile(lambda a, b: a / b)(np.array(1), np.array(4))
    with pytest.raises(GraphcError, match="operands must have one dtype"):
        gc.compile(lambda lr, step: lr * step)(np.array(0.1), np.array(3))


def test_vmap_keeps_an_unmapped_python_number_weak():
    """gc.vmap(f, in_axes=(0, None)) under compile made the unmapped Python int an int64
    input that was not weak (the closure case, capture(), was): x * k on float32 rows was
    refused. The cast it now takes is range-checked as outside vmap: before, a closed-over
    k = 2**40 meeting int32 rows inside vmap wrapped silently."""
    f = gc.vmap(lambda x, k: x * k, in_axes=(0, None))
    _same(f(ROWS32, 3), np.full((3, 2), 3.0), np.float32)
    _same(gc.compile(f)(ROWS32, 3), np.full((3, 2), 3.0), np.float32)
    rows = np.arange(6, dtype=np.int32).reshape(3, 2)
    compiled = gc.compile(gc.vmap(lambda x, k: x - k, in_axes=(0, None)))
    np.testing.assert_array_equal(compiled(rows, 1), rows - 1)
    closed = gc.compile(lambda x, k: gc.vmap(lambda r: r + k)(x))
    for g in (compiled, closed):
        with pytest.raises(GraphcError, match="argument k = 1099511627776 does not fit in"):
            g(rows, 2**40)


def test_loop_carries_and_branch_results_stay_weak_where_the_body_keeps_them():
    """A Python int carried by scan (or while_loop) was a strong int64 in the body, so
    `r * c` on float rows was refused, and so was x * the loop's result or a cond's; eager
    code (and JAX) take them. A carry the body keeps weak (c + 1) is now weak in the body and
    as the loop's result; one the body makes strong (c + a 0-d array) is carried strong (the body is
    traced again); a weak int such a construct computes meeting an int32 tensor is refused
    in one line, since the call cannot check that it fits."""
    def scanned(k, xs):
        carry, ys = gc.scan(lambda c, r: (c + 1, r * c), k, xs)
        return xs * carry, ys
    for carry, ys in (scanned(3, gc.tensor(ROWS32)), gc.compile(scanned)(3, ROWS32)):
        _same(carry, np.full((3, 2), 6.0), np.float32)
        _same(ys, [[3, 3], [4, 4], [5, 5]], np.float32)

    def counted(k, x):
        return x * gc.while_loop(lambda c: c < 10, lambda c: c + 1, k)
    _same(gc.compile(counted)(3, ROWS32[0]), [10, 10], np.float32)
    _same(counted(3, gc.tensor(ROWS32[0])), [10, 10], np.float32)

    def branched(p, k, x):
        return x * gc.cond(p, lambda k: k + 1, lambda k: 0, k)
    for p, want in ((True, 4.0), (False, 0.0)):
        _same(gc.compile(branched)(np.array(p), 3, ROWS32[0]), [want, want], np.float32)
        _same(branched(p, 3, gc.tensor(ROWS32[0])), [want, want], np.float32)

    def made_strong(k, xs):
        return gc.scan(lambda c, r: (c + np.array(1), r), k, xs)[0]  # (a strong int64)
    out = gc.compile(made_strong)(3, ROWS32)
    assert out.dtype == np.int64 and int(out) == 6
    with pytest.raises(GraphcError, match="operands must have one dtype"):
        gc.compile(lambda k, xs: xs * made_strong(k, xs))(3, ROWS32)

    i32 = np.ones((3, 2), np.int32)
    with pytest.raises(GraphcError, match="known only as the plan runs"):
        gc.compile(lambda k, xs: gc.scan(lambda c, r: (c + 1, r * c), k, xs)[1])(3, i32)
    with pytest.raises(GraphcError, match="known only as the plan runs"):
        gc.compile(lambda k, x: x * gc.while_loop(lambda c: c < 10, lambda c: c + 1, k))(
            3, i32[0])


def test_integer_arguments_at_differentiated_positions_are_refused_eagerly_and_compiled():
    """grad(lambda k: k * 2.0)(3) gave 2.0 eagerly (the int became a float64) but was refused
    compiled; jacrev(f, argnums=(0, 1))(y, 3)[1] was [2, 2] eagerly and None compiled; jacrev
    of an integer array returned None. As JAX (and jacfwd here) they are now refused, eagerly
    and compiled alike, in one line naming the transform and the argument; a float number
    is still differentiated, an int vjp primal still gets None and an int not picked by
    argnums is still an index."""
    y = np.ones(2)
    calls = [
        ("grad", 0, lambda: gc.grad(lambda k: k * 2.0)(3)),
        ("grad", 0, lambda: gc.compile(gc.grad(lambda k: k * 2.0))(3)),
        ("value_and_grad", 1, lambda: gc.value_and_grad(lambda x, k: gc.sum(x) * k,
                                                        argnums=1)(y, 3)),
        ("grad", 0, lambda: gc.grad(lambda k: 2.0 * gc.sum(k))(np.arange(3))),
        ("grad", 0, lambda: gc.grad(lambda d: d["k"] * 2.0)({"k": 3})),
        ("jacrev", 1, lambda: gc.jacrev(lambda y, k: y * k * 2.0, argnums=(0, 1))(y, 3)),
        ("jacrev", 1, lambda: gc.compile(gc.jacrev(lambda y, k: y * k * 2.0,
                                                   argnums=(0, 1)))(y, 3)),
        ("jacrev", 0, lambda: gc.jacrev(lambda x: gc.cast(x, "float64") * 2.0)(np.arange(3))),
        ("jacfwd", 0, lambda: gc.jacfwd(lambda k: k * 2.0)(3)),
        ("hessian", 0, lambda: gc.hessian(lambda k: k * k * 2.0)(3)),
        ("grad", 0, lambda: gc.vmap(lambda x: gc.grad(lambda k: k * x)(3))(y)),
    ]
    for who, position, call in calls:
        with pytest.raises(GraphcError, match=f"^{who}: argument {position} has dtype int64"
                           r"( \(a number\))?; only floating-point arguments can be "
                           "differentiated") as info:
            call()
        assert len(info.value.message.splitlines()) == 1
    assert float(gc.grad(lambda k: k * 2.0)(3.0)) == 2.0
    assert float(gc.compile(gc.grad(lambda k: k * 2.0))(3.0)) == 2.0
    _, pull = gc.vjp(lambda x, i: x[i] * 2.0, y, 1)
    dx, di = pull(1.0)
    np.testing.assert_array_equal(dx, [0, 2])
    assert di is None
    np.testing.assert_array_equal(gc.grad(lambda x, n: gc.sum(x[n] * n))(y, 1), [0, 1])


def test_jacobians_with_a_repeated_argnum_give_its_jacobian_each_time_as_grad_does():
    """jacrev/jacfwd/hessian(f, argnums=(1, 1)) gave zeros for the first copy: each copy
    became its own variable and the later one replaced the earlier one in f's call. As
    gc.grad gives a repeated position's gradient at each place, each copy now gets the
    Jacobian (argnums (1, -1) names one position twice too), eagerly and compiled."""
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])

    def f(a, b):
        return a * b * b
    dy, dx = np.diag(2 * x * y), np.diag(y * y)
    for jac in (gc.jacrev, gc.jacfwd):
        for run in (jac(f, argnums=(1, 0, 1)), gc.compile(jac(f, argnums=(1, 0, 1)))):
            got = run(x, y)
            assert len(got) == 3
            for g, want in zip(got, (dy, dx, dy)):
                np.testing.assert_allclose(g, want, rtol=1e-15)
    grads = gc.grad(lambda a, b: gc.sum(f(a, b)), argnums=(1, 0, 1))(x, y)
    for g, want in zip(grads, (dy, dx, dy)):
        np.testing.assert_allclose(g, np.diag(want), rtol=1e-15)
    hess = gc.hessian(lambda a, b: gc.sum(f(a, b)), argnums=(1, -1))(x, y)
    for row in hess:
        for block in row:
            np.testing.assert_allclose(block, np.diag(2 * x), rtol=1e-15)


def test_a_number_computed_from_an_unmapped_vmap_argument_is_range_checked():
    """(Review of this session's weak typing.) vmap's unmapped Python int k became weak, but
    the batching rebuilt k + 1 as a strong node outside its check: compiled, int32 rows times
    k + 1 with k = 2**40 wrapped to rows * 1. Now the rebuilt node is weak as its original, so
    the number meets the rows through a checked cast."""
    rows = np.arange(3, dtype=np.int32).reshape(3, 1)
    f = gc.compile(gc.vmap(lambda r, k: r * (k + 1), in_axes=(0, None)))
    got = f(rows, 2)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.ravel(), [0, 3, 6])
    with pytest.raises(GraphcError, match=r"1099511627777, computed from k, does not fit in "
                                          "int32"):
        f(rows, 2**40)


def test_value_and_grad_names_itself_when_it_refuses_an_integer_argument():
    """(Review.) value_and_grad's refusal of an integer argument said "grad: ..."."""
    with pytest.raises(GraphcError, match=r"^value_and_grad: argument 0 has dtype int64"):
        gc.value_and_grad(lambda a: a * 2.0)(3)
    with pytest.raises(GraphcError, match=r"^grad: argument 0 has dtype int64"):
        gc.grad(lambda a: a * 2.0)(3)
