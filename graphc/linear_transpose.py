"""jax.linear_transpose: the transpose (adjoint) of a linear function, as a function.

    f_t = gc.linear_transpose(f, *primals)   # primals: arrays or specs, for shapes only
    f_t(ct)                                  # (A.T @ ct,) for f = lambda x: A @ x

The transpose of a linear map is its vjp, the same at every point. So fn is traced on the
primals' shapes, its vjp is added to that graph (cotangent inputs, gradient nodes, as
gc.vjp's split does, graphc/split_vjp.py) and the whole is split as gc.linearize splits
jvp's graph: the part no cotangent reaches computes fn and the residuals (constants, a
model's weights), the cotangent part is the transpose. Linearity is read off that graph
where JAX finds a primitive without a transpose rule: fn is linear iff no value computed
from a cotangent reads a value computed from the arguments (its Jacobian does not depend
on the point: x * x, x * y, sin(x) and relu(x) are refused) and fn(0) == 0 (an added
constant is refused too, where JAX transposes the linear part without a word). The known
part runs once, here, at zeros: it gives fn(0) and the residuals; each f_t call runs the
cotangent plan only, or, on traced cotangents (vmap(f_t), compile, grad), adds the
cotangent part to the graph being traced.
"""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Node, current_graph
from ir.types import as_dtype, is_float
from passes.manager import optimize
from runtime.eager import Tensor, collect_buffer_updates

from .linearize import _inline, _split, _traced
from .split_vjp import _with_gradients
from .tracing import (Spec, arg_names, function_name, leaves_and_structure, to_spec, trace,
                      unflatten)
from .transforms import _cotangent_leaves, _is_python_number

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
            return fn(*args)
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
    primal_names = {n.attrs["name"] for n in graph.inputs[:count]}
    joint, names, grads = _with_gradients(graph, [(k, k) for k in range(len(outs))],
                                          list(range(count)))
    forward = len(joint.outputs)
    joint.set_outputs(joint.outputs + grads)
    joint.output_tree = None
    joint = optimize(joint, "default")
    _check_linear(joint, primal_names, set(names), forward, who, name)
    known, cotangent_part = _split(joint, set(names), joint.outputs[:forward],
                                   joint.outputs[forward:])
    # the residuals do not depend on the arguments (checked above): any point gives them
    known_outs = build_plan(known)(*[np.zeros(s.shape, s.dtype) for s in specs])
    at_zero, residuals = known_outs[:forward], known_outs[forward:]
    for k, y in enumerate(at_zero):
        if np.any(np.asarray(y) != 0):
            raise GraphcError(f"{who}: {name} is not linear: it is not 0 at 0 (output leaf "
                              f"{k} is {_first_nonzero(y)} there: it adds a constant); "
                              f"transpose x -> {name}(x) - {name}(0)", (user_location(),))
    cotangent_plan = build_plan(cotangent_part)
    out_tree = graph.output_tree
    out_specs = unflatten(out_tree, [Spec(tuple(o.shape), o.dtype) for o in outs])
    cotangent_of = {n: k for k, n in enumerate(names)}
    ct_inputs = cotangent_part.inputs[len(residuals):]

    def transposed(cotangent):
        if out_tree is None and isinstance(cotangent, (tuple, list, dict)):
            # (read as an array, [ct] was a shape error of the plan's input "cotangent0")
            raise GraphcError(f"{who}: the cotangent is a {type(cotangent).__name__}, but "
                              f"{name} returns one array; pass one array, "
                              f"{Spec(tuple(outs[0].shape), outs[0].dtype)}", (user_location(),))
        given = _cotangent_leaves(out_specs, cotangent, who)
        by_input = [given[cotangent_of[node.attrs["name"]]] for node in ct_inputs]
        graph = current_graph()  # vmap(f_t), compile, grad: traced cotangents
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
        raise GraphcError(f"{who}: primal leaf {k} is a {type(x).__name__}; pass an array "
                          "or a shape and dtype (gc.spec(shape, dtype))",
                          (user_location(),)) from None


def _check_linear(joint, primal_names, cotangent_names, forward, who, name):
    """Refuse fn where its vjp reads the point: a value computed from the cotangents that
    reads one computed from the arguments (x * x's gradient reads x), or a gradient computed
    from the arguments alone."""
    point = {n for n in joint.inputs if n.attrs["name"] in primal_names}
    pulled = {n for n in joint.inputs if n.attrs["name"] in cotangent_names}
    for node in joint.nodes:
        if node.op == "input":
            continue
        if any(i in pulled for i in node.inputs):
            read = next((i for i in node.inputs if i in point), None)
            if read is not None:
                raise GraphcError(f"{who}: {name} is not linear in its arguments: its "
                                  f"derivative depends on them ({node.op} of the gradient "
                                  f"reads {read.op} of the arguments{_at(read)}); JAX "
                                  "refuses it too", (user_location(),))
            pulled.add(node)
        elif any(i in point for i in node.inputs):
            point.add(node)
    for g in joint.outputs[forward:]:
        if g in point:
            raise GraphcError(f"{who}: {name} is not linear in its arguments: its gradient "
                              f"depends on them ({g.op}{_at(g)})", (user_location(),))


def _at(node) -> str:
    return "".join(f" at {file}:{line}" for file, line in node.locs[:1])


def _first_nonzero(y):
    y = np.asarray(y)
    return y.reshape(-1)[np.flatnonzero(y != 0)[0]].item() if y.ndim else y.item()
