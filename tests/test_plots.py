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


def test_a_loss_plot_without_a_curve_warns_nothing(tmp_path, recwarn):
    """Session 53: a fit with no step and no evaluation (steps=0) drew its loss.png with
    matplotlib's UserWarning "No artists with labels found to put in legend" on stderr; the
    empty axes are drawn without it."""
    import warnings

    from graphc.trainer import plot_losses
    warnings.simplefilter("always")
    plot_losses([], [], str(tmp_path / "loss.png"))
    assert [str(w.message) for w in recwarn] == []
    assert (tmp_path / "loss.png").read_bytes().startswith(b"\x89PNG")
