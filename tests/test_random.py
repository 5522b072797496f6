"""gc.random: random numbers as pure functions of a key, as jax.random (graphc/random.py,
ir/ops/random.py). Statistical checks use fixed keys and bounds of several sigma."""
import math

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from ir.types import as_dtype

KEY = gc.random.key(0)


def arr(x):
    return np.asarray(x.data if isinstance(x, gc.Tensor) else x)


def test_key_is_two_words_and_split_keys_differ_and_replay():
    np.testing.assert_array_equal(gc.random.key(7), [0, 7])
    np.testing.assert_array_equal(gc.random.PRNGKey(2**32 + 5), [1, 5])
    keys = arr(gc.random.split(KEY, 4))
    assert keys.shape == (4, 2) and keys.dtype == np.int64
    assert len({tuple(k) for k in keys}) == 4 and not any((k == KEY).all() for k in keys)
    np.testing.assert_array_equal(keys, arr(gc.random.split(KEY, 4)))
    # a raw uint32 key as JAX's draws what the same words as int64 draw
    np.testing.assert_array_equal(gc.random.normal(np.array([0, 7], np.uint32), (3,)),
                                  gc.random.normal(gc.random.key(7), (3,)))
    k1, k2 = gc.random.split(KEY)
    a, b = arr(gc.random.uniform(k1, (100,))), arr(gc.random.uniform(k2, (100,)))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, arr(gc.random.uniform(k1, (100,))))
    # a split key's stream is not its parent's
    assert not np.array_equal(arr(gc.random.uniform(KEY, (100,))), a)


def test_fold_in_gives_one_key_per_data_value():
    keys = {tuple(arr(gc.random.fold_in(KEY, i))) for i in range(50)}
    assert len(keys) == 50
    np.testing.assert_array_equal(gc.random.fold_in(KEY, 3), gc.random.fold_in(KEY, 3))
    # traced data (a step counter) folds in as the concrete value does
    f = gc.compile(lambda k, i: gc.random.fold_in(k, i))
    np.testing.assert_array_equal(f(KEY, np.int64(3)), arr(gc.random.fold_in(KEY, 3)))


def _all_draws(k):
    return (gc.random.uniform(k, (5, 3)), gc.random.normal(k, (4,), "float64"),
            gc.random.uniform(k, (3,), minval=-2.0, maxval=5.0),
            gc.random.bernoulli(k, 0.3, (7,)), gc.random.randint(k, (6,), -3, 9),
            gc.random.categorical(k, np.log(np.array([[0.2, 0.3, 0.5]] * 4, np.float32))),
            gc.random.permutation(k, 9), gc.random.permutation(k, np.arange(12.0).reshape(3, 4)),
            gc.random.split(k, 3), gc.random.fold_in(k, 11), gc.random.gumbel(k, (2,)))


def test_eager_and_compiled_draws_are_bitwise_equal():
    eager = [arr(x) for x in _all_draws(KEY)]
    compiled = gc.compile(_all_draws)(KEY)
    for e, c in zip(eager, compiled):
        assert e.dtype == c.dtype and e.shape == c.shape
        np.testing.assert_array_equal(e, c)
    # the key from a traced seed is the concrete seed's
    np.testing.assert_array_equal(gc.compile(gc.random.key)(np.int64(2**33 + 9)),
                                  gc.random.key(2**33 + 9))


def test_uniform_and_normal_statistics():
    n = 100_000
    u = arr(gc.random.uniform(KEY, (n,)))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 0.003
    w = arr(gc.random.uniform(KEY, (n,), "float64", minval=2.0, maxval=6.0))
    assert w.dtype == np.float64 and 2.0 <= w.min() and w.max() < 6.0
    assert abs(w.mean() - 4.0) < 5 * 4 * math.sqrt(1 / 12 / n)
    z = arr(gc.random.normal(gc.random.split(KEY)[1], (n,), "float64"))
    assert abs(z.mean()) < 5 / math.sqrt(n) and abs(z.std() - 1.0) < 0.01
    # Kolmogorov-Smirnov distance to the normal CDF; its 0.1% critical value is 1.95/sqrt(n)
    xs = np.sort(z)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(xs / math.sqrt(2)))
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.95 / math.sqrt(n)


def test_half_precision_uniform_stays_below_one():
    for dtype in ("float16", "bfloat16"):
        u = arr(gc.random.uniform(KEY, (20_000,), dtype))
        assert u.dtype == as_dtype(dtype)
        assert float(u.astype(np.float32).max()) < 1.0


def test_half_precision_uniform_gives_each_value_its_share():
    """A half-precision draw is the float32 draw rounded down to the dtype, so each value v
    comes with the probability of [v, next v), as on torch's and JAX's grids: rounded to
    nearest, the top value below 1 came 1.5 times as often and a bernoulli(p) in float16 fell
    short of p by half a step."""
    n = 400_000
    for dtype, top in (("bfloat16", 2.0**-8), ("float16", 2.0**-11)):
        u = arr(gc.random.uniform(KEY, (n,), dtype)).astype(np.float64)
        # the three values below 1 are each one step wide (they were 1, 1 and 1.5 steps)
        for value in (1 - top, 1 - 2 * top, 1 - 3 * top):
            share = np.mean(u == value)
            assert abs(share - top) < 5 * math.sqrt(top / n), (dtype, value, share)
    p = np.float16(0.999)  # 0.99902: two float16 steps below 1 draw False
    b = arr(gc.random.bernoulli(KEY, gc.cast(gc.tensor(np.float32(p)), "float16"), (n,)))
    assert abs(b.mean() - float(p)) < 5 * math.sqrt(float(p) * (1 - float(p)) / n)


def test_uniform_stays_below_maxval_after_rounding():
    """u (maxval - minval) + minval rounded to the dtype could be maxval: bfloat16 draws in
    [1, 2) were 2.0 one time in 256, float32 ones in [100, 101) 101.0 four times in a
    million. Numbers and arrays as bounds, eager and compiled alike; and as JAX, minval
    where maxval <= minval."""
    n = 1_000_000
    for dtype, lo, hi in (("bfloat16", 1.0, 2.0), ("float16", 1.0, 2.0),
                          ("float32", 100.0, 101.0), ("float32", 1e6, 1e6 + 1)):
        x = arr(gc.random.uniform(KEY, (n,), dtype, lo, hi)).astype(np.float64)
        assert lo <= x.min() and x.max() < hi, (dtype, lo, hi, x.max())
    # array bounds: the value below each maxval is computed with ops, so a traced one too
    rng = np.random.default_rng(1)
    lo = rng.normal(size=4000).astype(np.float32)
    hi = (lo + rng.uniform(0.01, 3.0, 4000)).astype(np.float32)
    draw = lambda k, a, b: gc.random.uniform(k, (50, 4000), "bfloat16", a, b)
    eager = arr(draw(KEY, lo, hi)).astype(np.float32)
    np.testing.assert_array_equal(arr(gc.compile(draw)(KEY, lo, hi)).astype(np.float32), eager)
    lo_b, hi_b = (np.asarray(gc.cast(gc.tensor(v), "bfloat16").data).astype(np.float32)
                  for v in (lo, hi))
    assert (eager >= lo_b).all() and (eager < hi_b).all()
    # the top value is the one just below maxval (bfloat16 [1, 2): 2 - 1/128)
    top = arr(gc.random.uniform(KEY, (n,), "bfloat16", 1.0, 2.0)).astype(np.float64).max()
    assert top == 2.0 - 2.0**-7
    np.testing.assert_array_equal(arr(gc.random.uniform(KEY, (3,), minval=3.0, maxval=2.0)), 3.0)
    np.testing.assert_array_equal(
        arr(gc.random.uniform(KEY, (3,), minval=np.float32([3, 1, 1]),
                              maxval=np.float32([2, 1, 5])))[:2], [3.0, 1.0])


