"""Gradient accumulation in gc.Trainer and graphc train (session 35).

Before it, neither had any (`gradient_accumulation_steps` was a TypeError, the option
unknown): a batch that did not fit memory could not train as a larger effective batch. Each
test failed before the feature.

Session 35's fixes of its review of the feature follow (the tests after
test_two_ranks_accumulate_as_one_and_all_reduce_once_per_step); each test of a fix failed
before its fix, the others cover what the reviewer checked by hand."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _data(rows, dtype="float64"):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(rows, 5)).astype(dtype), rng.normal(size=(rows, 3)).astype(dtype))


def _params(dtype="float64"):
    rng = np.random.default_rng(1)
    return {"w1": rng.normal(size=(5, 16)).astype(dtype), "b1": np.zeros(16, dtype),
            "w2": rng.normal(size=(16, 3)).astype(dtype) * 0.5, "b2": np.zeros(3, dtype)}


def _mlp_loss(p, batch):
    h = gc.tanh(batch[0] @ p["w1"] + p["b1"])
    return gc.mean((h @ p["w2"] + p["b2"] - batch[1]) ** 2)


OPTIMIZERS = {"SGD": lambda: gc.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
              "AdamW": lambda: gc.optim.AdamW(lr=0.01, weight_decay=0.1)}


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 2e-6)])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_four_micro_batches_update_as_one_batch_of_four_times_the_rows(name, dtype,
                                                                      tolerance):
    """gc.Trainer had no gradient_accumulation_steps (a TypeError). Now N=4 micro-batches of
    B rows make one optimiser step on their mean gradient: after 3 steps (clipped to norm
    0.5) the parameters, optimiser state, reported losses and gradient norms are those of
    N=1 on the concatenated batches of 4B rows, to rounding (float64) or float32's."""
    x, y = _data(48, dtype)
    micro = [(x[k:k + 4], y[k:k + 4]) for k in range(0, 48, 4)]  # 12 micro-batches of 4
    whole = [(x[k:k + 16], y[k:k + 16]) for k in range(0, 48, 16)]  # 3 batches of 16
    accumulated = gc.Trainer(_mlp_loss, _params(dtype), OPTIMIZERS[name](), micro, steps=3,
                             clip_norm=0.5, gradient_accumulation_steps=4)
    one = gc.Trainer(_mlp_loss, _params(dtype), OPTIMIZERS[name](), whole, steps=3,
                     clip_norm=0.5)
    for _ in range(3):
        assert accumulated.train_step() == pytest.approx(one.train_step(), rel=tolerance)
        assert accumulated.grad_norm == pytest.approx(one.grad_norm, rel=tolerance)
        assert one.grad_norm > 0.5  # clipped: on the accumulated gradient's norm
    assert accumulated.step == 3 and int(accumulated.state["count"]) == 3
    assert accumulated.train_batches.position == 12  # the data position counts micro-batches
    for key, expected in one.state_arrays().items():
        got = accumulated.state_arrays()[key]
        # (SGD's 0-d "started" marks are bool)
        assert got.dtype == (np.bool_ if key.startswith("opt_started/") else np.dtype(dtype))
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance, err_msg=key)
    assert not np.allclose(accumulated.params["w1"], _params(dtype)["w1"])  # it trained


