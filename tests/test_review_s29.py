"""Session 29's review findings, each against its oracle."""

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim

torch = pytest.importorskip("torch", reason="PyTorch, the oracle (the test extra), is not "
                            "installed")


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
    # (background compilation, as a user's run has it: the step runs before the kernels the
    # refused cache cannot give are compiled, not after 15 s of compiling them; the
    # background compiler is given the private directory, so it warns nothing again)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), GRAPHC_BACKGROUND_COMPILE="1")
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
    # a tangent that is not zero would be dropped (jvp(x * x, (3,), (1,)) gave 0): refused
    for tangent in (1.0, 1):
        with pytest.raises(gc.GraphcError, match=r"jvp: primal 0 is 3, an integer with no "
                           r"tangent, but its tangent is not zero; pass a float primal \(3.0\)"):
            gc.jvp(lambda x: x * x, (3,), (tangent,))
    with pytest.raises(gc.GraphcError, match="linearize: f_jvp: primal 0 is 3"):
        gc.linearize(lambda x: x * x, 3)[1](1.0)
    assert float(gc.jvp(lambda x: x * x, (3.0,), (1.0,))[1]) == 6.0


def test_one_inf_spoils_no_other_adaptive_average_window():
    # the averaging matrix multiplied every element by the other windows' zeros: inf * 0
    import torch.nn.functional as TF
    x = np.array([[[1.0, np.inf, 2.0, 3.0, 4.0]]])
    np.testing.assert_array_equal(np.asarray(gc.adaptive_avg_pool1d(x, 3)),
                                  TF.adaptive_avg_pool1d(torch.tensor(x), 3).numpy())
    x2 = np.arange(12.0).reshape(1, 1, 3, 4)
    x2[0, 0, 0, 0] = np.nan
    expected = TF.adaptive_avg_pool2d(torch.tensor(x2), (2, 3)).numpy()
    assert np.isnan(expected).sum() == 1
    for run in (lambda a: gc.adaptive_avg_pool2d(a, (2, 3)),
                gc.compile(lambda a: gc.adaptive_avg_pool2d(a, (2, 3)))):
        np.testing.assert_array_equal(np.asarray(run(x2)), expected)


@pytest.mark.parametrize("shape, size", [((2, 3, 7), 3), ((1, 2, 5, 7), (3, 4)),
                                         ((2, 1, 6, 5), (4, 3))])
def test_adaptive_average_pools_and_gradients_equal_torchs(shape, size):
    import torch.nn.functional as TF
    x = np.random.default_rng(1).normal(size=shape)
    pool = gc.adaptive_avg_pool1d if len(shape) == 3 else gc.adaptive_avg_pool2d
    reference = TF.adaptive_avg_pool1d if len(shape) == 3 else TF.adaptive_avg_pool2d
    weights = np.random.default_rng(2).normal(size=np.asarray(pool(x, size)).shape)
    xt = torch.tensor(x, requires_grad=True)
    (reference(xt, size) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(np.asarray(pool(x, size)), reference(torch.tensor(x), size)
                               .numpy(), rtol=1e-13, atol=1e-15)
    grad = gc.grad(lambda a: gc.sum(pool(a, size) * weights))(x)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_linear_interpolation_keeps_an_inf_neighbour_inf_as_torch():
    import torch.nn.functional as TF
    x = np.array([[[1.0, np.inf, 2.0, 3.0, 4.0, 5.0]]])
    expected = TF.interpolate(torch.tensor(x), size=9, mode="linear").numpy()
    got = np.asarray(gc.nn.Upsample(size=9, mode="linear")(x))
    np.testing.assert_array_equal(got, expected)  # [nan inf inf inf 2.5 ...]: nan at 0 too
    y = np.random.default_rng(3).normal(size=(1, 2, 4, 5))
    np.testing.assert_allclose(
        np.asarray(gc.interpolate(y, size=(7, 3), mode="bilinear")),
        TF.interpolate(torch.tensor(y), size=(7, 3), mode="bilinear").numpy(), rtol=1e-14)


@pytest.mark.parametrize("make, args, attr", [
    (lambda w: nn.CrossEntropyLoss(weight=w), "ce", "weight"),
    (lambda w: nn.BCELoss(weight=w), "bce", "weight"),
    (lambda w: nn.BCEWithLogitsLoss(pos_weight=w), "logits", "pos_weight"),
    (lambda w: nn.MultiMarginLoss(weight=w), "ce", "weight"),
    (lambda w: nn.MultiLabelSoftMarginLoss(weight=w), "multilabel", "weight"),
])
def test_a_loss_weight_set_after_compiling_is_read_by_the_plan(make, args, attr):
    # the weight was a constant of the plan: the compiled loss kept the old one
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(4, 3)), np.array([0, 1, 2, 1])
    p, q = np.full((4, 3), 0.3), np.full((4, 3), 0.6)
    operands = {"ce": (x, t), "bce": (p, q), "logits": (x, q),
                "multilabel": (x, np.ones((4, 3)))}[args]
    loss = make(np.array([1.0, 2.0, 3.0]))
    compiled = gc.compile(lambda a, b: loss(a, b))
    compiled(*operands)
    setattr(loss, attr, np.array([5.0, 1.0, 1.0]))
    assert float(np.asarray(compiled(*operands))) == pytest.approx(
        float(np.asarray(loss(*operands))), rel=1e-12)
    assert sorted(loss.state_dict()) == [attr]  # a buffer, as torch's


