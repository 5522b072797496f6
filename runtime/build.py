"""From a graph to a running plan in one call: the pass pipeline, then lowering.

    plan = build_plan(graph, "default", fast_math=False, donate=["w"], jit=None)

is `compile_graph(optimize(graph, pipeline, fast_math), donate=..., jit=..., fast_math=...)`,
the sequence graphc.compile, training, sampling, dump and the bench all run. A function is
traced first by its caller (graphc's tracing sits above the runtime: graphc.compile traces,
then calls this).
"""
from __future__ import annotations

from passes.manager import optimize

from .codegen import Plan, compile_graph
from .interpreter import evaluate


def build_plan(graph, pipeline="default", *, fast_math: bool = False, name: str | None = None,
               donate=(), jit: bool | None = None, parallel: bool | None = None,
               check_finite: bool = False, background_compile: bool | None = None) -> Plan:
    """Optimise `graph` with `pipeline` (a pipeline name or pass names, as
    passes.manager.optimize takes) and compile it. `fast_math` applies to both: the rewrites
    that assume finite values and the generated kernels' LLVM flags."""
    # the interpreter is the evaluator GRAPHC_BISECT=1 compares each pass's graph with
    optimised = optimize(graph, pipeline, fast_math=fast_math, evaluate=evaluate)
    return compile_graph(optimised, name=name, donate=donate, check_finite=check_finite,
                         parallel=parallel, jit=jit, background_compile=background_compile,
                         fast_math=fast_math)
