"""Session 34's fixes of gc.nn's modules, checked against torch in float64; each test failed
before its fix."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def _attention_pair(batch_first=False, dropout=0.0):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(8, 2, dropout=dropout,
                                         batch_first=batch_first).double()
    ours = gc.nn.MultiheadAttention(8, 2, dropout=dropout, batch_first=batch_first,
                                    dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    return ours, theirs


def test_a_wrongly_shaped_key_padding_mask_is_refused():
    """Any key_padding_mask of B * S elements was reshaped to (B, 1, 1, S): a sequence-first
    (S, B) one (a common slip with batch_first=False), (B * S,), (1, B * S) or (B, S, 1)
    masked the wrong keys without a word. torch refuses them all; now graphc does too, in
    one line naming the shape it needs, and a (B, S) or unbatched (S,) mask is torch's."""
    ours, theirs = _attention_pair()
    x = np.random.default_rng(0).normal(size=(3, 2, 8))  # (L, N, E): L = 3, N = 2
    padding = np.array([[False, False, True], [False, True, False]])  # (N, S)
    for wrong in (padding.T, padding.reshape(6), padding.reshape(1, 6),
                  padding.reshape(2, 3, 1)):
        with pytest.raises(GraphcError, match=r"^MultiheadAttention: key_padding_mask has "
                           r"shape \(.*\); it must be \(batch, source length\) = \(2, 3\)\n"):
            ours(x, key_padding_mask=wrong)
        with pytest.raises(AssertionError):
            theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(wrong))
    out, weights = ours(x, key_padding_mask=padding)
    t_out, t_weights = theirs(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(padding))
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(weights.data, t_weights.detach().numpy(), atol=1e-12)
    single = x[:, 0]  # unbatched (L, E): a 1-d (S,) mask
    out = ours(single, key_padding_mask=padding[0])[0]
    t_out = theirs(*(torch.tensor(single),) * 3, key_padding_mask=torch.tensor(padding[0]))[0]
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), atol=1e-12)
    with pytest.raises(GraphcError, match=r"unbatched .* must be 1-d \(S,\), got shape \(1, 3\)"):
        ours(single, key_padding_mask=padding[:1])
    # inside a model, the message names the layer and the mask as the user passed it
    layer = gc.nn.TransformerEncoderLayer(8, 2, 16, dtype="float64")
    with pytest.raises(GraphcError, match=r"^TransformerEncoderLayer: src_key_padding_mask "
                       r"has shape \(3, 2\)"):
        layer(x, src_key_padding_mask=padding.T)


