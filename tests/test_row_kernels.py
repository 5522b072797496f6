"""runtime.jit's elementwise and row kernels (GELU and its gradient, ...) against float64 and
numpy's definitions: accuracy over the whole range, numpy's special values (NaN, inf, -0,
subnormals, overflowing squares), odd sizes, float32 and float64, and the fused kernels that
call the same helpers."""
import numpy as np
import pytest

import graphc as gc
from runtime import jit
from runtime.codegen import compile_graph

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")

C, K = 0.7978845608028654, 0.044715
GELU_OPS = {"gelu": lambda x, g: gc.gelu(x), "gelu_grad": gc.gelu_grad}
# |v| where the sigmoid form's exponent saturates, v * v overflows, or both
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, -1e-38, 1e-30, 1e10,
           -1e10, 1e13, -1e13, 1e20, -1e20, 3e38, -3e38, 20.0, -20.0, 12.0, -12.0, 5.0, -5.0]


def _gelu64(x, g):
    t = np.tanh(C * (x + K * x ** 3))
    return {"gelu": 0.5 * x * (1 + t),
            "gelu_grad": g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * K * x * x))}


def _plans(op, shape, dtype):
    graph = gc.trace(GELU_OPS[op], gc.spec(shape, dtype), gc.spec(shape, dtype))
    return compile_graph(graph, jit=True), compile_graph(graph, jit=False)


@pytest.mark.parametrize("op", sorted(GELU_OPS))
def test_float32_gelu_kernels_are_within_3e7_of_float64(op):
    x = np.linspace(-12, 12, 200_001, dtype=np.float32)
    g = np.ones_like(x)
    plan, _ = _plans(op, x.shape, "float32")
    assert "_jit.gelu_tanh" in plan.source
    exact = _gelu64(x.astype(np.float64), 1.0)[op]
    err = np.abs(plan(x, g)[0] - exact) / np.maximum(np.abs(exact), 1.0)
    # measured 1.2e-7 (gelu) and 2.2e-7 (gradient); the tanh form's were 7.4e-7 and 4.2e-6
    assert err.max() < 3e-7, (x[err.argmax()], err.max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(GELU_OPS))
def test_gelu_kernels_keep_numpys_special_values(op, dtype):
    """NaN and inf where the numpy emitter has them (gelu(-inf) and the gradient at +-inf or
    where v * v overflows are inf * 0 = NaN there), on an odd size."""
    x = np.array(SPECIAL * 3, dtype)[:67]  # 67: no vector width divides it
    g = np.linspace(-2.0, 2.0, x.size).astype(dtype)
    fast, reference = _plans(op, x.shape, dtype)
    with np.errstate(all="ignore"):
        got, want = fast(x, g)[0], reference(x, g)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)])
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=2e-6)
    if op == "gelu":  # odd function's halves: -0 and subnormals kept (gelu(v) ~ v / 2)
        np.testing.assert_array_equal(np.signbit(got[x == 0]), np.signbit(x[x == 0]))
        tiny = (np.abs(x) < 1e-30) & (x != 0)
        np.testing.assert_array_equal(got[tiny], want[tiny])


def test_float32_gelu_is_exact_to_float64_where_numpys_tanh_saturates():
    """Below about -9 numpy's float32 tanh is -1 and its GELU 0; the sigmoid form keeps the
    tiny true value (float64's exp form for reference)."""
    x = np.array([-9.5, -10.0], np.float32)
    plan, _ = _plans("gelu", x.shape, "float32")
    x64 = x.astype(np.float64)
    exact = x64 / (1 + np.exp(-2 * C * (x64 + K * x64 ** 3)))
    # relative: the exponent (about 120 here) is rounded to float32, 120 * 2**-24 = 7e-6
    np.testing.assert_allclose(plan(x, np.ones_like(x))[0], exact, rtol=2e-5)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 37, 129)])
def test_fused_gelu_calls_the_same_helper_as_the_fixed_kernel(shape):
    """gelu inside a generated kernel (gelu(x) * w) gives the fixed kernel's bits times w."""
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.flat[0] = -11.0
    w = np.ones(shape, np.float32)
    fused = compile_graph(gc.trace(lambda a, b: gc.gelu(a) * b, gc.spec(shape), gc.spec(shape)),
                          jit=True)
    fixed = compile_graph(gc.trace(gc.gelu, gc.spec(shape)), jit=True)
    if x.size >= 64:  # smaller clusters run as numpy lines
        assert "_fused_" in fused.source
    got = fused(x, w)[0]
    if x.size >= 64:
        np.testing.assert_array_equal(got, fixed(x)[0])
    exact = _gelu64(x.astype(np.float64), 1.0)["gelu"]
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6)


# ---- gathers, scatters and one-hot rows (embedding lookup, its gradient, the loss) ----------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
@pytest.mark.parametrize("table_shape, idx_shape", [((65, 128), (32, 64)), ((7,), (5,)),
                                                     ((1, 3), (1, 1)), ((9, 3, 5), (4, 3))])
