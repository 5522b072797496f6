"""Session 32's findings (left from session 31, then this session's helpers); each test
failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint
from graphc.cli import main
from test_review_s30_cli import TINY
from test_review_s31 import _trained


def test_vmap_keeps_an_unmapped_numpy_scalar_weakly_typed():
    """A numpy scalar given in_axes None is weakly typed, as in eager code: float32 examples
    times np.float64(2) stay float32 (before: refused as float32 meeting float64)."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = gc.vmap(lambda a, s: a * s, in_axes=(0, None))(x, np.float64(2.0))
    assert np.asarray(out).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(out), x * 2)
    counts = gc.vmap(lambda a, n: a + n, in_axes=(0, None))(x.astype(np.int32), np.int64(3))
    assert np.asarray(counts).dtype == np.int32
    np.testing.assert_array_equal(np.asarray(counts), x.astype(np.int32) + 3)


def test_resume_refuses_a_negative_second_moment(tmp_path, capsys):
    """A checkpoint with a negative Adam second moment was resumed: the first step made the
    weights NaN and training stopped as diverged. It is refused as changed, and the file is
    left as it was."""
    out, data = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    arrays, meta = checkpoint.load(str(ckpt))
    name = next(k for k in arrays if k.startswith("adam_v/"))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = -1e-3
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})
    before = ckpt.read_bytes()
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"graphc: error: checkpoint {name} holds a negative value, which AdamW's "
                   "running average of squared gradients never does (the file was changed "
                   "or damaged)"], err
    assert ckpt.read_bytes() == before
