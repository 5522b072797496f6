"""Session 34's fixes of the command line under mpiexec and of graphc bench --ranks and the
subcommands' options; each test failed before its fix."""
from __future__ import annotations

import sys

import pytest

import graphc.distributed as dist
from launch import rank_env, run_in_group
from test_review_s19f import FAST, _text


def _outside_the_banner(output: str) -> list:
    """The lines of a job's output outside the banner Open MPI's mpiexec prints, between
    dashed rules, after any rank's non-zero exit (it has no option that keeps the status
    without it: README, Training on many processes)."""
    lines, banner = [], False
    for line in output.splitlines():
        if line and not line.strip("-"):
            banner = not banner
        elif not banner:
            lines.append(line)
    return lines


def _rank_1_slow_to_exit(argv) -> list:
    """`graphc ARGV` on two ranks of the user's own mpiexec, rank 1 a second slower to end
    its process once the command returns (as a rank whose exit handlers wait for threads)."""
    slow = ("import atexit, sys, time; from mpi4py import MPI; atexit.register(time.sleep, 1); "
            f"from graphc.cli import main; sys.exit(main({argv!r}))")
    return [*dist.launch_command(1, ["-m", "graphc.cli", *argv]), ":", "-n", "1",
            sys.executable, "-c", slow]


def test_a_refusal_every_rank_agrees_on_ends_both_ranks_with_one_line(tmp_path):
    """`mpiexec -n 2 graphc train --out DIR` where DIR holds a checkpoint: each rank
    returned status 2 and ended on its own; the first to exit made mpiexec end the other
    while it was still in MPI_Finalize, and PMIx added `PMIX ERROR: PMIX_ERR_UNREACH ...`
    to mpiexec's banner (every time here with one rank slower to exit). Now the ranks wait
    for each other and leave together: rank 0's line, status 2, nothing but mpiexec's own
    banner (the same for another refusal they agree on: a --data file that is missing)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"")
    data = _text(tmp_path)
    missing = tmp_path / "missing.txt"
    for argv, line in (
            ([*FAST, "--data", str(data), "--out", str(out)],
             f"graphc: error: {out / 'checkpoint.npz'} already exists; pass --resume to "
             "continue it or --out to train into another directory"),
            ([*FAST, "--data", str(missing), "--out", str(tmp_path / "other")],
             f"graphc: error: data file '{missing}' does not exist")):
        code, output, _ = run_in_group(_rank_1_slow_to_exit(argv), rank_env(), 100,
                                       merge_output=True)
        assert code == 2, output
        assert _outside_the_banner(output) == [line], output
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("option, line", [
    (["--steps", "-1"], "graphc: error: argument --steps: expected a positive number, got -1 "
                        "(see graphc train --help)"),
    (["--stpes", "2"], "graphc: error: unrecognized arguments: --stpes 2 (see graphc train "
                       "--help)"),
    (["--allow-changed-settings"], "graphc: error: --allow-changed-settings is for --resume: "
                                   "it lets a resumed run change the checkpoint's settings; a "
                                   "fresh run has none to change")])
def test_a_refusal_of_the_command_line_under_mpiexec_is_said_once(tmp_path, option, line):
    """`mpiexec -n 2 graphc train` with a bad option: every rank parses the same command
    line, and each printed the refusal (twice in all), a bad value before the ranks had
    joined the job, --allow-changed-settings without --resume after. Now rank 0 alone
    says it and the ranks leave together with status 2."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    out = tmp_path / "run"
    argv = [*FAST, "--data", str(_text(tmp_path)), "--out", str(out), *option]
    # each rank a second slow to end its process (else the first to exit could end the
    # other before it printed)
    slow = ("import atexit, sys, time; atexit.register(time.sleep, 1); "
            f"from graphc.cli import main; sys.exit(main({argv!r}))")
    code, output, _ = run_in_group(dist.launch_command(2, ["-c", slow]), rank_env(), 100,
                                   merge_output=True)
    assert code == 2, output
    assert _outside_the_banner(output) == [line], output
    assert not out.exists()


# ---- graphc bench --ranks and the contenders' options at their defaults --------------------
@pytest.mark.parametrize("option", [
    ["--workloads", "gpt-tiny-train,gpt-small-train,gpt-tiny-infer,mlp-train"],
    ["--contenders", "compiled,numpy,O0,eager,torch"], ["--warmup", "2"],
    ["--concurrent", "0"], ["--rounds", "5"]])
