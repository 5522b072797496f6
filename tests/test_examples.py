"""The examples in examples/ run and reach their results (shortened where they are long)."""
import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example(name):
    return runpy.run_path(str(ROOT / "examples" / name))


def test_micrograd_moons_script_reaches_full_training_accuracy():
    # as a script, in a process of its own, importing this checkout's graphc
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "examples/micrograd_moons.py", "--steps", "100"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last == "training accuracy after 100 steps: 100.0%", run.stdout


def test_make_moons_matches_its_definition():
    x, y = _load("micrograd_moons").make_moons(100, noise=0.0)
    assert x.shape == (100, 2) and set(np.unique(y)) == {-1.0, 1.0}
    upper, lower = x[y == -1], x[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, rtol=1e-6)


def test_digits_mlp_reaches_95_percent_test_accuracy():
    pytest.importorskip("sklearn", reason="the 'examples' extra (scikit-learn) is not installed")
    digits = _load("digits_mlp")
    result = digits.main(epochs=10, eager_epochs=0, log=lambda *_: None)
    assert result["test_accuracy"] >= 0.95


def test_digits_mlp_of_one_epoch_does_not_give_its_compilation_as_an_epochs_time():
    """With --epochs 1 the one compiled epoch is the one that traced and compiled the step;
    it was reported as the compiled time per epoch and compared with eager's: "compiled
    4947.2 ms (first, with compilation, 4947 ms), eager 544.5 ms (0.1x)"."""
    pytest.importorskip("sklearn", reason="the 'examples' extra (scikit-learn) is not installed")
    lines = []
    result = _load("digits_mlp").main(epochs=1, eager_epochs=1, log=lines.append)
    assert result["compiled_epoch_s"] is None and result["first_epoch_s"] > 0
    assert result["eager_epoch_s"] > 0
    first = f"{result['first_epoch_s'] * 1e3:.0f} ms"
    assert lines[-1] == (f"time per epoch: compiled: the one epoch, with compilation, {first} "
                         "(--epochs 2 or more times one without), eager "
                         f"{result['eager_epoch_s'] * 1e3:.1f} ms")
    # two epochs: the second one's time, and eager's against it
    lines.clear()
    result = _load("digits_mlp").main(epochs=2, eager_epochs=1, log=lines.append)
    ratio = result["eager_epoch_s"] / result["compiled_epoch_s"]
    assert lines[-1].startswith(f"time per epoch: compiled {result['compiled_epoch_s'] * 1e3:.1f}"
                                " ms (first, with compilation, ")
    assert lines[-1].endswith(f" ms ({ratio:.1f}x)")


def test_digits_cnn_reaches_95_percent_test_accuracy():
    pytest.importorskip("sklearn", reason="the 'examples' extra (scikit-learn) is not installed")
    result = _load("digits_cnn").main(epochs=8, log=lambda *_: None)
    assert result["test_accuracy"] >= 0.95


