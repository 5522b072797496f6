"""Forward mode: the tangents J @ v of some values, as new nodes of their graph.

graphc builds a jvp from two reverse passes (the "double vjp"): u -> vjp(u) is linear in the
cotangent u, so differentiating <vjp(u), v> with respect to u gives J @ v. A while_loop has
no reverse pass (its trip count is only known when it runs), so its tangents are carried
forward instead, as JAX's jvp of lax.while_loop does:

    while_loop(cond, body, c)  =>  while_loop(cond', body', (c, dc))
    body'(c, dc) = (body(c), jvp of body at c along dc)    (built the same way: loops nest)
    cond'(c, dc) = cond(c)                                  (the trip count has no tangent)

The reverse passes then stop at each loop's float results (`gradients(..., partial=True)`),
and each result enters as one more source, whose tangent is the new loop's. The new loop
also recomputes the primal carries: the original loop still gives the function's results.
A while_loop inside a scan body or a cond branch is differentiated by those ops' reverse
rules, so it is still refused there (passes/control_flow_ad.py, NO_GRADIENT).
"""
from __future__ import annotations

from ir.ops import api as F
from ir.ops.registry import apply
from ir.region import Region
from ir.types import is_float

from .autodiff import _relevant, gradients
from .control_flow_ad import _captured, _replay


def tangents(outs, sources, source_tangents) -> list:
    """J @ v: one tangent per node of `outs` (float values of one graph) along
    `source_tangents`, one per node of `sources` (its independent variables: what they are
    computed from is not differentiated)."""
    outs, sources, vs = list(outs), list(sources), list(source_tangents)
    graph = outs[0].graph
    relevant, _ = _relevant(graph, outs, sources)
    for loop in [n for n in graph.nodes if n.op == "while_loop" and n in relevant]:
        results = [n for n in graph.nodes if n.op == "tuple_get" and n.inputs[0] is loop
                   and is_float(n.dtype)]
        a = loop.attrs
        operands = loop.inputs[a["cond_consts"]:]
        floats = [k for k, x in enumerate(operands) if is_float(x.dtype)]
        # the loop's operands' tangents come from what is upstream: the sources so far,
        # which include the results of the loops before this one
        operand_tangents = _double_vjp([operands[k] for k in floats], sources, vs)
        new, carry_tangent_at = _loop_with_tangents(loop, floats, operand_tangents)
        for r in results:
            sources.append(r)
            vs.append(apply("tuple_get", new, index=carry_tangent_at[r.attrs["index"]]))
    return _double_vjp(outs, sources, vs)


def _double_vjp(outs, sources, vs) -> list:
    if not outs:
        return []
    us = [F.zeros_like(o) for o in outs]  # their value is irrelevant: vjp is linear in u
    pulled = gradients(outs, sources, us, partial=True)
    # one scalar per source, differentiated together rather than added up: sources of
    # different float dtypes give terms of different dtypes
    terms = [F.sum(p * v) for p, v in zip(pulled, vs)]
    return gradients(terms, us)


def _loop_with_tangents(loop, floats, operand_tangents):
    """`loop` rebuilt to carry the tangents of its float carries along with them.
    `floats`: the positions of its float operands after the condition's consts (body consts,
    then carries), `operand_tangents` theirs. -> (the new node, {carry index: the index of
    its tangent among the new node's results})."""
    a = loop.attrs
    cond, body = a["cond_fn"], a["body_fn"]
    n_cond, n_body = a["cond_consts"], a["body_consts"]
    cond_consts = loop.inputs[:n_cond]
    body_consts = loop.inputs[n_cond:n_cond + n_body]
    carries = loop.inputs[n_cond + n_body:]
    float_consts = [k for k in floats if k < n_body]
    float_carries = [k - n_body for k in floats if k >= n_body]
    const_tangents = operand_tangents[:len(float_consts)]
    carry_tangents = operand_tangents[len(float_consts):]

    def tangent_inputs(region, prefix, positions):
        return [region.input(f"{prefix}{k}", body.inputs[k].shape, body.inputs[k].dtype)
                for k in positions]

    new_body = Region(f"{body.name}_jvp")
    with new_body.building():
        ins = [new_body.input(f"in{k}", n.shape, n.dtype) for k, n in enumerate(body.inputs)]
        d_consts = tangent_inputs(new_body, "d_const", float_consts)
        d_carries = tangent_inputs(new_body, "d_carry", [n_body + k for k in float_carries])
        outs = _replay(new_body, body, ins)
        wrt = [ins[k] for k in float_consts] + [ins[n_body + k] for k in float_carries]
        new_d_carries = tangents([outs[k] for k in float_carries], wrt, d_consts + d_carries)
        new_body.set_outputs(outs + [new_body.result(t) for t in new_d_carries])
    # values of the enclosing graph a custom rule read while the tangents were built: consts
    captured = _captured([new_body], [ins[:n_body] + d_consts + ins[n_body:] + d_carries],
                         first=True)

    new_cond = Region(f"{cond.name}_jvp")
    with new_cond.building():
        cond_ins = [new_cond.input(f"in{k}", n.shape, n.dtype)
                    for k, n in enumerate(cond.inputs)]
        tangent_inputs(new_cond, "d_carry", [n_body + k for k in float_carries])  # unread
        new_cond.set_outputs(_replay(new_cond, cond, cond_ins))

    node = apply("while_loop", *cond_consts, *captured, *body_consts, *const_tangents,
                 *carries, *carry_tangents, cond_fn=new_cond, body_fn=new_body,
                 cond_consts=n_cond, body_consts=len(captured) + n_body + len(float_consts))
    return node, {k: len(carries) + j for j, k in enumerate(float_carries)}
