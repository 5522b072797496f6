"""Instrumented runs of a plan: `profile` times every node; `checked_runner` stops at the
first node that makes a NaN or an Inf and names it (Plan.run_checked, check_finite=True).

Both compile the plan's own source (runtime/render.py) with a line after every step.
"""
from __future__ import annotations

import time

import numpy as np

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.types import is_float, is_int

from . import causal
from .fusion import describe
from .op_lowering import inplace_safe, is_constant, is_fused_result
from .render import render_source


_COLLECTIVES = ("allreduce", "allreduce_wait")  # their results hold the other ranks' values


def checked_runner(plan):
    """The plan with a check after every node that raises at the first node that made a
    NaN (where no operand had one) or an Inf (where the operands were finite), naming it,
    its operands' ranges and the user's line. Elementwise ops are judged element by
    element; others by whether any operand held a NaN/Inf at all. The masks of each
    node's non-finite values are kept when it is computed, because a later op may
    overwrite it in place. A constant (the attention mask's -inf) is never blamed; if
    the outputs are non-finite and no node was blamed, the first non-finite value is.

    A plan with all-reduces (data-parallel training) runs to its end before raising, so that
    its rank takes part in every collective: a rank raising at its own op left the others
    waiting in the next all-reduce until the watchdog stopped the job. An error at an
    all-reduce or a node computed from one is marked `downstream`: it may follow from
    another rank's values (a NaN its batch made), so that rank's error at its own op is the
    one to report (graphc.distributed.fail_together)."""
    steps = plan._steps
    collective = any(step[0].op in _COLLECTIVES for step in steps)
    downstream = set()  # nodes computed from an all-reduce's result
    for step in steps:
        if step[0].op in _COLLECTIVES or any(i in downstream for i in step[0].inputs):
            downstream.add(step[0])
    first = []  # with collectives: the first error, raised when the plan has run
    position = {id(step[0]): k for k, step in enumerate(steps)}
    rendered = plan.lowered.rendered
    # a step whose value is its reader's (softmax_grad scaled by its reader: the product's
    # value at the softmax_grad's step) is judged against, and reported with, everything its
    # kernel reads, under the kernel's name; LayerNorm's pair writes each node's own value
    def operands_of(node):
        return rendered.step_operands.get(node, node.inputs)

    def name_of(node):
        return rendered.step_names[node] if node in rendered.step_operands else describe(node)

    masks = {}  # step -> (NaN mask, Inf mask) of its value, None where there are none

    def masks_of(value):
        arr = np.asarray(value)
        if arr.dtype.kind != "c" and not is_float(arr.dtype):  # bfloat16's kind is "V"
            return None, None
        nan, inf = np.isnan(arr), np.isinf(arr)
        return (nan if nan.any() else None), (inf if inf.any() else None)

    def operand_masks(node, operands, arr):
        for inp, v in zip(operands_of(node), operands):
            k = position.get(id(inp))
            if k is not None:
                yield masks.get(k, (None, None))
            elif np.may_share_memory(np.asarray(v), arr):
                yield None  # an input overwritten by this op: unknown
            else:
                yield masks_of(v)

    def elementwise(node):
        return inplace_safe(node) and not (
            node.op == "fused" and "softmax" in node.attrs.get("program", ""))

    def produced(node, arr, nan, inf, operands):
        known = list(operand_masks(node, operands, arr))
        if any(m is None for m in known):
            return False  # cannot tell: leave it to the outputs' check
        if elementwise(node):
            try:
                seen_nan = np.zeros(arr.shape, bool)
                seen_bad = np.zeros(arr.shape, bool)
                for m_nan, m_inf in known:
                    if m_nan is not None:
                        seen_nan |= np.broadcast_to(m_nan, arr.shape)
                        seen_bad |= np.broadcast_to(m_nan, arr.shape)
                    if m_inf is not None:
                        seen_bad |= np.broadcast_to(m_inf, arr.shape)
            except ValueError:
                pass  # operands that do not broadcast to the result: judge as a whole
            else:
                return bool((nan is not None and (nan & ~seen_nan).any()) or
                            (inf is not None and (inf & ~seen_bad).any()))
        if nan is not None and not any(m_nan is not None for m_nan, _ in known):
            return True
        return inf is not None and all(a is None and b is None for a, b in known)

    def held_when_computed(node):
        k = position.get(id(node))
        if k is None:  # (a plan input: not checked when given)
            return None
        nan, inf = masks.get(k, (None, None))
        if nan is None and inf is None:
            return "all finite"
        return " and ".join(f"{int(m.sum())} {what}" for m, what in ((nan, "NaN"), (inf, "Inf"))
                            if m is not None)

    def report(node, arr, operands):
        ranges = []
        for i, v in zip(operands_of(node), operands):
            if isinstance(v, tuple):  # a control-flow node's results (tuple_get reads one)
                ranges.append(str(i.type))
                continue
            v = np.asarray(v)
            if np.may_share_memory(v, arr):
                # written over by this op (sqrt in place): read now, its values are the
                # result's (NaN, as if the operand had held them); what its mask says of
                # it when it was computed is all that is known
                held = held_when_computed(i)
                ranges.append(f"{i.type} " + (f"{held}, " if held else "")
                              + "overwritten by the result")
                continue
            nans = int(np.isnan(v).sum()) if is_float(v.dtype) else 0
            if (is_float(v.dtype) or v.dtype.kind in "iu") and v.size > nans:
                ranges.append(f"{i.type} in [{np.nanmin(v):.4g}, {np.nanmax(v):.4g}]"
                              + (f" and {nans} NaN" if nans else ""))
            else:
                ranges.append(str(i.type) + (" all NaN" if nans else ""))
        bad = int(arr.size - np.isfinite(arr).sum())
        error = GraphcError(f"non-finite value: {bad} of {arr.size} elements of "
                            f"{name_of(node)} -> {node.type}; operands: "
                            f"{'; '.join(ranges)}", node.locs)
        if not collective:
            raise error
        error.downstream = node in downstream
        if not first:
            first.append(error)

    def check(k, value, *operands):
        node = steps[k][0]
        if isinstance(value, tuple):
            # a fused node's results: each judged against the node's operands; a control-
            # flow node's: checked as read
            for arr in value if node.op == "fused" else ():
                nan, inf = masks_of(arr)
                if (nan is not None or inf is not None) and produced(node, arr, nan, inf,
                                                                      operands):
                    report(node, arr, operands)
            return
        arr = np.asarray(value)
        nan, inf = masks_of(arr)
        if nan is None and inf is None:
            return
        masks[k] = (nan, inf)
        if is_fused_result(node):
            return  # judged with its fused node
        if not is_constant(node) and produced(node, arr, nan, inf, operands):
            report(node, arr, operands)

    source, _ = render_source(plan.lowered.rendered, "check")
    checked = plan._compile(source, "checked", {"_check": check})

    def run(*values):
        masks.clear()
        first.clear()
        outs = checked(*values)
        if first:
            raise first[0]
        if any(is_float(np.asarray(o).dtype) and not np.isfinite(o).all() for o in outs):
            for k, step in enumerate(steps):  # none was blamed: name the first one
                node = step[0]
                if is_fused_result(node):
                    node = node.inputs[0]
                if k in masks and not is_constant(node):
                    count = sum(int(m.sum()) for m in masks[k] if m is not None)
                    raise GraphcError(f"non-finite value: {count} elements of "
                                      f"{name_of(node)} -> {node.type} are NaN or Inf "
                                      "(the first op whose result is; its operands held "
                                      "NaN or Inf too)", node.locs)
            raise GraphcError(f"non-finite value in the outputs of plan {plan.name!r}: "
                              "it came from an input or a constant")
        return outs
    return run


