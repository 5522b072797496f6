"""Session 37's fixes of the IR loaders, the command line and the save/load paths; each test
failed before its fix."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from graphc import checkpoint
from graphc.cli import main
from graphc.data import CharData
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import Trainer, TrainConfig
from ir.errors import GraphcError
from ir.graph import Graph
from ir.ops.registry import REGISTRY
from ir.parser import parse
from ir.serialize import loads
from ir.types import TensorType
from ir.verify import verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "1", "--no-progress",
        "--sample-tokens", "0"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    return str(path)


# every op of fixed arity with each wrong operand count just around it
_WRONG_ARITIES = [(name, op.arity, count) for name, op in sorted(REGISTRY.items())
                  if op.arity is not None and name not in ("input", "constant")
                  for count in (op.arity - 1, op.arity + 1) if count >= 0]


def _noun(arity):
    return "operand" if arity == 1 else "operands"


@pytest.mark.parametrize("name, arity, count", _WRONG_ARITIES)
def test_ir_loaders_and_verifier_refuse_a_wrong_operand_count(name, arity, count):
    """The text and JSON IR loaders and the verifier checked no operand count (only tracing
    did): `add %0, %1, %1` loaded, and the interpreter then passed the third operand to numpy
    as out=, overwriting the caller's input. Now all three refuse it in one line."""
    message = f"{name} takes {arity} {_noun(arity)}, got {count}"
    operands = ", ".join(["%0"] * count)
    text = f"graph g(%0:f32[4] x) -> (%1)\n  %1:f32[4] = {name} {operands}\n  return %1\n"
    with pytest.raises(GraphcError) as exc:
        parse(text)
    assert str(exc.value) == f"IR line 2, column 15: {message}"

    document = {"format": "graphc-ir", "version": 1, "name": "g",
                "inputs": [{"id": 0, "name": "x", "kind": "input", "type": "f32[4]"}],
                "nodes": [{"id": 1, "op": name, "inputs": [0] * count, "attrs": {},
                           "type": "f32[4]", "locs": [], "scope": ""}],
                "outputs": [1]}
    with pytest.raises(GraphcError, match=f"nodes\\[0\\].inputs: {message}$"):
        loads(json.dumps(document))

    graph = Graph("g")
    x = graph.input("x", (4,))
    graph.set_outputs([graph.add_node(name, [x] * count, {}, TensorType((4,), "float32"))])
    with pytest.raises(GraphcError) as exc:
        verify(graph)
    assert exc.value.message == f"node 1 ({name}): {message}"


# (session 40) one bad node of each kind: (op, operands, attrs, declared type, the part
# check_node names, and the words of the IR text reader, the JSON reader and the verifier)
_F4 = TensorType((4,), "float32")
_BAD_NODES = [
    ("exp", "xx", {}, _F4, "operands",
     "IR line 2, column 15: exp takes 1 operand, got 2",
     "IR JSON: $.nodes[0].inputs: exp takes 1 operand, got 2",
     "node 2 (exp): exp takes 1 operand, got 2"),
    ("sum", "x", {"axes": (0,), "keepdims": 0}, TensorType((), "float32"), "attribute",
     "IR line 2, column 33: sum: attribute keepdims=0 must be true or false",
     "IR JSON: $.nodes[0].attrs.keepdims: sum: attribute keepdims=0 must be true or false",
     "node 2 (sum): sum: attribute keepdims=0 must be true or false"),
    ("add", "xy", {}, _F4, "rule",
     "IR line 2, column 15: ill-typed add: shapes cannot be broadcast together",
     "IR JSON: $.nodes[0]: ill-typed add: shapes cannot be broadcast together",
     "node 2 (add): ill-typed: shapes cannot be broadcast together"),
    # (session 41: an attribute the op does not take is an attribute problem, naming the op,
    # not its rule's function: "unary_float() got an unexpected keyword argument 'foo'")
    ("exp", "x", {"foo": 1}, _F4, "attribute",
     "IR line 2, column 23: exp: unknown attribute foo (exp takes no attributes)",
     "IR JSON: $.nodes[0].attrs.foo: exp: unknown attribute foo (exp takes no attributes)",
     "node 2 (exp): exp: unknown attribute foo (exp takes no attributes)"),
    ("exp", "x", {}, TensorType((3,), "float32"), "type",
     "IR line 2, column 1: exp gives f32[4], but the line says f32[3]",
     "IR JSON: $.nodes[0].type: exp gives f32[4], not f32[3]",
     "node 2 (exp): type f32[3] but its operands give f32[4]"),
]


