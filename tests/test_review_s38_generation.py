"""Session 38's fixes of GPT generation after a cast, of its prompt checks and of a float16
model's overflow; each test failed before its fix."""
import warnings

import numpy as np
import pytest

from graphc.cli import main
from graphc.generate import Generator
from graphc.models import gpt2
from graphc.models.gpt import GPT, GPTConfig
from graphc.sample import Sampler

from test_gpt2 import need_transformers, save_random_gpt2, train_tokenizer


# ---- 1. a torch-style cast keeps cfg.dtype in step with the weights -------------------------
def test_generation_after_a_cast_matches_the_model_loaded_in_that_dtype(tmp_path):
    """After load_gpt2(dir).double() (or .half(), .bfloat16(), .to(dtype)) the model's
    cfg.dtype stayed float32 while its weights were cast, so Generator and Sampler failed
    inside the plan ("dynamic_update_slice(f32..., f64...)"); now a cast on a GPT sets its
    cfg.dtype, and the greedy tokens are those of the model loaded in that dtype."""
    need_transformers()
    save_random_gpt2(tmp_path)
    prompts = [[5, 17, 200], [42]]
    for cast, dtype in ((lambda m: m.double(), "float64"), (lambda m: m.half(), "float16"),
                        (lambda m: m.to("bfloat16"), "bfloat16")):
        loaded, loaded_params = gpt2.load_gpt2(str(tmp_path), dtype)
        want = Generator(loaded, loaded_params).generate(prompts, 6, temperature=0)
        model, _ = gpt2.load_gpt2(str(tmp_path))
        cast(model)
        assert model.cfg.dtype == dtype
        assert model.cfg.to_dict()["dtype"] == dtype  # what a checkpoint's header records
        params = model.params()
        assert Generator(model, params).generate(prompts, 6, temperature=0) == want
        assert Sampler(model, params).generate(prompts[0], 6, temperature=0) == want[0]


def test_a_cast_leaves_the_config_of_another_model_alone():
    """The config is the GPT's own after a cast: two models built from one GPTConfig, one
    of them cast with .double(), keep their own dtypes (the other still generates in
    float32), and casting back with .float() generates float32's tokens again."""
    cfg = GPTConfig.named("tiny", vocab_size=50)
    cast, other = GPT(cfg, seed=0), GPT(cfg, seed=0)
    want = Generator(other, other.params()).generate([[1, 2, 3]], 5, temperature=0)
    cast.double()
    assert cast.cfg.dtype == "float64" and other.cfg.dtype == cfg.dtype == "float32"
    assert all(m.cfg is cast.cfg for m in cast.modules() if hasattr(m, "cfg"))
    assert Generator(other, other.params()).generate([[1, 2, 3]], 5, temperature=0) == want
    assert Generator(cast, cast.params()).generate([[1, 2, 3]], 5, temperature=0) == want
    cast.float()
    assert cast.cfg.dtype == "float32"
    assert Generator(cast, cast.params()).generate([[1, 2, 3]], 5, temperature=0) == want


def test_generator_refuses_params_of_another_dtype_in_one_line():
    """Params taken before a cast (float32 arrays for a model now float64) were fed to the
    plan unchecked; now Generator refuses them in one line naming the parameter and both
    dtypes, as it refuses another shape."""
    model = GPT(GPTConfig.named("tiny", vocab_size=50))
    stale = model.params()
    model.double()
    with pytest.raises(ValueError) as info:
        Generator(model, stale)
    assert str(info.value) == ("Generator: params['wte.weight'] has dtype float32, the "
                               "model's is float64 (params from before a cast? take "
                               "model.params() after it)")


# ---- 2. one unwrapped prompt is one error line ----------------------------------------------
def test_prompts_that_are_not_a_list_of_lists_are_one_error_line():
    """generate([1, 2, 3], ...) (one prompt, not wrapped in a list) and a generator of
    prompts were raw TypeErrors ("object of type 'int' has no len()"); now each is one
    ValueError line, and a tuple of tuples or a 2-d array are still rows of prompts."""
    model = GPT(GPTConfig.named("tiny", vocab_size=50))
    gen = Generator(model, model.params())
    for prompts, got in (([1, 2, 3], "[1, 2, 3]"), ((p for p in [[1, 2]]), "a generator"),
                         (np.array([1, 2, 3]), "array([1, 2, 3])"), (7, "7")):
        for tokens in (3, 0):  # (0 runs nothing, but checks the prompts the same)
            with pytest.raises(ValueError) as info:
                gen.generate(prompts, tokens)
            assert str(info.value) == ("prompts must be a list of token-id lists (one per "
                                       f"row), got {got}")
    want = gen.generate([[1, 2], [3, 4]], 3, temperature=0)
    assert gen.generate(((1, 2), (3, 4)), 3, temperature=0) == want
    assert gen.generate(np.array([[1, 2], [3, 4]]), 3, temperature=0) == want


