"""gc.optim's Adamax, NAdam and Lion and the schedules warmup_cosine_decay, one_cycle,
piecewise_constant, multistep, polynomial_decay, linear_schedule, linear_lr,
cosine_decay_schedule, cosine_warm_restarts and join_schedules against torch.optim and
torch.optim.lr_scheduler (the oracle; Lion, which torch lacks, against optax.lion's update
written out in numpy), functional, compiled, bound (PyTorch style) and in gc.Trainer."""
import collections
import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

import graphc as gc
from graphc import optim
from test_optim import _problem as _problem_of, _torch_run  # the same problem and torch loop

SHAPES = {"w": (4, 3), "b": (3,), "e": (5, 2)}
STEPS = 25
TOLERANCE = {"float32": 2e-6, "float64": 1e-12}

CASES = {
    "Adamax": (lambda: optim.Adamax(lr=1e-2),
               lambda ps: torch.optim.Adamax(ps, lr=1e-2)),
    "Adamax-decay-betas": (lambda: optim.Adamax(lr=3e-2, betas=(0.8, 0.99), eps=1e-6,
                                                weight_decay=0.1),
                           lambda ps: torch.optim.Adamax(ps, lr=3e-2, betas=(0.8, 0.99),
                                                         eps=1e-6, weight_decay=0.1)),
    "NAdam": (lambda: optim.NAdam(lr=1e-2),
              lambda ps: torch.optim.NAdam(ps, lr=1e-2)),
    "NAdam-maximize": (lambda: optim.NAdam(lr=1e-2, weight_decay=0.1, maximize=True),
                       lambda ps: torch.optim.NAdam(ps, lr=1e-2, weight_decay=0.1,
                                                    maximize=True)),
    "Adamax-maximize": (lambda: optim.Adamax(lr=1e-2, maximize=True),
                        lambda ps: torch.optim.Adamax(ps, lr=1e-2, maximize=True)),
    "NAdam-coupled-decay": (lambda: optim.NAdam(lr=1e-2, weight_decay=0.1, momentum_decay=0.02),
                            lambda ps: torch.optim.NAdam(ps, lr=1e-2, weight_decay=0.1,
                                                         momentum_decay=0.02)),
    "NAdam-decoupled-decay": (
        lambda: optim.NAdam(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1,
                            decoupled_weight_decay=True),
        lambda ps: torch.optim.NAdam(ps, lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1,
                                     decoupled_weight_decay=True)),
}


@pytest.fixture
def torch_float64_default():
    # torch keeps NAdam's mu_product (and every optimiser's step) in its default dtype:
    # float64 parameters are compared with torch's float64 scalars, as graphc keeps them
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _problem(dtype, seed=0, steps=STEPS):
    return _problem_of(dtype, seed, steps)


def _max_error(a, b):
    return max(float(np.abs(np.asarray(a[k], np.float64) - b[k]).max()) for k in b)


def _lion_reference(params, grads, lr, b1, b2, weight_decay):
    """optax.lion, transform by transform: scale_by_lion (sign of the interpolation, then the
    moment update), add_decayed_weights, scale_by_learning_rate, apply_updates."""
    params = {k: v.copy() for k, v in params.items()}
    mu = {k: np.zeros_like(v) for k, v in params.items()}
    for g in grads:
        for k in params:
            update = np.sign((1.0 - b1) * g[k] + b1 * mu[k])
            mu[k] = (1.0 - b2) * g[k] + b2 * mu[k]
            update = update + weight_decay * params[k]
            params[k] = params[k] + (-lr) * update
    return params


def _run(opt, params, grads, compiled):
    state, got = opt.init(params), {k: v.copy() for k, v in params.items()}
    step = gc.compile(lambda p, s, g: opt.update(g, s, p), donate_argnums=(0, 1)) \
        if compiled else (lambda p, s, g: opt.update(g, s, p))
    for g in grads:
        got, state = step(got, state, g)
    return got, state


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_functional(case, dtype, compiled, torch_float64_default):
    mine, theirs = CASES[case]
    params, grads = _problem(dtype)
    expected = _torch_run(theirs, params, grads)
    assert _max_error(params, expected) > 1e-2  # the parameters moved
    got, state = _run(mine(), params, grads, compiled)
    assert int(state["count"]) == STEPS
    assert all(np.asarray(v).dtype == dtype for v in got.values())
    assert _max_error(got, expected) <= TOLERANCE[dtype]


def test_nadam_float64_parameters_match_torchs_default_float32_scalars():
    """float64 parameters under torch's usual set-up (default dtype float32: its
    mu_product is float32) agree with graphc's float64 mu_product to float32 precision."""
    mine, theirs = CASES["NAdam-decoupled-decay"]
    params, grads = _problem("float64")
    got, _ = _run(mine(), params, grads, compiled=False)
    assert _max_error(got, _torch_run(theirs, params, grads)) <= 2e-6


NADAM_FLOAT32 = {  # the last: mu_t near 1, so 1 - mu_product keeps few of its digits
    "defaults": dict(lr=1e-2),
    "decoupled": dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1,
                      decoupled_weight_decay=True),
    "mu-near-1": dict(lr=1e-2, betas=(0.9999, 0.999), momentum_decay=100.0),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("case", sorted(NADAM_FLOAT32))
def test_nadam_float32_keeps_torchs_float32_mu_product(case, compiled):
    """torch's default (float32) set-up, 50 steps: graphc's float32 mu_product is torch's to
    the bit and the parameters are within 8 ulp of torch's (the rest: torch's lerp and
    addcdiv associate differently, and its vector kernels differ from host to host: 2 ulp
    on one, 3 on another). A float64 mu_product was 74 ulp off with mu near 1."""
    assert torch.get_default_dtype() == torch.float32
    kw = NADAM_FLOAT32[case]
    params, grads = _problem("float32", steps=50)
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = torch.optim.NAdam(list(tp.values()), **kw)
    for g in grads:
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    got, state = _run(optim.NAdam(**kw), params, grads, compiled)
    for k, t in tp.items():
        mu_product = np.asarray(state["mu_product"][k])
        assert mu_product.dtype == np.float32 and mu_product.shape == ()
        assert mu_product == topt.state[t]["mu_product"].numpy()
        expected = t.detach().numpy()
        assert np.abs(expected - params[k]).max() > 1e-2  # the parameters moved
        ulps = np.abs(np.asarray(got[k]) - expected) / np.spacing(np.abs(expected))
        assert ulps.max() <= 8, (k, ulps.max())


def test_nadam_keeps_torchs_mu_product(torch_float64_default):
    params, grads = _problem("float64", steps=5)
    tp = [torch.tensor(params["w"], requires_grad=True)]
    topt = torch.optim.NAdam(tp, momentum_decay=0.01)
    for g in grads:
        tp[0].grad = torch.tensor(g["w"])
        topt.step()
    _, state = _run(optim.NAdam(momentum_decay=0.01), params, grads, compiled=True)
    assert state["mu_product"]["w"].shape == () and state["mu_product"]["w"].dtype == np.float64
    assert float(state["mu_product"]["w"]) == pytest.approx(
        float(topt.state[tp[0]]["mu_product"]), rel=1e-15)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_lion_is_optax_lion(weight_decay, compiled):
    params, grads = _problem("float64")
    expected = _lion_reference(params, grads, 3e-3, 0.9, 0.99, weight_decay)
    got, _ = _run(optim.Lion(lr=3e-3, weight_decay=weight_decay), params, grads, compiled)
    assert _max_error(params, expected) > 1e-2
    assert _max_error(got, expected) <= 1e-15
    # the defaults are optax's: b1 0.9, b2 0.99, weight decay 1e-3 on every parameter
    lion = optim.Lion(lr=1e-4)
    assert (lion.beta1, lion.beta2, lion.weight_decay) == (0.9, 0.99, 1e-3)
    masked, _ = _run(optim.Lion(lr=3e-3, betas=(0.5, 0.9), weight_decay=weight_decay,
                                decay_mask=optim.decay_matrices_only), params, grads, False)
    ref_b = _lion_reference({"b": params["b"]}, [{"b": g["b"]} for g in grads], 3e-3, 0.5,
                            0.9, 0.0)["b"]
    np.testing.assert_allclose(masked["b"], ref_b, rtol=0, atol=1e-15)


def test_lions_own_settings_are_keyword_only_as_the_other_optimisers():
    """Session 53 (f7 item 2): Lion took decay_mask and clip_norm fourth and fifth by
    position, where every other optimiser has graphc's own settings keyword-only; a fourth
    positional argument is now refused as the others refuse one past their positions, and
    by name they are what they were."""
    import inspect
    for name in ("decay_mask", "clip_norm"):
        assert inspect.signature(optim.Lion).parameters[name].kind is \
            inspect.Parameter.KEYWORD_ONLY == inspect.signature(optim.Adam).parameters[
                name].kind
    with pytest.raises(gc.GraphcError, match=r"^Lion: takes at most 3 arguments by position "
                       r"\(lr, betas, weight_decay\), got 4; give the others by name: "
                       r"decay_mask=, clip_norm="):
        optim.Lion(3e-3, (0.9, 0.99), 0.3, optim.decay_matrices_only)
    opt = optim.Lion(3e-3, (0.5, 0.9), 0.3, decay_mask=optim.decay_matrices_only,
                     clip_norm=2.0)
    assert (opt.lr(0), opt.betas, opt.weight_decay, opt.decay_mask, opt.clip_norm) == (
        3e-3, (0.5, 0.9), 0.3, optim.decay_matrices_only, 2.0)


@pytest.mark.parametrize("case", ["Adamax-decay-betas", "NAdam-decoupled-decay", "Lion"])
def test_bound_optimizer_matches_torch(case, torch_float64_default):
    params, grads = _problem("float64")
    if case == "Lion":
        mine = lambda: optim.Lion(lr=3e-3, weight_decay=0.3)  # noqa: E731
        expected = _lion_reference(params, grads, 3e-3, 0.9, 0.99, 0.3)
    else:
        mine, theirs = CASES[case]
        expected = _torch_run(theirs, params, grads)
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}
    opt = mine().bind(ps)
    for i, g in enumerate(grads):
        for k, p in ps.items():
            p.grad = g[k]
        opt.step()
        opt.zero_grad()
        if i == 10:  # the state round-trips through state_dict (NAdam's 0-d mu_product)
            saved = opt.state_dict()
            opt = mine().bind(ps)
            opt.load_state_dict(saved)
    assert _max_error({k: p.data for k, p in ps.items()}, expected) <= 1e-12


def test_bound_nadam_parameter_thawed_late_keeps_its_own_mu_product(torch_float64_default):
    """A parameter without a gradient at first: torch's mu_product (and step) for it start at
    its first update, graphc's per-parameter slot as well."""
    params, grads = _problem("float64", steps=8)
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = torch.optim.NAdam(list(tp.values()), lr=1e-2)
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}
    opt = optim.NAdam(lr=1e-2).bind(ps)
    for i, g in enumerate(grads):
        for k in ps:
            late = k == "b" and i < 3
            tp[k].grad = None if late else torch.tensor(g[k])
            ps[k].grad = None if late else g[k]
        topt.step()
        opt.step()
    assert _max_error({k: p.data for k, p in ps.items()},
                      {k: t.detach().numpy() for k, t in tp.items()}) <= 1e-12


@pytest.mark.parametrize("make", [lambda: optim.Adamax(lr=0.05, weight_decay=0.01),
                                  lambda: optim.NAdam(lr=0.05, decoupled_weight_decay=True,
                                                      weight_decay=0.1),
                                  lambda: optim.Lion(lr=0.01)],
                         ids=["Adamax", "NAdam", "Lion"])
def test_trainer_checkpoints_and_resumes_bit_for_bit(make, tmp_path):
    straight, first, resumed = _straight_and_resumed(make, tmp_path, steps=6, cut=3)
    keys = set(first.state_arrays())
    slots = {"Adamax": {"adam_m", "opt_exp_inf"}, "NAdam": {"adam_m", "adam_v",
                                                            "opt_mu_product"},
             "Lion": {"adam_m"}}[type(first.optimizer).__name__]
    assert keys == {f"{s}/{n}" for s in slots | {"param"} for n in ("w", "b")}
    assert straight.history[-1][1] < straight.history[0][1]  # it trains
    for name, value in straight.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[name], value, err_msg=name)


