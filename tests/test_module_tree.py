"""Module.children / named_children / modules / named_modules and torch's apply(fn), against
torch.nn on the same architecture (names and order), and apply(fn) reaching every layer."""
import numpy as np
import pytest

import graphc as gc

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