def test_cross_entropy_checks_its_weight_and_ignore_index():
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    with pytest.raises(gc.GraphcError, match=r"cross_entropy: weight must have one value per "
                       r"class, shape \(3,\), got shape \(2,\)"):
        gc.cross_entropy(x, t, weight=np.array([1.0, 2.0]))
    with pytest.raises(gc.GraphcError, match=r"nll_loss: weight must have one value per "
                       r"class, shape \(3,\), got shape \(4, 3\)"):
        gc.nll_loss(x, t, weight=np.ones((4, 3)))
    with pytest.raises(gc.GraphcError, match="ignore_index must be an int, got an ndarray "
                       r"\(torch's third positional argument is the weight"):
        gc.cross_entropy(x, t, np.array([1.0, 2.0, 3.0]))  # torch's order
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                                 weight=torch.tensor([1.0, 2.0, 3.0],
                                                                     dtype=torch.float64))
    for weight in ([1, 2, 3], np.array([1.0, 2.0, 3.0], np.float32)):  # cast to float64
        got = gc.cross_entropy(x, t, weight=weight)
        assert float(np.asarray(got)) == pytest.approx(float(expected), rel=1e-7)


@pytest.mark.parametrize("make, hx", [
    (lambda: nn.LSTM(3, 4, dtype="float64"), lambda: (np.full((1, 1, 4), 0.5), None)),
    (lambda: nn.LSTM(3, 4, dtype="float64"), lambda: (None, np.ones((1, 1, 4)))),
])
def test_an_lstm_state_missing_half_is_refused_as_torch_does(make, hx):
    # a None half was taken as zeros
    with pytest.raises(gc.GraphcError, match=r"LSTM: hx must be a pair \(h_0, c_0\) of "
                       "tensors, got tuple of 2 holding None"):
        make()(np.ones((2, 1, 3)), hx())
    with pytest.raises(gc.GraphcError, match="LSTMCell: hx must be a pair"):
        nn.LSTMCell(3, 4, dtype="float64")(np.ones((1, 3)), (np.ones((1, 4)), None))


def test_a_recurrent_layer_names_itself_for_an_input_of_another_dtype():
    # the error named an internal matmul and its reshaped shapes
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    for layer in (nn.LSTM(3, 4), nn.GRU(3, 4, num_layers=2)):
        with pytest.raises(gc.GraphcError, match=f"{type(layer).__name__}: input is float64 "
                           "but the layer's weights are float32; cast it with .astype"):
            layer(x)
    with pytest.raises(gc.GraphcError, match="GRU: hx is float64 but the layer's weights"):
        nn.GRU(3, 4)(x.astype(np.float32), np.zeros((1, 2, 4)))
    with pytest.raises(gc.GraphcError, match="RNNCell: input is float64"):
        nn.RNNCell(3, 4)(x[0])
    out, h = nn.GRU(3, 4)(x.astype(np.float32))  # the layer's own dtype still runs
    assert np.asarray(out).shape == (5, 2, 4) and np.asarray(h).dtype == np.float32


