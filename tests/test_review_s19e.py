"""Session 19e: a hostile sweep of the `graphc` command line. Each bad input is one
`graphc: error:` line and exit status 2, and leaves the user's files as they were."""
import os
import stat

import pytest

from graphc.cli import main


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("graphc: error: ") and "Traceback" not in err[0]
    return err[0]


def test_dump_output_to_a_fifo_writes_into_it_instead_of_replacing_it(tmp_path, capsys):
    # -o /dev/stdout, /dev/null or a shell's >(...) are not regular files: renaming a
    # temporary file over them replaced the device (as root, /dev/null itself)
    assert main(["dump", "mlp"]) == 0
    printed = capsys.readouterr().out
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so writing never waits
    try:
        assert main(["dump", "mlp", "-o", str(fifo)]) == 0
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received == printed and received.startswith("graph mlp_loss(")
    assert sorted(os.listdir(tmp_path)) == ["pipe"]  # no temporary file left behind


def test_dump_output_to_a_directory_is_one_line(tmp_path, capsys):
    assert main(["dump", "mlp", "-o", str(tmp_path)]) == 2
    assert f"-o '{tmp_path}' is a directory" in error_line(capsys)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("source, expected", [
    ("def build(:\n", "SyntaxError: invalid syntax at "),
    ("import numpy\nraise RuntimeError('no data here')\n",
     "RuntimeError: no data here at user_model.py:2"),
    ("from graphc.tracing import spec\n"
     "def loss(x):\n"
     "    return x + undefined_name\n"
     "def build():\n"
     "    return loss, spec((2, 3))\n",
     "NameError: name 'undefined_name' is not defined at user_model.py:3"),
    ("def build(x):\n    return x\n",
     "TypeError: build() missing 1 required positional argument: 'x'; FUNCTION is called "
     "with no arguments"),
])
def test_dump_of_a_users_function_that_fails_is_one_line_naming_their_line(
        tmp_path, capsys, monkeypatch, source, expected):
    # an exception in the user's file (importing it, calling FUNCTION, tracing what it
    # returns) came out as a Python traceback through graphc's loader, exit status 1
    (tmp_path / "user_model.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(["dump", "user_model.py:build"]) == 2
    line = error_line(capsys)
    assert line.startswith("graphc: error: dump user_model.py:build: ")
    assert expected in line
    if "SyntaxError" in expected:
        assert line.endswith("user_model.py:1")


FAST = ["--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--no-progress",
        "--sample-tokens", "0", "--steps", "2"]


@pytest.fixture
def text_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_JIT", "0")  # numpy kernels: each run takes about a second
    path = tmp_path / "text.txt"
    path.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    return str(path)


def test_a_seed_past_int64_trains_instead_of_a_traceback(tmp_path, text_file, capsys):
    # the step's dropout key seed * 1_000_003 + step did not fit an int64: OverflowError
    from graphc import checkpoint
    from graphc.trainer import Trainer
    seed = 10**20
    # (with a sample at the end: its sampler refused the seed once training was done)
    assert main(["train", *FAST, "--dropout", "0.1", "--seed", str(seed), "--data", text_file,
                 "--out", str(tmp_path / "run"), "--sample-tokens", "4"]) == 0
    assert len((tmp_path / "run" / "sample.txt").read_text(encoding="utf-8")) >= 4
    _, meta = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))
    assert meta["train"]["seed"] == seed and meta["step"] == 2
    # a seed that fits keeps its key; a larger one wraps modulo 2**63
    from graphc.trainer import _Batches
    trainer = Trainer.__new__(Trainer)
    trainer.dist, trainer.train_batches = None, _Batches([], "train_batches")
    trainer.train_batches.position = 5  # the key counts the batches drawn (at step 5)
    for seed in (1337, 9 * 10**12, 10**20):
        trainer.seed = seed
        assert int(trainer._key()) == (seed * 1_000_003 + 5) % 2**63
    trainer.seed = 1337
    assert int(trainer._key()) == 1337 * 1_000_003 + 5


