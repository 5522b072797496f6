"""Running control-flow nodes (ir/ops/control_flow.py) in a compiled plan: each region is
compiled once into a plan of its own (runtime.build.build_plan: its passes, its buffers
planned once) and that plan runs once per iteration. A scan's stacked results are written
step by step into arrays allocated once per call.

The runner is what a plan calls in place of the op's library implementation
(runtime/op_lowering.py's `runner`); the region's plan is built the first time it runs, not
before: a scan of zero steps or a while_loop whose condition is false at once never builds
its body's, as eager never runs it (a body holding zeros((-2, 2)), which building its plan
refuses, is no error then either).
"""
from __future__ import annotations

import numpy as np

from ir.types import TupleType, has_negative_size, negative_size_error


def _not_aliasing(results, operands) -> tuple:
    """The results, each copied where it shares memory with an operand. A region's plan
    returns its own inputs (or views of them) as they are: a branch `lambda a: a`, a carry
    passed through, a scan of zero steps or a while_loop that never runs. The enclosing
    plan takes a runner's results for fresh arrays, so such a result would still be the
    operand's pool buffer, which the plan hands to another value once the operand dies
    (and an output of the plan would be overwritten by its next call). Copied here once per
    call, not by the region's plan once per iteration (alias_inputs below)."""
    arrays = [o for o in operands if isinstance(o, np.ndarray)]
    return tuple(r.copy() if isinstance(r, np.ndarray)
                 and any(np.may_share_memory(r, o) for o in arrays) else r
                 for r in results)


class _RegionPlans:
    def __init__(self, node, keys, options=None):
        self.regions = {key: node.attrs[key] for key in keys}
        self.plans = {}
        # a body's plan is built as the enclosing plan was (numba kernels or not, threads,
        # fast math); its own inputs are never donated. It returns an input (a carry passed
        # through, a swapped one, a const or slice of xs as the new carry) uncopied: the
        # runners below never write into the arrays they pass a plan (a carry is replaced,
        # never updated; a scan's ys and saved carries are copies), and whatever is left
        # sharing an operand at the end is copied once by _not_aliasing. Two outputs in one
        # memory, and plan-owned buffers (pool, constants), are still copied by the plan, so
        # results sharing memory with each other share an operand's and are copied too.
        self.plan_options = dict(alias_inputs=True) if options is None else dict(
            jit=options.jit, parallel=options.parallel, fast_math=options.fast_math,
            alias_inputs=True)

    def plan(self, key, index=None):
        region = self.regions[key] if index is None else self.regions[key][index]
        plan = self.plans.get((key, index))
        if plan is None:
            _refuse_negative_sizes(region)
            from .build import build_plan  # runtime.build imports the plan, which imports us
            plan = self.plans[(key, index)] = build_plan(region, name=region.name,
                                                          **self.plan_options)
        return plan


def _refuse_negative_sizes(region):
    """A negative size made in a region (a cond's branch, a loop's body: traced unrefused,
    as such a body may never run) refused now that it runs, as eagerly, naming its op and the
    user's line: the passes computed on it (sum(broadcast_to(v, (-2,))) became -2 * v, a
    value where eager refuses) or refused it from inside a pass, at the plan's own line."""
    for node in region.nodes:
        types = node.type.elements if isinstance(node.type, TupleType) else (node.type,)
        if any(has_negative_size(getattr(t, "shape", ())) for t in types):
            raise negative_size_error(node.op, node.locs)


class ScanRunner(_RegionPlans):
    def __init__(self, node, options=None):
        super().__init__(node, ("body",), options)
        self.y_types = [o.type for o in node.attrs["body"].outputs[node.attrs["carries"]:]]

    def __call__(self, *operands, body, consts, carries, length, reverse=False,
                 save_carries=False):
        plan = self.plan("body") if length else None  # (zero steps: see the docstring)
        const_values = list(operands[:consts])
        carry = list(operands[consts:consts + carries])
        xs = operands[consts + carries:]
        ys = [np.empty((length,) + t.shape, t.dtype) for t in self.y_types]
        saved = [np.empty((length,) + c.shape, c.dtype) for c in carry] if save_carries else []
        for t in (range(length - 1, -1, -1) if reverse else range(length)):
            for s, c in zip(saved, carry):
                s[t] = c
            outs = plan(*const_values, *carry, *[x[t] for x in xs])
            carry = outs[:carries]
            for y, o in zip(ys, outs[carries:]):
                y[t] = o
        return _not_aliasing(tuple(carry), operands) + tuple(ys) + tuple(saved)


class CondRunner(_RegionPlans):
    def __init__(self, node, options=None):
        super().__init__(node, ("branches",), options)

    def __call__(self, pred, *operands, branches):
        return _not_aliasing(self.plan("branches", 1 if pred else 0)(*operands), operands)


class WhileRunner(_RegionPlans):
    def __init__(self, node, options=None):
        super().__init__(node, ("cond_fn", "body_fn"), options)

    def __call__(self, *operands, cond_fn, body_fn, cond_consts, body_consts):
        keep_going, step = self.plan("cond_fn"), None
        cond_values = list(operands[:cond_consts])
        body_values = list(operands[cond_consts:cond_consts + body_consts])
        carry = list(operands[cond_consts + body_consts:])
        while bool(keep_going(*cond_values, *carry)[0]):
            if step is None:  # built once the body runs (see the docstring)
                step = self.plan("body_fn")
            carry = step(*body_values, *carry)
        return _not_aliasing(carry, operands)
