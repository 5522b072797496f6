"""Session 31's findings (left from session 30's reviews, then this session's helpers);
each test failed before its fix."""
import errno

import numpy as np
import pytest

from graphc import checkpoint
from graphc.cli import main
from test_review_s30_cli import TINY, _text


def _trained(tmp_path, capsys):
    out, data = tmp_path / "o", _text(tmp_path)
    assert main(["train", *TINY, "--data", data, "--out", str(out)]) == 0
    capsys.readouterr()
    return out, data


def _edit_header(ckpt, **changes):
    arrays, meta = checkpoint.load(str(ckpt))
    meta.update(changes)
    checkpoint.save(str(ckpt), arrays, {k: v for k, v in meta.items()
                                        if k not in ("format", "version")})


def test_a_refused_lr_on_plateau_header_names_the_flag_on_the_command_line(tmp_path, capsys):
    """`graphc train --resume` of a header with an lr_on_plateau state the run has not
    named the library's keyword (allow_changed_settings=True), not the flag."""
    out, data = _trained(tmp_path, capsys)
    _edit_header(out / "checkpoint.npz", lr_on_plateau={"mode": "min", "factor": 0.5,
                                                        "patience": 2})
    assert main(["train", *TINY, "--data", data, "--steps", "5", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "pass --allow-changed-settings to continue" in err, err
    assert "allow_changed_settings=True" not in err


def test_a_vocabulary_with_a_lone_surrogate_is_refused_on_load(tmp_path, capsys):
    """JSON's \\ud800 reached sample's encoder and print, which failed on it (a traceback
    from deep inside the output stream)."""
    out, _ = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    _, meta = checkpoint.load(str(ckpt))
    vocab = meta["vocab"]
    _edit_header(ckpt, vocab="\ud800" + vocab[1:])
    assert main(["sample", "--checkpoint", str(out), "--tokens", "5"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"graphc: error: checkpoint {str(ckpt)!r}: header field vocab holds a lone "
        "surrogate (character 0, U+D800), which no UTF-8 text has"]


def test_a_sample_that_cannot_be_saved_ends_its_line_before_the_error(tmp_path, capsys,
                                                                      monkeypatch):
    """On a full disk sample.txt's error line was glued onto the sample's last token."""
    import graphc.files

    real = graphc.files.atomic_writer

    def full_disk(path, *a, **k):
        if not str(path).endswith("sample.txt"):
            return real(path, *a, **k)

        class Full:
            def __enter__(self):
                return self

            def write(self, data):
                pass

            def __exit__(self, *exc):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return Full()

    monkeypatch.setattr(graphc.files, "atomic_writer", full_disk)
    assert main(["train", *TINY, "--data", _text(tmp_path), "--out", str(tmp_path / "o"),
                 "--sample-tokens", "20", "--no-progress"]) == 2
    captured = capsys.readouterr()
    sample = captured.out.split("---- sample ----\n", 1)[1]
    assert sample.endswith("\n") and len(sample) == 21, repr(sample)
    assert "No space left on device" in captured.err


# ---- helper 1 (fuzzing layers against torch) -------------------------------------------------
def test_state_dict_lists_each_modules_parameters_then_buffers_then_submodules():
    """Before: every parameter first, then every buffer; code pairing two state dicts by
    position (zip) paired a running_mean with a weight."""
    torch = pytest.importorskip("torch", reason="torch, the test oracle, is not installed")
    import graphc as gc
    ours = gc.nn.Sequential(gc.nn.BatchNorm1d(3), gc.nn.Linear(3, 2), gc.nn.BatchNorm1d(2))
    theirs = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2),
                                 torch.nn.BatchNorm1d(2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in ours.state_dict().items():  # (Linear's weight is stored transposed)
        assert value.size == theirs.state_dict()[name].numel(), name


def test_load_state_dict_takes_strict_false_and_returns_torchs_key_lists():
    import graphc as gc
    model = gc.nn.Sequential(gc.nn.Linear(3, 2), gc.nn.BatchNorm1d(2))
    before = model.state_dict()["0.bias"].copy()
    weight = np.arange(6.0, dtype=np.float32).reshape(model.state_dict()["0.weight"].shape)
    result = model.load_state_dict({"0.weight": weight, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.bias",  # (num_batches_tracked: filled in,
                                   "1.running_mean", "1.running_var", "1.weight"]  # torch's)
    assert result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.state_dict()["0.weight"], weight)
    np.testing.assert_array_equal(model.state_dict()["0.bias"], before)
    full = {k: v.copy() for k, v in model.state_dict().items()}
    assert model.load_state_dict(full) == ([], [])
    with pytest.raises(Exception, match=r"missing \['0.bias'\], unexpected \[\]"):
        model.load_state_dict({k: v for k, v in full.items() if k != "0.bias"})
    with pytest.raises(Exception, match="0.weight has shape"):  # shapes checked all the same
        model.load_state_dict({"0.weight": np.zeros((5, 5))}, strict=False)


def test_rms_norm_refuses_a_weight_of_another_shape_as_layer_norm_does():
    """A (3, 4) weight for an x of shape (2, 3, 4) normalised over the last axis alone and
    broadcast the weight, where torch's F.rms_norm(x, (3, 4), w) normalises over both axes:
    other values, no error."""
    import graphc as gc
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    with pytest.raises(Exception, match=r"rms_norm: weight must have shape \(4,\), got "
                                        r"\(3, 4\)"):
        gc.rms_norm(x, np.ones((3, 4)))
    np.testing.assert_allclose(np.asarray(gc.rms_norm(x, np.full(4, 2.0), 1e-6)),
                               2 * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6))


@pytest.mark.parametrize("op,layer", [("layer_norm", "LayerNorm"), ("rms_norm", "RMSNorm")])
@pytest.mark.parametrize("shape", [(4,), [4], 4, [2, 4]])
def test_torchs_normalized_shape_argument_is_one_line_naming_the_function(op, layer, shape):
    """(Session 51) torch's F.layer_norm(x, normalized_shape, weight, bias, eps) called as
    graphc's (x, weight, bias, eps): the shape was read as a weight ("cannot use a tuple as a
    tensor operand", rms_norm's "weight must have shape (4,), got (1,)") and, given a weight
    and a bias too, the bias as eps (numpy's TypeError "only 0-dimensional arrays can be
    converted to Python scalars", naming no function); a bad eps was float()'s TypeError."""
    import graphc as gc
    fn = getattr(gc, op)
    x, w = np.ones((2, 4)), np.ones(4)
    line = (f"{op}: weight must be an array, got {shape!r}: graphc's {op} normalises over x's "
            f"last axis and takes no normalized_shape, torch's second argument (drop it; "
            f"graphc.nn.{layer} normalises over several trailing axes)")
    for args in ((shape,), (shape, w, w) if op == "layer_norm" else (shape, w)):
        with pytest.raises(gc.GraphcError) as info:
            fn(x, *args)
        assert str(info.value).splitlines()[0] == line
    with pytest.raises(gc.GraphcError, match=rf"^{op}: eps must be a number, got 'a'"):
        fn(x, w, eps="a")



@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_review_r4_a_traced_eps_gives_the_static_argnums_advice(op):
    """r4 on ad66a19: eps read through _number made a compiled function's eps argument
    'layer_norm: eps must be a number, got <%1:f32[] = input>' (an IR node the user never
    wrote), where it was the traced number error naming the argument and advising
    static_argnums (as r8 found for var's ddof); with static_argnums the value is taken."""
    import graphc as gc
    from ir.errors import TracedNumberError
    fn = getattr(gc, op)
    x = np.arange(8.0).reshape(2, 4)
    with pytest.raises(TracedNumberError, match=r"the value passed as 'e' is traced.*"
                       r"static_argnums") as info:
        gc.compile(lambda a, e: fn(a, eps=e))(x, 1e-5)
    assert "test_review_s31.py" in str(info.value).splitlines()[1]
    np.testing.assert_array_equal(
        gc.compile(lambda a, e: fn(a, eps=e), static_argnums=(1,))(x, 1e-5),
        fn(x, eps=1e-5).data)

@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_review_r8_a_traced_eps_is_named_as_the_setting(op):
    """r8 on c532050: _number's traced 0-d value became float()'s own line, 'float() of a
    symbolic value: ...', for every setting read by _number: a call the user never wrote,
    naming neither the function nor the setting (an eps computed in the trace, or vmapped:
    nothing else on the line said which of the call's numbers it was). Led by the setting
    now, the argument's advice after it as before."""
    import graphc as gc
    from ir.errors import TracedNumberError
    fn = getattr(gc, op)
    x = np.arange(8.0).reshape(2, 4)
    lead = rf"^{op}: eps must be a number, got a traced value: its value is only known"
    for run, advice in ((lambda: gc.compile(lambda a, e: fn(a, eps=e))(x, 1e-5),
                         r".*the value passed as 'e' is traced.*static_argnums"),
                        (lambda: gc.compile(lambda a: fn(a, eps=gc.sum(a) * 0 + 1e-5))(x), ""),
                        (lambda: gc.vmap(lambda a, e: fn(a, eps=e))(x, np.full(2, 1e-5)), "")):
        with pytest.raises(TracedNumberError, match=lead + advice) as info:
            run()
        line, where = str(info.value).splitlines()
        assert "test_review_s31.py" in where and "float()" not in line
    with pytest.raises(TracedNumberError, match=r"^elu: alpha must be a number, got a traced "):
        gc.compile(lambda a, m: gc.elu(a, alpha=m))(x, 1.0)


# ---- helper 2 (fuzzing the transformations against JAX) -------------------------------------
def test_transforming_a_compiled_function_then_compiling_keeps_the_transformation():
    """gc.compile(gc.grad(gc.compile(f))) compiled f itself (a scalar, f's value): the
    wrappers copied the inner Compiled's __dict__ (its fn), and Compiled took it over its own;
    any callable object with an attribute `fn` was compiled as obj.fn."""
    import graphc as gc
    x = np.array([0.1, -0.5, 0.9])
    inner = gc.compile(lambda x: gc.sum(gc.sin(x) ** 3))
    want = 3 * np.sin(x) ** 2 * np.cos(x)
    np.testing.assert_allclose(gc.compile(gc.grad(inner))(x), want)
    np.testing.assert_allclose(gc.compile(gc.value_and_grad(inner))(x)[1], want)
    np.testing.assert_allclose(gc.compile(gc.jacrev(inner))(x), want)
    X = np.array([[0.3, -1.2, 2.0], [0.5, 0.1, -0.4]])
    rows = gc.compile(gc.vmap(gc.compile(lambda v: v * gc.sum(v))))(X)
    np.testing.assert_allclose(rows, X * X.sum(1, keepdims=True))

    class Scaled:
        def __init__(self, fn, scale):
            self.fn, self.scale = fn, scale

        def __call__(self, v):
            return self.fn(v) * self.scale
    np.testing.assert_allclose(gc.compile(Scaled(gc.sin, 3.0))(x), 3 * np.sin(x))
    outer = gc.compile(gc.compile(lambda a, n: a * n), static_argnums=1)
    assert outer.static_argnums == (1,)
    np.testing.assert_allclose(outer(x, 2), 2 * x)


def test_eager_derivatives_see_a_changed_closed_over_value():
    """Eager gc.grad, jacfwd and hessian kept the plan of their first call: a closed-over
    number or a rebound global array changed, and they returned the old derivative (JAX's
    un-jitted transformations trace at each call). A call that reads the same values runs
    the same plan."""
    import graphc as gc
    import runtime.build
    x = np.array([1.0, 2.0])
    scale = 1.0
    g = gc.grad(lambda x: scale * gc.sum(x ** 2))
    np.testing.assert_allclose(g(x), 2 * x)
    scale = 3.0
    np.testing.assert_allclose(g(x), 6 * x)
    n = 2
    j = gc.jacfwd(lambda x: x ** n)
    j(x)
    n = 3
    np.testing.assert_allclose(j(x), np.diag(3 * x ** 2))
    w = np.ones(2)
    h = gc.hessian(lambda x: gc.sum(w * x ** 3))
    h(x)
    w = np.full(2, 10.0)
    np.testing.assert_allclose(h(x), np.diag(60 * x))

    builds = []
    real = runtime.build.build_plan

    def counted(*args, **kwargs):
        builds.append(1)
        return real(*args, **kwargs)

    @gc.custom_vjp
    def f(v):
        return gc.sin(v)
    f.defvjp(lambda v: (gc.sin(v), v), lambda v, ct: (ct * gc.cos(v),))
    try:
        runtime.build.build_plan = counted
        for fn in (lambda v: gc.sum(f(v) * v), lambda v: gc.sum(gc.remat(gc.tanh)(v) * w)):
            d = gc.grad(fn)
            first = d(x)
            count = len(builds)
            assert count >= 1
            np.testing.assert_array_equal(d(x), first)
            assert len(builds) == count  # the same trace: the plan it built, not another
    finally:
        runtime.build.build_plan = real


def test_tracing_leaves_the_callers_arrays_writable():
    """A closed-over array became read-only for good (Graph.constant set the caller's own
    array's flag): `w[0] = 5.0` after gc.grad, gc.compile or gc.vmap raised "assignment
    destination is read-only". The plan keeps a copy, so writing w does not change it."""
    import graphc as gc
    x = np.array([1.0, 2.0])
    w = np.array([1.0, 1.0])
    compiled = gc.compile(lambda x: w * x)
    np.testing.assert_allclose(compiled(x), x)
    gc.grad(lambda x: gc.sum(w * x ** 2))(x)
    gc.vmap(lambda x: w * x)(np.ones((3, 2)))
    w[0] = 5.0
    np.testing.assert_allclose(compiled(x), x)  # jax.jit's constant too: the traced value


def test_a_flag_or_string_argument_not_differentiated_reaches_fn_as_it_is():
    """gc.grad(f)(x, True) refused the flag ("list its position in static_argnums", an option
    grad does not have) and a str "cannot make a tensor spec"; JAX passes both through."""
    import graphc as gc
    x = np.array([1.0, 2.0])

    def f(x, flag, mode="sq"):
        return gc.sum(x ** 2 if mode == "sq" else x) * (2.0 if flag else 1.0)
    np.testing.assert_allclose(gc.grad(f)(x, True), 4 * x)
    np.testing.assert_allclose(gc.grad(f)(x, False, "lin"), np.ones(2))
    np.testing.assert_allclose(gc.value_and_grad(f)(x, False)[1], 2 * x)
    np.testing.assert_allclose(gc.jacrev(f)(x, True, mode="lin"), np.full(2, 2.0))
    np.testing.assert_allclose(gc.hessian(f)(x, True), 4 * np.eye(2))
    with pytest.raises(Exception, match="grad: argument names is a list, which is not hashable"):
        gc.grad(lambda x, names: gc.sum(x))(x, ["a"])


def test_a_custom_jvp_function_called_in_its_own_rule_uses_the_rule_at_second_order():
    """JAX's idiom `out = f(x)` inside f's rule ran f's plain body, so a second derivative
    went through exp, not the rule: grad(grad(h))(0.3) was 2e^0.3 where JAX gives 4e^0.3, and
    a safe softplus rule's second derivative at 1000 was NaN (JAX: 0)."""
    import graphc as gc

    @gc.custom_jvp
    def h(x):
        return gc.exp(x)

    @h.defjvp
    def _(primals, tangents):
        out = h(primals[0])
        return out, 2.0 * out * tangents[0]

    @gc.custom_jvp
    def softplus(x):
        return gc.log(1.0 + gc.exp(x))

    @softplus.defjvp
    def _(primals, tangents):
        out = softplus(primals[0])
        return out, tangents[0] * (1.0 - gc.exp(-out))

    x = np.array([0.3, -0.2])
    np.testing.assert_allclose(gc.grad(gc.grad(h))(0.3), 4 * np.exp(0.3))
    np.testing.assert_allclose(gc.hessian(lambda v: gc.sum(h(v)))(x), np.diag(4 * np.exp(x)))
    np.testing.assert_allclose(gc.jacfwd(gc.jacfwd(lambda v: gc.sum(h(v))))(x),
                               np.diag(4 * np.exp(x)))
    np.testing.assert_allclose(gc.jvp(h, (x,), (np.ones(2),))[1], 2 * np.exp(x))
    assert gc.grad(gc.grad(softplus))(1000.0) == 0.0


def test_eager_cond_and_while_loop_check_their_predicates_as_traced_ones_do():
    """Eagerly a bool[3] predicate gave numpy's "truth value of an array ... is ambiguous";
    traced, one line naming cond (or cond_fun)."""
    import graphc as gc
    x = np.array([0.5, -1.0, 2.0])
    for run in (lambda: gc.cond(x > 0, lambda v: v, lambda v: v * 2.0, x),
                lambda: gc.compile(lambda x: gc.cond(x > 0, lambda v: v, lambda v: 2.0 * v,
                                                     x))(x)):
        with pytest.raises(gc.GraphcError, match=r"cond: the predicate must be a bool or "
                                                 r"integer scalar, got bool\[3\]"):
            run()
    with pytest.raises(gc.GraphcError, match=r"while_loop cond_fun .* must return a bool "
                                             r"scalar, got bool\[3\]"):
        gc.while_loop(lambda c: c < 5.0, lambda c: c * 2.0, x)
    np.testing.assert_allclose(gc.while_loop(lambda c: gc.all(c < 5.0), lambda c: c * 2.0,
                                             np.array([0.5, 1.0])), [4.0, 8.0])
    assert gc.cond(1, lambda v: v + 1, lambda v: v - 1, 2.0) == 3.0


# ---- helper 4 (hostile review of this session's changes) --------------------------------------
def test_arguments_holding_numbers_or_arrays_are_traced_not_made_settings():
    """The first cut of eager_runner made every argument not wholly of arrays static, so a
    batch dict with a float in it or a list of floats was refused as unhashable."""
    import graphc as gc
    x = np.array([1.0, 2.0])
    f = lambda w, batch: gc.sum(w * batch["x"]) * batch["scale"]  # noqa: E731
    np.testing.assert_allclose(gc.grad(f)(x, {"x": np.ones(2), "scale": 0.5}), [0.5, 0.5])
    g = lambda w, coefs: gc.sum(w * coefs[0] + coefs[1])  # noqa: E731
    np.testing.assert_allclose(gc.grad(g)(x, [2.0, 3.0]), [2.0, 2.0])
    np.testing.assert_allclose(gc.jacrev(lambda w, t: w * t[1])(x, (np.ones(2), 2)),
                               2 * np.eye(2))
    np.testing.assert_allclose(gc.grad(lambda w, empty: gc.sum(w))(x, []), [1.0, 1.0])


def test_a_linear_custom_jvp_rule_applying_f_to_the_tangent_does_not_recurse():
    """`return f(x), f(t)` (the rule of a linear f, which JAX takes) recursed without end once
    f kept its rule inside the rule: the node f(t) recorded ran the rule again on new
    tangents. On the tangents f is its plain body; on the primals it keeps its rule."""
    import graphc as gc

    @gc.custom_jvp
    def double(x):
        return 2.0 * x

    @double.defjvp
    def _(primals, tangents):
        return double(primals[0]), double(tangents[0])

    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(gc.grad(lambda a: gc.sum(double(a)))(x), [2.0, 2.0])
    np.testing.assert_allclose(gc.jacfwd(double)(x), 2 * np.eye(2))
    np.testing.assert_allclose(gc.jacrev(double)(x), 2 * np.eye(2))
    np.testing.assert_allclose(gc.hessian(lambda a: gc.sum(double(a) ** 2))(x), 8 * np.eye(2))
    np.testing.assert_allclose(gc.compile(gc.grad(lambda a: gc.sum(double(a))))(x), [2.0, 2.0])
    t = gc.tensor(x, requires_grad=True)
    gc.sum(double(t)).backward()
    np.testing.assert_allclose(t.grad, [2.0, 2.0])


def test_jacobians_of_a_call_without_arguments_say_so():
    """A bare ZeroDivisionError (i % len(args)) where the message was graphc's."""
    import graphc as gc
    for transform in (gc.jacrev, gc.jacfwd, gc.hessian):
        with pytest.raises(gc.GraphcError, match="argnums 0 but only 0 arguments"):
            transform(lambda: gc.ones(2))()


# ---- helper 5 (a second review of the mends) ----------------------------------------------------
@pytest.mark.parametrize("on_tangent", ["scan", "cond", "fori", "vmap", "map"])
def test_a_custom_jvp_rule_applying_f_to_the_tangent_in_a_region_does_not_recurse(on_tangent):
    """The tangent entering a scan or cond body (a new input there) could not be followed back
    to the rule's placeholders, so f kept its rule and recursed; vmap and map in the rule
    failed with "in_axes 0 is out of range"."""
    import graphc as gc
    apply = {
        "scan": lambda f, t: gc.scan(lambda c, _: (f(c), None), t, None, length=1)[0],
        "cond": lambda f, t: gc.cond(gc.sum(t) > -1e30, lambda v: f(v), lambda v: f(v), t),
        "fori": lambda f, t: gc.fori_loop(0, 1, lambda i, c: f(c), t),
        "vmap": lambda f, t: gc.vmap(f)(t),
        "map": lambda f, t: gc.map(f, t),
    }[on_tangent]

    @gc.custom_jvp
    def double(v):
        return 2.0 * v

    @double.defjvp
    def _(primals, tangents):
        return double(primals[0]), apply(double, tangents[0])

    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(gc.grad(lambda a: gc.sum(double(a)))(x), [2.0, 2.0])
    np.testing.assert_allclose(gc.jvp(double, (x,), (np.ones(2),))[1], [2.0, 2.0])
    np.testing.assert_allclose(gc.compile(gc.grad(lambda a: gc.sum(double(a))))(x), [2.0, 2.0])


def test_settings_are_arguments_tracing_would_fail_on():
    """An IntEnum member was traced (so `m is Mode.B` was silently False); ("lin", 0.5), a
    (flag, number) tuple and a complex failed as untraceable."""
    import enum
    from collections import namedtuple

    import graphc as gc

    class Mode(enum.IntEnum):
        A = 1
        B = 2
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        gc.grad(lambda v, m: gc.sum(v) * (2.0 if m is Mode.B else 1.0))(x, Mode.B), [2.0, 2.0])
    Cfg = namedtuple("Cfg", "kind scale")
    f = lambda v, c: gc.sum(v if c[0] == "lin" else v * v) * c[1]  # noqa: E731
    np.testing.assert_allclose(gc.grad(f)(x, ("lin", 0.5)), [0.5, 0.5])
    np.testing.assert_allclose(gc.grad(f)(x, Cfg("lin", 0.5)), [0.5, 0.5])
    np.testing.assert_allclose(
        gc.grad(lambda v, c: gc.sum(v) * (c[1] if c[0] else 1.0))(x, (True, 0.5)), [0.5, 0.5])
    np.testing.assert_allclose(gc.grad(lambda v, z: gc.sum(v) * abs(z))(x, 3 + 4j), [5.0, 5.0])


def test_fingerprints_take_bfloat16_and_empty_constants():
    """memoryview refused bfloat16's dtype ("cannot include dtype 'E' in a buffer") and
    empty arrays, so an eager derivative closing over either raised."""
    import graphc as gc
    from ml_dtypes import bfloat16
    w = np.array([0.5, 2.0], bfloat16)
    np.testing.assert_allclose(
        gc.grad(lambda v: gc.sum(v * gc.cast(w, "float64")))(np.ones(2)), [0.5, 2.0])
    empty = np.zeros((0, 2))
    np.testing.assert_allclose(
        gc.grad(lambda v: gc.sum(v) + gc.sum(empty))(np.ones(2)), [1.0, 1.0])


# ---- helper 6 (optimisers and the Trainer against torch) --------------------------------------
def test_a_number_lr_set_under_a_plateau_is_the_plateaus_and_checked():
    """opt.optimizer.lr = 0.05 replaced the ReduceLROnPlateau, which went on reducing an lr
    nothing read (torch's goes on from 0.05: 0.0005 after two reductions, graphc's updates
    kept 0.05); plateau.lr = -0.05 (the Trainer's own advice is `plateau.lr = x`) was taken
    and trained uphill."""
    import graphc as gc
    from graphc import optim
    q = gc.tensor(np.zeros(1), requires_grad=True)
    bound = optim.SGD(lr=0.1).bind([q])
    plateau = optim.ReduceLROnPlateau(bound, patience=0)
    plateau.step(1.0)
    bound.optimizer.lr = 0.05
    assert bound.optimizer.lr is plateau and plateau.lr == 0.05
    plateau.step(2.0)
    plateau.step(3.0)
    q.grad = np.ones(1)
    bound.step()
    np.testing.assert_allclose(-q.data, [0.0005])
    for bad in (-0.05, float("nan")):
        with pytest.raises(gc.GraphcError, match="ReduceLROnPlateau: lr must be a finite "
                                                 "number >= 0"):
            plateau.lr = bad
        with pytest.raises(gc.GraphcError, match="ReduceLROnPlateau: lr must be a finite"):
            bound.optimizer.lr = bad
    with pytest.raises(gc.GraphcError, match="the metric must be one number, got 'a'"):
        plateau.step("a")


def test_a_bound_optimizers_state_dict_keeps_settings_changed_during_the_run():
    """lr and betas set at step 3 were lost by state_dict()/load_state_dict(): the resumed
    run went back to lr 0.1 and betas (0.9, 0.999) (torch's keeps param_groups)."""
    import graphc as gc
    from graphc import optim
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(10)]

    def run(split):
        q = gc.tensor(np.ones(3), requires_grad=True)
        bound = optim.Adam(lr=0.1).bind([q])
        for i, g in enumerate(grads):
            if i == 3:
                bound.optimizer.lr, bound.optimizer.betas = 0.01, (0.5, 0.9)
            if i == split:
                saved = bound.state_dict()
                q = gc.tensor(q.data.copy(), requires_grad=True)
                bound = optim.Adam(lr=0.1).bind([q])
                bound.load_state_dict(saved)
            q.grad = g
            bound.step()
        return q.data
    np.testing.assert_array_equal(run(split=6), run(split=None))
    bound = optim.Adam(lr=0.1).bind([gc.tensor(np.ones(3), requires_grad=True)])
    bad = {**bound.state_dict(), "settings": {"lr": 0.1, "beta1": 1.5}}
    with pytest.raises(gc.GraphcError, match="beta1"):
        bound.load_state_dict(bad)
    assert bound.optimizer.lr(0) == 0.1