def _straight_and_resumed(make, tmp_path, steps, cut):
    """A least-squares gc.Trainer run with the optimiser make() gives, `steps` steps
    straight, and the same run stopped after `cut` steps, saved and resumed to the end:
    (straight, stopped, resumed)."""
    rng = np.random.default_rng(1)
    X, W = rng.normal(size=(32, 3)), rng.normal(size=(3, 2))
    Y = X @ W

    def trainer(steps):
        params = {"w": np.zeros((3, 2)), "b": np.zeros(2)}

        def loss(p, batch):
            return gc.mean((gc.matmul(batch[0], p["w"]) + p["b"] - batch[1]) ** 2)

        def batches(r):
            rows = r.integers(0, 32, 8)
            return X[rows], Y[rows]
        return gc.Trainer(loss, params, make(), batches, steps=steps, eval_every=3)

    straight = trainer(steps)
    straight.fit(None, progress=False)
    first = trainer(cut)
    first.fit(None, progress=False)
    first.save(str(tmp_path / "c.npz"))
    resumed = trainer(steps)
    resumed.resume(str(tmp_path / "c.npz"))
    resumed.fit(None, progress=False)
    return straight, first, resumed


def test_bad_settings_are_one_line_errors():
    for make, message in ((lambda: optim.Adamax(betas=(1.0, 0.9)), "Adamax: beta1 must be"),
                          (lambda: optim.NAdam(betas=(0.9, -1)), "NAdam: beta2 must be"),
                          (lambda: optim.Lion(betas=(0.9, 1.5)), "Lion: beta2 must be"),
                          (lambda: optim.NAdam(momentum_decay=-1), "momentum_decay must be"),
                          (lambda: optim.Adamax(eps=-1), "eps must be"),
                          (lambda: optim.Lion(weight_decay=-0.1), "weight_decay must be")):
        with pytest.raises(gc.GraphcError, match=message):
            make()


# ---- schedules --------------------------------------------------------------------------
def _torch_lrs(make_scheduler, steps, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    scheduler = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(out)


def _check_schedule(schedule, expected, rtol=1e-12, atol=0.0):
    counts = np.arange(len(expected), dtype=np.int64)
    python = [schedule(int(c)) for c in counts]
    assert all(type(v) is float for v in python)  # what a training loop logs
    traced = gc.compile(lambda c: schedule(c))(counts)
    eager = schedule(gc.tensor(counts)).data
    assert traced.dtype == eager.dtype == np.float64
    for got in (np.array(python), traced, eager):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_is_torchs_one_cycle_lr(three_phase, strategy):
    expected = _torch_lrs(lambda o: lr_scheduler.OneCycleLR(
        o, max_lr=0.5, total_steps=40, pct_start=0.25, div_factor=10, final_div_factor=100,
        three_phase=three_phase, anneal_strategy=strategy), 40)
    schedule = optim.one_cycle(0.5, 40, pct_start=0.25, div_factor=10, final_div_factor=100,
                               three_phase=three_phase, anneal_strategy=strategy)
    _check_schedule(schedule, expected)
    assert schedule(39) == schedule(100) == pytest.approx(0.5 / 10 / 100)  # then stays
    default = _torch_lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=25), 25)
    _check_schedule(optim.one_cycle(1.0, 25), default)


def test_multistep_is_torchs_multistep_lr_and_piecewise_constant_optaxs():
    expected = _torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, [3, 7, 7, 12], gamma=0.5), 20)
    _check_schedule(optim.multistep(0.1, [3, 7, 7, 12], gamma=0.5), expected)
    schedule = optim.piecewise_constant(2.0, {10: 0.1, 4: 0.5})
    _check_schedule(schedule, [2.0] * 4 + [1.0] * 6 + [0.1] * 4)


def test_multistep_refuses_only_an_lr_past_float64_not_the_power_of_gamma():
    # init * gamma ** 2 overflowed in the power, where each lr the schedule reaches is finite
    for init in (0.0, 1e-300):
        expected = _torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, [2, 4], gamma=1e300), 6,
                              lr=init)
        assert np.isfinite(expected).all() and expected[-1] == init * 1e300 * 1e300
        _check_schedule(optim.multistep(init, [2, 4], gamma=1e300), expected)
    # one whose last lr is past float64's range is still refused, naming that milestone
    with pytest.raises(gc.GraphcError, match=r"^multistep: gamma=1e\+300 takes the learning "
                       r"rate past float64's range at milestone 4 \(1e-10 \* 1e\+300 \*\* 2\)"):
        optim.multistep(1e-10, [2, 4], gamma=1e300)


def test_review_r10_a_power_of_gamma_past_float64_at_an_lr_in_range_is_named_as_the_power():
    # review r10 of aff0016: at a milestone given twice gamma ** 2 overflows (torch's
    # MultiStepLR raises OverflowError there), but the lr it would give, 0.0 or 1e-300 *
    # 1e300 ** 2 = 1e300, is in range: the line said the lr went past float64's range
    for init, at in ((0.0, 2), (1e-300, 1)):
        with pytest.raises(gc.GraphcError) as info:
            optim.multistep(init, [at, at], gamma=1e300)
        assert str(info.value).splitlines()[0] == (
            f"multistep: gamma=1e+300 at milestone {at}, given 2 times, is gamma ** 2, past "
            "float64's range (torch's MultiStepLR raises OverflowError there)")
    # an lr truly past it keeps its line
    with pytest.raises(gc.GraphcError, match=r"^multistep: gamma=1e\+300 takes the learning "
                       r"rate past float64's range at milestone 1 \(1e-300 \* 1e\+300 \*\* 3\)"):
        optim.multistep(1e-300, [1, 1, 1], gamma=1e300)


def test_polynomial_decay_is_torchs_polynomial_lr_and_optaxs_schedule():
    expected = _torch_lrs(lambda o: lr_scheduler.PolynomialLR(o, total_iters=15, power=2.0), 25)
    _check_schedule(optim.polynomial_decay(0.1, 0.0, 2.0, 15), expected, atol=1e-17)
    # optax's end_value and transition_begin
    schedule = optim.polynomial_decay(1.0, 0.2, 0.5, 8, transition_begin=2)
    _check_schedule(schedule, [1.0, 1.0, 1.0] + [0.8 * math.sqrt(1 - k / 8) + 0.2
                                                 for k in range(1, 9)] + [0.2] * 3)


def test_warmup_cosine_decay_is_optaxs_and_torchs_linear_then_cosine():
    # torch: LinearLR then CosineAnnealingLR (SequentialLR), to the end of the decay (torch's
    # cosine then rises again; optax's, graphc's, stay at end_value)
    expected = _torch_lrs(lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
        lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01)], milestones=[5]), 26)
    schedule = optim.warmup_cosine_decay(0.01, 0.1, 5, 25, end_value=0.01)
    _check_schedule(schedule, expected)
    assert schedule(25) == schedule(1000) == pytest.approx(0.01)
    # optax's formula with an exponent: peak * ((1 - a) c^e + a)
    schedule = optim.warmup_cosine_decay(0.0, 1.0, 4, 14, end_value=0.1, exponent=2.0)
    cos = [(1 + math.cos(math.pi * k / 10)) / 2 for k in range(11)]
    _check_schedule(schedule, [0.0, 0.25, 0.5, 0.75] + [0.9 * c ** 2 + 0.1 for c in cos])


def test_linear_schedule_is_optaxs_and_linear_lr_torchs_linear_lr():
    _check_schedule(optim.linear_lr(0.1), _torch_lrs(lambda o: lr_scheduler.LinearLR(o), 60))
    expected = _torch_lrs(lambda o: lr_scheduler.LinearLR(o, start_factor=0.05, end_factor=0.5,
                                                            total_iters=40), 60)
    _check_schedule(optim.linear_lr(0.1, 0.05, 0.5, 40), expected)
    expected = _torch_lrs(lambda o: lr_scheduler.LinearLR(o, 1.0, 0.0, total_iters=50), 60)
    _check_schedule(optim.linear_lr(0.1, 1.0, 0.0, 50), expected, atol=1e-17)  # (down to 0)
    # optax's: init_value until transition_begin, then linearly, then end_value
    schedule = optim.linear_schedule(1.0, 0.2, 8, transition_begin=2)
    _check_schedule(schedule, [1.0, 1.0, 1.0] + [1.0 - 0.1 * k for k in range(1, 9)] + [0.2] * 3)


def test_cosine_decay_schedule_is_optaxs_and_torchs_cosine_annealing_lr():
    # torch's CosineAnnealingLR up to T_max (after it, torch's rises again; optax's holds)
    expected = _torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=60, eta_min=0.01),
                          61)
    schedule = optim.cosine_decay_schedule(0.1, 60, alpha=0.1)
    _check_schedule(schedule, expected)
    assert schedule(60) == schedule(1000) == pytest.approx(0.01)
    # optax's formula with an exponent: init * ((1 - alpha) c^e + alpha)
    schedule = optim.cosine_decay_schedule(2.0, 10, alpha=0.25, exponent=3.0)
    cos = [(1 + math.cos(math.pi * k / 10)) / 2 for k in range(11)]
    _check_schedule(schedule, [2.0 * (0.75 * c ** 3 + 0.25) for c in cos] + [0.5] * 2)


@pytest.mark.parametrize("T_0, T_mult", [(7, 1), (3, 2), (2, 3), (1, 2)])
def test_cosine_warm_restarts_is_torchs_cosine_annealing_warm_restarts(T_0, T_mult):
    expected = _torch_lrs(lambda o: lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=T_0, T_mult=T_mult, eta_min=0.001), 100)
    schedule = optim.cosine_warm_restarts(0.1, T_0, T_mult, eta_min=0.001)
    _check_schedule(schedule, expected)
    # far on, where a count array finds its cycle from a logarithm: each restart and the
    # steps around it as an int step finds them, restart by restart
    starts = [T_0 * (T_mult ** i - 1) // max(T_mult - 1, 1) if T_mult > 1 else T_0 * 10 ** i
              for i in range(40)]
    counts = np.array(sorted({max(s + d, 0) for s in starts if s < 2 ** 44 for d in (-1, 0, 1)}),
                      np.int64)
    np.testing.assert_array_equal(gc.compile(lambda c: schedule(c))(counts),
                                  [schedule(int(c)) for c in counts])


def test_cosine_warm_restarts_moves_a_logarithm_rounded_up_back_to_its_cycle():
    # T_0 1, T_mult 2: cycle i starts at 2^i - 1, so 2^48 - 2 is the last step of cycle 47
    # (T_cur = 2^47 - 1 of 2^47: eta_min), but log2(2^48 - 1) rounds to 48, which the
    # downward correction moves back (without it: T_cur 0 of cycle 48, base_lr)
    schedule = optim.cosine_warm_restarts(0.1, 1, 2, eta_min=1e-3)
    count = 2 ** 48 - 2
    assert schedule(count) == pytest.approx(1e-3, rel=1e-12)  # the int path, restart by restart
    for counts in (np.array([count], np.int64), np.array([count], np.float64)):
        np.testing.assert_array_equal(gc.compile(lambda c: schedule(c))(counts),
                                      [schedule(count)])


def test_join_schedules_is_optaxs_and_torchs_sequential_lr():
    """torch's SequentialLR(milestones) is join_schedules(boundaries) step for step: the
    scheduler after a milestone starts from its own step 0 there, as optax's."""
    expected = _torch_lrs(lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=10),
        lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
        lr_scheduler.ExponentialLR(o, gamma=0.9)], milestones=[10, 40]), 80)
    schedule = optim.join_schedules([optim.linear_lr(0.1, start_factor=0.2, total_iters=10),
                                     optim.cosine_warm_restarts(0.1, 3, 2, eta_min=0.01),
                                     optim.exponential_decay(0.1, 1, 0.9)], [10, 40])
    _check_schedule(schedule, expected)
    # a number is a constant schedule (torch's ConstantLR here)
    expected = _torch_lrs(lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.ConstantLR(o, factor=0.5, total_iters=5),
        lr_scheduler.MultiStepLR(o, [4, 9], gamma=0.5)], milestones=[5]), 60)
    _check_schedule(optim.join_schedules([0.05, optim.multistep(0.1, [4, 9], 0.5)], [5]),
                    expected)
    # optax's: each later schedule at the step less its boundary (between equal boundaries
    # a schedule never runs)
    schedule = optim.join_schedules([optim.linear_schedule(0.0, 1.0, 4), 1.0,
                                     optim.linear_schedule(1.0, 0.0, 2)], [4, 4])
    _check_schedule(schedule, [0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0, 0.0])
    for bounds in ((4, 4), np.array([4, 4])):  # any sequence of steps in order
        _check_schedule(optim.join_schedules([optim.linear_schedule(0.0, 1.0, 4), 1.0,
                                              optim.linear_schedule(1.0, 0.0, 2)], bounds),
                        [0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0, 0.0])


