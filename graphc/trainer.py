"""`gc.Trainer`: a training loop for any model, loss and data source.

    trainer = gc.Trainer(loss, model.params(), gc.optim.AdamW(lr=1e-3), train_batches,
                         eval_batches=val_batches, steps=1000, clip_norm=1.0)
    trainer.fit("runs/mine")     # progress bar, evaluations, checkpoints, loss curve

- `loss(params, batch)` or `loss(params, batch, key, training)`: a scalar loss of a batch (a
  tuple of arrays); `key` is an int64 seed that changes every step (for dropout; in an
  evaluation one fixed by seed, step and batch, for a loss that samples there) and
  `training` is True for the training step, False when evaluating (the model runs as after
  model.eval() while evaluating, whatever its mode: every Dropout off, every module's
  `training` False). The training step runs
  the loss inside `nn.rng_key(key)`, so Dropout layers draw their masks from the step's key
  (checkpointed with the step) whether or not the loss uses `key` itself. The step runs the
  model in the modes the user set, as a torch loop: a BatchNorm in eval() (frozen) uses its
  running statistics and updates none; after model.train() the next step is traced again,
  and updates them from then on. The Buffers the step reads or writes are checkpointed
  (buffer/NAME, Trainer.buffers): a frozen BatchNorm's statistics and a constant
  register_buffer too, so that a strict model.load_state_dict loads the checkpoint.
- `train_batches`: a function `train_batches(rng)` returning a batch drawn with a numpy
  Generator, whose state is then the data position: it is checkpointed, so a resumed run
  draws the very batches an uninterrupted one would (bit-exact resume). Or an iterable of
  batches (a list, a re-iterable loader), gone through again for each epoch; the position
  is then the number of batches drawn, and resuming skips that many from the start, so the
  iterable must yield the same batches again. `eval_batches` likewise (an iterable: its
  first eval_iters batches are the evaluation).

One training step (loss, gradients, optional global-norm clipping, the optimiser's update) is
traced into one graph and compiled with the parameters and optimiser state donated: the plan
updates them in place. `fit()` adds what `graphc train` has: a progress bar with the loss and
samples (or tokens) per second, an evaluation every `eval_every` steps, an atomic pickle-free
checkpoint (parameters, optimiser state, RNG and histories) after each evaluation,
SIGINT/SIGTERM stopping at a step boundary with a save, a loss-curve PNG, and on a NaN or Inf
a re-run of the bad steps with the finite check naming the op, the last good checkpoint kept.

With `distributed=True` (under `mpiexec -n N`; graphc.distributed) every rank draws the same
global batch and trains on its rows of it; the step averages the loss and the gradients over
the ranks (allreduce ops, packed into overlapped buckets by passes.buckets) before clipping
and the update, so N ranks x B/N compute what 1 rank x B computes and every rank holds the
same parameters (rank 0's initial ones are broadcast to every rank at start-up, as DDP
does). Rank 0 alone writes checkpoints, the loss curve and progress; a checkpoint
resumes on any number of ranks. Dropout keys differ per rank.

With `precision="bf16-mixed"` or `"fp16-mixed"` the loss runs under gc.autocast (float32
parameters and optimiser state, half-precision activations and matmuls, a float32 loss);
float16 adds dynamic loss scaling (graphc/amp.py: a step whose gradients overflow is skipped
and halves the scale; the optimiser's count, which Adam's bias corrections use, counts the
updates made, while the learning-rate schedule follows the step, as with PyTorch's GradScaler),
its state checkpointed as amp/scale and amp/good_steps and the skips in the header, with
its growth and backoff settings (loss_scaler_settings: others refused on resuming unless
allow_changed_settings).
As torch's, each parameter has its own count of updates (Trainer.behind: the updates it
missed, having no gradient, frozen), checkpointed in the header (updates_behind).
`memory_limit` (bytes or a size such as "200MB", as gc.compile takes it): the training step
recomputes activations in its backward pass until its plan fits; `step_plan.remat_report`
says what that costs.

`gradient_accumulation_steps=N` (nanoGPT's and Hugging Face's; Lightning's
accumulate_grad_batches): one optimiser step per N micro-batches, each drawn from
train_batches (the data position counts micro-batches), on their mean gradient, so that with
a mean loss N micro-batches of B rows update the parameters as one batch of N*B rows does,
holding one micro-batch's activations at a time. The step, the schedule, clipping, loss
scaling, evaluations and checkpoints count optimiser steps; the loss a step reports is the
mean of its micro-batches' losses, and each micro-batch has its own dropout key. Two plans
do it: `step_plan` adds the gradients of a micro-batch's loss divided by N into gradient
sums (no all-reduce), called N times, then `update_plan` takes their sum, the mean
gradient (all-reducing it once under
data parallelism, as DDP's no_sync) and updates the parameters; with N=1 there is one
plan, the step as it always was. The header records N; resuming with another is refused
unless allow_changed_settings.

An optimiser whose lr is a gc.optim.ReduceLROnPlateau (torch's) is stepped with each periodic
validation loss (the one fit() takes before training excepted, and its last one at a step off
the eval_every grid, which is reported only), and its learning rate is an
input of the compiled step, a float64 scalar, so a reduction does not compile it again; its
state is checkpointed in the header (`lr_on_plateau`) and a resumed run continues it.

Settings changed during training take effect at the next step, as torch's param_groups: a
number lr (`trainer.optimizer.lr = 0.01`) is likewise an input of the step, read at each
step and checkpointed (`optimizer_lr`, see restore); so are the optimiser's other number
settings (its `hyperparameters`: weight decay, momentum, betas, eps, ...; those of 0 stay
constants, so one set to or from 0 compiles the step again), checkpointed too
(`optimizer_settings`, with its flags: nesterov, maximize, ...). A schedule (the lr's, a
setting's) is evaluated at each step with the step as a Python int, as .bind() evaluates it,
and fed in likewise, so a schedule of one's own need not trace and a replaced one compiles
nothing again. A setting that adds or drops a state slot (SGD's or RMSprop's momentum from
or to 0, amsgrad, centered) makes the state follow it at the next step, as torch's step
does (Trainer._follow_slots), and the step is compiled again for the new state. A decay
mask and the trainer's
clip_norm are guards of the step's plan (gc.optim.Optimizer.update), so a change compiles
the step again; so is gradient_accumulation_steps of both accumulation plans (the micro-batch plan divides
each micro loss by it; set from or to 1, it switches between the one plan and the two).

(`graphc/train.py` builds the GPT's trainer on this one; this module knows nothing of GPTs.)
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import itertools
import math
import numbers
import operator
import os
import re
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Mapping

import numpy as np

from ir.errors import GraphcError, a_type, user_location, user_stacklevel

from ir.ops.api import ClassTargetOutOfRange, cast, checking_class_targets
from ir.ops.precision import PRECISIONS, autocast, precision_dtype
from ir.types import finfo, is_float

from . import amp, checkpoint, nn, optim
from .files import LOCK_NAME, check_path, discard_stdout, exclusive_directory, \
    file_identity, fresh_directory, read_error, same_file, stdout_error, written_since
from .optim import _clip_norm, _count_setting, _flag, _is_number, clip_by_global_norm, \
    global_norm
from .optim_groups import update_at_own_counts
from .tracing import flatten, function_name, leaves_and_structure, tree_map, unflatten
from .transforms import Compiled, container_kind, traced_value_and_grad

CHECKPOINT = "checkpoint.npz"

# checkpoint array names of optimiser slots; Adam's keep the GPT checkpoints' names
_SLOT_PREFIX = {"m": "adam_m", "v": "adam_v", "v_max": "adam_v_max"}


def _slot_prefix(slot: str) -> str:
    """The checkpoint's member prefix of optimiser slot `slot` (adam_m/..., opt_momentum/...)."""
    return _SLOT_PREFIX.get(slot, f"opt_{slot}")


# the advice for a NaN that reaches only the gradient (Trainer._probe_hidden_non_finite)
_WHERE_HINT = ("A NaN or an Inf on the side of a `where` the loss does not take still reaches "
               "the gradient (0 times NaN is NaN), as in JAX: keep it out of both sides, the "
               "operand made safe too (JAX's double where: `gc.where(x > 0, "
               "gc.log(gc.where(x > 0, x, 1.0)), 0.0)`), not only the result")


# the probe cannot tell a masked value that no parameter reaches (its NaN reaches no gradient;
# review r9: a log of a negative in one batch's data at lr 1e3) from one that does, so the
# divergence hint stays beside the where advice
_IF_NO_PARAMETER = ("If that value depends on no parameter, its NaN reaches no gradient and "
                    "the step diverged for another reason: ")


class TrainingDiverged(GraphcError):
    """Training produced a NaN or an Inf; nothing non-finite was saved."""


def _count_property(name, low=0):
    """A Trainer setting that is a whole number >= `low`, checked (optim._count_setting)
    wherever it is set; read as fast as a plain attribute almost (a C getter)."""
    attr = f"_{name}"

    def set_checked(trainer, value):
        setattr(trainer, attr, _count_setting(f"Trainer: {name}", value, low))
    return property(operator.attrgetter(attr), set_checked)


def _restores(method):
    """Trainer.resume and restore (and a subclass's, which check the header first): with
    several ranks each reads its own file, so that a rank refusing it is every rank's
    failure (distributed.fail_together), and once every rank has restored they must hold
    one state (_agree_on_restored). Only the outermost call of a resume agrees: restore
    inside resume, or a subclass's around gc.Trainer's, is part of it."""
    @functools.wraps(method)
    def agreed(self, *args, **kwargs):
        if self.dist is None or self._restoring:
            return method(self, *args, **kwargs)
        self._restoring = True
        try:
            with self.dist.fail_together():
                result = method(self, *args, **kwargs)
        finally:
            self._restoring = False
        self._agree_on_restored()
        return result
    return agreed


