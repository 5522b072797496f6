"""Eager (define-by-run) mode: ops run at once on numpy arrays and record a tape for backward().

It uses the very same op definitions as the compiler (numpy evaluation and gradient rules), so
it is the honest baseline the compiled plan is measured against: no graph, no fusion, one
numpy call per op, plus the Python bookkeeping a tape needs.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import operator
import threading
import weakref

import numpy as np

from ir.errors import GraphcError, UsersIndexError, a_type, user_location, with_article
from ir.graph import current_graph
from ir.ops import precision
from ir.ops.operators import OperatorMixin
from ir.ops.registry import (GRAD_MODE, DerivedVJP, Interpreter, VJPContext, apply,
                             innermost_interpreter,
                             foreign_array_name, get_op, graph_param, infer_type,
                             is_weak_scalar, like_dtype, read_foreign_array,
                             refuse_float_scalar, refuse_operand, refuse_unsupported_dtype,
                             register_base_interpreter, scalar_dtype)
from ir.types import (FLOAT_DTYPES, INT_DTYPES, SHORT_NAMES, TensorType, UnsupportedDtype,
                      as_dtype, is_complex, is_float, is_real_dtype, unsupported_dtype)
from ir.weak import NUMBER_POSITIONS


_MODE = GRAD_MODE  # (ir's, which a graph being built reads too)


class _GradModeSwitch:
    """A context manager and decorator that runs its block or function with grad mode set to
    `mode`, as torch's: usable as `with gc.no_grad():`, `@gc.no_grad()` and bare
    `@gc.no_grad`; a generator function decorated runs each step of its body under it (the
    function call alone only creates the generator)."""

    mode = None  # (set by each subclass)

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise GraphcError(f"{cls.__name__}() takes no arguments (use it as "
                              f"`with gc.{cls.__name__}():` or `@gc.{cls.__name__}`), got "
                              f"{func!r}", (user_location(),))
        return self(func)  # (bare decorator: @gc.no_grad)

    def __init__(self, func=None):
        self._saved = []  # the modes to restore, one per `with` open on this switch

    def __enter__(self):
        self._saved.append(_MODE.enabled)
        _MODE.enabled = self.mode

    def __exit__(self, *exc):
        _MODE.enabled = self._saved.pop()

    def _again(self):
        """A fresh switch of the same mode, entered per call (a decorated function may run
        in another thread, or recursively)."""
        return type(self)()

    def __call__(self, func):
        again = self._again
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def generator(*args, **kwargs):
                with again():
                    steps = func(*args, **kwargs)
                return (yield from _each_step_under(steps, again))
            return generator

        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            with again():
                return func(*args, **kwargs)
        return wrapped


def _each_step_under(steps, switch):
    """Drive generator `steps`, resuming it under a fresh `switch()` each time, and hand
    every value, send, throw and close through (torch's _wrap_generator)."""
    try:
        with switch():
            value = next(steps)
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                with switch():
                    steps.close()
                raise
            except BaseException as exc:
                with switch():
                    value = steps.throw(exc)
            else:
                with switch():
                    value = steps.send(sent)
    except StopIteration as stop:
        return stop.value


class no_grad(_GradModeSwitch):  # noqa: N801  (torch's name)
    """Ops inside record no tape: results require no grad (inference, optimiser steps)."""

    mode = False


class enable_grad(_GradModeSwitch):  # noqa: N801
    """Grad mode on inside, under a no_grad too (torch's)."""

    mode = True


class set_grad_enabled(_GradModeSwitch):  # noqa: N801
    """torch's: grad mode set to `mode` at once (`gc.set_grad_enabled(False)` as a statement),
    restored when used as a context manager or decorator exits."""

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        if not isinstance(mode, (bool, np.bool_)):
            raise GraphcError(f"set_grad_enabled(mode): mode must be a bool, got "
                              f"{type(mode).__name__}", (user_location(),))
        self._saved = []
        self.mode = bool(mode)
        self._before = _MODE.enabled
        _MODE.enabled = self.mode

    def __enter__(self):
        # (the mode before the switch was made: making it already set its own)
        self._saved.append(self._before)
        _MODE.enabled = self.mode

    def __call__(self, func):
        _MODE.enabled = self._before  # decorating changes no mode until the function runs
        return super().__call__(func)

    def _again(self):
        return set_grad_enabled(self.mode)


def is_grad_enabled() -> bool:
    """Whether ops on tensors that require grad are recorded (off under no_grad, and while
    backward() runs without create_graph)."""
    return _MODE.enabled


class Tensor(OperatorMixin):
    __slots__ = ("data", "_requires_grad", "grad", "_ctx", "name", "_serial", "__weakref__")
    __hash__ = object.__hash__
    weak = False  # (WeakTensor's is True)

    def __init__(self, data, requires_grad: bool = False, dtype=None, name=None):
        data = np.asarray(data, dtype=None if dtype is None else as_dtype(dtype))
        as_dtype(data.dtype)
        if requires_grad and not is_float(data.dtype):
            _refuse_requires_grad(data.dtype)
        self.data = data
        self._requires_grad = requires_grad
        self.grad = None
        self._ctx = None
        self.name = name
        self._serial = 0  # not an op's result (see op_serial)

    def _set_requires_grad(self, value):
        value = bool_flag(value, "requires_grad")
        if value and not is_float(self.data.dtype):
            _refuse_requires_grad(self.data.dtype)
        self._requires_grad = value

    # torch refuses `t.requires_grad = True` on an integer or bool tensor where it is set,
    # however the tensor was made (gc.tensor, arange, astype, a Buffer): the property
    # checks the assignment. Every op reads and sets the flag: run_op uses the slot
    # _requires_grad itself, so that ops pay nothing for the check (a property read
    # costs ~25 ns more than a slot's); the getter is C (attrgetter) for everyone else.
    requires_grad = property(operator.attrgetter("_requires_grad"), _set_requires_grad)

    def __setstate__(self, state):
        # Unpickling restores the state as it was saved, never through the refusing setter: a
        # pickle from before the property names the slot "requires_grad", and one of its
        # integer tensors may hold True (the assignment was taken then); refusing it would
        # make the whole file unreadable. backward() still refuses such a tensor.
        dict_state, slot_state = state if isinstance(state, tuple) else (state, None)
        if dict_state:  # (a user's subclass without __slots__)
            self.__dict__.update(dict_state)
        for key, value in (slot_state or {}).items():
            setattr(self, "_requires_grad" if key == "requires_grad" else key, value)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """torch's: set requires_grad in place (False freezes a Parameter: training leaves
        it alone) and return the tensor."""
        requires_grad = bool_flag(requires_grad, "requires_grad_")
        if not requires_grad and self._ctx is not None:  # torch refuses it too
            raise GraphcError("requires_grad_(False) of a tensor computed from others: only "
                              "a leaf's flag can change; take .detach() instead",
                              (user_location(),))
        self.requires_grad = requires_grad
        return self

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad and _MODE.enabled:
            _NUMPY_CALL.read_grad = True  # (__array_function__ refuses a float result then)
        # numpy 2 trusts the copy= answer: np.array(t) (copy=True) must not hand back the
        # tensor's own array, which writing the "copy" then changed; np.asarray(t) (None)
        # shares it, as numpy's asarray of an array does
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            if copy is False:  # (numpy's protocol: ValueError where a copy is needed)
                raise ValueError(f"np.asarray(..., copy=False) of "
                                 f"{with_article(self.data.dtype)} tensor as {np.dtype(dtype)} "
                                 "needs a copy")
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __array_function__(self, func, types, args, kwargs):
        """numpy's functions run as without this hook (np.mean(t) calls t.mean, on the tape;
        np.dot reads arrays), except that one computing floats from the values of a tensor
        that requires grad is refused, as torch's, instead of silently leaving its gradient
        term out; a result with no gradient to lose (np.allclose's bool, np.zeros_like's
        values) is given. The outermost numpy call decides (np.hstack's implementation calls
        np.atleast_1d: the refusal names np.hstack)."""
        if func.__name__ in _REDUCTIONS and _numpy_computes(func.__name__, args, kwargs):
            return func._implementation(*_values_of(args), **_values_of(kwargs))
        call = _NUMPY_CALL
        if call.depth or not _MODE.enabled:  # (no grad mode: nothing to lose, nothing read)
            return func._implementation(*args, **kwargs)
        call.depth, call.read_grad = 1, False  # (read_grad: set by __array__)
        try:
            result = func._implementation(*args, **kwargs)
        finally:
            read, call.depth, call.read_grad = call.read_grad, 0, False
        if read and func.__name__ not in _READS_NO_VALUES and _holds_floats(result):
            _refuse_numpy_function(func)
        return result

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):  # (truncating a float, as numpy's and torch's)
        return int(self.data)

    def __len__(self):
        if not self.data.ndim:
            raise GraphcError("len() of a 0-d tensor", (user_location(),))
        return len(self.data)

    def __iter__(self):
        """Rows along the first axis, each differentiable (`q, k, v = t`)."""
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        values = np.array2string(self.data, separator=", ", prefix="Tensor(", threshold=100,
                                 edgeitems=3)
        extras = "" if self.data.dtype == np.float32 else \
            f", dtype={SHORT_NAMES[self.data.dtype]}"
        if self.weak:
            extras += ", weak_type=True"
        if self.requires_grad:
            extras += ", requires_grad=True"
        if self.name:
            extras += f", name={self.name!r}"
        return f"Tensor({values}{extras})"

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into each leaf's `.grad` (a numpy array), torch's
        arguments in its order: `gradient`, the cotangent (needed for a non-scalar);
        `retain_graph` is accepted and changes nothing (graphc's tape is kept: backward()
        can run again, accumulating again); with create_graph=True the sweep is itself
        recorded: `.grad` is a Tensor that can be differentiated again (Newton's method,
        gradient penalties); `inputs` (a tensor or a sequence of them): only those get a
        `.grad`, the other leaves are left as they are."""
        backward(self, gradient, create_graph, inputs=_backward_inputs(inputs))

    # In-place arithmetic, as PyTorch: under no_grad (an optimiser step, `x -= lr * x.grad`)
    # the tensor keeps being the same leaf that requires grad, with new values; on a tensor
    # the tape records, it is the out-of-place op.
    def _inplace(self, other, fn):
        if _MODE.enabled and self.requires_grad and self._ctx is None:
            raise GraphcError("a leaf tensor that requires grad is changed in place; do it "
                              "inside `with graphc.no_grad():`", (user_location(),))
        result = fn(self, other)
        if not isinstance(result, Tensor) or result.requires_grad:
            return result  # (traced: a value of the graph, the out-of-place op)
        if result.data.shape != self.data.shape:
            raise GraphcError(f"in-place result of shape {result.data.shape} does not fit a "
                              f"tensor of shape {self.data.shape}", (user_location(),))
        self.data = result.data
        return self

    def __setitem__(self, key, value):
        """x[mask] = v with a boolean mask (numpy's x[mask] = v: v broadcast to x[mask]'s
        shape, cast to x's dtype), eagerly and where the tape records neither x nor v (no
        grad mode, or neither requires grad): x then holds new values, as after `x += v`
        under no_grad (tensors computed from x before keep theirs). Any other key, a trace,
        or a value the tape would lose the gradient of are refused."""
        keys = key if isinstance(key, tuple) else (key,)
        if innermost_interpreter() is not None or not any(
                _api().mask_of(k) is not None for k in keys):
            return super().__setitem__(key, value)  # (OperatorMixin's refusal)
        if _MODE.enabled and (self._requires_grad or getattr(value, "requires_grad", False)):
            raise GraphcError("x[mask] = v where x or v requires grad: the tape cannot record "
                              "an assignment in place; build the new value, x = "
                              "gc.where(mask, v, x), or assign under `with gc.no_grad():`",
                              (user_location(),))
        data = self.data.copy()  # (the tape keeps the arrays it read: none is written)
        try:
            data[tuple(k.data if isinstance(k, Tensor) else k for k in keys)] = \
                value.data if isinstance(value, Tensor) else value
        except (IndexError, ValueError, TypeError, OverflowError) as exc:
            raise GraphcError(f"x[mask] = v: {exc}", (user_location(),)) from None
        self.data = data

    def __iadd__(self, o): return self._inplace(o, _api().add)
    def __isub__(self, o): return self._inplace(o, _api().sub)
    def __imul__(self, o): return self._inplace(o, _api().mul)
    def __itruediv__(self, o): return self._inplace(o, _api().div)

    def graph_operand(self, graph):
        """Used inside a graph being built, a tensor is an input of it bound to the tensor,
        as a Parameter is: a plan reads the tensor's value at each call. A constant would be
        the array the trace saw, and an update (`w -= lr * w.grad` under no_grad replaces
        the array) left compiled functions and gc.grad computing with the old values. A
        module holding it as an attribute may replace it: see Parameter.graph_operand."""
        if id(self) not in graph.bound_params:
            graph.guard(MODULE_PARAMETERS, "replaced", MODULE_PARAMETERS.replaced)
            MODULE_PARAMETERS.note_lifted(self)
        return graph_param(graph, self, kind="input")


def _api():
    from ir.ops import api
    return api


class _NumpyCall(threading.local):
    # whether the numpy function running through Tensor.__array_function__ has read the
    # values of a tensor that requires grad; whether one runs (the outermost decides)
    read_grad = False
    depth = 0


# numpy functions whose result holds none of their argument's values: no gradient to lose
_READS_NO_VALUES = frozenset({"zeros_like", "ones_like", "empty_like", "full_like", "shape",
                              "ndim", "size"})


# numpy's reductions that call the tensor's method of their name (np.std(t) is t.std(...))
_REDUCTIONS = frozenset({"sum", "mean", "prod", "max", "min", "amax", "amin", "argmax",
                         "argmin", "var", "std", "any", "all"})
# numpy's keywords that graphc's methods do not take (np.std(t, where=m), np.prod(t, initial=2))
_NUMPY_ONLY_KEYWORDS = frozenset({"where", "initial", "mean"})


def _numpy_computes(name, args, kwargs) -> bool:
    """Whether numpy's reduction computes from the values itself, as it did before tensors
    had the method: with a keyword graphc's method does not take, or mean/var/std (graphc's
    and torch's refuse integers) of an integer or bool tensor; never where a tensor that
    requires grad would lose its gradient (the method refuses that in one line)."""
    if not _NUMPY_ONLY_KEYWORDS.intersection(kwargs):
        x = args[0] if args else kwargs.get("a")
        if name not in ("mean", "var", "std") or not isinstance(x, Tensor) \
                or is_float(x.data.dtype):
            return False
    return not _MODE.enabled or not any(
        isinstance(v, Tensor) and v.requires_grad for v in (*args, *kwargs.values()))


def _values_of(arguments):
    """A numpy function's arguments with each tensor's values in its place."""
    if isinstance(arguments, dict):
        return {k: v.data if isinstance(v, Tensor) else v for k, v in arguments.items()}
    return [v.data if isinstance(v, Tensor) else v for v in arguments]


def _holds_floats(result) -> bool:
    """Whether a numpy function's result holds numbers a gradient would flow to: floats
    (not bools, integers, strings, nor a graphc tensor, a method's result on the tape)."""
    if isinstance(result, (tuple, list)):
        return any(map(_holds_floats, result))
    if isinstance(result, Tensor):
        return False
    dtype = getattr(result, "dtype", None)
    if dtype is None:
        return isinstance(result, (float, complex))
    return dtype.kind not in "biuUS"


_NUMPY_CALL = _NumpyCall()


def _refuse_numpy_function(func):
    name = func.__name__
    where = func.__module__.replace("numpy", "np", 1)
    instead = f"gc.{name}" if _graphc_has(name) else "graphc's ops"
    raise GraphcError(f"{where}.{name}() of a tensor that requires grad would leave its "
                      f"gradient out: use {instead}, or .detach() for the values",
                      (user_location(),))


def _graphc_has(name) -> bool:
    from ir.ops import api, arrays, search
    return name in api.__all__ or name in arrays.__all__ or name in search.__all__


class WeakTensor(Tensor):
    """The 0-d result of an op on Python numbers alone (`gc.sqrt(2.0)`, `-gc.exp(1.0)`):
    weakly typed as JAX's, so that it meets a tensor as the number would (`x_f64 *
    gc.sqrt(2.0)` is float64, its float32 value widened), as the same code traced does with
    a Python-number argument (ir/weak.py). Setting requires_grad = True on one makes it a
    plain (strong) Tensor, a leaf that gets a gradient: a weak operand is read as a number,
    and no number is differentiated."""

    __slots__ = ()
    weak = True

    def detach(self) -> "WeakTensor":
        return WeakTensor(self.data)  # (still a number: as weak as JAX's stop_gradient keeps it)

    def _set_requires_grad(self, value):
        Tensor._set_requires_grad(self, value)
        if value:
            self.__class__ = Tensor

    requires_grad = property(Tensor.requires_grad.fget, _set_requires_grad)


def _read_foreign(data, what):
    """`data` as it is, or, another library's array (a torch tensor), read as backward()
    and load_torch_state_dict read one: a bfloat16 or float8 one and one that requires grad
    too (`gc.nn.Parameter(torch_layer.weight)`), which numpy refuses with torch's raw
    RuntimeError or TypeError; one numpy has no form of is one line naming `what`."""
    if isinstance(data, (np.ndarray, Tensor)) or foreign_array_name(data) is None:
        return data
    return read_foreign_array(data, what)


def _leaf_setattr(tensor, name, value, _set=object.__setattr__):
    """A Parameter's or Buffer's attribute set: its `data` takes an array, or, as torch's
    `p.data = q`, another tensor's array (graphc's, or a torch tensor's as _read_foreign
    reads it); anything else (a list, a number, None) is one line where it is set, as torch
    refuses a non-tensor there. A graphc tensor stored as the array failed far from the
    assignment, in the next op that read it ("operand 'Tensor' does not support ufuncs"), a
    list with "'list' object has no attribute 'shape'". (A __setattr__, not a property:
    reads of `.data`, on every op's path, stay the slot's.)"""
    if name == "data" and not isinstance(value, np.ndarray):
        kind = type(tensor).__name__
        if isinstance(value, Tensor):
            value = value.data
        elif isinstance(value, np.generic):
            value = np.asarray(value)
        elif foreign_array_name(value) is not None:
            value = read_foreign_array(value, f"{kind}.data = ...: the value")
        else:
            raise GraphcError(f"{kind}.data = ...: expected an array (or a tensor), got "
                              f"{a_type(value)}", (user_location(),))
    if name == "data" and value.dtype.kind == "c":  # (kept, it failed in a later op naming
        # neither the parameter nor the assignment; its constructor refuses complex data)
        named = "" if tensor.name is None else f" {tensor.name!r}"
        raise UnsupportedDtype(f"{type(tensor).__name__}{named}.data = ...: "
                               f"{unsupported_dtype(value.dtype)}", (user_location(),))
    _set(tensor, name, value)


class Parameter(Tensor):
    """A trainable array held by a layer: an eager leaf, and a `param` input when traced.
    `requires_grad=False` (torch's argument) makes it frozen from the start; its data is
    floating-point all the same, as a trainable one's (unfrozen later, or trained through
    apply(params))."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, name=None):
        requires_grad = bool_flag(requires_grad, "Parameter: requires_grad")
        data = _read_foreign(data, "Parameter: the data")
        try:
            super().__init__(np.array(data), requires_grad=True, name=name)
        except GraphcError as exc:  # (a complex or an integer array: the line named no
            named = "" if name is None else f" {name!r}"  # parameter)
            message = exc.message
            if not requires_grad and message.startswith("only floating-point"):
                # (one asked frozen: "can require gradients" answered what it did not ask)
                message = (f"data must be floating-point, a frozen one's too "
                           f"(requires_grad=False), got {np.asarray(data).dtype}")
            raise type(exc)(f"Parameter{named}: {message}", exc.locs) from None
        self._requires_grad = requires_grad

    __setattr__ = _leaf_setattr

    def graph_operand(self, graph):
        """Used inside a graph being built, a parameter is a `param` input of it. A plan of
        the graph holds only while no module's Parameter has been replaced since (the trace
        read this one through some module's attribute, which may now hold another)."""
        if id(self) not in graph.bound_params:
            graph.guard(MODULE_PARAMETERS, "replaced", MODULE_PARAMETERS.replaced)
            MODULE_PARAMETERS.note_lifted(self)
        return graph_param(graph, self)


class Buffer(Tensor):
    """A layer's state that is not trained (BatchNorm's running statistics): torch's
    register_buffer. Read as an input of a graph traced through its module (a plan reads its
    `.data` at each call, as a Parameter's); written back by the layer's forward in training
    mode (graphc.nn.Module._update_buffer). In state_dict(), not in params()."""

    __slots__ = ()

    def __init__(self, data, name=None):
        try:
            super().__init__(np.array(_read_foreign(data, "Buffer: the data")),
                             requires_grad=False, name=name)
        except UnsupportedDtype as exc:  # (a complex array: the line named no buffer)
            named = "" if name is None else f" {name!r}"
            error = UnsupportedDtype(f"Buffer{named}: {exc.message}", exc.locs)
            error.unnamed = exc.message  # (for register_buffer, whose line names the buffer)
            raise error from None

    __setattr__ = _leaf_setattr


# The (module, attribute) places each Buffer or Parameter (or child module) was put in
# (graphc.nn.Module.__setattr__), by id: {id: (weakref to the tensor, [(weakref to the
# module, attribute), ...])}. A Buffer two layers share (torch's `b.running_mean =
# a.running_mean`) is one state: eagerly the second layer reads the first's update, and a
# trace must hand it the same (_BufferCollector.record); a tied Parameter keeps the name of
# the place it was first put in, as torch's named_parameters names it by its first place;
# a module's places lead up to the root of its model (graphc.nn._root_of)
_PLACES = {}


def note_place(tensor, module, attr) -> None:
    """Record that module.attr holds `tensor` (checked again when it is looked up)."""
    key = id(tensor)
    entry = _PLACES.get(key)
    if entry is None or entry[0]() is not tensor:
        entry = _PLACES[key] = (weakref.ref(tensor, lambda _, key=key: _PLACES.pop(key, None)),
                                [])
    entry[1][:] = [(ref, a) for ref, a in entry[1] if ref() is not None]  # the gone ones out
    if not any(ref() is module and a == attr for ref, a in entry[1]):  # (a forward that
        entry[1].append((weakref.ref(module), attr))  # sets it again each call: listed once)


def places_holding(tensor) -> list:
    """The (module, attribute) places holding `tensor` now, each once, in the order put."""
    entry = _PLACES.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return []
    places, seen = [], set()
    for ref, attr in entry[1]:
        module = ref()
        if module is not None and _holds(vars(module).get(attr), tensor) and \
                (id(module), attr) not in seen:
            seen.add((id(module), attr))
            places.append((module, attr))
    return places


def _holds(held, value) -> bool:
    """Whether an attribute holding `held` holds `value`: itself, or a wrapper of it (a
    child gc.compile(module), whose __wrapped__ is the module: its place was missed, so the
    module's Parameters kept the names of a place replaced since)."""
    if held is value:
        return True
    return hasattr(held, "__dict__") and vars(held).get("__wrapped__") is value


def held_again(tensor) -> bool:
    """Whether more than one place holds `tensor` now: places_holding's answer, with no
    list built where at most one place was ever recorded (the common case, asked for each
    module and tensor of a subtree that a model's setattr moves)."""
    entry = _PLACES.get(id(tensor))
    return entry is not None and len(entry[1]) > 1 and len(places_holding(tensor)) > 1


class _BufferCollector:
    """The buffer updates made while one function is traced (graphc.nn.Module._update_buffer):
    {(id(module), attribute): new value}, with the places in the order first written. A
    written attribute holds its new value until the collector closes, so that a layer called
    twice in one trace reads its first call's update, as torch's second forward does. A state
    held in several places (a Buffer two layers share; what apply(state=) put in each place of
    one name) is one entry, under its first writer's place: every place holding it takes each
    new value, so the next layer reads the last update, as eagerly, and one value is written
    back (each layer's update in turn, not the last layer's alone)."""

    def __init__(self, graph):
        self.graph = graph  # being traced when the collector opened (None: eagerly)
        self.values, self.places, self._saved = {}, [], []
        self.slots = set()  # (id(module), attribute) of the state apply(state=) put in
        self.holders = {}  # id(a state value apply(state=) put in) -> its places
        self._entry = {}  # (id(module), attribute) -> the key of its entry in values
        self._group = {}  # that key -> the places holding it

    def record(self, module, attr, value):
        key = self._entry.get((id(module), attr), (id(module), attr))
        if key not in self.values:
            original = getattr(module, attr)
            group = self.holders.get(id(original)) or places_holding(original)
            if not any(m is module and a == attr for m, a in group):
                group = [(module, attr), *group]
            self.places.append((module, attr))
            self._group[key] = group
            for m, a in group:
                self._entry[id(m), a] = key
                self._saved.append((m, a, getattr(m, a)))
        self.values[key] = value
        for m, a in self._group[key]:
            object.__setattr__(m, a, value)

    def value_of(self, module, attr, default):
        """The last value written to module.attr (or to a place sharing its state)."""
        return self.values.get(self._entry.get((id(module), attr)), default)

    def written(self, module, attr) -> bool:
        return (id(module), attr) in self._entry

    def restore(self):
        for module, attr, original in reversed(self._saved):
            object.__setattr__(module, attr, original)


class _BufferUpdates(threading.local):
    def __init__(self):
        self.stack = []  # the open _BufferCollectors, innermost last


BUFFER_UPDATES = _BufferUpdates()


@contextlib.contextmanager
def collect_buffer_updates():
    """Buffer updates made by forwards called inside (in the graph being traced when it
    opens) land in the yielded collector instead of the Buffers: gc.compile's trace returns
    them as extra results and writes them after each call; Module.apply(state=) returns them.
    Updates made inside a nested transformation (gc.vmap, a gc.scan body, a gc.cond
    branch) are values of another graph and are refused."""
    collector = _BufferCollector(current_graph())
    BUFFER_UPDATES.stack.append(collector)
    try:
        yield collector
    finally:
        BUFFER_UPDATES.stack.pop()
        collector.restore()


class _ModuleParameters:
    """How many times a module's Parameter (tensor, submodule) attribute has been replaced by
    another (graphc.nn.Module.__setattr__: `layer.weight = Parameter(...)`, weight tying):
    compiled plans guard on it and are traced again, instead of reading the old one."""

    replaced = 0
    # the tensors a trace has read (graph_operand), {id: weakref}: removing a module that
    # holds none of them makes no plan stale (graphc.nn's container edits)
    lifted = {}

    def was_lifted(self, tensor) -> bool:
        ref = self.lifted.get(id(tensor))
        return ref is not None and ref() is tensor

    def note_lifted(self, tensor) -> None:
        key = id(tensor)
        if key not in self.lifted:  # (the entry goes when the tensor does)
            self.lifted[key] = weakref.ref(tensor, lambda _, key=key: self.lifted.pop(key, None))

    def describe_change(self) -> str:  # (graphc.transforms' recompile message)
        return "a module's Parameter, tensor or submodule was replaced"


MODULE_PARAMETERS = _ModuleParameters()


def lift(x, weak_dtype, opname) -> Tensor:
    """Operand `x` as a tensor; a weak scalar takes `weak_dtype` (scalar_dtype's choice)."""
    if isinstance(x, Tensor):
        return x
    if is_weak_scalar(x):
        if weak_dtype is None:
            refuse_float_scalar(x, opname)
        return Tensor(np.asarray(x, dtype=weak_dtype))
    if isinstance(x, np.ndarray):
        refuse_unsupported_dtype(x, opname)
        return Tensor(x)
    refuse_operand(x, opname)


_SERIAL = itertools.count(1)  # numbers eager ops' results in the order they are computed


def op_serial() -> int:
    """A number below that of every eager op result computed from now on: what an eager
    construct calls before running its function, for apart_from's `since`."""
    return next(_SERIAL)


def run_op(op, args, attrs, out_type) -> Tensor:
    arrays = [a.data for a in args]
    try:
        out = op.impl(*arrays, **attrs)
    except (IndexError, ValueError, FloatingPointError) as exc:
        if isinstance(exc, UsersIndexError):  # (the op is no call of the user's)
            raise GraphcError(str(exc), (user_location(),)) from None
        operands = ", ".join(f"{SHORT_NAMES[a.data.dtype]}{list(a.data.shape)}" for a in args)
        raise GraphcError(f"{op.name}({operands}) failed: {exc}", (user_location(),)) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out, dtype=out_type.dtype)
    result = Tensor.__new__(Tensor)
    result.data = out
    result.grad = None
    result.name = None
    result._ctx = None
    result._serial = next(_SERIAL)
    result._requires_grad = False  # (the slot: see Tensor.requires_grad)
    if _MODE.enabled and op.vjp is not None:
        for a in args:
            if a._requires_grad:
                if out.dtype not in FLOAT_DTYPES:
                    break  # integer and bool results have no gradient (torch's, compiled's)
                result._requires_grad = True
                # the entry keeps the arrays the op read and gave: backward() computes with
                # them (_rewound), as a compiled call on the tape uses its call's values; and
                # which operands required grad then (a module frozen for this forward and
                # unfrozen before backward() gets no gradient, as torch's)
                arrays.append(out)
                result._ctx = (op, args, attrs, arrays, tuple([a._requires_grad for a in args]))
                break
    return result


