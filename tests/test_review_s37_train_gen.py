"""Session 37's fixes of the training library and generation; each test failed before its
fix."""
import numpy as np
import pytest

import graphc as gc
from graphc.trainer import TrainingDiverged
from graphc import checkpoint
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
    assert str(info.value) == ("GPTConfig: dtype 'foo' is not a dtype such as 'float32'; the "
                               "accepted ones are float32, float64, bfloat16, float16")
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


# ---- 4. a class target out of range is named, not blamed on the learning rate -------------
def _linear_trainer(targets, ignore_index=-100):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(targets), 4)).astype(np.float32)
    params = {"w": rng.normal(size=(4, 3)).astype(np.float32)}

    def loss(p, batch):
        inputs, labels = batch
        return gc.cross_entropy(inputs @ p["w"], labels, ignore_index=ignore_index)
    return gc.Trainer(loss, params, gc.optim.AdamW(1e-3), lambda rng: (x, targets), steps=3)


def test_a_class_target_out_of_range_is_named_when_training_diverges():
    """A cross_entropy target of 3 for 3 classes made the loss NaN (graphc's documented
    JAX-like result), and the Trainer reported divergence at a `where` op with "Try a lower
    learning rate". Now the finite check's re-run also evaluates the loss eagerly with the
    targets checked, and the error names the target, the range and the loss's line, as
    PyTorch's "Target 3 is out of bounds", without the learning-rate advice."""
    trainer = _linear_trainer(np.array([0, 1, 2, 3, 0, 1, 2, 0]))
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(progress=False)
    message = str(info.value)
    assert "; first class target 3 is out of bounds: targets must be in [0, 3) or " \
           "ignore_index (-100) at " in message
    assert "test_review_s37_train_gen.py:" in message
    assert message.endswith("Fix the batches' class targets; no checkpoint was written")
    assert "learning rate" not in message
    # ignore_index and targets in range: trained as before
    trainer = _linear_trainer(np.array([0, 1, 2, -100, 0, 1, 2, 0]))
    trainer.fit(progress=False)
    assert trainer.step == 3 and all(np.isfinite(loss) for _, loss in trainer.history)


# ---- 5. trainer.seed set after construction means what seed= means ------------------------
def _sampling_trainer(seed):
    data = np.arange(100, dtype=np.float32).reshape(100, 1)

    def loss(p, batch):
        return gc.mean((batch[0] * p["w"]) ** 2)
    return gc.Trainer(loss, {"w": np.ones(1, np.float32)}, gc.optim.SGD(1e-5),
                      lambda rng: (data[rng.integers(0, 100, 4)],), steps=3, seed=seed)


def test_a_seed_set_before_training_reseeds_the_batch_sampling_as_the_constructors():
    """`trainer.seed = 5` after Trainer(seed=0) changed the dropout and evaluation keys but
    not the RNG the batches are drawn with, so the run matched neither seed's. Now a seed
    set before the first step trains exactly as Trainer(seed=5) does, and another seed once
    training has started is refused in one line (no run of either seed drew its batches)."""
    built, reseeded = _sampling_trainer(5), _sampling_trainer(0)
    reseeded.seed = 5
    built.fit(progress=False)
    reseeded.fit(progress=False)
    assert reseeded.history == built.history
    np.testing.assert_array_equal(reseeded.params["w"], built.params["w"])
    reseeded.seed = 5  # the same seed: nothing changes
    with pytest.raises(GraphcError) as info:
        reseeded.seed = 7
    assert str(info.value).splitlines()[0] == (
        "Trainer: seed is fixed once training has started (step 3); build a Trainer with "
        "seed=7 to train with it")
    assert reseeded.seed == 5


# ---- 6. restore() refuses parameters the model lacks, as resume() does -------------------
def test_restore_refuses_parameters_the_model_lacks_as_resume_does(tmp_path):
    """Trainer.restore(arrays, meta) (the path `graphc train --resume` and distributed runs
    take) accepted arrays holding a parameter the model lacks, dropping it silently, while
    resume() refuses the same checkpoint (session 36). Now restore refuses it with resume's
    line unless allow_changed_settings=True, which leaves it out."""
    x = np.random.default_rng(0).normal(size=(4, 3))
    bigger = gc.Trainer(lambda p, b: gc.mean(gc.matmul(b[0], p["w"]) + p["b"]),
                        {"w": np.ones(3), "b": np.zeros(())}, gc.optim.SGD(lr=0.1), [(x,)],
                        steps=2)
    bigger.train_step()
    path = str(tmp_path / "checkpoint.npz")
    bigger.save(path)
    arrays, meta = checkpoint.load_arrays(
        path, {k: (a.shape, a.dtype) for k, a in bigger.state_arrays().items()})

    def smaller():
        return gc.Trainer(lambda p, b: gc.mean(gc.matmul(b[0], p["w"])), {"w": np.zeros(3)},
                          gc.optim.SGD(lr=0.1), [(x,)], steps=2)
    trainer = smaller()
    with pytest.raises(checkpoint.CheckpointError) as caught:
        trainer.restore(arrays, meta, path=path)
    assert str(caught.value).splitlines()[0] == (
        f"checkpoint {path!r} holds parameters or buffers this model lacks (param/b); resume "
        "it with the model it was saved from, or pass allow_changed_settings=True to leave "
        "them out")
    with pytest.raises(checkpoint.CheckpointError, match=r"^the checkpoint holds parameters "
                       r"or buffers this model lacks \(param/b\); .* pass --flag to leave"):
        trainer.restore(arrays, meta, how="--flag")
    assert trainer.step == 0
    np.testing.assert_array_equal(trainer.params["w"], 0.0)
    trainer.restore(arrays, meta, allow_changed_settings=True)
    assert trainer.step == 1
    np.testing.assert_array_equal(trainer.params["w"], bigger.params["w"])