def test_take_kernel_equals_np_take(table_shape, idx_shape, index_dtype, dtype):
    rng = np.random.default_rng(len(table_shape) + len(idx_shape))
    table = rng.standard_normal(table_shape).astype(dtype)
    table.flat[:3] = [np.nan, np.inf, -0.0][:table.size]
    rows = table_shape[0]
    idx = rng.integers(-rows, rows, idx_shape).astype(index_dtype)
    idx.flat[0] = rows - 1
    graph = gc.trace(gc.take, gc.spec(table_shape, dtype), gc.spec(idx_shape, index_dtype))
    plan = compile_graph(graph, jit=True)
    assert "_jit.take_rows" in plan.source
    got = plan(table, idx)[0]
    want = np.take(table, idx, axis=0)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_take_kernel_reads_a_transposed_table_and_refuses_an_index_out_of_range():
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    graph = gc.trace(lambda t, i: gc.take(gc.transpose(t, (1, 0)), i) * 2.0, gc.spec((3, 4)),
                     gc.spec((5,), "int64"))
    plan = compile_graph(graph, jit=True)
    idx = np.array([0, 3, -1, -4, 2])
    np.testing.assert_array_equal(plan(table, idx)[0], table.T[idx] * 2.0)
    with pytest.raises(gc.GraphcError, match="take.*out of range"):
        plan(table, np.array([0, 4, 1, 1, 1]))
    with pytest.raises(gc.GraphcError, match="take.*out of range"):
        plan(table, np.array([0, -5, 1, 1, 1]))


@pytest.mark.parametrize("dtype", ["bool", "float32", "float64", "int64"])
@pytest.mark.parametrize("idx_shape, depth", [((32, 64), 65), ((1,), 1), ((3, 5), 7)])
def test_one_hot_kernel_equals_the_library_op(idx_shape, depth, dtype):
    """Out-of-range indices (an ignore index of -100, depth itself) give rows of zeros."""
    rng = np.random.default_rng(depth)
    idx = rng.integers(-2, depth + 2, idx_shape)
    idx.flat[0] = -100
    graph = gc.trace(lambda i: gc.one_hot(i, depth, dtype), gc.spec(idx_shape, "int64"))
    plan = compile_graph(graph, jit=True)
    assert "_jit.one_hot_rows" in plan.source
    got = plan(idx)[0]
    want = (idx[..., None] == np.arange(depth)).astype(dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert not got.reshape(-1, depth)[0].any()


@pytest.mark.parametrize("rows, width", [(65, 128), (1, 1), (9, 33)])
def test_scatter_add_kernel_adds_rows_in_index_order_like_np_add_at(rows, width):
    """Equal bits to np.add.at (repeated indices summed in index order), float32 values of
    very different sizes so that a different order would round differently."""
    rng = np.random.default_rng(rows)
    idx = rng.integers(-rows, rows, 300)
    updates = (rng.standard_normal((300, width)) * 10.0 ** rng.integers(-6, 6, (300, 1)))
    updates = updates.astype(np.float32)
    graph = gc.trace(lambda u, i: gc.scatter_add(u, i, rows), gc.spec(updates.shape),
                     gc.spec(idx.shape, "int64"))
    plan = compile_graph(graph, jit=True)
    assert "_jit.scatter_add_rows" in plan.source
    want = np.zeros((rows, width), np.float32)
    np.add.at(want, idx, updates)
    out = plan(updates, idx)[0]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(plan(updates, idx)[0], want)  # the buffer is cleared again


@pytest.mark.parametrize("paired", [False, True])
def test_a_gpt_training_step_with_these_kernels_equals_the_interpreter(paired, monkeypatch):
    """Loss, logits and every gradient of a small GPT (GELU, LayerNorm, log-softmax, one_hot
    with an ignored target, the embedding lookup and its gradient) compiled with the numba
    kernels against the interpreter's numpy definitions; with LayerNorm's two gradients in
    two kernels, and in one (runtime.lowering.layer_norm_grad_pairs, the default)."""
    from runtime import lowering
    from graphc.models.gpt import GPT, GPTConfig
    from ir.graph import Graph
    from ir.ops.registry import graph_param
    from passes.autodiff import gradients
    from passes.manager import optimize
    from runtime.interpreter import run

    cfg = GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=24, block_size=9, batch_size=5)
    model = GPT(cfg, seed=4)
    rng = np.random.default_rng(4)
    x = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, (cfg.batch_size, cfg.block_size))
    y[0, :3] = -100  # ignored positions: one_hot rows of zeros
    g = Graph("step")
    with g.building():
        idx = g.input("idx", x.shape, "int64")
        tgt = g.input("targets", y.shape, "int64")
        params = [graph_param(g, p) for _, p in model.named_parameters()]
        loss = model(idx, tgt)
        g.set_outputs([loss, model(idx)] + gradients([loss], params))
    g = optimize(g)
    feed = {"idx": x, "targets": y, **{n: p.data for n, p in model.named_parameters()}}
    args = [feed[n.attrs["name"]] for n in g.inputs]
    if not paired:
        monkeypatch.setattr(lowering, "layer_norm_grad_pairs", lambda graph, mp: {})
    plan = compile_graph(g, jit=True)
    # paired: the bias's gradient (dy's column sums) joins the pair's kernel too
    layer_norm = ("layer_norm_grads_bias",) if paired else ("layer_norm_grad", "layer_norm_wgrad")
    # the MLP's bias gradient is summed by the GELU gradient's kernel (gelu_tanh_grad_colsum)
    for kernel in ("gelu_tanh_rows", "gelu_tanh_grad_colsum", "take_rows", "scatter_add_rows",
                   "one_hot_rows", "log_softmax") + layer_norm:
        assert f"_jit.{kernel}(" in plan.source, kernel
    got, want = plan(*args), run(g, *args)
    for k, (a, b) in enumerate(zip(got, want)):
        scale = max(np.max(np.abs(b)), 1e-6)
        assert np.max(np.abs(a - b)) / scale < 2e-5, k  # float32 rounding, summed orders


