"""Function transforms in JAX's style: compile, grad, value_and_grad, vjp, hessian.

Each works on symbolic values (it then just adds nodes to the graph being traced, which is why
`grad(grad(f))` works) and on concrete arrays (it then traces, optimises and compiles the
function once per input signature and runs the plan).
"""
from __future__ import annotations

import copy
import functools
import inspect
import logging
import operator
import sys
import threading
import types
import warnings
from collections import OrderedDict

import numpy as np

from ir import settings, weak
from ir.errors import (GraphcError, TracedNumberError, a_type, user_location,
                       user_stacklevel)
from ir.graph import Node, current_graph
from ir.ops.registry import (apply, differentiating, foreign_array_name, is_weak_scalar,
                             like_dtype, lift_symbolic, naming_sizes, read_foreign_array,
                             refuse_foreign_array)
from ir.types import (FLOAT_DTYPES, FLOAT_SCALARS, NUMPY_FLOAT_SCALARS, SHORT_NAMES,
                      WIDENED_INPUTS, Dim, as_dim, is_float, is_int)
from ir.ops import api as F
from ir.ops.precision import autocast, precision_dtype
from ir.specialize import solve_dim
from passes.autodiff import gradients, reaching
from passes.forward_mode import tangents as forward_tangents
from passes.rematerialize import MemoryLimitError, parse_memory_limit
from runtime.eager import (Buffer, Tensor, WeakTensor, collect_buffer_updates, is_grad_enabled,
                           places_holding)

from .advice import (argnums_holding, differentiated_number, hashable, naming_position,
                     probe_uses, static_advice, unhashable_kind)
from .tracing import (FLOAT0, ForeignArgument, Spec, arg_names, call_signature, called,
                      called_function, flatten, function_name, leaf_count, leaf_input_names,
                      leaves_and_structure, leaves_like, refuse_foreign_argument, to_spec,
                      trace, tree_map, unflatten, unsupported_argument)
from .weak_calls import check_weak_ints

log = logging.getLogger("graphc")


class RecompileWarning(UserWarning):
    """A compiled function compiled again and again (graphc.transforms.Compiled)."""


class _TracedDerivatives(threading.local):
    """How many gradient transforms (grad, value_and_grad, vjp, jvp and the Jacobians and
    hessian built on them) have run inside a trace, in this thread: Compiled._trace counts
    those of fn's trace."""
    count = 0


_traced_derivatives = _TracedDerivatives()


def _note_traced_derivative():
    _traced_derivatives.count += 1


class _Applying(threading.local):
    """How many Module.apply(params, ...) calls are running in this thread. A plan reads the
    tensors at the module's places when it was traced (each call reads their values), and
    apply puts its params and state in those places for its call alone: a plan run inside
    would compute with another call's tensors and write its Buffers' updates into the arrays
    of the state it was traced with (the caller's). So there a gc.compile'd function runs its
    Python function, as it does inside a trace and as a compiled child module does."""
    depth = 0


APPLYING = _Applying()


def _is_symbolic(args) -> bool:
    leaves, _ = leaves_and_structure(list(args))
    return any(isinstance(x, Node) for x in leaves)


class NotAModule(GraphcError, AttributeError):
    """A Module's method or attribute (parameters(), .training) asked of gc.compile(fn) whose
    fn is no Module: one line naming it, and still an AttributeError, so that hasattr() and
    getattr(compiled, "training", default) keep answering False and the default."""


