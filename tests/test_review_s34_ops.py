"""Session 34's fixes of ops (compiled sums, squeeze of symbolic axes, activation gradients
at NaN); each test failed before its fix."""
import warnings

import numpy as np
import pytest

import graphc as gc


def _overflowing_rows(dtype):
    """Rows whose sum overflows or is not finite, by name."""
    big = np.finfo(dtype).max * np.asarray(0.9, dtype)
    inf, nan = np.inf, np.nan
    return {"+big +big -big -big": [big, big, -big, -big],
            "-big -big +big +big": [-big, -big, big, big],
            "+big -big +big +big": [big, -big, big, big],
            "8 x +big, 8 x -big": [big] * 8 + [-big] * 8,
            "inf and -inf": [inf, 1, -inf, 1], "a NaN": [1, nan, big, big],
            "an inf": [big, inf, 1, big], "a -inf": [-big, -inf, big, big]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sums_that_overflow_are_numpys_nan_or_inf(dtype):
    """A compiled sum over the last or the leading axes is a BLAS product with a ones vector,
    which adds in another order than numpy: where partial sums overflow, a float32 column
    of 3e38, 3e38, -3e38, -3e38 summed NaN compiled and inf in numpy (and eagerly). A
    non-finite BLAS sum is now numpy's np.add.reduce, so compiled, eager and numpy agree;
    the one documented exception is a sum that BLAS's order keeps finite (README)."""
    for name, row in _overflowing_rows(dtype).items():
        row = np.array(row, dtype)
        n = row.size
        cases = {"axis 0": (np.tile(row[:, None], (1, 5)), 0),
                 "last axis": (np.tile(row, (5, 1)), -1),
                 "leading axes": (np.tile(row.reshape(2, n // 2, 1), (1, 1, 3)), (0, 1))}
        for case, (x, axis) in cases.items():
            for keepdims in (False, True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    got = gc.compile(lambda a: gc.sum(a, axis, keepdims))(x)
                    eager = np.asarray(gc.sum(x, axis, keepdims))
                    mean = gc.compile(lambda a: gc.mean(a, axis, keepdims))(x)
                    want = np.add.reduce(x, axis=axis, keepdims=keepdims)
                where = f"{np.dtype(dtype)} {name}, {case}, keepdims={keepdims}"
                np.testing.assert_array_equal(eager, want, err_msg=where)
                same = (got == want) | (np.isnan(got) & np.isnan(want))
                assert np.isfinite(got[~same]).all(), f"{where}: {got} vs numpy's {want}"
                assert np.array_equal(np.isfinite(mean), np.isfinite(got)), where


def test_squeeze_without_axis_refuses_a_symbolic_axis_that_may_be_1():
    """squeeze(x) without axis= kept a symbolic axis (its Dim is never equal to 1), so a
    compiled function called with batch = 1 returned shape (1,) where eager code gives ().
    Now it is refused, as JAX's squeeze refuses it, in one line naming the axis and axis=;
    a symbolic size that is never 1 (2*b) and a named axis still work."""
    def squeezed(x):
        return gc.squeeze(x)
    with pytest.raises(gc.GraphcError, match=r"squeeze cannot tell whether axis 0 \(size "
                                             r"b\) is 1: .*value of b; .*axis=") as info:
        gc.compile(squeezed, polymorphic_shapes=(("b", "_"),))(np.ones((1, 1), np.float32))
    assert "\n" not in info.value.message
    assert info.value.locs  # the line of the squeeze in the user's function
    doubled = gc.compile(lambda x: gc.squeeze(gc.reshape(x, (-1, 1))),
                         polymorphic_shapes=(("b", "_"),))
    assert doubled(np.ones((3, 2), np.float32)).shape == (6,)
    named = gc.compile(lambda x: gc.squeeze(x, 1), polymorphic_shapes=(("b", "_"),))
    np.testing.assert_array_equal(named(np.arange(1, dtype=np.float32).reshape(1, 1)), [0.0])
    assert np.asarray(gc.squeeze(np.ones((1, 1), np.float32))).shape == ()


def _torch_grad(fn, x):
    """d sum(fn(x)) / dx by torch's backward (the oracle)."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    t = torch.tensor(x, requires_grad=True)
    fn(torch, t).sum().backward()
    return t.grad.numpy()


SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_passes_the_gradient_at_nan_as_torch(dtype):
    """relu's gradient was where(x > 0, g, 0): 0 at a NaN input. torch's relu backward is
    threshold_backward(g, relu(x), 0), 0 where the result is <= 0, so at NaN the incoming
    gradient passes (d relu/dx = 1). Now where(x <= 0, 0, g): eagerly, compiled (numpy's
    emitters and a fused kernel), under vmap and jvp, torch's values."""
    x = np.array(SPECIALS, dtype)
    want = _torch_grad(lambda torch, t: torch.relu(t * 2.0 + 1.0) * 3.0, x)
    np.testing.assert_array_equal(want, [6, 6, 0, 6, 6, 6, 0, 6])

    def loss(x):
        return gc.sum(gc.relu(x * 2.0 + 1.0) * 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(np.asarray(gc.grad(loss)(x)), want)
        np.testing.assert_array_equal(gc.compile(gc.grad(loss))(x), want)
        rows = np.tile(x, (64, 8))  # large enough for a fused kernel
        step = gc.compile(gc.grad(loss))
        assert "_fused" in step.plan_for(rows).source
        np.testing.assert_array_equal(step(rows), np.tile(want, (64, 8)))
        np.testing.assert_array_equal(np.asarray(gc.vmap(gc.grad(loss))(x[None])), want[None])
        tangent = gc.jvp(gc.relu, (x,), (np.ones_like(x),))[1]
    np.testing.assert_array_equal(np.asarray(tangent), [1, 1, 0, 0, 0, 1, 0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hardsigmoid_passes_no_gradient_at_nan_as_torch(dtype):
    """hardsigmoid's NaN fell through to its middle piece, x / 6 + 1/2, whose gradient 1/6
    it got; torch's backward gives g / 6 only where -3 < x < 3, which NaN fails: 0. The
    middle piece now passes no gradient where it is NaN (the value stays NaN), eagerly and
    compiled, and the compiled forward pass is unchanged."""
    x = np.array(SPECIALS + [-3.0, 3.0], dtype)
    want = _torch_grad(lambda torch, t: torch.nn.functional.hardsigmoid(t), x)
    np.testing.assert_array_equal(want[:3], [0, 0, 0])

    def loss(x):
        return gc.sum(gc.hardsigmoid(x))
    np.testing.assert_allclose(np.asarray(gc.grad(loss)(x)), want, rtol=1e-7)
    np.testing.assert_allclose(gc.compile(gc.grad(loss))(x), want, rtol=1e-7)
    rows = np.tile(x, (64, 8))
    np.testing.assert_allclose(gc.compile(gc.grad(loss))(rows), np.tile(want, (64, 8)),
                               rtol=1e-7)
    values = gc.compile(gc.hardsigmoid)(x)
    assert np.isnan(values[0]) and np.isnan(np.asarray(gc.hardsigmoid(x))[0])
    assert "np.not_equal" not in gc.compile(gc.hardsigmoid).plan_for(x).source  # no mask
