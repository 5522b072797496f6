"""gc.nn.TransformerEncoderLayer / DecoderLayer and their stacks (graphc/transformer.py)
against torch.nn's in float64, and Module.load_torch_state_dict: a torch module's weights
load by name, transposed where graphc's layout is, and outputs and gradients agree."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error, one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def pair(kind, *args, **kw):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(*args, **kw).double().eval()
    ours = getattr(gc.nn, kind)(*args, **kw, dtype="float64").eval()
    assert {n for n, _ in ours.named_parameters()} == set(theirs.state_dict())
    ours.load_torch_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch_with_masks_and_gradients(norm_first, activation):
    ours, theirs = pair("TransformerEncoderLayer", 16, 4, 32, activation=activation,
                        batch_first=True, norm_first=norm_first)
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(2, 5, 16)), rng.normal(size=(2, 5, 16))
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    padding = np.array([[False] * 5, [False] * 3 + [True] * 2])
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx, src_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(padding))
    (t_out * torch.tensor(w)).sum().backward()
    out = ours(x, src_mask=causal, src_key_padding_mask=padding)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)

    def loss(p, x):
        return gc.sum(ours.apply(p, x, src_mask=causal, src_key_padding_mask=padding) * w)
    g_params, g_x = gc.compile(gc.grad(loss, argnums=(0, 1)))(ours.params(), x)
    np.testing.assert_allclose(g_x, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    # graphc's layout: Linear weights and in_proj_weight are torch's transposed
    transposed = ("linear1.weight", "linear2.weight", "out_proj.weight", "in_proj_weight")
    for name, p in theirs.named_parameters():
        g = g_params[name].T if name.endswith(transposed) else g_params[name]
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_left_padded_query_under_a_causal_mask_gives_torchs_finite_output_and_gradients():
    """Sequence 0 is left-padded by one, so under the causal mask its query 0 may attend to
    nothing: its self-attention was NaN, and the NaN reached every parameter's gradient
    although the loss masks that position out (training diverged). torch's layers take
    the safe softmax of its sdpa there (zero weights); graphc's MultiheadAttention now does."""
    ours, theirs = pair("TransformerEncoderLayer", 4, 2, 8, batch_first=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    padding = np.array([[True, False, False], [False, False, False]])
    causal = np.triu(np.ones((3, 3), bool), 1)
    keep = ~padding[..., None]
    t_out = theirs(torch.tensor(x), src_mask=torch.tensor(causal),
                   src_key_padding_mask=torch.tensor(padding))
    (t_out * torch.tensor(keep)).sum().backward()
    out = ours(gc.tensor(x), src_mask=causal, src_key_padding_mask=padding)
    gc.sum(gc.where(keep, out, 0.0)).backward()
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    params = dict(ours.named_parameters())
    transposed = ("linear1.weight", "linear2.weight", "out_proj.weight", "in_proj_weight")
    for name, p in theirs.named_parameters():
        g = params[name].grad.T if name.endswith(transposed) else params[name].grad
        assert np.isfinite(g).all(), name
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    ours, theirs = pair("TransformerDecoderLayer", 16, 4, 24, norm_first=norm_first)
    rng = np.random.default_rng(1)
    tgt, memory = rng.normal(size=(5, 2, 16)), rng.normal(size=(7, 2, 16))  # (T, N, E)
    memory_padding = np.zeros((2, 7), bool)
    memory_padding[1, 5:] = True
    out = ours(tgt, memory, tgt_is_causal=True, memory_key_padding_mask=memory_padding,
               tgt_mask=np.triu(np.full((5, 5), -np.inf), 1))
    t_out = theirs(torch.tensor(tgt), torch.tensor(memory),
                   tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(5).double(),
                   tgt_is_causal=True, memory_key_padding_mask=torch.tensor(memory_padding))
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_stacks_copy_the_layer_and_match_torch():
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), 3,
        norm=torch.nn.LayerNorm(16), enable_nested_tensor=False).double().eval()
    ours = gc.nn.TransformerEncoder(
        gc.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, dtype="float64"), 3,
        norm=gc.nn.LayerNorm(16, dtype="float64")).eval()
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    np.testing.assert_array_equal(ours.layers[0].linear1.weight.data,
                                  ours.layers[2].linear1.weight.data)  # copies, as torch's
    ours.load_torch_state_dict(theirs.state_dict())
    x = np.random.default_rng(2).normal(size=(2, 5, 16))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    dec_t = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(16, 4, 32), 2) \
        .double().eval()
    dec_o = gc.nn.TransformerDecoder(gc.nn.TransformerDecoderLayer(16, 4, 32, dtype="float64"),
                                     2).eval()
    dec_o.load_torch_state_dict(dec_t.state_dict())
    tgt, memory = np.random.default_rng(3).normal(size=(2, 4, 3, 16))
    np.testing.assert_allclose(dec_o(tgt, memory),
                               dec_t(torch.tensor(tgt), torch.tensor(memory)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_dropout_is_on_in_training_and_a_pure_function_of_the_key():
    layer = gc.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, dtype="float64")
    x = np.random.default_rng(4).normal(size=(3, 2, 8))
    with gc.nn.rng_key(5):
        first = np.asarray(layer(x))
    with gc.nn.rng_key(5):
        np.testing.assert_array_equal(layer(x), first)
    assert not np.allclose(first, np.asarray(layer.eval()(x)))


def test_load_torch_state_dict_transposes_linear_weights_only():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3),
                                 torch.nn.Linear(3, 2)).double()
    ours = gc.nn.Sequential(gc.nn.Linear(3, 3, dtype="float64"),
                            gc.nn.LayerNorm(3, dtype="float64"),
                            gc.nn.Linear(3, 2, dtype="float64"))
    ours.load_torch_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours[0].weight.data, theirs[0].weight.detach().numpy().T)
    x = np.random.default_rng(5).normal(size=(4, 3))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-13)
    with pytest.raises(gc.GraphcError, match="missing"):
        ours.load_torch_state_dict({"0.weight": np.zeros((3, 3))})


