"""Session 55 review (r4): segment_prod's gradient multiplied the row's product of non-zero
elements by the other zeros' power sums (0) for a zero one of two or three; where that
product overflowed (inf: float32 [0, 0, 0, 1e23, 1e23], or a long row of 3s), inf * 0 made
the zeros' gradient NaN where torch's scatter_reduce 'prod' gives 0 (and graphc gave 0 for
three zeros before session 55)."""
import warnings

import numpy as np
import pytest
import torch

import graphc as gc


def torch_grad(u, ids, rows, w):
    t = torch.tensor(u, requires_grad=True)
    out = torch.ones(rows, dtype=t.dtype).scatter_reduce(0, torch.tensor(ids), t, "prod")
    (out * torch.tensor(w)).sum().backward()
    return t.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("zeros", [1, 2, 3, 4])
def test_segment_prod_gradient_of_zeros_in_an_overflowed_row(dtype, zeros):
    big = float(np.finfo(dtype).max) ** 0.6
    u = np.array([0.0] * zeros + [big, big, 2.0, -1.5], dtype)
    ids = np.array([0] * (zeros + 2) + [1, 1])
    w = np.array([1.5, 0.0], dtype)  # (a zero cotangent for a finite row: 0)
    loss = lambda x: gc.sum(gc.segment_prod(x, ids, 2) * w)
    want = torch_grad(u, ids, 2, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the row's product overflows: numpy says so)
        for fn in (gc.grad(loss), gc.compile(gc.grad(loss))):
            np.testing.assert_array_equal(np.asarray(fn(u)), want)


def test_segment_prod_zero_cotangent_on_an_overflowed_row():
    """0 * inf is NaN: the product is bounded before the cotangent multiplies it."""
    u = np.array([0.0, 0.0, 1e30, 1e30], np.float32)
    ids = np.zeros(4, np.int64)
    loss = lambda x: gc.sum(gc.segment_prod(x, ids, 1) * np.zeros(1, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(np.asarray(gc.grad(loss)(u)), np.zeros(4, np.float32))


def test_shown_small_array_without_numpys_column_padding():
    """numpy pads a float array's numbers to one width ('[0. , 0.33333333]'): a message
    shows each number as written, no space before a comma or a bracket."""
    from ir.shown import shown
    assert shown(np.array([0.0, 1 / 3, 2.0])) == \
        "ndarray([0., 0.33333333, 2.], dtype=float64)"
    assert shown(np.array([[1.5, 10.0], [2.0, -3.25]], np.float32)) == \
        "ndarray([[1.5, 10.], [2., -3.25]], dtype=float32)"


def test_shown_zero_d_array_of_a_long_or_multi_line_item_is_one_short_line():
    from ir.shown import shown

    class Multi:
        def __repr__(self):
            return "first\nsecond"
    assert shown(np.array(Multi(), dtype=object)) == "ndarray(first second, dtype=object)"
    text = shown(np.array("s" * 1000))
    assert len(text) < 80 and "\n" not in text, text
    assert shown(np.array(0.5, np.float32)) == "ndarray(0.5, dtype=float32)"
