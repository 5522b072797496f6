"""`graphc dump --after PASS --memory-limit`: the budget's rematerialize pass runs after the
whole pipeline, so a dump stopped at a pass never applied it; it used to exit 0 without a
word (even `--after dce`, or beside --stats). Now the pair is refused in one line."""
import pytest

from graphc.cli import main


@pytest.mark.parametrize("extra", [["--after", "cse"], ["--after", "dce"],
                                   ["--after", "dce", "--stats"]])
def test_after_a_pass_with_memory_limit_is_refused(capsys, extra):
    assert main(["dump", "mlp", "--memory-limit", "1KB", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert f"--after {extra[1]} and --memory-limit conflict" in lines[0]
    assert "--after rematerialize" in lines[0]


def test_memory_limit_still_applies_without_after_and_after_rematerialize(capsys):
    # without --after, and with --after rematerialize or a lowering stage, the budget is used
    for extra in ([], ["--after", "rematerialize"], ["--after", "fuse"]):
        assert main(["dump", "mlp", "--memory-limit", "1KB", *extra]) == 2
        assert "--memory-limit 1000 B cannot be met" in capsys.readouterr().err
    assert main(["dump", "mlp", "--memory-limit", "1GB", "--after", "rematerialize"]) == 0
    assert "graph " in capsys.readouterr().out
    # --after a pass without a budget is unchanged
    assert main(["dump", "mlp", "--after", "cse"]) == 0
