"""Session 34's fixes of gc.Trainer (per-parameter update counts, checkpoint headers, fit's
log, divergence), the recurrent layers' evaluation dropout and
BoundOptimizer.load_state_dict; each test failed before its fix. torch (float64) is the
oracle."""

import copy
import re

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint, optim
from graphc.trainer import TrainingDiverged

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(10, 6, 3)), RNG.normal(size=(10, 6, 2))
BATCHES = [(X[i], Y[i]) for i in range(10)]


@pytest.fixture(autouse=True)
def _torch_float64():
    """torch's default dtype float64 (NAdam's mu_product is in it, graphc's in the
    parameter's)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _frozen(step):
    """(weight frozen, bias frozen) at a step: the weight thawed at step 3, the bias frozen
    over steps 5-7."""
    return step < 3, 5 <= step < 8


def _linear():
    net = gc.nn.Linear(3, 2, dtype="float64", rng=np.random.default_rng(1))
    return net, (lambda p, b: gc.mean((net.apply(p, b[0]) - b[1]) ** 2))


def _freeze(net, step):
    frozen_weight, frozen_bias = _frozen(step)
    net.weight.requires_grad, net.bias.requires_grad = not frozen_weight, not frozen_bias


@pytest.mark.parametrize("name", ["Adam", "SGD", "NAdam", "Adagrad"])
def test_a_thawed_parameter_starts_its_own_update_count_as_torch(name):
    """The Trainer kept one count of updates for every parameter: a parameter frozen
    (requires_grad=False) and thawed later got its first Adam update with the bias
    correction of the optimiser's count (0.58 lr instead of lr), SGD's damped momentum
    instead of torch's undamped first buffer, NAdam's and Adagrad's lr_decay likewise, 1e-2
    to 6e-2 from torch over 10 steps. Each parameter now has its own count, as torch's
    state[p]["step"] and .bind()'s: within 1e-15 of torch's."""
    graphc_opt, torch_opt = {
        "Adam": (lambda: optim.Adam(lr=0.01),
                 lambda ps: torch.optim.Adam(ps, lr=0.01)),
        "SGD": (lambda: optim.SGD(0.05, momentum=0.9, dampening=0.5),
                lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.5)),
        "NAdam": (lambda: optim.NAdam(lr=0.01), lambda ps: torch.optim.NAdam(ps, lr=0.01)),
        "Adagrad": (lambda: optim.Adagrad(lr=0.1, lr_decay=0.1),
                    lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.1)),
    }[name]
    net, loss = _linear()
    tw = torch.tensor(net.weight.data.copy(), dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(net.bias.data.copy(), dtype=torch.float64, requires_grad=True)
    reference = torch_opt([tw, tb])
    _freeze(net, 0)
    trainer = gc.Trainer(loss, net.params(), graphc_opt(), BATCHES, steps=10, jit=False)
    for step in range(10):
        _freeze(net, step)
        tw.requires_grad_(net.weight.requires_grad)
        tb.requires_grad_(net.bias.requires_grad)
        trainer.train_step()
        reference.zero_grad()
        ((torch.tensor(X[step]) @ tw + tb - torch.tensor(Y[step])) ** 2).mean().backward()
        reference.step()
    np.testing.assert_allclose(trainer.params["weight"], tw.detach().numpy(), rtol=0,
                               atol=1e-15)
    np.testing.assert_allclose(trainer.params["bias"], tb.detach().numpy(), rtol=0, atol=1e-15)
    assert trainer.behind == {"weight": 3, "bias": 3}
    assert int(trainer.state["count"]) == 10  # (the step count the schedules follow)


def _train(trainer, net, steps):
    for step in range(trainer.step, steps):
        _freeze(net, step)
        trainer.train_step()


def test_per_parameter_counts_are_checkpointed_and_resume_bit_for_bit(tmp_path):
    """A resumed run goes on with each parameter's own count (the header's updates_behind),
    bit for bit; a checkpoint written before they were kept (no updates_behind) loads with
    every parameter at the optimiser's count, as before."""
    net, loss = _linear()
    _freeze(net, 0)
    start = net.params()

    def make():
        return gc.Trainer(loss, start, optim.Adam(lr=0.01), BATCHES, steps=10, jit=False)
    straight = make()
    _train(straight, net, 10)
    first = make()
    _train(first, net, 6)  # the weight 3 updates behind, the bias 1
    first.save(str(tmp_path / "c.npz"))
    arrays, meta = checkpoint.load_arrays(str(tmp_path / "c.npz"), {})
    assert meta["updates_behind"] == {"weight": 3, "bias": 1}
    resumed = make()
    resumed.resume(str(tmp_path / "c.npz"))
    assert resumed.behind == {"weight": 3, "bias": 1}
    _train(resumed, net, 10)
    for key, value in straight.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], value, err_msg=key)

    old_meta = {k: v for k, v in meta.items() if k not in ("format", "version",
                                                           "updates_behind")}
    arrays, _ = checkpoint.load_arrays(str(tmp_path / "c.npz"), {
        k: (a.shape, a.dtype) for k, a in first.state_arrays().items()})
    checkpoint.save(str(tmp_path / "old.npz"), arrays, old_meta)
    old = make()
    old.resume(str(tmp_path / "old.npz"))
    assert old.step == 6 and old.behind == {"weight": 0, "bias": 0}
    bad = dict(old_meta, updates_behind={"weight": 7})  # more than the optimiser's count
    checkpoint.save(str(tmp_path / "bad.npz"), arrays, bad)
    with pytest.raises(checkpoint.CheckpointError, match="updates_behind must be"):
        make().resume(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize("layer", ["LSTM", "GRU", "RNN"])
def test_trainer_evaluation_turns_off_recurrent_inter_layer_dropout(layer):
    """Trainer.evaluate runs with every Dropout off (README), but a 2-layer LSTM/GRU/RNN's
    dropout between its layers stayed on (0.0067 instead of 0.0066 at p=0.5, a different
    value at each evaluation key). It is off now: the evaluation equals the loss of the
    model in eval()."""
    rnn = getattr(gc.nn, layer)(4, 8, num_layers=2, dropout=0.5, batch_first=True,
                                rng=np.random.default_rng(0))
    x = np.random.default_rng(2).normal(size=(16, 5, 4)).astype(np.float32)

    def loss(params, batch):
        out, _ = rnn.apply(params, batch[0])
        return gc.mean(out ** 2)
    trainer = gc.Trainer(loss, rnn.params(), optim.SGD(0.1), [(x,)], eval_batches=[(x,)],
                         steps=1, eval_iters=1, jit=False)
    evaluated = trainer.evaluate(record=False)  # the model left in train()
    rnn.eval()
    assert evaluated == pytest.approx(float(loss(rnn.params(), (x,)).numpy()), rel=1e-6)


def meta_rng():
    return np.random.default_rng(0).bit_generator.state


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("meta, message", [
    ({"version": "v2"}, "'version' is a checkpoint header field of its own"),
    ({"format": "npz"}, "'format' is a checkpoint header field of its own"),
    ({"step": 3}, "'step' is a checkpoint header field of its own"),
    ({"history": []}, "'history' is a checkpoint header field of its own"),
    # every one named, sorted (the first alone was said)
    ({"version": 2, "step": 3, "format": "x", "lr": 1}, "'format' \\(the format's\\), 'step' "
     "\\(the trainer's, of the run\\), 'version' \\(the format's\\) are checkpoint header "
     "fields of their own; name the settings otherwise"),
    ({"target_loss": float("nan")}, "target_loss is NaN, which never equals itself"),
    ({"a": [1, {"b": np.float32("nan")}]}, r"a\[1\].b is NaN, which never equals itself"),
    ({"deep": _nested(16)}, "deep.a.a.*nests more than 16 levels deep"),
])
def test_checkpoint_meta_cannot_break_or_override_the_header(tmp_path, meta, message):
    """checkpoint_meta was only checked for JSON values: {"version": "v2"} trained and saved
    a checkpoint that then could not be resumed ("format version 'v2'"), {"format": ...}
    made it "not a graphc checkpoint", {"step": 3} was silently overwritten, a NaN could
    never match a resumed run's setting, and 16 levels of nesting wrote a "corrupt header".
    Each is refused when the Trainer is built, in one line naming the key; the deepest
    nesting a header is read with is accepted and resumes."""
    x = np.ones((4, 3), np.float32)

    def make(meta):
        return gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                          {"w": np.ones((3, 1), np.float32)}, optim.SGD(0.01), [(x,)],
                          steps=2, checkpoint_meta=meta, jit=False)
    with pytest.raises(gc.GraphcError, match="^Trainer: checkpoint_meta: " + message) as info:
        make(meta)
    assert "\n" not in info.value.message
    # (an infinity is saved as Infinity and compares equal when resumed: allowed, as before;
    # so is a user's own key named optimizer, the optimiser's record being optimizer_record)
    deepest = {"deep": _nested(15), "loss": 1.5, "best": float("inf"), "optimizer": "sgd"}
    make(deepest).fit(str(tmp_path), progress=False)
    make(deepest).resume(str(tmp_path / "checkpoint.npz"))
    checkpoint.save(str(tmp_path / "c.npz"), {}, {"version": 2, "format": "npz", "step": 0,
                                                  "rng": meta_rng()})
    assert checkpoint.load_arrays(str(tmp_path / "c.npz"), {})[1]["version"] == 1