def test_trainer_resumes_a_joined_schedule(tmp_path):
    """A run stopped inside the second schedule of a join and resumed ends where the
    uninterrupted one does: the schedule is a function of the step the checkpoint keeps."""
    def make():
        return optim.SGD(lr=optim.join_schedules(
            [optim.linear_lr(0.05, total_iters=3), optim.cosine_warm_restarts(0.05, 2, 2)], [3]),
            momentum=0.9)
    straight, _, resumed = _straight_and_resumed(make, tmp_path, steps=12, cut=5)
    assert straight.history[-1][1] < straight.history[0][1]  # it trains
    for name, value in straight.state_arrays().items():
        np.testing.assert_array_equal(resumed.state_arrays()[name], value, err_msg=name)


def test_lambda_lr_is_a_function_of_the_step():
    """torch's LambdaLR(lr_lambda) needs no class: lambda step: base_lr * lr_lambda(step) is
    a schedule (written with a cast where it gets an int64 count array)."""
    def lr_lambda(epoch):
        return min(1.0, (epoch + 1) / 10) * 0.97 ** epoch

    expected = _torch_lrs(lambda o: lr_scheduler.LambdaLR(o, lr_lambda), 60)
    got = [0.1 * lr_lambda(step) for step in range(60)]
    np.testing.assert_array_equal(got, expected)  # term for term torch's product
    ps = [gc.nn.Parameter(np.zeros(2))]
    opt = optim.SGD(lr=lambda step: 0.1 * lr_lambda(step)).bind(ps)
    lrs = []
    for _ in range(60):
        lrs.append(opt.get_last_lr()[0])
        ps[0].grad = np.ones(2)
        opt.step()
    np.testing.assert_array_equal(lrs, expected)

    def traced(count):  # the same, on a count array
        step = gc.cast(count, "float64")
        return 0.1 * gc.minimum((step + 1.0) / 10, 1.0) * 0.97 ** step
    counts = np.arange(60, dtype=np.int64)
    for got in (gc.compile(traced)(counts), traced(gc.tensor(counts)).data):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_schedules_drive_an_optimizer_as_torchs_scheduler():
    """lr=one_cycle(...) in a compiled Adam step equals torch's Adam stepped with OneCycleLR
    (cycle_momentum=False; with it, test_one_cycle_momentum_is_torchs_cycle_momentum)."""
    params, grads = _problem("float64", steps=30)
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = torch.optim.Adam(list(tp.values()), lr=0.1)
    scheduler = lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=30,
                                        cycle_momentum=False)
    for g in grads:
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
        scheduler.step()
    expected = {k: t.detach().numpy() for k, t in tp.items()}
    got, _ = _run(optim.Adam(lr=optim.one_cycle(0.1, 30)), params, grads, compiled=True)
    assert _max_error(got, expected) <= 1e-12
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}  # and bound, eagerly
    opt = optim.Adam(lr=optim.one_cycle(0.1, 30)).bind(ps)
    for g in grads:
        for k, p in ps.items():
            p.grad = g[k]
        opt.step()
    assert _max_error({k: p.data for k, p in ps.items()}, expected) <= 1e-12


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("which", ["SGD", "AdamW", "RMSprop"])
def test_one_cycle_momentum_is_torchs_cycle_momentum(which, three_phase):
    """torch's OneCycleLR with cycle_momentum=True (its default) sets SGD's and RMSprop's
    momentum, or AdamW's betas[0], every step: one_cycle_momentum given as that setting does
    the same, functionally compiled, eagerly bound, and in gc.Trainer's step (one plan)."""
    params, grads = _problem("float64", steps=30)
    kw = dict(total_steps=30, pct_start=0.3, three_phase=three_phase)
    theirs = {"SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
              "AdamW": lambda p: torch.optim.AdamW(p, lr=0.1),
              "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.1, momentum=0.9)}[which]

    def ours():
        lr, momentum = optim.one_cycle(0.05, 30, three_phase=three_phase), \
            optim.one_cycle_momentum(**kw, base_momentum=0.8, max_momentum=0.97)
        return {"SGD": lambda: optim.SGD(lr=lr, momentum=momentum, weight_decay=0.01),
                "AdamW": lambda: optim.AdamW(lr=lr, betas=(momentum, 0.999)),
                "RMSprop": lambda: optim.RMSprop(lr=lr, momentum=momentum)}[which]()
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = theirs(list(tp.values()))
    scheduler = lr_scheduler.OneCycleLR(topt, max_lr=0.05, base_momentum=0.8,
                                        max_momentum=0.97, **kw)
    momenta = []
    for g in grads:
        group = topt.param_groups[0]
        momenta.append(group["betas"][0] if which == "AdamW" else group["momentum"])
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
        scheduler.step()
    assert len(set(momenta)) > 5  # torch did cycle it
    schedule = optim.one_cycle_momentum(**kw, base_momentum=0.8, max_momentum=0.97)
    _check_schedule(schedule, momenta)
    expected = {k: t.detach().numpy() for k, t in tp.items()}
    got, _ = _run(ours(), params, grads, compiled=True)
    assert _max_error(got, expected) <= 1e-12
    assert _max_error(_bound_run(ours(), params, grads), expected) <= 1e-12
    trainer = _trained(ours(), params, grads)
    assert _max_error(trainer.params, expected) <= 1e-12
    assert sum(len(e) for e in trainer._train_step._plans.values()) == 1


def _bound_run(optimizer, params, grads) -> dict:
    """The parameters after optimizer.bind(...).step() on each of grads, set as .grad."""
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}
    bound = optimizer.bind(ps)
    for g in grads:
        for k, p in ps.items():
            p.grad = g[k]
        bound.step()
    return {k: p.data for k, p in ps.items()}


def _trained(optimizer, params, grads):
    """A gc.Trainer after one train_step per batch of grads: the loss sum(p * g), whose
    gradient is the batch."""
    names = sorted(params)
    trainer = gc.Trainer(lambda p, batch: sum(gc.sum(p[k] * b) for k, b in zip(names, batch)),
                         {k: v.copy() for k, v in params.items()}, optimizer,
                         [tuple(g[k] for k in names) for g in grads], steps=len(grads), seed=0)
    for _ in grads:
        trainer.train_step()
    return trainer


_MOMENTUM_OFF_CASES = {
    # OneCycleLR(base_momentum=0) cycles the momentum down to exactly 0 at its peak step
    "SGD-one-cycle-dampening": (
        lambda lr, m: optim.SGD(lr=lr, momentum=m, dampening=0.3, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3,
                                   weight_decay=0.01), "one_cycle"),
    "SGD-one-cycle-nesterov": (
        lambda lr, m: optim.SGD(lr=lr, momentum=m, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), "one_cycle"),
    "RMSprop-one-cycle": (
        lambda lr, m: optim.RMSprop(lr=lr, momentum=m, centered=True),
        lambda ps: torch.optim.RMSprop(ps, lr=0.1, momentum=0.9, centered=True), "one_cycle"),
    # a momentum warm-up from 0 (torch's loop sets param_groups' momentum each step): the
    # buffer starts at the first step whose momentum is not 0
    "SGD-warm-up": (lambda lr, m: optim.SGD(lr=lr, momentum=m),
                    lambda ps: torch.optim.SGD(ps, lr=0.1), "warm_up"),
}


@pytest.mark.parametrize("case", sorted(_MOMENTUM_OFF_CASES))
def test_a_momentum_schedule_at_0_skips_the_buffer_as_torch(case):
    """At a step whose scheduled momentum is 0, torch's SGD and RMSprop skip the momentum
    buffer (`if momentum != 0`): the step is the plain one and the buffer is kept for the
    next step; graphc replaced it by (1 - dampening) g there. Functional eager and
    compiled, bound (with a schedule of one's own too) and in gc.Trainer, against torch's
    OneCycleLR(base_momentum=0) and a momentum warm-up set step by step."""
    mine, theirs, kind = _MOMENTUM_OFF_CASES[case]
    steps = 10  # one_cycle_momentum reaches 0 at step 2 (0.3 * 10 - 1)
    params, grads = _problem("float64", steps=steps)
    if kind == "one_cycle":
        lr = optim.one_cycle(0.1, steps)
        schedule = optim.one_cycle_momentum(steps, base_momentum=0.0, max_momentum=0.9)
        python = schedule
    else:
        lr, schedule = 0.1, optim.linear_schedule(0.0, 0.9, 3)  # 0, 0.3, 0.6, then 0.9
        python = lambda s: min(0.9, 0.3 * s)  # noqa: E731 (a user's own, for .bind())
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = theirs(list(tp.values()))
    scheduler = lr_scheduler.OneCycleLR(topt, 0.1, total_steps=steps, base_momentum=0.0,
                                        max_momentum=0.9) if kind == "one_cycle" else None
    momenta = []
    for step, g in enumerate(grads):
        if not scheduler:
            topt.param_groups[0]["momentum"] = python(step)
        momenta.append(topt.param_groups[0]["momentum"])
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
        if scheduler:
            scheduler.step()
    assert 0.0 in momenta[:-1] and max(momenta) > 0.5  # a step at 0, and one after it
    _check_schedule(schedule, momenta)
    expected = {k: t.detach().numpy() for k, t in tp.items()}
    for compiled in (False, True):
        got, _ = _run(mine(lr, schedule), params, grads, compiled)
        assert _max_error(got, expected) <= 1e-12, compiled
    for momentum in (schedule, python):
        assert _max_error(_bound_run(mine(lr, momentum), params, grads), expected) <= 1e-12
    assert _max_error(_trained(mine(lr, schedule), params, grads).params, expected) <= 1e-12


def test_a_momentum_schedule_is_read_once_per_update_not_per_leaf(monkeypatch):
    """The step's momentum being 0 is decided once per update: eagerly (a concrete value)
    in Python, with no eager equal or where per leaf (938aea3 ran three ops per leaf, +60%
    per leaf); traced, one equal in the plan for all leaves. Counted with one leaf and with
    three: only the schedule's own ops, the same for both, and, traced, the two selects per
    leaf (buffer and step). The values stay torch's
    (test_a_momentum_schedule_at_0_skips_the_buffer_as_torch)."""
    import ir.ops.api as api
    params, grads = _problem("float32", steps=3)
    one = ({"w": params["w"]}, [{"w": g["w"]} for g in grads])
    schedule = optim.one_cycle_momentum(10, base_momentum=0.0)  # 0 at step 2
    calls = collections.Counter()
    for name in ("equal", "where"):
        def counted(*args, _name=name, _op=getattr(api, name), **kwargs):
            calls[_name] += 1
            return _op(*args, **kwargs)
        monkeypatch.setattr(api, name, counted)
    for mine in (lambda: optim.SGD(lr=0.1, momentum=schedule),
                 lambda: optim.RMSprop(lr=0.1, momentum=schedule, centered=True)):
        eager, traced = [], []
        for ps, gs in (one, (params, grads)):
            calls.clear()
            _run(mine(), ps, gs, compiled=False)  # steps 0, 1, 2 (the last at 0)
            eager.append(dict(calls))
            opt = mine()
            text = str(gc.trace(lambda g, s, p: opt.update(g, s, p), gs[0], opt.init(ps), ps))
            traced.append((text.count("= equal "), text.count("= where ")))
        assert eager[0] == eager[1], eager
        assert traced[1][0] == traced[0][0] and traced[1][1] == traced[0][1] + 2 * 2, traced


