"""Session 46's fixes of the Python API's rough edges (compiled methods, the names the
eager transformations give arguments, ...); each test failed before its fix."""
import functools
import logging
import typing

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def test_compile_on_a_plain_method_binds_self_as_a_static_argument():
    """`@gc.compile` on a method failed at every call ("missing a required argument: 'x'":
    no __get__ bound self). Now self is argument 0, static where it holds no arrays (jax.jit's
    static_argnums=0): each instance its own plan, its attributes constants of the plan."""
    class Scale:
        def __init__(self, s):
            self.s = s

        @gc.compile
        def f(self, x):
            return x * self.s

        @functools.partial(gc.compile, static_argnums=2)  # (self counts: k is argument 2)
        def repeat(self, x, k):
            for _ in range(k):  # (k used as a Python int: static)
                x = x * self.s
            return x

    x = np.arange(3, dtype=np.float32)
    two, three = Scale(2.0), Scale(3.0)
    np.testing.assert_array_equal(two.f(x), x * 2)
    np.testing.assert_array_equal(three.f(x), x * 3)
    np.testing.assert_array_equal(two.f(x + 1), (x + 1) * 2)
    assert len(two.f.recompiles) == 1 and "self (static)" in two.f.recompiles[0]
    np.testing.assert_array_equal(three.repeat(x, 2), x * 9)
    assert Scale.f.__name__ == "f" and Scale.__dict__["f"] is Scale.f  # (on the class: fn)


def test_compile_on_a_method_of_a_namedtuple_traces_its_arrays():
    """A self holding arrays is an ordinary argument, traced: another instance's values
    reuse the plan (as jax.jit traces a pytree self)."""
    class Affine(typing.NamedTuple):
        w: np.ndarray
        b: np.ndarray

        @gc.compile
        def __call__(self, x):
            return x @ self.w + self.b

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    first = Affine(rng.normal(size=(3, 2)), rng.normal(size=2))
    second = Affine(rng.normal(size=(3, 2)), rng.normal(size=2))
    for layer in (first, second):
        np.testing.assert_allclose(layer(x), x @ layer.w + layer.b, rtol=1e-12)
    assert Affine.__call__.recompiles == []  # (one plan, the arrays its inputs)


def test_compile_on_a_method_of_an_unhashable_object_is_one_line():
    class Config:
        def __eq__(self, other):  # (so no __hash__)
            return True

        @gc.compile
        def f(self, x):
            return x

    with pytest.raises(gc.GraphcError, match=r"^compiled f: self is a Config, which is not "
                                             r"hashable: a method's self .*__hash__") as info:
        Config().f(np.ones(2))
    assert "\n  at " in str(info.value) and str(info.value).count("\n") == 1


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    @gc.compile
    def forward(self, x):
        return gc.tanh(self.lin(x))


def test_compile_on_a_module_forward_reads_its_parameters_and_fills_grads():
    """torch's `@torch.compile def forward(self, x)`: the model's call runs the plan, reads
    the Parameters at each call and goes on the tape; values and gradients as eagerly."""
    block = _Block()
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    w, b = block.lin.weight.data, block.lin.bias.data  # (graphc's (in, out) weight)
    out = block(x)
    np.testing.assert_allclose(out.data, np.tanh(x @ w + b), rtol=1e-5, atol=1e-6)
    gc.sum(out).backward()
    dpre = 1 - np.tanh(x @ w + b) ** 2
    np.testing.assert_allclose(block.lin.weight.grad, x.T @ dpre, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block.lin.bias.grad, dpre.sum(0), rtol=1e-5, atol=1e-6)
    with gc.no_grad():
        block.lin.bias -= 1.0  # (an update in place, seen by the next call)
        np.testing.assert_allclose(block(x), np.tanh(x @ w + b - 1.0), rtol=1e-5, atol=1e-6)
    other = _Block()  # (another instance: its own Parameters)
    np.testing.assert_allclose(
        other(x).data, np.tanh(x @ other.lin.weight.data + other.lin.bias.data), rtol=1e-5,
        atol=1e-6)


def _divide(x, mode, k, j):
    return gc.sum(x * (k / j)) if mode == "div" else gc.sum(x)


def _scaled(x, j):
    return gc.sum(x * (3.0 / j))


