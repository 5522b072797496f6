"""gc.scaled_dot_product_attention and gc.linear against torch.nn.functional's, in float64:
values and gradients, eager, traced and compiled (ir/ops/attention.py)."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError
from ir.ops import attention

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), "
                            "is not installed")
TF = torch.nn.functional


def _arrays(rng, *shapes):
    return [rng.standard_normal(s) for s in shapes]


def _torch_grads(fn, arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    weights = torch.tensor(np.random.default_rng(7).standard_normal(tuple(out.shape)))
    (out * weights).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts], weights.numpy()


def _check(ours, theirs, arrays, compiled=True):
    """ours(*arrays) against theirs(*tensors): value, and the gradient of a weighted sum
    w.r.t. every array; eagerly and through gc.compile."""
    want, want_grads, weights = _torch_grads(theirs, arrays)
    np.testing.assert_allclose(np.asarray(ours(*arrays)), want, rtol=1e-10, atol=1e-12)

    def loss(*xs):
        return gc.sum(gc.mul(ours(*xs), weights))
    grad = gc.grad(loss, argnums=tuple(range(len(arrays))))
    for got, expected in zip(grad(*arrays), want_grads):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-9, atol=1e-11)
    if compiled:
        step = gc.compile(lambda *xs: (ours(*xs), grad(*xs)))
        value, grads = step(*arrays)
        np.testing.assert_allclose(np.asarray(value), want, rtol=1e-9, atol=1e-11)
        for got, expected in zip(grads, want_grads):
            np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shapes", [
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)),   # heads, S != L, Ev != E
    ((4, 8), (5, 8), (5, 6)),                     # no batch axes
    ((2, 3, 4, 8), (1, 3, 5, 8), (2, 1, 5, 6)),   # leading axes broadcast
])
def test_plain_attention_matches_torch(shapes):
    arrays = _arrays(np.random.default_rng(0), *shapes)
    _check(gc.scaled_dot_product_attention, TF.scaled_dot_product_attention, arrays)


@pytest.mark.parametrize("L, S", [(6, 6), (4, 7), (7, 4)])
def test_causal_attention_is_torchs_top_left_triangle(L, S):
    arrays = _arrays(np.random.default_rng(1), (2, 2, L, 8), (2, 2, S, 8), (2, 2, S, 8))
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, is_causal=True),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), arrays)


def test_scale_is_used_as_given():
    arrays = _arrays(np.random.default_rng(2), (3, 5, 4), (3, 6, 4), (3, 6, 2))
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, scale=0.37),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, scale=0.37), arrays)


def test_boolean_mask_is_true_where_a_query_may_attend_and_blocked_rows_are_zero():
    rng = np.random.default_rng(3)
    arrays = _arrays(rng, (2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 3))
    mask = rng.random((5, 6)) < 0.6
    mask[2] = False  # a query that may attend to nothing: zeros, as torch's safe softmax
    mask[3] = True
    ours = gc.scaled_dot_product_attention(*arrays, attn_mask=mask)
    assert np.all(np.asarray(ours)[:, :, 2] == 0.0)
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, attn_mask=mask),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v,
                                                           attn_mask=torch.tensor(mask)),
           arrays)


def test_float_mask_is_added_and_has_a_gradient():
    rng = np.random.default_rng(4)
    q, k, v = _arrays(rng, (2, 2, 4, 4), (2, 2, 5, 4), (2, 2, 5, 3))
    mask = rng.standard_normal((2, 1, 4, 5))  # broadcast over the heads
    mask[0, 0, 1] = -np.inf  # a whole row of -inf: zeros, not NaN
    mask[1, 0, 2, :2] = -np.inf
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, attn_mask=mask),
           lambda q, k, v: TF.scaled_dot_product_attention(
               q, k, v, attn_mask=torch.tensor(mask)), [q, k, v])
    finite = rng.standard_normal((4, 5))
    _check(lambda q, k, v, m: gc.scaled_dot_product_attention(q, k, v, attn_mask=m),
           lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m),
           [q, k, v, finite])


def test_grouped_query_attention_repeats_key_and_value_heads():
    arrays = _arrays(np.random.default_rng(5), (2, 6, 4, 8), (2, 2, 5, 8), (2, 2, 5, 3))
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                           enable_gqa=True),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                           enable_gqa=True), arrays)


def test_causal_attention_lowers_as_the_gpt_models_does():
    """Written as graphc/models/gpt.py writes it: the passes find the causal products (the
    scores' zero half skipped) and fuse the masked softmax, forward and backward."""
    from passes.manager import optimize
    from runtime import causal
    from runtime.stages import LoweringOptions, lower

    rng = np.random.default_rng(6)
    q, k, v, w = (a.astype(np.float32) for a in _arrays(rng, *[(2, 4, 32, 16)] * 4))

    def loss(q, k, v):
        return gc.sum(gc.mul(gc.scaled_dot_product_attention(q, k, v, is_causal=True), w))
    graph = optimize(gc.trace(lambda q, k, v: gc.value_and_grad(loss, argnums=(0, 1, 2))(
        q, k, v), q, k, v))
    kernels = lower(graph, LoweringOptions(jit=True), until="fuse").kernel_graph
    modes = causal.causal_products(kernels)
    assert sorted(modes.values()) == sorted([causal.DEAD_ABOVE, causal.A_LOWER,
                                             causal.DEAD_ABOVE, causal.A_UPPER,
                                             causal.A_LOWER, causal.B_LOWER])
    assert any(n.op == "fused" and "softmax" in n.attrs["program"] for n in kernels.nodes)
    step = gc.compile(gc.value_and_grad(loss, argnums=(0, 1, 2)))
    value, grads = step(q, k, v)
    ts = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in (q, k, v)]
    want = (TF.scaled_dot_product_attention(*ts, is_causal=True) * torch.tensor(w.astype(
        np.float64))).sum()
    want.backward()
    np.testing.assert_allclose(value, want.item(), rtol=1e-4, atol=1e-5)
    for got, t in zip(grads, ts):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=2e-4, atol=2e-5)