def test_a_custom_jvp_rules_primal_out_must_match_the_output():
    @gc.custom_jvp
    def f(a):
        return a * 2

    f.defjvp(lambda p, t: (p[0][:2] * 100.0, t[0]))  # a (2,) primal for a (3,) output
    with pytest.raises(gc.GraphcError, match=r"custom_jvp function f: the rule's primal_out "
                       r"has shapes \[\(2,\)\] but the function returns \[\(3,\)\]"):
        gc.jvp(f, (np.ones(3),), (np.ones(3),))


@pytest.mark.parametrize("call, message", [
    (lambda: gc.grad(lambda a, b: gc.sum(a * b), 1.0), "grad: argnums must be an int or a "
     "tuple of ints, got 1.0"),
    (lambda: gc.grad(lambda a, b: gc.sum(a * b), "b"), "grad: argnums must be an int or a "
     "tuple of ints, got 'b'"),
    (lambda: gc.jvp(lambda a: a * 2, np.ones(3), np.ones(3)), r"jvp: primals must be a tuple "
     r"\(or list\) of the arguments, got an ndarray; for one argument pass \(x,\)"),
    (lambda: gc.remat(3), "remat: the function to transform must be callable, got 3"),
    (lambda: gc.grad(3), "grad: the function to transform must be callable, got 3"),
    (lambda: gc.grad(lambda a: (gc.sum(a), {"tag": "s"}), has_aux=True)(np.ones(3)),
     "lambda returned a str"),  # named the internal `symbolic`
    (lambda: gc.compile(lambda a, n: a * n, static_argnums=1, donate_argnums=-1)(
        np.ones(3), 3), "compile: argument 1 is both static and donated"),
])
def test_bad_transform_arguments_are_one_line(call, message):
    with pytest.raises(gc.GraphcError, match=message):
        call()


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd["state"].pop("count"), r"the state has \['m', 'v'\], Adam keeps "
     r"\['count', 'm', 'v'\]"),  # a raw KeyError at the next step()
    (lambda sd: sd["state"].__setitem__("count", np.asarray(-3)), "the state's count must be "
     "a whole number >= 0, got -3"),  # taken: Adam's bias correction changed
    (lambda sd: sd["state"].__setitem__("count", 3.7), "the state's count must be a whole "
     "number >= 0, got 3.7"),
    (lambda sd: sd["behind"].__setitem__("a", -5), r"behind\['a'\] must be a whole number"),
    # (a float32 one is cast, as torch casts a saved state: tests/test_optim.py)
    (lambda sd: sd["state"]["m"].__setitem__("a", sd["state"]["m"]["a"].astype(np.int64)),
     r"m of a is int64\[3\], expected float64\[3\]"),
    (lambda sd: sd.__setitem__("state", {"count": sd["state"]["count"]}),
     r"the state has \['count'\], Adam keeps"),
])
def test_a_bound_optimisers_state_is_checked_when_loaded(edit, message):
    def fresh():
        params = {"a": gc.tensor(np.ones(3), requires_grad=True)}
        return params, optim.Adam(lr=0.1).bind(params)
    params, bound = fresh()
    params["a"].grad = np.ones(3)
    bound.step()
    saved = bound.state_dict()
    edit(saved)
    _, other = fresh()
    with pytest.raises(gc.GraphcError, match=f"load_state_dict: {message}"):
        other.load_state_dict(saved)


@pytest.mark.parametrize("make, message", [
    (lambda: optim.polynomial_decay(0.1, 0.0, -1.0, 10), "polynomial_decay: power must be a "
     "finite number >= 0, got -1.0"),  # lr inf (or ZeroDivisionError) at the end step
    (lambda: optim.one_cycle(0.1, 10, div_factor=0), "one_cycle: div_factor must be > 0"),
    (lambda: optim.one_cycle(0.1, 10, final_div_factor=0), "final_div_factor must be > 0"),
    (lambda: optim.cosine("x", 10), "cosine: peak must be a number, got 'x'"),
    (lambda: optim.cosine(float("nan"), 10), "cosine: peak must be a finite number"),
    (lambda: optim.cosine(0.1, -5), "cosine: steps must be a whole number >= 0, got -5"),
    (lambda: optim.linear_warmup(0.1, -3), "warmup must be a whole number >= 0, got -3"),
    (lambda: optim.exponential_decay(0.1, 2, float("nan")), "exponential_decay: decay_rate "
     "must be a finite number, got nan"),
    (lambda: optim.exponential_decay(float("nan"), 2, 0.5), "exponential_decay: init_value must "
     "be a finite number"),
    (lambda: optim.piecewise_constant(0.1, [(3, 0.5)]), "piecewise_constant: "
     "boundaries_and_scales must be a dict"),
    (lambda: gc.amp.LossScaler(growth_interval=1.5), "LossScaler: growth_interval must be a "
     "whole number >= 1, got 1.5"),
    (lambda: gc.amp.LossScaler(init_scale="x"), "LossScaler: init_scale must be a number"),
    (lambda: optim.SGD(lr=0.1).bind([]), r"bind: no parameters to optimise"),
])
def test_schedule_and_scaler_arguments_are_checked_in_one_line(make, message):
    with pytest.raises(gc.GraphcError, match=message):
        make()