def test_uniform_with_a_numpy_float64_maxval_keeps_float64s_precision():
    """Review r1: a float64 draw's np.float64 maxval (a numpy scalar, left as it is by the
    cast to the draw's dtype) had the value below it computed as a weak float32 scalar:
    maxval np.float64(1e-100) drew only 0, 1e100 only NaN, and 1 + 1e-9 only 1.0."""
    n = 10_000
    for lo, hi in ((0.0, 1e-100), (0.0, 1e100), (1.0, 1 + 1e-9), (-2.0, 1.3)):
        for minval, maxval in ((lo, np.float64(hi)), (np.float64(lo), np.float64(hi))):
            x = arr(gc.random.uniform(KEY, (n,), "float64", minval, maxval))
            want = arr(gc.random.uniform(KEY, (n,), "float64", lo, hi))
            np.testing.assert_array_equal(x, want)
            assert lo <= x.min() and x.max() < hi and x.max() > lo + 0.99 * (hi - lo), (lo, hi)


def test_bernoulli_rate_and_p_tensor():
    n = 100_000
    b = arr(gc.random.bernoulli(KEY, 0.3, (n,)))
    assert b.dtype == np.bool_ and abs(b.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)
    p = np.array([0.0, 1.0, 0.5], np.float32)
    per = arr(gc.random.bernoulli(KEY, p))
    assert per.shape == (3,) and not per[0] and per[1]


def test_randint_range_and_coverage():
    r = arr(gc.random.randint(KEY, (60_000,), -3, 9))
    assert r.dtype == np.int64 and r.min() == -3 and r.max() == 8
    counts = np.bincount(r + 3, minlength=12)
    assert np.all(np.abs(counts - 5000) < 5 * math.sqrt(5000))
    assert arr(gc.random.randint(KEY, (4,), 0, 2, "int32")).dtype == np.int32


def test_categorical_frequencies_follow_softmax_of_logits():
    logits = np.array([1.0, -0.5, 0.0, 2.0], np.float32)
    n = 40_000
    probs = np.exp(logits) / np.exp(logits).sum()
    draws = arr(gc.random.categorical(KEY, np.broadcast_to(logits, (n, 4)).copy()))
    assert draws.shape == (n,) and draws.dtype == np.int64
    freq = np.bincount(draws, minlength=4) / n
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n))
    # axis=0 draws along the first axis, one index per column
    cols = arr(gc.random.categorical(KEY, np.zeros((3, 5), np.float32), axis=0))
    assert cols.shape == (5,) and cols.max() < 3


def test_half_precision_gumbel_and_categorical_keep_small_probabilities():
    """From u on bfloat16's grid, the Gumbel draws stopped at 5.5 (the 0.4% of Gumbel's mass
    beyond was lost), and categorical's Gumbel-max on bfloat16 logits drew a category of
    probability 1e-3 one time in 9000 (1e-5: never); float16 alike at 1e-5. Now the noise is
    drawn in float32 and half logits compared in float32, choice's p too."""
    n = 400_000
    tail = 1 - math.exp(-math.exp(-6.0))  # P(G > 6)
    for dtype in ("float16", "bfloat16"):
        g = arr(gc.random.gumbel(KEY, (n,), dtype))
        assert g.dtype == as_dtype(dtype)
        share = np.mean(g.astype(np.float64) > 6.0)
        assert abs(share - tail) < 5 * math.sqrt(tail / n), (dtype, share)
        for prob in (1e-3, 1e-5):
            p = np.array([prob, 1 - prob], np.float32)
            half_p = gc.cast(gc.tensor(p), dtype)
            for draws in (gc.random.categorical(KEY, gc.log(half_p), shape=(n,)),
                          gc.random.choice(KEY, 2, (n,), p=half_p)):
                share = np.mean(arr(draws) == 0)
                want = float(np.asarray(half_p.data[0]).astype(np.float64))
                assert abs(share - want) < 5 * math.sqrt(want / n) + 1e-5, (dtype, prob, share)


def test_permutation_is_a_permutation():
    p = arr(gc.random.permutation(KEY, 50))
    assert sorted(p.tolist()) == list(range(50)) and p.tolist() != list(range(50))
    x = np.arange(12.0).reshape(3, 4)
    cols = arr(gc.random.permutation(KEY, x, axis=1))
    np.testing.assert_array_equal(np.sort(cols, axis=1), x)
    np.testing.assert_array_equal(cols[:, 0] - cols[:, 0].min(), [0, 4, 8])


def test_vmap_over_keys_equals_a_loop_over_keys():
    keys = arr(gc.random.split(KEY, 5))
    draw = lambda k: gc.random.normal(k, (3,)) + gc.random.uniform(k, ())
    batched = arr(gc.vmap(draw)(keys))
    looped = np.stack([arr(draw(k)) for k in keys])
    np.testing.assert_array_equal(batched, looped)
    assert len({tuple(row) for row in batched}) == 5
    np.testing.assert_array_equal(gc.compile(gc.vmap(draw))(keys), looped)
    # one op draws for the whole batch of keys, not one op per example
    graph = gc.trace(gc.vmap(draw), gc.spec((5, 2), "int64"))
    assert [n.op for n in graph.nodes].count("random_normal") == 1
    # a batch of data folded into one key, and a key and a datum per example
    folded = arr(gc.vmap(lambda i: gc.random.fold_in(KEY, i))(np.arange(4)))
    np.testing.assert_array_equal(folded, [arr(gc.random.fold_in(KEY, i)) for i in range(4)])
    pairs = arr(gc.vmap(gc.random.fold_in)(keys, np.arange(5)))
    np.testing.assert_array_equal(pairs, [arr(gc.random.fold_in(k, i)) for i, k in enumerate(keys)])
    np.testing.assert_array_equal(gc.vmap(gc.random.key)(np.array([3, -1, 2**40])),
                                  [gc.random.key(3), gc.random.key(-1), gc.random.key(2**40)])


