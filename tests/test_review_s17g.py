"""Session 17g's hostile review of the transformations' compositions (vmap of vmap with
in_axes/out_axes, vmap of scan/while_loop/cond with batched predicates, grad of vmap of grad,
jvp of grad, custom_vjp in vmap and scan, the batching rules that move the batch axis).
Oracles: numpy by hand and central differences in float64. Each test failed before its fix.

Found: a transform applied to a value of the graph being traced took that very value as
its variable, where JAX makes the argument a fresh tracer. Two wrong results followed:
  * perturbation confusion: grad(lambda w: sum(w * x))(x), traced, differentiated the closure
    over x too and gave 2x (JAX: x); jvp likewise gave twice the tangent, and the grad of
    such a function was wrong in turn;
  * inside a region (a scan body, a vmapped function, a cond branch), grad / jvp / vjp /
    hessian with respect to a value of the enclosing graph gave zeros silently: the
    function's nodes read the value through the region's captured input, so autodiff found
    no path to the outer node (vmap(lambda x: grad(lambda w: f(w, x))(w0))(xs), traced, was
    all zeros, and so was the grad of a loss built on it).
Fix (graphc/transforms.py, _variables): grad/value_and_grad, vjp and jvp give the function a
fresh copy of each symbolic argument (an identity reshape, simplified away), made in the
region being built after capturing an outer value there.

Also found, bad refusals: jvp of a function returning a pytree failed ("a symbolic value
cannot be turned into a numpy array"), vjp's pullback failed on a pytree cotangent (numpy's
"inhomogeneous shape"), and a Python-number cotangent was refused where its output was not
float32 traced (a float32 seed met a float64 output) or not float64 eagerly. JAX takes
pytrees both ways and weakly types the number. Fix (graphc/transforms.py): jvp gives a
tangent like the result (zeros for integer leaves, as JAX's float0), vjp takes a cotangent
like the result (None: zeros) and gives a Python number its output's dtype.

And: grad / value_and_grad / jvp / vjp / hessian called on concrete arrays inside a trace (a
vmapped function, a scan body, a compiled function) compiled a plan of their own, which
could not read the traced values the function closes over ("mul: operands belong to
different graphs"): vmap(lambda x: grad(lambda w: f(w, x))(w0))(xs) was refused. As JAX's
transforms under jit, they now build nodes of the graph being traced (the concrete
arguments enter it as constants, then as fresh variables).

And: argnums counted from the end (argnums=-1) missed the fresh variable, so the closure
confusion above came back for them; grad of a function with an integer or boolean result
gave zeros silently, where JAX refuses ("grad requires real-valued outputs"): now refused.
Fix: graphc/transforms.py (value_and_grad).

Missing: vmap had no axis_size (JAX's), so a function mapping no argument could not be
batched at all; graphc/vmap.py takes it (needed where in_axes maps nothing, else checked).

And: under a polymorphic batch size (gc.compile(vmap(f), polymorphic_shapes=[("b", ...)])),
vmap of take with a batched table and of dynamic_slice with a start per example were
refused: ir/ops/batching.py batch_offsets built arange(0, size * rows, rows), which a
symbolic size does not allow; now arange(size) * rows.

And: gc.compile'd functions called on concrete arrays inside a trace compiled a plan of their
own, with the same refusal for a closure over a traced value; they are inlined now, as
jax.jit inside jit (graphc/transforms.py, Compiled.__call__).

And: x[:, i] with a run-time integer scalar i (a traced or eager 0-d integer tensor) was
refused ("unsupported index"), and with it vmap(lambda x, i: x[:, i]) with an index per
example; only the first axis took a tensor index. JAX indexes any axis with it; now a
window of one (dynamic_slice: negative from the end, clamped), in ir/ops/api.py getitem.

And: grad through a while_loop that the differentiated value reaches only through
stop_gradient or an integer (a traced fori_loop bound) was refused ("while_loop cannot be
differentiated") though no gradient flows into it; JAX's symbolic zeros never reach it.
passes/autodiff.py's relevance no longer follows paths through stop_gradient or through
integer and boolean values.

And a wrong result: vmap of take with a batched table, and of scatter_add, offset each
example's indices into one stacked table, so an index outside its own rows read (wrote) a
neighbouring example's rows silently (index 4 of 4 rows gave the next example's row 0),
where take and scatter_add refuse it unbatched. ir/ops/batching.py batch_offsets now maps
such an index out of range of the whole table, so the batched op refuses it too.

And: vmap of the pullback of a vjp taken on concrete primals (jacrev's vmap(vjp_fn)(eye))
was refused: the pullback compiled a plan of its own, which a batched cotangent could not
enter. Inside a trace it now builds its nodes there (graphc/transforms.py, vjp).

And: grad of a function whose while_loop condition reads x (but whose carries do not
depend on it) was refused the same way; the condition's constants only pick the trip
count, so passes/autodiff.py's relevance does not follow them into the loop's results."""
import numpy as np
import pytest

