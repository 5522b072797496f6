"""Dense Jacobians, as JAX's jacrev and jacfwd: vmap of a pullback over the output's basis
(one row of the Jacobian per output element) or of a pushforward over the input's basis (one
column per input element).

    J = gc.jacrev(f)(x)            # shape f(x).shape + x.shape
    J = gc.jacfwd(f, argnums=(0, 1))(x, w)   # (dF/dx, dF/dw)

jacrev costs one batched vjp per output leaf and suits few outputs; jacfwd one batched jvp per
input leaf and suits few inputs. Pytrees work as in JAX: the result is a tree like fn's
result whose every leaf is a tree like the arguments picked by argnums (a tuple of them for
a tuple argnums), each Jacobian leaf of shape output_leaf.shape + input_leaf.shape.
"""
from __future__ import annotations

import functools

import numpy as np

from ir.errors import GraphcError, TracedNumberError, user_location, with_article
from ir.graph import Node, current_graph
from ir.ops import api as F
from ir.types import is_float
from runtime.eager import Tensor

from .advice import differentiated_number
from .tracing import called, function_name, leaves_and_structure, unflatten
from .transforms import (_as_float_inputs, _callable, _differentiated, _float0_gradients,
                         _integer_leaf, _is_symbolic, check_differentiable, eager_runner, jvp,
                         single_argnum, split_aux, vjp)
from .vmap import vmap


def jacrev(fn, argnums=0, has_aux=False, allow_int=False):
    """Reverse mode: a vjp of fn, then the pullback vmapped over each output leaf's identity.
    allow_int (JAX's): an integer or boolean argument leaf is taken, its Jacobian float0
    zeros of shape output.shape + leaf.shape; without it, it is refused (TypeError)."""
    if not isinstance(allow_int, (bool, np.bool_)):
        raise GraphcError(f"jacrev: allow_int must be True or False, got {allow_int!r}",
                          (user_location(),))
    return _jacrev(fn, argnums, has_aux, "jacrev", bool(allow_int))


def _jacrev(fn, argnums, has_aux, who, allow_int=False):
    """jacrev, its messages naming `who`: the transformation the user called (hessian is
    jacfwd of jacrev; its errors named them)."""
    def jacobian(fn, args, nums):
        if allow_int:
            return _with_integer_leaves(float_jacobian, fn, args, nums, argnums, has_aux, who)
        return float_jacobian(fn, args, nums)

    def float_jacobian(fn, args, nums, argnums=argnums, raw=False):
        unique = _unique(nums)
        out, pull, aux = _linearised(vjp, fn, args, unique, has_aux, who)
        out_leaves, out_structure = leaves_and_structure(out)
        rows = []
        for j, y in enumerate(out_leaves):
            if not isinstance(y, Node) and is_float(np.asarray(y).dtype):
                # a constant (what fn computed from no argument): zeros, as JAX's and jacfwd's
                zeros = pull(unflatten(out_structure, [None] * len(out_leaves)))
                rows.append(_as_argnums(_in_trees(zeros, lambda g, y=y: F.zeros(
                    tuple(np.shape(y)) + tuple(g.shape), g.dtype)), unique, nums, argnums))
                continue
            _check_float(y, "output", who)

            def row(cotangent, j=j):
                cotangents = [None] * len(out_leaves)
                cotangents[j] = cotangent
                return pull(unflatten(out_structure, cotangents))
            pulled = vmap(row)(_basis(y))  # one tuple like the picked arguments per row
            rows.append(_as_argnums(_in_trees(pulled, lambda g, y=y: F.reshape(
                g, tuple(y.shape) + tuple(g.shape[1:]))), unique, nums, argnums))
        return (rows, out_structure, aux) if raw else (unflatten(out_structure, rows), aux)

    return _transform(fn, jacobian, argnums, has_aux, who, allow_int)


