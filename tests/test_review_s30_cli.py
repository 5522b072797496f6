"""Session 30's findings on the training library, checkpoints and the CLI (a helper's
hostile review); each test failed before its fix."""
import os
import re

import numpy as np
import pytest

from graphc import GraphcError, checkpoint
from graphc.cli import main
from test_trainer import make_trainer


def _header(path):
    trainer = make_trainer()
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    return checkpoint.load_arrays(str(path), wanted)[1]


def test_fit_refuses_to_replace_another_runs_checkpoint(tmp_path, capsys):
    """`graphc train` refuses an --out holding a checkpoint ("already exists; pass
    --resume"); Trainer.fit(out), which the README says has what graphc train has, replaced a
    step-40 checkpoint with a step-5 one."""
    first = make_trainer(steps=10)
    first.fit(str(tmp_path), progress=False)
    ckpt = tmp_path / "checkpoint.npz"
    before = ckpt.read_bytes()
    with pytest.raises(Exception, match="already exists, from another run"):
        make_trainer(steps=5).fit(str(tmp_path), progress=False)
    assert ckpt.read_bytes() == before
    first.steps = 20  # the run that wrote it goes on, and a resumed one may
    first.fit(str(tmp_path), progress=False)
    resumed = make_trainer(steps=30)
    resumed.resume(str(ckpt))
    resumed.fit(str(tmp_path), progress=False)
    assert _header(ckpt)["step"] == 30


def test_checkpoint_meta_with_numpy_scalars_is_saved_and_other_values_refused_at_once(
        tmp_path):
    """n_head=np.int64(2) trained to the first save and crashed there ("int64 is not JSON
    serializable"), the work lost; a value JSON cannot hold is refused when the trainer is
    built, before any step."""
    trainer = make_trainer(steps=10, checkpoint_meta={"lr": np.float32(0.5),
                                                      "heads": np.int64(2)})
    trainer.fit(str(tmp_path), progress=False)
    meta = _header(tmp_path / "checkpoint.npz")
    assert meta["lr"] == 0.5 and meta["heads"] == 2
    with pytest.raises(Exception, match="checkpoint_meta: a checkpoint header holds JSON"):
        make_trainer(checkpoint_meta={"when": object()})


def test_evaluation_batches_are_drawn_one_at_a_time():
    """A large eval_iters drew every batch first (24 GB, then the kernel's out-of-memory
    kill); they are drawn as they are scored."""
    trainer = make_trainer()
    drawn = []

    def batches(rng):
        drawn.append(1)
        return np.zeros((1, 2), np.float32), np.zeros(1, np.int64)
    from graphc.trainer import _Batches
    lazy = _Batches(batches, "eval_batches").sample(np.random.default_rng(0), 10 ** 12)
    assert drawn == []
    next(lazy)
    assert drawn == [1]
    assert np.isfinite(trainer.evaluate())


def test_bench_concurrent_is_limited_as_ranks_is(capsys):
    """--concurrent 100000 started a process per copy (load 29 on 2 CPUs)."""
    assert main(["bench", "--concurrent", "100000", "--workloads", "mlp-train",
                 "--steps", "1"]) == 2
    cpus = os.cpu_count() or 1
    assert capsys.readouterr().err == (
        f"graphc: error: --concurrent 100000 is more than 8 processes for each of this "
        f"machine's {cpus} CPUs; use fewer\n")


TINY = ["--config", "tiny", "--steps", "3", "--n-layer", "1", "--n-embd", "16", "--n-head",
        "2", "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
        "--sample-tokens", "0"]


def _text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("to be or not to be, that is the question\n" * 20)
    return str(path)


