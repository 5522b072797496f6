"""torch.nn.functional's margin, embedding and likelihood losses (ir/ops/losses_extra.py),
threshold, tanhshrink, softmin, bilinear and unflatten (ir/ops/activations.py), and their
modules (graphc/loss_layers.py, activation_layers.py, basic_layers.py): values and gradients
against torch in float64 for every reduction, eagerly (the tape), traced (gc.grad) and
compiled (test_losses.check), at the kinks too (a hinge at exactly 0, a swap tie, a variance
below eps). tests/opcases.py gives them finite-difference gradient, Hessian-vector, vmap and
half-precision checks."""
import warnings

import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error
from test_losses import REDUCTIONS, check

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")
TF = torch.nn.functional

RNG = np.random.default_rng(24)


def signs(*shape):
    return np.where(RNG.uniform(size=shape) < 0.5, -1.0, 1.0)


# ---- ranking and margins ---------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", [((4, 5), (4, 5), (4, 5)), ((4, 5), (1, 5), (4, 1))])
def test_margin_ranking_loss_matches_torch(reduction, shapes):
    a, b, t = RNG.normal(size=shapes[0]), RNG.normal(size=shapes[1]), signs(*shapes[2])
    a[0, :2] = b[0, :2] + 0.5  # -t * d + margin exactly 0 for t = 1: clamp_min's gradient
    t[0] = 1.0
    for margin in (0.0, 0.5):
        check(lambda a, b, t: gc.margin_ranking_loss(a, b, t, margin, reduction),
              lambda a, b, t: TF.margin_ranking_loss(a, b, t, margin, reduction=reduction),
              [a, b, t], wrt=(0, 1, 2))
    # an integer target is taken as the inputs' dtype, as torch's promotion
    check(lambda a, b: gc.margin_ranking_loss(a, b, t.astype(np.int64), 0.2, reduction),
          lambda a, b: TF.margin_ranking_loss(a, b, torch.tensor(t.astype(np.int64)), 0.2,
                                              reduction=reduction), [a, b])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_embedding_loss_matches_torch(reduction):
    x = RNG.normal(size=(4, 5))
    t = signs(4, 5)
    t[0, :3] = [0.0, 2.0, 0.5]  # neither +-1: both terms, as torch's
    x[1, 0], t[1, 0] = 0.7, -1.0  # margin - x exactly 0: clamp_min's gradient
    for margin in (1.0, 0.7):
        check(lambda x: gc.hinge_embedding_loss(x, t, margin, reduction),
              lambda x: TF.hinge_embedding_loss(x, torch.tensor(t), margin,
                                                reduction=reduction), [x], wrt=(0,))
    check(lambda x: gc.hinge_embedding_loss(x, t[0].astype(np.int64), reduction=reduction),
          lambda x: TF.hinge_embedding_loss(x, torch.tensor(t[0].astype(np.int64)),
                                            reduction=reduction), [x[:, :1]], wrt=(0,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss_matches_torch(reduction):
    x, t = RNG.normal(0, 3, (4, 5)), signs(4, 5)
    t[0, 0] = 0.5  # (torch's has no gradient w.r.t. target)
    check(lambda x, t: gc.soft_margin_loss(x, t, reduction),
          lambda x, t: TF.soft_margin_loss(x, t, reduction=reduction), [x, t], wrt=(0,))
    check(lambda x, t: gc.soft_margin_loss(x, t, reduction),  # target broadcast into x
          lambda x, t: TF.soft_margin_loss(x, t, reduction=reduction), [x, t[0]], wrt=(0,))
    # far out torch's log1p(exp(800)) is inf; graphc's is the finite 800
    np.testing.assert_allclose(gc.soft_margin_loss(np.array([800.0, -800.0]),
                                                   np.array([-1.0, -1.0]), "none"),
                               [800.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (5,), (4, 5), (3, 4, 5)])
def test_multilabel_soft_margin_loss_matches_torch(reduction, weight_shape):
    """(3, 4, 5) weights broadcast the loss to 3-d, and torch sums its axis 1 (input.ndim - 1)
    and divides by 5: graphc's is the same."""
    x, t = RNG.normal(0, 2, (4, 5)), (RNG.uniform(size=(4, 5)) < 0.5).astype(np.float64)
    t[0] = RNG.uniform(size=5)  # soft labels
    w = None if weight_shape is None else RNG.uniform(0.5, 2.0, weight_shape)
    check(lambda x, t: gc.multilabel_soft_margin_loss(x, t, w, reduction),
          lambda x, t: TF.multilabel_soft_margin_loss(
              x, t, None if w is None else torch.tensor(w), reduction=reduction), [x, t])
    check(lambda x, t: gc.multilabel_soft_margin_loss(x, t, reduction=reduction),
          lambda x, t: TF.multilabel_soft_margin_loss(x, t, reduction=reduction), [x[0], t[0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_loss_matches_torch(reduction, p, weighted):
    x = RNG.normal(size=(4, 5))
    y = np.array([0, 3, 4, 1])
    x[0, :3] = [0.75, 0.5, -0.25]  # margin - x[y] + x[i] exactly 0: torch's z > 0, no slope
    w = RNG.uniform(0.5, 2.0, 5) if weighted else None
    tw = None if w is None else torch.tensor(w)
    for margin in (1.0, 0.3):
        check(lambda x: gc.multi_margin_loss(x, y, p, margin, w, reduction),
              lambda x: TF.multi_margin_loss(x, torch.tensor(y), p, margin, tw,
                                             reduction=reduction), [x], wrt=(0,))
    # one sample: (C,) input with a (1,) target ((1,) losses) or a 0-d one (a 0-d loss)
    for target in (y[1:2], y[1]):
        check(lambda x: gc.multi_margin_loss(x, target, p, weight=w, reduction=reduction),
              lambda x: TF.multi_margin_loss(x, torch.tensor(target), p, weight=tw,
                                             reduction=reduction), [x[1]], wrt=(0,))


def test_multi_margin_loss_of_a_scalar_and_an_out_of_range_class():
    check(lambda x: gc.multi_margin_loss(x, np.int64(0), reduction="none"),
          lambda x: TF.multi_margin_loss(x, torch.tensor(0), reduction="none"),
          [np.float64(0.3)], wrt=(0,))
    x = RNG.normal(size=(3, 4))
    out = np.asarray(gc.multi_margin_loss(x, np.array([0, 4, -1]), reduction="none"))
    assert np.isfinite(out[0]) and np.isnan(out[1:]).all()  # torch raises
    assert np.isnan(float(gc.multi_margin_loss(x, np.array([0, 4, 1]))))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss_matches_torch(reduction):
    """torch's MultiLabelMarginLoss, which graphc lacked: the classes before the first -1
    are the targets (what follows is not read), one listed twice counts twice, a hinge at
    exactly 0 has no slope (torch's z > 0)."""
    x = RNG.normal(size=(5, 4))
    y = np.array([[0, 2, -1, 1], [3, 3, -1, -1], [-1, 0, 0, 0], [0, 1, 2, 3], [1, 0, 3, -1]])
    x[0, 1] = x[0, 0] - 1.0  # 1 - x[0] + x[1] exactly 0
    check(lambda x: gc.multilabel_margin_loss(x, y, reduction),
          lambda x: TF.multilabel_margin_loss(x, torch.tensor(y), reduction=reduction), [x],
          wrt=(0,))
    check(lambda x: gc.multilabel_margin_loss(x, y[4].astype(np.int32), reduction),  # (C,)
          lambda x: TF.multilabel_margin_loss(x, torch.tensor(y[4]), reduction=reduction),
          [x[4]], wrt=(0,))
    # a class outside [-1, C), after the -1 too, is NaN (torch raises on each such row)
    out = np.asarray(gc.multilabel_margin_loss(x[:4], np.array([[0, 4, -1, 0], [-2, -1, 0, 0],
                                                                [1, -1, 5, 0], [1, -1, 2, 0]]),
                                               "none"))
    assert np.isnan(out[:3]).all() and np.isfinite(out[3])


# ---- embeddings ------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_with_distance_loss_matches_torch(reduction, swap):
    """torch's TripletMarginWithDistanceLoss, which graphc lacked: the default distance
    (pairwise_distance), one of the user's, and a swap tie."""
    a, pos, neg = (RNG.normal(size=(4, 5)) for _ in range(3))
    pos[1] = a[1]  # d(a, n) == d(p, n): swap's min is a tie, whose gradient torch shares
    check(lambda a, b, c: gc.triplet_margin_with_distance_loss(a, b, c, swap=swap,
                                                               reduction=reduction),
          lambda a, b, c: TF.triplet_margin_with_distance_loss(a, b, c, swap=swap,
                                                               reduction=reduction),
          [a, pos, neg], wrt=(0, 1, 2), rtol=1e-11)
    check(lambda a, b, c: gc.triplet_margin_with_distance_loss(
              a, b, c, distance_function=lambda u, v: 1.0 - gc.cosine_similarity(u, v),
              margin=0.3, swap=swap, reduction=reduction),
          lambda a, b, c: TF.triplet_margin_with_distance_loss(
              a, b, c, distance_function=lambda u, v: 1.0 - TF.cosine_similarity(u, v),
              margin=0.3, swap=swap, reduction=reduction),
          [a, pos, neg], wrt=(0, 1, 2), rtol=1e-11)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,eps,swap", [(2.0, 1e-6, False), (1.0, 0.0, True),
                                        (3.0, 1e-3, True), (np.inf, 1e-6, False)])
def test_triplet_margin_loss_matches_torch(reduction, p, eps, swap):
    a, pos, neg = (RNG.normal(size=(4, 5)) for _ in range(3))
    pos[1] = a[1]  # d(a, n) == d(p, n): swap's min is a tie, whose gradient torch shares
    for margin in (1.0, 4.0):
        check(lambda a, b, c: gc.triplet_margin_loss(a, b, c, margin, p, eps, swap,
                                                     reduction),
              lambda a, b, c: TF.triplet_margin_loss(a, b, c, margin, p, eps, swap,
                                                     reduction=reduction), [a, pos, neg],
              wrt=(0, 1, 2), rtol=1e-11)
    # broadcasting rows, and one 1-d triple (a 0-d loss)
    check(lambda a, b, c: gc.triplet_margin_loss(a, b, c, 2.0, p, eps, swap, reduction),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, 2.0, p, eps, swap,
                                                 reduction=reduction),
          [a, pos[:1], neg], wrt=(0, 1, 2), rtol=1e-11)
    check(lambda a, b, c: gc.triplet_margin_loss(a, b, c, 2.0, p, eps, swap, reduction),
          lambda a, b, c: TF.triplet_margin_loss(a, b, c, 2.0, p, eps, swap,
                                                 reduction=reduction),
          [a[2], pos[2], neg[2]], wrt=(0, 1, 2), rtol=1e-11)


def test_triplet_swap_tie_shares_the_gradient():
    a, n = RNG.normal(size=(2, 3)), RNG.normal(size=(2, 3))
    got = check(lambda a, b, c: gc.triplet_margin_loss(a, b, c, 10.0, swap=True, eps=0.0),
                lambda a, b, c: TF.triplet_margin_loss(a, b, c, 10.0, swap=True, eps=0.0),
                [a, a.copy(), n], wrt=(0, 1, 2))
    assert np.abs(got[1][1]).min() > 0  # positive gets half of the negative distance's


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss_matches_torch(reduction):
    a, b, t = RNG.normal(size=(5, 4)), RNG.normal(size=(5, 4)), signs(5)
    t[2] = 0.0  # neither: 0, as torch's
    a[3] = 0.0  # a zero vector: cos 0 through torch's 1e-12
    b[4] = -a[4] * 2.0  # cos = -1
    for margin in (0.0, -0.3, 0.4):
        check(lambda a, b, t: gc.cosine_embedding_loss(a, b, t, margin, reduction),
              lambda a, b, t: TF.cosine_embedding_loss(a, b, t, margin, reduction=reduction),
              [a, b, t], wrt=(0, 1))
    check(lambda a, b: gc.cosine_embedding_loss(a, b, t.astype(np.int64), 0.1, reduction),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(t.astype(np.int64)), 0.1,
                                                reduction=reduction), [a, b[:1]])
    check(lambda a, b: gc.cosine_embedding_loss(a, b, np.float64(-1.0), 0.1, reduction),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.tensor(-1.0, dtype=torch.float64),
                                                0.1, reduction=reduction), [a[0], b[0]])
    tiny = np.array([[1e-6, 0.0, 0.0, 0.0]])  # |x|^2 = 1e-12: the epsilon is half of it
    check(lambda a, b: gc.cosine_embedding_loss(a, b, np.ones(1), reduction=reduction),
          lambda a, b: TF.cosine_embedding_loss(a, b, torch.ones(1, dtype=torch.float64),
                                                reduction=reduction), [tiny, tiny * 2])