def test_a_number_tangent_for_an_array_primal_is_refused_as_jax_does():
    # it was broadcast to the primal's shape
    with pytest.raises(gc.GraphcError, match=r"jvp: tangent 0 is the number 1.0 but its "
                       r"primal is float64\[3\]"):
        gc.jvp(lambda x: x * 2, (np.ones(3),), (1.0,))
    y, t = gc.jvp(lambda x: x * 2, (np.array(2.0),), (1.0,))  # a 0-d primal takes one
    assert (float(y), float(t)) == (4.0, 2.0)


# ---- the review of this session's own changes ----------------------------------------------
def test_bfloat16_class_weights_work_in_functions_and_modules():
    import ml_dtypes
    bf16 = ml_dtypes.bfloat16
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(bf16)
    t, w = np.array([0, 1, 2, 1]), np.array([1.0, 2.0, 3.0]).astype(bf16)
    expected = float(np.asarray(gc.cross_entropy(x.astype(np.float32), t,
                                                 weight=w.astype(np.float32))))
    for got in (gc.cross_entropy(x, t, weight=w), nn.CrossEntropyLoss(weight=w)(x, t)):
        assert np.asarray(got).dtype == bf16
        assert float(np.asarray(got)) == pytest.approx(expected, rel=1e-2)
    assert np.isfinite(float(np.asarray(nn.BCEWithLogitsLoss(pos_weight=w)(
        x, np.ones((4, 3), bf16)))))


def test_a_float32_class_weight_stays_float32_under_autocast_as_torchs():
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(64, 8)).astype(np.float32), rng.normal(size=(8, 5)).astype(
        np.float32)
    y, w = rng.integers(0, 5, size=64), np.array([1.0, 1.01, 3.3, 0.123, 7.77], np.float32)
    with gc.autocast("bfloat16"):
        logits = gc.matmul(gc.tensor(x), gc.tensor(W))
        ours = float(np.asarray(gc.cross_entropy(logits, y, weight=w)))
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(np.asarray(logits).astype(np.float32)), torch.from_numpy(y),
        weight=torch.from_numpy(w))
    assert ours == pytest.approx(float(expected), rel=1e-6)  # bf16 weights: 1.3e-4 away


def test_a_loss_weight_first_none_then_set_is_read_by_the_compiled_plan():
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    loss = nn.CrossEntropyLoss()
    compiled = gc.compile(lambda a, b: loss(a, b))
    compiled(x, t)
    loss.weight = np.array([1.0, 2.0, 3.0])
    assert "weight" in loss.state_dict()
    assert float(np.asarray(compiled(x, t))) == pytest.approx(
        float(np.asarray(loss(x, t))), rel=1e-12)
    assert float(np.asarray(loss(x, t))) != pytest.approx(float(np.asarray(
        nn.CrossEntropyLoss()(x, t))))


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_shared_index_in_a_loop_body_of_a_taken_branch_is_still_refused(mode):
    # compiled clamped it for every example ([-1, 4]) where each example alone is refused
    table = np.array([1.0, 2.0, 3.0, 4.0])

    def f(on, k):
        def branch(ops):
            j, start = ops
            return gc.scan(lambda c, x: (c + gc.take(table, j + x), None), start,
                           np.zeros(1, np.int64))[0]
        return gc.cond(on, branch, lambda ops: ops[1] - 1.0,
                       (k, gc.cast(on, "float64") * 0.0))
    g = gc.vmap(f, in_axes=(0, None))
    g = g if mode == "eager" else gc.compile(g)
    with pytest.raises(gc.GraphcError, match="out of (range|bounds)"):
        np.asarray(g(np.array([False, True]), np.array(7)))
    np.testing.assert_array_equal(np.asarray(g(np.array([False, True]), np.array(2))),
                                  [-1.0, 3.0])


