"""Session 53's findings on gc.nn.Module's API against torch.nn.Module (register_buffer over
an attribute, the order of a placeholder set later), each against torch on the same code."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s53_module.py"


def _scaler(nn):
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.k = 3.0

        def forward(self, x):
            return x * self.k

    return Scale()


@pytest.mark.parametrize("name", ["k", "forward", "training"])
def test_register_buffer_over_another_attribute_is_refused_as_torchs(name):
    theirs = _scaler(torch.nn)
    with pytest.raises(KeyError, match="already exists"):
        theirs.register_buffer(name, torch.ones(1))
    ours = _scaler(gc.nn)
    assert_one_line_error(lambda: ours.register_buffer(name, np.ones(1, np.float32)),
                          f"register_buffer({name!r}): Scale has an attribute {name!r} "
                          "already", HERE)
    # nothing changed: the setting, the forward method and the training flag are the
    # module's own still (before, the buffer replaced the setting, shadowed forward, or was
    # dropped from state_dict() by the next eval())
    assert ours.k == 3.0 and list(ours.state_dict()) == []
    np.testing.assert_array_equal(ours(np.ones(2, np.float32)), [3.0, 3.0])
    assert ours.eval().training is False and ours.train().training is True


def test_register_buffer_takes_the_names_torchs_takes():
    for nn, array in ((torch.nn, torch.ones), (gc.nn, lambda n: np.ones(n, np.float32))):
        module = _scaler(nn)
        module.register_buffer("b", array(1))
        module.register_buffer("b", array(2))  # a buffer again: replaced
        module.register_buffer("e", None)
        module.register_buffer("e", array(3))  # an empty one: filled
        module.register_buffer("1x", array(1))  # not an identifier, but no '.': torch's
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == \
            {"b": (2,), "e": (3,), "1x": (1,)}


def _placeholders(nn, tensor):
    """A layer written with placeholders (a plain None, a plain setting) given their
    Parameter, Buffer or child after the others, and empty ones torch registers, refilled."""
    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = None  # a plain None: the Parameter set below goes last
            self.scale = 2.0  # a setting a Parameter replaces: last too
            self.head = None  # a plain None: the child goes after body
            self.register_parameter("gate", None)  # torch's empty one: keeps its place
            self.register_buffer("mask", None)  # (and so does this)
            self.weight = nn.Parameter(tensor([1.0, 2.0]))
            self.first = nn.Parameter(tensor([3.0]))
            self.register_buffer("count", tensor([0.0]))
            self.body = nn.Identity()
            self.head = nn.Identity()
            self.bias = nn.Parameter(tensor([0.5, 0.5]))
            self.scale = nn.Parameter(tensor([2.0]))
            self.gate = nn.Parameter(tensor([1.0]))
            self.mask = tensor([1.0, 0.0])
            self.first = None  # an emptied Parameter keeps its place too
            self.first = nn.Parameter(tensor([4.0]))

    return Layer()


def _order(module):
    return (list(module.state_dict()), [n for n, _ in module.named_parameters()],
            [n for n, _ in module.named_buffers()], [n for n, _ in module.named_children()])


def test_a_placeholder_given_its_tensor_or_child_later_comes_in_torchs_order():
    theirs = _placeholders(torch.nn, lambda v: torch.tensor(v))
    ours = _placeholders(gc.nn, lambda v: np.asarray(v, np.float32))
    assert _order(ours) == _order(theirs)
    assert [n for n, _ in ours.named_parameters()] == \
        ["gate", "weight", "first", "bias", "scale"]  # (before: bias, scale, gate, ...)
    # the port by order that torch users write loads each weight into its own place
    for mine, its in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_array_equal(mine.data, its.detach().numpy())


def test_a_none_item_of_a_parameter_container_set_later_comes_in_torchs_order():
    for nn, tensor in ((torch.nn, torch.ones), (gc.nn, lambda n: np.ones(n, np.float32))):
        items = nn.ParameterList([None, nn.Parameter(tensor(1))])
        items[0] = nn.Parameter(tensor(2))
        table = nn.ParameterDict({"a": None, "b": nn.Parameter(tensor(1))})
        table["a"] = nn.Parameter(tensor(2))
        assert list(items.state_dict()) == ["1", "0"]
        assert list(table.state_dict()) == ["b", "a"] and list(table.keys()) == ["a", "b"]


def test_next_of_parameters_buffers_children_and_modules_is_torchs_first_item():
    """torch's walkers are generators (next(model.parameters()).dtype is a common idiom);
    graphc's are lists that are iterators too: next() gives torch's items in torch's order."""
    ours = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.BatchNorm1d(3))
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    for walk in ("parameters", "buffers", "children", "modules"):
        mine, torchs = getattr(ours, walk)(), getattr(theirs, walk)()
        names = [type(next(mine)).__name__, type(next(mine)).__name__]
        assert names[0] != "list" and len(mine) == len(list(getattr(theirs, walk)()))
        if walk in ("parameters", "buffers"):
            first, second = next(torchs), next(torchs)
            assert [type(x) for x in (first, second)] == [type(first), type(first)]
        else:
            assert names == [type(next(torchs)).__name__, type(next(torchs)).__name__]
    params = ours.parameters()
    assert [tuple(next(params).shape) for _ in range(4)] == [(2, 3), (3,), (3,), (3,)]
    with pytest.raises(StopIteration):
        next(params)
    assert len(params) == 4 and len(params + []) == 4  # still the list it was
    assert next(gc.compile(ours).parameters()) is ours.parameters()[0]


def test_register_buffer_filling_an_empty_buffer_keeps_its_place_as_torchs():
    """Review r4: register_buffer(name, array) over an empty buffer (registered None, or a
    buffer set to None) moved it after the later ones, where torch keeps its place: the
    cache written in forward (register_buffer("cos", None, persistent=False), filled by
    register_buffer("cos", table, persistent=False)) came in another order than torch's."""
    def build(nn, tensor):
        module = nn.Module()
        module.register_buffer("cache", None, persistent=False)
        module.register_buffer("mask", None)
        module.register_buffer("count", tensor(1))
        module.register_buffer("mask", tensor(2))
        module.register_buffer("cache", tensor(3), persistent=False)
        module.register_buffer("count", None)
        module.register_buffer("total", tensor(4))
        module.register_buffer("count", tensor(5))
        return module

    ours = build(gc.nn, lambda n: np.ones(n, np.float32))
    theirs = build(torch.nn, torch.ones)
    assert _order(ours) == _order(theirs)
    assert [n for n, _ in ours.named_buffers()] == ["cache", "mask", "count", "total"]