@pytest.mark.parametrize("compiled", [False, True])
def test_eager_transformations_name_the_function_s_parameters(compiled, caplog):
    """gc.grad, value_and_grad and the Jacobians of a function (a gc.compile'd one too)
    named its arguments by their position in graphc's own call, "arg1" (by the split call's,
    "arg3" for the third argument where a setting came before it), in the runtime's checks
    and recompile lines, and jacrev's recompile line named its function "symbolic"."""
    divide, scaled = (gc.compile(_divide), gc.compile(_scaled)) if compiled else \
        (_divide, _scaled)
    x = np.ones(3, np.float32)
    for who, transform in [("grad", gc.grad), ("value_and_grad", gc.value_and_grad),
                           ("jacrev", gc.jacrev)]:
        with pytest.raises(ZeroDivisionError, match=r"the divisor \(argument j\) is 0"):
            transform(scaled)(x, 0.0)  # (fn's own call)
        with pytest.raises(ZeroDivisionError, match=r"the divisor \(argument j\) is 0"):
            transform(divide)(x, "div", 3.0, 0.0)  # (the split call: mode passed as it is)
    with caplog.at_level(logging.INFO, logger="graphc"):
        for transform in (gc.grad, gc.jacrev):
            f = transform(scaled)
            f(x, 2.0)
            f(np.ones(4, np.float32), 2.0)
    logged = [r.getMessage() for r in caplog.records if "recompiling" in r.getMessage()]
    assert logged == ["graphc: recompiling _scaled (compilation 2): x: float32[3] -> "
                      "float32[4]"] * 2


def _names_agree(model):
    """Each Parameter's and Buffer's own name (which traces name its input by, and a
    Trainer's checkpoint a Buffer) is its name in named_parameters / named_buffers."""
    return [(n, t.name) for n, t in [*model.named_parameters(), *model.named_buffers()]
            if t.name != n]


@pytest.mark.parametrize("untie", ["replace", "none", "del", "param_list", "param_dict"])
def test_a_tied_tensor_takes_its_next_place_s_name_when_its_first_goes(untie):
    """A Parameter tied at two places (`b.weight = a.weight`, a ParameterList's or
    ParameterDict's item held by a layer too) kept the name of its first place after that
    place was given another Parameter, None or deleted ('a.weight' at b.weight, where
    torch's named_parameters says b.weight)."""
    torch = pytest.importorskip("torch")

    def parameter(lib, value):
        value = np.full(value, 1.0, np.float32)
        return lib.Parameter(gc.tensor(value) if lib is nn else torch.from_numpy(value))
    mods = []
    for lib in (nn, torch.nn):
        m = lib.Module()
        m.a, m.b = lib.Linear(2, 2), lib.Linear(2, 2)
        m.b.weight = m.a.weight
        if untie == "replace":
            m.a.weight = parameter(lib, (2, 2))
        elif untie == "none":
            m.a.weight = None
        elif untie == "del":
            del m.a.weight
        elif untie == "param_list":
            m.p = lib.ParameterList([parameter(lib, 2)])
            m.b.bias = m.p[0]
            m.p[0] = parameter(lib, 2)
        else:
            m.p = lib.ParameterDict({"k": parameter(lib, 2)})
            m.b.bias = m.p["k"]
            del m.p["k"]
        mods.append(m)
    ours, theirs = mods
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert _names_agree(ours) == []
    graph = gc.trace(lambda x: ours.b(x), gc.spec((1, 2), "float32"))
    moved = "b.bias" if untie.startswith("param") else "b.weight"
    assert moved in [node.attrs["name"] for node in graph.inputs]


def test_a_compiled_child_s_modules_take_its_name_when_their_first_place_goes():
    """`m.c = gc.compile(m.body)` holds body's modules at a second place, which the places
    of a tensor or module did not count (the attribute holds the Compiled, not the module):
    after `m.body = Linear(...)` or `del m.body` their Parameters and Buffers kept the names
    body.0.weight, body.1.running_mean (torch's: c._orig_mod.0.weight, graphc's c.0.weight)."""
    for drop in ("replace", "del"):
        m = nn.Module()
        m.body = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        m.c = gc.compile(m.body)
        if drop == "replace":
            m.body = nn.Linear(2, 2)
        else:
            del m.body
        assert [n for n, _ in m.named_buffers()] == [
            "c.1.running_mean", "c.1.running_var", "c.1.num_batches_tracked"]
        assert _names_agree(m) == []
        m.eval()  # (a traced training-mode BatchNorm writes its statistics back)
        graph = gc.trace(lambda x: m.c(x), gc.spec((3, 2), "float32"))
        assert {"c.0.weight", "c.1.weight"} <= {node.attrs["name"] for node in graph.inputs}


def _loss(w, x, n):
    return gc.sum((x @ w) ** 2) * n