class Compiled:
    """`graphc.compile(fn)`: traced, optimised and compiled once per input signature.

    `static_argnums`: arguments passed to fn as the Python values they are while tracing (a
    flag such as training=True selects a graph); their values are part of the signature, so
    they must be hashable. `donate_argnums`: arguments (pytrees of arrays) whose arrays the
    plan may overwrite with outputs of the same shape and dtype, as a training step updates
    parameters and optimiser state in place; do not use a donated array after the call
    (it then holds some output). Each compilation after the first is logged (logger
    "graphc", INFO) and appended to `recompiles`, naming the argument whose signature
    changed.

    `polymorphic_shapes` (as jax.export's): one entry per positional argument (a static one
    too; fewer or more entries than a call's arguments is an error, as a tuple that is no
    pytree prefix of the arguments is in JAX), None (every dimension concrete) or a shape
    such as ("batch", 128) or "(batch, 128)", or a pytree of such shapes matching the
    argument, a text shape where a subtree is being that shape for each of its leaves (JAX's
    pytree-prefix rule: _shape_for_every_leaf); or one text shape, "(batch, 128)", for every
    array of every argument (as jax.export.symbolic_args_specs' single string). A name is a
    symbolic dimension: one plan serves every size of it (its buffers are sized per call), and
    only a change of a concrete dimension recompiles; "_" takes the argument's size as a
    concrete dimension.

    `memory_limit` (bytes, or a size such as "200MB" or "1.5GiB"): activations are
    recomputed in the backward pass until the plan's memory (plan.memory["total"]) fits;
    the plan's `remat_report` says what was recomputed and how many FLOPs it adds."""

    # a call of the eager transformation this traces for, where it takes no static
    # arguments (gc.vjp, gc.jvp): a traced number used as a Python value is told to close
    # over it as that call does, not to list it in static_argnums (Graph.without_static_args)
    without_static_args = None

    def __new__(cls, fn=None, *args, **kwargs):
        # a Module's is a _CompiledModule, which forwards the model's other attributes
        from .nn import Module  # (graphc.nn imports this module)
        if cls is Compiled and isinstance(fn, Module):
            cls = _CompiledModule
        return object.__new__(cls)

    def __init__(self, fn, pipeline="default", fast_math=False, donate_argnums=(),
                 static_argnums=(), jit=None, polymorphic_shapes=None, precision=None,
                 memory_limit=None):
        half = precision_dtype(precision, "compile")
        self.precision = precision
        self.fn = fn if half is None else _under_autocast(fn, half)
        # checked now, so that a bad size is an error at the line that gave it
        self.memory_limit = None if memory_limit is None else \
            _memory_limit_bytes(memory_limit)
        self.jit = jit  # runtime.codegen's option: None (numba kernels when available), False
        _check_compile_options(pipeline, fast_math)
        self.pipeline = pipeline
        self.fast_math = fast_math
        self.donate_argnums = _argnums(donate_argnums, "compile: donate_argnums")
        self.static_argnums = _argnums(static_argnums, "compile: static_argnums")
        both = set(self.donate_argnums) & set(self.static_argnums)
        if both:
            raise GraphcError(f"compile: argument {min(both)} is both static and donated",
                              (user_location(),))
        # (a text is one shape for every argument: tuple() would make it an entry a letter)
        self.polymorphic_shapes = polymorphic_shapes if polymorphic_shapes is None or \
            isinstance(polymorphic_shapes, str) else tuple(polymorphic_shapes)
        self._templates = {}  # (argument position, pytree structure) -> templates per leaf
        self.recompiles = []  # one message per compilation after the first
        self._plans = {}
        self._used = OrderedDict()  # id(plan) -> (key, plan), the one used last at the end
        self._warned_recompiles = False
        self._differentiates = False  # whether fn's last trace took a gradient (the warning)
        # id(plan) -> ([(leaf position, weak input node)], [(weak integer node, the integer
        # dtype it meets)]) (ir/weak.py)
        self._weak_int_limits = {}
        self._buffer_writes = {}  # id(plan) -> [(module, attribute)] its calls write
        self._buffer_reads = {}  # id(plan) -> [(module, attribute)] its calls read
        self._last_key = None
        self._checked_counts = set()  # argument counts whose argnums have been checked
        # trace at every call, and run a plan only of the same trace (graphc's eager
        # transformations: a value fn closes over may change between calls, as JAX's
        # un-jitted grad sees); a compiled function's plans are fixed at its first trace
        self.retrace = False
        # a call whose arguments hold tensors that require grad, or whose fn closes over
        # one, is recorded on the eager tape (gc.compile's functions; the eager
        # transformations' results are arrays by design, gradients themselves): `on_tape`
        # keeps fn's split vjp plans for such calls
        self.records_on_tape = False
        self.on_tape = None
        # id(plan) -> the float tensors its trace closes over (a model's Parameters), kept
        # at build time for gc.compile's plans that have any: a call is on the tape while
        # one of them requires grad (torch.compile(model)(x) fills model.weight.grad)
        self._closed_floats = {}
        # the Compiled a method's call goes to where its self holds no arrays (__get__),
        # and whether this is one (its argument 0 a self made static)
        self._method, self._is_method = None, False
        # fn's name and doc, not its __dict__: a callable's attributes (an inner Compiled's
        # fn and plans, an object's own fn) would replace this one's
        functools.update_wrapper(self, fn, updated=())

    def __get__(self, instance, owner=None):
        """`@gc.compile` on a method, as jax.jit's: `obj.f` binds obj as fn's argument 0, an
        ordinary argument (static_argnums, donate_argnums and polymorphic_shapes count it).
        A self holding arrays or only numbers (a namedtuple of them) is traced as any
        argument; any other (a plain object, a gc.nn.Module) is a setting (as grad's, and
        _is_setting's), passed as it is, a static argument (jax.jit's
        static_argnums=0, which its methods need): it keys the plan by its hash (an object's
        identity by default), so it must be hashable, each instance has plans of its own,
        and what the trace reads of it is a constant of the plan, as jax.jit's, but for a
        Module's Parameters and Buffers, which the plan reads at each call (gc.compile of a
        closure over them), and its settings (`self.scale`, a number, string or flag), which
        the plan guards as a compiled model's: set another, the next call traces again.
        Read on the class (`M.f`), it is fn unbound, as a function."""
        fn = self.__wrapped__
        if instance is None or isinstance(fn, staticmethod) or \
                not hasattr(type(fn), "__get__"):
            # a callable that binds nothing in a class (`@gc.compile @staticmethod`, a
            # ufunc, a functools.partial) binds nothing compiled either, as before __get__
            return self
        from .nn import Module  # (graphc.nn imports this module)
        if not _is_setting(instance) or 0 in self.static_argnums and \
                not isinstance(instance, Module):
            # (a Module's self made static by static_argnums=0, as jax.jit's methods are
            # written, has its settings guarded too: the twin below)
            return types.MethodType(self, instance)
        if self._method is None:
            def method(obj, *args):  # (a Module's own settings guarded, as its children's)
                from .nn import guarding_setting_reads
                with guarding_setting_reads(obj):
                    return fn(obj, *args)
            functools.update_wrapper(method, fn)
            pipeline, fast_math, donate, static, *rest = self._options()[0]
            static = static if 0 in static else static + (0,)
            self._method = _compiled_again(method,
                                           (pipeline, fast_math, donate, static, *rest),
                                           self.records_on_tape, self.retrace)
            self._method._is_method = True
        return types.MethodType(self._method, instance)

    def __deepcopy__(self, memo):
        """A copy of fn compiled with the same options and no plan yet (copy.deepcopy of a
        model holding `gc.compile(layer)`): the plans read the original's tensors, and
        their kernels do not copy."""
        return _compiled_again(copy.deepcopy(self.__wrapped__, memo), *self._options())

    def __reduce__(self):
        """pickle (and copy.copy): fn, by reference as pickle takes a function, compiled again
        with the same options at load, as a compiled model pickles (_CompiledModule); the
        plans (kernels, the runtime's state) are not data, and pickling them failed ("cannot
        pickle '_State'") once the function had been called. A lambda or a closure is refused
        by pickle's own one line naming it."""
        fn = self.__wrapped__
        name, module = vars(self).get("__qualname__"), sys.modules.get(self.__module__)
        if name and module is not None and "<locals>" not in name:
            found = module
            for part in name.split("."):
                found = getattr(found, part, None)
            if found is self:  # @gc.compile on a module-level def: the name is this Compiled
                return name  # (pickled by that name, as a function is)
        return _compiled_again, (fn,) + self._options()

    def _options(self) -> tuple:
        """What _compiled_again takes after fn to compile another fn as this one is."""
        return ((self.pipeline, self.fast_math, self.donate_argnums, self.static_argnums,
                 self.jit, self.polymorphic_shapes, self.precision, self.memory_limit),
                self.records_on_tape, self.retrace)

    def __repr__(self):
        # as torch's OptimizedModule around a compiled layer: print(model) shows a compiled
        # child as compiled (Module.__repr__)
        return f"Compiled({self.__wrapped__!r})"

    # gc.compile(model) forwards the Module methods a training loop calls on it, as torch's
    # OptimizedModule does (Adam(torch.compile(m).parameters()), compiled.eval()); the plans
    # guard the layers' training modes, so train()/eval() retrace at the next call
    def parameters(self, recurse=True):
        return self._module("parameters").parameters(recurse)

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        return self._module("named_parameters").named_parameters(prefix, recurse,
                                                                 remove_duplicate)

    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> dict:
        return self._module("state_dict").state_dict(prefix=prefix, keep_vars=keep_vars)

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False):
        return self._module("load_state_dict").load_state_dict(state, strict, assign)

    def train(self, mode: bool = True) -> "Compiled":
        self._module("train").train(mode)
        return self  # (torch's returns the OptimizedModule: still compiled)

    def eval(self) -> "Compiled":
        # (train(False) on the Module, as torch's eval of an OptimizedModule; named eval)
        self._module("eval").train(False)
        return self

    @property
    def training(self) -> bool:
        return self._module("training").training

    @training.setter
    def training(self, mode):
        self._module("training").training = mode

    def _module(self, method: str = "module"):
        """The Module this compiles; one line naming `method` where fn is no Module."""
        from .nn import Module  # (graphc.nn imports this module)
        if isinstance(self.__wrapped__, Module):
            return self.__wrapped__
        raise NotAModule(f"{method}: gc.compile({function_name(self.__wrapped__)}) compiles "
                          f"{a_type(self.__wrapped__)}, not a gc.nn.Module, so it "
                          "has no parameters or training mode of its own",
                          (user_location(),))

    # (public; Compiled's own methods call _module, which a compiled model's `module`
    # attribute, read first on gc.compile(model), does not shadow)
    module = _module

    def _check_argnums(self, count):
        # as JAX: an index names a parameter of fn; one left to its default (not passed) is
        # neither static nor donated in that call. Checked once per argument count: it
        # reads fn's signature, and a training step calls this every step
        if count in self._checked_counts:
            return
        target, fname = called_function(self.fn)
        try:  # too few or too many arguments: one line, not a TypeError from inside the trace
            call_signature(target).bind(*[None] * count)
        except TypeError as exc:
            raise GraphcError(f"compiled {fname}: {exc}", (user_location(),)) from None
        except ValueError:  # no signature to bind against: fn's call says what is wrong
            pass
        limit = max(count, _positional_count(target))
        for what, nums in (("static_argnums", self.static_argnums),
                           ("donate_argnums", self.donate_argnums)):
            for i in nums:
                if not -limit <= i < limit:
                    raise GraphcError(f"compile: {what} has {i} but {fname} was called with "
                                      f"{count} arguments", (user_location(),))
        both = _passed(self.static_argnums, count) & _passed(self.donate_argnums, count)
        if both:  # (counted from the end: static_argnums=1, donate_argnums=-1 of two)
            raise GraphcError(f"compile: argument {min(both)} is both static and donated",
                              (user_location(),))
        self._checked_counts.add(count)

    def _static(self, count):
        return _passed(self.static_argnums, count)

    def signature(self, args):
        return self._key_and_leaves(args)[0]

    def _key_and_leaves(self, args):
        """(the signature of a call, the leaves of its non-static arguments in the plan's
        input order): the arguments are flattened once per call."""
        static = self._static(len(args))
        shapes = self.polymorphic_shapes
        if isinstance(shapes, tuple) and len(shapes) > len(args):
            self._refuse_shape_entries(len(args))
        key, all_leaves = [], []
        for i, a in enumerate(args):
            if i in static:
                if not hashable(a):
                    name = self._names(len(args))[i]
                    what = unhashable_kind(a)
                    if i == 0 and self._is_method:  # (a self, static by __get__)
                        raise GraphcError(
                            f"compiled {function_name(self.fn)}: {name} is {what}, which is "
                            "not hashable: a method's self that holds no arrays is a static "
                            "argument, keying the plan (jax.jit's static_argnums=0); give "
                            f"{type(a).__name__} a __hash__ (`__hash__ = object.__hash__`: "
                            "each instance its own plans), or compile a function taking "
                            "its arrays", (user_location(),))
                    # (a tuple of numbers is hashable: a tuple holding a dict is refused too)
                    instead = "" if isinstance(a, tuple) else \
                        " or pass a hashable value such as a tuple"
                    raise GraphcError(f"compile: static argument {name} is {what}, which is "
                                      f"not hashable (a plan is keyed by it); close over "
                                      f"{name} instead (compile a functools.partial or a "
                                      f"lambda passing it, as with jax.jit){instead}",
                                      (user_location(),))
                key.append(("static", _typed(a), a))
            else:
                leaves, structure = leaves_and_structure(a)
                templates = self._templates.get((i, structure))
                if templates is None:  # parsed once per argument and structure
                    templates = self._leaf_templates(i, a, len(leaves))
                    self._templates[(i, structure)] = templates
                if templates.concrete:  # (the fast path: no polymorphic shapes)
                    signature = tuple((x.shape, _dtype_name(x.dtype))
                                      if type(x) is np.ndarray else
                                      _FLOAT_SCALAR_SIGNATURES.get(type(x)) or
                                      _leaf_signature(x) for x in leaves)
                else:
                    signature = []
                    for k, (x, t) in enumerate(zip(leaves, templates)):
                        try:
                            signature.append(_leaf_signature(x, t))
                        except _TemplateMismatch as exc:  # (named here: only where one fails)
                            raise self._naming(exc, i, len(args), a, k) from None
                    signature = tuple(signature)
                key.append((structure, signature))
                all_leaves += leaves
        return tuple(key), all_leaves

    def _check_shape_entries(self, args, passed: int):
        """polymorphic_shapes as JAX's, a pytree prefix of the positional arguments' tuple:
        one entry per argument passed by position (one passed by keyword, or a default, is
        concrete where it has none, as in jax.export). Fewer entries meant "concrete" for
        the rest, and a slip (an entry left out) became a broadcast error naming no
        declaration. `args`: the call's arguments, keywords bound to their positions; a
        count fn does not take is refused as that first (not as an entry missing)."""
        shapes = self.polymorphic_shapes
        if isinstance(shapes, tuple) and len(shapes) < passed:
            self._check_argnums(len(args))
            self._refuse_shape_entries(passed)

    def _refuse_shape_entries(self, passed: int):
        count = len(self.polymorphic_shapes)
        missing = "" if count > passed else \
            f": argument {self._names(passed)[count]!r} has none (None: every dimension " \
            "concrete)"
        raise GraphcError(f"compile: polymorphic_shapes has {count} entries but the function "
                          f"was called with {passed} positional arguments (one entry per "
                          f"argument){missing}", (user_location(),))

    def _leaf_templates(self, i, arg, count) -> list:
        """The declared shape (a tuple of ints, names and "_") of each leaf of argument i, or
        None per leaf where polymorphic_shapes declares nothing."""
        if isinstance(self.polymorphic_shapes, str):  # one shape for every leaf
            return _Templates([parse_polymorphic_shape(self.polymorphic_shapes)] * count)
        if self.polymorphic_shapes is None or i >= len(self.polymorphic_shapes):
            return _Templates([None] * count)  # (a keyword's or default's: concrete)
        return _Templates(polymorphic_templates(self.polymorphic_shapes[i], arg, count,
                                                self._names(i + 1)[i]))

    def _names(self, count):
        return arg_names(called_function(self.fn)[0], count)

    def _inline_sizes(self, args):
        """{name: size} of the names polymorphic_shapes declares, for a call inline in a
        trace: the value that an axis declared as the name alone or as a linear expression of
        it (`n`, `2*n+1`) gives it, as a call of its own binds it (ir.specialize.solve_dim; a
        symbolic one where the trace's axis is), which a str size naming it in fn stands for.
        A name declared only in an expression no axis size solves (`2*n` of 5 rows, `b*t`),
        on axes that give it different values (`n` of a 3-row and a 4-row argument) or in a
        declared shape unlike the argument's is there with None: it binds nothing, and a str
        size naming it, or a name not declared, is refused (ir.ops.api._size), not read as
        the enclosing trace's own symbol of that name (what a call of its own would refuse
        such a call as is left to such a call). None without polymorphic_shapes."""
        if self.polymorphic_shapes is None:
            return None
        names, declared, conflicting = {}, set(), set()
        static = self._static(len(args))
        for i, arg in enumerate(args):
            if i in static:
                continue
            leaves = leaves_and_structure(arg)[0]
            try:
                templates = self._leaf_templates(i, arg, len(leaves))
            except GraphcError:
                continue
            for leaf, template in zip(leaves, templates):
                if template is None:
                    continue
                declared.update(s for d in template if isinstance(d, Dim) for s in d.symbols)
                shape = tuple(getattr(leaf, "shape", ()))
                if len(template) != len(shape):
                    continue
                for d, size in zip(template, shape):
                    solved = solve_dim(d, size)
                    if solved is None:
                        continue  # (b*t, a number: binds nothing)
                    name, value = solved
                    if value is None or name in names and not (
                            type(names[name]) is type(value) and names[name] == value):
                        conflicting.add(name)  # (no value, or two axes give two)
                    names.setdefault(name, value)
        return {name: None if name in conflicting else names.get(name) for name in declared}

    def _naming(self, exc, i, count, arg, index) -> GraphcError:
        """A polymorphic shape's mismatch with leaf `index` of argument i, naming the argument
        (the leaf by its path in a pytree argument: `d.a`, as the graph's inputs name it; by
        its position, not its identity: one array twice in an argument is two leaves)."""
        name = self._names(count)[i]
        path = flatten(arg)[2][index]
        if path:
            name = f"{name}.{path}"
        advice = "" if not isinstance(self.polymorphic_shapes, str) else \
            (f"; one text shape is every argument's: give one entry per argument, None for "
             f"{self._names(count)[i]}")
        return GraphcError(f"compile: polymorphic_shapes: argument {name} {exc.detail}"
                           f"{advice}", exc.locs)

    def _input_names(self, args) -> list:
        """The names the graph's inputs take from each argument of a call (_trace)."""
        return self._names(len(args))

    def _describe_change(self, old, new, args, names=None) -> str:
        names = names or self._names(len(args))
        if len(old) != len(new):
            return f"the number of arguments changed from {len(old)} to {len(new)}"
        changes = []
        for i, (a, b) in enumerate(zip(old, new)):
            if a == b:
                continue
            if a[0] == "static" or b[0] == "static":
                changes.append(f"{names[i]} (static): {_static_text(a[2])} -> "
                               f"{_static_text(b[2])}")
                continue
            leaf_names = leaf_input_names(names[i], args[i])
            if a[0] != b[0] or len(a[1]) != len(b[1]):
                changes.append(f"{names[i]}: pytree structure changed ({len(a[1])} -> "
                               f"{len(b[1])} arrays)")
                continue
            for leaf, x, y in zip(leaf_names, a[1], b[1]):
                if x != y:
                    changes.append(f"{leaf}: {_spec_text(x)} -> {_spec_text(y)}")
        return "; ".join(changes)

    def plan_for(self, *args):
        self._check_argnums(len(args))
        self._check_shape_entries(args, len(args))
        return self._plan_for_key(args, self.signature(args))

    def _plan_for_key(self, args, key, on_tape_instead=False, given=None):
        """The plan of this call, built at its first; `on_tape_instead` (Compiled.call):
        an _OnTape, no plan built, where the call belongs on the tape (fn closes over a
        tensor that requires grad), whose split plans are built by call_on_tape. `given`:
        see _trace."""
        signature, traced = key, None
        if self.retrace:  # the trace itself tells whether a plan computes this call
            traced = self._trace(args, signature, given)
            # (and which Buffers its calls write: the graph holds their values, not owners)
            key = (signature, traced[0].fingerprint(),
                   tuple((id(module), attr) for module, attr in traced[1]))
        entries = self._plans.get(key, [])  # (guards, plan): one per state of the guards
        plan = next((p for guards, p in entries if _hold(guards)), None)
        taped_before = isinstance(plan, _OnTape)
        if taped_before and not (on_tape_instead and plan.now()):
            self._drop(key, plan)  # a call off the tape: the plain plan, built in its place
            plan = None
        if plan is not None:
            self._used.move_to_end(id(plan))
        else:
            fname = function_name(self.fn).strip("<>")
            if self._plans and not taped_before:
                change = (_describe_guards(entries[-1][0]) if entries
                          else "a value the function reads (a closed-over or global one) "
                          "changed" if self.retrace and self._last_key == signature
                          else self._describe_change(self._last_key, signature, args))
                count = sum(len(e) for e in self._plans.values())
                message = f"recompiling {fname} (compilation {count + 1}): {change}"
                log.info("graphc: %s", message)
                self.recompiles.append(message)
                self._warn_recompiles(fname, message, signature)
            graph, written = traced or self._trace(args, signature, given)
            limits = weak.int_limits(graph)  # (it may refuse the graph: before a plan is kept)
            divisions = weak.python_divisions(graph) if graph.weak_ids else []
            if on_tape_instead and not self.retrace:
                plan = _OnTape(_taped_closures(graph, written), (graph, written))
                if not plan.now():
                    plan = None
            if plan is None:
                donate = [leaf for i in sorted(_passed(self.donate_argnums, len(args)))
                          for leaf in leaf_input_names(self._names(len(args))[i], args[i])]
                plan = self._build(graph, args, written, donate)
            self._plans.setdefault(key, []).append((list(graph.guards), plan))
            self._used[id(plan)] = (key, plan)
            self._drop_old_plans()
            if written:
                self._buffer_writes[id(plan)] = written
            read = _read_buffer_places(graph)
            if read:
                self._buffer_reads[id(plan)] = read
            if self.records_on_tape:
                closed = _taped_closures(graph, written)
                if closed:
                    self._closed_floats[id(plan)] = closed
            if limits or divisions:
                weak_inputs = [(i, node) for i, node in enumerate(graph.inputs)
                               if weak.is_weak(node)]
                entries, fast = weak.call_checks(weak_inputs, limits)
                if entries or divisions:
                    self._weak_int_limits[id(plan)] = (weak_inputs, entries, divisions, fast)
        self._last_key = signature
        return plan

    def _build(self, graph, args, written, donate):
        """The plan of `graph`, fn's trace at `args` (`written`: the Buffers it updates)."""
        from runtime.build import build_plan
        try:
            return build_plan(graph, self.pipeline, fast_math=self.fast_math, donate=donate,
                              jit=self.jit, memory_limit=self.memory_limit)
        except MemoryLimitError as exc:  # (the pass knows no caller: the user's call line,
            # as the split plans' refusals name it, graphc.split_vjp)
            raise exc.of_plan("the plan", exc.locs or (user_location(),)) from None

    def _trace(self, args, key, given=None):
        """(fn's graph at these arguments' specs, the (module, attribute) of each Buffer the
        trace updates). `given`: the arguments before _weak_floats; where it made a Python
        float a 0-d array, the input is still a Python number for the static_argnums hint of
        a traced number (found here: only a trace reads it, not every call)."""
        numbers = {i for i, (a, b) in enumerate(zip(given, args)) if a is not b} \
            if given is not None else ()
        fname = function_name(self.fn).strip("<>")
        static = self._static(len(args))
        names = self._input_names(args)
        dynamic = [i for i in range(len(args)) if i not in static]
        written = []
        derivatives = _traced_derivatives.count

        def bound(*values):
            graph = current_graph()
            graph.without_static_args = self.without_static_args
            graph.argument_positions = {names[i]: i for i in dynamic}
            full = list(args)
            for i, v in zip(dynamic, values):
                full[i] = v
                if i in numbers:
                    v.graph.python_number_ids.add(v.id)
            with collect_buffer_updates() as updates:
                out = self.fn(*full)
            if not updates.places:
                return out
            # BatchNorm's running statistics in training mode: extra results, written
            # into the Buffers after each call (as torch.compile writes a buffer)
            written.extend(updates.places)
            return out, [updates.values[id(m), a] for m, a in updates.places]

        # (the float dtype the arrays share: a longdouble inside a pytree takes it, as
        # _weak_floats gives it to a longdouble argument; the key's dtypes fix it)
        shared = _shared_float_dtype(args, skip=static)
        try:
            graph = trace(bound, *[_specs_of(args[i], key[i], shared) for i in dynamic],
                          names=[names[i] for i in dynamic], name=fname)
        except TracedNumberError as exc:
            if self.retrace or self.without_static_args is not None:
                raise  # (eager derivatives and vjp give their own advice)
            raise static_advice(exc, args, names, self.fn) from None
        graph.finished = f"the compiled {fname}"  # ir.ops.registry.apply: a leaked value
        # fn takes gradients itself (a training step: value_and_grad, then the optimiser's
        # update): its closures are constants, as jax.jit's (_taped_closures)
        graph.differentiates_itself = _traced_derivatives.count != derivatives
        self._differentiates = graph.differentiates_itself
        return graph, written

    # torch.compile's cache_size_limit: this many compilations of one function say that
    # something traced as a constant keeps changing
    RECOMPILES_WARNED = 8

    def _warn_recompiles(self, fname, message, signature):
        if self._warned_recompiles or len(self.recompiles) < self.RECOMPILES_WARNED:
            return
        self._warned_recompiles = True
        latest = message.split(': ', 1)[-1]
        if self.retrace:  # an eager derivative (eager_runner): nothing the user compiled
            numbers = self._numbers_changed(self._last_key, signature)
            # a number fn uses as a Python value: as an array it would be refused there
            # (no truth value); only computing with it lets it be traced
            advice = "; ".join(self._number_advice(numbers)) if numbers else (
                "each new value of something it reads as a constant (a closed-over number "
                "or array, a flag) compiles a new plan: pass it as an array argument, which "
                "is traced")
            warnings.warn(RecompileWarning(
                f"the derivative of {fname} has been compiled {len(self.recompiles) + 1} "
                f"times (the latest: {latest}); {advice}"), stacklevel=user_stacklevel())
            return
        old = self._last_key
        changed = [(name, a, b) for name, a, b in zip(self._names(len(signature)), old,
                                                       signature)
                   if a != b and "static" in (a[0], b[0])] if len(old) == len(signature) else []
        # what changed decides the advice: a static number is traced once left out of
        # static_argnums, where fn computes with it; any other static value (a str, a tuple)
        # cannot be traced (left out: "cannot make a tensor spec from a str")
        numbers = [name for name, a, b in changed
                   if all(x[0] == "static" and is_weak_scalar(x[2]) for x in (a, b))]
        others = [name for name, _, _ in changed if name not in numbers]
        advice = [self._static_number_advice(numbers)] if numbers else []
        if others:
            advice.append(f"{' and '.join(others)} {'is' if len(others) == 1 else 'are'} "
                          "static and no number: each value keys a plan of its own, as with "
                          "jax.jit; keep to a few values")
        advice = "; ".join(advice) or (
            "a value the trace reads as a constant (a setting, a Python number, a shape) "
            "compiles a new plan each time it changes: pass it as an argument, or mark the "
            "dimension polymorphic")
        warnings.warn(RecompileWarning(
            f"compiled {fname} has been compiled {len(self.recompiles) + 1} times (the latest: "
            f"{latest}); {advice}"), stacklevel=user_stacklevel())

    def trace_only(self, args):
        """fn's trace at these arguments as a call makes it, with no plan built or kept
        (eager_runner's probe of the uses of a number)."""
        weak = _weak_floats(args, self._static(len(args)))
        return self._trace(weak, self.signature(weak), given=args)

    def _static_number_advice(self, numbers) -> str:
        """How static numbers used as Python values would be traced instead, per use (which
        the trace of a static number does not see): an `if`, a loop over range(n) (where
        fn takes a gradient, a fixed-length loop masking the steps past n: a loop of traced
        length is a while_loop, which has no reverse mode), a shape (static either way: an
        array argument's dimension marked polymorphic)."""
        quoted = " and ".join(numbers)
        loop = ("a fixed N steps masking those past n, gc.fori_loop(0, N, lambda i, c: "
                "gc.where(i < n, step(c), c), init) (a loop of traced length, fori_loop(0, n), "
                "has no reverse mode)") if self._differentiates else \
            "gc.fori_loop(0, n, body, init)"
        return (f"{quoted} {'is' if len(numbers) == 1 else 'are'} static: each value compiles "
                "a plan; left out of static_argnums a number is traced, one plan for every "
                "value, where the function computes with it: an `if` as gc.where(cond, a, b), "
                f"a loop over range(n) as {loop}; a shape keys the plan either way: take the "
                "size from an array argument's dimension marked polymorphic (polymorphic_shapes)"
                " instead")

    def _number_advice(self, numbers) -> list:
        """Per use (_EagerSplit.uses: the error that made each number pass as it is), how a
        number that compiles a plan per value would be traced instead."""
        return []

    def _numbers_changed(self, old, new) -> list:
        """The names of the numbers passed as they are (used as Python values) whose values
        differ between two calls' signatures: eager_runner's (_EagerSplit) only."""
        return []

    def _drop_old_plans(self):
        """At most GRAPHC_MAX_PLANS plans (each holds its buffers): the one used longest ago
        goes first, as a Generator's (graphc/generate.py)."""
        while len(self._used) > settings.MAX_PLANS.get():
            self._drop(*next(iter(self._used.values())))

    def _drop(self, key, plan):
        entries = [(g, p) for g, p in self._plans[key] if p is not plan]
        if entries:
            self._plans[key] = entries
        else:
            del self._plans[key]
        del self._used[id(plan)]
        self._buffer_writes.pop(id(plan), None)
        self._buffer_reads.pop(id(plan), None)
        self._closed_floats.pop(id(plan), None)
        self._weak_int_limits.pop(id(plan), None)

    def __call__(self, /, *args, **kwargs):  # (positional-only: f(self=...) reaches f)
        if kwargs:
            return self._call_by_keyword(args, kwargs)
        return self._call_positional(args, len(args))

    def _call_positional(self, args, passed):
        """fn(*args), `passed` of them given by position (the others by keyword or left to
        their defaults: _positional's)."""
        leaves, _ = leaves_and_structure(list(args))  # (one pass: every call makes it)
        if any(isinstance(x, Node) for x in leaves) or current_graph() is not None or \
                APPLYING.depth and not self.retrace:
            # inside a trace (concrete arguments too): fn's nodes go into the graph being
            # traced, as jax.jit inside jit, so fn may read its values (a plan of its own
            # could not: "operands belong to different graphs"); polymorphic_shapes bind
            # no symbol there, but a str size naming one is its argument's size
            # (_inline_sizes: gc.eye('n') under gc.vmap), one naming no such size refused.
            # Inside Module.apply: see _Applying (an eager derivative, `retrace`, traces
            # each call: it is run)
            with naming_sizes(self._inline_sizes(args)):
                return self.fn(*args)
        self._check_shape_entries(args, passed)
        weak = _weak_floats(args, self._static(len(args)))
        try:
            if self.records_on_tape and is_grad_enabled() and \
                    any(isinstance(x, Tensor) and x.requires_grad for x in leaves):
                # as torch.compile's call: its results are on the tape (graphc/split_vjp.py;
                # a torch or complex argument beside the tensor is named as off the tape)
                from .split_vjp import call_on_tape
                return call_on_tape(self, weak)
            return self.call(weak, given=args)
        except ForeignArgument as exc:
            if not self.retrace:  # (an eager transformation's runner names its own: grad's)
                # a torch tensor argument: to_spec's line named neither fn nor the argument
                refuse_foreign_argument(f"compiled {called_function(self.fn)[1]}", self.fn,
                                        args, locs=exc.locs)
            raise

    def _call_by_keyword(self, args, kwargs):
        """fn(*args, **kwargs), the keywords taken as the positions they name; a number
        passed by keyword and used as a Python value is told to be listed in static_argnames
        by its keyword (ir's "list its position in static_argnums": the user gave none)."""
        try:
            return self._call_positional(self._positional(args, kwargs), len(args))
        except TracedNumberError as exc:
            advice = exc.advice or ""
            if not (advice.endswith("in static_argnums") and exc.message.endswith(advice)
                    and exc.arguments and set(exc.arguments) <= set(kwargs)):
                raise
            quoted = " and ".join(repr(name) for name in exc.arguments)
            advice = f"list {quoted} in static_argnames"
            raise TracedNumberError(exc.message[:-len(exc.advice)] + advice, exc.locs,
                                    exc.arguments, exc.reason, advice, exc.value) from None

    def _positional(self, args, kwargs) -> tuple:
        """Keyword arguments as the positions they name (as JAX's jit takes them; a static
        or donated argument is one by position either way); a parameter skipped before one
        passed by keyword takes its default. f(x, y=y) is then the call f(x, y)."""
        target, fname = called_function(self.fn)
        try:
            signature = call_signature(target)
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise GraphcError(f"compiled {fname}: {exc}", (user_location(),)) from None
        except ValueError:  # no signature to bind against
            raise GraphcError(f"compiled {fname}: pass {', '.join(sorted(kwargs))} by "
                              "position", (user_location(),)) from None
        positional = [p for p in signature.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        by_keyword = sorted(set(kwargs) - {p.name for p in positional})
        if by_keyword:
            raise GraphcError(f"compiled {fname}: {', '.join(by_keyword)} is keyword-only; "
                              "a compiled function takes its arguments by position (fix "
                              "others with functools.partial)", (user_location(),))
        last = max(i for i, p in enumerate(positional) if p.name in bound.arguments)
        return tuple(bound.arguments.get(p.name, p.default) for p in positional[:last + 1])

    def call(self, args, checked: bool = False, given=None):
        """fn(*args) on concrete values; `checked` runs the plan with its finite check
        (Plan.run_checked: a GraphcError names the first op that made a NaN or an Inf);
        `given`: see _trace."""
        self._check_argnums(len(args))
        key, leaves = self._key_and_leaves(args)
        plan = self._plan_for_key(args, key, on_tape_instead=self.records_on_tape,
                                  given=given)
        # (the _requires_grad slot, as record_call reads it: the property's getter is a call
        # per closed-over tensor, at every call)
        if type(plan) is _OnTape or self._closed_floats and is_grad_enabled() and \
                any(t._requires_grad for t in self._closed_floats.get(id(plan), ())):
            # fn closes over a tensor that requires grad: on the tape, as an argument's
            from .split_vjp import call_on_tape
            return call_on_tape(self, args, plan.take_trace() if type(plan) is _OnTape
                                else None)
        if self._weak_int_limits:
            check_weak_ints(leaves, self._weak_int_limits.get(id(plan)))
        leaves = [x.data if isinstance(x, Tensor) else x for x in leaves]
        outs = plan.run_checked(*leaves) if checked else plan(*leaves)
        return self._written_back(plan, unflatten(plan.graph.output_tree, outs))

    def _written_back(self, plan, result):
        """fn's result from `plan`'s, which ends with the Buffers' new values where fn's
        trace updated some (BatchNorm's running statistics): written into them here."""
        written = self._buffer_writes.get(id(plan))
        if written:
            result, values = result
            for (module, attr), value in zip(written, values):
                getattr(module, attr).data[...] = value
        return result

    def guards_hold(self, plan) -> bool:
        """Whether the Python state `plan` (one of plan_for's) was traced under still holds
        (the layers' training modes, their settings): the same arguments would run it."""
        return any(p is plan and _hold(guards) for entries in self._plans.values()
                   for guards, p in entries)

    def written_places(self, plan) -> list:
        """The (module, attribute) of each Buffer a call of `plan` (one of plan_for's)
        writes, in order: those of the layers that update running statistics in the traced
        function."""
        return list(self._buffer_writes.get(id(plan), ()))

    def read_places(self, plan) -> list:
        """The (module, attribute) of each Buffer a call of `plan` reads (an input of its
        graph, its value taken at each call: a frozen BatchNorm's statistics, a constant
        register_buffer), in input order, each Buffer at the first place holding it; one
        the call writes too is here where the trace read it before writing it."""
        return list(self._buffer_reads.get(id(plan), ()))

    def guarded_objects(self, plan) -> list:
        """The objects whose attributes the trace of `plan` (one of plan_for's) read, which
        its guards compare before each call: the layers whose mode or settings it read."""
        return [obj for entries in self._plans.values() for guards, p in entries if p is plan
                for obj, _, _ in guards]

    def plan_inputs(self, args) -> list:
        """The arrays plan_for(*args) takes, in its input order (static arguments left out)."""
        static = self._static(len(args))
        leaves, _ = leaves_and_structure([a for i, a in enumerate(args) if i not in static])
        return [x.data if isinstance(x, Tensor) else x for x in leaves]


# The rest of a Module's public methods, forwarded as parameters() ... eval() are, by name
# (those returning the model return the compiled one; of a compiled function, one line
# each); any other attribute of a model, a child (compiled.fc), by _CompiledModule.
_FORWARDED_METHODS = (
    "add_module", "apply", "bfloat16", "buffers", "children", "cpu", "cuda", "double", "float",
    "get_buffer", "get_parameter", "get_submodule", "half", "load_torch_state_dict", "modules",
    "named_buffers", "named_children", "named_modules", "params", "register_buffer",
    "register_module", "register_parameter", "requires_grad_", "set_submodule", "state", "to",
    "zero_grad")


def _forwarded(name):
    def method(self, *args, **kwargs):
        module = self._module(name)
        out = getattr(module, name)(*args, **kwargs)
        # one that returns its Module (to, double, requires_grad_) returns this, still
        # compiled, as torch's OptimizedModule does
        return self if out is module else out
    method.__name__, method.__qualname__ = name, f"Compiled.{name}"
    method.__doc__ = f"The compiled Module's {name}(), as torch's OptimizedModule forwards it."
    return method


for _name in _FORWARDED_METHODS:
    setattr(Compiled, _name, _forwarded(_name))
del _name


class _CompiledModule(Compiled):
    """gc.compile(model): a Compiled that gives every other attribute of the model (a child,
    compiled.fc; a setting; a user's method), as torch's OptimizedModule does by its
    __getattr__. As torch's, the model's attributes win for every public name but the Module
    methods a Compiled forwards (parameters() ... eval(), `training`, the forwarded ones
    above, which reach the model anyway): a model's `self.fn`, `self.precision` or
    `self.module` is compiled.fn, .precision, .module; the Compiled's own public state and
    methods (recompiles, plan_for, module(), retrace, ...) are read only where the model has
    no such attribute, and every set or del of a public name goes to the model (torch keeps
    only `_orig_mod` and underscored internals for itself), so that no model attribute can
    replace the compiled function. A class with a __getattr__ loses CPython's specialised
    attribute reads (every read, not only a miss: about +1 us a compiled call, measured),
    and so does an object whose __dict__ has been read as a dict: so the state and the
    calls are a plain Compiled's, `_twin`, which this one reads and writes through; a call
    goes to it by C alone (__call__ below), so a compiled model's call costs what it did."""

    def __init__(self, *args, **kwargs):
        twin = object.__new__(Compiled)
        Compiled.__init__(twin, *args, **kwargs)
        object.__setattr__(self, "_twin", twin)
        for name in functools.WRAPPER_ASSIGNMENTS + ("__wrapped__",):  # (the model's)
            if hasattr(twin, name):
                object.__setattr__(self, name, getattr(twin, name))

    # self(x) is self._twin(x): the property's getter and the call are C (no frame here)
    __call__ = property(operator.attrgetter("_twin"))

    def __getattr__(self, name):  # (only where the attribute is not found otherwise)
        twin = vars(self).get("_twin")
        if twin is None:  # (not built yet: no recursion)
            raise AttributeError(name)
        model = vars(twin)["__wrapped__"]
        if name.startswith("_"):  # the Compiled's internals first, then the model's
            try:
                return getattr(twin, name)
            except AttributeError:
                pass
            return getattr(model, name)  # (its own line if not)
        try:  # a public name: the model's (its fn, its precision), else the Compiled's
            return getattr(model, name)
        except AttributeError as missing:
            try:
                return getattr(twin, name)  # (recompiles, retrace, ...)
            except AttributeError:
                raise missing from None  # (the model's line: "'Net' object has no ...")

    def __deepcopy__(self, memo):  # (the twin's options, which a model's may shadow here)
        return vars(self)["_twin"].__deepcopy__(memo)

    def __get__(self, instance, owner=None):
        # a compiled model held by a class is the model, which binds nothing (a Module's
        # instance as a class attribute is no method either)
        return self

    def __reduce__(self):
        # pickle (and copy.copy): the model, compiled again with the same options at load,
        # as torch's OptimizedModule pickles (its _orig_mod and its dynamo_ctx); the plans
        # (kernels, the runtime's state) are not data, and are rebuilt at the first call
        return vars(self)["_twin"].__reduce__()

    def __dir__(self):
        # the model's names and then the Compiled's others, as torch's OptimizedModule's
        names = dir(vars(vars(self)["_twin"])["__wrapped__"])
        known = set(names)
        return names + sorted(n for n in set(object.__dir__(self)) | set(dir(self._twin))
                              if n not in known)

    # A set or a del goes where torch's OptimizedModule sends it: a public name to the model
    # always (compiled.scale = 3.0, compiled.fc = new, compiled.fn = Tanh(), del
    # compiled.scale; `training` sets the model's), so that reads, which give the model's,
    # and writes agree; an underscored name to the Compiled (the twin) where it is its state
    # or its class's, else to the model. (Every state of a Compiled is set in its __init__,
    # so the twin's __dict__ names them all; a call never sets anything here: it runs on the
    # twin; graphc's own writes of the Compiled's public state go to `_twin`.)
    def _holder(self, name):
        twin = vars(self)["_twin"]
        if name.startswith("_") and (name in vars(twin) or hasattr(type(self), name)):
            return twin
        return vars(twin)["__wrapped__"]

    def __setattr__(self, name, value):
        setattr(self._holder(name), name, value)

    def __delattr__(self, name):
        delattr(self._holder(name), name)


def _compiled_again(fn, options, records_on_tape, retrace):
    """fn compiled with a Compiled's _options(), no plan yet: a deepcopy's, an unpickled
    compiled model's."""
    compiled = Compiled(fn, *options)
    # (a compiled model's public names are its model's: its Compiled's are its _twin's)
    state = getattr(compiled, "_twin", compiled)
    state.records_on_tape, state.retrace = records_on_tape, retrace
    return compiled


def _model_first(name):
    """_CompiledModule's `name`, a public method or class attribute of Compiled's own
    (plan_for, call, module): the model's attribute of that name where it has one."""
    def read(self):
        twin = vars(self)["_twin"]
        try:
            return getattr(vars(twin)["__wrapped__"], name)
        except AttributeError:
            return getattr(twin, name)
    return property(read, doc=f"The model's {name}, else the Compiled's (Compiled.{name}).")


# the Module API (parameters() ... eval(), `training`, _FORWARDED_METHODS) stays the
# Compiled's, which forwards it, as torch's OptimizedModule's nn.Module methods
_MODULE_API = frozenset(_FORWARDED_METHODS + (
    "parameters", "named_parameters", "state_dict", "load_state_dict", "train", "eval",
    "training"))
for _name in dir(Compiled):
    if not _name.startswith("_") and _name not in _MODULE_API:
        setattr(_CompiledModule, _name, _model_first(_name))
del _name


class _OnTape:
    """A signature's entry in Compiled._plans while its calls go on the tape (fn closes
    over `closed`, tensors that require grad): no plain plan is built for it, the on-tape
    call builds the split's (graphc/split_vjp.py); a call off the tape (under no_grad)
    builds the plain plan in its place. Kept with its trace's guards, as a plan is, so that
    a changed guard is a recompilation of this function."""

    def __init__(self, closed, trace=None):
        self.closed = closed
        # the trace it was made from, (graph, written), for the on-tape call that follows at
        # once: its vjp is built on that graph, not on a second trace (take_trace)
        self._trace = trace

    def take_trace(self):
        """The trace this entry was made from, the first time (None after): fn's Python runs
        once a call, as eagerly (a hook that removes itself ran at the first trace; a
        second would trace fn without it, and the call's result would lack what it did)."""
        trace, self._trace = self._trace, None
        return trace

    def now(self) -> bool:
        """Whether a call goes on the tape now (each call asks: the slot, as Compiled.call)."""
        return is_grad_enabled() and any(t._requires_grad for t in self.closed)


def closed_floats(graph) -> list:
    """(input position, tensor) of each float Tensor fn's trace `graph` closes over (a
    Parameter, an eager tensor it read), in input order."""
    bound = [(i, graph.param_values.get(node.attrs["name"]))
             for i, node in enumerate(graph.inputs)]
    return [(i, t) for i, t in bound if isinstance(t, Tensor) and is_float(t.dtype)]


def _read_buffer_places(graph) -> list:
    """The (module, attribute) place of each Buffer the trace `graph` reads as an input, at
    the first place holding it (as named_buffers names a tied one); a Buffer no module holds
    (a free one closed over) has none and is left out."""
    read = []
    for node in graph.inputs:
        value = graph.param_values.get(node.attrs["name"])
        if isinstance(value, Buffer):
            read.extend(places_holding(value)[:1])
    return read


def _taped_closures(graph, written) -> list:
    """The float tensors fn's trace `graph` closes over that put a gc.compile'd call on the
    tape while one of them requires grad (Compiled.call): those some float result of fn
    depends on, none where fn differentiates itself (a functional training step closing
    over a pretrained backbone returns its new parameters as arrays, as jax.jit's: on the
    tape they would chain every step to the last)."""
    if graph.differentiates_itself:
        return []
    closed = closed_floats(graph)
    if not closed:
        return []
    positions = unflatten(graph.output_tree, list(range(len(graph.outputs))))
    positions = positions[0] if written else positions
    results = [graph.outputs[p] for p in leaves_and_structure(positions)[0]]
    results = [y for y in results if is_float(y.dtype)]
    reached = reaching(results, [graph.inputs[i] for i, _ in closed])
    return [t for (_, t), r in zip(closed, reached) if r]


def _typed(value):
    """A static argument as a plan's key: its value with its type, that of each element of
    a tuple too, since 1 == 1.0 == True while the function may tell them apart (the keyword
    arguments of grad and jacrev arrive as one tuple of (name, value) pairs)."""
    if isinstance(value, tuple):
        return type(value).__name__, tuple(_typed(v) for v in value)
    if isinstance(value, frozenset):  # (a set of keys: equal sets, equal keys in any order)
        return "frozenset", frozenset(_typed(v) for v in value)
    return type(value).__name__, value


def _static_text(value) -> str:
    """A static value in a recompilation's message: its repr where that is one short line,
    else its type and identity (a Module's repr is its whole nested print)."""
    text = repr(value)
    if "\n" in text or len(text) > 80:
        return f"<{type(value).__name__} object at {id(value):#x}>"
    return text


def _hold(guards) -> bool:
    try:
        return all(getattr(obj, attr) == value for obj, attr, value in guards)
    except Exception:  # an array now where a setting was (`==` gives no one truth): changed
        return False


def _same(now, then) -> bool:
    try:
        return bool(now == then)
    except Exception:  # (as _hold)
        return False


def _describe_guards(guards) -> str:
    """What changed in the Python state a plan was traced under: `Dropout 1.training: True ->
    False` (the layer's type and its path in the model)."""
    def where(obj):  # a module's path in its model; an optimiser (a Trainer) by its type
        if not hasattr(obj, "_path"):
            return type(obj).__name__
        return f"{type(obj).__name__} {obj._path or '(root)'}"
    return "; ".join(obj.describe_change() if hasattr(obj, "describe_change") else
                     f"{where(obj)}.{attr}: {value!r} -> {getattr(obj, attr)!r}"
                     for obj, attr, value in guards if not _same(getattr(obj, attr), value))


def _leaf_signature(x, template=None):
    """(shape, dtype name) of an argument's leaf; arrays take the fast path (it runs on every
    call of a compiled function). With a declared template, its symbolic dimensions are
    their names in the shape: every size of them has one signature."""
    if isinstance(x, np.ndarray):
        shape, dtype = x.shape, _dtype_name(x.dtype)
    else:
        spec = to_spec(x)
        shape, dtype = spec.shape, str(spec.dtype)
        if _is_python_number(x):  # weakly typed: not the plan of a 0-d int64 array
            # (a longdouble, traced as the arrays' float dtype (_specs_of), is not np.float32,
            # whose plan gave it a float32 input beside float64 arrays: a key of its own)
            dtype = "weak longdouble" if type(x) in _LACKED_FLOATS else f"weak {dtype}"
    if template is None:
        return shape, dtype
    return _template_shape(template, shape), dtype


class _Templates(list):
    """The declared shape of each leaf of an argument (None: all its dimensions concrete);
    `concrete` says that none is declared."""

    def __init__(self, templates):
        super().__init__(templates)
        self.concrete = all(t is None for t in templates)


_DTYPE_NAMES = {}


def _dtype_name(dtype) -> str:
    """dtype.name, remembered: numpy computes it in Python (~5 us), for every leaf of every
    call of a compiled function."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:  # a uint32 argument is an int64 input (ir/types.WIDENED_INPUTS)
        name = _DTYPE_NAMES[dtype] = WIDENED_INPUTS.get(dtype, dtype).name
    return name


class _TemplateMismatch(GraphcError):
    """A leaf's shape unlike its declared polymorphic shape; `detail` says how, from "has
    shape ...", and the compiled function's message names the leaf's argument (_naming)."""

    def __init__(self, detail):
        super().__init__(f"compile: polymorphic_shapes: the argument {detail}",
                         (user_location(),))
        self.detail = detail


def _template_shape(template, shape) -> tuple:
    if len(template) != len(shape):
        raise _TemplateMismatch(f"has shape {tuple(shape)}, {len(shape)} dimensions, but its "
                                f"polymorphic shape {_template_text(template)} has "
                                f"{len(template)}")
    out = []
    for declared, size in zip(template, shape):
        if declared == "_":
            out.append(size)
        elif isinstance(declared, int):
            if declared != size:
                raise _TemplateMismatch(f"has shape {tuple(shape)}, but its polymorphic "
                                        f"shape {_template_text(template)} declares "
                                        f"{declared}")
            out.append(size)
        else:
            out.append(str(declared))  # a symbol (or a Dim expression): its text
    return tuple(out)


def _template_text(template) -> str:
    return "(" + ", ".join(str(d) for d in template) + ")"


def parse_polymorphic_shape(shape, what="polymorphic shape") -> tuple:
    """("batch", 128), "(batch, 128)" or "batch, 128" -> ("batch", 128); "_" kept."""
    if isinstance(shape, str):
        text = shape.strip()
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        shape = [d.strip() for d in text.split(",") if d.strip()]
    out = []
    for d in shape:
        if isinstance(d, str):
            if d == "_":
                out.append(d)
                continue
            try:
                d = as_dim(int(d) if d.isdigit() else d)
            except (ValueError, GraphcError) as exc:
                raise GraphcError(f"compile: bad {what} {shape!r}: {exc}",
                                  (user_location(),)) from None
        elif not (is_int(d) or isinstance(d, Dim)):
            raise GraphcError(f"compile: bad {what} {shape!r}: a dimension is an int, a name "
                              f"or '_', not {type(d).__name__}", (user_location(),))
        out.append(d if isinstance(d, Dim) else int(d))
    return tuple(out)


def _is_shape_template(value) -> bool:
    return isinstance(value, str) or (isinstance(value, tuple) and all(
        isinstance(d, (str, Dim)) or is_int(d) for d in value))


def _shape_for_every_leaf(declared, arg) -> bool:
    """Whether `declared` is one shape for every leaf of the pytree `arg` (JAX's pytree
    prefix rule: an entry for a subtree applies to each of its leaves): a text shape, or a
    tuple shape for a dict (a tuple shape for a tuple or list is matched item by item)."""
    return isinstance(arg, (tuple, list, dict)) and (
        isinstance(declared, str) or isinstance(arg, dict) and _is_shape_template(declared))


def polymorphic_templates(declared, arg, count, argname) -> list:
    """One template (or None) per leaf of `arg` from its polymorphic_shapes entry: None,
    one shape for a single array, one shape for every array of a pytree
    (_shape_for_every_leaf), or a pytree of shapes (and Nones) shaped like `arg`."""
    if declared is None:
        return [None] * count
    if _shape_for_every_leaf(declared, arg):
        return [parse_polymorphic_shape(declared)] * count
    if _is_shape_template(declared):
        if count != 1:
            raise GraphcError(f"compile: polymorphic_shapes gives argument {argname} one shape "
                              f"{declared!r}, but it holds {count} arrays; give a pytree of "
                              "shapes (None for concrete leaves)", (user_location(),))
        return [parse_polymorphic_shape(declared)]
    # None declares every leaf under it concrete (and matches an argument's None, an empty
    # subtree), so the declaration is matched against the argument, not flattened
    templates = []

    def walk(d, a):
        if d is None:
            templates.extend([None] * len(leaves_and_structure(a)[0]))
        elif _shape_for_every_leaf(d, a):
            templates.extend([parse_polymorphic_shape(d)] * len(leaves_and_structure(a)[0]))
        elif a is not None and not isinstance(a, (tuple, list, dict)):
            if not _is_shape_template(d):
                raise mismatch
            templates.append(parse_polymorphic_shape(d))
        elif isinstance(d, dict) and isinstance(a, dict) and set(d) == set(a):
            for key in a:
                walk(d[key], a[key])
        elif (isinstance(d, (tuple, list)) and isinstance(a, (tuple, list))
              and len(d) == len(a)):
            for x, y in zip(d, a):
                walk(x, y)
        else:
            raise mismatch

    mismatch = GraphcError(f"compile: polymorphic_shapes for argument {argname} does not have "
                           "the argument's pytree structure", (user_location(),))
    walk(declared, arg)
    return templates


def _spec_text(shape_and_dtype):
    shape, dtype = shape_and_dtype
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


def _specs_of(arg, key, shared=None):
    """The specs to trace argument `arg` with; its signature `key` has the symbolic
    dimensions' names in place of their sizes. `shared`: the float dtype the arrays among
    the arguments share, or None; a float scalar of a dtype the IR lacks (np.longdouble) in
    a pytree is traced as it, as a longdouble argument is (_weak_floats; float32, to_spec's,
    without one): traced float32 beside float64 arrays, its value was rounded to float32
    where eagerly it meets them at float64."""
    leaves, structure, _ = flatten(arg)
    _, leaf_signatures = key
    return unflatten(structure, [Spec(tuple(as_dim(d) for d in shape),
                                      shared if shared is not None and _lacked_float(x)
                                      else to_spec(x).dtype, weak=_is_python_number(x))
                                 for x, (shape, _) in zip(leaves, leaf_signatures)])


def _lacked_float(x) -> bool:
    """A numpy float scalar of a dtype the IR lacks (np.longdouble)."""
    return type(x) in _LACKED_FLOATS


_LACKED_FLOATS = {t for t in (np.longdouble,) if np.dtype(t) not in SHORT_NAMES}


_NUMPY_NUMBERS = (np.integer, np.bool_) + NUMPY_FLOAT_SCALARS
_NUMBERS = (int,) + FLOAT_SCALARS


def _is_python_number(x) -> bool:
    """Weakly typed in a compiled function's trace (ir/weak.py), as jax.jit's Python
    scalars: Python bools, ints and floats, and numpy's bool and number scalars, weak in
    graphc's eager code too (registry.is_weak_scalar: `x_f32 * True` is float32); 0-d
    arrays keep their dtype. A weak bool is still a bool where no tensor casts it (a
    predicate, a mask). So is an eager op's result from numbers alone (gc.sqrt(2.0))."""
    return type(x) in (bool, int, float, WeakTensor) or \
        isinstance(x, _NUMPY_NUMBERS)


# the signatures of the numpy float scalars _weak_floats makes of a float argument (f(w32,
# 0.5): np.float32(0.5), weakly typed), taken on the fast path as arrays are
_FLOAT_SCALAR_SIGNATURES = {dtype.type: _leaf_signature(dtype.type(0)) for dtype in FLOAT_DTYPES}


def compile(fn=None, *, pipeline="default", fast_math=False, donate_argnums=(),
            static_argnums=(), static_argnames=(), polymorphic_shapes=None, precision=None,
            memory_limit=None):
    """Decorator or function: compile `fn` into a cached, optimised plan. By default the plan
    computes what numpy computes, NaN and inf included, at every array size; fast_math=True
    allows rewrites that assume finite values (x * 0 -> 0, exp(log x) -> x) and lets fused
    kernels reassociate and approximate (faster, results may depend on the array's size).
    donate_argnums / static_argnums / static_argnames: as JAX's jit (a name is its
    parameter's position, keyword arguments being taken by position); polymorphic_shapes: symbolic dimensions,
    as jax.export's (see Compiled). precision: "fp32" (or None), "bf16-mixed" or
    "fp16-mixed": fn is traced under gc.autocast with that half dtype (ir/ops/precision.py;
    loss scaling for float16 is gc.amp.LossScaler's). memory_limit: the plan's memory
    budget, met by recomputing activations (see Compiled)."""
    def make(f):
        _callable(f, "compile")  # (at the line that gave it, as jax.jit's; was at the call)
        if isinstance(f, _CompiledModule):  # gc.compile(gc.compile(model)): the model's,
            f = f.__wrapped__  # with these options (a call traced twice otherwise, and
            # nothing of the model forwarded; torch's gives a plain function)
        static = _argnums(static_argnums, "compile: static_argnums")
        if static_argnames:
            static += _named_positions(f, static_argnames, "compile: static_argnames")
        compiled = Compiled(f, pipeline, fast_math, donate_argnums, static,
                            polymorphic_shapes=polymorphic_shapes, precision=precision,
                            memory_limit=memory_limit)
        # the user's own: see Compiled.__call__ (a compiled model's public names are its
        # model's, so its Compiled's state is set on its _twin)
        getattr(compiled, "_twin", compiled).records_on_tape = True
        return compiled
    return make if fn is None else make(fn)


def _check_compile_options(pipeline, fast_math) -> None:
    """Checked where a Compiled is made (gc.compile, the Trainer's step), in one line:
    pipeline=None was a TypeError from inside the pass manager at the first call, and
    fast_math="no" turned fast math on."""
    from passes.manager import pipeline_passes
    if type(fast_math) not in (bool, np.bool_):
        raise GraphcError(f"compile: fast_math must be True or False, got {fast_math!r}",
                          (user_location(),))
    if not isinstance(pipeline, (str, list, tuple)) or \
            not all(isinstance(p, str) for p in pipeline):
        raise GraphcError(f"compile: pipeline must be a pipeline's name ('default', 'O0'), "
                          f"passes separated by commas, or a list of pass names; got "
                          f"{pipeline!r}", (user_location(),))
    try:
        pipeline_passes(pipeline)
    except GraphcError as exc:
        raise GraphcError(f"compile: {exc.message}", (user_location(),)) from None


def _under_autocast(fn, half):
    """fn run under autocast(half) (while it is traced: the plan embodies the policy)."""
    @functools.wraps(fn, updated=())
    def mixed(*args):
        with autocast(half):
            return fn(*args)
    return mixed


def _memory_limit_bytes(value) -> int:
    try:
        return parse_memory_limit(value)
    except GraphcError as exc:
        raise GraphcError(exc.message, (user_location(),)) from None


def _passed(argnums, count) -> set:
    """The positions of a call with `count` arguments that `argnums` names."""
    return {i % count for i in argnums if -count <= i < count}


def _positional_count(fn) -> int:
    """How many positional parameters fn has (0 when it takes *args or has no signature)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 0
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _named_positions(fn, names, what) -> tuple:
    """The positions of fn's parameters `names` (a str or a sequence of them), as jax.jit's
    static_argnames; a name that is no parameter taken by position is one line."""
    names = (names,) if isinstance(names, str) else tuple(names)
    target, shown = called_function(fn)
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    positions = {p.name: i for i, p in enumerate(parameters)
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for name in names:
        if name not in positions:
            raise GraphcError(f"{what}: {name!r} is not a parameter of {shown} taken by "
                              "position", (user_location(),))
    return tuple(positions[name] for name in names)


def _argnums(argnums, what="argnums"):
    """An int or a sequence of ints as a tuple; anything else one line naming `what`."""
    if isinstance(argnums, np.ndarray) and argnums.ndim == 0:
        argnums = argnums[()]
    if is_int(argnums):
        return (int(argnums),)
    if isinstance(argnums, (tuple, list, set, frozenset, range, np.ndarray)):
        nums = list(argnums)  # any collection of ints, as JAX's (not a generator: read once)
        if all(is_int(n) for n in nums):
            return tuple(int(n) for n in nums)
    raise GraphcError(f"{what} must be an int or a tuple of ints, got {argnums!r}",
                      (user_location(),))


def _callable(fn, who):
    if not callable(fn):
        raise GraphcError(f"{who}: the function to transform must be callable, got "
                          f"{fn!r}"[:200], (user_location(),))


def single_argnum(argnums) -> bool:
    """Whether argnums names one argument (an int, a numpy integer or a 0-d integer array):
    its derivative comes alone, not in a tuple, as JAX's."""
    return is_int(argnums) or (isinstance(argnums, np.ndarray) and argnums.ndim == 0)


def _differentiated(argnums, who):
    """A derivative's argnums as a tuple: an int or a non-empty sequence. argnums=() picks
    nothing to differentiate; JAX's grad and jacobians refuse it too (less clearly)."""
    nums = _argnums(argnums, f"{who}: argnums")
    if not nums:
        raise GraphcError(f"{who}: argnums={argnums!r} picks no argument to differentiate with "
                          "respect to; pass an int or a non-empty tuple", (user_location(),))
    return nums


# JAX's float0 (jax.dtypes.float0): the dtype of an integer or boolean argument's gradient
# under grad(allow_int=True), a numpy structured dtype of no bytes, so a zeros array of it
# has the argument's shape and holds nothing
float0 = FLOAT0


class NotDifferentiable(GraphcError, TypeError):
    """An integer or boolean argument given to a derivative to differentiate (a TypeError,
    as JAX's)."""


def check_differentiable(args, nums, who, fn, allow_int=False):
    """As JAX's grad and Jacobians: every leaf of the arguments at `nums` must be a
    floating-point value; an integer or bool one (a Python int too, as JAX takes it) is
    refused in one line naming its position. grad gave a Python int a float's gradient
    eagerly but refused it compiled, and jacrev gave an integer array None. A float dtype
    the IR lacks (np.longdouble) is a float here: the argument's conversion takes it (a weak
    float32 number, as eagerly) or names its dtype; hessian, which checks first, called
    float128 no floating-point dtype. A leaf whose dtype numpy cannot read (a torch.Tensor's
    torch.float32) is refused as the eager runner refuses another library's array, naming
    `who` of `fn` and the argument: hessian, which checks before any trace, raised numpy's
    raw TypeError "Cannot interpret 'torch.float32' as a data type". allow_int: grad's, an
    integer or bool leaf is taken (its gradient float0 zeros)."""
    for i in nums:
        for leaf in leaves_and_structure(args[i])[0]:
            try:
                dtype = _leaf_dtype(leaf)
            except TypeError:  # (only here: no cost to a leaf numpy reads)
                refuse_foreign_argument(f"{who} of {function_name(fn)}", fn, args)
                raise GraphcError(f"{who} of {function_name(fn)}: argument {i % len(args)} "
                                  f"has dtype {leaf.dtype!r}, which is no numpy dtype; pass "
                                  "a numpy array", (user_location(),)) from None
            if dtype is not None and not is_float(dtype) and dtype.kind != "f" and not (
                    allow_int and dtype.kind in "biu"):
                number = type(leaf) in (bool, int) or isinstance(leaf, np.generic) or \
                    weak.is_weak(leaf)  # (a number traced: eagerly and compiled alike)
                # (JAX's jacfwd and hessian take no allow_int: its jacfwd points at jacrev)
                allow = ", or set allow_int=True (float0 zeros)" if who in (
                    "grad", "value_and_grad", "jacrev") else \
                    ", or use jacrev(allow_int=True) (float0 zeros)" if who in (
                        "jacfwd", "hessian") else ""
                raise NotDifferentiable(f"{who}: argument {i % len(args)} has dtype {dtype}"
                                        f"{' (a number)' if number else ''}; only "
                                        "floating-point arguments can be differentiated (as "
                                        "in JAX): pass floats, leave it out of argnums"
                                        f"{allow}", (user_location(),))


def _leaf_dtype(leaf):
    """The dtype of a pytree leaf (int64 for a Python int); None for what holds no number."""
    if type(leaf) in (bool, int, float):
        return np.dtype(type(leaf) if type(leaf) is not int else np.int64)
    dtype = getattr(leaf, "dtype", None)
    return None if dtype is None else np.dtype(dtype)


def value_and_grad(fn, argnums=0, has_aux=False, holomorphic=False, allow_int=False):
    """f -> (f(x), df/dx) for a scalar-valued f; argnums picks which arguments (pytrees ok).
    allow_int (JAX's): an integer or boolean argument leaf is taken, its gradient zeros of
    dtype float0 (gc.float0, JAX's) and its shape; without it, it is refused (TypeError).
    holomorphic=True is refused: graphc has no complex dtype."""
    return _value_and_grad(fn, argnums, has_aux, "value_and_grad", holomorphic, allow_int)


def _float0_gradients(g):
    """grad(allow_int=True)'s gradient tree: the integer or boolean leaves (an integer or
    boolean argument's placeholder zeros; a float argument's gradient is a float) become
    numpy zeros of dtype float0 and the argument's shape, as JAX's."""
    def leaf(x):
        dtype = getattr(x, "dtype", None)
        if dtype is None or type(x) in (bool, int):
            dtype = np.dtype(np.int64) if type(x) in (bool, int) else None
        if dtype is not None and np.dtype(dtype).kind in "biu":
            return np.zeros(tuple(np.shape(x) if not isinstance(x, Node) else x.shape), float0)
        return x
    leaves, structure = leaves_and_structure(g)
    return unflatten(structure, [leaf(x) for x in leaves])


def _value_and_grad(fn, argnums, has_aux, who, holomorphic=False, allow_int=False):
    """value_and_grad, its messages naming `who` (the transformation the user called)."""
    _callable(fn, who)
    if holomorphic:  # (JAX's holomorphic=True: complex inputs and outputs)
        raise GraphcError(f"{who}: holomorphic=True needs complex inputs and outputs, and "
                          "graphc has no complex dtype; leave holomorphic=False",
                          (user_location(),))
    if not isinstance(allow_int, (bool, np.bool_)):
        raise GraphcError(f"{who}: allow_int must be True or False, got {allow_int!r}",
                          (user_location(),))
    nums = _differentiated(argnums, who)
    symbolic = traced_value_and_grad(fn, argnums, has_aux, who=who, allow_int=allow_int)

    run = eager_runner(symbolic, nums, f"{who}: ", fn)

    @functools.wraps(fn, updated=())
    def wrapper(*args, **kwargs):
        for i in nums:
            if not -len(args) <= i < len(args):
                raise GraphcError(f"{who}: argnums {i} but only {len(args)} arguments",
                                  (user_location(),))
        traced = _is_symbolic((args, kwargs)) or current_graph() is not None  # (_in_trace)
        args = _as_float_inputs(args, nums, in_pytrees=traced)
        value, g = symbolic(*args, **kwargs) if traced else run(args, kwargs)
        # allow_int: integer zeros stand for float0 ones (which no IR dtype holds) in the
        # plan and the trace, made float0 here
        return value, (_float0_gradients(g) if allow_int else g)

    return wrapper


def traced_value_and_grad(fn, argnums=0, has_aux=False, none_if_unreached=False,
                          who="grad", allow_int=False):
    """value_and_grad's work on symbolic arguments (inside a trace). none_if_unreached: a
    leaf the value does not depend on gets None, not zeros, as torch leaves its .grad
    (gc.Trainer: its optimiser then skips that parameter, its weight decay too). `who`:
    the transformation its messages name. allow_int: an integer or boolean leaf at argnums is
    taken, its gradient integer zeros of its shape (a placeholder, which grad's wrapper makes
    float0 zeros)."""
    nums = _differentiated(argnums, who)

    def symbolic(*args, **kwargs):
        wrt = {i % len(args) for i in nums if -len(args) <= i < len(args)}  # argnums=-1 ok
        check_differentiable(args, wrt, who, fn, allow_int)
        _note_traced_derivative()
        args = tuple(_variables(a) if i in wrt else a for i, a in enumerate(args))
        with differentiating():  # (in grad mode under a no_grad block too, as eagerly)
            try:
                out = called(f"{who} of {function_name(fn)}", fn, args, kwargs)
            except TracedNumberError as exc:
                raise differentiated_number(exc, fn, args, wrt, who) from None
        value, aux = split_aux(out, who) if has_aux else (out, None)
        graph = current_graph()
        if graph is not None:
            # a constant (computed from no argument): its gradient is zeros, as JAX's (and
            # jacrev's); an integer or non-scalar one is refused below, as any other
            constant = np.asarray(value) if isinstance(
                value, (bool, int, float, np.generic, np.ndarray)) else None
            if constant is not None and constant.dtype in SHORT_NAMES:
                # (a string, a complex number or an int past int64 is no constant to
                # differentiate: the message below, not the dtype's from deep inside)
                value = graph.constant(constant)
            elif isinstance(value, Tensor):  # gc.tensor(2.0), a parameter: read at each call
                value = value.graph_operand(graph)
        if not isinstance(value, Node):
            if isinstance(value, (tuple, list, dict)) and not has_aux:
                # (JAX's (loss, metrics) habit: name what came back, and the way to keep it)
                raise GraphcError(f"{who}: the function returned a {container_kind(value)} "
                                  f"of {len(value)}; return one scalar, or pass has_aux=True "
                                  "to return (output, aux)", (user_location(),))
            got = "None" if value is None else a_type(value)
            raise GraphcError(f"{who}: the function must return a tensor computed from its "
                              f"inputs, got {got}", (user_location(),))
        if not is_float(value.dtype):  # as JAX; its gradient was zeros, silently
            # (the IR's other dtypes: bool, int32 and int64)
            article, kind = ("a", "bool") if value.dtype == np.dtype(bool) else ("an", "integer")
            raise GraphcError(f"{who}: the function returned {article} {value.dtype} value; "
                              "only a floating-point result has a gradient (cast it, or "
                              f"return the {kind} as aux with has_aux=True)", (user_location(),))
        if value.size != 1:  # (the pass's own refusal names neither grad nor the function)
            raise GraphcError(f"{who}: {function_name(fn)} returned a value of shape "
                              f"{value.shape}; a gradient needs a scalar output: reduce it "
                              "(gc.sum, gc.mean), or use gc.vjp / gc.jacrev",
                              (user_location(),))
        wrt_leaves, structures = [], []
        for i in nums:
            leaves, structure, _ = flatten(args[i])
            wrt_leaves += leaves
            structures.append((structure, len(leaves)))
        integer = [_integer_leaf(x) for x in wrt_leaves] if allow_int else \
            [False] * len(wrt_leaves)
        with differentiating():
            grads = iter(gradients([value], [x for x, i in zip(wrt_leaves, integer) if not i],
                                   none_if_unreached=none_if_unreached)
                         if not all(integer) else ())
        grads = [np.zeros(np.shape(x) if not isinstance(x, Node) else x.shape, np.int32)
                 if i else next(grads) for x, i in zip(wrt_leaves, integer)]
        trees, pos = [], 0
        for structure, count in structures:
            trees.append(unflatten(structure, grads[pos:pos + count]))
            pos += count
        g = trees[0] if single_argnum(argnums) else tuple(trees)
        return ((value, aux), g) if has_aux else (value, g)

    # the plan's graph takes fn's name, which errors then name ("f returned a str")
    symbolic.__name__ = symbolic.__qualname__ = function_name(fn)
    return symbolic


def _integer_leaf(x) -> bool:
    """An integer or boolean leaf (grad's allow_int=True): a Python int or bool too."""
    if type(x) in (bool, int):
        return True
    dtype = getattr(x, "dtype", None)
    return dtype is not None and np.dtype(dtype).kind in "biu"


def eager_runner(symbolic, nums, prefix="", fn=None, who=None):
    """How grad, value_and_grad and the Jacobians run `symbolic` on concrete arguments,
    run(args, kwargs), as JAX's un-jitted transformations: traced again at each call, so a
    closed-over value that changed is seen (Compiled.retrace: a plan is reused while the
    trace is the same). Arguments that are not differentiated pass through as JAX's do:
    those holding arrays, and Python numbers, are traced; the others (flags, strings,
    keyword arguments that are Python numbers) reach fn as they are, and key the plan. A
    Python number that fn uses as a Python value (range(k), a shape, a custom_vjp's nondiff
    argument), alone or as a leaf of a tuple, list or dict (range(n[0])), a positional or
    a keyword argument's (k=np.int64(2)), cannot be traced: from then on the number in that
    place reaches fn as it is (as un-jitted JAX passes it), keying the plan, and the others
    stay traced, the other leaves of its argument too (a new learning rate, n[1], reuses
    the plan). `fn`: the user's function, whose name and arguments recompiles name; `who`:
    the transformation (grad, jacrev), which a differentiated number's message names."""
    if fn is not None:  # (the plan's graph and recompile messages name fn: "symbolic" said
        symbolic.__name__ = symbolic.__qualname__ = function_name(fn)  # nothing to the user)
    plain = _Positional(symbolic, fn)
    who = who or prefix.rstrip(": ") or "the transformation"

    def placed(static, traced, *args):  # (its parameters name the split plan's inputs)
        fixed, settings, numbers = static
        args, traced = list(args), dict(traced)
        for i, value in fixed:
            args.insert(i, value)
        for where, leaves in numbers:  # (a keyword's name, or a position in args)
            holder = traced if isinstance(where, str) else args
            holder[where] = leaves.put_back(holder[where])
        return symbolic(*args, **dict(settings), **traced)

    placed.__name__ = function_name(symbolic if fn is None else fn)  # (recompile messages)
    split = _EagerSplit(placed, fn)
    plain.retrace = split.retrace = True
    # the leaves fn used as Python values: argument position (or keyword) -> their names in
    # it ("" for the argument itself, "0" for n[0], "a.1" for n["a"][1]), as the graph's
    # inputs name them ("arg1", "arg1.0")
    as_they_are = {}

    def run(args, kwargs):
        try:
            return run_retrying(args, kwargs)
        except ForeignArgument as exc:
            # a torch tensor argument: to_spec's line named neither fn nor the argument
            if fn is not None:
                refuse_foreign_argument(f"{who} of {function_name(fn)}", fn, args, kwargs,
                                        locs=exc.locs)
            raise

    def run_retrying(args, kwargs):
        while True:  # (each turn makes one more leaf static, or raises)
            try:
                return run_with(args, kwargs)
            except TracedNumberError as exc:
                # only where every value it is computed from is a Python number that can
                # pass as it is (a 0-d array, or a differentiated argument, stays traced:
                # retrying would fail again)
                leaves = getattr(exc, "leaves", None)
                wrt = _wrt(nums, len(args))
                mine = [(p, name) for p, name in leaves or () if p in wrt]
                if mine and all(_is_number_leaf(args[p], name) for p, name in mine):
                    # a differentiated number used as a Python value: the message's advice
                    # (static_argnums, gc.compile's) is not this transformation's to take
                    user = split._user_names(len(args))
                    quoted = " and ".join(repr(f"{user[p]}.{name}" if name else user[p])
                                          for p, name in mine)
                    one = len(mine) == 1
                    # argnums picks whole arguments: a leaf's (cfg.k) is left out with cfg
                    whole = " and ".join(repr(user[p]) for p in dict.fromkeys(
                        p for p, _ in mine))
                    where, out_of = "argnums", f"{whole} out of argnums"
                    # a traced transformation inside holds it too: each is named (the
                    # last, symbolic's own, said this transformation's traced advice)
                    inner = getattr(exc, "differentiated", [])[:-1]
                    if inner:
                        where, out_of = argnums_holding(inner + [(who, whole)])
                    raise TracedNumberError(
                        f"{exc.reason}; {quoted} {'is' if one else 'are'} differentiated (in "
                        f"{where}), so traced: {who} takes no static_argnums; to use "
                        f"{'it' if one else 'them'} as a Python value, leave {out_of}: a "
                        "number not differentiated is passed as it is",
                        exc.locs, exc.arguments, exc.reason) from None
                if not leaves or any(p is None or p in wrt or name in as_they_are.get(p, ())
                                     or not _is_number_leaf(kwargs.get(p) if isinstance(
                                         p, str) else args[p], name)
                                     for p, name in leaves):
                    raise
                user = split._user_names(len(args))
                # the trace stopped at the first use (an `if`): once more, given the numbers'
                # values, it sees the others (then range(n)) for the recompile warning
                probe_uses(split.uses, call_of(args, kwargs), args, kwargs, user)
                for p, name in leaves:
                    as_they_are.setdefault(p, set()).add(name)
                    argument = p if isinstance(p, str) else user[p]  # (as _as_they_are names)
                    split.uses.setdefault(f"{argument}.{name}" if name else argument,
                                          set()).add(exc.reason)

    def run_with(args, kwargs):
        compiled, call_args, places = call_of(args, kwargs)
        return naming_position(lambda: compiled(*call_args), places)

    def call_of(args, kwargs):
        """(the Compiled running fn(*args, **kwargs), its arguments, {the graph input name
        of each of those that are fn's positional arguments: its position in args}, for
        naming_position)."""
        wrt = _wrt(nums, len(args))
        fixed = tuple((i, a) for i, a in enumerate(args) if i not in wrt and _is_setting(a))
        traced = {k: v for k, v in kwargs.items() if _holds_arrays(v)} if kwargs else {}
        numbers = []  # (the other leaves of their arguments stay traced)
        for p, names in as_they_are.items():
            if isinstance(p, str):
                value = traced.get(p)
            elif p < len(args) and p not in wrt and not _is_setting(args[p]):
                value = args[p]
            else:
                continue
            leaves = _StaticLeaves.of(value, names)
            if leaves is not None:
                numbers.append((p, leaves))
        numbers = tuple(numbers)
        if not kwargs and not fixed and not numbers:
            return plain, args, dict(zip(plain._input_names(args), range(len(args))))
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in traced))
        user = split._user_names(len(args))
        for what, v in [(f"argument {user[i]}", a) for i, a in fixed] + \
                [(f"keyword argument {k}=", v) for k, v in static]:
            try:  # they key the plan: name the one that cannot
                hash(v)
            except TypeError:
                raise GraphcError(f"{prefix}{what} is {a_type(v)}, which is not "
                                  "hashable; pass a tuple, or arrays to trace",
                                  (user_location(),)) from None
        skipped = {i for i, _ in fixed}
        rest = [i for i in range(len(args)) if i not in skipped]
        if numbers:
            args, traced = list(args), dict(traced)
            for p, leaves in numbers:
                holder = traced if isinstance(p, str) else args
                holder[p] = leaves.traced_part(holder[p])
        call_args = ((fixed, static, numbers), traced, *[args[i] for i in rest])
        return split, call_args, dict(zip(split._input_names(call_args)[2:], rest))

    return run