def test_accumulation_matches_a_torch_loop_that_divides_each_micro_loss():
    """The update is a torch loop's with accumulation (nanoGPT's: each micro-batch's loss
    divided by N, backward() adding into .grad, clip_grad_norm_, AdamW.step(),
    zero_grad()), on a float64 MLP with batches drawn from the trainer's generator: the
    parameters after 3 steps agree to 1e-10."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    x, y = _data(64)
    start = _params()

    def batches(rng):
        rows = rng.integers(0, len(x), 6)
        return x[rows], y[rows]
    trainer = gc.Trainer(_mlp_loss, start, gc.optim.AdamW(lr=0.02, weight_decay=0.1),
                         batches, steps=3, clip_norm=0.3, gradient_accumulation_steps=3,
                         seed=5)
    drawn = np.random.default_rng(5)  # the trainer's generator: the same micro-batches
    for _ in range(3):
        trainer.train_step()

    weights = {n: torch.tensor(a, requires_grad=True) for n, a in start.items()}
    opt = torch.optim.AdamW(weights.values(), lr=0.02, weight_decay=0.1)
    for _ in range(3):
        for _ in range(3):
            bx, by = (torch.tensor(a) for a in batches(drawn))
            h = torch.tanh(bx @ weights["w1"] + weights["b1"])
            loss = ((h @ weights["w2"] + weights["b2"] - by) ** 2).mean()
            (loss / 3).backward()
        torch.nn.utils.clip_grad_norm_(weights.values(), 0.3)
        opt.step()
        opt.zero_grad()
    for n, w in weights.items():
        np.testing.assert_allclose(trainer.params[n], w.detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=n)


def test_each_micro_batch_draws_its_own_dropout_mask():
    """Each micro-batch of a step has its own dropout key: with Dropout(0.5) on ones and two
    micro-batches, a unit's mean gradient is 0, 1 or 2 (dropped by both, one, none); one
    shared mask would give only 0 and 2."""
    drop = gc.nn.Dropout(0.5)

    def loss(p, batch):
        return gc.sum(drop(batch[0]) * p["w"])
    trainer = gc.Trainer(loss, {"w": np.zeros((1, 1000))}, gc.optim.SGD(lr=1.0),
                         [(np.ones((1, 1000)),)], steps=1, gradient_accumulation_steps=2)
    trainer.train_step()
    counts = np.bincount((-trainer.params["w"]).astype(int).ravel(), minlength=3)
    assert counts.sum() == 1000 and set(np.unique(-trainer.params["w"])) <= {0.0, 1.0, 2.0}
    assert 400 < counts[1] < 600  # kept by one of the two masks: about half the units


def _trainer(steps, accumulation=2, dropout=True):
    x, y = _data(64)
    drop = gc.nn.Dropout(0.2)

    def loss(p, batch):
        h = gc.tanh(batch[0] @ p["w1"] + p["b1"])
        h = drop(h) if dropout else h
        return gc.mean((h @ p["w2"] + p["b2"] - batch[1]) ** 2)

    def batches(rng):
        rows = rng.integers(0, len(x), 8)
        return x[rows], y[rows]
    return gc.Trainer(loss, _params(), gc.optim.AdamW(lr=0.01), batches, steps=steps,
                      eval_batches=batches, eval_every=2, eval_iters=2, clip_norm=1.0,
                      gradient_accumulation_steps=accumulation)


def test_a_run_resumed_mid_way_ends_where_an_uninterrupted_one_does(tmp_path):
    """A checkpoint of an accumulating run (dropout on, batches drawn from the trainer's
    generator) records gradient_accumulation_steps and the micro-batches drawn; resumed at
    step 2, it trains to the very parameters, optimiser state and losses of an
    uninterrupted 4-step run."""
    whole = _trainer(4)
    whole.fit(str(tmp_path / "whole"), progress=False)
    _trainer(2).fit(str(tmp_path / "half"), progress=False)
    _, meta = checkpoint.load_arrays(str(tmp_path / "half" / "checkpoint.npz"), {})
    assert meta["gradient_accumulation_steps"] == 2 and meta["data_position"] == 4
    resumed = _trainer(4)
    resumed.resume(str(tmp_path / "half" / "checkpoint.npz"))
    resumed.fit(str(tmp_path / "half"), progress=False)
    assert resumed.history == whole.history and resumed.val_history == whole.val_history
    for key, expected in whole.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], expected, err_msg=key)


def test_resuming_with_another_accumulation_is_refused_unless_allowed(tmp_path):
    """Resuming a checkpoint of gradient_accumulation_steps=2 with 3 is refused in one line
    naming both (each update would average another number of batches), as other changed
    settings are, unless allow_changed_settings=True; a checkpoint written before the field
    (none in its header) resumes as one of 1."""
    _trainer(2, dropout=False).fit(str(tmp_path / "run"), progress=False)
    path = str(tmp_path / "run" / "checkpoint.npz")
    with pytest.raises(gc.GraphcError) as refused:
        _trainer(4, accumulation=3, dropout=False).resume(path)
    assert str(refused.value) == (
        f"{path} was saved with gradient_accumulation_steps 2, this run has 3 (an optimiser "
        "step of 3 micro-batches, not 2); resume with 2, or pass allow_changed_settings=True "
        "to continue with 3")
    allowed = _trainer(4, accumulation=3, dropout=False)
    allowed.resume(path, allow_changed_settings=True)
    allowed.train_step()
    assert allowed.train_batches.position == 4 + 3

    arrays, meta = checkpoint.load_arrays(path, {k: (a.shape, a.dtype) for k, a in
                                                 _trainer(2, dropout=False).state_arrays().items()})
    del meta["gradient_accumulation_steps"]  # as written before the field
    checkpoint.save(path, arrays, {k: v for k, v in meta.items()
                                   if k not in ("format", "version")})
    with pytest.raises(gc.GraphcError, match="saved with gradient_accumulation_steps 1, this "
                                             "run has 2"):
        _trainer(4, dropout=False).resume(path)
    _trainer(4, accumulation=1, dropout=False).resume(path)


@pytest.mark.parametrize("value", [0, -1, 2.5, "2", True])
def test_a_bad_gradient_accumulation_steps_is_one_line(value):
    """gradient_accumulation_steps is a whole number >= 1, checked as steps= is."""
    with pytest.raises(gc.GraphcError) as refused:
        _trainer(2, accumulation=value)
    assert str(refused.value).splitlines()[0] == (
        f"Trainer: gradient_accumulation_steps must be a whole number >= 1, got {value!r}")


@pytest.mark.parametrize("value, says", [
    ("0", "expected a positive number, got 0"), ("x", "expected a whole number, got 'x'"),
    ("2.5", "expected a whole number, got '2.5'")])
def test_graphc_train_refuses_a_bad_gradient_accumulation_steps(capsys, value, says):
    """`graphc train --gradient-accumulation-steps` takes a positive whole number; another
    value exits with status 2 and one line naming the option."""
    from graphc.cli import main
    with pytest.raises(SystemExit) as stop:
        main(["train", "--gradient-accumulation-steps", value])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"graphc: error: argument --gradient-accumulation-steps: {says} (see graphc train "
        "--help)"]


def test_graphc_train_accumulates_reports_the_effective_batch_and_checks_resume(
        tmp_path, capsys):
    """`graphc train --gradient-accumulation-steps 2` says the effective batch (micro-batches
    and tokens per optimiser step), draws two micro-batches a step and records 2 in its
    checkpoint; --resume without the option continues with 2, and with another value is
    refused (status 2, one line naming the option) unless --allow-changed-settings."""
    from graphc.cli import main
    from test_review_s19f import FAST, _text
    assert FAST[-2] == "--steps"
    tiny = [*FAST[:-2], "--data", str(_text(tmp_path)), "--out", str(tmp_path / "o")]
    assert main([*tiny, "--steps", "2", "--gradient-accumulation-steps", "2"]) == 0
    assert "batch 4x8 x 2 micro-batches (64 tokens per step), 2 steps" in capsys.readouterr().out
    ckpt = tmp_path / "o" / "checkpoint.npz"
    _, meta = checkpoint.load(str(ckpt))
    assert meta["gradient_accumulation_steps"] == 2 and meta["data_position"] == 4
    assert main([*tiny, "--steps", "3", "--resume"]) == 0
    _, meta = checkpoint.load(str(ckpt))
    assert meta["gradient_accumulation_steps"] == 2 and meta["data_position"] == 6
    capsys.readouterr()
    assert main([*tiny, "--steps", "4", "--resume", "--gradient-accumulation-steps", "3"]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: {ckpt} was saved with --gradient-accumulation-steps 2, this run has "
        "3 (an optimiser step of 3 micro-batches, not 2); resume with 2, or pass "
        "--allow-changed-settings to continue with 3\n")
    assert main([*tiny, "--steps", "4", "--resume", "--gradient-accumulation-steps", "3",
                 "--allow-changed-settings"]) == 0
    _, meta = checkpoint.load(str(ckpt))
    assert meta["gradient_accumulation_steps"] == 3 and meta["data_position"] == 9


def test_only_one_micro_batch_of_activations_is_planned():
    """The memory benefit: with N=4 micro-batches of 8 rows, the plan that runs the loss and
    its gradients is sized for 8 rows (as N=1's of 8 rows, plus nothing per micro-batch),
    and the update's plan holds no activations; N=1 on 32 rows plans several times more."""
    x, y = _data(32, "float32")
    micro = [(x[k:k + 8], y[k:k + 8]) for k in range(0, 32, 8)]
    wide = _params("float32")
    wide.update(w1=np.ones((5, 256), np.float32), b1=np.zeros(256, np.float32),
                w2=np.ones((256, 3), np.float32))
    accumulated = gc.Trainer(_mlp_loss, wide, gc.optim.AdamW(lr=0.01), micro, steps=1,
                             gradient_accumulation_steps=4)
    one = gc.Trainer(_mlp_loss, wide, gc.optim.AdamW(lr=0.01), [(x, y)], steps=1)
    small = gc.Trainer(_mlp_loss, wide, gc.optim.AdamW(lr=0.01), micro[:1], steps=1)
    activations = accumulated.step_plan.peak_intermediate_bytes
    assert activations <= small.step_plan.peak_intermediate_bytes
    assert accumulated.update_plan.peak_intermediate_bytes < activations
    assert 2 * (activations + accumulated.update_plan.peak_intermediate_bytes) < \
        one.step_plan.peak_intermediate_bytes


def test_two_ranks_accumulate_as_one_and_all_reduce_once_per_step(tmp_path):
    """Under `mpiexec -n 2`, gradient_accumulation_steps=4 trains what one rank trains on
    the same global micro-batches (float64 AdamW with clipping, 3 steps, to 1e-12), and the
    gradients are all-reduced once per optimiser step, not once per micro-batch (as DDP's
    no_sync): each step makes the MPI all-reduces of the update's plan alone, the same
    number every step, and the micro-batches' plan has no collective."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install "
                        "'graphc[mpi]'")
    import mpi_worker
    from test_mpi import run_ranks
    code, output, _ = run_ranks("accumulate", tmp_path)
    assert code == 0, output
    reference = mpi_worker.make_trainer(3, False, gradient_accumulation_steps=4)
    for _ in range(3):
        reference.train_step()
    for rank in (0, 1):
        saved = np.load(tmp_path / f"accumulate_rank{rank}.npz")
        assert saved["micro_batch_collectives"] == 0
        assert saved["update_collectives"] >= 1
        assert list(saved["per_step"]) == [saved["update_collectives"]] * 3
        for n, expected in reference.params.items():
            np.testing.assert_allclose(saved[f"param/{n}"], expected, rtol=1e-12,
                                       atol=1e-12, err_msg=f"rank {rank}: {n}")


def test_changing_gradient_accumulation_steps_between_steps_takes_effect():
    """`trainer.gradient_accumulation_steps = n` between steps was a plain attribute: set
    from 2 to 4 the step drew 4 micro-batches but its plan still divided their sum by 2 (a
    doubled gradient); from 1 to 2 it changed the key and the per-batch count alone. It now
    takes effect at the next step, as clip_norm does: steps of 1, 2, 4, then 1 micro-batch
    of 4 rows update SGD's parameters as one batch of 4, 8, 16, then 4 rows does, to
    rounding; setting 1 back reuses its plan, and a bad value is one line."""
    x, y = _data(32)
    micro = [(x[k:k + 4], y[k:k + 4]) for k in range(0, 32, 4)]
    rows = [(0, 4), (4, 12), (12, 28), (28, 32)]  # a step of 1, 2, 4, then 1 micro-batches
    whole = [(x[a:b], y[a:b]) for a, b in rows]
    changed = gc.Trainer(_mlp_loss, _params(), OPTIMIZERS["SGD"](), micro, steps=4,
                         clip_norm=100.0)
    one = gc.Trainer(_mlp_loss, _params(), OPTIMIZERS["SGD"](), whole, steps=4,
                     clip_norm=100.0)
    for count in (1, 2, 4, 1):
        changed.gradient_accumulation_steps = count
        assert (changed.update_plan is None) == (count == 1)
        assert changed.train_step() == pytest.approx(one.train_step(), rel=1e-12)
        assert changed.grad_norm == pytest.approx(one.grad_norm, rel=1e-12)
    assert changed.train_batches.position == 8 and changed.step == 4
    assert changed._train_step.recompiles == []  # the first plan of 1, reused
    for key, expected in one.state_arrays().items():
        np.testing.assert_allclose(changed.state_arrays()[key], expected, rtol=1e-12,
                                   atol=1e-12, err_msg=key)
    with pytest.raises(gc.GraphcError) as refused:
        changed.gradient_accumulation_steps = 0
    assert str(refused.value).splitlines()[0] == (
        "Trainer: gradient_accumulation_steps must be a whole number >= 1, got 0")
    assert changed.gradient_accumulation_steps == 1


def _spy_keys(trainer):
    """The dropout keys the trainer's steps use, appended to the list returned."""
    keys, original = [], trainer._key

    def spy(*args):
        key = original(*args)
        keys.append(int(key))
        return key
    trainer._key = spy
    return keys


def test_dropout_keys_are_not_reused_after_resuming_with_another_accumulation(tmp_path):
    """A micro-batch's dropout key was step * N + micro-batch: a run of N=3 to step 2 used
    keys 0 to 5, and resumed with N=2 (allow_changed_settings) its first step used 4 and 5
    again, the masks of two micro-batches it had already trained on. The key now counts the
    micro-batches drawn (the checkpointed data position): the resumed step uses 6 and 7,
    and N=1's key is the step, as it was."""
    first = _trainer(2, accumulation=3)
    first_keys = _spy_keys(first)
    first.fit(str(tmp_path / "run"), progress=False)
    assert first_keys == [0, 1, 2, 3, 4, 5]  # seed 0: the key is the count itself
    resumed = _trainer(3, accumulation=2)
    resumed.resume(str(tmp_path / "run" / "checkpoint.npz"), allow_changed_settings=True)
    resumed_keys = _spy_keys(resumed)
    resumed.train_step()
    assert resumed_keys == [6, 7] and resumed.train_batches.position == 8
    plain = _trainer(3, accumulation=1)
    plain_keys = _spy_keys(plain)
    for _ in range(3):
        plain.train_step()
    assert plain_keys == [0, 1, 2]


def _fp16_trainers(scale):
    """fp16-mixed AdamW trainers over 24 rows whose 4th group of 4 has targets of 100: N=2
    on micro-batches of 4 rows, and N=1 on the same rows in batches of 8."""
    x, y = _data(24, "float32")
    y[12:16] = 100.0
    micro = [(x[k:k + 4], y[k:k + 4]) for k in range(0, 24, 4)]
    whole = [(x[k:k + 8], y[k:k + 8]) for k in range(0, 24, 8)]

    def trainer(batches, count):
        return gc.Trainer(_mlp_loss, _params("float32"), OPTIMIZERS["AdamW"](), batches,
                          steps=3, clip_norm=1.0, precision="fp16-mixed",
                          loss_scaler=gc.amp.LossScaler(init_scale=scale),
                          gradient_accumulation_steps=count)
    return trainer(micro, 2), trainer(whole, 1)


def test_an_overflowing_micro_batch_skips_the_step_as_one_big_batch_does():
    """fp16-mixed with N=2: a step whose second micro-batch's scaled gradient overflows
    float16 (targets of 100 against a scale of 2**12; the loss stays finite) is skipped,
    parameters and AdamW's state left as they were and the scale halved, exactly as N=1 on
    the two micro-batches in one batch; the steps around it train as that batch does, to
    float16's rounding."""
    accumulated, one = _fp16_trainers(2.0 ** 12)  # the 4th micro-batch: step 2's second
    for step in range(3):
        before = {k: a.copy() for k, a in accumulated.state_arrays().items()}
        accumulated.train_step()
        one.train_step()
        assert accumulated.step_skipped == one.step_skipped == (step == 1)
        assert float(accumulated.amp_state["scale"]) == float(one.amp_state["scale"])
        if step == 1:
            assert float(accumulated.amp_state["scale"]) == 2.0 ** 11
            for key, value in accumulated.state_arrays().items():
                if not key.startswith("amp/"):
                    np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert accumulated.skipped_steps == one.skipped_steps == 1
    assert int(accumulated.state["count"]) == int(one.state["count"]) == 2
    for key, expected in one.state_arrays().items():
        np.testing.assert_allclose(accumulated.state_arrays()[key], expected, rtol=2e-3,
                                   atol=2e-4, err_msg=key)


def test_batch_norm_updates_its_statistics_at_every_micro_batch_as_torch():
    """A BatchNorm1d trained with N=2 updates its running statistics at each micro-batch's
    forward pass, as torch's does in an accumulation loop (two updates per optimiser step),
    and its weight and bias follow torch's SGD on the accumulated gradient: after 2 steps
    all four agree with torch's to 1e-12 (float64)."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    x, y = _data(16)
    target = np.concatenate([y, y[:, :2]], axis=1)  # 5 columns, as the layer's
    micro = [(x[k:k + 4] * 3 + 1, target[k:k + 4]) for k in range(0, 16, 4)]
    bn = gc.nn.BatchNorm1d(5, momentum=0.3, dtype="float64")
    start = {"weight": np.linspace(0.5, 1.5, 5), "bias": np.linspace(-0.2, 0.2, 5)}

    def loss(p, batch):
        return gc.mean((bn.apply(p, batch[0]) - batch[1]) ** 2)
    trainer = gc.Trainer(loss, start, gc.optim.SGD(lr=0.5), micro, steps=2,
                         gradient_accumulation_steps=2)
    for _ in range(2):
        trainer.train_step()

    theirs = torch.nn.BatchNorm1d(5, momentum=0.3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(start["weight"]))
        theirs.bias.copy_(torch.tensor(start["bias"]))
    opt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    for k, (bx, by) in enumerate(micro):
        ((theirs(torch.tensor(bx)) - torch.tensor(by)) ** 2).mean().div(2).backward()
        if k % 2 == 1:
            opt.step()
            opt.zero_grad()
    assert int(bn.num_batches_tracked.data) == int(theirs.num_batches_tracked) == 4
    for mine, expected in [(trainer.params["weight"], theirs.weight),
                           (trainer.params["bias"], theirs.bias),
                           (bn.running_mean.data, theirs.running_mean),
                           (bn.running_var.data, theirs.running_var)]:
        np.testing.assert_allclose(mine, expected.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_a_frozen_parameter_with_adamw_and_clipping_accumulates_as_one_batch():
    """A Linear layer frozen torch's way (requires_grad=False) in a model trained with
    AdamW, weight decay and clip_norm: with N=4 micro-batches of 4 rows it stays exactly
    as it was, falls one update behind per step, and the other parameters (and their AdamW
    state) are those of N=1 on batches of 16 rows, to rounding (float64)."""
    rng = np.random.default_rng(3)
    first = gc.nn.Linear(5, 8, dtype="float64", rng=rng)
    second = gc.nn.Linear(8, 3, dtype="float64", rng=rng)
    model = gc.nn.Sequential(first, gc.nn.Tanh(), second)
    first.weight.requires_grad = False
    x, y = _data(48)

    def loss(p, batch):
        return gc.mean((model.apply(p, batch[0]) - batch[1]) ** 2)

    def trainer(rows, count):
        return gc.Trainer(loss, model.params(), gc.optim.AdamW(lr=0.01, weight_decay=0.1),
                          [(x[k:k + rows], y[k:k + rows]) for k in range(0, 48, rows)],
                          steps=3, clip_norm=0.2, gradient_accumulation_steps=count)
    accumulated, one = trainer(4, 4), trainer(16, 1)
    frozen = [n for n in accumulated.names if n.endswith("weight")][0]
    for _ in range(3):
        assert accumulated.train_step() == pytest.approx(one.train_step(), rel=1e-12)
        assert accumulated.grad_norm == pytest.approx(one.grad_norm, rel=1e-12)
        assert one.grad_norm > 0.2  # clipped
    assert accumulated.behind == one.behind and accumulated.behind[frozen] == 3
    np.testing.assert_array_equal(accumulated.params[frozen], first.weight.data)
    for key, expected in one.state_arrays().items():
        np.testing.assert_allclose(accumulated.state_arrays()[key], expected, rtol=1e-12,
                                   atol=1e-14, err_msg=key)


def test_micro_batch_gradients_under_loss_scaling_are_no_larger_than_the_big_batchs():
    """Session 35's fix: each micro-batch's scaled float16 gradients were those of its whole
    loss (the sum divided by N only in the update), N times the one big batch's, so with a
    scale of 2**10 and targets of 100 a micro-batch overflowed float16 and skipped a step
    that the batch of 8 rows took. Each micro loss is divided by N before its backward pass
    now (nanoGPT's way): steps are skipped no more often than with one big batch (here
    neither run skips one)."""
    accumulated, one = _fp16_trainers(2.0 ** 10)
    for _ in range(3):
        accumulated.train_step()
        one.train_step()
        assert not one.step_skipped and not accumulated.step_skipped
    for key, expected in one.state_arrays().items():
        np.testing.assert_allclose(accumulated.state_arrays()[key], expected, rtol=2e-3,
                                   atol=2e-4, err_msg=key)


def test_setting_gradient_accumulation_steps_plans_the_micro_batch_step_again():
    """The micro-batch plan divides each loss by N, but setting N from 2 to 4 planned only
    the update again: trainer.step_plan stayed the N=2 plan until the next step. Both are
    planned at once now."""
    x, y = _data(16)
    batches = [(x[k:k + 4], y[k:k + 4]) for k in range(0, 16, 4)]
    t = gc.Trainer(_mlp_loss, _params(), gc.optim.SGD(lr=0.1), batches, steps=5,
                   gradient_accumulation_steps=2)
    before = t.step_plan
    t.gradient_accumulation_steps = 4
    assert t.step_plan is not before and t._train_step.guards_hold(t.step_plan)