# ops whose profile line shows a GFLOP/s rate: the products (matmul_add's flops are its
# product's plus one per element per addend)
RATED_OPS = ("matmul", "matmul_add", "einsum")


def profile(plan, *args, repeat: int = 3, file=None, top: int = 25, warm: bool = False,
            **kwargs):
    """Time every node over `repeat` calls; print a table sorted by time; return rows.
    `warm`: also time each kernel run a second time right after itself (`rerun_steps`), its
    operands then in the caches: a row's "warm_ms" against its "ms" is what the kernel
    waited for memory that the step's earlier kernels had left cold."""
    # checked before anything runs: repeat=0 divided by zero after the warm-up call,
    # repeat=-1 printed a table of zero and negative times, and top=-1 left out the last row
    repeat = _count(repeat, "repeat", least=1)
    if top is not None:
        top = _count(top, "top", least=0)
    times = [0.0] * len(plan._steps)
    again = [0.0] * len(plan._steps)
    values = plan.bind_call(args, kwargs)
    for k in plan._donated_positions:  # the timed runs write over copies, not the caller's
        values[k] = values[k].copy()
    rerun = rerun_steps(plan, values) if warm else set()
    source, _ = render_source(plan.lowered.rendered, "profile", again=rerun)
    fn = plan._compile(source, "profiled", {"_clock": time.perf_counter, "_times": times,
                                            "_again": again})
    # on the threads a call of the plan gets: a profile pinned to every CPU while another
    # process is busy times each parallel kernel's wait for a descheduled thread (tiny's
    # step profiled at 560 ms, while its calls took 49)
    with plan.thread_scope(ordinary=False):
        fn(*values)  # warm-up
    for k in range(len(times)):
        times[k] = again[k] = 0.0
    for _ in range(repeat):
        with plan.thread_scope(ordinary=False):
            fn(*values)
    total = sum(times) or 1e-12
    kernels = plan.lowered.kernels
    banded = {n: kernels.causal[n] for n in kernels.causal
              if kernels.choice[n].kind == "causal"} if kernels is not None else {}
    rows = []
    for k, ((node, stmts, _), t) in enumerate(zip(plan._steps, times)):
        if not stmts:
            continue
        op = get_op(node.op)
        flops = op.flops([i.type for i in node.inputs], node.type, **node.attrs) \
            if op.flops else 0.0
        if node in banded:  # rated by the multiply-adds it does, not the full square's
            flops *= causal.banded_share(node, banded[node])
        elif kernels is not None and node in kernels.tile_modes:  # (the same)
            flops *= _tile_share(plan, node, kernels.tile_modes[node])
        sec = t / repeat
        rows.append({
            "op": plan.lowered.rendered.step_names.get(node) or describe(node),
            "type": str(node.type),
            "operands": ", ".join(str(i.type) for i in node.inputs),
            "where": ", ".join(f"{f}:{ln}" for f, ln in node.locs[:2]),
            "ms": sec * 1e3, "share": t / total,
            "gflops": flops / sec / 1e9 if node.op in RATED_OPS and sec else None,
            "warm_ms": again[k] / repeat * 1e3 if k in rerun else None,
        })
    rows.sort(key=lambda r: -r["ms"])
    if file is not False:
        print(format_profile(rows, total / repeat, top), file=file)
    return rows


