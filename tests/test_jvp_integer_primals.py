"""jvp and jacfwd with an integer primal (an index, a count) beside float ones, as JAX takes
them (its tangent is float0; here an integer tangent, not read). They were refused: 'cannot
differentiate with respect to a int64 value' (found by the s21c review)."""
import numpy as np
import pytest

import graphc as gc


def f(x, n):
    return {"picked": x[n] * x, "count": n + 1}


def test_jvp_with_an_integer_primal_pushes_the_float_tangents_only():
    x, dx = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    for dn in (np.zeros((), np.int64), np.ones((), np.int64)):  # not read either way
        out, tangent = gc.jvp(f, (x, np.asarray(2)), (dx, dn))
        np.testing.assert_allclose(out["picked"], x[2] * x)
        np.testing.assert_allclose(tangent["picked"], dx[2] * x + x[2] * dx)
        assert int(out["count"]) == 3 and int(tangent["count"]) == 0


def test_jacfwd_with_an_integer_argument_not_differentiated():
    x = np.array([0.5, -1.0, 2.0])
    jac = gc.jacfwd(lambda x, n: x[n] * x, argnums=0)(x, np.asarray(1))
    want = np.diag(np.full(3, x[1]))
    want[:, 1] += x
    np.testing.assert_allclose(jac, want)


def test_a_tangent_dict_may_list_its_keys_in_another_order():
    """JAX sorts a dict's keys when it flattens it, so {'a':..,'b':..} and {'b':..,'a':..} are
    one structure there; graphc keeps the primal's order and pairs the tangent's leaves by
    key (found by the s21e review: refused as 'not a pytree like its primal')."""
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    fn = lambda d: d["a"] * d["b"]  # noqa: E731
    primal, tangent = {"b": b, "a": a}, {"a": np.ones(2), "b": np.full(2, 10.0)}
    _, t = gc.jvp(fn, (primal,), (tangent,))
    np.testing.assert_allclose(t, 1.0 * b + a * 10.0)
    _, f_jvp = gc.linearize(fn, primal)
    np.testing.assert_allclose(f_jvp(tangent), 1.0 * b + a * 10.0)
    with pytest.raises(gc.GraphcError, match=r"tangent 0 does not match its primal: keys "
                                             r"\['a'\] where a dict with keys \['a', 'b'\] is"):
        gc.jvp(fn, (primal,), ({"a": a},))


def test_a_numpy_integer_primal_refuses_a_float_tangent_that_is_not_zero():
    """A Python int's nonzero tangent was refused, but a numpy integer scalar's float tangent
    was dropped without a word: jvp(f, (x, np.int64(2)), (dx, 1.0)) gave the tangent of dx
    alone. JAX takes only float0 tangents for integer primals; a float tangent that is not
    zero is refused in one line naming the primal, zeros (and integer tangents, not read)
    are taken as before, by jvp and by linearize's f_jvp."""
    x, dx = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    want = dx[2] * x + x[2] * dx
    for n in (np.int64(2), np.int32(2)):
        for dn in (1.0, -0.5):
            with pytest.raises(gc.GraphcError, match=r"^jvp: primal 1 is int(64|32)\[\], which "
                                                     r"has no tangent \(JAX's float0\), but its "
                                                     r"tangent is a float that is not zero"):
                gc.jvp(lambda x, n: x[n] * x, (x, n), (dx, dn))
        for dn in (0.0, 0, n.dtype.type(5)):
            _, t = gc.jvp(lambda x, n: x[n] * x, (x, n), (dx, dn))
            np.testing.assert_allclose(t, want)
    _, f_jvp = gc.linearize(lambda x, n: x[n] * x, x, np.int64(2))
    np.testing.assert_allclose(f_jvp(dx, 0.0), want)
    with pytest.raises(gc.GraphcError, match=r"^linearize: f_jvp: primal 1 is int64\[\], "
                                             r"which has no tangent"):
        f_jvp(dx, 1.0)
    # a boolean primal too
    with pytest.raises(gc.GraphcError, match=r"primal 1 is bool\[\], which has no tangent"):
        gc.jvp(lambda x, b: gc.where(b, x, 0.0), (x, np.bool_(True)), (dx, 1.0))


