"""`graphc train` and `graphc sample` end to end, including every bad input of the GPT issue:
each is one clear error line, a non-zero exit, and no checkpoint overwritten."""
import json
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from graphc import checkpoint
from graphc.cli import main

FAST = ["--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
        "--sample-tokens", "5"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    words = ["to be ", "or not ", "that is\n", "the question\n"]
    path.write_text("".join(np.random.default_rng(0).choice(words, 300)), encoding="utf-8")
    return str(path)


def train(tmp_path, text_file, *extra, out="run"):
    return main(["train", *FAST, "--data", text_file, "--out", str(tmp_path / out), *extra])


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("graphc: error: ")
    return err[0]


def test_train_writes_checkpoint_plot_and_sample(tmp_path, text_file, capsys):
    assert train(tmp_path, text_file, "--steps", "4", "--eval-every", "2") == 0
    out = tmp_path / "run"
    with open(out / "loss.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert len((out / "sample.txt").read_text(encoding="utf-8")) == 5
    arrays, meta = checkpoint.load(str(out / "checkpoint.npz"))
    assert meta["step"] == 4 and [s for s, _ in meta["val_history"]] == [0, 2, 4]
    assert "param/wte.weight" in arrays and "adam_v/ln_f.bias" in arrays
    assert "val loss" in capsys.readouterr().out


def test_resume_continues_bit_for_bit(tmp_path, text_file):
    schedule = ["--decay-steps", "6", "--eval-every", "3", "--warmup", "2"]
    assert train(tmp_path, text_file, "--steps", "6", *schedule, out="straight") == 0
    assert train(tmp_path, text_file, "--steps", "3", *schedule, out="split") == 0
    assert train(tmp_path, text_file, "--steps", "6", "--resume", *schedule, out="split") == 0
    a, meta_a = checkpoint.load(str(tmp_path / "straight" / "checkpoint.npz"))
    b, meta_b = checkpoint.load(str(tmp_path / "split" / "checkpoint.npz"))
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert meta_a["history"] == meta_b["history"]
    assert meta_a["rng"] == meta_b["rng"]


def test_a_resumed_run_with_no_steps_left_changes_no_file(tmp_path, text_file, capsys):
    """`graphc train --resume` on a checkpoint already at --steps trained nothing, and yet
    redrew OUT/loss.png and replaced OUT/sample.txt (new files, new mtimes): every file the
    run saved is now as it was, bytes, inode and mtime, and the line says so. A file not
    there is written (it replaces nothing)."""
    assert train(tmp_path, text_file, "--steps", "2") == 0
    run = tmp_path / "run"

    def files():  # (the lock file holds the pid of the run that holds OUT)
        return {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
                for p in sorted(run.iterdir()) if p.name != ".graphc.lock"}

    before = files()
    assert sorted(before) == ["checkpoint.npz", "loss.png", "sample.txt"]
    capsys.readouterr()
    assert train(tmp_path, text_file, "--steps", "2", "--resume") == 0
    assert files() == before
    assert (f"{run}/sample.txt is kept as it was, as no step was trained (graphc sample "
            f"--checkpoint {run} draws another)") in capsys.readouterr().out
    (run / "sample.txt").unlink()
    (run / "loss.png").unlink()
    assert train(tmp_path, text_file, "--steps", "1", "--resume") == 0
    assert len((run / "sample.txt").read_text()) == 5
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files()["checkpoint.npz"] == before["checkpoint.npz"]


def test_a_resumed_run_with_no_steps_left_replaces_an_earlier_runs_sample_and_plot(tmp_path,
                                                                                   text_file,
                                                                                   capsys):
    """Review of the keep-what-it-saved fix: the sample.txt and loss.png a no-step --resume
    kept may be an earlier run's, not the checkpoint's: `--steps 1`, then `--resume --steps 3
    --sample-tokens 0` (trains, draws no sample), then `--resume --steps 3` kept step 1's
    sample, saying it was kept as no step was trained, where it drew the sample of step 3;
    likewise a plot older than the checkpoint (a run stopped while it was drawn). One older
    than the checkpoint is written again."""
    run = tmp_path / "run"
    assert train(tmp_path, text_file, "--steps", "1", "--sample-tokens", "30") == 0
    step_1 = (run / "sample.txt").read_text()
    assert train(tmp_path, text_file, "--steps", "3", "--resume", "--sample-tokens", "0") == 0
    assert (run / "sample.txt").read_text() == step_1
    plot = run / "loss.png"
    ckpt = (run / "checkpoint.npz").stat()
    os.utime(plot, ns=(ckpt.st_atime_ns, ckpt.st_mtime_ns - 10 ** 9))  # (an older run's)
    inodes = plot.stat().st_ino, (run / "sample.txt").stat().st_ino
    capsys.readouterr()
    assert train(tmp_path, text_file, "--steps", "3", "--resume", "--sample-tokens", "30") == 0
    # (the tiny model's step-3 sample may read as step 1's did: the file is written again)
    assert "kept as it was" not in capsys.readouterr().out
    assert plot.stat().st_ino != inodes[0] and (run / "sample.txt").stat().st_ino != inodes[1]
    assert (run / "checkpoint.npz").stat().st_mtime_ns == ckpt.st_mtime_ns


def test_existing_checkpoint_is_not_overwritten_without_resume(tmp_path, text_file, capsys):
    assert train(tmp_path, text_file, "--steps", "2") == 0
    ckpt = tmp_path / "run" / "checkpoint.npz"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert train(tmp_path, text_file, "--steps", "2") == 2
    assert "already exists" in error_line(capsys)
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "is empty"),
    ("short text", "too short"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
])
def test_bad_data_files(tmp_path, capsys, content, message):
    path = tmp_path / "data.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert train(tmp_path, str(path), "--steps", "2") == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path, text_file, capsys):
    ckpt = tmp_path / "run" / "checkpoint.npz"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 this is not a zip file")
    assert train(tmp_path, text_file, "--steps", "2", "--resume") == 2
    assert "corrupt" in error_line(capsys)
    assert ckpt.read_bytes() == b"PK\x03\x04 this is not a zip file"


