"""Session 29's review findings, each against its oracle."""

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim

torch = pytest.importorskip("torch")


class _WithUnusedHead(nn.Module):
    def __init__(self):
        self.used = nn.Linear(3, 2, rng=np.random.default_rng(0))
        self.unused = nn.Linear(3, 2, rng=np.random.default_rng(1))

    def forward(self, x):
        return self.used(x)


@pytest.mark.parametrize("make", ids=["adamw", "sgd"], argvalues=[
    lambda: (optim.AdamW(lr=0.1, weight_decay=0.5), lambda p: torch.optim.AdamW(
        p, lr=0.1, weight_decay=0.5)),
    lambda: (optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.5), lambda p: torch.optim.SGD(
        p, lr=0.1, momentum=0.9, weight_decay=0.5)),
])
def test_trainer_leaves_a_parameter_the_loss_never_uses_as_torch_does(make):
    # torch's optimisers skip a parameter whose .grad is None: no weight decay, no moments.
    # The Trainer decayed it (its gradient was zeros), shrinking unused.weight by lr * wd a step
    model = _WithUnusedHead()
    start = {k: np.array(v) for k, v in model.params().items()}

    def loss(params, batch, key, training):
        (x,) = batch
        return (model.apply(params, x) ** 2).mean()

    ours, theirs = make()
    rng = np.random.default_rng(3)
    batches = [(rng.normal(size=(8, 3)).astype(np.float32),) for _ in range(5)]
    trainer = gc.Trainer(loss, model.params(), ours, batches, steps=5)
    for _ in range(5):
        trainer.train_step()

    reference = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                 for k, v in start.items()}
    opt = theirs(list(reference.values()))
    for (x,) in batches:
        opt.zero_grad()
        out = torch.tensor(x, dtype=torch.float64) @ reference["used.weight"] \
            + reference["used.bias"]
        (out ** 2).mean().backward()
        opt.step()
    for name in ("unused.weight", "unused.bias"):
        np.testing.assert_array_equal(trainer.params[name], start[name])
        np.testing.assert_array_equal(reference[name].detach().numpy(), start[name])
    for name in ("used.weight", "used.bias"):
        np.testing.assert_allclose(trainer.params[name], reference[name].detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_the_cli_shows_graphcs_warnings_as_one_line(tmp_path):
    # Python's form named the launcher's file and line and printed its source line,
    # `sys.exit(main())`, after the kernel cache's warning
    import os
    import subprocess
    import sys
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)  # writable by others: refused, with a warning
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache))
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from graphc.cli import main; sys.exit(main())",
         "train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
         "--block-size", "8", "--batch-size", "4", "--eval-iters", "1", "--no-progress",
         "--sample-tokens", "0", "--steps", "1", "--data", str(text), "--out",
         str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"graphc: warning: the kernel cache directory {cache} is "
                               "writable by group and others (mode 777"), lines


def test_a_half_global_norm_above_256_is_finite_as_torchs():
    # the sum of squares was rounded to float16 (max 65504): the norm was Inf and clipping
    # scaled every gradient by max_norm / Inf = 0
    g = np.array([300.0, 300.0], np.float16)
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))
    p.grad = torch.tensor(g)
    expected = float(torch.nn.utils.clip_grad_norm_([p], 1.0))
    assert float(np.asarray(optim.global_norm({"a": g}))) == pytest.approx(expected, rel=1e-3)
    clipped, norm = optim.clip_by_global_norm({"a": g}, 1.0)
    np.testing.assert_allclose(np.asarray(clipped["a"], np.float32), p.grad.numpy(), rtol=1e-3)
    sgd = optim.SGD(lr=0.1, clip_norm=1.0)
    params = {"a": np.zeros(2, np.float16)}
    new, _ = sgd.update({"a": g}, sgd.init(params), params)
    np.testing.assert_allclose(np.asarray(new["a"], np.float32), [-0.0707, -0.0707], rtol=1e-2)


