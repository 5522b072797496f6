"""Session 14c hostile review of graphc's user-facing rules: bad input is one error line
(exit 2) naming the option or file, saved files are never lost or replaced by bad state,
and small hostile inputs cost no huge allocations. Reviewed: graphc/cli.py, train.py,
trainer.py, checkpoint.py, files.py, data.py, sample.py, generate.py, models/gpt2.py,
dump.py, ir/serialize.py, ir/parser.py. Each test below failed before its fix."""
import numpy as np
import pytest

from graphc.cli import main
from test_cli import error_line


# ---- planning a huge batch must not allocate it -------------------------------------------
# runtime.memory._steps_to_product and runtime.lowering.reshapes_into_concat probed views
# with np.empty(shape): planning (dump --stats, a training step's plan before its memory
# check) tried to allocate every concat in full, 2.24 TiB for this graph: a MemoryError
# traceback instead of the figures or the plan's "needs N, only M available" line.
def test_dump_stats_of_a_huge_batch_allocates_nothing(capsys):
    assert main(["dump", "gpt", "--config", "tiny", "--grad", "--batch", "100000000",
                 "--stats"]) == 0
    assert "peak" in capsys.readouterr().out.lower()


def test_c_ordered_probe_views_like_a_real_array():
    from runtime.lowering import c_ordered_probe
    for shape in [(2, 1, 3), (4, 8, 48), (1,), (3, 0, 2), (100000000, 32, 192)]:
        for dtype in (np.float32, np.float64):
            probe = c_ordered_probe(shape, dtype)
            assert probe.shape == shape and probe.dtype == dtype
            if np.prod(shape) < 1 << 20:
                real = np.empty(shape, dtype)
                assert probe.strides == real.strides
                assert probe.flags.c_contiguous == real.flags.c_contiguous


def _refuse_to_start(monkeypatch):
    """Training and benchmarks fail the test at once instead of running (before a fix)."""
    import graphc.bench
    import graphc.train

    def started(*args, **kwargs):
        raise AssertionError("the command started")
    for module, name in ((graphc.bench, "matmul_gflops"), (graphc.bench, "run"),
                         (graphc.train, "train_gpt")):
        monkeypatch.setattr(module, name, started)


