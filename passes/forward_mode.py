"""Forward mode: the tangents J @ v of some values, as new nodes of their graph.

graphc builds a jvp from two reverse passes (the "double vjp"): u -> vjp(u) is linear in the
cotangent u, so differentiating <vjp(u), v> with respect to u gives J @ v. A while_loop has
no reverse pass (its trip count is only known when it runs), so its tangents are carried
forward instead, as JAX's jvp of lax.while_loop does:

    while_loop(cond, body, c)  =>  while_loop(cond', body', (c, dc))
    body'(c, dc) = (body(c), jvp of body at c along dc)    (built the same way: loops nest)
    cond'(c, dc) = cond(c)                                  (the trip count has no tangent)

A scan or cond holding a while_loop (at any depth) is rebuilt the same way: a scan of the
body's jvp over (xs, dxs) carrying (c, dc), a cond of the branches' jvps. The reverse passes
then stop at each rebuilt node's float results (`gradients(..., partial=True)`), and each
result enters as one more source whose tangent is the new node's. The new node computes the
primal results too, so the original's results then read the new node's (`_read_from`) and
the original, unread, is dead code: the loop runs once, as JAX's (gc.linearize keeps the
original, `keeping_primal_loops`: its known part computes the value without the tangents).
Everything else goes through the double vjp as before.
"""
from __future__ import annotations

import contextlib

from ir.errors import GraphcError
from ir.ops import api as F
from ir.ops.custom import _custom_call
from ir.ops.control_flow import REGION_OPS, regions_of
from ir.ops.registry import apply, graph_valued
from ir.region import Region
from ir.types import is_float

from .autodiff import _relevant, gradients, upstream
from .control_flow_ad import _captured, _replay


_KEEP_PRIMAL_LOOPS = [False]


@contextlib.contextmanager
def keeping_primal_loops():
    """Within: the function's values keep reading the original loops (gc.linearize splits
    the jvp graph into what the tangents reach and what they do not: the value must be in
    the second part)."""
    _KEEP_PRIMAL_LOOPS.append(True)
    try:
        yield
    finally:
        _KEEP_PRIMAL_LOOPS.pop()


@graph_valued()  # (the cotangents it differentiates with respect to are the graph's values)
def tangents(outs, sources, source_tangents) -> list:
    """J @ v: one tangent per node of `outs` (float values of one graph) along
    `source_tangents`, one per node of `sources` (its independent variables: what they are
    computed from is not differentiated)."""
    outs, sources, vs = list(outs), list(sources), list(source_tangents)
    graph, independent = outs[0].graph, set(sources)
    relevant = _on_derivative_paths(outs, _relevant(graph, outs, sources)[0])
    rebuilt = []  # (old node, new node, {old result position: new one})
    for node in list(graph.nodes):
        if node in relevant and _remat_of_a_loop(node):
            # its value is its forward's: the tangent of that, the loops in it rebuilt
            vs += _double_vjp([node.inputs[0]], sources, vs, independent)
            sources.append(node)
            continue
        rebuild = _FORWARD_RULES.get(node.op)
        if rebuild is None or node not in relevant or not _holds_while_loop(node):
            continue
        positions = [k for k in _differentiable_operands(node)
                     if is_float(node.inputs[k].dtype)]
        # the operands' tangents come from upstream: the sources so far, which include
        # the results of the nodes rebuilt before this one
        operand_tangents = _double_vjp([node.inputs[k] for k in positions], sources, vs,
                                       independent)
        # the new node has the user's line of the old one: a gradient of it, refused, and
        # errors when it runs name the loop, not the jvp call
        with graph.locations(node.locs, node.scope):
            new, (primal_at, tangent_at) = rebuild(node, dict(zip(positions, operand_tangents)))
            rebuilt.append((node, new, primal_at))
            for r in list(graph.nodes):
                if r.op == "tuple_get" and r.inputs[0] is node and is_float(r.dtype):
                    sources.append(r)
                    vs.append(apply("tuple_get", new, index=tangent_at[r.attrs["index"]]))
    result = _double_vjp(outs, sources, vs, independent)
    if rebuilt and not _KEEP_PRIMAL_LOOPS[-1]:
        _read_from(graph, rebuilt)
    return result


