"""`graphc.vmap(f, in_axes=0, out_axes=0)`: f mapped over a batch axis, as JAX's jax.vmap.

    per_example_grads = gc.vmap(gc.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)

How: f is traced once at one example's shapes into a graph of its own (so transforms inside
f, such as grad, work on it as usual), then that graph is batched node by node with each op's
batching rule (passes/batching.py, ir/ops/batching.py). The batched computation is built
with ordinary op calls, so vmap works wherever op calls do: eagerly (the result is computed
at once, and the tape records it for backward()), and inside a function being traced (it adds
nodes to that graph, so compile, grad and jvp of a vmapped function, and vmap of vmap, work).

A graph and not an interpreter of its own (JAX's BatchTrace) because graphc differentiates
graphs: grad inside f needs f's nodes, which a batching interpreter would not keep.
Values f closes over (a tensor of an enclosing trace, an eager tensor, a layer's parameter)
enter the traced graph as inputs of their own and are bound back to themselves, unbatched;
an eager weak value (-gc.sqrt(4.0), closed over or passed with in_axes None) enters as a weak
constant, its value known to f. Eagerly, an op none of whose operands is a value of the
traced graph (-v of such a v, p * 2 of a parameter, gc.zeros(3) of none) runs at once, as
without vmap and as in torch.func.vmap and jax.vmap, so f can read what it computes from
unbatched values (float(), `if`, a loss's argument check); a transformation traced in f still
builds its seeds in the graph (ir.ops.registry.graph_valued). Eagerly, an unmapped number
(a numpy scalar, a 0-d array) or eager tensor reaches f as it is, as without vmap and as a
closed-over one (np.log(v) works; eager code reads a numpy float alone as a weak float32
number, where compile traces it in the arrays' float dtype, so what f computes from the
number alone can differ from the compiled vmap's in value and dtype: README); an unmapped
numpy array of one or more axes is an input, which f can index with a batched value (numpy
could not).
Random masks under vmap are the same for every example (one key, as in JAX) unless the key
itself is batched.
"""
from __future__ import annotations

import functools

import numpy as np

from ir import weak
from ir.errors import GraphcError, a_type, user_location
from ir.graph import Node, current_graph
from ir.region import Region
from ir.ops import api as F
from ir.ops.batching import batch_all, defbatch, move_axis
from ir.ops.custom import CustomCall, _custom_call, rule_ref
from ir.ops.named_axis import batching_axis
from ir.ops.registry import apply, foreign_array_name
from ir.types import NUMPY_FLOAT_SCALARS, WIDENED_INPUTS, Dim, UnsupportedDtype, is_int
from passes.batching import batch_graph
from runtime.eager import Tensor, WeakTensor, apart_from

from . import nn
from .tracing import (arg_names, called, flatten, function_name, leaf_input_names, to_spec,
                      unflatten, unsupported_argument)
from .transforms import _callable, _lacked_float, _shared_float_dtype, float0