def test_graphc_bench_ranks_refuses_a_contenders_option_given_at_its_default(
        tmp_path, monkeypatch, capsys, option):
    """`graphc bench --ranks 1 --contenders compiled,numpy,O0,eager,torch` (or --warmup 2,
    --rounds 5, ...: an option of the contenders' measurement spelled out at its default
    value) was taken for an option not given and silently ignored, while any other value
    was refused. Now the option is refused whenever it is passed; without --ranks the
    measurement takes it (--rounds with --concurrent N, whose rounds it counts: alone it is
    refused, test_bench), and the options not given their defaults, as before."""
    from graphc import bench
    from graphc.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--ranks", "1", "--steps", "1", *option]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [
        f"graphc: error: {option[0]} is not for --ranks, which measures the data-parallel tiny "
        "GPT step (it takes --steps and --json); leave it out or run the two measurements "
        "apart"]
    assert list(tmp_path.iterdir()) == []

    seen = {}

    def measured(workloads, steps, warmup, contenders):
        seen.update(workloads=workloads, steps=steps, warmup=warmup, contenders=contenders)
        raise KeyboardInterrupt  # (stops before measuring anything)

    monkeypatch.setattr(bench, "matmul_gflops", lambda: 1.0)
    monkeypatch.setattr(bench, "run", measured)
    concurrent = ["--concurrent", "2"] if option[0] == "--rounds" else []
    assert main(["bench", "--steps", "3", *concurrent, *option]) == 130
    assert seen == {"workloads": ["gpt-tiny-train", "gpt-small-train", "gpt-tiny-infer",
                                  "mlp-train"], "steps": 3, "warmup": 2,
                    "contenders": ("compiled", "numpy", "O0", "eager", "torch")}


# ---- the subcommands' options ---------------------------------------------------------------
@pytest.mark.parametrize("option, says", [
    (["--concurrent", "1"], "argument --concurrent: expected 0 (off) or 2 or more copies, "
                            "got 1"),
    (["--concurrent", "-2"], "argument --concurrent: expected 0 (off) or 2 or more copies, "
                             "got -2"),
    (["--concurrent", "x"], "argument --concurrent: expected a whole number, got 'x'"),
    (["--concurrent", "2", "--rounds", "0"], "argument --rounds: expected a positive number, "
                                             "got 0"),
    (["--rounds", "2.5"], "argument --rounds: expected a whole number, got '2.5'")])
def test_graphc_bench_refuses_a_bad_concurrent_or_rounds_naming_that_option(capsys, option,
                                                                            says):
    """`graphc bench --rounds 0` was refused as `--concurrent takes 2 or more copies (0: off)
    and --rounds 1 or more` (both options, no value), and `--concurrent x` as argparse's
    `invalid int value: 'x'`. Now each is refused as it is parsed, naming its option and
    value, as `--steps` and `--warmup` are."""
    from graphc.cli import main
    with pytest.raises(SystemExit) as stop:
        main(["bench", *option])
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"graphc: error: {says} (see graphc bench --help)"]


def test_every_option_of_the_subcommands_says_what_it_does_and_its_default():
    """`graphc train --help` listed --n-layer, --batch-size, --warmup, --eval-iters, --seed,
    --sample-tokens (and more) with no word of what they do or their default, as did
    `graphc bench --warmup`, `eval --split`, `dump --format` and `profile --repeat`. Now
    every option says what it does, and the defaults are given, per config where --config
    sets them."""
    import argparse

    from graphc.cli import build_parser
    commands = build_parser().commands
    for name in ("train", "bench", "eval", "dump", "profile", "sample"):
        for action in commands[name]._actions:
            assert action.help and action.help != argparse.SUPPRESS, \
                (name, action.option_strings)

    def says(command, option):
        action = next(a for a in commands[command]._actions if option in a.option_strings)
        return " ".join(action.help.split())

    for command, option, default in [
            ("train", "--config", "(default: small;"),
            ("train", "--n-layer", "(default: the config's: tiny 2, small 4, medium 6, "
                                   "nanogpt-cpu 4)"),
            ("train", "--batch-size", "(default: the config's: tiny 64, small 32, medium 32, "
                                      "nanogpt-cpu 12)"),
            ("train", "--steps", "(default: the config's: tiny 300, small 2500, medium 5000, "
                                 "nanogpt-cpu 2000)"),
            ("train", "--lr", "(default: the config's: tiny 0.005, small 0.002, medium 0.001, "
                              "nanogpt-cpu 0.001)"),
            ("train", "--warmup", "tiny 30, small 100, medium 200, nanogpt-cpu 100)"),
            ("train", "--dropout", "(default: 0.0)"), ("train", "--dtype", "(default: float32)"),
            ("train", "--weight-decay", "(default: 0.1)"),
            ("train", "--eval-iters", "(default: 20)"), ("train", "--seed", "(default: 1337)"),
            ("train", "--sample-tokens", "default: 300)"), ("train", "-O", "(default: default)"),
            ("bench", "--steps", "(default: 10)"), ("bench", "--warmup", "(default: 2)"),
            ("bench", "--rounds", "(default: 5)"), ("eval", "--split", "(default: val)"),
            ("dump", "--config", "(default: tiny)"), ("dump", "--format", "(default: text)"),
            ("profile", "--config", "(default: small)"),
            ("profile", "--repeat", "(default: 5)"), ("profile", "--top", "(default: 20)"),
            ("sample", "--tokens", "(default: 300)"),
            ("sample", "--temperature", "(default: 0.8)"), ("sample", "--seed", "(default: 0)")]:
        assert default in says(command, option), (command, option, says(command, option))
