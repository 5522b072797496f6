"""gc.nn.utils.rnn's packed sequences (graphc/rnn_utils.py) against torch.nn.utils.rnn's, and
gc.nn.RNN, GRU and LSTM run on a PackedSequence (graphc/recurrent.py) against torch's in
float64: each sequence runs for its own length, so h_n is its state after its last step and
the reverse direction starts there; outputs, final states and every gradient agree, eagerly
and compiled. Before, graphc had none of these: a padded batch ran through its padding."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
R, T = gc.nn.utils.rnn, torch.nn.utils.rnn
F = "test_packed_sequences.py"


def same(ours, theirs):
    theirs = theirs.detach().numpy()
    assert np.shape(ours) == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-12)


# sorted, unsorted with ties (torch keeps tied sequences in batch order), all of length 1
@pytest.mark.parametrize("lengths,enforce_sorted", [([4, 3, 3, 1], True),
                                                     ([2, 4, 1, 4], False), ([1] * 4, False)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_pad_match_torch(lengths, enforce_sorted, batch_first):
    rng = np.random.default_rng(len(lengths) + batch_first)
    x = rng.normal(size=(4, 5, 2) if batch_first else (5, 4, 2))
    theirs = T.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths),
                                    batch_first=batch_first, enforce_sorted=enforce_sorted)
    for given in (lengths, np.array(lengths), torch.tensor(lengths)):
        ours = R.pack_padded_sequence(x, given, batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        same(ours.data, theirs.data)
        assert ours.batch_sizes.tolist() == theirs.batch_sizes.tolist()
        for mine, its in zip(ours[2:], theirs[2:]):  # None when the batch came sorted
            assert (mine is None and its is None) or mine.tolist() == its.tolist()
    for kw in ({}, {"total_length": 7, "padding_value": -2.5, "batch_first": True}):
        padded, got = R.pad_packed_sequence(ours, **kw)
        t_padded, t_lengths = T.pad_packed_sequence(theirs, **kw)
        same(padded, t_padded)
        assert got.dtype == np.int64 and got.tolist() == t_lengths.tolist()
    seqs = [rng.normal(size=(n, 3)) for n in lengths]
    packed = R.pack_sequence(seqs, enforce_sorted=enforce_sorted)
    t_packed = T.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=enforce_sorted)
    same(packed.data, t_packed.data)
    for ours, theirs in zip(R.unpack_sequence(packed), T.unpack_sequence(t_packed)):
        same(ours, theirs)


def test_packing_is_differentiable_and_compiles():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))

    def round_trip(x):
        packed = R.pack_padded_sequence(x, [2, 5, 3], enforce_sorted=False)
        return R.pad_packed_sequence(packed, padding_value=7.0)[0]

    tx = torch.tensor(x, requires_grad=True)
    t_out = T.pad_packed_sequence(T.pack_padded_sequence(tx, [2, 5, 3], enforce_sorted=False),
                                  padding_value=7.0)[0]
    (t_out * torch.tensor(w)).sum().backward()
    for out in (round_trip(x), gc.compile(round_trip)(x)):
        same(out, t_out)
    loss = gc.grad(lambda x: gc.sum(round_trip(x) * w))
    for g in (loss(x), gc.compile(loss)(x)):
        same(g, tx.grad)


def pair(kind, **kw):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 4, **kw).double()
    ours = getattr(gc.nn, kind)(3, 4, dtype="float64", **kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def states(kind, h):
    return list(h) if kind == "LSTM" else [h]


CASES = [("RNN", {}, True), ("GRU", {"num_layers": 2, "bidirectional": True}, False),
         ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}, False),
         ("LSTM", {"batch_first": True}, True)]  # (batch_first: a packed input has no layout)


@pytest.mark.parametrize("kind,kw,enforce_sorted", CASES)
@pytest.mark.parametrize("given", [False, True])
def test_a_layer_on_a_packed_batch_matches_torch(kind, kw, enforce_sorted, given):
    ours, theirs = pair(kind, **kw)
    rng = np.random.default_rng(len(kw) + given)
    lengths = [5, 3, 3, 1] if enforce_sorted else [2, 5, 1, 4]
    x = rng.normal(size=(5, 4, 3))
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    h0 = rng.normal(size=(layers, 4, kw.get("proj_size") or 4))
    c0 = rng.normal(size=(layers, 4, 4))
    hx = ((h0, c0) if kind == "LSTM" else h0) if given else None
    tx = torch.tensor(x, requires_grad=True)
    t_hx = None if not given else torch.tensor(h0, requires_grad=True) if kind != "LSTM" \
        else (torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True))
    t_out, t_h = theirs(T.pack_padded_sequence(tx, lengths, enforce_sorted=enforce_sorted),
                        t_hx)
    w = rng.normal(size=t_out.data.shape)
    v = [rng.normal(size=s.shape) for s in states(kind, t_h)]
    ((t_out.data * torch.tensor(w)).sum()
     + sum((s * torch.tensor(u)).sum() for s, u in zip(states(kind, t_h), v))).backward()

    def run(params, x, hx):
        packed = R.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        return ours.apply(params, packed, hx)

    def loss(params, x, hx):
        out, h = run(params, x, hx)
        return gc.sum(out.data * w) + sum(gc.sum(s * u) for s, u in zip(states(kind, h), v))

    for out, h in (run(ours.params(), x, hx), gc.compile(run)(ours.params(), x, hx)):
        assert isinstance(out, R.PackedSequence)
        same(out.data, t_out.data)
        assert out.batch_sizes.tolist() == t_out.batch_sizes.tolist()
        same(R.pad_packed_sequence(out)[0], T.pad_packed_sequence(t_out)[0])
        for s, t in zip(states(kind, h), states(kind, t_h)):
            same(s, t)  # each sequence's own last step, in the batch's order
    argnums = (0, 1, 2) if given else (0, 1)
    for grads in (gc.grad(loss, argnums=argnums)(ours.params(), x, hx),
                  gc.compile(gc.grad(loss, argnums=argnums))(ours.params(), x, hx)):
        same(grads[1], tx.grad)
        for name, p in theirs.named_parameters():
            same(grads[0][name], p.grad)
        if given:
            for g, t in zip(states(kind, grads[2]), states(kind, t_hx)):
                same(g, t.grad)


def test_bad_lengths_and_packed_input_give_one_line():
    x = np.zeros((4, 3, 2), np.float32)
    pack = R.pack_padded_sequence
    assert_one_line_error(lambda: pack(x, [2, 3, 1]),
                          "lengths [2, 3, 1] must be sorted in decreasing order when "
                          "enforce_sorted is True; pass enforce_sorted=False", F)
    # torch's reads past the input's end here
    assert_one_line_error(lambda: pack(x, [5, 3, 1]), "a length of 5 (sequence 0) is longer "
                          "than the input's 4 time steps", F)
    assert_one_line_error(lambda: pack(x, [3, 2, 0]),
                          "every length must be > 0, as torch's, got 0 at sequence 2", F)
    assert_one_line_error(lambda: pack(x, [3, 2]), "2 lengths for a batch of 3 sequences", F)
    assert_one_line_error(lambda: pack(x, [[3, 2, 1]]), "lengths must be a 1-d list or array "
                          "of ints, got a list of shape (1, 3)", F)
    assert_one_line_error(lambda: pack(x, [2.5, 2, 1]), "got [2.5, 2.0, 1.0]", F)
    assert_one_line_error(lambda: pack(np.zeros(3), [3]), "input must have a time and a batch "
                          "axis (T, B, *), got shape (3,)", F)
    assert_one_line_error(lambda: gc.compile(lambda x, n: pack(x, n).data)(x, np.array([3, 2, 1])),
                          "lengths must be known numbers (a list or a numpy array), not a "
                          "traced value", F)
    packed = pack(x, [3, 2, 1])
    gru = gc.nn.GRU(2, 5)
    assert_one_line_error(lambda: gc.compile(lambda p: gru(p)[1])(packed),
                          "GRU: the PackedSequence's batch_sizes are traced; pack the "
                          "sequences inside the compiled or differentiated function", F)
    assert_one_line_error(lambda: gc.nn.GRU(3, 5)(packed),
                          "GRU: input has 2 features, the layer takes 3", F)
    assert_one_line_error(lambda: gru(packed, np.zeros((1, 2, 5), np.float32)),
                          "GRU: hx has shape (1, 2, 5), expected (1, 3, 5)", F)
    assert_one_line_error(lambda: R.pad_packed_sequence(x),
                          "pad_packed_sequence: expected gc.nn.utils.rnn's PackedSequence", F)
    assert_one_line_error(lambda: R.pad_packed_sequence(packed, total_length=2),
                          "total_length=2 is shorter than the longest sequence (3 steps)", F)
    assert_one_line_error(lambda: R.pack_sequence([np.ones((2, 1)), np.ones((0, 1))],
                                                  enforce_sorted=False),
                          "every length must be > 0", F)


def test_review_r1_lengths_as_arguments_empty_batches_1d_data_and_torch_s_packed_sequence():
    """Review r1: lengths given as a list argument of gc.grad's function were numpy's
    conversion error ('a symbolic value cannot be turned into a numpy array'), naming no
    packing nor static_argnums (now read with int(): grad passes the numbers as they are,
    compile advises static_argnums); an empty batch was numpy's bare 'need at least one array
    to concatenate'; a PackedSequence of 1-d data ran through a layer as an unbatched input
    (a scan carry error in graphc/recurrent.py, or wrong shapes); torch's PackedSequence was
    'expected a PackedSequence ..., got a PackedSequence' (pad_packed_sequence) and numpy's
    'setting an array element with a sequence' (a layer)."""
    x = np.random.default_rng(3).normal(size=(4, 3, 2))
    gru = gc.nn.GRU(2, 5, dtype="float64")

    def loss(x, n):
        return gc.sum(gru(R.pack_padded_sequence(x, n, enforce_sorted=False))[1])

    expected = gc.grad(lambda x: loss(x, [2, 4, 1]))(x)
    for n in ([2, 4, 1], (2, 4, 1)):
        np.testing.assert_allclose(gc.grad(loss)(x, n), expected, rtol=1e-12)
    np.testing.assert_allclose(gc.compile(loss, static_argnums=1)(x, (2, 4, 1)),
                               loss(x, [2, 4, 1]), rtol=1e-12)
    assert_one_line_error(lambda: gc.compile(loss)(x, (2, 4, 1)), "static_argnums", F)
    assert_one_line_error(lambda: R.pack_padded_sequence(np.zeros((4, 0, 2)), []),
                          "pack_padded_sequence: the input's batch axis is empty", F)
    flat = R.pack_padded_sequence(np.zeros((4, 3)), [3, 2, 1])
    assert_one_line_error(lambda: gc.nn.GRU(3, 3, dtype="float64")(flat),
                          "GRU: a PackedSequence's data must be 2-d (sum of the lengths, 3), "
                          "got shape (6,)", F)
    theirs = T.pack_padded_sequence(torch.tensor(x), torch.tensor([3, 2, 1]))
    for call, who in ((R.pad_packed_sequence, "pad_packed_sequence"), (gru, "GRU")):
        assert_one_line_error(lambda: call(theirs), f"{who}: expected gc.nn.utils.rnn's "
                              "PackedSequence (its pack_padded_sequence's), got a "
                              "torch.nn.utils.rnn.PackedSequence", F)


def test_review_m1_lengths_computed_inside_the_function_are_not_called_an_argument():
    """Review s50 (m1) of f609eba: traced lengths were said to be 'an argument of the
    compiled or differentiated function: close over them' whatever they were, lengths the
    function computes from its data too (a mask's count), which cannot be closed over; they
    are told to be computed outside it. An argument keeps its advice, in a loop body too."""
    x = np.random.default_rng(3).normal(size=(4, 3, 2))
    x[3:, 0] = 0.0

    def computed(x):
        n = gc.sum(gc.cast(x[:, :, 0] != 0, "int64"), 0)
        return gc.sum(R.pack_padded_sequence(x, n, enforce_sorted=False).data)

    def given(x, n):
        return gc.sum(R.pack_padded_sequence(x, n, enforce_sorted=False).data)
    for call in (lambda: gc.compile(computed)(x), lambda: gc.grad(computed)(x)):
        assert_one_line_error(call, "pack_padded_sequence: lengths must be known numbers (a "
                              "list or a numpy array), not a traced value (computed from the "
                              "function's arguments, as from a mask of the data): compute them "
                              "outside it, with numpy, and close over them", F)
    n = np.array([3, 4, 4])
    argument = "not a traced value (an argument of the compiled or differentiated function)"
    for call in (lambda: gc.compile(given)(x, n),
                 lambda: gc.compile(lambda x, n: gc.fori_loop(
                     0, 1, lambda i, c: c + given(x, n), 0.0))(x, n)):
        assert_one_line_error(call, argument, F)


def test_review_r15_total_length_is_an_int_as_ir_types_is_int_reads_one():
    """pad_packed_sequence's total_length was read by its own test of an int (an int or a
    numpy integer, not a bool), which took an np.timedelta64 (a numpy integer subclass) as a
    length; it is ir.types.is_int now, as the other size readers', numpy integers kept."""
    packed = R.pack_padded_sequence(np.ones((3, 2, 1)), [3, 2])
    for bad in (np.timedelta64(5), True, 5.0):
        assert_one_line_error(lambda: R.pad_packed_sequence(packed, total_length=bad),
                              f"pad_packed_sequence: total_length must be an int, got {bad!r}", F)
    for good in (5, np.int8(5), np.uint64(5)):
        assert R.pad_packed_sequence(packed, total_length=good)[0].shape == (5, 2, 1)


