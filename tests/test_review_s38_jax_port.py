"""Session 38's fixes of defects found porting JAX code to graphc; each test failed before its
fix."""
from collections import OrderedDict

import numpy as np
import pytest

import graphc as gc


def test_tree_flatten_sorts_dict_keys_as_jax():
    """gc.tree_flatten / tree_leaves walked dicts in insertion order, so JAX's idiom of
    zipping the leaves of params and grads mixed leaves when grads listed the same keys in
    another order, and their treedefs compared unequal. Now a dict's leaves come in sorted
    key order, as jax.tree_util's, and unflatten builds the dict in that order."""
    params = {"w": np.array([1.0, 2.0]), "b": np.array([10.0, 20.0])}
    grads = {"b": np.array([1.0, 1.0]), "w": np.array([5.0, 5.0])}
    leaves, treedef = gc.tree_flatten(params)
    assert treedef == gc.tree_flatten(grads)[1]
    new = gc.tree_unflatten(treedef, [p - g for p, g in zip(leaves, gc.tree_leaves(grads))])
    assert list(new) == ["b", "w"]
    np.testing.assert_array_equal(new["w"], [-4.0, -3.0])
    np.testing.assert_array_equal(new["b"], [9.0, 19.0])
    assert gc.tree_leaves({"z": 1, "a": [2, {"y": 3, "x": 4}]}) == [2, 4, 3, 1]
    # an OrderedDict keeps its own order (as in JAX); unsortable keys are refused (as JAX's)
    assert gc.tree_leaves(OrderedDict([("b", 1), ("a", 2)])) == [1, 2]
    with pytest.raises(gc.GraphcError, match="cannot be sorted"):
        gc.tree_flatten({1: "a", "b": 2})


def test_split_follows_numpy_and_the_method_follows_torch():
    """gc.split(x, [2, 4]) read the list as torch's sizes while gc.split(x, 2) followed numpy
    (2 equal sections), so np/jnp code silently got other pieces. gc.split is now numpy's
    throughout (a list = indices to split at, an int = equal sections); torch's form (an int
    = chunk size, a list = sizes) is the tensor method x.split."""
    x = np.arange(6.0)
    pieces = [np.asarray(p).tolist() for p in gc.split(x, [2, 4])]
    assert pieces == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert [np.asarray(p).tolist() for p in gc.split(x, [4, 2, -1, 9])] == \
        [p.tolist() for p in np.split(x, [4, 2, -1, 9])]
    assert [np.asarray(p).tolist() for p in gc.split(x, 3)] == [[0.0, 1.0], [2.0, 3.0],
                                                               [4.0, 5.0]]
    with pytest.raises(gc.GraphcError, match="does not split into 4 equal parts"):
        gc.split(x, 4)
    t = gc.tensor(x)
    assert [np.asarray(p).tolist() for p in t.split(4)] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]
    assert [np.asarray(p).tolist() for p in t.split([1, 5])] == [[0.0],
                                                                 [1.0, 2.0, 3.0, 4.0, 5.0]]
    # traced too, with the gradient flowing through the pieces
    grad = gc.grad(lambda v: gc.sum(gc.split(v, [1, 3])[1] * 2.0) + gc.sum(v.split(5)[1]))(x)
    np.testing.assert_array_equal(grad, [0.0, 2.0, 2.0, 0.0, 0.0, 1.0])


def test_transformations_pass_a_number_used_in_a_python_expression_as_it_is():
    """grad / value_and_grad / jacrev / hessian retried with a Python number passed as it is
    (README) only when the number itself was used as a Python value (range(k)); `if k > 1`,
    float(s), math.sqrt(s) and `if s > 0.5` failed ("no truth value", "float() of a symbolic
    value"): the refused value was computed from the number, and a Python float argument is
    traced as a 0-d float64 input. Now each reaches fn as it is, as in un-jitted JAX, and
    gc.compile's message for `if k > 1` names static_argnums as it does for `if k`."""
    import math
    x = np.array([0.5, 1.5, 2.0])
    cube = 3.0 * x ** 2  # d/dx sum(x**3)
    by_int = lambda v, k: gc.sum(v ** 3) * (2.0 if k > 1 else 1.0)
    by_float = lambda v, s: gc.sum(v ** 3) * (2.0 if s > 0.5 else 1.0) * math.sqrt(float(s))
    np.testing.assert_allclose(gc.grad(by_int)(x, 2), 2.0 * cube)
    np.testing.assert_allclose(gc.grad(by_int)(x, 1), cube)
    np.testing.assert_allclose(gc.grad(by_float)(x, 4.0), 4.0 * cube)  # 2 * sqrt(4)
    np.testing.assert_allclose(gc.grad(by_float)(x, 0.25), 0.5 * cube)  # 1 * sqrt(0.25)
    value, grad = gc.value_and_grad(by_float)(x, 9.0)
    assert float(value) == 6.0 * 11.5
    np.testing.assert_allclose(grad, 6.0 * cube)
    np.testing.assert_allclose(gc.jacrev(by_int)(x, 3), 2.0 * cube)
    np.testing.assert_allclose(gc.hessian(by_float)(x, 4.0), np.diag(4.0 * 6.0 * x))
    with pytest.raises(gc.GraphcError, match="'k' is traced: .* static_argnums"):
        gc.compile(by_int)(x, 2)
    # a value computed from an array is still refused, not retried
    with pytest.raises(gc.GraphcError, match=r"^float\(\) of a symbolic value: [^;]*$"):
        gc.grad(lambda v: gc.sum(v) * float(v[0]))(x)


