"""Autocast: the operand dtypes of op calls under a mixed-precision policy.

    with autocast("bfloat16"):          # or "float16"
        loss = loss_fn(params, batch)   # float32 parameters, half-precision activations

Inside, every op call passes through `autocast_operands` before it reaches its interpreter
(ir/ops/registry.py's `apply`), which inserts `cast` nodes (or eager casts) as PyTorch's
torch.autocast does, with JAX's mixed-precision policy (float32 parameters, half compute):

- matmul, einsum: float32 (and the other half dtype's) operands are cast to the half dtype
  (their inputs are half precision; they still accumulate in float32, see
  registry.computing_half_in_float32); float64 ones are left alone, as torch.autocast's
  (float64 is not "eligible" there), so a float64 model runs in float64;
- log_softmax, sum: half operands (of either half dtype) are cast to float32 (as torch's
  CUDA autocast; its CPU one keeps them half), so cross_entropy's log_softmax and sums are
  float32;
- the losses on torch.autocast's CPU float32 list (measured with torch 2.13: mse_loss,
  l1_loss, huber_loss, smooth_l1_loss, binary_cross_entropy(_with_logits),
  soft_margin_loss, kl_div, cross_entropy, nll_loss, poisson_nll_loss, margin_ranking_loss,
  hinge_embedding_loss, multi_margin_loss, triplet_margin_loss, cosine_embedding_loss)
  are built from primitives, so no op sees them: each is wrapped in `in_float32`, which
  casts its half operands to float32 at entry, so the loss is computed and returned in
  float32 as torch's (float64 and integer operands are left alone, as there, and the loss
  then promotes them as torch's does: api._autocast_promoted);
- prelu (a composite on torch's CPU lower-precision list, as conv and linear, which are built
  from matmuls) is wrapped in `in_half`: its float32 operands are cast as matmul's, so its
  result is half as torch's;
- any other op whose float operands mix float32 and the half dtype computes in the half dtype
  (a float32 parameter meeting a half activation is cast where it is used), so activations
  stay half precision: residual sums, a Linear's bias. (api's layer_norm, rms_norm and
  group_norm take float32 weights and biases beside a half x before any op sees them, as
  torch's mixed-type kernels: computed in float32, the half result rounded once.) Ops on float32 values only
  (the optimiser's update, with its float32 master weights and state) are left alone.
- control-flow ops and custom_vjp nodes (gc.remat, gc.custom_vjp) are never cast (UNCAST_OPS):
  the ops inside them are, and a custom_vjp's operands are the arguments its rule differentiates.

The backward pass is built with autocast suspended (passes.autodiff, runtime.eager): each
cast's gradient casts back, so float32 parameters get float32 gradients.

A traced graph records the policy it was traced under as a guard (a compiled function
retraces when called under another policy); a function that enters autocast itself while it
is traced (the Trainer's loss, gc.compile(precision=...)) embodies its own policy.
"""
from __future__ import annotations

import contextlib
import functools
import re
import threading

import numpy as np

from ..errors import GraphcError, user_location
from ..types import as_dtype, is_float, is_half, unsupported_dtype
from . import registry

HALF_OPS = frozenset(("matmul", "einsum"))
# Ops whose operands autocast never casts: the control-flow ops leave dtypes to the ops of
# their regions (registry.CONTROL_FLOW_OPS), and a custom_vjp node's operands are the
# function's result and the very values its rule differentiates with respect to (gc.remat's
# and gc.custom_vjp's arguments): a cast put between them made a float32 argument beside a
# half result a new half value, the rule's gradient stopped at it, and the argument read
# inside counted as closed over (refused, traced and eagerly)
UNCAST_OPS = registry.CONTROL_FLOW_OPS | {"custom_vjp"}
FLOAT32_OPS = frozenset(("log_softmax", "sum"))
_FLOAT32 = np.dtype("float32")
_FLOAT64 = np.dtype("float64")

# mixed-precision policies by the names Lightning, `graphc train --precision` and
# gc.compile(precision=...) use: the half dtype, or None for plain float32
PRECISIONS = {"fp32": None, "bf16-mixed": "bfloat16", "fp16-mixed": "float16"}


class _State(threading.local):
    dtype = None  # the half dtype of the active policy, None: autocast off
    suspended = 0  # > 0 while a backward pass is built
    given = None  # while an in_float32 loss runs: {id(cast operand): the dtype it came in}