def test_a_momentum_fed_as_a_value_of_the_step_at_0_skips_the_buffer_as_torch():
    """update(settings={"momentum": m}) in a compiled step of one's own, m a value of the
    step that is 0 at some step, the attribute a number (0.9): torch's `if momentum != 0`
    keeps the buffer there and steps along the plain gradient; graphc selected only for a
    schedule attribute, and replaced the buffer (the result -1.612 where torch's is -1.441).
    gc.Trainer, which feeds a number attribute's own value (0 only where the attribute is,
    a guard of its plan), keeps a constant momentum's plan without the select."""
    momenta = [0.9, 0.0, 0.9, 0.9, 0.0, 0.5]
    grads = [np.array([1.0, -2.0]) * (i + 1) for i in range(len(momenta))]
    for mine, theirs in ((lambda: optim.SGD(lr=0.1, momentum=0.9, dampening=0.3),
                          lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                     dampening=0.3)),
                         (lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
                          lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                     nesterov=True)),
                         (lambda: optim.RMSprop(lr=0.01, momentum=0.9, centered=True),
                          lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.9,
                                                         centered=True))):
        t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        topt = theirs([t])
        for m, g in zip(momenta, grads):
            topt.param_groups[0]["momentum"] = m
            t.grad = torch.tensor(g)
            topt.step()
        opt = mine()
        step = gc.compile(lambda g, s, p, m: opt.update(g, s, p, settings={"momentum": m}))
        params = {"w": np.zeros(2)}
        state = opt.init(params)
        for m, g in zip(momenta, grads):
            params, state = step({"w": g}, state, params, np.float64(m))
        np.testing.assert_allclose(params["w"], t.detach().numpy(), rtol=1e-12, atol=1e-15)
    for opt in (optim.SGD(lr=0.1, momentum=0.9), optim.RMSprop(lr=0.01, momentum=0.9)):
        trainer = gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]), {"w": np.zeros(2)},
                             opt, [(g,) for g in grads], steps=2, seed=0)
        trainer.train_step()
        assert "= where " not in str(trainer.step_plan.graph)


def test_schedules_of_other_settings_are_evaluated_at_the_step():
    """Any number setting may be a schedule, as the lr: a weight decay decayed by cosine is
    the one torch's loop sets in param_groups each step."""
    params, grads = _problem("float64", steps=12)
    decay = optim.cosine(0.1, steps=12, min_lr=0.01)
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = torch.optim.AdamW(list(tp.values()), lr=0.05, weight_decay=0.1)
    for step, g in enumerate(grads):
        topt.param_groups[0]["weight_decay"] = decay(step)
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    expected = {k: t.detach().numpy() for k, t in tp.items()}
    for compiled in (False, True):
        got, _ = _run(optim.AdamW(lr=0.05, weight_decay=decay), params, grads, compiled)
        assert _max_error(got, expected) <= 1e-12


def test_bad_schedule_settings_are_one_line_errors():
    cases = [(lambda: optim.one_cycle(1.0, 10, pct_start=0.1), "ends the warm-up at step 0"),
             (lambda: optim.one_cycle(1.0, 0), "total_steps must be a whole number >= 1"),
             (lambda: optim.one_cycle(1.0, 10, anneal_strategy="x"), "anneal_strategy"),
             (lambda: optim.warmup_cosine_decay(0.0, 1.0, 10, 10), "decay_steps must be a "
              "whole number >= 11"),
             (lambda: optim.multistep(0.1, 5), "milestones must be a list"),
             (lambda: optim.multistep(0.1, [-1]), "a milestone must be"),
             (lambda: optim.piecewise_constant(0.1, {5: -0.5}), "scales must be >= 0"),
             (lambda: optim.polynomial_decay(0.1, 0.0, 1.0, 0), "transition_steps must be"),
             (lambda: optim.linear_schedule(0.1, -1.0, 5), "linear_schedule: end_value must "
              "be a finite number >= 0"),
             (lambda: optim.linear_schedule(0.1, 0.0, 5, transition_begin=-1),
              "linear_schedule: transition_begin must be"),
             (lambda: optim.linear_lr(0.1, start_factor=0.0), "linear_lr: start_factor must "
              r"be in \(0, 1\]"),
             (lambda: optim.linear_lr(0.1, end_factor=1.5), "linear_lr: end_factor must be"),
             (lambda: optim.linear_lr(0.1, total_iters=0), "linear_lr: total_iters must be a "
              "whole number >= 1"),
             (lambda: optim.linear_lr("0.1"), "linear_lr: base_lr must be a number"),
             (lambda: optim.cosine_decay_schedule(0.1, 0), "decay_steps must be a whole "
              "number >= 1"),
             (lambda: optim.cosine_decay_schedule(0.1, 10, alpha=-0.1), "alpha must be"),
             (lambda: optim.cosine_decay_schedule(lambda c: 0.1, 10), "init_value must be a "
              "number"),
             (lambda: optim.cosine_warm_restarts(0.1, 0), "T_0 must be a whole number >= 1"),
             (lambda: optim.cosine_warm_restarts(0.1, 10, T_mult=1.5), "T_mult must be a "
              "whole number >= 1"),
             (lambda: optim.cosine_warm_restarts(0.1, 10, eta_min=-1), "eta_min must be"),
             (lambda: optim.join_schedules([], []), "schedules must be a non-empty list"),
             (lambda: optim.join_schedules([0.1, "x"], [3]), r"schedules\[1\] must be"),
             (lambda: optim.join_schedules([0.1, 0.2], 3), "boundaries must be a list"),
             # a 0-d array was a bare TypeError (iterating it), a dict was taken by its keys
             (lambda: optim.join_schedules([0.1, 0.2], np.array(3)),
              r"^join_schedules: boundaries must be a list of steps, got array\(3\)\n"),
             (lambda: optim.join_schedules([0.1, 0.2], {3: 0.5}),
              r"^join_schedules: boundaries must be a list of steps, got \{3: 0.5\}\n"),
             # the same check for multistep's milestones (it had the 0-d array and the dict)
             (lambda: optim.multistep(0.1, np.array(3)),
              r"^multistep: milestones must be a list of steps, got array\(3\)\n"),
             (lambda: optim.multistep(0.1, {3: 0.5}), r"^multistep: milestones must be a list"),
             (lambda: optim.join_schedules([0.1, 0.2], (b for b in [3])), "boundaries must be"),
             (lambda: optim.join_schedules([0.1, 0.2], [3, 4]), "boundaries must be one "
              "fewer than schedules, got 2 schedules and 2 boundaries"),
             (lambda: optim.join_schedules([0.1, 0.2, 0.3], [5, 3]), "increasing order"),
             (lambda: optim.join_schedules([0.1, 0.2], [-1]), "a boundary must be")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message):
            make()
    # any ordered sequence is taken (a deque, as torch's milestones may be)
    joined = optim.join_schedules([0.1, 0.2], collections.deque([3]))
    assert (joined(2), joined(3)) == (0.1, 0.2)
    assert optim.multistep(1.0, collections.deque([2]), 0.5)(2) == 0.5


def test_the_older_schedules_check_their_numbers_as_the_newer_ones():
    """warmup_cosine_decay(..., exponent=-1) raised a bare ZeroDivisionError at decay_steps
    (0 ** -1, where the cosine term reaches 0), and warmup_cosine_decay, cosine, one_cycle,
    one_cycle_momentum, exponential_decay, piecewise_constant, multistep and polynomial_decay
    took a function as a number argument and failed later with a TypeError; each is now one
    line at the call, as cosine_decay_schedule's (_schedule_non_negative)."""
    f = lambda count: 0.1  # noqa: E731  (a schedule where a number belongs)
    function = r"must be a number, got <function"
    cases = [(lambda: optim.warmup_cosine_decay(0.0, 1.0, 2, 10, exponent=-1.0),
              r"^warmup_cosine_decay: exponent must be a finite number >= 0, got -1.0\n"),
             (lambda: optim.warmup_cosine_decay(f, 1.0, 2, 10), "init_value " + function),
             (lambda: optim.warmup_cosine_decay(0.0, f, 2, 10), "peak_value " + function),
             (lambda: optim.warmup_cosine_decay(0.0, 1.0, 2, 10, end_value=f),
              "end_value " + function),
             (lambda: optim.warmup_cosine_decay(0.0, 1.0, 2, 10, exponent=f),
              "exponent " + function),
             (lambda: optim.cosine(f, 10), "^cosine: peak " + function),
             (lambda: optim.cosine(1.0, 10, min_lr=f), "^cosine: min_lr " + function),
             (lambda: optim.one_cycle(f, 10), "^one_cycle: max_lr " + function),
             (lambda: optim.one_cycle(1.0, 10, div_factor=f), "div_factor " + function),
             (lambda: optim.one_cycle(1.0, 10, final_div_factor=f),
              "final_div_factor " + function),
             (lambda: optim.one_cycle_momentum(10, base_momentum=f),
              "base_momentum " + function),
             (lambda: optim.exponential_decay(f, 10, 0.5),
              "^exponential_decay: init_value " + function),
             (lambda: optim.exponential_decay(1.0, 10, f), "decay_rate " + function),
             (lambda: optim.exponential_decay(1.0, 10, 0.5, end_value=f),
              "end_value " + function),
             (lambda: optim.piecewise_constant(f, {2: 0.5}), "init_value " + function),
             (lambda: optim.piecewise_constant(1.0, {2: f}), "the scale at 2 " + function),
             (lambda: optim.multistep(1.0, [2], f), "^multistep: gamma " + function),
             (lambda: optim.polynomial_decay(1.0, 0.0, f, 10), "power " + function)]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message) as info:
            make()
        assert "test_optim_extra.py" in str(info.value).splitlines()[1]
    # the numbers these take are unchanged: exponent 0 holds peak, as optax's c ** 0
    assert optim.warmup_cosine_decay(0.0, 1.0, 2, 10, exponent=0.0)(10) == 1.0
    assert optim.exponential_decay(1.0, 10, np.float64(0.5))(10) == 0.5


@pytest.mark.parametrize("kind", ["SGD", "RMSprop"])
def test_a_trainers_momentum_changed_from_a_number_to_a_schedule_mid_run_follows_torch(kind):
    """r8 on 85ccc7f: the Trainer's plan for a number momentum has no select on its being 0
    (the guard held only whether it is 0), so after `optimizer.momentum = schedule` mid-run
    the old plan ran on, replacing the buffer at the schedule's 0 steps (0.049 off torch for
    SGD, 0.266 for RMSprop). The guard now tells a schedule from a number: one recompile."""
    steps = 7
    schedule = lambda s: 0.0 if s in (3, 4) else 0.9  # noqa: E731
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    init = {"w": np.full((3, 2), 0.1), "b": np.zeros(2)}
    w, b = (torch.tensor(init[k], requires_grad=True) for k in ("w", "b"))
    theirs = (torch.optim.SGD([w, b], lr=0.1, momentum=0.9) if kind == "SGD" else
              torch.optim.RMSprop([w, b], lr=0.01, momentum=0.9))
    for step in range(steps):
        theirs.param_groups[0]["momentum"] = schedule(step) if step >= 2 else 0.9
        theirs.zero_grad()
        ((torch.tensor(x) @ w + b - torch.tensor(y)) ** 2).mean().backward()
        theirs.step()
    ours = (optim.SGD(lr=0.1, momentum=0.9) if kind == "SGD" else
            optim.RMSprop(lr=0.01, momentum=0.9))
    trainer = gc.Trainer(lambda p, batch: gc.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2),
                         init, ours, lambda rng: (x, y), steps=steps, seed=0)
    for step in range(steps):
        if step == 2:
            trainer.optimizer.momentum = schedule
        trainer.train_step()
    np.testing.assert_allclose(trainer.params["w"], w.detach().numpy(), rtol=0, atol=1e-12)


class _OwnScalars(optim.SGD):
    def _scalars(self, count, step):  # a user's own, not calling SGD's
        return {"lr": 0.1}


class _OwnFloat64Scalars(optim.RMSprop):
    float64_scalars = ()


@pytest.mark.parametrize("compiled", [False, True])
def test_a_users_subclass_of_sgd_or_rmsprop_still_steps(compiled):
    """r8 on 0ca97a8: a subclass whose _scalars do not call SGD's was a bare
    KeyError: 'momentum_off', and one with float64_scalars of its own failed compiled
    ('where: the condition must be bool, got float32'): momentum_off is read with a
    default, and a bool scalar is never cast. The first steps as before the fix (its own
    scalars leave the momentum schedule's 0 unseen); the second equals RMSprop's."""
    def schedule(count):  # 0 at step 1, as a compiled update's traced count allows
        if isinstance(count, (int, np.integer)):
            return 0.0 if count == 1 else 0.9
        return gc.where(count == 1, 0.0, 0.9)
    results = {}
    for cls in (_OwnScalars, _OwnFloat64Scalars, optim.RMSprop):
        opt = cls(lr=0.1, momentum=schedule)
        params, state = {"w": np.ones(3, np.float32)}, None
        state = opt.init(params)
        update = gc.compile(opt.update) if compiled else opt.update
        for g in (0.5, 1.0, 2.0):
            params, state = update({"w": np.full(3, g, np.float32)}, state, params)
        results[cls] = np.asarray(params["w"])
    np.testing.assert_array_equal(results[_OwnFloat64Scalars], results[optim.RMSprop])
    assert np.all(np.isfinite(results[_OwnScalars]))


