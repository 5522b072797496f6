"""The layer set and the losses against PyTorch (copied weights, random inputs), eager and
compiled; initialisation as PyTorch's defaults, and the GPT's initial weights unchanged."""
import collections
import hashlib
import re

import ml_dtypes
import numpy as np
import pytest
import torch

import graphc as gc
from graphc import nn
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError


def _both(fn, *args):
    """fn on eager tensors and compiled, as numpy arrays."""
    eager = fn(*[gc.tensor(a) for a in args])
    return eager.data, gc.compile(fn)(*args)


def test_gpt_initial_weights_are_unchanged():
    # digest of the tiny and nanogpt-cpu GPTs' initial weights (seed 0) before the layer
    # defaults changed: `graphc train` must start from the same point
    digest = hashlib.sha256()
    for name in ["tiny", "nanogpt-cpu"]:
        for pname, p in GPT(GPTConfig.named(name), seed=0).named_parameters():
            digest.update(pname.encode())
            digest.update(np.ascontiguousarray(p.data).tobytes())
    assert digest.hexdigest() == \
        "082daabcd4ebbbf063aa66983df361fd55dbb955a10e80c067195cce553c46b1"


def test_default_initialisation_is_pytorchs():
    nn.manual_seed(3)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.95 * bound
        assert abs(p.std() - bound / np.sqrt(3)) < 0.05 * bound  # uniform's std
    assert layer.weight.shape == (400, 300)  # graphc's (fan_in, fan_out) layout
    emb = nn.Embedding(1000, 64)
    assert abs(emb.weight.data.std() - 1.0) < 0.02
    std_layer = nn.Linear(400, 300, std=0.02)
    assert np.all(std_layer.bias.data == 0) and abs(std_layer.weight.data.std() - 0.02) < 1e-3
    mha = nn.MultiheadAttention(64, 4)
    xavier = np.sqrt(6 / (64 + 192))
    assert mha.in_proj_weight.shape == (64, 192)
    assert xavier * 0.95 < np.abs(mha.in_proj_weight.data).max() <= xavier
    assert np.all(mha.in_proj_bias.data == 0) and np.all(mha.out_proj.bias.data == 0)


def test_manual_seed_makes_initialisation_repeatable_and_layers_differ():
    nn.manual_seed(5)
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    nn.manual_seed(5)
    c = nn.Linear(8, 8)
    np.testing.assert_array_equal(a.weight.data, c.weight.data)
    assert not np.array_equal(a.weight.data, b.weight.data)


def test_sequential_names_and_matches_torch():
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.SiLU(),
                          nn.Linear(3, 2, bias=False))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight"]
    assert len(model) == 5 and isinstance(model[-1], nn.Linear)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3),
                              torch.nn.SiLU(), torch.nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        for name, value in model.state_dict().items():
            target = ref.get_parameter(name)
            target.copy_(torch.tensor(value.T if value.ndim == 2 else value))
    x = np.random.default_rng(1).normal(size=(4, 5))
    expected = ref(torch.tensor(x)).detach().numpy()
    graph = gc.trace(lambda x: model(x), gc.spec((4, 5)))
    assert [n.name for n in graph.inputs] == ["x", "0.weight", "0.bias", "2.weight",
                                              "2.bias", "4.weight"]
    for got in _both(lambda x: model(x), x.astype(np.float32)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(GraphcError, match="item 1 is a function"):
        nn.Sequential(nn.ReLU(), gc.relu)


def test_a_child_set_as_a_sequentials_attribute_is_an_item_as_torchs():
    """r3 on session 44: a Sequential with a child set as an attribute (body.sub = ...):
    body[0] = x moved item 0 after sub (state_dict's order), len and append ignored sub
    (append named the new item 1, torch's 2), and forward did not call it. torch's
    containers hold it in _modules as any item: so now, order, names and values."""
    def model(nn):
        m = nn.Module()
        m.a = nn.Linear(2, 2)
        m.body = nn.Sequential(nn.Tanh())
        m.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        m.body.sub = nn.Sequential(m.layers[1])
        m.body[0] = m.a
        m.body.append(m.layers[0])
        return m
    ours, theirs = model(nn), model(torch.nn)
    ours.load_torch_state_dict(theirs.state_dict())
    assert [name for name, _ in ours.body.named_children()] == [
        name for name, _ in theirs.body.named_children()] == ["0", "sub", "2"]
    assert len(ours.body) == len(theirs.body) == 3
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.name for p in ours.parameters()] == [n for n, _ in theirs.named_parameters()]
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_allclose(ours.body(gc.tensor(x)).data,
                               theirs.body(torch.tensor(x)).detach().numpy(), rtol=1e-5)
    del ours.body.sub, theirs.body.sub
    assert len(ours.body) == len(theirs.body) == 2
    assert [name for name, _ in ours.body.named_children()] == ["0", "2"]