class Trainer:
    def __init__(self, loss, params: dict, optimizer, train_batches, *, steps: int,
                 eval_batches=None, eval_every: int | None = None, eval_iters: int = 20,
                 clip_norm: float | None = None, seed: int = 0, units: str = "samples",
                 checkpoint_meta: dict | None = None, divergence_hint: str = "Try a lower "
                 "learning rate", pipeline: str = "default", fast_math: bool = False,
                 jit=None, distributed: bool = False, precision: str = "fp32",
                 loss_scaler=None, memory_limit=None, gradient_accumulation_steps: int = 1):
        if not isinstance(params, dict) or all(a is None for a in params.values()):
            raise GraphcError("Trainer: params must be a non-empty dict name -> array, as "
                              "model.params() gives")
        named = {}
        for name, a in params.items():  # np.array of a subtree was an object array, refused
            if named.setdefault(str(name), name) is not name:
                # the checkpoint names each array by the text (param/0): 0 and "0" would
                # share one
                raise GraphcError(f"Trainer: params has the keys {named[str(name)]!r} and "
                                  f"{name!r}, which name one checkpoint array "
                                  f"(param/{name}); rename one", (user_location(),))
            if isinstance(a, (dict, list, tuple)):  # as "dtype object is not supported"
                raise GraphcError(f"Trainer: params[{name!r}] is {a_type(a)}; params "
                                  "must be a flat dict name -> array, as model.params() gives "
                                  "(name the leaves of a nested tree, e.g. 'layer/w')",
                                  (user_location(),))
            dtype = None if a is None else np.asarray(a).dtype
            if dtype is not None and not is_float(dtype):  # (it failed in grad: "argument 0
                # has dtype bool"); torch lets only floating-point tensors require gradients
                raise GraphcError(f"Trainer: params[{name!r}] has dtype {dtype}; "
                                  "only floating-point parameters can be trained (cast it, or "
                                  "keep it out of the params)", (user_location(),))
        if units not in ("samples", "tokens"):
            raise GraphcError(f"Trainer: units must be 'samples' or 'tokens', got {units!r}")
        if isinstance(optimizer, type):  # (its init and update are callable: unbound methods)
            name = optimizer.__name__
            example = f"gc.optim.{name}(lr=...)" if getattr(optim, name, None) is optimizer \
                else f"{name}(...)"
            raise GraphcError(f"Trainer: optimizer must be an instance, e.g. {example}, got "
                              f"the class {name}", (user_location(),))
        if not all(callable(getattr(optimizer, m, None)) for m in ("init", "update")):
            bound = isinstance(optimizer, optim.BoundOptimizer)
            raise GraphcError(f"Trainer: optimizer must be an optimiser with init() and "
                              f"update(), such as gc.optim.AdamW(...), got "
                              f"{a_type(optimizer)}" + (
                                  " (pass the optimiser itself, not its .bind(...))"
                                  if bound else ""), (user_location(),))
        if isinstance(optimizer, optim.GradientTransformation):  # its update gives updates,
            # which the Trainer would take for the new parameters
            raise GraphcError(f"Trainer: {optimizer!r} follows optax's contract (update "
                              f"returns updates, not new parameters); pass graphc's "
                              f"{optimizer.capitalised}(...) (its arguments and defaults, "
                              "and for some its formulas, are torch.optim's, not optax's)",
                              (user_location(),))
        self.loss, self.optimizer = _with_key_and_mode(loss), optimizer
        self._user_loss = loss  # (the names it holds its models under: _model_names)
        self.plateau = _plateau(optimizer, eval_batches)
        # graphc's optimisers take the step their schedule is at and the lr (see _step_args)
        # (gc.optim.Groups takes the step alone, for its groups' schedules)
        takes = inspect.signature(optimizer.update).parameters \
            if isinstance(optimizer, (optim.Optimizer, optim.Groups)) else {}
        self._takes_step, self._takes_lr = "step" in takes, "step" in takes and "lr" in takes
        self._takes_settings = "step" in takes and "settings" in takes \
            and optimizer.reads_settings()
        # a number lr: the one the run started with, and the one it has now (_lr_input),
        # both in the checkpoint header (optimizer_lr) so that a resumed run goes on with
        # the lr it had reached (see restore)
        self._initial_lr = self._number_lr()
        self._initial_settings = self._saved_settings()  # likewise (optimizer_settings)
        self._initial_groups = self._group_settings()  # likewise each group's (Groups)
        self.train_batches = _Batches(train_batches, "train_batches")
        self.eval_batches = None if eval_batches is None else _Batches(eval_batches,
                                                                      "eval_batches")
        # whole numbers, each checked here and when set between steps (_count_property)
        self.steps, self.eval_iters, self.seed = steps, eval_iters, seed
        self.eval_every = max(1, self.steps // 10) if eval_every is None else eval_every
        self._accumulation = _count_setting(
            "Trainer: gradient_accumulation_steps", gradient_accumulation_steps, 1)
        self.clip_norm, self.units = clip_norm, units
        if checkpoint_meta is not None and not isinstance(checkpoint_meta, Mapping):
            # (dict() took a list of pairs as one, and failed on others with its own words)
            raise GraphcError(f"Trainer: checkpoint_meta must be a dict of settings (JSON "
                              f"values), e.g. {{'lr': 0.1}}, got the "
                              f"{type(checkpoint_meta).__name__} {checkpoint_meta!r}"[:200],
                              (user_location(),))
        self.checkpoint_meta = dict(checkpoint_meta or {})
        # the checkpoints this run wrote or restored (RESTORED: one of unknown path), each
        # with its file's identity then: fit() continues only these, and only as they were
        self._saved_to = {}
        # (a directory's real path, an ExitStack holding its lock, the lock's hold_again): _hold
        self._lock = None
        # the identity of fit's checkpoint at fit's start (None: none there), which a save
        # compares with where this trainer has not written or resumed it
        # (_refuse_replacing_another_runs)
        self._fit_found = None
        # the command running this trainer ("graphc train", or a script's name), whose
        # --out and --resume options its refusals' advice names (_said), not the Python
        # calls; None: the Python calls
        self.command = None
        try:  # checked now: its first save came after the steps before it (the work lost)
            checkpoint.check_header_settings(self.checkpoint_meta)
        except (TypeError, ValueError) as exc:
            raise GraphcError(f"Trainer: checkpoint_meta: {exc}", (user_location(),)) from None
        self.divergence_hint = divergence_hint
        self.plot_title, self.plot_ylabel = "training loss", "loss"  # of fit()'s loss.png
        # an entry of None is an empty subtree (as in JAX): passed to the loss as None, with
        # no optimiser state and nothing in a checkpoint
        self.names = [n for n, a in params.items() if a is not None]
        # mixed precision (graphc/amp.py): the loss runs under autocast with this half dtype;
        # parameters and optimiser state stay as given (float32 master weights)
        # (None is fp32, as precision_dtype takes it: one name, so that data-parallel ranks
        # given None and "fp32" agree in the start-up handshake)
        self._precision = "fp32" if precision is None else precision
        self.half = precision_dtype(precision, "Trainer")
        self.scaler = None  # float16 only: dynamic loss scaling
        if loss_scaler is not None and not isinstance(loss_scaler, amp.LossScaler):
            raise GraphcError(f"Trainer: loss_scaler must be a gc.amp.LossScaler, e.g. "
                              f"gc.amp.LossScaler(init_scale=2.0**16), got {loss_scaler!r}"
                              [:200], (user_location(),))
        # (a disabled one, GradScaler(enabled=use_fp16)'s idiom, asks for no scaling)
        if loss_scaler is not None and loss_scaler.enabled and self.half != np.float16:
            raise GraphcError(f"Trainer: a loss_scaler is for precision='fp16-mixed' (float16's "
                              f"narrow range); with precision={precision!r} no loss is scaled",
                              (user_location(),))
        if self.half == np.float16:
            self.scaler = loss_scaler or amp.LossScaler()
        self.amp_state = self.scaler.init() if self.scaler else None
        self.skipped_steps, self.step_skipped = 0, False  # steps an overflow skipped
        # the step from which every loss has been non-finite (None: the last one was finite),
        # and, in a finite check's re-run, a non-finite value in the step's batch: what a
        # divergence report names instead of a learning rate (_divergence, _diverged)
        self._non_finite_loss_since, self._non_finite_batch = None, None
        # in the re-run of a step whose loss was finite and gradient NaN (_diverged's
        # gradient_only): whether to probe the loss's forward (_probe_hidden_non_finite),
        # and (the step it was found at, the error naming the op that made a value there
        # the loss does not see)
        self._probe_hidden, self._hidden_non_finite = False, None
        self._forward_loss = None  # the probe's Compiled, made at its first use
        self.dist = None  # graphc.distributed when data-parallel
        self._restoring = False  # inside a resume or restore (_restores)
        if jit is not None and not isinstance(jit, (bool, np.bool_)):  # ("yes" was truthy)
            raise GraphcError(f"Trainer: jit must be None (numba's kernels where it is "
                              f"installed), True or False, got {jit!r}", (user_location(),))
        if _flag("Trainer: distributed", distributed):
            from . import distributed as dist
            # the names broadcast_ and the handshake take (sorted alike on every rank),
            # refused here in one line rather than by json's or sorted()'s raw TypeError
            dist.sorted_names(params, "Trainer(distributed=True): the parameter names")
            dist.init()
            self.dist = dist
            pipeline = f"{pipeline},bucket"  # the gradients' all-reduces, in buckets
        # the step plan updates these arrays in place (they are donated to it)
        self.params = {n: None if a is None else np.array(a, copy=True)
                       for n, a in params.items()}
        # each parameter's updates behind the optimiser's count (the steps it got no gradient
        # at: frozen, or unused by the loss), as BoundOptimizer.behind: torch counts each
        # parameter's own updates (state[p]["step"]), which Adam's bias corrections, SGD's
        # first momentum buffer and Adagrad's lr_decay follow. `_lagged`: the parameters
        # whose lag has been other than 0, the only ones a plan's guard reads (_UpdateLags)
        self.behind = {n: 0 for n in self.names}
        self._lagged = ()
        self.step = 0
        self.rng = np.random.default_rng(self.seed)
        self.history, self.val_history = [], []  # (step, loss)
        self.grad_norm = None  # of the last step
        self._good = None  # see mark_good
        # the training step's compiled functions, made by _plan_steps for the current
        # gradient_accumulation_steps: {accumulating: (its loss and gradients', update's)}
        self._compile_options = (pipeline, fast_math, jit, memory_limit)
        self._compiled_steps, self._grad_sums = {}, None
        self._eval_loss = Compiled(self._eval_function, pipeline, fast_math, jit=jit)
        # compile now, on a batch from a copy of the RNG (the training RNG stays untouched):
        # the plan's memory is checked and its compile time known before the first step
        first = self.train_batches.peek(self.rng)
        if self.dist is not None:
            self._handshake(first)
            # rank 0's initial parameters on every rank (after the handshake, which refuses
            # different shapes): as DDP, so that a rank-dependent init cannot leave each rank
            # training its own weights with the same averaged updates
            self.dist.broadcast_(self.params)
        # after the broadcast: an optimiser whose state copies the parameters (an EMA, a
        # Lookahead of one's own) would otherwise start each rank from its own weights
        self.state = optimizer.init(self.params)
        self._aside_slots = {}  # (slots a setting set off holds aside: _follow_slots)
        self._group_aside = {}  # (likewise each gc.optim.Groups group's: _follow_group_slots)
        self._plan_steps(self._shard(first))
        # the layers' Buffers the step reads or writes (BatchNorm's running statistics,
        # updated by every call in training mode; a frozen one's, a constant buffer):
        # checkpointed as buffer/NAME, and rank 0's on every rank, as DDP's
        # broadcast_buffers (see _broadcast_buffers)
        self._buffer_places = {}  # {name: (module, attribute)}, see _track_buffers
        self._written_buffers = set()  # the (id(module), attribute) of those it writes
        self._broadcast_places = set()  # the (id(module), attribute) of those broadcast
        self._track_buffers()
        self._broadcast_buffers()  # as DDP when built: rank 0's with its parameters
        self.eval_plan = (self._eval_loss.plan_for(self.params, self._shard(
            self.eval_batches.peek(self.rng)), self._eval_key(0))
            if eval_batches is not None else None)

    # each checked as the constructor checks it when set between steps (`trainer.steps =
    # 2000` extends a run): eval_every=0 was a ZeroDivisionError in fit, eval_iters=0
    # averaged no losses into a NaN reported as divergence, steps="5" or 2.5 were coerced
    steps = _count_property("steps")
    eval_every = _count_property("eval_every", 1)
    eval_iters = _count_property("eval_iters", 1)

    def _set_command(self, value):
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise GraphcError(f"Trainer: command must be a command's name (a non-empty str, "
                              f"such as 'my_script.py') or None, got {value!r}",
                              (user_location(),))
        self._command = value

    # (checked: "" made the refusals read "...;  does not replace it")
    command = property(operator.attrgetter("_command"), _set_command)

    def _set_seed(self, value):
        value = _count_setting("Trainer: seed", value)
        if hasattr(self, "rng"):  # set after construction: as if the Trainer were built with it
            if not (self.step or self.train_batches.position):
                self.rng = np.random.default_rng(value)  # the sampling, as the constructor's
            elif value != self._seed:
                # the batches drawn so far came from the old seed's sampling: no run of the
                # new seed drew them, so the run could not be reproduced from either seed
                raise GraphcError(f"Trainer: seed is fixed once training has started (step "
                                  f"{self.step}); build a Trainer with seed={value} to train "
                                  "with it", (user_location(),))
            # (the same seed once started: the sampling RNG goes on, not back to its start)
        self._seed = value

    # a C getter: the step's dropout key reads it every step
    seed = property(operator.attrgetter("_seed"), _set_seed)

    @property
    def precision(self) -> str:
        """The precision the step was compiled for: "fp32", "bf16-mixed" or "fp16-mixed"."""
        return self._precision

    @precision.setter
    def precision(self, value):
        # refused, not followed: the plans are traced under the autocast policy (not a
        # guard of them), and fp16-mixed adds a loss scale to the step's inputs and the
        # checkpoint; Lightning's Trainer fixes it when built too. A resume may change it.
        if value != self._precision:
            raise GraphcError(f"Trainer: precision is fixed when the Trainer is built (its "
                              f"step is compiled for {self._precision!r}); build a Trainer "
                              f"with precision={value!r} and resume this one's checkpoint "
                              "(precision may change on resume)", (user_location(),))

    @property
    def clip_norm(self) -> float | None:
        """The max global norm the step clips the gradients to (None: no clipping). Set
        between steps, it takes effect at the next one (a guard of the step's plan), checked
        as the constructor checks it: 0 would zero every update, a negative one ascend."""
        return self._clip_norm

    @clip_norm.setter
    def clip_norm(self, value):
        value = _clip_norm("Trainer: clip_norm", value)
        _refuse_two_clips(value, self.optimizer)
        self._clip_norm = value

    @property
    def gradient_accumulation_steps(self) -> int:
        """Micro-batches per optimiser step. Set between steps (`trainer.
        gradient_accumulation_steps = 4`, as Lightning's GradientAccumulationScheduler
        changes accumulate_grad_batches), it takes effect at the next step, as clip_norm
        does: both accumulation plans take it as a guard (the micro-batch plan divides each
        micro loss by it), and the step's plans are made again now (a change from or to 1
        switches between the one-plan step and the two)."""
        return self._accumulation

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, value):
        value = _count_setting("Trainer: gradient_accumulation_steps", value, 1)
        if value == self._accumulation:
            return
        self._accumulation = value
        # (step_plan too: the micro-batch plan divides by N, so the old one is stale)
        self._plan_steps(self._shard(self.train_batches.peek(self.rng)))

    def _plan_steps(self, batch):
        """Point _train_step and _update_step at the compiled step of the current
        gradient_accumulation_steps and plan it for `batch`: with 1 the one plan (and no
        update_plan); with more, step_plan adds each micro-batch's gradients into sums (one
        more copy of the parameters, held only while accumulating) and update_plan updates.
        Each is compiled once and kept: switching back reuses its plans."""
        accumulating = self._accumulation > 1
        if accumulating not in self._compiled_steps:
            # the budget is the training step's (its backward pass is what recomputation
            # helps), the micro-batches' when accumulating
            pipeline, fast_math, jit, memory_limit = self._compile_options
            self._compiled_steps[accumulating] = (
                Compiled(self._accumulate_function, pipeline, fast_math, donate_argnums=(1,),
                         jit=jit, memory_limit=memory_limit),
                Compiled(self._accumulated_update_function, pipeline, fast_math,
                         donate_argnums=(0, 1), jit=jit)) if accumulating else (
                Compiled(self._step_function, pipeline, fast_math, donate_argnums=(0, 1),
                         jit=jit, memory_limit=memory_limit), None)
        self._train_step, self._update_step = self._compiled_steps[accumulating]
        self._grad_sums = {n: None if a is None else np.zeros_like(a)
                           for n, a in self.params.items()} if accumulating else None
        self.step_plan = self._train_step.plan_for(*self._gradient_args(batch))
        self.update_plan = None  # gradient accumulation's second plan (see _plan_update)
        if accumulating:
            self._plan_update()

    @property
    def buffers(self) -> dict:
        """{name: Buffer} of those the step reads or writes and of their modules' other
        persistent ones (a frozen BatchNorm's count), checkpointed (as buffer/NAME),
        read from their layers now: a Buffer replaced since (`bn.running_mean = array`) is
        the one the step uses next. A Buffer of a module the loss never reaches is not
        here (nothing tells the Trainer of it). One registered with persistent=False is
        used by the step (and broadcast) but not checkpointed, as torch leaves it out of
        state_dict()."""
        self._track_buffers()
        return {n: getattr(m, a) for n, (m, a) in self._buffer_places.items()
                if nn._persistent(m, a)}

    def _tied_buffer_names(self) -> dict:
        """{buffer/OTHER: buffer/NAME} for each checkpointed Buffer held at several places
        (tied, `m.a.running_mean = m.b.running_mean`): the names of its other places, under
        one of which a checkpoint may hold it (before graphc named a tensor tied towards an
        earlier place by that place, as torch's first name, such a Buffer was saved under its
        later one, b.running_mean), which restore() takes as its own. Each such name is the
        one _named_places gave it then (numbered as it numbered a name two models' Buffers
        share: n2.running_mean_1), and none is a name of this trainer's (another model's
        n1.running_mean), which it would read for this one or take the shape of."""
        places = list(self._buffer_places.values())
        mine = set(self._buffer_places)
        tied = {}
        for name, b in self.buffers.items():
            for other in nn.place_names(b):
                if other != b.name:  # (the name this Buffer had with that place's base)
                    then = _named_places(places, {id(b): other})
                    saved = next(n for n, (m, a) in then.items() if getattr(m, a) is b)
                    if saved not in mine:
                        tied[f"buffer/{saved}"] = f"buffer/{name}"
        return tied

    def _names_by_model(self) -> dict:
        """{NAME: its name by model} of each Buffer tracked (see buffers): a name the Buffers
        of two separate models share (a `bn` layer in each) numbered in the order the step
        reaches the models (the first of each model's Buffers it reads or writes), where
        the Trainer's own names number it in the order it tracked them, which follows the
        layers' modes (a training BatchNorm's Buffers first, a frozen one's after) when it
        was built or a mode changed. A checkpoint written before buffer_models
        (_buffer_models), or by a trainer whose loss holds a model under no name found,
        records these (buffer_names), by which a resume gives each model its own whatever
        modes the resuming script set (_saved_buffer_names), as long as its step reaches
        the models in the same order."""
        places = list(self._buffer_places.values())
        reached = [*self._train_step.read_places(self.step_plan),
                   *self._train_step.written_places(self.step_plan), *places]
        rank = {}  # {id(a model's root module): its place in the order the step reaches it}
        for module, _ in reached:
            rank.setdefault(id(nn._root_of(module)), len(rank))
        by_model = _named_places(sorted(places, key=lambda place: rank[id(nn._root_of(
            place[0]))]))  # (sorted is stable: a model's own in the order tracked)
        named = {(id(m), a): name for name, (m, a) in self._buffer_places.items()}
        return {named[id(m), a]: name for name, (m, a) in by_model.items()}

    def _buffer_models(self, refuse=None, one_too=False) -> dict | None:
        """{NAME: [the model's name, its name in that model]} of each Buffer tracked, where
        the Buffers are several models': a model named by what the loss holds it under
        (_model_names: `a`, `self.model`), which neither the order the step reaches the
        models nor the layers' modes change; a Buffer held by two models, by the first
        of its places so named. None with one model, or where the loss holds a model
        under no name found (an nn.Module or callable object whose forward reads global
        models, a class attribute, a module's attribute): save() then records buffer_names
        as it did before buffer_models (_names_by_model; review r13 of s49: refusing that
        save failed trainers that saved before); with `refuse` ('Trainer.resume: ...', a
        file holding buffer_models) such a model is refused in one line beginning with
        it: its Buffers could not be given back to it, only guessed. `one_too`: a record
        of one model's too (a resume of a file holding several models' Buffers)."""
        roots = {id(nn._root_of(m)): nn._root_of(m) for m, _ in self._buffer_places.values()}
        if len(roots) < (1 if one_too else 2):
            return None
        names = _model_names(self._user_loss, roots)
        lost = next((n for n, (m, _) in self._buffer_places.items()
                     if id(nn._root_of(m)) not in names), None)
        if lost is not None:
            if refuse is None:
                return None
            model = type(nn._root_of(self._buffer_places[lost][0])).__name__
            raise GraphcError(f"{refuse}: the loss reaches the Buffers of several models, "
                              f"and graphc finds no name it holds the {model} holding "
                              f"{lost} under (a global, a variable it closes over, a "
                              "default of its parameters, an attribute of its object, or an "
                              "item of one of those), so a checkpoint could not give that "
                              "model its own Buffers back; hold each model under such a name",
                              (user_location(),))
        record = {}
        for name, (module, attr) in self._buffer_places.items():
            places = [*nn.places_holding(getattr(module, attr)), (module, attr)]
            record[name] = min([names[id(nn._root_of(m))], _dotted_place(m, a)]
                               for m, a in places if id(nn._root_of(m)) in names)
        return record

    def _saved_buffer_names(self, meta: dict, path: str | None = None) -> dict:
        """{buffer/NAME in the checkpoint: buffer/NAME of this trainer} for each Buffer whose
        name differs, by the header's buffer_names ({its name: its name by model}, written
        where the Buffers are several models'); a header without them (one model's, or
        written before they were kept) names them as this trainer does. `path`: the file,
        which a refusal names (_buffer_names_field)."""
        if "buffer_models" in meta:
            return self._moved_to_their_models(meta["buffer_models"], path)
        saved = meta.get("buffer_names")
        if saved is None:
            return {}
        if not isinstance(saved, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in saved.items()) \
                or len(set(saved.values())) != len(saved):
            raise checkpoint.CheckpointError(f"{_buffer_names_field(path)} must be "
                                             f"{{name: another name}} with no name twice, "
                                             f"got {saved!r}"[:300])
        mine = {by_model: name for name, by_model in self._names_by_model().items()}
        # (another model's, this trainer lacks: under its name by model, which is none of
        # this trainer's, for the refusal of the buffers this model lacks to name)
        moved = {f"buffer/{theirs}": f"buffer/{mine.get(by_model, by_model)}"
                 for theirs, by_model in saved.items() if mine.get(by_model, by_model) != theirs}
        read_as = {name: saved for saved, name in moved.items()}
        if len({read_as.get(f"buffer/{n}", f"buffer/{n}") for n in self.buffers}) \
                != len(self.buffers):
            raise checkpoint.CheckpointError(f"{_buffer_names_field(path)} names one of "
                                             f"the file's buffers as two of this model's, "
                                             f"{saved!r}"[:300])
        return moved

    def _moved_to_their_models(self, saved, path) -> dict:
        """_saved_buffer_names of a header's buffer_models ({its name: [the model's name,
        its name in that model]}, _buffer_models): each of the file's Buffers to the one of
        this trainer with the same model and name, one this trainer lacks to a name none of
        its own is (`b:scale`), for the refusal of the buffers this model lacks to name."""
        if not isinstance(saved, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and len(v) == 2
                and all(isinstance(part, str) for part in v) for k, v in saved.items()) \
                or len({tuple(v) for v in saved.values()}) != len(saved):
            raise checkpoint.CheckpointError(f"{_buffer_names_field(path, 'buffer_models')} "
                                             f"must be {{name: [model, name in it]}} with no "
                                             f"pair twice, got {saved!r}"[:300])
        mine = {tuple(pair): name for name, pair in (self._buffer_models(
            "Trainer.resume" if path else "Trainer.restore", one_too=True) or {}).items()}
        return {f"buffer/{theirs}": f"buffer/{mine.get(tuple(pair), ':'.join(pair))}"
                for theirs, pair in saved.items()
                if mine.get(tuple(pair), ":".join(pair)) != theirs}

    def _read_only_buffers(self) -> set:
        """The names (buffer/NAME) of the checkpointed Buffers no step so far has written: a
        frozen BatchNorm's statistics, a constant buffer. A checkpoint written before they
        were checkpointed lacks them, and a resume keeps the model's own (restore); they
        may hold an Inf (a mask's -inf) that is no divergence (non_finite)."""
        return {f"buffer/{n}" for n, (m, a) in self._buffer_places.items()
                if (id(m), a) not in self._written_buffers and nn._persistent(m, a)}

    def _track_buffers(self):
        """Add the Buffers the step reads or writes with the layers' modes as they are now,
        those it writes first (named as when only those were checkpointed). The step
        runs the model in the modes the user set (as a torch loop that never calls
        model.train(): a BatchNorm left in eval(), frozen for fine-tuning, uses its running
        statistics and updates none); after model.train() the next step is traced again and
        updates them, so a Trainer built while the model was in eval() tracks (checkpoints,
        restores, broadcasts) them from then on. A change of mode is found here, by the step
        plan's guards, and that step traced now, so a save or a resume before the next step
        holds them too; once tracked, a Buffer stays tracked (a checkpoint's arrays do not
        change with the mode). A Buffer read at one place and written at another (tied) is
        tracked once, at the place that came first.

        With them, after them, each such module's other persistent Buffers, which the step
        neither reads nor writes (a frozen BatchNorm's num_batches_tracked): a strict load
        of the checkpoint takes the module's whole state then, where it kept the fresh
        model's count (0), and a cumulative average (momentum=None) restarted from the
        next batch after model.train()."""
        if not self._train_step.guards_hold(self.step_plan):
            self.step_plan = self._train_step.plan_for(*self._gradient_args(self._shard(
                self.train_batches.peek(self.rng))))
        known = {(id(m), a) for m, a in self._buffer_places.values()}
        held = {id(getattr(m, a)): (id(m), a) for m, a in self._buffer_places.values()}
        written = self._train_step.written_places(self.step_plan)
        writes = {(id(m), a) for m, a in written}
        stepped = [*written, *self._train_step.read_places(self.step_plan)]
        modules = {id(m): m for m, _ in [*self._buffer_places.values(), *stepped]}
        others = [(m, a) for m in modules.values() for a, v in vars(m).items()
                  if isinstance(v, nn.Buffer) and nn._persistent(m, a)]
        new = []
        for m, a in [*stepped, *others]:
            place = held.setdefault(id(getattr(m, a)), (id(m), a))
            if place not in known:
                known.add(place)
                new.append((m, a))
            if (id(m), a) in writes:
                self._written_buffers.add(place)
        if new:
            self._buffer_places = _named_places([*self._buffer_places.values(), *new])

    # ---- the traced functions ----
    def _step_function(self, params, state, batch, key, amp_state=None, step=None, lr=None,
                       settings=None):
        value, grads = self._loss_and_grads(params, batch, key, amp_state)
        return self._update(params, state, value, grads, amp_state, step, lr, settings)

    def _accumulate_function(self, params, grad_sums, batch, key, amp_state=None):
        """A micro-batch's loss, and its gradients added to `grad_sums` (donated: updated in
        place), with the names of the parameters that get none (a structure, as the step's)."""
        count = self.gradient_accumulation_steps
        key.graph.guard(self, "gradient_accumulation_steps", count)  # (as the update's)
        # each micro loss divided by N before its backward pass, as nanoGPT's: the sums are
        # the mean gradient, and under fp16 loss scaling each micro-batch's float16
        # gradients are N times smaller than the loss scale alone would make them (the one
        # big batch's size), so they overflow no sooner than that batch's
        value, grads = self._loss_and_grads(params, batch, key, amp_state, divide_by=count)
        sums = {n: s if s is None or grads.get(n) is None else s + grads[n]
                for n, s in grad_sums.items()}
        return value, sums, {n: None for n in self.names if grads.get(n) is None}

    def _accumulated_update_function(self, params, state, loss, grad_sums, amp_state=None,
                                     step=None, lr=None, settings=None):
        """The step's update of the micro-batches' mean loss and summed gradients (their
        mean: each micro loss was divided by N; None: a parameter that got no gradient)."""
        # a constant of the plans: `trainer.gradient_accumulation_steps = 4` compiles both
        # again (the micro-batch plan divides by it)
        loss.graph.guard(self, "gradient_accumulation_steps", self.gradient_accumulation_steps)
        return self._update(params, state, loss, grad_sums, amp_state, step, lr, settings)

    def _loss_and_grads(self, params, batch, key, amp_state, divide_by=1):
        """The loss of a batch (unscaled) and its gradients (scaled by the loss scale), both
        of the loss divided by `divide_by` (a micro-batch's share of the step)."""
        # Dropout layers the loss calls draw their masks from the step's key, which is
        # checkpointed with the step, not from graphc.nn's generator (the graph's implicit
        # dropout_key input), which a resumed run would not continue bit for bit
        def loss(p):
            value = self._mixed_loss(p, batch, key, True)
            if divide_by != 1:
                value = value / divide_by
            return value if amp_state is None else self.scaler.scale(value, amp_state)
        # a parameter the loss does not use gets no gradient, and graphc's optimisers skip
        # it (no weight decay, no moments), as torch's skip a .grad of None; an optimiser of
        # the user's own gets zeros there, as before
        # (gc.optim.Groups: its groups' optimisers are graphc's, and skip it as well)
        skips = isinstance(self.optimizer, (optim.Optimizer, optim.Groups))
        with nn.rng_key(key):
            value, grads = traced_value_and_grad(loss, none_if_unreached=skips)(params)
        if skips and self.names and all(grads.get(n) is None for n in self.names):
            # (training runs, the loss never moves: said once, as a traced step is traced
            # once; not refused, a loss without parameters being allowed)
            warnings.warn("Trainer: no parameter gets a gradient: the loss reads none of the "
                          "params it is given (does it call model(x) where model.apply(params, "
                          "x) is meant?), or every one is frozen (requires_grad = False)",
                          stacklevel=user_stacklevel())
        if amp_state is not None and self.scaler.enabled:  # (a disabled one scaled nothing)
            value = value / amp_state["scale"]
        return value, grads

    def _update(self, params, state, value, grads, amp_state, step, lr, settings):
        """The gradients averaged over the ranks, unscaled, clipped, and the optimiser's
        update: -> (loss, gradient norm, params, state, the parameters left alone[,
        amp_state])."""
        if self.dist is not None:
            value, grads = self.dist.allreduce((value, grads), "mean")
        if amp_state is not None:  # unscaled; a step with an Inf or NaN gradient is skipped
            self._refuse_float16_gradients(grads)
            grads, finite, amp_state = self.scaler.unscale(grads, amp_state)
        # read as a constant of the plan: `trainer.clip_norm = 0.5` compiles the step again
        value.graph.guard(self, "clip_norm", self.clip_norm)
        # (the optimiser's clip_norm set since: its own guard traces the step again)
        _refuse_two_clips(self.clip_norm, self.optimizer)
        if self.clip_norm is not None:
            grads, norm = clip_by_global_norm(grads, self.clip_norm)
        else:
            norm = global_norm(grads)
        if settings is not None:  # the number settings too (see _settings_input)
            # (each the attribute's value: no select on a constant momentum's being 0)
            given = {"step": step, "lr": lr, "settings": optim._AttributeSettings(settings)}
        elif lr is not None:  # a number lr or a ReduceLROnPlateau's: an input, set between calls
            given = {"step": step, "lr": lr}
        elif step is not None:  # the schedule at the trainer's step, skipped ones included
            given = {"step": step}
        else:
            given = {}
        updated = self._update_at_own_counts(value.graph, grads, state, params, given)
        # the parameters this plan leaves alone (no gradient), as the output's structure
        # alone (no arrays): train_step counts the steps each one misses (behind)
        left_alone = {n: None for n in self.names if grads.get(n) is None}
        if amp_state is None:
            return (value, norm, *updated, left_alone)
        # a skipped step leaves the whole optimiser state as it was, its count too: the count
        # is the number of updates made, which Adam's bias corrections are computed from (as
        # torch's Adam, whose step() GradScaler does not call on an overflow, and as optax's
        # apply_if_finite); counting skipped steps made the first updates after a skip too
        # small (0.64 lr instead of lr after two skips). A checkpoint records the skips.
        params, state = self.scaler.select(finite, updated, (params, state))
        return value, norm, params, state, left_alone, amp_state

    def _refuse_float16_gradients(self, grads):
        """LossScaler.unscale's refusal of a float16 gradient, said by the parameter's name
        when the step is traced. Only parameters that get a gradient: a frozen float16 one
        (Embedding.from_pretrained(freeze=True) of a float16 table) has none, and torch's
        GradScaler.unscale_ skips it too (it checks .grad, not the parameter)."""
        if not self.scaler.enabled:  # (a disabled one passes float16 gradients, as torch's)
            return
        half = next((n for n in self.names if grads.get(n) is not None
                     and np.dtype(grads[n].dtype) == np.float16), None)
        if half is not None:
            raise GraphcError(f"Trainer: params[{half!r}] is float16 and gets a gradient; "
                              "precision='fp16-mixed' scales the loss for float32 parameters "
                              "(master weights), and torch's GradScaler refuses to unscale "
                              "float16 gradients too: give float32 parameters (or freeze it)",
                              (user_location(),))

    def _update_at_own_counts(self, graph, grads, state, params, given):
        """The optimiser's update with each parameter at its own count of updates, the
        optimiser's count less its lag (behind), as torch's state[p]["step"] and
        BoundOptimizer.step: parameters with the same lag are updated together, the lags
        constants of the plan (a guard: one changes only when a parameter that had no
        gradient for some steps gets one again, which traces the step anyway). Clipping by
        the optimiser's clip_norm is over all of them at once. Without lags: one update, the
        plan as it always was."""
        updated = [n for n in self.names if grads.get(n) is not None]
        lags = _UpdateLags(self, updated)
        graph.guard(lags, "lags", lags.lags)
        behind = {n: self.behind[n] for n in updated}
        if isinstance(self.optimizer, optim.Groups):  # (each group's at its own counts)
            # (by the names Groups gives the parameters, their text: params[0] is "0")
            return self.optimizer.update(grads, state, params, **given,
                                         behind={str(n): k for n, k in behind.items()})
        if not any(behind.values()) or not isinstance(self.optimizer, optim.Optimizer):
            # (an optimiser of one's own keeps no count per parameter: its state is its own)
            return self.optimizer.update(grads, state, params, **given)
        return update_at_own_counts(self.optimizer, grads, state, params, behind, given)

    def _mixed_loss(self, params, batch, key, training):
        """The loss, under autocast for a mixed precision; a float32 value either way."""
        if self.half is None:
            return _scalar_loss(self.loss(params, batch, key, training))
        with autocast(self.half):
            value = _scalar_loss(self.loss(params, batch, key, training))
        return cast(value, "float32")

    def _eval_function(self, params, batch, key):
        # every Dropout is off while evaluating (a loss(params, batch) cannot switch the
        # model to eval() itself, and evaluated with the training masks before); the key
        # (fixed by seed, step and batch) serves other random draws the loss makes, its own
        # too (a VAE samples its latent in evaluation), so an evaluation repeats exactly,
        # after a resume too
        with nn.rng_key(key), nn._evaluating():
            loss = self._mixed_loss(params, batch, key, False)
        return loss if self.dist is None else self.dist.allreduce(loss, "mean")

    # ---- one step, one evaluation ----
    def _shard(self, batch):
        """This rank's rows of a global batch (every rank draws the same global batch): the
        rows of each leaf of the batch's pytree, so a nested ((x1, x2), y) splits as (x, y)."""
        if self.dist is None or not batch:
            return batch
        if isinstance(batch, tuple) and all(isinstance(b, np.ndarray) for b in batch):
            arrays, structure = list(batch), None  # (the usual batch: no tree to walk)
        else:
            arrays, structure = leaves_and_structure(_rows_as_arrays(batch))
            if not arrays:
                return batch
            arrays = [np.asarray(b) for b in arrays]
        global_rows = arrays[0].shape[0] if arrays[0].ndim else None
        for k, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != global_rows:
                names = flatten(batch if structure is None else _rows_as_arrays(batch))[2]
                self._refuse_unsplittable(names[k], a, global_rows, names[0])
        rows = self.dist.shard(global_rows)
        parts = [a[rows] for a in arrays]
        return tuple(parts) if structure is None else unflatten(structure, parts)

    def _refuse_unsplittable(self, name, array, global_rows, first_name):
        """A batch element that is not a per-row array (a scalar weight, a per-class table):
        every rank draws the same global batch, so every rank raises this at the same step
        (rather than an IndexError on each, or an empty slice that failed on the last ranks
        alone, leaving the others waiting in the all-reduce)."""
        split = (f"but every batch element is split by rows across the {self.dist.size()} "
                 "ranks: its leading axis must be the global batch")
        if global_rows is not None:
            split += f" of {global_rows} rows (element {first_name}'s)"
        exc = GraphcError(f"Trainer(distributed=True): batch element {name} has shape "
                          f"{array.shape}, {split}; a value the whole batch shares belongs in "
                          "the loss function, not the batch", (user_location(),))
        exc.on_every_rank = True  # the same batch, so the same error on every rank
        raise exc

    def _handshake(self, first):
        """Every rank must train the same parameters with the same settings on the same
        data: refused at start-up (naming the difference) rather than a hang or a silent
        divergence. The first global batch stands for the data."""
        self.dist.handshake(  # (a numpy name as its Python number, which json takes)
            params={n.item() if isinstance(n, np.generic) else n:
                    None if a is None else [list(a.shape), str(a.dtype)]
                    for n, a in self.params.items()},
            optimizer=_optimizer_settings(self.optimizer, self.steps), steps=self.steps,
            seed=self.seed, gradient_accumulation_steps=self.gradient_accumulation_steps,
            clip_norm=self.clip_norm, settings=_jsonable(self.checkpoint_meta),
            # each rank scales its loss and unscales the averaged gradients by its own copy
            # of the scale: a rank of another precision, or whose scale grows or backs off
            # otherwise, averaged gradients of other scales and trained apart, silently.
            # (scaler's name sorts after precision, scaler_settings' after it: the first
            # difference said)
            precision=self.precision, **_scaler_facts(self.scaler),
            lr_on_plateau=self.plateau and self.plateau.settings(),
            data=batch_digest(first))

    def _eval_key(self, k):
        """The key of evaluation batch k: per rank as _key's, else a loss that samples (a
        VAE's) would draw the same noise for every rank's rows; rank 0 keeps one process's."""
        rank = 0 if self.dist is None else self.dist.rank()
        return np.int64(((self.seed * 1_000_003 + self.step) * 7919 + k + (1 << 50)
                         + (rank << 40)) % (1 << 62))

    def _key(self):
        """The dropout key of the next batch drawn for training. It counts the batches drawn
        (the data position, checkpointed), not steps: one key per micro-batch, none used
        twice after a resume with another gradient_accumulation_steps; without accumulation
        the position is the step, whose key it was before."""
        rank = 0 if self.dist is None else self.dist.rank()
        # modulo 2**63: the same key for every seed that fits, and any seed (default_rng
        # takes any) gives an int64 instead of an OverflowError at the first step
        drawn = self.train_batches.position
        return np.int64((self.seed * 1_000_003 + drawn + (rank << 40)) % (1 << 63))

    def _gradient_args(self, batch, key=None):
        """The arguments of the plan that runs the loss and its gradients (step_plan's);
        `key`: the batch's dropout key, taken before it was drawn (None: the next one's)."""
        if self._update_step is None:
            return self._step_args(batch, key)
        args = (self.params, self._grad_sums, batch, self._key() if key is None else key)
        return args if self.amp_state is None else args + (self.amp_state,)

    def _step_args(self, batch, key=None):
        return self._with_update_args((self.params, self.state, batch,
                                       self._key() if key is None else key))

    def _with_update_args(self, args):
        """`args` followed by the optimiser's inputs of the step: the loss scale, step, lr
        and number settings, as the update takes them."""
        # graphc's optimisers take the step their schedule is at (the count is the updates
        # made, less than the step after skipped fp16 steps, a float32 run resumed from such
        # a checkpoint too); another optimiser (or a subclass whose update() takes no step,
        # written before it could) evaluates its schedule at the count
        if self._takes_step:
            args += (self.amp_state, np.int64(self.step))
            lr, settings = self._lr_input(), self._settings_input()
            if settings is not None:  # (lr None: an optimiser of one's own without one)
                return args + (lr, settings)
            return args if lr is None else args + (lr,)
        return args if self.amp_state is None else args + (self.amp_state,)

    def _lr_input(self):
        """The optimiser's lr now, a float64 0-d array that is an input of the step plan (a
        Python float would be a constant of it, and `trainer.optimizer.lr = 0.01` between
        steps would go unseen), where it is a number, a ReduceLROnPlateau or a schedule (at
        this step: _scheduled); None for an optimiser that has none."""
        lr = self._checked_optimizer()
        if not self._takes_lr:
            return None
        if self.plateau is not None:
            value = self.plateau.lr
        elif callable(lr) and not hasattr(lr, "constant_value"):
            value = self._scheduled("lr", lr)
        else:
            value = self._number_lr()
        return None if value is None else np.asarray(value, np.float64)

    def _checked_optimizer(self):
        """The optimiser's lr, after refusing in one line a change of the optimiser the step
        cannot take (its lr became or stopped being a ReduceLROnPlateau) and making the state
        follow a setting that adds or drops a state slot (_follow_slots)."""
        lr = getattr(self.optimizer, "lr", None)  # (an optimiser of one's own may have none)
        if self.plateau is not None and lr is not self.plateau:
            raise GraphcError(f"Trainer: the optimizer's lr was a ReduceLROnPlateau, which the "
                              f"trainer steps and checkpoints, and is now {lr!r}; set the "
                              "plateau's lr (plateau.lr = x) or build a new Trainer",
                              (user_location(),))
        if self.plateau is None and isinstance(lr, optim.ReduceLROnPlateau):
            raise GraphcError("Trainer: the optimizer's lr became a ReduceLROnPlateau after "
                              "the Trainer was built, so nothing would step it; create it "
                              "before the Trainer", (user_location(),))
        if isinstance(self.optimizer, optim.Groups):  # each group's, by the same rule
            self._follow_group_slots()
        if isinstance(self.optimizer, optim.Optimizer):
            self._follow_slots()
        if isinstance(self.optimizer, optim.Optimizer) and self.optimizer.marks:
            # (SGD's "started" lacking from a state assigned from before it was kept: made
            # from each parameter's count of updates; no counts read for an optimiser that
            # keeps no marks, at every step)
            self.state = self.optimizer.follow_marks(self.state, optim.parameter_updates(
                self.state["count"], self.behind, self.names))
        if isinstance(self.optimizer, optim.Optimizer) and \
                set(self.state) != {"count", *self.optimizer.slots}:
            words = self.optimizer.describe_slots  # (torch's names, marks left out)
            raise GraphcError(f"Trainer: {type(self.optimizer).__name__}'s settings now keep "
                              f"{words(self.optimizer.slots)}, the trainer's state holds "
                              f"{words([s for s in self.state if s != 'count'])}, and a "
                              "slot not in its optional_slots cannot be held aside; set it "
                              "back, or build the Trainer with it", (user_location(),))
        return lr

    def _follow_slots(self):
        """Make the state hold the slots the optimiser's settings keep now, as a bound
        optimiser's step does (BoundOptimizer._state_for_settings), and as torch's step
        after a param_groups edit: a slot a setting set since adds (SGD's or RMSprop's
        momentum from 0, amsgrad, centered) starts as init makes it (SGD's buffer not
        started); one of the optimiser's `optional_slots` its settings no longer keep is
        held aside (self._aside_slots), unused, and serves again when the setting comes
        back, as torch's state keeps a momentum buffer while the momentum is 0. The step
        takes the state as an input, so the new one compiles it again, once. A slot held
        aside is checkpointed under its own name (state_arrays) and held aside again by
        restore(), as torch's state_dict keeps a momentum buffer while the momentum is 0.
        A slot neither kept nor optional (an optimiser of one's own) is left to the line
        _checked_optimizer gives."""
        self.state, self._aside_slots = _followed_slots(self.optimizer, self.state,
                                                        self._aside_slots, lambda: self.params)

    def _group_names(self) -> list:
        """[the names (self.params' keys) of gc.optim.Groups group i's parameters]; a group's
        state names each by its text (str(name)), as Groups' flatten does. Kept for the
        Groups it was made for (read at every step; the names and a Groups' selectors stay)."""
        made_for, groups = getattr(self, "_group_names_made", (None, None))
        if made_for is not self.optimizer:
            _, _, names, at = self.optimizer._split(self.params)
            keys = {str(n): n for n in self.names}
            groups = [[keys[n] for n, g in zip(names, at) if g == i]
                      for i in range(len(self.optimizer.optimizers))]
            self._group_names_made = (self.optimizer, groups)
        return groups

    def _restore_group_slots(self, arrays):
        """restore() for gc.optim.Groups: a group's optional slot (amsgrad's, a momentum
        buffer) the checkpoint holds and the group's state, made as the trainer was built,
        lacks, loaded: into the state where the group's restored settings keep it, else held
        aside (_follow_group_slots), as restore() does for a single optimiser's."""
        state = list(self.state)
        for i, (opt, mine) in enumerate(zip(self.optimizer.optimizers, self._group_names())):
            for slot in [s for s in (*opt.slots, *opt.optional_slots) if s not in state[i]]:
                keys = {n: f"{_OTHER_STATE}/{i}.{slot}.{n}" for n in mine}  # (str(n))
                if not all(k in arrays for k in keys.values()):
                    continue
                for n, key in keys.items():
                    a, p = np.asarray(arrays[key]), np.asarray(self.params[n])
                    like = (() if slot in opt.scalar_slots else p.shape,
                            np.dtype(opt._slot_dtype(slot, p.dtype)))
                    if (a.shape, a.dtype) != like:
                        raise checkpoint.CheckpointError(
                            f"checkpoint {key} is {a.dtype}{list(a.shape)}, the model needs "
                            f"{like[1]}{list(like[0])}")
                held = {str(n): np.array(arrays[k]) for n, k in keys.items()}
                if slot in opt.slots:
                    state[i] = {**state[i], slot: held}
                else:
                    self._group_aside.setdefault(i, {})[slot] = held
        self.state = state

    def _follow_group_slots(self):
        """_follow_slots and the marks' following (_checked_optimizer) for each group of a
        gc.optim.Groups, by a single optimiser's rule (torch's param groups: a group's
        `amsgrad` or `momentum` set mid-run, `trainer.optimizer.optimizers[1].amsgrad =
        True`, as `param_groups[1]["amsgrad"] = True`): the slots a group's settings keep
        now, one added as init makes it, one set off held aside (in memory:
        self._group_aside, {group: {slot: arrays}}) and serving again when the setting
        comes back; a slot neither kept nor optional, one line naming the group."""
        state = list(self.state)
        for i, (opt, mine) in enumerate(zip(self.optimizer.optimizers, self._group_names())):
            held = self._group_aside.get(i, {})
            state[i], held = _followed_slots(opt, state[i], held, lambda mine=mine: {
                str(n): self.params[n] for n in mine})
            self._group_aside[i] = held
            if opt.marks:
                state[i] = opt.follow_marks(state[i], optim.parameter_updates(
                    state[i]["count"], {str(n): self.behind[n] for n in mine},
                    map(str, mine)))
            if set(state[i]) != {"count", *opt.slots}:
                words = opt.describe_slots
                raise GraphcError(f"Trainer: optimizers[{i}] ({type(opt).__name__})'s "
                                  f"settings now keep {words(opt.slots)}, the group's state "
                                  f"holds {words([s for s in state[i] if s != 'count'])}, and "
                                  "a slot not in its optional_slots cannot be held aside; set "
                                  "it back, or build the Trainer with it", (user_location(),))
        if any(a is not b for a, b in zip(state, self.state)):
            self.state = state

    def _scheduled(self, name, schedule) -> float:
        """A schedule of the optimiser's at this step, evaluated here with a Python int, as
        .bind() evaluates it, and fed to the step as an input: a schedule of one's own need
        not trace (torch's LambdaLR ported as `lr=lambda step: ...` uses min() and
        math.cos), and replacing one compiles nothing again."""
        what = f"Trainer: the optimizer's {name} schedule at step {self.step}"
        value = optim._real(what, schedule(int(self.step)))
        if name != "lr":  # the setting's own rule, as for a number (beta1 in [0, 1), ...)
            try:
                return self.optimizer.checked_setting(name, value)
            except GraphcError as exc:
                raise GraphcError(f"{what}: {exc.message}", (user_location(),)) from None
        if value < 0:  # (an overflow to inf or a NaN is left to the step: training diverges)
            raise GraphcError(f"{what} must be >= 0, got {value}", (user_location(),))
        return value

    def _settings_input(self):
        """The optimiser's number settings (betas, eps, momentum, weight decay, ...), float64
        0-d inputs of the step plan as the lr is, so that `trainer.optimizer.beta1 = 0.8`
        between steps (torch's param_groups edits, OneCycleLR's cycled momentum) compiles
        nothing again; one set to or from 0 does (0 stays a constant of the plan), as it
        changes what the update computes. None for an optimiser that takes none (a subclass
        whose update reads its attributes: Optimizer.reads_settings)."""
        if not self._takes_settings:
            return None
        # (a setting of 0 stays a constant: its computation is left out of the plan; a
        # schedule is evaluated here at the step, as the lr's is: _scheduled)
        numbers = {name: value for name, value in self._number_settings().items() if value != 0}
        scheduled = {name: self._scheduled(name, value) for name in
                     self.optimizer.hyperparameters
                     if callable(value := getattr(self.optimizer, name, None))
                     and not hasattr(value, "constant_value")}
        return {name: np.asarray(value, np.float64)
                for name, value in {**numbers, **scheduled}.items()}

    def _number_lr(self, group=None):
        """The optimiser's lr where it is a number (or gc.optim.constant), else None.
        `group`: that group's optimiser's, of a gc.optim.Groups (which takes no plateau)."""
        if group is not None:
            return getattr(self.optimizer.optimizers[group].lr, "constant_value", None)
        return getattr(getattr(self.optimizer, "lr", None), "constant_value", None) \
            if self.plateau is None else None

    def step_inputs(self, batch) -> list:
        """The step plan's input arrays for a batch at the current step (for profiling)."""
        return self._train_step.plan_inputs(self._gradient_args(tuple(batch)))

    def _plan_update(self):
        """update_plan, for the accumulate plan's result (which parameters get gradients and
        the loss's dtype), known from step_plan's outputs before any step runs."""
        result = unflatten(self.step_plan.graph.output_tree, self.step_plan.graph.outputs)
        if self._train_step.written_places(self.step_plan):  # (then the Buffers' values too)
            result = result[0]
        loss, _, left_alone = result
        self.update_plan = self._update_step.plan_for(*self._update_args(
            np.zeros((), loss.dtype), left_alone))

    def _update_args(self, loss, left_alone):
        sums = {n: None if n in left_alone else s for n, s in self._grad_sums.items()}
        return self._with_update_args((self.params, self.state, loss, sums))

    def train_step(self, checked: bool = False) -> float:
        """One step; `checked` runs it with the plan's finite check, which raises GraphcError
        naming the first op that produced a NaN or an Inf."""
        self._checked_optimizer()  # (before a batch is drawn)
        self._track_buffers()  # before the draw: a change of mode traces on the next batch
        self._non_finite_batch = None  # (this step's micro-batches: see _next_batch)
        if self._update_step is not None:
            return self._finish_step(*self._accumulated_step(checked))
        key, batch = self._next_batch(checked)
        # errstate: a NaN or an Inf is the trainer's to report (_bad_step, _diverged name
        # the op in one line); numpy's overflow warnings only went before it on stderr
        compiled = len(self._train_step.recompiles)
        with np.errstate(all="ignore"):
            loss, norm, self.params, self.state, left_alone, *amp_state = self._call(
                self._train_step, self._step_args(batch, key), checked)
        if len(self._train_step.recompiles) != compiled:  # a setting changed: the new plan
            self.step_plan = self._train_step.plan_for(*self._step_args(batch, key))
        return self._finish_step(loss, norm, left_alone, amp_state)

    def _next_batch(self, checked=False):
        """(the dropout key, this rank's part of the next batch drawn), the watchdog told;
        `checked`: the batch's class targets probed first (_probe_class_targets)."""
        key = self._key()  # (before the draw counts its batch)
        batch = self.train_batches.draw(self.rng)
        if checked:
            self._probe_class_targets(batch, key)
            self._non_finite_batch = self._non_finite_batch or self._probe_non_finite_data(
                batch, key, self.step + 1)
            if self._probe_hidden:  # (with the step it was found at: _diverged)
                hidden = self._probe_hidden_non_finite(batch, key)
                self._hidden_non_finite = hidden and (self.step + 1, hidden)
        batch = self._shard(batch)
        if self.dist is not None:
            self.dist.beat(self.step)
        return key, batch

    def _accumulated_step(self, checked):
        """The gradient sums of gradient_accumulation_steps micro-batches, then one update
        of their mean: -> (loss, gradient norm, the parameters left alone, [amp_state])."""
        for sums in self._grad_sums.values():  # here, not after the update: a step stopped
            if sums is not None:  # half-way (a finite check's error) leaves sums behind
                sums.fill(0)
        count, total, left_alone = self.gradient_accumulation_steps, 0.0, None
        compiled = [len(self._train_step.recompiles), len(self._update_step.recompiles)]
        for _ in range(count):
            key, batch = self._next_batch(checked)
            with np.errstate(all="ignore"):  # (as train_step's)
                loss, self._grad_sums, micro_left_alone = self._call(
                    self._train_step, self._gradient_args(batch, key), checked)
            total += float(loss)
            # left alone only if no micro-batch reached it: one reached by an earlier
            # micro-batch alone has a sum the update must take, as the one big batch's.
            # (Ranks agree: each draws the same micro-batch shapes, which decide this.)
            left_alone = micro_left_alone if left_alone is None else \
                {n: None for n in left_alone if n in micro_left_alone}
        args = self._update_args(np.asarray(total, loss.dtype), left_alone)  # (each / N)
        with np.errstate(all="ignore"):
            loss, norm, self.params, self.state, left_alone, *amp_state = self._call(
                self._update_step, args, checked)
        if len(self._train_step.recompiles) != compiled[0]:  # a setting changed: the new plans
            self.step_plan = self._train_step.plan_for(*self._gradient_args(batch, key))
        if len(self._update_step.recompiles) != compiled[1]:
            self.update_plan = self._update_step.plan_for(*args)
        return loss, norm, left_alone, amp_state

    def _finish_step(self, loss, norm, left_alone, amp_state) -> float:
        """The step's bookkeeping after its plans ran: buffers, step, loss scale, lags and
        the loss history. -> the step's loss."""
        self._broadcast_buffers()
        loss = float(loss)
        self.grad_norm = float(norm)
        self.step += 1
        if amp_state:  # a halved scale: this step's gradients overflowed and it was skipped
            self.step_skipped = float(amp_state[0]["scale"]) < float(self.amp_state["scale"])
            self.skipped_steps += self.step_skipped
            self.amp_state = amp_state[0]
        if left_alone and not self.step_skipped:  # (a skipped step updated none)
            self._fall_behind(left_alone)
        if math.isfinite(loss) or not self.step_skipped:
            self.history.append((self.step, loss))
        if math.isfinite(loss):
            self._non_finite_loss_since = None
        elif self._non_finite_loss_since is None:
            self._non_finite_loss_since = self.step
        return loss

    def _fall_behind(self, names):
        """Count a step that made no update to the parameters `names` (no gradient)."""
        for n in names:
            self.behind[n] += 1
        self._lagged += tuple(n for n in names if n not in self._lagged)

    def _broadcast_buffers(self):
        """Rank 0's tracked Buffers on every rank, non-persistent ones too, as DDP's
        broadcast_buffers: each one the first time (when the Trainer is built, or once
        tracked after a change of mode), then those the step writes. One it only reads (a
        mask, a frozen BatchNorm's statistics) cannot change during training, and sent
        again after every step a 512x512 float64 mask cost 2 MB a step. (Every rank traces
        the same plan, so the ranks agree on which are sent.)"""
        if self.dist is None:
            return
        due = {n: (m, a) for n, (m, a) in self._buffer_places.items()
               if (id(m), a) in self._written_buffers or (id(m), a) not in self._broadcast_places}
        if due:
            self.dist.broadcast_({n: getattr(m, a).data for n, (m, a) in due.items()})
            self._broadcast_places.update((id(m), a) for m, a in due.values())

    def _call(self, function, args, checked):
        """function.call(args, checked). With several ranks a finite check's error is every
        rank's, at the same call: the NaN may be one rank's alone (its batch), and a rank
        stopping there left the others waiting in the next call's all-reduce until the
        watchdog's timeout, which then blamed the rank that had found the op."""
        if not checked or self.dist is None:
            return function.call(args, checked)
        with self.dist.fail_together((GraphcError,)):
            return function.call(args, checked)

    def evaluate(self, batches=None, checked: bool = False, record: bool = True) -> float:
        """Mean loss of eval_iters batches drawn from an RNG seeded by the step (the training
        RNG is left alone), with training=False."""
        source = self.eval_batches if batches is None else _Batches(batches, "batches")
        if source is None:
            raise GraphcError("Trainer.evaluate: no eval_batches were given")
        rng = np.random.default_rng([self.seed, 7, self.step])
        losses = []
        with np.errstate(all="ignore"):  # as in train_step
            for k, batch in enumerate(source.sample(rng, self.eval_iters)):
                if checked:
                    self._probe_class_targets(batch, self._eval_key(k))
                losses.append(float(self._call(self._eval_loss, (
                    self.params, self._shard(batch), self._eval_key(k)), checked)))
        loss = float(np.mean(losses))
        if record:
            self.val_history.append((self.step, loss))
        return loss

    # ---- divergence ----
    def _other_state(self, state=None):
        """The state of an optimiser of one's own (only init() and update(): any pytree),
        checkpointed leaf by leaf: -> (its structure, {checkpoint name: array}), each leaf
        named by its path in the tree (`opt_state/buf.w`), by its position where two paths
        read alike. `state`: that one instead of self.state."""
        leaves, structure, names = flatten(self.state if state is None else state)
        if len(set(names)) != len(names) or names == [""]:  # ("": the state is one array)
            names = [str(i) for i in range(len(leaves))]
        return structure, {f"{_OTHER_STATE}/{name}": np.asarray(leaf)
                           for name, leaf in zip(names, leaves)}

    def state_arrays(self) -> dict:
        """Parameters and optimiser slots under their checkpoint names, the slots held aside
        too (_follow_slots: a momentum buffer while the momentum is 0), which restore()
        holds aside again (a checkpoint holding none has the arrays it always had)."""
        arrays = {f"param/{n}": self.params[n] for n in self.names}
        for slot in _slots(self.optimizer):
            prefix = _slot_prefix(slot)
            arrays.update({f"{prefix}/{n}": self.state[slot][n] for n in self.names})
        for slot, held in self._aside_slots.items():
            arrays.update({f"{_slot_prefix(slot)}/{n}": held[n] for n in self.names})
        if isinstance(self.optimizer, optim.Groups) and any(self._group_aside.values()):
            # a group's slots held aside too, under the names they have when kept (restored
            # aside again: _restore_group_slots)
            arrays.update(self._other_state([{**s, **self._group_aside.get(i, {})}
                                             for i, s in enumerate(self.state)])[1])
        elif not isinstance(self.optimizer, optim.Optimizer):
            arrays.update(self._other_state()[1])
        if self.amp_state is not None:  # float16's loss scale
            arrays.update({f"amp/{k}": v for k, v in self.amp_state.items()})
        arrays.update({f"buffer/{n}": b.data for n, b in self.buffers.items()})
        return arrays

    def non_finite(self) -> str | None:
        """The first parameter, optimiser or buffer array holding a NaN or an Inf, or None."""
        arrays = self.state_arrays()
        prefixes = ["param"] + [_slot_prefix(s) for s in _slots(self.optimizer)]
        for n in self.names:
            for prefix in prefixes:
                if not np.isfinite(arrays[f"{prefix}/{n}"]).all():
                    return f"{prefix}/{n}"
        for key in arrays:
            if key.split("/", 1)[0] == _OTHER_STATE and not np.isfinite(arrays[key]).all():
                return key
        constants = self._read_only_buffers()  # (a mask's -inf is no divergence; a NaN is)
        for n, b in self.buffers.items():
            if checkpoint.has_nan(b.data) if f"buffer/{n}" in constants else \
                    not np.isfinite(b.data).all():
                return f"buffer/{n}"
        return None

    def mark_good(self) -> None:
        """Remember the current (finite) state, to re-run from it if training diverges: the
        step plan updates the arrays in place, so the state before a bad step is gone. Every
        Buffer of the models the step reaches too (_buffer_values): those registered with
        persistent=False, which state_arrays() (the checkpoint) leaves out, and those the
        step touches only after a change of mode: a count the re-run steps advance again
        counted them twice."""
        self._good = (self.step, self.rng.bit_generator.state, self.train_batches.position,
                      {k: a.copy() for k, a in self.state_arrays().items()},
                      list(self.history), list(self.val_history), self.skipped_steps,
                      self.plateau and self.plateau.state_dict(),
                      getattr(self.optimizer, "lr", None), dict(self.behind),
                      self._buffer_values())

    def _buffer_values(self) -> list:
        """[(module, attr, a copy of its array)] of every Buffer of the models the step
        reaches, persistent or not, for _put_back_buffers: those the step reads or writes
        now and the rest of each model's, which it may first touch after a change of mode
        (a step in eval(), mark_good, then model.train(): the count a training forward
        keeps was not rewound, and advanced twice over the re-run steps)."""
        self._track_buffers()
        return [(m, a, np.array(getattr(m, a).data)) for m, a in self._model_buffer_places()]

    def _model_buffer_places(self) -> list:
        """(module, attribute) of the Buffers tracked (_track_buffers), then of every other
        Buffer of the models the step reaches: those of its Buffers' modules and of the
        layers whose mode or settings its trace read (its guards)."""
        places = list(self._buffer_places.values())
        plan = self.step_plan
        reached = [m for m, _ in [*places, *self._train_step.read_places(plan),
                                  *self._train_step.written_places(plan)]]
        reached += [o for o in self._train_step.guarded_objects(plan) if isinstance(o, nn.Module)]
        roots = {id(root): root for root in map(nn._root_of, reached)}
        seen = {(id(m), a) for m, a in places}
        for root in roots.values():
            for _, (m, a) in root._parameter_owners(kind=nn.Buffer):
                if (id(m), a) not in seen:
                    seen.add((id(m), a))
                    places.append((m, a))
        return places

    @staticmethod
    def _put_back_buffers(values) -> None:
        """Each Buffer of _buffer_values() given its value back, in place (the plans read
        these arrays): the one at that place now (`bn.running_mean = array` since)."""
        for module, attr, value in values:
            getattr(module, attr).data[...] = value

    @property
    def good_step(self) -> int:
        return self._good[0]

    def _probe_class_targets(self, batch, key):
        """The loss evaluated eagerly on a global batch (the same on every rank) with its
        class targets checked (checking_class_targets): a target out of range is raised as
        PyTorch raises it, not reported as divergence to cure with a lower learning rate,
        when it is what made the loss non-finite (the loss with such targets taken in range
        is finite; a padding target the loss masks out is not blamed). Only the finite
        check's re-run probes."""
        def finite_loss(in_range):
            with checking_class_targets(in_range) as found, nn.rng_key(key), \
                    nn._evaluating():
                loss = self._mixed_loss(self.params, batch, key, False)
            return found, bool(np.all(np.isfinite(np.asarray(loss))))

        with np.errstate(all="ignore"):
            try:
                found, finite = finite_loss(False)
                if not found or finite:
                    return
                finite = finite_loss(True)[1]
            except Exception:  # noqa: BLE001 - the probe looks for targets only; anything
                return  # else is the checked plan's to report, as it was before the probe
        if finite:
            raise found[0]

    def _probe_non_finite_data(self, batch, key, step) -> str | None:
        """A NaN or an Inf in the global batch of `step` (_non_finite_in) that made the loss
        non-finite, said in words: the loss evaluated eagerly as the step runs it (training:
        BatchNorm's batch statistics, which carry one row's NaN to every row, and the step's
        dropout masks; the buffer updates it makes are dropped) is not finite with the batch
        as drawn and is with those values taken as 0, or as their leaf's finite mean (a loss
        taking log of the data, or dividing by it, is not finite at 0). One the loss masks
        out (a missing value under a `where`), or beside a loss that is not finite without it
        (parameters a learning rate blew up), is not blamed: None. Only the finite check's
        re-run probes."""
        found = _non_finite_in(batch, step)
        if found is None:
            return None

        def finite_loss(values):
            with nn.rng_key(key), nn.collect_buffer_updates():
                loss = self._mixed_loss(self.params, values, key, True)
            return bool(np.all(np.isfinite(np.asarray(loss))))
        # a gc.compile'd function the loss calls writes its plan's Buffer updates in place
        # after each call, past the collector: the step's Buffers get their values back
        with self._buffers_put_back():
            try:
                if finite_loss(batch) or not any(
                        finite_loss(tree_map(lambda leaf: _with_finite(leaf, fill), batch))
                        for fill in ("zero", "mean")):
                    return None
            except Exception:  # noqa: BLE001 - as _probe_class_targets': the checked plan
                return None  # reports what else went wrong
        return found

    @contextlib.contextmanager
    def _buffers_put_back(self):
        """A probe's forward runs, its floating-point warnings off, and every Buffer the
        step uses gets its value back after it, the non-persistent ones too (self.buffers,
        the checkpointed ones, leaves them out)."""
        kept = self._buffer_values()
        try:
            with np.errstate(all="ignore"):
                yield
        finally:
            self._put_back_buffers(kept)

    def _forward_function(self, params, batch, key):
        with nn.rng_key(key):  # the step's loss, as _loss_and_grads runs it
            return self._mixed_loss(params, batch, key, True)

    def _probe_hidden_non_finite(self, batch, key) -> GraphcError | None:
        """The finite check's error of the loss alone (its forward, as the step runs it:
        training, the step's dropout key) on the global batch, where an op made a NaN or an
        Inf although the loss is finite: a value the loss does not see, as the side of a
        `where` it does not take (log or sqrt of a negative), which reaches the gradient
        all the same (its gradient there is 0 times NaN). None where the forward is finite
        throughout: the gradient's NaN is the backward's own (an overflow at parameters a
        learning rate blew up: GELU's gradient at 1e14). The Buffers it updates get their
        values back. Only the re-run of a finite loss with a NaN gradient probes."""
        if self._forward_loss is None:
            pipeline, fast_math, jit, _ = self._compile_options
            self._forward_loss = Compiled(self._forward_function, pipeline, fast_math, jit=jit)
        with self._buffers_put_back():
            try:
                self._forward_loss.call((self.params, batch, key), checked=True)
            except GraphcError as exc:
                return exc
            except Exception:  # noqa: BLE001 - as _probe_class_targets': the checked plan
                return None  # reports what else went wrong
        return None

    def find_non_finite_op(self, failed_step: int) -> GraphcError | None:
        """Re-run from the state of mark_good() up to `failed_step`, the last two steps (and
        then an evaluation) with the plans' finite check; return its error, which names the
        first op that produced a NaN or an Inf, its operand ranges and the model's line."""
        step, rng_state, position, arrays, history, val_history, skipped, plateau, lr, \
            behind, buffers = self._good
        self._set_state_arrays({k: a.copy() for k, a in arrays.items()}, step, skipped,
                               behind)
        self._put_back_buffers(buffers)  # (the non-persistent ones too)
        if plateau:  # the lr those steps ran with
            self.plateau.load_state_dict(plateau)
        elif self._number_lr() is not None:
            self.optimizer.lr = lr
        self.train_batches.seek(position)
        self.history, self.val_history = list(history), list(val_history)
        self.rng.bit_generator.state = rng_state
        try:
            while self.step < failed_step:
                self.train_step(checked=self.step >= failed_step - 2)
            if self.eval_batches is not None:
                self._non_finite_batch = None  # (its batches are not the training steps')
                self.evaluate(checked=True, record=False)
        except GraphcError as exc:
            return exc
        return None

    # ---- checkpoints ----
    def save(self, path: str):
        if not isinstance(path, str):  # (bytes, a PathLike of bytes, None: a raw TypeError
            # deep in the write, "a bytes-like object is required, not 'str'"; '' is
            # check_writable's line)
            check_path(path, "Trainer.save: path", "a checkpoint file's path")
        self._write(path)

    def _write(self, path: str, check=None):
        """save(); `check()`: fit's check that the checkpoint there is still one it may
        replace, made once this file is written, just before the rename (a checkpoint put
        there while it was written and synced, most of a save's time, was replaced without
        a word). The identity kept for fit's next save is the file written (the temporary,
        before the rename: read after it, a file another run renamed there meanwhile, as
        the directory was synced, was taken for this run's own and replaced at the next
        save)."""
        # the state as the optimiser's settings now make it, as the next step takes it (a
        # mark lacking made; a setting adding a slot, refused in one line: the state lacks
        # it, state_arrays' KeyError before)
        self._checked_optimizer()
        bad = self.non_finite()
        if bad is None:
            bad = next((f"the loss of step {st}" for st, loss in self.history + self.val_history
                        if not math.isfinite(loss)), None)
        if bad is not None:  # the file on disk is the last good state; keep it
            raise GraphcError(f"not saving step {self.step} to {path}: {bad} is not finite")
        meta = {**self.checkpoint_meta, "step": self.step,
                "skipped_steps": self.skipped_steps,  # the optimiser's count is step - this
                # with the seed of the dropout keys and evaluations (check_seed): in a field
                # graphc has always written, where no checkpoint_meta setting can be
                "rng": {**_jsonable(self.rng.bit_generator.state), "seed": self.seed},
                "data_position": self.train_batches.position,
                "gradient_accumulation_steps": self.gradient_accumulation_steps,
                "history": self.history, "val_history": self.val_history}
        if self.plateau is not None:
            meta["lr_on_plateau"] = self.plateau.state_dict()
        meta["optimizer_record"] = checkpoint.optimizer_record(self.optimizer)
        if self.scaler is not None:  # (a disabled one's scale of 1.0 is no enabled one's:
            meta["loss_scaler_enabled"] = self.scaler.enabled  # check_loss_scaler)
        if self._scaler_settings() is not None:  # (how the scale goes on: an enabled one's)
            meta["loss_scaler_settings"] = self._scaler_settings()
        if any(self.behind.values()):  # (absent: every parameter at the optimiser's count)
            meta["updates_behind"] = {n: k for n, k in self.behind.items() if k}
        if self._number_lr() is not None or self._initial_lr is not None:
            # (None: a schedule there, which no header can hold; see _checked_lr)
            meta["optimizer_lr"] = {"initial": self._initial_lr, "current": self._number_lr()}
        current = self._saved_settings()
        if current:
            meta["optimizer_settings"] = {"initial": self._initial_settings, "current": current}
        if self._initial_groups is not None:  # gc.optim.Groups: each group's, as above
            meta["group_settings"] = self._group_settings_record()
        models = self._buffer_models()
        checkpointed = self.buffers
        if models is not None:  # several models' Buffers, whose shared names are numbered:
            # each with its model's name and its own there
            meta["buffer_models"] = {n: m for n, m in models.items() if n in checkpointed}
        elif len({id(nn._root_of(m)) for m, _ in self._buffer_places.values()}) > 1:
            # a model the loss holds under no name found: its name numbered in the order
            # the step reached the models, as before buffer_models (_names_by_model)
            meta["buffer_names"] = {n: by_model for n, by_model in
                                    self._names_by_model().items() if n in checkpointed}
        checkpointed = {f"buffer/{n}" for n in self.buffers}
        if checkpointed:  # those the step writes, which hold no Inf (load_params checks them)
            meta["written_buffers"] = sorted(n[len("buffer/"):] for n in
                                             checkpointed - self._read_only_buffers())
        written = []

        def before_replace(tmp):  # (tmp None: a special file, written in place)
            # the file written read first: the check last, nearest the rename
            written.append(tmp and file_identity(tmp))
            if check is not None:
                check()
        checkpoint.save(path, self.state_arrays(), meta, before_replace)
        self._saved_to[os.path.realpath(path)] = written[0] or file_identity(path)

    @_restores
    def restore(self, arrays: dict, meta: dict, allow_changed_settings: bool = False,
                path: str | None = None, *, how: str = "allow_changed_settings=True"):
        """Continue from a checkpoint's arrays and header (checkpoint.load's result). Settings
        (checkpoint_meta) other than the checkpoint's are refused, naming each difference,
        unless `allow_changed_settings` (steps, eval_every, eval_iters and precision may
        change: checkpoint.RESUMABLE_CHANGES); so are another seed (checkpoint.check_seed)
        and parameters or buffers the arrays hold that this model lacks, as resume() refuses
        them. `path`: the file they were read
        from, which fit() may then write again (without it, any: the source is unknown). `how`: the
        opt-in a refusal names (a command line's flag).

        A checkpoint saved with another optimiser (its header's `optimizer`: class and slots)
        is refused too, unless `allow_changed_settings`; then, as after deleting a Hugging
        Face run's optimizer.pt, another class starts its state afresh (a new optimiser's
        slots, each parameter's count of updates 0, this trainer's settings), while the
        parameters, step, schedule, RNG and data position go on; the same class keeping
        other slots (SGD's momentum set from 0, amsgrad) takes the slots the checkpoint has
        and starts the others afresh. The lr and the optimiser's settings go on by
        _checked_lr's rule; a schedule, which no file holds, is this trainer's, evaluated at
        the resumed step, whatever schedule the checkpointed run ended with."""
        checkpoint.check_run_fields(meta, path)
        moved = self._saved_buffer_names(meta, path)  # (each model's Buffers to that model)
        if moved:
            by_mine = {moved.get(k, k): a for k, a in arrays.items()}
            if len(by_mine) != len(arrays):  # (two of the file's Buffers taken for one)
                raise checkpoint.CheckpointError(
                    f"{_buffer_names_field(path)} names two of the file's buffers as one of "
                    f"this model's, {meta['buffer_names']!r}"[:300])
            arrays = by_mine
        renamed = {saved: name for saved, name in self._tied_buffer_names().items()
                   if saved in arrays and name not in arrays}
        if renamed:  # (a tied Buffer saved under another of its names: see that method)
            arrays = {renamed.get(k, k): a for k, a in arrays.items()}
        checkpoint.check_settings(meta, self.checkpoint_meta, "the checkpoint",
                                  allow_changed_settings, how)
        checkpoint.check_accumulation(meta, self.gradient_accumulation_steps, path,
                                      allow_changed_settings, how)
        checkpoint.check_seed(meta, self.seed, path, allow_changed_settings, how)
        # the saved slots compared with the optimiser as the header's settings restore it
        # (a momentum the saved run set to 0 keeps no buffer), as BoundOptimizer's
        # load_state_dict compares them
        view = self._restored_view(meta, allow_changed_settings, how, path)
        older_slots = getattr(view, "older_slots", ())
        changed = checkpoint.check_optimizer(meta, checkpoint.optimizer_record(view),
                                             path, allow_changed_settings, how, older_slots,
                                             getattr(self.optimizer, "describe_slots", None))
        other_class = changed is not None and changed["class"] != type(self.optimizer).__name__
        fresh = [slot for slot in _checkpointed_slots(self.optimizer)
                 if changed is not None and (other_class or slot not in changed["slots"])]
        # slots this trainer keeps that the restored settings do not: not read as kept (held
        # aside below where the checkpoint holds them), nor are those it holds aside now
        dropped = [slot for slot in _slots(self.optimizer) if slot not in _slots(view)]
        fresh_prefixes = {_slot_prefix(slot) for slot in [*fresh, *dropped, *self._aside_slots]}
        # slots a checkpoint written before the optimiser kept them lacks (SGD's "started"):
        # made below from each parameter's count of updates
        saved_prefixes = {k.split("/", 1)[0] for k in arrays}
        older = [slot for slot in older_slots if slot not in fresh
                 and _slot_prefix(slot) not in saved_prefixes]
        fresh_prefixes |= {_slot_prefix(slot) for slot in older}
        own = {k: a for k, a in self.state_arrays().items()
               if k.split("/", 1)[0] not in fresh_prefixes}
        fresh_scale = checkpoint.check_loss_scaler(
            meta, self.scaler is not None and self.scaler.enabled, path,
            allow_changed_settings, how, self._scaler_settings())
        if self.amp_state is not None and (fresh_scale or
                                           not any(k.startswith("amp/") for k in arrays)):
            # a run switched to fp16-mixed (or from a disabled loss scaler, allowed): its loss
            # scale starts afresh, as GradScaler's
            own = {k: a for k, a in own.items() if not k.startswith("amp/")}
        # a checkpoint written before the Buffers the step only reads were checkpointed lacks
        # them: the model keeps its own, as that run did
        constants = self._read_only_buffers()
        own = {k: a for k, a in own.items() if k in arrays or k not in constants}
        aside = {} if other_class else self._saved_aside_slots(view, arrays)
        for key, mine in own.items():
            if key not in arrays:
                raise checkpoint.CheckpointError(f"checkpoint {path!r} lacks {key}" if path
                                                 else f"checkpoint lacks {key}")
            if arrays[key].shape != mine.shape or arrays[key].dtype != mine.dtype:
                raise checkpoint.CheckpointError(
                    f"checkpoint {key} is {arrays[key].dtype}{list(arrays[key].shape)}, "
                    f"the model needs {mine.dtype}{list(mine.shape)}")
        if not allow_changed_settings:  # as resume() refuses the file's (load_arrays)
            checkpoint.refuse_unexpected_arrays(arrays, own, path, how)
        _check_loss_scale({k: arrays[k] for k in own if k.startswith("amp/")}, path)
        self._check_saved_values({**{k: arrays[k] for k in own if not k.startswith("amp/")},
                                  **{f"{_slot_prefix(s)}/{n}": a for s, held in aside.items()
                                     for n, a in held.items()}}, path)
        position = meta.get("data_position", meta["step"])
        if isinstance(position, bool) or not isinstance(position, int) \
                or not 0 <= position <= checkpoint.MAX_STEP:
            raise checkpoint.CheckpointError(f"checkpoint header: data_position must be a "
                                             f"whole number from 0 to 2**62, got {position!r}")
        skipped = meta.get("skipped_steps", 0)
        if isinstance(skipped, bool) or not isinstance(skipped, int) \
                or not 0 <= skipped <= meta["step"]:
            raise checkpoint.CheckpointError(f"checkpoint header: skipped_steps must be a whole "
                                             f"number from 0 to the step, got {skipped!r}")
        plateau = self._checked_plateau(meta.get("lr_on_plateau"), allow_changed_settings, how)
        count = meta["step"] - skipped
        if other_class:  # the other optimiser's lr and settings are not this one's (nor
            # read by its rules: an optimiser of one's own has none)
            lr, settings, behind = None, {}, {n: count for n in self.names}
        else:
            lr = self._checked_lr(meta.get("optimizer_lr"), allow_changed_settings, how, path)
            settings = self._checked_settings(meta.get("optimizer_settings"),
                                              allow_changed_settings, how, path)
            behind = self._checked_behind(meta.get("updates_behind", {}), count)
        groups = [] if other_class else self._checked_group_settings(
            meta.get("group_settings"), allow_changed_settings, how, path)
        restored = {k: arrays[k] for k in own}
        for slot in older:
            prefix = _slot_prefix(slot)
            marks = self.optimizer.older_marks(
                slot, optim.parameter_updates(count, behind, self.names))
            restored.update({f"{prefix}/{n}": mark for n, mark in marks.items()})
        self._set_state_arrays(restored, int(meta["step"]), skipped, behind,
                               [*fresh, *dropped])
        if plateau is not None:
            self.plateau.load_state_dict(plateau)
        if lr is not None:
            self.optimizer.lr = lr
        for name, value in settings.items():
            setattr(self.optimizer, name, value)
        for group, group_settings in enumerate(groups):
            for name, value in group_settings.items():
                setattr(self.optimizer.optimizers[group], name, value)
        self._group_aside = {}
        if isinstance(self.optimizer, optim.Groups):
            self._restore_group_slots(arrays)
        if dropped:  # only graphc's own optimisers have slots; another's state is any pytree
            self.state = {k: v for k, v in self.state.items() if k not in dropped}
        self._aside_slots = aside
        self._restore_followed_slots(arrays, path)
        self.rng.bit_generator.state = checkpoint.rng_state(meta)
        self.train_batches.seek(position)
        self.history = [tuple(h) for h in meta.get("history", [])]
        self.val_history = [tuple(h) for h in meta.get("val_history", [])]
        self._restored_from = path  # (for _agree_on_restored's line)
        # (only now: a restore refused on the way must not let fit() replace the file)
        if path is None:
            self._saved_to[RESTORED] = None
        else:
            self._saved_to[os.path.realpath(path)] = file_identity(path)

    def _restored_view(self, meta, allow_changed_settings, how, path):
        """A copy of the optimiser with the settings restore() gives it from the header
        `meta` (_checked_settings), whose slots are those the resumed run keeps; the
        optimiser itself where the header names another class or those settings are refused
        (restore() refuses them where it reads them, after the optimiser's record)."""
        optimizer, record = self.optimizer, meta.get("optimizer_record")
        if not isinstance(optimizer, optim.Optimizer) or record is not None and (
                not isinstance(record, dict) or record.get("class") != type(optimizer).__name__):
            return optimizer
        view = copy.copy(optimizer)
        try:
            settings = self._checked_settings(meta.get("optimizer_settings"),
                                              allow_changed_settings, how, path)
            for name, value in settings.items():
                if name != "lr":  # (no slot follows it; under a plateau it is the plateau's)
                    setattr(view, name, value)
        except GraphcError:
            return optimizer
        return view

    def _saved_aside_slots(self, view, arrays) -> dict:
        """{slot: {name: array}} of the optimiser's optional slots that `view` (the
        optimiser as restored) does not keep and the checkpoint holds (saved held aside, or
        kept by the saved run where this trainer's setting wins), each checked against the
        array init makes: held aside by the resumed run (_follow_slots). A checkpoint
        written before held-aside slots were saved has none."""
        out = {}
        specs = self._optional_slot_arrays(view)
        for slot in [s for s in getattr(view, "optional_slots", ()) if s not in view.slots]:
            names = {n: f"{_slot_prefix(slot)}/{n}" for n in self.names}
            if not all(k in arrays for k in names.values()):
                continue
            for key in names.values():
                a, (shape, dtype) = np.asarray(arrays[key]), specs[key]
                if a.shape != tuple(shape) or a.dtype != dtype:
                    raise checkpoint.CheckpointError(
                        f"checkpoint {key} is {a.dtype}{list(a.shape)}, the model needs "
                        f"{np.dtype(dtype)}{list(shape)}")
            out[slot] = {n: np.array(arrays[key]) for n, key in names.items()}
        return out

    def _optional_slot_arrays(self, optimizer=None, names=None) -> dict:
        """{checkpoint name: (shape, dtype)} of the optimiser's optional slots its settings
        do not keep now (SGD's momentum buffer at momentum 0), as init would make them: a
        checkpoint whose header's settings keep one (a momentum set from 0 during the saved
        run) holds them, and the resumed run goes on from them (_restore_followed_slots).
        `names`: those parameters' alone (a gc.optim.Groups group's)."""
        optimizer = self.optimizer if optimizer is None else optimizer
        if isinstance(optimizer, optim.Groups):  # each group's (_restore_group_slots)
            return {f"{_OTHER_STATE}/{i}.{slot}.{key.split('/', 1)[1]}": like
                    for i, names in enumerate(self._group_names())
                    for slot in optimizer.optimizers[i].optional_slots
                    for key, like in self._optional_slot_arrays(
                        optimizer.optimizers[i], names).items()
                    if key.split("/", 1)[0] == _slot_prefix(slot)}
        if not isinstance(optimizer, optim.Optimizer):
            return {}
        out = {}
        for slot in optimizer.optional_slots:
            if slot in optimizer.slots:
                continue
            for n in self.names if names is None else names:
                p = np.asarray(self.params[n])
                out[f"{_slot_prefix(slot)}/{n}"] = (
                    () if slot in optimizer.scalar_slots else p.shape,
                    optimizer._slot_dtype(slot, p.dtype))
        return out

    def _restore_followed_slots(self, arrays, path):
        """After the header's settings are restored: the slots they keep that this trainer's
        state lacks (built with a momentum of 0, resuming a run whose momentum was set from
        0) taken from the checkpoint where it holds them, each checked against the array
        init makes; any it lacks start as init makes them at the next step (_follow_slots)."""
        if not isinstance(self.optimizer, optim.Optimizer):
            return
        optimizer = self.optimizer
        expected = None
        for slot in [s for s in optimizer.slots if s not in self.state]:
            names = {n: f"{_slot_prefix(slot)}/{n}" for n in self.names}
            if not all(k in arrays for k in names.values()):
                continue
            if expected is None:
                expected = optimizer.init(self.params)
            for n, key in names.items():
                a, like = np.asarray(arrays[key]), np.asarray(expected[slot][n])
                if a.shape != like.shape or a.dtype != like.dtype:
                    raise checkpoint.CheckpointError(
                        f"checkpoint {key} is {a.dtype}{list(a.shape)}, the model needs "
                        f"{like.dtype}{list(like.shape)}")
            self.state[slot] = {n: np.array(arrays[key]) for n, key in names.items()}

    def _agree_on_restored(self) -> None:
        """With several ranks, after a resume or restore (_restores): every rank must hold
        the same state, as each restored its own file. A rank that read another checkpoint
        (an older one in its own --out, on a machine that does not share rank 0's files)
        trained other parameters with the averaged gradients, silently, and at another
        step, until the ranks met in different collectives and waited there for ever."""
        state = self.rng.bit_generator.state
        mine = [self.step, self.train_batches.position, _jsonable(state),
                batch_digest(self.state_arrays())]
        every = self.dist.gather([mine, self._restored_from])
        other = next((r for r, (facts, _) in enumerate(every) if facts != every[0][0]), None)
        if other is None:
            return

        def read(r):
            (step, *_), path = every[r]
            return f"rank {r} {'restored' if path is None else 'read ' + path} at step {step}"
        values = " with other values" if every[0][0][0] == every[other][0][0] else ""
        exc = GraphcError(f"ranks resumed different checkpoints: {read(0)}, {read(other)}"
                          f"{values}; every rank must resume the same one (rank 0 alone writes "
                          "checkpoints: give each rank that file, or a copy of it)")
        exc.on_every_rank = True
        raise exc

    def _scaler_settings(self) -> dict | None:
        """The loss scaler's settings a checkpoint records (LossScaler.RESUMED_SETTINGS), or
        None without an enabled scaler."""
        if self.scaler is None or not self.scaler.enabled:
            return None
        settings = self.scaler.settings()
        return {k: settings[k] for k in amp.LossScaler.RESUMED_SETTINGS}

    def _check_saved_values(self, arrays: dict, path=None) -> None:
        """Refuse an optimiser slot that no update makes negative (a running average of
        squared gradients) holding a negative value: a changed or damaged file, which
        would turn the weights into NaNs at the first step; a Buffer the step writes holding
        a NaN or an Inf (save() never writes one: divergence). (checkpoint.load refuses NaNs
        and Infs in every other array, and NaNs in Buffers; a Buffer the step only reads may
        hold an Inf, a mask's -inf.)"""
        never_negative = {f"{_slot_prefix(s)}/"
                          for s in getattr(self.optimizer, "non_negative_slots", ())}
        constants = self._read_only_buffers()
        _refuse_non_finite_buffers(arrays, {k for k in arrays if k.startswith("buffer/")
                                            and k not in constants}, path)
        for key, values in arrays.items():
            # (the prefix up to the first "/": a parameter's own name may hold more)
            if key.split("/", 1)[0] + "/" in never_negative and (values < 0).any():
                raise checkpoint.CheckpointError(
                    f"checkpoint {key} holds a negative value, which "
                    f"{type(self.optimizer).__name__}'s running average of squared gradients "
                    "never does (the file was changed or damaged)")

    def _checked_behind(self, saved, count) -> dict:
        """The checkpoint's per-parameter lags (updates_behind: {name: the updates it has
        had fewer than the optimiser's `count`}); one written before they were kept has none,
        every parameter then at the optimiser's count."""
        if isinstance(saved, dict):  # (a JSON header's keys are text: {0: w}'s is "0")
            names = {str(n): n for n in self.behind}
            saved = {names.get(n, n): k for n, k in saved.items()}
        if not isinstance(saved, dict) or not all(
                n in self.behind and isinstance(k, int) and not isinstance(k, bool)
                and 0 <= k <= count for n, k in saved.items()):
            raise checkpoint.CheckpointError(f"checkpoint header: updates_behind must be "
                                             f"{{parameter name: a whole number from 0 to the "
                                             f"optimiser's count, {count}}}, got {saved!r}"[:200])
        return saved

    def _checked_plateau(self, saved, allow_changed_settings, how):
        """The checkpoint's ReduceLROnPlateau state to load: refused where it was saved with
        other settings, or with none where this trainer has one (or the other way round),
        unless allow_changed_settings (the state goes on with this trainer's settings; a
        scheduler new to the run starts afresh). None: nothing to load."""
        mine = self.plateau.settings() if self.plateau is not None else None
        if saved is not None and not isinstance(saved, dict):
            raise checkpoint.CheckpointError(f"checkpoint header: lr_on_plateau must be an "
                                             f"object, got {saved!r}"[:200])
        theirs = None if saved is None else {k: saved.get(k) for k in mine or saved
                                             if k in optim.ReduceLROnPlateau._SETTINGS}
        if mine != theirs and not allow_changed_settings:
            def shown(settings):
                return "none" if settings is None else ", ".join(
                    f"{k}={v}" for k, v in settings.items())
            raise GraphcError(f"the checkpoint was saved with ReduceLROnPlateau "
                              f"{shown(theirs)}, this trainer has {shown(mine)}; resume with "
                              f"the checkpoint's, or pass {how} to continue with this "
                              "trainer's", (user_location(),))
        if saved is None or mine is None:
            return None
        state = {**saved, **mine}  # this trainer's settings (the same unless allowed)
        try:
            copy.copy(self.plateau).load_state_dict(state)  # checked before anything changes
        except GraphcError as exc:
            raise checkpoint.CheckpointError(f"checkpoint header lr_on_plateau: "
                                             f"{exc.message}") from None
        return state

    def _checked_lr(self, saved, allow_changed_settings=False,
                    how="allow_changed_settings=True", path=None, group=None):
        """The number lr a resumed run goes on with, or None (this trainer's own): the
        checkpoint's current one (set during the run: `trainer.optimizer.lr = x`, kept as
        torch's optimizer.load_state_dict keeps param_groups' lr) where this trainer's lr is
        the one the checkpointed run started with; a trainer given another lr (built with
        it, or set before resuming) keeps its own, as the user asked for it. The header
        holds None for a schedule (a function is not saved): a run that started with one
        and was set to a number goes on with the number where this trainer has a schedule
        (resumed with the schedule, it trained on it again from the step, silently not the
        run it continued); one whose number lr was replaced by a schedule is refused where
        this trainer has that starting number, unless allow_changed_settings. A schedule
        replaced by another cannot be compared: this trainer's goes on, evaluated at the
        resumed step (as optax's, whose state is the step count)."""
        # (an optimiser whose update takes no lr= is not left out: it reads the attribute
        # restore() sets from what this returns)
        if saved is None or self.plateau is not None and group is None:
            return None
        if not isinstance(saved, dict) or not all(
                k in saved and (saved[k] is None or _is_lr(saved[k]))
                for k in ("initial", "current")) \
                or saved.get("initial") is saved.get("current") is None:
            raise checkpoint.CheckpointError(f"checkpoint header: optimizer_lr must be "
                                             f"{{'initial': lr, 'current': lr}} with numbers "
                                             f">= 0 (null for a schedule, not both), got "
                                             f"{saved!r}"[:200])
        current = _resumed_setting(_in_group("lr", group), self._number_lr(group),
                                   saved["initial"], saved["current"],
                                   allow_changed_settings, how, path)
        return None if current is None else float(current)

    def _number_settings(self, group=None) -> dict:
        """The optimiser's number settings now (its hyperparameters that are not schedules).
        `group`: that group's optimiser's, of a gc.optim.Groups."""
        optimizer = self._optimizer_of(group)
        if not isinstance(optimizer, optim.Optimizer):
            return {}
        return {name: float(value) for name, value in
                optim.number_settings(optimizer, optimizer.hyperparameters).items()}

    def _optimizer_of(self, group):
        """The optimiser, or the one of gc.optim.Groups' group `group` (an index)."""
        return self.optimizer if group is None else self.optimizer.optimizers[group]

    def _saved_settings(self, group=None) -> dict:
        """The settings a checkpoint records (optimizer_settings): the number ones and the
        flags (nesterov, maximize, amsgrad, ...), as BoundOptimizer.state_dict's settings,
        torch's param_groups; a setting that is a schedule as None, as optimizer_lr holds
        the lr's (a function is not saved; see _resumed_setting)."""
        optimizer = self._optimizer_of(group)
        if not isinstance(optimizer, optim.Optimizer):
            return {}
        return {**dict.fromkeys(optimizer.hyperparameters), **self._number_settings(group),
                **optim._flags_of(optimizer)}

    def _group_settings(self) -> list | None:
        """gc.optim.Groups: each group's optimiser's class, number lr (None: a schedule) and
        settings (_saved_settings) now; None for another optimiser."""
        if not isinstance(self.optimizer, optim.Groups):
            return None
        return [{"class": type(opt).__name__, "lr": self._number_lr(i),
                 "settings": self._saved_settings(i)}
                for i, opt in enumerate(self.optimizer.optimizers)]

    def _group_settings_record(self) -> list:
        """The header's group_settings: for each group of a gc.optim.Groups, its optimiser's
        class, and its optimizer_lr and optimizer_settings as a single optimiser's are
        recorded (the ones it started with and has now), so that a setting changed during
        the run (`trainer.optimizer.optimizers[0].lr = 1e-4`, torch's
        `opt.param_groups[0]["lr"] = 1e-4`) goes on when resumed (_checked_group_settings)."""
        record = []
        for first, now in zip(self._initial_groups, self._group_settings()):
            group = {"class": now["class"]}
            if first["class"] == now["class"]:  # (an optimiser replaced: its own start)
                if first["lr"] is not None or now["lr"] is not None:
                    group["optimizer_lr"] = {"initial": first["lr"], "current": now["lr"]}
                group["optimizer_settings"] = {"initial": first["settings"],
                                               "current": now["settings"]}
            record.append(group)
        return record

    def _checked_group_settings(self, saved, allow_changed_settings, how, path) -> list:
        """[{name: value}] for each group of a gc.optim.Groups: the lr and settings it goes
        on with, by _checked_lr's and _checked_settings' rule for a single optimiser's (the
        checkpoint's current ones where this trainer's are those the run started with). A
        group whose saved optimiser is of another class keeps its own; so does every group
        where the header has no group_settings (a checkpoint written before they were kept,
        or by another optimiser): this trainer's settings, as before."""
        if saved is None or not isinstance(self.optimizer, optim.Groups):
            return []
        if not isinstance(saved, list) or not all(
                isinstance(g, dict) and isinstance(g.get("class"), str) for g in saved):
            raise checkpoint.CheckpointError(f"checkpoint header: group_settings must be a "
                                             f"list of {{'class': name, 'optimizer_lr': ..., "
                                             f"'optimizer_settings': ...}}, got "
                                             f"{saved!r}"[:200])
        resumed = []
        for i, (opt, group) in enumerate(zip(self.optimizer.optimizers, saved)):
            if group["class"] != type(opt).__name__:
                resumed.append({})
                continue
            lr = self._checked_lr(group.get("optimizer_lr"), allow_changed_settings, how,
                                  path, i)
            settings = self._checked_settings(group.get("optimizer_settings"),
                                              allow_changed_settings, how, path, i)
            resumed.append({**settings, **({} if lr is None else {"lr": lr})})
        return resumed

    def _checked_settings(self, saved, allow_changed_settings=False,
                          how="allow_changed_settings=True", path=None, group=None) -> dict:
        """The settings a resumed run goes on with, numbers and flags, by _checked_lr's rule
        for the lr (_resumed_setting): each the checkpoint's current one where this
        trainer's is the one the run started with (set during the run:
        `trainer.optimizer.betas = (0.8, 0.99)`, `.nesterov = True`, kept as torch's
        load_state_dict keeps param_groups), this trainer's own where it differs. A
        schedule is None in the header: a setting that started as one and was set to a
        number goes on with the number where this trainer has the schedule, and one set
        from its starting number to a schedule is refused unless allow_changed_settings;
        where both are schedules, this trainer's goes on (_checked_lr).
        A checkpoint written before the flags (or the schedules) were kept has none: the
        trainer's own stay."""
        if saved is None:
            return {}
        mine, optimizer = self._saved_settings(group), self._optimizer_of(group)
        flags = getattr(optimizer, "flag_settings", ())

        def valid(values):  # each by the optimiser's own rule for the setting
            if not isinstance(values, dict):
                return False
            try:
                return all(isinstance(k, str) and (
                    isinstance(v, bool) if k in flags else
                    v is None and k in optimizer.hyperparameters or
                    _is_number(v) and optimizer.checked_setting(k, v) is not None)
                    for k, v in values.items())
            except GraphcError:
                return False
        if not isinstance(saved, dict) or not all(valid(saved.get(k)) for k in
                                                  ("initial", "current")):
            raise checkpoint.CheckpointError(f"checkpoint header: optimizer_settings must be "
                                             f"{{'initial': {{name: value}}, 'current': "
                                             f"{{name: value}}}} with numbers (null for a "
                                             f"schedule, flags true or false), got "
                                             f"{saved!r}"[:200])
        initial, current = saved["initial"], saved["current"]
        resumed = {name: _resumed_setting(_in_group(name, group), value,
                                          initial[name], current[name],
                                          allow_changed_settings, how, path)
                   for name, value in mine.items() if name in initial and name in current}
        return {name: value if name in flags else float(value)
                for name, value in resumed.items() if value is not None}

    @_restores
    def resume(self, path: str, allow_changed_settings: bool = False):
        """restore() from a checkpoint file written by save(), each array checked against
        this trainer's before it is read; refused if this trainer's checkpoint_meta differs
        from the checkpoint's, or if the file holds parameters this model lacks (as torch's
        strict load_state_dict), unless `allow_changed_settings` (which leaves them out;
        see restore). `path` may be fit()'s directory, holding its checkpoint.npz, as for
        `graphc train --resume` and `graphc sample --checkpoint`."""
        path = checkpoint_file(path)
        read = file_identity(path)  # the file as it was read (see _resumed)
        wanted = {k: (a.shape, a.dtype) for k, a in self.state_arrays().items()}
        # a float32 run's checkpoint has no loss scale: restore() starts it afresh; another
        # optimiser's lacks slots of this one's, which restore() refuses or starts afresh
        slots = {_slot_prefix(slot) for slot in _checkpointed_slots(self.optimizer)}
        optional = [k for k in wanted if k.startswith("amp/") or k.split("/", 1)[0] in slots]
        # (slots the header's settings may keep where this trainer's do not: restore)
        optional += list(self._optional_slot_arrays())
        wanted.update(self._optional_slot_arrays())
        tied = self._tied_buffer_names()  # (read under either name; restore() checks one is)
        wanted.update({saved: wanted[name] for saved, name in tied.items()})
        optional += [*tied, *tied.values(), *self._read_only_buffers()]  # (see restore)
        arrays, meta = checkpoint.load_arrays(path, wanted, optional,
                                              strict_params=not allow_changed_settings,
                                              renamed=lambda meta: self._saved_buffer_names(
                                                  meta, path))
        checkpoint.check_settings(meta, self.checkpoint_meta, path, allow_changed_settings)
        self.restore(arrays, meta, allow_changed_settings, path)
        self._resumed(path, read)

    def _resumed(self, path: str, read) -> None:
        """Record that the state restored came from checkpoint `path` as it was when its read
        began (`read`: files.file_identity then), not as restore() found it afterwards: fit()
        refuses to replace it if another run has written it since. A file replaced during the
        read is taken for a changed one (whichever was read)."""
        self._saved_to[os.path.realpath(path)] = read

    def _hold(self, directory: str, held=None, hold_again=None) -> None:
        """Hold the lock of `directory` (files.exclusive_directory) for this trainer until
        _release(), another it held let go. `held`: an ExitStack holding it already
        (`graphc train --resume` takes it before reading the checkpoint, before this
        trainer exists), with the hold_again it yielded; nothing if this trainer holds it
        already."""
        real = os.path.realpath(directory)
        if self._lock is not None and self._lock[0] == real:
            return
        self._release()
        if held is None:
            held = contextlib.ExitStack()
            hold_again = held.enter_context(exclusive_directory(directory, "training run"))
        self._lock = (real, held, hold_again)

    def _hold_again(self) -> bool:
        """Before a write into the held directory: take its lock again where this process
        let go of it (a user's callback read or copied the directory), or refuse in one
        line where another run took it since (files.exclusive_directory). Whether the lock
        is held: False on a file system without locks."""
        return self._lock is not None and self._lock[2]()

    def _refuse_replacing_another_runs(self, ckpt, unlocked: bool | None = None):
        """One line where checkpoint `ckpt`, which this trainer resumed or wrote, has been
        written by another run since (which held the directory between: before fit, or
        while this process had let go of its lock and that run took it, saved and left):
        replacing it would lose that run's steps. `unlocked`: None at fit's start, else a
        save's (whether no lock holds the directory): a save also refuses a checkpoint this
        trainer neither resumed nor wrote that is not the one fit found at its start
        (_fit_found): without locks another process's run was not kept out, and with them a
        program that takes no lock (a copy, a sync tool) was not either; this costs no more
        than the identity each save reads anyway. A save's refusal keeps this run's state
        (_save: _kept_elsewhere). Returns `ckpt`'s identity now."""
        now = ckpt and file_identity(ckpt)
        real = ckpt and os.path.realpath(ckpt)
        at_save = unlocked is not None
        if at_save and not same_file(self._fit_found, now) and real not in self._saved_to:
            how = ("by another run during this fit (its file system has no locks to keep "
                   "that run out)" if unlocked else "during this fit by a program that does "
                   f"not take its directory's {LOCK_NAME} (a copy, a sync tool)")
            raise self._not_replacing(f"{ckpt} has been written {how}", at_save)
        if now and not same_file(self._saved_to.get(real, now), now):
            # one the user cannot read (chmod 000: EACCES) has no digest of its end, so it
            # differs too: say that, not that another run wrote it
            unreadable = read_error(ckpt)
            if unreadable:
                raise self._not_replacing(
                    f"cannot read checkpoint {ckpt!r}: {unreadable}", at_save,
                    self._said("make it readable, or fit into another directory",
                               "make it readable, or train into another --out"),
                    it="a checkpoint it cannot check")
            raise self._not_replacing(
                f"{ckpt} has been written by another run since this trainer resumed "
                "(or saved) it", at_save,
                self._said(f"resume it again (trainer.resume({ckpt!r})) or fit into another "
                           "directory", "run the same command again, which resumes it as it "
                           "is now, or train into another --out"))
        return now

    def _said(self, python: str, command: str) -> str:
        """Advice in the caller's words: `command`'s where a command line runs this trainer
        (self.command: its --out and --resume options), `python`'s otherwise."""
        return command if self.command is not None else python

    def _not_replacing(self, what: str, at_save: bool, fix: str = "",
                       it: str = "it") -> GraphcError:
        """The one line refusing to replace a checkpoint (`it`, in the line), `what`
        saying why; at fit's start, what to do (`fix`): nothing is lost then (the state is
        the one resumed, or the caller's trainer still holds it). At a save (`at_save`), fit
        adds where it kept this run's state instead (_kept_elsewhere)."""
        who = self._said("fit()", self.command)
        return GraphcError(f"{what}; {who} does not replace {it}" + ("" if at_save else
                                                                    f": {fix}"))

    def _kept_elsewhere(self, ckpt: str) -> str:
        """The end of the line of a save into `ckpt` that was refused or failed: the steps
        since the last save would be lost with it (graphc train's process ends there), so
        this run's state is saved first in a fresh directory beside ckpt's directory, or
        where that fails (read-only, full) in the system's temporary directory
        (files.fresh_directory: never over anything there), and the line says where and how
        to continue from it; or why it could not be saved. The run stops rather than going
        on there: a run whose outputs move to a directory not asked for would be found only
        by reading its log."""
        why = None
        for beside in (True, False):
            kept = None
            try:
                kept = fresh_directory(os.path.dirname(ckpt), f"step{self.step}", beside)
                self.save(os.path.join(kept, CHECKPOINT))
            except (OSError, GraphcError) as exc:
                if kept is not None:  # (empty: atomic_writer removed its temporary)
                    with contextlib.suppress(OSError):
                        os.rmdir(kept)
                why = exc.message if isinstance(exc, GraphcError) else exc.strerror or str(exc)
                continue
            how = self._said(f"trainer.fit({kept!r}) (in another process: trainer.resume("
                             f"{kept!r}) first)", f"run the same command with --out "
                             f"{shlex.quote(kept)} --resume")
            return (f"; this run's step {self.step} is saved in {kept} instead; to continue "
                    f"it, {how}")
        lost = self._said("this trainer keeps its state: fit it into another directory",
                          "its steps since the last save are lost")
        return f"; this run's step {self.step} could not be saved elsewhere ({why}): {lost}"

    def _stdout_failed(self, error: OSError, ckpt: str | None) -> GraphcError:
        """The one line of a run stopped by a write to stdout that failed (not a reader
        gone): where its state is, and how to go on."""
        if not ckpt:
            return GraphcError(f"{error.strerror}: training stopped at step {self.step} "
                               "(fit() was given no directory: this trainer keeps its state)")
        how = self._said(f"trainer.fit({os.path.dirname(ckpt)!r}) again",
                         "run the same command with --resume")
        return GraphcError(f"{error.strerror}: training stopped at step {self.step}, saved "
                           f"in {ckpt}; to continue, {how}")

    def _release(self) -> None:
        if self._lock is not None:
            self._lock[1].close()
            self._lock = None

    def _set_state_arrays(self, arrays, step, skipped=0, behind=None, fresh=()):
        """The state of `arrays`, the optimiser's slots `fresh` as a new optimiser's."""
        self.step, self.skipped_steps = step, skipped
        self.behind = {n: (behind or {}).get(n, 0) for n in self.names}
        self._lagged += tuple(n for n in self.names if self.behind[n] and n not in self._lagged)
        for n in self.names:
            self.params[n] = arrays[f"param/{n}"]
        initial = self.optimizer.init(self.params) if fresh else None
        if not isinstance(self.optimizer, optim.Optimizer):  # its own state, its own count
            structure, names = self._other_state()
            self.state = initial if fresh else unflatten(structure, [arrays[k] for k in names])
        for slot in _slots(self.optimizer):
            prefix = _slot_prefix(slot)
            for n in self.names:
                self.state[slot][n] = initial[slot][n] if slot in fresh else \
                    arrays[f"{prefix}/{n}"]
        if isinstance(self.optimizer, optim.Optimizer):
            # one update per step that an overflow did not skip
            self.state["count"] = np.asarray(step - skipped, np.int64)
        # (a disabled scaler's scale stays 1.0, as GradScaler(enabled=False)'s load_state_dict
        # loads nothing: an enabled run's scale, loaded, divided the reported loss by it)
        if self.amp_state is not None and self.scaler.enabled and \
                f"amp/{next(iter(self.amp_state))}" in arrays:
            self.amp_state = {k: np.array(arrays[f"amp/{k}"]) for k in self.amp_state}
        for n, b in self.buffers.items():  # in place: the plans read these arrays
            if f"buffer/{n}" in arrays:  # (one restore() let be missing: the model's own)
                b.data[...] = arrays[f"buffer/{n}"]

    # ---- the loop ----
    def fit(self, out: str | None = None, progress: bool = True, log=None) -> int:
        """Train to `steps`: evaluate (when eval_batches were given) and save to
        OUT/checkpoint.npz every eval_every steps and at the end, and draw OUT/loss.png (one
        already there is kept as it is where no step was left to train).
        Returns 0, or the signal (SIGINT, SIGTERM) that stopped training at a step boundary
        after saving (or came while loss.png was drawn, after the last save); SIGPIPE when
        stdout found its reader gone (`graphc train | head`), after saving likewise (a
        write to stdout that failed otherwise, a full disk's: a GraphcError line after
        saving, naming the checkpoint). Raises
        TrainingDiverged on a NaN or an Inf, the last good checkpoint kept; GraphcError, one
        line, where a save into OUT is refused (another run took OUT or wrote its checkpoint)
        or fails (a full disk), this run's state saved first in a fresh directory beside OUT,
        which the line names (_kept_elsewhere). `log(line)`
        takes every line fit() reports (evaluations, the plateau's reductions, divergence;
        default: printed); `progress`: the bar, on stdout."""
        if out is not None:  # fit("") trained and saved nothing
            check_path(out, "Trainer.fit: out", "a directory name")
        log = log or _print
        if self.dist is not None and not self.dist.is_main():  # rank 0 writes and reports
            out, progress, log = None, False, (lambda text: None)
        ckpt = os.path.join(out, CHECKPOINT) if out else None
        # SIGINT and SIGTERM stop at a step boundary from here on: one before the first step
        # (in the first evaluation) stops at step 0 after saving, where SIGTERM ended the
        # process without a word; one while the plot is drawn (after the last save) is
        # returned too. One run at a time writes into `out`: a second one stops with one line
        with StopAtStepBoundary() as stop, _reader_aware_stdout() as stdout, \
                contextlib.ExitStack() as held:
            # rank 0 alone checks `out`: the ranks agree on its refusal, else the others
            # would go on into the first evaluation's all-reduce and wait for it
            with contextlib.nullcontext() if self.dist is None else self.dist.fail_together():
                if out:  # (held already where `graphc train --resume` read the checkpoint)
                    self._hold(out)
                    held.callback(self._release)
                if ckpt and os.path.exists(ckpt) and not (
                        RESTORED in self._saved_to or os.path.realpath(ckpt) in self._saved_to):
                    raise self._not_replacing(
                        f"{ckpt} already exists, from another run", False, self._said(
                            f"resume it first (trainer.resume({ckpt!r})) or fit into another "
                            "directory", "pass --resume to continue it or --out to train into "
                            "another directory"))
                self._fit_found = self._refuse_replacing_another_runs(ckpt)
            self.mark_good()
            noted, stdout.notes_failures = stdout.notes_failures, True
            try:
                if self.eval_batches is not None and not self.val_history:
                    log(f"step {self.step}: val loss {self.evaluate():.4f}")
                first = self.step
                stopped = self._loop(ckpt, progress, log, stop, stdout)
            finally:
                stdout.notes_failures = noted
            plot = os.path.join(out, "loss.png") if out else None
            # every rank enters the agreement, also one a late signal stopped alone (the
            # others would wait in its allgather for ever)
            with self._rank_0_writes():
                # a fit with no step left to train (a finished run resumed) leaves the plot
                # there as it was: it redrew the same curves over it (not one older than the
                # checkpoint, an earlier run's, left by a run stopped while it was drawn)
                if plot and not stopped and (self.step > first or
                                             not written_since(plot, ckpt)):
                    self._hold_again()
                    plot_losses(self.history, self.val_history, plot, self.plot_title,
                                self.plot_ylabel)
                    stopped = stop.signum
            # (raised after the ranks' last agreement, which every rank enters; rank 0's
            # stdout alone fails, so it is made every rank's: raised on rank 0 alone, it
            # ended that rank with status 2 and mpiexec's banner, the others returning 0)
            with contextlib.nullcontext() if self.dist is None else \
                    self.dist.fail_together((GraphcError,)):
                failed = stdout.failed if not noted else None
                if failed is None and self.dist is not None:  # (`graphc train --ranks N`'s
                    failed = self.dist.launcher_stdout_failure()  # stdout, rank 0's)
                if failed is not None:
                    raise self._stdout_failed(failed, ckpt)
        return stopped

    def _per_batch(self, batch) -> int:
        """Samples (or tokens) per step, of `batch`: the global batch as drawn (every rank
        draws all of it), so it is not multiplied by the rank count; a step's micro-batches
        are."""
        first = np.asarray(flatten(batch)[0][0])  # a nested batch's first array
        rows = first.size if self.units == "tokens" else (first.shape[0] if first.ndim else 1)
        return rows * self.gradient_accumulation_steps

    def _loop(self, ckpt, progress, log, stop, stdout) -> int:
        from tqdm import tqdm

        per_batch = self._per_batch(self.train_batches.peek(self.rng))
        bar = tqdm(total=self.steps, initial=self.step, disable=not progress, unit="step",
                   dynamic_ncols=True, file=sys.stdout)
        unit = "tok" if self.units == "tokens" else "samples"
        start, done, saved = time.perf_counter(), 0, -1

        def say(text):  # every line to `log`, the bar cleared around it (as tqdm.write)
            with tqdm.external_write_mode(file=sys.stdout):
                log(text)
        try:
            forwarded = contextlib.nullcontext() if self.dist is None \
                else self.dist.stops_forwarded()
            with forwarded as relay_gone:
                signum = 0
                while self.step < self.steps:
                    signum = self._stop_signal(stop, stdout, relay_gone)
                    if signum:
                        break
                    try:
                        loss = self.train_step()
                    except Exception as exc:  # the user's train_batches or loss raised, or
                        # a batch of another shape was refused: its own traceback goes on
                        self._stopped_by(exc, ckpt, saved, say)
                        raise
                    done += 1
                    rate = done * per_batch / (time.perf_counter() - start)
                    bar.set_postfix_str(f"loss {loss:.3f}, {rate:,.0f} {unit}/s", refresh=False)
                    bar.update(1)
                    if self._bad_step(loss):
                        self._diverged(self._divergence(loss), ckpt, saved, say,
                                       gradient_only=self._gradient_only_nan(loss))
                    periodic = self.step % self.eval_every == 0
                    if periodic or self.step == self.steps:
                        if self.eval_batches is not None:
                            val = self.evaluate()
                            # the plateau is stepped by the periodic evaluations alone: the
                            # last one of a fit cut between two (steps=18, eval_every=4) is
                            # for the log, else a run cut there and resumed reduced the lr
                            # where the uninterrupted one does not
                            lr = self._plateau_step(val, periodic)
                        # saved before the line is printed: a reader gone (`| head`) fails
                        # the print, and the steps since the last save were lost with it
                        self._save(ckpt, saved, say)
                        saved = self.step
                        if self.eval_batches is not None:
                            say(f"step {self.step}: train loss {loss:.4f}, val loss "
                                f"{val:.4f}{lr}")
                signum = signum or stop.signum  # one that came after the last step: done
                late = bool(signum) and saved != self.step
                if self.dist is not None:
                    # agreed: with no loop step (steps=0, a finished run resumed) a signal is
                    # one rank's alone, and a save on that rank alone entered its agreement
                    # (_rank_0_writes) while the others went on to the end-of-fit one
                    late = bool(self.dist.agree_max(late))
                if late:
                    self._save(ckpt, saved, say)
                return signum
        finally:
            bar.close()

    def _stopped_by(self, exc, ckpt, saved, log):
        """Say at which step `exc`, raised by a training step in fit, stopped it and which
        checkpoint is kept (as Lightning's, the user's traceback is not enough: the step is
        not in it); a GraphcError's one line (a batch of another shape refused, at the
        user's line) begins with the step too."""
        failed = self.step + 1  # (a step that raised did not count)
        if isinstance(exc, GraphcError):
            exc.message = f"step {failed}: {exc.message}"
            exc.args = (exc._render(),)
        log(f"training stopped at step {failed} by {type(exc).__name__}; "
            f"{self._kept(ckpt, saved)}")

    def _kept(self, ckpt, saved) -> str:
        """What a stopped fit leaves: the last checkpoint (this fit's last save `saved`, or
        the one it resumed), or none."""
        if ckpt and (saved >= 0 or os.path.exists(ckpt)):
            return f"{ckpt} (step {self.good_step}) is kept"
        return "no checkpoint was written"

    def _plateau_step(self, val, step: bool = True) -> str:
        """Step the ReduceLROnPlateau with a validation loss (not where `step` is False: an
        evaluation off the eval_every grid); its lr for the progress line ("" without one).
        The same on every rank: the loss is all-reduced."""
        if self.plateau is None:
            return ""
        before = self.plateau.lr
        if step:
            self.plateau.step(val)
        return f", lr {self.plateau.lr:.4g}" + (" (reduced)" if self.plateau.lr != before
                                                else "")

    def _stop_signal(self, stop, stdout, relay_gone) -> int:
        """The signal that stops training at this step boundary, or 0 (SIGPIPE: stdout's
        reader has gone, or, under `graphc train --ranks N`, the launcher's: `relay_gone()`,
        distributed.stops_forwarded). With several ranks they agree on it: mpiexec forwards
        a signal to every rank, but one may get it just before its check and another just
        after, and a rank going on into the next step would wait in its all-reduce for ranks
        that have stopped."""
        signum = stop.signum or stdout.reader_gone
        if self.dist is None:
            return signum
        return self.dist.agree_max(signum or (signal.SIGPIPE if relay_gone() else 0))

    def _bad_step(self, loss) -> bool:
        """A NaN or Inf loss or gradient norm; with loss scaling, an overflow is a skipped
        step, unless the scale fell below float16's smallest value (nothing left to scale)."""
        if self.scaler is not None and self.step_skipped:
            return float(self.amp_state["scale"]) < 2.0 ** -24
        return not (np.isfinite(loss) and np.isfinite(self.grad_norm))

    def _divergence(self, loss) -> str:
        """What a bad step (_bad_step) says of itself. Under loss scaling, a loss that is
        not finite makes every step skipped and backs the scale off until it is spent (some
        40 steps), which no scale can cure, the loss being computed before it is scaled: the
        step it has been so since is said, with the parameters left finite, which rules out
        a learning rate that blew them up."""
        what = f"loss {loss}, gradient norm {self.grad_norm}"
        since = self._non_finite_loss_since
        if self.scaler is not None and since is not None and since < self.step \
                and self.non_finite() is None:
            what += (f"; the loss not finite since step {since}, which no loss scale cures: "
                     f"every step since skipped, the scale backed off to "
                     f"{float(self.amp_state['scale']):.3g}, the parameters finite")
        return what

    def _gradient_only_nan(self, loss) -> bool:
        """A finite loss with a NaN gradient: a NaN or an Inf the loss never sees (the side
        of a `where` it does not take) may have reached the gradient, which the re-run
        probes (_probe_hidden_non_finite); a learning rate that blew the parameters up can
        make it too (the backward overflowing where the forward did not)."""
        return math.isfinite(loss) and self.grad_norm is not None and \
            math.isnan(float(self.grad_norm))

    def _save(self, ckpt, saved, log):
        bad = self.non_finite()
        if bad is not None or not all(np.isfinite(v) for _, v in self.val_history[-1:]):
            what = f"{bad} is not finite" if bad else f"val loss {self.val_history[-1][1]}"
            self._diverged(what, ckpt, saved, log)
        with self._rank_0_writes():
            if ckpt:
                try:
                    unlocked = not self._hold_again()
                    # (one that took the lock and left; without locks, any other run's,
                    # or a copy's), checked just before the rename (_write)
                    self._write(ckpt, lambda: self._refuse_replacing_another_runs(
                        ckpt, unlocked))
                except (GraphcError, OSError) as exc:  # another run took OUT or wrote its
                    # checkpoint, OUT is no directory now, or the write failed (a full disk,
                    # read-only; an errno atomic_writer does not name: NFS's ESTALE, a
                    # directory removed under the rename's ENOENT, the lock file's ENOSPC)
                    what = exc.message if isinstance(exc, GraphcError) else \
                        f"cannot write {ckpt}: {exc.strerror or exc}"
                    raise GraphcError(what + self._kept_elsewhere(ckpt)) from None
        self.mark_good()

    def _rank_0_writes(self):
        """Around rank 0's writes into `out` during fit (a save, the plot): with several
        ranks, its refusal (another run took the directory or wrote the checkpoint) or its
        failure to write is every rank's (distributed.fail_together: one allgather, no
        collective inside), so that they stop together with its one line and status; rank
        0 alone stopping left the others in the next step's all-reduce until mpiexec
        killed the job, with its banner."""
        return contextlib.nullcontext() if self.dist is None else self.dist.fail_together()

    def _eps_is_zero(self) -> str:
        """For the divergence message, where the optimiser's eps rounds to 0 in the
        parameters' dtype (AdamW's default 1e-8 in float16: a model trained in float16, not
        under precision='fp16-mixed'): a parameter whose gradient is 0 then has moments of 0
        and is updated by 0/0, NaN (torch's too; a gradient whose square underflows, by x/0),
        which no lower learning rate cures. ''
        otherwise (no eps: SGD, Lion; a schedule of the step)."""
        eps = getattr(self.optimizer, "eps", None)
        if not _is_number(eps) or eps <= 0:
            return ""
        dtypes = sorted({str(a.dtype) for a in self.params.values()
                         if a is not None and np.asarray(eps, a.dtype) == 0})
        if not dtypes:
            return ""
        mixed = {half: name for name, half in PRECISIONS.items() if half}.get(dtypes[0])
        # (not its smallest number, at which a gradient of 1e-4, whose square is 0 in
        # float16, made AdamW's steps over 1e3 times the lr: the run trained to weights of 46)
        smallest = float(finfo(dtypes[0]).smallest_subnormal)
        return (f"{type(self.optimizer).__name__}'s eps={eps:g} is 0 in {dtypes[0]}, the "
                "parameters' dtype, so a parameter whose gradient, or its square, is 0 there "
                "is divided by 0 (a NaN or an Inf), as in torch: give eps >= "
                f"{float(np.sqrt(smallest)):.3g}, the square root of the smallest "
                f"{dtypes[0]} above 0 ({smallest:.3g}: a gradient whose square is 0 there is "
                "divided by eps itself, and by a smaller eps makes steps far past the lr)" +
                (f", or train float32 parameters under precision='{mixed}'" if mixed else "") +
                ". ")

    def _diverged(self, what, ckpt, saved, log, gradient_only=False):
        """Nothing is saved; the bad steps are re-run with the finite check so that the error
        names the op that produced the NaN or Inf and the model's line. `gradient_only`: the
        loss was finite and its gradient NaN (_gradient_only_nan): where the re-run finds
        the loss's forward making a value the loss does not see (_probe_hidden_non_finite),
        that is said, with the advice to keep it out of both sides of a `where` instead of
        the learning rate's."""
        failed = self.step
        # a re-run on a generator's next batches instead found nothing: "the finite check
        # did not reproduce it", a false lead
        if not self.train_batches.can_seek(self._good[2]):
            log(f"training diverged at step {failed} ({what})")
            exc, found = None, (f"; the steps from {self.good_step} were not re-run to find "
                                "the op: train_batches is a one-pass iterator (a generator), "
                                "which cannot give their batches again (a list or a function "
                                "of a numpy Generator can)")
        else:
            log(f"training diverged at step {failed} ({what}); re-running from step "
                f"{self.good_step} with finite checks to find the op")
            self._probe_hidden, self._hidden_non_finite = gradient_only, None
            try:
                exc = self.find_non_finite_op(failed)
            finally:
                self._probe_hidden = False
            found = "; the finite check did not reproduce it"
        # a value the loss does not see, found at a step before the failed one whose gradient
        # was finite (no loss scaler skipped it), reached no gradient: a learning rate's NaN
        # (a log of a negative the where masks, whose gradient 1/x times 0 is 0)
        hidden = exc is not None and self._hidden_non_finite is not None and (
            self._hidden_non_finite[0] == failed
            or self.scaler is not None and self.scaler.enabled)
        if hidden:
            what += "; the gradient of the loss is not finite at a finite loss"
        if exc is not None:
            where = "".join(f" at {f}:{line}" for f, line in exc.locs[:1])
            # another rank's (distributed.fail_together: "rank 1: non-finite value: ...")
            message = re.sub(r"\Arank (\d+): (.*)\Z", r"\2 on rank \1", exc.message, flags=re.S)
            found = f"; first {message}{where}"
        kept = self._kept(ckpt, saved)
        # a target out of range, or a NaN or Inf in the batch the check failed on, is no
        # learning rate's doing
        lower = self._eps_is_zero() + self.divergence_hint  # (a learning rate's advice)
        hint = "Fix the batches' class targets" if isinstance(exc, ClassTargetOutOfRange) \
            else f"Fix the data: {self._non_finite_batch}" if exc is not None \
            and self._non_finite_batch else f"{_WHERE_HINT}. {_IF_NO_PARAMETER}" \
            f"{lower}" if hidden else lower
        exc = TrainingDiverged(f"training diverged at step {failed} ({what}){found}. "
                               f"{hint}; {kept}")
        if self.dist is not None:
            # every rank gets here at the same step: the loss, gradient norm, parameters and
            # validation loss it checks are the same on every rank (all-reduced), so rank 0
            # alone reports it, with the checkpoint that only it writes
            exc.on_every_rank = True
        raise exc


