"""Session 18b: a reviewer's open leads on indexing, symbolic slices, einsum broadcasting,
relu's sign of zero, eager fori_loop carries and layer_norm overflow. Oracles: numpy, torch
(CPU) and JAX's documented rules; eager and compiled (gc.compile) paths are both checked.
Each test failed before its fix.

1. A run-time index (a 0-d integer tensor) on the first axis, x[i], went to a gather that
   raised out of range (index 5 of 3 rows), while x[:, i] clamped as JAX does for every
   traced index (a negative one counts from the end first). Fix (ir/ops/api.py, getitem):
   a 0-d integer index takes the dynamic_slice path on every axis.

2. Slices of symbolic sizes (gc.compile with polymorphic_shapes). A bound numpy clamps is
   clamped where the symbols decide it (x[:n+5] was already; x[-n-3:] and x[-m:] of an
   n-axis, with m another input's size, were refused at trace: a symbolic negative bound
   never counted from the end). Where the clamp depends on the symbols' values the result's
   size would be min(n, 10), which a polynomial size cannot say (JAX's symbolic min/max
   can): the bound stays and the call whose sizes break it is one error naming the line.
   But that check was skipped for a node of a concrete type over a symbolic input: x[:10] of
   f32[n] with n=3 ran a slice typed f32[10] that gave 3 values (returned as such, or a
   broadcast error further on). Fixes: ir/ops/api.py (_slice_indices), ir/specialize.py.

3. einsum refused a letter of size 1 in one operand against its size in another
   ('ij,ij->ij' of (3, 4) and (1, 4): "index 'i' has sizes 3 and 1"), which numpy's einsum
   broadcasts, contracted letters included ('ij,jk->ik' of (3, 4) and (1, 5)). A repeated
   letter within one operand must still match ('ii' of (1, 3) is refused, as numpy).
   Fix (ir/ops/api.py, einsum): such operands are broadcast first.

4. relu(-0.0): eager, the interpreter and numpy-run plans give +0.0 (np.maximum(x, 0): on a
   tie numpy returns its second operand), but numba's fused kernels gave -0.0 for relu in a
   fused chain (relu(x) * 1.0, relu(x + x)) and flipped maximum / minimum of a signed zero
   likewise (their scalar helpers returned the first operand on a tie). torch.relu(-0.0) is
   -0.0; graphc follows numpy, its reference for elementwise ops, on every path. Fix
   (runtime/jit.py maximum, minimum): a tie gives the second operand, as numpy.

5. Eager loops never checked the carry's type: fori_loop(0, 3, lambda i, v: v * i, f32)
   returned float64 eagerly (numpy promoted the float32 carry with the int64 counter), and
   a body returning v.astype('float64') ran on in float64, where the compiled loop (and
   JAX's) refuses a carry that changes type. A float32 carry the body keeps float32 was
   already float32 with equal results on both paths (pinned below). Fix
   (graphc/control_flow.py, _check_eager_carry): eager scan / while_loop / fori_loop check
   each step's carry against the initial one, with the traced loop's one-line error; a
   fori_loop's error names body_fun rather than its internal wrapper.

6. LayerNorm of float32 rows whose squares overflow (an element near 3e38; rstd becomes 0):
   numpy's order (eager ops, the interpreter, numpy-run plans) gives b, and a zero input
   gradient, but numba's kernels gave nan: under the row kernels' reassoc LLVM formed
   (x - mu) * w before * rstd (2.95e38 * -1.7 overflows, then * 0), and the input
   gradient summed gw * (x - mu) before scaling by rstd (overflow, then inf * 0); the eager
   gradient gave nan as well, where the interpreter gives 0. Rows of
   1e20 (torch gives nan, from its own overflow) were already b on every path. Fix
   (runtime/jit.py): the normalisation runs in numpy's order without reassociation
   (_normalise_row), and a row whose gradient sum overflowed is summed again as numpy,
   gw * xhat (_xhat_row).
"""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from runtime.codegen import compile_graph