@pytest.mark.parametrize("op, operands, attrs, declared, part, text, document, verified",
                         _BAD_NODES)
def test_ir_readers_and_verifier_check_a_node_once(op, operands, attrs, declared, part,
                                                     text, document, verified):
    """The IR text reader, the JSON reader and the verifier each checked a node's operand
    count, attribute kinds and type rule (three copies); ir.verify.check_node is that check
    now, and each names where the problem is in its own terms, in the words it had."""
    from ir.printer import format_graph
    from ir.serialize import from_json, to_json
    from ir.verify import check_node

    graph = Graph("g")
    inputs = {"x": graph.input("x", (4,)), "y": graph.input("y", (3,))}
    node = graph.add_node(op, [inputs[k] for k in operands], attrs, declared)
    graph.set_outputs([node])
    problem = check_node(REGISTRY[op], [i.type for i in node.inputs], attrs, declared)
    assert problem.part == part
    for read, words in ((lambda: parse(format_graph(graph)), text),
                        (lambda: from_json(to_json(graph)), document),
                        (lambda: verify(graph), verified)):
        with pytest.raises(GraphcError) as exc:
            read()
        assert exc.value.message == words
    assert check_node(REGISTRY["exp"], [_F4], {}, _F4) is None  # (a good node)


def _tiny_trainer():
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    return Trainer(GPT(cfg), data, TrainConfig(steps=2, eval_iters=1))


