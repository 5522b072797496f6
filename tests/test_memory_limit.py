"""gc.compile(fn, memory_limit=...) (passes/rematerialize.py): the plan fits the budget,
computes what the unlimited plan computes, and a smaller budget costs at least as many FLOPs;
a budget that cannot be met, or a bad size, is one error line."""
import logging
import os
import re
import sys

import numpy as np
import pytest

import graphc as gc
from gpt_graphs import add_parameter_gradients
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError
from ir.verify import verify
from passes.manager import optimize
from passes.rematerialize import MemoryLimitError, parse_memory_limit, rematerialize
from runtime.build import build_plan, memory_model
from runtime.interpreter import evaluate
from runtime.stages import LoweringOptions

ACTIVATIONS = (gc.tanh, gc.relu, gc.gelu, gc.sigmoid, lambda h: gc.softmax(h, axis=-1))


def random_mlp_step(seed):
    """A random deep MLP's loss and gradients (float64): depth, widths, activations and
    residual connections drawn from the seed."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(3, 7))
    width = int(rng.choice([32, 48, 64]))
    batch = int(rng.choice([16, 24]))
    acts = [ACTIVATIONS[k] for k in rng.integers(0, len(ACTIVATIONS), depth)]
    residual = rng.random(depth) < 0.5

    def loss(ws, x, y):
        h = x
        for w, act, skip in zip(ws, acts, residual):
            out = act(h @ w)
            h = h + out if skip else out
        return gc.sum((h - y) ** 2) / batch

    ws = [rng.normal(size=(width, width)) / np.sqrt(width) for _ in range(depth)]
    x, y = rng.normal(size=(batch, width)), rng.normal(size=(batch, width))
    return gc.value_and_grad(loss), (ws, x, y)


def _budgets(plan_for, args, count=3):
    """`count` budgets from just above the smallest reachable peak up to the unlimited one."""
    unlimited = plan_for(None, args).memory["total"]
    with pytest.raises(MemoryLimitError) as info:
        plan_for(1, args)
    best = info.value.best
    assert best < unlimited  # recomputation helps these models at all
    return unlimited, [int(best + (unlimited - best) * f) for f in np.linspace(0, 0.9, count)]


def _compiled_plan(fn):
    def plan_for(limit, args):
        return gc.compile(fn, memory_limit=limit).plan_for(*args)
    return plan_for


def _check_prefixes(reports):
    """Budgets from large to small: each one's recomputations extend the previous one's, and
    the FLOPs they add never shrink."""
    for bigger, smaller in zip(reports, reports[1:]):
        assert smaller.recomputed[:len(bigger.recomputed)] == bigger.recomputed
        assert smaller.extra_flops >= bigger.extra_flops


@pytest.mark.parametrize("seed", range(4))
def test_random_mlps_fit_each_budget_with_the_unlimited_gradients(seed):
    fn, args = random_mlp_step(seed)
    plan_for = _compiled_plan(fn)
    unlimited, budgets = _budgets(plan_for, args)
    expected = gc.compile(fn).call(args)
    reports = []
    for budget in sorted(budgets, reverse=True):
        compiled = gc.compile(fn, memory_limit=budget)
        plan = compiled.plan_for(*args)
        assert plan.memory["total"] <= budget
        report = plan.remat_report
        assert report.limit == budget and report.peak_after == plan.memory["total"]
        assert report.peak_before == unlimited and report.recomputed
        reports.append(report)
        loss, grads = compiled.call(args)
        np.testing.assert_allclose(loss, expected[0], rtol=1e-12)
        for got, want in zip(grads[0], expected[1][0]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    _check_prefixes(reports)
    assert reports[-1].extra_flops > 0


def _gpt_step(dropout):
    cfg = GPTConfig.named("tiny", vocab_size=65, dtype="float64", dropout=dropout)
    model = GPT(cfg, seed=0)
    B, T = cfg.batch_size, cfg.block_size
    graph = gc.trace(lambda idx, targets, seed: model(idx, targets, seed=seed, training=True),
                     gc.spec((B, T), "int64"), gc.spec((B, T), "int64"), gc.spec((), "int64"))
    add_parameter_gradients(graph)
    rng = np.random.default_rng(0)
    return graph, (rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T)), np.int64(7))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_tiny_gpt_fits_each_budget_with_the_unlimited_gradients(dropout):
    graph, inputs = _gpt_step(dropout)
    plain = build_plan(graph)
    expected = plain(*inputs)
    _, budgets = _budgets(lambda limit, _: build_plan(graph, memory_limit=limit), None)
    reports = []
    for budget in sorted(budgets, reverse=True):
        plan = build_plan(graph, memory_limit=budget)
        assert plan.memory["total"] <= budget < plain.memory["total"]
        reports.append(plan.remat_report)
        got = plan(*inputs)
        assert len(got) == len(expected) > 10
        for a, b in zip(expected, got):  # dropout masks: recomputed from the same seed
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    _check_prefixes(reports)
    # what a GPT recomputes first: layer norms, GELUs, dropout masks (from their seeds),
    # the Embedding's index check (check_index of the token ids), cheap per byte
    first = {r.value.split()[0] for r in reports[0].recomputed}
    assert first <= {"add", "layer_norm", "gelu", "dropout_mask", "check_index"}
    assert first & ({"dropout_mask"} if dropout else {"layer_norm", "gelu"})


def test_the_pass_rebuilds_a_value_next_to_its_late_reader():
    """A => B of passes/rematerialize.py's docstring: h = gelu(x @ w) is held across three
    matmuls that peak at four buffers; made again (its matmul too) where it is read, the pool
    needs three."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(32, 64)), rng.normal(size=(64, 64)) / 8

    def f(x, w):
        a = x @ w
        h = gc.gelu(a)
        c1 = gc.tanh(a) @ w
        c2 = c1 @ w
        c3 = c2 @ w
        return gc.sum(gc.exp(c1 * c2 * c3) * h)

    graph = optimize(gc.trace(f, x, w))
    assert [n.op for n in graph.nodes[2:]] == [
        "matmul", "gelu", "tanh", "matmul", "matmul", "matmul", "mul", "mul", "exp", "mul",
        "sum"]
    model = memory_model(LoweringOptions())  # no fusion: the planner sees every value
    before = model.peak(graph)
    fitted, report = rematerialize(graph, before - 1, model)
    verify(fitted)
    assert [n.op for n in fitted.nodes[2:]] == [
        "matmul", "tanh", "matmul", "matmul", "matmul", "mul", "mul", "exp",
        "matmul", "gelu", "mul", "sum"]  # the GELU (and its matmul) moved to its reader
    buffer = 32 * 64 * 8
    assert before - model.peak(fitted) == buffer == report.peak_before - report.peak_after
    assert report.extra_flops == 2 * 32 * 64 * 64  # the matmul, now done twice
    assert [r.value.split()[:2] for r in report.recomputed] == [["gelu", "f64[32,64]"]]
    for got, want in zip(evaluate(fitted, [x, w]), evaluate(graph, [x, w])):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    # a budget already met changes nothing
    same, nothing = rematerialize(graph, before, model)
    assert same is graph and nothing.recomputed == [] and nothing.extra_flops == 0
    assert "nothing recomputed" in str(nothing)