def test_a_differentiated_number_used_as_a_python_value_says_to_leave_it_out_of_argnums():
    """Session 41: gc.grad(f, argnums=(0, 1))(x, 3.0), f using n as a Python value, said to
    list n's position in static_argnums, which grad has not. Now the line says that n is
    differentiated, so traced, and to leave its argument out of argnums (a leaf's too:
    cfg["k"] leaves cfg out); doing so works, the number then passed as it is."""
    x = np.array([0.5, 1.5, 2.0])
    by_if = lambda v, n: gc.sum(v ** 2) * (3.0 if n > 2 else 1.0)
    by_dict = lambda v, cfg: gc.sum(v ** 2) * float(cfg["k"])
    for make, who, name, whole in [
            (lambda: gc.grad(by_if, argnums=(0, 1))(x, 3.0), "grad", "n", "n"),
            (lambda: gc.value_and_grad(by_if, argnums=1)(x, 3.0), "value_and_grad", "n", "n"),
            (lambda: gc.jacrev(by_dict, argnums=(0, 1))(x, {"k": 3.0}), "jacrev", "cfg.k",
             "cfg")]:
        with pytest.raises(gc.GraphcError) as info:
            make()
        line = str(info.value).splitlines()[0]
        assert "static_argnums in" not in line and "list its position" not in line
        assert line.endswith(
            f"; '{name}' is differentiated (in argnums), so traced: {who} takes no "
            f"static_argnums; to use it as a Python value, leave '{whole}' out of argnums: a "
            "number not differentiated is passed as it is")
    np.testing.assert_allclose(gc.grad(by_if, argnums=0)(x, 3.0), 6.0 * x)
    np.testing.assert_allclose(gc.jacrev(by_dict)(x, {"k": 3.0}), 6.0 * x)
    # gc.compile's own advice is unchanged: it has static_argnums
    with pytest.raises(gc.GraphcError, match="'n' is traced: .* in static_argnums"):
        gc.compile(by_if)(x, 3.0)


def test_a_differentiated_number_inside_compile_says_to_leave_it_out_of_argnums():
    """Session 42: gc.compile(gc.grad(f, argnums=(0, 1)))(x, 3.0), f using n as a Python
    value, was told compile's 'list its position in static_argnums', which fails when
    followed (grad traces n, which it differentiates, whatever compile passes). Now the line
    names the transformation whose argnums hold it and says to leave it out of them, then
    compile's static_argnums; a dict argument is closed over, static_argnums taking none."""
    x = np.array([0.5, 1.5, 2.0])
    by_if = lambda v, n: gc.sum(v ** 2) * (3.0 if n > 2 else 1.0)
    by_dict = lambda cfg, v: gc.sum(v ** 2) * float(cfg["k"])
    for make, who, name, then in [
            (lambda: gc.compile(gc.grad(by_if, argnums=(0, 1)))(x, 3.0), "grad", "n",
             " and list 'n' in gc.compile's static_argnames"),
            (lambda: gc.compile(gc.value_and_grad(by_if, argnums=1))(x, 3.0), "value_and_grad",
             "n", " and list 'n' in gc.compile's static_argnames"),
            (lambda: gc.compile(gc.hessian(by_if, argnums=(0, 1)))(x, 3.0), "hessian", "n",
             " and list 'n' in gc.compile's static_argnames"),
            (lambda: gc.compile(gc.grad(by_dict, argnums=(0, 1)))({"k": 3.0}, x), "grad", "cfg",
             ", then close over it")]:
        with pytest.raises(gc.GraphcError) as info:
            make()
        line, where = str(info.value).splitlines()
        assert line.endswith(
            f"; '{name}' is differentiated (in {who}'s argnums), so traced: to use it as a "
            f"Python value, leave '{name}' out of {who}'s argnums{then}"), line
        assert "test_review_s38_jax_port.py" in where
    # followed: grad's argnums without n, compile's static_argnums with it
    np.testing.assert_allclose(gc.compile(gc.grad(by_if), static_argnums=1)(x, 3.0), 6.0 * x)
    np.testing.assert_allclose(gc.compile(gc.grad(by_if), static_argnums=1)(x, 1.0), 2.0 * x)
    np.testing.assert_allclose(gc.compile(gc.grad(lambda v: by_dict({"k": 3.0}, v)))(x),
                               6.0 * x)
    # a number closed over under the name of a differentiated one is not blamed on it
    with pytest.raises(gc.GraphcError, match="; the value passed as 'n' is traced: to use a "
                       "Python number or bool as a Python value, list its position in "
                       "static_argnums\n"):
        gc.compile(lambda v, n: gc.grad(lambda v, m: by_if(v, n) * m, argnums=(0, 1))(v, n))(
            x, 3.0)