def test_bad_arguments_give_one_line():
    f = "test_transformer_layers.py"
    assert_one_line_error(lambda: gc.nn.TransformerEncoderLayer(8, 2, activation="swish"),
                          "activation must be 'relu', 'gelu', a Module or a function", f)
    layer = gc.nn.TransformerEncoderLayer(8, 2)
    assert_one_line_error(lambda: gc.nn.TransformerEncoder(layer, 0),
                          "num_layers must be a positive int", f)


@pytest.mark.parametrize("name", ["TransformerEncoderLayer", "TransformerDecoderLayer",
                                  "Transformer"])
def test_sizes_and_rates_are_named_as_the_layers_arguments(name):
    """d_model, nhead, dim_feedforward, dropout and layer_norm_eps were named as the parts
    they reach: TransformerEncoderLayer(10, 3) as "MultiheadAttention: embed_dim 10 is not a
    multiple of num_heads 3", dim_feedforward=-1 as "Linear: out_features", dropout=2 as
    "MultiheadAttention: dropout", layer_norm_eps='x' as "LayerNorm: eps"."""
    f = "test_transformer_layers.py"
    make = getattr(gc.nn, name)
    base = dict(d_model=8, nhead=2, dim_feedforward=16)
    if name == "Transformer":
        base.update(num_encoder_layers=1, num_decoder_layers=1)
    for settings, message in [
            (dict(d_model=10, nhead=3), "d_model 10 is not a multiple of nhead 3"),
            (dict(d_model=0), "d_model must be a positive int, got 0"),
            (dict(nhead=0), "nhead must be a positive int, got 0"),
            (dict(dim_feedforward=-1), "dim_feedforward must be a non-negative int, got -1"),
            (dict(dim_feedforward=16.0), "dim_feedforward must be a non-negative int, got 16.0"),
            (dict(dropout=2), "dropout must be in [0, 1], got 2"),
            (dict(dropout="x"), "dropout must be a number, got 'x'"),
            (dict(layer_norm_eps="x"), "layer_norm_eps must be a number, got 'x'")]:
        assert_one_line_error(lambda: make(**{**base, **settings}), f"{name}: {message}", f)
    # the edges torch takes still build: an empty feed-forward block, every value dropped
    model = make(**{**base, "dim_feedforward": 0, "dropout": 1})
    layer = model.encoder.layers[0] if name == "Transformer" else model
    assert (layer.linear1.out_features, layer.dropout.p, layer.self_attn.dropout) == (0, 1, 1)


def test_a_users_attention_module_with_torchs_signature_can_replace_self_attn():
    """A Transformer layer calls its attention with torch's public arguments only: a change
    of this session passed a private keyword (_masks_as) and broke a swapped-in module whose
    forward has torch's signature (TypeError: unexpected keyword argument); reverted."""
    class Wrapped(gc.nn.MultiheadAttention):
        def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                    attn_mask=None, average_attn_weights=True, is_causal=False):
            return super().forward(query, key, value, key_padding_mask, need_weights,
                                   attn_mask, average_attn_weights, is_causal)

    layer = gc.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    expected = np.asarray(layer(x))
    wrapped = Wrapped(4, 2, batch_first=True)
    wrapped.load_state_dict(layer.self_attn.state_dict())
    layer.self_attn = wrapped
    np.testing.assert_array_equal(np.asarray(layer(x)), expected)