def test_a_trainer_on_half_parameters_with_a_norm_above_256_trains():
    params = {"w": np.full((4,), 1.0, np.float16)}
    batch = (np.full((4,), 100.0, np.float16),)
    loss = lambda p, b: gc.sum(p["w"] * b[0]) * 1.5  # noqa: E731  (gradient 150 each, norm 300)
    trainer = gc.Trainer(loss, params, optim.SGD(lr=0.5), [batch], steps=1, clip_norm=1.0)
    trainer.train_step()
    assert float(trainer.grad_norm) == pytest.approx(300.0, rel=1e-3)
    np.testing.assert_allclose(np.asarray(trainer.params["w"], np.float32), 0.75, rtol=1e-3)


@pytest.mark.parametrize("grad", [np.ones((2, 3)), np.float64(5.0)])
def test_a_gradient_of_another_shape_than_its_parameter_is_refused(grad):
    # numpy broadcast it: the parameter and Adam's moments became (2, 3); torch refuses it
    w = gc.tensor(np.ones(3), requires_grad=True)
    bound = optim.Adam(lr=0.1).bind([w])
    w.grad = grad
    with pytest.raises(gc.GraphcError, match=r"Adam.update: the gradient of parameter '0' "
                       r"has shape \((2, 3)?\), its parameter \(3,\)"):
        bound.step()
    np.testing.assert_array_equal(w.data, np.ones(3))
    sgd = optim.SGD(lr=0.1)
    params = {"w": np.ones(3)}
    with pytest.raises(gc.GraphcError, match="the gradient of parameter 'w'"):
        sgd.update({"w": np.ones((4, 1, 3))}, sgd.init(params), params)


@pytest.mark.parametrize("make, name, bad", [
    (lambda: optim.Adam(), "beta1", 1.0),  # gave NaN updates
    (lambda: optim.Adam(), "eps", -1.0),
    (lambda: optim.SGD(0.1, momentum=0.9), "momentum", -0.5),
    (lambda: optim.AdamW(), "weight_decay", -1.0),
    (lambda: optim.RMSprop(), "alpha", 1.5),
    (lambda: optim.SGD(0.1, momentum=0.9), "dampening", float("nan")),
])
def test_a_setting_assigned_later_is_checked_as_the_constructor_checks_it(make, name, bad):
    opt = make()
    before = getattr(opt, name)
    with pytest.raises(gc.GraphcError, match=f"{type(opt).__name__}: {name} must be"):
        setattr(opt, name, bad)
    assert getattr(opt, name) == before


@pytest.mark.parametrize("set_later", [False, True])
def test_a_trainer_resumes_its_own_checkpoint_with_a_negative_dampening(tmp_path, set_later):
    # torch's SGD takes any dampening; the resume check wanted every setting >= 0 and
    # refused the run's own checkpoint
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2))
    batches = [(rng.normal(size=(8, 3)), rng.normal(size=(8, 2))) for _ in range(6)]

    def loss(p, b):
        d = b[0] @ p["w"] - b[1]
        return gc.mean(d * d)

    def make():
        opt = optim.SGD(lr=0.1, momentum=0.9, dampening=0.0 if set_later else -0.5)
        return gc.Trainer(loss, {"w": w.copy()}, opt, batches, steps=6)
    first = make()
    if set_later:
        first.optimizer.dampening = -0.5
    for _ in range(3):
        first.train_step()
    first.save(str(tmp_path / "ck.npz"))
    second = make()
    second.resume(str(tmp_path / "ck.npz"))
    assert second.optimizer.dampening == -0.5
    for trainer in (first, second):
        for _ in range(3):
            trainer.train_step()
    np.testing.assert_array_equal(first.params["w"], second.params["w"])


@pytest.mark.parametrize("kwargs, message", [
    ({"eval_iters": 0}, "eval_iters must be a whole number >= 1, got 0"),
    ({"eval_iters": -1}, "eval_iters must be a whole number >= 1, got -1"),
    ({"steps": -3}, "steps must be a whole number >= 0, got -3"),
    ({"steps": 2.5}, "steps must be a whole number >= 0, got 2.5"),
    ({"steps": "10"}, "steps must be a whole number >= 0, got '10'"),
    ({"seed": -1}, "seed must be a whole number >= 0, got -1"),
    ({"eval_every": 0}, "eval_every must be a whole number >= 1, got 0"),
])
def test_the_trainers_whole_number_arguments_are_checked(kwargs, message):
    # eval_iters=0 averaged no losses into NaN and stopped the run as diverged; the others
    # were coerced (2.5 -> 2) or failed later inside numpy
    settings = {"steps": 3, **kwargs}
    with pytest.raises(gc.GraphcError, match=f"Trainer: {message}"):
        gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]), {"w": np.ones(2)}, optim.SGD(0.1),
                   [(np.ones(2),)], **settings)