import graphc as gc

RNG = np.random.default_rng(17)
X = RNG.normal(size=(4, 3))
W0 = RNG.normal(size=3)


def _fd(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


# ---- a transform's argument that the function also closes over ------------------------------
def test_grad_at_a_traced_value_the_function_closes_over_differentiates_the_argument_only():
    x = np.array([1.0, 2.0, 3.0])
    inner = lambda x: gc.grad(lambda w: gc.sum(w * x))(x)  # noqa: E731  d/dw sum(w x) = x
    np.testing.assert_allclose(gc.compile(inner)(x), x)  # was 2x
    # so its gradient is the gradient of x: ones (was 2s)
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(inner(x)))(x), np.ones(3))
    # value_and_grad with argnums, and vjp, the same
    vg = gc.compile(lambda x: gc.value_and_grad(lambda a, b: gc.sum(a * b * x),
                                                argnums=(0, 1))(x, x)[1])
    ga, gb = vg(x)
    np.testing.assert_allclose(ga, x * x)
    np.testing.assert_allclose(gb, x * x)
    pulled = gc.compile(lambda x: gc.vjp(lambda w: w * x, x)[1](gc.ones_like(x))[0])
    np.testing.assert_allclose(pulled(x), x)


def test_jvp_at_a_traced_value_the_function_closes_over():
    x = np.array([1.0, 2.0, 3.0])
    tangent = gc.compile(lambda x: gc.jvp(lambda w: gc.sum(w * x), (x,),
                                          (gc.ones_like(x),))[1])
    np.testing.assert_allclose(tangent(x), x.sum())  # was 2 * sum(x)


# ---- a transform inside a region, with respect to a value of the enclosing graph ------------
def test_vmap_of_grad_with_respect_to_an_outer_value():
    # per example: d/dw sum(sin(w x)) = cos(w x) x; was all zeros
    f = gc.compile(lambda w0: gc.vmap(lambda x: gc.grad(lambda w: gc.sum(gc.sin(w * x)))(w0))(X))
    np.testing.assert_allclose(f(W0), np.cos(W0 * X) * X, rtol=1e-12)


def test_grad_of_vmap_of_grad_with_respect_to_an_outer_value():
    def loss(w0):
        per_example = gc.vmap(lambda x: gc.grad(lambda w: gc.sum(gc.sin(w * x)))(w0))(X)
        return gc.sum(per_example * per_example)

    def loss_np(w0):
        return np.sum((np.cos(w0 * X) * X) ** 2)

    np.testing.assert_allclose(gc.grad(loss)(W0), _fd(loss_np, W0), rtol=1e-6, atol=1e-9)


def test_jvp_vjp_and_hessian_inside_vmap_with_respect_to_an_outer_value():
    f = lambda w, x: gc.sum(gc.sin(w * x))  # noqa: E731
    jv = gc.compile(lambda w0: gc.vmap(
        lambda x: gc.jvp(lambda w: f(w, x), (w0,), (gc.ones_like(w0),))[1])(X))
    np.testing.assert_allclose(jv(W0), (np.cos(W0 * X) * X).sum(1), rtol=1e-12)
    pull = gc.compile(lambda w0: gc.vmap(
        lambda x: gc.vjp(lambda w: f(w, x), w0)[1](np.array(1.0))[0])(X))
    np.testing.assert_allclose(pull(W0), np.cos(W0 * X) * X, rtol=1e-12)
    hess = gc.compile(lambda w0: gc.vmap(lambda x: gc.hessian(lambda w: f(w, x))(w0))(X))
    want = np.stack([np.diag(-np.sin(W0 * x) * x * x) for x in X])
    np.testing.assert_allclose(hess(W0), want, atol=1e-12)


