"""Session 36's fixes of the function transformations; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc


def _dict_jvp_with_reordered_tangents():
    @gc.custom_jvp
    def f(x):
        return {"p": x * 1.0, "q": x * 2.0}

    @f.defjvp
    def rule(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), {"q": t * 2.0, "p": t * 1.0}  # the same keys, in another order
    return f


def test_custom_jvp_tangent_dict_is_matched_by_key_not_position():
    """A custom_jvp rule returning its tangent dict with the keys in another order than the
    function's output got the tangents by position (p's for q, q's for p) in grad, jvp and
    jacfwd; they are matched by key now, as JAX's (sorted) dicts are."""
    f = _dict_jvp_with_reordered_tangents()
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(f(x)["q"]))(x), [2.0, 2.0])
    np.testing.assert_allclose(gc.grad(lambda x: gc.sum(f(x)["p"]))(x), [1.0, 1.0])
    tangent = gc.jvp(f, (x,), (x,))[1]
    np.testing.assert_allclose(tangent["p"], [1.0, 2.0])
    np.testing.assert_allclose(tangent["q"], [2.0, 4.0])
    np.testing.assert_allclose(gc.jacfwd(f)(x)["q"], 2.0 * np.eye(2))


def test_custom_jvp_tangent_with_other_keys_is_an_error_naming_them():
    """A tangent dict with other keys than the output's is still refused, now naming both."""
    @gc.custom_jvp
    def f(x):
        return {"p": x * 1.0, "q": x * 2.0}
    f.defjvp(lambda p, t: (f(p[0]), {"p": t[0], "r": t[0]}))
    with pytest.raises(gc.GraphcError, match=r"custom_jvp function f: the rule's tangent_out "
                       r"does not match the function's output: keys \['p', 'r'\] where a dict "
                       r"with keys \['p', 'q'\] is"):
        gc.grad(lambda x: gc.sum(f(x)["q"]))(np.ones(2))