@pytest.mark.parametrize("who, call", [
    ("grad", lambda w, x: gc.grad(_loss)(w, x)),
    ("value_and_grad", lambda w, x: gc.value_and_grad(_loss)(w, x, 1.0, 2.0)),
    ("jacrev", lambda w, x: gc.jacrev(_loss)(w, x)),
    ("jacfwd", lambda w, x: gc.jacfwd(_loss)(w, x)),
    ("hessian", lambda w, x: gc.hessian(_loss)(w, x, k=1.0)),
    ("vjp", lambda w, x: gc.vjp(_loss, w, x)),
    ("jvp", lambda w, x: gc.jvp(_loss, (w, x), (w, x))),
    ("linearize", lambda w, x: gc.linearize(_loss, w, x)),
    ("linear_transpose", lambda w, x: gc.linear_transpose(_loss, w, x)),
    ("eval_shape", lambda w, x: gc.eval_shape(_loss, w, x)),
    ("trace", lambda w, x: gc.trace(_loss, w, x)),
    ("vmap", lambda w, x: gc.vmap(_loss, in_axes=(0, None))(w, x)),  # (was a raw TypeError)
    ("vmap", lambda w, x: gc.vmap(_loss, in_axes=(0, None, None, None))(w, x, 1.0, 2.0)),
    ("grad", lambda w, x: gc.compile(lambda v: gc.grad(_loss)(v, x))(w)),  # (traced)
])
def test_a_transformed_function_called_with_arguments_it_does_not_take_is_one_line(who, call):
    """A call of a differentiated or traced function with one argument too few or too many
    (or a keyword it lacks) was Python's TypeError from deep inside the transformation
    ("_loss() missing 1 required positional argument: 'n'"); gc.compile's call was one line
    already. Now each is that line, naming the transformation and the function; a TypeError
    from the function's body, where the arguments bind, passes as it is."""
    w, x = np.ones((3, 2)), np.ones((4, 3))
    with pytest.raises(gc.GraphcError, match=rf"^{who} of _loss: (missing a required argument: "
                                             r"'n'|too many positional arguments)\n  at "):
        call(w, x)

    def body_error(w, x):
        return gc.sum(w) + len(3)  # (the function's own TypeError)
    with pytest.raises(TypeError, match="has no len"):
        gc.grad(body_error)(w, x)

    @functools.wraps(_loss)  # (review r10: the wrapper binds (w, x); _loss wants n too)
    def supplying_n(w, x):
        return _loss(w, x, 2.0) + len(3)
    with pytest.raises(TypeError, match="has no len"):
        gc.grad(supplying_n)(w, x)
    with pytest.raises(TypeError, match="has no len"):
        gc.vmap(supplying_n, in_axes=(None, 0))(w, x)


@pytest.mark.parametrize("call, message", [
    # (accepted, and refused only at the first call: 'compiled int: 3 is not a callable
    # object'; jax.jit refuses it where it is given, as gc.grad and gc.vmap do)
    (lambda: gc.compile(3), r"^compile: the function to transform must be callable, got 3\n"),
    (lambda: gc.compile(static_argnums=1)("f"), r"^compile: the function to transform must be "
     r"callable, got 'f'\n"),
    # torch's zeros(*size): the 3 was read as numpy's dtype, 'unknown dtype 3'
    (lambda: gc.zeros(2, 3), r"^zeros: the shape is one argument, zeros\(\(2, 3\)\)"),
    (lambda: gc.ones(4, 5), r"^ones: the shape is one argument, ones\(\(4, 5\)\)"),
    # (review: three sizes were Python's raw TypeError; a tuple shape with an int dtype
    # was told to nest itself, zeros(((2, 3), 3)); a keyword dtype quoted as positional)
    (lambda: gc.zeros(2, 3, 4), r"^zeros: the shape is one argument, zeros\(\(2, 3, 4\)\)"),
    (lambda: gc.zeros((2, 3), 3), r"^zeros: dtype 3 is not a dtype; the shape is the first "),
    (lambda: gc.ones(2, dtype=3), r"^ones: the shape is one argument, ones\(\(2, 3\)\)"),
    (lambda: gc.ones((2,), "float32", 4), r"^ones takes \(shape, dtype\), as numpy's; got 3 "),
    # (review r11: torch's own spelling, sizes spread beside a keyword dtype, was Python's
    # raw TypeError, "zeros() got multiple values for argument 'dtype'")
    (lambda: gc.zeros(2, 3, dtype="float32"), r"^zeros: the shape is one argument, "
     r"zeros\(\(2, 3\), dtype='float32'\)"),
    (lambda: gc.ones((2,), 3, dtype="int32"), r"^ones takes \(shape, dtype\), as numpy's; got 2 "
     r"positional arguments and the keyword dtype 'int32'\n"),
])
def test_torch_and_jax_spellings_graphc_does_not_take_are_one_line_where_given(call, message):
    with pytest.raises(gc.GraphcError, match=message):
        call()