def test_an_output_name_of_a_directory_or_under_a_file_is_refused_up_front(
        tmp_path, monkeypatch, capsys):
    """`-o out.ir/`, `--json out.json/` (after every measurement) and Trainer.save("ck.npz/")
    failed with the raw errno of a temporary file's rename; Trainer.save("d.txt/ck.npz"),
    d.txt a file, with os.makedirs' FileExistsError; Trainer.save("") wrote its temporary
    into the current directory's parent. Now each is one GraphcError line naming the path
    (exit 2 from the command line), before any work."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "d.txt").write_text("not a directory")
    assert main(["dump", "mlp", "-o", "out.ir/"]) == 2
    assert capsys.readouterr().err == ("graphc: error: -o 'out.ir/' ends in '/', a "
                                       "directory's name; give the name of a file to write\n")
    for flag in ("--json", "--plot"):
        assert main(["bench", "--workloads", "mlp-train", "--steps", "1", "--warmup", "0",
                     flag, "out/"]) == 2
        captured = capsys.readouterr()
        assert "GEMM" not in captured.out  # refused before measuring
        assert captured.err == (f"graphc: error: {flag} 'out/' ends in '/', a directory's "
                                "name; give the name of a file to write\n")

    trainer = _tiny_trainer()
    refusals = {"": "checkpoint: expected a path, got an empty string",
                "ck.npz/": "checkpoint 'ck.npz/' ends in '/', a directory's name; give the "
                           "name of a file to write",
                "d.txt/ck.npz": f"cannot write checkpoint 'd.txt/ck.npz': "
                                f"{work / 'd.txt'} is not a directory"}
    for path, message in refusals.items():
        with pytest.raises(GraphcError) as exc:
            trainer.save(path)
        assert exc.value.message == message
    assert os.listdir(work) == ["d.txt"]
    assert os.listdir(tmp_path) == ["work"]  # no temporary left above it


def _train_until_the_reader_goes(arguments, last_line):
    """Run `python ARGUMENTS` with its stdout a pipe closed, as `head` closes it, once a
    line starting with `last_line` was read (None: at once); its stderr, once it ended
    with status 128 + SIGPIPE (asserted)."""
    proc = subprocess.Popen([sys.executable, *arguments], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if last_line is not None:
            for line in proc.stdout:
                if line.startswith(last_line):
                    break
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGPIPE, stderr
    return stderr


@pytest.mark.parametrize("progress", [False, True])
def test_a_reader_that_goes_away_stops_training_after_saving(tmp_path, text_file, progress):
    """`graphc train | head -4`: the evaluation line was printed before the checkpoint was
    saved, and its BrokenPipeError ended the run ("graphc: error: [Errno 32] Broken pipe",
    status 2), losing the steps since the last save; with the progress bar on, the bar's
    own write did the same. Now the step is saved first, and the run stops at the next step
    boundary as at a SIGINT: one line on stderr, status 128 + SIGPIPE."""
    out = tmp_path / "run"
    options = [o for o in TINY if progress is False or o != "--no-progress"]
    stderr = _train_until_the_reader_goes(
        ["-u", "-m", "graphc.cli", "train", *options, "--steps", "200", "--eval-every", "2",
         "--data", text_file, "--out", str(out)], "step 2:")
    *_, last = stderr.strip().splitlines()
    assert last.startswith("interrupted by SIGPIPE: saved step "), stderr
    step = int(last.split("saved step ")[1].split()[0])
    # the step whose line (or bar) found the reader gone, not the one before it
    assert 2 <= step < 200 and (progress or step > 2 and step % 2 == 0)
    assert checkpoint.load(str(out / "checkpoint.npz"))[1]["step"] == step


@pytest.mark.parametrize("when", ["before training", "after training"])
def test_a_reader_gone_before_or_after_training_ends_one_process_as_ranks_do(
        tmp_path, text_file, when):
    """`graphc train | head -3` in one process: the reader gone before training (the compile
    line) or after it (the validation line, the sample) made the line's BrokenPipeError end
    the run, "graphc: error: [Errno 32] Broken pipe", status 2: nothing saved before
    training, no sample.txt after it. As under `--ranks N`, one process now stops at its
    first step boundary after saving (before training), or does the rest with its output
    discarded and ends quietly (after it); status 128 + SIGPIPE either way."""
    out = tmp_path / "run"
    options = [*TINY[:-1], "40"]  # --sample-tokens 40, each printed
    stderr = _train_until_the_reader_goes(
        ["-m", "graphc.cli", "train", *options, "--steps", "4", "--eval-every", "4", "--data",
         text_file, "--out", str(out)], "step 4:" if when == "after training" else None)
    ckpt = out / "checkpoint.npz"
    if when == "after training":
        assert stderr == ""
        assert checkpoint.load(str(ckpt))[1]["step"] == 4
        assert len((out / "sample.txt").read_text(encoding="utf-8")) >= 40
    else:
        assert stderr.splitlines() == [f"interrupted by SIGPIPE: saved step 0 to {ckpt}; to "
                                       "continue, run the same command with --resume"], stderr
        assert checkpoint.load(str(ckpt))[1]["step"] == 0


class _FullAfter:
    """A stdout whose writes fail as a full disk's after its first `writes` ones."""

    def __init__(self, writes):
        self.writes, self.text = writes, ""

    def write(self, text):
        self.writes -= 1
        if self.writes < 0:
            raise OSError(28, "No space left on device")
        self.text += text
        return len(text)

    def flush(self):
        if self.writes < 0:
            raise OSError(28, "No space left on device")


@pytest.mark.parametrize("progress", [False, True])
def test_a_stdout_write_that_fails_stops_training_after_saving(tmp_path, monkeypatch,
                                                               progress):
    """`graphc train > file` on a disk that fills up: the failed write of an evaluation line
    (or of the bar) ended the run with "cannot write to stdout: No space left on device",
    losing the steps since the last save. Now the run stops at the next step boundary after
    saving, as for a reader gone, and the one line says where it is and how to go on."""
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    trainer = Trainer(GPT(cfg), data, TrainConfig(steps=40, eval_every=3, eval_iters=1))
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "stdout", _FullAfter(3 if not progress else 20))
    with pytest.raises(GraphcError) as info:
        trainer.fit(str(out), progress=progress)
    step = trainer.step
    assert 0 < step < 40
    ckpt = str(out / "checkpoint.npz")
    assert str(info.value).splitlines()[0] == (
        f"cannot write to stdout: No space left on device: training stopped at step {step}, "
        f"saved in {ckpt}; to continue, trainer.fit({str(out)!r}) again")
    assert checkpoint.load(ckpt)[1]["step"] == step
    # without a directory the trainer keeps its state, and the line says so
    monkeypatch.setattr(sys, "stdout", _FullAfter(0))
    again = Trainer(GPT(cfg), data, TrainConfig(steps=40, eval_every=3, eval_iters=1))
    with pytest.raises(GraphcError, match="training stopped at step 0 .fit.. was given no "):
        again.fit(None, progress=False)