def test_a_differentiated_number_under_vmap_says_to_leave_it_out_of_argnums():
    """f5 item 7: gc.vmap(gc.grad(f, argnums=(0, 1)), in_axes=(0, None))(xs, 3.0), f using
    n as a Python value, said only "int() of a symbolic value" (vmap passes the unmapped
    number on as it is, which grad made a variable of a constant: no argument to name). Now
    the advice grad gives outside vmap; followed, it works (per-example gradients)."""
    xs = np.array([[0.5, 1.5, 2.0], [1.0, -1.0, 3.0]])
    by_int = lambda v, n: gc.sum(v ** int(n))
    by_if = lambda v, n: gc.sum(v ** 2) * (3.0 if n > 2 else 1.0)
    by_dict = lambda v, cfg: gc.sum(v ** 2) * float(cfg["k"])
    for f, reason, n, name, whole in [
            (by_int, "int() of a symbolic value: its value is only known when the compiled "
             "graph runs", 3.0, "n", "n"),
            (by_if, "a symbolic value has no truth value while the graph is being built; use "
             "graphc.where(cond, a, b) instead of `if`, or compute the condition in Python",
             3.0, "n", "n"),
            (by_dict, "float() of a symbolic value: its value is only known when the compiled "
             "graph runs", {"k": 3.0}, "cfg.k", "cfg")]:
        outside = None
        for run in (lambda: gc.grad(f, argnums=(0, 1))(xs[0], n),
                    lambda: gc.vmap(gc.grad(f, argnums=(0, 1)), in_axes=(0, None))(xs, n)):
            with pytest.raises(gc.GraphcError) as info:
                run()
            line, where = str(info.value).splitlines()
            assert line == (f"{reason}; '{name}' is differentiated (in argnums), so traced: "
                            f"grad takes no static_argnums; to use it as a Python value, leave "
                            f"'{whole}' out of argnums: a number not differentiated is passed "
                            "as it is")
            assert "test_review_s38_jax_port.py" in where
            assert outside in (None, line)  # the same line under vmap as outside it
            outside = line
        # followed: n passed as it is, the per-example gradient of each row
        np.testing.assert_allclose(gc.vmap(gc.grad(f), in_axes=(0, None))(xs, n),
                                   (3.0 * xs ** 2) if f is by_int else 6.0 * xs, rtol=1e-12)
    # an array used as a Python value is not told to leave argnums (it is traced anyway)
    with pytest.raises(gc.GraphcError) as info:
        gc.vmap(gc.grad(lambda v, n: gc.sum(v[:int(gc.sum(v))]) * n, argnums=(0, 1)),
                in_axes=(0, None))(xs, 3.0)
    assert str(info.value).splitlines()[0] == (
        "int() of a symbolic value: its value is only known when the compiled graph runs")