@pytest.mark.parametrize("make", [
    lambda optim: optim.multistep(-0.1, [5]),
    lambda optim: optim.exponential_decay(-0.1, 1, 0.9),
    lambda optim: optim.polynomial_decay(-0.1, 0.0, 1.0, 10),
    lambda optim: optim.piecewise_constant(-0.1, {5: 0.5}),
    lambda optim: optim.warmup_cosine_decay(-0.1, -0.1, 0, 10),
])
def test_schedules_refuse_a_negative_learning_rate(make):
    """SGD(lr=-0.1) and cosine(-0.1) were refused, these schedules were not: the
    parameters climbed the gradient."""
    import graphc as gc
    from graphc import optim
    with pytest.raises(gc.GraphcError, match="must be a finite number >= 0, got -0.1"):
        make(optim)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "SGD.update: lr must be a finite number >= 0"),
    (dict(settings={"beta1": 2.0}), "beta1"),
    (dict(settings={"eps": -1.0}), "eps"),
    (dict(settings={"weight_decay": -5.0}), "weight_decay"),
])
def test_update_checks_a_given_lr_and_settings(kwargs, message):
    import graphc as gc
    from graphc import optim
    opt = optim.SGD(lr=0.1) if "lr" in kwargs else optim.AdamW(lr=0.1)
    params, grads = {"w": np.ones(3)}, {"w": np.full(3, 0.5)}
    with pytest.raises(gc.GraphcError, match=message):
        opt.update(grads, opt.init(params), params, **kwargs)


