"""Gradient buckets: blocking all-reduces become packed, overlapped ones, as in PyTorch DDP.

    bucket_allreduce:                          (bucket_mb large enough for both)
      %5 = matmul %1, %2                       %5 = matmul %1, %2
      %6 = allreduce %5 {reduce="mean"}        %9 = matmul %3, %4
      %9 = matmul %3, %4                  =>   %12 = allreduce_start %5, %9 {bucket=0}
      %10 = allreduce %9 {reduce="mean"}       %13 = tanh %7
      %13 = tanh %7                            %14 = allreduce_wait %12 {reduce="mean"}
      %11 = add %6, %10                        %15 = slice %14 ...  (views of the bucket)
                                               %11 = add %16, %18

    data_parallel: every floating-point output of the graph (a gradient graph's gradients, and
    its loss) becomes its mean over the ranks, then bucket_allreduce; a graph that already has
    allreduce nodes (a training step that averages its gradients before the optimizer update)
    is only bucketed.

How buckets are formed, after PyTorch DDP's reducer and Horovod's tensor fusion: the
all-reduces of one dtype and reduction are taken in the order their operands are produced (for
a backward pass: the last layers' gradients first, DDP's reverse parameter order) and packed
into buckets of at most `bucket_mb` MB (10^6 bytes; DDP's are MiB); at the default cap, 25,
the first bucket of each dtype (and reduction) holds at most 1 MB, so that communication
starts early, and any other cap holds for every bucket (DDP too makes each dtype's first
bucket small only at its default cap); a gradient larger than the cap is a bucket of its own.
A bucket is started right after its last operand is computed and waited for right before the
first node that reads one of its values (at the end when only outputs read them), so the
kernels in between overlap its communication. A bucket also closes early where a later
operand would be produced after an earlier member is read (the wait would come before the
start). An all-reduce of an all-reduce stays blocking; one that nothing reads is left to dce.
A float16 or bfloat16 gradient is all-reduced through a cast to float32 (collective.allreduce):
it is planned by the gradient, and the cast is made right after it (_source), so a half
model's gradients join the float32 buckets as they are produced.

`bucket_mb` defaults to GRAPHC_BUCKET_MB, else 25 (DDP's bucket_cap_mb).
"""
from __future__ import annotations

import numpy as np

from ir import settings
from ir.graph import Graph
from ir.ops import collective as C
from ir.rewrite import clone
from ir.types import is_float, is_half

DEFAULT_BUCKET_MB = settings.BUCKET_MB.default
FIRST_BUCKET_MB = 1.0  # each dtype's first bucket at the default cap (DDP's: 1 MiB)


def bucket_mb_default() -> float:
    return settings.BUCKET_MB.get()


