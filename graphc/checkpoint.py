"""Checkpoints: one .npz file of arrays plus a JSON header, written atomically, read without
pickle.

The file is written to a temporary name in the same directory, flushed to disk and renamed
over the old one, so a crash mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import math
import os
import tokenize
import zipfile
from dataclasses import fields

import numpy as np

from ir.errors import GraphcError, a_type
from ir.serialize import check_json_depth
from ir.ops.precision import PRECISIONS
from ir.types import BFLOAT16, is_real

from .amp import LossScaler
from .files import atomic_writer, check_writable, file_in_the_way, file_type

FORMAT = "graphc-checkpoint"
VERSION = 1
META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


def save(path: str, arrays: dict, meta: dict, before_replace=None) -> None:
    """Write `arrays` ({name: array}) and the JSON header `meta` to `path`, atomically
    (`before_replace`: files.atomic_writer's). An
    entry of None is an empty pytree (as in JAX): nothing is written for it. An array of
    anything but numbers is refused (np.asarray of a None inside a pytree, or of Python
    objects, is an object array, which numpy would pickle, and a checkpoint is read without
    pickle; the reader would refuse the file)."""
    path = os.fspath(path)  # a pathlib.Path: its messages name the file, not PosixPath('...')
    payload = {}
    for name, a in arrays.items():
        if a is None:
            continue
        a = np.asarray(a)
        if a.dtype.kind not in "biufc" and a.dtype != BFLOAT16:
            raise CheckpointError(f"checkpoint {path!r}: {name} has dtype {a.dtype}, not a "
                                  "numeric one; a checkpoint holds arrays of numbers (an entry "
                                  "of None, an empty subtree, is left out)")
        payload[name] = _as_stored(a)
    check_writable(path, "checkpoint")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:  # "[Errno 17] File exists: 'd.txt'" named neither the checkpoint
        # nor which file is in the way
        blocker = file_in_the_way(path)
        why = f"{blocker} is not a directory" if blocker else exc.strerror or str(exc)
        raise GraphcError(f"cannot write checkpoint {path!r}: {why}") from None
    # the format's own fields are this writer's whatever `meta` holds (a loaded header's,
    # saved again; another value would make the file unreadable)
    own = {"format": FORMAT, "version": VERSION}
    try:
        header = json_header({**own, **{k: v for k, v in meta.items() if k not in own}})
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path!r}: {exc}") from None
    payload[META_KEY] = np.frombuffer(header, dtype=np.uint8)
    # a temporary file renamed over `path`; one a killed save left is removed by the next
    with atomic_writer(path, before_replace) as fh:
        np.savez(fh, **payload)


# The header fields gc.Trainer.save writes about the run itself; the others are the user's
# settings (Trainer's checkpoint_meta; the GPT's model, train and vocab).
MAX_STEP = 2 ** 62  # a step count the optimiser's int64 count and the data position hold
RUN_FIELDS = ("format", "version", "step", "skipped_steps", "rng", "data_position", "history",
              "val_history", "lr_on_plateau", "optimizer_lr", "optimizer_settings",
              "updates_behind", "optimizer_record", "gradient_accumulation_steps",
              "loss_scaler_enabled", "loss_scaler_settings", "buffer_names", "buffer_models",
              "written_buffers", "group_settings",
              # where graphc wrote the seed for a while (now rng's "seed": check_seed): kept
              # out of the settings compared and refused in checkpoint_meta, so those files
              # resume and new ones never hold it
              "trainer_seed")
# Settings a resumed run may change without opting in (at any depth: "steps", "train.steps"):
# how long it trains (extending a run), how often and on how many batches it evaluates, and
# the precision (switching to fp16-mixed starts a fresh loss scale, as GradScaler's). Every
# other change (a learning rate, a width recorded in the settings) is refused unless allowed.
RESUMABLE_CHANGES = ("steps", "eval_every", "eval_iters", "precision")


def changed_settings(meta: dict, settings: dict) -> list[str]:
    """'KEY: OLD -> NEW' for each setting (nested keys dotted) where the checkpoint's header
    `meta` and the resuming run's `settings` differ, RESUMABLE_CHANGES left out."""
    old = _flat({k: v for k, v in meta.items() if k not in RUN_FIELDS})
    # as the header will hold them: JSON (tuples are lists, numpy scalars numbers)
    new = _flat(json.loads(json.dumps(settings, default=_json_default)))
    return [f"{k}: {_shown(old, k)} -> {_shown(new, k)}" for k in sorted(set(old) | set(new))
            if old.get(k, _ABSENT) != new.get(k, _ABSENT)
            and k.rsplit(".", 1)[-1] not in RESUMABLE_CHANGES]


def check_settings(meta: dict, settings: dict, path: str, allow_changed: bool = False,
                   how: str = "allow_changed_settings=True") -> None:
    """Refuse (one GraphcError line naming each difference) to resume the checkpoint at
    `path` with settings other than those it was saved with, unless `allow_changed`; `how`
    names the opt-in in the message."""
    diffs = [] if allow_changed else changed_settings(meta, settings)
    if diffs:
        raise GraphcError(f"{path} was saved with other settings ({'; '.join(diffs)}); resume "
                          f"with the checkpoint's settings, or pass {how} to continue with "
                          "the new ones")


def optimizer_record(optimizer) -> dict:
    """What a checkpoint header records of the optimiser (field `optimizer_record`: a name no
    user setting is likely to have, checkpoint_meta's keys sharing the header): its class and
    the slots of state it keeps for each parameter."""
    # (an optimiser of one's own, with only init() and update(), keeps no named slots)
    return {"class": type(optimizer).__name__, "slots": list(getattr(optimizer, "slots", ()))}


def check_optimizer(meta: dict, mine: dict, path: str | None = None,
                    allow_changed: bool = False,
                    how: str = "allow_changed_settings=True", older=(),
                    describe=None) -> dict | None:
    """The optimiser record of the checkpoint header `meta` where the resuming run's
    optimiser (`mine`, optimizer_record's) cannot take its state: another class, or the same
    one keeping a slot the checkpoint lacks (SGD's momentum set from 0, amsgrad); else None
    (the same optimiser, one that keeps fewer slots, or a checkpoint written before the
    optimiser was recorded). Such a change is refused, one GraphcError line naming both,
    unless `allow_changed`: the state the checkpoint cannot give then starts afresh (see
    gc.Trainer.restore). `path`: the file, for messages. `older`: slots of the optimiser's
    that a checkpoint written before it kept them lacks, which the resume makes from each
    parameter's count of updates (SGD's "started", Optimizer.older_slots): not a change.
    `describe(slots, brief)`: the resuming optimiser's slots in a user's words (its class's
    Optimizer.describe_slots: torch's names of the state, SGD's "started" mark left out),
    for the line naming the slots of one class; without it, the slots' names."""
    saved = meta.get("optimizer_record")
    if saved is None or saved == mine:
        return None
    name = path or "the checkpoint"
    if not (isinstance(saved, dict) and set(saved) == {"class", "slots"}
            and isinstance(saved["class"], str) and isinstance(saved["slots"], list)
            and all(isinstance(slot, str) for slot in saved["slots"])):
        raise CheckpointError(f"{name}: header field optimizer_record must be {{'class': name, "
                              f"'slots': [names]}}, got {saved!r}"[:200])
    added = [slot for slot in mine["slots"] if slot not in saved["slots"] and slot not in older]
    if saved["class"] != mine["class"]:
        theirs, ours = saved["class"], mine["class"]
        fresh = f"{ours}'s state afresh (each parameter's count of updates at 0)"
    elif added:
        def words(slots, brief=False):
            return describe(slots, brief) if describe is not None else \
                ", ".join(slots) or "no state"

        def shown(record):
            return f"{record['class']} keeping {words(record['slots'])}"
        theirs, ours, fresh = shown(saved), shown(mine), f"{words(added, True)} afresh"
    else:
        return None
    if not allow_changed:
        raise GraphcError(f"{name} was saved with {theirs}, this run uses {ours}; resume "
                          f"with the checkpoint's optimizer, or pass {how} to start {fresh}")
    return saved


def check_loss_scaler(meta: dict, enabled: bool, path: str | None = None,
                      allow_changed: bool = False,
                      how: str = "allow_changed_settings=True",
                      settings: dict | None = None) -> bool:
    """Whether the loss scale of the checkpoint header `meta` starts afresh in the resuming
    run, whose gc.amp.LossScaler is `enabled`: one saved by a disabled scaler (header field
    loss_scaler_enabled false: a scale of 1.0 that never moved) resumed by an enabled one is
    refused, one GraphcError line naming the file, as torch's enabled GradScaler refuses a
    disabled one's (empty) state_dict, unless `allow_changed` (then True: the scale starts at
    the scaler's init_scale). A header without the field (written before it was kept, or by
    a run without a scaler) is taken as before (False).

    `settings`: the enabled scaler's LossScaler.RESUMED_SETTINGS ({name: value}); the saved
    ones (header field loss_scaler_settings, written by an enabled scaler) that differ are
    refused likewise, naming each, unless `allow_changed` (the restored scale then goes on
    by this run's settings; torch's load_state_dict would take the saved ones silently). A
    disabled scaler's settings have no effect: nothing is compared."""
    saved = meta.get("loss_scaler_enabled")
    name = f"checkpoint {path!r}" if path else "the checkpoint"
    if saved is not None and not isinstance(saved, bool):
        raise CheckpointError(f"{name}: header field loss_scaler_enabled must be true or "
                              f"false, got {saved!r}"[:200])
    if enabled and settings is not None and saved is not False:
        _check_loss_scaler_settings(meta, settings, path, allow_changed, how)
    if saved is not False or not enabled:
        return False
    if not allow_changed:
        raise GraphcError(f"{path or 'the checkpoint'} was saved with a disabled loss scaler "
                          "(LossScaler(enabled=False): its scale 1.0 is no dynamic scale), "
                          "this run's is enabled; resume with a disabled one, or pass "
                          f"{how} to start the loss scale afresh")
    return True


def _check_loss_scaler_settings(meta, settings, path, allow_changed, how) -> None:
    """check_loss_scaler's comparison of the saved loss scaler settings with `settings`."""
    saved = meta.get("loss_scaler_settings")
    if saved is None:  # (written before the settings were kept: nothing to compare)
        return
    name = f"checkpoint {path!r}" if path else "the checkpoint"
    if not (isinstance(saved, dict) and set(saved) == set(settings)
            and all(finite_number(v) for v in saved.values())):
        raise CheckpointError(f"{name}: header field loss_scaler_settings must be "
                              f"{{{', '.join(repr(k) + ': number' for k in settings)}}}, got "
                              f"{saved!r}"[:300])
    for key in settings:  # each by the scaler's own rule (a growth_interval of 2.5 read as a
        # setting was compared, or with allow_changed passed over, as a valid one)
        try:
            LossScaler.checked_setting(key, saved[key],
                                       f"{name}: header field loss_scaler_settings.{key}")
        except GraphcError as exc:
            raise CheckpointError(exc.message[:300]) from None
    changed = [k for k in settings if saved[k] != settings[k]]
    if changed and not allow_changed:
        def shown(values):
            return ", ".join(f"{k}={values[k]!r}" for k in changed)
        raise GraphcError(f"{path or 'the checkpoint'} was saved with LossScaler("
                          f"{shown(saved)}), this run's has {shown(settings)}; resume with the "
                          f"checkpoint's, or pass {how} to go on with this run's")


_ABSENT = object()


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _shown(flat: dict, key: str) -> str:
    if key not in flat:
        return "(absent)"
    text = json.dumps(flat[key])
    return text if len(text) <= 40 else text[:37] + "..."


def _json_default(value):
    return value.item() if isinstance(value, np.generic) else repr(value)


def check_header_settings(settings: dict) -> None:
    """The settings a run records in its checkpoint header (gc.Trainer's checkpoint_meta),
    checked before any training: none of the header's own fields (RUN_FIELDS: the format
    and what the trainer saves of the run, which would be overwritten or make the file
    unreadable), JSON values (numpy scalars as numbers), no NaN (a resumed run's NaN never
    equals the saved one, so it could not resume without allow_changed_settings; an infinity
    is saved as Infinity and compares equal) and no deeper nesting than a header is read
    with. ValueError or TypeError, naming the key."""
    clashing = sorted(k for k in settings if k in RUN_FIELDS)  # (all named, not the first)

    def whose(key):
        return "the format's" if key in ("format", "version") else "the trainer's, of the run"
    if len(clashing) == 1:
        raise ValueError(f"{clashing[0]!r} is a checkpoint header field of its own "
                         f"({whose(clashing[0])}); name the setting otherwise")
    if clashing:
        raise ValueError(", ".join(f"{k!r} ({whose(k)})" for k in clashing) + " are "
                         "checkpoint header fields of their own; name the settings otherwise")
    json_header(settings)
    _check_header_values(settings, "", 1)


def _check_header_values(value, where, depth):
    if isinstance(value, dict):
        items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    else:
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            raise ValueError(f"{where} is NaN, which never equals itself: a run saving it "
                             "could not be resumed with the same settings (use None)")
        return
    if depth > MAX_HEADER_NESTING:
        raise ValueError(f"{where} nests more than {MAX_HEADER_NESTING} levels deep, deeper "
                         "than a checkpoint header is read")
    for name, item in items:
        _check_header_values(item, name, depth + 1)


def json_header(meta: dict) -> bytes:
    """A checkpoint's header: `meta` as JSON, a numpy scalar (n_head=np.int64(2), an
    lr=np.float32(0.1)) as its Python number; a TypeError naming any other value JSON
    cannot hold."""
    def plain(value):
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"a checkpoint header holds JSON values, and {value!r} ("
                        f"{a_type(value)}) is none"[:300])
    return json.dumps(meta, default=plain).encode("utf-8")


