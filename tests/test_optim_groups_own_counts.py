"""gc.optim.Groups under gc.Trainer: a parameter that had no gradient for some steps
(frozen, requires_grad=False) and gets one again is updated at its own count of updates, as
torch's state[p]["step"] (a parameter that never had a gradient has no state and starts at
step 1) and as a single graphc optimiser under the Trainer; with Groups it took its group's
count for Adam's bias corrections (0.011 off torch's after 10 steps). torch (float64) is the
oracle."""
import numpy as np
import pytest

import graphc as gc
from graphc import optim
from optim_groups_helpers import keyed_linear_trainer

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(10, 6, 3)), RNG.normal(size=(10, 6, 2))
BATCHES = [(X[i], Y[i]) for i in range(10)]


def frozen(step):
    """{name: frozen at the step}: the first weight thawed at step 3 (no state before, as
    torch's), the last bias frozen over steps 5-7 (3 updates behind its group after)."""
    return {"0.weight": step < 3, "2.bias": 5 <= step < 8}


def model():
    rng = np.random.default_rng(1)
    first = gc.nn.Linear(3, 4, dtype="float64", rng=rng)
    last = gc.nn.Linear(4, 2, dtype="float64", rng=rng)
    net = gc.nn.Sequential(first, gc.nn.Tanh(), last)

    def freeze(step):
        first.weight.requires_grad = not frozen(step)["0.weight"]
        last.bias.requires_grad = not frozen(step)["2.bias"]
    freeze(0)
    return net, freeze, (lambda p, b: gc.mean((net.apply(p, b[0]) - b[1]) ** 2))


def groups():
    return optim.Groups((optim.AdamW(lr=0.01, weight_decay=0.1), "0"),
                        (optim.AdamW(lr=0.02, weight_decay=0.0), "2"))


def train(trainer, freeze, until):
    while trainer.step < until:
        freeze(trainer.step)
        trainer.train_step()
    return trainer


def test_a_thawed_parameter_in_a_group_starts_its_own_count_as_torch():
    net, freeze, loss = model()
    start = net.params()
    trainer = train(gc.Trainer(loss, start, groups(), BATCHES, steps=10), freeze, 10)
    t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    reference = torch.optim.AdamW(
        [{"params": [t["0.weight"], t["0.bias"]], "lr": 0.01, "weight_decay": 0.1},
         {"params": [t["2.weight"], t["2.bias"]], "weight_decay": 0.0}], lr=0.02)
    for step in range(10):
        for name, off in frozen(step).items():
            t[name].requires_grad_(not off)
        reference.zero_grad()
        h = torch.tanh(torch.tensor(X[step]) @ t["0.weight"] + t["0.bias"])
        ((h @ t["2.weight"] + t["2.bias"] - torch.tensor(Y[step])) ** 2).mean().backward()
        reference.step()
    assert reference.state[t["0.weight"]]["step"] == 7
    assert reference.state[t["2.bias"]]["step"] == 7
    for name in start:
        np.testing.assert_allclose(trainer.params[name], t[name].detach().numpy(), rtol=0,
                                   atol=1e-12, err_msg=name)
    assert trainer.behind == {"0.weight": 3, "0.bias": 0, "2.weight": 0, "2.bias": 3}
    assert [int(s["count"]) for s in trainer.state] == [10, 10]  # (the groups' counts)


def test_the_own_counts_of_a_group_resume_bit_for_bit(tmp_path):
    net, freeze, loss = model()
    start = net.params()

    def make():
        return gc.Trainer(loss, start, groups(), BATCHES, steps=10)
    straight = train(make(), freeze, 10)
    train(make(), freeze, 6).save(str(tmp_path / "c.npz"))  # 0.weight 3 behind, 2.bias 1
    resumed = make()
    resumed.resume(str(tmp_path / "c.npz"))
    assert resumed.behind == {"0.weight": 3, "0.bias": 0, "2.weight": 0, "2.bias": 1}
    train(resumed, freeze, 10)
    for key, value in straight.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[key], value, err_msg=key)


def test_the_own_counts_reach_a_group_of_parameters_named_by_numbers():
    """A params dict keyed by numbers ({0: w, 1: b}, named "0" and "1" by Groups) goes as
    one keyed by text: the lags (keyed by the trainer's own keys) reached no group before,
    so the thawed weight took its group's count (0.10 off after 8 steps)."""
    rng = np.random.default_rng(2)
    data = [(rng.normal(size=(5, 3)), rng.normal(size=(5, 2))) for _ in range(8)]

    def run(keys):
        lin, trainer = keyed_linear_trainer(keys, optim.Adam(lr=0.1), optim.Adam(lr=0.1),
                                            data, steps=8)
        while trainer.step < 8:
            lin.weight.requires_grad = trainer.step >= 3
            trainer.train_step()
        return trainer
    text, numbers = run(["w", "b"]), run([0, 1])
    assert numbers.behind == {0: 3, 1: 0}
    np.testing.assert_array_equal(numbers.params[0], text.params["w"])
    np.testing.assert_array_equal(numbers.params[1], text.params["b"])
