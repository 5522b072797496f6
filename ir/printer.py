"""The IR as text for people: a signature line, then one SSA line per node.

    graph mlp(%0:f32[4,3] x, %1:f32[3,8] param w1) -> (%3)
      %2:f32[4,8] = matmul %0, %1
      %3:f32[] = sum %2 {axes=(0, 1), keepdims=false}
      return %3

Inputs are numbered first, in signature order, then the other nodes in order. Inputs show
their names and kind (`param`, `state`); constants up to MAX_INLINE elements print their
value, longer ones a summary (print with max_inline=None to parse the text back).
"""
from __future__ import annotations

import numpy as np

from .types import SHORT_NAMES

MAX_INLINE = 16


def format_attr(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, np.dtype):
        return SHORT_NAMES[value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _scalar(v) -> str:
    if isinstance(v, bool):
        return format_attr(v)
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)  # inf, -inf, nan: the parser reads these names
    return repr(v)


def format_constant(value: np.ndarray, max_inline: int | None = MAX_INLINE) -> str:
    """The value, or for more than max_inline elements a summary (None: always the value)."""
    if max_inline is not None and value.size > max_inline:
        return f"<{value.size} values, min {value.min()!r}, max {value.max()!r}>"
    flat = value.reshape(-1).tolist()
    if value.ndim == 0:
        return _scalar(flat[0])
    return "[" + ", ".join(_scalar(v) for v in flat) + "]"


def format_graph(graph, locations: bool = False, max_inline: int | None = MAX_INLINE) -> str:
    ordered = list(graph.inputs) + [n for n in graph.nodes if n.op != "input"]
    names = {n: f"%{i}" for i, n in enumerate(ordered)}

    def ref(n):
        return names.get(n, f"%?{n.id}")

    sig = []
    for n in graph.inputs:
        kind = "" if n.attrs.get("kind", "input") == "input" else f" {n.attrs['kind']}"
        sig.append(f"{ref(n)}:{n.type}{kind} {n.attrs['name']}")
    outs = ", ".join(ref(n) for n in graph.outputs)
    lines = [f"graph {graph.name}({', '.join(sig)}) -> ({outs})"]
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
                rhs += " {" + ", ".join(f"{k}={format_attr(v)}"
                                        for k, v in n.attrs.items()) + "}"
        line = f"  {ref(n)}:{n.type} = {rhs}"
        if locations and n.locs:
            line += "  # " + ", ".join(f"{f}:{ln}" for f, ln in n.locs[:3])
        lines.append(line)
    lines.append(f"  return {outs}")
    return "\n".join(lines)