@pytest.mark.parametrize("ours,theirs", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.SiLU(), torch.nn.SiLU()),
    (nn.Tanh(), torch.nn.Tanh()), (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.LeakyReLU(), torch.nn.LeakyReLU()), (nn.LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)),
], ids=lambda m: repr(m) if isinstance(m, torch.nn.Module) else "")
def test_activation_modules_match_torch(ours, theirs):
    x = np.random.default_rng(0).normal(size=(3, 17)) * 3
    x[0, :3] = [0.0, -0.0, 1e-9]
    tx = torch.tensor(x, requires_grad=True)
    theirs(tx).backward(torch.ones_like(tx))
    t = gc.tensor(x, requires_grad=True)
    ours(t).sum().backward()
    np.testing.assert_allclose(ours(gc.tensor(x)).data, theirs(tx).detach().numpy(),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    compiled = gc.compile(lambda a: ours(a))(x.astype(np.float32))
    np.testing.assert_allclose(compiled, theirs(tx).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_rmsnorm_matches_torch():
    x = np.random.default_rng(0).normal(size=(2, 3, 8))
    layer = nn.RMSNorm(8, dtype="float64")
    layer.weight.data = np.random.default_rng(1).normal(size=8)
    ref = torch.nn.RMSNorm(8, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
    np.testing.assert_allclose(layer(gc.tensor(x)).data, ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12)
    x32 = x.astype(np.float32)
    ref32 = torch.nn.RMSNorm(8, elementwise_affine=False)  # eps: float32's epsilon
    np.testing.assert_allclose(gc.compile(lambda a: nn.RMSNorm(8, elementwise_affine=False)(a))(
        x32), ref32(torch.tensor(x32)).detach().numpy(), rtol=1e-5)


def _copy_mha(ours, theirs):
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.tensor(ours.in_proj_weight.data.T))
        theirs.out_proj.weight.copy_(torch.tensor(ours.out_proj.weight.data.T))
        if ours.in_proj_bias is not None:
            theirs.in_proj_bias.copy_(torch.tensor(ours.in_proj_bias.data))
            theirs.out_proj.bias.copy_(torch.tensor(ours.out_proj.bias.data))


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_matches_torch(batch_first, causal):
    rng = np.random.default_rng(0)
    E, H, B, T = 12, 3, 2, 5
    ours = nn.MultiheadAttention(E, H, batch_first=batch_first, causal=causal,
                                 dtype="float64")
    for p in ours.parameters():  # non-zero biases, so that they are tested too
        p.data = rng.normal(size=p.shape) * 0.5
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, dtype=torch.float64)
    _copy_mha(ours, theirs)
    shape = (B, T, E) if batch_first else (T, B, E)
    x = rng.normal(size=shape)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    tx = torch.tensor(x, requires_grad=True)
    out, weights = theirs(tx, tx, tx, attn_mask=mask, is_causal=causal)
    (out * torch.tensor(np.cos(x))).sum().backward()
    t = gc.tensor(x, requires_grad=True)
    got, got_w = ours(t)
    gc.sum(got * np.cos(x)).backward()
    np.testing.assert_allclose(got.data, out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_w.data, weights.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    grad_w = gc.grad(lambda p: gc.sum(_apply_mha(ours, p, x) * np.cos(x)))(
        ours.in_proj_weight.data)
    np.testing.assert_allclose(grad_w, theirs.in_proj_weight.grad.numpy().T, rtol=1e-9,
                               atol=1e-12)
    compiled = gc.compile(lambda x: ours(x)[0])(x)
    np.testing.assert_allclose(compiled, out.detach().numpy(), rtol=1e-10, atol=1e-12)


def _apply_mha(layer, in_proj_weight, x):
    saved = layer.in_proj_weight
    object.__setattr__(layer, "in_proj_weight", in_proj_weight)
    try:
        return layer(x)[0]
    finally:
        object.__setattr__(layer, "in_proj_weight", saved)


def test_multihead_attention_takes_torchs_positional_arguments():
    """Session 45 (g2): forward's positional order was (query, key, value, attn_mask,
    key_padding_mask, need_weights, ...), torch's is (query, key, value, key_padding_mask,
    need_weights, attn_mask, average_attn_weights, is_causal): mha(x, x, x, pad) read the
    padding mask as attn_mask (with batch == length it passed the shape check: a wrong
    output), and mha(x, x, x, None, False) was refused as key_padding_mask=False."""
    rng = np.random.default_rng(3)
    E, H, B, T = 8, 2, 4, 4  # batch == length: either mask's shape fits either place
    ours = nn.MultiheadAttention(E, H, batch_first=True, dtype="float64")
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    _copy_mha(ours, theirs)
    x = rng.normal(size=(B, T, E))
    pad = np.zeros((B, T), bool)
    pad[:, -1] = True  # the last key of every row is padding
    causal = np.triu(np.ones((T, T), bool), 1)
    tx = torch.tensor(x)
    positional = [  # torch's order: key_padding_mask, need_weights, attn_mask, average
        (pad,), (pad, True, causal), (None, True, causal, False), (None, False)]
    for args in positional:
        out, weights = theirs(tx, tx, tx, *[torch.tensor(a) if isinstance(a, np.ndarray)
                                             else a for a in args])
        got, got_w = ours(x, x, x, *args)
        np.testing.assert_allclose(got.data, out.detach().numpy(), rtol=1e-10, atol=1e-12)
        if weights is None:
            assert got_w is None
        else:
            np.testing.assert_allclose(got_w.data, weights.detach().numpy(), rtol=1e-10,
                                       atol=1e-12)


def test_multihead_attention_cross_attention_and_masks_match_torch():
    rng = np.random.default_rng(2)
    E, H, B, T, S = 8, 2, 3, 4, 6
    ours = nn.MultiheadAttention(E, H, batch_first=True, dtype="float64")
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    _copy_mha(ours, theirs)
    q, kv = rng.normal(size=(B, T, E)), rng.normal(size=(B, S, E))
    padding = np.zeros((B, S), bool)
    padding[0, -2:] = True
    additive = rng.normal(size=(T, S))
    blocked = rng.random((T, S)) < 0.3
    blocked[:, 0] = False
    for attn_mask, key_padding_mask in [(additive, np.where(padding, -np.inf, 0.0)),
                                        (blocked, padding)]:
        out, w = theirs(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                        key_padding_mask=torch.tensor(key_padding_mask),
                        attn_mask=torch.tensor(attn_mask))
        got, got_w = ours(gc.tensor(q), gc.tensor(kv), attn_mask=attn_mask,
                          key_padding_mask=key_padding_mask)
        np.testing.assert_allclose(got.data, out.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_w.data, w.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert ours(gc.tensor(q), need_weights=False)[1] is None


def test_multihead_attention_casts_a_float_mask_to_the_scores_dtype():
    """A float64 mask (numpy's np.triu(np.full((T, T), -np.inf), 1)) on a float32 layer
    failed inside add(f32, f64), naming neither the layer nor the mask; it is cast to the
    scores' dtype, as gc.scaled_dot_product_attention does: torch's values with the mask
    given in float32, eagerly and compiled, a float64 key_padding_mask too."""
    rng = np.random.default_rng(3)
    E, H, B, T = 8, 2, 3, 5
    ours = nn.MultiheadAttention(E, H, batch_first=True)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True)
    _copy_mha(ours, theirs)
    x = rng.normal(size=(B, T, E)).astype(np.float32)
    causal = np.triu(np.full((T, T), -np.inf), 1) + rng.normal(size=(T, T))  # float64
    padding = np.where(np.arange(T) >= np.array([[5], [3], [4]]), -np.inf, 0.0)  # float64
    tx = torch.tensor(x)
    for need_weights in (True, False):
        out, w = theirs(tx, tx, tx, attn_mask=torch.tensor(causal, dtype=torch.float32),
                        key_padding_mask=torch.tensor(padding, dtype=torch.float32),
                        need_weights=need_weights)
        got, got_w = ours(x, attn_mask=causal, key_padding_mask=padding,
                          need_weights=need_weights)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.data, out.detach().numpy(), rtol=1e-5, atol=1e-6)
        if need_weights:
            np.testing.assert_allclose(got_w.data, w.detach().numpy(), rtol=1e-5, atol=1e-6)
    compiled = gc.compile(lambda a: ours(a, attn_mask=causal, key_padding_mask=padding,
                                         need_weights=False)[0])(x)
    assert compiled.dtype == np.float32
    np.testing.assert_allclose(compiled, out.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_multihead_attention_query_with_no_key_gives_torchs_zeros_not_nan():
    """A query whose keys are all masked (left padding under a causal mask, a sequence all
    padding) gave NaN, and NaN in every parameter's gradient: a plain softmax of a row of
    -inf. torch's need_weights=False path (its sdpa, which the Transformer layers take) gives
    zero weights there, so the output is out_proj's bias, and finite gradients; graphc now
    uses sdpa's safe softmax in every mode (torch's need_weights=True path gives NaN)."""
    rng = np.random.default_rng(6)
    E, H, B, T = 8, 2, 3, 4
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    with torch.no_grad():  # non-zero biases: a blocked query's output is out_proj.bias
        for p in theirs.parameters():
            p.copy_(torch.tensor(rng.normal(size=p.shape) * 0.5))
    ours = nn.MultiheadAttention(E, H, batch_first=True, dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    x, w = rng.normal(size=(B, T, E)), rng.normal(size=(B, T, E))
    padding = np.array([[True, False, False, False], [False] * 4, [True] * 4])
    causal = np.triu(np.ones((T, T), bool), 1)  # sequence 0's query 0 may attend to nothing
    masks = dict(attn_mask=causal, key_padding_mask=padding)
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_weights = theirs(tx, tx, tx, need_weights=False,
                              **{k: torch.tensor(v) for k, v in masks.items()})
    (t_out * torch.tensor(w)).sum().backward()
    expected = t_out.detach().numpy()
    assert np.isfinite(expected).all() and t_weights is None
    np.testing.assert_allclose(expected[2], np.broadcast_to(ours.out_proj.bias.data, (T, E)))

    def loss(p, x):
        return gc.sum(ours.apply(p, x, need_weights=False, **masks)[0] * w)
    np.testing.assert_allclose(ours(x, need_weights=False, **masks)[0], expected, atol=1e-12)
    compiled = gc.compile(lambda x: ours(x, need_weights=False, **masks)[0])
    np.testing.assert_allclose(compiled(x), expected, atol=1e-12)
    for grad in (gc.grad(loss, argnums=(0, 1)), gc.compile(gc.grad(loss, argnums=(0, 1)))):
        g_params, g_x = grad(ours.params(), x)
        np.testing.assert_allclose(g_x, tx.grad.numpy(), atol=1e-11)
        for name, p in theirs.named_parameters():  # graphc's layout: these two transposed
            g = g_params[name].T if name in ("in_proj_weight", "out_proj.weight") \
                else g_params[name]
            np.testing.assert_allclose(g, p.grad.numpy(), atol=1e-11, err_msg=name)
    # need_weights=True: zero weights for such a query (torch's gives NaN there)
    weights = np.asarray(ours(x, **masks, average_attn_weights=False)[1])
    assert torch.isnan(theirs(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(causal),
                           key_padding_mask=torch.tensor(padding))[1][0, 0].detach()).all()
    assert (weights[0, :, 0] == 0).all() and (weights[2] == 0).all()
    np.testing.assert_allclose(weights[0, :, 1:].sum(-1), 1.0)


def test_a_wrongly_shaped_attn_mask_is_refused_in_one_line():
    """attn_mask's shape was never checked: a 1-d (S,) mask (or a 4-d one that happened to
    fit) was broadcast into the scores without a word, a (batch, T, S) mask (one per sample,
    not torch's (batch * num_heads, T, S)) failed inside reshape and a wrong (T, S) inside
    where, naming neither the layer nor attn_mask. torch refuses them all; graphc now does,
    as it does a wrong key_padding_mask, in one line naming the shapes it takes."""
    layer = nn.MultiheadAttention(4, 2, batch_first=True)
    theirs = torch.nn.MultiheadAttention(4, 2, batch_first=True)
    x = np.zeros((3, 5, 4), np.float32)  # batch 3, length 5, 2 heads
    options = (r"it must be \(target length, source length\) = \(5, 5\) or \(batch \* "
               r"num_heads, target length, source length\) = \(6, 5, 5\)")
    for shape in [(4, 4), (3, 5, 5), (5,), (1, 5), (5, 1), (1, 5, 5), (3, 2, 5, 5)]:
        mask = np.zeros(shape, bool)
        with pytest.raises((RuntimeError, AssertionError)):
            theirs(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(mask))
        for run in (lambda: layer(x, x, x, attn_mask=mask),
                    lambda: gc.compile(lambda a: layer(a, attn_mask=mask)[0])(x)):
            with pytest.raises(GraphcError) as info:
                run()
            problem, where = str(info.value).splitlines()
            assert re.fullmatch(rf"MultiheadAttention: attn_mask has shape "
                                rf"{re.escape(str(shape))}; {options}", problem), problem
            assert where.strip().startswith("at tests/test_nn_layers.py:"), where
    for mask in (np.zeros((5, 5), bool), np.zeros((6, 5, 5), np.float32)):  # torch's, taken
        np.testing.assert_allclose(layer(x, attn_mask=mask)[0], layer(x)[0])
    single = layer(x[0], attn_mask=np.zeros((2, 5, 5), bool))[0]  # unbatched: (heads, T, S)
    np.testing.assert_allclose(single, layer(x[0])[0])
    decoder = nn.TransformerDecoderLayer(4, 2, 8, batch_first=True)  # names the user's mask
    with pytest.raises(GraphcError, match=r"^TransformerDecoderLayer: memory_mask "
                       r"has shape \(5, 7\); it must be \(target length, source length\) = "
                       r"\(5, 6\) or"):
        decoder(x, np.zeros((3, 6, 4), np.float32), memory_mask=np.zeros((5, 7), bool))


def test_linear_fed_its_own_out_features_blames_the_input_not_its_weight():
    """r2: c25a922 named torch's layout whenever the input's features equalled the weight's
    second axis, which is also two Linear(5, 3) in a row: the second layer's own (5, 3)
    weight is right and the input is wrong. Linear now keeps in_features / out_features, as
    torch's, and names the layout only for a weight that is the transpose of its own."""
    model = nn.Sequential(nn.Linear(5, 3), nn.Linear(5, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(5, 3))
    x = np.ones((2, 5), np.float32)
    with pytest.raises(RuntimeError):
        theirs(torch.tensor(x))
    for run in (lambda: model(gc.tensor(x)), lambda: gc.compile(lambda a: model(a))(x),
                lambda: model.apply(model.params(), x)):
        with pytest.raises(GraphcError) as info:
            run()
        problem, where = str(info.value).splitlines()
        assert problem == "Linear: input has 3 features, the layer takes 5"
        assert where.strip().startswith("at tests/test_nn_layers.py:"), where
    assert [(m.in_features, m.out_features) for m in model] == \
        [(m.in_features, m.out_features) for m in theirs] == [(5, 3), (5, 3)]


def test_a_wrong_feature_size_to_linear_or_a_norm_names_the_layer():
    """A wrong last axis to Linear failed in matmul ("contracting dimensions differ"), to
    LayerNorm or RMSNorm in the op blaming the weight, naming neither the layer nor the
    input, and LayerNorm without a weight normalised over the wrong axis without a word.
    torch refuses each; graphc now says which layer, as LSTM's and Conv's messages do."""
    x = np.ones((4, 5), np.float32)
    cases = [(nn.Linear(3, 2), torch.nn.Linear(3, 2), "Linear: input has 5 features, the "
              "layer takes 3"),
             (nn.LayerNorm(4), torch.nn.LayerNorm(4), "LayerNorm: input has 5 features, the "
              "layer takes 4"),
             (nn.LayerNorm(4, elementwise_affine=False),
              torch.nn.LayerNorm(4, elementwise_affine=False),
              "LayerNorm: input has 5 features, the layer takes 4"),
             (nn.RMSNorm(4), torch.nn.RMSNorm(4), "RMSNorm: input has 5 features, the layer "
              "takes 4"),
             (nn.LayerNorm((2, 5)), torch.nn.LayerNorm((2, 5)), "LayerNorm: the input's "
              "trailing axes (4, 5) are not the normalized_shape (2, 5)"),
             (nn.Sequential(nn.Linear(5, 4), nn.Linear(3, 2)),
              torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(3, 2)),
              "Linear: input has 4 features, the layer takes 3")]
    for ours, theirs, message in cases:
        with pytest.raises(RuntimeError):
            theirs(torch.tensor(x))
        for run in (lambda: ours(gc.tensor(x)), lambda: gc.compile(lambda a: ours(a))(x)):
            with pytest.raises(GraphcError) as info:
                run()
            problem, where = str(info.value).splitlines()
            assert problem == message
            assert where.strip().startswith("at tests/test_nn_layers.py:"), where
    # a weight in torch's (out, in) layout put into Linear(5, 3): the input is right, and
    # the message says so by naming the weight and the layouts, assigned or given to apply
    torch_linear = torch.nn.Linear(5, 3)
    torch_params = {k: v.detach().numpy() for k, v in torch_linear.state_dict().items()}
    ours = nn.Linear(5, 3)
    ours.weight = nn.Parameter(torch_params["weight"])
    message = ("Linear: input has 5 features, the weight (3, 5) takes 3: graphc's weight is "
               "(in_features, out_features), the transpose of torch's (out_features, "
               "in_features)")
    for run in (lambda: ours(gc.tensor(x)), lambda: gc.compile(lambda a: ours(a))(x),
                lambda: nn.Linear(5, 3).apply(torch_params, x)):
        with pytest.raises(GraphcError) as info:
            run()
        problem, where = str(info.value).splitlines()
        assert problem == message
        assert where.strip().startswith("at tests/test_nn_layers.py:"), where
    ours = nn.Linear(5, 3)  # torch's weight and an input that fits neither: still the layout
    ours.weight = nn.Parameter(torch_params["weight"])
    with pytest.raises(GraphcError, match=r"^Linear: input has 7 features, the weight \(3, "
                                          r"5\) takes 3: graphc's weight is \(in_features"):
        ours(gc.tensor(np.ones((4, 7), np.float32)))
    ours.weight = nn.Parameter(torch_params["weight"].T)  # as the message says: the same
    ours.bias = nn.Parameter(torch_params["bias"])
    np.testing.assert_allclose(ours(gc.tensor(x)).data, torch_linear(torch.tensor(x))
                               .detach().numpy(), rtol=1e-5, atol=1e-6)
    # the sizes that fit still give torch's values, a vector to Linear too
    for ours, theirs in [(nn.Linear(5, 2), torch.nn.Linear(5, 2)),
                         (nn.LayerNorm(5, elementwise_affine=False),
                          torch.nn.LayerNorm(5, elementwise_affine=False))]:
        ours.load_torch_state_dict(theirs.state_dict())
        for given in (x, x[0]):
            np.testing.assert_allclose(ours(gc.tensor(given)).data,
                                       theirs(torch.tensor(given)).detach().numpy(),
                                       rtol=1e-5, atol=1e-6)


def test_an_input_of_another_dtype_than_the_weights_names_the_layer_and_the_dtypes():
    """A float64 input to a float32 Linear (and so to MultiheadAttention's projections) met
    matmul's 'matmul(f64[6,4], f32[4,5]): operands must have one dtype', naming neither the
    layer nor the input. torch refuses it too ("mat1 and mat2 must have the same dtype");
    graphc now names the layer (by its place in a model) and both dtypes, as the recurrent
    layers do."""
    x = np.ones((2, 3, 4))  # float64
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.nn.Linear(4, 5)(torch.tensor(x))
    advice = "but the layer's weights are float32; cast it with .astype, or build the layer " \
             "with dtype='float64'"
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 5))
    mha = nn.MultiheadAttention(4, 2)
    layer = nn.TransformerEncoderLayer(4, 2, 8)
    cases = [(lambda a: nn.Linear(4, 5)(a), f"Linear: input is float64 {advice}"),
             (lambda a: model(a), f"Linear '0': input is float64 {advice}"),
             (lambda a: mha(a, a, a)[0], f"MultiheadAttention: query is float64 {advice}"),
             (lambda a: mha(a.astype(np.float32), a, a)[0],
              f"MultiheadAttention: key is float64 {advice}"),
             (lambda a: layer(a), f"MultiheadAttention 'self_attn': query is float64 {advice}")]
    for fn, message in cases:
        for run in (lambda: fn(gc.tensor(x)), lambda: gc.compile(fn)(x)):
            with pytest.raises(GraphcError) as info:
                run()
            problem, where = str(info.value).splitlines()
            assert problem == message
            assert where.strip().startswith("at tests/test_nn_layers.py:"), where
    # the input cast to the weights' dtype runs; under autocast the op casts a float16 one
    weights = [(p.data.astype(np.float64)) for p in model.parameters()]
    expected = (x @ weights[0] + weights[1]) @ weights[2] + weights[3]
    np.testing.assert_allclose(model(gc.tensor(x.astype(np.float32))).data, expected, rtol=1e-5)
    with gc.autocast("bfloat16"):
        out = model(gc.tensor(x.astype(np.float16)))
    np.testing.assert_allclose(np.asarray(out.data, np.float64), expected, rtol=0.05, atol=0.05)


def test_an_int_or_list_input_to_linear_is_told_to_cast_or_give_an_array():
    """Review of 17e865f: an int input (token ids given to a Linear) was told to 'build the
    layer with dtype='int64'', which the layer refuses; a list, which has no .astype, was told
    to cast it; a Python number, which matmul lifts, was called float64."""
    lin = nn.Linear(4, 3)
    for x, message in [
            (np.ones((2, 4), np.int64),
             "Linear: input is int64 but the layer's weights are float32; "
             "cast it with .astype('float32')"),
            (np.ones((2, 4), bool),
             "Linear: input is bool but the layer's weights are float32; "
             "cast it with .astype('float32')"),
            ([[1.0, 2.0, 3.0, 4.0]],
             "Linear: input is a list; give an array (np.asarray), as torch's takes a tensor")]:
        with pytest.raises(GraphcError) as info:
            lin(x)
        assert str(info.value).splitlines()[0] == message
    with pytest.raises(GraphcError, match="operands need at least 2 axes"):
        lin(2.0)


def test_a_list_input_is_refused_whatever_the_layers_dtype_and_an_int_one_under_autocast():
    """s49 r19 (review of 0c60167): the list refusal ran only when the dtypes differed, so a
    float list (read as float64) given to a float64 layer passed: Linear's was matmul's
    'cannot use a list as a tensor operand', GRU's and LSTMCell's a raw TypeError ('list
    indices must be integers'). And under autocast, which casts float inputs only, an int
    input was matmul's 'operands must have one dtype', naming no layer."""
    x = [[1.0, 2.0, 3.0, 4.0]]
    for layer, given in ((nn.Linear(4, 3, dtype="float64"), x),
                         (nn.GRU(4, 3, dtype="float64"), [x]),  # (L, N, in): batched
                         (nn.LSTMCell(4, 3, dtype="float64"), x)):
        with pytest.raises(GraphcError) as info:
            layer(given)
        first, where = str(info.value).splitlines()
        assert first == (f"{type(layer).__name__}: input is a list; give an array "
                         "(np.asarray), as torch's takes a tensor") and "test_nn_layers" in where
    lin = nn.Linear(4, 3)
    with gc.autocast("float16"):
        with pytest.raises(GraphcError) as info:
            lin(np.ones((2, 4), np.int64))
        assert str(info.value).splitlines()[0] == (
            "Linear: input is int64 but the layer's weights are float32; "
            "cast it with .astype('float32')")
        assert lin(np.ones((2, 4), np.float32)).dtype == np.float16  # a float one is cast


def test_a_float64_input_under_autocast_names_the_layer_not_its_matmul():
    """s50 f6 item 3: under autocast, which leaves float64 alone (as torch.autocast), a
    float64 input to a float32 Linear, GRU or MultiheadAttention (or a float32 one to a
    float64 layer) was the matmul's 'matmul: under autocast float64 is not cast', naming no
    layer. A float64 layer given float64 runs in float64, a float32 one given float32 in
    the half dtype."""
    x64 = np.random.default_rng(0).normal(size=(2, 4))
    why = "under autocast float64 is not cast (as in torch.autocast), so it cannot meet float32"
    with gc.autocast("float16"):
        for layer, args, who in [(nn.Linear(4, 2), (x64,), "Linear: input is float64"),
                                 (nn.GRU(4, 3), (x64,), "GRU: input is float64"),
                                 (nn.MultiheadAttention(4, 2), (x64,) * 3,
                                  "MultiheadAttention: query is float64")]:
            with pytest.raises(GraphcError) as info:
                layer(*args)
            first, where = str(info.value).splitlines()
            assert first == (f"{who} but the layer's weights are float32: {why}; cast it "
                             "with .astype('float32')") and "test_nn_layers" in where
        with pytest.raises(GraphcError) as info:
            nn.Linear(4, 2, dtype="float64")(x64.astype(np.float32))
        assert str(info.value).splitlines()[0] == (
            f"Linear: input is float32 but the layer's weights are float64: {why}; cast it "
            "with .astype('float64')")
        lin = nn.Linear(4, 2, dtype="float64")
        out = lin(x64)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.numpy(), x64 @ lin.weight.numpy() + lin.bias.numpy())
        assert nn.Linear(4, 2)(x64.astype(np.float32)).dtype == np.float16

