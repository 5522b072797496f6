"""Review of session 17 (hostile, differential: the passes and compiled plans against the
reference interpreter on graphs mixing dtypes, size-0 axes, signed zeros and NaN/inf).

Found:
- simplify's sum_of_broadcast turned sum(broadcast_to(x, S)) over a broadcast axis of size 0
  into x * 0.0: NaN where x is inf or NaN, where the sum of nothing is 0.
- the same rule multiplied a bool sum (a logical or) by its copy count: mul(bool, int64) is
  refused, so a graph with sum(broadcast_to(bool)) could not be compiled at all.
- the same rule multiplied by float(copies), which a symbolic batch size has no value for:
  compiling with polymorphic_shapes raised for sum(broadcast_to(x, (batch, ...))), as in the
  gradient of a value broadcast over the batch.
- add_adjacent_pad_slices compared two symbolic slab starts with `>`, whose answer depends on
  the size: the gradient of x[-2:] and x[1:] over a polymorphic batch did not compile.
- gc.scatter_add (take's gradient) took int(rows): the gradient of take from a table with a
  symbolic row count did not compile.
- scalar_value took a constant holding 0.0 and -0.0 for one repeated value (they compare
  equal), so broadcast_scalar replaced broadcast_to of such a constant by a `full` of its
  first element: 1 / x then gave -inf where it is +inf.
- under fast_math, mul_constants_merge computed c1 * c2 as a Python int and converted it to
  the dtype: an integer product out of the dtype's range made compiling raise OverflowError.
- the fuse stage (runtime/fusion.py, products added to a bias or a residual) indexed the last
  axis of a 0-d add or product: `a @ b + c` for two vectors raised IndexError in gc.compile.
- eager vmap (passes/batching.py) evaluated an unbatched numpy scalar argument as a weakly
  typed number, so it took the dtype of the tensors it met (or float32 alone): an f64[] or
  i64[] argument became float32/float64 and the ops were refused; compiled, they ran.
- the eager scan (graphc/control_flow.py) stacked numpy scalar step results as weakly typed
  numbers: float32 ys (low bits lost) where the traced scan gives float64; and it passed the
  slices of a 1-d xs to the step as numpy scalars, so graphc ops in the step ran in float32.
"""
import numpy as np

import graphc as gc
from ir.graph import Graph
from ir.ops.registry import apply
from passes.manager import run_pipeline
from runtime.interpreter import run


def _optimised(graph, *inputs, pipeline="default"):
    with np.errstate(all="ignore"):
        return run(run_pipeline(graph, pipeline).graph, *inputs)


def test_a_sum_over_a_broadcast_axis_of_size_0_is_0_even_for_inf_and_nan():
    graph = gc.trace(lambda x: gc.sum(gc.broadcast_to(x, (0, 3)), 0), gc.spec((3,), "float64"))
    x = np.array([np.inf, np.nan, 1.0])
    np.testing.assert_array_equal(run(graph, x)[0], np.zeros(3))
    for pipeline in ("simplify", "default"):
        np.testing.assert_array_equal(_optimised(graph, x, pipeline=pipeline)[0], np.zeros(3))
    np.testing.assert_array_equal(gc.compile(lambda x: gc.sum(gc.broadcast_to(x, (2, 0, 3)),
                                                                (0, 1)))(x), np.zeros(3))


def test_a_bool_sum_of_a_broadcast_value_compiles_and_is_a_logical_or():
    # the sum op of a bool operand (gc.sum counts booleans, as numpy: it casts them to int64
    # first, session 25; the op itself, which passes may meet, is a logical or)
    graph = gc.trace(lambda x: apply("sum", gc.broadcast_to(x, (3, 2)), axes=(0,),
                                     keepdims=False), gc.spec((2,), "bool"))
    x = np.array([True, False])
    got = _optimised(graph, x)[0]
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, x)
    counted = gc.trace(lambda x: gc.sum(gc.broadcast_to(x, (3, 2)), 0), gc.spec((2,), "bool"))
    np.testing.assert_array_equal(_optimised(counted, x)[0], np.array([3, 0]))


