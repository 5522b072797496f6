"""torch.nn.BatchNorm1d/2d/3d: each channel normalised by its batch's mean and (biased)
variance while training, by running estimates of them in eval(); the running estimates are
Buffers the forward updates in training mode, as torch's:

    running = (1 - momentum) * running + momentum * batch statistic

with the variance unbiased (n / (n - 1)) in the running estimate, and momentum=None a
cumulative average over num_batches_tracked batches. Eagerly the update is written into the
Buffers; a traced function carries it through `model.apply(params, x, state=...)` or
gc.Trainer (graphc.nn.Module._update_buffer).

torch.nn.InstanceNorm1d/2d/3d: each sample's channel normalised by its own statistics (BatchNorm's
kernel on the input as (1, N*C, ...): ir.ops.api.instance_norm); affine=False and
track_running_stats=False by default. Tracking, the running estimates take the batch's mean of
the samples' statistics (as torch's, momentum=None leaving them as they are), and eval() uses
them."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ir.errors import GraphcError, user_location, with_article
from ir.ops import api as F
from ir.shown import shown
from ir.types import (Dim, UnsupportedDtype, holds_when_bound, is_float, is_half,
                      unsupported_dtype)

from .nn import (_EVALUATING, Buffer, Module, Parameter, _layer_dtype, _mark_empty_buffer,
                 _size)


class _NormBase(Module):
    """torch's _NormBase: the settings, the affine Parameters and the running statistics'
    Buffers BatchNorm and InstanceNorm share."""
    _ranks = ()  # the input ranks this class takes, (N, C, *spatial)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype="float32", *, bias=True):
        name = type(self).__name__
        num_features = _size(name, "num_features", num_features, least=1)
        given, dtype = dtype, _layer_dtype(name, dtype, parameters=bool(affine))
        if track_running_stats and not is_float(dtype):
            # running estimates of a mean and a variance are fractions: torch's BatchNorm
            # builds them in an integer dtype but its forward refuses them in either mode
            # ("mixed dtype"), and its InstanceNorm truncates them at each update; here the
            # update met the momentum deep inside ("mul: float scalar 1.25 meets an integer
            # tensor"), naming neither the layer nor dtype=
            raise GraphcError(f"{name}: dtype={shown(given)}: the running statistics "
                              "(track_running_stats=True) take a floating-point dtype, got "
                              f"{dtype}; pass a float dtype, or track_running_stats=False",
                              (user_location(),))
        if momentum is not None:  # (F._number's rule, as eps: a 0-d tensor or True too)
            given, momentum = momentum, F._as_number(momentum)
            if momentum is None:
                raise GraphcError(f"{name}: momentum must be a number or None, got "
                                  f"{shown(given)}", (user_location(),))
        object.__setattr__(self, "num_features", int(num_features))
        # (F._number, as LayerNorm's eps: not float(), which takes a numpy complex)
        object.__setattr__(self, "eps", F._number(f"{name}: eps", eps, True))
        object.__setattr__(self, "momentum", momentum)
        object.__setattr__(self, "track_running_stats", bool(track_running_stats))
        _affine_parameters(self, num_features, affine, bias, dtype)
        if track_running_stats:
            self.running_mean = Buffer(np.zeros(num_features, dtype))
            self.running_var = Buffer(np.ones(num_features, dtype))
            self.num_batches_tracked = Buffer(np.array(0, np.int64))
        else:
            for attr in ("running_mean", "running_var", "num_batches_tracked"):
                # torch's register_buffer(attr, None): an empty buffer, which an array set
                # later fills and anything else (a list of tensors, a number) is refused
                # naming (a plain None attribute took a list, refused only in forward in
                # words naming no buffer)
                object.__setattr__(self, attr, None)
                _mark_empty_buffer(self, attr, True)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine="
                f"{self.weight is not None}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def reset_running_stats(self):
        """torch's: running mean 0, variance 1, no batches tracked (in place: compiled plans
        read these arrays)."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        """torch's: reset_running_stats(), and the affine weight 1 and bias 0."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _update_running(self, mean, var, count):
        """The running statistics moved towards the batch's `mean` and biased `var` (C,) of
        `count` values per channel (a Dim with a symbolic batch)."""
        momentum = self._setting("momentum", mean)
        tracked = self.num_batches_tracked + 1
        if momentum is None:  # a cumulative average: the k-th batch weighs 1/k
            factor = 1.0 / F.cast(tracked, F._dtype(self.running_mean))
        else:
            factor = float(momentum)
        running_mean, running_var = moved_statistics(self.running_mean, self.running_var,
                                                     mean, var, count, factor)
        self._update_buffer("running_mean", running_mean)
        self._update_buffer("running_var", running_var)
        if self._counts_batches:
            self._update_buffer("num_batches_tracked", tracked)

    _counts_batches = True  # InstanceNorm's forward leaves num_batches_tracked at 0, as torch's
    # load_state_dict keeps the layer's own where a state lacks it, as torch's _NormBase fills
    # it in from the layer for a state without version metadata (every dict graphc reads)
    _KEPT_WHEN_MISSING = ("num_batches_tracked",)

    def _running_norm(self, x, per_channel):
        """x normalised by the running statistics (held in their Buffers' dtype, used in x's)."""
        dtype = F._dtype(x)
        mean = F.reshape(F.cast(self.running_mean, dtype), per_channel)
        var = F.reshape(F.cast(self.running_var, dtype), per_channel)
        return (x - mean) * F.rsqrt(var + self._setting("eps", x))


