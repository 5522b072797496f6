"""BatchNorm1d/2d/3d against torch.nn's (values, gradients, running statistics over several
steps, eval mode), and the buffer machinery behind them: eager updates, gc.compile writing the
Buffers after each call, Module.apply(state=), gc.Trainer's checkpoints, and the refusals."""
import numpy as np
import pytest

import graphc as gc
from graphc.nn import Buffer

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
SHAPES = {"BatchNorm1d": [(6, 3), (6, 3, 5)], "BatchNorm2d": [(5, 3, 4, 4)],
          "BatchNorm3d": [(4, 3, 2, 3, 3)]}
CASES = [(cls, shape) for cls, shapes in SHAPES.items() for shape in shapes]
SETTINGS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
            dict(track_running_stats=False)]


def pair(cls, settings, seed=0):
    gc.nn.manual_seed(seed)
    ours = getattr(gc.nn, cls)(3, dtype="float64", **settings)
    theirs = getattr(torch.nn, cls)(3, dtype=torch.float64, **settings)
    if ours.weight is not None:  # a non-trivial affine part
        w, b = RNG.normal(size=3), RNG.normal(size=3)
        ours.weight.data[...], ours.bias.data[...] = w, b
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
    return ours, theirs


def assert_same_state(ours, theirs):
    if theirs.running_mean is None:
        assert ours.running_mean is None and not dict(ours.named_buffers())
        return
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(),
                               rtol=1e-12, atol=1e-14)
    assert int(ours.num_batches_tracked.data) == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(map(str, s)) or "default")
