"""BatchNorm and buffer loose ends (session 24) against torch: a symbolic batch of one, a
Trainer built in eval(), a Buffer two layers share, non-persistent buffers and the reset
methods. Each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), is not installed")

from test_review_s23bn import assert_same_state, pair  # noqa: E402  (the same layer pairs)

RNG = np.random.default_rng(24)

@pytest.mark.parametrize("tracked", [True, False])
def test_a_symbolic_batch_of_one_is_refused_at_the_call_as_torchs(tracked):
    # the trace-time check deferred the symbolic batch, and a call with N=1 gave the bias as
    # output and NaN running variances (n / (n - 1)) where torch raises
    ours, theirs = pair(track_running_stats=tracked)
    f = gc.compile(lambda x: ours(x), polymorphic_shapes=["(b, 3)"])
    x = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    one = RNG.normal(size=(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        theirs(torch.tensor(one))
    with pytest.raises(gc.GraphcError, match=r"b=1: expected more than 1 value per channel "
                                             r"when training, got input of shape \(1, 3\)"
                                             r"(.|\n)*test_review_s24bn.py"):
        f(one)
    if tracked:  # nothing written: the statistics are torch's, finite (torch counts the
        # refused batch in num_batches_tracked, before its check; graphc writes nothing)
        assert np.isfinite(ours.running_var.data).all()
        np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(),
                                   rtol=1e-12)
        assert int(ours.num_batches_tracked.data) == 1
        theirs.num_batches_tracked.fill_(1)
    x = RNG.normal(size=(2, 3))  # two values per channel: as torch's
    np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    ours.eval()
    theirs.eval()
    if tracked:  # eval() with running statistics takes a batch of one, as torch's
        np.testing.assert_allclose(f(one), theirs(torch.tensor(one)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)


def bn_model():
    gc.nn.manual_seed(0)
    return gc.nn.Sequential(gc.nn.Linear(4, 3, dtype="float64"),
                            gc.nn.BatchNorm1d(3, dtype="float64"))


X = RNG.normal(loc=1.0, size=(32, 4))


def trainer_for(model, steps=6):
    def loss(p, batch):
        return gc.sum(model.apply(p, batch[0]) ** 2)
    return gc.Trainer(loss, model.params(), gc.optim.SGD(0.05),
                      lambda r: (X[r.integers(0, 32, 8)],), steps=steps)


def test_a_trainer_built_in_eval_tracks_the_buffers_after_model_train(tmp_path):
    # built while the model was in eval(), the Trainer knew no Buffers: after model.train()
    # its steps updated the running statistics but checkpoints left them out and a resume
    # did not put them back
    model = bn_model()
    model.eval()
    trainer = trainer_for(model)
    # (the statistics the eval() step reads are checkpointed as they are, and the count
    # beside them: the layer's whole state)
    assert list(trainer.buffers) == ["1.running_mean", "1.running_var",
                                     "1.num_batches_tracked"]
    trainer.train_step()  # eval(): the statistics are used, not updated, as torch's
    np.testing.assert_array_equal(model[1].running_mean.data, np.zeros(3))
    assert int(model[1].num_batches_tracked.data) == 0
    model.train()
    # a save before the next step holds them already (that step is traced for the new mode)
    assert list(trainer.buffers) == ["1.running_mean", "1.running_var",
                                     "1.num_batches_tracked"]
    trainer.train_step()
    trainer.train_step()
    assert int(model[1].num_batches_tracked.data) == 2
    trainer.save(str(tmp_path / "c.npz"))
    saved = dict(np.load(tmp_path / "c.npz"))
    np.testing.assert_array_equal(saved["buffer/1.running_mean"], model[1].running_mean.data)
    after_two = {n: b.data.copy() for n, b in model.named_buffers()}
    trainer.train_step()
    trainer.resume(str(tmp_path / "c.npz"))
    for name, b in model.named_buffers():
        np.testing.assert_array_equal(b.data, after_two[name])
    model.eval()  # once tracked, a Buffer stays tracked
    assert "1.running_var" in trainer.buffers


def test_trainer_steps_follow_the_layers_modes_as_a_torch_loop():
    # the step runs the model in the modes the user set: eval() steps leave the running
    # statistics alone, train() steps move them as torch's
    model = bn_model()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3).double(), torch.nn.BatchNorm1d(3)
                                 .double())
    model.eval()
    trainer = trainer_for(model, steps=4)
    trainer.train_step()
    model.train()
    inputs = []
    rng = np.random.default_rng(trainer.seed)
    trainer.rng = np.random.default_rng(trainer.seed)  # the batches drawn from here on
    for _ in range(3):
        inputs.append(X[rng.integers(0, 32, 8)])
        params = {n: a.copy() for n, a in trainer.params.items()}
        trainer.train_step()
        with torch.no_grad():  # torch's layer on the same batch with the same weights
            theirs[0].weight.copy_(torch.tensor(params["0.weight"].T))
            theirs[0].bias.copy_(torch.tensor(params["0.bias"]))
            theirs[1].weight.copy_(torch.tensor(params["1.weight"]))
            theirs[1].bias.copy_(torch.tensor(params["1.bias"]))
            theirs(torch.tensor(inputs[-1]))
    assert_same_state(model[1], theirs[1])


def test_a_buffer_two_layers_share_gets_both_updates_when_compiled_as_eagerly():
    # compiled, each layer wrote its update from the Buffer's value before the call, and the
    # last write won: the first layer's update was lost (eagerly the second reads it)
    def models():
        a, b = pair()
        c, d = pair()
        c.running_mean = a.running_mean  # torch: the same tensor, a buffer of both
        d.running_mean = b.running_mean
        return gc.nn.Sequential(a, c), torch.nn.Sequential(b, d)

    xs = [RNG.normal(loc=3.0, size=(5, 3)) for _ in range(3)]
    ref = models()[1]
    for x in xs:
        ref(torch.tensor(x))
    eager, _ = models()
    for x in xs:
        eager(gc.tensor(x))
    compiled, _ = models()
    f = gc.compile(lambda x: compiled(x))
    for x in xs:
        f(x)
    applied, _ = models()
    state = applied.state()
    assert sorted(state) == ["0.num_batches_tracked", "0.running_mean", "0.running_var",
                             "1.num_batches_tracked", "1.running_var"]
    g = gc.compile(lambda s, x: applied.apply(applied.params(), x, state=s)[1])
    for x in xs:
        state = g(state, x)
    for ours in (eager, compiled):
        assert ours[0].running_mean is ours[1].running_mean
        assert_same_state(ours[0], ref[0])
        assert_same_state(ours[1], ref[1])
    np.testing.assert_allclose(state["0.running_mean"], ref[0].running_mean.numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["1.running_var"], ref[1].running_var.numpy(), rtol=1e-12)


class Counter(gc.nn.Module):
    """A layer with a persistent and a non-persistent buffer its forward updates."""

    def __init__(self, persistent):
        self.lin = gc.nn.Linear(2, 2, dtype="float64")
        self.register_buffer("total", np.zeros(2))
        self.register_buffer("calls", np.zeros((), np.int64), persistent=persistent)

    def forward(self, x):
        self.total = self.total + gc.sum(gc.stop_gradient(x), 0)
        self.calls = self.calls + 1
        return self.lin(x)


class TorchCounter(torch.nn.Module):
    def __init__(self, persistent):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.register_buffer("total", torch.zeros(2))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64), persistent=persistent)


def test_a_non_persistent_buffer_is_state_but_not_saved_as_torchs(tmp_path):
    # persistent=False was not taken: register_buffer raised a TypeError
    for persistent in (True, False):
        ours, theirs = Counter(persistent), TorchCounter(persistent)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    ours = Counter(False)
    assert sorted(ours.state()) == ["calls", "total"]  # apply(state=) carries it
    f = gc.compile(lambda x: ours(x))
    f(np.ones((3, 2)))
    f(np.ones((3, 2)))
    assert int(ours.calls.data) == 2  # still updated by a compiled call
    np.testing.assert_array_equal(ours.total.data, [6.0, 6.0])
    with pytest.raises(gc.GraphcError, match=r"unexpected \['calls'\]"):  # torch's strict load
        ours.load_state_dict({**ours.state_dict(), "calls": np.array(5)})
    ours.load_state_dict({**ours.state_dict(), "total": np.zeros(2)})
    assert int(ours.calls.data) == 2
    with pytest.raises(RuntimeError, match="Unexpected key"):
        TorchCounter(False).load_state_dict({**TorchCounter(False).state_dict(),
                                             "calls": torch.tensor(5)})

    def loss(p, batch):
        return gc.sum(ours.apply(p, batch[0]) ** 2)
    trainer = gc.Trainer(loss, ours.params(), gc.optim.SGD(0.1), lambda r: (np.ones((3, 2)),),
                         steps=2)
    assert sorted(trainer.buffers) == ["total"]  # checkpointed: the persistent one
    trainer.train_step()
    assert int(ours.calls.data) == 3
    trainer.save(str(tmp_path / "c.npz"))
    assert sorted(k for k in np.load(tmp_path / "c.npz") if k.startswith("buffer/")) == \
        ["buffer/total"]
    # registered again as persistent, it is saved again
    ours.register_buffer("calls", ours.calls.data)
    assert "calls" in ours.state_dict()


@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d", "InstanceNorm1d"])
def test_reset_running_stats_and_reset_parameters_as_torchs(cls):
    # neither method existed
    settings = dict(affine=True, track_running_stats=True)
    ours, theirs = pair(cls, **settings)
    shape = (4, 3, 5) if cls != "BatchNorm2d" else (4, 3, 2, 2)
    f = gc.compile(lambda x: ours(x))
    for _ in range(2):
        x = RNG.normal(loc=2.0, size=shape)
        f(x)
        theirs(torch.tensor(x))
    ours.weight.data[...] = 3.0
    ours.bias.data[...] = -1.0
    with torch.no_grad():
        theirs.weight.fill_(3.0)
        theirs.bias.fill_(-1.0)
    ours.reset_running_stats()
    theirs.reset_running_stats()
    assert_same_state(ours, theirs)
    np.testing.assert_array_equal(ours.weight.data, 3.0)  # the parameters stay
    x = RNG.normal(size=shape)
    np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    assert_same_state(ours, theirs)  # the plan read the reset arrays
    ours.reset_parameters()
    theirs.reset_parameters()
    assert_same_state(ours, theirs)
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())
    np.testing.assert_array_equal(ours.bias.data, theirs.bias.detach().numpy())
    plain = gc.nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    plain.reset_parameters()  # nothing to reset, as torch's
    assert plain.running_mean is None and plain.weight is None
