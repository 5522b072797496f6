"""Session 38's fixes of data-parallel training's start-up checks and of optimiser settings;
each test failed before its fix."""
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


def test_plateau_settings_are_checked_by_the_finite_number_rule():
    """graphc/optim.py defined _is_number twice; the second (Python int/float, any value)
    replaced the first (finite numbers, numpy's too) for every check, so ReduceLROnPlateau
    refused a numpy float32 factor and took an infinite threshold. Now the settings' checks
    use the first, and the gradient-leaf helper its own _is_builtin_number."""
    import graphc as gc
    import pytest
    opt = gc.optim.SGD(lr=0.1).bind(gc.nn.Linear(2, 1))
    plateau = gc.optim.ReduceLROnPlateau(opt, factor=np.float32(0.5), eps=np.float32(1e-8))
    assert float(plateau.factor) == 0.5
    for bad in (float("inf"), float("nan")):
        with pytest.raises(gc.GraphcError, match="threshold must be a number"):
            gc.optim.ReduceLROnPlateau(gc.optim.SGD(lr=0.1), threshold=bad)
