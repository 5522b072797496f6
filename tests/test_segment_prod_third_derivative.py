"""Session 55: segment_prod's (the scatter_prod op's) gradient spelt the product of a zero
element's others exactly for one other zero at most, so where a segment held three zeros
its third derivative was 0 where the product's is the segment's non-zero product (3.0 for
[0, 0, 0, 3]: d^3/du0 du1 du2 of u0 u1 u2 u3). The gradient now spells the product of the
other zeros by their power sums for one and two of them: every third derivative agrees with
central differences of graphc's second derivative in float64 and with the exact one, with
no zero, one, two, three and four zeros in a segment."""
import itertools

import numpy as np
import pytest

import graphc as gc

IDS = np.array([0, 0, 0, 0, 1, 1])


def f(u):
    return gc.segment_prod(u, IDS, 2)


# (compiled once: one plan serves every case, where an eager triple jacrev took seconds)
THIRD = gc.compile(gc.jacrev(gc.jacrev(gc.jacrev(f))))
HESSIAN = gc.compile(gc.jacrev(gc.jacrev(f)))


def exact_third(u):
    """d^3 out[s] / du_i du_j du_k: the product of the segment's other elements for three
    distinct elements of segment s, else 0."""
    n = len(u)
    t = np.zeros((2, n, n, n))
    for i, j, k in itertools.permutations(range(n), 3):
        if IDS[i] == IDS[j] == IDS[k]:
            t[IDS[i], i, j, k] = np.prod([u[m] for m in range(n)
                                          if IDS[m] == IDS[i] and m not in (i, j, k)])
    return t


def central_third(u, h=1e-3):
    """Central differences of graphc's second derivative (exact for a product, which is
    linear in each element, but for rounding)."""
    t = np.zeros((2, len(u), len(u), len(u)))
    for k in range(len(u)):
        e = np.zeros(len(u))
        e[k] = h
        t[..., k] = (np.asarray(HESSIAN(u + e)) - np.asarray(HESSIAN(u - e))) / (2 * h)
    return t


@pytest.mark.parametrize("u", [
    [1.5, -2.0, 0.5, 3.0, 2.0, -1.0],  # no zero
    [0.0, -2.0, 0.5, 3.0, 0.0, -1.0],  # one in each segment
    [0.0, 0.0, 0.5, 3.0, 0.0, 0.0],  # two in each
    [0.0, 0.0, 0.0, 3.0, 2.0, 1.0],  # three (was 0 where the product's is 3)
    [0.0, 0.0, 0.0, 0.0, 2.0, 0.0],  # four: every third derivative 0
], ids=["no zero", "one zero", "two zeros", "three zeros", "four zeros"])
def test_segment_prod_third_derivative_matches_central_differences(u):
    u = np.array(u)
    third = np.asarray(THIRD(u))
    np.testing.assert_allclose(third, exact_third(u), rtol=0, atol=1e-15)
    np.testing.assert_allclose(third, central_third(u), rtol=0, atol=1e-9)


def test_third_derivative_of_rows_compiled():
    """Rows of two columns (a zero count per column), through nested gc.grad."""
    data = np.array([[0.0, 2.0], [0.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    ids = np.array([0, 0, 0, 1])
    # d^3/dx00 dx10 dx20 of sum(w * segment_prod): w[0, 0] * 1 (the column's zeros, no others)
    w = np.array([[2.0, 7.0], [1.0, 1.0]])
    loss = lambda x: gc.sum(gc.segment_prod(x, ids, 2) * w)
    d2 = lambda x: gc.grad(lambda y: gc.grad(loss)(y)[1, 0])(x)[2, 0]
    d3 = gc.compile(gc.grad(d2))
    want = np.zeros_like(data)
    want[0, 0] = 2.0  # (the product of column 0's zeros' others: none, 1)
    np.testing.assert_array_equal(np.asarray(d3(data)), want)
