"""Dropout inside loops (review s19h): every iteration of a scan / fori_loop / while_loop body
draws its own mask, deterministically from the key, compiled as eagerly (where all iterations
had the same mask compiled), and the gradient uses each iteration's mask. Eagerly the same
rng_key draws the same masks on every run (it drew new ones per call)."""
import threading

import numpy as np

import graphc as gc

P = 0.5  # masks are 0 or 1 / (1 - P) = 2


def _np(v):
    return np.asarray(getattr(v, "data", v))


def _scan_masks(xs, key, reverse=False):
    drop = gc.nn.Dropout(P)
    with gc.nn.rng_key(key):
        return gc.scan(lambda c, x: (c, drop(x)), 0.0, xs, reverse=reverse)[1]


def _independent(rows):
    """Masks of different iterations differ and each keeps about 1 - P of the units."""
    rows = np.asarray(rows).reshape(-1, np.asarray(rows).shape[-1])
    assert set(np.unique(rows)) <= {0.0, 2.0}
    assert len({r.tobytes() for r in rows}) == len(rows)
    assert abs((rows > 0).mean() - (1 - P)) < 0.05
    # agreement of two iterations' masks is that of independent coin flips (1/2), not 1
    agree = [(rows[i] == rows[i + 1]).mean() for i in range(len(rows) - 1)]
    assert abs(np.mean(agree) - 0.5) < 0.05


def test_compiled_scan_draws_a_new_mask_every_iteration_as_eager():
    xs = np.ones((40, 64), np.float32)
    key = np.asarray(5, np.int64)
    compiled = _np(gc.compile(_scan_masks)(xs, key))
    _independent(compiled)
    np.testing.assert_array_equal(_np(_scan_masks(xs, key)), compiled)
    # deterministic in the key, and another key draws other masks
    np.testing.assert_array_equal(_np(gc.compile(_scan_masks)(xs, key)), compiled)
    other = _np(gc.compile(_scan_masks)(xs, np.asarray(6, np.int64)))
    assert (other != compiled).mean() > 0.3


def test_a_value_read_from_outside_the_body_gets_a_new_mask_every_iteration():
    drop = gc.nn.Dropout(P)
    w = np.ones(64, np.float32)

    def f(w, key):
        with gc.nn.rng_key(key):
            return gc.scan(lambda c, _: (c, drop(w)), 0.0, None, length=20)[1]

    key = np.asarray(8, np.int64)
    compiled = _np(gc.compile(f)(w, key))
    _independent(compiled)
    np.testing.assert_array_equal(_np(f(w, key)), compiled)
    # and with the plan's own fresh key (no rng_key block)
    _independent(_np(gc.compile(lambda w: gc.scan(lambda c, _: (c, drop(w)), 0.0, None,
                                                  length=20)[1])(w)))


def test_reverse_scan_gives_slice_t_the_mask_of_iteration_t():
    xs = np.ones((8, 64), np.float32)
    key = np.asarray(3, np.int64)
    rev = gc.compile(lambda xs, k: _scan_masks(xs, k, reverse=True))
    compiled = _np(rev(xs, key))
    _independent(compiled)
    np.testing.assert_array_equal(compiled, _np(_scan_masks(xs, key, reverse=True)))
    np.testing.assert_array_equal(compiled, _np(gc.compile(_scan_masks)(xs, key)))


def test_fori_loop_and_while_loop_draw_a_new_mask_every_iteration():
    drop = gc.nn.Dropout(P)
    n, width = 30, 64

    def fori(key):
        with gc.nn.rng_key(key):
            return gc.fori_loop(0, n, lambda i, rows: gc.dynamic_update_slice(
                rows, gc.reshape(drop(gc.ones((width,))), (1, width)), i),
                gc.zeros((n, width)))

    def while_(key):
        def body(c):
            i, rows = c
            row = gc.reshape(drop(gc.ones((width,))), (1, width))
            return i + 1, gc.dynamic_update_slice(rows, row, i)
        with gc.nn.rng_key(key):
            return gc.while_loop(lambda c: c[0] < n, body,
                                 (np.asarray(0, np.int64), gc.zeros((n, width))))[1]

    key = np.asarray(11, np.int64)
    for f in (fori, while_):
        compiled = _np(gc.compile(f)(key))
        _independent(compiled)
        np.testing.assert_array_equal(_np(f(key)), compiled)
    # fori_loop with traced bounds is a while_loop
    traced_bounds = gc.compile(lambda key, hi: _with_key(key, lambda: gc.fori_loop(
        0, hi, lambda i, acc: acc + drop(gc.ones((width,))), gc.zeros((width,)))))
    sums = _np(traced_bounds(key, np.asarray(n, np.int64)))
    # the same mask n times would give sums of 0 or 2n only
    assert np.isin(sums, [0.0, 2.0 * n]).mean() < 0.1
    np.testing.assert_allclose(sums.mean() / (2 * n), 1 - P, atol=0.05)


def _with_key(key, f):
    with gc.nn.rng_key(key):
        return f()


def test_nested_scans_draw_a_new_mask_for_every_pair_of_iterations():
    drop = gc.nn.Dropout(P)

    def f(xs, key):
        with gc.nn.rng_key(key):
            return gc.scan(lambda c, x: (c, gc.scan(lambda c2, x2: (c2, drop(x2)), 0.0, x)[1]),
                           0.0, xs)[1]

    xs = np.ones((6, 5, 64), np.float32)
    key = np.asarray(2, np.int64)
    compiled = _np(gc.compile(f)(xs, key))
    _independent(compiled)
    np.testing.assert_array_equal(_np(f(xs, key)), compiled)


