"""The pass manager: named pipelines of passes, with verification, statistics and bisection.

    optimize(graph)                       # the default pipeline
    run_pipeline(graph, "default", verify=True, bisect=True, stop_after="cse")

Bisection (option `bisect=True` or the environment variable GRAPHC_BISECT=1) evaluates the
graph before and after every pass on the same seeded float inputs and stops at the first pass
that changes a result, naming the pass and the output node (with its source lines). Evaluating
a graph is the runtime's job, a layer above: the caller passes the evaluator
(`evaluate=runtime.interpreter.evaluate`, as graphc does).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ir import settings
from ir.errors import GraphcError
from ir.specialize import graph_is_symbolic, size_checks
from ir.types import Dim, substitute
from ir.verify import verify

from .buckets import bucket_allreduce, data_parallel
from .cse import cse
from .dce import dce
from .fold import fold
from .simplify import simplify

# elementwise fusion is the first lowering stage (runtime/stages.py), not a pass here:
# graphc dump --after fuse shows it
PASSES = {"simplify": simplify, "fold": fold, "cse": cse, "dce": dce}
# Passes that add work rather than simplify: communication across ranks (passes/buckets.py).
# Named like passes (graphc dump --passes default,data_parallel), tested on their own.
COMMUNICATION_PASSES = {"bucket": bucket_allreduce, "data_parallel": data_parallel}
PIPELINES = {
    "O0": [],
    "default": ["simplify", "fold", "cse", "simplify", "dce"],
}


@dataclass
class PassStat:
    name: str
    nodes_before: int
    nodes_after: int
    seconds: float


@dataclass
class PipelineResult:
    graph: object
    stats: list = field(default_factory=list)
    stages: list = field(default_factory=list)  # (pass name, graph after it)

    def table(self) -> str:
        rows = [f"{'pass':<10} {'before':>7} {'after':>7} {'ms':>8}"]
        for s in self.stats:
            rows.append(f"{s.name:<10} {s.nodes_before:>7} {s.nodes_after:>7} "
                        f"{s.seconds * 1e3:>8.2f}")
        return "\n".join(rows)


def pipeline_passes(pipeline) -> list:
    if isinstance(pipeline, str):
        if pipeline in PIPELINES:
            return list(PIPELINES[pipeline])
        names = [p.strip() for p in pipeline.split(",") if p.strip()]
        if not names:  # a list may be empty; a text naming nothing is a slip
            raise GraphcError(f"pipeline {pipeline!r} names no pass; write 'O0' (or pass [])"
                              " for none")
    else:
        names = list(pipeline)
    # a pipeline's name stands for its passes: "default,cse"
    names = [p for name in names for p in (PIPELINES[name] if name in PIPELINES else [name])]
    for name in names:
        if name not in PASSES and name not in COMMUNICATION_PASSES:
            raise GraphcError(f"unknown pass {name!r}; passes: "
                              f"{', '.join([*PASSES, *COMMUNICATION_PASSES])}; "
                              f"pipelines: {', '.join(PIPELINES)}")
    return names


def run_pipeline(graph, pipeline="default", verify_each=None, bisect=None, stop_after=None,
                 keep_stages=False, fast_math=False, evaluate=None) -> PipelineResult:
    """fast_math=True lets simplify use its rules that assume finite values (passes.simplify).
    evaluate(graph, inputs) -> output arrays is what bisection compares passes with."""
    if verify_each is None:
        verify_each = settings.VERIFY.get()
    if bisect is None:
        bisect = settings.BISECT.get()
    names = pipeline_passes(pipeline)
    if bisect and evaluate is None:
        raise GraphcError("bisection (GRAPHC_BISECT or bisect=True) needs an evaluator: call "
                          "run_pipeline(..., evaluate=runtime.interpreter.evaluate)")
    if stop_after is not None and stop_after not in names:
        raise GraphcError(f"pass {stop_after!r} is not in the pipeline ({', '.join(names)})")
    result = PipelineResult(graph)
    # the symbolic sizes a binding must not make negative, whatever the passes leave of the
    # nodes that have them (ir.specialize.size_checks)
    checks = size_checks(graph) if graph_is_symbolic(graph) else graph.size_checks
    probe = _probe_inputs(graph) if bisect else None
    reference = _evaluate(evaluate, graph, probe) if bisect else None
    if verify_each:
        verify(graph)
    for name in names:
        before = len(graph.nodes)
        start = time.perf_counter()
        graph = simplify(graph, fast_math=True) if fast_math and name == "simplify" \
            else PASSES.get(name, COMMUNICATION_PASSES.get(name))(graph)
        elapsed = time.perf_counter() - start
        graph.size_checks = checks
        result.stats.append(PassStat(name, before, len(graph.nodes), elapsed))
        if verify_each:
            try:
                verify(graph)
            except GraphcError as exc:
                raise GraphcError(f"after pass {name!r}: {exc.message}", exc.locs) from None
        if bisect:
            _compare(name, graph, reference, _evaluate(evaluate, graph, probe))
        if keep_stages:
            result.stages.append((name, graph))
        if name == stop_after:
            break
    result.graph = graph
    return result


def optimize(graph, pipeline="default", fast_math=False, evaluate=None):
    return run_pipeline(graph, pipeline, fast_math=fast_math, evaluate=evaluate).graph


def _probe_inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    # symbolic dimensions (shape polymorphism) are probed at one small size each
    sizes = {s: 3 for n in graph.inputs for d in n.shape if isinstance(d, Dim) for s in d.symbols}
    values = []
    for n in graph.inputs:
        shape = substitute(n.shape, sizes)
        if np.issubdtype(n.dtype, np.floating):
            values.append(rng.uniform(0.5, 1.5, shape).astype(n.dtype))
        elif n.dtype == np.bool_:
            values.append(rng.random(shape) < 0.5)
        else:
            values.append(np.zeros(shape, n.dtype))
    return values


def _evaluate(evaluate, graph, inputs):
    with np.errstate(all="ignore"):
        return evaluate(graph, inputs)


def _compare(name, graph, reference, got):
    for i, (ref, out) in enumerate(zip(reference, got)):
        tol = 1e-4 if ref.dtype == np.float32 else 1e-9
        if ref.shape != out.shape or not np.allclose(ref, out, rtol=tol, atol=tol,
                                                     equal_nan=True):
            node = graph.outputs[i]
            diff = np.max(np.abs(ref.astype(float) - out.astype(float))) \
                if ref.shape == out.shape else "shape changed"
            raise GraphcError(f"bisect: pass {name!r} changed output {i} (node {node.op} "
                              f"{node.type}); max difference {diff}", node.locs)
