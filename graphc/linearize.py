"""jax.linearize: fn's value at the primals, and its Jacobian there as a function of tangents.

    y, f_jvp = gc.linearize(f, x)
    f_jvp(v)     # J(x) @ v, for as many v as you like

As JAX's partial evaluation does, the graph of jvp(f, primals, tangents) is split in two:
the nodes no tangent reaches ("known": the primal computation) and the rest. The known part
is one plan, run once here; it returns y and the residuals, the known values the tangent
part reads. The tangent part is a second plan taking the residuals and the tangents, so
each f_jvp call runs only the linear map, not f again. Called on traced tangents (vmap(f_jvp),
compile, grad), f_jvp adds the tangent part to the graph being traced instead.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import Graph, current_graph
from ir.region import Region
from passes.fold import computes_constant
from passes.forward_mode import keeping_primal_loops
from passes.manager import optimize
from ir.ops.registry import SymbolicValue, apply, foreign_array_name, get_op
from runtime.eager import Tensor

from .tracing import (Spec, called, called_function, function_name, leaves_and_structure,
                      refuse_foreign_argument, to_spec, trace, unflatten,
                      unsupported_argument)
from .transforms import (_as_primals, _check_integer_tangent, _is_python_number, _is_symbolic,
                         _like_primal, _read_seed, jvp, primal_and_tangent_names,
                         split_aux)

__all__ = ["linearize"]


def linearize(fn, *primals, has_aux=False):
    """(fn(*primals), f_jvp) with f_jvp(*tangents) = J @ tangents at the primals; tangents
    are pytrees like the primals, of their dtypes and shapes (as gc.jvp takes them). With
    has_aux, as JAX's, fn returns (output, aux) and linearize (output, f_jvp, aux)."""
    # (imported here: building a plan loads the parallel kernels, which start OpenMP, and
    # `import graphc` must not, for processes forked before any plan: tests/test_review_s12.py)
    from runtime.build import build_plan
    if _is_symbolic(primals) or current_graph() is not None:
        raise GraphcError("linearize runs on concrete arrays; inside a traced function use "
                          "gc.jvp(fn, primals, tangents)", (user_location(),))
    primals = _as_primals(primals)
    p_leaves, p_structure = leaves_and_structure(list(primals))
    count = len(primals)
    name = function_name(fn).strip("<>")
    # a Python or numpy int primal (an index, a factor) is traced weakly typed, as jvp's
    # and compile's (x * np.int64(3) is x's dtype)
    specs = unflatten(p_structure, [Spec((), to_spec(x).dtype, weak=True)
                                    if _is_python_number(x) else x for x in p_leaves])
    for x in p_leaves:  # a torch or complex primal: refused as jvp's, naming the argument
        if unsupported_argument(x) is not None or (  # (the trace's named none)
                not isinstance(x, (np.ndarray, Tensor)) and foreign_array_name(x)):
            refuse_foreign_argument(f"linearize of {function_name(fn)}", fn, primals)

    aux = []  # fn's aux, computed from the primals alone: a known output, as y

    def primals_and_tangents(*a):
        # (the hint of a traced number used as a Python value)
        current_graph().without_static_args = "gc.linearize(lambda x: f(x, n), x)"
        return jvp(as_called, a[:count], a[count:]) + tuple(aux)

    def as_called(*xs):  # (a call fn does not take is linearize's line, not jvp's)
        out = called(f"linearize of {function_name(fn)}", fn, xs)
        if has_aux:
            out, extra = split_aux(out, "linearize")
            aux.append(extra)
        return out
    # as fn to jvp, which names fn and its parameters (a Module's, its forward's)
    functools.update_wrapper(as_called, called_function(fn)[0])
    as_called.__name__ = function_name(fn)

    with keeping_primal_loops():  # the known part computes y without the tangents
        graph = trace(primals_and_tangents, *specs, *specs,
                      names=primal_and_tangent_names(fn, count),
                      name=f"linearize_{name}")
    # the tangents' inputs by name (the passes may reorder a signature); the other inputs
    # (the primals, a model's parameters fn reads) are known
    tangent_names = {n.attrs["name"] for n in graph.inputs[len(p_leaves):2 * len(p_leaves)]}
    graph = optimize(graph, "default")
    positions = unflatten(graph.output_tree, list(range(len(graph.outputs))))
    y_positions, y_structure = leaves_and_structure(positions[0])
    t_positions, t_structure = leaves_and_structure(positions[1])
    aux_positions, aux_structure = leaves_and_structure(positions[2] if has_aux else None)
    known_part, tangent_part = _split(graph, tangent_names,
                                      [graph.outputs[k] for k in y_positions + aux_positions],
                                      [graph.outputs[k] for k in t_positions])
    known_plan, tangent_plan = build_plan(known_part), build_plan(tangent_part)
    # (a Tensor's array: a numpy array's .data is a memoryview, which an ml_dtypes array
    # such as bfloat16 cannot be read back from)
    p_arrays = [x.data if isinstance(x, Tensor) else x for x in p_leaves]
    known = known_plan(*p_arrays)
    y, residuals = known[:len(y_positions)], known[len(y_positions) + len(aux_positions):]
    aux_values = known[len(y_positions):len(y_positions) + len(aux_positions)]
    p_types = [(np.asarray(x).dtype, np.shape(x)) for x in p_arrays]

    def f_jvp(*tangents, **keywords):
        if keywords:  # (was Python's TypeError naming 'linearize.<locals>.f_jvp()')
            raise GraphcError(f"linearize: f_jvp takes the tangents by position, one like each "
                              f"primal, got the keyword argument {next(iter(keywords))!r}",
                              (user_location(),))
        if len(tangents) != count:
            raise GraphcError(f"linearize: f_jvp takes {count} tangent{'s' * (count != 1)}, "
                              f"one like each primal, got {len(tangents)}", (user_location(),))
        # each a pytree like its primal, a dict's keys in any order, as jvp's tangents
        t_leaves = leaves_and_structure([
            _like_primal(p, t, f"linearize: f_jvp's tangent {k}")
            for k, (p, t) in enumerate(zip(primals, tangents))])[0]
        graph = current_graph()  # vmap(f_jvp), compile, grad: traced tangents
        arrays = []
        for k, (t, (dtype, shape)) in enumerate(zip(t_leaves, p_types)):
            _check_integer_tangent("linearize: f_jvp", k, p_leaves[k], t)
            if not isinstance(t, SymbolicValue):  # (a torch tangent read as jvp's)
                t = np.asarray(t.data if isinstance(t, Tensor) else
                               _read_seed(t, f"linearize: f_jvp's tangent leaf {k}"))
            if tuple(t.shape) != shape or (t.dtype != dtype and t.ndim > 0):
                raise GraphcError(f"linearize: tangent leaf {k} is {t.dtype}{list(t.shape)} "
                                  f"but its primal is {dtype}{list(shape)}; pass a tangent of "
                                  "the primal's dtype and shape", (user_location(),))
            arrays.append(_traced(graph, t, dtype) if graph is not None else
                          t.astype(dtype, copy=False))
        if graph is not None:
            return unflatten(t_structure, _inline(graph, tangent_part, residuals, arrays))
        return unflatten(t_structure, tangent_plan(*residuals, *arrays))

    # (its signature, for compile and vmap, is the tangents alone)
    f_jvp.__signature__ = inspect.Signature(
        [inspect.Parameter("tangents", inspect.Parameter.VAR_POSITIONAL)])
    f_jvp.plan = tangent_plan  # what each call runs (`graphc dump`-able: plan.graph)
    if has_aux:
        return unflatten(y_structure, y), f_jvp, unflatten(aux_structure, aux_values)
    return unflatten(y_structure, y), f_jvp


