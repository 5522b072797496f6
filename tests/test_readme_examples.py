"""README.md's examples run, and what they claim holds.

Python: every ```python block runs on its own, in a fresh namespace holding only `np` and
`gc` (the README says once that its examples assume `import numpy as np` and `import graphc
as gc`). No block reads another's names, so blocks can be copied alone and a block's edit
cannot break a later one; a block that needs a model or data builds a small one itself.
What a block's comments claim is checked two ways:
- printed output: the column-0 `# ` comment lines right after a column-0 `print(...)` line
  are what that print writes, in order (`...` matches anything);
- other claims (a result in a comment, "one plan for every batch size", "gradients equal
  the plain function's") by CHECKS, keyed by a line of the block; a key that matches no
  block fails, so a check cannot go stale unnoticed.
A block that cannot run in the suite (an MPI launch, a download, minutes of training) is
preceded by `<!-- not run: REASON -->`: it is compiled (syntax) and reported skipped with
that reason; a marker without a reason fails. Nothing is skipped silently.

Shell: every `graphc ...` line of a ```sh / ```bash / bare ``` block parses with the CLI's
own parser (nothing runs), with known --config, --after, --workloads and --contenders
values; every inline `graphc SUBCOMMAND --option ...` span names a real subcommand and
real options of it.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOT_RUN = re.compile(r"<!--\s*not run\b(.*?)-->", re.S)


def fences(text):
    """(language, line number of the first body line, body lines, the last non-blank line
    before the opening fence) of every fenced block, opening and closing fences paired."""
    lines, i = text.splitlines(), 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        yield lines[i][3:].strip(), i + 2, lines[i + 1:j], before
        i = j + 1


def python_blocks(text):
    """[(line, source, reason it is not run or None)]; a `not run` marker without a reason
    is an error."""
    blocks = []
    for lang, line, body, before in fences(text):
        if lang != "python":
            continue
        reason = None
        marker = NOT_RUN.search(before)
        if marker:
            reason = marker.group(1).lstrip(":").strip()
            if not marker.group(1).lstrip().startswith(":") or not reason:
                raise ValueError(f"README.md:{line}: `<!-- not run -->` needs a reason: "
                                 "`<!-- not run: why -->`")
        blocks.append((line, "\n".join(body) + "\n", reason))
    return blocks


def expected_output(source):
    """The column-0 comment lines right after each column-0 print(...) line: [[line, ...]]."""
    segments, current = [], None
    for line in source.splitlines():
        if current is not None and line.startswith("#"):
            current.append(line[2:] if line.startswith("# ") else line[1:])
            continue
        if current:
            segments.append(current)
        current = [] if line.startswith("print(") else None
    if current:
        segments.append(current)
    return segments


def assert_printed(segments, printed, where):
    position = 0
    for segment in segments:
        pattern = "\n".join(".*?".join(map(re.escape, line.split("..."))) for line in segment)
        found = re.compile(f"^{pattern}$", re.M).search(printed, position)
        assert found, f"{where}: printed\n{printed}\nwithout the lines its comments show:\n" \
                      + "\n".join(segment)
        position = found.end()


# ---- claims that are not printed output, by a line of their block -------------------------
def _training_learns(ns, printed):
    loss, acc = re.fullmatch(r"loss ([\d.]+), accuracy ([\d.]+)%\n", printed).groups()
    assert float(loss) < 0.2 and float(acc) >= 95.0
    # "a pytree: {"0.weight": array, "0.bias": ...}"
    assert list(ns["params"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def _transforms(ns, printed):
    w, x = np.ones((3, 2)), np.ones((4, 3))
    t = np.tanh(x @ w)
    np.testing.assert_allclose(ns["dloss"](w, x), x.T @ (2 * t * (1 - t ** 2)), rtol=1e-12)
    assert float(ns["d2"](1.5)) == pytest.approx(12 * 1.5 ** 2 - 4)  # d2/dx2 (x^4 - 2x^2)
    y, jv = ns["y"], ns["jv"]
    assert float(y) == pytest.approx(np.sum(t ** 2))
    assert float(jv) == pytest.approx(np.sum(x.T @ (2 * t * (1 - t ** 2))))  # tangent: ones
    assert "def plan(" in printed


def _eager(ns, printed):
    np.testing.assert_array_equal(ns["x"].grad, np.full((4, 3), 2.0))  # ones(4, 2) @ ones(2, 3)


def _custom_gradients(ns, printed):
    np.testing.assert_array_equal(np.asarray(ns["g"]), [0.5, 1.0])
    x = np.array([0.0, 100.0], np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # the comment's claim: NaN at 100
        plain = gc.grad(lambda x: gc.sum(gc.log(1.0 + gc.exp(x))))(x)
    assert plain[0] == 0.5 and np.isnan(plain[1])
    ste_round, v = ns["ste_round"], np.array([1.4, -1.6, 2.5, -0.2])
    np.testing.assert_array_equal(ste_round(v), [1.0, -2.0, 3.0, 0.0])
    np.testing.assert_array_equal(gc.grad(lambda v: gc.sum(ste_round(v) * v))(v),
                                  [1.0, -2.0, 3.0, 0.0] + v)  # round's gradient: identity


def _remat(ns, printed):
    from graphc.models.gpt import GPT
    model = ns["model"]
    plain = GPT(model.cfg)  # the same seed: the same weights, no remat
    idx = np.arange(16).reshape(2, 8) % model.cfg.vocab_size
    params = plain.params()
    remat, expected = (gc.grad(lambda p, m=m: m.apply(p, idx, idx))(params)
                       for m in (model, plain))
    for name in expected:
        np.testing.assert_allclose(remat[name], expected[name], rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    specs = {name: gc.spec(a.shape) for name, a in params.items()}
    graph = str(gc.trace(lambda p: model.apply(p, idx, idx), specs))
    assert graph.count(" = custom_vjp ") == model.cfg.n_layer  # one region per block


def _memory_budget(ns, printed):
    assert ns["plan"].memory["total"] <= 9_000_000
    assert ns["trainer"].steps == 1000


def _per_example_gradients(ns, printed):
    per_example, fast = ns["per_example"], ns["fast"]
    params, loss, xs, ys = ns["params"], ns["loss"], ns["xs"], ns["ys"]
    assert {k: np.shape(v) for k, v in per_example.items()} == {
        "0.weight": (64, 5, 7), "0.bias": (64, 7), "2.weight": (64, 7, 3), "2.bias": (64, 3)}
    compiled = fast(params, xs, ys)
    one = gc.grad(loss)
    for i in (0, 63):
        for name, g in one(params, xs[i], ys[i]).items():
            np.testing.assert_allclose(np.asarray(per_example[name])[i], g, rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(compiled[name][i], g, rtol=1e-5, atol=1e-6)


def _control_flow(ns, printed):
    rng = np.random.default_rng(1)
    h0, xs = rng.normal(size=(2, 3)), rng.normal(size=(6, 2, 4))
    w_x, w_h = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    h, total = h0, 0.0
    for x_t in xs:  # the Python loop scan replaces
        h = np.tanh(x_t @ w_x + h @ w_h)
        total += np.sum(h * h)
    assert float(ns["rnn"](h0, xs, w_x, w_h)) == pytest.approx(total, rel=1e-12)
    after_fori = 2.0 - 2.0 ** -10  # x <- x / 2 + 1 ten times from 1
    after_while = after_fori * 8  # doubled until its 9 entries sum to 100 or more: 3 times
    np.testing.assert_allclose(ns["x"], np.full((3, 3), after_while), rtol=1e-6)
    np.testing.assert_allclose(ns["y"], ns["x"] @ ns["w"], rtol=1e-6)  # sum > 0: a @ b


def _vmap_control_flow(ns, printed):
    one = gc.grad(ns["loss"])
    for i in range(len(ns["xs"])):
        for name, g in one(ns["params"], ns["xs"][i], ns["ys"][i]).items():
            np.testing.assert_allclose(ns["per_example"][name][i], g, rtol=1e-10, err_msg=name)


def _shape_polymorphism(ns, printed):
    step, params, state = ns["step"], ns["params"], ns["state"]
    assert step.recompiles == [] and printed.startswith("[]\n")
    x = np.ones((2, 5), np.float32)  # "x of 5 columns would recompile, logged as ..."
    with pytest.raises(gc.GraphcError, match="Linear: input has 5 features, the layer takes 4"):
        step(params, state, x, np.zeros(2, np.int64))
    assert step.recompiles[-1].endswith("x: float32[batch, 4] -> float32[batch, 5]")


def _generation(ns, printed):
    ids, vocab = ns["ids"], ns["model"].cfg.vocab_size
    assert [len(row) for row in ids] == [100, 100]
    assert all(0 <= int(i) < vocab for row in ids for i in row)


def _trainer(ns, printed):
    trainer = ns["trainer"]
    assert trainer.step == 200 and trainer.val_history[-1][1] < 0.5 * trainer.val_history[0][1]
    assert (Path("runs/mlp") / "checkpoint.npz").is_file()
    assert (Path("runs/mlp") / "loss.png").is_file()


CHECKS = {
    "model.load_state_dict(params)               # back into": _training_learns,
    "dloss = gc.grad(loss)": _transforms,
    "gc.sum(gc.relu(x @ np.ones((3, 2)))).backward()": _eager,
    "def log1pexp(x):": _custom_gradients,
    "object.__setattr__(block, \"forward\", gc.remat(block.forward))": _remat,
    "plan = step.plan_for(params, state, x, y)": _memory_budget,
    "per_example = gc.vmap(gc.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)":
        _per_example_gradients,
    "def rnn(h0, xs, w_x, w_h):": _control_flow,
    "per_example = gc.compile(gc.vmap(gc.grad(loss)": _vmap_control_flow,
    "for b in (1, 3, 8, 17):": _shape_polymorphism,
    "gen = Generator(": _generation,
    "trainer.fit(\"runs/mlp\")": _trainer,
}

BLOCKS = python_blocks(README)


def _check_for(source):
    return [check for key, check in CHECKS.items() if key in source]


def test_every_check_names_exactly_one_block():
    for key in CHECKS:
        assert sum(key in source for _, source, _ in BLOCKS) == 1, key


@pytest.mark.parametrize("line,source,reason", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_python_block(line, source, reason, tmp_path, monkeypatch):
    code = compile(source, f"README.md:{line}", "exec")
    if reason is not None:
        pytest.skip(f"README.md:{line}: not run: {reason}")
    monkeypatch.chdir(tmp_path)  # what a block writes (runs/...) goes there
    namespace = {"np": np, "gc": gc, "__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out), np.errstate(over="ignore"):  # log1pexp(100): inf
        exec(code, namespace)
    printed = out.getvalue()
    assert_printed(expected_output(source), printed, f"README.md:{line}")
    for check in _check_for(source):
        check(namespace, printed)


def test_the_rules_of_the_block_extraction():
    text = ("a\n<!-- not run: needs mpiexec -->\n\n```python\nraise SystemExit\n```\n"
            "```sh\n```\n```python\nprint(1)\n# 1\nx = 2\n```\n")
    assert python_blocks(text) == [(5, "raise SystemExit\n", "needs mpiexec"),
                                   (10, "print(1)\n# 1\nx = 2\n", None)]
    for marker in ("<!-- not run -->", "<!-- not run: -->", "<!-- not run, too slow -->"):
        with pytest.raises(ValueError, match="needs a reason"):
            python_blocks(f"{marker}\n```python\npass\n```\n")
    assert expected_output("print(a)\n# 1\n#\nprint(b)  # not output\n    # nor this\n"
                           "print(c)\n# ... 3 ...\n") == [["1", ""], ["... 3 ..."]]
    assert_printed([["1", ""], ["... 3 ..."]], "0\n1\n\nx 3 y\n", "here")
    with pytest.raises(AssertionError):
        assert_printed([["2"]], "1\n", "here")


# ---- shell examples -------------------------------------------------------------------------
def _subparsers():
    from graphc.cli import build_parser
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return parser, sub.choices


def _graphc_words(line):
    """The words after `graphc` (or `.venv/bin/graphc`) of a shell line, or None."""
    words = shlex.split(line, comments=True)
    names = [w.rsplit("/", 1)[-1] for w in words]
    return words[names.index("graphc") + 1:] if "graphc" in names else None


def shell_commands(text):
    commands = []
    for lang, line, body, _ in fences(text):
        if lang in ("sh", "bash", ""):
            for i, source in enumerate(body):
                words = _graphc_words(source)
                if words is not None:
                    commands.append((line + i, words))
    return commands


def _check_words(words, subcommands, where):
    """A real subcommand, its options by their full names (argparse would take `--rank` for
    `--ranks`), and known values where the parser takes free text."""
    from graphc.bench import CONTENDERS, WORKLOADS
    from graphc.models.gpt import CONFIGS
    from passes.manager import PASSES
    from runtime.stages import STAGE_NAMES
    known = {"--config": CONFIGS, "--after": {*PASSES, *STAGE_NAMES, "rematerialize"},
             "--workloads": WORKLOADS, "--contenders": CONTENDERS}
    assert words[0] in subcommands, f"{where}: no subcommand {words[0]}"
    options = subcommands[words[0]]._option_string_actions
    for word, value in zip(words[1:], words[2:] + [""]):
        if not word.startswith("-"):
            continue
        assert word.split("=")[0] in options, f"{where}: no option {word}"
        for item in value.split(",") if word in known else ():
            assert "..." in item or item.isupper() or item in known[word], \
                f"{where}: {word} {item}: not one of {', '.join(sorted(known[word]))}"


def test_readme_shell_commands_parse():
    parser, subcommands = _subparsers()
    commands = shell_commands(README)
    assert len(commands) >= 15  # the quick start's, "Other commands", GPT-2, MPI, bench
    for line, words in commands:
        where = f"README.md:{line}: graphc {' '.join(words)}"
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                args = parser.parse_args(words)
            except SystemExit:
                pytest.fail(f"{where}: {err.getvalue().strip()}")
        assert args.command == words[0]
        _check_words(words, subcommands, where)


def prose(text):
    """The text with each fenced block's lines (fences included) blanked, lines kept."""
    lines = text.splitlines()
    for _, line, body, _ in fences(text):
        lines[line - 2:line + len(body)] = [""] * (len(body) + 2)
    return "\n".join(lines)


