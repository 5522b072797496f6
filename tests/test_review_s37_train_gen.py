"""Session 37's fixes of the training library and generation; each test failed before its
fix."""
import numpy as np
import pytest

from graphc.generate import Generator
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError

from test_generate import small_model


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


# ---- 2. bool token ids are refused ---------------------------------------------------------
@pytest.mark.parametrize("prompts", [[[True, 2]], [[3]], np.array([[True, False]])])
def test_generation_refuses_bool_token_ids_as_torchs_embedding(prompts):
    """A prompt [True, 2] generated as [1, 2] (True taken as token 1; torch's embedding
    refuses bool indices), and stop_tokens=True stopped at token 1; a bool array was refused
    as "not a whole number". Now each is one ValueError saying the token id is a bool."""
    model, params = small_model()
    stop = True if len(prompts[0]) == 1 else None
    with pytest.raises(ValueError, match=r"token id (np\.)?True_? is a bool, not a whole "
                                         r"number$"):
        Generator(model, params).generate(prompts, 2, temperature=0, stop_tokens=stop)
    assert len(Generator(model, params).generate([[1, 2]], 2, temperature=0)[0]) == 2
