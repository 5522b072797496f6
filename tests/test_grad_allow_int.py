"""gc.grad / gc.value_and_grad's JAX keywords: allow_int=True gives an integer or boolean
argument float0 zeros of its shape (gc.float0, JAX's jax.dtypes.float0: numpy's structured
dtype of no bytes); without it such an argument is refused in one line, a TypeError as
JAX's; holomorphic=True is refused (graphc has no complex dtype)."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

X = np.array([0.5, -1.0, 2.0], np.float32)
N = np.array([2, 0], np.int32)


def _picked(x, n):
    return gc.sum(x[n] * x[n])


def _is_float0(g, shape):
    return isinstance(g, np.ndarray) and g.dtype == gc.float0 and g.shape == shape


def test_int_argument_refused_as_a_type_error_naming_allow_int():
    with pytest.raises(TypeError, match=r"^grad: argument 1 has dtype int32; only "
                       r"floating-point .*set allow_int=True") as info:
        gc.grad(_picked, argnums=(0, 1))(X, N)
    assert isinstance(info.value, GraphcError) and len(info.value.message.splitlines()) == 1


@pytest.mark.parametrize("compiled", [False, True])
def test_allow_int_gives_float0_zeros(compiled):
    def both(x, n):
        return gc.grad(_picked, argnums=(0, 1), allow_int=True)(x, n)
    if compiled:  # traced inside a compiled function: the float gradient comes back
        gx = gc.compile(lambda x, n: both(x, n)[0])(X, N)
        gn = gc.eval_shape(lambda x, n: both(x, n)[0], X, N)  # (the trace takes it too)
        assert gn.shape == (3,)
    else:
        gx, gn = both(X, N)
        assert _is_float0(gn, (2,))
    expected = np.zeros(3, np.float32)
    np.add.at(expected, N, 2 * X[N])
    np.testing.assert_allclose(np.asarray(gx), expected)
    assert np.asarray(gx).dtype == np.float32


def test_allow_int_value_and_grad_pytree_bool_and_python_int():
    (value, grads) = gc.value_and_grad(
        lambda p, k: gc.sum(gc.where(p["mask"], p["w"], 0.0)) * k, allow_int=True,
        argnums=(0, 1))({"w": X, "mask": np.array([True, False, True])}, 3)
    assert float(value) == pytest.approx(3 * (0.5 + 2.0))
    p, k = grads
    np.testing.assert_allclose(p["w"], [3.0, 0.0, 3.0])
    assert _is_float0(p["mask"], (3,)) and _is_float0(k, ())
    only = gc.grad(lambda n: gc.sum(gc.cast(n, "float32")), allow_int=True)(N)
    assert _is_float0(only, (2,))


def test_holomorphic_refused_and_allow_int_checked():
    with pytest.raises(GraphcError, match="^grad: holomorphic=True needs complex inputs and "
                       "outputs, and graphc has no complex dtype"):
        gc.grad(_picked, holomorphic=True)
    with pytest.raises(GraphcError, match="^value_and_grad: allow_int must be True or False"):
        gc.value_and_grad(_picked, allow_int="yes")
    assert float(gc.grad(lambda x: gc.sum(x * x), holomorphic=False)(X)[2]) == 4.0


def test_allow_int_under_vmap_stacks_float0_zeros():
    # (vmap broadcast the float0 zeros as a tensor: UnsupportedDtype 'reshape: dtype
    # [('float0', 'V')] is not supported')
    xs = np.stack([X, 2 * X])

    def both(x, n):
        return gc.grad(_picked, argnums=(0, 1), allow_int=True)(x, n)
    gx, gn = gc.vmap(both, in_axes=(0, None))(xs, N)
    assert _is_float0(gn, (2, 2))
    np.testing.assert_allclose(np.asarray(gx), [[1.0, 0.0, 4.0], [2.0, 0.0, 8.0]])
    gx, gn = gc.vmap(gc.vmap(both), out_axes=-1)(xs[None], np.stack([N, N])[None])
    assert _is_float0(gn, (2, 2, 1)) and np.asarray(gx).shape == (2, 3, 1)


def test_compiled_function_returning_float0_is_refused_naming_it():
    # (was 'lambda returned an ndarray, which is not a tensor', though numpy arrays returned
    # are constants there)
    with pytest.raises(GraphcError, match=r"^lambda returned float0 zeros \(grad\(allow_int="
                       r"True\)'s gradient of an integer argument\).*return the float "
                       "gradients only") as info:
        gc.compile(lambda x, n: gc.grad(_picked, argnums=(0, 1), allow_int=True)(x, n))(X, N)
    assert len(info.value.message.splitlines()) == 1
