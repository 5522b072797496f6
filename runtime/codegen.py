"""Code generation: a graph becomes one straight-line Python function over numpy arrays.

In the spirit of torch.fx's codegen: each node is one line, values live in local variables,
a value is deleted right after its last use (so numpy can free or reuse its memory), and op
implementations and attributes are bound as globals of the generated module. The source is
kept on the plan (`plan.source`) for people to read.
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.types import SHORT_NAMES

from .interpreter import bind_inputs

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}


def _literal(value):
    """Python source for an attribute when it has an exact, readable literal form."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float) and np.isfinite(value):
        return repr(value)
    if isinstance(value, tuple) and all(_literal(v) is not None for v in value):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    return None


class Plan:
    """A compiled, callable graph: `plan(*inputs) -> list of output arrays`."""

    def __init__(self, graph, name: str | None = None):
        self.graph = graph
        self.name = name or graph.name
        self.source, self._globals = self._generate()
        code = compile(self.source, f"<graphc plan {self.name}>", "exec")
        exec(code, self._globals)
        self._fn = self._globals["plan"]

    def _generate(self):
        graph = self.graph
        env = {"np": np}
        names = {}
        for i, n in enumerate(graph.inputs):
            names[n] = f"in{i}"
        last_use = {}
        for idx, n in enumerate(graph.nodes):
            for i in n.inputs:
                last_use[i] = idx
        outputs = set(graph.outputs)
        lines = [f"def plan({', '.join(names[n] for n in graph.inputs)}):"]
        counter = 0
        for idx, n in enumerate(graph.nodes):
            if n.op == "input":
                continue
            var = f"v{counter}"
            counter += 1
            names[n] = var
            if n.op == "constant":
                env[f"c_{var}"] = n.attrs["value"]
                lines.append(f"    {var} = c_{var}")
            else:
                lines.append(f"    {var} = {self._expression(n, names, env)}")
            dead = [names[i] for i in dict.fromkeys(n.inputs)
                    if last_use.get(i) == idx and i not in outputs and i.op != "input"]
            if dead:
                lines.append(f"    del {', '.join(dead)}")
        result = ", ".join(names[o] for o in graph.outputs)
        lines.append(f"    return ({result}{',' if len(graph.outputs) == 1 else ''})")
        return "\n".join(lines) + "\n", env

    @staticmethod
    def _expression(n, names, env):
        args = [names[i] for i in n.inputs]
        if n.op in _INFIX and n.inputs[0].ndim + n.inputs[1].ndim > 0:
            return f"{args[0]} {_INFIX[n.op]} {args[1]}"
        if n.op == "neg":
            return f"-{args[0]}"
        if n.op == "reshape":
            return f"{args[0]}.reshape({n.attrs['shape']!r})"
        if n.op == "transpose":
            return f"{args[0]}.transpose({n.attrs['perm']!r})"
        fn_name = f"op_{n.op}"
        env[fn_name] = get_op(n.op).impl
        kwargs = []
        for key, value in n.attrs.items():
            lit = _literal(value)
            if lit is None:
                glob = f"a_{names[n]}_{key}"
                if isinstance(value, np.dtype):
                    glob = f"{SHORT_NAMES[value]}"
                env[glob] = value
                lit = glob
            kwargs.append(f"{key}={lit}")
        return f"{fn_name}({', '.join(args + kwargs)})"

    def __call__(self, *args, **kwargs):
        values = bind_inputs(self.graph, args, kwargs)
        try:
            outs = self._fn(*values)
        except (FloatingPointError, ValueError, IndexError, TypeError) as exc:
            raise GraphcError(f"plan {self.name!r} failed while running: {exc}") from exc
        return [o if type(o) is np.ndarray else np.asarray(o, dtype=n.dtype)
                for o, n in zip(outs, self.graph.outputs)]


def compile_graph(graph, name=None) -> Plan:
    return Plan(graph, name)
