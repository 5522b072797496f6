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