class EagerInterpreter(Interpreter):
    """The base interpreter: an op call on concrete operands computes at once."""

    def process(self, op, inputs, attrs) -> Tensor:
        weak_result = False
        positions = NUMBER_POSITIONS.get(op.name, _TAKES_NO_NUMBERS)
        if positions is not _TAKES_NO_NUMBERS:
            if WeakTensor in map(type, inputs):
                inputs = _as_numbers(inputs, positions)
            # (numbers alone: gc.sqrt(2.0); a tensor first, the common case, is checked cheaply)
            if positions is None:
                weak_result = bool(inputs) and not isinstance(inputs[0], Tensor) and \
                    all(map(is_weak_scalar, inputs))
            else:  # where(c, 2.0, 1.0): numbers at the value positions (ir/weak.py)
                weak_result = not isinstance(inputs[positions[0]], Tensor) and \
                    all(is_weak_scalar(inputs[i]) for i in positions)
        like = like_dtype(inputs)
        args = [lift(x, scalar_dtype(x, like, op.name) if is_weak_scalar(x) else None, op.name)
                for x in inputs]
        out_type = infer_type(op, [TensorType(a.data.shape, a.data.dtype) for a in args], attrs)
        out = run_op(op, args, attrs, out_type)
        if out._ctx is not None and any(map(_borrowed, inputs)):
            # the tape keeps a copy of a caller's numpy operand, as torch.tensor and jnp
            # arrays are copies: a caller refilling that array before backward() changed
            # the gradient (w.grad of sum(w * a) read a's new values)
            saved = [Tensor(np.array(a.data)) if _borrowed(x) else a
                     for x, a in zip(inputs, args)]
            out._ctx = (op, saved, attrs, [*(a.data for a in saved), out.data], out._ctx[4])
        if weak_result and out.data.ndim == 0 and out.data.dtype != np.bool_:
            out.__class__ = WeakTensor
        return out


