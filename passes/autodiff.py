"""Reverse-mode symbolic differentiation: graph to graph.

`gradients(ys, xs)` appends the backward nodes to the graph that holds ys, walking the forward
nodes in reverse topological order and calling each op's gradient rule, which builds graph
ops. Fan-out is handled by summing every contribution before a node's rule runs, which reverse
topological order guarantees. Because the result is an ordinary graph, it can be
differentiated again.
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, a_type, user_location, with_article
from ir.graph import Graph, Node, current_graph
from ir.ops import api as F
from ir.ops import precision
from ir.ops.custom import CLOSURE_ERROR
from ir.ops.operators import OperatorMixin
from ir.ops.registry import (DerivedVJP, VJPContext, get_op, graph_valued, is_weak_scalar,
                              refuse_foreign_array)
from ir.rewrite import clone
from ir.types import TupleType, is_float, is_real_dtype


def _carries_gradient(node, depends) -> bool:
    """Whether a gradient can flow from the values in `depends` into `node`'s result. A path
    does not go through stop_gradient, nor through an integer or boolean value (they carry no
    gradient), nor into a while_loop's results from what only its predicate reads (the
    predicate picks the trip count; so is a select on a predicate, as vmap makes of a loop
    whose condition reads x): a while_loop's carries depend on x only where x reaches them
    through the body, followed to a fixed point."""
    if node in depends or node.op == "stop_gradient" or \
            not (isinstance(node.type, TupleType) or is_float(node.dtype)):
        return False
    if node.op != "while_loop":
        return any(i in depends for i in node.inputs)
    consts_at, n_consts = node.attrs["cond_consts"], node.attrs["body_consts"]
    body = node.attrs["body_fn"]
    operands = node.inputs[consts_at:]
    carried = [i >= n_consts and x in depends for i, x in enumerate(operands)]
    while True:
        seeds = {inp for inp, x, c in zip(body.inputs, operands, carried)
                 if x in depends or c}
        inside = _forward_dependence(body.nodes, seeds)
        grown = [c or (i >= n_consts and body.outputs[i - n_consts] in inside)
                 for i, c in enumerate(carried)]
        if grown == carried:
            return any(carried)
        carried = grown


def _forward_dependence(nodes, seeds) -> set:
    depends = set(seeds)
    for node in nodes:
        if _carries_gradient(node, depends):
            depends.add(node)
    return depends


def _relevant(graph: Graph, ys, xs):
    """(nodes on some path from an x to a y along which a gradient flows (_carries_gradient):
    the only ones whose gradient matters, the nodes that depend on an x). What lies beyond
    such a path's end (a while_loop fed a stop_gradient, a count, or a loop whose condition
    reads x) is not differentiated, as JAX's symbolic zeros."""
    depends = _forward_dependence(graph.nodes, xs)
    relevant = upstream([y for y in ys if y in depends],
                        lambda n: [i for i in n.inputs if i in depends])
    return relevant, depends


def reaches(ys, xs) -> list:
    """Whether a gradient flows from the xs (nodes of one graph) into each y, as
    gradients() differentiates: a y it does not reach has a zero gradient."""
    if not ys or not xs:
        return [False] * len(ys)
    depends = _forward_dependence(ys[0].graph.nodes, set(xs))
    return [y in depends for y in ys]


def reaching(ys, xs) -> list:
    """Whether a gradient flows from each x into some y (one walk of the graph, where
    reaches() makes one per x)."""
    if not ys or not xs:
        return [False] * len(xs)
    relevant, _ = _relevant(ys[0].graph, ys, xs)
    return [x in relevant for x in xs]


def upstream(starts, inputs_of) -> set:
    """The nodes reached from `starts` by following inputs_of(node) (a node's inputs that a
    walk goes on to), the starts included."""
    found, stack = set(), list(starts)
    while stack:
        n = stack.pop()
        if n in found:
            continue
        found.add(n)
        stack.extend(inputs_of(n))
    return found


def _check_closure(node, depends, xs, stand_ins=(), sources=None):
    """A custom_vjp node sends gradients to its argument operands only, through the user's
    rule: a value its function closes over (one its forward nodes read, not an argument)
    gets none. Where such a value depends on an x, that gradient would be lost silently, so
    it is an error (ir/ops/custom.py): the walk goes from the forward value down the nodes
    that depend on an x, stopping at the arguments."""
    args = set(node.inputs[1:1 + node.attrs["args"]])
    stack, seen = [node.inputs[0]], set()
    while stack:
        n = stack.pop()
        if n in seen or n in args or n not in depends:
            continue
        if n in xs and n not in stand_ins and not _computed_from_args(n, args, sources):
            raise GraphcError(CLOSURE_ERROR.format(fn=node.attrs["fn"]), node.locs)
        seen.add(n)
        stack.extend(n.inputs)