def vmap(fun, in_axes=0, out_axes=0, axis_name=None, axis_size=None):
    """fun mapped over axis `in_axes` of its arguments; the results stacked along `out_axes`.

    in_axes: an int (every argument batched along that axis), None (not batched: shared by
    every example), or a tuple with one entry per positional argument, each an int, None or
    a pytree of them matching that argument (a dict argument takes a dict of axes). Negative
    axes count from the end; a numpy integer is an int here (JAX's vmap refuses it).
    out_axes: the same for fun's result (None: an output that does not depend on the batch,
    returned once). Keyword arguments are passed through unbatched,
    as torch.func.vmap does (JAX maps them over axis 0: pass batched values by position).
    An argument (or a part of one) that is None is an empty pytree, as in JAX: it has no
    leaves to map, whatever its in_axes entry, and reaches fun as None. axis_size (as JAX's):
    the batch size, needed where in_axes maps no argument (every result is then fun's
    result stacked axis_size times), else checked against the mapped arguments.
    Eagerly, the results are eager tensors (gc.Tensor), as eager ops give.
    axis_name (JAX's): names the mapped axis for the collectives gc.psum, gc.pmean, gc.pmax
    and gc.pmin inside fun (ir/ops/named_axis.py), which reduce over every example."""
    if axis_name is not None and (not isinstance(axis_name, str) or not axis_name):
        raise GraphcError(f"vmap: axis_name must be a non-empty string, got {axis_name!r}",
                          (user_location(),))
    _callable(fun, "vmap")
    name = function_name(fun).strip("<>")
    in_axes, out_axes = _python_axes(in_axes), _python_axes(out_axes)

    @functools.wraps(fun, updated=())
    def batched(*args, **kwargs):
        names = arg_names(fun, len(args))
        leaves, structure, leaf_names = _arguments(args, names)
        axes = _leaf_axes(in_axes, args, names)
        size = _batch_size(leaves, axes, leaf_names, axis_size)
        # batched arguments with their batch axis first, moved in the context vmap runs in
        firsts = [leaf if axis is None else move_axis(leaf, axis, 0)
                  for leaf, axis in zip(leaves, axes)]
        outer = _outer_graph(leaves)
        region = _Region(f"vmap({name})", outer, size)
        region.axis_name = axis_name
        bound, stand_ins = {}, []
        shared = _shared_float_dtype(leaves)
        for leaf, first, axis, leaf_name in zip(leaves, firsts, axes, leaf_names):
            if axis is None and _lacked_float(leaf):
                # an np.longdouble, a float the IR lacks: the numpy scalar of the dtype
                # gc.compile traces it with (the arrays' shared float dtype, else float32),
                # so that what fun returns from it alone is not refused as float128
                leaf = (shared or np.dtype(np.float32)).type(leaf)
            if axis is None and (not _is_array(leaf) or isinstance(
                    leaf, (np.integer, np.bool_) + NUMPY_FLOAT_SCALARS)):
                # a Python value, passed through as it is; so is a numpy number scalar, weakly
                # typed as in eager code (an int64 input did not meet int32 tensors;
                # gc.full(shape, np.True_) fills float32). fun sees what it sees without
                # vmap: np.log(v), float(v * 2) and `if -v < 0` work, and what it computes
                # from v alone is numpy's, concrete (a numpy float made a weak float64
                # stand-in here computed in the trace, unknown: gaussian_nll_loss(r, r * 0,
                # v - 4) beside float64 rows was NaN where eager code refuses it)
                stand_ins.append(leaf)
                continue
            if axis is None and type(leaf) is WeakTensor:
                # a number whose value is known now (-gc.sqrt(4.0)): passed through as a
                # Python number is, so that fun reads its value (a negative
                # gaussian_nll_loss var is refused, as without vmap, not NaN; as an input
                # node it was an unknown value). Ops take it as a weak constant
                stand_ins.append(leaf)
                continue
            if axis is None and region.concrete_runs_eagerly and (
                    isinstance(leaf, Tensor) or isinstance(leaf, np.ndarray) and leaf.ndim == 0):
                # eagerly, an unbatched eager tensor or 0-d numpy array (a number) reaches fun
                # as it is too, as a closed-over one does: an op mixing it with the examples
                # captures it (_Region.capture), one on it alone runs at once, so float(v * 2),
                # np.log(v) of the array and a loss's check of v - 4 read its value (as an
                # input node it was unknown: refused, a raw TypeError, NaN). Not a numpy array
                # of one or more axes: numpy cannot index it with a batched value (t[i]), an
                # input node can. Inside a trace it stays an input, bound to the traced value
                stand_ins.append(leaf)
                continue
            spec = to_spec(first)
            node = region.input(leaf_name, spec.shape[axis is not None:], spec.dtype)
            if axis is None and weak.is_weak(leaf):
                # (a compiled function's number argument) as capture() keeps a weak value weak
                region.weak_ids.add(node.id)
            bound[node] = (first, axis is not None)
            if axis is None and isinstance(leaf, Node):
                region.unbatched[node] = leaf
            elif axis is not None and isinstance(first, Node):
                region.batched[node] = first
            stand_ins.append(node)
        with region.building():
            # (a call fun does not take is one line, as grad's: tracing.called)
            result = called(f"vmap of {function_name(fun)}", fun,
                            unflatten(structure, stand_ins), kwargs)
        out_leaves, out_structure, _ = flatten(result)
        for k, x in enumerate(out_leaves):
            if not (_is_array(x) or isinstance(x, (bool, int, float))):
                # (else numpy's "dtype <U1 is not supported" from the batching below; a
                # torch tensor was "a Tensor, which is not a tensor")
                foreign = foreign_array_name(x)
                what = f"{a_type(x)}, which is not a tensor" if foreign is None else \
                    (f"a {foreign}, another library's array; return numpy arrays or gc "
                     "tensors (x.numpy(), or np.asarray(x))")
                raise GraphcError(f"vmap({name}): output {k} is {what}", (user_location(),))
        bound.update(region.bindings())
        traced = [x for x in out_leaves if isinstance(x, Node) and x.graph is region]
        with batching_axis(axis_name):  # (its collectives reduce over this batch)
            values = iter(batch_graph(region, bound, size, traced))
        outputs = [next(values) if isinstance(x, Node) and x.graph is region else (x, False)
                   for x in out_leaves]
        placed = [_place(value, is_batched, axis, size, k)
                  for k, ((value, is_batched), axis) in
                  enumerate(zip(outputs, _output_axes(out_axes, result)))]
        if outer is None:  # eagerly; fun's own arrays too (a closure's, returned unbatched)
            placed = apart_from(placed, leaves + [x for x in out_leaves if not isinstance(
                x, Node)] + [value for _, value in region.captured.values()])
        return unflatten(out_structure, placed)

    return batched


