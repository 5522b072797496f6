"""What `graphc train` saves and says when things go wrong: interrupts stop at step boundaries,
a diverged run saves nothing non-finite and names the op, memory is checked before it is
allocated, and bad options are one line naming the option."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import runtime.memory
from graphc import checkpoint
from graphc.cli import _model_config, _train_config, build_parser, main
from graphc.data import CharData
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import Trainer, TrainConfig
from ir.errors import GraphcError
from test_cli import FAST, error_line, text_file, train  # noqa: F401  (text_file: a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- 3, 4: interrupts -------------------------------------------------------------------------
# the schedule does not depend on --steps, so a run of any length is a prefix of this one
SCHEDULE = ["--steps", "100000", "--decay-steps", "40", "--warmup", "3", "--eval-every", "7",
            "--sample-tokens", "0"]


def default_sigint():
    """In a child before exec: SIGINT at its default. The suite itself may run with SIGINT
    ignored (a non-interactive shell starts background jobs so), and a child would inherit
    that; graphc train keeps an inherited ignore (the test of background jobs below)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_run(text, out, signum, delay):
    """`graphc train` in a subprocess (this worktree's code: cwd is the repository root),
    signalled `delay` seconds after training starts."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "graphc.cli", "train", *FAST, *SCHEDULE, "--data", text,
         "--out", out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint)
    for line in proc.stdout:  # "step 0: val loss" is printed just before the first step
        if line.startswith("step 0:"):
            break
    time.sleep(delay)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


def _reference(text):
    args = build_parser().parse_args(["train", *FAST, *SCHEDULE, "--data", text])
    data = CharData.from_file(text, args.block_size)
    cfg = _model_config(args, len(data.vocab))
    tc = _train_config(args)
    return Trainer(GPT(cfg, seed=tc.seed), data, tc)


def _assert_same_state(arrays, meta, trainer):
    assert meta["step"] == trainer.step
    for n in trainer.names:
        for prefix, store in (("param", trainer.params), ("adam_m", trainer.m),
                              ("adam_v", trainer.v)):
            np.testing.assert_array_equal(arrays[f"{prefix}/{n}"], store[n],
                                          err_msg=f"{prefix}/{n} at step {trainer.step}")
    assert checkpoint.rng_state(meta) == trainer.rng.bit_generator.state
    assert [tuple(h) for h in meta["history"]] == trainer.history


def test_signals_stop_at_a_step_boundary_and_save_it(tmp_path, text_file):  # noqa: F811
    rng = np.random.default_rng()
    runs = [(signal.SIGINT, d) for d in rng.uniform(0.05, 1.0, 2)] + \
        [(signal.SIGTERM, rng.uniform(0.05, 1.0))]
    finished = []
    for k, (signum, delay) in enumerate(runs):
        out = str(tmp_path / f"run{k}")
        finished.append((signum, delay, out, *_interrupted_run(text_file, out, signum, delay)))
    # each checkpoint is exactly the state of an uninterrupted run after that many steps
    # (it used to be whatever was in the arrays: some parameters updated, `step` not yet)
    saved = [(checkpoint.load(os.path.join(out, "checkpoint.npz")), out, delay)
             for _, delay, out, _, _ in finished
             if os.path.exists(os.path.join(out, "checkpoint.npz"))]
    reference = _reference(text_file)
    for (arrays, meta), out, delay in sorted(saved, key=lambda s: s[0][1]["step"]):
        assert meta["step"] > 0, f"signal after {delay:.2f}s came before the first step"
        while reference.step < meta["step"]:
            reference.train_step()
        _assert_same_state(arrays, meta, reference)
    for signum, delay, out, rc, stderr in finished:
        # 130 and 143, as shells report a process ended by SIGINT / SIGTERM, after the save
        assert rc == 128 + signum, stderr
        assert stderr.strip().splitlines()[-1].startswith(
            f"interrupted by {signal.Signals(signum).name}: saved step "), stderr
        assert "--resume" in stderr
    assert len(saved) == len(runs)
    # and resuming one continues bit for bit
    (arrays, meta), out, _ = saved[0]
    target = meta["step"] + 3
    assert main(["train", *FAST, *SCHEDULE[2:], "--steps", str(target), "--data", text_file,
                 "--out", out, "--resume"]) == 0
    arrays, meta = checkpoint.load(os.path.join(out, "checkpoint.npz"))
    reference = _reference(text_file)
    while reference.step < target:
        reference.train_step()
    _assert_same_state(arrays, meta, reference)


# ---- 5: divergence ----------------------------------------------------------------------------
@pytest.mark.parametrize("after", ["validation loss over the whole split", "---- sample"])
def test_a_sigterm_after_training_says_what_was_saved(tmp_path, text_file, after):  # noqa: F811
    """SIGTERM while the finished run scores the validation split or draws its sample: the
    checkpoint is saved by then. It ended the process without a word (killed by the signal);
    now one line on stderr says so, status 143 as during training, no sample.txt."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "graphc.cli", "train", "--config", "tiny", "--n-layer",
         "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
         "--steps", "2", "--eval-iters", "1", "--sample-tokens", "2000", "--no-progress",
         "--data", text_file, "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    for line in proc.stdout:
        if line.startswith(after):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    ckpt = out / "checkpoint.npz"
    assert proc.returncode == 143, (proc.returncode, stderr)
    assert stderr.splitlines() == [
        f"interrupted by SIGTERM after training: step 2 is saved in {ckpt}; no sample was "
        f"written (graphc sample --checkpoint {out} draws one)"], stderr
    assert checkpoint.load(str(ckpt))[1]["step"] == 2
    assert not (out / "sample.txt").exists() and "checkpoint: " not in stdout