@pytest.mark.parametrize("cls,shape", CASES)
def test_eager_training_steps_then_eval_match_torch(cls, shape, settings):
    ours, theirs = pair(cls, settings)
    for step in range(3):
        x = RNG.normal(loc=step, scale=1 + step, size=shape)
        xt = torch.tensor(x, requires_grad=True)
        xg = gc.tensor(x, requires_grad=True)
        up = RNG.normal(size=shape)
        y = ours(xg)
        yt = theirs(xt)
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        (y * gc.tensor(up)).sum().backward()
        (yt * torch.tensor(up)).sum().backward()
        np.testing.assert_allclose(xg.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
        if ours.weight is not None:
            np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(),
                                       rtol=1e-9, atol=1e-11)
            ours.zero_grad()
            theirs.zero_grad()
        assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    x = RNG.normal(size=shape)
    np.testing.assert_allclose(ours(gc.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert_same_state(ours, theirs)  # eval() leaves the statistics alone


@pytest.mark.parametrize("training", [True, False])
def test_gradient_matches_finite_differences(training):
    bn = gc.nn.BatchNorm2d(3, dtype="float64")
    bn.running_mean.data[...] = [0.3, -0.2, 0.1]
    bn.running_var.data[...] = [0.5, 2.0, 1.5]
    bn.train(training)
    x = RNG.normal(size=(4, 3, 2, 2))
    p = bn.params()
    p["weight"] = RNG.normal(size=3)
    up = RNG.normal(size=x.shape)

    def f(p, x):
        out, _ = bn.apply(p, x, state=bn.state())
        return gc.sum(out * up)

    g_p, g_x = gc.grad(f, argnums=(0, 1))(p, x)
    eps = 1e-6

    def numeric(fn, a):
        out = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            hi, lo = a.copy(), a.copy()
            hi[i] += eps
            lo[i] -= eps
            out[i] = (float(fn(hi)) - float(fn(lo))) / (2 * eps)
        return out

    np.testing.assert_allclose(g_x, numeric(lambda a: f(p, a), x), rtol=1e-6, atol=1e-8)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(
            g_p[name], numeric(lambda a: f({**p, name: a}, x), p[name]), rtol=1e-6, atol=1e-8)


def test_compiled_function_writes_the_buffers_after_each_call_as_torch():
    ours, theirs = pair("BatchNorm2d", dict(momentum=None))
    f = gc.compile(lambda x: ours(ours(x) * 2.0 + 1.0))  # one layer twice in one call
    for step in range(3):
        x = RNG.normal(size=(5, 3, 4, 4)) + step
        np.testing.assert_allclose(f(x), theirs(theirs(torch.tensor(x)) * 2.0 + 1.0)
                                   .detach().numpy(), rtol=1e-10, atol=1e-12)
        assert_same_state(ours, theirs)  # the second call read the first one's update
    assert len(f.recompiles) == 0
    ours.eval()
    theirs.eval()
    x = RNG.normal(size=(5, 3, 4, 4))
    np.testing.assert_allclose(f(x), theirs(theirs(torch.tensor(x)) * 2.0 + 1.0)
                               .detach().numpy(), rtol=1e-10, atol=1e-12)
    assert len(f.recompiles) == 1 and "training" in f.recompiles[0]


def test_value_and_grad_outside_a_trace_updates_the_buffers_once():
    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(4, 3, dtype="float64"),
                             gc.nn.BatchNorm1d(3, dtype="float64"))
    x = RNG.normal(size=(8, 4))
    h = x @ model[0].weight.data + model[0].bias.data
    gc.value_and_grad(lambda p: gc.sum(model.apply(p, x) ** 2))(model.params())
    np.testing.assert_allclose(model[1].running_mean.data, 0.1 * h.mean(0), rtol=1e-12)
    np.testing.assert_allclose(model[1].running_var.data, 0.9 + 0.1 * h.var(0, ddof=1),
                               rtol=1e-12)
    assert int(model[1].num_batches_tracked.data) == 1


def test_apply_with_state_returns_the_new_state_and_leaves_the_model_alone():
    ours, theirs = pair("BatchNorm1d", {})
    before = ours.state()
    params, state = ours.params(), ours.state()

    @gc.compile
    def step(params, state, x):
        (loss, state), grads = gc.value_and_grad(
            lambda p: (lambda out: (gc.sum(out[0] ** 3), out[1]))(
                ours.apply(p, x, state=state)), has_aux=True)(params)
        return loss, grads, state

    for _ in range(3):
        x = RNG.normal(size=(6, 3))
        loss, grads, state = step(params, state, x)
        xt = torch.tensor(x)
        (theirs(xt) ** 3).sum().backward()
        np.testing.assert_allclose(grads["weight"], theirs.weight.grad.numpy(), rtol=1e-9)
        theirs.zero_grad()
    for name, value in before.items():  # the model's own Buffers are untouched
        np.testing.assert_array_equal(getattr(ours, name).data, value)
    np.testing.assert_allclose(state["running_mean"], theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(state["running_var"], theirs.running_var.numpy(), rtol=1e-12)
    assert int(state["num_batches_tracked"]) == 3
    # eval mode: the state comes back as it went in
    ours.eval()
    out, same = ours.apply(params, RNG.normal(size=(6, 3)), state=state)
    assert all(same[k] is state[k] for k in state)


class _CompiledInside(gc.nn.Module):
    """A BatchNorm and a counter Buffer updated in a gc.compile'd function forward calls."""

    def __init__(self, bn, compiled):
        super().__init__()
        self.bn = bn
        self.scale = gc.nn.Parameter(np.ones(3))
        self.register_buffer("count", np.zeros((), np.int64))
        self.inner = gc.compile(self.body) if compiled else self.body

    def body(self, x):
        self.count += 1
        return self.bn(x) * self.scale

    def forward(self, x):
        return self.inner(x)


def test_apply_leaves_the_given_state_alone_where_a_compiled_function_updates_it():
    # a plan of `inner` wrote its updates into the arrays apply put in the layer (the caller's
    # state), and later calls read the tensors of the call it was traced in (stale state and
    # params): inside apply it runs as its Python function, as eagerly
    ours, theirs = pair("BatchNorm1d", {})
    models = [_CompiledInside(ours, compiled) for compiled in (False, True)]
    before = models[0].state()
    params = models[0].params()
    states = [m.state() for m in models]
    for step in range(3):
        x = RNG.normal(size=(6, 3))
        params = {"bn.weight": params["bn.weight"], "bn.bias": params["bn.bias"],
                  "scale": np.full(3, step + 2.0)}  # new params each call
        given = [{k: np.array(v) for k, v in state.items()} for state in states]
        results = [m.apply(params, x, state=state) for m, state in zip(models, states)]
        for state, copy in zip(states, given):  # the caller's state is unchanged
            for name in copy:
                np.testing.assert_array_equal(np.asarray(state[name]), copy[name])
        expected = theirs(torch.tensor(x)).detach().numpy() * (step + 2.0)
        for out, new in results:
            np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(new["bn.running_mean"]),
                                       theirs.running_mean.numpy(), rtol=1e-12)
            np.testing.assert_allclose(np.asarray(new["bn.running_var"]),
                                       theirs.running_var.numpy(), rtol=1e-12)
            assert int(np.asarray(new["count"])) == step + 1
        states = [new for _, new in results]
    for name, value in before.items():  # and so are the model's own Buffers
        np.testing.assert_array_equal(models[0].state()[name], value)
        np.testing.assert_array_equal(models[1].state()[name], value)


def test_state_dict_and_torch_state_dict_carry_the_buffers():
    ours, theirs = pair("BatchNorm2d", {})
    for _ in range(2):
        theirs(torch.tensor(RNG.normal(size=(5, 3, 2, 2))))
    fresh = gc.nn.BatchNorm2d(3, dtype="float64")
    fresh.load_torch_state_dict(theirs.state_dict())
    assert sorted(fresh.state_dict()) == sorted(theirs.state_dict())
    assert_same_state(fresh, theirs)
    fresh.eval()
    theirs.eval()
    x = RNG.normal(size=(5, 3, 2, 2))
    np.testing.assert_allclose(fresh(gc.tensor(x)).data, theirs(torch.tensor(x)).detach()
                               .numpy(), rtol=1e-12)
    # params() alone (what compiled training returns) is refused by a strict load, as
    # torch's (tests/test_module_tree.py); strict=False loads it and keeps the buffers
    mean = fresh.running_mean.data.copy()
    # (num_batches_tracked is kept, not missing: torch's fills it in from the layer)
    with pytest.raises(gc.GraphcError, match=r"missing .'running_mean', 'running_var'\]"):
        fresh.load_state_dict(ours.params())
    assert fresh.load_state_dict(ours.params(), strict=False).missing_keys == \
        ["running_mean", "running_var"]
    np.testing.assert_array_equal(fresh.running_mean.data, mean)
    np.testing.assert_array_equal(fresh.weight.data, ours.weight.data)
    with pytest.raises(gc.GraphcError, match="running_var has shape"):
        fresh.load_state_dict({**ours.params(), "running_var": np.ones(4)},
                              strict=False)
    assert "running_var" not in ours.params()
    mod = gc.nn.Linear(2, 2)
    mod.register_buffer("scale", np.arange(2.0))
    assert isinstance(mod.scale, Buffer) and [n for n, _ in mod.named_buffers()] == ["scale"]


def make_trainer(model, steps, data_seed=1):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 1, 6, 6))
    Y = rng.integers(0, 4, 64)

    def batches(r):
        rows = r.integers(0, 64, 16)
        return X[rows], Y[rows]

    def loss(p, batch):
        return gc.cross_entropy(model.apply(p, batch[0]), batch[1])

    trainer = gc.Trainer(loss, model.params(), gc.optim.Adam(1e-2), batches, steps=steps,
                         eval_batches=[(X[:16], Y[:16])], eval_iters=1, seed=data_seed)
    trainer.test_eval_batch = (X[:16], Y[:16])
    return trainer