def _computed_from_args(x, args, sources) -> bool:
    """Whether the region input x stands for a value of the enclosing graph computed from
    constants and the values the arguments stand for only: a loop builds such a value once,
    outside its body (`c0 * q` of remat(lambda p, q: p + c0 * q) under vmap, q unbatched,
    in a scan), and the function's forward then reads it instead of its argument q. Its
    gradient reaches q through the rule. sources: {region input: the value it stands for}."""
    if not sources or x not in sources:
        return False
    stops = {sources[a] for a in args if a in sources}
    stack, seen = [sources[x]], set()
    while stack:
        n = stack.pop()
        if n in seen or n in stops:
            continue
        if n.op == "input":  # a source that may be differentiated, not an argument's
            return False
        seen.add(n)
        stack.extend(n.inputs)
    return bool(stops)


@graph_valued()  # (its seeds and zeros are values of the graph, in an eager vmap's too)
def gradients(ys, xs, seeds=None, partial=False, stand_ins=(), sources=None,
              none_if_unreached=False) -> list:
    """d(sum_i seeds_i . ys_i)/d xs, as new nodes of the graph holding ys.

    A y without a seed must be a scalar (its seed is 1). An x that ys do not depend on gets a
    zero gradient (JAX's symbolic zeros), or None with none_if_unreached (torch's .grad of a
    parameter the loss does not use); integer and boolean values carry no gradient.

    By default these are total derivatives: where one x is computed from another, the path
    through it counts. With partial=True every x is an independent variable and gradients stop
    at the xs (partial derivatives): a derived gradient rule (`_derived_vjp`) needs that,
    since the autodiff running it follows the paths between its operands itself.
    `stand_ins`: xs computed from the other xs (forward mode's loop results): a custom_vjp
    node's forward reading one reads what it is computed from, which may be its arguments.
    `sources`: {x that is a region's input: the enclosing graph's value it stands for} (a
    loop's invariants), read by the same check. Either of ys and xs may be one value, as
    tf.gradients takes it (seeds then one seed too); the result is a list all the same."""
    if isinstance(ys, Node) and seeds is not None and not isinstance(seeds, (list, tuple)):
        seeds = [seeds]
    # (a single value is not iterated: that would take its rows as the values; nor is an
    # eager Tensor or an array, refused below as no symbolic value rather than by its len())
    ys, xs = ([v] if isinstance(v, (Node, OperatorMixin, np.ndarray)) else list(v)
              for v in (ys, xs))
    if isinstance(seeds, (list, tuple)) and len(seeds) != len(ys):
        # (zip would drop the extra seeds, or the extra ys' gradients, silently)
        raise GraphcError(f"gradients(): {len(seeds)} seeds for {len(ys)} ys; give one seed "
                          f"per y, as tf.gradients' grad_ys", (user_location(),))
    for v in ys + xs:
        if not isinstance(v, Node):
            raise GraphcError(f"gradients() needs symbolic values, got {type(v).__name__}",
                              (user_location(),))
    ys = _into_region_being_built(ys, xs)
    graph = ys[0].graph
    for x in xs:
        if not is_float(x.dtype):
            raise GraphcError(f"cannot differentiate with respect to {with_article(x.dtype)} value "
                              f"(only floating-point values have gradients)", (user_location(),))
    for y in ys:
        if y.graph is not graph:
            raise GraphcError("gradients() needs every output in one graph; these come from "
                              "different graphs (a loop body's or vmapped function's values "
                              "and the enclosing function's)", (user_location(),))
    inner = _inside_ys_graph(graph, xs)
    if inner:
        # ys do not read these xs: a region being built inside ys's graph holds them, and
        # ys were built outside it, reading none of its values (jacfwd of jacrev of a
        # function whose result ignores the argument): their gradients are zeros
        rest = [x for i, x in enumerate(xs) if i not in inner]
        found = iter(gradients(ys, rest, seeds, partial, stand_ins, sources,
                               none_if_unreached) if rest else ())
        return [next(found) if i not in inner else None if none_if_unreached
                else F.zeros(x.shape, x.dtype) for i, x in enumerate(xs)]
    if any(x.graph is not graph for x in xs):
        return _through_captures(graph, ys, xs, seeds, partial)
    if seeds is None:
        seeds = [None] * len(ys)
    relevant, depends = _relevant(graph, ys, xs)
    x_set = set(xs)
    stop = x_set if partial else ()
    forward = list(graph.nodes)
    grads: dict = {}
    build = _graph_for_seeds(graph, seeds)
    with build.building():
        for k, (y, seed) in enumerate(zip(ys, seeds)):
            if seed is None:
                if y.size != 1:
                    raise GraphcError(f"the gradient of a non-scalar output (shape {y.shape}) "
                                      "needs a seed; use vjp, or reduce it to a scalar first",
                                      (user_location(),))
                seed = F.ones_like(y)
            elif is_weak_scalar(seed) and not isinstance(seed, (bool, np.bool_)):
                # a Python or numpy number is weak, as everywhere in graphc: it takes y's
                # dtype (lifted later by whichever rule met it first, it was float32 or int64
                # and refused beside a float64 or half y); a bool is no gradient
                seed = F.full(y.shape, seed, y.dtype)
            elif not isinstance(seed, (Node, OperatorMixin, np.ndarray)) \
                    and not isinstance(y.type, TupleType):
                # a list was refused by the first rule, naming its op ("mul: cannot use a
                # list as a tensor operand"); torch.autograd.grad's grad_outputs are tensors
                # too ("gradients can be either Tensors or None, but got list")
                refuse_foreign_array(seed, f"gradients() seed {k}")
                raise GraphcError(f"gradients(): seed {k} is {a_type(seed)}; give a "
                                  "numpy array or graphc value of its y's shape, or a number",
                                  (user_location(),))
            elif isinstance(seed, (Node, OperatorMixin, np.ndarray)) \
                    and not isinstance(y.type, TupleType) and tuple(seed.shape) != tuple(y.shape):
                # (the first rule would broadcast it, or fail deep inside, naming its own op;
                # OperatorMixin: an eager Tensor, as torch.autograd.grad's grad_outputs)
                raise GraphcError(f"gradients(): seed {k} has shape {tuple(seed.shape)} but "
                                  f"its y has shape {tuple(y.shape)}; give a seed of its "
                                  f"y's shape", (user_location(),))
            if isinstance(seed, (Node, OperatorMixin, np.ndarray)) \
                    and not isinstance(y.type, TupleType) and seed.dtype != y.dtype:
                # as torch.autograd.grad's grad_outputs, a seed of another dtype is cast to
                # its y's (a float64 seed of a float32 y, an int or bool one: True is 1.0);
                # left as it was, the first rule met it and failed on mixed dtypes naming
                # its own op. A complex seed (torch refuses it) is one line naming the seed.
                # An array is cast by numpy: int8 or uint16, which no graphc value holds, is
                # cast too, as torch and Tensor.backward() cast it (is_real_dtype: one rule)
                if not is_real_dtype(seed.dtype):
                    raise GraphcError(f"gradients(): seed {k} has dtype {seed.dtype}, which "
                                      f"graphc does not support; give a seed of its y's dtype "
                                      f"({y.dtype})", (user_location(),))
                seed = seed.astype(y.dtype) if isinstance(seed, np.ndarray) \
                    else F.cast(seed, y.dtype)
            _accumulate(grads, y, seed)
        for node in reversed(forward):
            g = grads.get(node)
            if g is None or node not in relevant or not node.inputs:
                continue
            if partial and node in stop:
                continue
            if isinstance(node.type, TupleType):  # a control-flow node: one per result
                g = [g.get(k) for k in range(len(node.type.elements))]
            elif not is_float(node.dtype):
                continue
            if node.op == "custom_vjp":
                _check_closure(node, depends, x_set, stand_ins, sources)
            op = get_op(node.op)
            if op.vjp is None:
                if node.op == "stop_gradient":
                    continue
                raise GraphcError(NO_GRADIENT.get(node.op, f"op {node.op!r} has no gradient "
                                                           "rule"), node.locs)
            needs = tuple(i in relevant and _differentiable(i) for i in node.inputs)
            ctx = VJPContext(node.inputs, node, node.attrs, needs)
            # the backward pass runs without autocast: each cotangent keeps its primal's dtype
            with build.locations(node.locs, node.scope), precision.suspended():
                results = _derived_vjp(op.vjp.reference, ctx, g) \
                    if isinstance(op.vjp, DerivedVJP) else op.vjp(ctx, g)
                for inp, need, r in zip(node.inputs, needs, results):
                    if need and r is not None:
                        _accumulate(grads, inp, r)
        return [grads[x] if x in grads else None if none_if_unreached else F.zeros_like(x)
                for x in xs]


