"""Session 55: index_fill's eager check of a known index repeated check_index's range test
in its own words ("index_fill: index 3 is outside [-3, 3) (dim 0's size 3)"), where the
compiled run's check_index said "index_fill: index 3 is outside [-3, 3)"; segment ids known
now had a third copy. One helper (ir/ops/index.py's index_problem) now words them all: the
eager and the compiled refusal say the same (the compiled one adds that the plan's run
checked it)."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import one_line_problem
from ir.ops.index import index_problem

HERE = "test_index_range_one_check.py"
X = np.zeros((3, 4))


@pytest.mark.parametrize("fn, index, want", [
    (lambda a, i: gc.index_fill(a, 1, i, 7.0), np.array([-5]),
     "index_fill: index -5 is outside [-4, 4)"),
    (lambda a, i: gc.index_fill(a, 0, i, 7.0), np.array([0, 3]),
     "index_fill: index 3 is outside [-3, 3)"),
    (lambda a, i: gc.index_add(a, 1, i, a[:, :1]), np.array([4]),
     "index_add: index 4 is outside [0, 4)"),
    (lambda a, i: gc.scatter_reduce(a, 1, i, a, "sum"), np.full((3, 4), -1),
     "scatter_reduce: index -1 is outside [0, 4)"),
    (lambda a, i: gc.segment_sum(a, i, 2), np.array([0, 0, 5]),
     "segment_sum: segment id 5 is outside [0, 2)"),
])
def test_the_eager_and_the_compiled_refusal_are_one_line(fn, index, want):
    eager = one_line_problem(lambda: fn(X, index), HERE)
    compiled = one_line_problem(lambda: gc.compile(fn)(X, index), HERE)
    assert eager == want, eager
    # (the plan's run adds where the value came from)
    assert compiled == want + " (an index array's value, checked as the plan ran)", compiled


def test_index_problem():
    assert index_problem(np.array([0, -3, 2]), 3, 0) is None
    assert index_problem(np.array([], np.int64), 0, 0) is None
    assert index_problem(np.array([0, -4]), 3, 1) == \
        "index -4 is out of bounds for axis 1 of size 3"
    assert index_problem(np.array([-1, 0]), 3, 0, negative=False, who="f", what="id") == \
        "f: id -1 is outside [0, 3)"
