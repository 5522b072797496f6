"""gc.optim.Groups (graphc/optim_groups.py): param groups with their own settings, as torch's
`Adam([{"params": backbone, "lr": 1e-4}, {"params": head}], lr=1e-3)`, trained by gc.Trainer
as torch.optim trains them (float64, a LambdaLR scaling each group's lr), saved and resumed
bit for bit; bad groups are one line. BoundOptimizer.param_groups lists one dict per group
(len 2 after add_param_group), as torch's."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from graphc import optim

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
F = "test_optim_groups.py"

from optim_groups_helpers import P0, X, Y, loss


def lam(t):  # torch's LambdaLR factor (a float count there, a traced int64 count here)
    return 1.0 / (1.0 + 0.25 * t)


def glam(count):
    return 1.0 / (1.0 + 0.25 * gc.cast(count, "float64"))


def groups():
    return optim.Groups(
        (optim.AdamW(lr=lambda c: 1e-2 * glam(c), weight_decay=0.1), ["backbone"]),
        (optim.AdamW(lr=lambda c: 1e-1 * glam(c), weight_decay=0.0), "head"))


def trainer(steps, opt=None):
    params = {k: v.copy() for k, v in P0.items()}
    return gc.Trainer(loss, params, opt or groups(), [(X, Y)], steps=steps, seed=1)


def torch_params(steps):
    t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in P0.items()}
    opt = torch.optim.AdamW([
        {"params": [t["backbone.w"], t["backbone.b"]], "lr": 1e-2, "weight_decay": 0.1},
        {"params": [t["head.w"]], "weight_decay": 0.0}], lr=1e-1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    x, y = torch.tensor(X), torch.tensor(Y)
    for _ in range(steps):
        opt.zero_grad()
        h = torch.tanh(x @ t["backbone.w"] + t["backbone.b"])
        ((h @ t["head.w"] - y) ** 2).mean().backward()
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [1e-2 * lam(steps), 1e-1 * lam(steps)]
    return {k: v.detach().numpy() for k, v in t.items()}


def test_trainer_trains_the_groups_as_torch():
    t = trainer(6)
    for _ in range(6):
        t.train_step()
    want = torch_params(6)
    for k in want:
        np.testing.assert_allclose(t.params[k], want[k], rtol=1e-12, atol=1e-14)
    # each group moved by its own lr: the head (lr 0.1) far more than the backbone
    moved = {k: np.abs(t.params[k] - P0[k]).max() for k in P0}
    assert moved["head.w"] > 3 * max(moved["backbone.w"], moved["backbone.b"])


def test_save_and_resume_is_the_whole_run(tmp_path):
    whole = trainer(6)
    assert whole.fit(str(tmp_path / "whole"), progress=False) == 0
    half = trainer(3)
    assert half.fit(str(tmp_path / "half"), progress=False) == 0
    resumed = trainer(6)
    resumed.resume(str(tmp_path / "half" / "checkpoint.npz"))
    assert resumed.fit(str(tmp_path / "half"), progress=False) == 0
    for k in P0:
        np.testing.assert_array_equal(resumed.params[k], whole.params[k])


def test_a_group_setting_changed_mid_run_is_torchs():
    t = trainer(4, optim.Groups((optim.SGD(lr=0.05, momentum=0.9), ["backbone"]),
                                (optim.SGD(lr=0.2, momentum=0.9), ["head"])))
    tt = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in P0.items()}
    opt = torch.optim.SGD([{"params": [tt["backbone.w"], tt["backbone.b"]], "lr": 0.05},
                           {"params": [tt["head.w"]]}], lr=0.2, momentum=0.9)
    x, y = torch.tensor(X), torch.tensor(Y)
    for step in range(4):
        if step == 2:  # torch's opt.param_groups[0]["lr"] = 0.01
            t.optimizer.optimizers[0].lr = 0.01
            opt.param_groups[0]["lr"] = 0.01
        t.train_step()
        opt.zero_grad()
        h = torch.tanh(x @ tt["backbone.w"] + tt["backbone.b"])
        ((h @ tt["head.w"] - y) ** 2).mean().backward()
        opt.step()
    for k in P0:
        np.testing.assert_allclose(t.params[k], tt[k].detach().numpy(), rtol=1e-12,
                                   atol=1e-14)


def test_bad_groups_are_one_line():
    adam = optim.Adam(lr=0.1)
    assert_one_line_error(lambda: optim.Groups(), "no group given", F)
    assert_one_line_error(lambda: optim.Groups(adam), "each group is a pair", F)
    assert_one_line_error(lambda: optim.Groups((optim.adam(0.1), ["head"])),
                          "group 0's optimizer", F)
    assert_one_line_error(lambda: optim.Groups((adam, ["a"]), (adam, ["b"])),
                          "one optimiser is given to two groups", F)
    assert_one_line_error(lambda: optim.Groups((adam, 3)), "group 0's parameters are", F)
    only_head = optim.Groups((optim.Adam(lr=0.1), ["head"]))
    assert_one_line_error(lambda: only_head.init(P0), "'backbone.w' is in no group", F)
    twice = optim.Groups((optim.Adam(lr=0.1), ["head"]), (optim.Adam(lr=0.1), lambda n: True))
    assert_one_line_error(lambda: twice.init(P0), "is in groups 0, 1", F)
    unused = optim.Groups((optim.Adam(lr=0.1), lambda n: True), (optim.Adam(lr=0.1), "x"))
    assert_one_line_error(lambda: unused.init(P0), "group 1 ('x') picks no parameter", F)


# ---- BoundOptimizer.param_groups: one dict per group, as torch's ---------------------------
def test_param_groups_lists_each_group_as_torchs():
    a, b = gc.nn.Linear(3, 4), gc.nn.Linear(4, 2)
    opt = optim.Adam(lr=0.01).bind(a)
    opt.add_param_group({"params": b.parameters()})
    ta, tb = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    topt = torch.optim.Adam(ta.parameters(), lr=0.01)
    topt.add_param_group({"params": tb.parameters()})
    assert len(opt.param_groups) == len(topt.param_groups) == 2
    assert [len(g["params"]) for g in opt.param_groups] == \
        [len(g["params"]) for g in topt.param_groups] == [2, 2]
    assert opt.param_groups[1]["params"][0] is b.weight
    assert opt.param_groups[0]["params"][1] is a.bias
    assert opt.param_groups[1]["lr"] == topt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[-1]["betas"] == topt.param_groups[-1]["betas"]
    # torch's loop over the groups sets every group's lr: the optimiser's
    for g in opt.param_groups:
        g["lr"] = 0.002
    assert opt.lr == 0.002 and [g["lr"] for g in opt.param_groups] == [0.002, 0.002]


def test_a_setting_written_into_one_group_only_is_refused_at_step():
    a, b = gc.nn.Linear(3, 4), gc.nn.Linear(4, 2)
    opt = optim.SGD(lr=0.1).bind(a)
    opt.add_param_group({"params": b.parameters()})
    opt.param_groups[1]["lr"] = 0.01  # torch's would step group 1 at 0.01, group 0 at 0.1
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[0]["lr"] == 0.1
    assert_one_line_error(lambda: opt.step(), "param_groups[1]['lr'] was set to 0.01, the other "
                          "groups' lr is 0.1", F)
    opt.param_groups[0]["lr"] = 0.01  # every group has it now
    assert opt.lr == 0.01
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.lr = 0.3  # the optimiser's own setting is every group's
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3]
    opt.step()


def test_a_group_of_its_own_lr_says_how_to_get_one():
    a, b = gc.nn.Linear(3, 4), gc.nn.Linear(4, 2)
    opt = optim.Adam(lr=0.01).bind(a)
    assert_one_line_error(lambda: opt.add_param_group({"params": b.parameters(), "lr": 1e-3}),
                          "gc.Trainer: gc.optim.Groups((opt1, names1), (opt2, names2))", F)
    assert_one_line_error(
        lambda: optim.Adam([{"params": a.parameters(), "lr": 1e-4},
                            {"params": b.parameters()}], lr=1e-3),
        "gc.Trainer takes gc.optim.Groups((gc.optim.Adam(lr=...), names1)", F)


def test_a_parameter_without_a_gradient_is_left_alone_as_torchs():
    """A parameter the loss does not read (or a frozen one) gets no gradient: torch's AdamW
    skips it (no weight decay), as gc.Trainer with one gc.optim.AdamW does; with Groups the
    Trainer gave it a zero gradient, which AdamW's weight decay moved (0.045 after 2 steps)."""
    params = {**{k: v.copy() for k, v in P0.items()}, "head.unused": np.ones(3)}
    opt = optim.Groups((optim.SGD(lr=0.05), "backbone"),
                       (optim.AdamW(lr=0.1, weight_decay=0.1), "head"))
    t = gc.Trainer(loss, params, opt, [(X, Y)], steps=2, seed=1)
    t.train_step()
    t.train_step()
    np.testing.assert_array_equal(t.params["head.unused"], np.ones(3))
    assert not np.array_equal(t.params["head.w"], P0["head.w"])


