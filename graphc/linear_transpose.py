"""jax.linear_transpose: the transpose (adjoint) of a linear function, as a function.

    f_t = gc.linear_transpose(f, *primals)   # primals: arrays or specs, for shapes only
    f_t(ct)                                  # (A.T @ ct,) for f = lambda x: A @ x

The transpose of a linear map is its vjp, the same at every point. So fn is traced on the
primals' shapes, its vjp is added to that graph (cotangent inputs, gradient nodes, as
gc.vjp's split does, graphc/split_vjp.py) and the whole is split as gc.linearize splits
jvp's graph: the part no cotangent reaches computes the residuals (constants, a model's
weights), the cotangent part is the transpose. Linearity is read off fn's forward graph, as
JAX finds it (a primitive applied to a value computed from the arguments must have a
transpose rule): every node that depends on the arguments must be one of the ops below,
linear in its operands that depend on them (x * w, not x * x; x / w, not w / x; a scan or
cond whose regions are linear in the values they take from the arguments, the predicate
not one of them), and an input-independent value it adds to them must be 0 (x + 1.0 is
affine: JAX transposes its linear part without a word, graphc refuses it). The
derivative graph could not show it: it proves the Jacobian constant, which floor, sign,
stop_gradient and a custom rule's made-up derivative pass too. fn itself never runs: the
residuals are computed once, here (inside a traced function: in its graph, so a compiled
call reads a layer's weights as they are then); each f_t call runs the cotangent plan
only, or, on traced cotangents (vmap(f_t), compile, grad), adds the cotangent part to the
graph being traced.
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.graph import Node, current_graph
from ir.ops.control_flow import REGION_OPS
from ir.ops.custom import _custom_call
from ir.ops.registry import SymbolicValue, graph_param
from ir.types import as_dtype, is_float
from passes.manager import optimize
from runtime.eager import Tensor, collect_buffer_updates

from .linearize import _copy_nodes, _inline, _split, _traced
from .nn import _AUTO_KEY, _GENERATOR
from .split_vjp import _with_gradients
from .tracing import (Spec, arg_names, called, function_name, leaves_and_structure, to_spec, trace,
                      unflatten)
from .transforms import _cotangent_leaves, _is_python_number, one_cotangent

__all__ = ["linear_transpose"]


def linear_transpose(fn, *primals):
    """The transpose of linear `fn` at the primals' shapes and dtypes, as JAX's:
    `f_t(cotangent)`, the cotangent a pytree like fn's result (None: zeros), returns a tuple
    of pytrees like the primals, fn's adjoint applied to it. The primals give only shapes
    and dtypes (arrays, `gc.spec`s, or anything with `.shape` and `.dtype`, as
    jax.ShapeDtypeStruct); a function that is not linear in them is refused."""
    from runtime.build import build_plan  # (see graphc/linearize.py)
    name = function_name(fn).strip("<>")
    who = f"linear_transpose of {name}"
    p_leaves, p_structure = leaves_and_structure(list(primals))
    specs = [_spec(x, who, k) for k, x in enumerate(p_leaves)]
    count = len(specs)

    def shapes_only(*args):  # a layer's buffer update (BatchNorm training) is not part of
        with collect_buffer_updates():  # the linear map: dropped, as eval_shape drops it
            return called(who, fn, args)
    try:
        graph = trace(shapes_only, *unflatten(p_structure, specs),
                      names=arg_names(fn, len(primals)), name=f"linear_transpose_{name}")
    except GraphcError as exc:
        if current_graph() is None or "different graphs" not in exc.message:
            raise
        # fn reads a value of the function being traced (compile, vmap), which this
        # separate trace of fn cannot take (JAX's takes it): one line, not the op's
        raise GraphcError(f"{who}: {name} reads a value of the function being traced, "
                          "which linear_transpose cannot close over; use gc.vjp(fn, x)[1] "
                          "there (fn's vjp at any x is its transpose)",
                          (user_location(),)) from None
    outs = graph.outputs
    if not all(is_float(d) for d in [s.dtype for s in specs] + [o.dtype for o in outs]):
        in_dtypes = [np.dtype(s.dtype).name for s in specs]
        out_dtypes = [np.dtype(o.dtype).name for o in outs]
        # (JAX's message; JAX transposes integer -> integer functions too, graphc's
        # reverse mode has no integer cotangents)
        raise GraphcError(f"{who}: linear_transpose only supports float -> float functions, "
                          f"but got {in_dtypes} -> {out_dtypes}", (user_location(),))
    # (fold: a gradient's pow(x, 2 - 1) is pow(x, 1.0); dce: a gradient's dead forward)
    _check_forward(optimize(graph, "fold,dce"), count, who, name)
    joint, names, grads = _with_gradients(graph, [(k, k) for k in range(len(outs))],
                                          list(range(count)))
    joint.set_outputs(grads)
    joint.output_tree = None
    joint = optimize(joint, "default")
    known, cotangent_part = _split(joint, set(names), [], joint.outputs)
    known = optimize(known, "dce")
    residuals = _residuals(known, specs, build_plan)
    cotangent_plan = build_plan(cotangent_part)
    out_tree = graph.output_tree
    out_specs = unflatten(out_tree, [Spec(tuple(o.shape), o.dtype) for o in outs])
    cotangent_of = {n: k for k, n in enumerate(names)}
    ct_inputs = cotangent_part.inputs[len(residuals):]
    # the graphs of the values it reads, where it was made inside a trace (compile, vmap)
    in_graphs = {id(r.graph): r.graph for r in residuals if isinstance(r, SymbolicValue)}

    @one_cotangent(who, "f_t")
    def transposed(cotangent):
        given = _cotangent_leaves(out_specs, cotangent, who)
        by_input = [given[cotangent_of[node.attrs["name"]]] for node in ct_inputs]
        graph = current_graph()  # vmap(f_t), compile, grad: traced cotangents
        if in_graphs and not all(_reaches(graph, g) for g in in_graphs.values()):
            # called eagerly or in another trace (f_t kept from a compiled call and called
            # in another compiled function): the values it reads are not there
            raise GraphcError(f"{who} was made inside a traced function, whose values it "
                              "reads, and is called outside it; make it where it is called",
                              (user_location(),))
        if graph is not None:
            grads = _inline(graph, cotangent_part, residuals, [
                _traced(graph, np.zeros(node.shape, node.dtype) if c is None else c,
                        node.dtype) for node, c in zip(ct_inputs, by_input)])
        else:
            grads = cotangent_plan(*residuals, *[
                np.zeros(node.shape, node.dtype) if c is None else
                np.asarray(c.data if isinstance(c, Tensor) else c, node.dtype)
                for node, c in zip(ct_inputs, by_input)])
        return tuple(unflatten(p_structure, list(grads)))

    transposed.plan = cotangent_plan  # what each call runs (`plan.graph` prints it)
    transposed.__name__ = f"linear_transpose_{name}"
    return transposed


def _reaches(graph, owner) -> bool:
    """Whether a value of `owner` can be read in `graph`, being traced (None: eagerly): it is
    owner, or a region (a loop body, a branch) inside owner, which captures it."""
    while graph is not None:
        if graph is owner:
            return True
        graph = getattr(graph, "parent", None)
    return False


def _spec(x, who, k) -> Spec:
    """Primal leaf `x`'s shape and dtype: an array, a traced value, a number (weakly typed,
    as linearize's), a Spec, or anything with .shape and .dtype (jax.ShapeDtypeStruct)."""
    if _is_python_number(x):
        return Spec((), to_spec(x).dtype, weak=True)
    if isinstance(x, (Spec, Node, Tensor, np.ndarray, np.generic)):
        return to_spec(x)
    try:
        return Spec(tuple(int(d) for d in x.shape), as_dtype(x.dtype))
    except Exception:
        raise GraphcError(f"{who}: primal leaf {k} is {a_type(x)}; pass an array "
                          "or a shape and dtype (gc.spec(shape, dtype))",
                          (user_location(),)) from None