def test_grad_inside_a_scan_body_with_respect_to_an_outer_value():
    def f(w0, xs):
        def step(c, x):
            return c + gc.grad(lambda w: gc.sum(gc.sin(w * x)))(w0), None
        return gc.scan(step, np.zeros(3), xs)[0]

    np.testing.assert_allclose(gc.compile(f)(W0, X), (np.cos(W0 * X) * X).sum(0), rtol=1e-12)


# ---- jvp and vjp of a function with a pytree result ------------------------------------------
def test_jvp_of_a_function_returning_a_pytree():
    # refused before ("a symbolic value cannot be turned into a numpy array"); JAX returns a
    # tangent like the result, zeros (float0) for an integer leaf
    x, v = X[0], X[1]
    f = lambda x: (gc.sin(x), {"s": gc.sum(x * x), "n": gc.astype(x > 0, np.int32)})  # noqa
    y, t = gc.jvp(f, (x,), (v,))
    np.testing.assert_allclose(y[0], np.sin(x))
    np.testing.assert_allclose(t[0], np.cos(x) * v, rtol=1e-12)
    np.testing.assert_allclose(t[1]["s"], 2 * np.dot(x, v), rtol=1e-12)
    np.testing.assert_array_equal(t[1]["n"], np.zeros(3))
    # and per example, under vmap
    _, tv = gc.vmap(lambda x, v: gc.jvp(lambda w: (gc.sin(w), gc.sum(w)), (x,), (v,)))(X, X)
    np.testing.assert_allclose(tv[0], np.cos(X) * X, rtol=1e-12)
    np.testing.assert_allclose(tv[1], X.sum(1), rtol=1e-12)


def test_vjp_of_a_function_returning_a_pytree():
    # the pullback failed on a tuple cotangent (numpy "inhomogeneous shape"), eagerly and
    # traced; JAX takes a cotangent like the result (None: zeros there)
    x = X[0]
    f = lambda w: (gc.sin(w), gc.sum(w * w))  # noqa: E731
    y, pull = gc.vjp(f, x)
    np.testing.assert_allclose(pull((np.ones(3), np.float64(2.0)))[0], np.cos(x) + 4 * x)
    np.testing.assert_allclose(pull((None, np.float64(1.0)))[0], 2 * x)
    traced = gc.compile(lambda x: gc.vjp(f, x)[1]((gc.ones_like(x), np.array(1.0)))[0])
    np.testing.assert_allclose(traced(x), np.cos(x) + 2 * x)


def test_vjp_takes_a_python_number_cotangent_as_its_outputs_dtype():
    # traced, a Python-float cotangent of a float64 output met a float32 seed ("mul(f32[3],
    # f64[3])"); eagerly, a float32 output's pullback refused 1.0 the same way
    x = X[0]
    traced = gc.compile(lambda x: gc.vjp(lambda w: gc.sum(gc.sin(w)), x)[1](1.0)[0])
    np.testing.assert_allclose(traced(x), np.cos(x))
    x32 = x.astype(np.float32)
    _, pull = gc.vjp(lambda w: gc.sum(gc.sin(w)), x32)
    (g,) = pull(1.0)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, np.cos(x32), rtol=1e-6)


# ---- a transform called on concrete arrays inside a trace -----------------------------------
def test_transforms_on_concrete_arrays_inside_a_trace_read_its_values():
    # grad compiled a plan of its own, which could not take the traced x the function reads
    # ("mul: operands belong to different graphs"); as JAX, the transform is traced too
    want = np.cos(W0 * X) * X
    per_example = lambda x: gc.grad(lambda w: gc.sum(gc.sin(w * x)))(W0)  # noqa: E731
    np.testing.assert_allclose(gc.vmap(per_example)(X), want, rtol=1e-12)  # eagerly
    np.testing.assert_allclose(gc.compile(gc.vmap(per_example))(X), want, rtol=1e-12)
    f = lambda w, x: gc.sum(gc.sin(w * x))  # noqa: E731
    jv = gc.vmap(lambda x: gc.jvp(lambda w: f(w, x), (W0,), (np.ones(3),))[1])(X)
    np.testing.assert_allclose(jv, want.sum(1), rtol=1e-12)
    pulled = gc.vmap(lambda x: gc.vjp(lambda w: f(w, x), W0)[1](1.0)[0])(X)
    np.testing.assert_allclose(pulled, want, rtol=1e-12)
    hess = gc.vmap(lambda x: gc.hessian(lambda w: f(w, x))(W0))(X)
    np.testing.assert_allclose(hess, np.stack([np.diag(-np.sin(W0 * x) * x * x) for x in X]),
                               atol=1e-12)
    # a Python number argument, and a scan body
    np.testing.assert_allclose(gc.vmap(lambda x: gc.grad(lambda w: f(w, x))(0.5))(X),
                               (np.cos(0.5 * X) * X).sum(1), rtol=1e-12)
    summed = gc.compile(lambda xs: gc.scan(
        lambda c, x: (c + gc.grad(lambda w: f(w, x))(W0), None), np.zeros(3), xs)[0])
    np.testing.assert_allclose(summed(X), want.sum(0), rtol=1e-12)