def test_a_wrongly_shaped_mask_is_named_as_the_layers_argument_before_its_attention_runs():
    """A mask of the wrong shape given to a Transformer layer was refused by its
    MultiheadAttention as 'attn_mask' / 'key_padding_mask', though the user passed src_mask,
    memory_mask, ... The layer checks the shapes itself now, by torch's attention's rules
    (torch refuses the same shapes and takes the same others), naming its own argument."""
    def refused(call):
        return one_line_problem(call, "test_transformer_layers.py")

    def torch_takes(call):
        try:
            call()
        except (RuntimeError, AssertionError):
            return False
        return True

    bool_mask = lambda shape: np.zeros(shape, bool)  # noqa: E731
    ours, theirs = pair("TransformerEncoderLayer", 4, 2, 8, dropout=0.0, batch_first=True)
    theirs.train()  # (torch's eval-mode fast path checks masks in its own words)
    x = np.random.default_rng(0).normal(size=(3, 5, 4))  # batch 3, length 5, 2 heads
    attn = ("it must be (target length, source length) = (5, 5) or (batch * num_heads, "
            "target length, source length) = (6, 5, 5)")
    cases = [("src_mask", s, attn) for s in [(5, 5), (6, 5, 5), (3, 5, 5), (4, 4), (5,)]] + \
        [("src_key_padding_mask", s, "it must be (batch, source length) = (3, 5)")
         for s in [(3, 5), (5, 3), (5,), (3, 1)]]
    for what, shape, options in cases:
        mask = bool_mask(shape)
        takes = torch_takes(lambda: theirs(torch.tensor(x), **{what: torch.tensor(mask)}))
        if takes:  # torch's shapes: the same output
            np.testing.assert_allclose(ours(x, **{what: mask}), theirs(
                torch.tensor(x), **{what: torch.tensor(mask)}).detach().numpy(), atol=1e-12)
            continue
        for run in (lambda: ours(x, **{what: mask}),
                    lambda: gc.compile(lambda a: ours(a, **{what: mask}))(x)):
            assert refused(run) == f"TransformerEncoderLayer: {what} has shape {shape}; {options}"
    assert not torch_takes(lambda: theirs(torch.tensor(x[0]), src_mask=torch.ones(1, 5, 5)))
    assert refused(lambda: ours(x[0], src_mask=bool_mask((1, 5, 5)))) == (  # unbatched
        "TransformerEncoderLayer: src_mask has shape (1, 5, 5); it must be (target length, "
        "source length) = (5, 5) or (num_heads, target length, source length) = (2, 5, 5)")
    # a decoder's masks; sequence first: tgt (5, 3, 4), memory (6, 3, 4)
    decoder = gc.nn.TransformerDecoderLayer(4, 2, 8)
    tgt, memory = np.zeros((5, 3, 4), np.float32), np.zeros((6, 3, 4), np.float32)
    for what, shape, options in [
            ("memory_mask", (5, 5), "(target length, source length) = (5, 6) or (batch * "
                                    "num_heads, target length, source length) = (6, 5, 6)"),
            ("tgt_mask", (5, 6), "(target length, source length) = (5, 5) or (batch * "
                                 "num_heads, target length, source length) = (6, 5, 5)"),
            ("memory_key_padding_mask", (6, 3), "(batch, source length) = (3, 6)"),
            ("tgt_key_padding_mask", (5, 3), "(batch, source length) = (3, 5)")]:
        assert refused(lambda: decoder(tgt, memory, **{what: bool_mask(shape)})) == \
            f"TransformerDecoderLayer: {what} has shape {shape}; it must be {options}"
    # a stack names its own argument (the encoder's is `mask`)
    stack = gc.nn.TransformerEncoder(ours, 2)
    assert refused(lambda: stack(x, mask=bool_mask((4, 4)))) == \
        f"TransformerEncoder: mask has shape (4, 4); {attn}"
    # a user's attention module without MultiheadAttention's settings checks its own masks
    seen = []

    class Plain(gc.nn.Module):
        def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None,
                    need_weights=True, is_causal=None, average_attn_weights=True):
            seen.append(attn_mask.shape)
            return query * 0.0, None

    layer = gc.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    layer.self_attn = Plain()
    layer(x.astype(np.float32), src_mask=bool_mask((4, 4)))
    assert seen == [(4, 4)]


