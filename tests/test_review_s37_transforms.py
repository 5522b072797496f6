"""Session 37's fixes of the function transformations and tree utilities; each test failed
before its fix."""
import collections

import ml_dtypes
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


def _to_int(i, c):
    return c.astype("int32")


def _new_keys(i, c):
    return {"a": c["a"], "z": c["b"]}


@pytest.mark.parametrize("run", [
    lambda body, init: gc.fori_loop(0, 3, body, init),  # eager
    lambda body, init: gc.compile(lambda c: gc.fori_loop(0, 3, body, c))(init),  # a scan
    lambda body, init: gc.compile(lambda c, n: gc.fori_loop(0, n, body, c))(init, 3),  # a while
], ids=["eager", "scan", "while_loop"])
def test_fori_loop_carry_errors_name_its_body(run):
    """A fori_loop body returning its carry with another dtype or structure was reported as
    the "scan function" (or, with a traced bound, as a while_loop body defined inside
    graphc/control_flow.py) with the loop counters in the carry ("(i64[], i32[2]) but it came
    in as (i64[], f32[2])"); the message now names fori_loop's body and shows its carry alone."""
    with pytest.raises(gc.GraphcError) as info:
        run(_to_int, np.ones(2, np.float32))
    assert str(info.value).splitlines()[0].startswith(
        "fori_loop body function _to_int (defined at ")
    assert "returns the carry as (i32[2]) but it came in as (f32[2])" in str(info.value)
    assert "control_flow.py" not in str(info.value)
    with pytest.raises(gc.GraphcError) as info:
        run(_new_keys, {"a": np.ones(2), "b": np.ones(2)})
    assert "fori_loop body function _new_keys" in str(info.value)
    assert "(its dict has keys ['a', 'z'] where the initial one's has ['a', 'b'])" \
        in str(info.value)


X = np.ones(2, np.float32)


@pytest.mark.parametrize("call, named, called_as", [
    (lambda: gc.fori_loop(0, 3, lambda c: c, X), "fori_loop: body_fun <lambda>(c)",
     "body_fun(i, val)"),
    (lambda: gc.compile(lambda x, n: gc.fori_loop(0, n, lambda c: c, x))(X, 3),
     "fori_loop: body_fun <lambda>(c)", "body_fun(i, val)"),
    (lambda: gc.while_loop(lambda: True, lambda c: c, X), "while_loop: cond_fun <lambda>()",
     "cond_fun(val)"),
    (lambda: gc.compile(lambda x: gc.while_loop(lambda c: gc.sum(c) < 5, lambda c, d: c, x))(X),
     "while_loop: body_fun <lambda>(c, d)", "body_fun(val)"),
    (lambda: gc.scan(lambda c: (c, c), X, np.ones((3, 2), np.float32)), "scan: f <lambda>(c)",
     "f(carry, x)"),
    (lambda: gc.compile(lambda x: gc.cond(gc.sum(x) > 0, lambda a, b: a, lambda a: a, x))(X),
     "cond: true_fun <lambda>(a, b)", "true_fun(operands[0])"),
    (lambda: gc.switch(1, [lambda a: a, lambda: X], X), "switch: branches[1] <lambda>()",
     "branches[1](operands[0])"),
    (lambda: gc.map(lambda a, b: a, np.ones((3, 2))), "map: f <lambda>(a, b)", "f(x)"),
], ids=["fori_loop", "fori_loop-traced-bound", "while_loop-cond", "while_loop-body", "scan",
        "cond", "switch", "map"])