def _residuals(known, specs, build_plan) -> list:
    """The values the transpose reads (a layer's weights, a dropout mask, a where's mask),
    from `known`, the residual part of fn's vjp. They do not depend on the arguments (fn is
    linear); where `known` still takes them (a backward scan's operands its body ignores),
    zeros stand for them. Inside a traced function they become nodes of its graph, a
    Parameter its input there: a compiled call reads the weights as they are then."""
    graph = current_graph()
    if graph is None:
        state = _GENERATOR[0].bit_generator.state
        try:
            return list(build_plan(known)(*[np.zeros(s.shape, s.dtype) for s in specs]))
        finally:  # a dropout mask's key is the next draw's: the user's stream does not move
            if any(n.attrs["name"] == _AUTO_KEY.name for n in known.inputs):
                _GENERATOR[0].bit_generator.state = state
    env = {}
    with graph.building():
        for k, node in enumerate(known.inputs):
            bound = known.param_values.get(node.attrs["name"])
            env[node] = graph.constant(np.zeros(specs[k].shape, specs[k].dtype)) \
                if bound is None else graph_param(graph, bound, node.attrs.get("kind", "param"))
        _copy_nodes(graph, [n for n in known.nodes if n.op != "input"], env)
    return [env[o] for o in known.outputs]


