"""The IR as text for people: a signature line, then one SSA line per node.

    graph mlp(%0:f32[4,3] x, %1:f32[3,8] param w1) -> (%3)
      %2:f32[4,8] = matmul %0, %1
      %3:f32[] = sum %2 {axes=(0, 1), keepdims=false}
      return %3

Inputs are numbered first, in signature order, then the other nodes in order. Inputs show
their names and kind (`param`, `state`); constants up to MAX_INLINE elements print their
value, longer ones a summary (print with max_inline=None to parse the text back). A graph or
input name that would not read back bare (`branch 1 <lambda>_false`) prints quoted.
"""
from __future__ import annotations

import re

import numpy as np

from .types import SHORT_NAMES

MAX_INLINE = 16
# A graph or input name prints as it is when the parser's bare-name pattern reads it whole;
# any other (a space from gc.switch's regions, `branch 1 <lambda>_false`, or from a dict key,
# `p.a b`; a comma, a parenthesis, a quote, the empty name) prints as a quoted string.
PLAIN_NAME = re.compile(r'[^\s,()"]+')


# In a quoted string: a backslash and a quote escaped, and every character that ends a line
# for str.splitlines (the parser reads the text line by line) as \n, \r or \uXXXX. A `#`
# stays: the parser looks for a location comment outside quotes only.
_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r"} | {
    ord(ch): f"\\u{ord(ch):04x}" for ch in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def float_text(value: float) -> str:
    """A float as IR text and JSON write it: repr's, but -nan for a NaN whose sign bit is
    set (repr says nan, and the sign was lost on the way back; float('-nan') keeps it)."""
    if value != value and np.signbit(value):
        return "-nan"
    return repr(value)


def format_attr(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, np.dtype):
        return SHORT_NAMES[value]
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def format_name(name: str) -> str:
    """A graph's or an input's name, quoted only where the bare form would not read back."""
    return name if PLAIN_NAME.fullmatch(name) else format_attr(name)


def _scalar(v) -> str:
    if isinstance(v, bool):
        return format_attr(v)
    if isinstance(v, float):
        return float_text(v)  # (inf, -inf, nan, -nan: the parser reads these names)
    return repr(v)


def format_constant(value: np.ndarray, max_inline: int | None = MAX_INLINE) -> str:
    """The value, or for more than max_inline elements a summary (None: always the value)."""
    if max_inline is not None and value.size > max_inline:
        # (as Python numbers: numpy 2's repr of its scalars is `np.float64(0.0)`)
        return (f"<{value.size} values, min {_scalar(value.min().item())}, "
                f"max {_scalar(value.max().item())}>")
    flat = value.reshape(-1).tolist()
    if value.ndim == 0:
        return _scalar(flat[0])
    return "[" + ", ".join(_scalar(v) for v in flat) + "]"


def is_region(value) -> bool:
    """Whether an attribute value is a control-flow node's region (ir/region.py), told by its
    shape, so that the modules below the region's own need not import it."""
    return hasattr(value, "nodes") and hasattr(value, "outputs")


def _format_value(value, indent, locations, max_inline, collapse) -> str:
    """An attribute value; a region (ir/region.py) prints nested, as a jaxpr's sub-jaxpr:
    `{` ending the line, its graph indented below, `}` opening the line that goes on."""
    if is_region(value):
        if collapse is not None:
            if id(value) in collapse:
                return f"{{ {value.name}: as printed above }}"
            collapse.add(id(value))
        inner = format_graph(value, locations, max_inline, indent + "    ", collapse)
        return "{\n" + inner + "\n" + indent + "  }"
    if isinstance(value, tuple) and any(is_region(v) for v in value):
        inner = ", ".join(_format_value(v, indent, locations, max_inline, collapse)
                          for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return format_attr(value)


def format_graph(graph, locations: bool = False, max_inline: int | None = MAX_INLINE,
                 indent: str = "", collapse: set | None = None) -> str:
    """`collapse`: a set of regions printed so far; a region met again (the forward body
    replayed in its gradient's scan is not, but a body shared by two nodes is) prints as a
    reference to the first."""
    ordered = list(graph.inputs) + [n for n in graph.nodes if n.op != "input"]
    names = {n: f"%{i}" for i, n in enumerate(ordered)}

    def ref(n):
        return names.get(n, f"%?{n.id}")

    sig = []
    for n in graph.inputs:
        kind = "" if n.attrs.get("kind", "input") == "input" else f" {n.attrs['kind']}"
        sig.append(f"{ref(n)}:{n.type}{kind} {format_name(n.attrs['name'])}")
    outs = ", ".join(ref(n) for n in graph.outputs)
    lines = [f"{indent}graph {format_name(graph.name)}({', '.join(sig)}) -> ({outs})"]
    for n in graph.nodes:
        if n.op == "input":
            continue
        if n.op == "constant":
            rhs = f"constant {format_constant(n.attrs['value'], max_inline)}"
        else:
            rhs = n.op
            if n.inputs:
                rhs += " " + ", ".join(ref(i) for i in n.inputs)
            if n.attrs:
                rhs += " {" + ", ".join(
                    f"{k}={_format_value(v, indent, locations, max_inline, collapse)}"
                    for k, v in n.attrs.items()) + "}"
        line = f"{indent}  {ref(n)}:{n.type} = {rhs}"
        if locations and n.locs:
            line += "  # " + ", ".join(f"{f}:{ln}" for f, ln in n.locs[:3])
        lines.append(line)
    lines.append(f"{indent}  return {outs}")
    return "\n".join(lines)
