"""What graphc writes as IR it reads back: non-finite and signed-zero constants survive the
JSON and text forms in float16/32/64 (`graphc dump --format json`, `--full`), and a graph
nested deeper than a reader takes (the tracer has no bound of its own) is refused by the
writer in one line, not written for the reader to refuse."""
import numpy as np
import pytest

import graphc as gc
from graphc.cli import main
from ir.errors import GraphcError
from ir.graph import Graph
from ir.parser import MAX_NESTING, parse, region_nesting
from ir.printer import format_graph
from ir.serialize import MAX_NESTING as JSON_NESTING, dumps, loads

SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0, -np.nan, 1.5]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nan_inf_and_negative_zero_constants_round_trip(dtype):
    value = np.array(SPECIALS, dtype)
    graph = Graph("c")
    with graph.building():
        graph.set_outputs([graph.constant(value)])
    for back in (loads(dumps(graph)), parse(format_graph(graph, max_inline=None))):
        (node,) = [n for n in back.nodes if n.op == "constant"]
        got = node.attrs["value"]
        assert got.dtype == np.dtype(dtype)
        # bit for bit: NaN's sign and -0.0's too (NaN payload bits beyond the sign are not
        # kept: the forms write nan / -nan)
        assert np.array_equal(got.view(np.uint8), value.view(np.uint8))
        assert list(np.signbit(got)) == [False, False, True, True, False, True, False]


def test_specials_through_graphc_dump(tmp_path, capsys):
    module = tmp_path / "specials.py"
    module.write_text(
        "import numpy as np\nimport graphc as gc\n"
        "V = [np.nan, np.inf, -np.inf, -0.0, 0.0, -np.nan, 1.5]\n"
        "def g(x):\n"
        "    return (x * np.array(V, 'float32'), gc.cast(x, 'float16') + np.array(V, "
        "'float16'), gc.cast(x, 'float64') - np.array(V, 'float64'))\n"
        "def f():\n    return g, gc.spec((7,))\n")
    for fmt, suffix in ((["--format", "json"], "json"), (["--full"], "ir")):
        first, second = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
        assert main(["dump", f"{module}:f", "-O0", *fmt, "-o", str(first)]) == 0
        assert main(["dump", str(first), "-O0", *fmt, "-o", str(second)]) == 0
        assert first.read_text() == second.read_text()
    text = (tmp_path / "a.ir").read_text()
    assert text.count("constant [nan, inf, -inf, -0.0, 0.0, -nan, 1.5]") == 3


def _nested_scans(levels):
    def f(x):
        if levels == 0:
            return x + 1.0
        return gc.scan(lambda c, _: (_nested_scans(levels - 1)(c), c), x, None, length=1)[0]
    return f


def test_json_writer_refuses_what_its_reader_would():
    fits = gc.trace(_nested_scans(37), gc.spec((3,)))
    assert region_nesting(fits) == 37
    assert len(loads(dumps(fits)).nodes) == len(fits.nodes)
    deep = gc.trace(_nested_scans(45), gc.spec((3,)))  # (the tracer builds it)
    with pytest.raises(GraphcError, match=rf"^IR JSON: cannot write graph 'f': its control-"
                       rf"flow regions nest 45 levels deep .* more than the {JSON_NESTING} "
                       "the reader takes") as info:
        dumps(deep)
    assert len(info.value.message.splitlines()) == 1


def test_full_text_dump_refuses_what_its_reader_would(tmp_path, capsys):
    module = tmp_path / "deep.py"
    module.write_text("import graphc as gc\n"
                      "def ns(k):\n"
                      "    def f(x):\n"
                      "        if k == 0:\n            return x + 1.0\n"
                      "        return gc.scan(lambda c, _: (ns(k - 1)(c), c), x, None, "
                      "length=1)[0]\n    return f\n"
                      f"def fits():\n    return ns({MAX_NESTING}), gc.spec((3,))\n"
                      f"def deep():\n    return ns({MAX_NESTING + 1}), gc.spec((3,))\n")
    out = tmp_path / "fits.ir"
    assert main(["dump", f"{module}:fits", "-O0", "--full", "-o", str(out)]) == 0
    assert main(["dump", str(out), "-O0", "--stats"]) == 0
    capsys.readouterr()
    assert main(["dump", f"{module}:deep", "-O0", "--full"]) == 2
    err = capsys.readouterr().err
    assert f"regions nest {MAX_NESTING + 1} levels deep" in err and "--format json" in err
    assert main(["dump", f"{module}:deep", "-O0"]) == 0  # (printed for reading)