STATE = _State()


def precision_dtype(precision: str | None, where: str = "precision"):
    """The half dtype of a precision name (None for "fp32"); one GraphcError line otherwise."""
    if precision is None:
        return None
    if precision not in PRECISIONS:
        raise GraphcError(f"{where}: unknown precision {precision!r} (choose "
                          f"{', '.join(PRECISIONS)})", (user_location(),))
    dtype = PRECISIONS[precision]
    return None if dtype is None else as_dtype(dtype)


# torch.autocast's first argument is a device type, graphc's the dtype: told apart by these
TORCH_DEVICE_TYPES = frozenset(("cpu", "cuda", "mps", "xpu", "hpu", "xla", "ipu", "mtia",
                                "meta"))


class _NotGiven:
    """autocast's dtype left out: None is a setting of its own there (graphc's form: the
    policy off)."""

    def __repr__(self):
        return "<not given>"


_NOT_GIVEN = _NotGiven()


def _is_device(value) -> bool:
    """Whether autocast's argument is torch's device type ('cpu', 'cuda:0') or a
    torch.device, not a dtype."""
    if type(value).__name__ == "device":  # (torch.device("cpu"): its str is the type)
        value = str(value)
    return isinstance(value, str) and value.split(":")[0] in TORCH_DEVICE_TYPES


@contextlib.contextmanager
def autocast(dtype_or_device=_NOT_GIVEN, /, dtype=_NOT_GIVEN, enabled=True,
             cache_enabled=None, *, device_type=_NOT_GIVEN, **unknown):
    """Op calls inside run under the mixed-precision policy with half dtype `dtype`
    ("bfloat16" or "float16", a numpy or torch dtype; None: off), in either form:
    - graphc's, `autocast(dtype="bfloat16", *, enabled=True)`: the dtype first;
    - torch's, `autocast("cpu", dtype=None, enabled=True, cache_enabled=None)`
      (torch.autocast's device-first form, `torch.autocast("cpu", dtype=torch.bfloat16)`):
      the device type 'cpu' only ('cpu:0' too, as torch's), as graphc computes on the CPU
      (another, or device_type= holding no device, is one line); dtype
      None is bfloat16, torch's CPU autocast default; cache_enabled is taken and changes no
      value (torch's cache of the weights cast in the region only saves time).
    enabled=False is off too, as torch.autocast's (`autocast(dtype, enabled=use_amp)`: one
    code path for both, nested to turn it off); the dtype is then only read as a dtype, as
    torch's (float32 where amp is off is taken). torch's device_type= by name, or a
    torch.device first, is its form too."""
    if unknown:
        raise GraphcError(f"autocast: no argument {next(iter(unknown))!r} (it takes the half "
                          "dtype, or torch's device type first, then dtype=, enabled=, "
                          "cache_enabled=)", (user_location(),))
    if device_type is not _NOT_GIVEN:  # torch.autocast(device_type="cpu", dtype=...)
        if dtype_or_device is not _NOT_GIVEN:
            raise GraphcError(f"autocast: device_type={device_type!r} beside "
                              f"{dtype_or_device!r} first: give one", (user_location(),))
        if not _is_device(device_type):  # (None or a dtype there was graphc's form unsaid)
            raise GraphcError(f"autocast: device_type must be torch's device type ('cpu'), "
                              f"got {device_type!r} (the half dtype is dtype=)",
                              (user_location(),))
        dtype_or_device = device_type
    if not isinstance(enabled, (bool, np.bool_)):  # (read by its truth, "no" would be on)
        raise GraphcError(f"autocast: enabled must be True or False, got {enabled!r}",
                          (user_location(),))
    if not (cache_enabled is None or isinstance(cache_enabled, (bool, np.bool_))):
        raise GraphcError(f"autocast: cache_enabled must be None, True or False, got "
                          f"{cache_enabled!r}", (user_location(),))
    if _is_device(dtype_or_device):  # torch's form
        dtype_or_device = str(dtype_or_device)
        if dtype_or_device.split(":")[0] == "cpu" and not re.fullmatch(
                r"cpu(:(0|[1-9][0-9]*))?", dtype_or_device):
            raise GraphcError(f"autocast: {dtype_or_device!r} is not a device (torch's form "
                              "takes 'cpu', or 'cpu:0')", (user_location(),))
        if dtype_or_device.split(":")[0] != "cpu":  # ('cpu:0', torch.device('cpu', 0) too)
            raise GraphcError(f"autocast: device type {dtype_or_device!r}: graphc computes "
                              "on the CPU, so torch's form takes 'cpu' only "
                              "(gc.autocast('cpu', dtype=torch.bfloat16)); or give the half "
                              "dtype first: gc.autocast('bfloat16')", (user_location(),))
        dtype = "bfloat16" if dtype is None or dtype is _NOT_GIVEN else dtype
    elif dtype_or_device is _NOT_GIVEN:  # graphc's form, dtype by name or left out
        dtype = "bfloat16" if dtype is _NOT_GIVEN else dtype
    elif dtype is not _NOT_GIVEN:
        raise GraphcError(f"autocast: the dtype is given twice, {dtype_or_device!r} first "
                          f"and dtype={dtype!r}: give it once (torch's form takes the device "
                          "type first: gc.autocast('cpu', dtype=...))", (user_location(),))
    else:
        dtype = dtype_or_device
    if _is_device(dtype):  # (autocast(dtype="cpu"), or autocast("cpu", "cuda"))
        raise GraphcError(f"autocast: dtype={dtype!r} is a device type, which torch's form "
                          "gives first: gc.autocast('cpu', dtype=torch.bfloat16), or "
                          "gc.autocast('bfloat16')", (user_location(),))
    dtype = None if dtype is None else as_dtype(dtype)
    if enabled and dtype is not None and not is_half(dtype):
        raise GraphcError(f"autocast: {dtype} is not a half-precision dtype (float16, "
                          "bfloat16)", (user_location(),))
    dtype = dtype if enabled else None
    graph = registry.innermost_interpreter()
    if hasattr(graph, "set_while_tracing"):
        graph.set_while_tracing(STATE, "dtype")  # the traced function sets its own policy
    saved = STATE.dtype
    STATE.dtype = dtype
    try:
        yield
    finally:
        STATE.dtype = saved