@pytest.mark.parametrize("batch, message", [
    ("-3", "--batch -3: a batch size must be at least 1"),  # was a symbolic name "-3"
    ("99999999999999999999", "--batch 99999999999999999999: a batch size must be at most"),
    ("1x", "--batch '1x': expected a batch size or a name"),  # was spec()'s, at <string>:1
    ("", "--batch '': expected a batch size or a name"),  # was no --batch: batch 32
    # expressions were taken: a batch of 0 past the size check, or a negative one (g7)
    ("0*b", "--batch '0*b': expected a batch size or a name for a symbolic batch dimension, "
            "such as 8 or batch, not an expression"),
    ("b-b", "not an expression"), ("1-b", "not an expression"),
])
def test_dump_bad_batch_is_one_line_naming_the_option(capsys, batch, message):
    assert main(["dump", "gpt", "--config", "tiny", "--batch", batch]) == 2
    assert message in error_line(capsys)


def test_dump_batch_sizes_and_names_that_are_good():
    from graphc.cli import build_parser
    from graphc.dump import _batch_argument
    parse = build_parser().parse_args
    assert _batch_argument(parse(["dump", "gpt", "--batch", "8"])) == 8
    assert _batch_argument(parse(["dump", "gpt", "--batch", "batch"])) == "batch"
    assert _batch_argument(parse(["dump", "gpt", "--batch", str(2**63 - 1)])) == 2**63 - 1


def test_a_diverging_run_reports_in_one_line_without_numpys_warnings(tmp_path, text_file,
                                                                     capsys, recwarn):
    # --lr 1e308 overflows at the first update: numpy's "overflow encountered" warnings from
    # the step plan came before the trainer's own one-line report (21 lines of stderr)
    out = tmp_path / "run"
    assert main(["train", *FAST, "--lr", "1e308", "--data", text_file, "--out", str(out)]) == 2
    line = error_line(capsys)
    assert "training diverged at step" in line and "Try a lower --lr" in line
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in recwarn]
    assert not (out / "checkpoint.npz").exists()


