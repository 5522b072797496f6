"""Review of BatchNorm and module buffers (commit 03f06ad) against torch: each test failed
before its fix."""
import types

import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(23)


def pair(cls=("BatchNorm1d"), **settings):
    ours = getattr(gc.nn, cls)(3, dtype="float64", **settings)
    theirs = getattr(torch.nn, cls)(3, dtype=torch.float64, **settings)
    return ours, theirs


def assert_same_state(ours, theirs):
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(),
                               rtol=1e-12, atol=1e-14)
    assert int(ours.num_batches_tracked.data) == int(theirs.num_batches_tracked)


def test_vjp_pullback_does_not_update_the_running_statistics_again():
    # gc.vjp ran fn once for the output (writing the Buffers) and again, traced, for the
    # pullback: the second run wrote the batch into the running statistics a second time
    ours, theirs = pair()
    x = RNG.normal(size=(6, 3))
    ct = RNG.normal(size=(6, 3))
    out, pullback = gc.vjp(lambda x: ours(x), x)
    (g,) = pullback(ct)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(ct))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-10, atol=1e-12)
    pullback(ct)  # a pullback called twice: still one batch
    assert_same_state(ours, theirs)


def test_training_with_a_symbolic_batch_matches_torch_at_every_size():
    # the unbiased variance's n / (n - 1) took int() of the batch: a polymorphic batch
    # could not be traced in training mode ("the symbolic dimension b has no value")
    ours, theirs = pair("BatchNorm2d")
    f = gc.compile(lambda x: ours(x), polymorphic_shapes=["(b, 3, 2, 2)"])
    for n in (4, 7, 2):
        x = RNG.normal(loc=n, size=(n, 3, 2, 2))
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        assert_same_state(ours, theirs)
    assert f.recompiles == []