# ---- likelihoods -----------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_loss_matches_torch(reduction, log_input, full):
    x = RNG.normal(size=(4, 5)) if log_input else RNG.uniform(0.1, 3.0, (4, 5))
    x[0, 0] = 0.0 if not log_input else x[0, 0]  # log(0 + eps)
    t = RNG.poisson(2.0, (4, 5)).astype(np.float64)
    t[1, :4] = [0.0, 1.0, 0.5, 1.5]  # Stirling's term from above 1 only
    for eps in (1e-8, 0.1):
        got, ours_g, theirs_g, _ = check(
            lambda x, t: gc.poisson_nll_loss(x, t, log_input, full, eps, reduction),
            lambda x, t: TF.poisson_nll_loss(x, t, log_input, full, eps=eps,
                                             reduction=reduction), [x, t], grads=(0,))
        # w.r.t. target: torch's, but where full meets target 0 (torch's 0 * log 0 there,
        # NaN; graphc's term is a constant 0 below 1)
        keep = ~((t == 0) & full)
        np.testing.assert_allclose(ours_g[1][keep], theirs_g[1][keep], rtol=1e-12)
        assert np.isfinite(ours_g[1]).all() and np.isnan(theirs_g[1][~keep]).all()
    # broadcasting, and integer counts taken as the input's dtype (torch's Stirling term of
    # integers is float32's log: compared without it)
    counts = t[0] if full else t[0].astype(np.int64)
    check(lambda x: gc.poisson_nll_loss(x, counts, log_input, full, reduction=reduction),
          lambda x: TF.poisson_nll_loss(x, torch.tensor(counts), log_input, full,
                                        reduction=reduction), [x[:, :1]], wrt=(0,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(4, 5), (4,), (4, 1), (1, 5), "number"])
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss_matches_torch(reduction, var_shape, full):
    x, t = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    if var_shape == "number":
        check(lambda x, t: gc.gaussian_nll_loss(x, t, 0.7, full, reduction=reduction),
              lambda x, t: TF.gaussian_nll_loss(x, t, 0.7, full, reduction=reduction), [x, t])
        return
    v = RNG.uniform(0.2, 2.0, var_shape)
    v.flat[0] = 1e-9  # below eps: the clamped value, and the gradient as though unclamped
    v.flat[-1] = 0.0
    for eps in (1e-6, 0.3):
        check(lambda x, t, v: gc.gaussian_nll_loss(x, t, v, full, eps, reduction),
              lambda x, t, v: TF.gaussian_nll_loss(x, t, v, full, eps, reduction=reduction),
              [x, t, v], wrt=(0, 1, 2), rtol=1e-11)
    # the target broadcasts, the input's shape fixes var's
    check(lambda x, t, v: gc.gaussian_nll_loss(x, t, v, full, reduction=reduction),
          lambda x, t, v: TF.gaussian_nll_loss(x, t, v, full, reduction=reduction),
          [x, t[:1], v], wrt=(0, 1, 2), rtol=1e-11)


