"""Module.children / named_children / modules / named_modules and torch's apply(fn), against
torch.nn on the same architecture (names and order), and apply(fn) reaching every layer."""
from collections import OrderedDict

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


def both():
    shared = (gc.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    ours = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.ReLU(), shared[0],
                            gc.nn.Sequential(shared[0], gc.nn.LayerNorm(3)))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), shared[1],
                                 torch.nn.Sequential(shared[1], torch.nn.LayerNorm(3)))
    return ours, theirs


def test_module_walks_name_what_torch_names():
    ours, theirs = both()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [type(m).__name__ for m in ours.modules()] == \
        [type(m).__name__ for m in theirs.modules()]
    assert len(ours.children()) == 4 and ours.modules()[0] is ours


def test_apply_with_a_function_visits_children_first_and_returns_the_module():
    ours, theirs = both()
    seen, torch_seen = [], []
    assert ours.apply(lambda m: seen.append(type(m).__name__)) is ours
    theirs.apply(lambda m: torch_seen.append(type(m).__name__))
    assert seen == torch_seen

    def init(m):  # the idiom: re-initialise every Linear
        if isinstance(m, gc.nn.Linear):
            m.weight.data[...] = 0.5
    ours.apply(init)
    assert all(np.all(m.weight.data == 0.5) for m in ours.modules()
               if isinstance(m, gc.nn.Linear))
    # the flax form is unchanged: params dict first
    x = np.ones((1, 2), np.float32)
    np.testing.assert_allclose(ours.apply(ours.params(), x).data, ours(gc.tensor(x)).data)


def _shared_model(nn):
    class Model(nn.Module):  # one Linear and one BatchNorm, each under two names
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.norm = nn.BatchNorm1d(2)
            self.seq = nn.Sequential(self.a, nn.ReLU(), self.norm)
    return Model()


def test_load_state_dict_counts_a_shared_modules_other_names_as_torch():
    # torch counts missing keys against its state_dict's names, a shared module's second
    # names included; graphc counted named_parameters(), which gives each parameter once
    ours, theirs = _shared_model(gc.nn), _shared_model(torch.nn)
    full = theirs.state_dict()
    assert list(ours.state_dict()) == list(full)
    subsets = {"first names": lambda k: not k.startswith("seq."),
               "second names": lambda k: k.startswith("seq."),
               "parameters of a": lambda k: k.startswith("a."),
               "all": lambda k: True, "none": lambda k: False}
    for what, keep in subsets.items():
        state = OrderedDict((k, v) for k, v in full.items() if keep(k))
        state["extra"] = torch.zeros(1)
        # (without its versions torch's BatchNorm takes a missing num_batches_tracked as 0,
        # for checkpoints older than the buffer)
        state._metadata = full._metadata
        mine = ours.load_torch_state_dict(state, strict=False)
        want = theirs.load_state_dict(state, strict=False)
        assert mine.missing_keys == sorted(want.missing_keys), what
        assert mine.unexpected_keys == sorted(want.unexpected_keys), what
    assert ours.load_torch_state_dict(full) == ([], [])
    # a tied parameter still loads from one of its names with strict=True (graphc's
    # documented leniency: model.params() names it once), reported as torch's
    theirs.a.weight.data.fill_(0.25)
    result = ours.load_torch_state_dict({k: v for k, v in full.items()
                                         if not k.startswith("seq.")})
    # (a plain dict: torch's BatchNorm fills its num_batches_tracked in, not missing)
    assert result.missing_keys == ["seq.0.bias", "seq.0.weight", "seq.2.bias",
                                   "seq.2.running_mean", "seq.2.running_var", "seq.2.weight"]
    np.testing.assert_array_equal(ours.seq[0].weight.data, 0.25)


