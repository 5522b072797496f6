"""A model.safetensors with tensors a GPT2LMHeadModel does not use (a
GPT2ForSequenceClassification's score.weight, a GPT2DoubleHeadsModel's multiple_choice_head,
a layer past config.json's n_layer) loads without them and warns in one line naming them,
as transformers' from_pretrained does; they were refused (g2's finding 6). A missing tensor
is named by the file's own key ('transformer.h.1...'), as the other messages name it."""
import json
import os
import warnings

import numpy as np
import pytest
from safetensors.numpy import save_file

from graphc.models import gpt2
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError


def write(directory, extra=(), drop=(), prefix="transformer.", n_layer=2):
    model = GPT(GPTConfig(vocab_size=30, n_layer=2, n_head=2, n_embd=8, block_size=8), seed=0)
    tensors = {prefix + gpt2.hf_name(n): p for n, p in model.state_dict().items()}
    for name in drop:
        del tensors[name]
    tensors.update(extra)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, gpt2.CONFIG_FILE), "w") as fh:
        json.dump({"model_type": "gpt2", "vocab_size": 30, "n_positions": 8, "n_embd": 8,
                   "n_layer": n_layer, "n_head": 2, "layer_norm_epsilon": 1e-5,
                   "activation_function": "gelu_new"}, fh)
    save_file(tensors, os.path.join(directory, gpt2.WEIGHTS_FILE))
    return model.state_dict()


def load_warned(directory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, params = gpt2.load_gpt2(str(directory))
    return model, params, [str(w.message) for w in caught if w.category is gpt2.GPT2Warning]


def test_unused_tensors_are_left_with_one_warning(tmp_path):
    want = write(tmp_path, {"score.weight": np.ones((2, 8), np.float32),
                            "multiple_choice_head.summary.bias": np.ones(1, np.int32)})
    model, params, caught = load_warned(tmp_path)
    path = os.path.join(str(tmp_path), gpt2.WEIGHTS_FILE)
    assert caught == [f"{path}: tensors not part of a GPT-2 with config.json's settings, not "
                      "loaded (as transformers' GPT2LMHeadModel leaves them): "
                      "'multiple_choice_head.summary.bias', 'score.weight'"]
    assert params.keys() == want.keys()
    for name, value in want.items():
        np.testing.assert_array_equal(params[name], value)


def test_layers_past_n_layer_are_left_and_named_at_most_five(tmp_path):
    want = write(tmp_path, n_layer=1)
    model, params, caught = load_warned(tmp_path)
    assert model.cfg.n_layer == 1
    np.testing.assert_array_equal(params["blocks.0.attn.c_attn.weight"],
                                  want["blocks.0.attn.c_attn.weight"])
    assert len(caught) == 1 and caught[0].endswith(
        "'transformer.h.1.attn.c_attn.bias', 'transformer.h.1.attn.c_attn.weight', "
        "'transformer.h.1.attn.c_proj.bias', 'transformer.h.1.attn.c_proj.weight', "
        "'transformer.h.1.ln_1.bias' and 7 more"), caught


@pytest.mark.parametrize("prefix, drop, named", [
    ("transformer.", "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.mlp.c_fc.bias"),
    ("transformer.", "transformer.h.1.ln_1.weight", "transformer.h.1.ln_1.weight"),
    ("", "h.1.mlp.c_fc.bias", "h.1.mlp.c_fc.bias"),
    ("transformer.", "transformer.ln_f.weight", "transformer.ln_f.weight"),
])
def test_a_missing_tensor_is_named_as_the_file_names_it(tmp_path, prefix, drop, named):
    write(tmp_path, drop=[drop], prefix=prefix)
    with pytest.raises(GraphcError) as caught:
        gpt2.load_gpt2(str(tmp_path))
    assert f"model.safetensors: missing tensor {named!r}" in str(caught.value)

