"""Recurrent layers in PyTorch's style: `nn.RNN`, `nn.GRU` and `nn.LSTM`, and their one-step
cells `nn.RNNCell`, `nn.GRUCell` and `nn.LSTMCell`, with torch's arguments, parameter names,
shapes, gate order and initialisation, so that a torch model's state_dict loads as it is. A
layer and its cell share the gate math (`_step`) and the initialisation (`_init_weights`).

Each layer and direction is one `gc.scan` over time. The input projections of every step are
one matrix product before the scan (x @ W_ih^T + b_ih for all steps at once); the scan body
only multiplies the hidden state, so gradients, vmap and compilation are scan's.

    rnn = gc.nn.LSTM(8, 16, num_layers=2, batch_first=True)
    out, (h, c) = rnn(x)            # x (N, L, 8) -> out (N, L, 16), h and c (2, N, 16)
    cell = gc.nn.LSTMCell(8, 16)
    h, c = cell(x[:, 0])            # (N, 8) -> h and c (N, 16)
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ir.errors import GraphcError, a_type, user_location, user_stacklevel
from ir.ops import api as F
from ir.types import is_int, is_real

from .control_flow import scan
from .nn import (_EVALUATING, Module, Parameter, _check_dtypes, _layer_dtype, _rng,
                 keyed_dropout)
from .rnn_utils import PackedSequence, _check_packed, _pack, pad_packed_sequence

# gates per cell: rows of weight_ih/weight_hh, in torch's order
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _fail(message):
    raise GraphcError(message, (user_location(),))


def _check_sizes(name, **sizes):
    for what, value in sizes.items():
        if not is_int(value) or value < 1:  # input_size 0 too, as torch: its initial state failed
            _fail(f"{name}: {what} must be a positive int, got {value!r}")


def _check_input(name, input, shapes):
    """An input that is neither an array nor an array-like (a list or tuple of numbers or
    arrays, a number): named as what it is (None, a str, a dict, a set or any other object
    read as shape (), so the error said "must be 2-d ..., got shape ()"); a list or tuple of
    arrays of different shapes (an (x, h) pair given as one argument) was numpy's raw
    ValueError."""
    if hasattr(input, "shape") or (isinstance(input, (numbers.Number, np.generic))
                                    and not isinstance(input, (str, bytes))):
        return
    if isinstance(input, (list, tuple)):
        try:
            F._shape(input)
        except ValueError:
            _fail(f"{name}: input must be an array {shapes}, got {a_type(input)} of "
                  f"{len(input)} items of different shapes")
        return
    _fail(f"{name}: input must be an array {shapes}, got {a_type(input)}")


def _given_states(name, lstm, hx):
    """(h_0, c_0) from forward's hx (None: zeros, made later): an LSTM's a pair of both,
    as torch requires (graphc took a None half as zeros)."""
    if not lstm:
        return hx, None
    if hx is None:
        return None, None
    if not (isinstance(hx, (tuple, list)) and len(hx) == 2) or any(v is None for v in hx):
        got = type(hx).__name__ + (f" of {len(hx)}" if isinstance(hx, (tuple, list)) else "")
        if isinstance(hx, (tuple, list)) and len(hx) == 2:
            got += " holding None"
        _fail(f"{name}: hx must be a pair (h_0, c_0) of tensors, got {got}")
    return tuple(hx)


def _uniform(rng, hidden_size, shape):
    """torch's initialisation of every recurrent weight and bias: uniform(+-1/sqrt(hidden))."""
    bound = 1.0 / math.sqrt(hidden_size)
    return rng.uniform(-bound, bound, shape)


def _init_weights(module, suffix, mode, fan_in, hidden_size, bias, rng, dtype, proj_size=0):
    """weight_ih, weight_hh (and bias_ih, bias_hh; weight_hr with an LSTM's proj_size) +
    suffix, torch's shapes and initialisation (_uniform)."""
    rows = _GATES[mode] * hidden_size
    shapes = [("weight_ih", (rows, fan_in)), ("weight_hh", (rows, proj_size or hidden_size))]
    if bias:
        shapes += [("bias_ih", (rows,)), ("bias_hh", (rows,))]
    if proj_size:
        shapes += [("weight_hr", (proj_size, hidden_size))]
    for kind, shape in shapes:
        setattr(module, f"{kind}{suffix}",
                Parameter(_uniform(rng, hidden_size, shape).astype(dtype)))


