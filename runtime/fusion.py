"""Elementwise fusion: groups of elementwise nodes become one `fused` node (one numba loop in
the compiled plan).

numpy runs `p - lr * m / (sqrt(v) + eps)` as five passes over memory, each a Python call;
the fused kernel reads p, m and v once and writes the result once, on both cores.

A cluster grows backwards from a root through producers of the same shape whose every user
is already in the cluster (so no value is computed twice and none escapes from inside a
kernel). Operands from outside must be, relative to the cluster's shape viewed as
(rows, columns) with the last axis as columns: the full shape, a row vector broadcast over
the rows (a bias), a column broadcast over the last axis (a keepdims statistic), one matrix
repeated over the leading axes (an attention mask) or a single value; anything else stays a
numpy kernel. A softmax over the last axis may be a cluster's root: its kernel computes the
producers row by row, then normalises the row (attention's scale, mask and softmax).

Clusters of one shape are then merged into one kernel with several results
(merge_clusters) when one reads another's values or both read the same full-shaped operand:
an AdamW update's m, v and parameter kernels read the gradient, m and v once and write all
three. A merged cluster sits where its last member was; a merge is made only if every value
it returns is read after that point, so the graph order stays valid without reordering.

`fuse(graph)` replaces each cluster by one node of op `fused` (ir/ops/cluster.py) whose
`program` attribute lists the member ops as text, with the attributes their lowering records
name (runtime/op_lowering.py); its numpy evaluation runs the members' own definitions, so the
interpreter checks the fused graph too.

Before clustering, a dense layer's `add(matmul(a, b), bias)` becomes one `matmul_add` node
(fold_bias_into_products): runtime.gemm adds the product onto the bias, so no kernel of its
own adds the bias.

Fusion is the first lowering stage (runtime/stages.py), not a graph pass: only the compiled
runtime with numba runs fused nodes, and which ops may fuse is lowering knowledge (their
scalar expressions in the generated kernels). `graphc dump --after fuse` shows its result.
"""
from __future__ import annotations

import numpy as np

from ir.graph import Graph
from ir.ops.cluster import format_program, operand_kind, parse_program
from ir.rewrite import merge_locs, rebuild
from ir.types import TensorType, TupleType

from .op_lowering import has_fused_expression, lowering_of

_DTYPES = (np.dtype("float32"), np.dtype("float64"), np.dtype("bool"))
# A kernel call costs about 0.8 us, a numpy op about 0.4 us (measured): clusters pay off
# from two ops at any size; the floor keeps tiny values (scalars, test graphs) on numpy.
FUSE_MIN_ELEMENTS = 64
# A merged kernel's operands and results together, at most: numba's compile time grows with
# the arguments (an AdamW update has 4 arrays, ~7 scalars and 3 results)
MERGED_MAX_ARGUMENTS = 24
# One large op alone is worth a kernel too (bias and residual adds; measured in whole training
# steps of the small GPT: 107.3 ms with, 114.8 ms without).
FUSE_ALONE_MIN_ELEMENTS = 1 << 16


_kind = operand_kind  # ir/ops/cluster.py: the reading rule its type check also applies


def fusible(node) -> bool:
    if node.op == "softmax":
        return _softmax_root(node)
    if not has_fused_expression(node) or node.ndim == 0 or node.size < FUSE_MIN_ELEMENTS:
        return False
    if node.dtype not in _DTYPES or any(i.dtype not in _DTYPES for i in node.inputs):
        return False
    return all(_kind(i.shape, node.shape) is not None for i in node.inputs)


def _softmax_root(node) -> bool:
    """A softmax over the last axis may end a cluster: its kernel computes the elementwise
    producers row by row, then normalises the row (attention's scale and mask + softmax)."""
    return (node.attrs["axis"] == node.ndim - 1 and node.ndim >= 1
            and node.dtype in _DTYPES[:2] and node.size >= FUSE_MIN_ELEMENTS)


def _alone_worth_it(node) -> bool:
    # gelu and gelu_grad alone already have parallel kernels (runtime.jit)
    return node.size >= FUSE_ALONE_MIN_ELEMENTS and node.op not in ("softmax", "gelu",
                                                                     "gelu_grad")