def moved_statistics(running_mean, running_var, mean, var, count, factor):
    """(running_mean, running_var) moved by `factor` towards a batch's `mean` and biased
    `var` (C,) of `count` values per channel, the variance made unbiased (n / (n - 1)), in
    the running statistics' dtype: torch's update, the layers' and graphc.nn.functional's."""
    stats = F._dtype(running_mean)
    channels = F._shape(running_mean)[0]
    batch_mean = F.cast(F.stop_gradient(F.reshape(mean, (channels,))), stats)
    if isinstance(count, Dim):
        n = F.full((), count, stats)
        unbiased = n / (n - 1)
    else:
        unbiased = count / (count - 1)
    batch_var = F.cast(F.stop_gradient(F.reshape(var, (channels,))), stats) * unbiased
    return ((1 - factor) * running_mean + factor * batch_mean,
            (1 - factor) * running_var + factor * batch_var)


def _empty(count):
    """Whether a count of values (an int, or a Dim with a symbolic batch) is known to be 0."""
    return not isinstance(count, Dim) and count == 0


def _affine_parameters(layer, channels, affine, bias, dtype):
    """The affine weight (ones) and, unless bias=False (torch's keyword), bias (zeros); None
    where absent, as torch's attributes."""
    layer.weight = Parameter(np.ones(channels, dtype)) if affine else None
    layer.bias = Parameter(np.zeros(channels, dtype)) if affine and bias else None


def _cast_affine(weight, bias, dtype):
    return tuple(None if t is None else F.cast(t, dtype) for t in (weight, bias))


def _scale_shift(y, weight, bias, per_channel):
    y = y * F.reshape(weight, per_channel)
    return y if bias is None else y + F.reshape(bias, per_channel)


def _check_float_input(name, x):
    """A norm layer's input must be floating-point, as torch's ('"batch_norm" not
    implemented for 'Long''): an int or bool one was named by an op inside, batch_moments or
    batch_norm (training), or by the running statistics' arithmetic (eval), not the layer."""
    if not hasattr(x, "dtype"):  # (a list, a Python number: refused as the ops refuse them)
        return
    dtype = F._dtype(x)
    if unsupported_dtype(dtype):  # (complex64: "not supported", as every layer's and op's)
        raise UnsupportedDtype(f"{name}: {unsupported_dtype(dtype)}", (user_location(),))
    if not is_float(dtype):
        raise GraphcError(f"{name} of {with_article(dtype)} value; cast it to a float type "
                          "first", (user_location(),))


