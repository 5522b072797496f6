"""Session 37's fixes of what users of the public API met first (messages for a JAX or torch
habit, Module dtype casts); each test failed before its fix."""
import collections
import re

import numpy as np
import pytest

import graphc as gc


def test_grad_of_a_function_returning_a_tuple_names_it_and_has_aux():
    """gc.grad of a function returning (loss, metrics), JAX's habit without has_aux, said
    "the function must return a tensor computed from its inputs", as if the loss were not
    computed from w; grad and value_and_grad now name what came back and the way out."""
    w = np.ones(3)
    with pytest.raises(gc.GraphcError, match=r"grad: the function returned a tuple of 2; "
                       r"return one scalar, or pass has_aux=True"):
        gc.grad(lambda w: (gc.sum(w * w), gc.mean(w)))(w)
    with pytest.raises(gc.GraphcError, match=r"value_and_grad: the function returned a dict "
                       r"of 1"):
        gc.value_and_grad(lambda w: {"loss": gc.sum(w)})(w)
    with pytest.raises(gc.GraphcError, match=r"tensor computed from its inputs, got None"):
        gc.grad(lambda w: None)(w)
    # the pair with has_aux=True works, as JAX's
    g, aux = gc.grad(lambda w: (gc.sum(w * w), gc.mean(w)), has_aux=True)(w)
    np.testing.assert_allclose(g, [2.0, 2.0, 2.0])
    assert float(aux) == 1.0


def test_trainer_loss_returning_loss_and_metrics_is_refused_naming_the_tuple():
    """A Trainer loss returning (loss, {"acc": ...}) got grad's "the function must return a
    tensor computed from its inputs"; the Trainer now says its loss must return one number
    and what it returned."""
    model = gc.nn.Linear(4, 1)
    params = dict(model.named_parameters())
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)

    def loss(p, batch):
        out = model.apply(p, batch[0])
        return gc.mean((out - batch[1]) ** 2), {"acc": gc.mean(out)}
    with pytest.raises(gc.GraphcError, match=r"^Trainer: the loss must return one number, "
                       r"got a tuple of 2"):
        trainer = gc.Trainer(loss, params, gc.optim.SGD(0.1), lambda rng: (x, y), steps=1)
        trainer.fit(progress=False)


class _ForeignArray:
    """Another library's array, as a torch.Tensor looks to graphc: __array__, a shape and a
    dtype numpy cannot interpret."""

    dtype = "torch.float32"

    def __init__(self, *shape):
        self.shape = shape

    def __array__(self, dtype=None, copy=None):
        return np.ones(self.shape, dtype or np.float32)


def test_another_librarys_array_as_an_operand_is_refused_in_one_line_naming_it():
    """A torch tensor given to a layer or an op met numpy's "TypeError: Cannot interpret
    'torch.float32' as a data type", and given to gc.compile "cannot make a tensor spec
    from a Tensor" (graphc has a Tensor of its own); eager ops, layers, compiled functions
    and gradients now refuse it in one line naming its type and the way to pass it."""
    name = f"{__name__}._ForeignArray"
    advice = r"another library's array; pass a numpy array \(x.numpy\(\), or np.asarray\(x\)\)"
    model = gc.nn.Linear(4, 2)
    # (a layer names itself and its input since session 49: Linear's _check_dtypes)
    layer_advice = r"another library's array; pass a numpy array \(input.numpy\(\), or " \
        r"np.asarray\(input\)\)"
    with pytest.raises(gc.GraphcError, match=rf"^Linear: input is a {name}, {layer_advice}"):
        model(_ForeignArray(8, 4))
    with pytest.raises(gc.GraphcError, match=rf"^relu: got a {name}"):
        gc.relu(_ForeignArray(3))
    with pytest.raises(gc.GraphcError, match=rf"^add: got a {name}"):
        gc.tensor(np.ones(3, np.float32)) + _ForeignArray(3)
    with pytest.raises(gc.GraphcError, match=rf"^sum: got a {name}, {advice}"):
        gc.sum(_ForeignArray(3))
    # (naming the function and its argument: f5 item 6)
    with pytest.raises(gc.GraphcError, match=rf"^compiled Linear.forward: argument x is a "
                                             rf"{name}, {advice}"):
        gc.compile(model)(_ForeignArray(8, 4))
    with pytest.raises(gc.GraphcError, match=rf"^grad of <lambda>: argument w is a {name}"):
        gc.grad(lambda w: gc.sum(w * w))(_ForeignArray(3))
    # traced, a captured foreign array is refused as well
    with pytest.raises(gc.GraphcError, match=rf"^mul: got a {name}"):
        gc.compile(lambda x: x * _ForeignArray(3))(np.ones(3, np.float32))
    # numpy operands are as before, and gc.tensor still converts with np.asarray
    np.testing.assert_array_equal(gc.relu(np.array([-1.0, 2.0])), [0.0, 2.0])


