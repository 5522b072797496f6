"""torch.nn.functional's other losses and distances (ir/ops/losses.py), softplus with beta and
threshold, and their modules (graphc/loss_layers.py): values and gradients (w.r.t. input and
target) against torch in float64 for every reduction, eagerly (the tape), traced (gc.grad)
and compiled, at the edges too (probabilities 0 and 1, logits of +-1e3, zero vectors, zero
targets). tests/opcases.py gives each function finite-difference gradient, Hessian-vector,
vmap and half-precision checks."""
import inspect
import warnings

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(0)
REDUCTIONS = ["none", "sum", "mean"]


def theirs(fn, args, wrt, cotangent):
    """torch's value of fn(*args) and its gradients w.r.t. the positions `wrt`, the output
    weighted by `cotangent`."""
    ts = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(args)]
    out = fn(*ts)
    grads = torch.autograd.grad(out, [ts[i] for i in wrt], torch.tensor(cotangent))
    return out.detach().numpy(), [g.numpy() for g in grads]


def ours(fn, args, wrt, cotangent):
    """fn's value and gradients eagerly (the tape), traced (gc.grad) and compiled: the three
    agree, and the first is returned."""
    def loss(*a):
        return gc.sum(gc.mul(fn(*a), cotangent))
    tensors = [gc.tensor(a, requires_grad=i in wrt) for i, a in enumerate(args)]
    value = fn(*tensors)
    loss(*tensors).backward()
    tape = [tensors[i].grad for i in wrt]
    traced = gc.grad(loss, argnums=tuple(wrt))(*args)
    compiled_value = gc.compile(fn)(*args)
    compiled = gc.compile(gc.grad(loss, argnums=tuple(wrt)))(*args)
    def close(x):  # an entry that cancels to ~1e-16 (a gradient that is 0 in exact
        # arithmetic, from O(1) inputs) is rounding, whose bits differ with the kernels'
        # summation order (machines with other vector units): relative to the array's scale
        scale = np.nanmax(np.abs(np.where(np.isinf(x), np.nan, x)), initial=0.0)
        return dict(rtol=1e-13, atol=1e-13 * max(scale, 1.0), equal_nan=True)
    np.testing.assert_allclose(compiled_value, np.asarray(value), **close(np.asarray(value)))
    for a, b, c in zip(tape, traced, compiled):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), **close(np.asarray(a)))
        np.testing.assert_allclose(np.asarray(c), np.asarray(a), **close(np.asarray(a)))
    return np.asarray(value), [np.asarray(g) for g in tape]


def check(our_fn, their_fn, args, wrt=(0, 1), rtol=1e-12, atol=1e-14, grads=None):
    """Our values and gradients are torch's (grads: the positions of `wrt` to compare, all
    by default)."""
    shape = np.shape(their_fn(*[torch.tensor(a) for a in args]).detach().numpy())
    cotangent = RNG.uniform(0.5, 1.5, shape)
    want, want_grads = theirs(their_fn, args, wrt, cotangent)
    got, got_grads = ours(our_fn, args, wrt, cotangent)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    for k, (g, w) in enumerate(zip(got_grads, want_grads)):
        if grads is None or k in grads:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"gradient {k}")
    return got, got_grads, want_grads, cotangent


def probabilities(*shape):
    return RNG.uniform(0.02, 0.98, shape)


# ---- binary cross-entropy --------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (5,), (4, 1), (4, 5)])
def test_binary_cross_entropy_matches_torch(reduction, weight_shape):
    x, t = probabilities(4, 5), probabilities(4, 5)
    w = None if weight_shape is None else RNG.uniform(0.5, 2.0, weight_shape)
    check(lambda x, t: gc.binary_cross_entropy(x, t, w, reduction),
          lambda x, t: TF.binary_cross_entropy(x, t, None if w is None else torch.tensor(w),
                                               reduction=reduction), [x, t])


def test_binary_cross_entropy_at_probabilities_zero_and_one():
    """torch's clamped logs (a certain wrong answer costs 100) and its gradient (x - t) /
    max(x (1 - x), 1e-12): 0 where x equals a 0/1 target, about +-1e12 where it is wrong."""
    x = np.array([0.0, 0.0, 1.0, 1.0, 1e-13, 1 - 1e-13, 1e-50, 0.0, 1.0, 0.3, 1e-12])
    t = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.4, 0.6, 0.3, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a probability of 0 or 1 is input, not a warning
        got, ours_g, theirs_g, c = check(
            lambda x, t: gc.binary_cross_entropy(x, t, reduction="none"),
            lambda x, t: TF.binary_cross_entropy(x, t, reduction="none"), [x, t], grads=(0,))
    assert got[1] == got[2] == 100.0 and got[0] == got[3] == 0.0
    eps = float(np.float32(1e-12))  # torch's EPSILON, a C++ float
    np.testing.assert_allclose(ours_g[0][:4] / c[:4], [0.0, -1 / eps, 1 / eps, 0.0],
                               rtol=1e-15)
    # w.r.t. target: log(1 - x) - log(x), torch's where no log is clamped; where one is
    # (x = 0, 1 or below e^-100) graphc gives the clamped logs' difference, +-100 (the slope
    # of the value it returns), torch the unclamped one (+-inf, 115 at 1e-50)
    clamped = (x == 0) | (x == 1) | (x < 1e-44)
    np.testing.assert_allclose(ours_g[1][~clamped], theirs_g[1][~clamped], rtol=1e-12)
    np.testing.assert_allclose(ours_g[1][clamped] / c[clamped],
                               [100.0, 100.0, -100.0, -100.0, 100.0, 100.0, -100.0], rtol=1e-15)
    assert np.all(np.sign(theirs_g[1][clamped]) == np.sign(ours_g[1][clamped]))


def test_binary_cross_entropy_outside_zero_one_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log of a negative number
        out = np.asarray(gc.binary_cross_entropy(np.array([1.5, -0.5, 0.5]),
                                                 np.array([0.5, 0.5, 0.5]), reduction="none"))
    assert np.isnan(out[:2]).all() and np.isfinite(out[2])  # torch raises


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both", "row"])
def test_binary_cross_entropy_with_logits_matches_torch(reduction, weights):
    x = RNG.normal(0, 3, (4, 5))
    x[0, :4] = [1e3, -1e3, 1e3, -1e3]  # stable: no exp overflow, no NaN gradient
    t = probabilities(4, 5)
    t[0, :4] = [0.0, 1.0, 1.0, 0.0]
    w = RNG.uniform(0.5, 2.0, (4, 1) if weights == "row" else (5,))
    pw = RNG.uniform(0.5, 3.0, (5,))
    kw = {"weight": w if weights in ("weight", "both", "row") else None,
          "pos_weight": pw if weights in ("pos_weight", "both") else None}
    tkw = {k: None if v is None else torch.tensor(v) for k, v in kw.items()}
    got = check(lambda x, t: gc.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                                        **kw),
                      lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                                       **tkw), [x, t])[0]
    assert np.isfinite(got).all()