# ---- 3. a float16 overflow names float16, with no numpy warning before it --------------------
def _overflowing_float16(model):
    """ln_f's weight 60000 (below float16's largest, 65504): its outputs overflow float16."""
    params = model.params()
    params["ln_f.weight"] = np.full_like(params["ln_f.weight"], 60000)
    params["ln_f.bias"] = np.full_like(params["ln_f.bias"], 60000)
    return params


def test_a_float16_overflow_names_float16_without_a_numpy_warning():
    """A float16 model whose activations overflow said "are its weights finite and within
    float32's range?", after numpy's "overflow encountered in cast" RuntimeWarning from the
    plan; now the message names float16 and what to try, and no warning comes first. A
    float64 model's message names float64's range."""
    model = GPT(GPTConfig.named("tiny", vocab_size=50, dtype="float16"))
    gen = Generator(model, _overflowing_float16(model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            gen.generate([[1, 2]], 2, temperature=0)
    assert [str(w.message) for w in caught] == []
    assert str(info.value) == (
        "the model's logits hold NaN or +Inf, or are all -Inf, so no token can be chosen: "
        "its float16 activations likely overflowed float16: try --dtype bfloat16 or float32 "
        "(model.bfloat16() or model.float())")
    wide = GPT(GPTConfig.named("tiny", vocab_size=50, dtype="float64"))
    params = wide.params()
    params["ln_f.weight"] = np.full_like(params["ln_f.weight"], np.inf)
    with pytest.raises(ValueError, match="are its weights finite and within float64's range"):
        Generator(wide, params).generate([[1, 2]], 1, temperature=0)


def test_sample_ends_the_printed_text_before_the_overflow_error(tmp_path, capsys):
    """`graphc sample --dtype float16` of a model whose activations overflow printed the
    prompt, then numpy's RuntimeWarning glued to it, then an error line naming float32;
    now the printed text ends with a newline, and stderr is the one error line, naming
    float16 and --dtype."""
    need_transformers()
    from safetensors.numpy import load_file, save_file
    save_random_gpt2(tmp_path)
    train_tokenizer(tmp_path / gpt2.TOKENIZER_FILE)
    weights = tmp_path / gpt2.WEIGHTS_FILE
    tensors = load_file(str(weights))
    for key in ("transformer.ln_f.weight", "transformer.ln_f.bias"):
        tensors[key] = np.full_like(tensors[key], 60000)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    capsys.readouterr()
    assert main(["sample", "--model", str(tmp_path), "--prompt", "ROMEO:", "--tokens", "3",
                 "--temperature", "0", "--dtype", "float16"]) == 2
    out, err = capsys.readouterr()
    assert out == "ROMEO:\n"
    assert err == ("graphc: error: the model's logits hold NaN or +Inf, or are all -Inf, so "
                   "no token can be chosen: its float16 activations likely overflowed "
                   "float16: try --dtype bfloat16 or float32 (model.bfloat16() or "
                   "model.float())\n")


def test_the_gpt_trainer_refuses_a_half_gpt_and_saves_a_double_one(tmp_path):
    """The GPT Trainer built on a model.half() (or .bfloat16()) GPT wrote model.dtype
    "float16" into its checkpoint's header, which graphc's own checkpoint.load refuses ("has a
    bad value 'float16'"). The Trainer now refuses such a GPT in one line naming the
    precision options; a double() GPT trains, saves, loads back as float64 and resumes."""
    from graphc import checkpoint, train
    from graphc.data import CharData
    ids = np.arange(400) % 4
    data = CharData(list("abcd"), ids[:300], ids[300:])
    cfg = GPTConfig.named("tiny", vocab_size=4)
    tc = train.TrainConfig(steps=1, eval_every=1, eval_iters=1)
    for cast, name in ((GPT.half, "float16"), (GPT.bfloat16, "bfloat16")):
        with pytest.raises(train.GraphcError, match=rf"^Trainer: the GPT is {name}; train a "
                           r"float32 or float64 GPT; half precision training is --precision "
                           r"fp16-mixed / bf16-mixed"):
            train.Trainer(cast(GPT(cfg, seed=0)), data, tc)
    trainer = train.Trainer(GPT(cfg, seed=0).double(), data, tc)
    assert np.isfinite(trainer.train_step())
    path = str(tmp_path / "ckpt.npz")
    trainer.save(path)
    arrays, meta = checkpoint.load(path)
    assert meta["model"]["dtype"] == "float64"
    assert arrays["param/wte.weight"].dtype == np.float64
    resumed = train.Trainer(GPT(cfg, seed=1).double(), data, tc)
    resumed.resume(path)
    np.testing.assert_array_equal(resumed.params["wte.weight"], trainer.params["wte.weight"])