def psum(x, axis_name):
    """jax.lax.psum over a vmap axis: inside gc.vmap(f, axis_name=...), the sum of x over
    every example of the vmap naming axis_name (the innermost, as JAX binds names), each
    example getting the total; x may be a pytree."""
    return _named_reduce("sum", "psum", x, axis_name)


def pmean(x, axis_name):
    """jax.lax.pmean over a vmap axis: the mean of x over the examples (psum's)."""
    return _named_reduce("mean", "pmean", x, axis_name)


def pmax(x, axis_name):
    """jax.lax.pmax over a vmap axis: the largest x over the examples (psum's)."""
    return _named_reduce("max", "pmax", x, axis_name)


def pmin(x, axis_name):
    """jax.lax.pmin over a vmap axis: the smallest x over the examples (psum's)."""
    return _named_reduce("min", "pmin", x, axis_name)


def _named_reduce(reduce, who, x, axis_name):
    if isinstance(axis_name, (tuple, list)) and all(isinstance(a, str) for a in axis_name):
        # JAX's tuple of names: the reduction over every example of each of those vmaps
        # (nested, so over their product): one axis after another, the same total for a
        # sum, max or min, and for a mean, as each axis' examples are equally many
        if len(set(axis_name)) != len(axis_name):
            raise GraphcError(f"{who}: axis_name {tuple(axis_name)!r} names an axis twice",
                              (user_location(),))
        for name in axis_name:
            _bound_region(who, name)  # (an unbound name refused before anything reduces)
        for name in axis_name:
            x = _named_reduce(reduce, who, x, name)
        return x
    if not isinstance(axis_name, str):
        raise GraphcError(f"{who}: axis_name must be a vmap's axis name (a string) or a tuple "
                          f"of them, got {axis_name!r}", (user_location(),))
    graph = _bound_region(who, axis_name)
    leaves, structure, _ = flatten(x)
    return unflatten(structure, [_python_number_reduce(reduce, leaf, graph.size)
                                 if _is_number(leaf) else
                                 _tensor_reduce(reduce, leaf, axis_name, graph.size)
                                 for leaf in leaves])


