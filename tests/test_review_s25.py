"""Found by session 25's fuzzing of the transformations (each a valid program that raised):
second derivatives with respect to an argument the function ignores, and remat under vmap in
a loop whose forward reads a value the loop hoisted from its argument."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_second_derivatives_with_respect_to_an_ignored_argument_are_zero(compiled):
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])

    def f(x, y):
        return gc.sum(x * x * x)  # does not read y
    run = gc.compile if compiled else (lambda fn: fn)
    np.testing.assert_array_equal(run(gc.hessian(f, argnums=1))(x, y), np.zeros((3, 3)))
    jac = run(gc.jacfwd(gc.jacrev(lambda x, y: x * x, argnums=1), argnums=1))(x, y)
    np.testing.assert_array_equal(jac, np.zeros((3, 3, 3)))
    # both arguments: the x block is torch's, the rest zeros
    (hxx, hxy), (hyx, hyy) = run(gc.hessian(f, argnums=(0, 1)))(x, y)
    (txx, txy), (tyx, tyy) = torch.func.hessian(lambda a, b: (a * a * a).sum(), argnums=(0, 1))(
        torch.tensor(x), torch.tensor(y))
    for ours, theirs in ((hxx, txx), (hxy, txy), (hyx, tyx), (hyy, tyy)):
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-12)


C0 = np.array([0.1, 0.2, 0.3])
REMAT = gc.remat(lambda p, q: p + C0 * q)


def _scanned(x, y, length=2):
    def body(c, _):
        return gc.vmap(REMAT, in_axes=(0, None))(c[None], y)[0], None
    return gc.sum(gc.scan(body, x, None, length=length)[0])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_remat_under_vmap_in_a_loop_takes_its_argument_hoisted_by_the_loop(compiled):
    """vmap builds remat's `C0 * q` (q unbatched) outside its region, and the scan hoists it
    out of the body: the function's forward reads it instead of q, which is its argument,
    not a closure. Was: 'closes over a value that is being differentiated'."""
    x, y = np.zeros(3), np.array([1.0, -2.0, 0.5])
    run = gc.compile if compiled else (lambda fn: fn)
    np.testing.assert_allclose(run(gc.grad(lambda y: _scanned(x, y)))(y), 2 * C0)
    primal, tangent = run(lambda x, y: gc.jvp(_scanned, (x, y), (np.ones(3), np.ones(3))))(x, y)
    np.testing.assert_allclose(primal, 2 * np.sum(C0 * y))
    np.testing.assert_allclose(tangent, 3.0 + 2 * np.sum(C0))

    def branch(pred, y):
        return gc.sum(gc.cond(pred, lambda a: gc.vmap(REMAT, in_axes=(0, None))(a[None], y)[0],
                              lambda a: a * 2.0, x))
    np.testing.assert_allclose(run(gc.grad(branch, argnums=1))(np.bool_(True), y), C0)
    np.testing.assert_allclose(run(gc.grad(branch, argnums=1))(np.bool_(False), y), 0.0)


# ---- found by fuzzing compiled against eager programs -------------------------------------------
@pytest.mark.parametrize("name, fn", [
    ("square", lambda x: gc.square(x)), ("round", lambda x: gc.round(x, 2)),
    ("round to tens", lambda x: gc.round(x, -1)), ("silu", gc.silu),
    ("leaky_relu", lambda x: gc.leaky_relu(x, 0.1)),
])
def test_eager_ops_on_a_0d_array_keep_its_dtype(name, fn):
    """On a 0-d numpy array Python's operators give a numpy scalar, which the next op took
    as weakly typed (float32): eager square of float64 1 + 1e-9 summed to float32 1.0."""
    x = np.asarray(1.0 + 1e-9)
    eager = gc.mul(fn(x), 1.0)
    compiled = gc.compile(lambda x: gc.mul(fn(x), 1.0))(x)
    assert np.asarray(eager).dtype == np.asarray(compiled).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(compiled))


def test_sums_of_booleans_count_as_numpys_and_min_takes_booleans():
    b = np.array([[True, True, False], [True, False, False]])
    for run in (lambda f: f, gc.compile):
        for axis in (0, 1, None):
            got = np.asarray(run(lambda b: gc.sum(b, axis))(b))
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, b.sum(axis))
        np.testing.assert_array_equal(np.asarray(run(lambda b: gc.cumsum(b, 1))(b)),
                                      np.cumsum(b, 1))
        for axis in (0, 1):
            np.testing.assert_array_equal(np.asarray(run(lambda b: gc.min(b, axis))(b)),
                                          b.min(axis))
            np.testing.assert_array_equal(np.asarray(run(lambda b: gc.max(b, axis))(b)),
                                          b.max(axis))
    # a mask counted the torch way
    t = torch.tensor(b)
    assert int(np.asarray(gc.sum(b))) == int(t.sum()) == 3
