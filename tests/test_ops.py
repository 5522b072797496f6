"""Every op: the interpreter, eager mode and the compiled plan agree with numpy; gradients
agree with central finite differences in float64 and with eager backward()."""
import numpy as np
import pytest

import graphc as gc
from runtime.interpreter import run

from opcases import CASES

IDS = [c.name for c in CASES]


def make_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    return [mk(rng) for mk in case.inputs]


def float_positions(case):
    return [i for i in range(len(case.inputs)) if i not in case.ints]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_interpreter_matches_numpy(case):
    xs = make_inputs(case)
    graph = gc.trace(case.fn, *xs)
    (out,) = run(graph, *xs)
    expected = case.reference(*xs)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eager_matches_numpy(case):
    xs = make_inputs(case)
    out = case.fn(*[gc.tensor(x) for x in xs])
    np.testing.assert_allclose(out.data, case.reference(*xs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compiled_matches_numpy(case):
    xs = make_inputs(case)
    out = gc.compile(case.fn)(*xs)
    np.testing.assert_allclose(out, case.reference(*xs), rtol=1e-10, atol=1e-12)


def _projected_loss(case, xs):
    weights = np.random.default_rng(1).normal(size=np.shape(case.reference(*xs)))

    def loss(*args):
        return gc.sum(case.fn(*args) * weights)
    return loss, weights


def numeric_gradient(f, xs, i, eps=1e-6):
    x = xs[i]
    grad = np.zeros_like(x)
    for k in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[k] += eps
        minus.flat[k] -= eps
        hi = f(*[plus if j == i else v for j, v in enumerate(xs)])
        lo = f(*[minus if j == i else v for j, v in enumerate(xs)])
        grad.flat[k] = (hi - lo) / (2 * eps)
    return grad


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=[c.name for c in CASES
                                                                     if c.grad])
def test_gradient_matches_finite_differences(case):
    xs = make_inputs(case)
    loss, _ = _projected_loss(case, xs)
    positions = float_positions(case)
    grads = gc.grad(loss, argnums=tuple(positions))(*xs)
    forward = gc.compile(loss)
    for i, g in zip(positions, grads):
        numeric = numeric_gradient(lambda *a: float(forward(*a)), xs, i, case.eps)
        assert g.shape == xs[i].shape
        assert rel_error(g, numeric) < case.tol, (case.name, i)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eager_backward_matches_symbolic(case):
    xs = make_inputs(case)
    loss, _ = _projected_loss(case, xs)
    positions = float_positions(case)
    grads = gc.grad(loss, argnums=tuple(positions))(*xs)
    tensors = [gc.tensor(x, requires_grad=i in positions) for i, x in enumerate(xs)]
    loss(*tensors).backward()
    for i, g in zip(positions, grads):
        np.testing.assert_allclose(tensors[i].grad, g, rtol=1e-9, atol=1e-12)


def test_stop_gradient_blocks_the_gradient():
    x = np.array([1.0, 2.0, 3.0])
    g = gc.grad(lambda a: gc.sum(a * gc.stop_gradient(a)))(x)
    np.testing.assert_allclose(g, x)  # d/da (a * const) = const = a


def test_broadcast_gradient_reduces_to_operand_shape():
    a, b = np.ones((2, 3, 4)), np.ones((3, 1))
    ga, gb = gc.grad(lambda a, b: gc.sum(a * b), argnums=(0, 1))(a, b)
    assert ga.shape == (2, 3, 4) and gb.shape == (3, 1)
    np.testing.assert_allclose(gb, np.full((3, 1), 8.0))


def test_dropout_masks_depend_on_seed_and_site():
    x = np.ones((64,), np.float32)
    f = gc.compile(lambda x, s: (gc.dropout(x, 0.5, s), gc.dropout(x, 0.5, s)))
    a1, b1 = f(x, np.int64(1))
    a2, _ = f(x, np.int64(2))
    a1_again, _ = f(x, np.int64(1))
    assert set(np.unique(a1)) <= {0.0, 2.0}
    assert not np.array_equal(a1, b1)  # two sites, two masks
    assert not np.array_equal(a1, a2)  # another seed, another mask
    np.testing.assert_array_equal(a1, a1_again)


def _hvp_case_ids():
    return [c.name for c in CASES if c.grad and c.second]


@pytest.mark.parametrize("case", [c for c in CASES if c.grad and c.second],
                         ids=_hvp_case_ids())
def test_hessian_vector_product_matches_finite_differences(case):
    """Second derivatives: grad of <grad(loss), v> against central differences of the
    (compiled) gradient along v, in float64. The loss's incoming gradient depends on the
    input here, which is what composite gradient rules must get right."""
    xs = make_inputs(case)
    loss, _ = _projected_loss(case, xs)
    positions = tuple(float_positions(case))
    rng = np.random.default_rng(2)
    vs = [rng.normal(size=xs[i].shape) for i in positions]
    grad_fn = gc.grad(lambda *a: loss(*a) ** 2.0 * 0.5 + loss(*a), argnums=positions)

    def directional(*args):
        return sum(gc.sum(g * v) for g, v in zip(grad_fn(*args), vs))
    hvp = gc.grad(directional, argnums=positions)(*xs)

    def shifted(sign):
        moved = list(xs)
        for i, v in zip(positions, vs):
            moved[i] = xs[i] + sign * case.eps * v
        return grad_fn(*moved)
    plus, minus = shifted(1.0), shifted(-1.0)
    numeric = [(p - m) / (2 * case.eps) for p, m in zip(plus, minus)]
    flat = lambda arrays: np.concatenate([np.ravel(a) for a in arrays])
    assert rel_error(flat(hvp), flat(numeric)) < max(case.tol, 1e-6), case.name


def test_every_differentiable_op_has_a_gradient_case():
    """The gradient and Hessian-vector checks above run over CASES: a new op with a gradient
    rule must appear in some differentiable case, so it gets them automatically."""
    from ir.ops.registry import REGISTRY
    covered = set()
    for case in CASES:
        if case.grad:
            graph = gc.trace(case.fn, *make_inputs(case))
            covered |= {n.op for n in graph.nodes}
    # (a rule that only refuses, in one line, is tested where its op is: tests/test_random.py)
    missing = sorted(name for name, op in REGISTRY.items()
                     if op.vjp is not None and not getattr(op.vjp, "refuses", False)
                     and name not in covered)
    assert not missing, f"ops with gradient rules but no differentiable case: {missing}"
