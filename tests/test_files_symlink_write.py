"""graphc.files.atomic_writer writes a symbolic link through to its target, as open() does
(s55, f6): `graphc bench --json out.json`, out.json a link, replaced the link itself with a
regular file and left its target with the old contents."""
import json
import os

from graphc import bench
from graphc.cli import main
from graphc.files import write_atomically


def test_a_link_is_written_through_to_its_target(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    target = results / "run3.json"
    target.write_text("old")
    link = tmp_path / "out.json"
    link.symlink_to("results/run3.json")  # relative: resolved from the link's folder
    write_atomically(str(link), "new")
    assert os.readlink(link) == "results/run3.json"
    assert target.read_text() == "new"
    # the temporaries went beside the target and are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "results"]
    assert sorted(p.name for p in results.iterdir()) == ["run3.json"]


def test_a_link_to_a_link_and_a_dangling_link_are_written_through(tmp_path):
    final = tmp_path / "final.txt"
    (tmp_path / "middle").symlink_to(final)
    (tmp_path / "first").symlink_to(tmp_path / "middle")
    write_atomically(str(tmp_path / "first"), b"bytes")  # not there yet: created, as open()
    assert final.read_bytes() == b"bytes"
    assert (tmp_path / "first").is_symlink() and (tmp_path / "middle").is_symlink()
    write_atomically(str(tmp_path / "first"), b"again")
    assert final.read_bytes() == b"again"


def test_bench_json_through_a_link(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 100.0)
    monkeypatch.setattr(bench, "numpy_blas", lambda: dict(library="openblas", version=None,
                                                          kernels=None, coretype=None))
    monkeypatch.setattr(bench, "run", lambda *a, **k: [
        bench.Result("mlp-train", "eager", times=[0.04], tokens=256)])
    target = tmp_path / "kept.json"
    target.write_text("{}")
    link = tmp_path / "b.json"
    link.symlink_to(target)
    assert main(["bench", "--workloads", "mlp-train", "--contenders", "eager", "--steps",
                 "2", "--json", str(link)]) == 0
    assert link.is_symlink()
    assert json.loads(target.read_text())["results"][0]["times_s"] == [0.04]
