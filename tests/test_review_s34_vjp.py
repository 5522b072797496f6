"""Session 34's fixes of vjp, has_aux, the eager tape through compiled functions and the
transforms' argument checks; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


@pytest.mark.parametrize("transform", [gc.vmap, gc.jacrev, gc.jacfwd, gc.hessian])
def test_transforms_refuse_a_function_that_is_not_callable(transform):
    """gc.vmap(None)(x), gc.jacrev(None), gc.jacfwd(None) and gc.hessian(None) raised
    Python's TypeError "'NoneType' object is not callable" from inside graphc (vmap at the
    call, the Jacobians when they ran), where grad, jvp and remat say what is wrong: now one
    GraphcError naming the transform, when it is made."""
    with pytest.raises(GraphcError, match=rf"^{transform.__name__}: the function to transform "
                                          "must be callable, got None"):
        transform(None)


def test_vmap_names_an_output_that_is_not_a_tensor():
    """gc.vmap(lambda x: "s")(x) failed with numpy's "dtype <U1 is not supported" from the
    batching; now one line naming the output (a Python number still broadcasts)."""
    def labelled(v):
        return v, "s"
    x = np.ones(3)
    with pytest.raises(GraphcError, match=r"^vmap\(labelled\): output 1 is a str, which is "
                                          "not a tensor"):
        gc.vmap(labelled)(x)
    np.testing.assert_array_equal(gc.vmap(lambda v: 2.0)(x), [2.0, 2.0, 2.0])


def test_vjp_checks_the_cotangents_dtype():
    """The pullback took a cotangent of another dtype than its output's: a float32 0-d
    cotangent of a float64 sum gave a float32 gradient, and float32 ones for gc.sin's float64
    output failed in a gradient rule ("mul(f32[2], f64[2]): operands must have one dtype").
    As JAX ("got float32[2], but expected float64[2]"), one line naming both; a Python
    number still takes the output's dtype."""
    x = np.array([1.0, 2.0])
    _, pull = gc.vjp(gc.sin, x)
    with pytest.raises(GraphcError, match=r"^vjp: the cotangent is float32\[2\], but the "
                                          r"output is float64\[2\]; pass a cotangent of the "
                                          "output's dtype"):
        pull(np.ones(2, np.float32))
    _, pull = gc.vjp(lambda v: gc.sum(v), x)
    with pytest.raises(GraphcError, match=r"cotangent is float32\[\], but the output is "
                                          r"float64\[\]"):
        pull(np.array(1.0, np.float32))
    (g,) = pull(2)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 2.0])
    _, pull = gc.vjp(lambda v: {"a": v, "b": v * 2}, x)
    with pytest.raises(GraphcError, match=r"cotangent for output leaf 1 is float32\[2\], "
                                          r"but the output is float64\[2\]"):
        pull({"a": np.ones(2), "b": np.ones(2, np.float32)})


def test_vjp_refuses_a_list_cotangent_for_one_array_in_one_line():
    """Review s45 r1 (4): a list cotangent for a one-array output was read as an array of
    one more axis and failed in the plan ("input 'cotangent0' expects shape (3,), got (1,
    3)"); the guard linear_transpose had is now _cotangent_leaves', which both use."""
    x = np.ones(3)
    for pull in (gc.vjp(lambda v: 2.0 * v, x)[1],
                 lambda c: gc.compile(lambda v: gc.vjp(lambda u: 2.0 * u, v)[1](c))(x)):
        with pytest.raises(GraphcError, match=r"^vjp: the cotangent is a list, but the function "
                                              r"returns one array; pass one array, "
                                              r"float64\[3\]"):
            pull([np.ones(3)])


def test_vjp_pulls_back_at_the_values_of_its_call():
    """gc.vjp on concrete arrays ran fn again when the pullback was called, on the caller's
    arrays as they were then: `w -= 1` between vjp and pull gave [0, 4] for sum(w * w) at
    [1, 3], and a refilled closed-over array or a layer's updated weight changed the
    gradient too. As JAX's, the forward runs once, at vjp, and the pullback uses the values
    it kept: [2, 6]."""
    w = np.array([1.0, 3.0])
    y, pull = gc.vjp(lambda v: gc.sum(v * v), w)
    w -= 1.0  # (an optimiser step in place)
    assert float(y) == 10.0
    np.testing.assert_array_equal(pull(1.0)[0], [2.0, 6.0])
    c = np.array([1.0, 2.0])
    _, pull = gc.vjp(lambda v: gc.sum(v * c * v), np.array([3.0, 4.0]))
    c[:] = 100.0
    np.testing.assert_array_equal(pull(1.0)[0], [6.0, 16.0])
    layer = gc.nn.Linear(2, 1, bias=False)
    weight = layer.weight.data.copy()
    _, pull = gc.vjp(lambda x: gc.sum(layer(x)), np.ones((1, 2), np.float32))
    layer.weight.data[...] = 0.0
    np.testing.assert_array_equal(pull(np.float32(1.0))[0], weight.T)


