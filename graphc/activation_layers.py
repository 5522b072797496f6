"""torch.nn's other activation modules (ELU, SELU, CELU, ReLU6, Hardtanh, Hardsigmoid,
Hardswish, Mish, Softsign, GLU, Softshrink, Hardshrink, PReLU, Softmax, LogSoftmax, Threshold,
Tanhshrink, Softmin, Softmax2d) and ModuleDict, on graphc.nn's Module. Each activation is its
function in ir/ops/activations.py (or the core API) with its settings read as guarded settings
at every call, so a compiled plan traced before `layer.alpha = 0.5` is not reused after it."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ir.errors import GraphcError, user_location
from ir.ops import activations as A
from ir.ops import api as F
from ir.types import is_int

from .nn import (Module, Parameter, _Functional, _Keyed, _as_child, _children_changed,
                 _keep_inplace, _layer_dtype, _refuse_as_child, _refuse_own_attribute,
                 _submodule)


def _activation(name, function, doc, *, takes_inplace=False, repr_format=None, check=None,
                **defaults):
    """A Module class named `name` computing `function` with the settings `defaults`;
    takes_inplace: it takes torch's `inplace` after them, as torch's layer (_keep_inplace);
    repr_format: torch's extra_repr where it is not the settings by name (_Functional's);
    check(layer): refuses settings torch's constructor refuses, after they are kept."""
    accepted = tuple(defaults) + (("inplace",) if takes_inplace else ())

    def __init__(self, *args, **kwargs):
        values = dict(defaults, **({"inplace": False} if takes_inplace else {}))
        values.update(zip(accepted, args))
        unknown = set(kwargs) - set(accepted)
        if len(args) > len(accepted) or unknown:
            raise GraphcError(f"{name}: takes {', '.join(accepted) or 'no settings'}, got "
                              f"{len(args)} positional and {sorted(kwargs)}",
                              (user_location(),))
        values.update(kwargs)
        if takes_inplace:
            _keep_inplace(self, values.pop("inplace"))
        self._keep(**values)
        if check is not None:
            check(self)
    return type(name, (_Functional,), {"__init__": __init__, "__doc__": doc,
                                        "_function": staticmethod(function),
                                        "_settings": tuple(defaults),
                                        "_repr_format": repr_format})


def _check_bounds(layer):
    """torch's Hardtanh refuses its bounds where it is built (max_val must be above
    min_val), and graphc a NaN one, which torch builds to give NaN for every input
    (A.hardtanh_bounds); bounds set later are checked by hardtanh at the call."""
    low, high = A.hardtanh_bounds("Hardtanh", layer.min_val, layer.max_val)
    if not high > low:
        raise GraphcError(f"Hardtanh: max_val ({layer.max_val}) must be greater than "
                          f"min_val ({layer.min_val})", (user_location(),))


ELU = _activation("ELU", A.elu, "torch.nn.ELU(alpha=1.0, inplace=False)", takes_inplace=True,
                  alpha=1.0)
SELU = _activation("SELU", A.selu, "torch.nn.SELU(inplace=False)", takes_inplace=True)
CELU = _activation("CELU", A.celu, "torch.nn.CELU(alpha=1.0, inplace=False)",
                   takes_inplace=True, alpha=1.0)
ReLU6 = _activation("ReLU6", A.relu6, "torch.nn.ReLU6(inplace=False)", takes_inplace=True)
Hardtanh = _activation("Hardtanh", A.hardtanh,
                       "torch.nn.Hardtanh(min_val=-1.0, max_val=1.0, inplace=False)",
                       takes_inplace=True, check=_check_bounds, min_val=-1.0, max_val=1.0)
# (torch's Hardsigmoid and Hardswish never show their inplace)
Hardsigmoid = _activation("Hardsigmoid", A.hardsigmoid, "torch.nn.Hardsigmoid(inplace=False)",
                          takes_inplace=True, repr_format="")
Hardswish = _activation("Hardswish", A.hardswish, "torch.nn.Hardswish(inplace=False)",
                        takes_inplace=True, repr_format="")
Mish = _activation("Mish", A.mish, "torch.nn.Mish(inplace=False)", takes_inplace=True)
Softsign = _activation("Softsign", A.softsign, "torch.nn.Softsign()")
GLU = _activation("GLU", A.glu, "torch.nn.GLU(dim=-1)", dim=-1)
Softshrink = _activation("Softshrink", A.softshrink, "torch.nn.Softshrink(lambd=0.5)",
                         repr_format="{lambd}", lambd=0.5)
Hardshrink = _activation("Hardshrink", A.hardshrink, "torch.nn.Hardshrink(lambd=0.5)",
                         repr_format="{lambd}", lambd=0.5)