def axis_index(axis_name):
    """jax.lax.axis_index: inside gc.vmap(f, axis_name=...), the index of the example f
    runs on along that named axis (the innermost vmap of the name), an int32 scalar as
    JAX's; eagerly and compiled, under grad (an integer: no gradient) and inside loops."""
    if not isinstance(axis_name, str):
        raise GraphcError(f"axis_index: axis_name must be a vmap's axis name (a string), got "
                          f"{axis_name!r}", (user_location(),))
    region = _bound_region("axis_index", axis_name)
    if region.example_index is None:  # (the input _Region.part selects rows by, bound to
        # arange(size), batched, at the end: bindings())
        region.example_index = region.input(region._fresh("example"), (), "int64")
    index, here = region.example_index, current_graph()
    if here is not region:  # a loop body's or branch's inside the vmap: captured through
        index = here.capture(index)
    return F.cast(index, np.int32)


def _bound_region(who, axis_name):
    """The innermost vmap region around this call naming `axis_name`, checked to have a
    known batch size (for who's one-line refusals)."""
    reduce = {"pmax": "max", "pmin": "min"}.get(who)
    graph = current_graph()
    while graph is not None and getattr(graph, "axis_name", None) != axis_name:
        graph = getattr(graph, "parent", None)
    if graph is None:
        raise GraphcError(f"{who}: unbound axis name {axis_name!r}: no gc.vmap around this "
                          f"call has axis_name={axis_name!r}", (user_location(),))
    if not isinstance(graph.size, int):
        raise GraphcError(f"{who}: the vmap naming {axis_name!r} has a symbolic batch size "
                          f"({graph.size}); collectives need a known one", (user_location(),))
    if graph.size == 0 and reduce in ("max", "min"):
        raise GraphcError(f"{who}: the vmap naming {axis_name!r} has no examples (batch size "
                          f"0): the {'largest' if reduce == 'max' else 'smallest'} of none is "
                          "undefined", (user_location(),))
    return graph


def _tensor_reduce(reduce, leaf, axis_name, size):
    """The vmap_reduce node of one leaf. As JAX's: psum sums bools as ints (int64 here,
    graphc's int and gc.sum's of bools, where JAX's is int32); pmean of ints or bools is
    psum(x) / size in float32 (JAX's float with x64 off, and graphc's default float)."""
    dtype = F._dtype(leaf)
    exact = dtype == np.dtype(bool) or np.issubdtype(dtype, np.integer)
    if isinstance(leaf, Node) and weak.is_weak(leaf) and dtype != np.dtype(bool):
        # (a compiled function's number argument, weakly typed, with in_axes=None): its
        # reduction is weak too, as the Python number's is (_python_number_reduce), so that
        # psum(n, "i") * float64_x takes x's dtype eagerly and compiled alike
        if reduce == "mean" and exact:
            leaf = F.cast(leaf, np.float64)
            leaf.graph.weak_ids.add(leaf.id)
        out = apply("vmap_reduce", leaf, reduce=reduce, axis_name=axis_name, axis_size=size)
        out.graph.weak_ids.add(out.id)
        return out
    if reduce in ("sum", "mean") and dtype == np.dtype(bool):
        leaf = F.cast(leaf, np.int64)
    if reduce == "mean" and exact:
        total = apply("vmap_reduce", leaf, reduce="sum", axis_name=axis_name, axis_size=size)
        return F.cast(total, np.float32) / np.float32(size) if size else \
            F.cast(total, np.float32) * np.float32(np.nan)
    return apply("vmap_reduce", leaf, reduce=reduce, axis_name=axis_name, axis_size=size)


