"""Review r4 s54: a numpy scalar (np.float32(1), np.int64(5)) set over a registered buffer
became a new 0-d Buffer, silently, and eval() then failed in reshape's words; torch refuses
it ("cannot assign 'numpy.float32' as buffer 'running_var'"), as graphc refuses a Python
number: one TypeError line now, the Buffer left as it was. A 0-d numpy array is an array,
taken as torch takes a 0-d tensor."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


@pytest.mark.parametrize("value, kind", [(np.float32(1), "float32"), (np.int64(5), "int64"),
                                         (np.bool_(True), "bool")])
def test_a_numpy_scalar_over_a_buffer_is_refused_as_torch(value, kind):
    theirs = torch.nn.BatchNorm1d(3)
    with pytest.raises(TypeError, match="cannot assign 'numpy.* as buffer 'running_var'"):
        theirs.running_var = value
    ours = gc.nn.BatchNorm1d(3)
    with pytest.raises(TypeError):
        ours.running_var = value
    problem = one_line_problem(lambda: setattr(ours, "running_var", value), "test_buffer_numpy_scalar.py")
    assert problem.startswith(f"BatchNorm1d: cannot assign a numpy {kind} scalar as buffer "
                              "'running_var'"), problem
    assert isinstance(ours.running_var, gc.nn.Buffer)
    assert ours.running_var.data.dtype == np.float32 and ours.running_var.shape == (3,)
    ours.eval()
    np.testing.assert_allclose(np.asarray(ours(np.ones((2, 3), np.float32))),
                               theirs.eval()(torch.ones(2, 3)).detach().numpy(), rtol=1e-6)
    ours.num_batches_tracked = np.array(7)  # (a 0-d array: taken)
    assert int(np.asarray(ours.num_batches_tracked.data)) == 7