# ---- regression losses -----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_shape", [(4, 5), (5,), (4, 1)])
def test_l1_smooth_l1_and_huber_match_torch_with_broadcasting(reduction, target_shape):
    x, t = RNG.normal(size=(4, 5)), RNG.normal(size=target_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the broadcast target
        check(lambda x, t: gc.l1_loss(x, t, reduction),
              lambda x, t: TF.l1_loss(x, t, reduction=reduction), [x, t])
        for beta in (1.0, 0.3, 0.0):
            check(lambda x, t: gc.smooth_l1_loss(x, t, reduction, beta),
                  lambda x, t: TF.smooth_l1_loss(x, t, reduction=reduction, beta=beta), [x, t])
        for delta in (1.0, 0.3, 2.5):
            check(lambda x, t: gc.huber_loss(x, t, reduction, delta),
                  lambda x, t: TF.huber_loss(x, t, reduction=reduction, delta=delta), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_l1_mse_and_huber_losses_match_torch(reduction):
    """torch's weighted mean: over sum(weight) for l1_loss and mse_loss, over the count for
    huber_loss. mse_loss took no weight (nor torch's keyword `input`)."""
    x, t, w = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5)), RNG.uniform(0.1, 2, (4, 5))
    check(lambda x, t: gc.l1_loss(x, t, reduction, w),
          lambda x, t: TF.l1_loss(x, t, reduction=reduction, weight=torch.tensor(w)), [x, t])
    check(lambda x, t: gc.mse_loss(input=x, target=t, reduction=reduction, weight=w),
          lambda x, t: TF.mse_loss(x, t, reduction=reduction, weight=torch.tensor(w)), [x, t])
    # the target broadcast, the weight of input's shape, as torch's (which warns of it)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using a target size", UserWarning)
        check(lambda x, t: gc.mse_loss(x, t, reduction, w[:, :1]),
              lambda x, t: TF.mse_loss(x, t, reduction=reduction,
                                       weight=torch.tensor(w[:, :1])), [x[:, :1], t[:1]])
    check(lambda x, t: gc.huber_loss(x, t, reduction, 0.5, w),
          lambda x, t: TF.huber_loss(x, t, reduction=reduction, delta=0.5,
                                     weight=torch.tensor(w)), [x, t])


def test_regression_losses_at_their_kinks_and_far_out():
    """At d = 0 and |d| = beta (delta) the gradient is torch's; d = +-inf gives a finite one
    (the quadratic piece is not fed the infinite difference)."""
    d = np.array([-np.inf, -1e3, -0.5, -0.3, 0.0, 0.3, 0.5, 1e3, np.inf])
    x, t = d + 0.25, np.full_like(d, 0.25)
    x[[0, -1]] = d[[0, -1]]
    for ours_fn, their_fn in [
            (lambda x, t: gc.l1_loss(x, t, "none"),
             lambda x, t: TF.l1_loss(x, t, reduction="none")),
            (lambda x, t: gc.smooth_l1_loss(x, t, "none", 0.5),
             lambda x, t: TF.smooth_l1_loss(x, t, reduction="none", beta=0.5)),
            (lambda x, t: gc.huber_loss(x, t, "none", 0.3),
             lambda x, t: TF.huber_loss(x, t, reduction="none", delta=0.3))]:
        assert np.isfinite(check(ours_fn, their_fn, [x, t])[1][0]).all()


# ---- KL divergence ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    logits = RNG.normal(size=(4, 5))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = RNG.dirichlet(np.ones(5), 4)
    if not log_target:  # (a log_target of -inf is NaN, torch's 0 * -inf, in both)
        q[0, 1] = q[2, 3] = 0.0  # torch's 0 * log 0 = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warning about 'mean'
        got, ours_g, theirs_g, _ = check(
            lambda a, b: gc.kl_div(a, b, reduction, log_target),
            lambda a, b: TF.kl_div(a, b, reduction=reduction, log_target=log_target),
            [logp, np.log(q) if log_target else q], grads=(0,) if not log_target else None)
    if not log_target:
        # w.r.t. target: log(t) + 1 - input, torch's, where t > 0; at t == 0 torch's is NaN
        # (xlogy's), graphc's -input (the 0 * log 0 term taken as constant 0)
        zero = q == 0
        np.testing.assert_allclose(ours_g[1][~zero], theirs_g[1][~zero], rtol=1e-12)
        assert np.isnan(theirs_g[1][zero]).all() and np.isfinite(ours_g[1]).all()
    assert np.isfinite(got).all()


def test_kl_div_broadcasts_and_its_batchmean_divides_by_the_input_rows():
    a, b = np.log(probabilities(1, 5)), probabilities(3, 1)
    for reduction in ("none", "batchmean", "mean"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check(lambda a, b: gc.kl_div(a, b, reduction),
                  lambda a, b: TF.kl_div(a, b, reduction=reduction), [a, b])
    check(lambda a, b: gc.kl_div(a, b, "batchmean"),
          lambda a, b: TF.kl_div(a, b, reduction="batchmean"), [np.float64(-1.0),
                                                                  np.float64(0.5)])


def test_kl_div_batchmean_with_a_symbolic_batch():
    f = gc.compile(lambda a, b: gc.kl_div(a, b, "batchmean"),
                   polymorphic_shapes=(("b", "_"), ("b", "_")))
    for rows in (2, 7):
        a, b = np.log(probabilities(rows, 5)), probabilities(rows, 5)
        want = TF.kl_div(torch.tensor(a), torch.tensor(b), reduction="batchmean").numpy()
        np.testing.assert_allclose(f(a, b), want, rtol=1e-13)


# ---- vectors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes,dim", [(((4, 5), (4, 5)), 1), (((4, 5), (5,)), -1),
                                        (((4, 5), (5,)), 0), (((2, 1, 5), (3, 5)), 2),
                                        (((), ()), 0)])
def test_cosine_similarity_matches_torch(shapes, dim):
    a, b = RNG.normal(size=shapes[0]), RNG.normal(size=shapes[1])
    check(lambda a, b: gc.cosine_similarity(a, b, dim),
          lambda a, b: TF.cosine_similarity(a, b, dim=dim), [a, b])


