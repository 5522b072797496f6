"""Results never share memory with the caller's arrays, except where the op is a view.

Ops that leave their operand as it is (floor, ceil and round of integers, a cast to the
operand's own dtype, clip without bounds) handed back the operand itself eagerly, and a
compiled function handed back its input (or a view of it, or one array for two outputs): a
caller updating that array in place, as an optimiser does, changed an earlier result. JAX's
and PyTorch's results are arrays of their own (JAX's arrays cannot be changed at all).
Eager reshapes, transposes, slices and broadcasts stay views, as numpy's and PyTorch's are.
"""
import numpy as np
import pytest

import graphc as gc


def _array(y):
    return y.numpy() if isinstance(y, gc.Tensor) else np.asarray(y)


INTS = np.arange(6, dtype=np.int32).reshape(2, 3)
FLOATS = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)

EAGER = [
    ("floor", gc.floor, INTS), ("ceil", gc.ceil, INTS), ("round", gc.round, INTS),
    ("round2", lambda x: gc.round(x, 2), INTS), ("cast", lambda x: gc.cast(x, "int32"), INTS),
    ("cast-float", lambda x: gc.cast(x, "float32"), FLOATS), ("clip", gc.clip, FLOATS),
    ("concat-one", lambda x: gc.concat([x]), FLOATS),
    ("stack-one", lambda x: gc.reshape(gc.stack([x]), (2, 3)), FLOATS),
    ("vmap-floor", gc.vmap(gc.floor), INTS), ("vmap-id", gc.vmap(lambda r: r), FLOATS),
    ("vmap-unbatched", gc.vmap(lambda w, r: w, in_axes=(None, 0), out_axes=None),
     FLOATS, np.zeros((4, 1), np.float32)),
]


@pytest.mark.parametrize("case", EAGER, ids=[c[0] for c in EAGER])
def test_eager_identity_ops_give_new_arrays(case):
    _, f, x, *rest = case
    a = x.copy()
    y = f(a, *rest)
    assert isinstance(y, gc.Tensor)
    assert not np.shares_memory(_array(y), a)
    a += 1  # the caller updates its array: the result stays
    np.testing.assert_array_equal(_array(y), x)
    # an eager tensor: `y += 1` on the result leaves the operand alone (it was the same tensor)
    t = gc.tensor(x.copy())
    y = f(t, *[gc.tensor(r) for r in rest])
    y += 1
    np.testing.assert_array_equal(t.numpy(), x)


def test_eager_identity_ops_keep_the_gradient():
    x = gc.tensor(FLOATS, requires_grad=True)
    y = gc.cast(x, "float32") * 3.0 + gc.clip(x) + gc.reshape(x, (2, 3))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 5.0, np.float32))


def test_eager_views_are_new_tensors_viewing_the_operand():
    """A reshape to the same shape (a transpose by the identity, a full slice) is a view,
    as every reshape is, and not the operand itself: `y += 1` leaves x alone, as after any
    other reshape."""
    for f in (lambda x: gc.reshape(x, (2, 3)), lambda x: gc.transpose(x, (0, 1)),
              lambda x: gc.squeeze(x), lambda x: gc.broadcast_to(x, (2, 3)),
              lambda x: x[:, :]):
        t = gc.tensor(FLOATS)
        y = f(t)
        assert y is not t
        y += 1
        np.testing.assert_array_equal(t.numpy(), FLOATS)
    a = FLOATS.copy()
    y = gc.reshape(a, (2, 3))
    assert isinstance(y, gc.Tensor) and np.shares_memory(y.numpy(), a)


def test_tensor_copies_its_data_and_backward_copies_the_gradient():
    a = FLOATS.copy()
    t = gc.tensor(a, requires_grad=True)
    assert not np.shares_memory(t.numpy(), a)
    g = np.ones((3, 2), np.float32)
    t.reshape(3, 2).backward(g)  # x.grad was a view of the caller's g
    assert not np.shares_memory(t.grad, g)
    g[...] = 7
    np.testing.assert_array_equal(t.grad, np.ones((2, 3), np.float32))