def test_nested_vmap_over_a_grid_of_keys_equals_a_loop():
    keys = arr(gc.random.split(KEY, 6)).reshape(2, 3, 2)

    def draws(k):
        return (gc.random.uniform(k, (2,), "bfloat16"), gc.random.permutation(k, 4),
                gc.random.split(k)[1], gc.random.randint(k, (), 0, 3))
    grid = gc.vmap(gc.vmap(draws))
    for results in (grid(keys), gc.compile(grid)(keys)):
        for i in range(2):
            for j in range(3):
                for got, want in zip(results, draws(keys[i, j])):
                    np.testing.assert_array_equal(arr(got)[i, j], arr(want))


def test_scan_splitting_the_key_every_step():
    def step(key, _):
        key, sub = gc.random.split(key)
        return key, gc.random.normal(sub, (2,))

    def run(key):
        return gc.scan(step, key, None, length=4)

    final, ys = gc.compile(run)(KEY)
    key, expected = KEY, []
    for _ in range(4):
        key, sub = (arr(k) for k in gc.random.split(key))
        expected.append(arr(gc.random.normal(sub, (2,))))
    np.testing.assert_array_equal(ys, np.stack(expected))
    np.testing.assert_array_equal(final, key)
    assert len({tuple(y) for y in ys}) == 4
    eager_final, eager_ys = run(KEY)
    np.testing.assert_array_equal(arr(eager_ys), ys)


def test_grad_through_reparameterised_normal_matches_finite_differences():
    def loss(mu, sigma, key):
        x = gc.random.normal(key, (64,), "float64") * sigma + mu
        return gc.sum(gc.tanh(x) ** 2.0)

    mu, sigma = np.float64(0.3), np.float64(1.7)
    g_mu, g_sigma = gc.grad(loss, argnums=(0, 1))(mu, sigma, KEY)
    compiled = gc.compile(gc.grad(loss, argnums=(0, 1)))(mu, sigma, KEY)
    f = lambda m, s: float(arr(loss(m, s, KEY)))
    eps = 1e-6
    fd_mu = (f(mu + eps, sigma) - f(mu - eps, sigma)) / (2 * eps)
    fd_sigma = (f(mu, sigma + eps) - f(mu, sigma - eps)) / (2 * eps)
    np.testing.assert_allclose([float(arr(g_mu)), float(arr(g_sigma))], [fd_mu, fd_sigma],
                               rtol=1e-6)
    np.testing.assert_allclose([float(c) for c in compiled], [fd_mu, fd_sigma], rtol=1e-6)
    # uniform's bounds get gradients too: d/dmax sum(u * (max - min) + min) = sum(u)
    u = arr(gc.random.uniform(KEY, (8,), "float64"))
    g_max = gc.grad(lambda hi: gc.sum(gc.random.uniform(KEY, (8,), "float64", 0.0, hi)))(
        np.float64(2.0))
    np.testing.assert_allclose(float(arr(g_max)), u.sum(), rtol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: gc.random.uniform(np.zeros(3, np.int64)), "a key is an integer array of shape (2,)"),
    (lambda: gc.random.normal(np.zeros(2, np.float32)), "got a float32 array"),
    (lambda: gc.random.uniform(KEY, (2.0, 3)), "shape must be a tuple of non-negative"),
    (lambda: gc.random.normal(KEY, 2.5), "shape must be a tuple"),
    (lambda: gc.random.randint(KEY, (3,), 5, 5), "maxval 5 must be greater than minval 5"),
    (lambda: gc.random.randint(KEY, (3,), 0, 2.5), "minval and maxval must be integers"),
    (lambda: gc.random.split(KEY, -1), "num must be a non-negative integer"),
    (lambda: gc.random.fold_in(KEY, 1.5), "data must be an integer scalar"),
    (lambda: gc.random.key(1.5), "the seed must be an integer"),
    (lambda: gc.random.uniform(KEY, (2,), "int32"), "dtype must be floating point"),
])
def test_bad_input_is_one_error_at_the_users_line(call, message):
    assert_one_line_error(call, message, "test_random.py")


UNHELD = "dtype int8 is not supported (supported: float32, float64, float16, bfloat16, int32, "


@pytest.mark.parametrize("call, message", [
    (lambda: gc.random.randint(KEY, (3,), 0, 5, dtype="int8"),
     "gc.random.randint: dtype='int8': " + UNHELD),
    (lambda: gc.random.normal(KEY, (3,), dtype=np.int8), "gc.random.normal: dtype=<class "),
    (lambda: gc.random.uniform(KEY, (3,), "float128"), "gc.random.uniform: dtype='float128': "
     "dtype float128 is not supported"),
    (lambda: gc.random.gumbel(KEY, (3,), dtype="foo"), "gc.random.gumbel: dtype='foo': "
     "unknown dtype 'foo'"),
])
def test_a_dtype_the_ir_lacks_names_the_function_and_dtype(call, message):
    """gc.random's dtype= of a dtype graphc lacks said only as_dtype's 'dtype int8 is not
    supported ...; cast it first (x.astype(np.int32))', naming neither the function nor
    dtype= and telling to cast an array that was never given."""
    assert_one_line_error(call, message, "test_random.py")
    with pytest.raises(gc.GraphcError) as info:
        call()
    assert "cast it first" not in str(info.value)


def test_a_traced_key_of_the_wrong_shape_is_refused_while_tracing():
    with pytest.raises(gc.GraphcError, match="a key is an integer array of shape"):
        gc.compile(lambda k: gc.random.normal(k, (2,)))(np.zeros(3, np.int64))


def test_a_symbolic_shape_draws_what_the_bound_shape_draws():
    f = gc.compile(lambda x, k: x + gc.random.normal(k, x.shape),
                   polymorphic_shapes=(("b", "_"), None))
    for rows in (2, 5):
        np.testing.assert_array_equal(f(np.zeros((rows, 3), np.float32), KEY),
                                      arr(gc.random.normal(KEY, (rows, 3))))


def test_fori_loop_folding_in_the_traced_counter_equals_the_python_loop():
    def total(key):
        body = lambda i, acc: acc + gc.random.normal(gc.random.fold_in(key, i), (2,))
        return gc.fori_loop(0, 4, body, gc.zeros((2,)))
    want = sum(arr(gc.random.normal(gc.random.fold_in(KEY, i), (2,))) for i in range(4))
    np.testing.assert_allclose(arr(total(KEY)), want, rtol=1e-6)
    np.testing.assert_allclose(gc.compile(total)(KEY), want, rtol=1e-6)