def _small_trainer(opt, steps=4):
    net, loss = _linear()
    return gc.Trainer(loss, net.params(), opt, BATCHES[:1], steps=steps, jit=False)


def test_resuming_with_another_optimizer_is_refused_or_starts_it_afresh(tmp_path):
    """The header did not record the optimiser: Adam's checkpoint resumed into RMSprop (its
    v as RMSprop's running average), Lion, plain SGD, NAdam<->Adam silently; other pairs
    failed with "lacks opt_momentum/0.weight", naming no optimiser. The header records the
    class and its slots now: another class is refused in one line naming both, and with
    allow_changed_settings its state starts afresh (a new optimiser's slots, each count of
    updates 0), as a fresh optimiser would go on from the checkpoint's parameters."""
    first = _small_trainer(optim.Adam(lr=0.01))
    first.fit(str(tmp_path), progress=False)
    path = str(tmp_path / "checkpoint.npz")
    _, meta = checkpoint.load_arrays(path, {})
    assert meta["optimizer_record"] == {"class": "Adam", "slots": ["m", "v"]}
    with pytest.raises(gc.GraphcError) as info:
        _small_trainer(optim.NAdam(lr=0.01)).resume(path)
    assert info.value.message == (
        f"{path} was saved with Adam, this run uses NAdam; resume with the checkpoint's "
        "optimizer, or pass allow_changed_settings=True to start NAdam's state afresh (each "
        "parameter's count of updates at 0)")
    resumed = _small_trainer(optim.NAdam(lr=0.01), steps=7)
    resumed.resume(path, allow_changed_settings=True)
    assert resumed.step == 4 and resumed.behind == {"weight": 4, "bias": 4}
    fresh = gc.Trainer(_linear()[1], {n: first.params[n].copy() for n in first.names},
                       optim.NAdam(lr=0.01), BATCHES[:1], steps=3, jit=False)
    for _ in range(3):
        resumed.train_step()
        fresh.train_step()
    for n in first.names:
        np.testing.assert_array_equal(resumed.params[n], fresh.params[n])
    for slot in ("m", "v", "mu_product"):
        for n in first.names:
            np.testing.assert_array_equal(resumed.state[slot][n], fresh.state[slot][n])