def test_a_number_two_transformations_differentiate_and_compiles_own_argument_are_named():
    """Review r5 of 7ac43a8: in compile(jacrev(jacfwd(g, argnums=(0, 1)), argnums=(0, 1))),
    jacrev's line overwrote jacfwd's, and following it (n out of jacrev's argnums only) gave
    a line with no advice; eagerly it said "leave 'n' out of argnums", not whose. And in
    compile(lambda v, m: grad(g, argnums=(0, 1))(v, m * 2)) it said "list its position in
    static_argnums": n's position in g, not m's in the compiled function. Now each
    transformation holding n is named, and compile's own argument (static_argnames takes its
    name; one with no name, of *args, is its position); each followed computes the values."""
    x = np.array([0.5, 1.5, 2.0])
    g = lambda v, n: gc.sum(v ** 2) * (3.0 if n > 2 else 1.0)
    reason = ("a symbolic value has no truth value while the graph is being built; use "
              "graphc.where(cond, a, b) instead of `if`, or compute the condition in Python; ")
    for make, says in [
            (lambda: gc.compile(gc.jacrev(gc.jacfwd(g, argnums=(0, 1)), argnums=(0, 1)))(x, 3.0),
             "'n' is differentiated (in jacfwd's and jacrev's argnums), so traced: to use it as "
             "a Python value, leave 'n' out of jacfwd's and jacrev's argnums and list 'n' in "
             "gc.compile's static_argnames"),
            (lambda: gc.compile(gc.jacrev(gc.jacfwd(g, argnums=(0, 1))))(x, 3.0),
             "'n' is differentiated (in jacfwd's argnums), so traced: to use it as a Python "
             "value, leave 'n' out of jacfwd's argnums and list 'n' in gc.compile's "
             "static_argnames"),
            (lambda: gc.jacrev(gc.jacfwd(g, argnums=(0, 1)), argnums=(0, 1))(x, 3.0),
             "'n' is differentiated (in jacfwd's and jacrev's argnums), so traced: jacrev takes "
             "no static_argnums; to use it as a Python value, leave 'n' out of jacfwd's and "
             "jacrev's argnums: a number not differentiated is passed as it is"),
            (lambda: gc.grad(lambda v, n: gc.sum(gc.grad(g, argnums=(0, 1))(v, n)[0]),
                             argnums=(0, 1))(x, 3.0),
             "'n' is differentiated (in each grad's argnums), so traced: grad takes no "
             "static_argnums; to use it as a Python value, leave 'n' out of each grad's "
             "argnums: a number not differentiated is passed as it is"),
            (lambda: gc.compile(lambda v, m: gc.grad(g, argnums=(0, 1))(v, m * 2))(x, 3.0),
             "'n' is differentiated (in grad's argnums), so traced: to use it as a Python value, "
             "leave 'n' out of grad's argnums and list 'm' in gc.compile's static_argnames"),
            (lambda: gc.compile(lambda *a: gc.grad(g, argnums=(0, 1))(*a))(x, 3.0),
             "'n' is differentiated (in grad's argnums), so traced: to use it as a Python value, "
             "leave 'n' out of grad's argnums and list 1 in gc.compile's static_argnums")]:
        with pytest.raises(gc.GraphcError) as info:
            make()
        line, where = str(info.value).splitlines()
        assert line == reason + says
        assert "test_review_s38_jax_port.py" in where
    # followed: 6 I (d/dv of 2 v * 3), and 2 v * 3 (n = 3 > 2, or m * 2 = 6 > 2)
    for hessian in (gc.compile(gc.jacrev(gc.jacfwd(g)), static_argnames="n")(x, 3.0),
                    gc.jacrev(gc.jacfwd(g))(x, 3.0)):
        np.testing.assert_allclose(hessian, 6.0 * np.eye(3))
    np.testing.assert_allclose(gc.grad(lambda v, n: gc.sum(gc.grad(g)(v, n)))(x, 3.0),
                               [6.0, 6.0, 6.0])
    by_m = gc.compile(lambda v, m: gc.grad(g)(v, m * 2), static_argnames="m")
    np.testing.assert_allclose(by_m(x, 3.0), 6.0 * x)
    np.testing.assert_allclose(by_m(x, 1.0), 2.0 * x)  # (n = 2: not > 2)
    np.testing.assert_allclose(gc.compile(lambda *a: gc.grad(g)(*a), static_argnums=1)(x, 3.0),
                               6.0 * x)