def test_a_raw_uint32_key_draws_as_its_int64_words_compiled_and_under_vmap():
    # JAX's jax.random.PRNGKey is uint32[2]: it drew eagerly only; compile and vmap refused
    # it ("dtype uint32 is not supported")
    raw = np.array([2**32 - 1, 7], np.uint32)  # a word above int32's range
    wide = raw.astype(np.int64)
    eager = [arr(x) for x in _all_draws(wide)]
    for got, want in zip(gc.compile(_all_draws)(raw), eager):
        np.testing.assert_array_equal(got, want)
    raws = np.stack([raw, np.array([3, 2**31], np.uint32)])
    draw = lambda k: (gc.random.normal(k, (3,)), gc.random.split(k)[0])
    for got, want in zip(gc.vmap(draw)(raws), gc.vmap(draw)(raws.astype(np.int64))):
        np.testing.assert_array_equal(arr(got), arr(want))
    np.testing.assert_array_equal(arr(gc.compile(gc.vmap(draw))(raws)[0]),
                                  arr(gc.vmap(draw)(raws)[0]))
    # a key carried through a compiled scan, and the key returned, as int64 words
    run = gc.compile(lambda k: gc.scan(lambda c, _: (gc.random.split(c)[0], c), k, None,
                                       length=2))
    final, seen = run(raw)
    np.testing.assert_array_equal(seen[0], wide)
    np.testing.assert_array_equal(final, run(wide)[0])
    # uint64, which no IR dtype holds, stays refused, naming the cast to make
    with pytest.raises(gc.GraphcError, match="dtype uint64 is not supported"):
        gc.compile(lambda x: x * 2)(np.zeros(3, np.uint64))


def test_traced_fold_in_data_agrees_with_eager_and_refuses_what_eager_refuses():
    fold = gc.compile(lambda k, i: gc.random.fold_in(k, i))
    for data in (0, 2**31, 2**32 - 1, -1, -2**31):
        np.testing.assert_array_equal(fold(KEY, np.int64(data)), gc.random.fold_in(KEY, data))
    # traced data of 2**32 folded in as 0 where the concrete 2**32 is refused
    for bad in (2**32, -2**31 - 1, 2**40):
        with pytest.raises(gc.GraphcError, match=f"data {bad} does not fit in 32 bits"):
            fold(KEY, np.int64(bad))
        with pytest.raises(gc.GraphcError, match=f"data {bad} does not fit in 32 bits"):
            gc.vmap(lambda i: gc.random.fold_in(KEY, i))(np.array([1, bad]))
        with pytest.raises(gc.GraphcError, match=f"data {bad} does not fit in 32 bits"):
            gc.random.fold_in(KEY, gc.tensor(np.int64(bad)))


def test_randint_takes_array_and_traced_bounds_as_jax():
    # bounds had to be Python ints ("minval and maxval must be integers")
    lo, hi = np.array([0, -5, 10]), np.array([2, 5, 11])
    r = arr(gc.random.randint(KEY, (30_000, 3), lo, hi))
    assert r.shape == (30_000, 3) and r.dtype == np.int64
    for col in range(3):
        counts = np.bincount(r[:, col] - lo[col])
        assert len(counts) == hi[col] - lo[col]  # maxval exclusive, every value drawn
        expected = 30_000 / len(counts)
        assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected))
    # a bound broadcasting over rows, and bounds of one element draw as Python ints do
    rows = arr(gc.random.randint(KEY, (4, 1000), np.array([[0], [10], [20], [30]]), 40))
    assert all(rows[i].min() >= 10 * i and rows[i].max() == 39 for i in range(4))
    np.testing.assert_array_equal(gc.random.randint(KEY, (6,), np.array([-3]), np.array([9])),
                                  gc.random.randint(KEY, (6,), -3, 9))
    # as JAX: where maxval <= minval the draw is minval; bounds clip to the dtype's range
    np.testing.assert_array_equal(
        gc.random.randint(KEY, (3,), np.array([3, 4, -1]), np.array([3, 1, 0])), [3, 4, -1])
    top = 2**31 - 1
    edge = arr(gc.random.randint(KEY, (200,), np.array([top - 1]), np.array([2**40]), "int32"))
    assert edge.dtype == np.int32 and set(edge.tolist()) == {top - 1, top}
    low = arr(gc.random.randint(KEY, (50,), np.array([-2**40]), np.array([-2**31 + 1]), "int32"))
    assert set(low.tolist()) == {-2**31}
    # traced bounds draw the eager numbers, compiled and under vmap (a bound per example)
    draw = lambda k, lo, hi: gc.random.randint(k, (500, 3), lo, hi)
    np.testing.assert_array_equal(gc.compile(draw)(KEY, lo, hi), arr(draw(KEY, lo, hi)))
    his = np.array([[1, 2, 3], [7, 8, 9]])
    want = np.stack([arr(draw(KEY, lo, h)) for h in his])
    np.testing.assert_array_equal(arr(gc.vmap(draw, (None, None, 0))(KEY, lo, his)), want)
    np.testing.assert_array_equal(gc.compile(gc.vmap(draw, (None, None, 0)))(KEY, lo, his), want)
    keys = arr(gc.random.split(KEY, 3))
    np.testing.assert_array_equal(arr(gc.vmap(draw, (0, None, None))(keys, lo, hi)),
                                  [arr(draw(k, lo, hi)) for k in keys])
    # an index below a traced count, in a loop
    counts = gc.compile(lambda k: gc.fori_loop(
        0, 5, lambda i, acc: acc + gc.random.randint(gc.random.fold_in(k, i), (), 0, i + 1),
        np.int64(0)))(KEY)
    assert int(counts) == sum(int(arr(gc.random.randint(gc.random.fold_in(KEY, i), (), 0,
                                                         np.array(i + 1)))) for i in range(5))


@pytest.mark.parametrize("call, message", [
    (lambda: gc.random.randint(KEY, (3,), np.zeros(3), 4),
     "minval and maxval must be integers or integer arrays, got minval float64"),
    (lambda: gc.random.randint(KEY, (3,), 0, np.full(4, 5)),
     "maxval of shape (4,) does not broadcast to the shape (3,) drawn"),
    (lambda: gc.random.randint(KEY, (3,), 2**70, np.full(3, 5)),
     "minval 1180591620717411303424 does not fit in 64 bits"),
])
def test_bad_randint_bounds_are_one_error_line(call, message):
    assert_one_line_error(call, message, "test_random.py")