def test_conversions_of_a_packed_sequence_are_torch_s():
    """torch code moves a packed batch with .to(device) or casts it (.double(), .to(dtype)):
    PackedSequence had none of torch's conversions (an AttributeError). They cast `data`
    only, as torch's (batch_sizes and the indices stay int64), return the sequence itself
    when nothing changes, and a GRU runs on the cast one as torch's on its own."""
    seqs = [np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32) for n in (2, 3, 1)]
    ours = R.pack_sequence(seqs, enforce_sorted=False)
    theirs = T.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    assert ours.to("cpu") is ours and ours.cpu() is ours and ours.to(torch.float32) is ours
    assert not ours.is_cuda and not ours.is_pinned()
    for ours_cast, theirs_cast in [(ours.double(), theirs.double()),
                                   (ours.to(torch.float64), theirs.to(torch.float64)),
                                   (ours.to("cpu", torch.float64), theirs.to("cpu", torch.float64)),
                                   (ours.half(), theirs.half()), (ours.long(), theirs.long())]:
        assert np.asarray(ours_cast.data).dtype == theirs_cast.data.numpy().dtype
        np.testing.assert_array_equal(ours_cast.data, theirs_cast.data.numpy())
        for name in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            np.testing.assert_array_equal(getattr(ours_cast, name),
                                          getattr(theirs_cast, name).numpy())
    gru, torch_gru = gc.nn.GRU(2, 3, dtype="float64"), torch.nn.GRU(2, 3).double()
    gru.load_state_dict({k: v.detach().numpy() for k, v in torch_gru.state_dict().items()})
    out, h = gru(ours.to(torch.float64))
    t_out, t_h = torch_gru(theirs.to(torch.float64))
    same(out.data, t_out.data)
    same(h, t_h)
    assert_one_line_error(lambda: ours.to("cuda"), "PackedSequence.to: graphc runs on the CPU", F)
    assert_one_line_error(lambda: ours.cuda(), "PackedSequence.cuda: graphc runs on the CPU", F)
    assert_one_line_error(lambda: ours.to(torch.int16),
                          "PackedSequence.to: dtype int16 is not supported", F)