# .npy has no bfloat16 (numpy would write it as raw 2-byte voids): a bfloat16 array is stored
# as its bits, uint16, and read back as bfloat16 where the model says the array is one; read
# without the model, a uint16 array is one too (graphc has no uint16 parameters or buffers)
def _stored_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype("<u2") if dtype == BFLOAT16 else dtype


def _as_stored(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype == BFLOAT16 else a


# Everything is validated before the arrays are read: the JSON header against a schema, then
# each array's declared dtype and shape (from the .npy header inside the zip member) against
# the model its header describes and against the bytes the member really holds. Only the
# members the model needs are read, so an oversized or hostile extra member costs nothing.
_ADAMW = {"class": "AdamW", "slots": ["m", "v"]}  # the GPT's optimiser (graphc/train.py)
MAX_HEADER_BYTES = 64 << 20
MAX_HEADER_NESTING = 16
_INT = "an integer (at most 2**62)"


def load(path: str, optimizer: bool = True):
    """-> (arrays, meta): the model's parameters ('param/NAME'), with `optimizer` also its
    AdamW moments ('adam_m/NAME', 'adam_v/NAME'), and the validated header. Raises
    CheckpointError, one line naming the file and the problem, for any bad file, one holding
    a parameter or buffer its header's model lacks included."""
    return _read(path, lambda meta, members: _gpt_arrays(meta, members, path, optimizer))


# The sizes a GPT checkpoint's model configuration names: a gc.Trainer user's own settings
# may hold a `model` dict and a `vocab` string too (checkpoint_meta shares the header)
GPT_SIZES = ("vocab_size", "n_layer", "n_head", "n_embd")


def is_gpt_header(meta: dict) -> bool:
    """Whether a checkpoint header is a GPT's (`graphc train`'s): its settings are the
    model configuration (naming GPT_SIZES), the training settings and the vocabulary. A
    damaged value there is left for the GPT reader's checks to name."""
    model = meta.get("model")
    return isinstance(model, dict) and all(key in model for key in GPT_SIZES) \
        and isinstance(meta.get("train"), dict) and isinstance(meta.get("vocab"), str)


def _gpt_arrays(meta, members, path, optimizer):
    """load's arrays to read ({name: (shape, dtype)}) of the GPT checkpoint at `path`, once
    its header is checked against the schema and its `members` against the model it names."""
    cfg = _check_meta(meta, path)
    if cfg.n_layer * 8 > len(members):  # each block has at least 8 parameters
        raise CheckpointError(f"checkpoint {path!r}: header declares {cfg.n_layer} "
                              f"layers, but the file holds {len(members)} arrays")
    prefixes = ("param", "adam_m", "adam_v") if optimizer else ("param",)
    shapes = parameter_shapes(cfg)
    arrays = {f"{prefix}/{name}": (shape, cfg.dtype)
              for name, shape in shapes.items() for prefix in prefixes}
    if meta.get("optimizer_record", _ADAMW) != _ADAMW:  # another optimiser's: its slots are
        # read where the file has them, the resuming run decides (check_optimizer)
        arrays = {k: v for k, v in arrays.items()
                  if k.startswith("param/") or k + ".npy" in members}
    if optimizer and meta["train"].get("precision") == "fp16-mixed":  # the loss scale
        arrays.update({"amp/scale": ((), np.float32), "amp/good_steps": ((), np.int64)})
    # a parameter or buffer the header's model lacks (the GPT has no buffers) is refused, as
    # gc.Trainer.resume refuses one, rather than silently left unread; with no opt-in: a
    # resume cannot change a GPT's model (check_compatible), so it is a damaged file
    refuse_unexpected_arrays([m[:-len(".npy")] for m in members if m.endswith(".npy")],
                             {f"param/{name}" for name in shapes}, path, how=None)
    return arrays


def load_arrays(path: str, wanted: dict, optional=(), strict_params: bool = False,
                how: str = "allow_changed_settings=True", renamed=None):
    """-> (arrays, meta) of a checkpoint written by gc.Trainer.save for any model: `wanted`
    maps each array's name to the (shape, dtype) it must have, checked from its .npy header
    before it is read; the names in `optional` are read only where the file has them; the
    header must be a graphc checkpoint's with a step and a valid training RNG state. Raises
    CheckpointError, one line, for any bad file. `strict_params` (a resume's): a parameter
    or buffer the file holds that `wanted` lacks (param/NAME, buffer/NAME: another, larger
    model's) is refused too, as torch's strict load_state_dict refuses unexpected keys; `how`
    names the opt-in that leaves them out. `renamed(meta)`: {name in the file: name in
    `wanted`} of the arrays the file holds under another name (gc.Trainer's Buffers of
    several models: its header's buffer_models, or an older file's buffer_names), read
    under the file's name with the shape and dtype wanted under the other."""
    def expected(meta, members):
        _check_common_meta(meta, path)
        theirs = {} if renamed is None else {k: saved for saved, k in renamed(meta).items()}
        want = {theirs.get(k, k): v for k, v in wanted.items()}
        maybe = {theirs.get(k, k) for k in optional}
        # (one lacking this model's own parameters is another model's: "lacks param/w")
        if strict_params and all(k + ".npy" in members for k in want
                                 if k.startswith("param/")):
            refuse_unexpected_arrays([m[:-len(".npy")] for m in members if m.endswith(".npy")],
                                     want, path, how)
        return {k: v for k, v in want.items() if k not in maybe or k + ".npy" in members}
    return _read(path, expected)


def load_saved(path: str, prefixes=("param/",), check_members=None):
    """-> (arrays, meta) of a checkpoint written by gc.Trainer.save for any model, read
    without the model: every array whose name starts with one of `prefixes`, with the shape
    and dtype its .npy header declares (a bfloat16 one, stored as its bits, as bfloat16),
    after the header is checked as load_arrays checks it and `check_members(names)` (the
    zip members' names, the header's left out) has raised for none it finds wrong. A GPT
    checkpoint (`graphc train`'s) is read as load(path, optimizer=False) reads it, against
    the model its header names. Raises CheckpointError, one line naming the file, for any
    bad file."""
    def expected(meta, members):
        if is_gpt_header(meta):
            return _gpt_arrays(meta, members, path, optimizer=False)
        _check_common_meta(meta, path)
        if check_members is not None:
            check_members([m for m in members if m != META_KEY + ".npy"])
        return {name: (None, None)
                for name in (m[:-len(".npy")] for m in members if m.endswith(".npy"))
                if name.startswith(prefixes)}
    return _read(path, expected)


def refuse_unexpected_arrays(names, wanted, path: str | None = None,
                             how: str = "allow_changed_settings=True") -> None:
    """Refuse (one CheckpointError line) a parameter or buffer among a checkpoint's array
    `names` (param/NAME, buffer/NAME) that `wanted` lacks: another, larger model's, as torch's
    strict load_state_dict refuses unexpected keys. `how`: the opt-in that leaves them out;
    None where there is none, the model being the one the checkpoint's header names (a GPT
    checkpoint's): the file was changed or damaged."""
    unexpected = sorted(n for n in names if n.startswith(("param/", "buffer/"))
                        and n not in wanted)
    if unexpected:
        shown = ", ".join(unexpected[:5]) + (f" and {len(unexpected) - 5} more"
                                             if len(unexpected) > 5 else "")
        name = f"checkpoint {path!r}" if path else "the checkpoint"
        if how is None:
            raise CheckpointError(f"{name} holds parameters or buffers the model in its "
                                  f"header lacks ({shown}); the file was changed or damaged")
        raise CheckpointError(f"{name} holds parameters or buffers this model lacks "
                              f"({shown}); resume it with the model it was saved from, or "
                              f"pass {how} to leave them out")


def _read(path: str, expected):
    """Open the checkpoint, validate its header, ask `expected(meta, members)` which arrays
    to read ({name: (shape, dtype)}) and read each one checked against its .npy header.
    Any failure is one CheckpointError line naming the file."""
    if not os.path.isfile(path):
        kind = file_type(path)  # (/dev/null is there: "no checkpoint at" misled)
        raise CheckpointError(f"no checkpoint at {path!r}" if kind is None else
                              f"checkpoint {path!r} is {kind}, not a checkpoint file")
    try:
        fh = open(path, "rb")
    except OSError as exc:  # not "corrupt": the file may be fine, the user cannot read it
        raise CheckpointError(f"cannot read checkpoint {path!r}: {exc.strerror or exc}"
                              ) from None
    try:
        with fh, zipfile.ZipFile(fh) as zf:
            members, arrays_of = {}, {}  # (arrays_of: numpy's array name -> member name)
            for info in zf.infolist():
                # a second member of one name (an altered file): numpy reads the last one,
                # another zip reader the first; graphc never writes two. Nor one array under
                # two names, NAME and NAME.npy (np.savez writes every array as NAME.npy):
                # numpy's np.load(...)[NAME] reads the bare one, graphc NAME.npy
                if info.filename in members:
                    raise CheckpointError(f"checkpoint {path!r} holds two members named "
                                          f"{info.filename!r} (an altered or damaged file: "
                                          "which of them is meant cannot be told)")
                name = info.filename.removesuffix(".npy")
                if name in arrays_of:
                    raise CheckpointError(f"checkpoint {path!r} holds the array {name!r} as "
                                          f"two members, {arrays_of[name]!r} and "
                                          f"{info.filename!r} (an altered or damaged file: "
                                          "which of them is meant cannot be told)")
                members[info.filename], arrays_of[name] = info, info.filename
            meta = _header(zf, members.get(META_KEY + ".npy"), path)
            arrays = {}
            for key, (shape, dtype) in expected(meta, members).items():
                info = members.get(key + ".npy")
                if info is None:
                    raise CheckpointError(f"checkpoint {path!r} lacks {key}")
                arrays[key] = _read_array(zf, info, key, shape,
                                          None if dtype is None else np.dtype(dtype), path)
    # (numpy reads an .npy header as a Python literal: an unclosed bracket is a TokenError,
    # other damage a SyntaxError)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a graphc checkpoint "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                              ) from None
    return arrays, meta


def _check_common_meta(meta: dict, path: str):
    """What every graphc checkpoint's header holds: format, version, step, RNG, histories."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a graphc checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta.get('version')!r}, "
                              f"this graphc reads version {VERSION}")
    check_run_fields(meta, path)


def saved_accumulation(meta: dict, path: str | None = None) -> int:
    """The gradient_accumulation_steps a checkpoint was trained with: micro-batches per
    optimiser step (1 in a header written before it was recorded)."""
    saved = meta.get("gradient_accumulation_steps", 1)
    if not isinstance(saved, int) or isinstance(saved, bool) or not 1 <= saved <= MAX_STEP:
        name = f"checkpoint {path!r}" if path else "the checkpoint"
        raise CheckpointError(f"{name}: header field gradient_accumulation_steps must be an "
                              f"integer from 1 to 2**62, got {saved!r}"[:300])
    return saved


def check_accumulation(meta: dict, steps: int, path: str | None = None,
                       allow_changed: bool = False, how: str = "allow_changed_settings=True",
                       name: str = "gradient_accumulation_steps") -> None:
    """Refuse (one line) to resume a checkpoint trained with another number of micro-batches
    per optimiser step than `steps` unless `allow_changed`: each update would average
    another number of batches (an lr tuned for one effective batch, the data position
    counting micro-batches). `name`: the setting as the resuming run's user gives it."""
    saved = saved_accumulation(meta, path)
    if saved != steps and not allow_changed:
        raise GraphcError(f"{path or 'the checkpoint'} was saved with {name} {saved}, this "
                          f"run has {steps} (an optimiser step of {steps} micro-batches, not "
                          f"{saved}); resume with {saved}, or pass {how} to continue with "
                          f"{steps}")


def check_seed(meta: dict, seed: int, path: str | None = None, allow_changed: bool = False,
               how: str = "allow_changed_settings=True") -> None:
    """Refuse (one line) to resume a checkpoint gc.Trainer saved under another seed than
    `seed` unless `allow_changed`: its batches were drawn with the saved seed's sampling (the
    RNG state goes on), while the dropout keys and evaluation batches to come would follow
    `seed`, a run neither seed gives. The seed is the header field rng's "seed", inside the
    RNG record: graphc has written "rng" from its first format on, over any checkpoint_meta
    setting of that name, so no user setting can be there. (Settings share the header's
    top level, where a file from before graphc recorded the seed may hold a setting named as
    any field added since: the top-level trainer_seed graphc wrote for a while could not be
    told from a user's setting of that name, and is not read.) A header without it has
    nothing to compare: the run goes on under `seed`."""
    rng = meta.get("rng")
    if allow_changed or not isinstance(rng, dict) or "seed" not in rng:
        return
    saved = rng["seed"]
    name = f"checkpoint {path!r}" if path else "the checkpoint"
    if not isinstance(saved, int) or isinstance(saved, bool) or saved < 0:
        raise CheckpointError(f"{name}: header field rng.seed must be a whole number >= 0, "
                              f"got {saved!r}"[:200])
    if saved != seed:
        raise GraphcError(f"{path or 'the checkpoint'} was saved with seed {saved}, this "
                          f"trainer has seed {seed} (its batches were drawn with seed "
                          f"{saved}); resume with seed={saved}, or pass {how} to continue "
                          f"with {seed}")


def rng_state(meta: dict):
    """The header's RNG record as a PCG64 state: without the trainer's seed it also holds
    (check_seed)."""
    rng = meta["rng"]
    return {k: v for k, v in rng.items() if k != "seed"} if isinstance(rng, dict) else rng


def check_run_fields(meta: dict, path: str | None = None) -> None:
    """The header fields a resumed run reads (step, RNG, histories), each present and valid:
    a header given to Trainer.restore by hand lacking "step" was a bare KeyError. `path`:
    the file they came from, for messages (None: a header given as a dict)."""
    name = f"checkpoint {path!r}" if path else "the checkpoint"
    for key in ("step", "rng"):
        if key not in meta:
            raise CheckpointError(f"{name}: header field {key} is missing")
    step = meta["step"]
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        raise CheckpointError(f"{name}: header field step must be an integer from 0 to 2**62 "
                              f"(the optimiser counts in int64), got {step!r}")
    try:
        np.random.PCG64().state = rng_state(meta)
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        raise CheckpointError(f"{name}: header field rng is not a PCG64 generator state "
                              f"({type(exc).__name__}: {exc})") from None
    for key in ("history", "val_history"):
        items = meta.get(key, [])
        # a finite loss: training never saves a non-finite one, and a resumed run would take
        # the last validation loss for divergence and never save again
        if not isinstance(items, list) or not all(_history_entry(i) for i in items):
            raise CheckpointError(f"{name}: header field {key} must be a list of "
                                  "[step from 0 to 2**62, finite loss]")
    saved_accumulation(meta, path)


def finite_number(value) -> bool:
    """Whether `value` is a finite real number (a bool is none; an int beyond any float,
    such as 10**400 read from JSON, is not finite: math.isfinite raised OverflowError)."""
    if not is_real(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _history_entry(item) -> bool:
    """Whether a history entry is [step from 0 to 2**62, finite loss]."""
    return (isinstance(item, list) and len(item) == 2
            and isinstance(item[0], int) and not isinstance(item[0], bool)
            and 0 <= item[0] <= MAX_STEP and finite_number(item[1]))


def _npy_header(fh, what, path):
    """(shape, dtype, header length) from an .npy stream, reading only its header."""
    from numpy.lib import format as npy
    version = npy.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(fh)
    else:
        raise CheckpointError(f"checkpoint {path!r}: {what} has .npy version {version}")
    if fortran or dtype.hasobject or dtype.fields is not None:
        raise CheckpointError(f"checkpoint {path!r}: {what} is not a plain C-ordered array")
    return shape, dtype, fh.tell()


def _open_member(zf, info, what, path):
    # graphc writes stored (uncompressed) members: their data can be no larger than the file,
    # so no declared size can make the reader allocate more than the file holds
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise CheckpointError(f"checkpoint {path!r}: {what} is compressed; graphc checkpoints "
                              "store their arrays uncompressed")
    return zf.open(info)


def _read_array(zf, info, key, shape, dtype, path):
    """The array of member `info`, which must be `dtype`[`shape`]; a shape of None takes the
    shape and dtype its .npy header declares (uint16: bfloat16's bits, as bfloat16)."""
    with _open_member(zf, info, key, path) as fh:
        got_shape, got_dtype, offset = _npy_header(fh, key, path)
        if shape is None:  # read without the model: as the file declares, if numbers
            shape = got_shape
            dtype = BFLOAT16 if got_dtype == _stored_dtype(BFLOAT16) else got_dtype
            if got_dtype.kind not in "biufc":  # (np.isfinite raised TypeError on a date)
                raise CheckpointError(f"checkpoint {path!r}: {key} is {got_dtype}, not an "
                                      "array of numbers")
        if got_shape != tuple(shape) or got_dtype != _stored_dtype(dtype):
            saved = BFLOAT16 if got_dtype == _stored_dtype(BFLOAT16) else got_dtype  # (its
            # bits: a float32 trainer resuming a bfloat16 run's file read "is uint16")
            raise CheckpointError(
                f"checkpoint {path!r}: {key} is {saved}{list(got_shape)}, the model in "
                f"its header needs {dtype}{list(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size - offset != nbytes:
            raise CheckpointError(f"checkpoint {path!r}: {key} declares {nbytes} bytes of data "
                                  f"but holds {info.file_size - offset}")
        out = np.empty(shape, _stored_dtype(dtype))
        view = memoryview(out).cast("B") if out.size else memoryview(b"")
        done = 0
        while done < nbytes:
            n = fh.readinto(view[done:])
            if not n:
                raise CheckpointError(f"checkpoint {path!r}: {key} is truncated")
            done += n
    out = out.view(dtype)
    # (a Buffer may hold an Inf, a constant mask's -inf, never a NaN; gc.Trainer.restore
    # refuses an Inf in a Buffer its step writes, which save() never writes)
    if not (np.isfinite(out).all() or key.startswith("buffer/") and not has_nan(out)):
        raise CheckpointError(f"checkpoint {path!r}: {key} holds non-finite values (NaN or "
                              "inf)")
    return out


def has_nan(values) -> bool:
    """Whether the array `values` holds a NaN (an integer or bool one never does)."""
    return values.dtype.kind not in "biu" and bool(np.isnan(values).any())


def _header(zf, info, path) -> dict:
    if info is None:
        raise CheckpointError(f"checkpoint {path!r} has no graphc header")
    with _open_member(zf, info, "the header", path) as fh:
        shape, dtype, offset = _npy_header(fh, "the header", path)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] != info.file_size - offset:
            raise CheckpointError(f"checkpoint {path!r} has a corrupt header")
        if shape[0] > MAX_HEADER_BYTES:
            raise CheckpointError(f"checkpoint {path!r}: header of {shape[0]} bytes is larger "
                                  f"than {MAX_HEADER_BYTES}")
        raw = fh.read(shape[0])
    try:
        text = raw.decode("utf-8")
        check_json_depth(text, MAX_HEADER_NESTING, "header")
        meta = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, GraphcError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupt header ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path!r} has a corrupt header (not an object)")
    return meta


def _check_meta(meta: dict, path: str):
    """The header against its schema; -> the model's GPTConfig."""
    from .models.gpt import GPTConfig

    def bad(where, message):
        raise CheckpointError(f"checkpoint {path!r}: header field {where} {message}")

    def any_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_int(v):  # (a count or a size past 2**62 overflowed float conversions deep inside)
        return any_int(v) and -MAX_STEP <= v <= MAX_STEP

    is_number = finite_number

    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a graphc checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta.get('version')!r}, "
                              f"this graphc reads version {VERSION}")
    for key, kind in (("model", dict), ("train", dict), ("vocab", str), ("rng", dict),
                      ("history", list), ("val_history", list)):
        if not isinstance(meta.get(key), kind):
            bad(key, "is missing" if key not in meta else f"must be a JSON "
                f"{ {dict: 'object', str: 'string', list: 'array'}[kind]}")
    precision = meta["train"].get("precision", "fp32")
    if not isinstance(precision, str) or precision not in PRECISIONS:  # (a list: unhashable)
        bad("train.precision", f"has a bad value {meta['train']['precision']!r}")
    if not is_int(meta.get("step")) or not 0 <= meta["step"] <= MAX_STEP:
        bad("step", f"must be an integer from 0 to 2**62, got {meta.get('step')!r}")

    model = meta["model"]
    kinds = {"vocab_size": is_int, "n_layer": is_int, "n_head": is_int, "n_embd": is_int,
             "block_size": is_int, "batch_size": is_int, "dropout": is_number,
             "bias": lambda v: isinstance(v, bool), "tie_weights": lambda v: isinstance(v, bool),
             "dtype": lambda v: v in ("float32", "float64")}
    for key, ok in kinds.items():
        if key not in model:
            bad(f"model.{key}", "is missing")
        if not ok(model[key]):
            bad(f"model.{key}", f"has a bad value {model[key]!r}")
    # a field this GPTConfig lacks (a newer graphc's, or a damaged header) describes a model
    # that computes otherwise: from_dict dropped it, and sample and eval ran the model
    # without it (no field has ever been removed, so no older checkpoint holds one)
    # (all of them named: the first alone left the next one to be found after a fix)
    unknown = sorted(set(model) - {f.name for f in fields(GPTConfig)})
    if unknown:
        named = ", ".join(f"model.{k}" for k in unknown)
        raise CheckpointError(
            f"checkpoint {path!r}: header field{'s' * (len(unknown) > 1)} {named} "
            f"{'are not settings' if len(unknown) > 1 else 'is not a setting'} of graphc's "
            "GPT (a checkpoint written by another graphc version, or a damaged header): the "
            "model it describes cannot be built")
    cfg = GPTConfig.from_dict(model)
    try:
        cfg.validate()
    except ValueError as exc:
        bad("model", f"is invalid: {exc}")
    vocab = meta["vocab"]
    try:  # JSON's \ud800 escapes make strings no text file's UTF-8 decodes to
        vocab.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad("vocab", f"holds a lone surrogate (character {exc.start}, "
            f"U+{ord(vocab[exc.start]):04X}), which no UTF-8 text has")
    if len(vocab) != cfg.vocab_size or len(set(vocab)) != len(vocab):
        bad("vocab", f"must hold {cfg.vocab_size} distinct characters (model.vocab_size), "
            f"got {len(vocab)} characters, {len(set(vocab))} distinct")

    train = meta["train"]
    for key in ("steps", "warmup", "eval_every", "eval_iters", "seed", "decay_steps"):
        if key in train and not ((any_int if key == "seed" else is_int)(train[key]) or (
                key == "decay_steps" and train[key] is None)):
            bad(f"train.{key}", f"must be {_INT}, got {train[key]!r}")
    for key in ("steps", "eval_every", "eval_iters"):
        if key in train and train[key] < 1:
            bad(f"train.{key}", f"must be positive, got {train[key]!r}")
    for key in ("warmup", "seed"):
        if key in train and train[key] < 0:
            bad(f"train.{key}", f"must not be negative, got {train[key]!r}")
    for key in ("lr", "min_lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip"):
        if key in train and not is_number(train[key]):
            bad(f"train.{key}", f"must be a finite number, got {train[key]!r}")
    # the ranges training can run with: a resumed run would otherwise take them as given
    # (a negative learning rate ascends the loss)
    positive, non_negative = (lambda v: v > 0, "positive"), (lambda v: v >= 0, "non-negative")
    below_one = (lambda v: 0 <= v < 1, "in [0, 1)")
    ranges = {"lr": positive, "eps": positive, "min_lr": non_negative,
              "weight_decay": non_negative, "grad_clip": non_negative, "beta1": below_one,
              "beta2": below_one}
    for key, (ok, words) in ranges.items():
        if key in train and not ok(train[key]):
            bad(f"train.{key}", f"must be {words}, got {train[key]!r}")
    if is_int(train.get("decay_steps")) and train["decay_steps"] < 1:
        bad("train.decay_steps", f"must be positive, got {train['decay_steps']!r}")
    try:  # the state the training RNG will be set to must be one it accepts
        np.random.PCG64().state = meta["rng"]
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        bad("rng", f"is not a PCG64 generator state ({type(exc).__name__}: {exc})")
    for key in ("history", "val_history"):
        for i, item in enumerate(meta[key]):
            # a finite loss: training never saves a non-finite one, and a resumed run would
            # take the last validation loss for divergence and never save again
            if not _history_entry(item):
                bad(f"{key}[{i}]", f"must be [step from 0 to 2**62, finite loss], got "
                    f"{item!r}"[:200])
    return cfg


