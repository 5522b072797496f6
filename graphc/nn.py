"""A layer set in PyTorch's style. Layers hold named Parameters (numpy arrays); called on
eager tensors they compute at once, called while tracing they add nodes, with each Parameter
becoming a named `param` input of the graph.

Initialisation follows PyTorch's defaults (nn.Linear's uniform(+-1/sqrt(fan_in)), nn.Embedding's
normal(0, 1), ones/zeros for the norms) unless a layer is given `std`; random draws come from
`rng` when given, else from this module's generator (`manual_seed(seed)` resets it, as
torch.manual_seed does).

Dropout needs no seed at the call site: its mask comes from the key of the surrounding
`rng_key(key)` block when there is one (what a training loop that must resume bit for bit
uses), else a fresh key per run: eagerly drawn from the module's generator, while tracing an
implicit int64 graph input named `dropout_key` that the compiled plan reads, fresh, on every
call (see `_AutoKey`).
"""
from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import math
import operator
import sys
import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.graph import current_graph, scope
from ir.ops import api as F
from ir.ops import attention as _attention
from ir.ops import precision
from ir.ops.registry import _STACK as _INTERPRETERS
from ir.ops.registry import (SymbolicValue, foreign_array_name, is_weak_scalar,
                             read_foreign_array, refuse_array_container,
                             register_layer_type)
from ir.ops.resize import interpolate
from ir.shown import shown
from ir.types import (INT_DTYPES, Dim, UnsupportedDtype, as_dtype, is_float, is_int, is_real,
                      unsupported_dtype)
from runtime.eager import (BUFFER_UPDATES, MODULE_PARAMETERS, Buffer, Parameter, Tensor,
                           bool_flag, collect_buffer_updates, held_again, note_place,
                           places_holding)
from . import hooks
from .transforms import APPLYING, Compiled

_GENERATOR = [np.random.default_rng(0)]


# Parameters their layer stores as the transpose of torch's layout (the attributes its class
# lists in _TORCH_TRANSPOSED: Linear's weight is (in, out)), by id: gc.nn.init computes their
# fans as (size(0), size(1)), so that kaiming_uniform_(linear.weight) is torch's for the layer
_TRANSPOSED = weakref.WeakValueDictionary()


def manual_seed(seed: int) -> None:
    """Reset the generator behind default initialisation and automatic dropout keys, and the
    count of eager dropout sites, so that what follows draws the same parameters and masks
    again (torch.manual_seed; also `gc.manual_seed`)."""
    if not is_int(seed):
        raise GraphcError(f"manual_seed: seed must be an int, got {shown(seed)}", (user_location(),))
    if not -2**63 <= seed < 2**64:  # torch's range: a signed or unsigned 64-bit int
        raise GraphcError(f"manual_seed: seed {seed} is out of range [-2**63, 2**64), as "
                          "torch's", (user_location(),))
    # a negative seed is torch's too: the same 64-bit pattern (numpy's default_rng refuses it)
    _GENERATOR[0] = np.random.default_rng(int(seed) % 2**64 if seed < 0 else int(seed))
    if F.EAGER_DROPOUT.salt_scope is None:
        # eager sites are numbered in call order and the number salts the mask: without
        # restarting it, the same key gave the sites of a rerun other masks. Inside an
        # rng_key block or a loop the count is that construct's, which goes on.
        F.EAGER_DROPOUT.restart()


def _rng(rng, what="rng"):
    """A layer's initialisation generator: the one given (a numpy Generator, or anything
    with its uniform and normal: a RandomState), else graphc.nn's (manual_seed)."""
    if rng is None:
        return _GENERATOR[0]
    if not (callable(getattr(rng, "uniform", None)) and callable(getattr(rng, "normal", None))):
        # an int there is most likely a torch argument in graphc's rng place
        # (Embedding(10, 4, 0): torch's padding_idx)
        raise GraphcError(f"{what} must be a numpy Generator (np.random.default_rng(seed)), "
                          f"got {shown(rng)}; a torch argument given by position may have landed "
                          "there: pass those by keyword", (user_location(),))
    return rng


def _layer_dtype(layer, dtype, parameters=True):
    """A layer constructor's dtype=, read as every dtype argument of graphc is (ir.types.as_dtype:
    a numpy dtype, its name or short name, or torch's: torch.float64): numpy's astype took it
    raw, so torch's was numpy's TypeError with no line of the user's. One line naming the
    layer where the IR cannot hold it, or where the layer has parameters (`parameters`) and
    it is no float dtype: torch refuses that too ("Only Tensors of floating point ... can
    require gradients"), which the Parameter said without the layer or dtype=. A layer
    without parameters (a norm layer with affine=False) takes it as torch's does: its
    computation runs in the input's dtype."""
    try:
        result = as_dtype(dtype)
    except UnsupportedDtype as exc:
        raise GraphcError(f"{layer}: dtype={dtype!r}: {exc.message.splitlines()[0]}",
                          (user_location(),)) from None
    if parameters and not is_float(result):
        raise GraphcError(f"{layer}: dtype={dtype!r}: the layer's parameters take a "
                          f"floating-point dtype, got {result} (as torch's)", (user_location(),))
    return result


def _check_dtypes(name, weight, **values):
    """Outside autocast a layer's inputs must have its weights' dtype, as torch's ("mat1 and
    mat2 must have the same dtype"): the matmul's own error named its internal shapes, not
    the layer or the input. Under autocast the op casts a float input (ir.ops.precision), not
    an int or bool one, nor float64, which meets float64 weights only. A list is refused
    whatever the weights' dtype: a float one read as float64 passed a float64 layer's check,
    to a raw TypeError inside the recurrent layers."""
    autocast = precision.STATE.dtype is not None and not precision.STATE.suspended
    for what, value in values.items():
        if value is None or is_weak_scalar(value):  # (a Python number: the op lifts it)
            continue
        _refuse_non_array_mask(name, what, value)  # a list has no dtype (nor .astype)
        given, dtype = F._dtype(value), F._dtype(weight)
        unsupported = unsupported_dtype(given)  # (complex: told to cast to the weights')
        if unsupported:
            raise UnsupportedDtype(f"{name}: {what}: {unsupported}", (user_location(),))
        if given == dtype:
            continue
        if autocast and is_float(given):
            # cast to the half dtype, but float64 is not (as torch.autocast): that meeting
            # is refused where the layer's matmul named itself
            why = precision.dtype_clash(given, dtype)
            if why:
                raise GraphcError(f"{name}: {what} is {given} but the layer's weights are "
                                  f"{dtype}: {why}; cast it with .astype({str(dtype)!r})",
                                  (user_location(),))
            continue
        # an int or bool input is cast, not given to a layer of its dtype (refused)
        advice = (f"cast it with .astype, or build the layer with dtype={str(given)!r}"
                  if is_float(given) else f"cast it with .astype({str(dtype)!r})")
        raise GraphcError(f"{name}: {what} is {given} but the layer's weights are "
                          f"{dtype}; {advice}", (user_location(),))


def _size(layer, what, value, least=0):
    """A layer's size argument (in_features, num_embeddings, ...) as an int: torch refuses a
    negative one (a tensor of negative dimension) and a float; zero is an empty layer."""
    if not is_int(value) or value < least:
        kind = "a non-negative" if least == 0 else "a positive"
        raise GraphcError(f"{layer}: {what} must be {kind} int, got {shown(value)}",
                          (user_location(),))
    return int(value)


class IncompatibleKeys(NamedTuple):
    """What Module.load_state_dict returns, as torch's: the model's names the state did not
    give, and the state's names the model does not have."""
    missing_keys: list
    unexpected_keys: list


def _state_array(name, value, dtype=None, who="load_state_dict"):
    """load_state_dict's array for `name` (cast to `dtype`: a copy), or one line saying why
    there is none (a ragged list, strings), after `who` (the method the user called)."""
    try:
        # a torch tensor as graphc reads one (requiring grad, bfloat16: np.asarray refused)
        foreign = not isinstance(value, (np.ndarray, np.generic, Tensor)) and \
            foreign_array_name(value) is not None
        array = read_foreign_array(value, f"{who}: {name}") if foreign \
            else np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise GraphcError(f"{who}: {name} is not an array: "
                          f"{str(exc).splitlines()[0]}", (user_location(),)) from None
    if array.dtype.kind == "c":  # (astype to the model's dtype dropped the imaginary part)
        raise UnsupportedDtype(f"{who}: {name}: {unsupported_dtype(array.dtype)}",
                               (user_location(),))
    try:
        return array if dtype is None else array.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise GraphcError(f"{who}: {name} ({array.dtype}) does not cast to the "
                          f"model's {dtype}: {str(exc).splitlines()[0]}",
                          (user_location(),)) from None


class _WithVersions(dict):
    """load_torch_state_dict's converted state, carrying the torch state_dict's _metadata."""


def _layer_version(versions, prefix) -> int:
    """A layer's version in a torch state_dict's _metadata ({prefix: {"version": n}}), 0
    where the state says none (a plain dict: every state graphc gives or reads)."""
    local = versions.get(prefix)
    version = local.get("version") if isinstance(local, dict) else None
    return version if isinstance(version, int) else 0


def _state_mapping(method, state, holding):
    """`state` of load_state_dict or load_torch_state_dict: a dict (anything with items()),
    else one line naming what was given (a list of arrays, a file's path)."""
    if not hasattr(state, "items"):
        raise GraphcError(f"{method}: state must be a dict name -> {holding}, got "
                          f"{type(state).__name__}", (user_location(),))


def _is_torch_tensor(value) -> bool:
    """A torch.Tensor (a Parameter, a user's subclass too), told by its class's name and
    module without importing torch; another library's array with __array__ or __dlpack__
    (h5py, JAX, TF) or a `detach` (paddle, whose Linear is (in, out) too) is none."""
    return any(k.__name__ == "Tensor" and k.__module__ == "torch" for k in type(value).__mro__)


def _same_array(a, b) -> bool:
    """Equal shapes and values, a NaN equal to a NaN (a tied weight's two copies)."""
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"
                                                 and b.dtype.kind in "fc")


def _refuse_transposed_tie(module, name, value, old, held):
    """module.name = a Parameter `value` held in those places already, over `old`. torch's
    weight tying `decoder.weight = encoder.weight` gives a Linear(dim, num_embeddings) an
    Embedding's (num_embeddings, dim) table, but graphc's Linear (and MultiheadAttention's
    in-projections) keeps its weight (in, out), the transpose: one array cannot be both, and
    a layout decided at the tie went wrong after deepcopy, a state_dict() load or an untie.
    Refused, naming forward's tie, where the shapes show torch's layout (the value is the
    transpose of the slot's array); a Linear(num_embeddings, dim) holds the table as graphc's
    (in, out) and shares it, and so does a square one, which no shape tells apart."""
    def transposed(m, a):
        return a in getattr(type(m), "_TORCH_TRANSPOSED", ())

    def table(m, a):
        return isinstance(m, Embedding) and a == "weight"

    def place(m, a):
        return f"{m._path}.{a}" if m._path else f"{type(m).__name__}.{a}"

    def graphc_layer(m):  # Linear for a user's subclass of it
        return next(c for c in type(m).__mro__ if "_TORCH_TRANSPOSED" in vars(c)).__name__

    shape, slot = np.shape(value.data), np.shape(getattr(old, "data", None))
    if shape == slot or shape[::-1] != slot:
        return
    for other, attr in held:
        if transposed(module, name) and table(other, attr):
            layer, weight, table_shape = module, name, shape
        elif table(module, name) and transposed(other, attr):
            layer, weight, table_shape = other, attr, slot
        else:
            continue
        raise GraphcError(f"{place(module, name)} = {place(other, attr)}: graphc's "
                          f"{graphc_layer(layer)} keeps its {weight} (in, out) = "
                          f"{table_shape[::-1]}, the transpose of the Embedding's "
                          f"(num_embeddings, dim) = {table_shape} table, so they cannot "
                          "share one Parameter; tie in forward: gc.linear(h, "
                          "self.encoder.weight, self.decoder_bias), torch's F.linear",
                          (user_location(),))


class ItemList(list):
    """What parameters(), buffers(), children() and modules() return: a list (len, indexing,
    +, as graphc's own code and its users' read them) that is also an iterator, so torch's
    generator idiom `next(model.parameters())` gives the first item, and each next() the
    one after it, as the generator would. `for p in ...` walks the whole list each time."""

    def __init__(self, items=()):
        super().__init__(items)
        self._taken = 0

    def __next__(self):
        if self._taken >= len(self):
            raise StopIteration
        self._taken += 1
        return self[self._taken - 1]


def _dotted(prefix: str) -> str:
    """named_parameters(prefix="model") names `model.weight`, as torch's."""
    return f"{prefix}." if prefix else ""


def _buffer_slot(module, name, old) -> bool:
    """Whether module.name is a buffer: a Buffer, an empty one (_is_empty_buffer), or a
    value standing in for one while a function is traced or applied with state= (an
    update, a state's array)."""
    if isinstance(old, Buffer) or _is_empty_buffer(module, name, old):
        return True
    key = (id(module), name)
    return any(c.written(module, name) or key in c.slots for c in BUFFER_UPDATES.stack)


def _is_empty_buffer(module, name, old) -> bool:
    """A buffer that is None (registered so, or a buffer set to None), as torch's: an array
    set later fills it (a loss's weight)."""
    return old is None and name in vars(module).get("_empty_buffers", ())


def _no_list_of_values(module, name, value):
    """A buffer's new value (register_buffer's, or a set of the attribute) that is a list or
    tuple holding tensors or traced values: refused in the loss constructors' line naming
    gc.stack (_weights_as_buffers), before anything changes. np.asarray read an eager
    tensor's numbers, its gradient dropped, and a traced one not at all; a list of numbers
    is an array. (One check for both ways into a buffer: register_buffer still read the
    tensors' numbers after the set refused them.)"""
    if isinstance(value, (list, tuple)):
        F._no_list(type(module).__name__, name, value, numbers_too=False)


class AttributeExists(GraphcError, KeyError):
    """register_buffer, register_parameter or add_module given the name of another kind of
    attribute the module has (a Parameter, a child, an empty one of those, a setting), as
    torch's KeyError "attribute 'x' already exists"; shown as one line, not KeyError's
    quoted repr."""

    __str__ = Exception.__str__


class BufferTypeError(GraphcError, TypeError):
    """A buffer set to a value that is no array, tensor or list (a Python number), as
    torch's TypeError."""


def _refuse_non_tensor_buffer(module, name, value, where=None, lists=True):
    """`module.name = value` over a buffer: `value` must be an array (numpy's, graphc's
    Tensor, a traced value, another library's tensor), as torch's (TypeError "cannot assign
    'int' as buffer 'x'"). A Python number or a numpy scalar (np.float32(1), which torch
    refuses alike) became a new 0-d Buffer (`bn.running_var = 1`: an int64 0-d one),
    silently, and eval() failed in the op's words. A list of numbers is an array, as the
    loss constructors' weights take one (_buffer_list); register_buffer (`where` names it)
    passes lists=False: it takes an array or None only, as torch's, where a number, a list
    or a string became a Buffer (an int64 0-d one for 1) or failed in a dtype's words."""
    if isinstance(value, (np.ndarray, Tensor, SymbolicValue)) or (
            lists and isinstance(value, (list, tuple))) or \
            foreign_array_name(value) is not None:
        return  # (a list of numbers is an array, as at construction: _buffer_list)
    what = f"a numpy {value.dtype} scalar" if isinstance(value, np.generic) else a_type(value)
    raise BufferTypeError(f"{where or type(module).__name__}: cannot assign {what} as "
                          f"buffer {name!r} (an array, a gc.nn.Buffer or None expected, as "
                          "torch's); give np.asarray(value, dtype) for an array of numbers",
                          (user_location(),))


def _buffer_list(module, name, value, old):
    """A list of numbers set over a buffer: an array, in the dtype of the Buffer it replaces
    where the numbers cast to it as numpy's same_kind (`bn.running_mean = [0, 0, 0]` a
    float32 one, not an int64 one the next update of the running statistics failed on deep
    inside), else one line naming the buffer (a ragged list, strings)."""
    where = f"{type(module).__name__}.{name} = ..."
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise GraphcError(f"{where}: the buffer's list is not an array of numbers: "
                          f"{str(exc).splitlines()[0]}", (user_location(),)) from None
    if array.dtype.kind not in "biuf":
        raise GraphcError(f"{where}: the buffer's list is not an array of numbers (it "
                          f"holds {array.dtype})", (user_location(),))
    if isinstance(old, Buffer) and np.can_cast(array.dtype, old.data.dtype, "same_kind"):
        array = array.astype(old.data.dtype)
    return array


def _mark_empty_buffer(module, name, empty: bool, table="_empty_buffers"):
    """Record (or forget) module.name as an empty buffer, or, with table="_empty_parameters"
    or "_empty_children", as torch's empty parameter or child (register_parameter(name,
    None), a Parameter or child set to None), whose place a new one takes (_moves_to_end)."""
    names = set(vars(module).get(table, ()))
    (names.add if empty else names.discard)(name)
    object.__setattr__(module, table, frozenset(names))


def _moves_to_end(module, name, old, value, child) -> bool:
    """Whether `module.name = value` moves the attribute to the end of the module's own
    (the order named_parameters, state_dict and named_children walk), as torch appends a
    Parameter, Buffer or child to its kind's dict unless the name is there already, as one
    of that kind or an empty one. A plain attribute replaced (a None placeholder set early
    in __init__, `self.bias = None`, given a Parameter after the weight) kept its earlier
    place: parameters() and state_dict() came in another order than torch's."""
    if name not in vars(module):
        return False
    if isinstance(value, Parameter):
        return not (isinstance(old, Parameter) or old is None and name in
                    vars(module).get("_empty_parameters", ()))
    if isinstance(value, Buffer):
        return not (isinstance(old, Buffer) or _is_empty_buffer(module, name, old))
    if child is not None:
        return not (_submodule(module, name, old) is not None or old is None and name in
                    vars(module).get("_empty_children", ()))
    return False


def _frozen(param) -> bool:
    """Whether a Parameter is frozen (requires_grad False); a trace guards the flag, so that
    freezing or unfreezing it between calls (gradual unfreezing) traces again."""
    flag = getattr(param, "requires_grad", True)
    graph = current_graph()
    if graph is not None and isinstance(param, Parameter):
        graph.guard(param, "requires_grad", flag)
    return not flag


class _TrainingFlag:
    """Module.training, True until train(False) / eval(). A read inside a trace is a guard,
    as Module._setting's, for a user's own layer too (`y * 2 if self.training else y`): a
    plan traced in training mode is not reused after eval() (torch.compile guards it too).
    False while gc.Trainer evaluates (_evaluating), whatever the mode: its evaluation runs
    the model as after model.eval(), as Lightning's validation does, so a user's own layer
    (nanoGPT's `dropout if self.training else 0.0`) sees it too. The guard stays on the mode
    the user set: that is what a plan's guards read before each call, outside the
    evaluation (a guard on the False returned would fail at every call)."""

    def __get__(self, module, owner=None):
        if module is None:
            return True
        value = vars(module).get("training", True)
        graph = current_graph()
        if graph is not None:
            graph.guard(module, "training", value)
        return value and not _EVALUATING.depth

    def __set__(self, module, value):
        vars(module)["training"] = value


# A plain setting of a module (a number, bool, string, enum, None, or a tuple of them) that
# a traced forward reads is a guard, as torch.compile guards the attributes it reads: a
# layer of one's own reading `self.temperature` is traced again after the user sets
# another, where the plan kept the old one. Reads are seen through Module.__getattribute__,
# which is installed only while a trace runs a module's forward (_SettingReads.depth), so
# eager attribute reads cost nothing more. Private names (`_path`) and `training` (its own
# guard, _TrainingFlag) are not.
_SETTING_TYPES = (bool, int, float, str, np.number, np.bool_, enum.Enum)


def _is_setting(value) -> bool:
    """A value a setting guard compares: a number, bool, string, enum or None, or a tuple of
    them (a kernel size). NaN is none: it equals nothing, so its guard would never hold."""
    if isinstance(value, tuple):
        return all(map(_is_setting, value))
    return isinstance(value, _SETTING_TYPES) and value == value


class _SettingReads:
    depth = 0  # traced forwards running


def _guarded_getattribute(module, name):
    value = object.__getattribute__(module, name)
    if name[0] != "_" and name != "training":
        if value is None:  # (whether it is None: a Tensor set there later compares as one)
            graph = current_graph()
            if graph is not None:
                _guard_none(module, graph, name, True)
        elif _is_setting(value):
            graph = current_graph()
            if graph is not None:
                graph.guard(module, name, value)
    return value


