"""Session 35's fixes of command-line and file trust problems found by review; each test
failed before its fix."""
import contextlib
import io
import json
import shlex
import shutil
import zipfile

import numpy as np
import pytest

from graphc.cli import main
from checkpoint_files import rewrite_header
from test_review_s30_cli import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small run on a text of its own, in directories whose names need quoting in a
    shell: (its --out, its --data, what it printed)."""
    root = tmp_path_factory.mktemp("s35 cli")
    data = root / "my text.txt"
    data.write_text("to be or not to be, that is the question\n" * 20)
    out = root / "run 1"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", *TINY, "--data", str(data), "--out", str(out)]) == 0
    return out, data, printed.getvalue()


def _error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: ") and err.count("\n") == 1, err
    return err[len("graphc: error: "):-1]


# ---- 1. an output never replaces a checkpoint, whatever its name ------------------------------
@pytest.mark.parametrize("name", ["best.ckpt", "checkpoint.npz.bak"])
def test_an_output_never_replaces_a_checkpoint_of_any_name(run, tmp_path, capsys, name):
    """`graphc dump -o best.ckpt` (and bench --json/--plot) silently replaced a checkpoint
    whose name did not end in .npz, which `graphc sample --checkpoint` reads: a checkpoint
    was known by its name. It is known by its contents now (a zip holding the graphc
    header), and is refused under any name."""
    ckpt = tmp_path / name
    shutil.copy(run[0] / "checkpoint.npz", ckpt)
    before = ckpt.read_bytes()
    assert main(["dump", "mlp", "-o", str(ckpt)]) == 2
    assert _error(capsys) == (f"-o {str(ckpt)!r} is a checkpoint (a .npz archive); give "
                              "another file name")
    for flag in ("--json", "--plot"):
        assert main(["bench", "--workloads", "mlp-train", "--contenders", "compiled",
                     "--steps", "1", flag, str(ckpt)]) == 2
        assert _error(capsys).startswith(f"{flag} {str(ckpt)!r} is a checkpoint")
    assert ckpt.read_bytes() == before
    assert main(["sample", "--checkpoint", str(ckpt), "--tokens", "2"]) == 0


def test_an_output_replaces_a_zip_that_is_no_checkpoint(tmp_path, capsys):
    """Any other file is an output to replace, as -o's always was: a zip archive without
    graphc's header (numpy's savez of one's own arrays, named .npz) was refused for its
    name."""
    archive = tmp_path / "mine.npz"
    np.savez(archive, x=np.arange(3))
    assert main(["dump", "mlp", "-o", str(archive)]) == 0
    assert not zipfile.is_zipfile(archive) and "graph" in archive.read_text()


# ---- 2. a header written before a setting existed resumes -------------------------------------
def test_resume_of_a_header_without_settings_added_since(run, tmp_path, capsys):
    """A checkpoint written before GPT-2 support (no model.layer_norm_eps), or before
    --decay-steps (no train.decay_steps), loaded in eval and sample, but `graphc train
    --resume` refused it: "saved with other settings (model.layer_norm_eps: (absent) ->
    1e-05)". An absent setting is its default, which the resumed run uses; a real change
    is still refused."""
    out = tmp_path / "old"
    shutil.copytree(run[0], out)
    ckpt = out / "checkpoint.npz"

    def written_before(header):
        del header["model"]["layer_norm_eps"], header["train"]["decay_steps"]
    rewrite_header(ckpt, written_before)
    capsys.readouterr()
    assert main(["train", *TINY, "--steps", "4", "--data", str(run[1]), "--out", str(out),
                 "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    with np.load(ckpt) as z:
        header = json.loads(bytes(z["__meta__"]))
    assert header["step"] == 4 and header["model"]["layer_norm_eps"] == 1e-5

    rewrite_header(ckpt, written_before)
    assert main(["train", *TINY, "--steps", "5", "--data", str(run[1]), "--out", str(out),
                 "--resume", "--weight-decay", "0.2"]) == 2
    assert _error(capsys).startswith(f"{ckpt} was saved with other settings "
                                     "(train.weight_decay: 0.1 -> 0.2); resume with")


# ---- 3. the commands and messages a run ends with ---------------------------------------------
def test_the_final_hint_names_the_data_and_quotes_the_paths(run, capsys):
    """After `graphc train --data FILE`, the last line suggested `graphc eval --checkpoint
    DIR`, which fails without --data (the checkpoint is not the bundled text's), with the
    paths unquoted (a space split them). It is a command that runs as printed."""
    out, data, printed = run
    command = shlex.join(["graphc", "eval", "--checkpoint", str(out), "--data", str(data)])
    assert f"{command} scores it again)" in printed
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out.startswith("validation loss")


def test_a_vocabulary_of_the_bundled_texts_size_says_which_character_differs():
    """A checkpoint whose 65 characters are not the bundled text's was refused with "(its
    vocabulary has 65 characters, the bundled text's 65)", as if they were the same. The
    message says a character that differs."""
    from graphc.data import CharData
    from graphc.train import checkpoint_text
    bundled = CharData.from_file(None, 8).vocab
    vocab = [c if c != "z" else "\u00e9" for c in bundled]
    with pytest.raises(Exception) as error:
        checkpoint_text(None, 8, vocab, "--checkpoint run")
    assert str(error.value) == (
        "--checkpoint run was not trained on the bundled Tiny Shakespeare (its vocabulary of "
        "65 characters holds 'é', which the bundled text has not); pass --data, the text it "
        "was trained on")
    with pytest.raises(Exception, match=r"\(its vocabulary has the bundled text's "
                                        r"characters in another order\)"):
        checkpoint_text(None, 8, bundled[::-1], "--checkpoint run")


# ---- 4. options that were taken silently --------------------------------------------------------
def test_dump_refuses_a_name_bound_twice(capsys):
    """`graphc dump --bind b=3 --bind b=4` took the last size silently."""
    assert main(["dump", "mlp", "--batch", "b", "--stats", "--bind", "b=3",
                 "--bind", "b=4"]) == 2
    assert _error(capsys) == "--bind 'b=4': b is already bound to 3; bind each name once"
    assert main(["dump", "mlp", "--batch", "b", "--stats", "--bind", "b=3"]) == 0


def test_sample_refuses_an_empty_prompt(run, capsys):
    """`graphc sample --checkpoint DIR --prompt ""` started from token 0, the vocabulary's
    first character (here a newline by chance, a space or a letter in other texts), as if
    it had been typed. A character checkpoint has no start-of-text token, so the empty
    prompt is refused, as transformers' generate refuses one without a bos_token_id; the
    library's Sampler refuses it too."""
    from graphc.cli import _load_model
    from graphc.sample import Sampler
    assert main(["sample", "--checkpoint", str(run[0]), "--prompt", "", "--tokens", "3"]) == 2
    assert _error(capsys) == ("--prompt is empty, and a checkpoint has no start-of-text "
                              "token to begin from; give at least one character, or leave "
                              "--prompt out to start from '\\n'")
    model, params, _ = _load_model(str(run[0]))
    with pytest.raises(ValueError, match="every prompt needs at least one token"):
        Sampler(model, params).generate([], 3)