def _is_number(leaf) -> bool:
    """A Python number, or a numpy number scalar, which eager vmap passes to fun as it is,
    weakly typed (numpy's float scalars took _tensor_reduce's way, where eager code read
    np.float64(2.0) as a weak float32 and returned a strong float32 sum: refused beside
    float64 examples, where the compiled vmap gave float64). Not a numpy bool, which is a
    strong bool tensor compiled as eagerly (summed as int64, its max refused)."""
    return type(leaf) in (bool, int, float) or \
        isinstance(leaf, (np.integer,) + NUMPY_FLOAT_SCALARS)


def _python_number_reduce(reduce, number, size):
    """A Python number is the same in every example: JAX's constant case, a Python number
    again (weakly typed), so that `x / gc.psum(1, "i")`, JAX's idiom for the axis size, keeps
    x's dtype (as a node, 1 was an int64 tensor and 2.0 a float32 one, refused beside a
    float64 or float32 x). psum: size times it (a bool counted as 1, as JAX sums bools as
    ints); pmean: it as a float (psum(x) / psum(1), as JAX's); pmax and pmin: it."""
    # (a numpy scalar keeps its dtype where a Python number keeps its type: size times a
    # numpy float, it for a mean of one; a numpy int's mean is a Python float as an int's)
    if reduce == "sum":
        return int(number) * size if type(number) is bool else number * size
    if reduce == "mean":
        return number if isinstance(number, NUMPY_FLOAT_SCALARS) else float(number)
    return number


def _outer_graph(leaves):
    """The graph vmap's region lies in: the one being built where vmap is called (a loop
    body's, a branch's) when the arguments' graph encloses it or there is none, else the
    arguments' graph. Not the arguments' graph alone: vmap inside a scan body over the
    enclosing function's values would hang from that function's graph, and gradients taken
    in the vmapped function with respect to an outer value (passes/autodiff.py
    _through_captures) missed the path through the body's values: zero."""
    here = current_graph()
    theirs = next((x.graph for x in leaves if isinstance(x, Node)), None)
    if here is None:
        return theirs
    g = here
    while g is not None and theirs is not None and g is not theirs:
        g = getattr(g, "parent", None)
    return here if theirs is None or g is theirs else theirs