def test_review_r2_float_primal_tangents_and_the_integer_refusal_edges():
    """Review r2 of dedca7e: beside a float32 array a Python float primal took no float64
    tangent, which ran before (as float32) and which JAX's jvp takes (a Python float's dtype
    is float64 there); a Python bool primal's nonzero float tangent was still dropped
    without a word (numpy's bool was refused); a traced float tangent of an integer primal
    was said to be "not zero" when its value is unknown (vmap(f_jvp) of zeros); a Python
    float in a pytree was said to take "the float dtype the primals' arrays share"."""
    w = np.array([1.0, 2.0], np.float32)
    for t in (np.float64(1.0), np.array(1.0), np.float32(1.0), 1.0):
        y, ty = gc.jvp(lambda a, s: a * s, (w, 2.0), (w, t))
        assert y.dtype == ty.dtype == np.float32
        np.testing.assert_array_equal(ty, [3.0, 6.0])
    with pytest.raises(gc.GraphcError, match=r"^jvp: tangent 0 is float16\[\] but its primal "
                                             r"is float64\[\]"):
        gc.jvp(gc.exp, (12.0,), (np.float16(1),))
    x, dx = np.array([0.5, -1.0]), np.array([1.0, 2.0])
    with pytest.raises(gc.GraphcError, match=r"^jvp: primal 1 is bool\[\], which has no "
                                             r"tangent \(JAX's float0\), but its tangent is a "
                                             r"float that is not zero"):
        gc.jvp(lambda x, b: gc.where(b, x, 0.0), (x, True), (dx, 1.0))
    _, t = gc.jvp(lambda x, b: gc.where(b, x, 0.0), (x, True), (dx, 0.0))
    np.testing.assert_array_equal(t, dx)
    _, f_jvp = gc.linearize(lambda x, n: x * x[n], x, np.int64(1))
    with pytest.raises(gc.GraphcError, match=r"^linearize: f_jvp: primal 1 is int64\[\], "
                                             r"which has no tangent \(JAX's float0\), but its "
                                             r"tangent is a traced float \(its value unknown"):
        gc.vmap(f_jvp)(np.ones((2, 2)), np.zeros(2))
    with pytest.raises(gc.GraphcError, match=r"tangent 0 is float32\[\] but its primal is "
                                             r"float64\[\] \(the Python float 2\.0 in a pytree: "
                                             r"float64\)"):
        gc.jvp(lambda d: d["w"] * d["a"], ({"w": w, "a": 2.0},),
               ({"w": w, "a": np.float32(1.0)},))


def test_a_python_float_in_a_pytree_primal_under_compile():
    """A Python float leaf of a pytree primal was differentiated eagerly but refused inside
    gc.compile with an internal line ('gradients() needs symbolic values, got float'): it is
    a weakly typed float64 constant there now, as eagerly. Values against the eager jvp and
    by hand (d/dt of w * a * b at w, a=2, b=4 along (w, 1, 1) is 4w + 2w + 8w = 14w)."""
    w = np.array([1.0, 2.0, 3.0], np.float32)

    def pushed(w):
        return gc.jvp(lambda d, b: d["w"] * d["a"] * b, ({"w": w, "a": 2.0}, 4.0),
                      ({"w": w, "a": 1.0}, 1.0))

    def alone(w):  # a result of the float alone: float64, as eagerly (JAX's, under x64)
        return gc.jvp(lambda d: (gc.sin(d[1]) * 3.0, d[0]), ((w, 2.0),),
                      ((w * 0, np.float64(0.5)),))

    for fn in (pushed, gc.compile(pushed)):
        y, t = fn(w)
        assert y.dtype == t.dtype == np.float32
        np.testing.assert_array_equal(y, 8 * w)
        np.testing.assert_array_equal(t, 14 * w)
    for (y, _), (t, t_w) in (alone(w), gc.compile(alone)(w)):
        assert np.asarray(t).dtype == np.float64 and t_w.dtype == np.float32
        np.testing.assert_allclose(y, 3 * np.sin(2.0), rtol=1e-12)
        np.testing.assert_allclose(t, 1.5 * np.cos(2.0), rtol=1e-12)
        np.testing.assert_array_equal(t_w, 0 * w)
    y, t = gc.vmap(pushed)(np.stack([w, 2 * w]))
    np.testing.assert_array_equal(np.asarray(t), 14 * np.stack([w, 2 * w]))