def _read_from(graph, rebuilt):
    """Each old node's results (its tuple_get nodes: the function's values, the reverse
    passes' sources) read the new node's primal results instead, equal to them; the nodes
    are put back in an order where each follows its inputs (a result now follows the new
    node, built after the result's users)."""
    for old, new, primal_at in rebuilt:
        for r in graph.nodes:
            if r.op == "tuple_get" and r.inputs[0] is old:
                r.inputs[0] = new
                r.attrs = {**r.attrs, "index": primal_at[r.attrs["index"]]}
    placed, order = set(), []
    for start in graph.nodes:  # depth first, inputs first, otherwise in the old order
        stack = [(start, False)]
        while stack:
            n, ready = stack.pop()
            if n in placed:
                continue
            if ready:
                placed.add(n)
                order.append(n)
                continue
            stack.append((n, True))
            stack.extend((i, False) for i in reversed(n.inputs)
                         if i not in placed and i.graph is graph)
    graph.nodes[:] = order


def _on_derivative_paths(outs, relevant) -> set:
    """The nodes of `relevant` a derivative of `outs` goes through. Not what a custom_vjp
    node computes its value from (its forward, residuals): its rule differentiates it, and a
    loop rebuilt there would make its results sources the rule's closure check refuses."""
    def inputs_of(n):
        ins = n.inputs[1:1 + n.attrs["args"]] \
            if n.op == "custom_vjp" and not _remat_of_a_loop(n) else n.inputs
        return [i for i in ins if i in relevant]
    return upstream([o for o in outs if o in relevant], inputs_of)


def _remat_of_a_loop(node) -> bool:
    """A gc.remat node (a custom_vjp whose rule replays its forward nodes) over a while_loop:
    its rule would differentiate the loop in reverse, so forward mode goes through its
    forward nodes instead, as JAX's jvp of checkpoint is the jvp of the function."""
    if node.op != "custom_vjp" or not str(node.attrs["fn"]).startswith("remat("):
        return False
    args = set(node.inputs[1:1 + node.attrs["args"]])
    stack, seen = [node.inputs[0]], set()
    while stack:
        n = stack.pop()
        if n in seen or n in args:
            continue
        if _holds_while_loop(n):
            return True
        seen.add(n)
        stack.extend(n.inputs)
    return False


def _double_vjp(outs, sources, vs, independent) -> list:
    if not outs:
        return []
    us = [F.zeros_like(o) for o in outs]  # their value is irrelevant: vjp is linear in u
    # the sources added for rebuilt nodes' results are computed from the independent ones
    pulled = gradients(outs, sources, us, partial=True,
                       stand_ins=[s for s in sources if s not in independent])
    # one scalar per source, differentiated together rather than added up: sources of
    # different float dtypes give terms of different dtypes
    terms = [F.sum(p * v) for p, v in zip(pulled, vs)]
    result = gradients(terms, us)
    _check_linear_rules(outs, us, result)
    return result


def _check_linear_rules(outs, us, result):
    """The double vjp is exact only where every reverse rule is linear in its cotangent, as
    graphc's own are: then the tangents do not read the placeholder cotangents `us`. A user's
    custom_vjp `bwd` need not be (JAX's clip_gradient: clip(g, lo, hi)), and the tangent was
    then that rule's derivative at g = 0, silently (jacfwd disagreed with jacrev); JAX refuses
    jvp of any custom_vjp function, graphc refuses only a rule that is not linear.
    The walk does not enter a loop or a branch: the derivative of a backward loop reads its
    own carries, computed from the cotangent, also where the rule is linear (a custom_jvp
    rule applying f to the tangent in a scan), so a rule's nonlinearity there is not seen."""
    placeholders = set(us)
    reads = upstream([r for r in result if r is not None],
                     lambda n: () if n.op in REGION_OPS else n.inputs)
    if not placeholders & reads:
        return
    on_path = upstream(outs, lambda n: n.inputs)
    users = [n for n in outs[0].graph.nodes if n in on_path and n.op == "custom_vjp"
             and not _custom_call(n.attrs).replays]
    if not users:  # (graphc's own rules are linear: nothing to name)
        return
    node = _nonlinear_rule(users)
    node = users[0] if node is None else node
    raise GraphcError(
        f"forward mode (jvp, jacfwd, hessian, linearize) through custom_vjp function "
        f"{node.attrs['fn']}: its bwd is not linear in the cotangent g, so it has no forward-"
        "mode derivative (JAX refuses jvp of any custom_vjp function); use reverse mode "
        "(grad, vjp, jacrev), or give the function a custom_jvp rule", node.locs)