def _enclosing(graph) -> list:
    """The graphs enclosing a region, innermost first (empty for a top-level graph)."""
    chain, g = [], getattr(graph, "parent", None)
    while g is not None:
        chain.append(g)
        g = getattr(g, "parent", None)
    return chain


def _inside_ys_graph(graph, xs) -> set:
    """The positions of the xs that are values of a region being built inside `graph` (the
    region being built now, or one enclosing it, nested in graph)."""
    region = current_graph()
    building = [region] + _enclosing(region) if region is not None else []
    return {i for i, x in enumerate(xs) if x.graph is not graph and x.graph in building
            and graph in _enclosing(x.graph)}


def _into_region_being_built(ys, xs) -> list:
    """ys, those of a graph enclosing the region being built captured into it, when xs are
    values of that region: an output that reads only outer values is built outside (jvp of a
    function whose result does not read its argument, inside vmap: jacfwd's columns), and it
    stands in the region as the input capturing it, so that the gradient of a result that
    does not depend on an x is zero rather than refused."""
    region = current_graph()
    capture = getattr(region, "capture", None)
    if capture is None or not any(isinstance(x, Node) and x.graph is region for x in xs):
        return ys
    outer = _enclosing(region)
    if not any(isinstance(y, Node) and y.graph in outer for y in ys):
        return ys
    with region.building():
        return [capture(y) if isinstance(y, Node) and y.graph in outer else y for y in ys]