def test_the_report_is_one_log_line(caplog):
    fn, args = random_mlp_step(2)
    unlimited = gc.compile(fn).plan_for(*args).memory["total"]
    with caplog.at_level(logging.INFO, logger="graphc"):
        plan = gc.compile(fn, memory_limit=unlimited - 1).plan_for(*args)
    lines = [r.getMessage() for r in caplog.records if "memory_limit" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0] == f"graphc: {plan.graph.name}: {plan.remat_report}"
    assert " by recomputing " in lines[0] and " per call (+" in lines[0]
    assert plan.remat_report.recomputed[0].value in lines[0]


def test_a_budget_that_cannot_be_met_is_one_line_with_the_smallest_peak():
    fn, args = random_mlp_step(0)
    with pytest.raises(MemoryLimitError) as info:
        gc.compile(fn, memory_limit="1KB").plan_for(*args)
    message = info.value.message
    assert "\n" not in message
    assert message.startswith("memory_limit 1000 B cannot be met")
    assert "down to" in message and "raise the limit to at least" in message
    best = info.value.best
    # the smallest peak named is reachable: that budget compiles
    assert gc.compile(fn, memory_limit=best).plan_for(*args).memory["total"] <= best
    # and so does the size the message asks for, rounded up: it said "at least 279.0 KiB"
    # of a need of 285744 bytes (279.05 KiB), and a limit of 279.0KiB was refused again
    asked = re.search(r"at least (\S+ \S+) or", message).group(1)
    assert asked == "279.1 KiB"
    assert gc.compile(fn, memory_limit=asked).plan_for(*args).memory["total"] <= best
    # where the limit and that size would read alike, both are in bytes, written as a size
    # reads back ("at least 1860000 bytes" was refused as a memory_limit)
    told = str(MemoryLimitError(1_850_000, 2_000_000, 1_860_000))
    assert told == ("memory_limit 1850000 B cannot be met: recomputing activations brings the "
                    "plan's peak memory from 1.9 MiB down to 1860000 B at best; raise the limit "
                    "to at least 1860000 B or shrink the batch")
    assert parse_memory_limit(re.search(r"at least (\S+ \S+) or", told).group(1)) == 1_860_000