def _check_statistics_pair(layer, name, training, x):
    """Where the running statistics are used (eval(), or training that tracks them), one of
    them None and the other an array is one line naming them, as torch's "running_var must
    be defined in evaluation mode" (an array set into an empty buffer of a layer built with
    track_running_stats=False, or one set to None): the None failed deep inside ("cannot
    use a NoneType as a tensor operand")."""
    mean, var = layer.running_mean, layer.running_var
    if (mean is None) == (var is None):
        return
    if training and not layer._setting("track_running_stats", x):
        return  # (the batch's statistics, neither running one read)
    missing, given = ("running_var", "running_mean") if var is None else \
        ("running_mean", "running_var")
    raise GraphcError(f"{name}: {missing} is None but {given} is an array; the running "
                      f"statistics are used together ({'training' if training else 'eval()'}"
                      f" with them): set {missing} to an array of num_features "
                      f"({layer.num_features},) values, or both to None", (user_location(),))


class _BatchNorm(_NormBase):
    def forward(self, x):
        shape = tuple(F._shape(x))
        name, C = type(self).__name__, self.num_features
        _check_float_input(name, x)
        if len(shape) not in self._ranks or shape[1] != C:
            wanted = " or ".join(f"({', '.join(['N', str(C)] + ['L'] * (r - 2))})"
                                 if r <= 3 else f"(N, {C}, {', '.join('DHW'[-(r - 2):])})"
                                 for r in self._ranks)
            raise GraphcError(f"{name}: expected input {wanted}, got shape {shape}",
                              (user_location(),))
        # eval() (or gc.Trainer's evaluation) with running statistics uses them; otherwise
        # the batch's, as torch's `training or running_mean is None`
        training = self._setting("training", x) and not _EVALUATING.depth
        eps = self._setting("eps", x)
        per_channel = (1, C) + (1,) * (len(shape) - 2)
        half = F._dtype(x) if is_half(F._dtype(x)) else None
        if half is not None:  # as torch's: a half-precision input is normalised in float32
            # and the output rounded once; statistics rounded to it (a mean of 100.3 in
            # bfloat16 is 100.5) shifted every output, by 0.4 of a standard deviation there
            x = F.cast(x, "float32")
        dtype = F._dtype(x)  # the statistics are held in the Buffers' dtype, used in x's
        _check_statistics_pair(self, name, training, x)
        if not training and self.running_mean is not None:
            y = self._running_norm(x, per_channel)
        else:
            # values per channel: a Dim with a symbolic batch, known per call
            count = math.prod([shape[0], *shape[2:]])
            if not holds_when_bound(lambda: count == 0 or count >= 2):  # torch's check
                # wherever it uses the batch's statistics (track_running_stats=False too):
                # one value's variance is 0, and the output would be the bias whatever x holds
                raise GraphcError(f"{name}: expected more than 1 value per channel when "
                                  f"training, got input of shape {shape}", (user_location(),))
            if training and self.running_mean is not None and \
                    self._setting("track_running_stats", x):  # torch's: set False later,
                # the running statistics stay as they are (and eval() still uses them)
                if _empty(count):  # torch's: an empty batch has no statistics to move them
                    # by (it was refused here), yet counts as a batch
                    self._update_buffer("num_batches_tracked", self.num_batches_tracked + 1)
                else:
                    moments = F.batch_moments(x)  # (2, C): the batch's mean, biased variance
                    self._update_running(moments[0], moments[1], count)
        weight, bias = self.weight, self.bias
        if weight is not None and half is not None:  # (float32 already under autocast; a
            weight, bias = _cast_affine(weight, bias, dtype)  # half model's not)
        if training or self.running_mean is None:
            # one kernel each way, weight and bias included (ir/ops/composite.py)
            y = F.batch_norm(x, weight, bias, eps)
        elif weight is not None:
            y = _scale_shift(y, weight, bias, per_channel)
        return y if half is None else F.cast(y, half)