def test_a_groups_schedule_counts_skipped_fp16_steps_as_one_optimisers():
    """gc.Trainer evaluates a graphc optimiser's schedule at its step, fp16 steps skipped on
    an overflow counted (torch's scheduler steps every iteration); Groups' schedules were at
    each group's count of updates instead, so a Groups of one AdamW differed from the AdamW
    after 2 skipped steps (0.12)."""
    def sched(c):
        return 0.1 * glam(c)

    out = []
    for opt in (optim.AdamW(lr=sched), optim.Groups((optim.AdamW(lr=sched), lambda n: True))):
        params = {k: v.astype(np.float32) for k, v in P0.items()}
        t = gc.Trainer(loss, params, opt, [(X.astype(np.float32), Y.astype(np.float32))],
                       steps=6, seed=1, precision="fp16-mixed",
                       loss_scaler=gc.amp.LossScaler(init_scale=2.0 ** 17))
        for _ in range(6):
            t.train_step()
        assert t.skipped_steps == 2
        out.append(t.params)
    for k in P0:
        np.testing.assert_array_equal(out[1][k], out[0][k])


def test_a_group_given_the_shared_value_back_steps():
    """Writing into one param group the value every group has (its own, or after another
    value) is no difference: torch's step takes it; it was held and step() refused it ("was
    set to 0.1, the other groups' lr is 0.1")."""
    w = gc.Tensor(np.ones(3), requires_grad=True)
    b = gc.Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD(lr=0.1).bind([w])
    opt.add_param_group({"params": [b]})
    opt.param_groups[1]["lr"] = 0.5  # (then back: group 1 alone written)
    opt.param_groups[1]["lr"] = 0.1
    (gc.sum(w * w) + gc.sum(b * b)).backward()
    opt.step()
    opt.zero_grad()
    opt.param_groups[0]["lr"] = 0.1  # (group 0 alone, its own value)
    (gc.sum(w * w) + gc.sum(b * b)).backward()
    opt.step()
    np.testing.assert_allclose(w.data, 0.64)
    np.testing.assert_allclose(b.data, 0.64)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]


