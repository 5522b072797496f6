"""Defects found by the hostile review of session 7's speed changes (attn, accum, rowk):
each test failed before its fix."""
from __future__ import annotations

import numpy as np

import graphc as gc


def test_a_fortran_ordered_donated_array_receives_the_kernels_writes():
    """A donated input that is not C-contiguous is copied on entry; the copy was Fortran-ordered
    again (np.array keeps the layout), and the numba kernels, which write their result through
    a C-order reshape of it (gelu's rows), wrote into a temporary: the returned array held
    the input's old values."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((5, 4)).astype(np.float32)
    idx = np.array([1, 3, 0, 4, 2, 2])

    def fn(x, t, i):
        return gc.gelu(gc.take(t, i) * 2.0)

    for dtype in (np.float32, np.float64):
        x = np.asfortranarray(rng.standard_normal((6, 4)).astype(dtype))
        t = table.astype(dtype)
        want = gc.compile(fn)(x.copy(), t, idx)
        got = gc.compile(fn, donate_argnums=(0,))(x, t, idx)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        # and the values are gelu's (not the donated input's)
        u = 2.0 * t[idx].astype(np.float64)
        ref = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u ** 3)))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