Softmax = _activation("Softmax", F.softmax, "torch.nn.Softmax(dim): softmax along dim",
                      dim=-1)
LogSoftmax = _activation("LogSoftmax", F.log_softmax,
                         "torch.nn.LogSoftmax(dim): log_softmax along dim", dim=-1)
Tanhshrink = _activation("Tanhshrink", A.tanhshrink, "torch.nn.Tanhshrink(): x - tanh(x)")
Softmin = _activation("Softmin", A.softmin, "torch.nn.Softmin(dim=None): softmax(-x) along "
                      "dim (None: torch's implicit axis, with a warning)", dim=None)


class Threshold(_Functional):
    """torch.nn.Threshold(threshold, value, inplace=False): graphc.threshold (inplace has
    no effect: _keep_inplace)."""

    _function = staticmethod(A.threshold)
    _settings = ("threshold", "value")
    def __init__(self, threshold, value, inplace=False):
        self._keep(threshold=threshold, value=value)
        _keep_inplace(self, inplace)


class Softmax2d(Module):
    """torch.nn.Softmax2d(): softmax over the channels (axis -3) of a (C, H, W) or (N, C, H,
    W) input."""

    def forward(self, x):
        if F._ndim(x) not in (3, 4):
            raise GraphcError(f"Softmax2d: expected a 3-d or 4-d input, got shape "
                              f"{tuple(F._shape(x))}", (user_location(),))
        return F.softmax(x, -3)


class PReLU(Module):
    """torch.nn.PReLU(num_parameters=1, init=0.25): x for x > 0, weight * x otherwise, one
    learned slope or one per channel (axis 1)."""

    def __init__(self, num_parameters=1, init=0.25, dtype="float32"):
        if not is_int(num_parameters) or num_parameters < 1:
            raise GraphcError(f"PReLU: num_parameters must be a positive int, got "
                              f"{num_parameters!r}", (user_location(),))
        object.__setattr__(self, "num_parameters", int(num_parameters))  # (torch's has it)
        self.weight = Parameter(np.full(int(num_parameters), init,
                                        _layer_dtype("PReLU", dtype)))

    def forward(self, x):
        return A.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={F._shape(self.weight)[0]}"


def _pairs(where, modules) -> list:
    """The (key, module) pairs of `modules`, a dict (a ModuleDict too) or an iterable of
    pairs, as torch's ModuleDict takes them; anything else is refused in one line naming
    `where` (the constructor, or update)."""
    if hasattr(modules, "items"):
        return list(modules.items())
    if not isinstance(modules, Iterable):
        raise GraphcError(f"{where} should be called with an iterable of key/value pairs, "
                          f"but got {type(modules).__name__}", (user_location(),))
    pairs = list(modules)
    for j, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise GraphcError(f"{where}: item {j} is not a (key, module) pair, got "
                              f"{type(pair).__name__}", (user_location(),))
    return pairs


class ModuleDict(_Keyed, Module):
    """torch.nn.ModuleDict: modules under string keys (their parameters are named
    `key.name`), in insertion order; `d[key]`, `d[key] = module`, `del d[key]`, `keys()`,
    `items()`, `values()`, `len`, `in`, pop, update and clear."""

    def __init__(self, modules=None):
        object.__setattr__(self, "_keys", [])
        for key, module in _pairs("ModuleDict", {} if modules is None else modules):
            self[key] = module

    def __setitem__(self, key, module):
        if not isinstance(key, str) or not key or "." in key:
            raise GraphcError(f"ModuleDict: a key must be a non-empty string without '.', "
                              f"got {key!r}", (user_location(),))
        if _as_child(module, self) is None:  # a gc.compile'd Module is one, as torch's
            _refuse_as_child(f"ModuleDict: {key!r}", module)
        _refuse_own_attribute("ModuleDict", key)
        if key not in self._keys and (hasattr(type(self), key) or key in vars(self)):
            raise GraphcError(f"ModuleDict: the key {key!r} is an attribute of the dict "
                              "itself; choose another", (user_location(),))
        if key not in self._keys:
            self._keys.append(key)
        setattr(self, key, module)

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self, key)

    def __delitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        _children_changed(self, [_submodule(self, key, vars(self)[key])])  # plans traced
        # with it, or that read its tensors, are stale
        self._keys.remove(key)
        delattr(self, key)  # (Module's: a module held elsewhere too takes that place's names)

    def update(self, modules):
        """Set each (key, module) of `modules`: a dict (a ModuleDict too) or an iterable of
        pairs, in their order, as torch's."""
        for key, module in _pairs("ModuleDict.update", modules):
            self[key] = module  # (each counted for traced plans)