def test_an_unbatched_list_input_names_the_recurrent_or_attention_layer():
    """s50 f6 item 1: the list refusal ran after the layer's first op, so an unbatched list
    (a recurrent layer's (L, in), a cell's (in,), attention's (L, E)) or a batched one given
    to a sequence-first MultiheadAttention was expand_dims' or swapaxes' 'cannot use a list
    as a tensor operand', naming no layer. As an array the same input runs."""
    seq, row = [[1.0, 2.0, 3.0, 4.0]] * 5, [1.0, 2.0, 3.0, 4.0]
    mha = nn.MultiheadAttention(4, 2)
    cases = [(nn.GRU(4, 3), (seq,), "GRU: input"), (nn.LSTM(4, 3), (seq,), "LSTM: input"),
             (nn.RNN(4, 3), (seq,), "RNN: input"), (nn.GRUCell(4, 3), (row,), "GRUCell: input"),
             (nn.LSTMCell(4, 3), (row,), "LSTMCell: input"),
             (nn.RNNCell(4, 3), (row,), "RNNCell: input"),
             (mha, (seq, seq, seq), "MultiheadAttention: query"),  # unbatched
             (mha, ([seq],) * 3, "MultiheadAttention: query"),  # batched, sequence-first
             (nn.GRU(4, 3), (np.ones((5, 4), np.float32), [[0.0] * 3]), "GRU: hx")]
    for layer, args, who in cases:
        with pytest.raises(GraphcError) as info:
            layer(*args)
        first, where = str(info.value).splitlines()
        assert first == (f"{who} is a list; give an array (np.asarray), as torch's takes "
                         "a tensor") and "test_nn_layers" in where
    out = nn.GRU(4, 3)(np.asarray(seq, np.float32))
    assert out[0].shape == (5, 3) and out[1].shape == (1, 3)


def test_dropout_needs_no_seed_eager_or_compiled():
    nn.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = np.ones((64, 64), np.float32)
    a, b = drop(gc.tensor(x)).data, drop(gc.tensor(x)).data
    assert set(np.unique(a)) == {0.0, 2.0} and not np.array_equal(a, b)
    assert 0.4 < (a == 0).mean() < 0.6
    step = gc.compile(lambda x: drop(x) * 1.0)
    c, d = step(x), step(x)  # a fresh implicit key on every call
    assert set(np.unique(c)) == {0.0, 2.0} and not np.array_equal(c, d)
    graph = gc.trace(lambda x: drop(x), gc.spec((4, 4)))
    assert [n.name for n in graph.inputs] == ["x", "dropout_key"]
    object.__setattr__(drop, "training", False)
    # `training` is read while tracing: a plan compiled before keeps its dropout
    np.testing.assert_array_equal(gc.compile(lambda x: drop(x) * 1.0)(x), x)
    np.testing.assert_array_equal(drop(gc.tensor(x)).data, x)


def test_dropout_key_block_replays_masks_and_gradients_use_the_same_mask():
    drop = nn.Dropout(0.3)
    x = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)

    def step(x, key):
        with nn.rng_key(key):
            return gc.value_and_grad(lambda a: gc.sum(drop(a)))(x)

    compiled = gc.compile(step)
    (y1, g1), (y2, _), (y3, _) = compiled(x, np.int64(7)), compiled(x, np.int64(7)), \
        compiled(x, np.int64(8))
    assert y1 == y2 and y1 != y3
    # the gradient is the very mask the forward used: loss = sum(mask * x)
    assert set(np.unique(g1)) == {0.0, np.float32(1 / 0.7)}
    np.testing.assert_allclose(np.sum(g1 * x), y1, rtol=1e-5)
    with pytest.raises(GraphcError, match=r"p must be in \[0, 1\]"):
        nn.Dropout(1.5)


