"""gc.local_response_norm / gc.nn.LocalResponseNorm, gc.channel_shuffle / gc.nn.ChannelShuffle
and gc.embedding_bag / gc.nn.EmbeddingBag (graphc/extra_layers.py) against torch in float64:
values and gradients, eagerly and compiled, central differences, reprs and one-line errors."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional
HERE = "test_extra_layers.py"


def _against_torch(ours, theirs, x, rtol=1e-13):
    """ours(x) and its eager and compiled gradients of sum(ours(x) * w) against theirs's."""
    t = torch.tensor(x, requires_grad=True)
    ref = theirs(t)
    w = np.random.default_rng(1).normal(size=ref.shape)
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours(x), ref.detach().numpy(), rtol=rtol, atol=1e-15)
    loss = lambda x: gc.sum(ours(x) * w)  # noqa: E731
    for grad in (gc.grad(loss), gc.compile(gc.grad(loss))):
        np.testing.assert_allclose(grad(x), t.grad.numpy(), rtol=rtol, atol=1e-15)
    return loss


LRN = [dict(size=3), dict(size=4, alpha=0.5, beta=0.6, k=2.0), dict(size=1),
       dict(size=9, alpha=2.0)]


@pytest.mark.parametrize("shape", [(2, 7, 5), (2, 7, 3, 4), (2, 6, 2, 3, 2)])
@pytest.mark.parametrize("kw", range(len(LRN)))
def test_local_response_norm_is_torchs_for_3d_4d_and_5d_inputs(shape, kw):
    kw = LRN[kw]
    x = np.random.default_rng(0).normal(size=shape)
    loss = _against_torch(lambda x: gc.local_response_norm(x, **kw),
                          lambda t: TF.local_response_norm(t, **kw), x)
    layer, ref_layer = gc.nn.LocalResponseNorm(**kw), torch.nn.LocalResponseNorm(**kw)
    _against_torch(layer, ref_layer, x)
    assert repr(layer) == repr(ref_layer)
    # central differences of the loss, in float64
    g = np.asarray(gc.grad(loss)(x))
    for index in ((0, 0) + (0,) * (len(shape) - 2), (1, 3) + (1,) * (len(shape) - 2)):
        up, down = x.copy(), x.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric = (float(loss(up)) - float(loss(down))) / 2e-6
        np.testing.assert_allclose(g[index], numeric, rtol=1e-7)


@pytest.mark.parametrize("shape, groups", [((2, 6, 5), 3), ((2, 12, 3, 4), 4),
                                           ((1, 6, 2, 3, 2), 2), ((2, 5, 3), 1)])
def test_channel_shuffle_is_torchs(shape, groups):
    x = np.random.default_rng(2).normal(size=shape)
    _against_torch(lambda x: gc.channel_shuffle(x, groups),
                   lambda t: TF.channel_shuffle(t, groups), x, rtol=0)
    layer, ref_layer = gc.nn.ChannelShuffle(groups), torch.nn.ChannelShuffle(groups)
    np.testing.assert_array_equal(layer(x), ref_layer(torch.tensor(x)).numpy())
    assert repr(layer) == repr(ref_layer)


@pytest.mark.parametrize("call, message", [
    (lambda x: gc.local_response_norm(x[0, 0], 2), "local_response_norm: x must have at least 3"),
    (lambda x: gc.local_response_norm(x, 0), "local_response_norm: size must be a positive int"),
    (lambda x: gc.local_response_norm(x, 2, alpha="a"), "local_response_norm: alpha must be a"),
    (lambda x: gc.nn.LocalResponseNorm(2.5), "LocalResponseNorm: size must be a positive int"),
    (lambda x: gc.nn.LocalResponseNorm(2, beta=None), "LocalResponseNorm: beta must be a number"),
    (lambda x: gc.channel_shuffle(x, 4), "channel_shuffle: x's 6 channels must divide by groups"),
    (lambda x: gc.channel_shuffle(x[0, 0], 2), "channel_shuffle: x must have at least 3 axes"),
    (lambda x: gc.nn.ChannelShuffle(0), "ChannelShuffle: groups must be a positive int, got 0"),
    (lambda x: gc.nn.ChannelShuffle(groups=2.0), "ChannelShuffle: groups must be a positive int"),
    # an integer x: 'mul: float scalar 2.0 meets an integer tensor' (torch computes it in
    # float32; graphc refuses it, as its pools do)
    (lambda x: gc.local_response_norm(x.astype(np.int64), 2),
     "local_response_norm of an int64 value; cast it to a float type first"),
    (lambda x: gc.compile(gc.nn.LocalResponseNorm(3))(x > 0),
     "LocalResponseNorm of a bool value; cast it to a float type first"),
])
def test_errors_are_one_line_naming_the_layer_and_argument(call, message):
    assert_one_line_error(lambda: call(np.ones((2, 6, 3, 4))), message, HERE)


