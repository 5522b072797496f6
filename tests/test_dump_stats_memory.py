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


def test_stats_name_the_constants_outputs_and_the_whole_peak(tmp_path, capsys):
    """A plan needing 37 GiB (a 100000 x 100000 constant) read as 3 MiB: the intermediates
    and inputs alone. Its figures are computed without building the constant."""
    (tmp_path / "big.py").write_text(
        "import graphc as gc\n"
        "def f():\n"
        "    def g(x):\n"
        "        return gc.sum(x @ gc.full((100000, 100000), 1.0))\n"
        "    return g, gc.spec((8, 100000), 'float32')\n")
    assert main(["dump", f"{tmp_path / 'big.py'}:f", "--stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # inputs 8 x 100000 float32; the constant 1e10 float32; workspace the product's
    # (8, 100000) float32; the output one float32
    assert lines[5] == ("the plan's peak memory: 37.3 GiB in all, what --memory-limit checks "
                        "(inputs 3.1 MiB, constants 37.3 GiB, workspace 3.1 MiB, temporaries "
                        "0 B, outputs 4 B)")


def test_stats_and_the_memory_limit_line_give_the_same_peak(capsys):
    assert main(["dump", "mlp", "--grad", "--stats", "--memory-limit", "1MB"]) == 0
    captured = capsys.readouterr()
    said = captured.err.split("the plan's peak ")[1].split(" fits")[0]
    line = next(x for x in captured.out.splitlines() if x.startswith("the plan's peak"))
    assert line.startswith(f"the plan's peak memory: {said} in all, what --memory-limit "
                           "checks (")


def test_the_bench_table_labels_mebibytes_as_mib():
    from graphc.bench import Result, table
    header = table([Result("mlp-train", "compiled", times=[0.1], tokens=256,
                           peak_bytes=3 * 2**20)], 10.0).splitlines()[2]
    assert "peak MiB" in header and "peak MB" not in header