# ---- losses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_match_torch(reduction):
    rng = np.random.default_rng(0)
    z, t = rng.normal(size=(6, 5)) * 2, rng.integers(0, 5, 6)
    t[1] = -100
    probs = rng.dirichlet(np.ones(5), 6)
    w = rng.uniform(0.5, 2.0, 5)
    lp = np.log(np.exp(z) / np.exp(z).sum(-1, keepdims=True))
    y = rng.normal(size=(6, 5))
    F = torch.nn.functional
    tz, tt, tw = torch.tensor(z), torch.tensor(t), torch.tensor(w)
    cases = [
        (lambda a: gc.cross_entropy(a, t, reduction=reduction),
         lambda a: F.cross_entropy(a, tt, reduction=reduction), z),
        (lambda a: gc.cross_entropy(a, t, reduction=reduction, weight=w),
         lambda a: F.cross_entropy(a, tt, reduction=reduction, weight=tw), z),
        (lambda a: gc.cross_entropy(a, probs, reduction=reduction),
         lambda a: F.cross_entropy(a, torch.tensor(probs), reduction=reduction), z),
        (lambda a: gc.cross_entropy(a, probs, reduction=reduction, weight=w),
         lambda a: F.cross_entropy(a, torch.tensor(probs), reduction=reduction, weight=tw), z),
        (lambda a: gc.nll_loss(a, np.where(t < 0, 0, t), reduction=reduction, ignore_index=3),
         lambda a: F.nll_loss(a, torch.tensor(np.where(t < 0, 0, t)), reduction=reduction,
                              ignore_index=3), lp),
        (lambda a: gc.mse_loss(a, y, reduction=reduction),
         lambda a: F.mse_loss(a, torch.tensor(y), reduction=reduction), z),
    ]
    for k, (ours, theirs, x) in enumerate(cases):
        tx = torch.tensor(x, requires_grad=True)
        expected = theirs(tx)
        expected.backward(torch.ones_like(expected))
        ex = gc.tensor(x, requires_grad=True)
        got = ours(ex)
        gc.sum(got).backward()
        np.testing.assert_allclose(got.data, expected.detach().numpy(), rtol=1e-12,
                                   err_msg=f"case {k}")
        np.testing.assert_allclose(ex.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14,
                                   err_msg=f"case {k}")
        compiled = gc.compile(ours)(x)
        np.testing.assert_allclose(compiled, expected.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_per_position_class_losses_are_plus_zero_at_ignored_targets(dtype):
    """cross_entropy and nll_loss with reduction="none" gave -0.0 at an ignored target
    (-picked of the +0.0 an ignored row picks), where PyTorch gives +0.0. Now +0.0, with
    ignore_index inside [0, classes) or outside (-100), with class weights and label
    smoothing, eagerly and compiled, and a counted row keeps PyTorch's sign (-0.0 where its
    log-probability is 0: the first row); the values and gradients are PyTorch's."""
    F = torch.nn.functional
    z = np.array([[200.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 0.1, 0.2], [3.0, -1.0, 0.0]], dtype)
    lp = np.asarray(F.log_softmax(torch.tensor(z), -1))
    w = np.array([2.0, 0.5, 1.5], dtype)
    cases = []
    for t, ii in ((np.array([0, 1, -100, 2]), -100), (np.array([0, 2, 1, 1]), 1)):
        tt = torch.tensor(t)
        cases += [
            (lambda a, t=t, ii=ii: gc.cross_entropy(a, t, ignore_index=ii, reduction="none"),
             lambda a, tt=tt, ii=ii: F.cross_entropy(a, tt, ignore_index=ii, reduction="none"),
             z),
            (lambda a, t=t, ii=ii: gc.cross_entropy(a, t, weight=w, ignore_index=ii,
                                                    reduction="none"),
             lambda a, tt=tt, ii=ii: F.cross_entropy(a, tt, weight=torch.tensor(w),
                                                     ignore_index=ii, reduction="none"), z),
            (lambda a, t=t, ii=ii: gc.cross_entropy(a, t, ignore_index=ii, reduction="none",
                                                    label_smoothing=0.1),
             lambda a, tt=tt, ii=ii: F.cross_entropy(a, tt, ignore_index=ii, reduction="none",
                                                     label_smoothing=0.1), z),
            (lambda a, t=t, ii=ii: gc.nll_loss(a, t, ignore_index=ii, reduction="none"),
             lambda a, tt=tt, ii=ii: F.nll_loss(a, tt, ignore_index=ii, reduction="none"), lp)]
    cotangent = np.array([1.0, -2.0, 3.0, 0.5], dtype)
    for k, (ours, theirs, x) in enumerate(cases):
        tx = torch.tensor(x, requires_grad=True)
        expected = theirs(tx)
        expected.backward(torch.tensor(cotangent))
        expected = expected.detach().numpy()
        for got in (ours(gc.tensor(x)).data, gc.compile(ours)(x)):
            got = np.asarray(got)
            assert got.dtype == dtype
            np.testing.assert_allclose(got, expected, rtol=2e-6 if dtype == "float32" else 1e-12,
                                       err_msg=f"case {k}")
            np.testing.assert_array_equal(np.signbit(got), np.signbit(expected),
                                          err_msg=f"case {k}: signs of {got}")
        grad = gc.grad(lambda a: gc.sum(gc.mul(ours(a), cotangent)))(x)
        np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=2e-6 if dtype == "float32"
                                   else 1e-12, atol=1e-7 if dtype == "float32" else 1e-15)
    # the oracle has the signs this is about: +0.0 at the ignored rows (2 for -100, 2 and 3
    # for 1), -0.0 at the first
    with_100, with_1 = (cases[j][1](torch.tensor(z)).numpy() for j in (0, 4))
    np.testing.assert_array_equal(np.signbit(with_100), [True, False, False, False])
    np.testing.assert_array_equal(np.signbit(with_1), [True, False, False, False])
    assert with_100[2] == 0 and (with_1[2:] == 0).all()


def test_cross_entropy_with_classes_last_matches_torch_on_sequences():
    rng = np.random.default_rng(1)
    z, t = rng.normal(size=(2, 3, 4)), rng.integers(0, 4, (2, 3))
    expected = torch.nn.functional.cross_entropy(torch.tensor(z).permute(0, 2, 1),
                                                 torch.tensor(t), reduction="none")
    np.testing.assert_allclose(gc.cross_entropy(gc.tensor(z), t, reduction="none").data,
                               expected.numpy(), rtol=1e-12)


def test_loss_errors_are_one_line():
    z = gc.tensor(np.zeros((2, 3)))
    for call, match in [(lambda: gc.cross_entropy(z, np.zeros(2, int), reduction="avg"),
                         "unknown reduction 'avg'"),
                        (lambda: gc.cross_entropy(z, np.zeros((2, 2))), "probability targets"),
                        (lambda: gc.nll_loss(z, np.zeros((2, 3))), "integer class indices"),
                        (lambda: gc.nll_loss(z, np.zeros(3, int)), "targets of shape")]:
        with pytest.raises(GraphcError, match=match) as info:
            call()
        assert "\n" not in str(info.value).split("  at ")[0].strip()


@pytest.mark.parametrize("module", [nn.MSELoss, nn.CrossEntropyLoss, nn.NLLLoss])
def test_loss_modules_call_the_functions(module):
    rng = np.random.default_rng(0)
    z, t = rng.normal(size=(4, 3)), rng.integers(0, 3, 4)
    target = rng.normal(size=(4, 3)) if module is nn.MSELoss else t
    fn = {nn.MSELoss: gc.mse_loss, nn.CrossEntropyLoss: gc.cross_entropy,
          nn.NLLLoss: gc.nll_loss}[module]
    for reduction in ["mean", "sum"]:
        got = module(reduction=reduction)(gc.tensor(z), target).data
        np.testing.assert_array_equal(got, fn(gc.tensor(z), target, reduction=reduction).data)


def test_embedding_padding_idx_is_torchs():
    """padding_idx: the row starts at zero and gets no gradient (torch's), also as a
    negative index; out-of-range is one error line."""
    import torch
    from errorcheck import assert_one_line_error
    theirs = torch.nn.Embedding(6, 3, padding_idx=-2).double()
    ours = gc.nn.Embedding(6, 3, dtype="float64", padding_idx=-2)
    assert ours.padding_idx == 4 and not ours.weight.data[4].any()
    ours.load_torch_state_dict(theirs.state_dict())
    idx = np.array([[0, 4, 4, 2], [4, 5, 1, 0]])
    w = np.random.default_rng(0).normal(size=(2, 4, 3))
    (theirs(torch.tensor(idx)) * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(ours(idx), theirs(torch.tensor(idx)).detach().numpy())
    for grad in (gc.grad(lambda p: gc.sum(ours.apply(p, idx) * w))(ours.params()),
                 gc.compile(gc.grad(lambda p: gc.sum(ours.apply(p, idx) * w)))(ours.params())):
        np.testing.assert_allclose(grad["weight"], theirs.weight.grad.numpy(), rtol=1e-15)
        assert not grad["weight"][4].any()
    assert_one_line_error(lambda: gc.nn.Embedding(6, 3, padding_idx=6),
                          "padding_idx must be an int in [-6, 6)", "test_nn_layers.py")


def test_embedding_with_padding_idx_takes_an_index_list_as_without():
    """Embedding(padding_idx=...)([1, 2]) said "equal: cannot use a list as a tensor operand"
    (its padding test compared the list), where the layer without padding_idx takes the
    list as take does; both read it as the array of those indices, eagerly and compiled."""
    m = gc.nn.Embedding(6, 3, dtype="float64", padding_idx=1)
    expected = m.weight.data[[1, 2, 2]]
    np.testing.assert_array_equal(m([1, 2, 2]), expected)
    np.testing.assert_array_equal(gc.compile(lambda: m([[1, 2, 2]]))(), expected[None])
    g = gc.grad(lambda p: gc.sum(m.apply(p, [1, 2, 2])))(m.params())["weight"]
    np.testing.assert_array_equal(g[:, 0], [0, 0, 2, 0, 0, 0])  # the padding row gets none


def test_embedding_from_pretrained_is_torchs():
    """Embedding.from_pretrained was missing (an AttributeError). As torch's: the weight is
    the table given (its dtype, a torch tensor's too), frozen by default, padding_idx's row
    kept as given but without a gradient, and no random table drawn."""
    from errorcheck import assert_one_line_error
    rng = np.random.default_rng(0)
    table = rng.normal(size=(6, 3))
    idx = np.array([[0, 4, 4, 2], [4, 5, 1, 0]])
    w = rng.normal(size=(2, 4, 3))
    nn.manual_seed(3)
    after_seed = nn.Linear(2, 2).weight.data
    for given in (table, gc.tensor(table), torch.tensor(table)):
        for freeze, padding_idx in [(True, None), (False, -2), (False, None)]:
            nn.manual_seed(3)
            ours = nn.Embedding.from_pretrained(given, freeze=freeze, padding_idx=padding_idx)
            theirs = torch.nn.Embedding.from_pretrained(torch.tensor(table), freeze=freeze,
                                                        padding_idx=padding_idx)
            # nothing drawn from graphc.nn's generator (as torch's draws nothing)
            np.testing.assert_array_equal(nn.Linear(2, 2).weight.data, after_seed)
            assert repr(ours) == repr(theirs) and ours.padding_idx == theirs.padding_idx
            assert ours.weight.requires_grad == theirs.weight.requires_grad == (not freeze)
            assert ours.weight.data.dtype == np.float64
            np.testing.assert_array_equal(ours.weight.data, table)  # the padding row too
            out = theirs(torch.tensor(idx))
            np.testing.assert_array_equal(ours(idx).data, out.detach().numpy())
            if not freeze:
                (out * torch.tensor(w)).sum().backward()
                gc.sum(ours(idx) * w).backward()
                np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(),
                                           rtol=1e-15)
    half = nn.Embedding.from_pretrained(torch.ones(2, 2, dtype=torch.bfloat16))
    assert str(half.weight.data.dtype) == "bfloat16"
    for call, message in [
            (lambda: nn.Embedding.from_pretrained(table[0]), "Embedding.from_pretrained: "
             "embeddings must be 2-dimensional (num_embeddings, embedding_dim), got shape (3,)"),
            (lambda: nn.Embedding.from_pretrained(np.ones((2, 2), int)),
             "embeddings must hold floating-point numbers, got int64"),
            (lambda: nn.Embedding.from_pretrained(table, padding_idx=6),
             "Embedding.from_pretrained: padding_idx must be an int in [-6, 6), got 6"),
            (lambda: nn.Embedding.from_pretrained(table, sparse=True),
             "Embedding.from_pretrained: sparse=True is not supported"),
            (lambda: nn.Embedding.from_pretrained(table, max_norm=1.0),
             "Embedding.from_pretrained: max_norm=1.0 is not supported"),
            # torch's takes no device= either; graphc's layers refuse it as an unknown
            # keyword in one line, and so does from_pretrained now (it was Python's
            # TypeError), before a float8 table's own line
            (lambda: nn.Embedding.from_pretrained(table, device="cpu"),
             "gc.nn.Embedding.from_pretrained: unknown keyword argument 'device' (it takes "
             "embeddings, freeze, padding_idx, max_norm, norm_type, scale_grad_by_freq, "
             "sparse)"),
            (lambda: nn.Embedding.from_pretrained(
                np.ones((2, 2), ml_dtypes.float8_e4m3fn), device="cpu"),
             "gc.nn.Embedding.from_pretrained: unknown keyword argument 'device'"),
            (lambda: nn.Embedding.from_pretrained(np.ones((2, 2), ml_dtypes.float8_e4m3fn)),
             "Embedding.from_pretrained: embeddings must hold floating-point numbers, got "
             "float8_e4m3fn")]:
        assert_one_line_error(call, message, "test_nn_layers.py")
    with pytest.raises(TypeError, match="unexpected keyword argument 'device'"):
        torch.nn.Embedding.from_pretrained(torch.ones(2, 2), device="cpu")