def clusters(graph: Graph) -> list:
    """[(root, members in graph order)] for every cluster of two or more nodes, or of one
    large elementwise node; only the root may be a softmax."""
    users = graph.users()
    outputs = set(graph.outputs)
    owner = {}
    found = []
    for root in reversed(graph.nodes):
        if root in owner or not fusible(root):
            continue
        members = {root}
        grew = True
        while grew:
            grew = False
            for m in list(members):
                for p in m.inputs:
                    if (p not in members and p not in owner and p not in outputs
                            and p.op != "softmax" and fusible(p) and p.shape == root.shape
                            and all(u in members for u in users[p])):
                        members.add(p)
                        grew = True
        if len(members) < 2 and not _alone_worth_it(root):
            continue
        for m in members:
            owner[m] = root
        found.append((root, [n for n in graph.nodes if n in members]))
    found.reverse()
    return found


def merge_clusters(graph: Graph, found) -> list:
    """Member lists (graph order) of `found` (clusters()) after merging clusters of one shape
    where one reads a value of the other or both read one full-shaped operand, as long as
    every value read outside the merged cluster is read after its last member (so the
    merged kernel, placed there, comes before all its readers: no cycle, no reordering)."""
    order = {n: k for k, n in enumerate(graph.nodes)}
    users = graph.users()
    outputs = set(graph.outputs)
    clustered = {m for _, members in found for m in members}
    # fusible nodes in no cluster (too small alone) may join one: a product that two
    # clusters read would otherwise stay a numpy kernel between them
    single = [(n, [n]) for n in graph.nodes
              if n not in clustered and n.op != "softmax" and fusible(n)]
    units = sorted(found + single, key=lambda unit: order[unit[0]])
    groups = {}  # group id -> set of members
    group_of = {}  # member -> group id
    readers = {}  # full-shaped operand from outside -> ids of groups reading it
    merged_into = {}  # id of a group merged into a later one -> that one's id

    def current(gid):
        while gid in merged_into:
            gid = merged_into[gid]
        return gid

    for gid, (root, members) in enumerate(units):
        members = set(members)
        if root.op != "softmax":
            linked = {current(group_of[p]) for m in members for p in m.inputs
                      if p in group_of and p not in members}
            linked |= {current(g) for m in members for p in m.inputs
                       if p.shape == root.shape for g in readers.get(p, ())}
            for other in sorted(linked):
                merged = groups[other] | members
                if _mergeable(merged, root.shape, order, users, outputs):
                    members = merged
                    del groups[other]
                    merged_into[other] = gid
        groups[gid] = members
        for m in members:
            group_of[m] = gid
            for p in m.inputs:
                if p not in members and p.shape == root.shape and root.op != "softmax":
                    readers.setdefault(p, set()).add(gid)
    kept = [members for members in groups.values()
            if len(members) > 1 or members <= clustered]  # a lone small node stays numpy
    return sorted((sorted(members, key=order.__getitem__) for members in kept),
                  key=lambda ms: order[ms[-1]])


def _mergeable(members, shape, order, users, outputs) -> bool:
    if any(m.shape != shape or m.op == "softmax" for m in members):
        return False
    last = max(order[m] for m in members)
    results = 0
    for m in members:
        outside = [u for u in users[m] if u not in members]
        if outside or m in outputs or not users[m]:
            results += 1
        if any(order[u] < last for u in outside):
            return False
    operands = {p for m in members for p in m.inputs if p not in members}
    return len(operands) + results <= MERGED_MAX_ARGUMENTS