def test_digits_cnn_with_batch_norm_trains_and_tests_with_running_statistics():
    pytest.importorskip("sklearn", reason="the 'examples' extra (scikit-learn) is not installed")
    import graphc as gc
    digits = _load("digits_cnn")
    made = []
    original = digits.make_model
    digits.make_model = lambda batch_norm: made.append(original(batch_norm)) or made[-1]
    result = digits.main(epochs=4, batch_norm=True, log=lambda *_: None)
    assert result["test_accuracy"] >= 0.95
    norms = [m for m in made[0] if isinstance(m, gc.nn.BatchNorm2d)]
    assert len(norms) == 2
    # the compiled step wrote the running statistics: 4 epochs of 44 batches of 32
    assert all(int(bn.num_batches_tracked.data) == 4 * (1437 // 32) for bn in norms)
    assert all(np.abs(bn.running_mean.data).max() > 0.01 for bn in norms)


def test_digits_mlp_eager_and_compiled_training_agree():
    pytest.importorskip("sklearn", reason="the 'examples' extra (scikit-learn) is not installed")
    import graphc as gc
    digits = _load("digits_mlp")
    data = digits.load_digits(0)
    gc.nn.manual_seed(0)
    compiled, eager = digits.make_model(), digits.make_model()
    eager.load_state_dict(compiled.state_dict())
    digits.train_compiled(compiled, data, 1, 32, 1e-3, 0, log=lambda *_: None)
    times = digits.train_eager(eager, data, 1, 32, 1e-3, 0)
    assert len(times) == 1 and times[0] > 0
    for name, value in compiled.state_dict().items():
        np.testing.assert_allclose(eager.state_dict()[name], value, rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_char_gpt_is_graphc_trains_gpt_through_the_public_library():
    """40 steps of examples/char_gpt.py give the validation estimate `graphc train --config
    tiny --steps 40` prints (same model, settings, seed and batches)."""
    from graphc.data import CharData
    from graphc.models.gpt import GPT, GPTConfig
    from graphc.train import TRAIN_DEFAULTS, TrainConfig, Trainer

    step, example = _example("char_gpt.py")["train"](steps=40, eval_iters=4, progress=False)
    assert step == 40

    cfg = GPTConfig.named("tiny")
    data = CharData.from_file(None, cfg.block_size)
    cfg.vocab_size = len(data.vocab)
    tc = TrainConfig(**{**TRAIN_DEFAULTS["tiny"], "steps": 40, "eval_iters": 4})
    trainer = Trainer(GPT(cfg, seed=tc.seed), data, tc)
    for _ in range(40):
        trainer.train_step()
    assert example == pytest.approx(trainer.evaluate(), abs=1e-5)
    assert example < 2.75  # from 4.18 at step 0 (measured 2.633)


def test_char_gpt_runs_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "char_gpt.py"),
                           "--steps", "2", "--out", str(tmp_path / "run")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("validation loss after 2 steps: ")
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    assert (tmp_path / "run" / "loss.png").exists()
    # a second run into that --out is refused, the checkpoint kept, in the script's words
    saved = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    again = subprocess.run(proc.args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert again.returncode == 2 and again.stdout == "", again.stderr
    assert again.stderr.splitlines() == [
        f"error: {tmp_path / 'run' / 'checkpoint.npz'} already exists, from another run; "
        "char_gpt.py does not replace it: pass --resume to continue it or --out to train into "
        "another directory"]
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == saved


@pytest.mark.parametrize("script", ["char_gpt.py", "char_lstm.py"])
def test_a_char_example_resumed_past_its_steps_reports_the_checkpoints_step(script, tmp_path):
    """--resume --steps 1 of a run saved at step 2 trains nothing; the script's last line
    said "validation loss after 1 steps" of the model at step 2, where graphc train says
    that no step is left to train: the scripts say so too and report the step there is."""
    def run(*arguments):
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--out", "run",
                               *arguments], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()
    trained = run("--steps", "2")[-1]
    assert "validation loss after 2 steps: " in trained
    saved = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    again = run("--steps", "1", "--resume")
    assert "no steps to train: the checkpoint is at step 2 and --steps is 1 (the total, not " \
           "the steps to add)" in again
    assert again[-1] == trained  # the same step and validation loss, as saved
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == saved


@pytest.mark.parametrize("script", ["char_gpt.py", "char_lstm.py"])
def test_a_char_example_into_an_existing_out_names_its_resume_option(script, tmp_path):
    """A run into an --out holding a checkpoint was refused with Trainer.fit's advice,
    "resume it first (trainer.resume('run/checkpoint.npz'))", a Python call the script's
    user cannot make: the line names the script's --resume and --out now (trainer.command),
    as graphc train's names its own, and leaves the checkpoint as it was."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"another run's")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--steps", "2",
                           "--out", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {os.path.join('run', 'checkpoint.npz')} already exists, from another run; "
        f"{script} does not replace it: pass --resume to continue it or --out to train into "
        "another directory"]
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == b"another run's"
    # (and nothing else but fit's lock file, as graphc train's refusal leaves it)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".graphc.lock", "checkpoint.npz",
                                                           "run"]


def test_char_lstm_trains_compiled_with_scan_and_its_loss_drops():
    lstm = _load("char_lstm")
    first, step, val = lstm.train(steps=30, batch=16, block=32, progress=False, eval_iters=4)
    assert step == 30
    assert first > 4.0  # ln(65): an untrained model
    assert val < first - 0.6, (first, val)


def test_char_lstm_gradients_equal_the_unrolled_python_loop_in_float64():
    import graphc as gc
    from graphc.data import CharData
    lstm = _load("char_lstm")
    data = CharData.from_file(None, 12)
    model = lstm.CharLSTM(len(data.vocab), width=8, hidden=16, dtype="float64")
    params = model.params()
    idx, targets = data.batch(np.random.default_rng(0), "train", 3, 12)

    def loss_and_grads(unroll):
        return gc.value_and_grad(lambda p: model.apply(p, idx, targets, unroll))(params)

    (loss, grads), (ref_loss, ref_grads) = loss_and_grads(False), loss_and_grads(True)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    assert set(grads) == set(ref_grads) == set(params)
    for name in params:
        assert np.abs(ref_grads[name]).max() > 0, name
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-10,
                                   err_msg=name)
    # the scanned graph holds the cell once; the unrolled one once per time step
    scanned = gc.trace(lambda p: model.apply(p, idx, targets), params)
    unrolled = gc.trace(lambda p: model.apply(p, idx, targets, True), params)
    assert len(scanned.nodes) < len(unrolled.nodes) / 3


def test_memory_budget_example_prints_the_memory_and_time_table(capsys):
    assert _load("memory_budget").main(["--config", "tiny", "--budgets", "24MiB",
                                         "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("| memory limit | plan memory | recomputed |") and len(rows) == 4
    unlimited, budget = rows[2].split(" | "), rows[3].split(" | ")
    assert unlimited[0] == "| none" and unlimited[2] == "-"
    assert budget[0] == "| 24MiB" and float(budget[1].split()[0]) <= 24
    assert budget[2].endswith("values") and budget[3].startswith("+")


_SKLEARN = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                              reason="the 'examples' extra (scikit-learn) is not installed")
# (script, arguments, the one error line's text): each before a step is trained
_REFUSED = [
    ("micrograd_moons.py", ["--steps", "0"], "argument --steps: expected a whole number >= 1"),
    ("micrograd_moons.py", ["--seed", "-1"], "argument --seed: expected a whole number >= 0"),
    ("micrograd_moons.py", ["--seed", str(2 ** 64)],
     "error: manual_seed: seed 18446744073709551616 is out of range"),
    ("digits_mlp.py", ["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
    ("digits_mlp.py", ["--eager-epochs", "-1"], "argument --eager-epochs: expected a whole "
                                                "number >= 0, got -1"),
    ("digits_cnn.py", ["--batch-size", "0"], "argument --batch-size: expected a whole number "
                                             ">= 1, got 0"),
    pytest.param("digits_mlp.py", ["--batch-size", "5000"],
                 "error: a batch of 5000 is more than the 1438 training images", marks=_SKLEARN),
    pytest.param("digits_cnn.py", ["--lr", "-1"], "error: Adam: lr must be a number >= 0",
                 marks=_SKLEARN),
    ("memory_budget.py", ["--rounds", "0"], "argument --rounds: expected a whole number >= 1"),
    ("memory_budget.py", ["--config", "huge"], "argument --config: invalid choice: 'huge'"),
    ("memory_budget.py", ["--config", "tiny", "--budgets", "12XB"],
     "error: memory_limit: expected a number of bytes or a size"),
    ("memory_budget.py", ["--config", "tiny", "--budgets", "1KiB"],
     "error: memory_limit 1.0 KiB cannot be met"),
    ("memory_budget.py", ["--config", "tiny", "--budgets", " , "],  # (before: the unlimited
     "argument --budgets: expected comma-separated memory limits, got ' , '"),  # row alone)
    ("char_lstm.py", ["--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
    ("char_gpt.py", ["--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
    ("char_gpt.py", ["--resume", "--out", "absent"], "error: no checkpoint at 'absent/"),
    ("char_lstm.py", ["--resume", "--out", "absent"], "error: no checkpoint at 'absent/"),
]


@pytest.mark.parametrize("script, arguments, expected", _REFUSED)
def test_an_example_refuses_a_bad_argument_in_one_line_with_status_2(script, arguments,
                                                                     expected, tmp_path):
    """Before: tracebacks (UnboundLocalError: no step, no loss; ZeroDivisionError; the
    GraphcError or CheckpointError of a setting), or a table of NaN for --eager-epochs -1."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), *arguments],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    # argparse's own refusals come after its usage lines, as of a word for a number
    errors = [line for line in proc.stderr.splitlines() if not line.startswith(("usage:", " "))]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []  # nothing trained or written



def test_the_digits_examples_without_scikit_learn_say_how_to_install_it(tmp_path):
    blocker = tmp_path / "blocked" / "sklearn"
    blocker.mkdir(parents=True)  # an sklearn whose import fails, as when it is not installed
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named "
                                         "'sklearn'\", name='sklearn')\n")
    for script in ("digits_mlp.py", "digits_cnn.py"):
        proc = subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ,
                                   "PYTHONPATH": os.pathsep.join([str(blocker.parent),
                                                                  str(ROOT)])})
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "error: No module named 'sklearn': the digits come with scikit-learn (pip install "
            "scikit-learn, or pip install -e '.[examples]')"], proc.stderr