_SIGNAL_AT_THE_SAMPLES_RENAME = """
import os, signal, sys
replace = os.replace
def replace_then_signal(src, dst, *args, **kwargs):  # SIGTERM just after sample.txt is in place
    replace(src, dst, *args, **kwargs)
    if os.path.basename(dst) == "sample.txt":
        os.kill(os.getpid(), signal.SIGTERM)
os.replace = replace_then_signal
from graphc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_just_after_the_sample_is_renamed_into_place_says_it_was_written(
        tmp_path, text_file):  # noqa: F811
    """A signal landing after atomic_writer renamed sample.txt into place (while it synced
    the directory, or printed the closing rule) said "no sample was written", with the whole
    sample on disk. The signal is sent from inside the rename's wrapper: no timing."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT_THE_SAMPLES_RENAME, "train", "--config", "tiny",
         "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8",
         "--batch-size", "4", "--steps", "2", "--eval-iters", "1", "--sample-tokens", "20",
         "--no-progress", "--data", text_file, "--out", str(out)], cwd=ROOT,
        capture_output=True, text=True, timeout=300, preexec_fn=default_sigint)
    ckpt, sample = out / "checkpoint.npz", out / "sample.txt"
    assert proc.returncode == 143, (proc.returncode, proc.stderr)
    assert proc.stderr.splitlines() == [
        f"interrupted by SIGTERM after training: step 2 is saved in {ckpt}; the sample was "
        f"written to {sample}"], proc.stderr
    assert checkpoint.load(str(ckpt))[1]["step"] == 2
    assert len(sample.read_text(encoding="utf-8")) >= 20
    assert "checkpoint: " not in proc.stdout


def test_a_diverging_run_saves_nothing_non_finite_and_names_the_op(tmp_path, text_file,  # noqa
                                                                    capsys):
    assert train(tmp_path, text_file, "--steps", "20", "--lr", "1e6", "--eval-every", "1") == 2
    line = error_line(capsys)
    assert "training diverged at step" in line
    # the finite check re-ran the failing step and named the op and the model's line
    assert "first non-finite value:" in line and "operands:" in line and " in [" in line
    assert "gpt.py:" in line and "of constant" not in line
    assert "Try a lower --lr" in line
    ckpt = tmp_path / "run" / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    assert f"checkpoint.npz (step {meta['step']}) is kept" in line
    assert all(np.isfinite(a).all() for a in arrays.values())
    assert all(np.isfinite(loss) for _, loss in meta["history"] + meta["val_history"])


def test_trainer_refuses_to_save_a_non_finite_state(tmp_path):
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    trainer = Trainer(GPT(cfg), data, TrainConfig(steps=2, eval_iters=1))
    trainer.params["ln_f.bias"][1] = np.inf
    with pytest.raises(GraphcError, match="param/ln_f.bias is not finite"):
        trainer.save(str(tmp_path / "c.npz"))
    assert not (tmp_path / "c.npz").exists()


def test_the_finite_check_runs_a_gpt_step_with_its_attention_mask():
    """The mask's -inf is the model's own: a checked step of finite weights runs, bit for bit
    like an unchecked one (the check used to stop at the -inf constant)."""
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    a, b = (Trainer(GPT(cfg), data, TrainConfig(steps=2, eval_iters=1)) for _ in range(2))
    assert a.train_step(checked=True) == b.train_step()
    for n in a.names:
        np.testing.assert_array_equal(a.params[n], b.params[n])


# ---- 6: text without a newline ----------------------------------------------------------------
def test_text_without_newline_trains_samples_and_saves(tmp_path, capsys):
    path = tmp_path / "flat.txt"
    path.write_text("".join(np.random.default_rng(1).choice(["to be ", "or not "], 200)))
    assert train(tmp_path, str(path), "--steps", "2") == 0
    sample = (tmp_path / "run" / "sample.txt").read_text(encoding="utf-8")
    assert len(sample) == 5 and set(sample) <= set("to be or not")
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(tmp_path / "run"), "--tokens", "4"]) == 0
    assert len(capsys.readouterr().out.rstrip("\n")) == 1 + 4  # the prompt " " and 4 more


# ---- 10: memory -------------------------------------------------------------------------------
GIB = 1 << 30