def test_mismatched_checkpoint_config_and_vocabulary(tmp_path, text_file, capsys):
    assert train(tmp_path, text_file, "--steps", "2") == 0
    ckpt = tmp_path / "run" / "checkpoint.npz"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert train(tmp_path, text_file, "--steps", "4", "--resume", "--n-embd", "32") == 2
    line = error_line(capsys)
    assert "n_embd: checkpoint 16 vs requested 32" in line
    assert f"{ckpt} was trained with another model configuration" in line  # names the file
    other = tmp_path / "other.txt"
    other.write_text(open(text_file).read() + "XYZ" * 40)
    assert train(tmp_path, str(other), "--steps", "4", "--resume") == 2
    assert "outside the checkpoint's vocabulary" in error_line(capsys)
    assert ckpt.read_bytes() == before


def test_a_resume_on_another_text_of_the_same_characters_is_refused(tmp_path, text_file,
                                                                    capsys):
    """(s51) A text changed between runs resumed silently when its characters fit the
    checkpoint's vocabulary (a shuffled or edited corpus: the data position and the val
    history then meant another text). The checkpoint records the text's SHA-256; a resume on
    another is refused in one line, nothing written, unless --allow-changed-settings; the
    same text saved with a BOM and CRLF line ends is the same text."""
    import hashlib
    assert train(tmp_path, text_file, "--steps", "2") == 0
    ckpt = tmp_path / "run" / "checkpoint.npz"
    text = open(text_file, encoding="utf-8").read()
    assert checkpoint.load(str(ckpt))[1]["text_sha256"] == \
        hashlib.sha256(text.encode("utf-8")).hexdigest()
    before = ckpt.read_bytes()
    capsys.readouterr()
    other = tmp_path / "other.txt"
    other.write_text(text[::-1], encoding="utf-8")  # (the same characters)
    assert train(tmp_path, str(other), "--steps", "3", "--resume") == 2
    line = error_line(capsys)
    assert f"{ckpt} was trained on another text (its SHA-256 " in line
    assert line.endswith("though its characters fit the vocabulary; resume on the text it "
                         "was trained on, or pass --allow-changed-settings to continue on "
                         "this one")
    assert ckpt.read_bytes() == before
    same = tmp_path / "same.txt"
    same.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert train(tmp_path, str(same), "--steps", "3", "--resume") == 0
    assert train(tmp_path, str(other), "--steps", "4", "--resume",
                 "--allow-changed-settings") == 0
    assert checkpoint.load(str(ckpt))[1]["text_sha256"] == \
        hashlib.sha256(text[::-1].encode("utf-8")).hexdigest()


