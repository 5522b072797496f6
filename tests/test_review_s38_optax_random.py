"""Session 38's fixes of the optax-style optimisers (gc.optim.adam, ...) and
gc.random.choice; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc import optim
from ir.errors import GraphcError

# 10 updates of a least-squares problem in float64, by optax 0.2.8 itself (jax_enable_x64):
# the parameters w (2, 3) and b (3,) after the last
OPTAX_CASES = {
    "sgd": ("sgd", dict(learning_rate=0.1)),
    "sgd_m": ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    "adam": ("adam", dict(learning_rate=0.1)),
    "adamw": ("adamw", dict(learning_rate=0.1, weight_decay=0.1)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.1)),
    "rmsprop_c": ("rmsprop", dict(learning_rate=0.1, centered=True, momentum=0.5,
                                  eps_in_sqrt=False, bias_correction=True,
                                  initial_scale=0.1)),
    "adagrad": ("adagrad", dict(learning_rate=0.1)),
    "adamax": ("adamax", dict(learning_rate=0.1)),
    "nadam": ("nadam", dict(learning_rate=0.1)),
    "lion": ("lion", dict(learning_rate=0.1, weight_decay=0.1)),
}
EXPECTED = {
    "sgd": ([[0.6781083895340375, 0.4060222486804873, -0.25168787843837714], [0.40915890502799157, -0.35659965208108346, 0.10953187017163331]],
            [0.7005368028207235, 0.32459022153850464, -0.04194849659674446]),
    "sgd_m": ([[0.9436699514902775, 0.5785723245069495, -0.9696581818942827], [0.14475458010378683, -0.7387843932562016, 0.3506238080679822]],
              [0.43542550105309, -0.14198097951516805, -0.00470673734697917]),
    "adam": ([[0.9135999976651292, 0.6402198247180596, -0.2478670834881418], [0.677126513238065, -0.1027985931941478, -0.23657585373683795]],
             [0.6092494693277455, 0.2854487976804296, 0.05204929159172665]),
    "adamw": ([[0.8547033341029947, 0.6020942724095134, -0.26035779461575714], [0.6205253818975314, -0.11886565751011433, -0.21510602365735124]],
              [0.5323036290305763, 0.2545758528800262, 0.06561442402908892]),
    "rmsprop": ([[0.861233588103616, 0.5799306760367177, -0.40892103116254547], [0.3745146425700628, -0.42199289983442234, 0.13994857387376186]],
                [0.7301733939449947, 0.3109023748499937, -0.06960687319588257]),
    "rmsprop_c": ([[0.8769484666370797, 0.5893094379919224, -0.6233226206839959], [0.34168371032815703, -0.46094111323003656, 0.19450560476733664]],
                  [0.679080249081101, 0.23282799735252785, -0.09213251630162866]),
    "adagrad": ([[0.5238185575265747, 0.2611681143226372, 0.2092802893953614], [0.4452679726821505, -0.23895130526283398, 0.014742936101189406]],
                [0.9291496593931519, 0.5808904516711266, -0.3126715535506121]),
    "adamax": ([[0.7648975508973532, 0.4936542995467863, -0.08658998439380933], [0.6137120895706827, -0.10644858319569404, -0.16070363135273114]],
               [0.7256072719051657, 0.39167974554737395, -0.08768271324125763]),
    "nadam": ([[0.8878980311426748, 0.6185778715717577, -0.2570077299010289], [0.5866163067986424, -0.20952834551591615, -0.1409665430751728]],
              [0.660998877416803, 0.3260284643199008, 0.010456401939803205]),
    "lion": ([[1.069887408155714, 0.6367059795298132, -0.37699248442142147], [0.26687003353148786, -0.49866754128615604, 0.1589206361600073]],
             [0.42113501671441306, -0.099656203275794, 0.3197337170960168]),
}


def _problem():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(2, 3)), rng.normal(size=(3,))
    x, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    return {"w": w, "b": b}, x, y


def _grads(p, x, y):
    r = x @ p["w"] + p["b"] - y
    return {"w": 2 * x.T @ r / 4, "b": 2 * r.sum(0) / 4}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("case", sorted(OPTAX_CASES))
def test_lowercase_optimisers_follow_optax(case, compiled):
    """gc.optim.adam and the other lowercase names did not exist; a JAX user's optax code
    (`updates, state = tx.update(grads, state, params)`, `params =
    apply_updates(params, updates)`) now runs with optax's contract and formulas (its eps
    placements, adamw's -lr * wd * p, its nadam): 10 float64 steps agree with optax's to
    1e-14, eagerly and inside gc.compile."""
    name, kw = OPTAX_CASES[case]
    tx = getattr(optim, name)(**kw)
    params, x, y = _problem()

    def step(p, state, g):
        updates, state = tx.update(g, state, p)
        return optim.apply_updates(p, updates), state

    run = gc.compile(step) if compiled else step
    state = tx.init(params)
    for _ in range(10):
        params, state = run(params, state, _grads({k: np.asarray(v) for k, v in
                                                   params.items()}, x, y))
    assert int(np.asarray(state["count"])) == 10
    w, b = EXPECTED[case]
    for k, want in (("w", w), ("b", b)):
        got = np.asarray(params[k])
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_lowercase_update_returns_updates_not_new_params():
    """optax's update returns the step to add (-lr * g for sgd), not the new parameters as
    graphc's Optimizer.update does: adding it to the parameters moves them once. Leaves
    without a gradient get a None update, which apply_updates leaves alone."""
    params = {"w": np.array([1.0, 2.0], np.float32), "frozen": np.array([5.0], np.float32)}
    tx = optim.sgd(0.5)
    updates, state = tx.update({"w": np.array([1.0, -2.0], np.float32), "frozen": None},
                               tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], [-0.5, 1.0])
    assert updates["frozen"] is None
    new = optim.apply_updates(params, updates)
    np.testing.assert_array_equal(new["w"], [0.5, 3.0])
    assert new["w"].dtype == np.float32 and new["frozen"] is params["frozen"]
    assert int(state["count"]) == 1


def test_lowercase_params_optional_unless_weight_decay():
    """As optax's: update(grads, state) without params works where nothing reads them;
    adamw's weight decay needs them (one line), and its mask may be a function of the
    parameters' pytree, as optax's."""
    g = {"w": np.ones((2, 2)), "b": np.ones(2)}
    tx = optim.adam(0.1)
    updates, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(updates["w"], -0.1 * np.ones((2, 2)), rtol=1e-6)
    tx = optim.adamw(0.1, weight_decay=0.5, mask=lambda p: {k: v.ndim > 1 for k, v in
                                                            p.items()})
    with pytest.raises(GraphcError, match="adamw.update: its weight decay needs the "
                                          "parameters"):
        tx.update(g, tx.init(g))
    params = {"w": np.full((2, 2), 2.0), "b": np.full(2, 2.0)}
    updates, _ = tx.update(g, tx.init(params), params)
    # adam's first step is sign(g) (1 here), plus 0.5 * 2 on the masked-in matrix only
    np.testing.assert_allclose(updates["w"], -0.1 * (1 + 1.0), rtol=1e-6)
    np.testing.assert_allclose(updates["b"], -0.1 * 1, rtol=1e-6)


def test_lowercase_settings_checked_and_trainer_refuses_optax_contract():
    """A setting out of range is one line naming the optax argument; gc.Trainer, which takes
    update's result for the new parameters, refuses an optax-style optimiser instead of
    replacing the parameters with the updates."""
    with pytest.raises(GraphcError, match=r"gc.optim.adam: b1 must be in \[0, 1\)"):
        optim.adam(1e-3, b1=1.5)
    with pytest.raises(GraphcError, match="gc.optim.sgd: momentum must be a finite number"):
        optim.sgd(0.1, momentum=-0.9)
    with pytest.raises(GraphcError, match="follows optax's contract"):
        gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]), {"w": np.ones(2, np.float32)},
                   optim.adam(0.1), lambda rng: (np.ones(2, np.float32),), steps=1)


# ---- gc.random.choice ------------------------------------------------------------------------
def test_choice_without_replacement_draws_no_repeats_eager_and_compiled():
    """gc.random.choice did not exist; as jax.random.choice, replace=False draws distinct
    elements of range(n), the same eagerly and compiled, and from an array along `axis` the
    result has a's shape with that axis replaced by `shape` (a[:, i, :] for each i drawn)."""
    key = gc.random.key(3)
    eager = np.asarray(gc.random.choice(key, 10, (2, 4), replace=False))
    compiled = np.asarray(gc.compile(
        lambda k: gc.random.choice(k, 10, (2, 4), replace=False))(key))
    assert eager.shape == (2, 4) and eager.dtype == np.int64
    assert len(set(eager.ravel().tolist())) == 8 and eager.min() >= 0 and eager.max() < 10
    np.testing.assert_array_equal(eager, compiled)
    a = np.arange(24.0).reshape(2, 3, 4)
    for replace in (True, False):
        idx = np.asarray(gc.random.choice(key, 3, (2,), replace=replace))
        got = np.asarray(gc.random.choice(key, a, (2,), replace=replace, axis=1))
        assert got.shape == (2, 2, 4)
        np.testing.assert_array_equal(got, np.take(a, idx, axis=1))
    # with replacement: every element can come up, in range
    many = np.asarray(gc.random.choice(key, 5, (1000,)))
    assert set(many.tolist()) == {0, 1, 2, 3, 4}