@contextlib.contextmanager
def guarding_setting_reads(obj):
    """A trace's reads of Modules' settings guarded (_guarded_getattribute) within, where
    `obj` is a Module: its traced forward's, and a compiled method's whose self it is
    (`@gc.compile def forward(self, x)`, where `self.scale` read no guard and a plan kept
    the old value after the user set another)."""
    if not isinstance(obj, Module):
        yield
        return
    if not _SettingReads.depth:
        Module.__getattribute__ = _guarded_getattribute
    _SettingReads.depth += 1
    try:
        yield
    finally:
        _SettingReads.depth -= 1
        if not _SettingReads.depth:
            del Module.__getattribute__


def _guard_none(module, graph, name, is_none: bool) -> None:
    """Guard whether module.name is None (through the module's _IsNone view: Graph.guard
    keeps one guard per object and attribute)."""
    if "_none_view" not in vars(module):
        object.__setattr__(module, "_none_view", _IsNone(module))
    graph.guard(vars(module)["_none_view"], name, is_none)


def zero_grads(params, set_to_none: bool) -> None:
    """Module's and a bound optimiser's zero_grad: each .grad None, or (set_to_none=False)
    zeroed in place, as torch's `grad.zero_()`: an array held elsewhere (a reference kept
    for gradient accumulation) sees the zeros. A .grad that is not such an array of the
    parameter's dtype (a Tensor from create_graph, a user's list) becomes a new zero one."""
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        elif isinstance(p.grad, np.ndarray) and p.grad.dtype == p.data.dtype and \
                p.grad.flags.writeable:
            p.grad[...] = 0
        else:
            p.grad = np.zeros_like(np.asarray(p.grad, p.data.dtype))


def _keep_inplace(layer, inplace):
    """torch's `inplace=` of an activation or dropout layer, kept as its `inplace` (as
    torch's layer keeps it) and without effect: graphc's ops never overwrite their input
    (a traced value has no storage of its own, an eager op's result is a new array), so
    the result is the same either way, and the input is still there for a gradient that
    needs it. True or False, as the functions' (F.takes_inplace)."""
    F._flag(type(layer).__name__, "inplace", inplace)
    object.__setattr__(layer, "inplace", inplace)


def _with_inplace(layer, settings: str) -> str:
    """A layer's extra_repr `settings` and, when set, torch's `inplace=True` (torch's
    activations show it only then)."""
    if not getattr(layer, "inplace", False):
        return settings
    return f"{settings}, inplace=True" if settings else "inplace=True"


def _as_child(value, owner):
    """value, assigned as an attribute of module `owner`, as a child module: a Module, or
    the Module a gc.compile'd function is (`self.body = gc.compile(layer)`, as torch users
    write `torch.compile(layer)`), whose parameters and buffers are the parent's under the
    attribute's name (`body.weight`, as uncompiled; torch's state_dict says
    `body._orig_mod.weight`); otherwise None. A compiled `owner` itself, or a compiled
    module above it (`m.fast = gc.compile(m)`), is a plain attribute: as a child it would
    make the tree a cycle, and every walk over it (parameters(), eval()) endless. Decided
    once, at the assignment (Module.__setattr__ notes such views in `_compiled_views`), so
    that the walks neither search the tree again nor drop the edge that came first."""
    if isinstance(value, Module):
        return value
    module = _compiled_module(value)
    return module if module is not None and not _reaches(module, owner) else None


# The attributes graphc keeps on a module for its own bookkeeping, some set only once needed
# (`vars(module).get(...)` reads them), which a child, a parameter, a buffer or a container
# key of that name would replace (a class's attributes, `training`, `_path`, are refused as
# any attribute the module has)
_OWN_ATTRIBUTES = frozenset({"_compiled_views", "_non_persistent", "_empty_buffers",
                             "_empty_parameters", "_empty_children",
                             "_none_view", "_keys", "_count", *hooks.TABLES})


def _refuse_own_attribute(where, name):
    """A one-line GraphcError if `name`, given to `where`, is one of _OWN_ATTRIBUTES."""
    if name in _OWN_ATTRIBUTES:
        raise GraphcError(f"{where}: {name!r} is a name graphc keeps on modules for its own "
                          "bookkeeping; choose another", (user_location(),))


def _refuse_as_child(what, value):
    """The GraphcError for `value`, which _as_child did not take: `what` (the place, "item
    0", "'key'") is not a Module, or is a compiled one that holds the container (a cycle)."""
    why = "a gc.compile'd module that holds this one: a child there would make a cycle" \
        if _compiled_module(value) is not None else f"{a_type(value)}, not a Module"
    raise GraphcError(f"{what} is {why}", (user_location(),))


def _submodule(owner, name, value):
    """The child module attribute `name` (holding `value`) of `owner` is, or None: as
    _as_child decided when it was assigned."""
    if isinstance(value, Module):
        return value
    return None if name in vars(owner).get("_compiled_views", ()) else \
        _compiled_module(value)


def _shown_child(owner, name, value):
    """What print(owner) shows for attribute `name` (holding `value`): the child, a
    compiled one as its Compiled (`Compiled(Linear(...))`, as torch prints a compiled
    child inside its OptimizedModule), or None where it is no child."""
    return None if _submodule(owner, name, value) is None else value


def _compiled_module(value):
    """The Module a gc.compile'd function `value` is, or None."""
    if isinstance(value, Compiled) and isinstance(value.__wrapped__, Module):
        return value.__wrapped__
    return None


def _reaches(module, target) -> bool:
    """Whether `target` is `module` or a module below it (through compiled ones too)."""
    seen, stack = set(), [module]
    while stack:
        m = stack.pop()
        if m is target:
            return True
        if id(m) not in seen:
            seen.add(id(m))
            for value in vars(m).values():
                if isinstance(value, Compiled):
                    value = value.__wrapped__
                if isinstance(value, Module):
                    stack.append(value)
    return False


class _ModuleChildren:
    """How many times a child (or a tensor attribute) has been added to, or replaced in, a
    module a trace has gone through (_TRACED). Every module call in a trace guards it:
    a plan whose parameters are all traced inputs (model.apply's, gc.Trainer's) or a
    parameter-free model's reads nothing else that would tell it that its modules changed.
    Its own count, not MODULE_PARAMETERS': that one counts every tensor attribute replaced
    anywhere (`self.last = x` in an eager forward), which must not retrace these plans."""

    changed = 0

    def describe_change(self) -> str:  # (graphc.transforms' recompile message)
        return "a submodule was added to or replaced in a module the trace went through"


MODULE_CHILDREN = _ModuleChildren()


def _children_changed(module, removed=()) -> None:
    """`module`'s children are about to change (a container's edit; __setattr__ counts one
    assigned): plans traced through it are stale, and so are those that read a `removed`
    module's tensors without calling a module (`x @ md["a"].weight`): where a trace has read
    one of them (MODULE_PARAMETERS.lifted), not for a queue of layers no trace touched."""
    if any(MODULE_PARAMETERS.was_lifted(p) for m in removed
           for _, p in m._all_parameters(kind=(Parameter, Buffer))):
        MODULE_PARAMETERS.replaced += 1
    if _traced_through(module):
        MODULE_CHILDREN.changed += 1


def _traced_through(module) -> bool:
    """Whether a trace went through `module` or one of its children (a container that a
    traced function iterates calls no module but its items). One no trace has reached (a
    module being built) has no plan to make stale."""
    return _reached_by_trace(module) or any(
        _reached_by_trace(child) for child in (_submodule(module, name, value)
                                               for name, value in vars(module).items())
        if child is not None)


class _Holding:
    """A container setting its items again (ModuleList._hold): Module.__setattr__ leaves the
    count of changes to the container's edit, which counts once (_children_changed), where
    each item's own check walked the container's children: appending n items one by one
    took time growing as n cubed."""
    depth = 0


# whether any module holds a gc.compile'd child (Module.apply swaps those only)
_COMPILED_CHILDREN = [False]


# The modules a trace has called, and every module below them (kept so as new children join
# them), by id: {id: weakref to the module}. Adding a child or a Parameter to one of these
# makes traced plans stale, while building a new module (whose __init__ adds its own) leaves
# them alone. (Not a WeakSet: a module need not be hashable, a dataclass one is not.)
_TRACED = {}


def _reached_by_trace(module) -> bool:
    ref = _TRACED.get(id(module))
    return ref is not None and ref() is module


def _note_traced(module) -> None:
    """Put `module` and the modules below it in _TRACED."""
    stack = [module]
    while stack:
        m = stack.pop()
        if not _reached_by_trace(m):
            key = id(m)
            _TRACED[key] = weakref.ref(m, lambda _, key=key: _TRACED.pop(key, None))
            for name, value in vars(m).items():
                child = _submodule(m, name, value)
                if child is not None:
                    stack.append(child)


def _root_of(module):
    """The module at the top of the tree `module` is in, following the places each module
    was set in (note_place) while they hold it still; `module` itself if no module does.
    A place whose holder's path and attribute spell the module's own path (_path, its first
    place) is followed first, and a top whose _path is "" (a model's root) is preferred: a
    replaced container (`old = m.layers; m.layers = ModuleList(list(old)[::-1])`) holds its
    items still, under the same path, but nothing holds it, and its tree is not the model's."""
    first, seen, stack = None, set(), [module]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        places = places_holding(m)
        if not places:
            if not m._path:
                return m
            first = m if first is None else first  # (a root that was a child once)
            continue
        own = [holder for holder, attr in places if _dotted(holder._path) + attr == m._path]
        # (popped last to first: the places of its own path, in the order put, go first)
        stack.extend(reversed(own + [h for h, _ in places if not any(h is o for o in own)]))
    return module if first is None else first


def _keeps_its_place(owner, path):
    """keeps(module) for owner._set_path: whether `module`, an item a container holds as a
    slice does (its _view), is held still at its own place (module._path) in the tree that
    `owner`, whose child at `path` is being set, is in; not where that place is `path` or
    below it, whose old value the assignment replaces. The root is looked for once, when a
    container holds such an item."""
    root = []

    def keeps(module):
        own = module._path
        if not own or own == path or own.startswith(path + "."):
            return False
        if not root:
            root.append(_root_of(owner))
        found = root[0]
        top = found._path  # (a root that was a child once still has that path)
        if top and not own.startswith(top + "."):
            return False
        for part in own[len(top) + 1 if top else 0:].split("."):
            found = _submodule(found, part, vars(found).get(part))
            if found is None:
                return False
        return found is module
    return keeps


def _named_at(owner, keys, modules) -> dict:
    """{id: item} of the modules, Parameters and Buffers in the subtrees of `modules`, which
    owner's attributes `keys` held, whose names are those places' (the place or below it):
    the names that go stale when those places stop holding them (_name_by_first_places)."""
    prefixes = [_dotted(owner._path) + key for key in keys]

    def under(name):
        return any(name == p or name.startswith(p + ".") for p in prefixes)
    found, seen, stack = {}, set(), [m for m in modules if m is not None]
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        if under(module._path):
            found[id(module)] = module
        for name, value in vars(module).items():
            if isinstance(value, (Parameter, Buffer)):
                if value.name and under(value.name):
                    found[id(value)] = value
            elif _submodule(module, name, value) is not None:
                stack.append(_submodule(module, name, value))
    # none of them held at a second place (the common replacement: model.head = Linear(..)):
    # none takes another name, so the tree is not walked (a walk per replacement made
    # replacing a child in each of 48 blocks 24x slower)
    return found if any(x in _HELD_AGAIN or held_again(x) for x in found.values()) else {}


def _below(module) -> dict:
    """{id: item} of `module` and the modules, Parameters and Buffers below it."""
    found, stack = {}, [module]
    while stack:
        m = stack.pop()
        if id(m) not in found:
            found[id(m)] = m
            for name, value in vars(m).items():
                if isinstance(value, (Parameter, Buffer)):
                    found[id(value)] = value
                elif _submodule(m, name, value) is not None:
                    stack.append(_submodule(m, name, value))
    return found


# Modules a container's view holds (ModuleList(list(model.layers)), a slice): held at a
# second place, which note_place does not record (a view's items are set without setattr)
_HELD_AGAIN = weakref.WeakSet()


def _name_by_first_places(owner, stale) -> None:
    """Name each of `stale` (_named_at's, whose place `owner` no longer holds them at) by
    its first place in the tree `owner` is in, in named_modules' order, as torch's
    named_parameters names it once that place is gone (m.extra = ModuleList(list(m.layers))
    then `del m.layers`, or pruning m.layers: extra.1.running_mean, where the names stayed
    layers.1.*); one the tree holds nowhere else keeps its name."""
    if not stale:
        return
    root = _root_of(owner)
    # a stack, in the recursion's order, not a recursive closure: one refers to itself,
    # a cycle keeping `stale` (and a replaced container in it) alive until the cyclic GC
    seen, stack = set(), [(root, root._path)]
    while stack:
        module, path = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        if id(module) in stale:
            object.__setattr__(module, "_path", path)
        children = []
        for name, value in vars(module).items():
            if isinstance(value, (Parameter, Buffer)) and id(value) not in seen:
                seen.add(id(value))
                if id(value) in stale:
                    value.name = _dotted(path) + name
            elif _submodule(module, name, value) is not None:
                children.append((_submodule(module, name, value), _dotted(path) + name))
        stack.extend(reversed(children))


def _rename_if_held_elsewhere(owner, old, value) -> None:
    """A Parameter or Buffer `old` that an attribute of `owner` held, and holds no more
    (replaced by `value`, set to None or deleted), takes the name of its first place left in
    the tree where it is held elsewhere (tied: `b.weight = a.weight`, then a new `a.weight`
    is b.weight, as torch's named_parameters then names it), not the name of the place it
    left, which traces and a Trainer's checkpoints go on naming it by."""
    if isinstance(old, (Parameter, Buffer)) and old is not value and places_holding(old):
        _name_by_first_places(owner, {id(old): old})


def _place_of(root, name):
    """The (module, attribute) that the dotted tensor place `name` (a Parameter's or
    Buffer's .name) spells from `root`, through each module's first place (its _path); None
    where it is not one of that tree's places."""
    top = root._path  # (a root that was a child once still has that path)
    if top:
        if not name.startswith(top + "."):
            return None
        name = name[len(top) + 1:]
    *parts, attr = name.split(".")
    module = root
    for part in parts:
        module = _submodule(module, part, vars(module).get(part))
        if module is None:
            return None
    if parts and module._path != _dotted(top) + ".".join(parts):
        return None  # (reached at a place that is not its first)
    return module, attr


def _comes_first(root, name, other) -> bool:
    """Whether the tensor place `name` comes before `other` (both _place_of's, not equal)
    in named_parameters' order from `root` (_parameter_owners': a module's own tensors in
    its attributes' order, then its children's), read down their common path only."""
    a, b = name.split("."), other.split(".")
    module, i = root, len(root._path.split(".")) if root._path else 0
    while a[i] == b[i]:
        module = _submodule(module, a[i], vars(module).get(a[i]))
        i += 1
    if (len(a) == i + 1) != (len(b) == i + 1):  # a tensor of the module before its children
        return len(a) == i + 1
    keys = list(vars(module))
    return keys.index(a[i]) < keys.index(b[i])


def _above(module, path):
    """The module at the dotted `path` (a prefix of module._path) above `module`, reached
    up the places that spell each module's own path (its first place); None where none does
    (a root that was a child once, named still by that place). An item of a list replaced by
    another of its items (`m.layers = ModuleList(list(m.layers))`, or pruned: [old[0],
    old[2]]) is held under the same path by both: the old list, which nothing holds (a
    variable keeps it alive), is left for the other, wherever it was put first."""
    if module._path == path:
        return module
    unheld = None
    for holder, attr in places_holding(module):
        if _dotted(holder._path) + attr == module._path:
            found = _above(holder, path)
            if found is not None and (not found._path or places_holding(found)):
                return found
            if unheld is None:  # (a root that was a child once, if none is held)
                unheld = found
    return unheld


def _name_tied(owner, attr, value) -> None:
    """Name `value`, a Parameter or Buffer just set at owner.attr that another place holds
    too (a tie), by the first of its places in named_parameters' order, as torch's names it:
    this new one where it comes before the place value.name spells (`m.a.weight =
    m.b.weight` is a.weight), which it keeps otherwise (`later.weight = earlier.weight`,
    ALBERT's sharing). The two places are compared from the module where their paths part,
    reached up from `owner` (not from the root, which made tying 47 blocks to block 0 several
    times slower), without a walk of the tree. A name that is not a place of this tree
    holding value (another model's tensor, `b.dec.weight = a.enc.weight`, whether or not b
    has an `enc` too) is kept, as before."""
    new = _dotted(owner._path) + attr
    if not value.name or value.name == new:
        return
    mine, theirs = owner._path.split(".") if owner._path else [], value.name.split(".")[:-1]
    common = 0
    while common < min(len(mine), len(theirs)) and mine[common] == theirs[common]:
        common += 1
    parting = _above(owner, ".".join(mine[:common]))
    old = None if parting is None else _place_of(parting, value.name)
    if old is not None and vars(old[0]).get(old[1]) is value \
            and not _comes_first(parting, value.name, new):
        value.name = new


def place_names(tensor) -> list:
    """The dotted names of the places holding the Parameter or Buffer `tensor` now, each
    spelled from its module's first place: a tied one's every name (its own .name one)."""
    return [_dotted(module._path) + attr for module, attr in places_holding(tensor)]


def _submodule_at(module, path, asked):
    """The submodule of `module` at the dotted `path` ("": itself); AttributeError (torch's)
    naming the part that is not one, in the words of the call `asked`."""
    for part in path.split(".") if path else ():
        child = _submodule(module, part, vars(module).get(part))
        if child is None:
            _no_such(asked, module, part, "Module")
        module = child
    return module


def _no_such(asked, module, name, kind):
    what = f"is not a {kind}" if hasattr(module, name) else "does not exist"
    raise AttributeError(f"{asked}: {type(module).__name__}'s {name!r} {what}")