def _graph_for_seeds(graph, seeds):
    """The graph the backward nodes go into: ys's, or a region inside it holding a seed (the
    pullback of a vjp taken outside vmapped over cotangents, jacrev's way), which reads
    ys's values through its captured inputs."""
    build = graph
    for seed in seeds:
        if not isinstance(seed, Node) or seed.graph is build:
            continue
        enclosing = getattr(seed.graph, "parent", None)
        while enclosing is not None and enclosing is not build:
            enclosing = getattr(enclosing, "parent", None)
        if enclosing is build:  # the seed's graph lies inside: build there
            build = seed.graph
    return build


def _links(graph):
    """{a region's input: the value of an enclosing graph it stands for, or is a part of},
    as the region itself answers it (ir/region.py's outer_links: vmap's region adds its
    unbatched arguments, which a copy of the map here missed, so a gradient with respect to
    an outer value passed with in_axes None was zeros; part_links: its batched arguments,
    one example of the value mapped over, were zeros too); {} for a graph that is no region."""
    if getattr(graph, "outer_links", None) is None:
        return {}
    links = {**graph.outer_links(), **graph.part_links()}
    return {inner: outer for inner, outer in links.items() if isinstance(outer, Node)}


def _stand_in(graph, node, outer):
    """What the region input `node` (of _links) is, given `outer`, a value of the graph being
    built standing for the enclosing value it links to: that value, or the part of it the
    input is (graph.part: a vmapped function's example, whose gradient is its row)."""
    return graph.part(node, outer) if node in graph.part_links() else outer