class _Positional(Compiled):
    """gc.compile of eager_runner's symbolic(*args), the user's fn differentiated: its graph
    inputs, recompile messages and the runtime's checks (a divisor of 0) name fn's
    parameters (arg_names: "x", "args[1]" of *args; "x.0" for a leaf), where they said
    "arg2", symbolic's own; advice.input_leaf reads them back by _input_names."""

    def __init__(self, fn, user_fn=None, **options):
        super().__init__(fn, **options)
        self.user_fn = user_fn
        self._names_by_count = {}  # (eager_runner asks at every call: a signature's read)

    def _names(self, count):
        return self._user_names(count)

    def _user_names(self, count) -> list:
        names = self._names_by_count.get(count)
        if names is None:
            names = [f"arg{i}" for i in range(count)] if self.user_fn is None else \
                arg_names(called_function(self.user_fn)[0], count)
            self._names_by_count[count] = names
        return list(names)


class _EagerSplit(_Positional):
    """eager_runner's call placed(static, traced, *args) of fn: `static` holds what is
    passed as it is (fn's settings, and the numbers fn used as Python values), `traced` the
    keyword arguments traced, then fn's other positional arguments. Its recompile messages
    name fn's arguments, and the old and new value of one passed as it is as gc.compile's
    name a static argument's ("n (passed as it is): 2 -> 3"), where they said "a setting
    passed as it is (a flag, a string) changed" and named placed's arguments ("arg2")."""

    def __init__(self, placed, fn):
        super().__init__(placed, fn, static_argnums=(0,))
        # {the name of a number passed as it is ("n", "cfg.k"): what made it so, the
        # traced-number errors' reasons, each use (an `if`, then range(n))}, for the
        # recompile warning's advice
        self.uses = {}

    def _input_names(self, args) -> list:
        """placed's own two, then fn's names of the arguments not passed as they are (its
        `fixed` ones, args[0][0], are not placed's); a name of fn's that is one of placed's
        own two takes a "_" (a graph's input names are distinct)."""
        fixed = {i for i, _ in args[0][0]}
        count = len(args) - 2 + len(fixed)
        names = [name + "_" if name in ("static", "traced") else name
                 for i, name in enumerate(self._user_names(count)) if i not in fixed]
        return ["static", "traced"] + names

    def _number_advice(self, numbers) -> list:
        kinds = {}  # (an int: a range, a shape; a bool: an `if`; else float() or math)
        for name in numbers:
            if name.endswith("="):  # a keyword argument's number (_numbers_changed)
                kinds.setdefault("keyword", []).append(name)
                continue
            # (scan's traced length is an int use too: it can only be fixed, never traced)
            for kind in sorted({"int" if reason.startswith(("int()", "scan: length")) else
                                "if" if "truth value" in reason else "other"
                                for reason in self.uses.get(name) or {""}}):
                kinds.setdefault(kind, []).append(name)
        advice = []
        keywords = kinds.pop("keyword", None)
        if keywords:  # (never traced: how fn uses them is not known; the uses of either)
            are = "is a keyword argument" if len(keywords) == 1 else "are keyword arguments"
            # (a keyword-only parameter takes no position: made a positional one first)
            by_position = "passed by position" if all(
                self._positional_parameter(name[:-1]) for name in keywords) else \
                "made a positional parameter and passed by position"
            advice.append(
                f"{' and '.join(keywords)} {are}: a number passed by keyword reaches the "
                f"function as it is, each value compiling a plan; {by_position} it is "
                "traced where the function computes with it: an `if` as gc.where(cond, a, b), "
                "a loop over range(n) as a fixed N steps masking those past n, "
                "gc.fori_loop(0, N, lambda i, c: gc.where(i < n, step(c), c), init); else "
                "keep it to a few values")
        for kind, names in kinds.items():
            quoted = " and ".join(names)
            if kind == "int":  # (a loop of traced length is a while_loop: no reverse mode)
                advice.append(
                    f"{quoted}: used as an int (a range, a shape), each value compiles a plan; "
                    "for a loop over range(n) differentiated with one plan for every n, loop a "
                    "fixed N times and mask the steps past n (gc.fori_loop(0, N, lambda i, c: "
                    "gc.where(i < n, step(c), c), init)), which traces n; else keep n to a few "
                    "values")
            elif kind == "if":
                advice.append(
                    f"{quoted}: used in an `if`, each value compiles a plan; computed with "
                    "instead (gc.where(cond, a, b)), it is traced, one plan for every value")
            else:
                advice.append(
                    f"{quoted}: a number the function uses as a Python value (float(), math) "
                    "compiles a plan per value; computed with instead (k * x, gc.sqrt(k)), "
                    "it is traced, one plan for every value")
        return advice

    def _positional_parameter(self, name) -> bool:
        """Whether fn's parameter `name` can be passed by position."""
        try:
            parameter = inspect.signature(called_function(self.user_fn)[0]).parameters[name]
        except (TypeError, ValueError, KeyError):  # (no signature; a **kwargs name)
            return False
        return parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)

    def _describe_change(self, old, new, args, names=None) -> str:
        counts = [len(key) - 2 + len(key[0][2][0]) for key in (old, new)]  # fn's arguments
        if counts[0] != counts[1]:
            return f"the number of positional arguments changed from {counts[0]} to {counts[1]}"
        was, now = self._as_they_are(old), self._as_they_are(new)
        changes = [f"{name} (passed as it is): {was.get(name) or self._absent(name, old)} -> "
                   f"{now.get(name) or self._absent(name, new)}"
                   for name in sorted(was.keys() | now.keys()) if was.get(name) != now.get(name)]
        if len(old) == len(new):  # the traced arguments, by fn's names
            skipped = {i for i, _ in args[0][0]}
            # the traced keyword arguments are one dict: its leaves by their own names
            names = ["" if old[1][0] == new[1][0] else "the keyword arguments traced"] + \
                [name for i, name in enumerate(self._user_names(counts[1])) if i not in skipped]
            rest = super()._describe_change(old[1:], new[1:], args[1:], names)
            changes += [rest] if rest else []
        return "; ".join(changes) or "an argument passed by keyword is passed by position, or back"

    def _numbers_changed(self, old, new) -> list:
        if old is None or len(old) != len(new):
            return []
        was, now = (self._as_they_are(key, numbers_only=True) for key in (old, new))
        # and the numbers passed by keyword (settings: never traced, so not in `uses`), which
        # the generic advice told to pass as arrays (range(array) then failed)
        settings = [dict(key[0][2][1]) for key in (old, new)]
        keywords = [f"{k}=" for k in sorted(settings[0].keys() & settings[1].keys())
                    if settings[0][k] != settings[1][k] and all(
                        is_weak_scalar(s[k]) and not isinstance(s[k], (bool, np.bool_))
                        for s in settings)]
        return [name for name in sorted(was.keys() | now.keys())
                if was.get(name) != now.get(name)] + keywords

    def _as_they_are(self, key, numbers_only=False) -> dict:
        """{the name of each argument, keyword argument or leaf of a call's `key` passed as
        it is: the repr of its value} (repr tells 1, 1.0 and True apart, as the key does);
        `numbers_only`: the numbers fn used as Python values, not its settings."""
        fixed, settings, numbers = key[0][2]
        if numbers_only:
            fixed, settings = (), ()
        positions = [i for i, _ in fixed] + [p for p, _ in numbers if not isinstance(p, str)]
        user = self._user_names(max(positions, default=-1) + 1)
        found = {user[i]: repr(v) for i, v in fixed}
        found.update((f"{k}=", repr(v)) for k, v in settings)
        for where, leaves in numbers:
            argument = where if isinstance(where, str) else user[where]
            found.update((f"{argument}.{leaf}" if leaf else argument, repr(v))
                         for leaf, (_, v) in zip(leaves.names, leaves.values))
        return found

    def _absent(self, name, key) -> str:
        """What the call of `key` did with `name`, not passed as it is: traced, or not given
        (a keyword left out, fewer arguments)."""
        fixed = key[0][2][0]
        count = len(key) - 2 + len(fixed)
        if name.endswith("="):  # (key[1]: the traced keyword arguments' dict structure)
            return "traced" if name[:-1] in dict(key[1][0][1]) else "not given"
        user = self._user_names(count)
        return "not given" if name not in user and "." not in name else "traced"


