"""`graphc dump`: a model, a user's function or a saved IR file, as text, JSON or a picture,
before and after any pass of the pipeline or stage of lowering (runtime/stages.py: the fused
graph, the memory plan, the kernel chosen for each node, the generated source), with
statistics and pass diffs."""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
import shlex
import sys
import time
from collections import Counter

import networkx as nx
import numpy as np

from ir.errors import GraphcError, traceback_location
from ir.graph import Graph
from ir.ops.registry import graph_param
from ir.printer import format_graph
from passes.autodiff import gradients, grad_graph
from passes.manager import pipeline_passes, run_pipeline
from passes.rematerialize import PASS_NAME as REMAT_PASS
from runtime.interpreter import evaluate

from .files import check_writable, refuse_checkpoint, write_atomically


def builtin_gpt(config: str, grad: bool, batch=None) -> Graph:
    """`batch`: the batch size, or a name for a symbolic batch (shape polymorphism)."""
    from .models.gpt import GPT, GPTConfig
    from .train import build_eval_loss
    model = GPT(GPTConfig.named(config, vocab_size=65))
    return build_eval_loss(model, batch_size=batch, with_grads=grad,
                           name=f"gpt_{config}_{'loss_grad' if grad else 'loss'}")


def builtin_mlp(grad: bool, batch=None) -> Graph:
    from . import nn
    from ir.ops import api as F

    class MLP(nn.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.fc1 = nn.Linear(64, 128, rng=rng)
            self.fc2 = nn.Linear(128, 10, rng=rng)

        def forward(self, x, y):
            return F.cross_entropy(self.fc2(F.gelu(self.fc1(x))), y)

    model = MLP()
    g = Graph(f"mlp_{'loss_grad' if grad else 'loss'}")
    with g.building():
        batch = 32 if batch is None else batch
        x = g.input("x", (batch, 64), "float32")
        y = g.input("y", (batch,), "int64")
        params = [graph_param(g, p) for _, p in model.named_parameters()]
        loss = model(x, y)
        g.set_outputs([loss] + (gradients([loss], params) if grad else []))
    return g


def _user_code(target: str, fn, *args, reword_imports=False, hint=""):
    """fn(*args), running the user's code (importing their file, calling FUNCTION, tracing
    what it returns): an exception in it is one line naming the exception and their line,
    not a traceback through graphc. `reword_imports`: an ImportError is the caller's to
    reword (MODULE:FUNCTION's import of MODULE itself). `hint`: said where no line of
    theirs is in the traceback (the call itself failed: `build() missing 1 required
    positional argument`), for that call's own fault."""
    try:
        return fn(*args)
    except GraphcError:  # graphc's own one-line errors
        raise
    except SyntaxError as exc:
        where = f" at {exc.filename}:{exc.lineno}" if exc.filename else ""
        raise GraphcError(f"dump {target}: SyntaxError: {exc.msg}{where}") from None
    except Exception as exc:
        if reword_imports and isinstance(exc, ImportError):
            raise
        loc = traceback_location(exc.__traceback__)
        where = f" at {loc[0]}:{loc[1]}" if loc else hint
        raise GraphcError(f"dump {target}: {type(exc).__name__}: {exc}{where}") from None


def _import_function(target: str):
    where, _, name = target.rpartition(":")
    if where.endswith(".py") or os.sep in where:
        if not os.path.isfile(where):
            raise GraphcError(f"dump: no such file {where!r}")
        spec = importlib.util.spec_from_file_location("graphc_dump_target", where)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
        try:
            _user_code(target, spec.loader.exec_module, module)
        finally:
            sys.path.pop(0)
    else:
        try:
            module = _user_code(target, importlib.import_module, where, reword_imports=True)
        except ImportError as exc:
            raise GraphcError(f"dump: cannot import module {where!r} ({exc})") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise GraphcError(f"dump: {where!r} has no function {name!r}")
    return fn


def load_target(target: str, config: str | None = None, grad: bool = False,
                batch=None) -> Graph:
    """A Graph from 'gpt', 'mlp', 'file.py:fn', 'module:fn', or a saved .ir/.json file;
    `config` (gpt): its GPT config, default tiny; `batch` (gpt and mlp): a batch size, or a
    name for a symbolic batch dimension."""
    from .tracing import trace
    if config is not None and target != "gpt":  # (it was ignored, an unknown name too: the
        # graph printed was not the one asked for)
        raise GraphcError(f"dump --config {shlex.quote(config)}: only the gpt target takes a GPT config; "
                          f"{target} builds its own graph")
    if batch is not None and target not in ("gpt", "mlp"):
        raise GraphcError(f"dump --batch: only the gpt and mlp targets take a batch size; "
                          f"{target} declares its own shapes")
    if target == "gpt":
        return builtin_gpt("tiny" if config is None else config, grad, batch)
    if target == "mlp":
        return builtin_mlp(grad, batch)
    if os.path.isfile(target):
        try:
            with open(target, encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:  # its own message names no file
            raise GraphcError(f"dump: {target} is not UTF-8 text ({exc.reason} at byte "
                              f"{exc.start})") from None
        from ir.parser import SummarizedConstantError, parse
        try:
            if target.endswith(".json"):
                from ir.serialize import loads
                graph = loads(text)
            else:
                graph = parse(text)
        except SummarizedConstantError as exc:  # the way out is this command's option
            raise GraphcError(f"dump: {target}: {exc.where}: {exc.PROBLEM}; dump the graph "
                              "again with --full (or --format json) to read it back") from None
        except GraphcError as exc:  # "IR line 2, column 20: ...": in which file
            raise GraphcError(f"dump: {target}: {exc.message}") from None
        return _with_gradients(graph, target) if grad else graph
    if ":" not in target:
        raise GraphcError(f"dump: unknown target {target!r}: use gpt, mlp, FILE.py:FUNCTION, "
                          "MODULE:FUNCTION or a saved .ir/.json file")
    result = _user_code(target, _import_function(target), hint="; FUNCTION is called with "
                        "no arguments and returns a Graph or (function, *specs)")
    if isinstance(result, Graph):
        graph = result
    elif isinstance(result, tuple) and result and callable(result[0]):
        # (the hint of FUNCTION's own call named the wrong call here: `(f, (spec1, spec2))`
        # passes f one argument, a tuple)
        count = len(result) - 1
        name = getattr(result[0], "__name__", "the function")
        hint = (f"; {name} is called with the {count} value{'s' * (count != 1)} after it in "
                "the tuple FUNCTION returns, one argument each: (function, *specs)")
        # (trace refuses a call of f that does not bind f's arguments itself, in one
        # GraphcError line `{who}: missing a required argument: 'y'`: the hint goes there)
        who = f"dump {target}: {name}"
        try:
            graph = _user_code(target, functools.partial(trace, who=who), result[0],
                               *result[1:], hint=hint)
        except GraphcError as exc:
            if not exc.message.startswith(who + ": "):
                raise
            raise GraphcError(exc.message + hint) from None
    else:
        raise GraphcError(f"dump: {target} must return a Graph or (function, *specs)")
    return _with_gradients(graph, target) if grad else graph


def _with_gradients(graph: Graph, target: str) -> Graph:
    """--grad: the graph's outputs followed by the gradients of its first (summed); a graph
    without outputs is refused by grad_graph, naming the target."""
    return grad_graph(graph, sum_output=True, what=f"dump --grad: {target}")


def lowering_options():
    """The options compile_graph would choose by default (numba if enabled, no donation)."""
    from runtime import jit as jit_kernels
    from runtime.lowering import parallel_default
    from runtime.stages import LoweringOptions
    return LoweringOptions(jit=jit_kernels.enabled(), parallel=parallel_default())


def plan_statistics(graph) -> tuple:
    """(FLOPs per call, memory plan bytes by category) of the plan compile_graph would build,
    computed from the graph alone: building the plan materialises constants and allocates its
    buffers (a 107-byte IR holding `full {shape=(100000,100000)}` would take 37 GiB)."""
    from ir.ops.registry import get_op
    from runtime.stages import lower
    memory = lower(graph, lowering_options(), until="plan-memory").memory_plan.stats
    flops = 0.0
    for n in graph.nodes:
        op = get_op(n.op)
        if op.flops is not None:
            flops += op.flops([i.type for i in n.inputs], n.type, **n.attrs)
    return flops, dict(memory)


def _longest_path(g, weight) -> list:
    """The path of g with the largest sum of weight(node) over its nodes (networkx weighs
    edges: each edge carries its head's weight, and a root before every node its first's)."""
    h = nx.DiGraph()
    h.add_edges_from((("root", n, {"w": weight(n)}) for n in g))
    # (one edge per pair: x * x depends on x once, though g has an edge per operand)
    h.add_edges_from(((u, v, {"w": weight(v)}) for u, v in g.edges(keys=False)))
    return nx.dag_longest_path(h, weight="w")[1:]


def dependency_facts(graph) -> dict:
    """What the graph's dependencies allow, from networkx over Graph.to_networkx:
    the critical path (the chain of dependent ops with the most FLOPs: no schedule finishes
    before it, however many cores run the rest beside it), the longest chain counted in ops,
    and the ops no output depends on (what dead-code elimination would remove)."""
    g = graph.to_networkx()
    data = g.nodes
    computes = {n for n in g if data[n]["op"] not in ("input", "constant")}
    critical = [n for n in _longest_path(g, lambda n: data[n]["flops"]) if n in computes]
    chain = [n for n in _longest_path(g, lambda n: int(n in computes)) if n in computes]
    needed = set()
    for out in graph.outputs:
        needed |= nx.ancestors(g, out.id) | {out.id}
    return {"total_flops": sum(data[n]["flops"] for n in g),
            "critical_flops": sum(data[n]["flops"] for n in critical),
            "critical_ops": [data[n]["op"] for n in critical],
            "longest_chain": len(chain),
            "unused": sorted(computes - needed)}


def _ops_summary(ops) -> str:
    if len(ops) <= 8:
        return " -> ".join(ops)
    return ", ".join(f"{op} x{k}" for op, k in Counter(ops).most_common())


def _reserved(mem) -> str:
    """The pool's allocation with its alignment, where it differs from its buffers' bytes."""
    extra = mem["workspace_reserved"] - mem["workspace"]
    return f", {mem['workspace_reserved'] / 2**20:.2f} reserved" if extra else ""


def _peak_text(mem) -> str:
    """The plan's whole peak (plan.memory["total"]), the figure memory_limit and
    --memory-limit check and their line names "the plan's peak", and its parts: the
    intermediates alone read 3 MiB for a plan whose 37 GiB constant it left out."""
    from ir.types import format_bytes
    parts = ", ".join(f"{name} {format_bytes(mem[key])}" for name, key in (
        ("inputs", "inputs"), ("constants", "constants"), ("workspace", "workspace"),
        ("temporaries", "temporaries"), ("outputs", "outputs")))
    return (f"the plan's peak memory: {format_bytes(mem['total'])} in all, what "
            f"--memory-limit checks ({parts})")


def stats_text(graph, result) -> str:
    flops, mem = plan_statistics(result.graph)
    facts = dependency_facts(result.graph)
    share = facts["critical_flops"] / facts["total_flops"] if facts["total_flops"] else 0.0
    counts = Counter(n.op for n in result.graph.nodes if n.op != "input")
    params = sum(n.size for n in result.graph.inputs if n.attrs["kind"] == "param")
    lines = [f"graph {result.graph.name}: {len(result.graph.nodes)} nodes "
             f"({len(graph.nodes)} before passes), {params:,} parameters",
             f"FLOPs per call: {flops:,.0f}",
             f"critical path: {facts['critical_flops']:,.0f} FLOPs ({share:.1%} of all), "
             f"{len(facts['critical_ops'])} ops: {_ops_summary(facts['critical_ops'])}",
             f"longest dependency chain: {facts['longest_chain']} ops; ops no output "
             f"depends on: {len(facts['unused'])}",
             f"peak intermediate memory: {mem['peak_intermediate'] / 2**20:.2f} MiB "
             f"(workspace {mem['workspace'] / 2**20:.2f}{_reserved(mem)}, temporaries "
             f"{mem['temporaries'] / 2**20:.2f}); inputs {mem['inputs'] / 2**20:.2f} MiB",
             _peak_text(mem),
             "", "nodes by op:"]
    for op, k in counts.most_common():
        lines.append(f"  {op:<14} {k:>6}")
    lines += ["", result.table()]
    return "\n".join(lines)


def _stage_index(name, names):
    if name in ("input", "0"):
        return 0
    if name.isdigit():
        k = int(name)
        if k > len(names):
            raise GraphcError(f"--diff: stage {k} past the end ({len(names)} passes)")
        return k
    k = _pass_run(name, names, "--diff")
    if k is None:
        raise GraphcError(f"--diff: no stage {name!r} in the pipeline ({', '.join(names)}); "
                          "use 'input', a pass name (name#2 for its second run) or a number")
    return k


def _pass_run(name, names, option):
    """How many passes of `names` run up to pass NAME's first run, or NAME#K's K-th (from
    1; the default pipeline runs simplify twice); None if NAME is no pass of them."""
    base, hashed, nth = name.partition("#")
    runs = [k for k, n in enumerate(names, 1) if n == base]
    if not runs:
        return None
    if not hashed:
        return runs[0]
    if not (nth.isascii() and nth.isdigit() and int(nth) >= 1):
        raise GraphcError(f"{option} {name}: expected {base}#K, K from 1 (the K-th run of "
                          f"{base})")
    if int(nth) > len(runs):
        times = "once" if len(runs) == 1 else f"{len(runs)} times"
        raise GraphcError(f"{option} {name}: the pipeline runs {base} {times} "
                          f"({', '.join(names)})")
    return runs[int(nth) - 1]


def diff_text(graph, pipeline, a, b, locations=False) -> str:
    names = pipeline_passes(pipeline)
    result = run_pipeline(graph, names, keep_stages=True, evaluate=evaluate)
    stages = [("input", graph)] + result.stages
    i, j = _stage_index(a, names), _stage_index(b, names)
    # each text ends its last line (`return ...`): format_graph's has no final newline, and
    # unified_diff writes a line as given, so that line ran into the diff's next one
    before = (format_graph(stages[i][1], locations) + "\n").splitlines(keepends=True)
    after = (format_graph(stages[j][1], locations) + "\n").splitlines(keepends=True)
    out = "".join(difflib.unified_diff(before, after, fromfile=f"after {stages[i][0]}",
                                       tofile=f"after {stages[j][0]}"))
    return out or f"(no change between {stages[i][0]} and {stages[j][0]})\n"


def split_lowering(pipeline, after) -> tuple:
    """(passes to run, whether --after named a pass (they stop there: no rematerialize
    after them), lowering stage to stop after or None). `--after` names a pass (NAME#K: its
    K-th run) or a lowering stage; `--passes default,fuse` is read as `--after fuse` (fuse
    was a pass before it became the first lowering stage)."""
    from runtime.stages import STAGE_NAMES
    names = [p.strip() for p in pipeline.split(",")] if isinstance(pipeline, str) else []
    if "fuse" in names:
        if names[-1] != "fuse" or names.count("fuse") > 1:
            raise GraphcError("--passes: fuse is the first lowering stage, not a pass; it can "
                              "only come last (or use --after fuse)")
        if after is not None and after not in STAGE_NAMES:
            raise GraphcError(f"--after {after}: with --passes ...,fuse the passes all run; "
                              "name a lowering stage instead")
        return pipeline_passes([p for p in names[:-1] if p]), False, after or "fuse"
    if after in STAGE_NAMES:
        return pipeline, False, after
    passes = pipeline_passes(pipeline)
    if after is None:
        return passes, False, None
    run = _pass_run(after, passes, "--after")
    if run is None:
        raise GraphcError(f"--after {after}: not a pass of the pipeline ({', '.join(passes)}) "
                          f"nor a lowering stage ({', '.join(STAGE_NAMES)})")
    return passes[:run], True, None


def _refuse_options_beside_diff(args):
    """--diff prints the lines two stages differ in: each of these options printed its own
    text or changed a graph's, and was left unused without a word."""
    memory_limit, bind = getattr(args, "memory_limit", None), getattr(args, "bind", None)
    conflicts = [
        (args.stats, "--stats", "each prints its own text; give one"),
        (args.after is not None, f"--after {args.after}", "--diff names both of its stages"),
        (memory_limit is not None, "--memory-limit", "--diff compares two stages of the pipeline, "
         "and the budget's rematerialize pass runs after it; give one"),
        (bind, f"--bind {' '.join(bind or ())}", "--diff compares the graphs the "
         "passes leave, before any sizes are bound; give one")]
    conflicts += [(getattr(args, flag, False), f"--{flag}", f"--{flag} changes how a graph "
                   "prints, and --diff prints the lines that change; give one")
                  for flag in ("full", "collapse")]
    for given, option, why in conflicts:
        if given:
            raise GraphcError(f"--diff and {option} conflict: {why}")


def _refuse_graph_printing_options(args, option: str, prints: str,
                                   flags=("full", "collapse", "locations")) -> None:
    """--full, --collapse and --locations change how a graph prints: beside `option`, which
    prints no graph or one of a format that has no such choice (`prints` says what it
    prints), each was ignored without a word, where --diff refuses them."""
    for flag in flags:
        if getattr(args, flag, False):
            raise GraphcError(f"{option} and --{flag} conflict: --{flag} changes how a graph "
                              f"prints, and {prints}; give one")


def run_dump(args) -> int:
    from ir.dot import render, to_dot
    from ir.serialize import dumps

    if args.O0 and args.passes is not None:  # -O0 won silently: the passes never ran
        raise GraphcError(f"-O0 and --passes {args.passes!r} conflict: -O0 runs no passes; "
                          "give one of them")
    if args.diff:
        _refuse_options_beside_diff(args)
    if (args.diff or args.stats) and args.format != "text":
        raise GraphcError(f"--format {args.format}: {'--diff' if args.diff else '--stats'} "
                          "prints text; --format applies to graphs")
    if args.stats and not args.diff:
        _refuse_graph_printing_options(args, "--stats", "--stats prints statistics")
    elif args.format in ("json", "graphml"):  # (the whole graph, as data: no choices)
        _refuse_graph_printing_options(args, f"--format {args.format}",
                                       f"{args.format} holds the whole graph as data")
    elif args.format != "text":  # (dot and its images draw every node, without locations;
        # --collapse draws a shared region once)
        _refuse_graph_printing_options(args, f"--format {args.format}", f"{args.format} "
                                       "draws every node, without locations",
                                       flags=("full", "locations"))
    graph = load_target(args.target, args.config, args.grad, _batch_argument(args))
    pipeline = "O0" if args.O0 else (args.passes or "default")
    if args.diff:
        return _emit(diff_text(graph, pipeline, *args.diff, locations=args.locations), args)
    after = args.after
    memory_limit = getattr(args, "memory_limit", None)
    if after == REMAT_PASS:
        if memory_limit is None:
            raise GraphcError(f"--after {REMAT_PASS}: the pass runs only with a budget; give "
                              "--memory-limit")
        after = None
    passes, after_a_pass, after_stage = split_lowering(pipeline, after)
    if after_a_pass and memory_limit is not None:  # (the budget was ignored without a word:
        # its pass runs after the whole pipeline, past where --after stops)
        raise GraphcError(f"--after {args.after} and --memory-limit conflict: the budget's "
                          f"{REMAT_PASS} pass runs after the whole pipeline, and --after "
                          f"{args.after} stops before it; give one (--after {REMAT_PASS} "
                          "prints the graph the pass makes)")
    if args.stats and after_stage is not None:  # (it printed the statistics of the graph
        # after every pass, the stage ignored)
        given = f"--after {args.after}" if args.after else f"--passes {args.passes}"
        raise GraphcError(f"{given}: --stats counts the graph after the passes, and "
                          f"{after_stage} is a lowering stage; name a pass or leave it out")
    if after_stage not in (None, "fuse"):
        _refuse_graph_printing_options(args, f"--after {after_stage}", "the state after "
                                       f"lowering stage {after_stage} prints as text of its own")
    result = run_pipeline(graph, passes, verify_each=True, evaluate=evaluate)
    result.graph = bound_for_sizes(result.graph, getattr(args, "bind", None),
                                   needs_sizes=bool(args.stats or after_stage
                                                    or args.format == "graphml"),
                                   needs_sizes_for="--memory-limit" if memory_limit else None)
    if memory_limit is not None:
        # a row of --stats' per-pass table, as the pipeline's passes have: the node count
        # the header reports is the rematerialised graph's
        from passes.manager import PassStat
        started, before = time.perf_counter(), len(result.graph.nodes)
        result.graph = _rematerialize(result.graph, memory_limit)
        result.stats.append(PassStat(REMAT_PASS, before, len(result.graph.nodes),
                                     time.perf_counter() - started))
    if args.stats:
        return _emit(stats_text(graph, result) + "\n", args)
    g = result.graph
    fmt = args.format
    if after_stage not in (None, "fuse"):
        from runtime.stages import lower, stage_named
        if fmt != "text":
            raise GraphcError(f"--format {fmt}: the state after lowering stage {after_stage} "
                              "is text; --format applies to graphs (passes and fuse)")
        state = lower(g, lowering_options(), until=after_stage)
        return _emit(stage_named(after_stage).show(state).rstrip("\n") + "\n", args)
    if after_stage == "fuse":
        from runtime.stages import lower
        g = lower(g, lowering_options(), until="fuse").kernel_graph
    if fmt == "text":
        if args.full and not args.collapse:
            _refuse_unreadable_nesting(g)
        # --collapse: a control-flow region shared by several nodes prints once
        return _emit(format_graph(g, args.locations, max_inline=None if args.full else 16,
                                  collapse=set() if args.collapse else None) + "\n", args)
    if fmt == "json":
        return _emit(dumps(g) + "\n", args)
    if fmt == "dot":
        return _emit(to_dot(g, collapse=args.collapse), args)
    if fmt == "graphml":
        return _emit(graphml_text(g), args)
    return _emit(render(g, fmt, collapse=args.collapse), args)


def _refuse_unreadable_nesting(graph) -> None:
    """--full text is the form read back (`graphc dump saved.ir`): a graph whose regions nest
    deeper than the text reader takes (ir/parser.py's MAX_NESTING: 32 nested scans, 16
    conds) is refused in one line, not written for the reader to refuse. The default text
    and --collapse, which are for reading by people, print it."""
    from ir.parser import MAX_NESTING, region_nesting
    depth = region_nesting(graph)
    if depth > MAX_NESTING:
        raise GraphcError(f"--full: cannot write {graph.name!r} as IR text to read back: its "
                          f"control-flow regions nest {depth} levels deep (a cond's branches "
                          f"count two), more than the {MAX_NESTING} the text reader takes; "
                          "use --format json (37 nested scans), or leave out --full to print "
                          "it for reading")


def graphml_text(graph) -> str:
    """GraphML of graph.to_networkx(). Its edges are keyed by operand position, the same key
    on many edges, and networkx writes a multigraph's keys as the edges' ids, which GraphML
    requires unique in a graph (its schema's edge_id_unique: readers that index edges by id
    keep one of each): an edge's id here is USER.POSITION ('3.1': operand 1 of node 3)."""
    g = graph.to_networkx()
    h = nx.MultiDiGraph(**g.graph)
    h.add_nodes_from(g.nodes(data=True))
    h.add_edges_from((u, v, f"{v}.{k}", d) for u, v, k, d in g.edges(keys=True, data=True))
    return "\n".join(nx.generate_graphml(h)) + "\n"


def parse_bindings(texts) -> dict:
    """["batch=8", "seq=16"] -> {"batch": 8, "seq": 16} (dump --bind)."""
    binding = {}
    for text in texts or ():
        name, _, value = text.partition("=")
        if not name.strip() or not value.strip().isdigit() or not 1 <= int(value) < 2 ** 31:
            raise GraphcError(f"--bind {text!r}: expected NAME=SIZE with a size from 1 to "
                              "2**31 - 1, such as batch=8")
        name = name.strip()
        if name in binding:  # (the last one silently won)
            raise GraphcError(f"--bind {text!r}: {name} is already bound to {binding[name]}; "
                              "bind each name once")
        binding[name] = int(value)
    return binding


def bound_for_sizes(graph, bind_texts, needs_sizes: bool, needs_sizes_for=None):
    """The graph to show: with --bind, the optimised graph specialised to those sizes (the
    plan a call with them lowers); a graph with symbolic dimensions that must be lowered or
    counted (lowering stages, --stats, GraphML's FLOPs) without --bind is an error naming
    the symbols."""
    from ir.specialize import graph_is_symbolic, specialize
    binding = parse_bindings(bind_texts)
    if not graph_is_symbolic(graph):
        if binding:
            raise GraphcError(f"--bind {', '.join(binding)}: the graph has no symbolic "
                              "dimensions")
        return graph
    symbols = sorted({s for n in graph.inputs for d in n.shape
                      if hasattr(d, "symbols") for s in d.symbols})
    if not binding:
        if needs_sizes_for:  # an option whose work depends on the sizes (a memory budget)
            raise GraphcError(f"the graph has symbolic dimensions ({', '.join(symbols)}); "
                              f"{needs_sizes_for} needs sizes: add --bind "
                              + " ".join(f"{s}=N" for s in symbols))
        if needs_sizes:
            raise GraphcError(f"the graph has symbolic dimensions ({', '.join(symbols)}); "
                              "lowering stages, --stats and GraphML need sizes: add --bind "
                              + " ".join(f"{s}=N" for s in symbols))
        return graph
    unknown = sorted(set(binding) - set(symbols))
    missing = [s for s in symbols if s not in binding]
    if unknown or missing:
        raise GraphcError(f"--bind: the graph's symbolic dimensions are {', '.join(symbols)}"
                          + (f"; unknown {', '.join(unknown)}" if unknown else "")
                          + (f"; missing {', '.join(missing)}" if missing else ""))
    return specialize(graph, binding)


def _rematerialize(graph, memory_limit: int):
    """The pass gc.compile(memory_limit=...) runs after the pipeline, as the plan
    compile_graph would build by default needs it; its report goes to stderr."""
    from ir.verify import verify
    from passes.rematerialize import MemoryLimitError, rematerialize
    from runtime.build import memory_model
    try:
        graph, report = rematerialize(graph, memory_limit, memory_model(lowering_options()))
    except MemoryLimitError as exc:
        raise MemoryLimitError(exc.limit, exc.peak, exc.best, "--memory-limit") from None
    verify(graph)
    print(f"graphc dump: {report}", file=sys.stderr)
    return graph


def _input_files(target: str) -> list[str]:
    """The user's files that `target` was read from: a saved .ir/.json file, or the Python
    file (FILE.py:FUNCTION, or MODULE:FUNCTION's module, imported by now) that built it."""
    if os.path.isfile(target):
        return [target]
    where = target.rpartition(":")[0]
    if os.path.isfile(where):
        return [where]
    module = sys.modules.get(where)
    found = getattr(module, "__file__", None)
    return [found] if found and os.path.isfile(found) else []


def _refuse_own_input(output: str, target: str) -> None:
    """-o naming the file the graph came from replaced it (a user's script with IR text, a
    --full dump with its summary): refused before anything is written."""
    for source in _input_files(target):
        try:
            same = os.path.samefile(output, source)
        except OSError:  # (the output does not exist yet: not the input)
            return
        if same:
            raise GraphcError(f"-o {output}: is the file the graph was read from ({target}); "
                              "write the dump to another file")


def _emit(data, args) -> int:
    if args.output:
        check_writable(args.output, "-o")
        refuse_checkpoint(args.output, "-o")
        _refuse_own_input(args.output, getattr(args, "target", ""))
        write_atomically(args.output, data)
    elif sys.stdout is None:  # (stdout closed, `>&-`: discarded, as print() discards it)
        pass
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data)
    return 0


def _batch_argument(args):
    """dump --batch: an int, or a name (a symbolic batch dimension)."""
    batch = getattr(args, "batch", None)
    if batch is None:
        return None
    try:
        size = int(batch)
    except ValueError:  # a name ("" was taken for no --batch, "1x" failed inside spec())
        from ir.types import parse_dim
        try:
            parse_dim(batch)
        except (TypeError, ValueError) as exc:
            raise GraphcError(f"--batch {batch!r}: expected a batch size or a name for a "
                              f"symbolic batch dimension, such as 8 or batch ({exc})") from None
        if not batch.isidentifier():  # ("0*b" or "b-b", a batch of 0, passed the size check)
            raise GraphcError(f"--batch {batch!r}: expected a batch size or a name for a "
                              "symbolic batch dimension, such as 8 or batch, not an expression")
        return batch
    if size < 1:  # "-3" was taken for a name
        raise GraphcError(f"--batch {batch}: a batch size must be at least 1")
    if size > sys.maxsize:  # an OverflowError deep inside shape inference
        raise GraphcError(f"--batch {batch}: a batch size must be at most {sys.maxsize}")
    return size
