"""Session 35's fixes of numerics found by review; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from runtime import jit
from runtime.codegen import compile_graph


def _plans(fn, *specs):
    """fn's plan with the numba kernels (where numba is there) and with numpy's emitters."""
    graph = gc.trace(fn, *specs)
    return [compile_graph(graph, jit=use) for use in ((True, False) if jit.enabled()
                                                      else (False,))]


def test_mean_var_and_std_of_a_constant_array_are_exact_as_numpys():
    """mean was sum(x) * (1 / n): an ulp off for some counts, so the mean of 49 float64 ones
    was 0.9999999999999999 (of 41 float32 ones 0.99999994), its std 1.1e-16, and var with
    ddof=1 rescaled the biased variance by n / (n - 1) (var([1, 2, 3, 4], ddof=1) was
    1.6666666666666665). numpy, torch and JAX divide by the count: now graphc does too,
    eagerly and compiled (a plan's sums may add in another order than numpy's), and the
    eager results are numpy's to the bit."""
    for x in (np.ones(49), np.ones(98), np.ones(41, np.float32), np.full(103, 0.1)):
        assert np.asarray(gc.mean(x)) == np.mean(x)
        assert np.asarray(gc.compile(gc.mean)(x)) == np.mean(x)
        assert np.asarray(gc.std(x)) == np.std(x)
        assert np.asarray(gc.compile(gc.var)(x)) == np.var(x)
    assert np.asarray(gc.std(np.ones(49))) == 0
    rows = np.random.default_rng(0).standard_normal((200, 7))
    np.testing.assert_array_equal(np.asarray(gc.var(rows, axis=1, ddof=1)),
                                  np.var(rows, axis=1, ddof=1))
    four = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.asarray(gc.var(four, ddof=1)) == 5 / 3
    assert gc.compile(lambda v: gc.var(v, ddof=1))(four) == 5 / 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalising_a_constant_row_gives_zeros(dtype):
    """LayerNorm's kernels (the numpy op, the plan's numpy emitters and the numba row kernel)
    multiplied the row's sum by 1 / n, so a constant row of 49 threes had a mean an ulp off
    and normalised to 1.4e-13 where torch gives 0; group_norm of a constant float32 group
    gave -7.5e-5. Each divides by n now (once per row; per element nothing changed), so
    the rows, their input gradients for a constant g and group_norm's are exactly 0."""
    x = np.full((3, 49), 3.0, dtype)
    assert not np.asarray(gc.layer_norm(x)).any()
    assert not np.asarray(gc.group_norm(x.reshape(3, 49, 1), 7)).any()
    for plan in _plans(lambda x, g: (gc.layer_norm(x), gc.layer_norm_grad(
            x, gc.ones(49, dtype), g, 1e-5)), gc.spec(x.shape, dtype), gc.spec(x.shape, dtype)):
        y, dx = plan(x, np.full(x.shape, 2.0, dtype))  # (a constant g: dx is rstd * 0)
        assert not y.any() and not dx.any()


def test_an_op_on_python_numbers_alone_is_weakly_typed_eagerly_as_traced():
    """gc.sqrt(2.0) was a strong float32 tensor, so `x * gc.sqrt(k)` on a float64 (or
    float16) x was refused eagerly ("operands must have one dtype") while gc.compile and
    gc.grad of the same function took it, and x * gc.sqrt(2.0) was refused compiled too.
    As in JAX, an op's result from Python numbers alone is now weakly typed, eagerly and
    traced: it meets a tensor as the number would, and eager, compiled and gradient code
    agree to the bit (gc.compile(f)(x, 2.0) takes 2.0 as a float64 argument, so its sqrt is
    float64's)."""
    f = lambda x, k: x * gc.sqrt(k)
    x = np.array([1.0, 2.0])
    root = float(np.sqrt(np.float32(2.0)))  # the weak value's float32 value, widened
    for got in (f(gc.tensor(x), 2.0), gc.compile(lambda x: x * gc.sqrt(2.0))(x),
                gc.grad(lambda x: gc.sum(x * gc.sqrt(2.0)))(x) * x):
        got = np.asarray(got)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, [root, 2 * root])
    half = np.asarray(f(gc.tensor(x.astype(np.float16)), 2.0))
    assert half.dtype == np.float16 and half[0] == np.float16(root)
    weak = -gc.sqrt(2.0) + 1  # numbers meeting a weak value take its dtype
    assert weak.dtype == np.float32 and weak.weak and np.asarray(weak) == np.float32(1 - root)
    ints = gc.tensor(np.array([1, 2], np.int32)) * gc.add(1, 2)
    assert ints.dtype == np.int32 and ints.data.tolist() == [3, 6]
    # a weak result passed to a compiled function, or read by one, is weak there too
    assert gc.compile(lambda x, k: x * k)(x, gc.sqrt(4.0)).tolist() == [2.0, 4.0]
    three = gc.sqrt(9.0)
    assert gc.compile(lambda x: x * three)(x).tolist() == [3.0, 6.0]
    assert gc.compile(lambda: three + 1)() == 4.0
    assert not gc.sqrt(gc.tensor(2.0)).weak and not gc.sqrt(2.0).astype("float32").weak