class _UpdateLags:
    """A guard's view of the lags (Trainer.behind) of the parameters a step's plan updates,
    which the plan holds as constants: it is for those lags only. Only parameters that
    have ever lagged are read (the others' lag is 0, as it was when any plan was traced),
    so a run that freezes nothing reads none at each call."""

    def __init__(self, trainer, updated):
        self.trainer, self.updated = trainer, frozenset(updated)

    @property
    def lags(self) -> tuple:
        behind = self.trainer.behind
        return tuple((n, behind[n]) for n in self.trainer._lagged
                     if behind[n] and n in self.updated)

    def describe_change(self):
        return ("a parameter that had no gradient for some steps (frozen) gets one again, "
                "at its own count of updates")


class _Batches:
    """A batch source: a function of a numpy Generator, or an iterable of batches (see the
    module's docstring). `position`: batches drawn for training so far."""

    def __init__(self, source, what):
        self.what, self.position = what, 0
        self.function = source if callable(source) else None
        kinds = f"Trainer: {what} must be a function of a numpy Generator or an iterable of " \
            "batches"
        text = isinstance(source, (str, bytes))  # (iterable: its characters were batches)
        if self.function is None and (text or not hasattr(source, "__iter__")):
            got = repr(source)[:100] if text else a_type(source)
            raise GraphcError(f"{kinds}, got {got}", (user_location(),))
        if self.function is not None and not _takes_one_argument(source):
            # (one of no arguments is not taken as a loader's factory: refused, not guessed)
            raise GraphcError(f"{kinds}; {getattr(source, '__name__', what)}"
                              f"{inspect.signature(source)} does not take the rng ({what}(rng) "
                              "draws a batch with it)",
                              (user_location(),))
        self.iterable, self.iterator = source, None

    def draw(self, rng):
        batch = self.function(rng) if self.function else self._next()
        self.position += 1
        return _as_tuple(batch)

    def peek(self, rng):
        """The next batch, without using it up (nor the generator's state)."""
        if self.function:
            return _as_tuple(self.function(copy.deepcopy(rng)))
        batch = self._next()
        self.iterator = itertools.chain([batch], self.iterator)
        return _as_tuple(batch)

    def sample(self, rng, count):
        """`count` batches for an evaluation, one at a time (a large eval_iters held them
        all at once: 24 GB, and the kernel's out-of-memory kill): drawn with `rng`, or an
        iterable's first ones."""
        if self.function:
            return (_as_tuple(self.function(rng)) for _ in range(count))
        if iter(self.iterable) is self.iterable:
            raise GraphcError(f"Trainer: {self.what} is a one-pass iterator; evaluations need "
                              "batches they can go through again (a list)")
        return (_as_tuple(b) for b in itertools.islice(self.iterable, count))

    def can_seek(self, position) -> bool:
        """Whether seek(position) gives the batches from `position` on again: a one-pass
        iterator (a generator) cannot go back."""
        return self.function is not None or iter(self.iterable) is not self.iterable \
            or position >= self.position

    def seek(self, position):
        """Continue as if `position` batches had been drawn from the start."""
        if self.function is None:
            if iter(self.iterable) is self.iterable and position >= self.position:
                # a one-pass iterator (a generator) cannot start again: it goes on from the
                # batches it has given, the one peek() holds (the trainer's first, drawn to
                # compile the step) included; starting afresh skipped that one, so a resumed
                # run trained on each batch after the next
                skip = position - self.position
            else:
                self.iterator, self.position, skip = None, 0, position
            for _ in range(skip):
                self._next()
                self.position += 1
        self.position = position

    def _next(self):
        if self.iterator is None:
            self.iterator = iter(self.iterable)
        try:
            return next(self.iterator)
        except StopIteration:
            if iter(self.iterable) is self.iterable:
                raise GraphcError(f"Trainer: {self.what} ran out after {self.position} "
                                  "batches") from None
        self.iterator = iter(self.iterable)  # a new epoch
        try:
            return next(self.iterator)
        except StopIteration:
            raise GraphcError(f"Trainer: {self.what} yields no batches") from None


