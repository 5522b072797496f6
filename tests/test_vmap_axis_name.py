"""gc.vmap's axis_name (JAX's, naming the mapped axis for lax.psum / pmean / pmax inside the
function): graphc has no collectives over a vmap axis, so it is refused in one line, not a
TypeError from Python ('unexpected keyword argument') nor a name silently ignored."""
import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError


def test_axis_name_is_refused_in_one_line():
    with pytest.raises(GraphcError, match=r"^vmap: axis_name='batch' is not supported: graphc "
                       r"has no collectives over a vmap axis") as info:
        gc.vmap(lambda x: x * 2.0, axis_name="batch")
    assert len(info.value.message.splitlines()) == 1


def test_axis_size_keeps_its_keyword_and_none_axis_name_works():
    out = gc.vmap(lambda: gc.ones((2,)), in_axes=(), axis_name=None, axis_size=3)()
    np.testing.assert_array_equal(np.asarray(out), np.ones((3, 2)))
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(np.asarray(gc.vmap(lambda r: r * 2.0, 0, 0, None)(x)), x * 2)