def _with_integer_leaves(float_jacobian, fn, args, nums, argnums, has_aux, who):
    """jacrev(allow_int=True): the Jacobian of fn as a function of the float leaves of the
    picked arguments alone (the integer and boolean ones held), each integer leaf's block
    integer zeros of shape output.shape + leaf.shape (placeholders, made float0 by
    _transform's wrapper, as grad's)."""
    unique = _unique(nums)
    in_leaves, in_structure = leaves_and_structure([args[i] for i in unique])
    integer = [_integer_leaf(x) for x in in_leaves]
    floats = [x for x, i in zip(in_leaves, integer) if not i]

    def of_floats(*given):
        given = iter(given)
        trees = unflatten(in_structure, [x if i else next(given)
                                         for x, i in zip(in_leaves, integer)])
        return fn(*_with(args, unique, trees))
    # (messages name the user's function, not this one)
    of_floats.__name__ = of_floats.__qualname__ = function_name(
        fn.func if isinstance(fn, functools.partial) else fn)
    if floats:
        # (one tuple of blocks, one per float leaf, for each output leaf)
        out_leaves, out_structure, aux = float_jacobian(
            of_floats, tuple(floats), tuple(range(len(floats))),
            argnums=tuple(range(len(floats))), raw=True)
        shapes = [tuple(blocks[0].shape)[:len(blocks[0].shape) - len(_leaf_shape(floats[0]))]
                  for blocks in out_leaves]
    else:
        out = called(f"{who} of {function_name(fn)}", fn, args)
        out, aux = split_aux(out, who) if has_aux else (out, None)
        out_leaves, out_structure = leaves_and_structure(out)
        shapes = [tuple(np.shape(y)) if not isinstance(y, Node) else tuple(y.shape)
                  for y in out_leaves]
        out_leaves = [()] * len(out_leaves)
    rows = []
    for blocks, shape in zip(out_leaves, shapes):
        blocks = iter(blocks)
        full = [np.zeros(shape + tuple(_leaf_shape(x)), np.int32) if i else next(blocks)
                for x, i in zip(in_leaves, integer)]
        rows.append(_as_argnums(unflatten(in_structure, full), unique, nums, argnums))
    return unflatten(out_structure, rows), aux


def jacfwd(fn, argnums=0, has_aux=False):
    """Forward mode: jvp of fn vmapped over each input leaf's identity, other tangents zero."""
    return _jacfwd(fn, argnums, has_aux, "jacfwd")


def _jacfwd(fn, argnums, has_aux, who):
    """jacfwd, its messages naming `who`, as _jacrev's."""
    def jacobian(fn, args, nums):
        unique = _unique(nums)
        picked = tuple(args[i] for i in unique)
        in_leaves, in_structure = leaves_and_structure(list(picked))
        if not in_leaves:
            raise GraphcError(f"{who}: the arguments picked by argnums hold no arrays",
                              (user_location(),))
        for x in in_leaves:
            _check_float(x, "input", who)
        columns, out_structure, aux = [], None, None
        for i, x in enumerate(in_leaves):
            def column(tangent, i=i):
                tangents = [F.zeros_like(v) for v in in_leaves]
                tangents[i] = tangent
                return _pushforward(fn, args, unique, unflatten(in_structure, tangents),
                                    has_aux, who)
            # aux comes from the primals, the same in every column: returned once (JAX's
            # out_axes=None for it), not traced again
            pushed, aux = vmap(column, out_axes=(0, None))(_basis(x))
            leaves, out_structure = leaves_and_structure(pushed)
            # (x.size, *out_shape) -> (*out_shape, *x.shape); an integer or boolean output
            # (jvp's tangent: integer zeros) has float zeros of x's dtype, where JAX gives
            # float0 zeros, which numpy lacks: integer ones passed for a count's derivative
            columns.append([F.reshape(F.transpose(t, tuple(range(1, t.ndim)) + (0,)),
                                      tuple(t.shape[1:]) + tuple(x.shape)) if is_float(t.dtype)
                            else F.zeros(tuple(t.shape[1:]) + tuple(x.shape), x.dtype)
                            for t in leaves])
        per_output = []
        for k in range(len(columns[0])):
            tree = unflatten(in_structure, [col[k] for col in columns])
            per_output.append(_as_argnums(tree, unique, nums, argnums))
        return unflatten(out_structure, per_output), aux

    return _transform(fn, jacobian, argnums, has_aux, who)