def _refusing_unknown_keywords(cls, method="__init__"):
    """cls.__init__ (or its classmethod `method`, Embedding.from_pretrained) refusing a
    keyword it does not take in one GraphcError line naming the layer and the keyword (a
    torch keyword graphc's layer lacks, `LSTM(proj_size=...)`, `device=`, or a typo), where
    Python's TypeError named an internal function; None if it takes **kwargs."""
    given = cls.__dict__[method]
    init = given.__func__ if isinstance(given, classmethod) else given
    parameters = list(inspect.signature(init).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    known = frozenset(named)
    takes = [name for name in named if not name.startswith("_")]  # (graphc's own: _weight)
    suffix = "" if method == "__init__" else f".{method}"
    positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    # a loss module's positional arguments are counted (its settings after them are keywords)
    counted = "reduction" in known and not any(p.kind is p.VAR_POSITIONAL for p in parameters)

    @functools.wraps(init)
    def checked(self, *args, **kwargs):  # (self is cls for a classmethod)
        if counted and len(args) > len(positional):
            layer = _graphc_layer_name(self if isinstance(self, type) else type(self))
            raise GraphcError(_keyword_only_settings(
                f"{layer}{suffix}", positional, [n for n in takes if n not in positional],
                len(args)), (user_location(),))
        if kwargs and not known.issuperset(kwargs):
            unknown = next(name for name in kwargs if name not in known)
            layer = _graphc_layer_name(self if isinstance(self, type) else type(self))
            legacy = _legacy_reduction(kwargs) if "reduction" in known and \
                unknown in ("size_average", "reduce") and \
                layer.rpartition(".")[2] in _TORCH_LEGACY_REDUCTION else None
            raise GraphcError(f"{layer}{suffix}: unknown keyword argument {unknown!r} "
                              f"({legacy or 'it takes ' + (', '.join(takes) or 'none')})",
                              (user_location(),))
        return init(self, *args, **kwargs)
    return classmethod(checked) if isinstance(given, classmethod) else checked


# torch's loss modules taking the deprecated size_average and reduce (its HuberLoss,
# GaussianNLLLoss, CTCLoss and TripletMarginWithDistanceLoss take neither: a TypeError there)
_TORCH_LEGACY_REDUCTION = frozenset((
    "BCELoss", "BCEWithLogitsLoss", "CosineEmbeddingLoss", "CrossEntropyLoss",
    "HingeEmbeddingLoss", "KLDivLoss", "L1Loss", "MSELoss", "MarginRankingLoss",
    "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss",
    "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss", "TripletMarginLoss"))


def _keyword_only_settings(layer, positional, keywords, count) -> str:
    """The line for a loss module given `count` positional arguments, more than its
    `positional` ones (Python's TypeError said 'takes 1 positional argument but 2 were
    given'): its other settings are keywords, as in torch (GaussianNLLLoss), or because
    torch's positions there hold its deprecated size_average and reduce, which graphc does
    not take (_TORCH_LEGACY_REDUCTION: torch's L1Loss('sum') is size_average='sum', a mean,
    which a positional reduction would have summed)."""
    takes = f"takes {', '.join(positional)} positionally" if positional else \
        "takes no positional arguments"
    line = f"{layer}: {takes}, got {count}"
    if not keywords:
        return line
    line += f": {', '.join(keywords)} {'is' if len(keywords) == 1 else 'are'} keyword-only"
    if layer.rpartition(".")[2] in _TORCH_LEGACY_REDUCTION:
        return (f"{line} in graphc, since torch's positional arguments there include its "
                f"deprecated size_average and reduce: pass each by keyword")
    return f"{line}, as in torch"


def _legacy_reduction(kwargs):
    """For a loss module given torch's deprecated size_average and/or reduce, which graphc's
    do not take, the words naming the reduction they mean in torch
    (_Reduction.legacy_get_string: None is True; reduce=False is 'none' whatever
    size_average says), which reads them only when one is not None: both None leave the
    reduction given (torch's default 'mean')."""
    given = ", ".join(f"{k}={kwargs[k]!r}" for k in ("size_average", "reduce") if k in kwargs)
    size_average, reduce = (True if kwargs.get(k) is None else kwargs[k]
                            for k in ("size_average", "reduce"))
    reduction = "none" if not reduce else "mean" if size_average else "sum"
    if kwargs.get("size_average") is None and kwargs.get("reduce") is None:
        reduction = kwargs.get("reduction", "mean")
    return (f"torch's deprecated size_average and reduce are not taken: {given} is "
            f"reduction={shown(reduction)}")


def _graphc_layer_name(cls) -> str:
    """The public name of graphc's class that cls is or derives from, as a user spells it
    (gc.nn.Linear for a user's subclass of it; AvgPool1d, not the _AvgPool whose __init__
    it runs; graphc.models.GPT outside gc.nn)."""
    layer = next(c for c in cls.__mro__
                 if c.__module__.startswith("graphc.") and not c.__name__.startswith("_"))
    if getattr(sys.modules["graphc.nn"], layer.__name__, None) is layer:
        return f"gc.nn.{layer.__name__}"
    package = layer.__module__.rpartition(".")[0]  # graphc.models.GPT, where it is exported
    module = package if getattr(sys.modules.get(package), layer.__name__, None) is layer \
        else layer.__module__
    return f"{module}.{layer.__name__}"


# torch's device names: the strings Module.to takes for a device (graphc has the CPU alone)
_DEVICE_TYPES = {"cpu", "cuda", "mps", "xpu", "xla", "meta", "hpu", "npu", "ipu", "mtia"}


def _is_device(value) -> bool:
    """Whether a positional argument of Module.to names a device: a torch.device, or a
    string of a device type ('cuda', 'cuda:0')."""
    if type(value).__name__ == "device":
        return True
    return isinstance(value, str) and value.split(":")[0] in _DEVICE_TYPES


def _refuse_device(method, device) -> None:
    """One line where `device` (of Module.to or .cuda) is not the CPU, graphc's only one."""
    if device is not None and str(device).split(":")[0] != "cpu":
        raise GraphcError(f"{method}: graphc runs on the CPU (numpy arrays); device "
                          f"{shown(device)} is not available (give 'cpu', or a dtype)",
                          (user_location(),))


def _to_dtype(args, dtype=None, device=None, method="to"):
    """The dtype (or None) of torch's `.to(...)` arguments: `to(dtype)`, `to(device)`,
    `to(device, dtype)`, `to(tensor)` (its dtype and device; an array's too), torch's
    positional non_blocking after them (no effect), or keywords; a device that is not the
    CPU is refused in one line (Module.to, PackedSequence.to)."""
    for arg in args:  # (torch's positional forms: a device, a dtype, or both)
        if _is_device(arg):
            device = arg
        elif isinstance(arg, (bool, np.bool_)):
            pass  # non_blocking
        elif dtype is None and not isinstance(arg, type) and hasattr(arg, "dtype") \
                and hasattr(arg, "shape"):
            # a tensor (torch's, graphc's) or an array: its dtype, and its device
            dtype, device = arg.dtype, getattr(arg, "device", device)
        elif dtype is None:
            dtype = arg
        else:
            raise GraphcError(f"{method}: give one dtype and at most one device, got "
                              f"{len(args)} arguments", (user_location(),))
    _refuse_device(method, device)
    return dtype


class MissingForward(GraphcError, NotImplementedError):
    """A Module with no forward of its own was called (torch's NotImplementedError)."""


class Module:
    _path = ""  # the dotted name from the root module, used as the scope of its nodes

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # graphc's own layers only: a user's Module keeps Python's TypeError, as torch's
        if cls.__module__.startswith("graphc."):
            # (from_pretrained: Embedding's, whose device= torch users pass as to a layer)
            for method in ("__init__", "from_pretrained"):
                if method in cls.__dict__:
                    checked = _refusing_unknown_keywords(cls, method)
                    if checked is not None:
                        setattr(cls, method, checked)

    def __setattr__(self, name, value):
        if _INTERPRETERS.stack:
            graph = current_graph()
            if graph is not None:  # the traced function sets the attribute (a loss sets a
                # setting per mode, a forward bumps a counter or builds a layer lazily): what
                # the plan reads afterwards, not a guard. Inside a forward a read before it
                # is none either (the counter's would hold for one call only); a read the
                # function made before, outside, stays one (the plan used that value)
                forget = bool(_SettingReads.depth)
                graph.set_while_tracing(self, name, forget_read=forget)
                if "_none_view" in vars(self):
                    graph.set_while_tracing(vars(self)["_none_view"], name, forget_read=forget)
        old = vars(self).get(name)
        child = _as_child(value, self)
        if child is not None or isinstance(value, (Parameter, Buffer)):
            _refuse_own_attribute(f"{type(self).__name__}.{name} = ...", name)
        if value is not None and not isinstance(value, Parameter) and \
                (isinstance(old, Parameter) or isinstance(old, Module) and child is None):
            # as torch's: a plain attribute (or, over a parameter, a module) there would drop
            # the parameter (or the child's) from named_parameters and state_dict, and
            # training would leave it alone
            what, expected = (("parameter", "Parameter") if isinstance(old, Parameter) else
                              ("child module", "Module"))
            raise GraphcError(f"{type(self).__name__}: cannot assign {a_type(value)} "
                              f"as {what} {name!r} (gc.nn.{expected} or None expected, as "
                              "torch's)", (user_location(),))
        filling = _is_empty_buffer(self, name, old)
        if value is not None and not isinstance(value, (Parameter, Buffer, Module)) \
                and _buffer_slot(self, name, old):
            _no_list_of_values(self, name, value)  # (tensors in a list: gc.stack's line)
            _refuse_non_tensor_buffer(self, name, value)
            if isinstance(value, (list, tuple)):
                value = _buffer_list(self, name, value, old)
        if value is None and isinstance(old, Buffer):  # torch keeps it, empty
            _mark_empty_buffer(self, name, True)
        elif value is None and isinstance(old, Parameter):  # (so do these: _moves_to_end)
            _mark_empty_buffer(self, name, True, "_empty_parameters")
        elif value is None and _submodule(self, name, old) is not None:
            _mark_empty_buffer(self, name, True, "_empty_children")
        if filling and isinstance(value, SymbolicValue):
            pass  # a traced value for an empty buffer: an attribute for that trace, as before
        elif value is not None and not isinstance(value, (Parameter, Buffer, Module)) \
                and _buffer_slot(self, name, old):
            _no_list_of_values(self, name, value)  # (as at construction, register_buffer)
            if not filling and (BUFFER_UPDATES.stack or isinstance(value, SymbolicValue)):
                # torch's way to update a buffer in forward (`self.count = self.count + 1`,
                # `self.count += 1`): traced, or applied with state=, the new value goes
                # where BatchNorm's does (written back after a compiled call, or returned)
                self._update_buffer(name, value)
                return
            if value is old:  # `+=` eagerly: the Buffer itself, changed in place
                return
            # as torch: an array given a buffer's name is that buffer's new value, still a
            # Buffer (in state_dict(), written by the layer's forward), not a plain attribute
            value = Buffer(value.data if isinstance(value, Tensor) else value)
            if isinstance(old, Buffer) and (old.data.shape, old.data.dtype) == \
                    (value.data.shape, value.data.dtype):
                # the same Buffer with the new array: compiled plans read it at each call,
                # where a new one made every plan trace again (an eager forward per step)
                old.data = value.data
                return
        was_child = _submodule(self, name, old) is not None
        # the names the old child's place gave (renamed below if the tree holds them still)
        gone = _named_at(self, [name], [_submodule(self, name, old)]) \
            if was_child and old is not value else None
        if old is not value and (isinstance(old, (Tensor, Module))  # Parameters too
                                 or was_child or filling and isinstance(value, Buffer)):
            MODULE_PARAMETERS.replaced += 1  # traced plans that read the old one are stale
        if old is not value and (child is not None or was_child or
                                 isinstance(value, Tensor) and old is None) \
                and not _Holding.depth and current_graph() is None and _traced_through(self):
            # so are those that went through this module without it (a child or a
            # ModuleDict key added, a Parameter set over None); a module no trace has
            # reached (one being built) has none, and one the trace itself sets (a layer
            # built lazily in forward) is part of that trace
            MODULE_CHILDREN.changed += 1
        if child is not None and child is not value:
            _COMPILED_CHILDREN[0] = True
        if isinstance(value, (Parameter, Buffer)):
            # named from the root, as this module is (model.body.extra = p once the model is
            # built is body.extra, not extra); a tensor another place holds is named by
            # the first of its places (_name_tied, below: `dec.weight = enc.weight` is
            # enc.weight, `enc.weight = dec.weight` too, as torch's)
            held = places_holding(value)
            tied = not all(module is self and attr == name for module, attr in held)
            if not tied:
                value.name = _dotted(self._path) + name
            _refuse_transposed_tie(self, name, value, old, held)
            note_place(value, self, name)
            if name in getattr(type(self), "_TORCH_TRANSPOSED", ()):
                _TRANSPOSED[id(value)] = value
        elif child is not None:
            # named from the root, as this module is (an item appended to model.body once
            # the model is built is body.3, not 3)
            path = f"{self._path}.{name}" if self._path else name
            # (held elsewhere already: m.first = m.layers[0]; this place is not set yet)
            again = [child] if any(m is not self or a != name for m, a in
                                   places_holding(child)) or child in _HELD_AGAIN else []
            child._set_path(path, _keeps_its_place(self, path), again=again)
            note_place(child, self, name)  # (the way up to its root, for _keeps_its_place)
            if _reached_by_trace(self):  # (reached through this module from now on)
                _note_traced(child)
        views = vars(self).get("_compiled_views")
        if child is None and _compiled_module(value) is not None:
            vars(self)["_compiled_views"] = (views or frozenset()) | {name}
        elif views and name in views:
            vars(self)["_compiled_views"] = views - {name}
        if _moves_to_end(self, name, old, value, child):
            del vars(self)[name]
        object.__setattr__(self, name, value)
        if gone:
            _name_by_first_places(self, gone)
        _rename_if_held_elsewhere(self, old, value)
        if isinstance(value, (Parameter, Buffer)) and tied:  # (its first place may be this)
            _name_tied(self, name, value)
        if child is not None and again:
            # a module (or tensor) the tree holds at another place too (m.first =
            # m.layers[0], m.body.append(m.layers[0]), m.extra = ModuleDict({"a":
            # m.layers[0]})) is named by its first place in named_modules' order, as
            # torch's named_parameters names it (layers.0.*), not by the newer one
            # _set_path gave it; the tree is walked only where the new child holds one.
            # A container's view items kept their other place's name, which comes after
            # this one where this one is earlier (m.body.sub = Sequential(m.layers[1]),
            # body before layers: body.sub.0, as torch's)
            stale = _named_at(self, [name], [child])
            for kept in again:
                if isinstance(kept, Module) and not kept._path.startswith(path + "."):
                    stale.update(_below(kept))
            _name_by_first_places(self, stale)

    def __delattr__(self, name):
        # `del model.layers`: the modules the model holds elsewhere too take the names of
        # those places, as __setattr__'s replacement does
        old = vars(self).get(name)
        was_child = old is not None and _submodule(self, name, old) is not None
        gone = _named_at(self, [name], [_submodule(self, name, old)]) if was_child else None
        # plans traced through the deleted child or tensor are stale, as after a set over
        # it (`del seq.sub`, now one of a Sequential's items, still ran in a compiled call)
        # (only where a trace read it: building or pruning a model no trace touched keeps
        # its plans, as a container's edit does, _children_changed)
        if was_child and not _Holding.depth and current_graph() is None:
            _children_changed(self, [_submodule(self, name, old)])
        elif isinstance(old, Tensor) and MODULE_PARAMETERS.was_lifted(old):
            MODULE_PARAMETERS.replaced += 1
        object.__delattr__(self, name)
        for table in ("_empty_buffers", "_empty_parameters", "_empty_children"):
            if name in vars(self).get(table, ()):  # (torch's del drops it from its dict)
                _mark_empty_buffer(self, name, False, table)
        if gone:
            _name_by_first_places(self, gone)
        _rename_if_held_elsewhere(self, old, None)

    def __setstate__(self, state):
        # copy.deepcopy and pickle fill __dict__ without __setattr__: a copied layer's
        # transposed weights and the places of its Parameters and Buffers are recorded
        # again (TransformerEncoder copies its layer; a tie made on a copy is checked)
        self.__dict__.update(state)
        for name, value in state.items():
            if isinstance(value, (Parameter, Buffer)) or _submodule(self, name, value) \
                    is not None:
                note_place(_submodule(self, name, value) or value, self, name)
        for name in getattr(type(self), "_TORCH_TRANSPOSED", ()):
            if isinstance(state.get(name), Parameter):
                _TRANSPOSED[id(state[name])] = state[name]

    def _where(self):
        """The layer in an error: its class and, inside a model, its dotted name."""
        return f"{type(self).__name__} {self._path!r}" if self._path else type(self).__name__

    def _set_path(self, path, keeps=None, named=None, again=None):
        """Name this module `path` (the scope of its nodes, its error lines) and the modules,
        Parameters and Buffers below it from there, each once, by its first name in this
        walk (a tied Parameter's or a shared layer's, as named_parameters names it). A
        container's items held as a slice holds them (`_view`, ModuleList(list(model.layers)))
        keep their names where `keeps(item)` says another place of the tree holds them
        still; the others become this container's own (torch names each by its first
        place in the model: model.extra = ModuleList(list(model.layers)) leaves them
        layers.*, while model.layers = ModuleList(pruned), which replaces their place,
        names them by their new one). `again` (a list) collects the modules and tensors
        below held at another place too, which that place may name (Module.__setattr__)."""
        named = set() if named is None else named
        if id(self) in named:
            return
        named.add(id(self))
        object.__setattr__(self, "_path", path)
        if again is not None and held_again(self):  # (a view's items: `kept` below)
            again.append(self)
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Buffer)) and id(value) not in named:
                named.add(id(value))
                value.name = f"{path}.{name}"
                if again is not None and held_again(value):
                    again.append(value)
        view = vars(self).get("_view", ())
        # an item this walk has named already is held at that (earlier, so first) place of
        # the tree: it keeps that name, which keeps() would take for one under `path` being
        # replaced (r.m = m, m.extra = ModuleList(list(m.layers)): m.layers.0 is under m)
        kept = [m for m in view if keeps is not None and (id(m) in named or keeps(m))]
        if len(kept) != len(view):  # the others are this container's own from now on
            object.__setattr__(self, "_view", tuple(kept))
        items = {id(m) for m in view}  # (a set: a list of 4000 items was quadratic, r7)
        for name, value in vars(self).items() if view else ():
            # the places of its items, set without setattr: the way up to the root
            # (_root_of) for the ones that are its own now, and their next place for the
            # kept ones when their first goes (m.layers = ModuleList(pruned))
            if id(value) in items:
                note_place(value, self, name)
        if again is not None:  # (held at their other place too, which may not be first)
            again.extend(kept)
        for name, value in list(vars(self).items()):
            child = _submodule(self, name, value)
            if child is not None and not any(child is m for m in kept):
                child._set_path(f"{path}.{name}", keeps, named, again)

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, Parameter) pairs, torch's arguments in its order (recurse=False: this
        module's own only). As PyTorch's, a Parameter held under several names (weight
        tying, a shared submodule) comes once, under its first name, so that
        params(), an optimiser and a parameter count see one tensor, not two that would be
        trained apart (each getting only its own use's share of the gradient)."""
        seen = set()
        for name, p in self._all_parameters(_dotted(prefix), recurse=recurse):
            if not remove_duplicate or id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _all_parameters(self, prefix="", kind=Parameter, recurse=True):
        for name, (module, attr) in self._parameter_owners(prefix, kind, recurse):
            yield name, vars(module)[attr]

    def parameters(self, recurse=True):
        return ItemList(p for _, p in self.named_parameters(recurse=recurse))

    def named_children(self):
        """(attribute, Module) for each direct submodule, each module once, as torch's."""
        seen = set()
        for name, value in vars(self).items():
            child = _submodule(self, name, value)
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        return ItemList(m for _, m in self.named_children())

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, Module) for this module (`prefix`, "" by default) and every
        submodule below it, depth first, a shared one once, as torch's, in torch's argument
        order; remove_duplicate=False gives a shared one under each of its names, and `memo`
        (a set of modules) those left out, to which the walk adds the ones it gives."""
        if isinstance(memo, (str, bytes)) or memo is not None and not hasattr(memo, "__iter__"):
            # (graphc's named_modules took the prefix first: named_modules("enc") met
            # "'str' object has no attribute 'add'")
            hint = f"; the prefix is a keyword: named_modules(prefix={memo!r})"[:200] \
                if isinstance(memo, str) else ""
            raise GraphcError(f"named_modules: memo, the first argument (torch's order), is a "
                              f"set of modules, got {a_type(memo)}{hint}",
                              (user_location(),))
        seen = set() if not memo else {id(m) for m in memo}  # (by identity, as torch's)
        for name, module in self._named_modules(prefix, seen, remove_duplicate):
            if memo is not None and remove_duplicate:
                memo.add(module)
            yield name, module

    def _named_modules(self, prefix, seen, remove_duplicate):
        if id(self) in seen:
            return
        if remove_duplicate:
            seen.add(id(self))
        yield prefix, self
        for name, value in vars(self).items():
            child = _submodule(self, name, value)
            if child is not None:
                yield from child._named_modules(f"{prefix}.{name}" if prefix else name, seen,
                                                remove_duplicate)

    def modules(self):
        return ItemList(m for _, m in self.named_modules())

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(name, Buffer) pairs: the layers' state that is not trained (BatchNorm's running
        statistics), as torch's named_buffers (recurse=False: this module's own only)."""
        seen = set()
        for name, b in self._all_parameters(_dotted(prefix), Buffer, recurse):
            if not remove_duplicate or id(b) not in seen:
                seen.add(id(b))
                yield name, b

    def buffers(self, recurse=True):
        return ItemList(b for _, b in self.named_buffers(recurse=recurse))

    def register_buffer(self, name: str, value, persistent: bool = True):
        """torch's register_buffer: `value` (an array) becomes the Buffer `name`; None
        leaves the attribute None (torch's empty buffer, in no state_dict). A buffer with
        persistent=False is state all the same (named_buffers, state(), updated by forward
        and written back by a compiled call) but not in state_dict(), load_state_dict() nor
        gc.Trainer's checkpoints, as torch's."""
        where = f"register_buffer({name!r})"
        if isinstance(name, str) and isinstance(vars(self).get(name), (Parameter, Module)):
            raise AttributeExists(f"{where}: the module's {name} is "
                                  f"{a_type(vars(self)[name])} already", (user_location(),))
        if isinstance(name, str) and vars(self).get(name, 0) is None and (
                name in vars(self).get("_empty_parameters", ()) or
                name in vars(self).get("_empty_children", ())):
            # torch's empty parameter or child (register_parameter(name, None), one set to
            # None) is one still: a buffer took its place, and a Parameter or child set there
            # later was refused or dropped the buffer
            what = "parameter" if name in vars(self).get("_empty_parameters", ()) \
                else "child module"
            raise AttributeExists(f"{where}: the module's {name} is an empty {what} (None) "
                                  f"already (attribute {name!r} already exists, as torch's "
                                  "KeyError); del it first", (user_location(),))
        # any other attribute of that name (a setting, a method, `training`) is refused as
        # torch's: the buffer replaced a setting silently, shadowed forward, or was dropped
        # from state_dict() by the next train()
        self._check_new_name("register_buffer", name, lambda held: isinstance(
            held, Buffer) or _is_empty_buffer(self, name, held))
        if value is not None and not isinstance(value, Buffer):
            _no_list_of_values(self, name, value)  # (tensors in a list: gc.stack's line)
            _refuse_non_tensor_buffer(self, name, value, where, lists=False)
            try:
                value = Buffer(value.data if isinstance(value, Tensor) else value)
            except UnsupportedDtype as exc:  # a string, an object: say which buffer
                raise GraphcError(f"{where}: a buffer holds an array of numbers, got "
                                  f"{a_type(value)} ({exc.unnamed.splitlines()[0]})",
                                  (user_location(),)) from None
        kept = set(vars(self).get("_non_persistent", ()))  # torch's _non_persistent_buffers_set
        kept.discard(name)
        if not persistent:
            kept.add(name)
        object.__setattr__(self, "_non_persistent", frozenset(kept))
        if value is None:
            _mark_empty_buffer(self, name, True)
        setattr(self, name, value)  # (an empty one filled keeps its place: _moves_to_end)
        _mark_empty_buffer(self, name, value is None)

    def register_parameter(self, name: str, param):
        """torch's: `param` (a gc.nn.Parameter) becomes the parameter `name`, as
        `self.name = param` does; None leaves the attribute None (torch's empty parameter,
        in no state_dict)."""
        self._check_new_name("register_parameter", name, lambda held: isinstance(
            held, Parameter))
        if param is not None and not isinstance(param, Parameter):
            raise GraphcError(f"register_parameter({name!r}): {a_type(param)} is not "
                              "a Parameter (gc.nn.Parameter(array) or None, as torch's)",
                              (user_location(),))
        if param is None:  # (torch's empty parameter: one set later takes its place)
            _mark_empty_buffer(self, name, True, "_empty_parameters")
        setattr(self, name, param)  # (which counts the change for traced plans)

    def add_module(self, name: str, module):
        """torch's: `module` (a Module, a gc.compile'd one, or None) becomes the child
        `name`, as `self.name = module` does."""
        self._check_new_name("add_module", name,
                             lambda held: _submodule(self, name, held) is not None)
        if module is not None and _as_child(module, self) is None:
            _refuse_as_child(f"add_module({name!r}): the value", module)
        if module is None:  # (torch's empty child: one set later takes its place)
            _mark_empty_buffer(self, name, True, "_empty_children")
        setattr(self, name, module)  # (which counts the change for traced plans)

    register_module = add_module  # (torch's alias)

    def _check_new_name(self, method, name, holds_one):
        """The name register_parameter, add_module or register_buffer is given: a string
        without a '.' (a state_dict name would read it as a submodule's), and not the name
        of another kind of attribute (a buffer, a setting, a method), which torch refuses
        too; one of its own kind (`holds_one`), or None, is replaced."""
        if not isinstance(name, str) or not name or "." in name:
            raise GraphcError(f"{method}: the name must be a non-empty string without '.', "
                              f"got {name!r}", (user_location(),))
        _refuse_own_attribute(method, name)
        held = vars(self).get(name)
        replaceable = holds_one(held) or (name in vars(self) and held is None
                                          and not _is_empty_buffer(self, name, held))
        if hasattr(self, name) and not replaceable:  # (torch's KeyError)
            raise AttributeExists(f"{method}({name!r}): {type(self).__name__} has an "
                                  f"attribute {name!r} already", (user_location(),))

    def get_submodule(self, target: str):
        """torch's: the submodule at the dotted path `target` ("" is this module itself), or
        AttributeError naming the part of the path that is not one, as torch's."""
        return _submodule_at(self, target, f"get_submodule({target!r})")

    def set_submodule(self, target: str, module, strict: bool = False):
        """torch's: `module` becomes the submodule at the dotted path `target` ("2.fc"), as
        setting that attribute of its parent does (the names, plans and refusals of
        __setattr__); AttributeError where the path's parent is no module, where the last
        name holds something else than a module, or (strict=True) where it holds nothing,
        as torch's."""
        if not isinstance(target, str) or not target:
            raise GraphcError(f"set_submodule: the target must be a dotted name of a "
                              f"submodule, got {target!r}", (user_location(),))
        path, _, name = target.rpartition(".")
        parent = _submodule_at(self, path, f"set_submodule({target!r})")
        if _as_child(module, parent) is None:
            _refuse_as_child(f"set_submodule({target!r}): the value", module)
        if strict and not hasattr(parent, name):
            _no_such(f"set_submodule({target!r})", parent, name, "Module")
        if hasattr(parent, name) and _submodule(parent, name, getattr(parent, name)) is None:
            _no_such(f"set_submodule({target!r})", parent, name, "Module")
        setattr(parent, name, module)

    def get_parameter(self, target: str) -> Parameter:
        """torch's: the Parameter at the dotted path `target` ("0.weight"), or
        AttributeError saying which part of the path is not one, as torch's."""
        return self._tensor_at(target, Parameter, "get_parameter")

    def get_buffer(self, target: str) -> Buffer:
        """torch's: the Buffer at the dotted path `target` ("1.running_mean"), or
        AttributeError saying which part of the path is not one, as torch's."""
        return self._tensor_at(target, Buffer, "get_buffer")

    def _tensor_at(self, target, kind, method):
        path, _, name = target.rpartition(".")
        module = _submodule_at(self, path, f"{method}({target!r})")
        found = vars(module).get(name)
        if not isinstance(found, kind):
            _no_such(f"{method}({target!r})", module, name, kind.__name__)
        return found

    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> dict:
        """Parameters and persistent buffers by name (the arrays themselves, not copies), in
        torch's order: each module's parameters, then its buffers, then its submodules'. A
        tied or shared one is under each of its names, as torch's (whose strict load of this
        dict then finds them all); load_state_dict takes any of them. `prefix` goes before
        each name as it is, as torch's: state_dict(prefix="enc.") names `enc.weight`. An
        OrderedDict, as torch's: what takes a plain dict's keys sorted, as torch's does
        (ParameterDict(model.state_dict()), update), keeps this order, as torch's.
        keep_vars=True gives the Parameters and Buffers themselves, as torch's."""
        kept = {**dict(self._all_parameters()),
                **dict(self._persistent_buffers(every_name=True))}
        return OrderedDict((prefix + name, kept[name] if keep_vars else kept[name].data)
                           for name in self._state_names() if name in kept)

    def _state_names(self, prefix=""):
        """Every name of every parameter and buffer, in state_dict's order."""
        own = vars(self).items()
        yield from (prefix + name for name, v in own if isinstance(v, Parameter))
        yield from (prefix + name for name, v in own if isinstance(v, Buffer))
        for name, value in own:
            child = _submodule(self, name, value)
            if child is not None:
                yield from child._state_names(f"{prefix}{name}.")

    def _persistent_buffers(self, every_name=False):
        """named_buffers() less those registered with persistent=False (each Buffer under its
        first name; with every_name, under each, as _all_parameters(kind=Buffer))."""
        places = self._parameter_owners(kind=Buffer)
        named = self._all_parameters(kind=Buffer) if every_name else self.named_buffers()
        transient = {name for name, (module, attr) in places if not _persistent(module, attr)}
        return [(name, b) for name, b in named if name not in transient]

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False):
        """Load parameters and persistent buffers, all of which must be given, as torch's
        (a params() dict after compiled training has no buffers: load it with strict=False,
        which keeps the model's own, the ones the training wrote), every shape checked
        before anything is loaded. strict=False (torch's): a missing parameter or buffer
        keeps its value and an unexpected name is ignored. Returns torch's (missing_keys,
        unexpected_keys) pair, sorted; missing_keys names each state_dict() name not given,
        as torch's: a tied or shared one's other names too, though strict loads it from any
        one of them.

        The values are copied, cast to the model's dtypes, into the model's Parameters
        (each gets a new array, as an optimiser step gives it: the Parameters stay the
        model's and an optimiser bound before the load trains the loaded values, but an
        array read from one before keeps its values, where torch's copy_ writes its
        storage) and into its Buffers' arrays in place; with
        assign=True (torch's) the model takes the given ones themselves instead
        (_assign_state): an optimiser bound to the replaced Parameters keeps those, so
        bind it after the load, as torch's docs say."""
        _state_mapping("load_state_dict", state, "array (as model.state_dict() gives)")
        return self._load_state(state, strict, assign, "load_state_dict")

    def _load_state(self, state, strict, assign, who):
        """load_state_dict's load; its refusals start with `who`, the method the user called
        (load_torch_state_dict's said load_state_dict, a call the user never wrote)."""
        assign = bool_flag(assign, f"{who}: assign")
        given = state
        self._refuse_torch_layout(state)
        # a buffer its layer keeps where a state lacks it (BatchNorm's num_batches_tracked,
        # which torch's fills in from the layer) is neither missing nor refused, as torch's,
        # unless the state is a torch state_dict() whose _metadata says the layer's version
        # had it (2: torch's own state less that key is refused by torch's strict load)
        versions = getattr(state, "_metadata", None)
        versions = versions if isinstance(versions, dict) else {}
        kept = {name for name, (module, attr) in self._parameter_owners(kind=Buffer)
                if attr in getattr(type(module), "_KEPT_WHEN_MISSING", ())
                and _layer_version(versions, name.rpartition(".")[0]) < 2}
        # torch counts missing keys against its state_dict's names, every name of a shared
        # module's parameters and buffers included (named_parameters() gives each once)
        not_given = sorted(set(self.state_dict()) - set(state) - kept)
        # a shared layer's buffers under its other names too, as its parameters below; a
        # non-persistent one's name is unexpected, as torch's
        everywhere = dict(self._persistent_buffers(every_name=True))
        loaded = {name: b for name, b in everywhere.items() if name in state}
        # a buffer given under none of its names is missing, as a parameter is: torch's
        # strict load refuses it (before, it was kept silently, and a state lacking a
        # BatchNorm's statistics ran with the model's fresh ones)
        loaded_ids = {id(b) for b in loaded.values()}
        missing_buffers = [name for name, b in self._persistent_buffers()
                           if id(b) not in loaded_ids and name not in kept]
        values = {name: _state_array(name, state[name], who=who) for name in loaded}
        state = {name: value for name, value in state.items() if name not in everywhere}
        params = dict(self.named_parameters())
        # a tied Parameter's other names (PyTorch's state_dict lists them all) load it too;
        # two of them with different values are refused, since one Parameter cannot hold
        # both (torch keeps the value of the name it visits last, transformers unties them)
        aliases = {name: p for name, p in self._all_parameters() if name not in params}
        for name, p in aliases.items():
            first = next(n for n, q in params.items() if q is p)
            if name not in state:
                continue
            if first not in state:
                state = {**state, first: state[name]}
            elif not _same_array(_state_array(first, state[first], who=who),
                                 _state_array(name, state[name], who=who)):
                raise GraphcError(f"{who}: {first} and {name} name one tied "
                                  f"parameter but the state gives them different values; "
                                  f"load it into an untied model, or give one value",
                                  (user_location(),))
        missing = sorted({*params, *missing_buffers} - set(state))
        unexpected = sorted(set(state) - set(params) - set(aliases))
        if strict and (missing or unexpected):
            raise GraphcError(f"{who}: the state does not match the model: missing "
                              f"{missing}, unexpected {unexpected}", (user_location(),))
        params = {name: p for name, p in params.items() if name in state}
        values.update({name: _state_array(name, state[name], who=who) for name in params})
        raw = {**{n: given[n] for n in loaded}, **{n: state[n] for n in params}}
        # every value checked and cast before any is loaded: a failure leaves the model as
        # it was, where a failed cast midway left it half loaded
        for name, p in {**params, **loaded}.items():
            if values[name].shape != p.data.shape:
                raise GraphcError(f"{who}: {name} has shape {values[name].shape}, "
                                  f"the model's is {p.data.shape}", (user_location(),))
            if not assign or isinstance(raw[name], (list, tuple, int, float)):
                # (assign=True of a list or a Python number, which has no array or dtype
                # of its own to take: the model's dtype, as without assign; numpy's int64
                # or float64 one made a BatchNorm's float64 running statistics or an int
                # weight refused deep inside its forward)
                values[name] = _state_array(name, values[name], p.data.dtype, who=who)
        if assign:
            self._assign_state({**params, **loaded}, raw, values)
            return IncompatibleKeys(not_given, unexpected)
        for name, p in params.items():
            # a new array (the cast copy) in the same Parameter, as an optimiser step and
            # eager in-place arithmetic rebind .data: the tape keeps the arrays a forward
            # read, so a backward() pending across the load gives the forward's gradient
            # (written in place, it silently used the loaded weights; torch raises), and a
            # state_dict() taken before (whose arrays are the model's) is not overwritten
            p.data = values[name]
        for name, b in loaded.items():  # in place: a plan or a Trainer holds the array
            b.data[...] = values[name]
        return IncompatibleKeys(not_given, unexpected)

    def _assign_state(self, olds, given, arrays):
        """load_state_dict(assign=True)'s load, as torch's: each Parameter or Buffer in
        `olds` (by name) is replaced by the one `given` under its name where that is one (a
        given Parameter takes the replaced one's requires_grad, as torch's), else by a new
        one holding `arrays[name]` (the given array, a tensor's own) itself, of its dtype,
        uncast; a new Parameter takes the replaced one's requires_grad. All are made (a
        Parameter's dtype checked) before any is set, so a refusal leaves the model as it
        was. A tied Parameter or shared Buffer is replaced at each of its places and stays
        tied, where torch's puts a separate Parameter at each."""
        new = {}
        for name, old in olds.items():
            value = given[name]
            kind = Parameter if isinstance(old, Parameter) else Buffer
            if isinstance(value, kind):
                new[id(old)] = value
                continue
            array = value.data if isinstance(value, Tensor) else arrays[name]
            if not array.flags.writeable:  # (training and BatchNorm write it in place)
                raise GraphcError(f"load_state_dict: {name} is a read-only array, which "
                                  "assign=True would make the model's own; give a copy",
                                  (user_location(),))
            try:  # (their constructors copy the data: an empty array checks its dtype)
                taken = Parameter(np.empty(0, array.dtype), old.requires_grad) \
                    if kind is not Buffer else Buffer(np.empty(0, array.dtype))
            except GraphcError as exc:
                raise GraphcError(f"load_state_dict: {name}: {exc.message}",
                                  (user_location(),)) from None
            taken.data = array
            new[id(old)] = taken
        for old in olds.values():
            if isinstance(old, Parameter):
                new[id(old)].requires_grad = old.requires_grad
        for kind in (Parameter, Buffer):
            for _, (module, attr) in list(self._parameter_owners(kind=kind)):
                taken = new.get(id(vars(module)[attr]))
                if taken is not None:
                    setattr(module, attr, taken)

    def _refuse_torch_layout(self, state):
        """load_state_dict takes graphc's layout: a torch tensor for a weight graphc stores
        transposed against torch (Linear's (in, out), torch's (out, in): _TORCH_TRANSPOSED)
        is refused in one line naming both ways to load it. A torch model's state loaded a
        square Linear's weight untransposed, silently, and its shape cannot tell which
        layout a square one is in; graphc's own state saved as tensors (torch.save,
        safetensors.torch) is in graphc's. Only torch's tensors are asked about: another
        library's arrays (h5py, JAX, TF, paddle: their Dense kernels are (in, out), as
        graphc's) load as arrays, as they did."""
        foreign = [name for name, value in state.items() if _is_torch_tensor(value)]
        if not foreign:  # (the common case: arrays, owners not walked)
            return
        owners = dict(self._parameter_owners())
        for name in foreign:
            owner = owners.get(name)
            if owner is not None and owner[1] in getattr(type(owner[0]), "_TORCH_TRANSPOSED",
                                                         ()):
                raise GraphcError(
                    f"load_state_dict: {name} is a {foreign_array_name(state[name])} for a "
                    f"weight graphc's {type(owner[0]).__name__} stores transposed against "
                    "torch's: convert each value to a numpy array if the state is graphc's "
                    "layout (a graphc "
                    "model's state_dict() saved as tensors), or load_torch_state_dict if it "
                    "is a torch module's state_dict()", (user_location(),))

    def load_torch_state_dict(self, state: dict, strict: bool = True):
        """load_state_dict of a torch module's state_dict (tensors or arrays) with the same
        names: the weights graphc stores transposed against torch (Linear's weight,
        MultiheadAttention's in_proj_weight: each layer class lists them in
        _TORCH_TRANSPOSED) are transposed, the rest taken as they are. `strict` and the
        (missing_keys, unexpected_keys) returned are load_state_dict's, as torch's."""
        _state_mapping("load_torch_state_dict", state,
                       "tensor (a torch module's state_dict())")
        owners = dict(self._parameter_owners())
        converted = {}
        for name, value in state.items():
            # a torch.compile'd submodule's names say `body._orig_mod.weight`; graphc's
            # compiled child is registered as the module itself (`body.weight`)
            name = ".".join(part for part in name.split(".") if part != "_orig_mod")
            if _is_torch_tensor(value):  # (bfloat16, float8 into ml_dtypes')
                value = read_foreign_array(value, f"load_torch_state_dict: {name}")
            value = np.asarray(value)
            owner = owners.get(name)
            if owner is not None and owner[1] in getattr(type(owner[0]), "_TORCH_TRANSPOSED",
                                                         ()):
                want = getattr(owner[0], owner[1]).data.shape[::-1]
                if value.shape != want:  # said in torch's layout, the one the user holds
                    raise GraphcError(f"load_torch_state_dict: {name} has shape "
                                      f"{tuple(value.shape)}, the model's is {want} in "
                                      "torch's layout", (user_location(),))
                value = value.T
            converted[name] = value
        versions = getattr(state, "_metadata", None)  # (torch's layer versions, kept)
        if isinstance(versions, dict):
            converted = _WithVersions(converted)
            converted._metadata = {".".join(p for p in k.split(".") if p != "_orig_mod"): v
                                   for k, v in versions.items() if isinstance(k, str)}
        return self._load_state(converted, strict, False, "load_torch_state_dict")

    def zero_grad(self, set_to_none: bool = True):
        """Forget the parameters' eager gradients (.grad), as torch's: None by default;
        set_to_none=False zeroes them in place instead, as an optimiser's zero_grad."""
        zero_grads(self.parameters(), set_to_none)

    training = _TrainingFlag()  # Dropout's switch (train() / eval() set it on every submodule)

    def train(self, mode: bool = True):
        """PyTorch's Module.train: Dropout layers in this module and its submodules are
        active when `mode` is True and the identity otherwise. Returns the module."""
        if not isinstance(mode, (bool, np.bool_)):  # ("eval" or None would read as a bool)
            raise GraphcError(f"train: training mode is expected to be boolean (True or "
                              f"False), got {shown(mode)}", (user_location(),))
        object.__setattr__(self, "training", bool(mode))
        graph = current_graph()
        if graph is not None:  # called inside a traced function: it sets the flag each call
            graph.set_while_tracing(self, "training")
        for name, value in vars(self).items():
            child = _submodule(self, name, value)
            if child is not None:
                child.train(mode)
        return self

    def eval(self):
        """train(False): Dropout layers become the identity, for evaluation."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """torch's: every parameter's requires_grad set; False freezes them (gradients,
        gc.Trainer and the optimisers leave them alone; a compiled step traced before is
        traced again). Returns the module."""
        bool_flag(requires_grad, "requires_grad_")  # (a module without parameters too)
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False):
        """torch's Module.to: `to(dtype)`, `to(device)`, `to(device, dtype)`, `to(tensor)`
        (its dtype and device; an array's too), torch's positional non_blocking after them
        (no effect), or keywords. The
        floating-point parameters and buffers (their gradients too) are cast in place, the
        Parameter objects kept (an optimiser bound to them that has not stepped follows;
        one holding state, as torch's, does not: bind a new one); integer ones (BatchNorm's
        num_batches_tracked) are left. graphc runs on the CPU: any other device is refused.
        Returns the module."""
        dtype = _to_dtype(args, dtype, device)
        if dtype is not None:
            self._cast_floats(dtype, "to")
        return self

    def cpu(self):
        """torch's: the module on the CPU, where graphc's always is. Returns the module."""
        return self

    def cuda(self, device=None):
        """torch's: refused in one line, as to("cuda") is: graphc runs on the CPU. A CPU
        device given is refused too, as torch's ("must be cuda device"): cuda("cpu")
        returned None, and `model = model.cuda("cpu")` lost the model."""
        shown = "cuda" if device is None else f"cuda:{device}" if is_int(device) else device
        if str(shown).split(":")[0] == "cpu":
            raise GraphcError(f"cuda: device {device!r} is not a CUDA device (the module is on "
                              "the CPU already: cpu() returns it)", (user_location(),))
        _refuse_device("cuda", shown)

    def double(self):
        """torch's: the floating-point parameters and buffers cast to float64. Returns self."""
        return self._cast_floats("float64", "double")

    def float(self):
        """torch's: the floating-point parameters and buffers cast to float32. Returns self."""
        return self._cast_floats("float32", "float")

    def half(self):
        """torch's: the floating-point parameters and buffers cast to float16. Returns self."""
        return self._cast_floats("float16", "half")

    def bfloat16(self):
        """torch's: the floating-point parameters and buffers cast to bfloat16. Returns
        self."""
        return self._cast_floats("bfloat16", "bfloat16")

    def _cast_floats(self, dtype, method):
        """The floating-point parameters and buffers (and gradients) cast to `dtype` in
        place, as torch's Module._apply: each keeps its Parameter or Buffer object."""
        try:
            dtype = as_dtype(dtype)
        except UnsupportedDtype as exc:
            raise GraphcError(f"{method}: {exc.message}", (user_location(),)) from None
        if not is_float(dtype):
            raise GraphcError(f"{method}: a module's parameters take a floating-point dtype, "
                              f"got {dtype} (as torch's Module.to)", (user_location(),))
        if current_graph() is not None:  # (a plan would cast at each call, not once)
            raise GraphcError(f"{method}: cast the module before compiling or tracing it, "
                              "not inside a traced function", (user_location(),))
        changed = False
        for _, t in self._all_parameters(kind=(Parameter, Buffer)):
            if is_float(t.data.dtype) and t.data.dtype != dtype:
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad = t.grad.astype(dtype)
                changed = True
        if changed:  # plans traced with the old dtypes are stale: traced again
            MODULE_PARAMETERS.replaced += 1
        return self

    # ---- modules as pytrees (JAX / flax style) ----
    def params(self) -> dict:
        """The parameters as a pytree: {name: array}, named as named_parameters(). The arrays
        are copies, so a compiled step that donates (updates in place) them never changes the
        model's own weights; load_state_dict(params) writes trained values back."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def state(self) -> dict:
        """The buffers as a pytree: {name: array} (copies), named as named_buffers(): what
        apply(params, x, state=...) takes and returns, as flax's mutable collections."""
        return {name: b.data.copy() for name, b in self.named_buffers()}

    def apply(self, params: dict, *args, state: dict | None = None, **kwargs):
        """forward(*args, **kwargs) computed with `params` (a dict as params() gives: arrays,
        eager tensors or symbolic values) in place of the model's Parameters. Traced, the
        params are ordinary inputs of the graph, so gc.grad / gc.value_and_grad differentiate
        with respect to them; the model itself is left unchanged (its attributes are swapped
        for the call and put back, so one model must not be applied from two threads at
        once).

        With `state` (a dict as state() gives), the buffers are taken from it too, and the
        result is (output, new_state): what layers in training mode wrote (BatchNorm's
        running statistics), the rest as given. This is how a traced function (gc.compile,
        gc.value_and_grad with has_aux=True) carries them, as flax's `mutable=`; `state`
        itself is left unchanged. A gc.compile'd function forward calls runs as its Python
        function here (graphc.transforms._Applying): its plans are bound to the tensors the
        module held when they were traced.

        Called with a function alone, it is torch's Module.apply(fn): fn(module) for every
        submodule, children first, then this one (`model.apply(init_weights)`); returns the
        module."""
        if callable(params) and not isinstance(params, dict) and not args and not kwargs \
                and state is None:
            for module in self.children():
                module.apply(params)
            params(self)
            return self
        owners = self._owners(params, "params", Parameter)
        buffers = {} if state is None else self._owners(state, "state", Buffer)
        saved, values = [], {**params, **({} if state is None else state)}
        APPLYING.depth += 1  # (a gc.compile'd function inside runs as its Python function)
        try:
            # a gc.compile'd child's plan is bound to its layer's own Parameters, so it would
            # compute with them, not with `params` (and a plan traced here would stay bound
            # to these values): for the call the child is its layer, which reads the swapped
            # attributes (traced, a compiled call is its function's trace anyway)
            for module in self.modules() if _COMPILED_CHILDREN[0] else ():
                for attr, value in list(vars(module).items()):
                    layer = _submodule(module, attr, value)
                    if layer is not None and layer is not value:
                        saved.append((module, attr, value))
                        object.__setattr__(module, attr, layer)
            for name, places in {**owners, **buffers}.items():
                value = values[name]
                if isinstance(value, np.ndarray) or name in buffers and \
                        type(value) is Tensor and not value.requires_grad:
                    # a state tensor of the caller's (a new_state given back) is wrapped
                    # too: `self.count += 1` in forward gives the wrapper the new array,
                    # which the caller's tensor would take otherwise
                    value = Tensor(value.data if isinstance(value, Tensor) else value)
                if name in owners and _frozen(getattr(*places[0])):
                    # frozen torch's way: no gradient reaches it, so gc.grad gives zeros
                    # and gc.Trainer (a None gradient) leaves it and its state alone
                    value = F.stop_gradient(value)
                for module, attr in places:
                    saved.append((module, attr, getattr(module, attr)))
                    object.__setattr__(module, attr, value)
            if state is None:
                return self(*args, **kwargs)
            with collect_buffer_updates() as updates:
                for places in buffers.values():  # a shared Buffer's places: one state
                    updates.slots.update((id(m), a) for m, a in places)
                    updates.holders[id(getattr(*places[0]))] = places
                out = self(*args, **kwargs)
            return out, {name: updates.value_of(*places[0], state[name])
                         for name, places in buffers.items()}
        finally:  # the Parameters are back even when forward raises
            APPLYING.depth -= 1
            for module, attr, original in reversed(saved):
                object.__setattr__(module, attr, original)

    def _owners(self, given, what, kind) -> dict:
        """{first name: [(module, attribute), ...]} of the attributes holding a `kind`, each
        under its first name (a tied one takes the one value in each place it is used, so its
        gradient is the sum of both), checked against the names `given` holds."""
        if not isinstance(given, dict):
            raise GraphcError(f"apply: {what} must be a dict name -> array (as "
                              f"{type(self).__name__}.{what}() gives), got "
                              f"{type(given).__name__}", (user_location(),))
        owners, first = {}, {}
        for name, (module, attr) in self._parameter_owners(kind=kind):
            owners.setdefault(first.setdefault(id(getattr(module, attr)), name), []).append(
                (module, attr))
        missing = sorted(set(owners) - set(given))
        unexpected = sorted(set(given) - set(owners))
        if missing or unexpected:
            raise GraphcError(f"apply: {what} do not match the model: "
                              + "; ".join(f"{how} {names[:3]}{' ...' if len(names) > 3 else ''}"
                                          for how, names in (("missing", missing),
                                                             ("unexpected", unexpected))
                                          if names), (user_location(),))
        return owners

    def _parameter_owners(self, prefix="", kind=Parameter, recurse=True):
        """(name, (module, attribute)) for each attribute holding a Parameter (or `kind`),
        tied ones under each of their names: this module's own, then each submodule's, as
        torch's (a bias_k set after out_proj still comes before out_proj.weight). Every
        walk of the parameters goes through here, so that all agree on which name of a tied
        parameter comes first."""
        for name, value in vars(self).items():
            if isinstance(value, kind):
                yield f"{prefix}{name}", (self, name)
        for name, value in vars(self).items() if recurse else ():
            child = _submodule(self, name, value)
            if child is not None:
                yield from child._parameter_owners(f"{prefix}{name}.", kind)

    def _update_buffer(self, attr: str, value):
        """A forward in training mode gives buffer `attr` its new value (BatchNorm's running
        statistics). Eagerly it is written into the Buffer, as torch does; in a function being
        traced it goes to the innermost apply(..., state=) (or gc.Trainer's step), which
        returns it. A trace with nowhere to put it is refused: the update would be lost."""
        graph = getattr(value, "graph", None) or current_graph()
        if BUFFER_UPDATES.stack:
            collector = BUFFER_UPDATES.stack[-1]
            if graph is collector.graph:
                collector.record(self, attr, value)
                return
        elif graph is None:
            buffer = getattr(self, attr)
            buffer.data[...] = np.asarray(value.data if isinstance(value, Tensor) else value)
            return
        where = repr(self._path) if self._path else "(the model itself)"
        raise GraphcError(
            f"{type(self).__name__} {where} updates its buffer {attr} (BatchNorm: in "
            "training mode), which this traced function cannot write back: call "
            "model.apply(params, x, state=model.state()), which returns (output, new_state) "
            "(inside gc.value_and_grad: has_aux=True), or train with gc.Trainer, which "
            "carries it; or call model.eval() first"
            + (" (apply(..., state=) must be called inside the transformation, not around it)"
               if BUFFER_UPDATES.stack else ""),
            (user_location(),))

    def extra_repr(self) -> str:
        """What repr(module) shows in its parentheses before its children: torch's hook for
        a layer's settings ("in_features=3, out_features=4, bias=True"); override it in a
        layer of your own. "" here."""
        return ""

    def __repr__(self):
        """torch's: `Name(extra_repr)`, or, with children, each line of extra_repr and each
        child as `(name): repr` on a line of its own, indented."""
        extra = self.extra_repr()
        children = [f"({name}): " + repr(child).replace("\n", "\n  ")  # (a shared child
                    for name, child in ((name, _shown_child(self, name, value))  # under
                                        for name, value in vars(self).items())  # each name)
                    if child is not None]
        if not children and "\n" not in extra:
            return f"{type(self).__name__}({extra})"
        lines = (extra.split("\n") if extra else []) + children
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def __call__(self, *args, **kwargs):
        if _INTERPRETERS.stack:  # (inline: every eager module call passes here)
            graph = current_graph()
            if graph is not None:
                # the trace goes through this module's attributes (its children, which a
                # parameter-free one or model.apply's all-traced one reads nothing else
                # of): a plan holds until one is replaced or added (Module.__setattr__)
                graph.guard(MODULE_CHILDREN, "changed", MODULE_CHILDREN.changed)
                changes = hooks.changes_of(self)  # (the hooks it runs: this module's only)
                graph.guard(changes, "state", changes.state)
                if not _reached_by_trace(self):
                    _note_traced(self)
                return self._traced_forward(args, kwargs)
        if not self._path:
            return self._forward_with_hooks(args, kwargs)
        with scope(self._path):
            return self._forward_with_hooks(args, kwargs)

    def forward(self, *args, **kwargs):
        """What a call computes: each layer defines its own. One with none (a ModuleList
        or ModuleDict, which only hold modules, or a bare Module) is one line naming its
        class, torch's, not Python's "no attribute 'forward'"."""
        from .activation_layers import ModuleDict  # (which imports this module)
        holds = " (it holds modules: call each, `for layer in self.layers: x = layer(x)`)" \
            if isinstance(self, ModuleList) else " (it holds modules: call one by its key, " \
            "`self.heads['name'](x)`)" if isinstance(self, ModuleDict) else ""
        raise MissingForward(f'Module [{type(self).__name__}] is missing the required '
                             f'"forward" function{holds}', (user_location(),))

    def _traced_forward(self, args, kwargs):
        """forward inside a trace, its settings' reads guarded (_guarded_getattribute)."""
        with guarding_setting_reads(self):
            with scope(self._path) if self._path else contextlib.nullcontext():
                return self._forward_with_hooks(args, kwargs)

    def _forward_with_hooks(self, args, kwargs):
        """forward, with the hooks registered on this module (graphc/hooks.py)."""
        own = self.__dict__
        pre, post = own.get("_forward_pre_hooks"), own.get("_forward_hooks")
        back_pre, back = own.get("_backward_pre_hooks"), own.get("_backward_hooks")
        if not (pre or post or back_pre or back):
            return self.forward(*args, **kwargs)
        return hooks.call(self, self.forward, args, kwargs, pre or {}, post or {},
                          back or {}, back_pre or {})

    def register_forward_pre_hook(self, hook, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> hooks.RemovableHandle:
        """torch's: hook(module, args) before each forward, returning None or new args (a
        non-tuple is the one argument); with_kwargs, hook(module, args, kwargs) returning
        None or (args, kwargs). Under a trace it runs on traced values (graphc/hooks.py)."""
        return hooks.register(self._hook_table("_forward_pre_hooks"), hook,
                              hooks.changes_of(self), prepend,
                              f"{type(self).__name__}.register_forward_pre_hook",
                              with_kwargs=with_kwargs)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> hooks.RemovableHandle:
        """torch's: hook(module, args, output) after each forward (with_kwargs: hook(module,
        args, kwargs, output)), returning None or a new output; always_call, also when
        forward raised. Under a trace it runs on traced values (graphc/hooks.py)."""
        return hooks.register(self._hook_table("_forward_hooks"), hook,
                              hooks.changes_of(self), prepend,
                              f"{type(self).__name__}.register_forward_hook",
                              with_kwargs=with_kwargs, always_call=always_call)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False
                                        ) -> hooks.RemovableHandle:
        """torch's: hook(module, grad_output) when the gradient of this call's output is
        computed, returning None or a tuple replacing grad_output (one entry per output,
        None for a non-tensor). Traced, it runs on traced values when the trace is
        differentiated (graphc/hooks.py's BackwardCall)."""
        return hooks.register(self._hook_table("_backward_pre_hooks"), hook,
                              hooks.changes_of(self), prepend,
                              f"{type(self).__name__}.register_full_backward_pre_hook")

    def register_full_backward_hook(self, hook, prepend: bool = False
                                    ) -> hooks.RemovableHandle:
        """torch's: hook(module, grad_input, grad_output) when the gradient of this call's
        positional tensor arguments is computed, returning None or a tuple replacing
        grad_input (one entry per argument, None for a non-tensor; all None where no argument
        is differentiated). Traced, it runs on traced values when the trace is differentiated
        (graphc/hooks.py's BackwardCall)."""
        return hooks.register(self._hook_table("_backward_hooks"), hook,
                              hooks.changes_of(self), prepend,
                              f"{type(self).__name__}.register_full_backward_hook")

    def _hook_table(self, kind: str) -> dict:
        if kind not in self.__dict__:
            object.__setattr__(self, kind, {})
        return self.__dict__[kind]

    def _setting(self, name, operand=None):
        """A Python-valued setting that forward reads (eps, p, reduction, ...): a trace
        guards it, so that a plan built with one value is not reused after the user sets
        another (PyTorch reads it at every call; the plan would keep the old one)."""
        value = getattr(self, name)
        graph = getattr(operand, "graph", None) or current_graph()
        if graph is not None:
            graph.guard(self, name, value)
        return value

    def _weight(self, name, operand=None):
        """An optional weight that forward reads (a loss's): a trace guards whether it is
        None, and reads the buffer itself as an input."""
        value = getattr(self, name)
        graph = getattr(operand, "graph", None) or current_graph()
        if graph is not None:
            _guard_none(self, graph, name, value is None)
        return value


register_layer_type(Module)  # (an op its forward calls is named by the layer: _called_op)


class _IsNone:
    """A guard's view of a module: its attribute `name` reads as whether that is None, so
    that a plan traced without a loss's weight is not reused once one is set (the weight
    itself, a buffer, is an input of the plan)."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        if name.startswith("__") or name == "module":  # (copy and pickle probe dunders
            raise AttributeError(name)  # before `module` is set: no recursion there)
        return getattr(self.module, name) is None

    def describe_change(self):
        return f"{type(self.module).__name__}: a weight was set, or set to None"


def _persistent(module, attr) -> bool:
    """Whether module.attr, a buffer, is saved: not registered with persistent=False."""
    return attr not in vars(module).get("_non_persistent", ())


class _Keyed:
    """The read side of a dict of a container's attributes, in insertion order (self._keys):
    ModuleDict's and ParameterDict's."""

    def __contains__(self, key):
        return key in self._keys

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def keys(self):
        return list(self._keys)

    def values(self):
        return [getattr(self, k) for k in self._keys]

    def items(self):
        return [(k, getattr(self, k)) for k in self._keys]

    def pop(self, key):
        """Remove the value under `key` and return it, as torch's."""
        value = self[key]
        del self[key]
        return value

    def clear(self):
        for key in list(self._keys):
            del self[key]


class ModuleList(Module):
    """Modules held in order; children are named "0", "1", ... as in PyTorch. As torch's,
    `modules` is any iterable (a generator too), or None: an empty list. As torch's,
    `l[i] = m`, `del l[i]` (a slice too), insert, append, extend and pop change it, the items
    after a deletion or an insertion numbered again from 0; a compiled plan traced through
    it before is traced again."""

    # a slice's: the model's items it was made of (a slice is a view of them: an edit of the
    # slice leaves their names, the model's, as they are)
    _view = ()

    def __init__(self, modules=None):
        modules = [] if modules is None else list(modules)
        self._note_view(modules)
        self._hold([(str(i), m) for i, m in enumerate(modules)])

    def _note_view(self, modules):
        """Modules another module holds already (ModuleList(list(model.layers)), torch users'
        copy of a model's layers), and containers holding such (a ModuleList of that list),
        are held as a slice holds them: their names stay the model's (setattr renamed
        model.layers.0.weight to 0.weight, and the layers' scopes and error lines with it);
        this container's own names are torch's relative ones (its state_dict's 0.weight).
        Assigned into a model, its items keep their names where the model holds them
        still, as torch's first name (_set_path), and take their new ones otherwise."""
        held = tuple(m for m in modules if isinstance(m, Module) and (
            m._path or isinstance(m, ModuleList) and m._view))
        if held:
            object.__setattr__(self, "_view", held)
            _HELD_AGAIN.update(held)

    def _hold(self, items):
        """Hold `items`, (key, module) pairs, as the children in this order; the old items'
        attributes go first, so that the attributes' order (named_parameters', state_dict's,
        repr's) is the new one. Every item is checked before anything changes. A slice's
        items from its model keep the model's names (Parameter names, scopes)."""
        items = list(items)
        for i, (_, m) in enumerate(items):
            if _as_child(m, self) is None:  # a gc.compile'd Module is one, as torch's
                _refuse_as_child(f"{type(self).__name__}: item {i}", m)
        shared = {id(m) for m in self._view}
        for key in vars(self).get("_keys", ()):
            object.__delattr__(self, key)
        _Holding.depth += 1  # (each item set again: _changed counts the edit once)
        try:
            for key, m in items:
                if id(m) in shared:
                    object.__setattr__(self, key, m)  # (setattr would rename it)
                else:
                    setattr(self, key, m)
        finally:
            _Holding.depth -= 1
        object.__setattr__(self, "_keys", [key for key, _ in items])

    def __setattr__(self, name, value):
        # a child set as an attribute (m.body.sub = ...) is an item, as in torch's, whose
        # containers iterate their _modules: after the others in order and len (append
        # numbers the next one after it), kept in place by an edit (body[0] = x)
        super().__setattr__(name, value)
        keys = vars(self).get("_keys")
        if keys is not None and not _Holding.depth and name not in keys \
                and _submodule(self, name, vars(self).get(name)) is not None:
            object.__setattr__(self, "_keys", keys + [name])

    def __delattr__(self, name):
        super().__delattr__(name)
        keys = vars(self).get("_keys")
        if keys is not None and name in keys:  # (del m.body.sub: torch's drops the item)
            object.__setattr__(self, "_keys", [key for key in keys if key != name])

    def _changed(self, items):
        """_hold(items), a mutation: plans traced through the old items are stale."""
        items = list(items)
        kept = {id(m) for _, m in items}
        _children_changed(self, [_submodule(self, key, m) for key, m in self._items()
                                 if id(m) not in kept])
        # the names of the items this edit drops (renamed by their other places, if any)
        gone = _named_at(self, self._keys, [_submodule(self, key, m) for key, m in
                                            self._items() if id(m) not in kept])
        self._hold(items)
        _name_by_first_places(self, gone)

    def _items(self):
        return [(key, getattr(self, key)) for key in self._keys]

    def __iter__(self):
        return (getattr(self, key) for key in self._keys)

    def __len__(self):
        return len(self._keys)

    def _position(self, i, slices=True) -> int:
        """Index i (an int, numpy's too; negative from the end) as a position, as torch's."""
        try:
            i = operator.index(i)
        except TypeError:
            by_name = (f"; a child by its name: getattr(model, {i!r})"
                       if isinstance(i, str) else "")
            raise TypeError(f"{type(self).__name__} indices must be integers"
                            f"{' or slices' if slices else ''}, not {type(i).__name__}"
                            f"{by_name}") from None
        if not -len(self) <= i < len(self):
            raise IndexError(f"{type(self).__name__} index {i} out of range for "
                             f"{len(self)} modules")
        return i % len(self)

    def __getitem__(self, i):
        if isinstance(i, slice):  # as PyTorch's: a container of the same (shared) modules
            return self._slice(self._items()[i])
        return getattr(self, self._keys[self._position(i)])

    def _slice(self, items):
        """The items of a slice as a container of the same (shared) modules, numbered from
        0, as torch's ModuleList slice."""
        return self._shared([(str(k), m) for k, (_, m) in enumerate(items)])

    def _shared(self, items, kind=None):
        """A container (of type `kind`, by default this one's) of the same modules, under
        the keys given."""
        part = object.__new__(kind or type(self))
        for key, module in items:
            object.__setattr__(part, key, module)  # (setattr would rename their params)
        object.__setattr__(part, "_keys", [key for key, _ in items])
        object.__setattr__(part, "training", self.training)
        object.__setattr__(part, "_view", tuple(module for _, module in items))
        _HELD_AGAIN.update(module for _, module in items)
        return part

    def __setitem__(self, i, module):
        items = self._items()
        position = self._position(i, slices=False)
        items[position] = (items[position][0], module)
        self._changed(items)

    def __delitem__(self, i):
        gone = set(range(len(self))[i] if isinstance(i, slice) else [self._position(i)])
        # the rest numbered again from 0, as torch's (Sequential's too)
        self._changed((str(k), m) for k, m in enumerate(
            m for j, (_, m) in enumerate(self._items()) if j not in gone))

    def pop(self, i=-1):
        """Remove the item at index i (the last by default; a slice too) and return it."""
        item = self[i]
        del self[i]
        return item

    def insert(self, index, module):
        """Put `module` before position `index` (negative from the end; len(self): at the
        end), the items numbered again from 0, as torch's Sequential.insert."""
        n = len(self)
        index = operator.index(index)
        if not -n <= index <= n:
            raise IndexError(f"{type(self).__name__}.insert: index {index} out of range for "
                             f"{n} modules")
        modules = list(self)
        modules.insert(index, module)
        self._changed((str(k), m) for k, m in enumerate(modules))
        return self

    def append(self, module):
        """Add `module` at the end, named by its position (PyTorch's append)."""
        return self.extend([module])

    def __add__(self, other):
        """torch's: a new ModuleList of this one's modules, then `other`'s (any iterable of
        modules), numbered from 0; the modules are shared, not copied."""
        return self._joined(ModuleList, other)

    def _joined(self, kind, other):
        """A `kind` of this one's modules, then `other`'s, numbered from 0, held as a slice
        holds them: setattr would rename the model's own modules (layers.0 -> 0) and mark
        the modules traced through as changed, so that `for layer in self.enc + self.dec:`
        in a compiled forward traced it again at every call."""
        modules = [*self, *self._addend("+", other)]
        for i, module in enumerate(modules):
            # a Module or a compiled one (a new container: no cycle to refuse, as _as_child)
            if not isinstance(module, Module) and _compiled_module(module) is None:
                _refuse_as_child(f"{type(self).__name__}: item {i}", module)
        return self._shared([(str(i), m) for i, m in enumerate(modules)], kind)

    def __iadd__(self, other):
        """torch's: extend(other), in place."""
        return self.extend(self._addend("+=", other))

    def _addend(self, op, other):
        if not hasattr(other, "__iter__"):
            raise GraphcError(f"{type(self).__name__} {op} takes an iterable of modules, got "
                              f"{a_type(other)}", (user_location(),))
        return other

    def extend(self, modules):
        """Add each of `modules` (any iterable) at the end, named by its position (in a
        Sequential slice whose keys hold it, the next number free)."""
        if not hasattr(modules, "__iter__"):
            raise TypeError(f"{type(self).__name__}.extend takes an iterable of modules, "
                            f"got {type(modules).__name__}")
        modules = list(modules)
        for i, module in enumerate(modules):  # every item checked before anything changes
            if _as_child(module, self) is None:
                _refuse_as_child(f"{type(self).__name__}: item {len(self) + i}", module)
        if not modules:
            return self
        # its position, as torch's, unless an item holds that key (a Sequential slice keeps
        # its items' keys: torch's append replaces that item): then the next number free,
        # so that nothing is replaced
        keys = self._keys
        first = max([len(keys)] + [int(k) + 1 for k in keys if k.isdecimal()])
        added = [(str(first + i), module) for i, module in enumerate(modules)]
        # the items already held stay as they are (their attributes already come first);
        # setting all of them again (_changed) made n appends take time growing as n squared
        _children_changed(self)
        _Holding.depth += 1  # (counted once, just above)
        try:
            for key, module in added:
                setattr(self, key, module)
        finally:
            _Holding.depth -= 1
        object.__setattr__(self, "_keys", keys + [key for key, _ in added])
        return self

    def __repr__(self):
        """torch's ModuleList repr: a run of equal items once, `(0-2): 3 x Linear(...)`."""
        runs = []  # [first, last, repr]
        for i, (key, item) in enumerate(self._items()):
            text = repr(_shown_child(self, key, item))
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [f"({first}): {text}" if first == last else
                 f"({first}-{last}): {last - first + 1} x {text}" for first, last, text in runs]
        return type(self).__name__ + "(\n  " + "\n  ".join(
            line.replace("\n", "\n  ") for line in lines) + "\n)"


class Linear(Module):
    """y = x @ weight + bias. The weight is stored (in_features, out_features), the
    transpose of PyTorch's (out_features, in_features): copy a torch weight in as `w.T` (or
    load a torch state_dict with Module.load_torch_state_dict).
    Without `std`, weight and bias are uniform(+-1/sqrt(in_features)) as in PyTorch; with
    `std`, the weight is normal(0, std) and the bias zero (GPT-2's scheme)."""

    _TORCH_TRANSPOSED = ("weight",)

    def __init__(self, in_features, out_features, bias=True, rng=None, std=None,
                 dtype="float32"):
        fan_in, fan_out = (_size("Linear", what, value) for what, value in (
            ("in_features", in_features), ("out_features", out_features)))
        rng, dtype = _rng(rng), _layer_dtype("Linear", dtype)
        # the constructed sizes, as torch's Linear has them (torch code reads them); forward's
        # message tells a weight replaced by a transposed one from its own by them
        object.__setattr__(self, "in_features", fan_in)
        object.__setattr__(self, "out_features", fan_out)
        if std is None:
            bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
            weight = rng.uniform(-bound, bound, (fan_in, fan_out))
            bias_value = rng.uniform(-bound, bound, fan_out) if bias else None
        else:
            weight = rng.normal(0.0, std, (fan_in, fan_out))
            bias_value = np.zeros(fan_out) if bias else None
        self.weight = Parameter(weight.astype(dtype))
        if bias:
            self.bias = Parameter(bias_value.astype(dtype))
        else:
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        # said here, as the other layers say it: matmul's message names neither the layer
        # nor which of its operands is wrong (a 0-d x is left to it)
        features, fan_in = F._shape(x)[-1:], self.weight.shape[0]
        if features and features[0] != fan_in:
            shape = tuple(self.weight.shape)
            # (getattr: a subclass that makes its weight without Linear.__init__ has no sizes)
            sizes = (getattr(self, "in_features", None), getattr(self, "out_features", None))
            if shape == sizes[::-1] != sizes:
                # the weight is the transpose of the one the layer was built with: a torch
                # (out, in) weight put in by hand, which "the layer takes ..." alone would
                # blame on the input. Not when the input is merely wrong (fed the layer's
                # out_features, say), whatever the shapes: the layer's own weight is right
                raise GraphcError(
                    f"{type(self).__name__}: input has {features[0]} features, the weight "
                    f"{shape} takes {fan_in}: graphc's weight is (in_features, out_features), "
                    "the transpose of torch's (out_features, in_features)", (user_location(),))
            raise GraphcError(f"{type(self).__name__}: input has {features[0]} features, the "
                              f"layer takes {fan_in}", (user_location(),))
        _check_dtypes(self._where(), self.weight, input=x)
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self):
        fan_in, fan_out = F._shape(self.weight)
        return f"in_features={fan_in}, out_features={fan_out}, bias={self.bias is not None}"


