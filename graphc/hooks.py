"""torch's forward hooks on gc.nn.Module: `register_forward_pre_hook` and
`register_forward_hook`, with torch's signatures, return values and order (prepend=,
with_kwargs=, always_call=), each returning a handle whose remove() (or the end of its `with`
block) takes the hook off.

A hook runs where the module is called: eagerly on tensors, and inside a trace (gc.compile,
gc.grad, gc.vmap) on the traced values, as torch.compile inlines hooks into its graph. So a
compiled plan holds what its hooks did while it was traced: a hook that changes the output is
part of the plan; one that stores a value (a list of activations) stores a traced value, not
an array (return it from the function instead, or call the model eagerly). Adding or removing
a hook on a module a plan went through traces that plan again (Module.__call__'s guard).
"""
from __future__ import annotations

import itertools
import warnings
import weakref

from ir.errors import GraphcError, user_location, user_stacklevel

_IDS = itertools.count()  # one id per hook, as torch's RemovableHandle.id


class RemovableHandle:
    """What register_forward_hook and register_forward_pre_hook return: `remove()` takes the
    hook off (again: nothing); as a context manager, at the end of the block."""

    def __init__(self, hooks: dict, changed):
        self.id = next(_IDS)
        # (the module's bound method, weakly: a handle kept does not keep its module alive,
        # as torch's keeps its hooks dict by a weak reference)
        self._hooks, self._changed = hooks, weakref.WeakMethod(changed)

    def remove(self) -> None:
        if self._hooks.pop(self.id, None) is not None:
            changed = self._changed()
            if changed is not None:
                changed()

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def register(hooks: dict, hook, changed, prepend: bool, where: str,
             **flags) -> RemovableHandle:
    """Add `hook` with its `flags` to `hooks` (id -> (hook, flags)), first if `prepend`;
    `changed()` tells the module's plans (now and at the handle's remove)."""
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