def test_a_function_of_the_wrong_arity_is_one_line(call, named, called_as):
    """A loop body, a cond or switch branch or a map function that cannot take the arguments
    the construct passes gave a raw TypeError from inside the trace ("<lambda>() takes 1
    positional argument but 2 were given"); it is now one GraphcError line naming the function,
    its signature, where it is defined and the call the construct makes."""
    with pytest.raises(gc.GraphcError) as info:
        call()
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{named} (defined at ") and "test_review_s37_transforms.py" in first
    assert first.endswith(f") cannot be called as {called_as}")


def test_linearize_takes_bfloat16_primals():
    """linearize read each numpy primal's `.data` (a memoryview, meant for a graphc Tensor's
    array), which a bfloat16 array cannot be read back from ("cannot include dtype 'E' in a
    buffer"); it now reads Tensors' arrays only, and gives JAX's bfloat16 values."""
    x = np.array([1.0, 2.0, 3.0], ml_dtypes.bfloat16)
    y, f_jvp = gc.linearize(lambda v: gc.sin(v) * 2, x)
    tangent = f_jvp(np.ones(3, ml_dtypes.bfloat16))
    assert y.dtype == tangent.dtype == ml_dtypes.bfloat16
    # jax.linearize(lambda v: jnp.sin(v) * 2, x) in bfloat16
    np.testing.assert_array_equal(y.astype(np.float32), np.array(
        [1.6796875, 1.8203125, 0.28320312], ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(tangent.astype(np.float32), np.array(
        [1.078125, -0.83203125, -1.9765625], ml_dtypes.bfloat16).astype(np.float32))


def test_linearize_takes_a_numpy_int_factor_as_jvp_does():
    """linearize traced only a Python-int primal weakly typed, so x * np.int64(3) was refused
    ("mul(f64[2], i64[]): operands must have one dtype") where gc.jvp and gc.compile take a
    numpy scalar weakly typed and give x's dtype; linearize now agrees with them."""
    def scaled(x, n):
        return x * n
    x = np.array([1.0, 2.0], np.float32)
    y, f_jvp = gc.linearize(scaled, x, np.int64(3))
    tangent = f_jvp(np.array([1.0, -1.0], np.float32), np.int64(0))
    assert y.dtype == tangent.dtype == np.float32
    np.testing.assert_array_equal(y, [3.0, 6.0])
    np.testing.assert_array_equal(tangent, [3.0, -3.0])
    np.testing.assert_array_equal(gc.jvp(scaled, (x, np.int64(3)),
                                         (np.array([1.0, -1.0], np.float32), np.int64(0)))[1],
                                  tangent)



def _scaled_square(x, h):
    return gc.sum(x * x) * h["s"]


def test_vmap_of_grad_keeps_an_unmapped_float64_scalar_in_a_pytree_float64():
    """vmap cast every unmapped numpy float scalar to the float dtype the arrays share, one
    inside a pytree too, so gc.vmap(gc.grad(f, argnums=1), in_axes=(0, None)) over float32
    examples gave {"s": np.float64(2)} a float32 gradient where eager gc.grad and gc.compile
    give float64 (a pytree's numpy scalar keeps its dtype there, weakly typed). Only a whole
    argument takes the shared dtype now, as compile's; one in a pytree stays weak float64."""
    xs = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    h = {"s": np.float64(2.0)}
    grad_s = gc.grad(_scaled_square, argnums=1)
    batched = gc.vmap(grad_s, in_axes=(0, None))(xs, h)
    assert np.asarray(batched["s"]).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(batched["s"]), [1.0, 13.0, 41.0])
    for k in range(3):
        eager, compiled = grad_s(xs[k], h), gc.compile(grad_s)(xs[k], h)
        assert np.asarray(eager["s"]).dtype == np.asarray(compiled["s"]).dtype == np.float64
    grad_x = gc.vmap(gc.grad(_scaled_square), in_axes=(0, None))(xs, h)
    assert np.asarray(grad_x).dtype == np.float32  # the weak scalar meets float32 examples
    np.testing.assert_array_equal(np.asarray(grad_x), 4 * xs)
    whole = gc.vmap(lambda x, s: x * s, in_axes=(0, None))(xs, np.float64(2.0))
    assert np.asarray(whole).dtype == np.float32  # a whole argument: as before


def test_an_ordered_dict_stays_one_through_the_transformations():
    """An OrderedDict was flattened as a plain dict: it reached a compiled, vmapped or jvp'd
    function as a dict and came back (gradients, results, tree_map) as one. As in JAX it is
    a pytree node of its own: the type and its key order are kept, and it is another
    structure than a dict with the same keys."""
    od = collections.OrderedDict
    params = od([("w", np.array([1.0, 2.0])), ("b", np.array([0.5, 0.5]))])
    seen = []

    def loss(p):
        seen.append(type(p))
        return gc.sum(p["w"] * p["w"] + p["b"])

    def swap(p):
        seen.append(type(p))
        return od([("z", p["w"] * 2.0), ("a", p["b"])])

    for grads in (gc.grad(loss)(params), gc.compile(gc.grad(loss))(params)):
        assert type(grads) is od and list(grads) == ["w", "b"]
        np.testing.assert_array_equal(grads["w"], [2.0, 4.0])
        np.testing.assert_array_equal(grads["b"], [1.0, 1.0])
    batch = od([("w", np.ones((3, 2))), ("b", np.zeros((3, 2)))])
    for out in (gc.compile(swap)(params), gc.vmap(swap)(batch)):
        assert type(out) is od and list(out) == ["z", "a"]
    assert set(seen) == {od}
    np.testing.assert_array_equal(gc.vmap(swap)(batch)["z"], np.full((3, 2), 2.0))
    mapped = gc.tree_map(lambda x: x + 1, params)
    assert type(mapped) is od and list(mapped) == ["w", "b"]
    leaves, treedef = gc.tree_flatten(params)
    assert type(gc.tree_unflatten(treedef, leaves)) is od
    assert treedef != gc.tree_flatten(dict(params))[1]


@pytest.mark.parametrize("make", [gc.optim.SGD(lr=0.1, momentum=0.9), gc.optim.Adam(lr=0.1),
                                  gc.optim.Adagrad(lr=0.1), gc.optim.NAdam(lr=0.1)],
                         ids=["SGD", "Adam", "Adagrad", "NAdam"])
def test_an_optimizer_state_from_a_dict_serves_its_ordered_dict(make):
    """Since OrderedDicts became pytree nodes of their own, an optimiser state made from a
    dict refused the same parameters as an OrderedDict, and the other way round ("state
    ['m'] does not match the parameters' pytree"), eager and compiled. The state's slots are
    matched to the parameters by key now (as gradients are), in any dict kind or key order."""
    od = collections.OrderedDict
    # (one shape for both: slots paired with the wrong parameter would not broadcast away)
    params = od([("w", np.array([1.0, 2.0], np.float32)), ("b", np.array([3.0, -1.0],
                                                                         np.float32))])
    grads = od([("w", np.array([0.5, -1.0], np.float32)), ("b", np.array([2.0, 0.25],
                                                                         np.float32))])
    first, stepped = make.update(grads, make.init(params), params)  # slots no longer zeros
    reference, _ = make.update(grads, stepped, params)

    def as_dicts(tree, order):
        if isinstance(tree, dict):
            if set(tree) == {"w", "b"}:
                return {k: tree[k] for k in order}
            return {k: as_dicts(v, order) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(as_dicts(x, order) for x in tree)
        return tree
    for order in (("w", "b"), ("b", "w")):
        state = as_dicts(stepped, order)
        for update in (make.update, gc.compile(make.update)):
            new, new_state = update(grads, state, params)
            assert type(new) is od and list(new) == ["w", "b"]
            for key in ("w", "b"):
                np.testing.assert_allclose(new[key], reference[key], rtol=1e-6)
    plain = {"w": params["w"], "b": params["b"]}
    new, _ = make.update(dict(grads), make.init(params), plain)
    assert type(new) is dict
    np.testing.assert_allclose(new["w"], first["w"], rtol=1e-6)
    with pytest.raises(gc.GraphcError, match="does not match the parameters' pytree"):
        make.update(grads, make.init({"w": params["w"], "c": params["b"]}), params)


def _as_plain_dict(i, c):
    return dict(c)


def _reordered(i, c):
    return collections.OrderedDict([("b", c["b"]), ("a", c["a"])])


@pytest.mark.parametrize("run", [
    lambda body, init: gc.fori_loop(0, 3, body, init),
    lambda body, init: gc.compile(lambda c: gc.fori_loop(0, 3, body, c))(init),
    lambda body, init: gc.compile(lambda c, n: gc.fori_loop(0, n, body, c))(init, 3),
], ids=["eager", "scan", "while_loop"])
def test_control_flow_says_where_a_dict_and_an_ordered_dict_differ(run):
    """A carry or branches giving a dict for an OrderedDict (or an OrderedDict with its keys
    in another order) are refused, as in JAX, but the message did not say what differed
    ("must return a carry with the structure of the initial one"; cond: "returns (f32[2])
    but false_fun returns (f32[2])"): it now names the two kinds, or the two key orders, and
    where they are."""
    od = collections.OrderedDict
    init = od([("a", np.ones(2, np.float32)), ("b", np.zeros(2, np.float32))])
    with pytest.raises(gc.GraphcError, match=r"must return a carry with the structure of the "
                       r"initial one \(it returns a dict where the initial carry has an "
                       r"OrderedDict\)\n"):
        run(_as_plain_dict, init)
    with pytest.raises(gc.GraphcError, match=r"\(it returns an OrderedDict with keys \['b', "
                       r"'a'\] where the initial carry has one with keys \['a', 'b'\]\)\n"):
        run(_reordered, init)
    with pytest.raises(gc.GraphcError, match=r"\(it returns a dict at 1 where the initial "
                       r"carry has an OrderedDict\)\n"):
        run(lambda i, c: (c[0], dict(c[1])), (np.ones(2, np.float32), init))
    with pytest.raises(gc.GraphcError, match=r"both must return the same structure, shapes "
                       r"and dtypes; their results at x are an OrderedDict and a dict\n"):
        gc.compile(lambda c: gc.cond(gc.sum(c["a"]) > 0, lambda c: {"x": c},
                                     lambda c: {"x": dict(c)}, c))(init)


def test_control_flow_reads_no_signature_when_its_functions_run(monkeypatch):
    """Every eager cond, switch and loop read and bound its functions' signatures up front,
    to refuse a wrong arity in one line (eager cond 16 -> 37 us); the signatures are read
    now only when the construct raised a TypeError, which stays the function's own where
    the function takes the arguments passed."""
    import inspect
    read = []
    signature = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: read.append(a) or signature(*a, **k))
    assert gc.cond(True, lambda a: a + 1.0, lambda a: a, X).tolist() == [2.0, 2.0]
    assert gc.switch(1, [lambda a: a, lambda a: a * 3.0], X).tolist() == [3.0, 3.0]
    assert gc.fori_loop(0, 3, lambda i, c: c + 1.0, X).tolist() == [4.0, 4.0]
    assert gc.while_loop(lambda c: gc.sum(c) < 5, lambda c: c * 2.0, X).tolist() == [4.0, 4.0]
    assert gc.scan(lambda c, x: (c + x, c), X, np.ones((2, 2), np.float32))[0].tolist() == \
        [3.0, 3.0]
    assert gc.map(lambda x: x * 2.0, np.ones((2, 2), np.float32)).tolist() == [[2.0, 2.0]] * 2
    assert read == []

    def adds_a_string(i, c):
        return c + "1"  # a TypeError of its own: body_fun takes (i, val)

    with pytest.raises(TypeError, match="unsupported operand|ufunc"):
        gc.fori_loop(0, 3, adds_a_string, 1)
    with pytest.raises(gc.GraphcError, match=r"^fori_loop: body_fun <lambda>\(c\) "):
        gc.fori_loop(0, 3, lambda c: c, X)


class _TwoInputs(gc.nn.Module):
    def forward(self, x, y):
        return x + y


def test_a_module_of_the_wrong_arity_is_one_line():
    """A graphc Module given to scan, map or a loop that cannot take the construct's call
    gave a raw TypeError ("Linear.forward() takes 2 positional arguments but 3 were given"):
    a Module's __call__ takes anything, so its forward's signature is bound now, and the
    refusal is the one line naming it; a Module that takes the call runs."""
    with pytest.raises(gc.GraphcError) as info:
        gc.scan(gc.nn.Linear(2, 2), X, np.ones((3, 2), np.float32))
    first = str(info.value).splitlines()[0]
    assert first.startswith("scan: f Linear.forward(x) (defined at ")
    assert first.endswith(") cannot be called as f(carry, x)")
    with pytest.raises(gc.GraphcError, match=r"^map: f _TwoInputs.forward\(x, y\) \(defined at "
                       r"tests/test_review_s37_transforms.py:\d+\) cannot be called as f\(x\)"):
        gc.map(_TwoInputs(), np.ones((3, 2), np.float32))
    ys = gc.map(gc.nn.Linear(2, 3), np.ones((4, 2), np.float32))
    assert np.asarray(ys).shape == (4, 3)


def test_eager_grad_keeps_a_numpy_float32_scalar_in_float32():
    """Eager grad (and jvp, linearize, the Jacobians) of a numpy float32 scalar argument,
    with no float array argument, gave float64 gradients where gc.compile(gc.grad(f)) and
    JAX give float32; numpy float scalars now give their dtype (a Python float among them
    takes it too, as JAX's weak float), and Python floats alone stay float64 as README says."""
    def square(x):
        return x * x

    for scalar in (np.float32(2.0), np.float16(2.0)):
        for g in (gc.grad(square)(scalar), gc.value_and_grad(square)(scalar)[1],
                  gc.jacrev(square)(scalar), gc.jacfwd(square)(scalar),
                  gc.jvp(square, (scalar,), (scalar.dtype.type(1.0),))[1],
                  gc.compile(gc.grad(square))(scalar)):
            assert np.asarray(g).dtype == scalar.dtype and float(g) == 4.0
    grads = gc.grad(lambda a, b: a * b, argnums=(0, 1))(np.float32(2.0), 3.0)
    assert [(np.asarray(g).dtype, float(g)) for g in grads] == [(np.float32, 3.0),
                                                                (np.float32, 2.0)]
    assert np.asarray(gc.grad(square)(2.0)).dtype == np.float64


def test_a_wrong_call_of_a_construct_names_the_construct_and_a_modules_own_call_is_its():
    """With signatures read only after a TypeError, a wrong call of the construct itself
    (fori_loop without init_val) raised the internal lambda's TypeError ('<lambda>()
    missing ...'), and a Module with its own __call__ had its forward's signature bound:
    a body's own TypeError became a false arity refusal. Now the construct's own error,
    and the module's own TypeError, go on unchanged."""
    with pytest.raises(TypeError, match=r"^fori_loop\(\) missing 1 required positional "
                                        r"argument: 'init_val'"):
        gc.fori_loop(0, 3, lambda i, c: c)

    class Step(gc.nn.Module):
        def forward(self, z):
            return z

        def __call__(self, carry, x):
            raise TypeError("the step's own error")
    with pytest.raises(TypeError, match="^the step's own error$"):
        gc.scan(Step(), np.ones(2, np.float32), np.ones((3, 2), np.float32))
