"""The IR as JSON: a documented, versioned schema that reads back into an equal graph.

Schema (version 1):

    {"format": "graphc-ir", "version": 1, "name": str,
     "inputs":  [{"id": int, "name": str, "kind": "input"|"param"|"state", "type": "f32[4,3]"}],
     "nodes":   [{"id": int, "op": str, "inputs": [int], "attrs": {name: value},
                  "type": "f32[4,8]", "locs": [[file, line]], "scope": "blocks.0.attn"}],
     "outputs": [int]}

Nodes are listed in topological order and exclude inputs. Attribute values: JSON numbers,
strings and booleans; tuples as {"tuple": [...]}; dtypes as {"dtype": "f32"}; non-finite
floats as {"float": "inf"|"-inf"|"nan"|"-nan"} (-nan: a NaN whose sign bit is set); a
constant's value as {"array": [flat values], "shape": [...], "dtype": "f32"}; a control-flow
node's region as {"graph": {a document of this schema}}, and its type as
"(f32[4], f32[10,4])". A member the schema does not name, in the document, an input or a
node, is refused ("lcos" for "locs" would have dropped the locations silently).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np

from .errors import GraphcError, a_type, clipped
from .graph import Graph
from .ops.registry import REGISTRY
from .parser import MAX_NESTING as PARSER_NESTING, region_nesting
from .printer import float_text, is_region
from .types import (DTYPES, SHORT_NAMES, Dim, TensorType, TupleType, exact_array,
                    float_of_text, int_of_text, is_int, parse_dim)
from .verify import check_node

FORMAT, VERSION = "graphc-ir", 1
# Python's json parser recurses once per level of nesting; the schema needs five (document,
# nodes, node, attrs, value) plus a few for nested tuples, and five more for each region a
# control-flow node holds (a cond's branches seven, as two of the text reader's levels). The
# text reader takes regions nested to its MAX_NESTING, so this bound takes their JSON (32
# nested scans are 166 levels; 64 refused 12 nested scans that `graphc dump --format json`
# wrote and the text form read). Deeper input is rejected before it is parsed, instead of
# exhausting the stack.
MAX_NESTING = 6 * PARSER_NESTING
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json_depth(text: str, limit: int, what: str) -> None:
    """Raise GraphcError if the JSON text nests arrays/objects more than `limit` deep."""
    depth = 0
    for m in _STRUCTURE.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > limit:
                line = text.count("\n", 0, m.start()) + 1
                raise GraphcError(f"{what}: line {line}: nested more than {limit} levels deep")
        elif ch in "]}":
            depth -= 1


def _encode(v):
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"float": float_text(v)}
    if isinstance(v, tuple):
        return {"tuple": [_encode(x) for x in v]}
    if isinstance(v, np.dtype):
        return {"dtype": SHORT_NAMES[v]}
    if isinstance(v, Dim):
        return {"dim": str(v)}
    if isinstance(v, np.ndarray):
        return {"array": [_encode(x) for x in v.reshape(-1).tolist()], "shape": list(v.shape),
                "dtype": SHORT_NAMES[v.dtype]}
    if is_region(v):
        return {"graph": to_json(v)}
    raise GraphcError(f"cannot encode the value {v!r} ({a_type(v)}): the JSON form "
                      "holds ints, floats, bools, strings, tuples, dtypes, arrays and regions")


def _encode_attrs(node, number) -> dict:
    """A node's attributes encoded; one that cannot be (an attribute a hand-built node holds:
    the ops' own API stores only the kinds above) is one line naming the node and attribute."""
    out = {}
    for k, v in node.attrs.items():
        try:
            out[k] = _encode(v)
        except GraphcError as exc:  # (from a region's node: its own %number and attribute)
            raise GraphcError(f"IR JSON: %{number} ({node.op}), attribute {k}: "
                              f"{exc.message.removeprefix('IR JSON: ')}") from None
    return out