def test_dropout_drops_weights_reproducibly_from_the_seed():
    rng = np.random.default_rng(8)
    q, k, v = _arrays(rng, (2, 2, 16, 4), (2, 2, 16, 4), (2, 2, 16, 4))
    plain = np.asarray(gc.scaled_dot_product_attention(q, k, v))
    step = gc.compile(lambda q, k, v, seed: gc.scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, seed=seed))
    a, b, c = (np.asarray(step(q, k, v, np.int64(s))) for s in (3, 3, 4))
    eager = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=0.5, seed=3, salt=5))
    np.testing.assert_array_equal(eager, gc.scaled_dot_product_attention(
        q, k, v, dropout_p=0.5, seed=3, salt=5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, plain)
    # the dropped weights, rescaled by 2, average to the weights: the outputs agree in mean
    assert abs(a.mean() - plain.mean()) < 0.5 * np.abs(plain).mean()
    # without a seed, the key of the innermost rng_key block (or the step's dropout key)
    with gc.nn.rng_key(11):
        d = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    with gc.nn.rng_key(11):
        e = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    with gc.nn.rng_key(12):
        f = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    np.testing.assert_array_equal(d, e)
    assert not np.allclose(d, f)
    keyed = gc.compile(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    assert not np.allclose(np.asarray(keyed(q, k, v)), np.asarray(keyed(q, k, v)))
    everything = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=1.0,
                                                            seed=np.int64(3)))
    np.testing.assert_array_equal(everything, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), bool),
                                                     is_causal=True),
     "attn_mask must not be given with is_causal=True"),
    (lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, dropout_p=0.1),
     "needs seed="),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, dropout_p=1.5, seed=1),
     "dropout_p must be a number in [0, 1]"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k[..., :3], v),
     "query's features (8) and key's (3) differ"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v[:, :, :4]),
     "key has 5 positions and value 4"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k[:, :2], v[:, :2], enable_gqa=True),
     "query's heads (3) to be a multiple of key's (2)"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), int)),
     "attn_mask must be boolean"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v.astype(np.float32)),
     "must have one dtype"),
])
def test_bad_arguments_are_one_line_naming_them(call, message):
    q, k, v = _arrays(np.random.default_rng(9), (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6))
    with pytest.raises(GraphcError) as info:
        call(q, k, v)
    first, *where = str(info.value).splitlines()
    assert message in first
    assert where and "test_attention.py" in where[0]  # the user's line that called it


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5), (5,)])
def test_linear_takes_torchs_weight_layout(bias, shape):
    rng = np.random.default_rng(10)
    x, w, b = _arrays(rng, shape, (7, 5), (7,))
    if bias:
        _check(gc.linear, TF.linear, [x, w, b])
    else:
        _check(lambda x, w: gc.linear(x, w), lambda x, w: TF.linear(x, w), [x, w])


def test_linear_refuses_mismatched_features():
    with pytest.raises(GraphcError, match="input's last axis \\(4\\) must be weight's in "
                                          "features \\(5\\)"):
        gc.linear(np.ones((3, 4)), np.ones((7, 5)))


