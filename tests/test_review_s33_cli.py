"""Session 33's fixes of the command line, its output paths, checkpoints that Trainer.restore
is given and dump's --after; each test failed before its fix."""
import os
import re

import numpy as np
import pytest

from graphc.cli import main
from test_review_s30_cli import TINY, _text


def test_allow_changed_settings_without_resume_is_refused(tmp_path, capsys):
    """--allow-changed-settings without --resume was ignored: the run trained from scratch
    (or was told the checkpoint already exists). It is refused before anything is built."""
    out = tmp_path / "o"
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(out),
                 "--allow-changed-settings"]) == 2
    assert capsys.readouterr().err == (
        "graphc: error: --allow-changed-settings is for --resume: it lets a resumed run "
        "change the checkpoint's settings; a fresh run has none to change\n")
    assert not out.exists()


# ---- output paths the file system refuses: named with their option, found before the work --
needs_proc = pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"),
                                reason="needs Linux's /proc")


@needs_proc
def test_an_out_directory_that_cannot_be_created_is_named_before_training(tmp_path, capsys):
    """--out /proc/x passed the permission check (os.access says yes to root there) and
    failed after the step was compiled with "[Errno 2] No such file or directory: '/proc/x'",
    which named no option. It is one line naming --out, the path and the reason, before
    anything is built."""
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", "/proc/x"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("graphc: error: --out '/proc/x': ") and err.count("\n") == 1, err
    assert "directory you can write into" in err


def test_an_out_directory_whose_name_is_too_long_is_one_line(tmp_path, capsys):
    """A name past the file system's limit: "[Errno 36] File name too long: ..." alone."""
    out = tmp_path / ("a" * 300)
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: cannot create the directory {out} "
                                       "(File name too long); write into another directory "
                                       "(graphc train: --out)\n")


@needs_proc
def test_dump_output_that_cannot_be_opened_is_one_line_naming_it(capsys):
    """dump -o /proc/x (as root: the directory looks writable, the file cannot be made) was
    "[Errno 2] No such file or directory: '/proc/x'"; it is said as dump's other refused
    outputs are."""
    assert main(["dump", "mlp", "-o", "/proc/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: cannot write /proc/x: ") and \
        err.count("\n") == 1, err


@needs_proc
@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_bench_outputs_that_cannot_be_written_are_refused_before_measuring(capsys, flag):
    """bench --json /proc/b.json measured every contender, printed its table and then failed
    with "[Errno 2] No such file or directory", the measurements lost."""
    path = "/proc/b." + ("json" if flag == "--json" else "png")
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled", "--steps",
                 "1", "--warmup", "0", flag, path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"graphc: error: {flag} {path}: ") and err.count("\n") == 1, err


# ---- headers given to Trainer.restore ---------------------------------------------------------
@pytest.mark.parametrize("missing", ["step", "rng"])
def test_restore_of_a_header_without_step_or_rng_names_the_checkpoint_and_field(tmp_path,
                                                                                 missing):
    """A header made by hand without "step" (or "rng") was a bare KeyError: 'step'. It is one
    CheckpointError line naming the checkpoint and the field, and the refused restore does
    not let fit() replace the file that is there."""
    from graphc import GraphcError, checkpoint
    from test_trainer import make_trainer
    make_trainer(steps=10).fit(str(tmp_path), progress=False)
    ckpt = tmp_path / "checkpoint.npz"
    before = ckpt.read_bytes()
    trainer = make_trainer(steps=20)
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    arrays, meta = checkpoint.load_arrays(str(ckpt), wanted)
    del meta[missing]
    with pytest.raises(checkpoint.CheckpointError) as info:
        trainer.restore(arrays, meta)
    assert str(info.value) == f"the checkpoint: header field {missing} is missing"
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint '{ckpt}': header field "
                       f"{missing} is missing"):
        trainer.restore(arrays, meta, path=str(ckpt))
    with pytest.raises(GraphcError, match="already exists, from another run"):
        trainer.fit(str(tmp_path), progress=False)
    assert ckpt.read_bytes() == before


# ---- divergence: the user's line from Python, no launcher's line from the command ------------
def test_divergence_names_no_line_outside_graphc_from_the_cli_and_the_users_from_python(
        tmp_path, capsys):
    """The op that first made a NaN or an Inf was the optimiser's (an lr past float32's
    range, cast to float32): the search for the user's line went past main() and named its
    caller, the `graphc` launcher ("at .../bin/graphc:6"; here, this test). From the command
    line, the message names the step and the option, and no line; from Python it still
    names the user's line (make_trainer's, which built the trainer)."""
    import test_trainer
    from graphc.trainer import TrainingDiverged
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(tmp_path / "o"),
                 "--lr", "3e38", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"graphc: error: training diverged at step \d+ \([^)]*\); first "
                        r"non-finite value: [^\n]*\]\. Try a lower --lr; no checkpoint was "
                        r"written\n", err), err
    with pytest.raises(TrainingDiverged) as info:
        test_trainer.make_trainer(steps=5, lr=3e38).fit(str(tmp_path / "p"), progress=False)
    assert re.search(rf" at {re.escape(os.path.relpath(test_trainer.__file__))}:\d+\. Try a "
                     "lower learning rate", str(info.value)), info.value


