"""A small layer set in PyTorch's style. Layers hold named Parameters (numpy arrays); called on
eager tensors they compute at once, called while tracing they add nodes, with each Parameter
becoming a named `param` input of the graph."""
from __future__ import annotations

import numpy as np

from ir.errors import GraphcError, user_location
from ir.graph import scope
from ir.ops import api as F
from runtime.eager import Parameter, Tensor


class Module:
    _path = ""  # the dotted name from the root module, used as the scope of its nodes

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            value.name = name
        elif isinstance(value, Module):
            for pname, p in value.named_parameters():
                p.name = f"{name}.{pname}"
            value._set_path(name)
        object.__setattr__(self, name, value)

    def _set_path(self, path):
        object.__setattr__(self, "_path", path)
        for name, child in vars(self).items():
            if isinstance(child, Module):
                child._set_path(f"{path}.{name}")

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            full = f"{prefix}{name}"
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_parameters(full + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def state_dict(self) -> dict:
        return {name: p.data for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict):
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"state does not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(f"parameter {name}: shape {value.shape}, expected "
                                 f"{p.data.shape}")
            p.data = value.astype(p.data.dtype)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # ---- modules as pytrees (JAX / flax style) ----
    def params(self) -> dict:
        """The parameters as a pytree: {name: array}, named as named_parameters(). The arrays
        are copies, so a compiled step that donates (updates in place) them never changes the
        model's own weights; load_state_dict(params) writes trained values back."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def apply(self, params: dict, *args, **kwargs):
        """forward(*args, **kwargs) computed with `params` (a dict as params() gives: arrays,
        eager tensors or symbolic values) in place of the model's Parameters. Traced, the
        params are ordinary inputs of the graph, so gc.grad / gc.value_and_grad differentiate
        with respect to them; the model itself is left unchanged."""
        if not isinstance(params, dict):
            raise GraphcError(f"apply: params must be a dict name -> array (as "
                              f"{type(self).__name__}.params() gives), got "
                              f"{type(params).__name__}", (user_location(),))
        owners = dict(self._parameter_owners())
        missing = sorted(set(owners) - set(params))
        unexpected = sorted(set(params) - set(owners))
        if missing or unexpected:
            raise GraphcError("apply: params do not match the model: "
                              + "; ".join(f"{what} {names[:3]}{' ...' if len(names) > 3 else ''}"
                                          for what, names in (("missing", missing),
                                                              ("unexpected", unexpected))
                                          if names), (user_location(),))
        saved = []
        try:
            for name, (module, attr) in owners.items():
                value = params[name]
                if isinstance(value, np.ndarray):
                    value = Tensor(value)
                saved.append((module, attr, getattr(module, attr)))
                object.__setattr__(module, attr, value)
            return self(*args, **kwargs)
        finally:  # the Parameters are back even when forward raises
            for module, attr, original in reversed(saved):
                object.__setattr__(module, attr, original)

    def _parameter_owners(self, prefix=""):
        """(name, (module, attribute)) for each Parameter, in named_parameters() order."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield f"{prefix}{name}", (self, name)
            elif isinstance(value, Module):
                yield from value._parameter_owners(f"{prefix}{name}.")

    def __call__(self, *args, **kwargs):
        if not self._path:
            return self.forward(*args, **kwargs)
        with scope(self._path):
            return self.forward(*args, **kwargs)


class ModuleList(Module):
    def __init__(self, modules):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        object.__setattr__(self, "_count", len(modules))

    def __iter__(self):
        return (getattr(self, str(i)) for i in range(self._count))

    def __len__(self):
        return self._count

    def __getitem__(self, i):
        return getattr(self, str(i))


class Linear(Module):
    def __init__(self, fan_in, fan_out, bias=True, rng=None, std=None, dtype="float32"):
        rng = rng or np.random.default_rng(0)
        std = (1.0 / np.sqrt(fan_in)) if std is None else std
        self.weight = Parameter(rng.normal(0.0, std, (fan_in, fan_out)).astype(dtype))
        if bias:
            self.bias = Parameter(np.zeros(fan_out, dtype))
        else:
            object.__setattr__(self, "bias", None)

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class Embedding(Module):
    def __init__(self, num, dim, rng=None, std=0.02, dtype="float32"):
        rng = rng or np.random.default_rng(0)
        self.weight = Parameter(rng.normal(0.0, std, (num, dim)).astype(dtype))

    def forward(self, idx):
        return F.take(self.weight, idx)


class LayerNorm(Module):
    def __init__(self, dim, bias=True, eps=1e-5, dtype="float32"):
        self.weight = Parameter(np.ones(dim, dtype))
        if bias:
            self.bias = Parameter(np.zeros(dim, dtype))
        else:
            object.__setattr__(self, "bias", None)
        object.__setattr__(self, "eps", eps)

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)
