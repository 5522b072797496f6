"""Eager conveniences found missing when the seeds' demos were tried: einsum in every form
numpy accepts (finite-difference gradient checks), unpacking tensors, eager higher-order
gradients, in-place updates under no_grad, names and value reprs, graphc.draw."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

EINSUM_CASES = [
    # the cases: scalar outputs, explicit and implicit
    ("ij,ij->", [(2, 3), (2, 3)]), ("ij,jk->", [(2, 3), (3, 4)]), ("ij,ij", [(2, 3), (2, 3)]),
    ("i,i", [(3,), (3,)]), ("ii", [(3, 3)]), ("ii->", [(3, 3)]), ("iij->", [(2, 2, 3)]),
    # implicit output: sorted letters used once
    ("ij,jk", [(2, 3), (3, 4)]), ("ba", [(2, 3)]), ("i,j", [(2,), (3,)]),
    ("ij,jk,kl", [(2, 3), (3, 4), (4, 2)]),
    # '...' anywhere, broadcasting, implicit and explicit
    ("...ii->...i", [(2, 3, 3)]), ("i...j,j...->...", [(2, 4, 3), (3, 4)]),
    ("...", [(2, 3)]), ("a...b", [(2, 3, 4)]), ("...,...", [(2, 1), (3,)]),
    ("...i,i...->...", [(2, 3), (3, 2)]), ("...ij,...jk", [(5, 2, 3), (1, 3, 4)]),
    # three operands, diagonals shared between operands, spaces, upper case
    ("i,i,i->", [(3,), (3,), (3,)]), ("ii,ii->i", [(3, 3), (3, 3)]),
    (" ij , jk -> ik ", [(2, 3), (3, 4)]), ("aB,Bc->ca", [(2, 3), (3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), (",i->i", [(), (3,)]),
]


def _numeric_grad(f, xs, i, eps=1e-6):
    grad = np.zeros_like(xs[i])
    for k in range(xs[i].size):
        plus, minus = [x.copy() for x in xs], [x.copy() for x in xs]
        plus[i].flat[k] += eps
        minus[i].flat[k] -= eps
        grad.flat[k] = (f(*plus) - f(*minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES, ids=[s for s, _ in EINSUM_CASES])
def test_einsum_values_and_gradients_in_every_numpy_form(spec, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=s) for s in shapes]
    expected = np.einsum(spec, *xs)
    w = rng.normal(size=expected.shape)

    def loss(*a):
        return np.sum(np.einsum(spec, *a) * w)

    tensors = [gc.tensor(x, requires_grad=True) for x in xs]
    out = gc.einsum(spec, *tensors)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    if out.ndim == 0:
        (out * float(w)).backward()  # backward straight from the scalar output
    else:
        gc.sum(out * w).backward()
    argnums = tuple(range(len(xs)))
    compiled = gc.grad(lambda *a: gc.sum(gc.einsum(spec, *a) * w), argnums=argnums)(*xs)
    for i, (t, g) in enumerate(zip(tensors, compiled)):
        numeric = _numeric_grad(loss, xs, i)
        np.testing.assert_allclose(t.grad, numeric, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_einsum_sublist_form_and_its_errors():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(3, 4))
    for args in [(a, [0, 1], b, [1, 2], [0, 2]), (a, [0, 1], b, [1, 2]),
                 (a, [Ellipsis, 1], [Ellipsis]), (a, [0, 1], a, [0, 1], [])]:
        np.testing.assert_allclose(gc.einsum(*args).data, np.einsum(*args), rtol=1e-12)
    g = gc.grad(lambda x: gc.einsum(x, [0, 1], b, [1, 2], []))(a)
    np.testing.assert_allclose(g, np.broadcast_to(b.sum(1), (2, 3)), rtol=1e-12)
    with pytest.raises(GraphcError, match="subscript 'x'"):
        gc.einsum(a, ["x", 1])


def test_unpacking_eager_and_traced_tensors():
    t = gc.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    assert len(t) == 3
    q, k, v = t
    np.testing.assert_array_equal(k.data, [4.0, 5.0, 6.0, 7.0])
    gc.sum(q * 1.0 + v * 3.0).backward()
    np.testing.assert_array_equal(t.grad, [[1.0] * 4, [0.0] * 4, [3.0] * 4])

    def first_minus_last(x):
        rows = list(x)
        return rows[0] - rows[-1]

    x = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(gc.compile(first_minus_last)(x), x[0] - x[2])
    with pytest.raises(GraphcError, match="len\\(\\) of a 0-d"):
        iter(gc.tensor(1.0)).__next__()
    with pytest.raises(GraphcError, match="len\\(\\) of a 0-d"):
        gc.compile(lambda s: list(s))(np.float32(1.0))


def _newton_function(x):
    return x ** 4 - 2.0 * x ** 2


def test_eager_newton_with_create_graph_matches_grad_of_grad():
    x = gc.tensor(2.0, requires_grad=True)
    eager_path = []
    for _ in range(10):
        y = _newton_function(x)
        x.grad = None
        y.backward(create_graph=True)
        gx = x.grad  # a tensor with a tape: dy/dx as a function of x
        assert isinstance(gx, gc.Tensor) and gx.requires_grad
        x.grad = None
        gx.backward()
        with gc.no_grad():
            x -= gx / x.grad
        assert x.requires_grad and x._ctx is None  # still the same leaf
        eager_path.append(float(x.data))
    d1, d2 = gc.grad(_newton_function), gc.grad(gc.grad(_newton_function))
    value, symbolic_path = np.float64(2.0), []
    for _ in range(10):
        value = value - d1(value) / d2(value)
        symbolic_path.append(float(value))
    np.testing.assert_allclose(eager_path, symbolic_path, rtol=1e-12)
    assert abs(eager_path[-1] - 1.0) < 1e-12  # the minimum at x = 1
    first_exact = next(i for i, v in enumerate(eager_path) if abs(v - 1.0) < 1e-12)
    assert first_exact == next(i for i, v in enumerate(symbolic_path) if abs(v - 1.0) < 1e-12)


def test_create_graph_gradients_accumulate_and_differentiate_through_ops():
    x = gc.tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = gc.sum(gc.tanh(x) * x)
    y.backward(create_graph=True)
    gx = x.grad
    x.grad = None
    gc.sum(gx * gx).backward()  # d/dx |dy/dx|^2
    t = np.tanh(x.data)
    first = t + x.data * (1 - t * t)
    second = 2 * (1 - t * t) - 2 * x.data * t * (1 - t * t)
    np.testing.assert_allclose(gx.data, first, rtol=1e-12)
    np.testing.assert_allclose(x.grad, 2 * first * second, rtol=1e-12)


def test_in_place_updates_keep_leaves_and_refuse_tracked_leaves():
    w = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    gc.sum(w * w).backward()
    with gc.no_grad():
        w -= 0.1 * w.grad
        w *= 2.0
    np.testing.assert_allclose(w.data, [1.6, 3.2])
    assert w.requires_grad and w._ctx is None and isinstance(w, gc.Tensor)
    w.grad = None
    gc.sum(w * w).backward()  # still trainable
    np.testing.assert_allclose(w.grad, [3.2, 6.4])
    with pytest.raises(GraphcError, match="changed in place"):
        w += 1.0
    h = w * 2.0  # a tracked intermediate: out of place, as the tape needs
    h2 = h
    h += 1.0
    assert h is not h2 and h.requires_grad
    with gc.no_grad(), pytest.raises(GraphcError, match="does not fit"):
        w += np.ones((3, 2))
    p = gc.nn.Linear(2, 2).weight
    with gc.no_grad():
        p -= 1.0
    assert isinstance(p, gc.Parameter) and p.requires_grad


def test_item_assignment_is_one_line_naming_what_builds_the_value():
    """t[0] = 1.0 was Python's TypeError naming the class ("'Node' object does not support
    item assignment" in a compiled function); now one line, eager and traced, naming the
    functions that build the new value, and the tensor is unchanged."""
    from errorcheck import assert_one_line_error
    t = gc.tensor(np.array([1.0, 2.0]))

    def assign(x):
        x[0] = 5.0
        return x
    for call in (lambda: assign(t), lambda: gc.compile(assign)(np.ones(2)),
                 lambda: gc.grad(lambda x: gc.sum(assign(x)))(np.ones(2))):
        assert_one_line_error(call, "item assignment x[...] = v is not supported: build the "
                              "new value with gc.where(mask, v, x)", "test_eager_extras.py")
    np.testing.assert_array_equal(t.data, [1.0, 2.0])


def test_tensor_names_and_reprs_show_values():
    t = gc.tensor([1.0, -2.5], requires_grad=True, name="w")
    assert t.name == "w"
    assert repr(t) == "Tensor([ 1. , -2.5], dtype=f64, requires_grad=True, name='w')"
    assert repr(gc.tensor(np.float32(3.0))) == "Tensor(3.)"
    assert repr(gc.tensor(np.arange(4).reshape(2, 2))) == \
        "Tensor([[0, 1],\n        [2, 3]], dtype=i64)"
    big = repr(gc.tensor(np.zeros(1000, np.float32)))
    assert "..." in big and len(big) < 200


def test_draw_shows_values_and_gradients_of_a_small_eager_graph():
    a = gc.tensor(2.0, requires_grad=True, name="a")
    b = gc.tensor([1.0, -3.0], requires_grad=True, name="b")
    loss = gc.sum(gc.tanh(a * b))
    loss.name = "loss"
    dot = gc.draw(loss)
    text = dot.to_string()
    labels = [n.get_label() for n in dot.get_nodes() if n.get_label()]
    assert '"{a | data 2 | grad 0.07058}"' in labels  # d loss/da = sum(b * (1 - tanh^2))
    assert any(lbl.startswith('"{loss | data -0.03596 | grad 1}') for lbl in labels)
    assert sorted(lbl for lbl in labels if not lbl.startswith('"{')) == \
        ['"mul"', '"sum"', '"tanh"']
    assert len(dot.get_edges()) == 7 and "rankdir=LR" in text
    assert a.grad is None and b.grad is None  # drawing computes, but does not store, grads
    svg = dot.create_svg()
    assert b"<svg" in svg


def test_draw_functions_and_graphs_and_errors():
    dot = gc.draw(lambda x, w: gc.relu(x @ w), gc.spec((4, 3)), gc.spec((3, 2)))
    assert {"matmul", "relu"} <= {(n.get_label() or "").strip('"') for n in dot.get_nodes()}
    grad_dot = gc.draw(lambda x: gc.sum(gc.tanh(x)), gc.spec(3), grad=True)
    assert grad_dot.get_name() == "grad_lambda"
    graph = gc.trace(lambda x: x * 2.0, gc.spec(3))
    assert gc.draw(graph).to_string() == gc.draw(lambda x: x * 2.0, gc.spec(3)).to_string()
    with pytest.raises(GraphcError, match="needs the specs"):
        gc.draw(lambda x: x)
    with pytest.raises(GraphcError, match="cannot draw an int"):
        gc.draw(3)
