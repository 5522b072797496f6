"""torch's module hooks on gc.nn.Module: `register_forward_pre_hook` and
`register_forward_hook`, with torch's signatures, return values and order (prepend=,
with_kwargs=, always_call=), and `register_full_backward_pre_hook` and
`register_full_backward_hook` (prepend=; BackwardCall), each returning a handle whose remove()
(or the end of its `with` block) takes the hook off.

A hook runs where the module is called: eagerly on tensors, and inside a trace (gc.compile,
gc.grad, gc.vmap) on the traced values, as torch.compile inlines hooks into its graph. So a
compiled plan holds what its hooks did while it was traced: a hook that changes the output is
part of the plan; one that stores a value (a list of activations) stores a traced value, not
an array (return it from the function instead, or call the model eagerly). A backward hook
runs where the gradient is computed: eagerly at backward(), on tensors; traced (gc.grad, a
compiled model's gradient) when the trace is differentiated, on traced values, its effect on
the gradients part of the plan. Adding or removing a hook on a module traces again the plans
whose trace called that module, and those only; taking it off again finds the plan traced
without it (Module.__call__ guards each module's live hooks, HookChanges.state).
"""
from __future__ import annotations

import itertools
import warnings
import weakref

import numpy as np

from ir.errors import GraphcError, a_type, user_location, user_stacklevel
from ir.errors import callback_locations as _where
from ir.graph import Node, current_graph
from ir.ops import api as F
from ir.types import is_float
from runtime.eager import Tensor, is_grad_enabled

from .custom import custom_vjp

_IDS = itertools.count()  # one id per hook, as torch's RemovableHandle.id


# the attributes of a gc.nn.Module holding its hooks (id -> (hook, flags), in running order)
TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


class HookChanges:
    """The hooks a plan depends on at one module (`state`): a trace guards it at each module
    it calls (Module.__call__), so that a plan runs the hooks its modules had when it was
    traced, a change on one module traces again only the plans that called it, and taking
    a hook off again finds the plan traced without it (a plan is kept for each state its
    guards held in). The state is the ids of the module's live hooks, in their order, kind by
    kind (an id is never reused: another hook is another state). A hook the traced function
    adds is part of its trace, as an attribute it sets (set_while_tracing), and so is its
    removal in that trace (`with self.a.register_forward_hook(h):` in forward): such a hook
    is left out of the state (`traced`). Its removal outside that trace counts (`removed`):
    the plans that ran it hold it. The removal of one added before, in a trace (a hook that
    removes itself once it ran) changes the ids: the plan holds it. Kept apart from the
    module, which it holds weakly: nothing on the module to copy or pickle, and a plan's
    guard does not keep it alive."""

    def __init__(self, module, forget):
        self.traced, self.removed = set(), 0
        self._module = weakref.ref(module, forget)
        self.refresh()

    def refresh(self) -> None:
        """`state` anew, after a hook was added or removed (register, RemovableHandle)."""
        module = self._module()
        own = {} if module is None else vars(module)
        self.state = (*(tuple(key for key in own.get(table, ()) if key not in self.traced)
                        for table in TABLES), self.removed)

    def describe_change(self) -> str:  # (graphc.transforms' recompile message)
        module = self._module()
        where = "" if module is None else \
            f" {type(module).__name__} {module._path or '(the model itself)'}"
        return f"a hook was added to or removed from{where or ' a module'}"


_CHANGES = {}  # id(module) -> its HookChanges, while the module lives


def changes_of(module) -> HookChanges:
    """`module`'s HookChanges (made at its first trace or hook)."""
    changes = _CHANGES.get(id(module))
    if changes is None:
        key = id(module)
        changes = _CHANGES[key] = HookChanges(module, lambda _, key=key: _CHANGES.pop(key, None))
    return changes


class RemovableHandle:
    """What the register_*_hook methods return: `remove()` takes the
    hook off (again: nothing); as a context manager, at the end of the block."""

    def __init__(self, hooks: dict, changes: HookChanges):
        self.id = next(_IDS)
        # (the module's HookChanges, weakly: a handle kept does not keep its module alive,
        # as torch's keeps its hooks dict by a weak reference)
        self._hooks, self._changes = hooks, weakref.ref(changes)
        trace = _trace()  # the trace that added it, if one did (HookChanges)
        self._traced_in = None if trace is None else weakref.ref(trace)

    def remove(self) -> None:
        if self._hooks.pop(self.id, None) is None:
            return
        changes = self._changes()
        if changes is None:
            return
        if self.id in changes.traced:
            changes.traced.discard(self.id)
            trace = _trace()
            if trace is None or self._traced_in() is not trace:
                changes.removed += 1
        changes.refresh()

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _trace():
    """The graph being traced, the outermost one (a loop body's region is part of its
    trace), or None."""
    graph = current_graph()
    while getattr(graph, "parent", None) is not None:
        graph = graph.parent
    return graph