def test_embedding_takes_torchs_scale_grad_by_freq_and_sparse_at_their_default():
    """nn.Embedding(n, d, sparse=False) (torch code spelling out the defaults) was refused as
    'unknown keyword argument', though from_pretrained took them; True stays refused."""
    from errorcheck import assert_one_line_error
    nn.manual_seed(0)
    plain = nn.Embedding(5, 3).weight.data
    nn.manual_seed(0)
    spelled = nn.Embedding(5, 3, padding_idx=1, scale_grad_by_freq=False, sparse=False)
    theirs = torch.nn.Embedding(5, 3, padding_idx=1, scale_grad_by_freq=False, sparse=False)
    assert repr(spelled) == repr(theirs)
    np.testing.assert_array_equal(spelled.weight.data[[0, 2, 3, 4]], plain[[0, 2, 3, 4]])
    assert not spelled.weight.data[1].any()
    for setting in ("scale_grad_by_freq", "sparse"):
        assert_one_line_error(lambda: nn.Embedding(5, 3, **{setting: True}),
                              f"Embedding: {setting}=True is not supported (graphc's gradient "
                              "is dense and unscaled): leave it False", "test_nn_layers.py")


def test_torch_tensors_numpy_cannot_read_are_refused_by_the_torch_readers_in_one_line():
    """r3 on d639c60: load_torch_state_dict and Embedding.from_pretrained read torch tensors
    with their own copies of foreign_array (the gradient's reader); now they call it, with
    its one line where a tensor holds nothing numpy reads: a meta tensor and a sparse one
    were raw NotImplementedError / TypeError from inside. Valid tensors read as before."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    from errorcheck import assert_one_line_error
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn):
        reference = torch.nn.Linear(3, 2)
        ours = nn.Linear(3, 2)
        ours.load_torch_state_dict({k: v.to(dtype) for k, v in reference.state_dict().items()})
        np.testing.assert_array_equal(ours.weight.data,
                                      reference.weight.detach().to(dtype).float().numpy().T)
        table = torch.nn.Parameter(torch.randn(4, 3).to(dtype))
        if dtype != torch.float8_e4m3fn:  # (refused as a numpy float8 table is, tested above)
            layer = nn.Embedding.from_pretrained(table)
            assert str(layer.weight.data.dtype) == str(dtype).rpartition(".")[2]
            np.testing.assert_array_equal(np.asarray(layer.weight.data, np.float32),
                                          table.detach().float().numpy())
    with pytest.raises(TypeError) as sparse:
        torch.ones(2, 3).to_sparse().numpy()
    for call, message in [
            (lambda: nn.Linear(3, 2).load_torch_state_dict(
                {"weight": torch.empty(2, 3, device="meta"), "bias": torch.zeros(2)}),
             "load_torch_state_dict: weight, a torch.Tensor, is a meta tensor, which holds no "
             "values"),
            (lambda: nn.Embedding.from_pretrained(torch.ones(4, 3).to_sparse()),
             f"Embedding.from_pretrained: embeddings, a torch.Tensor, cannot be read: "
             f"{sparse.value}")]:
        assert_one_line_error(call, message, "test_nn_layers.py")


def test_sequential_and_module_list_add_as_torchs():
    """Sequential + Sequential, Sequential += Sequential and ModuleList + / += an iterable
    were Python TypeErrors. As torch's: + makes a new container of the same modules,
    numbered from 0, += extends in place; Sequential's takes another Sequential alone."""
    from errorcheck import assert_one_line_error

    def build(nn):
        return (nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Sequential(nn.Linear(3, 1)),
                nn.ModuleList([nn.Linear(2, 2)]), [nn.Tanh(), nn.Linear(2, 4)])
    ours, theirs = build(nn), build(torch.nn)
    results = []
    for a, b, items, more in (ours, theirs):
        total = a + b
        listed = items + more
        assert total[0] is a[0] and total[2] is b[0] and listed[0] is items[0]
        before, listing = a, items
        a += b
        items += more
        assert a is before and items is listing
        results.append([(type(c).__name__, list(c.state_dict()), [type(m).__name__ for m in c])
                        for c in (total, listed, a, items)])
    assert results[0] == results[1]
    assert [n for n, _ in ours[0].named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                          "2.bias"]
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal((ours[0] + nn.Sequential(nn.Tanh()))(gc.tensor(x)).data,
                                  gc.tanh(ours[0](gc.tensor(x))).data)
    with pytest.raises(ValueError):  # torch's refuses anything but a Sequential too
        theirs[0] + [torch.nn.ReLU()]
    assert_one_line_error(lambda: ours[0] + [nn.ReLU()],
                          "Sequential + takes another Sequential, got a list", "test_nn_layers.py")
    assert_one_line_error(lambda: ours[2].__iadd__(3),
                          "ModuleList += takes an iterable of modules, got an int",
                          "test_nn_layers.py")
    assert_one_line_error(lambda: ours[2] + [gc.relu], "ModuleList: item 3 is a function",
                          "test_nn_layers.py")


def test_container_add_keeps_the_models_names_and_plans():
    """ModuleList + and Sequential + built the new container by setattr, which renamed the
    model's own modules and Parameters (layers.0 -> 0) and marked the traced modules as
    changed: `for layer in self.enc + self.dec:` in a compiled forward traced again at every
    call. Now the result holds the same modules as a slice does; values as torch's."""
    def model(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc = nn.ModuleList([nn.Linear(3, 4), nn.Tanh()])
                self.dec = nn.ModuleList([nn.Linear(4, 2)])
                self.seq = nn.Sequential(nn.Linear(2, 2))

            def forward(self, x):
                for layer in self.enc + self.dec:
                    x = layer(x)
                return (self.seq + self.seq)(x)
        return Model()
    ours, theirs = model(nn), model(torch.nn)
    ours.load_torch_state_dict(theirs.state_dict())
    names = [name for name, _ in ours.named_parameters()]
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    f = gc.compile(lambda x: ours(x))
    want = theirs(torch.tensor(x)).detach().numpy()
    for _ in range(4):
        np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-6)
    assert f.recompiles == []
    assert [name for name, _ in ours.named_parameters()] == names
    assert [p.name for _, p in ours.named_parameters()] == names  # the Parameters' own names
    assert (ours.enc[0]._path, ours.dec[0]._path, ours.seq[0]._path) == ("enc.0", "dec.0",
                                                                         "seq.0")
    total = ours.enc + ours.dec
    assert list(total.state_dict()) == list((theirs.enc + theirs.dec).state_dict())
    assert ours.enc[0]._path == "enc.0"


def test_a_module_list_of_a_models_modules_keeps_their_names_as_torchs():
    """Session 42 (f3): gc.nn.ModuleList(list(model.layers)) held the model's modules by
    setattr, which renamed them and their Parameters (model.layers.0.weight's name became
    0.weight, the layer's scope and error lines '0'). torch's list holds the same modules,
    named relative to it in its own state_dict, the model's names untouched: so now, as a
    slice holds them. Assigned into a model (the pruning idiom), the list names them there."""
    def model(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)])

            def forward(self, x):
                for layer in nn.ModuleList(list(self.layers)):
                    x = layer(x)
                return x
        return Model()
    ours, theirs = model(nn), model(torch.nn)
    ours.load_torch_state_dict(theirs.state_dict())
    names = [name for name, _ in ours.named_parameters()]
    copied, torch_copied = nn.ModuleList(list(ours.layers)), torch.nn.ModuleList(
        list(theirs.layers))
    assert list(copied.state_dict()) == list(torch_copied.state_dict()) == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    assert copied[0] is ours.layers[0] and list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.name for _, p in ours.named_parameters()] == names  # the Parameters' own names
    assert (ours.layers[0]._path, ours.layers[2]._path) == ("layers.0", "layers.2")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    f = gc.compile(lambda x: ours(x))
    for _ in range(3):
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    assert f.recompiles == [] and [p.name for _, p in ours.named_parameters()] == names
    # the pruning idiom: the new list, assigned, names its items by their new places
    ours.layers = nn.ModuleList([m for i, m in enumerate(ours.layers) if i != 1])
    theirs.layers = torch.nn.ModuleList([m for i, m in enumerate(theirs.layers) if i != 1])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.name for _, p in ours.named_parameters()] == list(ours.state_dict())
    assert ours.layers[1]._path == "layers.1"