def test_float64_with_mixed_precision_is_one_line(tmp_path, capsys):
    """Before: two lines from deep inside (`add(f16[4,8,48], f64[48]): operands must have
    one dtype`, then a model line)."""
    assert main(["train", *TINY, "--data", _text(tmp_path), "--dtype", "float64",
                 "--precision", "fp16-mixed", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        "graphc: error: --precision fp16-mixed is for float32 models, and this one is "
        "float64 (--dtype, or the checkpoint's); train it with --precision fp32\n")


def test_a_checkpoint_path_that_is_a_directory_is_named_so(tmp_path, capsys):
    """Before: "already exists; pass --resume", then with --resume "no checkpoint at"."""
    out = tmp_path / "o"
    (out / "checkpoint.npz").mkdir(parents=True)
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(out)]) == 2
    assert "checkpoint.npz is a directory, not a checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    ({"frob": 1}, "options: unknown 'frob'"),
    ({"tie_weights": "no"}, "options['tie_weights'] must be True or False, got 'no'"),
    ({"steps": 0}, "options['steps'] must be a positive whole number, got 0"),
    ({"n_layer": "2"}, "options['n_layer'] must be a positive whole number"),
    ({"seed": -1}, "options['seed'] must be a whole number >= 0, got -1"),
    ({"lr": float("nan")}, "options['lr'] must be a finite number > 0"),
    ({"lr": 10 ** 400}, "options['lr'] must be a finite number > 0"),
    ({"dtype": np.array(["float32", "float64"])}, "options['dtype'] must be 'float32' or"),
])
def test_train_gpt_checks_its_options_as_the_cli_does(tmp_path, options, message):
    """Before: a typo was ignored, tie_weights='no' trained and saved a checkpoint graphc then
    refused to read, steps=0 printed a checkpoint path that did not exist, and others failed
    as raw ValueErrors and TypeErrors."""
    from graphc.train import train_gpt
    with pytest.raises(GraphcError, match=re.escape(message)):
        train_gpt("tiny", data=_text(tmp_path), out=str(tmp_path / "o"), options=options)
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_train_gpt_takes_numpy_scalar_options(tmp_path):
    """n_head=np.int64(2) trained to the first save and crashed there."""
    from graphc.train import train_gpt
    options = dict(steps=np.int64(2), n_layer=1, n_embd=16, n_head=np.int64(2), block_size=8,
                   batch_size=4, eval_iters=1, lr=np.float32(1e-3))
    assert train_gpt("tiny", data=_text(tmp_path), out=str(tmp_path / "o"), options=options,
                     sample_tokens=0, progress=False) == 0
    assert (tmp_path / "o" / "checkpoint.npz").exists()


@pytest.mark.parametrize("key, value, message", [
    ("amp/scale", 0.0, "amp/scale must be a finite positive loss scale, got 0.0"),
    ("amp/scale", -1.0, "amp/scale must be a finite positive loss scale, got -1.0"),
    ("amp/good_steps", -5, "amp/good_steps must be 0 or more, got -5"),
])
def test_a_bad_loss_scale_in_a_checkpoint_is_refused(tmp_path, capsys, key, value, message):
    """A scale of 0 made every step overflow ("training diverged ... Try a lower --lr"); -1
    and good_steps -5 were taken silently."""
    out, data = tmp_path / "o", _text(tmp_path)
    assert main(["train", *TINY, "--data", data, "--precision", "fp16-mixed",
                 "--out", str(out)]) == 0
    ckpt = str(out / "checkpoint.npz")
    arrays, meta = checkpoint.load(ckpt)
    arrays[key] = np.asarray(value, arrays[key].dtype)
    checkpoint.save(ckpt, arrays, {k: v for k, v in meta.items()
                                   if k not in ("format", "version")})
    capsys.readouterr()
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_a_lock_file_that_is_no_plain_file_is_named(tmp_path, kind):
    """Before: "[Errno 22] Invalid argument", "[Errno 21]" or "[Errno 40]" alone."""
    from graphc.files import LOCK_NAME, exclusive_directory
    lock = tmp_path / LOCK_NAME
    {"fifo": lambda: os.mkfifo(lock), "directory": lock.mkdir,
     "symlink": lambda: lock.symlink_to(tmp_path / "elsewhere")}[kind]()
    with pytest.raises(GraphcError, match=re.escape(f"{lock} cannot be this run's lock "
                                                    "file (")):
        with exclusive_directory(str(tmp_path)):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_an_ir_file_with_a_negative_dimension_is_refused(tmp_path, capsys):
    """Before: it was read; the plan counted "-48 bytes" and rendered np.empty((-3, 4))."""
    path = tmp_path / "neg.ir"
    path.write_text("graph g(%0:f32[-3,4] x) -> (%1)\n  %1:f32[-3,4] = exp %0\n  return %1\n")
    assert main(["dump", str(path), "--stats"]) == 2
    assert "a dimension is 0 or more, got -3" in capsys.readouterr().err