def test_the_readme_counts_char_gpt_s_lines_as_they_are():
    """The README said 67 non-blank lines, the file's count when it was written; it had 81."""
    import re
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    said = re.search(r"`examples/char_gpt\.py` trains the same GPT in (\d+) non-blank", readme)
    source = (ROOT / "examples" / "char_gpt.py").read_text(encoding="utf-8").splitlines()
    assert said and int(said.group(1)) == sum(1 for line in source if line.strip())


def test_memory_budget_refuses_a_bad_budget_before_compiling_any(monkeypatch, capsys):
    """Before (review r5): the configurations before the typo were compiled and stepped
    first, minutes for the default --config medium, then the refusal."""
    import graphc as gc
    built = []
    monkeypatch.setattr(gc, "Trainer", lambda *a, **k: built.append(1) or pytest.fail("built"))
    assert _load("memory_budget").main(["--config", "tiny", "--budgets", "24MiB,12XB"]) == 2
    assert built == []
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: memory_limit: expected a number of "
                                               "bytes or a size"), err


def test_a_trainers_command_is_a_name_or_none():
    """trainer.command = "" made a refusal read "...;  does not replace it" (r15)."""
    import graphc as gc
    trainer = gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]), {"w": np.ones(3, np.float32)},
                         gc.optim.SGD(lr=0.1), lambda rng: (np.ones(3, np.float32),), steps=1)
    assert trainer.command is None
    trainer.command = "my_script.py"
    assert trainer.command == "my_script.py"
    for bad in ("", "  ", 3, b"x"):
        with pytest.raises(gc.GraphcError, match=r"^Trainer: command must be a command's name"):
            trainer.command = bad
    assert trainer.command == "my_script.py"