def _without_root_override():
    """The command prefix that runs the CLI without root's permission override (root
    writes into a read-only directory anyway), or None where that is not possible."""
    import shutil
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_read_only_out_is_refused_before_training_and_its_checkpoint_kept(tmp_path,
                                                                           text_file):
    # resuming into a read-only directory trained every step, then failed at the save with
    # "Permission denied: '.../.ckpt-....npz.tmp'" (the lock file was already there)
    import subprocess
    import sys
    prefix = _without_root_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: a read-only directory is writable")
    out = tmp_path / "run"
    assert main(["train", *FAST, "--data", text_file, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    os.chmod(out, 0o555)
    try:
        for target, extra in ((out, ["--resume"]), (out / "sub", [])):
            proc = subprocess.run(
                prefix + [sys.executable, "-m", "graphc.cli", "train", *FAST, "--steps", "4",
                          "--data", text_file, "--out", str(target), *extra],
                capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr == (f"graphc: error: --out {str(target)!r}: no permission to "
                                   f"write into {out}; pass a directory you can write into\n")
            assert "compiled the training step" not in proc.stdout  # refused before building
    finally:
        os.chmod(out, 0o755)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_out_inside_a_file_names_the_option(tmp_path, text_file, capsys):
    (tmp_path / "notes").write_text("mine")
    assert main(["train", *FAST, "--data", text_file, "--out", str(tmp_path / "notes" / "run")]) == 2
    assert error_line(capsys) == (f"graphc: error: --out {str(tmp_path / 'notes' / 'run')!r} is "
                                  f"inside {tmp_path / 'notes'}, a file; pass a directory for "
                                  "the checkpoint")
    assert (tmp_path / "notes").read_text() == "mine"


def test_a_data_file_that_is_a_pipe_or_a_device_is_named_as_such(tmp_path, text_file, capsys):
    # `--data <(zcat corpus.gz)`, /dev/null: "does not exist", though it does
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for data in (str(fifo), os.devnull):
        assert main(["train", *FAST, "--data", data, "--out", str(tmp_path / "run")]) == 2
        assert error_line(capsys) == (f"graphc: error: data file {data!r} is not a regular "
                                      "file (the text is read twice, for its vocabulary and "
                                      "for its tokens); save it to a file")
    assert not (tmp_path / "run").exists()


def test_an_unreadable_data_file_is_named_as_the_data_file(tmp_path, text_file):
    # "[Errno 13] Permission denied: 'text.txt'": which of the command's files, and what for
    import subprocess
    import sys
    prefix = _without_root_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: every file is readable")
    os.chmod(text_file, 0o000)
    proc = subprocess.run(
        prefix + [sys.executable, "-m", "graphc.cli", "train", *FAST, "--data", text_file,
                  "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 2
    assert proc.stderr == (f"graphc: error: cannot read data file {text_file!r}: "
                           "Permission denied\n")


def test_an_unreadable_checkpoint_is_not_called_corrupt(tmp_path, text_file):
    # "checkpoint X is corrupt or not a graphc checkpoint ([Errno 13] Permission denied...)"
    import subprocess
    import sys
    prefix = _without_root_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: every file is readable")
    out = tmp_path / "run"
    assert main(["train", *FAST, "--data", text_file, "--out", str(out)]) == 0
    ckpt = out / "checkpoint.npz"
    before = ckpt.read_bytes()
    os.chmod(ckpt, 0o000)
    for command in (["sample", "--checkpoint", str(out), "--tokens", "3"],
                    ["eval", "--checkpoint", str(out), "--data", text_file],
                    ["train", *FAST, "--steps", "3", "--resume", "--data", text_file,
                     "--out", str(out)]):
        proc = subprocess.run(prefix + [sys.executable, "-m", "graphc.cli", *command],
                              capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
        assert proc.returncode == 2
        assert proc.stderr == (f"graphc: error: cannot read checkpoint {str(ckpt)!r}: "
                               "Permission denied\n")
    os.chmod(ckpt, 0o600)
    assert ckpt.read_bytes() == before


def test_dump_O0_with_passes_is_a_conflict_not_a_silent_choice(capsys):
    # -O0 --passes cse printed the traced graph: the passes asked for never ran
    assert main(["dump", "mlp", "--grad", "-O0"]) == 0
    traced = capsys.readouterr().out
    assert main(["dump", "mlp", "--grad", "--passes", "cse"]) == 0
    assert capsys.readouterr().out != traced  # cse changes the graph: the conflict is real
    assert main(["dump", "mlp", "--grad", "-O0", "--passes", "cse"]) == 2
    assert error_line(capsys) == ("graphc: error: -O0 and --passes 'cse' conflict: -O0 runs no "
                                  "passes; give one of them")


@pytest.mark.parametrize("flag", ["--workloads", "--contenders"])
@pytest.mark.parametrize("value", ["", ", ,"])
def test_bench_with_nothing_to_measure_is_one_line(capsys, flag, value):
    # an empty list measured nothing, printed an empty table and exited 0
    assert main(["bench", "--steps", "1", "--warmup", "0", flag, value]) == 2
    assert error_line(capsys).startswith(f"graphc: error: {flag} {value!r} names none; "
                                         "choose from ")


def test_a_prompt_outside_the_vocabulary_names_the_option(tmp_path, text_file, capsys):
    # "characters not in the vocabulary: 'QZ'": which input held them was left to guess
    out = str(tmp_path / "run")
    assert main(["train", *FAST, "--data", text_file, "--out", out]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", out, "--prompt", "to beQZ", "--tokens", "2"]) == 2
    assert error_line(capsys) == ("graphc: error: --prompt: characters not in the vocabulary: "
                                  "'QZ' (the checkpoint's)")


@pytest.mark.parametrize("source", ["checkpoint", "model"])
def test_a_prompt_of_bytes_that_are_not_utf8_is_one_line(tmp_path, text_file, capsys, source):
    # `--prompt $'to \xff'`: Python hands over the byte as the surrogate '\udcff'; the GPT-2
    # tokenizer raised "TypeError: TextInputSequence must be str" (a traceback), a
    # checkpoint said "characters not in the vocabulary: '\udcff'"
    if source == "model":
        pytest.importorskip("tokenizers",
                            reason="tokenizers (a graphc dependency) is not installed")
        from test_gpt2 import write_directory
        where = str(tmp_path / "gpt2")
        write_directory(where)
    else:
        where = str(tmp_path / "run")
        assert main(["train", *FAST, "--data", text_file, "--out", where]) == 0
        capsys.readouterr()
    assert main(["sample", f"--{source}", where, "--prompt", "to \udcff", "--tokens", "2"]) == 2
    assert error_line(capsys) == ("graphc: error: --prompt is not UTF-8 text (byte 0xff at "
                                  "character 3)")


@pytest.mark.parametrize("options, message", [
    (["--diff", "input", "cse", "--format", "png"],
     "--format png: --diff prints text; --format applies to graphs"),
    (["--stats", "--format", "svg"], "--format svg: --stats prints text; --format applies"),
    (["--diff", "input", "cse", "--stats"], "--diff and --stats conflict"),
    (["--diff", "input", "dce", "--after", "cse"], "--diff and --after cse conflict"),
    # (the budget was not applied: the plain diff, exit 0, where without --diff it cannot
    # be met, exit 2; and the sizes were not bound)
    (["--diff", "input", "dce", "--memory-limit", "100KB"],
     "--diff and --memory-limit conflict: --diff compares two stages of the pipeline"),
    (["--diff", "input", "dce", "--batch", "b", "--bind", "b=4"],
     "--diff and --bind b=4 conflict"),
    (["--diff", "input", "dce", "--full"], "--diff and --full conflict"),
    (["--diff", "input", "dce", "--collapse"], "--diff and --collapse conflict"),
])
def test_dump_options_that_would_be_ignored_are_refused(tmp_path, capsys, options, message):
    # the second option was dropped without a word: `--diff ... --format png -o g.png`
    # wrote the diff's text into g.png
    out = tmp_path / "g.png"
    assert main(["dump", "mlp", "--grad", *options, "-o", str(out)]) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_min_lr_zero_is_a_schedule_not_an_error(tmp_path, text_file, capsys):
    # --min-lr 0 (nanoGPT's and gc.optim.cosine's own default: decay to zero) was refused,
    # "expected a positive number", though a checkpoint may hold it
    from graphc import checkpoint
    from graphc.train import TrainConfig, lr_at
    out = tmp_path / "run"
    assert main(["train", *FAST, "--lr", "0.01", "--min-lr", "0", "--warmup", "0",
                 "--data", text_file, "--out", str(out)]) == 0
    _, meta = checkpoint.load(str(out / "checkpoint.npz"))
    tc = TrainConfig.from_dict(meta["train"])
    assert tc.min_lr == 0.0
    assert [lr_at(s, tc) for s in (0, 1, 2)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-15)


def test_an_output_that_cannot_be_created_names_it_not_its_temporary_file(tmp_path, capsys):
    # "[Errno 2] No such file or directory: '.../missing/.g.txt.k2j4x9.tmp'"
    (tmp_path / "notes").write_text("mine")
    for target, why in ((tmp_path / "missing" / "g.txt", "No such file or directory"),
                        (tmp_path / "notes" / "g.txt", "Not a directory")):
        assert main(["dump", "mlp", "-o", str(target)]) == 2
        assert error_line(capsys) == f"graphc: error: cannot write {target}: {why}"
    assert sorted(os.listdir(tmp_path)) == ["notes"]