def test_a_strict_load_wants_every_persistent_buffer_as_torch():
    """A state without a persistent buffer loaded silently under strict=True (the model kept
    its own: a params() dict lacking a BatchNorm's statistics ran with fresh ones); torch's
    strict load refuses it. Now refused in one line naming the buffers torch names, nothing
    loaded; strict=False loads the rest and keeps the buffers, as torch's. A shared
    BatchNorm's buffers load from one of their names, as a tied parameter does."""
    ours, theirs = _shared_model(gc.nn), _shared_model(torch.nn)
    ours.register_buffer("cache", np.zeros(1), persistent=False)
    theirs.register_buffer("cache", torch.zeros(1), persistent=False)
    full = theirs.state_dict()
    buffers = {name for name, _ in theirs.named_buffers(remove_duplicate=False)} - {"cache"}
    weights = OrderedDict((k, v + 1) for k, v in full.items() if k not in buffers)
    weights._metadata = full._metadata  # (torch then counts num_batches_tracked too)
    with pytest.raises(RuntimeError, match="Missing key"):
        theirs.load_state_dict(weights)
    want = theirs.load_state_dict(weights, strict=False)
    assert sorted(want.missing_keys) == sorted(buffers) and want.unexpected_keys == []
    before = ours.a.weight.data.copy()
    ours.norm.running_mean.data[...] = 3.0
    arrays = {k: v.numpy() for k, v in weights.items()}
    assert_one_line_error(lambda: ours.load_torch_state_dict(weights),
                          "load_torch_state_dict: the state does not match the model: "
                          "missing ['norm.num_batches_tracked', 'norm.running_mean', "
                          "'norm.running_var'], unexpected []",
                          "test_module_tree.py")
    np.testing.assert_array_equal(ours.a.weight.data, before)  # nothing loaded
    assert ours.load_torch_state_dict(weights, strict=False) == (sorted(buffers), [])
    np.testing.assert_array_equal(ours.a.weight.data, arrays["a.weight"].T)
    np.testing.assert_array_equal(ours.norm.running_mean.data, 3.0)  # its own kept
    # the buffers under their first names only: the shared layer's loads, the others missing
    first = {**arrays, "norm.running_mean": np.full(2, 5.0), "norm.running_var": np.ones(2),
             "norm.num_batches_tracked": np.array(4)}
    assert ours.load_torch_state_dict(first).missing_keys == sorted(
        {"seq.2.running_mean", "seq.2.running_var"})  # (a plain dict: filled in, as torch's)
    np.testing.assert_array_equal(ours.seq[2].running_mean.data, 5.0)


def test_a_strict_load_fills_a_missing_num_batches_tracked_in_as_torch():
    """torch's BatchNorm/InstanceNorm fill a num_batches_tracked a state lacks in from the
    layer where the state carries no version (a plain dict: every state graphc gives or
    reads, a hand-made or converted checkpoint), so its strict load takes it and
    missing_keys leaves it out; a torch state_dict() whose _metadata says version 2 is
    refused, as torch's. The strict load of missing buffers refused the plain dict."""
    for make in (lambda nn: nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)),
                 lambda nn: nn.InstanceNorm1d(2, track_running_stats=True)):
        ours, theirs = make(gc.nn), make(torch.nn)
        full = theirs.state_dict()
        tracked = next(k for k in full if k.endswith("num_batches_tracked"))
        ours_tracked = ours.get_buffer(tracked)
        ours_tracked.data[...] = 7
        for versioned in (False, True):
            state = OrderedDict((k, v) for k, v in full.items() if k != tracked)
            if versioned:
                state._metadata = full._metadata
            want = theirs.load_state_dict(state, strict=False)
            mine = ours.load_torch_state_dict(state, strict=False)
            assert mine == (sorted(want.missing_keys), sorted(want.unexpected_keys))
            assert mine.missing_keys == ([tracked] if versioned else [])
            if versioned:
                with pytest.raises(gc.GraphcError, match=r"missing \['.*num_batches_tracked"):
                    ours.load_torch_state_dict(state)
            else:
                theirs.load_state_dict(state)
                assert ours.load_torch_state_dict(state) == ([], [])
                arrays = {k: v.numpy() for k, v in state.items()}
                assert ours.load_state_dict(arrays) == ([], [])  # graphc's own dict too
            assert int(ours_tracked.data) == 7  # the layer's own kept