# ---- a float16 run's saved loss scale ---------------------------------------------------------
@pytest.mark.parametrize("value", [1e-40, 1e-45, np.finfo(np.float32).tiny / 2])
def test_a_subnormal_loss_scale_in_a_checkpoint_is_refused_naming_the_file(tmp_path, capsys,
                                                                           value):
    """A loss scale under float32's smallest normal number (a subnormal: 1/scale is Inf)
    was resumed: every step overflowed, and training stopped as diverged with "Try a lower
    --lr". It is refused in one line naming the file and the entry, the file as it was.
    (0, negative ones: tests/test_review_s30_cli.py; NaN and Inf: checkpoint.load.)"""
    from graphc import checkpoint
    out, data = tmp_path / "o", _text(tmp_path)
    assert main(["train", *TINY, "--data", data, "--precision", "fp16-mixed",
                 "--out", str(out)]) == 0
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    arrays["amp/scale"] = np.asarray(value, np.float32)
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: checkpoint '{ckpt}': amp/scale must be a loss scale of at least "
        f"float32's smallest normal number, 1.175e-38, got {str(np.float32(value))}, which no "
        "run saves (the file was changed or damaged)\n")
    assert ckpt.read_bytes() == before


# ---- a checkpoint's text, when --data is not given --------------------------------------------
def test_eval_and_resume_without_data_of_a_checkpoint_of_another_text_say_pass_data(
        tmp_path, capsys):
    """A checkpoint records its vocabulary, not its text. Without --data, eval and train
    --resume read the bundled Tiny Shakespeare and said only "'.../tinyshakespeare.txt' has
    characters outside the checkpoint's vocabulary", no word of --data; with --data they
    run."""
    out, data = tmp_path / "o", _text(tmp_path)
    assert main(["train", *TINY, "--data", data, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: --checkpoint {out} was not trained on the bundled Tiny Shakespeare "
        "(its vocabulary has 15 characters, the bundled text's 65); pass --data, the text it "
        "was trained on\n")
    assert main(["train", *TINY, "--steps", "5", "--out", str(out), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: {out / 'checkpoint.npz'} was not trained on the bundled Tiny "
        "Shakespeare (its vocabulary has 15 characters, the bundled text's 65); pass --data, "
        "the text it was trained on\n")
    assert main(["eval", "--checkpoint", str(out), "--data", data]) == 0
    assert "validation loss" in capsys.readouterr().out


# ---- dump --after a pass that runs twice ------------------------------------------------------
def test_dump_after_the_second_run_of_a_pass(capsys):
    """The default pipeline runs simplify twice; --after simplify stopped after the first
    and the second could not be named (--after simplify#2: "not a pass of the pipeline"),
    though --diff took simplify#2. --after NAME#K stops after the K-th run; a K past the
    runs is one line."""
    from graphc.dump import builtin_mlp
    from ir.printer import format_graph
    from passes.manager import run_pipeline
    graph = builtin_mlp(grad=True)
    expected = {k: format_graph(run_pipeline(graph, passes, verify_each=True).graph) + "\n"
                for k, passes in ((1, ["simplify"]),
                                  (2, ["simplify", "fold", "cse", "simplify"]))}
    assert expected[1] != expected[2]
    for after, k in (("simplify", 1), ("simplify#1", 1), ("simplify#2", 2)):
        assert main(["dump", "mlp", "--grad", "--after", after]) == 0
        assert capsys.readouterr().out == expected[k], after
    for after, message in (
            ("simplify#3", "--after simplify#3: the pipeline runs simplify 2 times (simplify, "
                           "fold, cse, simplify, dce)"),
            ("cse#2", "--after cse#2: the pipeline runs cse once (simplify, fold, cse, "
                      "simplify, dce)"),
            ("simplify#0", "--after simplify#0: expected simplify#K, K from 1 (the K-th run "
                           "of simplify)")):
        assert main(["dump", "mlp", "--grad", "--after", after]) == 2
        assert capsys.readouterr().err == f"graphc: error: {message}\n"
    # --diff, which took NAME#2 already, says the same of a bad K (before: int()'s ValueError)
    assert main(["dump", "mlp", "--grad", "--diff", "input", "simplify#x"]) == 2
    assert capsys.readouterr().err == ("graphc: error: --diff simplify#x: expected "
                                       "simplify#K, K from 1 (the K-th run of simplify)\n")


# ---- Ctrl-C while the command is still importing graphc ---------------------------------------
def test_ctrl_c_while_graphc_is_imported_exits_quietly_with_130(monkeypatch, capsys):
    """The console script imported graphc.cli (numpy, scipy, numba: a second or more)
    before main()'s handler, so a Ctrl-C then printed a KeyboardInterrupt traceback through
    the imports and ended by the signal. The entry point, a module outside the package,
    imports the CLI inside its own handler: one line, status 130, as during a command."""
    import builtins
    import tomllib
    from pathlib import Path

    import graphc_entry
    root = Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)
    assert project["project"]["scripts"]["graphc"] == "graphc_entry:main"
    assert "graphc_entry" in project["tool"]["setuptools"]["py-modules"]
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "graphc.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert graphc_entry.main() == 130
    assert capsys.readouterr().err == "graphc: interrupted\n"
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setattr("sys.argv", ["graphc", "dump", "mlp", "--stats"])
    assert graphc_entry.main() == 0  # and it runs the command
    assert capsys.readouterr().out.startswith("graph mlp_loss: ")
