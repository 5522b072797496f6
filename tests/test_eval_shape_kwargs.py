"""gc.eval_shape(f, *args, **kwargs), as jax.eval_shape: keyword arguments reach f as
keywords, and their leaves (arrays, Specs, pytrees of them) are traced as the positional
ones are, so a Spec given by keyword is honoured and nothing is computed."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def _affine(x, *, w, b=None, scale=1.0):
    y = (x @ w["kernel"]) * scale
    return y if b is None else y + b


def test_keyword_specs_are_honoured():
    x = gc.Spec((10**6, 3), np.float32)  # (never allocated)
    out = gc.eval_shape(_affine, x, w={"kernel": gc.Spec((3, 7), np.float32)},
                        b=gc.Spec((7,), np.float32))
    assert isinstance(out, gc.Spec) and out.shape == (10**6, 7) and out.dtype == np.float32


def test_keywords_match_running_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    w = {"kernel": rng.normal(size=(3, 2)).astype(np.float32)}
    b = np.zeros(2, np.float32)
    out = gc.eval_shape(_affine, x, w=w, b=b, scale=2.0)  # a Python float: weakly typed
    ran = _affine(x, w=w, b=b, scale=2.0)
    assert out.shape == ran.shape == (4, 2) and out.dtype == ran.dtype == np.float32


def test_positional_argument_given_by_keyword():
    out = gc.eval_shape(_affine, x=gc.Spec((5, 3), np.float64),
                        w={"kernel": gc.Spec((3, 4), np.float64)})
    assert out.shape == (5, 4) and out.dtype == np.float64


def test_none_keyword_and_missing_keyword():
    assert gc.eval_shape(_affine, np.ones((2, 3)), w={"kernel": np.ones((3, 1))},
                         b=None).shape == (2, 1)
    with pytest.raises(GraphcError, match="eval_shape of _affine: missing a required "
                                          "argument: 'w'"):
        gc.eval_shape(_affine, np.ones((2, 3)))


def test_argument_given_by_position_and_keyword():
    # (Python's binding says it; two graph inputs of one name were refused as "graph
    # '_affine' already has an input named 'x'")
    with pytest.raises(GraphcError, match=r"^eval_shape of _affine: multiple values for "
                                          r"argument 'x'") as info:
        gc.eval_shape(_affine, np.ones((2, 3)), x=np.ones((2, 3)),
                      w={"kernel": np.ones((3, 1))})
    assert info.value.message == "eval_shape of _affine: multiple values for argument 'x'"