class _Region(Region):
    """The graph vmap traces its function into: a region (ir/region.py) whose parent is the
    graph being traced around vmap, or None (eager), so that what the trace reads (guards),
    sets itself and the dropout sites it numbers belong to that graph. Unlike a loop body's
    region it also takes eager tensors: a value of an enclosing graph or an eager tensor that
    the function reads becomes an input of its own, bound back to that value when the graph
    is batched (ir.ops.registry routes op calls mixing graphs here)."""

    # its nodes run wherever the graph around vmap runs (not a branch a call may not take)
    may_not_run = False

    axis_name = None  # vmap's axis_name: what gc.psum inside it names

    def __init__(self, name, outer, size):
        super().__init__(name, parent=outer)
        self.size = size
        self.captured = {}  # id(value) -> (input node, value)
        # its input -> an unbatched argument (in_axes None) that is a value of the enclosing
        # trace, which it stands for (outer_links): a Python number grad traced, used as a
        # Python value in fun (range(k), a custom_vjp's nondiff argument), is followed out
        # to that number, so that grad retries with it as it is, as it does without vmap;
        # and gradients() inside fun with respect to that value reach it through the input
        self.unbatched = {}
        # its input -> a batched argument that is a value of the enclosing trace, with the
        # batch axis first: the input is one example, a row of it (part_links); and the
        # int64 input holding which (bound to 0..size-1, batched), made on first use
        self.batched = {}
        self.example_index = None
        # eagerly (no enclosing trace, or only eager vmaps' graphs), an op none of whose
        # operands is a value of this graph (or of no operands) runs at once
        # (ir.ops.registry.apply)
        self.concrete_runs_eagerly = outer is None or getattr(outer, "concrete_runs_eagerly",
                                                              False)

    def capture(self, x):
        """x as a value of this graph (ir.region.Region asks this of its parent, so that a
        loop body inside f reading an eager tensor reads it through an input of this graph)."""
        if not ((isinstance(x, Node) and x.graph is not self) or isinstance(x, Tensor)) \
                or type(x) is WeakTensor:
            # (an eager weak value is a number, no gradient's leaf: Graph.process takes it as
            # a weak constant, as a trace does; an input here was strong, so -gc.sqrt(4.0)
            # met float64 rows as float32, refused)
            return x
        entry = self.captured.get(id(x))
        if entry is None:
            name = getattr(x, "name", None) if isinstance(x, Tensor) else None
            node = self.input(self._fresh(name or "captured"), tuple(x.shape), x.dtype)
            entry = self.captured[id(x)] = (node, x)
            if weak.is_weak(x):  # a compiled function's number argument stays weak
                self.weak_ids.add(node.id)
        return entry[0]

    def outer_links(self) -> dict:
        # (a captured eager tensor is bound by its value, not a node to follow out)
        links = {n: v for n, v in self.captured.values() if isinstance(v, Node)}
        links.update(self.unbatched)
        return links

    def part_links(self) -> dict:
        return dict(self.batched)

    def part(self, node, whole):
        # example i of the batched value is its row i, selected by a mask (not a take: the
        # batched gather and scatter need a concrete batch size, polymorphic_shapes' is a
        # symbol): the gradient puts each example's cotangent in its own row, zeros in the
        # others (torch.func.vmap of torch.func.grad of a function reading w[i] gives those)
        if self.example_index is None:
            self.example_index = self.input(self._fresh("example"), (), "int64")
        shape = F._shape(whole)
        row = F.equal(F.arange(shape[0]), self.example_index)
        return F.sum(F.where(F.reshape(row, shape[:1] + (1,) * (len(shape) - 1)), whole, 0),
                     axis=0)

    def _fresh(self, base):
        taken = {n.attrs["name"] for n in self.inputs}
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def bindings(self) -> dict:
        """The captured inputs and the implicit dropout key, bound unbatched."""
        bound = {node: (value, False) for node, value in self.captured.values()}
        if self.example_index is not None:
            n = self.size
            bound[self.example_index] = (
                F.arange(n) if isinstance(n, Dim) else np.arange(n, dtype=np.int64), True)
        for node in self.inputs:
            value = self.param_values.get(node.name)
            if value is nn._AUTO_KEY:  # the key of the context vmap runs in
                bound[node] = (nn.current_key(), False)
            elif value is not None:
                bound[node] = (value, False)
        return bound


# ---- arguments ------------------------------------------------------------------------------
def _arguments(args, names):
    leaves, structures, leaf_names = [], [], []
    for arg, name in zip(args, names):
        lv, st, _ = flatten(arg)
        # a uint32 array (a raw JAX key) as the int64 input compile makes of it
        leaves += [x.astype(WIDENED_INPUTS[x.dtype]) if isinstance(x, (np.ndarray, np.generic))
                   and x.dtype in WIDENED_INPUTS else x for x in lv]
        structures.append(st)
        leaf_names += leaf_input_names(name, arg)
    return leaves, (tuple, tuple(structures)), leaf_names


def _python_axes(spec):
    """in_axes or out_axes with each numpy integer as the Python int it holds (an axis from
    numpy arithmetic, np.int64(1), is axis 1, as in graphc's other axis arguments; JAX's
    vmap refuses it), converted once when vmap is made; np.bool_ is no integer and stays
    refused (_match)."""
    if is_int(spec):  # (not a timedelta64, a time: refused with np.bool_ by _match)
        return int(spec)
    if isinstance(spec, dict):
        return {key: _python_axes(axis) for key, axis in spec.items()}
    if isinstance(spec, list):
        return [_python_axes(axis) for axis in spec]
    if isinstance(spec, tuple):  # (a namedtuple of axes matches as a tuple)
        return tuple(_python_axes(axis) for axis in spec)
    return spec