def test_cosine_similarity_of_zero_and_tiny_vectors():
    """Each norm clamped to eps on its own (torch 2's formula): a zero vector gives 0 and the
    gradient x2 / (|x2| eps); the clamp, torch's no_grad one, passes the norm's gradient."""
    a = np.array([[0.0, 0.0, 0.0], [1e-9, 0.0, 2e-9], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    b = np.array([[1.0, 2.0, -1.0], [1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [1e-12, 0.0, 0.0]])
    got = check(lambda a, b: gc.cosine_similarity(a, b),
                lambda a, b: TF.cosine_similarity(a, b), [a, b], rtol=1e-11)[0]
    assert got[0] == got[2] == 0.0
    check(lambda a, b: gc.cosine_similarity(a, b, eps=0.5),
          lambda a, b: TF.cosine_similarity(a, b, eps=0.5), [a * 0.1, b], rtol=1e-11)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, np.inf])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_normalize_matches_torch_with_zero_vectors(p, dim):
    x = RNG.normal(size=(4, 5))
    x[1] = 0.0
    x[:, 2] = 0.0
    x[3, 3] = 1e-13
    check(lambda x: gc.normalize(x, p, dim), lambda x: TF.normalize(x, p, dim), [x], wrt=(0,))


def test_normalize_of_a_scalar_and_ties_under_the_max_norm():
    check(lambda x: gc.normalize(x, dim=0), lambda x: TF.normalize(x, dim=0),
          [np.float64(-2.0)], wrt=(0,))
    check(lambda x: gc.normalize(x, np.inf, 0), lambda x: TF.normalize(x, float("inf"), 0),
          [np.array([3.0, -3.0, 1.0])], wrt=(0,))  # the tie shares the max's gradient


@pytest.mark.parametrize("p,eps,keepdim", [(2.0, 1e-6, False), (1.0, 1e-6, True),
                                           (np.inf, 0.0, False), (3.0, 0.0, True)])
def test_pairwise_distance_matches_torch(p, eps, keepdim):
    a, b = RNG.normal(size=(4, 5)), RNG.normal(size=(5,))
    a[1] = b  # equal rows: the distance is |eps| and, with eps = 0, the gradient 0
    check(lambda a, b: gc.pairwise_distance(a, b, p, eps, keepdim),
          lambda a, b: TF.pairwise_distance(a, b, p, eps, keepdim), [a, b])
    check(lambda a, b: gc.pairwise_distance(a, b, p, eps),
          lambda a, b: TF.pairwise_distance(a, b, p, eps), [np.float64(1.0), np.float64(3.0)])


def test_cosine_similarity_of_integers_and_distances_of_bools_are_refused_as_torchs():
    """cosine_similarity of integer (or bool) operands alone computed in float32 where
    torch's refuses them ("expected common dtype to be floating point"), in and out of
    autocast; pairwise_distance and triplet_margin_loss of bools computed where torch's
    x1 - x2 refuses two bools. Each is now one line naming the function, eager and compiled;
    pairwise_distance of integers still computes (torch's does: float32), and the floats the
    line asks for give torch's value."""
    a = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    b = np.array([[1, 0, 1], [2, 2, 2]], np.int32)
    cases = [(gc.cosine_similarity, TF.cosine_similarity, (a, a[::-1].copy()),
              "cosine_similarity: x1 and x2 are int64; torch's cosine_similarity takes no "
              "integers alone either: cast them to a float dtype (.astype)"),
             (gc.cosine_similarity, TF.cosine_similarity, (a.astype(np.int32), b.astype(bool)),
              "cosine_similarity: x1 and x2 are int32 and bool; torch's cosine_similarity "
              "takes no integers alone either: cast them to a float dtype (.astype)"),
             (gc.pairwise_distance, TF.pairwise_distance, (a > 2, b > 0),
              "pairwise_distance: x1 and x2 are bool; torch's pairwise_distance subtracts "
              "them, which takes no bools: cast them to a number dtype (.astype)"),
             (gc.triplet_margin_loss, TF.triplet_margin_loss, (a > 2, b > 0, a > 4),
              "triplet_margin_loss: anchor, positive and negative are bool; torch's "
              "triplet_margin_loss subtracts them, which takes no bools: cast them to a "
              "number dtype (.astype)")]
    for ours, theirs, given, line in cases:
        with pytest.raises((RuntimeError, TypeError)):
            theirs(*map(torch.tensor, given))
        for mode in (None, "bfloat16"):
            for run in (ours, gc.compile(ours)):
                with gc.autocast(mode):
                    assert_one_line_error(lambda: run(*given), line, "test_losses.py")
        floats = [x.astype(np.float64) for x in given]
        np.testing.assert_allclose(np.asarray(ours(*floats)),
                                   theirs(*map(torch.tensor, floats)).numpy(), rtol=1e-12)
    want = TF.pairwise_distance(torch.tensor(a), torch.tensor(a[::-1].copy()))
    got = gc.pairwise_distance(a, a[::-1])
    assert got.dtype == np.float32 and want.dtype == torch.float32
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)


# ---- softplus and logsigmoid -----------------------------------------------------------------
@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0), (-1.0, 20.0)])
def test_softplus_beta_and_threshold_match_torch(beta, threshold):
    x = np.array([-1e3, -30.0, -1.0, 0.0, 0.5, 2.0, 2.5, 3.0, 19.0, 20.0, 21.0, 40.0, 1e3])
    x = np.concatenate([x, [threshold / beta]])  # at the switch: still the smooth piece
    check(lambda x: gc.softplus(x, beta, threshold),
          lambda x: TF.softplus(x, beta, threshold), [x], wrt=(0,), rtol=1e-14, atol=1e-15)


def test_logsigmoid_is_log_sigmoid_and_torchs():
    assert gc.logsigmoid is gc.log_sigmoid
    x = np.array([-1e3, -40.0, -1.0, 0.0, 1.0, 40.0, 1e3])
    check(gc.logsigmoid, TF.logsigmoid, [x], wrt=(0,), rtol=1e-14, atol=1e-15)


# ---- modules ---------------------------------------------------------------------------------
def test_modules_compute_their_functions_and_guard_their_settings():
    x, t, w = probabilities(3, 4), probabilities(3, 4), RNG.uniform(0.5, 2, (4,))
    logits = RNG.normal(size=(3, 4))
    tw = torch.tensor(w)
    pairs = [
        (gc.nn.BCELoss(w, reduction="sum"), torch.nn.BCELoss(tw, reduction="sum"), x),
        (gc.nn.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=tw),
         logits),
        (gc.nn.L1Loss(), torch.nn.L1Loss(), logits),
        (gc.nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), logits),
        (gc.nn.HuberLoss("none", 0.4), torch.nn.HuberLoss("none", 0.4), logits),
        (gc.nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"),
         logits),
        (gc.nn.CosineSimilarity(0), torch.nn.CosineSimilarity(0), logits),
        (gc.nn.PairwiseDistance(1.0, keepdim=True), torch.nn.PairwiseDistance(1.0,
                                                                              keepdim=True),
         logits)]
    for module, their_module, operand in pairs:
        want = their_module(torch.tensor(operand), torch.tensor(t)).numpy()
        np.testing.assert_allclose(module(operand, t), want, rtol=1e-13,
                                   err_msg=type(module).__name__)
        np.testing.assert_allclose(gc.compile(lambda a, b: module(a, b))(operand, t), want,
                                   rtol=1e-13, err_msg=type(module).__name__)
    for module, their_module in [(gc.nn.Softplus(2.0, 1.0), torch.nn.Softplus(2.0, 1.0)),
                                 (gc.nn.LogSigmoid(), torch.nn.LogSigmoid())]:
        np.testing.assert_allclose(module(logits), their_module(torch.tensor(logits)).numpy(),
                                   rtol=1e-14)
    loss = gc.nn.HuberLoss()
    f = gc.compile(lambda a, b: loss(a, b))
    first = np.asarray(f(logits, t))
    loss.delta, loss.reduction = 0.1, "sum"  # a plan traced with the old settings is not reused
    np.testing.assert_allclose(f(logits, t), TF.huber_loss(
        torch.tensor(logits), torch.tensor(t), reduction="sum", delta=0.1).numpy(), rtol=1e-13)
    assert not np.allclose(first, np.asarray(f(logits, t)))