# how a convolution layer's per-axis setting may be given, by its number of spatial axes
_SETTING_FORMS = {1: "a tuple of one int", 2: "a pair of ints", 3: "a tuple of 3 ints"}


def _conv_init(layer, name, in_channels, out_channels, kernel, stride, padding, dilation,
               groups, bias, padding_mode, rng, dtype):
    """A convolution layer's parameters in PyTorch's layout (out_channels, in_channels /
    groups, *kernel), uniform(+-1/sqrt(fan_in)) as PyTorch's kaiming_uniform(a=sqrt(5)) and
    its bias init, and its settings."""
    if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        raise GraphcError(f"{name}: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                          f"'circular', got {shown(padding_mode)}", (user_location(),))
    if isinstance(padding, str):  # torch refuses these at construction, not at the call
        if padding not in ("same", "valid"):
            raise GraphcError(f"{name}: padding must be 'same', 'valid', an int or "
                              f"{_SETTING_FORMS[len(kernel)]}, got {shown(padding)}",
                              (user_location(),))
        strides = _per_axis(stride, len(kernel))
        # a stride that is no int (a numpy array, a float) is the call's to refuse in one line
        if padding == "same" and all(is_int(s) for s in strides) \
                and any(s != 1 for s in strides):
            raise GraphcError(f"{name}: padding='same' needs stride 1, as in PyTorch, got "
                              f"stride={shown(stride)}", (user_location(),))
    in_channels = _size(name, "in_channels", in_channels)
    out_channels = _size(name, "out_channels", out_channels)
    if min(kernel) < 0:
        raise GraphcError(f"{name}: kernel_size must not be negative, got {tuple(kernel)}",
                          (user_location(),))
    # a numpy integer too (np.int64 from a config array); not a bool or a float
    groups = _size(name, "groups", groups, least=1)
    if in_channels % groups or out_channels % groups:
        raise GraphcError(f"{name}: in_channels {in_channels} and out_channels "
                          f"{out_channels} must divide by groups {groups}", (user_location(),))
    rng, dtype = _rng(rng), _layer_dtype(name, dtype)
    fan_in = in_channels // groups * math.prod(kernel)
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
    shape = (out_channels, in_channels // groups) + tuple(kernel)
    layer.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
    if bias:
        layer.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype))
    else:
        object.__setattr__(layer, "bias", None)
    for setting, value in [("stride", stride), ("padding", padding), ("dilation", dilation),
                           ("groups", groups), ("padding_mode", padding_mode)]:
        object.__setattr__(layer, setting, value)