@pytest.mark.parametrize("make", [lambda o: o.SGD(lr=0.1, momentum=0.9, nesterov="no"),
                                  lambda o: o.RMSprop(lr=0.1, centered="no"),
                                  lambda o: o.NAdam(lr=0.1, decoupled_weight_decay="no")])
def test_string_flags_are_refused_not_taken_as_true(make):
    """bool("no") is True: nesterov="no" turned Nesterov momentum on."""
    import graphc as gc
    from graphc import optim
    with pytest.raises(gc.GraphcError, match="must be True or False, got 'no'"):
        make(optim)


def test_bind_refuses_a_parameter_listed_twice():
    import graphc as gc
    from graphc import optim
    q = gc.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(gc.GraphcError, match="bind: 0 and 1 are the same tensor"):
        optim.SGD(lr=0.1).bind([q, q])


def test_resume_refuses_a_non_finite_loss_in_the_history(tmp_path):
    """A NaN in val_history was accepted by Trainer.resume; every save of the resumed run
    then failed (the loss of step 0 is not finite), and its work was lost."""
    from graphc import checkpoint
    from test_trainer import make_trainer
    trainer = make_trainer(steps=6)
    trainer.fit(str(tmp_path), progress=False)
    ckpt = str(tmp_path / "checkpoint.npz")
    wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
    arrays, meta = checkpoint.load_arrays(ckpt, wanted)
    meta["val_history"][0][1] = float("nan")
    checkpoint.save(ckpt, arrays, {k: v for k, v in meta.items()
                                   if k not in ("format", "version")})
    with pytest.raises(checkpoint.CheckpointError, match="val_history must be a list of "
                                                         r"\[step from 0 to 2\*\*62, finite"):
        make_trainer(steps=12).resume(ckpt)