# The ops fn may apply to a value computed from its arguments (JAX's primitives with a
# transpose rule), by how their output depends on the operands that are such values:
_UNARY = {"neg", "reshape", "transpose", "broadcast_to", "slice", "pad_slice", "sum", "cumsum",
          "optimization_barrier",  # linear in their one operand; an all-reduce (the sum or
          "allreduce", "allreduce_wait"}  # mean over the ranks) is its own transpose, as psum
_SUMS = {"add", "sub", "concat", "allreduce_start"}  # a sum of its operands, each linear (a
# bucket packs them as concat does): where one does not depend on the arguments it must be 0,
# else fn is affine
_AFFINE = ("adds a value that does not depend on them, not 0 (an affine map, which JAX "
           "transposes as its linear part)")
_PRODUCTS = {"mul", "matmul", "einsum"}  # linear in each factor: one of them may depend
_FIRST = {"div", "take", "dynamic_slice", "scatter_add"}  # linear in operand 0 (the
# numerator, the table or the updates) only


def _check_forward(graph, count, who, name):
    """Refuse fn, in one line naming the op, where its forward graph is not linear in its
    `count` first inputs (the primals; a model's parameters are constants here). An added
    constant is reported only where no op is not linear: cumprod's concat(1, x[:-1]) is
    affine, but its reason is the multiply after it, and f(x) - f(0) would not help."""
    def refuse(node, why):
        fix = f"; transpose x -> {name}(x) - {name}(0)" if _AFFINE in why else ""
        # at the op's line (a custom function's: the line calling it), given once, as the
        # error's own location: the linear_transpose call's line would repeat it or hide it
        raise GraphcError(f"{who}: {name} is not linear in its arguments: {why}{fix}",
                          node.locs[:1] or (user_location(),))
    affine = []  # the first added constant, (node, why)

    def fail(node, why):
        if _AFFINE not in why:
            refuse(node, why)
        if not affine:
            affine.append((node, why))
    inputs = graph.inputs
    dep, zero = _walk(graph, [k < count for k in range(len(inputs))], [False] * len(inputs),
                      fail)
    for k, (d, z) in enumerate(zip(dep, zero)):
        if not d and not z:  # (an output fn computes without its arguments: a constant)
            fail(graph.outputs[k], f"its output leaf {k} {_AFFINE}")
    if affine:
        refuse(*affine[0])


def _walk(graph, dep_in, zero_in, fail):
    """Which outputs of `graph` depend on the arguments and which are known to be 0, given
    its inputs'; `fail(node, why)` is called on a node that is not linear in them (None: only
    follow them, as a loop's carries are, to a fixed point). A tuple-typed node (a scan's,
    a cond's) has a tuple of flags."""
    dep = dict(zip(graph.inputs, dep_in))
    zero = dict(zip(graph.inputs, zero_in))
    for node in graph.nodes:
        if node.op == "input":
            continue
        ins = node.inputs
        if node.op == "tuple_get":
            dep[node], zero[node] = (dep[ins[0]][node.attrs["index"]],
                                     zero[ins[0]][node.attrs["index"]])
        elif node.op in REGION_OPS:
            dep[node], zero[node] = _region(node, [dep[i] for i in ins],
                                            [zero[i] for i in ins], fail)
        elif not any(dep[i] for i in ins):
            dep[node], zero[node] = False, _is_zero(node, [zero[i] for i in ins])
        else:
            dep[node], zero[node] = True, False
            why = _not_linear(node, [dep[i] for i in ins], [zero[i] for i in ins])
            if why is not None and fail is not None:
                fail(node, why)
    return [dep[o] for o in graph.outputs], [zero[o] for o in graph.outputs]