# ---- found by review (session 25) -------------------------------------------------------------
def test_no_features_gives_torchs_uniform_weights_and_no_keys_gives_zeros():
    rng = np.random.default_rng(11)
    q, k, v = _arrays(rng, (2, 4, 0), (2, 5, 0), (2, 5, 3))
    want = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v))).numpy()
    np.testing.assert_allclose(np.asarray(gc.scaled_dot_product_attention(q, k, v)), want)
    np.testing.assert_allclose(want, np.broadcast_to(v.mean(1, keepdims=True), want.shape))
    q, k, v = _arrays(rng, (2, 4, 8), (2, 0, 8), (2, 0, 3))
    for mask in (np.ones((4, 0), bool), np.zeros((4, 0))):
        got = np.asarray(gc.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        np.testing.assert_array_equal(got, np.zeros((2, 4, 3)))


def test_key_and_value_heads_repeat_by_their_own_groups():
    arrays = _arrays(np.random.default_rng(12), (1, 4, 3, 8), (1, 2, 5, 8), (1, 1, 5, 3))
    _check(lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, enable_gqa=True),
           lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, enable_gqa=True), arrays)


def test_dropout_of_one_and_numpy_rates_need_no_seed():
    q, k, v = _arrays(np.random.default_rng(13), (2, 4, 8), (2, 5, 8), (2, 5, 3))
    zeros = attention.scaled_dot_product_attention(q, k, v, dropout_p=1.0)
    np.testing.assert_array_equal(np.asarray(zeros), 0.0)
    with gc.nn.rng_key(3):
        a = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=np.float32(0.25)))
    with gc.nn.rng_key(3):
        b = np.asarray(gc.scaled_dot_product_attention(q, k, v, dropout_p=0.25))
    np.testing.assert_array_equal(a, b)


def test_a_masked_nan_key_never_reaches_the_output():
    """torch's math kernel adds -inf to a masked score, so a NaN key spreads to every query;
    here, as in its fused kernels, a masked key is left out whatever it holds."""
    q, k, v = _arrays(np.random.default_rng(14), (1, 4, 8), (1, 4, 8), (1, 4, 3))
    k[0, 3] = np.nan  # the last key: masked for every query but the last, causally
    got = np.asarray(gc.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert np.isfinite(got[0, :3]).all() and np.isnan(got[0, 3]).all()
    mask = np.ones((4, 4), bool)
    mask[:, 3] = False
    got = np.asarray(gc.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert np.isfinite(got).all()


@pytest.mark.parametrize("call, message", [
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, np.ones((3, 1, 4, 5))),
     "attn_mask of shape (3, 1, 4, 5) does not broadcast to the scores' (2, 4, 5)"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, np.ones((4, 6))),
     "attn_mask of shape (4, 6) does not broadcast"),
    (lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, np.ones((4, 6), bool)),
     "attn_mask of shape (4, 6) does not broadcast"),
    (lambda q, k, v: gc.scaled_dot_product_attention(np.ones((3, 4, 8)), k, v),
     "the leading axes of query (3,), key (2,) and value (2,) do not broadcast"),
    (lambda q, k, v: gc.linear(np.ones((4, 3)), np.ones((5, 3)), np.ones((3, 1, 5))),
     "bias of shape (3, 1, 5) does not broadcast to the output's (4, 5)"),
    (lambda q, k, v: gc.linear(np.ones((4, 3)), np.ones((5, 3)), np.ones(4)),
     "bias of shape (4,) does not broadcast"),
])
def test_shapes_that_do_not_fit_are_named(call, message):
    q, k, v = _arrays(np.random.default_rng(15), (2, 4, 8), (2, 5, 8), (2, 5, 3))
    with pytest.raises(GraphcError) as info:
        call(q, k, v)
    first, *where = str(info.value).splitlines()
    assert message in first and "test_attention.py" in where[0]


def test_symbolic_lengths_compile_once_for_every_length():
    step = gc.compile(lambda q, k, v, m: gc.scaled_dot_product_attention(q, k, v, attn_mask=m),
                      polymorphic_shapes=((2, "L", 8), (2, "S", 8), (2, "S", 3), ("L", "S")))
    rng = np.random.default_rng(16)
    for L, S in ((3, 5), (6, 2), (1, 7)):
        q, k, v = _arrays(rng, (2, L, 8), (2, S, 8), (2, S, 3))
        mask = rng.random((L, S)) < 0.7
        mask[0] = False  # a row that attends to nothing
        want = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)),
                                               attn_mask=torch.tensor(mask)).numpy()
        np.testing.assert_allclose(np.asarray(step(q, k, v, mask)), want, rtol=1e-10,
                                   atol=1e-12)
    assert step.recompiles == []