def _split(graph, tangent_names, y_outputs, t_outputs):
    """(known part: primal inputs -> y and the residuals, tangent part: residuals and
    tangent inputs -> the tangents)."""
    tangent_inputs = [n for n in graph.inputs if n.attrs["name"] in tangent_names]
    unknown = set(tangent_inputs)
    for node in graph.nodes:
        if any(i in unknown for i in node.inputs):
            unknown.add(node)
    # a known value with no operands (a constant, a zeros) is rebuilt in the tangent part,
    # not passed to it
    replicated = {n for n in graph.nodes if n not in unknown and not n.inputs
                  and n.op != "input" and computes_constant(get_op(n.op))}
    residuals = list(dict.fromkeys(
        [i for n in graph.nodes if n in unknown for i in n.inputs if i not in unknown]
        + [o for o in t_outputs if o not in unknown]))
    residuals = [r for r in residuals if r not in replicated]

    known_part = Graph(f"{graph.name}_known")
    env = {}
    with known_part.building():
        for node in graph.inputs:
            if node not in unknown:
                env[node] = _input_like(known_part, graph, node)
    _copy_nodes(known_part, [n for n in graph.nodes if n not in unknown and n.op != "input"],
                env)
    known_part.set_outputs([env[o] for o in y_outputs + residuals])

    tangent_part = Graph(f"{graph.name}_tangents")
    env = {}
    with tangent_part.building():
        for k, r in enumerate(residuals):
            env[r] = tangent_part.input(f"residual{k}", r.shape, r.dtype)
        for node in tangent_inputs:
            env[node] = tangent_part.input(node.attrs["name"], node.shape, node.dtype)
    _copy_nodes(tangent_part, [n for n in graph.nodes if n in replicated or
                               (n in unknown and n.op != "input")], env)
    tangent_part.set_outputs([env[o] for o in t_outputs])
    return known_part, tangent_part