def _wrt(nums, count) -> set:
    """The positions of the differentiated arguments among `count`."""
    return {i % count for i in nums if -count <= i < count}


def _is_setting(value) -> bool:
    """Whether an argument that is not differentiated is a setting passed as it is (a flag,
    a string, an enum member, a tuple such as ("lin", 0.5)): it holds no array, and not
    only numbers, so that tracing it would fail. A batch dict with a float in it and a list
    of floats are traced."""
    leaves, _ = leaves_and_structure(value)
    arrays = (Node, Tensor, np.ndarray)
    return bool(leaves) and not any(isinstance(x, arrays) for x in leaves) and not all(
        type(x) in (int, float) or isinstance(x, (np.integer,) + NUMPY_FLOAT_SCALARS)
        for x in leaves)


def _is_number_leaf(value, name) -> bool:
    """Whether the leaf of an argument the graph's inputs name `name` ("" for the argument
    itself, "0" for value[0]) is a Python (or numpy) number, which can pass as it is."""
    leaves, _, names = flatten(value)  # (None, a keyword not passed: no leaves)
    return any(n == name and is_weak_scalar(x) for x, n in zip(leaves, names))


class _StaticLeaves:
    """The leaves of an argument that fn uses as Python values (n[0] in range(n[0])), passed
    as they are as JAX's un-jitted grad passes them: they key the plan with the argument's
    structure, by their values and types (1, 1.0 and True are told apart). The argument's
    other leaves stay traced, in a copy of it with None (an empty subtree) in their places,
    so a learning rate beside them (n[1]) reuses the plan, as a separate argument would."""
    __slots__ = ("structure", "values", "names", "key")

    @staticmethod
    def of(value, names):
        """The leaves of `value` named in `names` that are numbers, or None where none is
        (the argument in that position now holds arrays there: traced)."""
        leaves, structure, leaf_names = flatten(value)
        kept = [(k, x, n) for k, (x, n) in enumerate(zip(leaves, leaf_names))
                if n in names and is_weak_scalar(x)]
        return _StaticLeaves(structure, tuple((k, x) for k, x, _ in kept),
                             tuple(n for _, _, n in kept)) if kept else None

    def __init__(self, structure, values, names):
        self.structure, self.values = structure, values
        self.names = names  # each value's leaf name ("" the argument itself): messages
        self.key = (structure, tuple((k, _typed(x)) for k, x in values))

    def traced_part(self, value):
        """`value` with None in the places of these leaves (the other leaves keep their
        names, as the graph's inputs and messages give them: 'arg1.1')."""
        leaves, _ = leaves_and_structure(value)
        for k, _ in self.values:
            leaves[k] = None
        return unflatten(self.structure, leaves)

    def put_back(self, traced):
        """The argument fn gets: `traced` (traced_part's, its leaves traced) with these
        leaves in their places."""
        rest = iter(leaves_and_structure(traced)[0])
        given = dict(self.values)
        return unflatten(self.structure, [given[k] if k in given else next(rest)
                                          for k in range(leaf_count(self.structure))])

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return type(other) is _StaticLeaves and self.key == other.key

    def __repr__(self):
        return f"leaves {[k for k, _ in self.values]} as they are"