def _takes_one_argument(function) -> bool:
    """Whether `function` can be called with one positional argument (a batch source's rng)."""
    try:
        inspect.signature(function).bind(None)
    except TypeError:
        return False
    except ValueError:  # (no signature to read, a builtin's: taken as it is)
        return True
    return True


def _named_places(places, bases=None) -> dict:
    """{name: (module, attribute)} of Buffers, each under its name in its model
    (`bn1.running_mean`), or the one `bases` ({id(Buffer): name}) gives it; a name two
    Buffers share (layers of two separate models) is numbered."""
    named = {}
    for module, attr in places:
        buffer = getattr(module, attr)
        base = (bases or {}).get(id(buffer)) or buffer.name or "buffer"
        name, k = base, 1
        while name in named:
            name, k = f"{base}_{k}", k + 1
        named[name] = (module, attr)
    return named


def _dotted_place(module, attr) -> str:
    """The name of module.attr in its model (`bn.running_mean`)."""
    return (f"{module._path}." if module._path else "") + attr


def _model_names(loss, roots: dict, depth: int = 4) -> dict:
    """{id(model): the name `loss` holds it under} for the models `roots` ({id: model}):
    a global the loss (or a function it calls) reads, a variable it closes over, a default
    of its parameters, its object's attribute (a bound method's `self.model`), a
    functools.partial's argument, or an item or attribute of one of those (`models['a']`,
    `cfg.net`; a container of more than _MAX_ITEMS items, a data set, is not searched), at
    most `depth` steps down; of several names, the shortest (then the first in text
    order), so that the same script names each model the same way in every run, whatever
    the order the step reaches them. A model held under none of these is left out."""
    found, seen = {}, set()
    frontier = [("", loss)]
    for _ in range(depth):
        ahead = []
        for name, value in frontier:
            if id(value) in seen or isinstance(value, (str, bytes, numbers.Number, type,
                                                       np.ndarray)) or value is None:
                continue
            seen.add(id(value))
            if id(value) in roots:
                found.setdefault(id(value), []).append(name)
                continue
            if isinstance(value, nn.Module) or inspect.ismodule(value):
                continue
            ahead.extend(_held_by(name, value))
        frontier = ahead
    return {key: min(names, key=lambda n: (n.count(".") + n.count("["), n))
            for key, names in found.items()}


