"""Gradient rules of the control-flow ops (ir/ops/control_flow.py), as JAX differentiates
lax.scan and lax.cond: the backward pass of a region node is a region node of the backward
regions, so it is ordinary IR that differentiates again (gradients of gradients, and jvp,
which graphc builds from two reverse passes).

    scan   => scan with save_carries=True (the carry each step started from, stacked), then
              a reverse scan whose body replays one forward step from its saved carry and
              differentiates it: carries (accumulated const cotangents, carry cotangent),
              per-step outputs the xs' cotangents
    cond   => cond on the same predicate of the two branches' backward functions
    while_loop => none: an error saying so (NO_GRADIENT), as its trip count is only known
                  when it runs (forward mode carries tangents through it instead:
                  passes/forward_mode.py)
    tuple_get  => the cotangent of one result of the node it reads
"""
from __future__ import annotations

from ir.ops import api as F
from ir.ops.registry import REGISTRY, apply
from ir.region import Region
from ir.types import is_float


def _replay(region, source, values) -> list:
    """Rebuild `source`'s nodes inside `region` on `values` (one per source input); -> the
    nodes standing for its outputs."""
    env = dict(zip(source.inputs, values))
    for n in source.nodes:
        if n.op == "input":
            continue
        env[n] = region.add_node(n.op, [env[i] for i in n.inputs], dict(n.attrs), n.type,
                                 n.locs, n.scope)
    return [env[o] for o in source.outputs]


def _vjp_region(name, source, seeded, wrt_positions, outer=None):
    """A region that replays `source` on inputs of its input types and differentiates it,
    with one seed input per `seeded` output position, with respect to the inputs at
    wrt_positions. -> (region, its inputs standing for the source's, the seed inputs, the
    cotangents); the caller adds inputs of its own and sets the signature and outputs.
    `outer`: {input position: the enclosing graph's value that input is on every pass}
    (a loop's invariants, a branch's operands), for gradients()'s closure check."""
    from .autodiff import gradients
    region = Region(name)
    with region.building():
        ins = [region.input(f"in{k}", n.shape, n.dtype) for k, n in enumerate(source.inputs)]
        seeds = [region.input(f"ct{k}", source.outputs[k].shape, source.outputs[k].dtype)
                 for k in seeded]
        outs = _replay(region, source, ins)
        wrt = [ins[k] for k in wrt_positions]
        sources = {ins[k]: value for k, value in (outer or {}).items()}
        grads = gradients([outs[k] for k in seeded], wrt, seeds, sources=sources) \
            if seeded and wrt else [F.zeros_like(x) for x in wrt]
    return region, ins, seeds, grads


def _captured(regions, own_inputs, first=False):
    """The values of an enclosing graph the backward regions read while they were built (a
    custom_vjp rule's Python code closing over a traced value: its bwd runs here, outside the
    forward region that captured the value for its fwd), as extra operands of the backward
    node. Each region gets an input for each of them, after its own inputs (`first`: before
    them; a branch that does not read one takes it unused, so that both branches take the
    same operands).
    -> the outer values."""
    outer = list(dict.fromkeys(v for r in regions for v in r.captured))
    for region, own in zip(regions, own_inputs):
        with region.building():
            for v in outer:
                if v not in region.captured:
                    region.captured[v] = region.input(f"outer{len(region.captured)}",
                                                      v.shape, v.dtype)
        extra = [region.captured[v] for v in outer]
        region.set_signature(extra + list(own) if first else list(own) + extra)
    return outer


def _zeros_for(node_type):
    return F.zeros(node_type.shape, node_type.dtype)


