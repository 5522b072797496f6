"""Function transformations against JAX's semantics (session 50 review, g2): jvp, vjp,
linearize and linear_transpose at their edges."""
import numpy as np
import pytest

import graphc as gc


def test_jvp_checks_a_numpy_float64_scalar_tangent_as_other_numpy_scalars():
    """np.float64 subclasses Python's float, so its tangent went unchecked and the weak
    typing of the primals and tangents together made a float32 primal's whole jvp float64:
    jvp(f, (np.float32(2),), (np.float64(1),)) returned f(x) as float64, not f(x). JAX
    (x64) refuses the mismatch; so does graphc now, as for an np.float32 tangent of an
    np.float64 primal and for 0-d arrays."""
    square = lambda s: s * s  # noqa: E731
    for primal, tangent in ((np.float32(2.0), np.float64(1.0)),
                            (np.float64(2.0), np.float32(1.0)),
                            (np.array(2.0, np.float32), np.array(1.0))):
        with pytest.raises(gc.GraphcError, match=r"tangent 0 is float\d+\[\] but its primal "
                                                 r"is float\d+\[\]"):
            gc.jvp(square, (primal,), (tangent,))
    # matching numpy scalars, and a Python float (weakly typed) tangent, keep the primal's
    y, t = gc.jvp(square, (np.float32(2.0),), (np.float32(1.5),))
    assert y.dtype == t.dtype == np.float32 and (float(y), float(t)) == (4.0, 6.0)
    y, t = gc.jvp(square, (np.float32(2.0),), (1.5,))
    assert y.dtype == t.dtype == np.float32 and (float(y), float(t)) == (4.0, 6.0)
    y, t = gc.jvp(square, (np.float64(2.0),), (np.float64(1.5),))
    assert y.dtype == t.dtype == np.float64 and (float(y), float(t)) == (4.0, 6.0)
    # an np.float64 tangent of an array primal is refused as a number's
    with pytest.raises(gc.GraphcError, match=r"tangent 0 is the number .*1\.0\) but its "
                                             r"primal is float32\[3\]"):
        gc.jvp(square, (np.ones(3, np.float32),), (np.float64(1.0),))


def test_linearize_takes_has_aux_as_jax():
    """jax.linearize(f, *primals, has_aux=True) returns (y, f_jvp, aux); gc.linearize took no
    has_aux ("unexpected keyword argument"). aux is computed with y, once, from the primals."""
    x = np.array([0.5, -1.0, 2.0], np.float32)
    t = np.array([1.0, 2.0, 3.0], np.float32)
    calls = []

    def f(a):
        calls.append(1)
        return gc.sin(a) * a, {"sq": gc.sum(a * a), "a": a}

    y, f_jvp, aux = gc.linearize(f, x, has_aux=True)
    np.testing.assert_allclose(y, np.sin(x) * x, rtol=1e-6)
    np.testing.assert_allclose(aux["sq"], np.sum(x * x), rtol=1e-6)
    np.testing.assert_array_equal(aux["a"], x)
    assert aux["sq"].dtype == np.float32
    want = (np.cos(x) * x + np.sin(x)) * t
    np.testing.assert_allclose(f_jvp(t), want, rtol=1e-6)
    np.testing.assert_allclose(f_jvp(2 * t), 2 * want, rtol=1e-6)  # reusable
    np.testing.assert_allclose(gc.compile(f_jvp)(t), want, rtol=1e-6)
    assert len(calls) == 1  # traced once; f_jvp runs only the tangent part
    # as jvp's has_aux: the same values
    y2, t2, aux2 = gc.jvp(f, (x,), (t,), has_aux=True)
    np.testing.assert_allclose(t2, want, rtol=1e-6)
    np.testing.assert_allclose(aux2["sq"], aux["sq"])
    # without has_aux, a pair is the output (its tangent a pair too), as JAX's
    y, f_jvp = gc.linearize(f, x)
    np.testing.assert_allclose(f_jvp(t)[0], want, rtol=1e-6)
    with pytest.raises(gc.GraphcError, match=r"^linearize: with has_aux=True the function "
                                             r"must return a pair \(output, aux\)"):
        gc.linearize(gc.sin, x, has_aux=True)