def test_a_slot_the_checkpoint_lacks_is_refused_or_starts_afresh(tmp_path):
    """SGD saved without momentum and resumed with momentum 0.9 said only "checkpoint lacks
    opt_momentum/weight"; it names the slot now and with allow_changed_settings starts the
    momentum at zero. Fewer slots (momentum set to 0) resume as before, and a checkpoint
    without the optimizer field (written before it) resumes as before."""
    _small_trainer(optim.SGD(0.1)).fit(str(tmp_path / "a"), progress=False)
    path = str(tmp_path / "a" / "checkpoint.npz")
    with pytest.raises(gc.GraphcError, match="^" + path + " was saved with SGD keeping no "
                       "state, this run uses SGD keeping momentum_buffer \\(momentum > 0\\); "
                       "resume with the checkpoint's optimizer, or pass "
                       "allow_changed_settings=True to start momentum_buffer afresh$"):
        _small_trainer(optim.SGD(0.1, momentum=0.9)).resume(path)
    resumed = _small_trainer(optim.SGD(0.1, momentum=0.9), steps=5)
    resumed.resume(path, allow_changed_settings=True)
    assert not resumed.state["momentum"]["weight"].any()
    assert not resumed.state["started"]["weight"]  # (its buffer's mark: not started)
    resumed.fit(str(tmp_path / "a"), progress=False)

    _small_trainer(optim.SGD(0.1, momentum=0.9)).fit(str(tmp_path / "b"), progress=False)
    _small_trainer(optim.SGD(0.1)).resume(str(tmp_path / "b" / "checkpoint.npz"))

    trainer = _small_trainer(optim.Adam(lr=0.01))
    trainer.fit(str(tmp_path / "c"), progress=False)
    arrays, meta = checkpoint.load_arrays(str(tmp_path / "c" / "checkpoint.npz"), {
        k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()})
    checkpoint.save(str(tmp_path / "old.npz"), arrays, {
        k: v for k, v in meta.items() if k not in ("format", "version", "optimizer_record")})
    _small_trainer(optim.AdamW(lr=0.01)).resume(str(tmp_path / "old.npz"))  # (as before)