def _reset_parameters(self):
    """torch's reset_parameters of a recurrent layer or cell: every parameter drawn again,
    uniform(+-1/sqrt(hidden_size)), from graphc.nn's generator (manual_seed), in place
    (compiled plans read these arrays)."""
    for _, p in self.named_parameters():
        p.data[...] = _uniform(_rng(None), self.hidden_size, p.data.shape)


def _weights(module, suffix):
    """(weight_ih, weight_hh, bias_ih, bias_hh) + suffix; the biases None without bias."""
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    return [getattr(module, f"{kind}{suffix}") for kind in names] + \
        ([None, None] if not module.bias else [])


def _step(mode, gates_x, h, c, w_hh, b_hh, w_hr=None):
    """One step of a cell: gates_x is x @ W_ih^T + b_ih for this step, h and c (N, H) (c
    is LSTM's only) -> (h, c). w_hr: an LSTM's projection (proj_size, H), h then
    (N, proj_size), as torch's."""
    gates_h = F.matmul(h, F.transpose(w_hh))
    if b_hh is not None:
        gates_h = gates_h + b_hh
    H = F._shape(w_hh)[0] // _GATES[mode]  # (w_hh's columns are proj_size with one)
    if mode == "RNN_TANH":
        return F.tanh(gates_x + gates_h), c
    if mode == "RNN_RELU":
        return F.relu(gates_x + gates_h), c
    if mode == "GRU":  # r, z, n; the reset gate scales W_hn h + b_hn (torch's form)
        r = F.sigmoid(gates_x[..., :H] + gates_h[..., :H])
        z = F.sigmoid(gates_x[..., H:2 * H] + gates_h[..., H:2 * H])
        n = F.tanh(gates_x[..., 2 * H:] + r * gates_h[..., 2 * H:])
        return (1.0 - z) * n + z * h, c
    gates = gates_x + gates_h  # LSTM: i, f, g, o
    i, f = F.sigmoid(gates[..., :H]), F.sigmoid(gates[..., H:2 * H])
    g, o = F.tanh(gates[..., 2 * H:3 * H]), F.sigmoid(gates[..., 3 * H:])
    c = f * c + i * g
    h = o * F.tanh(c)
    return (h if w_hr is None else F.matmul(h, F.transpose(w_hr))), c


def _input_gates(x, w_ih, b_ih):
    """x @ W_ih^T + b_ih over x's leading axes (every time step of a layer at once)."""
    gates = F.matmul(x, F.transpose(w_ih))
    return gates if b_ih is None else gates + b_ih