@contextlib.contextmanager
def suspended():
    """No autocast inside (building a backward pass: cotangents keep their primals' dtypes)."""
    STATE.suspended += 1
    try:
        yield
    finally:
        STATE.suspended -= 1


def active_half():
    """The half dtype matmul and einsum cast their operands to now: the policy's, None
    outside autocast and while a backward pass is built."""
    return None if STATE.suspended else STATE.dtype


def _float_dtype(x):
    if registry.is_weak_scalar(x) or not hasattr(x, "dtype"):
        return None
    dtype = np.dtype(x.dtype)
    return dtype if is_float(dtype) else None


def dtype_clash(*dtypes):
    """Why operands of these dtypes cannot meet in one matmul, einsum or convolution now
    (None: they can): outside autocast they must have one dtype, as in PyTorch; under it
    float32 and half operands are cast to the half dtype, but float64 ones are left alone,
    as torch.autocast's, so float64 meets float64 only. A dtype graphc does not hold
    (complex) is named as such."""
    dtypes = set(dtypes)
    if len(dtypes) == 1:  # (each eager convolution asks)
        return None
    dtypes = {np.dtype(d) for d in dtypes}
    unsupported = next(filter(None, map(unsupported_dtype, sorted(dtypes, key=str))), None)
    if unsupported:  # (a complex x was told to take w's float32)
        return unsupported
    if active_half() is None:
        return "they must have one dtype (outside autocast), as in PyTorch"
    if _FLOAT64 in dtypes:
        return ("under autocast float64 is not cast (as in torch.autocast), so it cannot meet "
                f"{', '.join(sorted(str(d) for d in dtypes - {_FLOAT64}))}")
    return None


def autocast_operands(name, inputs, interpreter):
    """The operands of an op call under the active policy (unchanged when it is off)."""
    if STATE.suspended or name in UNCAST_OPS:
        return inputs
    half = STATE.dtype
    sensitive = name in HALF_OPS or name in FLOAT32_OPS
    if half is None and not sensitive:
        return inputs
    if sensitive:
        _guard_policy(interpreter)
    if half is None:
        return inputs
    dtypes = [_float_dtype(x) for x in inputs]
    if name in HALF_OPS:
        target = _half_target(name, dtypes, half)
    elif name in FLOAT32_OPS:
        # either half dtype, not only the policy's: a bfloat16 operand under a float16 policy
        # stayed bfloat16, where torch's autocast casts every eligible (float, not float64)
        # operand of its float32 ops, and in_float32's losses cast it too
        target = {d: _FLOAT32 for d in dtypes if d is not None and is_half(d)}
    elif half in dtypes and _FLOAT32 in dtypes:
        target = {_FLOAT32: half}
        _guard_policy(interpreter)
    else:
        return inputs
    return tuple(x if d not in target or target[d] == d else _cast(x, target[d])
                 for x, d in zip(inputs, dtypes))


