"""Session 34's fixes of GPT-2 loading and generation (graphc/models/gpt2.py,
graphc/generate.py, `graphc sample`); each test failed before its fix."""
import warnings

import numpy as np
import pytest
import safetensors.numpy as safetensors_numpy

from graphc.models import gpt2
from ir.errors import GraphcError

from test_gpt2 import SMALL, graphc_logits, need_transformers, save_random_gpt2


def rewrite_weights(directory, change):
    """model.safetensors rewritten with change(tensors by name) applied."""
    path = directory / gpt2.WEIGHTS_FILE
    tensors = safetensors_numpy.load_file(str(path))
    change(tensors)
    safetensors_numpy.save_file(tensors, str(path), metadata={"format": "pt"})


def transformers_logits(directory, idx):
    import torch
    from transformers import GPT2LMHeadModel
    reference = GPT2LMHeadModel.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        return reference, reference(torch.tensor(idx)).logits.numpy()


IDX = np.random.default_rng(1).integers(0, SMALL["vocab_size"], (2, SMALL["n_positions"]))


# ---- 1. a tied config over a file whose lm_head.weight is not wte's copy ---------------------
def test_a_tied_config_with_a_different_head_in_the_file_loads_untied_as_transformers(tmp_path):
    """config.json ties the head (tie_word_embeddings true) but model.safetensors holds an
    lm_head.weight that differs from wte: graphc dropped it as "a tied copy" and computed
    logits with wte (13.9 off transformers'); now it loads untied, with a warning, and its
    logits are transformers' (which keeps the file's head); a copy of wte there is
    still dropped."""
    need_transformers()
    save_random_gpt2(tmp_path)
    head = np.random.default_rng(0).normal(0, 1, (SMALL["vocab_size"], SMALL["n_embd"]))
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": head.astype(np.float32)}))
    reference, want = transformers_logits(tmp_path, IDX)
    assert reference.lm_head.weight.data_ptr() != reference.transformer.wte.weight.data_ptr()
    with pytest.warns(UserWarning, match="'lm_head.weight' differs from it: loaded untied"):
        model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is False
    np.testing.assert_array_equal(params["lm_head.weight"], head.astype(np.float32).T)
    np.testing.assert_allclose(graphc_logits(model, params, IDX), want, rtol=0, atol=1e-4)
    # the file's head a copy of wte (as torch .bin conversions write it): tied, no warning
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is True and "lm_head.weight" not in params


def test_a_tied_config_with_a_wrongly_shaped_head_is_refused(tmp_path):
    """A head of the wrong shape under a tied config was dropped unread; now it is one error
    line naming the file, the tensor and the shape config.json implies."""
    need_transformers()
    save_random_gpt2(tmp_path)
    V, C = SMALL["vocab_size"], SMALL["n_embd"]
    rewrite_weights(tmp_path, lambda t: t.update({"lm_head.weight": np.ones((V - 1, C),
                                                                           np.float32)}))
    with pytest.raises(GraphcError) as caught:
        gpt2.load_gpt2(str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith(f"{gpt2.WEIGHTS_FILE}: tensor 'lm_head.weight' has shape "
                            f"[{V - 1}, {C}], config.json implies [{V}, {C}]"), message


# ---- 2. a tied checkpoint that stores the shared matrix as lm_head.weight only ---------------
def test_a_tied_checkpoint_holding_only_lm_head_loads_it_as_wte(tmp_path):
    """safetensors.torch.save_model writes GPT-2's shared matrix once, as lm_head.weight:
    graphc refused it ("missing tensor 'wte.weight' (config.json declares 2 layers)"); now it
    loads it as wte, tied, and its logits are transformers'. A missing tensor outside the
    layers no longer speaks of the layers config.json declares."""
    need_transformers()
    from safetensors import safe_open
    from safetensors.torch import save_model
    reference = save_random_gpt2(tmp_path)
    save_model(reference, str(tmp_path / gpt2.WEIGHTS_FILE))
    with safe_open(str(tmp_path / gpt2.WEIGHTS_FILE), "np") as f:
        assert "lm_head.weight" in f.keys() and "transformer.wte.weight" not in f.keys()
    model, params = gpt2.load_gpt2(str(tmp_path))
    assert model.cfg.tie_weights is True and "lm_head.weight" not in params
    np.testing.assert_array_equal(params["wte.weight"],
                                  reference.transformer.wte.weight.detach().numpy())
    _, want = transformers_logits(tmp_path, IDX)
    np.testing.assert_allclose(graphc_logits(model, params, IDX), want, rtol=0, atol=1e-4)

    rewrite_weights(tmp_path, lambda t: t.pop("transformer.ln_f.weight"))
    with pytest.raises(GraphcError) as caught:
        gpt2.load_gpt2(str(tmp_path))
    assert str(caught.value).endswith(
        f"{gpt2.WEIGHTS_FILE}: missing tensor 'ln_f.weight'"), str(caught.value)