def _through_captures(graph, ys, xs, seeds, partial):
    """gradients() where some xs are values of a graph enclosing ys's (gradients taken inside a
    loop body, a branch or a vmapped function with respect to a value outside it, as
    tf.gradients). ys read such a value only through the region's inputs standing for it or
    for values computed from it outside the region (an op whose operands are all outer is
    built outside, once). So: differentiate ys with respect to those inputs, then carry each
    input's gradient back to the xs through a copy, built in the region, of the outer
    computation between the xs and the value it stands for. Without this there was no path
    from ys to the outer node and the gradient was zero."""
    outer_xs = [x for x in xs if x.graph is not graph]
    chain = _enclosing(graph)  # innermost first
    if any(x.graph not in chain for x in outer_xs) or getattr(graph, "capture", None) is None:
        raise GraphcError("gradients() with respect to a value of another graph: the outputs "
                          "cannot read it (differentiate inside the function that computes "
                          "them)", (user_location(),))
    links = {g: _links(g) for g in chain + [graph]}
    # which values of the enclosing graphs depend on an x, outermost graph first (a region's
    # input depends on what it stands for, a node on its operands)
    depends = set(outer_xs)
    for g in reversed(chain):
        for n in g.nodes:
            if n not in depends and (any(i in depends for i in n.inputs)
                                     or links[g].get(n) in depends):
                depends.add(n)
    # (only float values carry a gradient: an integer one computed from an x, e.g. labels
    # argmax(xs @ w) passed batched beside xs, is a constant of the region, as it is
    # outside; asked for as a carrier, gradients() refused "a int64 value")
    carriers = [n for n, outer in links[graph].items()
                if outer in depends and is_float(n.dtype)]
    inner_xs = [x for x in xs if x.graph is graph]
    first = gradients(ys, inner_xs + carriers, seeds, partial)
    by_inner = dict(zip(inner_xs, first))
    # the outer computation from the xs to each carrier's value, rebuilt in the region: an x
    # that depends on no other x is a leaf (captured), what depends on no x is captured too
    roots = {x for x in outer_xs if not any(i in depends for i in x.inputs)
             and links[x.graph].get(x) not in depends}
    needed, reached, stack = set(), set(), [links[graph][c] for c in carriers]
    while stack:
        n = stack.pop()
        if n in roots:
            reached.add(n)
        if n in needed or n in roots:
            continue
        needed.add(n)
        stack.extend(i for i in n.inputs if i in depends)
        if links[n.graph].get(n) in depends:
            stack.append(links[n.graph][n])
    copies = {}
    with graph.building():
        for x in reached:
            copies[x] = graph.capture(x)
        for g in reversed(chain):
            for n in g.nodes:
                if n not in needed:
                    continue
                if n in links[g]:
                    copies[n] = _stand_in(g, n, copies[links[g][n]])
                    continue
                if n.op == "input":
                    continue
                operands = [copies[i] if i in copies else graph.capture(i) for i in n.inputs]
                copies[n] = graph.add_node(n.op, operands, n.attrs, n.type, n.locs, n.scope)
        # (an x captured directly is both a carrier and a root: its copy is the carrier)
        rebuilt = [_stand_in(graph, c, copies[links[graph][c]]) for c in carriers]
        wrt = [copies[x] for x in outer_xs if x in copies]
        second = iter(gradients(rebuilt, wrt, first[len(inner_xs):], partial) if wrt else [])
        # an x that no carrier's value depends on: ys do not read it
        by_outer = {x: next(second) if x in copies else F.zeros_like(x) for x in outer_xs}
    return [by_inner[x] if x.graph is graph else by_outer[x] for x in xs]


def _derived_vjp(reference, ctx, g):
    """A composite primitive's gradient (ir.ops.registry.DerivedVJP): its reference definition,
    built from simpler primitives on the operands, differentiated with respect to each operand
    as an independent variable."""
    out = reference(*ctx.inputs, **ctx.attrs)
    wrt = [x for x, need in zip(ctx.inputs, ctx.needs) if need]
    grads = iter(gradients([out], wrt, [g], partial=True) if wrt else [])
    return [next(grads) if need else None for need in ctx.needs]


def _differentiable(node) -> bool:
    if isinstance(node.type, TupleType):
        return any(is_float(t.dtype) for t in node.type.elements)
    return is_float(node.dtype)


def _accumulate(grads, node, g):
    if isinstance(node.type, TupleType):  # g: (index, cotangent) from a tuple_get
        index, g = g
        parts = grads.setdefault(node, {})
        parts[index] = g if parts.get(index) is None else parts[index] + g
        return
    if isinstance(g, Node) and g.shape != node.shape:
        raise GraphcError(f"internal: gradient of shape {g.shape} for a value of shape "
                          f"{node.shape} from op {node.op!r}", node.locs)
    prev = grads.get(node)
    grads[node] = g if prev is None else prev + g


def grad_graph(graph: Graph, wrt=None, output: int = 0, name: str | None = None,
               sum_output: bool = False, what: str | None = None) -> Graph:
    """A new graph whose outputs are the original outputs followed by the gradients of
    outputs[output] (a scalar; with sum_output, the sum of its elements) with respect to the
    inputs named in `wrt` (default: every floating-point input). `what`: who differentiates
    which graph, for the message of a graph without outputs (default "grad_graph: NAME";
    `graphc dump --grad` names its target)."""
    count = len(graph.outputs)
    if not count:
        raise GraphcError(f"{what or 'grad_graph: ' + graph.name} has no output to differentiate")
    if not -count <= output < count:  # (an IndexError from below)
        raise GraphcError(f"grad_graph: output {output} is out of range ({graph.name} has "
                          f"{count} output{'s' if count > 1 else ''})")
    new = clone(graph, name or f"{graph.name}_grad")
    if wrt is None:
        targets = [n for n in new.inputs if is_float(n.dtype)]
    else:
        targets = [new.input_by_name(w) for w in wrt]
    with new.building():
        y = new.outputs[output]
        if sum_output and y.size != 1:
            y = F.sum(y)
        grads = gradients([y], targets)
    new.set_outputs(new.outputs + grads)
    new.output_tree = None
    return new


from .control_flow_ad import NO_GRADIENT  # noqa: E402  (and registers the regions' rules)