def plan_buckets(graph: Graph, bucket_mb: float) -> list[list]:
    """The graph's allreduce nodes grouped into buckets, each in packing order; buckets in the
    order they become ready."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    end = len(graph.nodes)
    first_read = {}
    for n in graph.nodes:
        for i in n.inputs:
            first_read.setdefault(i, order[n])
    outputs = set(graph.outputs)
    # a dead all-reduce (nothing reads it) is left for dce, not started and never waited for
    candidates = [n for n in graph.nodes if n.op == "allreduce"
                  and n.inputs[0].op != "allreduce" and (n in first_read or n in outputs)]
    groups = {}
    for n in sorted(candidates, key=lambda n: order[_source(n)]):
        groups.setdefault((str(n.dtype), n.attrs["reduce"]), []).append(n)
    cap_bytes = bucket_mb * 1e6
    first_bytes = min(cap_bytes, FIRST_BUCKET_MB * 1e6) if bucket_mb == DEFAULT_BUCKET_MB \
        else cap_bytes  # (a cap set to trade latency for size is not undercut by 1 MB)
    buckets = []
    for members in groups.values():
        # first bucket per group, as DDP's per dtype: a loss of another dtype (a float32
        # model's float64 loss) bucketed first must not give the gradients the large cap
        group_start = len(buckets)
        current, size, read_before = [], 0, end + 1
        for n in members:
            produced = order[_source(n)]
            if current and produced >= read_before:
                buckets.append(current)
                current, size, read_before = [], 0, end + 1
            if not current:  # a bucket opens: its cap holds until it closes
                limit = first_bytes if len(buckets) == group_start else cap_bytes
            current.append(n)
            size += n.type.size * n.dtype.itemsize
            read_before = min(read_before, first_read.get(n, end))
            if size >= limit:
                buckets.append(current)
                current, size, read_before = [], 0, end + 1
        if current:
            buckets.append(current)
    buckets.sort(key=lambda b: max(order[_source(n)] for n in b))
    return buckets


def _source(n):
    """The value whose production all-reduce `n` waits for: its operand, or, where that is
    the float32 cast collective.allreduce puts around a float16 or bfloat16 gradient (MPI has
    no half types), the gradient itself. The cast was made with the all-reduce, after the
    whole backward pass, and is read right after it: planned by the cast, each half gradient
    was a bucket of its own, started and waited for at the end, overlapping nothing.
    bucket_allreduce makes the cast right after the gradient instead."""
    x = n.inputs[0]
    if x.op == "cast" and x.dtype == np.float32 and is_half(x.inputs[0].dtype):
        return x.inputs[0]
    return x


def bucket_allreduce(graph: Graph, bucket_mb: float | None = None) -> Graph:
    """Graph -> Graph: the allreduce nodes packed into overlapped buckets (see the module)."""
    bucket_mb = bucket_mb_default() if bucket_mb is None else bucket_mb
    buckets = plan_buckets(graph, bucket_mb)
    member_of = {n: k for k, bucket in enumerate(buckets) for n in bucket}
    order = {n: i for i, n in enumerate(graph.nodes)}
    trigger = {}  # old node -> buckets to start right after it
    early = {}  # old node -> the widening casts of it to make right after it (see _source)
    for k, bucket in enumerate(buckets):
        last = max((_source(n) for n in bucket), key=order.get)
        trigger.setdefault(last, []).append(k)
        for n in bucket:
            if _source(n) is not n.inputs[0]:
                early.setdefault(_source(n), []).append(n.inputs[0])

    new = Graph(graph.name)
    new.output_tree = graph.output_tree
    new.param_values = dict(graph.param_values)
    new._next_salt = graph._next_salt
    mapping, started = {}, {}

    def start(k):
        bucket = buckets[k]
        locs = tuple(loc for n in bucket for loc in n.locs)
        with new.building(), new.locations(locs, bucket[-1].scope):
            started[k] = C.allreduce_start([mapping[n.inputs[0]] for n in bucket], bucket=k)

    def wait(k):
        bucket = buckets[k]
        with new.building(), new.locations(started[k].locs, bucket[-1].scope):
            flat = C.allreduce_wait(started[k], bucket[0].attrs["reduce"])
            for n, piece in zip(bucket, C.unpack(flat, [n.shape for n in bucket])):
                mapping[n] = piece

    for node in graph.nodes:
        if node.op == "input":
            copy = new.input(node.attrs["name"], node.shape, node.dtype, node.attrs["kind"])
            copy.locs = node.locs
            mapping[node] = copy
        elif node in member_of:
            continue  # its value is a view of its bucket, made at the bucket's wait
        elif node in mapping:
            continue  # a cast made early, right after its operand
        else:
            for i in node.inputs:
                if i in member_of and i not in mapping:
                    wait(member_of[i])
            mapping[node] = new.add_node(node.op, [mapping[i] for i in node.inputs],
                                         dict(node.attrs), node.type, node.locs, node.scope)
        for cast in early.get(node, ()):
            if cast not in mapping:  # (one cast may widen a gradient for two all-reduces)
                mapping[cast] = new.add_node(cast.op, [mapping[node]], dict(cast.attrs),
                                             cast.type, cast.locs, cast.scope)
        for k in trigger.get(node, ()):
            start(k)
    for out in graph.outputs:
        if out in member_of and out not in mapping:
            wait(member_of[out])
    new.set_outputs([mapping[o] for o in graph.outputs])
    by_name = {n.attrs["name"]: n for n in new.inputs}
    new.bound_params = {k: by_name[v.attrs["name"]] for k, v in graph.bound_params.items()
                        if v.attrs["name"] in by_name}
    return new


def average_outputs(graph: Graph, outputs=None) -> Graph:
    """Graph -> Graph: the floating-point outputs (or those at the given positions) replaced by
    their mean over the ranks (blocking allreduce nodes; bucket_allreduce packs them)."""
    new = clone(graph)
    positions = range(len(new.outputs)) if outputs is None else outputs
    averaged = {}
    outs = list(new.outputs)
    with new.building():
        for k in positions:
            out = outs[k]
            if not is_float(out.dtype):
                continue
            if out not in averaged:
                with new.locations(out.locs, out.scope):
                    averaged[out] = C.allreduce(out, "mean")
            outs[k] = averaged[out]
    new.set_outputs(outs)
    return new


def data_parallel(graph: Graph, bucket_mb: float | None = None) -> Graph:
    """Graph -> Graph: outputs averaged over the ranks (unless the graph has its own
    all-reduces), in overlapped buckets."""
    if not any(n.op == "allreduce" for n in graph.nodes):
        graph = average_outputs(graph)
    return bucket_allreduce(graph, bucket_mb)