def test_a_users_attention_gets_the_layers_masks_as_given_and_batch_mismatch_is_attentions():
    """Review r2 of d5a7464: the layer's mask check ran for any attention module with an int
    num_heads and a bool batch_first, so a user's attention taking SDPA-style (N, 1, L, S)
    masks was refused as 'src_mask has shape (3, 1, 5, 5)', where torch's layer passes the
    mask to it. And with memory's batch not tgt's, a memory_key_padding_mask that fits
    memory was blamed instead of MultiheadAttention's "one batch size" error."""
    class Ours(gc.nn.Module):
        def __init__(self):
            self.num_heads, self.batch_first = 2, True

        def forward(self, query, key=None, value=None, attn_mask=None, key_padding_mask=None,
                    need_weights=True, is_causal=None, average_attn_weights=True):
            scores = gc.einsum("nle,nse->nls", query, key)[:, None]  # (N, 1, L, S)
            weights = gc.softmax(gc.where(attn_mask, -np.inf, scores), axis=-1)
            return gc.einsum("nhls,nse->nle", weights, value), None

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads, self.batch_first = 2, True

        def forward(self, query, key, value, attn_mask=None, key_padding_mask=None,
                    need_weights=True, is_causal=False, average_attn_weights=True):
            # (torch's layer hands its attention the bool mask as a float one, -inf at True)
            scores = torch.einsum("nle,nse->nls", query, key)[:, None] + attn_mask
            weights = scores.softmax(-1)
            return torch.einsum("nhls,nse->nle", weights, value), None

    ours, theirs = pair("TransformerEncoderLayer", 4, 2, 8, dropout=0.0, batch_first=True)
    theirs.train()  # (no fast path: torch's layer calls its attention)
    ours.self_attn, theirs.self_attn = Ours(), Theirs()
    x = np.random.default_rng(0).normal(size=(3, 5, 4))
    mask = np.zeros((3, 1, 5, 5), bool)
    mask[1, :, :, 3:] = True
    expected = theirs(torch.tensor(x), src_mask=torch.tensor(mask)).detach().numpy()
    np.testing.assert_allclose(ours(x, src_mask=mask), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gc.compile(lambda a: ours(a, src_mask=mask))(x), expected,
                               rtol=1e-12, atol=1e-12)

    decoder = gc.nn.TransformerDecoderLayer(4, 2, 8, batch_first=True)
    tgt, memory = np.zeros((3, 5, 4), np.float32), np.zeros((2, 6, 4), np.float32)
    with pytest.raises(gc.GraphcError) as info:
        decoder(tgt, memory, memory_key_padding_mask=np.zeros((2, 6), bool))
    # (the inputs are blamed, not the mask that fits the memory: named as the layer's tgt and
    # memory, as its cross-attention would name them its query, key and value)
    assert str(info.value).splitlines()[0] == (
        "TransformerDecoderLayer: tgt (3, 5, 4) and memory (2, 6, 4) ((N, L, E), "
        "batch_first=True) must have one batch size")