def test_assigning_a_non_parameter_to_a_parameter_or_a_child_is_refused():
    """`layer.weight = array` (or a tensor) replaced the Parameter with a plain attribute:
    the weight left named_parameters and state_dict and an optimiser never trained it; a
    non-Module set in a child's place (`setattr(seq, "0", array)`) dropped the child's
    parameters the same way. torch raises a TypeError for both; graphc now refuses them in
    one line, and a Parameter, a Module or None is still taken, as torch's."""
    layer = gc.nn.Linear(2, 3)
    for value in (np.zeros((2, 3), np.float32), gc.tensor(np.zeros((2, 3), np.float32))):
        with pytest.raises(GraphcError, match=r"^Linear: cannot assign (an ndarray|a Tensor) as "
                           r"parameter 'weight' \(gc.nn.Parameter or None expected"):
            layer.weight = value
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    seq = gc.nn.Sequential(gc.nn.Linear(2, 2))
    with pytest.raises(GraphcError, match=r"^Sequential: cannot assign an ndarray as child "
                       r"module '0' \(gc.nn.Module or None expected"):
        setattr(seq, "0", np.zeros(2))
    assert list(seq.state_dict()) == ["0.weight", "0.bias"]
    with pytest.raises(TypeError, match="cannot assign"):  # torch's rule, both cases
        torch.nn.Linear(2, 3).weight = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="cannot assign"):
        setattr(torch.nn.Sequential(torch.nn.Linear(2, 2)), "0", torch.zeros(2))
    new = gc.nn.Parameter(np.ones((2, 3), np.float32))
    layer.weight = new  # what torch takes
    assert layer.weight is new and [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    setattr(seq, "0", gc.nn.Linear(2, 4))
    assert seq[0].weight.data.shape == (2, 4)


def test_a_load_state_dict_that_fails_loads_nothing():
    """load_state_dict checks every shape before it loads anything (graphc's rule; torch's
    loads the entries that fit), but a value that does not cast to the model's dtype
    (strings) failed midway, with numpy's ValueError, after the entries before it were
    written. Now every value is converted first, and a failure, one line naming the entry,
    leaves the model as it was, buffers included."""
    model = gc.nn.Sequential(gc.nn.Linear(2, 2), gc.nn.BatchNorm1d(2), gc.nn.Linear(2, 2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad = {**{k: np.full_like(v, 7) for k, v in before.items()},
           "2.weight": np.array([["a", "b"], ["c", "d"]])}
    with pytest.raises(GraphcError, match=r"^load_state_dict: 2.weight \(<U1\) does not cast "
                       r"to the model's float32: could not convert string to float"):
        model.load_state_dict(bad)
    ragged = {**bad, "2.weight": [[1.0, 2.0], [3.0]]}
    with pytest.raises(GraphcError, match=r"^load_state_dict: 2.weight is not an array"):
        model.load_state_dict(ragged)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    good = {**bad, "2.weight": np.ones((2, 2))}
    model.load_state_dict(good)
    assert model[0].weight.data.dtype == np.float32
    np.testing.assert_array_equal(model[0].weight.data, np.full((2, 2), 7, np.float32))
    np.testing.assert_array_equal(model[1].running_mean.data, np.full(2, 7, np.float32))


def test_init_fills_bfloat16_tensors():
    """gc.nn.init refused bfloat16 tensors ("the tensor is bfloat16, not floating point":
    numpy's issubdtype does not count ml_dtypes' bfloat16 as floating), every initialiser
    from zeros_ to orthogonal_, where torch's fill them and float16 worked. Now each fills
    one with its float64 draws rounded to bfloat16 as torch rounds them."""
    from graphc.nn import init
    for fill in (init.zeros_, init.ones_, lambda t: init.constant_(t, 0.3),
                 init.uniform_, init.normal_, init.trunc_normal_, init.xavier_uniform_,
                 init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
                 init.orthogonal_):
        half = gc.nn.Linear(4, 3, dtype="bfloat16").weight
        wide = gc.nn.Linear(4, 3, dtype="float64").weight
        for tensor in (half, wide):
            gc.nn.manual_seed(5)  # the same draws for both
            fill(tensor)
        assert str(half.data.dtype) == "bfloat16"
        rounded = torch.tensor(wide.data).to(torch.bfloat16)
        got = half.data.astype(np.float32)
        # a uniform fill never gives its upper bound b, as torch's (session 52), which casts b
        # to the tensor's dtype first (torch's bfloat16 uniform_(-b, b) of xavier's b =
        # 0.92582 tops at 0.921875, below b's bfloat16 0.92578125): a draw that rounds to b's
        # bfloat16 or above is the value just below it (one unit less in the bits)
        differ = got != rounded.float().numpy()
        # (b: uniform_'s 1, xavier's sqrt(6 / (fan_in + fan_out)), kaiming's sqrt(6 / fan_in))
        b = {init.uniform_: 1.0, init.xavier_uniform_: (6 / 7) ** 0.5,
             init.kaiming_uniform_: (6 / 4) ** 0.5}.get(fill)
        if b is not None:
            below = (rounded.view(torch.int16).numpy()[differ] - 1).astype(np.int16)
            np.testing.assert_array_equal(half.data.view(np.int16)[differ], below)
            b = torch.tensor(b).to(torch.bfloat16).item()
            assert np.all((got[differ] < b) & (rounded.float().numpy()[differ] >= b))
        else:
            assert not differ.any(), fill
        assert np.abs(got).max() > 0 or fill is init.zeros_


def test_attention_weights_returned_in_training_are_the_dropped_ones():
    """MultiheadAttention with dropout, in training, returned the weights before dropout,
    not those it multiplied with the values; torch returns the dropped ones (zeros, the rest
    scaled by 1 / (1 - p), rows no longer summing to 1). Now graphc does: each weight is 0 or
    the eval-mode weight times 2 (p = 0.5), and the output is out_proj of weights @ values,
    for torch's and graphc's alike."""
    ours, theirs = _attention_pair(dropout=0.5)
    x = np.random.default_rng(0).normal(size=(4, 2, 8))  # (L, N, E)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    values = x @ state["in_proj_weight"][16:].T + state["in_proj_bias"][16:]  # (L, N, E)
    values = values.reshape(4, 2, 2, 4).transpose(1, 2, 0, 3)  # (N, H, S, E / H)

    def check(out, weights, plain):
        assert ((weights == 0) | np.isclose(weights, 2 * plain, rtol=1e-12)).all()
        assert (weights == 0).sum() > 4 and not np.allclose(weights.sum(-1), 1)
        mixed = (weights @ values).transpose(2, 0, 1, 3).reshape(4, 2, 8)
        expected = mixed @ state["out_proj.weight"].T + state["out_proj.bias"]
        np.testing.assert_allclose(out, expected, atol=1e-12)
    torch.manual_seed(1)
    t_out, t_weights = theirs(*(torch.tensor(x),) * 3, average_attn_weights=False)
    t_plain = theirs.eval()(*(torch.tensor(x),) * 3, average_attn_weights=False)[1]
    check(t_out.detach().numpy(), t_weights.detach().numpy(), t_plain.detach().numpy())
    gc.nn.manual_seed(1)
    out, weights = ours(x, average_attn_weights=False)
    plain = ours.eval()(x, average_attn_weights=False)[1]
    check(out.data, weights.data, plain.data)
    averaged = ours.train()(x)[1].data  # averaged over the heads, as torch's
    assert not np.allclose(averaged.sum(-1), 1)


def test_state_dict_names_a_tied_parameter_under_every_name():
    """state_dict() listed a tied or shared Parameter (and a shared layer's buffers) once,
    under its first name; torch's lists every name, so torch's strict load_state_dict of
    graphc's state failed ("Missing key(s): b.weight"). Now graphc's names them all, in
    torch's order, and loads back into graphc and into torch alike."""
    class Tied(gc.nn.Module):
        def __init__(self):
            self.a = gc.nn.Linear(3, 3, dtype="float64")
            self.b = gc.nn.Linear(3, 3, dtype="float64")
            self.b.weight = self.a.weight

    class TorchTied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 3).double()
            self.b.weight = self.a.weight
    ours, theirs = Tied(), TorchTied()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "a.weight", "a.bias", "b.weight", "b.bias"]
    theirs.load_state_dict({k: torch.tensor(v.T if k.endswith("weight") else v)
                            for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(theirs.b.weight.detach().numpy(), ours.a.weight.data.T)
    norm = gc.nn.BatchNorm1d(2)
    shared = gc.nn.Sequential(norm, norm)
    t_norm = torch.nn.BatchNorm1d(2)
    t_shared = torch.nn.Sequential(t_norm, t_norm)
    assert list(shared.state_dict()) == list(t_shared.state_dict())
    assert len(shared.state_dict()) == 10
    before = ours.a.weight.data.copy()
    ours.load_state_dict({k: v + 1 for k, v in ours.state_dict().items()})
    assert ours.b.weight is ours.a.weight  # still tied, loaded once
    np.testing.assert_array_equal(ours.b.weight.data, before + 1)
    assert [n for n, _ in ours.named_parameters()] == ["a.weight", "a.bias", "b.bias"]


def test_transformer_encoder_padded_positions_are_as_documented():
    """TransformerEncoder's docstring said torch's enable_nested_tensor changes no result;
    torch's nested fast path (eval, autograd off, a src_key_padding_mask) returns zeros at
    the padded positions, where graphc, as torch's ordinary path, computes values. The
    docstring now says so (a documentation fix: the behaviour is unchanged); this checks
    what it says against torch's two paths, and that it says it."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).double()
    fast = torch.nn.TransformerEncoder(layer, 2).eval()
    plain = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    ours = gc.nn.TransformerEncoder(gc.nn.TransformerEncoderLayer(
        8, 2, 16, batch_first=True, dtype="float64"), 2).eval()
    ours.load_torch_state_dict(fast.state_dict())
    x = np.random.default_rng(1).normal(size=(2, 5, 8))
    padding = np.zeros((2, 5), bool)
    padding[1, 3:] = True
    with torch.no_grad():
        t_fast = fast(torch.tensor(x), src_key_padding_mask=torch.tensor(padding)).numpy()
        t_plain = plain(torch.tensor(x), src_key_padding_mask=torch.tensor(padding)).numpy()
    out = ours(x, src_key_padding_mask=padding).data
    np.testing.assert_allclose(out, t_plain, atol=1e-12)
    assert np.abs(out[padding]).min() > 0 and not t_fast[padding].any()
    np.testing.assert_allclose(out * ~padding[..., None], t_fast, atol=1e-12)
    assert "zero at the" in gc.nn.TransformerEncoder.__doc__


def test_negative_sizes_of_the_common_layers_are_refused_in_one_line():
    """nn.Linear(-1, 2) raised Python's "math domain error", Linear(2, -1), Conv2d(-1, 2, 3),
    Embedding(3, -2) numpy's "negative dimensions are not allowed", MultiheadAttention(4, 0)
    a ZeroDivisionError, MultiheadAttention(4, -2) built a layer, Linear(2.5, 3) failed
    inside numpy. torch refuses each (zero sizes build empty layers, and
    MultiheadAttention's embed_dim and num_heads must be positive); graphc now does the
    same, in one line naming the argument."""
    nn = torch.nn
    refused = [("Linear(-1, 2)", "Linear: in_features must be a non-negative int, got -1"),
               ("Linear(2, -1)", "Linear: out_features must be a non-negative int, got -1"),
               ("Linear(2.5, 3)", "Linear: in_features must be a non-negative int, got 2.5"),
               ("Conv2d(-1, 2, 3)", "Conv2d: in_channels must be a non-negative int"),
               ("Conv2d(2, -2, 3)", "Conv2d: out_channels must be a non-negative int"),
               ("Conv2d(2, 2, -1)", r"Conv2d: kernel_size must not be negative, got \(-1, -1\)"),
               ("Conv1d(-2, 2, 1)", "Conv1d: in_channels must be a non-negative int"),
               ("Embedding(-1, 2)", "Embedding: num_embeddings must be a non-negative int"),
               ("Embedding(3, -2)", "Embedding: embedding_dim must be a non-negative int"),
               ("LayerNorm(-3)", "LayerNorm: normalized_shape must be a positive int"),
               ("MultiheadAttention(-4, 2)", "MultiheadAttention: embed_dim must be a positive"),
               ("MultiheadAttention(4, -2)", "MultiheadAttention: num_heads must be a positive"),
               ("MultiheadAttention(4, 0)", "MultiheadAttention: num_heads must be a positive"),
               ("MultiheadAttention(4, 2, kdim=-1)", "MultiheadAttention: kdim must be a non-")]
    for call, message in refused:
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            eval(f"nn.{call}")
        with pytest.raises(GraphcError, match=f"^{message}"):
            eval(f"gc.nn.{call}")
    for call in ("Linear(0, 2)", "Linear(2, 0)", "Conv2d(0, 2, 3)", "Conv2d(2, 2, 0)",
                 "Embedding(0, 2)", "MultiheadAttention(4, 2, kdim=0)"):
        theirs, ours = eval(f"nn.{call}"), eval(f"gc.nn.{call}")
        assert [tuple(p.shape) for p in theirs.parameters()] == [
            tuple(p.data.T.shape if isinstance(ours, gc.nn.Linear) or n.endswith("proj_weight")
                  else p.data.shape) for n, p in ours.named_parameters()]


def test_mismatched_query_key_and_value_shapes_are_named():
    """A key whose batch differs from the query's, a value of another length than the key,
    or a 2-d key beside a 3-d query failed inside a reshape ("cannot reshape 96 elements into
    shape (2, 4, 2, 4)"), naming neither the layer nor the inputs. torch refuses them too;
    now graphc says which layer and the three shapes, in the layout given."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 2, 8))
    for batch_first in (False, True):
        ours, theirs = _attention_pair(batch_first=batch_first)
        swap = (lambda a: a.swapaxes(0, 1)) if batch_first else (lambda a: a)
        layout = r"\(N, L, E\)" if batch_first else r"\(L, N, E\)"
        for key, value in [(rng.normal(size=(4, 3, 8)),) * 2,
                           (rng.normal(size=(4, 2, 8)), rng.normal(size=(5, 2, 8))),
                           (rng.normal(size=(4, 2, 8)), rng.normal(size=(4, 3, 8)))]:
            given = [swap(a) for a in (q, key, value)]
            with pytest.raises((RuntimeError, AssertionError)):
                theirs(*(torch.tensor(a) for a in given))
            shown = r"\(.*\), key \(.*\) and value \(.*\)"
            with pytest.raises(GraphcError, match=rf"^MultiheadAttention: query {shown} "
                               rf"\({layout}, batch_first={batch_first}\) must have one batch "
                               "size, and key and value one length"):
                ours(*given)
        with pytest.raises(GraphcError, match=r"must all be batched \(3-d\) or all unbatched "
                           r"\(2-d\), got shapes \(3, 2, 8\), \(4, 8\) and \(4, 8\)"):
            ours(q, rng.normal(size=(4, 8)), rng.normal(size=(4, 8)))
    with pytest.raises(GraphcError, match=r"key \(4, 8\) and value \(5, 8\) \(unbatched"):
        ours(q[:, 0], rng.normal(size=(4, 8)), rng.normal(size=(5, 8)))
    key = rng.normal(size=(3, 5, 8))  # batch_first=True here: N = 3, L = 2, S = 5
    out = ours(q, key, key)[0].data
    expected = theirs(*(torch.tensor(a) for a in (q, key, key)))[0].detach().numpy()
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_module_list_takes_no_argument_or_any_iterable():
    """nn.ModuleList() was a TypeError (a required argument) and ModuleList(a generator)
    failed on len(); torch's takes None (an empty list, appended to later) and any iterable,
    as Sequential() and ModuleDict() already did. Now ModuleList does too."""
    for ours, theirs in ((gc.nn.ModuleList(), torch.nn.ModuleList()),
                         (gc.nn.Sequential(), torch.nn.Sequential()),
                         (gc.nn.ModuleDict(), torch.nn.ModuleDict())):
        assert len(ours) == len(theirs) == 0 and ours.state_dict() == {}
    x = np.ones((2, 3))
    np.testing.assert_array_equal(gc.nn.Sequential()(gc.tensor(x)).data,
                                  torch.nn.Sequential()(torch.tensor(x)).numpy())
    blocks = gc.nn.ModuleList()
    blocks.append(gc.nn.Linear(3, 3))
    made = gc.nn.ModuleList(gc.nn.Linear(3, 3) for _ in range(2))
    t_made = torch.nn.ModuleList(torch.nn.Linear(3, 3) for _ in range(2))
    assert list(made.state_dict()) == list(t_made.state_dict())
    assert [n for n, _ in blocks.named_parameters()] == ["0.weight", "0.bias"]


def test_module_walks_take_torchs_keyword_arguments():
    """named_parameters(recurse=False), parameters(recurse=False), named_buffers(recurse=
    False), buffers(recurse=False), state_dict(prefix=...) and zero_grad(set_to_none=False)
    were TypeErrors (unexpected keyword); named_parameters' second positional argument was
    remove_duplicate, torch's recurse. Now each takes torch's arguments, in torch's order,
    with torch's meaning: recurse=False walks the module's own only, state_dict's prefix
    goes before each name as it is, set_to_none=False leaves zeros, not None."""
    def build(nn):
        model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        model.scale = nn.Parameter(np.ones(2, np.float32) if nn is gc.nn else torch.ones(2))
        return model
    ours, theirs = build(gc.nn), build(torch.nn)

    def names(pairs):
        return [name for name, _ in pairs]
    for args, kwargs in [((), {}), ((), {"recurse": False}), (("m", False), {}),
                         (("m",), {"recurse": True, "remove_duplicate": False})]:
        assert names(ours.named_parameters(*args, **kwargs)) == names(
            theirs.named_parameters(*args, **kwargs))
        assert names(ours[1].named_buffers(*args, **kwargs)) == names(
            theirs[1].named_buffers(*args, **kwargs))
    assert names(ours.named_parameters(recurse=False)) == ["scale"]
    assert len(ours.parameters(recurse=False)) == len(list(theirs.parameters(recurse=False)))
    assert len(ours.buffers(recurse=False)) == len(list(theirs.buffers(recurse=False))) == 0
    assert len(ours[1].buffers(recurse=False)) == len(list(theirs[1].buffers(recurse=False)))
    for prefix in ("enc.", "enc", ""):
        assert list(ours.state_dict(prefix=prefix)) == list(theirs.state_dict(prefix=prefix))
    loss = gc.sum(ours(gc.tensor(np.ones((3, 2), np.float32))) * ours.scale)
    loss.backward()
    assert ours[0].weight.grad is not None
    ours.zero_grad(set_to_none=False)
    for p in ours.parameters():
        np.testing.assert_array_equal(p.grad, np.zeros_like(p.data))
        assert np.asarray(p.grad).dtype == p.data.dtype
    ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())