# ---- helper 7 (a review of the optimiser commit) ------------------------------------------------
def test_a_plateau_takes_what_float_takes_as_its_metric():
    """The first check refused a bfloat16 metric (dtype kind 'V'), which torch's takes."""
    from ml_dtypes import bfloat16

    import graphc as gc
    from graphc import optim
    plateau = optim.ReduceLROnPlateau(0.1)
    plateau.step(np.asarray(1.5, bfloat16))
    plateau.step(gc.tensor(np.asarray(1.25, bfloat16)))
    assert plateau.best == 1.25
    with pytest.raises(gc.GraphcError, match="the metric must be one number"):
        plateau.step(np.array([1.0, 2.0]))


def test_a_saved_bound_state_loads_under_a_plateau_or_a_schedule():
    """A state saved with lr 0.1 was refused by an optimiser whose lr is a plateau or a
    schedule (torch's loads under a plateau: the lr goes to the saved one)."""
    import graphc as gc
    from graphc import optim

    def bound(opt):
        return opt.bind([gc.tensor(np.ones(2), requires_grad=True)])
    saved = bound(optim.SGD(lr=0.1, momentum=0.9)).state_dict()
    under_plateau = bound(optim.SGD(lr=0.5, momentum=0.9))
    plateau = optim.ReduceLROnPlateau(under_plateau)
    under_plateau.load_state_dict(saved)
    assert under_plateau.optimizer.lr is plateau and plateau.lr == 0.1
    scheduled = bound(optim.SGD(lr=optim.cosine(0.3, 10), momentum=0.9))
    scheduled.load_state_dict(saved)
    assert scheduled.optimizer.lr(0) == 0.3


