"""gc.optim.Groups under gc.Trainer: a group's setting that adds or drops a state slot mid-run
(`trainer.optimizer.optimizers[1].amsgrad = True`, a momentum set from or to 0, torch's
`param_groups[i]["amsgrad"] = True`) is followed by the group's state as a single
optimiser's is (Trainer._follow_slots): a slot added starts as init makes it, one set off is
held aside and serves again when the setting comes back (torch's state keeps the momentum
buffer while the momentum is 0), checkpointed and resumed bit for bit. It failed at the next
step with "SGD.update: the state has ['count'], expected [...]". torch (float64) is the
oracle; torch's Adam has no rule for amsgrad set mid-run (a KeyError on max_exp_avg_sq), so
the reference gives the new slot init's zeros, as graphc's single optimiser does."""
import numpy as np
import pytest

import graphc as gc
from graphc import optim
from optim_groups_helpers import keyed_linear_trainer

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(10, 6, 3)), RNG.normal(size=(10, 6, 2))
BATCHES = [(X[i], Y[i]) for i in range(10)]
# step -> (group 0's SGD momentum, group 1's AdamW amsgrad) set before that step
CHANGES = {2: (0.9, True), 5: (0.0, True), 7: (0.5, False), 8: (0.5, True)}


def model():
    rng = np.random.default_rng(1)
    net = gc.nn.Sequential(gc.nn.Linear(3, 4, dtype="float64", rng=rng), gc.nn.Tanh(),
                           gc.nn.Linear(4, 2, dtype="float64", rng=rng))
    return net.params(), (lambda p, b: gc.mean((net.apply(p, b[0]) - b[1]) ** 2))


def make(start, loss):
    return gc.Trainer(loss, start, optim.Groups(
        (optim.SGD(lr=0.1, dampening=0.2), "0"),
        (optim.AdamW(lr=0.02, weight_decay=0.1), "2")), BATCHES, steps=10)


def train(trainer, until):
    while trainer.step < until:
        if trainer.step in CHANGES:
            groups = trainer.optimizer.optimizers
            groups[0].momentum, groups[1].amsgrad = CHANGES[trainer.step]
        trainer.train_step()
    return trainer


@pytest.fixture(scope="module")
def straight():
    """The run of ten steps with CHANGES, in one trainer (shared by both tests)."""
    start, loss = model()
    return start, loss, train(make(start, loss), 10)


def test_a_group_setting_adding_or_dropping_a_slot_mid_run_is_followed_as_torch(straight):
    start, _, trainer = straight
    t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    sgd = torch.optim.SGD([t["0.weight"], t["0.bias"]], lr=0.1, dampening=0.2)
    adamw = torch.optim.AdamW([t["2.weight"], t["2.bias"]], lr=0.02, weight_decay=0.1)
    for step in range(10):
        if step in CHANGES:
            sgd.param_groups[0]["momentum"], adamw.param_groups[0]["amsgrad"] = CHANGES[step]
            for p in adamw.param_groups[0]["params"]:
                adamw.state[p].setdefault("max_exp_avg_sq", torch.zeros_like(p))
        sgd.zero_grad()
        adamw.zero_grad()
        h = torch.tanh(torch.tensor(X[step]) @ t["0.weight"] + t["0.bias"])
        ((h @ t["2.weight"] + t["2.bias"] - torch.tensor(Y[step])) ** 2).mean().backward()
        sgd.step()
        adamw.step()
    for name in start:
        np.testing.assert_allclose(trainer.params[name], t[name].detach().numpy(), rtol=0,
                                   atol=1e-12, err_msg=name)
    assert "momentum" in trainer.state[0] and "v_max" in trainer.state[1]


def test_a_group_slot_added_or_held_aside_resumes_bit_for_bit(straight, tmp_path):
    start, loss, straight = straight
    trainer = make(start, loss)
    # saved with each group's slot added (3), SGD's momentum buffer held aside (6), AdamW's
    # v_max held aside (8), each resumed by a trainer built with the first settings
    for stop in (3, 6, 8):
        train(trainer, stop).save(str(tmp_path / "c.npz"))
        trainer = make(start, loss)
        trainer.resume(str(tmp_path / "c.npz"))
    train(trainer, 10)
    assert set(trainer.state_arrays()) == set(straight.state_arrays())
    for key, value in straight.state_arrays().items():
        np.testing.assert_array_equal(trainer.state_arrays()[key], value, err_msg=key)


def test_a_group_slot_follows_for_parameters_keyed_by_numbers():
    """params {0: w, 1: b} (named "0" and "1" by Groups' states) follow as ones keyed by
    text: the same bits, a frozen weight's SGD mark made from its own count."""
    rng = np.random.default_rng(2)
    data = [(rng.normal(size=(5, 3)), rng.normal(size=(5, 2))) for _ in range(6)]

    def run(keys):
        lin, trainer = keyed_linear_trainer(keys, optim.SGD(lr=0.1), optim.Adam(lr=0.1),
                                            data, steps=6)
        while trainer.step < 6:
            lin.weight.requires_grad = trainer.step != 2
            if trainer.step == 3:
                trainer.optimizer.optimizers[0].momentum = 0.9
                trainer.optimizer.optimizers[1].amsgrad = True
            trainer.train_step()
        return trainer
    text, numbers = run(["w", "b"]), run([0, 1])
    for mine, theirs in ((0, "w"), (1, "b")):
        np.testing.assert_array_equal(numbers.params[mine], text.params[theirs])