def _nonlinear_rule(users):
    """The first of `users` whose bwd is not linear in its cotangent, found by running its
    rule alone on a placeholder cotangent (only where forward mode is refused: its nodes are
    dead code), so the function named is the one whose rule reads g, not the first on the
    path (clipper(scale2(x)) named scale2, a linear rule, or a custom_jvp function)."""
    for node in users:
        args = node.inputs[1:1 + node.attrs["args"]]
        g = F.zeros_like(node)
        with node.graph.locations(node.locs, node.scope):
            cts = _custom_call(node.attrs).pullback(
                list(args), list(node.inputs[1 + len(args):]), g,
                tuple(is_float(a.dtype) for a in args))
        terms = [F.sum(c) for c in cts if c is not None]
        slope = gradients(terms, [g], none_if_unreached=True) if terms else []
        if g in upstream([s for s in slope if s is not None],
                         lambda n: () if n.op in REGION_OPS else n.inputs):
            return node
    return None


def _holds_while_loop(node) -> bool:
    if node.op == "while_loop":
        return True
    return any(_holds_while_loop(n) for region in regions_of(node) for n in region.nodes)


def _differentiable_operands(node):
    if node.op == "while_loop":  # not the condition's consts: the trip count has no tangent
        return range(node.attrs["cond_consts"], len(node.inputs))
    if node.op == "cond":  # not the predicate
        return range(1, len(node.inputs))
    return range(len(node.inputs))


def _jvp_region(name, source, in_groups, out_groups):
    """A region replaying `source` that also takes and returns tangents. Its inputs: each
    group of `in_groups` (positions of source inputs) followed by the tangents of its float
    members; its outputs: each group of `out_groups` (positions of source outputs) followed
    by theirs. -> (region, its own inputs in signature order): the caller orders the values
    a custom rule captured while it was built (`_captured`)."""
    region = Region(name)
    with region.building():
        ins = [region.input(f"in{k}", n.shape, n.dtype) for k, n in enumerate(source.inputs)]
        own, wrt, d_ins = [], [], []
        for group in in_groups:
            floats = [k for k in group if is_float(source.inputs[k].dtype)]
            ds = [region.input(f"d_in{k}", source.inputs[k].shape, source.inputs[k].dtype)
                  for k in floats]
            own += [ins[k] for k in group] + ds
            wrt += [ins[k] for k in floats]
            d_ins += ds
        outs = _replay(region, source, ins)
        float_outs = [k for group in out_groups for k in group if is_float(outs[k].dtype)]
        d_outs = dict(zip(float_outs, tangents([outs[k] for k in float_outs], wrt, d_ins)
                          if float_outs else []))
        results = []
        for group in out_groups:
            results += [outs[k] for k in group]
            results += [region.result(d_outs[k]) for k in group if k in d_outs]
        region.set_outputs(results)
    return region, own


def _after_each_group(groups, sizes_of_floats):
    """({position in the old results: its position in the new ones}, {...: position of its
    tangent}), for results laid out group by group, each group followed by its float
    members' tangents."""
    primal_at, at, start = {}, {}, 0
    for group, floats in zip(groups, sizes_of_floats):
        for j, k in enumerate(group):
            primal_at[k] = start + j
        for j, k in enumerate(floats):
            at[k] = start + len(group) + j
        start += len(group) + len(floats)
    return primal_at, at