def parameter_shapes(cfg) -> dict:
    """{name: shape} of GPT(cfg)'s parameters (graphc/models/gpt.py), computed from the
    configuration alone so that a checkpoint is checked before any model is built
    (tests/test_formats_trust.py compares it with the model's own parameters)."""
    C, V, T = cfg.n_embd, cfg.vocab_size, cfg.block_size
    shapes = {"wte.weight": (V, C), "wpe.weight": (T, C)}

    def linear(name, fan_in, fan_out, bias):
        shapes[f"{name}.weight"] = (fan_in, fan_out)
        if bias:
            shapes[f"{name}.bias"] = (fan_out,)

    def layer_norm(name):
        shapes[f"{name}.weight"] = (C,)
        if cfg.bias:
            shapes[f"{name}.bias"] = (C,)

    for i in range(cfg.n_layer):
        b = f"blocks.{i}"
        layer_norm(f"{b}.ln_1")
        linear(f"{b}.attn.c_attn", C, 3 * C, cfg.bias)
        linear(f"{b}.attn.c_proj", C, C, cfg.bias)
        layer_norm(f"{b}.ln_2")
        linear(f"{b}.mlp.c_fc", C, 4 * C, cfg.bias)
        linear(f"{b}.mlp.c_proj", 4 * C, C, cfg.bias)
    layer_norm("ln_f")
    if not cfg.tie_weights:
        linear("lm_head", C, V, False)
    return shapes
