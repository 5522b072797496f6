"""Session 36's fixes of the training library (gc.Trainer); each test failed before its fix."""

import types

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint


class _CausalSelfAttention(gc.nn.Module):
    """nanoGPT's pattern: the module reads self.training itself for its attention dropout."""

    def __init__(self):
        super().__init__()
        self.proj = gc.nn.Linear(8, 8, rng=np.random.default_rng(1))
        self.dropout = 0.5

    def forward(self, x):
        q = self.proj(x)
        y = gc.scaled_dot_product_attention(q, q, q, is_causal=True,
                                            dropout_p=self.dropout if self.training else 0.0)
        return gc.mean(y * y)


def test_evaluation_runs_a_users_own_layer_as_after_model_eval():
    """Trainer.evaluate ran a user's own layer in training mode: `self.training` read True,
    so nanoGPT's attention dropped half its weights in every evaluation (1.0027 instead of
    0.4164), though evaluations run the model as under model.eval(). Now `self.training` is
    False while evaluating: the loss is the model's under model.eval(), one eval plan serves
    every evaluation, and the training step still drops out."""
    model = _CausalSelfAttention()
    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)

    def loss(p, b):
        return model.apply(p, b[0])
    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.1), [(x,)],
                         eval_batches=[(x,)], steps=1)
    evaluated = trainer.evaluate()
    model.eval()
    expected = float(np.asarray(loss(model.params(), (x,))))
    model.train()
    assert evaluated == pytest.approx(expected, rel=1e-6)
    assert trainer.evaluate() == evaluated and trainer._eval_loss.recompiles == []
    assert trainer.train_step() != pytest.approx(expected, rel=1e-3)  # (with dropout)
    assert model.training and model.proj.training


def _regression():
    x = np.random.default_rng(0).normal(size=(8, 3))
    return (lambda p, b: gc.mean(gc.square(gc.matmul(b[0], p["w"]) - b[1])),
            [(x, x @ np.array([1.0, -2.0, 0.5]))])


@pytest.mark.parametrize("clip, message", [
    (0, "Trainer: clip_norm=0 would zero every gradient; pass None for no clipping"),
    (-1.0, "Trainer: clip_norm must be a finite number >= 0, got -1.0"),
    (float("nan"), "Trainer: clip_norm must be a finite number >= 0, got nan")])
def test_clip_norm_set_after_construction_is_checked_as_the_constructors(clip, message):
    """`trainer.clip_norm = x` between steps was never checked: 0 zeroed every update (the
    loss stayed 2.606), -1 ascended (2.606, 2.893, 3.2, ...), NaN made the weights NaN and
    compiled the step again at every step. Now the assignment is refused in one line, as
    the constructor refuses the value, and the trainer keeps its clip."""
    loss, batches = _regression()
    trainer = gc.Trainer(loss, {"w": np.zeros(3)}, gc.optim.SGD(lr=0.1), batches, steps=5,
                         clip_norm=1.0)
    with pytest.raises(gc.GraphcError) as caught:
        trainer.clip_norm = clip
    assert str(caught.value).splitlines()[0] == message
    assert trainer.clip_norm == 1.0
    trainer.clip_norm = None  # (no clipping: still accepted)
    assert trainer.train_step() == pytest.approx(2.6055, abs=1e-3)
    assert trainer.train_step() < 2.0


def test_the_trainers_and_the_optimisers_clip_are_refused_together_after_construction():
    """The constructor refuses the trainer's clip_norm with the optimiser's (two clips), but
    setting either after construction was accepted and clipped twice. Now the assignment of
    the trainer's is refused, and the optimiser's set later is refused when the step is
    compiled again for it, before any update."""
    loss, batches = _regression()
    message = ("Trainer: clip_norm=0.5 and the optimizer's clip_norm=0.5 would clip the "
               "gradients twice (PyTorch's clip_grad_norm_ clips once); give one of them")
    trainer = gc.Trainer(loss, {"w": np.zeros(3)}, gc.optim.SGD(lr=0.1, clip_norm=0.5),
                         batches, steps=5)
    with pytest.raises(gc.GraphcError) as caught:
        trainer.clip_norm = 0.5
    assert str(caught.value).splitlines()[0] == message
    assert trainer.clip_norm is None
    trainer = gc.Trainer(loss, {"w": np.zeros(3)}, gc.optim.SGD(lr=0.1), batches, steps=5,
                         clip_norm=0.5)
    trainer.optimizer.clip_norm = 0.5
    with pytest.raises(gc.GraphcError) as caught:
        trainer.train_step()
    assert str(caught.value).splitlines()[0] == message
    np.testing.assert_array_equal(trainer.params["w"], 0.0)