# ---- argnums counted from the end; an integer result -----------------------------------------
def test_negative_argnums_make_a_fresh_variable_too():
    # argnums=-1 missed the fresh variable (the positions were compared as given), so the
    # closure over x was differentiated again: x * x + x * x, not x * x
    x = np.array([1.0, 2.0, 3.0])
    f = gc.compile(lambda x: gc.grad(lambda a, b: gc.sum(a * b * x), argnums=-1)(x, x))
    np.testing.assert_allclose(f(x), x * x)
    ga, gb = gc.grad(lambda a, b: gc.sum(a * b * b), argnums=(0, -1))(x, x)
    np.testing.assert_allclose(ga, x * x)
    np.testing.assert_allclose(gb, 2 * x * x)


def test_grad_of_an_integer_result_is_refused_as_in_jax():
    # it was zeros, silently; JAX: "grad requires real-valued outputs"
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(gc.GraphcError, match="only a floating-point result has a gradient"):
        gc.grad(lambda x: gc.astype(gc.sum(x), np.int32))(x)
    with pytest.raises(gc.GraphcError, match="only a floating-point result has a gradient"):
        gc.vmap(gc.grad(lambda x: gc.sum(x) > 0))(np.ones((2, 3)))
    # an integer aux is fine
    g, n = gc.grad(lambda x: (gc.sum(x * x), gc.astype(gc.sum(x), np.int32)), has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x)
    assert int(n) == 6


# ---- vmap's axis_size ---------------------------------------------------------------------------
def test_vmap_takes_axis_size_as_jax():
    # vmap(f, in_axes=None, axis_size=n) was a TypeError (no such parameter)
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gc.vmap(lambda: gc.ones(2), axis_size=3)(), np.ones((3, 2)))
    np.testing.assert_allclose(gc.vmap(lambda x: x * 2.0, in_axes=None, axis_size=2)(x),
                               np.stack([2 * x, 2 * x]))
    both = gc.compile(lambda x: gc.vmap(lambda x: (x * 2.0, gc.sum(x)), in_axes=None,
                                        axis_size=2, out_axes=(1, None))(x))
    y, s = both(x)
    np.testing.assert_allclose(y, np.stack([2 * x, 2 * x], 1))
    np.testing.assert_allclose(s, 6.0)
    g = gc.grad(lambda x: gc.sum(gc.vmap(gc.sin, in_axes=None, axis_size=4)(x)))(x)
    np.testing.assert_allclose(g, 4 * np.cos(x), rtol=1e-12)
    np.testing.assert_allclose(gc.vmap(lambda x: x * 2.0, axis_size=3)(np.ones((3, 2))),
                               2 * np.ones((3, 2)))
    with pytest.raises(gc.GraphcError, match="batch size 3 .* but axis_size is 2"):
        gc.vmap(lambda x: x * 2.0, axis_size=2)(np.ones((3, 2)))