def test_vmap_of_a_scan_with_dropout():
    # an unbatched key: every example has the same masks (as JAX with one key), and they
    # are the unbatched scan's, one per iteration
    xs = np.ones((3, 10, 64), np.float32)
    key = np.asarray(4, np.int64)
    batched = _np(gc.compile(lambda xs, k: gc.vmap(lambda x: _scan_masks(x, k))(xs))(xs, key))
    single = _np(gc.compile(_scan_masks)(xs[0], key))
    _independent(single)
    for b in range(3):
        np.testing.assert_array_equal(batched[b], single)
    np.testing.assert_array_equal(_np(gc.vmap(lambda x: _scan_masks(x, key))(xs)), batched)
    # and a vmap inside a scan body (eagerly, vmap's graph is traced inside the Python loop)
    drop = gc.nn.Dropout(P)

    def f(xs, key):
        with gc.nn.rng_key(key):
            return gc.scan(lambda c, x: (c, gc.vmap(drop)(x)), 0.0, xs)[1]

    compiled = _np(gc.compile(f)(xs, key))
    np.testing.assert_array_equal(_np(f(xs, key)), compiled)
    for t in range(3):  # iteration t's examples share its mask
        np.testing.assert_array_equal(compiled[t], np.broadcast_to(compiled[t, :1], (10, 64)))
    _independent(compiled[:, 0])


def test_gradient_through_a_scan_uses_each_iterations_mask():
    # d/dx sum(drop(x)) is mask / keep_prob: here the forward's y at x = 1
    xs = np.ones((12, 64), np.float32)
    key = np.asarray(9, np.int64)
    ys = _np(gc.compile(_scan_masks)(xs, key))
    _independent(ys)
    dxs = gc.compile(lambda xs, k: gc.grad(lambda x: gc.sum(_scan_masks(x, k)))(xs))
    np.testing.assert_array_equal(_np(dxs(xs, key)), ys)
    rev = gc.compile(lambda xs, k: gc.grad(lambda x: gc.sum(_scan_masks(x, k, True)))(xs))
    np.testing.assert_array_equal(_np(rev(xs, key)), ys)
    # eagerly, through the tape
    x = gc.Tensor(xs, requires_grad=True)
    gc.sum(_scan_masks(x, key)).backward()
    np.testing.assert_array_equal(_np(x.grad), ys)


def test_eager_rng_key_replays_its_masks():
    drop = gc.nn.Dropout(P)
    x = np.ones((200,), np.float32)

    def step(x):
        return drop(x), drop(x)

    with gc.nn.rng_key(7):
        a1, a2 = map(_np, step(x))
    with gc.nn.rng_key(7):
        b1, b2 = map(_np, step(x))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert (a1 != a2).mean() > 0.3  # two sites of one block draw different masks
    # and the compiled function that makes the same calls draws the same masks
    c1, c2 = map(_np, gc.compile(lambda x, k: _with_key(k, lambda: step(x)))(
        x, np.asarray(7, np.int64)))
    np.testing.assert_array_equal(c1, a1)
    np.testing.assert_array_equal(c2, a2)


def test_a_compiled_function_called_in_rng_key_blocks_uses_each_blocks_key():
    # the block's Python key was baked into the plan as a constant at the first call: later
    # calls under another key, or under none, silently drew the first key's masks
    drop = gc.nn.Dropout(P)
    x = np.ones((200,), np.float32)
    step = gc.compile(lambda x: drop(x))
    with gc.nn.rng_key(5):
        a = _np(step(x))
    with gc.nn.rng_key(6):
        b = _np(step(x))
    with gc.nn.rng_key(np.asarray(5)):
        c = _np(step(x))
    with gc.nn.rng_key(5):
        eager = _np(drop(x))
    np.testing.assert_array_equal(c, a)
    np.testing.assert_array_equal(eager, a)
    assert (a != b).mean() > 0.3
    d1, d2 = _np(step(x)), _np(step(x))  # no block: a fresh key per call
    assert (d1 != a).mean() > 0.3 and (d1 != d2).mean() > 0.3
    # a key written inside the compiled function is part of it
    fixed = gc.compile(lambda x: _with_key(5, lambda: drop(x)))
    with gc.nn.rng_key(6):
        np.testing.assert_array_equal(_np(fixed(x)), a)
    np.testing.assert_array_equal(_np(fixed(x)), a)


def test_eager_dropout_in_another_thread_leaves_this_threads_numbering_alone():
    drop = gc.nn.Dropout(P)
    x = np.ones((200,), np.float32)
    with gc.nn.rng_key(7):
        expected = [_np(drop(x)) for _ in range(2)]
    seen = []
    with gc.nn.rng_key(7):
        first = _np(drop(x))
        worker = threading.Thread(target=lambda: seen.extend(
            map(_np, _with_key(7, lambda: (drop(x), drop(x))))))
        worker.start()
        worker.join()
        second = _np(drop(x))
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_array_equal(second, expected[1])
    np.testing.assert_array_equal(seen[0], expected[0])
    np.testing.assert_array_equal(seen[1], expected[1])