def test_mse_loss_of_numpy_arrays_runs_as_graphc_ops():
    """Two numpy arrays went through numpy's `-`: a numpy array back for 'none', and numpy's
    ValueError for shapes that do not broadcast."""
    a, b = RNG.normal(size=(2, 3)), RNG.normal(size=(3,))
    out = gc.mse_loss(a, b, "none")
    assert isinstance(out, gc.Tensor)
    np.testing.assert_allclose(out, (a - b) ** 2, rtol=1e-15)
    assert_one_line_error(lambda: gc.mse_loss(a, np.ones((3, 3))),
                          "mse_loss: input (2, 3) and target (3, 3) do not broadcast",
                          "test_losses.py")
    assert_one_line_error(lambda: gc.mse_loss(a, b.astype(np.float32)),
                          "mse_loss: input is float64 but target is float32", "test_losses.py")


def test_python_and_numpy_scalar_targets_take_the_input_dtype():
    x = np.array([0.5, -1.0, 2.0], np.float32)
    for target in (0.5, np.float64(0.5)):
        out = gc.l1_loss(x, target, "none")
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, np.abs(x - 0.5))
    assert gc.kl_div(x, np.float32(0.25)).dtype == np.float32


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_losses_under_autocast_take_half_activations_and_float32_targets(half):
    """A half activation (a matmul's result under autocast) meets a float32 target: the ops
    cast them to one dtype, as for mse_loss; a mean is a float32 sum."""
    rng = np.random.default_rng(5)
    x, t = (rng.normal(size=(3, 4)).astype(np.float32),
            rng.uniform(0.02, 0.98, (3, 4)).astype(np.float32))
    eye = np.eye(4, dtype=np.float32)
    calls = {"bce": lambda h, t: gc.binary_cross_entropy(gc.sigmoid(h), t),
             "bce_with_logits": gc.binary_cross_entropy_with_logits, "l1": gc.l1_loss,
             "smooth_l1": gc.smooth_l1_loss, "huber": gc.huber_loss,
             "kl_div": lambda h, t: gc.kl_div(h, t, "batchmean"),
             "cosine": lambda h, t: gc.sum(gc.cosine_similarity(h, t)),
             "pairwise": lambda h, t: gc.sum(gc.pairwise_distance(h, t))}
    for name, loss in calls.items():
        want = float(loss(x, t))

        def f(x, t):
            with gc.autocast(half):
                return loss(gc.matmul(x, eye), t)
        for got in (f(x, t), gc.compile(f)(x, t)):
            # (a few bfloat16 roundings, 8e-3 each, of terms of size 1)
            np.testing.assert_allclose(float(got), want, rtol=3e-2, atol=3e-2, err_msg=name)



# torch.autocast's CPU float32 list (the losses graphc has, each measured with torch 2.13 to
# return float32 from half operands): a loss of the half activation h and float32 operands o
AUTOCAST_FLOAT32_LOSSES = {
    "mse_loss": lambda F, h, o: F.mse_loss(h, o["t"]),
    "l1_loss": lambda F, h, o: F.l1_loss(h, o["t"]),
    "huber_loss": lambda F, h, o: F.huber_loss(h, o["t"], delta=0.5),
    "smooth_l1_loss": lambda F, h, o: F.smooth_l1_loss(h, o["t"], beta=0.5),
    "binary_cross_entropy_with_logits":
        lambda F, h, o: F.binary_cross_entropy_with_logits(h, o["t"], pos_weight=o["w"]),
    "binary_cross_entropy": lambda F, h, o: F.binary_cross_entropy(F.sigmoid(h), o["t"]),
    "soft_margin_loss": lambda F, h, o: F.soft_margin_loss(h, o["s"]),
    "kl_div": lambda F, h, o: F.kl_div(h, o["t"], reduction="batchmean"),
    "cross_entropy": lambda F, h, o: F.cross_entropy(h, o["y"], weight=o["w"]),
    "nll_loss": lambda F, h, o: F.nll_loss(h, o["y"], weight=o["w"]),
    "poisson_nll_loss": lambda F, h, o: F.poisson_nll_loss(h, o["c"]),
    "margin_ranking_loss": lambda F, h, o: F.margin_ranking_loss(h[:, 0], h[:, 1], o["r"]),
    "hinge_embedding_loss": lambda F, h, o: F.hinge_embedding_loss(h, o["s"]),
    "multi_margin_loss": lambda F, h, o: F.multi_margin_loss(h, o["y"], weight=o["w"]),
    "triplet_margin_loss": lambda F, h, o: F.triplet_margin_loss(h, o["t"], o["c"]),
    "cosine_embedding_loss": lambda F, h, o: F.cosine_embedding_loss(h, o["t"], o["r"]),
}


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(AUTOCAST_FLOAT32_LOSSES))
def test_losses_on_torchs_autocast_float32_list_are_float32_under_autocast(name, half):
    """Under autocast these losses of a half activation (a matmul's) were computed and
    returned in half (the primitives' "float32 meets half: half" rule; mse_loss 1.296875 in
    bfloat16 where torch's is 1.2917823): torch.autocast's CPU policy casts their operands to
    float32. The value and the matmul weight's gradient against torch's under autocast,
    eagerly, under gc.value_and_grad and gc.compile(precision=...)."""
    rng = np.random.default_rng(11)
    x, w = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32)
    operands = {"t": rng.uniform(0.05, 0.95, (6, 3)).astype(np.float32),
                "s": np.where(rng.uniform(size=(6, 3)) < 0.5, -1.0, 1.0).astype(np.float32),
                "c": rng.integers(0, 4, (6, 3)).astype(np.float32),
                "r": np.where(rng.uniform(size=6) < 0.5, -1.0, 1.0).astype(np.float32),
                "w": np.array([0.5, 1.5, 2.0], np.float32), "y": rng.integers(0, 3, 6)}
    call = AUTOCAST_FLOAT32_LOSSES[name]
    tw = torch.tensor(w, requires_grad=True)
    with torch.autocast("cpu", dtype=getattr(torch, half)):
        their = call(TF, torch.tensor(x) @ tw, {k: torch.tensor(v) for k, v in operands.items()})
    their.backward()
    assert their.dtype == torch.float32

    def loss(w, x):
        return call(gc, gc.matmul(x, w), operands)
    with gc.autocast(half):
        eager = loss(gc.tensor(w), gc.tensor(x))
        traced = gc.value_and_grad(loss)(w, x)
    precision = {"bfloat16": "bf16-mixed", "float16": "fp16-mixed"}[half]
    compiled = gc.compile(gc.value_and_grad(loss), precision=precision)(w, x)
    assert eager.dtype == np.float32
    np.testing.assert_allclose(float(eager), their.item(), rtol=1e-5, atol=1e-6)
    for value, grad in (traced, compiled):
        assert np.asarray(value).dtype == grad.dtype == np.float32
        np.testing.assert_allclose(float(value), their.item(), rtol=1e-5, atol=1e-6)
        # the cotangent is rounded to half where the matmul's cast casts back (and through
        # binary_cross_entropy's half sigmoid), as torch's: a few half roundings of terms
        # that then cancel in the sum over rows
        scale = np.abs(tw.grad.numpy()).max()
        np.testing.assert_allclose(grad, tw.grad.numpy(), rtol=2 ** -7, atol=2 ** -7 * scale)