def _special_rows(rows, width, dtype, seed):
    """Random rows (scale 4) with, in turn, a NaN first, in the middle and last, one and two
    +inf, all -inf, one -inf, and scores 103.9, 104 and more below the row's max: float32 exp
    rounds to 0 from 104 down (runtime.jit.fast_exp selects 0 there instead of computing an
    underflow) and to a subnormal just above it."""
    x = (np.random.default_rng(seed).standard_normal((rows, width)) * 4).astype(dtype)
    last = width - 1
    x[0, 0] = np.nan
    x[1, width // 2] = np.nan
    x[2, last] = np.nan
    x[3, last // 2] = np.inf
    x[4, [0, last]] = np.inf
    x[5] = -np.inf
    x[6, last] = -np.inf
    x[7] = np.resize(np.array([0.0, -103.9, -104.0, -104.5, -150.0, -1e30], dtype), width)
    x[8] = np.resize(np.array([-1e30, -104.0, 0.0, -103.0], dtype), width)
    return x


def _softmax64(s, axis):
    with np.errstate(all="ignore"):
        e = np.exp(s - s.max(axis, keepdims=True))
        return e / e.sum(axis, keepdims=True), (s - s.max(axis, keepdims=True)) - np.log(
            e.sum(axis, keepdims=True))


def _assert_like_numpy(got, want, dtype):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    # exact zeros where the float64 value rounds to 0 in the kernel's dtype, no leftovers
    np.testing.assert_array_equal(got == 0, want.astype(dtype) == 0)
    np.testing.assert_array_equal(got == -np.inf, want == -np.inf)
    tol = 1e-5 if dtype == "float32" else 1e-12
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [1, 3, 17, 32, 64, 67])
def test_softmax_kernels_keep_numpys_special_rows(width, dtype):
    """The fixed softmax and log-softmax kernels against float64 numpy on rows with NaN,
    +-inf and scores far below the row's max, on widths that are not (and are) multiples
    of the vector width, including 1."""
    x = _special_rows(11, width, dtype, width)
    soft = compile_graph(gc.trace(lambda v: gc.softmax(v, 1), gc.spec(x.shape, dtype)), jit=True)
    logsoft = compile_graph(gc.trace(gc.log_softmax, gc.spec(x.shape, dtype)), jit=True)
    assert "_jit.softmax(" in soft.source and "_jit.log_softmax(" in logsoft.source
    want, want_log = _softmax64(x.astype(np.float64), 1)
    with np.errstate(all="ignore"):
        _assert_like_numpy(soft(x)[0], want, dtype)
        _assert_like_numpy(logsoft(x)[0], want_log, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("t", [1, 3, 17, 32, 64])
def test_fused_causal_softmax_keeps_numpys_special_rows(t, dtype):
    """Attention's scale, causal mask (-inf above the diagonal) and softmax as one generated
    kernel, against float64 numpy: the masked scores' exp is exactly 0, and a NaN or inf
    score below the diagonal gives numpy's row."""
    batch = max(2, 8192 // (t * t))  # large enough to be fused
    x = (np.random.default_rng(t).standard_normal((batch, 2, t, t)) * 4).astype(dtype)
    special = _special_rows(9, t, dtype, t)[:t]
    x[0, 1, t - len(special):] = special[::-1]  # last rows: the longest unmasked prefixes
    causal = np.tril(np.ones((t, t), bool))
    fn = lambda a, m: gc.softmax(gc.where(m, a * 0.25, -np.inf), 3)  # noqa: E731
    plan = compile_graph(gc.trace(fn, gc.spec(x.shape, dtype), gc.spec(causal.shape, "bool")),
                         jit=True)
    assert "_fused_" in plan.source
    want, _ = _softmax64(np.where(causal, x.astype(np.float64) * 0.25, -np.inf), 3)
    with np.errstate(all="ignore"):
        _assert_like_numpy(plan(x, causal)[0], want, dtype)