def test_a_budget_that_cannot_be_met_names_the_users_call_line():
    """The refusal of gc.compile(f, memory_limit=...) at its first call (plan_for, or the
    call itself) named no line of the user's code, where graphc's other errors and the
    split plans' own memory refusals (graphc.split_vjp) name the call's."""
    fn, args = random_mlp_step(0)
    compiled = gc.compile(fn, memory_limit="1KB")
    for call in (compiled.plan_for, compiled):
        line = sys._getframe().f_lineno + 2
        with pytest.raises(MemoryLimitError) as info:
            call(*args)
        assert [(os.path.basename(f), n) for f, n in info.value.locs] == \
            [("test_memory_limit.py", line)]
        assert str(info.value) == f"{info.value.message}\n  at {info.value.locs[0][0]}:{line}"
        assert info.value.message.startswith("memory_limit 1000 B cannot be met: ")


@pytest.mark.parametrize("text, expected", [
    ("200MB", 200_000_000), ("1.5GiB", 3 * 2**29), ("512 KiB", 512 * 1024),
    ("4096", 4096), ("2e3kb", 2_000_000), (12345, 12345), (1.5e6, 1_500_000),
    ("1tb", 10**12), ("7b", 7),
])
def test_sizes_parse_as_hugging_face_units(text, expected):
    assert parse_memory_limit(text) == expected


@pytest.mark.parametrize("bad", ["12XB", "", "MB", "-5", "0", "1e400", "nan", True, 0.5])
def test_bad_sizes_are_one_line_naming_the_option(bad):
    with pytest.raises(GraphcError) as info:
        gc.compile(lambda x: x, memory_limit=bad)
    first = str(info.value).splitlines()[0]
    assert first.startswith("memory_limit: expected")
    assert info.value.locs and info.value.locs[0][0].endswith("test_memory_limit.py")


@pytest.mark.parametrize("small", [0.5, "0.5", "0.9 B", "1e-4KB"])
def test_a_size_below_one_byte_is_refused_as_such(small):
    """It was "expected a positive, finite size, got 0.5", of a positive, finite size."""
    with pytest.raises(GraphcError) as info:
        parse_memory_limit(small)
    assert str(info.value) == f"memory_limit: expected a size of at least 1 byte, got {small!r}"


@pytest.mark.parametrize("fraction", [1.5, "1.5", "2.25B", "12.5 b"])
def test_a_fraction_of_a_byte_is_refused_not_cut(fraction):
    """s49: 1.5 bytes was int()-cut to 1; a size in a larger unit keeps its fraction."""
    with pytest.raises(GraphcError) as info:
        gc.compile(lambda x: x, memory_limit=fraction)
    assert str(info.value).splitlines()[0] == (
        f"memory_limit: expected a whole number of bytes, got {fraction!r} (a fraction of a "
        "byte; a size in a unit may have one: '1.5KB')")
    assert info.value.locs[0][0].endswith("test_memory_limit.py")
    assert parse_memory_limit("1.5GB") == 1_500_000_000 and \
        parse_memory_limit("1.5GiB") == 3 * 2**29 and parse_memory_limit(2.0) == 2
    # what format_bytes writes reads back, rounded down to whole bytes
    assert parse_memory_limit("1.8 MiB") == int(1.8 * 2**20) == 1887436


@pytest.mark.parametrize("text, size", [("1.001KB", 1001), ("1.001MB", 1_001_000),
                                        ("1.003GB", 1_003_000_000), ("2.675KB", 2675),
                                        ("1.5e3", 1500), ("1.8 MiB", 1887436)])
def test_a_decimal_size_in_a_unit_is_its_exact_bytes(text, size):
    """r7 (s49 review): a size in a unit was computed in floats, then rounded down: '1.001KB'
    (1.001 * 1000 = 1000.9999999999999) read as 1000 bytes, a byte short of what it says."""
    assert parse_memory_limit(text) == size
    assert parse_memory_limit(f"{size}B") == size