_FULL_ON_RANK_0 = """
import os, sys
class Full:  # a disk that fills up at the first validation line; /dev/null takes it all
    def __init__(self, real):
        self.real, self.full = real, False
    def _check(self):
        if self.full and not os.path.samefile("/proc/self/fd/1", "/dev/null"):
            raise OSError(28, "No space left on device")
    def write(self, text):
        self.full = self.full or "val loss" in text
        self._check()
        return self.real.write(text)
    def flush(self):
        self._check()
        self.real.flush()
    def __getattr__(self, name):
        return getattr(self.real, name)
if os.environ.get("OMPI_COMM_WORLD_RANK", "0") == "0":
    sys.stdout = Full(sys.stdout)
from graphc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_stdout_write_that_fails_on_rank_0_stops_every_rank_with_one_line(tmp_path,
                                                                            text_file):
    """Review (s47): under `graphc train --ranks 2`, rank 0's stdout alone fails, and fit()
    raised the stop's GraphcError on rank 0 alone after the last agreement: that rank ended
    with status 2 (leave_now), the others with 0, and mpiexec printed its banner ('prterun
    detected that one or more processes exited with non-zero status') after the line. Now
    the failure is every rank's (fail_together): the one line, status 2, no banner."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import graphc.distributed as dist
    from launch import rank_env
    script = tmp_path / "full_on_rank_0.py"
    script.write_text(_FULL_ON_RANK_0, encoding="utf-8")
    out = tmp_path / "run"
    done = dist.launch(2, [str(script), "train", *TINY, "--steps", "6", "--eval-every", "2",
                           "--data", text_file, "--out", str(out)],
                       env=rank_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=240)
    ckpt = out / "checkpoint.npz"
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"graphc: error: cannot write to stdout: No space left on device: training stopped "
        f"at step 0, saved in {ckpt}; to continue, run the same command with --resume"], \
        done.stderr
    assert checkpoint.load(str(ckpt))[1]["step"] == 0


def test_a_log_of_ones_own_raising_broken_pipe_reaches_the_caller():
    """fit() took any BrokenPipeError of its `log` for stdout's reader gone and stopped
    without a word (a notebook user saw only a return value of 13); now only its own
    stdout's is, and a log function's own error reaches the caller."""
    trainer = _tiny_trainer()

    def log(line):
        raise BrokenPipeError("my socket closed")
    with pytest.raises(BrokenPipeError, match="my socket closed"):
        trainer.fit(None, progress=False, log=log)


def test_the_python_api_refuses_empty_and_non_path_names_as_the_cli_does(tmp_path,
                                                                         monkeypatch):
    """train_gpt(data="", out="") trained on the bundled text into runs/tiny, Trainer.fit("")
    trained and saved nothing, train_gpt(out=123) and fit(5) failed with a raw TypeError,
    where the command line refuses an empty path. Now each is one GraphcError line, before
    any work."""
    from graphc.train import train_gpt
    monkeypatch.chdir(tmp_path)
    refusals = [(dict(data=""), "data: expected a path, got an empty string"),
                (dict(out=""), "out: expected a path, got an empty string"),
                (dict(out=123), "out must be a directory name, got 123"),
                (dict(data=5), "data must be a file name, got 5")]
    for kwargs, message in refusals:
        with pytest.raises(GraphcError) as exc:
            train_gpt("tiny", sample_tokens=0, progress=False, **kwargs)
        assert exc.value.message == message
    trainer = _tiny_trainer()
    for out, message in (("", "Trainer.fit: out: expected a path, got an empty string"),
                         (5, "Trainer.fit: out must be a directory name, got 5")):
        with pytest.raises(GraphcError) as exc:
            trainer.fit(out, progress=False, log=lambda line: None)
        assert exc.value.message == message
    assert trainer.step == 0 and os.listdir(tmp_path) == []


