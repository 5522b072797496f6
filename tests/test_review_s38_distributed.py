"""Session 38's fixes of data-parallel training's start-up checks; each test failed before
its fix."""
from __future__ import annotations

import numpy as np

from graphc.trainer import batch_digest


def test_the_handshake_data_digest_sees_shape_dtype_and_nesting():
    """The handshake hashed a batch's leaves' bytes only: ranks whose first global batch held
    the same bytes in another shape, dtype view or nesting (a dict's keys swapped, a tuple
    nested differently) agreed on their data. Now shapes, dtypes and the nesting count."""
    x = np.arange(8.0).reshape(4, 2)
    y = np.arange(8.0, 16.0).reshape(4, 2)
    same = batch_digest((x, y))
    assert batch_digest((x.copy(), y.copy())) == same  # equal data: equal digests
    assert batch_digest([[0, 1], [2, 3]]) == batch_digest([[0, 1], [2, 3]])
    others = [
        batch_digest((x.reshape(2, 4), y)),          # same bytes, another shape
        batch_digest((x.view(np.int64), y)),         # same bytes, another dtype
        batch_digest(((x,), y)),                     # same bytes, another nesting
        batch_digest({"b": x, "a": y}),              # keys swapped
    ]
    assert batch_digest({"a": x, "b": y}) not in others
    assert same not in others and len(set(others)) == len(others)