def _products_added_to(graph: Graph, product_ops, takes_addend) -> dict:
    """{add: (product, reshape or None, addend)} for `add(p, x)` (either order) where p is a
    product of one of `product_ops` (through one reshape that keeps the last axis) with a
    matrix b, of the add's dtype and read by nothing else, and takes_addend(product, x, add)."""
    users = graph.users()
    outputs = set(graph.outputs)
    found = {}
    for n in graph.nodes:
        if n.op != "add" or n.dtype not in _DTYPES[:2] or n.ndim == 0:
            continue
        for p, x in (n.inputs, n.inputs[::-1]):
            reshape = p if p.op == "reshape" else None
            m = p.inputs[0] if reshape is not None else p
            # (a 0-d sum or product, such as a dot product of two vectors, has no last axis)
            if (m.op not in product_ops or m.ndim == 0 or x.dtype != n.dtype
                    or p.shape != n.shape or m.shape[-1] != n.shape[-1] or m.inputs[1].ndim != 2
                    or m.inputs[0].dtype != n.dtype or not takes_addend(m, x, n)):
                continue
            chain = [m] if reshape is None else [m, reshape]
            if any(c in outputs or len(users[c]) != 1 for c in chain):
                continue
            found[n] = (m, reshape, x)
            break
    return found


def products_with_bias(graph: Graph) -> dict:
    """{add: (matmul, reshape or None, bias)} for `add(matmul(a, b), bias)` (through one
    reshape that keeps the last axis), where b is a matrix, the bias one value per column and
    the product read by nothing else: a dense layer with a bias."""
    return _products_added_to(graph, ("matmul",),
                              lambda m, bias, add: bias.shape == (add.shape[-1],))


def fold_bias_into_products(graph: Graph) -> Graph:
    """Each `add(matmul(a, b), bias)` of products_with_bias becomes `matmul_add(a, b, bias)`
    (ir/ops/linalg.py): runtime.gemm fills the result with the bias and adds the product onto
    it (beta = 1), instead of a GEMM clearing its result and a kernel adding the bias after
    (measured with the small GPT: the four 2048 x 512 bias adds took 0.28 ms each)."""
    return _fold_into_products(graph, products_with_bias(graph), reshape_addend=False)


def products_with_residual(graph: Graph) -> dict:
    """{add: (product, reshape or None, r)} for `add(p, r)` (either order), where p is a
    matmul or a matmul_add with one addend (through one reshape that keeps the last axis), b a
    matrix, r a value of the add's own shape and dtype, and the product read by nothing else:
    a layer's output added to a residual stream."""
    return _products_added_to(graph, ("matmul", "matmul_add"),
                              lambda m, r, add: (len(m.inputs) <= 3 and r.shape == add.shape
                                                 and m is not r))


def fold_residuals_into_products(graph: Graph) -> Graph:
    """Each `add(p, r)` of products_with_residual becomes `matmul_add(a, b, [bias,] r)`, with r
    reshaped to the product's shape (a view): runtime.gemm starts each block from r (and the
    bias) and adds the product onto it (beta = 1), in r's own buffer when r dies there
    (runtime/memory.py: matmul_add may write over its last operand), so no kernel of its own
    adds the residual."""
    return _fold_into_products(graph, products_with_residual(graph), reshape_addend=True)


def _fold_into_products(graph: Graph, found: dict, reshape_addend: bool) -> Graph:
    """Each add of `found` ({add: (product, reshape or None, addend)}) becomes one
    `matmul_add` of the product's operands and the addend (reshaped to the product's shape
    if `reshape_addend` and the product was reshaped), reshaped back where it was."""
    if not found:
        return graph
    dropped = {c for m, reshape, _ in found.values() for c in (m, reshape) if c is not None}
    # Where each matmul_add is made: where the product was, when the addend is there by then
    # (an accumulated gradient, `sum + x.T @ dy`, whose add comes after the whole backward
    # pass); at the add's place it held the product's operands, activations and gradients,
    # alive until then (the plan of a micro-batch of gradient accumulation held every
    # layer's, and a memory_limit could not lower it). Its result is then held from the
    # product's place, as the product was, and the addend dies there rather than at the add
    order = {n: k for k, n in enumerate(graph.nodes)}
    made_at = {}
    for add, (m, reshape, x) in found.items():
        product = reshape if reshape is not None else m
        made_at[product if order[x] < order[product] else add] = add
    made, mapping = {}, {}

    def visit(node, inputs, new):
        if node in made:  # an add whose matmul_add was made at its product's place
            return made[node]
        if node not in made_at:
            return None
        add = made_at[node]
        node = add  # (its locations and scope are the add's, wherever it is made)
        m, reshape, x = found[add]
        locs = merge_locs(m.locs, node.locs)
        addend = mapping[x]
        if reshape is not None and reshape_addend:
            addend = new.add_node("reshape", [addend], {"shape": tuple(m.shape)},
                                  TensorType(m.shape, m.dtype), locs, node.scope)
        operands = [mapping[i] for i in m.inputs] + [addend]
        product = new.add_node("matmul_add", operands, {}, m.type, locs, node.scope)
        if reshape is not None:
            product = new.add_node("reshape", [product], dict(reshape.attrs), node.type, locs,
                                   node.scope)
        made[add] = product
        return product

    keep = {n for n in graph.nodes if n not in dropped or n in made_at}
    return rebuild(graph, visit, keep=keep, mapping=mapping)[0]


