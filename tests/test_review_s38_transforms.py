"""Session 38's fixes of graphc's transformations (vmap, compiled calls on the tape,
compiled modules); each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def test_vmap_keeps_the_range_check_of_a_power_by_a_traced_int():
    """`gc.compile(gc.vmap(lambda x, k: x + 3 ** k, in_axes=(0, None)))(int32 rows, 20)`
    wrapped 3**20 = 3486784401 to -808182895 unseen (vmap rebuilt the power's chain of
    wheres without recording it as a power, so its exact value was unknown), where the same
    function without vmap refuses it; now vmap refuses it in the same words, and a power
    that fits (or a negative k's 0) is computed as without vmap."""
    rows = np.array([1, 2], np.int32)
    plain = gc.compile(lambda x, k: x + 3 ** k)
    mapped = gc.compile(gc.vmap(lambda x, k: x + 3 ** k, in_axes=(0, None)))
    for f in (plain, mapped):
        with pytest.raises(GraphcError, match="3486784401, computed from k, does not fit in "
                                              "int32"):
            f(rows, 20)
    for k, expected in ((2, [10, 11]), (-1, [1, 2])):
        out = mapped(rows, k)
        np.testing.assert_array_equal(out, expected)
        assert out.dtype == np.int32