# _in_trace: grad, value_and_grad, jvp, vjp and hessian called on concrete arrays while a graph
# is being traced (a vmapped function, a loop body or branch, a compiled function) build
# nodes of that graph, as JAX's transforms do under jit, and do not compile a plan of their
# own: the function may read values of the graph being traced (vmap(lambda x: grad(lambda
# w: f(w, x))(w0))), which a plan of its own could not take ("operands belong to different
# graphs").


def _variables(tree):
    """`tree` with each symbolic leaf replaced by a fresh variable of the graph being built
    (a copy of it), to differentiate with respect to, as JAX makes a transform's arguments new
    tracers: what the function computes from its argument goes through the copy, and what
    it computes from the original value (a closure over it, as in
    grad(lambda w: sum(w * x))(x)) does not, so it is not differentiated (that would give
    2x, not x). A value of an enclosing graph (read inside a scan body, a cond branch or a
    vmapped function) enters the region being built first: the function's nodes are built
    there, and the gradient reaches them, where it found no path to the outer value and
    was zero."""
    graph = current_graph()
    capture = getattr(graph, "capture", None)

    def fresh(x):
        if not isinstance(x, Node):
            if graph is None or not isinstance(x, (np.ndarray, np.generic, Tensor)):
                return x
            if isinstance(x, np.generic) and not is_float(x.dtype):
                # a numpy int or bool has nothing to differentiate: a number, weakly typed
                # where it meets a tensor, as where fn closes over it (x * np.int32(3)) and
                # eagerly; lifted, it was a strong int64 or bool that no float tensor takes
                return x
            if isinstance(x, np.generic) or type(x) is WeakTensor:
                # a float number (_as_float_inputs gave it its dtype; an unmapped numpy
                # float scalar that an eager vmap passes on), or an eager weak value
                # (-gc.sqrt(4.0)): weakly typed as eagerly, of its own dtype (like_dtype would take it alone
                # as float32; lifted, the weak value was strong)
                x = graph.weak_constant(np.asarray(x.data if isinstance(x, Tensor) else x))
            else:  # a concrete argument inside a trace (_in_trace): a value of the graph
                x = lift_symbolic(graph, x, like_dtype([x]), "transform argument")
        if capture is not None and x.graph is not graph:
            x = capture(x)
        if not is_float(x.dtype):  # nothing to differentiate; a weak int stays weak (jvp's
            return x  # Python-int primal is an index or a factor of a float, as in JAX)
        return apply("reshape", x, shape=tuple(x.shape))  # an identity, simplified away

    leaves, structure = leaves_and_structure(tree)
    return unflatten(structure, [fresh(x) for x in leaves])