def test_stop_gradient_takes_a_pytree_leaf_by_leaf():
    """gc.stop_gradient refused a pytree (`gc.stop_gradient(p)["w"]` with p a dict); now it
    stops each leaf, None staying None and containers keeping their kinds, as
    jax.lax.stop_gradient, traced and eager."""
    p = {"w": np.array([1.0, 2.0]), "b": np.array(0.5), "unused": None}
    grad = gc.grad(lambda p: gc.sum(gc.stop_gradient(p)["w"] * p["w"]) + p["b"])(p)
    np.testing.assert_array_equal(grad["w"], [1.0, 2.0])  # d(c * w)/dw with c = w stopped
    assert float(grad["b"]) == 1.0 and grad["unused"] is None
    w = gc.tensor(np.array([3.0, 4.0]), requires_grad=True)
    stopped = gc.stop_gradient(OrderedDict([("w", w), ("n", None), ("t", (w, [w]))]))
    assert type(stopped) is OrderedDict and stopped["n"] is None
    assert type(stopped["t"]) is tuple and type(stopped["t"][1]) is list
    gc.sum(stopped["w"] * w + stopped["t"][1][0]).backward()
    np.testing.assert_array_equal(np.asarray(w.grad), [3.0, 4.0])


def test_full_takes_a_traced_fill_and_its_gradient_flows():
    """gc.full((3,), x[0]) with a traced fill failed ("float() of a symbolic value"). Now a
    tensor fill (traced or eager) is broadcast, keeping its dtype unless dtype= is given, and
    its gradient flows, as jnp.full: grad of sum(full((3,), x[0])) is [3, 0]."""
    x = np.array([1.0, 2.0])
    weights = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(gc.grad(lambda v: gc.sum(gc.full((3,), v[0])))(x), [3.0, 0.0])
    filled = gc.compile(lambda v: (gc.full((2, 3), v[1]), gc.full((2,), v[1], "int32")))(x)
    np.testing.assert_array_equal(filled[0], np.full((2, 3), 2.0))
    assert filled[0].dtype == np.float64 and filled[1].dtype == np.int32
    t = gc.tensor(np.array([4.0, 5.0], np.float32), requires_grad=True)
    gc.sum(gc.full((3,), t[1]) * weights).backward()
    np.testing.assert_array_equal(np.asarray(t.grad), [0.0, 3.0])
    assert gc.full((2,), 7).dtype == np.float32  # a number still fills float32 by default


def test_jax_options_is_leaf_static_argnames_and_split_into_a_shape():
    """JAX users' options were missing: tree_map / tree_leaves / tree_flatten took no
    is_leaf=, gc.compile no static_argnames=, and gc.random.split no shape tuple
    (jax.random.split(key, (2, 3)) gives keys of shape (2, 3, 2)). Now each works as JAX's."""
    is_pair = lambda t: isinstance(t, tuple)
    tree = {"b": (1, 2), "a": [3, None]}
    assert gc.tree_leaves(tree, is_leaf=is_pair) == [3, (1, 2)]
    assert gc.tree_leaves(tree, is_leaf=lambda t: t is None) == [3, None, 1, 2]
    leaves, treedef = gc.tree_flatten(tree, is_leaf=is_pair)
    assert gc.tree_unflatten(treedef, leaves) == tree
    mapped = gc.tree_map(lambda p, q: (p, q), {"b": (1, 2), "a": 3}, {"a": [7], "b": [8, 9]},
                         is_leaf=is_pair)
    assert mapped == {"a": (3, [7]), "b": ((1, 2), [8, 9])}

    f = gc.compile(lambda x, n, mode="sum": gc.sum(x[:n]) * (2.0 if mode == "double" else 1.0),
                   static_argnames=("n", "mode"))
    x = np.arange(5.0)
    assert float(f(x, 2)) == 1.0 and float(f(x, n=3, mode="double")) == 6.0
    with pytest.raises(gc.GraphcError, match="'y' is not a parameter"):
        gc.compile(lambda x: x, static_argnames="y")

    key = gc.random.PRNGKey(0)
    keys = np.asarray(gc.random.split(key, (2, 3)))
    assert keys.shape == (2, 3, 2)
    np.testing.assert_array_equal(keys.reshape(6, 2), np.asarray(gc.random.split(key, 6)))


def test_full_with_a_traced_python_number_fills_as_the_number():
    """gc.full with a traced Python-number fill took the tensor path and kept the traced
    int64 (or float64): grad(lambda x, k: sum(x * full((2,), k)))(ones, 2) failed "mul(f32[2],
    i64[2]): operands must have one dtype" (it gave [2, 2] before full took tensor fills), and
    compile(lambda k: full((2,), k))(3) was int64 where eager full((2,), 3) is float32. Now a
    traced Python number fills as the number does: float32 unless dtype= says otherwise."""
    ones = np.ones(2, np.float32)
    grad = gc.grad(lambda x, k: gc.sum(x * gc.full((2,), k)))(ones, 2)
    np.testing.assert_array_equal(grad, [2.0, 2.0])
    assert grad.dtype == np.float32
    filled = gc.compile(lambda k: gc.full((2,), k))
    for k in (3, 3.5):
        out = filled(k)
        assert out.dtype == gc.full((2,), k).dtype == np.float32
        np.testing.assert_array_equal(out, [k, k])
    as_int = gc.compile(lambda k: gc.full((2,), k + 1, dtype="int32"))(3)
    assert as_int.dtype == np.int32 and as_int.tolist() == [4, 4]