def _per_axis(value, axes: int) -> tuple:
    """A setting (an int, or one per axis) as a tuple of one per axis, as torch's layers keep
    their settings (its _single, _pair, _ntuple)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes


def _conv_repr(layer):
    """torch's _ConvNd.extra_repr, the transposed convolutions' too: the channels and the
    kernel, the stride, and the other settings where not their defaults, each a tuple of one
    per spatial axis."""
    shape = tuple(F._shape(layer.weight))
    out_channels, in_channels, kernel = shape[0], shape[1] * layer.groups, shape[2:]
    if hasattr(layer, "output_padding"):  # a ConvTranspose: weight (in, out / groups, *k)
        in_channels, out_channels = shape[0], shape[1] * layer.groups

    def axes(value):
        if isinstance(value, str):
            return value
        return tuple(int(v) if is_int(v) else v for v in _per_axis(value, len(kernel)))
    text = f"{in_channels}, {out_channels}, kernel_size={kernel}, stride={axes(layer.stride)}"
    for name, default in (("padding", 0), ("dilation", 1), ("output_padding", 0)):
        value = axes(getattr(layer, name, default))
        if value != (default,) * len(kernel):
            text += f", {name}={value}"
    if layer.groups != 1:
        text += f", groups={layer.groups}"
    if layer.bias is None:
        text += ", bias=False"
    if layer.padding_mode != "zeros":
        text += f", padding_mode={layer.padding_mode}"
    return text


class Conv2d(Module):
    """torch.nn.Conv2d over (N, C, H, W) or (C, H, W) input (graphc.conv2d). The weight is stored in
    PyTorch's layout (out_channels, in_channels / groups, kH, kW), so a torch weight copies in
    as it is; weight and bias are uniform(+-1/sqrt(fan_in)), fan_in = in_channels / groups *
    kH * kW, which is PyTorch's kaiming_uniform(a=sqrt(5)) and its bias init. padding_mode:
    'zeros', 'reflect', 'replicate' or 'circular', as PyTorch's."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", rng=None,
                 dtype="float32"):
        _conv_init(self, "Conv2d", in_channels, out_channels,
                   F._pair("Conv2d", "kernel_size", kernel_size), stride, padding, dilation,
                   groups, bias, padding_mode, rng, dtype)

    def forward(self, x):
        stride, padding, dilation, groups, mode = (self._setting(name, x) for name in (
            "stride", "padding", "dilation", "groups", "padding_mode"))
        if mode != "zeros" and not (isinstance(padding, str) and padding == "valid"):
            # as PyTorch: x padded by the mode, then a convolution without padding
            given = None
            if isinstance(padding, str) and padding == "same":
                padding = F._same_padding("Conv2d", F._shape(self.weight)[2:],
                                          F._pair("Conv2d", "stride", stride),
                                          F._pair("Conv2d", "dilation", dilation))
            else:
                given = F._pair("Conv2d", "padding", padding)
                padding = [(p, p) for p in given]
            x, padding = F._pad2d_mode("Conv2d", x, padding, mode, given), 0
        return F.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)

    extra_repr = _conv_repr


