"""Session 38's fixes of graphc's transformations (vmap, compiled calls on the tape,
compiled modules); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from passes.rematerialize import MemoryLimitError, parse_memory_limit


def test_vmap_keeps_the_range_check_of_a_power_by_a_traced_int():
    """`gc.compile(gc.vmap(lambda x, k: x + 3 ** k, in_axes=(0, None)))(int32 rows, 20)`
    wrapped 3**20 = 3486784401 to -808182895 unseen (vmap rebuilt the power's chain of
    wheres without recording it as a power, so its exact value was unknown), where the same
    function without vmap refuses it; now vmap refuses it in the same words, and a power
    that fits (or a negative k's 0) is computed as without vmap."""
    rows = np.array([1, 2], np.int32)
    plain = gc.compile(lambda x, k: x + 3 ** k)
    mapped = gc.compile(gc.vmap(lambda x, k: x + 3 ** k, in_axes=(0, None)))
    for f in (plain, mapped):
        with pytest.raises(GraphcError, match="3486784401, computed from k, does not fit in "
                                              "int32"):
            f(rows, 20)
    for k, expected in ((2, [10, 11]), (-1, [1, 2])):
        out = mapped(rows, k)
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == np.int32


def test_the_first_on_tape_call_of_a_compiled_model_builds_one_plan(monkeypatch):
    """`gc.compile(model)(x)` on a model whose parameters require grad built the plain
    call's plan, then found the call belongs on the tape and built the split forward plan
    too: two compilations at the first call, one thrown away. Now the first call builds
    the split forward plan alone (its backward plan at backward(), as before); the
    gradient is the eager one, and a call under no_grad then builds the plain plan."""
    import runtime.build
    built = []
    real_build_plan = runtime.build.build_plan

    def counting_build_plan(*args, **kwargs):
        built.append(args[0].name)
        return real_build_plan(*args, **kwargs)

    monkeypatch.setattr(runtime.build, "build_plan", counting_build_plan)
    gc.nn.manual_seed(0)
    model = gc.nn.Linear(4, 3)
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    compiled = gc.compile(model)
    out = compiled(x)
    assert len(built) == 1
    gc.sum(gc.tanh(out)).backward()
    assert len(built) == 2  # the backward plan
    compiled_grad = np.array(model.weight.grad)
    model.zero_grad()
    gc.sum(gc.tanh(model(x))).backward()
    np.testing.assert_allclose(compiled_grad, model.weight.grad, rtol=1e-6)
    with gc.no_grad():
        plain = compiled(x)
    assert len(built) == 3
    np.testing.assert_allclose(plain, out.numpy(), rtol=1e-6)


def test_memory_limit_bounds_the_plans_of_a_compiled_call_on_the_tape():
    """gc.compile(model, memory_limit=...) refused a budget too small for the plain call
    (under no_grad) but ran the same call on the tape (parameters requiring grad) unbounded:
    its split forward and backward plans were built without the limit. Now each of them
    fits the limit or is refused the same way; a budget that fits gives the eager
    gradient."""

    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(64, 256), gc.nn.GELU(), gc.nn.Linear(256, 8))
    x = np.ones((128, 64), np.float32)
    too_small = gc.compile(model, memory_limit="100KB")
    with gc.no_grad(), pytest.raises(MemoryLimitError, match="memory_limit 97.7 KiB cannot "
                                                             "be met"):
        too_small(x)
    with pytest.raises(MemoryLimitError, match="memory_limit 97.7 KiB cannot be met"):
        too_small(x)
    gc.sum(gc.tanh(model(x))).backward()
    eager_grad = np.array(model[0].weight.grad)
    model.zero_grad()
    enough = gc.compile(model, memory_limit="3MiB")
    gc.sum(gc.tanh(enough(x))).backward()
    np.testing.assert_allclose(model[0].weight.grad, eager_grad, rtol=1e-5, atol=1e-7)
    split = next(iter(enough.on_tape._plans.values()))[0][1]
    for plan in [split.known_plan, *split._cotangent_plans.values()]:
        assert plan.remat_report.limit == 3 * 2**20
        assert plan.memory["total"] <= 3 * 2**20


def test_a_compiled_child_prints_as_compiled():
    """print(model) showed a child replaced by gc.compile(child) as the bare layer, as if
    it were not compiled (torch shows OptimizedModule around a torch.compile'd child); now
    it prints as Compiled(Layer(...)), in a ModuleList's run of equal items too, and the
    uncompiled children as before."""
    model = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.GELU())
    model[0] = gc.compile(model[0])
    assert repr(model) == ("Sequential(\n"
                           "  (0): Compiled(Linear(in_features=2, out_features=3, bias=True))\n"
                           "  (1): GELU(approximate='none')\n"
                           ")")
    layers = gc.nn.ModuleList([gc.compile(gc.nn.Linear(2, 2)) for _ in range(3)])
    assert repr(layers) == ("ModuleList(\n"
                            "  (0-2): 3 x Compiled(Linear(in_features=2, out_features=2, "
                            "bias=True))\n)")


def test_a_refusal_on_the_tape_names_the_plan_and_the_callers_line():
    """A memory_limit refusal of a compiled call on the tape read as the plain plan's ("the
    plan's peak memory from 355.0 KiB down to 355.0 KiB"), named no line of the user's and,
    where the limit and the need rounded alike, contradicted itself ("1.7 MiB cannot be met
    ... at least 1.7 MiB"). Now it names the backward (or forward) of the compiled layer,
    the caller's line, and the size needed rounded up (sizes that would read alike are in
    bytes: tests/test_memory_limit.py)."""
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(64, 256), gc.nn.GELU(), gc.nn.LayerNorm(256),
                             gc.nn.Linear(256, 256), gc.nn.Tanh(), gc.nn.LayerNorm(256),
                             gc.nn.Linear(256, 8))
    x = np.ones((128, 64), np.float32)
    out = gc.compile(model, memory_limit=1_800_000)(x)  # the forward fits
    with pytest.raises(MemoryLimitError) as refused:
        gc.sum(out).backward()
    message = str(refused.value)
    assert message.startswith("memory_limit 1.7 MiB cannot be met: the backward of "
                              "compiled Sequential needs 1.8 MiB ")
    assert 1_800_000 < refused.value.best <= parse_memory_limit("1.8 MiB")
    assert "at least 1.8 MiB" in message
    assert "test_review_s38_transforms.py" in message
    assert all(p.grad is None for p in model.parameters())  # nothing half-written