def register(hooks: dict, hook, changes: HookChanges, prepend: bool, where: str,
             **flags) -> RemovableHandle:
    """Add `hook` with its `flags` to `hooks` (one of the module's TABLES), first if
    `prepend`; `changes` is the module's HookChanges."""
    if not callable(hook):
        raise GraphcError(f"{where}: the hook must be callable, got {type(hook).__name__}",
                          (user_location(),))
    for name, value in (("prepend", prepend), *flags.items()):
        if not isinstance(value, bool):
            raise GraphcError(f"{where}: {name} must be True or False, got {value!r}",
                              (user_location(),))
    handle = RemovableHandle(hooks, changes)
    hooks[handle.id] = (hook, flags)
    if prepend:
        for key in [k for k in hooks if k != handle.id]:
            hooks[key] = hooks.pop(key)  # (dicts keep insertion order: the others after it)
    if handle._traced_in is not None:
        changes.traced.add(handle.id)
    changes.refresh()
    return handle


def call(module, forward, args: tuple, kwargs: dict, pre_hooks: dict, hooks: dict,
         backward_hooks: dict, backward_pre_hooks: dict):
    """forward(*args, **kwargs) with the module's hooks, as torch's Module._call_impl: each
    pre-hook may replace the arguments (a non-tuple result is the one argument; with_kwargs,
    an (args, kwargs) pair), each forward hook the output; with always_call, a forward hook
    runs also when a pre-hook, forward or an earlier hook raised, before the error goes on
    (on the output so far, None where forward gave none; each one's result is the next's).
    With backward hooks, the arguments the pre-hooks gave and the output the forward hooks
    gave go through BackwardCall's identities, as torch's."""
    called, output = set(), None
    backward = BackwardCall(module, backward_hooks, backward_pre_hooks) \
        if backward_hooks or backward_pre_hooks else None
    try:
        for hook, flags in list(pre_hooks.values()):
            if flags["with_kwargs"]:
                result = hook(module, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        got = (f"a tuple of {len(result)} item{'s' * (len(result) != 1)}"
                               if isinstance(result, tuple)
                               else type(result).__name__)
                        raise GraphcError(f"{type(module).__name__}: a forward pre-hook with "
                                          "with_kwargs=True must return None or a tuple "
                                          f"(args, kwargs), got {got}", (user_location(),))
                    args, kwargs = result
            else:
                result = hook(module, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        if backward is not None:
            args = backward.wrap_inputs(args)
        output = forward(*args, **kwargs)
        for key, (hook, flags) in list(hooks.items()):
            called.add(key)
            result = hook(module, args, kwargs, output) if flags["with_kwargs"] \
                else hook(module, args, output)
            if result is not None:
                output = result
        if backward is not None:
            output = backward.wrap_output(output)
    except Exception:
        for key, (hook, flags) in list(hooks.items()):
            if flags["always_call"] and key not in called:
                try:  # (as torch's: a failing one is a warning; forward's error goes on)
                    result = hook(module, args, kwargs, output) if flags["with_kwargs"] \
                        else hook(module, args, output)
                    if result is not None:
                        output = result
                except Exception as exc:  # noqa: BLE001
                    warnings.warn(f"{type(module).__name__}: a forward hook with "
                                  f"always_call=True raised {exc!r}, silenced as another "
                                  "error was raised", stacklevel=user_stacklevel())
        raise
    return output


class BackwardCall:
    """One call of a module with full backward hooks, as torch's BackwardHook: the module's
    positional tensor arguments go through one identity with a gradient rule of its own, its
    output (a tensor or a tuple) through another. Differentiated, the outputs' rule runs
    first: it gives grad_output (one entry per output, None for a non-tensor or an integer
    one) to the backward pre-hooks, each one's tuple replacing it, and sends on the last; the
    inputs' rule then calls the backward hooks with grad_input (one entry per argument, None
    for a non-tensor, zeros for a tensor that is not differentiated, as torch's) and
    grad_output, each one's tuple replacing grad_input, and sends on the last. Where no
    argument is differentiated (data, not a value computed from a weight) the inputs' rule
    never runs, so the outputs' rule calls the hooks, grad_input all None, with torch's
    warning; where one requires grad but backward(inputs=...) wants no gradient through the
    arguments (inputs=[a weight of this layer or one below]), neither calls them, as torch's.
    The hooks are those the module had at the call (torch's)."""

    def __init__(self, module, hooks: dict, pre_hooks: dict):
        self.module = module
        self.hooks = [hook for hook, _ in hooks.values()]
        self.pre_hooks = [hook for hook, _ in pre_hooks.values()]
        self.grad_output = None  # from the outputs' rule to the inputs' (torch's grad_outputs)
        self.n_inputs, self.input_index, self.inputs = 0, [], []
        self.inputs_require_grad = False  # (eagerly, at the call: see _output_rule)
        self.n_outputs, self.output_index, self.outputs = 0, [], []

    def wrap_inputs(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        self.input_index = [i for i, a in enumerate(args) if _is_tensor(a)]
        self.inputs = [args[i] for i in self.input_index]
        if not _differentiated(self.inputs):
            return args
        self.inputs_require_grad = not _traced(self.inputs)
        self.inputs = list(_Identity(f"{type(self.module).__name__} backward hook inputs",
                                     len(self.inputs), self._input_rule)(*self.inputs))
        return _placed(args, self.input_index, self.inputs)

    def wrap_output(self, output):
        if not isinstance(output, tuple) and not _is_tensor(output):
            warnings.warn(f"{type(self.module).__name__}: for backward hooks to be called, "
                          "the module's output should be a tensor or a tuple of tensors, "
                          f"not {a_type(output)} (as torch's)",
                          stacklevel=user_stacklevel())
            return output
        outputs = output if isinstance(output, tuple) else (output,)
        self.n_outputs = len(outputs)
        self.output_index = [i for i, y in enumerate(outputs) if _is_tensor(y)]
        self.outputs = [outputs[i] for i in self.output_index]
        if not _differentiated(self.outputs):
            return output
        # the wrapped inputs are arguments too (their cotangents None): whether each one's
        # gradient is wanted (the rule's `needs`) says whether the inputs' rule will run
        wrapped = _Identity(f"{type(self.module).__name__} backward hook outputs",
                            len(self.outputs), self._output_rule)(*self.outputs, *self.inputs)
        outputs = _placed(outputs, self.output_index, wrapped)
        return outputs if isinstance(output, tuple) else outputs[0]

    def _output_rule(self, cotangents, needs):
        count = len(self.outputs)
        grads = [g if is_float(y.dtype) else None
                 for g, y in zip(cotangents[:count], self.outputs)]
        grad_output = _placed((None,) * self.n_outputs, self.output_index, grads)
        for hook in self.pre_hooks:
            result = hook(self.module, grad_output)
            if result is not None:
                grad_output = self._replacing(result, grad_output, self.output_index,
                                              self.outputs, hook, "full backward pre-hook",
                                              "grad_output")
        # (where an argument requires grad but backward(inputs=...) wants none of theirs,
        # torch's engine does not reach the arguments' hook: no hook runs)
        if any(needs[count:]):
            self.grad_output = grad_output
        elif not self.inputs_require_grad:
            name = type(self.module).__name__
            if self.hooks:
                warnings.warn(f"{name}: a full backward hook is firing when gradients are "
                              "computed with respect to the module's outputs, since no input "
                              "requires gradients (grad_input all None, as torch's)",
                              stacklevel=user_stacklevel())
            grad_input = (None,) * self.n_inputs
            for hook in self.hooks:
                result = hook(self.module, grad_input, grad_output)
                if result is not None and not (isinstance(result, (tuple, list)) and
                                               all(r is None for r in result)):
                    raise GraphcError(f"{name}: a full backward hook of a module none of whose "
                                      "inputs is differentiated must return None or Nones "
                                      "(as torch's)", _where(hook))
        return [grad_output[i] for i in self.output_index] + [None] * (len(needs) - count)

    def _input_rule(self, cotangents, needs):
        grad_output, self.grad_output = self.grad_output, None
        if grad_output is None:  # the gradient came without passing the outputs (torch's)
            return tuple(cotangents)
        grads = [g if need else F.zeros_like(x) for g, need, x in
                 zip(cotangents, needs, self.inputs)]
        grad_input = _placed((None,) * self.n_inputs, self.input_index, grads)
        foreign = _foreign_graphs(grad_output, cotangents)
        for hook in self.hooks:
            result = hook(self.module, grad_input, grad_output)
            if foreign and result is not None and _reads(result, foreign):
                # gc.grad of a gc.vmap: each rule is vmapped on its own (graphc/vmap.py), so
                # grad_output, from the outputs' rule, is a value of another per-example trace
                raise GraphcError(
                    f"{type(self.module).__name__}: a full backward hook of a module called "
                    "inside gc.vmap and differentiated outside it returned a grad_input "
                    "computed from grad_output, which graphc cannot give it there (torch.func "
                    "runs no module hooks under vmap); compute it from grad_input alone, or "
                    "differentiate inside the vmap: gc.vmap(gc.grad(...))", _where(hook))
            if result is not None:
                grad_input = self._replacing(result, grad_input, self.input_index,
                                             self.inputs, hook, "full backward hook",
                                             "grad_input")
        return tuple(grad_input[i] for i in self.input_index)

    def _replacing(self, result, grads, index, tensors, hook, kind, what) -> tuple:
        """A hook's result, checked: a tuple (or list) as long as `grads`, each entry at a
        tensor's place None or of that tensor's shape and dtype (torch checks the length; its
        autograd the shapes, and it refuses another dtype: "hook 'hook' has changed the type
        of value"; graphc cast it, an int one refused in custom_vjp's words)."""
        name = type(self.module).__name__
        if not isinstance(result, (tuple, list)) or len(result) != len(grads):
            got = (f"{a_type(result)} of {len(result)}"
                   if isinstance(result, (tuple, list)) else a_type(result))
            raise GraphcError(f"{name}: a {kind} must return None or a tuple of {len(grads)} "
                              f"(one per entry of {what}), got {got}", _where(hook))
        for i, x in zip(index, tensors):
            g = result[i]
            if g is not None and tuple(getattr(g, "shape", ())) != tuple(x.shape):
                raise GraphcError(f"{name}: a {kind} returned {what}[{i}] of shape "
                                  f"{tuple(getattr(g, 'shape', ()))}, but it is the gradient "
                                  f"of a value of shape {tuple(x.shape)}", _where(hook))
            if g is not None and hasattr(g, "dtype") and np.dtype(g.dtype) != np.dtype(x.dtype):
                raise GraphcError(f"{name}: a {kind} returned {what}[{i}] of dtype "
                                  f"{np.dtype(g.dtype)}, but it is the gradient of a value of "
                                  f"dtype {np.dtype(x.dtype)}; return it in {np.dtype(x.dtype)} "
                                  "(torch refuses a hook that changes a gradient's dtype)",
                                  _where(hook))
        return tuple(result)


class _Identity(custom_vjp):
    """The identity on its first `count` arguments whose gradient is `rule(cotangents,
    needs)` (BackwardCall's): `needs` says which arguments' gradients are wanted."""

    checks_primal = False  # (its fwd is its function)

    def __init__(self, name, count, rule):
        super().__init__(lambda *args: args[:count])
        self.name, self.rule = name, rule
        self.defvjp(lambda *args: (args[:count], None), None)

    def _backward(self, args, residuals, cotangents, needs):
        return self.rule(tuple(cotangents), needs)


def _is_tensor(x) -> bool:
    return isinstance(x, (Tensor, Node))


def _foreign_graphs(grad_output, cotangents) -> set:
    """The traces other than the cotangents' that grad_output's values belong to (the
    outputs' and the inputs' rules of a vmapped call are traced apart)."""
    graphs = {g.graph for g in cotangents if isinstance(g, Node)}
    return {g.graph for g in grad_output if isinstance(g, Node) and g.graph not in graphs}


def _reads(result, graphs) -> bool:
    """Whether a hook's result is computed from a value of one of `graphs` (read through
    the input its trace captured it as: Region.outer_links)."""
    stack, seen = [g for g in result if isinstance(g, Node)], set()
    while stack:
        node = stack.pop()
        if node.graph in graphs:
            return True
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(x for x in node.inputs if isinstance(x, Node))
            links = getattr(node.graph, "outer_links", None)
            outer = links().get(node) if links is not None and node.op == "input" else None
            if outer is not None:
                stack.append(outer)
    return False


def _traced(tensors) -> bool:
    return current_graph() is not None or any(isinstance(x, Node) for x in tensors)


def _differentiated(tensors) -> bool:
    """Whether these tensors' gradients may be wanted: traced, any (whether they are is
    known at the rule: its `needs`); eagerly, where one requires grad and grad is enabled
    (torch's test)."""
    if _traced(tensors):
        return bool(tensors)
    return is_grad_enabled() and any(x.requires_grad for x in tensors)


def _placed(values: tuple, index, items) -> tuple:
    """`values` with items[k] at index[k]."""
    values = list(values)
    for i, item in zip(index, items):
        values[i] = item
    return tuple(values)