def test_the_trainer_gives_a_users_own_optimiser_zeros_and_a_parameterless_loss_runs():
    batches = [(np.ones((4, 3), np.float32),)]

    class MySGD:  # the Trainer takes any object with init() and update()
        lr = 0.1

        def init(self, params):
            return {}

        def update(self, grads, state, params):
            return {k: params[k] - 0.1 * grads[k] for k in params}, state
    params = {"w": np.ones(3, np.float32), "u": np.ones(3, np.float32)}
    trainer = gc.Trainer(lambda p, b: gc.mean((b[0] * p["w"]) ** 2), params, MySGD(),
                         batches, steps=1)
    trainer.train_step()
    np.testing.assert_allclose(trainer.params["w"], 1 - 0.1 * 2 / 3, rtol=1e-6)
    np.testing.assert_array_equal(trainer.params["u"], 1.0)
    trainer = gc.Trainer(lambda p, b: gc.mean(b[0] ** 2), params, optim.SGD(lr=0.1),
                         batches, steps=1, clip_norm=1.0)
    trainer.train_step()
    assert float(trainer.grad_norm) == 0.0


def test_optimiser_settings_take_0d_arrays_and_a_subclass_keeps_its_own_settings():
    opt = optim.AdamW()
    opt.weight_decay = np.array(0.1)
    assert opt.weight_decay == 0.1
    opt.weight_decay = gc.tensor(np.array(0.2))
    assert opt.weight_decay == 0.2

    class Mine(optim.Optimizer):
        hyperparameters = ("weight_decay", "momentum", "eps")

        def __init__(self):
            super().__init__(0.1)
            self.momentum, self.eps = -0.5, None  # its own meanings: not graphc's rules
    mine = Mine()
    assert (mine.momentum, mine.eps) == (-0.5, None)


def test_argnums_take_any_iterable_of_ints_and_fori_loop_an_eager_tensor_bound():
    f = lambda a, b: gc.sum(a * b)  # noqa: E731
    for argnums in (np.array([0, 1]), {0, 1}, [0, 1]):
        ga, gb = gc.grad(f, argnums)(np.ones(2), np.full(2, 3.0))
        np.testing.assert_array_equal(ga, [3.0, 3.0])
        np.testing.assert_array_equal(gb, [1.0, 1.0])
    total = gc.fori_loop(gc.tensor(np.array(1)), gc.tensor(np.array(4)),
                         lambda i, c: c + i, np.zeros(2))
    np.testing.assert_array_equal(np.asarray(total), [6.0, 6.0])


def test_the_cli_writes_every_warning_in_one_line():
    from graphc import cli
    from runtime.jit import KernelCacheWarning
    form = cli._format_warning
    assert form("graphc: the cache ...", KernelCacheWarning, "bin/graphc", 8,
                "sys.exit(main())") == "graphc: warning: the cache ...\n"
    assert form("graphc: sharing is off", RuntimeWarning, "bin/graphc", 8, "x") == \
        "graphc: warning: sharing is off\n"
    assert form("overflow in exp", RuntimeWarning, "plan.py", 3, "x") == \
        "graphc: warning: RuntimeWarning: overflow in exp\n"


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_segment_sum_takes_int32_ids_compiled_and_refuses_a_negative_one(mode):
    # compiled, the marker for a bad id was np.int64(2**62), which no int32 holds
    data = np.array([[1.0, 2.0], [1.0, 1.0], [4.0, 6.0]])
    run = (lambda f: f) if mode == "eager" else gc.compile
    f = run(lambda d, i: gc.segment_sum(d, i, 2))
    np.testing.assert_array_equal(np.asarray(f(data, np.array([0, 0, 1], np.int32))),
                                  [[2.0, 3.0], [4.0, 6.0]])
    with pytest.raises(gc.GraphcError, match="index -1 is out of bounds|id -1 is outside"):
        np.asarray(f(data, np.array([0, -1, 1], np.int32)))