def test_vjp_fn_and_f_t_called_with_other_than_one_cotangent_is_one_line():
    """JAX's vjp_fn takes one cotangent, a tuple for a tuple result, and says so when called
    splatted, vjp_fn(ct0, ct1); here that was Python's TypeError naming an internal function
    ('vjp.<locals>.vjp_concrete() takes 1 positional argument but 2 were given'), as was
    linear_transpose's f_t. The parameter keeps its name, `cotangent`, for compile and vmap."""
    x = np.array([0.5, -1.0, 2.0], np.float32)

    def f(a):
        return gc.sin(a), a * 2

    _, vjp_fn = gc.vjp(f, x)
    f_t = gc.linear_transpose(lambda a: a * 2, x)
    splatted = r"takes one cotangent, a pytree like the function's result, but was given "
    for call, who, got in ((lambda: vjp_fn(x, x), r"vjp of f: vjp_fn", "2 arguments"),
                           (lambda: vjp_fn(), r"vjp of f: vjp_fn", "no arguments"),
                           (lambda: vjp_fn(ct=(x, x)), r"vjp of f: vjp_fn",
                            "the keyword argument 'ct'"),
                           (lambda: f_t(x, x), r"linear_transpose of lambda: f_t",
                            "2 arguments")):
        with pytest.raises(gc.GraphcError, match=f"^{who} {splatted}{got}; for a result "
                                                 r"that is a tuple pass one tuple") as info:
            call()
        assert info.value.message.count("\n") == 0
    # traced too (inside compile, the pullback of a traced vjp)
    with pytest.raises(gc.GraphcError, match=f"^vjp of f: vjp_fn {splatted}2 arguments"):
        gc.compile(lambda a: gc.vjp(f, a)[1](a, a))(x)
    # one cotangent, positional or by its name, as before
    want = np.cos(x) * x + 2 * x
    np.testing.assert_allclose(vjp_fn((x, x))[0], want, rtol=1e-6)
    np.testing.assert_allclose(vjp_fn(cotangent=(x, x))[0], want, rtol=1e-6)
    np.testing.assert_allclose(gc.compile(vjp_fn)((x, x))[0], want, rtol=1e-6)
    np.testing.assert_allclose(f_t(x)[0], 2 * x)
    assert f_t.plan is not None
    np.testing.assert_allclose(np.asarray(gc.vmap(f_t)(np.stack([x, -x]))[0]),
                               np.stack([2 * x, -2 * x]))


def test_a_tangent_unlike_its_primal_says_where_and_how():
    """A tangent of another pytree structure was refused as 'tangent 0 is not a pytree like
    its primal (1 vs 1 arrays)', which says neither where nor how: the counts were the same
    for {'b': x} given for {'a': x}, and for a list given for a tuple (JAX: tangents must
    have the primals' tree structure), and (t,) or {'a': t} for an array primal x was taken
    as t. Now the place and the two kinds are named, by jvp and by linearize's f_jvp alike."""
    x = np.ones(3, np.float32)
    pick = lambda p: p["a"]  # noqa: E731
    first = lambda t: t[0] * t[1]  # noqa: E731
    cases = [(pick, {"a": x}, {"b": x}, r"keys \['b'\] where a dict with keys \['a'\] is"),
             (first, (x, x), [x, x], r"a list of 2 where a tuple of 2 is"),
             (lambda t: t[1]["c"], (x, {"c": x}), (x, {"c": (x,)}),
              r" at 1\.c: a tuple of 1 where an array is"),
             (lambda t: t * 2, x, (x,), r": a tuple of 1 where an array is"),
             (lambda t: t * 2, x, {"a": x}, r": a dict where an array is"),
             (first, (x, x), (x, None), r" at 1: None where an array is; pass zeros for no "
                                        r"tangent"),
             (pick, {"a": x, "b": None}, {"a": None, "b": None},
              r" at a: None where an array is; pass zeros"),
             (first, (x, x), None, r": None where a tuple of 2 is; pass zeros"),
             (lambda t: t[0], (x, None), (x, x), r" at 1: an ndarray where None is")]
    for fn, primal, tangent, how in cases:
        with pytest.raises(gc.GraphcError, match=r"^jvp: tangent 0 does not match its "
                                                 r"primal.*" + how):
            gc.jvp(fn, (primal,), (tangent,))
        _, f_jvp = gc.linearize(fn, primal)
        with pytest.raises(gc.GraphcError, match=r"^linearize: f_jvp's tangent 0 does not "
                                                 r"match its primal.*" + how):
            f_jvp(tangent)
    _, f_jvp = gc.linearize(pick, {"a": x})
    with pytest.raises(gc.GraphcError, match=r"^linearize: f_jvp takes 1 tangent, one like "
                                             r"each primal, got 2"):
        f_jvp({"a": x}, {"a": x})
    # a dict's keys in another order, and None where the primal has None, still pair up
    both = lambda p: p["a"] * p["b"]  # noqa: E731
    np.testing.assert_allclose(gc.jvp(both, ({"a": x, "b": 2 * x},),
                                      ({"b": x, "a": 3 * x},))[1], 3 * 2 * x + x)
    np.testing.assert_allclose(gc.linearize(both, {"a": x, "b": 2 * x})[1](
        {"b": x, "a": 3 * x}), 3 * 2 * x + x)
    np.testing.assert_allclose(gc.linearize(pick, {"a": x, "n": None})[1](
        {"a": 2 * x, "n": None}), 2 * x)