def jax_index(i, length):
    """The position a traced scalar index reads in JAX: negative counts from the end, then
    clamped into the axis."""
    i = int(i)
    if i < 0:
        i += length
    return min(max(i, 0), length - 1)


ROWS = np.arange(12.0, dtype=np.float32).reshape(3, 4)


INDICES = [-9, -4, -3, -1, 0, 2, 3, 5]


@pytest.mark.parametrize("i, dtype", [(i, np.int64) for i in INDICES + [np.iinfo(np.int64).max]]
                         + [(i, np.int32) for i in INDICES + [np.iinfo(np.int32).max]])
def test_traced_index_on_the_first_axis_clamps_like_the_others(i, dtype):
    i = np.asarray(i).astype(dtype)
    want_row = ROWS[jax_index(i, 3)]
    want_col = ROWS[:, jax_index(i, 4)]
    first = gc.compile(lambda x, k: x[k])
    second = gc.compile(lambda x, k: x[:, k])
    np.testing.assert_array_equal(np.asarray(first(ROWS, i)), want_row)
    np.testing.assert_array_equal(np.asarray(second(ROWS, i)), want_col)
    np.testing.assert_array_equal(np.asarray(gc.tensor(ROWS)[gc.tensor(i)]), want_row)
    np.testing.assert_array_equal(np.asarray(gc.tensor(ROWS)[:, gc.tensor(i)]), want_col)


@pytest.mark.parametrize("i", [-5, -1, 1, 7])
def test_traced_index_gradient_lands_on_the_clamped_row(i):
    k = np.int64(i)
    want = np.zeros_like(ROWS)
    want[jax_index(i, 3)] = 2 * ROWS[jax_index(i, 3)]
    loss = lambda x, k: gc.sum(x[k] * x[k])
    np.testing.assert_allclose(np.asarray(gc.compile(gc.grad(loss))(ROWS, k)), want)
    np.testing.assert_allclose(np.asarray(gc.grad(loss)(gc.tensor(ROWS), gc.tensor(k))), want)


def test_traced_index_per_example_under_vmap():
    ks = np.array([-7, -1, 0, 2, 4], np.int64)
    want = np.stack([ROWS[jax_index(k, 3)] for k in ks])
    f = gc.vmap(lambda x, k: x[k], in_axes=(None, 0))
    np.testing.assert_array_equal(np.asarray(gc.compile(f)(ROWS, ks)), want)
    np.testing.assert_array_equal(np.asarray(f(gc.tensor(ROWS), gc.tensor(ks))), want)


def _poly(fn, *specs):
    return gc.compile(fn, polymorphic_shapes=specs)


@pytest.mark.parametrize("n", [2, 5])
def test_symbolic_negative_bound_counts_from_the_end_and_clamps(n):
    x = np.arange(float(n))
    np.testing.assert_array_equal(_poly(lambda x: x[-x.shape[0] - 3:], ("n",))(x),
                                  x[-n - 3:])
    np.testing.assert_array_equal(_poly(lambda x: x[:-x.shape[0] - 1], ("n",))(x),
                                  x[:-n - 1])
    tail = _poly(lambda x, y: x[-y.shape[0]:], ("n",), ("m",))
    np.testing.assert_array_equal(tail(x, np.zeros(2)), x[-2:])
    np.testing.assert_array_equal(tail(x, np.zeros(n)), x[-n:])


def test_a_bound_the_sizes_break_is_one_error_not_a_wrong_shape():
    head = _poly(lambda x: x[:10], ("n",))
    np.testing.assert_array_equal(head(np.arange(12.0)), np.arange(10.0))
    for fn in (head, _poly(lambda x: gc.sum(x[:10] * 2), ("n",))):
        with pytest.raises(GraphcError) as info:
            fn(np.arange(3.0))
        first, where = str(info.value).splitlines()
        assert first.startswith("slice with n=3: range 0:10 does not fit an axis of 3: ")
        assert "test_review_s18b.py" in where


