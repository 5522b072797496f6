"""Review r2 s54: gc.jacrev takes JAX's allow_int, as gc.grad does: an integer or boolean
argument leaf at argnums is taken, its Jacobian block float0 zeros of shape
output.shape + leaf.shape (jax.jacrev's), the float leaves' blocks their Jacobians; without
it the TypeError names allow_int. JAX's jacfwd and hessian take no allow_int: their
refusal points at jacrev(allow_int=True), as JAX's jacfwd points at jacrev."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.array([1.0, 2.0, 3.0])
N = np.array([2, 1], np.int64)


def _f(x, n):
    return gc.sin(x) * gc.sum(gc.cast(n, np.float64))


def test_jacrev_allow_int_gives_float0_blocks():
    jx, jn = gc.jacrev(_f, argnums=(0, 1), allow_int=True)(X, N)
    np.testing.assert_allclose(np.asarray(jx), np.diag(np.cos(X)) * 3, rtol=1e-14)
    assert jn.dtype == gc.float0 and jn.shape == (3, 2)
    only = gc.jacrev(lambda n: gc.cast(n, np.float64) * 2.0, allow_int=True)(N)
    assert only.dtype == gc.float0 and only.shape == (2, 2)
    # a pytree mixing a float leaf, a Python int and a bool array; aux kept as it is
    tree = {"x": X, "k": 2, "b": np.array([True, False])}
    jac, aux = gc.jacrev(lambda t: ({"a": gc.sin(t["x"]) * t["k"]}, t["b"]), has_aux=True,
                         allow_int=True)(tree)
    np.testing.assert_allclose(np.asarray(jac["a"]["x"]), np.diag(np.cos(X)) * 2, rtol=1e-14)
    assert jac["a"]["k"].dtype == gc.float0 and jac["a"]["k"].shape == (3,)
    assert jac["a"]["b"].dtype == gc.float0 and jac["a"]["b"].shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(aux), [True, False])
    # inside gc.compile, the float blocks (float0 cannot leave a graph, as grad's)
    compiled = gc.compile(lambda x, n: gc.jacrev(_f, argnums=(0, 1), allow_int=True)(x, n)[0])
    np.testing.assert_allclose(np.asarray(compiled(X, N)), np.diag(np.cos(X)) * 3,
                               rtol=1e-14)


@pytest.mark.parametrize("who, advice", [("jacrev", "set allow_int=True"),
                                         ("jacfwd", "use jacrev(allow_int=True)"),
                                         ("hessian", "use jacrev(allow_int=True)")])
def test_an_int_argument_is_refused_naming_allow_int(who, advice):
    with pytest.raises(TypeError) as info:
        getattr(gc, who)(lambda n: gc.sum(gc.cast(n, np.float64) ** 2))(N)
    assert str(info.value).splitlines()[0] == (
        f"{who}: argument 0 has dtype int64; only floating-point arguments can be "
        f"differentiated (as in JAX): pass floats, leave it out of argnums, or {advice} "
        "(float0 zeros)")


def test_allow_int_must_be_a_bool():
    with pytest.raises(GraphcError, match="jacrev: allow_int must be True or False, got 1"):
        gc.jacrev(_f, allow_int=1)