def test_review_r6_tangent_mismatch_paths_f_jvp_keywords_and_articles():
    """Review r6 of the commits above: a None tangent for an array, or a container where the
    primal holds an array, said how but not where ('None where it holds 1 of its 2 arrays',
    '(x, {"c": (t,)})': 'a tuple where it holds an array'); both now name the path, as the
    other mismatches do (leaves_like(exact=True), one logic). f_jvp(t=...) was Python's
    TypeError naming 'linearize.<locals>.f_jvp()'; jacrev said 'a int64 output'."""
    x = np.ones(3, np.float32)
    params = {"w": x, "b": x}
    loss = lambda p: gc.sum(p["w"] * p["b"])  # noqa: E731
    for tangent, where, how in (({"w": x, "b": None}, "b", "None where an array is; pass "
                                 "zeros for no tangent"),
                                ({"w": x, "b": [x]}, "b", "a list of 1 where an array is")):
        with pytest.raises(gc.GraphcError, match=f"(?m)^jvp: tangent 0 does not match its primal "
                                                 f"at {where}: {how}$"):
            gc.jvp(loss, (params,), (tangent,))
        _, f_jvp = gc.linearize(loss, params)
        with pytest.raises(gc.GraphcError, match=f"(?m)^linearize: f_jvp's tangent 0 does not "
                                                 f"match its primal at {where}: {how}$"):
            f_jvp(tangent)
    _, f_jvp = gc.linearize(lambda a: a * 2, x)
    with pytest.raises(gc.GraphcError, match=r"(?m)^linearize: f_jvp takes the tangents by "
                                             r"position, one like each primal, got the "
                                             r"keyword argument 't'$"):
        f_jvp(t=x)
    import inspect
    assert str(inspect.signature(f_jvp)) == "(*tangents)"
    np.testing.assert_allclose(gc.compile(f_jvp)(x), 2 * x)
    np.testing.assert_allclose(np.asarray(gc.vmap(f_jvp)(np.stack([x, 3 * x]))),
                               np.stack([2 * x, 6 * x]))
    with pytest.raises(gc.GraphcError, match=r"^jacrev: an int64 output has no Jacobian"):
        gc.jacrev(lambda a: gc.argmax(a))(x)


def test_review_r15_a_namedtuple_where_the_tree_differs_takes_its_article():
    """leaves_like said what the structure holds in two ways: its exact lines through
    expected() (with_article), its other mismatches by hand, 'a Obs of 2'. One helper now."""
    from collections import namedtuple
    Obs = namedtuple("Obs", "a b")
    one = np.ones(2, np.float32)
    with pytest.raises(gc.GraphcError, match=r"a tuple of 2 where an Obs of 2 is\n"):
        gc.jvp(lambda o: o.a * o.b, (Obs(one, one),), ((one, one),))
    with pytest.raises(gc.GraphcError, match=r"a list of 2 where a tuple of 2 is\n"):
        gc.jvp(lambda o: o[0] * o[1], ((one, one),), ([one, one],))
    with pytest.raises(gc.GraphcError, match=r"keys \['c'\] where a dict with keys \['a', "
                                             r"'b'\] is\n"):
        gc.jvp(lambda d: d["a"] * d["b"], ({"a": one, "b": one},), ({"c": one},))


def test_a_python_float_primal_keeps_its_dtype_whatever_its_tangent():
    """The primals and tangents were weakly typed together, so a numpy tangent decided a
    Python float primal's dtype: jvp(exp, (12.0,), (np.float16(1),)) ran in float16 and gave
    inf for exp(12) = 162754.79. The primal's dtype decides (the float dtype the primals'
    arrays share, else float64), and a numpy tangent of another dtype is refused, as JAX
    refuses it ("primal and tangent arguments to jax.jvp do not match"); a Python float
    tangent takes the primal's dtype."""
    with pytest.raises(gc.GraphcError, match=r"^jvp: tangent 0 is float16\[\] but its primal "
                                             r"is float64\[\] \(the Python float 12\.0"):
        gc.jvp(gc.exp, (12.0,), (np.float16(1),))
    y, t = gc.jvp(gc.exp, (12.0,), (1.0,))
    assert y.dtype == t.dtype == np.float64
    np.testing.assert_allclose((y, t), (np.exp(12.0), np.exp(12.0)), rtol=1e-12)
    y, t = gc.jvp(gc.exp, (12.0,), (np.float64(2.0),))
    np.testing.assert_allclose(t, 2 * np.exp(12.0), rtol=1e-12)
    # beside a float32 array the Python float is float32: an np.float32 tangent fits it
    w = np.array([1.0, 2.0], np.float32)
    y, t = gc.jvp(lambda a, s: a * gc.exp(s), (w, 2.0), (np.zeros(2, np.float32),
                                                        np.float32(1.0)))
    assert t.dtype == np.float32
    np.testing.assert_allclose(t, w * np.float32(np.exp(2.0)), rtol=1e-6)
    with pytest.raises(gc.GraphcError, match=r"tangent 1 is float16\[\] but its primal is "
                                             r"float32\[\]"):
        gc.jvp(lambda a, s: a * s, (w, 2.0), (w, np.float16(1.0)))
    # a Python float inside a pytree is a float64, as it is traced
    with pytest.raises(gc.GraphcError, match=r"tangent 0 is float16\[\] but its primal is "
                                             r"float64\[\]"):
        gc.jvp(lambda d: gc.exp(d["a"]), ({"a": 12.0},), ({"a": np.float16(1)},))