def test_a_mask_given_as_a_list_or_a_torch_tensor_is_refused_naming_the_argument():
    """A mask given as a list failed inside MultiheadAttention as a raw AttributeError
    ('list' object has no attribute 'ndim'), and a torch tensor, the mask a port passes
    from nn.Transformer.generate_square_subsequent_mask, met numpy's "Cannot interpret
    'torch.float64' as a data type" (a TypeError): neither named the argument. Each is one
    line now naming the layer and the argument as given; its numpy form gives torch's
    output."""
    ours, theirs = pair("TransformerEncoderLayer", 4, 2, 8, batch_first=True)
    x = np.random.default_rng(0).normal(size=(3, 5, 4))
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    f = "test_transformer_layers.py"
    assert_one_line_error(lambda: ours(x, src_mask=causal),
                          "TransformerEncoderLayer: src_mask is a torch.Tensor, another "
                          "library's array; pass a numpy array (src_mask.numpy(), or "
                          "np.asarray(src_mask))", f)
    assert_one_line_error(lambda: ours(x, src_mask=causal.numpy().tolist()),
                          "TransformerEncoderLayer: src_mask is a list; give an array "
                          "(np.asarray), as torch's takes a tensor", f)
    np.testing.assert_allclose(ours(x, src_mask=causal.numpy()),
                               theirs(torch.tensor(x), src_mask=causal).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    padding = [[False] * 5] * 3
    mha = ours.self_attn
    assert_one_line_error(lambda: mha(x, x, x, key_padding_mask=padding),
                          "MultiheadAttention 'self_attn': key_padding_mask is a list", f)
    assert_one_line_error(lambda: mha(x, x, x, attn_mask=torch.zeros(5, 5, dtype=torch.bool)),
                          "MultiheadAttention 'self_attn': attn_mask is a torch.Tensor", f)
    assert_one_line_error(lambda: gc.compile(lambda a: ours(a, src_key_padding_mask=tuple(
        padding)))(x), "TransformerEncoderLayer: src_key_padding_mask is a tuple", f)
    stack = gc.nn.TransformerEncoder(ours, 2)
    assert_one_line_error(lambda: stack(x, mask=causal), "TransformerEncoder: mask is a "
                          "torch.Tensor", f)
    decoder = gc.nn.TransformerDecoderLayer(4, 2, 8, batch_first=True, dtype="float64")
    assert_one_line_error(lambda: decoder(x, x, memory_key_padding_mask=torch.tensor(
        np.zeros((3, 5), bool))), "TransformerDecoderLayer: memory_key_padding_mask is a "
        "torch.Tensor", f)


def test_an_input_given_as_a_list_or_a_torch_tensor_is_named_as_the_layers_argument():
    """(s52) A decoder's memory given as a list was named as its cross-attention's key
    ("MultiheadAttention 'multihead_attn': key is a list"), its tgt as its self-attention's
    query, a Transformer's tgt as "MultiheadAttention 'decoder.layers.0.self_attn': query":
    each is named as the argument passed, by the layer, stack or Transformer it was passed
    to; its numpy form gives torch's output."""
    f = "test_transformer_layers.py"
    rng = np.random.default_rng(0)
    tgt, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    ours, theirs = pair("TransformerDecoderLayer", 4, 2, 8, batch_first=True)
    listed = "is a list; give an array (np.asarray), as torch's takes a tensor"
    assert_one_line_error(lambda: ours(tgt, memory.tolist()),
                          f"TransformerDecoderLayer: memory {listed}", f)
    assert_one_line_error(lambda: ours(tgt.tolist(), memory),
                          f"TransformerDecoderLayer: tgt {listed}", f)
    assert_one_line_error(lambda: ours(tgt, torch.tensor(memory)),
                          "TransformerDecoderLayer: memory is a torch.Tensor, another "
                          "library's array; pass a numpy array (memory.numpy(), or "
                          "np.asarray(memory))", f)
    np.testing.assert_allclose(ours(tgt, memory), theirs(torch.tensor(tgt), torch.tensor(
        memory)).detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_one_line_error(lambda: gc.nn.TransformerDecoder(ours, 2)(tgt, memory.tolist()),
                          f"TransformerDecoder: memory {listed}", f)
    encoder = gc.nn.TransformerEncoderLayer(4, 2, 8, batch_first=True, dtype="float64")
    assert_one_line_error(lambda: encoder(tuple(tgt.tolist())),
                          "TransformerEncoderLayer: src is a tuple", f)
    assert_one_line_error(lambda: gc.nn.TransformerEncoder(encoder, 2)(tgt.tolist()),
                          f"TransformerEncoder: src {listed}", f)
    whole = gc.nn.Transformer(4, 2, 1, 1, 8, batch_first=True, dtype="float64")
    assert_one_line_error(lambda: whole(memory, tgt.tolist()), f"Transformer: tgt {listed}", f)
    assert_one_line_error(lambda: whole(memory.tolist(), tgt), f"Transformer: src {listed}", f)


def test_the_decoder_stack_names_its_own_mask_arguments():
    """s49 f9 item 3: TransformerDecoder passed its masks on unchecked, so a wrong one was
    named after its first layer ("TransformerDecoderLayer 'layers.0': tgt_mask ..."), where
    TransformerEncoder names itself. Each mask is checked by the stack now, eagerly and
    compiled; a right one still gives torch's output."""
    torch.manual_seed(0)
    theirs = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(
        4, 2, 8, dropout=0.0, batch_first=True), 2).double().eval()
    ours = gc.nn.TransformerDecoder(gc.nn.TransformerDecoderLayer(
        4, 2, 8, dropout=0.0, batch_first=True, dtype="float64"), 2).eval()
    ours.load_torch_state_dict(theirs.state_dict())
    rng = np.random.default_rng(0)
    tgt, memory = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 6, 4))
    f = "test_transformer_layers.py"
    cases = [("tgt_mask", np.zeros((4, 4), bool), "has shape (4, 4); it must be (target "
              "length, source length) = (5, 5) or (batch * num_heads, target length, source "
              "length) = (6, 5, 5)"),
             ("memory_mask", np.zeros((5, 5), bool), "has shape (5, 5); it must be (target "
              "length, source length) = (5, 6) or (batch * num_heads, target length, source "
              "length) = (6, 5, 6)"),
             ("memory_key_padding_mask", np.zeros((3, 5), bool), "has shape (3, 5); it must "
              "be (batch, source length) = (3, 6)"),
             ("tgt_key_padding_mask", [[False] * 5] * 3, "is a list; give an array"),
             ("memory_mask", torch.zeros(5, 6, dtype=torch.bool), "is a torch.Tensor"),
             ("tgt_mask", np.zeros((5, 5), np.int64), "of dtype int64 is not supported")]
    for what, mask, problem in cases:
        for run in (lambda: ours(tgt, memory, **{what: mask}),
                    lambda: gc.compile(lambda a, m: ours(a, m, **{what: mask}))(tgt, memory)):
            assert_one_line_error(run, f"TransformerDecoder: {what} {problem}", f)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    padding = np.zeros((3, 6), bool)
    padding[:, -2:] = True
    np.testing.assert_allclose(
        ours(tgt, memory, tgt_mask=causal.numpy(), memory_key_padding_mask=padding),
        theirs(torch.tensor(tgt), torch.tensor(memory), tgt_mask=causal,
               memory_key_padding_mask=torch.tensor(padding)).detach().numpy(),
        rtol=1e-12, atol=1e-12)