def test_autocast_float32_losses_leave_float64_alone_and_retrace_under_a_policy():
    """A float64 loss stays float64 under autocast (torch's leaves float64 alone); a plan of
    a half loss traced outside autocast is not reused under it."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    with gc.autocast("bfloat16"):
        got = gc.mse_loss(gc.tensor(a), b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(float(got), np.mean((a - b) ** 2), rtol=1e-15)
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    f = gc.compile(lambda a, b: gc.l1_loss(a, b, "none"))
    assert f(a16, b16).dtype == np.float16
    with gc.autocast("float16"):
        got = f(a16, b16)
    with torch.autocast("cpu", dtype=torch.float16):
        their = TF.l1_loss(torch.tensor(a16), torch.tensor(b16), reduction="none")
    assert got.dtype == np.float32 and their.dtype == torch.float32
    np.testing.assert_array_equal(got, their.numpy())

def test_a_module_trains_through_its_loss():
    """nn.BCEWithLogitsLoss under gc.value_and_grad of a model's parameters: torch's
    gradients."""
    model = gc.nn.Linear(4, 3, dtype="float64")
    theirs_model = torch.nn.Linear(4, 3).double()
    model.load_torch_state_dict(theirs_model.state_dict())
    x, t = RNG.normal(size=(5, 4)), (RNG.uniform(size=(5, 3)) > 0.5).astype(np.float64)
    loss_fn = gc.nn.BCEWithLogitsLoss()
    value, grads = gc.value_and_grad(lambda p: loss_fn(model.apply(p, x), t))(model.params())
    their = torch.nn.BCEWithLogitsLoss()(theirs_model(torch.tensor(x)), torch.tensor(t))
    their.backward()
    np.testing.assert_allclose(value, their.item(), rtol=1e-13)
    np.testing.assert_allclose(grads["weight"], theirs_model.weight.grad.numpy().T, rtol=1e-12)
    np.testing.assert_allclose(grads["bias"], theirs_model.bias.grad.numpy(), rtol=1e-12)


# ---- bad input -------------------------------------------------------------------------------
def test_bad_input_gives_one_line_naming_the_function_and_argument():
    f = "test_losses.py"
    a, b = np.ones((2, 3)), np.full((2, 3), 0.5)
    for call, message in [
            (lambda: gc.binary_cross_entropy(b, b, reduction="avg"),
             "binary_cross_entropy: unknown reduction 'avg'"),
            (lambda: gc.binary_cross_entropy(b, b[:, :1]),
             "binary_cross_entropy: target (2, 1) must have the input's shape (2, 3)"),
            (lambda: gc.binary_cross_entropy(b, b, np.ones((2, 2, 3))),
             "binary_cross_entropy: weight (2, 2, 3) does not broadcast"),
            (lambda: gc.binary_cross_entropy_with_logits(a, b, pos_weight=np.ones(2)),
             "binary_cross_entropy_with_logits: pos_weight (2,)"),
            (lambda: gc.binary_cross_entropy_with_logits(a, b.astype(np.float32)),
             "binary_cross_entropy_with_logits: input is float64 but target is float32"),
            (lambda: gc.l1_loss(a, np.ones((3, 3))),
             "l1_loss: input (2, 3) and target (3, 3) do not broadcast"),
            (lambda: gc.l1_loss(a, b, weight=np.ones(3)),
             "l1_loss: weight (3,) must have the input's shape (2, 3)"),
            (lambda: gc.mse_loss(a, b, weight=np.ones(3)),
             "mse_loss: weight (3,) must have the input's shape (2, 3)"),
            (lambda: gc.l1_loss(a, b, reduction="batchmean"), "l1_loss: unknown reduction"),
            (lambda: gc.smooth_l1_loss(a, b, beta=-1.0), "smooth_l1_loss: beta must be >= 0"),
            (lambda: gc.smooth_l1_loss(a, b, beta="1"), "smooth_l1_loss: beta must be a number"),
            (lambda: gc.smooth_l1_loss(a, np.ones(4), beta=0.0),
             "smooth_l1_loss: input (2, 3) and target (4,) do not broadcast"),
            (lambda: gc.huber_loss(a, b, delta=0.0), "huber_loss: delta must be > 0"),
            (lambda: gc.kl_div(a, b, reduction="batch"), "kl_div: unknown reduction 'batch'"),
            (lambda: gc.kl_div(a, b, log_target="yes"), "kl_div: log_target must be True"),
            (lambda: gc.kl_div(a, np.ones((3, 3))), "kl_div: input (2, 3) and target (3, 3)"),
            (lambda: gc.cosine_similarity(a, b, dim=2),
             "cosine_similarity: dim 2 is out of range"),
            (lambda: gc.cosine_similarity(a, np.ones((4, 3))),
             "cosine_similarity: x1 (2, 3) and x2 (4, 3) do not broadcast"),
            (lambda: gc.normalize(np.ones(3)), "normalize: dim 1 is out of range"),
            (lambda: gc.normalize(a, p=-1), "normalize: p must be >= 0"),
            (lambda: gc.pairwise_distance(a, np.ones(2)),
             "pairwise_distance: x1 (2, 3) and x2 (2,) do not broadcast"),
            (lambda: gc.softplus(a, beta=0), "softplus: beta must not be 0"),
            (lambda: gc.softplus(a, threshold=None), "softplus: threshold must be a number"),
            (lambda: gc.nn.L1Loss(reduction="all")(a, b), "l1_loss: unknown reduction 'all'"),
            (lambda: gc.nn.Softplus(1.0, 20.0, 3), "Softplus: takes beta, threshold")]:
        assert_one_line_error(call, message, f)
    # keyword-only: torch's first place is size_average
    assert_one_line_error(lambda: gc.nn.L1Loss("sum"), "reduction is keyword-only", f)
    # MSELoss's too: it took a positional reduction, so MSELoss("sum") summed where torch's
    # reads "sum" as its size_average (a mean), and MSELoss(True) said 'unknown reduction'
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warning
        assert torch.nn.MSELoss("sum").reduction == "mean"
    for legacy in ("sum", True):
        assert_one_line_error(lambda: gc.nn.MSELoss(legacy), "reduction is keyword-only", f)
    assert gc.nn.MSELoss(reduction="sum")(a, b).item() == 1.5


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name, call", [
    ("cross_entropy", lambda x, t: gc.cross_entropy(x, t)),
    ("cross_entropy", lambda x, t: gc.cross_entropy(x, t, ignore_index=None)),
    ("cross_entropy", lambda x, t: gc.nn.CrossEntropyLoss(label_smoothing=0.1)(x, t)),
    ("nll_loss", lambda x, t: gc.nll_loss(x, t)),
    ("multi_margin_loss", lambda x, t: gc.multi_margin_loss(x, t))])
def test_bool_class_targets_are_one_line_naming_the_loss(name, call, compiled):
    """Bool class indices (torch: "expected target dtype to be Long or Byte, but got Bool")
    were refused by the op that read them: "cross_entropy: ne(bool[4], i64[]): operands must
    have one dtype", "one_hot(bool[4]): indices must be integers"."""
    x, t = RNG.normal(size=(4, 3)), np.array([True, False, True, True])
    what = "target" if name == "multi_margin_loss" else "targets"
    assert_one_line_error(lambda: (gc.compile(call) if compiled else call)(x, t),
                          f"{name}: {what} has dtype bool; class indices must be integers",
                          "test_losses.py")


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name, what, call", [
    ("cross_entropy", "logits", lambda x: gc.cross_entropy(x, np.array(0))),
    ("cross_entropy", "logits", lambda x: gc.cross_entropy(x, np.array(0.5))),
    ("nll_loss", "log_probs", lambda x: gc.nll_loss(x, np.array(0))),
    ("cross_entropy", "logits", lambda x: gc.nn.CrossEntropyLoss()(x, np.array(0)))])