def test_full_takes_other_libraries_scalars_as_numbers_and_gives_a_writable_result():
    """gc.full((2,), torch.tensor(2.0)) filled [2, 2] float32 before full took tensor fills;
    then it was refused by broadcast_to ("another library's array"), and an eager tensor fill
    gave broadcast_to's read-only view. Now only graphc's own values take the tensor path
    (other scalars are numbers, as before) and an eager fill is a writable array of its own."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    from_torch = gc.full((2,), torch.tensor(2.0))
    assert np.asarray(from_torch).tolist() == [2.0, 2.0]
    assert np.asarray(from_torch).dtype == np.float32
    filled = gc.full((3,), gc.tensor(np.float32(4.0)))
    data = np.asarray(filled)
    assert data.flags.writeable
    data[0] = 1.0
    assert data.tolist() == [1.0, 4.0, 4.0]


def test_a_refused_value_names_every_number_it_is_computed_from():
    """Where a value refused as a Python value (`if k * s0 > 1`) was computed from a Python
    number and a 0-d array, gc.compile's message told to list the number in static_argnums,
    which does not help (the array stays traced), and gc.grad retried with the number passed
    as it is, running fn twice to fail the same way; of two Python numbers (`if k + j > 1`)
    only one was named. Now the hint (and grad's retry) comes only where every 0-d input the
    value is computed from is a Python number, and it names all of them."""
    x = np.ones(3)
    calls = []

    def scaled(v, k, s0):
        calls.append(k)
        return gc.sum(v) * (2.0 if k * s0 > 1 else 1.0)

    with pytest.raises(gc.GraphcError, match="no truth value") as info:
        gc.compile(scaled)(x, 2, np.array(1.0))
    assert "static_argnums" not in str(info.value)
    calls.clear()
    with pytest.raises(gc.GraphcError, match="no truth value"):
        gc.grad(scaled)(x, 2, np.array(1.0))
    assert len(calls) == 1  # not retried

    summed = lambda v, k, j: gc.sum(v) * (2.0 if k + j > 1 else 1.0)
    with pytest.raises(gc.GraphcError, match="the values passed as 'k' and 'j' are traced: "
                                             ".* list their positions in static_argnums"):
        gc.compile(summed)(x, 1, 1)
    np.testing.assert_array_equal(gc.grad(summed)(x, 1, 1), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(gc.grad(summed)(x, 1, 0), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gc.compile(summed, static_argnums=(1, 2))(x, 1, 1), 6.0)


def test_compile_reads_static_argnames_from_a_modules_forward():
    """gc.compile(module, static_argnames="n") was refused ("'n' is not a parameter of fn
    taken by position") where static_argnums=1 worked: the names were read from the
    Module's __call__(*args), and so were keyword arguments to the compiled module ("n is
    keyword-only"). Now both are read from its forward, and a name forward lacks is refused
    naming the class's forward."""

    class Head(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = gc.nn.Parameter(np.array([2.0], np.float32))

        def forward(self, x, n):
            return x[:n] * self.scale

    head = Head()
    x = np.arange(4.0, dtype=np.float32)
    by_name = gc.compile(head, static_argnames="n")
    np.testing.assert_array_equal(by_name(x, 3), [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(by_name(x, n=2), [0.0, 2.0])
    np.testing.assert_array_equal(gc.compile(head, static_argnums=1)(x, 3), by_name(x, 3))
    with pytest.raises(gc.GraphcError, match="'m' is not a parameter of Head.forward taken"):
        gc.compile(head, static_argnames="m")


def test_random_split_takes_any_shape_as_jax():
    """gc.random.split refused the shapes JAX's split takes: () (one key, shape (2,)), a list
    ([2, 3]) and sizes of 0 (0, (0,), (2, 0): empty key arrays). Now each gives JAX's
    shape, the keys being the first of split(key, n); a negative size is still one line."""
    key = gc.random.PRNGKey(0)
    six = np.asarray(gc.random.split(key, 6))
    one = np.asarray(gc.random.split(key, ()))
    assert one.shape == (2,)
    np.testing.assert_array_equal(one, np.asarray(gc.random.split(key, 1))[0])
    np.testing.assert_array_equal(np.asarray(gc.random.split(key, [2, 3])), six.reshape(2, 3, 2))
    for num, shape in [(0, (0, 2)), ((0,), (0, 2)), ((2, 0), (2, 0, 2))]:
        assert np.asarray(gc.random.split(key, num)).shape == shape
    assert gc.compile(lambda k: gc.random.split(k, ()))(key).shape == (2,)
    for num in (-1, (2, -1), 1.5):
        with pytest.raises(gc.GraphcError, match="num must be a non-negative integer"):
            gc.random.split(key, num)


def test_stop_gradient_maps_the_single_value_op_over_a_pytree_with_graphcs_tree_map():
    """gc.stop_gradient took pytrees through a walk of its own in ir/ops/api.py (ir cannot
    import graphc's tree utilities), a second copy of graphc.tracing's containers rules,
    and made ir's op, used inside the library on single values, take containers too. Now
    ir's stop_gradient takes one value, as the op does, and the public gc.stop_gradient maps
    it over a pytree with graphc's tree_map, traced and eager, as before."""
    from collections import namedtuple
    from ir.ops import api
    with pytest.raises(gc.GraphcError, match="cannot use a dict as a tensor operand"):
        api.stop_gradient({"a": np.ones(1)})
    Pair = namedtuple("Pair", "w b")
    x = np.array([1.0, 2.0])
    grad = gc.grad(lambda v: gc.sum(gc.stop_gradient(Pair(v, [v, None])).b[0] * v))(x)
    np.testing.assert_array_equal(grad, x)
    w = gc.tensor(np.array([3.0, 4.0]), requires_grad=True)
    stopped = gc.stop_gradient(Pair(w, None))
    assert type(stopped) is Pair and stopped.b is None and not stopped.w.requires_grad
    gc.sum(stopped.w * w).backward()
    np.testing.assert_array_equal(np.asarray(w.grad), [3.0, 4.0])
    assert gc.stop_gradient(None) is None


class _Doubling(gc.nn.Module):
    def forward(self, x, n=1):
        for _ in range(n):
            x = x * 2.0
        return x


def test_a_compiled_modules_traced_argument_is_named_from_its_forward():
    """gc.compile(Head())(x, n=2), with n used as a Python int, hinted to list 'arg1' in
    static_argnums: the names were read from Module.__call__(*args, **kwargs). They are
    now read from forward, so the hint names n, by keyword or by position."""
    x = np.ones(2, np.float32)
    for call in (lambda m: m(x, n=2), lambda m: m(x, 2)):
        with pytest.raises(gc.GraphcError, match="the value passed as 'n' is traced"):
            call(gc.compile(_Doubling()))
    np.testing.assert_array_equal(gc.compile(_Doubling(), static_argnames="n")(x, n=2),
                                  [4.0, 4.0])


def test_a_compiled_module_called_with_wrong_arguments_is_one_line_naming_its_forward():
    """A compiled Module called with too many arguments raised a raw TypeError from inside
    the trace ("Head.forward() takes from 2 to 3 positional arguments but 4 were given"),
    and static_argnums out of range said "fn was called with": the checks read
    Module.__call__'s signature. Now both are one GraphcError line naming
    _Doubling.forward, as for a plain function."""
    x = np.ones(2, np.float32)
    with pytest.raises(gc.GraphcError, match=r"^compiled _Doubling.forward: too many "
                                             r"positional arguments\n"):
        gc.compile(_Doubling())(x, 2, 3)
    with pytest.raises(gc.GraphcError, match="static_argnums has 5 but _Doubling.forward "
                                             "was called with 2 arguments"):
        gc.compile(_Doubling(), static_argnums=5)(x, 2)


def test_random_split_takes_a_traced_count_as_a_traced_number():
    """gc.random.split(k, n) with n a Python int argument of a function under gc.grad was
    refused as "num must be a non-negative integer ..., got <%2:i64[] = input>" (a node's
    repr), and grad did not retry it with n as a Python value. The sizes are now taken with
    operator.index, so a traced one raises TracedNumberError: grad retries (the result is
    the one with n static) and compile's hint names n."""
    key = gc.random.key(0)
    w = np.ones(2, np.float32)

    def loss(w, k, n):
        return gc.sum(w * gc.random.normal(gc.random.split(k, n)[-1], (2,)))

    expected = np.asarray(gc.random.normal(gc.random.split(key, 3)[-1], (2,)))
    np.testing.assert_allclose(gc.grad(loss)(w, key, 3), expected)
    with pytest.raises(gc.GraphcError, match="the value passed as 'n' is traced"):
        gc.compile(loss)(w, key, 3)
    np.testing.assert_allclose(gc.compile(loss, static_argnums=2)(w, key, 3), expected.sum(),
                               rtol=1e-6)
    assert np.asarray(gc.random.split(key, np.array(3))).shape == (3, 2)
    for num in (True, [1.5, 2]):
        with pytest.raises(gc.GraphcError, match="num must be a non-negative integer"):
            gc.random.split(key, num)


def test_full_keeps_an_array_fills_dtype_eager_compiled_and_under_vmap():
    """gc.full with a numpy 0-d array fill gave float32 eagerly (taken as a number) but kept
    the array's dtype compiled; np.bool_ under vmap was traced as a bool array and filled
    bool; a numpy row fill was refused. Now, as numpy's and jnp's full, an array fill keeps
    its dtype unless dtype= is given (a row broadcasts), and a Python or numpy scalar fills
    float32, the same eager, compiled and under vmap."""
    ones = np.ones((2, 2), np.float32)
    for fill, dtype in [(np.array(3), np.int64), (np.array(2.5, np.float16), np.float16),
                        (np.bool_(True), np.float32), (np.float16(2.5), np.float32)]:
        expected = np.full((2,), float(fill), dtype)
        for result in (gc.full((2,), fill), gc.compile(lambda k: gc.full((2,), k))(fill),
                       gc.vmap(lambda x, k: gc.full((2,), k), in_axes=(0, None))(ones, fill)[0]):
            assert np.asarray(result).dtype == dtype
            np.testing.assert_array_equal(result, expected)
    assert np.asarray(gc.full((2,), np.array(3), dtype="float32")).dtype == np.float32
    row = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gc.full((2, 3), row), np.full((2, 3), row))
    assert np.asarray(gc.full((2, 3), row)).dtype == np.float64
    np.testing.assert_array_equal(gc.full((2, 3), row, dtype="int32"), [[1, 2, 3]] * 2)


def test_a_compiled_functions_float_arguments_are_named_in_the_traced_number_hint():
    """With an array argument, gc.compile turns a Python float into a 0-d array of the
    arrays' dtype before tracing (_weak_floats), and the static_argnums hint then named no
    argument: g(x, 2.0, 3) with math.sqrt(k * j) said only "float() of a symbolic value".
    The floats it converted are Python numbers still for the hint, which names k and j; a
    0-d array passed as it is gets no hint (static_argnums would not help it)."""
    import math

    def g(x, k, j):
        return gc.sum(x) * math.sqrt(k * j)

    x = np.ones(2, np.float32)
    for k in (2.0, np.float32(2.0)):
        with pytest.raises(gc.GraphcError, match="the values passed as 'k' and 'j' are traced"):
            gc.compile(g)(x, k, 3)
    with pytest.raises(gc.GraphcError) as refused:
        gc.compile(g)(x, np.array(2.0, np.float32), 3)
    assert "static_argnums" not in str(refused.value)
    np.testing.assert_allclose(gc.compile(g, static_argnums=(1, 2))(x, 2.0, 3),
                               2 * math.sqrt(6.0), rtol=1e-6)


def test_no_argnums_advice_where_an_array_is_behind_the_python_value_too():
    """'leave n out of argnums' was given where the value also depends on an array (float(
    gc.sum(w) + n)), eagerly and under vmap: followed, it failed all the same. The bare line
    stays there; a number alone behind the value keeps the advice (the test above)."""
    xs = np.arange(6, dtype=np.float32).reshape(2, 3)

    def g(w, n):
        return gc.sum(w) if float(gc.sum(w) + n) > 2 else gc.sum(w) * 2

    def h(a, n):
        return a * n if float(a * n) > 1 else a
    for call in (lambda: gc.grad(g, argnums=(0, 1))(xs[1], 3.0),
                 lambda: gc.vmap(gc.grad(g, argnums=(0, 1)), in_axes=(0, None))(xs, 3.0),
                 lambda: gc.grad(h, argnums=(0, 1))(np.array(2.0), 3.0)):
        with pytest.raises(gc.GraphcError) as info:
            call()
        line = str(info.value).splitlines()[0]
        assert line.startswith("float() of a symbolic value") and "argnums" not in line
