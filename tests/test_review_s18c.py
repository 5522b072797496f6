"""Session 18c review: a public-API fuzzer (random programs compiled against eager and numpy,
values and gradients, vmap, scan, donation, views) found one wrong result.

gc.remat dropped the gradient of a result that is one of its function's arguments returned
unchanged when nothing the region computes reads that argument: for
remat(lambda a, b: (a, b * 2.0)), the gradient of the first result with respect to a came out
zero, eagerly traced and compiled alike (the traced graph, not the plan). The region's
custom_vjp packed every float result, but its replay is built only from the values its
computed nodes read, so `a` was never among them and its cotangent went nowhere."""
import numpy as np
import pytest

import graphc as gc

X = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
W = np.linspace(0.0, 1.0, 6).reshape(2, 3)


@pytest.mark.parametrize("region", [
    lambda a, b: (a, b * 2.0),      # the argument first, an unrelated computed value next
    lambda a, b: (b * 2.0, a),
], ids=["first", "second"])
@pytest.mark.parametrize("outer_remat", [False, True], ids=["tanh", "remat_tanh"])
def test_remat_passes_the_gradient_of_an_argument_it_returns_unchanged(region, outer_remat):
    index = 0 if region(1.0, 1.0)[0] == 1.0 else 1

    def loss(x, w):
        y = gc.remat(region)(x, w)[index]
        act = gc.remat(gc.tanh) if outer_remat else gc.tanh
        return gc.sum(act(y)) + gc.sum(gc.remat(region)(x, w)[1 - index])

    want_x = 1.0 - np.tanh(X) ** 2
    want_w = np.full_like(W, 2.0)
    for gx, gw in [gc.grad(loss, argnums=(0, 1))(X, W),
                   gc.compile(gc.grad(loss, argnums=(0, 1)))(X, W)]:
        np.testing.assert_allclose(gx, want_x, rtol=1e-12)
        np.testing.assert_allclose(gw, want_w, rtol=1e-12)


def test_remat_of_a_closure_returning_its_argument_and_an_outer_value():
    def loss(x, w):
        y, z = gc.remat(lambda a: (a, w * 2.0))(x)
        return gc.sum(gc.tanh(y)) + gc.sum(z * z)

    gx, gw = gc.compile(gc.grad(loss, argnums=(0, 1)))(X, W)
    np.testing.assert_allclose(gx, 1.0 - np.tanh(X) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gw, 8.0 * W, rtol=1e-12)


@pytest.mark.parametrize("compose", ["vmap_of_remat", "remat_of_vmap"])
def test_remat_pass_through_under_vmap(compose):
    # before the fix: vmap(remat(f)) refused the gradient ("gradients() needs every output
    # in one graph") and remat(vmap(f)) gave zeros for x
    region = lambda a, b: (a, b * 2.0)  # noqa: E731
    wrapped = gc.vmap(gc.remat(region)) if compose == "vmap_of_remat" else \
        gc.remat(gc.vmap(region))

    def loss(x, w):
        y, z = wrapped(x, w)
        return gc.sum(gc.tanh(y)) + gc.sum(z)

    gx, gw = gc.compile(gc.grad(loss, argnums=(0, 1)))(X, W)
    np.testing.assert_allclose(gx, 1.0 - np.tanh(X) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gw, np.full_like(W, 2.0), rtol=1e-12)