def test_categorical_shape_draws_many_samples_per_distribution_as_jax():
    # categorical had no shape= (TypeError: unexpected keyword argument 'shape')
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], np.float32))
    n = 20_000
    draws = arr(gc.random.categorical(KEY, logits, shape=(n, 2)))
    assert draws.shape == (n, 2) and draws.dtype == np.int64
    for row in range(2):
        probs = np.exp(logits[row])
        freq = np.bincount(draws[:, row], minlength=3) / n
        assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n))
    # the batch shape (2,) broadcasts; along axis 0 the batch is the columns
    cols = arr(gc.random.categorical(KEY, logits.T.copy(), axis=0, shape=(n, 2)))
    assert cols.shape == (n, 2)
    assert abs((cols[:, 0] == 2).mean() - 0.7) < 5 * math.sqrt(0.7 * 0.3 / n)
    one = arr(gc.random.categorical(KEY, logits[:1], shape=(4, 5)))  # batch (1,) -> (4, 5)
    assert one.shape == (4, 5) and len(set(one.ravel().tolist())) > 1
    # shape equal to the batch shape draws what shape=None draws
    np.testing.assert_array_equal(gc.random.categorical(KEY, logits, shape=(2,)),
                                  gc.random.categorical(KEY, logits))
    draw = lambda k: gc.random.categorical(k, logits, shape=(7, 2))
    np.testing.assert_array_equal(gc.compile(draw)(KEY), arr(draw(KEY)))
    keys = arr(gc.random.split(KEY, 3))
    np.testing.assert_array_equal(arr(gc.vmap(draw)(keys)), [arr(draw(k)) for k in keys])
    assert_one_line_error(lambda: gc.random.categorical(KEY, logits, shape=(3,)),
                          "the batch shape (2,) of logits (axis 1 removed) does not broadcast "
                          "to shape (3,)", "test_random.py")


def test_a_batch_of_keys_seeded_together_draws_what_each_key_draws_alone():
    # 16 keys or more are seeded together, in numpy (ir/ops/random._pcg64_seeds), where one
    # key seeds np.random.default_rng itself: every draw must be the same either way
    from ir.ops.random import _SEEDED_TOGETHER_FROM, _pcg64_seeds
    rows = np.random.default_rng(3).integers(0, 2**32, size=(64, 8)).astype(np.uint32)
    rows[0], rows[1] = 0, 2**32 - 1
    for words in range(1, 9):  # pools of 4 words: entropy shorter, as long and longer
        seeds = _pcg64_seeds(rows[:, :words])
        for row, (state, inc) in zip(rows[:, :words], seeds):
            want = np.random.default_rng(row.tolist()).bit_generator.state["state"]
            assert want == {"state": state, "inc": inc}
    keys = np.concatenate([arr(gc.random.split(KEY, 30)), [[2**32 - 1, 0], [-1, -2**31]]])
    assert len(keys) >= _SEEDED_TOGETHER_FROM

    def draws(k):
        return (gc.random.normal(k, (2, 1, 3)), gc.random.uniform(k, (5,), "float64"),
                gc.random.split(k, 3), gc.random.fold_in(k, 2**32 - 1),
                gc.random.randint(k, (4,), np.array([0, -9, 5, 1]), 10),
                gc.random.permutation(k, 6), gc.random.bernoulli(k, 0.5, (3,)))
    alone = [np.stack([arr(x) for x in column]) for column in zip(*map(draws, keys))]
    for batched in (gc.vmap(draws)(keys), gc.compile(gc.vmap(draws))(keys)):
        for got, want in zip(batched, alone):
            np.testing.assert_array_equal(arr(got), want)
    data = np.arange(40) - 20  # fold_in's data is seeded per key too
    np.testing.assert_array_equal(arr(gc.vmap(lambda i: gc.random.fold_in(KEY, i))(data)),
                                  [arr(gc.random.fold_in(KEY, int(i))) for i in data])


def test_a_numpy_that_seeds_otherwise_falls_back_to_default_rng_per_key(monkeypatch):
    """The batch seeding copies numpy's; were numpy to change its seeding, the copy must not
    be used (checked once per process), so that a batch of keys still draws what each key
    draws alone."""
    from ir.ops import random as random_ops
    assert random_ops._seeding_matches_numpy()
    keys = gc.random.split(gc.random.key(3), 20)
    expected = np.asarray(gc.vmap(lambda k: gc.random.normal(k, (2,)))(keys))
    monkeypatch.setattr(random_ops, "_pcg64_seeds", lambda entropy: [(1, 1)] * len(entropy))
    monkeypatch.setattr(random_ops, "_SEEDING_CHECKED", [])
    assert not random_ops._seeding_matches_numpy()
    np.testing.assert_array_equal(gc.vmap(lambda k: gc.random.normal(k, (2,)))(keys), expected)


# ---- the rest of jax.random's distributions ---------------------------------------------------
def _ks_distance(x, cdf):
    """Kolmogorov-Smirnov distance of the sample x to the distribution `cdf`."""
    xs = np.sort(np.asarray(x, np.float64))
    n = len(xs)
    c = cdf(xs)
    return max(np.max(np.arange(1, n + 1) / n - c), np.max(c - np.arange(n) / n))