# ---- vmap's gathers under a polymorphic batch size ---------------------------------------------
def test_vmap_gathers_with_a_polymorphic_batch_size():
    # a batched table (take) and a start per example (dynamic_slice) offset each example's
    # indices by b * rows with arange(0, size * rows, rows), which a symbolic batch size
    # refused ("with symbolic bounds needs step 1"); now arange(size) * rows. (scatter_add
    # still needs a concrete batch: its row count is an int attribute.)
    rng = np.random.default_rng(5)
    take = gc.compile(gc.vmap(gc.take), polymorphic_shapes=[("b", 4, 3), ("b", 2)])
    window = gc.compile(gc.vmap(lambda x, s: gc.dynamic_slice(x, s, 2)),
                        polymorphic_shapes=[("b", 5), ("b",)])
    for n in (2, 5, 3):
        table, idx = rng.normal(size=(n, 4, 3)), rng.integers(-4, 4, (n, 2))
        np.testing.assert_array_equal(take(table, idx),
                                      np.stack([table[b][idx[b]] for b in range(n)]))
        x, starts = rng.normal(size=(n, 5)), rng.integers(-7, 7, n)
        first = [min(max(s + 5 if s < 0 else s, 0), 3) for s in starts]
        np.testing.assert_array_equal(window(x, starts),
                                      np.stack([x[b, f:f + 2] for b, f in enumerate(first)]))
    assert len(take.recompiles) == 0 and len(window.recompiles) == 0


# ---- gc.compile called inside a trace -----------------------------------------------------------
def test_a_compiled_function_on_concrete_arrays_inside_a_trace_reads_its_values():
    # it compiled a plan of its own, which could not take the traced x it closes over
    # ("mul: operands belong to different graphs"); as jax.jit inside jit it is inlined
    want = W0 * X
    np.testing.assert_allclose(gc.vmap(lambda x: gc.compile(lambda w: w * x)(W0))(X), want)
    np.testing.assert_allclose(gc.compile(lambda x: gc.compile(lambda w: w * x)(W0))(X[0]),
                               want[0])
    summed = gc.compile(lambda xs: gc.scan(
        lambda c, x: (c + gc.compile(lambda w: gc.sin(w * x))(W0), None), np.zeros(3), xs)[0])
    np.testing.assert_allclose(summed(X), np.sin(want).sum(0), rtol=1e-12)


# ---- indexing any axis with a run-time integer scalar ------------------------------------------
def _clamped(i, n):
    return min(max(i + n if i < 0 else i, 0), n - 1)


def test_a_run_time_integer_scalar_indexes_any_axis():
    # x[:, i] with a traced i was refused ("unsupported index ... of type Node"), and so
    # vmap(lambda x, i: x[:, i]) with an index per example; JAX indexes any axis with it
    # (a negative index from the end, one out of range clamped, as dynamic_slice)
    x3 = np.arange(24.0).reshape(2, 3, 4)
    column = gc.compile(lambda x, i: x[:, i])
    inner = gc.compile(lambda x, i: x[1, 1:, i])
    last = gc.compile(lambda x, i: x[..., i, None])
    for i in (2, -1, 0, 7, -9):
        np.testing.assert_array_equal(column(x3[0], np.int64(i)), x3[0][:, _clamped(i, 4)])
        np.testing.assert_array_equal(inner(x3, np.int64(i)), x3[1, 1:, _clamped(i, 4)])
        np.testing.assert_array_equal(last(x3, np.int32(i)), x3[..., _clamped(i, 4), None])
    idx = np.array([0, 3, -1, 2])
    y = np.random.default_rng(3).normal(size=(4, 3, 5))
    np.testing.assert_array_equal(gc.vmap(lambda x, i: x[:, i])(y, idx),
                                  np.stack([y[b][:, idx[b]] for b in range(4)]))
    g = gc.grad(lambda y: gc.sum(gc.vmap(lambda x, i: x[:, i])(y, idx) ** 2))(y)
    want = np.zeros_like(y)
    for b in range(4):
        want[b][:, idx[b]] = 2 * y[b][:, idx[b]]
    np.testing.assert_allclose(g, want)


# ---- gradients past a while_loop that the differentiated value does not reach ----------------
def test_grad_past_a_while_loop_fed_only_a_stop_gradient_or_an_integer():
    # refused ("while_loop cannot be differentiated") though no gradient flows into the loop:
    # its operands depended on x only through stop_gradient or an integer; JAX's zero
    # tangents never reach it
    x = np.array([0.5, 1.0, 2.0])

    def doubled_until_ten(x):
        y = gc.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, gc.stop_gradient(gc.sum(x)))
        return gc.sum(x) * y  # y = 14

    np.testing.assert_allclose(gc.grad(doubled_until_ten)(x), np.full(3, 14.0))

    def counted(x):
        n = gc.astype(gc.sum(x) * 2.0, np.int64)  # a traced bound: a while_loop
        y = gc.fori_loop(0, n, lambda i, v: v + 1.0, np.array(0.0))
        return gc.sum(x * x) * y

    np.testing.assert_allclose(gc.grad(counted)(x), 2 * x * 7)
    np.testing.assert_allclose(gc.compile(gc.vmap(gc.grad(counted)))(np.stack([x, x / 2])),
                               np.stack([2 * x * 7, x * 3]))
    # a loop the gradient does reach is still refused
    with pytest.raises(gc.GraphcError, match="while_loop has no reverse-mode gradient"):
        gc.grad(lambda x: gc.sum(gc.while_loop(lambda c: gc.sum(c) < 10.0,
                                               lambda c: c * 2.0, x)))(x)



