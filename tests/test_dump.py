"""`graphc dump` and the IR's text/JSON forms: round trips, golden output, pictures, fuzzing."""
import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.cli import main
from ir.parser import parse
from ir.printer import format_graph
from ir.serialize import dumps, from_json, loads, to_json
from ir.types import DTYPES, Dim, finfo
from passes.autodiff import grad_graph
from passes.manager import optimize

from opcases import CASES
from randgraph import random_graph, with_gradient


def _text(g):
    return format_graph(g, locations=True, max_inline=None)


def _op_graphs():
    for case in CASES:
        rng = np.random.default_rng(0)
        xs = [mk(rng) for mk in case.inputs]
        g = gc.trace(case.fn, *xs)
        yield case.name, g
        if case.grad:
            summed = gc.trace(lambda *a: gc.sum(case.fn(*a)), *xs)
            yield case.name + "_grad", grad_graph(summed)


@pytest.mark.parametrize("name, graph", list(_op_graphs()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_text_and_json_round_trip_on_every_op_graph(name, graph):
    text = _text(graph)
    assert _text(parse(text)) == text
    doc = to_json(graph)
    assert to_json(from_json(json.loads(json.dumps(doc)))) == doc


def test_round_trips_on_random_graphs():
    for seed in range(300):
        graph, _ = random_graph(seed)
        for g in (graph, optimize(with_gradient(graph))):
            text = _text(g)
            assert _text(parse(text)) == text, seed
            assert to_json(loads(dumps(g))) == to_json(g), seed


def test_parsed_graph_computes_the_same_values():
    graph, inputs = random_graph(7)
    g2 = parse(_text(graph))
    for a, b in zip(gc.compile(lambda *a: a)(*inputs), inputs):
        np.testing.assert_array_equal(a, b)
    from runtime.interpreter import run
    for a, b in zip(run(graph, *inputs), run(g2, *inputs)):
        np.testing.assert_array_equal(a, b)


def golden_mlp(x, y, w1, b1, w2, b2):
    return gc.cross_entropy(gc.relu(x @ w1 + b1) @ w2 + b2, y)


def test_golden_mlp_gradient_after_default_pipeline():
    g = gc.trace(golden_mlp, gc.spec((4, 3)), gc.spec((4,), "int64"), gc.spec((3, 5)),
                 gc.spec(5), gc.spec((5, 2)), gc.spec(2))
    text = format_graph(optimize(grad_graph(g, wrt=["w1", "b1", "w2", "b2"])))
    assert text == GOLDEN


GOLDEN = """\
graph golden_mlp_grad(%0:f32[4,3] x, %1:i64[4] y, %2:f32[3,5] w1, %3:f32[5] b1, %4:f32[5,2] w2, %5:f32[2] b2) -> (%34, %54, %52, %49, %45)
  %6:f32[4,5] = matmul %0, %2
  %7:f32[4,5] = add %6, %3
  %8:f32[4,5] = relu %7
  %9:f32[4,2] = matmul %8, %4
  %10:f32[4,2] = add %9, %5
  %11:f32[4,2] = log_softmax %10 {axis=1}
  %12:i64[] = constant -100
  %13:bool[4] = ne %1, %12
  %14:bool[4,2] = one_hot %1 {depth=2, dtype=bool}
  %15:f32[] = constant 0.0
  %16:f32[4,2] = where %14, %11, %15
  %17:f32[4] = sum %16 {axes=(1,), keepdims=false}
  %18:i64[] = constant 0
  %19:bool[4] = lt %1, %18
  %20:i64[] = constant 2
  %21:bool[4] = ge %1, %20
  %22:bool[4] = logical_or %19, %21
  %23:bool[4] = logical_and %22, %13
  %24:f32[4] = cast %13 {dtype=f32}
  %25:f32[] = sum %17 {axes=(0,), keepdims=false}
  %26:f32[] = neg %25
  %27:f32[] = sum %24 {axes=(0,), keepdims=false}
  %28:f32[] = div %26, %27
  %29:i64[4] = cast %23 {dtype=i64}
  %30:i64[] = sum %29 {axes=(0,), keepdims=false}
  %31:bool[] = gt %30, %18
  %32:f32[] = constant nan
  %33:f32[] = where %31, %32, %15
  %34:f32[] = add %28, %33
  %35:f32[] = constant 1.0
  %36:f32[] = div %35, %27
  %37:f32[] = neg %36
  %38:f32[1,1] = reshape %37 {shape=(1, 1)}
  %39:f32[4,2] = broadcast_to %38 {shape=(4, 2)}
  %40:f32[4,2] = where %14, %39, %15
  %41:f32[4,2] = exp %11
  %42:f32[4,1] = sum %40 {axes=(1,), keepdims=true}
  %43:f32[4,2] = mul %41, %42
  %44:f32[4,2] = sub %40, %43
  %45:f32[2] = sum %44 {axes=(0,), keepdims=false}
  %46:f32[2,5] = transpose %4 {perm=(1, 0)}
  %47:f32[4,5] = matmul %44, %46
  %48:f32[5,4] = transpose %8 {perm=(1, 0)}
  %49:f32[5,2] = matmul %48, %44
  %50:bool[4,5] = le %7, %15
  %51:f32[4,5] = where %50, %15, %47
  %52:f32[5] = sum %51 {axes=(0,), keepdims=false}
  %53:f32[3,4] = transpose %0 {perm=(1, 0)}
  %54:f32[3,5] = matmul %53, %51
  return %34, %54, %52, %49, %45"""


# ---- malformed input: always a clean error --------------------------------------------------
_VALID = _text(optimize(grad_graph(gc.trace(golden_mlp, gc.spec((4, 3)), gc.spec((4,), "int64"),
                                            gc.spec((3, 5)), gc.spec(5), gc.spec((5, 2)),
                                            gc.spec(2)), wrt=["w1", "b2"])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_ir_text_gives_a_clean_error(data):
    text = _VALID
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace", "swap_lines"]))
        if action == "delete":
            text = text[:pos] + text[pos + data.draw(st.integers(1, 8)):]
        elif action == "insert":
            text = text[:pos] + data.draw(st.text(min_size=1, max_size=6)) + text[pos:]
        elif action == "replace":
            text = text[:pos] + data.draw(st.sampled_from(
                ["%99", "f64", "[", "]", "{", "}", "(", ",", "=", "-", "9", "x", "#"])) + \
                text[pos + 1:]
        else:
            lines = text.splitlines()
            i, j = sorted(data.draw(st.lists(st.integers(0, len(lines) - 1), min_size=2,
                                             max_size=2)))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    try:
        parse(text)
    except gc.GraphcError as exc:
        assert str(exc).startswith("IR")


_JSON_DOC = to_json(parse(_VALID))
_ANY = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats() |
                    st.text(max_size=5), lambda c: st.lists(c, max_size=3) |
                    st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = list(_paths(_JSON_DOC))[1:]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzzed_ir_json_gives_a_clean_error(data):
    doc = json.loads(json.dumps(_JSON_DOC))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_ALL_PATHS))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            if data.draw(st.booleans()) and isinstance(target, dict):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = data.draw(_ANY)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        from_json(doc)
    except gc.GraphcError as exc:
        assert str(exc).startswith("IR JSON")


def test_malformed_json_text_names_line_and_column():
    with pytest.raises(gc.GraphcError, match="line 1, column"):
        loads("{not json")


# ---- the command ----------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed "
                    "(make setup installs it with apt-get)")
def test_dump_gpt_grad_svg_and_png(tmp_path):
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert main(["dump", "gpt", "--config", "tiny", "--grad", "--format", "svg",
                 "-o", str(svg)]) == 0
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert main(["dump", "gpt", "--config", "tiny", "--grad", "--format", "png", "--collapse",
                 "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dump_formats_and_stages(tmp_path, capsys):
    assert main(["dump", "mlp", "--grad", "-O0"]) == 0
    traced = capsys.readouterr().out
    assert main(["dump", "mlp", "--grad"]) == 0
    optimised = capsys.readouterr().out
    assert traced.startswith("graph mlp_loss_grad(") and len(optimised) < len(traced)
    assert main(["dump", "mlp", "--grad", "--after", "cse"]) == 0
    assert capsys.readouterr().out.startswith("graph")
    assert main(["dump", "mlp", "--format", "json", "-o", str(tmp_path / "m.json")]) == 0
    assert main(["dump", str(tmp_path / "m.json"), "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph mlp_loss {")
    assert main(["dump", "mlp", "--grad", "--stats"]) == 0
    stats = capsys.readouterr().out
    assert "parameters" in stats and "FLOPs" in stats and "peak intermediate memory" in stats
    assert "simplify" in stats and "matmul" in stats
    assert main(["dump", "mlp", "--grad", "--diff", "input", "simplify"]) == 0
    assert capsys.readouterr().out.startswith("--- after input\n+++ after simplify")


def test_dump_diff_keeps_each_line_its_own(capsys):
    """The README's `graphc dump mlp --grad --diff input simplify`: the graphs' last line
    (`return ...`) had no newline, so the diff printed it glued to its next line
    (`-  return %38, ...+  %44:f32[1,1] = reshape ...`)."""
    assert main(["dump", "mlp", "--grad", "--diff", "input", "simplify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["--- after input", "+++ after simplify"]
    returns = [line for line in lines if "return" in line]
    assert [line[:9] for line in returns] == ["-  return", "+  return"], returns
    assert all(re.fullmatch(r"[-+]  return %\d+(, %\d+)*", line) for line in returns), returns
    assert all(line[:1] in " -+@" for line in lines[2:]), lines


def test_dump_user_function_and_saved_ir(tmp_path, capsys):
    src = tmp_path / "model.py"
    src.write_text("import graphc as gc\n\n"
                   "def build():\n"
                   "    return (lambda x: gc.exp(x) * 2.0, gc.spec((3,)))\n")
    assert main(["dump", f"{src}:build", "--locations"]) == 0
    out = capsys.readouterr().out
    assert "exp" in out and "model.py:4" in out
    ir_file = tmp_path / "g.ir"
    ir_file.write_text(out)
    assert main(["dump", str(ir_file), "--grad", "-O0"]) == 0
    assert "cos" not in capsys.readouterr().out
    bad = tmp_path / "bad.ir"
    bad.write_text("graph g(%0:f32[2] x) -> (%1)\n  %1:f32[2] = frobnicate %0\n  return %1\n")
    assert main(["dump", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"graphc: error: dump: {bad}: IR line 2, column 15: unknown op "
                          "'frobnicate'")


def test_a_summarised_constant_names_the_dump_option_that_prints_it_in_full(tmp_path, capsys):
    """Text dumped without --full holds a constant of more than 16 elements as a summary,
    which does not read back; `graphc dump` of that file said 'print with max_inline=None',
    a parameter of the printer the command's user never sees. It names --full now (the
    parser's own line, for format_graph's callers, still names max_inline); dumped with
    --full, the file reads back with the constant's values."""
    src = tmp_path / "model.py"
    src.write_text("import numpy as np\nimport graphc as gc\n\n\ndef build():\n"
                   "    w = np.arange(40.0, dtype=np.float32)\n"
                   "    return (lambda x: x + w), gc.spec(40)\n")
    short, full = tmp_path / "short.ir", tmp_path / "full.ir"
    assert main(["dump", f"{src}:build", "-O0", "-o", str(short)]) == 0
    assert main(["dump", str(short)]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: dump: {short}: IR line 2, column 25: this constant was printed as "
        "a summary, without its values; dump the graph again with --full (or --format json) "
        "to read it back\n")
    with pytest.raises(gc.GraphcError, match=r"^IR line 2, column 25: this constant was "
                       r"printed as a summary, without its values; print it with "
                       r"max_inline=None \(or use the JSON form\) to parse it$"):
        parse(short.read_text())
    assert main(["dump", f"{src}:build", "-O0", "--full", "-o", str(full)]) == 0
    (constant,) = [n for n in parse(full.read_text()).nodes if n.op == "constant"]
    np.testing.assert_array_equal(constant.attrs["value"], np.arange(40.0, dtype=np.float32))


def test_image_formats_without_graphviz_say_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["dump", "mlp", "--format", "png", "-o", str(tmp_path / "x.png")]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert main(["dump", "mlp", "--format", "dot"]) == 0


def test_two_inputs_of_one_name_are_an_ir_error():
    """Found by the fuzzer above (one character replaced): the graph's own error, which did
    not name the IR line."""
    text = _VALID.replace("%1:i64[4] y", "%1:i64[4] x", 1)
    with pytest.raises(gc.GraphcError, match=r"^IR line 1, column \d+: two inputs are named 'x'"):
        parse(text)


def test_names_with_spaces_are_quoted_and_parse_back(tmp_path, capsys):
    """gc.switch names its regions `branch 1 <lambda>_false`, a dict key gives an input
    `p.a b`: the printer wrote them bare and the parser stopped at the space."""
    from runtime.interpreter import run

    def f(i, x):
        return gc.switch(i, [lambda a: a, lambda a: a * 3.0, lambda a: a - 1.0], x)

    g = gc.trace(f, gc.spec((), "int32"), gc.spec((3,)))
    text = _text(g)
    assert 'graph "branch 1 <lambda>_true"(%0:f32[3] a0_0) -> (%2)' in text
    assert _text(parse(text)) == text
    x = np.array([1.0, -2.0, 0.5], np.float32)
    for i in range(3):
        want = (x, x * 3.0, x - 1.0)[i]
        for graph in (g, parse(text)):
            np.testing.assert_array_equal(run(graph, np.int32(i), x)[0], want)
    g = gc.trace(lambda p, x: p["a b"] * p['q"(,)'] * x,
                 {"a b": gc.spec((3,)), 'q"(,)': gc.spec((3,))}, gc.spec((3,)))
    text = _text(g)
    assert text.startswith(r'graph lambda(%0:f32[3] "p.a b", %1:f32[3] "p.q\"(,)", '
                           r'%2:f32[3] x)')
    back = parse(text)
    assert [n.attrs["name"] for n in back.inputs] == ["p.a b", 'p.q"(,)', "x"]
    assert _text(back) == text
    doc = to_json(g)
    doc["name"], doc["inputs"][2]["kind"] = "my model", "param"
    text = _text(from_json(doc))
    assert text.startswith('graph "my model"(') and "%2:f32[3] param x)" in text
    assert _text(parse(text)) == text
    # graphc dump reads back its own output
    src = tmp_path / "sw.py"
    src.write_text("import graphc as gc\n\ndef build():\n    return (lambda i, x: gc.switch("
                   "i, [lambda a: a, lambda a: a * 3], x)), gc.spec((), 'int32'), "
                   "gc.spec((3,))\n")
    assert main(["dump", f"{src}:build", "-o", str(tmp_path / "sw.ir")]) == 0
    capsys.readouterr()
    assert main(["dump", str(tmp_path / "sw.ir")]) == 0
    assert '"branch 0 <lambda>_true"' in capsys.readouterr().out


@pytest.mark.parametrize("fn", [
    lambda x, a: gc.sum(x, axis=a), lambda x, a: gc.mean(x, axis=(0, a)),
    lambda x, a: gc.max(x, axis=a), lambda x, a: gc.std(x, axis=a),
    lambda x, a: gc.softmax(x, axis=a), lambda x, a: gc.log_softmax(x, axis=a),
    lambda x, a: gc.argsort(x, axis=a), lambda x, a: gc.sort(x, axis=a),
    lambda x, a: gc.stack([x, x], axis=a), lambda x, a: gc.concatenate([x, x], axis=a),
    lambda x, a: gc.cumsum(x, axis=a), lambda x, a: gc.transpose(x, (a, 0)),
    lambda x, a: gc.roll(x, 1, axis=a), lambda x, a: gc.normalize(x, dim=a),
    lambda x, a: gc.dynamic_slice(x, 1, 2, axis=a), lambda x, a: x.sum(dim=a),
    lambda x, a: gc.dynamic_update_slice(x, x[:, :2], 1, axis=a)])
def test_a_numpy_integer_axis_gives_the_ir_of_a_python_int(fn):
    """axis=np.int64(1) was stored as the numpy scalar: printed `np.int64(1)`, which does not
    parse, and refused by the JSON encoder with a TypeError."""
    want = gc.trace(lambda x: fn(x, 1), gc.spec((3, 4)))
    g = gc.trace(lambda x: fn(x, np.int64(1)), gc.spec((3, 4)))
    assert _text(g) == _text(want) and dumps(g) == dumps(want)
    assert _text(parse(_text(g))) == _text(g)


def test_dynamic_slice_axis_is_checked_and_an_unencodable_attribute_is_one_line():
    x = np.arange(12.0).reshape(3, 4)
    with pytest.raises(gc.GraphcError, match="axis 5 is out of range for a 2-d value"):
        gc.dynamic_slice(x, 1, 2, axis=5)  # was taken as axis 1
    with pytest.raises(gc.GraphcError, match="axis must be an int, got 1.5"):
        gc.dynamic_update_slice(x, x[:, :2], 1, axis=1.5)
    g = gc.trace(lambda x: gc.cumsum(x, axis=0), gc.spec((3,)))
    g.nodes[-1].attrs["axis"] = np.int64(0)  # (a hand-built node: the API stores an int)
    with pytest.raises(gc.GraphcError, match=r"^IR JSON: %1 \(cumsum\), attribute axis: "
                                             r"cannot encode the value np.int64\(0\)"):
        dumps(g)


@pytest.mark.parametrize("line, message", [
    ("%1:f32[3] = cumsum %0 {axis=0.5, reverse=false}",
     "cumsum: attribute axis=0.5 must be an int"),
    ("%1:f32[3] = sum %0 {axes=(true,), keepdims=false}",
     "sum: attribute axes=(true,) must be a tuple of distinct ints"),
    ("%1:f32[3] = sum %0 {axes=(0,), keepdims=()}",
     "sum: attribute keepdims=() must be true or false"),
    ("%1:f32[3] = sum %0 {axes=(0, 0), keepdims=false}",
     "sum: attribute axes=(0, 0) must be a tuple of distinct ints"),
    ("%1:f32[2,2] = transpose %0 {perm=(1.0, 0.0)}",
     "transpose: attribute perm=(1.0, 0.0) must be a tuple of ints"),
    ("%1:f32[2] = full {shape=(2,), value=(), dtype=f32}",
     "full: attribute value=() must be a number or a symbolic dimension")])
def test_a_wrongly_typed_attribute_is_one_line_naming_file_and_line(tmp_path, capsys, line,
                                                                   message):
    """The type rules check ranges but trust the kinds the API makes (`0 <= 0.5 < 1`), so
    these parsed and verified, then the fold pass ran numpy on them: a traceback."""
    text = (f"graph g() -> (%1)\n  %0:f32[2,2] = constant [1.0, 2.0, 3.0, 4.0]\n  {line}\n"
            "  return %1\n")
    column = 3 + line.index(message.split()[2].split("=")[0] + "=")  # the attribute's own
    bad = tmp_path / "bad.ir"
    bad.write_text(text)
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: dump: {bad}: IR line 3, column "
                                       f"{column}: {message}\n")


def test_a_wrongly_typed_attribute_in_json_or_a_built_graph_is_refused():
    g = gc.trace(lambda x: gc.sum(x, axis=0), gc.spec((2, 2)))
    doc = to_json(g)
    doc["nodes"][0]["attrs"]["axes"] = {"tuple": [{"array": [0], "shape": [1],
                                                   "dtype": "i64"}]}
    with pytest.raises(gc.GraphcError, match=r"^IR JSON: \$.nodes\[0\].attrs.axes: sum: "
                                             r"attribute axes=\(array\(\[0\]\),\) must be"):
        from_json(doc)  # (cse then hashed the array: a TypeError)
    from ir.verify import verify
    g.nodes[-1].attrs["keepdims"] = 0
    with pytest.raises(gc.GraphcError, match=r"node 1 \(sum\): sum: attribute keepdims=0 "
                                             "must be true or false"):
        verify(g)


_SCAN_IR = """graph f(%0:f32[2,3] c0, %1:f32[6,2,3] xs) -> (%3)
  %2:(f32[2,3]) = scan %0, %1 {body={
    graph step_body(%0:f32[2,3] a0_0, %1:f32[2,3] a1_0) -> (%3)
      %2:f32[2,3] = add %0, %1
      %3:f32[2,3] = tanh %2
      return %3
  }, consts=0, carries=1, length=6, reverse=false}
  %3:f32[2,3] = tuple_get %2 {index=0}
  return %3"""


@pytest.mark.parametrize("old, new, column, there, message", [
    ("length=6", 'length="x"', 27, "length=",
     'scan: attribute length="x" must be an int or a symbolic dimension'),
    ("reverse=false", "reverse=3", 37, "reverse=",
     "scan: attribute reverse=3 must be true or false"),
    ("consts=0", "consts=@", 13, "@", "expected a value, found '@, carries=1'"),
    ("reverse=false}", "reverse=false} junk", 52, "junk", "unexpected text, found 'junk'")])
def test_an_attribute_after_a_region_is_named_at_its_own_line_and_column(
        tmp_path, capsys, old, new, column, there, message):
    """The attributes after a region's closing '}' are on that line (7), but an error in one
    was reported at the node's first line (2), with a column counted from after the '}'."""
    text = _SCAN_IR.replace(old, new)
    assert text.splitlines()[6][column - 1:].startswith(there)  # (the column, counted by hand)
    bad = tmp_path / "after_region.ir"
    bad.write_text(text)
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: dump: {bad}: IR line 7, column "
                                       f"{column}: {message}\n")
    # an op's own problem (its type rule) is still named at its first line
    with pytest.raises(gc.GraphcError, match=r"^IR line 2, column 19: ill-typed scan: "):
        parse(_SCAN_IR.replace("length=6", "length=5"))


_COND_IR = """graph f(%0:bool[] p, %1:f32[3] x) -> (%3)
  %2:(f32[3]) = cond %0, %1 {branches=({
    graph no(%0:f32[3] a) -> (%1)
      %1:f32[3] = cos %0
      return %1
  }, {
    graph yes(%0:f32[3] a) -> (%1)
      %1:f32[3] = sin %0
      return %1
  })}  # c.py:9
  %3:f32[3] = tuple_get %2 {index=0}
  return %3"""


_PLAIN_IR = ("graph g(%0:f32[2,3] x) -> (%1)\n  %2:f32[2] = constant [1.0, 2.0]  # a.py:3\n"
             "  %1:f32[3] = sum %0 {axes=(0,), keepdims=false}  # a.py:4, b.py:5\n"
             "  return %1")


@pytest.mark.parametrize("text, line", [
    (_PLAIN_IR.replace("b.py:5", "b.py:x"), 3), (_PLAIN_IR.replace("a.py:3", "a.py:x"), 2),
    (_SCAN_IR.replace("reverse=false}", "reverse=false}  # s.py:x"), 7),
    (_SCAN_IR.replace("%1\n      %3", "%1  # s.py:x\n      %3"), 4),
    # a region node's lines before its last: the closing line's comment took their place,
    # read_region dropping a malformed one silently
    (_SCAN_IR.replace("{body={", "{body={  # s.py:x"), 2),
    (_COND_IR.replace("{branches=({", "{branches=({  # s.py:x"), 2),
    (_COND_IR.replace("}, {", "}, {  # s.py:x"), 6)])
def test_a_bad_location_is_named_at_its_column_in_the_line(text, line):
    """A location comment was read on its own, so its columns counted from after the '#':
    'IR line 3, column 2' for a line whose 'b.py:x' is at column 58."""
    assert parse(_PLAIN_IR).nodes[-1].locs == (("a.py", 4), ("b.py", 5))
    column = text.splitlines()[line - 1].index(".py:x")  # (its 1-letter file name's, 1-based)
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value).startswith(f"IR line {line}, column {column}: expected a location "
                                      "file:line, found ")


@pytest.mark.parametrize("old, new, line", [
    ("{branches=({", "{branches=({  # c.py:2", 2), ("}, {", "}, {  # c.py:6", 6)])
def test_a_location_before_a_region_nodes_last_line_is_refused_at_its_column(old, new, line):
    """A good location there was dropped as silently as a bad one: the node's locations are
    its last line's (the printer's place for them)."""
    assert parse(_COND_IR).nodes[2].locs == (("c.py", 9),)
    text = _COND_IR.replace(old, new)
    column = text.splitlines()[line - 1].index("c.py:") + 1
    with pytest.raises(gc.GraphcError, match=rf"^IR line {line}, column {column}: a location "
                                             r"comment goes on a node's last line, after its "
                                             r"regions$"):
        parse(text)
    # an empty '#' there holds no location, as on a plain node line (review r11)
    assert parse(_COND_IR.replace(old, old + "  #")).nodes[2].locs == (("c.py", 9),)
    assert parse(_PLAIN_IR.replace("# a.py:4, b.py:5", "#")).nodes[-1].locs == ()


@pytest.mark.parametrize("text, old, line", [
    (_PLAIN_IR, "  return %1", 4), (_SCAN_IR, "      return %3", 6),  # (a region's: its own)
    (_SCAN_IR, "\n  return %3", 9)])
def test_a_location_on_a_return_line_is_checked_and_refused_at_its_column(text, old, line):
    """A location comment on a 'return' line was dropped unread: `return %1  # a.py:x`
    parsed, where any node line's bad location is refused. The printer writes none there
    (no node holds it), so a good one is refused as out of place, a bad one as bad, at its
    column, as on a region node's lines before its last; an empty '#' holds no location."""
    for comment, message in (("a.py:x", "expected a location file:line, found 'a.py:x'"),
                             ("a.py:3, b.py:4", "a 'return' line holds no location comment")):
        bad = text.replace(old, f"{old}  # {comment}")
        column = bad.splitlines()[line - 1].index("a.py") + 1
        with pytest.raises(gc.GraphcError) as info:
            parse(bad)
        assert str(info.value) == f"IR line {line}, column {column}: {message}"
    back = parse(text.replace(old, f"{old}  #"))
    assert format_graph(back, max_inline=None) == format_graph(parse(text), max_inline=None)

@pytest.mark.parametrize("old, new, message", [
    ("keepdims=false}", "keepdims=false, axes=(1,)}",
     "IR line 3, column 50: sum: attribute axes is given twice (first at line 3, column 23)"),
    ("keepdims=false}", "keepdims=false, keepdims=true}",
     "IR line 3, column 50: sum: attribute keepdims is given twice (first at line 3, column 34)"),
    ("length=6,", "length=6, body=2,", "IR line 7, column 37: scan: attribute body is given "
                                       "twice (first at line 2, column 32)")])
def test_a_repeated_attribute_is_refused_at_its_second_name(old, new, message):
    """A node's attributes went into a dict, so `sum {axes=(0,), axes=(1,)}` kept the last:
    it parsed as a sum over axis 1 (or, with a type to fit, into a graph unlike its text)."""
    text = (_SCAN_IR if "length" in old else _PLAIN_IR).replace(old, new)
    line, column = (int(n) for n in re.match(r"IR line (\d+), column (\d+)", message).groups())
    assert text.splitlines()[line - 1][column - 1:].startswith(message.split()[7] + "=")
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == message


@pytest.mark.parametrize("old, new, key", [
    ('"keepdims": false', '"keepdims": true,\n    "keepdims": false', "keepdims"),
    ('"op": "sum",', '"op": "max",\n   "op": "sum",', "op"),
    ('"attrs": {', '"attrs": {"axes": {"tuple": [1]}},\n   "attrs": {', "attrs")])
def test_the_json_reader_refuses_a_repeated_key(old, new, key, tmp_path, capsys):
    """Session 41: json.loads keeps the last of a repeated key, so a node's repeated
    attribute (or "attrs", "op") loaded silently as its last value, where the text parser
    refuses an attribute given twice. Now one line names the key, from graphc dump too."""
    text = dumps(gc.trace(lambda x: gc.sum(x, axis=0), gc.spec((2, 3))))
    assert old in text and str(loads(text)).count("sum %0 {axes=(0,), keepdims=false}") == 1
    bad = text.replace(old, new, 1)
    assert json.loads(bad)  # (json itself takes it)
    with pytest.raises(gc.GraphcError) as info:
        loads(bad)
    assert str(info.value) == f"IR JSON: the key {key!r} is given twice in one object"
    path = tmp_path / "bad.json"
    path.write_text(bad)
    assert main(["dump", str(path)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: dump: {path}: IR JSON: the key "
                                       f"{key!r} is given twice in one object\n")


def test_an_unknown_or_missing_attribute_names_the_op_not_its_rules_function(tmp_path,
                                                                             capsys):
    """The text and JSON readers and the verifier let the type rule meet the attribute:
    "ill-typed sum: its attributes {...} do not fit it (_reduce_infer() got an unexpected
    keyword argument 'foo')", a private function's name; a missing one said "missing 1
    required positional argument"."""
    cases = [("keepdims=false}", "keepdims=false, foo=1}",
              "IR line 3, column 50: sum: unknown attribute foo (sum takes axes, keepdims)"),
             ("{axes=(0,), keepdims=false}", "{axes=(0,)}",
              "IR line 3, column 15: sum: missing attribute keepdims")]
    for old, new, message in cases:
        with pytest.raises(gc.GraphcError) as info:
            parse(_PLAIN_IR.replace(old, new))
        assert str(info.value) == message
    bad = tmp_path / "bad.ir"
    bad.write_text("graph g(%0:f32[3] x) -> (%1)\n  %1:f32[3] = tanh %0 {axis=0}\n  return %1\n")
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: dump: {bad}: IR line 2, column 24: "
                                       "tanh: unknown attribute axis (tanh takes no "
                                       "attributes)\n")
    # the JSON reader and the verifier ask the same check (ir.verify.check_node)
    g = gc.trace(lambda x: gc.sum(gc.tanh(x), axis=0), gc.spec((2, 3)))
    for index, change, message in [
            (1, {"axis": 0}, "$.nodes[1].attrs.axis: sum: unknown attribute axis (sum takes "
                             "axes, keepdims)"),
            (0, {"foo": 1}, "$.nodes[0].attrs.foo: tanh: unknown attribute foo (tanh takes no "
                            "attributes)")]:
        doc = to_json(g)
        doc["nodes"][index]["attrs"].update(change)
        with pytest.raises(gc.GraphcError) as info:
            from_json(doc)
        assert str(info.value) == f"IR JSON: {message}"
    doc = to_json(g)
    del doc["nodes"][1]["attrs"]["keepdims"]
    with pytest.raises(gc.GraphcError, match=r"^IR JSON: \$.nodes\[1\].attrs.keepdims: sum: "
                                             "missing attribute keepdims$"):
        from_json(doc)
    from ir.verify import verify
    g.nodes[-1].attrs["foo"] = 1
    with pytest.raises(gc.GraphcError, match=r"^node 2 \(sum\): sum: unknown attribute foo "
                                             r"\(sum takes axes, keepdims\)"):
        verify(g)


def test_errors_about_a_graphs_outputs_name_their_line(tmp_path, capsys):
    """These three named no line (and a region's missing return the wrong one)."""
    assert _text(parse(_SCAN_IR)) == _SCAN_IR
    cases = [
        (_SCAN_IR.replace("-> (%3)\n      %2", "-> (%2)\n      %2"),
         "IR line 6: the 'return' line differs from the outputs the signature on line 3 "
         "names (%2)"),
        (_SCAN_IR[:-len("%3")] + "%2",
         "IR line 9: the 'return' line differs from the outputs the signature on line 1 "
         "names (%3)"),
        (_SCAN_IR.replace("xs) -> (%3)", "xs) -> (%5)"),
         "IR line 1, column 47: the signature names output %5, which is not defined"),
        (_SCAN_IR.replace("      return %3\n", ""), "IR line 5: missing 'return' line")]
    for text, message in cases:
        with pytest.raises(gc.GraphcError) as info:
            parse(text)
        assert str(info.value) == message
    bad = tmp_path / "sig.ir"
    bad.write_text(cases[0][0])
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == f"graphc: error: dump: {bad}: {cases[0][1]}\n"


@pytest.mark.parametrize("old, new, message", [
    # a second return replaced the first: the graph returned %2, not the %3 the first said
    ("{index=0}\n  return %3", "{index=0}\n  return %2\n  return %3",
     "IR line 10, column 3: text after the 'return' line (line 9), which ends the graph"),
    ("{index=0}\n  return %3", "{index=0}\n  return %3\n  %4:f32[2,3] = neg %3",  # (was added to the graph)
     "IR line 10, column 3: text after the 'return' line (line 9), which ends the graph"),
    ("      return %3\n", "      return %3\n      return %2\n",  # (in a region: the last)
     "IR line 7, column 7: text after the 'return' line (line 6), which ends the graph"),
    ("xs) -> (%3)", "xs) -> (%3) (%2)",  # (the graph returned %3 alone)
     "IR line 1, column 51: unexpected text after the signature, found '(%2)'"),
    ("-> (%3)\n      %2", "-> (%3) %2\n      %2",
     "IR line 3, column 65: unexpected text after the signature, found '%2'")])
def test_text_after_a_signature_or_a_return_is_refused(old, new, message):
    """The parser read a signature up to its outputs' ')' and a graph up to its last
    'return' line, ignoring what came after the one and keeping the nodes after the other,
    so an edited graph ran with another output than the text's first return said."""
    text = _SCAN_IR.replace(old, new, 1)
    assert text != _SCAN_IR
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == message
    assert _text(parse(_SCAN_IR + "\n\n  \n")) == _SCAN_IR  # (blank lines after: none)


def test_a_collapsed_region_says_it_does_not_parse_back(tmp_path, capsys):
    """`graphc dump --collapse -o f.ir` then `graphc dump f.ir` said "a region's graph must
    start on the next line" of the `{ step_body: as printed above }` the printer wrote."""
    def rnn(h, xs, w):
        return gc.sum(gc.scan(lambda h, x: (gc.tanh(x + h @ w),) * 2, h, xs)[1])

    graph = grad_graph(gc.trace(rnn, gc.spec((2, 3)), gc.spec((6, 2, 3)), gc.spec((3, 3))))
    text = format_graph(graph, max_inline=None, collapse=set())
    line = next(i for i, t in enumerate(text.splitlines()) if "as printed above" in t)
    column = text.splitlines()[line].index("{ ") + 1
    saved = tmp_path / "collapsed.ir"
    saved.write_text(text)
    assert main(["dump", str(saved)]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: dump: {saved}: IR line {line + 1}, column {column}: a region printed "
        "as a reference to one above (graphc dump --collapse) does not parse back; dump "
        "without --collapse for text to read back, found '{ <lambda>_b'\n")
    assert _text(parse(_text(graph))) == _text(graph)  # (printed in full, it does)


def test_a_json_type_rule_error_is_one_line_naming_the_node(tmp_path, capsys):
    """The JSON reader wrote the type rule's GraphcError with its location, a line of
    graphc's own ('at <string>:5'), on a second line."""
    doc = to_json(gc.trace(lambda x: x + gc.arange(3, dtype="int32"), gc.spec((3,), "int32")))
    doc["nodes"][0]["attrs"]["stop"] = 2 ** 40
    with pytest.raises(gc.GraphcError) as info:
        from_json(doc)
    assert str(info.value) == ("IR JSON: $.nodes[0]: ill-typed arange: arange(0, 1099511627776, "
                               "1): value 1099511627775 does not fit in int32")
    bad = tmp_path / "bad.json"
    doc["nodes"][0]["attrs"].update(stop=3, dtype="x")  # the finder's case: a bad dtype
    bad.write_text(json.dumps(doc))
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: dump: {bad}: IR JSON: $.nodes[0].attrs.dtype: arange: attribute "
        'dtype="x" must be a dtype (f32, i64, bool, ...)\n')


_FULL_IR = "graph g() -> (%0)\n  %0:{t}[2] = full {{shape=(2,), value={v}, dtype={t}}}\n  return %0"


@pytest.mark.parametrize("value, dtype, message", [
    ("1.5", "i32", "fill value 1.5 is not a whole number, which int32 holds"),
    ("nan", "i64", "fill value nan does not fit in int64"),
    ("-inf", "i32", "fill value -inf does not fit in int32"),
    ("2147483648", "i32", "fill value 2147483648 does not fit in int32"),
    ("0.5", "bool", "fill value 0.5 is not true, false, 0 or 1, which bool holds"),
    ("5", "bool", "fill value 5 is not true, false, 0 or 1, which bool holds")])
def test_a_full_whose_value_its_dtype_does_not_hold_is_refused_at_its_line(value, dtype,
                                                                           message):
    """IR text and JSON took a full node's value as written and np.full changed it: value=1.5
    of i32 ran as [1, 1], nan of i64 as int64's minimum, 0.5 of bool as true, and 2**31 of
    i32 was an OverflowError at run time. gc.full never writes these (it makes the number
    fit first); the full op's type rule now refuses them, in both readers."""
    from runtime.interpreter import run
    text = _FULL_IR.format(v=value, t=dtype)
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == f"IR line 2, column {text.splitlines()[1].index('full') + 1}: " \
                              f"ill-typed full: {message}"
    doc = to_json(parse(_FULL_IR.format(v=0, t=dtype)))
    doc["nodes"][0]["attrs"]["value"] = json.loads(dumps(parse(
        _FULL_IR.format(v=value, t="f64"))))["nodes"][0]["attrs"]["value"]
    with pytest.raises(gc.GraphcError) as info:
        from_json(doc)
    assert str(info.value) == f"IR JSON: $.nodes[0]: ill-typed full: {message}"
    # what a dump holds parses and fills np.full's values (0 and 1 for bool: older dumps)
    for v, t in (("-3", "i32"), ("3.0", "i64"), ("true", "bool"), ("0", "bool"),
                 ("1", "bool"), ("nan", "f16"), ("-2147483648", "i32")):
        out = run(parse(_FULL_IR.format(v=v, t=t)))[0]
        expected = np.full(2, {"true": True}.get(v) or float(v), out.dtype)
        np.testing.assert_array_equal(out, expected)


_BIG = "99999999999999999999999"
_PAST_INT64 = "is past int64 (9223372036854775807), the largest dimension numpy takes"


def test_a_dimension_past_int64_is_refused_at_its_column_and_json_node():
    """f32[99999999999999999999999] parsed, and failed later, in numpy, naming no line;
    IR text now refuses it at the dimension's column (a
    symbolic one's factor, and a product of factors past int64, too), and JSON names the
    node or input whose type holds it. The 'bad dimension' message ended with the text after
    the dimension (', found ...'), no part of the problem."""
    text = _PLAIN_IR.replace("f32[2,3]", f"f32[{_BIG},3]")
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == (f"IR line 1, column {text.index(_BIG) + 1}: bad dimension "
                               f"{_BIG!r} ({_BIG} {_PAST_INT64})")
    for dim, past in ((f"{_BIG}*b", _BIG), ("4611686018427387904*4", str(2 ** 64))):
        text = _PLAIN_IR.replace("f32[2,3]", f"f32[{dim},3]")
        with pytest.raises(gc.GraphcError) as info:
            parse(text)
        assert str(info.value) == (f"IR line 1, column {text.index(dim) + 1}: bad dimension "
                                   f"{dim!r} ({past} {_PAST_INT64})")
    line = "  %1:f32[3] = sum %0 {axes=(0,), keepdims=false}"
    with pytest.raises(gc.GraphcError, match=r"^IR line 3, column 10: bad dimension "
                       rf"'{_BIG}' \({_BIG} is past int64 .*numpy takes\)$"):
        parse(_PLAIN_IR.replace(line, line.replace("f32[3]", f"f32[{_BIG}]")))
    # the largest dimension still parses (a type: nothing allocates it)
    assert parse(_PLAIN_IR.replace("f32[2,3]", f"f32[{2 ** 63 - 1},3]")).inputs[0].type.shape \
        == (2 ** 63 - 1, 3)
    doc = to_json(parse(_PLAIN_IR))
    doc["nodes"][-1]["type"] = f"f32[{_BIG}]"
    with pytest.raises(gc.GraphcError) as info:
        from_json(doc)
    where = f"$.nodes[{len(doc['nodes']) - 1}].type"
    assert str(info.value) == f"IR JSON: {where}: bad type 'f32[{_BIG}]': {_BIG} {_PAST_INT64}"
    doc = to_json(parse(_PLAIN_IR))
    doc["inputs"][0]["type"] = f"f32[{_BIG},3]"
    with pytest.raises(gc.GraphcError, match=r"^IR JSON: \$\.inputs\[0\]\.type: bad type"):
        from_json(doc)


def test_a_dimension_is_decided_by_its_value_not_by_each_number_written_in_it():
    """f32[9223372036854775808-1] was refused for its first number, past int64, though the
    dimension is int64's largest, while f32[9223372036854775807*n+n], whose coefficient
    2**63 is past it, parsed. The value decides, as it does for a product of numbers in
    range: a concrete dimension's, a symbolic one's coefficients (the numbers it prints)."""
    n = Dim.symbol("n")
    for dim, value in (("9223372036854775808-1", 2 ** 63 - 1),
                       ("9223372036854775808*n-n", (2 ** 63 - 1) * n),
                       (f"{_BIG}-{_BIG}+3", 3), ("n-9223372036854775808", n - 2 ** 63)):
        text = _PLAIN_IR.replace("f32[2,3]", f"f32[{dim},3]")
        assert parse(text).inputs[0].type.shape == (value, 3)
        doc = to_json(parse(_PLAIN_IR))
        doc["inputs"][0]["type"] = f"f32[{dim},3]"
        assert from_json(doc).inputs[0].type.shape == (value, 3)
        assert parse(_text(parse(text))).inputs[0].type.shape == (value, 3)  # (printed back)
    for dim, past in (("9223372036854775807*n+n", 2 ** 63), ("n-9223372036854775809",
                                                               -2 ** 63 - 1)):
        text = _PLAIN_IR.replace("f32[2,3]", f"f32[{dim},3]")
        with pytest.raises(gc.GraphcError) as info:
            parse(text)
        assert str(info.value) == (f"IR line 1, column {text.index(dim) + 1}: bad dimension "
                                   f"{dim!r} ({past} {_PAST_INT64})")

@pytest.mark.parametrize("constant, at, message", [
    (_BIG, _BIG, f"value {_BIG} does not fit in int64"),
    (f"[1, {_BIG}]", _BIG, f"value {_BIG} does not fit in int64"),
    ("[1, 2.5]", "2.5", "value 2.5 is not a whole number, which int64 holds"),
    ("[1, 2, 3]", "[1, 2, 3]", "constant of type i64[2] needs 2 values, got 3")])
def test_a_constant_its_type_does_not_hold_is_refused_at_its_values(constant, at, message):
    """The message about a constant's values ended with ", found 'end of line'", the
    cursor being past them: no part of the problem. It names the values' column now (the
    value's, for one its dtype does not hold)."""
    shape = "" if constant == _BIG else "2"
    text = f"graph g() -> (%1)\n  %1:i64[{shape}] = constant   {constant}\n  return %1"
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    column = text.splitlines()[1].index(at) + 1
    assert str(info.value) == f"IR line 2, column {column}: {message}"



_CONSTANT_IR = "graph g() -> (%1)\n  %1:{t}[{n}] = constant {v}\n  return %1"


_INF = "(it would read as inf)"


@pytest.mark.parametrize("dtype, values, bad, message", [
    ("f16", "[1.0, 70000]", "70000", f"value 70000 does not fit in float16 {_INF}"),
    ("f16", "-70000", "-70000", "value -70000 does not fit in float16 (it would read as "
                                "-inf)"),
    ("f32", "[0.5, 1e39]", "1e39", f"value 1e+39 does not fit in float32 {_INF}"),
    ("bf16", "1e39", "1e39", f"value 1e+39 does not fit in bfloat16 {_INF}"),
    ("f32", "1" + "0" * 309, "1" + "0" * 309, f"value {10 ** 309} does not fit in float32"),
    ("f64", "[1.0, -1e309]", "-1e309", "-1e309 does not fit in float64 (it would read as "
                                       "-inf)"),
    ("bool", "[true, 5]", "5", "value 5 is not true, false, 0 or 1, which bool holds"),
    ("bool", "0.5", "0.5", "value 0.5 is not true, false, 0 or 1, which bool holds"),
    ("bool", "nan", "nan", "value nan is not true, false, 0 or 1, which bool holds"),
    ("i32", "[0, 2147483648]", "2147483648", "value 2147483648 does not fit in int32"),
    ("i32", "-2.5e9", "-2.5e9", "value -2500000000.0 does not fit in int32"),
    ("i64", "nan", "nan", "value nan does not fit in int64"),
    ("i64", "[1, -inf]", "-inf", "value -inf does not fit in int64"),
    ("i32", "1.5", "1.5", "value 1.5 is not a whole number, which int32 holds")])
def test_a_constant_its_dtype_would_change_is_refused_at_the_value(dtype, values, bad,
                                                                    message):
    """A constant's value was taken as numpy's array of it made it: f16's 70000 and f32's
    1e39 read as inf, bool's 5, 0.5 and nan as true (an int past its dtype's range was
    refused without naming the value). The printer writes none of these (an inf prints as
    inf), so each is refused at its column, in one line naming the value, as a full's is
    (session 49); JSON names the node's path."""
    n = str(values.count(",") + 1) if values.startswith("[") else ""  # (a list's length)
    text = _CONSTANT_IR.format(t=dtype, n=n, v=values)
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    column = text.splitlines()[1].index(bad, text.splitlines()[1].index("constant")) + 1
    assert str(info.value) == f"IR line 2, column {column}: {message}"
    if "309" not in values:  # (JSON's numbers: as Python reads them, 1e309 is inf)
        zeros = "0" if not n else "[" + ", ".join(["0"] * int(n)) + "]"
        doc = to_json(parse(_CONSTANT_IR.format(t=dtype, n=n, v=zeros)))
        doc["nodes"][0]["attrs"]["value"]["array"] = [
            {"float": v} if v.lstrip("-") in ("inf", "nan") else json.loads(v)
            for v in values.strip("[]").split(", ")]
        with pytest.raises(gc.GraphcError) as info:
            from_json(doc)
        assert str(info.value) == f"IR JSON: $.nodes[0].attrs.value: {message}"


def test_a_constant_its_dtype_holds_reads_as_numpy_makes_it_and_every_printed_one_back():
    """What stays accepted: inf, -inf and nan written as such, a float rounded as numpy
    rounds it (f16's 65519 to 65504, f32's 0.1), bool's 0 and 1 (older dumps), an int
    dtype's whole float (3.0) and range ends; and every constant the printer writes, the
    extremes of each dtype included, parses back to its values."""
    for t, values in (("f16", [np.inf, -np.inf, np.nan, 65504.0, 65519, -0.0, 6e-8]),
                      ("f32", [0.1, 3.4028235e38, 1e-50]),
                      ("bf16", [np.inf, 3.3895313892515355e38, -3.3895313892515355e38]),
                      ("f64", [1.7976931348623157e308, -np.inf]),
                      ("bool", [0, 1, True, False, 1.0]),
                      ("i32", [-2 ** 31, 2 ** 31 - 1, 3.0]),
                      ("i64", [-2 ** 63, 2 ** 63 - 1])):
        text = _CONSTANT_IR.format(t=t, n=len(values), v="[" + ", ".join(
            {True: "true", False: "false"}.get(v, repr(v)) if type(v) is bool else repr(v)
            for v in values) + "]")
        got = parse(text).nodes[0].attrs["value"]
        expected = np.array(values, dtype=DTYPES[t])
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        back = parse(format_graph(parse(text), max_inline=None)).nodes[0].attrs["value"]
        np.testing.assert_array_equal(back, expected)
        assert from_json(to_json(parse(text))).nodes[0].attrs["value"].tobytes() == \
            expected.tobytes()
    for dtype in ("float16", "bfloat16", "float32", "float64"):  # (as a graph holds them)
        c = np.array([np.inf, -np.inf, np.nan, float(finfo(dtype).max),
                      float(finfo(dtype).smallest_subnormal)], dtype=dtype)
        g = gc.trace(lambda x: x + c, gc.spec(c.shape, dtype))
        back = [n for n in parse(_text(g)).nodes if n.op == "constant"][0].attrs["value"]
        assert back.tobytes() == c.tobytes()


def test_a_finite_number_past_float64_in_ir_json_is_refused_as_in_ir_text():
    """Review r3: IR text refuses 1e309 (float() reads it as inf: 'does not fit in float64'),
    but json.loads read it in IR JSON as inf, silently: a constant or an attribute written
    1e309 was inf, where the serializer writes an inf as {"float": "inf"}."""
    text = dumps(parse(_CONSTANT_IR.format(t="f64", n="2", v="[0.5, 0.25]")))
    for bad in ("1e309", "-1.5e400"):  # (s51: named at the value's JSON path)
        with pytest.raises(gc.GraphcError) as info:
            loads(text.replace("0.25", bad))
        assert str(info.value) == (f"IR JSON: $.nodes[0].attrs.value.array[1]: {bad} does "
                                   f"not fit in float64 (it would read as {float(bad)})")
    assert loads(text.replace("0.25", "1.7976931348623157e308")).nodes[0].attrs[
        "value"][1] == 1.7976931348623157e308


def test_a_nan_with_its_sign_bit_set_reads_back_bit_exact_from_ir_text_and_json():
    """(s51) A NaN whose sign bit is set (np.negative(np.nan), -nan in C) printed as nan,
    as repr writes it, and read back with the sign bit clear: the round trip changed the
    constant's bits. It prints -nan ({"float": "-nan"} in JSON) and reads back bit-exact,
    in each float dtype; a plain nan stays nan."""
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        c = np.array([np.nan, -np.nan, 1.0], dtype=DTYPES[{"float16": "f16", "bfloat16": "bf16",
                                                            "float32": "f32",
                                                            "float64": "f64"}[dtype]])
        assert not np.signbit(c[0]) and np.signbit(c[1])
        g = gc.trace(lambda x: x + c, gc.spec(c.shape, dtype))
        text = _text(g)
        assert "constant [nan, -nan, 1.0]" in text
        back = [n for n in parse(text).nodes if n.op == "constant"][0].attrs["value"]
        assert back.tobytes() == c.tobytes()
        doc = dumps(g)
        constant = [n for n in json.loads(doc)["nodes"] if n["op"] == "constant"][0]
        assert constant["attrs"]["value"]["array"] == [{"float": "nan"}, {"float": "-nan"}, 1.0]
        back = [n for n in loads(doc).nodes if n.op == "constant"][0].attrs["value"]
        assert back.tobytes() == c.tobytes()


def test_a_number_of_thousands_of_digits_is_one_short_line_naming_where_it_is():
    """(s51) A 4,301-digit dimension in IR text was Python's int-string limit message
    (sys.set_int_max_str_digits) after the dimension echoed whole, a line of 4,482
    characters; in IR JSON, such an int named no path. Each is one short line: the text's
    column, the JSON path."""
    huge = "9" * 4301
    text = f"graph g(%0:f32[2,{huge}] a) -> (%0)\n  return %0"
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == (
        "IR line 1, column 18: bad dimension '99999999999999999999...' (a number of 4301 "
        "digits is past int64 (9223372036854775807), the largest dimension numpy takes)")
    # a number of 39 digits is past int64 too, where a difference of 19 still reads
    assert "a number of 39 digits" in str(pytest.raises(
        gc.GraphcError, parse, text.replace(huge, "9" * 39)).value)
    assert parse(text.replace(huge, "9223372036854775808-1")).inputs[0].type.shape[1] == \
        2 ** 63 - 1
    doc = dumps(parse(_CONSTANT_IR.format(t="f64", n="2", v="[0.5, 0.25]")))
    with pytest.raises(gc.GraphcError) as info:
        loads(doc.replace('"f64[2]"', f'"f64[{huge}]"'))
    assert str(info.value) == (
        "IR JSON: $.nodes[0].type: bad type 'f64[9999999999999999...': a number of 4301 "
        "digits is past int64 (9223372036854775807), the largest dimension numpy takes")
    with pytest.raises(gc.GraphcError) as info:
        loads(doc.replace("0.25", "1" + "0" * 4400))
    assert str(info.value) == ("IR JSON: $.nodes[0].attrs.value.array[1]: an int of 4401 "
                               "digits, more than the 4300 Python reads")


def test_a_number_of_thousands_of_digits_in_a_constant_or_attribute_is_one_short_line():
    """Review r12 (s51): the fix above read dimensions and JSON numbers, but an int of 5,000
    digits in IR text's constant or attribute was still Python's own limit line ("use
    sys.set_int_max_str_digits()", no column), 1e followed by 5,000 digits echoed whole (a
    line of 5,071 characters), and a dimension of 5,000 zeros and a 3 (the value 3) was
    refused with Python's line. One short line at the number's column; leading zeros are no
    digits."""
    huge = "9" * 5000
    text = _CONSTANT_IR.format(t="i64", n="2", v=f"[1, {huge}]")
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    column = text.splitlines()[1].index(huge) + 1
    assert str(info.value) == (f"IR line 2, column {column}: an int of 5000 digits, more than "
                               "the 4300 Python reads")
    text = _CONSTANT_IR.format(t="f64", n="2", v=f"[1, 1e{huge}]")
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == (f"IR line 2, column {column}: 1e999999999999999999... does not "
                               "fit in float64 (it would read as inf)")
    text = _CONSTANT_IR.format(t="i64", n="2", v=f"[1, {'0' * 5000}3]")
    np.testing.assert_array_equal(parse(text).nodes[0].attrs["value"], [1, 3])
    signature = f"graph g(%0:f32[2,{'0' * 5000}3] a) -> (%0)\n  return %0"
    assert parse(signature).inputs[0].type.shape == (2, 3)


def test_an_int_past_int64_in_a_bfloat16_constant_reads_as_in_a_float32_one():
    """Review r3: ml_dtypes' bfloat16 takes no Python int past int64, so a bf16 constant
    written `100000000000000000000` (an int: the value 1e20, which bf16 holds) was a raw
    TypeError, 'expected number, got int', out of `graphc dump FILE.ir` (JSON: 'malformed
    document'), where f16, f32 and f64 read it by float(). It reads as theirs; past bf16's
    range it is refused as a float one is, at its column."""
    for v in (10 ** 20, 2 ** 63, -2 ** 63 - 1, 2 ** 100):
        text = _CONSTANT_IR.format(t="bf16", n="2", v=f"[1, {v}]")
        expected = np.array([1.0, float(v)], dtype=DTYPES["bf16"])
        assert parse(text).nodes[0].attrs["value"].tobytes() == expected.tobytes()
        doc = to_json(parse(_CONSTANT_IR.format(t="bf16", n="2", v="[0, 0]")))
        doc["nodes"][0]["attrs"]["value"]["array"] = [1, v]
        assert from_json(doc).nodes[0].attrs["value"].tobytes() == expected.tobytes()
    text = _CONSTANT_IR.format(t="bf16", n="2", v=f"[1, {10 ** 40}]")
    with pytest.raises(gc.GraphcError) as info:
        parse(text)
    assert str(info.value) == (f"IR line 2, column {text.splitlines()[1].index('1000') + 1}: "
                               f"value {10 ** 40} does not fit in bfloat16 {_INF}")


def test_string_attributes_with_a_hash_or_a_line_break_parse_back():
    """The printer escaped only \\ and ", and the parser took the first # of a node line as
    its location comment and read the text line by line: custom_vjp's fn="step#2" or a name
    with a newline did not parse back."""
    def make(name):
        def f(x):
            return gc.sin(x)
        f.__name__ = name
        f = gc.custom_vjp(f)
        f.defvjp(lambda x: (f(x), x), lambda x, g: (g * gc.cos(x),))
        return f

    for name in ['q"uote', "step#2", "two\nlines", 'x"#y\\', "cr\r\u2028\x85 #\\n"]:
        g = gc.trace(lambda x: make(name)(x), gc.spec((3,)), name=name)
        text = _text(g)
        assert len(text.splitlines()) == 4 and "  # " in text  # (its locations printed)
        back = parse(text)
        assert _text(back) == text and back.name == name
        node = next(n for n in back.nodes if n.op == "custom_vjp")
        assert node.attrs["fn"] == name and node.locs and node.locs[0][0].endswith(".py")
    assert r'fn="cr\r\u2028\u0085 #\\n"' in text


def test_dump_grad_of_a_graph_without_outputs_is_one_line(tmp_path, capsys):
    """grad_graph indexed the missing output: an IndexError traceback."""
    ir_file = tmp_path / "noout.ir"
    ir_file.write_text("graph g(%0:f32[3] x) -> ()\n  return\n")
    assert main(["dump", str(ir_file)]) == 0
    capsys.readouterr()
    assert main(["dump", str(ir_file), "--grad"]) == 2
    assert capsys.readouterr().err == (f"graphc: error: dump --grad: {ir_file} has no output "
                                       "to differentiate\n")
    g = gc.trace(lambda x: gc.sum(x), gc.spec((3,)))
    with pytest.raises(gc.GraphcError, match=r"^grad_graph: output 1 is out of range \(lambda "
                                             r"has 1 output\)$"):
        grad_graph(g, output=1)
    with pytest.raises(gc.GraphcError, match="^grad_graph: g has no output to differentiate$"):
        grad_graph(parse(ir_file.read_text()))
    assert len(grad_graph(g, output=-1).outputs) == 2


@pytest.mark.parametrize("sym", ["bool_n", "i64_rows", "f16_len", "truex", "false_"])
def test_a_symbol_starting_with_a_dtype_or_keyword_parses_in_an_attribute(sym):
    """The parser took `true`/`false` and a dtype name followed by `_` as the value, leaving
    `_n` behind: `full {value=bool_n}` did not parse back (the type f32[bool_n,3] did)."""
    g = gc.trace(lambda x: gc.mean(x, axis=0) + gc.reshape(x, (3, sym))[0, 0],
                 gc.spec((sym, 3)))
    text = _text(g)
    assert f"value={sym}, dtype=f32" in text and f"shape=(3, {sym})" in text
    back = parse(text)
    assert _text(back) == text
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    from runtime.interpreter import run
    np.testing.assert_allclose(run(back, x)[0], x.mean(0) + x[0, 0], rtol=1e-6)


@pytest.mark.parametrize("target", ["mlp", "saved.ir"])
@pytest.mark.parametrize("config", ["small", "nosuch", ""])  # ('': quoted, r8)
def test_dump_config_is_refused_for_a_target_other_than_gpt(tmp_path, capsys, monkeypatch,
                                                             target, config):
    """`graphc dump mlp --config small` (or a saved graph's) printed the mlp, the option
    ignored, an unknown config name too, with status 0; --batch is refused likewise."""
    monkeypatch.chdir(tmp_path)
    assert main(["dump", "mlp", "-o", "saved.ir"]) == 0
    saved = (tmp_path / "saved.ir").read_bytes()
    capsys.readouterr()
    assert main(["dump", target, "--config", config]) == 2
    out, err, shown = *capsys.readouterr(), config or "''"
    assert out == "" and err == (f"graphc: error: dump --config {shown}: only the gpt target "
                                 f"takes a GPT config; {target} builds its own graph\n")
    assert (tmp_path / "saved.ir").read_bytes() == saved


def test_dump_gpt_takes_its_config_or_tiny(capsys):
    for argv, name in ((["dump", "gpt"], "gpt_tiny_loss"),
                       (["dump", "gpt", "--config", "small"], "gpt_small_loss")):
        assert main(argv) == 0
        assert capsys.readouterr().out.startswith(f"graph {name}(")


def test_dump_gpt_refuses_an_empty_config_name(capsys):
    """`graphc dump gpt --config ''` printed the tiny GPT (the None default was `config or
    'tiny'`); it was refused as an unknown config before --config defaulted to None."""
    assert main(["dump", "gpt", "--config", ""]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("graphc: error: unknown config ''")


@pytest.mark.parametrize("argv, option", [
    (["--stats"], "--stats"), (["--after", "render"], "--after render"),
    (["--after", "choose-kernels"], "--after choose-kernels")])
@pytest.mark.parametrize("flag", ["--collapse", "--full", "--locations"])
def test_dump_refuses_a_graph_printing_option_where_no_graph_prints(capsys, argv, option,
                                                                    flag):
    """`graphc dump mlp --stats --collapse` (or --full, --locations; or after a lowering
    stage, whose state prints as text of its own) ignored the flag without a word, status 0,
    where --diff refuses --full and --collapse: now refused likewise, in one line."""
    assert main(["dump", "mlp", *argv, flag]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"graphc: error: {option} and {flag} conflict: {flag} changes how a graph prints, and "
        + ("--stats prints statistics" if option == "--stats" else
           f"the state after lowering stage {argv[1]} prints as text of its own") + "; give one"]


@pytest.mark.parametrize("fmt, flag", [
    ("json", "--full"), ("json", "--collapse"), ("json", "--locations"),
    ("graphml", "--full"), ("graphml", "--collapse"), ("graphml", "--locations"),
    ("dot", "--full"), ("dot", "--locations")])
def test_dump_refuses_a_text_printing_option_beside_a_format_without_it(capsys, fmt, flag):
    """(review r8 of D4) `graphc dump mlp --format json --full` (graphml's, dot's --full and
    --locations) printed the same output as without the flag, status 0: refused likewise."""
    assert main(["dump", "mlp", "--format", fmt, flag]) == 2
    out, err = capsys.readouterr()
    what = "holds the whole graph as data" if fmt != "dot" else \
        "draws every node, without locations"
    assert out == "" and err.splitlines() == [
        f"graphc: error: --format {fmt} and {flag} conflict: {flag} changes how a graph "
        f"prints, and {fmt} {what}; give one"]


@pytest.mark.parametrize("argv", [["--after", "fuse", "--collapse", "--full", "--locations"],
                                  ["--stats"], ["--diff", "input", "simplify", "--locations"],
                                  ["--format", "dot", "--collapse"]])
def test_dump_keeps_the_graph_printing_options_where_a_graph_prints(capsys, argv):
    assert main(["dump", "mlp", *argv]) == 0
    assert capsys.readouterr().out


def test_dump_says_which_call_of_a_function_target_failed(tmp_path, capsys):
    """`graphc dump model.py:build` where build returns `(f, (spec1, spec2))`, so that f
    gets one argument, said "f() missing 1 required positional argument: 'y'; FUNCTION is
    called with no arguments ...": the hint of build's own call, pointing at the wrong one.
    Now the hint says how f is called; a build that takes arguments keeps its own. (Since
    trace refuses a call that does not bind in its own line, the hint follows that line:
    the test failed on s46 where D8 landed, trace's line having no hint.)"""
    src = tmp_path / "model.py"
    src.write_text("import graphc as gc\n"
                   "def f(x, y):\n    return x + y\n"
                   "def build():\n"
                   "    return f, (gc.spec((2,), 'float32'), gc.spec((2,), 'float32'))\n"
                   "def build_with(n):\n    return f, gc.spec((2,), 'float32')\n")
    for name, says in (
            ("build", "f: missing a required argument: 'y'; f is called with the 1 value "
                      "after it in the tuple FUNCTION returns, one argument each: (function, "
                      "*specs)"),
            ("build_with", "TypeError: build_with() missing 1 required positional argument: "
                           "'n'; FUNCTION is called with no arguments and returns a Graph or "
                           "(function, *specs)")):
        assert main(["dump", f"{src}:{name}"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"graphc: error: dump {src}:{name}: {says}\n"


_LOOP_SCAN_IR = """graph f(%0:f32[3] x, %1:f32[2,3] xs) -> (%3)
  %2:(f32[3], f32[2,3]) = scan %0, %1 {body={
    graph body(%0:f32[3] c, %1:f32[3] x) -> (%2, %2)
      %2:f32[3] = add %0, %1
      return %2, %2
  }, consts=0, carries=1, length=2, reverse=false}
  %3:f32[3] = tuple_get %2 {index=0}
  return %3"""
_LOOP_WHILE_IR = """graph f(%0:f32[3] k, %1:f32[3] x) -> (%3)
  %2:(f32[3]) = while_loop %0, %1 {cond_fn={
    graph c(%0:f32[3] a) -> (%3)
      %1:f32[] = sum %0 {axes=(0,), keepdims=false}
      %2:f32[] = constant 10.0
      %3:bool[] = lt %1, %2
      return %3
  }, body_fn={
    graph b(%0:f32[3] k, %1:f32[3] a) -> (%2)
      %2:f32[3] = add %0, %1
      return %2
  }, cond_consts=0, body_consts=1}
  %3:f32[3] = tuple_get %2 {index=0}
  return %3"""


@pytest.mark.parametrize("text, old, new, message", [
    (_LOOP_SCAN_IR, "carries=1", "carries=-1", "carries must be 0 or more, got -1"),
    (_LOOP_SCAN_IR, "consts=0, carries=1", "consts=-1, carries=2",
     "consts must be 0 or more, got -1"),
    (_LOOP_WHILE_IR, "body_consts=1", "body_consts=-1", "body_consts must be 0 or more, got -1"),
    (_LOOP_WHILE_IR, "cond_consts=0, body_consts=1", "cond_consts=-1, body_consts=2",
     "cond_consts must be 0 or more, got -1")])
def test_a_negative_operand_count_of_a_loop_is_refused_at_its_node(text, old, new, message,
                                                                   tmp_path, capsys):
    """A scan's carries=-1 (or a while_loop's body_consts=-1) sliced the operands from the
    end: the type rule read it as 'all operands but the last', gave the type the line says,
    and the graph was taken; `graphc dump` then failed in dce with a TypeRuleError traceback
    (exit 1), while_loop's ran as body_consts=1. Refused now at the node, in text and JSON,
    and the graph as written still runs as numpy computes it."""
    from runtime.interpreter import run
    x = np.arange(3, dtype=np.float32)
    if text is _LOOP_SCAN_IR:
        xs = np.ones((2, 3), np.float32)
        np.testing.assert_array_equal(run(parse(text), x, xs)[0], x + 2)
    else:
        np.testing.assert_array_equal(run(parse(text), np.full(3, 2, np.float32), x)[0],
                                      x + 4)  # (sum 3 -> 9 -> 15: stops past 10)
    bad = text.replace(old, new)
    column = bad.splitlines()[1].index("= ") + 3
    with pytest.raises(gc.GraphcError) as info:
        parse(bad)
    assert str(info.value) == f"IR line 2, column {column}: ill-typed " \
                              f"{'scan' if text is _LOOP_SCAN_IR else 'while_loop'}: {message}"
    doc = to_json(parse(text))
    key, value = new.split(", ")[0].split("=")
    doc["nodes"][-2]["attrs"][key] = int(value)
    if "," in new:
        key2, value2 = new.split(", ")[1].split("=")
        doc["nodes"][-2]["attrs"][key2] = int(value2)
    with pytest.raises(gc.GraphcError, match=re.escape(message)):
        from_json(doc)
    path = tmp_path / "loop.ir"
    path.write_text(bad)
    assert main(["dump", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"graphc: error: dump: {path}: {info.value}\n"


def test_a_scan_of_a_negative_length_is_refused():
    """length=-2 of a scan with no scanned operand ran no step and returned its init."""
    text = _LOOP_SCAN_IR.replace("%1:f32[2,3] xs) -> (%3)", "%1:f32[3] y) -> (%3)").replace(
        "scan %0, %1", "scan %0").replace("(f32[3], f32[2,3])", "(f32[3])").replace(
        "(%0:f32[3] c, %1:f32[3] x) -> (%2, %2)", "(%0:f32[3] c) -> (%2)").replace(
        "add %0, %1", "neg %0").replace("return %2, %2", "return %2")
    assert str(parse(text).outputs[0].type) == "f32[3]"
    with pytest.raises(gc.GraphcError, match=r"ill-typed scan: length must be 0 or more, "
                                             r"got -2$"):
        parse(text.replace("length=2", "length=-2"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["nodes"][0].update(inputs=[True]),
     "$.nodes[0].inputs[0]: true is not a value defined before this node"),
    (lambda d: d.update(outputs=[True]), "$.outputs[0]: unknown value true"),
    (lambda d: d["nodes"][0].update(id=True), "$.nodes[0].id: bad id true: an id is a whole "
                                              "number"),
    (lambda d: d["nodes"][0].update(id=1), "$.nodes[0].id: id 1 is given twice"),
    (lambda d: d["nodes"][0].update(locs=[["model.py", True]]),
     "$.nodes[0].locs: bad locations: each is [file, line], line a whole number from 0"),
    (lambda d: d["nodes"][0].update(locs=[["model.py", -3]]),
     "$.nodes[0].locs: bad locations: each is [file, line], line a whole number from 0"),
    (lambda d: d.update(version=True), "$.version: expected 1")])  # (review r11)
def test_json_true_is_no_value_id_nor_line(change, message, tmp_path, capsys):
    """JSON's true was Python's True, which == 1: `"outputs": [true]` made a graph returning
    the value of id 1 (here the input y), `"inputs": [true]` read that value, and a location
    `["model.py", true]` printed as `model.py:True`, IR text that does not parse back. The
    reader takes whole numbers only (a line from 0, as the text form's)."""
    graph = gc.trace(lambda x, y: gc.relu(y), gc.spec((3,)), gc.spec((3,)))
    doc = json.loads(dumps(graph))
    assert doc["outputs"] == [2] and doc["nodes"][0]["inputs"] == [1]
    change(doc)
    with pytest.raises(gc.GraphcError) as info:
        from_json(doc)
    assert str(info.value) == f"IR JSON: {message}"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    assert main(["dump", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"graphc: error: dump: {path}: IR JSON: {message}\n"


@pytest.mark.parametrize("where, path", [(lambda d: d, "$"),
                                         (lambda d: d["inputs"][0], "$.inputs[0]"),
                                         (lambda d: d["nodes"][0], "$.nodes[0]")])
def test_a_json_member_the_schema_does_not_name_is_refused(where, path, tmp_path, capsys):
    """A member the schema does not have was ignored: a node's "lcos" (for "locs") dropped
    its locations without a word, where the text reader refuses text it does not know."""
    from ir.serialize import _DOCUMENT_KEYS, _INPUT_KEYS, _NODE_KEYS
    graph = gc.trace(lambda x: gc.relu(x), gc.spec((3,)))
    doc = json.loads(dumps(graph))
    # (the writer writes each of the schema's members, and only those)
    assert (tuple(doc), tuple(doc["inputs"][0]), tuple(doc["nodes"][0])) == \
        (_DOCUMENT_KEYS, _INPUT_KEYS, _NODE_KEYS)
    where(doc)["lcos"] = [["model.py", 3]]
    keys = {"$": _DOCUMENT_KEYS, "$.inputs[0]": _INPUT_KEYS, "$.nodes[0]": _NODE_KEYS}[path]
    message = f'IR JSON: {path}: unknown member "lcos" (the schema\'s: {", ".join(keys)})'
    with pytest.raises(gc.GraphcError) as info:
        from_json(doc)
    assert str(info.value) == message
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps(doc))
    assert main(["dump", str(bad)]) == 2
    assert capsys.readouterr().err == f"graphc: error: dump: {bad}: {message}\n"