class Conv1d(Module):
    """torch.nn.Conv1d over (N, C, L) or (C, L) input (graphc.conv1d): the weight in
    PyTorch's layout (out_channels, in_channels / groups, kernel_size) and initialisation
    (uniform(+-1/sqrt(fan_in))); padding_mode 'zeros', 'reflect', 'replicate' or 'circular'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", rng=None,
                 dtype="float32"):
        _conv_init(self, "Conv1d", in_channels, out_channels,
                   (F._single("Conv1d", "kernel_size", kernel_size),), stride, padding,
                   dilation, groups, bias, padding_mode, rng, dtype)

    def forward(self, x):
        stride, padding, dilation, groups, mode = (self._setting(name, x) for name in (
            "stride", "padding", "dilation", "groups", "padding_mode"))
        if mode != "zeros" and not (isinstance(padding, str) and padding == "valid"):
            k, given = F._shape(self.weight)[2], None
            if isinstance(padding, str) and padding == "same":
                padding = F._same_padding("Conv1d", (1, k),
                                          (1, F._single("Conv1d", "stride", stride)),
                                          (1, F._single("Conv1d", "dilation", dilation)))[1]
            else:
                given = F._single("Conv1d", "padding", padding)
                padding = (given, given)
            if len(F._shape(x)) not in (2, 3):
                raise GraphcError(f"Conv1d: x must be 3-d (N, C, L) or 2-d (C, L), got shape "
                                  f"{tuple(F._shape(x))}", (user_location(),))
            x = F.squeeze(F._pad2d_mode("Conv1d", F.expand_dims(x, -2), ((0, 0), padding),
                                        mode, given), -2)
            padding = 0
        return F.conv1d(x, self.weight, self.bias, stride, padding, dilation, groups)

    extra_repr = _conv_repr


class _Functional(Module):
    """A layer that is `_function(x, *settings)`, its settings (named by `_settings`) kept as
    attributes and read as guarded settings at every call: a compiled plan traced with one
    value is not reused after the user sets another."""

    _settings: tuple = ()
    # torch's extra_repr where it is not each setting as `name=value` (and inplace=True when
    # set): a template over the layer's attributes, "{lambd}" (Hardshrink(0.5)), or ""
    _repr_format: str | None = None

    def _keep(self, **settings):
        for name, value in settings.items():
            object.__setattr__(self, name, value)

    def forward(self, x):
        return self._function(x, *(self._setting(name, x) for name in self._settings))

    def extra_repr(self):
        if self._repr_format is not None:
            return self._repr_format.format_map(vars(self))
        return _with_inplace(self, ", ".join(f"{name}={getattr(self, name)!r}"
                                             for name in self._settings))


class Upsample(_Functional):
    """torch.nn.Upsample(size=None, scale_factor=None, mode='nearest', align_corners=None,
    recompute_scale_factor=None): graphc.interpolate with these settings."""

    _function = staticmethod(interpolate)
    _settings = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        self._keep(size=size, scale_factor=scale_factor, mode=mode,
                   align_corners=align_corners, recompute_scale_factor=recompute_scale_factor)

    def extra_repr(self):  # torch's: the scale factor (floats) if given, else the size
        factor = self.scale_factor
        if not factor:
            return f"size={self.size!r}, mode={self.mode!r}"
        factor = tuple(map(float, factor)) if isinstance(factor, (tuple, list)) else \
            float(factor)
        return f"scale_factor={factor!r}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """torch.nn.UpsamplingNearest2d(size=None, scale_factor=None): Upsample with mode
    'nearest' (torch's deprecated spelling, kept for its users)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """torch.nn.UpsamplingBilinear2d(size=None, scale_factor=None): Upsample with mode
    'bilinear' and align_corners=True, as torch's (not Upsample's default False)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class _MaxPool(_Functional):
    """torch's max pools' settings, in torch's order; each class names its function (as
    torch's _MaxPoolNd). return_indices=True: forward returns (out, indices), as torch's."""

    _settings = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        self._keep(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                   ceil_mode=ceil_mode, return_indices=return_indices)

    def extra_repr(self):  # torch's: the stride that applies (kernel_size's by default)
        stride = self.kernel_size if self.stride is None else self.stride
        return (f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


def _window_repr(layer):
    """torch's extra_repr of an average pool or a max unpool: the kernel size, the stride
    that applies (the kernel size's by default) and the padding, each a tuple of one per
    axis where torch's layer keeps one (`_repr_axes` of them; 0: as given)."""
    stride = layer.kernel_size if layer.stride is None else layer.stride
    axes = layer._repr_axes
    return ", ".join(f"{name}={_per_axis(value, axes) if axes else value}" for name, value in (
        ("kernel_size", layer.kernel_size), ("stride", stride), ("padding", layer.padding)))


class _AvgPool(_Functional):
    """torch's average pools' settings (as torch's _AvgPoolNd)."""

    _settings = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
    _repr_axes = 0  # torch's AvgPool2d shows its settings as given, AvgPool1d's as tuples

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        self._keep(kernel_size=kernel_size, stride=stride, padding=padding,
                   ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    extra_repr = _window_repr


class MaxPool2d(_MaxPool):
    """torch.nn.MaxPool2d (graphc.max_pool2d); stride defaults to kernel_size."""

    _function = staticmethod(F.max_pool2d)


class AvgPool2d(_AvgPool):
    """torch.nn.AvgPool2d (graphc.avg_pool2d), divisor_override too (torch's AvgPool1d has
    none)."""

    _function = staticmethod(F.avg_pool2d)
    _settings = _AvgPool._settings + ("divisor_override",)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self._keep(divisor_override=divisor_override)


class Flatten(Module):
    """torch.nn.Flatten: axes start_dim..end_dim merged into one (by default all but the
    first, the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        object.__setattr__(self, "start_dim", start_dim)
        object.__setattr__(self, "end_dim", end_dim)

    def forward(self, x):
        return F.flatten(x, self._setting("start_dim", x), self._setting("end_dim", x),
                         name="Flatten")

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _no_negative_indices(idx, rows, layer="Embedding"):
    """torch's Embedding refuses a negative index, where take (numpy's) counts it from the end
    (and -1 would reach a padding row, giving it a gradient). A concrete one is refused here;
    a traced one where the plan runs, with its value (sent past the table's end, it was
    refused as that row, 'index 4 is out of bounds', under gc.vmap).
    Indices that are not integers (bool ones) are left to take, which refuses them in the
    line it gives eagerly ("indices must be integers")."""
    if isinstance(idx, SymbolicValue):
        if isinstance(rows, Dim) or F._dtype(idx) not in INT_DTYPES:
            return idx
        return F.check_index(idx, rows, 0, negative=False)
    values = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if values.size and np.issubdtype(values.dtype, np.integer) and values.min() < 0:
        raise GraphcError(f"{layer}: index {values.min()} is negative; indices must be in "
                          f"[0, {rows}), as torch's", (user_location(),))
    return idx


def _refuse_unsupported(where, max_norm=None, scale_grad_by_freq=False, sparse=False,
                        why=", as gc.nn.Embedding's is not (its rows are not renormalised, its "
                            "gradient is dense and unscaled)"):
    """One line naming `where` for the first of torch's Embedding settings given a value
    graphc lacks (their defaults, None and False, are graphc's behaviour); `why` ends the
    line. Embedding's and EmbeddingBag's constructors and from_pretrained call it."""
    for name, value, given in (("max_norm", max_norm, max_norm is not None),
                               ("scale_grad_by_freq", scale_grad_by_freq,
                                bool(scale_grad_by_freq)), ("sparse", sparse, bool(sparse))):
        if given:
            raise GraphcError(f"{where}: {name}={shown(value)} is not supported{why}",
                              (user_location(),))


def _padding_index(layer, padding_idx, num):
    """Embedding's padding_idx as a row in [0, num), or None; negative counts from the end,
    as torch's."""
    if padding_idx is None:
        return None
    if not is_int(padding_idx) or not -num <= padding_idx < num:
        raise GraphcError(f"{layer}: padding_idx must be an int in [-{num}, {num}), got "
                          f"{shown(padding_idx)}", (user_location(),))
    return int(padding_idx) % num


def _embedding_table(layer, num_embeddings, embedding_dim, rng, std, dtype, padding_idx,
                     table=None):
    """Embedding's and EmbeddingBag's weight and padding row: `table` (from_pretrained's, as
    torch's _weight: kept as given, its padding row too, nothing drawn) or normal(0, std or 1)
    draws with the padding row zeroed; sizes and padding_idx refused in one line naming
    `layer`."""
    num = _size(layer, "num_embeddings", num_embeddings)
    dim = _size(layer, "embedding_dim", embedding_dim)
    padding_idx = _padding_index(layer, padding_idx, num)
    if table is None:
        rng, dtype = _rng(rng), _layer_dtype(layer, dtype)
        table = rng.normal(0.0, 1.0 if std is None else std, (num, dim)).astype(dtype)
        if padding_idx is not None:
            table[padding_idx] = 0
    return table, padding_idx


def _pretrained_table(where, embeddings, padding_idx):
    """from_pretrained's (Embedding's, EmbeddingBag's) copy of `embeddings`, a 2-d float
    array or tensor (a torch one too), in its dtype; a bad one or a padding_idx outside it
    refused in one line naming `where`."""
    if isinstance(embeddings, Tensor):
        embeddings = embeddings.data
    elif hasattr(embeddings, "detach"):  # a torch tensor, a Parameter too
        embeddings = read_foreign_array(embeddings, f"{where}: embeddings")
    table = np.array(embeddings)
    if table.ndim != 2:
        raise GraphcError(f"{where}: embeddings must be 2-dimensional (num_embeddings, "
                          f"embedding_dim), got shape {table.shape}", (user_location(),))
    if not is_float(table.dtype):
        raise GraphcError(f"{where}: embeddings must hold floating-point numbers, got "
                          f"{table.dtype}", (user_location(),))
    _padding_index(where, padding_idx, table.shape[0])  # (refused naming this call)
    return table


def embedding_rows(where, weight, idx, padding):
    """The rows of `weight` at `idx`, those at the row `padding` (torch's padding_idx, None for
    none; negative counts from the end) passing no gradient back: nn.Embedding's forward and
    graphc.nn.functional.embedding."""
    refuse_array_container(idx, where, "one array of indices")
    idx = F._index_operand(idx)  # a list as take reads it, for the padding test below too
    rows = F.take(weight, _no_negative_indices(idx, F._shape(weight)[0], where))
    if padding is None:
        return rows
    num = int(F._shape(weight)[0])
    if not is_int(padding) or not -num <= padding < num:
        raise GraphcError(f"{where}: padding_idx must be an int in [-{num}, {num}), "
                          f"got {shown(padding)}", (user_location(),))
    padding %= num  # set after construction, a negative one counts from the end, as torch
    # the padding positions' rows pass no gradient back: the table's row gets none
    at_padding = F.expand_dims(F.equal(idx, padding), -1)
    return F.where(at_padding, F.stop_gradient(rows), rows)


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) table; normal(0, 1) as PyTorch without
    `std`. `padding_idx` (keyword: torch's third positional argument is graphc's rng;
    negative counts from the end), as torch's: that row starts at zero and gets no gradient,
    so it stays what it is. torch's `max_norm` (`norm_type` qualifies it) is refused: torch
    renormalises the looked-up rows of the weight in place at each forward. torch's
    `scale_grad_by_freq` and `sparse` are taken at their default, False (the gradient is
    dense and unscaled), and refused True."""

    def __init__(self, num_embeddings, embedding_dim, rng=None, std=None, dtype="float32", *,
                 padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 sparse=False, _weight=None):
        if max_norm is not None:
            raise GraphcError(
                f"Embedding: max_norm={shown(max_norm)} is not supported (torch renormalises the "
                "looked-up rows of the weight in place at each forward); leave it None and "
                "rescale the weight's rows between steps if they must stay bounded",
                (user_location(),))
        # torch's defaults, False, are graphc's behaviour: taken (they were 'unknown keyword
        # argument', where from_pretrained took them); True is refused, as there
        _refuse_unsupported("Embedding", scale_grad_by_freq=scale_grad_by_freq, sparse=sparse,
                            why=" (graphc's gradient is dense and unscaled): leave it False")
        weight, padding_idx = _embedding_table("Embedding", num_embeddings, embedding_dim,
                                               rng, std, dtype, padding_idx, _weight)
        self.weight = Parameter(weight)
        object.__setattr__(self, "padding_idx", padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """torch's: an Embedding whose weight is a copy of `embeddings`, a 2-d float array or
        tensor (a torch one too), of its dtype. As torch's, freeze=True (the default) sets
        the weight's requires_grad False, padding_idx's row stays as given (it gets no
        gradient) and no table is drawn (graphc.nn's generator is not advanced). max_norm,
        scale_grad_by_freq and sparse are refused, as the constructor refuses them."""
        where = "Embedding.from_pretrained"
        _refuse_unsupported(where, max_norm, scale_grad_by_freq, sparse)
        table = _pretrained_table(where, embeddings, padding_idx)
        # through cls, as torch's, so that a subclass's __init__ runs (its own attributes),
        # and by keyword in torch's order, as torch 2.13 calls it: a subclass whose sizes are
        # keyword-only builds, one whose positional parameters mean other things does not
        rows, cols = table.shape
        layer = cls(num_embeddings=rows, embedding_dim=cols, _weight=table,
                    padding_idx=padding_idx)
        layer.weight.requires_grad_(not freeze)
        return layer

    def forward(self, idx):
        return embedding_rows("Embedding", self.weight, idx, self._setting("padding_idx", idx))

    def extra_repr(self):
        num, dim = F._shape(self.weight)
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{num}, {dim}{padding}"


def _normalized_shape(shape, layer):
    """torch's normalized_shape: an int or a tuple of ints, the trailing axes normalised."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if not shape or not all(is_int(d) and d > 0 for d in shape):
        raise GraphcError(f"{layer}: normalized_shape must be a positive int or a tuple of "
                          f"them, got {shown(shape)}", (user_location(),))
    return tuple(int(d) for d in shape)


def _norm_settings(module, layer, normalized_shape, eps, weight, bias, dtype):
    """A norm layer's normalized_shape and eps, its weight (ones) if `weight` and its bias
    (zeros) if `bias`, each of that shape; a missing one is None (bias=None: the layer has
    no bias attribute, as torch's RMSNorm)."""
    shape = _normalized_shape(normalized_shape, layer)
    dtype = _layer_dtype(layer, dtype, parameters=bool(weight))
    object.__setattr__(module, "normalized_shape", shape)
    for name, wanted, fill in (("weight", weight, np.ones), ("bias", bias, np.zeros)):
        if wanted is None:
            continue
        if wanted:
            setattr(module, name, Parameter(fill(shape, dtype)))
        else:
            object.__setattr__(module, name, None)
    if eps is not None:  # (RMSNorm's None: its dtype's epsilon)
        eps = F._number(f"{layer}: eps", eps, True)  # (not float(): it takes numpy's complex)
    object.__setattr__(module, "eps", eps)


def _over_trailing(layer, norm, x, shape, *params):
    """norm (over the last axis) applied over the trailing axes `shape` of x, as torch's
    normalized_shape: those axes are flattened into one, and back. An x that does not end
    in `shape` is refused naming `layer`: the op's message would blame the weight, and
    without one (elementwise_affine=False) it normalised over the wrong axis."""
    given = F._shape(x)
    lead = given[:max(0, len(given) - len(shape))]
    trailing = given[len(lead):]
    if trailing != tuple(shape):
        if len(shape) == 1 and given:
            raise GraphcError(f"{layer}: input has {given[-1]} features, the layer takes "
                              f"{shape[0]}", (user_location(),))
        raise GraphcError(f"{layer}: the input's trailing axes {trailing} are not the "
                          f"normalized_shape {shape}", (user_location(),))
    if len(shape) == 1:
        return norm(x, *params)
    flat = [None if p is None else F.reshape(p, (-1,)) for p in params[:-1]] + [params[-1]]
    return F.reshape(norm(F.reshape(x, lead + (-1,)), *flat), F._shape(x))


class LayerNorm(Module):
    """torch.nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias), its arguments in
    its order: x normalised over its trailing `normalized_shape` axes (biased variance),
    times weight plus bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype="float32"):
        _norm_settings(self, "LayerNorm", normalized_shape, eps, elementwise_affine,
                       elementwise_affine and bias, dtype)

    def forward(self, x):
        return _over_trailing(type(self).__name__, F.layer_norm, x, self.normalized_shape,
                              self.weight, self.bias, self._setting("eps", x))

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.weight is not None}, bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(mean(x**2) + eps) * weight over the trailing `normalized_shape` axes, as
    torch.nn.RMSNorm (eps=None: the machine epsilon of the dtype it is computed in, float32's
    for a half input)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype="float32"):
        _norm_settings(self, "RMSNorm", normalized_shape, eps, elementwise_affine, None,
                       dtype)

    def forward(self, x):
        return _over_trailing(type(self).__name__, F.rms_norm, x, self.normalized_shape,
                              self.weight, self._setting("eps", x))

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.weight is not None}")


class GroupNorm(Module):
    """torch.nn.GroupNorm: x (N, C, *) normalised over each group of C // num_groups channels
    and the other axes (biased variance, eps), then scaled and shifted per channel."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype="float32", *,
                 bias=True):
        num_groups = _size("GroupNorm", "num_groups", num_groups, least=1)
        num_channels = _size("GroupNorm", "num_channels", num_channels, least=1)
        if num_channels % num_groups:
            raise GraphcError(f"GroupNorm: num_channels ({num_channels}) must be a multiple "
                              f"of num_groups ({num_groups})", (user_location(),))
        dtype = _layer_dtype("GroupNorm", dtype, parameters=bool(affine))
        object.__setattr__(self, "num_groups", int(num_groups))
        object.__setattr__(self, "num_channels", int(num_channels))
        object.__setattr__(self, "eps", F._number("GroupNorm: eps", eps, True))  # (as LayerNorm's)
        self.weight = Parameter(np.ones(num_channels, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype)) if affine and bias else None

    def forward(self, x):
        shape = F._shape(x)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise GraphcError(f"GroupNorm: expected input (N, {self.num_channels}, ...), got "
                              f"shape {tuple(shape)}", (user_location(),))
        return F.group_norm(x, self._setting("num_groups", x), self.weight, self.bias,
                            self._setting("eps", x))

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine="
                f"{self.weight is not None}, bias={self.bias is not None}")