def to_json(graph) -> dict:
    ids = {n: i for i, n in enumerate(list(graph.inputs) +
                                       [n for n in graph.nodes if n.op != "input"])}
    return {
        "format": FORMAT, "version": VERSION, "name": graph.name,
        "inputs": [{"id": ids[n], "name": n.attrs["name"], "kind": n.attrs["kind"],
                    "type": str(n.type)} for n in graph.inputs],
        "nodes": [{"id": ids[n], "op": n.op, "inputs": [ids[i] for i in n.inputs],
                   "attrs": _encode_attrs(n, ids[n]),
                   "type": str(n.type), "locs": [list(loc) for loc in n.locs],
                   "scope": n.scope}
                  for n in graph.nodes if n.op != "input"],
        "outputs": [ids[o] for o in graph.outputs],
    }


def _json_depth(text: str) -> int:
    """How deep the JSON text nests arrays and objects."""
    depth = deepest = 0
    for m in _STRUCTURE.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def dumps(graph) -> str:
    """The graph as IR JSON text. A graph whose regions nest deeper than loads takes (more
    than MAX_NESTING levels of JSON, as 38 nested scans need) is refused in one line, not
    written for the reader to refuse: the tracer builds graphs nested past any bound."""
    text = json.dumps(to_json(graph), indent=1)
    depth = _json_depth(text)
    if depth > MAX_NESTING:
        raise GraphcError(f"IR JSON: cannot write graph {graph.name!r}: its control-flow "
                          f"regions nest {region_nesting(graph)} levels deep (a cond's "
                          f"branches count two), {depth} levels of JSON, more than the "
                          f"{MAX_NESTING} the reader takes (37 nested scans); nest fewer "
                          "regions")
    return text


class _Bad(Exception):
    pass


def _need(cond, path, message):
    if not cond:
        raise _Bad(f"{path}: {message}")


def _shown(value) -> str:
    """A value of the document as JSON writes it (true, not Python's True), shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):  # (a document built in Python may hold anything)
        text = repr(value)
    return clipped(text)


_DOCUMENT_KEYS = ("format", "version", "name", "inputs", "nodes", "outputs")
_INPUT_KEYS = ("id", "name", "kind", "type")
_NODE_KEYS = ("id", "op", "inputs", "attrs", "type", "locs", "scope")


def _known_keys(obj: dict, keys: tuple, path: str) -> None:
    """A member the schema does not have is refused, not ignored: a misspelt one ("lcos")
    dropped what it held silently, where the text reader refuses any text it does not know."""
    unknown = next((k for k in obj if k not in keys), None)
    _need(unknown is None, path, f"unknown member {_shown(unknown)} (the schema's: "
                                 f"{', '.join(keys)})")


def _check_id(member: dict, values: dict, path: str) -> None:
    """A new value's id: a whole number (JSON's true is no id, though Python's True == 1
    found value 1), not given to a value before."""
    ident = member.get("id")
    _need(is_int(ident), f"{path}.id", f"bad id {_shown(ident)}: an id is a whole number")
    _need(ident not in values, f"{path}.id", f"id {ident} is given twice")


def _type(text, path):
    _need(isinstance(text, str), path, "a type must be a string like 'f32[4,3]'")
    if text.startswith("(") and text.endswith(")"):  # a control-flow node's TupleType
        parts = re.findall(r"[a-z0-9]+\[[^\]]*\]", text)
        _need(", ".join(parts) == text[1:-1], path, f"bad type {clipped(text)!r}")
        return TupleType([_type(t, path) for t in parts])
    m = re.fullmatch(r"(bf16|f16|f32|f64|i32|i64|bool)\[((?:[\w*+\-]+(?:,[\w*+\-]+)*)?)\]", text)
    _need(m is not None, path, f"bad type {clipped(text)!r}")
    try:  # a dimension is an int or a symbolic expression (ir.types.parse_dim)
        dims = tuple(parse_dim(d) for d in m.group(2).split(",")) if m.group(2) else ()
    except ValueError as exc:
        raise _Bad(f"{path}: bad type {clipped(text)!r}: {exc}") from None
    return TensorType(dims, DTYPES[m.group(1)])


def _decode(v, path):
    if isinstance(v, dict):
        if set(v) == {"tuple"}:
            _need(isinstance(v["tuple"], list), path, "'tuple' must hold a list")
            return tuple(_decode(x, f"{path}.tuple[{i}]") for i, x in enumerate(v["tuple"]))
        if set(v) == {"graph"}:
            try:
                return _from_json(v["graph"])
            except _Bad as exc:
                raise _Bad(f"{path}.graph: {exc}") from None
        if set(v) == {"dtype"}:
            _need(v["dtype"] in DTYPES, path, f"unknown dtype {v['dtype']!r}")
            return DTYPES[v["dtype"]]
        if set(v) == {"dim"}:
            _need(isinstance(v["dim"], str), path, "'dim' must hold a string like '2*batch'")
            try:
                return parse_dim(v["dim"])
            except ValueError as exc:
                raise _Bad(f"{path}: bad dimension {clipped(v['dim'])!r}: {exc}") from None
        if set(v) == {"float"}:
            _need(v["float"] in ("inf", "-inf", "nan", "-nan"), path, "bad non-finite float")
            return float(v["float"])
        if set(v) == {"array", "shape", "dtype"}:
            _need(v["dtype"] in DTYPES, path, f"unknown dtype {v['dtype']!r}")
            _need(isinstance(v["shape"], list) and all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v["shape"]),
                path, "bad shape")
            _need(isinstance(v["array"], list), path, "'array' must be a list")
            flat = [_decode(x, path) for x in v["array"]]
            _need(all(isinstance(x, (int, float, bool)) for x in flat), path,
                  "array values must be numbers")
            _need(len(flat) == math.prod(v["shape"]), path, "array size does not match shape")
            try:
                return exact_array(flat, DTYPES[v["dtype"]], v["shape"])
            except ValueError as exc:  # a fraction or an overflow
                raise _Bad(f"{path}: {exc}") from None
        raise _Bad(f"{path}: unknown attribute encoding {sorted(v)}")
    _need(isinstance(v, (bool, int, float, str)), path, f"bad attribute value {v!r}")
    return v


def _node_failure(problem, op, path, t) -> _Bad:
    """check_node's problem with the node at `path`, at the member it is in. (A rule's
    GraphcError gives its message alone: its location would be a line of graphc's own.)"""
    if problem.part == "operands":
        return _Bad(f"{path}.inputs: {problem.message}")
    if problem.part == "attribute":
        return _Bad(f"{path}.attrs.{problem.attribute}: {problem.message}")
    if problem.part == "type":
        return _Bad(f"{path}.type: {problem.message}, not {t}")
    return _Bad(f"{path}: ill-typed {op}: {problem.message}")