_HELD_AGAIN = {  # spelling -> how it holds model.layers' modules a second time
    "Sequential(OrderedDict(named_children()))": lambda nn, m: nn.Sequential(
        collections.OrderedDict(m.layers.named_children())),
    "ModuleList([ModuleList(list(layers))])": lambda nn, m: nn.ModuleList(
        [nn.ModuleList(list(m.layers))]),
    "model.extra = ModuleList(list(layers))": lambda nn, m: setattr(
        m, "extra", nn.ModuleList(list(m.layers))),
    "model.extra = Sequential(OrderedDict(...))": lambda nn, m: setattr(
        m, "extra", nn.Sequential(collections.OrderedDict(m.layers.named_children()))),
    "model.body.extra = ModuleList(list(layers))": lambda nn, m: setattr(
        m.body, "extra", nn.ModuleList(list(m.layers))),
    # session 44 (f2): one module held again, not a container of them, renamed it
    # (first.weight, body.1.weight, extra.a.weight) where torch keeps layers.0.weight
    "model.first = layers[0]": lambda nn, m: setattr(m, "first", m.layers[0]),
    "model.body.append(layers[0])": lambda nn, m: m.body.append(m.layers[0]),
    "model.extra = ModuleDict({'a': layers[0]})": lambda nn, m: setattr(
        m, "extra", nn.ModuleDict({"a": m.layers[0]})),
    "model.body.insert(0, layers[1]); model.first = layers[2]": lambda nn, m: (
        m.body.insert(0, m.layers[1]), setattr(m, "first", m.layers[2])),
}


@pytest.mark.parametrize("spelling", list(_HELD_AGAIN))
def test_holding_a_models_modules_again_keeps_their_first_names_as_torchs(spelling):
    """Session 43 (f1): these spellings of 'a container of the model's modules' renamed the
    model's Parameters and Buffers (their own names, which a Trainer's checkpoint names the
    Buffers by, and the layers' scopes) to the new container's (0.weight, 0.0.weight,
    extra.0.weight). torch names each by the first place the model holds it in: as
    named_parameters and state_dict's first key, so now."""
    def model(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(3, 4), nn.BatchNorm1d(4),
                                             nn.Linear(4, 2)])
                self.body = nn.Sequential(nn.Tanh())

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        return Model()
    ours, theirs = model(nn), model(torch.nn)
    ours.load_torch_state_dict(theirs.state_dict())
    _HELD_AGAIN[spelling](nn, ours)
    _HELD_AGAIN[spelling](torch.nn, theirs)
    torch_names = [name for name, _ in theirs.named_parameters()]
    assert [name for name, _ in ours.named_parameters()] == torch_names
    assert [p.name for _, p in ours.named_parameters()] == torch_names  # their own names
    assert [b.name for _, b in ours.named_buffers()] == [
        name for name, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [layer._path for layer in ours.layers] == ["layers.0", "layers.1", "layers.2"]
    # an optimiser's names, torch's param_names
    assert list(gc.optim.SGD(lr=0.1).bind(ours).parameters) == torch.optim.SGD(
        theirs.named_parameters(), lr=0.1).param_groups[0]["param_names"]
    # a Trainer's checkpoint names the Buffers it carries by their names
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    trainer = gc.Trainer(lambda p, batch: gc.mean(ours.apply(p, batch[0]) ** 2),
                         ours.params(), gc.optim.SGD(lr=0.1), lambda rng: (x,), steps=1)
    assert list(trainer.buffers) == [name for name, _ in theirs.named_buffers()]


def _assert_named_as_torch(ours, theirs):
    """graphc's model names its parameters (their own .name and named_parameters) and its
    modules as torch's model of the same building steps does."""
    torch_names = [name for name, _ in theirs.named_parameters()]
    assert [p.name for p in ours.parameters()] == [
        name for name, _ in ours.named_parameters()] == torch_names
    assert [m._path for _, m in ours.named_modules()] == [
        name for name, _ in theirs.named_modules()]


@pytest.mark.parametrize("spelling", ["body.append(layers[0])",
                                      "body.sub = Sequential(layers[1])"])
def test_a_module_held_again_at_an_earlier_place_takes_that_name_as_torchs(spelling):
    """Session 44 (f2): the first place is named_modules' first, not the oldest: where the
    model's body comes before its layers, a layer held in body too is body.*, in torch's
    named_parameters and in graphc's names (a Sequential of it kept layers.1)."""
    def model(nn):
        m = nn.Module()
        m.body = nn.Sequential(nn.Tanh())
        m.layers = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])
        if spelling.startswith("body.append"):
            m.body.append(m.layers[0])
        else:
            m.body.sub = nn.Sequential(m.layers[1])
        return m
    ours, theirs = model(nn), model(torch.nn)
    _assert_named_as_torch(ours, theirs)

_REBUILT = {  # model.layers built again of its own modules
    "pruned": lambda nn, old: nn.ModuleList([layer for i, layer in enumerate(old) if i != 2]),
    "reversed": lambda nn, old: nn.ModuleList(list(old)[::-1]),
}


@pytest.mark.parametrize("keep_old", [False, True])
@pytest.mark.parametrize("item", [0, 1])
@pytest.mark.parametrize("how", list(_REBUILT))
def test_a_module_held_again_in_a_rebuilt_list_keeps_its_first_name_as_torchs(how, item,
                                                                              keep_old):
    """r3 on 14720b0: after model.layers = ModuleList(pruned or reordered layers), the
    layers had no recorded place (set as a slice's items are), so the model's root was not
    found from them, or it was found through the old list, alive while the user holds it
    (or a reference cycle does): m.layers[i].extra = m.a named a.weight layers.1.extra.weight
    (or layers.2.extra.weight, a path of the old list). torch keeps a.weight, its first
    place."""
    import gc as python_gc

    def model(nn):
        m = nn.Module()
        m.a = nn.Linear(2, 2)
        m.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        m.b = nn.Linear(2, 2)
        old = m.layers
        m.layers = _REBUILT[how](nn, old)
        if not keep_old:
            del old
            python_gc.collect()
        m.layers[item].extra = m.a
        return m
    ours, theirs = model(nn), model(torch.nn)
    _assert_named_as_torch(ours, theirs)


def test_a_container_of_another_models_modules_names_them_in_the_model_it_joins():
    """The other side of the rule above: a model built of another's modules (torch's
    feature extractor, nn.Sequential(*list(backbone.children())[:-1])) names them by its own
    places, where the other model does not hold them (torch's named_parameters of it)."""
    backbone = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    head = nn.Module()
    head.features = nn.Sequential(*list(backbone.children())[:-1])
    assert [p.name for _, p in head.named_parameters()] == [
        name for name, _ in head.named_parameters()] == ["features.0.weight", "features.0.bias"]
    assert head.features[0]._path == "features.0"


def test_a_tied_parameter_set_into_a_model_keeps_its_first_name():
    """A module with a tied weight, set into a model, renamed it by its last place there
    (child.dec.weight), where named_parameters and torch name it by its first."""
    def model(nn):
        class Tied(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc, self.dec = nn.Linear(3, 3), nn.Linear(3, 3)
                self.dec.weight = self.enc.weight
        root = nn.Module()
        root.child = Tied()
        return root
    ours, theirs = model(nn), model(torch.nn)
    assert [p.name for _, p in ours.named_parameters()] == [
        name for name, _ in theirs.named_parameters()] == [
        "child.enc.weight", "child.enc.bias", "child.dec.bias"]


_KEPT = []  # old lists a test keeps alive


def _fresh(nn, p):  # a new Parameter of p's values, in either library
    return nn.Parameter(p.detach().clone() if nn is torch.nn else p.data.copy())


_TIED_TO_AN_EARLIER_PLACE = {  # m.a, m.layers (3 Linear), m.b
    "a.weight = b.weight": lambda nn, m: setattr(m.a, "weight", m.b.weight),
    "p = a.weight (own before children)": lambda nn, m: setattr(m, "p", m.a.weight),
    "layers[0].weight = layers[2].weight": lambda nn, m: setattr(
        m.layers[0], "weight", m.layers[2].weight),
    "a.weight = b.weight; b.weight = new": lambda nn, m: (
        setattr(m.a, "weight", m.b.weight), setattr(m.b, "weight", _fresh(nn, m.b.weight))),
    "a.weight = b.weight; a.weight = new": lambda nn, m: (
        setattr(m.a, "weight", m.b.weight), setattr(m.a, "weight", _fresh(nn, m.a.weight))),
    "reversed; layers[0].bias = b.bias": lambda nn, m: (
        setattr(m, "layers", nn.ModuleList(list(m.layers)[::-1])),
        setattr(m.layers[0], "bias", m.b.bias)),
    "reversed, old kept; layers[1].bias = b.bias": lambda nn, m: (
        _KEPT.append(m.layers), setattr(m, "layers", nn.ModuleList(list(_KEPT[-1])[::-1])),
        setattr(m.layers[1], "bias", m.b.bias)),
    "pruned; layers[0].weight = layers[1].weight": lambda nn, m: (
        setattr(m, "layers", nn.ModuleList([x for i, x in enumerate(m.layers) if i != 0])),
        setattr(m.layers[0], "weight", m.layers[1].weight)),
    # (the old list, kept alive, holds layers[0] at the same path: the tie was compared in it)
    "pruned, old kept; layers[0].bias = layers[1].bias": lambda nn, m: (
        _KEPT.append(m.layers), setattr(m, "layers", nn.ModuleList([_KEPT[-1][0], _KEPT[-1][2]])),
        setattr(m.layers[0], "bias", m.layers[1].bias)),
    "n1.running_mean = n2.running_mean": lambda nn, m: (
        setattr(m, "n1", nn.BatchNorm1d(3)), setattr(m, "n2", nn.BatchNorm1d(3)),
        setattr(m.n1, "running_mean", m.n2.running_mean)),
    "later blocks tied to the first (ALBERT's)": lambda nn, m: [
        (setattr(layer, "weight", m.layers[0].weight), setattr(layer, "bias", m.layers[0].bias))
        for layer in m.layers[1:]],
}


@pytest.mark.parametrize("how", list(_TIED_TO_AN_EARLIER_PLACE))
def test_a_tensor_tied_to_an_earlier_place_is_named_by_it_as_torchs(how):
    """`m.a.weight = m.b.weight` (a tensor set at a place that comes before its first one in
    named_parameters' order) kept its name b.weight, which traces and graph dumps name its
    input by and a Trainer's checkpoint a Buffer by, where named_parameters, state_dict and
    torch's named_parameters name it a.weight. Now a tie takes the new place's name where
    it comes first (compared down the two places' common path, no walk of the model); each
    tensor's own name is torch's name for it, and a trace's input is named so."""
    def model(nn):
        m = nn.Module()
        m.a = nn.Linear(3, 3)
        m.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])
        m.b = nn.Linear(3, 3)
        _TIED_TO_AN_EARLIER_PLACE[how](nn, m)
        return m
    ours, theirs = model(nn), model(torch.nn)
    torch_names = [name for name, _ in theirs.named_parameters()]
    assert [p.name for p in ours.parameters()] == [
        name for name, _ in ours.named_parameters()] == torch_names
    assert [b.name for _, b in ours.named_buffers()] == [
        name for name, _ in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    layers = [ours.a, *ours.layers, ours.b, *[vars(ours)[n] for n in ("n1", "n2")
                                              if n in vars(ours)]]

    def forward(x):
        for layer in layers:
            x = layer(x)
        return x
    ours.eval()  # (BatchNorm's running statistics read, inputs too)
    names = [node.attrs["name"] for node in gc.trace(forward, gc.spec((2, 3), "float32")).inputs]
    assert len(set(names)) == len(names)
    # (each input one of torch's names: the bug's b.weight is none)
    assert set(names[1:]) <= {*torch_names, *(name for name, _ in theirs.named_buffers())}


def test_a_tie_to_another_model_s_tensor_keeps_its_name():
    """A tie across models (`b.dec.weight = a.enc.weight`) keeps the tensor's name in its
    own model, as before: a tie is named by the first of its places only in the tree whose
    place its name spells (not where b has an `enc` of its own, whose weight is another)."""
    a = nn.Module()
    a.enc = nn.Linear(2, 2)
    for with_enc in (False, True):
        b = nn.Module()
        if with_enc:
            b.enc = nn.Linear(2, 2)
        b.dec = nn.Linear(2, 2)
        b.dec.weight = a.enc.weight
        assert a.enc.weight.name == "enc.weight"


_FIRST_PLACE_GONE = {  # how the first place of model.layers' modules goes, extra kept
    "pruned": lambda nn, m: setattr(m, "layers", nn.ModuleList([m.layers[0], m.layers[2]])),
    "deleted": lambda nn, m: delattr(m, "layers"),
    "replaced": lambda nn, m: setattr(m, "layers", nn.ModuleList([nn.Linear(3, 4)])),
    "del layers[1]": lambda nn, m: m.layers.__delitem__(1),
    "layers[1] = new": lambda nn, m: m.layers.__setitem__(1, nn.Linear(4, 4)),
}


@pytest.mark.parametrize("how", list(_FIRST_PLACE_GONE))
def test_a_module_held_again_takes_its_next_name_when_its_first_place_goes(how):
    """r3 on 80e60dc: after model.extra = ModuleList(list(model.layers)), pruning, deleting
    or replacing model.layers (or an item of it) left the modules that now live only in
    extra named layers.* (their Parameters', Buffers', a Trainer's buffers and the scopes),
    names no place holds. torch names them by the place left, extra.*: so now."""
    def model(nn):
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(3, 4), nn.BatchNorm1d(4),
                                             nn.Linear(4, 4)])
                self.extra = nn.ModuleList(list(self.layers))

            def forward(self, x):
                for layer in self.extra:
                    x = layer(x)
                return x
        return Model()
    ours, theirs = model(nn), model(torch.nn)
    _FIRST_PLACE_GONE[how](nn, ours)
    _FIRST_PLACE_GONE[how](torch.nn, theirs)
    assert [p.name for p in ours.parameters()] == [n for n, _ in theirs.named_parameters()]
    buffers = [n for n, _ in theirs.named_buffers()]
    assert [b.name for _, b in ours.named_buffers()] == buffers
    assert [name for name, _ in ours.named_modules()] == [
        name for name, _ in theirs.named_modules()]
    assert [m._path for _, m in ours.named_modules()][1:] == [
        name for name, _ in theirs.named_modules()][1:]  # (the scopes)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    trainer = gc.Trainer(lambda p, batch: gc.mean(ours.apply(p, batch[0]) ** 2),
                         ours.params(), gc.optim.SGD(lr=0.1), lambda rng: (x,), steps=1)
    assert list(trainer.buffers) == buffers