# ---- scan ---------------------------------------------------------------------------------
def _scan_vjp(ctx, g):
    a = ctx.attrs
    body, nc, nk, length = a["body"], a["consts"], a["carries"], a["length"]
    saves = bool(a.get("save_carries"))
    ops = list(ctx.inputs)
    consts, init, xs = ops[:nc], ops[nc:nc + nk], ops[nc + nk:]
    n_y = len(body.outputs) - nk
    elements = ctx.out.type.elements
    # the forward again, saving its carries (passes/cse.py merges the two forward scans)
    res = ctx.out if saves else apply("scan", *ops, **{**a, "save_carries": True})
    saved = [apply("tuple_get", res, index=nk + n_y + k) for k in range(nk)]

    float_carries = [k for k in range(nk) if is_float(init[k].dtype)]
    float_ys = [j for j in range(n_y) if is_float(body.outputs[nk + j].dtype)]
    needed_consts = [k for k in range(nc) if ctx.needs[k]]
    needed_xs = [k for k in range(len(xs)) if ctx.needs[nc + nk + k]]
    wrt = needed_consts + [nc + k for k in float_carries] + [nc + nk + k for k in needed_xs]
    seeded = float_carries + [nk + j for j in float_ys]
    region, ins, seeds, grads = _vjp_region(f"{body.name}_vjp", body, seeded, wrt,
                                            outer=dict(enumerate(consts)))
    n_acc, n_h = len(needed_consts), len(float_carries)
    with region.building():
        accs = [region.input(f"acc{k}", consts[k].shape, consts[k].dtype)
                for k in needed_consts]
        # with save_carries, the node's saved carries have cotangents of their own
        saved_cts = [region.input(f"saved_ct{k}", init[k].shape, init[k].dtype)
                     for k in float_carries] if saves else []
        new_accs = [acc + gc for acc, gc in zip(accs, grads[:n_acc])]
        new_g_h = grads[n_acc:n_acc + n_h]
        if saves:
            new_g_h = [gh + s for gh, s in zip(new_g_h, saved_cts)]
        region.set_outputs(new_accs + new_g_h + grads[n_acc + n_h:])
    carry_seeds, y_seeds = seeds[:n_h], seeds[n_h:]
    # consts | carries: accumulated const cotangents, carry cotangent | per step: the saved
    # carry, the x slices, the y cotangents (and the saved carries' cotangents)
    # values the backward body read from outside are consts, first (ir/region.py's order)
    captured = _captured([region], [ins[:nc] + accs + carry_seeds + ins[nc:nc + nk]
                                    + ins[nc + nk:] + y_seeds + saved_cts], first=True)
    y_cts = [g[nk + j] if g[nk + j] is not None else _zeros_for(elements[nk + j])
             for j in float_ys]
    saved_ct_values = [g[nk + n_y + k] if g[nk + n_y + k] is not None
                       else _zeros_for(elements[nk + n_y + k]) for k in float_carries] \
        if saves else []
    carry_cts = [g[k] if g[k] is not None else F.zeros_like(init[k]) for k in float_carries]
    bwd = apply("scan", *captured, *consts, *[F.zeros_like(consts[k]) for k in needed_consts],
                *carry_cts, *saved, *xs, *y_cts, *saved_ct_values, body=region,
                consts=len(captured) + nc,
                carries=n_acc + n_h, length=length, reverse=not a.get("reverse", False))
    out = [None] * len(ops)
    for j, k in enumerate(wrt):
        out[k] = apply("tuple_get", bwd, index=j)
    return [r if need else None for r, need in zip(out, ctx.needs)]


# ---- cond ---------------------------------------------------------------------------------
def _cond_vjp(ctx, g):
    false_branch, true_branch = ctx.attrs["branches"]
    ops = list(ctx.inputs[1:])
    outputs = true_branch.outputs
    seeded = [k for k, o in enumerate(outputs) if is_float(o.dtype)]
    wrt = [k for k in range(len(ops)) if ctx.needs[1 + k]]
    if not wrt:
        return [None] * len(ctx.inputs)
    branches, own = [], []
    for branch in (false_branch, true_branch):
        region, ins, seeds, grads = _vjp_region(f"{branch.name}_vjp", branch, seeded, wrt,
                                                outer=dict(enumerate(ops)))
        with region.building():
            region.set_outputs([region.result(x) for x in grads])
        branches.append(region)
        own.append(ins + seeds)
    captured = _captured(branches, own)
    seeds = [g[k] if g[k] is not None else _zeros_for(outputs[k].type) for k in seeded]
    node = apply("cond", ctx.inputs[0], *ops, *seeds, *captured, branches=tuple(branches))
    out = [None] * len(ctx.inputs)
    for j, k in enumerate(wrt):
        out[1 + k] = apply("tuple_get", node, index=j)
    return out


# ops without a gradient rule, and why (passes/autodiff.py reports it)
NO_GRADIENT = {
    "while_loop": "while_loop has no reverse-mode gradient: its trip count is only known when "
                  "it runs; use fori_loop with Python-int bounds, or scan, or forward mode "
                  "(jvp, jacfwd) (a bound passed as an argument of the differentiated "
                  "function is traced, not a Python int: close over it, e.g. with "
                  "functools.partial)",
}


def _tuple_get_vjp(ctx, g):
    return [(ctx.attrs["index"], g)]  # passes.autodiff gathers them per result


REGISTRY["scan"].vjp = _scan_vjp
REGISTRY["cond"].vjp = _cond_vjp
REGISTRY["tuple_get"].vjp = _tuple_get_vjp