COMPILED = [
    ("identity", lambda x: x, FLOATS), ("floor", gc.floor, INTS),
    ("times-one", lambda x: x * 1.0, FLOATS), ("plus-zero", lambda x: x + 0.0, FLOATS),
    ("reshape", lambda x: gc.reshape(x, (3, 2)), FLOATS), ("transpose", lambda x: x.T, FLOATS),
    ("slice", lambda x: x[1:], FLOATS), ("stop-gradient", gc.stop_gradient, FLOATS),
    ("vmap", gc.vmap(lambda r: r), FLOATS),
    ("fori-none", lambda x: gc.fori_loop(0, 0, lambda i, v: v * 2.0, x), FLOATS),
]


@pytest.mark.parametrize("pipeline", ["default", "O0"])
@pytest.mark.parametrize("case", COMPILED, ids=[c[0] for c in COMPILED])
def test_compiled_outputs_do_not_alias_inputs(case, pipeline):
    _, f, x = case
    a = x.copy()
    y = gc.compile(f, pipeline=pipeline)(a)
    assert not np.shares_memory(y, a)
    expected = np.asarray(f(gc.tensor(x)).numpy())
    a += 1  # an optimiser updating its parameters in place
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("pipeline", ["default", "O0"])
def test_compiled_outputs_do_not_alias_each_other(pipeline):
    for f in (lambda x: (x * 2.0, x * 2.0), lambda x: (x, x), lambda x: (x * 2.0, (x * 2.0).T)):
        a, b = gc.compile(f, pipeline=pipeline)(FLOATS.copy())
        assert not np.shares_memory(a, b)
    # disjoint parts of one result need no copy, and stay right
    a, b = gc.compile(lambda x: gc.split(x * 2.0, 2, axis=1))(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(np.concatenate([a, b], axis=1), np.full((2, 4), 2.0))


def test_polymorphic_and_transformed_results_do_not_alias_inputs():
    a = FLOATS.copy()
    for y in (gc.compile(lambda x: x, polymorphic_shapes=(("b", "_"),))(a),
              gc.vjp(lambda v: v, a)[0], *gc.jvp(lambda v: v, (a,), (a,))):
        assert not np.shares_memory(y, a)


def test_donated_outputs_may_reuse_the_donated_array():
    """A donated argument is the plan's to write over (JAX's donation): not copied."""
    a = FLOATS.copy()
    y = gc.compile(lambda x: x, donate_argnums=0)(a)
    assert np.shares_memory(y, a)


def test_the_tape_keeps_a_copy_of_a_callers_numpy_operand():
    """Before: the tape held the caller's array itself, so refilling it before backward()
    changed the gradient (w.grad was [100, 100, 100])."""
    a = np.full(3, 2.0, np.float32)
    w = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    y = gc.sum(w * a)
    a[:] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0, 2.0])
    # a second-order gradient through the same op reads the saved copy too
    w2 = gc.tensor(np.ones(3, np.float64), requires_grad=True)
    b = np.full(3, 3.0)
    z = gc.sum(w2 * w2 * b)
    b[:] = -1.0
    z.backward()
    np.testing.assert_array_equal(w2.grad, [6.0, 6.0, 6.0])


def _identity_custom_vjp():
    f = gc.custom_vjp(lambda x: x)
    f.defvjp(lambda x: (x, None), lambda _, g: (g,))
    return f


def _identity_custom_jvp():
    f = gc.custom_jvp(lambda x: x)
    f.defjvp(lambda primals, tangents: (primals[0], tangents[0]))
    return f


def _eager_wrappers(c, ct):
    """(name, call on an argument) of eager transformation wrappers whose function returns
    its argument, or an array or tensor it closed over (c, ct), unchanged."""
    same = lambda v: v  # noqa: E731
    return [
        ("remat", gc.remat(same)),
        ("remat-pytree", lambda v: gc.remat(lambda d: {"x": d["x"], "y": [d["y"]]})(
            {"x": v, "y": v})),
        ("remat-closure", lambda v: gc.remat(lambda u: (u * 2.0, c, ct))(v)),
        ("cond-no-operands", lambda v: gc.cond(True, lambda: c, lambda: c)),
        ("cond-no-operands-tensor", lambda v: gc.cond(False, lambda: ct, lambda: ct)),
        ("cond-closure", lambda v: gc.cond(True, lambda u: (u * 2.0, c), lambda u: (u, c), v)),
        ("scan-carry-closure", lambda v: gc.scan(lambda k, _: (c, None), v, None, length=2)[0]),
        ("fori-closure", lambda v: gc.fori_loop(0, 2, lambda i, u: c, v)),
        ("while-closure", lambda v: gc.while_loop(lambda u: gc.sum(u) < 50.0, lambda u: ct, v)),
        ("custom_vjp", _identity_custom_vjp()),
        ("custom_jvp", _identity_custom_jvp()),
    ]


