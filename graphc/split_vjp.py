"""vjp on concrete arrays as JAX's (and torch.compile's backward): one forward, values kept.

fn is traced once, as gc.compile traces it; its vjp is added to that graph (cotangent
inputs, gradient nodes) and the whole is split as gc.linearize splits jvp's graph
(graphc/linearize.py): the known part runs fn's forward at the call and returns its result
and the residuals, the values the backward reads; the cotangent part takes the residuals and
the cotangents. A pullback called later computes with the values of the call, whatever
became of the arguments since (an array updated in place, a closed-over array refilled) and
with the dropout masks the forward drew; called on traced cotangents (vmap of the pullback,
jacrev's way) it adds the cotangent part to the graph being traced.

`Differentiated` keeps the split plans per signature, as gc.compile keeps plans (static
arguments, guards, Buffer updates, retracing all as Compiled's); gc.vjp makes one per call.
"""
from __future__ import annotations

import functools

import numpy as np

from ir.graph import current_graph
from ir.ops import api as F
from ir.rewrite import clone
from ir.types import is_float
from passes.autodiff import gradients
from passes.manager import optimize
from runtime.eager import Tensor

from .linearize import _inline, _split, _traced
from .tracing import arg_names, leaves_and_structure, unflatten
from .transforms import Compiled, _check_weak_ints, split_aux


class Differentiated(Compiled):
    """fn's vjp, compiled: `call(((wrt, has_aux), *args))` runs fn's forward once and
    returns ((out, aux), pullback), aux None without has_aux; pullback(cotangents), one per
    leaf of out (None: zeros), gives one cotangent per array leaf of the arguments (None
    where not differentiated). `wrt`: the positions of the leaves to differentiate among
    the non-static arguments' leaves, or None for every floating-point one."""

    def __init__(self, fn, pipeline="default", fast_math=False, static_argnums=(), jit=None):
        def differentiated(what, *args):
            out = fn(*args)
            return split_aux(out, "vjp") if what[1] else (out, None)
        differentiated.__name__ = getattr(fn, "__name__", "fn")
        # (the leading argument is static: a negative position still counts from the end)
        static = (0,) + tuple(i + 1 if i >= 0 else i for i in static_argnums)
        super().__init__(differentiated, pipeline, fast_math, static_argnums=static, jit=jit)
        self.differentiated_fn = fn

    def _names(self, count):  # fn's own: messages and TracedNumberError name its arguments
        return ["vjp"] + arg_names(self.differentiated_fn, count - 1)

    def _build(self, graph, args, written, donate):
        return SplitVJP(graph, len(self.plan_inputs(args)), len(written), args[0][0],
                        self.pipeline, self.fast_math, self.jit)

    def call(self, args, checked: bool = False):
        self._check_argnums(len(args))
        key, leaves = self._key_and_leaves(args)
        split = self._plan_for_key(args, key)
        if self._weak_int_limits:
            _check_weak_ints(leaves, self._weak_int_limits.get(id(split)))
        outs, residuals = split.forward([x.data if isinstance(x, Tensor) else x for x in leaves])
        result = self._written_back(split, unflatten(split.output_tree, outs))
        return result, functools.partial(split.pullback, residuals)


class SplitVJP:
    """The two plans of fn's vjp at one signature, from `graph` (fn's trace, whose result is
    (out, aux), followed by the values of the `written` Buffers it updates): `count` inputs
    are the arguments' leaves; `wrt` picks those to differentiate (None: the float ones)."""

    def __init__(self, graph, count, written, wrt, pipeline, fast_math, jit):
        from runtime.build import build_plan  # (see graphc/linearize.py)
        self.output_tree = graph.output_tree
        self.count = count
        positions = unflatten(graph.output_tree, list(range(len(graph.outputs))))
        out_positions, _ = leaves_and_structure((positions[0] if written else positions)[0])
        joint = clone(graph, f"{graph.name}_vjp")
        self.wrt = [i for i in (range(count) if wrt is None else wrt)
                    if is_float(joint.inputs[i].dtype)]
        ys = [(k, joint.outputs[p]) for k, p in enumerate(out_positions)
              if is_float(joint.outputs[p].dtype)]
        taken, names = {n.attrs["name"] for n in joint.inputs}, []
        for k, _ in ys:  # (an argument may be named "cotangent0")
            names.append(f"cotangent{k}")
            while names[-1] in taken:
                names[-1] += "_"
        self.cotangent_of = {name: k for name, (k, _) in zip(names, ys)}
        xs = [joint.inputs[i] for i in self.wrt]
        with joint.building():
            seeds = [joint.input(name, y.shape, y.dtype) for name, (_, y) in zip(names, ys)]
            grads = gradients([y for _, y in ys], xs, seeds) if ys and xs else \
                [F.zeros_like(x) for x in xs]
        forward = len(joint.outputs)
        joint.set_outputs(joint.outputs + grads)
        joint.output_tree = None
        joint = optimize(joint, pipeline, fast_math=fast_math)
        known, self.cotangent_part = _split(joint, set(names), joint.outputs[:forward],
                                            joint.outputs[forward:])
        self.forward_count = forward
        self.known_plan = build_plan(known, pipeline, fast_math=fast_math, jit=jit)
        self._build_cotangent_plan = functools.partial(
            build_plan, self.cotangent_part, pipeline, fast_math=fast_math, jit=jit)
        self._cotangent_plan = None  # built at the first pullback on concrete cotangents

    def forward(self, arrays):
        """(fn's outputs, the residuals) at the arguments' leaves `arrays`."""
        outs = self.known_plan(*arrays)
        return outs[:self.forward_count], outs[self.forward_count:]

    def pullback(self, residuals, cotangents) -> list:
        """One cotangent per argument leaf (None where not differentiated) from `cotangents`,
        one per leaf of fn's result (checked against it by the caller; None: zeros)."""
        graph = current_graph()
        given = []
        for node in self.cotangent_part.inputs[len(residuals):]:
            c = cotangents[self.cotangent_of[node.attrs["name"]]]
            if c is None:
                c = np.zeros(node.shape, node.dtype)
            given.append(np.asarray(c) if graph is None else _traced(graph, c, node.dtype))
        if graph is not None:  # vmap(pullback), compile: the graph being traced computes it
            grads = _inline(graph, self.cotangent_part, residuals, given)
        else:
            if self._cotangent_plan is None:
                self._cotangent_plan = self._build_cotangent_plan()
            grads = self._cotangent_plan(*residuals, *given)
        out = [None] * self.count
        for i, g in zip(self.wrt, grads):
            out[i] = g
        return out