def test_readme_inline_graphc_spans_name_real_options():
    _, subcommands = _subparsers()
    spans, text = 0, prose(README)
    for match in re.finditer(r"`([^`]+)`", text):
        # (a span may wrap onto the next line; a shell pipe ends graphc's words: `| head -4`)
        words = re.split(r"\s\|\s", match.group(1))[0].split()
        if len(words) < 2 or words[0].rsplit("/", 1)[-1] != "graphc":
            continue
        spans += 1
        where = f"README.md:{text[:match.start()].count(chr(10)) + 1}: {' '.join(words)}"
        _check_words(words[1:], subcommands, where)
    assert spans >= 30


def test_the_train_options_the_readme_lists_exist():
    from graphc.models.gpt import CONFIGS
    _, subcommands = _subparsers()
    train = subcommands["train"]
    paragraph = re.search(r"`graphc train --help` lists every option:(.*?)\n\n", README,
                          re.S).group(1)
    named = re.findall(r"`(-O|--[a-z0-9-]+)", paragraph)  # (--beta1)
    for option in named:
        assert option in train._option_string_actions, option
    # and "every" holds: an option of train's is named there (before: --min-lr, --no-bias,
    # --weight-decay, --sample-tokens and --no-progress nowhere in the README)
    assert set(train._option_string_actions) - {"-h", "--help"} <= set(named)
    configs = re.search(r"`--config ([\w|-]+)`", paragraph).group(1).split("|")
    assert set(configs) == set(CONFIGS)
    precisions = re.search(r"`--precision ([\w|-]+)`", paragraph).group(1).split("|")
    assert precisions == list(train._option_string_actions["--precision"].choices)


