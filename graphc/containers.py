"""`gc.nn.ParameterList` and `gc.nn.ParameterDict`: Parameters held in a list or a dict, as
torch's. Each is a Parameter attribute of the container, named by its position ("0", "1",
...) or its key, so named_parameters(), params() and state_dict() name them as torch's
state_dict does ("weights.0", "scales.alpha"), and model.apply(params, ...) swaps them as
any layer's. A tensor or an array given is made a Parameter, as torch's makes a tensor one.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import numpy as np

from ir.errors import GraphcError, a_type, user_location
from ir.types import is_int
from ir.shown import shown
from runtime.eager import MODULE_PARAMETERS, Parameter, Tensor

from .nn import Module, _Keyed, _is_torch_tensor


def _parameter(value, container, where):
    if value is None:  # kept under its key (position), as torch's: no parameter, a None item
        return None
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value.data)
    if isinstance(value, np.ndarray):
        return Parameter(value)
    if _is_torch_tensor(value):  # (read as gc.nn.Parameter reads one) a torch Parameter
        # keeps its requires_grad, a plain tensor is made one that requires it, as torch's
        torch = sys.modules["torch"]
        return Parameter(value, requires_grad=not isinstance(value, torch.nn.Parameter)
                         or value.requires_grad)
    raise GraphcError(f"{container}: {where} is {a_type(value)}, not a Parameter, a "
                      "tensor or an array", (user_location(),))


def _set_item(container, name, value):
    """container.name = value, a Parameter or None. A Parameter over a None item makes the
    plans traced without it stale, as a new item does: Module's set counts a Parameter
    replaced, and a None read by a plan (a loop over values()) was no guard."""
    if value is not None and name in vars(container) and vars(container)[name] is None:
        MODULE_PARAMETERS.replaced += 1
    setattr(container, name, value)


def _parameter_lines(items) -> str:
    """torch's ParameterList/ParameterDict extra_repr: a line `  (key): Parameter containing:
    [float32 of size 3x4]` for each (key, Parameter) of `items` (the dtype as graphc names it,
    where torch's says torch.float32), `  (key): Object of type: NoneType` for a None."""
    return "\n".join(f"  ({key}): Object of type: NoneType" if p is None else
                     f"  ({key}): Parameter containing: [{p.data.dtype} of size "
                     f"{'x'.join(map(str, p.data.shape))}]" for key, p in items)


class ParameterList(Module):
    """torch.nn.ParameterList: Parameters in order, named "0", "1", ..."""

    def __init__(self, values=None):
        object.__setattr__(self, "_count", 0)
        if values is not None:  # (as torch's: `values or []` asked a tensor for its truth)
            self.extend(values)

    def __len__(self):
        return self._count

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._count))

    def _index(self, i):
        if not is_int(i):
            raise TypeError(f"ParameterList indices must be integers or slices, not "
                            f"{type(i).__name__}")
        if not -self._count <= i < self._count:
            raise IndexError(f"ParameterList index {i} out of range for {self._count} "
                             "parameters")
        return str(int(i) % self._count)

    def __getitem__(self, i):
        if isinstance(i, slice):  # as torch's: a ParameterList of the same Parameters
            part = object.__new__(type(self))
            chosen = [getattr(self, str(j)) for j in range(self._count)[i]]
            for k, p in enumerate(chosen):  # (setattr would rename them)
                object.__setattr__(part, str(k), p)
            object.__setattr__(part, "_count", len(chosen))
            return part
        return getattr(self, self._index(i))

    def __setitem__(self, i, value):
        _set_item(self, self._index(i), _parameter(value, "ParameterList", f"item {i}"))

    def append(self, value):
        setattr(self, str(self._count), _parameter(value, "ParameterList",
                                                   f"item {self._count}"))
        object.__setattr__(self, "_count", self._count + 1)
        MODULE_PARAMETERS.replaced += 1  # plans traced through the shorter list are stale
        return self

    def extend(self, values):
        # (torch's TypeError; `params += 3` was Python's "'int' object is not iterable",
        # and `params += p` or ParameterList(p), a tensor, appended its rows as Parameters)
        if not hasattr(values, "__iter__") or isinstance(values, Tensor) or \
                _is_torch_tensor(values):
            raise TypeError(f"ParameterList.extend (or +=) takes an iterable of Parameters, "
                            f"got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self

    __iadd__ = extend  # (torch's `params += [p]`)

    def extra_repr(self):
        return _parameter_lines(enumerate(self))


class ParameterDict(_Keyed, Module):
    """torch.nn.ParameterDict: Parameters by string key, each named by its key (None too, as
    torch's: kept under its key, no parameter; fromkeys' and setdefault's default). As torch's,
    the keys keep the order they were added in, and update() (the constructor too) adds a
    plain dict's new keys sorted, an OrderedDict's, a ParameterDict's or a list of pairs' in
    their order. torch's dict methods: get, pop, popitem (the last key's), setdefault,
    clear, copy and fromkeys (new dicts of the same Parameters), `|`, `|=`, reversed()."""

    def __init__(self, parameters=None):
        object.__setattr__(self, "_keys", [])
        if parameters is not None:
            self.update(parameters)

    def _check_key(self, key):
        if not isinstance(key, str):
            raise GraphcError(f"ParameterDict: keys must be strings, got {key!r}",
                              (user_location(),))
        # a dot would make the name ambiguous (torch refuses it too); an attribute of the
        # class (training, params, ...) or a private name would be overwritten
        if not key or "." in key or key.startswith("_") or hasattr(ParameterDict, key):
            raise GraphcError(f"ParameterDict: {key!r} cannot be a key (empty, holding a '.', "
                              "starting with '_' or the name of a Module attribute)",
                              (user_location(),))
        return key

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key, value):
        value = _parameter(value, "ParameterDict", f"{key!r}")
        if self._check_key(key) not in self._keys:
            self._keys.append(key)
            MODULE_PARAMETERS.replaced += 1  # plans traced without it are stale
        _set_item(self, key, value)

    def __delitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        self._keys.remove(key)
        delattr(self, key)  # (Module's: one tied elsewhere too takes its name there)
        MODULE_PARAMETERS.replaced += 1  # plans traced with it are stale


    def __reversed__(self):
        return reversed(list(self._keys))

    def get(self, key, default=None):
        return self[key] if key in self._keys else default

    def popitem(self):
        if not self._keys:
            raise KeyError("popitem(): ParameterDict is empty")
        key = self._keys[-1]
        return key, self.pop(key)

    def setdefault(self, key, default=None):
        if key not in self._keys:
            self[key] = default
        return self[key]

    def copy(self):
        """A new ParameterDict of the same Parameters, in this one's order, as torch's."""
        return ParameterDict(OrderedDict(self.items()))

    def fromkeys(self, keys, default=None):
        """A new ParameterDict holding `default` under each of `keys`, as torch's."""
        return ParameterDict((key, default) for key in keys)

    def __or__(self, other):
        return self.copy().update(other)

    def __ror__(self, other):
        """torch's `mapping | params`: a copy of `other` (its type: a dict's keys in its
        order) updated with this one's items, not a ParameterDict (whose plain-dict
        constructor sorts other's keys)."""
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = other.copy() if hasattr(other, "copy") else dict(other)
        merged.update(self.items())
        return merged

    def __ior__(self, other):
        return self.update(other)

    def update(self, parameters):
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = parameters.items()
        elif isinstance(parameters, Mapping):
            # torch's update walks sorted(parameters.items()) for any other mapping, so the
            # parameters' order (state_dict's, parameters_to_vector's) is the sorted keys'; a
            # key that is not a string is refused here, before sorted() would compare it
            pairs = sorted((self._check_key(key), value) for key, value in parameters.items())
        elif isinstance(parameters, Iterable) and not isinstance(parameters, (str, bytes)):
            pairs = parameters
        else:
            raise GraphcError(f"ParameterDict: parameters must be a dict or (key, value) pairs, "
                              f"got {a_type(parameters)}", (user_location(),))
        for i, pair in enumerate(pairs):
            try:
                key, value = pair
            except (TypeError, ValueError):  # (1, or a triple: torch's "element #0 ...")
                raise GraphcError(f"ParameterDict: parameters must be a dict or (key, value) "
                                  f"pairs; item #{i} is {shown(pair)}, not a pair",
                                  (user_location(),)) from None
            self[key] = value
        return self

    def extra_repr(self):
        return _parameter_lines(self.items())