def _mode(name, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        _fail(f"{name}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return f"RNN_{nonlinearity.upper()}"


class _Recurrent(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, rng=None,
                 dtype="float32", proj_size=0):
        name = type(self).__name__
        _check_sizes(name, input_size=input_size, hidden_size=hidden_size,
                     num_layers=num_layers)
        dtype = _layer_dtype(name, dtype)
        if not (is_int(proj_size) and 0 <= proj_size < hidden_size):
            _fail(f"{name}: proj_size must be an int from 0 (none) to hidden_size - 1 "
                  f"({hidden_size - 1}), as torch's, got {proj_size!r}")
        if not is_real(dropout) or not 0.0 <= dropout <= 1.0:  # (1: as torch's and Dropout's)
            _fail(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:  # torch's warning: nothing to drop between
            warnings.warn(f"{name}: dropout is applied between layers, after all but the "
                          f"last, so a dropout of {dropout} does nothing with num_layers=1",
                          stacklevel=user_stacklevel())
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "input_size", int(input_size))
        object.__setattr__(self, "hidden_size", int(hidden_size))
        object.__setattr__(self, "num_layers", int(num_layers))
        object.__setattr__(self, "bias", bool(bias))
        object.__setattr__(self, "batch_first", bool(batch_first))
        object.__setattr__(self, "bidirectional", bool(bidirectional))
        object.__setattr__(self, "proj_size", int(proj_size))
        rng = _rng(rng)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else (proj_size or hidden_size) * directions
            for suffix in self._suffixes(layer):
                _init_weights(self, suffix, mode, fan_in, hidden_size, bias, rng, dtype,
                              int(proj_size))
        # between layers, in training, as torch's (not after the last one); a float, as
        # torch's attribute, read at every call
        object.__setattr__(self, "dropout", float(dropout))

    def _suffixes(self, layer):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    reset_parameters = _reset_parameters

    @property
    def _all_weights(self):
        """torch's: each layer's, then direction's, parameter names, in torch's order
        (weight_ih, weight_hh, bias_ih, bias_hh, weight_hr), those the layer has."""
        kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else []) \
            + (["weight_hr"] if self.proj_size else [])
        return [[f"{kind}{suffix}" for kind in kinds]
                for layer in range(self.num_layers) for suffix in self._suffixes(layer)]

    @property
    def all_weights(self):
        """torch's: a list per layer and direction of its parameters (the layer's own
        Parameter objects), named as in _all_weights."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self):
        """torch's packs the weights into one cuDNN buffer; graphc's are arrays already, so
        this does nothing (code that calls it, as torch's RNN code often does, runs)."""

    def extra_repr(self):  # torch's RNNBase's: the sizes, then each setting not its default
        return f"{self.input_size}, {self.hidden_size}" + "".join(
            f", {name}={getattr(self, name)}" for name, default in (
                ("proj_size", 0), ("num_layers", 1), ("bias", True), ("batch_first", False),
                ("dropout", 0.0), ("bidirectional", False)) if getattr(self, name) != default)

    def _direction(self, x, h0, c0, suffix, reverse, mask=None):
        """x (L, N, in) -> (outputs (L, N, H), h_n, c_n) of one layer and direction. mask
        (L, N, 1), a packed batch's: False past a sequence's length, where its state stays
        (so h_n is its state after its last step, and the reverse direction starts there)."""
        w_ih, w_hh, b_ih, b_hh = _weights(self, suffix)
        w_hr = getattr(self, f"weight_hr{suffix}") if self.proj_size else None
        gates_x = _input_gates(x, w_ih, b_ih)  # every step's input projection at once

        def step(carry, xs):
            gx, valid = xs if mask is not None else (xs, None)
            h, c = _step(self.mode, gx, *carry, w_hh, b_hh, w_hr)
            if valid is not None:
                h = F.where(valid, h, carry[0])
                c = None if c is None else F.where(valid, c, carry[1])
            return (h, c), h
        (h, c), ys = scan(step, (h0, c0), gates_x if mask is None else (gates_x, mask),
                          reverse=reverse)
        return ys, h, c

    def forward(self, input, hx=None):
        """input (L, N, in) (batch_first: (N, L, in)), unbatched (L, in), or a PackedSequence
        (whose output is one too, h_n in the batch's original order, as torch's)."""
        name, lstm = type(self).__name__, self.mode == "LSTM"
        packed, mask = isinstance(input, PackedSequence), None
        if packed or type(input).__name__ == "PackedSequence":  # (torch's: refused)
            _check_packed(input, name)
            if F._ndim(input.data) != 2:  # (padded, 1-d data would read as unbatched)
                _fail(f"{name}: a PackedSequence's data must be 2-d (sum of the lengths, "
                      f"{self.input_size}), got shape {tuple(F._shape(input.data))}")
        if packed:  # run padded, each sequence's state held past its length
            sequence = input
            input, lengths = pad_packed_sequence(sequence)  # (L, N, in), original order
            mask = np.arange(F._shape(input)[0])[:, None, None] < lengths[None, :, None]
        _check_input(name, input, f"(L, {self.input_size}) or 3-d")
        nd = len(F._shape(input))
        if nd not in (2, 3):
            _fail(f"{name}: input must be 2-d (L, {self.input_size}) or 3-d, got shape "
                  f"{tuple(F._shape(input))}")
        h0, c0 = _given_states(name, lstm, hx)
        # before the first op (expand_dims, swapaxes): a list met it, named by that op
        _check_dtypes(name, self.weight_ih_l0, input=input, **{"h_0" if lstm else "hx": h0},
                      c_0=c0)
        batched = nd == 3
        x = input if batched else F.expand_dims(input, 1)
        # read as a guarded setting: a plan traced with the other layout is not reused
        batch_first = batched and not packed and self._setting("batch_first", input)
        if batch_first:
            x = F.swapaxes(x, 0, 1)  # time first inside
        if F._shape(x)[-1] != self.input_size:
            _fail(f"{name}: input has {F._shape(x)[-1]} features, the layer takes "
                  f"{self.input_size}")
        length, batch = F._shape(x)[0], F._shape(x)[1]
        directions = 2 if self.bidirectional else 1
        state = (self.num_layers * directions, batch, self.hidden_size)
        h_state = state[:2] + (self.proj_size or self.hidden_size,)  # h is projected, c not
        h0 = self._initial(h0, h_state, batched, x, "h_0" if lstm else "hx")
        c0 = self._initial(c0, state, batched, x, "c_0")
        if length == 0:
            _fail(f"{name}: the input has no time steps")
        p = self._setting("dropout", input)
        # train()/eval(): another plan; off while gc.Trainer evaluates, as every Dropout
        drop = p > 0.0 and self._setting("training", input) and not _EVALUATING.depth
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * directions + d
                ys, h, c = self._direction(x, h0[k], c0[k], suffix, d == 1, mask)
                outs.append(ys)
                hs.append(h)
                cs.append(c)
            x = outs[0] if len(outs) == 1 else F.concat(outs, -1)
            if drop and layer < self.num_layers - 1:
                x = keyed_dropout(x, p)
        out = x
        h_n, c_n = F.stack(hs, 0), F.stack(cs, 0)
        if batch_first:
            out = F.swapaxes(out, 0, 1)
        if not batched:
            out, h_n, c_n = F.squeeze(out, 1), F.squeeze(h_n, 1), F.squeeze(c_n, 1)
        if packed:
            out = PackedSequence(_pack(out, sequence.batch_sizes, sequence.sorted_indices),
                                 *sequence[1:])
        return (out, (h_n, c_n)) if lstm else (out, h_n)

    def _initial(self, value, state, batched, x, what):
        """The initial state given (torch's shape, unbatched without N), or zeros."""
        if value is None:
            return F.zeros(state, F._dtype(x)) + F.zeros_like(x[:1, :, :1])
        want = state if batched else (state[0], state[2])
        if tuple(F._shape(value)) != tuple(want):
            _fail(f"{type(self).__name__}: {what} has shape {tuple(F._shape(value))}, "
                  f"expected {tuple(want)}")
        return value if batched else F.expand_dims(value, 1)


class RNN(_Recurrent):
    """torch.nn.RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (nonlinearity="relu":
    relu). forward(input, hx=None) -> (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, rng=None,
                 dtype="float32"):
        super().__init__(_mode("RNN", nonlinearity), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, rng, dtype)
        # torch's attribute (its code reads rnn.nonlinearity); forward reads mode, as torch's
        object.__setattr__(self, "nonlinearity", nonlinearity)


class GRU(_Recurrent):
    """torch.nn.GRU (gates r, z, n in that order). forward(input, hx=None) ->
    (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, rng=None, dtype="float32"):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype)


class LSTM(_Recurrent):
    """torch.nn.LSTM (gates i, f, g, o in that order). forward(input, hx=None) with
    hx = (h_0, c_0) -> (output, (h_n, c_n)). proj_size > 0: h_t = W_hr (o_t * tanh(c_t)),
    weight_hr_l{k} (proj_size, hidden_size), h and the output proj_size wide, as torch's."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, rng=None, dtype="float32"):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype, proj_size)


class _Cell(Module):
    """One step of a recurrent layer, as torch's RNNCellBase: the weights of the layer's
    first layer (without the _l0 suffix), and forward(input, hx=None) on an input (N, in) or
    an unbatched (in,)."""

    def __init__(self, mode, input_size, hidden_size, bias=True, rng=None, dtype="float32"):
        _check_sizes(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        dtype = _layer_dtype(type(self).__name__, dtype)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "input_size", int(input_size))
        object.__setattr__(self, "hidden_size", int(hidden_size))
        object.__setattr__(self, "bias", bool(bias))
        _init_weights(self, "", mode, input_size, hidden_size, bias, _rng(rng), dtype)

    reset_parameters = _reset_parameters

    def extra_repr(self):  # torch's RNNCellBase's: the sizes, then what is not the default
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else
                                                           ", bias=False") + (
            f", nonlinearity={self.nonlinearity}"
            if getattr(self, "nonlinearity", "tanh") != "tanh" else "")

    def _cell_mode(self, operand):
        return self.mode

    def forward(self, input, hx=None):
        name, lstm = type(self).__name__, self.mode == "LSTM"
        _check_input(name, input, f"({self.input_size},) or (N, {self.input_size})")
        nd = len(F._shape(input))
        if nd not in (1, 2):
            _fail(f"{name}: input must be 1-d ({self.input_size},) or 2-d (N, "
                  f"{self.input_size}), got shape {tuple(F._shape(input))}")
        if F._shape(input)[-1] != self.input_size:
            _fail(f"{name}: input has {F._shape(input)[-1]} features, the cell takes "
                  f"{self.input_size}")
        h0, c0 = _given_states(name, lstm, hx)
        # before the first op: a list met expand_dims, named by it, not by the cell
        _check_dtypes(name, self.weight_ih, input=input, **{"h_0" if lstm else "hx": h0},
                      c_0=c0)
        batched = nd == 2
        x = input if batched else F.expand_dims(input, 0)  # (N, in)
        h = self._initial(h0, x, batched, "h_0" if lstm else "hx")
        c = self._initial(c0, x, batched, "c_0") if lstm else None
        w_ih, w_hh, b_ih, b_hh = _weights(self, "")
        h, c = _step(self._cell_mode(input), _input_gates(x, w_ih, b_ih), h, c, w_hh, b_hh)
        if not batched:
            h, c = F.squeeze(h, 0), (None if c is None else F.squeeze(c, 0))
        return (h, c) if lstm else h

    def _initial(self, value, x, batched, what):
        """The state given ((N, H), unbatched (H,)), or zeros (N, H)."""
        if value is None:  # tied to x: its batch axis, symbolic or vmapped, is the state's
            return F.zeros((self.hidden_size,), F._dtype(x)) + F.zeros_like(x[:, :1])
        want = (F._shape(x)[0], self.hidden_size) if batched else (self.hidden_size,)
        if tuple(F._shape(value)) != tuple(want):
            _fail(f"{type(self).__name__}: {what} has shape {tuple(F._shape(value))}, "
                  f"expected {tuple(want)}")
        return value if batched else F.expand_dims(value, 0)


class RNNCell(_Cell):
    """torch.nn.RNNCell: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (nonlinearity="relu":
    relu). forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", rng=None,
                 dtype="float32"):
        super().__init__(_mode("RNNCell", nonlinearity), input_size, hidden_size, bias, rng,
                         dtype)
        object.__setattr__(self, "nonlinearity", nonlinearity)

    def _cell_mode(self, operand):
        """torch's RNNCell reads its nonlinearity at every call, so one set after
        construction is used (a guarded setting: a plan traced with the other is not
        reused), and a bad one is refused there."""
        return _mode("RNNCell", self._setting("nonlinearity", operand))


class GRUCell(_Cell):
    """torch.nn.GRUCell (gates r, z, n in that order). forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, rng=None, dtype="float32"):
        super().__init__("GRU", input_size, hidden_size, bias, rng, dtype)


class LSTMCell(_Cell):
    """torch.nn.LSTMCell (gates i, f, g, o in that order). forward(input, hx=None) with
    hx = (h_0, c_0) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, rng=None, dtype="float32"):
        super().__init__("LSTM", input_size, hidden_size, bias, rng, dtype)
