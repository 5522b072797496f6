"""Fitting a memory budget by recomputation: the pass behind `gc.compile(fn, memory_limit=...)`.

    graph, report = rematerialize(graph, limit_bytes, memory_model)

    A => B (the pool is fullest at the start of the backward pass, where `h` is live):
      %h = gelu %a            (forward)           %h = gelu %a
      ...peak...                                  ...peak...            (%h dead before it)
      %g = mul %dy, %h        (backward)          %h2 = gelu %a         (recomputed here)
                                                  %g = mul %dy, %h2

A greedy, in the manner of XLA's rematerialisation pass (PyTorch's min-cut partitioner and
Checkmate solve the same choice exactly; Chen et al. 2016 checkpoint every sqrt(n) layers). The
schedule is the graph's node order, which the memory planner follows. The planner reuses a pool
buffer only for a value of the same dtype and size, so the pool needs about, per (dtype, size)
key, the key's bytes times the most values of that key live at once. Each step considers every
value and every gap between two of its reads (or its definition and first read) that covers
one of its key's fullest positions: its reads after the gap would read a copy made just before
them, from values live there anyway (inputs, constants, values read later) or, failing that,
from copies of its operands, recursively (at most MAX_CHAIN ops). It takes the one with the
fewest FLOPs per pool byte saved; the original then dies before the gap, or goes entirely when
nothing read it before (the value has moved). Steps repeat, the plan measured by the memory
planner after each, until it fits.

The sequence of choices does not depend on the budget (only where it stops does), so a smaller
budget recomputes a superset and costs at least as many FLOPs. The pass runs after the
optimisation pipeline (CSE would merge a copy back into its original) and before lowering.

It needs the runtime's memory planner, a layer above: the caller passes a `MemoryModel`
(runtime.build.memory_model). Ops without a FLOP count (gathers, copies) cost one per element.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.types import format_bytes

from .dce import dce

# A value is rebuilt by at most this many recomputed ops (views are free): longer chains cost
# more than they save and would make the search slow (XLA bounds its chains likewise)
MAX_CHAIN = 12
# Smaller values are not worth a line in the report (scalars of an optimiser's schedule)
MIN_BYTES = 4096
PASS_NAME = "rematerialize"  # as `graphc dump --memory-limit N --after rematerialize` names it

# Decimal units are powers of 1000, binary ones powers of 1024 (as Hugging Face's max_memory)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory_limit(value, option: str = "memory_limit") -> int:
    """Bytes from an int, a float or a string such as "200MB", "1.5GiB", "512 KiB". A number
    of bytes is whole ("1.5" or "1.5B" is refused: it was cut to 1 byte); a size in a larger
    unit is rounded down to whole bytes ("1.8 MiB", which format_bytes writes, is 1887436)."""
    if isinstance(value, bool):
        raise GraphcError(f"{option}: expected a number of bytes or a size such as '200MB', "
                          f"got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = value, ""
    else:
        match = re.fullmatch(r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*",
                             str(value))
        if match is None or match.group(2).lower() not in _UNITS:
            raise GraphcError(f"{option}: expected a number of bytes or a size such as "
                              f"'200MB' or '1.5GiB' (units B, KB, MB, GB, TB, KiB, MiB, GiB, "
                              f"TiB), got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    limit = number * _UNITS[unit]
    if math.isfinite(limit) and not isinstance(value, (int, float)):
        # the text's own decimal value, not its float's: '1.001KB' is 1001 bytes, where
        # 1.001 * 1000 in floats is 1000.9999999999999, rounded down to 1000
        limit = Fraction(match.group(1)) * _UNITS[unit]
    if not math.isfinite(limit) or limit <= 0:
        raise GraphcError(f"{option}: expected a positive, finite size, got {value!r}")
    if limit < 1:  # (0.5 is positive: "expected a positive size" of it read as a wrong rule)
        raise GraphcError(f"{option}: expected a size of at least 1 byte, got {value!r}")
    if _UNITS[unit] == 1 and limit != int(limit):
        raise GraphcError(f"{option}: expected a whole number of bytes, got {value!r} (a "
                          "fraction of a byte; a size in a unit may have one: '1.5KB')")
    return int(limit)


class MemoryLimitError(GraphcError):
    """No recomputation this pass finds fits the plan in the budget; `option` names the
    setting in the message (a CLI says --memory-limit), `plan` the plan ("the plan", or which
    of a compiled call's plans on the tape)."""

    def __init__(self, limit: int, peak: int, best: int, option: str = "memory_limit",
                 plan: str = "the plan", locs=()):
        self.limit, self.peak, self.best, self.option = limit, peak, best, option
        limit_text, best_text = _told_apart(limit, best)
        if best >= peak:
            how = f"{plan} needs {best_text} and recomputing activations cannot lower it"
        else:
            how = (f"recomputing activations brings {plan}'s peak memory from "
                   f"{format_bytes(peak)} down to {best_text} at best")
        super().__init__(f"{option} {limit_text} cannot be met: {how}; raise the limit to at "
                         f"least {best_text} or shrink the batch", locs)

    def of_plan(self, plan: str, locs=()) -> "MemoryLimitError":
        """The same refusal naming which plan it is and where the user's call is."""
        return MemoryLimitError(self.limit, self.peak, self.best, self.option, plan, locs)


def _told_apart(limit: int, least: int) -> tuple:
    """A limit and the least size that fits, as text, that size rounded up: a budget of the
    figure the message shows fits (16303725 bytes read "15.5 MiB", and a limit of 15.5MiB,
    16252928 bytes, was refused again). Both in bytes where their rounded forms would read
    the same (a limit of 1850000 bytes against a need of 1860000 both read "1.8 MiB"),
    written "1860000 B", as format_bytes writes bytes and parse_memory_limit reads them back
    ("1860000 bytes" was refused as a size)."""
    a_text, b_text = format_bytes(limit), _rounded_up(least)
    return (a_text, b_text) if a_text != b_text else (f"{limit} B", f"{least} B")


def _rounded_up(size: int) -> str:
    """format_bytes(size), its last digit raised by one where the text reads less than size
    (as parse_memory_limit reads it back)."""
    text = format_bytes(size)
    if parse_memory_limit(text) >= size:
        return text
    number, unit = text.split()
    decimals = len(number.partition(".")[2])
    return f"{float(number) + 10 ** -decimals:.{decimals}f} {unit}"


@dataclass(frozen=True)
class MemoryModel:
    """What the pass asks of the memory planner (runtime.build.memory_model gives it)."""
    peak: Callable  # graph -> bytes the plan of this graph needs (plan.memory["total"])
    is_view: Callable  # node -> True when its value is its first operand's storage
    is_constant: Callable  # node -> True when lowering makes it a constant (no pool buffer)


@dataclass(frozen=True)
class Recomputation:
    value: str  # the op, its type and where the model built it
    bytes: int  # its size: what leaves the peak
    flops: float  # to recompute it (and any operand copies it needed)


@dataclass
class RematReport:
    """What `memory_limit` cost: on `plan.remat_report`, and logged in one line."""
    limit: int
    peak_before: int
    peak_after: int
    flops_before: float
    extra_flops: float  # net: a value moved rather than copied costs nothing
    recomputed: list = field(default_factory=list)  # Recomputation, in the order chosen

    def __str__(self):
        if not self.recomputed:
            return (f"memory_limit {format_bytes(self.limit)}: the plan's peak "
                    f"{format_bytes(self.peak_before)} fits, nothing recomputed")
        share = self.extra_flops / self.flops_before if self.flops_before else 0.0
        values = "; ".join(r.value for r in self.recomputed)
        return (f"memory_limit {format_bytes(self.limit)}: peak {format_bytes(self.peak_before)}"
                f" -> {format_bytes(self.peak_after)} by recomputing {len(self.recomputed)} "
                f"values where they are read again, +{_format_flops(self.extra_flops)} per "
                f"call (+{share:.1%}): {values}")


def _format_flops(flops: float) -> str:
    for scale, unit in ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP")):
        if abs(flops) >= scale:
            return f"{flops / scale:.2f} {unit}"
    return f"{flops:.0f} FLOP"


def rematerialize(graph, limit: int, memory: MemoryModel, max_steps: int | None = None):
    """(graph whose plan needs at most `limit` bytes, RematReport); a GraphcError when no
    sequence of recomputations this pass finds gets there."""
    flops_before = graph_cost(graph)
    peak = peak_before = best = memory.peak(graph)
    chosen = []
    max_steps = 2 * len(graph.nodes) if max_steps is None else max_steps
    while peak > limit:
        choice = None if len(chosen) >= max_steps else _cheapest(graph, memory)
        if choice is None:
            raise MemoryLimitError(limit, peak_before, best)
        graph = _recompute(graph, choice)
        chosen.append(choice.summary)
        peak = memory.peak(graph)
        best = min(best, peak)
    return graph, RematReport(limit, peak_before, peak, flops_before,
                              graph_cost(graph) - flops_before, chosen)


def node_cost(n) -> float:
    op = get_op(n.op)
    if op.flops is None:
        return float(n.size) if n.inputs else 0.0
    return float(op.flops([i.type for i in n.inputs], n.type, **n.attrs))


def graph_cost(graph) -> float:
    return sum(node_cost(n) for n in graph.nodes if n.op not in ("input", "constant"))


@dataclass
class _Choice:
    target: object  # the value recomputed
    copies: list  # nodes to copy, in schedule order
    reroute: dict  # reader -> positions of its operands that read copies
    summary: Recomputation


class _Liveness:
    """The schedule as the memory planner sees it: which node owns each value's memory, when
    it dies, and, per pool key (dtype, element count: the planner reuses a buffer only for an
    exact match), how many values of that key are live at each position. The pool then
    needs about sum over keys of key bytes x the key's largest count."""

    def __init__(self, graph, memory: MemoryModel):
        self.nodes = graph.nodes
        self.position = {n: k for k, n in enumerate(graph.nodes)}
        self.root, self.owns = {}, {}
        for n in graph.nodes:
            view = memory.is_view(n) and n.inputs
            self.root[n] = self.root[n.inputs[0]] if view else n
            self.owns[n] = not view and n.op not in ("input", "constant") \
                and not memory.is_constant(n)
        self.end = end = len(graph.nodes)
        self.last = {n: self.position[n] for n in graph.nodes}
        self.readers = {n: [] for n in graph.nodes}  # root -> (reader, operand position)
        for n in graph.nodes:
            for k, operand in enumerate(n.inputs):
                r = self.root[operand]
                self.last[r] = max(self.last[r], self.position[n])
                self.readers[r].append((n, k))
        for o in graph.outputs:
            self.last[self.root[o]] = end  # outputs are allocated per call, not pooled
        self.count, self.defined = {}, {}  # key -> values live / made at each position
        for n in graph.nodes:
            if self.pooled(n):
                delta = self.count.setdefault(_key(n), np.zeros(end + 1, np.int64))
                delta[self.position[n]] += 1
                delta[self.last[n] + 1] -= 1
                made = self.defined.setdefault(_key(n), np.zeros(end, np.int64))
                made[self.position[n]] += 1
        for key, delta in self.count.items():
            self.count[key] = np.cumsum(delta)[:end]

    def pooled(self, n) -> bool:
        return self.owns[n] and self.last[n] < self.end

    def kept_until(self, operand, position) -> bool:
        """Is operand's storage there anyway at `position` (an input, a constant, or a value
        read at or after it)?"""
        root = self.root[operand]
        return not self.owns[root] or self.last[root] >= position


def _key(n):
    return n.dtype, n.size


def _bytes(n) -> int:
    return n.size * n.dtype.itemsize


def _pool_gain(live, r, gap, transient) -> float:
    """Bytes the pool loses when r is not held inside gap = (a, b) and its copy is made just
    before b, with the `transient` copies (operands recomputed to rebuild it) held there too;
    plus, as a tie breaker below one byte, the share of positions at the key's maximum that
    go away (two values that each hold a key's peak only lower it together)."""
    a, b = gap
    extra = {_key(r): 0}  # r's copy stands in for r at the copy's place: no change
    for c in transient:
        extra[_key(c)] = extra.get(_key(c), 0) + 1
    gain = 0.0
    for key, added in extra.items():
        count = live.count[key]
        after = count.copy()
        if key == _key(r):
            after[a + 1:b] -= 1
        # where the copies are made: what is live across b's start, plus the copies
        made_at = count[b] - live.defined[key][b] + added
        old_max, new_max = count.max(), max(after.max(), made_at)
        size = key[1] * key[0].itemsize
        gain += size * (old_max - new_max)
        if old_max == new_max:
            at_max = np.sum(after == new_max) + (made_at == new_max)
            gain += size * (np.sum(count == old_max) - at_max) / (live.end + 2)
    return gain


def _cheapest(graph, memory: MemoryModel) -> _Choice | None:
    """The recomputation with the fewest FLOPs per pool byte it saves, or None."""
    live = _Liveness(graph, memory)
    best, best_key = None, None
    for r in graph.nodes:
        if not live.pooled(r) or _bytes(r) < MIN_BYTES:
            continue
        reads = sorted({live.position[reader] for reader, _ in live.readers[r]})
        bounds = [live.position[r]] + reads
        count = live.count[_key(r)]
        for a, b in zip(bounds, bounds[1:]):
            # only a gap over one of the key's fullest positions can lower the pool
            if b - a < 2 or count[a + 1:b].max() < count.max():
                continue
            copies = _copies_needed(r, a, b, live)
            if copies is None:
                continue
            made = [c for c in copies if live.root[c] is c]
            gain = _pool_gain(live, r, (a, b), [c for c in made if c is not r])
            if gain <= 0:
                continue
            cost = sum(node_cost(c) for c in made)
            key = (cost / gain, -gain, live.position[r], a)
            if best_key is None or key < best_key:
                best, best_key = (r, a, copies, cost), key
    if best is None:
        return None
    r, a, copies, cost = best
    reroute = {}
    for reader, k in live.readers[r]:
        if live.position[reader] > a and live.position[reader.inputs[k]] <= a:
            reroute.setdefault(reader, []).append(k)
    return _Choice(r, copies, reroute, Recomputation(_describe(r), _bytes(r), cost))


def _copies_needed(r, a, b, live) -> list | None:
    """The nodes to copy so that r's readers after position a read copies made right before
    position b: the views of r they read, r itself, and every operand of those whose storage
    is gone by b (recursively); None when one cannot be recomputed (a collective) or the
    chain computes more than MAX_CHAIN nodes."""
    wanted, computed = set(), [0]

    def visit(x) -> bool:
        if x in wanted:
            return True
        if get_op(x.op).collective or x.op == "input" or computed[0] >= MAX_CHAIN:
            return False
        wanted.add(x)
        computed[0] += live.root[x] is x
        for operand in x.inputs:
            kept = live.root[operand] is not r and live.kept_until(operand, b)
            if not kept and not visit(operand):
                return False
        return True

    for reader, k in live.readers[r]:
        operand = reader.inputs[k]
        if live.position[reader] > a and live.position[operand] <= a and not visit(operand):
            return None
    return sorted(wanted, key=live.position.__getitem__)


def _recompute(graph, choice: _Choice):
    """The graph with the choice's copies made right before the first rerouted reader."""
    from ir.rewrite import rebuild

    position = {n: k for k, n in enumerate(graph.nodes)}
    first = min(choice.reroute, key=position.__getitem__)
    copies, mapping = {}, {}
    pending = set(choice.copies)

    def visit(node, inputs, new):
        if node is first:
            for x in choice.copies:
                operands = [copies[i] if i in pending else mapping[i] for i in x.inputs]
                copies[x] = new.add_node(x.op, operands, dict(x.attrs), x.type, x.locs,
                                         x.scope)
        positions = choice.reroute.get(node)
        if positions is None:
            return None
        inputs = [copies[i] if k in positions else v
                  for k, (i, v) in enumerate(zip(node.inputs, inputs))]
        return new.add_node(node.op, inputs, dict(node.attrs), node.type, node.locs,
                            node.scope)

    rebuilt, _ = rebuild(graph, visit, mapping=mapping)
    return dce(rebuilt)


def _describe(n) -> str:
    where = f" at {n.scope}" if n.scope else ""
    if n.locs:
        where += f" ({n.locs[0][0]}:{n.locs[0][1]})"
    return f"{n.op} {n.type}{where}"