def test_gaussian_nll_loss_of_a_vector_and_a_negative_variance():
    x, t = RNG.normal(size=4), RNG.normal(size=4)
    check(lambda x, t, v: gc.gaussian_nll_loss(x, t, v),
          lambda x, t, v: TF.gaussian_nll_loss(x, t, v), [x, t, np.float64(0.5)],
          wrt=(0, 1, 2))  # a 0-d var for a (4,) input: input's shape without its last axis
    out = np.asarray(gc.gaussian_nll_loss(x, t, np.array([1.0, -1.0, 1.0, 1.0]),
                                          reduction="none"))
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2, 3]]).all()  # torch raises


def test_losses_and_bilinear_with_a_symbolic_batch():
    """One plan for every batch size: the means divide by the size of the call's batch."""
    f = gc.compile(lambda x, y: gc.multi_margin_loss(x, y),
                   polymorphic_shapes=(("b", "_"), ("b",)))
    g = gc.compile(lambda x, t, v: gc.gaussian_nll_loss(x, t, v),
                   polymorphic_shapes=(("b", "_"), ("b", "_"), ("b",)))
    h = gc.compile(lambda a, b, t: gc.cosine_embedding_loss(a, b, t)
                   + gc.multilabel_soft_margin_loss(a, b),
                   polymorphic_shapes=(("b", "_"), ("b", "_"), ("b",)))
    w = RNG.normal(size=(3, 5, 4))
    k = gc.compile(lambda a, b: gc.bilinear(a, b, w), polymorphic_shapes=(("b", "_"),
                                                                         ("b", "_")))
    for n in (2, 7):
        x, y, t = RNG.normal(size=(n, 5)), RNG.integers(0, 5, n), RNG.normal(size=(n, 5))
        v, s, x2 = RNG.uniform(0.5, 2, n), signs(n), RNG.normal(size=(n, 4))
        tx, tt = torch.tensor(x), torch.tensor(t)
        np.testing.assert_allclose(f(x, y), TF.multi_margin_loss(tx, torch.tensor(y)).numpy(),
                                   rtol=1e-13)
        np.testing.assert_allclose(g(x, t, v), TF.gaussian_nll_loss(
            tx, tt, torch.tensor(v)).numpy(), rtol=1e-13)
        np.testing.assert_allclose(h(x, t, s), (TF.cosine_embedding_loss(
            tx, tt, torch.tensor(s)) + TF.multilabel_soft_margin_loss(tx, tt)).numpy(),
                                   rtol=1e-13)
        np.testing.assert_allclose(k(x, x2), TF.bilinear(tx, torch.tensor(x2),
                                                         torch.tensor(w)).numpy(), rtol=1e-13)