_TAKES_NO_NUMBERS = ()  # (NUMBER_POSITIONS' default: an op a weak value meets as a tensor)


def _as_numbers(inputs, positions) -> list:
    """`inputs` with each WeakTensor at `positions` (None: all) as the number it holds, so
    that it meets the others as that number would (its float32, int64 or bool value is exact
    as a Python number): gc.sqrt(2.0) + 1 is a weak float32. Elsewhere (an index: x[gc.sub(5,
    1)]) it stays the int64 or float32 tensor it is, as a traced weak value does (ir/weak.py).
    """
    return [x.data.item() if type(x) is WeakTensor and (positions is None or i in positions)
            else x for i, x in enumerate(inputs)]


def _borrowed(x) -> bool:
    """Whether x may be memory a caller can still write: a numpy array, a constant tensor
    that views one (gc.reshape(a), a transpose or slice of a numpy array: eager views share
    memory with a), or a Buffer (its array is written in place: BatchNorm's running
    statistics by a forward in training mode or a compiled call, load_state_dict, since a
    plan or a Trainer holds it; they are small). Other tensors' data is never written in
    place (`t += 1` rebinds it, and the tape keeps the array the op read), so a view of a
    tensor is only copied needlessly, and only when not differentiated."""
    if type(x) is np.ndarray or type(x) is Buffer:
        return True
    return (isinstance(x, Tensor) and x._ctx is None and not x.requires_grad
            and x.data.base is not None)