def test_a_model_holding_its_modules_twice_keeps_their_names_when_set_into_a_root():
    """r3 on 80e60dc: r.m = m, where m.extra = ModuleList(list(m.layers)), emptied extra's
    record of the items m holds at m.layers (the walk naming m took the name it had just
    given, m.layers.0, for one under m being replaced); an edit of extra then renamed the
    model's first layer m.extra.0. torch keeps m.layers.0.*."""
    def model(nn):
        m = nn.Module()
        m.layers = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])
        m.extra = nn.ModuleList(list(m.layers))
        r = nn.Module()
        r.m = m
        return r
    ours, theirs = model(nn), model(torch.nn)
    assert [p.name for p in ours.parameters()] == [n for n, _ in theirs.named_parameters()]
    ours.m.extra[1] = nn.Linear(4, 2)
    theirs.m.extra[1] = torch.nn.Linear(4, 2)
    assert [p.name for p in ours.parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [layer._path for layer in ours.m.layers] == ["m.layers.0", "m.layers.1"]


def test_embedding_from_pretrained_runs_a_subclass_init():
    """from_pretrained built the layer with object.__new__, so a subclass's __init__ did not
    run (its attributes missing); as torch's, it is built through cls."""
    def scaled(base):
        class Scaled(base):
            def __init__(self, *args, scale=2.0, **kwargs):
                super().__init__(*args, **kwargs)
                self.scale = scale

            def forward(self, idx):
                return super().forward(idx) * self.scale
        return Scaled
    Scaled, TorchScaled = scaled(nn.Embedding), scaled(torch.nn.Embedding)
    table = np.random.default_rng(1).normal(size=(5, 3))
    idx = np.array([[0, 4, 1], [2, 2, 3]])
    ours = Scaled.from_pretrained(table, padding_idx=1)
    theirs = TorchScaled.from_pretrained(torch.tensor(table), padding_idx=1)
    assert type(ours) is Scaled and ours.scale == 2.0 and ours.padding_idx == 1
    np.testing.assert_array_equal(ours(idx).data, theirs(torch.tensor(idx)).detach().numpy())


def test_embedding_from_pretrained_passes_the_sizes_by_keyword_as_torchs():
    """from_pretrained called cls(rows, cols, ...) positionally where torch 2.13 calls
    cls(num_embeddings=rows, embedding_dim=cols, _weight=..., ...): a subclass with
    keyword-only sizes was a TypeError in graphc and built in torch; one whose positional
    parameters are other names (and order) built in graphc, transposed, and fails in torch."""
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    for base, wrap in ((nn.Embedding, lambda a: a), (torch.nn.Embedding, torch.tensor)):
        class Named(base):
            def __init__(self, *, num_embeddings, embedding_dim, **kwargs):
                super().__init__(num_embeddings=num_embeddings, embedding_dim=embedding_dim,
                                 **kwargs)
                self.tag = 2

        class Swapped(base):
            def __init__(self, dim_first, rows_second, **kwargs):
                super().__init__(rows_second, dim_first, **kwargs)

        named = Named.from_pretrained(wrap(table), padding_idx=1)
        weight = named.weight.detach().numpy() if base is torch.nn.Embedding else \
            named.weight.numpy()
        assert named.tag == 2 and named.padding_idx == 1
        np.testing.assert_array_equal(weight, table)
        with pytest.raises(TypeError, match=r"missing 2 required positional arguments: "
                                            r"'dim_first' and 'rows_second'"):
            Swapped.from_pretrained(wrap(table))


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_with_kdim_vdim_and_per_head_weights_matches_torch(batch_first):
    # torch's separate q/k/v projections where the key's and value's widths differ from E
    rng = np.random.default_rng(4)
    E, H, B, T, S, kdim, vdim = 8, 2, 3, 4, 5, 6, 3
    ours = nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=batch_first,
                                 dtype="float64")
    assert ours.in_proj_weight is None and ours.k_proj_weight.shape == (kdim, E)
    for p in ours.parameters():
        p.data = rng.normal(size=p.shape) * 0.5
    theirs = torch.nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=batch_first,
                                         dtype=torch.float64)
    ours_state = ours.state_dict()
    assert sorted(ours_state) == sorted(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.T if k.endswith("proj_weight") or
                                            k == "out_proj.weight" else v)
                            for k, v in ours_state.items()})
    fresh = nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=batch_first,
                                  dtype="float64")
    fresh.load_torch_state_dict(theirs.state_dict())  # the torch layout goes back in
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, ours_state[name])

    def layout(*shape):
        return shape if batch_first else (shape[1], shape[0], shape[2])
    q, k, v = (rng.normal(size=layout(B, n, w)) for n, w in ((T, E), (S, kdim), (S, vdim)))
    expected, expected_w = theirs(*(torch.tensor(a) for a in (q, k, v)),
                                  average_attn_weights=False)
    got, got_w = ours(q, k, v, average_attn_weights=False)
    assert np.asarray(got_w).shape == (B, H, T, S)
    np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(got_w), expected_w.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    tk = torch.tensor(k, requires_grad=True)
    theirs(torch.tensor(q), tk, torch.tensor(v))[0].sum().backward()
    grad_k = gc.grad(lambda key: gc.sum(ours(q, key, v)[0]))(k)
    np.testing.assert_allclose(grad_k, tk.grad.numpy(), rtol=1e-9, atol=1e-12)
    with pytest.raises(gc.GraphcError, match="MultiheadAttention: key has 8 features, the "
                       "layer takes 6"):
        ours(q, q, v)


@pytest.mark.parametrize("kdim, vdim", [(None, None), (12, 12), (6, 12), (12, 3), (6, 3)])
def test_multihead_attention_has_torchs_head_dim_and_qkv_same_embed_dim(kdim, vdim):
    """Code ported from torch reads MultiheadAttention's head_dim and _qkv_same_embed_dim
    (torch's own forward chooses its in-projection by the latter); graphc's had neither."""
    ours = nn.MultiheadAttention(12, 4, kdim=kdim, vdim=vdim)
    theirs = torch.nn.MultiheadAttention(12, 4, kdim=kdim, vdim=vdim)
    assert (ours.head_dim, ours._qkv_same_embed_dim) == \
        (theirs.head_dim, theirs._qkv_same_embed_dim)
    assert ours.head_dim == 3
    # as in torch, the flag says which weights the layer has
    assert ours._qkv_same_embed_dim == (ours.in_proj_weight is not None)
    assert "head_dim" not in ours.state_dict() and "head_dim" not in repr(ours)


def test_linear_and_embedding_take_torchs_keyword_names_and_refuse_a_torch_positional():
    assert nn.Linear(in_features=3, out_features=2).weight.shape == (3, 2)
    assert nn.Embedding(num_embeddings=5, embedding_dim=2).weight.shape == (5, 2)
    # torch's third positional argument of Embedding is padding_idx, graphc's the rng: an
    # int there failed inside the initialisation ('int' object has no attribute 'normal')
    with pytest.raises(gc.GraphcError, match=r"rng must be a numpy Generator \(np.random"
                       r".default_rng\(seed\)\), got 0; a torch argument given by position "
                       "may have landed there: pass those by keyword"):
        nn.Embedding(10, 4, 0)


@pytest.mark.parametrize("add_bias_kv, add_zero_attn", [(True, False), (False, True),
                                                         (True, True)])
