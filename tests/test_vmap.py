"""graphc.vmap: every op has a batching rule (or says why it loops), and vmap of every op in
the op table equals a Python loop over the examples, stacked, with batched and unbatched
arguments mixed; per-example gradients; vmap under compile, grad and vmap; its errors."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from ir.ops.batching import BATCH_RULES, LOOPED, NOT_BATCHED
from ir.ops.registry import REGISTRY, OpDef

from opcases import CASES

BATCH = 3
IDS = [c.name for c in CASES]


def uncovered(registry) -> list:
    """Ops with neither a batching rule nor a stated reason to loop or never be batched."""
    explained = {**{k: v for k, v in LOOPED.items() if v}, **{k: v for k, v in
                                                               NOT_BATCHED.items() if v}}
    return sorted(name for name in registry if name not in BATCH_RULES and name not in explained)


def test_every_registered_op_has_a_batching_rule_or_a_stated_fallback():
    assert uncovered(REGISTRY) == [], "ops without a batching rule (ir/ops/batching.py)"
    assert not set(BATCH_RULES) & set(LOOPED), "an op both has a rule and loops"
    assert set(BATCH_RULES) | set(LOOPED) | set(NOT_BATCHED) <= set(REGISTRY)


def test_an_op_without_a_rule_is_named():
    fake = dict(REGISTRY, frobnicate=OpDef("frobnicate", None, None))
    assert uncovered(fake) == ["frobnicate"]


# ---- vmap of every op case against a loop over the examples ---------------------------------
def examples(case, seed):
    """BATCH examples of the case's inputs (different values each)."""
    rngs = [np.random.default_rng([seed, b]) for b in range(BATCH)]
    return [[mk(rng) for mk in case.inputs] for rng in rngs]


def axes_configs(case):
    """in_axes mixes: everything batched along axis 0; along axis 1 (axis 0 for scalars); only
    the first argument batched; only the last one."""
    ndims = [np.ndim(x) for x in examples(case, 0)[0]]
    n = len(ndims)
    configs = {"axis0": (0,) * n, "axis1": tuple(min(1, d) for d in ndims)}
    if n > 1:
        configs["first_only"] = (0,) + (None,) * (n - 1)
        configs["last_only"] = (None,) * (n - 1) + (0,)
    return configs


def stacked(per_example, axes):
    """The batched arguments: each batched input stacked along its axis; an unbatched one is
    example 0's value, which every example then shares."""
    out = []
    for i, axis in enumerate(axes):
        column = [ex[i] for ex in per_example]
        out.append(column[0] if axis is None else np.stack(column, axis))
    return out


def looped(fn, per_example, axes):
    results = []
    for ex in per_example:
        args = [ex[i] if axis is not None else per_example[0][i] for i, axis in enumerate(axes)]
        results.append(np.asarray(fn(*[gc.tensor(a) for a in args])))
    return np.stack(results)


CASE_CONFIGS = [(case, name, axes) for case in CASES
                for name, axes in axes_configs(case).items()]


@pytest.mark.parametrize("case,config,axes", CASE_CONFIGS,
                         ids=[f"{c.name}-{n}" for c, n, _ in CASE_CONFIGS])
def test_vmap_of_each_op_equals_a_loop_over_examples(case, config, axes):
    per_example = examples(case, 0)
    out = gc.vmap(case.fn, in_axes=axes)(*stacked(per_example, axes))
    expected = looped(case.fn, per_example, axes)
    assert np.shape(out) == expected.shape
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)


GRAD_CASES = [c for c in CASES if c.grad]


def projected_loss(case, example):
    weights = np.random.default_rng(1).normal(size=np.shape(case.reference(*example)))

    def loss(*args):
        return gc.sum(case.fn(*args) * weights)
    return loss


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
def test_per_example_gradients_of_each_op_equal_a_loop(case):
    """vmap(grad(f)) batches the gradient rules' ops (scatter_add, pad_slice, the layer_norm
    and softmax gradients, ...) with the first argument batched and the rest shared."""
    per_example = examples(case, 0)
    loss = projected_loss(case, per_example[0])
    wrt = 0 if 0 not in case.ints else next(i for i in range(len(case.inputs))
                                            if i not in case.ints)
    axes = (0,) + (None,) * (len(case.inputs) - 1)
    out = gc.vmap(gc.grad(loss, argnums=wrt), in_axes=axes)(*stacked(per_example, axes))
    expected = np.stack([gc.grad(loss, argnums=wrt)(ex[0], *per_example[0][1:])
                         for ex in per_example])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_inside_compile_equals_eager(case):
    per_example = examples(case, 1)
    axes = axes_configs(case)["axis1"]
    args = stacked(per_example, axes)
    batched = gc.vmap(case.fn, in_axes=axes)
    np.testing.assert_allclose(gc.compile(batched)(*args), np.asarray(batched(*args)),
                               rtol=1e-10, atol=1e-12)
