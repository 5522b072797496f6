"""Session 37's fixes of the function transformations and tree utilities; each test failed
before its fix."""
import numpy as np
import pytest

import graphc as gc


def test_tree_map_matches_dicts_by_key():
    """tree_map refused a second dict with the first's keys in another order ("does not have
    the first tree's structure"); JAX's dicts are sorted by key, so they are the same pytree:
    the leaves are now matched by key, nested too, and the result has the first tree's order."""
    a = {"x": 1.0, "y": [2.0, {"p": 3.0, "q": 4.0}]}
    b = {"y": [20.0, {"q": 40.0, "p": 30.0}], "x": 10.0}
    out = gc.tree_map(lambda u, v: u + v, a, b)
    assert out == {"x": 11.0, "y": [22.0, {"p": 33.0, "q": 44.0}]}
    assert list(out) == ["x", "y"] and list(out["y"][1]) == ["p", "q"]
    with pytest.raises(gc.GraphcError, match="tree 1 does not have the first tree's structure"):
        gc.tree_map(lambda u, v: u + v, a, {"x": 1.0, "z": [2.0, {"p": 3.0, "q": 4.0}]})