def _is_array(x) -> bool:
    return isinstance(x, (Node, Tensor, np.ndarray, np.generic))


def _describe(names, k):
    return names[k] or f"argument {k}"


def _leaf_axes(in_axes, args, names) -> list:
    """One axis (or None) per argument leaf, from in_axes (a prefix of the arguments' tree)."""
    if in_axes is None or isinstance(in_axes, int):
        per_arg = [in_axes] * len(args)
    elif isinstance(in_axes, (tuple, list)):
        if len(in_axes) != len(args):
            raise GraphcError(f"vmap: in_axes has {len(in_axes)} entries but the function was "
                              f"called with {len(args)} arguments", (user_location(),))
        per_arg = list(in_axes)
    else:
        raise GraphcError(f"vmap: in_axes must be an int, None or a tuple with one entry per "
                          f"argument, got {a_type(in_axes)}", (user_location(),))
    axes = []
    for spec, arg, name in zip(per_arg, args, names):
        for axis, leaf, leaf_name in _match(spec, arg, name):
            axes.append(_check_axis(axis, leaf, leaf_name))
    return axes


def _match(spec, tree, name, what="in_axes"):
    """(axis, leaf, leaf name) for each leaf of `tree`, its axis from the prefix `spec`."""
    if isinstance(spec, (bool, np.bool_)):  # an int to Python, but surely not an axis
        raise GraphcError(f"vmap: the {what} entry for {name} is {spec!r}; an axis is an int "
                          "or None", (user_location(),))
    if spec is None or isinstance(spec, int):
        leaves, _, _ = flatten(tree)
        return [(spec, leaf, leaf_name) for leaf, leaf_name in
                zip(leaves, leaf_input_names(name, tree))]
    if isinstance(spec, dict) and isinstance(tree, dict) and set(spec) == set(tree):
        return [m for key in tree for m in _match(spec[key], tree[key], f"{name}.{key}", what)]
    if (isinstance(spec, (tuple, list)) and isinstance(tree, (tuple, list))
            and len(spec) == len(tree)):
        return [m for k, (s, t) in enumerate(zip(spec, tree))
                for m in _match(s, t, f"{name}.{k}", what)]
    raise GraphcError(f"vmap: the {what} entry for {name} ({spec!r}) does not match its "
                      f"structure ({a_type(tree)})", (user_location(),))


def _check_axis(axis, leaf, name):
    why = unsupported_argument(leaf)  # (a complex array, mapped or not: named, not to_spec's)
    if why is not None:
        raise UnsupportedDtype(f"vmap: {name}: {why}", (user_location(),))
    if axis is None:
        return None
    if not _is_array(leaf):
        if foreign_array_name(leaf) is not None:  # ("give it in_axes None" misled; "got a
            # torch.Tensor" named no argument): a transformation's argument, refused by design
            raise GraphcError(f"vmap: {name} is a {foreign_array_name(leaf)}, another "
                              "library's array; pass a numpy array (x.numpy(), or "
                              "np.asarray(x))", (user_location(),))
        raise GraphcError(f"vmap: {name} is {a_type(leaf)}, which has no axis {axis} "
                          "to map over; give it in_axes None", (user_location(),))
    ndim = len(to_spec(leaf).shape)
    if not -ndim <= axis < ndim:
        raise GraphcError(f"vmap: in_axes {axis} is out of range for {name}, which has {ndim} "
                          "axes", (user_location(),))
    return axis % ndim


