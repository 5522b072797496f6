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
    assert result.missing_keys == ["seq.0.bias", "seq.0.weight", "seq.2.bias",
                                   "seq.2.num_batches_tracked", "seq.2.running_mean",
                                   "seq.2.running_var", "seq.2.weight"]
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
    assert_one_line_error(lambda: ours.load_torch_state_dict(weights), "load_state_dict: the "
                          "state does not match the model: missing ['norm.num_batches_"
                          "tracked', 'norm.running_mean', 'norm.running_var'], unexpected []",
                          "test_module_tree.py")
    np.testing.assert_array_equal(ours.a.weight.data, before)  # nothing loaded
    assert ours.load_torch_state_dict(weights, strict=False) == (sorted(buffers), [])
    np.testing.assert_array_equal(ours.a.weight.data, arrays["a.weight"].T)
    np.testing.assert_array_equal(ours.norm.running_mean.data, 3.0)  # its own kept
    # the buffers under their first names only: the shared layer's loads, the others missing
    first = {**arrays, "norm.running_mean": np.full(2, 5.0), "norm.running_var": np.ones(2),
             "norm.num_batches_tracked": np.array(4)}
    assert ours.load_torch_state_dict(first).missing_keys == sorted(
        {"seq.2.running_mean", "seq.2.running_var", "seq.2.num_batches_tracked"})
    np.testing.assert_array_equal(ours.seq[2].running_mean.data, 5.0)