def _half_target(name, dtypes, half):
    """{operand dtype: half} for the float operands of a lower-precision op (HALF_OPS,
    in_half) of these dtypes; one line where float64 meets another float dtype."""
    # not float64: casting it made a float64 model's product half and its float64 bias
    # add a dtype mix no rule covers; torch.autocast leaves float64 alone
    target = {d: half for d in dtypes if d is not None and d != _FLOAT64}
    # (not `_FLOAT64 in dtypes`: numpy's dtype == None is True, and a non-float operand's
    # None made every int or bool operand "float64"; the type rule's error would name the
    # half cast)
    if target and any(d is not None and d == _FLOAT64 for d in dtypes):
        why = dtype_clash(*[d for d in dtypes if d is not None])
        raise GraphcError(f"{name}: {why}; cast one with .astype", (user_location(),))
    return target


def _policy_applies() -> bool:
    """Whether a composite wrapped by in_half / in_float32 casts its operands now: not
    while a backward pass is built (suspended), else the policy's guard taken, then whether
    one is active."""
    if STATE.suspended:
        return False
    _guard_policy(registry.innermost_interpreter())
    return STATE.dtype is not None


def in_half(function):
    """`function` (a composite on torch.autocast's CPU lower-precision list: prelu) with its
    float operands cast to the policy's half dtype as matmul's are (float64 left alone): left
    to the primitives, float32 operands alone stayed float32, where torch's is half."""
    @functools.wraps(function)
    def under_policy(*args, **kwargs):
        if not _policy_applies():
            return function(*args, **kwargs)
        operands = {**dict(enumerate(args)), **kwargs}
        dtypes = {k: _float_dtype(x) for k, x in operands.items()}
        target = _half_target(function.__name__, list(dtypes.values()), STATE.dtype)
        cast = {k: x if dtypes[k] not in target or target[dtypes[k]] == dtypes[k]
                else _cast(x, target[dtypes[k]]) for k, x in operands.items()}
        return function(*(cast[i] for i in range(len(args))),
                        **{k: cast[k] for k in kwargs})
    return under_policy


def _guard_policy(interpreter):
    """A tracing interpreter's plan holds for the active policy only: guard it, once."""
    if hasattr(interpreter, "guard") and not any(g[0] is STATE for g in interpreter.guards):
        interpreter.guard(STATE, "dtype", STATE.dtype)


def _cast(x, dtype):
    """An operand (tensor, traced value or numpy constant) as `dtype`."""
    return x.astype(dtype) if isinstance(x, np.ndarray) else registry.apply("cast", x,
                                                                             dtype=dtype)


def _to_float32(x):
    """A half operand as float32; others as given."""
    dtype = _float_dtype(x)
    return x if dtype is None or not is_half(dtype) else _cast(x, _FLOAT32)


def in_float32(loss):
    """`loss` (a composite on torch.autocast's float32 list, see the module docstring) with
    its half operands cast to float32 under the active policy: left to the primitives, a
    half activation made the whole loss half (their "float32 meets half: half" rule), where
    torch's is float32. The dtypes they came in are kept for the loss's messages
    (given_dtype): a bfloat16 input refused beside a float64 target is named bfloat16."""
    @functools.wraps(loss)
    def under_policy(*args, **kwargs):
        if not _policy_applies():
            return loss(*args, **kwargs)
        given = {}

        def to_float32(x):
            cast = _to_float32(x)
            if cast is not x:
                given[id(cast)] = _float_dtype(x)
            return cast

        saved, STATE.given = STATE.given, given
        try:
            return loss(*map(to_float32, args), **{k: to_float32(v) for k, v in kwargs.items()})
        finally:
            STATE.given = saved
    return under_policy


def given_dtype(x, dtype):
    """The dtype operand x (of dtype `dtype`) came into the running loss in: a half dtype
    where in_float32 cast it to float32, else `dtype`."""
    return dtype if STATE.given is None else STATE.given.get(id(x), dtype)


registry.OPERAND_POLICY[:] = [autocast_operands]