def _torch_sgd_dampened(grads, momenta=None, missing=()):
    """torch's SGD(lr=0.1, momentum=0.9, dampening=0.5) over grads ({name: array} per step),
    the momentum set to momenta[step] where given, no .grad for (step, name) in `missing`."""
    ts = {k: torch.zeros(2, dtype=torch.float64, requires_grad=True) for k in grads[0]}
    theirs = torch.optim.SGD(list(ts.values()), lr=0.1, momentum=0.9, dampening=0.5)
    for step, g in enumerate(grads):
        if momenta is not None:
            theirs.param_groups[0]["momentum"] = momenta[step]
        for k, t in ts.items():
            t.grad = None if (step, k) in missing else torch.tensor(g[k])
        theirs.step()
    return {k: t.detach().numpy() for k, t in ts.items()}


_DAMPENED_GRADS = [{"w": np.array([1.0, -2.0]) * (i + 1), "u": np.array([0.5, 3.0]) - i}
                   for i in range(6)]


@pytest.mark.parametrize("case", ["schedule-from-0", "first-gradient-none"])
def test_sgd_dampening_starts_each_buffer_undamped_at_its_first_momentum_step_as_torch(case):
    """torch starts a momentum buffer as the gradient itself, undamped, at the parameter's
    first gradient under a momentum that is not 0, then buf = m buf + (1 - dampening) g.
    graphc started it undamped only at the state's count 0: a momentum schedule from 0 (the
    buffer skipped at step 0) and, in the functional update, a parameter whose first
    gradient was None got a damped start (-0.856 against torch's -1.127). Each buffer is now
    marked started (slot "started"): functional eager and compiled, bound, gc.Trainer."""
    grads = _DAMPENED_GRADS
    if case == "schedule-from-0":
        momentum, missing = optim.linear_schedule(0.0, 0.9, 2), ()  # 0, 0.45, then 0.9
        expected = _torch_sgd_dampened(grads, [momentum(s) for s in range(len(grads))])
    else:
        momentum, missing = 0.9, {(0, "w")}
        expected = _torch_sgd_dampened(grads, missing=missing)
    fed = [{k: None if (step, k) in missing else g[k] for k in g}
           for step, g in enumerate(grads)]
    params = {"w": np.zeros(2), "u": np.zeros(2)}
    for compiled in (False, True):
        got, state = _run(optim.SGD(lr=0.1, momentum=momentum, dampening=0.5), params, fed,
                          compiled)
        assert _max_error(got, expected) <= 1e-14, compiled
        assert all(bool(s) for s in state["started"].values())
    # (before: 0.27 off torch, the damped start)
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}
    bound = optim.SGD(lr=0.1, momentum=momentum, dampening=0.5).bind(ps)
    for g in fed:
        for k, p in ps.items():
            p.grad = g[k]
        bound.step()
    assert _max_error({k: p.data for k, p in ps.items()}, expected) <= 1e-14
    if case == "schedule-from-0":  # (the Trainer's loss reads every parameter at each step)
        trainer = _trained(optim.SGD(lr=0.1, momentum=momentum, dampening=0.5), params, grads)
        assert _max_error(trainer.params, expected) <= 1e-14


def test_sgds_state_saved_before_the_started_mark_resumes_as_torch(tmp_path):
    """A state without "started" (saved before SGD kept it: its buffers started at each
    parameter's first update) resumes: the functional update (eager and compiled), a bound
    optimiser's load_state_dict and gc.Trainer's resume from such a checkpoint file (its
    header recording SGD keeping momentum only) make it from each parameter's count of
    updates (a mark of False at count 2 would restart the buffers: 0.97 off torch)."""
    from graphc import checkpoint
    grads = _DAMPENED_GRADS
    expected = _torch_sgd_dampened(grads)
    params = {"w": np.zeros(2), "u": np.zeros(2)}
    make = lambda: optim.SGD(lr=0.1, momentum=0.9, dampening=0.5)  # noqa: E731
    for at in (0, 2):  # saved before any update, and after two
        for compiled in (False, True):
            opt = make()
            step = gc.compile(lambda p, s, g: opt.update(g, s, p)) if compiled else \
                (lambda p, s, g: opt.update(g, s, p))
            got, state = dict(params), opt.init(params)
            for i, g in enumerate(grads):
                if i == at:
                    state = {k: v for k, v in state.items() if k != "started"}
                got, state = step(got, state, g)
            assert _max_error(got, expected) <= 1e-14, (at, compiled)
        ps = {k: gc.nn.Parameter(v.copy()) for k, v in params.items()}
        bound = make().bind(ps)
        for i, g in enumerate(grads):
            if i == at:
                saved = bound.state_dict()
                del saved["state"]["started"]
                bound = make().bind(ps)
                bound.load_state_dict(saved)
            for k, p in ps.items():
                p.grad = g[k]
            bound.step()
        assert _max_error({k: p.data for k, p in ps.items()}, expected) <= 1e-14, at
        names = sorted(params)
        trainer, resumed = (gc.Trainer(
            lambda p, batch: sum(gc.sum(p[k] * b) for k, b in zip(names, batch)),
            dict(params), make(), [tuple(g[k] for k in names) for g in grads],
            steps=len(grads), seed=0) for _ in range(2))
        for _ in range(at):
            trainer.train_step()
        path = str(tmp_path / f"older{at}.npz")
        trainer.save(path)
        wanted = {k: (a.shape, a.dtype) for k, a in trainer.state_arrays().items()}
        meta = checkpoint.load_arrays(path, wanted)[1]
        assert meta["optimizer_record"] == {"class": "SGD", "slots": ["momentum", "started"]}
        checkpoint.save(path, {k: a for k, a in trainer.state_arrays().items()
                               if not k.startswith("opt_started/")},
                        {**meta, "optimizer_record": {"class": "SGD", "slots": ["momentum"]}})
        resumed.resume(path)
        assert bool(resumed.state["started"]["w"]) == (at > 0)
        while resumed.step < len(grads):
            resumed.train_step()
        assert _max_error(resumed.params, expected) <= 1e-14, at


def test_sgd_dampening_set_from_or_to_0_mid_run_follows_torch():
    """A dampening set from or to 0 mid-run follows torch, bound and in gc.Trainer (where a
    state lacking or holding the "started" mark was refused): the mark is kept whatever the
    dampening (a buffer started at dampening 0 stays marked), the state unchanged."""
    dampenings = [0.0, 0.0, 0.5, 0.5, 0.0, 0.3]
    grads = [np.array([1.0, -2.0]) * (i + 1) for i in range(len(dampenings))]
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([t], lr=0.1, momentum=0.9)
    for d, g in zip(dampenings, grads):
        theirs.param_groups[0]["dampening"] = d
        t.grad = torch.tensor(g)
        theirs.step()
    ps = {"w": gc.nn.Parameter(np.zeros(2))}
    bound = optim.SGD(lr=0.1, momentum=0.9).bind(ps)
    trainer = gc.Trainer(lambda p, batch: gc.sum(p["w"] * batch[0]), {"w": np.zeros(2)},
                         optim.SGD(lr=0.1, momentum=0.9), [(g,) for g in grads],
                         steps=len(grads), seed=0)
    for d, g in zip(dampenings, grads):
        bound.dampening = trainer.optimizer.dampening = d
        ps["w"].grad = g
        bound.step()
        trainer.train_step()
        for state in (bound.state, trainer.state):
            assert set(state) == {"count", "momentum", "started"}
            assert bool(np.asarray(state["started"]["w"]))
    for got in (ps["w"].data, trainer.params["w"]):
        np.testing.assert_allclose(got, t.detach().numpy(), rtol=0, atol=1e-14)


def test_bound_sgd_follows_a_dampening_set_from_0_with_parameters_of_different_counts():
    """A bound SGD whose dampening is set from 0 where its parameters have had different
    numbers of updates (one's gradient None at the first step: step()'s groups) follows
    torch (a KeyError 'started' once, the review of the mark's commit); a state saved before
    the mark was kept, loaded, makes it from each parameter's own count, as gc.Trainer and
    update() do."""
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=3), "u": rng.normal(size=3)} for _ in range(6)]
    dampenings = [0.0, 0.0, 0.5, 0.5, 0.0, 0.5]
    ts = {k: torch.zeros(3, dtype=torch.float64, requires_grad=True) for k in "wu"}
    theirs = torch.optim.SGD(list(ts.values()), lr=0.1, momentum=0.9)
    ps = {k: gc.nn.Parameter(np.zeros(3)) for k in "wu"}
    bound = optim.SGD(lr=0.1, momentum=0.9).bind(ps)
    for i, g in enumerate(grads):
        theirs.param_groups[0]["dampening"] = bound.dampening = dampenings[i]
        for k in "wu":
            ts[k].grad = None if (i, k) == (0, "u") else torch.tensor(g[k])
            ps[k].grad = None if (i, k) == (0, "u") else g[k]
        theirs.step()
        bound.step()
        assert {k: bool(v) for k, v in bound.state["started"].items()} == \
            {"w": True, "u": i > 0}
    assert _max_error({k: p.data for k, p in ps.items()},
                      {k: t.detach().numpy() for k, t in ts.items()}) <= 1e-14
    saved = bound.state_dict()
    for older in (False, True):  # the state with its marks, and one saved before them
        state = {k: v for k, v in saved["state"].items() if not (older and k == "started")}
        qs = {k: gc.nn.Parameter(p.data.copy()) for k, p in ps.items()}
        other = optim.SGD(lr=0.1, momentum=0.9).bind(qs)
        other.dampening = 0.5
        other.load_state_dict({**saved, "state": state})
        assert {k: bool(v) for k, v in other.state["started"].items()} == {"w": True, "u": True}



SGD_LATE_BUFFER_CASES = {  # keywords, (step, setting, value) changes, steps b has no gradient
    # the momentum set from 0 at a step b has no gradient, the dampening the step after
    "momentum-from-0": (dict(lr=0.1), [(2, "momentum", 0.5), (3, "dampening", 0.3)], {2}),
    # b's buffer kept aside, never started, while the momentum is 0
    "momentum-off-on": (dict(lr=0.1, momentum=0.5, dampening=0.3),
                        [(2, "momentum", 0.0), (5, "momentum", 0.5)], {0, 1}),
    # as the first, the dampening set from 0 while the momentum is 0
    "dampening-while-off": (dict(lr=0.1, momentum=0.5),
                            [(1, "momentum", 0.0), (2, "dampening", 0.3),
                             (4, "momentum", 0.9)], {0}),
}


@pytest.mark.parametrize("saved", [False, True])
@pytest.mark.parametrize("case", SGD_LATE_BUFFER_CASES)
def test_bound_sgd_marks_a_buffer_begun_after_the_first_update_as_torch(case, saved):
    """torch starts a parameter's momentum buffer undamped at its first gradient under a
    momentum that is not 0, which on a bound SGD may come after the parameter's first
    update (the momentum set from 0, or back from 0 before the buffer started). The
    "started" mark was kept only while the dampening was not 0, and made from the count
    ("has had an update") when the dampening was set, or the momentum came back: b's
    buffer began damped (0.028 off torch after one step, 0.048 after three). The mark is
    now kept, and kept aside with the buffer while the momentum is 0 (and saved by
    state_dict()): the values are torch's (float64), the state saved and loaded between
    every step where `saved`."""
    settings, changes, b_without = SGD_LATE_BUFFER_CASES[case]
    _steps_beside_torch("SGD", settings, changes, {"a": (3,), "b": (3,)}, 7,
                        lambda i: i in b_without, saved)