def _tangent_operands(node, group, operand_tangents):
    return [node.inputs[k] for k in group] + \
        [operand_tangents[k] for k in group if k in operand_tangents]


def _while_loop_forward(node, operand_tangents):
    a = node.attrs
    cond, body = a["cond_fn"], a["body_fn"]
    n_cond, n_body = a["cond_consts"], a["body_consts"]
    n_carries = len(node.inputs) - n_cond - n_body
    consts = list(range(n_body))
    carries = list(range(n_body, n_body + n_carries))
    new_body, own = _jvp_region(f"{body.name}_jvp", body, [consts, carries], [range(n_carries)])
    # values of the enclosing graph a custom rule read while the tangents were built: consts
    captured = _captured([new_body], [own], first=True)
    float_carries = [k for k in range(n_carries) if is_float(body.outputs[k].dtype)]

    new_cond = Region(f"{cond.name}_jvp")
    with new_cond.building():
        ins = [new_cond.input(f"in{k}", n.shape, n.dtype) for k, n in enumerate(cond.inputs)]
        for k in float_carries:  # taken and not read: the trip count has no tangent
            new_cond.input(f"d_in{k}", body.outputs[k].shape, body.outputs[k].dtype)
        new_cond.set_outputs(_replay(new_cond, cond, ins))

    def operands(positions):  # body-relative positions -> the node's operands and tangents
        return _tangent_operands(node, [n_cond + k for k in positions], operand_tangents)
    body_operands = operands(consts)
    new = apply("while_loop", *node.inputs[:n_cond], *captured, *body_operands,
                *operands(carries), cond_fn=new_cond, body_fn=new_body, cond_consts=n_cond,
                body_consts=len(captured) + len(body_operands))
    return new, _after_each_group([range(n_carries)], [float_carries])


def _scan_forward(node, operand_tangents):
    a = node.attrs
    body, n_consts, n_carries = a["body"], a["consts"], a["carries"]
    consts = list(range(n_consts))
    carries = list(range(n_consts, n_consts + n_carries))
    xs = list(range(n_consts + n_carries, len(node.inputs)))
    n_results = len(body.outputs)
    ys = list(range(n_carries, n_results))
    new_body, own = _jvp_region(f"{body.name}_jvp", body, [consts, carries, xs],
                                [range(n_carries), ys])
    captured = _captured([new_body], [own], first=True)
    const_operands = _tangent_operands(node, consts, operand_tangents)
    carry_operands = _tangent_operands(node, carries, operand_tangents)
    new = apply("scan", *captured, *const_operands, *carry_operands,
                *_tangent_operands(node, xs, operand_tangents),
                **{**a, "body": new_body, "consts": len(captured) + len(const_operands),
                   "carries": len(carry_operands)})
    # a scan a reverse pass made (save_carries: a jvp of a gradient) also gives the carry
    # each step started from, stacked, after its ys: the new one saves (c, dc) the same way
    saved = [n_results + k for k in range(n_carries)] if a.get("save_carries") else []
    groups = [range(n_carries), ys] + ([saved] if saved else [])
    floats = [[k for k in group if is_float(node.type.elements[k].dtype)] for group in groups]
    return new, _after_each_group(groups, floats)


def _cond_forward(node, operand_tangents):
    operands = list(range(1, len(node.inputs)))
    n_results = len(node.attrs["branches"][0].outputs)
    built = [_jvp_region(f"{b.name}_jvp", b, [[k - 1 for k in operands]], [range(n_results)])
             for b in node.attrs["branches"]]
    branches = tuple(region for region, _ in built)
    # both branches take the values either one's custom rules captured, after their own
    captured = _captured(branches, [own for _, own in built])
    new = apply("cond", node.inputs[0], *_tangent_operands(node, operands, operand_tangents),
                *captured, branches=branches)
    floats = [k for k in range(n_results) if is_float(branches[0].outputs[k].dtype)]
    return new, _after_each_group([range(n_results)], [floats])


_FORWARD_RULES = {"while_loop": _while_loop_forward, "scan": _scan_forward,
                  "cond": _cond_forward}
