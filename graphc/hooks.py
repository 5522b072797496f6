"""torch's forward hooks on gc.nn.Module: `register_forward_pre_hook` and
`register_forward_hook`, with torch's signatures, return values and order (prepend=,
with_kwargs=, always_call=), each returning a handle whose remove() (or the end of its `with`
block) takes the hook off.

A hook runs where the module is called: eagerly on tensors, and inside a trace (gc.compile,
gc.grad, gc.vmap) on the traced values, as torch.compile inlines hooks into its graph. So a
compiled plan holds what its hooks did while it was traced: a hook that changes the output is
part of the plan; one that stores a value (a list of activations) stores a traced value, not
an array (return it from the function instead, or call the model eagerly). Adding or removing
a hook on a module traces again the plans whose trace called that module, and those only
(Module.__call__ guards each module's count of changes, HookChanges).
"""
from __future__ import annotations

import itertools
import warnings
import weakref

from ir.errors import GraphcError, user_location, user_stacklevel
from ir.graph import current_graph

_IDS = itertools.count()  # one id per hook, as torch's RemovableHandle.id


class HookChanges:
    """How many times a forward hook has been added to or taken off one module
    (changes_of): a trace guards it at each module it calls (Module.__call__), so that a plan
    ran the hooks its modules had when it was traced, and a change on one module traces
    again only the plans that called it. A hook the traced function adds is part of its
    trace, as an attribute it sets (set_while_tracing), and so is its removal in that trace
    (`with self.a.register_forward_hook(h):` in forward): neither counts. The removal of one
    added before, in a trace (a hook that removes itself once it ran) counts: the plan holds
    it. Kept apart from the module, which it holds weakly: nothing on the module to copy or
    pickle, and a plan's guard does not keep it alive."""

    def __init__(self, module, forget):
        self.count = 0
        self._module = weakref.ref(module, forget)

    def describe_change(self) -> str:  # (graphc.transforms' recompile message)
        module = self._module()
        where = "" if module is None else \
            f" {type(module).__name__} {module._path or '(the model itself)'}"
        return f"a forward hook was added to or removed from{where or ' a module'}"


_CHANGES = {}  # id(module) -> its HookChanges, while the module lives


def changes_of(module) -> HookChanges:
    """`module`'s HookChanges (made at its first trace or hook)."""
    changes = _CHANGES.get(id(module))
    if changes is None:
        key = id(module)
        changes = _CHANGES[key] = HookChanges(module, lambda _, key=key: _CHANGES.pop(key, None))
    return changes


class RemovableHandle:
    """What register_forward_hook and register_forward_pre_hook return: `remove()` takes the
    hook off (again: nothing); as a context manager, at the end of the block."""

    def __init__(self, hooks: dict, changed):
        self.id = next(_IDS)
        # (the module's bound method, weakly: a handle kept does not keep its module alive,
        # as torch's keeps its hooks dict by a weak reference)
        self._hooks, self._changed = hooks, weakref.WeakMethod(changed)
        trace = _trace()  # the trace that added it, if one did (HookChanges)
        self._traced_in = None if trace is None else weakref.ref(trace)

    def remove(self) -> None:
        if self._hooks.pop(self.id, None) is not None:
            changed = self._changed()
            trace = _trace()
            if changed is not None and (trace is None or self._traced_in is None or
                                        self._traced_in() is not trace):
                changed()

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


def register(hooks: dict, hook, changed, prepend: bool, where: str,
             **flags) -> RemovableHandle:
    """Add `hook` with its `flags` to `hooks` (id -> (hook, flags)), first if `prepend`;
    `changed()` counts a change of the module's hooks (HookChanges: here outside a trace,
    and at the handle's remove)."""
    if not callable(hook):
        raise GraphcError(f"{where}: the hook must be callable, got {type(hook).__name__}",
                          (user_location(),))
    for name, value in (("prepend", prepend), *flags.items()):
        if not isinstance(value, bool):
            raise GraphcError(f"{where}: {name} must be True or False, got {value!r}",
                              (user_location(),))
    handle = RemovableHandle(hooks, changed)
    hooks[handle.id] = (hook, flags)
    if prepend:
        for key in [k for k in hooks if k != handle.id]:
            hooks[key] = hooks.pop(key)  # (dicts keep insertion order: the others after it)
    if _trace() is None:
        changed()
    return handle


def call(module, forward, args: tuple, kwargs: dict, pre_hooks: dict, hooks: dict):
    """forward(*args, **kwargs) with the module's hooks, as torch's Module._call_impl: each
    pre-hook may replace the arguments (a non-tuple result is the one argument; with_kwargs,
    an (args, kwargs) pair), each forward hook the output; with always_call, a forward hook
    runs also when a pre-hook, forward or an earlier hook raised, before the error goes on
    (on the output so far, None where forward gave none; each one's result is the next's)."""
    called, output = set(), None
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
        output = forward(*args, **kwargs)
        for key, (hook, flags) in list(hooks.items()):
            called.add(key)
            result = hook(module, args, kwargs, output) if flags["with_kwargs"] \
                else hook(module, args, output)
            if result is not None:
                output = result
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