def test_a_subclass_setting_is_checked_before_the_state_changes_and_keeps_its_type():
    import graphc as gc
    from graphc import optim

    class Scaled(optim.SGD):
        hyperparameters = optim.SGD.hyperparameters + ("k",)

        def __init__(self, lr, k=3):
            super().__init__(lr)
            self.k = k
    b = Scaled(lr=0.1).bind([gc.tensor(np.ones(2), requires_grad=True)])
    saved = b.state_dict()
    assert saved["settings"]["k"] == 3 and type(saved["settings"]["k"]) is int
    bad = {**saved, "state": {**saved["state"], "count": np.asarray(7)},
           "settings": {**saved["settings"], "k": "three"}}
    with pytest.raises(gc.GraphcError, match="the setting k must be a finite number"):
        b.load_state_dict(bad)
    assert int(b.state["count"]) == 0


def test_a_plateau_pickled_with_its_lr_as_a_plain_attribute_still_loads():
    import pickle

    from graphc import optim
    plateau = optim.ReduceLROnPlateau(0.1)
    old = dict(plateau.__dict__)
    old["lr"] = old.pop("_lr")
    restored = optim.ReduceLROnPlateau.__new__(optim.ReduceLROnPlateau)
    restored.__setstate__(old)
    assert restored.lr == 0.1 and restored.state_dict()["lr"] == 0.1
    assert pickle.loads(pickle.dumps(plateau)).lr == 0.1