def test_a_query_of_another_width_is_named_as_the_query():
    """A query of other than embed_dim features met the in-projection's matmul
    ('matmul(f32[8,6], f32[8,8]): contracting dimensions differ: 6 vs 8', naming neither
    the layer nor the query), and in self-attention (key and value the query) it was
    named as the key: 'key has 6 features ... (kdim/vdim: other widths)'."""
    f = "test_transformer_layers.py"
    rng = np.random.default_rng(0)
    mha = gc.nn.MultiheadAttention(8, 2, batch_first=True)
    narrow, right = (rng.normal(size=(2, 4, w)).astype(np.float32) for w in (6, 8))
    message = "MultiheadAttention: query has 6 features, the layer takes 8"
    for call in (lambda: mha(narrow), lambda: mha(narrow, right, right),
                 lambda: gc.compile(lambda q: mha(q, right, right))(narrow)):
        with pytest.raises(gc.GraphcError) as info:
            call()
        assert str(info.value).splitlines()[0] == message
    assert_one_line_error(lambda: mha(right, narrow, right),
                          "MultiheadAttention: key has 6 features, the layer takes 8 "
                          "(kdim/vdim: other widths)", f)
    layer = gc.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    assert_one_line_error(lambda: layer(narrow), "MultiheadAttention 'self_attn': query has "
                          "6 features, the layer takes 8", f)
    # a query of too many axes is named as the layer's attention too (it was the bare
    # "MultiheadAttention: query must be ...", the one line of the layer's that said no more)
    assert_one_line_error(lambda: layer(right[None]), "MultiheadAttention 'self_attn': query "
                          "must be (L, E) or batched (3-d), got shape (1, 2, 4, 8)", f)
    assert np.asarray(mha(right)[0]).shape == (2, 4, 8)


def test_a_decoder_memory_its_cross_attention_refuses_is_named_as_the_memory():
    """A TransformerDecoderLayer's memory of the wrong width was reported by its
    cross-attention as "MultiheadAttention 'multihead_attn': key has 6 features, the layer
    takes 8 (kdim/vdim: other widths)": an argument the user did not pass, and a hint that
    does not apply. torch refuses it too."""
    f = "test_transformer_layers.py"
    rng = np.random.default_rng(0)
    tgt, memory = (rng.normal(size=(2, n, w)) for n, w in ((3, 8), (5, 6)))
    torch.manual_seed(0)
    with pytest.raises(RuntimeError):
        torch.nn.TransformerDecoderLayer(8, 2, 16, batch_first=True).double()(
            torch.tensor(tgt), torch.tensor(memory))
    layer = gc.nn.TransformerDecoderLayer(8, 2, 16, batch_first=True, dtype="float64")
    stack = gc.nn.TransformerDecoder(layer, 2)
    message = "TransformerDecoderLayer: memory has 6 features, the layer takes 8"
    for call in (lambda: layer(tgt, memory), lambda: gc.compile(layer)(tgt, memory)):
        with pytest.raises(gc.GraphcError) as info:
            call()
        assert str(info.value).splitlines()[0] == message
    assert_one_line_error(lambda: stack(tgt, memory), "TransformerDecoderLayer 'layers.0': "
                          "memory has 6 features, the layer takes 8", f)
    right = rng.normal(size=(2, 5, 8))
    assert np.asarray(layer(tgt, right)).shape == (2, 3, 8)
    # so are a memory of another batch size and an unbatched one beside a batched tgt: the
    # cross-attention named them as its "query (2, 3, 8), key (1, 5, 8) and value ..." and
    # as "query, key and value must all be batched (3-d) or all unbatched (2-d)"
    assert_one_line_error(lambda: layer(tgt, right[:1]), "TransformerDecoderLayer: tgt "
                          "(2, 3, 8) and memory (1, 5, 8) ((N, L, E), batch_first=True) must "
                          "have one batch size", f)
    assert_one_line_error(lambda: stack(tgt, right[0]), "TransformerDecoderLayer 'layers.0': "
                          "tgt (2, 3, 8) and memory (5, 8) must both be batched (3-d) or both "
                          "unbatched (2-d)", f)
    sequence_first = gc.nn.TransformerDecoderLayer(8, 2, 16, dtype="float64")
    assert_one_line_error(lambda: sequence_first(tgt, right), "TransformerDecoderLayer: tgt "
                          "(2, 3, 8) and memory (2, 5, 8) ((L, N, E), batch_first=False) must "
                          "have one batch size", f)
    assert np.asarray(layer(tgt[0], right[0])).shape == (3, 8)  # both unbatched: taken