def _distributions():
    from scipy import stats
    spd = np.array([[4.0, 1.0], [1.0, 2.0]])
    return [
        ("truncated_normal", lambda k, d, n: gc.random.truncated_normal(k, -1.0, 2.0, (n,), d),
         stats.truncnorm(-1, 2).cdf),
        ("truncated_normal_tail",
         lambda k, d, n: gc.random.truncated_normal(k, 2.0, np.inf, (n,), d),
         stats.truncnorm(2, np.inf).cdf),
        ("exponential", lambda k, d, n: gc.random.exponential(k, (n,), d), stats.expon.cdf),
        ("laplace", lambda k, d, n: gc.random.laplace(k, (n,), d), stats.laplace.cdf),
        ("logistic", lambda k, d, n: gc.random.logistic(k, (n,), d), stats.logistic.cdf),
        ("cauchy", lambda k, d, n: gc.random.cauchy(k, (n,), d), stats.cauchy.cdf),
        ("gamma_small", lambda k, d, n: gc.random.gamma(k, 0.3, (n,), d), stats.gamma(0.3).cdf),
        ("gamma", lambda k, d, n: gc.random.gamma(k, 5.0, (n,), d), stats.gamma(5.0).cdf),
        ("gamma_large", lambda k, d, n: gc.random.gamma(k, 1e4, (n,), d), stats.gamma(1e4).cdf),
        ("loggamma", lambda k, d, n: gc.random.loggamma(k, 0.02, (n,), d),
         lambda v: stats.gamma(0.02).cdf(np.exp(v))),
        ("beta", lambda k, d, n: gc.random.beta(k, 0.5, 2.0, (n,), d), stats.beta(0.5, 2).cdf),
        ("dirichlet", lambda k, d, n: gc.random.dirichlet(k, np.array([0.5, 2.0, 3.0]), (n,),
                                                          d)[:, 0], stats.beta(0.5, 5).cdf),
        ("chisquare", lambda k, d, n: gc.random.chisquare(k, 3.0, (n,), d), stats.chi2(3).cdf),
        ("t", lambda k, d, n: gc.random.t(k, 3.0, (n,), d), stats.t(3).cdf),
        ("multivariate_normal", lambda k, d, n: gc.random.multivariate_normal(
            k, np.array([1.0, 0.0]), spd, (n,), d)[:, 0], stats.norm(1, 2).cdf),
        ("multivariate_normal_eigh", lambda k, d, n: gc.random.multivariate_normal(
            k, np.array([1.0, 0.0]), spd, (n,), d, method="eigh")[:, 1],
         stats.norm(0, math.sqrt(2)).cdf),
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, draw, cdf", _distributions(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_more_distributions_follow_scipy_stats(name, draw, cdf, dtype):
    """KS distance to scipy.stats' CDF below its 0.1% critical value, for 40000 draws."""
    n = 40_000
    x = arr(draw(gc.random.key(11), dtype, n))
    assert x.dtype == np.dtype(dtype)
    assert _ks_distance(x, cdf) < 1.95 / math.sqrt(n), name


@pytest.mark.parametrize("name, draw, cdf", _distributions(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_half_precision_draws_are_the_wide_draws_rounded(name, draw, cdf):
    """A float16 or bfloat16 draw is computed in float32 (gamma's family in float64) and
    rounded once, so its distribution is the wide one's on the half grid (Cauchy's far tail
    kept finite); truncated_normal's is then clipped into the open interval in the dtype."""
    wide = "float64" if name in ("gamma_small", "gamma", "gamma_large", "loggamma", "beta",
                                 "dirichlet", "chisquare", "t") else "float32"
    for dtype in ("float16", "bfloat16"):
        half = arr(draw(KEY, dtype, 5000))
        assert half.dtype == as_dtype(dtype) and np.isfinite(half.astype(np.float32)).all()
        rounded = arr(draw(KEY, wide, 5000))
        rounded = np.clip(rounded, -65504.0, 65504.0) if dtype == "float16" else rounded
        rounded = rounded.astype(as_dtype(dtype))
        if name.startswith("truncated_normal"):  # clipped into (lower, upper) in the dtype
            bounds = (-1, 2) if name == "truncated_normal" else (2, np.inf)
            lower, upper = (as_dtype(dtype).type(v) for v in bounds)
            rounded = np.clip(rounded, np.nextafter(lower, upper), np.nextafter(upper, lower))
        np.testing.assert_array_equal(half, rounded, err_msg=f"{name} {dtype}")


def test_counts_rademacher_and_geometric_moments():
    n = 100_000
    for lam in (0.5, 4.0, 1000.0):
        x = arr(gc.random.poisson(KEY, lam, (n,)))
        assert x.dtype == np.int64
        assert abs(x.mean() - lam) < 5 * math.sqrt(lam / n)
        assert abs(x.var() / lam - 1) < 5 * math.sqrt(2 / n) + 3 / (lam * n) ** 0.5
    x = arr(gc.random.poisson(KEY, 3.0, (n,), "int32"))
    from scipy import stats
    freq = np.bincount(x, minlength=20)[:12] / n
    np.testing.assert_allclose(freq, stats.poisson(3.0).pmf(np.arange(12)), atol=0.005)
    g = arr(gc.random.geometric(KEY, 0.2, (n,)))
    assert g.min() == 1 and abs(g.mean() - 5) < 5 * math.sqrt(20 / n)
    np.testing.assert_allclose(np.bincount(g)[1:6] / n, stats.geom(0.2).pmf(np.arange(1, 6)),
                               atol=0.005)
    r = arr(gc.random.rademacher(KEY, (n,)))
    assert set(np.unique(r)) == {-1, 1} and abs(r.mean()) < 5 / math.sqrt(n)
    assert arr(gc.random.rademacher(KEY, (3,), "float16")).dtype == np.float16


def _more_draws(k, a, lo, cov):
    return (gc.random.truncated_normal(k, lo, lo + 1.5),
            gc.random.truncated_normal(k, -np.inf, np.inf, (3,), "bfloat16"),
            gc.random.exponential(k, (4,)), gc.random.laplace(k, (4,), "float16"),
            gc.random.logistic(k, (4,), "float64"), gc.random.cauchy(k, (4,)),
            gc.random.rademacher(k, (5,)), gc.random.gamma(k, a),
            gc.random.loggamma(k, a * 1e-3), gc.random.beta(k, a, 2.0),
            gc.random.dirichlet(k, a), gc.random.chisquare(k, a),
            gc.random.t(k, a, None, "float64"), gc.random.poisson(k, a * 3),
            gc.random.geometric(k, a / 4), gc.random.multivariate_normal(k, lo, cov, (2, 3)),
            gc.random.permutation(k, gc.reshape(a, (1, 3)) * np.ones((4, 1), np.float32), 1,
                                  independent=True))


def test_more_distributions_eager_compiled_and_vmapped_draw_alike():
    """Bit for bit: eagerly, compiled (the parameters traced), vmapped over keys (20 keys:
    the generators seeded together) and over parameters with one key."""
    a = np.array([0.5, 1.0, 3.0], np.float32)
    lo = np.array([-1.0, 0.0, 2.0], np.float32)
    cov = np.array([[2.0, 0.3, 0], [0.3, 1.0, 0.1], [0, 0.1, 0.5]], np.float32)
    eager = [arr(x) for x in _more_draws(KEY, a, lo, cov)]
    for e, c in zip(eager, gc.compile(_more_draws)(KEY, a, lo, cov)):
        assert e.dtype == arr(c).dtype and e.shape == arr(c).shape
        np.testing.assert_array_equal(e, arr(c))
    keys = arr(gc.random.split(KEY, 20))
    per_key = lambda k: _more_draws(k, a, lo, cov)
    for results in (gc.vmap(per_key)(keys), gc.compile(gc.vmap(per_key))(keys)):
        for j in (0, 7, 19):
            for got, want in zip(results, per_key(keys[j])):
                np.testing.assert_array_equal(arr(got)[j], arr(want))
    rng = np.random.default_rng(0)
    a_rows = (np.abs(rng.normal(size=(4, 3))) + 0.1).astype(np.float32)
    lo_rows = rng.normal(size=(4, 3)).astype(np.float32)
    batched = gc.vmap(lambda a, lo: _more_draws(KEY, a, lo, cov))(a_rows, lo_rows)
    for j in range(4):
        for got, want in zip(batched, _more_draws(KEY, a_rows[j], lo_rows[j], cov)):
            np.testing.assert_array_equal(arr(got)[j], arr(want))
    # independent permutations: each row of the 4 a permutation of a, and not all alike
    rows = eager[-1]
    assert all(sorted(r) == sorted(a) for r in rows) and len({tuple(r) for r in rows}) > 1


@pytest.mark.parametrize("name, draw, p", [
    ("gamma", lambda p, k: gc.random.gamma(k, p, (6,), "float64"),
     [0.05, 0.7, 3.0, 40.0, 1e-3, 2e3]),
    ("loggamma", lambda p, k: gc.random.loggamma(k, p, (6,), "float64"),
     [0.05, 0.7, 3.0, 40.0, 1e-3, 2e3]),
    ("beta", lambda p, k: gc.random.beta(k, p, p[::-1] + 1.0, (6,), "float64"),
     [0.05, 0.7, 3.0, 40.0, 0.01, 9.0]),
    ("dirichlet", lambda p, k: gc.random.dirichlet(k, p, (), "float64"),
     [0.05, 0.7, 3.0, 40.0, 0.3, 9.0]),
    ("chisquare", lambda p, k: gc.random.chisquare(k, p, (6,), "float64"),
     [0.5, 1.7, 3.0, 40.0, 0.3, 9.0]),
    ("t", lambda p, k: gc.random.t(k, p, (6,), "float64"), [0.5, 1.7, 3.0, 40.0, 0.3, 9.0]),
    ("truncated_normal_lower", lambda p, k: gc.random.truncated_normal(k, p, 1.0, None,
                                                                       "float64"),
     [-3.0, -1.0, 0.0, 0.5, -0.2, -1.5]),
    ("truncated_normal_upper", lambda p, k: gc.random.truncated_normal(k, -0.5, p, None,
                                                                       "float64"),
     [3.0, 1.0, 0.0, 0.5, 2.5, -0.2]),
    ("multivariate_normal_mean", lambda p, k: gc.random.multivariate_normal(
        k, p, np.eye(6) * 2, (), "float64"), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
])
def test_reparameterised_gradients_match_finite_differences(name, draw, p):
    """The draws are smooth functions of their parameters for a fixed key (gamma's family by
    inversion of its CDF, so the gradient is JAX's implicit one), in float64: the gradient,
    eager and compiled, against central differences of the draws themselves."""
    p = np.array(p)
    w = np.random.default_rng(0).normal(size=6)
    loss = lambda p: gc.sum(draw(p, gc.random.key(1)) * w)
    g = arr(gc.grad(loss)(p))
    np.testing.assert_array_equal(arr(gc.compile(gc.grad(loss))(p)), g)
    fd = np.empty(6)
    for i in range(6):
        h = 1e-4 * p[i] if 0 < p[i] < 0.1 else 1e-6 * max(1.0, abs(p[i]))
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        fd[i] = (float(arr(loss(up))) - float(arr(loss(down)))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-8)
    assert np.abs(g).max() > 1e-3  # (not a zero gradient agreeing with flat draws)


def test_edge_parameters_as_jax():
    lo_hi = arr(gc.random.truncated_normal(KEY, np.float32([2, 0, 1, -np.inf]),
                                           np.float32([1, 0, np.inf, np.inf])))
    # lower >= upper: the value below upper, as JAX's clip; infinite bounds: finite draws
    np.testing.assert_array_equal(lo_hi[:2], [np.nextafter(np.float32(1), np.float32(0)),
                                              -np.float32(2.0**-149)])
    assert np.isfinite(lo_hi).all() and lo_hi[2] > 1
    # far in a tail erf rounds to 1: every float32 draw is upper's neighbour, as JAX's
    np.testing.assert_array_equal(arr(gc.random.truncated_normal(KEY, 8.0, 9.0, (2,))),
                                  np.nextafter(np.float32(9), np.float32(0)))
    # gamma: a = 0 draws 0, a tiny a 0 or tiny values whose logs loggamma keeps
    np.testing.assert_array_equal(arr(gc.random.gamma(KEY, 0.0, (3,))), 0.0)
    logs = arr(gc.random.loggamma(KEY, 1e-4, (1000,), "float64"))
    assert np.isfinite(logs).all() and np.median(logs) < -1000
    np.testing.assert_array_equal(arr(gc.random.poisson(KEY, 0.0, (3,))), 0)
    # traced parameters are taken as JAX takes them: gamma NaN for a < 0, poisson -1
    np.testing.assert_array_equal(np.isnan(arr(gc.compile(lambda a: gc.random.gamma(KEY, a))(
        np.float32([1, -1, 0])))), [False, True, False])
    np.testing.assert_array_equal(arr(gc.compile(lambda lam: gc.random.poisson(KEY, lam))(
        np.float32([0, -1, np.nan]))), [0, -1, -1])
    np.testing.assert_array_equal(arr(gc.random.geometric(KEY, 1.0, (3,))), 1)
    # a semidefinite cov: eigh and svd draw on its line, cholesky (concrete) is refused and
    # a traced one draws NaN, as JAX's cholesky
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    for method in ("eigh", "svd"):
        x = arr(gc.random.multivariate_normal(KEY, np.zeros(2), singular, (100,), "float64",
                                              method))
        np.testing.assert_allclose(x[:, 0], x[:, 1], atol=1e-6)  # (sqrt of a 0 eigenvalue)
    traced = gc.compile(lambda c: gc.random.multivariate_normal(KEY, np.zeros(2, np.float32), c))
    assert np.isnan(arr(traced(np.float32([[1, 2], [2, 1]])))).all()


@pytest.mark.parametrize("call, message", [
    (lambda: gc.random.gamma(KEY, -1.0, (3,)), "gc.random.gamma: a must be non-negative, got -1"),
    (lambda: gc.random.beta(KEY, 1.0, np.array([1.0, np.nan])),
     "gc.random.beta: b must be non-negative, got nan"),
    (lambda: gc.random.gamma(KEY, "x"), "gc.random.gamma: a must be a number or a real array"),
    (lambda: gc.random.gamma(KEY, np.ones(3), (2,)),
     "gc.random.gamma: a of shape (3,) does not broadcast to the shape (2,) drawn"),
    (lambda: gc.random.beta(KEY, np.ones(3), np.ones(2)),
     "gc.random.beta: the shapes of a (3,) and b (2,) do not broadcast together"),
    (lambda: gc.random.dirichlet(KEY, 1.0), "gc.random.dirichlet: alpha must have at least one"),
    (lambda: gc.random.poisson(KEY, -1.0), "gc.random.poisson: lam must be non-negative"),
    (lambda: gc.random.poisson(KEY, 1e19), "gc.random.poisson: lam must be at most 1e+18"),
    (lambda: gc.random.poisson(KEY, 1.0, dtype="float32"),
     "gc.random.poisson: dtype must be an integer type"),
    (lambda: gc.random.geometric(KEY, 0.0), "gc.random.geometric: p must be in (0, 1], got 0"),
    (lambda: gc.random.chisquare(KEY, 0.0), "gc.random.chisquare: df must be positive"),
    (lambda: gc.random.t(KEY, -2.0), "gc.random.t: df must be positive"),
    (lambda: gc.random.truncated_normal(KEY, np.nan, 1.0),
     "gc.random.truncated_normal: lower must be a number, not NaN"),
    (lambda: gc.random.exponential(KEY, (2,), "int32"),
     "gc.random.exponential: dtype must be floating point"),
    (lambda: gc.random.rademacher(KEY, (2,), "bool"),
     "gc.random.rademacher: dtype must be an integer or floating-point type"),
    (lambda: gc.random.cauchy(np.zeros(3, np.int64)), "gc.random.cauchy: a key is an integer"),
    (lambda: gc.random.multivariate_normal(KEY, np.zeros(2), np.eye(3)),
     "gc.random.multivariate_normal: mean must be (..., n) and cov (..., n, n)"),
    (lambda: gc.random.multivariate_normal(KEY, np.zeros(2), np.eye(2), method="qr"),
     "gc.random.multivariate_normal: method must be 'cholesky', 'eigh' or 'svd'"),
    (lambda: gc.random.multivariate_normal(KEY, np.zeros(2), np.ones((2, 2))),
     "gc.random.multivariate_normal: cov is not positive definite (method='cholesky'; "
     "'eigh' or 'svd' take semidefinite ones)"),
    (lambda: gc.random.permutation(KEY, np.ones(3), independent="yes"),
     "gc.random.permutation: independent must be True or False"),
    # gradients graphc does not give: one line naming the function
    (lambda: gc.grad(lambda c: gc.sum(gc.random.multivariate_normal(
        KEY, np.zeros(2, np.float32), c)))(np.eye(2, dtype=np.float32)),
     "gc.random.multivariate_normal: no gradient with respect to cov (mean's flows)"),
    (lambda: gc.grad(gc.grad(lambda a: gc.sum(gc.random.gamma(KEY, a, (), "float64"))))(
        np.float64(2.0)), "gc.random.gamma (and loggamma, beta, dirichlet, t, chisquare): no "
     "second derivative with respect to a"),
])
def test_bad_distribution_arguments_are_one_error_line(call, message):
    assert_one_line_error(call, message, "test_random.py")


def test_eager_backward_through_cov_is_refused_not_dropped():
    """An op without a gradient rule is a constant to eager backward(): cov's gradient would
    have been silently missing, so its rule refuses in one line."""
    cov = gc.tensor(np.eye(2, dtype=np.float32), requires_grad=True)
    y = gc.sum(gc.random.multivariate_normal(KEY, np.zeros(2, np.float32), cov))
    with pytest.raises(gc.GraphcError, match="no gradient with respect to cov"):
        y.backward()


@pytest.mark.parametrize("draw", [
    lambda x, k: x + gc.random.gamma(k, 2.0, x.shape),
    lambda x, k: gc.random.beta(k, x + 1.0, 2.0),
    lambda x, k: gc.random.poisson(k, x + 1.0),
    lambda x, k: gc.random.truncated_normal(k, x - 1.0, x + 1.0),
    lambda x, k: x + gc.random.laplace(k, x.shape),
    lambda x, k: gc.random.multivariate_normal(k, x, np.eye(3, dtype=np.float32)),
    lambda x, k: gc.random.permutation(k, x, 1, independent=True),
])
def test_more_distributions_under_a_symbolic_dimension_draw_the_bound_shapes_draws(draw):
    f = gc.compile(draw, polymorphic_shapes=(("b", "_"), None))
    for rows in (2, 5):
        x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        np.testing.assert_array_equal(arr(f(x, KEY)), arr(draw(x, KEY)))


def test_counts_past_the_integer_dtype_saturate_as_jax():
    """Review r7: geometric(p=1e-9) in int32 and poisson(lam=3e9) in int32 wrapped through
    numpy's cast to negative counts (INT_MIN); JAX's float-to-int conversion saturates, so a
    count past the dtype's range is its largest value, eager and compiled."""
    for dtype in ("int32", "int64"):
        top = np.iinfo(dtype).max
        p = 1e-9 if dtype == "int32" else 1e-20
        g = arr(gc.random.geometric(KEY, p, (2000,), dtype))
        assert g.min() >= 1 and (g == top).any(), dtype
        traced = arr(gc.compile(lambda p: gc.random.geometric(KEY, p, (50,), dtype))(
            np.float64(p)))
        np.testing.assert_array_equal(traced, arr(gc.random.geometric(KEY, p, (50,), dtype)))
    np.testing.assert_array_equal(arr(gc.random.poisson(KEY, 3e9, (4,), "int32")),
                                  np.iinfo(np.int32).max)
    np.testing.assert_array_equal(arr(gc.compile(lambda lam: gc.random.poisson(
        KEY, lam, (4,), "int32"))(np.float64(1e12))), np.iinfo(np.int32).max)


def test_eigh_takes_a_semidefinite_cov_whose_zero_eigenvalues_round_below_zero():
    """Review r7: a rank-2 5x5 cov B B^T has eigenvalues of about -1e-16 from eigh, so
    method='eigh' (documented to take semidefinite covs) refused 197 of 200 of them as 'not
    positive semidefinite'; rounding errors within n eps |w|max are zero eigenvalues now."""
    for seed in range(20):
        b = np.random.default_rng(seed).normal(size=(5, 2))
        for dtype in ("float64", "float32"):
            cov = (b @ b.T).astype(dtype)
            x = arr(gc.random.multivariate_normal(KEY, np.zeros(5, dtype), cov, (4000,), dtype,
                                                  method="eigh"))
            assert np.isfinite(x).all()
            np.testing.assert_allclose(np.cov(x.T), cov, atol=0.15 * np.abs(cov).max())


def test_eigh_of_a_cov_with_no_rows_draws_empty_rows_as_the_other_methods():
    """Review r8: the tolerance for eigh's zero eigenvalues took the max of no eigenvalues for
    a 0x0 cov (mean of shape (0,)): numpy's 'zero-size array to reduction operation maximum'
    from inside cov_factor, eagerly and compiled, where cholesky and svd (and eigh before)
    draw rows of no elements."""
    for method in ("cholesky", "eigh", "svd"):
        draw = lambda cov: gc.random.multivariate_normal(  # noqa: E731
            KEY, np.zeros(0), cov, (3,), "float64", method=method)
        for got in (draw(np.zeros((0, 0))), gc.compile(draw)(np.zeros((0, 0)))):
            assert arr(got).shape == (3, 0), method
        batch = gc.random.multivariate_normal(KEY, np.zeros(2), np.zeros((0, 2, 2)), (0,),
                                              "float64", method=method)
        assert arr(batch).shape == (0, 2), method