# ---- embedding bags ---------------------------------------------------------------------------
_IDX = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0, 7])
BAGS = [dict(input=_IDX, offsets=np.array([0, 3, 3, 7])),  # an empty bag too
        dict(input=_IDX, offsets=np.array([0, 3, 3, 7, 11]), include_last_offset=True),
        dict(input=_IDX[:10].reshape(2, 5)),
        dict(input=_IDX, offsets=np.array([0, 3, 3, 7]), padding_idx=4),
        dict(input=_IDX, offsets=np.array([0, 2, 5]), padding_idx=-10),  # row 0
        dict(input=np.array([[4, 4], [4, 1]]), padding_idx=4)]  # a bag all padding


@pytest.mark.parametrize("case", range(len(BAGS)))
@pytest.mark.parametrize("mode, weighted", [("sum", False), ("sum", True), ("mean", False),
                                            ("max", False)])
def test_embedding_bag_is_torchs(case, mode, weighted):
    case = dict(BAGS[case])
    idx, offsets = case.pop("input"), case.pop("offsets", None)
    table = np.random.default_rng(3).normal(size=(10, 4))
    psw = np.random.default_rng(4).normal(size=idx.shape) if weighted else None
    t_offsets = None if offsets is None else torch.tensor(offsets)
    t_psw = None if psw is None else torch.tensor(psw)
    loss = _against_torch(
        lambda w: gc.embedding_bag(idx, w, offsets, mode=mode, per_sample_weights=psw, **case),
        lambda w: TF.embedding_bag(torch.tensor(idx), w, t_offsets, mode=mode,
                                   per_sample_weights=t_psw, **case), table, rtol=1e-14)
    g = np.asarray(gc.grad(loss)(table))
    if "padding_idx" in case:  # the padding row is left out of every bag: no gradient
        assert not g[case["padding_idx"]].any()
    for index in ((1, 0), (4, 3), (9, 2)):
        up, down = table.copy(), table.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric = (float(loss(up)) - float(loss(down))) / 2e-6
        np.testing.assert_allclose(g[index], numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_offsets_traced_in_a_compiled_function(mode):
    table = np.random.default_rng(5).normal(size=(10, 4))
    bag = gc.compile(lambda w, i, o: gc.embedding_bag(i, w, o, mode=mode))
    for offsets in ([0, 3, 3, 7], [0, 1, 2, 10], [0]):
        want = TF.embedding_bag(torch.tensor(_IDX), torch.tensor(table),
                                torch.tensor(offsets), mode=mode).numpy()
        np.testing.assert_allclose(bag(table, _IDX, np.array(offsets)), want, rtol=1e-14)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_s_traced_offsets_are_checked_as_the_plan_runs(mode):
    """Offsets traced in a compiled function were not checked: offsets[0] != 0 failed as
    'scatter_add: an index is out of range for the rows' (or 'index -1 is out of bounds for
    axis 0 of size 3'), naming neither embedding_bag nor offsets, and decreasing offsets,
    offsets past the input's end (max) or include_last_offset's last one short of it gave
    values where torch refuses. Each is the eager check's line as the plan runs, naming the
    function or layer called; vmapped offsets are checked per example."""
    table = np.random.default_rng(5).normal(size=(10, 4))
    bag = gc.compile(lambda i, o: gc.embedding_bag(i, table, o, mode=mode))
    last = gc.compile(lambda i, o: gc.embedding_bag(i, table, o, mode=mode,
                                                    include_last_offset=True))
    layer = gc.compile(gc.nn.EmbeddingBag.from_pretrained(table, mode=mode))
    for function, offsets, message in [
            (bag, [1, 3, 7], "embedding_bag: offsets[0] must be 0 (the first bag starts the "
                             "input), got 1"),
            (bag, [0, 7, 3], "embedding_bag: offsets must be non-decreasing and at most the "
                             "input's length 11, got [0, 7, 3]"),
            (bag, [0, 3, 12], "embedding_bag: offsets must be non-decreasing and at most the "
                              "input's length 11, got [0, 3, 12]"),
            (last, [0, 3, 10], "embedding_bag: with include_last_offset, offsets[-1] must be "
                               "the input's length 11, got 10"),
            (layer, [2, 3], "EmbeddingBag: offsets[0] must be 0")]:
        assert_one_line_error(lambda: function(_IDX, np.array(offsets)), message, HERE)
    batched = gc.vmap(lambda o: gc.embedding_bag(_IDX, table, o, mode=mode))
    offsets = np.array([[0, 3, 7], [0, 1, 2]])
    np.testing.assert_allclose(
        batched(offsets)[1], TF.embedding_bag(torch.tensor(_IDX), torch.tensor(table),
                                              torch.tensor(offsets[1]), mode=mode).numpy(),
        rtol=1e-14)
    assert_one_line_error(lambda: batched(np.array([[0, 3, 7], [0, 2, 1]])),
                          "embedding_bag: offsets must be non-decreasing", HERE)


@pytest.mark.parametrize("last", [False, True])
def test_review_r10_traced_offsets_of_a_symbolic_input_and_of_a_dropped_example(last):
    """Review r10 of c57f9e6: an input of symbolic length (gc.spec(("n",))) gave check_offsets
    length=None, so offsets past its end were still 'scatter_add: an index is out of range for
    the rows', and the graph's JSON (None) did not load back; its length is the Dim, bound
    as the plan runs. vmap looped check_offsets, so an example whose result a batched cond
    drops was refused for offsets its branch never used, where the parent gave the values
    (check_index clamps such an example's index): its offsets are made valid first."""
    from ir.serialize import dumps, loads
    from runtime.interpreter import run
    table = np.random.default_rng(7).normal(size=(10, 4))
    bag = lambda i, o: gc.embedding_bag(i, table, o, mode="sum",  # noqa: E731
                                        include_last_offset=last)
    graph = gc.trace(bag, gc.spec(("n",), "int64"), np.array([0, 3, 11]))
    assert [n.attrs["length"] for n in loads(dumps(graph)).nodes if n.op == "check_offsets"] \
        == [n.attrs["length"] for n in graph.nodes if n.op == "check_offsets"] != [None]
    np.testing.assert_allclose(run(graph, _IDX, np.array([0, 3, 11]))[0], bag(
        _IDX, np.array([0, 3, 11])), rtol=1e-15)
    with pytest.raises(IndexError, match=r"embedding_bag: offsets must be non-decreasing "
                       r"and at most the input's length 11, got \[0, 3, 12\]"):
        run(graph, _IDX, np.array([0, 3, 12]))
    fine, bad = [0, 3, 11], [[1, 3, 11], [0, 7, 3], [0, 3, 12], [0, 3, 10 if last else 9]]
    f = lambda on, o: gc.cond(  # noqa: E731
        on, lambda o: bag(_IDX, o), lambda o: gc.cast(gc.sum(o), "float64") * 0.0
        - gc.ones((3 - last, 4), "float64"), o)
    expected = bag(_IDX, np.array(fine))
    for batched in (gc.vmap(f), gc.compile(gc.vmap(f))):
        for wrong in bad[:3] + ([bad[3]] if last else []):
            out = np.asarray(batched(np.array([True, False]), np.array([fine, wrong])))
            np.testing.assert_allclose(out[0], expected, rtol=1e-15)
            np.testing.assert_array_equal(out[1], -1.0)
            with pytest.raises(gc.GraphcError, match="embedding_bag: "):
                np.asarray(batched(np.array([True, True]), np.array([fine, wrong])))
    shared = gc.vmap(f, in_axes=(0, None))
    for batched in (shared, gc.compile(shared)):
        np.testing.assert_array_equal(
            np.asarray(batched(np.array([False, False]), np.array(bad[0]))), -1.0)


def test_embedding_bag_keeps_norm_type_and_shows_it_as_torch():
    """EmbeddingBag(10, 4, norm_type=3.0) dropped norm_type from its repr (torch's shows it
    where it is not 2); it is kept as layer.norm_type, without effect (it is max_norm's,
    which is refused), and the functional form takes it as well."""
    for settings in (dict(norm_type=3.0, mode="sum"), dict(norm_type=1, padding_idx=2),
                     dict(norm_type=2.0)):
        layer = gc.nn.EmbeddingBag(10, 4, **settings)
        ref = torch.nn.EmbeddingBag(10, 4, **settings)
        assert repr(layer) == repr(ref) and layer.norm_type == ref.norm_type
    table = np.random.default_rng(6).normal(size=(10, 4))
    pretrained = gc.nn.EmbeddingBag.from_pretrained(table, norm_type=1.5)
    assert repr(pretrained) == repr(torch.nn.EmbeddingBag.from_pretrained(
        torch.tensor(table), norm_type=1.5))
    np.testing.assert_allclose(
        gc.embedding_bag(_IDX, table, np.array([0, 4]), norm_type=1.5),
        TF.embedding_bag(torch.tensor(_IDX), torch.tensor(table), torch.tensor([0, 4]),
                         norm_type=1.5).numpy(), rtol=1e-14)


def test_embedding_bag_layer_and_from_pretrained_are_torchs():
    table = np.random.default_rng(6).normal(size=(10, 4))
    layer = gc.nn.EmbeddingBag.from_pretrained(table, mode="max", padding_idx=2)
    ref = torch.nn.EmbeddingBag.from_pretrained(torch.tensor(table), mode="max", padding_idx=2)
    assert repr(layer) == repr(ref) and not layer.weight.requires_grad
    offsets = np.array([0, 4, 6])
    np.testing.assert_allclose(layer(_IDX, offsets),
                               ref(torch.tensor(_IDX), torch.tensor(offsets)).detach().numpy())
    layer = gc.nn.EmbeddingBag(10, 4, mode="sum", padding_idx=3, dtype="float64")
    assert layer.weight.data.shape == (10, 4) and not layer.weight.data[3].any()
    assert abs(np.delete(layer.weight.data, 3, 0).std() - 1.0) < 0.5  # normal(0, 1)
    psw = np.random.default_rng(7).normal(size=_IDX.shape)
    want = TF.embedding_bag(torch.tensor(_IDX), torch.tensor(layer.weight.data),
                            torch.tensor(offsets), mode="sum", padding_idx=3,
                            per_sample_weights=torch.tensor(psw)).numpy()
    np.testing.assert_allclose(layer(_IDX, offsets, psw), want, rtol=1e-14)
    layer.mode = "mean"  # a setting read at every call, as torch's
    np.testing.assert_allclose(
        layer(_IDX[:10].reshape(2, 5)),
        TF.embedding_bag(torch.tensor(_IDX[:10].reshape(2, 5)), torch.tensor(layer.weight.data),
                         mode="mean", padding_idx=3).numpy(), rtol=1e-14)


@pytest.mark.parametrize("call, message", [
    (lambda w: gc.embedding_bag(_IDX, w), "embedding_bag: a 1-d input needs offsets"),
    (lambda w: gc.embedding_bag(_IDX.reshape(1, -1), w, [0]),
     "embedding_bag: offsets must be None for a 2-d input"),
    (lambda w: gc.embedding_bag(_IDX, w, [1, 3]), "embedding_bag: offsets[0] must be 0"),
    (lambda w: gc.embedding_bag(_IDX, w, [0, 5, 3]),
     "embedding_bag: offsets must be non-decreasing and at most the input's length 11"),
    (lambda w: gc.embedding_bag(_IDX, w, [0, 5], include_last_offset=True),
     "embedding_bag: with include_last_offset, offsets[-1] must be the input's length 11"),
    (lambda w: gc.embedding_bag(_IDX, w, [0], mode="median"),
     "embedding_bag: mode must be 'sum', 'mean' or 'max', got 'median'"),
    (lambda w: gc.embedding_bag(_IDX, w, [0], mode="max", per_sample_weights=np.ones(11)),
     "embedding_bag: per_sample_weights is only for mode 'sum'"),
    (lambda w: gc.embedding_bag(_IDX, w, [0], mode="sum", per_sample_weights=np.ones(3)),
     "embedding_bag: per_sample_weights must have the input's shape (11,)"),
    (lambda w: gc.embedding_bag(_IDX, w, [0], padding_idx=10),
     "embedding_bag: padding_idx must be an int in [-10, 10)"),
    (lambda w: gc.embedding_bag(_IDX - 2, w, [0]), "embedding_bag: index -2 is negative"),
    (lambda w: gc.nn.EmbeddingBag(10, 4, max_norm=1.0),
     "EmbeddingBag: max_norm=1.0 is not supported"),
    (lambda w: gc.nn.EmbeddingBag(10, 4, mode="min"), "EmbeddingBag: mode must be"),
    (lambda w: gc.nn.EmbeddingBag.from_pretrained(w[0]),
     "EmbeddingBag.from_pretrained: embeddings must be 2-dimensional"),
    (lambda w: gc.nn.EmbeddingBag(10, 4)(_IDX, [0, 12]),
     "EmbeddingBag: offsets must be non-decreasing and at most the input's length 11"),
])
def test_embedding_bag_errors_are_one_line_naming_the_argument(call, message):
    assert_one_line_error(lambda: call(np.ones((10, 4))), message, HERE)


# ---- review r2 of f3's commits ---------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 3, 5, 7])
def test_local_response_norm_in_half_is_torchs_to_the_bit(size):
    """torch averages the window (its pool sums a half x's squares in float32), then
    multiplies by alpha: a half window summed in half and times alpha / size was 1 ulp off
    in up to half the values. (torch's CPU 4-d / 5-d pools take no half: 3-d here.)"""
    x = (np.random.default_rng(8).normal(size=(2, 6, 5)) * 3).astype(np.float16)
    for alpha, beta, k in ((0.5, 0.75, 1.0), (2.0, 1.5, 0.5)):
        want = TF.local_response_norm(torch.tensor(x), size, alpha, beta, k).numpy()
        lrn = lambda x: gc.local_response_norm(x, size, alpha, beta, k)  # noqa: E731
        for got in (lrn(x), gc.compile(lrn)(x)):
            assert np.asarray(got).dtype == np.float16
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_of_a_2d_input_ignores_include_last_offset_and_takes_empty_rows(mode):
    """A 2-d input's bags are its rows whatever include_last_offset says (torch's); mode
    'max' with include_last_offset=True failed in an internal slice line. Rows of no index
    raised ZeroDivisionError (torch's arange fails there too): empty bags, zeros."""
    table = np.random.default_rng(9).normal(size=(10, 4))
    idx = np.array([[4, 4, 4], [1, 4, 2], [1, 1, 9]])
    loss = _against_torch(
        lambda w: gc.embedding_bag(idx, w, mode=mode, include_last_offset=True, padding_idx=4),
        lambda w: TF.embedding_bag(torch.tensor(idx), w, mode=mode, include_last_offset=True,
                                   padding_idx=4), table, rtol=1e-14)
    assert loss(table).shape == ()
    for include_last_offset in (False, True):
        got = gc.embedding_bag(np.zeros((2, 0), np.int64), table, mode=mode,
                               include_last_offset=include_last_offset)
        np.testing.assert_array_equal(got, np.zeros((2, 4)))