# ---- activations and layers' functions -------------------------------------------------------
def test_threshold_tanhshrink_softmin_match_torch():
    x = np.array([[-2.0, -0.5, 0.1, 0.1 + 1e-17, 0.3, 3.0], [np.nan, 0.0, 1.0, -1.0, 5.0, 0.2]])
    check(lambda x: gc.threshold(x, 0.1, 20.0), lambda x: TF.threshold(x, 0.1, 20.0), [x[:1]],
          wrt=(0,))
    got = np.asarray(gc.threshold(x, 0.1, -3.0))
    want = TF.threshold(torch.tensor(x), 0.1, -3.0).numpy()
    np.testing.assert_array_equal(got, want)  # NaN stays NaN
    ints = np.array([-3, -2, -1, 0, 1, 2, 3])
    for th in (-2.5, 2.5):  # torch truncates threshold and value for integers
        got = gc.threshold(ints, th, -7.9)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, torch.threshold(torch.tensor(ints), th, -7.9))
    check(gc.tanhshrink, TF.tanhshrink, [x[:1] * 3], wrt=(0,), rtol=1e-13, atol=1e-15)
    y = RNG.normal(size=(2, 3, 4))
    for dim in (0, 1, -1):
        check(lambda y: gc.softmin(y, dim), lambda y: TF.softmin(y, dim), [y], wrt=(0,))
    with pytest.warns(UserWarning, match="softmin: called without dim"):
        got = gc.softmin(y)  # torch's implicit choice for 3-d: axis 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(got, TF.softmin(torch.tensor(y)).numpy(), rtol=1e-14)
    check(lambda y: gc.softmin(y, 0), lambda y: TF.softmin(y, 0), [np.float64(0.3)], wrt=(0,))


@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (0,)])
def test_bilinear_matches_torch(lead):
    x1, x2 = RNG.normal(size=lead + (4,)), RNG.normal(size=lead + (5,))
    w, b = RNG.normal(size=(3, 4, 5)), RNG.normal(size=3)
    check(gc.bilinear, TF.bilinear, [x1, x2, w, b], wrt=(0, 1, 2, 3), rtol=1e-12, atol=1e-13)
    check(gc.bilinear, TF.bilinear, [x1, x2, w], wrt=(0, 1, 2), rtol=1e-12, atol=1e-13)


def test_unflatten_matches_torch():
    x = RNG.normal(size=(2, 6, 3))
    for dim, sizes in [(1, (2, 3)), (1, (-1, 3)), (-1, (3, 1)), (0, (2,)), (1, [1, 6, 1])]:
        np.testing.assert_array_equal(gc.unflatten(x, dim, sizes),
                                      torch.tensor(x).unflatten(dim, sizes).numpy())
        got = gc.compile(lambda x: gc.unflatten(x, dim, sizes))(x)
        np.testing.assert_array_equal(got, torch.tensor(x).unflatten(dim, sizes).numpy())