def test_a_torch_tensor_operand_names_torch_tensor():
    """The same with torch itself: the message names torch.Tensor."""
    torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
    with pytest.raises(gc.GraphcError, match=r"^relu: got a torch\.Tensor, another library's"):
        gc.relu(torch.ones(3))
    with pytest.raises(gc.GraphcError, match=r"^compiled Linear.forward: argument x is a "
                                             r"torch\.Tensor"):
        gc.compile(gc.nn.Linear(4, 2))(torch.ones(8, 4))
    np.testing.assert_array_equal(gc.tensor(torch.ones(3)).numpy(), np.ones(3))


def test_a_torch_tensor_argument_of_a_compiled_or_differentiated_function_names_both():
    """f5 item 6: gc.compile(f)(torch_t) and gc.grad(f)(torch_t) said "got a torch.Tensor
    ..." naming neither f nor the argument, where their other refusals name them; a leaf of
    a pytree argument is named by its path, as the graph's inputs are."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    advice = r"another library's array; pass a numpy array \(x.numpy\(\), or np.asarray\(x\)\)"

    def loss(w, batch):
        return gc.sum(w * batch["x"][1])

    w, t = np.ones(3, np.float32), torch.ones(3)
    for run, line in [
            (lambda: gc.compile(loss)(t, {"x": [w, w]}), "compiled loss: argument w is a"),
            (lambda: gc.compile(loss)(w, {"x": [w, t]}), "compiled loss: argument batch.x.1 is a"),
            (lambda: gc.grad(loss)(t, {"x": [w, w]}), "grad of loss: argument w is a"),
            (lambda: gc.grad(loss)(w, {"x": [w, t]}), "grad of loss: argument batch.x.1 is a"),
            (lambda: gc.value_and_grad(loss, argnums=1)(w, {"x": [t, w]}),
             "value_and_grad of loss: argument batch.x.0 is a"),
            (lambda: gc.jacrev(loss)(t, {"x": [w, w]}), "jacrev of loss: argument w is a")]:
        with pytest.raises(gc.GraphcError) as info:
            run()
        first, where = str(info.value).splitlines()
        assert re.fullmatch(rf"{re.escape(line)} torch\.Tensor, {advice}", first), first
        assert "test_review_s37_user.py" in where
    # the numpy arrays it asks for run, and the grad is the batch's row
    np.testing.assert_array_equal(gc.grad(loss)(t.numpy(), {"x": [w, 2 * w]}), 2 * w)


def _clamped(starts, shape, window):
    """jax.lax's placement of a window: a negative start counts from the end, then it is
    clamped so that the window fits."""
    return tuple(min(max(s + n if s < 0 else s, 0), n - w)
                 for s, n, w in zip(starts, shape, window))


def test_dynamic_update_slice_takes_jaxs_tuple_of_start_indices():
    """gc.dynamic_update_slice(x, u, (i, j)), JAX's start per axis, said "cannot use a tuple
    as a tensor operand" (graphc's form is one start with axis=); the tuple is taken now,
    eagerly, compiled with run-time starts and differentiated, and dynamic_slice takes
    JAX's (starts, sizes) too. A tuple of the wrong length is refused naming both forms."""
    x = np.arange(24.0).reshape(4, 6)
    u = -np.ones((2, 3))
    placed = gc.compile(lambda x, u, i, j: gc.dynamic_update_slice(x, u, (i, j)))
    for starts in [(1, 2), (3, 5), (-1, 0), (0, 0)]:
        expected = x.copy()
        r, c = _clamped(starts, x.shape, u.shape)
        expected[r:r + 2, c:c + 3] = u
        np.testing.assert_array_equal(gc.dynamic_update_slice(x, u, starts), expected)
        np.testing.assert_array_equal(placed(x, u, np.int64(starts[0]), np.int64(starts[1])),
                                      expected)
        np.testing.assert_array_equal(gc.dynamic_slice(x, starts, (2, 3)),
                                      x[r:r + 2, c:c + 3])
    # a whole axis (start 0) with the one-axis op on the other, as a KV cache's (slot, 0)
    np.testing.assert_array_equal(gc.dynamic_update_slice(x, np.zeros((1, 6)), (2, 0))[2],
                                  np.zeros(6))
    gx, gu = gc.grad(lambda x, u: gc.sum(gc.dynamic_update_slice(x, u, (1, 2)) ** 2),
                     argnums=(0, 1))(x, u)
    expected = 2 * x
    expected[1:3, 2:5] = 0.0
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(gu, 2 * u)
    with pytest.raises(gc.GraphcError, match=r"^dynamic_update_slice: a 2-d x takes 2 start "
                       r"indices \(JAX's form: one per axis\), got 1; or give one start "
                       r"with axis="):
        gc.dynamic_update_slice(x, u, (1,))


