"""A residual added to a product is accumulated by the GEMM (runtime/fusion.py's
fold_residuals_into_products, runtime.gemm.matmul2d_acc): differential tests against the
interpreter on random residual stacks, the in-place case (the residual's buffer becomes the
result's), layouts BLAS cannot read, and bit-equality with the unfolded plan where the old
rounding is kept."""
import numpy as np
import pytest

import graphc as gc
from runtime import fusion
from runtime import jit
from runtime.codegen import compile_graph
from runtime.interpreter import run

from randgraph import with_gradient

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _onto_residual(plan):
    """The kernel graph's matmul_add nodes whose last operand has the product's shape."""
    return [n for n in plan.kernel_graph.nodes
            if n.op == "matmul_add" and n.inputs[-1].shape == n.shape]


def _residual_graph(rng, dtype):
    """x (2-D or 3-D, sizes from 1, not multiples of 8) through three residual layers
    x = x + h @ w (+ b), the residual on either side, with or without a bias; one layer's
    residual is read again afterwards (it stays alive: the result cannot take its buffer)
    and one layer's product is also returned (no fold there)."""
    lead = tuple(int(d) for d in rng.integers(1, 7, int(rng.integers(1, 3))))
    width = int(rng.integers(1, 30))
    hidden = [int(h) for h in rng.integers(1, 40, 3)]
    left = [bool(v) for v in rng.integers(0, 2, 3)]
    with_bias = [bool(v) for v in rng.integers(0, 2, 3)]
    kept = int(rng.integers(0, 4))  # this layer's residual is read again later
    returned = int(rng.integers(0, 4))  # this layer's product is an output too

    def fn(x, *params):
        extra, saved = [], None
        for k in range(3):
            w1, w2, b = params[3 * k:3 * k + 3]
            h = gc.tanh(x @ w1)
            p = h @ w2
            if with_bias[k]:
                p = p + b
            if k == returned:
                extra.append(p)
            if k == kept:
                saved = x
            x = x + p if left[k] else p + x
        if saved is not None:
            x = x * saved
        return (x, *extra)

    specs = [gc.spec(lead + (width,), dtype)]
    for k in range(3):
        specs += [gc.spec((width, hidden[k]), dtype), gc.spec((hidden[k], width), dtype),
                  gc.spec((width,), dtype)]
    inputs = [rng.standard_normal(s.shape).astype(dtype) for s in specs]
    expected_folds = 3 - (returned < 3)
    return gc.trace(fn, *specs), inputs, expected_folds


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_residuals_folded_into_products_equal_the_interpreter(dtype):
    tol = 1e-12 if dtype == "float64" else 2e-4  # float32: as the random-graph tests'
    for seed in range(24):
        rng = np.random.default_rng(60_000 + seed)
        graph, inputs, expected_folds = _residual_graph(rng, dtype)
        if seed % 2:
            graph = with_gradient(graph)
        plan = compile_graph(graph, jit=True)
        msg = f"seed {60_000 + seed} ({dtype})\n{plan.source}"
        if seed % 2 == 0:
            assert len(_onto_residual(plan)) == expected_folds, msg
        assert ("_gemm.matmul2d_acc" in plan.source) == bool(_onto_residual(plan)), msg
        # gradients through three residual layers and x * saved reach ~300: float32's
        # rounding differences (another order of the same sums) scale with the largest value
        wanted = run(graph, *inputs)
        for got, want in zip(plan(*inputs), wanted):
            assert got.shape == want.shape and got.dtype == want.dtype, msg
            atol = tol * max(1.0, float(np.max(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=tol, atol=atol, err_msg=msg)
        # the folded graph's own numpy evaluation (matmul_add's definition) agrees too
        for got, want in zip(run(plan.kernel_graph, *inputs), wanted):
            atol = tol * max(1.0, float(np.max(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=tol, atol=atol, err_msg=msg)


def test_a_dying_residual_gives_its_buffer_to_the_product():
    """x + h @ w where x dies at the add: the result is written into x's pool buffer (one
    buffer fewer), with the GEMM adding the product onto it."""
    spec = gc.spec((4, 37, 24))

    def fn(a, w1, w2):
        x = gc.tanh(a)  # a pool buffer that dies at the residual add
        return gc.gelu(x + gc.tanh(x @ w1) @ w2)

    graph = gc.trace(fn, spec, gc.spec((24, 40)), gc.spec((40, 24)))
    plan = compile_graph(graph, jit=True)
    (node,) = _onto_residual(plan)
    mp = plan.memory_plan
    residual = mp.root[node.inputs[-1]]
    assert residual.op != "reshape" and mp.storage[node].buffer == mp.storage[residual].buffer
    rng = np.random.default_rng(1)
    a, w1, w2 = (rng.standard_normal(s.shape).astype(np.float32)
                 for s in (spec, gc.spec((24, 40)), gc.spec((40, 24))))
    np.testing.assert_allclose(plan(a, w1, w2)[0], run(graph, a, w1, w2)[0], rtol=2e-5,
                               atol=2e-5)


@pytest.mark.parametrize("dying", [True, False])
def test_layouts_blas_cannot_read_fall_back_to_numpy_in_place_safely(dying):
    """A strided operand (every other column): matmul2d_acc declines, and the numpy lines
    compute the product into a temporary before adding it to the residual, which may be the
    result's own buffer."""
    def fn(x, w, r):
        r = gc.tanh(r)
        out = r + x[:, ::2] @ w
        return out if dying else out * r

    graph = gc.trace(fn, gc.spec((6, 8), "float64"), gc.spec((4, 5), "float64"),
                     gc.spec((6, 5), "float64"))
    plan = compile_graph(graph, jit=True)
    assert "_gemm.matmul2d_acc" in plan.source
    rng = np.random.default_rng(4)
    x, w, r = (rng.standard_normal(s) for s in ((6, 8), (4, 5), (6, 5)))
    np.testing.assert_allclose(plan(x, w, r)[0], run(graph, x, w, r)[0], rtol=1e-13)


def test_a_transposed_residual_and_one_row():
    """A residual that is a transposed view (not contiguous) and a one-row product."""
    graph = gc.trace(lambda h, w, r: gc.transpose(r, (1, 0)) + h @ w,
                     gc.spec((1, 7), "float64"), gc.spec((7, 3), "float64"),
                     gc.spec((3, 1), "float64"))
    plan = compile_graph(graph, jit=True)
    assert len(_onto_residual(plan)) == 1
    rng = np.random.default_rng(5)
    h, w, r = (rng.standard_normal(s) for s in ((1, 7), (7, 3), (3, 1)))
    np.testing.assert_allclose(plan(h, w, r)[0], r.T + h @ w, rtol=1e-14)


def test_without_a_bias_the_residual_rounds_as_before(monkeypatch):
    """x + h @ w with a short contraction (one BLAS panel): the GEMM adds its float32 sum to
    the residual once, as the separate add did: the bits of the plan without the fold."""
    spec = gc.spec((32, 64, 128))
    graph = gc.trace(lambda x, h, w: gc.tanh(x) + h @ w, spec, gc.spec((32, 64, 96)),
                     gc.spec((96, 128)))
    plan = compile_graph(graph, jit=True)
    assert len(_onto_residual(plan)) == 1
    assert "fused" not in [n.op for n in plan.kernel_graph.nodes][-3:]
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(s).astype(np.float32)
            for s in ((32, 64, 128), (32, 64, 96), (96, 128))]
    got = plan(*args)[0]
    monkeypatch.setattr(fusion, "fold_residuals_into_products", lambda g: g)
    unfolded = compile_graph(graph, jit=True)
    assert "matmul2d_acc" not in unfolded.source
    np.testing.assert_array_equal(got, unfolded(*args)[0])


def test_the_gpt_forward_residuals_are_accumulated_by_their_gemms():
    from graphc.models.gpt import GPT, GPTConfig
    cfg = GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=24, block_size=9, batch_size=3)
    model = GPT(cfg, seed=2)
    params = model.params()
    idx = np.random.default_rng(0).integers(0, 11, (3, 9))
    graph = gc.trace(lambda p, i: model.apply(p, i), params, idx)
    plan = compile_graph(graph, jit=True)
    # two residual adds per block, each onto the projection's product and bias
    assert len(_onto_residual(plan)) == 2 * cfg.n_layer
    assert all(len(n.inputs) == 4 for n in _onto_residual(plan))
    leaves = gc.tracing.flatten((params, idx))[0]
    np.testing.assert_allclose(plan(*leaves)[0], run(graph, *leaves)[0], rtol=2e-5, atol=2e-5)