def test_0d_logits_are_one_line_naming_the_loss(name, what, call, compiled):
    """0-d logits (no class axis; torch refuses them too) were an IndexError, 'tuple index
    out of range', from the class weight's check reading the shape's last entry."""
    assert_one_line_error(lambda: (gc.compile(call) if compiled else call)(np.float64(1.0)),
                          f"{name}: {what} must have a class axis (the last), got a 0-d value",
                          "test_losses.py")


@pytest.mark.parametrize("compiled", [False, True])
def test_targets_of_torchs_class_axis_layout_are_told_where_graphcs_classes_are(compiled):
    """Logits (N, C, d1) beside torch's (N, d1) targets said only 'logits (2, 3, 5) need
    targets of shape (2, 3), got (2, 5)': graphc's classes are on the last axis (README)."""
    def run(call, *args):
        return (gc.compile(call) if compiled else call)(*args)
    x = RNG.normal(size=(2, 3, 5))
    hint = "(classes are on the last axis here; torch's are on axis 1: move them with "
    assert_one_line_error(lambda: run(gc.cross_entropy, x, np.zeros((2, 5), np.int64)),
                          "cross_entropy: logits (2, 3, 5) need targets of shape (2, 3), got "
                          "(2, 5) " + hint + "gc.moveaxis(logits, 1, -1))", "test_losses.py")
    assert_one_line_error(lambda: run(gc.nn.NLLLoss(), x[..., None], np.zeros((2, 5, 1), int)),
                          "nll_loss: log-probabilities (2, 3, 5, 1) need targets of shape "
                          "(2, 3, 5), got (2, 5, 1) " + hint + "gc.moveaxis(log_probs, 1, -1))",
                          "test_losses.py")
    # torch's (C,) weight beside them was refused as of another shape alone (review r12)
    assert_one_line_error(lambda: run(lambda a, b: gc.cross_entropy(a, b, weight=np.ones(3)),
                                      x, np.zeros((2, 5), np.int64)),
                          "cross_entropy: weight must have one value per class, shape (5,), got "
                          "shape (3,) " + hint + "gc.moveaxis(logits, 1, -1))", "test_losses.py")
    assert_one_line_error(lambda: run(gc.nn.NLLLoss(weight=np.ones(3)), x,
                                      np.zeros((2, 5), np.int64)),
                          "nll_loss: weight must have one value per class, shape (5,), got "
                          "shape (3,) " + hint + "gc.moveaxis(log_probs, 1, -1))",
                          "test_losses.py")
    # another shape is not told so; moved, the loss is torch's
    with pytest.raises(gc.GraphcError) as info:
        run(gc.cross_entropy, x, np.zeros((2, 4), np.int64))
    assert "torch's" not in str(info.value)
    t = RNG.integers(0, 3, (2, 5))
    np.testing.assert_allclose(run(lambda a, b: gc.cross_entropy(gc.moveaxis(a, 1, -1), b), x, t),
                               TF.cross_entropy(torch.tensor(x), torch.tensor(t)).item(),
                               rtol=1e-14)


@pytest.mark.parametrize("module", ["MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss",
                                    "KLDivLoss", "MultiMarginLoss"])
@pytest.mark.parametrize("legacy", [dict(size_average=False), dict(reduce=False),
                                    dict(size_average=None), dict(size_average=False, reduce=True),
                                    dict(size_average=True, reduce=False),
                                    # (review r12: torch reads them only when one is not None)
                                    dict(size_average=None, reduction="sum"),
                                    dict(reduce=None, size_average=None, reduction="none")])