def test_zeros_and_ones_still_take_numpy_s_dtype():
    assert gc.zeros((2, 3), "int32").dtype == np.int32
    assert gc.ones(3, np.float64).dtype == np.float64
    np.testing.assert_array_equal(gc.ones((2, 3)).data, np.ones((2, 3), np.float32))


def test_review_a_compiled_staticmethod_and_a_module_s_own_settings():
    """Review of 18b1e3a (Compiled.__get__): `@gc.compile @staticmethod` worked on an
    instance before and then bound the instance ('too many positional arguments'); a
    compiled forward's reads of its own module's settings (`self.scale`, not a child's) were
    not guarded, so a plan kept the old value after the user set another (a compiled model
    traces again)."""
    class Ops:
        @gc.compile
        @staticmethod
        def triple(x):
            return x * 3

    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(Ops().triple(x), x * 3)
    np.testing.assert_array_equal(Ops.triple(x), x * 3)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.scale, self.mode, self.k = nn.Linear(3, 2), 1.0, "a", 1

        @gc.compile
        def forward(self, x):
            y = self.lin(x) * self.scale
            y = y + 100.0 if self.mode == "b" else y
            for _ in range(self.k):
                y = y * 2.0
            return y

    m = Scaled()
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    pre = x @ m.lin.weight.data + m.lin.bias.data
    np.testing.assert_allclose(m(x).data, pre * 2, rtol=1e-5, atol=1e-6)
    m.scale = 3.0
    np.testing.assert_allclose(m(x).data, pre * 6, rtol=1e-5, atol=1e-6)
    m.mode = "b"
    np.testing.assert_allclose(m(x).data, (pre * 3 + 100) * 2, rtol=1e-5, atol=1e-5)
    m.k = 2
    np.testing.assert_allclose(m(x).data, (pre * 3 + 100) * 4, rtol=1e-5, atol=1e-5)


def test_review_eager_grad_reads_fn_s_signature_once(monkeypatch):
    """Review of 91bae7d: _Positional's names of fn's parameters were read (two
    inspect.signature calls) at every call of gc.grad's function, ~40us each call."""
    import inspect

    def loss(w, x):
        return gc.sum(w * x)
    g = gc.grad(loss)
    w = np.ones(4, np.float32)
    g(w, w)
    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        np.testing.assert_array_equal(g(w, w), w)
    assert calls == []


def test_review_a_module_method_compiled_with_static_argnums_0_guards_its_settings():
    """(r10, review of 837907a) A Module's compiled method whose self was made static by
    `static_argnums=0` (as jax.jit's methods are written) went on without the guard on its
    own settings: after m.scale = 3.0 the plan kept 1.0, where the same method compiled
    without static_argnums traces again."""
    import functools

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 1.0

        @functools.partial(gc.compile, static_argnums=0)
        def f(self, x):
            return x * self.scale

        @functools.partial(gc.compile, static_argnums=(0, 2))
        def g(self, x, k):
            return x * self.scale + k

    m, x = Scaled(), np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(m.f(x), x)
    np.testing.assert_array_equal(m.g(x, 1), x + 1)
    m.scale = 3.0
    np.testing.assert_array_equal(m.f(x), x * 3)
    np.testing.assert_array_equal(m.g(x, 1), x * 3 + 1)
    np.testing.assert_array_equal(m.f(x), x * 3)
    assert len(Scaled.__dict__["f"]._method.recompiles) == 1


def test_a_wrapper_is_called_with_its_own_parameters():
    """gc.compile of a functools.wraps(f) wrapper that supplies one of f's arguments was
    refused at its valid call ('compiled f: missing a required argument: 'n''), its
    signature read through __wrapped__ (f's); a pass-through wrapper (*args, **kwargs)
    still binds as the function it wraps (keywords mapped to f's positions)."""
    def f(a, n):
        return a * n

    @functools.wraps(f)
    def supplying_n(a):
        return f(a, 2.0)

    def passing_through(g):
        @functools.wraps(g)
        def inner(*args, **kwargs):
            return g(*args, **kwargs)
        return inner
    x = np.ones(2)
    np.testing.assert_array_equal(gc.compile(supplying_n)(x), 2 * x)
    np.testing.assert_array_equal(gc.grad(lambda a: gc.sum(supplying_n(a)))(x), [2.0, 2.0])
    with pytest.raises(gc.GraphcError, match="^compiled f: too many positional arguments"):
        gc.compile(supplying_n)(x, 3.0)
    np.testing.assert_array_equal(gc.compile(passing_through(f))(x, n=3.0), 3 * x)
    with pytest.raises(gc.GraphcError, match="^compiled f: missing a required argument: 'n'"):
        gc.compile(passing_through(f))(x)