class _MomentumOfMyOwn:
    """An optimiser with only init() and update() (the Trainer takes any such object,
    tests/test_review_s29.py), no lr attribute, and a state of its own shape."""

    def init(self, params):
        return {"t": np.zeros((), np.int64),
                "buf": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(self, grads, state, params):
        buf = {k: 0.9 * state["buf"][k] + grads[k] for k in params}
        return {k: params[k] - 0.1 * buf[k] for k in params}, {"t": state["t"] + 1,
                                                                "buf": buf}


def test_a_users_own_optimiser_fits_saves_and_resumes_bit_for_bit(tmp_path):
    """An optimiser with only init() and update() trained, but fit() and save() raised
    AttributeError ('MySGD' object has no attribute 'slots'; mark_good read its lr). Now
    its state, any pytree, is checkpointed leaf by leaf (opt_state/PATH) and a run
    resumed half-way ends with the uninterrupted run's parameters and state, bit for bit."""
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)

    def trainer(steps):
        return gc.Trainer(lambda p, b: gc.mean(gc.matmul(b[0], p["w"]) ** 2),
                          {"w": np.ones(3, np.float32)}, _MomentumOfMyOwn(),
                          [(x[:3],), (x[3:],)], steps=steps, eval_every=2)
    whole = trainer(4)
    assert whole.fit(str(tmp_path / "whole"), progress=False) == 0
    first = trainer(2)
    assert first.fit(str(tmp_path / "half"), progress=False) == 0
    _, meta = checkpoint.load_arrays(str(tmp_path / "half" / "checkpoint.npz"), {})
    assert meta["optimizer_record"] == {"class": "_MomentumOfMyOwn", "slots": []}
    resumed = trainer(4)
    resumed.resume(str(tmp_path / "half" / "checkpoint.npz"))
    assert int(resumed.state["t"]) == 2
    assert resumed.fit(None, progress=False) == 0
    assert int(resumed.state["t"]) == int(whole.state["t"]) == 4
    np.testing.assert_array_equal(resumed.state["buf"]["w"], whole.state["buf"]["w"])
    np.testing.assert_array_equal(resumed.params["w"], whole.params["w"])
    assert resumed.history == whole.history
    assert not np.array_equal(whole.params["w"], 1.0)


def _vae_loss(p, batch, key, training):
    """A VAE-style loss: it samples its latent in evaluation too."""
    mu = gc.matmul(batch[0], p["enc"])
    z = mu + 0.1 * gc.random.normal(gc.random.key(key), mu.shape)
    return gc.mean(gc.square(gc.matmul(z, p["dec"]) - batch[0]))