# ---- modules ---------------------------------------------------------------------------------
def test_loss_modules_compute_their_functions_and_guard_their_settings():
    x, t = RNG.normal(size=(4, 5)), signs(4, 5)
    y, v = np.array([0, 2, 4, 1]), RNG.uniform(0.5, 2.0, (4, 5))
    w = RNG.uniform(0.5, 2.0, 5)
    tw, flip = torch.tensor(w), x[::-1].copy()
    cases = [
        (gc.nn.MarginRankingLoss(0.3), torch.nn.MarginRankingLoss(0.3), (x, flip, t)),
        (gc.nn.TripletMarginLoss(2.0, 1.0, swap=True, reduction="sum"),
         torch.nn.TripletMarginLoss(2.0, 1.0, swap=True, reduction="sum"), (x, t, v)),
        (gc.nn.HingeEmbeddingLoss(0.5, reduction="none"),
         torch.nn.HingeEmbeddingLoss(0.5, reduction="none"), (x, t)),
        (gc.nn.CosineEmbeddingLoss(0.2), torch.nn.CosineEmbeddingLoss(0.2), (x, v, t[:, 0])),
        (gc.nn.SoftMarginLoss(), torch.nn.SoftMarginLoss(), (x, t)),
        (gc.nn.MultiLabelSoftMarginLoss(w), torch.nn.MultiLabelSoftMarginLoss(tw),
         (x, (t > 0).astype(np.float64))),
        (gc.nn.MultiMarginLoss(2, 0.5, w), torch.nn.MultiMarginLoss(2, 0.5, tw), (x, y)),
        (gc.nn.PoissonNLLLoss(False, True, eps=1e-3), torch.nn.PoissonNLLLoss(False, True,
                                                                             eps=1e-3),
         (v, np.round(v * 3))),
        (gc.nn.GaussianNLLLoss(full=True), torch.nn.GaussianNLLLoss(full=True), (x, t, v)),
        (gc.nn.GaussianNLLLoss(eps=0.1), torch.nn.GaussianNLLLoss(eps=0.1), (x, t, 0.05)),
        (gc.nn.MultiLabelMarginLoss(reduction="none"),
         torch.nn.MultiLabelMarginLoss(reduction="none"),
         (x, np.array([[0, 2, -1, 1, 4]] * 4))),
        (gc.nn.TripletMarginWithDistanceLoss(
            distance_function=gc.nn.PairwiseDistance(p=1.0), margin=2.0, swap=True),
         torch.nn.TripletMarginWithDistanceLoss(
            distance_function=torch.nn.PairwiseDistance(p=1.0), margin=2.0, swap=True),
         (x, t, v))]
    for module, their_module, operands in cases:
        want = their_module(*[torch.tensor(a) if isinstance(a, np.ndarray) else a
                              for a in operands]).numpy()
        name = type(module).__name__
        np.testing.assert_allclose(module(*operands), want, rtol=1e-13, err_msg=name)
        # (a Python number is a constant of the plan, not one of its 0-d inputs)
        arrays = [a for a in operands if isinstance(a, np.ndarray)]
        numbers = operands[len(arrays):]
        np.testing.assert_allclose(gc.compile(lambda *a: module(*a, *numbers))(*arrays), want,
                                   rtol=1e-13, err_msg=name)
    loss = gc.nn.MarginRankingLoss()
    f = gc.compile(lambda a, b, t: loss(a, b, t))
    first = np.asarray(f(x, flip, t))
    loss.margin, loss.reduction = 0.8, "sum"  # a plan traced with the old settings is not reused
    np.testing.assert_allclose(f(x, flip, t), TF.margin_ranking_loss(
        torch.tensor(x), torch.tensor(flip), torch.tensor(t), 0.8, reduction="sum").numpy(),
        rtol=1e-13)
    assert not np.allclose(first, np.asarray(f(x, flip, t)))
    with pytest.raises(gc.GraphcError, match="reduction is keyword-only"):  # torch's next
        gc.nn.HingeEmbeddingLoss(1.0, "sum")  # place is size_average
    # a distance function set later is not the old plan's either (a function over a
    # function: torch's, as graphc's, refuses one over the default PairwiseDistance child)
    triplet = gc.nn.TripletMarginWithDistanceLoss(distance_function=gc.pairwise_distance)
    f = gc.compile(lambda a, b, c: triplet(a, b, c))
    f(x, t, v)
    triplet.distance_function = lambda u, w: gc.sum(gc.abs(u - w), -1)
    np.testing.assert_allclose(f(x, t, v), TF.triplet_margin_with_distance_loss(
        torch.tensor(x), torch.tensor(t), torch.tensor(v),
        distance_function=lambda u, w: (u - w).abs().sum(-1)).numpy(), rtol=1e-13)


def test_layers_match_torch():
    x = RNG.normal(size=(2, 3, 4, 5))
    for ours, theirs in [(gc.nn.Threshold(0.1, 20.0), torch.nn.Threshold(0.1, 20.0)),
                         (gc.nn.Tanhshrink(), torch.nn.Tanhshrink()),
                         (gc.nn.Softmin(2), torch.nn.Softmin(2)),
                         (gc.nn.Softmax2d(), torch.nn.Softmax2d()),
                         (gc.nn.Unflatten(-1, (5, 1)), torch.nn.Unflatten(-1, (5, 1))),
                         (gc.nn.Identity(3, k=1), torch.nn.Identity(3, k=1))]:
        want = theirs(torch.tensor(x)).numpy()
        close = dict(rtol=1e-14, atol=1e-16, err_msg=type(ours).__name__)
        np.testing.assert_allclose(ours(x), want, **close)
        np.testing.assert_allclose(gc.compile(lambda a: ours(a))(x), want, **close)
    np.testing.assert_allclose(gc.nn.Softmax2d()(x[0]), torch.nn.Softmax2d()(
        torch.tensor(x[0])).numpy(), rtol=1e-14)
    layer = gc.nn.Threshold(0.1, 20.0)
    f = gc.compile(lambda a: layer(a))
    f(x)
    layer.value = -1.0  # guarded
    np.testing.assert_allclose(f(x), TF.threshold(torch.tensor(x), 0.1, -1.0).numpy())


def test_bilinear_layer_is_torchs():
    """torch's layout (out, in1, in2), so its state_dict loads as it is; torch's init bound
    1/sqrt(in1_features); values and parameter gradients are torch's."""
    gc.nn.manual_seed(0)
    layer = gc.nn.Bilinear(16, 3, 200)
    assert layer.weight.shape == (200, 16, 3) and layer.bias.shape == (200,)
    assert layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(16)
    for p in (layer.weight, layer.bias):
        p = np.asarray(p)
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.95 * bound
        assert abs(float(np.mean(p))) < 0.05 * bound
    assert gc.nn.Bilinear(2, 3, 4, bias=False).bias is None
    theirs = torch.nn.Bilinear(4, 5, 3).double()
    ours = gc.nn.Bilinear(4, 5, 3, dtype="float64")
    ours.load_torch_state_dict(theirs.state_dict())
    x1, x2 = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 5))
    value, grads = gc.value_and_grad(lambda p: gc.sum(ours.apply(p, x1, x2) ** 2))(
        ours.params())
    their = (theirs(torch.tensor(x1), torch.tensor(x2)) ** 2).sum()
    their.backward()
    np.testing.assert_allclose(value, their.item(), rtol=1e-13)
    np.testing.assert_allclose(grads["weight"], theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["bias"], theirs.bias.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gc.compile(lambda a, b: ours(a, b))(x1, x2),
                               theirs(torch.tensor(x1), torch.tensor(x2)).detach().numpy(),
                               rtol=1e-13)


