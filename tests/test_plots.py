"""The loss plot and the bench plot are PNGs drawn without pyplot, leaving the caller's
matplotlib backend alone (a notebook's inline backend was switched to Agg by Trainer.fit)."""
import subprocess
import sys


def test_plot_losses_writes_a_png_and_keeps_the_callers_backend(tmp_path):
    code = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot
from graphc.trainer import plot_losses
from graphc.bench import plot, Result
plot_losses([(1, 2.0), (2, 1.5)], [(2, 1.7)], {str(tmp_path / 'loss.png')!r})
plot([Result("tiny", "eager", [0.02]), Result("tiny", "compiled", [0.01])],
     {str(tmp_path / 'bench.png')!r})
print(matplotlib.get_backend())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg"]
    for name in ("loss.png", "bench.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
