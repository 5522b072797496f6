"""Checkpoints: one .npz file of arrays plus a JSON header, written atomically, read without
pickle.

The file is written to a temporary name in the same directory, flushed to disk and renamed
over the old one, so a crash mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "graphc-checkpoint"
VERSION = 1
META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


def save(path: str, arrays: dict, meta: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta}).encode("utf-8")
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[META_KEY] = np.frombuffer(header, dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str):
    """-> (arrays, meta). Raises CheckpointError with the reason for any bad file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not a graphc checkpoint "
                              f"({exc})") from None
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise CheckpointError(f"checkpoint {path!r} has no graphc header")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has a corrupt header ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a graphc checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {meta.get('version')}, "
                              f"this graphc reads version {VERSION}")
    return arrays, meta
