"""Session 37's fixes of the training library and generation; each test failed before its
fix."""
import numpy as np
import pytest

from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError


# ---- 1. GPTConfig's dtype is checked -----------------------------------------------------
def test_an_unknown_gpt_dtype_is_one_error_naming_the_accepted_dtypes():
    """GPT(GPTConfig(dtype="foo")) was numpy's raw TypeError ("data type 'foo' not
    understood") from the first layer's weights; now it is one GraphcError line naming dtype
    and the dtypes a GPT's weights can have."""
    with pytest.raises(GraphcError) as info:
        GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, dtype="foo"))
    assert str(info.value) == ("GPTConfig: dtype 'foo' is not one of float32, float64, "
                               "bfloat16, float16")
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, dtype="float64"))
    assert model.wte.weight.dtype == np.float64