def test_a_loss_that_samples_in_evaluation_gets_the_evaluation_key(tmp_path):
    """Evaluation passed key=None to a loss(params, batch, key, training), so a loss that
    samples in evaluation failed ('gc.random.key: the seed must be an integer, got None'),
    and a Trainer with eval_batches could not even be built. Now the loss gets the
    evaluation's key (fixed by seed, step and batch): an evaluation repeats exactly, two
    batches draw differently, and a resumed run's validation losses are the uninterrupted
    run's, bit for bit."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    params = {"enc": rng.normal(size=(6, 2)).astype(np.float32),
              "dec": rng.normal(size=(2, 6)).astype(np.float32)}

    def trainer(steps):
        return gc.Trainer(_vae_loss, params, gc.optim.Adam(lr=0.01), [(x[:16],), (x[16:],)],
                          eval_batches=[(x,), (x,)], eval_iters=2, steps=steps, eval_every=2)
    whole = trainer(4)
    first = whole.evaluate(record=False)
    assert whole.evaluate(record=False) == first
    assert whole.evaluate(batches=[(x,)], record=False) != whole.evaluate(
        batches=[(x,), (x,)], record=False)  # (the second batch's key is another)
    assert whole.fit(str(tmp_path / "whole"), progress=False) == 0
    half = trainer(2)
    assert half.fit(str(tmp_path / "half"), progress=False) == 0
    resumed = trainer(4)
    resumed.resume(str(tmp_path / "half" / "checkpoint.npz"))
    assert resumed.fit(None, progress=False) == 0
    assert resumed.val_history == whole.val_history and len(whole.val_history) == 3
    for name in params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])


def test_parameter_names_other_than_strings_resume_and_colliding_ones_are_refused(tmp_path):
    """{0: w, 1: b} was accepted, but the checkpoint's JSON header turned updates_behind's
    keys into strings, so the checkpoint of a run with a frozen parameter could not be
    resumed ('updates_behind must be {parameter name: ...}, got {'1': 1}'), and 0 and "0"
    would have shared param/0. Now such a run resumes bit for bit (the header's text keys
    are read back as the names they are), and two names of one text are refused in one
    line."""
    x = np.random.default_rng(0).normal(size=(4, 3))
    def loss(p, b):
        return gc.mean(gc.square(gc.matmul(b[0], p[0]) + gc.stop_gradient(p[1])))

    def trainer():
        return gc.Trainer(loss, {0: np.ones(3), 1: np.zeros(())}, gc.optim.Adam(lr=0.1),
                          [(x,)], steps=4)
    whole = trainer()
    for _ in range(4):
        whole.train_step()
    half = trainer()
    for _ in range(2):
        half.train_step()
    half.save(str(tmp_path / "c.npz"))
    resumed = trainer()
    resumed.resume(str(tmp_path / "c.npz"))
    for _ in range(2):
        resumed.train_step()
    for name in (0, 1):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    with pytest.raises(gc.GraphcError) as caught:
        gc.Trainer(loss, {"0": np.zeros(3), 0: np.zeros(3)}, gc.optim.Adam(lr=0.1), [(x,)],
                   steps=4)
    assert str(caught.value).splitlines()[0] == (
        "Trainer: params has the keys '0' and 0, which name one checkpoint array (param/0); "
        "rename one")


def test_a_graphc_optimisers_checkpoint_resumes_into_ones_own_with_allow_changed_settings(
        tmp_path):
    """Review: resuming an SGD checkpoint into an optimiser of one's own (init and update
    only) with allow_changed_settings=True, as the refusal without it advises, raised
    AttributeError ('Opt' object has no attribute 'checked_setting'): the other class's
    settings were read by this optimiser's rules. They are not read now; its state starts
    afresh and the parameters go on."""
    x = np.ones((6, 3))

    class Opt:
        def init(self, params):
            return {k: np.zeros_like(v) for k, v in params.items()}

        def update(self, g, s, p):
            return {n: p[n] - 0.1 * g[n] for n in p}, s

    def trainer(opt):
        return gc.Trainer(lambda p, b: gc.mean(gc.matmul(b[0], p["w"]) ** 2),
                          {"w": np.ones(3)}, opt, [(x,)], steps=4)
    sgd = trainer(gc.optim.SGD(lr=0.1))
    sgd.train_step()
    sgd.save(str(tmp_path / "c.npz"))
    own = trainer(Opt())
    with pytest.raises(gc.GraphcError, match="pass allow_changed_settings=True to start "
                                             "Opt's state afresh"):
        own.resume(str(tmp_path / "c.npz"))
    own.resume(str(tmp_path / "c.npz"), allow_changed_settings=True)
    np.testing.assert_array_equal(own.params["w"], sgd.params["w"])
    assert own.step == 1
    own.train_step()
    np.testing.assert_allclose(own.params["w"], sgd.params["w"] - 0.1 * 2 * np.mean(
        (x @ sgd.params["w"])[:, None] * x, axis=0), rtol=1e-12)


def test_a_loss_with_keyword_only_settings_is_a_two_argument_loss():
    """Review: a loss `kw(params, batch, *, reduction="mean", **extra)` counted four
    parameters, so it was called with four positional arguments and refused as one that
    'cannot be called as loss(params, batch)', which it can. Only positional parameters
    choose the form now."""
    x = np.ones((4, 3))

    def kw(params, batch, *, reduction="mean", **extra):
        return gc.mean(gc.matmul(batch[0], params["w"]) ** 2)

    trainer = gc.Trainer(kw, {"w": np.ones(3)}, gc.optim.SGD(lr=0.1), [(x,)], steps=2)
    assert trainer.train_step() == pytest.approx(9.0)


_X = np.ones((4, 3))


def _trainer(**changes):
    settings = {"loss": lambda p, b: gc.mean(gc.matmul(b[0], p["w"])),
                "params": {"w": np.zeros(3)}, "optimizer": gc.optim.SGD(lr=0.1),
                "train_batches": [(_X,)], "steps": 2, **changes}
    return gc.Trainer(settings.pop("loss"), settings.pop("params"), settings.pop("optimizer"),
                      settings.pop("train_batches"), **settings)


_FORMS = "loss(params, batch) or loss(params, batch, key, training)"


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": gc.optim.Adam},
     "Trainer: optimizer must be an instance, e.g. gc.optim.Adam(lr=...), got the class Adam"),
    ({"loss_scaler": 3, "precision": "fp16-mixed"},
     "Trainer: loss_scaler must be a gc.amp.LossScaler, e.g. "
     "gc.amp.LossScaler(init_scale=2.0**16), got 3"),
    ({"train_batches": lambda: (_X,)},
     "Trainer: train_batches must be a function of a numpy Generator or an iterable of "
     "batches; <lambda>() does not take the rng (train_batches(rng) draws a batch with it)"),
    ({"eval_batches": "val"},
     "Trainer: eval_batches must be a function of a numpy Generator or an iterable of "
     "batches, got 'val'"),
    ({"distributed": "no"}, "Trainer: distributed must be True or False, got 'no'"),
    ({"jit": "yes"}, "Trainer: jit must be None (numba's kernels where it is installed), "
                     "True or False, got 'yes'"),
])
def test_bad_trainer_arguments_are_one_line_naming_the_argument(changes, message):
    """Each of these was a TypeError or AttributeError from inside the first trace
    ("Optimizer.init() missing 1 required positional argument",
    "'int' object has no attribute 'init'", "<lambda>() takes 0 positional arguments but 1
    was given"), a tensor-spec error about the characters of "val", or, for
    distributed="no" and jit="yes", accepted as True. Now each is one GraphcError line
    naming the argument and what it must be."""
    with pytest.raises(gc.GraphcError) as caught:
        _trainer(**changes)
    assert str(caught.value).splitlines()[0] == message


@pytest.mark.parametrize("meta, shown", [
    (["lr", 0.1], "list ['lr', 0.1]"), ("lr=0.1", "str 'lr=0.1'"), (5, "int 5"),
    ([("lr", 0.1)], "list [('lr', 0.1)]"), ([], "list []"),
])
def test_a_checkpoint_meta_that_is_not_a_dict_is_one_line_naming_it(meta, shown):
    """checkpoint_meta reached dict() unchecked: a list or a string failed with dict()'s own
    words ("cannot convert dictionary update sequence element #1 to a sequence"), 5 with
    "'int' object is not iterable", and a list of pairs or an empty list was taken for a
    dict. Now anything but None or a mapping is one GraphcError line naming checkpoint_meta;
    a mapping of another type is saved as the dict it holds."""
    with pytest.raises(gc.GraphcError) as caught:
        _trainer(checkpoint_meta=meta)
    assert str(caught.value).splitlines()[0] == (
        "Trainer: checkpoint_meta must be a dict of settings (JSON values), e.g. "
        f"{{'lr': 0.1}}, got the {shown}")
    assert _trainer(checkpoint_meta=types.MappingProxyType({"lr": 0.1})).checkpoint_meta \
        == {"lr": 0.1}


@pytest.mark.parametrize("name, value, message", [
    ("eval_every", 0, "Trainer: eval_every must be a whole number >= 1, got 0"),
    ("steps", "5", "Trainer: steps must be a whole number >= 0, got '5'"),
    ("eval_iters", 0, "Trainer: eval_iters must be a whole number >= 1, got 0"),
    ("seed", -5, "Trainer: seed must be a whole number >= 0, got -5"),
    ("precision", "bf16-mixed",
     "Trainer: precision is fixed when the Trainer is built (its step is compiled for "
     "'fp32'); build a Trainer with precision='bf16-mixed' and resume this one's checkpoint "
     "(precision may change on resume)"),
])
def test_settings_set_between_steps_are_checked_as_the_constructor_checks_them(
        name, value, message):
    """Set after construction these were taken as they came: eval_every=0 was a
    ZeroDivisionError in fit, steps="5" a TypeError, eval_iters=0 a NaN validation loss
    reported as divergence ("Try a lower learning rate"), seed=-5 accepted, and
    precision="bf16-mixed" silently had no effect (the step stayed float32). Now each is
    refused in one line as the constructor refuses it; precision is refused because the
    step is compiled for the precision it was built with (a resume may change it)."""
    trainer = _trainer(eval_batches=[(_X,)])
    before = getattr(trainer, name)
    with pytest.raises(gc.GraphcError) as caught:
        setattr(trainer, name, value)
    assert str(caught.value).splitlines()[0] == message
    assert getattr(trainer, name) == before
    trainer.steps, trainer.eval_every, trainer.precision = 3, 3, "fp32"  # (valid ones: taken)
    assert trainer.fit(None, progress=False) == 0 and trainer.step == 3


def test_resume_of_no_path_is_one_line():
    """trainer.resume(None) was a TypeError from os.stat; now one GraphcError line."""
    with pytest.raises(gc.GraphcError) as caught:
        _trainer().resume(None)
    assert str(caught.value).splitlines()[0] == (
        "Trainer.resume: path must be a checkpoint file's path, got None")


def test_a_loss_of_another_signature_is_one_line():
    """loss="mse" was "'str' object is not callable", and a loss of 1 or 3 positional
    parameters a TypeError from inside the first trace ("takes 1 positional argument but 2
    were given", "missing 1 required positional argument: 'key'"). Now each is one
    GraphcError line naming the loss and the two signatures taken; a loss with optional
    parameters after (params, batch) is still called with two arguments."""
    for loss, message in [
            ("mse", f"Trainer: loss must be a function, {_FORMS}, got 'mse'"),
            (lambda p: 0.0, f"Trainer: the loss <lambda>(p) cannot be called as {_FORMS}"),
            (lambda p, b, key: 0.0,
             f"Trainer: the loss <lambda>(p, b, key) cannot be called as {_FORMS}")]:
        with pytest.raises(gc.GraphcError) as caught:
            _trainer(loss=loss)
        assert str(caught.value).splitlines()[0] == message

    def scaled(p, b, scale=2.0):
        return scale * gc.mean(gc.matmul(b[0], p["w"]) + 1.0)
    assert _trainer(loss=scaled).train_step() == 2.0


def test_resume_refuses_a_checkpoint_with_parameters_the_model_lacks(tmp_path):
    """A checkpoint holding more parameters than the model resumed silently, the others
    dropped (torch's strict load_state_dict says 'Unexpected key(s)'). Now resume refuses
    it in one line naming them, unless allow_changed_settings=True, which leaves them out
    and resumes the rest."""
    x = np.random.default_rng(0).normal(size=(4, 3))
    path = str(tmp_path / "checkpoint.npz")
    bigger = gc.Trainer(lambda p, b: gc.mean(gc.matmul(b[0], p["w"]) + p["b"]),
                        {"w": np.ones(3), "b": np.zeros(())}, gc.optim.SGD(lr=0.1), [(x,)],
                        steps=2)
    bigger.train_step()
    bigger.save(path)
    smaller = _trainer(train_batches=[(x,)])
    with pytest.raises(checkpoint.CheckpointError) as caught:
        smaller.resume(path)
    assert str(caught.value).splitlines()[0] == (
        f"checkpoint {path!r} holds parameters or buffers this model lacks (param/b); resume "
        "it with the model it was saved from, or pass allow_changed_settings=True to leave "
        "them out")
    np.testing.assert_array_equal(smaller.params["w"], 0.0)
    smaller.resume(path, allow_changed_settings=True)
    np.testing.assert_array_equal(smaller.params["w"], bigger.params["w"])
    assert smaller.step == 1


def test_resume_refuses_a_checkpoint_with_buffers_the_model_lacks(tmp_path):
    """Review: only param/ members were checked, so a checkpoint of a model with a
    BatchNorm resumed into one without it silently dropped running_mean, running_var and
    num_batches_tracked (torch's strict load refuses unexpected buffers too). Now they are
    named as extra parameters are."""
    x = np.random.default_rng(0).normal(size=(8, 3))

    def trainer(with_norm):
        layers = [gc.nn.Linear(3, 3, rng=np.random.default_rng(1), dtype="float64")] + \
            ([gc.nn.BatchNorm1d(3, affine=False, dtype="float64")] if with_norm else [])
        model = gc.nn.Sequential(*layers)
        return gc.Trainer(lambda p, b: gc.mean(model.apply(p, b[0]) ** 2), model.params(),
                          gc.optim.SGD(lr=0.1), [(x,)], steps=4)
    path = str(tmp_path / "c.npz")
    saved = trainer(True)
    saved.train_step()
    saved.save(path)
    with pytest.raises(checkpoint.CheckpointError) as caught:
        trainer(False).resume(path)
    assert str(caught.value).splitlines()[0] == (
        f"checkpoint {path!r} holds parameters or buffers this model lacks "
        "(buffer/1.num_batches_tracked, buffer/1.running_mean, buffer/1.running_var); resume "
        "it with the model it was saved from, or pass allow_changed_settings=True to leave "
        "them out")
    resumed = trainer(False)
    resumed.resume(path, allow_changed_settings=True)
    assert resumed.step == 1
