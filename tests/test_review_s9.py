"""Session 9's hostile review: defects found in runtime.tiles and the tidy-up (LayerNorm's
pair at its input gradient's step, the in-reader softmax_grad), each with the test that
failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from ir.ops import api as F
from passes.manager import optimize
from runtime import jit
from runtime.codegen import compile_graph

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="numba missing")


def _scaled_softmax_grad_plan():
    """mul(softmax_grad(y, g), s): one softmax_grad_scaled kernel, the plan's finite check on."""
    def f(y, g, s):
        return F.softmax_grad(y, g, -1) * s
    specs = [gc.spec((4, 9), "float32"), gc.spec((4, 9), "float32"), gc.spec((), "float32")]
    plan = compile_graph(optimize(gc.trace(f, *specs)), jit=True, background_compile=False,
                         check_finite=True)
    assert "_jit.softmax_grad_scaled(" in plan.source
    rng = np.random.default_rng(0)
    y = np.full((4, 9), 1 / 9, np.float32)
    g = (1e3 * rng.standard_normal((4, 9))).astype(np.float32)
    return plan, y, g


def test_the_finite_check_blames_the_scaled_softmax_grad_with_the_scale_among_its_operands():
    """The step of the folded pair judged the multiply's value as softmax_grad's, with y and
    g as its only operands: an overflow by the scale was blamed on softmax_grad with finite
    operands and the scale not shown."""
    plan, y, g = _scaled_softmax_grad_plan()
    with pytest.raises(GraphcError) as err:
        plan(y, g, np.float32(3e38))
    message = str(err.value)
    assert "softmax_grad_scaled ->" in message and "f32[] in [3e+38, 3e+38]" in message


def test_the_finite_check_does_not_blame_the_pair_for_a_nan_scale():
    """A NaN scale (an input) made the kernel's result NaN: it was reported as NaN that
    softmax_grad produced from finite operands; the plan without the fold says the multiply's
    operands held NaN already."""
    plan, y, g = _scaled_softmax_grad_plan()
    with pytest.raises(GraphcError) as err:
        plan(y, g, np.float32(np.nan))
    assert "its operands held NaN or Inf too" in str(err.value)


def _layout(rng, values, kind):
    """`values` (4-D) in a layout of the given kind: a view with the same elements."""
    p, q, m, n = values.shape
    item = values.itemsize
    if kind == "negative strides":
        out = np.flip(np.flip(values, (1, 3)).copy(), (1, 3))
    elif kind == "misaligned":  # data one byte past an itemsize boundary
        raw = np.zeros(values.nbytes + 1, np.uint8)
        out = np.ndarray(values.shape, values.dtype, raw, offset=1)
    elif kind == "odd row stride":  # rows a non-multiple of the itemsize apart
        row = n * item + 1
        raw = np.zeros(p * q * m * row, np.uint8)
        out = np.ndarray(values.shape, values.dtype, raw,
                         strides=(q * m * row, m * row, row, item))
    elif kind == "broadcast batch":  # stride 0 over the batch axes
        out = np.broadcast_to(values[:1, :1], values.shape)
        return out
    else:  # read-only
        out = values.copy()
        out.flags.writeable = False
        return out
    out[...] = values
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_read_every_layout_numpy_can_make_and_write_only_their_result(dtype):
    """runtime.tiles reads and writes raw addresses: operands with negative, zero and
    non-itemsize-multiple strides, misaligned data, read-only; results row-strided with a
    non-itemsize-multiple or negative row stride and misaligned; NaN and Inf where a dot
    product has them. Compared with an element-by-element float64 einsum."""
    from runtime import tiles
    kinds = ["negative strides", "misaligned", "odd row stride", "broadcast batch", "read-only"]
    rng = np.random.default_rng(9)
    computed = 0
    for case in range(60):
        while True:
            m, k, n = (int(rng.choice([1, 2, 3, 4, 5, 8, 9, 16, 17, 31, 33, 64])) for _ in "mkn")
            if tiles.fits(m, k, n):
                break
        a = rng.standard_normal((2, 3, m, k)).astype(dtype)
        b = rng.standard_normal((2, 3, k, n)).astype(dtype)
        if case % 3 == 0:
            a[rng.random(a.shape) < 0.05] = np.nan
            b[rng.random(b.shape) < 0.05] = np.inf
        a, b = _layout(rng, a, kinds[case % 5]), _layout(rng, b, kinds[(case + 2) % 5])
        out_kind = ["negative strides", "misaligned", "odd row stride", "column-major"][case % 4]
        out = (np.zeros((2, 3, n, m), dtype).transpose(0, 1, 3, 2) if out_kind == "column-major"
               else _layout(rng, np.zeros((2, 3, m, n), dtype), out_kind))
        # neither row- nor column-major (columns running backwards): left to np.matmul
        refused = out.itemsize not in out.strides[2:]
        assert tiles.kernel()(a, b, out, 0) == int(refused)
        if refused:
            assert not out.any()
            continue
        computed += 1
        with np.errstate(all="ignore"):
            want = np.einsum("pqmk,pqkn->pqmn", a.astype(np.float64), b.astype(np.float64),
                             optimize=False)
            scale = np.einsum("pqmk,pqkn->pqmn", np.abs(a).astype(np.float64),
                              np.abs(b).astype(np.float64), optimize=False)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_array_equal(out[~finite & ~np.isnan(want)],
                                      want[~finite & ~np.isnan(want)])
        tol = 2e-6 if dtype == np.float32 else 1e-14
        assert np.all(np.abs(out - want)[finite] <= tol * scale[finite] + 1e-30)
    assert computed >= 40  # the layouts above reach the tile, not only the refusal