def test_the_scan_ir_the_readme_shows_is_what_the_printer_prints():
    """The ```text block of "Control flow": a scan of tanh(x + h @ w) over 6 steps."""
    from ir.parser import parse
    (shown,) = [body for lang, _, body, _ in fences(README)
                if lang == "text" and any(" = scan " in line for line in body)]

    def f(h0, xs, w):
        def step(h, x):
            h = gc.tanh(x + h @ w)
            return h, h
        return gc.scan(step, h0, xs)
    printed = str(gc.trace(f, gc.spec((2, 3)), gc.spec((6, 2, 3)), gc.spec((3, 3))))
    assert "\n".join(shown) in printed
    assert str(parse(printed)) == printed  # "it parses back"


def test_the_custom_vjp_node_the_readme_shows_is_what_graphc_dump_prints(tmp_path):
    """The node of "Custom gradients": `graphc dump -O0` of the sum of the README's own
    log1pexp, in a fresh process (`rule` numbers the rules traced in the process, so the
    suite's earlier traces would change it). The README showed rule=3 where dump prints 1."""
    import subprocess
    import sys
    shown = re.search(r"\(`(%\d+ = custom_vjp [^`]*)`", README).group(1)
    (block,) = [body for lang, _, body, _ in fences(README)
                if lang == "python" and any("def log1pexp" in line for line in body)]
    definitions = block[:next(i for i, line in enumerate(block) if line.startswith("g = "))]
    path = tmp_path / "log1pexp.py"
    path.write_text("import graphc as gc\n" + "\n".join(definitions) + "\n\n\ndef build():\n"
                    "    return (lambda x: gc.sum(log1pexp(x))), gc.spec((2,))\n",
                    encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "graphc.cli", "dump", "-O0", f"{path}:build"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed = [line.strip() for line in run.stdout.splitlines()]
    assert any(line.replace(":f32[2]", "") == shown for line in printed), (shown, run.stdout)


def test_every_function_the_transformations_table_names_exists():
    """The README's "transformations at a glance" table: each `gc.NAME` in its first column
    is a public function of graphc."""
    table = re.search(r"\| graphc \| JAX \| what differs \|\n\| --- \| --- \| --- \|\n(.*?)\n\n",
                      README, re.S).group(1)
    names = [name for row in table.splitlines()
             for name in re.findall(r"gc\.(\w+)", row.split(" | ")[0])]
    assert len(names) >= 20
    for name in names:
        assert callable(getattr(gc, name, None)) and name in gc.__all__, name