_MAX_ITEMS = 256  # (_model_names)


def _held_by(name, value) -> list:
    """[(name, value)] of what `value` (the loss, or one of its names' values) holds, each
    named from `name` (_model_names)."""
    if isinstance(value, functools.partial):
        return [(name, value.func), *((f"{name}[{i}]", a) for i, a in enumerate(value.args)),
                *((f"{name}[{k!r}]", a) for k, a in value.keywords.items())]
    if inspect.ismethod(value):
        return [(name or "self", value.__self__), (name, value.__func__)]
    if inspect.isfunction(value):
        code, held = value.__code__, []
        cells = zip(code.co_freevars, value.__closure__ or ())
        held += [(var, cell.cell_contents) for var, cell in cells
                 if _cell_filled(cell)]
        # its defaults (`def loss(p, batch, model=model)`), by their parameters' names
        positional = code.co_varnames[:code.co_argcount]
        given = value.__defaults__ or ()
        held += [*zip(positional[len(positional) - len(given):], given),
                 *(value.__kwdefaults__ or {}).items()]
        codes = [code]
        for c in codes:  # the names its nested functions (a lambda inside) read too
            codes += [k for k in c.co_consts if inspect.iscode(k)]
        held += [(g, value.__globals__[g]) for c in codes for g in c.co_names
                 if g in value.__globals__]
        return held
    if isinstance(value, Mapping):
        return [(f"{name}[{k!r}]", v) for k, v in value.items()
                if isinstance(k, (str, int))] if len(value) <= _MAX_ITEMS else []
    if isinstance(value, (list, tuple)):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)] \
            if len(value) <= _MAX_ITEMS else []
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return [(f"{name}.{k}" if name else k, v) for k, v in attrs.items()]
    return []


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # (a variable the loss closes over, not yet assigned)
        return False
    return True