def test_a_plan_larger_than_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runtime.memory, "available_bytes", lambda: 8 * GIB)
    assert main(["train", "--config", "tiny", "--block-size", "100000", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 2
    line = error_line(capsys)
    assert "TiB for its buffers, but only 8.0 GiB of memory is available" in line
    assert "lower --batch-size (64) or --block-size (100000)" in line
    assert not (tmp_path / "run").exists()


def test_a_model_larger_than_memory_is_refused_before_allocating(tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setattr(runtime.memory, "available_bytes", lambda: 8 * GIB)
    allocated = []
    monkeypatch.setattr(GPT, "__init__", lambda *a, **k: allocated.append(a))
    assert main(["train", "--config", "tiny", "--n-embd", "16384", "--n-layer", "48",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 2
    line = error_line(capsys)
    assert "154,630,668,288 parameters need 3.94 TiB with AdamW's state, but only 8.0 GiB" \
        in line
    assert "lower --n-embd (16384) or --n-layer (48)" in line
    assert allocated == []


@pytest.mark.parametrize("overrides", [{}, {"bias": False}, {"tie_weights": False}])
def test_parameter_count_from_the_config(overrides):
    cfg = GPTConfig.named("tiny", vocab_size=70, **overrides)
    assert cfg.num_parameters() == GPT(cfg).num_parameters()
    assert cfg.parameter_bytes() == 4 * cfg.num_parameters()


# ---- 16: options ------------------------------------------------------------------------------
@pytest.mark.parametrize("command, option, value, message", [
    ("train", "--lr", "inf", "expected a finite number, got 'inf'"),
    ("train", "--weight-decay", "nan", "expected a finite number, got 'nan'"),
    ("train", "--warmup", "-10", "expected a number >= 0, got -10"),
    ("train", "--seed", "-1", "expected a number >= 0, got -1"),
    ("train", "--min-lr", "inf", "expected a finite number"),
    ("sample", "--temperature", "nan", "expected a finite number, got 'nan'"),
    ("sample", "--seed", "-1", "expected a number >= 0, got -1"),
])
def test_bad_option_values_are_one_line_naming_the_option(tmp_path, text_file,  # noqa: F811
                                                          capsys, command, option, value,
                                                          message):
    if command == "train":
        argv = ["train", *FAST, "--data", text_file, "--out", str(tmp_path / "run")]
    else:
        assert train(tmp_path, text_file, "--steps", "1") == 0
        capsys.readouterr()
        argv = ["sample", "--checkpoint", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, option, value])
    assert exc.value.code == 2
    line = error_line(capsys)
    assert line.startswith(f"graphc: error: argument {option}: {message}")
    if command == "train":
        assert not (tmp_path / "run").exists()


def test_data_directory_is_named_as_a_directory(tmp_path, capsys):
    assert train(tmp_path, str(tmp_path), "--steps", "2") == 2
    assert error_line(capsys) == (f"graphc: error: --data {str(tmp_path)!r} is a directory; "
                                  "pass a UTF-8 text file")


def test_sampler_rejects_a_nan_temperature():
    from graphc.sample import Sampler
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    model = GPT(cfg)
    sampler = Sampler(model, {n: p.data for n, p in model.named_parameters()})
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got nan"):
        sampler.generate([0], 3, temperature=float("nan"))


def test_an_ignored_sigint_stays_ignored(tmp_path, text_file):  # noqa: F811
    """A shell starts background jobs (`graphc train ... &`) with SIGINT ignored: a Ctrl-C
    meant for the foreground must not stop them."""
    out = str(tmp_path / "run")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "graphc.cli", "train", *FAST, "--steps", "60",
         "--sample-tokens", "0", "--data", text_file, "--out", out], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    for line in proc.stdout:
        if line.startswith("step 0:"):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "interrupted" not in stderr
    assert checkpoint.load(os.path.join(out, "checkpoint.npz"))[1]["step"] == 60


def test_an_unusable_data_directory_is_named(tmp_path, text_file, capsys,  # noqa: F811
                                             monkeypatch):
    monkeypatch.setenv("GRAPHC_DATA_DIR", str(tmp_path / "missing"))
    assert train(tmp_path, text_file, "--steps", "1") == 2
    assert "GRAPHC_DATA_DIR=" in error_line(capsys)


@pytest.mark.parametrize("decay", ["1", "10"])
def test_a_decay_not_longer_than_the_warmup_is_refused(tmp_path, text_file, capsys,  # noqa: F811
                                                        decay):
    """--decay-steps is the step the cosine ends at, warmup included (nanoGPT's
    lr_decay_iters, optax's decay_steps): one not past the warmup was accepted, and the rate
    fell from the peak to min_lr in one step. optax's warmup_cosine_decay_schedule refuses it
    too. A run shorter than its warmup without --decay-steps still only warms up."""
    assert train(tmp_path, text_file, "--steps", "2", "--warmup", "10", "--decay-steps",
                 decay) == 2
    assert error_line(capsys) == (f"graphc: error: --decay-steps {decay} must be greater than "
                                  "--warmup 10: the decay counts the warmup's steps and ends "
                                  "after it")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    assert train(tmp_path, text_file, "--steps", "2", "--warmup", "10", "--decay-steps",
                 "11") == 0
    assert train(tmp_path, text_file, "--steps", "2", "--warmup", "10", out="short") == 0