def test_vjp_pullback_uses_the_dropout_mask_of_its_forward():
    """A Dropout without a key drew a new mask when the pullback ran fn again, so the
    gradient of dropout(x) was not y's mask (scaled); vmap of the pullback the same. Now the
    forward's mask: the gradient of ones is y, and every row of the vmapped pullback of the
    identity's basis is y's mask on the diagonal."""
    drop = gc.nn.Dropout(0.5)
    y, pull = gc.vjp(lambda x: drop(x), np.ones(64))
    y = np.asarray(y)
    assert 0 < np.count_nonzero(y) < 64
    np.testing.assert_array_equal(pull(np.ones(64))[0], y)
    (rows,) = gc.vmap(pull)(np.eye(64))
    np.testing.assert_array_equal(np.asarray(rows), np.diag(y))


def test_vmapped_vjp_pullback_and_a_training_batchnorm():
    """vmap(pull) of a pullback on concrete primals ran fn again inside the vmapped trace
    (at the primals' values then); it now adds the kept backward to that graph. A
    BatchNorm in training mode still updates its running statistics once, at vjp."""
    x = np.array([1.0, 2.0])
    _, pull = gc.vjp(lambda v: v * v, x)
    x[:] = 0.0
    np.testing.assert_array_equal(np.asarray(gc.vmap(pull)(np.eye(2))[0]), np.diag([2.0, 4.0]))
    norm = gc.nn.BatchNorm1d(2)
    batch = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    _, pull = gc.vjp(norm, batch)
    pull(np.ones((2, 2), np.float32))
    np.testing.assert_allclose(norm.running_mean.data, [0.2, 0.4], rtol=1e-6)
    assert int(norm.num_batches_tracked.data) == 1


def _loss_and_norm(w):
    return gc.sum(gc.sin(w)), {"norm": gc.sum(w * w), "count": 2}


def test_vjp_and_jvp_take_has_aux_as_jax():
    """gc.vjp and gc.jvp took no has_aux (JAX's do; README listed vjp as "same"): now fn
    may return (output, aux); vjp returns (output, vjp_fn, aux) and jvp (output, tangent,
    aux), aux not differentiated, eagerly, compiled and under grad."""
    w = np.array([0.5, 1.0])
    y, pull, aux = gc.vjp(_loss_and_norm, w, has_aux=True)
    np.testing.assert_allclose(float(y), np.sin(w).sum())
    np.testing.assert_allclose(pull(1.0)[0], np.cos(w))
    assert float(aux["norm"]) == 1.25 and int(aux["count"]) == 2
    y, t, aux = gc.jvp(_loss_and_norm, (w,), (np.array([1.0, 0.0]),), has_aux=True)
    np.testing.assert_allclose(float(t), np.cos(0.5))
    assert float(aux["norm"]) == 1.25

    @gc.compile
    def both(w):
        _, pull, aux = gc.vjp(_loss_and_norm, w, has_aux=True)
        _, t, aux2 = gc.jvp(_loss_and_norm, (w,), (w,), has_aux=True)
        return pull(1.0)[0] * aux["norm"], t + aux2["norm"]
    g, t = both(w)
    np.testing.assert_allclose(g, np.cos(w) * 1.25)
    np.testing.assert_allclose(float(t), (np.cos(w) * w).sum() + 1.25)
    # differentiating through vjp's aux: d/dw of the norm the aux carries
    np.testing.assert_allclose(
        gc.grad(lambda v: gc.vjp(_loss_and_norm, v, has_aux=True)[2]["norm"])(w), 2 * w)
    with pytest.raises(GraphcError, match="vjp: with has_aux=True the function must return "
                                          "a pair"):
        gc.vjp(gc.sin, w, has_aux=True)


def test_a_compiled_call_on_tensors_that_require_grad_is_on_the_tape():
    """t.grad of sum(t * t) + compiled(sum(v ** 3))(t) was silently 2t, then (session 34)
    2t with a warning that the call was off the tape. Since session 35 the call is on the
    tape (tests/test_compiled_on_tape.py), without a warning: 2t + 3t^2. Under no_grad and on
    arrays the results are arrays, and the eager transformations' results (gradients, used
    as values) stay arrays."""
    import warnings
    t = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    cube_sum = gc.compile(lambda v: gc.sum(v ** 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = gc.sum(t * t) + cube_sum(t)
        loss.backward()
        np.testing.assert_allclose(t.grad, [5.0, 16.0])
        with gc.no_grad():
            assert type(gc.compile(lambda v: gc.sum(v))(t)) is np.ndarray
        assert float(gc.compile(lambda v: gc.sum(v))(np.ones(2))) == 2.0
        g = gc.grad(lambda v: gc.sum(v ** 3))(t)
        assert type(g) is np.ndarray
        np.testing.assert_allclose(g, [3.0, 12.0])
