"""From a graph to a running plan in one call: the pass pipeline, then lowering.

    plan = build_plan(graph, "default", fast_math=False, donate=["w"], jit=None)

is `compile_graph(optimize(graph, pipeline, fast_math), donate=..., jit=..., fast_math=...)`,
the sequence graphc.compile, training, sampling, dump and the bench all run. A function is
traced first by its caller (graphc's tracing sits above the runtime: graphc.compile traces,
then calls this). With `memory_limit` (bytes, or a size such as "200MB"), the optimised graph
goes through passes.rematerialize before lowering, with this module's memory planner as its
oracle; what it recomputed is `plan.remat_report`, also logged (logger "graphc", INFO).
"""
from __future__ import annotations

import dataclasses
import logging

from ir.specialize import graph_is_symbolic
from passes.manager import optimize
from passes.rematerialize import MemoryModel, parse_memory_limit, rematerialize

from . import jit as jit_kernels
from . import threads
from .codegen import Plan, compile_graph
from .interpreter import evaluate
from .lowering import parallel_default
from .polymorphic import PolymorphicPlan
from .op_lowering import is_constant, is_view
from .stages import LoweringOptions, lower

log = logging.getLogger("graphc")


def build_plan(graph, pipeline="default", *, fast_math: bool = False, name: str | None = None,
               donate=(), jit: bool | None = None, parallel: bool | None = None,
               check_finite: bool = False, background_compile: bool | None = None,
               memory_limit=None, alias_inputs: bool = False) -> Plan:
    """Optimise `graph` with `pipeline` (a pipeline name or pass names, as
    passes.manager.optimize takes) and compile it. `fast_math` applies to both: the rewrites
    that assume finite values and the generated kernels' LLVM flags. `memory_limit`: the
    plan's peak memory (plan.memory["total"]) must fit in it; activations are recomputed in
    the backward pass until it does. `alias_inputs`: outputs that are inputs, or views of
    them, are not copied (a control-flow region's plan, runtime/control_flow.py)."""
    # the interpreter is the evaluator GRAPHC_BISECT=1 compares each pass's graph with
    optimised = optimize(graph, pipeline, fast_math=fast_math, evaluate=evaluate)
    report, fit_budget = None, None
    if memory_limit is not None:
        options = LoweringOptions(tuple(donate), jit_kernels.enabled() if jit is None else jit,
                                  parallel_default() if parallel is None else parallel,
                                  fast_math, alias_inputs)
        limit, label = parse_memory_limit(memory_limit), name or graph.name

        def fit_budget(concrete):
            fitted, fit_report = rematerialize(concrete, limit, memory_model(options))
            log.info("graphc: %s: %s", label, fit_report)
            return fitted, fit_report

        if not graph_is_symbolic(optimised):
            optimised, report = fit_budget(optimised)
    plan = compile_graph(optimised, name=name, donate=donate, check_finite=check_finite,
                         parallel=parallel, jit=jit, background_compile=background_compile,
                         fast_math=fast_math, alias_inputs=alias_inputs)
    if isinstance(plan, PolymorphicPlan):
        # the budget is met per binding: the memory a plan needs depends on the sizes
        plan.fit_budget = fit_budget
    else:
        plan.remat_report = report
    return plan


def memory_model(options: LoweringOptions) -> MemoryModel:
    """The memory planner as passes.rematerialize's oracle: the bytes the plan of a graph
    lowered with `options` needs (fusion included, as the real plan's). In a process forked
    after GNU OpenMP started, plans lower without numba (runtime.codegen.Plan), and numpy's
    kernels may need more memory than the fused ones: so does this model there."""
    def peak(graph) -> int:
        used = options
        if used.jit and threads.forked_from_openmp():
            used = dataclasses.replace(options, jit=False)
        return lower(graph, used, until="plan-memory").memory_plan.stats["total"]
    return MemoryModel(peak, is_view, is_constant)