def _plateau(optimizer, eval_batches):
    """The optimiser's ReduceLROnPlateau, or None; refused without validation batches."""
    plateau = getattr(optimizer, "lr", None)
    if not isinstance(plateau, optim.ReduceLROnPlateau):
        return None
    if eval_batches is None:
        raise GraphcError("Trainer: the optimizer's lr is a ReduceLROnPlateau, which steps on "
                          "the validation loss; give eval_batches= (evaluated every "
                          "eval_every steps)", (user_location(),))
    parameters = inspect.signature(optimizer.update).parameters
    if not isinstance(optimizer, optim.Optimizer) or "lr" not in parameters \
            or "step" not in parameters:
        raise GraphcError(f"Trainer: {type(optimizer).__name__}.update takes no step= and lr= "
                          "(gc.optim.Optimizer.update's), which a ReduceLROnPlateau's "
                          "learning rate is given by", (user_location(),))
    return plateau


# an optimiser of one's own (only init() and update()) has its whole state checkpointed as
# one slot, "state": arrays opt_state/PATH
_OTHER_SLOT = "state"
_OTHER_STATE = f"opt_{_OTHER_SLOT}"


def _slots(optimizer) -> tuple:
    """The per-parameter state slots of one of graphc's optimisers (state[slot][name]); an
    optimiser of one's own has none: its state is any pytree (Trainer._other_state)."""
    return optimizer.slots if isinstance(optimizer, optim.Optimizer) else ()


