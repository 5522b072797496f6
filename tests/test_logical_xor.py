"""gc.logical_xor (jnp.logical_xor, torch.logical_xor) of bools, eager, compiled, vmapped."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

A = np.array([True, False, True, False])
B = np.array([True, True, False, False])


def test_values_match_numpy():
    want = np.logical_xor(A, B)
    for got in (gc.logical_xor(A, B), gc.compile(gc.logical_xor)(A, B), gc.vmap(gc.logical_xor)(A, B)):
        got = np.asarray(got)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(gc.logical_xor(A, True)), ~A)
    np.testing.assert_array_equal(gc.compile(lambda a: gc.logical_xor(a, A[:, None]))(A),
                                  np.logical_xor(A, A[:, None]))  # broadcast


def test_non_bool_operands_are_one_line():
    with pytest.raises(GraphcError, match=r"^logical_xor: needs bool operands, got int64"):
        gc.logical_xor(np.array([1, 0]), A[:2])