def test_torchs_deprecated_size_average_and_reduce_are_refused_naming_their_reduction(
        module, legacy):
    """graphc's loss modules take no size_average or reduce: the line said only 'unknown
    keyword argument' and the settings taken; it names the reduction they mean in torch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warning
        reduction = getattr(torch.nn, module)(**legacy).reduction
    given = ", ".join(f"{k}={legacy[k]!r}" for k in ("size_average", "reduce") if k in legacy)
    assert_one_line_error(lambda: getattr(gc.nn, module)(**legacy),
                          f"gc.nn.{module}: unknown keyword argument '{next(iter(legacy))}' "
                          f"(torch's deprecated size_average and reduce are not taken: {given} "
                          f"is reduction={reduction!r})", "test_losses.py")
    assert getattr(gc.nn, module)(reduction=reduction).reduction == reduction


@pytest.mark.parametrize("module", ["HuberLoss", "GaussianNLLLoss"])
def test_size_average_is_not_told_as_torchs_where_torchs_module_lacks_it(module):
    """Review r12: torch's HuberLoss and GaussianNLLLoss take no size_average (a TypeError
    there), but graphc's line told one's torch reduction as for MSELoss."""
    with pytest.raises(TypeError):
        getattr(torch.nn, module)(size_average=False)
    assert_one_line_error(lambda: getattr(gc.nn, module)(size_average=False),
                          f"gc.nn.{module}: unknown keyword argument 'size_average' (it takes ",
                          "test_losses.py")
    with pytest.raises(gc.GraphcError) as info:
        getattr(gc.nn, module)(size_average=False)
    assert "torch's deprecated" not in str(info.value)


# (AdaptiveLogSoftmaxWithLoss is a layer with a loss, not a loss module: no reduction setting)
_TORCH_LOSSES = sorted(name for name in dir(torch.nn) if name.endswith("Loss")
                      and hasattr(gc.nn, name) and name != "AdaptiveLogSoftmaxWithLoss")


@pytest.mark.parametrize("module", _TORCH_LOSSES)
def test_a_loss_module_given_torchs_positional_settings_says_they_are_keywords(module):
    """nn.L1Loss('sum'), nn.CrossEntropyLoss(None, True), nn.PoissonNLLLoss(False, True,
    None, 0.1) raised Python's plain TypeError ('takes 1 positional argument but 2 were
    given'). Every loss module now says in one line which settings it takes positionally,
    that the rest are keywords, and why: torch's own positions there begin with its
    deprecated size_average (L1Loss('sum') is a mean in torch), or torch's are
    keyword-only too (GaussianNLLLoss)."""
    ours = [p for p in inspect.signature(getattr(gc.nn, module)).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD]
    theirs = list(inspect.signature(getattr(torch.nn, module)).parameters.values())
    keyword_only = [p for p in inspect.signature(getattr(gc.nn, module)).parameters.values()
                    if p.kind is p.KEYWORD_ONLY]  # (none: HuberLoss, CTCLoss take all by position)
    args = [p.default for p in ours] + [None]
    legacy = "size_average" in [p.name for p in theirs]
    if legacy:  # (torch's argument at the first position graphc's lacks: the legacy one)
        assert theirs[len(ours)].name == "size_average"
    takes = ", ".join(p.name for p in ours) + " positionally" if ours else \
        "no positional arguments"
    why = ("keyword-only in graphc, since torch's positional arguments there include its "
           "deprecated size_average and reduce: pass each by keyword") if legacy else \
        "keyword-only, as in torch" if keyword_only else ""
    assert_one_line_error(lambda: getattr(gc.nn, module)(*args),
                          f"gc.nn.{module}: takes {takes}, got {len(args)}", "test_losses.py")
    with pytest.raises(gc.GraphcError) as info:
        getattr(gc.nn, module)(*args)
    assert str(info.value).splitlines()[0].endswith(why)
    assert getattr(gc.nn, module)(*args[:-1]).reduction == "mean"


@pytest.mark.parametrize("call, message", [
    (lambda: gc.nn.L1Loss("sum"), "gc.nn.L1Loss: takes no positional arguments, got 1: "
                                  "reduction is keyword-only in graphc"),
    (lambda: gc.nn.CrossEntropyLoss(None, True),
     "gc.nn.CrossEntropyLoss: takes weight positionally, got 2: ignore_index, reduction, "
     "label_smoothing are keyword-only in graphc"),
    (lambda: gc.nn.PoissonNLLLoss(False, True, None, 0.1),
     "gc.nn.PoissonNLLLoss: takes log_input, full positionally, got 4: eps, reduction are "
     "keyword-only in graphc")])
def test_the_reported_positional_loss_settings_are_one_line(call, message):
    assert_one_line_error(call, message, "test_losses.py")


@pytest.mark.parametrize("function, setting, value", [
    ("smooth_l1_loss", "beta", float("nan")), ("smooth_l1_loss", "beta", -0.5),
    ("huber_loss", "delta", float("nan")), ("huber_loss", "delta", 0.0)])
def test_a_nan_smooth_l1_beta_or_huber_delta_is_refused_as_torchs(function, setting, value):
    """smooth_l1_loss(beta=nan) (and huber_loss(delta=nan)) gave NaN where torch refuses
    ('does not support negative values for beta'); a NaN is refused as a negative one."""
    x, t = RNG.normal(size=3), RNG.normal(size=3)
    with pytest.raises(RuntimeError, match=f"does not support .* values for {setting}"):
        getattr(TF, function)(torch.tensor(x), torch.tensor(t), **{setting: value})
    bound = ">= 0" if setting == "beta" else "> 0"
    assert_one_line_error(lambda: getattr(gc, function)(x, t, **{setting: value}),
                          f"{function}: {setting} must be {bound}, got {value}",
                          "test_losses.py")


def test_a_list_of_traced_class_weights_or_normalize_inputs_is_one_line_naming_it():
    """weight=[w0, w1] of traced values (in gc.compile or gc.grad) said numpy's "a symbolic
    value cannot be turned into a numpy array", naming neither the loss nor weight (eager
    tensors were read as numbers, their gradient dropped), and gc.normalize([a, b]) the
    Trainer-batch line; torch refuses a list there. gc.stack is the fix: torch's values."""
    x, y = RNG.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    logp = np.asarray(gc.log_softmax(x, -1))
    cases = [(lambda a, b: gc.cross_entropy(x, y, weight=[a, b]), "cross_entropy: weight"),
             (lambda a, b: gc.nll_loss(logp, y, weight=(a, b)), "nll_loss: weight"),
             (lambda a, b: gc.sum(gc.normalize([a, b], dim=0)), "normalize: input")]
    for fn, named in cases:
        for run in (lambda: gc.compile(fn)(1.0, 2.0), lambda: gc.grad(fn)(1.0, 2.0),
                    lambda: fn(gc.tensor(1.0), gc.tensor(2.0))):
            assert_one_line_error(run, f"{named} is a ", "test_losses.py")
            with pytest.raises(gc.GraphcError, match=r"of tensors or traced values; stack them "
                                                     r"into one \(gc.stack\) or give an array"):
                run()
    w = np.array([1.0, 2.0])
    want = TF.cross_entropy(torch.tensor(x), torch.tensor(y), weight=torch.tensor(w)).item()
    got = gc.compile(lambda a, b: gc.cross_entropy(x, y, weight=gc.stack([a, b])))(*w)
    np.testing.assert_allclose(float(got), want, rtol=1e-14)
    np.testing.assert_allclose(float(gc.nll_loss(logp, y, weight=[1.0, 2.0])), want,
                               rtol=1e-14)  # (a list of numbers is still a weight)
    got = gc.compile(lambda a, b: gc.normalize(gc.stack([a, b]), dim=0))(3.0, 4.0)
    np.testing.assert_allclose(got, TF.normalize(torch.tensor([3.0, 4.0]), dim=0).numpy())