def test_trainer_resume_takes_the_directory_fit_wrote(tmp_path):
    """Trainer.resume(DIR) said "no checkpoint at DIR" for fit(DIR)'s directory, which
    `graphc train --resume` and `graphc sample --checkpoint` accept. Now it reads
    DIR/checkpoint.npz."""
    trainer = _tiny_trainer()
    assert trainer.fit(str(tmp_path / "run"), progress=False, log=lambda line: None) == 0
    from graphc.trainer import Trainer as GeneralTrainer
    for resume in (Trainer.resume, GeneralTrainer.resume):  # the GPT's and gc.Trainer's
        resumed = _tiny_trainer()
        resume(resumed, str(tmp_path / "run"))
        assert resumed.step == 2
        for name, a in trainer.params.items():
            np.testing.assert_array_equal(resumed.params[name], a)


# A run that sends itself SIGTERM as the phase begins (deterministic: no sleeping against the
# time a compile or an evaluation takes): "compile" as the training step is built,
# "evaluate" as the first evaluation starts
_SIGNALLED_RUN = """
import os, signal, sys
import graphc.train as train
from graphc.cli import main

def signalled(function):
    def call(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return function(*args, **kwargs)
    return call

if sys.argv[1] == "compile":
    train.Trainer.__init__ = signalled(train.Trainer.__init__)
else:
    train.Trainer.evaluate = signalled(train.Trainer.evaluate)
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("phase, saved", [("compile", None), ("evaluate", 0)])
def test_sigterm_before_the_first_step_stops_with_one_line(tmp_path, text_file, phase, saved):
    """A SIGTERM while the training step compiled or during the first evaluation killed the
    process without a word (SIGINT said only `graphc: interrupted`). Now one line on stderr
    and status 143: while compiling nothing was saved; in the first evaluation the run
    stops at step 0 after saving, as during training."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_RUN, phase, "train", "--config", "tiny", "--steps",
         "2", "--eval-iters", "2", "--sample-tokens", "0", "--no-progress", "--data",
         text_file, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    if saved is None:
        assert proc.stderr == "interrupted by SIGTERM before training: nothing was saved\n"
        assert not (out / "checkpoint.npz").exists()
    else:
        assert proc.stderr == (f"interrupted by SIGTERM: saved step 0 to "
                               f"{out / 'checkpoint.npz'}; to continue, run the same command "
                               "with --resume\n")
        assert checkpoint.load(str(out / "checkpoint.npz"))[1]["step"] == 0


def test_paths_of_pathlib_are_written_as_before(tmp_path):
    """This session's check of output names called str methods on the path, so
    checkpoint.save, Trainer.save and the loss plot failed on a pathlib.Path with a raw
    AttributeError; they write it again."""
    from graphc.trainer import plot_losses
    checkpoint.save(tmp_path / "c.npz", {"w": np.ones(2)}, {})
    plot_losses([(1, 2.0), (2, 1.0)], [], tmp_path / "l.png")
    trainer = _tiny_trainer()
    trainer.save(tmp_path / "ck.npz")
    assert sorted(os.listdir(tmp_path)) == ["c.npz", "ck.npz", "l.png"]


def test_fit_leaves_sys_stdout_as_it_found_it_or_as_its_log_set_it(monkeypatch):
    """The stdout fit() watches for a reader gone broke runs without one (sys.stdout None:
    AttributeError), replaced a stdout a log had set with the old one, and crashed on a
    stream without a file descriptor whose reader went away (io.UnsupportedOperation);
    now fit runs with none, a log's own stdout stays, and such a stream stops the run."""
    import io
    monkeypatch.setattr(sys, "stdout", None)
    assert _tiny_trainer().fit(None, progress=False) == 0
    assert sys.stdout is None
    replaced = io.StringIO()

    def log(line):
        sys.stdout = replaced
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert _tiny_trainer().fit(None, progress=False, log=log) == 0
    assert sys.stdout is replaced

    class Gone(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(sys, "stdout", Gone())
    trainer = _tiny_trainer()
    assert trainer.fit(None, progress=False) == signal.SIGPIPE
    assert trainer.step == 0 and isinstance(sys.stdout, Gone)