EINSUM_BROADCASTS = [("ij,ij->ij", (3, 4), (1, 4)), ("ij,jk->ik", (3, 4), (1, 5)),
                     ("ij,ij->i", (3, 4), (3, 1)), ("bij,bjk->bik", (3, 2, 4), (1, 4, 5)),
                     ("ii,ij->j", (1, 1), (3, 4)), ("i,i->", (1,), (5,))]


@pytest.mark.parametrize("spec, sa, sb", EINSUM_BROADCASTS)
def test_einsum_broadcasts_size_one_letters_as_numpy(spec, sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    want = np.einsum(spec, a, b)
    np.testing.assert_allclose(np.asarray(gc.einsum(spec, gc.tensor(a), gc.tensor(b))), want,
                               rtol=1e-12)
    f = gc.compile(lambda x, y: gc.einsum(spec, x, y))
    np.testing.assert_allclose(np.asarray(f(a, b)), want, rtol=1e-12)
    # gradients against central differences of numpy's einsum (float64)
    w = rng.normal(size=want.shape)
    loss = lambda x, y: gc.sum(gc.einsum(spec, x, y) * w)
    ga, gb = gc.compile(gc.grad(loss, argnums=(0, 1)))(a, b)
    for got, arg in ((ga, 0), (gb, 1)):
        ops = [a, b]
        num = np.zeros_like(ops[arg])
        for idx in np.ndindex(num.shape):
            hi, lo = [o.copy() for o in ops], [o.copy() for o in ops]
            hi[arg][idx] += 1e-6
            lo[arg][idx] -= 1e-6
            num[idx] = (np.sum(np.einsum(spec, *hi) * w) - np.sum(np.einsum(spec, *lo) * w)) / 2e-6
        np.testing.assert_allclose(np.asarray(got), num, rtol=1e-6, atol=1e-8)


def test_einsum_still_refuses_what_numpy_refuses():
    with pytest.raises(GraphcError, match="index 'i' has sizes 1 and 3"):
        gc.einsum("ii->i", gc.tensor(np.ones((1, 3))))
    with pytest.raises(GraphcError, match="index 'i' has sizes 3 and 2"):
        gc.einsum("ij,ij->ij", gc.tensor(np.ones((3, 4))), gc.tensor(np.ones((2, 4))))


SIGNED_ZEROS = [("relu", lambda x: gc.relu(x), lambda x: np.maximum(x, 0)),
                ("relu * 1", lambda x: gc.relu(x) * 1.0, lambda x: np.maximum(x, 0) * 1.0),
                ("relu(x + x)", lambda x: gc.relu(x + x), lambda x: np.maximum(x + x, 0)),
                ("maximum(x, 0)", lambda x: gc.maximum(x, 0.0) * 1.0,
                 lambda x: np.maximum(x, np.float32(0))),
                ("maximum(0, x)", lambda x: gc.maximum(0.0, x) * 1.0,
                 lambda x: np.maximum(np.float32(0), x)),
                ("minimum(x, 0)", lambda x: gc.minimum(x, 0.0) * 1.0,
                 lambda x: np.minimum(x, np.float32(0))),
                ("minimum(0, x)", lambda x: gc.minimum(0.0, x) * 1.0,
                 lambda x: np.minimum(np.float32(0), x))]


@pytest.mark.parametrize("name, fn, ref", SIGNED_ZEROS, ids=[c[0] for c in SIGNED_ZEROS])
def test_sign_of_zero_agrees_on_every_path(name, fn, ref):
    x = np.full((64, 256), -0.0, np.float32)
    x[0, :6] = [0.0, -1.0, np.nan, 2.0, -np.inf, np.inf]
    want = ref(x)
    paths = {"eager": fn(gc.tensor(x)),
             "numpy plan": compile_graph(gc.trace(fn, x), jit=False)(x)[0],
             "numba plan": compile_graph(gc.trace(fn, x), jit=True,
                                         background_compile=False)(x)[0]}
    for path, got in paths.items():
        got = np.asarray(got)
        np.testing.assert_array_equal(got, want, err_msg=path)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=path)