def test_a_list_of_traced_class_weights_of_a_loss_module_is_the_functional_line():
    """The loss modules (CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss's pos_weight,
    MultiMarginLoss: nn._weights_as_buffers) read weight=[a, b] with np.asarray: traced
    values said numpy's "a symbolic value cannot be turned into a numpy array", naming
    neither the loss nor weight, and eager tensors were read as numbers (gradient dropped)
    where gc.cross_entropy refuses them. Now the functional losses' line, naming the module;
    a list of numbers is still a weight, torch's value."""
    x, y = RNG.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    p, t = np.array([0.25, 0.75]), np.array([1.0, 0.0])
    cases = [(lambda w: gc.nn.CrossEntropyLoss(weight=w)(x, y), "CrossEntropyLoss", "weight"),
             (lambda w: gc.nn.NLLLoss(weight=w)(x, y), "NLLLoss", "weight"),
             (lambda w: gc.nn.BCELoss(weight=w)(p, t), "BCELoss", "weight"),
             (lambda w: gc.nn.BCEWithLogitsLoss(pos_weight=w)(p, t), "BCEWithLogitsLoss",
              "pos_weight"),
             (lambda w: gc.nn.MultiMarginLoss(weight=w)(x, y), "MultiMarginLoss", "weight")]
    for fn, name, what in cases:
        line = (f"{name}: {what} is a list of tensors or traced values; stack them into one "
                f"(gc.stack) or give an array, as torch's {name} takes one tensor")
        for run in (lambda: gc.compile(lambda a, b: fn([a, b]))(1.0, 2.0),
                    lambda: gc.grad(lambda a, b: fn([a, b]))(1.0, 2.0),
                    lambda: fn([gc.tensor(1.0), gc.tensor(2.0)])):
            with pytest.raises(gc.GraphcError) as info:
                run()
            first, where = str(info.value).splitlines()
            assert first == line
            assert "test_losses.py" in where
    want = TF.cross_entropy(torch.tensor(x), torch.tensor(y),
                            weight=torch.tensor([1.0, 2.0], dtype=torch.float64)).item()
    np.testing.assert_allclose(float(gc.nn.CrossEntropyLoss(weight=[1.0, 2.0])(x, y)), want,
                               rtol=1e-14)


def test_a_list_of_tensors_set_later_as_a_loss_module_s_weight_is_the_constructor_s_line():
    """(s45) `loss.weight = [gc.tensor(1.0), gc.tensor(2.0)]` after construction was read as
    numbers by np.asarray (an eager tensor's gradient dropped) where the constructor refuses
    such a list in one line naming gc.stack; torch's refuses any non-tensor weight. The set
    is now the constructor's line, the weight left as it was; a list of numbers set later is
    a weight, as at construction: torch's value."""
    x, y = RNG.normal(size=(4, 2)), np.array([0, 1, 1, 0])
    p, t = np.array([0.25, 0.75]), np.array([1.0, 0.0])
    cases = [(gc.nn.CrossEntropyLoss, "weight"), (gc.nn.NLLLoss, "weight"),
             (gc.nn.BCELoss, "weight"), (gc.nn.BCEWithLogitsLoss, "pos_weight"),
             (gc.nn.MultiMarginLoss, "weight")]
    for cls, what in cases:
        line = (f"{cls.__name__}: {what} is a list of tensors or traced values; stack them into "
                f"one (gc.stack) or give an array, as torch's {cls.__name__} takes one tensor")
        for before in (None, np.array([3.0, 4.0])):
            loss = cls()
            setattr(loss, what, before)

            def set_list(a, b):
                setattr(loss, what, [a, b])
                return a
            for run in (lambda: set_list(gc.tensor(1.0, requires_grad=True), gc.tensor(2.0)),
                        lambda: gc.compile(set_list)(1.0, 2.0),
                        lambda: gc.grad(set_list)(1.0, 2.0)):
                with pytest.raises(gc.GraphcError) as info:
                    run()
                first, where = str(info.value).splitlines()
                assert first == line
                assert "test_losses.py" in where
                kept = getattr(loss, what)
                assert kept is None if before is None else \
                    np.array_equal(np.asarray(kept), before)
    loss = gc.nn.CrossEntropyLoss()
    loss.weight = [1.0, 2.0]
    want = TF.cross_entropy(torch.tensor(x), torch.tensor(y),
                            weight=torch.tensor([1.0, 2.0], dtype=torch.float64)).item()
    np.testing.assert_allclose(float(loss(x, y)), want, rtol=1e-14)


def test_register_buffer_of_a_list_of_tensors_is_the_set_s_line():
    """(r2) register_buffer("b", [gc.tensor(1.0), gc.tensor(2.0)]) still read the tensors'
    numbers (their gradient dropped) where setting a buffer to that list is refused: the
    same line (one shared check), nothing registered; a list of numbers is refused (s55), as torch's.
    torch's register_buffer takes only a tensor (or None)."""
    with pytest.raises(TypeError, match="torch Tensor or None required"):
        torch.nn.Module().register_buffer("b", [torch.tensor(1.0), torch.tensor(2.0)])
    line = ("Module: b is a list of tensors or traced values; stack them into one (gc.stack) "
            "or give an array, as torch's Module takes one tensor")
    m = gc.nn.Module()

    def register(a, b):
        m.register_buffer("b", [a, b], persistent=False)
        return a
    for run in (lambda: register(gc.tensor(1.0, requires_grad=True), gc.tensor(2.0)),
                lambda: m.register_buffer("b", [[gc.tensor(1.0)], [gc.tensor(2.0)]]),
                lambda: gc.compile(register)(1.0, 2.0), lambda: gc.grad(register)(1.0, 2.0)):
        with pytest.raises(gc.GraphcError) as info:
            run()
        first, where = str(info.value).splitlines()
        assert first == line and "test_losses.py" in where
        assert "b" not in vars(m) and dict(m.named_buffers()) == {}
        assert "b" not in vars(m).get("_non_persistent", ())
    with pytest.raises(TypeError, match=r"register_buffer\('b'\): cannot assign a list as "
                       "buffer 'b'"):
        m.register_buffer("b", [1.0, 2.0])  # (torch's TypeError: an array or None only)
    m.register_buffer("b", np.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(m.b.data), [1.0, 2.0])
    assert list(m.state_dict()) == ["b"]
    with pytest.raises(gc.GraphcError, match=r"^Module: b is a list of tensors"):
        m.b = [gc.tensor(3.0), gc.tensor(4.0)]  # (the set: the same line)
    np.testing.assert_array_equal(np.asarray(m.b.data), [1.0, 2.0])