def cnn():
    gc.nn.manual_seed(0)
    return gc.nn.Sequential(gc.nn.Conv2d(1, 2, 3, dtype="float64"),
                            gc.nn.BatchNorm2d(2, dtype="float64"), gc.nn.ReLU(),
                            gc.nn.Flatten(), gc.nn.Linear(32, 4, dtype="float64"))


def test_trainer_carries_checkpoints_and_evaluates_with_the_running_statistics(tmp_path):
    straight = cnn()
    trainer = make_trainer(straight, 4)
    assert list(trainer.buffers) == ["1.running_mean", "1.running_var",
                                     "1.num_batches_tracked"]
    for _ in range(4):
        trainer.train_step()
    assert int(straight[1].num_batches_tracked.data) == 4
    # evaluation: the model in eval() with the trained weights, eagerly
    evaluated = trainer.evaluate()
    straight.load_state_dict(trainer.params, strict=False)  # (the step wrote the buffers)
    straight.eval()
    x, y = trainer.test_eval_batch
    eager = float(gc.cross_entropy(straight(gc.tensor(x)), y).data)
    assert evaluated == pytest.approx(eager, rel=1e-12)

    resumed = cnn()
    first = make_trainer(resumed, 4)
    first.train_step()
    first.train_step()
    first.save(str(tmp_path / "c.npz"))
    first.train_step()  # moves the statistics on; the resume must put them back
    second = make_trainer(resumed, 4)
    second.resume(str(tmp_path / "c.npz"))
    assert int(resumed[1].num_batches_tracked.data) == 2
    second.train_step()
    second.train_step()
    straight.train()
    for name, b in straight.named_buffers():
        np.testing.assert_array_equal(dict(resumed.named_buffers())[name].data, b.data)
    for name in trainer.params:
        np.testing.assert_array_equal(second.params[name], trainer.params[name])