def fuse(graph: Graph) -> Graph:
    """The graph with each dense layer's bias folded into its product
    (fold_bias_into_products) and a residual added to a product folded into it
    (fold_residuals_into_products), then each cluster replaced by one `fused` node (inputs
    keep their order) at its last member; a cluster with several results is a fused node
    read by one `tuple_get` per result."""
    graph = fold_residuals_into_products(fold_bias_into_products(graph))
    found = merge_clusters(graph, clusters(graph))
    if not found:
        return graph
    users = graph.users()
    outputs = set(graph.outputs)
    members_of = {members[-1]: members for members in found}
    inside = {m for members in found for m in members[:-1]}
    mapping = {}

    def visit(node, inputs, new):
        if node not in members_of:
            return None
        members = members_of[node]
        inner = set(members)
        # values read outside, returned, or read by nothing (so the last member always is)
        results = [m for m in members if m in outputs or not users[m]
                   or any(u not in inner for u in users[m])]
        operands, program, slots = _program(members)
        locs = merge_locs(*(m.locs for m in members))
        args = [mapping[o] for o in operands]
        if len(results) == 1 and results[0] is node:
            return new.add_node("fused", args, {"program": program}, node.type, locs,
                                node.scope)
        attrs = {"program": program, "results": tuple(slots[r] for r in results)}
        fused = new.add_node("fused", args, attrs, TupleType([r.type for r in results]),
                             locs, node.scope)
        for k, r in enumerate(results):
            mapping[r] = new.add_node("tuple_get", [fused], {"index": k}, r.type, r.locs,
                                      r.scope)
        return mapping[node]  # the last member is always a result

    keep = [n for n in graph.nodes if n not in inside]
    return rebuild(graph, visit, keep=set(keep), mapping=mapping)[0]


def _program(members):
    """Operands from outside (in first-use order), the program text and each member's
    instruction number."""
    operands, slot, instructions = [], {}, []  # dicts, not lists: Node's == is symbolic
    for m in members:
        args = []
        for i in m.inputs:
            if i not in slot:
                slot[i] = ("a", len(operands))
                operands.append(i)
            args.append(slot[i])
        attrs = {k: m.attrs[k] for k in lowering_of(m.op).program_attrs}
        instructions.append((m.op, args, attrs))
        slot[m] = ("v", len(instructions) - 1)
    return operands, format_program(instructions), {m: slot[m][1] for m in members}


def loop_type(node):
    """The type of the values a fused node's loop writes: its result, or its first one."""
    return node.type.elements[0] if isinstance(node.type, TupleType) else node.type


def result_types(node) -> list:
    """The types of a fused node's results, one or several."""
    return list(node.type.elements) if isinstance(node.type, TupleType) else [node.type]


def fused_operand_kinds(node) -> list:
    shape = loop_type(node).shape
    return [_kind(i.shape, shape) for i in node.inputs]


def describe(node) -> str:
    """'fused(mul, add, sqrt)' for a fused node, the op name otherwise."""
    if node.op != "fused":
        return node.op
    return f"fused({', '.join(op for op, _, _ in parse_program(node.attrs['program']))})"