# ---- review fixes ---------------------------------------------------------------------------
def test_a_masked_padding_target_is_not_blamed_when_training_diverges_for_a_real_reason():
    """A padding target of -1 that the loss masks out with `where` (optax style) made the
    finite check's probe blame the targets whenever the run diverged, here for a learning
    rate of 1e38: "Fix the batches' class targets". Now a target out of range is blamed
    only when taking it in range makes the loss finite, so the error names the overflowing
    op and advises a lower learning rate, as before the probe."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32) * 1e3
    labels = np.array([0, 1, 2, -1, 0, 1, 2, -1])

    def loss(p, batch):
        per = gc.cross_entropy(batch[0] @ p["w"], batch[1], reduction="none")
        keep = batch[1] >= 0
        return gc.sum(gc.where(keep, per, 0.0)) / gc.sum(gc.cast(keep, "float32"))
    trainer = gc.Trainer(loss, {"w": rng.normal(size=(4, 3)).astype(np.float32)},
                         gc.optim.SGD(1e38), lambda r: (x, labels), steps=6)
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(progress=False)
    message = str(info.value)
    assert "class target" not in message
    assert "; first non-finite value: 12 of 12 elements of mul -> f32[4,3]" in message
    assert message.endswith(". Try a lower learning rate; no checkpoint was written")


def test_a_multi_margin_loss_class_out_of_range_is_named_when_training_diverges():
    """multi_margin_loss gives NaN for a class outside [0, C) (torch raises) but was not
    checked under checking_class_targets, so the Trainer still advised a lower learning
    rate. Now it is named as cross_entropy's is."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0])
    trainer = gc.Trainer(lambda p, b: gc.multi_margin_loss(b[0] @ p["w"], b[1]),
                         {"w": rng.normal(size=(4, 3)).astype(np.float32)},
                         gc.optim.AdamW(1e-3), lambda r: (x, labels), steps=3)
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(progress=False)
    message = str(info.value)
    assert "; first class target 3 is out of bounds: targets must be in [0, 3) at " in message
    assert "test_review_s37_train_gen.py:" in message
    assert message.endswith("Fix the batches' class targets; no checkpoint was written")


def test_the_same_seed_set_again_after_training_started_leaves_the_batch_sampling_alone(
        tmp_path):
    """Setting the same seed again after training started (or after resume()) re-created the
    batch sampling RNG, so steps 4-6 drew steps 1-3's batches again and repeated their
    losses. Now an equal seed once batches were drawn leaves the RNG alone: the run's
    history equals a straight run's."""
    straight = _sampling_trainer(5)
    straight.steps = 6
    straight.fit(progress=False)
    assert straight.history[3:] != straight.history[:3]

    stopped = _sampling_trainer(5)
    stopped.fit(progress=False)
    stopped.seed = 5
    stopped.steps = 6
    stopped.fit(progress=False)
    assert stopped.history == straight.history

    first = _sampling_trainer(5)
    first.fit(str(tmp_path / "run"), progress=False)
    resumed = _sampling_trainer(5)
    resumed.steps = 6
    resumed.resume(str(tmp_path / "run" / "checkpoint.npz"))
    resumed.seed = 5
    resumed.fit(progress=False)
    assert resumed.history[3:] == straight.history[3:]


@pytest.mark.parametrize("spelling, name", [(np.float32, "float32"), ("f8", "float64"),
                                            ("float", "float64"), ("half", "float16"),
                                            (np.dtype("float64"), "float64"),
                                            ("bfloat16", "bfloat16")])
def test_a_gpt_dtype_in_numpys_spellings_builds_the_model_as_before(spelling, name):
    """GPTConfig's dtype check (this session) compared the value with the canonical names,
    so np.float32, "f8", "float" and "half", which built a correct model before, were
    refused. Now the dtype is normalised first and stored as its canonical name."""
    config = GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=16, block_size=8,
                       dtype=spelling)
    model = GPT(config)
    assert config.dtype == name and str(model.wte.weight.dtype) == name
