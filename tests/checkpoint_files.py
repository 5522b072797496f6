"""Test helpers that edit saved checkpoints as an earlier graphc, or a damaged file, would
have them."""
from __future__ import annotations

import json

import numpy as np


def rewrite_header(path, edit):
    """The checkpoint at `path` with its JSON header changed by `edit(header)`."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("__meta__")))
    edit(header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