def test_a_constant_of_zeros_of_both_signs_is_not_one_repeated_value():
    graph = Graph("signed_zeros")
    with graph.building():
        x = graph.input("x", (2, 3), "float64")
        c = graph.constant(np.array([[-0.0], [0.0]]))
        graph.set_outputs([1.0 / gc.broadcast_to(c, (2, 3)) + x])
    want = np.array([[-np.inf] * 3, [np.inf] * 3])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(run(graph, np.zeros((2, 3)))[0], want)
    np.testing.assert_array_equal(_optimised(graph, np.zeros((2, 3)))[0], want)


def test_fast_math_merges_integer_constants_with_wrap_around_as_the_two_products_do():
    """(x * c1) * c2 -> x * (c1 * c2) under fast_math took c1 * c2 as a Python int: one too
    large for the dtype made compiling raise OverflowError; numpy's products wrap."""
    for dtype, k in (("int64", 3 ** 20), ("int32", 46341)):  # k * k overflows the dtype
        x = np.array([1, 2, -7], dtype)
        with np.errstate(over="ignore"):
            want = x * np.asarray(k, dtype) * np.asarray(k, dtype)
        f = gc.compile(lambda x: (x * k) * k, fast_math=True)
        np.testing.assert_array_equal(f(x), want)


def test_a_dot_product_of_vectors_plus_a_scalar_compiles():
    """The fuse stage's search for `add(matmul, bias)` read the add's and the product's last
    axis: `a @ b + c` for vectors a, b (a 0-d product) raised IndexError in gc.compile, and so
    did a 0-d add of a reshaped product."""
    a, b = np.arange(3.0), np.array([1.0, -2.0, 4.0])
    assert gc.compile(lambda a, b, c: a @ b + c)(a, b, np.float64(1.5)) == 7.5
    m, n = np.full((1, 1), 2.0), np.full((1, 1), 3.0)
    assert gc.compile(lambda m, n: 2.0 + gc.reshape(m @ n, ()))(m, n) == 8.0


def test_eager_vmap_takes_an_unbatched_numpy_scalar_as_a_loop_over_the_rows_does():
    """Eager vmap once bound an unbatched numpy scalar (np.float64, np.int64) to its
    i64[]/f64[] input, and an op of the batched evaluation took it for a weakly typed Python
    number: x * gc.exp(np.float64) was refused as mul(f64, f32), a dynamic_update_slice start
    np.int64 became float64 (refused). Since 5a5bc03 fun gets the scalar as it is, so eager
    vmap equals a Python loop over the rows: float64 rows times exp(s) computed as eager code
    computes it alone, a weak float32 number (exp rounded to float32; gc.compile of the vmap
    traces s in float64, as README's vmap section says), and the int start is an index.
    Not a bug to "fix" back to float64 exp: that would differ from the loop. A result from s
    alone takes s's dtype eagerly, the rows' compiled (README)."""
    x = np.ones((2, 3))
    s = np.float64(1 + 2 ** -30)
    got = gc.vmap(lambda x, s: x * gc.exp(s), in_axes=(0, None))(x, s)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(got.data),
                                  np.stack([(gc.tensor(r) * gc.exp(s)).data for r in x]))
    # (a float32 number, within float32 rounding of exp(s); the float64 exp is not one)
    exp = np.asarray(got.data)
    np.testing.assert_array_equal(exp.astype(np.float32), exp)
    np.testing.assert_allclose(exp, np.exp(s), rtol=2 ** -22)
    assert np.exp(s) != np.float32(np.exp(s))
    twice = gc.vmap(lambda r, v: v * 2, in_axes=(0, None))
    rows = np.ones((2, 3), np.float32)
    assert np.asarray(twice(rows, np.float64(2))).dtype == np.float64  # as np.float64(2) * 2
    assert np.asarray(gc.compile(twice)(rows, np.float64(2))).dtype == np.float32

    t, u = np.arange(40.0).reshape(2, 5, 4), np.full((2, 2, 4), -1.0)
    want = t.copy()
    want[:, 1:3] = -1.0
    for start in (np.int64(1), np.int32(1)):
        got = gc.vmap(lambda t, u, s: gc.dynamic_update_slice(t, u, s, axis=0),
                      in_axes=(0, 0, None))(t, u, start)
        np.testing.assert_array_equal(np.asarray(got.data), want)