def test_trainer_takes_a_memory_limit_for_its_step():
    fn, (ws, x, y) = random_mlp_step(1)
    params = {f"w{k}": w for k, w in enumerate(ws)}

    def loss(p, batch):
        h = batch[0]
        for k in range(len(p)):
            h = gc.tanh(h @ p[f"w{k}"])
        return gc.mean((h - batch[1]) ** 2)

    free = gc.Trainer(loss, params, gc.optim.SGD(lr=0.1), [(x, y)], steps=2)
    budget = free.step_plan.memory["total"] - 1
    trainer = gc.Trainer(loss, params, gc.optim.SGD(lr=0.1), [(x, y)], steps=2,
                         memory_limit=budget)
    assert trainer.step_plan.memory["total"] <= budget
    assert trainer.step_plan.remat_report.recomputed
    for _ in range(2):
        np.testing.assert_allclose(trainer.train_step(), free.train_step(), rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(trainer.params[name], free.params[name], rtol=1e-12)


def test_a_micro_batch_plan_of_gradient_accumulation_fits_the_budget_of_the_one_step():
    """With gradient_accumulation_steps, the micro-batch plan adds each weight's gradient
    (x.T @ dy) into its sum after the whole backward pass: the matmul_add that folds the two
    was made at the add, which held every layer's activations and output gradients alive
    until the end, so its plan was larger than the one-step plan's and recomputation could
    not lower it at all (4.25 MiB at best here, against 2.75 MiB)."""
    rng = np.random.default_rng(0)
    params = {f"w{k}": (rng.standard_normal((128, 128)) * 0.1).astype(np.float32)
              for k in range(6)}
    x, y = (rng.standard_normal((512, 128)).astype(np.float32) for _ in range(2))

    def loss(p, batch):
        h = batch[0]
        for k in range(len(p)):
            h = gc.tanh(h @ p[f"w{k}"])
        return gc.mean((h - batch[1]) ** 2)

    def trainer(accumulation, limit=None):
        return gc.Trainer(loss, params, gc.optim.SGD(lr=0.1), [(x, y)], steps=2,
                          gradient_accumulation_steps=accumulation, memory_limit=limit)

    one_step, free = trainer(1), trainer(2)
    assert free.step_plan.memory["total"] <= one_step.step_plan.memory["total"]
    budget = one_step.step_plan.memory["total"] - 1
    limited = trainer(2, budget)
    assert limited.step_plan.memory["total"] <= budget
    for _ in range(2):
        np.testing.assert_array_equal(limited.train_step(), free.train_step())
    for name in params:
        np.testing.assert_array_equal(limited.params[name], free.params[name])


@pytest.mark.parametrize("value, message", [
    ("12XB", "expected a number of bytes or a size such as '200MB'"),
    ("0", "expected a positive, finite size, got '0'"),
])
def test_graphc_train_refuses_a_bad_memory_limit_in_one_line(value, message, capsys):
    from graphc.cli import main
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", "tiny", "--memory-limit", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --memory-limit" in err and message in err


def test_graphc_train_names_the_option_when_the_budget_cannot_be_met(tmp_path, capsys):
    from graphc.cli import main
    out = tmp_path / "run"
    code = main(["train", "--config", "tiny", "--steps", "1", "--memory-limit", "1MB",
                 "--out", str(out), "--no-progress", "--sample-tokens", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: --memory-limit 976.6 KiB cannot be met")
    assert err.count("\n") == 1
    assert not out.exists()  # nothing written


def test_graphc_dump_prints_the_graph_after_rematerialize(capsys):
    from graphc.cli import main
    assert main(["dump", "gpt", "--grad", "--memory-limit", "25MB",
                 "--after", "rematerialize"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("graphc dump: memory_limit 23.8 MiB: peak ")
    # each value the report names is computed once more in the printed graph than without a
    # budget (which ones depends on the lowering's memory plan, e.g. its bias folding)
    recomputed = re.findall(r"[:;] (\w+) f32\[", captured.err)
    assert recomputed, captured.err
    assert main(["dump", "gpt", "--grad", "--after", "rematerialize", "--memory-limit",
                 "1TB"]) == 0
    unlimited = capsys.readouterr().out
    for op in set(recomputed):
        def count(text):
            return sum(f"= {op} " in line for line in text.splitlines())
        assert count(captured.out) == count(unlimited) + recomputed.count(op), op
    assert main(["dump", "gpt", "--grad", "--after", "rematerialize"]) == 2
    assert "give --memory-limit" in capsys.readouterr().err
