"""Modules as pytrees: model.params() / model.apply(params, ...), against the eager
Parameters and loss.backward() they stand in for."""
import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim
from graphc.models.gpt import GPT, GPTConfig


class Net(nn.Module):
    def __init__(self, dtype="float64"):
        self.l1 = nn.Linear(3, 8, rng=np.random.default_rng(1), dtype=dtype)
        self.l2 = nn.Linear(8, 2, rng=np.random.default_rng(2), dtype=dtype)
        self.norm = nn.LayerNorm(8, dtype=dtype)

    def forward(self, x):
        return self.l2(gc.tanh(self.norm(self.l1(x))))


def _data(dtype="float64"):
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 3)).astype(dtype), rng.normal(size=(5, 2)).astype(dtype)


def test_params_are_named_copies():
    net = Net()
    params = net.params()
    assert list(params) == [n for n, _ in net.named_parameters()] == [
        "l1.weight", "l1.bias", "l2.weight", "l2.bias", "norm.weight", "norm.bias"]
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(params[name], p.data)
        assert params[name] is not p.data  # donating them cannot change the model
    params["l1.weight"][:] = 0.0
    assert np.abs(net.l1.weight.data).sum() > 0


def test_apply_equals_forward_eagerly_and_compiled():
    net, (x, _) = Net(), _data()
    params = net.params()
    expected = net(gc.tensor(x)).data
    np.testing.assert_array_equal(net.apply(params, x).data, expected)
    compiled = gc.compile(lambda p, x: net.apply(p, x))(params, x)
    np.testing.assert_allclose(compiled, expected, rtol=1e-12)
    # other values give other results, and the model's Parameters are back afterwards
    doubled = {k: v * 2 for k, v in params.items()}
    assert not np.allclose(net.apply(doubled, x).data, expected)
    assert isinstance(net.l1.weight, gc.Parameter)
    np.testing.assert_array_equal(net(gc.tensor(x)).data, expected)


def test_grad_of_apply_equals_backward():
    net, (x, y) = Net(), _data()
    loss = gc.mean((net(gc.tensor(x)) - y) ** 2)
    loss.backward()
    value, grads = gc.value_and_grad(lambda p: gc.mean((net.apply(p, x) - y) ** 2))(
        net.params())
    assert float(value) == pytest.approx(float(loss), rel=1e-12)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad, rtol=1e-10, atol=1e-12)


def test_apply_with_eager_tensors_records_the_tape():
    net, (x, _) = Net(), _data()
    params = {k: gc.tensor(v, requires_grad=True) for k, v in net.params().items()}
    gc.sum(net.apply(params, x)).backward()
    gc.sum(net(gc.tensor(x))).backward()
    for name, p in net.named_parameters():
        np.testing.assert_allclose(params[name].grad, p.grad, rtol=1e-12)


def test_apply_traced_params_are_plain_inputs_named_after_the_parameters():
    net, (x, _) = Net("float32"), _data("float32")
    graph = gc.trace(lambda params, x: net.apply(params, x), net.params(), x)
    names = [n.attrs["name"] for n in graph.inputs]
    assert names == ["params.l1.weight", "params.l1.bias", "params.l2.weight",
                     "params.l2.bias", "params.norm.weight", "params.norm.bias", "x"]
    assert not graph.param_values  # no eager Parameter leaked into the graph


def test_apply_rejects_params_that_do_not_match():
    net, (x, _) = Net(), _data()
    params = net.params()
    del params["l2.bias"]
    with pytest.raises(gc.GraphcError, match=r"missing \['l2.bias'\]"):
        net.apply(params, x)
    with pytest.raises(gc.GraphcError, match=r"unexpected \['extra'\]"):
        net.apply({**net.params(), "extra": np.ones(1)}, x)
    with pytest.raises(gc.GraphcError, match="must be a dict"):
        net.apply([1, 2], x)


def test_apply_restores_parameters_when_forward_raises():
    net = Net()
    with pytest.raises(gc.GraphcError):
        net.apply(net.params(), np.ones((5, 4)))  # wrong width
    assert all(isinstance(p, gc.Parameter) for p in net.parameters())
    assert len(net.parameters()) == 6


def test_gpt_apply_equals_its_parameters():
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=2,
                          vocab_size=11, dtype="float64"))
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8))
    expected = float(model(gc.tensor(idx), gc.tensor(targets)))
    loss, grads = gc.value_and_grad(lambda p: model.apply(p, idx, targets))(model.params())
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert set(grads) == {n for n, _ in model.named_parameters()}


def test_issue_example_compiled_step_trains_an_mlp():
    """The step from issue 16, donated and compiled, against the same loop run eagerly."""
    net, (x, y) = Net(), _data()
    opt = optim.AdamW(lr=optim.cosine(1e-2, warmup=2, steps=20), weight_decay=0.01)

    @gc.compile(donate_argnums=(0, 1))
    def step(params, state, x, y):
        loss, grads = gc.value_and_grad(lambda p: gc.mean((net.apply(p, x) - y) ** 2))(params)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    params = net.params()
    state = opt.init(params)
    losses = []
    for _ in range(20):
        loss, params, state = step(params, state, x, y)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert step.recompiles == []

    bound = opt.bind(net)
    for _ in range(20):
        bound.zero_grad()
        gc.mean((net(gc.tensor(x)) - y) ** 2).backward()
        bound.step()
    for name, p in net.named_parameters():
        np.testing.assert_allclose(params[name], p.data, rtol=1e-9, atol=1e-12)