def from_json(data) -> Graph:
    try:
        return _from_json(data)
    except _Bad as exc:
        raise GraphcError(f"IR JSON: {exc}") from None
    except RecursionError:  # a document built in Python, not read by loads()
        raise GraphcError("IR JSON: attribute values nested too deeply") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise GraphcError(f"IR JSON: malformed document ({type(exc).__name__}: {exc})") \
            from None


def _from_json(data) -> Graph:
    _need(isinstance(data, dict), "$", "the document must be an object")
    _known_keys(data, _DOCUMENT_KEYS, "$")
    _need(data.get("format") == FORMAT, "$.format", f"expected {FORMAT!r}")
    _need(is_int(data.get("version")) and data["version"] == VERSION, "$.version",
          f"expected {VERSION}")  # (not JSON's true, which == 1 in Python)
    for key, kind in (("name", str), ("inputs", list), ("nodes", list), ("outputs", list)):
        _need(isinstance(data.get(key), kind), f"$.{key}", f"missing or not a {kind.__name__}")
    graph = Graph(data["name"])
    values = {}
    for i, inp in enumerate(data["inputs"]):
        path = f"$.inputs[{i}]"
        _need(isinstance(inp, dict), path, "must be an object")
        _known_keys(inp, _INPUT_KEYS, path)
        _check_id(inp, values, path)
        _need(isinstance(inp.get("name"), str) and inp["name"], f"{path}.name", "bad name")
        _need(inp.get("kind") in ("input", "param", "state"), f"{path}.kind", "bad kind")
        t = _type(inp.get("type"), f"{path}.type")
        with graph.locations(()):
            try:
                values[inp["id"]] = graph.input(inp["name"], t.shape, t.dtype, inp["kind"])
            except GraphcError as exc:
                raise _Bad(f"{path}: {exc.message}") from None
    for i, nd in enumerate(data["nodes"]):
        path = f"$.nodes[{i}]"
        _need(isinstance(nd, dict), path, "must be an object")
        _known_keys(nd, _NODE_KEYS, path)
        _check_id(nd, values, path)
        op = nd.get("op")
        _need(op in REGISTRY and op != "input", f"{path}.op", f"unknown op {op!r}")
        _need(isinstance(nd.get("inputs"), list), f"{path}.inputs", "must be a list")
        for k, ref in enumerate(nd["inputs"]):
            _need(is_int(ref) and ref in values, f"{path}.inputs[{k}]",
                  f"{_shown(ref)} is not a value defined before this node")
        _need(isinstance(nd.get("attrs"), dict), f"{path}.attrs", "must be an object")
        attrs = {k: _decode(v, f"{path}.attrs.{k}") for k, v in nd["attrs"].items()}
        t = _type(nd.get("type"), f"{path}.type")
        locs = nd.get("locs", [])
        _need(isinstance(locs, list) and all(
            isinstance(loc, list) and len(loc) == 2 and isinstance(loc[0], str)
            and is_int(loc[1]) and loc[1] >= 0 for loc in locs), f"{path}.locs",
              "bad locations: each is [file, line], line a whole number from 0")
        operands = [values[r] for r in nd["inputs"]]
        if op == "constant":
            _need(set(attrs) == {"value"} and isinstance(attrs["value"], np.ndarray),
                  f"{path}.attrs", "a constant needs exactly a 'value' array")
            _need(TensorType(attrs["value"].shape, attrs["value"].dtype) == t, f"{path}.type",
                  "does not match the constant's value")
            attrs["value"].setflags(write=False)
        else:
            problem = check_node(REGISTRY[op], [o.type for o in operands], attrs, t)
            if problem is not None:
                raise _node_failure(problem, op, path, t)
        scope = nd.get("scope", "")
        _need(isinstance(scope, str), f"{path}.scope", "must be a string")
        values[nd["id"]] = graph.add_node(op, operands, attrs, t,
                                          tuple((f, ln) for f, ln in locs), scope)
    for k, ref in enumerate(data["outputs"]):
        _need(is_int(ref) and ref in values, f"$.outputs[{k}]", f"unknown value {_shown(ref)}")
    graph.set_outputs([values[r] for r in data["outputs"]])
    graph.output_tree = None
    return graph