def _holds_arrays(value) -> bool:
    """Whether a keyword argument of grad (eager_runner) is traced: it holds arrays (numpy
    scalars count), and its other leaves are numbers, traced leaf by leaf as a positional
    argument's (a number fn uses as a Python value then reaches it as it is). A dict of
    arrays and Python numbers was a setting, refused as unhashable. Keyword arguments holding
    no array, or a leaf that is no number (a string), are settings, passed as they are."""
    arrays = False
    for x in leaves_and_structure(value)[0]:
        if isinstance(x, (Node, Tensor, np.ndarray, np.generic)):
            arrays = True
        elif not is_weak_scalar(x):
            return False
    return arrays


def _shared_float_dtype(args, skip=()):
    """The floating-point dtype the arrays among the arguments (all their leaves, those at
    the positions `skip` aside) share, or None where they share none."""
    dtypes = {np.dtype(x.dtype)
              for x in leaves_and_structure([a for i, a in enumerate(args) if i not in skip])[0]
              if isinstance(x, (Node, Tensor, np.ndarray))  # (scalar objects are weak)
              and is_float(x.dtype)}
    return dtypes.pop() if len(dtypes) == 1 else None


def _is_weak_scalar(a, kinds) -> bool:
    """A Python number or a numpy float scalar: weakly typed, as they are where they meet a
    tensor (README, "Design"); arrays, 0-d ones included, keep their dtype. numpy integer
    scalars are left alone: they are labels and indices (a class for cross_entropy, a start
    for dynamic_slice), not values to differentiate."""
    return isinstance(a, kinds) and not isinstance(a, (bool, np.bool_))