def _inline(graph, tangent_part, residuals, tangents):
    """The tangent part's nodes added to `graph`, being traced (vmap(f_jvp), as JAX's
    linearize allows): the residuals enter as constants, the tangents as they are; a
    residual that is a value of the trace already (linear_transpose made inside it, reading
    a layer's weights there) as it is, through a capture in a region."""
    env = {}
    with graph.building():
        for node, r in zip(tangent_part.inputs, residuals):
            # (a copy: constant() keeps r's owner's array)
            env[node] = _traced(graph, r, node.dtype) if isinstance(r, SymbolicValue) \
                else graph.constant(r)
        for node, t in zip(tangent_part.inputs[len(residuals):], tangents):
            env[node] = t
        _copy_nodes(graph, [n for n in tangent_part.nodes if n.op != "input"], env)
    return [env[o] for o in tangent_part.outputs]


def _traced(graph, t, dtype):
    """Tangent leaf `t` as a value of `graph` of the primal's dtype. In a loop body or a
    branch, a value of the enclosing function enters through a capture, as ops' operands do."""
    if not isinstance(t, SymbolicValue):
        t = graph.constant(np.asarray(t, dtype))
    elif t.graph is not graph and isinstance(graph, Region):
        t = graph.capture(t)
    return t if t.dtype == dtype else apply("cast", t, dtype=dtype)


def _input_like(new_graph, graph, node):
    """An input of new_graph standing for `node`, an input of graph; a model's parameter
    stays bound to its Parameter, which the plan reads when it runs."""
    name, kind = node.attrs["name"], node.attrs.get("kind", "input")
    copy = new_graph.input(name, node.shape, node.dtype, kind=kind)
    if name in graph.param_values:
        new_graph.param_values[name] = graph.param_values[name]
    return copy


def _copy_nodes(new_graph, nodes, env):
    for n in nodes:
        env[n] = new_graph.add_node(n.op, [env[i] for i in n.inputs], dict(n.attrs), n.type,
                                    n.locs, n.scope)