@pytest.mark.parametrize("index", range(11))
@pytest.mark.parametrize("kind", ["array", "tensor", "requires-grad"])
def test_eager_wrappers_do_not_hand_back_a_callers_array(index, kind):
    """Eagerly, remat ran its function as it is and cond with no operands (or with operands,
    a branch returning what it closed over), a loop returning a closed-over value, and
    custom_vjp/custom_jvp functions returning their argument handed back the caller's array
    itself (or the closed-over tensor), where the compiled functions return copies: an
    in-place update of the result changed the caller's array. Values stay equal, and a
    tensor's gradient still flows through the copy."""
    c = np.arange(3, dtype=np.float32) + 10.0
    ct = gc.tensor(np.arange(3, dtype=np.float32) + 20.0)
    a = np.arange(3, dtype=np.float32)
    arg = a if kind == "array" else gc.tensor(a, requires_grad=kind == "requires-grad")
    name, fun = _eager_wrappers(c, ct)[index]
    result = fun(arg)
    # the compiled function (arrays in and out) gives the same values
    expected = gc.compile(lambda v: fun(v))(a)
    got, want = gc.tree_leaves(result), gc.tree_leaves(expected)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(_array(g), w)
        for owner in (a, _array(arg), c, ct.numpy()):
            assert not np.shares_memory(_array(g), owner), name
    if kind == "requires-grad" and name not in ("cond-no-operands", "cond-no-operands-tensor",
                                                 "fori-closure", "while-closure",
                                                 "scan-carry-closure"):
        gc.sum(got[0] * 3.0).backward()
        doubled = name in ("remat-closure", "cond-closure")  # got[0] is u * 2.0
        np.testing.assert_array_equal(arg.grad, [6.0 if doubled else 3.0] * 3)


def test_eager_transformations_returning_an_input_give_arrays_of_their_own():
    """Checked with the wrappers above (these already copied): vmap of an identity with
    in_axes None, jvp/vjp/grad/value_and_grad/jacobians whose outputs are an input."""
    a = np.arange(3, dtype=np.float32)
    same = lambda v: v  # noqa: E731
    results = [gc.vmap(same, in_axes=None, axis_size=2)(a),
               gc.vmap(same, in_axes=None, out_axes=None, axis_size=2)(a),
               *gc.jvp(same, (a,), (a,)), gc.vjp(same, a)[0], gc.vjp(same, a)[1](a),
               *gc.grad(lambda x: (gc.sum(x), x), has_aux=True)(a),
               gc.jacrev(same)(a), gc.jacfwd(same)(a)]
    for r in results:
        assert not np.shares_memory(_array(r), a)
    np.testing.assert_array_equal(_array(results[0]), [a, a])
    np.testing.assert_array_equal(_array(results[3]), a)
    np.testing.assert_array_equal(_array(results[-1]), np.eye(3))


def test_eager_constructs_keep_a_numpy_result_a_numpy_array():
    """A loop or branch computing with numpy returns numpy arrays eagerly, as before the
    copies of closed-over values: the copy of an array that shares no operand's memory is an
    array again, not a Tensor (review of the s21b merge)."""
    a = np.ones(3)
    cases = [gc.fori_loop(0, 3, lambda i, x: x * 2, a),
             gc.while_loop(lambda x: x.sum() < 10, lambda x: x * 2, a),
             gc.cond(True, lambda x: x + 1, lambda x: x, a),
             gc.cond(True, lambda: a, lambda: a)]
    for result, want in zip(cases, [a * 8, a * 4, a + 1, a]):
        assert type(result) is np.ndarray
        assert not np.shares_memory(result, a)
        np.testing.assert_array_equal(result, want)
