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