# ---- bad input -------------------------------------------------------------------------------
def test_bad_input_gives_one_line_naming_the_function_and_argument():
    f = "test_losses_extra.py"
    a, b = np.ones((2, 3)), np.full((2, 3), 0.5)
    y = np.array([0, 1])
    for call, message in [
            (lambda: gc.margin_ranking_loss(a, b, np.ones(3)),
             "margin_ranking_loss: input1 (2, 3), input2 (2, 3) and target (3,) must have one "
             "number of dimensions"),
            (lambda: gc.margin_ranking_loss(a, b, a, reduction="avg"),
             "margin_ranking_loss: unknown reduction 'avg'"),
            (lambda: gc.margin_ranking_loss(a, np.ones((3, 3)), a),
             "margin_ranking_loss: input1 (2, 3) and input2 (3, 3) do not broadcast"),
            (lambda: gc.triplet_margin_loss(a, b, b, margin=0.0),
             "triplet_margin_loss: margin must be > 0, got 0.0"),
            (lambda: gc.triplet_margin_loss(a, b, np.ones(3)),
             "triplet_margin_loss: anchor (2, 3), positive (2, 3) and negative (3,) must have"),
            (lambda: gc.triplet_margin_loss(a, b, b, swap=1), "triplet_margin_loss: swap must"),
            (lambda: gc.triplet_margin_loss(a, b, b, p=-2), "triplet_margin_loss: p must be"),
            (lambda: gc.hinge_embedding_loss(a, np.ones(4)),
             "hinge_embedding_loss: input (2, 3) and target (4,) do not broadcast"),
            (lambda: gc.hinge_embedding_loss(a, b, margin="1"),
             "hinge_embedding_loss: margin must be a number"),
            (lambda: gc.soft_margin_loss(a[:, :1], b),
             "soft_margin_loss: target (2, 3) does not broadcast to the input's shape (2, 1)"),
            (lambda: gc.cosine_embedding_loss(a, b, np.ones((1, 2))),
             "cosine_embedding_loss: target must be 0-d or 1-d"),
            (lambda: gc.cosine_embedding_loss(a, b, np.float64(1.0)),
             "cosine_embedding_loss: a 0-d target needs 1-d inputs, got (2, 3) and (2, 3)"),
            (lambda: gc.cosine_embedding_loss(a, b, np.ones(3)),
             "cosine_embedding_loss: cosine (2,) and target (3,) do not broadcast"),
            (lambda: gc.multilabel_soft_margin_loss(np.float64(1.0), np.float64(1.0)),
             "multilabel_soft_margin_loss: input must have a class axis"),
            (lambda: gc.multi_margin_loss(a, y, p=3), "multi_margin_loss: p must be 1 or 2"),
            (lambda: gc.multi_margin_loss(a, y.astype(np.float64)),
             "multi_margin_loss: target must hold integer class indices, got float64"),
            (lambda: gc.multi_margin_loss(a, np.array([0, 1, 2])),
             "multi_margin_loss: target (3,) must hold one class per sample: 2 for the input"),
            (lambda: gc.multi_margin_loss(np.ones((2, 3, 4)), y),
             "multi_margin_loss: input must be a non-empty (C,) vector or (N, C) matrix"),
            (lambda: gc.multi_margin_loss(a, y, weight=np.ones(2)),
             "multi_margin_loss: weight (2,) must be one per class, (3,)"),
            (lambda: gc.multilabel_margin_loss(a, np.zeros((2, 2), np.int64)),
             "multilabel_margin_loss: target (2, 2) must have the input's shape (2, 3)"),
            (lambda: gc.multilabel_margin_loss(a, b),
             "multilabel_margin_loss: target must hold integer class indices, got float64"),
            (lambda: gc.multilabel_margin_loss(a, a > 0),
             "multilabel_margin_loss: target has dtype bool; class indices must be integers"),
            (lambda: gc.multilabel_margin_loss(y, y),
             "multilabel_margin_loss: input must be floating-point, got int64"),
            (lambda: gc.multilabel_margin_loss(np.ones((2, 3, 4)), np.ones((2, 3, 4), int)),
             "multilabel_margin_loss: input must be a non-empty (C,) vector or (N, C) matrix"),
            (lambda: gc.triplet_margin_with_distance_loss(a, b, b, margin=0.0),
             "triplet_margin_with_distance_loss: margin must be > 0, got 0.0"),
            (lambda: gc.triplet_margin_with_distance_loss(a, b, b, distance_function="cos"),
             "triplet_margin_with_distance_loss: distance_function must be a callable of two "
             "tensors or None, got str"),
            (lambda: gc.triplet_margin_with_distance_loss(a, b, np.ones(3)),
             "triplet_margin_with_distance_loss: anchor (2, 3), positive (2, 3) and negative "
             "(3,) must have one number of dimensions"),
            (lambda: gc.triplet_margin_with_distance_loss(a, b, b, swap=1),
             "triplet_margin_with_distance_loss: swap must be True or False"),
            (lambda: gc.nn.TripletMarginWithDistanceLoss(margin=-1.0),
             "TripletMarginWithDistanceLoss: margin must be > 0"),
            (lambda: gc.poisson_nll_loss(a, b, log_input=1),
             "poisson_nll_loss: log_input must be True or False"),
            (lambda: gc.poisson_nll_loss(a, b, reduction="batchmean"),
             "poisson_nll_loss: unknown reduction"),
            (lambda: gc.gaussian_nll_loss(a, b, np.ones((2, 2))),
             "gaussian_nll_loss: var (2, 2) is of incorrect size for the input (2, 3)"),
            (lambda: gc.gaussian_nll_loss(np.ones((2, 3, 4)), 0.0, np.ones((1, 3, 1))),
             "gaussian_nll_loss: var (1, 3, 1) is of incorrect size"),
            (lambda: gc.gaussian_nll_loss(a, b, -1.0), "gaussian_nll_loss: var must be >= 0"),
            (lambda: gc.threshold(a, None, 1.0), "threshold: threshold must be a number"),
            (lambda: gc.softmin(a, 2), "softmin: dim 2 is out of range"),
            (lambda: gc.bilinear(a, np.ones((3, 4)), np.ones((5, 3, 4))),
             "bilinear: input1 (2, 3) and input2 (3, 4) must have the same leading axes"),
            (lambda: gc.bilinear(a, np.ones((2, 4)), np.ones((5, 3, 3))),
             "bilinear: inputs of 3 and 4 features for a weight (5, 3, 3)"),
            (lambda: gc.bilinear(a, np.ones((2, 4)), np.ones((5, 3, 4)), np.ones(4)),
             "bilinear: bias (4,) must be (5,)"),
            (lambda: gc.unflatten(a, 1, (2, 2)),
             "unflatten: sizes (2, 2) do not multiply to the size 3 of axis 1"),
            (lambda: gc.unflatten(a, 1, (-1, -1)), "unflatten: sizes (-1, -1) may hold one -1"),
            (lambda: gc.unflatten(a, 1, ()), "unflatten: sizes must be non-empty"),
            (lambda: gc.unflatten(a, 2, (3,)), "unflatten: dim 2 is out of range"),
            (lambda: gc.nn.Unflatten(1, 6), "Unflatten: unflattened_size must be a tuple of"),
            (lambda: gc.nn.Softmax2d()(a), "Softmax2d: expected a 3-d or 4-d input"),
            (lambda: gc.nn.TripletMarginLoss(margin=-1.0), "TripletMarginLoss: margin must be"),
            (lambda: gc.nn.MultiMarginLoss(p=3), "MultiMarginLoss: p must be 1 or 2"),
            (lambda: gc.nn.MultiMarginLoss(weight=a), "MultiMarginLoss: weight must be None"),
            (lambda: gc.nn.Bilinear(0, 3, 4), "Bilinear: in1_features must be > 0"),
            (lambda: gc.nn.Bilinear(2, 3.0, 4), "Bilinear: in2_features must be an int")]:
        assert_one_line_error(call, message, f)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # torch's kl_div
