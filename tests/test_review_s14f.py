"""Review (session 14f) of rematerialisation and memory budgets (gc.remat, memory_limit and
plan.memory), shape polymorphism, eager mode against compiled gradients, and `graphc dump`.

Found: (1) eager `backward(create_graph=True)` through an op whose gradient is a composite
primitive with a derived rule (gelu_grad, softmax_grad, layer_norm_grad: the ops a first
backward pass emits) dropped the tape, so third derivatives taken eagerly were refused
(gelu, layer_norm) or silently wrong (softmax, gelu of x*x). (2) `graphc dump --memory-limit N
--stats`: the per-pass table left out the rematerialize pass, so it disagreed with the node
count above it."""
import os
import re

import numpy as np
import torch  # the oracle; the test set-up installs it (as tests/test_optim.py's)
import pytest

import graphc as gc

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")

RNG = np.random.default_rng(1)
X0, W, V = (RNG.normal(size=(3, 4)) for _ in range(3))


def _eager_third(f):
    """d/dx sum(W * d/dx sum(V * (d/dx sum(W * f(x)))^2)), eagerly with create_graph."""
    x = gc.tensor(X0, requires_grad=True)
    gc.sum(f(x) * W).backward(create_graph=True)
    g1, x.grad = x.grad, None
    gc.sum(g1 * g1 * V).backward(create_graph=True)
    g2, x.grad = x.grad, None
    gc.sum(g2 * W).backward()
    return np.asarray(x.grad)


def _traced_third(f):
    first = gc.grad(lambda x: gc.sum(f(x) * W))
    second = gc.grad(lambda x: gc.sum(V * first(x) ** 2))
    return gc.grad(lambda x: gc.sum(W * second(x)))(X0)


@pytest.mark.parametrize("name, f", [
    ("gelu", gc.gelu),
    ("gelu exact", lambda x: gc.gelu(x, approximate="none")),
    ("softmax", lambda x: gc.softmax(x, axis=-1)),
    ("layer_norm", lambda x: gc.layer_norm(x)),
    ("gelu of x*x", lambda x: gc.gelu(x * x)),  # gelu_grad reads x*x, itself on the tape
])
def test_eager_third_derivatives_through_derived_gradient_rules(name, f):
    expected = _traced_third(f)
    assert np.max(np.abs(expected)) > 1e-3  # a derivative worth comparing
    np.testing.assert_allclose(_eager_third(f), expected, rtol=1e-9, atol=1e-12)


def test_eager_third_derivative_of_gelu_matches_torch():
    x = torch.tensor(X0, requires_grad=True)
    w, v = torch.tensor(W), torch.tensor(V)
    g1, = torch.autograd.grad((torch.nn.functional.gelu(x, approximate="tanh") * w).sum(), x,
                              create_graph=True)
    g2, = torch.autograd.grad((g1 * g1 * v).sum(), x, create_graph=True)
    g3, = torch.autograd.grad((g2 * w).sum(), x)
    np.testing.assert_allclose(_eager_third(gc.gelu), g3.numpy(), rtol=1e-9, atol=1e-12)


def test_dump_stats_lists_the_rematerialize_pass(capsys):
    """`graphc dump gpt --grad --memory-limit 25MB --stats`: the header counts the
    rematerialised graph's nodes; the per-pass table ended at dce's count, without the pass
    that added the recomputed ones."""
    from graphc.cli import main
    assert main(["dump", "gpt", "--grad", "--memory-limit", "25MB", "--stats"]) in (0, None)
    out = capsys.readouterr().out
    nodes = int(out.split(": ", 1)[1].split(" nodes")[0])
    table = out[out.index("pass        before"):].splitlines()[1:]
    last = table[-1].split()
    assert last[0] == "rematerialize" and int(last[2]) == nodes > int(last[1])


def test_eager_backward_refuses_a_gradient_of_another_shape():
    # the review's lead: y.backward(np.ones(4)) for a (3,) y failed inside a gradient rule
    # ("reshape(f64[4]): cannot reshape 4 elements into shape (3,)"); PyTorch refuses the
    # mismatch up front, naming both shapes
    x = gc.tensor(np.ones(3), requires_grad=True)
    for wrong in (np.ones(4), np.ones(1), np.ones((3, 1))):
        message = f"backward(): the gradient has shape {wrong.shape}, the tensor has shape (3,)"
        with pytest.raises(gc.GraphcError, match=re.escape(message)):
            (x * 2.0).backward(wrong)
    (x * 2.0).backward(np.arange(3.0))
    np.testing.assert_array_equal(x.grad, [0.0, 2.0, 4.0])


def test_eager_backward_refuses_a_python_bool_gradient():
    """Session 41: `loss.backward(True)` (a torch user's retain_graph, torch's second
    argument) took the bool as a gradient of 1.0; torch 2.13 refuses any non-tensor gradient
    (TypeError). Now one line says so; a bool array, as a bool tensor in torch, still
    counts as 0/1."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    with pytest.raises(TypeError):
        torch.ones(3, requires_grad=True).sum().backward(True)
    x = gc.tensor(np.ones(3), requires_grad=True)
    for flag in (True, np.bool_(False)):
        with pytest.raises(gc.GraphcError) as info:
            gc.sum(x * 2.0).backward(flag)
        assert str(info.value).splitlines()[0] == (
            f"backward(): the gradient must be a tensor or an array, got {flag!r}; "
            "retain_graph is the second argument: backward(retain_graph=True)")
    assert x.grad is None
    gc.sum(x * 2.0).backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    t = torch.ones(3, requires_grad=True)
    (t * 2.0).backward(torch.tensor([True, False, True]))
    (x * 2.0).backward(np.array([True, False, True]))
    np.testing.assert_array_equal(x.grad, t.grad.numpy() + 2.0)
