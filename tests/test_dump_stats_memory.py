"""`graphc dump --stats`: every figure of the plan's memory, named as --memory-limit names
them, and a lowering stage after --after refused (s54, g1's findings 3, 8 and 9)."""
import pytest

from graphc.cli import main


@pytest.mark.parametrize("argv, given, stage", [
    (["--after", "fuse"], "--after fuse", "fuse"),
    (["--after", "plan-memory"], "--after plan-memory", "plan-memory"),
    (["--passes", "default,fuse"], "--passes default,fuse", "fuse")])
def test_stats_after_a_lowering_stage_is_refused(capsys, argv, given, stage):
    """It printed the statistics of the graph after the passes, the stage ignored."""
    assert main(["dump", "mlp", "--grad", "--stats", *argv]) == 2
    assert capsys.readouterr().err == (
        f"graphc: error: {given}: --stats counts the graph after the passes, and {stage} is a "
        "lowering stage; name a pass or leave it out\n")


def test_stats_after_a_pass_still_counts_that_graph(capsys):
    assert main(["dump", "mlp", "--grad", "--stats", "--after", "cse"]) == 0
    assert capsys.readouterr().out.startswith("graph mlp_loss_grad: 57 nodes")
