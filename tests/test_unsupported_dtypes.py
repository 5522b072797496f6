"""An array of a dtype the IR cannot hold (uint8, int8, complex) is one GraphcError at the
user's line, naming the dtype and the cast to make, where it was a bare TypeError from deep
inside (ir/types.as_dtype)."""
import numpy as np
import pytest

import graphc as gc


@pytest.mark.parametrize("make", [
    lambda: gc.compile(lambda x: x * 2)(np.zeros(3, np.uint8)),
    lambda: gc.tensor(np.zeros(3, np.int8)),
    lambda: gc.grad(lambda x: gc.sum(x))(np.zeros(3, np.complex64)),
    lambda: gc.zeros(3, "uint16"),
], ids=["compile-uint8", "tensor-int8", "grad-complex64", "zeros-uint16"])
def test_one_line_at_the_users_call(make):
    with pytest.raises(gc.GraphcError, match=r"dtype \w+ is not supported") as info:
        make()
    assert info.value.locs and "test_unsupported_dtypes.py" in str(info.value.locs[0])
    assert "Traceback" not in str(info.value)


def test_the_hint_names_a_cast_for_integers():
    with pytest.raises(gc.GraphcError, match=r"cast it first \(x.astype\(np.int32\)\)"):
        gc.tensor(np.zeros(3, np.uint8))