def _weakly_typed(args, kinds, static=(), default=None) -> tuple:
    """The arguments with their weak scalars of `kinds` (not at the `static` positions) as
    numpy scalars of the floating-point dtype the array arguments share; where they share
    none, of the dtype numpy float scalars among those give (np.float32(2.0): float32, as a
    compiled function traces it, and JAX), else of `default` (None: left as they are)."""
    positions = {i for i, a in enumerate(args) if i not in static and _is_weak_scalar(a, kinds)}
    if not positions:
        return args
    dtype = _shared_float_dtype(args, skip=set(static) | positions)
    if dtype is None and default is not None:
        # (a longdouble, which the IR lacks, counts as float32: its dtype alone, eagerly)
        own = [args[i].dtype if args[i].dtype in SHORT_NAMES else np.dtype(np.float32)
               for i in positions if isinstance(args[i], NUMPY_FLOAT_SCALARS)]
        dtype = np.result_type(*own) if own else default
    if dtype is None:
        return args
    # numpy scalars of that dtype, not 0-d arrays: still weakly typed where they meet a tensor
    # (registry.is_weak_scalar; a compiled function traces them as weak inputs), as the
    # Python float was and as JAX's grad and jit keep it. A strong 0-d array made the entry
    # points disagree: gc.grad of sum(clip(i32, lo, 5)) at lo=0.5 was refused ('maximum(i32[3],
    # f64[])') where compile(grad) and JAX give 1.0, as compile(f)(w32, 0.5) was
    return tuple(dtype.type(a) if i in positions else a for i, a in enumerate(args))


def _as_float_inputs(args, argnums=None, in_pytrees=False) -> tuple:
    """grad's and the Jacobians' arguments: Python floats and numpy float scalars as numpy
    float scalars (something to differentiate, still weakly typed), of the float dtype the
    arrays share (as in JAX, grad(f)(w32, 3.0) is float32 throughout), else of the numpy
    float scalars' dtype (grad(f)(np.float32(2.0)) is float32), float64 otherwise. Only those at
    `argnums` (None: all) are differentiated: the others stay as they are, so that an int
    among them is still an int (grad(lambda x, n: x[n].sum())(x, 1), as in JAX). A Python
    int at `argnums` stays an int too, which check_differentiable refuses, as JAX does.
    in_pytrees: inside a trace, where a number left as it is would be a constant with no
    gradient, the float leaves of pytree arguments too: weakly typed values of their own
    dtype (float64 for a Python float), as the eager runner's trace takes them, so that
    their gradients have the eager dtype (JAX's of a weakly typed float under x64)."""
    converted = _weakly_typed(args, FLOAT_SCALARS, default=np.dtype(np.float64))
    graph = current_graph()
    if in_pytrees and graph is not None:
        converted = tuple(_weak_float_leaves(graph, a) if isinstance(a, (tuple, list, dict))
                          else a for a in converted)
    if argnums is None:
        return converted
    picked = {i % len(args) for i in argnums if -len(args) <= i < len(args)}
    return tuple(c if i in picked else a for i, (a, c) in enumerate(zip(args, converted)))


def _weak_float_leaves(graph, tree):
    leaves, structure = leaves_and_structure(tree)
    if not any(_is_weak_scalar(x, FLOAT_SCALARS) for x in leaves):
        return tree
    return unflatten(structure, [graph.weak_constant(np.asarray(x))
                                 if _is_weak_scalar(x, FLOAT_SCALARS) else x
                                 for x in leaves])


def _as_primals(args) -> tuple:
    """jvp's and linearize's primals and tangents: Python floats and numpy float scalars as
    _as_float_inputs makes them; a Python int stays a weakly typed int, as JAX's (an index:
    no tangent; a factor: it takes the other operand's float dtype), where _as_float_inputs
    made it a float64 that no index takes."""
    return _weakly_typed(args, FLOAT_SCALARS, default=np.dtype(np.float64))


def _weak_floats(args, static) -> tuple:
    """A compiled function's float scalar arguments (Python or numpy), as jax.jit's weakly
    typed scalars: f(w32, 0.5) traces a float32 input where a float64 one would not mix with
    w32. Without a shared dtype they stay as they are; ints keep their integer meaning."""
    return _weakly_typed(args, FLOAT_SCALARS, static)


def split_aux(out, who):
    """(output, aux) of a function called with has_aux=True, which must return a pair."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        got = a_type(out) + (f" of {len(out)}" if isinstance(out, (tuple, list))
                                            else "")
        raise GraphcError(f"{who}: with has_aux=True the function must return a pair "
                          f"(output, aux), got {got}", (user_location(),))
    return out[0], out[1]


def stop_gradient(x):
    """jax.lax.stop_gradient: x's value, through which no gradient flows. A pytree (tuples,
    namedtuples, lists, dicts) is stopped leaf by leaf, None staying None, as in JAX (the
    op itself, ir's, takes one value)."""
    if isinstance(x, (tuple, list, dict)) or x is None:
        return tree_map(F.stop_gradient, x)
    return F.stop_gradient(x)


def grad(fn, argnums=0, has_aux=False, holomorphic=False, allow_int=False):
    """df/dx for a scalar-valued f (as jax.grad); allow_int and holomorphic as
    value_and_grad's."""
    vg = _value_and_grad(fn, argnums, has_aux, "grad", holomorphic, allow_int)

    @functools.wraps(fn, updated=())
    def wrapper(*args, **kwargs):
        out = vg(*args, **kwargs)
        if has_aux:
            (_, aux), g = out
            return g, aux
        return out[1]

    return wrapper


def vjp(fn, *primals, has_aux=False):
    """(fn(*primals), vjp_fn) where vjp_fn(cotangent) gives the cotangents of the primals
    (pytrees like them; None, an empty subtree, stays None); with has_aux, as JAX's, fn
    returns (output, aux) and vjp (output, vjp_fn, aux), aux not differentiated. fn may
    return a pytree of arrays, and the cotangent is then a pytree like it, as in JAX; a
    Python number in it takes its output's dtype (weakly typed). An integer or boolean
    primal (a Python int too, weakly typed as in jvp) has no cotangent: None where JAX
    gives float0 zeros, so vjp(lambda x, i: x[i], x, 2) pulls back. On symbolic primals it
    builds nodes; on concrete ones it runs fn's forward once and keeps what the pullback
    reads (graphc/split_vjp.py)."""
    def pull(y, xs, ct):
        leaves, structure = leaves_and_structure(list(xs))
        wrt = [x for x in leaves if isinstance(x, Node) and is_float(x.dtype)]
        ys, seeds = _outputs_and_cotangents(y, ct)  # (checks the cotangent in any case)
        grads = iter(gradients(ys, wrt, seeds) if ys and wrt else
                     [F.zeros_like(x) for x in wrt])
        differentiated = {id(x) for x in wrt}
        return tuple(unflatten(structure, [next(grads) if id(x) in differentiated else None
                                           for x in leaves]))

    if _is_symbolic(primals) or current_graph() is not None:  # (_in_trace)
        _note_traced_derivative()
        # every float leaf (a Python float in a dict too, beside symbolic ones) an array to
        # differentiate: left a number, it would be a constant with no cotangent
        leaves, structure = leaves_and_structure(list(primals))
        primals = tuple(unflatten(structure, list(_as_primals(tuple(leaves)))))
        primals = tuple(_variables(p) for p in primals)
        with differentiating():  # (the pullback runs in the mode it is called in)
            out = called(f"vjp of {function_name(fn)}", fn, primals)
        out, aux = split_aux(out, "vjp") if has_aux else (out, None)

        @one_cotangent(f"vjp of {function_name(fn)}", "vjp_fn")
        def vjp_sym(cotangent):
            return pull(out, primals, cotangent)
        return (out, vjp_sym, aux) if has_aux else (out, vjp_sym)

    # as JAX's: fn's forward runs once, here, and the pullback computes with the values it
    # kept (the primals as they are now, the dropout masks drawn now), not fn again
    from .split_vjp import Differentiated
    primals = _weak_floats(primals, ())
    differentiated = Differentiated(fn)
    differentiated.without_static_args = "gc.vjp(lambda x: f(x, n), x)"
    try:
        (out, aux), pullback = differentiated.call(((None, bool(has_aux), None),) + primals)
    except ForeignArgument as exc:  # a torch primal: to_spec's line named neither fn nor it
        refuse_foreign_argument(f"vjp of {function_name(fn)}", fn, primals, locs=exc.locs)
        raise
    structure = leaves_and_structure(list(primals))[1]

    @one_cotangent(f"vjp of {function_name(fn)}", "vjp_fn")
    def vjp_concrete(cotangent):
        return tuple(unflatten(structure, pullback(_cotangent_leaves(out, cotangent))))
    return (out, vjp_concrete, aux) if has_aux else (out, vjp_concrete)


def one_cotangent(who, what):
    """A pullback (vjp's vjp_fn, linear_transpose's f_t) that refuses, in one line naming
    `who`, a call that is not one cotangent, as JAX's: vjp_fn(ct0, ct1) for a function
    returning a pair was Python's TypeError naming `vjp.<locals>.vjp_concrete()`."""
    def decorate(pullback):
        @functools.wraps(pullback)  # (its signature, `cotangent`, names it in compile, vmap)
        def checked(*args, **kwargs):
            if len(args) + len(kwargs) != 1 or set(kwargs) - {"cotangent"}:
                got = (f"the keyword argument {next(iter(set(kwargs) - {'cotangent'}))!r}"
                       if set(kwargs) - {"cotangent"} else
                       f"{len(args) + len(kwargs) or 'no'} argument"
                       f"{'' if len(args) + len(kwargs) == 1 else 's'}")
                raise GraphcError(f"{who}: {what} takes one cotangent, a pytree like the "
                                  f"function's result, but was given {got}; for a result "
                                  f"that is a tuple pass one tuple, {what}((ct0, ct1))",
                                  (user_location(),))
            return pullback(*args, **kwargs)
        return checked
    return decorate


def _read_seed(c, what):
    """A derivative's seed (vjp's cotangent leaf, jvp's tangent leaf) that is a torch tensor,
    read as backward() reads its gradient (one that requires grad or is bfloat16 too; one
    torch will not hand over is one line naming `what`): its torch dtype was np.dtype's raw
    TypeError, or the refusal of another library's array. Anything else as it is."""
    if not isinstance(c, (np.ndarray, Tensor, Node)) and foreign_array_name(c) is not None:
        return read_foreign_array(c, what)
    return c


def _cotangent_leaves(y, ct, who="vjp") -> list:
    """One cotangent per leaf of fn's result `y` from `ct` (a pytree like y), checked
    against its output: None where ct has None (zeros) and for integer and boolean outputs
    (JAX's float0) and values that are not arrays (Python numbers fn returned); weak scalars
    take their output's dtype. `who` begins the messages (linear_transpose's are its own)."""
    y_leaves, y_structure = leaves_and_structure(y)
    if y_structure is None:  # one array
        if isinstance(ct, (tuple, list, dict)):
            # (read as an array, [ct] was a shape error deep in the plan: "input 'cotangent0'
            # expects shape (3,), got (1, 3)")
            out = y_leaves[0]
            raise GraphcError(f"{who}: the cotangent is {a_type(ct)}, but the "
                              "function returns one array; pass one array, "
                              f"{_describe((np.dtype(out.dtype).name, tuple(out.shape)))}",
                              (user_location(),))
        c_leaves = [ct]
    else:
        # (vjp's structure messages have no prefix, as they always had; others name `who`)
        what = "the cotangent" if who == "vjp" else f"{who}: the cotangent"
        c_leaves = leaves_like(y_structure, ct, what, "the function's result")
    cotangents = []
    for k, (out, c) in enumerate(zip(y_leaves, c_leaves)):
        if c is None or not hasattr(out, "dtype") or not is_float(out.dtype):
            cotangents.append(None)
            continue
        which = "" if y_structure is None else f" for output leaf {k}"
        if _is_weak_scalar(c, _NUMBERS):
            c = np.asarray(c, out.dtype)
        else:
            c = _read_seed(c, f"{who}: the cotangent{which}")
        shape, want = getattr(c, "shape", None), tuple(out.shape)
        if shape is not None and _concrete(shape) and _concrete(want) and tuple(shape) != want:
            # else autodiff met it deep inside ("internal: gradient of shape ...")
            raise GraphcError(f"{who}: the cotangent{which} has shape {list(shape)} but the "
                              f"output has shape {list(want)}; pass a cotangent of the "
                              "output's shape", (user_location(),))
        dtype = getattr(c, "dtype", None)
        if dtype is not None and dtype != out.dtype:
            # as JAX ("got float32[2], but expected float64[2]"): else the gradients took the
            # cotangent's dtype, or a rule failed ("mul(f32[2], f64[2]): operands must ...")
            got = _describe((np.dtype(dtype).name, shape))
            raise GraphcError(f"{who}: the cotangent{which} is {got}, but the output is "
                              f"{_describe((np.dtype(out.dtype).name, want))}; pass a "
                              "cotangent of the output's dtype", (user_location(),))
        cotangents.append(c)
    return cotangents


def _outputs_and_cotangents(y, ct):
    """The floating-point leaves of fn's traced result `y` and their cotangents from `ct` (a
    pytree like y; see _cotangent_leaves)."""
    pairs = [(out, c) for out, c in zip(leaves_and_structure(y)[0], _cotangent_leaves(y, ct))
             if c is not None and isinstance(out, Node)]
    return [out for out, _ in pairs], [c for _, c in pairs]


def _like_primal(primal, tangent, what):
    """`tangent` as a pytree of its primal's structure: a dict's keys may come in another
    order (JAX sorts them; here the primal's order is the one), anything else must match."""
    structure = leaves_and_structure(primal)[1]
    if leaves_and_structure(tangent)[1] == structure:
        return tangent
    # (where and how they differ: '{"b": ..}' for '{"a": ..}' was "(1 vs 1 arrays)"; (t,)
    # for x was taken as t, as JAX does not; None for an array says where it is)
    return unflatten(structure, leaves_like(structure, tangent, what, "its primal", exact=True,
                                            none_hint="; pass zeros for no tangent"))


def _concrete(shape) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in shape)


