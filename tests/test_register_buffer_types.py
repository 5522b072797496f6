"""Session 55: register_buffer took a Python number (an int64 0-d Buffer for 1), a numpy
scalar, a list or a tuple of numbers and made a Buffer of it, where torch raises TypeError
("cannot assign 'int' object to buffer 'z' (torch Tensor or None required)") and where
`m.z = 1` over a buffer is refused since session 54. register_buffer now takes what torch's
takes, in graphc's kinds: a numpy array (a 0-d one too), a graphc tensor, another library's
tensor, or None; anything else is that TypeError in one line, nothing registered."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

REFUSED = [(1, "an int"), (2.5, "a float"), (True, "a bool"), ([1.0, 2.0], "a list"),
           ((1, 2), "a tuple"), (np.float32(1), "a numpy float32 scalar"), ("hi", "a str")]


@pytest.mark.parametrize("value, what", REFUSED)
def test_register_buffer_refuses_what_torch_refuses(value, what):
    with pytest.raises(TypeError, match="torch Tensor or None required"):
        torch.nn.Module().register_buffer("z", value)
    m = gc.nn.Module()
    with pytest.raises(TypeError):
        m.register_buffer("z", value)
    problem = one_line_problem(lambda: m.register_buffer("z", value),
                               "test_register_buffer_types.py")
    assert problem.startswith(f"register_buffer('z'): cannot assign {what} as buffer 'z'"), \
        problem
    assert "z" not in vars(m) and dict(m.named_buffers()) == {} and m.state_dict() == {}


def test_register_buffer_takes_arrays_tensors_and_none():
    m = gc.nn.Module()
    m.register_buffer("a", np.array([1.0, 2.0]))
    m.register_buffer("s", np.array(3.0))  # (a 0-d array: taken, as a 0-d tensor)
    m.register_buffer("t", gc.tensor([4.0, 5.0]))
    m.register_buffer("f", torch.tensor([6.0], dtype=torch.float64))
    m.register_buffer("e", None)
    state = m.state_dict()
    assert list(state) == ["a", "s", "t", "f"] and m.e is None
    for name, want in [("a", [1.0, 2.0]), ("s", 3.0), ("t", [4.0, 5.0]), ("f", [6.0])]:
        assert isinstance(getattr(m, name), gc.nn.Buffer)
        np.testing.assert_array_equal(np.asarray(state[name]), want)
    m.register_buffer("e", np.zeros(2))  # an empty one filled
    np.testing.assert_array_equal(np.asarray(m.e.data), [0.0, 0.0])
