"""InstanceNorm1d/2d/3d (graphc/batch_norm.py) and ir.ops.api.instance_norm against torch.nn's:
values and gradients in float64, eager and gc.compile, train and eval, the running statistics
after several steps, unbatched inputs, a symbolic batch, and the refusals."""
import numpy as np
import pytest

import graphc as gc
from ir.ops import api as F

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

from test_batch_norm import pair  # noqa: E402  (ours and torch's layer, one affine part)

RNG = np.random.default_rng(6)
SHAPES = {"InstanceNorm1d": [(4, 3, 5), (3, 5)], "InstanceNorm2d": [(2, 3, 3, 4), (3, 2, 3)],
          "InstanceNorm3d": [(2, 3, 2, 2, 3)]}
CASES = [(cls, shape) for cls, shapes in SHAPES.items() for shape in shapes]
SETTINGS = [dict(), dict(affine=True), dict(track_running_stats=True),
            dict(affine=True, track_running_stats=True, momentum=0.3, eps=1e-3),
            dict(track_running_stats=True, momentum=None)]


def assert_same_state(ours, theirs):
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    for (_, a), (_, b) in zip(ours.named_buffers(), theirs.named_buffers()):
        np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-12, atol=1e-14)


def torch_step(theirs, x, up):
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    (yt * torch.tensor(up)).sum().backward()
    grads = {"x": xt.grad.numpy()}
    if theirs.weight is not None:
        grads.update(weight=theirs.weight.grad.numpy().copy(),
                     bias=theirs.bias.grad.numpy().copy())
        theirs.zero_grad()
    return yt.detach().numpy(), grads


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(map(str, s)) or "default")
@pytest.mark.parametrize("cls,shape", CASES)
def test_eager_steps_then_eval_match_torch(cls, shape, settings):
    ours, theirs = pair(cls, settings)
    for step in range(3):
        x = RNG.normal(loc=step, scale=1 + step, size=shape)
        up = RNG.normal(size=shape)
        want, grads = torch_step(theirs, x, up)
        xg = gc.tensor(x, requires_grad=True)
        y = ours(xg)
        np.testing.assert_allclose(y.data, want, rtol=1e-10, atol=1e-12)
        (y * gc.tensor(up)).sum().backward()
        np.testing.assert_allclose(xg.grad, grads["x"], rtol=1e-9, atol=1e-11)
        if ours.weight is not None:
            np.testing.assert_allclose(ours.weight.grad, grads["weight"], rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(ours.bias.grad, grads["bias"], rtol=1e-9, atol=1e-11)
            ours.zero_grad()
        assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    x = RNG.normal(size=shape)
    np.testing.assert_allclose(ours(gc.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert_same_state(ours, theirs)


@pytest.mark.parametrize("settings", SETTINGS[1:4], ids=["affine", "tracked", "both"])
@pytest.mark.parametrize("cls,shape", [("InstanceNorm1d", (4, 3, 5)),
                                       ("InstanceNorm2d", (3, 2, 3))])
def test_compiled_values_gradients_and_running_statistics_match_torch(cls, shape, settings):
    ours, theirs = pair(cls, settings)

    def loss(p, s, x, up):
        out, new = ours.apply(p, x, state=s)
        return gc.sum(out * up), (out, new)

    step = gc.compile(gc.value_and_grad(loss, argnums=(0, 2), has_aux=True))
    forward = gc.compile(lambda x: ours(x))
    params, state = ours.params(), ours.state()
    for k in range(3):
        x = RNG.normal(loc=k, scale=2.0, size=shape)
        up = RNG.normal(size=shape)
        want, grads = torch_step(theirs, x, up)
        (_, (out, state)), (g_p, g_x) = step(params, state, x, up)
        np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g_x, grads["x"], rtol=1e-9, atol=1e-11)
        for name in g_p:
            np.testing.assert_allclose(g_p[name], grads[name], rtol=1e-9, atol=1e-11)
        for name, b in theirs.named_buffers():
            np.testing.assert_allclose(state[name], b.numpy(), rtol=1e-12, atol=1e-14)
    ours.load_state_dict({**params, **state})
    for mode in (True, False):  # the compiled forward, writing the model's Buffers
        ours.train(mode)
        theirs.train(mode)
        x = RNG.normal(size=shape)
        np.testing.assert_allclose(forward(x), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        assert_same_state(ours, theirs)


@pytest.mark.parametrize("affine", [True, False])
def test_functional_gradient_matches_finite_differences(affine):
    x = RNG.normal(size=(2, 3, 4))
    w, b = RNG.normal(size=3), RNG.normal(size=3)
    up = RNG.normal(size=x.shape)

    def f(x, w, b):
        return gc.sum(F.instance_norm(x, w if affine else None, b if affine else None, 1e-5)
                      * up)

    grads = gc.grad(f, argnums=(0, 1, 2) if affine else 0)(x, w, b)
    grads = grads if affine else (grads,)
    eps = 1e-6
    for k, a in enumerate((x, w, b)[:len(grads)]):
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            args = [x, w, b]
            hi, lo = a.copy(), a.copy()
            hi[i] += eps
            lo[i] -= eps
            args[k] = hi
            up_value = float(f(*args))
            args[k] = lo
            numeric[i] = (up_value - float(f(*args))) / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-6, atol=1e-8)
    want = torch.nn.functional.instance_norm(
        torch.tensor(x), weight=torch.tensor(w) if affine else None,
        bias=torch.tensor(b) if affine else None)
    np.testing.assert_allclose(F.instance_norm(gc.tensor(x), gc.tensor(w) if affine else None,
                                               gc.tensor(b) if affine else None).data,
                               want.numpy(), rtol=1e-10, atol=1e-12)


def test_a_symbolic_batch_traces_once_and_matches_torch():
    ours, theirs = pair("InstanceNorm1d", dict(affine=True, track_running_stats=True))
    f = gc.compile(lambda x: ours(x), polymorphic_shapes=["(b, 3, 4)"])
    for n in (3, 1, 5):  # a batch of one is fine: the statistics are each sample's
        x = RNG.normal(loc=n, size=(n, 3, 4))
        np.testing.assert_allclose(f(x), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        assert_same_state(ours, theirs)
    assert f.recompiles == []


def test_state_dict_names_and_torch_loading_match():
    for settings in SETTINGS:
        ours, theirs = pair("InstanceNorm2d", settings)
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    ours, theirs = pair("InstanceNorm2d", dict(affine=True, track_running_stats=True))
    theirs(torch.tensor(RNG.normal(size=(2, 3, 3, 3))))
    ours.load_torch_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = RNG.normal(size=(2, 3, 3, 3))
    np.testing.assert_allclose(ours(gc.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_refusals_as_torchs():
    norm = gc.nn.InstanceNorm2d(3, dtype="float64")
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        torch.nn.InstanceNorm2d(3)(torch.zeros(2, 3, 1, 1))
    with pytest.raises(gc.GraphcError, match=r"^InstanceNorm2d: expected more than 1 spatial "
                                             r"element when training, got input of shape "
                                             r"\(2, 3, 1, 1\)"):
        norm(gc.tensor(np.zeros((2, 3, 1, 1))))
    with pytest.raises(gc.GraphcError, match=r"expected 3D or 4D input, got shape \(3, 4\)"):
        norm(gc.tensor(np.zeros((3, 4))))
    affine = gc.nn.InstanceNorm1d(3, affine=True, dtype="float64")
    with pytest.raises(ValueError, match="match num_features"):
        torch.nn.InstanceNorm1d(3, affine=True)(torch.zeros(2, 4, 5))
    with pytest.raises(gc.GraphcError, match=r"dim=1 to match num_features \(3\)"):
        affine(gc.tensor(np.zeros((2, 4, 5))))
    # affine=False: another channel count is normalised (torch warns), as torch's
    loose = gc.nn.InstanceNorm1d(3, dtype="float64")
    x = RNG.normal(size=(2, 4, 5))
    with pytest.warns(UserWarning, match="num_features"):
        y = loose(gc.tensor(x))
    with pytest.warns(UserWarning):
        want = torch.nn.InstanceNorm1d(3)(torch.tensor(x))
    np.testing.assert_allclose(y.data, want.numpy(), rtol=1e-10, atol=1e-12)
    # eval() with running statistics takes a single spatial element, as torch's
    tracked = gc.nn.InstanceNorm2d(3, track_running_stats=True, dtype="float64").eval()
    np.testing.assert_allclose(tracked(gc.tensor(np.full((2, 3, 1, 1), 2.0))).data,
                               2.0 / np.sqrt(1 + 1e-5))


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 3, 0)], ids=["no-samples", "no-length"])
def test_an_empty_input_leaves_the_running_statistics_as_they_were(shape):
    # torch's InstanceNorm takes an input with no values (it refuses one value per channel
    # only); with no length it moves no running statistic, as its BatchNorm with an empty
    # batch, where graphc's refused the input. With no samples torch's become NaN (the mean
    # of none of the samples' statistics), and so did graphc's: now they stay as they were,
    # as its BatchNorm's do (README). (Not affine: torch's affine one fails on no samples
    # with an IndexError of its weight's repeat.)
    ours, theirs = pair("InstanceNorm1d", dict(track_running_stats=True))
    x = RNG.normal(size=(2, 3, 4))
    ours(gc.tensor(x))
    theirs(torch.tensor(x))
    before = theirs.running_mean.clone(), theirs.running_var.clone()
    y = gc.compile(lambda a: ours(a))(np.ones(shape))
    assert y.shape == tuple(theirs(torch.tensor(np.ones(shape))).shape) == shape
    with torch.no_grad():
        theirs.running_mean.copy_(before[0])
        theirs.running_var.copy_(before[1])
    assert_same_state(ours, theirs)