def test_module_double_float_half_bfloat16_and_to_cast_in_place_as_torch():
    """Module.double(), .float(), .half(), .bfloat16() and .to(dtype), what torch users
    reach for first, did not exist (AttributeError). They cast the floating-point
    parameters and buffers in place now, keeping the Parameter objects (integer buffers
    left), return the module, and a plan compiled before is traced again with the new
    dtypes; .to refuses a device other than the CPU and a non-float dtype in one line."""
    model = gc.nn.Sequential(gc.nn.Linear(4, 3), gc.nn.BatchNorm1d(3))
    weight = model[0].weight
    scaled = gc.compile(lambda k: model[0].weight * k)
    assert scaled(2.0).dtype == np.float32
    assert model.double() is model
    assert model[0].weight is weight
    dtypes = {name: str(a.dtype) for name, a in model.state_dict().items()}
    assert dtypes == {"0.weight": "float64", "0.bias": "float64", "1.weight": "float64",
                      "1.bias": "float64", "1.running_mean": "float64",
                      "1.running_var": "float64", "1.num_batches_tracked": "int64"}
    assert {p.dtype for _, p in model.named_parameters()} == {np.dtype(np.float64)}
    assert scaled(2.0).dtype == np.float64  # (it raised "expects dtype float32" before)
    np.testing.assert_array_equal(scaled(2.0), 2.0 * weight.data)
    x = np.random.default_rng(0).normal(size=(5, 4))
    assert model(x).dtype == np.float64
    assert gc.compile(model)(x).dtype == np.float64
    # an optimiser bound after steps in float64
    optimizer = gc.optim.SGD(lr=0.1).bind(model)
    gc.sum(model(x) ** 2).backward()
    optimizer.step()
    assert weight.dtype == np.float64
    assert model.to("cpu", "float32") is model and weight.dtype == np.float32
    assert model.half()[0].bias.dtype == np.float16
    assert str(model.bfloat16()[0].bias.dtype) == "bfloat16"
    assert model.float()[1].running_var.dtype == np.float32
    assert model.to(dtype=np.float64)[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(gc.GraphcError, match=r"^to: graphc runs on the CPU \(numpy arrays\); "
                       r"device 'cuda:0' is not available"):
        model.to("cuda:0")
    with pytest.raises(gc.GraphcError, match=r"^to: a module's parameters take a "
                       r"floating-point dtype, got int32"):
        model.to("int32")
    assert weight.dtype == np.float64  # (a refused call casts nothing)


def test_torch_dtypes_are_read_by_name_wherever_a_dtype_is_taken():
    """`model.to(torch.float64)`, the spelling a ported torch script has, was refused
    ("unknown dtype torch.float64"); a torch dtype is now read by its name wherever graphc
    takes a dtype, and one the IR cannot hold is refused as numpy's is."""
    torch = pytest.importorskip("torch", reason="torch's dtypes are the spelling under test")
    model = gc.nn.Linear(3, 2)
    assert model.to(torch.device("cpu"), torch.float64).weight.dtype == np.float64
    assert str(model.to(torch.bfloat16).bias.dtype) == "bfloat16"
    assert gc.zeros((2,), dtype=torch.int64).dtype == np.int64
    assert gc.tensor([1.0, 2.0]).astype(torch.float16).dtype == np.float16
    assert gc.compile(lambda x: x.astype(torch.float64))(np.ones(2, np.float32)).dtype \
        == np.float64
    with pytest.raises(gc.GraphcError, match=r"^dtype uint8 is not supported"):
        gc.zeros((2,), dtype=torch.uint8)
    with pytest.raises(gc.GraphcError, match=r"^unknown dtype torch.qint8\n"):
        gc.zeros((2,), dtype=torch.qint8)
    with pytest.raises(gc.GraphcError, match=r"^to: a module's parameters take a "
                       r"floating-point dtype, got int32"):
        model.to(torch.int32)


def test_layer_constructors_read_their_dtype_as_every_dtype_argument():
    """nn.Linear(3, 2, dtype=torch.float64), and the dtype= of every other layer but
    InstanceNorm's, went raw to numpy's astype: numpy's TypeError "Cannot interpret
    'torch.float64' as a data type", with no line of the user's (so did "f64" and a bad
    name); the layers now read it as every dtype argument (as_dtype), one line where bad."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    nn = gc.nn
    layers = {"Linear": (nn.Linear, torch.nn.Linear, (3, 2)),
              "Conv2d": (nn.Conv2d, torch.nn.Conv2d, (1, 2, 3)),
              "Embedding": (nn.Embedding, torch.nn.Embedding, (5, 2)),
              "LayerNorm": (nn.LayerNorm, torch.nn.LayerNorm, (4,)),
              "BatchNorm1d": (nn.BatchNorm1d, torch.nn.BatchNorm1d, (3,)),
              "PReLU": (nn.PReLU, torch.nn.PReLU, ()),
              "GRUCell": (nn.GRUCell, torch.nn.GRUCell, (3, 4)),
              "TransformerEncoderLayer": (nn.TransformerEncoderLayer,
                                          torch.nn.TransformerEncoderLayer, (4, 2, 8))}
    for name, (ours, theirs, args) in layers.items():
        for dtype, want in [(torch.float64, np.float64), (torch.float16, np.float16),
                            ("f64", np.float64)]:
            layer = ours(*args, dtype=dtype)
            assert {p.dtype for p in layer.parameters()} == {np.dtype(want)}, name
        # (torch's layer holds the same names, each in the dtype asked for)
        torch_state = theirs(*args, dtype=torch.float64).state_dict()
        assert {k: str(v.dtype).replace("torch.", "") for k, v in torch_state.items()} == \
            {k: "int64" if k.endswith("num_batches_tracked") else "float64"
             for k in layer.state_dict()}, name
        for bad, says in [("float8", "unknown dtype 'float8'"),
                          (torch.complex64, "dtype complex64 is not supported")]:
            with pytest.raises(gc.GraphcError, match=rf"^{name}: dtype={re.escape(repr(bad))}: "
                                                     rf"{says}.*\n  at .*test_review_s37_user"):
                ours(*args, dtype=bad)
    x = np.array([[0.5, -1.0, 2.0]])
    layer = nn.Linear(3, 2, dtype=torch.float64)
    want = x @ layer.weight.data + layer.bias.data
    assert layer(gc.tensor(x)).data.dtype == np.float64
    np.testing.assert_array_equal(layer(gc.tensor(x)).data, want)

def test_the_review_cases_jvp_vmap_namedtuple_and_array_starts():
    """From the review of the commits above: jvp of another library's array was numpy's raw
    TypeError and vmap said 'give it in_axes None' (wrong advice), a namedtuple result read
    'returned a R of 2', and JAX's start indices as a 1-d array fell to the one-axis form
    ('size must be an int'). Now the same one line, 'a tuple of 2', and the array of starts
    taken as JAX's."""
    name = f"{__name__}._ForeignArray"
    # (s45: the lines name the argument)
    with pytest.raises(gc.GraphcError, match=rf"^jvp of <lambda>: argument a is a {name}"):
        gc.jvp(lambda a: a * 2, (_ForeignArray(3),), (_ForeignArray(3),))
    with pytest.raises(gc.GraphcError, match=rf"^vmap: a is a {name}"):
        gc.vmap(lambda a: a * 2)(_ForeignArray(3))
    Result = collections.namedtuple("Result", "loss metrics")
    with pytest.raises(gc.GraphcError, match=r"^grad: the function returned a tuple of 2; "):
        gc.grad(lambda w: Result(gc.sum(w), w))(np.ones(2, np.float32))
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    window = x[1:3, 2:5]
    for starts in (np.array([1, 2]), gc.tensor(np.array([1, 2]))):
        np.testing.assert_array_equal(np.asarray(gc.dynamic_slice(x, starts, (2, 3))), window)
    compiled = gc.compile(lambda x, s: gc.dynamic_slice(x, s, (2, 3)))
    np.testing.assert_array_equal(compiled(x, np.array([1, 2])), window)
    updated = np.asarray(gc.dynamic_update_slice(x, np.zeros((2, 2), np.float32),
                                                 np.array([1, 4])))
    expected = x.copy()
    expected[1:3, 4:6] = 0
    np.testing.assert_array_equal(updated, expected)


def test_an_error_of_the_function_itself_is_not_blamed_on_an_accepted_torch_argument():
    """A torch tensor taken as a static argument, or inside a setting grad passes as it is,
    was blamed for any later error of the function ('argument t is a torch.Tensor') instead of
    the function's own mistake (here a reshape)."""
    torch = pytest.importorskip("torch", reason="torch is the test extra's oracle")
    x, t = np.ones(3, np.float32), torch.ones(3)

    def f(w, t):
        return gc.reshape(w * float(t.sum()), (7,))

    def g(w, cfg):
        return gc.sum(gc.reshape(w * float(cfg[1].sum()), (7,)))
    for call in (lambda: gc.compile(f, static_argnums=1)(x, t),
                 lambda: gc.grad(g)(x, ("scale", t))):
        with pytest.raises(gc.GraphcError) as info:
            call()
        assert str(info.value).splitlines()[0] == \
            "reshape(f32[3]): cannot reshape 3 elements into shape (7,)"
