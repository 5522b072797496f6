"""Dropout keys (review s19h): eagerly the same rng_key draws the same masks on every run
(it drew new ones per call: the sites were numbered by a process-wide counter)."""
import numpy as np

import graphc as gc

P = 0.5  # masks are 0 or 1 / (1 - P) = 2


def _np(v):
    return np.asarray(getattr(v, "data", v))


def _with_key(key, f):
    with gc.nn.rng_key(key):
        return f()


def test_eager_rng_key_replays_its_masks():
    drop = gc.nn.Dropout(P)
    x = np.ones((200,), np.float32)

    def step(x):
        return drop(x), drop(x)

    with gc.nn.rng_key(7):
        a1, a2 = map(_np, step(x))
    with gc.nn.rng_key(7):
        b1, b2 = map(_np, step(x))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert (a1 != a2).mean() > 0.3  # two sites of one block draw different masks
    # and the compiled function that makes the same calls draws the same masks
    c1, c2 = map(_np, gc.compile(lambda x, k: _with_key(k, lambda: step(x)))(
        x, np.asarray(7, np.int64)))
    np.testing.assert_array_equal(c1, a1)
    np.testing.assert_array_equal(c2, a2)
