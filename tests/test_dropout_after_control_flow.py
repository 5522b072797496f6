"""Dropout sites after a control-flow construct draw the same masks eagerly as compiled (review
s20a). Traced, every site of a construct was numbered (both branches of a cond, a while_loop
body however often it ran), eagerly only those that ran, so the sites after a cond with
dropout in a branch, or after a while_loop that ran no iteration, drew other masks compiled
than eagerly. Each construct now takes one number where it stands, and its sites are
numbered within it."""
import numpy as np
import pytest

import graphc as gc

P = 0.5
W = 64
KEY = np.asarray(13, np.int64)


def _np(v):
    return np.asarray(getattr(v, "data", v))


def _assert_same(eager, compiled):
    eager, compiled = [_np(v) for v in eager], [_np(v) for v in compiled]
    for e, c in zip(eager, compiled):
        np.testing.assert_array_equal(e, c)
    return compiled


def _is_mask(v):
    return set(np.unique(_np(v))) <= {0.0, 2.0} and 0.3 < (_np(v) > 0).mean() < 0.7


@pytest.mark.parametrize("pred", [True, False])
def test_dropout_after_a_cond_with_dropout_in_its_branches(pred):
    drop = gc.nn.Dropout(P)
    x = np.ones(W, np.float32)

    def f(x, pred, key):
        with gc.nn.rng_key(key):
            before = drop(x)
            inside = gc.cond(pred, lambda v: drop(v) * drop(v), lambda v: drop(v) + 1.0, x)
            after = drop(x), drop(x)
        return before, inside, *after

    compiled = _assert_same(f(x, pred, KEY), gc.compile(f)(x, np.asarray(pred), KEY))
    before, inside, after1, after2 = compiled
    assert _is_mask(before) and _is_mask(after1) and _is_mask(after2)
    # every site draws its own mask
    masks = [before, after1, after2] + ([] if pred else [inside - 1.0])
    assert len({m.tobytes() for m in masks}) == len(masks)


@pytest.mark.parametrize("n", [0, 3])
def test_dropout_after_a_while_loop_and_a_fori_loop_with_traced_bounds(n):
    drop = gc.nn.Dropout(P)

    def body(c):
        i, acc = c
        return i + 1, acc + drop(gc.ones((W,)))

    def f(n, key):
        with gc.nn.rng_key(key):
            _, acc = gc.while_loop(lambda c: c[0] < n, body,
                                   (np.asarray(0, np.int64), gc.zeros((W,))))
            after = drop(gc.ones((W,)))
            acc2 = gc.fori_loop(0, n, lambda i, a: a + drop(gc.ones((W,))), gc.zeros((W,)))
            return acc, after, acc2, drop(gc.ones((W,)))

    # eagerly n is a Python int: the fori_loop is a scan there (none at all for n = 0)
    compiled = _assert_same(f(n, KEY), gc.compile(f)(np.asarray(n, np.int64), KEY))
    acc, after, acc2, last = compiled
    assert _is_mask(after) and _is_mask(last) and (after != last).any()
    if n == 0:
        assert not acc.any() and not acc2.any()
    else:  # a new mask each iteration: sums of 3 masks are not all 0 or 6
        assert not np.isin(acc, [0.0, 2.0 * n]).all()


def _scan_with_cond(xs, key):
    drop = gc.nn.Dropout(P)

    def step(c, x):
        y = gc.cond(gc.sum(x) > 0, lambda v: drop(v), lambda v: v * 3.0, x)
        return c + gc.sum(y), drop(y)

    with gc.nn.rng_key(key):
        total, ys = gc.scan(step, gc.zeros(()), xs)
        return total, ys, drop(xs[0])


def test_dropout_after_a_cond_inside_a_scan_and_after_the_scan():
    signs = np.array([1, -1, 1, 1, -1, -1], np.float32)
    xs = np.ones((6, W), np.float32) * signs[:, None]
    compiled = _assert_same(_scan_with_cond(xs, KEY), gc.compile(_scan_with_cond)(xs, KEY))
    _, ys, after = compiled
    assert _is_mask(after)
    assert len({row.tobytes() for row in ys}) == len(ys)  # a mask per iteration
    # the gradient replays each iteration's masks, compiled as through the eager tape
    dxs = _np(gc.compile(lambda xs, k: gc.grad(
        lambda x: gc.sum(_scan_with_cond(x, k)[1]))(xs))(xs, KEY))
    x = gc.Tensor(xs, requires_grad=True)
    gc.sum(_scan_with_cond(x, KEY)[1]).backward()
    np.testing.assert_array_equal(_np(x.grad), dxs)
    assert len({row.tobytes() for row in dxs}) == len(dxs)


def test_vmap_of_a_cond_with_dropout_then_dropout():
    drop = gc.nn.Dropout(P)

    def f(xs, key):
        def one(x):
            return gc.cond(gc.sum(x) > 0, drop, lambda v: v, x), drop(x)
        with gc.nn.rng_key(key):
            return gc.vmap(one)(xs)

    xs = np.ones((3, W), np.float32) * np.array([1, -1, 1], np.float32)[:, None]
    _assert_same(f(xs, KEY), gc.compile(f)(xs, KEY))


def test_a_key_block_opened_after_an_unkeyed_site_draws_the_same_masks_compiled():
    """Before: an eager outermost rng_key block numbered its sites from its opening, a trace
    from the start of its graph, so a keyed site after an unkeyed one drew another mask
    compiled than eagerly (plainly and inside a scan body). Now the outermost block numbers
    its sites from 1 in both modes, wherever it is opened."""
    drop = gc.nn.Dropout(P)
    x = np.ones(W, np.float32)

    def plain(x):
        drop(x)  # unkeyed: a fresh mask every call, in both modes
        with gc.nn.rng_key(KEY):
            first, second = drop(x), drop(x)
        return first, second

    def body(c, x):
        drop(x)
        with gc.nn.rng_key(KEY):
            keyed = drop(x)
        return c, keyed

    def looped(xs):
        return gc.scan(body, gc.zeros(()), xs)[1]

    eager = plain(gc.tensor(x))
    compiled = _assert_same(eager, gc.compile(plain)(x))
    assert all(_is_mask(m) for m in compiled) and not np.array_equal(*compiled)
    xs = np.ones((3, W), np.float32)
    masks = _assert_same([looped(gc.tensor(xs))], [gc.compile(looped)(xs)])[0]
    assert all(_is_mask(m) for m in masks) and not np.array_equal(masks[0], masks[1])
    # the same key replays its masks eagerly too, however many loops ran before in the
    # process (a block numbered within its loop's construct number did not)
    gc.scan(lambda c, x: (c, x), gc.zeros(()), gc.tensor(xs))
    np.testing.assert_array_equal(_np(looped(gc.tensor(xs))), masks)


def test_sites_after_a_key_block_do_not_repeat_the_numbers_before_it():
    """The block numbers its own sites from 1; the unkeyed sites after it go on past every
    number used, so none repeats an earlier unkeyed site's mask in one compiled call."""
    drop = gc.nn.Dropout(P)
    x = np.ones(4 * W, np.float32)

    def f(x):
        a, b = drop(x), drop(x)
        with gc.nn.rng_key(KEY):
            drop(x)
        c, d = drop(x), drop(x)
        return a, b, c, d

    masks = [_np(m) for m in gc.compile(f)(x)]
    assert all(_is_mask(m) for m in masks)
    for i in range(4):
        for j in range(i):
            assert not np.array_equal(masks[i], masks[j]), (i, j)