def test_an_ir_attribute_of_another_type_is_named(tmp_path, capsys):
    path = tmp_path / "attr.ir"
    path.write_text('graph g(%0:f32[2,3] x) -> (%1)\n  %1:f32[2,3] = log_softmax %0 {axis="x"}'
                    "\n  return %1\n")
    assert main(["dump", str(path)]) == 2
    err = capsys.readouterr().err
    # (session 39: the attribute's kind is checked before the type rule, at its line and
    # column; it read "ill-typed log_softmax: its attributes {axis='x'} do not fit it")
    assert 'IR line 2, column 33: log_softmax: attribute axis="x" must be an int' in err, err



@pytest.mark.parametrize("settings", [dict(temperature=1.0), dict(temperature=1.0, top_k=1),
                                      dict(temperature=0)])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_choosing_from_nan_or_inf_logits_is_refused(settings, bad):
    """Before: argmax took the NaN's place (a token with no meaning) and numpy's choice
    said "Probabilities contain NaN"; -inf (a token never chosen) is still fine."""
    from graphc.generate import choose
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="the model's logits hold NaN or \\+Inf"):
        choose(np.array([0.0, bad, 1.0]), rng=rng, **settings)
    assert choose(np.array([-np.inf, 0.0, -np.inf]), rng=rng, **settings) == 1


def test_fit_after_a_refused_resume_still_refuses(tmp_path):
    """Found in review: restore() marked the run as resumed before its last checks, so a
    refused resume (here: a data position the checkpoint cannot have) let fit() replace the
    checkpoint it had refused."""
    make_trainer(steps=10).fit(str(tmp_path), progress=False)
    ckpt = tmp_path / "checkpoint.npz"
    trainer = make_trainer(steps=5)
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    arrays, meta = checkpoint.load_arrays(str(ckpt), wanted)
    with pytest.raises(checkpoint.CheckpointError, match="data_position"):
        trainer.restore(arrays, {**meta, "data_position": -1})
    before = ckpt.read_bytes()
    with pytest.raises(GraphcError, match="already exists, from another run"):
        trainer.fit(str(tmp_path), progress=False)
    assert ckpt.read_bytes() == before


def test_a_trainer_resumed_from_one_run_does_not_replace_another(tmp_path):
    """Found in review: any resume let fit() write over any directory's checkpoint."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_trainer(steps=10).fit(str(a), progress=False)
    make_trainer(steps=10).fit(str(b), progress=False)
    before = (b / "checkpoint.npz").read_bytes()
    resumed = make_trainer(steps=20)
    resumed.resume(str(a / "checkpoint.npz"))
    with pytest.raises(GraphcError, match="already exists, from another run"):
        resumed.fit(str(b), progress=False)
    assert (b / "checkpoint.npz").read_bytes() == before
    resumed.fit(str(a), progress=False)  # its own


def test_an_ir_type_rule_failure_keeps_its_own_words(tmp_path, capsys):
    """Found in review: 292946d put every type-rule failure under "its attributes {} do not
    fit it"; a shape error is the operands', in the rule's words."""
    path = tmp_path / "add.ir"
    path.write_text("graph g(%0:f32[2,3] x, %1:f32[4] y) -> (%2)\n"
                    "  %2:f32[2,3] = add %0, %1\n  return %2\n")
    assert main(["dump", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ill-typed add: " in err and "attributes" not in err, err


def test_a_lock_file_the_directory_refuses_is_not_called_removable(tmp_path, monkeypatch):
    """Found in review: an unwritable directory's refusal said "remove it" of a file that
    is not there. (As root no directory refuses: the refusal is simulated.)"""
    from graphc import files
    real_open = os.open

    def refusing(path, *args, **kwargs):
        if str(path).endswith(files.LOCK_NAME):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(files.os, "open", refusing)
    with pytest.raises(GraphcError, match=re.escape(
            f"cannot create {tmp_path / files.LOCK_NAME}, this run's lock file (Permission "
            "denied)")):
        with files.exclusive_directory(str(tmp_path)):
            pass
