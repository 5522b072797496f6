"""A loop carry or cond result that changes names the path of the first part that differs,
as JAX does (carry['layer7']['h']), and says how: a list for a tuple, another length, None
for an array; a cond of a tuple against a dict of the same arrays said both sides returned
(f64[2], f64[2])."""
import re

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

XS = np.arange(6.0).reshape(3, 2)
INIT = {f"layer{i}": {"h": np.zeros(4), "c": np.zeros(4)} for i in range(12)}


def _shrink_layer7(c, x):
    c = {k: dict(v) for k, v in c.items()}
    c["layer7"]["h"] = c["layer7"]["h"][:3]
    return c, None


def _both(f, *args):
    """The messages of f eagerly and compiled."""
    out = []
    for run in (f, gc.compile(f)):
        with pytest.raises(GraphcError) as info:
            run(*args)
        out.append(info.value.message)
    return out


def test_dict_carry_names_the_leaf():
    for message in _both(lambda init, xs: gc.scan(_shrink_layer7, init, xs), INIT, XS):
        assert message.endswith("; first at carry['layer7']['h']: f64[3] where it came in as "
                                "f64[4]"), message


@pytest.mark.parametrize("body,detail", [
    (lambda i, c: list(c), "(carry is a list where the initial one is a tuple)"),
    (lambda i, c: c[:1], "(carry is a tuple of length 1 where the initial one is a tuple of "
                         "length 2)"),
    (lambda i, c: (c[0], None), "(carry[1] is None where the initial one is an array)"),
])
def test_structure_changes_are_described(body, detail):
    for message in _both(lambda x: gc.fori_loop(0, 2, body, (x[0], x[1])), XS):
        assert message.endswith("must return a carry with the structure of the initial one "
                                + detail), message


def test_weak_carry_leaf_named_eagerly():
    with pytest.raises(GraphcError, match=re.escape(
            "; first at carry[1]: f64[2] where it came in as f64[]")):
        gc.fori_loop(0, 2, lambda i, c: (c[0], c[1] + XS[0]), (XS[0], 0.0))


def test_cond_and_switch_say_where_results_differ():
    f = gc.compile(lambda p, c: gc.cond(p, lambda c: (c, c), lambda c: {"a": c, "b": c}, c))
    with pytest.raises(GraphcError, match=re.escape(
            "; they first differ at result: a tuple against a dict")):
        f(True, XS[0])
    g = gc.compile(lambda p, c: gc.cond(p, lambda c: (c, c[:1]), lambda c: (c, c), c))
    with pytest.raises(GraphcError, match=re.escape(
            "; they first differ at result[1]: f64[1] against f64[2]")):
        g(True, XS[0])
    s = gc.compile(lambda i, c: gc.switch(i, [lambda c: (c, c), lambda c: [c, c]], c))
    with pytest.raises(GraphcError, match=r"^switch: branch 0 .*; they first differ at result: "
                                          r"a tuple against a list"):
        s(1, XS[0])
