"""Review s20d: bugs found in session s20's changes."""
from dataclasses import asdict

import numpy as np
import pytest

import graphc as gc

from graphc.train import TrainConfig, lr_at, train_config
from ir.errors import GraphcError


def test_resuming_a_checkpoint_saved_with_a_decay_not_past_its_warmup():
    """--decay-steps <= --warmup is refused now, but a checkpoint an earlier graphc wrote with
    such a schedule (warmup 10, decay 5) must still resume with it (`--resume` alone
    continues bit for bit): it was refused, naming flags the user had not passed."""
    saved = asdict(TrainConfig(steps=20, warmup=10, decay_steps=5))
    tc = train_config("tiny", {"steps": None, "warmup": None, "decay_steps": None}, saved)
    assert (tc.warmup, tc.decay_steps) == (10, 5)
    # its schedule as it was: warmup to the peak, then min_lr
    assert lr_at(9, tc) == pytest.approx(tc.lr * 10 / 11) and lr_at(10, tc) == tc.min_lr
    # settings given now are checked, resuming too
    with pytest.raises(GraphcError, match="--decay-steps 5 must be greater than --warmup 10"):
        train_config("tiny", {"decay_steps": 5}, saved)
    assert train_config("tiny", {"warmup": 3}, saved).warmup == 3


@pytest.mark.parametrize("view", [lambda a: gc.reshape(a, (3,)),
                                  lambda a: gc.transpose(a[None])[:, 0],
                                  lambda a: gc.broadcast_to(a, (3,))])
def test_the_tape_keeps_a_copy_of_an_eager_view_of_a_callers_array(view):
    """The tape copied a caller's numpy operand, but not an eager view of one (gc.reshape
    of a numpy array shares its memory, as documented): refilling the array before
    backward() still changed the gradient (w.grad was [100, 100, 100])."""
    a = np.full(3, 2.0, np.float32)
    w = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    y = gc.sum(w * view(a))
    a[:] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0, 2.0])


_SIGNAL_WHILE_PLOTTING = """
import os, signal, sys
import graphc.trainer as trainer
plot = trainer.plot_losses
def plot_and_signal(*args, **kwargs):  # the signal arrives while loss.png is drawn
    os.kill(os.getpid(), signal.SIGTERM)
    return plot(*args, **kwargs)
trainer.plot_losses = plot_and_signal
from graphc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_while_the_loss_plot_is_drawn_says_what_was_saved(tmp_path):
    """After the last step's checkpoint, fit() drew loss.png with SIGTERM at its default:
    a signal there (matplotlib's import takes a while) ended the process without a word,
    between the training's handler and the one for scoring and sampling."""
    import os
    import subprocess
    import sys

    from graphc import checkpoint
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WHILE_PLOTTING, "train", "--config", "tiny",
         "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8",
         "--batch-size", "4", "--steps", "2", "--eval-iters", "1", "--sample-tokens", "0",
         "--no-progress", "--data", str(text), "--out", str(out)],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 143, (proc.returncode, proc.stderr)
    assert "interrupted by SIGTERM" in proc.stderr and "step 2" in proc.stderr, proc.stderr
    assert checkpoint.load(str(out / "checkpoint.npz"))[1]["step"] == 2
    assert (out / "loss.png").exists()


def test_a_donated_argument_returned_after_a_view_of_it_stays_that_array():
    """Of two outputs in one memory the first was left as it is: for (x.T, x) with x
    donated, x came back as a copy and x.T as a view of the donated array, though a donated
    argument returned as it is stays that array (as (x, x.T) did)."""
    for f, which in ((lambda x: (x.T, x), 1), (lambda x: (x, x.T), 0)):
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        outs = gc.compile(f, donate_argnums=0)(a)
        assert np.shares_memory(outs[which], a) and not np.shares_memory(outs[1 - which], a)
        np.testing.assert_array_equal(outs[which], np.arange(6).reshape(2, 3))
        np.testing.assert_array_equal(outs[1 - which], np.arange(6).reshape(2, 3).T)


def test_eager_gradients_with_create_graph_are_arrays_of_their_own():
    """With create_graph=True each leaf got a gradient Tensor of its own, but its array was
    the cotangent's: c = a + b gave a.grad and b.grad one array, and reshape(t).backward(g)
    gave t.grad a view of the caller's g (README: backward(g) copies g), so writing into g
    changed t.grad."""
    a = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    b = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    (a + b).backward(np.ones(3, np.float32), create_graph=True)
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.numpy()[:] = 5.0
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0, 1.0])
    g = np.ones((3, 2), np.float32)
    t = gc.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    t.reshape(3, 2).backward(g, create_graph=True)
    g[...] = 7.0
    np.testing.assert_array_equal(t.grad.numpy(), np.ones((2, 3), np.float32))
    # still differentiable again: d/dt sum(t.grad * t) = t.grad
    w = gc.tensor(np.full(2, 3.0, np.float32), requires_grad=True)
    gc.sum(w * w).backward(create_graph=True)
    (dw,) = [w.grad]
    w.grad = None
    gc.sum(dw).backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])


def test_eager_control_flow_results_are_arrays_of_their_own():
    """Eager cond with a branch `lambda v: v`, a while_loop or fori_loop that ran no
    iteration and a scan passing its carry through returned the caller's array itself
    (compiled, the same functions return copies), so an in-place update of the result
    changed the caller's array."""
    a = np.arange(3, dtype=np.float32)
    same = lambda v: v  # noqa: E731
    results = [gc.cond(True, same, same, a), gc.while_loop(lambda v: False, same, a),
               gc.fori_loop(0, 0, lambda i, v: v * 2.0, a),
               gc.scan(lambda c, x: (c, x), a, np.ones((2, 3), np.float32))[0],
               gc.scan(lambda c, x: (x, None), a, np.ones((2, 3), np.float32))[0]]
    for r in results:
        r = np.asarray(getattr(r, "data", r))
        assert not np.shares_memory(r, a)
    np.testing.assert_array_equal(np.asarray(results[0].data), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(results[4].data), [1.0, 1.0, 1.0])
    # a tensor passed through stays on the tape
    t = gc.tensor(np.ones(3, np.float32), requires_grad=True)
    y = gc.cond(False, lambda v: v * 3.0, same, t)
    assert y is not t and not np.shares_memory(y.numpy(), t.numpy())
    gc.sum(y * 2.0).backward()
    np.testing.assert_array_equal(t.grad, [2.0, 2.0, 2.0])


def test_eager_vmap_does_not_hand_back_an_array_its_function_closed_over():
    """Eager vmap copied results sharing memory with its arguments, not with an array fun
    closed over and returned unbatched (out_axes None: the caller's array itself; a view of
    a captured tensor), as a compiled vmap copies it."""
    c = np.arange(3, dtype=np.float32)
    t = gc.tensor(c)
    xs = np.ones((2, 3), np.float32)
    for fun, owner in ((lambda r: (r * 2.0, c), c), (lambda r: (r * 2.0, gc.reshape(t, (3,))),
                                                      t.numpy())):
        _, y = gc.vmap(fun, out_axes=(0, None))(xs)
        y = np.asarray(getattr(y, "data", y))
        assert not np.shares_memory(y, owner)
        np.testing.assert_array_equal(y, [0.0, 1.0, 2.0])