def _checkpointed_slots(optimizer) -> tuple:
    """The slots whose arrays a checkpoint holds (as PREFIX/NAME): for an optimiser of one's
    own, the one slot of its whole state."""
    return optimizer.slots if isinstance(optimizer, optim.Optimizer) else (_OTHER_SLOT,)


def _refuse_two_clips(clip_norm, optimizer):
    """torch.nn.utils.clip_grad_norm_ runs once before step(); two clips compose into the
    smaller norm (and a second factor of norm / (norm + 1e-6))."""
    if clip_norm is not None and isinstance(optimizer, optim.Groups):  # (a group's own)
        for i, group in enumerate(optimizer.optimizers):
            if group.clip_norm is not None:
                raise GraphcError(f"Trainer: clip_norm={clip_norm} and group {i}'s optimizer's "
                                  f"clip_norm={group.clip_norm} would clip its gradients twice "
                                  "(PyTorch's clip_grad_norm_ clips once); give one of them",
                                  (user_location(),))
    if clip_norm is not None and getattr(optimizer, "clip_norm", None) is not None:
        raise GraphcError(f"Trainer: clip_norm={clip_norm} and the optimizer's "
                          f"clip_norm={optimizer.clip_norm} would clip the gradients twice "
                          "(PyTorch's clip_grad_norm_ clips once); give one of them",
                          (user_location(),))