def test_multihead_attention_with_add_bias_kv_and_add_zero_attn_matches_torch(add_bias_kv,
                                                                              add_zero_attn):
    # torch's positional order up to add_zero_attn; the extra keys come after the masks
    rng = np.random.default_rng(5)
    E, H, B, T, S = 8, 2, 3, 4, 5
    ours = nn.MultiheadAttention(E, H, 0.0, True, add_bias_kv, add_zero_attn,
                                 batch_first=True, dtype="float64")
    theirs = torch.nn.MultiheadAttention(E, H, 0.0, True, add_bias_kv, add_zero_attn,
                                         batch_first=True, dtype=torch.float64)
    for p in ours.parameters():
        p.data = rng.normal(size=p.shape) * 0.5
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.T if k in ("in_proj_weight", "out_proj.weight")
                                            else v) for k, v in ours.state_dict().items()})
    q, k = rng.normal(size=(B, T, E)), rng.normal(size=(B, S, E))
    mask, padding = rng.random((T, S)) < 0.3, rng.random((B, S)) < 0.3
    tq = torch.tensor(q, requires_grad=True)
    expected, expected_w = theirs(tq, torch.tensor(k), torch.tensor(k),
                                  attn_mask=torch.tensor(mask),
                                  key_padding_mask=torch.tensor(padding))
    (expected * torch.tensor(np.cos(np.arange(E)))).sum().backward()
    got, got_w = ours(q, k, k, attn_mask=mask, key_padding_mask=padding)
    extra = int(add_bias_kv) + int(add_zero_attn)
    assert np.asarray(got_w).shape == (B, T, S + extra)
    np.testing.assert_allclose(np.asarray(got), expected.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(np.asarray(got_w), expected_w.detach().numpy(), atol=1e-12)
    compiled = gc.compile(lambda a: ours(a, k, k, attn_mask=mask, key_padding_mask=padding)[0])
    np.testing.assert_allclose(compiled(q), expected.detach().numpy(), atol=1e-12)
    grad_q = gc.grad(lambda a: gc.sum(ours(a, k, k, attn_mask=mask, key_padding_mask=padding)[0]
                                      * np.cos(np.arange(E))))(q)
    np.testing.assert_allclose(grad_q, tq.grad.numpy(), atol=1e-11)
    if add_bias_kv:
        theirs.zero_grad()
        theirs(torch.tensor(q), torch.tensor(k), torch.tensor(k))[0].sum().backward()
        ours.bias_k.grad = None
        gc.sum(ours(gc.tensor(q), k, k)[0]).backward()
        np.testing.assert_allclose(ours.bias_k.grad, theirs.bias_k.grad.numpy(), atol=1e-11)


def test_an_integer_dtype_is_refused_where_torch_refuses_it_naming_the_layer():
    # torch refuses an integer or bool dtype= for a layer with parameters at construction
    # ("Only Tensors of floating point ... can require gradients"); graphc refused it too,
    # but as its Parameter did, naming neither the layer nor dtype=. A layer built without
    # parameters (a norm layer with affine=False) takes it in torch: its forward runs in the
    # input's dtype, as graphc's (unchanged).
    with_parameters = [
        ("Linear", lambda nn_, d: nn_.Linear(4, 3, dtype=d)),
        ("Embedding", lambda nn_, d: nn_.Embedding(4, 3, dtype=d)),
        ("PReLU", lambda nn_, d: nn_.PReLU(dtype=d)),
        ("LayerNorm", lambda nn_, d: nn_.LayerNorm(4, dtype=d)),
        ("GroupNorm", lambda nn_, d: nn_.GroupNorm(2, 4, dtype=d)),
        ("BatchNorm1d", lambda nn_, d: nn_.BatchNorm1d(4, affine=True, dtype=d)),
        ("InstanceNorm1d", lambda nn_, d: nn_.InstanceNorm1d(4, affine=True, dtype=d)),
        ("MultiheadAttention", lambda nn_, d: nn_.MultiheadAttention(4, 2, dtype=d))]
    for name, make in with_parameters:
        for theirs, ours in [(torch.int64, "int64"), (torch.bool, torch.bool)]:
            with pytest.raises(RuntimeError, match="floating point"):
                make(torch.nn, theirs)
            with pytest.raises(GraphcError) as info:
                make(nn, ours)
            got = "int64" if ours == "int64" else "bool"
            assert str(info.value).splitlines()[0] == (
                f"{name}: dtype={ours!r}: the layer's parameters take a floating-point "
                f"dtype, got {got} (as torch's)")
    without = [lambda nn_, d: nn_.LayerNorm(4, elementwise_affine=False, dtype=d),
               lambda nn_, d: nn_.RMSNorm(4, elementwise_affine=False, dtype=d),
               lambda nn_, d: nn_.GroupNorm(2, 4, affine=False, dtype=d),
               lambda nn_, d: nn_.InstanceNorm1d(4, dtype=d)]
    x = np.random.default_rng(0).standard_normal((2, 4, 4))
    for make in without:
        want = make(torch.nn, torch.int64)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(make(nn, "int64")(gc.tensor(x)).data, want, rtol=1e-6,
                                   atol=1e-12)


def test_running_statistics_in_an_integer_dtype_are_refused_naming_the_layer():
    # review r2 of 10240ff: README said a norm layer with affine=False takes an integer
    # dtype and runs in its input's dtype; with running statistics graphc's training
    # forward failed deep inside ("mul: float scalar 1.25 meets an integer tensor"), and
    # BatchNorm's eval ran where torch's forward refuses in either mode ("mixed dtype"),
    # torch's InstanceNorm truncating them to integers. Refused at construction now.
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    for mode in ("train", "eval"):
        with pytest.raises(RuntimeError, match="mixed dtype"):
            getattr(torch.nn.BatchNorm1d(3, affine=False, dtype=torch.int64), mode)()(
                torch.tensor(x))
    for name, make in [
            ("BatchNorm1d", lambda nn_, d: nn_.BatchNorm1d(3, affine=False, dtype=d)),
            ("BatchNorm2d", lambda nn_, d: nn_.BatchNorm2d(3, affine=False, dtype=d)),
            ("InstanceNorm1d", lambda nn_, d: nn_.InstanceNorm1d(3, track_running_stats=True,
                                                                 dtype=d))]:
        for given, got in [("int64", "int64"), (torch.bool, "bool")]:
            with pytest.raises(GraphcError) as info:
                make(nn, given)
            assert str(info.value).splitlines()[0] == (
                f"{name}: dtype={given!r}: the running statistics (track_running_stats=True) "
                f"take a floating-point dtype, got {got}; pass a float dtype, or "
                "track_running_stats=False")
    # without running statistics they still run in the input's dtype, as torch's
    for make in [lambda nn_, d: nn_.BatchNorm1d(3, affine=False, track_running_stats=False,
                                                dtype=d),
                 lambda nn_, d: nn_.InstanceNorm1d(3, dtype=d)]:
        want = make(torch.nn, torch.int64).train()(torch.tensor(x)).numpy()
        np.testing.assert_allclose(make(nn, "int64").train()(gc.tensor(x)).data, want,
                                   rtol=1e-6, atol=1e-12)


def test_load_state_dict_reads_torch_tensors_as_graphcs_other_torch_readers():
    """(review r7) Module.load_state_dict read torch tensors by np.asarray: one requiring
    grad (dict(named_parameters())) was torch's raw RuntimeError, a bfloat16 one refused;
    load_torch_state_dict and backward() read both. A conj() one is one line with torch's
    reason."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    # (a layer whose weights graphc stores in torch's layout: a Linear's is refused, below)
    source = torch.nn.LayerNorm(3)
    with torch.no_grad():
        source.weight.uniform_(0.5, 2.0), source.bias.uniform_(-1.0, 1.0)
    for state, dtype in [(dict(source.named_parameters()), torch.float32),
                         ({k: v.detach().bfloat16() for k, v in source.state_dict().items()},
                          torch.bfloat16)]:
        model = nn.LayerNorm(3)
        model.load_state_dict(state)
        for mine, theirs in ((model.weight, source.weight), (model.bias, source.bias)):
            np.testing.assert_array_equal(np.asarray(mine.numpy()),
                                          theirs.detach().to(dtype).float().numpy())
    with pytest.raises(gc.GraphcError, match=r"^load_state_dict: weight, a torch\.Tensor, "
                                             r"cannot be read: "):
        nn.LayerNorm(2).load_state_dict({"weight": torch.ones(2, dtype=torch.complex64)
                                         .conj(), "bias": torch.zeros(2)})


def test_load_state_dict_refuses_a_torch_linear_weight_pointing_to_load_torch_state_dict():
    """graphc's Linear stores its weight (in, out), torch's (out, in): Module.load_state_dict
    given a torch model's state_dict loaded a square Linear's weight untransposed, silently
    (a non-square one failed on its shape). A torch tensor there is refused in one line
    naming load_torch_state_dict, which gives torch's outputs; arrays in graphc's layout
    load as before."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    want = source(torch.tensor(x)).detach().numpy()
    for state, kind in ((source.state_dict(), "torch.Tensor"),
                        (dict(source.named_parameters()), "torch.nn.parameter.Parameter")):
        model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
        before = model.state_dict()
        with pytest.raises(gc.GraphcError) as info:
            model.load_state_dict(state)
        line, where = str(info.value).splitlines()
        assert line == (f"load_state_dict: 0.weight is a {kind} for a weight graphc's "
                        "Linear stores transposed against torch's: convert each value to a "
                        "numpy array if the state is graphc's layout (a graphc model's "
                        "state_dict() saved as "
                        "tensors), or load_torch_state_dict if it is a torch module's "
                        "state_dict()")
        assert "test_nn_layers.py" in where
        for name, value in model.state_dict().items():  # nothing loaded
            np.testing.assert_array_equal(value, before[name])
        model.load_torch_state_dict(state)
        np.testing.assert_allclose(model(gc.tensor(x)).numpy(), want, rtol=1e-6, atol=1e-7)
        model.load_state_dict({k: np.asarray(v) for k, v in model.state_dict().items()})
        np.testing.assert_allclose(model(gc.tensor(x)).numpy(), want, rtol=1e-6, atol=1e-7)


def test_load_state_dict_torch_layout_refusal_is_for_torch_tensors_alone():
    """The refusal above is for torch's tensors: another library's arrays (h5py Datasets,
    JAX, TF: their Dense kernels are (in, out), graphc's layout) load as arrays, as before
    (they were refused, pointing to load_torch_state_dict, which transposes them). graphc's
    own state saved as torch tensors is refused, and the line's first way (np.asarray each
    value) loads it: load_torch_state_dict would transpose a square weight silently."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")

    class Dataset:  # an h5py Dataset's shape: __array__, no torch
        __module__ = "h5py._hl.dataset"

        def __init__(self, a):
            self.a = np.asarray(a)

        def __array__(self, dtype=None, copy=None):
            return self.a

    source = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    x = gc.tensor(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))
    want = source(x).numpy()
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    model.load_state_dict({k: Dataset(v) for k, v in source.state_dict().items()})
    np.testing.assert_array_equal(model(x).numpy(), want)
    saved = {k: torch.from_numpy(np.array(v)) for k, v in source.state_dict().items()}
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(gc.GraphcError, match=r"^load_state_dict: 0\.weight is a torch\.Tensor"
                                             r" .*: convert each value to a numpy array if "
                                             r"the state is graphc's layout"):
        model.load_state_dict(saved)
    model.load_state_dict({k: np.asarray(v) for k, v in saved.items()})
    np.testing.assert_array_equal(model(x).numpy(), want)


def test_deleting_a_child_makes_plans_traced_through_it_stale():
    """(s44, r7) `del seq.sub` (an attribute child, one of a Sequential's items as in torch)
    and `del net.head` left compiled functions traced through them running the deleted
    child ((4, 3) results where eager and torch give (4, 2)): a delete is counted as a set
    over the child is."""
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    seq = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    seq.sub = nn.Linear(2, 3)
    f = gc.compile(lambda v: seq(v))
    assert f(x).shape == (4, 3)
    del seq.sub
    np.testing.assert_allclose(f(x), np.asarray(seq(gc.tensor(x))), rtol=1e-6)
    assert f(x).shape == (4, 2)

    class Net(nn.Module):
        def __init__(self):
            self.body, self.head = nn.Linear(2, 2), nn.Linear(2, 3)

        def forward(self, v):
            y = self.body(v)
            return self.head(y) if hasattr(self, "head") else y
    net = Net()
    g = gc.compile(lambda v: net(v))
    assert g(x).shape == (4, 3)
    del net.head
    np.testing.assert_allclose(g(x), np.asarray(net(gc.tensor(x))), rtol=1e-6)
