"""Lowering as a linear list of named stages, from an optimised graph to a plan's source:

    fuse            elementwise clusters become `fused` nodes (with numba)   runtime/fusion.py
                    (after dropping stop_gradient and widening half ops)
    plan-memory     liveness and buffer assignment                           runtime/memory.py
    choose-kernels  which kernel computes each node                          runtime/lowering.py
    render          the plan function's source and what its globals are      runtime/render.py

Each stage reads the state the earlier ones left (`Lowered`), stores its result there and
prints it (`Stage.show`): `graphc dump --after STAGE` prints the state after any stage. Plan
(runtime/codegen.py) runs exactly this list, then binds the globals and compiles the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ir.errors import GraphcError
from ir.printer import format_graph
from ir.rewrite import rebuild

from .fusion import fuse
from .lowering import choose_kernels
from .memory import format_memory_plan, plan_memory
from .render import render
from .widen import widen_half


@dataclass(frozen=True)
class LoweringOptions:
    donate: tuple = ()  # input names whose arrays outputs may overwrite
    jit: bool = False  # numba kernels: fused clusters, fixed kernels, runtime.gemm
    parallel: bool = False  # numpy kernels split in two halves on two threads
    fast_math: bool = False  # generated kernels may reassociate (runtime/kernelgen.py)
    # outputs that are inputs (or views of them) are returned uncopied: a region's plan, whose
    # loop driver never writes into the arrays it passes (runtime/control_flow.py)
    alias_inputs: bool = False


@dataclass
class Lowered:
    """A graph's lowering so far: each stage fills in its own field."""
    graph: object  # the optimised graph
    options: LoweringOptions
    kernel_graph: object = None  # fuse: the graph the kernels run
    memory_plan: object = None  # plan-memory: runtime.memory.MemoryPlan
    kernels: object = None  # choose-kernels: runtime.lowering.KernelChoices
    rendered: object = None  # render: runtime.render.Rendered
    done: list = field(default_factory=list)  # names of the stages run, in order


def without_stop_gradients(graph):
    """The graph with each stop_gradient's readers reading its operand (the graph itself when
    it has none). A lowered graph is never differentiated (transformations differentiate the
    traced graph before the passes run), and a stop_gradient (a value entering a no_grad
    block of a traced function, `detach`, a composite's stopped max) between two elementwise
    ops would split the cluster fusion builds of them."""
    if not any(n.op == "stop_gradient" for n in graph.nodes):
        return graph
    return rebuild(graph, lambda node, inputs, new:
                   inputs[0] if node.op == "stop_gradient" else None)[0]


def _fuse(state):
    # half-precision ops become float32 kernels between casts (runtime/widen.py); fused
    # nodes run as numba kernels: without numba the graph stays as it is
    graph = widen_half(without_stop_gradients(state.graph))
    state.kernel_graph = fuse(graph) if state.options.jit else graph


def _plan_memory(state):
    state.memory_plan = plan_memory(state.kernel_graph, state.options.donate,
                                    state.options.jit, state.options.alias_inputs)


def _choose_kernels(state):
    state.kernels = choose_kernels(state.kernel_graph, state.memory_plan, state.options.jit,
                                   state.options.parallel)


def _render(state):
    state.rendered = render(state.kernel_graph, state.memory_plan, state.kernels,
                            state.options.fast_math, state.options)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable  # (Lowered) -> None: stores its result in the state
    show: Callable  # (Lowered) -> str: that result, printed


STAGES = (
    Stage("fuse", _fuse, lambda s: format_graph(s.kernel_graph)),
    Stage("plan-memory", _plan_memory,
          lambda s: format_memory_plan(s.kernel_graph, s.memory_plan)),
    Stage("choose-kernels", _choose_kernels, lambda s: str(s.kernels)),
    Stage("render", _render, lambda s: s.rendered.source),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise GraphcError(f"unknown lowering stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def lower(graph, options: LoweringOptions, until: str | None = None) -> Lowered:
    """Run the stages in order, stopping after `until` (all of them by default)."""
    if until is not None:
        stage_named(until)
    state = Lowered(graph, options)
    for stage in STAGES:
        stage.run(state)
        state.done.append(stage.name)
        if stage.name == until:
            break
    return state