def test_a_python_bool_argument_is_weakly_typed_compiled_as_eagerly():
    """`gc.tensor(x_f32) * True` is float32 eagerly, but a compiled function traced a bool
    argument as a strong bool input, so gc.compile(lambda x, k: x * k)(x, True) was refused
    ("operands must have one dtype"). A bool argument is weak now, as jax.jit's: it takes
    the dtype of the tensor it meets, and stays a bool as a predicate or a mask."""
    x = np.array([1.0, 2.0], np.float32)
    times = gc.compile(lambda x, k: x * k)
    for k in (True, np.bool_(True)):
        got = times(x, k)
        assert got.dtype == np.float32 and got.tolist() == [1.0, 2.0]
    assert times(np.array([3, 4], np.int32), False).tolist() == [0, 0]
    assert times(np.array([3, 4], np.int32), False).dtype == np.int32
    assert gc.compile(lambda x, k: gc.where(k, x, -x))(x, False).tolist() == [-1.0, -2.0]
    assert gc.compile(lambda x, k: gc.logical_and(x > 1, k))(x, True).tolist() == [False, True]
    assert gc.compile(lambda x, k: (x > 1) == k)(x, False).tolist() == [True, False]
    assert gc.compile(lambda x, k: gc.cond(k, lambda: x, lambda: -x))(x, False).tolist() == \
        [-1.0, -2.0]


def test_numbers_of_mixed_kinds_meet_as_python_adds_them():
    """gc.add(1, 1.5) was refused eagerly ("operands must have one dtype, got int64 and
    float32") and so was gc.add(1, 2) + 1.5, where gc.compile of the same code gave 2.5, as
    Python and JAX do. Numbers alone of mixed kinds now meet in the wider kind: an int or
    bool meeting a float is a (weak) float32, a bool meeting an int an int64."""
    assert gc.add(1, 1.5).dtype == np.float32 and float(gc.add(1, 1.5)) == 2.5
    later = gc.add(1, 2) + 1.5
    assert later.weak and later.dtype == np.float32 and float(later) == 4.5
    assert gc.floor_divide(7.0, 2).dtype == np.float32 and float(gc.floor_divide(7.0, 2)) == 3
    both = gc.add(True, 2)
    assert both.dtype == np.int64 and int(both) == 3
    x = np.array([1.0, 2.0])  # float64: the weak float32 widens exactly
    assert (gc.tensor(x) * gc.add(1, 0.5)).dtype == np.float64
    assert gc.compile(lambda x: x * gc.add(1, 0.5))(x).tolist() == [1.5, 3.0]


def test_int_of_a_0d_tensor():
    """int(t) of a 0-d tensor was a TypeError (float(t) worked); it is numpy's int() of a
    0-d array now, truncating a float, as torch's."""
    assert int(gc.tensor(np.array(2.7))) == 2 and int(gc.tensor(np.array(-3))) == -3
    assert int(gc.add(1, 2)) == 3


