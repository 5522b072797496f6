"""Session 36's fixes of the function transformations; each test failed before its fix."""
import ml_dtypes
import numpy as np
import pytest

import graphc as gc

BF16 = np.dtype(ml_dtypes.bfloat16)


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


def _scaled_by(w, kind):
    """a * w with a rule giving `a` no gradient: w is closed over, not an argument."""
    if kind == "custom_vjp":
        f = gc.custom_vjp(lambda a: a * w)
        f.defvjp(lambda a: (a * w, None), lambda r, g: (g * 0.0,))
    else:
        f = gc.custom_jvp(lambda a: a * w)
        f.defjvp(lambda p, t: (p[0] * w, t[0] * 0.0))
    return f


CLOSURE = "custom-gradient function <lambda> closes over a value that is being differentiated"


@pytest.mark.parametrize("kind", ["custom_vjp", "custom_jvp"])
def test_differentiating_a_closed_over_value_is_refused_when_the_arguments_are_constants(kind):
    """A custom-gradient function whose arguments were all constants (an array, a Python
    float) but which closed over the value being differentiated was differentiated through
    its forward computation, bypassing the rule (grad gave x, not an error); traced, compiled
    and eagerly it is now the closure error the README documents, as where an argument is
    traced (JAX refuses both)."""
    x, w0 = np.arange(1.0, 4.0), np.full(3, 2.0)
    with pytest.raises(gc.GraphcError, match=CLOSURE):
        gc.grad(lambda w: gc.sum(_scaled_by(w, kind)(x)))(w0)
    with pytest.raises(gc.GraphcError, match=CLOSURE):
        gc.grad(lambda w: gc.sum(_scaled_by(w, kind)(2.0)))(w0)
    with pytest.raises(gc.GraphcError, match=CLOSURE):
        gc.compile(gc.grad(lambda w: gc.sum(_scaled_by(w, kind)(x))))(w0)
    w = gc.tensor(w0, requires_grad=True)
    y = gc.sum(_scaled_by(w, kind)(x))  # the call itself is fine: backward() is refused
    np.testing.assert_allclose(np.asarray(y), 12.0)
    with pytest.raises(gc.GraphcError, match=CLOSURE):
        y.backward()
    # a closed-over value not being differentiated (another argument of grad, a tensor not
    # requiring grad, no_grad) still works
    np.testing.assert_allclose(
        gc.grad(lambda v, w: gc.sum(_scaled_by(w, kind)(x) * v))(x, w0), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(gc.compile(lambda w: _scaled_by(w, kind)(x))(w0), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(np.asarray(_scaled_by(gc.tensor(w0), kind)(x)), [2.0, 4.0, 6.0])
    with gc.no_grad():
        assert not _scaled_by(w, kind)(x).requires_grad


def test_derivatives_inside_a_trace_take_a_float_number_argument():
    """grad, value_and_grad, jacfwd and hessian called inside a trace (compile, vmap, grad of
    grad, a scan body) with a Python or numpy float at a differentiated position went to the
    symbolic path before turning the number into an array: "gradients() needs symbolic
    values, got float", jacfwd's "a float input has no Jacobian", or np.float64(0.5) lifted
    as float32 ("operands must have one dtype"). They give the eager values now, as JAX's
    (jacrev, jvp and vjp already did); a float leaf of a dict too."""
    xs = np.linspace(0.1, 1.2, 12).reshape(4, 3)
    x = xs[0]

    def f(h, x):
        return gc.sum(gc.sin(h * x))

    def df_dh(h, x):  # by hand: d/dh sum(sin(h x)) = sum(x cos(h x))
        return np.sum(x * np.cos(h * x), axis=-1)

    want = df_dh(0.5, x)
    assert abs(gc.grad(f)(0.5, x) - want) < 1e-12  # eagerly, as before
    for got in [gc.compile(lambda x: gc.grad(f)(0.5, x))(x),
                gc.compile(lambda x: gc.grad(f)(np.float64(0.5), x))(x),
                gc.compile(lambda x: gc.value_and_grad(f)(0.5, x)[1])(x),
                gc.compile(lambda x: gc.jacfwd(f)(0.5, x))(x)]:
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(gc.vmap(gc.grad(f), in_axes=(None, 0))(0.5, xs), df_dh(0.5, xs),
                               rtol=1e-12)
    np.testing.assert_allclose(
        gc.compile(lambda xs: gc.scan(lambda c, x: (c, gc.grad(f)(0.5, x)), 0.0, xs)[1])(xs),
        df_dh(0.5, xs), rtol=1e-12)
    # d2/dh2 = -sum(x^2 sin(h x)); d/dx of df/dh = cos(h x) - h x sin(h x)
    np.testing.assert_allclose(gc.compile(lambda x: gc.hessian(f)(0.5, x))(x),
                               -np.sum(x ** 2 * np.sin(0.5 * x)), rtol=1e-12)
    np.testing.assert_allclose(gc.grad(lambda x: gc.grad(f)(0.5, x))(x),
                               np.cos(0.5 * x) - 0.5 * x * np.sin(0.5 * x), rtol=1e-12)
    # a Python float leaf of a differentiated dict
    w = np.array([1.0, 2.0])
    g = gc.vmap(gc.grad(lambda p: gc.sum(p["w"] * p["s"])), in_axes=({"w": 0, "s": None},))(
        {"w": np.stack([w, 2 * w]), "s": 2.0})
    np.testing.assert_allclose(g["w"], np.full((2, 2), 2.0))
    np.testing.assert_allclose(g["s"], [3.0, 6.0])


def _half_pair(a):  # one float16 and one bfloat16 output
    return gc.cast(gc.sin(a), "float16"), gc.cast(gc.cos(a), "bfloat16")


def _summed(fn):
    return lambda a: sum(gc.sum(gc.cast(o, "float32")) for o in fn(a))


def test_custom_gradients_and_remat_take_a_float16_and_a_bfloat16_output():
    """remat, custom_vjp and custom_jvp pack their differentiable outputs into one value of
    their common dtype: np.result_type(float16, bfloat16) has none, so a function returning
    one of each crashed with numpy's DTypePromotionError. They pack them as float32 now,
    exact for both, and give the plain gradient cos(a) - sin(a)."""
    a = np.array([0.3, -1.2, 2.0], np.float32)
    want = np.cos(a) - np.sin(a)
    jvp_pair = gc.custom_jvp(_half_pair)
    jvp_pair.defjvp(lambda p, t: (_half_pair(p[0]), (gc.cast(gc.cos(p[0]) * t[0], "float16"),
                                                     gc.cast(-gc.sin(p[0]) * t[0], "bfloat16"))))
    vjp_pair = gc.custom_vjp(_half_pair)
    vjp_pair.defvjp(lambda a: (_half_pair(a), a),
                    lambda a, g: (gc.cast(g[0], "float32") * gc.cos(a)
                                  - gc.cast(g[1], "float32") * gc.sin(a),))
    for fn in (gc.remat(_half_pair), jvp_pair, vjp_pair):
        got = gc.grad(_summed(fn))(a)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)
    t = gc.tensor(a, requires_grad=True)
    _summed(vjp_pair)(t).backward()
    np.testing.assert_allclose(t.grad, want, rtol=1e-6)


def test_clip_grad_norm_of_a_float16_and_a_bfloat16_gradient_is_float32_as_torchs():
    """clip_grad_norm_ read a numpy gradient through its `.data` (a buffer, which a bfloat16
    array cannot give) and took the total's dtype with np.result_type(float16, bfloat16):
    both crashed. As torch's, the total of a float16 and a bfloat16 gradient is float32 now,
    and each gradient is scaled in its own dtype."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    a = gc.nn.Parameter(np.ones(3, np.float16))
    b = gc.nn.Parameter(np.ones(2, BF16))
    (gc.sum(gc.cast(a, "float32") * 3.0) + gc.sum(gc.cast(b, "float32") * 4.0)).backward()
    total = gc.nn.utils.clip_grad_norm_([a, b], 1.0)

    ta = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    tb = torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    ta.grad = torch.full((3,), 3.0, dtype=torch.float16)
    tb.grad = torch.full((2,), 4.0, dtype=torch.bfloat16)
    want = torch.nn.utils.clip_grad_norm_([ta, tb], 1.0)
    assert np.asarray(total.data).dtype == np.float32 and want.dtype == torch.float32
    # (s47) each gradient's norm in its own dtype, as torch's: sqrt(27) in float16 and
    # sqrt(32) in bfloat16, then their float32 norm; sqrt(59) computed in float64 before
    np.testing.assert_allclose(float(total.data), np.sqrt(59.0), rtol=1e-3)
    assert float(total.data) == float(want)
    assert a.grad.dtype == np.float16 and b.grad.dtype == BF16
    np.testing.assert_array_equal(a.grad.astype(np.float32), ta.grad.float().numpy())
    np.testing.assert_array_equal(b.grad.astype(np.float32), tb.grad.float().numpy())


def test_loops_and_branches_take_a_dict_with_its_keys_in_another_order():
    """A scan, fori_loop or while_loop body returning its dict carry with the keys in another
    order, and cond/switch branches returning dicts whose keys differ only in order, were
    refused ("must return a carry with the structure of the initial one"; cond named two
    identical-looking types). JAX takes them (dicts are sorted pytrees): they are matched by
    key now, in the order of the initial carry or of the first branch, traced and eagerly."""
    x = np.array([1.0, 2.0])

    def body(c, i):
        return {"b": c["b"] + i, "a": c["a"] * 2.0}, c["a"]

    for run in (lambda x: gc.scan(body, {"a": x, "b": x}, np.arange(3.0)),
                gc.compile(lambda x: gc.scan(body, {"a": x, "b": x}, np.arange(3.0)))):
        carry, ys = run(x)
        assert list(carry) == ["a", "b"]
        np.testing.assert_allclose(carry["a"], [8.0, 16.0])
        np.testing.assert_allclose(carry["b"], [4.0, 5.0])
        np.testing.assert_allclose(ys, [[1.0, 2.0], [2.0, 4.0], [4.0, 8.0]])
    grad = gc.grad(lambda x: gc.sum(gc.scan(body, {"a": x, "b": x}, np.arange(3.0))[0]["b"]))
    np.testing.assert_allclose(grad(x), [1.0, 1.0])

    def step(i, c):
        return {"b": c["b"] + 1.0, "a": c["a"] * 2.0}
    for out in (gc.fori_loop(0, 3, step, {"a": x, "b": x}),
                gc.compile(lambda x: gc.fori_loop(0, 3, step, {"a": x, "b": x}))(x),
                gc.compile(lambda x: gc.while_loop(lambda c: gc.sum(c["a"]) < 20.0,
                                                   lambda c: step(0, c), {"a": x, "b": x}))(x),
                gc.while_loop(lambda c: gc.sum(c["a"]) < 20.0, lambda c: step(0, c),
                              {"a": x, "b": x})):
        np.testing.assert_allclose(out["a"], [8.0, 16.0])
        np.testing.assert_allclose(out["b"], [4.0, 5.0])

    p_first = lambda a: {"p": a, "q": a * 2.0}  # noqa: E731
    q_first = lambda a: {"q": a * 3.0, "p": a * 4.0}  # noqa: E731
    out = gc.compile(lambda x: gc.cond(gc.sum(x) > 0, p_first, q_first, x))(x)
    np.testing.assert_allclose(out["p"], [1.0, 2.0])
    np.testing.assert_allclose(out["q"], [2.0, 4.0])
    out = gc.compile(lambda x: gc.cond(gc.sum(x) < 0, p_first, q_first, x))(x)
    np.testing.assert_allclose(out["p"], [4.0, 8.0])
    np.testing.assert_allclose(out["q"], [3.0, 6.0])
    out = gc.compile(lambda x, i: gc.switch(i, [p_first, q_first], x))(x, np.int64(1))
    np.testing.assert_allclose(out["p"], [4.0, 8.0])
    np.testing.assert_allclose(out["q"], [3.0, 6.0])


def test_a_dict_carry_or_branch_with_other_keys_is_refused_naming_the_keys():
    """Other keys are still refused, now saying which (the message showed only the types,
    the same on both sides)."""
    x = np.array([1.0, 2.0])
    with pytest.raises(gc.GraphcError, match=r"must return a carry with the structure of the "
                       r"initial one \(its dict at 1 has keys \['a', 'c'\] where the initial "
                       r"one's has \['a', 'b'\]\)"):
        gc.compile(lambda x: gc.scan(lambda c, i: ((c[0], {"a": c[1]["a"], "c": c[1]["b"]}),
                                                   None), (x, {"a": x, "b": x}), x))(x)
    with pytest.raises(gc.GraphcError, match=r"\(its dict has keys \['b', 'z'\] where the "
                       r"initial one's has \['a', 'b'\]\)"):
        gc.while_loop(lambda c: gc.sum(c["a"]) < 10,
                      lambda c: {"b": c["b"], "z": c["a"] * 2.0}, {"a": x, "b": x})
    with pytest.raises(gc.GraphcError, match=r"both must return the same structure, shapes "
                       r"and dtypes; their dicts have keys \['p', 'q'\] and \['p', 'r'\]"):
        gc.compile(lambda x: gc.cond(gc.sum(x) > 0, lambda a: {"p": a, "q": a},
                                     lambda a: {"r": a, "p": a}, x))(x)


def test_grad_of_a_function_returning_a_constant_is_zeros():
    """gc.grad(lambda x: 3.0)(x) raised "must return a tensor computed from its inputs"
    where JAX (and graphc's jacrev, jacfwd) give zeros; grad, value_and_grad and hessian
    give zeros now, eagerly and compiled, and an integer or non-scalar constant is refused
    as JAX refuses it."""
    x = np.ones(3)
    np.testing.assert_array_equal(gc.grad(lambda x: 3.0)(x), np.zeros(3))
    np.testing.assert_array_equal(gc.grad(lambda x: np.float64(3.0))(x), np.zeros(3))
    np.testing.assert_array_equal(gc.compile(gc.grad(lambda x: 3.0))(x), np.zeros(3))
    value, g = gc.value_and_grad(lambda x: 3.0)(x)
    assert float(value) == 3.0
    np.testing.assert_array_equal(g, np.zeros(3))
    np.testing.assert_array_equal(gc.hessian(lambda x: 3.0)(x), np.zeros((3, 3)))
    with pytest.raises(gc.GraphcError, match="grad: the function returned an int64 value"):
        gc.grad(lambda x: 3)(x)
    with pytest.raises(gc.GraphcError, match=r"grad: <lambda> returned a value of shape \(2,\); "
                       "a gradient needs a scalar output"):
        gc.grad(lambda x: np.ones(2))(x)


@pytest.mark.parametrize("kind", ["custom_vjp", "custom_jvp"])
def test_backward_with_inputs_refuses_a_closure_only_when_its_gradient_is_wanted(kind):
    """backward(inputs=[v]) refused a custom-gradient function closing over a tensor w that
    requires grad though w was not in inputs= (its gradient is not computed, so none is
    lost); the closure check looks only at the tensors backward fills now: those in inputs=
    (a non-leaf too), every leaf without inputs=."""
    x, w0 = np.arange(1.0, 4.0), np.full(3, 2.0)
    w = gc.tensor(w0, requires_grad=True)
    v = gc.tensor(x, requires_grad=True)
    y = gc.sum(_scaled_by(w, kind)(x) * v)
    y.backward(inputs=[v])
    np.testing.assert_allclose(v.grad, [2.0, 4.0, 6.0])
    assert w.grad is None
    for inputs in ([w], [v, w], None):
        with pytest.raises(gc.GraphcError, match=CLOSURE):
            y.backward(inputs=inputs)
    h = w * 1.0  # a non-leaf closed over, and named in inputs=
    with pytest.raises(gc.GraphcError, match=CLOSURE):
        gc.sum(_scaled_by(h, kind)(x) * v).backward(inputs=[h])


def test_custom_jvp_rule_returning_a_none_primal_out_is_refused():
    """A custom_jvp rule returning None as primal_out for a scalar output passed silently
    since tangent_out took None for zeros (np.shape(None) is the scalar's ()); it is refused
    again, as JAX refuses it, and a None tangent_out still stands for zeros."""
    @gc.custom_jvp
    def s(x):
        return gc.sum(x * x)
    s.defjvp(lambda p, t: (None, gc.sum(2.0 * p[0] * t[0])))
    with pytest.raises(gc.GraphcError, match=r"custom_jvp function s: the rule's primal_out "
                       r"has shapes \[None\] but the function returns \[\(\)\]"):
        gc.grad(s)(np.array([1.0, 2.0]))

    @gc.custom_jvp
    def pair(x):
        return gc.sum(x * x), gc.sum(x)
    pair.defjvp(lambda p, t: (pair(p[0]), (gc.sum(2.0 * p[0] * t[0]), None)))
    np.testing.assert_allclose(gc.grad(lambda x: pair(x)[0])(np.array([1.0, 2.0])), [2.0, 4.0])


def test_gradient_of_a_float_leaf_of_a_dict_has_the_eager_dtype_inside_a_trace():
    """The gradient with respect to a Python float leaf of a dict argument, next to a
    float32 array, was float64 eagerly (a weakly typed float64, as JAX's under x64) but
    float32 under compile and vmap, which made the leaf a strong array of the shared dtype;
    inside a trace the leaf is a weakly typed value of its own dtype now, as eagerly."""
    x32 = np.ones(3, np.float32)

    def g(p):
        return gc.sum(p["w"] * p["s"])
    eager = gc.grad(g)({"w": x32, "s": 2.0})
    compiled = gc.compile(lambda w: gc.grad(g)({"w": w, "s": 2.0}))(x32)
    batched = gc.vmap(gc.grad(g), in_axes=({"w": 0, "s": None},))(
        {"w": np.stack([x32, 2 * x32]), "s": 2.0})
    for got in (eager, compiled):
        assert np.asarray(got["s"]).dtype == np.float64
        assert np.asarray(got["w"]).dtype == np.float32
        np.testing.assert_allclose(got["s"], 3.0)
        np.testing.assert_allclose(got["w"], [2.0, 2.0, 2.0])
    assert np.asarray(batched["s"]).dtype == np.float64
    assert np.asarray(batched["w"]).dtype == np.float32
    np.testing.assert_allclose(batched["s"], [3.0, 6.0])
    # a numpy float32 leaf next to float64 arrays keeps its float32 too
    x64 = np.ones(3)
    got = gc.compile(lambda w: gc.grad(g)({"w": w, "s": np.float32(2.0)}))(x64)
    assert np.asarray(got["s"]).dtype == gc.grad(g)({"w": x64, "s": np.float32(2.0)})["s"].dtype


def test_grad_of_a_function_returning_a_constant_tensor_is_zeros():
    """A function returning a constant graphc tensor (gc.tensor(2.0), a parameter it closes
    over) still got "the function must return a tensor computed from its inputs", though it
    returned a tensor; its gradient is zeros now, as JAX's for jnp.float32(2.), and the value
    is the tensor's at each call."""
    x = np.ones(3, np.float32)
    got = gc.grad(lambda x: gc.tensor(2.0))(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.zeros(3))
    np.testing.assert_array_equal(gc.compile(gc.grad(lambda x: gc.tensor(2.0)))(x), np.zeros(3))
    scale = gc.nn.Parameter(np.array(5.0, np.float32))
    value_and_grad = gc.compile(gc.value_and_grad(lambda x: scale))
    assert float(value_and_grad(x)[0]) == 5.0
    scale.data = np.array(7.0, np.float32)
    value, g = value_and_grad(x)
    assert float(value) == 7.0
    np.testing.assert_array_equal(g, np.zeros(3))


@pytest.mark.parametrize("result", [np.array("a"), np.complex128(1j), 2 ** 70])
def test_grad_of_a_non_numeric_constant_names_grad(result):
    """A function returning a string, a complex number or an int past int64 got a bare
    "dtype <U1 is not supported ..." (making it a constant of the trace) without "grad:";
    it is grad's own message again."""
    with pytest.raises(gc.GraphcError, match=r"^grad: the function must return a tensor "
                       r"computed from its inputs"):
        gc.grad(lambda x: result)(np.ones(3))


def test_grad_of_an_integer_or_bool_result_says_which_in_english():
    """The refusal of an integer or bool result said "returned a int64 value" and told a bool
    result to "return the integer as aux"; it says "an int64" and "the bool" now."""
    x = np.ones(3)
    with pytest.raises(gc.GraphcError, match=r"grad: the function returned an int32 value; "
                       r"only a floating-point result has a gradient \(cast it, or return "
                       r"the integer as aux with has_aux=True\)"):
        gc.grad(lambda x: np.int32(3))(x)
    with pytest.raises(gc.GraphcError, match=r"value_and_grad: the function returned a bool "
                       r"value; .*return the bool as aux"):
        gc.value_and_grad(lambda x: gc.sum(x) > 0)(x)


def test_dict_keys_apart_print_as_python_shows_them():
    """A carry or branch dict with int keys where the other has the same keys as strings
    printed both as ['1', '2'] ("its dict has keys ['1', '2'] where the initial one's has
    ['1', '2']"); the keys print as their reprs now, sorted by them."""
    x = np.ones(2)
    with pytest.raises(gc.GraphcError, match=r"\(its dict has keys \['1', '2'\] where the "
                       r"initial one's has \[1, 2\]\)"):
        gc.while_loop(lambda c: gc.sum(c[1]) < 10.0,
                      lambda c: {"1": c[1] * 2.0, "2": c[2]}, {1: x, 2: x})
    with pytest.raises(gc.GraphcError, match=r"their dicts have keys \[1, 2\] and "
                       r"\['1', '2'\]"):
        gc.compile(lambda x: gc.cond(gc.sum(x) > 0, lambda a: {1: a, 2: a},
                                     lambda a: {"1": a, "2": a}, x))(x)


def _step_dict_body(other_keys):
    def body(c, i):
        if int(np.asarray(getattr(i, "data", i))) == 0:
            return c + 1.0, {"p": c, "q": c * 10.0}
        return c + 1.0, ({"r": c, "p": c} if other_keys else {"q": c * 10.0, "p": c})
    return body


def test_eager_scan_stacks_ys_dicts_by_key():
    """An eager scan whose step returned its ys dict with the keys in another order than
    step 0's stacked the leaves by position (ys["p"] got the q values of that step); they are
    stacked by key now, and other keys are refused naming them, not stacked."""
    x = np.array([1.0, 2.0])
    ys = gc.scan(_step_dict_body(False), x, np.array([0, 1]))[1]
    np.testing.assert_allclose(ys["p"], [[1.0, 2.0], [2.0, 3.0]])
    np.testing.assert_allclose(ys["q"], [[10.0, 20.0], [20.0, 30.0]])
    with pytest.raises(gc.GraphcError, match=r"must return ys of one structure at every step; "
                       r"step 1's differs from step 0's \(its dict has keys \['p', 'r'\] "
                       r"where step 0's has \['p', 'q'\]\)"):
        gc.scan(_step_dict_body(True), x, np.array([0, 1]))


def test_custom_jvp_tangent_of_a_wrong_shape_is_named_by_its_key():
    """A tangent of the wrong shape in a custom_jvp rule's tangent dict was named by its leaf
    index ("tangent_out 0 has shape (1,)"), which says nothing once keys are matched by
    name; it is named as Python indexes it now: tangent_out['p'], tangent_out[1]."""
    @gc.custom_jvp
    def d(x):
        return {"p": x * 1.0, "q": x * 2.0}
    d.defjvp(lambda p, t: (d(p[0]), {"q": t[0] * 2.0, "p": t[0][:1]}))
    with pytest.raises(gc.GraphcError, match=r"custom_jvp function d: the rule's "
                       r"tangent_out\['p'\] has shape \(1,\) but the output has shape \(2,\)"):
        gc.grad(lambda x: gc.sum(d(x)["p"]))(np.array([1.0, 2.0]))

    @gc.custom_jvp
    def pair(x):
        return x * 1.0, x * 2.0
    pair.defjvp(lambda p, t: (pair(p[0]), (t[0], gc.sum(t[0]))))
    with pytest.raises(gc.GraphcError, match=r"the rule's tangent_out\[1\] has shape \(\) but "
                       r"the output has shape \(2,\)"):
        gc.grad(lambda x: gc.sum(pair(x)[1]))(np.array([1.0, 2.0]))