def test_pack_sequence_errors_name_pack_sequence():
    """pack_sequence's errors named pad_sequence or pack_padded_sequence, the functions it
    calls, not the one the user called (unsorted lengths: 'pack_padded_sequence: lengths ...
    must be sorted', an empty list: 'pad_sequence: received an empty list')."""
    seqs = [np.ones((n, 2)) for n in (2, 3)]
    assert_one_line_error(lambda: R.pack_sequence(seqs), "pack_sequence: lengths [2, 3] must "
                          "be sorted in decreasing order when enforce_sorted is True", F)
    assert_one_line_error(lambda: R.pack_sequence([]),
                          "pack_sequence: received an empty list of sequences", F)
    assert_one_line_error(lambda: R.pack_sequence([np.ones((2, 2)), np.ones((0, 2))]),
                          "pack_sequence: every length must be > 0", F)
    assert_one_line_error(lambda: R.pad_sequence([]),
                          "pad_sequence: received an empty list of sequences", F)


def test_review_r14_torch_s_integer_conversions_and_a_generator():
    """Review r14: torch's PackedSequence has short(), char() and byte() too (an
    AttributeError here: graphc has no int16/int8/uint8, so each is refused in one line
    naming the method); pack_sequence of a generator read it for the padding, then found no
    lengths ('pack_sequence: 0 lengths for a batch of 2 sequences')."""
    seqs = [np.ones((n, 2), np.float32) for n in (3, 1)]
    packed = R.pack_sequence(seqs)
    for method, dtype in [("short", "int16"), ("char", "int8"), ("byte", "uint8")]:
        assert_one_line_error(lambda: getattr(packed, method)(),
                              f"PackedSequence.{method}: dtype {dtype} is not supported", F)
    ours = R.pack_sequence(s for s in seqs)
    theirs = T.pack_sequence([torch.tensor(s) for s in seqs])
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes, theirs.batch_sizes.numpy())