def test_refusals_name_the_layer_and_the_way_out():
    bn = gc.nn.BatchNorm2d(3)
    x = RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
    with pytest.raises(gc.GraphcError, match=r"expected input \(N, 3, H, W\), got shape "
                                             r"\(4, 2, 2, 2\)"):
        bn(gc.tensor(x[:, :2]))
    with pytest.raises(gc.GraphcError, match="more than 1 value per channel"):
        bn(gc.tensor(x[:1, :, :1, :1]))
    with pytest.raises(gc.GraphcError, match="num_features must be a positive int"):
        gc.nn.BatchNorm1d(0)
    with pytest.raises(gc.GraphcError, match="momentum must be a number or None"):
        gc.nn.BatchNorm1d(3, momentum="0.1")
    # inside a nested transformation the update would leave its graph
    with pytest.raises(gc.GraphcError, match="cannot write back.*state=model.state"):
        gc.vmap(lambda xi: bn(xi[None]))(x)
    with pytest.raises(gc.GraphcError, match="apply: state do not match the model: missing"):
        bn.apply(bn.params(), x, state={})
    assert int(bn.num_batches_tracked.data) == 0  # nothing half-written


@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (4, 3)), ("BatchNorm2d", (2, 3, 2, 2)),
                                        ("InstanceNorm1d", (2, 3, 4))])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_an_input_not_floating_point_is_named_by_the_layer(cls, shape, dtype):
    """(s52) An int or bool input, refused by torch ('"batch_norm" not implemented for
    'Long''), was named by an op inside the layer: 'BatchNorm1d: batch_moments(i64[4,3]):
    needs floating-point operands' in training, the running statistics' arithmetic in eval
    ('float scalar 1e-05 meets an integer tensor'). One line naming the layer, both ways,
    eager and compiled, and no statistic moved."""
    x = np.ones(shape, dtype)
    with pytest.raises(RuntimeError, match="not implemented for"):
        getattr(torch.nn, cls)(3)(torch.tensor(x))
    layer = getattr(gc.nn, cls)(3, track_running_stats=True)
    message = f"^{cls} of an? {np.dtype(dtype)} value; cast it to a float type first\n"
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        for call in (layer, gc.compile(layer)):
            with pytest.raises(gc.GraphcError, match=message) as info:
                call(x)
            assert "test_batch_norm.py" in str(info.value).splitlines()[1]
    assert int(layer.num_batches_tracked.data) == 0 and not np.asarray(
        layer.running_mean.data).any()


@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (4, 3)), ("InstanceNorm2d", (2, 3, 2, 2))])
def test_review_r6_a_dtype_graphc_cannot_hold_and_a_list_keep_their_own_lines(cls, shape):
    """Review r6 of d683e1b: the float check came before the dtype graphc cannot hold, so a
    complex, string or uint16 input read 'BatchNorm1d of a complex64 value; cast it to a float
    type first' (a GraphcError, no longer UnsupportedDtype, a TypeError too) where LayerNorm,
    GroupNorm and RMSNorm, and this layer before, say 'dtype complex64 is not supported', and a
    list of ints was 'of an int64 value' where a list of floats is refused as a list."""
    from ir.types import UnsupportedDtype
    layer = getattr(gc.nn, cls)(3)
    for dtype in (np.complex64, np.uint16, np.str_):
        x = np.ones(shape, dtype)
        with pytest.raises(UnsupportedDtype, match=rf"^{cls}: dtype {x.dtype} is not "
                                                    r"supported \(supported: float32"):
            layer(x)
        with pytest.raises(gc.GraphcError, match=rf"^LayerNorm: dtype {x.dtype} "):
            gc.nn.LayerNorm(shape[-1])(x)
    for data in (np.ones(shape, np.int64).tolist(), np.ones(shape).tolist()):
        with pytest.raises(gc.GraphcError, match=rf"^{cls}: cannot use a list as a tensor "
                                                 "operand"):
            layer(data)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (4, 3, 0)])
def test_an_empty_training_batch_counts_but_moves_no_statistic_as_torchs(shape, momentum,
                                                                          compiled):
    # torch takes a batch with no values (only one value per channel is refused): an empty
    # output, the running statistics as they were, num_batches_tracked one more (which a
    # cumulative average weighs its next batch by). graphc's refused it ("expected more
    # than 1 value per channel", given 0)
    ours, theirs = pair("BatchNorm1d", dict(momentum=momentum))
    ours.running_mean.data[...] = [0.5, -1.0, 2.0]
    with torch.no_grad():
        theirs.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = np.ones(shape)
    y = gc.compile(lambda a: ours(a))(x) if compiled else ours(gc.tensor(x)).data
    assert y.shape == tuple(theirs(torch.tensor(x)).shape) == shape
    assert_same_state(ours, theirs)
    x = RNG.normal(size=(5, 3))  # the next batch, weighed as torch's
    np.testing.assert_allclose(np.asarray(ours(gc.tensor(x)).data),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    assert_same_state(ours, theirs)