class Identity(Module):
    """torch.nn.Identity: its input, unchanged (any arguments are accepted and ignored)."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


class Sequential(ModuleList):
    """Modules applied in order; children are named "0", "1", ... as in PyTorch, so the
    parameters are "0.weight", "2.bias", ...; or, given one OrderedDict (a dict), by its
    keys, as torch's. As torch's, a slice keeps its items' keys (model[2:]'s parameters are
    "2.weight", ...), and a deletion or an insertion numbers the items again from 0."""

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], dict):
            object.__setattr__(self, "_keys", [])  # (a key "_keys" is refused, as taken)
            for key in modules[0]:
                self._check_new_name("Sequential", key, lambda held: False)
            self._note_view(modules[0].values())  # (OrderedDict(model.layers.named_children()))
            self._hold(modules[0].items())
            return
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        super().__init__(modules)

    def _slice(self, items):
        return self._shared(items)  # torch's Sequential slice keeps the keys

    def _addend(self, op, other):
        if not isinstance(other, Sequential):  # (torch's takes a Sequential alone, too)
            raise GraphcError(f"Sequential {op} takes another Sequential, got "
                              f"{a_type(other)}", (user_location(),))
        return other

    def __add__(self, other):
        """torch's: a new Sequential of this one's modules, then `other`'s, numbered from 0;
        the modules are shared, not copied."""
        return self._joined(Sequential, other)

    def __mul__(self, times):
        """torch's: a new Sequential of this one's modules `times` over, numbered from 0;
        the modules are shared, not copied (a layer repeated is one layer, trained once)."""
        if not is_int(times) or isinstance(times, (bool, np.bool_)):
            return NotImplemented  # (Python's TypeError, as torch's)
        modules = list(self) * self._factor(times)
        return self._shared([(str(i), m) for i, m in enumerate(modules)], Sequential)

    __rmul__ = __mul__

    def __imul__(self, times):
        """torch's: this one's modules added `times - 1` times more, in place (an
        OrderedDict one's too, numbered after its keys, where torch's raises KeyError)."""
        if not is_int(times) or isinstance(times, (bool, np.bool_)):
            return NotImplemented
        return self.extend(list(self) * (self._factor(times) - 1))

    def _factor(self, times) -> int:
        if times <= 0:
            raise GraphcError(f"Sequential * {times}: the factor must be positive, as "
                              "torch's", (user_location(),))
        return int(times)

    __repr__ = Module.__repr__  # torch's Sequential shows every item, equal ones too

    def forward(self, x):
        for m in self:
            x = m(x)
        return x


# ---- activations ------------------------------------------------------------------------------
class ReLU(Module):
    def __init__(self, inplace=False):
        _keep_inplace(self, inplace)

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self):
        return _with_inplace(self, "")


class GELU(Module):
    """approximate='none' (the exact erf form, PyTorch's default) or 'tanh' (GPT-2's)."""

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise GraphcError(f"GELU: approximate must be 'none' or 'tanh', got "
                              f"{shown(approximate)}", (user_location(),))
        object.__setattr__(self, "approximate", approximate)

    def forward(self, x):
        return F.gelu(x, self._setting("approximate", x))

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def __init__(self, inplace=False):
        _keep_inplace(self, inplace)

    def forward(self, x):
        return F.silu(x)

    def extra_repr(self):
        return _with_inplace(self, "")


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        # (F._number: a numpy complex is refused, which float() takes; a 0-d tensor and a
        # bool are taken, as torch's layer takes them)
        object.__setattr__(self, "negative_slope",
                           F._number("LeakyReLU: negative_slope", negative_slope, True))
        _keep_inplace(self, inplace)

    def forward(self, x):
        return F.leaky_relu(x, self._setting("negative_slope", x))

    def extra_repr(self):
        return _with_inplace(self, f"negative_slope={self.negative_slope}")


# ---- dropout and its keys ---------------------------------------------------------------------
class _Evaluating(threading.local):
    depth = 0


_EVALUATING = _Evaluating()


@contextlib.contextmanager
def _evaluating():
    """Every Dropout called inside is the identity, whatever its module's mode: how
    gc.Trainer evaluates, as Lightning's validation loop puts the model in eval() (a loss
    `loss(params, batch)` has no way to switch the model's mode itself)."""
    _EVALUATING.depth += 1
    try:
        yield
    finally:
        _EVALUATING.depth -= 1


class _KeyStack(threading.local):
    def __init__(self):
        self.keys = []
        # per block: was it opened while a graph was being traced (inside the function)?
        self.in_trace = []


_KEYS = _KeyStack()


@contextlib.contextmanager
def rng_key(key):
    """Dropout layers called inside draw their masks from `key` (an int64 scalar: a traced
    input of the step, an array or a Python int); each dropout site mixes in its own salt.
    Without this block a fresh key is used per eager call or per compiled call.

    The sites are numbered in call order from the opening of the outermost block, eagerly
    as in a graph being traced (a block opened around a compiled call: from the start of its
    graph): the same key draws the same masks on every run (a resumed training run replays
    them), and the masks of a compiled function that makes the same calls."""
    _check_rng_key(key)
    # The outermost block numbers its sites from 1 in a numbering of its own, wherever it is
    # opened (in a graph being traced as eagerly, inside a loop body or a branch: the loops'
    # iteration numbers are still mixed in), and the sites after it go on past the numbers
    # it used. Numbering from the opening in one mode only gave the keyed sites after an
    # unkeyed one other masks compiled than eagerly; numbering within an enclosing construct
    # made an eager loop's masks depend on how many constructs had run before in the process.
    graph = current_graph()
    counter = (F.EAGER_DROPOUT if graph is None else graph) if not _KEYS.keys else None
    if counter is not None:
        before, scope = counter._next_salt, counter.salt_scope
        counter._next_salt, counter.salt_scope = 0, ()  # (): plain numbers, its own count
    _KEYS.keys.append(key)
    _KEYS.in_trace.append(graph is not None)
    try:
        yield key
    finally:
        _KEYS.keys.pop()
        _KEYS.in_trace.pop()
        if counter is not None:
            counter._next_salt, counter.salt_scope = counter._next_salt + before, scope


def _check_rng_key(key):
    """rng_key's key: an integer scalar, or one line at the `with` naming what it got. A
    gc.random key (shape (2,)), which a JAX user would hand it, failed only at the first
    Dropout inside, as `dropout_mask(i64[2])`, naming neither rng_key nor the key."""
    got = F.seed_problem(key)  # (gc.dropout's seed= says it so too)
    if got:
        raise GraphcError(f"rng_key: the key must be an integer scalar (a seed, Python int "
                          f"or int64 0-d array or input), got {got}", (user_location(),))


def _call_time_key():
    """The key of a block opened outside any trace around a compiled call: read by the plan
    at each call (_AutoKey), never baked into it."""
    if _KEYS.keys and not _KEYS.in_trace[-1] and not isinstance(_KEYS.keys[-1], SymbolicValue):
        return np.int64(np.asarray(getattr(_KEYS.keys[-1], "data", _KEYS.keys[-1])))
    return None


class _AutoKey:
    """Stands for the implicit `dropout_key` input of a traced graph, registered as the
    graph's bound value for that input: the compiled plan reads `.data` once per call (as it
    reads a Parameter's), so every call gets a new key without the caller passing one, or
    the key of the rng_key block the call is made in."""

    name = "dropout_key"

    @property
    def data(self):
        key = _call_time_key()
        return key if key is not None else np.int64(_GENERATOR[0].integers(0, 2**62))


_AUTO_KEY = _AutoKey()


def current_key(like=None):
    """The key for a dropout mask: the innermost rng_key(...) block's; else, while tracing,
    the graph's implicit `dropout_key` input; else (eager) a fresh draw. A trace inside a
    block opened outside it with a concrete key takes that implicit input too, which the
    plan reads at every call: a constant would replay the first call's key forever."""
    graph = getattr(like, "graph", None) or current_graph()
    if _KEYS.keys and (graph is None or _call_time_key() is None):
        return _KEYS.keys[-1]
    if graph is None:
        return _AUTO_KEY.data
    node = graph.bound_params.get(id(_AUTO_KEY))
    if node is None:
        node = graph.input(_AUTO_KEY.name, (), "int64")
        graph.bound_params[id(_AUTO_KEY)] = node
        graph.param_values[_AUTO_KEY.name] = _AUTO_KEY
    return node


def dropout_key(p, seed=None, like=None):
    """The key of a dropout of rate p: `seed` if given, else current_key(like) where a mask
    is drawn (0 < p < 1), else None: p = 1 zeroes every value without one (gc.dropout), so
    no key is drawn for it (an eager draw from the generator, a traced step's key input)."""
    if seed is None and is_real(p) and 0.0 < p < 1.0:
        return current_key(like)
    return seed


def keyed_dropout(x, p, seed=None, salt=None, like=None):
    """gc.dropout of x at rate p keyed by dropout_key(p, seed, like or x): the dropout of
    the Dropout layers, the recurrent layers and the channel dropouts."""
    return F.dropout(x, p, dropout_key(p, seed, x if like is None else like), salt=salt)


def _probability(layer, what, value):
    """A dropout rate (Dropout's p, MultiheadAttention's and the Transformer layers'
    dropout) as a float in [0, 1] (1: every value zeroed, as torch's), read as LeakyReLU's
    slope is, or one line naming the layer and the argument."""
    number = F._number(f"{layer}: {what}", value, True)
    if not 0.0 <= number <= 1.0:
        raise GraphcError(f"{layer}: {what} must be in [0, 1], got {shown(value)}",
                          (user_location(),))
    return number


class Dropout(Module):
    """Inverted dropout (zeroes with probability p, scales the rest by 1/(1-p)) while
    `training` is True; the identity otherwise. The key comes from `current_key()`."""

    def __init__(self, p=0.5, inplace=False):
        object.__setattr__(self, "p", _probability("Dropout", "p", p))
        object.__setattr__(self, "training", True)
        _keep_inplace(self, inplace)

    def forward(self, x):
        return _dropout_while_training(self, "p", x)

    def extra_repr(self):
        return f"p={self.p}, inplace={getattr(self, 'inplace', False)}"


def _dropout_while_training(module, setting, x):
    """x with dropout of probability module.<setting> while module.training (Dropout's p,
    MultiheadAttention's dropout, which torch holds as a number, not a submodule)."""
    p = module._setting(setting, x)  # model.train()/eval(), or another p, selects another
    if p > 0.0:  # plan
        module._setting("training", x)
    if p == 0.0 or _EVALUATING.depth or not module.training:  # (p = 0: no guard on training)
        return x
    return keyed_dropout(x, p)


