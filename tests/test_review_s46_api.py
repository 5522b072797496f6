"""Session 46's fixes of the Python API's rough edges (compiled methods, the names the
eager transformations give arguments, ...); each test failed before its fix."""
import functools
import logging
import typing

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def test_compile_on_a_plain_method_binds_self_as_a_static_argument():
    """`@gc.compile` on a method failed at every call ("missing a required argument: 'x'":
    no __get__ bound self). Now self is argument 0, static where it holds no arrays (jax.jit's
    static_argnums=0): each instance its own plan, its attributes constants of the plan."""
    class Scale:
        def __init__(self, s):
            self.s = s

        @gc.compile
        def f(self, x):
            return x * self.s

        @functools.partial(gc.compile, static_argnums=2)  # (self counts: k is argument 2)
        def repeat(self, x, k):
            for _ in range(k):  # (k used as a Python int: static)
                x = x * self.s
            return x

    x = np.arange(3, dtype=np.float32)
    two, three = Scale(2.0), Scale(3.0)
    np.testing.assert_array_equal(two.f(x), x * 2)
    np.testing.assert_array_equal(three.f(x), x * 3)
    np.testing.assert_array_equal(two.f(x + 1), (x + 1) * 2)
    assert len(two.f.recompiles) == 1 and "self (static)" in two.f.recompiles[0]
    np.testing.assert_array_equal(three.repeat(x, 2), x * 9)
    assert Scale.f.__name__ == "f" and Scale.__dict__["f"] is Scale.f  # (on the class: fn)


def test_compile_on_a_method_of_a_namedtuple_traces_its_arrays():
    """A self holding arrays is an ordinary argument, traced: another instance's values
    reuse the plan (as jax.jit traces a pytree self)."""
    class Affine(typing.NamedTuple):
        w: np.ndarray
        b: np.ndarray

        @gc.compile
        def __call__(self, x):
            return x @ self.w + self.b

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    first = Affine(rng.normal(size=(3, 2)), rng.normal(size=2))
    second = Affine(rng.normal(size=(3, 2)), rng.normal(size=2))
    for layer in (first, second):
        np.testing.assert_allclose(layer(x), x @ layer.w + layer.b, rtol=1e-12)
    assert Affine.__call__.recompiles == []  # (one plan, the arrays its inputs)


def test_compile_on_a_method_of_an_unhashable_object_is_one_line():
    class Config:
        def __eq__(self, other):  # (so no __hash__)
            return True

        @gc.compile
        def f(self, x):
            return x

    with pytest.raises(gc.GraphcError, match=r"^compiled f: self is a Config, which is not "
                                             r"hashable: a method's self .*__hash__") as info:
        Config().f(np.ones(2))
    assert "\n  at " in str(info.value) and str(info.value).count("\n") == 1


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    @gc.compile
    def forward(self, x):
        return gc.tanh(self.lin(x))


def test_compile_on_a_module_forward_reads_its_parameters_and_fills_grads():
    """torch's `@torch.compile def forward(self, x)`: the model's call runs the plan, reads
    the Parameters at each call and goes on the tape; values and gradients as eagerly."""
    block = _Block()
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    w, b = block.lin.weight.data, block.lin.bias.data  # (graphc's (in, out) weight)
    out = block(x)
    np.testing.assert_allclose(out.data, np.tanh(x @ w + b), rtol=1e-5, atol=1e-6)
    gc.sum(out).backward()
    dpre = 1 - np.tanh(x @ w + b) ** 2
    np.testing.assert_allclose(block.lin.weight.grad, x.T @ dpre, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block.lin.bias.grad, dpre.sum(0), rtol=1e-5, atol=1e-6)
    with gc.no_grad():
        block.lin.bias -= 1.0  # (an update in place, seen by the next call)
        np.testing.assert_allclose(block(x), np.tanh(x @ w + b - 1.0), rtol=1e-5, atol=1e-6)
    other = _Block()  # (another instance: its own Parameters)
    np.testing.assert_allclose(
        other(x).data, np.tanh(x @ other.lin.weight.data + other.lin.bias.data), rtol=1e-5,
        atol=1e-6)


def _divide(x, mode, k, j):
    return gc.sum(x * (k / j)) if mode == "div" else gc.sum(x)


def _scaled(x, j):
    return gc.sum(x * (3.0 / j))


@pytest.mark.parametrize("compiled", [False, True])
def test_eager_transformations_name_the_function_s_parameters(compiled, caplog):
    """gc.grad, value_and_grad and the Jacobians of a function (a gc.compile'd one too)
    named its arguments by their position in graphc's own call, "arg1" (by the split call's,
    "arg3" for the third argument where a setting came before it), in the runtime's checks
    and recompile lines, and jacrev's recompile line named its function "symbolic"."""
    divide, scaled = (gc.compile(_divide), gc.compile(_scaled)) if compiled else \
        (_divide, _scaled)
    x = np.ones(3, np.float32)
    for who, transform in [("grad", gc.grad), ("value_and_grad", gc.value_and_grad),
                           ("jacrev", gc.jacrev)]:
        with pytest.raises(ZeroDivisionError, match=r"the divisor \(argument j\) is 0"):
            transform(scaled)(x, 0.0)  # (fn's own call)
        with pytest.raises(ZeroDivisionError, match=r"the divisor \(argument j\) is 0"):
            transform(divide)(x, "div", 3.0, 0.0)  # (the split call: mode passed as it is)
    with caplog.at_level(logging.INFO, logger="graphc"):
        for transform in (gc.grad, gc.jacrev):
            f = transform(scaled)
            f(x, 2.0)
            f(np.ones(4, np.float32), 2.0)
    logged = [r.getMessage() for r in caplog.records if "recompiling" in r.getMessage()]
    assert logged == ["graphc: recompiling _scaled (compilation 2): x: float32[3] -> "
                      "float32[4]"] * 2