def test_integer_operands_alone_are_told_to_become_floats_not_to_cast_one():
    """int32 input beside an int64 target told eight losses' users to 'cast one (.astype)',
    which a cast to the other integer dtype does not help (the loss then said 'float scalar
    1.0 meets an integer tensor' or 'softplus(i64[2,3]): needs a floating-point operand');
    torch's refuses integers alone there. Both kinds of integer operands now get the loss's
    line asking for a float dtype, eager and compiled, and the floats it asks for give
    torch's value; margin_ranking_loss and poisson_nll_loss, which torch computes in
    integers, name graphc's own refusal."""
    a = np.array([[1, 0, 1], [0, 1, 1]], np.int32)
    v = np.ones((2, 3), np.int64)
    cases = [("binary_cross_entropy", (a, a * 1.0), True),
             ("binary_cross_entropy_with_logits", (a, a * 1.0), True),
             ("hinge_embedding_loss", (a, 1.0 - 2 * a), True), ("huber_loss", (a, a), True),
             ("kl_div", (a, a * 0.5), True), ("soft_margin_loss", (a, 1.0 - 2 * a), True),
             ("multilabel_soft_margin_loss", (a, a * 1.0), True),
             ("poisson_nll_loss", (a, a * 1.0), False)]
    for name, (x, t), torch_refuses in cases:
        ours, theirs = getattr(gc, name), getattr(TF, name)
        if torch_refuses:
            with pytest.raises((RuntimeError, TypeError)):
                theirs(torch.tensor(x), torch.tensor(t.astype(np.int64)))
        for given in ((x, t.astype(np.int64)), (x.astype(np.int64), t.astype(np.int64))):
            kinds = ("int32 and int64" if given[0].dtype == np.int32 else "int64")
            whose = f"torch's {name} takes no integers alone either" if torch_refuses else \
                f"graphc's {name} takes no integers alone"
            for run in (ours, gc.compile(ours)):
                assert_one_line_error(
                    lambda: run(*given),
                    f"{name}: input and target are {kinds}; {whose}: cast them to a float "
                    "dtype (.astype)", "test_losses_extra.py")
        want = theirs(torch.tensor(x * 1.0), torch.tensor(t * 1.0)).item()
        np.testing.assert_allclose(float(ours(x * 1.0, t * 1.0)), want, rtol=1e-12)
    assert_one_line_error(lambda: gc.margin_ranking_loss(a, a.astype(np.int64), v),
                          "margin_ranking_loss: input1 and input2 are int32 and int64; "
                          "graphc's margin_ranking_loss takes no integers alone",
                          "test_losses_extra.py")
    with pytest.raises(RuntimeError, match="can't be cast"):  # torch's in-place clamp of var
        TF.gaussian_nll_loss(torch.tensor(a), torch.tensor(v), torch.tensor(v))
    assert_one_line_error(lambda: gc.gaussian_nll_loss(a, v, v),
                          "gaussian_nll_loss: var is int64; torch's gaussian_nll_loss takes "
                          "no integer var (it clamps var in place): cast it to a float dtype",
                          "test_losses_extra.py")