# ---- vmap of a gather with an index out of its example's range --------------------------------
def test_vmap_of_take_and_scatter_add_refuses_an_index_out_of_range():
    # with a batched table, each example's indices were offset into one stacked table, so
    # an index past its own rows read (or wrote) a neighbouring example's rows silently:
    # index 4 of 4 rows gave the next example's row 0, -5 the last example's last row.
    # Unbatched, take and scatter_add refuse such an index; batched now too, naming the
    # value and the example's rows (session 51: not an int64-min placeholder of 8 rows)
    table = np.arange(24.0).reshape(2, 4, 3)
    for bad, value in (([[4], [0]], 4), ([[-5], [0]], -5), ([[0], [9]], 9)):
        idx = np.array(bad)
        message = f"index {value} is out of bounds for axis 0 of size 4"
        with pytest.raises(gc.GraphcError, match=message):
            gc.vmap(gc.take)(table, idx)
        with pytest.raises(gc.GraphcError, match=message):
            gc.compile(gc.vmap(gc.take))(table, idx)
        with pytest.raises(gc.GraphcError, match=message):
            gc.vmap(lambda u, i: gc.scatter_add(u, i, 4))(np.ones((2, 1, 3)), idx)
    # in range, negative ones included, as before
    idx = np.array([[3, -1], [-4, 0]], np.int32)
    np.testing.assert_array_equal(gc.compile(gc.vmap(gc.take))(table, idx),
                                  np.stack([table[b][idx[b]] for b in range(2)]))


# ---- a concrete vjp's pullback called inside a trace ------------------------------------------
def test_vmap_of_a_concrete_pullback_is_the_jacobian():
    # jacrev's way, vmap(vjp_fn)(eye): the pullback of a vjp taken on concrete primals
    # compiled a plan of its own for each cotangent, and a batched (symbolic) cotangent could
    # not enter it ("a symbolic value cannot be turned into a numpy array")
    x = np.array([0.5, 1.0, 2.0])
    f = lambda x: gc.sin(x) * gc.sum(x)  # noqa: E731
    jacobian = np.diag(np.cos(x) * x.sum()) + np.sin(x)[:, None]
    _, pull = gc.vjp(f, x)
    (rows,) = gc.vmap(pull)(np.eye(3))
    np.testing.assert_allclose(rows, jacobian, rtol=1e-12)
    (rows,) = gc.compile(gc.vmap(pull))(np.eye(3))
    np.testing.assert_allclose(rows, jacobian, rtol=1e-12)
    np.testing.assert_allclose(pull(np.ones(3))[0], np.ones(3) @ jacobian, rtol=1e-12)


def test_grad_past_a_while_loop_whose_condition_reads_x():
    # refused ("while_loop cannot be differentiated"): the condition's constants counted as
    # a path into the loop's results, but the predicate only picks the trip count. As JAX:
    # the carry's gradient with respect to x is zero, and a loss using both is its own
    x = np.full(3, 0.5)

    def doubled(x):
        return gc.while_loop(lambda c: gc.sum(c) < gc.sum(x) * 10.0, lambda c: c * 2.0,
                             np.ones(3))  # sum 3 -> 6 -> 12 -> 24 >= 15: c = 8

    np.testing.assert_array_equal(gc.grad(lambda x: gc.sum(doubled(x)))(x), np.zeros(3))
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(doubled(x) * x * x))(x), 2 * 8 * x)
    np.testing.assert_allclose(gc.vmap(gc.grad(lambda x: gc.sum(doubled(x) * x)))(
        np.stack([x, 2 * x])), np.stack([np.full(3, 8.0), np.full(3, 16.0)]))