def test_a_bound_optimiser_given_to_the_trainer_is_one_line():
    w = gc.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(gc.GraphcError, match=r"got a BoundOptimizer \(pass the optimiser "
                       r"itself, not its .bind\(...\)\)"):
        gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]), {"w": np.ones(2)},
                   optim.SGD(0.1).bind([w]), [(np.ones(2),)], steps=3)


def test_keyword_arguments_of_grad_that_differ_only_in_type_get_their_own_plans():
    # the static key held (("p", 1),), equal to (("p", 1.0),): the second call reused the
    # first one's plan although f tells them apart
    x = np.array([1.0, 2.0, 3.0])

    def f(a, p=1.0):
        return gc.sum(a * a) * (5.0 if isinstance(p, float) else 1.0)
    g = gc.grad(f)
    np.testing.assert_array_equal(g(x, p=1), 2 * x)
    np.testing.assert_array_equal(g(x, p=1.0), 10 * x)
    np.testing.assert_array_equal(g(x, p=True), 2 * x)
    c = gc.compile(lambda a, p: a * (5.0 if isinstance(p[0], float) else 1.0),
                   static_argnums=1)
    np.testing.assert_array_equal(c(x, (1,)), x)
    np.testing.assert_array_equal(c(x, (1.0,)), 5 * x)


@pytest.mark.parametrize("loop, message", [
    (lambda x: gc.fori_loop(0, 2.5, lambda i, c: c + 1, x), "fori_loop: upper must be an "
     "int, got 2.5"),  # ran 2 steps
    (lambda x: gc.fori_loop(0.5, 3, lambda i, c: c + i, x), "fori_loop: lower must be an "
     "int, got 0.5"),  # counted i from 0.0
    (lambda x: gc.scan(lambda c, _: (c + 1, None), x, None, length=2.5)[0],
     "scan: length must be an int, got 2.5"),
])
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_float_loop_bounds_are_refused_not_truncated(loop, message, mode):
    run = loop if mode == "eager" else gc.compile(loop)
    with pytest.raises(gc.GraphcError, match=message):
        run(np.zeros(3))
    count = gc.fori_loop(np.int32(1), np.array(4), lambda i, c: c + i, np.zeros(2))
    np.testing.assert_array_equal(count, [6.0, 6.0])


def test_a_python_int_primal_of_jvp_and_linearize_is_an_index_or_a_factor():
    # it was made a float64, which no index takes: "take(f64[3], f64[]): indices must be
    # integers"; np.int64(1) worked
    v = np.array([0.3, -1.2, 2.0])
    f = lambda a, i: a[i] * a  # noqa: E731
    expected = gc.jvp(f, (v, np.int64(1)), (v, np.int64(0)))
    got = gc.jvp(f, (v, 1), (v, 0))
    np.testing.assert_allclose(got[0], v[1] * v)
    # d(a[1] * a) = t[1] * a + a[1] * t with t = v
    np.testing.assert_allclose(got[1], v[1] * v + v[1] * v)
    np.testing.assert_allclose(got[1], expected[1])
    np.testing.assert_allclose(gc.linearize(f, v, 1)[1](v, 0), expected[1])
    # a factor takes the float dtype it meets, as JAX's weak int
    y, t = gc.jvp(lambda x, n: x * n, (np.ones(2), 3), (np.ones(2), 0))
    np.testing.assert_array_equal(y, [3.0, 3.0])
    np.testing.assert_array_equal(t, [3.0, 3.0])
    y, f_jvp = gc.linearize(lambda x, n: x * n, np.ones(2, np.float32), 3)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(f_jvp(np.ones(2, np.float32), 0), [3.0, 3.0])
    with pytest.raises(gc.GraphcError, match="primal 0 is the int 3, an integer with no "
                       "tangent, but its tangent is a float; pass 3.0"):
        gc.jvp(lambda x: x * 2, (3,), (1.0,))