@pytest.mark.parametrize("batch_first, norm_first", [(False, False), (True, True)])
def test_transformer_loads_torchs_checkpoint_and_matches_its_values_and_gradients(batch_first,
                                                                                   norm_first):
    """gc.nn.Transformer (encoder and decoder stacks, each ending in a LayerNorm) was
    missing, and with it Transformer.generate_square_subsequent_mask, which torch ports
    call for their causal tgt_mask. Its state_dict keys are torch's, a torch checkpoint
    loads, and output and gradients agree in float64, eager and compiled."""
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(8, 2, 2, 1, 16, batch_first=batch_first,
                                  norm_first=norm_first).double().eval()
    ours = gc.nn.Transformer(8, 2, 2, 1, 16, batch_first=batch_first, norm_first=norm_first,
                             dtype="float64").eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_torch_state_dict(theirs.state_dict())
    causal = gc.nn.Transformer.generate_square_subsequent_mask(4, dtype="float64")
    np.testing.assert_array_equal(
        causal, torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    assert gc.nn.Transformer.generate_square_subsequent_mask(3).dtype == np.float32
    rng = np.random.default_rng(0)
    src, tgt = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 4, 8))
    if not batch_first:
        src, tgt = src.transpose(1, 0, 2), tgt.transpose(1, 0, 2)
    padding = np.zeros((2, 5), bool)
    padding[1, 3:] = True
    w = rng.normal(size=tgt.shape)
    ts, tt = (torch.tensor(a, requires_grad=True) for a in (src, tgt))
    t_out = theirs(ts, tt, tgt_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(
        padding), memory_key_padding_mask=torch.tensor(padding))
    (t_out * torch.tensor(w)).sum().backward()

    def loss(p, s, t):
        return gc.sum(ours.apply(p, s, t, tgt_mask=causal, src_key_padding_mask=padding,
                                 memory_key_padding_mask=padding) * w)
    np.testing.assert_allclose(ours(src, tgt, tgt_mask=causal, src_key_padding_mask=padding,
                                    memory_key_padding_mask=padding),
                               t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for grad in (gc.grad(loss, argnums=(0, 1, 2)), gc.compile(gc.grad(loss, argnums=(0, 1, 2)))):
        g_params, g_src, g_tgt = grad(ours.params(), src, tgt)
        np.testing.assert_allclose(g_src, ts.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(g_tgt, tt.grad.numpy(), rtol=1e-9, atol=1e-11)
        for name, p in theirs.named_parameters():
            g = np.asarray(g_params[name])
            g = g.T if name.endswith(("linear1.weight", "linear2.weight", "out_proj.weight",
                                      "in_proj_weight")) else g
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_transformer_initialises_its_matrices_xavier_uniform_as_torchs():
    model = gc.nn.Transformer(16, 2, 1, 1, 64, rng=np.random.default_rng(0))
    weight = np.asarray(model.decoder.layers[0].linear2.weight.data)  # (64, 16)
    bound = np.sqrt(6.0 / (16 + 64))  # Linear's own default, 1/sqrt(64), is half that
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
    for name, p in model.named_parameters():
        if p.data.ndim == 1 and name.endswith("bias"):
            assert name.endswith(("linear1.bias", "linear2.bias")) or \
                not np.asarray(p.data).any(), name  # (torch's zero biases stay zero)


def test_generate_square_subsequent_mask_takes_torchs_arguments():
    """Review: torch's signature is (sz, device=None, dtype=None): `device=` (ports pass
    their device) was Python's TypeError, a positional device was read as the dtype, and
    dtype=None gave float64 where torch's default is float32; dtype=torch.bool, torch's
    bool causal mask (True above the diagonal), was refused as a layer's parameters."""
    make, theirs = (gc.nn.Transformer.generate_square_subsequent_mask,
                    torch.nn.Transformer.generate_square_subsequent_mask)
    for args, kw in (((4,), {}), ((4,), {"device": "cpu"}), ((4, "cpu"), {}),
                     ((4,), {"dtype": None}), ((4, None, torch.float64), {}),
                     ((4,), {"dtype": torch.bool}), ((0,), {})):
        mask, expected = make(*args, **kw), theirs(*args, **kw).numpy()
        assert mask.dtype == expected.dtype, (args, kw)
        np.testing.assert_array_equal(mask, expected)
    f = "test_transformer_layers.py"
    assert_one_line_error(lambda: make(4, device="cuda"), "Transformer.generate_square_"
                          "subsequent_mask: graphc runs on the CPU (numpy arrays); device "
                          "'cuda' is not available (give 'cpu', or a dtype)", f)
    assert_one_line_error(lambda: make(-1), "Transformer.generate_square_subsequent_mask: "
                          "sz must be a non-negative int, got -1", f)
    assert_one_line_error(lambda: make(3, dtype="int64"), "Transformer.generate_square_"
                          "subsequent_mask: dtype=int64: the mask is a float (0 and -inf) or "
                          "bool one, as torch's", f)


def test_transformer_names_its_own_arguments():
    """Review: the Transformer's masks were named as its stacks' and layers' (src_mask as
    "TransformerEncoder 'encoder': mask", tgt_mask as "TransformerDecoderLayer
    'decoder.layers.0': tgt_mask"), src and tgt of two batch sizes or of another width than
    d_model (torch's own checks) as a MultiheadAttention deep inside, and
    num_encoder_layers=0, a bad dtype or activation as the stack's or layer's arguments."""
    f = "test_transformer_layers.py"
    model = gc.nn.Transformer(8, 2, 1, 1, 16, batch_first=True)
    src, tgt = np.zeros((2, 5, 8), np.float32), np.zeros((2, 4, 8), np.float32)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    assert_one_line_error(lambda: model(src, tgt, src_mask=causal), "Transformer: src_mask is "
                          "a torch.Tensor, another library's array; pass a numpy array "
                          "(src_mask.numpy(), or np.asarray(src_mask))", f)
    assert_one_line_error(lambda: model(src, tgt, tgt_mask=np.zeros((5, 5), np.float32)),
                          "Transformer: tgt_mask has shape (5, 5); it must be (target length, "
                          "source length) = (4, 4) or", f)
    assert_one_line_error(lambda: model(src, tgt, memory_key_padding_mask=np.zeros((2, 4),
                                                                                   bool)),
                          "Transformer: memory_key_padding_mask has shape (2, 4); it must be "
                          "(batch, source length) = (2, 5)", f)
    assert_one_line_error(lambda: gc.compile(lambda s, t: model(s, t))(src, tgt[:1]),
                          "Transformer: src (2, 5, 8) and tgt (1, 4, 8) ((N, S, E), "
                          "batch_first=True) must have one batch size", f)
    assert_one_line_error(lambda: model(src, tgt[..., :6]), "Transformer: src (2, 5, 8) and "
                          "tgt (2, 4, 6) must have d_model = 8 features", f)
    assert_one_line_error(lambda: model(src, tgt[0]), "Transformer: src (2, 5, 8) and tgt "
                          "(4, 8) must both be batched (3-d) or both unbatched (2-d)", f)
    assert_one_line_error(lambda: gc.nn.Transformer(8, 2, 0), "Transformer: "
                          "num_encoder_layers must be a positive int, got 0", f)
    assert_one_line_error(lambda: gc.nn.Transformer(8, 2, dtype="int32"), "Transformer: "
                          "dtype='int32'", f)
    assert_one_line_error(lambda: gc.nn.Transformer(8, 2, activation="tanh"), "Transformer: "
                          "activation must be", f)
    # valid masks of every kind are still taken, and unbatched inputs
    mask = gc.nn.Transformer.generate_square_subsequent_mask(4)
    for m in (mask, mask.astype(np.float64), np.isinf(mask), gc.tensor(mask)):
        assert np.asarray(model(src, tgt, tgt_mask=m)).shape == (2, 4, 8)
    unbatched = model(src[0], tgt[0], memory_key_padding_mask=np.zeros(5, bool))
    assert np.asarray(unbatched).shape == (4, 8)