def _is_lr(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and value >= 0


def _scalar_loss(value):
    """The loss function's value, which must be one number: a loss of shape (1,) was
    trained on, then failed converting it to a float, after the step had updated the
    parameters."""
    if isinstance(value, (tuple, list, dict)):  # (a JAX-style (loss, metrics) pair)
        raise GraphcError(f"Trainer: the loss must return one number, got a "
                          f"{container_kind(value)} of {len(value)}", (user_location(),))
    shape = tuple(getattr(value, "shape", ()))
    if shape:
        raise GraphcError(f"Trainer: the loss function returned a value of shape {shape}; "
                          "it must return one number (reduce it, e.g. with gc.mean)",
                          (user_location(),))
    return value


def _as_tuple(batch):
    """A batch as the tuple the loss gets: a tuple or list of arrays, or one array."""
    if isinstance(batch, (tuple, list)):
        return tuple(batch)
    if batch is None or isinstance(batch, dict):  # (dict,) failed deep in the user's loss
        raise GraphcError(f"Trainer: a batch must be a tuple of arrays or one array, got "
                          f"{type(batch).__name__}", (user_location(),))
    return (batch,)


def _rows_as_arrays(batch):
    """A batch's pytree with each list or tuple of plain numbers or strings (labels given as
    a list) as one array of rows, as np.asarray made every batch element before nested
    batches were split by their leaves: a leaf per number would be refused as not per row.
    (tree_map keeps the batch's dict order, and rebuilds a dict as the pytree has it: a dict
    or an OrderedDict.)"""
    return tree_map(lambda x: np.asarray(x) if _is_row_list(x) else x, batch,
                    is_leaf=_is_row_list)


def _is_row_list(tree) -> bool:
    """A non-empty list or tuple of plain numbers or strings: one batch element by rows."""
    return isinstance(tree, (list, tuple)) and bool(tree) and all(
        isinstance(b, (numbers.Number, str, np.generic)) for b in tree)


def _scaler_facts(scaler) -> dict:
    """What data-parallel ranks must agree on of their loss scalers (handshake facts):
    whether each is enabled, and an enabled one's settings. A disabled one's settings have
    no effect (its scale is 1.0 and stays so): ranks that differ only in those agree."""
    if scaler is None:
        return {"scaler": None, "scaler_settings": None}
    settings = {k: v for k, v in scaler.settings().items() if k != "enabled"}
    return {"scaler": {"enabled": scaler.enabled},
            "scaler_settings": settings if scaler.enabled else None}


def _non_finite_in(batch, step) -> str | None:
    """Which float array of the batch of `step` holds a NaN or an Inf, said in words; None
    where none does."""
    leaves, _, names = flatten(batch)
    for name, leaf in zip(names, leaves):
        a = np.asarray(leaf) if leaf is not None else None
        if a is not None and is_float(a.dtype) and not np.isfinite(a).all():
            what = "NaN" if np.isnan(a).any() else "Inf"
            return f"the batch of step {step} holds {what} in its element {name or 0}"
    return None


def _with_finite(leaf, fill):
    """A batch leaf with its NaN and Inf taken as 0 (fill="zero") or as the mean of its
    finite values ("mean"; 0 where it has none), for _probe_non_finite_data."""
    a = np.asarray(leaf) if leaf is not None else None
    if a is None or not is_float(a.dtype) or np.isfinite(a).all():
        return leaf
    finite = np.isfinite(a)
    value = a[finite].astype(np.float64).mean() if fill == "mean" and finite.any() else 0.0
    return np.where(finite, a, np.asarray(value).astype(a.dtype))


def batch_digest(batch) -> str:
    """A short hash of a batch's values, shapes, dtypes and nesting, for the distributed
    handshake: equal bytes in another arrangement ((x, y) against (y, x) of one shape, or
    {"a": ..., "b": ...} against {"b": ..., "a": ...}) are other data."""
    leaves, structure = leaves_and_structure(_rows_as_arrays(batch))
    digest = hashlib.sha256(repr(structure).encode())
    for leaf in leaves:
        leaf = np.ascontiguousarray(leaf)
        digest.update(f"{leaf.shape}{leaf.dtype.str}".encode())
        # an object array's bytes are pointers, other in each process: its elements' reprs
        digest.update(repr(leaf.tolist()).encode() if leaf.dtype == object
                      else leaf.tobytes())
    return digest.hexdigest()[:16]


def checkpoint_file(path, what: str = "Trainer.resume: path") -> str:
    """Trainer.resume's `path` as a checkpoint file: fit()'s directory stands for its
    checkpoint.npz, as for `graphc train --resume` and `graphc sample --checkpoint`. `what`:
    the argument, for messages."""
    check_path(path, what, "a checkpoint file's path")
    path = os.fspath(path)  # a pathlib.Path: its messages name the file, not PosixPath('...')
    return os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path


def load_params(path, buffers: bool = False) -> dict:
    """The trained parameters of a checkpoint Trainer.save (or fit(), whose directory `path`
    may be) wrote, for inference without the loss, the data or a Trainer: {name: array}
    under the names the Trainer's params had (as text), each of the dtype it was saved
    with; `buffers=True` adds the Buffers it checkpointed (BatchNorm's running statistics)
    under their state_dict() names, so that `model.load_state_dict(gc.load_params(path,
    buffers=True))` loads a model trained as `gc.Trainer(loss, model.params(), ...)`: the
    file holds every Buffer the step reads or writes (a constant one and a frozen
    BatchNorm's too) and their modules' other persistent ones (that BatchNorm's
    num_batches_tracked). A Buffer of a module the loss never reaches is not in it, nor one the
    step only reads in a checkpoint written before such Buffers were saved: that strict
    load names it, and strict=False keeps the fresh model's own. The
    file is checked as resume() checks it (one CheckpointError line naming it): its
    header, each array, and its members, none but those save() writes; a `graphc train`
    checkpoint reads too (the GPT's parameters, checked against the model its header
    names)."""
    path = checkpoint_file(path, "load_params: path")
    arrays, meta = checkpoint.load_saved(path, ("param/", "buffer/") if buffers else
                                         ("param/",),
                                         lambda members: _refuse_unsaved_members(members, path))
    written = meta.get("written_buffers")  # (a file written before they were recorded:
    if written is not None:  # none is told from one the step only reads, a mask's -inf)
        if not isinstance(written, list) or not all(isinstance(n, str) for n in written):
            raise checkpoint.CheckpointError(f"checkpoint {path!r}: header field "
                                             f"written_buffers must be a list of buffer "
                                             f"names, got {written!r}"[:300])
        _refuse_non_finite_buffers(arrays, {f"buffer/{n}" for n in written}, path)
    params = {k.split("/", 1)[1]: a for k, a in arrays.items() if k.startswith("param/")}
    for key, a in arrays.items():
        name = key.split("/", 1)[1]
        if key.startswith("buffer/") and params.setdefault(name, a) is not a:
            raise checkpoint.CheckpointError(f"checkpoint {path!r} holds a parameter and a "
                                             f"buffer both named {name!r}")
    return params


def _refuse_non_finite_buffers(arrays, written, path=None) -> None:
    """Refuse (one CheckpointError line naming it and the file) a NaN or an Inf in one of
    the checkpoint's Buffers `written` (buffer/NAME) that the step writes: save() never
    writes one (divergence), so the file was changed or damaged. (checkpoint.load refuses
    NaNs in every Buffer; one the step only reads may hold an Inf, a mask's -inf.)"""
    for key in sorted(written):
        if key in arrays and not np.isfinite(arrays[key]).all():
            raise checkpoint.CheckpointError(
                f"checkpoint {path!r}: {key} holds non-finite values (NaN or inf)" if path
                else f"checkpoint {key} holds non-finite values (NaN or inf)")


def _refuse_unsaved_members(members, path):
    """Refuse (one CheckpointError line) a zip member of the Trainer checkpoint at `path`
    that save() never writes (state_arrays): an optimiser slot's PREFIX/NAME whose
    param/NAME is missing (read without it, the parameters came back fewer than were
    trained), or another name. param/, buffer/, the optimiser's slots, an optimiser of
    one's own state and float16's loss scale are what it writes."""
    params = {m[len("param/"):-len(".npy")] for m in members
              if m.startswith("param/") and m.endswith(".npy")}
    slot_prefixes, loss_scale = set(_SLOT_PREFIX.values()), set(amp.LossScaler.STATE_KEYS)
    for member in sorted(members):
        prefix, sep, name = member[:-len(".npy")].partition("/")
        # PREFIX/NAME.npy; NAME may be "" (a parameter named "", which the Trainer takes),
        # told from a bare PREFIX.npy by the "/"
        array = member.endswith(".npy") and sep == "/"
        slot = array and prefix != _OTHER_STATE \
            and (prefix in slot_prefixes or prefix.startswith("opt_"))
        if slot and name not in params:
            raise checkpoint.CheckpointError(f"checkpoint {path!r} holds {prefix}/{name} but "
                                             f"not param/{name}, the parameter it belongs to "
                                             "(the file was changed or damaged)")
        if not (slot or array and (prefix in ("param", "buffer", _OTHER_STATE)
                                   or prefix == "amp" and name in loss_scale)):
            raise checkpoint.CheckpointError(f"checkpoint {path!r} holds {member}, which "
                                             "gc.Trainer.save does not write (the file was "
                                             "changed or damaged)")


def _print(text):
    print(text, flush=True)


class _ReaderAwareStdout:
    """sys.stdout while fit() runs, noting a reader that went away (`graphc train | head -4`):
    the BrokenPipeError of a line or of the progress bar failed the run ("graphc: error:
    [Errno 32] Broken pipe"), losing the steps since the last save. Now stdout is pointed at
    /dev/null (files.discard_stdout: later prints and the exit's flush would fail too), and
    `reader_gone` (SIGPIPE, else 0) stops the run at the next step boundary after saving, as
    a SIGINT does. A `log` of one's own that raises BrokenPipeError itself is not stdout's:
    that error goes to the caller."""

    def __init__(self, stream, text=None):
        self.stream, self.reader_gone = stream, 0
        self._text = text  # the text stream whose binary buffer this one is
        # while fit() runs (`notes_failures`), a write that fails otherwise (a full disk,
        # `graphc train > /dev/full`) is noted too, as `failed` (its one-line OSError), and
        # stops the run after saving: it failed the run, losing the steps since the last save
        self.notes_failures, self.failed = False, None

    @property
    def buffer(self):
        """The binary stream beneath (`graphc dump --format png | head -c 8`), whose reader
        going away is noted on this one too."""
        return _ReaderAwareStdout(self.stream.buffer, text=self)

    def write(self, text):
        if self.stream is None:  # (no stdout, `graphc sample >&-`: discarded, as print() does)
            return len(text)
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)
        except OSError as exc:  # (a full disk): one line that names stdout
            self._failed(stdout_error(exc))
            return len(text)

    def flush(self):
        if self.stream is None:  # (no stdout, `graphc eval >&-`: nothing to flush)
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._gone()
        except OSError as exc:
            self._failed(stdout_error(exc))

    def _failed(self, error: OSError):
        noted = self if self._text is None else self._text
        if not noted.notes_failures:
            raise error from None
        noted.failed = noted.failed or error
        self._gone()

    def _gone(self):
        self.reader_gone = signal.SIGPIPE
        if self._text is not None:
            self._text.reader_gone = signal.SIGPIPE
        # (a stream without a file descriptor, a notebook's or a socket's, is left as it is:
        # its writes go on failing here, quietly)
        with contextlib.suppress(OSError, AttributeError, ValueError):
            discard_stdout()
            self.stream.flush()  # what its buffer held goes to /dev/null now

    def __getattr__(self, name):  # fileno, isatty, encoding...: the stream's own
        return getattr(self.stream, name)


@contextlib.contextmanager
def _reader_aware_stdout():
    """sys.stdout as a _ReaderAwareStdout within the block (yielded), restored after it if
    it is still that (a log that set sys.stdout keeps its own; fits in two threads do not
    put back each other's: the second one shares the first one's). No stdout (None,
    pythonw's): left as it is, nothing to note."""
    original = sys.stdout
    if original is None or isinstance(original, _ReaderAwareStdout):
        yield original or _ReaderAwareStdout(None)
        return
    sys.stdout = stdout = _ReaderAwareStdout(original)
    try:
        yield stdout
    finally:
        if sys.stdout is stdout:
            sys.stdout = original


def _with_key_and_mode(loss):
    """loss(params, batch) or loss(params, batch, key, training) -> the 4-argument form.
    Any other is refused in one line (it failed inside the first trace, a TypeError)."""
    forms = "loss(params, batch) or loss(params, batch, key, training)"
    if not callable(loss):
        raise GraphcError(f"Trainer: loss must be a function, {forms}, got {loss!r}"[:200],
                          (user_location(),))
    try:
        signature = inspect.signature(loss)
    except (TypeError, ValueError):  # (a builtin: taken as it is)
        return loss
    # the 4-argument form where it takes 4 by position; a keyword-only `reduction=` or
    # `**extra` does not make a 2-argument loss one
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                     for p in signature.parameters.values())
    for count in (4, 2) if positional >= 4 else (2,):
        try:
            signature.bind(*range(count))
        except TypeError:
            continue
        if count == 4:
            return loss
        return lambda params, batch, key, training: loss(params, batch)
    raise GraphcError(f"Trainer: the loss {function_name(loss)}{signature} cannot be called "
                      f"as {forms}", (user_location(),))


def _check_loss_scale(state: dict, path: str | None = None) -> None:
    """A checkpoint's float16 loss scale (`path`: its file, for messages): a finite scale of
    at least amp.SMALLEST_LOSS_SCALE (below it 1/scale is Inf: no run saves one) and a count
    of good steps >= 0 (a scale of 0 made every step overflow, reported as divergence with a
    hint to lower the learning rate; a negative one flipped every gradient's sign)."""
    name = f"checkpoint {path!r}:" if path else "checkpoint"
    scale, good = state.get("amp/scale"), state.get("amp/good_steps")
    if scale is not None and not (np.isfinite(scale).all() and (scale > 0).all()):
        raise checkpoint.CheckpointError(f"{name} amp/scale must be a finite positive loss "
                                         f"scale, got {np.asarray(scale).tolist()}")
    smallest = amp.SMALLEST_LOSS_SCALE
    if scale is not None and not (scale >= smallest).all():
        raise checkpoint.CheckpointError(
            f"{name} amp/scale must be a loss scale of at least float32's smallest normal "
            f"number, {smallest:.4g}, got {str(np.asarray(scale))}, which no run saves (the "
            "file was changed or damaged)")
    if good is not None and not (good >= 0).all():
        raise checkpoint.CheckpointError(f"{name} amp/good_steps must be 0 or more, got "
                                         f"{np.asarray(good).tolist()}")


def _buffer_names_field(path: str | None, field: str = "buffer_names") -> str:
    """How a refusal of a checkpoint's buffer_names or buffer_models
    (Trainer._saved_buffer_names) begins: naming the file where it is known, as
    checkpoint.saved_accumulation's does."""
    where = f"checkpoint {path!r}" if path else "the checkpoint"
    return f"{where}: header field {field}"


def _resumed_setting(name, mine, initial, current, allow_changed_settings, how, path=None):
    """The value of the optimiser's setting `name` (the lr, a momentum, a flag, ...) a
    resumed run goes on with, or None for this trainer's own, `mine`: the checkpoint's
    `current` one where `mine` is the `initial` one the run started with (a schedule is
    None in both: no file holds a function). A run that started with a schedule and was
    set to a number goes on with the number (resumed on the schedule, it trained on it
    again from the step, silently not the run it continued); one whose starting number
    was set to a schedule is refused in one line, unless allow_changed_settings (`how`:
    the opt-in the line names), as this trainer would silently go on with the number.
    `path`: the checkpoint's file where it is known, which the line names."""
    if mine != initial or mine == current:
        return None
    if current is None and not allow_changed_settings:
        run = f"checkpoint {path!r}: its run" if path else "the checkpoint's run"
        raise GraphcError(f"{run} started with {name} {mine} and was set to a "
                          f"schedule, which a checkpoint cannot hold; set "
                          f"trainer.optimizer.{name} to that schedule before resuming, or "
                          f"pass {how} to go on with {name} {mine}", (user_location(),))
    return current


def _followed_slots(optimizer, state, aside, params):
    """-> (state, aside): `state` holding the slots `optimizer`'s settings keep now
    (Trainer._follow_slots), `aside` {slot: arrays} those it holds aside; the same objects
    where nothing changes. `params()`: the parameters, for init (read only where a slot is
    made)."""
    slots = set(optimizer.slots)
    if set(state) == {"count", *slots} and not aside:
        return state, aside
    state = dict(state)
    for slot in [s for s in state if s != "count" and s not in slots
                 and s in optimizer.optional_slots]:
        aside[slot] = state.pop(slot)
    back = [s for s in slots if s not in state and s in aside]
    state.update({s: aside.pop(s) for s in back})
    if [s for s in slots if s not in state and s not in optimizer.marks]:
        # (a buffer made now has not started: its mark too; a mark held without its
        # buffer is left to follow_marks, from the counts)
        fresh = optimizer.init(params())
        state.update({s: fresh[s] for s in slots if s not in state or
                      (s in optimizer.marks and s not in back)})
    return state, aside


def _in_group(name, group):
    """A setting's name as a line names it: `optimizers[1].lr` in gc.optim.Groups' group 1."""
    return name if group is None else f"optimizers[{group}].{name}"


RESTORED = "(restored)"  # in Trainer._saved_to: a checkpoint of unknown path restored


def _jsonable(state):
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    if isinstance(state, np.integer):
        return int(state)
    return state


def _optimizer_settings(optimizer, steps: int) -> dict:
    """What the ranks must agree on of an optimiser: its class and its settings (lr, betas,
    eps, weight decay, momentum, ...; a function, such as a decay mask, by its name). A
    schedule (the lr's, a momentum's, ...) is compared by its values over the run: at each
    of the first 100 steps (warmups) and at about 1,000 steps spread over the rest."""
    out = {"class": type(optimizer).__name__}
    scheduled = {"lr", *getattr(optimizer, "hyperparameters", ())}
    for name, value in sorted(getattr(optimizer, "__dict__", {}).items()):
        if name in scheduled and callable(value):
            at = sorted(set(range(min(steps, 100))) | set(range(0, steps + 1,
                                                                max(1, steps // 1000))))
            try:
                out.update({f"{name} at step {s}": float(value(s)) for s in at})
                continue
            except Exception:  # one failing at a step: compared by its name (the trainer
                pass           # reports the failure at that step)
        out[name] = _setting(value)
    return out


def _setting(value):
    """A setting as a JSON value that is the same on every rank that has the same setting
    (not an object's repr, which holds its address)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_setting(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _setting(v) for k, v in value.items()}
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '?')}"
    return type(value).__name__


class StopAtStepBoundary:
    """SIGINT and SIGTERM set a flag instead of stopping the process mid-step: the step plan
    updates parameters and optimiser state in place, so the state is only consistent between
    steps. A second SIGINT interrupts at once (the checkpoint on disk is the previous one;
    checkpoint.save replaces it atomically)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum

    def __enter__(self):
        try:
            for sig in self.SIGNALS:
                # a signal the launcher ignores (a background job's SIGINT) stays ignored
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals stay as they are
            pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def plot_losses(history, val_history, path, title="training loss", ylabel="loss"):
    """The training and validation loss curves, as a PNG written atomically."""
    from .files import new_figure, save_figure

    fig = new_figure((7, 4))
    ax = fig.subplots()
    if history:
        steps, losses = zip(*history)
        ax.plot(steps, losses, lw=0.8, alpha=0.6, label="train")
    if val_history:
        steps, losses = zip(*val_history)
        ax.plot(steps, losses, "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if history or val_history:  # (a fit of no step and no evaluation has no curve: the legend
        ax.legend()             # of none was matplotlib's "No artists with labels" warning)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