def test_unknown_config_and_bad_options(tmp_path, text_file, capsys):
    assert main(["train", "--config", "huge", "--data", text_file,
                 "--out", str(tmp_path / "x")]) == 2
    assert "unknown config 'huge'" in error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--steps", "-3"])
    assert exc.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err
    assert main(["train", *FAST, "--n-head", "3", "--data", text_file,
                 "--out", str(tmp_path / "y")]) == 2
    assert "--n-embd (16) must be a multiple of --n-head (3)" in error_line(capsys)


def test_sample_from_checkpoint(tmp_path, text_file, capsys):
    assert train(tmp_path, text_file, "--steps", "2") == 0
    capsys.readouterr()
    run = str(tmp_path / "run")
    assert main(["sample", "--checkpoint", run, "--prompt", "to be", "--tokens", "20",
                 "--temperature", "0.5", "--top-k", "3"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("to be") and len(text) == len("to be") + 20
    assert main(["sample", "--checkpoint", run, "--prompt", "Q!"]) == 2
    assert "not in the vocabulary" in error_line(capsys)
    # a prompt with Windows line ends reads as the training text was read (universal
    # newlines); it was refused: "characters not in the vocabulary: '\\r'"
    greedy = ["--tokens", "6", "--temperature", "0"]
    assert main(["sample", "--checkpoint", run, "--prompt", "that is\r\nthe\rto", *greedy]) == 0
    crlf = capsys.readouterr().out
    assert main(["sample", "--checkpoint", run, "--prompt", "that is\nthe\nto", *greedy]) == 0
    assert crlf == capsys.readouterr().out and crlf.startswith("that is\nthe\nto")
    assert main(["sample", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in error_line(capsys)


def test_a_gpt2_directory_and_a_checkpoint_given_to_each_others_option(tmp_path, text_file,
                                                                      capsys):
    """--checkpoint GPT2DIR was "no checkpoint at 'gpt2/checkpoint.npz'", and --model RUN
    "model directory 'run' has no config.json": neither said which option takes it."""
    from test_gpt2 import write_directory
    assert train(tmp_path, text_file, "--steps", "1") == 0
    gpt2_dir, run = tmp_path / "gpt2", tmp_path / "run"
    write_directory(gpt2_dir)
    capsys.readouterr()
    for given in (gpt2_dir, gpt2_dir / "model.safetensors"):
        for command in (["sample", "--tokens", "2"], ["eval"]):
            assert main([*command, "--checkpoint", str(given)]) == 2
            assert error_line(capsys) == (
                f"graphc: error: --checkpoint {str(given)!r} is "
                f"{'in ' if given != gpt2_dir else ''}a Hugging Face GPT-2 directory, not a "
                f"graphc checkpoint: graphc sample takes {str(gpt2_dir)!r} as --model")
    for given in (run, run / "checkpoint.npz"):
        assert main(["sample", "--model", str(given), "--tokens", "2"]) == 2
        assert error_line(capsys) == (
            f"graphc: error: --model {str(given)!r} is a graphc checkpoint, not a Hugging "
            "Face GPT-2 directory: pass it as --checkpoint")
    # each where it belongs still loads; a damaged checkpoint keeps its own error, beside a
    # GPT-2 directory's files too
    assert main(["sample", "--model", str(gpt2_dir), "--prompt", "a", "--tokens", "2"]) == 0
    assert main(["sample", "--checkpoint", str(run), "--prompt", "to", "--tokens", "2"]) == 0
    capsys.readouterr()
    (gpt2_dir / "checkpoint.npz").write_bytes(b"damaged")
    assert main(["sample", "--checkpoint", str(gpt2_dir), "--tokens", "2"]) == 2
    assert "is corrupt or not a graphc checkpoint" in error_line(capsys)


def test_a_missing_or_dangling_checkpoint_in_a_gpt2_directory_keeps_its_own_error(tmp_path,
                                                                                  capsys):
    """Review of the wrong-option hint: --checkpoint gpt2/typo.npz (no such file) said it "is
    in a Hugging Face GPT-2 directory", and a checkpoint.npz there that is a dangling link
    said the directory is a GPT-2 one, hiding "a dangling symbolic link"."""
    from test_gpt2 import write_directory
    gpt2_dir = tmp_path / "gpt2"
    write_directory(gpt2_dir)
    capsys.readouterr()
    typo = gpt2_dir / "typo.npz"
    assert main(["sample", "--checkpoint", str(typo), "--tokens", "2"]) == 2
    assert error_line(capsys) == f"graphc: error: no checkpoint at {str(typo)!r}"
    os.symlink(tmp_path / "gone.npz", typo)
    for given in (typo, gpt2_dir):
        if given == gpt2_dir:
            os.symlink(tmp_path / "gone.npz", gpt2_dir / "checkpoint.npz")
        assert main(["eval", "--checkpoint", str(given)]) == 2
        assert "is a dangling symbolic link" in error_line(capsys)
    # a file of the directory's own is still told apart (the fix's case)
    os.remove(gpt2_dir / "checkpoint.npz")
    assert main(["sample", "--checkpoint", str(gpt2_dir / "config.json"), "--tokens", "2"]) == 2
    assert "is in a Hugging Face GPT-2 directory" in error_line(capsys)


def test_a_gpt2_directory_holding_a_checkpoint_too_keeps_its_own_error(tmp_path, capsys):
    """Review of the wrong-option hint: a GPT-2 directory that holds a graphc checkpoint.npz
    too, its config.json bad (n_head 5 of n_embd 24), was "--model 'gpt2' is a graphc
    checkpoint ... pass it as --checkpoint", hiding the config's own error."""
    from test_gpt2 import write_directory
    gpt2_dir = tmp_path / "gpt2"
    write_directory(gpt2_dir, config={"n_head": 5})
    checkpoint.save(str(gpt2_dir / "checkpoint.npz"), {}, {})
    capsys.readouterr()
    assert main(["sample", "--model", str(gpt2_dir), "--tokens", "2"]) == 2
    assert "must be a multiple of n_head (5)" in error_line(capsys)
    # the checkpoint file itself is still told apart
    assert main(["sample", "--model", str(gpt2_dir / "checkpoint.npz"), "--tokens", "2"]) == 2
    assert "is a graphc checkpoint, not a Hugging Face GPT-2 directory" in error_line(capsys)


def test_the_console_script_reports_errors_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "train", "--config", "nope",
                           "--out", str(tmp_path / "z")], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("graphc: error: unknown config 'nope'; choose one of tiny, "
                                   "small, medium, nanogpt-cpu")


def test_profile_prints_ops_and_slowest_kernels(capsys):
    assert main(["profile", "--config", "tiny", "--repeat", "1", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "GPT tiny training step" in out and "kernels" in out
    assert "numpy's BLAS: " in out.split("\n\n")[0]  # the products' rates depend on it
    by_op = out.split("\n\n")[1]
    assert "matmul" in by_op and "layer_norm" in by_op
    shares = [float(line.split()[-2].rstrip("%")) for line in by_op.splitlines()[2:]]
    assert 99.0 < sum(shares) < 101.0  # the by-op table accounts for the whole step
    assert "gpt.py:" in out  # the slowest kernels name the model's source lines


def test_the_profiles_op_table_names_each_op_whole_once():
    """The by-op table cut names to 48 characters: tiny's two fused AdamW updates (of
    matrices and of vectors) showed as two rows of one name. Each row is one op of the
    kernels' rows, whole, with their time and count."""
    import io
    from graphc.bench import profile_step
    out = io.StringIO()
    rows = profile_step("tiny", repeat=1, top=1, file=out)
    table = out.getvalue().split("\n\n")[1].splitlines()
    assert len(table[1]) == len(table[0]) and set(table[1]) == {"-"}
    printed = {}
    for line in table[2:]:
        op, ms, _, count = line.rsplit(None, 3)
        assert op not in printed, op
        printed[op] = (float(ms), int(count))
    assert sum(len(op) > 48 for op in printed) >= 2  # (the names this test is about)
    assert set(printed) == {r["op"] for r in rows}
    for op, (ms, count) in printed.items():
        mine = [r["ms"] for r in rows if r["op"] == op]
        assert count == len(mine) and ms == pytest.approx(sum(mine), abs=0.006)


def test_a_warm_profile_puts_each_ops_warm_time_beside_its_time_in_the_step(capsys):
    assert main(["profile", "--config", "tiny", "--repeat", "1", "--top", "5", "--warm"]) == 0
    out = capsys.readouterr().out
    by_op = out.split("\n\n")[1].splitlines()
    assert by_op[0].split()[-1] == "warm/step"
    matmul = next(line for line in by_op if line.startswith("matmul "))
    # warm over in-step time of the products: a ratio of two timings, each one wall-clock
    # measurement at --repeat 1, so only its presence and form are the code's (one
    # preemption on a loaded machine put it at 0.06; a longer one prints 0.00). Read as the
    # fifth column after the op (review r9: split()[-1] read the kernel count where the
    # ratio was left out, so a table with no warm/step column passed)
    fields = matmul.split()
    assert len(fields) == 5 and fields[3].isdigit(), matmul
    assert re.fullmatch(r"\d+\.\d\d", fields[4]) and math.isfinite(float(fields[4])), matmul
    assert "kernels run again right after themselves" in out


def test_eval_scores_every_validation_window(tmp_path, text_file, capsys):
    import re

    from graphc.data import CharData
    from graphc.train import build_eval_loss, split_loss
    from graphc.cli import _load_model
    from passes.manager import optimize
    from runtime.codegen import compile_graph

    assert train(tmp_path, text_file, "--steps", "3") == 0
    trained = re.search(r"whole split: ([0-9.]+) \(([0-9,]+) tokens",
                        capsys.readouterr().out)
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--data", text_file]) == 0
    printed = capsys.readouterr().out
    evaluated = re.search(r"validation loss ([0-9.]+) nats per token over the whole val split "
                          r"\(([0-9,]+) tokens", printed)
    assert evaluated.groups() == trained.groups()  # train's closing figure is the same score

    # the reference: every non-overlapping window of the split in one batch
    model, params, meta = _load_model(str(tmp_path / "run"))
    data = CharData.from_file(text_file, model.cfg.block_size, list(meta["vocab"]))
    T = model.cfg.block_size
    windows = (len(data.val) - 1) // T
    assert windows % model.cfg.batch_size != 0  # the uneven last batch is exercised
    offsets = (np.arange(windows) * T)[:, None] + np.arange(T)
    plan = compile_graph(optimize(build_eval_loss(model, windows)))
    feed = {"idx": data.val[offsets].astype(np.int64),
            "targets": data.val[offsets + 1].astype(np.int64), **params}
    expected = float(plan(*[feed[n.attrs["name"]] for n in plan.graph.inputs])[0])
    loss, tokens = split_loss(model, params, data)
    assert tokens == windows * T == int(evaluated.group(2).replace(",", ""))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(evaluated.group(1)) == pytest.approx(expected, abs=6e-5)


def test_nanogpt_cpu_config_is_nanogpts_recipe():
    from graphc.models.gpt import GPT, GPTConfig
    from graphc.train import TRAIN_DEFAULTS

    cfg = GPTConfig.named("nanogpt-cpu", vocab_size=65)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.batch_size,
            cfg.dropout, cfg.bias) == (4, 4, 128, 64, 12, 0.0, False)
    assert TRAIN_DEFAULTS["nanogpt-cpu"] == dict(steps=2000, lr=1e-3, min_lr=1e-4, warmup=100,
                                                 eval_every=250)
    model = GPT(cfg)
    assert not any(n.endswith(".bias") for n, _ in model.named_parameters())
    # per block: two LayerNorm weights, qkv, attention and MLP projections, no biases; then
    # wte, wpe and ln_f (nanoGPT prints 0.80M: its count leaves wpe out, 804,096 - 8,192)
    block = 2 * 128 + 128 * 384 + 128 * 128 + 2 * 128 * 512
    assert model.num_parameters() == 4 * block + 65 * 128 + 64 * 128 + 128 == 804_096


def test_sample_from_checkpoint_in_half_precision(tmp_path, text_file, capsys):
    from graphc.cli import _load_model
    assert train(tmp_path, text_file, "--steps", "2") == 0
    run = str(tmp_path / "run")
    model, params, _ = _load_model(run, "float16")
    assert model.cfg.dtype == "float16" and all(p.dtype == np.float16 for p in params.values())
    capsys.readouterr()
    assert main(["sample", "--checkpoint", run, "--prompt", "to be", "--tokens", "20",
                 "--temperature", "0", "--dtype", "bfloat16"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("to be") and len(text) == len("to be") + 20
    # a weight past float16's range is refused, not sampled from as Inf
    arrays, meta = checkpoint.load(os.path.join(run, "checkpoint.npz"))
    arrays["param/wte.weight"] = arrays["param/wte.weight"] + np.float32(1e6)
    big = str(tmp_path / "big.npz")
    checkpoint.save(big, arrays, meta)
    assert main(["sample", "--checkpoint", big, "--dtype", "float16"]) == 2
    assert "--dtype float16: wte.weight of" in error_line(capsys)


def _with_the_reader_gone(tmp_path, *arguments):
    """`python -m graphc.cli ARGUMENTS` with its stdout a pipe whose reader went away before
    anything was written (`| head -c 0`): (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "graphc.cli", *arguments], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__)))),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    try:
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_stdout_is_one_line_that_names_stdout(tmp_path, text_file):
    """`graphc sample > /dev/full` (or dump, eval, profile) ended with "graphc: error:
    [Errno 28] No space left on device", naming no file: now the line says it was stdout."""
    assert train(tmp_path, text_file, "--steps", "1") == 0
    for arguments in (["sample", "--checkpoint", "run", "--prompt", "to", "--tokens", "3"],
                      ["dump", "mlp"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "graphc.cli", *arguments],
                                  cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PYTHONPATH=os.path.dirname(
                                      os.path.dirname(os.path.abspath(__file__)))))
        assert (proc.returncode, proc.stderr) == (
            2, "graphc: error: [Errno 28] cannot write to stdout: No space left on device\n")


@pytest.mark.parametrize("fmt", ["text", "png"])
def test_dump_into_a_reader_that_went_away_ends_quietly_with_sigpipes_status(tmp_path, fmt):
    """`graphc dump gpt | head`: the write's BrokenPipeError was `graphc: error: [Errno 32]
    Broken pipe`, status 2 (png's bytes too); now quiet, 128 + SIGPIPE, as `graphc sample`."""
    status, stderr = _with_the_reader_gone(tmp_path, "dump", "mlp", "--format", fmt)
    assert (status, stderr) == (128 + signal.SIGPIPE, "")


def test_bench_into_a_reader_that_went_away_still_writes_its_json(tmp_path):
    """`graphc bench --json b.json | head -3`: the table's print failed the command after the
    measurements (status 2, `[Errno 32] Broken pipe`) and b.json was never written. Now the
    output is discarded, the JSON written, the status 128 + SIGPIPE."""
    status, stderr = _with_the_reader_gone(
        tmp_path, "bench", "--workloads", "mlp-train", "--contenders", "compiled", "--steps",
        "1", "--warmup", "0", "--json", "b.json")
    assert (status, stderr) == (128 + signal.SIGPIPE, "")
    report = json.loads((tmp_path / "b.json").read_text())
    assert [r["workload"] for r in report["results"]] == ["mlp-train"]


@pytest.mark.parametrize("arguments", [("dump", "mlp", "-o", "mlp.ir"), ("dump", "mlp"),
                                       ("dump", "mlp", "--format", "png")])
def test_a_printing_command_with_stdout_closed_is_not_a_traceback(tmp_path, arguments):
    """`graphc dump mlp -o mlp.ir >&-` (or eval, bench, profile with stdout closed: Python's
    sys.stdout is None) ended in a traceback, `'NoneType' object has no attribute 'flush'`,
    status 1, from the flush that notes a reader gone, where it did its work with status 0;
    `graphc dump mlp >&-` in `'NoneType' object has no attribute 'write'`. Now both end with
    status 0, their output discarded as print() discards it."""
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", *arguments], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))),
                          stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1),
                          timeout=120)
    assert (proc.returncode, proc.stderr.decode()) == (0, "")
    if "-o" in arguments:
        assert (tmp_path / "mlp.ir").read_text().startswith("graph mlp_loss(")


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_a_checkpoint_path_that_is_not_a_file_is_said_to_be_what_it_is(tmp_path, capsys,
                                                                      command):
    """`graphc eval --checkpoint /dev/null` said "no checkpoint at '/dev/null'", though the
    path is there: a device (or a FIFO, a link to nothing) is named as what it is. A path
    not there is as before."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    # a link to nothing, or to a loop of links, was "no checkpoint at" the link's path
    dangling, loop = str(tmp_path / "ckpt.npz"), str(tmp_path / "loop")
    os.symlink("moved/ckpt.npz", dangling)
    os.symlink("loop", loop)
    for path, says in (("/dev/null", "checkpoint '/dev/null' is a character device, not a "
                                     "checkpoint file"),
                       (fifo, f"checkpoint {fifo!r} is a FIFO, not a checkpoint file"),
                       (dangling, f"checkpoint {dangling!r} is a dangling symbolic link (to "
                                  "'moved/ckpt.npz'), not a checkpoint file"),
                       (loop, f"checkpoint {loop!r} is a symbolic link in a loop of links (to "
                              "'loop'), not a checkpoint file"),
                       (str(tmp_path / "nosuch"),
                        f"no checkpoint at {str(tmp_path / 'nosuch')!r}")):
        assert main([command, "--checkpoint", path]) == 2
        assert error_line(capsys) == f"graphc: error: {says}"


def test_resuming_from_a_dangling_checkpoint_link_says_so(tmp_path, text_file, capsys):
    """--out whose checkpoint.npz is a link to a file not there (moved, an unmounted disk):
    the --resume run named it "no checkpoint"; the link is left as it is."""
    run = tmp_path / "run"
    run.mkdir()
    os.symlink("/no/such/disk/checkpoint.npz", run / "checkpoint.npz")
    assert train(tmp_path, text_file, "--resume") == 2
    assert error_line(capsys) == (f"graphc: error: checkpoint '{run}/checkpoint.npz' is a "
                                  "dangling symbolic link (to '/no/such/disk/checkpoint.npz'), "
                                  "not a checkpoint file")
    assert os.readlink(run / "checkpoint.npz") == "/no/such/disk/checkpoint.npz"


@pytest.mark.parametrize("argv, helps", [
    (["train", "--nosuch"], "graphc train"), (["dump", "mlp", "--nosuch", "x"], "graphc dump"),
    (["eval", "--checkpoint", "c", "extra"], "graphc eval"), (["--nosuch", "train"], "graphc")])
def test_an_unknown_option_points_at_its_subcommands_help(capsys, argv, helps):
    """`graphc train --nosuch` said "(see graphc --help)", whose page lists no option of
    train: now its subcommand's help; one before the subcommand is graphc's own."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    extras = " ".join(a for a in argv if a not in ("train", "dump", "mlp", "eval",
                                                   "--checkpoint", "c"))
    assert capsys.readouterr().err == (f"graphc: error: unrecognized arguments: {extras} "
                                       f"(see {helps} --help)\n")


@pytest.mark.parametrize("argv, says", [
    (["train", "--memory-limit", "-5MB"],
     "argument --memory-limit: expected a positive, finite size, got '-5MB'"),
    (["train", "--memory-limit", "-1.5GiB"],
     "argument --memory-limit: expected a positive, finite size, got '-1.5GiB'"),
    (["train", "--lr", "-1e-3"], "argument --lr: expected a positive number, got -0.001"),
    (["train", "--lr", "-inf"], "argument --lr: expected a finite number, got '-inf'"),
    (["train", "--min-lr", "-NaN"], "argument --min-lr: expected a finite number, got '-NaN'"),
    (["train", "--steps", "-1_000"], "argument --steps: expected a positive number, got -1000"),
    (["train", "--steps", "-3"], "argument --steps: expected a positive number, got -3"),
    (["dump", "gpt", "--memory-limit", "-3kB"],
     "argument --memory-limit: expected a positive, finite size, got '-3kB'"),
    (["sample", "--checkpoint", "c", "--tokens", "-1e3"],
     "argument --tokens: expected a whole number, got '-1e3'"),
    (["bench", "--steps", "-2x"], "argument --steps: expected a whole number, got '-2x'"),
    (["train", "-5MB"], "unrecognized arguments: -5MB")])
def test_a_negative_value_is_refused_by_its_option_not_taken_for_an_option(capsys, argv,
                                                                           says):
    """argparse takes only `-5` and `-.5` for values: `--memory-limit -5MB` or `--lr -1e-3`
    said "expected one argument", as if the value were missing. Every option's value that
    starts with a dash and a digit, a dot, inf or nan is now its value, refused by the
    option's own check (one line, status 2)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"graphc: error: {says} (see graphc {argv[0]} --help)\n"


def test_a_sample_no_disk_could_hold_is_refused_before_training(tmp_path, text_file, capsys,
                                                                 monkeypatch):
    """`graphc train --sample-tokens 10**12` trained, then sampled for weeks into
    OUT/sample.txt until the disk was full: a character model has no stop token, so every
    token is written, each at least one byte. A count whose sample cannot fit in the space
    free is refused before anything is written; one that fits trains and samples."""
    import shutil
    out = tmp_path / "run"
    assert train(tmp_path, text_file, "--sample-tokens", str(10 ** 15)) == 2
    line = error_line(capsys)
    assert line.startswith(f"graphc: error: --sample-tokens 1,000,000,000,000,000 writes at "
                           f"least 909.49 TiB to {out}/sample.txt, but only ")
    assert line.endswith(f"is free on the file system of {tmp_path}; lower --sample-tokens "
                         "(0: no sample)")
    assert not out.exists()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=40))
    assert train(tmp_path, text_file, "--sample-tokens", "41", "--steps", "1") == 2
    assert "writes at least 41 B to" in error_line(capsys)
    assert not out.exists()
    assert train(tmp_path, text_file, "--sample-tokens", "40", "--steps", "1") == 0
    assert len((out / "sample.txt").read_text()) == 40


def test_a_negative_value_is_a_value_with_the_newer_argparse_too(monkeypatch):
    """Review: _Parser._parse_optional took argparse's (None, ARG, None) for "no such option",
    but Python 3.12.7 and 3.13.1 on (which requires-python allows) give a list of them,
    [(None, ARG, None, None)]: `found[0]` was a tuple, never None, and `--lr -1e-3` said
    "expected one argument" there again. (argparse's own loop of this Python cannot take the
    list form, so the override is asked alone.)"""
    import argparse

    from graphc.cli import _Parser
    parser = _Parser(prog="graphc")
    parser.add_argument("--lr")
    older = argparse.ArgumentParser._parse_optional

    def newer(self, arg_string):
        found = older(self, arg_string)
        return found if found is None else [(*found, None)]
    monkeypatch.setattr(argparse.ArgumentParser, "_parse_optional", newer)
    for value in ("-5MB", "-1e-3", "-inf", "-1_000", "-5"):
        assert parser._parse_optional(value) is None, value
    assert parser._parse_optional("--nosuch") == [(None, "--nosuch", None, None)]
    assert parser._parse_optional("--lr")[0][1] == "--lr"


def test_sample_with_stdout_closed_is_not_a_traceback(tmp_path, text_file):
    """Review of the stdout-closed fix (eval, bench, profile, dump): `graphc sample >&-`
    (sys.stdout None) ended in a traceback, 'NoneType' object has no attribute 'write',
    status 1; its text is discarded as print() discards it, status 0."""
    assert train(tmp_path, text_file, "--steps", "2") == 0
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "sample", "--checkpoint",
                           str(tmp_path / "run"), "--tokens", "5"], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))),
                          stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1),
                          timeout=120)
    assert (proc.returncode, proc.stderr.decode()) == (0, "")
