"""Review (session 16c): None in pytrees.

Found: graphc's pytrees took None for a leaf, so every transform refused it or mishandled it,
where in JAX None is a pytree node with no children (an empty subtree:
jax.tree_util.tree_leaves({"a": 1, "b": None}) == [1]). grad / value_and_grad / compile / jvp
of a function taking {"w": w, "b": None} failed ("cannot make a tensor spec from a
NoneType"); a compiled function returning (x, None) failed ("returned a NoneType, which is not
a tensor"); vmap with in_axes=0 over a None argument failed ("has no axis 0"); scan could not
return None in its ys; optimiser.init put a 0-d *object* array where params had None (a
silently wrong state, which a checkpoint then pickled); gc.Trainer turned a None parameter
into an object array and failed to compile. Now None is an empty subtree everywhere it flows
(tracing.flatten / leaves_and_structure / unflatten), and in_axes=None still means "not
mapped". gc.tree_leaves and gc.tree_map are public, with JAX's semantics."""
import os

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint, optim

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")

RNG = np.random.default_rng(16)
W = RNG.normal(size=(2, 3)).astype(np.float32)
X = RNG.normal(size=(5, 2)).astype(np.float32)


def _loss(params, x):
    return gc.sum((x @ params["w"]) ** 2)


def _dloss(w, x):
    """d/dw sum((x @ w)^2) = 2 x^T (x w), in float64."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    return 2.0 * x.T @ (x @ w)


def test_tree_leaves_and_tree_map_treat_none_as_an_empty_subtree():
    tree = {"a": 1.0, "b": None, "c": (None, [2.0, None]), "d": {"e": None}}
    assert gc.tree_leaves(tree) == [1.0, 2.0]
    calls = []

    def double(x):
        calls.append(x)
        return 2 * x

    assert gc.tree_map(double, tree) == {"a": 2.0, "b": None, "c": (None, [4.0, None]),
                                         "d": {"e": None}}
    assert calls == [1.0, 2.0]  # f never sees None
    assert gc.tree_map(lambda x, y: x + y, {"a": 1, "b": None}, {"a": 10, "b": None}) == \
        {"a": 11, "b": None}
    with pytest.raises(gc.GraphcError, match="does not have the first tree's structure"):
        gc.tree_map(lambda x, y: x + y, {"a": 1, "b": None}, {"a": 10, "b": 3})


def test_grad_of_params_with_none_is_the_analytic_gradient_with_none_in_place():
    params = {"w": W, "b": None}
    g = gc.grad(_loss)(params, X)
    assert set(g) == {"w", "b"} and g["b"] is None
    np.testing.assert_allclose(g["w"], _dloss(W, X), rtol=1e-5)
    value, g2 = gc.value_and_grad(_loss)(params, X)
    np.testing.assert_allclose(value, np.sum((X.astype(np.float64) @ W) ** 2), rtol=1e-5)
    assert g2["b"] is None
    np.testing.assert_allclose(g2["w"], g["w"], rtol=0, atol=0)
    # a whole argument of None: its gradient is None (jax.grad(f, argnums=(0, 1))(None, x))
    g_none, g_x = gc.grad(lambda p, x: gc.sum(x * x), argnums=(0, 1))(None, X)
    assert g_none is None
    np.testing.assert_allclose(g_x, 2 * X, rtol=1e-6)
    # inside a trace too (grad of grad's symbolic path), and a list with None in it
    g3 = gc.compile(gc.grad(lambda ps, x: gc.sum((x @ ps[0]) ** 2)))([W, None], X)
    assert isinstance(g3, list) and g3[1] is None
    np.testing.assert_allclose(g3[0], _dloss(W, X), rtol=1e-5)


def test_compile_takes_and_returns_none():
    @gc.compile
    def f(x, nothing, p):
        return x * 2.0, None, {"w": p["w"] + 1.0, "b": p["b"]}

    y, none, p = f(X, None, {"w": W, "b": None})
    np.testing.assert_array_equal(y, X * 2.0)
    assert none is None and p["b"] is None
    np.testing.assert_array_equal(p["w"], W + 1.0)
    assert gc.compile(lambda x: None)(X) is None
    # donated pytrees with None: the arrays are updated, None stays
    step = gc.compile(lambda p: {"w": p["w"] * 0.5, "b": p["b"]}, donate_argnums=0)
    out = step({"w": W.copy(), "b": None})
    assert out["b"] is None
    np.testing.assert_array_equal(out["w"], W * 0.5)
    # a declared polymorphic shape pytree with None entries for a params tree with None
    poly = gc.compile(lambda p, x: x @ p["w"],
                      polymorphic_shapes=({"w": None, "b": None}, ("batch", 2)))
    for n in (5, 3):
        np.testing.assert_allclose(poly({"w": W, "b": None}, X[:n]), X[:n] @ W, rtol=1e-6)
    assert len(poly.recompiles) == 0


def test_jvp_and_vjp_with_none_in_the_primals():
    t = RNG.normal(size=W.shape).astype(np.float32)
    y, tangent = gc.jvp(_loss, ({"w": W, "b": None}, X), ({"w": t, "b": None}, np.zeros_like(X)))
    np.testing.assert_allclose(y, np.sum((X.astype(np.float64) @ W) ** 2), rtol=1e-5)
    np.testing.assert_allclose(tangent, np.sum(_dloss(W, X) * t), rtol=1e-4)
    with pytest.raises(gc.GraphcError, match="tangent 0 does not match its primal at b: an "
                                             "ndarray where None is"):
        gc.jvp(_loss, ({"w": W, "b": None}, X), ({"w": t, "b": t}, np.zeros_like(X)))
    out, pull = gc.vjp(lambda p, x: x @ p["w"], {"w": W, "b": None}, X)
    ct = np.ones((5, 3), np.float32)
    g_p, g_x = pull(ct)
    assert g_p["b"] is None
    np.testing.assert_allclose(g_p["w"], X.T @ ct, rtol=1e-5)
    np.testing.assert_allclose(g_x, ct @ W.T, rtol=1e-5)


def test_vmap_over_arguments_with_none_and_none_in_axes_still_means_unmapped():
    params = {"w": W, "b": None}
    xs = RNG.normal(size=(4, 5, 2)).astype(np.float32)
    expected = np.stack([_dloss(W, x) for x in xs])
    # in_axes=0 for an argument of None: it has no leaves to map
    got = gc.vmap(lambda x, nothing: x * 3.0, in_axes=(0, 0))(xs, None)
    np.testing.assert_allclose(np.asarray(got), xs * 3.0, rtol=1e-6)
    # per-example gradients: params shared (a None entry in in_axes), examples mapped
    per_example = gc.vmap(gc.grad(_loss), in_axes=(None, 0))(params, xs)
    assert per_example["b"] is None
    np.testing.assert_allclose(np.asarray(per_example["w"]), expected, rtol=1e-4)
    # a pytree of axes whose None entries mean "not mapped", None params left out of it
    axes = ({"w": None, "b": None}, 0)
    compiled = gc.compile(gc.vmap(gc.grad(_loss), in_axes=axes))(params, xs)
    assert compiled["b"] is None
    np.testing.assert_allclose(compiled["w"], expected, rtol=1e-4)
    # outputs with None, out_axes with None
    a, none = gc.vmap(lambda x: (x.sum(), None), out_axes=(0, None))(xs)
    assert none is None
    np.testing.assert_allclose(np.asarray(a), xs.sum(axis=(1, 2)), rtol=1e-5)
    # in_axes=None is still "broadcast every argument", hence nothing to map
    with pytest.raises(gc.GraphcError, match="maps no argument"):
        gc.vmap(lambda x: x, in_axes=None)(xs)
    # and a None entry for an array argument still shares it unbatched
    shared = gc.vmap(lambda w, x: x @ w, in_axes=(None, 0))(W, xs)
    np.testing.assert_allclose(np.asarray(shared), xs @ W, rtol=1e-5)


def test_scan_carry_and_ys_with_none():
    def step(carry, x):
        total, nothing = carry
        return (total + x, nothing), (x * 2.0, None)

    xs = RNG.normal(size=(4, 3)).astype(np.float32)
    (total, nothing), (doubled, none) = gc.scan(step, (np.zeros(3, np.float32), None), xs)
    assert nothing is None and none is None
    np.testing.assert_allclose(np.asarray(total), xs.sum(0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(doubled), xs * 2.0)
    traced = gc.compile(lambda xs: gc.scan(step, (gc.zeros((3,), "float32"), None), xs))
    (total, nothing), (doubled, none) = traced(xs)
    assert nothing is None and none is None
    np.testing.assert_allclose(total, xs.sum(0), rtol=1e-6)


def _adam_step(p, g, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
    p, g = p.astype(np.float64), g.astype(np.float64)
    m, v = (1 - b1) * g, (1 - b2) * g * g
    return p - lr / (1 - b1) * m / (np.sqrt(v) / np.sqrt(1 - b2) + eps)


def test_optimiser_state_holds_none_where_the_params_do():
    opt = optim.Adam(lr=0.1)
    params = {"w": W, "b": None, "layers": [None, {"k": W[0]}]}
    state = opt.init(params)
    for slot in ("m", "v"):
        assert state[slot]["b"] is None and state[slot]["layers"][0] is None
        np.testing.assert_array_equal(state[slot]["w"], np.zeros_like(W))
        assert state[slot]["w"].dtype == np.float32  # not a 0-d object array
    grads = {"w": np.ones_like(W), "b": None, "layers": [None, {"k": -np.ones(3, np.float32)}]}
    new, state = opt.update(grads, state, params)
    assert new["b"] is None and new["layers"][0] is None and state["m"]["b"] is None
    np.testing.assert_allclose(new["w"], _adam_step(W, grads["w"]), rtol=1e-6)
    np.testing.assert_allclose(new["layers"][1]["k"], _adam_step(W[0], -np.ones(3)), rtol=1e-6)
    # compiled: the whole step traced, None passed through as an empty subtree
    step = gc.compile(lambda g, s, p: opt.update(g, s, p))
    new2, state2 = step(grads, opt.init(params), params)
    assert new2["b"] is None and state2["v"]["layers"][0] is None
    np.testing.assert_allclose(new2["w"], new["w"], rtol=1e-6)
    # a None gradient for an array (or a whole subtree) still leaves it alone, state too
    skip = {"w": None, "b": None, "layers": None}
    kept, kept_state = opt.update(skip, state, new)
    np.testing.assert_array_equal(kept["w"], new["w"])
    np.testing.assert_array_equal(kept_state["m"]["layers"][1]["k"],
                                  state["m"]["layers"][1]["k"])
    # clipping and a pytree decay mask with None entries
    clipped = optim.AdamW(lr=0.1, weight_decay=0.5, clip_norm=1.0,
                          decay_mask={"w": True, "b": None, "layers": [None, {"k": False}]})
    new3, _ = clipped.update(grads, clipped.init(params), params)
    assert new3["b"] is None
    g_clip = grads["w"] * min(1.0, 1.0 / (np.sqrt(6 + 3) + 1e-6))
    np.testing.assert_allclose(new3["w"], _adam_step(W * (1 - 0.1 * 0.5), g_clip), rtol=1e-5)
    with pytest.raises(gc.GraphcError, match="does not match the parameters"):
        opt.update({"w": np.ones_like(W), "b": np.ones(3), "layers": None}, state, params)


def test_custom_vjp_cotangent_with_none_inside_a_pytree_is_zero_there():
    @gc.custom_vjp
    def scale(p):
        return p["w"] * p["s"]

    scale.defvjp(lambda p: (scale(p), p), lambda p, g: ({"w": g * p["s"], "s": None,
                                                         "n": None},))
    s = np.full_like(W, 3.0)
    g = gc.grad(lambda p: gc.sum(scale(p)))({"w": W, "s": s, "n": None})
    assert g["n"] is None
    np.testing.assert_allclose(g["w"], s)
    np.testing.assert_array_equal(g["s"], np.zeros_like(s))


CENTRES = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]], np.float32)


def _blobs(rng, size=32):
    labels = rng.integers(0, 3, size)
    x = CENTRES[labels] + rng.normal(0, 0.5, (size, 2)).astype(np.float32)
    return x, labels.astype(np.int64)


def _trainer(steps):
    def loss(params, batch, key, training):
        assert params["b"] is None  # None reaches the loss as None
        x, y = batch
        return gc.cross_entropy(x @ params["w"], y)

    params = {"w": np.zeros((2, 3), np.float32), "b": None}
    return gc.Trainer(loss, params, optim.Adam(lr=0.1), _blobs, eval_batches=_blobs,
                      steps=steps, eval_every=5, eval_iters=2, seed=3)


def test_trainer_with_a_none_parameter_trains_and_its_checkpoint_round_trips(tmp_path):
    straight = _trainer(10)
    straight.fit(None, progress=False)
    assert straight.params["b"] is None and straight.state["m"]["b"] is None
    assert straight.history[-1][1] < straight.history[0][1]
    first = _trainer(5)
    first.fit(str(tmp_path), progress=False)
    assert sorted(first.state_arrays()) == ["adam_m/w", "adam_v/w", "param/w"]
    resumed = _trainer(10)
    resumed.resume(str(tmp_path / "checkpoint.npz"))
    assert resumed.step == 5 and resumed.params["b"] is None
    resumed.fit(str(tmp_path), progress=False)
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    assert resumed.history == straight.history


def test_checkpoint_save_leaves_out_none_and_refuses_object_arrays(tmp_path):
    meta = {"step": 0, "rng": np.random.PCG64(0).state}
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, {"param/w": W, "param/b": None}, meta)
    arrays, _ = checkpoint.load_arrays(path, {"param/w": (W.shape, W.dtype)})
    np.testing.assert_array_equal(arrays["param/w"], W)
    with pytest.raises(checkpoint.CheckpointError, match="lacks param/b"):
        checkpoint.load_arrays(path, {"param/b": ((), np.float32)})
    # what optimiser.init used to put where params had None: a 0-d object array, which numpy
    # would pickle into a file the reader then refuses; now refused when saving, by name
    with pytest.raises(checkpoint.CheckpointError, match="param/b has dtype object"):
        checkpoint.save(path, {"param/w": W, "param/b": np.zeros((), object)}, meta)
    arrays, _ = checkpoint.load_arrays(path, {"param/w": (W.shape, W.dtype)})  # left intact
    np.testing.assert_array_equal(arrays["param/w"], W)