def _count(value, name: str, least: int) -> int:
    """A whole-number setting of profile() (numpy integers too), at least `least`."""
    if not is_int(value) or value < least:
        raise GraphcError(f"profile: {name} must be a whole number >= {least}, got {value!r}")
    return int(value)


def rerun_steps(plan, values) -> set:
    """The steps that may run twice in a row with the same result: those writing no array
    their operands live in (not in place, not over a donated input; np.may_share_memory's
    bounds test, so a doubt keeps a step out) and not a collective. Found by one call of the
    plan with a probe after every step, on copies of the values it would overwrite."""
    steps = plan._steps
    rendered = plan.lowered.rendered
    safe = set()

    def arrays(value):
        if isinstance(value, (tuple, list)):
            return [a for v in value for a in arrays(v)]
        return [value] if isinstance(value, np.ndarray) else []

    def probe(k, value, *operands):
        stmts = steps[k][1]
        # a collective's steps (its start, its wait, the progress calls after kernels while
        # one is in flight) all go through _collectives: none may run twice
        if not stmts or any("_collectives" in s for s in stmts):
            return
        written, read = arrays(value), arrays(operands)
        if written and not any(np.may_share_memory(w, r) for w in written for r in read):
            safe.add(k)

    source, _ = render_source(rendered, "check")
    probed = plan._compile(source, "probed", {"_check": probe})
    with plan.thread_scope(ordinary=False):
        probed(*[v.copy() if isinstance(v, np.ndarray) else v for v in values])
    return safe


def _tile_share(plan, node, mode) -> float:
    """runtime.tiles.work_share of a causal tile product, in the orientation its kernel
    computes: a column-major destination (a transposed slice of a concat's buffer) as its
    transpose. A destination the plan does not bind (a fresh array) is row-major."""
    from . import tiles
    a, b = node.inputs
    dst = plan._globals.get(plan.lowered.rendered.names.get(node))
    item = np.dtype(node.dtype.name).itemsize
    transposed = (isinstance(dst, np.ndarray) and dst.ndim >= 2 and dst.strides[-1] != item
                  and dst.strides[-2] == item)
    return tiles.work_share(a.shape[-2], a.shape[-1], b.shape[-1], mode, item, transposed)


def format_profile(rows, total_seconds, top=25) -> str:
    warm = any(r.get("warm_ms") is not None for r in rows)
    head = f"{'op':<12} {'result':<18} {'ms':>8} {'share':>6} {'GFLOP/s':>8}"
    lines = [head + (f" {'warm ms':>8}" if warm else "") + "  where", "-" * (78 + 9 * warm)]
    for r in rows[:top]:
        gf = f"{r['gflops']:.1f}" if r["gflops"] else ""
        line = f"{r['op']:<12} {r['type']:<18} {r['ms']:>8.3f} {r['share']:>6.1%} {gf:>8}"
        if warm:
            line += f" {r['warm_ms']:>8.3f}" if r.get("warm_ms") is not None else " " * 9
        lines.append(f"{line}  {r['where']}")
    lines.append(f"total {total_seconds * 1e3:.2f} ms over {len(rows)} kernels")
    if warm:
        again = [r for r in rows if r.get("warm_ms") is not None]
        in_step = sum(r["ms"] for r in again)
        right_after = sum(r["warm_ms"] for r in again)
        lines.append(f"{len(again)} kernels run again right after themselves: {in_step:.2f} ms "
                     f"in the step, {right_after:.2f} ms warm ({in_step - right_after:.2f} ms "
                     "waiting for memory the step had left cold)")
    return "\n".join(lines)