def _not_linear(node, dep, zero):
    """Why `node`, some of whose operands depend on the arguments (`dep`), is not linear in
    them, or None where it is."""
    op, ins = node.op, node.inputs
    if op in _UNARY:
        return None
    if op == "cast":  # linear between float dtypes only: a cast to an integer or bool
        if is_float(ins[0].dtype) and is_float(node.dtype):  # truncates (float(int(x)) is
            return None  # trunc, x - float(int(x)) the fractional part), which JAX drops as
        # float0, its transpose 0: a wrong transpose given without a word, as floor's would be
        return (f"cast to {np.dtype(node.dtype).name} of a value computed from them is not "
                "linear (an integer or bool value of x is piecewise constant in x; JAX drops "
                "that term from the transpose)")
    if op in _PRODUCTS:
        return None if sum(dep) == 1 else f"{op} multiplies two values computed from them"
    if op in _FIRST:
        return None if not any(dep[1:]) else \
            f"{op}'s operand {dep.index(True, 1)} is computed from them"
    if op == "custom_vjp" and _custom_call(node.attrs).replays:
        return None  # remat's: its value is its operand 0, whose nodes are checked, and its
        # rule their derivative (a user's custom rule is refused below, as JAX refuses it)
    if op == "pow":  # (x ** 1: a gradient's x ** (2 - 1), once folded)
        e = ins[1]
        if not dep[1] and e.op == "constant" and np.all(e.attrs["value"] == 1):
            return None
    if op in _SUMS:
        terms = range(len(ins))
    elif op == "where" and not dep[0]:  # (its condition must not depend on them)
        terms = (1, 2)
    elif op == "dynamic_update_slice" and not dep[2]:  # (nor its start)
        terms = (0, 1)
    elif op == "matmul_add" and sum(dep[:2]) <= 1:  # a @ b + c (+ d)
        dep, zero = [any(dep[:2])] + dep[2:], [False] + zero[2:]
        terms = range(len(dep))
    else:
        return f"{op} of a value computed from them has no transpose (it is not linear)"
    for k in terms:
        if not dep[k] and not zero[k]:
            return f"{op} {_AFFINE}"
    return None


def _is_zero(node, zero) -> bool:
    """Whether `node`, which does not depend on the arguments, is known to be 0."""
    op = node.op
    if op == "constant":
        return bool(np.all(node.attrs["value"] == 0))
    if op == "full":
        return node.attrs["value"] == 0
    if op in _UNARY or op in _FIRST or op == "cast":
        return zero[0]
    if op in _SUMS:
        return all(zero)
    if op in _PRODUCTS:
        return any(zero)
    return False


def _region(node, dep, zero, fail):
    """(dep, zero) of a control-flow node's results from its regions, checked as its
    operands give them: a cond's branches, a scan's body with its carries followed to a
    fixed point (a carry depends on the arguments where a step makes it so)."""
    if node.op == "while_loop":
        if fail is not None and any(dep):
            fail(node, "while_loop has no transpose (no reverse mode, as in JAX); use "
                       "fori_loop with static bounds or scan")
        return (True,) * len(node.type.elements), (False,) * len(node.type.elements)
    if node.op == "cond":
        if dep[0] and fail is not None:
            fail(node, "cond's predicate is computed from them")
        results = [_walk(b, dep[1:], zero[1:], fail) for b in node.attrs["branches"]]
        out_dep = [any(d) for d in zip(*[r[0] for r in results])]
        out_zero = [all(z) for z in zip(*[r[1] for r in results])]
        for k, d in enumerate(out_dep):  # a branch returning a constant where another
            if d and fail is not None and any(not r[0][k] and not r[1][k] for r in results):
                fail(node, f"a branch of cond {_AFFINE}")
        return tuple(out_dep), tuple(out_zero)
    consts, carries, body = node.attrs["consts"], node.attrs["carries"], node.attrs["body"]
    cd, cz = dep[consts:consts + carries], zero[consts:consts + carries]
    split = consts + carries

    def step(check):
        return _walk(body, dep[:consts] + cd + dep[split:], zero[:consts] + cz + zero[split:],
                     fail if check else None)
    while True:
        out_dep, out_zero = step(False)
        new_dep = [a or b for a, b in zip(cd, out_dep[:carries])]
        new_zero = [a and b and not d for a, b, d in zip(cz, out_zero[:carries], new_dep)]
        if (new_dep, new_zero) == (cd, cz):
            break
        cd, cz = new_dep, new_zero
    out_dep, out_zero = step(True)
    for k in range(carries):  # a carry the arguments reach starts at 0 and stays linear
        if cd[k] and fail is not None and (not dep[consts + k] and not zero[consts + k] or
                                           not out_dep[k] and not out_zero[k]):
            fail(node, f"scan's carry {_AFFINE}")
    saved_dep, saved_zero = (cd, cz) if node.attrs.get("save_carries") else ([], [])
    return (tuple(cd + out_dep[carries:] + saved_dep),
            tuple(cz + out_zero[carries:] + saved_zero))