def _steps_beside_torch(name, settings, changes, shapes, steps, b_without, saved):
    """`steps` steps of optimiser `name` bound to parameters of `shapes` beside torch's,
    float64: each `(step, setting, value)` change made to both param_groups before its
    step, parameter b without a gradient where `b_without(step)`, the state saved and loaded
    into a new bound optimiser after every step where `saved`; the parameters equal
    torch's after each step."""
    rng = np.random.default_rng(0)
    start = {k: rng.normal(size=s) for k, s in shapes.items()}
    ts = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    theirs = getattr(torch.optim, name)(list(ts.values()), **settings)
    ps = {k: gc.nn.Parameter(v.copy()) for k, v in start.items()}
    bound = getattr(optim, name)(**settings).bind(ps)
    for i in range(steps):
        for at, setting, value in changes:
            if at == i:
                theirs.param_groups[0][setting] = bound.param_groups[0][setting] = value
        for k, s in shapes.items():
            g = None if k == "b" and b_without(i) else rng.normal(size=s)
            ts[k].grad = None if g is None else torch.tensor(g)
            ps[k].grad = g
        theirs.step()
        bound.step()
        if saved:
            state = bound.state_dict()
            bound = getattr(optim, name)(**settings).bind(ps)
            bound.load_state_dict(state)
        for k in shapes:
            np.testing.assert_allclose(ps[k].data, ts[k].detach().numpy(), rtol=0,
                                       atol=1e-14, err_msg=f"{k} after step {i}")


def test_a_state_dict_saved_at_momentum_0_checks_the_marks_kept_aside():
    """A state_dict() saved while the momentum is 0 holds the buffers' "started" marks aside
    with the buffers: load_state_dict checks them as the buffers (a damaged one was taken and
    failed at a later step), and takes them back as they were."""
    ps = {"w": gc.nn.Parameter(np.zeros(2)), "u": gc.nn.Parameter(np.zeros(2))}
    bound = optim.SGD(lr=0.1, momentum=0.9, dampening=0.5).bind(ps)
    ps["w"].grad, ps["u"].grad = np.ones(2), None
    bound.step()
    bound.momentum = 0.0
    saved = bound.state_dict()
    assert {k: bool(v) for k, v in saved["state"]["started"].items()} == \
        {"w": True, "u": False}
    other = optim.SGD(lr=0.1).bind(ps)
    other.load_state_dict(saved)
    assert {k: bool(v) for k, v in other.state["started"].items()} == {"w": True, "u": False}
    for bad, message in (([True, False], "the state's started must be a dict"),
                         ({"w": np.ones(2, bool), "u": np.array(False)},
                          r"started of w is bool\[2\], expected bool\[\]")):
        with pytest.raises(gc.GraphcError, match="^load_state_dict: " + message):
            other.load_state_dict({**saved, "state": {**saved["state"], "started": bad}})


def test_review_s53_a_mark_loaded_without_its_buffer_does_not_start_the_new_buffer():
    """Review r15: a state_dict holding SGD's "started" marks aside but no momentum buffer
    (loaded where the momentum is 0) kept the marks, True, when the momentum was set again:
    the buffer made then, at its first gradient, was damped (0.5 * g) where torch's starts
    as the gradient itself. A buffer made afresh gets its marks afresh (not started)."""
    ps = {"w": gc.nn.Parameter(np.zeros(2))}
    bound = optim.SGD(lr=0.1, momentum=0.9, dampening=0.5).bind(ps)
    ps["w"].grad = np.ones(2)
    bound.step()
    bound.momentum = 0.0
    saved = bound.state_dict()
    del saved["state"]["momentum"]
    other = optim.SGD(lr=0.1, dampening=0.5).bind(ps)
    other.load_state_dict(saved)
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([t], lr=0.1, dampening=0.5)
    theirs.step()  # (no gradient: nothing done, as the step before the state was saved)
    for momentum in (0.0, 0.9, 0.9):
        other.momentum = theirs.param_groups[0]["momentum"] = momentum
        before = np.asarray(ps["w"].data).copy()
        ps["w"].grad, t.grad = np.ones(2), torch.ones(2, dtype=torch.float64)
        other.step()
        with torch.no_grad():
            t.copy_(torch.tensor(before))
        theirs.step()
        np.testing.assert_allclose(np.asarray(ps["w"].data), t.detach().numpy(), rtol=0,
                                   atol=1e-15)


def test_sgd_update_marks_a_buffer_skipped_by_a_momentum_schedule_at_0_as_torch():
    """The functional update's buffer skips the steps a momentum schedule is 0 at; with the
    dampening 0 then, a dampening set later made the mark from the count (started), and the
    buffer's first value was damped where torch's is the gradient itself. Eager and compiled,
    against torch (float64) with the schedule's momentum set at each step."""
    schedule = optim.join_schedules([optim.constant(0.0), optim.constant(0.9)], [2])
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(6)]
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([t], lr=0.1)
    for i, g in enumerate(grads):
        theirs.param_groups[0]["momentum"] = 0.0 if i < 2 else 0.9
        theirs.param_groups[0]["dampening"] = 0.0 if i < 1 else 0.5
        t.grad = torch.tensor(g)
        theirs.step()
    for compiled in (False, True):
        sgd = optim.SGD(lr=0.1, momentum=schedule)
        update = gc.compile(lambda g, s, p: sgd.update(g, s, p)) if compiled else sgd.update
        params = {"w": np.zeros(3)}
        state = sgd.init(params)
        for i, g in enumerate(grads):
            sgd.dampening = 0.0 if i < 1 else 0.5
            params, state = update({"w": g}, state, params)
        np.testing.assert_allclose(np.asarray(params["w"]), t.detach().numpy(), rtol=0,
                                   atol=1e-14, err_msg=f"compiled={compiled}")


@pytest.mark.parametrize("case", ["dampening", "momentum"])
def test_load_state_dict_takes_the_state_as_the_saved_settings_make_it_as_torch(case):
    """torch's load_state_dict restores the param_groups' settings with the state, so a state
    is for the optimiser as the saved settings make it. A state saved at dampening 0.5 whose
    buffer had not started (a momentum schedule at 0 so far) loaded into a bound SGD at
    dampening 0 was checked against dampening 0: its "started" mark was dropped, then made
    again from the count (started) once the saved 0.5 was set, so the next buffer began
    damped (0.22 off torch). One holding a momentum buffer was refused by an SGD at momentum
    0 ("the state has ['count', 'momentum'], SGD keeps ['count']"), which torch takes."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(6)]
    if case == "dampening":  # a schedule here stays (set in torch's loop); 0.5 is restored
        schedule = lambda step: 0.0 if step < 2 else 0.9  # noqa: E731
        saved_at, loaded_into = {"momentum": schedule}, {"momentum": schedule}
    else:  # momentum 0.9 restored, as the dampening
        schedule, saved_at, loaded_into = None, {"momentum": 0.9}, {}
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([t], lr=0.1, momentum=0.9, dampening=0.5)
    ps = {"w": gc.nn.Parameter(np.zeros(3))}
    bound = optim.SGD(lr=0.1, dampening=0.5, **saved_at).bind(ps)
    for i, g in enumerate(grads):
        if i == 2:  # saved, loaded into an optimiser at dampening 0 (and momentum 0)
            t = t.detach().clone().requires_grad_(True)
            saved = theirs.state_dict()
            theirs = torch.optim.SGD([t], lr=0.1, momentum=0.0 if schedule is None else 0.9)
            theirs.load_state_dict(saved)
            ps = {"w": gc.nn.Parameter(ps["w"].data.copy())}
            saved = bound.state_dict()
            bound = optim.SGD(lr=0.1, **loaded_into).bind(ps)
            bound.load_state_dict(saved)
            assert (bound.dampening, bound.momentum) == (0.5, schedule or 0.9)
        if schedule is not None:
            theirs.param_groups[0]["momentum"] = 0.0 if i < 2 else 0.9
        t.grad, ps["w"].grad = torch.tensor(g), g
        theirs.step()
        bound.step()
    np.testing.assert_allclose(ps["w"].data, t.detach().numpy(), rtol=0, atol=1e-14)


FLAG_CASES = {  # saved with, loaded into: the same keywords for graphc's and torch's class
    "SGD-nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, momentum=0.9)),
    "SGD-maximize": ("SGD", dict(lr=0.1, momentum=0.9, maximize=True), dict(lr=0.1, momentum=0.9)),
    "Adam-amsgrad": ("Adam", dict(lr=0.1, amsgrad=True), dict(lr=0.1)),
    "Adam-amsgrad-off": ("Adam", dict(lr=0.1), dict(lr=0.1, amsgrad=True)),
    "AdamW-maximize-amsgrad": ("AdamW", dict(lr=0.1, maximize=True, amsgrad=True), dict(lr=0.1)),
    "RMSprop-centered": ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True),
                         dict(lr=0.01, momentum=0.9)),
    "RMSprop-centered-off": ("RMSprop", dict(lr=0.01), dict(lr=0.01, centered=True)),
    "NAdam-decoupled": ("NAdam", dict(lr=0.1, weight_decay=0.1, decoupled_weight_decay=True),
                        dict(lr=0.1, weight_decay=0.1)),
}


def _saved_and_loaded(name, saved_with, loaded_into, grads, older=False):
    """Three steps of graphc's and torch's `name` at `saved_with`, their state_dict()s loaded
    into a new one at `loaded_into` (graphc's without its flags where `older`: a state saved
    before they were kept), three steps more; -> (graphc's bound optimiser, its parameter,
    torch's optimizer, its parameter) after them."""
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    theirs = getattr(torch.optim, name)([t], **saved_with)
    ps = {"w": gc.nn.Parameter(np.zeros(3))}
    bound = getattr(optim, name)(**saved_with).bind(ps)
    for i, g in enumerate(grads):
        if i == 3:
            t = t.detach().clone().requires_grad_(True)
            saved = theirs.state_dict()
            theirs = getattr(torch.optim, name)([t], **loaded_into)
            theirs.load_state_dict(saved)
            ps = {"w": gc.nn.Parameter(ps["w"].data.copy())}
            saved = bound.state_dict()
            bound = getattr(optim, name)(**loaded_into).bind(ps)
            if older:
                flags = set(type(bound.optimizer).flag_settings)
                saved = {**saved, "settings": {k: v for k, v in saved["settings"].items()
                                               if k not in flags}}
                for flag in flags:  # torch's group with the flags the new one was given
                    theirs.param_groups[0][flag] = getattr(bound.optimizer, flag)
            bound.load_state_dict(saved)
        t.grad, ps["w"].grad = torch.tensor(g), g
        theirs.step()
        bound.step()
    return bound, ps["w"], theirs, t


@pytest.mark.parametrize("case", FLAG_CASES)
def test_load_state_dict_restores_the_saved_flags_as_torch(case):
    """torch's load_state_dict restores the param_groups' flags with the numbers; graphc's
    state_dict() saved only its number settings, so an SGD state saved with nesterov (or
    maximize) loaded into one without went on without it (0.07 off torch), and a state saved
    with amsgrad or centered was refused by an optimiser without them ("the state has [...,
    'v_max'], Adam keeps [...]"), where torch goes on with the flag and the slot it brings."""
    name, saved_with, loaded_into = FLAG_CASES[case]
    grads = [np.random.default_rng(i).normal(size=3) for i in range(6)]
    bound, w, theirs, t = _saved_and_loaded(name, saved_with, loaded_into, grads)
    group = theirs.param_groups[0]
    for flag in type(bound.optimizer).flag_settings:
        torch_flag = "decoupled_weight_decay" if flag == "decoupled" else flag
        assert getattr(bound.optimizer, flag) is group[torch_flag], flag
    torch_slots = {"v_max": "max_exp_avg_sq", "mean_g": "grad_avg"}
    for slot, theirs_slot in torch_slots.items():
        assert (slot in bound.state) == (theirs_slot in theirs.state[t])
        if slot in bound.state:
            np.testing.assert_allclose(bound.state[slot]["w"], theirs.state[t][theirs_slot],
                                       rtol=0, atol=1e-14)
    # (torch's load_state_dict casts NAdam's float32 mu_product to the float64 parameters'
    # dtype, which graphc's keeps from the start: 1e-9 apart with no flag changed)
    np.testing.assert_allclose(w.data, t.detach().numpy(), rtol=0,
                               atol=1e-8 if name == "NAdam" else 1e-14)


@pytest.mark.parametrize("case", ["SGD-nesterov", "SGD-maximize", "AdamW-maximize-amsgrad"])
def test_load_state_dict_of_a_state_saved_without_flags_keeps_the_optimisers(case):
    """A state_dict() saved before the flags were kept (its settings only numbers) leaves the
    optimiser's own flags as they are, as it leaves every setting it does not hold."""
    name, saved_with, loaded_into = FLAG_CASES[case]
    if case.startswith("AdamW"):  # (a state with v_max is for amsgrad: kept where it is on)
        loaded_into = {**loaded_into, "amsgrad": True}
    grads = [np.random.default_rng(i).normal(size=3) for i in range(6)]
    bound, w, theirs, t = _saved_and_loaded(name, saved_with, loaded_into, grads, older=True)
    default = getattr(optim, name)()  # (AdamW's decoupled is True)
    for flag in type(bound.optimizer).flag_settings:
        assert getattr(bound.optimizer, flag) is loaded_into.get(flag, getattr(default, flag)), \
            flag
    np.testing.assert_allclose(w.data, t.detach().numpy(), rtol=0, atol=1e-14)


SLOT_SETTING_CASES = {  # optimiser, its keywords, then (step, setting, value) changes
    "SGD-momentum-on-off-on": ("SGD", dict(lr=0.1, dampening=0.3),
                               [(2, "momentum", 0.9), (5, "momentum", 0.0),
                                (8, "momentum", 0.5)]),
    "SGD-nesterov-momentum-off-on": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True),
                                     [(3, "nesterov", False), (3, "momentum", 0.0),
                                      (6, "momentum", 0.9), (6, "nesterov", True)]),
    "Adam-amsgrad-off-on": ("Adam", dict(lr=0.1, amsgrad=True),
                            [(3, "amsgrad", False), (7, "amsgrad", True)]),
    "RMSprop-centered-momentum-off-on": ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True),
                                         [(2, "centered", False), (4, "momentum", 0.0),
                                          (7, "centered", True), (8, "momentum", 0.9)]),
}