class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d: input (N, C) or (N, C, L)."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d: input (N, C, H, W)."""
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """torch.nn.BatchNorm3d: input (N, C, D, H, W)."""
    _ranks = (5,)


class _InstanceNorm(_NormBase):
    """torch's _InstanceNorm: each sample's channel normalised by its own statistics; with
    track_running_stats, eval() normalises by the running ones instead."""
    _counts_batches = False

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype="float32", *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype,
                         bias=bias)

    def forward(self, x):
        shape = tuple(F._shape(x))
        name, C = type(self).__name__, self.num_features
        _check_float_input(name, x)
        batched = max(self._ranks)
        if len(shape) not in (batched - 1, batched):
            raise GraphcError(f"{name}: expected {batched - 1}D or {batched}D input, got "
                              f"shape {shape}", (user_location(),))
        unbatched = len(shape) == batched - 1
        if unbatched:  # (C, *spatial), as torch's: one sample
            x = F.reshape(x, (1, *shape))
        full = tuple(F._shape(x))
        if full[1] != C:
            if self.weight is not None or self.running_mean is not None:
                raise GraphcError(f"{name}: expected input's size at dim={1 - unbatched} to "
                                  f"match num_features ({C}), got shape {shape}",
                                  (user_location(),))
            warnings.warn(f"{name}: input's size at dim={1 - unbatched} ({full[1]}) does not "
                          f"match num_features ({C}); with affine=False it is not used",
                          stacklevel=2)  # as torch's
        # torch's `training or not track_running_stats` (set False after construction, eval()
        # uses the input's statistics too; training still updates the running ones, as there)
        use_input_stats = (self._setting("training", x) and not _EVALUATING.depth) \
            or self.running_mean is None or not self._setting("track_running_stats", x)
        half = F._dtype(x) if is_half(F._dtype(x)) else None
        if half is not None:  # normalised in float32, as BatchNorm's
            x = F.cast(x, "float32")
        dtype = F._dtype(x)
        weight, bias = self.weight, self.bias
        if weight is not None and half is not None:
            weight, bias = _cast_affine(weight, bias, dtype)
        per_channel = (1, full[1]) + (1,) * (len(full) - 2)
        if use_input_stats:
            count = math.prod(full[2:])  # values per sample's channel
            if not holds_when_bound(lambda: count == 0 or count >= 2):  # torch's
                # _verify_spatial_size, which takes none (an empty output) but refuses one
                raise GraphcError(f"{name}: expected more than 1 spatial element when "
                                  f"training, got input of shape {shape}", (user_location(),))
            if self.running_mean is not None and self.momentum is not None \
                    and not _empty(full[0] * count):  # (an empty input moves nothing, as
                # torch's; its statistics were NaN here)
                # the batch's mean of each sample's statistics, as torch's instance_norm
                # (momentum=None is 0 there: the running statistics stay as they are)
                N = full[0]
                folded = F.reshape(x, (1, N * C) + full[2:])
                moments = F.reshape(F.batch_moments(folded), (2, N, C))
                self._update_running(F.mean(moments[0], 0), F.mean(moments[1], 0), count)
            y = F.instance_norm(x, weight, bias, self._setting("eps", x))
        else:
            y = self._running_norm(x, per_channel)
            if weight is not None:
                y = _scale_shift(y, weight, bias, per_channel)
        if unbatched:
            y = F.reshape(y, shape)
        return y if half is None else F.cast(y, half)


class InstanceNorm1d(_InstanceNorm):
    """torch.nn.InstanceNorm1d: input (N, C, L) or (C, L)."""
    _ranks = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """torch.nn.InstanceNorm2d: input (N, C, H, W) or (C, H, W)."""
    _ranks = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """torch.nn.InstanceNorm3d: input (N, C, D, H, W) or (C, D, H, W)."""
    _ranks = (4, 5)