def test_graphc_train_resume_checks_the_optimizer(tmp_path, capsys):
    """graphc train --resume goes the same way: its checkpoints record AdamW and resume; one
    recording another optimiser is refused in one line (status 2) before anything is
    compiled, and resumes with --allow-changed-settings, AdamW's state afresh."""
    from graphc.cli import main
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 20)
    tiny = ["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
            "--sample-tokens", "0", "--data", str(text), "--out", str(tmp_path / "o")]
    assert main([*tiny, "--steps", "2"]) == 0
    ckpt = tmp_path / "o" / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    assert meta["optimizer_record"] == {"class": "AdamW", "slots": ["m", "v"]}
    assert main([*tiny, "--steps", "3", "--resume"]) == 0
    arrays, meta = checkpoint.load(str(ckpt))
    checkpoint.save(str(ckpt), arrays, {
        **{k: v for k, v in meta.items() if k not in ("format", "version")},
        "optimizer_record": {"class": "Adam", "slots": ["m", "v"]}})
    capsys.readouterr()
    assert main([*tiny, "--steps", "4", "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: {ckpt} was saved with Adam, this run uses AdamW; resume with the "
        "checkpoint's optimizer, or pass --allow-changed-settings to start AdamW's state "
        "afresh (each parameter's count of updates at 0)\n")
    assert main([*tiny, "--steps", "4", "--resume", "--allow-changed-settings"]) == 0
    arrays, meta = checkpoint.load(str(ckpt))
    assert meta["step"] == 4 and meta["optimizer_record"]["class"] == "AdamW"
    assert set(meta["updates_behind"].values()) == {3}  # one update each since step 3


def test_fit_log_takes_every_line_and_prints_nothing_itself(capsys):
    """fit(log=f) got the first evaluation's line only: the periodic "step N: train loss
    ..., val loss ..." lines and the plateau's "(reduced)" note went to stdout through
    tqdm.write, even with progress=False. Every line goes to `log` now, nothing to stdout."""
    x = np.ones((4, 3), np.float32)
    opt = optim.SGD(0.01)
    optim.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=0.9)  # reduces at once
    trainer = gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2),
                         {"w": np.ones((3, 1), np.float32)}, opt, [(x,)], eval_batches=[(x,)],
                         steps=4, eval_every=2, eval_iters=1, jit=False)
    lines = []
    trainer.fit(None, progress=False, log=lines.append)
    assert capsys.readouterr().out == ""
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 2", "step 4"]
    assert lines[1].endswith(", lr 0.01") and lines[2].endswith(", lr 0.005 (reduced)")