@pytest.mark.parametrize("saved", [False, True])
@pytest.mark.parametrize("case", SLOT_SETTING_CASES)
def test_a_setting_that_adds_or_drops_a_slot_mid_run_goes_on_as_torch(case, saved):
    """torch starts SGD's momentum buffer at the first step under a momentum set from 0, and
    keeps a buffer (amsgrad's max_exp_avg_sq, centered's grad_avg) unused while its setting
    is off, using it again when it comes back. A bound graphc optimiser refused the step
    ("the state has ['count'], expected ['count', 'momentum']"), or, with a parameter without
    a gradient, failed with a KeyError: 'momentum'; a state_dict() saved while a slot was
    unused was refused by load_state_dict. Now the same values as torch's (float64), the
    state saved and loaded between every step where `saved`."""
    name, settings, changes = SLOT_SETTING_CASES[case]
    # b without a gradient at every third step
    _steps_beside_torch(name, settings, changes, {"a": (3,), "b": (2, 2)}, 10,
                        lambda i: i % 3 == 1, saved)


def test_param_groups_take_torchs_names_of_nadams_and_adagrads_settings(torch_float64_default):
    """torch's param_groups say decoupled_weight_decay (NAdam) and initial_accumulator_value
    (Adagrad), graphc's optimisers decoupled and initial: `group["decoupled_weight_decay"] =
    True` mid-run was refused ("NAdam has no setting 'decoupled_weight_decay'"), reading
    either was a KeyError, and `opt.initial = -1.0` was taken unchecked (NaN updates). Now
    torch's names read and write through, and NAdam's run follows torch's (float64)."""
    rng = np.random.default_rng(1)
    start = rng.normal(size=4)
    t = torch.tensor(start.copy(), requires_grad=True)
    theirs = torch.optim.NAdam([t], lr=0.05, weight_decay=0.1)
    ps = {"w": gc.nn.Parameter(start.copy())}
    bound = optim.NAdam(lr=0.05, weight_decay=0.1).bind(ps)
    for i in range(8):
        if i in (3, 6):
            for group in (theirs.param_groups[0], bound.param_groups[0]):
                group["decoupled_weight_decay"] = not group["decoupled_weight_decay"]
            assert bound.optimizer.decoupled is (i == 3)
        g = rng.normal(size=4)
        t.grad, ps["w"].grad = torch.tensor(g), g
        theirs.step()
        bound.step()
    np.testing.assert_allclose(ps["w"].data, t.detach().numpy(), rtol=0, atol=1e-14)
    assert set(theirs.param_groups[0]) - {"foreach", "capturable", "differentiable",
                                          "fused"} <= set(bound.param_groups[0])

    adagrad = optim.Adagrad(lr=0.1, initial_accumulator_value=0.25)
    bound = adagrad.bind({"w": gc.nn.Parameter(np.zeros(2))})
    assert bound.param_groups[0]["initial_accumulator_value"] == 0.25
    assert set(torch.optim.Adagrad([torch.zeros(2, requires_grad=True)]).param_groups[0]) - {
        "foreach", "differentiable", "fused"} <= set(bound.param_groups[0])
    with pytest.raises(gc.GraphcError, match="^Adagrad: initial_accumulator_value must be a "
                                             "finite number >= 0, got -1.0"):
        adagrad.initial = -1.0
    adagrad.initial_accumulator_value = 0.5
    np.testing.assert_array_equal(adagrad.init({"w": np.zeros(2)})["sum"]["w"], [0.5, 0.5])


@pytest.mark.parametrize("name, settings", [("Adam", dict(lr=0.1, amsgrad=True)),
                                             ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
                                             ("NAdam", dict(lr=0.05)),
                                             ("RMSprop", dict(lr=0.01, centered=True))])