@pytest.mark.parametrize("training", [True, False])
def test_one_value_per_channel_is_refused_without_running_statistics_too(training):
    # track_running_stats=False normalises with the batch's statistics in eval() too; with
    # one value per channel the output was the bias (zeros), silently, where torch raises
    ours, theirs = pair(track_running_stats=False)
    ours.train(training)
    theirs.train(training)
    x = RNG.normal(size=(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        theirs(torch.tensor(x))
    with pytest.raises(gc.GraphcError, match=r"more than 1 value per channel.*\(1, 3\)"):
        ours(gc.tensor(x))
    with pytest.raises(gc.GraphcError, match="more than 1 value per channel"):
        gc.compile(lambda x: ours(x))(x)
    x = RNG.normal(size=(2, 3))  # two values: as torch's
    np.testing.assert_allclose(ours(gc.tensor(x)).data, theirs(torch.tensor(x)).detach()
                               .numpy(), rtol=1e-12, atol=1e-12)


def test_a_shared_layers_buffers_load_from_torch_under_each_name():
    # torch's state_dict lists a layer used twice under both names, its buffers too: the
    # second names were "unexpected", so such a model's state_dict did not load
    gc.nn.manual_seed(0)
    ours, theirs = pair()
    lin = gc.nn.Linear(3, 3, dtype="float64")
    model = gc.nn.Sequential(ours, lin, ours)
    torch_model = torch.nn.Sequential(theirs, torch.nn.Linear(3, 3, dtype=torch.float64),
                                      theirs)
    for _ in range(2):
        torch_model(torch.tensor(RNG.normal(size=(5, 3))))
    model.load_torch_state_dict(torch_model.state_dict())
    assert_same_state(ours, theirs)
    model.eval()
    torch_model.eval()
    x = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(model(gc.tensor(x)).data,
                               torch_model(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_an_array_assigned_to_a_buffer_stays_a_buffer():
    # as torch: `bn.running_var = array` replaced the Buffer by a plain attribute, which
    # state_dict() dropped and the next training forward failed on ("memoryview: invalid
    # slice key"), eagerly and compiled
    ours, theirs = pair()
    f = gc.compile(lambda x: ours(x))
    x = RNG.normal(size=(5, 3))
    f(x)
    theirs(torch.tensor(x))
    ours.running_var = np.full(3, 2.0)
    theirs.running_var = torch.full((3,), 2.0, dtype=torch.float64)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    for _ in range(2):
        x = RNG.normal(size=(5, 3))
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)
        assert_same_state(ours, theirs)
    ours.running_mean = gc.tensor(np.full(3, 0.5))
    theirs.running_mean = torch.full((3,), 0.5, dtype=torch.float64)
    ours(gc.tensor(x))
    theirs(torch.tensor(x))
    assert_same_state(ours, theirs)


def test_register_buffer_names_what_is_wrong_and_takes_none_as_torch():
    mod = gc.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"register_buffer\('tag'\): cannot assign a str as "
                                        r"buffer 'tag'"):
        mod.register_buffer("tag", "hello")  # was: "dtype <U5 is not supported"
    with pytest.raises(gc.GraphcError, match=r"without '\.', got 'a\.b'"):
        mod.register_buffer("a.b", np.ones(2))  # was: a state_dict key 'a.b'
    with pytest.raises(gc.GraphcError, match=r"register_buffer\('weight'\): .* Parameter"):
        mod.register_buffer("weight", np.ones((2, 2)))  # was: the Parameter replaced
    assert [n for n, _ in mod.named_parameters()] == ["weight", "bias"]
    mod.register_buffer("mask", None)  # torch's empty buffer: not in state_dict
    assert mod.mask is None and sorted(mod.state_dict()) == ["bias", "weight"]
    mod.register_buffer("scale", gc.tensor(np.arange(2.0)))
    np.testing.assert_array_equal(mod.state_dict()["scale"], [0.0, 1.0])


def test_momentum_may_be_a_numpy_number_as_torchs_float():
    # torch takes any float; np.float32(0.25) (a config read with numpy) was refused
    ours = gc.nn.BatchNorm1d(3, momentum=np.float32(0.25), dtype="float64")
    theirs = torch.nn.BatchNorm1d(3, momentum=0.25, dtype=torch.float64)
    x = RNG.normal(size=(5, 3))
    ours(gc.tensor(x))
    theirs(torch.tensor(x))
    assert_same_state(ours, theirs)
    with pytest.raises(gc.GraphcError, match="momentum must be a number or None"):
        gc.nn.BatchNorm1d(3, momentum="0.25")  # (a bool is 1.0, as torch's float takes it)


@pytest.mark.parametrize("training", [True, False])
def test_a_bfloat16_input_is_normalised_in_float32_as_torchs(training):
    # under autocast the statistics met the half-precision input in bfloat16: a mean of
    # 100.3 became 100.5, and every output moved by 0.4 of a standard deviation
    gc.nn.manual_seed(0)
    lin, ours = gc.nn.Linear(3, 3), gc.nn.BatchNorm1d(3)
    lin.bias.data[...] = 100.0
    theirs_lin, theirs = torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        theirs_lin.weight.copy_(torch.tensor(lin.weight.data.T))
        theirs_lin.bias.copy_(torch.tensor(lin.bias.data))
        theirs.running_mean.fill_(100.3)
        theirs.running_var.fill_(0.25)
    ours.running_mean.data[...] = 100.3
    ours.running_var.data[...] = 0.25
    ours.train(training)
    theirs.train(training)
    x = RNG.normal(size=(1000, 3)).astype(np.float32)
    with gc.autocast("bfloat16"):
        y = gc.nn.Sequential(lin, ours)(gc.tensor(x)).data
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_t = theirs(theirs_lin(torch.tensor(x)))
    assert y.dtype == np.dtype(gc.nn.Linear(1, 1, dtype="bfloat16").weight.data.dtype)
    assert str(y_t.dtype) == "torch.bfloat16"
    diff = y.astype(np.float64) - y_t.float().detach().numpy()
    assert np.abs(diff.mean(0)).max() < 0.02  # was 0.4: a shift, not rounding
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-3)


def test_remat_updates_the_running_statistics_once():
    # the README said gc.remat refuses the update; it is traced in the same graph, and its
    # replay in the backward pass does not update again
    ours, theirs = pair()
    f = gc.compile(gc.value_and_grad(lambda x: gc.sum(gc.remat(ours)(x) ** 3)))
    for step in range(2):
        x = RNG.normal(loc=step, size=(6, 3))
        value, grad = f(x)
        xt = torch.tensor(x, requires_grad=True)
        value_t = (theirs(xt) ** 3).sum()
        value_t.backward()
        assert value == pytest.approx(value_t.item(), rel=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert_same_state(ours, theirs)


def test_named_buffers_and_parameters_join_the_prefix_with_a_dot_as_torch():
    # prefix="m" gave "m0.running_mean", where torch gives "m.0.running_mean"
    ours = gc.nn.Sequential(gc.nn.BatchNorm1d(2))
    theirs = torch.nn.Sequential(torch.nn.BatchNorm1d(2))
    for method in ("named_buffers", "named_parameters"):
        assert [n for n, _ in getattr(ours, method)(prefix="m")] == \
            [n for n, _ in getattr(theirs, method)(prefix="m")]


def array(x):
    return x.data if isinstance(x, gc.Tensor) else np.asarray(x)


class EMA(gc.nn.Module):
    """A custom layer keeping a buffer the way torch code does: assigned in forward."""

    def __init__(self, increment):
        self.register_buffer("average", np.zeros(3))
        self.register_buffer("calls", np.zeros((), np.int64))
        self.increment = increment

    def forward(self, x):
        self.average = 0.5 * self.average + 0.5 * gc.mean(x, 0)
        if self.increment:
            self.calls += 1
        else:
            self.calls = self.calls + 1
        return x - self.average


class TorchEMA(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("average", torch.zeros(3, dtype=torch.float64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        self.average = 0.5 * self.average + 0.5 * x.mean(0)
        self.calls += 1
        return x - self.average


@pytest.mark.parametrize("increment", [True, False])
def test_a_buffer_assigned_in_a_compiled_forward_is_written_back_as_torchs(increment):
    # a torch-style buffer update in a custom layer's forward: compiled, `self.calls += 1`
    # raised "'Node' object has no attribute 'requires_grad'"; `self.calls = self.calls + 1`
    # stored a traced value on the layer (the first call lost the update, the second raised
    # "leaked"); apply(state=) eagerly lost it
    ours, theirs = EMA(increment), TorchEMA()
    f = gc.compile(lambda x: ours(x))
    for step in range(3):
        x = RNG.normal(loc=step, size=(4, 3))
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.average.data, theirs.average.numpy(), rtol=1e-12)
        assert int(ours.calls.data) == int(theirs.calls)
    x = RNG.normal(size=(4, 3))
    expected = theirs(torch.tensor(x)).numpy()
    for apply in (ours.apply, gc.compile(lambda p, x, s: ours.apply(p, x, state=s))):
        before = ours.state()
        out, state = (apply(ours.params(), x, state=ours.state()) if apply == ours.apply
                      else apply(ours.params(), x, ours.state()))
        np.testing.assert_allclose(array(out), expected, rtol=1e-12)
        np.testing.assert_allclose(array(state["average"]), theirs.average.numpy(),
                                   rtol=1e-12)
        assert int(array(state["calls"])) == int(theirs.calls)
        for name, value in before.items():  # the layer's own Buffers are left alone
            np.testing.assert_array_equal(getattr(ours, name).data, value)
    y = ours(gc.tensor(x))  # eagerly: into the Buffers, which stay Buffers
    np.testing.assert_allclose(y.data, expected, rtol=1e-12)
    assert sorted(ours.state_dict()) == ["average", "calls"]
    assert int(ours.calls.data) == int(theirs.calls)


def test_custom_gradient_rules_do_not_update_the_running_statistics_again():
    # a custom_jvp rule (traced again for the backward pass) and a custom_vjp bwd that call
    # the layer: their forward had updated the statistics, and the rule counted the batch
    # a second time
    x = RNG.normal(size=(6, 3))
    for kind in ("custom_jvp", "custom_vjp"):
        ours, theirs = pair()

        @getattr(gc, kind)
        def f(x):
            return ours(x)
        if kind == "custom_jvp":
            f.defjvp(lambda p, t: (ours(p[0]), t[0]))
        else:
            f.defvjp(lambda x: (ours(x), x), lambda x, g: (g + 0 * ours(x),))
        grad = gc.compile(gc.grad(lambda x: gc.sum(f(x))))
        grad(x)
        grad(x)
        theirs(torch.tensor(x))
        theirs(torch.tensor(x))
        assert_same_state(ours, theirs)


def test_eval_shape_of_a_model_in_training_mode():
    # a model is in training mode when built: gc.eval_shape(model, spec) refused its
    # BatchNorm ("cannot write back"); it runs nothing, so nothing is updated
    model = gc.nn.Sequential(gc.nn.Linear(4, 3), gc.nn.BatchNorm1d(3))
    out = gc.eval_shape(model, gc.spec((8, 4)))
    assert tuple(out.shape) == (8, 3) and out.dtype == np.float32
    assert int(model[1].num_batches_tracked.data) == 0 and model[1].training


def test_trainer_checkpoints_a_buffer_replaced_after_it_was_built(tmp_path):
    # the Trainer held the Buffer objects of its first trace: after `bn.running_mean =
    # Buffer(array)` the step wrote the new Buffer and checkpoints saved (and resumes restored)
    # the old one, silently
    from graphc import checkpoint

    gc.nn.manual_seed(0)
    model = gc.nn.Sequential(gc.nn.Linear(4, 3, dtype="float64"),
                             gc.nn.BatchNorm1d(3, dtype="float64"))
    x = RNG.normal(size=(32, 4))

    def loss(p, batch):
        return gc.sum(model.apply(p, batch[0]) ** 2)

    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(0.1), lambda r: (x[:8],),
                         steps=2)
    model[1].running_mean = gc.nn.Buffer(np.full(3, 0.5))
    trainer.train_step()
    trainer.save(str(tmp_path / "c.npz"))
    saved, _ = checkpoint.load_arrays(str(tmp_path / "c.npz"),
                                      {"buffer/1.running_mean": ((3,), np.float64)})
    np.testing.assert_array_equal(saved["buffer/1.running_mean"], model[1].running_mean.data)
    assert not np.allclose(model[1].running_mean.data, 0.5)  # the new one was updated


def test_an_eager_buffer_assignment_does_not_retrace_compiled_functions():
    # each eager forward of a layer assigning its buffer made a new Buffer, and every
    # compiled function (guarded on module attributes being replaced) traced again
    ema, lin = EMA(False), gc.nn.Linear(3, 3, dtype="float64")
    f = gc.compile(lambda x: lin(x) + ema.average)
    for step in range(3):
        ema(gc.tensor(RNG.normal(size=(4, 3))))
        np.testing.assert_allclose(f(np.ones((2, 3))), np.ones((2, 3)) @ lin.weight.data
                                   + lin.bias.data + ema.average.data, rtol=1e-12)
    assert f.recompiles == []
    assert sorted(ema.state_dict()) == ["average", "calls"]


def test_the_refusal_names_the_layer_once_and_the_buffer():
    # was "BatchNorm1d 'BatchNorm1d' in training mode updates its running_mean" for a
    # layer that is the model itself, and "in training mode" for any layer's buffer
    with pytest.raises(gc.GraphcError, match=r"^BatchNorm1d \(the model itself\) updates its "
                                             r"buffer running_mean \(BatchNorm: in training"):
        gc.vmap(gc.nn.BatchNorm1d(3))(RNG.normal(size=(2, 4, 3)).astype(np.float32))
    model = gc.nn.Sequential(gc.nn.Linear(3, 3, dtype="float64"), EMA(True))
    with pytest.raises(gc.GraphcError, match=r"^EMA '1' updates its buffer average"):
        gc.vmap(model)(RNG.normal(size=(2, 4, 3)))


def test_data_parallel_trainer_starts_every_rank_with_rank_0s_buffers(tmp_path):
    # DDP broadcasts rank 0's buffers with its parameters when it is built; the Trainer
    # broadcast only the parameters, so until the first step each rank evaluated (and
    # normalised in eval) with its own running statistics
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed")
    import test_mpi  # (an import error in it is a failure, not a skip)
    code, output, _ = test_mpi.run_ranks("buffers_at_start", tmp_path)
    assert code == 0, output
    ranks = [np.load(tmp_path / f"buffers_at_start_rank{r}.npz") for r in range(2)]
    for saved in ranks:
        np.testing.assert_array_equal(saved["0.running_mean"], np.zeros(5))
        np.testing.assert_array_equal(saved["0.running_var"], np.ones(5))
    assert float(ranks[0]["val"]) == float(ranks[1]["val"])


class _Masked(gc.nn.Module):
    """A BatchNorm (its statistics written by each training step) behind a constant
    512x512 float64 mask (a Buffer the step only reads)."""

    def __init__(self):
        self.bn = gc.nn.BatchNorm1d(4, dtype="float64")
        self.register_buffer("mask", np.ones((512, 512)))

    def forward(self, x):
        return self.bn(x) * gc.mean(self.mask)


@pytest.mark.parametrize("frozen", [False, True])
def test_a_data_parallel_step_broadcasts_only_the_buffers_it_writes(frozen):
    # after each step the Trainer broadcast every Buffer it tracks, the read-only ones too:
    # the mask's 2 MB every step. Now all once (as when the Trainer is built), then those
    # the step writes (none while the BatchNorm is frozen; its three after model.train())
    from graphc import distributed
    model = _Masked()
    if frozen:
        model.eval()
    x = RNG.normal(size=(8, 4))
    trainer = gc.Trainer(lambda p, b: gc.mean(model.apply(p, b[0]) ** 2), model.params(),
                         gc.optim.SGD(lr=0.1), [(x,)], steps=6)
    sent = []  # the names and bytes of each broadcast: a stub rank 0 of one
    trainer.dist = types.SimpleNamespace(
        rank=lambda: 0, size=lambda: 1, beat=lambda step: None,
        shard=lambda rows: distributed.shard(rows, 0, 1), allreduce=lambda tree, op: tree,
        broadcast_=lambda arrays: sent.append({n: a.nbytes for n, a in arrays.items()}))
    trainer._broadcast_buffers()  # as the constructor does
    statistics = {"bn.running_mean": 32, "bn.running_var": 32, "bn.num_batches_tracked": 8}
    assert sent == [{**statistics, "mask": 512 * 512 * 8}]
    trainer.train_step()
    trainer.train_step()
    assert sent[1:] == ([] if frozen else [statistics, statistics])
    del sent[:]
    model.train()
    trainer.train_step()
    assert sent == [statistics]