def _dtype_and_shape(x):
    """(dtype name, shape) of an array or a symbolic value; None for a Python scalar. A
    numpy scalar has its dtype, np.float64 too (a subclass of Python's float: taken for a
    Python number, an np.float64 tangent went unchecked and made a float32 primal's jvp
    float64 throughout)."""
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return None
    dtype, shape = getattr(x, "dtype", None), getattr(x, "shape", None)
    if dtype is None or shape is None:
        return None
    try:
        return np.dtype(dtype).name, tuple(shape)
    except TypeError:  # a torch tensor's dtype: named in one line, not numpy's TypeError
        refuse_foreign_array(x, "jvp")
        raise


def container_kind(value) -> str:
    """tuple, list or dict, for a message: a namedtuple or a dict subclass is said as its
    kind (grad's and the Trainer's "returned a tuple of 2")."""
    return next(k.__name__ for k in (tuple, list, dict) if isinstance(value, k))


def _check_integer_tangent(who, k, primal, tangent):
    """An integer or boolean primal (a Python int, an index array) has no tangent, as JAX's
    (float0). A tangent that is not zero would be dropped without a word, so it is refused,
    as JAX refuses all but float0 ones: any tangent of a Python int (before graphc took it
    as a float, jvp(lambda x: x * x, (3,), (1,)) was 6), and a float tangent of an integer
    or boolean numpy scalar, array or tensor (jvp(f, (np.int64(3),), (1.0,)) dropped the
    1.0). An integer array's integer tangent is not read, as before (README)."""
    python_int = type(primal) is int
    # (a Python bool as numpy's: its nonzero tangent was dropped without a word)
    dtype = np.dtype(bool) if type(primal) is bool else getattr(primal, "dtype", None)
    if not python_int and (dtype is None or is_float(dtype)
                           or np.dtype(dtype).kind not in "biu"):
        return
    if isinstance(tangent, Node):  # traced (under compile or vmap): its value is unknown
        dropped = is_float(tangent.dtype)  # here, so a float one is refused whatever it is
    else:
        value = np.asarray(tangent.data if isinstance(tangent, Tensor) else tangent)
        dropped = (python_int or value.dtype.kind == "f") and np.any(value != 0)
    if not dropped:
        return
    if python_int:
        raise GraphcError(f"{who}: primal {k} is {primal}, an integer with no tangent, but "
                          f"its tangent is not zero; pass a float primal ({float(primal)!r}) "
                          "to differentiate at it", (user_location(),))
    what = "a traced float (its value unknown here)" if isinstance(tangent, Node) else \
        "a float that is not zero"
    raise GraphcError(f"{who}: primal {k} is {np.dtype(dtype).name}{list(np.shape(primal))}, "
                      f"which has no tangent (JAX's float0), but its tangent is {what}; pass "
                      "zeros of its dtype, or a float primal to differentiate at it",
                      (user_location(),))


def _describe(dtype_and_shape):
    dtype, shape = dtype_and_shape
    return f"{dtype}{list(shape)}"


def jvp(fn, primals, tangents, has_aux=False):
    """Forward mode: (fn(*primals), J @ tangents). The primals may be pytrees, each tangent a
    pytree like its primal (None where it has None); fn's result may be a pytree too, and
    its tangent is a pytree like it (zeros for integer and boolean leaves). With has_aux, as
    JAX's, fn returns (output, aux) and jvp (output, tangent, aux).

    Built from reverse mode by the "double vjp" trick: u -> vjp(u) is linear in the
    cotangent u, so differentiating <vjp(u), tangents> with respect to u gives J @ tangents;
    a while_loop, which has no reverse pass, carries its tangents forward
    (passes/forward_mode.py). The result is an ordinary graph, so it composes with grad."""
    _callable(fn, "jvp")
    for what, given in (("primals", primals), ("tangents", tangents)):
        if not isinstance(given, (tuple, list)):  # an array would be split into its rows
            raise GraphcError(f"jvp: {what} must be a tuple (or list) of the arguments, got "
                              f"{a_type(given)}; for one argument pass (x,)",
                              (user_location(),))
    primals, tangents = tuple(primals), list(tangents)
    if len(primals) != len(tangents):
        raise GraphcError(f"jvp: {len(primals)} primals but {len(tangents)} tangents",
                          (user_location(),))
    # a Python float primal's dtype is the primals' own (the float dtype their arrays share,
    # else float64), never its tangent's: a numpy tangent of another dtype is refused, as
    # JAX's, where weakly typing the primals and tangents together made jvp(exp, (12.0,),
    # (np.float16(1),)) all float16 (inf)
    weak_primals = _as_primals(primals)
    for k, (p, t) in enumerate(zip(primals, tangents)):
        # as JAX: a tangent is a pytree like its primal (None, an empty subtree, where the
        # primal has None), each leaf in its primal's space (same dtype and shape)
        tangents[k] = _like_primal(p, t, f"jvp: tangent {k}")
        t_leaves, t_structure = leaves_and_structure(tangents[k])
        read = []
        for p_leaf, t_leaf in zip(leaves_and_structure(p)[0], t_leaves):
            # (a Python float as the dtype it is traced as: a pytree's leaf, float64)
            typed = p_leaf if type(p_leaf) is not float else \
                weak_primals[k] if p_leaf is p else np.float64(p_leaf)
            if unsupported_argument(typed) is not None:  # a complex primal: the trace of
                # jvp's own function named neither fn nor the argument
                refuse_foreign_argument(f"jvp of {function_name(fn)}", fn, primals)
            try:
                p_type = _dtype_and_shape(typed)
            except GraphcError:  # a torch primal: refused as grad's, naming the argument
                refuse_foreign_argument(f"jvp of {function_name(fn)}", fn, primals)
                raise
            t_leaf = _read_seed(t_leaf, f"jvp: tangent {k}")  # (a torch tangent: as vjp's
            read.append(t_leaf)                                # cotangent)
            t_type = _dtype_and_shape(t_leaf)
            _check_integer_tangent("jvp", k, p_leaf, t_leaf)
            if p_type and p_type[1] and isinstance(t_leaf, (int, float)):
                raise GraphcError(f"jvp: tangent {k} is the number {t_leaf!r} but its primal "
                                  f"is {_describe(p_type)}; pass a tangent of the primal's "
                                  "shape, as JAX does",
                                  (user_location(),))
            # (a Python float's own dtype, float64, fits it too, as JAX's jvp reads a Python
            # float's dtype: jvp(f, (w32, 2.0), (w32, np.float64(1))) ran before and in JAX)
            own = typed is not p_leaf and t_type == ("float64", ())
            if p_type and t_type and p_type != t_type and not own:
                weak = "" if typed is p_leaf else \
                    f" (the Python float {p_leaf!r}: the float dtype the primals' arrays " \
                    "share, else float64)" if p_leaf is p else \
                    f" (the Python float {p_leaf!r} in a pytree: float64)"
                raise GraphcError(f"jvp: tangent {k} is {_describe(t_type)} but its primal is "
                                  f"{_describe(p_type)}{weak}; pass a tangent of the "
                                  "primal's dtype and shape", (user_location(),))
        if any(r is not t_leaf for r, t_leaf in zip(read, t_leaves)):
            tangents[k] = unflatten(t_structure, read)
    tangents = tuple(tangents)

    def symbolic(*args):
        _note_traced_derivative()
        xs, vs = args[:len(primals)], args[len(primals):]
        graph = current_graph()
        if graph is not None:
            # inside a trace a pytree's Python float leaf is still a number, which the
            # forward pass cannot differentiate with respect to: a weakly typed float64
            # constant, the dtype the eager jvp traces it as (and the checks above read)
            xs = tuple(_weak_float_leaves(graph, x) if isinstance(x, (tuple, list, dict))
                       else x for x in xs)
        xs = tuple(_variables(x) for x in xs)
        with differentiating():
            return _jvp_of(called(f"jvp of {function_name(fn)}", fn, xs), xs, vs)

    def _jvp_of(out, xs, vs):
        y, aux = split_aux(out, "jvp") if has_aux else (out, None)
        # an integer or boolean primal (an index, a count; a Python int stays one, weakly
        # typed) has no tangent: as JAX's float0 tangents, its (integer) tangent is not read
        pairs = [(x, v) for x, v in zip(leaves_and_structure(list(xs))[0],
                                        leaves_and_structure(list(vs))[0])
                 if (is_float(x.dtype) if isinstance(x, Node)
                     else not isinstance(x, (int, np.integer, np.bool_)))]
        x_leaves, v_leaves = [x for x, _ in pairs], [v for _, v in pairs]
        # fn's result may be a pytree, as in JAX: one tangent per leaf, zeros for integer
        # and boolean leaves and for those no primal reaches
        y_leaves, y_structure = leaves_and_structure(y)
        outs = [k for k, o in enumerate(y_leaves) if isinstance(o, Node) and is_float(o.dtype)]
        tangent = [F.zeros_like(o) for o in y_leaves]
        if x_leaves and outs:
            for k, t in zip(outs, forward_tangents([y_leaves[k] for k in outs], x_leaves,
                                                   v_leaves)):
                tangent[k] = t
        if has_aux:
            return y, unflatten(y_structure, tangent), aux
        return y, unflatten(y_structure, tangent)

    # (Python floats as 0-d arrays, whether or not the other primals are traced)
    args = _as_primals(primals + tangents)
    if _is_symbolic(args) or current_graph() is not None:  # inside a trace: see _in_trace
        return symbolic(*args)
    compiled = _NamedArguments(symbolic, primal_and_tangent_names(fn, len(primals)))
    compiled.without_static_args = "gc.jvp(lambda x: f(x, n), (x,), (t,))"
    return compiled(*args)


class _NamedArguments(Compiled):
    """gc.compile of a function of *args (jvp's primals and tangents) whose graph inputs and
    messages name `names`, not its own "arg1" (a traced number used as a Python value)."""

    def __init__(self, fn, names):
        super().__init__(fn)
        self.arg_names = names

    def _names(self, count):
        return self.arg_names if count == len(self.arg_names) else super()._names(count)


def primal_and_tangent_names(fn, count) -> list:
    """The names jvp and linearize give their graph inputs: fn's parameters for the primals
    ("n", as grad's and vjp's messages name them; jvp said "arg1", linearize "p1"), then
    "tangent_n" for the tangents, each once (a graph's input names are distinct)."""
    params = arg_names(called_function(fn)[0], count)
    names = []
    for name in params + [f"tangent_{p}" for p in params]:
        while name in names:
            name += "_"
        names.append(name)
    return names


def hessian(fn, argnums=0, has_aux=False):
    """Dense Hessian of a scalar function, as JAX's: jacfwd(jacrev(fn)) over the arguments
    picked by argnums (pytrees and tuples give a tree of blocks, hess[i][j]; arguments not
    picked keep their type, so an int stays an index). jacfwd pushes one tangent per input
    element through the gradient, all in one batched graph."""
    from .jacobians import _jacfwd, _jacrev  # (jacobians imports this module)
    _callable(fn, "hessian")  # (named as the user called it, not jacrev)
    nums = _differentiated(argnums, "hessian")
    # their messages name hessian: a differentiated number used as a Python value was told
    # "jacfwd takes no static_argnums", a transformation the user never called
    jacobian = _jacfwd(_jacrev(fn, argnums, has_aux, "hessian"), argnums, has_aux, "hessian")

    @functools.wraps(fn, updated=())
    def wrapper(*args, **kwargs):
        # named as the user called it (jacfwd would name itself)
        check_differentiable(args, {i % len(args) for i in nums if -len(args) <= i < len(args)},
                             "hessian", fn)
        return jacobian(*args, **kwargs)
    return wrapper