# ---- attention --------------------------------------------------------------------------------
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *, seed=None,
                                 salt=None):
    """torch.nn.functional.scaled_dot_product_attention (ir/ops/attention.py has the
    semantics). Its dropout, as the Dropout layers', draws from current_key() unless a seed is
    given: the innermost rng_key block's key, or the traced step's implicit dropout key that
    gc.Trainer feeds every step."""
    # (not _check_mask_kind: sdpa's bool mask is True = may attend, and the op names an
    # integer one in those terms)
    _refuse_non_array_mask("scaled_dot_product_attention", "attn_mask", attn_mask)
    return _attention.scaled_dot_product_attention(
        query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa,
        seed=dropout_key(dropout_p, seed, query), salt=salt)


def _refuse_non_array_mask(where, what, mask):
    """A mask given as a list or tuple, or as another library's array (a torch tensor), in
    one line naming the argument: the op's own line ("cannot use a list as a tensor
    operand") named neither."""
    if isinstance(mask, (list, tuple)):
        raise GraphcError(f"{where}: {what} is {a_type(mask)}; give an array "
                          "(np.asarray), as torch's takes a tensor", (user_location(),))
    foreign = foreign_array_name(mask) if not isinstance(mask, (Tensor, SymbolicValue)) \
        else None
    if foreign is not None:
        raise GraphcError(f"{where}: {what} is a {foreign}, another library's array; pass a "
                          f"numpy array ({what}.numpy(), or np.asarray({what}))",
                          (user_location(),))


def _check_mask_kind(where, what, mask):
    """torch's rule for an attention mask: bool (True: not attended) or float (added to the
    scores). An integer one (a 0/1 array, torch's old uint8 masks) is refused, as torch's:
    cast to float, as a dtype error used to advise, it masks nothing. So is a list (torch
    takes a tensor; the mask's first read, `.ndim`, failed as a raw AttributeError) and
    another library's array (a torch tensor, torch's generate_square_subsequent_mask's, met
    numpy's "Cannot interpret 'torch.float32' as a data type"), in one line naming the
    argument, as graphc refuses such operands."""
    if mask is None:
        return
    _refuse_non_array_mask(where, what, mask)
    dtype = mask.dtype if hasattr(mask, "dtype") else np.asarray(mask).dtype
    if str(dtype) != "bool" and not is_float(dtype):
        raise GraphcError(f"{where}: {what} of dtype {dtype} is not supported: use a bool "
                          "mask (True = not attended), or a float one (added to the scores), "
                          "as torch's", (user_location(),))


def _check_mask_shape(where, what, mask, allowed):
    """Refuses `mask` (None: none given) unless its shape is one of `allowed`'s values,
    in one line naming them by their keys (what each axis is)."""
    if mask is None:
        return
    shape = tuple(F._shape(mask))
    if shape not in allowed.values():
        options = " or ".join(f"{axes} = {dims}" for axes, dims in allowed.items())
        raise GraphcError(f"{where}: {what} has shape {shape}; it must be {options}",
                          (user_location(),))


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention's computation and parameters, in graphc's weight layout:
    in_proj_weight is (E, 3E) (torch's transposed; q, k, v columns in that order),
    in_proj_bias (3E,), out_proj a Linear(E, E). Initialised as PyTorch: xavier-uniform
    in_proj_weight, zero biases, out_proj weight uniform(+-1/sqrt(E)).

    forward(query, key=None, value=None, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=None) (torch's order) -> (output, weights
    averaged over heads, or per head (B, H, T, S) with average_attn_weights=False, or None).
    key/value default to query (self-attention); masks are boolean with True = not allowed
    (as PyTorch's) or float and added; `causal=True` (or is_causal=True) masks future
    positions; a query the masks leave no key gives zero weights (torch's safe softmax, as
    its need_weights=False path), not NaN. batch_first=False (PyTorch's default) takes
    (T, B, E). add_bias_kv (learned
    bias_k and bias_v, (1, 1, E), xavier-normal) and add_zero_attn append one key and value
    each that every query may attend to, as torch's (the weights then have S + 1 or S + 2
    columns). kdim and vdim (the
    key's and value's widths, E by default), as torch's: where they differ from E, the
    projections are three, q_proj_weight (E, E), k_proj_weight (kdim, E) and v_proj_weight
    (vdim, E) (torch's transposed, each xavier-uniform), and in_proj_weight is None
    (_qkv_same_embed_dim False, as torch's; head_dim is E / num_heads)."""

    _TORCH_TRANSPOSED = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, *, kdim=None, vdim=None, batch_first=False,
                 causal=False, rng=None, dtype="float32"):
        # torch's positional order up to add_zero_attn; kdim and on by keyword (torch's
        # positions there hold kdim, vdim and batch_first, but graphc's rng and dtype too)
        embed_dim = _size("MultiheadAttention", "embed_dim", embed_dim, least=1)
        num_heads = _size("MultiheadAttention", "num_heads", num_heads, least=1)
        if embed_dim % num_heads:
            raise GraphcError(f"MultiheadAttention: embed_dim {embed_dim} is not a multiple "
                              f"of num_heads {num_heads}", (user_location(),))
        rng, dtype = _rng(rng), _layer_dtype("MultiheadAttention", dtype)
        kdim = embed_dim if kdim is None else _size("MultiheadAttention", "kdim", kdim)
        vdim = embed_dim if vdim is None else _size("MultiheadAttention", "vdim", vdim)
        if kdim == embed_dim and vdim == embed_dim:
            bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier over torch's (3E, E)
            self.in_proj_weight = Parameter(
                rng.uniform(-bound, bound, (3 * embed_dim, embed_dim)).T.astype(dtype))
        else:
            object.__setattr__(self, "in_proj_weight", None)
            for name, width in (("q", embed_dim), ("k", kdim), ("v", vdim)):
                bound = math.sqrt(6.0 / (embed_dim + width))
                setattr(self, f"{name}_proj_weight", Parameter(
                    rng.uniform(-bound, bound, (embed_dim, width)).T.astype(dtype)))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype))
        else:
            object.__setattr__(self, "in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias, rng, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0.0
        if add_bias_kv:  # one learned key and value more, after the projections: torch's
            std = math.sqrt(2.0 / (2 * embed_dim))  # xavier_normal_ of (1, 1, E)
            self.bias_k = Parameter(rng.normal(0.0, std, (1, 1, embed_dim)).astype(dtype))
            self.bias_v = Parameter(rng.normal(0.0, std, (1, 1, embed_dim)).astype(dtype))
        else:
            object.__setattr__(self, "bias_k", None)
            object.__setattr__(self, "bias_v", None)
        number = _probability("MultiheadAttention", "dropout", dropout)
        # (head_dim and _qkv_same_embed_dim as torch's: code ported from it reads them)
        for name, value in [("dropout", number),
                            ("embed_dim", embed_dim), ("num_heads", num_heads),
                            ("kdim", kdim), ("vdim", vdim), ("add_zero_attn", add_zero_attn),
                            ("batch_first", batch_first), ("causal", causal),
                            ("head_dim", embed_dim // num_heads),
                            ("_qkv_same_embed_dim", kdim == embed_dim and vdim == embed_dim)]:
            object.__setattr__(self, name, value)

    def _unbatched(self, query, key, value, attn_mask, key_padding_mask, need_weights,
                   is_causal, average_attn_weights):
        axis = 0 if self.batch_first else 1
        batch = [F.expand_dims(t, axis) for t in (query, key, value)]
        if key_padding_mask is not None:
            if F._ndim(key_padding_mask) != 1:  # as torch's
                raise GraphcError(f"{self._where()}: for an unbatched (L, E) query, "
                                  f"key_padding_mask must be 1-d (S,), got shape "
                                  f"{tuple(F._shape(key_padding_mask))}", (user_location(),))
            key_padding_mask = F.expand_dims(key_padding_mask, 0)
        out, weights = self.forward(*batch, key_padding_mask=key_padding_mask,
                                    need_weights=need_weights, attn_mask=attn_mask,
                                    average_attn_weights=average_attn_weights,
                                    is_causal=is_causal)
        return (F.squeeze(out, axis),
                None if weights is None else F.squeeze(weights, 0))

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=None):
        # torch's positional order (a padding mask passed fourth was read as attn_mask: where
        # the batch size equals the length it passed the shape check, a wrong output)
        for what, mask in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask)):
            _check_mask_kind(self._where(), what, mask)
        key = query if key is None else key
        value = key if value is None else value
        shapes = tuple(tuple(F._shape(t)) for t in (query, key, value))
        if not len(shapes[0]) == len(shapes[1]) == len(shapes[2]):
            raise GraphcError(f"{self._where()}: query, key and value must all be batched "
                              f"(3-d) or all unbatched (2-d), got shapes {shapes[0]}, "
                              f"{shapes[1]} and {shapes[2]}", (user_location(),))
        # before the first op (the unbatched layout's expand_dims, the batched one's
        # swapaxes): a list met it, named by that op, not by the layer
        _check_dtypes(self._where(), self.in_proj_weight if self.in_proj_weight is not None
                      else self.q_proj_weight, query=query, key=key, value=value)
        if F._ndim(query) == 2:  # unbatched (L, E), as torch's: a batch of one
            if shapes[1][0] != shapes[2][0]:
                raise GraphcError(f"{self._where()}: key {shapes[1]} and value {shapes[2]} "
                                  "(unbatched, (S, E)) must have one length",
                                  (user_location(),))
            return self._unbatched(query, key, value, attn_mask, key_padding_mask,
                                   need_weights, is_causal, average_attn_weights)
        if F._ndim(query) != 3:
            raise GraphcError(f"{self._where()}: query must be (L, E) or batched (3-d), "
                              f"got shape {tuple(F._shape(query))}", (user_location(),))
        for name in ("num_heads", "batch_first", "causal", "add_zero_attn"):
            self._setting(name, query)
        if not self.batch_first:  # (T, B, E) -> (B, T, E)
            query, key, value = (F.swapaxes(t, 0, 1) for t in (query, key, value))
        B, T, E = query.shape
        S = key.shape[1]
        H = self.num_heads
        # (the query's first: a self-attention's wrong width was named as the key's, and a
        # query's alone met the in-projection's matmul, naming neither the layer nor query)
        for name, t, width in (("query", query, self.embed_dim), ("key", key, self.kdim),
                               ("value", value, self.vdim)):
            if F._shape(t)[-1] != width:
                hint = " (kdim/vdim: other widths)" if name != "query" and width == E else ""
                raise GraphcError(f"{self._where()}: {name} has {F._shape(t)[-1]} features, "
                                  f"the layer takes {width}{hint}", (user_location(),))
        batch = 0 if self.batch_first else 1  # the batch axis, in the layout given
        if shapes[1][:2] != shapes[2][:2] or shapes[1][batch] != shapes[0][batch]:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise GraphcError(f"{self._where()}: query {shapes[0]}, key {shapes[1]} and value "
                              f"{shapes[2]} ({layout}, batch_first={self.batch_first}) must "
                              "have one batch size, and key and value one length",
                              (user_location(),))
        # the masks' shapes, as torch's: any other would broadcast into the (B, H, T, S)
        # scores (a 1-d (S,) attn_mask as a per-key mask) or fail inside where or reshape; a
        # key_padding_mask of B * S elements, a sequence-first (S, B) one above all, would
        # reshape into a mask of the wrong keys
        self._check_mask_shape("attn_mask", attn_mask, {
            "(target length, source length)": (T, S),
            "(batch * num_heads, target length, source length)": (B * H, T, S)})
        self._check_mask_shape("key_padding_mask", key_padding_mask,
                               {"(batch, source length)": (B, S)})
        w_q, w_k, w_v = (F.split(self.in_proj_weight, 3, axis=1)
                         if self.in_proj_weight is not None else
                         (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight))
        b_q, b_k, b_v = (F.split(self.in_proj_bias, 3) if self.in_proj_bias is not None
                         else (None,) * 3)

        def heads(x, w, b, length):  # (B, L, E) -> (B, H, L, E/H)
            y = x @ w if b is None else x @ w + b
            return y.reshape(B, length, H, E // H).transpose(0, 2, 1, 3)

        q, k, v = heads(query, w_q, b_q, T), heads(key, w_k, b_k, S), heads(value, w_v, b_v, S)
        scale = 1.0 / math.sqrt(E // H)

        att = _attention.attention_scores(q, k, scale)  # (B, H, T, S)
        if self.causal if is_causal is None else is_causal:
            att = F.masked_fill(att, ~F.tril_mask(T, S), float("-inf"))
        if attn_mask is not None:
            att = self._masked(att, attn_mask, B, T, S)
        if key_padding_mask is not None:
            att = self._masked(att, F.reshape(key_padding_mask, (B, 1, 1, S)), B, T, S)
        extra_k, extra_v = self._extra_keys(H, E // H, F._dtype(q))
        if extra_k is not None:  # after the masks, which torch pads with "allowed"
            att = F.concat([att, _attention.attention_scores(q, extra_k, scale)], -1)
            v = F.concat([v, F.broadcast_to(extra_v, (B,) + tuple(F._shape(extra_v))[1:])], 2)
        # a mask may leave a query no key (left padding under a causal mask): zeros there, as
        # torch's need_weights=False path (its sdpa), which the Transformer layers take (its
        # need_weights=True path and its no_grad inference fast path give NaN); causal alone
        # leaves every query its first key
        masked = attn_mask is not None or key_padding_mask is not None
        probs = _attention.safe_softmax(att) if masked else F.softmax(att, axis=-1)
        # the weights returned are those applied to v, dropped in training, as torch's
        weights = _dropout_while_training(self, "dropout", probs)
        y = weights @ v  # (B, H, T, E/H)
        y = self.out_proj(y.transpose(0, 2, 1, 3).reshape(B, T, E))
        if not self.batch_first:
            y = F.swapaxes(y, 0, 1)
        if not need_weights:
            return y, None
        return y, (F.mean(weights, axis=1) if average_attn_weights else weights)

    def _extra_keys(self, H, d, dtype):
        """(keys, values) (1, H, X, d) that every query may attend to beyond the S given:
        torch's bias_k/bias_v (add_bias_kv), then a zero key and value (add_zero_attn);
        (None, None) without either."""
        keys, values = [], []
        if self.bias_k is not None:
            keys.append(F.reshape(self.bias_k, (1, 1, H, d)))
            values.append(F.reshape(self.bias_v, (1, 1, H, d)))
        if self.add_zero_attn:
            keys.append(F.zeros((1, 1, H, d), dtype))
            values.append(F.zeros((1, 1, H, d), dtype))
        if not keys:
            return None, None
        return (F.swapaxes(F.concat(keys, 1), 1, 2), F.swapaxes(F.concat(values, 1), 1, 2))

    def _check_mask_shape(self, what, mask, allowed):
        _check_mask_shape(self._where(), what, mask, allowed)

    def _masked(self, att, mask, B, T, S):
        if mask.ndim == 3:  # torch's (B * H, T, S)
            mask = F.reshape(mask, (B, self.num_heads, T, S))
        if str(mask.dtype) == "bool":
            return F.masked_fill(att, mask, float("-inf"))
        return _attention.add_float_mask(att, mask)  # (a float64 mask on float32 scores too)


# ---- losses as modules ------------------------------------------------------------------------
def _weights_as_buffers(module, settings, names):
    """A loss's weights (popped from `settings`) registered as buffers, as torch's: in
    state_dict(), and read by a compiled plan at each call, so that `loss.weight = w` set
    later is seen (as a plain attribute the array was a constant of the plan). A Parameter
    (a learned weight) or None stays as it is. A list holding tensors or traced values is
    refused in the functional losses' line (np.asarray of it dropped an eager tensor's
    gradient, and a traced one met numpy's raw "symbolic value" line naming neither the loss
    nor its weight); a list of numbers is read as an array."""
    for name in names:
        value = settings.pop(name)
        F._no_list(type(module).__name__, name, value, numbers_too=False)
        if isinstance(value, Parameter):
            object.__setattr__(module, name, value)
        else:  # (None: torch's empty buffer, which a weight set later fills)
            # (a Buffer of its own: another loss's weight given here is not shared, so that
            # setting one later does not change the other, as torch replaces the tensor)
            module.register_buffer(name, None if value is None else np.asarray(
                value.data if isinstance(value, Tensor) else value))


class CrossEntropyLoss(Module):
    """graphc.cross_entropy as a module (integer or probability targets; classes last). The
    settings after weight are keywords: torch's second and fourth positional arguments are
    its deprecated size_average and reduce, which graphc does not take."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
        _weights_as_buffers(self, {"weight": weight}, ("weight",))
        object.__setattr__(self, "ignore_index", ignore_index)
        object.__setattr__(self, "reduction", reduction)
        object.__setattr__(self, "label_smoothing", label_smoothing)

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets, self._setting("ignore_index", logits),
                               self._setting("reduction", logits),
                               self._weight("weight", logits),
                               self._setting("label_smoothing", logits))


class NLLLoss(CrossEntropyLoss):
    """graphc.nll_loss as a module: log-probabilities and integer targets (no
    label_smoothing: torch's NLLLoss has none)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, log_probs, targets):
        return F.nll_loss(log_probs, targets, self._setting("ignore_index", log_probs),
                          self._setting("reduction", log_probs),
                          self._weight("weight", log_probs))


class MSELoss(Module):
    """graphc.mse_loss as a module. reduction is a keyword, as L1Loss's: torch's first
    positional argument is its deprecated size_average, so torch's MSELoss("sum") is a mean
    there, which a positional reduction here would have summed."""

    def __init__(self, *, reduction="mean"):
        object.__setattr__(self, "reduction", reduction)

    def forward(self, x, target):
        return F.mse_loss(x, target, self._setting("reduction", x))


# The recurrent, transformer and other activation layers live in graphc/recurrent.py,
# graphc/transformer.py and graphc/activation_layers.py, which build them on this module's
# layers: they are this module's attributes on first use (PEP 562), without an import cycle
# between the modules.
_LAZY = {"RNN": "recurrent", "GRU": "recurrent", "LSTM": "recurrent",
         "TransformerEncoderLayer": "transformer", "TransformerDecoderLayer": "transformer",
         "TransformerEncoder": "transformer", "TransformerDecoder": "transformer",
         "Transformer": "transformer",
         **{name: "activation_layers" for name in (
             "ELU", "SELU", "CELU", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "Mish",
             "Softsign", "GLU", "Softshrink", "Hardshrink", "PReLU", "Softmax", "LogSoftmax",
             "ModuleDict")},
         **{name: "conv_layers" for name in (
             "ConvTranspose1d", "ConvTranspose2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
             "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "MaxPool1d", "AvgPool1d", "PixelShuffle",
             "PixelUnshuffle", "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d",
             "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d",
             "CircularPad1d", "CircularPad2d", "ZeroPad3d", "ConstantPad3d", "ReflectionPad3d",
             "ReplicationPad3d", "CircularPad3d", "Dropout1d", "Dropout2d", "Dropout3d")},
         **{name: "batch_norm" for name in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")},
         **{name: "loss_layers" for name in (
             "BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "KLDivLoss",
             "CosineSimilarity", "PairwiseDistance", "Softplus", "LogSigmoid")}}
_LAZY.update(init="init", utils="nn_utils", ParameterList="containers", ParameterDict="containers")
_LAZY.update(RNNCell="recurrent", GRUCell="recurrent", LSTMCell="recurrent")
_LAZY.update({name: "loss_layers" for name in (
    "MarginRankingLoss", "TripletMarginLoss", "HingeEmbeddingLoss", "CosineEmbeddingLoss",
    "SoftMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "PoissonNLLLoss",
    "GaussianNLLLoss", "MultiLabelMarginLoss", "TripletMarginWithDistanceLoss")},
    Threshold="activation_layers", Tanhshrink="activation_layers",
    Softmin="activation_layers", Softmax2d="activation_layers", Bilinear="basic_layers",
    Unflatten="basic_layers")
_LAZY.update(InstanceNorm1d="batch_norm", InstanceNorm2d="batch_norm", InstanceNorm3d="batch_norm")
_LAZY.update(AlphaDropout="dropouts", FeatureAlphaDropout="dropouts", RReLU="dropouts")
_LAZY.update({name: "pool_layers" for name in (
    "MaxPool3d", "AvgPool3d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d",
    "LPPool3d", "Fold", "Unfold")})
_LAZY.update(MaxUnpool1d="conv_layers", MaxUnpool2d="conv_layers", MaxUnpool3d="conv_layers")
_LAZY.update(LocalResponseNorm="extra_layers", ChannelShuffle="extra_layers",
             EmbeddingBag="extra_layers")
_LAZY.update(Conv3d="conv_layers", ConvTranspose3d="conv_layers")
_LAZY.update(CTCLoss="ctc", AdaptiveLogSoftmaxWithLoss="adaptive_softmax")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"graphc.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


# `from graphc.nn import *`: what it gave before (every public name) and the lazy layers,
# which it fetches through __getattr__ only when __all__ names them
__all__ = sorted(n for n in globals() if not n.startswith("_")) + list(_LAZY)