def test_a_sum_of_a_value_broadcast_over_a_symbolic_batch_compiles():
    """sum_of_broadcast multiplied by float(copies): with a symbolic batch in the broadcast
    shape, compiling raised "the symbolic dimension batch has no value while tracing", for
    instance for the gradient of a bias broadcast over the batch."""
    b = np.array([0.1, -0.2, 0.3])
    fns = [lambda b, x: gc.sum(gc.broadcast_to(b, x.shape), 0) + gc.sum(x, 0),
           gc.grad(lambda b, x: gc.sum(gc.exp(b) * gc.ones_like(x)) + gc.sum(x))]
    wants = [lambda n, x: n * b + x.sum(0), lambda n, x: n * np.exp(b)]
    for fn, want in zip(fns, wants):
        f = gc.compile(fn, polymorphic_shapes=(None, ("batch", "_")))
        for n in (2, 5):
            x = np.random.default_rng(n).normal(size=(n, 3))
            np.testing.assert_allclose(f(b, x), want(n, x), rtol=1e-12)


def test_eager_scan_stacks_numpy_scalar_step_results_in_their_dtype():
    """Eagerly a scan step on numpy values returns numpy scalars (c * x of 0-d values), and
    the ys were stacked as weakly typed numbers: float32, where the traced scan (and the
    eager scan of no steps) gives float64; the products lost their low bits."""
    xs = np.array([1.0, 2.0 + 2 ** -30, 3.0])
    f = lambda c, xs: gc.scan(lambda c, x: (c + x, c * x), c, xs)
    want = np.array([0.5 * 1.0, 1.5 * xs[1], (1.5 + xs[1]) * 3.0])
    for init in (np.float64(0.5), np.array(0.5)):
        last, ys = f(init, xs)
        assert np.asarray(ys).dtype == np.float64
        np.testing.assert_array_equal(np.asarray(ys), want)
        np.testing.assert_array_equal(np.asarray(gc.compile(f)(init, xs)[1]), want)


def test_eager_scan_passes_the_slices_of_a_1d_xs_in_their_dtype():
    """Eagerly the slices of a 1-d float64 xs reached the step as numpy scalars, so
    gc.exp(x) was float32 and c * exp(x) with a float64 carry was refused; compiled, the
    slice is f64[]."""
    xs = np.array([0.1, 0.2 + 2 ** -30, 0.3])
    f = lambda c, xs: gc.scan(lambda c, x: (c * gc.exp(x), gc.sin(x)), c, xs)
    last, ys = f(np.array(1.0), xs)
    assert np.asarray(ys.data).dtype == np.float64
    np.testing.assert_allclose(np.asarray(last.data), np.exp(xs.sum()), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(ys.data), np.sin(xs))


def test_gradients_of_slices_with_symbolic_starts_in_no_known_order_compile():
    """add_adjacent_pad_slices ordered the two slabs with `>`: for starts batch-2 and 1 (the
    gradient of x[-2:] and x[1:] over a symbolic batch) the order depends on the size, and
    the InconclusiveDim it raised stopped compilation."""
    def loss(x):
        return gc.sum((gc.sum(x[-2:], 0) + gc.sum(x[1:], 0)) ** 2)
    f = gc.compile(gc.grad(loss), polymorphic_shapes=(("batch", "_"),))
    for n in (4, 7):
        x = np.random.default_rng(n).normal(size=(n, 3))
        s = x[-2:].sum(0) + x[1:].sum(0)
        want = np.zeros_like(x)
        want[-2:] += 2 * s
        want[1:] += 2 * s
        np.testing.assert_allclose(f(x), want, rtol=1e-12)


def test_the_gradient_of_take_from_a_table_of_symbolic_rows_compiles():
    """take's gradient is scatter_add(g, idx, rows) and the API took int(rows): for a table
    whose row count is a symbolic batch, compiling the gradient raised "the symbolic
    dimension batch has no value while tracing"."""
    idx = np.array([0, 2, 0])
    f = gc.compile(gc.grad(lambda x: gc.sum(gc.take(x, idx) ** 2)),
                   polymorphic_shapes=(("batch", "_"),))
    for n in (3, 6):
        x = np.random.default_rng(n).normal(size=(n, 2))
        want = np.zeros_like(x)
        np.add.at(want, idx, 2 * x[idx])
        np.testing.assert_allclose(f(x), want, rtol=1e-12)