# ---- an empty path is not "the default" ----------------------------------------------------
# `--data "$TEXT"` with TEXT unset trained on the bundled Tiny Shakespeare, `--out ""` wrote
# into runs/CONFIG and `dump -o ""` printed to stdout: an empty string was taken for an
# option not given. Each is now refused by argparse, naming the option.
@pytest.mark.parametrize("argv, option", [
    (["train", "--data", ""], "--data"),
    (["train", "--out", ""], "--out"),
    (["eval", "--checkpoint", ""], "--checkpoint"),
    (["eval", "--checkpoint", "x", "--data", ""], "--data"),
    (["sample", "--checkpoint", ""], "--checkpoint"),
    (["sample", "--model", ""], "--model"),
    (["dump", "mlp", "-o", ""], "-o/--output"),
    (["bench", "--json", ""], "--json"),
    (["bench", "--plot", ""], "--plot"),
])
def test_an_empty_path_is_one_line_naming_the_option(argv, option, capsys, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refuse_to_start(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = error_line(capsys)
    assert f"argument {option}:" in line and "empty" in line
    assert list(tmp_path.iterdir()) == []  # no runs/ directory, nothing written


# ---- graphc bench's counts are checked before it measures anything -------------------------
# --steps 0 or -3 (and --warmup -1) started the GEMM measurement, the contenders' processes
# and their compiles, and then timed no step (a median of nothing) or ran the wrong count.
@pytest.mark.parametrize("option, value", [("--steps", "0"), ("--steps", "-3"),
                                           ("--warmup", "-1")])
def test_bench_counts_are_checked_before_measuring(option, value, capsys, monkeypatch):
    _refuse_to_start(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(["bench", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}:" in error_line(capsys)


# ---- saved graphs: numbers too large are one line naming the file's line --------------------
# An integer constant out of its dtype's range raised OverflowError from np.array (a
# traceback, exit 1), and an integer of more than 4,300 digits Python's ValueError ("Exceeds
# the limit ... use sys.set_int_max_str_digits()"), which named neither the line nor the file.
BIG = "9" * 5000


@pytest.mark.parametrize("line, where", [
    ("  %1:i32[1] = constant 99999999999999999999", "IR line 2"),
    ("  %1:i64[2] = constant [1, -99999999999999999999]", "IR line 2"),
    (f"  %1:i32[1] = constant {BIG}", "IR line 2"),
    (f"  %1:f32[1] = constant {BIG}", "IR line 2"),
])
def test_ir_text_numbers_out_of_range(line, where, tmp_path, capsys):
    path = tmp_path / "g.ir"
    path.write_text(f"graph f() -> (%1)\n{line}\n  return %1\n")
    assert main(["dump", str(path)]) == 2
    message = error_line(capsys)
    assert where in message and "Traceback" not in message


def test_ir_text_attribute_with_too_many_digits(tmp_path, capsys):
    path = tmp_path / "g.ir"
    path.write_text(f"graph f(%0:f32[4] x) -> (%1)\n  %1:f32[4] = mul %0, %0 {{foo={BIG}}}\n"
                    "  return %1\n")
    assert main(["dump", str(path)]) == 2
    assert "IR line 2" in error_line(capsys)


def _constant_json(value):
    """A saved graph whose one int32 constant holds `value` (JSON text)."""
    from ir.graph import Graph
    from ir.serialize import dumps
    from ir.types import TensorType
    g = Graph("f")
    c = g.add_node("constant", [], {"value": np.array([1], np.int32)},
                   TensorType((1,), np.int32))
    g.set_outputs([c])
    return dumps(g).replace('"array": [\n      1\n     ]', f'"array": [{value}]')


@pytest.mark.parametrize("value", ["99999999999999999999", BIG])
def test_ir_json_numbers_out_of_range(value, tmp_path, capsys):
    text = _constant_json(value)
    assert f"[{value}]" in text
    path = tmp_path / "g.json"
    path.write_text(text)
    assert main(["dump", str(path)]) == 2
    assert error_line(capsys).startswith(f"graphc: error: dump: {path}: IR JSON: ")


def test_non_utf8_ir_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "g.ir"
    path.write_bytes(b"\xff\xfe graph")
    assert main(["dump", str(path)]) == 2
    line = error_line(capsys)
    assert str(path) in line and "UTF-8" in line


# ---- a GPT-2 directory's config.json --------------------------------------------------------
# json.load recursed once per level: a config.json of 100,000 nested arrays was a
# RecursionError traceback (checkpoint headers and IR JSON bound their nesting; this file did
# not), and an integer of more than 4,300 digits was Python's ValueError without the file.
@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"n_embd": ' + BIG + "}"])
def test_gpt2_config_json_hostile_text_is_one_line(text, tmp_path, capsys):
    (tmp_path / "config.json").write_text(text)
    assert main(["sample", "--model", str(tmp_path)]) == 2
    assert str(tmp_path / "config.json") in error_line(capsys)


# ---- a batch larger than memory is refused before it is drawn -------------------------------
# The trainer draws its first batch (int64 ids and targets, and their offsets) before the
# step's plan and its memory check exist: --batch-size 1000000000 at block 8 asks numpy for
# 64 GB of offsets, a MemoryError traceback (or the OOM killer), not the one line naming
# --batch-size that the plan's check gives for smaller batches.
def test_a_batch_larger_than_memory_is_refused_before_it_is_drawn(tmp_path, capsys,
                                                                   monkeypatch):
    import runtime.memory
    from graphc.data import CharData
    from test_cli import FAST

    def drawn(*args, **kwargs):
        raise AssertionError("the batch was drawn")
    monkeypatch.setattr(CharData, "batch", drawn)
    monkeypatch.setattr(runtime.memory, "available_bytes", lambda: 1 << 30)
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 20, encoding="utf-8")
    assert main(["train", *FAST, "--data", str(text), "--out", str(tmp_path / "run"),
                 "--batch-size", "1000000000"]) == 2
    line = error_line(capsys)
    assert "needs 298.0 GiB to draw, but only 1023.9 MiB of memory is available" in line
    assert "lower --batch-size (1000000000) or --block-size (8)" in line
    assert not (tmp_path / "run").exists()


# ---- saved graphs: an integer constant with a fraction ------------------------------------------
# numpy truncated it silently (i32 1.5 -> 1: a graph that computes something else than its
# file says); refused as the review's lead suggested. Whole floats (2.0) are exact and stay.
def test_ir_text_integer_constant_with_a_fraction(tmp_path, capsys):
    path = tmp_path / "g.ir"
    path.write_text("graph f() -> (%1)\n  %1:i32[2] = constant [2.0, 1.5]\n  return %1\n")
    assert main(["dump", str(path)]) == 2
    line = error_line(capsys)
    assert "IR line 2, column 30" in line
    assert "value 1.5 is not a whole number, which int32 holds" in line
    path.write_text("graph f() -> (%1)\n  %1:i32[2] = constant [2.0, 1]\n  return %1\n")
    assert main(["dump", str(path)]) == 0
    assert "[2, 1]" in capsys.readouterr().out


def test_ir_json_integer_constant_with_a_fraction(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(_constant_json("1.5"))
    assert main(["dump", str(path)]) == 2
    line = error_line(capsys)
    assert line.startswith(f"graphc: error: dump: {path}: IR JSON: ")
    assert "value 1.5 is not a whole number, which int32 holds" in line