def test_load_state_dict_with_assign_takes_the_given_arrays_as_torch():
    """torch's load_state_dict(assign=True) (torch >= 2.1): the module takes the given
    tensors themselves instead of copying into its own. graphc had no assign."""
    ours, theirs = gc.nn.Linear(2, 3), torch.nn.Linear(2, 3)
    ours.bias.requires_grad = False
    theirs.bias.requires_grad_(False)
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    tw, tb = torch.tensor(w.T.copy()), torch.tensor(b.copy())
    x = rng.normal(size=(4, 2)).astype(np.float32)
    forward = gc.compile(lambda x: ours(x))
    forward(x)  # a plan bound to the Parameters about to be replaced
    old = ours.weight
    assert ours.load_state_dict({"weight": w, "bias": b}, assign=True) == ([], [])
    theirs.load_state_dict({"weight": tw, "bias": tb}, assign=True)
    # a new Parameter holding the given array itself, with the replaced one's requires_grad
    assert ours.weight is not old and isinstance(ours.weight, gc.nn.Parameter)
    assert ours.weight.data is w and theirs.weight.data_ptr() == tw.data_ptr()
    assert [p.requires_grad for p in ours.parameters()] == \
        [p.requires_grad for p in theirs.parameters()] == [True, False]
    w[0] += 1.0  # aliased: the model sees the change, compiled and eager
    tw[:, 0] += 1.0
    want = theirs(torch.tensor(x))
    np.testing.assert_allclose(np.asarray(forward(x)), want.detach().numpy(), rtol=1e-6)
    gc.sum(ours(gc.tensor(x))).backward()
    want.sum().backward()
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy().T, rtol=1e-6)
    assert ours.bias.grad is None and theirs.bias.grad is None
    # a Parameter given is taken itself, its requires_grad set to the replaced one's
    p, tp = gc.nn.Parameter(w, requires_grad=False), torch.nn.Parameter(tw, requires_grad=False)
    ours.load_state_dict({"weight": p, "bias": b}, assign=True)
    theirs.load_state_dict({"weight": tp, "bias": tb}, assign=True)
    assert ours.weight is p and theirs.weight is tp and p.requires_grad and tp.requires_grad
    # uncast: the given dtype, as torch's
    ours.load_state_dict({"weight": w.astype(np.float64), "bias": b}, assign=True)
    theirs.load_state_dict({"weight": tw.double(), "bias": tb}, assign=True)
    assert ours.weight.data.dtype == np.float64 and theirs.weight.dtype == torch.float64
    # shapes (and strictness) still checked, before anything is taken
    kept = ours.weight
    with pytest.raises(RuntimeError, match="size mismatch"):
        theirs.load_state_dict({"weight": tw, "bias": torch.zeros(2)}, assign=True)
    for bad, message in [({"weight": w, "bias": np.zeros(2, np.float32)},
                          "load_state_dict: bias has shape (2,), the model's is (3,)"),
                         ({"weight": w.astype(np.int64), "bias": b}, "load_state_dict: "
                          "weight: Parameter: only floating-point tensors can require"),
                         ({"weight": np.broadcast_to(b[:1], (2, 3)), "bias": b},
                          "load_state_dict: weight is a read-only array"),
                         ({"weight": w}, "missing ['bias']")]:
        assert_one_line_error(lambda: ours.load_state_dict(bad, assign=True), message,
                              "test_module_tree.py")
        assert ours.weight is kept
    # a buffer takes the given array too; a shared layer's under each of its names
    norm, tnorm = gc.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    mean = np.full(2, 5.0, np.float32)
    norm.load_state_dict({**norm.state_dict(), "running_mean": mean}, assign=True)
    tmean = torch.full((2,), 5.0)
    tnorm.load_state_dict({**tnorm.state_dict(), "running_mean": tmean}, assign=True)
    assert norm.running_mean.data is mean and tnorm.running_mean is tmean
    var = np.full(2, 2.0, np.float32)  # through a compiled module too, as torch's
    gc.compile(norm).load_state_dict({**norm.state_dict(), "running_var": var}, assign=True)
    assert norm.running_var.data is var
    # a tied Parameter stays tied (torch's assign puts a separate Parameter at each place)
    model = _shared_model(gc.nn)
    model.b = gc.nn.Linear(2, 2)
    model.b.weight = model.a.weight
    state = {k: v.copy() for k, v in model.state_dict().items()}
    model.load_state_dict(state, assign=True)
    assert model.b.weight is model.a.weight is model.seq[0].weight
    assert model.a.weight.data is state["a.weight"]
    assert model.norm.running_var is model.seq[2].running_var