register_base_interpreter(EagerInterpreter())


def _topological(root, stop=()):
    """The tensors of root's tape, those the sweep reaches, in the order they were computed
    (_serial: an op's result is numbered after its operands, so this is a topological order).
    Reversed, it is torch's autograd order: of the entries whose gradients are complete, the
    one computed last first, so sibling branches (`act(a(x)) + b(y)`) run their rules, and a
    module's backward hooks, in the reverse of their forward (b's, then act's and a's), not
    in the order a depth-first walk happens to reach them."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None and id(t) not in stop:
            for a, needed in zip(t._ctx[1], t._ctx[4]):
                if needed and id(a) not in seen:
                    stack.append((a, False))
    order.sort(key=_serial_of)
    return order


def _serial_of(t) -> int:
    return t._serial


def _leading_to(order, inputs, stop) -> set:
    """The ids of the tensors of `order` (_topological's) from which one of `inputs` (ids)
    is reached: backward(inputs=...) runs their entries only, as torch's engine runs only
    the nodes on a path to its inputs (a module's backward hooks off those paths do not run,
    nor do the rules of the layers below the last one wanted)."""
    path = set()
    for t in order:  # (operands before their results)
        if id(t) in inputs or (t._ctx is not None and id(t) not in stop and any(
                [need and id(a) in path for a, need in zip(t._ctx[1], t._ctx[4])])):
            path.add(id(t))
    return path


def _backward_inputs(inputs):
    """backward(inputs=)'s tensors as a set of ids (None: every leaf), checked."""
    if inputs is None:
        return None
    tensors = [inputs] if isinstance(inputs, Tensor) else inputs
    if not isinstance(tensors, (list, tuple)) or not tensors or \
            not all(isinstance(t, Tensor) and t.requires_grad for t in tensors):
        raise GraphcError("backward(inputs=...): expected a tensor or a non-empty list of "
                          "tensors that require grad", (user_location(),))
    return {id(t) for t in tensors}


def backward(root: Tensor, grad=None, create_graph=False, record=None, stop=(), inputs=None):
    """Reverse-mode sweep over the tape, using each op's gradient rule on eager tensors;
    with create_graph the rules run with the tape on, so the gradients have tapes too.
    `stop`: ids of tensors the sweep does not go past (with `record`: their gradients are
    recorded, as a leaf's would be). `inputs`: ids of the tensors whose .grad is filled
    (None: every leaf's), a non-leaf among them too, as torch's."""
    if not root.requires_grad:
        if not is_float(root.dtype):  # (an integer result of a compiled function, argmax's)
            raise GraphcError(f"backward() on a tensor of dtype {root.dtype}: only "
                              "floating-point tensors have gradients", (user_location(),))
        raise GraphcError("backward() on a tensor that does not depend on any tensor that "
                          "requires grad", (user_location(),))
    if grad is None:
        if root.size != 1:
            raise GraphcError(f"backward() needs a gradient argument for a non-scalar of shape "
                              f"{root.shape}", (user_location(),))
        grad = np.ones_like(root.data)
    elif not isinstance(grad, Tensor):
        if isinstance(grad, (bool, np.bool_)):
            # torch refuses it (any non-tensor gradient); taken as 1.0 it hid a torch
            # user's `loss.backward(True)` meaning retain_graph, torch's second argument
            raise GraphcError(f"backward(): the gradient must be a tensor or an array, got "
                              f"{grad!r}; retain_graph is the second argument: "
                              "backward(retain_graph=True)", (user_location(),))
        grad = _read_foreign(grad, "backward(): the gradient")
        try:
            dtype = np.asarray(grad).dtype
        except ValueError:  # (a ragged list)
            dtype = np.dtype(object)
        if not is_real_dtype(dtype):  # (one rule with gradients()' seeds: float8 cast)
            # an array by its dtype, as torch names a grad_output's ('got a ndarray' said
            # nothing of what was wrong with it)
            what = "complex numbers" if dtype.kind == "c" else \
                f"an array of dtype {dtype}" if hasattr(grad, "dtype") else \
                a_type(grad)
            raise GraphcError(f"backward(): the gradient must be real numbers (a tensor or "
                              f"an array), got {what}", (user_location(),))
    shape = np.shape(grad.data if isinstance(grad, Tensor) else grad)
    if shape != root.shape:
        # as PyTorch: the rules would otherwise fail deep inside (a reshape's message) or
        # broadcast a wrong-shaped gradient silently
        raise GraphcError(f"backward(): the gradient has shape {shape}, the tensor has shape "
                          f"{root.shape}", (user_location(),))
    if isinstance(grad, Tensor):
        if not create_graph:
            grad = grad.data
        elif grad.dtype != root.dtype:
            # cast on the tape (torch's), or the rules met two dtypes in an op the user
            # never wrote ("mul(f64[3], f32[3])")
            with enable_grad():
                grad = apply("cast", grad, dtype=root.dtype)
    # (a leaf's .grad is a copy of what reaches it, _accumulate: never the caller's array)
    grads = {id(root): grad if isinstance(grad, Tensor)
             else Tensor(np.asarray(grad, dtype=root.dtype))}
    # record: a dict to fill with id(tensor) -> gradient, for every tensor of the tape
    order = _topological(root, stop)
    path = None if inputs is None else _leading_to(order, inputs, stop)
    with enable_grad() if create_graph else no_grad():
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None or (path is not None and id(t) not in path):
                continue
            if record is not None and not isinstance(g, dict):
                record[id(t)] = g  # graphc.draw: every tensor's gradient, leaves untouched
            if t._ctx is None or id(t) in stop:
                # (a leaf frozen since the op ran gets no gradient either, as torch's)
                if record is None and (inputs is None or id(t) in inputs) and t.requires_grad:
                    _accumulate(t, g, create_graph)
                continue
            if inputs is not None and id(t) in inputs and not isinstance(g, dict):
                _accumulate(t, g, create_graph)  # a non-leaf named in inputs=
            op, args, attrs, recorded, needs = t._ctx
            if op is _RESULT:
                # one result of a TapeCall: its cotangent waits for the other results', so
                # that the call's rule runs once (its tape entry comes after all of them)
                grads.setdefault(id(args[0]), {})[attrs["index"]] = g
                continue
            if path is not None:  # (an operand off the path to inputs=: no gradient wanted)
                needs = tuple([need and id(a) in path for a, need in zip(args, needs)])
            ctx = VJPContext(args, t, attrs, needs, inputs)
            changed = ()
            if recorded is not None:
                # (inline: a rebound .data is rare, and this runs for every entry)
                for tensor, array in zip(args, recorded):
                    if tensor.data is not array:
                        changed = _rewound([*args, t], recorded)
                        break
                else:
                    if t.data is not recorded[-1]:
                        changed = _rewound([*args, t], recorded)
            try:
                with precision.suspended():  # cotangents keep their primals' dtypes
                    results = _derived_vjp(op.vjp.reference, ctx, g) \
                        if isinstance(op.vjp, DerivedVJP) else op.vjp(ctx, g)
            finally:
                for tensor, data in reversed(changed):
                    tensor.data = data
            for a, needed, r in zip(args, needs, results):
                if r is None or not needed:
                    continue
                prev = grads.get(id(a))
                if prev is None:
                    grads[id(a)] = r
                else:
                    grads[id(a)] = prev + r if create_graph else Tensor(prev.data + r.data)


def _rewound(tensors, arrays) -> list:
    """Give each of `tensors` (an entry's operands and result) the array it held when the op
    ran, where one has been changed since (`x -= lr * x.grad` under no_grad, `c *= 2`: an
    in-place update rebinds `.data`); returns [(tensor, its array now)] to put back. The rule
    then reads the values of the forward, as torch's saved tensors (torch raises instead)
    and a compiled call on the tape do, through the tensors themselves: under
    create_graph its ops stay on their tapes, and the gradients reach them."""
    changed = []
    for tensor, array in zip(tensors, arrays):
        if tensor.data is not array:
            changed.append((tensor, tensor.data))
            tensor.data = array
    return changed


class TapeCall:
    """The tape entry of a call that computes several results at once (a compiled function's
    plan: graphc/split_vjp.py), recorded by record_call. Its rule `vjp(ctx, cotangents)`
    takes ctx as an op's rule does (ctx.inputs: the operands, ctx.needs) and the cotangents
    of the results that received one, {result index: tensor}, and returns one gradient (a
    tensor, or None) per operand; backward() runs it once, after every result's cotangent
    is summed."""

    def __init__(self, name: str, vjp):
        self.name = name  # (graphc.draw labels the entry with it)
        self.vjp = vjp


_RESULT = TapeCall("result", None)  # the entry of each result of a TapeCall


def record_call(call: TapeCall, operands, results, differentiable) -> list:
    """`results` (arrays) as tensors, those where `differentiable` is true on the tape as
    results of one `call` entry over `operands` (tensors, those that require grad among
    them); the others are tensors that require no grad, as torch marks integer results."""
    # (the _requires_grad slot, as run_op sets it: the property's dtype check is for users,
    # and a differentiable result is a float one)
    entry = Tensor(np.empty(0))
    entry._serial = next(_SERIAL)  # after its operands, before its results (_topological)
    entry._requires_grad = True
    # (its values: the call's residuals)
    entry._ctx = (call, list(operands), {}, None, tuple([a._requires_grad for a in operands]))
    tensors = []
    for k, (data, taped) in enumerate(zip(results, differentiable)):
        t = Tensor(data)
        t._serial = next(_SERIAL)  # an op's result (apart_from)
        if taped:
            t._requires_grad = True
            t._ctx = (_RESULT, [entry], {"index": k}, None, (True,))
        tensors.append(t)
    return tensors


def _derived_vjp(reference, ctx, g):
    """A composite primitive's gradient (ir.ops.registry.DerivedVJP): run its reference definition
    on fresh leaves with the tape on, then backward. Under backward(create_graph=True) the
    gradient must stay on the tape of the op's operands (a third derivative of gelu goes
    through gelu_grad's rule): the reference then runs on the operands themselves and the
    sweep stops at them."""
    if is_grad_enabled():
        out = reference(*ctx.inputs, **ctx.attrs)
        found = {}
        backward(out, g, create_graph=True, record=found,
                 stop={id(x) for x in ctx.inputs})
        results, given = [], set()
        for x, need in zip(ctx.inputs, ctx.needs):
            # an operand read twice: its whole gradient goes to its first position
            r = found.get(id(x)) if need and id(x) not in given else None
            given.add(id(x))
            results.append(r if r is not None or not need else Tensor(np.zeros_like(x.data)))
        return results
    leaves = [Tensor(x.data, requires_grad=need) for x, need in zip(ctx.inputs, ctx.needs)]
    with enable_grad():
        out = reference(*leaves, **ctx.attrs)
    backward(out, g.data)
    return [Tensor(leaf.grad if leaf.grad is not None else np.zeros_like(leaf.data))
            if need else None for leaf, need in zip(leaves, ctx.needs)]



def _accumulate(leaf, g, create_graph):
    # (the requires_grad setter refuses an integer tensor; `t.data = ints` after it may
    # still make one, and a .grad is not checked where it is assigned: torch refuses both
    # on assignment)
    if not is_float(leaf.data.dtype):
        raise GraphcError(f"a tensor of dtype {leaf.data.dtype} requires grad: only "
                          "floating-point tensors can require gradients", (user_location(),))
    if leaf.grad is not None and np.shape(leaf.grad) != leaf.data.shape:
        raise GraphcError(f"the .grad assigned to a tensor of shape {leaf.data.shape} has "
                          f"shape {np.shape(leaf.grad)}", (user_location(),))
    if leaf.grad is not None and np.asarray(leaf.grad).dtype != leaf.data.dtype:
        # (accumulating into it gave the leaf a .grad of another dtype for good)
        raise GraphcError(f"the .grad assigned to a tensor of dtype {leaf.data.dtype} has "
                          f"dtype {np.asarray(leaf.grad).dtype}", (user_location(),))
    if create_graph:
        if leaf.grad is None:
            # a tensor of its own on the tape (the cotangent may be another leaf's too):
            # `a.grad *= 2` rebinds that tensor's data
            if isinstance(g, Tensor):
                g = run_op(get_op("optimization_barrier"), [g], {}, None)
                # and memory of its own: the barrier hands back its operand's array, which
                # was the other leaf's gradient too, or the caller's backward(g) array
                g.data = np.array(g.data)
            leaf.grad = g
        else:
            leaf.grad = (leaf.grad if isinstance(leaf.grad, Tensor) else Tensor(leaf.grad)) + g
        return
    data = g.data
    if leaf.grad is None:
        # an array of its own: a cotangent may be another leaf's too (c = a + b gives both
        # the same one), the caller's (backward(G)) or read-only; an in-place update of one
        # gradient (p.grad *= scale) changed the others
        leaf.grad = np.array(data)
    elif isinstance(leaf.grad, Tensor):
        leaf.grad = leaf.grad + Tensor(data)
    else:
        # np.asarray: numpy's sum of two 0-d arrays is a numpy scalar, and a .grad stays an
        # array of the parameter's shape, as torch's (clip_grad_norm_ scales it in place,
        # clip_grad_value_ clips into it)
        leaf.grad = np.asarray(leaf.grad + data)


def apart_from(results, operands, since=None) -> list:
    """Eager results (arrays or tensors), each copied where it shares memory with one of
    `operands`, or (with `since`, an op_serial() taken before the function ran) where it is
    not an op's result computed since: an eager construct, vmap or remat whose function
    returns an operand as it is (`lambda v: v`, a carry passed through, a loop that ran no
    iteration, an unbatched argument) or an array or tensor it closed over handed back the
    caller's own array, so an in-place update of one changed the other, where eager ops' and
    compiled plans' results are arrays of their own. The copy is a cast to its own dtype on
    the tape, so gradients flow through it; a numpy array that shares no operand's memory
    (one the function computed with numpy, or closed over) is copied as an array."""
    arrays = [x.data if isinstance(x, Tensor) else x for x in operands]
    arrays = [a for a in arrays if isinstance(a, np.ndarray)]
    apart = []
    for r in results:
        data = r.data if isinstance(r, Tensor) else r
        if not isinstance(data, np.ndarray):
            pass
        elif any(np.may_share_memory(data, a) for a in arrays):
            r = apply("cast", r, dtype=data.dtype)
        elif since is not None and not (isinstance(r, Tensor) and r._serial > since):
            # an array the function computed with numpy, or closed over, stays an array
            r = apply("cast", r, dtype=data.dtype) if isinstance(r, Tensor) else data.copy()
        apart.append(r)
    return apart


def tensor(data, requires_grad=False, dtype=None, name=None) -> Tensor:
    """An eager tensor holding a copy of `data`, as torch.tensor and jnp.array: one that
    wrapped the caller's array changed with it (`a[0] = 5`, or a batch buffer refilled), the
    values a tape saved for backward() too. `name` labels it in reprs and graphc.draw."""
    requires_grad = bool_flag(requires_grad, "tensor: requires_grad")
    source = data  # (the lines below name what the caller gave: a torch.Tensor)
    data = _read_foreign(data, "tensor: the data")
    if isinstance(data, (str, bytes)):  # (as torch's "invalid data type 'str'"; numpy read
        # "1e20" into an int dtype as a raw ValueError, and "abc" as a <U3 array)
        raise GraphcError(f"tensor: data must be numbers, got {a_type(data)}: "
                          f"{data!r}"[:200], (user_location(),))
    if is_complex(data):  # numpy's cast to a real dtype would drop the imaginary part;
        # without a dtype, Tensor's refusal named no function
        # (an array by its type and dtype: its repr took several lines, and a torch tensor,
        # read into an array above, was named by that array's)
        _refuse_complex(f"a {_holder(source)} of {data.dtype}" if isinstance(data, np.ndarray)
                        else repr(data))
    if dtype is None:
        # an np.longdouble scalar is a float64 number, as ops lift one (ir.ops.api._dtype;
        # its float128 is no dtype of ours), alone or in a list; a longdouble array keeps
        # float128, refused, in a list too
        try:
            array = np.array(data, np.float64 if isinstance(data, np.longdouble) else None)
        except ValueError as exc:  # (a ragged list: numpy's raw "inhomogeneous shape")
            _unreadable(data, "", exc)
        if array.dtype.kind in "USO":
            _no_strings(data, array)
        if is_complex(array):  # (a list of complex numbers)
            _refuse_complex(f"a {_holder(source)} of {array.dtype}")
        if array.dtype.itemsize > 8 and array.dtype.kind == "f" and \
                isinstance(data, (list, tuple)) and not _holds_longdouble_array(data):
            # (longdouble numbers: the float64 they would be alone, np.result_type's with
            # the other numbers and arrays)
            array = array.astype(np.float64)
        data = array
    else:
        dtype = as_dtype(dtype)
        try:
            data = _converted(data, dtype)
        except OverflowError:  # numpy's raw "Python integer ... out of bounds for int32"
            shown = _not_fitting(data, dtype) or "a number"  # (a tensor among the list)
            raise GraphcError(f"tensor: data holds {shown}, which does not fit in dtype "
                              f"{dtype}{_range_of(dtype)}", (user_location(),)) from None
        except ValueError as exc:  # (a ragged list: "setting an array element with ...")
            _unreadable(data, f"{dtype} ", exc)
    return Tensor(data, requires_grad=requires_grad, name=name)


_INT_RANGES = {dt: (np.iinfo(dt).min, np.iinfo(dt).max) for dt in INT_DTYPES}


def _no_strings(data, array) -> None:
    """Refuse `data` (read as `array`, of a str, bytes or object dtype) holding a str or
    bytes, as torch.tensor(['1', 2]) refuses it: numpy parsed '1' into an int or float
    dtype, and without one gave a <U21 array refused as an unsupported dtype."""
    kind = array.dtype.kind
    # the user's own str (numpy made the numbers beside it strings too: [1, '2'] is '1', '2')
    text = _first_string(data) if isinstance(data, (list, tuple)) else None
    if text is None and kind == "O":
        text = next((x for x in array.flat if isinstance(x, (str, bytes))), None)
        if text is None:
            return
    raise _strings_line(data, text, array.dtype)


def _strings_line(data, text, dtype=None) -> GraphcError:
    """tensor()'s line for `data` holding the str or bytes `text` (None: an array of the str
    `dtype`), naming the user's str, a numpy str_ as a str."""
    if text is not None:
        text = str(text) if isinstance(text, str) else bytes(text)
    shown = f"of dtype {dtype}" if text is None else \
        f"holding {a_type(text)}: {text!r}"
    return GraphcError(f"tensor: data must be numbers, got a {_holder(data)} {shown}"[:200],
                       (user_location(),))


def _unreadable(data, dtype, exc) -> None:
    """Refuse data numpy could not read (`exc`, a ValueError: a ragged list's "inhomogeneous
    shape") in one line: one holding a str names it, as _no_strings (torch's refusal is of
    the str), else numpy's reason, `dtype` ("float32 ") the one given."""
    if isinstance(data, (list, tuple)) and (text := _first_string(data)) is not None:
        raise _strings_line(data, text) from None
    raise GraphcError(f"tensor: data cannot be read as {dtype}numbers: "
                      f"{str(exc).splitlines()[0]}", (user_location(),)) from None


def _refuse_complex(got):
    raise GraphcError(f"tensor: data must be real numbers, got {got}", (user_location(),))


def _holder(data) -> str:
    """The type holding tensor()'s data as its lines name it: `list`, `numpy.ndarray`,
    `torch.Tensor` (the top package, not numpy's `numpy.ndarray` module path)."""
    module = type(data).__module__.partition(".")[0]
    return f"{'' if module == 'builtins' else module + '.'}{type(data).__name__}"


def _first_string(data):
    """The first str or bytes in nested lists and tuples `data`, inside their numpy arrays
    too (a str array's element, not the list's numpy dtype: numpy made the numbers beside
    it strings, <U21), or None."""
    for x in data:
        if isinstance(x, np.ndarray) and x.dtype.kind in "USO":
            x = next((v for v in x.flat if isinstance(v, (str, bytes))), None)
        if isinstance(x, (str, bytes)):
            return x
        if isinstance(x, (list, tuple)) and (found := _first_string(x)) is not None:
            return found
    return None


def _holds_longdouble_array(data) -> bool:
    """Whether nested lists and tuples `data` hold a float128 array (the user's to cast: a
    float64 one beside a longdouble number is no reason to refuse the list)."""
    return any(isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize > 8 or
               isinstance(x, (list, tuple)) and _holds_longdouble_array(x) for x in data)


def _converted(data, dtype):
    """tensor()'s data as an array of `dtype` (its dtype given), a complex refused, and an
    integer `dtype` cannot hold an OverflowError: numpy's cast raises for a Python int only,
    a numpy integer (np.int64(2**40), alone or in a list) wrapped silently to int32's 0, a
    numpy float (np.float64(1e20)) to int32's min and NaN was int()'s raw ValueError, where
    torch refuses each. (An array or a tensor is cast as numpy casts it: it wraps, as torch's.)"""
    limits = _INT_RANGES.get(dtype)
    if isinstance(data, (int, float, np.generic)):  # a real number: nothing to look into
        if limits and not _fits_int(data, limits):
            raise OverflowError
        return np.array(data, dtype=dtype)
    # converted once, without the dtype, so the cast below cannot drop a complex's
    # imaginary part, whatever holds it (a list, a torch tensor, an object array, where
    # a Python complex was float()'s raw TypeError, or True under dtype=bool); reading a
    # list twice, as np.asarray then np.array(data, dtype), cost 2-7x on a batch
    array = np.asarray(data)
    kind = array.dtype.kind
    if kind in "USO":
        _no_strings(data, array)
    if kind == "c" or (kind == "O" and any(is_complex(x) for x in array.flat)):
        got = f"a {_holder(data)} " + \
            (f"of {array.dtype}" if kind == "c" and hasattr(data, "dtype")
             else "holding complex numbers")
        raise GraphcError(f"tensor: data must be real numbers, got {got}",
                          (user_location(),))
    numbers = isinstance(data, (list, tuple))
    if limits and numbers and array.size:
        if kind in "iu" and (array.min() < limits[0] or array.max() > limits[1]):
            raise OverflowError
        if kind not in "biu" and _not_fitting(data, dtype) is not None:
            raise OverflowError  # (floats among the ints, a Python int past int64: each)
    # the cast of the array gives what numpy's conversion with the dtype gives, except
    # for floats, strings or objects into integers (int() of each: NaN, inf and too
    # large refused): those are converted with the dtype, as before
    same = kind in "biu" if dtype.kind == "i" else kind in "biuf"
    if same and dtype.kind == "i" and array.size and not np.can_cast(array.dtype, dtype):
        same = limits[0] <= array.min() and array.max() <= limits[1]
    # a list's array is already new; anything else (an ndarray, a tensor) may share the
    # caller's memory, which the copy documented above must not
    return array.astype(dtype, copy=not numbers) if same else np.array(data, dtype=dtype)


def _fits_int(x, limits) -> bool:
    """Whether the real number `x` (Python's or numpy's) lies in an integer dtype's
    (min, max), as torch checks it (a float before its truncation: -2147483648.5 does not
    fit int32): numpy's cast of a numpy float (1e20, inf, NaN) wraps silently to int32's
    min, and a NaN Python float was int()'s raw ValueError."""
    if isinstance(x, (float, np.floating)):
        # Python's float-int comparison is exact: a numpy float's would round int64's max
        # up to 2**63 (torch's does: it lets 2.0**63 wrap); NaN and inf compare False
        return limits[0] <= float(x) <= limits[1]
    if isinstance(x, (int, np.integer)):  # (bool too)
        return limits[0] <= int(x) <= limits[1]
    return True  # (a string, an np.bool_: numpy's cast judges it)


def _range_of(dtype) -> str:
    if dtype.kind not in "iu":
        return ""
    info = np.iinfo(dtype)
    return f" ({info.min}..{info.max})"


def _not_fitting(data, dtype) -> str | None:
    """The first number of `data` (nested lists) that `dtype` cannot hold, shown, as torch's
    "value cannot be converted to type int32 without overflow" names the dtype; None if
    each fits. An integer (Python's or numpy's) is compared by int() with the dtype's range:
    numpy's cast wraps a numpy integer silently."""
    limits = _INT_RANGES.get(dtype)
    for x in np.array(data, dtype=object).ravel():
        if limits and isinstance(x, (int, float, np.integer, np.floating)):
            fits = _fits_int(x, limits)
        elif limits and isinstance(x, (np.ndarray, Tensor)) and x.ndim == 0:
            # a 0-d array or tensor among the numbers ([np.array(1e20)]) is its number:
            # numpy's cast below would wrap it silently, where torch refuses it
            x = (x.data if isinstance(x, Tensor) else x)[()]
            fits = _fits_int(x, limits)
        else:
            try:
                np.array(x, dtype=dtype)
                fits = True
            except OverflowError:  # a Python int past float64
                fits = False
        if not fits:
            shown = str(int(x)) if isinstance(x, (int, np.integer)) else \
                str(x) if isinstance(x, np.floating) else repr(x)  # 1e+20, not np.float32(1e+20)
            return shown if len(shown) <= 40 else f"an int of {len(shown)} digits"
    return None


def bool_flag(value, what) -> bool:
    """`value` as a bool where a flag is set (requires_grad), or one line naming `what`: as
    torch's, which refuses anything but a bool there, since Python's truth reads the string
    "False" from a config as True (the model silently left trainable) and 0 or None as
    False. numpy's bool passes, as train() and set_grad_enabled() take it."""
    if not isinstance(value, (bool, np.bool_)):
        shown = " ".join(repr(value).split())  # (an array's repr spans lines)
        raise GraphcError(f"{what}: expected a bool (True or False), got {shown}"[:200]
                          + f" of type {type(value).__name__}", (user_location(),))
    return bool(value)


def _refuse_requires_grad(dtype):
    raise GraphcError(f"only floating-point tensors can require gradients, got {dtype}",
                      (user_location(),))
