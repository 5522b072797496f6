"""graphc.draw: a picture of a computation as a pydot graph (render it with `.create_svg()`,
`.write_png(path)`, or show it in a notebook).

- a Tensor: its eager tape, as micrograd's draw_dot draws it: one box per tensor with its
  name, its values (or its type when it has more than `max_values` elements) and, when the
  tensor is a scalar that requires grad, the gradient of that scalar with respect to every
  tensor of the tape (computed for the picture; no `.grad` is changed); one ellipse per op;
- a Graph: the IR picture of `graphc dump --format dot` (ir/dot.py);
- a function: traced on the given specs (graphc.spec or example arrays) and drawn as a Graph;
  grad=True draws the graph of its gradient (graphc.grad(fn)).
"""
from __future__ import annotations

import numpy as np

from ir.dot import build_pydot
from ir.errors import GraphcError, a_type, user_location
from ir.graph import Graph
from runtime.eager import Tensor, backward

from .tracing import trace


def draw(target, *specs, grad: bool = False, collapse: bool = False, max_values: int = 8,
         rankdir: str = "LR"):
    """A pydot.Dot of `target` (a Tensor, a Graph or a function; see the module docstring)."""
    if isinstance(target, Tensor):
        return _draw_tape(target, max_values, rankdir)
    if isinstance(target, Graph):
        return build_pydot(target, collapse)
    if callable(target):
        if not specs:
            raise GraphcError("draw: a function needs the specs of its arguments, e.g. "
                              "graphc.draw(fn, graphc.spec((4, 3)))", (user_location(),))
        if grad:
            from .transforms import grad as grad_transform
            fn = grad_transform(target)
            fn.__name__ = f"grad_{getattr(target, '__name__', 'fn')}".replace("<lambda>",
                                                                              "lambda")
        else:
            fn = target
        return build_pydot(trace(fn, *specs), collapse)
    raise GraphcError(f"draw: cannot draw {a_type(target)}; pass a Tensor, a Graph "
                      "or a function with its argument specs", (user_location(),))


LEAF_COLOR, CONSTANT_COLOR, VALUE_COLOR = "#ffe4b5", "#eeeeee", "#ffffff"


def _record_text(text: str) -> str:
    """Text inside a Graphviz record label: its field separators and quotes escaped."""
    for c in '\\|{}<>"':
        text = text.replace(c, "\\" + c)
    return text.replace("\n", "\\n")


def _format(values: np.ndarray, max_values: int) -> str:
    if values.size > max_values:
        from ir.types import TensorType
        return str(TensorType(values.shape, values.dtype))
    if values.ndim == 0:
        return f"{values.item():.4g}"
    return np.array2string(values, precision=4, separator=", ", suppress_small=True)


def _tape(root):
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        if t._ctx is not None:
            stack.extend(t._ctx[1])
    return order


def _draw_tape(root: Tensor, max_values: int, rankdir: str):
    import pydot

    grads = {}
    if root.requires_grad and root.size == 1:
        backward(root, record=grads)
    dot = pydot.Dot("tape", graph_type="digraph", rankdir=rankdir)
    dot.set_node_defaults(fontname="Helvetica", fontsize="10")
    tape = _tape(root)
    # ids numbered in traversal order (they were id() addresses, so two runs' DOT texts
    # differed on every line)
    number = {id(t): k for k, t in enumerate(tape)}
    for k, t in enumerate(tape):
        parts = [t.name] if t.name else []
        parts.append(f"data {_format(t.data, max_values)}")
        if id(t) in grads:
            parts.append(f"grad {_format(grads[id(t)].data, max_values)}")
        label = " | ".join(_record_text(p) for p in parts)
        color = LEAF_COLOR if t._ctx is None and t.requires_grad else \
            CONSTANT_COLOR if t._ctx is None else VALUE_COLOR
        dot.add_node(pydot.Node(f"t{k}", label='"{' + label + '}"', shape="record",
                                style="filled", fillcolor=f'"{color}"'))
        if t._ctx is not None:
            op, args = t._ctx[:2]
            dot.add_node(pydot.Node(f"op{k}", label=f"\"{op.name}\"", shape="ellipse"))
            dot.add_edge(pydot.Edge(f"op{k}", f"t{k}"))
            for a in args:
                dot.add_edge(pydot.Edge(f"t{number[id(a)]}", f"op{k}"))
    return dot
