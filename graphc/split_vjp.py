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
arguments, guards, Buffer updates, retracing all as Compiled's): gc.vjp makes one per call; a
gc.compile'd function called on tensors that require grad keeps one, and `call_on_tape`
records each such call on the eager tape as one entry whose backward runs the cotangent
plan, as torch.compile's backward graph. The cotangent plan is built at the first backward,
once per set of outputs that receive a cotangent.
"""
from __future__ import annotations

import functools

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Graph, current_graph
from ir.ops import api as F
from ir.rewrite import clone
from ir.types import is_float
from passes.autodiff import gradients, reaches
from passes.manager import optimize
from passes.rematerialize import MemoryLimitError
from runtime.eager import Tensor, TapeCall, is_grad_enabled, record_call

from .linearize import _copy_nodes, _inline, _input_like, _split, _traced
from .tracing import (arg_names, called, flatten, function_name, leaf_input_names,
                      leaves_and_structure, unflatten)
from .transforms import Compiled, closed_floats, split_aux
from .weak_calls import check_weak_ints


class Differentiated(Compiled):
    """fn's vjp, compiled: `call(((wrt, has_aux, closed), *args))` runs fn's forward once
    and returns ((out, aux), pullback), aux None without has_aux; pullback(cotangents), one
    per leaf of out (None: zeros), gives one cotangent per array leaf of the arguments (None
    where not differentiated), then one per tensor of the split's `closed`. `wrt`: the
    positions of the leaves to differentiate among the non-static arguments' leaves, or None
    for every floating-point one. `closed`: None (gc.vjp: the values fn closes over are
    constants, and an output without a gradient is an error at the call), or True: the
    tensors fn closes over that require grad are differentiated too, as the eager tape does,
    and an output without a gradient (an op with no reverse rule) is an error only when a
    cotangent reaches it (SplitVJP.no_gradient)."""

    def __init__(self, fn, pipeline="default", fast_math=False, static_argnums=(), jit=None,
                 polymorphic_shapes=None, memory_limit=None):
        def differentiated(what, *args):
            out = called(f"vjp of {function_name(fn)}", fn, args)
            return split_aux(out, "vjp") if what[1] else (out, None)
        differentiated.__name__ = function_name(fn)
        # (the leading argument is static: a negative position still counts from the end)
        static = (0,) + tuple(i + 1 if i >= 0 else i for i in static_argnums)
        super().__init__(differentiated, pipeline, fast_math, static_argnums=static, jit=jit,
                         polymorphic_shapes=polymorphic_shapes if polymorphic_shapes is None
                         or isinstance(polymorphic_shapes, str)  # (one for every argument)
                         else (None,) + tuple(polymorphic_shapes), memory_limit=memory_limit)
        self.differentiated_fn = fn

    @classmethod
    def of(cls, compiled: Compiled) -> "Differentiated":
        """The vjp of a compiled function (its fn under its precision, its options, its
        memory_limit bounding each of the two plans)."""
        return cls(compiled.fn, compiled.pipeline, compiled.fast_math,
                   compiled.static_argnums, compiled.jit, compiled.polymorphic_shapes,
                   compiled.memory_limit)

    def _names(self, count):  # fn's own: messages and TracedNumberError name its arguments
        return ["vjp"] + arg_names(self.differentiated_fn, count - 1)

    def _build(self, graph, args, written, donate):
        wrt, _, closed = args[0]
        return SplitVJP(graph, len(self.plan_inputs(args)), len(written), wrt, closed,
                        self.pipeline, self.fast_math, self.jit, self.memory_limit,
                        function_name(self.differentiated_fn))

    def forward(self, args, trace=None):
        """(fn's result, its SplitVJP, the residuals): the forward run once. `trace`: fn's
        plain trace at these arguments (graphc.transforms' `_trace`), made by the call
        already, without has_aux: the split needing a trace is built on it instead."""
        self._handed = trace
        try:
            return self._forward(args)
        finally:
            self._handed = None

    _handed = None  # (forward's `trace`, until _trace takes it)

    def _trace(self, args, key, given=None):
        handed, self._handed = self._handed, None
        if handed is None:
            return super()._trace(args, key, given)
        # fn's Python runs once a call (a hook that removes itself, a counter it bumps, run
        # again, would trace another fn): its graph, with differentiated's result, (out,
        # None), where fn's is out
        graph, written = handed
        tree = unflatten(graph.output_tree, range(len(graph.outputs)))
        tree = ((tree[0], None), tree[1]) if written else (tree, None)
        graph.output_tree = flatten(tree)[1]
        self._differentiates = graph.differentiates_itself
        return graph, written

    def _forward(self, args):
        self._check_argnums(len(args))
        key, leaves = self._key_and_leaves(args)
        split = self._plan_for_key(args, key)
        flags = split.requires_grad_now()
        if flags != split.flags:
            # a tensor fn closes over was set to require grad, or not to, since that split
            # was built: the split of these flags (a key of its own)
            args = ((*args[0][:2], flags),) + tuple(args[1:])
            key, leaves = self._key_and_leaves(args)
            split = self._plan_for_key(args, key)
        if self._weak_int_limits:
            check_weak_ints(leaves, self._weak_int_limits.get(id(split)))
        outs, residuals = split.forward([x.data if isinstance(x, Tensor) else x for x in leaves])
        return self._written_back(split, unflatten(split.output_tree, outs)), split, residuals

    def call(self, args, checked: bool = False):
        result, split, residuals = self.forward(args)
        return result, functools.partial(split.pullback, residuals)


class SplitVJP:
    """The two plans of fn's vjp at one signature, from `graph` (fn's trace, whose result is
    (out, aux), followed by the values of the `written` Buffers it updates): `count` inputs
    are the arguments' leaves; `wrt` picks those to differentiate (None: the float ones);
    `closed` (Differentiated's) picks the tensors bound to other inputs (fn's closures): None
    none, True those that require grad now, or one flag per tensor of `bound`.
    `memory_limit` (gc.compile's): each plan's peak memory must fit in it, the forward's
    with the residuals it returns, activations recomputed in the cotangent plan where they
    can be (runtime.build)."""

    def __init__(self, graph, count, written, wrt, closed, pipeline, fast_math, jit,
                 memory_limit=None, name="fn"):
        from runtime.build import build_plan  # (see graphc/linearize.py)
        self.output_tree = graph.output_tree
        self.count = count
        positions = unflatten(graph.output_tree, list(range(len(graph.outputs))))
        out_positions, _ = leaves_and_structure((positions[0] if written else positions)[0])
        inputs = graph.inputs
        self.wrt = [i for i in (range(count) if wrt is None else wrt)
                    if is_float(inputs[i].dtype)]
        bound = [(i, t) for i, t in closed_floats(graph) if i >= count] \
            if closed is not None else []
        self.bound = [t for _, t in bound]
        self.flags = closed if isinstance(closed, tuple) else self.requires_grad_now()
        self.closed = [t for t, flag in zip(self.bound, self.flags) if flag]
        # where each gradient goes in pullback's result: an argument leaf's position, or
        # after them, a closed tensor's
        self.slots = self.wrt + [count + k for k in range(len(self.closed))]
        xs = self.wrt + [i for (i, _), flag in zip(bound, self.flags) if flag]
        # the float outputs a gradient reaches (the others: no cotangent input, and no tape)
        ys = [(k, p) for k, p in enumerate(out_positions) if is_float(graph.outputs[p].dtype)]
        ys = [y for y, reached in zip(ys, reaches([graph.outputs[p] for _, p in ys],
                                                  [inputs[i] for i in xs])) if reached]
        # output leaf -> the GraphcError its gradient raises (an op with no reverse rule)
        self.no_gradient = {}
        try:
            joint, names, grads = _with_gradients(graph, ys, xs)
        except GraphcError:
            if closed is None:  # gc.vjp: at the call, as JAX's
                raise
            # only the outputs whose gradient fails are not differentiable (torch marks them
            # so; their backward says why), found one by one: once per signature
            for y in ys:
                try:
                    _with_gradients(graph, [y], xs)
                except GraphcError as exc:
                    self.no_gradient[y[0]] = exc
            ys = [y for y in ys if y[0] not in self.no_gradient]
            joint, names, grads = _with_gradients(graph, ys, xs)
        self.taped = {k for k, _ in ys} | set(self.no_gradient)  # the output leaves on tape
        # the output leaves each differentiated input (pullback's slots' order) reaches: one
        # reaching none of those given a cotangent gets no gradient, as the eager tape's
        # ops leave a tensor that no used result depends on (call_on_tape's rule)
        outs = [graph.outputs[p] for _, p in ys]
        self.reached = [frozenset(k for (k, _), r in zip(ys, reaches(outs, [inputs[x]])) if r)
                        for x in xs]
        self.cotangent_of = {name: k for name, (k, _) in zip(names, ys)}
        forward = len(joint.outputs)
        joint.set_outputs(joint.outputs + grads)
        joint.output_tree = None
        joint = optimize(joint, pipeline, fast_math=fast_math)
        known, self.cotangent_part = _split(joint, set(names), joint.outputs[:forward],
                                            joint.outputs[forward:])
        self.forward_count = forward
        self.name = name
        try:
            self.known_plan = build_plan(known, pipeline, fast_math=fast_math, jit=jit,
                                         memory_limit=memory_limit)
        except MemoryLimitError as exc:  # (the plain call of the same fn may fit: say why)
            raise exc.of_plan(f"the forward of compiled {name} on the tape, with the values "
                              f"it keeps for backward(),", (user_location(),)) from None
        self._build_plan = functools.partial(build_plan, pipeline=pipeline,
                                             fast_math=fast_math, jit=jit,
                                             memory_limit=memory_limit)
        # built at the first pullback on concrete cotangents, one per set of outputs given
        # a cotangent: {their cotangent inputs' names: plan}
        self._cotangent_plans = {}

    def requires_grad_now(self) -> tuple:
        """Whether each tensor of `bound` requires grad."""
        return tuple(t.requires_grad for t in self.bound)

    def forward(self, arrays):
        """(fn's outputs, the residuals) at the arguments' leaves `arrays`."""
        outs = self.known_plan(*arrays)
        return outs[:self.forward_count], outs[self.forward_count:]

    def pullback(self, residuals, cotangents) -> list:
        """One cotangent per argument leaf (None where not differentiated), then one per
        tensor of `closed`, from `cotangents`, one per leaf of fn's result (checked against
        it by the caller; None: zeros)."""
        graph = current_graph()
        inputs = self.cotangent_part.inputs[len(residuals):]
        if graph is not None:  # vmap(pullback), compile: the graph being traced computes it
            given = []
            for node in inputs:
                c = cotangents[self.cotangent_of[node.attrs["name"]]]
                given.append(_traced(graph, np.zeros(node.shape, node.dtype) if c is None
                                     else c, node.dtype))
            grads = _inline(graph, self.cotangent_part, residuals, given)
        else:
            given = [(node.attrs["name"], cotangents[self.cotangent_of[node.attrs["name"]]])
                     for node in inputs]
            given = [(name, c) for name, c in given if c is not None]
            received = tuple(name for name, _ in given)
            plan = self._cotangent_plans.get(received)
            if plan is None:
                part = self.cotangent_part if len(received) == len(inputs) else \
                    _zeros_for_the_others(self.cotangent_part, len(residuals), received)
                try:
                    plan = self._cotangent_plans[received] = self._build_plan(part)
                except MemoryLimitError as exc:
                    raise exc.of_plan(f"the backward of compiled {self.name}",
                                      (user_location(),)) from None
            grads = plan(*residuals, *[np.asarray(c) for _, c in given])
        out = [None] * (self.count + len(self.closed))
        for slot, g in zip(self.slots, grads):
            out[slot] = g
        return out


def _with_gradients(graph, ys, xs):
    """(a copy of `graph` with a cotangent input per output leaf of `ys` ((leaf, output
    position) pairs), their names, the gradients with respect to the inputs at `xs`)."""
    joint = clone(graph, f"{graph.name}_vjp")
    taken, names = {n.attrs["name"] for n in joint.inputs}, []
    for k, _ in ys:  # (an argument may be named "cotangent0")
        names.append(f"cotangent{k}")
        while names[-1] in taken:
            names[-1] += "_"
    outs = [joint.outputs[p] for _, p in ys]
    wrt = [joint.inputs[i] for i in xs]
    with joint.building():
        seeds = [joint.input(name, y.shape, y.dtype) for name, y in zip(names, outs)]
        grads = gradients(outs, wrt, seeds) if outs and wrt else [F.zeros_like(x) for x in wrt]
    return joint, names, grads


def _zeros_for_the_others(part, residuals, received) -> Graph:
    """The cotangent part taking the cotangents named `received` only, the others zeros
    (folded where the passes can): the pullback of the outputs that received gradients."""
    graph = Graph(part.name)
    env = {}
    with graph.building():
        for k, node in enumerate(part.inputs):
            env[node] = _input_like(graph, part, node) \
                if k < residuals or node.attrs["name"] in received \
                else F.zeros(node.shape, node.dtype)
    _copy_nodes(graph, [n for n in part.nodes if n.op != "input"], env)
    graph.set_outputs([env[o] for o in part.outputs])
    return graph


def call_on_tape(compiled, args, trace=None):
    """compiled(*args) where a non-static argument holds a tensor that requires grad, or fn
    closes over one (Compiled.call), with grad mode on, as torch.compile's call: fn's
    forward runs once (its split plan, keeping the residuals), and its results are tensors
    recorded on the tape as one entry over those tensors and the tensors fn closes over
    that require grad. backward() runs the cotangent plan on the residuals: the gradient
    is that of the values of this call (an argument changed in place since does not change
    it) and of the dropout masks it drew. `trace`: fn's trace at these arguments, made by
    this call already (Compiled.call's), which the split is built on if it needs one."""
    compiled._check_argnums(len(args))
    static = compiled._static(len(args))
    leaves, _ = leaves_and_structure([a for i, a in enumerate(args) if i not in static])
    wrt = tuple(i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x.requires_grad)
    if compiled.on_tape is None:
        compiled.on_tape = Differentiated.of(compiled)
    (result, _), split, residuals = compiled.on_tape.forward(
        ((wrt, False, True),) + tuple(args), trace)
    operands = [leaves[i] for i in split.wrt] + split.closed
    if not operands:  # (a static argument held the tensor that requires grad)
        return result  # arrays, as the plain call's
    name = function_name(compiled.fn).strip("<>")
    out_leaves, structure = leaves_and_structure(result)
    entry = TapeCall(f"compiled {name}", functools.partial(
        _pull_back, name, split, residuals, structure, len(out_leaves)))
    tensors = record_call(entry, operands, out_leaves,
                          [k in split.taped for k in range(len(out_leaves))])
    return unflatten(structure, tensors)


def _pull_back(name, split, residuals, structure, count, ctx, cotangents):
    """The tape entry's rule (runtime.eager.TapeCall): one gradient per operand, None for
    those that no result given a cotangent depends on."""
    if is_grad_enabled():  # backward(create_graph=True): the plan's results have no tape
        raise GraphcError(f"backward(create_graph=True) through compiled {name} is not "
                          "supported: its backward is a plan; take higher derivatives of a "
                          "traced function (gc.grad(gc.grad(f)))", (user_location(),))
    for k in sorted(cotangents):
        exc = split.no_gradient.get(k)
        if exc is not None:
            which = "its result" if structure is None else \
                leaf_input_names("result", unflatten(structure, range(count)))[k]
            raise GraphcError(f"backward() through {which} of compiled {name}: "
                              f"{exc.message}", (*exc.locs, user_location()))
    given = [None] * count
    for k, c in cotangents.items():
        given[k] = c.data
    grads = split.pullback(residuals, given)
    return [Tensor(grads[slot]) if need and not reached.isdisjoint(cotangents) else None
            for slot, need, reached in zip(split.slots, ctx.needs, split.reached)]