@pytest.mark.parametrize("name", ["elu", "celu", "selu", "expm1"])
def test_the_gradients_built_on_expm1_are_exact_far_below_zero(name):
    # exp(x) was taken as expm1(x) + 1, which keeps a few digits, then none, below -30
    x = np.array([-30.0, -37.0, -40.0, -100.0, -700.0])
    fn = getattr(gc, name)
    got = gc.grad(lambda a: gc.sum(fn(a)))(x)
    reference = {"elu": torch.nn.functional.elu, "celu": torch.nn.functional.celu,
                 "selu": torch.nn.functional.selu, "expm1": torch.exp}[name]
    xt = torch.tensor(x, requires_grad=True)
    (reference(xt).sum()).backward()  # torch's expm1 backward rounds too: exp's is exact
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-13)
    assert np.all(got > 0)


# ---- the second review of this session's changes -------------------------------------------
def test_building_a_module_with_buffers_does_not_make_compiled_plans_stale():
    # every new buffer bumped the counter that plans reading a Parameter guard
    model = nn.Linear(3, 2, rng=np.random.default_rng(0))
    step = gc.compile(lambda x: model(x))
    x = np.ones((4, 3), np.float32)
    step(x)
    nn.BatchNorm1d(4)
    nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0]))
    step(x)
    assert step.recompiles == []


def test_a_loss_weight_set_to_none_and_back_stays_a_buffer_read_by_the_plan():
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    loss = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0]))
    compiled = gc.compile(lambda a, b: loss(a, b))
    for weight in (None, np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.5]), None):
        loss.weight = weight
        assert ("weight" in loss.state_dict()) == (weight is not None)
        assert float(np.asarray(compiled(x, t))) == pytest.approx(
            float(np.asarray(loss(x, t))), rel=1e-12)


def test_an_empty_loss_weight_filled_inside_a_trace_and_another_loss_s_weight_copied():
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    w = np.array([1.0, 2.0, 3.0])
    expected = float(np.asarray(gc.cross_entropy(x, t, weight=w)))
    loss = nn.CrossEntropyLoss()

    def inside(a, b):  # raised AttributeError: 'NoneType' object has no attribute 'data'
        loss.weight = w
        return loss(a, b)
    assert float(np.asarray(gc.compile(inside)(x, t))) == pytest.approx(expected)
    a = nn.CrossEntropyLoss(weight=w)
    b = nn.CrossEntropyLoss(weight=a.weight)  # b's own buffer, as torch's assignment
    a.weight = np.array([9.0, 9.0, 9.0])
    np.testing.assert_array_equal(b.weight.data, w)


def test_a_loss_called_many_times_in_one_trace_leaves_one_none_guard():
    loss = nn.CrossEntropyLoss()
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    f = gc.compile(lambda a, b: sum(loss(a, b) for _ in range(50)))
    f(x, t)
    [(guards, _)] = next(iter(f._plans.values()))  # (guards, plan) of the one plan
    assert sum(type(o).__name__ == "_IsNone" for o, _, _ in guards) == 1


def test_a_traced_float_tangent_for_a_python_int_primal_is_refused():
    # compiled or vmapped, the tangent's value is unknown: 0 came back where 6 is right
    square = lambda x: x * x  # noqa: E731
    with pytest.raises(gc.GraphcError, match="primal 0 is 3, an integer with no tangent"):
        gc.compile(lambda t: gc.jvp(square, (3,), (t,))[1])(np.array(1.0))
    with pytest.raises(gc.GraphcError, match="primal 0 is 3, an integer with no tangent"):
        gc.vmap(lambda t: gc.jvp(square, (3,), (t,))[1])(np.ones(3))


def test_layers_take_a_random_state_and_argnums_a_0d_array():
    layer = nn.Linear(3, 2, rng=np.random.RandomState(0))
    assert layer.weight.shape == (3, 2)
    f = lambda a, b: gc.sum(a * b)  # noqa: E731
    g = gc.grad(f, np.array(1))(np.ones(2), np.full(2, 3.0))
    np.testing.assert_array_equal(g, [1.0, 1.0])  # alone, as for argnums=1
    with pytest.raises(gc.GraphcError, match="argnums must be an int or a tuple of ints"):
        gc.grad(f, (n for n in (0, 1)))
    with pytest.raises(gc.GraphcError, match="Adam: amsgrad must be True or False"):
        optim.Adam().amsgrad = "yes"
