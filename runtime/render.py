"""The "render" lowering stage: the plan's source, one straight-line Python function.

In the spirit of torch.fx's codegen, each node becomes a few readable lines, from its kernel
choice (runtime/lowering.py) and its lowering record's emitter (runtime/op_lowering.py). With
the memory plan (runtime/memory.py), computed values are written with numpy's `out=` into
buffers allocated once per plan (globals `buf3`, reached through precomputed views `t5`), so
a call allocates only its outputs and the results of ops without an `out=` kernel.

Rendering allocates nothing and compiles nothing: the globals the source names are listed as
`Binding`s (a view of pool buffer 3, a constant to compute, a generated kernel to load) that
Plan resolves when it is built, so `graphc dump --after render` shows the source of any plan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ir.ops.registry import get_op
from ir.types import SHORT_NAMES

from .fusion import fused_operand_kinds, loop_type
from .jit import argument_spec
from .kernelgen import kernel_source
from .layouts import operand_type
from .memory import aliasing_outputs, written_over
from .lowering import concat_by_copies, kernel_with_written_call, softmax_grad_scaled_call
from .op_lowering import emit_numpy, is_fused_result, lowering_of, view_expression


class Binding(NamedTuple):
    """A global of the plan's source, made when the plan is built:
    value (the object itself), constant (the node's value, computed once, read-only),
    pool (buffer, shape, perm or None: a view of a pool buffer, laid out for a transpose by
    perm), part (buffer, size, concat shape, index, steps: a product's view inside its
    concat's pool buffer, runtime.memory.Part), reshape (global name, shape: a view of an
    earlier global)."""
    kind: str
    args: tuple


class FusedKernel(NamedTuple):
    name: str  # the global the source calls
    node: object
    source: str  # the generated module (runtime/kernelgen.py)
    spec: tuple  # what it is compiled for (runtime.jit.argument_spec)


@dataclass
class Rendered:
    """The render stage's result: the source and what its globals are."""
    params: list  # names of the plan function's parameters
    steps: list  # (node, statements, result expression), in order
    outputs: list  # output expressions
    copy_out: list  # per output: copied before it escapes (plan-owned memory)
    names: dict  # node -> its expression in the source
    helpers: list  # (node, source of a module-level function: a two-way split kernel)
    bindings: dict = field(default_factory=dict)  # global name -> Binding
    fused: list = field(default_factory=list)  # FusedKernel, in order
    fixed_kernels: list = field(default_factory=list)  # (runtime.jit kernel, dtype) to warm
    uses_gemm: bool = False  # runtime.gemm's products: globals _gemm, _threads, _sgemm, ...
    source: str = ""
    line_node: dict = field(default_factory=dict)  # source line number -> node
    # node -> the kernel its step runs, where that kernel computes more than the node (a
    # pair's): `graphc profile` shows the step under the kernel's name
    step_names: dict = field(default_factory=dict)
    # node -> the values its step's finite check is given as operands, where its kernel
    # reads more than the node's inputs (softmax_grad_scaled: y, g and the scale)
    step_operands: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.source


def render(graph, mp, choices, fast_math: bool = False, options=None) -> Rendered:
    """The plan's source for `graph` (the fused graph), its memory plan and kernel choices.
    `options` (runtime.stages.LoweringOptions) reach the plans of control-flow regions."""
    r = _Renderer(graph, mp, choices, fast_math, options)
    r.run()
    rendered = r.out
    rendered.source, rendered.line_node = render_source(rendered)
    return rendered


def render_source(r: Rendered, instrument=None, step_lines=None, again=()) -> tuple:
    """(source, {line number: node}) of the plan function. `instrument`: "profile" times
    every step into _times[k], and runs the steps in `again` a second time at once, timed
    into _again[k]; "check" calls _check(k, value, *operands) after every step."""
    lines, line_node = [], {}
    for node, text in r.helpers:
        for line in text.rstrip("\n").split("\n"):
            lines.append(line)
            line_node[len(lines)] = node
    lines.append(f"def plan({', '.join(r.params)}):")
    for k, (node, stmts, var) in enumerate(r.steps):
        if instrument == "profile" and stmts:
            lines.append("    _t = _clock()")
        for stmt in stmts:
            lines.append(f"    {stmt}")
            line_node[len(lines)] = node
        if instrument == "profile" and stmts:
            lines.append(f"    _times[{k}] += _clock() - _t")
            if k in again:
                lines.append("    _t = _clock()")
                lines.extend(f"    {stmt}" for stmt in stmts)
                lines.append(f"    _again[{k}] += _clock() - _t")
        if instrument == "check":
            operands = "".join(f", {r.names[i]}"
                               for i in r.step_operands.get(node, node.inputs))
            lines.append(f"    _check({k}, {var}{operands})")
    outs = [f"{v}.copy()" if copy else v for v, copy in zip(r.outputs, r.copy_out)]
    lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    return "\n".join(lines) + "\n", line_node


def _literal(value):
    """Python source for an attribute when it has an exact, readable literal form."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple) and all(_literal(v) is not None for v in value):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    return None


class _Renderer:
    def __init__(self, graph, mp, choices, fast_math, options=None):
        self.options = options
        self.graph, self.mp, self.choices, self.fast_math = graph, mp, choices, fast_math
        params = [f"in{i}" for i in range(len(graph.inputs))]
        self.out = Rendered(params, [], [], [], {}, [])
        self.shapes = {}  # plan-owned global (pool view, constant) -> its shape
        self.results_of = {}  # fused node with several results -> its tuple_gets, by index
        # node -> the nodes after it that its step's kernel also writes, in order:
        # LayerNorm's weight gradient and its bias's, a GELU gradient's bias sum
        self.also_written = {}
        for written, by in list(choices.paired.items()) + list(choices.bias_paired.items()):
            self.also_written.setdefault(by, []).append(written)
        for n in graph.nodes:
            if is_fused_result(n):
                self.results_of.setdefault(n.inputs[0], []).append(n)
        for results in self.results_of.values():
            results.sort(key=lambda r: r.attrs["index"])

    def bind(self, name, kind, *args, shape=None):
        self.out.bindings[name] = Binding(kind, args)
        if shape is not None:
            self.shapes[name] = tuple(shape)

    def run(self):
        graph, mp, out = self.graph, self.mp, self.out
        names = out.names
        for i, n in enumerate(graph.inputs):
            names[n] = f"in{i}"
        counter = 0
        in_flight = set()  # allreduce_start nodes whose wait is still to come
        for n in graph.nodes:
            if n.op == "input":
                continue
            if n.op == "allreduce_start":
                in_flight.add(n)
            elif n.op == "allreduce_wait":
                in_flight.discard(n.inputs[0])
            choice = self.choices.choice[n]
            if choice.kind == "in-pair":  # written by the step before: named there
                out.steps.append((n, [], names[n]))
                continue
            if choice.kind in ("into-concat", "in-concat"):  # nothing to compute: its concat
                names[n] = names[n.inputs[0]]  # copies the operand, or it is in place already
                out.steps.append((n, [], names[n]))
                continue
            if choice.kind == "in-reader":  # its reader's kernel computes it: never read
                continue
            if choice.kind == "result":  # named and written by its fused node's kernel
                out.steps.append((n, [], names[n]))
                continue
            var = f"t{counter}"
            counter += 1
            names[n] = var
            if n in self.also_written:  # one kernel for n and the nodes after it, here
                written = self.also_written[n]
                for m in written:  # their steps, next, name what this one wrote
                    names[m] = f"t{counter}"
                    counter += 1
                self.out.fixed_kernels.append((choice.detail, n.dtype))
                self.out.step_names[n] = choice.detail
                lines = self.destination(n, var)
                for m in written:
                    lines += self.destination(m, names[m])
                lines += kernel_with_written_call(choice.detail, n, written, names)
                if in_flight:  # as after layer_norm_grad or gelu_grad alone (collectives)
                    lines.append("_collectives.progress()")
                out.steps.append((n, lines, var))
                continue
            if n in self.choices.scaled:  # softmax_grad's kernel scales: its step, its time
                sg, scale = self.choices.scaled[n]
                self.out.fixed_kernels.append((choice.detail, n.dtype))
                self.out.step_names[sg] = choice.detail
                self.out.step_operands[sg] = (*sg.inputs, scale)  # the step's value is n's
                out.steps.append((sg, self.destination(n, var) + softmax_grad_scaled_call(
                    sg, scale, names, var), var))
                continue
            args = [names[i] for i in n.inputs]
            lines = self.node_lines(n, choice, var, args)
            if in_flight and lowering_of(n.op).mpi_progress:
                # Open MPI has no progress thread: a bucket in flight moves while the plan
                # calls into MPI, so it does after each long kernel (runtime/collectives.py)
                lines.append("_collectives.progress()")
            out.steps.append((n, lines, names[n]))  # a tuple of a fused node's results
        out.outputs = [names[o] for o in graph.outputs]
        # outputs that live in plan-owned memory must be copied before they escape, and so
        # must outputs in the caller's arrays (an input, a view of one, a value the passes
        # simplified to one: d/da sum(a * b) is b), as eager mode computes new arrays: the
        # caller refilling an input buffer, or updating weights in place with gradients,
        # changed results it held. A donated input returned as it is stays that array.
        # A second output in the memory of an earlier one ((x * 2, x * 2) after CSE, a
        # value and its transpose) is a copy: writing into one result changed the other.
        # A region's plan returns its inputs as they are (LoweringOptions.alias_inputs).
        donated = set(self.options.donate) if self.options is not None else set()
        alias_inputs = self.options is not None and self.options.alias_inputs
        out.copy_out = [aliasing or mp.storage[mp.root[o]].kind in ("constant", "pool")
                        for o, aliasing in zip(graph.outputs, aliasing_outputs(
                            graph, mp, donated, alias_inputs))]

    def node_lines(self, n, choice, var, args) -> list:
        if choice.kind == "constant":
            self.bind(var, "constant", n, shape=n.shape)
            return []
        if choice.kind == "view":
            return [f"{var} = {view_expression(n, args[0])}"]
        if choice.kind == "library":
            return [f"{var} = {self.library_call(n, args, var)}"]
        if n.op == "fused" and "results" in n.attrs:
            return self.fused_call(n, args, var, choice.detail == "parallel")
        lines = self.destination(n, var)
        scratch = []
        for j, b in enumerate(self.mp.storage[n].scratch):
            self.bind(f"{var}_s{j}", "pool", b, n.size, n.shape, None)
            scratch.append(f"{var}_s{j}")
        if choice.kind == "generated":
            return lines + self.fused_call(n, args, var, choice.detail == "parallel")
        if choice.kind == "assembled":
            return lines
        if choice.kind == "concat-copies":
            return lines + concat_by_copies(n, args, var, self.choices.into_concat,
                                            self.choices.written.get(n, ()))
        if choice.kind == "numba":
            self.out.fixed_kernels.append((choice.detail, n.dtype))
            self.out.uses_gemm |= n.op in ("matmul", "matmul_add")
            return lines + lowering_of(n.op).jit_emit(n, args, var)
        if choice.kind == "causal":
            from . import causal
            self.out.uses_gemm = True
            self.bind("_banded_matmul4d", "value", causal.kernel())
            return lines + causal.call_source(n, self.choices.causal[n], args, var)
        if choice.kind == "tiles":
            from . import tiles
            self.bind("_tile_products", "value", tiles.kernel())
            return lines + tiles.call_source(n, args, var, self.choices.tile_modes.get(n, 0))
        if choice.kind == "split":
            return lines + self.split_kernel(n, var, args, scratch)
        return lines + emit_numpy(n, args, var, scratch)

    def destination(self, n, var) -> list:
        """The buffer the node is written into: a view of a pool buffer, a donated input or
        a fresh array."""
        storage = self.mp.storage[n]
        if storage.kind == "pool":
            self.bind(var, "pool", storage.buffer, n.size, n.shape,
                      self.choices.laid_out.get(n), shape=n.shape)
            return []
        if storage.kind == "part":  # a view inside its concat's buffer
            concat = storage.part.concat
            self.bind(var, "part", storage.buffer, concat.size, concat.shape,
                      storage.part.index, storage.part.steps, shape=n.shape)
            return []
        if storage.kind == "donated":
            return [f"{var} = {self.out.names[storage.donor]}"]
        dtype = SHORT_NAMES[n.dtype]
        self.bind(dtype, "value", n.dtype)
        return [f"{var} = np.empty({n.shape!r}, {dtype})"]

    def split_kernel(self, n, var, args, scratch) -> list:
        """The node's kernel as a function run on two halves of axis 0 at once: numpy's
        elementwise loops are single-threaded and release the GIL, so the second core works
        on the other half. Operands broadcast along axis 0 are passed whole."""
        params = ["dst"] + [f"a{i}" for i in range(len(args))] + \
                 [f"s{j}" for j in range(len(scratch))]
        body = emit_numpy(n, params[1:1 + len(args)], "dst", params[1 + len(args):])
        fn = f"_kernel_{var}"
        self.out.helpers.append((n, f"def {fn}({', '.join(params)}):\n" +
                                 "".join(f"    {line}\n" for line in body)))
        sliced = [True] + [i.ndim == n.ndim and i.shape[0] == n.shape[0] for i in n.inputs] \
            + [True] * len(scratch)
        h = n.shape[0] // 2
        names = [var] + args + scratch
        hi = ", ".join(f"{x}[{h}:]" if cut else x for x, cut in zip(names, sliced))
        lo = ", ".join(f"{x}[:{h}]" if cut else x for x, cut in zip(names, sliced))
        return [f"_half = _submit({fn}, {hi})", f"{fn}({lo})", "_half.result()"]

    def fused_call(self, n, args, var, parallel) -> list:
        """One call of the cluster's numba kernel on 2-D views (rows, last axis). A node
        with several results names each one `{var}_{k}` and passes them all."""
        kinds = fused_operand_kinds(n)
        loop = loop_type(n)
        cols = loop.shape[-1]
        rows = loop.size // cols
        results = self.results_of.get(n, []) if "results" in n.attrs else None
        written = [(0, n)] if results is None else [(r.attrs["index"], r) for r in results]
        aliases = tuple((k, j) for k, r in written for j in written_over(self.mp, r, n)
                        if kinds[j] == "full" and n.inputs[j].dtype == r.dtype)
        source = kernel_source(n.attrs["program"], kinds, [i.type for i in n.inputs],
                               parallel, self.fast_math, n.attrs.get("results"), aliases)
        name = f"_fused_{var}"
        shapes = {"full": (rows, cols), "row": (cols,), "col": (rows,), "scalar": (1,),
                  "block": loop.shape[-2:]}
        # compiled for the layouts and read-only flags the call passes (a transposed or
        # sliced operand compiled a second time at the first call otherwise)
        laid_out = self.choices.laid_out
        spec = argument_spec(n, kinds, [operand_type(i, shapes[k], self.mp, laid_out)
                                        for i, k in zip(n.inputs, kinds)])
        if results is not None:  # each result's dtype in place of the node's
            spec = (tuple(t.dtype.name for t in n.type.elements),) + spec[1:]
        self.out.fused.append(FusedKernel(name, n, source, spec))
        operands = [self.reshaped_view(a, i.shape, shapes[k])
                    for a, k, i in zip(args, kinds, n.inputs)]
        if results is None:
            out = self.reshaped_view(var, n.shape, (rows, cols))
            return [f"{name}({out}, {', '.join(operands)})"]
        lines, outs = [], []
        read = {r.attrs["index"]: r for r in results}
        unread = iter(self.mp.storage[n].scratch)  # pool buffers for results nothing reads
        for k, t in enumerate(n.type.elements):
            if k in read:
                lines += self.destination(read[k], f"{var}_{k}")
                self.out.names[read[k]] = f"{var}_{k}"
            else:
                self.bind(f"{var}_{k}", "pool", next(unread), t.size, t.shape, None,
                          shape=t.shape)
            outs.append(self.reshaped_view(f"{var}_{k}", t.shape, (rows, cols)))
        self.out.names[n] = f"({', '.join(f'{var}_{k}' for k in range(len(outs)))},)"
        return lines + [f"{name}({', '.join(outs + operands)})"]

    def reshaped_view(self, name, shape, target) -> str:
        """Source for array `name` viewed with shape `target`; plan-owned arrays (pool
        buffers, constants) are reshaped once, when the plan is built, not on every call."""
        if tuple(shape) == tuple(target):
            return name
        if name in self.shapes:
            view = f"{name}_as_{'x'.join(str(d) for d in target)}"
            self.bind(view, "reshape", name, tuple(target), shape=target)
            return view
        return f"{name}.reshape({tuple(target)!r})"

    def library_call(self, n, args, var) -> str:
        runner = lowering_of(n.op).runner
        if runner is not None:  # its own callable, built once for this node
            fn_name = f"run_{var}"
            self.bind(fn_name, "value", runner(n, self.options))
        else:
            fn_name = f"op_{n.op}"
            self.bind(fn_name, "value", get_op(n.op).impl)
        kwargs = []
        for key, value in n.attrs.items():
            lit = _literal(value)
            if lit is None:
                lit = f"{var}_{key}"
                self.bind(lit, "value", value)
            kwargs.append(f"{key}={lit}")
        return f"{fn_name}({', '.join(args + kwargs)})"