def test_the_trainers_clip_and_a_groups_own_clip_are_refused_as_one_optimisers():
    """gc.Trainer refuses clip_norm= with an optimiser's own clip_norm= (two clips, where
    torch's clip_grad_norm_ clips once); a Groups group's clip_norm with the Trainer's
    clipped twice without a word."""
    opt = optim.Groups((optim.SGD(lr=0.1, clip_norm=0.5), "backbone"),
                       (optim.SGD(lr=0.1), "head"))
    assert_one_line_error(
        lambda: gc.Trainer(loss, {k: v.copy() for k, v in P0.items()}, opt, [(X, Y)],
                           steps=1, clip_norm=1.0),
        "Trainer: clip_norm=1.0 and group 0's optimizer's clip_norm=0.5 would clip its "
        "gradients twice (PyTorch's clip_grad_norm_ clips once); give one of them", F)


@pytest.mark.parametrize("key, value, says", [
    ("lr", -1.0, "SGD: lr must be a number >= 0 or a schedule (a function of the step "
                 "count), got -1.0"),
    ("momentum", -0.5, "SGD: momentum must be a finite number >= 0, got -0.5")])
def test_a_bad_value_written_into_one_group_is_refused_when_written(key, value, says):
    """A value written into some param groups only was held unchecked (the optimiser checks
    it when every group has it): pg[0]["lr"] = -1.0 was taken, and step() then refused it as
    a difference between groups, not as a bad lr."""
    w = gc.Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD(lr=0.1, momentum=0.9).bind([w])
    opt.add_param_group({"params": [gc.Tensor(np.ones(2), requires_grad=True)]})
    group = opt.param_groups[0]

    def write():
        group[key] = value
    assert_one_line_error(write, says, F)