def _transform(fn, jacobian, argnums, has_aux, who, allow_int=False):
    _callable(fn, who)
    nums = _differentiated(argnums, who)

    def symbolic(*args, **kwargs):
        for i in nums:
            if not -len(args) <= i < len(args):
                raise GraphcError(f"{who}: argnums {i} but only {len(args)} arguments",
                                  (user_location(),))
        # keyword arguments pass through undifferentiated, as JAX's (and gc.grad's)
        f = functools.partial(fn, **kwargs) if kwargs else fn
        picked = tuple(i % len(args) for i in nums)
        check_differentiable(args, picked, who, fn, allow_int)
        try:
            jac, aux = jacobian(f, args, picked)
        except TracedNumberError as exc:  # (inside gc.compile: the advice is argnums')
            raise differentiated_number(exc, fn, args, picked, who) from None
        return (jac, aux) if has_aux else jac

    run = eager_runner(symbolic, nums, fn=fn, who=who)

    @functools.wraps(fn, updated=())
    def wrapper(*args, **kwargs):
        traced = _is_symbolic((args, kwargs)) or current_graph() is not None
        args = _as_float_inputs(args, nums, in_pytrees=traced)
        result = symbolic(*args, **kwargs) if traced else run(args, kwargs)  # (traced: nodes)
        if not allow_int:
            return result
        # (integer zeros stand for float0 ones, which no IR dtype holds, as in grad's)
        return (_float0_gradients(result[0]), result[1]) if has_aux else \
            _float0_gradients(result)

    return wrapper


def _linearised(transform, fn, args, nums, has_aux, who):
    """(fn's result, its pullback over the arguments at nums, aux)."""
    picked_fn, aux = _picked(fn, args, nums, has_aux, who)
    out, pull = transform(picked_fn, *(args[i] for i in nums))
    return out, pull, aux[0] if aux else None


def _pushforward(fn, args, nums, tangents, has_aux, who):
    """(J @ tangents, aux or None) for the arguments at nums."""
    picked_fn, aux = _picked(fn, args, nums, has_aux, who)
    tangent = jvp(picked_fn, tuple(args[i] for i in nums), tuple(tangents))[1]
    return tangent, aux[0] if aux else None


def _picked(fn, args, nums, has_aux, who):
    """fn as a function of the arguments at nums only (the others fixed), returning its
    result without aux, and the list its aux is appended to when it is traced."""
    aux = []
    # (fn's own name: _transform gives the keyword arguments to a partial of it)
    name = function_name(fn.func if isinstance(fn, functools.partial) else fn)

    def picked_fn(*picked):
        out = called(f"{who} of {name}", fn, _with(args, nums, picked))
        if has_aux:
            out, extra = split_aux(out, who)
            aux.append(extra)
        return out
    return picked_fn, aux


def _with(args, nums, picked):
    full = list(args)
    for i, value in zip(nums, picked):
        full[i] = value
    return tuple(full)


def _in_trees(pulled, reshape):
    """vjp's tuple of per-argument trees, each leaf reshaped."""
    leaves, structure = leaves_and_structure(list(pulled))
    return unflatten(structure, [reshape(g) for g in leaves])


def _unique(nums) -> tuple:
    """The positions argnums picks, each once, in order: fn is differentiated with respect
    to each argument once (picked twice, the later copy replaced the earlier one, whose
    Jacobian came out zeros)."""
    return tuple(dict.fromkeys(nums))


def _as_argnums(trees, unique, nums, argnums):
    """The Jacobians of the arguments at `unique` (one tree each) as argnums lists them: one
    tree for an int argnums, else a tuple in its order, a position listed twice getting its
    Jacobian twice, as gc.grad gives a repeated position's gradient twice."""
    if single_argnum(argnums):
        return trees[0]
    return tuple(trees[unique.index(i)] for i in nums)


def _leaf_shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, Node) else tuple(np.shape(x))


def _basis(x):
    """The identity over x's elements, one per row: shape (x.size, *x.shape)."""
    shape = tuple(x.shape)
    if not all(isinstance(d, (int, np.integer)) for d in shape):
        raise GraphcError(f"a Jacobian needs concrete shapes; this value's is {shape}",
                          (user_location(),))
    size = int(np.prod(shape, dtype=np.int64))
    return np.eye(size, dtype=x.dtype).reshape((size,) + shape)


def _check_float(x, what, name):
    # an input may be a concrete array too: jacfwd called inside a trace (vmap, compile)
    # on numpy arguments differentiates them as arrays of that trace (see jvp); a float
    # number is a numpy float scalar there (_as_float_inputs: weakly typed, as eagerly);
    # so is an eager tensor (one an eager vmap's function closed over or was passed)
    concrete = what == "input" and isinstance(x, (np.ndarray, np.generic, Tensor))
    if not (isinstance(x, Node) or concrete) or not is_float(x.dtype):
        kind = getattr(x, "dtype", type(x).__name__)
        raise GraphcError(f"{name}: {with_article(kind)} {what} has no Jacobian; only "
                          "floating-point values do (as JAX's)", (user_location(),))