def _unique_keys(pairs) -> dict:
    """json.loads' object_pairs_hook: an object giving a key twice (two "attrs", an
    attribute twice) is refused, where a dict kept the last silently, as the text parser
    refuses an attribute given twice."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _Bad(f"the key {key!r} is given twice in one object")
        obj[key] = value
    return obj


class _Unreadable:
    """json.loads' number that has no value here: a finite float past float64's range
    (1e309, which float() reads as inf; the serializer writes an inf as {"float": "inf"}, as
    the text parser refuses it) or an int past Python's 4,300 digits. Kept in the document
    so that its refusal names the number's JSON path (_refuse_unreadable): json.loads' hooks
    know none."""

    def __init__(self, message: str):
        self.message = message


def _read_number(read, unreadable: list):
    """json.loads' parse_float or parse_int: `read(text)`, or an _Unreadable, also listed in
    `unreadable`."""
    def parse(text: str):
        try:
            return read(text)
        except ValueError as exc:
            number = _Unreadable(str(exc))
            unreadable.append(number)
            return number
    return parse


def _refuse_unreadable(value, path="$"):
    """Raise the refusal of the first _Unreadable number in the document, at its path
    ($.nodes[0].attrs.value.array[2])."""
    stack = [(value, path)]
    while stack:  # (a walk, not recursion: the depth is checked, but keep the stack flat)
        value, path = stack.pop()
        if isinstance(value, _Unreadable):
            raise _Bad(f"{path}: {value.message}")
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{k}") for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(value))))


def loads(text: str) -> Graph:
    check_json_depth(text, MAX_NESTING, "IR JSON")
    unreadable = []  # (a number json.loads' hooks could not read: then the walk names it)
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys,
                          parse_float=_read_number(float_of_text, unreadable),
                          parse_int=_read_number(int_of_text, unreadable))
        if unreadable:
            _refuse_unreadable(data)
    except _Bad as exc:
        raise GraphcError(f"IR JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise GraphcError(f"IR JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") \
            from None
    return from_json(data)