def test_var_with_ddof_of_a_symbolic_count_divides_as_numpy():
    """Under polymorphic_shapes var(ddof=1) still rescaled the mean of squares by
    n / (n - ddof) (1.6666666666666665 for [1, 2, 3, 4], numpy 1.6666666666666667). It
    divides the sum of squares by n - ddof now, as the static count does; n <= ddof gives
    numpy's inf (NaN for a zero sum)."""
    f = gc.compile(lambda v: gc.var(v, ddof=1), polymorphic_shapes=(("n",),))
    four = np.array([1.0, 2.0, 3.0, 4.0])
    assert float(f(four)) == np.var(four, ddof=1)
    with np.errstate(all="ignore"):
        assert float(f(np.array([2.0]))) != float(f(np.array([2.0])))  # NaN, as numpy's
        many = gc.compile(lambda v: gc.var(v, ddof=3), polymorphic_shapes=(("n",),))
        assert float(many(np.array([1.0, 2.0]))) == np.inf == np.var([1.0, 2.0], ddof=3)
    rows = np.random.default_rng(0).standard_normal((20, 7))
    g = gc.compile(lambda v: gc.var(v, axis=1, ddof=1), polymorphic_shapes=(("b", "n"),))
    np.testing.assert_allclose(g(rows), np.var(rows, axis=1, ddof=1), rtol=4e-16)


def test_a_weak_integer_from_numbers_alone_indexes_as_an_integer():
    """An op on Python numbers alone gives a weak 0-d tensor (gc.sub(5, 1)), and every op
    turned such an operand into a Python number, so an index or take's indices met the
    float32 tensor as a float: x[gc.sub(5, 1)] was refused ("the start must be an integer
    scalar, got f32[]"). Now only the ops that give a number the dtype it meets (add, mul,
    where's values, the unary ops) read it as a number; elsewhere it is the int64 tensor it
    holds, as a traced weak value is."""
    x = gc.tensor(np.arange(5.0, dtype=np.float32))
    index = gc.sub(5, 1)
    assert index.dtype == np.int64
    assert float(x[index]) == 4.0
    assert float(gc.take(x, index)) == 4.0
    assert float(gc.compile(lambda v: v[gc.sub(5, 1)])(x)) == 4.0
    # where it meets a tensor in arithmetic it still takes the tensor's dtype
    assert (x * gc.sub(5, 1)).dtype == np.float32
    np.testing.assert_array_equal((x * index).numpy(), np.arange(5.0) * 4)


def test_a_weak_result_that_requires_grad_gets_its_gradient():
    """gc.sqrt(2.0) is weak, and an op read a weak operand as a Python number, so one the user
    set requires_grad on was cut off the tape: (x * k).sum().backward() raised "does not
    depend on any tensor that requires grad". Setting requires_grad makes it a plain
    (strong) leaf, as torch's and as before weak results: k.grad is sum(x)."""
    k = gc.sqrt(2.0)
    k.requires_grad = True
    assert not k.weak
    x = gc.tensor(np.ones(3, np.float32))
    (x * k).sum().backward()
    assert k.grad == pytest.approx(3.0)
    # requires_grad = False keeps it weak
    j = gc.sqrt(2.0)
    j.requires_grad = False
    assert j.weak and (gc.tensor(np.ones(2)) * j).dtype == np.float64


def test_var_with_ddof_of_a_symbolic_count_has_finite_gradients():
    """The division of var(ddof) by a symbolic n - ddof (above) chose between the quotient
    and total * inf with where, whose zero cotangent to the inf branch made 0 * inf: every
    gradient of var and std with ddof under polymorphic_shapes was NaN. The inf branch
    takes no gradient now: the gradient is torch's var(correction=1)'s."""
    x = np.array([1.0, 2.0, 3.0, 4.0])
    f = gc.compile(gc.grad(lambda v: gc.var(v, ddof=1)), polymorphic_shapes=(("n",),))
    np.testing.assert_allclose(f(x), 2 * (x - x.mean()) / 3, rtol=1e-15)
    s = gc.compile(gc.grad(lambda v: gc.std(v, ddof=1)), polymorphic_shapes=(("n",),))
    np.testing.assert_allclose(s(x), (x - x.mean()) / 3 / np.std(x, ddof=1), rtol=1e-14)