# ---- helper 9 (a final review of the session's changes) -----------------------------------------
def test_an_eager_derivative_writes_the_buffers_of_the_module_it_traced():
    """The plan of an identical trace was reused with the first trace's Buffer owners: after
    rebinding a global module, its write went to the first module."""
    import graphc as gc

    class Recorder(gc.nn.Module):
        def __init__(self):
            self.register_buffer("last", np.zeros(()))

        def forward(self, x):
            self.last = gc.mean(x)
            return x * 2.0
    first, second = Recorder(), Recorder()
    current = first
    g = gc.grad(lambda x: gc.sum(current(x)))
    np.testing.assert_allclose(g(np.arange(4.0)), np.full(4, 2.0))
    current = second
    g(np.arange(4.0) + 1)
    assert float(first.last.data) == 1.5 and float(second.last.data) == 2.5


def test_a_plateaus_lr_must_be_a_number():
    import graphc as gc
    from graphc import optim
    with pytest.raises(gc.GraphcError, match="lr must be a number"):
        optim.ReduceLROnPlateau(0.1).lr = lambda count: 0.05


def test_a_closed_over_array_used_several_times_is_copied_once():
    """Each use copied it (four uses of a 40 MB array: 160 MB in the plan) and the
    fingerprint hashed each copy."""
    import graphc as gc
    from graphc.tracing import trace
    w = np.ones(1000)
    graph = trace(lambda x: x * w + w - x / w, gc.spec((1000,), "float64"))
    values = [n.attrs["value"] for n in graph.nodes if n.op == "constant"]
    assert len(values) >= 3 and all(v is values[0] for v in values)
    assert values[0] is not w and w.flags.writeable and not values[0].flags.writeable


# ---- the re-read of the session's change ------------------------------------------------------
@pytest.mark.parametrize("field", ["dropout", "history"])
def test_a_header_number_beyond_any_float_is_one_line(tmp_path, capsys, field):
    """math.isfinite(10**400) raises OverflowError: a GPT checkpoint whose header held
    dropout or a history loss of 10**400 (a JSON integer) failed with a traceback."""
    out, data = _trained(tmp_path, capsys)
    ckpt = out / "checkpoint.npz"
    _, meta = checkpoint.load(str(ckpt))
    if field == "dropout":
        _edit_header(ckpt, model={**meta["model"], "dropout": 10 ** 400})
    else:
        _edit_header(ckpt, history=[[0, 10 ** 400]])
    assert main(["sample", "--checkpoint", str(out), "--tokens", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: checkpoint ") and len(err.splitlines()) == 1, err