def test_add_param_group_adds_parameters_as_torch(name, settings, torch_float64_default):
    """torch's opt.add_param_group({"params": ...}) (a layer added for fine-tuning) was an
    AttributeError on a bound optimizer. Now the parameters join its one group, each from
    its own first update as torch's: the same values (float64), through a state_dict()
    round trip too; a group with another setting is one line."""
    rng = np.random.default_rng(0)
    a0, b0 = rng.normal(size=3), rng.normal(size=(2, 2))
    ta, tb = (torch.tensor(v.copy(), requires_grad=True) for v in (a0, b0))
    theirs = getattr(torch.optim, name)([ta], **settings)
    layer = gc.nn.Linear(2, 2)
    layer.weight.data = b0.copy()
    ga = gc.nn.Parameter(a0.copy())
    bound = getattr(optim, name)(**settings).bind([ga])
    for i in range(8):
        if i == 3:
            theirs.add_param_group({"params": [tb]})
            bound.add_param_group({"params": [layer.weight], "lr": settings["lr"]})
            assert list(bound.parameters) == ["0", "1"]
        g = rng.normal(size=3)
        ta.grad, ga.grad = torch.tensor(g), g.copy()
        if i >= 3:
            g = rng.normal(size=(2, 2))
            tb.grad, layer.weight.grad = torch.tensor(g), g.copy()
        theirs.step()
        bound.step()
        if i == 5:
            saved = bound.state_dict()
            bound = getattr(optim, name)(**settings).bind([ga, layer.weight])
            bound.load_state_dict(saved)
    np.testing.assert_allclose(ga.data, ta.detach().numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(layer.weight.data, tb.detach().numpy(), rtol=0, atol=1e-14)
    with pytest.raises(gc.GraphcError, match=r"^add_param_group: the group's lr is 0.5, the "
                                             r"optimizer's .*bind another optimizer"):
        bound.add_param_group({"params": [layer.bias], "lr": 0.5})
    with pytest.raises(gc.GraphcError, match=r"^add_param_group: the group's parameter 2 "
                                             r"is this optimizer's 1 already"):
        bound.add_param_group({"params": [layer.weight]})
    assert list(bound.parameters) == ["0", "1"]


def test_one_tensor_given_as_params_is_the_one_parameter_as_torchs_add_param_group():
    """torch's add_param_group({"params": tensor}) takes the tensor as [tensor]; graphc's
    (and bind(tensor)) iterated it, each row a Tensor copy taken for a parameter: step()
    updated the copies and the tensor stayed as it was, without a word (review r9)."""
    w, v = gc.nn.Parameter(np.ones(2)), gc.nn.Parameter(np.ones(3))
    tw, tv = (torch.ones(n, dtype=torch.float64, requires_grad=True) for n in (2, 3))
    bound, theirs = optim.SGD(lr=0.1).bind([w]), torch.optim.SGD([tw], lr=0.1)
    bound.add_param_group({"params": v})
    theirs.add_param_group({"params": tv})
    assert list(bound.parameters) == ["0", "1"] and bound.parameters["1"] is v
    w.grad, v.grad = np.ones(2), np.ones(3)
    tw.grad, tv.grad = torch.ones_like(tw), torch.ones_like(tv)
    bound.step()
    theirs.step()
    np.testing.assert_allclose(v.data, tv.detach().numpy(), rtol=1e-15)
    alone = optim.SGD(lr=0.1).bind(v)
    assert list(alone.parameters) == ["0"] and alone.parameters["0"] is v
    alone.step()
    np.testing.assert_allclose(v.data, np.full(3, 0.8), rtol=1e-15)


def test_the_functional_count_is_shared_where_bind_keeps_one_per_parameter():
    """The functional update keeps one count (optax's): a parameter without a gradient at the
    first step has its first Adam update bias-corrected as the second (t = 2), where bind()
    corrects it as its own first, as torch's (the README's documented difference)."""
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    params = {"a": np.ones(2), "b": np.full(2, 2.0)}
    h = np.array([0.5, -3.0])
    opt = optim.Adam(lr=lr, betas=(b1, b2), eps=eps)
    state = opt.init(params)
    params, state = opt.update({"a": np.ones(2), "b": None}, state, params)
    params, state = opt.update({"a": np.ones(2), "b": h}, state, params)

    def first_update(t):  # b's first update, bias-corrected as update t
        m, v = (1 - b1) * h, (1 - b2) * h * h
        return 2.0 - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    np.testing.assert_allclose(params["b"], first_update(2), rtol=1e-15)
    ps = {k: gc.nn.Parameter(v) for k, v in {"a": np.ones(2), "b": np.full(2, 2.0)}.items()}
    bound = optim.Adam(lr=lr, betas=(b1, b2), eps=eps).bind(ps)
    for gb in (None, h):
        ps["a"].grad, ps["b"].grad = np.ones(2), gb
        bound.step()
    np.testing.assert_allclose(ps["b"].data, first_update(1), rtol=1e-15)
    assert abs(first_update(1) - first_update(2)).max() > 1e-3


@pytest.mark.parametrize("name, settings, flips", [
    ("Adam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True), []),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True), [3, 6]),
    ("AdamW", dict(lr=0.05, weight_decay=0.1), [2, 5])])
def test_adams_decoupled_weight_decay_as_torch(name, settings, flips):
    """torch's Adam(decoupled_weight_decay=True) (AdamW's update) was a TypeError, and
    `group["decoupled_weight_decay"]` of Adam's or AdamW's a KeyError. Now the flag is
    Adam's keyword and its and AdamW's param_groups key (flipped at `flips`, through a
    state_dict round trip): torch's values in float64, bound and in a compiled gc.Trainer."""
    rng = np.random.default_rng(2)
    start = rng.normal(size=4)
    grads = [rng.normal(size=4) for _ in range(8)]
    t = torch.tensor(start.copy(), requires_grad=True)
    theirs = getattr(torch.optim, name)([t], **settings)
    ps = {"w": gc.nn.Parameter(start.copy())}
    bound = getattr(optim, name)(**settings).bind(ps)
    for i, g in enumerate(grads):
        if i in flips:
            for group in (theirs.param_groups[0], bound.param_groups[0]):
                group["decoupled_weight_decay"] = not group["decoupled_weight_decay"]
        t.grad, ps["w"].grad = torch.tensor(g), g
        theirs.step()
        bound.step()
        if i == 4:
            saved = bound.state_dict()
            bound = getattr(optim, name)(**settings).bind(ps)
            bound.load_state_dict(saved)
    np.testing.assert_allclose(ps["w"].data, t.detach().numpy(), rtol=0, atol=1e-14)
    assert bound.optimizer.decoupled is theirs.param_groups[0]["decoupled_weight_decay"]
    if not flips:
        trainer = _trained(getattr(optim, name)(**settings), {"w": start},
                           [{"w": g} for g in grads])
        np.testing.assert_allclose(trainer.params["w"], t.detach().numpy(), rtol=0,
                                   atol=1e-14)


def test_load_state_dict_refuses_a_flag_that_is_not_a_bool_before_anything_changes():
    bound = optim.SGD(lr=0.1, momentum=0.9).bind({"w": gc.nn.Parameter(np.zeros(3))})
    saved = bound.state_dict()
    assert saved["settings"]["nesterov"] is False and saved["settings"]["maximize"] is False
    bad = {**saved, "state": {**saved["state"], "count": np.asarray(7)},
           "settings": {**saved["settings"], "nesterov": 1}}
    with pytest.raises(gc.GraphcError, match="^load_state_dict: the setting nesterov must be "
                                             "True or False, got 1\n"):
        bound.load_state_dict(bad)
    assert int(bound.state["count"]) == 0 and bound.optimizer.nesterov is False


def test_constant_and_multistep_gamma_check_their_numbers_as_lr_does():
    """gc.optim.constant(-0.1) reached the optimiser unchecked (SGD(lr=constant(-0.1)) made
    gradient ascent, where SGD(lr=-0.1) is refused), constant(nan) made NaN parameters and
    constant("a") was float()'s ValueError; multistep's negative gamma was refused as
    piecewise_constant's scale, naming neither multistep nor gamma. Each is one line now."""
    cases = [(lambda: optim.constant(-0.1),
              r"^constant: lr must be a finite number >= 0, got -0.1\n"),
             (lambda: optim.constant(float("nan")),
              r"^constant: lr must be a finite number >= 0, got nan\n"),
             (lambda: optim.constant("a"), r"^constant: lr must be a finite number >= 0, "
                                           r"got 'a'"),
             (lambda: optim.SGD(lr=optim.constant(-0.1)), r"^constant: lr must be"),
             (lambda: optim.multistep(0.1, [1], -0.5),
              r"^multistep: gamma must be a finite number >= 0, got -0.5\n")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message) as info:
            make()
        assert "test_optim_extra.py" in str(info.value).splitlines()[1]
    # the numbers they take are unchanged: one SGD step at constant(0.1) is torch's at 0.1
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    p.grad = torch.tensor([0.5, 3.0], dtype=torch.float64)
    torch.optim.SGD([p], lr=0.1).step()
    opt = optim.SGD(lr=optim.constant(np.float64(0.1)))  # (a numpy number too)
    new, _ = opt.update({"w": np.array([0.5, 3.0])}, opt.init({"w": np.array([1.0, -2.0])}),
                        {"w": np.array([1.0, -2.0])})
    np.testing.assert_allclose(new["w"], p.detach().numpy(), rtol=1e-15)
    assert optim.constant(0.1) == 0.1 and optim.constant(0)(5) == 0.0
    assert optim.multistep(1.0, [2], 0.0)(2) == 0.0  # gamma 0, as torch's, is taken


def test_learning_rates_follow_one_rule_and_overflows_are_one_line():
    """SGD(lr=True) and SGD(lr=np.asarray(0.1)) were refused while constant() took both (two
    rules); a 0-d array or tensor lr is taken as torch takes a tensor lr, a bool refused
    everywhere. lr=10**400 was float()'s raw OverflowError, multistep(gamma=1e200) at a
    milestone given twice float pow's, and global_norm of integer leaves named the op
    inside ('sum_squares(i64[2])'): each is one line naming the call and the argument."""
    # a 0-d array lr: one SGD step is torch's at lr=0.1
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    p.grad = torch.tensor([0.5, 3.0], dtype=torch.float64)
    torch.optim.SGD([p], lr=torch.tensor(0.1, dtype=torch.float64)).step()
    for opt in (optim.SGD(lr=np.asarray(0.1)), optim.SGD(lr=optim.constant(np.asarray(0.1)))):
        assert opt.lr == 0.1
        new, _ = opt.update({"w": np.array([0.5, 3.0])}, opt.init({"w": np.array([1.0, -2.0])}),
                            {"w": np.array([1.0, -2.0])})
        np.testing.assert_allclose(new["w"], p.detach().numpy(), rtol=1e-15)
    updates, _ = optim.sgd(np.asarray(0.5)).update({"w": np.array([2.0])},
                                                  optim.sgd(0.5).init({"w": np.zeros(1)}))
    np.testing.assert_array_equal(updates["w"], [-1.0])

    def set_lr(value):
        optim.SGD(lr=0.1).lr = value

    big = "got an integer of 401 digits, past float64's range"
    cases = [(lambda: optim.SGD(lr=True), r"^SGD: lr must be a number >= 0 or a schedule "
                                          r"\(a function of the step count\), got True\n"),
             (lambda: optim.SGD(lr=np.asarray(True)), r"^SGD: lr must be .*, got array\(True\)"),
             (lambda: optim.Adam(lr=torch.tensor(True)), r"^Adam: lr must be .*got tensor"),
             (lambda: set_lr(np.bool_(True)), r"^SGD: lr must be a number >= 0"),
             (lambda: optim.constant(True), r"^constant: lr must be a finite number >= 0, "
                                            r"got True\n"),
             (lambda: optim.sgd(True), r"^gc.optim.sgd: learning_rate must be .*, got True"),
             (lambda: optim.SGD(lr=10 ** 400), rf"^SGD: lr must be .*, {big}\n"),
             (lambda: optim.constant(10 ** 400), rf"^constant: lr must be .*, {big}\n"),
             (lambda: optim.adam(10 ** 400), rf"^gc.optim.adam: learning_rate .*, {big}\n"),
             (lambda: optim.SGD(lr=0.1, momentum=10 ** 400),
              rf"^SGD: momentum must be a finite number, {big}\n"),
             (lambda: optim.multistep(0.1, [5, 5], gamma=1e200),
              r"^multistep: gamma=1e\+200 takes the learning rate past float64's range at "
              r"milestone 5 \(0.1 \* 1e\+200 \*\* 2\)\n"),
             (lambda: optim.multistep(1.0, [5, 10], gamma=1e200), r"^multistep: gamma=1e\+200 "
                                                                  r"takes .* at milestone 10 "),
             (lambda: optim.multistep(-1.0, [5], gamma=0.5),
              r"^multistep: init_value must be a finite number >= 0, got -1.0\n"),
             (lambda: optim.global_norm({"w": np.array([1.0]), "n": np.array([1, 2])}),
              r"^global_norm: the gradient of parameter 'n' has dtype int64; a gradient must "
              r"be floating-point\n"),
             (lambda: optim.global_norm(np.array([True])),
              r"^global_norm: the gradient has dtype bool; a gradient must be floating-point\n"),
             (lambda: optim.clip_by_global_norm({"a": {"b": np.arange(3)}}, 1.0),
              r"^clip_by_global_norm: the gradient of parameter 'a.b' has dtype int64")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message) as info:
            make()
        assert "test_optim_extra.py" in str(info.value).splitlines()[1]
    # what they still take: multistep's torch values, the global norm of float leaves
    assert [optim.multistep(0.1, [2, 2, 4], gamma=0.5)(k) for k in (1, 2, 4)] == \
        [0.1, 0.1 * 0.25, 0.1 * 0.125]
    np.testing.assert_allclose(optim.global_norm({"a": np.array([3.0]), "b": np.array([4.0]),
                                                  "c": None}), 5.0)


def test_schedule_lrs_refuse_a_bool_and_betas_and_global_norm_leaves_are_one_line():
    # each schedule's learning rate follows lr='s rule: True was an lr of 1.0 (a 0-d bool
    # array or tensor too); its other numbers (gamma, alpha, ...) keep the layers' rule
    lrs = [(lambda v: optim.multistep(v, [2]), "multistep: init_value"),
           (lambda v: optim.linear_warmup(v, 5), "linear_warmup: peak"),
           (lambda v: optim.cosine(v, 10), "cosine: peak"),
           (lambda v: optim.cosine(0.1, 10, min_lr=v), "cosine: min_lr"),
           (lambda v: optim.exponential_decay(v, 2, 0.5), "exponential_decay: init_value"),
           (lambda v: optim.exponential_decay(1.0, 2, 0.5, end_value=v),
            "exponential_decay: end_value"),
           (lambda v: optim.warmup_cosine_decay(0.0, v, 1, 5), "warmup_cosine_decay: peak_value"),
           (lambda v: optim.one_cycle(v, 10), "one_cycle: max_lr"),
           (lambda v: optim.piecewise_constant(v), "piecewise_constant: init_value"),
           (lambda v: optim.polynomial_decay(v, 0.0, 1.0, 5), "polynomial_decay: init_value"),
           (lambda v: optim.linear_schedule(0.1, v, 5), "linear_schedule: end_value"),
           (lambda v: optim.linear_lr(v), "linear_lr: base_lr"),
           (lambda v: optim.cosine_decay_schedule(v, 10), "cosine_decay_schedule: init_value"),
           (lambda v: optim.cosine_warm_restarts(0.1, 10, eta_min=v),
            "cosine_warm_restarts: eta_min")]
    for make, name in lrs:
        for flag in (True, np.bool_(True), torch.tensor(True)):
            with pytest.raises(gc.GraphcError, match=rf"^{name} must be a finite number >= 0, "
                               r"got (True|np.True_|tensor\(True\))\n"):
                make(flag)
        make(0.5), make(np.asarray(0.5))  # (numbers, 0-d arrays: taken)
    assert optim.multistep(0.1, [2], gamma=True)(3) == 0.1  # (a factor: the layers' rule)
    big = "got an integer of 401 digits, past float64's range"
    cases = [(lambda: optim.Adam(betas=(10 ** 400, 0.9)), rf"^Adam: beta1 must be a finite "
                                                           rf"number, {big}\n"),
             (lambda: optim.AdamW(betas=(0.9, 10 ** 400)), rf"^AdamW: beta2 .*, {big}\n"),
             (lambda: optim.global_norm({"a": torch.tensor([1, 2])}),
              r"^global_norm: the gradient of parameter 'a' is a torch.Tensor, another "
              r"library's array; pass numpy arrays or gc tensors \(x.numpy\(\), or "
              r"np.asarray\(x\)\)\n"),
             (lambda: optim.global_norm(torch.tensor([3.0, 4.0])),
              r"^global_norm: the gradient is a torch.Tensor, another library's array"),
             (lambda: optim.clip_by_global_norm({"w": np.ones(2), "b": torch.ones(2)}, 1.0),
              r"^clip_by_global_norm: the gradient of parameter 'b' is a torch.Tensor"),
             (lambda: optim.global_norm({"a": "x"}),
              r"^global_norm: the gradient of parameter 'a' is a str, not an array or a "
              r"number\n")]
    for make, message in cases:
        with pytest.raises(gc.GraphcError, match=message) as info:
            make()
        assert "test_optim_extra.py" in str(info.value).splitlines()[1]
    np.testing.assert_allclose(optim.global_norm({"a": torch.tensor([3.0, 4.0]).numpy()}), 5.0)


def test_review_r2_the_lr_rule_holds_under_a_plateau_in_update_and_for_its_start():
    """Review r2 of 32a2b43: once lr= took a 0-d array or tensor, `opt.lr = np.asarray(0.3)`
    under a ReduceLROnPlateau replaced the plateau by a constant without a word (a float
    went on from the plateau); update(lr=True) was taken as 1.0 (lr= refuses a bool),
    update(lr=torch.tensor(0.5)) was cast's refusal, and ReduceLROnPlateau(np.asarray(0.1))
    was refused, ReduceLROnPlateau(10**400) float()'s raw OverflowError."""
    for value in (0.3, np.asarray(0.3), torch.tensor(0.3, dtype=torch.float64)):
        opt = gc.optim.SGD(lr=0.1)
        plateau = gc.optim.ReduceLROnPlateau(opt)
        opt.lr = value
        assert opt.lr is plateau and plateau.lr == 0.3
    with pytest.raises(gc.GraphcError, match=r"^SGD: lr must be a number >= 0 .*got True\n"):
        opt.lr = True
    params, grads = {"w": np.ones(2, np.float32)}, {"w": np.ones(2, np.float32)}
    opt = gc.optim.SGD(lr=0.1)
    state = opt.init(params)
    for bad in (True, np.bool_(True), 10**400, -1.0):
        with pytest.raises(gc.GraphcError, match=r"^SGD.update: lr must be a finite number >= 0, "
                                                 r"got [^\n]*\n[^\n]*test_optim_extra"):
            opt.update(grads, state, params, lr=bad)
    for lr in (0.5, np.asarray(0.5), torch.tensor(0.5)):
        np.testing.assert_array_equal(opt.update(grads, state, params, lr=lr)[0]["w"],
                                      np.full(2, 0.5, np.float32))
    assert gc.optim.ReduceLROnPlateau(np.asarray(0.25)).lr == 0.25
    for bad in (10**400, True, "0.1"):
        with pytest.raises(gc.GraphcError, match=r"^ReduceLROnPlateau: optimizer must be an "
                                                 r"optimizer or a starting lr"):
            gc.optim.ReduceLROnPlateau(bad)