def test_divergence_with_a_one_pass_generator_says_the_steps_cannot_be_re_run(tmp_path):
    """A one-pass generator as train_batches cannot go back to the last good step's
    batches: the re-run went on with the generator's next ones and said "the finite check
    did not reproduce it", a false lead. The message says why the op is not named now;
    a list of the same batches still names it."""
    x = np.random.default_rng(0).normal(size=(12, 8, 4))
    x[5, 0, 0] = np.nan  # step 6's batch
    net = gc.nn.Linear(4, 2, dtype="float64", rng=np.random.default_rng(1))
    loss = lambda p, b: gc.mean(net.apply(p, b[0]) ** 2)  # noqa: E731
    batches = [(x[i],) for i in range(12)]
    for source, found in [((b for b in batches), "; the steps from 4 were not re-run to find "
                           "the op: train_batches is a one-pass iterator (a generator), "
                           "which cannot give their batches again (a list or a function of "
                           "a numpy Generator can). "),
                          (batches, "; first non-finite value: ")]:
        trainer = gc.Trainer(loss, net.params(), optim.SGD(0.1), source, steps=12,
                             eval_every=4, jit=False)
        lines = []
        with pytest.raises(TrainingDiverged) as info:
            trainer.fit(None, progress=False, log=lines.append)
        assert info.value.message.startswith("training diverged at step 6 (loss nan, gradient "
                                             "norm nan)" + found), info.value.message
        assert "did not reproduce it" not in info.value.message


def _bound_adam():
    net = gc.nn.Linear(3, 2, rng=np.random.default_rng(0))
    opt = optim.Adam(0.01).bind(net)
    gc.sum(net(gc.tensor(np.ones((2, 3), np.float32)))).backward()
    opt.step()
    return net, opt


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("bias"), r"the state's m is for parameters \['weight'\], this optimizer "
                              r"has \['bias', 'weight'\]"),
    (lambda m: m.update(extra=np.zeros(2, np.float32)),
     r"the state's m is for parameters \['bias', 'extra', 'weight'\], this optimizer has "
     r"\['bias', 'weight'\]"),
    (lambda m: m.update(bias=None), r"m of bias is a NoneType, expected float32\[2\]"),
    (lambda m: m.update(bias=[0.0, 0.0]), r"m of bias is a list, expected float32\[2\]"),
])
def test_bound_load_state_dict_checks_the_slots_when_loading(change, message):
    """BoundOptimizer.load_state_dict took a slot lacking a parameter, holding an extra
    one, or a None for one, and failed at the next step() ("state['m'] does not match the
    parameters' pytree"); a slot given as a list raised AttributeError inside. Each is one
    line at load_state_dict now, the optimizer left as it was; a state_dict() loads as
    before."""
    _, opt = _bound_adam()
    saved = opt.state_dict()
    before = {n: a.copy() for n, a in opt.state["m"].items()}
    change(saved["state"]["m"])
    with pytest.raises(gc.GraphcError) as info:
        opt.load_state_dict(saved)
    assert re.fullmatch("load_state_dict: " + message, info.value.message)
    for n, a in before.items():
        np.testing.assert_array_equal(opt.state["m"][n], a)
    with pytest.raises(gc.GraphcError) as info:
        opt.load_state_dict({**saved, "state": {**saved["state"], "m": [1, 2]}})
    assert info.value.message == ("load_state_dict: the state's m must be a dict parameter "
                                  "name -> array, got a list")
    net, other = _bound_adam()
    other.load_state_dict(opt.state_dict())
    gc.sum(net(gc.tensor(np.ones((2, 3), np.float32)))).backward()
    other.step()


def test_bound_load_state_dict_refuses_a_negative_second_moment_or_a_nan():
    """BoundOptimizer.load_state_dict took an Adam second moment made negative (or a NaN
    moment), which gc.Trainer refuses in a checkpoint, and the next step() turned the weights
    into NaNs. Now one line naming the slot and parameter, and the state is unchanged."""
    lin = gc.nn.Linear(2, 2, rng=np.random.default_rng(0))
    opt = optim.Adam(lr=0.1).bind(lin)
    gc.sum(lin(gc.tensor(np.ones((1, 2), np.float32)))).backward()
    opt.step()
    good = opt.state_dict()
    for slot, value, message in (("v", -1.0, "v of weight holds a negative value, which "
                                  "Adam's running average of squared gradients never holds"),
                                 ("m", np.nan, "m of weight holds a NaN or an infinity")):
        bad = copy.deepcopy(good)
        bad["state"][slot]["weight"] = np.full_like(good["state"][slot]["weight"], value)
        with pytest.raises(gc.GraphcError, match=f"^load_state_dict: {message}"):
            opt.load_state_dict(bad)
        for name in ("m", "v"):
            np.testing.assert_array_equal(opt.state[name]["weight"],
                                          good["state"][name]["weight"])
    opt.load_state_dict(good)