def _batch_size(leaves, axes, names, axis_size=None) -> int:
    first = None
    if axis_size is not None:
        if not is_int(axis_size) or axis_size < 0:
            raise GraphcError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}",
                              (user_location(),))
        first = (int(axis_size), "axis_size", None)
    for leaf, axis, name in zip(leaves, axes, names):
        if axis is None:
            continue
        n = to_spec(leaf).shape[axis]
        if first is None:
            first = (n, name, axis)
        elif n != first[0]:
            where = f"{first[1]} is {first[0]}" if first[2] is None else \
                f"{first[1]} has {first[0]} (axis {first[2]})"
            raise GraphcError(f"vmap: {name} has batch size {n} (axis {axis}) but {where}; "
                              "every batched argument needs the same size", (user_location(),))
    if first is None:
        raise GraphcError("vmap: in_axes maps no argument (every one is None); batch at least "
                          "one, or give axis_size", (user_location(),))
    return first[0]


# ---- results --------------------------------------------------------------------------------
def _output_axes(out_axes, result) -> list:
    leaves, _, _ = flatten(result)
    if out_axes is None or isinstance(out_axes, int) and not isinstance(out_axes, bool):
        return [out_axes] * len(leaves)
    return [axis for axis, _, _ in _match(out_axes, result, "the result", "out_axes")]


def _place(value, is_batched, axis, size, k):
    """An output with its batch axis at `axis` (an unbatched one broadcast along it)."""
    if value is None:
        return None
    if axis is None:
        if is_batched:
            raise GraphcError(f"vmap: output {k} depends on the batch, but out_axes gives it "
                              "None", (user_location(),))
        return value
    if isinstance(value, np.ndarray) and value.dtype == float0:
        # grad(allow_int=True)'s gradient of an integer argument: float0 zeros, which no IR
        # dtype holds (batch_all's reshape refused them), stacked as numpy zeros, as JAX's
        ndim = value.ndim + 1
        if not -ndim <= axis < ndim:
            raise GraphcError(f"vmap: out_axes {axis} is out of range for output {k}, which "
                              f"has {ndim} axes", (user_location(),))
        shape = list(value.shape)
        shape.insert(axis % ndim, size)
        return np.zeros(tuple(shape), float0)
    if not is_batched:
        if not _is_array(value) or (isinstance(value, NUMPY_FLOAT_SCALARS)
                                    and not _lacked_float(value)):
            # (a numpy float scalar keeps its dtype, as a Python float is float64 here and
            # as np.stack of a loop's results: as a weak scalar it became float32)
            value = np.asarray(value)
        (value,) = batch_all([value], [False], size)
    ndim = F._ndim(value)
    if not -ndim <= axis < ndim:
        raise GraphcError(f"vmap: out_axes {axis} is out of range for output {k}, which has "
                          f"{ndim} axes", (user_location(),))
    return move_axis(value, 0, axis % ndim)


# ---- custom gradients under vmap ------------------------------------------------------------
@defbatch("custom_vjp")
def _custom_vjp_rule(operands, batched, size, **attrs):
    """A custom-gradient function on a batch: the same node on the batched operands, whose
    rule is the user's rule vmapped (so grad of a vmapped custom_vjp function runs it). An
    argument shared by every example stays one value (not broadcast): the forward nodes read
    it as it is, which is what autodiff's closure check (passes/autodiff.py) follows, and
    its cotangent is the sum of the examples'."""
    call = _custom_call(attrs)
    count = attrs["args"]
    arg_flags = list(batched[1:1 + count])

    def pullback(arguments, residuals, cotangent, needs):
        def one_example(*values):
            return list(call.pullback(list(values[:count]), list(values[count:-1]),
                                      values[-1], needs))
        axes = [0 if b else None for b in arg_flags] + [0] * (len(residuals) + 1)
        cts = vmap(one_example, in_axes=tuple(axes))(*arguments, *residuals, cotangent)
        return [F.sum(c, axis=0) if c is not None and not b else c
                for c, b in zip(cts, arg_flags)]

    batched_call = CustomCall(f"vmap({call.name})", pullback, call.replays)
    value, rest = operands[0], list(operands[1 + count:])
    return apply("custom_vjp", *batch_all([value], batched[:1], size), *operands[1:1 + count],
                 *batch_all(rest, batched[1 + count:], size),
                 **dict(attrs, rule=rule_ref(batched_call)))
