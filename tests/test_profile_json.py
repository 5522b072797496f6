"""`graphc profile --json FILE` (the rows Plan.profile returns) and `--top 0` (every kernel,
as the API's top=None) (s54, g1's finding 12)."""
import json

from graphc.cli import main


def test_profile_writes_its_rows_and_top_0_lists_every_kernel(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["profile", "--config", "tiny", "--repeat", "1", "--top", "0",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert (data["config"], data["repeat"], data["warm"]) == ("tiny", 1, False)
    assert len(rows) > 100 and set(rows[0]) >= {"op", "type", "operands", "where", "ms",
                                                "share", "gflops", "warm_ms"}
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert sum(r["ms"] for r in rows) == data["total_ms"]
    kernels = printed.split("\n\n")[-1].splitlines()
    assert kernels[-1] == f"total {data['total_ms']:.2f} ms over {len(rows)} kernels"
    assert len(kernels) == 2 + len(rows) + 1  # the header, its rule, every row, the total


def test_profile_refuses_a_json_it_cannot_write_before_profiling(tmp_path, capsys):
    missing = tmp_path / "nope" / "p.json"
    assert main(["profile", "--config", "tiny", "--json", str(missing)]) == 2
    assert capsys.readouterr().err == (f"graphc: error: --json {missing}: there is no "
                                       f"directory {missing.parent}\n")
