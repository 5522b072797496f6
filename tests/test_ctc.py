"""gc.ctc_loss and nn.CTCLoss against torch.nn.functional.ctc_loss: values and gradients
w.r.t. log_probs in float64 and float32 over random cases (blank anywhere, repeated labels,
empty targets, inputs too short: inf, every reduction, zero_infinity, padded and
concatenated targets), eagerly, compiled, under gc.grad and gc.vmap; finite differences in
float64; the refusals of bad arguments and of a second derivative."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error

torch = pytest.importorskip("torch", reason="PyTorch is the reference")
TF = torch.nn.functional


def _case(seed):
    """(log_probs (T, N, C) float64 from log_softmax, targets (padded or concatenated),
    input_lengths, target_lengths, blank, reduction, zero_infinity)."""
    rng = np.random.default_rng(seed)
    steps, batch, classes, width = (int(rng.integers(1, 8)), int(rng.integers(1, 4)),
                                    int(rng.integers(2, 6)), int(rng.integers(0, 5)))
    blank = int(rng.integers(0, classes))
    labels = [c for c in range(classes) if c != blank]
    targets = rng.choice(labels, (batch, width)) if width else np.zeros((batch, 0), np.int64)
    if rng.random() < 0.3 and width:
        targets[:, :] = targets[:, :1]  # repeated labels: a blank must come between
    target_lengths = rng.integers(0, width + 1, batch)
    input_lengths = rng.integers(0, steps + 1, batch)  # often too short: inf
    if rng.random() < 0.4:
        targets = np.concatenate([targets[n, :target_lengths[n]] for n in range(batch)])
    log_probs = torch.tensor(rng.normal(size=(steps, batch, classes)) * 2).log_softmax(-1)
    return (log_probs.numpy(), targets.astype(np.int64), input_lengths, target_lengths,
            blank, ("none", "sum", "mean")[seed % 3], bool(seed % 2))


def _torch(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_inf):
    """torch's loss, its gradient of sum(loss * w) and that gradient as graphc gives it:
    torch's kernel adds exp(log_probs) at each t < input_length of a sequence of finite loss
    (log_softmax's backward folded in), and gives NaN where graphc gives 0 (an inf loss
    without zero_infinity)."""
    lp = torch.tensor(log_probs, requires_grad=True)
    args = (torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths))
    loss = TF.ctc_loss(lp, *args, blank=blank, reduction=reduction, zero_infinity=zero_inf)
    w = np.random.default_rng(len(targets)).normal(size=tuple(loss.shape))
    (loss * torch.tensor(w, dtype=lp.dtype)).sum().backward()
    nll = TF.ctc_loss(lp.detach(), *args, blank=blank, reduction="none").numpy()
    batch = log_probs.shape[1]
    per_sequence = np.broadcast_to(w, (batch,)) if reduction != "mean" else \
        np.full(batch, float(w)) / (batch * np.maximum(target_lengths, 1))
    live = (np.arange(log_probs.shape[0])[:, None] < input_lengths) & np.isfinite(nll)
    grad = lp.grad.numpy() - np.exp(log_probs) * (live * per_sequence)[:, :, None]
    grad[:, ~np.isfinite(nll)] = 0.0
    return loss.detach().numpy(), w.astype(log_probs.dtype), grad


def _check(seed, dtype, how):
    lp, targets, il, tl, blank, reduction, zero_inf = _case(seed)
    lp = lp.astype(dtype)
    expected, w, expected_grad = _torch(lp, targets, il, tl, blank, reduction, zero_inf)

    def loss(x, t, a, b):
        return gc.ctc_loss(x, t, a, b, blank, reduction, zero_inf)
    if how == "eager":
        x = gc.tensor(lp, requires_grad=True)
        value = loss(x, targets, il, tl)
        with np.errstate(invalid="ignore"):  # (inf losses of either weight's sign: NaN)
            gc.sum(value * w).backward()
        value, grad = value.data, x.grad
    else:  # compiled, the lengths and targets traced arguments
        value = gc.compile(loss)(lp, targets, il, tl)
        grad = gc.grad(lambda *a: gc.sum(loss(*a) * w))(lp, targets, il, tl)
    tol = 1e-10 if dtype == np.float64 else 3e-5
    assert np.asarray(value).dtype == dtype
    np.testing.assert_allclose(value, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, expected_grad, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ctc_loss_matches_torch_eagerly(dtype):
    for seed in range(120):  # (240 cases with the other dtype)
        _check(seed, dtype, "eager")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ctc_loss_matches_torch_compiled_and_under_grad(dtype):
    for seed in range(12):
        _check(seed, dtype, "compiled")


def test_ctc_loss_under_vmap_matches_torch():
    lp = torch.tensor(np.random.default_rng(0).normal(size=(3, 5, 2, 4))).log_softmax(-1)
    targets, tl = np.array([[1, 2], [3, 3]]), np.array([2, 1])
    il = np.array([[5, 4], [3, 3], [5, 0]])  # the last one's second too short: inf
    got = gc.vmap(lambda x, a: gc.ctc_loss(x, targets, a, tl, reduction="none"))(lp.numpy(), il)
    expected = [TF.ctc_loss(x, torch.tensor(targets), torch.tensor(a), torch.tensor(tl),
                            reduction="none").numpy() for x, a in zip(lp, il)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isinf(np.asarray(got.data)[2, 1])
    grads = gc.vmap(gc.grad(lambda x: gc.ctc_loss(x, targets, il[0], tl)))(lp.numpy())
    for x, g in zip(lp.numpy(), grads):
        t = torch.tensor(x, requires_grad=True)
        TF.ctc_loss(t, torch.tensor(targets), torch.tensor(il[0]), torch.tensor(tl)).backward()
        live = np.arange(5)[:, None] < il[0]  # torch's exp(log_probs) term, as in _torch
        np.testing.assert_allclose(g, t.grad.numpy() - np.exp(x) * (live / (2 * tl))[:, :, None],
                                   atol=1e-12)


def test_ctc_loss_gradients_match_finite_differences():
    lp = torch.tensor(np.random.default_rng(1).normal(size=(5, 2, 4))).log_softmax(-1).numpy()
    targets, il, tl = np.array([[1, 1], [3, 2]]), np.array([5, 4]), np.array([2, 2])
    f = gc.compile(lambda x: gc.ctc_loss(x, targets, il, tl))
    grad = gc.grad(lambda x: gc.ctc_loss(x, targets, il, tl))(lp)
    eps, numeric = 1e-6, np.zeros_like(lp)
    for i in np.ndindex(*lp.shape):
        hi, lo = lp.copy(), lp.copy()
        hi[i] += eps
        lo[i] -= eps
        numeric[i] = (f(hi) - f(lo)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_the_loss_and_its_gradient_are_one_primitive_op_each_not_a_scan_over_time():
    # a gc.scan of T steps of small graph ops cost 20x torch's kernel (0.5 s against 0.026 s
    # for T=200, N=16, C=30, S=40); the primitives loop over time in numpy
    lp = np.log(np.full((200, 16, 30), 1 / 30))
    targets, il, tl = np.ones((16, 40), np.int64), np.full(16, 200), np.full(16, 40)
    graph = gc.trace(gc.grad(lambda x: gc.ctc_loss(x, targets, il, tl)), lp)
    ops = [node.op for node in graph.nodes]
    assert ops.count("ctc_loss") == ops.count("ctc_loss_grad") == 1 and "scan" not in ops


def test_a_second_derivative_is_refused_in_one_line_naming_ctc_loss():
    # the gradient is the primitive ctc_loss_grad (the alpha-beta recursion in numpy), which
    # has no gradient of its own: compiled and eagerly, a Hessian is refused, not wrong
    lp = torch.tensor(np.random.default_rng(1).normal(size=(5, 2, 4))).log_softmax(-1).numpy()
    targets, il, tl = np.array([[1, 1], [3, 2]]), np.array([5, 4]), np.array([2, 2])
    v = np.random.default_rng(2).normal(size=lp.shape)
    g = gc.grad(lambda x: gc.ctc_loss(x, targets, il, tl, reduction="sum"))
    message = "ctc_loss: no second derivative"
    assert_one_line_error(lambda: gc.grad(lambda x: gc.sum(g(x) * v))(lp), message,
                          "test_ctc.py")

    def eager():
        x = gc.tensor(lp, requires_grad=True)
        gc.ctc_loss(x, targets, il, tl).backward(create_graph=True)
        gc.sum(x.grad * v).backward()
    assert_one_line_error(eager, message, "test_ctc.py")


def test_review_s53_forward_mode_first_derivatives_are_taken_not_refused_as_second():
    # jvp, jacfwd and linearize are built by the double-vjp trick, which differentiates
    # ctc_loss_grad w.r.t. its cotangent operand only (a first derivative): 0d28f76 refused
    # them as 'ctc_loss: no second derivative', where the scan before took them
    lp = torch.tensor(np.random.default_rng(1).normal(size=(5, 3, 4))).log_softmax(-1).numpy()
    targets, il, tl = np.array([[1, 1], [3, 2], [2, 2]]), np.array([5, 4, 2]), np.array([2, 2, 2])
    v = np.random.default_rng(2).normal(size=lp.shape)
    f = lambda x: gc.ctc_loss(x, targets, il, tl, reduction="none")  # noqa: E731 (seq 2: inf)
    jac = gc.jacrev(f)(lp)  # (N, T, N, C), each row a gradient checked against torch's above
    expected = np.einsum("ntmc,tmc->n", np.asarray(jac), v)
    assert np.isinf(np.asarray(f(lp))[2]) and expected[2] == 0
    for how in (lambda: gc.jvp(f, (lp,), (v,))[1], lambda: gc.linearize(f, lp)[1](v),
                lambda: gc.compile(lambda x, t: gc.jvp(f, (x,), (t,))[1])(lp, v),
                lambda: np.einsum("ntmc,tmc->n", np.asarray(gc.jacfwd(f)(lp)), v)):
        np.testing.assert_allclose(np.asarray(how()), expected, atol=1e-12)
    # vmapped over a batch of tangents, and a second derivative through jvp still refused
    vs = np.stack([v, 2 * v])
    np.testing.assert_allclose(np.asarray(gc.vmap(lambda t: gc.jvp(f, (lp,), (t,))[1])(vs)),
                               np.stack([expected, 2 * expected]), atol=1e-12)
    assert_one_line_error(lambda: gc.grad(lambda x: gc.sum(gc.jvp(f, (x,), (v,))[1]))(lp),
                          "ctc_loss: no second derivative", "test_ctc.py")


def test_review_s53_a_plus_inf_log_prob_past_an_input_length_warns_nothing(recwarn):
    # the recursions run on past a sequence's input length: -inf + inf there leaked numpy's
    # 'invalid value encountered in add' (torch's and the scan's gave none)
    lp = torch.tensor(np.random.default_rng(3).normal(size=(6, 2, 5))).log_softmax(-1).numpy()
    lp[4:, 0] = np.inf
    targets, il, tl = np.array([[1, 2], [3, 3]]), np.array([4, 6]), np.array([2, 2])
    loss = gc.ctc_loss(lp, targets, il, tl, reduction="none")
    grad = gc.grad(lambda x: gc.ctc_loss(x, targets, il, tl))(lp)
    assert not [str(w.message) for w in recwarn]
    np.testing.assert_allclose(np.asarray(loss), TF.ctc_loss(
        torch.tensor(lp), torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
        reduction="none").numpy())
    assert np.isfinite(np.asarray(grad)).all() and (np.asarray(grad)[4:, 0] == 0).all()


def test_ctc_loss_unbatched_and_the_module():
    lp = torch.tensor(np.random.default_rng(3).normal(size=(6, 5))).log_softmax(-1)
    expected = TF.ctc_loss(lp, torch.tensor([2, 2, 4]), (6,), (3,), blank=1, reduction="none")
    got = gc.ctc_loss(lp.numpy(), np.array([2, 2, 4]), 6, 3, blank=1, reduction="none")
    assert got.shape == () == tuple(expected.shape)
    np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-12)
    module = gc.nn.CTCLoss(1, "sum")
    assert repr(module) == "CTCLoss()"
    batched = lp[:, None].expand(6, 2, 5).numpy()
    targets, il, tl = np.array([[2, 2, 4], [3, 0, 0]]), np.array([6, 4]), np.array([3, 1])
    expected = TF.ctc_loss(torch.tensor(batched), torch.tensor(targets), torch.tensor(il),
                           torch.tensor(tl), blank=1, reduction="sum")
    np.testing.assert_allclose(module(batched, targets, il, tl).data, expected.numpy(),
                               rtol=1e-12)
    module.zero_infinity, module.reduction = True, "none"  # a setting read at every call
    got = gc.compile(lambda x: module(x, targets, np.array([2, 4]), tl))(batched)
    np.testing.assert_allclose(got, [0.0, TF.ctc_loss(
        torch.tensor(batched), torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
        blank=1, reduction="none")[1].item()], rtol=1e-12)


def test_traced_lengths_or_labels_out_of_range_give_nan():
    lp = np.log(np.full((4, 2, 3), 1 / 3))
    f = gc.compile(lambda t, a, b: gc.ctc_loss(lp, t, a, b, reduction="none"))
    good = f(np.array([[1, 2], [2, 1]]), np.array([4, 4]), np.array([2, 2]))
    assert np.isfinite(good).all()
    for targets, il, tl, bad in [([[0, 2], [2, 1]], [4, 4], [2, 2], 0),   # the blank
                                 ([[1, 2], [2, 3]], [4, 4], [2, 2], 1),   # class 3 of 3
                                 ([[1, 2], [2, 1]], [4, 5], [2, 2], 1),   # longer than T
                                 ([[1, 2], [2, 1]], [-1, 4], [2, 2], 0),
                                 ([[1, 2], [2, 1]], [4, 4], [3, 2], 0)]:  # longer than S
        got = f(np.array(targets), np.array(il), np.array(tl))
        assert np.isnan(got[bad]) and np.isfinite(got[1 - bad]), (targets, il, tl)
    g = gc.compile(lambda t, b: gc.ctc_loss(lp, t, np.array([4, 4]), b, reduction="none"))
    assert np.isnan(g(np.array([1, 2, 1]), np.array([2, 2]))).all()  # sum 4 of 3 labels


def test_lengths_of_any_shape_holding_one_per_sequence_are_flattened_as_torch_s():
    """torch flattens the lengths: (N, 1), (1, N) or (N, 1, 1) give the (N,) ones' loss and
    gradient (graphc refused every 2-d shape), eagerly and compiled."""
    for seed in (4, 9):  # (3 sequences of finite loss: padded targets, concatenated)
        lp, targets, il, tl, blank, _, _ = _case(seed)
        batch = lp.shape[1]
        want = TF.ctc_loss(torch.tensor(lp), torch.tensor(targets), torch.tensor(il),
                           torch.tensor(tl), blank=blank, reduction="none").numpy()
        for shape in ((batch, 1), (1, batch), (batch, 1, 1)):
            a, b = il.reshape(shape), tl.reshape(shape)
            theirs = TF.ctc_loss(torch.tensor(lp), torch.tensor(targets), torch.tensor(a),
                                 torch.tensor(b), blank=blank, reduction="none").numpy()
            np.testing.assert_array_equal(theirs, want)
            for got in (gc.ctc_loss(lp, targets, a, b, blank=blank, reduction="none"),
                        gc.compile(lambda lp, a, b: gc.ctc_loss(
                            lp, targets, a, b, blank=blank, reduction="none"))(lp, a, b)):
                np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)

LP = np.log(np.full((4, 2, 3), 1 / 3))
TARGETS = np.array([[1, 2], [2, 1]])


@pytest.mark.parametrize("call, message", [
    (lambda: gc.ctc_loss(LP, np.array([[0, 1], [1, 2]]), [4, 4], [2, 2]),
     "ctc_loss: targets hold the label 0, the blank: a label must be another class"),
    (lambda: gc.ctc_loss(LP, gc.tensor(np.array([[1, 3], [1, 2]])), [4, 4], [2, 2]),
     "ctc_loss: targets hold the label 3, outside the classes [0, 3)"),
    (lambda: gc.ctc_loss(LP, TARGETS, [5, 4], [2, 2]),
     "ctc_loss: input_lengths must be at most T (4), got 5"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4], [3, 2]),
     "ctc_loss: target_lengths must be at most the targets' S (2), got 3"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, -1], [2, 2]),
     "ctc_loss: input_lengths must be >= 0, got -1"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4], [-2, 2]),
     "ctc_loss: target_lengths must be >= 0, got -2"),
    (lambda: gc.ctc_loss(LP[None], TARGETS, [4, 4], [2, 2]),
     "ctc_loss: log_probs must be (T, N, C) or unbatched (T, C), got shape (1, 4, 2, 3)"),
    (lambda: gc.ctc_loss(LP, TARGETS[None], [4, 4], [2, 2]),
     "ctc_loss: targets must be padded (N, S) with N = 2, or 1-d concatenated"),
    (lambda: gc.ctc_loss(LP, TARGETS.astype(float), [4, 4], [2, 2]),
     "ctc_loss: targets must hold integers, got float64"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4.0, 4], [2, 2]),
     "ctc_loss: input_lengths must hold integers, got float64"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4, 4], [2, 2]),
     "ctc_loss: input_lengths must hold one length per sequence (2), got shape (3,)"),
    (lambda: gc.ctc_loss(LP, np.array([1, 2, 1]), [4, 4], [2, 2]),
     "ctc_loss: targets holds 3 labels but target_lengths sum to 4"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4], [2, 2], blank=3),
     "ctc_loss: blank must be a class index in [0, 3), got 3"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4], [2, 2], reduction="avg"),
     "ctc_loss: unknown reduction 'avg'"),
    (lambda: gc.ctc_loss(LP.astype(int), TARGETS, [4, 4], [2, 2]),
     "ctc_loss: log_probs must be floating-point"),
    (lambda: gc.ctc_loss(LP, TARGETS, None, [2, 2]),
     "ctc_loss: input_lengths must be integers (a tuple, list or array), got NoneType"),
    (lambda: gc.ctc_loss(LP, TARGETS, "44", [2, 2]),  # (was 'got shape ()')
     "ctc_loss: input_lengths must be integers (a tuple, list or array), got str '44'"),
    (lambda: gc.ctc_loss(LP, TARGETS, [4, 4], ["2", "2"]),
     "ctc_loss: target_lengths must be integers (a tuple, list or array), got list"),
    (lambda: gc.ctc_loss(LP, TARGETS, np.array([2**63, 4], np.uint64), [2, 2]),  # (was -2**63)
     "ctc_loss: input_lengths must be at most T (4), got 9223372036854775808"),
    (lambda: gc.ctc_loss(LP, np.array([1, 2, 1]), [4, 4], np.array([2**63, 1], np.uint64)),
     "ctc_loss: target_lengths must be at most 9223372036854775807 (int64), got "
     "9223372036854775808"),
    (lambda: gc.ctc_loss(LP, TARGETS, np.array([[4, 4], [4, 4]]), [2, 2]),
     "ctc_loss: input_lengths must hold one length per sequence (2), got shape (2, 2)"),
])
def test_bad_arguments_are_one_line_naming_ctc_loss_and_the_argument(call, message):
    assert_one_line_error(call, message, "test_ctc.py")


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_a_half_input_under_autocast_is_computed_in_float32_as_torch_s(half):
    # ctc_loss is on torch.autocast's float32 list: a half log_probs is cast to float32 and the
    # loss is float32; computed in bfloat16 a 200-step loss was 3% off (576 for 558.5)
    rng = np.random.default_rng(4)
    lp = torch.tensor(rng.normal(size=(200, 2, 30))).log_softmax(-1).to(getattr(torch, half))
    targets, il, tl = rng.integers(1, 30, (2, 40)), [200, 150], [40, 30]
    with torch.autocast("cpu", dtype=getattr(torch, half)):
        expected = TF.ctc_loss(lp, torch.tensor(targets), il, tl, reduction="none")
    x = gc.tensor(lp.float().numpy()).astype(half)
    with gc.autocast(half):
        got = gc.ctc_loss(x, targets, il, tl, reduction="none")
        grad = gc.grad(lambda a: gc.ctc_loss(a, targets, il, tl))(x)
    assert got.dtype == np.float32 == expected.numpy().dtype
    np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-6)
    assert grad.dtype == np.dtype(half) and np.isfinite(np.asarray(grad, np.float32)).all()