def test_gaussian_nll_loss_of_integer_input_and_target_computes_in_var_s_float_dtype():
    """31f8fde left gaussian_nll_loss of an integer input and target beside a float var
    saying 'input is int32 but target is int64; cast one (.astype)' (int64 and int64: 'input
    is int64 but var is float32; cast one') outside autocast, where it computed under
    autocast; torch's computes it in var's dtype (a float number var: float32, torch's
    var * ones_like(input)). Now graphc's too, eager and compiled, in and out of autocast:
    torch's values and dtype. A float target of another dtype is still refused (a float mix)."""
    a = np.array([[1, 0, 2], [3, 1, 1]], np.int32)
    t = np.array([[1, 0, 1], [0, 2, 1]], np.int64)
    cases = [(a, t, np.array([[0.5, 1.0, 2.0], [1.5, 0.25, 3.0]], np.float32)),
             (a.astype(np.int64), t, np.array([0.5, 2.0])), (a, t.astype(np.int32), 0.7),
             (a.astype(np.int64), t.astype(np.float32), np.full((2, 1), 0.5, np.float32))]
    for x, y, v in cases:
        want = TF.gaussian_nll_loss(torch.tensor(x), torch.tensor(y),
                                    v if isinstance(v, float) else torch.tensor(v),
                                    reduction="none")
        for mode in (None, "bfloat16"):
            def loss(x, y, v):
                return gc.gaussian_nll_loss(x, y, v, reduction="none")

            for run in (loss, gc.compile(loss)):
                with gc.autocast(mode):
                    got = run(x, y, v)
                assert str(got.dtype) == str(want.dtype).rpartition(".")[2]
                np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)
    # (r2: the two floats the user gave are named, not the integer input)
    assert_one_line_error(lambda: gc.gaussian_nll_loss(a, t.astype(np.float64), cases[0][2]),
                          "gaussian_nll_loss: target is float64 but var is float32; cast one",
                          "test_losses_extra.py")


def test_gaussian_nll_loss_of_an_integer_input_beside_a_float64_target_or_a_bool_one():
    """(s45) An integer input, a float64 target and a Python-number var was refused ('input
    is int64 but target is float64; cast one') where torch computes it in float64 (its var,
    var * ones_like(input), float32, promoted beside the target; torch takes the log of that
    float32 var, hence rtol 1e-6); and beside a bool target, which torch's subtraction
    refuses, the line named the input's cast dtype ('input is float32') for an int64 input."""
    x = np.array([[1, 0, 2], [3, 1, 1]], np.int64)
    y = np.array([[0.5, 0.25, 1.5], [2.0, 1.25, 0.75]])
    for v in (0.5, 0.1):
        want = TF.gaussian_nll_loss(torch.tensor(x), torch.tensor(y), v, reduction="none")
        assert want.dtype == torch.float64

        def loss(x, y, v):
            return gc.gaussian_nll_loss(x, y, v, reduction="none")
        for run in (loss, gc.compile(loss)):
            got = run(x, y, v)
            assert got.dtype == np.float64
            np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)
    flags = x > 1
    with pytest.raises(RuntimeError, match="with a bool tensor is not supported"):
        TF.gaussian_nll_loss(torch.tensor(x), torch.tensor(flags), 0.5)
    for v in (0.5, np.full((2, 3), 0.5, np.float32)):
        assert_one_line_error(lambda: gc.gaussian_nll_loss(x, flags, v),
                              "gaussian_nll_loss: input is int64 but target is bool; cast one",
                              "test_losses_extra.py")


def test_gaussian_nll_loss_of_an_integer_input_takes_torchs_dtype_beside_numbers():
    """(r2) A Python-number target beside an integer input was taken for float64 (int64
    input, target 1.5, var 0.5: float64 where torch's is float32; beside a float32 var
    refused as 'input is int64 but var is float32'), and a float16 target beside a number
    var was refused as a mix with the float32 var graphc had made ('input is int64 but
    target is float16'). A number has no dtype of its own beside the integer input: torch's
    float32 (input - 1.5, var * ones_like(input)), which a float array promotes. torch's
    dtype and values, eager and compiled (the number a literal, or an argument); two float
    arrays of different dtypes are refused naming them; an int var number is taken as the
    number (torch refuses it, graphc keeps taking it)."""
    x = np.array([[1, 0, 2], [3, 1, 4]], np.int64)
    y = np.array([[0.5, 0.25, 1.5], [2.0, 1.25, 0.75]])
    v = np.array([[0.5, 1.0, 2.0], [1.5, 0.25, 3.0]])
    cases = [(x, 1.5, 0.5), (x.astype(np.int32), 1.5, 0.5), (x, 1.5, v.astype(np.float32)),
             (x, 1.5, v.astype(np.float16)), (x, 1.5, v), (x, y.astype(np.float16), 0.5),
             (x, y.astype(np.float16), v.astype(np.float16)), (x, y.astype(np.float32), 0.5),
             (x, y, 0.5), (x, x, 0.5)]
    for i, t, var in cases:
        def torch_of(a):
            return torch.tensor(a) if isinstance(a, np.ndarray) else a
        want = TF.gaussian_nll_loss(torch_of(i), torch_of(t), torch_of(var), reduction="none")
        tol = 2e-3 if np.float16 in (getattr(t, "dtype", None), getattr(var, "dtype", None)) \
            else 1e-6

        def written(i):
            return gc.gaussian_nll_loss(i, t, var, reduction="none")

        def passed(i, t, var):
            return gc.gaussian_nll_loss(i, t, var, reduction="none")
        for got in (written(i), gc.compile(written)(i), gc.compile(passed)(i, t, var)):
            assert str(got.dtype) == str(want.dtype).rpartition(".")[2], (t, var)
            np.testing.assert_allclose(np.asarray(got, np.float64), want.numpy(), rtol=tol)
    for t, var, says in [(y.astype(np.float16), v.astype(np.float32),
                          "float16 but var is float32"),
                         (y, v.astype(np.float32), "float64 but var is float32")]:
        assert TF.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), torch.tensor(var)) \
            is not None  # (torch promotes a mix graphc refuses, as its other losses)
        assert_one_line_error(lambda: gc.gaussian_nll_loss(x, t, var),
                              f"gaussian_nll_loss: target is {says}; cast one",
                              "test_losses_extra.py")
    # an int var number is the number, as a float one (torch's any(var < 0) of an int is a
    # TypeError; graphc kept taking it, test_weak_arguments' number variance)
    np.testing.assert_allclose(gc.gaussian_nll_loss(x, y, 2), TF.gaussian_nll_loss(
        torch.tensor(x), torch.tensor(y), 2.0).numpy(), rtol=1e-6)
