"""Fused kernels that write a result over one of their operands (runtime/kernelgen.py's
`aliases`): the loop reads that operand through the result array, so that LLVM's vectorised
loop is not skipped by its no-overlap check. Differential tests against the same kernels
generated without aliases, bit for bit, and against the interpreter."""
import numpy as np
import pytest

import graphc as gc
from ir.types import TensorType
from runtime import fusion, jit, render
from runtime.codegen import compile_graph
from runtime.interpreter import run
from runtime.kernelgen import kernel_source

from test_fusion_results import donated_plan

pytestmark = pytest.mark.skipif(not jit.enabled(), reason="GRAPHC_JIT=0 or numba missing")


def _aliased(plan):
    """The plan's generated kernels that read an operand through their result."""
    return [k for k in plan.lowered.rendered.fused if "_same(" in k.source]


def _without_aliases(monkeypatch):
    monkeypatch.setattr(render, "written_over", lambda mp, result, kernel: [])


def _attention_like(x, y):
    scores = (x @ y) * 0.125
    return gc.softmax(scores, axis=-1) * 2.0 + 1.0


def test_a_softmax_over_its_dying_product_reads_it_through_its_result(monkeypatch):
    spec = gc.spec((48, 40))
    graph = gc.trace(_attention_like, spec, gc.spec((40, 40)))
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(s.shape).astype(np.float32) for s in graph.inputs]
    plan = compile_graph(graph, jit=True)
    aliased = _aliased(plan)
    assert aliased, plan.source
    # the aliased operand is not read in the loop: the result array is
    (kernel,) = [k for k in aliased if "softmax_row_in_place" in k.source]
    assert "out[r, c] * s" in kernel.source and "a0[r, c]" not in kernel.source
    got = plan(*args)[0]
    np.testing.assert_allclose(got, run(graph, *args)[0], rtol=1e-6, atol=1e-6)
    _without_aliases(monkeypatch)
    before = compile_graph(graph, jit=True)
    assert not _aliased(before)
    np.testing.assert_array_equal(got, before(*args)[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_graphs_written_over_donated_inputs_equal_the_kernels_without_aliases(
        dtype, monkeypatch):
    monkeypatch.setattr(fusion, "FUSE_MIN_ELEMENTS", 1)
    aliased = 0
    cases = []
    for seed in range(16):
        graph, inputs, full, plan, got, expected = donated_plan(90_000 + seed, dtype)
        aliased += len(_aliased(plan))
        cases.append((graph, inputs, full, got))
        for e, o in zip(expected, got):
            np.testing.assert_array_equal(o, e, err_msg=f"seed {90_000 + seed}\n{plan.source}")
    assert aliased >= 10
    _without_aliases(monkeypatch)
    for graph, inputs, full, got in cases:
        with np.errstate(all="ignore"):
            before = compile_graph(graph, jit=True, donate=full)(*[a.copy() for a in inputs])
        for o, b in zip(got, before):
            np.testing.assert_array_equal(o, b)


@pytest.mark.parametrize("shape", [(64, 128), (7, 3)])
def test_an_aliased_kernel_called_with_distinct_arrays_copies_the_operand_first(shape):
    """Outside its plan (arrays that do not share memory) the kernel is still right: it copies
    the operand into the result, then reads it there; the operand is left as it was."""
    program = "v0 = mul(a0, a1); v1 = add(v0, a2); v2 = mul(v1, v1)"
    kinds = ["full", "full", "scalar"]
    types = [TensorType(shape, np.dtype("float32"))] * 2 + [TensorType((), np.dtype("float32"))]
    plain = jit.load_generated(kernel_source(program, kinds, types, True))
    aliased_source = kernel_source(program, kinds, types, True, aliases=((0, 1),))
    assert "out[r, c]" in aliased_source and "a1[r, c]" not in aliased_source
    aliased = jit.load_generated(aliased_source)
    rng = np.random.default_rng(0)
    a0, a1 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    s = np.array([0.5], np.float32)
    expected = np.empty(shape, np.float32)
    plain(expected, a0, a1, s)
    kept = a1.copy()
    out = np.full(shape, np.nan, np.float32)
    aliased(out, a0, a1, s)  # distinct arrays: the copy path
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(a1, kept)
    aliased(a1, a0, a1, s)  # in place, as the plan calls it
    np.testing.assert_array_equal(a1, expected)


def test_the_gpt_steps_softmax_and_adamw_kernels_read_in_place_operands_through_results():
    from graphc.bench import GPT, GPTConfig, TrainConfig, Trainer, _Data

    cfg = GPTConfig.named("tiny")
    trainer = Trainer(GPT(cfg, seed=0), _Data(cfg), TrainConfig(steps=100, warmup=2))
    sources = [k.source for k in _aliased(trainer.step_plan)]
    softmaxes = [s for s in sources if "softmax_row_in_place(out[r])" in s]
    adamw = [s for s in sources if "out2[r, c]" in s]
    assert len(softmaxes) == cfg.n_layer  # attention's scale, mask and softmax, each layer
    # every parameter's AdamW update writes p, m and v over the donated ones
    assert len(adamw) == len(trainer.params)
    assert all(s.count("_same(") == 3 for s in adamw)