def _chi_square(counts, p):
    expected = np.asarray(p) / np.sum(p) * np.sum(counts)
    return float(np.sum((counts - expected) ** 2 / expected))


def test_choice_with_p_matches_the_probabilities():
    """With p, the frequencies over 20000 draws are p's (chi-square below 16.27, the 99.9%
    point for 3 degrees of freedom), eagerly and compiled; without replacement the first
    element drawn has p's distribution too (the Gumbel top-k), an element of p 0 never
    comes up and no draw repeats one."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    key = gc.random.key(7)
    draw = lambda k: gc.random.choice(k, 4, (20000,), p=p)  # noqa: E731
    for got in (draw(key), gc.compile(draw)(key)):
        assert _chi_square(np.bincount(np.asarray(got), minlength=4), p) < 16.27
    p0 = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    rows = np.asarray(gc.vmap(lambda k: gc.random.choice(k, 5, (3,), replace=False, p=p0))(
        gc.random.split(key, 20000)))
    assert not (rows == 4).any()
    assert all(len(set(r)) == 3 for r in rows.tolist())
    assert _chi_square(np.bincount(rows[:, 0], minlength=4), p) < 16.27


@pytest.mark.parametrize("kwargs, message", [
    (dict(a=4, p=np.array([0.5, 0.5])), r"p must have shape \(4,\)"),
    (dict(a=3, p=np.array([0.5, -0.1, 0.6])), "p must be finite and non-negative"),
    (dict(a=3, shape=(4,), replace=False), "cannot take 4 samples from a population of 3"),
    (dict(a=3, shape=(3,), replace=False, p=np.array([0.5, 0.5, 0.0])),
     "only 2 elements with p > 0"),
    (dict(a=np.ones(3), axis=1), "gc.random.choice: axis 1 is out of range"),
])
def test_choice_refuses_bad_arguments_in_one_line(kwargs, message):
    """A p of the wrong length or with a negative entry, or more samples than the
    population without replacement, are one GraphcError line naming gc.random.choice (JAX
    raises a ValueError for the first and third, and takes a negative p silently)."""
    with pytest.raises(GraphcError, match=message) as info:
        gc.random.choice(gc.random.key(0), **kwargs)
    assert "\n" not in info.value.message


@pytest.mark.parametrize("axis", [1, -1])
def test_choice_of_one_element_along_a_later_axis_drops_that_axis(axis):
    """With shape=() and axis != 0, choice moved the result's first axis back to `axis`
    although the drawn axis was gone: a (2, 3) input failed ("destination axis 1 is out of
    range") and a (2, 3, 4) one came back transposed. As jax.random.choice, the result is
    now a[:, i] / b[:, i, :] (b[:, :, i] for axis=-1), eagerly, compiled and under vmap."""
    key = gc.random.key(0)
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(24.0).reshape(2, 3, 4)
    for x in (a, b):
        n = x.shape[axis]
        i = int(np.asarray(gc.random.choice(key, n)))
        want = np.take(x, i, axis=axis)
        draw = lambda k, x=x: gc.random.choice(k, x, (), axis=axis)  # noqa: E731
        for got in (draw(key), gc.compile(draw)(key)):
            assert np.asarray(got).shape == want.shape
            np.testing.assert_array_equal(np.asarray(got), want)
        keys = gc.random.split(key, 3)
        rows = np.asarray(gc.vmap(draw)(keys))
        idx = [int(np.asarray(gc.random.choice(k, n))) for k in keys]
        np.testing.assert_array_equal(rows, np.stack([np.take(x, j, axis=axis) for j in idx]))


def test_weight_decay_mask_may_be_a_prefix_of_the_params():
    """optax's `mask` may be a prefix of the parameters' pytree, a flag standing for a whole
    subtree, given as a pytree or returned by a function; adamw and lion refused it. Now the
    flag is repeated over its subtree: one update agrees with optax 0.2.8's (float64), and a
    mask that matches no prefix is one line naming `mask`."""
    params = {"enc": {"w": np.full((2, 2), 2.0), "b": np.full(2, 2.0)},
              "head": np.full((2, 2), 2.0)}
    g = {"enc": {"w": np.ones((2, 2)), "b": -np.ones(2)}, "head": np.ones((2, 2))}
    cases = [  # optax's updates of enc.w, enc.b, head
        (optim.adamw(0.1, weight_decay=0.5, mask={"enc": False, "head": True}),
         (-0.09999999900000002, 0.09999999900000002, -0.199999999)),
        (optim.adamw(0.1, weight_decay=0.5,
                     mask=lambda p: {"enc": {"w": True, "b": False}, "head": False}),
         (-0.199999999, 0.09999999900000002, -0.09999999900000002)),
        (optim.lion(0.1, weight_decay=0.5, mask={"enc": True, "head": False}),
         (-0.2, 0.0, -0.1)),
    ]
    for tx, (w, b, head) in cases:
        for run in (tx.update, gc.compile(tx.update)):
            u, _ = run(g, tx.init(params), params)
            np.testing.assert_allclose(u["enc"]["w"], np.full((2, 2), w), rtol=1e-12)
            np.testing.assert_allclose(u["enc"]["b"], np.full(2, b), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(u["head"], np.full((2, 2), head), rtol=1e-12)
    tx = optim.adamw(0.1, weight_decay=0.5, mask={"enc": False})
    with pytest.raises(GraphcError, match=r"^gc.optim.adamw: mask does not match the parameters' "
                                          r"pytree: "
                                          r"keys \['enc'\]") as info:
        tx.update(g, tx.init(params), params)
    assert "\n" not in info.value.message


def test_lowercase_signatures_are_optax_positions_and_messages_name_them():
    """adam, nadam, adamw and lion lacked optax's mu_dtype and sgd its accumulator_dtype, so
    optax's positional calls put values in the wrong places (adamw's 6th argument, mu_dtype,
    became the weight decay); messages named the private rules (_ScaleByAdam.update ...)
    with advice for the torch-style classes. Now the signatures are optax 0.2.8's, a dtype
    of None is taken, another is one line naming it, and update's messages name
    gc.optim.<name>."""
    import inspect
    want = {
        "sgd": ["learning_rate", "momentum", "nesterov", "accumulator_dtype"],
        "adam": ["learning_rate", "b1", "b2", "eps", "eps_root", "mu_dtype", "nesterov"],
        "nadam": ["learning_rate", "b1", "b2", "eps", "eps_root", "mu_dtype"],
        "adamw": ["learning_rate", "b1", "b2", "eps", "eps_root", "mu_dtype",
                  "weight_decay", "mask", "nesterov"],
        "lion": ["learning_rate", "b1", "b2", "mu_dtype", "weight_decay", "mask"],
    }
    for name, args in want.items():
        assert list(inspect.signature(getattr(optim, name)).parameters) == args
    # optax's positional adamw: weight decay 0.5 on the matrix only
    params = {"w": np.full((2, 2), 2.0), "b": np.full(2, 2.0)}
    tx = optim.adamw(0.1, 0.9, 0.999, 1e-8, 0.0, None, 0.5, {"w": True, "b": False})
    updates, _ = tx.update({"w": np.ones((2, 2)), "b": np.ones(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * (1 + 1.0), rtol=1e-6)
    np.testing.assert_allclose(updates["b"], -0.1, rtol=1e-6)
    tx = optim.lion(0.1, 0.9, 0.99, None, 0.5)
    updates, _ = tx.update({"w": np.ones((2, 2)), "b": np.ones(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["b"], -0.1 * (1 + 1.0), rtol=1e-12)
    with pytest.raises(GraphcError, match=r"gc.optim.adam: mu_dtype='bfloat16' is not "
                                          r"supported"):
        optim.adam(0.1, mu_dtype="bfloat16")
    with pytest.raises(GraphcError, match="gc.optim.sgd: accumulator_dtype"):
        optim.sgd(0.1, 0.9, False, np.float32)
    with pytest.raises(GraphcError, match="gc.optim.lion: learning_rate must be a number"):
        optim.lion(-1.0)
    tx = optim.adam(0.1)
    with pytest.raises(GraphcError) as info:
        tx.update(params, optim.sgd(0.1).init(params), params)
    assert info.value.message == ("gc.optim.adam.update: the state has ['count'], expected "
                                  "['count', 'mu', 'nu'] (from gc.optim.adam(...).init)")
    with pytest.raises(GraphcError, match=r"^gc.optim.nadam.update: the gradient of "
                                          r"parameter 'b' has shape \(3,\)"):
        optim.nadam(0.1).update({"w": np.ones((2, 2)), "b": np.ones(3)},
                                optim.nadam(0.1).init(params), params)


@pytest.mark.parametrize("name, capitalised", [
    ("sgd", "SGD"), ("adam", "Adam"), ("nadam", "NAdam"), ("adamw", "AdamW"),
    ("rmsprop", "RMSprop"), ("adagrad", "Adagrad"), ("adamax", "Adamax"), ("lion", "Lion")])
def test_trainer_refusal_names_the_matching_capitalised_optimiser(name, capitalised):
    """gc.Trainer's refusal of an optax-style optimiser suggested gc.optim.Adam whatever it
    was; now it names the graphc optimiser of the same name (which exists), with a note that
    its arguments and some formulas are torch's."""
    assert isinstance(getattr(optim, capitalised), type)
    with pytest.raises(GraphcError) as info:
        gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]), {"w": np.ones(2, np.float32)},
                   getattr(optim, name)(0.1), lambda rng: (np.ones(2, np.float32),), steps=1)
    message = info.value.message
    assert "follows optax's contract" in message and "\n" not in message
    assert f"pass graphc's gc.optim.{capitalised}(...) (its arguments" in message


# ---- the distributed handshake's batch digest ------------------------------------------------
def test_batch_digest_of_object_arrays_and_defaultdicts():
    """batch_digest (every rank's first batch must agree) hashed an object array's bytes,
    its pointers, which differ from process to process: equal batches of objects disagreed.
    Now an object array is hashed by its elements' reprs. A collections.defaultdict batch
    raised TypeError (rebuilt as defaultdict(pairs)); it is now read as the dict it holds,
    as its pytree is."""
    from collections import OrderedDict, defaultdict

    from graphc.trainer import batch_digest

    def ragged():  # fresh objects each time, as another process has
        return np.array([list(range(3)), [4, 5]], dtype=object)

    y = np.arange(2.0)
    assert batch_digest((ragged(), y)) == batch_digest((ragged(), y))
    other = np.array([list(range(3)), [4, 6]], dtype=object)
    assert batch_digest((other, y)) != batch_digest((ragged(), y))
    batch = defaultdict(list, {"x": np.ones((2, 3)), "y": [1, 2]})
    assert batch_digest(batch) == batch_digest({"x": np.ones((2, 3)), "y": np.array([1, 2])})
    assert batch_digest(OrderedDict(batch)) != batch_digest(batch)  # (another pytree)