def test_symbolic_key_length_bound_to_zero_gives_zeros():
    # k[:, 1:] of an "s" axis has s - 1 keys: 0 when s = 1. The blocked-row test must not
    # take a max over that empty axis (max has no identity); no key gives zeros, as torch's.
    def f(q, k, v, m):
        return gc.scaled_dot_product_attention(q, k[:, 1:], v[:, 1:], attn_mask=m[:, 1:])
    step = gc.compile(f, polymorphic_shapes=(None, (2, "s", 8), (2, "s", 3), (4, "s")))
    rng = np.random.default_rng(17)
    q = rng.standard_normal((2, 4, 8))
    for s in (3, 1):
        k, v = _arrays(rng, (2, s, 8), (2, s, 3))
        mask = np.ones((4, s), bool)
        want = TF.scaled_dot_product_attention(
            torch.tensor(q), torch.tensor(k[:, 1:]), torch.tensor(v[:, 1:]),
            attn_mask=torch.tensor(mask[:, 1:])).numpy()
        got = np.asarray(step(q, k, v, mask))
        assert got.shape == (2, 4, 3)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got, np.zeros((2, 4, 3)))
    assert step.recompiles == []


def test_an_attn_mask_given_as_a_list_or_a_torch_tensor_names_attn_mask():
    """A list attn_mask met the op's 'scaled_dot_product_attention: cannot use a list as a
    tensor operand', a torch one 'got a torch.Tensor, another library's array; pass a numpy
    array (x.numpy(), ...)', neither naming attn_mask; they are refused as the attention
    layers refuse their masks. The same mask as an array gives torch's values."""
    rng = np.random.default_rng(0)
    q, k, v = _arrays(rng, (1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4))
    rows = [[True, False, False], [True, True, False], [True, True, True]]
    where = "scaled_dot_product_attention: attn_mask is a "
    for mask, message in (
            (rows, where + "list; give an array (np.asarray), as torch's takes a tensor"),
            (torch.tensor(rows), where + "torch.Tensor, another library's array; pass a numpy "
             "array (attn_mask.numpy(), or np.asarray(attn_mask))")):
        for run in (lambda: gc.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                    lambda: gc.compile(lambda a: gc.scaled_dot_product_attention(
                        a, k, v, attn_mask=mask))(q)):
            with pytest.raises(GraphcError) as info:
                run()
            problem, at = str(info.value).splitlines()
            assert problem == message
            assert at.strip().startswith("at tests/test_attention.py:"), at
    expected = TF.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)),
                                               attn_mask=torch.tensor(rows))
    np.testing.assert_allclose(gc.scaled_dot_product_attention(q, k, v,
                                                               attn_mask=np.array(rows)),
                               expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("q_shape", [(2, 3, 4, 8), (3, 4, 8)])
@pytest.mark.parametrize("mask_shape", [(5,), ()])
def test_a_mask_of_fewer_axes_than_the_scores_broadcasts_as_torchs_rule(q_shape, mask_shape):
    """(s52) A (S,) or 0-d attn_mask broadcasts to the scores (..., L, S), as torch's
    documented rule ('must be broadcastable to the shape of attention weights') and its math
    kernel take it, and torch's every call but one: its default CPU kernel for 4-d queries
    fails in its fused path ('Dimension out of range'), which graphc does not copy."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    rng = np.random.default_rng(3)
    lead = q_shape[:-2]
    arrays = _arrays(rng, q_shape, lead + (5, 8), lead + (5, 6), mask_shape)
    q, k, v, mask = (torch.tensor(a) for a in arrays)
    with sdpa_kernel(SDPBackend.MATH):
        want = TF.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy()
    assert len(q_shape) == 4 or np.array_equal(  # (the default kernel agrees but at 4-d)
        TF.scaled_dot_product_attention(q, k, v, attn_mask=mask).numpy(), want)
    got = gc.scaled_dot_product_attention(*arrays[:3], attn_mask=arrays[3])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    boolean = np.array([True, False, True, True, False])[:mask_shape[0] if mask_shape else 1]
    boolean = boolean.reshape(mask_shape)
    with sdpa_kernel(SDPBackend.MATH):
        want = TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(boolean))
    np.testing.assert_allclose(np.asarray(gc.scaled_dot_product_attention(
        *arrays[:3], attn_mask=boolean)), want.numpy(), rtol=1e-12)
