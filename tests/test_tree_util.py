"""gc.tree_flatten / gc.tree_unflatten, as jax.tree_util's: leaves in order (dict keys in
sorted order, None an empty subtree), rebuilt into the same containers, namedtuples too."""
import collections

import numpy as np
import pytest

import graphc as gc

Pair = collections.namedtuple("Pair", "a b")


def test_round_trip_keeps_containers_and_order():
    tree = {"x": [np.ones(2), (2.0, None)], "y": Pair(3, {"z": np.zeros(1)})}
    leaves, treedef = gc.tree_flatten(tree)
    assert [np.shape(v) for v in leaves] == [(2,), (), (), (1,)]
    assert leaves[1:3] == [2.0, 3]
    doubled = gc.tree_unflatten(treedef, [v * 2 for v in leaves])
    assert isinstance(doubled["y"], Pair) and doubled["x"][1][1] is None
    np.testing.assert_array_equal(doubled["x"][0], [2.0, 2.0])
    assert doubled["y"].a == 6
    assert gc.tree_flatten(doubled)[1] == treedef
    assert gc.tree_flatten(5.0) == ([5.0], None)


def test_the_wrong_number_of_leaves_is_one_line():
    _, treedef = gc.tree_flatten({"a": 1, "b": [2, 3]})
    with pytest.raises(gc.GraphcError, match="holds 3 leaves, got 2"):
        gc.tree_unflatten(treedef, [1, 2])