FLOAT32_BODIES = [lambda i, v: v * 1.1 + 0.5, lambda i, v: gc.sin(v) * v,
                  lambda i, v: v + i.astype("float32")]


@pytest.mark.parametrize("body", FLOAT32_BODIES)
def test_fori_loop_keeps_a_float32_carry_eager_and_compiled(body):
    init = np.linspace(-1, 1, 5).astype(np.float32)
    compiled = np.asarray(gc.compile(lambda v: gc.fori_loop(0, 4, body, v))(init))
    traced_bounds = np.asarray(gc.compile(lambda v, n: gc.fori_loop(0, n, body, v))(
        init, np.int64(4)))
    eager = np.asarray(gc.fori_loop(0, 4, body, gc.tensor(init)))
    for got in (compiled, traced_bounds, eager):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, compiled, rtol=1e-6)


def _promote(i, v):
    return v * i  # numpy: float32 * int64 -> float64


def _widen(i, v):
    return v.astype("float64")


@pytest.mark.parametrize("body", [_promote, _widen])
def test_an_eager_loop_refuses_a_carry_that_changes_type(body):
    init = np.ones(3, np.float32)
    expected = "returns the carry as (f64[3]) but it came in as (f32[3])"
    with pytest.raises(GraphcError) as info:
        gc.fori_loop(0, 3, body, init)
    first = str(info.value).splitlines()[0]
    assert first.endswith(expected)
    assert f"fori_loop body function {body.__name__} (defined at " in first
    assert "test_review_s18b.py" in first
    with pytest.raises(GraphcError, match=r"returns the carry as \(f64\[3\]\) but it came in "
                                          r"as \(f32\[3\]\)"):
        gc.scan(lambda c, _: (c.astype("float64"), None), init, None, length=2)
    with pytest.raises(GraphcError, match=r"while_loop body function .* returns the carry as "
                                          r"\(f64\[3\]\)"):
        gc.while_loop(lambda v: v[0] < 4, lambda v: v + np.ones(3), init)


def _huge_rows(shape, seed):
    rng = np.random.default_rng(seed)
    n = shape[-1]
    x = rng.normal(size=shape).astype(np.float32)
    x[..., 0] = 3e38  # its square overflows float32: rstd is 0
    w = np.linspace(-3, 3, n).astype(np.float32)  # |w| > 1.2 next to x - mu overflows
    w[0] = -1.7
    b = rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    return x, w, b, g


@pytest.mark.parametrize("shape", [(3, 64), (2, 3, 100), (40, 768)])
def test_layer_norm_of_rows_whose_squares_overflow_agrees_on_every_path(shape):
    from runtime.interpreter import run
    x, w, b, g = _huge_rows(shape, 0)

    def fn(x, w, b, g):
        loss = lambda x, w, b: gc.sum(gc.layer_norm(x, w, b) * g)
        return (gc.layer_norm(x, w, b),) + tuple(gc.grad(loss, argnums=(0, 1, 2))(x, w, b))

    graph = gc.trace(fn, x, w, b, g)
    with np.errstate(all="ignore"):
        want = [np.asarray(v) for v in run(graph, x, w, b, g)]
        paths = {"eager": fn(*(gc.tensor(v) for v in (x, w, b, g))),
                 "numpy plan": compile_graph(graph, jit=False)(x, w, b, g),
                 "numba plan": compile_graph(graph, jit=True, background_compile=False)(
                     x, w, b, g)}
    np.testing.assert_array_equal(want[0], np.broadcast_to(b, shape))  # numpy's order: b
    np.testing.assert_array_equal(want[1], np.zeros(shape, np.float32))
    for path, got in paths.items():
        for k, (v, ref) in enumerate(zip(got, want)):
            assert np.isfinite(np.asarray(v)).all(), (path, k)
            np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{path} output {k}")
